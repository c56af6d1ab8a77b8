//! `kbuild build`: source facts, engine, image, one make job in a container, and the
//! binaries installed under <out>/bin.

use crate::cache;
use crate::engine::docker::{DockerEngine, RunOptions};
use crate::engine::{BuildJob, DOCKER_OUTPUT_SUBPATH};
use crate::error::{Error, Result};
use crate::joblog::JobLog;
use crate::outputs;
use crate::plan::{BuildPlan, EnginePlan};
use crate::signals::Interrupt;
use crate::source::{self, Overrides, SourceInfo};
use crate::ui::Ui;

pub async fn run(plan: &BuildPlan, ui: &Ui, interrupt: &Interrupt) -> Result<()> {
    let overrides = Overrides::from_env(plan.git_version.clone())?;
    let info = source::inspect(&plan.kube_root, &overrides)?;
    report_source(&info, ui);

    let engine = DockerEngine::connect().await?;
    ui.phase(
        "engine",
        &format!(
            "Docker {} at {} ({} CPUs, {})",
            engine.info.server_version,
            engine.info.endpoint,
            engine.info.cpus,
            crate::engine::docker::human_bytes(engine.info.memory_bytes)
        ),
    );
    let image = builder_image(&plan.engine, &info)?;
    ui.phase("image", &image);
    let image_id = engine.ensure_image(&image, ui, interrupt).await?;
    let volume = cache::ensure_volume(&engine, &image, &image_id, engine.build_user()).await?;
    ui.detail(&format!("Go caches in volume {volume}"));

    let job = BuildJob {
        name: plan
            .components
            .iter()
            .map(|c| c.name)
            .collect::<Vec<_>>()
            .join("+"),
        components: plan.components.clone(),
        platforms: plan.platforms.clone(),
        env: info.version_env(),
    };
    ui.phase(
        "build",
        &format!(
            "make {} KUBE_BUILD_PLATFORMS=\"{}\"",
            job.command()[1..].join(" "),
            job.platforms_value()
        ),
    );
    let mut log = JobLog::create(&plan.out.join("logs"), &job.name)?;
    let options = RunOptions {
        root: &info.root,
        image: &image,
        stall_timeout: plan.engine.stall_timeout,
        memory_limit: plan.engine.memory_limit,
        network: plan.engine.network,
        cache_volume: Some(&volume),
    };
    engine.run(&job, &options, &mut log, ui, interrupt).await?;
    log.flush()?;

    let installed = outputs::collect(
        |c, p| BuildJob::built_path(&info.root, DOCKER_OUTPUT_SUBPATH, c, p),
        &plan.components,
        &plan.platforms,
        &plan.out,
    )?;
    ui.phase("outputs", &plan.out.display().to_string());
    for (path, size) in &installed {
        let shown = path.strip_prefix(&plan.out).unwrap_or(path);
        ui.artifact(&shown.display().to_string(), *size);
    }
    ui.finished(&format!(
        "built {} binaries ({}) — log: {}",
        installed.len(),
        info.version.git_version,
        log.path().display()
    ));
    Ok(())
}

fn report_source(info: &SourceInfo, ui: &Ui) {
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
