//! The packaging commands: `kbuild quick-release` (build the client, node and server sets,
//! then package), `kbuild extension` (build client binaries for every Docker Desktop host
//! and lay them out per image architecture), `kbuild package` (package an existing
//! bin/<os>/<arch>/ tree) and `kbuild verify` (re-hash what was packaged).
//!
//! Building goes through `build::Builder`; writing goes through `package`, on blocking
//! threads that stop (and remove their temporary files) on Ctrl-C or SIGTERM.

use std::path::{Path, PathBuf};

use crate::build::{self, Builder};
use crate::cli::{
    ExtensionArgs, PackageArgs, QuickReleaseArgs, SourceArgs, TargetArgs, VerifyArgs,
};
use crate::error::{Error, Kind, Result};
use crate::kube::component::{self, Component};
use crate::kube::release::{self as layout, Layout, TarballKind};
use crate::kube::{buildinfo, Platform, TargetSet};
use crate::outdir;
use crate::package::manifest::{Manifest, SourceRecord, Toolchain};
use crate::package::{self, extension, Control};
use crate::plan;
use crate::signals::Interrupt;
use crate::source::{self, Overrides, SourceInfo, TreeState};
use crate::ui::Ui;

/// Where release tarballs go under the output directory (upstream: _output/release-tars).
pub const RELEASE_TARS: &str = "release-tars";

/// The tree `--kube-root`, or `--ref` fetched into a checkout, with its facts reported.
fn get_source(args: &SourceArgs, engine: Option<&plan::EnginePlan>, ui: &Ui) -> Result<SourceInfo> {
    let spec = plan::resolve_source(args)?;
    let overrides = Overrides::from_env(args.git_version.clone())?;
    match engine {
        Some(engine) => build::get_source(&spec, &overrides, engine, ui),
        None => {
            let info = source::obtain(&spec, &overrides, ui)?;
            build::report_source(&info, ui);
            Ok(info)
        }
    }
}

/// Repository, ref and commit facts for the manifest.
/// The source the args name, once `out` is known not to be precious for it (before anything,
/// even a lock, is written).
fn source_checked_against(args: &SourceArgs, out: &Path) -> Result<crate::source::SourceSpec> {
    let spec = plan::resolve_source(args)?;
    outdir::check_not_precious(out, Some(spec.dir()))?;
    Ok(spec)
}

fn source_record(info: &SourceInfo) -> SourceRecord {
    let git = |args: &[&str]| {
        (info.tree_state != TreeState::Archive)
            .then(|| source::git(&info.root, args).ok())
            .flatten()
            .filter(|s| !s.is_empty())
    };
    // What --ref/--repo asked for; else the origin remote (or the path) and the tag at
    // HEAD (or the branch checked out).
    let origin = info.origin.as_ref();
    let repo = origin
        .map(|o| o.repo.clone())
        .or_else(|| git(&["config", "--get", "remote.origin.url"]))
        .map(|url| crate::redact::url(&url))
        .or_else(|| Some(info.root.display().to_string()));
    let git_ref = origin
        .map(|o| o.git_ref.clone())
        .or_else(|| git(&["describe", "--tags", "--exact-match", "HEAD"]))
        .or_else(|| git(&["symbolic-ref", "-q", "--short", "HEAD"]));
    SourceRecord {
        repo,
        git_ref,
        commit: info.commit.clone(),
        git_version: info.version.git_version.clone(),
        tree_state: info.tree_state.as_str().to_string(),
        source_date_epoch: info.source_date_epoch,
        src_content: None,
    }
}

/// The Go version(s) the binaries were linked with, from their embedded build info.
fn go_version_of(paths: &[PathBuf]) -> Option<String> {
    let mut versions: Vec<String> = paths
        .iter()
        .filter_map(|p| buildinfo::go_version(p).ok().flatten())
        .collect();
    versions.sort();
    versions.dedup();
    (!versions.is_empty()).then(|| versions.join(", "))
}

