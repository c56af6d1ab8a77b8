//! `kbuild quick-release`: build the client, node, server and test sets, then package them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use crate::cli::QuickReleaseArgs;
use crate::error::{Error, Result};
use crate::exec::images::{self, ImageRequest};
use crate::exec::settings::EngineSlot;
use crate::kube::component::Component;
use crate::kube::release::{self as layout, ReleaseJob, RELEASE_TARS};
use crate::kube::{Platform, TargetSet};
use crate::plan::{CommandKind, Plan, PlannedImage};
use crate::resolve;
use crate::resolve::jobs;
use crate::resolve::schedule::Work;
use crate::signals::Interrupt;
use crate::source::{Overrides, SourceInfo};
use crate::ui::Ui;

use super::building::{self, Building, Built, Request};
use super::{package_release, sample_binaries, toolchain, Invocation, Packaging};

struct QuickRelease {
    platforms: Vec<Platform>,
    /// Build the test targets and write the test tarballs (not `--no-test-tarballs`).
    tests: bool,
    /// The server images asked for; None with `--no-images`.
    images: Option<ImageRequest>,
    /// The bases the engine has (`exec::images::key` to image id), asked by `facts`.
    bases: Mutex<BTreeMap<String, String>>,
    /// `--images-only`: upstream's `make release-images`, the server binaries (and kubectl)
    /// and their images, no tarballs.
    images_only: bool,
}

impl QuickRelease {
    /// Upstream's release grouping of the platforms, for the tree's targets (every upstream
    /// target for a ref not fetched yet).
    fn release(&self, info: Option<&SourceInfo>) -> layout::ReleasePlan {
        let has = |c: &Component| self.wanted(c) && info.is_none_or(|i| c.exists_in(&i.root));
        layout::plan(&self.platforms, &has, self.tests)
    }

    /// The binary tarballs of the tree's targets.
    fn layouts(&self, has: &dyn Fn(&Component) -> bool) -> Vec<layout::Layout> {
        layout::layouts(&self.platforms, has, self.tests)
    }

    /// Whether the run builds `c`: everything, or with `--images-only` what has an image.
    fn wanted(&self, c: &Component) -> bool {
        !self.images_only || images::has_image(c.name)
    }

    /// The server images of the tree's server layouts, on the bases found so far.
    fn images(&self, info: Option<&SourceInfo>, git_version: &str) -> Vec<PlannedImage> {
        let Some(request) = &self.images else {
            return Vec::new();
        };
        let has = |c: &Component| info.is_none_or(|i| c.exists_in(&i.root));
        let layouts = layout::layouts(&self.platforms, &has, false);
        // kube::build::get_docker_wrapped_binaries and the bases build/common.sh pins.
        let pins = images::tree_pins(info.map(|i| i.root.as_path()));
        let bases = self.bases.lock().expect("bases").clone();
        images::planned(request, &layouts, &pins, git_version, &bases)
    }
}

impl Building for QuickRelease {
    fn kind(&self) -> CommandKind {
        CommandKind::QuickRelease
    }

    fn plan(
        &self,
        request: &Request,
        inputs: Vec<crate::plan::Input>,
        info: Option<&SourceInfo>,
        slots: &[EngineSlot],
        mut notes: Vec<String>,
    ) -> Result<Plan> {
        let release = self.release(info);
        if !release.missing.is_empty() {
            let names: Vec<&str> = release.missing.iter().map(|c| c.name).collect();
            notes.push(format!(
                "the tree lacks these upstream targets, so no tarball holds them: {}",
                names.join(", ")
            ));
        }
        let mut sets = vec![TargetSet::Server, TargetSet::Node];
        if self.tests {
            sets.push(TargetSet::Test);
        } else {
            notes.push(layout::no_test_tarballs_note("--no-test-tarballs"));
        }
        for set in sets {
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
            return Err(no_targets(request.spec.dir()));
        }
        let work: Vec<Work> = release.jobs.iter().map(release_work).collect();
        let mut plan = building::plan_of(self.kind(), request, inputs, info, slots, work)?;
        let has = |c: &Component| info.is_none_or(|i| c.exists_in(&i.root));
        if !self.images_only {
            plan.packaging = jobs::release_artifacts(&self.layouts(&has), self.tests);
        }
        let git_version = info
            .map(|i| i.version.git_version.clone())
            .or_else(|| request.git_version.clone())
            .unwrap_or_else(|| "unknown".to_string());
        plan.images = self.images(info, &git_version);
        if self.images.is_none() {
            notes.push(layout::NO_IMAGES_NOTE.to_string());
        }
        let missing: Vec<String> = images::wanted(&plan.images)
            .into_iter()
            .filter(|(r, a)| {
                plan.images
                    .iter()
                    .any(|p| p.base_ref == *r && p.arch == *a && p.base_id.is_none())
            })
            .map(|(r, a)| images::key(&r, &a))
            .collect();
        if !missing.is_empty() {
            notes.push(format!(
                "the engine lacks the base images {}: a run refuses before building (--base-image BASE=REF, or --no-images)",
                missing.join(", ")
            ));
        }
        plan.notes = notes;
        Ok(plan)
    }

