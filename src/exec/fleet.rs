//! Several engines in one run (`--engines a,b`). Each engine is prepared as a `Builder` of
//! its own (checks, image, Go cache volume, source copy); one that does not answer at the
//! start is reported and left out. Jobs are split per platform, assigned at the start largest
//! first onto the engine that frees up first, and then run as engines free up: a job whose
//! engine is lost mid-build runs again on another, at most twice. With one engine this is the
//! plain one-engine run.

use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};

use crate::error::{Error, Kind, Result};
use crate::exec::builder::{Builder, Built};
use crate::kube::{Component, Platform};
use crate::plan::Job;
use crate::resolve::jobs::{self, EngineFacts};
use crate::resolve::EngineSettings;
use crate::signals::Interrupt;
use crate::source::SourceInfo;
use crate::ui::Ui;

/// How often a job lost with its engine runs again elsewhere.
const RERUNS: usize = 2;

/// One make run to do: its name and what it builds.
#[derive(Debug, Clone)]
pub struct Work {
    pub name: String,
    pub components: Vec<&'static Component>,
    pub platforms: Vec<Platform>,
}

impl Work {
    /// The estimated size: binaries to compile.
    fn weight(&self) -> usize {
        self.components.len() * self.platforms.len()
    }

    /// With several engines, one job per platform so that they can share the work.
    pub fn split(work: Vec<Work>, engines: usize) -> Vec<Work> {
        if engines < 2 {
            return work;
        }
        work.into_iter()
            .flat_map(|w| {
                if w.platforms.len() < 2 {
                    return vec![w];
                }
                w.platforms
                    .iter()
                    .map(|p| Work {
                        name: p.job_name(&w.name),
                        components: w.components.clone(),
                        platforms: vec![*p],
                    })
                    .collect()
            })
            .collect()
    }
}

/// An engine as the plan sees it: its name, its facts, how many jobs it takes at a time.
pub struct EngineSlot {
    pub name: String,
    pub facts: EngineFacts,
    pub capacity: usize,
}

/// Largest first, each onto the engine that frees up first (by estimated weight, capacity
/// counted as parallel lanes); ties go to the earlier engine. Returns each job's engine.
pub fn assign(weights: &[usize], capacities: &[usize]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(weights[i]));
    // One entry per lane: (busy until, engine).
    let mut lanes: Vec<(usize, usize)> = capacities
        .iter()
        .enumerate()
        .flat_map(|(e, &c)| std::iter::repeat_n((0, e), c.max(1)))
        .collect();
    let mut assigned = vec![0; weights.len()];
    for i in order {
        let lane = lanes
            .iter_mut()
            .min_by_key(|(busy, engine)| (*busy, *engine))
            .expect("at least one engine");
        lane.0 += weights[i].max(1);
        assigned[i] = lane.1;
    }
    assigned
}

/// The plan's jobs for `work` on `slots`, each made with its assigned engine's facts.
pub fn planned_jobs(
    work: &[Work],
    slots: &[EngineSlot],
    tree: &jobs::Tree<'_>,
    settings: &EngineSettings,
) -> Vec<Job> {
    let weights: Vec<usize> = work.iter().map(Work::weight).collect();
    let capacities: Vec<usize> = slots.iter().map(|s| s.capacity).collect();
    let assigned = assign(&weights, &capacities);
    work.iter()
        .zip(assigned)
        .map(|(w, e)| {
            let slot = &slots[e];
            let mut job = jobs::job(
                w.name.clone(),
                &w.components,
                &w.platforms,
                tree,
                settings,
                &slot.facts,
            );
            job.engine = slot.name.clone();
            job
        })
        .collect()
}

/// The engines of a plan made without running anything: each asked read-only; one that
/// does not answer is noted and left out (or fails the plan with --require-all-engines).
pub async fn plan_slots(
    info: Option<&SourceInfo>,
    settings: &EngineSettings,
) -> Result<(Vec<EngineSlot>, Vec<String>)> {
    if settings.engines.is_empty() {
        let (facts, notes) = crate::exec::builder::plan_facts(info, settings).await?;
        let name = facts.endpoint.clone();
        return Ok((
            vec![EngineSlot {
                name,
                facts,
                capacity: 1,
            }],
            notes,
        ));
    }
    let mut slots = Vec::new();
    let mut notes = Vec::new();
    for (entry, capacity) in &settings.engines {
        let mut one = settings.clone();
        one.endpoint = Some(crate::engine::endpoint::named(entry)?);
        one.engines.clear();
        match crate::engine::docker::DockerEngine::connect_to(one.endpoint.clone().unwrap()).await {
            Ok(_) => {
                let (facts, more) = crate::exec::builder::plan_facts(info, &one).await?;
                notes.extend(more);
                slots.push(EngineSlot {
                    name: entry.clone(),
                    facts,
                    capacity: *capacity,
                });
            }
            Err(e) if !settings.require_all_engines => notes.push(format!(
                "engine {entry} does not answer ({}): left out",
                e.message
            )),
            Err(e) => return Err(required_engine_down(e, entry)),
        }
    }
    if slots.is_empty() {
        return Err(no_engine_left(settings));
    }
    Ok((slots, notes))
}

