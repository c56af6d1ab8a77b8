//! Reporting: what the user sees. On a terminal, one spinner line per phase (with one bar per
//! build job showing what make is doing now) drawn by indicatif; when stderr is not a terminal,
//! plain timestamped lines with no escape codes; with `--json`, one JSON object per line on
//! stdout; with `--quiet`, nothing but errors. Everything else in kbuild reports through `Ui`.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::error::Error;
use crate::redact;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Terminal,
    Plain,
    Json,
    Quiet,
}

/// The phase under way and the phases done, for the closing summary.
struct Phases {
    /// Name, detail, start and spinner of the phase under way.
    current: Option<(String, String, Instant, ProgressBar)>,
    done: Vec<(String, Duration)>,
}

pub struct Ui {
    mode: Mode,
    verbose: bool,
    color: bool,
    started: Instant,
    bars: MultiProgress,
    phases: Mutex<Phases>,
}

impl Ui {
    pub fn new(json: bool, quiet: bool, verbose: bool) -> Ui {
        let terminal = std::io::stderr().is_terminal()
            && std::env::var_os("TERM").is_some_and(|t| t != "dumb");
        let mode = if json {
            Mode::Json
        } else if quiet {
            Mode::Quiet
        } else if terminal {
            Mode::Terminal
        } else {
            Mode::Plain
        };
        let bars = if mode == Mode::Terminal {
            MultiProgress::with_draw_target(ProgressDrawTarget::stderr())
        } else {
            MultiProgress::with_draw_target(ProgressDrawTarget::hidden())
        };
        Ui {
            mode,
            verbose,
            color: terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
            started: Instant::now(),
            bars,
            phases: Mutex::new(Phases {
                current: None,
                done: Vec::new(),
            }),
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    fn stamp(&self) -> String {
        format!("[{:>6.1}s]", self.started.elapsed().as_secs_f64())
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    /// A line above the bars (terminal) or on its own (plain).
    fn line(&self, text: &str) {
        match self.mode {
            Mode::Terminal => {
                let _ = self.bars.println(text);
            }
            Mode::Plain => eprintln!("{} {text}", self.stamp()),
            Mode::Json | Mode::Quiet => {}
        }
    }

    fn json(&self, event: &str, fields: serde_json::Value) {
        if self.mode != Mode::Json {
            return;
        }
        let mut object = serde_json::json!({
            "event": event,
            "elapsed": (self.started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
        });
        if let (Some(o), serde_json::Value::Object(f)) = (object.as_object_mut(), fields) {
            o.extend(f);
        }
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{object}");
        let _ = stdout.flush();
    }

    /// Closes the phase under way (if any) and records its duration.
    fn close_phase(&self, phases: &mut Phases, ok: bool) {
        if let Some((name, detail, start, bar)) = phases.current.take() {
            let took = start.elapsed();
            if self.mode == Mode::Terminal {
                // The spinner goes; a permanent line says how the phase ended.
                bar.finish_and_clear();
                let mark = if ok {
                    self.paint("32", "✓")
                } else {
                    self.paint("31", "✗")
                };
                let name_shown = self.paint("1", &name);
                let _ = self.bars.println(format!(
                    "{mark} {name_shown} {detail} ({:.1}s)",
                    took.as_secs_f64()
                ));
            }
            phases.done.push((name, took));
        }
    }

    /// The start of a phase: source, engine, image, build, package, ...
    pub fn phase(&self, phase: &str, detail: &str) {
        let detail = &redact::text(detail);
        let mut phases = self.phases.lock().unwrap_or_else(|e| e.into_inner());
        self.close_phase(&mut phases, true);
        self.json(
            "phase",
            serde_json::json!({ "phase": phase, "detail": detail }),
        );
        let bar = if self.mode == Mode::Terminal {
            let bar = self.bars.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner:.cyan} {prefix:.bold} {wide_msg} {elapsed:>4}",
                )
                .expect("valid template")
                .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏✓"),
            );
            bar.set_prefix(phase.to_string());
            bar.set_message(detail.to_string());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        } else {
            if self.mode == Mode::Plain {
                eprintln!("{} ==> {phase}: {detail}", self.stamp());
            }
            ProgressBar::hidden()
        };
        phases.current = Some((phase.to_string(), detail.to_string(), Instant::now(), bar));
    }

    pub fn info(&self, message: &str) {
        let message = &redact::text(message);
        self.json("info", serde_json::json!({ "message": message }));
        self.line(message);
    }

    /// Only with -v.
    pub fn detail(&self, message: &str) {
        if self.verbose {
            self.info(message);
        }
    }

    pub fn warn(&self, message: &str) {
        let message = &redact::text(message);
        self.json("warning", serde_json::json!({ "message": message }));
        let label = self.paint("33;1", "warning:");
        self.line(&format!("{label} {message}"));
    }

    /// One line of a build job's output: kept in the log, streamed to the terminal (and shown
    /// as the phase's current activity) or printed as a plain line in CI.
    pub fn build_line(&self, job: &str, line: &str) {
        let line = &redact::text(line);
        self.json("log", serde_json::json!({ "job": job, "line": line }));
        match self.mode {
            Mode::Terminal => {
                // make's output scrolls above the bars (dimmed); the bar shows the latest line.
                let _ = self
                    .bars
                    .println(self.paint("2", &format!("[{job}] {line}")));
                let activity = line.trim();
                if !activity.is_empty() {
                    let phases = self.phases.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some((_, _, _, bar)) = &phases.current {
                        bar.set_message(format!("{job}: {}", activity.trim_start_matches("+++ ")));
                    }
                }
            }
            Mode::Plain => eprintln!("{} [{job}] {line}", self.stamp()),
            Mode::Json | Mode::Quiet => {}
        }
    }

    /// A byte counter for long writes (packaging): a bar on a terminal, nothing elsewhere.
    pub fn bytes(&self, label: &str, total: u64) -> ProgressBar {
        if self.mode != Mode::Terminal {
            return ProgressBar::hidden();
        }
        let bar = self.bars.add(ProgressBar::new(total));
        bar.set_style(
            ProgressStyle::with_template(
                "  {prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(label.to_string());
        bar
    }

    /// A produced file, relative to the output directory.
    pub fn artifact(&self, path: &str, size: u64) {
        self.artifact_digest(path, size, None);
    }

    /// A produced file with its sha256, shown as a 12-character prefix.
    pub fn artifact_digest(&self, path: &str, size: u64, sha256: Option<&str>) {
        self.json(
            "artifact",
            serde_json::json!({ "path": path, "size": size, "sha256": sha256 }),
        );
        let digest = sha256
            .map(|d| format!("  sha256:{}", &d[..12.min(d.len())]))
            .unwrap_or_default();
        self.line(&format!(
            "    {path:<56} {:>10}{digest}",
            crate::engine::docker::human_bytes(size)
        ));
    }

    /// The run's closing summary: time per phase and the total.
    pub fn finished(&self, what: &str) {
        let what = &redact::text(what);
        let mut phases = self.phases.lock().unwrap_or_else(|e| e.into_inner());
        self.close_phase(&mut phases, true);
        let secs = self.started.elapsed().as_secs_f64();
        let timings: Vec<serde_json::Value> = phases
            .done
            .iter()
            .map(|(name, took)| serde_json::json!({ "phase": name, "seconds": took.as_secs_f64() }))
            .collect();
        match self.mode {
            Mode::Json => {
                let mut stdout = std::io::stdout().lock();
                let _ = writeln!(
                    stdout,
                    "{}",
                    serde_json::json!({ "event": "summary", "ok": true, "message": what, "elapsed": secs, "phases": timings })
                );
            }
            Mode::Quiet => {}
            Mode::Terminal | Mode::Plain => {
                let times: Vec<String> = phases
                    .done
                    .iter()
                    .filter(|(_, took)| took.as_millis() >= 50)
                    .map(|(name, took)| format!("{name} {:.1}s", took.as_secs_f64()))
                    .collect();
                let ok = self.paint("32;1", "ok:");
                self.line(&format!("{ok} {what} in {secs:.1}s ({})", times.join(", ")));
            }
        }
    }

    /// Reports a failure: the details (log tail), the message, then the hint.
    pub fn error(&self, err: &Error) {
        // Messages quote URLs and git's own words: no credentials in them (redact.rs).
        let mut shown = Error::new(err.kind, redact::text(&err.message));
        shown.hint = err.hint.as_deref().map(redact::text);
        shown.details = err.details.iter().map(|d| redact::text(d)).collect();
        let err = &shown;
        {
            let mut phases = self.phases.lock().unwrap_or_else(|e| e.into_inner());
            self.close_phase(&mut phases, false);
        }
        let _ = self.bars.clear();
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
        let from_log = matches!(
            err.kind,
            crate::error::Kind::Build | crate::error::Kind::Engine
        );
        if !err.details.is_empty() && from_log {
            let _ = writeln!(stderr, "--- last lines of the log ---");
            for line in &err.details {
                let _ = writeln!(stderr, "  {line}");
            }
            let _ = writeln!(stderr, "---");
        }
        let _ = writeln!(stderr, "{} {}", self.paint("31;1", "error:"), err.message);
        if !from_log {
            // A snippet of the input, with a caret under the fault.
            for line in &err.details {
                let _ = writeln!(stderr, "    {line}");
            }
        }
        if let Some(hint) = &err.hint {
            let _ = writeln!(stderr, "  {} {hint}", self.paint("36", "hint:"));
        }
    }
}
