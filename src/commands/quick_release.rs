//! `kbuild quick-release`: build the client, node and server sets, then package them.

use crate::cli::QuickReleaseArgs;
use crate::error::{Error, Result};
use crate::fleet::{EngineSlot, Fleet, Work};
use crate::kube::component::Component;
use crate::kube::release::{self as layout, ReleaseJob, RELEASE_TARS};
use crate::kube::{Platform, TargetSet};
use crate::outdir;
use crate::plan::{CommandKind, Plan};
use crate::resolve::jobs;
use crate::resolve::{self, EngineSettings};
use crate::signals::Interrupt;
use crate::source::{Overrides, SourceInfo, SourceSpec};
use crate::ui::Ui;

use super::{
    get_source, package_release, sample_binaries, source_checked_against, toolchain, Invocation,
    Packaging,
};

/// What a quick-release of `platforms` builds and writes, given the tree's facts (None: a
/// ref not fetched yet, planned as having every upstream target).
struct ReleasePlan {
    plan: Plan,
    work: Vec<Work>,
}

#[allow(clippy::too_many_arguments)]
fn release_plan(
    args: &QuickReleaseArgs,
    inputs: Vec<crate::plan::Input>,
    spec: &SourceSpec,
    info: Option<&SourceInfo>,
    platforms: &[Platform],
    engine: &EngineSettings,
    slots: &[EngineSlot],
    mut notes: Vec<String>,
) -> Result<ReleasePlan> {
    let has = |c: &Component| info.is_none_or(|i| c.exists_in(&i.root));
    let release = layout::plan(platforms, &has);
    if !release.missing.is_empty() {
        let names: Vec<&str> = release.missing.iter().map(|c| c.name).collect();
        notes.push(format!(
            "the tree lacks these upstream targets, so no tarball holds them: {}",
            names.join(", ")
        ));
    }
    for set in [TargetSet::Server, TargetSet::Node] {
        let skipped: Vec<Platform> = release
            .skipped
            .iter()
            .filter(|(s, _)| *s == set)
            .map(|(_, p)| *p)
            .collect();
        if !skipped.is_empty() {
            notes.push(format!(
                "no {} binaries or tarball for {}: upstream builds the {} set for {} only",
                set.name(),
                crate::kube::platform::list(&skipped),
                set.name(),
                crate::kube::platform::list(set.platforms())
            ));
        }
    }
    if release.jobs.is_empty() {
        return Err(no_targets(spec.dir()));
    }
    let whole: Vec<Work> = release.jobs.iter().map(release_work).collect();
    let work = Work::split(whole, slots.len());
    let mut plan = super::building_plan(
        CommandKind::QuickRelease,
        inputs,
        &args.out,
        spec,
        info,
        args.source.git_version.as_deref(),
        engine,
        slots,
        &work,
    );
    plan.packaging = jobs::release_artifacts(&layout::layouts(platforms, &has));
    plan.notes = notes;
    Ok(ReleasePlan { plan, work })
}

/// One make run of upstream's release grouping.
fn release_work(job: &ReleaseJob) -> Work {
    Work {
        name: job.job_name(),
        components: job.components.clone(),
        platforms: job.platforms.clone(),
    }
}

fn no_targets(dir: &std::path::Path) -> Error {
    Error::usage(format!(
        "{} has none of the upstream client, node or server targets",
        dir.display()
    ))
    .with_hint("point --kube-root at a Kubernetes tree (cmd/kubectl, cmd/kubelet, ...)")
}

/// `kbuild quick-release`.
pub async fn quick_release(
    args: &QuickReleaseArgs,
    invocation: &Invocation,
    ui: &Ui,
    interrupt: &Interrupt,
) -> Result<()> {
    let platforms = resolve::resolve_platforms(&args.target)?;
    // Sized for a quick-release: upstream documents 8 GB for building every set.
    let engine = resolve::resolve_engine_for(&args.engine, crate::checks::Profile::QuickRelease)?;
    if let Some(json) = invocation.planning() {
        let spec = source_checked_against(&args.source, &args.out)?;
        let overrides = Overrides::from_env(args.source.git_version.clone())?;
        let (info, slots, notes) = super::planning_facts(&spec, &overrides, &engine).await?;
        let inputs = invocation.inputs.clone();
        let planned = release_plan(
            args,
            inputs,
            &spec,
            info.as_ref(),
            &platforms,
            &engine,
            &slots,
            notes,
        )?;
        return crate::show::print(&planned.plan, json);
    }
    let sign_key = super::sign::load_sign_key(args.sign_key.as_deref())?;
    // The tree first, then the output directory (lock.rs: that order everywhere).
    let spec = source_checked_against(&args.source, &args.out)?;
    let _tree_lock = crate::lock::acquire_source(&spec, ui, interrupt).await?;
    let info = get_source(&args.source, Some(&engine), ui)?;
    invocation.check_commit(&info)?;
    let outdir = outdir::claim(&args.out, &info.root)?;
    let _lock = crate::lock::acquire(&args.out, ui, interrupt).await?;
    // Refused before the engine is prepared: a tree without targets needs no image.
    let root = info.root.clone();
    if layout::plan(&platforms, &|c: &Component| c.exists_in(&root))
        .jobs
        .is_empty()
    {
        return Err(no_targets(&root));
    }
    let mut engine = engine;
    engine.expect_image_id = invocation.expected_image()?;
    let fleet = Fleet::prepare(info, &engine, ui, interrupt).await?;
    let builder = fleet.first();
    let planned = release_plan(
        args,
        invocation.inputs.clone(),
        &spec,
        Some(&builder.info),
        &platforms,
        &engine,
        &fleet.engine_slots(),
        Vec::new(),
    )?;
    invocation.check(&planned.plan)?;
    for note in &planned.plan.notes {
        ui.info(note);
    }
    fleet.run(&planned.work, &args.out, ui, interrupt).await?;
    let root = builder.info.root.clone();
    let has = |c: &Component| c.exists_in(&root);
    let layouts = layout::layouts(&platforms, &has);
    let bin = args.out.join("bin");
    let toolchain = toolchain(
        &builder.info,
        Some(builder),
        &sample_binaries(&bin, &layouts),
    )?;
    let what = Packaging {
        bin,
        out: &args.out,
        out_in_tree: outdir.in_tree,
        info: &builder.info,
        layouts,
        toolchain,
        notes: planned.plan.notes.clone(),
        plan: Some(&planned.plan),
    };
    package_release(what, ui, interrupt).await?;
    super::sign::sign_after_run(sign_key.as_ref(), &args.out.join(RELEASE_TARS), ui)
}
