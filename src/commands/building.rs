//! The one path every building command runs: build, quick-release, extension, and a saved
//! plan of any of them (`kbuild run plan.json`). A command only says which plan it wants
//! (`Building::plan`), what the tree must have (`check_tree`), and what it makes of the
//! built binaries (`finish`); the order of everything else is written once, here:
//! the source (tree lock, fetch), everything that can refuse the run before it creates
//! anything (`check_before_claim`: the tree, the engine, a saved plan's pins and jobs), the
//! claim of `--out` and its lock, the engines (checks, image, caches, sync), the plan, its
//! jobs on their planned engines (`exec::fleet`), the command's packaging with the record of
//! what ran, and the signature.

use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::exec::fleet::{Fleet, Ran};
use crate::exec::settings::{EngineSettings, EngineSlot};
use crate::outdir;
use crate::plan::{CommandKind, Plan};
use crate::signals::Interrupt;
use crate::source::{Overrides, SourceInfo, SourceSpec};
use crate::ui::Ui;

use super::Invocation;

/// What every building command was asked, resolved.
pub struct Request {
    pub spec: SourceSpec,
    pub overrides: Overrides,
    pub git_version: Option<String>,
    pub settings: EngineSettings,
    pub out: PathBuf,
    /// `--sign-key`: sign the written set.
    pub sign_key: Option<PathBuf>,
    /// Where each job ran last in `out` (`Invocation::last_engines`).
    pub last_engines: crate::plan::LastEngines,
}

/// A run whose jobs are done: what `finish` packages.
pub struct Built<'a> {
    pub plan: &'a Plan,
    pub ran: &'a [Ran],
    pub fleet: &'a Fleet,
    /// `--out` relative to the tree, when it is inside it.
    pub out_in_tree: Option<PathBuf>,
    /// The Go caches imported before the jobs ran (`--cache-from`).
    pub imports: &'a [crate::exec::cache_travel::ImportRecord],
}

impl Built<'_> {
    /// The tree's facts, as the run found them.
    pub fn info(&self) -> &SourceInfo {
        &self.fleet.first().info
    }

    /// What manifest.json and the provenance record of the plan and the run.
    pub fn record(&self) -> Result<serde_json::Value> {
        let mut record = super::plan_record(self.plan, Some(self.ran))?;
        if !self.imports.is_empty() {
            // A supply-chain input: the provenance names each import's digest and origin.
            record["cacheImports"] = serde_json::json!(self.imports);
        }
        Ok(record)
    }
}

/// What a building command adds to the one path.
pub trait Building {
    fn kind(&self) -> CommandKind;

    /// The plan, from the source's facts (None: not readable yet) and the engines.
    fn plan(
        &self,
        request: &Request,
        inputs: Vec<crate::plan::Input>,
        info: Option<&SourceInfo>,
        slots: &[EngineSlot],
        notes: Vec<String>,
    ) -> Result<Plan>;

    /// Refuses a tree that lacks what the command builds, before the engines are prepared.
    fn check_tree(&self, _info: &SourceInfo) -> Result<()> {
        Ok(())
    }

    /// Asks the engine, read-only, for what the plan pins besides the builder image (the
    /// server images' bases); `refuse`: a run, which stops here when something is missing.
    async fn facts(&self, _info: Option<&SourceInfo>, _refuse: bool) -> Result<()> {
        Ok(())
    }

    /// Packages and reports what the jobs built; returns the directory to sign, if any.
    async fn finish(
        &self,
        request: &Request,
        built: Built<'_>,
        ui: &Ui,
        interrupt: &Interrupt,
    ) -> Result<Option<PathBuf>>;
}