fn toolchain(info: &SourceInfo, builder: Option<&Builder>, binaries: &[PathBuf]) -> Toolchain {
    Toolchain {
        builder_image: builder.map(|b| b.image.clone()),
        builder_image_id: builder.map(|b| b.image_id.clone()),
        go_version: go_version_of(binaries),
        go_version_from:
            "the Go build information embedded in the binaries (what `go version <binary>` reads)"
                .to_string(),
        go_version_pinned: info.go_version.clone(),
        compressor: Toolchain::compressor(),
        gzip_level: Toolchain::gzip_level(),
    }
}

/// Runs blocking packaging work, showing the input bytes it has packaged against `total`
/// (a bar on a terminal), cancelling it on Ctrl-C/SIGTERM and waiting until it has
/// removed its temporary files.
pub(crate) async fn blocking<T: Send + 'static>(
    ui: &Ui,
    label: &str,
    total: u64,
    interrupt: &Interrupt,
    work: impl FnOnce(Control) -> Result<T> + Send + 'static,
) -> Result<T> {
    let control = Control::default();
    let task_control = control.clone();
    let bar = ui.bytes(label, total);
    let mut task = tokio::task::spawn_blocking(move || work(task_control));
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
    let joined = loop {
        tokio::select! {
            joined = &mut task => break joined,
            _ = tick.tick() => bar.set_position(control.progress().min(total)),
            err = interrupt.wait() => {
                control.cancel();
                let _ = task.await;
                bar.finish_and_clear();
                return Err(err);
            }
        }
    };
    bar.finish_and_clear();
    joined.map_err(|e| Error::internal(format!("packaging thread failed: {e}")))?
}

/// The total size of the files at `paths` (those that exist).
fn total_size(paths: impl Iterator<Item = PathBuf>) -> u64 {
    paths
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

/// One binary per (layout platform, component), to read the Go version from.
fn sample_binaries(bin: &Path, layouts: &[Layout]) -> Vec<PathBuf> {
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for l in layouts {
        if seen.contains(&l.platform) {
            continue;
        }
        seen.push(l.platform);
        if let Some(c) = l.components.first() {
            out.push(
                bin.join(l.platform.os)
                    .join(l.platform.arch)
                    .join(c.file_name(l.platform)),
            );
        }
    }
    out
}

/// What `package_release` packages.
struct Packaging<'a> {
    /// The bin/<os>/<arch>/ tree.
    bin: PathBuf,
    /// The output directory; tarballs go to its release-tars/.
    out: &'a Path,
    /// The output directory relative to the tree, when it is inside it (git-ignored).
    out_in_tree: Option<PathBuf>,
    info: &'a SourceInfo,
    layouts: Vec<Layout>,
    toolchain: Toolchain,
    notes: Vec<String>,
}

