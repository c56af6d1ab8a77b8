//! What the resolver tells the executor about engines: the settings every job shares, and
//! the facts an engine gives once it is asked (or prepared).

use std::path::PathBuf;
use std::time::Duration;

use crate::checks::CheckPlan;

/// Engine settings shared by every command that builds.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    pub image: Option<String>,
    pub stall_timeout: Option<Duration>,
    pub memory_limit: Option<u64>,
    pub network: bool,
    /// Bind-mount the tree or copy it through the API; None: decided by the engine endpoint.
    pub transfer: Option<crate::engine::transfer::Transfer>,
    /// Rebuild even when the fingerprint says the outputs are up to date.
    pub force: bool,
    /// Docker (a build container) or host (the local Go and make).
    pub kind: crate::plan::EngineKind,
    /// Thresholds and skipped checks for the prerequisite checks.
    pub checks: CheckPlan,
    /// The user's variables that reach the build (an allowlist; see `jobs::user_env`).
    pub user_env: Vec<(String, String)>,
    /// The Go build cache of host builds, unless the user set GOCACHE.
    pub host_gocache: Option<PathBuf>,
    /// A saved plan's image id: the engine's image must be this one, checked before
    /// anything is made with it.
    pub expect_image_id: Option<String>,
    /// `--engines`: several engines with how many jobs each takes at a time; empty for the
    /// one engine `--context` chooses.
    pub engines: Vec<(String, usize)>,
    /// Fail when one of `engines` does not answer at the start.
    pub require_all_engines: bool,
    /// CPUs each build container may use.
    pub cpus: Option<f64>,
    /// The engine this builder talks to, when not the run's own (one of `engines`).
    pub endpoint: Option<crate::engine::endpoint::Endpoint>,
    /// `--cache-from`: Go caches imported into every engine before the jobs run.
    pub cache_from: Vec<PathBuf>,
}

/// What the engine tells before anything runs: where it is, who builds, which image.
#[derive(Debug, Clone)]
pub struct EngineFacts {
    pub kind: crate::plan::EngineKind,
    pub endpoint: String,
    pub endpoint_from: String,
    /// The builder image as named, or `host go1.24.4`.
    pub image: String,
    /// The image id when the engine has the image (Docker), or the host Go's identity.
    pub image_id: Option<String>,
    /// The image's `repository@sha256:...`, when the engine knows one.
    pub repo_digest: Option<String>,
    /// Bind or copy (Docker).
    pub transfer: Option<crate::engine::transfer::Transfer>,
    /// uid:gid builds run as; None on a rootless engine.
    pub user: Option<(u32, u32)>,
}

impl EngineFacts {
    /// The Go cache volume: named by the image id and the user, so known once the image is.
    pub fn cache_volume(&self) -> Option<String> {
        (self.kind == crate::plan::EngineKind::Docker)
            .then(|| {
                let id = self.image_id.as_ref()?;
                Some(crate::engine::cache::volume_name(
                    id,
                    self.user.map_or(0, |u| u.0),
                ))
            })
            .flatten()
    }
}

/// An engine as the plan sees it: its name, its facts, how many jobs it takes at a time.
#[derive(Debug, Clone)]
pub struct EngineSlot {
    pub name: String,
    pub facts: EngineFacts,
    pub capacity: usize,
}
