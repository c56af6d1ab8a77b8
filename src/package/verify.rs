//! `kbuild verify`: re-hash every artifact of a directory kbuild wrote and compare it with
//! every claim made about it: SHA256SUMS, SHA512SUMS, the `.sha256`/`.sha512` sidecars and
//! manifest.json (digests and size). Each file is read once. Every mismatch and every
//! missing file is named; nothing stops at the first problem. A file that looks like an
//! artifact but that nothing lists, and any symbolic link or special file, is a problem too:
//! verify vouches for the whole directory, not only for what the lists name.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component as PathPart, Path, PathBuf};

use super::checksum;
use super::manifest::{self, Manifest};
use super::{extension, Control};
use crate::artifact::{self, Digests};
use crate::input::{self, InputError, Links};
use crate::kube::release::RELEASE_TARS;
use crate::outdir::SWAP_JOURNAL;

/// The files that say what the directory holds, read (and so checked) by verify itself.
const LISTS: &[&str] = &["SHA256SUMS", "SHA512SUMS", manifest::FILE_NAME];
/// Files the sums list but the manifest does not (it is one of them): manifest.json and the
/// extension's metadata. Where they exist, the sums must list them, since the signature of
/// SHA256SUMS is what covers them.
const SUMS_ONLY: &[&str] = extension::LISTED_METADATA;

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
    let text = match input::read_text_capped(&path, checksum::SUMS_MAX_BYTES, Links::Refuse) {
        Ok(t) => t,
        Err(InputError::NotFound) => return None,
        Err(e) => {
            report.problems.push(Problem {
                file: file.to_string(),
                what: e.to_string(),
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

fn read_sidecar(dir: &Path, name: &str) -> Option<Result<String, InputError>> {
    match input::read_text_capped(&dir.join(name), checksum::SIDECAR_MAX_BYTES, Links::Refuse) {
        Ok(t) => Some(Ok(t.trim().to_ascii_lowercase())),
        Err(InputError::NotFound) => None,
        Err(e) => Some(Err(e)),
    }
}

/// Whether a file nothing lists would pass for an artifact: a tarball, a binary, a
/// checksum sidecar, anything named `kubernetes*`, or any file in a subdirectory (where the
/// extension layout keeps its binaries). Other top-level files a user keeps there are left alone.
fn looks_like_artifact(name: &str) -> bool {
    let base = name
        .strip_suffix(".sha256")
        .or_else(|| name.strip_suffix(".sha512"))
        .unwrap_or(name);
    name.contains('/')
        || base.starts_with("kubernetes")
        || [".tar.gz", ".tgz", ".tar", ".zip", ".exe"]
            .iter()
            .any(|ext| base.ends_with(ext))
        || base != name
}

/// Every entry under `dir` (relative path, type), not following symbolic links.
fn walk(dir: &Path, cancel: &Control) -> std::io::Result<Vec<(String, std::fs::FileType)>> {
    let mut found = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((path, rel)) = stack.pop() {
        cancel.check()?;
        for entry in std::fs::read_dir(&path)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let file_type = entry.file_type()?;
            if file_type.is_dir() {
                stack.push((entry.path(), rel));
            } else {
                found.push((rel, file_type));
            }
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(found)
}

/// Problems with what the directory holds beyond the listed artifacts: files that look like
/// artifacts but are listed nowhere, and symbolic links or special files anywhere.
/// (Listed names were already checked one by one, so they are skipped here.)
fn unlisted(dir: &Path, listed: &BTreeSet<String>, cancel: &Control) -> Vec<Problem> {
    let entries = match walk(dir, cancel) {
        Ok(entries) => entries,
        Err(e) => {
            return vec![Problem {
                file: ".".to_string(),
                what: format!("cannot list the directory: {e}"),
            }]
        }
    };
    let mut problems = Vec::new();
    for (name, file_type) in entries {
        let sidecar_of = name
            .strip_suffix(".sha256")
            .or_else(|| name.strip_suffix(".sha512"));
        // `<file>.sig`: an SSH signature of a listed file, checked by --allowed-signers.
        let signature_of = name.strip_suffix(crate::attest::sign::SUFFIX);
        if listed.contains(&name)
            || LISTS.contains(&name.as_str())
            || sidecar_of.is_some_and(|base| listed.contains(base))
            || signature_of.is_some_and(|base| listed.contains(base) || LISTS.contains(&base))
            || name.ends_with(crate::outdir::TMP_SUFFIX)
            || super::ociimage::is_image_file(&name)
        {
            continue;
        }
        let what = if file_type.is_symlink() {
            let target = input::link_target(&dir.join(&name));
            format!("is a symbolic link{target}: an artifact must be the file itself, and verify does not follow links")
        } else if !file_type.is_file() {
            "is not a regular file (a FIFO, socket or device): it cannot be an artifact".to_string()
        } else if !looks_like_artifact(&name) {
            continue;
        } else {
            "is listed in no SHA256SUMS, SHA512SUMS or manifest.json: nothing vouches for it"
                .to_string()
        };
        problems.push(Problem { file: name, what });
    }
    problems
}

/// The directories `kbuild verify DIR` checks: DIR itself when it holds checksums or a
/// manifest, else its release-tars/ and extension/ subdirectories that do.
pub fn verify_targets(dir: &Path) -> Vec<PathBuf> {
    let holds = |d: &Path| {
        [
            "SHA256SUMS",
            "SHA512SUMS",
            manifest::FILE_NAME,
            SWAP_JOURNAL,
        ]
        .iter()
        .any(|f| d.join(f).exists())
    };
    if holds(dir) {
        return vec![dir.to_path_buf()];
    }
    [RELEASE_TARS, extension::DIR]
        .iter()
        .map(|sub| dir.join(sub))
        .filter(|d| holds(d))
        .collect()
}

/// Verifies `dir`. Returns None when it holds nothing to verify against.
/// Stops between files once `cancel` is set (the report is then incomplete).
pub fn verify_dir(dir: &Path, cancel: &Control) -> Option<Report> {
    if let Some(report) = swapping(dir) {
        return Some(report);
    }
    let report = verify_set(dir, cancel);
    // A replacement that started while this one read would have mixed two sets.
    swapping(dir).or(report)
}

/// A report of the one problem that matters when a replacement of the set was interrupted
/// (or is under way): the directory holds parts of two sets, and no file of it is vouched for.
fn swapping(dir: &Path) -> Option<Report> {
    std::fs::symlink_metadata(dir.join(SWAP_JOURNAL)).ok()?;
    Some(Report {
        problems: vec![Problem {
            file: SWAP_JOURNAL.to_string(),
            what: "a replacement of this release set was interrupted (or is under way): the directory holds parts of two sets, so none of it is verified; the next kbuild run on this --out finishes or undoes the replacement".to_string(),
        }],
        ..Report::default()
    })
}

fn verify_set(dir: &Path, cancel: &Control) -> Option<Report> {
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
    // A list that exists but could not be read is reported as such, not also as missing.
    let unreadable = |file: &str| report.problems.iter().any(|p| p.file == file);
    let absent: Vec<&str> = [
        (has256, "SHA256SUMS"),
        (has512, "SHA512SUMS"),
        (manifest.is_some(), manifest::FILE_NAME),
    ]
    .into_iter()
    .filter(|(present, file)| !present && !unreadable(file))
    .map(|(_, file)| file)
    .collect();
    for file in absent {
        report.problems.push(Problem {
            file: file.to_string(),
            what: "missing".to_string(),
        });
    }

    let by_manifest: BTreeMap<String, &manifest::Artifact> = manifest
        .iter()
        .flat_map(|m| m.artifacts.iter())
        .map(|a| (a.file.clone(), a))
        .collect();
    let mut names: BTreeSet<String> = sums
        .sha256
        .keys()
        .chain(sums.sha512.keys())
        .chain(by_manifest.keys())
        .cloned()
        .collect();
    // Present metadata is checked like an artifact, so an unlisted one is named.
    names.extend(
        SUMS_ONLY
            .iter()
            .filter(|f| dir.join(f).symlink_metadata().is_ok())
            .map(|f| f.to_string()),
    );

    if cancel.check().is_ok() {
        report.problems.extend(unlisted(dir, &names, cancel));
    }
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
                manifest.is_none()
                    || by_manifest.contains_key(&name)
                    || SUMS_ONLY.contains(&name.as_str()),
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
        let hashed = input::open_regular(&path, Links::Refuse)
            .and_then(|(file, _)| artifact::hash_reader(file).map_err(InputError::from));
        let (size, actual): (u64, Digests) = match hashed {
            Ok(found) => found,
            Err(InputError::NotFound) => {
                problem("missing".to_string());
                continue;
            }
            Err(InputError::Symlink) => {
                let target = input::link_target(&path);
                problem(format!("is a symbolic link{target}: an artifact must be the file itself, and verify does not follow links; not verified"));
                continue;
            }
            Err(e) => {
                problem(format!("{e}; not verified"));
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
                    what: e.to_string(),
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
    for image in manifest
        .iter()
        .flat_map(|m| super::verify_images::check(dir, m, cancel))
    {
        if image.problems.is_empty() {
            report.ok.push((image.file, image.size));
            continue;
        }
        report
            .problems
            .extend(image.problems.into_iter().map(|what| Problem {
                file: image.file.clone(),
                what,
            }));
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
            let (_, d) = artifact::hash_file(&dir.join(n)).unwrap();
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
    fn unlisted_artifacts_links_and_special_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        write_set(dir.path());
        std::fs::write(dir.path().join("extra.tar.gz"), b"x").unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"mine").unwrap();
        std::fs::create_dir_all(dir.path().join("amd64/linux")).unwrap();
        std::fs::write(dir.path().join("amd64/linux/kubectl"), b"x").unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("b"), b"bbb").unwrap();
        std::fs::remove_file(dir.path().join("b.tar.gz")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("b"), dir.path().join("b.tar.gz")).unwrap();
        let r = verify_dir(dir.path(), &Control::default()).unwrap();
        let text: Vec<String> = r.problems.iter().map(|p| p.to_string()).collect();
        let has = |prefix: &str| text.iter().any(|t| t.starts_with(prefix));
        assert!(has("extra.tar.gz: is listed in no SHA256SUMS"), "{text:?}");
        assert!(has("amd64/linux/kubectl: is listed in no"), "{text:?}");
        assert!(has("b.tar.gz: is a symbolic link"), "{text:?}");
        assert!(
            !has("notes.txt"),
            "a user's own file is left alone: {text:?}"
        );
        assert_eq!(r.ok.len(), 1, "only a.tar.gz passes");
        assert!(looks_like_artifact(
            "kubernetes-client-linux-amd64.tar.gz.sha512"
        ));
        assert!(!looks_like_artifact("README.md"));
    }

    /// A set as kbuild writes it now: the sums, written last, list manifest.json too.
    fn write_set_with_manifest(dir: &Path) -> Manifest {
        write_set(dir);
        let text = std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap();
        let artifacts = text
            .lines()
            .map(|line| {
                let file = line[66..].to_string();
                let (size, d) = artifact::hash_file(&dir.join(&file)).unwrap();
                serde_json::json!({"file": file, "kind": "client", "components": [], "size": size,
                    "sha256": d.sha256, "sha512": d.sha512, "sidecars": []})
            })
            .collect::<Vec<_>>();
        let manifest: Manifest = serde_json::from_value(serde_json::json!({
            "schemaVersion": 1, "kbuildVersion": "0", "kind": "release",
            "source": {"gitVersion": "v1.34.0", "treeState": "clean", "sourceDateEpoch": 1},
            "toolchain": {"goVersionFrom": "x", "compressor": "gzip", "gzipLevel": 6},
            "artifacts": artifacts,
        }))
        .unwrap();
        manifest.write(dir).unwrap();
        let mut sums = Vec::new();
        for n in ["a.tar.gz", "b.tar.gz", manifest::FILE_NAME] {
            sums.push((n.to_string(), artifact::hash_file(&dir.join(n)).unwrap().1));
        }
        checksum::write_sums(dir, &sums).unwrap();
        manifest
    }

    #[test]
    fn the_sums_cover_the_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let mut manifest = write_set_with_manifest(dir.path());
        let r = verify_dir(dir.path(), &Control::default()).unwrap();
        assert_eq!(r.problems, [], "a set as kbuild writes it passes");
        // A rewritten manifest (the artifacts untouched) no longer matches the sums.
        manifest.source.git_version = "v9.9.9".to_string();
        manifest.write(dir.path()).unwrap();
        let r = verify_dir(dir.path(), &Control::default()).unwrap();
        let text: Vec<String> = r.problems.iter().map(|p| p.to_string()).collect();
        assert!(
            text.contains(&"manifest.json: sha256 differs from SHA256SUMS".to_string()),
            "{text:?}"
        );
        // Sums that leave the manifest out (as kbuild wrote them before) are named.
        write_set(dir.path());
        let r = verify_dir(dir.path(), &Control::default()).unwrap();
        let text: Vec<String> = r.problems.iter().map(|p| p.to_string()).collect();
        assert!(
            text.contains(&"manifest.json: not listed in SHA256SUMS".to_string()),
            "{text:?}"
        );
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
