//! Getting the Kubernetes source at a ref: clone into a new directory or update an
//! existing checkout, fetching only what the ref needs, through the git CLI without prompts.
//!
//! What is fetched:
//! - a **tag**: `git fetch --depth=1 --no-tags origin +refs/tags/T:refs/tags/T` — one commit,
//!   its tree and the tag object, enough for `git describe` (exact tag) to work;
//! - a **branch**: `git fetch --depth=1 --no-tags origin +refs/heads/B:refs/remotes/origin/B`;
//! - a **commit**: `git fetch --depth=1 --no-tags origin <sha>` (servers that refuse unadvertised
//!   commits get a full fetch of their branches instead, with a warning);
//! - then, for a branch or a commit that no tag points at, history is **deepened** (32, 256,
//!   2048, 16384 commits, then all) until `git describe` finds a version tag and every commit
//!   between that tag and the target is present, so the distance it counts is exact. Only the
//!   tags whose commits are in the fetched history are fetched (their list comes from one
//!   `git ls-remote`). With `--version`/KUBE_GIT_VERSION no describe is needed and nothing
//!   more is fetched.
//!
//! A checkout that already has full history is updated without `--depth` (never made shallow).
//! Local work is never lost: switching a checkout that has uncommitted changes (or commits no
//! ref holds) is refused; with `force` the changes are stashed and such commits kept on a
//! branch first, and the report says where.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::ui::Ui;

mod undo;
use undo::{Snapshot, Undo};

/// The repository `kbuild source` and `--ref` use unless told otherwise.
pub const DEFAULT_REPO: &str = "https://github.com/kubernetes/kubernetes.git";

/// How deep history is fetched, step by step, until `git describe` can name the version.
const DEEPEN_STEPS: [u32; 4] = [32, 256, 2048, 16384];

/// What to get.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub repo: &'a str,
    /// A tag, a branch, a commit id (full or abbreviated), `refs/tags/..`, `refs/heads/..`,
    /// or None for the remote's default branch.
    pub git_ref: Option<&'a str>,
    pub dir: &'a Path,
    /// Stash local changes (and keep unreferenced commits on a branch) instead of refusing.
    pub force: bool,
    /// Fetch enough history and tags for `git describe` to name the version.
    pub describe: bool,
}

/// What `get` did.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub dir: PathBuf,
    pub commit: String,
    /// `tag v1.34.2`, `branch master`, `commit 0123abcd...`.
    pub target: String,
    /// Whether HEAD moved.
    pub switched: bool,
    /// Where local work was put aside (with `force`).
    pub saved: Vec<String>,
}

/// `<cache>/kbuild/source/<name>-<8 hex of the URL>`: one checkout per repository URL.
pub fn default_dir(repo: &str) -> Result<PathBuf> {
    let cache = crate::env::cache_home().ok_or_else(|| {
        Error::usage("cannot tell where the cache directory is: neither XDG_CACHE_HOME nor HOME is set")
            .with_hint("pass --dir (kbuild source) or --source-dir (kbuild build) with a directory for the checkout")
    })?;
    Ok(dir_in(&cache, repo))
}

/// `<cache>/kbuild/source/<name>-<8 hex of the URL>`.
fn dir_in(cache: &Path, repo: &str) -> PathBuf {
    let name = repo
        .trim_end_matches('/')
        .rsplit(['/', ':'])
        .next()
        .unwrap_or("source")
        .trim_end_matches(".git");
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let name = if name.is_empty() || name.starts_with('.') {
        "source".to_string()
    } else {
        name
    };
    let digest = Sha256::digest(repo.as_bytes());
    let hex = hex::encode(&digest[..4]);
    cache
        .join("kbuild")
        .join("source")
        .join(format!("{name}-{hex}"))
}

/// Runs git in `dir` without prompts; returns the raw output whatever the exit status.
fn git_raw(dir: &Path, args: &[&str], stdin: Option<Vec<u8>>) -> Result<Output> {
    let mut cmd = duct::cmd("git", args)
        .dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GCM_INTERACTIVE", "never")
        .env("LC_ALL", "C")
        .stdout_capture()
        .stderr_capture()
        .unchecked();
    if !crate::env::current().is_set("GIT_SSH_COMMAND") && !crate::env::current().is_set("GIT_SSH")
    {
        // ssh must not ask for passwords or host keys either.
        cmd = cmd.env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes");
    }
    if let Some(bytes) = stdin {
        cmd = cmd.stdin_bytes(bytes);
    }
    cmd.run().map_err(|e| {
        Error::source(format!("cannot run git: {e}"))
            .with_hint("install git (apt-get install git) and make sure it is on PATH")
    })
}

