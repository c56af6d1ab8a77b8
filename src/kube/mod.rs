//! What is true of a Kubernetes tree: components, target sets, platforms, version rules,
//! and binary formats. Pure logic, no I/O beyond reading a file's header.

pub mod binary;
pub mod buildinfo;
pub mod component;
pub mod images;
pub mod platform;
pub mod release;
pub mod version;

pub use component::{Component, TargetSet};
pub use platform::Platform;

/// Where upstream's build image lives (KUBE_CROSS_IMAGE in build/common.sh); its tag is the
/// tree's build/build-image/cross/VERSION.
pub const KUBE_CROSS_IMAGE: &str = "registry.k8s.io/build-image/kube-cross";
