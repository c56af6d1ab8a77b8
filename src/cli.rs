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
    /// Clone or update the Kubernetes source at a tag, branch or commit, and print its version facts
    #[command(after_help = "Examples:
  kbuild source --ref v1.34.2                      # shallow clone into the cache directory
  kbuild source --ref release-1.34 --dir ~/src/k8s
  kbuild source --ref 0123456789abcdef0123456789abcdef01234567 --repo https://github.com/me/kubernetes.git")]
    Source(SourceCmdArgs),
    /// Check every prerequisite (engine, memory, CPUs, disk, git, image, Go) and say how to fix what fails
    #[command(after_help = "Exit status: 0 when no check fails (warnings allowed), 3 when one does.

Examples:
  kbuild doctor
  kbuild doctor --for quick-release --kube-root ~/src/kubernetes
  kbuild doctor --engine host --json")]
    Doctor(DoctorArgs),
    /// Remove what kbuild made: labelled containers and volumes in the engine, and the output directory
    #[command(after_help = "Examples:
  kbuild clean                 # containers, transfer volumes, ./out
  kbuild clean --caches        # also the Go build and module cache volumes
  kbuild clean --all --kube-root ~/src/kubernetes   # also _output/dockerized and _output/local in the tree")]
    Clean(CleanArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    #[command(after_help = "Examples:
  kbuild completions bash > /etc/bash_completion.d/kbuild
  kbuild completions zsh > \"${fpath[1]}/_kbuild\"")]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) on stdout
    #[command(after_help = "Examples:
  kbuild man > kbuild.1 && man ./kbuild.1")]
    Man,
}

#[derive(Args, Debug, Clone)]
pub struct CleanArgs {
    /// The output directory to remove
    #[arg(long, default_value = "out", value_name = "DIR")]
    pub out: PathBuf,
    /// Also remove the Go build and module cache volumes
    #[arg(long)]
    pub caches: bool,
    /// Everything: caches too, and the build intermediates in the tree (_output/dockerized, _output/local)
    #[arg(long)]
    pub all: bool,
    /// The tree whose _output intermediates --all removes
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub kube_root: PathBuf,
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
    #[arg(long, value_name = "DIR", default_value = ".", conflicts_with = "git_ref")]
    pub kube_root: PathBuf,
    /// Build the source at this tag, branch or commit instead: cloned (shallow) or updated in --source-dir
    #[arg(long = "ref", value_name = "REF")]
    pub git_ref: Option<String>,
    /// The repository --ref is fetched from
    #[arg(long, value_name = "URL", default_value = crate::source::checkout::DEFAULT_REPO, requires = "git_ref")]
    pub repo: String,
    /// Where the --ref checkout lives [default: <cache dir>/kbuild/source/<repo name>-<hash>]
    #[arg(long, value_name = "DIR", requires = "git_ref")]
    pub source_dir: Option<PathBuf>,
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
    /// Where builds run: in a container (docker) or with this machine's Go and make (host)
    #[arg(long, value_enum, default_value = "docker")]
    pub engine: EngineKind,
    /// Skip one prerequisite check (repeatable); `kbuild doctor` lists their names
    #[arg(long = "skip-check", value_name = "NAME")]
    pub skip_checks: Vec<String>,
    /// Engine memory the checks require [default: 2g for a build, 8g for a quick-release]
    #[arg(long, value_name = "SIZE")]
    pub min_memory: Option<String>,
    /// Free disk the checks require [default: 5g for a build, 20g for a quick-release]
    #[arg(long, value_name = "SIZE")]
    pub min_disk: Option<String>,
}

/// Where builds run.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// A build container on the Docker engine (DOCKER_HOST)
    Docker,
    /// This machine's Go and make; needs a Go satisfying the tree's .go-version
    Host,
}

#[derive(Args, Debug, Clone)]
pub struct SourceCmdArgs {
    /// The repository to clone or update
    #[arg(long, value_name = "URL", default_value = crate::source::checkout::DEFAULT_REPO)]
    pub repo: String,
    /// Tag, branch or commit to check out [default: the repository's default branch]
    #[arg(long = "ref", value_name = "REF")]
    pub git_ref: Option<String>,
    /// The checkout directory [default: <cache dir>/kbuild/source/<repo name>-<hash>]
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Switch even when the checkout has local changes: they are stashed first (never lost)
    #[arg(long)]
    pub force: bool,
    /// Version the build would stamp (like KUBE_GIT_VERSION); no history is fetched for describe
    #[arg(long = "version", value_name = "VERSION")]
    pub git_version: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct DoctorArgs {
    /// What the thresholds are sized for
    #[arg(long = "for", value_enum, default_value = "build")]
    pub profile: crate::checks::Profile,
    /// The Kubernetes tree to check for (.go-version, builder image, disk)
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub kube_root: PathBuf,
    /// The output directory whose disk is checked
    #[arg(long, default_value = "out", value_name = "DIR")]
    pub out: PathBuf,
    /// Builder image [default: the kube-cross image named by build/build-image/cross/VERSION]
    #[arg(long, value_name = "IMAGE", env = "KBUILD_IMAGE")]
    pub image: Option<String>,
    /// Check for builds in a container (docker) or with this machine's Go (host)
    #[arg(long, value_enum, default_value = "docker")]
    pub engine: EngineKind,
    /// Engine memory required [default: 2g for a build, 8g for a quick-release]
    #[arg(long, value_name = "SIZE")]
    pub min_memory: Option<String>,
    /// Free disk required [default: 5g for a build, 20g for a quick-release]
    #[arg(long, value_name = "SIZE")]
    pub min_disk: Option<String>,
    /// Leave one check out (repeatable)
    #[arg(long = "skip-check", value_name = "NAME")]
    pub skip_checks: Vec<String>,
}
