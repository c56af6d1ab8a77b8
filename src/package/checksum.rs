//! The files that carry checksums (computed by `crate::artifact` while the bytes are written): `<file>.sha256` / `<file>.sha512` sidecars holding the hex digest only (the
//! dl.k8s.io convention) and `SHA256SUMS` / `SHA512SUMS` in `sha256sum -c` format.

use std::io::Write;
use std::path::Path;

use crate::artifact::Digests;
use crate::error::{Error, Result};
use crate::outdir::AtomicFile;

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

/// The digests of a file kbuild just wrote beside the artifacts (manifest.json, the
/// extension's metadata), so that the sums, written last, list it too.
pub fn listed_file(dir: &Path, name: &str) -> Result<(String, Digests)> {
    let path = dir.join(name);
    let (_, digests) = std::fs::File::open(&path)
        .and_then(crate::artifact::hash_reader)
        .map_err(|e| Error::io("cannot read", &path, e))?;
    Ok((name.to_string(), digests))
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
