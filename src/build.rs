//! Building: a `Builder` is prepared once per run (engine connected, image present, cache
//! volume ready) and then builds any number of jobs, each installed under <out>/bin.
//! `kbuild build` is the simplest user of it; releases and extensions build through it too.

use std::path::{Path, PathBuf};

use crate::checks::{self, Checker};
use crate::cli::EngineKind;
use crate::engine::cache_volume;
use crate::engine::docker::{DockerEngine, RunOptions};
use crate::engine::host::{self, HostEngine};
use crate::engine::sync;
use crate::engine::transfer::{self, SourceVolume, Transfer};
use crate::engine::{BuildJob, DOCKER_OUTPUT_SUBPATH, HOST_OUTPUT_SUBPATH};
use crate::error::{Error, Result};
use crate::fingerprint;
use crate::joblog::JobLog;
use crate::kube::{Component, Platform};
use crate::outdir;
use crate::outputs;
use crate::plan::{BuildPlan, EnginePlan};
use crate::signals::Interrupt;
use crate::source::{self, Overrides, SourceInfo, SourceSpec};
use crate::ui::Ui;
use crate::units::human_bytes;

/// What one build job produced.
#[derive(Debug, Clone)]
pub struct Built {
    /// Installed binaries with their sizes.
    pub binaries: Vec<(PathBuf, u64)>,
    pub log: PathBuf,
    /// True when nothing ran because the inputs had not changed.
    pub up_to_date: bool,
}

/// What runs the jobs. (One per run: the size difference of the variants does not matter.)
#[allow(clippy::large_enum_variant)]
enum Runner {
    Docker {
        engine: DockerEngine,
        volume: String,
        /// Copy transfer: the volume the tree is synced into (it stays for the next run).
        source: Option<Box<SourceVolume>>,
    },
    Host(HostEngine),
}

/// An engine ready to build one tree.
pub struct Builder {
    runner: Runner,
    pub info: SourceInfo,
    /// The builder image, or `host go1.24.4` for the host engine.
    pub image: String,
    /// The image id, or the host Go's identity: part of every job's fingerprint.
    pub image_id: String,
    plan: EnginePlan,
}

impl Builder {
    /// Runs the prerequisite checks, then connects to the engine, makes sure the builder
    /// image and the cache volume exist (Docker), or finds the local Go (host).
    pub async fn prepare(
        info: SourceInfo,
        plan: &EnginePlan,
        ui: &Ui,
        interrupt: &Interrupt,
    ) -> Result<Builder> {
        match plan.kind {
            EngineKind::Docker => Self::prepare_docker(info, plan, ui, interrupt).await,
            EngineKind::Host => Self::prepare_host(info, plan, ui),
        }
    }

