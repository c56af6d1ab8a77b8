//! The output directory (`--out`) and what kbuild owns in it.
//!
//! kbuild writes only into an output directory it created, or adopted while it was empty,
//! and marks it with `.kbuild/owner.json`: who owns it (kbuild, and the run that made the
//! marker) and the top-level paths kbuild wrote there (bin, logs, release-tars, extension,
//! its lock and state), and `.kbuild/files`: every file kbuild wrote below them. `kbuild
//! clean` removes only those files and the directories they leave empty, never the lock
//! file, and refuses a directory without the marker, so it deletes nothing kbuild did not
//! write.
//!
//! Below `--out`, nothing is written through a symbolic link: every directory is walked one
//! component at a time with `symlink_metadata`, and every file is created new (O_EXCL,
//! O_NOFOLLOW) under its own name or a temporary one that is then renamed.

pub mod joblog;
pub mod last_engines;
pub mod lock;
pub mod outputs;

use std::collections::{BTreeSet, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use tempfile::NamedTempFile;

use crate::error::{Error, Kind, Result};

/// The marker directory; it also holds the fingerprint records (`<job>.json`).
pub const MARKER_DIR: &str = ".kbuild";
/// The lock file's name (runs on one output directory take turns: `crate::outdir::lock`).
pub const LOCK_FILE: &str = ".kbuild.lock";
/// The owner file inside the marker directory.
pub const OWNER_FILE: &str = "owner.json";
/// The value of `owner` in the owner file.
const OWNER: &str = "kbuild";

/// Top-level names kbuild writes in an output directory; none of them may be a link.
const KNOWN: &[&str] = &[
    "bin",
    "logs",
    "release-tars",
    "extension",
    MARKER_DIR,
    LOCK_FILE,
];

/// `.kbuild/owner.json`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Owner {
    /// Always "kbuild".
    pub owner: String,
    pub kbuild_version: String,
    /// True when kbuild created the directory itself: `kbuild clean` then removes it too
    /// once it is empty. False when kbuild adopted an existing empty directory.
    pub created: bool,
    /// The run that made the marker.
    pub run: Run,
    /// Top-level names kbuild wrote in the directory (the marker directory aside).
    pub paths: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Run {
    pub pid: u32,
    /// `kbuild build`, `kbuild quick-release`, ...
    pub command: String,
    /// Seconds since the Unix epoch.
    pub started: u64,
}

/// A validated `--out`.
#[derive(Debug, Clone)]
pub struct OutDir {
    /// Its path relative to the source tree when it lies inside it (then it is git-ignored:
    /// the source tarball and the dirty check must leave it out).
    pub in_tree: Option<PathBuf>,
}

/// Refuses an `--out` that is `/`, `$HOME`, the source tree `tree` or an ancestor of it, a
/// file, or a path inside the tree that git does not ignore (exit 2). Writes nothing.
pub fn check(out: &Path, tree: Option<&Path>) -> Result<OutDir> {
    let resolved = check_not_precious(out, tree)?;
    let Some(tree) = tree.map(resolve) else {
        return Ok(OutDir { in_tree: None });
    };
    let Ok(rel) = resolved.strip_prefix(&tree) else {
        return Ok(OutDir { in_tree: None });
    };
    if rel.components().next() != Some(Component::Normal(".git".as_ref())) && ignored(&tree, rel) {
        return Ok(OutDir {
            in_tree: Some(rel.to_path_buf()),
        });
    }
    Err(Error::usage(format!(
        "--out {} is inside the source tree {} and git does not ignore it: the outputs would make the tree dirty and end up in kubernetes-src.tar.gz",
        out.display(),
        tree.display()
    ))
    .with_hint(in_tree_hint(&tree, rel)))
}

/// Where to put the outputs instead: `_output/kbuild` when the tree's .gitignore covers
/// it (Kubernetes ignores `/_output*/`, where its own builds write), or any path outside.
fn in_tree_hint(tree: &Path, rel: &Path) -> String {
    let ignore_it = format!(
        "make git ignore it (echo /{}/ >> {}/.git/info/exclude)",
        rel.display(),
        tree.display()
    );
    let suggested = Path::new("_output/kbuild");
    if ignored(tree, suggested) {
        format!(
            "use --out {} (git ignores it), an --out outside the tree, or {ignore_it}",
            tree.join(suggested).display()
        )
    } else {
        format!("use an --out outside the tree, or {ignore_it}")
    }
}

/// Refuses (exit 2) an `--out` that is empty, a file, `/`, `$HOME`, or the tree `tree` or an
/// ancestor of it; returns it resolved.
pub fn check_not_precious(out: &Path, tree: Option<&Path>) -> Result<PathBuf> {
    if out.as_os_str().is_empty() {
        return Err(Error::usage("--out is empty").with_hint("name a directory, e.g. --out out"));
    }
    let resolved = resolve(out);
    if std::fs::metadata(out).is_ok_and(|m| !m.is_dir()) {
        return Err(
            Error::usage(format!("--out {} is not a directory", out.display()))
                .with_hint("name a new or empty directory, or one kbuild wrote before"),
        );
    }
    let refuse = |what: &str| {
        Error::usage(format!(
            "--out {} is {what}: kbuild will not write or clean there",
            out.display()
        ))
        .with_hint("use a directory of its own for kbuild's outputs, e.g. --out out")
    };
    if resolved == Path::new("/") {
        return Err(refuse("the root directory"));
    }
    if let Some(home) = crate::env::current().os("HOME") {
        if resolved == resolve(Path::new(&home)) {
            return Err(refuse("your home directory"));
        }
    }
    if let Some(tree) = tree.map(resolve) {
        if tree.starts_with(&resolved) {
            let what = if tree == resolved {
                "the source tree".to_string()
            } else {
                format!("an ancestor of the source tree {}", tree.display())
            };
            return Err(refuse(&what));
        }
    }
    Ok(resolved)
}

/// Whether git ignores the directory `rel` of the checkout `tree` (`git check-ignore`).
fn ignored(tree: &Path, rel: &Path) -> bool {
    let mut dir = rel.as_os_str().to_owned();
    // The trailing slash lets directory-only patterns (`/dist/`) match a path not yet made.
    dir.push("/");
    Command::new("git")
        .args(["check-ignore", "-q", "--"])
        .arg(dir)
        .current_dir(tree)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// An absolute path without `.` or `..`, its existing part with links resolved (so that a
/// link or `..` cannot hide that it is `/` or the tree).
pub fn resolve(path: &Path) -> PathBuf {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .unwrap_or_else(|_| PathBuf::from("/"))
            .join(path)
    };
    let mut resolved = PathBuf::from("/");
    for c in absolute.components() {
        match c {
            // `resolved` has no links, so its parent is the real parent.
            Component::ParentDir => {
                resolved.pop();
            }
            Component::Normal(name) => {
                resolved.push(name);
                if let Ok(real) = resolved.canonicalize() {
                    resolved = real;
                }
            }
            _ => {}
        }
    }
    resolved
}

/// Validates `out` against `tree` ([`check`]), then takes ownership of it: a missing
/// directory is created and marked, an empty one adopted and marked, a marked one used
/// as is. A directory with other files and no marker is refused (exit 2), as is one where
/// a path kbuild writes is a symbolic link (exit 8).
pub fn claim(out: &Path, tree: &Path) -> Result<OutDir> {
    claim_beside(out, tree, None)
}

/// [`claim`], where `out` may also hold `input`, a directory directly in it that the run
/// reads (`kbuild package --bin out/bin --out out`, after a CI job downloaded `out/bin`):
/// such a directory is adopted with nothing recorded but the lock, so the owner file and
/// the ledger list only what kbuild writes, and `kbuild clean` leaves the input alone.
pub fn claim_beside(out: &Path, tree: &Path, input: Option<&Path>) -> Result<OutDir> {
    let checked = check(out, Some(tree))?;
    let created = match std::fs::symlink_metadata(out) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .map_err(|e| Error::io("cannot create", parent, e))?;
            }
            match std::fs::create_dir(out) {
                Ok(()) => true,
                // Another run made it a moment ago.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
                Err(e) => return Err(Error::io("cannot create", out, e)),
            }
        }
        _ => false,
    };
    for name in KNOWN {
        refuse_link(&out.join(name))?;
    }
    if read_owner(out)?.is_some() {
        track(out);
        return Ok(checked);
    }
    if !created && !empty_but_ours(out, input)? {
        return Err(Error::usage(format!(
            "--out {} holds files and kbuild did not create it (it has no {MARKER_DIR}/{OWNER_FILE}): kbuild writes only into directories it owns, so that `kbuild clean` never removes anything else",
            out.display()
        ))
        .with_hint("use a new or empty directory for --out (kbuild marks it as its own)"));
    }
    let paths = BTreeSet::from([LOCK_FILE.to_string()]);
    write_owner(out, &new_owner(created, paths))?;
    track(out);
    Ok(checked)
}

