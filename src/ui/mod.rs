//! Reporting: what the user sees. On a terminal, one spinner line per phase (with one bar per
//! build job showing what make is doing now, and a bar of the Go packages it compiled) drawn
//! by indicatif; when stderr is not a terminal, plain timestamped lines with no escape codes
//! (the package count every progress interval); with `--json`, one JSON object per line on
//! stdout; with `--quiet`, nothing but errors. Everything else in kbuild reports through `Ui`.

pub mod progress;
pub mod show;
pub mod timings;

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::error::Error;
use crate::redact;
use progress::Tracker;
use timings::{SpanGuard, SpanKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Terminal,
    Plain,
    Json,
    Quiet,
}

/// A phase under way: its name, detail, start and spinner.
type Open = (Label, String, Instant, ProgressBar);

/// The phases under way and done, for the closing summary. The run's stages follow one
/// another; the jobs' phases are intervals of their own, open side by side while jobs run
/// on several lanes, each closed when its job finishes.
struct Phases {
    current: Option<Open>,
    jobs: Vec<Open>,
    done: Vec<(Label, Duration)>,
}

/// A phase's name, and the job it runs when a phase (build) repeats once per job.
#[derive(Clone)]
struct Label {
    phase: String,
    job: Option<String>,
}

impl std::fmt::Display for Label {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.job {
            Some(job) => write!(f, "{} {job}", self.phase),
            None => write!(f, "{}", self.phase),
        }
    }
}

pub use crate::units::count;

/// A build job counting the Go packages it compiles; the bar appears with the first one.
struct JobProgress {
    tracker: Tracker,
    started: Instant,
    /// The engine running it: its lane in the timings.
    engine: String,
    bar: Option<ProgressBar>,
    /// Plain output: dropping it stops the thread that prints the count every interval.
    _ticker: Option<mpsc::Sender<()>>,
}

/// Jobs under way by name, shared with the plain-output tickers.
type Jobs = Arc<Mutex<HashMap<String, JobProgress>>>;

pub struct Ui {
    mode: Mode,
    verbose: bool,
    color: bool,
    started: Instant,
    bars: MultiProgress,
    phases: Mutex<Phases>,
    jobs: Jobs,
    /// How often plain output prints a job's package count.
    progress_interval: Duration,
    /// Where phases and jobs are recorded for `--timings`.
    timings: &'static timings::Recorder,
}

