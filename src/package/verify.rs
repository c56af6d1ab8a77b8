//! `kbuild verify`: re-hash every artifact of a directory kbuild wrote and compare it with
//! every claim made about it: SHA256SUMS, SHA512SUMS, the `.sha256`/`.sha512` sidecars and
//! manifest.json (digests and size). Each file is read once. Every mismatch and every
//! missing file is named; nothing stops at the first problem.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component as PathPart, Path};

use super::checksum::{self, Digests};
use super::manifest::{self, Manifest};
use super::Control;

/// One thing that does not match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file concerned, relative to the directory.
    pub file: String,
    pub what: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.file, self.what)
    }
}

/// The outcome for one directory.
#[derive(Debug, Default)]
pub struct Report {
    /// Artifacts whose bytes matched every claim, with their sizes.
    pub ok: Vec<(String, u64)>,
    pub problems: Vec<Problem>,
    /// Which of SHA256SUMS, SHA512SUMS, manifest.json were found.
    pub sources: Vec<String>,
}

/// What one source claims about one file.
struct Claims {
    sha256: BTreeMap<String, String>,
    sha512: BTreeMap<String, String>,
}

fn read_sums(
    dir: &Path,
    file: &str,
    hex_len: usize,
    report: &mut Report,
) -> Option<BTreeMap<String, String>> {
    let path = dir.join(file);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            report.problems.push(Problem {
                file: file.to_string(),
                what: format!("cannot read: {e}"),
            });
            return None;
        }
    };
    report.sources.push(file.to_string());
    match checksum::parse_sums(&text, hex_len) {
        Ok(entries) => Some(entries.into_iter().collect()),
        Err(line) => {
            report.problems.push(Problem {
                file: file.to_string(),
                what: format!("line {line} is not `<hex>  <file>`"),
            });
            Some(BTreeMap::new())
        }
    }
}

/// Whether a listed name stays inside the directory.
fn is_safe(name: &str) -> bool {
    let p = Path::new(name);
    !name.is_empty() && p.components().all(|c| matches!(c, PathPart::Normal(_)))
}