/// Runs `command`: prints its plan, or runs it (or a saved plan of it).
pub async fn run<B: Building>(
    command: &B,
    request: &Request,
    invocation: &Invocation,
    ui: &Ui,
    interrupt: &Interrupt,
) -> Result<()> {
    // A precious --out is refused before anything (even a lock) is written.
    outdir::check_not_precious(&request.out, Some(request.spec.dir()))?;
    let inputs = invocation.inputs.clone();
    if let Some(json) = invocation.planning() {
        let (info, slots, notes) = super::planning_facts(
            &request.spec,
            &request.overrides,
            &request.settings,
            invocation,
        )
        .await?;
        command.facts(info.as_ref(), false).await?;
        let plan = command.plan(request, inputs, info.as_ref(), &slots, notes)?;
        return crate::ui::show::print(&plan, json);
    }
    let sign_key = super::sign::load_sign_key(request.sign_key.as_deref())?;
    // The tree first, then the output directory (outdir::lock: that order everywhere). The
    // tree lock lives in kbuild's own lock directory, so taking it leaves no trace.
    let _tree_lock = outdir::lock::acquire_tree(request.spec.dir(), ui, interrupt).await?;
    invocation.check_remote(&request.spec)?;
    let info =
        crate::exec::builder::get_source(&request.spec, &request.overrides, &request.settings, ui)?;
    let mut settings = request.settings.clone();
    let image_pin = invocation.expected_image()?;
    settings.expect_image_id = image_pin.as_ref().map(|p| p.id.clone());
    check_before_claim(
        command,
        request,
        invocation,
        &info,
        image_pin.as_ref(),
        ui,
        interrupt,
    )
    .await?;
    let claimed = outdir::claim(&request.out, &info.root)?;
    let _lock = outdir::lock::acquire(&request.out, ui, interrupt).await?;
    let fleet = Fleet::prepare(info, &settings, ui, interrupt).await?;
    let plan = command.plan(
        request,
        inputs,
        Some(&fleet.first().info),
        &fleet.engine_slots(),
        Vec::new(),
    )?;
    // Checked before the claim too; again with the prepared engines, which may have moved.
    invocation.check(&plan)?;
    for note in &plan.notes {
        ui.info(note);
    }
    let imports = crate::exec::cache_travel::import_fleet(
        &fleet,
        &request.settings.cache_from,
        ui,
        interrupt,
    )
    .await?;
    let ran = fleet.run(&plan.jobs, &request.out, ui, interrupt).await?;
    // The next plan sends each job back where its cache is now warm.
    outdir::last_engines::write(
        &request.out,
        ran.iter()
            .map(|r| (r.record.job.clone(), r.record.engine.clone())),
    )?;
    let built = Built {
        plan: &plan,
        ran: &ran,
        fleet: &fleet,
        out_in_tree: claimed.in_tree,
        imports: &imports,
    };
    let signed = command.finish(request, built, ui, interrupt).await?;
    match signed {
        Some(dir) => super::sign::sign_after_run(sign_key.as_ref(), &dir, ui),
        None => Ok(()),
    }
}

/// Everything that can refuse the run, before it creates anything (no --out, no lock in
/// it, no pull by tag, no volume, no container): the tree has what the command builds, the
/// engine answers, and a saved plan still holds. Its tree (commit, changes) is checked, its
/// image is on the engine (pulled by digest at most), and the plan made now from the engine's
/// read-only facts, as `kbuild plan` makes it, has the saved jobs and artifacts.
#[allow(clippy::too_many_arguments)]
async fn check_before_claim<B: Building>(
    command: &B,
    request: &Request,
    invocation: &Invocation,
    info: &SourceInfo,
    image_pin: Option<&crate::exec::builder::ImagePin>,
    ui: &Ui,
    interrupt: &Interrupt,
) -> Result<()> {
    invocation.check_source(info)?;
    command.check_tree(info)?;
    crate::exec::builder::check_engines(&request.settings, image_pin, ui, interrupt).await?;
    command.facts(Some(info), true).await?;
    if invocation.saved().is_none() {
        return Ok(());
    }
    let (slots, _) = crate::resolve::schedule::plan_slots(Some(info), &request.settings).await?;
    let now = command.plan(
        request,
        invocation.inputs.clone(),
        Some(info),
        &slots,
        Vec::new(),
    )?;
    invocation.check(&now)
}

/// The plan of a building command: its inputs, source, engines, checks, and the jobs of
/// `work` (split over the engines' lanes); the command adds its artifacts and notes.
pub fn plan_of(
    command: CommandKind,
    request: &Request,
    inputs: Vec<crate::plan::Input>,
    info: Option<&SourceInfo>,
    slots: &[EngineSlot],
    work: Vec<crate::resolve::schedule::Work>,
) -> Result<Plan> {
    use crate::resolve::schedule::{self, Work};
    let work = Work::split(work, schedule::lanes(slots));
    let tree = super::tree_of(&request.spec, info);
    let mut plan = Plan::new(
        command,
        inputs,
        crate::resolve::jobs::absolute(&request.out),
    );
    plan.source = Some(super::source_part(
        &request.spec,
        info,
        request.git_version.as_deref(),
    )?);
    super::engines_part(&mut plan, &request.settings, slots);
    plan.last_engines = request.last_engines.clone();
    plan.jobs = schedule::planned_jobs(
        &work,
        slots,
        &tree,
        &request.settings,
        &request.last_engines,
    );
    Ok(plan)
}

/// The binaries every job installed.
pub fn binaries(ran: &[Ran]) -> Vec<PathBuf> {
    ran.iter()
        .flat_map(|r| r.built.binaries.iter().map(|(p, _)| p.clone()))
        .collect()
}

/// `path` as shown under `out`.
pub fn shown(path: &Path, out: &Path) -> String {
    path.strip_prefix(out).unwrap_or(path).display().to_string()
}