/// Packages the layouts into `<out>/release-tars` and reports the artifacts.
async fn package_release(what: Packaging<'_>, ui: &Ui, interrupt: &Interrupt) -> Result<()> {
    let Packaging {
        bin,
        out,
        out_in_tree,
        info,
        layouts,
        toolchain,
        notes,
    } = what;
    let tars = out.join(RELEASE_TARS);
    ui.phase(
        "package",
        &format!(
            "{} plus the source and final tarballs into {}",
            crate::ui::count(layouts.len(), "binary tarball", "binary tarballs"),
            tars.display()
        ),
    );
    let source = source_record(info);
    let info = info.clone();
    let dest = tars.clone();
    let total = total_size(layouts.iter().flat_map(|l| {
        l.binaries().into_iter().map(|(_, c)| {
            bin.join(l.platform.os)
                .join(l.platform.arch)
                .join(c.file_name(l.platform))
        })
    }));
    let packaged = blocking(ui, "package", total, interrupt, move |cancel| {
        package::release::package(
            package::release::Input {
                bin: &bin,
                out: &dest,
                out_in_tree: out_in_tree.as_deref(),
                info: &info,
                layouts,
                source,
                toolchain,
            },
            notes,
            &cancel,
        )
    })
    .await?;
    let mut written = 0;
    for a in &packaged.manifest.artifacts {
        written += a.size;
        ui.artifact_digest(
            &format!("{RELEASE_TARS}/{}", a.file),
            a.size,
            Some(&a.sha256),
        );
    }
    for note in &packaged.manifest.notes {
        ui.info(&format!("note: {note}"));
    }
    ui.detail(&format!(
        "packaging took {:.2}s",
        packaged.elapsed.as_secs_f64()
    ));
    ui.info(&format!(
        "check them with: kbuild verify {}",
        tars.display()
    ));
    ui.finished(&format!(
        "packaged {} ({}, {}) with SHA256SUMS, SHA512SUMS, manifest.json, an SPDX SBOM and SLSA provenance",
        crate::ui::count(
            packaged
                .manifest
                .artifacts
                .iter()
                .filter(|a| a.file.ends_with(".tar.gz"))
                .count(),
            "tarball",
            "tarballs"
        ),
        crate::engine::docker::human_bytes(written),
        crate::ui::count(
            packaged.threads,
            "compression thread",
            "compression threads"
        ),
    ));
    Ok(())
}

/// `kbuild quick-release`.
pub async fn quick_release(args: &QuickReleaseArgs, ui: &Ui, interrupt: &Interrupt) -> Result<()> {
    let sign_key = crate::attest::command::load_sign_key(args.sign_key.as_deref())?;
    let platforms = plan::resolve_platforms(&args.target)?;
    // Sized for a quick-release: upstream documents 8 GB for building every set.
    let engine = plan::resolve_engine_for(&args.engine, crate::checks::Profile::QuickRelease)?;
    // The tree first, then the output directory (lock.rs: that order everywhere).
    let _tree_lock = crate::lock::acquire_source(
        &source_checked_against(&args.source, &args.out)?,
        ui,
        interrupt,
    )
    .await?;
    let info = get_source(&args.source, Some(&engine), ui)?;
    let outdir = outdir::claim(&args.out, &info.root)?;
    let _lock = crate::lock::acquire(&args.out, ui, interrupt).await?;
    let root = info.root.clone();
    let has = |c: &Component| c.exists_in(&root);
    let release = layout::plan(&platforms, &has);
    let mut notes = Vec::new();
    if !release.missing.is_empty() {
        let names: Vec<&str> = release.missing.iter().map(|c| c.name).collect();
        let note = format!(
            "the tree lacks these upstream targets, so no tarball holds them: {}",
            names.join(", ")
        );
        ui.info(&note);
        notes.push(note);
    }
    for set in [TargetSet::Server, TargetSet::Node] {
        let skipped: Vec<Platform> = release
            .skipped
            .iter()
            .filter(|(s, _)| *s == set)
            .map(|(_, p)| *p)
            .collect();
        if !skipped.is_empty() {
            let note = format!(
                "no {} binaries or tarball for {}: upstream builds the {} set for {} only",
                set.name(),
                crate::kube::platform::list(&skipped),
                set.name(),
                crate::kube::platform::list(set.platforms())
            );
            ui.info(&note);
            notes.push(note);
        }
    }
    if release.jobs.is_empty() {
        return Err(Error::usage(format!(
            "{} has none of the upstream client, node or server targets",
            info.root.display()
        ))
        .with_hint("point --kube-root at a Kubernetes tree (cmd/kubectl, cmd/kubelet, ...)"));
    }
    let builder = Builder::prepare(info, &engine, ui, interrupt).await?;
    for job in &release.jobs {
        builder
            .build(
                &format!("quick-release-{}", job.name),
                &job.components,
                &job.platforms,
                &args.out,
                ui,
                interrupt,
            )
            .await?;
    }
    let layouts = layout::layouts(&platforms, &has);
    let bin = args.out.join("bin");
    let toolchain = toolchain(
        &builder.info,
        Some(&builder),
        &sample_binaries(&bin, &layouts),
    );
    let what = Packaging {
        bin,
        out: &args.out,
        out_in_tree: outdir.in_tree,
        info: &builder.info,
        layouts,
        toolchain,
        notes,
    };
    package_release(what, ui, interrupt).await?;
    crate::attest::command::sign_after_run(sign_key.as_ref(), &args.out.join(RELEASE_TARS), ui)
}

