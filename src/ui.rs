//! Reporting: what the user sees. Plain timestamped lines when stderr is not a terminal,
//! shorter lines on a terminal, one JSON object per line with `--json`, nothing but
//! errors with `--quiet`. Everything else in kbuild reports through `Ui`.

use std::io::{IsTerminal, Write};
use std::time::Instant;

use crate::error::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Terminal,
    Plain,
    Json,
    Quiet,
}

pub struct Ui {
    mode: Mode,
    verbose: bool,
    started: Instant,
}

impl Ui {
    pub fn new(json: bool, quiet: bool, verbose: bool) -> Ui {
        let mode = if json {
            Mode::Json
        } else if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal()
            && std::env::var_os("TERM").is_some_and(|t| t != "dumb")
        {
            Mode::Terminal
        } else {
            Mode::Plain
        };
        Ui {
            mode,
            verbose,
            started: Instant::now(),
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    fn stamp(&self) -> String {
        format!("[{:>6.1}s]", self.started.elapsed().as_secs_f64())
    }

    fn emit(&self, event: &str, fields: serde_json::Value, text: &str) {
        match self.mode {
            Mode::Json => {
                let mut object = serde_json::json!({ "event": event, "elapsed": self.started.elapsed().as_secs_f64() });
                if let (Some(o), serde_json::Value::Object(f)) = (object.as_object_mut(), fields) {
                    o.extend(f);
                }
                println!("{object}");
            }
            Mode::Quiet => {}
            Mode::Plain => eprintln!("{} {text}", self.stamp()),
            Mode::Terminal => eprintln!("{text}"),
        }
    }

    /// The start of a phase: source, checks, image, build, package.
    pub fn phase(&self, phase: &str, detail: &str) {
        self.emit(
            "phase",
            serde_json::json!({ "phase": phase, "detail": detail }),
            &format!("==> {phase}: {detail}"),
        );
    }

    pub fn info(&self, message: &str) {
        self.emit("info", serde_json::json!({ "message": message }), message);
    }

    /// Only with -v.
    pub fn detail(&self, message: &str) {
        if self.verbose {
            self.info(message);
        }
    }

    pub fn warn(&self, message: &str) {
        self.emit(
            "warning",
            serde_json::json!({ "message": message }),
            &format!("warning: {message}"),
        );
    }

    /// One line of a build job's output.
    pub fn build_line(&self, job: &str, line: &str) {
        self.emit(
            "log",
            serde_json::json!({ "job": job, "line": line }),
            &format!("[{job}] {line}"),
        );
    }

    /// A produced file, relative to the output directory.
    pub fn artifact(&self, path: &str, size: u64) {
        self.emit(
            "artifact",
            serde_json::json!({ "path": path, "size": size }),
            &format!("    {path} ({})", crate::engine::docker::human_bytes(size)),
        );
    }

    /// The run's closing line.
    pub fn finished(&self, what: &str) {
        let secs = self.started.elapsed().as_secs_f64();
        match self.mode {
            Mode::Json => println!(
                "{}",
                serde_json::json!({ "event": "summary", "ok": true, "message": what, "elapsed": secs })
            ),
            Mode::Quiet => {}
            _ => eprintln!("{} {what} in {secs:.1}s", self.stamp()),
        }
    }

    /// Reports a failure: message, the details (log tail), then the hint.
    pub fn error(&self, err: &Error) {
        if self.mode == Mode::Json {
            println!(
                "{}",
                serde_json::json!({
                    "event": "summary", "ok": false, "error": err.message, "kind": err.kind.name(),
                    "exit_code": err.exit_code(), "hint": err.hint, "details": err.details,
                })
            );
        }
        let mut stderr = std::io::stderr().lock();
        if !err.details.is_empty() {
            let _ = writeln!(stderr, "--- last lines of the log ---");
            for line in &err.details {
                let _ = writeln!(stderr, "  {line}");
            }
            let _ = writeln!(stderr, "---");
        }
        let _ = writeln!(stderr, "error: {}", err.message);
        if let Some(hint) = &err.hint {
            let _ = writeln!(stderr, "  hint: {hint}");
        }
    }
}
