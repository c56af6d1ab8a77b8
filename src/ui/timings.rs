//! Where the time went (`--timings`, like `cargo build --timings`): spans recorded while a
//! run goes, each on a lane (`kbuild` for the run's own phases, one lane per engine for the
//! jobs it ran, `package thread N` for the packaging threads), plus the bytes synced to
//! each engine. At the end they are written as `kbuild-timings.json` and as one
//! self-contained page, `kbuild-timings.html` (see `html`).
//!
//! Recording is always on and cheap (a few dozen spans per run): the recorder is one per
//! process, so packaging threads that have no `Ui` at hand record into it too.

mod html;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use serde::{Deserialize, Serialize};

pub const HTML_FILE: &str = "kbuild-timings.html";
pub const JSON_FILE: &str = "kbuild-timings.json";
/// The lane of the run's own phases.
pub const KBUILD_LANE: &str = "kbuild";
/// The engine lane when the run never named its engine.
pub const DEFAULT_ENGINE: &str = "engine";
/// Bumped when a field changes meaning.
const SCHEMA_VERSION: u32 = 1;

/// What a span stands for; the page colours bars by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpanKind {
    /// A phase of the run (source, checks, image, sync, build, package, ...).
    Phase,
    /// A build job running on an engine: what the engine's busy share counts.
    Job,
    /// Something an engine does for a job besides running it (download of the outputs).
    Step,
    /// One artifact written by a packaging thread.
    Package,
}

/// One bar of the chart. Times are seconds since the run started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Span {
    pub lane: String,
    pub label: String,
    pub kind: SpanKind,
    pub start: f64,
    pub end: f64,
    /// False when what it timed failed or was cut short.
    pub ok: bool,
    /// The build job a `job` span ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
}

impl Span {
    pub fn seconds(&self) -> f64 {
        (self.end - self.start).max(0.0)
    }
}

/// An engine's share of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineUsage {
    pub name: String,
    pub jobs: usize,
    /// Seconds in which it ran at least one job.
    pub busy_seconds: f64,
    /// `busy_seconds` over the run's wall time, 0 to 1.
    pub busy_share: f64,
    pub bytes_synced: u64,
}

/// What the lanes are, so the page can group and label them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LaneKind {
    Kbuild,
    Engine,
    Package,
    Other,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lane {
    pub name: String,
    pub kind: LaneKind,
}

/// Everything the JSON file and the page show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema_version: u32,
    pub kbuild_version: String,
    /// `kbuild build`, `kbuild quick-release`, ...
    pub command: String,
    pub ok: bool,
    pub wall_seconds: f64,
    pub lanes: Vec<Lane>,
    pub engines: Vec<EngineUsage>,
    pub spans: Vec<Span>,
}

#[derive(Default)]
struct Recorded {
    spans: Vec<Span>,
    /// Engines in the order they were named; the first is the run's default.
    engines: Vec<String>,
    synced: BTreeMap<String, u64>,
}

/// Collects spans; shared by every thread of the run.
pub struct Recorder {
    started: Instant,
    recorded: Mutex<Recorded>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

impl Recorder {
    pub fn new() -> Recorder {
        Recorder {
            started: Instant::now(),
            recorded: Mutex::new(Recorded::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recorded> {
        self.recorded.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Seconds from the run's start to `at` (0 for an instant before it).
    pub fn offset(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.started).as_secs_f64()
    }

    pub fn record(&self, span: Span) {
        self.lock().spans.push(span);
    }

    /// A span from `start` to now.
    pub fn record_since(&self, lane: &str, label: &str, kind: SpanKind, start: Instant, ok: bool) {
        self.record(Span {
            lane: lane.to_string(),
            label: label.to_string(),
            kind,
            start: self.offset(start),
            end: self.offset(Instant::now()),
            ok,
            job: None,
        });
    }

    /// A span that starts now and is recorded when the guard goes: as done after
    /// [`SpanGuard::done`], as failed when dropped without it (an error or a panic).
    pub fn span(&self, lane: &str, label: &str, kind: SpanKind) -> SpanGuard<'_> {
        SpanGuard {
            recorder: self,
            lane: lane.to_string(),
            label: label.to_string(),
            kind,
            start: Instant::now(),
            ok: false,
        }
    }

    /// Names an engine of the run, so its lane shows even when it ran nothing. The first
    /// one named is where jobs that name no engine ran.
    pub fn engine(&self, name: &str) {
        let mut recorded = self.lock();
        if !recorded.engines.iter().any(|e| e == name) {
            recorded.engines.push(name.to_string());
        }
    }

    /// The engine of jobs that name none.
    pub fn default_engine(&self) -> String {
        self.lock()
            .engines
            .first()
            .cloned()
            .unwrap_or_else(|| DEFAULT_ENGINE.to_string())
    }

    /// Adds `bytes` to what was synced to `engine`.
    pub fn synced(&self, engine: &str, bytes: u64) {
        *self.lock().synced.entry(engine.to_string()).or_default() += bytes;
    }

    /// The report as of now; `open` are spans still under way, closed now by the caller.
    pub fn report(&self, command: &str, ok: bool, open: Vec<Span>) -> Report {
        let wall = self.offset(Instant::now());
        let recorded = self.lock();
        let mut spans = recorded.spans.clone();
        spans.extend(open);
        spans.sort_by(|a, b| a.start.total_cmp(&b.start).then(a.lane.cmp(&b.lane)));
        let lanes = lanes(&spans, &recorded.engines, &recorded.synced);
        let engines = lanes
            .iter()
            .filter(|l| l.kind == LaneKind::Engine)
            .map(|l| engine_usage(&l.name, &spans, wall, &recorded.synced))
            .collect();
        Report {
            schema_version: SCHEMA_VERSION,
            kbuild_version: env!("CARGO_PKG_VERSION").to_string(),
            command: command.to_string(),
            ok,
            wall_seconds: wall,
            lanes,
            engines,
            spans,
        }
    }
}

/// A span under way; see [`Recorder::span`].
pub struct SpanGuard<'a> {
    recorder: &'a Recorder,
    lane: String,
    label: String,
    kind: SpanKind,
    start: Instant,
    ok: bool,
}

impl SpanGuard<'_> {
    /// What it timed succeeded: record it as done.
    pub fn done(mut self) {
        self.ok = true;
    }
}

impl Drop for SpanGuard<'_> {
    fn drop(&mut self) {
        self.recorder
            .record_since(&self.lane, &self.label, self.kind, self.start, self.ok);
    }
}

