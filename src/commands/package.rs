//! `kbuild package`: package an existing bin/<os>/<arch>/ tree.

use crate::cli::PackageArgs;
use crate::error::{Error, Result};
use crate::kube::component::Component;
use crate::kube::release::{self as layout, TarballKind, RELEASE_TARS};
use crate::kube::TargetSet;
use crate::outdir;
use crate::package;
use crate::resolve;
use crate::signals::Interrupt;
use crate::ui::Ui;

use super::{
    get_source, package_release, sample_binaries, source_checked_against, toolchain, Invocation,
    Packaging,
};
use crate::plan::{CommandKind, Plan};
use crate::resolve::jobs;
use crate::source::Overrides;

/// `kbuild package`.
pub async fn package(
    args: &PackageArgs,
    invocation: &Invocation,
    ui: &Ui,
    interrupt: &Interrupt,
) -> Result<()> {
    // `--out /` must be refused before its bin/ (then /bin) is scanned or read.
    outdir::check_not_precious(&args.out, None)?;
    let sign_key = super::sign::load_sign_key(args.sign_key.as_deref())?;
    let bin = args.bin.clone().unwrap_or_else(|| args.out.join("bin"));
    if !bin.is_dir() {
        return Err(Error::usage(format!(
            "{} is not a directory of built binaries",
            bin.display()
        ))
        .with_hint("name the bin/<os>/<arch>/ tree with --bin (kbuild build writes <out>/bin)"));
    }
    // Links and special files are refused here, before anything is read or written.
    let found = package::bintree::scan(&bin)?;
    let platforms = if args.target.platforms.is_empty() {
        package::release::platforms_in(&bin)
    } else {
        resolve::resolve_platforms(&args.target)?
    };
    if platforms.is_empty() {
        return Err(Error::usage(format!(
            "{} holds no <os>/<arch>/ directories",
            bin.display()
        ))
        .with_hint("build first: kbuild build kubectl --platform linux/amd64 --out out"));
    }
    let spec = source_checked_against(&args.source, &args.out)?;
    let planning = invocation.planning();
    // The tree lock, as every run takes it (a plan takes none); the output directory is
    // claimed only once a saved plan is known to hold.
    let (_tree_lock, info) = match planning {
        Some(_) => {
            let overrides = Overrides::from_env(args.source.git_version.clone())?;
            let (info, _) = super::plan_source(&spec, &overrides, invocation)?;
            let info = info.ok_or_else(|| {
                Error::usage("kbuild package plans from a tree, not a ref that is not fetched")
                    .with_hint(
                        "fetch it first with `kbuild source --ref REF`, then plan with --kube-root",
                    )
            })?;
            (None, info)
        }
        None => {
            let tree_lock = crate::outdir::lock::acquire_tree(spec.dir(), ui, interrupt).await?;
            invocation.check_remote(&spec)?;
            (Some(tree_lock), get_source(&args.source, None, ui)?)
        }
    };
    let root = info.root.clone();
    let has = |c: &Component| c.exists_in(&root);
    let mut layouts = Vec::new();
    // Test tarballs are a quick-release's: their portable files come with its test build.
    for l in layout::layouts(&platforms, &has, false) {
        // A tarball is made when its set's own binaries were built; the client binaries
        // it also carries must then be there too (packaging says which are missing).
        let set = match l.kind {
            TarballKind::Client => TargetSet::Client,
            TarballKind::Node => TargetSet::Node,
            _ => TargetSet::Server,
        };
        let own_built = l
            .components
            .iter()
            .filter(|c| c.sets.contains(&set))
            .any(|c| {
                bin.join(l.platform.os)
                    .join(l.platform.arch)
                    .join(c.file_name(l.platform))
                    .is_file()
            });
        if own_built {
            layouts.push(l);
        } else {
            ui.info(&format!(
                "no {} binaries for {} in {}: no {}",
                set.name(),
                l.platform,
                bin.display(),
                l.file_name()
            ));
        }
    }
    if layouts.is_empty() {
        return Err(
            Error::usage(format!("nothing to package in {}", bin.display())).with_hint(
                "build the client, node or server binaries first (kbuild build ... --out <dir>)",
            ),
        );
    }
    let mut notes = vec![
        "packaged by `kbuild package` from binaries kbuild did not build in this run: builderImage is unknown".to_string(),
        layout::no_test_tarballs_note("kbuild package makes the client, node and server tarballs; kbuild quick-release builds the test targets and writes them"),
    ];
    // Nothing the tree holds is dropped unsaid: a warning line and a manifest note each.
    for (rel, why) in package::bintree::not_packaged(&found, &layouts, &platforms, &has) {
        ui.warn(&format!(
            "not packaged: {}: {why}",
            bin.join(&rel).display()
        ));
        notes.push(format!("{rel} in the binary tree is not packaged: {why}"));
    }
    for (rel, mode) in package::bintree::not_executable(&found, &layouts) {
        ui.warn(&format!(
            "{} is not executable (mode {mode:04o}); its tarball entries get mode 0755, as upstream's binaries have",
            bin.join(&rel).display()
        ));
    }
    let mut plan = Plan::new(
        CommandKind::Package,
        invocation.inputs.clone(),
        jobs::absolute(&args.out),
    );
    plan.source = Some(jobs::source_facts(&info)?);
    plan.packaging = jobs::release_artifacts(&layouts, false);
    plan.notes = notes;
    // Hashed only where a plan pins them: a plain run's packaging hashes what it reads.
    if planning.is_some() || invocation.saved().is_some() {
        plan.binaries = pinned_binaries(&found)?;
    }
    if let Some(json) = planning {
        return crate::ui::show::print(&plan, json);
    }
    // A saved plan holds, or nothing is created: no --out, no lock in it.
    if let Some(saved) = invocation.saved() {
        invocation.check_source(&info)?;
        super::replay::check_binaries(saved, &plan.binaries)?;
        invocation.check(&plan)?;
    }
    // A CI job's downloaded `--bin` may be the only thing in `--out`.
    let outdir = outdir::claim_beside(&args.out, &info.root, Some(&bin))?;
    let _lock = crate::outdir::lock::acquire(&args.out, ui, interrupt).await?;
    let toolchain = toolchain(&info, None, &sample_binaries(&bin, &layouts))?;
    let what = Packaging {
        bin,
        out: &args.out,
        out_in_tree: outdir.in_tree,
        info: &info,
        layouts,
        test_portable: false,
        toolchain,
        notes: plan.notes,
        plan: None,
        images: None,
    };
    package_release(what, ui, interrupt).await?;
    super::sign::sign_after_run(sign_key.as_ref(), &args.out.join(RELEASE_TARS), ui)
}

/// Every file of the binary tree with its sha256: what a plan of `package` pins.
fn pinned_binaries(found: &[package::bintree::Found]) -> Result<Vec<crate::plan::PinnedFile>> {
    found
        .iter()
        .map(|f| {
            let (_, digests) = std::fs::File::open(&f.path)
                .and_then(crate::artifact::hash_reader)
                .map_err(|e| Error::io("cannot read", &f.path, e))?;
            Ok(crate::plan::PinnedFile {
                path: jobs::absolute(&f.path),
                sha256: digests.sha256,
            })
        })
        .collect()
}
