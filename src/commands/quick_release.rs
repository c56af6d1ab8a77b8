//! `kbuild quick-release`: build the client, node and server sets, then package them.

use crate::build::Builder;
use crate::cli::QuickReleaseArgs;
use crate::error::{Error, Result};
use crate::kube::component::Component;
use crate::kube::release::{self as layout, RELEASE_TARS};
use crate::kube::{Platform, TargetSet};
use crate::outdir;
use crate::plan;
use crate::signals::Interrupt;
use crate::ui::Ui;

use super::{
    get_source, package_release, sample_binaries, source_checked_against, toolchain, Packaging,
};

/// `kbuild quick-release`.
pub async fn quick_release(args: &QuickReleaseArgs, ui: &Ui, interrupt: &Interrupt) -> Result<()> {
    let sign_key = super::sign::load_sign_key(args.sign_key.as_deref())?;
    let platforms = plan::resolve_platforms(&args.target)?;
    // Sized for a quick-release: upstream documents 8 GB for building every set.
    let engine = plan::resolve_engine_for(&args.engine, crate::checks::Profile::QuickRelease)?;
    // The tree first, then the output directory (lock.rs: that order everywhere).
    let _tree_lock = crate::lock::acquire_source(
        &source_checked_against(&args.source, &args.out)?,
        ui,
        interrupt,
    )
    .await?;
    let info = get_source(&args.source, Some(&engine), ui)?;
    let outdir = outdir::claim(&args.out, &info.root)?;
    let _lock = crate::lock::acquire(&args.out, ui, interrupt).await?;
    let root = info.root.clone();
    let has = |c: &Component| c.exists_in(&root);
    let release = layout::plan(&platforms, &has);
    let mut notes = Vec::new();
    if !release.missing.is_empty() {
        let names: Vec<&str> = release.missing.iter().map(|c| c.name).collect();
        let note = format!(
            "the tree lacks these upstream targets, so no tarball holds them: {}",
            names.join(", ")
        );
        ui.info(&note);
        notes.push(note);
    }
    for set in [TargetSet::Server, TargetSet::Node] {
        let skipped: Vec<Platform> = release
            .skipped
            .iter()
            .filter(|(s, _)| *s == set)
            .map(|(_, p)| *p)
            .collect();
        if !skipped.is_empty() {
            let note = format!(
                "no {} binaries or tarball for {}: upstream builds the {} set for {} only",
                set.name(),
                crate::kube::platform::list(&skipped),
                set.name(),
                crate::kube::platform::list(set.platforms())
            );
            ui.info(&note);
            notes.push(note);
        }
    }
    if release.jobs.is_empty() {
        return Err(Error::usage(format!(
            "{} has none of the upstream client, node or server targets",
            info.root.display()
        ))
        .with_hint("point --kube-root at a Kubernetes tree (cmd/kubectl, cmd/kubelet, ...)"));
    }
    let builder = Builder::prepare(info, &engine, ui, interrupt).await?;
    for job in &release.jobs {
        builder
            .build(
                &format!("quick-release-{}", job.name),
                &job.components,
                &job.platforms,
                &args.out,
                ui,
                interrupt,
            )
            .await?;
    }
    let layouts = layout::layouts(&platforms, &has);
    let bin = args.out.join("bin");
    let toolchain = toolchain(
        &builder.info,
        Some(&builder),
        &sample_binaries(&bin, &layouts),
    );
    let what = Packaging {
        bin,
        out: &args.out,
        out_in_tree: outdir.in_tree,
        info: &builder.info,
        layouts,
        toolchain,
        notes,
    };
    package_release(what, ui, interrupt).await?;
    super::sign::sign_after_run(sign_key.as_ref(), &args.out.join(RELEASE_TARS), ui)
}