/// `kbuild package`.
pub async fn package(args: &PackageArgs, ui: &Ui, interrupt: &Interrupt) -> Result<()> {
    // `--out /` must be refused before its bin/ (then /bin) is scanned or read.
    outdir::check_not_precious(&args.out, None)?;
    let sign_key = crate::attest::command::load_sign_key(args.sign_key.as_deref())?;
    let bin = args.bin.clone().unwrap_or_else(|| args.out.join("bin"));
    if !bin.is_dir() {
        return Err(Error::usage(format!(
            "{} is not a directory of built binaries",
            bin.display()
        ))
        .with_hint("name the bin/<os>/<arch>/ tree with --bin (kbuild build writes <out>/bin)"));
    }
    // Links and special files are refused here, before anything is read or written.
    let found = package::bintree::scan(&bin)?;
    let platforms = if args.target.platforms.is_empty() {
        package::release::platforms_in(&bin)
    } else {
        plan::resolve_platforms(&args.target)?
    };
    if platforms.is_empty() {
        return Err(Error::usage(format!(
            "{} holds no <os>/<arch>/ directories",
            bin.display()
        ))
        .with_hint("build first: kbuild build kubectl --platform linux/amd64 --out out"));
    }
    // The tree first, then the output directory (lock.rs: that order everywhere).
    let _tree_lock = crate::lock::acquire_source(
        &source_checked_against(&args.source, &args.out)?,
        ui,
        interrupt,
    )
    .await?;
    let info = get_source(&args.source, None, ui)?;
    let outdir = outdir::claim(&args.out, &info.root)?;
    let _lock = crate::lock::acquire(&args.out, ui, interrupt).await?;
    let root = info.root.clone();
    let has = |c: &Component| c.exists_in(&root);
    let mut layouts = Vec::new();
    for l in layout::layouts(&platforms, &has) {
        // A tarball is made when its set's own binaries were built; the client binaries
        // it also carries must then be there too (packaging says which are missing).
        let set = match l.kind {
            TarballKind::Client => TargetSet::Client,
            TarballKind::Node => TargetSet::Node,
            _ => TargetSet::Server,
        };
        let own_built = l
            .components
            .iter()
            .filter(|c| c.sets.contains(&set))
            .any(|c| {
                bin.join(l.platform.os)
                    .join(l.platform.arch)
                    .join(c.file_name(l.platform))
                    .is_file()
            });
        if own_built {
            layouts.push(l);
        } else {
            ui.info(&format!(
                "no {} binaries for {} in {}: no {}",
                set.name(),
                l.platform,
                bin.display(),
                l.file_name()
            ));
        }
    }
    if layouts.is_empty() {
        return Err(
            Error::usage(format!("nothing to package in {}", bin.display())).with_hint(
                "build the client, node or server binaries first (kbuild build ... --out <dir>)",
            ),
        );
    }
    let mut notes = vec!["packaged by `kbuild package` from binaries kbuild did not build in this run: builderImage is unknown".to_string()];
    // Nothing the tree holds is dropped unsaid: a warning line and a manifest note each.
    for (rel, why) in package::bintree::not_packaged(&found, &layouts, &platforms, &has) {
        ui.warn(&format!(
            "not packaged: {}: {why}",
            bin.join(&rel).display()
        ));
        notes.push(format!("{rel} in the binary tree is not packaged: {why}"));
    }
    for (rel, mode) in package::bintree::not_executable(&found, &layouts) {
        ui.warn(&format!(
            "{} is not executable (mode {mode:04o}); its tarball entries get mode 0755, as upstream's binaries have",
            bin.join(&rel).display()
        ));
    }
    let toolchain = toolchain(&info, None, &sample_binaries(&bin, &layouts));
    let what = Packaging {
        bin,
        out: &args.out,
        out_in_tree: outdir.in_tree,
        info: &info,
        layouts,
        toolchain,
        notes,
    };
    package_release(what, ui, interrupt).await?;
    crate::attest::command::sign_after_run(sign_key.as_ref(), &args.out.join(RELEASE_TARS), ui)
}

