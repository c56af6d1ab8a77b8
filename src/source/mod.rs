//! The Kubernetes source: getting it at a ref (`checkout`), and the facts about a tree
//! (commit, version, tree state, commit time, pins), computed on the host with the git CLI so
//! that the build container needs no git.

pub mod checkout;

use std::path::{Path, PathBuf};

use crate::error::{Context, Error, Kind, Result};
use crate::kube::version::{self, GitVersion};
use crate::ui::Ui;

/// Where a build's source comes from.
#[derive(Debug, Clone)]
pub enum SourceSpec {
    /// An existing tree, used as it is (`--kube-root`).
    Tree(PathBuf),
    /// A repository at a ref, cloned or updated in `dir` (`--ref`, `--repo`, `--source-dir`).
    Git {
        repo: String,
        git_ref: String,
        dir: PathBuf,
    },
}

impl SourceSpec {
    /// The directory the tree is (or will be) in.
    pub fn dir(&self) -> &Path {
        match self {
            SourceSpec::Tree(root) => root,
            SourceSpec::Git { dir, .. } => dir,
        }
    }
}

/// Gets the source `spec` names (cloning or updating a checkout for `--ref`) and computes
/// its facts. A checkout with local changes is never switched here: `kbuild source --force`
/// is the deliberate way to do that.
pub fn obtain(spec: &SourceSpec, overrides: &Overrides, ui: &Ui) -> Result<SourceInfo> {
    match spec {
        SourceSpec::Tree(root) => inspect(root, overrides),
        SourceSpec::Git { repo, git_ref, dir } => {
            let outcome = checkout::get(
                &checkout::Request {
                    repo,
                    git_ref: Some(git_ref),
                    dir,
                    force: false,
                    describe: overrides.git_version.is_none(),
                },
                ui,
            )?;
            let mut info = inspect(&outcome.dir, overrides)?;
            info.origin = Some(Origin {
                // Shown by `kbuild source --json` and kept in manifests: no credentials.
                repo: crate::redact::url(repo),
                git_ref: git_ref.clone(),
            });
            Ok(info)
        }
    }
}

/// clean, dirty, or archive (not a git checkout), as upstream's gitTreeState.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TreeState {
    Clean,
    Dirty,
    Archive,
}

impl TreeState {
    pub fn as_str(self) -> &'static str {
        match self {
            TreeState::Clean => "clean",
            TreeState::Dirty => "dirty",
            TreeState::Archive => "archive",
        }
    }
}

/// What the host knows about a tree before building it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SourceInfo {
    pub root: PathBuf,
    /// Full commit hash; None outside a git checkout.
    pub commit: Option<String>,
    pub tree_state: TreeState,
    #[serde(flatten)]
    pub version: GitVersion,
    /// SOURCE_DATE_EPOCH: the commit time unless overridden.
    pub source_date_epoch: u64,
    /// The Go version the tree pins in `.go-version`.
    pub go_version: Option<String>,
    /// The kube-cross tag in build/build-image/cross/VERSION.
    pub cross_version: Option<String>,
    /// The repository and ref it was fetched from, for `--ref` builds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
}

/// Where a fetched tree came from.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Origin {
    pub repo: String,
    #[serde(rename = "ref")]
    pub git_ref: String,
}

/// Values the user set explicitly (flags first, then the environment).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub git_version: Option<String>,
    pub source_date_epoch: Option<u64>,
}

impl Overrides {
    /// Reads KUBE_GIT_VERSION and SOURCE_DATE_EPOCH, under any explicit flag values.
    pub fn from_env(flag_version: Option<String>) -> Result<Overrides> {
        let git_version = flag_version.or_else(|| non_empty_env("KUBE_GIT_VERSION"));
        if let Some(version) = &git_version {
            given_version(version)?;
        }
        let source_date_epoch = match non_empty_env("SOURCE_DATE_EPOCH") {
            Some(text) => Some(text.parse::<u64>().map_err(|_| {
                Error::usage(format!(
                    "SOURCE_DATE_EPOCH=\"{text}\" is not a number of seconds"
                ))
                .with_hint(
                    "unset it, or set it to a Unix time such as $(git show -s --format=%ct HEAD)",
                )
            })?),
            None => None,
        };
        Ok(Overrides {
            git_version,
            source_date_epoch,
        })
    }
}

