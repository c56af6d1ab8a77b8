//! Command entry points, one file each: `kbuild quick-release`, `kbuild extension`,
//! `kbuild package`, `kbuild verify`, `kbuild sign` and `kbuild source`. This module holds
//! what the packaging ones share. Commands call down into source, checks, engine, package
//! and attest; nothing below calls up into them.
//!
//! Building goes through `build::Builder`; writing goes through `package`, on blocking
//! threads that stop (and remove their temporary files) on Ctrl-C or SIGTERM.

pub mod cache;
pub mod clean;
pub mod doctor;
pub mod smoke;

mod build_cmd;
pub mod building;
mod extension;
mod package;
mod quick_release;
pub mod replay;
mod sign;
mod source;
mod verify;

pub use build_cmd::build;
pub use extension::extension;
pub use package::package;
pub use quick_release::quick_release;
pub use sign::sign;
pub use source::source;
pub use verify::verify;

use std::path::{Path, PathBuf};

use crate::cli::SourceArgs;
use crate::error::Result;
use crate::exec::builder::{self, Builder};
use crate::kube::buildinfo;
use crate::kube::release::{Layout, RELEASE_TARS};
use crate::outdir;
use crate::package::manifest::{SourceRecord, Toolchain};
use crate::package::worker::blocking;
use crate::resolve;
use crate::signals::Interrupt;
use crate::source::{Overrides, SourceInfo, TreeState};
use crate::ui::Ui;

/// How a command is invoked: run, print its plan and run nothing, or run a saved plan.
pub enum Mode {
    Run,
    Plan { json: bool },
    Replay(Box<crate::plan::Plan>),
}

/// The command's resolved inputs (for the plan and the manifest) and how it is invoked.
pub struct Invocation {
    pub inputs: Vec<crate::plan::Input>,
    pub mode: Mode,
}

impl Invocation {
    pub fn run(inputs: Vec<crate::plan::Input>) -> Invocation {
        Invocation {
            inputs,
            mode: Mode::Run,
        }
    }

    /// Planning only: print it (`Some(json)`) instead of running.
    pub fn planning(&self) -> Option<bool> {
        match self.mode {
            Mode::Plan { json } => Some(json),
            _ => None,
        }
    }

    /// Before running: a saved plan must be this plan.
    pub fn check(&self, now: &crate::plan::Plan) -> Result<()> {
        match &self.mode {
            Mode::Replay(saved) => replay::check_same(saved, now),
            _ => Ok(()),
        }
    }

    /// Where each job last ran in `out`: the saved plan's record when running one (it
    /// replays its own assignment), else what the last run there wrote (read-only).
    pub fn last_engines(&self, out: &std::path::Path) -> crate::plan::LastEngines {
        match self.saved() {
            Some(saved) => saved.last_engines.clone(),
            None => crate::outdir::last_engines::read(out),
        }
    }

    /// The saved plan, when running one.
    pub fn saved(&self) -> Option<&crate::plan::Plan> {
        match &self.mode {
            Mode::Replay(saved) => Some(saved),
            _ => None,
        }
    }

    /// Before a `--ref` is fetched: the ref must still name the commit the plan pinned.
    pub fn check_remote(&self, spec: &crate::source::SourceSpec) -> Result<()> {
        match self.saved() {
            Some(saved) => replay::check_remote(saved, spec),
            None => Ok(()),
        }
    }

    /// After the source is known: a saved plan's tree must be the tree now (its commit and
    /// the digest of its changes).
    pub fn check_source(&self, info: &SourceInfo) -> Result<()> {
        match self.saved() {
            Some(saved) => replay::check_source(saved, info),
            None => Ok(()),
        }
    }

    /// The image a saved plan requires of the engine (None: any).
    pub fn expected_image(&self) -> Result<Option<builder::ImagePin>> {
        match self.saved() {
            Some(saved) => replay::expected_image(saved),
            None => Ok(None),
        }
    }

    /// Whether the tree was defaulted (no `--kube-root` and no `--ref` among the inputs).
    fn tree_defaulted(&self) -> bool {
        !self
            .inputs
            .iter()
            .any(|i| i.name == "kube-root" || i.name == "ref")
    }
}

