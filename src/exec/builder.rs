//! Building: a `Builder` is prepared once per run (engine connected, image present, cache
//! volume ready) and then builds any number of jobs, each installed under <out>/bin.
//! `kbuild build` is the simplest user of it; releases and extensions build through it too.

use std::path::{Path, PathBuf};

use crate::checks::preflight;
use crate::checks::{self, Checker};
use crate::engine::cache_volume;
use crate::engine::docker::{DockerEngine, RunOptions};
use crate::engine::host::HostEngine;
use crate::engine::sync;
use crate::engine::transfer::{self, SourceVolume, Transfer};
use crate::engine::DOCKER_OUTPUT_SUBPATH;
use crate::error::{Error, Result};
use crate::exec::fingerprint;
use crate::exec::settings::{EngineFacts, EngineSettings};
use crate::kube::{Component, Platform};
use crate::outdir::joblog::JobLog;
use crate::outdir::outputs;
use crate::plan::EngineKind;
use crate::plan::Job;
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
        /// Copy transfer: the tree uploaded into a volume (removed when the Builder goes).
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
    plan: EngineSettings,
    /// What the plan's jobs are made from.
    pub facts: EngineFacts,
}

impl Builder {
    /// Runs the prerequisite checks, then connects to the engine, makes sure the builder
    /// image and the cache volume exist (Docker), or finds the local Go (host).
    pub async fn prepare(
        info: SourceInfo,
        plan: &EngineSettings,
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
        plan: &EngineSettings,
        ui: &Ui,
        interrupt: &Interrupt,
    ) -> Result<Builder> {
        let mut checker = Checker::for_build(&plan.checks, ui);
        // An unreachable engine keeps its own exit code (5), with the doctor's words.
        let engine = match &plan.endpoint {
            Some(chosen) => DockerEngine::connect_to(chosen.clone()).await?,
            None => DockerEngine::connect().await?,
        };
        ui.engine(&engine.info.endpoint);
        crate::checks::check_cpus_fit(plan.cpus, engine.info.cpus, &engine.info.endpoint)?;
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
        let places = vec![("the source", info.root.clone())];
        let image_arch = preflight::docker(
            &mut checker,
            Ok(&engine),
            Ok(&image),
            plan.memory_limit,
            places,
        )
        .await?;
        ui.phase("checks", &checker.summary());
        ui.phase("image", &image);
        let image_id = engine.ensure_image(&image, ui, interrupt).await?;
        // Checked before the run claimed anything (`check_engines`); again here, in case
        // the tag moved since.
        if let Some(expected) = plan.expect_image_id.as_deref().filter(|e| *e != image_id) {
            return Err(stale_image(&image, &image_id, expected));
        }
        if image_arch.is_none() {
            preflight::pulled_arch(&mut checker, &engine, &image).await?;
        }
        let volume =
            cache_volume::ensure_volume(&engine, &image, &image_id, engine.build_user(), ui)
                .await?;
        ui.detail(&format!("Go caches in volume {volume}"));
        let chosen_transfer = transfer::choose(plan.transfer, &engine.info.endpoint);
        let facts = EngineFacts {
            kind: crate::plan::EngineKind::Docker,
            endpoint: engine.info.endpoint.clone(),
            endpoint_from: engine.info.endpoint_why.clone(),
            image: image.clone(),
            image_id: Some(image_id.clone()),
            repo_digest: None,
            transfer: Some(chosen_transfer),
            user: engine.build_user(),
        };
        if facts.cache_volume().as_deref() != Some(volume.as_str()) {
            return Err(Error::internal(format!(
                "the Go cache volume {volume} is not the one the plan names ({:?})",
                facts.cache_volume()
            )));
        }
        let source = match chosen_transfer {
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
                ui.synced(Some(to), synced.bytes_uploaded);
                Some(Box::new(volume))
            }
        };
        Ok(Builder {
            runner: Runner::Docker { engine, source },
            info,
            image,
            image_id,
            plan: plan.clone(),
            facts,
        })
    }

    fn prepare_host(info: SourceInfo, plan: &EngineSettings, ui: &Ui) -> Result<Builder> {
        let mut checker = Checker::for_build(&plan.checks, ui);
        let places = [("the source", info.root.clone())];
        preflight::host(
            &mut checker,
            info.go_version.as_deref(),
            Some(&info.root),
            &places,
        )?;
        ui.phase("checks", &checker.summary());
        let engine = HostEngine::detect()?;
        ui.engine("host");
        ui.phase(
            "engine",
            &format!(
                "host: {} ({}), make, {} CPUs",
                engine.go_version,
                engine.go.display(),
                checks::host_cpus()
            ),
        );
        let facts = host_facts(&engine);
        Ok(Builder {
            image: facts.image.clone(),
            image_id: facts.image_id.clone().unwrap_or_default(),
            runner: Runner::Host(engine),
            info,
            plan: plan.clone(),
            facts,
        })
    }

    /// The Docker API engine this builder runs on (None for the host engine).
    pub fn docker(&self) -> Option<&DockerEngine> {
        match &self.runner {
            Runner::Docker { engine, .. } => Some(engine),
            Runner::Host(_) => None,
        }
    }

    /// Whether the engine still answers (a job that failed with an engine error on an
    /// engine that is gone is run again elsewhere). Not one ping: an engine shutting down
    /// answers for a while as it stops its containers, so it must answer three, a second
    /// apart, each within 3 s.
    pub async fn alive(&self) -> bool {
        let Runner::Docker { engine, .. } = &self.runner else {
            return true;
        };
        for n in 0..3 {
            if n > 0 {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            let ping =
                tokio::time::timeout(std::time::Duration::from_secs(3), engine.docker.ping());
            if !matches!(ping.await, Ok(Ok(_))) {
                return false;
            }
        }
        true
    }

    /// Creates the job's own `_output` in the tree (as the user: the engine would create a
    /// missing bind source as root), so that it exists before it is mounted.
    fn make_own_output(&self, job: &Job) -> Result<()> {
        if crate::engine::private_output(job).is_none() {
            return Ok(());
        }
        let made = self.info.root.join(&job.output_subpath);
        std::fs::create_dir_all(&made).map_err(|e| Error::io("cannot create", &made, e))
    }

    /// The place the job's make writes into, when the job has no `_output` of its own: the
    /// jobs of one writable tree run one at a time (see `fleet::Runner::tree`).
    pub fn shared_tree(&self, job: &Job) -> Option<String> {
        match &self.runner {
            Runner::Docker {
                source: Some(volume),
                engine,
            } => Some(format!(
                "volume {} on {}",
                volume.name, engine.info.endpoint
            )),
            Runner::Docker { source: None, .. } if crate::engine::private_output(job).is_some() => {
                None
            }
            _ => Some(self.info.root.display().to_string()),
        }
    }

    /// Runs the plan's `job` (make in a container made exactly from it, or on the host) and
    /// installs its binaries under `<out>/bin/<os>/<arch>/`.
    pub async fn build(
        &self,
        job: &Job,
        components: &[&'static Component],
        platforms: &[Platform],
        out: &Path,
        ui: &Ui,
        interrupt: &Interrupt,
    ) -> Result<Built> {
        let name = job.name.as_str();
        ui.job_phase(
            "build",
            name,
            &format!(
                "{name}: {} KUBE_BUILD_PLATFORMS=\"{}\"",
                job.command.join(" "),
                job.platforms.join(" ")
            ),
        );
        let fingerprint = fingerprint::compute(&self.info, job, &self.image_id)?;
        if !self.plan.force {
            if let Some(binaries) = fingerprint::up_to_date(out, name, &fingerprint) {
                ui.info(&format!(
                    "{name}: up to date (inputs unchanged since the last build; --force rebuilds)"
                ));
                return Ok(Built {
                    binaries,
                    log: out
                        .join(crate::outdir::joblog::LOGS)
                        .join(format!("{name}.log")),
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
        let counting = PackageCount::start(out, name, &self.facts.endpoint, ui);
        // Copy transfer: the outputs come down into a temporary directory under `out`.
        let mut downloaded = None;
        match &self.runner {
            Runner::Docker { engine, source } => {
                self.make_own_output(job)?;
                let options = RunOptions {
                    root: &self.info.root,
                    stall_timeout: self.plan.stall_timeout,
                };
                engine.run(job, &options, &mut log, ui, interrupt).await?;
                if let Some(source) = source {
                    let tmp = transfer::TempDir::new(out)?;
                    let bin = format!("{DOCKER_OUTPUT_SUBPATH}/bin");
                    ui.detail(&format!("downloading {bin} from volume {}", source.name));
                    let step = ui.engine_step_on(&self.facts.endpoint, &format!("download {name}"));
                    source
                        .download(&bin, &tmp.path().join(&bin), interrupt)
                        .await?;
                    step.done();
                    downloaded = Some(tmp);
                }
            }
            Runner::Host(engine) => {
                engine
                    .run(job, self.plan.stall_timeout, &mut log, ui, interrupt)
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
        let made = built_root.join(&job.output_subpath).join("bin");
        let binaries = outputs::collect(
            |c, p| made.join(p.os).join(p.arch).join(c.file_name(p)),
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

fn host_facts(engine: &HostEngine) -> EngineFacts {
    EngineFacts {
        kind: crate::plan::EngineKind::Host,
        endpoint: "host".to_string(),
        endpoint_from: "--engine host".to_string(),
        image: format!("host {}", engine.go_version),
        image_id: Some(format!(
            "host:{}:{}",
            engine.go_version,
            engine.go.display()
        )),
        repo_digest: None,
        transfer: None,
        user: None,
    }
}

/// What `plan_facts` learnt of an engine: one connection, asked read-only.
pub struct PlanFacts {
    pub facts: EngineFacts,
    /// Facts that stay unknown until the run, and why.
    pub notes: Vec<String>,
    /// Why the engine did not answer (its facts are then assumed).
    pub unanswered: Option<Error>,
}

/// What a plan needs from the engine, asked without changing anything (no pull, no volume,
/// no container), with a note for each fact that stays unknown until the run.
pub async fn plan_facts(info: Option<&SourceInfo>, settings: &EngineSettings) -> Result<PlanFacts> {
    let mut notes = Vec::new();
    if settings.kind == EngineKind::Host {
        return match HostEngine::detect() {
            Ok(engine) => Ok(PlanFacts {
                facts: host_facts(&engine),
                notes,
                unanswered: None,
            }),
            Err(e) => {
                notes.push(format!(
                    "no local Go found ({}): the run will fail its go check",
                    e.message
                ));
                Ok(PlanFacts {
                    facts: EngineFacts {
                        kind: crate::plan::EngineKind::Host,
                        endpoint: "host".to_string(),
                        endpoint_from: "--engine host".to_string(),
                        image: "host (no Go found)".to_string(),
                        image_id: None,
                        repo_digest: None,
                        transfer: None,
                        user: None,
                    },
                    notes,
                    unanswered: None,
                })
            }
        };
    }
    let image = match info {
        Some(info) => builder_image(settings, info)?,
        None => settings.image.clone().unwrap_or_else(|| {
            format!(
                "{}:<the tag in the fetched tree's build/build-image/cross/VERSION>",
                crate::kube::KUBE_CROSS_IMAGE
            )
        }),
    };
    let chosen = match &settings.endpoint {
        Some(chosen) => chosen.clone(),
        None => crate::engine::endpoint::current()?,
    };
    let mut unanswered = None;
    let facts = match DockerEngine::connect_to(chosen.clone()).await {
        Ok(engine) => {
            crate::checks::check_cpus_fit(settings.cpus, engine.info.cpus, &engine.info.endpoint)?;
            // An unfetched tree names no image yet: nothing to look up.
            let image_known = info.is_some() || settings.image.is_some();
            let pinned = match image_known {
                true => crate::engine::pin::inspect(&engine, &image).await?,
                false => None,
            };
            let (image_id, repo_digest) = match pinned {
                Some(p) => (Some(p.id), p.repo_digest),
                None => (None, None),
            };
            if image_id.is_none() {
                notes.push(format!(
                    "{image} is not on the engine: the run pulls it; its id and the Go cache volume are known after that"
                ));
            }
            EngineFacts {
                kind: crate::plan::EngineKind::Docker,
                endpoint: engine.info.endpoint.clone(),
                endpoint_from: engine.info.endpoint_why.clone(),
                transfer: Some(transfer::choose(settings.transfer, &engine.info.endpoint)),
                user: engine.build_user(),
                image,
                image_id,
                repo_digest,
            }
        }
        Err(e) => {
            notes.push(format!(
                "the engine did not answer ({}): the image id, the build user and the Go cache volume are assumed or unknown",
                e.message
            ));
            let facts = EngineFacts {
                kind: crate::plan::EngineKind::Docker,
                endpoint: chosen.shown(),
                endpoint_from: chosen.why(),
                transfer: Some(transfer::choose(settings.transfer, &chosen.shown())),
                user: Some((
                    rustix::process::getuid().as_raw(),
                    rustix::process::getgid().as_raw(),
                )),
                image,
                image_id: None,
                repo_digest: None,
            };
            unanswered = Some(e);
            facts
        }
    };
    Ok(PlanFacts {
        facts,
        notes,
        unanswered,
    })
}

/// The image a saved plan was made with: the engine must have it under `image`.
pub struct ImagePin {
    pub image: String,
    pub id: String,
    pub repo_digest: Option<String>,
}

fn stale_image(image: &str, now: &str, planned: &str) -> Error {
    Error::usage(format!(
        "the saved plan is stale: {image} is image {now} on the engine now, the plan was made with {planned}"
    ))
    .with_hint("plan again (`kbuild plan --json ... > plan.json`) and run the new plan, or run the command itself")
}

/// Before the run creates anything: the engine answers (one that does not refuses the run
/// here, exit 5, before --out exists), and with `pin` (a saved plan) it has the planned
/// image under its name. A missing image is pulled only by the plan's repository digest,
/// the one fetch that brings exactly the planned image; without a digest it is refused, as
/// a pull by tag could bring another. Of several engines (`--engines`), those that do not
/// answer are left to the plan's comparison, which names the jobs they were to run.
pub async fn check_engines(
    settings: &EngineSettings,
    pin: Option<&ImagePin>,
    ui: &Ui,
    interrupt: &Interrupt,
) -> Result<()> {
    if settings.kind == EngineKind::Host {
        return Ok(());
    }
    if settings.engines.is_empty() {
        let chosen = match &settings.endpoint {
            Some(chosen) => chosen.clone(),
            None => crate::engine::endpoint::current()?,
        };
        let engine = DockerEngine::connect_to(chosen).await?;
        return match pin {
            Some(pin) => ensure_pinned(&engine, pin, ui, interrupt).await,
            None => Ok(()),
        };
    }
    for (entry, _) in &settings.engines {
        let endpoint = crate::engine::endpoint::named(entry)?;
        let (Some(pin), Ok(engine)) = (pin, DockerEngine::connect_to(endpoint).await) else {
            continue;
        };
        ensure_pinned(&engine, pin, ui, interrupt).await?;
    }
    Ok(())
}

/// The engine has `pin.image` as `pin.id`, pulling it by digest when it is missing.
async fn ensure_pinned(
    engine: &DockerEngine,
    pin: &ImagePin,
    ui: &Ui,
    interrupt: &Interrupt,
) -> Result<()> {
    use crate::engine::pin;
    let id = match (pin::inspect(engine, &pin.image).await?, &pin.repo_digest) {
        (Some(found), _) => found.id,
        (None, Some(digest)) => {
            pin::pull_by_digest(engine, &pin.image, digest, ui, interrupt).await?
        }
        (None, None) => {
            return Err(Error::usage(format!(
                "the saved plan is stale: {} is not on the engine at {}, and the plan names no repository digest to pull exactly image {} by",
                pin.image, engine.info.endpoint, pin.id
            ))
            .with_hint("load or build that image on the engine (a pull by tag may bring another), or plan again where it is"));
        }
    };
    match id == pin.id {
        true => Ok(()),
        false => Err(stale_image(&pin.image, &id, &pin.id)),
    }
}

/// Checks git when the source needs it, gets the source (`--ref`) and reports its facts.
pub fn get_source(
    spec: &SourceSpec,
    overrides: &Overrides,
    engine: &EngineSettings,
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
pub fn builder_image(engine: &EngineSettings, info: &SourceInfo) -> Result<String> {
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
    history: Option<crate::ui::progress::History>,
    finished: bool,
}

impl<'a> PackageCount<'a> {
    fn start(out: &'a Path, job: &'a str, engine: &str, ui: &'a Ui) -> PackageCount<'a> {
        let history = fingerprint::package_history(out, job);
        ui.job_started_on(engine, job, history.and_then(|h| h.total()));
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
        if let Some(history) =
            crate::ui::progress::History::after(self.history, counted, self.finished)
        {
            fingerprint::save_package_history(self.out, self.job, &history);
        }
    }
}
