//! Several engines in one run (`--engines a,b`), or the run's one engine. Each engine is
//! prepared as a `Builder` of its own (checks, image, Go cache volume, source copy); one
//! that does not answer at the start is reported and left out. Then the plan's jobs run,
//! exactly as planned: each on the engine the plan assigned it, in the plan's order, as many
//! at a time as the engine has lanes. Only a lost engine moves a job: its jobs run again on
//! another engine, at most twice each, and the record says where every attempt ran.

use std::collections::{HashSet, VecDeque};
use std::path::Path;

use futures_util::stream::{FuturesUnordered, StreamExt};
use serde::Serialize;

use crate::error::{Error, Kind, Result};
use crate::exec::builder::{Builder, Built};
use crate::exec::settings::{EngineSettings, EngineSlot};
use crate::kube::{Component, Platform};
use crate::plan::Job;
use crate::signals::Interrupt;
use crate::source::SourceInfo;
use crate::ui::Ui;

/// How often a job lost with its engine runs again elsewhere.
pub const RERUNS: usize = 2;

/// The engines of a run, each ready to build.
pub struct Fleet {
    pub slots: Vec<(EngineSlot, Builder)>,
}

/// One engine as the executor drives it: the Docker API engine (podman too) and the host
/// engine through `Builder`, and an in-memory fake in the tests.
pub trait Runner {
    /// The engine's name, as the plan's jobs name it.
    fn name(&self) -> &str;
    /// How many jobs it runs at a time.
    fn lanes(&self) -> usize;
    /// Runs one of the plan's jobs, exactly as planned.
    async fn run(&self, job: &Job) -> Result<Built>;
    /// Whether `error`, which a job on this engine failed with, means the engine is gone
    /// (so the job runs again elsewhere) rather than the build failing.
    async fn lost(&self, error: &Error) -> bool;
    /// The writable tree `job` builds in when it shares it with other jobs (a bind-mounted
    /// tree without an `_output` of the job's own, a copied tree's volume, the host's
    /// tree): jobs of one such tree run one at a time, whichever engines and lanes they have.
    fn tree(&self, job: &Job) -> Option<String>;
}

/// One attempt at a job: where and when it ran, and how it ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attempt {
    pub engine: String,
    /// RFC 3339, UTC.
    pub started: String,
    pub finished: String,
    /// `built`, `up to date`, or `engine lost: <why>`.
    pub outcome: String,
}

/// What the record (manifest.json, the provenance) says of one job.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobRecord {
    pub job: String,
    pub planned_engine: String,
    /// The engine whose attempt built it.
    pub engine: String,
    pub started: String,
    pub finished: String,
    /// Every attempt, in order; more than one when an engine was lost.
    pub attempts: Vec<Attempt>,
}

/// What one job did, and where.
pub struct Ran {
    pub built: Built,
    pub record: JobRecord,
}

fn now() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Millisecond)
        .map_or_else(|_| jiff::Timestamp::now().to_string(), |t| t.to_string())
}

