//! quick-release's server images (kube::release::build_server_images), end to end: which
//! images a release has and on which bases (planned), whether the engine has every base
//! (checked before any build), and, once the binaries are built, each base exported once
//! per architecture and each image tar written into a staging directory beside
//! `<out>/release-images/<arch>`, which replaces the old set once the release-tars are in.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Kind, Result};
use crate::kube::images::{self, BaseOverrides, TreePins, RELEASE_IMAGES};
use crate::kube::release::{Layout, TarballKind, TOP};
use crate::kube::Platform;
use crate::package::serverimage::{self, BaseImage, ImageRecord, ImageSpec};
use crate::package::tarball::{Entry, MODE_FILE};
use crate::plan::PlannedImage;

/// What the user asked of the images, resolved (`--no-images` is no request at all).
#[derive(Debug, Clone, Default)]
pub struct ImageRequest {
    pub overrides: BaseOverrides,
    pub docker_registry: Option<String>,
    pub docker_image_tag: Option<String>,
}

/// Whether `binary` is one upstream makes an image of.
pub fn has_image(binary: &str) -> bool {
    images::image_binary(binary).is_some()
}

/// The tree's pinned bases: build/common.sh when the tree has it, else upstream master's.
pub fn tree_pins(root: Option<&Path>) -> TreePins {
    root.map(|r| r.join("build/common.sh"))
        .and_then(|p| std::fs::read_to_string(p).ok())
        .map(|text| TreePins::parse(&text))
        .unwrap_or_else(TreePins::upstream)
}

/// Every image of the server layouts, with its base (ids from `found`, by reference).
pub fn planned(
    request: &ImageRequest,
    layouts: &[Layout],
    pins: &TreePins,
    git_version: &str,
    found: &BTreeMap<String, String>,
) -> Vec<PlannedImage> {
    let tag = images::docker_tag(git_version);
    let mut out = Vec::new();
    for layout in layouts.iter().filter(|l| l.kind == TarballKind::Server) {
        let arch = layout.platform.arch;
        for image in images::IMAGE_BINARIES {
            if !layout.components.iter().any(|c| c.name == image.binary) {
                continue;
            }
            let (base, base_ref) =
                images::base_reference(image.binary, arch, pins, &request.overrides);
            let mut names = vec![images::image_name(image.binary, arch, &tag)];
            names.extend(images::second_name(
                image.binary,
                arch,
                &tag,
                request.docker_registry.as_deref(),
                request.docker_image_tag.as_deref(),
            ));
            out.push(PlannedImage {
                binary: image.binary.to_string(),
                arch: arch.to_string(),
                names,
                base: base.name().to_string(),
                base_id: found.get(&key(&base_ref, arch)).cloned(),
                base_ref,
            });
        }
    }
    out
}

/// The key a base is found under: one reference for one architecture.
pub fn key(reference: &str, arch: &str) -> String {
    format!("{reference} for linux/{arch}")
}

/// The bases `wanted` (reference, arch) as the engine has them: id by key. A base that is
/// missing, or there for another platform, is refused (exit 3) when `refuse`; else it is
/// left out, and the plan says so.
pub async fn find_bases(
    wanted: &[(String, String)],
    refuse: bool,
) -> Result<BTreeMap<String, String>> {
    let mut found = BTreeMap::new();
    if wanted.is_empty() {
        return Ok(found);
    }
    // A plan is made where no engine may answer: its bases are then unknown, and said so.
    let docker = match crate::engine::client::connect_client().await {
        Ok(d) => d,
        Err(_) if !refuse => return Ok(found),
        Err(e) => return Err(e),
    };
    let mut problems = Vec::new();
    for (reference, arch) in wanted {
        match crate::engine::base_image::inspect(&docker, reference).await? {
            Some(f) if f.os == "linux" && f.arch == *arch => {
                found.insert(key(reference, arch), f.id);
            }
            Some(f) => problems.push(format!(
                "{reference} is {}/{} in the engine, the linux/{arch} images need a linux/{arch} base",
                f.os, f.arch
            )),
            None => problems.push(format!("{reference} (linux/{arch}) is not in the engine")),
        }
    }
    if problems.is_empty() || !refuse {
        return Ok(found);
    }
    Err(Error::new(
        Kind::Check,
        format!(
            "cannot build the server images: {}",
            problems.join("; ")
        ),
    )
    .with_hint(
        "put the base into the engine (docker pull REF, or docker load), or name one there with --base-image go-runner=REF --base-image distroless-iptables=REF (BASE@ARCH=REF for one architecture); or pass --no-images for the release set without server images",
    ))
}

