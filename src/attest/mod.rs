//! Attestations for a packaged set: what is inside it and how it was made, in formats
//! standard tools read, and signatures anyone can check without a service.
//!
//! - `sbom`: an SPDX 2.3 JSON SBOM: every artifact, every binary in it, and every Go
//!   module each binary embeds (read from the binary's own build information);
//! - `provenance`: SLSA v1 provenance in an in-toto Statement v1, one JSON line;
//! - `sign`: SSHSIG signatures (`ssh-keygen -Y sign` format, namespace `file`) and their
//!   verification against an allowed_signers file.
//!
//! The SBOM and provenance are written into the set's staging directory before its
//! checksums and manifest, so SHA256SUMS and manifest.json list them like any artifact.

pub mod allowed;
pub mod provenance;
pub mod sbom;
pub mod sign;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::artifact::{self, Artifact, SourceRecord, Toolchain};
use crate::error::{Error, Result};
use crate::kube::release::Layout;
use crate::outdir::AtomicFile;

/// Which set the attestations describe; it names their files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Set {
    /// release-tars (quick-release, package).
    Release,
    /// The extension layout.
    Extension,
}

impl Set {
    pub fn name(self) -> &'static str {
        match self {
            Set::Release => "release",
            Set::Extension => "extension",
        }
    }

    pub fn sbom_file(self) -> String {
        format!("kubernetes-{}{}", self.name(), sbom::SUFFIX)
    }

    pub fn provenance_file(self) -> String {
        format!("kubernetes-{}{}", self.name(), provenance::SUFFIX)
    }
}

/// Whether `name` is an attestation kbuild writes in a set's directory, or a signature of
/// one of them or of the sums (so that repackaging removes stale ones).
pub fn is_ours(name: &str) -> bool {
    let attestation = |n: &str| {
        n.starts_with("kubernetes-")
            && (n.ends_with(sbom::SUFFIX) || n.ends_with(provenance::SUFFIX))
    };
    match name.strip_suffix(sign::SUFFIX) {
        Some(signed) => sign::SUMS.contains(&signed) || attestation(signed),
        None => attestation(name),
    }
}

/// The binaries of a set that ships them bare (the extension layout): each artifact with an
/// os and arch is a binary, at `<dir>/<file>`.
pub fn bare_binaries(dir: &Path, artifacts: &[Artifact]) -> Vec<Binary> {
    artifacts
        .iter()
        .filter_map(|a| {
            Some(Binary {
                name: a.file.rsplit('/').next().unwrap_or(&a.file).to_string(),
                os: a.os.clone()?,
                arch: a.arch.clone()?,
                path: dir.join(&a.file),
                carried_by: Vec::new(),
                is_artifact: Some(a.file.clone()),
            })
        })
        .collect()
}

/// The binaries of release tarballs: each `bin/<os>/<arch>/<file>` once, with the
/// tarballs that carry it.
pub fn release_binaries(bin: &Path, layouts: &[Layout]) -> Vec<Binary> {
    let mut binaries: Vec<Binary> = Vec::new();
    for layout in layouts {
        let platform = layout.platform;
        for (_, component) in layout.binaries() {
            let name = component.file_name(platform);
            let path = bin.join(platform.os).join(platform.arch).join(&name);
            match binaries.iter_mut().find(|b| b.path == path) {
                Some(b) => b.carried_by.push(layout.file_name()),
                None => binaries.push(Binary {
                    name,
                    os: platform.os.to_string(),
                    arch: platform.arch.to_string(),
                    path,
                    carried_by: vec![layout.file_name()],
                    is_artifact: None,
                }),
            }
        }
    }
    binaries
}

/// One binary of the set: where its bytes are, and where the set carries it.
#[derive(Debug, Clone)]
pub struct Binary {
    /// The file name (`kubectl`, `kubectl.exe`).
    pub name: String,
    pub os: String,
    pub arch: String,
    /// The file itself (bin/<os>/<arch>/<name>).
    pub path: PathBuf,
    /// The artifacts (tarballs) that contain it.
    pub carried_by: Vec<String>,
    /// The artifact that is this binary itself (the extension layout ships binaries bare).
    pub is_artifact: Option<String>,
}

/// What the attestations describe.
pub struct Input<'a> {
    pub set: Set,
    /// The directory the artifacts were written to (the staging directory).
    pub dir: &'a Path,
    /// The artifacts written so far, with their digests.
    pub artifacts: &'a [Artifact],
    pub binaries: Vec<Binary>,
    pub source: &'a SourceRecord,
    pub toolchain: &'a Toolchain,
    /// The plan the binaries were built by (its command and inputs become part of the
    /// provenance's externalParameters); None when kbuild packaged binaries it did not build.
    pub plan: Option<&'a serde_json::Value>,
    /// The server images beside the set (release-images/), which the SBOM lists with their
    /// bases and binaries, and the provenance names as subjects.
    pub images: Vec<Image>,
}