fn git(dir: &Path, args: &[&str]) -> Result<String> {
    let out = git_raw(dir, args, None)?;
    if !out.status.success() {
        return Err(Error::source(format!(
            "git {} failed in {}: {}",
            args.join(" "),
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `git fetch` with a message that names the repository when it fails.
fn fetch(dir: &Path, repo: &str, args: &[&str]) -> Result<()> {
    let mut full = vec!["fetch", "--quiet"];
    full.extend_from_slice(args);
    let out = git_raw(dir, &full, None)?;
    if out.status.success() {
        return Ok(());
    }
    Err(fetch_failed(repo, &full, &out))
}

fn fetch_failed(repo: &str, args: &[&str], out: &Output) -> Error {
    let stderr = String::from_utf8_lossy(&out.stderr);
    Error::source(format!(
        "git {} from {repo} failed: {}",
        args.join(" "),
        stderr.trim()
    ))
    .with_hint(
        "check the repository URL and the network; prompts are disabled, so a private repository needs credentials configured for git (a credential helper or an ssh key in the agent)",
    )
}

/// The refs a remote advertises: heads and tags, with tags peeled to their commits.
#[derive(Debug, Default)]
struct RemoteRefs {
    /// refs/heads/* and refs/tags/* -> the object they name (a tag object for annotated tags).
    refs: HashMap<String, String>,
    /// refs/tags/* -> the commit the tag points at.
    tag_commits: HashMap<String, String>,
}

impl RemoteRefs {
    fn list(dir: &Path, repo: &str) -> Result<RemoteRefs> {
        Self::list_of(dir, "origin", repo)
    }

    /// The refs of `remote` (a remote's name in `dir`, or a URL), read in `dir`.
    fn list_of(dir: &Path, remote: &str, repo: &str) -> Result<RemoteRefs> {
        let args = ["ls-remote", "--tags", "--heads", remote];
        let out = git_raw(dir, &args, None)?;
        if !out.status.success() {
            return Err(fetch_failed(repo, &args, &out));
        }
        let mut refs = RemoteRefs::default();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Some((oid, name)) = line.split_once('\t') else {
                continue;
            };
            if let Some(tag) = name.strip_suffix("^{}") {
                refs.tag_commits.insert(tag.to_string(), oid.to_string());
            } else {
                refs.refs.insert(name.to_string(), oid.to_string());
                if name.starts_with("refs/tags/") {
                    refs.tag_commits
                        .entry(name.to_string())
                        .or_insert_with(|| oid.to_string());
                }
            }
        }
        Ok(refs)
    }
}

/// What the ref names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Tag(String),
    Branch(String),
    /// The remote's default branch.
    Head,
    /// A full commit id.
    Commit(String),
    /// An abbreviated id no advertised ref explains: found after a full fetch.
    ShortCommit(String),
}

impl Target {
    fn describe(&self) -> String {
        match self {
            Target::Tag(t) => format!("tag {t}"),
            Target::Branch(b) => format!("branch {b}"),
            Target::Head => "the default branch".to_string(),
            Target::Commit(c) | Target::ShortCommit(c) => format!("commit {c}"),
        }
    }

    /// The refspec that fetches it, when it is a ref.
    fn refspec(&self) -> Option<String> {
        match self {
            Target::Tag(t) => Some(format!("+refs/tags/{t}:refs/tags/{t}")),
            Target::Branch(b) => Some(format!("+refs/heads/{b}:refs/remotes/origin/{b}")),
            Target::Head => Some("+HEAD:refs/remotes/origin/HEAD".to_string()),
            Target::Commit(_) | Target::ShortCommit(_) => None,
        }
    }

    /// The local name of what was fetched.
    fn local_ref(&self) -> String {
        match self {
            Target::Tag(t) => format!("refs/tags/{t}"),
            Target::Branch(b) => format!("refs/remotes/origin/{b}"),
            Target::Head => "refs/remotes/origin/HEAD".to_string(),
            Target::Commit(c) | Target::ShortCommit(c) => c.clone(),
        }
    }
}

/// The commit `git_ref` names in `repo` now, asked without a checkout (`git ls-remote`,
/// which changes nothing): what a plan of a `--ref` build pins. None for the default branch
/// and for an abbreviated id no ref explains, which only a fetch can resolve.
pub fn remote_commit(repo: &str, git_ref: &str) -> Result<Option<String>> {
    let remote = RemoteRefs::list_of(&std::env::temp_dir(), repo, repo)?;
    Ok(match resolve(Some(git_ref), &remote, repo)? {
        Target::Tag(t) => remote.tag_commits.get(&format!("refs/tags/{t}")).cloned(),
        Target::Branch(b) => remote.refs.get(&format!("refs/heads/{b}")).cloned(),
        Target::Commit(c) => Some(c),
        Target::Head | Target::ShortCommit(_) => None,
    })
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn resolve(git_ref: Option<&str>, remote: &RemoteRefs, repo: &str) -> Result<Target> {
    let Some(name) = git_ref.map(str::trim).filter(|r| !r.is_empty()) else {
        return Ok(Target::Head);
    };
    if name == "HEAD" {
        return Ok(Target::Head);
    }
    if let Some(tag) = name.strip_prefix("refs/tags/") {
        if remote.refs.contains_key(name) {
            return Ok(Target::Tag(tag.to_string()));
        }
    } else if let Some(branch) = name.strip_prefix("refs/heads/") {
        if remote.refs.contains_key(name) {
            return Ok(Target::Branch(branch.to_string()));
        }
    } else {
        if remote.refs.contains_key(&format!("refs/tags/{name}")) {
            return Ok(Target::Tag(name.to_string()));
        }
        let branch = name.strip_prefix("origin/").unwrap_or(name);
        if remote.refs.contains_key(&format!("refs/heads/{branch}")) {
            return Ok(Target::Branch(branch.to_string()));
        }
        if is_hex(name) && name.len() == 40 {
            return Ok(Target::Commit(name.to_ascii_lowercase()));
        }
        if is_hex(name) && name.len() >= 7 && name.len() < 40 {
            let lower = name.to_ascii_lowercase();
            let mut found: Vec<&str> = remote
                .refs
                .values()
                .chain(remote.tag_commits.values())
                .filter(|oid| oid.starts_with(&lower))
                .map(String::as_str)
                .collect();
            found.sort();
            found.dedup();
            return Ok(match found.as_slice() {
                [one] => Target::Commit(one.to_string()),
                _ => Target::ShortCommit(lower),
            });
        }
    }
    let mut names: Vec<&str> = remote
        .refs
        .keys()
        .filter_map(|r| {
            r.strip_prefix("refs/tags/")
                .or_else(|| r.strip_prefix("refs/heads/"))
        })
        .collect();
    names.sort(); // the same suggestion every time
    let mut err = Error::source(format!(
        "\"{name}\" is not a tag, a branch or a commit id of {repo}"
    ));
    err = match crate::suggest::closest(name, names.iter().copied()) {
        Some(close) => err.with_hint(format!(
            "did you mean \"{close}\"? (a commit must be given by its id, at least 7 hex digits)"
        )),
        None => err.with_hint(
            "name a tag (v1.34.2), a branch (master, release-1.34) or a commit id (at least 7 hex digits); `git ls-remote --tags URL` lists the tags",
        ),
    };
    Err(err)
}

fn is_git_top(dir: &Path) -> bool {
    let Ok(canonical) = dir.canonicalize() else {
        return false;
    };
    match git(&canonical, &["rev-parse", "--show-toplevel"]) {
        Ok(top) => Path::new(&top).canonicalize().ok().as_deref() == Some(canonical.as_path()),
        Err(_) => false,
    }
}

fn is_shallow(dir: &Path) -> Result<bool> {
    Ok(git(dir, &["rev-parse", "--is-shallow-repository"])? == "true")
}

fn has_commit(dir: &Path, rev: &str) -> bool {
    git_raw(dir, &["cat-file", "-e", &format!("{rev}^{{commit}}")], None)
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn rev_parse_commit(dir: &Path, rev: &str) -> Option<String> {
    git(
        dir,
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{rev}^{{commit}}"),
        ],
    )
    .ok()
    .filter(|s| !s.is_empty())
}

/// Gets `req.repo` at `req.git_ref` into `req.dir`. A failure leaves the directory as it was:
/// a new checkout is removed again, and an existing one gets back its refs and its shallow
/// boundary (a later run then fetches as if this one had never happened).
pub fn get(req: &Request<'_>, ui: &Ui) -> Result<Outcome> {
    let (dir, undo) = open_checkout(req, ui)?;
    let fetched = fetch_target(req, &dir, undo.is_new(), ui);
    let (target, commit) = match fetched {
        Ok(found) => found,
        Err(e) => return Err(undo.apply(&dir, e, ui)),
    };
    match switch(&dir, &target, &commit, req.force, ui) {
        Ok((switched, saved)) => Ok(Outcome {
            dir,
            commit,
            target: target.describe(),
            switched,
            saved,
        }),
        // With `force`, switching may have stashed local work or kept commits on a branch:
        // restoring the refs would drop those, so only a checkout kbuild made is undone then.
        Err(e) if undo.is_new() || !req.force => Err(undo.apply(&dir, e, ui)),
        Err(e) => Err(e),
    }
}

/// Creates a new checkout, or checks that an existing directory is a checkout of `req.repo`;
/// returns its canonical path and how to undo this run should it fail.
fn open_checkout(req: &Request<'_>, ui: &Ui) -> Result<(PathBuf, Undo)> {
    let dir = req.dir;
    let empty = std::fs::read_dir(dir)
        .map(|mut d| d.next().is_none())
        .unwrap_or(false);
    if !dir.exists() || empty {
        let undo = if empty {
            Undo::Empty(dir.to_path_buf())
        } else {
            // The topmost directory this run creates, so that a failure removes all of them.
            let created = dir
                .ancestors()
                .take_while(|a| !a.as_os_str().is_empty() && !a.exists())
                .last()
                .unwrap_or(dir)
                .to_path_buf();
            Undo::Remove(created)
        };
        std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create", dir, e))?;
        let canonical = dir
            .canonicalize()
            .map_err(|e| Error::io("cannot open", dir, e))?;
        let initialised = git(&canonical, &["init", "--quiet"])
            .and_then(|_| git(&canonical, &["remote", "add", "origin", req.repo]));
        if let Err(e) = initialised {
            return Err(undo.apply(&canonical, e, ui));
        }
        ui.phase(
            "source",
            &format!("new checkout of {} in {}", req.repo, dir.display()),
        );
        return Ok((canonical, undo));
    }
    if !is_git_top(dir) {
        return Err(Error::usage(format!(
            "{} exists and is not a git checkout, so kbuild will not clone into it",
            dir.display()
        ))
        .with_hint("choose an empty or new directory for the checkout, or remove this one"));
    }
    let origin = git(dir, &["config", "--get", "remote.origin.url"]).unwrap_or_default();
    if !origin.is_empty() && origin != req.repo {
        return Err(Error::usage(format!(
            "{} is a checkout of {origin}, not of {}",
            dir.display(),
            req.repo
        ))
        .with_hint(format!(
            "use another directory for {}, or point this one at it: git -C {} remote set-url origin {}",
            req.repo,
            dir.display(),
            req.repo
        )));
    }
    let canonical = dir
        .canonicalize()
        .map_err(|e| Error::io("cannot open", dir, e))?;
    let snapshot = Snapshot::take(&canonical)?;
    if origin.is_empty() {
        git(&canonical, &["remote", "add", "origin", req.repo])?;
    }
    let detail = if snapshot.refs.is_empty() {
        // e.g. the `.git` an interrupted first clone left: fetched as a new checkout.
        format!(
            "completing the checkout in {} (it holds no commits yet)",
            dir.display()
        )
    } else {
        format!("updating the checkout in {}", dir.display())
    };
    ui.phase("source", &detail);
    Ok((canonical, Undo::Restore(snapshot)))
}

/// Fetches what the ref names (and, when asked, enough history for `git describe`) without
/// touching HEAD or the work tree; returns the target and its commit.
fn fetch_target(req: &Request<'_>, dir: &Path, new: bool, ui: &Ui) -> Result<(Target, String)> {
    let remote = RemoteRefs::list(dir, req.repo)?;
    let target = resolve(req.git_ref, &remote, req.repo)?;
    // A repository with full history stays whole: only a new or shallow one fetches shallow.
    let shallow = new || is_shallow(dir)?;
    let depth_arg = "--depth=1";
    let commit = match &target {
        Target::Tag(_) | Target::Branch(_) | Target::Head => {
            let refspec = target.refspec().expect("a ref");
            ui.info(&format!(
                "fetching {} from {}{}",
                target.describe(),
                req.repo,
                if shallow { " (depth 1)" } else { "" }
            ));
            let mut args = vec!["--no-tags"];
            if shallow {
                args.push(depth_arg);
            }
            args.extend(["origin", refspec.as_str()]);
            fetch(dir, req.repo, &args)?;
            rev_parse_commit(dir, &target.local_ref()).ok_or_else(|| {
                Error::source(format!(
                    "{} was fetched but names no commit",
                    target.describe()
                ))
            })?
        }
        Target::Commit(sha) => {
            if !has_commit(dir, sha) {
                ui.info(&format!(
                    "fetching commit {sha} from {}{}",
                    req.repo,
                    if shallow { " (depth 1)" } else { "" }
                ));
                let mut args = vec!["fetch", "--quiet", "--no-tags"];
                if shallow {
                    args.push(depth_arg);
                }
                args.extend(["origin", sha.as_str()]);
                let out = git_raw(dir, &args, None)?;
                if !out.status.success() {
                    ui.warn(&format!(
                        "{} does not serve commits by id ({}); fetching all of its branches to find {sha}",
                        req.repo,
                        String::from_utf8_lossy(&out.stderr).trim()
                    ));
                    fetch_everything(dir, req.repo)?;
                }
            }
            let found = rev_parse_commit(dir, sha).ok_or_else(|| not_found(sha, req.repo))?;
            keep_ref(dir, &found)?;
            found
        }
        Target::ShortCommit(short) => {
            let found = match rev_parse_commit(dir, short) {
                Some(found) => found,
                None => {
                    ui.warn(&format!(
                        "no branch or tag of {} ends at {short}, and an abbreviated id cannot be fetched by itself; fetching all branches to find it (give the full 40-digit id to fetch only that commit)",
                        req.repo
                    ));
                    fetch_everything(dir, req.repo)?;
                    rev_parse_commit(dir, short).ok_or_else(|| not_found(short, req.repo))?
                }
            };
            keep_ref(dir, &found)?;
            found
        }
    };
    if req.describe && is_shallow(dir)? {
        make_describable(dir, req.repo, &target, &commit, &remote, ui)?;
    }
    Ok((target, commit))
}

/// Moves HEAD to `commit`, guarding local work; returns whether it moved and what was saved.
fn switch(
    dir: &Path,
    target: &Target,
    commit: &str,
    force: bool,
    ui: &Ui,
) -> Result<(bool, Vec<String>)> {
    let head = rev_parse_commit(dir, "HEAD");
    let switched = head.as_deref() != Some(commit);
    if !switched {
        ui.detail(&format!("already at {}", target.describe()));
        return Ok((false, Vec::new()));
    }
    let saved = match head {
        Some(_) => protect_local_work(dir, target, force)?,
        None => Vec::new(),
    };
    git(
        dir,
        &[
            "-c",
            "advice.detachedHead=false",
            "checkout",
            "--quiet",
            "--detach",
            commit,
        ],
    )?;
    Ok((true, saved))
}

fn not_found(rev: &str, repo: &str) -> Error {
    Error::source(format!("commit {rev} is not in any branch or tag of {repo}"))
        .with_hint("check the commit id; a commit only on a pull request or a fork must be fetched from that repository (--repo)")
}

/// Every branch and tag, the whole history: the fallback when a commit cannot be fetched alone.
fn fetch_everything(dir: &Path, repo: &str) -> Result<()> {
    let mut args = vec!["--tags"];
    if is_shallow(dir)? {
        args.push("--unshallow");
    }
    args.extend(["origin", "+refs/heads/*:refs/remotes/origin/*"]);
    fetch(dir, repo, &args)
}

/// A ref under refs/kbuild/ holds a commit fetched by id, so that it is never mistaken
/// for local work and is not garbage collected.
fn keep_ref(dir: &Path, commit: &str) -> Result<()> {
    git(
        dir,
        &[
            "update-ref",
            &format!("refs/kbuild/commits/{commit}"),
            commit,
        ],
    )
    .map(|_| ())
}

/// Refuses to switch away from local work, or (with `force`) puts it where it is kept.
fn protect_local_work(dir: &Path, target: &Target, force: bool) -> Result<Vec<String>> {
    let status = git(dir, &["status", "--porcelain", "--untracked-files=all"])?;
    let changes: Vec<&str> = status.lines().collect();
    // Commits on a detached HEAD that no branch, tag or remote ref holds.
    let detached = git(dir, &["symbolic-ref", "--quiet", "HEAD"]).is_err();
    let unreferenced = detached
        && git(
            dir,
            &[
                "for-each-ref",
                "--contains",
                "HEAD",
                "--count=1",
                "--format=%(refname)",
            ],
        )?
        .is_empty();
    if changes.is_empty() && !unreferenced {
        return Ok(Vec::new());
    }
    if !force {
        let mut details: Vec<String> = changes.iter().take(20).map(|l| l.to_string()).collect();
        if changes.len() > 20 {
            details.push(format!("... and {} more", changes.len() - 20));
        }
        let what = match (changes.is_empty(), unreferenced) {
            (false, true) => format!(
                "{} and commits that no branch holds",
                crate::ui::count(changes.len(), "uncommitted change", "uncommitted changes")
            ),
            (false, false) => {
                crate::ui::count(changes.len(), "uncommitted change", "uncommitted changes")
            }
            _ => "commits that no branch holds (made on a detached HEAD)".to_string(),
        };
        return Err(Error::source(format!(
            "{} has {what}; switching it to {} could lose them, so it was left as it is",
            dir.display(),
            target.describe()
        ))
        .with_hint(format!(
            "commit or stash them (git -C {0} stash --include-untracked), or run again with --force: kbuild then stashes the changes and keeps such commits on a branch before switching",
            dir.display()
        ))
        .with_details(details));
    }
    let mut saved = Vec::new();
    let identity = needs_identity(dir);
    if unreferenced {
        let branch = format!(
            "kbuild-saved-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        );
        git(dir, &["branch", &branch, "HEAD"])?;
        saved.push(format!("commits kept on branch {branch}"));
    }
    if !changes.is_empty() {
        let message = format!(
            "kbuild: local changes before switching to {}",
            target.describe()
        );
        let mut args: Vec<&str> = Vec::new();
        if identity {
            args.extend([
                "-c",
                "user.name=kbuild",
                "-c",
                "user.email=kbuild@localhost",
            ]);
        }
        args.extend([
            "stash",
            "push",
            "--include-untracked",
            "--message",
            &message,
        ]);
        git(dir, &args)?;
        saved.push(format!(
            "changes stashed as \"{message}\" (git -C {} stash pop restores them)",
            dir.display()
        ));
    }
    Ok(saved)
}

/// Whether git has no identity to write the stash commit with.
fn needs_identity(dir: &Path) -> bool {
    git(dir, &["config", "user.email"])
        .map(|e| e.is_empty())
        .unwrap_or(true)
}

/// Deepens a shallow checkout until `git describe` names the version exactly.
fn make_describable(
    dir: &Path,
    repo: &str,
    target: &Target,
    commit: &str,
    remote: &RemoteRefs,
    ui: &Ui,
) -> Result<()> {
    let mut steps = DEEPEN_STEPS.iter().map(|d| Some(*d)).collect::<Vec<_>>();
    steps.insert(0, None); // first try with what is already here
    steps.push(Some(0)); // 0 = the whole history
    for step in steps {
        if let Some(depth) = step {
            if !is_shallow(dir)? {
                break; // the whole history is here: nothing more to fetch
            }
            let depth_arg = format!("--depth={depth}");
            let mut args = vec!["--no-tags"];
            if depth == 0 {
                args.push("--unshallow");
                ui.info("no version tag in the fetched history yet: fetching the whole history");
            } else {
                args.push(&depth_arg);
                ui.info(&format!(
                    "looking for the version tag: fetching {depth} commits of history"
                ));
            }
            let spec = target.refspec().unwrap_or_else(|| commit.to_string());
            args.extend(["origin", spec.as_str()]);
            fetch(dir, repo, &args)?;
        }
        fetch_present_tags(dir, repo, remote)?;
        if let Some(tag) = nearest_tag(dir, commit) {
            if history_complete_since(dir, &tag, commit)? {
                ui.detail(&format!("version tag {tag} is in the fetched history"));
                return Ok(());
            }
        }
    }
    // No tag reachable at all: the version must be named (inspect says how).
    Ok(())
}

/// Fetches the tag objects of every remote tag whose commit is already here.
fn fetch_present_tags(dir: &Path, repo: &str, remote: &RemoteRefs) -> Result<()> {
    let candidates: Vec<(&String, &String)> = remote
        .tag_commits
        .iter()
        .filter(|(name, _)| name.starts_with("refs/tags/v"))
        .collect();
    if candidates.is_empty() {
        return Ok(());
    }
    let input: String = candidates
        .iter()
        .map(|(_, oid)| format!("{oid}\n"))
        .collect();
    let out = git_raw(
        dir,
        &["cat-file", "--batch-check"],
        Some(input.into_bytes()),
    )?;
    let present: std::collections::HashSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.ends_with(" missing"))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    let mut wanted: Vec<String> = Vec::new();
    for (name, oid) in candidates {
        if present.contains(oid.as_str()) && rev_parse_commit(dir, name).is_none() {
            wanted.push(format!("+{name}:{name}"));
        }
    }
    if wanted.is_empty() {
        return Ok(());
    }
    for chunk in wanted.chunks(200) {
        let mut args = vec!["--no-tags", "origin"];
        args.extend(chunk.iter().map(String::as_str));
        fetch(dir, repo, &args)?;
    }
    Ok(())
}

/// The version tag `git describe` would use for `commit`.
fn nearest_tag(dir: &Path, commit: &str) -> Option<String> {
    git(
        dir,
        &["describe", "--tags", "--match=v*", "--abbrev=0", commit],
    )
    .ok()
    .filter(|t| !t.is_empty())
}

/// Whether every commit between `tag` and `commit` is here with its parents, so that the
/// distance `git describe` counts is the true one.
fn history_complete_since(dir: &Path, tag: &str, commit: &str) -> Result<bool> {
    let shallow_file = git(dir, &["rev-parse", "--git-path", "shallow"])?;
    let shallow_path = dir.join(shallow_file);
    let Ok(text) = std::fs::read_to_string(&shallow_path) else {
        return Ok(true); // not shallow any more
    };
    let boundary: std::collections::HashSet<&str> = text.lines().map(str::trim).collect();
    let between = git(
        dir,
        &["rev-list", commit, &format!("^refs/tags/{tag}^{{commit}}")],
    )?;
    Ok(!between.lines().any(|c| boundary.contains(c.trim())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote() -> RemoteRefs {
        let mut r = RemoteRefs::default();
        r.refs.insert("refs/heads/master".into(), "a".repeat(40));
        r.refs
            .insert("refs/heads/release-1.34".into(), "b".repeat(40));
        r.refs.insert("refs/tags/v1.34.0".into(), "c".repeat(40));
        r.tag_commits
            .insert("refs/tags/v1.34.0".into(), "d".repeat(40));
        r
    }

    #[test]
    fn resolves_tags_branches_and_commits() {
        let r = remote();
        assert_eq!(
            resolve(Some("v1.34.0"), &r, "u").unwrap(),
            Target::Tag("v1.34.0".into())
        );
        assert_eq!(
            resolve(Some("refs/heads/master"), &r, "u").unwrap(),
            Target::Branch("master".into())
        );
        assert_eq!(
            resolve(Some("origin/release-1.34"), &r, "u").unwrap(),
            Target::Branch("release-1.34".into())
        );
        assert_eq!(resolve(None, &r, "u").unwrap(), Target::Head);
        let sha = "e".repeat(40);
        assert_eq!(
            resolve(Some(&sha), &r, "u").unwrap(),
            Target::Commit(sha.clone())
        );
        // An abbreviation of an advertised commit is expanded; others are looked up later.
        assert_eq!(
            resolve(Some("ddddddd"), &r, "u").unwrap(),
            Target::Commit("d".repeat(40))
        );
        assert_eq!(
            resolve(Some("1234567"), &r, "u").unwrap(),
            Target::ShortCommit("1234567".into())
        );
    }

    #[test]
    fn unknown_refs_get_a_suggestion() {
        let err = resolve(Some("v1.34.O"), &remote(), "u").unwrap_err();
        assert!(err.message.contains("not a tag, a branch or a commit"));
        assert!(err.hint.unwrap().contains("v1.34.0"));
    }

    #[test]
    fn default_dirs_differ_by_url() {
        let cache = Path::new("/cache");
        let a = dir_in(cache, "https://github.com/kubernetes/kubernetes.git");
        let b = dir_in(cache, "https://github.com/me/kubernetes.git");
        assert!(
            a.to_str()
                .unwrap()
                .starts_with("/cache/kbuild/source/kubernetes-"),
            "{a:?}"
        );
        assert_ne!(a, b);
    }
}