    async fn prepare_docker(
        info: SourceInfo,
        plan: &EnginePlan,
        ui: &Ui,
        interrupt: &Interrupt,
    ) -> Result<Builder> {
        let mut checker = Checker::for_build(&plan.checks, ui);
        let connected = DockerEngine::connect().await;
        if checker.wants("engine") {
            let check = checks::engine(&connected, &crate::engine::docker::endpoint());
            checker.record(check).ok();
        }
        // An unreachable engine keeps its own exit code (5), with the doctor's words.
        let engine = connected?;
        ui.phase(
            "engine",
            &format!(
                "{} {} at {} (from {}; {} CPUs, {})",
                engine.info.product,
                engine.info.server_version,
                engine.info.endpoint,
                engine.info.endpoint_why,
                engine.info.cpus,
                human_bytes(engine.info.memory_bytes)
            ),
        );
        let image = builder_image(plan, &info)?;
        if !plan.network {
            if let Some(why) = crate::engine::hermetic::needs_network(&info.root) {
                return Err(Error::check(format!(
                    "{why}, and builds run without a network (GOPROXY=off)"
                ))
                .with_hint("vendor the dependencies (go mod vendor), or pass --network to let the build container download modules"));
            }
        }
        checker.run("memory", || {
            checks::memory(
                &plan.checks,
                engine.info.memory_bytes,
                "the Docker engine",
                plan.memory_limit,
            )
        })?;
        checker.run("cpus", || {
            checks::cpus(engine.info.cpus, "the Docker engine")
        })?;
        let mut places = vec![("the source", info.root.clone())];
        if let Some(dir) = engine.local_root_dir() {
            places.push(("the engine's data (Go cache volume)", dir));
        }
        checker.run("disk", || checks::disk(&plan.checks, &places))?;
        let mut image_arch = None;
        if checker.wants("image") {
            let (check, arch) = checks::image(&engine, &image, false).await;
            image_arch = arch;
            checker.record(check)?;
        }
        let arch_known = image_arch.is_some();
        if arch_known {
            checker.run("arch", || {
                checks::arch(&engine, &image, image_arch.as_deref())
            })?;
        }
        ui.phase("checks", &checker.summary());
        ui.phase("image", &image);
        let image_id = engine.ensure_image(&image, ui, interrupt).await?;
        if !arch_known && checker.wants("arch") {
            // Pulled just now: the engine picked its own platform, check what it got.
            let (_, arch) = checks::image(&engine, &image, false).await;
            checker.record(checks::arch(&engine, &image, arch.as_deref()))?;
        }
        let volume =
            cache_volume::ensure_volume(&engine, &image, &image_id, engine.build_user(), ui)
                .await?;
        ui.detail(&format!("Go caches in volume {volume}"));
        let source = match transfer::choose(plan.transfer, &engine.info.endpoint) {
            Transfer::Bind => None,
            Transfer::Copy => {
                let (to, root) = (&engine.info.endpoint, info.root.display());
                ui.phase(
                    "sync",
                    &format!("{root} to {to} (copy transfer: no bind mount)"),
                );
                let (volume, synced) =
                    sync::sync(&engine, &info.root, &image, engine.build_user(), interrupt).await?;
                ui.measured("sync", &synced.summary(to), serde_json::json!(synced));
                Some(Box::new(volume))
            }
        };
        Ok(Builder {
            runner: Runner::Docker {
                engine,
                volume,
                source,
            },
            info,
            image,
            image_id,
            plan: plan.clone(),
        })
    }

    fn prepare_host(info: SourceInfo, plan: &EnginePlan, ui: &Ui) -> Result<Builder> {
        let mut checker = Checker::for_build(&plan.checks, ui);
        checker.run("go", || {
            host::go_check(info.go_version.as_deref(), Some(&info.root))
        })?;
        checker.run("make", checks::make)?;
        checker.run("memory", || {
            checks::memory(&plan.checks, checks::host_memory(), "this machine", None)
        })?;
        checker.run("cpus", || checks::cpus(checks::host_cpus(), "this machine"))?;
        checker.run("disk", || {
            checks::disk(&plan.checks, &[("the source", info.root.clone())])
        })?;
        ui.phase("checks", &checker.summary());
        let engine = HostEngine::detect()?;
        ui.phase(
            "engine",
            &format!(
                "host: {} ({}), make, {} CPUs",
                engine.go_version,
                engine.go.display(),
                checks::host_cpus()
            ),
        );
        Ok(Builder {
            image: format!("host {}", engine.go_version),
            image_id: format!("host:{}:{}", engine.go_version, engine.go.display()),
            runner: Runner::Host(engine),
            info,
            plan: plan.clone(),
        })
    }