/// Runs the plan's `jobs` on `engines`: each job on the engine it names, in plan order, as
/// lanes free up. A job whose engine is lost runs again, with the lost engine's queue, on
/// the living engine with the least queued; at most RERUNS times. Any other failure stops
/// the run (the other running jobs are dropped, which removes their containers).
pub async fn execute<R: Runner>(
    engines: &[R],
    jobs: &[Job],
    ui: &Ui,
    interrupt: &Interrupt,
) -> Result<Vec<Ran>> {
    let mut queues: Vec<VecDeque<usize>> = vec![VecDeque::new(); engines.len()];
    for (i, job) in jobs.iter().enumerate() {
        let e = engines
            .iter()
            .position(|r| r.name() == job.engine)
            .ok_or_else(|| {
                Error::internal(format!(
                    "job {} is planned on engine {}, which this run does not have",
                    job.name, job.engine
                ))
            })?;
        queues[e].push_back(i);
    }
    let mut free: Vec<usize> = engines.iter().map(|r| r.lanes().max(1)).collect();
    let mut alive = vec![true; engines.len()];
    let mut attempts: Vec<Vec<Attempt>> = vec![Vec::new(); jobs.len()];
    let mut running = FuturesUnordered::new();
    let mut done: Vec<Option<Ran>> = (0..jobs.len()).map(|_| None).collect();
    // The shared writable trees a job is building in now.
    let mut busy: HashSet<String> = HashSet::new();
    loop {
        for e in 0..engines.len() {
            while alive[e] && free[e] > 0 {
                let Some(&i) = queues[e].front() else {
                    break;
                };
                // A rerun builds in an output place of its own (the lost engine's container
                // may still be writing into the first one).
                let job = crate::engine::with_attempt(&jobs[i], attempts[i].len());
                let tree = engines[e].tree(&job);
                if tree.as_ref().is_some_and(|t| busy.contains(t)) {
                    break;
                }
                queues[e].pop_front();
                busy.extend(tree.clone());
                free[e] -= 1;
                let engine = &engines[e];
                running.push(async move {
                    let started = now();
                    let result = engine.run(&job).await;
                    (e, i, tree, started, now(), result)
                });
            }
        }
        let Some((e, i, tree, started, finished, result)) = running.next().await else {
            break;
        };
        free[e] += 1;
        if let Some(tree) = tree {
            busy.remove(&tree);
        }
        // Recorded by name, without user names: the provenance is public.
        let engine = crate::redact::engine(engines[e].name());
        match result {
            Ok(built) => {
                let outcome = if built.up_to_date {
                    "up to date"
                } else {
                    "built"
                };
                attempts[i].push(Attempt {
                    engine: engine.clone(),
                    started,
                    finished: finished.clone(),
                    outcome: outcome.to_string(),
                });
                let tried = std::mem::take(&mut attempts[i]);
                done[i] = Some(Ran {
                    built,
                    record: JobRecord {
                        job: jobs[i].name.clone(),
                        planned_engine: crate::redact::engine(&jobs[i].engine),
                        engine,
                        started: tried.first().map(|a| a.started.clone()).unwrap_or_default(),
                        finished,
                        attempts: tried,
                    },
                });
            }
            Err(err)
                if err.kind == Kind::Engine
                    && engines.len() > 1
                    && !interrupt.fired()
                    && engines[e].lost(&err).await =>
            {
                alive[e] = false;
                let job = &jobs[i].name;
                attempts[i].push(Attempt {
                    engine: engine.clone(),
                    started,
                    finished,
                    outcome: format!("engine lost: {}", err.message),
                });
                let tries = attempts[i].len();
                // The lost engine's waiting jobs go with this one, to the engine with the
                // least waiting.
                let mut moved: Vec<usize> = std::mem::take(&mut queues[e]).into();
                moved.insert(0, i);
                let Some(to) = (0..engines.len())
                    .filter(|&o| alive[o])
                    .min_by_key(|&o| (queues[o].len(), o))
                else {
                    return Err(err.with_hint(format!(
                        "engine {engine} was lost during job {job}; no engine is left to run it again"
                    )));
                };
                if tries > RERUNS {
                    return Err(err.with_hint(format!(
                        "engine {engine} was lost during job {job}, which ran {tries} times; it is not run again"
                    )));
                }
                ui.warn(&format!(
                    "engine {engine} was lost during job {job} ({}): running it again on {} (rerun {tries} of {RERUNS})",
                    err.message,
                    engines[to].name()
                ));
                queues[to].extend(moved);
            }
            Err(err) => return Err(err),
        }
    }
    let ran: Vec<Ran> = done.into_iter().flatten().collect();
    if ran.len() != jobs.len() {
        return Err(Error::internal("the run ended with jobs not run"));
    }
    // With --json, an event of its own per job, so that scripts need not parse the line.
    for r in &ran {
        ui.measured(
            "ran",
            &format!(
                "{}: ran on {} ({} to {}{})",
                r.record.job,
                r.record.engine,
                r.record.started,
                r.record.finished,
                if r.record.attempts.len() > 1 {
                    format!(", {} attempts", r.record.attempts.len())
                } else {
                    String::new()
                }
            ),
            serde_json::to_value(&r.record).unwrap_or_default(),
        );
    }
    Ok(ran)
}

