//! Build engines: what runs a build job. The Docker engine runs make in a container
//! through the Engine API; the host engine runs the local Go and make.
//! Engines report through `ui::Ui`; they never draw anything themselves.

pub mod base_image;
pub mod cache;
pub mod extract;
pub mod image_load;

pub mod cache_export;
pub mod cache_helper;
pub mod cache_import;
pub mod cache_manifest;
pub mod cache_volume;
pub mod client;
pub mod docker;
pub mod endpoint;
pub mod guard;
pub mod hermetic;
pub mod host;
pub mod listing;
pub mod owner;
pub mod pin;

pub mod podman;
pub mod ssh;
pub mod sync;
pub mod transfer;

/// Every object kbuild creates in the engine carries this label, so `kbuild clean` finds it.
pub const LABEL_MANAGED: &str = "io.kbuild.managed";
/// Build containers also carry the tree they build, so one run's objects can be told apart.
pub const LABEL_SOURCE: &str = "io.kbuild.source";
/// Where the tree is mounted inside a build container, as upstream does.
pub const CONTAINER_SRC: &str = "/go/src/k8s.io/kubernetes";
/// KUBE_OUTPUT_SUBPATH for containerized builds, as upstream's build/common.sh sets it.
pub const DOCKER_OUTPUT_SUBPATH: &str = "_output/dockerized";
/// KUBE_OUTPUT_SUBPATH for host builds (upstream's default).
pub const HOST_OUTPUT_SUBPATH: &str = "_output/local";
/// Where each bind-mounted job's own `_output` is kept in the tree. make writes into
/// `${KUBE_ROOT}/_output` whatever KUBE_OUTPUT_SUBPATH says (upstream's
/// `kube::golang::place_bins` replaces `_output/bin`), so jobs of one tree that run at once
/// each get a directory of their own here, mounted over the container's `_output`.
pub const JOB_OUTPUTS: &str = "_output/jobs";

/// The tree-relative directory mounted as `_output` for a job's `attempt` (0: the first).
/// A rerun gets one of its own: the container of a lost engine may still be writing.
pub fn job_output_dir(job: &str, attempt: usize) -> String {
    let safe: String = job
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' | '.' | '+' => c,
            _ => '_',
        })
        .collect();
    match attempt {
        0 => format!("{JOB_OUTPUTS}/{safe}"),
        n => format!("{JOB_OUTPUTS}/{safe}.rerun{n}"),
    }
}

/// The job's KUBE_OUTPUT_SUBPATH as seen from the tree, when its `_output` is `dir`.
pub fn job_output_subpath(dir: &str) -> String {
    let below = DOCKER_OUTPUT_SUBPATH
        .strip_prefix("_output/")
        .unwrap_or(DOCKER_OUTPUT_SUBPATH);
    format!("{dir}/{below}")
}

/// The job's own `_output` in the tree (tree-relative), when it has one: a mount over the
/// container's `_output`, and binaries found below `JOB_OUTPUTS`.
pub fn private_output(job: &crate::plan::Job) -> Option<&str> {
    let target = format!(":{CONTAINER_SRC}/_output");
    let mounted = job.mounts.iter().any(|m| m.ends_with(&target));
    let dir = job.output_subpath.strip_suffix(&job_output_subpath(""))?;
    (mounted && dir.starts_with(JOB_OUTPUTS)).then_some(dir)
}

/// The same job with the output place of `attempt`: the mount of its own `_output` and
/// where its binaries are found move together. A job without one is returned unchanged.
pub fn with_attempt(job: &crate::plan::Job, attempt: usize) -> crate::plan::Job {
    let mut moved = job.clone();
    let Some(now) = private_output(job) else {
        return moved;
    };
    let next = job_output_dir(&job.name, attempt);
    let target = format!(":{CONTAINER_SRC}/_output");
    for m in moved.mounts.iter_mut().filter(|m| m.ends_with(&target)) {
        if let Some(source) = m.strip_suffix(&target).and_then(|s| s.strip_suffix(now)) {
            *m = format!("{source}{next}{target}");
        }
    }
    moved.output_subpath = job_output_subpath(&next);
    moved
}

/// Environment variables a user may set for upstream's make that kbuild passes into the
/// build; nothing else from the user's environment reaches a build (no tokens, no secrets).
pub const PASSTHROUGH_ENV: &[&str] = &[
    "KUBE_VERBOSE",
    "KUBE_CGO_OVERRIDES",
    "KUBE_STATIC_OVERRIDES",
    "KUBE_RACE",
    "GOFLAGS",
    "GOLDFLAGS",
    "GOGCFLAGS",
    "GOEXPERIMENT",
    "DBG",
];

/// Module settings passed into a build that has a network (`--network`).
pub const NETWORK_ENV: &[&str] = &[
    "GOPROXY",
    "GOPRIVATE",
    "GONOPROXY",
    "GONOSUMDB",
    "GOSUMDB",
    "GOINSECURE",
];
