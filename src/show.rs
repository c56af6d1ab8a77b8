//! `kbuild plan`: prints what a recipe resolves to — the equivalent command line, the source,
//! the image, and for each build job its command, mounts, environment and outputs — and runs
//! nothing (no container, no clone, no engine request).

use std::fmt::Write;
use std::path::Path;

use crate::cli::Command;
use crate::engine::{BuildJob, CONTAINER_SRC, DOCKER_OUTPUT_SUBPATH};
use crate::error::Result;
use crate::kube::Component;
use crate::plan::{self, BuildPlan};
use crate::source::{self, Overrides, SourceSpec};

pub fn plan(recipe: &Path, argv: &[String], command: &Command) -> Result<()> {
    let mut text = String::new();
    let _ = writeln!(text, "recipe:  {}", recipe.display());
    let _ = writeln!(text, "command: {}", argv.join(" "));
    match command {
        Command::Build(args) => describe_build(&mut text, &plan::resolve_build(args)?)?,
        Command::QuickRelease(args) => {
            let platforms = plan::resolve_platforms(&args.target)?;
            let _ = writeln!(text, "builds:  every client, node and server component the tree has, each for the given platforms its target set supports");
            let _ = writeln!(
                text,
                "platforms: {}",
                crate::kube::platform::list(&platforms)
            );
            let _ = writeln!(text, "outputs: {}/bin/<os>/<arch>/, {}/release-tars/ (tarballs, .sha256/.sha512, SHA256SUMS, SHA512SUMS, manifest.json)", args.out.display(), args.out.display());
        }
        Command::Extension(args) => {
            let components = if args.components.is_empty() {
                vec!["kubectl".to_string()]
            } else {
                args.components.clone()
            };
            let _ = writeln!(
                text,
                "builds:  {} for {}",
                components.join(", "),
                if args.platforms.is_empty() {
                    "darwin, linux, windows on amd64 and arm64".to_string()
                } else {
                    args.platforms.join(", ")
                }
            );
            let _ = writeln!(text, "outputs: {}/extension/<image arch>/<os>/<binary>, host-binaries.json, Dockerfile snippet", args.out.display());
        }
        _ => {}
    }
    let _ = writeln!(text, "nothing was run.");
    // A recipe's repo URL may carry a token (redact.rs).
    print!("{}", crate::redact::text(&text));
    Ok(())
}

fn describe_build(text: &mut String, plan: &BuildPlan) -> Result<()> {
    let info = match &plan.source {
        SourceSpec::Tree(root) => {
            let overrides = Overrides::from_env(plan.git_version.clone())?;
            let info = match source::inspect(root, &overrides) {
                Ok(info) => info,
                Err(e) => {
                    // A plan is also read where the tree is not (yet): say so and go on.
                    let _ = writeln!(
                        text,
                        "source:  {} (not readable here: {})",
                        root.display(),
                        e.message
                    );
                    return describe_jobs(text, plan, None);
                }
            };
            let _ = writeln!(
                text,
                "source:  {} at {} ({}, {}), SOURCE_DATE_EPOCH={}",
                info.root.display(),
                info.commit.as_deref().unwrap_or("no commit"),
                info.version.git_version,
                info.tree_state.as_str(),
                info.source_date_epoch
            );
            Some(info)
        }
        SourceSpec::Git { repo, git_ref, dir } => {
            let _ = writeln!(
                text,
                "source:  {repo} at {git_ref}, fetched into {} when run",
                dir.display()
            );
            None
        }
    };
    describe_jobs(text, plan, info)
}

fn describe_jobs(
    text: &mut String,
    plan: &BuildPlan,
    info: Option<crate::source::SourceInfo>,
) -> Result<()> {
    let image = plan
        .engine
        .image
        .clone()
        .or_else(|| info.as_ref().and_then(|i| i.default_image()))
        .unwrap_or_else(|| {
            "the kube-cross image named by the tree's build/build-image/cross/VERSION".into()
        });
    let _ = writeln!(text, "engine:  {:?}", plan.engine.kind);
    let _ = writeln!(text, "image:   {image}");
    let job = BuildJob {
        name: plan
            .components
            .iter()
            .map(|c| c.name)
            .collect::<Vec<_>>()
            .join("+"),
        components: plan.components.clone(),
        platforms: plan.platforms.clone(),
        env: info.as_ref().map(|i| i.version_env()).unwrap_or_default(),
    };
    let root = info
        .as_ref()
        .map(|i| i.root.display().to_string())
        .unwrap_or_else(|| "<checkout>".into());
    let _ = writeln!(text, "job {}:", job.name);
    let _ = writeln!(text, "  run:     {}", job.command().join(" "));
    let _ = writeln!(text, "  mount:   {root} -> {CONTAINER_SRC}");
    let _ = writeln!(
        text,
        "  mount:   Go cache volume kbuild-gocache-<image id>-<uid> -> {}",
        crate::cache::MOUNT
    );
    let network = if plan.engine.network {
        "bridge"
    } else {
        "none"
    };
    let _ = writeln!(text, "  network: {network}");
    for (k, v) in job.make_env(DOCKER_OUTPUT_SUBPATH) {
        let _ = writeln!(text, "  env:     {k}={v}");
    }
    for platform in &plan.platforms {
        for component in &plan.components {
            let path = crate::outputs::bin_path(&plan.out, component as &Component, *platform);
            let _ = writeln!(text, "  output:  {}", path.display());
        }
    }
    Ok(())
}
