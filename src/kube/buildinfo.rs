//! The build information Go embeds in every executable (the `.go.buildinfo` blob that
//! `go version -m <file>` reads): the magic `\xff Go buildinf:`, a pointer-size byte, a
//! flags byte and, since Go 1.18 (flag 0x2), two varint-length strings from offset 32: the
//! Go version, then the module information (`path`, `mod`, `dep`, `=>` and `build` lines
//! between two 16-byte sentinels). Works for ELF, Mach-O and PE alike.
//!
//! Mirrors Go's `debug/buildinfo.Read` (readRawBuildInfo, decodeString) for the blob and
//! `runtime/debug.ParseBuildInfo` for the module lines; older binaries, whose strings are
//! pointers instead of inline, are not read.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

const MAGIC: &[u8; 14] = b"\xff Go buildinf:";
const FLAG_INLINE_STRINGS: u8 = 0x2;
/// The module information is wrapped in 16 bytes of sentinel on each side
/// (cmd/go's modload infoStart/infoEnd), which `debug/buildinfo` strips.
const SENTINEL_LEN: usize = 16;
/// The module information is read up to this size: Kubernetes' binaries carry about 20 KiB.
const MAX_MODINFO: u64 = 4 << 20;

/// One module as `go version -m` shows it: `dep <path> <version> <sum>`, perhaps followed
/// by `=> <path> <version> <sum>` when go.mod replaces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    pub path: String,
    /// `v1.2.3`, or `(devel)` for the main module and local replacements.
    pub version: String,
    /// The `h1:` checksum; None for the main module and local replacements.
    pub sum: Option<String>,
    pub replace: Option<Box<Module>>,
}

/// What a Go binary says about how it was built.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BuildInfo {
    /// `go1.24.4`.
    pub go_version: String,
    /// The main package (`k8s.io/kubernetes/cmd/kubectl`).
    pub path: Option<String>,
    /// The module holding the main package.
    pub main: Option<Module>,
    /// Every other module linked in, in the binary's order.
    pub deps: Vec<Module>,
    /// The `build` settings (GOOS, GOARCH, CGO_ENABLED, -ldflags, ...), in the binary's order.
    pub settings: Vec<(String, String)>,
}

impl BuildInfo {
    /// The value of one `build` setting, e.g. `GOOS`.
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.settings
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// The version string in the blob that starts at `blob` (`go1.24.4`), if it is inline.
#[cfg(test)]
fn parse(blob: &[u8]) -> Option<String> {
    strings(blob).map(|(version, _)| version)
}

/// The version and where the module information string lies in the blob (start, length).
fn strings(blob: &[u8]) -> Option<(String, Option<(usize, u64)>)> {
    if blob.len() < 33 || &blob[..14] != MAGIC || blob[15] & FLAG_INLINE_STRINGS == 0 {
        return None;
    }
    let (len, used) = uvarint(&blob[32..])?;
    let start = 32 + used;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    let text = std::str::from_utf8(blob.get(start..end)?).ok()?;
    if !text.starts_with("go") {
        return None;
    }
    let modinfo = uvarint(blob.get(end..)?).map(|(len, used)| (end + used, len));
    Some((text.to_string(), modinfo))
}

/// Parses the module lines (`runtime/debug.ParseBuildInfo`'s format, sentinels stripped).
fn parse_modinfo(text: &str, info: &mut BuildInfo) {
    let mut last_dep = false;
    for line in text.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        let module = |f: &[&str]| Module {
            path: f.first().copied().unwrap_or_default().to_string(),
            version: f.get(1).copied().unwrap_or_default().to_string(),
            sum: f.get(2).filter(|s| !s.is_empty()).map(|s| s.to_string()),
            replace: None,
        };
        match fields.first().copied() {
            Some("path") => info.path = fields.get(1).map(|s| s.to_string()),
            Some("build") => {
                if let Some((key, value)) = fields.get(1).and_then(|kv| kv.split_once('=')) {
                    info.settings.push((key.to_string(), value.to_string()));
                }
            }
            Some("mod") => info.main = Some(module(&fields[1..])),
            Some("dep") => {
                info.deps.push(module(&fields[1..]));
                last_dep = true;
                continue;
            }
            Some("=>") => {
                let replaced = module(&fields[1..]);
                let target = if last_dep {
                    info.deps.last_mut()
                } else {
                    info.main.as_mut()
                };
                if let Some(m) = target {
                    m.replace = Some(Box::new(replaced));
                }
            }
            _ => {}
        }
        last_dep = false;
    }
}

/// The module text inside its sentinels, as `debug/buildinfo` strips them.
fn strip_sentinels(raw: &[u8]) -> &[u8] {
    if raw.len() > 2 * SENTINEL_LEN && raw[raw.len() - SENTINEL_LEN - 1] == b'\n' {
        &raw[SENTINEL_LEN..raw.len() - SENTINEL_LEN]
    } else {
        raw
    }
}

