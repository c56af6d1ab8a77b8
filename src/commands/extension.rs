//! `kbuild extension`: build client binaries for every Docker Desktop host and lay them
//! out per image architecture.

use std::path::{Path, PathBuf};

use crate::cli::{ExtensionArgs, TargetArgs};
use crate::error::{Error, Result};
use crate::fleet::{EngineSlot, Fleet, Work};
use crate::kube::component::{self, Component};
use crate::kube::Platform;
use crate::outdir;
use crate::package::extension;
use crate::package::manifest::Manifest;
use crate::plan::{CommandKind, Plan};
use crate::resolve::jobs;
use crate::resolve::{self, EngineSettings};
use crate::signals::Interrupt;
use crate::source::{Overrides, SourceInfo, SourceSpec};
use crate::ui::Ui;

use super::{
    blocking, get_source, source_checked_against, source_record, toolchain, total_size, Invocation,
};

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
        resolve::resolve_platforms(&TargetArgs {
            platforms: args.platforms.clone(),
        })?
    };
    extension::check_platforms(&platforms)?;
    component::check_pairs(&components, &platforms)?;
    Ok((components, platforms))
}

/// The plan of `kbuild extension`: its one job and the layout it writes.
#[allow(clippy::too_many_arguments)]
fn extension_plan(
    args: &ExtensionArgs,
    inputs: Vec<crate::plan::Input>,
    spec: &SourceSpec,
    info: Option<&SourceInfo>,
    components: &[&'static Component],
    platforms: &[Platform],
    engine: &EngineSettings,
    slots: &[EngineSlot],
    notes: Vec<String>,
) -> (Plan, Vec<Work>) {
    let whole = Work {
        name: component::EXTENSION_JOB.to_string(),
        components: components.to_vec(),
        platforms: platforms.to_vec(),
    };
    let work = Work::split(vec![whole], slots.len());
    let mut plan = super::building_plan(
        CommandKind::Extension,
        inputs,
        &args.out,
        spec,
        info,
        args.source.git_version.as_deref(),
        engine,
        slots,
        &work,
    );
    plan.packaging = jobs::extension_artifacts(components, platforms);
    if let Some(tag) = &args.image.tag {
        plan.packaging.extend(jobs::extension_image_artifacts(tag));
        if args.image.load {
            plan.notes.push(format!(
                "{tag}: the engine's variant is loaded into the engine"
            ));
        }
        if args.image.push {
            plan.notes.push(format!(
                "{tag}: the index and both variants are pushed to its registry"
            ));
        }
    }
    plan.notes.splice(0..0, notes);
    (plan, work)
}

/// `kbuild extension`.
pub async fn extension(
    args: &ExtensionArgs,
    invocation: &Invocation,
    ui: &Ui,
    interrupt: &Interrupt,
) -> Result<()> {
    let (components, platforms) = extension_inputs(args)?;
    let engine = resolve::resolve_engine(&args.engine)?;
    if let Some(json) = invocation.planning() {
        let spec = source_checked_against(&args.source, &args.out)?;
        let overrides = Overrides::from_env(args.source.git_version.clone())?;
        let (info, slots, notes) = super::planning_facts(&spec, &overrides, &engine).await?;
        let (plan, _) = extension_plan(
            args,
            invocation.inputs.clone(),
            &spec,
            info.as_ref(),
            &components,
            &platforms,
            &engine,
            &slots,
            notes,
        );
        return crate::show::print(&plan, json);
    }
    let sign_key = super::sign::load_sign_key(args.sign_key.as_deref())?;
    let image = crate::extension_image::prepare(&args.image)?;
    // The tree first, then the output directory (lock.rs: that order everywhere).
    let spec = source_checked_against(&args.source, &args.out)?;
    let _tree_lock = crate::lock::acquire_source(&spec, ui, interrupt).await?;
    let info = get_source(&args.source, Some(&engine), ui)?;
    invocation.check_commit(&info)?;
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
    let mut engine = engine;
    engine.expect_image_id = invocation.expected_image()?;
    let fleet = Fleet::prepare(info, &engine, ui, interrupt).await?;
    let builder = fleet.first();
    let (plan, work) = extension_plan(
        args,
        invocation.inputs.clone(),
        &spec,
        Some(&builder.info),
        &components,
        &platforms,
        &engine,
        &fleet.engine_slots(),
        Vec::new(),
    );
    invocation.check(&plan)?;
    let ran = fleet.run(&work, &args.out, ui, interrupt).await?;
    let binaries: Vec<PathBuf> = ran
        .iter()
        .flat_map(|r| r.built.binaries.iter().map(|(p, _)| p.clone()))
        .collect();
    let toolchain = toolchain(&builder.info, Some(builder), &binaries)?;
    let source = source_record(&builder.info);
    let bin = args.out.join("bin");
    let out = args.out.clone();
    ui.phase(
        "package",
        &format!("extension layout in {}", out.join(extension::DIR).display()),
    );
    let total = total_size(binaries.iter().cloned());
    let (components_kept, platforms_kept) = (components.clone(), platforms.clone());
    let record = Some(super::plan_record(&plan)?);
    let (manifest, warnings) = blocking(ui, "extension", total, interrupt, move |cancel| {
        extension::write(
            &bin,
            &out,
            &components,
            &platforms,
            extension::Records {
                source,
                toolchain,
                plan: record,
            },
            &cancel,
        )
    })
    .await?;
    for w in &warnings {
        ui.warn(w);
    }
    if let Some(image_plan) = image {
        let (info, c, p) = (&builder.info, &components_kept, &platforms_kept);
        crate::extension_image::run(image_plan, &args.out, info, c, p, ui, interrupt).await?;
    }
    report_extension(&manifest, &args.out, ui);
    super::sign::sign_after_run(sign_key.as_ref(), &args.out.join(extension::DIR), ui)
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
