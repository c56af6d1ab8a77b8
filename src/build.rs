//! Building: a `Builder` is prepared once per run (engine connected, image present, cache
//! volume ready) and then builds any number of jobs, each installed under <out>/bin.
//! `kbuild build` is the simplest user of it; releases and extensions build through it too.

use std::path::{Path, PathBuf};

use crate::cache;
use crate::engine::docker::{human_bytes, DockerEngine, RunOptions};
use crate::engine::{BuildJob, DOCKER_OUTPUT_SUBPATH};
use crate::error::{Error, Result};
use crate::fingerprint;
use crate::joblog::JobLog;
use crate::kube::{Component, Platform};
use crate::outputs;
use crate::plan::{BuildPlan, EnginePlan};
use crate::signals::Interrupt;
use crate::source::{self, Overrides, SourceInfo};
use crate::ui::Ui;

/// What one build job produced.
#[derive(Debug, Clone)]
pub struct Built {
    /// Installed binaries with their sizes.
    pub binaries: Vec<(PathBuf, u64)>,
    pub log: PathBuf,
    /// True when nothing ran because the inputs had not changed.
    pub up_to_date: bool,
}

/// An engine ready to build one tree.
pub struct Builder {
    pub engine: DockerEngine,
    pub info: SourceInfo,
    pub image: String,
    pub image_id: String,
    volume: String,
    plan: EnginePlan,
}

impl Builder {
    /// Connects to the engine, makes sure the builder image and the cache volume exist.
    pub async fn prepare(
        info: SourceInfo,
        plan: &EnginePlan,
        ui: &Ui,
        interrupt: &Interrupt,
    ) -> Result<Builder> {
        let engine = DockerEngine::connect().await?;
        ui.phase(
            "engine",
            &format!(
                "Docker {} at {} ({} CPUs, {})",
                engine.info.server_version,
                engine.info.endpoint,
                engine.info.cpus,
                human_bytes(engine.info.memory_bytes)
            ),
        );
        let image = builder_image(plan, &info)?;
        ui.phase("image", &image);
        let image_id = engine.ensure_image(&image, ui, interrupt).await?;
        let volume = cache::ensure_volume(&engine, &image, &image_id, engine.build_user()).await?;
        ui.detail(&format!("Go caches in volume {volume}"));
        Ok(Builder {
            engine,
            info,
            image,
            image_id,
            volume,
            plan: plan.clone(),
        })
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
        ui.phase(
            "build",
            &format!(
                "{name}: make {} KUBE_BUILD_PLATFORMS=\"{}\"",
                job.command()[1..].join(" "),
                job.platforms_value()
            ),
        );
        let fingerprint =
            fingerprint::compute(&self.info, &job, DOCKER_OUTPUT_SUBPATH, &self.image_id)?;
        if !self.plan.force {
            if let Some(binaries) = fingerprint::up_to_date(out, name, &fingerprint) {
                ui.info(&format!(
                    "{name}: up to date (inputs unchanged since the last build; --force rebuilds)"
                ));
                return Ok(Built {
                    binaries,
                    log: out.join("logs").join(format!("{name}.log")),
                    up_to_date: true,
                });
            }
        }
        fingerprint::forget(out, name);
        let mut log = JobLog::create(&out.join("logs"), name)?;
        let options = RunOptions {
            root: &self.info.root,
            image: &self.image,
            stall_timeout: self.plan.stall_timeout,
            memory_limit: self.plan.memory_limit,
            network: self.plan.network,
            cache_volume: Some(&self.volume),
        };
        self.engine
            .run(&job, &options, &mut log, ui, interrupt)
            .await?;
        log.flush()?;
        let binaries = outputs::collect(
            |c, p| BuildJob::built_path(&self.info.root, DOCKER_OUTPUT_SUBPATH, c, p),
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
    let info = source::inspect(&plan.kube_root, &overrides)?;
    report_source(&info, ui);
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
        "{} {} binaries ({}) — log: {}",
        if built.up_to_date {
            "up to date:"
        } else {
            "built"
        },
        built.binaries.len(),
        builder.info.version.git_version,
        built.log.display()
    ));
    Ok(())
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