/// The distinct (reference, arch) the planned images need.
pub fn wanted(planned: &[PlannedImage]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = planned
        .iter()
        .map(|p| (p.base_ref.clone(), p.arch.clone()))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The images written into the staging directory, and what the server tarballs get.
#[derive(Clone)]
pub struct Written {
    pub staging: PathBuf,
    pub records: Vec<ImageRecord>,
    /// `kubernetes/server/bin/<binary>.tar` and `.docker_tag` for each platform.
    pub server_entries: Vec<(Platform, Vec<Entry>)>,
}

/// `<out>/release-images/.<name>.<pid>.kbuild-tmp`: an architecture's new set, beside the
/// directory it replaces (`outdir::replace_set` wants it there), or the scratch space.
fn staged(images_dir: &Path, name: &str) -> PathBuf {
    images_dir.join(format!(
        ".{name}.{}{}",
        std::process::id(),
        crate::outdir::TMP_SUFFIX
    ))
}

/// Exports each base once per architecture (by its pinned id), then writes every planned
/// image from the binaries in `bin` (`<bin>/linux/<arch>/<binary>`).
pub async fn write(
    planned: &[PlannedImage],
    bin: &Path,
    out: &Path,
    git_version: &str,
    epoch: u64,
    ui: &crate::ui::Ui,
    interrupt: &crate::signals::Interrupt,
) -> Result<Written> {
    let staging = crate::outdir::ensure_dir(out, Path::new(RELEASE_IMAGES))?;
    let work = staged(&staging, "work");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| Error::io("cannot create", &work, e))?;
    let bases = match export_bases(planned, &work, ui).await {
        Ok(b) => b,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&work);
            return Err(e);
        }
    };
    let tag = images::docker_tag(git_version);
    let (all, st, b) = (planned.to_vec(), staging.clone(), bin.to_path_buf());
    // On blocking threads that stop on Ctrl-C, as the tarballs are written.
    let records = crate::package::worker::blocking(ui, "images", 0, interrupt, move |cancel| {
        write_all(&all, &bases, &b, &st, epoch, &tag, &cancel)
    })
    .await;
    let records = match records {
        Ok(r) => r,
        Err(e) => {
            // Nothing half-written stays: each architecture's staging and the scratch space.
            let mut names: Vec<&str> = planned.iter().map(|p| p.arch.as_str()).collect();
            names.push("work");
            for name in names {
                let _ = std::fs::remove_dir_all(staged(&staging, name));
            }
            return Err(e);
        }
    };
    // kube::release::create_docker_images_for_server: the tar and its tag in server/bin.
    let mut server_entries: Vec<(Platform, Vec<Entry>)> = Vec::new();
    for r in &records {
        let Some(platform) = Platform::all()
            .iter()
            .copied()
            .find(|p| p.os == "linux" && p.arch == r.arch)
        else {
            continue;
        };
        let at = match server_entries.iter().position(|(p, _)| *p == platform) {
            Some(at) => at,
            None => {
                server_entries.push((platform, Vec::new()));
                server_entries.len() - 1
            }
        };
        let dir = staged(&staging, &r.arch);
        server_entries[at].1.extend([
            Entry::file(
                format!("{TOP}/server/bin/{}", images::tar_name(&r.binary)),
                dir.join(images::tar_name(&r.binary)),
                MODE_FILE,
            ),
            Entry::file(
                format!("{TOP}/server/bin/{}", images::tag_file_name(&r.binary)),
                work_tag(&staging, &r.arch, &r.binary),
                MODE_FILE,
            ),
        ]);
    }
    Ok(Written {
        staging,
        records,
        server_entries,
    })
}