fn new_owner(created: bool, paths: BTreeSet<String>) -> Owner {
    Owner {
        owner: OWNER.to_string(),
        kbuild_version: env!("CARGO_PKG_VERSION").to_string(),
        created,
        run: Run {
            pid: std::process::id(),
            // The subcommand only: other arguments may carry credentials (--repo URLs).
            command: std::env::args()
                .nth(1)
                .map(|c| format!("kbuild {c}"))
                .unwrap_or_else(|| "kbuild".to_string()),
            started: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        },
        paths,
    }
}

/// Empty, apart from kbuild's own lock and marker directory (a concurrent run that is
/// marking the same new directory) and the run's `input` directory.
fn empty_but_ours(out: &Path, input: Option<&Path>) -> Result<bool> {
    let input = input.map(resolve);
    let entries = std::fs::read_dir(out).map_err(|e| Error::io("cannot read", out, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("cannot read", out, e))?;
        let name = entry.file_name();
        let is_input = || {
            let real_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            real_dir && input.as_deref() == Some(resolve(&entry.path()).as_path())
        };
        if name != MARKER_DIR && name != LOCK_FILE && !is_input() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The owner file of `out`, if it has a valid one. A marker that is a link is refused.
pub fn read_owner(out: &Path) -> Result<Option<Owner>> {
    let marker = out.join(MARKER_DIR);
    refuse_link(&marker)?;
    let path = marker.join(OWNER_FILE);
    refuse_link(&path)?;
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    Ok(serde_json::from_str::<Owner>(&text)
        .ok()
        .filter(|o| o.owner == OWNER))
}

fn write_owner(out: &Path, owner: &Owner) -> Result<()> {
    let marker = ensure_below(out, Path::new(MARKER_DIR))?;
    let mut text = serde_json::to_string_pretty(owner).expect("owner serializes");
    text.push('\n');
    write_atomic(&marker.join(OWNER_FILE), text.as_bytes())
}

/// Adds the top-level `name` to the paths `out`'s owner file records (a directory
/// without an owner file records nothing: kbuild did not claim it).
pub fn record(out: &Path, name: &str) -> Result<()> {
    track(out);
    if name == MARKER_DIR {
        // Always removed last, whether recorded or not.
        return Ok(());
    }
    match read_owner(out)? {
        Some(mut owner) if !owner.paths.contains(name) => {
            owner.paths.insert(name.to_string());
            write_owner(out, &owner)
        }
        _ => Ok(()),
    }
}

// ---- The ledger: every file kbuild writes below an owned `--out`, one relative path a
// line in `.kbuild/files`, so that `kbuild clean` removes those files and nothing a user
// put beside them. It is appended to before the file is made, so a crash leaves no
// unrecorded file; runs on one `--out` take turns (its lock), so lines never interleave.

/// The ledger's name inside the marker directory.
pub const LEDGER_FILE: &str = "files";

/// The output directories this process writes, with the paths already in their ledgers.
static TRACKED: Mutex<Vec<(PathBuf, HashSet<PathBuf>)>> = Mutex::new(Vec::new());

/// Starts recording the files written below `out`, once it is kbuild's (a directory
/// without the marker gets no ledger: kbuild never writes one into a user's directory).
fn track(out: &Path) {
    let mut tracked = TRACKED.lock().unwrap_or_else(|e| e.into_inner());
    if tracked.iter().any(|(o, _)| o == out) || !matches!(read_owner(out), Ok(Some(_))) {
        return;
    }
    let known = read_ledger(out).into_iter().collect();
    tracked.push((out.to_path_buf(), known));
}

/// Whether this process claimed `out` ([`claim`]): a run refused before its claim (a stale
/// saved plan, an engine that does not answer) leaves an earlier run's files alone.
pub fn claimed_here(out: &Path) -> bool {
    let tracked = TRACKED.lock().unwrap_or_else(|e| e.into_inner());
    tracked.iter().any(|(o, _)| o == out)
}

/// Records `path` in the ledger of the tracked `--out` it lies in (nothing otherwise).
fn note_written(path: &Path) {
    let mut tracked = TRACKED.lock().unwrap_or_else(|e| e.into_inner());
    for (out, known) in tracked.iter_mut() {
        let Some(rel) = path.strip_prefix(&*out).ok().and_then(final_name) else {
            continue;
        };
        if known.insert(rel.clone()) {
            // Best effort: an unrecorded file is only kept by clean, never lost.
            let _ = append_ledger(out, &rel);
        }
        return;
    }
}

/// Where a file being written will end up: staging names (`.NAME.PID.kbuild-tmp`,
/// `NAME.kbuild-tmp`) become `NAME`. None for what the ledger does not hold: kbuild's own
/// state (the marker, the lock) and anything that is not a plain one-line relative path.
fn final_name(rel: &Path) -> Option<PathBuf> {
    let mut name = PathBuf::new();
    for c in rel.components() {
        let Component::Normal(part) = c else {
            return None;
        };
        let part = part.to_str().filter(|p| !p.contains('\n'))?;
        name.push(match part.strip_suffix(TMP_SUFFIX) {
            Some(staged) => unstage(staged),
            None => part,
        });
    }
    let top = name.components().next()?.as_os_str();
    (top != MARKER_DIR && top != LOCK_FILE).then_some(name)
}

/// `.NAME.PID` -> `NAME`; `NAME` stays.
fn unstage(staged: &str) -> &str {
    match staged.strip_prefix('.').and_then(|s| s.rsplit_once('.')) {
        Some((name, pid)) if !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => staged,
    }
}

fn append_ledger(out: &Path, rel: &Path) -> Result<()> {
    let marker = ensure_below(out, Path::new(MARKER_DIR))?;
    let path = marker.join(LEDGER_FILE);
    let mut file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o644)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(&path)
        .map_err(|e| Error::io("cannot record in", &path, e))?;
    let line = format!("{}\n", rel.display());
    file.write_all(line.as_bytes())
        .map_err(|e| Error::io("cannot record in", &path, e))
}

/// The paths `out`'s ledger holds (plain relative paths only: a doctored ledger cannot
/// point outside `out`).
pub fn read_ledger(out: &Path) -> Vec<PathBuf> {
    let path = out.join(MARKER_DIR).join(LEDGER_FILE);
    if refuse_link(&path).is_err() {
        return Vec::new();
    }
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let mut paths: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| final_name(Path::new(l)))
        .collect();
    paths.sort();
    paths.dedup();
    paths
}

