//! The plan: everything a command will do, resolved once before anything runs (`resolve`),
//! printed by `kbuild plan`, saved as JSON, and executed exactly by the commands. Build
//! containers are created from a job's fields and nothing else, so what the plan shows is
//! what the engine is asked to run. This module is data only; it calls nothing.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The plan file format `kbuild run` understands. 2: a plan pins its inputs (the tree's
/// changes, the image's repository digest, `package`'s binaries).
pub const FORMAT: u32 = 2;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The plan file format (FORMAT).
    pub format: u32,
    /// The kbuild version that made the plan.
    pub kbuild_version: String,
    pub command: CommandKind,
    /// Every option with its value and where it came from (flag, environment, recipe,
    /// default); what manifest.json records as the run's inputs. Secrets are redacted.
    pub inputs: Vec<Input>,
    /// The tree and its facts; None for a doctor run outside a tree.
    pub source: Option<SourceFacts>,
    /// Where builds run; None when nothing is built (package). With several engines, the
    /// first one's; every job names its own.
    pub engine: Option<EngineChoice>,
    /// The engines jobs are spread over (one unless `--engines`).
    #[serde(default)]
    pub engines: Vec<PlannedEngine>,
    /// The prerequisite checks, in the order they run.
    pub checks: Vec<CheckStep>,
    /// The build jobs, in the order they run.
    pub jobs: Vec<Job>,
    /// What is written after the builds.
    pub packaging: Vec<Artifact>,
    /// The output directory.
    pub out: PathBuf,
    /// Things the user should know (targets the tree lacks, sets upstream skips).
    pub notes: Vec<String>,
    /// `package`: every file of the binary tree it packages, with its sha256.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub binaries: Vec<PinnedFile>,
    /// The engine each job last ran on in this `--out`, as read when the plan was made: a
    /// job goes back there, where its Go cache is warm. Pinned, so a saved plan replays
    /// its own assignment whatever ran since.
    #[serde(default, skip_serializing_if = "LastEngines::is_empty")]
    pub last_engines: LastEngines,
    /// quick-release's server images, each with its base pinned by the engine's image id;
    /// empty with `--no-images`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<PlannedImage>,
}

/// One server image (kube::release::create_docker_images_for_server): the binary, its
/// platform, its names, and the base it is built on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedImage {
    pub binary: String,
    pub arch: String,
    pub names: Vec<String>,
    /// `go-runner` or `distroless-iptables`.
    pub base: String,
    pub base_ref: String,
    /// The base's image id in the engine when the plan was made (None: not there).
    pub base_id: Option<String>,
}

/// Job name to the engine (as `--engines` names it) that last built it.
pub type LastEngines = std::collections::BTreeMap<String, String>;

/// An input file and the sha256 it must still have when the plan runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PinnedFile {
    /// Absolute.
    pub path: PathBuf,
    pub sha256: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CommandKind {
    Build,
    QuickRelease,
    Extension,
    Package,
    Doctor,
}

impl CommandKind {
    pub fn name(self) -> &'static str {
        match self {
            CommandKind::Build => "build",
            CommandKind::QuickRelease => "quick-release",
            CommandKind::Extension => "extension",
            CommandKind::Package => "package",
            CommandKind::Doctor => "doctor",
        }
    }
}

/// One resolved option.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Input {
    /// The flag's name without dashes (`platform`, `kube-root`, ...).
    pub name: String,
    pub value: serde_json::Value,
    /// `flag`, `env KUBE_BUILD_PLATFORMS`, `recipe <path>` or `default`.
    pub from: String,
}

/// The tree a run builds, with the facts its version stamping comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceFacts {
    pub root: PathBuf,
    /// `--ref` builds: the repository (without credentials) and the ref.
    pub repo: Option<String>,
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    /// The commit the run must find; None outside git. With `--ref`, the commit the ref
    /// named when the plan was made: the fetch must bring exactly that one.
    pub commit: Option<String>,
    pub tree_state: String,
    /// A tree that is not clean: the digest of its changes against the commit (of every file
    /// outside git), so that an edit after planning is noticed.
    #[serde(default)]
    pub changes: Option<String>,
    pub git_version: String,
    pub source_date_epoch: u64,
    /// The Go version the tree pins in .go-version.
    pub go_version: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    Docker,
    Host,
}