/// The run's recorder.
pub fn global() -> &'static Recorder {
    static RECORDER: OnceLock<Recorder> = OnceLock::new();
    RECORDER.get_or_init(Recorder::new)
}

thread_local! {
    /// The lane of spans recorded on this thread by [`thread_span`].
    static THREAD_LANE: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Names this thread's lane (`package thread 2`) for [`thread_span`].
pub fn set_thread_lane(lane: String) {
    THREAD_LANE.with(|l| *l.borrow_mut() = Some(lane));
}

/// A packaging span on this thread's lane (`package` when the thread has none).
pub fn thread_span(label: &str) -> SpanGuard<'static> {
    let lane = THREAD_LANE.with(|l| l.borrow().clone());
    global().span(
        lane.as_deref().unwrap_or("package"),
        label,
        SpanKind::Package,
    )
}

/// The lanes in the order the chart shows them: kbuild's own, the engines (as named, then
/// any other lane that ran a job), the packaging threads by number, then the rest.
fn lanes(spans: &[Span], engines: &[String], synced: &BTreeMap<String, u64>) -> Vec<Lane> {
    let mut names: Vec<String> = vec![KBUILD_LANE.to_string()];
    names.extend(engines.iter().cloned());
    names.extend(synced.keys().cloned());
    names.extend(spans.iter().map(|s| s.lane.clone()));
    let ran_jobs = |name: &str| {
        spans
            .iter()
            .any(|s| s.lane == name && matches!(s.kind, SpanKind::Job | SpanKind::Step))
    };
    let mut lanes: Vec<(LaneKind, u64, usize, Lane)> = Vec::new();
    for (order, name) in names.into_iter().enumerate() {
        if lanes.iter().any(|(_, _, _, l)| l.name == name) {
            continue;
        }
        let thread = name
            .strip_prefix("package thread ")
            .and_then(|n| n.parse::<u64>().ok());
        let kind = if name == KBUILD_LANE {
            LaneKind::Kbuild
        } else if engines.contains(&name) || synced.contains_key(&name) || ran_jobs(&name) {
            LaneKind::Engine
        } else if thread.is_some() || name == "package" {
            LaneKind::Package
        } else {
            LaneKind::Other
        };
        lanes.push((kind, thread.unwrap_or(0), order, Lane { name, kind }));
    }
    lanes.sort_by_key(|(kind, thread, order, _)| (*kind, *thread, *order));
    lanes.into_iter().map(|(_, _, _, lane)| lane).collect()
}

/// How long `engine` ran at least one job (overlapping jobs count once), and its share of
/// the wall time `wall`.
fn engine_usage(
    engine: &str,
    spans: &[Span],
    wall: f64,
    synced: &BTreeMap<String, u64>,
) -> EngineUsage {
    let jobs: Vec<(f64, f64)> = spans
        .iter()
        .filter(|s| s.lane == engine && s.kind == SpanKind::Job)
        .map(|s| (s.start, s.end))
        .collect();
    let busy = union_length(jobs.clone());
    EngineUsage {
        name: engine.to_string(),
        jobs: jobs.len(),
        busy_seconds: busy,
        busy_share: if wall > 0.0 {
            (busy / wall).min(1.0)
        } else {
            0.0
        },
        bytes_synced: synced.get(engine).copied().unwrap_or(0),
    }
}

