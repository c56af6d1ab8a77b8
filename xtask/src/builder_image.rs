//! `cargo xtask builder-image`: the local builder image, made from Debian packages.
//!
//! No registry is reachable here, so the image cannot be pulled. Instead debootstrap installs a
//! minimal Debian trixie with Go 1.24 (golang-go), make, bash, git and CA certificates into a
//! temporary directory, which is then imported as an image with `docker import`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::util::{self, check, output, run, show, step, Failure};

/// The builder image's name. Tests and the demo use it; kbuild gets it with `--image`.
pub const IMAGE: &str = "kbuild-builder:go1.24-trixie";

const SUITE: &str = "trixie";
const MIRROR: &str = "http://deb.debian.org/debian";
const PACKAGES: &str = "golang-go,make,bash,git,ca-certificates";
/// Where Debian's golang-1.24-go puts GOROOT. Debian's `go` is built with -trimpath and does
/// not find its GOROOT by itself in an imported image, so the image sets it.
const GOROOT: &str = "/usr/lib/go-1.24";
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const WORKDIR: &str = "/go/src/k8s.io/kubernetes";
/// Temporary root filesystems are `<tmp>/kbuild-builder-rootfs.<pid>`.
const ROOTFS_PREFIX: &str = "kbuild-builder-rootfs.";

/// Makes the image unless it is present (or `force`), then checks that Go runs in it.
pub fn ensure(root: &Path, force: bool) -> Result<(), Failure> {
    step(&format!("builder image {IMAGE}"));
    docker_reachable()?;

    let previous = image_id();
    if let Some(id) = &previous {
        if !force {
            println!("{IMAGE} is present ({id}); nothing to do (--force remakes it)");
            return Ok(());
        }
        println!("{IMAGE} is present ({id}); --force: making it again");
    }

    if util::effective_uid() != Some(0) {
        return Err(Failure::new(format!(
            "making {IMAGE} needs root (debootstrap creates device nodes and chowns files); \
             run `sudo cargo xtask builder-image`, or as root"
        )));
    }
    let debootstrap = ensure_debootstrap()?;
    util::catch_interrupts();
    remove_stale_rootfs();

    let started = Instant::now();
    let rootfs = Rootfs::create()?;
    let log = root.join("target/xtask/debootstrap.log");
    bootstrap(&debootstrap, rootfs.path(), &log)?;
    let goroot = check_goroot(rootfs.path())?;
    let go_version = fs::read_to_string(goroot.join("VERSION"))
        .ok()
        .and_then(|v| v.lines().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into());
    let bootstrapped = started.elapsed();
    println!(
        "debootstrap done in {:.1?}: {go_version} at {GOROOT} (log: {})",
        bootstrapped,
        log.display()
    );

    shrink(rootfs.path())
        .map_err(|e| Failure::new(format!("cannot strip {}: {e}", rootfs.path().display())))?;
    let import_started = Instant::now();
    import(rootfs.path(), &go_version)?;
    println!("imported {IMAGE} in {:.1?}", import_started.elapsed());
    drop(rootfs);
    if let Some(old) = previous.filter(|old| Some(old) != image_id().as_ref()) {
        // The tag moved to the new image: remove the old one rather than leave it dangling.
        // (Fails harmlessly while a container still uses it.)
        let _ = output(Command::new("docker").args(["image", "rm", &old]));
    }

    let version = output(Command::new("docker").args(["run", "--rm", IMAGE, "go", "version"]))
        .ok_or_else(|| Failure::new(format!("`docker run --rm {IMAGE} go version` failed")))?;
    let size =
        output(Command::new("docker").args(["image", "inspect", "--format", "{{.Size}}", IMAGE]))
            .and_then(|s| s.parse::<u64>().ok())
            .map(|bytes| format!("{} MB", bytes / 1_000_000))
            .unwrap_or_else(|| "size unknown".into());
    println!(
        "{IMAGE}: {version} ({size}); made in {:.1?}",
        started.elapsed()
    );
    Ok(())
}