fn read_sidecar(dir: &Path, name: &str) -> Option<std::io::Result<String>> {
    match std::fs::read_to_string(dir.join(name)) {
        Ok(t) => Some(Ok(t.trim().to_ascii_lowercase())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => Some(Err(e)),
    }
}

/// Verifies `dir`. Returns None when it holds nothing to verify against.
/// Stops between files once `cancel` is set (the report is then incomplete).
pub fn verify_dir(dir: &Path, cancel: &Control) -> Option<Report> {
    let mut report = Report::default();
    let sums = Claims {
        sha256: read_sums(dir, "SHA256SUMS", 64, &mut report).unwrap_or_default(),
        sha512: read_sums(dir, "SHA512SUMS", 128, &mut report).unwrap_or_default(),
    };
    let has256 = report.sources.iter().any(|s| s == "SHA256SUMS");
    let has512 = report.sources.iter().any(|s| s == "SHA512SUMS");
    let manifest: Option<Manifest> = match Manifest::read(dir) {
        Ok(m) => m,
        Err(e) => {
            report.problems.push(Problem {
                file: manifest::FILE_NAME.to_string(),
                what: e.message,
            });
            None
        }
    };
    if manifest.is_some() {
        report.sources.push(manifest::FILE_NAME.to_string());
    }
    if report.sources.is_empty() && report.problems.is_empty() {
        return None;
    }
    for (present, file) in [
        (has256, "SHA256SUMS"),
        (has512, "SHA512SUMS"),
        (
            manifest.is_some()
                || report
                    .problems
                    .iter()
                    .any(|p| p.file == manifest::FILE_NAME),
            manifest::FILE_NAME,
        ),
    ] {
        if !present {
            report.problems.push(Problem {
                file: file.to_string(),
                what: "missing".to_string(),
            });
        }
    }

    let by_manifest: BTreeMap<String, &manifest::Artifact> = manifest
        .iter()
        .flat_map(|m| m.artifacts.iter())
        .map(|a| (a.file.clone(), a))
        .collect();
    let names: BTreeSet<String> = sums
        .sha256
        .keys()
        .chain(sums.sha512.keys())
        .chain(by_manifest.keys())
        .cloned()
        .collect();

    for name in names {
        let before = report.problems.len();
        let mut problem = |what: String| {
            report.problems.push(Problem {
                file: name.clone(),
                what,
            })
        };
        if !is_safe(&name) {
            problem("is not a plain relative path; not read".to_string());
            continue;
        }
        for (listed, source) in [
            (!has256 || sums.sha256.contains_key(&name), "SHA256SUMS"),
            (!has512 || sums.sha512.contains_key(&name), "SHA512SUMS"),
            (
                manifest.is_none() || by_manifest.contains_key(&name),
                manifest::FILE_NAME,
            ),
        ] {
            if !listed {
                problem(format!("not listed in {source}"));
            }
        }
        if cancel.check().is_err() {
            break;
        }
        let path = dir.join(&name);
        let (size, actual): (u64, Digests) = match checksum::hash_file(&path) {
            Ok(found) => found,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                problem("missing".to_string());
                continue;
            }
            Err(e) => {
                problem(format!("cannot read: {e}"));
                continue;
            }
        };
        if let Some(want) = sums.sha256.get(&name) {
            if *want != actual.sha256 {
                problem("sha256 differs from SHA256SUMS".to_string());
            }
        }
        if let Some(want) = sums.sha512.get(&name) {
            if *want != actual.sha512 {
                problem("sha512 differs from SHA512SUMS".to_string());
            }
        }
        if let Some(a) = by_manifest.get(&name) {
            if a.sha256 != actual.sha256 {
                problem("sha256 differs from manifest.json".to_string());
            }
            if a.sha512 != actual.sha512 {
                problem("sha512 differs from manifest.json".to_string());
            }
            if a.size != size {
                problem(format!(
                    "size {size} differs from manifest.json ({})",
                    a.size
                ));
            }
        }
        // Sidecars: the ones the manifest names must exist; any that exist must match.
        let named: BTreeSet<String> = by_manifest
            .get(&name)
            .map(|a| a.sidecars.iter().cloned().collect())
            .unwrap_or_default();
        for (ext, want) in [("sha256", &actual.sha256), ("sha512", &actual.sha512)] {
            let sidecar = format!("{name}.{ext}");
            match read_sidecar(dir, &sidecar) {
                Some(Ok(text)) if text == *want => {}
                Some(Ok(_)) => report.problems.push(Problem {
                    file: sidecar,
                    what: format!("{ext} differs from {name}"),
                }),
                Some(Err(e)) => report.problems.push(Problem {
                    file: sidecar,
                    what: format!("cannot read: {e}"),
                }),
                None if named.contains(&sidecar) => report.problems.push(Problem {
                    file: sidecar,
                    what: "missing".to_string(),
                }),
                None => {}
            }
        }
        if report.problems.len() == before {
            report.ok.push((name, size));
        }
    }
    Some(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_set(dir: &Path) {
        std::fs::write(dir.join("a.tar.gz"), b"aaa").unwrap();
        std::fs::write(dir.join("b.tar.gz"), b"bbb").unwrap();
        let mut sums = Vec::new();
        for n in ["a.tar.gz", "b.tar.gz"] {
            let (_, d) = checksum::hash_file(&dir.join(n)).unwrap();
            checksum::write_sidecars(dir, n, &d).unwrap();
            sums.push((n.to_string(), d));
        }
        checksum::write_sums(dir, &sums).unwrap();
    }

    #[test]
    fn intact_directory_passes() {
        let dir = tempfile::tempdir().unwrap();
        write_set(dir.path());
        let r = verify_dir(dir.path(), &Control::default()).unwrap();
        // No manifest: that alone is reported.
        assert_eq!(
            r.problems,
            [Problem {
                file: "manifest.json".into(),
                what: "missing".into()
            }]
        );
        assert_eq!(r.ok.len(), 2);
    }

    #[test]
    fn tampered_and_missing_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        write_set(dir.path());
        std::fs::write(dir.path().join("a.tar.gz"), b"tampered").unwrap();
        std::fs::remove_file(dir.path().join("b.tar.gz")).unwrap();
        let r = verify_dir(dir.path(), &Control::default()).unwrap();
        let text: Vec<String> = r.problems.iter().map(|p| p.to_string()).collect();
        assert!(
            text.contains(&"a.tar.gz: sha256 differs from SHA256SUMS".to_string()),
            "{text:?}"
        );
        assert!(text.contains(&"a.tar.gz: sha512 differs from SHA512SUMS".to_string()));
        assert!(text.contains(&"a.tar.gz.sha256: sha256 differs from a.tar.gz".to_string()));
        assert!(text.contains(&"b.tar.gz: missing".to_string()));
    }

    #[test]
    fn nothing_to_verify_against() {
        let dir = tempfile::tempdir().unwrap();
        assert!(verify_dir(dir.path(), &Control::default()).is_none());
    }

    #[test]
    fn names_escaping_the_directory_are_not_read() {
        assert!(!is_safe("../etc/passwd"));
        assert!(!is_safe("/etc/passwd"));
        assert!(is_safe("amd64/darwin/kubectl"));
    }
}