/// The length of the union of the intervals.
fn union_length(mut intervals: Vec<(f64, f64)>) -> f64 {
    intervals.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut total = 0.0;
    let mut current: Option<(f64, f64)> = None;
    for (start, end) in intervals {
        let end = end.max(start);
        current = match current {
            Some((s, e)) if start <= e => Some((s, e.max(end))),
            Some((s, e)) => {
                total += e - s;
                Some((start, end))
            }
            None => Some((start, end)),
        };
    }
    total + current.map(|(s, e)| e - s).unwrap_or(0.0)
}

/// The two files of a report, `kbuild-timings.json` and `kbuild-timings.html`, with their
/// bytes (the caller writes them where it owns the output directory).
pub fn files(report: &Report) -> [(&'static str, Vec<u8>); 2] {
    let mut json = serde_json::to_string_pretty(report).expect("timings serialize");
    json.push('\n');
    [
        (JSON_FILE, json.into_bytes()),
        (HTML_FILE, html::page(report).into_bytes()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn span(lane: &str, label: &str, kind: SpanKind, start: f64, end: f64) -> Span {
        Span {
            lane: lane.into(),
            label: label.into(),
            kind,
            start,
            end,
            ok: true,
            job: (kind == SpanKind::Job).then(|| label.into()),
        }
    }

    #[test]
    fn overlapping_jobs_count_once_towards_the_busy_time() {
        assert_eq!(union_length(vec![]), 0.0);
        assert_eq!(union_length(vec![(1.0, 3.0), (2.0, 4.0), (6.0, 7.0)]), 4.0);
        assert_eq!(union_length(vec![(5.0, 6.0), (0.0, 10.0)]), 10.0);
        assert_eq!(union_length(vec![(0.0, 1.0), (1.0, 2.0)]), 2.0);
    }

    #[test]
    fn busy_share_is_job_time_over_wall_time_per_engine() {
        let spans = vec![
            span("a", "client", SpanKind::Job, 0.0, 4.0),
            span("a", "node", SpanKind::Job, 2.0, 6.0),
            span("a", "download client", SpanKind::Step, 6.0, 8.0),
            span("b", "server", SpanKind::Job, 1.0, 3.5),
            span(KBUILD_LANE, "source", SpanKind::Phase, 0.0, 10.0),
        ];
        let synced = BTreeMap::from([("b".to_string(), 1234)]);
        let a = engine_usage("a", &spans, 10.0, &synced);
        assert_eq!((a.jobs, a.busy_seconds, a.busy_share), (2, 6.0, 0.6));
        assert_eq!(a.bytes_synced, 0);
        let b = engine_usage("b", &spans, 10.0, &synced);
        assert_eq!((b.jobs, b.busy_seconds, b.busy_share), (1, 2.5, 0.25));
        assert_eq!(b.bytes_synced, 1234);
        assert_eq!(engine_usage("b", &spans, 0.0, &synced).busy_share, 0.0);
    }

    #[test]
    fn lanes_go_kbuild_engines_then_packaging_threads_by_number() {
        let spans = vec![
            span("package thread 10", "x", SpanKind::Package, 0.0, 1.0),
            span("package thread 2", "y", SpanKind::Package, 0.0, 1.0),
            span("tcp://b:2376", "node", SpanKind::Job, 0.0, 1.0),
            span(KBUILD_LANE, "source", SpanKind::Phase, 0.0, 1.0),
        ];
        let lanes = lanes(&spans, &["unix:///a.sock".to_string()], &BTreeMap::new());
        let names: Vec<&str> = lanes.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(
            names,
            [
                KBUILD_LANE,
                "unix:///a.sock",
                "tcp://b:2376",
                "package thread 2",
                "package thread 10"
            ]
        );
        assert_eq!(lanes[1].kind, LaneKind::Engine, "named, even with no job");
    }

    #[test]
    fn guards_record_failure_unless_done() {
        let recorder = Recorder::new();
        recorder.engine("e1");
        recorder.engine("e2");
        recorder.engine("e1");
        assert_eq!(recorder.default_engine(), "e1");
        recorder.span("p", "ok one", SpanKind::Package).done();
        drop(recorder.span("p", "failed one", SpanKind::Package));
        recorder.synced("e2", 10);
        recorder.synced("e2", 5);
        let report = recorder.report("kbuild build", false, Vec::new());
        let oks: Vec<(&str, bool)> = report
            .spans
            .iter()
            .map(|s| (s.label.as_str(), s.ok))
            .collect();
        assert!(oks.contains(&("ok one", true)) && oks.contains(&("failed one", false)));
        let engines: Vec<(&str, u64)> = report
            .engines
            .iter()
            .map(|e| (e.name.as_str(), e.bytes_synced))
            .collect();
        assert_eq!(engines, [("e1", 0), ("e2", 15)]);
        let json = serde_json::to_string(&report).unwrap();
        let back: Report = serde_json::from_str(&json).unwrap();
        assert_eq!(back, report);
    }
}