/// An engine of `--require-all-engines` that does not answer: the one-engine hint (start
/// Docker, point DOCKER_HOST) does not fit a run that names several.
fn required_engine_down(e: Error, entry: &str) -> Error {
    e.with_hint(format!(
        "--require-all-engines wants every engine: start {entry}, take it out of --engines, or drop --require-all-engines to build on the engines that answer"
    ))
}

fn no_engine_left(settings: &EngineSettings) -> Error {
    let names: Vec<&str> = settings.engines.iter().map(|(n, _)| n.as_str()).collect();
    Error::engine(format!(
        "none of the engines answers: {}",
        names.join(", ")
    ))
    .with_hint("start one of them, or name engines that run with --engines (docker context names or unix://, tcp://, ssh:// endpoints)")
}

/// The engines of a run, each ready to build.
pub struct Fleet {
    pub slots: Vec<(EngineSlot, Builder)>,
}

/// What one job did, and where.
pub struct Ran {
    pub job: Job,
    pub built: Built,
    pub engine: String,
    pub took: Duration,
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

    /// Runs every job, each on the engine that is free first; a job lost with its engine
    /// runs again on another (at most twice). Stops at the first other failure.
    pub async fn run(
        &self,
        work: &[Work],
        out: &std::path::Path,
        ui: &Ui,
        interrupt: &Interrupt,
    ) -> Result<Vec<Ran>> {
        let mut queue: Vec<(usize, usize)> = (0..work.len()).map(|i| (i, 0)).collect();
        // Largest last, so that pop() takes it first.
        queue.sort_by_key(|&(i, _)| work[i].weight());
        let mut free: Vec<usize> = self.slots.iter().map(|(s, _)| s.capacity).collect();
        let mut alive = vec![true; self.slots.len()];
        let mut running = FuturesUnordered::new();
        let mut done = Vec::new();
        loop {
            while let Some(engine) = (0..self.slots.len()).find(|&e| alive[e] && free[e] > 0) {
                let Some((i, attempt)) = queue.pop() else {
                    break;
                };
                free[engine] -= 1;
                let (slot, builder) = &self.slots[engine];
                let w = &work[i];
                let mut job = builder.job(w.name.clone(), &w.components, &w.platforms);
                job.engine = slot.name.clone();
                running.push(async move {
                    let started = Instant::now();
                    let result = builder
                        .build(&job, &w.components, &w.platforms, out, ui, interrupt)
                        .await;
                    (engine, i, attempt, job, result, started.elapsed())
                });
            }
            let Some((engine, i, attempt, job, result, took)) = running.next().await else {
                break;
            };
            free[engine] += 1;
            match result {
                Ok(built) => done.push(Ran {
                    job,
                    built,
                    engine: self.slots[engine].0.name.clone(),
                    took,
                }),
                Err(e)
                    if e.kind == Kind::Engine
                        && self.slots.len() > 1
                        && !interrupt.fired()
                        && !self.slots[engine].1.alive().await =>
                {
                    alive[engine] = false;
                    let name = &self.slots[engine].0.name;
                    if attempt >= RERUNS || !alive.iter().any(|a| *a) {
                        return Err(e.with_hint(format!(
                            "engine {name} was lost during job {}, which ran {} times; no engine is left to run it again",
                            job.name,
                            attempt + 1
                        )));
                    }
                    ui.warn(&format!(
                        "engine {name} was lost during job {} ({}): running it again on another engine (rerun {} of {RERUNS})",
                        job.name,
                        e.message,
                        attempt + 1
                    ));
                    queue.push((i, attempt + 1));
                }
                Err(e) => return Err(e),
            }
        }
        // With --json, an event of its own per job, so that scripts need not parse the line.
        for ran in &done {
            let seconds = ran.took.as_secs_f64();
            ui.measured(
                "ran",
                &format!("{}: ran on {} in {seconds:.1}s", ran.job.name, ran.engine),
                serde_json::json!({ "job": ran.job.name, "engine": ran.engine, "seconds": seconds }),
            );
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn largest_first_onto_the_engine_free_first() {
        // Two engines of one lane: 4 and 3 go to different engines, then 2 joins the 3.
        assert_eq!(assign(&[2, 4, 3], &[1, 1]), vec![1, 0, 1]);
        // One engine takes everything.
        assert_eq!(assign(&[1, 2, 3], &[1]), vec![0, 0, 0]);
        // An engine with two lanes takes two jobs before the other's first frees.
        assert_eq!(assign(&[5, 5, 5], &[2, 1]), vec![0, 0, 1]);
    }

    #[test]
    fn several_engines_split_jobs_per_platform() {
        let kubectl = Component::parse("kubectl").unwrap();
        let work = vec![Work {
            name: "client".into(),
            components: vec![kubectl],
            platforms: vec![
                Platform::parse("linux/amd64").unwrap(),
                Platform::parse("darwin/arm64").unwrap(),
            ],
        }];
        assert_eq!(Work::split(work.clone(), 1).len(), 1);
        let split = Work::split(work, 2);
        let names: Vec<&str> = split.iter().map(|w| w.name.as_str()).collect();
        assert_eq!(names, ["client-linux-amd64", "client-darwin-arm64"]);
    }
}