/// A server image tar, as the attestations describe it.
#[derive(Debug, Clone)]
pub struct Image {
    /// Relative to the output directory: `release-images/<arch>/<binary>.tar`.
    pub file: String,
    pub digests: artifact::Digests,
    /// Its base image, and the digest (engine image id) it was taken by.
    pub base: String,
    pub base_digest: String,
}

/// When this kbuild process began: the provenance's startedOn.
static RUN_STARTED: std::sync::OnceLock<SystemTime> = std::sync::OnceLock::new();

/// Records the start of the run; main calls it first thing.
pub fn mark_run_started() {
    RUN_STARTED.get_or_init(SystemTime::now);
}

fn run_started() -> SystemTime {
    *RUN_STARTED.get_or_init(SystemTime::now)
}

/// The note the manifest carries about the provenance's only run-specific fields.
pub const RUN_TIMES_NOTE: &str = "the provenance's runDetails.metadata.startedOn and finishedOn are the times of this run, so the provenance (and its line in SHA256SUMS/SHA512SUMS) differs between runs; everything else in the SBOM and provenance depends only on the inputs, with timestamps from SOURCE_DATE_EPOCH";

/// Writes the SBOM, then the provenance (whose subjects include the SBOM), into
/// `input.dir`, and returns them as manifest artifacts.
pub fn write(input: &Input<'_>) -> Result<Vec<Artifact>> {
    let sbom_name = input.set.sbom_file();
    let document = sbom::document(input)?;
    let sbom = write_json(input.dir, &sbom_name, "sbom", &document, true)?;

    let mut subjects: Vec<(String, String)> = input
        .artifacts
        .iter()
        .map(|a| (a.file.clone(), a.sha256.clone()))
        .collect();
    subjects.push((sbom.file.clone(), sbom.sha256.clone()));
    subjects.extend(
        input
            .images
            .iter()
            .map(|i| (i.file.clone(), i.digests.sha256.clone())),
    );
    subjects.sort();
    let statement = provenance::statement(input, &subjects, run_started(), SystemTime::now());
    let provenance = write_json(
        input.dir,
        &input.set.provenance_file(),
        "provenance",
        &statement,
        false,
    )?;
    Ok(vec![sbom, provenance])
}

/// Writes `value` to `<dir>/<name>` (pretty, or as one line for JSON Lines) and describes
/// it as a manifest artifact.
fn write_json(
    dir: &Path,
    name: &str,
    kind: &str,
    value: &serde_json::Value,
    pretty: bool,
) -> Result<Artifact> {
    let encoded = if pretty {
        serde_json::to_string_pretty(value)
    } else {
        serde_json::to_string(value)
    };
    let mut text = encoded.map_err(|e| Error::internal(format!("cannot encode {name}: {e}")))?;
    text.push('\n');
    let path = dir.join(name);
    let mut file = AtomicFile::create(&path)?;
    file.write_all(text.as_bytes())
        .map_err(|e| Error::io("cannot write", &path, e))?;
    file.commit()?;
    let (size, digests) =
        artifact::hash_reader(text.as_bytes()).map_err(|e| Error::io("cannot hash", &path, e))?;
    Ok(Artifact {
        file: name.to_string(),
        kind: kind.to_string(),
        components: Vec::new(),
        os: None,
        arch: None,
        size,
        sha256: digests.sha256,
        sha512: digests.sha512,
        sidecars: Vec::new(),
        entry_count: None,
        contents: None,
        mode: None,
    })
}

/// Whole seconds since the epoch of a time of this run.
pub fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A repository URL without credentials (`https://user:token@host/x` -> `https://host/x`):
/// what the attestations record of the inputs is meant to be published.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_redacted_from_urls() {
        assert_eq!(
            redact_url("https://user:tok@github.com/k/k.git"),
            "https://github.com/k/k.git"
        );
        assert_eq!(
            redact_url("https://github.com/a@b"),
            "https://github.com/a@b"
        );
        assert_eq!(redact_url("/src/kubernetes"), "/src/kubernetes");
    }

    #[test]
    fn only_kbuild_attestations_and_signatures_are_ours() {
        assert!(is_ours("kubernetes-release.spdx.json"));
        assert!(is_ours("kubernetes-release.intoto.jsonl.sig"));
        assert!(is_ours("SHA256SUMS.sig"));
        assert!(is_ours("SHA512SUMS.sig"));
        assert!(!is_ours("notes.sig"));
        assert!(!is_ours("my.spdx.json"));
    }
}