/// A prepared engine with what its jobs need: the executor's `Runner` for real engines.
struct Prepared<'a> {
    slot: &'a EngineSlot,
    builder: &'a Builder,
    out: &'a Path,
    ui: &'a Ui,
    interrupt: &'a Interrupt,
}

impl Runner for Prepared<'_> {
    fn name(&self) -> &str {
        &self.slot.name
    }

    fn lanes(&self) -> usize {
        self.slot.capacity
    }

    async fn run(&self, job: &Job) -> Result<Built> {
        let components = job
            .components
            .iter()
            .map(|c| Component::parse(c))
            .collect::<Result<Vec<_>>>()?;
        let platforms = job
            .platforms
            .iter()
            .map(|p| Platform::parse(p))
            .collect::<Result<Vec<_>>>()?;
        self.builder
            .build(
                job,
                &components,
                &platforms,
                self.out,
                self.ui,
                self.interrupt,
            )
            .await
    }

    async fn lost(&self, _error: &Error) -> bool {
        !self.builder.alive().await
    }

    fn tree(&self, job: &Job) -> Option<String> {
        self.builder.shared_tree(job)
    }
}

impl Fleet {
    /// Prepares every engine (`--engines`), or the run's one engine.
    pub async fn prepare(
        info: SourceInfo,
        settings: &EngineSettings,
        ui: &Ui,
        interrupt: &Interrupt,
    ) -> Result<Fleet> {
        if settings.engines.is_empty() {
            let builder = Builder::prepare(info, settings, ui, interrupt).await?;
            let slot = EngineSlot {
                name: builder.facts.endpoint.clone(),
                facts: builder.facts.clone(),
                capacity: 1,
            };
            return Ok(Fleet {
                slots: vec![(slot, builder)],
            });
        }
        let mut slots = Vec::new();
        for (entry, capacity) in &settings.engines {
            let mut one = settings.clone();
            one.endpoint = Some(crate::engine::endpoint::named(entry)?);
            one.engines.clear();
            ui.phase("engine", &format!("preparing {entry}"));
            match Builder::prepare(info.clone(), &one, ui, interrupt).await {
                Ok(builder) => {
                    let slot = EngineSlot {
                        name: entry.clone(),
                        facts: builder.facts.clone(),
                        capacity: *capacity,
                    };
                    slots.push((slot, builder));
                }
                Err(e) if e.kind == Kind::Engine && !settings.require_all_engines => {
                    ui.warn(&format!("engine {entry} left out: {}", e.message));
                }
                Err(e) if e.kind == Kind::Engine => return Err(required_engine_down(e, entry)),
                Err(e) => return Err(e),
            }
        }
        if slots.is_empty() {
            return Err(no_engine_left(settings));
        }
        Ok(Fleet { slots })
    }

    /// The first engine's builder: the source facts and the toolchain the run reports.
    pub fn first(&self) -> &Builder {
        &self.slots[0].1
    }

    pub fn engine_slots(&self) -> Vec<EngineSlot> {
        self.slots
            .iter()
            .map(|(s, _)| EngineSlot {
                name: s.name.clone(),
                facts: s.facts.clone(),
                capacity: s.capacity,
            })
            .collect()
    }