/// Where builds run, and the settings every job shares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineChoice {
    pub kind: EngineKind,
    /// The Docker endpoint (password redacted), or `host`.
    pub endpoint: String,
    /// Why this endpoint: `--context ci`, `DOCKER_HOST`, the default socket, ...
    pub endpoint_from: String,
    /// The builder image as named, and its id when the engine has it.
    pub image: String,
    pub image_id: Option<String>,
    /// `repository@sha256:...` when the engine knows where the image came from: a plan run
    /// where the image is missing pulls exactly this.
    #[serde(default)]
    pub repo_digest: Option<String>,
    /// `bind` or `copy` (Docker only).
    pub transfer: Option<String>,
    /// The uid:gid builds run as; None on a rootless engine (root there is the user).
    pub user: Option<String>,
    /// The Go cache volume (Docker only; named by the image id and the user).
    pub cache_volume: Option<String>,
    pub memory_limit: Option<u64>,
    pub network: bool,
    pub stall_timeout_secs: Option<u64>,
    /// Rebuild even when a job's inputs did not change.
    pub force: bool,
}

/// One engine of the run, and how many jobs it takes at a time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedEngine {
    /// As given to `--engines` (a context name or an endpoint), or the run's endpoint.
    pub name: String,
    pub endpoint: String,
    pub jobs: usize,
}

/// One prerequisite check and what it requires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckStep {
    pub name: String,
    pub requires: Option<String>,
    /// Left out with --skip-check.
    pub skipped: bool,
}

/// One make run: the container (or host process) exactly as it is started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// The job's name, from `kube` (e.g. `quick-release-server+node+client`).
    pub name: String,
    pub components: Vec<String>,
    pub platforms: Vec<String>,
    /// The image reference the container is created from (Docker), or `host goX`.
    pub image: String,
    pub command: Vec<String>,
    pub workdir: String,
    /// Every variable kbuild sets, `KEY=VALUE`, in order. Docker containers get these and
    /// the image's own; host builds get these over the user's environment.
    pub env: Vec<String>,
    /// Docker binds, `source:target` (the tree or its source volume, the Go cache volume).
    pub mounts: Vec<String>,
    /// `none`, `bridge`, or `host` (host builds).
    pub network: String,
    pub user: Option<String>,
    pub memory_limit: Option<u64>,
    /// CPUs the container may use (`--cpus`).
    pub cpus: Option<f64>,
    /// The engine the job is assigned to at the start (several engines: the one that frees
    /// up first takes the next job, so a job may end up on another).
    pub engine: String,
    /// Where make leaves the binaries, relative to the tree.
    pub output_subpath: String,
    /// The files installed after the job, relative to the output directory.
    pub outputs: Vec<String>,
}

/// One file the packaging writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Artifact {
    /// Relative to the output directory, e.g. `release-tars/kubernetes-client-linux-amd64.tar.gz`.
    pub file: String,
    /// `client`, `node`, `server`, `src`, `final`, `manifests`, `extension-binary`, `sums`, ...
    pub kind: String,
    pub platform: Option<String>,
    /// What goes in it: paths inside a tarball, or what a listing covers.
    pub members: Vec<String>,
}

impl Plan {
    /// An empty plan for `command`, to be filled in by the resolver.
    pub fn new(command: CommandKind, inputs: Vec<Input>, out: PathBuf) -> Plan {
        Plan {
            format: FORMAT,
            kbuild_version: env!("CARGO_PKG_VERSION").to_string(),
            command,
            inputs,
            source: None,
            engine: None,
            engines: Vec::new(),
            checks: Vec::new(),
            jobs: Vec::new(),
            packaging: Vec::new(),
            out,
            notes: Vec::new(),
            binaries: Vec::new(),
            last_engines: LastEngines::new(),
            images: Vec::new(),
        }
    }
}