/// `--component` (default kubectl) and `--platform` (default every host on both arches).
fn extension_inputs(args: &ExtensionArgs) -> Result<(Vec<&'static Component>, Vec<Platform>)> {
    let mut components: Vec<&'static Component> = Vec::new();
    let names = if args.components.is_empty() {
        vec!["kubectl".to_string()]
    } else {
        args.components.clone()
    };
    for name in &names {
        let c = Component::parse(name)?;
        if !components.contains(&c) {
            components.push(c);
        }
    }
    extension::check_components(&components)?;
    let platforms = if args.platforms.is_empty() {
        extension::default_platforms()
    } else {
        plan::resolve_platforms(&TargetArgs {
            platforms: args.platforms.clone(),
        })?
    };
    extension::check_platforms(&platforms)?;
    component::check_pairs(&components, &platforms)?;
    Ok((components, platforms))
}

/// `kbuild extension`.
pub async fn extension(args: &ExtensionArgs, ui: &Ui, interrupt: &Interrupt) -> Result<()> {
    let (components, platforms) = extension_inputs(args)?;
    let sign_key = crate::attest::command::load_sign_key(args.sign_key.as_deref())?;
    let image = crate::extension_image::prepare(&args.image)?;
    let engine = plan::resolve_engine(&args.engine)?;
    // The tree first, then the output directory (lock.rs: that order everywhere).
    let _tree_lock = crate::lock::acquire_source(
        &source_checked_against(&args.source, &args.out)?,
        ui,
        interrupt,
    )
    .await?;
    let info = get_source(&args.source, Some(&engine), ui)?;
    outdir::claim(&args.out, &info.root)?;
    let _lock = crate::lock::acquire(&args.out, ui, interrupt).await?;
    for c in &components {
        if !c.exists_in(&info.root) {
            return Err(Error::usage(format!(
                "{} has no {} ({}/ is missing)",
                info.root.display(),
                c.name,
                c.target
            ))
            .with_hint("choose a component the tree has with --component"));
        }
    }
    let builder = Builder::prepare(info, &engine, ui, interrupt).await?;
    let built = builder
        .build(
            "extension",
            &components,
            &platforms,
            &args.out,
            ui,
            interrupt,
        )
        .await?;
    let binaries: Vec<PathBuf> = built.binaries.iter().map(|(p, _)| p.clone()).collect();
    let toolchain = toolchain(&builder.info, Some(&builder), &binaries);
    let source = source_record(&builder.info);
    let bin = args.out.join("bin");
    let out = args.out.clone();
    ui.phase(
        "package",
        &format!("extension layout in {}", out.join(extension::DIR).display()),
    );
    let total = total_size(binaries.iter().cloned());
    let (components_kept, platforms_kept) = (components.clone(), platforms.clone());
    let (manifest, warnings) = blocking(ui, "extension", total, interrupt, move |cancel| {
        extension::write(
            &bin,
            &out,
            &components,
            &platforms,
            source,
            toolchain,
            &cancel,
        )
    })
    .await?;
    for w in &warnings {
        ui.warn(w);
    }
    if let Some(plan) = image {
        let (info, c, p) = (&builder.info, &components_kept, &platforms_kept);
        crate::extension_image::run(plan, &args.out, info, c, p, ui, interrupt).await?;
    }
    report_extension(&manifest, &args.out, ui);
    crate::attest::command::sign_after_run(sign_key.as_ref(), &args.out.join(extension::DIR), ui)
}

