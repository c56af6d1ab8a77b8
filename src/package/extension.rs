//! The Docker Desktop extension layout: host binaries per image architecture, so that one
//! `docker buildx build --platform linux/amd64,linux/arm64` gives each image variant the
//! binaries of its own architecture (Docker Desktop pulls the variant matching the user's
//! machine, and runs `/darwin/kubectl`, `/linux/kubectl` or `/windows/kubectl.exe` from it):
//!
//! ```text
//! extension/amd64/darwin/kubectl     extension/arm64/darwin/kubectl
//! extension/amd64/linux/kubectl      extension/arm64/linux/kubectl
//! extension/amd64/windows/kubectl.exe extension/arm64/windows/kubectl.exe
//! extension/host-binaries.json       the metadata.json `host.binaries` fragment
//! extension/Dockerfile.snippet       ARG TARGETARCH + COPY extension/${TARGETARCH}/ /
//! extension/manifest.json
//! extension/SHA256SUMS, SHA512SUMS   every file above, written last
//! ```
//!
//! Files are mode 0755 and there are no symlinks (they break on Windows hosts). The
//! directory is assembled beside the old one and swapped in, so no stale binary survives.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::checksum;
use super::manifest::{self, Manifest};
use super::Control;
use crate::artifact::{Artifact, Digests, HashingWriter, SourceRecord, Toolchain};
use crate::error::{Error, Result};
use crate::kube::{platform, Component, Platform};
use crate::outdir::outputs;
use crate::outdir::{self, AtomicFile, TMP_SUFFIX};

pub const DIR: &str = "extension";
pub const METADATA_FRAGMENT: &str = "host-binaries.json";
pub const DOCKERFILE_SNIPPET: &str = "Dockerfile.snippet";
/// The files beside the binaries that the sums list but the manifest cannot (it is one of
/// them): what a consumer of the layout reads besides the binaries.
pub const LISTED_METADATA: &[&str] = &[METADATA_FRAGMENT, DOCKERFILE_SNIPPET, manifest::FILE_NAME];
/// The image variants Docker Desktop extensions ship (TARGETARCH values).
pub const IMAGE_ARCHES: &[&str] = &["amd64", "arm64"];
/// The host operating systems Docker Desktop runs on.
pub const HOST_OSES: &[&str] = &["darwin", "linux", "windows"];

/// darwin, linux and windows on amd64 and arm64.
pub fn default_platforms() -> Vec<Platform> {
    let mut out = Vec::new();
    for arch in IMAGE_ARCHES {
        for os in HOST_OSES {
            out.extend(
                Platform::all()
                    .iter()
                    .copied()
                    .filter(|p| p.os == *os && p.arch == *arch),
            );
        }
    }
    out
}

/// Refuses platforms that no extension image variant carries.
pub fn check_platforms(platforms: &[Platform]) -> Result<()> {
    for p in platforms {
        if !IMAGE_ARCHES.contains(&p.arch) || !HOST_OSES.contains(&p.os) {
            return Err(Error::usage(format!(
                "{p} is not a Docker Desktop host platform: extension images come in amd64 and arm64 variants for darwin, linux and windows hosts"
            ))
            .with_hint(format!("use some of: {}", platform::list(&default_platforms()))));
        }
    }
    Ok(())
}

/// Refuses components that are not client binaries (only those run on the user's host).
pub fn check_components(components: &[&Component]) -> Result<()> {
    for c in components {
        if !c.sets.contains(&crate::kube::TargetSet::Client) {
            return Err(Error::usage(format!(
                "{c} is not a client binary: an extension carries binaries that run on the user's machine"
            ))
            .with_hint("use --component kubectl (or kubectl-convert)"));
        }
    }
    Ok(())
}

/// `amd64/darwin/kubectl`, relative to extension/.
pub fn layout_path(platform: Platform, component: &Component) -> String {
    format!(
        "{}/{}/{}",
        platform.arch,
        platform.os,
        component.file_name(platform)
    )
}

/// `/darwin/kubectl`: where the binary is inside the image.
pub fn image_path(platform: Platform, component: &Component) -> String {
    format!("/{}/{}", platform.os, component.file_name(platform))
}

/// The `host.binaries` fragment of metadata.json, and warnings for host systems that only
/// one image variant has a binary for (metadata.json is shared by both variants).
pub fn host_binaries(
    components: &[&Component],
    platforms: &[Platform],
) -> (serde_json::Value, Vec<String>) {
    let mut by_os = serde_json::Map::new();
    let mut warnings = Vec::new();
    for os in HOST_OSES {
        let for_os: Vec<Platform> = platforms.iter().copied().filter(|p| p.os == *os).collect();
        let Some(first) = for_os.first() else {
            continue;
        };
        let arches: Vec<&str> = for_os.iter().map(|p| p.arch).collect();
        for arch in IMAGE_ARCHES {
            if !arches.contains(arch) {
                warnings.push(format!(
                    "the {arch} image variant has no {os} binaries, but metadata.json names them for every variant"
                ));
            }
        }
        let paths: Vec<serde_json::Value> = components
            .iter()
            .map(|c| serde_json::json!({ "path": image_path(*first, c) }))
            .collect();
        by_os.insert(os.to_string(), serde_json::Value::Array(paths));
    }
    let value = serde_json::json!({ "host": { "binaries": [serde_json::Value::Object(by_os)] } });
    (value, warnings)
}