    /// The output subpath make writes in the tree.
    fn output_subpath(&self) -> &'static str {
        match self.runner {
            Runner::Docker { .. } => DOCKER_OUTPUT_SUBPATH,
            Runner::Host(_) => HOST_OUTPUT_SUBPATH,
        }
    }

    /// Runs `make all WHAT=<components> KUBE_BUILD_PLATFORMS=<platforms>` as job `name`
    /// and installs the binaries under `<out>/bin/<os>/<arch>/`.
    pub async fn build(
        &self,
        name: &str,
        components: &[&'static Component],
        platforms: &[Platform],
        out: &Path,
        ui: &Ui,
        interrupt: &Interrupt,
    ) -> Result<Built> {
        let job = BuildJob {
            name: name.to_string(),
            components: components.to_vec(),
            platforms: platforms.to_vec(),
            env: self.info.version_env(),
        };
        ui.job_phase(
            "build",
            name,
            &format!(
                "{name}: make {} KUBE_BUILD_PLATFORMS=\"{}\"",
                job.command()[1..].join(" "),
                job.platforms_value()
            ),
        );
        let subpath = self.output_subpath();
        let fingerprint = fingerprint::compute(&self.info, &job, subpath, &self.image_id)?;
        if !self.plan.force {
            if let Some(binaries) = fingerprint::up_to_date(out, name, &fingerprint) {
                ui.info(&format!(
                    "{name}: up to date (inputs unchanged since the last build; --force rebuilds)"
                ));
                return Ok(Built {
                    binaries,
                    log: out.join(crate::joblog::LOGS).join(format!("{name}.log")),
                    up_to_date: true,
                });
            }
        }
        fingerprint::forget(out, name);
        let mut checker = Checker::for_build(&self.plan.checks, ui);
        checker.run("disk", || {
            checks::disk(&self.plan.checks, &[("the outputs", out.to_path_buf())])
        })?;
        let mut log = JobLog::create(out, name)?;
        let counting = PackageCount::start(out, name, ui);
        // Copy transfer: the outputs come down into a temporary directory under `out`.
        let mut downloaded = None;
        match &self.runner {
            Runner::Docker {
                engine,
                volume,
                source,
            } => {
                let options = RunOptions {
                    root: &self.info.root,
                    image: &self.image,
                    stall_timeout: self.plan.stall_timeout,
                    memory_limit: self.plan.memory_limit,
                    network: self.plan.network,
                    cache_volume: Some(volume),
                    source_volume: source.as_ref().map(|s| s.name.as_str()),
                };
                engine.run(&job, &options, &mut log, ui, interrupt).await?;
                if let Some(source) = source {
                    let tmp = transfer::TempDir::new(out)?;
                    let bin = format!("{DOCKER_OUTPUT_SUBPATH}/bin");
                    ui.detail(&format!("downloading {bin} from volume {}", source.name));
                    source
                        .download(&bin, &tmp.path().join(&bin), interrupt)
                        .await?;
                    downloaded = Some(tmp);
                }
            }
            Runner::Host(engine) => {
                engine
                    .run(
                        &job,
                        &self.info.root,
                        self.plan.stall_timeout,
                        &mut log,
                        ui,
                        interrupt,
                    )
                    .await?;
            }
        }
        log.flush()?;
        counting.finished();
        if interrupt.fired() {
            // Stopped while the last step finished: install nothing.
            return Err(interrupt.wait().await);
        }
        let built_root = downloaded
            .as_ref()
            .map(|d| d.path())
            .unwrap_or(&self.info.root);
        let binaries = outputs::collect(
            |c, p| BuildJob::built_path(built_root, subpath, c, p),
            components,
            platforms,
            out,
        )?;
        fingerprint::save(out, name, &fingerprint, &binaries)?;
        Ok(Built {
            binaries,
            log: log.path().to_path_buf(),
            up_to_date: false,
        })
    }
}