/// An error naming a link kbuild refuses to write through (exit 8).
fn link_error(path: &Path) -> Error {
    let target = std::fs::read_link(path)
        .map(|t| format!(" (to {})", t.display()))
        .unwrap_or_default();
    Error::new(
        Kind::Io,
        format!(
            "{} is a symbolic link{target}: kbuild does not write through links in its output directory",
            path.display()
        ),
    )
    .with_hint("remove the link (kbuild recreates what it needs there), or use another --out")
}

/// Fails (exit 8) when `path` is a symbolic link; a missing path is fine.
pub fn refuse_link(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(link_error(path)),
        _ => Ok(()),
    }
}

/// Creates (or checks) the directory `out/rel` one component at a time, none of them a
/// link, and records `rel`'s first component in the owner file. Returns `out/rel`.
pub fn ensure_dir(out: &Path, rel: &Path) -> Result<PathBuf> {
    track(out);
    let dir = ensure_below(out, rel)?;
    if let Some(Component::Normal(top)) = rel.components().next() {
        record(out, &top.to_string_lossy())?;
    }
    Ok(dir)
}

fn ensure_below(out: &Path, rel: &Path) -> Result<PathBuf> {
    let mut dir = out.to_path_buf();
    for c in rel.components() {
        let Component::Normal(name) = c else {
            return Err(Error::internal(format!(
                "{} is not a plain path below the output directory",
                rel.display()
            )));
        };
        dir.push(name);
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.file_type().is_symlink() => return Err(link_error(&dir)),
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(
                    Error::new(Kind::Io, format!("{} is not a directory", dir.display()))
                        .with_hint("kbuild writes a directory there: move that file away"),
                )
            }
            Err(_) => match std::fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    // Made concurrently: check what it is.
                    refuse_link(&dir)?;
                }
                Err(e) => return Err(Error::io("cannot create", &dir, e)),
            },
        }
    }
    Ok(dir)
}

/// Opens a new file at `path` for writing with `mode`: an existing file there is
/// removed first (unlinked, so a hard link elsewhere keeps its bytes), a link is refused
/// (exit 8), and the open itself neither follows a link nor reuses a file (O_EXCL).
pub fn create_file(path: &Path, mode: u32) -> Result<File> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => return Err(link_error(path)),
        Ok(m) if m.is_dir() => {
            return Err(
                Error::new(Kind::Io, format!("{} is a directory", path.display()))
                    .with_hint("kbuild writes a file there: move that directory away"),
            )
        }
        Ok(_) => std::fs::remove_file(path).map_err(|e| Error::io("cannot replace", path, e))?,
        Err(_) => {}
    }
    note_written(path);
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
        .map_err(|e| match std::fs::symlink_metadata(path) {
            // A link planted between the check and the open.
            Ok(m) if m.file_type().is_symlink() => link_error(path),
            _ => Error::io("cannot create", path, e),
        })
}

/// `<dir>/.<name>.<pid>.kbuild-tmp`: where `path` is written before the rename.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!(".{name}.{}.kbuild-tmp", std::process::id()))
}

/// The suffix of files and directories being written; `kbuild clean` and repackaging
/// remove leftovers by it.
pub const TMP_SUFFIX: &str = ".kbuild-tmp";

/// A file written under a new temporary name beside `path` (`.<name>.<random>.kbuild-tmp`)
/// and renamed to `path` by `commit`; dropped without a commit, the temporary file is
/// removed. tempfile creates it with O_CREAT|O_EXCL, which never opens an existing file and
/// never follows a link planted there, and a rename replaces a link at `path` rather than
/// writing through it.
pub struct AtomicFile {
    path: PathBuf,
    file: Option<BufWriter<NamedTempFile>>,
}

impl AtomicFile {
    pub fn create(path: &Path) -> Result<AtomicFile> {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let file = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(TMP_SUFFIX)
            .permissions(std::fs::Permissions::from_mode(0o644))
            .tempfile_in(dir)
            .map_err(|e| Error::io("cannot create a temporary file for", path, e))?;
        note_written(path);
        Ok(AtomicFile {
            path: path.to_path_buf(),
            file: Some(BufWriter::with_capacity(256 * 1024, file)),
        })
    }

    /// Sets the mode the file will have (an executable's 0755), whatever the umask.
    pub fn set_mode(&self, mode: u32) -> Result<()> {
        let file = self.file.as_ref().expect("open").get_ref().as_file();
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io("cannot write", &self.path, e))
    }

    /// Flushes, syncs and renames the file to its final name.
    pub fn commit(mut self) -> Result<()> {
        let file = self.file.take().expect("not committed twice");
        let done = file
            .into_inner()
            .map_err(|e| e.into_error())
            .and_then(|f| f.as_file().sync_all().map(|()| f))
            .and_then(|f| f.persist(&self.path).map_err(|e| e.error));
        done.map(|_| ())
            .map_err(|e| Error::io("cannot write", &self.path, e))
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.as_mut().expect("open").write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().expect("open").flush()
    }
}

/// Writes `bytes` to `path` through an `AtomicFile`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = AtomicFile::create(path)?;
    file.write_all(bytes)
        .map_err(|e| Error::io("cannot write", path, e))?;
    file.commit()
}

/// What `kbuild clean --out` may remove: `None` when `out` does not exist or holds nothing
/// but kbuild's lock file, its owner file when kbuild owns it. A directory kbuild does not
/// own is refused (exit 2), as is `/`, `$HOME` or the tree and its ancestors.
pub fn owned_for_clean(out: &Path, tree: Option<&Path>) -> Result<Option<Owner>> {
    check_not_precious(out, tree)?;
    if std::fs::symlink_metadata(out).is_err() {
        return Ok(None);
    }
    match read_owner(out)? {
        Some(owner) => Ok(Some(owner)),
        None if empty_but_ours(out, None)? => Ok(None),
        None => Err(Error::usage(format!(
            "{} was not made by kbuild (it has no {MARKER_DIR}/{OWNER_FILE}), so kbuild clean leaves it untouched",
            out.display()
        ))
        .with_hint("name the output directory kbuild wrote with --out, or remove this one yourself")),
    }
}