/// The Dockerfile lines that copy the right variant's binaries into the image.
pub fn dockerfile_snippet() -> String {
    format!(
        "# Host binaries for a Docker Desktop extension, laid out by kbuild {}.\n\
         # Paste after FROM in the extension's Dockerfile. The build context is the directory\n\
         # that holds extension/ (kbuild's --out directory). Build both variants at once:\n\
         #   docker buildx build --platform linux/amd64,linux/arm64 -t <image> .\n\
         # TARGETARCH is amd64 or arm64, so each variant gets its own architecture's binaries\n\
         # at /darwin, /linux and /windows, as {METADATA_FRAGMENT} names them.\n\
         ARG TARGETARCH\n\
         COPY --chmod=0755 extension/${{TARGETARCH}}/ /\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// Copies one binary to `dest` with mode 0755, hashing it on the way.
fn copy_hashed(src: &Path, dest: &Path, cancel: &Control) -> Result<(u64, Digests)> {
    let mut input = std::fs::File::open(src).map_err(|e| Error::io("cannot read", src, e))?;
    let mut out = HashingWriter::new(AtomicFile::create(dest)?);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        cancel
            .check()
            .map_err(|_| Error::new(crate::error::Kind::Interrupted, "packaging stopped"))?;
        let n = std::io::Read::read(&mut input, &mut buf)
            .map_err(|e| Error::io("cannot read", src, e))?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])
            .map_err(|e| Error::io("cannot write", dest, e))?;
        cancel.advance(n as u64);
    }
    let (file, size, digests) = out.finish();
    file.set_mode(0o755)?;
    file.commit()?;
    Ok((size, digests))
}

