//! `kbuild extension`: build client binaries for every Docker Desktop host and lay them
//! out per image architecture.

use std::path::{Path, PathBuf};

use crate::cli::{ExtensionArgs, TargetArgs};
use crate::error::{Error, Result};
use crate::exec::settings::EngineSlot;
use crate::kube::component::{self, Component};
use crate::kube::Platform;
use crate::package::extension;
use crate::package::manifest::Manifest;
use crate::plan::{CommandKind, Plan};
use crate::resolve;
use crate::resolve::jobs;
use crate::resolve::schedule::Work;
use crate::signals::Interrupt;
use crate::source::{Overrides, SourceInfo};
use crate::ui::Ui;

use super::building::{self, Building, Built, Request};
use super::{blocking, source_record, toolchain, total_size, Invocation};

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

struct Extension<'a> {
    args: &'a ExtensionArgs,
    components: Vec<&'static Component>,
    platforms: Vec<Platform>,
    /// `--tag`: the extension image, checked before anything is built.
    image: Option<crate::exec::extension_image::Plan>,
}

impl Building for Extension<'_> {
    fn kind(&self) -> CommandKind {
        CommandKind::Extension
    }

    /// Its one job (one per platform on several lanes) and the layout it writes.
    fn plan(
        &self,
        request: &Request,
        inputs: Vec<crate::plan::Input>,
        info: Option<&SourceInfo>,
        slots: &[EngineSlot],
        notes: Vec<String>,
    ) -> Result<Plan> {
        let whole = Work {
            name: component::EXTENSION_JOB.to_string(),
            components: self.components.clone(),
            platforms: self.platforms.clone(),
        };
        let mut plan = building::plan_of(self.kind(), request, inputs, info, slots, vec![whole])?;
        plan.packaging = jobs::extension_artifacts(&self.components, &self.platforms);
        let image = &self.args.image;
        if let Some(tag) = &image.tag {
            plan.packaging.extend(jobs::extension_image_artifacts(tag));
            if image.load {
                plan.notes.push(format!(
                    "{tag}: the engine's variant is loaded into the engine"
                ));
            }
            if image.push {
                plan.notes.push(format!(
                    "{tag}: the index and both variants are pushed to its registry"
                ));
            }
        }
        plan.notes.splice(0..0, notes);
        Ok(plan)
    }

    fn check_tree(&self, info: &SourceInfo) -> Result<()> {
        for c in &self.components {
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
        Ok(())
    }

    async fn finish(
        &self,
        request: &Request,
        built: Built<'_>,
        ui: &Ui,
        interrupt: &Interrupt,
    ) -> Result<Option<PathBuf>> {
        let binaries = building::binaries(built.ran);
        let info = built.info();
        let toolchain = toolchain(info, Some(built.fleet.first()), &binaries)?;
        let source = source_record(info);
        let bin = request.out.join("bin");
        let out = request.out.clone();
        ui.phase(
            "package",
            &format!("extension layout in {}", out.join(extension::DIR).display()),
        );
        let total = total_size(binaries.iter().cloned());
        let (components, platforms) = (self.components.clone(), self.platforms.clone());
        let record = Some(built.record()?);
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
        if let Some(image_plan) = &self.image {
            let (c, p) = (&self.components, &self.platforms);
            crate::exec::extension_image::run(image_plan, &request.out, info, c, p, ui, interrupt)
                .await?;
        }
        report_extension(&manifest, &request.out, ui);
        Ok(Some(request.out.join(extension::DIR)))
    }
}

/// `kbuild extension`.
pub async fn extension(
    args: &ExtensionArgs,
    invocation: &Invocation,
    ui: &Ui,
    interrupt: &Interrupt,
) -> Result<()> {
    let (components, platforms) = extension_inputs(args)?;
    let request = Request {
        spec: resolve::resolve_source(&args.source)?,
        overrides: Overrides::from_env(args.source.git_version.clone())?,
        git_version: args.source.git_version.clone(),
        settings: resolve::resolve_engine(&args.engine)?,
        out: args.out.clone(),
        sign_key: args.sign_key.clone(),
        last_engines: invocation.last_engines(&args.out),
    };
    let command = Extension {
        args,
        components,
        platforms,
        // Checked before a run builds anything; a plan may be made where the extras are not.
        image: match invocation.planning() {
            Some(_) => None,
            None => image_plan(&args.image)?,
        },
    };
    building::run(&command, &request, invocation, ui, interrupt).await
}

/// None without `--tag`; the checked image request with it.
fn image_plan(
    args: &crate::cli::ExtensionImageArgs,
) -> Result<Option<crate::exec::extension_image::Plan>> {
    let Some(tag) = &args.tag else {
        return Ok(None);
    };
    let plan = crate::exec::extension_image::Plan {
        reference: crate::imageref::ImageRef::parse(tag)?,
        extras: crate::package::extimage::Extras {
            metadata: args.metadata.clone(),
            icon: args.icon.clone(),
            ui: args.ui.clone(),
        },
        labels: args.labels.clone(),
        load: args.load,
        push: args.push,
        insecure_registry: args.insecure_registry,
    };
    crate::exec::extension_image::check(plan).map(Some)
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