fn docker_reachable() -> Result<(), Failure> {
    let mut cmd = Command::new("docker");
    cmd.args(["version", "--format", "{{.Server.Version}}"]);
    match cmd.output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(Failure::new(format!(
            "no Docker engine answers (`docker version`: {}); start dockerd and try again",
            String::from_utf8_lossy(&out.stderr).trim()
        ))),
        Err(e) => Err(Failure::new(format!(
            "cannot run the docker CLI ({e}); install docker.io (Debian) and start dockerd"
        ))),
    }
}

/// The image's id if the engine has it.
fn image_id() -> Option<String> {
    output(Command::new("docker").args(["image", "inspect", "--format", "{{.Id}}", IMAGE]))
        .filter(|id| !id.is_empty())
}

fn ensure_debootstrap() -> Result<PathBuf, Failure> {
    if let Some(path) = util::find_program("debootstrap") {
        return Ok(path);
    }
    step("installing debootstrap (apt-get)");
    run(Command::new("apt-get").arg("update"))?;
    run(Command::new("apt-get")
        .args([
            "install",
            "-y",
            "--no-install-recommends",
            "debootstrap",
            "debian-archive-keyring",
        ])
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    util::find_program("debootstrap").ok_or_else(|| {
        Failure::new("apt-get installed debootstrap but it is not in PATH or /usr/sbin")
    })
}

fn bootstrap(debootstrap: &Path, target: &Path, log: &Path) -> Result<(), Failure> {
    if let Some(dir) = log.parent() {
        fs::create_dir_all(dir)
            .map_err(|e| Failure::new(format!("cannot create {}: {e}", dir.display())))?;
    }
    let log_file = fs::File::create(log)
        .map_err(|e| Failure::new(format!("cannot create {}: {e}", log.display())))?;
    let log_err = log_file
        .try_clone()
        .map_err(|e| Failure::new(format!("cannot write {}: {e}", log.display())))?;
    let mut cmd = Command::new(debootstrap);
    cmd.arg("--variant=minbase")
        .arg(format!("--include={PACKAGES}"))
        .arg(SUITE)
        .arg(target)
        .arg(MIRROR)
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(log_err);
    println!("{} (about 30 s to a few minutes)", show(&cmd));
    let status = cmd
        .status()
        .map_err(|e| Failure::new(format!("cannot run debootstrap: {e}")))?;
    if !status.success() && !util::interrupted() {
        let text = fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        eprintln!("--- last lines of {} ---", log.display());
        for line in &lines[lines.len().saturating_sub(25)..] {
            eprintln!("{line}");
        }
        eprintln!("---");
    }
    check(&cmd, status)
}

fn check_goroot(rootfs: &Path) -> Result<PathBuf, Failure> {
    let goroot = rootfs.join(GOROOT.trim_start_matches('/'));
    if goroot.join("bin/go").is_file() && goroot.join("src/runtime").is_dir() {
        return Ok(goroot);
    }
    let found: Vec<String> = fs::read_dir(rootfs.join("usr/lib"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("go"))
        .collect();
    Err(Failure::new(format!(
        "debootstrap installed no Go toolchain at {GOROOT} (usr/lib has: {}); \
         has Debian {SUITE} moved past Go 1.24? update GOROOT and IMAGE in xtask/src/builder_image.rs",
        if found.is_empty() { "nothing go-like".into() } else { found.join(", ") }
    )))
}

/// Drops what a build container never needs: package caches and lists, docs, logs, device
/// nodes (the engine provides /dev), and the host's resolver and hostname that debootstrap copied.
fn shrink(rootfs: &Path) -> io::Result<()> {
    for dir in [
        "var/cache/apt",
        "var/lib/apt/lists",
        "usr/share/doc",
        "usr/share/man",
        "usr/share/info",
        "usr/share/locale",
        "usr/share/lintian",
        "var/log",
        "tmp",
        "dev",
    ] {
        empty_dir(&rootfs.join(dir))?;
    }
    for file in ["etc/resolv.conf", "etc/hostname"] {
        let path = rootfs.join(file);
        if path.symlink_metadata().is_ok() {
            fs::remove_file(&path)?;
            fs::write(&path, "")?;
        }
    }
    fs::create_dir_all(rootfs.join(WORKDIR.trim_start_matches('/')))?;
    Ok(())
}

/// Removes everything inside `dir`, keeping `dir`.
fn empty_dir(dir: &Path) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            fs::remove_dir_all(entry.path())?;
        } else {
            fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// `tar -C rootfs -c . | docker import --change ... - IMAGE`
fn import(rootfs: &Path, go_version: &str) -> Result<(), Failure> {
    let mut tar = Command::new("tar");
    tar.args(["--numeric-owner", "-C"])
        .arg(rootfs)
        .args(["-c", "."]);
    let mut import = Command::new("docker");
    import.arg("import");
    for change in [
        format!("ENV PATH={PATH}"),
        format!("ENV GOROOT={GOROOT}"),
        format!("WORKDIR {WORKDIR}"),
        "LABEL io.kbuild.builder=true".to_string(),
        format!("LABEL io.kbuild.builder.go={go_version}"),
        format!("LABEL io.kbuild.builder.debian={SUITE}"),
        r#"CMD ["/bin/bash"]"#.to_string(),
    ] {
        import.args(["--change", &change]);
    }
    import.args(["-", IMAGE]);
    println!("{} | {}", show(&tar), show(&import));

    let mut tar_child = tar
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| Failure::new(format!("cannot run tar: {e}")))?;
    let tar_out = tar_child.stdout.take().expect("piped stdout");
    let import_status = import
        .stdin(tar_out)
        .stdout(Stdio::null())
        .status()
        .map_err(|e| Failure::new(format!("cannot run docker import: {e}")));
    let tar_status = tar_child
        .wait()
        .map_err(|e| Failure::new(format!("tar: {e}")))?;
    check(&tar, tar_status)?;
    check(&import, import_status?)
}

/// The temporary root filesystem; removed on drop, whatever happened.
struct Rootfs {
    path: PathBuf,
}

impl Rootfs {
    fn create() -> Result<Rootfs, Failure> {
        let path = std::env::temp_dir().join(format!("{ROOTFS_PREFIX}{}", std::process::id()));
        if path.exists() {
            remove_rootfs(&path);
        }
        fs::create_dir_all(&path)
            .map_err(|e| Failure::new(format!("cannot create {}: {e}", path.display())))?;
        Ok(Rootfs { path })
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Rootfs {
    fn drop(&mut self) {
        remove_rootfs(&self.path);
    }
}

/// Root filesystems left by runs that were killed outright (SIGKILL, power loss).
fn remove_stale_rootfs() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(ROOTFS_PREFIX) else {
            continue;
        };
        let alive = Path::new("/proc").join(pid).exists() && pid != "self";
        if !alive {
            println!("removing {} left by an earlier run", entry.path().display());
            remove_rootfs(&entry.path());
        }
    }
}

/// Unmounts whatever debootstrap may have left mounted inside (proc, sys after a failure),
/// then deletes the tree. Never deletes through a mount that is still there.
fn remove_rootfs(path: &Path) {
    for mount in mounts_below(path).into_iter().rev() {
        let _ = Command::new("umount").arg("--lazy").arg(&mount).status();
    }
    let left = mounts_below(path);
    if !left.is_empty() {
        eprintln!(
            "warning: not removing {}: still mounted inside: {}",
            path.display(),
            left.iter()
                .map(|m| m.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return;
    }
    if let Err(e) = fs::remove_dir_all(path) {
        if e.kind() != io::ErrorKind::NotFound {
            eprintln!("warning: cannot remove {}: {e}", path.display());
        }
    }
}

/// Mount points at or below `path`, outermost first.
fn mounts_below(path: &Path) -> Vec<PathBuf> {
    let Ok(mounts) = fs::read_to_string("/proc/self/mounts") else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = mounts
        .lines()
        .filter_map(|line| line.split_whitespace().nth(1))
        .map(|field| PathBuf::from(unescape_mount_path(field)))
        .filter(|mount| mount.starts_with(path))
        .collect();
    found.sort_by_key(|m| m.components().count());
    found
}

/// /proc/self/mounts writes space, tab, newline and backslash as \ooo octal escapes.
fn unescape_mount_path(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let value = bytes[i + 1..i + 4]
                .iter()
                .fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
            out.push(value as u8);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
