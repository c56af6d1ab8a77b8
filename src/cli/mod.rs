//! Command-line definitions only (clap). Resolving them into a plan happens elsewhere.

mod documented;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// The default output directory: `out`, except in the top directory of a Kubernetes tree,
/// where `out` would be an untracked directory in the tree (refused: it makes the tree
/// dirty and lands in kubernetes-src.tar.gz); there it is `_output/kbuild`, beside
/// upstream's own `_output/` build outputs, which upstream's .gitignore (`/_output*/`) covers.
///
/// Help shows this rule, not its value here: the value follows the directory kbuild runs in,
/// and help, the man page and the completions must read the same wherever they are made.
pub fn default_out() -> PathBuf {
    let in_kube_tree = std::path::Path::new("build/build-image/cross/VERSION").is_file()
        && std::path::Path::new("go.mod").is_file();
    PathBuf::from(if in_kube_tree {
        "_output/kbuild"
    } else {
        "out"
    })
}

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
    /// When stderr is not a terminal, print a build's Go package count this often
    #[arg(
        long,
        global = true,
        value_name = "SECONDS",
        default_value = "15",
        value_parser = parse_interval
    )]
    pub progress_interval: std::time::Duration,
}

/// Seconds, decimals allowed, at least a tenth of a second (a shorter interval would only
/// flood the log).
fn parse_interval(text: &str) -> Result<std::time::Duration, String> {
    match text.parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs >= 0.1 => Ok(std::time::Duration::from_secs_f64(secs)),
        _ => Err(format!(
            "{text:?} is not a number of seconds of at least 0.1"
        )),
    }
}

/// How long to wait for another run's lock on the output directory or the source tree: only
/// the commands that write into them take the locks, so only they have these flags.
#[derive(Args, Debug, Clone, Default)]
pub struct LockArgs {
    /// Fail at once (exit 9) when another kbuild run is using the output directory or the tree, instead of waiting
    #[arg(long)]
    pub no_wait: bool,
    /// Wait at most this long for another kbuild run on the output directory or the tree, then fail (exit 9)
    #[arg(long, value_name = "SECONDS", conflicts_with = "no_wait")]
    pub lock_timeout: Option<u64>,
}

/// `--timings`, for the commands that build or package.
#[derive(Args, Debug, Clone, Default)]
pub struct TimingsArg {
    /// Write <out>/kbuild-timings.html (a timeline of the phases, the jobs on each engine and the packaging threads) and kbuild-timings.json, also when the run fails
    #[arg(long)]
    pub timings: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Build components (kubectl, kubeadm, kubelet, ...) for one or more platforms
    #[command(after_help = "Examples:
  kbuild build kubectl --platform darwin/arm64 --kube-root ~/src/kubernetes
  kbuild build kubectl kubeadm kubelet --platform linux/amd64 --platform linux/arm64
  kbuild build kubectl --kube-root tests/fixtures/mini-kube --image kbuild-builder:go1.24-trixie --out out")]
    Build(BuildArgs),
    /// Build the client, node and server binaries and package upstream-named, reproducible release tarballs
    #[command(
        name = "quick-release",
        after_help = "Like upstream's `make quick-release` (KUBE_FASTBUILD): linux/<host arch> unless --platform is given. \
Writes <out>/bin/<os>/<arch>/ and <out>/release-tars/: kubernetes-{client,node,server}-<os>-<arch>.tar.gz, \
kubernetes-src.tar.gz, .sha256/.sha512 beside each, SHA256SUMS, SHA512SUMS and manifest.json.

Examples:
  kbuild quick-release --kube-root ~/src/kubernetes
  kbuild quick-release --platform linux/amd64 --platform linux/arm64 --platform darwin/arm64
  kbuild verify out/release-tars"
    )]
    QuickRelease(QuickReleaseArgs),
    /// Build client binaries for every Docker Desktop host and lay them out per image architecture
    #[command(
        after_help = "Writes <out>/extension/<amd64|arm64>/<darwin|linux|windows>/kubectl[.exe], \
host-binaries.json (the metadata.json host.binaries fragment) and Dockerfile.snippet (ARG TARGETARCH; \
COPY extension/${TARGETARCH}/ /), so one `docker buildx build --platform linux/amd64,linux/arm64` gives each \
image variant its own binaries. With --tag NAME:TAG it also writes the image itself, no buildx needed: <out>/extension/image/ (OCI layout: an index of linux/amd64 and linux/arm64), image.oci.tar.gz and metadata.json; --load puts the engine's variant into the engine, --push sends both to the registry.