/// The source as a plan sees it without changing anything: a tree is inspected, a `--ref`
/// is not fetched (its facts come with the fetch), with a note saying so. A tree named
/// explicitly may be one that is not here (planned here, run elsewhere); the defaulted one
/// (the current directory) must be readable, or the plan is refused as the run would be.
pub fn plan_source(
    spec: &crate::source::SourceSpec,
    overrides: &Overrides,
    invocation: &Invocation,
) -> Result<(Option<SourceInfo>, Vec<String>)> {
    match spec {
        crate::source::SourceSpec::Tree(root) => {
            let inspected = crate::source::check_tree(root)
                .and_then(|root| crate::source::inspect(&root, overrides));
            match inspected {
                Ok(info) => Ok((Some(info), Vec::new())),
                Err(e) if invocation.tree_defaulted() => Err(e),
                // A plan is also made where the tree is not (yet): say so and go on.
                Err(e) => Ok((
                    None,
                    vec![format!(
                        "the tree {} cannot be read here ({}): its commit, version variables and targets are known when the plan runs where it is",
                        root.display(),
                        e.message
                    )],
                )),
            }
        }
        crate::source::SourceSpec::Git { repo, git_ref, dir } => Ok((
            None,
            vec![format!(
                "{} at {git_ref} is fetched into {} when the plan runs; its commit, version variables (KUBE_GIT_*) and which upstream targets it has are known then (`kbuild source --ref {git_ref}` first, then plan with --kube-root, for a plan that names them)",
                crate::redact::url(repo),
                dir.display()
            )],
        )),
    }
}

/// The tree the jobs build: the facts' root and version variables, or for a source not
/// read yet its directory and no variables.
pub fn tree_of<'a>(
    spec: &'a crate::source::SourceSpec,
    info: Option<&'a SourceInfo>,
) -> crate::resolve::jobs::Tree<'a> {
    match info {
        Some(info) => crate::resolve::jobs::Tree::of(info),
        None => crate::resolve::jobs::Tree {
            root: spec.dir(),
            version_env: Vec::new(),
        },
    }
}

/// The plan's engine part: the settings every job shares (on the first engine), the
/// engines and the checks.
pub fn engines_part(
    plan: &mut crate::plan::Plan,
    settings: &crate::resolve::EngineSettings,
    slots: &[crate::exec::settings::EngineSlot],
) {
    if let Some(first) = slots.first() {
        plan.engine = Some(crate::resolve::jobs::engine_choice(settings, &first.facts));
    }
    plan.engines = slots
        .iter()
        .map(|s| crate::plan::PlannedEngine {
            name: s.name.clone(),
            endpoint: s.facts.endpoint.clone(),
            jobs: s.capacity,
        })
        .collect();
    plan.checks = crate::resolve::jobs::check_steps(settings.kind, &settings.checks, true);
}

/// What a plan of a building command needs, asked without changing anything: the source's
/// facts (None for a tree not readable here or an unfetched ref), the engines, and notes on
/// what stays unknown until the run.
pub async fn planning_facts(
    spec: &crate::source::SourceSpec,
    overrides: &Overrides,
    settings: &crate::resolve::EngineSettings,
    invocation: &Invocation,
) -> Result<(
    Option<SourceInfo>,
    Vec<crate::exec::settings::EngineSlot>,
    Vec<String>,
)> {
    let (info, mut notes) = plan_source(spec, overrides, invocation)?;
    let (slots, more) = crate::resolve::schedule::plan_slots(info.as_ref(), settings).await?;
    notes.extend(more);
    Ok((info, slots, notes))
}

