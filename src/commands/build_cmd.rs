//! `kbuild build`: build components for platforms on one engine or several.

use crate::error::Result;
use crate::exec::fleet::{EngineSlot, Fleet, Work};
use crate::outdir;
use crate::plan::{CommandKind, Plan};
use crate::resolve::BuildRequest;
use crate::signals::Interrupt;
use crate::source::{Overrides, SourceInfo};
use crate::ui::Ui;

use super::Invocation;

/// The job(s) of a build: one for all platforms, one per platform on several engines.
fn work(request: &BuildRequest, engines: usize) -> Vec<Work> {
    let whole = Work {
        name: crate::kube::component::build_job_name(&request.components),
        components: request.components.clone(),
        platforms: request.platforms.clone(),
    };
    Work::split(vec![whole], engines)
}

/// The plan of a `kbuild build`, from the source facts and the engines.
fn build_plan(
    request: &BuildRequest,
    inputs: Vec<crate::plan::Input>,
    info: Option<&SourceInfo>,
    slots: &[EngineSlot],
    notes: Vec<String>,
) -> (Plan, Vec<Work>) {
    let work = work(request, slots.len());
    let mut plan = super::building_plan(
        CommandKind::Build,
        inputs,
        &request.out,
        &request.source,
        info,
        request.git_version.as_deref(),
        &request.engine,
        slots,
        &work,
    );
    plan.notes = notes;
    (plan, work)
}

/// `kbuild build`: run it, print its plan, or run a saved plan.
pub async fn build(
    request: &BuildRequest,
    invocation: &Invocation,
    ui: &Ui,
    interrupt: &Interrupt,
) -> Result<()> {
    let overrides = Overrides::from_env(request.git_version.clone())?;
    // The tree first, then the output directory (lock.rs: that order everywhere).
    // A precious --out is refused before anything (even a lock) is written.
    outdir::check_not_precious(&request.out, Some(request.source.dir()))?;
    if let Some(json) = invocation.planning() {
        let (info, slots, notes) =
            super::planning_facts(&request.source, &overrides, &request.engine).await?;
        let inputs = invocation.inputs.clone();
        let (shown, _) = build_plan(request, inputs, info.as_ref(), &slots, notes);
        return crate::ui::show::print(&shown, json);
    }
    let _tree_lock = crate::outdir::lock::acquire_tree(request.source.dir(), ui, interrupt).await?;
    let info = crate::exec::builder::get_source(&request.source, &overrides, &request.engine, ui)?;
    invocation.check_commit(&info)?;
    outdir::claim(&request.out, &info.root)?;
    let _lock = crate::outdir::lock::acquire(&request.out, ui, interrupt).await?;
    let mut settings = request.engine.clone();
    settings.expect_image_id = invocation.expected_image()?;
    let fleet = Fleet::prepare(info, &settings, ui, interrupt).await?;
    let builder = fleet.first();
    let slots = fleet.engine_slots();
    let inputs = invocation.inputs.clone();
    let (planned, work) = build_plan(request, inputs, Some(&builder.info), &slots, Vec::new());
    invocation.check(&planned)?;
    let ran = fleet.run(&work, &request.out, ui, interrupt).await?;
    ui.phase("outputs", &request.out.display().to_string());
    let mut count = 0;
    for r in &ran {
        for (path, size) in &r.built.binaries {
            let shown = path.strip_prefix(&request.out).unwrap_or(path);
            ui.artifact(&shown.display().to_string(), *size);
            count += 1;
        }
    }
    let up_to_date = ran.iter().all(|r| r.built.up_to_date);
    let logs: Vec<String> = ran
        .iter()
        .map(|r| r.built.log.display().to_string())
        .collect();
    ui.finished(&format!(
        "{} {} ({}) — log: {}",
        if up_to_date { "up to date:" } else { "built" },
        crate::ui::count(count, "binary", "binaries"),
        builder.info.version.git_version,
        logs.join(", ")
    ));
    Ok(())
}