/// Each base the images need, exported once per architecture by its pinned id into `work`.
async fn export_bases(
    planned: &[PlannedImage],
    work: &Path,
    ui: &crate::ui::Ui,
) -> Result<BTreeMap<String, BaseImage>> {
    let docker = crate::engine::client::connect_client().await?;
    let mut bases: BTreeMap<String, BaseImage> = BTreeMap::new();
    for p in planned {
        let k = key(&p.base_ref, &p.arch);
        if bases.contains_key(&k) {
            continue;
        }
        let id = p
            .base_id
            .clone()
            .ok_or_else(|| Error::internal(format!("the plan has no image id for the base {k}")))?;
        ui.detail(&format!("exporting the base {k} ({id})"));
        let base = crate::engine::base_image::export(&docker, &p.base_ref, &id, work).await?;
        bases.insert(k, base);
    }
    Ok(bases)
}

/// Where an image's `.docker_tag` is kept until the server tarball takes it (upstream
/// puts it in server/bin only, not in release-images).
fn work_tag(staging: &Path, arch: &str, binary: &str) -> PathBuf {
    staged(staging, "work")
        .join(arch)
        .join(images::tag_file_name(binary))
}

fn write_all(
    planned: &[PlannedImage],
    bases: &BTreeMap<String, BaseImage>,
    bin: &Path,
    staging: &Path,
    epoch: u64,
    tag: &str,
    cancel: &crate::package::Control,
) -> Result<Vec<ImageRecord>> {
    let mut records = Vec::new();
    for p in planned {
        let dir = staged(staging, &p.arch);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("cannot create", &dir, e))?;
        let base = &bases[&key(&p.base_ref, &p.arch)];
        let binary = bin.join("linux").join(&p.arch).join(&p.binary);
        let spec = ImageSpec {
            binary: &p.binary,
            arch: &p.arch,
            names: p.names.clone(),
            bin: &binary,
            net_bind: images::image_binary(&p.binary).is_some_and(|b| b.net_bind),
            epoch,
            base,
        };
        let dest = dir.join(images::tar_name(&p.binary));
        let written = serverimage::write(&dest, &staged(staging, "work"), &spec, cancel)?;
        let tag_file = work_tag(staging, &p.arch, &p.binary);
        std::fs::create_dir_all(tag_file.parent().expect("parent"))
            .map_err(|e| Error::io("cannot create", &tag_file, e))?;
        // kube::release::create_docker_images_for_server: `echo "${docker_tag}" > ...`.
        crate::outdir::write_atomic(&tag_file, format!("{tag}\n").as_bytes())?;
        records.push(ImageRecord {
            binary: p.binary.clone(),
            arch: p.arch.clone(),
            file: format!(
                "{RELEASE_IMAGES}/{}/{}",
                p.arch,
                images::tar_name(&p.binary)
            ),
            names: p.names.clone(),
            size: written.size,
            sha256: written.digests.sha256,
            sha512: written.digests.sha512,
            config_digest: written.config_digest,
            manifest_digest: written.manifest_digest,
            base: base.reference.clone(),
            base_digest: base.digest.clone(),
        });
    }
    Ok(records)
}

/// Moves the staged image tars into `<out>/release-images/<arch>/`, replacing kbuild's
/// `.tar` files there (`outdir::replace_set`), and removes what was staged.
pub fn move_in(written: &Written, out: &Path) -> Result<()> {
    let mut arches: Vec<&str> = written.records.iter().map(|r| r.arch.as_str()).collect();
    arches.dedup();
    let result = arches.iter().try_for_each(|arch| {
        let rel = Path::new(RELEASE_IMAGES).join(arch);
        let dir = crate::outdir::ensure_dir(out, &rel)?;
        let old: Vec<String> = std::fs::read_dir(&dir)
            .map_err(|e| Error::io("cannot read", &dir, e))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tar"))
            .collect();
        crate::outdir::replace_set(&dir, &staged(&written.staging, arch), &old)
    });
    discard(written);
    result
}

/// Removes what `write` staged (after a failure, or once moved in).
pub fn discard(written: &Written) {
    let mut arches: Vec<&str> = written.records.iter().map(|r| r.arch.as_str()).collect();
    arches.push("work");
    for name in arches {
        let _ = std::fs::remove_dir_all(staged(&written.staging, name));
    }
}
