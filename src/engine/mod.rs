//! Build engines: what runs a build job. The Docker engine runs make in a container
//! through the Engine API; the host engine runs the local Go and make.
//! Engines report through `ui::Ui`; they never draw anything themselves.

pub mod cache_volume;
pub mod docker;
pub mod endpoint;
pub mod guard;
pub mod hermetic;
pub mod host;
pub mod load;
pub mod podman;
pub mod ssh;
pub mod sync;
pub mod transfer;

use std::path::{Path, PathBuf};

use crate::kube::{Component, Platform};

/// Where upstream's build image lives (KUBE_CROSS_IMAGE).
pub const KUBE_CROSS_IMAGE: &str = "registry.k8s.io/build-image/kube-cross";
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

/// One `make all WHAT=... KUBE_BUILD_PLATFORMS=...` run.
#[derive(Debug, Clone)]
pub struct BuildJob {
    /// A short name for logs and progress, e.g. `kubectl` or `client`.
    pub name: String,
    pub components: Vec<&'static Component>,
    pub platforms: Vec<Platform>,
    /// Version stamping and other make variables, already resolved.
    pub env: Vec<(String, String)>,
}

impl BuildJob {
    /// `WHAT=cmd/kubectl cmd/kubeadm`.
    pub fn what(&self) -> String {
        self.components
            .iter()
            .map(|c| c.target)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// `linux/amd64 darwin/arm64`.
    pub fn platforms_value(&self) -> String {
        self.platforms
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The make command line.
    pub fn command(&self) -> Vec<String> {
        vec!["make".into(), "all".into(), format!("WHAT={}", self.what())]
    }

    /// The environment of the make process, given the output subpath it writes to.
    pub fn make_env(&self, output_subpath: &str) -> Vec<(String, String)> {
        let mut env = vec![
            ("KUBE_BUILD_PLATFORMS".to_string(), self.platforms_value()),
            (
                "KUBE_OUTPUT_SUBPATH".to_string(),
                output_subpath.to_string(),
            ),
            ("GOPROXY".to_string(), "off".to_string()),
        ];
        env.extend(self.env.iter().cloned());
        for name in PASSTHROUGH_ENV {
            if let Ok(value) = std::env::var(name) {
                if !env.iter().any(|(k, _)| k == name) {
                    env.push((name.to_string(), value));
                }
            }
        }
        env
    }

    /// Where make leaves one binary, relative to the tree.
    pub fn built_path(
        root: &Path,
        output_subpath: &str,
        component: &Component,
        platform: Platform,
    ) -> PathBuf {
        root.join(output_subpath)
            .join("bin")
            .join(platform.os)
            .join(platform.arch)
            .join(component.file_name(platform))
    }
}