/// What `remove_owned` did.
#[derive(Debug, Default)]
pub struct Removed {
    /// Files and staging leftovers removed, with the bytes they held.
    pub paths: Vec<(PathBuf, u64)>,
    /// Directories kept because something kbuild did not record is still in them.
    pub kept_dirs: Vec<PathBuf>,
}

/// Removes, in `out` (whose lock the caller holds): staging leftovers, the files the ledger
/// records, every directory kbuild recorded that is empty afterwards, then its state. It
/// never unlinks the lock file (a waiting run would lock a file nobody else sees) and never
/// removes a file it did not record, so `out` itself stays.
pub fn remove_owned(out: &Path, owner: &Owner) -> Result<Removed> {
    let mut removed = Removed {
        paths: sweep_staging(out)?.removed,
        ..Removed::default()
    };
    for rel in read_ledger(out) {
        if let Some(done) = remove_recorded(out, &rel)? {
            removed.paths.push(done);
        }
    }
    for name in &owner.paths {
        let Some(rel) = final_name(Path::new(name)).filter(|r| r.components().count() == 1) else {
            continue;
        };
        let path = out.join(&rel);
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => {
                sweep_temp_files(&path, &mut removed.paths);
                if !prune_empty(&path) {
                    removed.kept_dirs.push(path);
                }
            }
            // A top-level file or link kbuild recorded (a link goes, never its target).
            Ok(m) => {
                std::fs::remove_file(&path).map_err(|e| Error::io("cannot remove", &path, e))?;
                removed
                    .paths
                    .push((path, if m.is_file() { m.len() } else { 0 }));
            }
            Err(_) => {}
        }
    }
    clear_marker(out, &mut removed.paths)?;
    Ok(removed)
}

/// Removes kbuild's state in `out`: the whole marker when nothing else but the lock is
/// left, else all of it but the owner file, so that the directory stays kbuild's (the user's
/// files in it do not make the next run refuse it).
fn clear_marker(out: &Path, removed: &mut Vec<(PathBuf, u64)>) -> Result<()> {
    let marker = out.join(MARKER_DIR);
    if !std::fs::symlink_metadata(&marker).is_ok_and(|m| m.is_dir()) {
        return Ok(());
    }
    if empty_but_ours(out, None)? {
        removed.push(remove_any(&marker)?);
        return Ok(());
    }
    let entries = std::fs::read_dir(&marker).map_err(|e| Error::io("cannot read", &marker, e))?;
    for entry in entries.flatten() {
        if entry.file_name() != OWNER_FILE {
            removed.push(remove_any(&entry.path())?);
        }
    }
    Ok(())
}

/// Removes the recorded file `out/rel`, never through a link on the way, and never a
/// directory (those go only when empty). Returns what it removed.
fn remove_recorded(out: &Path, rel: &Path) -> Result<Option<(PathBuf, u64)>> {
    let mut dir = out.to_path_buf();
    let parents = rel.parent().map(|p| p.components().count()).unwrap_or(0);
    for c in rel.components().take(parents) {
        dir.push(c);
        if !std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir()) {
            return Ok(None);
        }
    }
    let path = out.join(rel);
    match std::fs::symlink_metadata(&path) {
        Ok(m) if !m.is_dir() => {
            std::fs::remove_file(&path).map_err(|e| Error::io("cannot remove", &path, e))?;
            Ok(Some((path, if m.is_file() { m.len() } else { 0 })))
        }
        _ => Ok(None),
    }
}

/// Removes a file, a link (never its target) or a directory tree; returns its bytes.
fn remove_any(path: &Path) -> Result<(PathBuf, u64)> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| Error::io("cannot read", path, e))?;
    let size = if meta.is_dir() {
        let size = dir_size(path);
        make_writable(path);
        std::fs::remove_dir_all(path).map_err(|e| Error::io("cannot remove", path, e))?;
        size
    } else {
        std::fs::remove_file(path).map_err(|e| Error::io("cannot remove", path, e))?;
        if meta.is_file() {
            meta.len()
        } else {
            0
        }
    };
    Ok((path.to_path_buf(), size))
}

/// Removes the unfinished writes (`*.kbuild-tmp`) below `dir`, not following links.
fn sweep_temp_files(dir: &Path, removed: &mut Vec<(PathBuf, u64)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_name().to_string_lossy().ends_with(TMP_SUFFIX) {
            if let Ok(done) = remove_any(&path) {
                removed.push(done);
            }
        } else if entry.file_type().is_ok_and(|t| t.is_dir()) {
            sweep_temp_files(&path, removed);
        }
    }
}

/// Removes `dir` and the directories below it that are empty once their own empty
/// subdirectories are gone (links are not followed). True when `dir` is gone.
fn prune_empty(dir: &Path) -> bool {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                prune_empty(&entry.path());
            }
        }
    }
    std::fs::remove_dir(dir).is_ok()
}

/// Bytes held by the regular files under `dir` (links are not followed).
pub fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

/// Read-only directories (Go's module cache is one) cannot be emptied; make them writable.
pub fn make_writable(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                let _ =
                    std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o755));
                make_writable(&entry.path());
            }
        }
    }
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755));
}

// Replacing a set of files (release-tars) so that a kill at any point loses neither set.
//
// The new set is complete in a staging directory beside `dir` before anything is touched.
// A journal in `dir` then names both sets; the old set's files move to an "aside" directory
// and the new ones move in, one rename each. A run killed in between leaves the journal,
// which `kbuild verify` reports (exit 7) and which the next run, holding the `--out` lock,
// settles: it finishes the swap, or undoes it when it cannot finish. Only the named files
// move, so whatever else a user keeps in `dir` stays where it is. Plain renames work on
// every filesystem, so there is one path to test (a directory exchange would also swap the
// user's files and still need a fallback where renameat2 has no RENAME_EXCHANGE).

/// The journal of a replacement under way, inside the directory being replaced.
pub const SWAP_JOURNAL: &str = ".kbuild-swap.json";
/// Test only: the step of a swap at which kbuild SIGKILLs itself (1 = journal written, then
/// one per rename, then the journal's removal and the cleanup), so that tests can kill it
/// at every step. Read once from the environment snapshot.
pub const KILL_AT_STEP_VAR: &str = "KBUILD_TEST_KILL_AT_SWAP_STEP";

/// What a replacement moves, as the journal records it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Journal {
    /// The staging directory holding the new set: a name beside the replaced directory.
    staging: String,
    /// Where the old set's files wait until the new set is in: a name beside it too.
    aside: String,
    /// The old set's file names.
    old: Vec<String>,
    /// The new set's file names.
    new: Vec<String>,
}

/// How an interrupted replacement was settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// The new set is in place.
    Finished,
    /// The old set is back.
    Undone,
}

/// Why a swap stopped: an error, or a simulated kill (unit tests only).
#[derive(Debug)]
enum Stop {
    Failed(Error),
    Killed,
}

impl From<Error> for Stop {
    fn from(e: Error) -> Stop {
        Stop::Failed(e)
    }
}

/// Called after every step of a swap; true means "die here".
type Step<'a> = &'a mut dyn FnMut() -> bool;

