//! The Go version a binary was linked with, read from the build information Go embeds in
//! every executable (the `.go.buildinfo` blob `go version <file>` reads): the magic
//! `\xff Go buildinf:`, a pointer-size byte, a flags byte and, since Go 1.18 (flag 0x2),
//! the version as a varint-length string at offset 32. Works for ELF, Mach-O and PE alike.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

const MAGIC: &[u8; 14] = b"\xff Go buildinf:";
const FLAG_INLINE_STRINGS: u8 = 0x2;

/// The version string in the blob that starts at `blob` (`go1.24.4`), if it is inline.
pub fn parse(blob: &[u8]) -> Option<String> {
    if blob.len() < 33 || &blob[..14] != MAGIC || blob[15] & FLAG_INLINE_STRINGS == 0 {
        return None;
    }
    let (len, used) = uvarint(&blob[32..])?;
    let start = 32 + used;
    let version = blob.get(start..start.checked_add(len as usize)?)?;
    let text = std::str::from_utf8(version).ok()?;
    text.starts_with("go").then(|| text.to_string())
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

/// The module info's start and end sentinels (Go's `runtime/debug` modinfo framing).
const MODINFO_START: usize = 16;
const MODINFO_END: usize = 16;

/// The Go version and the `build` settings (GOOS, GOARCH, CGO_ENABLED, ...) a binary
/// embeds, as `go version -m` prints them (cmd/go `version.go`, runtime/debug
/// `ParseBuildInfo`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildInfo {
    pub go_version: String,
    pub settings: Vec<(String, String)>,
}

impl BuildInfo {
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.settings
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses the version and the module info that follows it in an inline blob.
pub fn parse_full(blob: &[u8]) -> Option<BuildInfo> {
    let go_version = parse(blob)?;
    let (len, used) = uvarint(&blob[32..])?;
    let at = 32 + used + len as usize;
    let (mlen, mused) = uvarint(blob.get(at..)?)?;
    let start = at + mused;
    let modinfo = blob.get(start..start.checked_add(mlen as usize)?)?;
    let text = if modinfo.len() >= MODINFO_START + MODINFO_END {
        &modinfo[MODINFO_START..modinfo.len() - MODINFO_END]
    } else {
        &[][..]
    };
    let settings = String::from_utf8_lossy(text)
        .lines()
        .filter_map(|l| l.strip_prefix("build\t"))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Some(BuildInfo {
        go_version,
        settings,
    })
}

/// Reads the whole build information of `path` (modinfo can be tens of kilobytes).
pub fn read(path: &Path) -> std::io::Result<Option<BuildInfo>> {
    let Some(at) = find(path)? else {
        return Ok(None);
    };
    let mut file = std::fs::File::open(path)?;
    file.seek(SeekFrom::Start(at))?;
    let mut blob = vec![0u8; 1 << 20];
    let got = read_up_to(&mut file, &mut blob)?;
    Ok(parse_full(&blob[..got]))
}

/// Scans `path` for the build information and returns the Go version in it.
pub fn go_version(path: &Path) -> std::io::Result<Option<String>> {
    let Some(at) = find(path)? else {
        return Ok(None);
    };
    let mut file = std::fs::File::open(path)?;
    file.seek(SeekFrom::Start(at))?;
    let mut blob = vec![0u8; 64 + 256];
    let got = read_up_to(&mut file, &mut blob)?;
    Ok(parse(&blob[..got]))
}

/// The file offset of the first usable build information blob.
fn find(path: &Path) -> std::io::Result<Option<u64>> {
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
            let mut blob = vec![0u8; 64 + 256];
            file.seek(SeekFrom::Start(offset + at as u64))?;
            let got = read_up_to(&mut file, &mut blob)?;
            if parse(&blob[..got]).is_some() {
                return Ok(Some(offset + at as u64));
            }
            // Not a usable blob: keep scanning after it.
            file.seek(SeekFrom::Start(offset + at as u64 + 1))?;
            offset += at as u64 + 1;
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
}
