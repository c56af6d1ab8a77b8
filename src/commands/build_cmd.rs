//! `kbuild build`: build components for platforms on one engine or several.

use std::path::PathBuf;

use crate::error::Result;
use crate::exec::settings::EngineSlot;
use crate::plan::{CommandKind, Plan};
use crate::resolve::schedule::Work;
use crate::resolve::BuildRequest;
use crate::signals::Interrupt;
use crate::source::{Overrides, SourceInfo};
use crate::ui::Ui;

use super::building::{self, Building, Built, Request};
use super::Invocation;

struct Build<'a> {
    request: &'a BuildRequest,
}

impl Building for Build<'_> {
    fn kind(&self) -> CommandKind {
        CommandKind::Build
    }

    /// One job for all platforms; one per platform when there are several lanes.
    fn plan(
        &self,
        request: &Request,
        inputs: Vec<crate::plan::Input>,
        info: Option<&SourceInfo>,
        slots: &[EngineSlot],
        notes: Vec<String>,
    ) -> Result<Plan> {
        let whole = Work {
            name: crate::kube::component::build_job_name(&self.request.components),
            components: self.request.components.clone(),
            platforms: self.request.platforms.clone(),
        };
        let mut plan = building::plan_of(self.kind(), request, inputs, info, slots, vec![whole])?;
        plan.notes = notes;
        Ok(plan)
    }

    async fn finish(
        &self,
        request: &Request,
        built: Built<'_>,
        ui: &Ui,
        _interrupt: &Interrupt,
    ) -> Result<Option<PathBuf>> {
        ui.phase("outputs", &request.out.display().to_string());
        let mut count = 0;
        for r in built.ran {
            for (path, size) in &r.built.binaries {
                ui.artifact(&building::shown(path, &request.out), *size);
                count += 1;
            }
        }
        let up_to_date = built.ran.iter().all(|r| r.built.up_to_date);
        let logs: Vec<String> = built
            .ran
            .iter()
            .map(|r| r.built.log.display().to_string())
            .collect();
        ui.finished(&format!(
            "{} {} ({}) — log: {}",
            if up_to_date { "up to date:" } else { "built" },
            crate::ui::count(count, "binary", "binaries"),
            built.info().version.git_version,
            logs.join(", ")
        ));
        Ok(None)
    }
}

/// `kbuild build`: run it, print its plan, or run a saved plan.
pub async fn build(
    request: &BuildRequest,
    invocation: &Invocation,
    ui: &Ui,
    interrupt: &Interrupt,
) -> Result<()> {
    let common = Request {
        spec: request.source.clone(),
        overrides: Overrides::from_env(request.git_version.clone())?,
        git_version: request.git_version.clone(),
        settings: request.engine.clone(),
        out: request.out.clone(),
        sign_key: None,
        last_engines: invocation.last_engines(&request.out),
    };
    building::run(&Build { request }, &common, invocation, ui, interrupt).await
}
