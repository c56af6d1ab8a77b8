//! Checksums, computed while the bytes are written (one pass), and the files that carry
//! them: `<file>.sha256` / `<file>.sha512` sidecars holding the hex digest only (the
//! dl.k8s.io convention) and `SHA256SUMS` / `SHA512SUMS` in `sha256sum -c` format.

use std::io::{self, Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256, Sha512};

use super::AtomicFile;
use crate::error::{Error, Result};

/// The two digests kbuild publishes for every artifact, as lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Digests {
    pub sha256: String,
    pub sha512: String,
}

/// A writer that feeds everything written through it to SHA-256 and SHA-512 while
/// passing it on, and counts the bytes (digest 0.11 has no `io::Write` impl of its own).
/// sha2 uses the CPU's SHA extensions (SHA-256) and AVX2 (SHA-512) when it has them,
/// detected at run time: both together still run several times faster than deflate.
pub struct HashingWriter<W> {
    inner: W,
    sha256: Sha256,
    sha512: Sha512,
    written: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            sha256: Sha256::new(),
            sha512: Sha512::new(),
            written: 0,
        }
    }

    /// The inner writer, the number of bytes written and their digests.
    pub fn finish(self) -> (W, u64, Digests) {
        let digests = Digests {
            sha256: hex(&self.sha256.finalize()),
            sha512: hex(&self.sha512.finalize()),
        };
        (self.inner, self.written, digests)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Hash only what the inner writer accepted, so a short write stays consistent.
        let n = self.inner.write(buf)?;
        self.sha256.update(&buf[..n]);
        self.sha512.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 0xf) as usize] as char);
    }
    s
}

/// Most artifacts one directory can list: kbuild writes a few dozen (every upstream
/// platform's client, node and server tarballs, or an extension's binaries).
pub const MAX_ARTIFACTS: u64 = 4096;
/// Longest artifact name a checksum line may carry (kbuild's are under 64 bytes).
pub const MAX_NAME: u64 = 1024;
/// SHA256SUMS / SHA512SUMS are read up to this size: `MAX_ARTIFACTS` lines of a SHA-512
/// digest, two separators and a `MAX_NAME` name.
pub const SUMS_MAX_BYTES: u64 = MAX_ARTIFACTS * (128 + 2 + MAX_NAME + 1);
/// A sidecar holds one hex digest (and perhaps a newline or a name after it).
pub const SIDECAR_MAX_BYTES: u64 = 128 + 2 + MAX_NAME + 1;

/// Hashes a file in one streaming pass; returns its size and digests.
#[cfg(test)]
pub fn hash_file(path: &Path) -> io::Result<(u64, Digests)> {
    hash_reader(std::fs::File::open(path)?)
}

/// Hashes everything `file` yields in one streaming pass; returns its size and digests.
pub fn hash_reader(mut file: impl Read) -> io::Result<(u64, Digests)> {
    let mut hasher = HashingWriter::new(io::sink());
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.write_all(&buf[..n])?;
    }
    let (_, size, digests) = hasher.finish();
    Ok((size, digests))
}

/// Writes `<dir>/<name>.sha256` and `<dir>/<name>.sha512`, each holding the hex digest
/// only, without a newline (as dl.k8s.io serves them), so that
/// `echo "$(cat F.sha256)  F" | sha256sum --check` passes.
pub fn write_sidecars(dir: &Path, name: &str, digests: &Digests) -> Result<()> {
    for (ext, hex) in [("sha256", &digests.sha256), ("sha512", &digests.sha512)] {
        let path = dir.join(format!("{name}.{ext}"));
        let mut file = AtomicFile::create(&path)?;
        file.write_all(hex.as_bytes())
            .map_err(|e| Error::io("cannot write", &path, e))?;
        file.commit()?;
    }
    Ok(())
}

/// `SHA256SUMS` / `SHA512SUMS` text: `<hex>  <name>` lines (two spaces: text mode, as
/// `sha256sum` prints them), sorted by name.
pub fn sums_text(entries: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = entries.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut text = String::new();
    for (name, hex) in sorted {
        text.push_str(hex);
        text.push_str("  ");
        text.push_str(name);
        text.push('\n');
    }
    text
}

/// Writes `SHA256SUMS` and `SHA512SUMS` in `dir` for `(name, digests)` pairs.
pub fn write_sums(dir: &Path, artifacts: &[(String, Digests)]) -> Result<()> {
    let pick = |f: fn(&Digests) -> &String| -> Vec<(String, String)> {
        artifacts
            .iter()
            .map(|(name, d)| (name.clone(), f(d).clone()))
            .collect()
    };
    for (file, entries) in [
        ("SHA256SUMS", pick(|d| &d.sha256)),
        ("SHA512SUMS", pick(|d| &d.sha512)),
    ] {
        let path = dir.join(file);
        let mut out = AtomicFile::create(&path)?;
        out.write_all(sums_text(&entries).as_bytes())
            .map_err(|e| Error::io("cannot write", &path, e))?;
        out.commit()?;
    }
    Ok(())
}

/// Parses `sha256sum` output: `<hex>  <name>` or `<hex> *<name>` per line.
/// Returns the (name, hex) pairs, or the 1-based number of the first malformed line.
pub fn parse_sums(text: &str, hex_len: usize) -> std::result::Result<Vec<(String, String)>, usize> {
    let mut entries = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let (hex, rest) = line.split_once(' ').ok_or(i + 1)?;
        let name = rest
            .strip_prefix(' ')
            .or_else(|| rest.strip_prefix('*'))
            .ok_or(i + 1)?;
        if hex.len() != hex_len || !hex.bytes().all(|b| b.is_ascii_hexdigit()) || name.is_empty() {
            return Err(i + 1);
        }
        entries.push((name.to_string(), hex.to_ascii_lowercase()));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests_of_abc() {
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(b"abc").unwrap();
        let (inner, size, d) = w.finish();
        assert_eq!(inner, b"abc");
        assert_eq!(size, 3);
        assert_eq!(
            d.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(d.sha512.starts_with("ddaf35a193617aba"));
        assert_eq!(d.sha512.len(), 128);
    }

    #[test]
    fn sums_are_sorted_and_in_sha256sum_format() {
        let text = sums_text(&[
            ("b.tar.gz".into(), "22".into()),
            ("a.tar.gz".into(), "11".into()),
        ]);
        assert_eq!(text, "11  a.tar.gz\n22  b.tar.gz\n");
    }

    #[test]
    fn parses_text_and_binary_mode_lines() {
        let h = "a".repeat(64);
        let text = format!("{h}  one.tar.gz\n{h} *two.tar.gz\n");
        let got = parse_sums(&text, 64).unwrap();
        assert_eq!(got[0].0, "one.tar.gz");
        assert_eq!(got[1].0, "two.tar.gz");
        assert_eq!(parse_sums("zz  x\n", 64), Err(1));
        assert_eq!(parse_sums(&format!("{h}  x\nbroken\n"), 64), Err(2));
    }
}
