//! Command-line definitions only (clap). Resolving them into a plan happens elsewhere.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "kbuild",
    version,
    about = "Build Kubernetes from source in build containers and package reproducible release artifacts",
    long_about = None,
    after_help = "Exit codes: 0 ok, 1 internal error, 2 bad input, 3 a prerequisite check failed, 4 the build failed, \
5 the container engine failed, 6 source/git error, 7 verification mismatch, 8 file I/O error, 9 output directory locked, \
130 Ctrl-C, 143 SIGTERM."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct GlobalArgs {
    /// Print one JSON event per line on stdout and a final summary object
    #[arg(long, global = true)]
    pub json: bool,
    /// Print nothing but errors
    #[arg(long, short, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print more detail (image pulls, commands)
    #[arg(long, short, global = true)]
    pub verbose: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Build components (kubectl, kubeadm, kubelet, ...) for one or more platforms
    #[command(after_help = "Examples:
  kbuild build kubectl --platform darwin/arm64 --kube-root ~/src/kubernetes
  kbuild build kubectl kubeadm kubelet --platform linux/amd64 --platform linux/arm64
  kbuild build kubectl --kube-root tests/fixtures/mini-kube --image kbuild-builder:go1.24-trixie --out out")]
    Build(BuildArgs),
}

#[derive(Args, Debug, Clone)]
pub struct BuildArgs {
    /// Components to build, by binary name (kubectl) or target (cmd/kubectl)
    #[arg(required = true, value_name = "COMPONENT")]
    pub components: Vec<String>,
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub source: SourceArgs,
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Output directory: binaries land in <out>/bin/<os>/<arch>/, logs in <out>/logs/
    #[arg(long, default_value = "out", value_name = "DIR")]
    pub out: PathBuf,
}

#[derive(Args, Debug, Clone)]
pub struct TargetArgs {
    /// Platform os/arch to build for; repeat for several [default: KUBE_BUILD_PLATFORMS, else linux/<host arch>]
    #[arg(long = "platform", value_name = "OS/ARCH")]
    pub platforms: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct SourceArgs {
    /// The Kubernetes checkout to build
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub kube_root: PathBuf,
    /// Version to stamp instead of the one git describe gives (like KUBE_GIT_VERSION)
    #[arg(long = "version", value_name = "VERSION")]
    pub git_version: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct EngineArgs {
    /// Builder image [default: the kube-cross image named by build/build-image/cross/VERSION]
    #[arg(long, value_name = "IMAGE", env = "KBUILD_IMAGE")]
    pub image: Option<String>,
    /// Stop a build that prints nothing for this many seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 1800)]
    pub stall_timeout: u64,
    /// Memory limit for the build container, e.g. 6g or 512m [default: none]
    #[arg(long, value_name = "SIZE")]
    pub memory: Option<String>,
    /// Give the build container a network (builds are offline by default, GOPROXY=off)
    #[arg(long)]
    pub network: bool,
    /// Rebuild even when the inputs did not change since the last build into the same --out
    #[arg(long)]
    pub force: bool,
}