/// The plan's source part: the facts, or for an unfetched ref what is known: the commit the
/// ref names now (asked read-only), which the run's fetch must bring. Roots are absolute, so
/// that a plan run from another directory builds the planned tree.
pub fn source_part(
    spec: &crate::source::SourceSpec,
    info: Option<&SourceInfo>,
    git_version: Option<&str>,
) -> Result<crate::plan::SourceFacts> {
    Ok(match (info, spec) {
        (Some(info), _) => crate::resolve::jobs::source_facts(info)?,
        (None, crate::source::SourceSpec::Git { repo, git_ref, dir }) => crate::plan::SourceFacts {
            root: crate::resolve::jobs::absolute(dir),
            repo: Some(crate::redact::url(repo)),
            git_ref: Some(git_ref.clone()),
            // Unknown when the repository does not answer: such a plan is refused at run.
            commit: crate::source::checkout::remote_commit(repo, git_ref)
                .ok()
                .flatten(),
            changes: None,
            tree_state: "unknown until fetched".to_string(),
            git_version: git_version
                .unwrap_or("from the ref once fetched")
                .to_string(),
            source_date_epoch: 0,
            go_version: None,
        },
        (None, crate::source::SourceSpec::Tree(root)) => crate::plan::SourceFacts {
            root: crate::resolve::jobs::absolute(root),
            repo: None,
            git_ref: None,
            commit: None,
            changes: None,
            tree_state: "unknown".to_string(),
            git_version: git_version.unwrap_or("unknown").to_string(),
            source_date_epoch: 0,
            go_version: None,
        },
    })
}

/// The tree `--kube-root`, or `--ref` fetched into a checkout, with its facts reported.
fn get_source(
    args: &SourceArgs,
    engine: Option<&resolve::EngineSettings>,
    ui: &Ui,
) -> Result<SourceInfo> {
    let spec = resolve::resolve_source(args)?;
    let overrides = Overrides::from_env(args.git_version.clone())?;
    match engine {
        Some(engine) => builder::get_source(&spec, &overrides, engine, ui),
        None => {
            let info = crate::source::obtain(&spec, &overrides, ui)?;
            builder::report_source(&info, ui);
            Ok(info)
        }
    }
}

/// Repository, ref and commit facts for the manifest.
/// The source the args name, once `out` is known not to be precious for it (before anything,
/// even a lock, is written).
fn source_checked_against(args: &SourceArgs, out: &Path) -> Result<crate::source::SourceSpec> {
    let spec = resolve::resolve_source(args)?;
    outdir::check_not_precious(out, Some(spec.dir()))?;
    Ok(spec)
}