impl Ui {
    pub fn new(json: bool, quiet: bool, verbose: bool) -> Ui {
        let terminal = std::io::stderr().is_terminal()
            && crate::env::current()
                .os("TERM")
                .is_some_and(|t| t != "dumb");
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
            color: terminal && crate::env::current().get("NO_COLOR").is_none(),
            started: Instant::now(),
            bars,
            phases: Mutex::new(Phases {
                current: None,
                jobs: Vec::new(),
                done: Vec::new(),
            }),
            jobs: Arc::new(Mutex::new(HashMap::new())),
            progress_interval: progress::PLAIN_INTERVAL,
            timings: timings::global(),
        }
    }

    pub fn with_progress_interval(mut self, interval: Duration) -> Ui {
        self.progress_interval = interval;
        self
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    fn stamp(&self) -> String {
        stamp_since(self.started)
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
            Mode::Plain => emit(Stream::Err, &format!("{} {text}", self.stamp())),
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
        emit(Stream::Out, &object.to_string());
    }

    /// Closes the phase under way (if any) and records its duration.
    /// Closes the stage under way and every job phase still open.
    fn close_phase(&self, phases: &mut Phases, ok: bool) {
        let open: Vec<Open> = phases
            .current
            .take()
            .into_iter()
            .chain(phases.jobs.drain(..))
            .collect();
        for phase in open {
            self.close_one(phases, phase, ok);
        }
    }

    /// Closes the phase of `job`, if one is open.
    fn close_job_phase(&self, job: &str, ok: bool) {
        let mut phases = self.phases.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = phases
            .jobs
            .iter()
            .position(|p| p.0.job.as_deref() == Some(job))
        {
            let phase = phases.jobs.remove(i);
            self.close_one(&mut phases, phase, ok);
        }
    }

    fn close_one(&self, phases: &mut Phases, phase: Open, ok: bool) {
        {
            let (label, detail, start, bar) = phase;
            let took = start.elapsed();
            if self.mode == Mode::Terminal {
                // The spinner goes; a permanent line says how the phase ended.
                bar.finish_and_clear();
                let mark = if ok {
                    self.paint("32", "✓")
                } else {
                    self.paint("31", "✗")
                };
                let name_shown = self.paint("1", &label.phase);
                let _ = self.bars.println(format!(
                    "{mark} {name_shown} {detail} ({:.1}s)",
                    took.as_secs_f64()
                ));
            }
            self.timings.record_since(
                timings::KBUILD_LANE,
                &label.to_string(),
                SpanKind::Phase,
                start,
                ok,
            );
            phases.done.push((label, took));
        }
    }

    /// The start of a phase: source, engine, image, build, package, ...
    pub fn phase(&self, phase: &str, detail: &str) {
        self.start_phase(phase, None, detail);
    }

    /// The start of a phase that runs once per job (build): the summary names the job.
    pub fn job_phase(&self, phase: &str, job: &str, detail: &str) {
        self.start_phase(phase, Some(job), detail);
    }

    fn start_phase(&self, phase: &str, job: Option<&str>, detail: &str) {
        let detail = &redact::text(detail);
        let mut phases = self.phases.lock().unwrap_or_else(|e| e.into_inner());
        match job {
            // A job's phase runs beside the other jobs' (one lane each); it ends the stage
            // before the jobs, and an earlier phase of the same job.
            Some(job) => {
                if let Some(stage) = phases.current.take() {
                    self.close_one(&mut phases, stage, true);
                }
                if let Some(i) = phases
                    .jobs
                    .iter()
                    .position(|p| p.0.job.as_deref() == Some(job))
                {
                    let earlier = phases.jobs.remove(i);
                    self.close_one(&mut phases, earlier, true);
                }
            }
            None => self.close_phase(&mut phases, true),
        }
        let mut event = serde_json::json!({ "phase": phase, "detail": detail });
        if let Some(job) = job {
            event["job"] = job.into();
        }
        self.json("phase", event);
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
                emit(
                    Stream::Err,
                    &format!("{} ==> {phase}: {detail}", self.stamp()),
                );
            }
            ProgressBar::hidden()
        };
        let label = Label {
            phase: phase.to_string(),
            job: job.map(str::to_string),
        };
        let open = (label, detail.to_string(), Instant::now(), bar);
        match job {
            Some(_) => phases.jobs.push(open),
            None => phases.current = Some(open),
        }
    }

    pub fn info(&self, message: &str) {
        let message = &redact::text(message);
        self.json("info", serde_json::json!({ "message": message }));
        self.line(message);
    }

    /// Something a run measured (the bytes a sync uploaded, ...): a line like `info`, and
    /// with `--json` an `event` of its own carrying the figures in `fields`, for scripts.
    pub fn measured(&self, event: &str, message: &str, fields: serde_json::Value) {
        let message = &redact::text(message);
        let mut object = serde_json::json!({ "message": message });
        if let (Some(o), serde_json::Value::Object(f)) = (object.as_object_mut(), fields) {
            o.extend(f);
        }
        self.json(event, object);
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
    /// as the phase's current activity) or printed as a plain line in CI. A line naming a Go
    /// package compiled counts towards the job's progress instead (and is shown too with -v).
    pub fn build_line(&self, job: &str, line: &str) {
        let line = &redact::text(line);
        if progress::is_compiled_package(line) {
            self.package_compiled(job);
            if !self.verbose {
                return;
            }
        }
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
            Mode::Plain => emit(Stream::Err, &format!("{} [{job}] {line}", self.stamp())),
            Mode::Json | Mode::Quiet => {}
        }
    }

    /// A build job started on `engine`: counts the Go packages it compiles, out of `total`
    /// when the last run's count is known, and times it on that engine's lane.
    pub fn job_started_on(&self, engine: &str, job: &str, total: Option<u64>) {
        let ticker = (self.mode == Mode::Plain).then(|| self.plain_ticker(job));
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        jobs.insert(
            job.to_string(),
            JobProgress {
                tracker: Tracker::new(total),
                started: Instant::now(),
                engine: redact::text(engine),
                bar: None,
                _ticker: ticker,
            },
        );
    }

    /// Plain output: a thread that prints `job`'s count every progress interval (a quiet
    /// stretch such as a long link still shows the build is alive) until the job ends.
    fn plain_ticker(&self, job: &str) -> mpsc::Sender<()> {
        let (stop, stopped) = mpsc::channel::<()>();
        let (jobs, job) = (Arc::clone(&self.jobs), job.to_string());
        let (interval, run_started) = (self.progress_interval, self.started);
        std::thread::spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                let jobs = jobs.lock().unwrap_or_else(|e| e.into_inner());
                let Some(entry) = jobs.get(&job) else { break };
                if entry.tracker.done() > 0 {
                    let snap = entry.tracker.snapshot(entry.started.elapsed());
                    emit(
                        Stream::Err,
                        &format!("{} [{job}] {snap}", stamp_since(run_started)),
                    );
                }
            }
        });
        stop
    }

    /// One more Go package compiled by `job`: the bar (terminal) or a `progress` event
    /// (JSON); plain output has its ticker.
    fn package_compiled(&self, job: &str) {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        let entry = jobs.entry(job.to_string()).or_insert_with(|| JobProgress {
            tracker: Tracker::new(None),
            started: Instant::now(),
            engine: self.timings.default_engine(),
            bar: None,
            _ticker: None,
        });
        let elapsed = entry.started.elapsed();
        entry.tracker.compiled(elapsed);
        let snap = entry.tracker.snapshot(elapsed);
        self.json(
            "progress",
            serde_json::json!({
                "job": job, "done": snap.done, "total": snap.total,
                "eta": snap.eta.map(|d| d.as_secs()),
            }),
        );
        match self.mode {
            Mode::Terminal => {
                let bar = entry
                    .bar
                    .get_or_insert_with(|| self.package_bar(job, snap.total));
                if bar.length().is_some() {
                    // Past a wrong total the bar stays full and the message gives the count.
                    bar.set_length(snap.total.unwrap_or(snap.done));
                }
                bar.set_position(snap.done);
                bar.set_message(snap.to_string());
            }
            Mode::Plain | Mode::Json | Mode::Quiet => {}
        }
    }

    /// A bar of packages out of the total, or a spinner with the count when there is none.
    fn package_bar(&self, job: &str, total: Option<u64>) -> ProgressBar {
        let (bar, template) = match total {
            Some(total) => (ProgressBar::new(total), "  {prefix} [{bar:30}] {msg}"),
            None => (
                ProgressBar::new_spinner(),
                "  {spinner:.cyan} {prefix} {msg}",
            ),
        };
        let bar = self.bars.add(bar);
        bar.set_style(
            ProgressStyle::with_template(template)
                .expect("valid template")
                .progress_chars("=> ")
                .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏✓"),
        );
        bar.set_prefix(job.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    }

    /// `job` ended; returns how many Go packages it compiled. A finished job says so in a
    /// line of its own; a failed one leaves the word to the error.
    pub fn job_finished(&self, job: &str, ok: bool) -> u64 {
        self.close_job_phase(job, ok);
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        let Some(entry) = jobs.remove(job) else {
            return 0;
        };
        if let Some(bar) = &entry.bar {
            bar.finish_and_clear();
        }
        self.timings.record(job_span(self.timings, job, &entry, ok));
        let done = entry.tracker.done();
        if ok {
            let took = entry.started.elapsed().as_secs_f64();
            let text = match done {
                0 => format!("{job}: every Go package came from the build cache ({took:.1}s)"),
                1 => format!("{job}: compiled 1 Go package in {took:.1}s"),
                n => format!("{job}: compiled {n} Go packages in {took:.1}s"),
            };
            self.line(&text);
        }
        done
    }

    /// Names an engine of the run (its endpoint, or `host`): the timings give it a lane, and
    /// jobs that name no engine ran on the first one named.
    pub fn engine(&self, name: &str) {
        self.timings.engine(&redact::text(name));
    }

    /// `bytes` of source were synced to `engine` (the run's engine when None).
    pub fn synced(&self, engine: Option<&str>, bytes: u64) {
        let engine = engine.map_or_else(|| self.timings.default_engine(), redact::text);
        self.timings.synced(&engine, bytes);
    }

    /// Times a step of `engine` (the download of a job's outputs).
    pub fn engine_step_on(&self, engine: &str, label: &str) -> SpanGuard<'static> {
        self.timings
            .span(&redact::text(engine), label, SpanKind::Step)
    }

    /// The timings of the run so far; the phase and jobs still under way end now, as failed
    /// unless the run is `ok`.
    pub fn timings(&self, command: &str, ok: bool) -> timings::Report {
        let mut open = Vec::new();
        {
            let phases = self.phases.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((label, _, start, _)) = &phases.current {
                open.push(timings::Span {
                    lane: timings::KBUILD_LANE.to_string(),
                    label: label.to_string(),
                    kind: SpanKind::Phase,
                    start: self.timings.offset(*start),
                    end: self.timings.offset(Instant::now()),
                    ok,
                    job: None,
                });
            }
        }
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        open.extend(
            jobs.iter()
                .map(|(job, entry)| job_span(self.timings, job, entry, false)),
        );
        self.timings.report(command, ok, open)
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
            crate::units::human_bytes(size)
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
            .map(|(label, took)| {
                let mut timing =
                    serde_json::json!({ "phase": label.phase, "seconds": took.as_secs_f64() });
                if let Some(job) = &label.job {
                    timing["job"] = job.as_str().into();
                }
                timing
            })
            .collect();
        match self.mode {
            Mode::Json => emit(
                Stream::Out,
                &serde_json::json!({ "event": "summary", "ok": true, "message": what, "elapsed": secs, "phases": timings }).to_string(),
            ),
            Mode::Quiet => {}
            Mode::Terminal | Mode::Plain => {
                let times: Vec<String> = phases
                    .done
                    .iter()
                    .filter(|(_, took)| took.as_millis() >= 50)
                    .map(|(label, took)| format!("{label} {:.1}s", took.as_secs_f64()))
                    .collect();
                let ok = self.paint("32;1", "ok:");
                // Phases too short to show leave no empty "()".
                let times = if times.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", times.join(", "))
                };
                self.line(&format!("{ok} {what} in {secs:.1}s{times}"));
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
            // A closed stdout must not hide the error: stderr still says it below.
            let _ = writeln!(
                std::io::stdout().lock(),
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

/// The span of `job` on its engine, from its start to now.
fn job_span(
    recorder: &timings::Recorder,
    job: &str,
    entry: &JobProgress,
    ok: bool,
) -> timings::Span {
    timings::Span {
        lane: entry.engine.clone(),
        label: format!("build {job}"),
        kind: SpanKind::Job,
        start: recorder.offset(entry.started),
        end: recorder.offset(Instant::now()),
        ok,
        job: Some(job.to_string()),
    }
}

/// `[  12.3s]`: the time since `started`, for plain lines.
fn stamp_since(started: Instant) -> String {
    format!("[{:>6.1}s]", started.elapsed().as_secs_f64())
}

/// Writes a command's output (man page, completions, reports) to stdout. A reader that went
/// away (`kbuild man | head`) is not an error: the rest is not wanted, so kbuild stops there
/// and exits 0 without a word (README "Exit codes").
pub fn write_stdout(bytes: &[u8]) -> Result<(), Error> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => stdout_closed(),
        Err(e) => Err(Error::new(
            crate::error::Kind::Io,
            format!("cannot write to stdout: {e}"),
        )),
    }
}

/// Ends the run quietly because nobody reads stdout any more.
pub fn stdout_closed() -> ! {
    std::process::exit(0)
}

/// Where a line of a run's output goes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Out,
    Err,
}