fn checkpoint(step: Step<'_>) -> std::result::Result<(), Stop> {
    if step() {
        return Err(Stop::Killed);
    }
    Ok(())
}

/// The test-only kill switch: SIGKILLs this process at the step `KILL_AT_STEP_VAR` names.
fn kill_switch() -> impl FnMut() -> bool {
    let at = crate::env::current()
        .get(KILL_AT_STEP_VAR)
        .and_then(|v| v.parse::<usize>().ok());
    let mut count = 0;
    move || {
        count += 1;
        if Some(count) == at {
            let _ = rustix::process::kill_process(
                rustix::process::getpid(),
                rustix::process::Signal::KILL,
            );
        }
        false
    }
}

fn unstop<T>(result: std::result::Result<T, Stop>) -> Result<T> {
    match result {
        Ok(v) => Ok(v),
        Err(Stop::Failed(e)) => Err(e),
        Err(Stop::Killed) => Err(Error::internal("a swap step was told to stop")),
    }
}

/// Replaces the files `old` of `dir` with every file of `staging` (a directory beside
/// `dir`, holding a complete, checked set), crash-consistently (see above). On an error the
/// old set is put back and the error returned; other files in `dir` are never touched.
pub fn replace_set(dir: &Path, staging: &Path, old: &[String]) -> Result<()> {
    unstop(replace_with(dir, staging, old, &mut kill_switch()))
}

/// Settles the replacement interrupted in `dir`, if any: finishes it, or undoes it when it
/// cannot finish. An error means neither worked and the journal stays.
pub fn settle(dir: &Path) -> Result<Option<Settled>> {
    unstop(settle_with(dir, &mut kill_switch()))
}

fn replace_with(
    dir: &Path,
    staging: &Path,
    old: &[String],
    step: Step<'_>,
) -> std::result::Result<(), Stop> {
    let new = names_in(staging)?;
    refuse_dirs(dir, old.iter().chain(&new))?;
    let aside = aside_dir(dir);
    remove_quietly(&aside);
    std::fs::create_dir(&aside).map_err(|e| Error::io("cannot create", &aside, e))?;
    let journal = Journal {
        staging: file_name(staging),
        aside: file_name(&aside),
        old: old.to_vec(),
        new,
    };
    write_journal(dir, &journal)?;
    checkpoint(step)?;
    match forward(dir, &journal, step) {
        Ok(()) => finish(dir, &journal, step),
        Err(Stop::Failed(e)) => {
            undo_or_keep(dir, &journal, step, &e)?;
            Err(Stop::Failed(Error {
                hint: Some(format!(
                    "the previous set in {} is back in place; {}",
                    dir.display(),
                    e.hint
                        .clone()
                        .unwrap_or_else(|| "fix the cause and run again".into())
                )),
                ..e
            }))
        }
        Err(killed) => Err(killed),
    }
}

/// Puts the old set back after `cause` stopped the swap; when that fails too, the journal
/// stays for the next run and the error says so.
fn undo_or_keep(
    dir: &Path,
    journal: &Journal,
    step: Step<'_>,
    cause: &Error,
) -> std::result::Result<(), Stop> {
    match backward(dir, journal, step).and_then(|()| finish(dir, journal, step)) {
        Ok(()) => Ok(()),
        Err(Stop::Failed(e)) => Err(Stop::Failed(half_swapped(dir, cause, &e))),
        Err(killed) => Err(killed),
    }
}

fn half_swapped(dir: &Path, cause: &Error, undo: &Error) -> Error {
    Error::new(
        Kind::Io,
        format!(
            "{} is between two release sets: replacing it failed ({}) and putting the previous set back failed too ({})",
            dir.display(),
            cause.message,
            undo.message
        ),
    )
    .with_hint("fix the cause, then run kbuild again with this --out: it finishes or undoes the replacement first (kbuild verify reports the directory until then)")
}

fn settle_with(dir: &Path, step: Step<'_>) -> std::result::Result<Option<Settled>, Stop> {
    let path = dir.join(SWAP_JOURNAL);
    refuse_link(&path)?;
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("cannot read", &path, e).into()),
    };
    let journal: Journal = serde_json::from_str(&text).map_err(|e| {
        Error::new(Kind::Io, format!("{} is not a kbuild swap journal: {e}", path.display()))
            .with_hint("kbuild writes it whole or not at all: something else changed it; move it away and package again")
    })?;
    let settled = match forward(dir, &journal, step) {
        Ok(()) => {
            finish(dir, &journal, step)?;
            Settled::Finished
        }
        Err(Stop::Failed(e)) => {
            undo_or_keep(dir, &journal, step, &e)?;
            Settled::Undone
        }
        Err(killed) => return Err(killed),
    };
    Ok(Some(settled))
}

/// Moves the old set aside, then the new set in. Each name is looked at as it is now, so a
/// run killed half way through can run this again (or `backward`) from where it stopped.
fn forward(dir: &Path, j: &Journal, step: Step<'_>) -> std::result::Result<(), Stop> {
    let (staging, aside) = j.paths(dir);
    for name in &j.old {
        // A name in both sets whose new file is no longer staged holds the new file already.
        let still_old = !j.new.contains(name) || present(&staging.join(name));
        if still_old && present(&dir.join(name)) && !present(&aside.join(name)) {
            rename(&dir.join(name), &aside.join(name))?;
            checkpoint(step)?;
        }
    }
    for name in &j.new {
        if present(&staging.join(name)) {
            rename(&staging.join(name), &dir.join(name))?;
            checkpoint(step)?;
        } else if !present(&dir.join(name)) {
            return Err(Error::new(
                Kind::Io,
                format!("{name} of the new set is neither staged nor in place"),
            )
            .into());
        }
    }
    Ok(())
}

/// Moves the new set's files back to staging, then the old set back in.
fn backward(dir: &Path, j: &Journal, step: Step<'_>) -> std::result::Result<(), Stop> {
    let (staging, aside) = j.paths(dir);
    match std::fs::create_dir(&staging) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
            return Err(Error::io("cannot create", &staging, e).into())
        }
        _ => {}
    }
    for name in &j.new {
        if !present(&staging.join(name)) && present(&dir.join(name)) {
            rename(&dir.join(name), &staging.join(name))?;
            checkpoint(step)?;
        }
    }
    for name in &j.old {
        if present(&aside.join(name)) {
            rename(&aside.join(name), &dir.join(name))?;
            checkpoint(step)?;
        }
    }
    Ok(())
}

/// Ends a swap either way: the journal goes first (from then on `dir` holds one whole set),
/// then the staging and aside directories.
fn finish(dir: &Path, j: &Journal, step: Step<'_>) -> std::result::Result<(), Stop> {
    let path = dir.join(SWAP_JOURNAL);
    std::fs::remove_file(&path).map_err(|e| Error::io("cannot remove", &path, e))?;
    sync_dir(dir);
    checkpoint(step)?;
    let (staging, aside) = j.paths(dir);
    remove_quietly(&aside);
    remove_quietly(&staging);
    checkpoint(step)
}