Examples:
  kbuild extension --kube-root ~/src/kubernetes
  kbuild extension --tag me/kubectl-ext:1.0 --metadata metadata.json --icon icon.svg --ui ui --push
  kbuild extension --component kubectl --platform darwin/arm64 --platform windows/amd64 --out out"
    )]
    Extension(ExtensionArgs),
    /// Run the built kubectl as an extension would: the host's binary for real, the others by format and build info
    #[command(
        after_help = "Exits 7 when a binary is not what its place says (format, GOOS/GOARCH, stamped version).

Examples:
  kbuild smoke out
  kbuild smoke out/extension --kubeconfig ~/.kube/config --context docker-desktop"
    )]
    Smoke(SmokeArgs),
    /// Package an existing bin/<os>/<arch>/ tree into release tarballs, checksums and a manifest
    #[command(
        // The source and platform flags are shared with the building commands; here they
        // choose what is packaged, nothing is built.
        mut_arg("platforms", |a| a.help("Platform os/arch to package; repeat for several [default: every <os>/<arch>/ directory in the bin tree]")),
        mut_arg("kube_root", |a| a.help("The Kubernetes tree the binaries were built from: it gives the version, the component list and kubernetes-src.tar.gz")),
        mut_arg("git_ref", |a| a.help("Take the tree at this tag, branch or commit instead (cloned shallow or updated in --source-dir); the binaries must have been built from it")),
        mut_arg("git_version", |a| a.help("Version recorded in manifest.json instead of the one git describe gives (like KUBE_GIT_VERSION)")),
        after_help = "Examples:
  kbuild package --out out                      # packages out/bin into out/release-tars
  kbuild package --bin artifacts/bin --out dist --kube-root ~/src/kubernetes")]
    Package(PackageArgs),
    /// Re-hash packaged artifacts against SHA256SUMS, SHA512SUMS, the sidecars and manifest.json
    #[command(
        after_help = "Exits 7 and names every mismatching or missing file when anything differs.

Examples:
  kbuild verify out/release-tars
  kbuild verify out              # checks out/release-tars and out/extension
  kbuild verify --allowed-signers allowed_signers --identity release@example.com out
  kbuild verify --allowed-signers allowed_signers --verify-time 20250601Z old-set/"
    )]
    Verify(VerifyArgs),
    /// Sign SHA256SUMS, SHA512SUMS, the SBOM and the provenance of a packaged set with an SSH key (as ssh-keygen -Y sign -n file)
    #[command(
        after_help = "Writes <file>.sig beside each signed file: SSHSIG signatures in namespace `file`, which \
`ssh-keygen -Y verify -f allowed_signers -I ID -n file -s FILE.sig < FILE` and \
`kbuild verify --allowed-signers allowed_signers` check.

Examples:
  kbuild sign --key ~/.ssh/release_ed25519                   # signs out/release-tars (and out/extension)
  kbuild sign --key release_ed25519 dist/release-tars"
    )]
    Sign(SignArgs),
    /// Clone or update the Kubernetes source at a tag, branch or commit, and print its version facts
    #[command(after_help = "Examples:
  kbuild source --ref v1.34.2                      # shallow clone into the cache directory
  kbuild source --ref release-1.34 --dir ~/src/k8s
  kbuild source --ref 0123456789abcdef0123456789abcdef01234567 --repo https://github.com/me/kubernetes.git")]
    Source(SourceCmdArgs),
    /// Check every prerequisite (engine, memory, CPUs, disk, git, image, Go) and say how to fix what fails
    #[command(
        after_help = "Exit status: 0 when no check fails (warnings allowed), 3 when one does.