static STDOUT_GONE: AtomicBool = AtomicBool::new(false);
static STDERR_GONE: AtomicBool = AtomicBool::new(false);

/// Writes `text` and a newline to `stream`, never panicking (as `println!` does); once its
/// reader went away nothing more is written there. A closed stdout (`--json ... | head -1`,
/// `kbuild doctor | head`) only drops what nobody reads, and the run finishes as it would
/// (README "Exit codes"). A closed stderr, where the run's progress and log lines go
/// (`kbuild build 2>&1 | head -1`), stops the run as Ctrl-C would
/// (`signals::output_closed`): it cleans up and fails with exit 141.
pub fn emit(stream: Stream, text: &str) {
    let gone = match stream {
        Stream::Out => &STDOUT_GONE,
        Stream::Err => &STDERR_GONE,
    };
    if gone.load(Ordering::SeqCst) {
        return;
    }
    let written = match stream {
        Stream::Out => write_line(&mut std::io::stdout().lock(), text),
        Stream::Err => write_line(&mut std::io::stderr().lock(), text),
    };
    if let Err(e) = written {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            gone.store(true, Ordering::SeqCst);
            if stream == Stream::Err {
                crate::signals::output_closed();
            }
        }
    }
}

fn write_line(to: &mut impl Write, text: &str) -> std::io::Result<()> {
    to.write_all(text.as_bytes())?;
    to.write_all(b"\n")?;
    to.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_agree_with_their_nouns() {
        assert_eq!(count(1, "binary", "binaries"), "1 binary");
        assert_eq!(count(0, "binary", "binaries"), "0 binaries");
        assert_eq!(count(2, "problem", "problems"), "2 problems");
    }
}