impl Journal {
    /// The staging and aside directories, beside `dir`. Names with a path in them (a
    /// doctored journal) are refused by `plain_name`.
    fn paths(&self, dir: &Path) -> (PathBuf, PathBuf) {
        let parent = parent_dir(dir);
        (
            parent.join(plain_name(&self.staging)),
            parent.join(plain_name(&self.aside)),
        )
    }
}

/// `name` when it is one plain path component ending in the temporary suffix, else a name
/// that cannot exist, so that a doctored journal moves nothing outside `--out`.
fn plain_name(name: &str) -> &str {
    let mut parts = Path::new(name).components();
    match (parts.next(), parts.next()) {
        (Some(Component::Normal(_)), None) if name.ends_with(TMP_SUFFIX) => name,
        _ => ".kbuild-invalid-journal-entry.kbuild-tmp",
    }
}

/// Refuses (exit 8, nothing touched) when one of `names` in `dir` is a directory: kbuild
/// writes files under those names and will not remove a directory it did not make.
pub fn refuse_dirs<'a>(dir: &Path, names: impl IntoIterator<Item = &'a String>) -> Result<()> {
    for name in names {
        let path = dir.join(name);
        if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
            return Err(Error::new(
                Kind::Io,
                format!(
                    "{} is a directory where kbuild writes a file: kbuild will not replace it, and nothing in {} was changed",
                    path.display(),
                    dir.display()
                ),
            )
            .with_hint("move that directory out of the way (kbuild owns the names kubernetes*.tar.gz, their .sha256/.sha512, SHA256SUMS, SHA512SUMS and manifest.json there), then run again"));
        }
    }
    Ok(())
}

fn write_journal(dir: &Path, journal: &Journal) -> Result<()> {
    let mut text = serde_json::to_string_pretty(journal).expect("journal serializes");
    text.push('\n');
    write_atomic(&dir.join(SWAP_JOURNAL), text.as_bytes())?;
    sync_dir(dir);
    Ok(())
}

/// `<parent>/.<name>.<pid>.old.kbuild-tmp`: where the old set waits.
fn aside_dir(dir: &Path) -> PathBuf {
    let name = file_name(dir);
    parent_dir(dir).join(format!(".{name}.{}.old{TMP_SUFFIX}", std::process::id()))
}

fn parent_dir(dir: &Path) -> &Path {
    match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned()
}

/// The sorted names of the entries of `dir`.
fn names_in(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io("cannot read", dir, e))? {
        let entry = entry.map_err(|e| Error::io("cannot read", dir, e))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

/// Whether anything (a link too) is at `path`.
fn present(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to).map_err(|e| Error::io("cannot move into place", to, e))
}

/// Removes a file, link or directory tree (links are removed, never followed), as far as
/// it can; returns its bytes.
fn remove_quietly(path: &Path) -> u64 {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => {
            let size = dir_size(path);
            make_writable(path);
            let _ = std::fs::remove_dir_all(path);
            size
        }
        Ok(m) => {
            let _ = std::fs::remove_file(path);
            if m.is_file() {
                m.len()
            } else {
                0
            }
        }
        Err(_) => 0,
    }
}

/// Makes the renames in `dir` durable before the next step relies on them.
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// What `sweep_staging` did.
#[derive(Debug, Default)]
pub struct Swept {
    /// Replacements a killed run left, and how each was settled.
    pub settled: Vec<(PathBuf, Settled)>,
    /// Staging leftovers removed, with the bytes their files held.
    pub removed: Vec<(PathBuf, u64)>,
}

/// Settles the replacements a killed run left in `out`, then removes every staging
/// leftover (`*.kbuild-tmp`: staging directories, half-written files) at its top level and
/// anywhere below the directories kbuild writes there. Call it only while holding `out`'s
/// lock: that proves no run is writing them, so no pid is checked. Links are never followed.
pub fn sweep_staging(out: &Path) -> Result<Swept> {
    let mut swept = Swept::default();
    for name in KNOWN {
        let dir = out.join(name);
        let journal = dir.join(SWAP_JOURNAL);
        if std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir()) && present(&journal) {
            if let Some(how) = settle(&dir)? {
                swept.settled.push((dir, how));
            }
        }
    }
    sweep_below(out, 0, &mut swept.removed);
    Ok(swept)
}