    /// Runs the plan's jobs as planned (see `execute`).
    pub async fn run(
        &self,
        jobs: &[Job],
        out: &Path,
        ui: &Ui,
        interrupt: &Interrupt,
    ) -> Result<Vec<Ran>> {
        let engines: Vec<Prepared<'_>> = self
            .slots
            .iter()
            .map(|(slot, builder)| Prepared {
                slot,
                builder,
                out,
                ui,
                interrupt,
            })
            .collect();
        execute(&engines, jobs, ui, interrupt).await
    }
}

/// An engine of `--require-all-engines` that does not answer: the one-engine hint (start
/// Docker, point DOCKER_HOST) does not fit a run that names several.
pub fn required_engine_down(e: Error, entry: &str) -> Error {
    e.with_hint(format!(
        "--require-all-engines wants every engine: start {entry}, take it out of --engines, or drop --require-all-engines to build on the engines that answer"
    ))
}

pub fn no_engine_left(settings: &EngineSettings) -> Error {
    let names: Vec<&str> = settings.engines.iter().map(|(n, _)| n.as_str()).collect();
    Error::engine(format!(
        "none of the engines answers: {}",
        names.join(", ")
    ))
    .with_hint("start one of them, or name engines that run with --engines (docker context names or unix://, tcp://, ssh:// endpoints)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    /// How the fake engine ends a job.
    #[derive(Clone, Copy, PartialEq)]
    enum Outcome {
        Built,
        /// The engine goes away during the job.
        Lost,
        /// make fails.
        Fails,
        /// Ctrl-C arrives during the job.
        Interrupted,
        /// The kernel kills the build for memory (exit code 137, `State.OOMKilled`).
        OutOfMemory,
    }

    /// An in-memory engine: runs each job for a few milliseconds and ends it as scripted,
    /// counting how many run at once.
    struct Fake {
        name: &'static str,
        lanes: usize,
        script: Vec<(&'static str, Outcome)>,
        running: AtomicUsize,
        most_at_once: AtomicUsize,
        started: Mutex<Vec<String>>,
        /// The jobs as they reached the engine (a rerun's output place included).
        given: Mutex<Vec<Job>>,
        /// How often the executor asked whether it is lost.
        asked_lost: AtomicUsize,
        /// The writable tree its jobs share, with a count of the jobs in it across engines.
        tree: Option<(&'static str, Arc<InTree>)>,
    }

    /// Jobs building in one shared tree now, and the most seen at once.
    #[derive(Default)]
    struct InTree {
        now: AtomicUsize,
        most: AtomicUsize,
    }

    impl Fake {
        fn new(name: &'static str, lanes: usize) -> Fake {
            Fake {
                name,
                lanes,
                script: Vec::new(),
                running: AtomicUsize::new(0),
                most_at_once: AtomicUsize::new(0),
                started: Mutex::new(Vec::new()),
                given: Mutex::new(Vec::new()),
                asked_lost: AtomicUsize::new(0),
                tree: None,
            }
        }

        /// Its jobs build in `tree`, shared with other engines holding the same count.
        fn sharing(mut self, tree: &'static str, count: &Arc<InTree>) -> Fake {
            self.tree = Some((tree, count.clone()));
            self
        }

        fn with(mut self, job: &'static str, outcome: Outcome) -> Fake {
            self.script.push((job, outcome));
            self
        }

        fn started(&self) -> Vec<String> {
            self.started.lock().unwrap().clone()
        }
    }

    impl Runner for Fake {
        fn name(&self) -> &str {
            self.name
        }

        fn lanes(&self) -> usize {
            self.lanes
        }

        async fn run(&self, job: &Job) -> Result<Built> {
            self.started.lock().unwrap().push(job.name.clone());
            self.given.lock().unwrap().push(job.clone());
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_at_once.fetch_max(now, Ordering::SeqCst);
            if let Some((_, count)) = &self.tree {
                let now = count.now.fetch_add(1, Ordering::SeqCst) + 1;
                count.most.fetch_max(now, Ordering::SeqCst);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            if let Some((_, count)) = &self.tree {
                count.now.fetch_sub(1, Ordering::SeqCst);
            }
            self.running.fetch_sub(1, Ordering::SeqCst);
            let outcome = self
                .script
                .iter()
                .find(|(name, _)| *name == job.name)
                .map_or(Outcome::Built, |(_, o)| *o);
            match outcome {
                Outcome::Built => Ok(Built {
                    binaries: Vec::new(),
                    log: format!("{}.log", job.name).into(),
                    up_to_date: false,
                }),
                Outcome::Lost => Err(Error::engine("the engine closed the connection")),
                Outcome::Fails => Err(Error::new(Kind::Build, "make failed with exit code 2")),
                Outcome::Interrupted => Err(Error::new(Kind::Interrupted, "stopped by Ctrl-C")),
                Outcome::OutOfMemory => Err(Error::build(format!(
                    "the build of {} ran out of memory and was killed",
                    job.name
                ))),
            }
        }

        async fn lost(&self, _error: &Error) -> bool {
            self.asked_lost.fetch_add(1, Ordering::SeqCst);
            self.script
                .iter()
                .any(|(_, o)| matches!(o, Outcome::Lost | Outcome::OutOfMemory))
        }

        fn tree(&self, job: &Job) -> Option<String> {
            if crate::engine::private_output(job).is_some() {
                return None;
            }
            self.tree.as_ref().map(|(t, _)| t.to_string())
        }
    }

    fn job(name: &str, engine: &str) -> Job {
        Job {
            name: name.to_string(),
            components: vec!["kubectl".into()],
            platforms: vec!["linux/amd64".into()],
            image: "builder".into(),
            command: vec!["make".into()],
            workdir: "/src".into(),
            env: Vec::new(),
            mounts: Vec::new(),
            network: "none".into(),
            user: None,
            memory_limit: None,
            cpus: None,
            engine: engine.to_string(),
            output_subpath: "_output/dockerized".into(),
            outputs: Vec::new(),
        }
    }

    async fn run(engines: &[Fake], jobs: &[Job]) -> Result<Vec<Ran>> {
        let ui = Ui::new(false, true, false);
        execute(engines, jobs, &ui, &Interrupt::never()).await
    }

    fn where_ran(ran: &[Ran]) -> Vec<(String, String, usize)> {
        ran.iter()
            .map(|r| {
                let rec = &r.record;
                (rec.job.clone(), rec.engine.clone(), rec.attempts.len())
            })
            .collect()
    }

    #[tokio::test]
    async fn each_job_runs_on_its_planned_engine_in_plan_order() {
        let engines = [Fake::new("a", 1), Fake::new("b", 1)];
        let jobs = [job("j1", "b"), job("j2", "a"), job("j3", "b")];
        let ran = run(&engines, &jobs).await.unwrap();
        assert_eq!(
            where_ran(&ran),
            [
                ("j1".into(), "b".into(), 1),
                ("j2".into(), "a".into(), 1),
                ("j3".into(), "b".into(), 1)
            ]
        );
        assert_eq!(engines[0].started(), ["j2"]);
        assert_eq!(engines[1].started(), ["j1", "j3"]);
        for r in &ran {
            assert_eq!(r.record.planned_engine, r.record.engine);
            assert!(r.record.started <= r.record.finished, "{:?}", r.record);
        }
    }

    #[tokio::test]
    async fn an_engine_runs_as_many_jobs_at_once_as_it_has_lanes() {
        let engines = [Fake::new("two", 2), Fake::new("one", 1)];
        let jobs = [
            job("j1", "two"),
            job("j2", "two"),
            job("j3", "two"),
            job("j4", "one"),
            job("j5", "one"),
        ];
        run(&engines, &jobs).await.unwrap();
        assert_eq!(engines[0].most_at_once.load(Ordering::SeqCst), 2);
        assert_eq!(engines[1].most_at_once.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_lost_engine_s_jobs_run_again_elsewhere_and_the_record_says_so() {
        let engines = [
            Fake::new("a", 1),
            Fake::new("b", 1).with("j2", Outcome::Lost),
        ];
        let jobs = [job("j1", "a"), job("j2", "b"), job("j3", "b")];
        let ran = run(&engines, &jobs).await.unwrap();
        assert_eq!(
            where_ran(&ran),
            [
                ("j1".into(), "a".into(), 1),
                ("j2".into(), "a".into(), 2),
                ("j3".into(), "a".into(), 1)
            ]
        );
        let j2 = &ran[1].record;
        assert_eq!(j2.planned_engine, "b");
        assert_eq!(j2.attempts[0].engine, "b");
        assert!(j2.attempts[0].outcome.starts_with("engine lost"), "{j2:?}");
        assert_eq!(j2.attempts[1].engine, "a");
        assert_eq!(j2.attempts[1].outcome, "built");
        // j3 never started on the lost engine: it moved with the queue.
        assert_eq!(engines[1].started(), ["j2"]);
        assert_eq!(ran[2].record.planned_engine, "b");
    }

    #[tokio::test]
    async fn a_job_runs_again_at_most_twice() {
        let engines = [
            Fake::new("a", 1).with("j", Outcome::Lost),
            Fake::new("b", 1).with("j", Outcome::Lost),
            Fake::new("c", 1).with("j", Outcome::Lost),
            Fake::new("d", 1),
        ];
        let err = run(&engines, &[job("j", "a")]).await.err().unwrap();
        assert_eq!(err.kind, Kind::Engine);
        assert!(
            err.hint.as_deref().unwrap_or("").contains("ran 3 times"),
            "{err:?}"
        );
        assert!(engines[3].started().is_empty());
    }

    #[tokio::test]
    async fn with_no_engine_left_the_run_fails() {
        let engines = [
            Fake::new("a", 1).with("j", Outcome::Lost),
            Fake::new("b", 1).with("j", Outcome::Lost),
        ];
        let err = run(&engines, &[job("j", "a")]).await.err().unwrap();
        assert!(
            err.hint
                .as_deref()
                .unwrap_or("")
                .contains("no engine is left"),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_failed_build_or_an_interrupt_is_never_run_again() {
        for outcome in [Outcome::Fails, Outcome::Interrupted] {
            let engines = [Fake::new("a", 1).with("j", outcome), Fake::new("b", 1)];
            let err = run(&engines, &[job("j", "a")]).await.err().unwrap();
            assert!(
                matches!(err.kind, Kind::Build | Kind::Interrupted),
                "{err:?}"
            );
            assert!(engines[1].started().is_empty());
        }
    }

    #[tokio::test]
    async fn a_job_planned_on_an_engine_the_run_lacks_is_refused() {
        let engines = [Fake::new("a", 1)];
        let err = run(&engines, &[job("j", "gone")]).await.err().unwrap();
        assert_eq!(err.kind, Kind::Internal);
        assert!(engines[0].started().is_empty());
    }

    /// A job with an `_output` of its own, mounted over the container's, as the plan makes
    /// one for a bind-mounted tree.
    fn own_output_job(name: &str, engine: &str) -> Job {
        let dir = crate::engine::job_output_dir(name, 0);
        let mut j = job(name, engine);
        j.mounts = vec![
            "/src/tree:/go/src/k8s.io/kubernetes".into(),
            format!("/src/tree/{dir}:/go/src/k8s.io/kubernetes/_output"),
        ];
        j.output_subpath = crate::engine::job_output_subpath(&dir);
        j
    }

    #[tokio::test]
    async fn jobs_of_one_shared_tree_run_one_at_a_time_across_engines_and_lanes() {
        let tree = Arc::new(InTree::default());
        let engines = [
            Fake::new("a", 4).sharing("/src/tree", &tree),
            Fake::new("b", 2).sharing("/src/tree", &tree),
        ];
        let jobs: Vec<Job> = ["j1", "j2", "j3", "j4", "j5"]
            .iter()
            .enumerate()
            .map(|(n, name)| job(name, if n % 2 == 0 { "a" } else { "b" }))
            .collect();
        let ran = run(&engines, &jobs).await.unwrap();
        assert_eq!(ran.len(), 5);
        assert_eq!(tree.most.load(Ordering::SeqCst), 1, "one job at a time");
        // Still each on its planned engine.
        assert_eq!(engines[0].started(), ["j1", "j3", "j5"]);
        assert_eq!(engines[1].started(), ["j2", "j4"]);
    }

    #[tokio::test]
    async fn jobs_with_outputs_of_their_own_share_a_tree_at_once() {
        let tree = Arc::new(InTree::default());
        let engines = [
            Fake::new("a", 4).sharing("/src/tree", &tree),
            Fake::new("b", 1).sharing("/src/tree", &tree),
        ];
        let jobs: Vec<Job> = ["j1", "j2", "j3", "j4", "j5"]
            .iter()
            .enumerate()
            .map(|(n, name)| own_output_job(name, if n < 4 { "a" } else { "b" }))
            .collect();
        run(&engines, &jobs).await.unwrap();
        assert_eq!(engines[0].most_at_once.load(Ordering::SeqCst), 4);
        assert_eq!(tree.most.load(Ordering::SeqCst), 5, "all five at once");
    }

    #[tokio::test]
    async fn other_trees_do_not_wait_for_each_other() {
        let (one, two) = (Arc::new(InTree::default()), Arc::new(InTree::default()));
        let engines = [
            Fake::new("a", 1).sharing("volume on a", &one),
            Fake::new("b", 1).sharing("volume on b", &two),
        ];
        let jobs = [job("j1", "a"), job("j2", "b")];
        let ran = run(&engines, &jobs).await.unwrap();
        let overlap = ran[0].record.started < ran[1].record.finished
            && ran[1].record.started < ran[0].record.finished;
        assert!(overlap, "{:?}", where_ran(&ran));
    }

    #[tokio::test]
    async fn a_rerun_builds_in_an_output_place_of_its_own() {
        let engines = [
            Fake::new("a", 1),
            Fake::new("b", 1).with("j", Outcome::Lost),
        ];
        let ran = run(&engines, &[own_output_job("j", "b")]).await.unwrap();
        assert_eq!(where_ran(&ran), [("j".into(), "a".into(), 2)]);
        let first = engines[1].given.lock().unwrap()[0].clone();
        let rerun = engines[0].given.lock().unwrap()[0].clone();
        assert_eq!(first.output_subpath, "_output/jobs/j/dockerized");
        assert_eq!(rerun.output_subpath, "_output/jobs/j.rerun1/dockerized");
        assert_eq!(
            rerun.mounts[1],
            "/src/tree/_output/jobs/j.rerun1:/go/src/k8s.io/kubernetes/_output"
        );
        // Nothing of the first attempt's place is mounted for the rerun.
        assert!(
            !rerun.mounts.iter().any(|m| m.contains("/_output/jobs/j:")),
            "{:?}",
            rerun.mounts
        );
    }

    #[tokio::test]
    async fn an_oom_kill_is_a_failed_build_never_run_elsewhere() {
        // Even on an engine that would look gone: an OOM kill is the build's, not the engine's.
        let engines = [
            Fake::new("a", 2).with("j1", Outcome::OutOfMemory),
            Fake::new("b", 1),
        ];
        let jobs = [job("j1", "a"), job("j2", "a"), job("j3", "a")];
        let err = run(&engines, &jobs).await.err().unwrap();
        assert_eq!(err.kind, Kind::Build, "{err:?}");
        assert!(err.message.contains("ran out of memory"), "{err:?}");
        assert_eq!(engines[0].asked_lost.load(Ordering::SeqCst), 0);
        assert!(engines[1].started().is_empty(), "nothing moved to b");
        assert!(!engines[0].started().contains(&"j3".to_string()));
    }
}