/// `kbuild build`.
pub async fn run(plan: &BuildPlan, ui: &Ui, interrupt: &Interrupt) -> Result<()> {
    let overrides = Overrides::from_env(plan.git_version.clone())?;
    // The tree first, then the output directory (lock.rs: that order everywhere).
    // A precious --out is refused before anything (even a lock) is written.
    outdir::check_not_precious(&plan.out, Some(plan.source.dir()))?;
    let _tree_lock = crate::lock::acquire_source(&plan.source, ui, interrupt).await?;
    let info = get_source(&plan.source, &overrides, &plan.engine, ui)?;
    outdir::claim(&plan.out, &info.root)?;
    let _lock = crate::lock::acquire(&plan.out, ui, interrupt).await?;
    let builder = Builder::prepare(info, &plan.engine, ui, interrupt).await?;
    let name = plan
        .components
        .iter()
        .map(|c| c.name)
        .collect::<Vec<_>>()
        .join("+");
    let built = builder
        .build(
            &name,
            &plan.components,
            &plan.platforms,
            &plan.out,
            ui,
            interrupt,
        )
        .await?;
    ui.phase("outputs", &plan.out.display().to_string());
    for (path, size) in &built.binaries {
        let shown = path.strip_prefix(&plan.out).unwrap_or(path);
        ui.artifact(&shown.display().to_string(), *size);
    }
    ui.finished(&format!(
        "{} {} ({}) — log: {}",
        if built.up_to_date {
            "up to date:"
        } else {
            "built"
        },
        crate::ui::count(built.binaries.len(), "binary", "binaries"),
        builder.info.version.git_version,
        built.log.display()
    ));
    Ok(())
}

/// Checks git when the source needs it, gets the source (`--ref`) and reports its facts.
pub fn get_source(
    spec: &SourceSpec,
    overrides: &Overrides,
    engine: &EnginePlan,
    ui: &Ui,
) -> Result<SourceInfo> {
    let needs_git = match spec {
        SourceSpec::Git { .. } => true,
        SourceSpec::Tree(root) => root.join(".git").exists(),
    };
    if needs_git {
        Checker::for_build(&engine.checks, ui).run("git", checks::git)?;
    }
    let info = source::obtain(spec, overrides, ui)?;
    report_source(&info, ui);
    Ok(info)
}

pub fn report_source(info: &SourceInfo, ui: &Ui) {
    let commit = info
        .commit
        .as_deref()
        .map(|c| &c[..12.min(c.len())])
        .unwrap_or("no commit");
    ui.phase(
        "source",
        &format!(
            "{} at {commit} ({}, {}), SOURCE_DATE_EPOCH={}",
            info.root.display(),
            info.version.git_version,
            info.tree_state.as_str(),
            info.source_date_epoch
        ),
    );
}

/// `--image`, else the upstream kube-cross image the tree pins.
pub fn builder_image(engine: &EnginePlan, info: &SourceInfo) -> Result<String> {
    engine
        .image
        .clone()
        .or_else(|| info.default_image())
        .ok_or_else(|| {
            Error::usage(format!(
                "{} has no build/build-image/cross/VERSION, so there is no default builder image",
                info.root.display()
            ))
            .with_hint("name one with --image (e.g. registry.k8s.io/build-image/kube-cross:<tag>)")
        })
}

/// A job's Go packages counted while it runs, out of what its previous run compiled; the
/// count is kept for the next run however this one ends (dropped early: it did not finish).
struct PackageCount<'a> {
    out: &'a Path,
    job: &'a str,
    ui: &'a Ui,
    history: Option<crate::progress::History>,
    finished: bool,
}

impl<'a> PackageCount<'a> {
    fn start(out: &'a Path, job: &'a str, ui: &'a Ui) -> PackageCount<'a> {
        let history = fingerprint::package_history(out, job);
        ui.job_started(job, history.and_then(|h| h.total()));
        PackageCount {
            out,
            job,
            ui,
            history,
            finished: false,
        }
    }

    fn finished(mut self) {
        self.finished = true;
    }
}

impl Drop for PackageCount<'_> {
    fn drop(&mut self) {
        let counted = self.ui.job_finished(self.job, self.finished);
        if let Some(history) = crate::progress::History::after(self.history, counted, self.finished)
        {
            fingerprint::save_package_history(self.out, self.job, &history);
        }
    }
}
