//! Build engines: what runs a build job. The Docker engine runs make in a container
//! through the Engine API; the host engine runs the local Go and make.
//! Engines report through `ui::Ui`; they never draw anything themselves.

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