Examples:
  kbuild doctor
  kbuild doctor --for quick-release --kube-root ~/src/kubernetes
  kbuild doctor --engine host --json"
    )]
    Doctor(DoctorArgs),
    /// Run a recipe (a TOML file, see recipes/; flags after `--` override it), or a saved plan (plan.json)
    #[command(
        after_help = "A saved plan (`kbuild plan --json ... > plan.json`) runs only while the tree is at the planned \
commit, the engine has the planned image id, and the jobs come out the same; otherwise kbuild says what changed and exits 2.

Examples:
  kbuild run recipes/quick-release.toml
  kbuild run recipes/kubectl-cross.toml -- --platform darwin/arm64 --out /tmp/k
  kbuild --json run recipes/ci-release.toml -- --ref v1.34.2
  kbuild plan --json quick-release --platform linux/arm64 > plan.json && kbuild run plan.json"
    )]
    Run(RunArgs),
    /// Print what a command or a recipe would do (source, engine, checks, every job's container, every artifact) and run nothing
    #[command(
        after_help = "The plan is what the run does: builds create their containers from it. \
With --json it is printed as JSON, which `kbuild run plan.json` runs later.

Examples:
  kbuild plan quick-release --platform linux/amd64 --platform darwin/arm64
  kbuild plan build kubectl --engine host
  kbuild plan recipes/kubectl-cross.toml -- --platform linux/arm64
  kbuild plan --json extension > plan.json"
    )]
    Plan(PlanArgs),
    /// Recipe tools
    #[command(
        subcommand,
        after_help = "Examples:
  kbuild recipe check recipes/*.toml"
    )]
    Recipe(RecipeCommand),
    /// Remove what kbuild made for an output directory: its finished runs' containers, and the files it wrote there
    #[command(after_help = "Examples:
  kbuild clean                 # ./out's files and its finished runs' containers
  kbuild clean --caches        # also the Go build and module cache volumes no build uses
  kbuild clean --all --kube-root ~/src/kubernetes   # also the tree's _output/dockerized, _output/local, _output/jobs and source volumes
  kbuild clean --engine-wide   # every finished run's containers, every unused source volume")]
    Clean(CleanArgs),
    /// Move a builder image's Go build cache (and module cache) out of the engine and back, for CI cache steps
    #[command(subcommand)]
    Cache(CacheCommand),
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
pub struct RunArgs {
    /// The recipe file, or a saved plan (.json)
    #[arg(value_name = "RECIPE|PLAN")]
    pub recipe: PathBuf,
    #[command(flatten)]
    pub lock: LockArgs,
    /// Flags that override the recipe, after `--`
    #[arg(last = true, value_name = "FLAGS")]
    pub overrides: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct PlanArgs {
    /// A command with its flags (build, quick-release, extension, package, doctor), or a recipe file and `--` flags
    #[arg(
        value_name = "COMMAND|RECIPE",
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub what: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum CacheCommand {
    /// Write the Go build cache (GOCACHE; GOMODCACHE too when not empty) of a builder image to a directory or a .tar
    #[command(
        after_help = "PATH ending in .tar gets an uncompressed tarball (CI caches compress for themselves); \
any other PATH a directory, which a later export updates in place, writing only the entries it lacks. \
The export carries a manifest: the key (the image's repository or config digest and its Go version) and every \
entry's sha256.

Examples:
  kbuild cache export ~/.cache/kbuild-go --image kbuild-builder:go1.24-trixie
  kbuild cache export go-cache.tar --max-size 2g --kube-root ~/src/kubernetes"
    )]
    Export(CacheExportArgs),
    /// Put an exported Go cache back into the cache volume of its builder image (adds entries, never replaces one)
    #[command(
        after_help = "The whole export is checked against its manifest (digests, nothing missing, nothing cut \
short) and its key against the image on the engine before the volume is touched; a mismatch is refused (exit 2) \
and changes nothing. Entries are owned by the build user, with their mtimes.

Examples:
  kbuild cache import ~/.cache/kbuild-go --image kbuild-builder:go1.24-trixie
  kbuild cache import go-cache.tar --engines default,buildbox"
    )]
    Import(CacheImportArgs),
}

/// Which builder image's cache, on which engine.
#[derive(Args, Debug, Clone)]
pub struct CacheImageArgs {
    /// Builder image [default: the kube-cross image named by <kube-root>/build/build-image/cross/VERSION]
    #[arg(long, value_name = "IMAGE", env = "KBUILD_IMAGE")]
    pub image: Option<String>,
    /// The Kubernetes tree whose builder image to use when --image is not given
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub kube_root: PathBuf,
    #[command(flatten)]
    pub context: ContextArg,
}

#[derive(Args, Debug, Clone)]
pub struct CacheExportArgs {
    /// Where to write: a directory, or a file ending in .tar
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
    #[command(flatten)]
    pub image: CacheImageArgs,
    /// Keep at most this much (e.g. 2g), dropping the least recently used entries first (by mtime). This is kbuild's own policy, not Go's: Go trims its cache by age (5 days unused) only
    #[arg(long, value_name = "SIZE")]
    pub max_size: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct CacheImportArgs {
    /// What `kbuild cache export` wrote: a directory or a .tar
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
    #[command(flatten)]
    pub image: CacheImageArgs,
    /// Import into each of these engines (docker context names or endpoints) [default: the one engine --context chooses]
    #[arg(
        long,
        value_name = "NAME",
        value_delimiter = ',',
        conflicts_with = "name"
    )]
    pub engines: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum RecipeCommand {
    /// Check recipe files and report the first error in each, with file:line:column
    #[command(after_help = "Examples:
  kbuild recipe check recipes/*.toml")]
    Check {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
}

#[derive(Args, Debug, Clone)]
pub struct CleanArgs {
    /// The output directory to clean: only what kbuild recorded writing there is removed [default: _output/kbuild when run in the top directory of a Kubernetes tree, else out]
    #[arg(long, default_value_os_t = default_out(), hide_default_value = true, value_name = "DIR")]
    pub out: PathBuf,
    /// Also remove the Go build and module cache volumes
    #[arg(long)]
    pub caches: bool,
    /// Everything: caches too, and the build intermediates in the tree (_output/dockerized, _output/local, _output/jobs)
    #[arg(long)]
    pub all: bool,
    /// The tree whose _output intermediates --all removes
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub kube_root: PathBuf,
    /// Also every other run's containers and every source volume on the engine; a live run's are still kept
    #[arg(long)]
    pub engine_wide: bool,
    /// Wait for a run holding the output directory (or, with --all, the tree) instead of failing at once (exit 9)
    #[arg(long)]
    pub wait: bool,
    #[command(flatten)]
    pub context: ContextArg,
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
    /// Output directory: binaries land in <out>/bin/<os>/<arch>/, logs in <out>/logs/ [default: _output/kbuild when run in the top directory of a Kubernetes tree, else out]
    #[arg(long, default_value_os_t = default_out(), hide_default_value = true, value_name = "DIR")]
    pub out: PathBuf,
    #[command(flatten)]
    pub lock: LockArgs,
    #[command(flatten)]
    pub timings: TimingsArg,
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
    #[arg(
        long,
        value_name = "DIR",
        default_value = ".",
        conflicts_with = "git_ref"
    )]
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
    /// Stop a build that prints nothing for this many seconds; 0 turns the stall check off
    #[arg(long, value_name = "SECONDS", default_value_t = 1800)]
    pub stall_timeout: u64,
    /// Memory limit for the build container, e.g. 6g or 512m [default: none]
    #[arg(long, value_name = "SIZE")]
    pub memory: Option<String>,
    /// Give the build container a network and lift GOPROXY=off (builds are offline by default;
    /// a tree that does not vendor its dependencies needs it)
    #[arg(long)]
    pub network: bool,
    /// How the build container sees the source: bind-mount it, or copy it into a volume and
    /// copy the outputs back through the API [default: copy when the engine endpoint is tcp:// or ssh://, else bind]
    #[arg(long, value_enum, value_name = "MODE")]
    pub transfer: Option<crate::engine::transfer::Transfer>,
    /// Rebuild even when the inputs did not change since the last build into the same --out
    #[arg(long)]
    pub force: bool,
    /// Build on several engines at once: docker context names or endpoints (unix://, tcp://, ssh://), each NAME[=JOBS] with how many jobs it takes at a time [default: the one engine --context chooses]
    #[arg(long, value_name = "NAME[=JOBS]", value_delimiter = ',')]
    pub engines: Vec<String>,
    /// Fail when any of --engines does not answer at the start (default: leave it out and go on with the others)
    #[arg(long)]
    pub require_all_engines: bool,
    /// Import this Go cache (what `kbuild cache export` wrote) into every engine's cache volume before building; repeatable. Recorded in the provenance
    #[arg(long, value_name = "PATH")]
    pub cache_from: Vec<PathBuf>,
    /// Refuse Go cache imports (--cache-from), for release runs that want a clean build from their own caches
    #[arg(long)]
    pub no_cache_import: bool,
    /// CPUs each build container may use, e.g. 1 or 2.5 [default: no limit]
    #[arg(long, value_name = "CPUS")]
    pub cpus: Option<f64>,
    /// Where builds run: in a container (docker) or with this machine's Go and make (host)
    #[arg(long, value_enum, default_value = "docker")]
    pub engine: EngineKind,
    #[command(flatten)]
    pub context: ContextArg,
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

/// Which Docker engine, as `docker --context` names it (engine commands, doctor, clean).
#[derive(Args, Debug, Clone)]
pub struct ContextArg {
    /// Docker context whose engine to use, as `docker --context` [default: DOCKER_HOST, else
    /// DOCKER_CONTEXT, else currentContext in $DOCKER_CONFIG/config.json, else the default socket]
    #[arg(long = "context", value_name = "NAME")]
    pub name: Option<String>,
}

/// Where builds run.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// A build container on the Docker (or Podman) engine, chosen as the docker CLI does (see --context)
    Docker,
    /// This machine's Go and make; needs a Go satisfying the tree's .go-version
    Host,
}

impl From<EngineKind> for crate::plan::EngineKind {
    fn from(kind: EngineKind) -> Self {
        match kind {
            EngineKind::Docker => crate::plan::EngineKind::Docker,
            EngineKind::Host => crate::plan::EngineKind::Host,
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct SourceCmdArgs {
    #[command(flatten)]
    pub lock: LockArgs,
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
    /// The output directory whose disk is checked [default: _output/kbuild when run in the top directory of a Kubernetes tree, else out]
    #[arg(long, default_value_os_t = default_out(), hide_default_value = true, value_name = "DIR")]
    pub out: PathBuf,
    /// Builder image [default: the kube-cross image named by build/build-image/cross/VERSION]
    #[arg(long, value_name = "IMAGE", env = "KBUILD_IMAGE")]
    pub image: Option<String>,
    /// Check for builds in a container (docker) or with this machine's Go (host)
    #[arg(long, value_enum, default_value = "docker")]
    pub engine: EngineKind,
    #[command(flatten)]
    pub context: ContextArg,
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

#[derive(Args, Debug, Clone)]
pub struct QuickReleaseArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub source: SourceArgs,
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Output directory: binaries in <out>/bin/, tarballs in <out>/release-tars/, logs in <out>/logs/ [default: _output/kbuild when run in the top directory of a Kubernetes tree, else out]
    #[arg(long, default_value_os_t = default_out(), hide_default_value = true, value_name = "DIR")]
    pub out: PathBuf,
    #[command(flatten)]
    pub lock: LockArgs,
    #[command(flatten)]
    pub timings: TimingsArg,
    /// Sign SHA256SUMS, SHA512SUMS, the SBOM and the provenance with this SSH private key (as `kbuild sign --key`)
    #[arg(long, value_name = "KEY")]
    pub sign_key: Option<PathBuf>,
    /// Build no test targets and write no kubernetes-test-*.tar.gz (e2e.test is the heaviest link of a build); the manifest says so
    #[arg(long)]
    pub no_test_tarballs: bool,
    #[command(flatten)]
    pub images: ImageArgs,
}

/// The server images (kube::release::build_server_images), on by default.
#[derive(Args, Debug, Clone, Default)]
pub struct ImageArgs {
    /// Build the server images on this base instead of the one the tree pins: BASE is go-runner or distroless-iptables (or a binary's name), optionally BASE@ARCH for one architecture; REF is an image in the engine; repeat for several
    #[arg(long = "base-image", value_name = "BASE=REF")]
    pub base_images: Vec<String>,
    /// Write no server images: today's release set without release-images/ (the manifest says so)
    #[arg(long, conflicts_with = "base_images")]
    pub no_images: bool,
    /// Build only the server binaries (and kubectl) and their images for the server platforms, like `make release-images`: release-images/<arch>/, no tarballs
    #[arg(long, conflicts_with = "no_images")]
    pub images_only: bool,
    /// The registry of the tree's pinned bases [env: KUBE_BASE_IMAGE_REGISTRY]
    #[arg(skip)]
    pub base_registry: Option<String>,
    /// The second name's registry and tag [env: KUBE_DOCKER_REGISTRY, KUBE_DOCKER_IMAGE_TAG]
    #[arg(skip)]
    pub docker_registry: Option<String>,
    #[arg(skip)]
    pub docker_image_tag: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct ExtensionArgs {
    /// Client component to ship; repeat for several [default: kubectl]
    #[arg(long = "component", value_name = "COMPONENT")]
    pub components: Vec<String>,
    /// Host platform os/arch; repeat for several [default: darwin, linux, windows on amd64 and arm64]
    #[arg(long = "platform", value_name = "OS/ARCH")]
    pub platforms: Vec<String>,
    #[command(flatten)]
    pub source: SourceArgs,
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Output directory: the layout goes to <out>/extension/, binaries to <out>/bin/ [default: _output/kbuild when run in the top directory of a Kubernetes tree, else out]
    #[arg(long, default_value_os_t = default_out(), hide_default_value = true, value_name = "DIR")]
    pub out: PathBuf,
    #[command(flatten)]
    pub lock: LockArgs,
    #[command(flatten)]
    pub timings: TimingsArg,
    /// Sign SHA256SUMS, SHA512SUMS, the SBOM and the provenance with this SSH private key (as `kbuild sign --key`)
    #[arg(long, value_name = "KEY")]
    pub sign_key: Option<PathBuf>,
    #[command(flatten)]
    pub image: ExtensionImageArgs,
}

/// The extension image (`--tag` and what goes with it).
#[derive(Args, Debug, Clone)]
pub struct ExtensionImageArgs {
    /// Also write the multi-arch extension image (linux/amd64 + linux/arm64), named as with
    /// `docker build -t`, to <out>/extension/image/ (OCI layout) and image.oci.tar.gz
    #[arg(long = "tag", value_name = "NAME:TAG")]
    pub tag: Option<String>,
    /// The extension's metadata.json; kbuild fills in host.binaries [default: {}]
    #[arg(long, value_name = "FILE", requires = "tag")]
    pub metadata: Option<PathBuf>,
    /// The extension icon (.svg, .png, .jpg), put at the image root and named in metadata.json
    #[arg(long, value_name = "FILE", requires = "tag")]
    pub icon: Option<PathBuf>,
    /// The extension's static UI directory, put at /ui in the image
    #[arg(long, value_name = "DIR", requires = "tag")]
    pub ui: Option<PathBuf>,
    /// An image label KEY=VALUE (repeatable), over kbuild's defaults
    #[arg(long = "label", value_name = "KEY=VALUE", requires = "tag")]
    pub labels: Vec<String>,
    /// Load the variant of the engine's architecture into the Docker engine (docker image load)
    #[arg(long, requires = "tag")]
    pub load: bool,
    /// Push the image index and both manifests to the registry the tag names
    #[arg(long, requires = "tag")]
    pub push: bool,
    /// Let --push speak plain http to a registry that is not on localhost or 127.0.0.0/8
    #[arg(long, requires = "push")]
    pub insecure_registry: bool,
}

/// `kbuild smoke`.
#[derive(Args, Debug, Clone)]
pub struct SmokeArgs {
    /// Where the built kubectl binaries are: an output directory (bin/<os>/<arch>/), an
    /// extension layout, or an unpacked image variant [default: _output/kbuild when run in the top directory of a Kubernetes tree, else out]
    #[arg(value_name = "DIR", default_value_os_t = default_out(), hide_default_value = true)]
    pub dir: PathBuf,
    /// Also run the calls an extension makes with this kubeconfig (cluster-info, config view, get namespaces)
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context the calls use
    #[arg(
        long,
        value_name = "NAME",
        default_value = "docker-desktop",
        requires = "kubeconfig"
    )]
    pub context: String,
}

#[derive(Args, Debug, Clone)]
pub struct PackageArgs {
    /// The bin/<os>/<arch>/ tree to package [default: <out>/bin]
    #[arg(long, value_name = "DIR")]
    pub bin: Option<PathBuf>,
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub source: SourceArgs,
    /// Output directory: tarballs go to <out>/release-tars/ [default: _output/kbuild when run in the top directory of a Kubernetes tree, else out]
    #[arg(long, default_value_os_t = default_out(), hide_default_value = true, value_name = "DIR")]
    pub out: PathBuf,
    #[command(flatten)]
    pub lock: LockArgs,
    #[command(flatten)]
    pub timings: TimingsArg,
    /// Sign SHA256SUMS, SHA512SUMS, the SBOM and the provenance with this SSH private key (as `kbuild sign --key`)
    #[arg(long, value_name = "KEY")]
    pub sign_key: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct VerifyArgs {
    /// A directory kbuild packaged (release-tars or extension), or the output directory holding them [default: _output/kbuild when run in the top directory of a Kubernetes tree, else out]
    #[arg(value_name = "DIR", default_value_os_t = default_out(), hide_default_value = true)]
    pub dir: PathBuf,
    /// Also check the SSH signatures of SHA256SUMS, SHA512SUMS, the SBOM and the provenance against this allowed_signers file (read as ssh-keygen -Y verify reads it)
    #[arg(long, value_name = "FILE")]
    pub allowed_signers: Option<PathBuf>,
    /// The identity the signer must have, matched against the principals of its allowed_signers line (like ssh-keygen -Y verify -I); without it, any principal listed for the key will do
    #[arg(long, value_name = "PRINCIPAL", requires = "allowed_signers")]
    pub identity: Option<String>,
    /// Judge the keys' valid-after/valid-before and certificates at this time instead of now (like ssh-keygen -Overify-time): YYYYMMDD or YYYYMMDDHHMM[SS], UTC with a trailing Z, else local time
    #[arg(long, value_name = "TIME", requires = "allowed_signers")]
    pub verify_time: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct SignArgs {
    /// The OpenSSH private key to sign with (Ed25519 or ECDSA P-256, without a passphrase)
    #[arg(long, value_name = "KEY")]
    pub key: PathBuf,
    /// A directory kbuild packaged (release-tars or extension), or the output directory holding them [default: _output/kbuild when run in the top directory of a Kubernetes tree, else out]
    #[arg(value_name = "DIR", default_value_os_t = default_out(), hide_default_value = true)]
    pub dir: PathBuf,
}