    async fn facts(&self, info: Option<&SourceInfo>, refuse: bool) -> Result<()> {
        let wanted = images::wanted(&self.images(info, "unknown"));
        let found = images::find_bases(&wanted, refuse).await?;
        *self.bases.lock().expect("bases") = found;
        Ok(())
    }

    /// Refused before the engine is prepared: a tree without targets needs no image.
    fn check_tree(&self, info: &SourceInfo) -> Result<()> {
        match self.release(Some(info)).jobs.is_empty() {
            true => Err(no_targets(&info.root)),
            false => Ok(()),
        }
    }

    async fn finish(
        &self,
        request: &Request,
        built: Built<'_>,
        ui: &Ui,
        interrupt: &Interrupt,
    ) -> Result<Option<PathBuf>> {
        let info = built.info();
        let root = info.root.clone();
        let has = |c: &Component| c.exists_in(&root);
        let layouts = self.layouts(&has);
        let bin = request.out.join("bin");
        if self.images_only {
            return images_only(request, &built, &bin, ui, interrupt).await;
        }
        let builder = built.fleet.first();
        let toolchain = toolchain(info, Some(builder), &sample_binaries(&bin, &layouts))?;
        let images = match built.plan.images.is_empty() {
            true => None,
            false => {
                ui.phase(
                    "images",
                    &crate::ui::count(built.plan.images.len(), "server image", "server images"),
                );
                Some(
                    images::write(
                        &built.plan.images,
                        &bin,
                        &request.out,
                        &info.version.git_version,
                        info.source_date_epoch,
                        ui,
                        interrupt,
                    )
                    .await?,
                )
            }
        };
        let what = Packaging {
            bin,
            out: &request.out,
            out_in_tree: built.out_in_tree.clone(),
            info,
            layouts,
            test_portable: self.tests,
            toolchain,
            notes: built.plan.notes.clone(),
            plan: Some(built.record()?),
            images,
        };
        package_release(what, ui, interrupt).await?;
        Ok(Some(request.out.join(RELEASE_TARS)))
    }
}

/// `--images-only`: the images of the built binaries into `<out>/release-images/<arch>/`.
async fn images_only(
    request: &Request,
    built: &Built<'_>,
    bin: &std::path::Path,
    ui: &Ui,
    interrupt: &Interrupt,
) -> Result<Option<PathBuf>> {
    let info = built.info();
    ui.phase(
        "images",
        &crate::ui::count(built.plan.images.len(), "server image", "server images"),
    );
    let written = images::write(
        &built.plan.images,
        bin,
        &request.out,
        &info.version.git_version,
        info.source_date_epoch,
        ui,
        interrupt,
    )
    .await?;
    images::move_in(&written, &request.out)?;
    let mut size = 0;
    for r in &written.records {
        size += r.size;
        ui.artifact_digest(&r.file, r.size, Some(&r.sha256));
        ui.detail(&format!(
            "{}: config {}, manifest {}, on {} ({})",
            r.names.join(", "),
            r.config_digest,
            r.manifest_digest,
            r.base,
            r.base_digest
        ));
    }
    ui.finished(&format!(
        "wrote {} ({})",
        crate::ui::count(written.records.len(), "server image", "server images"),
        crate::units::human_bytes(size)
    ));
    Ok(None)
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
    let mut platforms = resolve::resolve_platforms(&args.target)?;
    let images = resolve::resolve_images(&args.images)?;
    if args.images.images_only {
        platforms = server_platforms(platforms)?;
    }
    let request = Request {
        spec: resolve::resolve_source(&args.source)?,
        overrides: Overrides::from_env(args.source.git_version.clone())?,
        git_version: args.source.git_version.clone(),
        // Sized for a quick-release: upstream documents 8 GB for building every set.
        settings: resolve::resolve_engine_for(&args.engine, crate::checks::Profile::QuickRelease)?,
        out: args.out.clone(),
        sign_key: args.sign_key.clone(),
        last_engines: invocation.last_engines(&args.out),
    };
    building::run(
        &QuickRelease {
            platforms,
            // --images-only builds the images' binaries alone, as make release-images.
            tests: !args.no_test_tarballs && !args.images.images_only,
            images,
            bases: Mutex::new(BTreeMap::new()),
            images_only: args.images.images_only,
        },
        &request,
        invocation,
        ui,
        interrupt,
    )
    .await
}

/// `--images-only` builds for server platforms only (upstream builds images for those); any
/// other is refused, not dropped.
fn server_platforms(platforms: Vec<Platform>) -> Result<Vec<Platform>> {
    let server = TargetSet::Server.platforms();
    let other: Vec<Platform> = platforms
        .iter()
        .copied()
        .filter(|p| !server.contains(p))
        .collect();
    if !other.is_empty() {
        return Err(Error::usage(format!(
            "--images-only builds server images, and {} is no server platform",
            crate::kube::platform::list(&other)
        ))
        .with_hint(format!(
            "name one of {}",
            crate::kube::platform::list(server)
        )));
    }
    Ok(platforms)
}
