//! `kbuild quick-release`: build the client, node, server and test sets, then package them.

use std::path::PathBuf;

use crate::cli::QuickReleaseArgs;
use crate::error::{Error, Result};
use crate::exec::settings::EngineSlot;
use crate::kube::component::Component;
use crate::kube::release::{self as layout, ReleaseJob, RELEASE_TARS};
use crate::kube::{Platform, TargetSet};
use crate::plan::{CommandKind, Plan};
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
}

impl QuickRelease {
    /// Upstream's release grouping of the platforms, for the tree's targets (every upstream
    /// target for a ref not fetched yet).
    fn release(&self, info: Option<&SourceInfo>) -> layout::ReleasePlan {
        let has = |c: &Component| info.is_none_or(|i| c.exists_in(&i.root));
        layout::plan(&self.platforms, &has, self.tests)
    }

    /// The binary tarballs of the tree's targets.
    fn layouts(&self, has: &dyn Fn(&Component) -> bool) -> Vec<layout::Layout> {
        layout::layouts(&self.platforms, has, self.tests)
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
        plan.packaging = jobs::release_artifacts(&self.layouts(&has), self.tests);
        plan.notes = notes;
        Ok(plan)
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
        let builder = built.fleet.first();
        let toolchain = toolchain(info, Some(builder), &sample_binaries(&bin, &layouts))?;
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
        };
        package_release(what, ui, interrupt).await?;
        Ok(Some(request.out.join(RELEASE_TARS)))
    }
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
            tests: !args.no_test_tarballs,
        },
        &request,
        invocation,
        ui,
        interrupt,
    )
    .await
}