/// Removes the `*.kbuild-tmp` entries of `dir`, and looks into kbuild's directories below it
/// (every subdirectory once inside one of them).
fn sweep_below(dir: &Path, depth: usize, removed: &mut Vec<(PathBuf, u64)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if name.ends_with(TMP_SUFFIX) {
            let size = remove_quietly(&path);
            removed.push((path, size));
        } else if entry.file_type().is_ok_and(|t| t.is_dir())
            && (depth > 0 || KNOWN.contains(&name.as_str()))
        {
            sweep_below(&path, depth + 1, removed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `parent/release-tars` with an old set and a user's file, and a staged new set beside
    /// it; returns the directory, the staging directory and the old set's names.
    fn two_sets(parent: &Path) -> (PathBuf, PathBuf, Vec<String>) {
        let dir = parent.join("release-tars");
        std::fs::create_dir(&dir).unwrap();
        for (name, text) in [("a", "old a"), ("both", "old both"), ("SUMS", "old")] {
            std::fs::write(dir.join(name), text).unwrap();
        }
        std::fs::write(dir.join("notes.txt"), "mine").unwrap();
        let staging = parent.join(".release-tars.1.kbuild-tmp");
        std::fs::create_dir(&staging).unwrap();
        for (name, text) in [("b", "new b"), ("both", "new both"), ("SUMS", "new")] {
            std::fs::write(staging.join(name), text).unwrap();
        }
        (dir, staging, vec!["SUMS".into(), "a".into(), "both".into()])
    }

    fn contents(dir: &Path) -> BTreeSet<(String, String)> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| {
                let text = std::fs::read_to_string(e.path()).unwrap_or_else(|_| "?".into());
                (e.file_name().to_string_lossy().into_owned(), text)
            })
            .collect()
    }

    fn set(pairs: &[(&str, &str)]) -> BTreeSet<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn old_set() -> BTreeSet<(String, String)> {
        set(&[
            ("a", "old a"),
            ("both", "old both"),
            ("SUMS", "old"),
            ("notes.txt", "mine"),
        ])
    }

    fn new_set() -> BTreeSet<(String, String)> {
        set(&[
            ("b", "new b"),
            ("both", "new both"),
            ("SUMS", "new"),
            ("notes.txt", "mine"),
        ])
    }

    /// A step hook that dies at its `at`-th call.
    fn die_at(at: usize) -> impl FnMut() -> bool {
        let mut count = 0;
        move || {
            count += 1;
            count == at
        }
    }

    #[test]
    fn a_swap_killed_at_any_step_is_settled_into_one_whole_set() {
        let mut steps = 0;
        for at in 1.. {
            let parent = tempfile::tempdir().unwrap();
            let (dir, staging, old) = two_sets(parent.path());
            match replace_with(&dir, &staging, &old, &mut die_at(at)) {
                Ok(()) => {
                    assert_eq!(contents(&dir), new_set());
                    break;
                }
                Err(Stop::Failed(e)) => panic!("step {at}: {e:?}"),
                Err(Stop::Killed) => steps += 1,
            }
            // Killed again at every step of the settling, then settled for good.
            for again in 1.. {
                if settle_with(&dir, &mut die_at(again)).is_ok() {
                    break;
                }
            }
            let settled = settle_with(&dir, &mut || false).unwrap();
            assert_eq!(settled, None, "step {at}: nothing left to settle");
            let swept = sweep_staging(parent.path()).unwrap();
            assert!(swept.settled.is_empty());
            assert_eq!(contents(&dir), new_set(), "step {at}");
            assert_eq!(
                std::fs::read_dir(parent.path()).unwrap().count(),
                1,
                "step {at}: only release-tars is left"
            );
        }
        assert!(steps >= 8, "journal, 3 aside, 3 in, journal gone: {steps}");
    }

    #[test]
    fn a_swap_that_cannot_finish_is_undone() {
        for at in 1..=7 {
            let parent = tempfile::tempdir().unwrap();
            let (dir, staging, old) = two_sets(parent.path());
            if replace_with(&dir, &staging, &old, &mut die_at(at)).is_ok() {
                break;
            }
            // A directory now stands where a new file goes, unless that file is in already.
            if present(&staging.join("b")) {
                std::fs::create_dir(dir.join("b")).unwrap();
                std::fs::write(dir.join("b/keep"), "user").unwrap();
                assert_eq!(settle(&dir).unwrap(), Some(Settled::Undone), "step {at}");
                let mut expected = old_set();
                expected.insert(("b".into(), "?".into()));
                assert_eq!(contents(&dir), expected, "step {at}");
                assert_eq!(std::fs::read(dir.join("b/keep")).unwrap(), b"user");
            } else {
                assert_eq!(settle(&dir).unwrap(), Some(Settled::Finished), "step {at}");
                assert_eq!(contents(&dir), new_set(), "step {at}");
            }
        }
    }

    #[test]
    fn a_directory_under_a_set_name_stops_the_swap_before_anything_moves() {
        let parent = tempfile::tempdir().unwrap();
        let (dir, staging, old) = two_sets(parent.path());
        std::fs::remove_file(dir.join("a")).unwrap();
        std::fs::create_dir(dir.join("a")).unwrap();
        let err = replace_set(&dir, &staging, &old).unwrap_err();
        assert_eq!(err.kind, Kind::Io);
        assert!(err.message.contains("is a directory"), "{}", err.message);
        assert!(!present(&dir.join(SWAP_JOURNAL)));
        assert_eq!(std::fs::read(dir.join("both")).unwrap(), b"old both");
        assert_eq!(
            contents(&staging).len(),
            3,
            "the staged set is left to its owner"
        );
    }

    #[test]
    fn sweep_removes_staging_leftovers_and_nothing_else() {
        let out = tempfile::tempdir().unwrap();
        let out = out.path();
        let tars = out.join("release-tars");
        std::fs::create_dir_all(out.join(".release-tars.4242.kbuild-tmp/x")).unwrap();
        std::fs::write(out.join(".release-tars.4242.kbuild-tmp/x/big"), [0u8; 100]).unwrap();
        std::fs::create_dir_all(&tars).unwrap();
        std::fs::write(tars.join(".SHA256SUMS.abc.kbuild-tmp"), "half").unwrap();
        std::fs::write(tars.join("notes.txt"), "mine").unwrap();
        std::fs::create_dir_all(out.join("bin/linux/amd64")).unwrap();
        std::fs::write(out.join("bin/linux/amd64/.kubectl.1.kbuild-tmp"), "half").unwrap();
        std::fs::create_dir_all(out.join("mine")).unwrap();
        std::fs::write(out.join("mine/x.kbuild-tmp"), "not kbuild's directory").unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::fs::write(elsewhere.path().join("y.kbuild-tmp"), "keep").unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), out.join("logs")).unwrap();

        let swept = sweep_staging(out).unwrap();
        let bytes: u64 = swept.removed.iter().map(|(_, b)| b).sum();
        assert_eq!(swept.removed.len(), 3, "{:?}", swept.removed);
        assert_eq!(bytes, 108);
        assert!(!out.join(".release-tars.4242.kbuild-tmp").exists());
        assert_eq!(std::fs::read(tars.join("notes.txt")).unwrap(), b"mine");
        assert!(out.join("mine/x.kbuild-tmp").exists());
        assert!(
            elsewhere.path().join("y.kbuild-tmp").exists(),
            "links are not followed"
        );
    }

    #[test]
    fn resolve_removes_dots_and_follows_existing_links() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().canonicalize().unwrap();
        assert_eq!(resolve(&dir.path().join("a/../b/./c")), real.join("b/c"));
        std::os::unix::fs::symlink("/", dir.path().join("root")).unwrap();
        assert_eq!(resolve(&dir.path().join("root")), Path::new("/"));
        assert_eq!(resolve(&dir.path().join("root/x/..")), Path::new("/"));
    }

    #[test]
    fn dangerous_outs_are_refused() {
        let tree = tempfile::tempdir().unwrap();
        for out in [Path::new("/"), tree.path(), tree.path().parent().unwrap()] {
            let err = check(out, Some(tree.path())).unwrap_err();
            assert_eq!(err.kind, Kind::Usage, "{}", out.display());
        }
        // Inside a tree that is not a git checkout: nothing can be ignored there.
        let err = check(&tree.path().join("dist"), Some(tree.path())).unwrap_err();
        assert!(
            err.message.contains("inside the source tree"),
            "{}",
            err.message
        );
        assert!(check(&tree.path().join("../elsewhere"), Some(tree.path())).is_ok());
    }

    #[test]
    fn clean_removes_only_recorded_files_and_never_the_lock() {
        let parent = tempfile::tempdir().unwrap();
        let tree = parent.path().join("tree");
        std::fs::create_dir(&tree).unwrap();
        let out = parent.path().join("out");
        claim(&out, &tree).unwrap();
        std::fs::write(out.join(LOCK_FILE), b"").unwrap();
        let bin = ensure_dir(&out, Path::new("bin/linux/amd64")).unwrap();
        create_file(&temp_path(&bin.join("kubectl")), 0o755).unwrap();
        std::fs::rename(temp_path(&bin.join("kubectl")), bin.join("kubectl")).unwrap();
        ensure_dir(&out, Path::new("bin/darwin/arm64")).unwrap();
        write_atomic(&out.join("kbuild-timings.json"), b"{}").unwrap();
        // The user's files, beside and among kbuild's.
        std::fs::write(out.join("notes.txt"), b"precious").unwrap();
        std::fs::write(bin.join("mine"), b"mine").unwrap();
        // A killed run's staging directory, and a link kbuild must not follow.
        std::fs::create_dir(out.join(".release-tars.99.kbuild-tmp")).unwrap();
        let outside = parent.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep"), b"keep").unwrap();
        std::os::unix::fs::symlink(&outside, out.join("logs")).unwrap();
        record(&out, "logs").unwrap();

        let owner = owned_for_clean(&out, Some(&tree)).unwrap().unwrap();
        let lock_inode = std::fs::metadata(out.join(LOCK_FILE)).unwrap().ino();
        let removed = remove_owned(&out, &owner).unwrap();
        assert_eq!(removed.kept_dirs, [out.join("bin")]);
        let mut left = Vec::new();
        for e in walkdir(&out) {
            left.push(e.strip_prefix(&out).unwrap().display().to_string());
        }
        left.sort();
        assert_eq!(
            left,
            [
                MARKER_DIR,
                LOCK_FILE,
                ".kbuild/owner.json",
                "bin",
                "bin/linux",
                "bin/linux/amd64",
                "bin/linux/amd64/mine",
                "notes.txt"
            ]
        );
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            std::fs::metadata(out.join(LOCK_FILE)).unwrap().ino(),
            lock_inode
        );
        assert_eq!(std::fs::read(outside.join("keep")).unwrap(), b"keep");

        // With the user's files around, the directory stays kbuild's; once they are gone
        // too, so does the marker.
        claim(&out, &tree).expect("still kbuild's");
        std::fs::remove_file(out.join("notes.txt")).unwrap();
        std::fs::remove_dir_all(out.join("bin")).unwrap();
        let owner = owned_for_clean(&out, Some(&tree)).unwrap().unwrap();
        remove_owned(&out, &owner).unwrap();
        assert_eq!(walkdir(&out), [out.join(LOCK_FILE)]);
        assert!(owned_for_clean(&out, Some(&tree)).unwrap().is_none());
    }

    fn walkdir(dir: &Path) -> Vec<PathBuf> {
        let mut found = Vec::new();
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            found.push(e.path());
            if e.file_type().unwrap().is_dir() {
                found.extend(walkdir(&e.path()));
            }
        }
        found
    }

    #[test]
    fn staging_names_are_recorded_under_their_final_names() {
        let name = |p: &str| final_name(Path::new(p)).map(|p| p.display().to_string());
        assert_eq!(
            name(".release-tars.123.kbuild-tmp/SHA256SUMS").as_deref(),
            Some("release-tars/SHA256SUMS")
        );
        assert_eq!(
            name("bin/linux/amd64/.kubectl.77.kbuild-tmp").as_deref(),
            Some("bin/linux/amd64/kubectl")
        );
        assert_eq!(
            name("extension.kbuild-tmp/a").as_deref(),
            Some("extension/a")
        );
        assert_eq!(name(".kbuild/files"), None);
        assert_eq!(name(LOCK_FILE), None);
        assert_eq!(name("../etc/passwd"), None);
        assert_eq!(name("/etc/passwd"), None);
    }

    #[test]
    fn claim_adopts_a_directory_holding_only_the_run_s_input_and_records_none_of_it() {
        let parent = tempfile::tempdir().unwrap();
        let tree = parent.path().join("tree");
        std::fs::create_dir(&tree).unwrap();
        let out = parent.path().join("out");
        let bin = out.join("bin");
        std::fs::create_dir_all(bin.join("linux/amd64")).unwrap();
        std::fs::write(bin.join("linux/amd64/kubectl"), b"downloaded").unwrap();
        assert_eq!(claim(&out, &tree).unwrap_err().kind, Kind::Usage);
        claim_beside(&out, &tree, Some(&bin)).expect("the input alone is adopted");
        let owner = read_owner(&out).unwrap().unwrap();
        assert!(!owner.created);
        assert_eq!(owner.paths, BTreeSet::from([LOCK_FILE.to_string()]));
        assert!(read_ledger(&out).is_empty(), "the input is not kbuild's");
        // Anything else beside it is still the user's: refused.
        let other = parent.path().join("other");
        std::fs::create_dir_all(other.join("bin")).unwrap();
        std::fs::write(other.join("notes.txt"), b"mine").unwrap();
        let err = claim_beside(&other, &tree, Some(&other.join("bin"))).unwrap_err();
        assert_eq!(err.kind, Kind::Usage);
        // And a directory that is not the input.
        let elsewhere = parent.path().join("elsewhere");
        std::fs::create_dir_all(elsewhere.join("bin")).unwrap();
        let err = claim_beside(&elsewhere, &tree, Some(&bin)).unwrap_err();
        assert_eq!(err.kind, Kind::Usage);
    }

    #[test]
    fn claim_creates_or_adopts_an_empty_directory_and_refuses_one_with_files() {
        let parent = tempfile::tempdir().unwrap();
        let tree = parent.path().join("tree");
        std::fs::create_dir(&tree).unwrap();
        let new = parent.path().join("new/out");
        claim(&new, &tree).unwrap();
        assert!(read_owner(&new).unwrap().unwrap().created);
        let empty = parent.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        claim(&empty, &tree).unwrap();
        let owner = read_owner(&empty).unwrap().unwrap();
        assert!(!owner.created, "adopted, not created");
        std::fs::write(empty.join("notes.txt"), b"mine").unwrap();
        claim(&empty, &tree).expect("marked: used as is");
        let full = parent.path().join("full");
        std::fs::create_dir(&full).unwrap();
        std::fs::write(full.join("notes.txt"), b"mine").unwrap();
        assert_eq!(claim(&full, &tree).unwrap_err().kind, Kind::Usage);
        assert_eq!(
            std::fs::read_dir(&full).unwrap().count(),
            1,
            "nothing added"
        );
    }

    #[test]
    fn writes_refuse_links() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        std::os::unix::fs::symlink(&victim, out.join("a.log")).unwrap();
        assert_eq!(
            create_file(&out.join("a.log"), 0o644).unwrap_err().kind,
            Kind::Io
        );
        std::os::unix::fs::symlink(dir.path(), out.join("logs")).unwrap();
        let err = ensure_dir(&out, Path::new("logs/x")).unwrap_err();
        assert!(err.message.contains("symbolic link"), "{}", err.message);
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        assert!(!dir.path().join("x").exists());
    }

    #[test]
    fn atomic_file_appears_only_on_commit_under_a_hidden_temporary_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        let names = || -> Vec<String> {
            std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        };
        {
            let mut f = AtomicFile::create(&path).unwrap();
            f.write_all(b"half").unwrap();
            assert!(!path.exists());
            let written = names();
            assert_eq!(written.len(), 1);
            assert!(
                written[0].starts_with(".a.txt.") && written[0].ends_with(TMP_SUFFIX),
                "{written:?}"
            );
        }
        assert!(names().is_empty(), "dropped without commit: temp removed");
        let mut f = AtomicFile::create(&path).unwrap();
        f.write_all(b"whole").unwrap();
        f.commit().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"whole");
        assert_eq!(names(), ["a.txt"]);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o700, 0o600, "readable and writable by its owner");
    }

    #[test]
    fn a_link_at_the_final_name_is_replaced_never_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let path = dir.path().join("SHA256SUMS.sig");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        let mut f = AtomicFile::create(&path).unwrap();
        f.write_all(b"signature").unwrap();
        f.commit().unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert!(!std::fs::symlink_metadata(&path).unwrap().is_symlink());
        assert_eq!(std::fs::read(&path).unwrap(), b"signature");
    }

    #[test]
    fn set_mode_gives_the_committed_file_its_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubectl");
        let f = AtomicFile::create(&path).unwrap();
        f.set_mode(0o755).unwrap();
        f.commit().unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
    }
}
