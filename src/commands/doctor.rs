//! `kbuild doctor`: every prerequisite check, each as pass / warn / fail with a detail and a
//! fix hint. Exits 0 when nothing fails (warnings allowed), 3 (a check failed) otherwise.

use crate::checks::preflight;
use crate::checks::{self, CheckPlan, Checker, Status};
use crate::cli::{DoctorArgs, EngineKind};
use crate::engine::docker::DockerEngine;
use crate::error::{Error, Result};
use crate::source::{self, Overrides, SourceInfo};
use crate::ui::Ui;
use crate::units::human_bytes;
use crate::units::parse_size;

pub async fn run(
    args: &DoctorArgs,
    invocation: &crate::commands::Invocation,
    ui: &Ui,
) -> Result<()> {
    let plan = CheckPlan::new(
        args.profile,
        args.min_memory.as_deref().map(parse_size).transpose()?,
        args.min_disk.as_deref().map(parse_size).transpose()?,
        &args.skip_checks,
    )?;
    if let Some(json) = invocation.planning() {
        let mut shown = crate::plan::Plan::new(
            crate::plan::CommandKind::Doctor,
            invocation.inputs.clone(),
            crate::resolve::jobs::absolute(&args.out),
        );
        let tree = source::check_tree(&args.kube_root).ok();
        shown.source = tree
            .as_deref()
            .and_then(|root| source::inspect(root, &Overrides::default()).ok())
            .map(|info| crate::resolve::jobs::source_facts(&info))
            .transpose()?;
        shown.checks = crate::resolve::jobs::check_steps(args.engine.into(), &plan, true);
        return crate::ui::show::print(&shown, json);
    }
    let mut checker = Checker::for_doctor(&plan, ui);
    // What the tree pins, when there is one (the doctor also runs outside a tree).
    let tree = source::check_tree(&args.kube_root).ok();
    crate::outdir::check_not_precious(&args.out, tree.as_deref())?;
    let info: Option<SourceInfo> = tree.as_ref().and_then(|root| {
        source::inspect(
            root,
            &Overrides {
                git_version: Some("v0.0.0".into()),
                source_date_epoch: Some(0),
            },
        )
        .ok()
    });

    checker.run("git", checks::git)?;
    let mut places = vec![("the outputs", args.out.clone())];
    if let Some(root) = &tree {
        places.insert(0, ("the source", root.clone()));
    }

    match args.engine {
        EngineKind::Docker => {
            let connected = DockerEngine::connect().await;
            let image = args
                .image
                .clone()
                .filter(|i| !i.is_empty())
                .or_else(|| info.as_ref().and_then(SourceInfo::default_image))
                .ok_or_else(|| {
                    format!(
                        "no builder image to check: {} is not a Kubernetes tree with build/build-image/cross/VERSION",
                        args.kube_root.display()
                    )
                });
            preflight::docker(
                &mut checker,
                connected.as_ref(),
                image.as_deref().map_err(String::as_str),
                None,
                places,
            )
            .await?;
            preflight::skip(&mut checker, &["go", "make"], "only for --engine host")?;
        }
        EngineKind::Host => {
            preflight::skip(
                &mut checker,
                &["engine"],
                "--engine host builds without Docker",
            )?;
            preflight::skip(
                &mut checker,
                &["image", "arch"],
                "--engine host uses no image",
            )?;
            preflight::host(
                &mut checker,
                info.as_ref().and_then(|i| i.go_version.as_deref()),
                tree.as_deref(),
                &places,
            )?;
        }
    }

    let mut results = checker.results;
    // Report in the documented order.
    let order = |name: &str| checks::NAMES.iter().position(|(n, _)| *n == name);
    results.sort_by_key(|c| order(c.name));
    let engine_name = match args.engine {
        EngineKind::Docker => "docker",
        EngineKind::Host => "host",
    };
    let chosen = match args.engine {
        EngineKind::Docker => crate::engine::endpoint::current().ok(),
        EngineKind::Host => None,
    };
    let header = format!(
        "kbuild doctor: {} with the {engine_name} engine (memory >= {}, disk >= {} free)",
        args.profile.label(),
        human_bytes(plan.min_memory),
        human_bytes(plan.min_disk)
    );
    checks::print_report(
        ui,
        &header,
        serde_json::json!({
            "for": args.profile,
            "engine": engine_name,
            "min_memory": plan.min_memory,
            "min_disk": plan.min_disk,
            "warn_disk": plan.warn_disk,
            "endpoint": chosen.as_ref().map(|c| c.to_json()),
        }),
        &results,
    );
    let failed: Vec<&checks::Check> = results
        .iter()
        .filter(|c| c.status == Status::Fail)
        .collect();
    let warned = results.iter().filter(|c| c.status == Status::Warn).count();
    match failed.as_slice() {
        [] => {
            ui.finished(&format!(
                "all checks passed ({}) for {}",
                crate::ui::count(warned, "warning", "warnings"),
                args.profile.label()
            ));
            Ok(())
        }
        [one] => Err(
            Error::check(format!("check {} failed: {}", one.name, one.detail))
                .with_hint(one.hint.clone().unwrap_or_default()),
        ),
        many => {
            let names: Vec<&str> = many.iter().map(|c| c.name).collect();
            Err(Error::check(format!(
                "{} checks failed: {}",
                many.len(),
                names.join(", ")
            ))
            .with_hint(format!(
                "first: {}",
                many[0].hint.clone().unwrap_or_default()
            )))
        }
    }
}