/// Checks a version the user gave (--version, KUBE_GIT_VERSION) against upstream's semver
/// gate (hack/lib/version.sh, `kube::version::get_version_vars`): a bad one is bad input
/// (exit 2), unlike a bad tag in the repository (a source error).
pub fn given_version(version: &str) -> Result<GitVersion> {
    version::parse(version).map_err(|mut e| {
        e.kind = Kind::Usage;
        e
    })
}

fn non_empty_env(name: &str) -> Option<String> {
    crate::env::current().non_blank(name).map(str::to_string)
}

/// Runs git in `dir` without prompts and returns its trimmed stdout.
pub fn git(dir: &Path, args: &[&str]) -> Result<String> {
    let out = duct::cmd("git", args)
        .dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C")
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .run()
        .map_err(|e| {
            Error::source(format!("cannot run git: {e}"))
                .with_hint("install git (apt-get install git) and make sure it is on PATH")
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(Error::source(format!(
            "git {} failed in {}: {}",
            args.join(" "),
            dir.display(),
            stderr.trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Checks that `root` is a Kubernetes tree (go.mod declaring `module k8s.io/kubernetes`).
pub fn check_tree(root: &Path) -> Result<PathBuf> {
    let root = root.canonicalize().map_err(|e| {
        Error::usage(format!(
            "cannot open the Kubernetes tree {}: {e}",
            root.display()
        ))
        .with_hint("pass --kube-root with the path of a kubernetes checkout, or --ref to clone one")
    })?;
    // No go.mod is not a Kubernetes tree; a go.mod that cannot be read is an I/O failure.
    let go_mod_path = root.join("go.mod");
    let go_mod = match std::fs::read_to_string(&go_mod_path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(Error::io("cannot read", &go_mod_path, e)),
    };
    let is_kube = go_mod
        .lines()
        .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["module", "k8s.io/kubernetes"]);
    if !is_kube {
        return Err(Error::usage(format!(
            "{} is not a Kubernetes tree: no go.mod with `module k8s.io/kubernetes`",
            root.display()
        ))
        .with_hint("pass --kube-root with the top directory of a kubernetes checkout"));
    }
    Ok(root)
}

/// Whether `root` is the top of its own git checkout (not a folder inside another repo).
fn is_git_top(root: &Path) -> bool {
    git_top(root).as_deref() == Some(root)
}

/// The top of the git work tree `root` is in, if any.
fn git_top(root: &Path) -> Option<PathBuf> {
    let top = git(root, &["rev-parse", "--show-toplevel"]).ok()?;
    Path::new(&top).canonicalize().ok()
}

/// A tree that is not its own git checkout has no version to derive: refused unless one
/// is given, rather than stamping v0.0.0 (upstream's version.sh would stamp nothing).
fn not_a_checkout(root: &Path) -> Error {
    let what = match git_top(root) {
        Some(top) => format!(
            "{} is not a git checkout of its own: it sits inside the repository at {}, whose commit is not this tree's",
            root.display(),
            top.display()
        ),
        None => format!("{} is not a git checkout", root.display()),
    };
    Error::source(format!("{what}, so its version cannot be derived"))
        .with_hint("name the version it should report: --version v1.34.0 (or KUBE_GIT_VERSION=v1.34.0), or make it a checkout of its own and tag it (git init, git add -A, git commit, git tag v1.34.0)")
}

/// A `git init`ed tree with nothing committed yet: there is no commit to build or describe.
fn no_commits(root: &Path) -> Error {
    Error::source(format!(
        "{} is a git repository with no commits yet, so it has no commit to build or version to stamp",
        root.display()
    ))
    .with_hint(format!(
        "commit the tree first (git -C {0} add -A && git -C {0} commit -m ...), or check out a branch that has commits",
        root.display()
    ))
}

/// Reads a one-line pin file, if present.
fn read_pin(root: &Path, rel: &str) -> Option<String> {
    let text = std::fs::read_to_string(root.join(rel)).ok()?;
    let line = text.lines().next()?.trim().to_string();
    (!line.is_empty()).then_some(line)
}

/// Computes the source facts of the tree at `root`.
pub fn inspect(root: &Path, overrides: &Overrides) -> Result<SourceInfo> {
    let root = check_tree(root)?;
    let go_version = read_pin(&root, ".go-version");
    let cross_version = read_pin(&root, "build/build-image/cross/VERSION");

    if !is_git_top(&root) {
        // An exported tree (e.g. kubernetes-src.tar.gz): upstream calls it "archive".
        let version = match &overrides.git_version {
            Some(v) => version::parse(v)?,
            None => return Err(not_a_checkout(&root)),
        };
        return Ok(SourceInfo {
            root,
            commit: None,
            tree_state: TreeState::Archive,
            version,
            source_date_epoch: overrides.source_date_epoch.unwrap_or(0),
            go_version,
            cross_version,
            origin: None,
        });
    }

    // The commit and its time in one git call: every call costs a process start, and an
    // unchanged rebuild should take milliseconds.
    let head = git(&root, &["show", "-s", "--format=%H %ct", "HEAD"]).map_err(|e| {
        // Asked only when that fails, so a normal build pays no extra git call.
        if git(&root, &["rev-parse", "--verify", "--quiet", "HEAD"]).is_err() {
            no_commits(&root)
        } else {
            e
        }
    })?;
    let (commit, commit_time) = head.split_once(' ').unwrap_or((head.as_str(), ""));
    let commit = commit.to_string();
    let status = git(&root, &["status", "--porcelain"])?;
    let tree_state = if status.is_empty() {
        TreeState::Clean
    } else {
        TreeState::Dirty
    };
    let dirty = tree_state == TreeState::Dirty;
    let version = match &overrides.git_version {
        // Upstream's make appends -dirty to a given KUBE_GIT_VERSION too when the tree is
        // dirty (hack/lib/version.sh), so that is what the binaries will report.
        Some(v) => version::parse(&format!("{v}{}", if dirty { "-dirty" } else { "" }))?,
        None => {
            let describe = git(
                &root,
                &["describe", "--tags", "--match=v*", "--abbrev=14", "HEAD^{commit}"],
            )
            .map_err(|_| {
                let short = &commit[..14.min(commit.len())];
                Error::source(format!(
                    "no version tag (v*) is reachable from commit {short}, so its version cannot be derived"
                ))
                .with_hint(format!(
                    "name the version it should report: --version v1.35.0-alpha.0.0+{short} (or KUBE_GIT_VERSION=...), \
or fetch the tags if the checkout lacks them (git fetch --tags)"
                ))
            })?;
            version::from_describe(&describe, dirty)?
        }
    };
    let source_date_epoch = match overrides.source_date_epoch {
        Some(epoch) => epoch,
        None => commit_time
            .parse::<u64>()
            .context(Kind::Source, || "cannot read the commit time".to_string())?,
    };
    Ok(SourceInfo {
        root,
        commit: Some(commit),
        tree_state,
        version,
        source_date_epoch,
        go_version,
        cross_version,
        origin: None,
    })
}

impl SourceInfo {
    /// The upstream kube-cross image the tree pins, as upstream's build would run it.
    pub fn default_image(&self) -> Option<String> {
        self.cross_version
            .as_ref()
            .map(|v| format!("{}:{v}", crate::kube::KUBE_CROSS_IMAGE))
    }

    /// The KUBE_GIT_VERSION to hand to make: upstream's hack/lib/version.sh appends
    /// `-dirty` itself when a commit is known and the tree is dirty, so it is passed without
    /// it; the binaries then report exactly `self.version.git_version`.
    pub fn stamp_version(&self) -> &str {
        let v = self.version.git_version.as_str();
        if self.tree_state == TreeState::Dirty && self.commit.is_some() {
            v.strip_suffix("-dirty").unwrap_or(v)
        } else {
            v
        }
    }

    /// The KUBE_GIT_* and SOURCE_DATE_EPOCH variables upstream's make honours.
    pub fn version_env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            (
                "KUBE_GIT_VERSION".to_string(),
                self.stamp_version().to_string(),
            ),
            ("KUBE_GIT_MAJOR".to_string(), self.version.git_major.clone()),
            ("KUBE_GIT_MINOR".to_string(), self.version.git_minor.clone()),
            (
                "KUBE_GIT_TREE_STATE".to_string(),
                self.tree_state.as_str().to_string(),
            ),
            (
                "SOURCE_DATE_EPOCH".to_string(),
                self.source_date_epoch.to_string(),
            ),
        ];
        if let Some(commit) = &self.commit {
            env.push(("KUBE_GIT_COMMIT".to_string(), commit.clone()));
        }
        env
    }
}