fn source_record(info: &SourceInfo) -> SourceRecord {
    let git = |args: &[&str]| {
        (info.tree_state != TreeState::Archive)
            .then(|| crate::source::git(&info.root, args).ok())
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

/// The Go version(s) the binaries were linked with, from their embedded build info. A
/// binary that is not there is left to the packaging, which names what is missing; one
/// that cannot be read fails here rather than leave the manifest without a Go version.
fn go_version_of(paths: &[PathBuf]) -> Result<Option<String>> {
    let mut versions: Vec<String> = Vec::new();
    for path in paths {
        match buildinfo::go_version(path) {
            Ok(version) => versions.extend(version),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(crate::error::Error::io("cannot read", path, e)),
        }
    }
    versions.sort();
    versions.dedup();
    Ok((!versions.is_empty()).then(|| versions.join(", ")))
}

fn toolchain(
    info: &SourceInfo,
    builder: Option<&Builder>,
    binaries: &[PathBuf],
) -> Result<Toolchain> {
    Ok(Toolchain {
        builder_image: builder.map(|b| b.image.clone()),
        builder_image_id: builder.map(|b| b.image_id.clone()),
        go_version: go_version_of(binaries)?,
        go_version_from:
            "the Go build information embedded in the binaries (what `go version <binary>` reads)"
                .to_string(),
        go_version_pinned: info.go_version.clone(),
        compressor: Toolchain::compressor(),
        gzip_level: Toolchain::gzip_level(),
    })
}

/// What manifest.json and the provenance record of the plan: everything but the packaging
/// steps (the manifest lists the artifacts themselves), redacted; and, after a run, `ran`:
/// for every job the engine that ran it, the one planned, its times and its attempts.
fn plan_record(
    plan: &crate::plan::Plan,
    ran: Option<&[crate::exec::fleet::Ran]>,
) -> Result<serde_json::Value> {
    let mut plan = crate::ui::show::redacted(plan);
    plan.packaging.clear();
    let mut record = serde_json::to_value(&plan)
        .map_err(|e| crate::error::Error::internal(format!("cannot record the plan: {e}")))?;
    if let Some(ran) = ran {
        let jobs: Vec<&crate::exec::fleet::JobRecord> = ran.iter().map(|r| &r.record).collect();
        record["ran"] = serde_json::to_value(jobs)
            .map_err(|e| crate::error::Error::internal(format!("cannot record the run: {e}")))?;
    }
    Ok(record)
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
    /// Write kubernetes-test-portable.tar.gz (a quick-release's test tarballs).
    test_portable: bool,
    toolchain: Toolchain,
    notes: Vec<String>,
    /// The plan the binaries were built by and the record of the run, for the manifest.
    plan: Option<serde_json::Value>,
    /// The server images written before the tarballs (None: no images).
    images: Option<crate::exec::images::Written>,
}

/// Packages the layouts into `<out>/release-tars` and reports the artifacts.
async fn package_release(what: Packaging<'_>, ui: &Ui, interrupt: &Interrupt) -> Result<()> {
    let Packaging {
        bin,
        out,
        out_in_tree,
        info,
        layouts,
        test_portable,
        toolchain,
        notes,
        plan,
        images,
    } = what;
    let tars = out.join(RELEASE_TARS);
    ui.phase(
        "package",
        &format!(
            "{} plus the {} tarballs into {}",
            crate::ui::count(layouts.len(), "binary tarball", "binary tarballs"),
            match test_portable {
                true => "source, final and portable test",
                false => "source and final",
            },
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
    let images_clone = images.clone();
    let packaged = blocking(ui, "package", total, interrupt, move |cancel| {
        let images_ref = images_clone.as_ref();
        crate::package::release::package(
            crate::package::release::Input {
                bin: &bin,
                out: &dest,
                out_in_tree: out_in_tree.as_deref(),
                info: &info,
                layouts,
                test_portable,
                source,
                toolchain,
                plan,
                images: images_ref.map(|w| w.records.clone()).unwrap_or_default(),
                server_entries: images_ref
                    .map(|w| w.server_entries.clone())
                    .unwrap_or_default(),
            },
            notes,
            &cancel,
        )
    })
    .await;
    // The images go in once the tarballs that hold them are in; either way the staging goes.
    let packaged = match (packaged, &images) {
        (Ok(p), Some(w)) => crate::exec::images::move_in(w, out).map(|()| p),
        (Ok(p), None) => Ok(p),
        (Err(e), w) => {
            if let Some(w) = w {
                crate::exec::images::discard(w);
            }
            Err(e)
        }
    }?;
    for r in &packaged.manifest.images {
        ui.artifact_digest(&r.file, r.size, Some(&r.sha256));
    }
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
        crate::units::human_bytes(written),
        crate::ui::count(
            packaged.threads,
            "compression thread",
            "compression threads"
        ),
    ));
    Ok(())
}

/// Writes the report into the output directory `out`, under its lock, when kbuild owns it.
/// A run that stopped before claiming it, or another run holding it now, leaves the timings
/// unwritten, with a warning: kbuild writes nowhere it did not claim.
pub async fn save_timings(
    out: &Path,
    report: &crate::ui::timings::Report,
    ui: &Ui,
    interrupt: &Interrupt,
) -> Result<()> {
    // Claimed by this run, not only owned by kbuild: a run refused before its claim leaves
    // the previous run's timings as they were.
    let claimed = crate::outdir::check_not_precious(out, None).is_ok()
        && crate::outdir::claimed_here(out)
        && matches!(crate::outdir::read_owner(out), Ok(Some(_)));
    if !claimed {
        ui.warn(&format!(
            "timings not written: kbuild has not claimed {} as its output directory (the run stopped before it did)",
            out.display()
        ));
        return Ok(());
    }
    let _lock =
        match crate::outdir::lock::acquire_with(out, crate::outdir::lock::Wait::No, ui, interrupt)
            .await
        {
            Ok(lock) => lock,
            Err(e) => {
                ui.warn(&format!("timings not written: {}", e.message));
                return Ok(());
            }
        };
    // Recorded in the owner file first, so that `kbuild clean` removes them.
    for (name, bytes) in crate::ui::timings::files(report) {
        crate::outdir::record(out, name)?;
        crate::outdir::write_atomic(&out.join(name), &bytes)?;
    }
    ui.info(&format!(
        "timings: {}",
        out.join(crate::ui::timings::HTML_FILE).display()
    ));
    Ok(())
}
