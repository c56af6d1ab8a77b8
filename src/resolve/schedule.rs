//! Which engine runs which job: the work split into jobs, and each job assigned to an
//! engine lane before anything runs. The run follows this assignment (`exec::fleet`); only
//! a lost engine moves a job, and the record says so.

use crate::error::Result;
use crate::exec::fleet::{no_engine_left, required_engine_down};
use crate::exec::settings::{EngineSettings, EngineSlot};
use crate::kube::{Component, Platform};
use crate::plan::{Job, LastEngines};
use crate::resolve::jobs;
use crate::source::SourceInfo;

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

    /// With two lanes or more (several engines, or one engine taking several jobs at a
    /// time), one job per platform so that the lanes can share the work.
    pub fn split(work: Vec<Work>, lanes: usize) -> Vec<Work> {
        if lanes < 2 {
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

/// Every lane of the engines: an engine of `NAME=JOBS` offers JOBS lanes.
pub fn lanes(slots: &[EngineSlot]) -> usize {
    slots.iter().map(|s| s.capacity.max(1)).sum()
}

/// Largest first, each onto the lane that frees up first (by estimated weight); ties go to
/// the earlier engine. A job with a `preferred` engine (where it ran last: its Go cache is
/// warm there) goes back to it unless that would start it a whole job's weight later than
/// the first free lane: waiting for a warm cache beats a cold one, queueing behind a whole
/// other job does not. Returns each job's engine.
pub fn assign(weights: &[usize], capacities: &[usize], preferred: &[Option<usize>]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(weights[i]));
    // One entry per lane: (busy until, engine).
    let mut lanes: Vec<(usize, usize)> = capacities
        .iter()
        .enumerate()
        .flat_map(|(e, &c)| std::iter::repeat_n((0, e), c.max(1)))
        .collect();
    let first_free = |lanes: &[(usize, usize)], engine: Option<usize>| {
        lanes
            .iter()
            .enumerate()
            .filter(|(_, (_, e))| engine.is_none_or(|want| *e == want))
            .min_by_key(|(_, (busy, e))| (*busy, *e))
            .map(|(lane, _)| lane)
    };
    let mut assigned = vec![0; weights.len()];
    for i in order {
        let weight = weights[i].max(1);
        let free = first_free(&lanes, None).expect("at least one engine");
        let warm = preferred
            .get(i)
            .copied()
            .flatten()
            .and_then(|e| first_free(&lanes, Some(e)))
            .filter(|&lane| lanes[lane].0 < lanes[free].0 + weight);
        let lane = warm.unwrap_or(free);
        lanes[lane].0 += weight;
        assigned[i] = lanes[lane].1;
    }
    assigned
}

/// The plan's jobs for `work` on `slots`, each made with its assigned engine's facts. Each
/// engine starts its jobs in this order, as its lanes free up. `last` says where each job
/// ran before; an engine no longer among the slots is no preference.
pub fn planned_jobs(
    work: &[Work],
    slots: &[EngineSlot],
    tree: &jobs::Tree<'_>,
    settings: &EngineSettings,
    last: &LastEngines,
) -> Vec<Job> {
    let weights: Vec<usize> = work.iter().map(Work::weight).collect();
    let capacities: Vec<usize> = slots.iter().map(|s| s.capacity).collect();
    let preferred: Vec<Option<usize>> = work
        .iter()
        .map(|w| {
            let engine = last.get(&w.name)?;
            slots.iter().position(|s| &s.name == engine)
        })
        .collect();
    let assigned = assign(&weights, &capacities, &preferred);
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
        let asked = crate::exec::builder::plan_facts(info, settings).await?;
        let name = asked.facts.endpoint.clone();
        return Ok((
            vec![EngineSlot {
                name,
                facts: asked.facts,
                capacity: 1,
            }],
            asked.notes,
        ));
    }
    let mut slots = Vec::new();
    let mut notes = Vec::new();
    for (entry, capacity) in &settings.engines {
        let mut one = settings.clone();
        one.endpoint = Some(crate::engine::endpoint::named(entry)?);
        one.engines.clear();
        // One connection per engine: the facts and whether it answers come together.
        let asked = crate::exec::builder::plan_facts(info, &one).await?;
        match asked.unanswered {
            None => {
                notes.extend(asked.notes);
                slots.push(EngineSlot {
                    name: entry.clone(),
                    facts: asked.facts,
                    capacity: *capacity,
                });
            }
            Some(e) if !settings.require_all_engines => notes.push(format!(
                "engine {entry} does not answer ({}): left out",
                e.message
            )),
            Some(e) => return Err(required_engine_down(e, entry)),
        }
    }
    if slots.is_empty() {
        return Err(no_engine_left(settings));
    }
    Ok((slots, notes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn largest_first_onto_the_engine_free_first() {
        // Two engines of one lane: 4 and 3 go to different engines, then 2 joins the 3.
        assert_eq!(assign(&[2, 4, 3], &[1, 1], &[]), vec![1, 0, 1]);
        // One engine takes everything.
        assert_eq!(assign(&[1, 2, 3], &[1], &[]), vec![0, 0, 0]);
        // An engine with two lanes takes two jobs before the other's first frees.
        assert_eq!(assign(&[5, 5, 5], &[2, 1], &[]), vec![0, 0, 1]);
    }

    #[test]
    fn a_job_goes_back_to_its_warm_engine_unless_it_would_queue_behind_a_whole_job() {
        // Equal jobs last run the other way round go back where they ran.
        assert_eq!(assign(&[1, 1], &[1, 1], &[Some(1), Some(0)]), vec![1, 0]);
        // Both last ran on engine 0 (a one-engine run): the second still fans out.
        assert_eq!(assign(&[1, 1], &[1, 1], &[Some(0), Some(0)]), vec![0, 1]);
        // A job waits for its warm engine when that starts it less than its own weight
        // later than the cold one: 2 waits 1 for engine 0 rather than go cold to engine 1.
        assert_eq!(assign(&[3, 2, 2], &[1, 1], &[]), vec![0, 1, 1]);
        assert_eq!(
            assign(&[3, 2, 2], &[1, 1], &[None, None, Some(0)]),
            vec![0, 1, 0]
        );
        // A whole job's wait or more: it goes cold rather than queue.
        assert_eq!(
            assign(&[4, 1, 1], &[1, 1], &[None, None, Some(0)]),
            vec![0, 1, 1]
        );
        // A preferred engine that is no longer there is no preference.
        assert_eq!(assign(&[1, 1], &[1, 1], &[Some(7), None]), vec![0, 1]);
    }

    fn client_work() -> Vec<Work> {
        let kubectl = Component::parse("kubectl").unwrap();
        vec![Work {
            name: "client".into(),
            components: vec![kubectl],
            platforms: ["linux/amd64", "darwin/arm64", "windows/amd64"]
                .iter()
                .map(|p| Platform::parse(p).unwrap())
                .collect(),
        }]
    }

    #[test]
    fn two_lanes_or_more_split_jobs_per_platform() {
        assert_eq!(Work::split(client_work(), 1).len(), 1);
        let split = Work::split(client_work(), 2);
        let names: Vec<&str> = split.iter().map(|w| w.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "client-linux-amd64",
                "client-darwin-arm64",
                "client-windows-amd64"
            ]
        );
    }

    #[test]
    fn one_engine_of_two_jobs_offers_two_lanes() {
        // `--engines docker.sock=2`: one engine, two lanes, so one job per platform.
        let facts = crate::exec::settings::EngineFacts {
            kind: crate::plan::EngineKind::Docker,
            endpoint: "unix:///var/run/docker.sock".into(),
            endpoint_from: "--engines".into(),
            image: "img".into(),
            image_id: Some("sha256:1".into()),
            repo_digest: None,
            transfer: None,
            user: None,
        };
        let slots = [EngineSlot {
            name: "docker.sock".into(),
            facts,
            capacity: 2,
        }];
        assert_eq!(lanes(&slots), 2);
        assert_eq!(Work::split(client_work(), lanes(&slots)).len(), 3);
    }
}
