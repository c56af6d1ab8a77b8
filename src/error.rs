//! One error type for the whole tool: what happened, what to do next, and the exit code.

use std::fmt;

/// What kind of failure this is; each kind has one documented exit code (README "Exit codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A bug or an unexpected condition.
    Internal,
    /// Bad flags, recipe, component or platform.
    Usage,
    /// A prerequisite check failed (memory, disk, Go version, ...).
    Check,
    /// The build itself failed (make exited non-zero, out of memory, stalled).
    Build,
    /// The container engine could not be reached or refused a request.
    Engine,
    /// git or the source tree could not give what was asked.
    Source,
    /// `kbuild verify` found a mismatch or a missing artifact.
    Verify,
    /// Reading or writing files failed (disk full, permissions).
    Io,
    /// Another kbuild run holds the output directory.
    Locked,
    /// Stopped by SIGINT (Ctrl-C).
    Interrupted,
    /// Stopped by SIGTERM.
    Terminated,
    /// Stopped because the reader of kbuild's stderr went away (a closed pipe).
    OutputClosed,
}

impl Kind {
    pub fn exit_code(self) -> i32 {
        match self {
            Kind::Internal => 1,
            Kind::Usage => 2,
            Kind::Check => 3,
            Kind::Build => 4,
            Kind::Engine => 5,
            Kind::Source => 6,
            Kind::Verify => 7,
            Kind::Io => 8,
            Kind::Locked => 9,
            Kind::Interrupted => 130,
            Kind::Terminated => 143,
            // 128 + SIGPIPE: what a shell reports for a tool stopped by a closed pipe.
            Kind::OutputClosed => 141,
        }
    }

    /// Whether the run was stopped from outside (a signal, a closed pipe) rather than failed.
    pub fn is_stop(self) -> bool {
        matches!(
            self,
            Kind::Interrupted | Kind::Terminated | Kind::OutputClosed
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Internal => "internal",
            Kind::Usage => "usage",
            Kind::Check => "check",
            Kind::Build => "build",
            Kind::Engine => "engine",
            Kind::Source => "source",
            Kind::Verify => "verify",
            Kind::Io => "io",
            Kind::Locked => "locked",
            Kind::Interrupted => "interrupted",
            Kind::Terminated => "terminated",
            Kind::OutputClosed => "output-closed",
        }
    }
}

/// A failure with a message for the user and, where the user can act, a hint.
#[derive(Debug, Clone)]
pub struct Error {
    pub kind: Kind,
    pub message: String,
    pub hint: Option<String>,
    /// Extra lines shown after the message (e.g. the tail of a build log).
    pub details: Vec<String>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            hint: None,
            details: Vec::new(),
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Kind::Usage, message)
    }
    pub fn check(message: impl Into<String>) -> Self {
        Self::new(Kind::Check, message)
    }
    pub fn build(message: impl Into<String>) -> Self {
        Self::new(Kind::Build, message)
    }
    pub fn engine(message: impl Into<String>) -> Self {
        Self::new(Kind::Engine, message)
    }
    pub fn source(message: impl Into<String>) -> Self {
        Self::new(Kind::Source, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(Kind::Internal, message)
    }

    /// An I/O failure on `path`, with a hint for the common causes.
    pub fn io(what: impl fmt::Display, path: &std::path::Path, err: std::io::Error) -> Self {
        // By kind, not only the OS code: an error wrapped on its way (tempfile adds the path)
        // keeps its kind but not its code.
        use std::io::ErrorKind;
        let hint = match (err.raw_os_error(), err.kind()) {
            (Some(28), _) | (_, ErrorKind::StorageFull) => Some("the disk is full: free some space (`kbuild clean` removes kbuild's own outputs and caches) and run again".to_string()),
            (Some(13) | Some(1), _) | (_, ErrorKind::PermissionDenied) => {
                Some(format!("check the permissions of {}", path.display()))
            }
            _ => None,
        };
        let mut e = Self::new(Kind::Io, format!("{what} {}: {err}", path.display()));
        e.hint = hint;
        e
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_details(mut self, details: Vec<String>) -> Self {
        self.details = details;
        self
    }

    pub fn exit_code(&self) -> i32 {
        self.kind.exit_code()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for Error {}

/// Attaches a "while doing X" prefix to foreign errors.
pub trait Context<T> {
    fn context(self, kind: Kind, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: fmt::Display> Context<T> for std::result::Result<T, E> {
    fn context(self, kind: Kind, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::new(kind, format!("{}: {e}", what())))
    }
}
