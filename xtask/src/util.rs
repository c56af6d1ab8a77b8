//! Small helpers: failures with exit codes, running commands, interrupt flag.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};

/// A task failure: what to tell the user and the exit code to leave with.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub code: u8,
}

impl Failure {
    pub fn new(message: impl Into<String>) -> Self {
        Failure::with_code(message, 1)
    }

    pub fn with_code(message: impl Into<String>, code: u8) -> Self {
        Failure {
            message: message.into(),
            code,
        }
    }
}

/// The workspace root: the parent of this crate's directory.
pub fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// The cargo that runs us (cargo sets CARGO for `cargo run`), else `cargo` from PATH.
pub fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// A heading for the next step, easy to spot in CI logs.
pub fn step(what: &str) {
    println!("==> {what}");
}

/// Renders a command the way a user would type it (for messages).
pub fn show(cmd: &Command) -> String {
    let mut shown = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        let arg = arg.to_string_lossy();
        if arg.is_empty() || arg.contains(|c: char| c.is_whitespace() || c == '\'' || c == '"') {
            shown.push_str(&format!(" '{}'", arg.replace('\'', r"'\''")));
        } else {
            shown.push(' ');
            shown.push_str(&arg);
        }
    }
    shown
}

/// Runs a command with inherited stdio; a non-zero exit becomes a Failure with the same code.
pub fn run(cmd: &mut Command) -> Result<(), Failure> {
    let status = cmd
        .status()
        .map_err(|e| Failure::new(format!("cannot run `{}`: {e}", show(cmd))))?;
    check(cmd, status)
}

pub fn check(cmd: &Command, status: ExitStatus) -> Result<(), Failure> {
    if status.success() {
        return Ok(());
    }
    let code = status.code().map(|c| c.clamp(1, 255) as u8).unwrap_or(1);
    if interrupted() {
        return Err(Failure::with_code("interrupted", 130));
    }
    Err(Failure::with_code(
        format!("`{}` failed ({status})", show(cmd)),
        code,
    ))
}

/// Runs a command and returns its trimmed stdout, or None if it could not run or failed.
pub fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.stderr(std::process::Stdio::null()).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Finds an executable in PATH, and in the sbin directories that a non-login root shell may lack.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Effective uid of this process, from /proc/self/status (std has no getuid).
pub fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Collects every regular file below `dir` with its size.
pub fn walk_files(dir: &Path, files: &mut Vec<(PathBuf, u64)>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            walk_files(&entry.path(), files)?;
        } else if kind.is_file() {
            files.push((entry.path(), entry.metadata()?.len()));
        }
    }
    Ok(())
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// True once SIGINT or SIGTERM arrived after `catch_interrupts`.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Turns SIGINT and SIGTERM into a flag instead of death, so that cleanup code runs.
///
/// Children are not affected: exec resets caught signals to their default action, so a Ctrl-C
/// still stops the running child (it is in the same process group), whose failure then makes
/// the task return through its cleanup guards.
pub fn catch_interrupts() {
    extern "C" fn on_signal(_signal: i32) {
        INTERRUPTED.store(true, Ordering::SeqCst);
    }
    extern "C" {
        fn signal(signum: i32, handler: usize) -> usize;
    }
    const SIGINT: i32 = 2;
    const SIGTERM: i32 = 15;
    let handler = on_signal as extern "C" fn(i32) as usize;
    // SAFETY: `signal` is the C library's; the handler only stores to an atomic, which is
    // async-signal-safe.
    unsafe {
        signal(SIGINT, handler);
        signal(SIGTERM, handler);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_commands_as_a_user_would_type_them() {
        let mut cmd = Command::new("tar");
        cmd.args(["czf", "a b.tar.gz", "it's"]);
        assert_eq!(show(&cmd), r"tar czf 'a b.tar.gz' 'it'\''s'");
    }
}