fn uvarint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, b) in bytes.iter().take(10).enumerate() {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// The Go version `path` was linked with, from its build information.
pub fn go_version(path: &Path) -> std::io::Result<Option<String>> {
    Ok(read(path)?.map(|info| info.go_version))
}

/// Scans `path` for the build information: the Go version and the modules linked in.
/// None when the file carries none (not a Go binary, or one older than Go 1.18).
pub fn read(path: &Path) -> std::io::Result<Option<BuildInfo>> {
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut carry = 0usize;
    let mut offset = 0u64; // file offset of buf[0]
    loop {
        let n = file.read(&mut buf[carry..])?;
        if n == 0 {
            return Ok(None);
        }
        let filled = carry + n;
        if let Some(at) = buf[..filled].windows(MAGIC.len()).position(|w| w == MAGIC) {
            let blob_at = offset + at as u64;
            let mut blob = vec![0u8; 64 + 256];
            file.seek(SeekFrom::Start(blob_at))?;
            let got = read_up_to(&mut file, &mut blob)?;
            if let Some((go_version, modinfo)) = strings(&blob[..got]) {
                let mut info = BuildInfo {
                    go_version,
                    ..BuildInfo::default()
                };
                if let Some((start, len)) = modinfo.filter(|(_, len)| *len <= MAX_MODINFO) {
                    let mut raw = vec![0u8; len as usize];
                    file.seek(SeekFrom::Start(blob_at + start as u64))?;
                    let got = read_up_to(&mut file, &mut raw)?;
                    let text = String::from_utf8_lossy(strip_sentinels(&raw[..got]));
                    parse_modinfo(&text, &mut info);
                }
                return Ok(Some(info));
            }
            // Not a usable blob: keep scanning after it.
            file.seek(SeekFrom::Start(blob_at + 1))?;
            offset = blob_at + 1;
            carry = 0;
            continue;
        }
        let keep = (MAGIC.len() - 1).min(filled);
        buf.copy_within(filled - keep..filled, 0);
        offset += (filled - keep) as u64;
        carry = keep;
    }
}

fn read_up_to(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        let n = file.read(&mut buf[got..])?;
        if n == 0 {
            break;
        }
        got += n;
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(version: &str) -> Vec<u8> {
        let mut b = MAGIC.to_vec();
        b.push(8);
        b.push(FLAG_INLINE_STRINGS);
        b.resize(32, 0);
        b.push(version.len() as u8);
        b.extend_from_slice(version.as_bytes());
        b
    }

    #[test]
    fn reads_inline_version() {
        assert_eq!(parse(&blob("go1.24.4")).as_deref(), Some("go1.24.4"));
        let mut old = blob("go1.17");
        old[15] = 0;
        assert_eq!(parse(&old), None);
    }

    #[test]
    fn finds_the_blob_inside_a_file_across_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bin");
        let mut bytes = vec![7u8; (1 << 20) - 5];
        bytes.extend_from_slice(&blob("go1.24.4"));
        bytes.extend_from_slice(&[1u8; 100]);
        std::fs::write(&path, bytes).unwrap();
        assert_eq!(go_version(&path).unwrap().as_deref(), Some("go1.24.4"));
        std::fs::write(&path, b"no build info here").unwrap();
        assert_eq!(go_version(&path).unwrap(), None);
    }

    #[test]
    fn reads_modules_as_go_version_m_shows_them() {
        let modinfo = "path\tk8s.io/kubernetes/cmd/kubectl\n\
                       mod\tk8s.io/kubernetes\t(devel)\t\n\
                       dep\tgithub.com/spf13/pflag\tv1.0.6\th1:abc=\n\
                       dep\tk8s.io/component-base\tv0.0.0\n\
                       =>\t./staging/src/k8s.io/component-base\t(devel)\t\n\
                       build\tGOOS=linux\n";
        let mut wrapped = vec![b'0'; SENTINEL_LEN];
        wrapped.extend_from_slice(modinfo.as_bytes());
        wrapped.extend_from_slice(&[b'1'; SENTINEL_LEN]);
        let mut bytes = vec![9u8; 4096];
        bytes.extend_from_slice(&blob("go1.24.4"));
        bytes.push(0x80 | (wrapped.len() & 0x7f) as u8);
        bytes.push((wrapped.len() >> 7) as u8);
        bytes.extend_from_slice(&wrapped);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bin");
        std::fs::write(&path, bytes).unwrap();
        let info = read(&path).unwrap().unwrap();
        assert_eq!(info.go_version, "go1.24.4");
        assert_eq!(info.path.as_deref(), Some("k8s.io/kubernetes/cmd/kubectl"));
        let main = info.main.unwrap();
        assert_eq!(
            (main.path.as_str(), main.version.as_str()),
            ("k8s.io/kubernetes", "(devel)")
        );
        assert_eq!(main.sum, None);
        assert_eq!(info.deps.len(), 2);
        assert_eq!(info.deps[0].sum.as_deref(), Some("h1:abc="));
        let replace = info.deps[1].replace.as_deref().unwrap();
        assert_eq!(replace.path, "./staging/src/k8s.io/component-base");
        assert_eq!(info.deps[0].replace, None);
    }
}