fn report_extension(manifest: &Manifest, out: &Path, ui: &Ui) {
    for a in &manifest.artifacts {
        ui.artifact_digest(
            &format!("{}/{}", extension::DIR, a.file),
            a.size,
            Some(&a.sha256),
        );
    }
    let dir = out.join(extension::DIR);
    ui.finished(&format!(
        "laid out {} in {}; metadata.json fragment: {}, Dockerfile lines: {}",
        crate::ui::count(manifest.artifacts.len(), "binary", "binaries"),
        dir.display(),
        dir.join(extension::METADATA_FRAGMENT).display(),
        dir.join(extension::DOCKERFILE_SNIPPET).display()
    ));
}

/// The directories `kbuild verify DIR` checks: DIR itself when it holds checksums or a
/// manifest, else its release-tars/ and extension/ subdirectories that do.
pub(crate) fn verify_targets(dir: &Path) -> Vec<PathBuf> {
    let holds = |d: &Path| {
        ["SHA256SUMS", "SHA512SUMS", package::manifest::FILE_NAME]
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

/// `kbuild verify`.
pub async fn verify(args: &VerifyArgs, ui: &Ui, interrupt: &Interrupt) -> Result<()> {
    let signers = args
        .allowed_signers
        .as_deref()
        .map(crate::attest::sign::load_allowed_signers)
        .transpose()?;
    let targets = verify_targets(&args.dir);
    if targets.is_empty() {
        return Err(Error::usage(format!(
            "{} holds no SHA256SUMS, SHA512SUMS or manifest.json (nor do its release-tars/ or extension/)",
            args.dir.display()
        ))
        .with_hint("point kbuild verify at a directory kbuild packaged, e.g. out/release-tars"));
    }
    let mut problems = Vec::new();
    let mut signature_problems = false;
    let mut checked = 0;
    for dir in targets {
        ui.phase("verify", &dir.display().to_string());
        let d = dir.clone();
        let report = blocking(ui, "verify", 0, interrupt, move |cancel| {
            Ok(package::verify::verify_dir(&d, &cancel))
        })
        .await?;
        let Some(report) = report else { continue };
        ui.detail(&format!("checked against {}", report.sources.join(", ")));
        for (name, size) in &report.ok {
            ui.artifact(&format!("OK {}", dir.join(name).display()), *size);
        }
        checked += report.ok.len();
        for p in &report.problems {
            let shown = format!("{}: {}", dir.join(&p.file).display(), p.what);
            ui.warn(&shown);
            problems.push(shown);
        }
        if let Some(signers) = &signers {
            for (file, what) in crate::attest::command::check_signatures(&dir, signers, ui) {
                signature_problems = true;
                let shown = format!("{}: {what}", dir.join(file).display());
                ui.warn(&shown);
                problems.push(shown);
            }
        }
    }
    if interrupt.fired() {
        return Err(interrupt.wait().await);
    }
    if !problems.is_empty() {
        let hint = if signature_problems {
            "a signature that is missing, made by a key the allowed signers file does not list, or that does not match its file means the set is not the one that was signed: get the set and its .sig files again from the release, and check that --allowed-signers lists the release key"
        } else {
            "these files are not what kbuild wrote: download or package them again, and check what else touched them"
        };
        return Err(Error::new(
            Kind::Verify,
            format!(
                "verification failed ({}):\n  {}",
                crate::ui::count(problems.len(), "problem", "problems"),
                problems.join("\n  ")
            ),
        )
        .with_hint(hint));
    }
    let signed = if signers.is_some() {
        ", and every signature is good"
    } else {
        ""
    };
    ui.finished(&format!(
        "verified {}: every checksum, sidecar and manifest entry matches{signed}",
        crate::ui::count(checked, "artifact", "artifacts")
    ));
    Ok(())
}