/// Removes a staging directory unless disarmed.
struct Staging(PathBuf, bool);

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.1 {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn write_text(path: &Path, text: &str) -> Result<()> {
    let mut f = AtomicFile::create(path)?;
    f.write_all(text.as_bytes())
        .map_err(|e| Error::io("cannot write", path, e))?;
    f.commit()
}

/// What the manifest records of how the binaries were made.
pub struct Records {
    pub source: SourceRecord,
    pub toolchain: Toolchain,
    /// The plan they were built by (`Manifest::plan`).
    pub plan: Option<serde_json::Value>,
}

/// Lays out `<bin>/<os>/<arch>/<binary>` as `<out>/extension/...`; returns the manifest and
/// warnings.
pub fn write(
    bin: &Path,
    out: &Path,
    components: &[&'static Component],
    platforms: &[Platform],
    records: Records,
    cancel: &Control,
) -> Result<(Manifest, Vec<String>)> {
    let Records {
        source,
        toolchain,
        plan,
    } = records;
    let final_dir = out.join(DIR);
    let staging_dir = out.join(format!("{DIR}{}", TMP_SUFFIX));
    let old = out.join(format!("{DIR}.kbuild-old"));
    // The swap renames these; none may be a link (a rename would move the link, but a
    // link there is not kbuild's).
    for path in [&final_dir, &staging_dir, &old] {
        outdir::refuse_link(path)?;
    }
    outdir::record(out, DIR)?;
    let _ = std::fs::remove_dir_all(&staging_dir);
    // Made new here, so nothing can be in it yet.
    std::fs::create_dir(&staging_dir).map_err(|e| Error::io("cannot create", &staging_dir, e))?;
    let mut staging = Staging(staging_dir.clone(), false);
    let mut artifacts = Vec::new();
    for &platform in platforms {
        for component in components {
            let src = bin
                .join(platform.os)
                .join(platform.arch)
                .join(component.file_name(platform));
            if !src.is_file() {
                return Err(Error::usage(format!(
                    "cannot lay out the extension: {} is missing",
                    src.display()
                ))
                .with_hint("build it first (kbuild extension builds everything it lays out)"));
            }
            outputs::check_platform(&src, platform)?;
            let rel = layout_path(platform, component);
            let dest = staging_dir.join(&rel);
            let parent = dest.parent().expect("has a parent");
            std::fs::create_dir_all(parent).map_err(|e| Error::io("cannot create", parent, e))?;
            let (size, digests) = copy_hashed(&src, &dest, cancel)?;
            artifacts.push(Artifact {
                file: rel,
                kind: "extension-binary".to_string(),
                components: vec![component.name.to_string()],
                os: Some(platform.os.to_string()),
                arch: Some(platform.arch.to_string()),
                size,
                sha256: digests.sha256,
                sha512: digests.sha512,
                sidecars: Vec::new(),
                entry_count: None,
                contents: None,
                mode: Some("0755".to_string()),
            });
        }
    }
    artifacts.sort_by(|a, b| a.file.cmp(&b.file));
    let (fragment, warnings) = host_binaries(components, platforms);
    let mut fragment_text = serde_json::to_string_pretty(&fragment).expect("json");
    fragment_text.push('\n');
    write_text(&staging_dir.join(METADATA_FRAGMENT), &fragment_text)?;
    write_text(&staging_dir.join(DOCKERFILE_SNIPPET), &dockerfile_snippet())?;
    // The SBOM and provenance describe the binaries and are listed beside them.
    let attested = crate::attest::write(&crate::attest::Input {
        set: crate::attest::Set::Extension,
        dir: &staging_dir,
        artifacts: &artifacts,
        binaries: crate::attest::bare_binaries(&staging_dir, &artifacts),
        source: &source,
        toolchain: &toolchain,
        plan: plan.as_ref(),
        images: Vec::new(),
    })?;
    artifacts.extend(attested);
    artifacts.sort_by(|a, b| a.file.cmp(&b.file));
    let mut notes = warnings.clone();
    notes.push(crate::attest::RUN_TIMES_NOTE.to_string());
    let mut sums: Vec<(String, Digests)> = artifacts
        .iter()
        .map(|a| {
            (
                a.file.clone(),
                Digests {
                    sha256: a.sha256.clone(),
                    sha512: a.sha512.clone(),
                },
            )
        })
        .collect();
    let manifest = Manifest {
        schema_version: manifest::SCHEMA_VERSION,
        kbuild_version: env!("CARGO_PKG_VERSION").to_string(),
        kind: "extension".to_string(),
        source,
        toolchain,
        artifacts,
        notes,
        plan,
        images: Vec::new(),
    };
    manifest.write(&staging_dir)?;
    // The sums come last and list every file an extension author takes from here, so a
    // signature of SHA256SUMS covers the manifest and the metadata too.
    for name in LISTED_METADATA {
        sums.push(checksum::listed_file(&staging_dir, name)?);
    }
    checksum::write_sums(&staging_dir, &sums)?;

    // Swap the new directory in.
    let _ = std::fs::remove_dir_all(&old);
    if final_dir.exists() {
        std::fs::rename(&final_dir, &old)
            .map_err(|e| Error::io("cannot replace", &final_dir, e))?;
    }
    std::fs::rename(&staging_dir, &final_dir)
        .map_err(|e| Error::io("cannot write", &final_dir, e))?;
    staging.1 = true;
    let _ = std::fs::remove_dir_all(&old);
    Ok((manifest, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kubectl() -> &'static Component {
        Component::parse("kubectl").unwrap()
    }

    #[test]
    fn default_platforms_are_three_hosts_on_two_arches() {
        let got: Vec<String> = default_platforms().iter().map(|p| p.to_string()).collect();
        assert_eq!(
            got,
            [
                "darwin/amd64",
                "linux/amd64",
                "windows/amd64",
                "darwin/arm64",
                "linux/arm64",
                "windows/arm64"
            ]
        );
    }

    #[test]
    fn paths_per_image_arch_and_inside_the_image() {
        let win = Platform::parse("windows/arm64").unwrap();
        assert_eq!(layout_path(win, kubectl()), "arm64/windows/kubectl.exe");
        assert_eq!(image_path(win, kubectl()), "/windows/kubectl.exe");
    }

    #[test]
    fn metadata_fragment_names_each_host_once() {
        let (v, warnings) = host_binaries(&[kubectl()], &default_platforms());
        assert!(warnings.is_empty());
        assert_eq!(
            v,
            serde_json::json!({"host": {"binaries": [{
                "darwin": [{"path": "/darwin/kubectl"}],
                "linux": [{"path": "/linux/kubectl"}],
                "windows": [{"path": "/windows/kubectl.exe"}]
            }]}})
        );
    }

    #[test]
    fn a_host_missing_from_one_variant_is_warned_about() {
        let only = [Platform::parse("windows/amd64").unwrap()];
        let (_, warnings) = host_binaries(&[kubectl()], &only);
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("arm64"));
    }

    #[test]
    fn refuses_platforms_and_components_extensions_cannot_use() {
        assert!(check_platforms(&[Platform::parse("linux/s390x").unwrap()]).is_err());
        assert!(check_platforms(&default_platforms()).is_ok());
        assert!(check_components(&[Component::parse("kubelet").unwrap()]).is_err());
        assert!(check_components(&[kubectl()]).is_ok());
    }

    #[test]
    fn snippet_copies_the_target_arch_directory() {
        let s = dockerfile_snippet();
        assert!(s.contains("ARG TARGETARCH\n"));
        assert!(s.contains("COPY --chmod=0755 extension/${TARGETARCH}/ /\n"));
    }
}
