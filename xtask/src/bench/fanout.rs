//! g. Fan-out on real compile work (issue 25): kubectl for two platforms from empty Go
//! caches, so that each build compiles the standard library for its platform, every build
//! container limited to one CPU.
//!
//! - one engine: `kbuild build` on one engine, the two platforms one after another;
//! - two engines: the same with `--engines a,b`, one platform on each;
//! - the ceiling: the same two builds as two raw `docker run`s of upstream's make started at
//!   once, one per engine, without kbuild. Both engines share this machine's cores, so the
//!   ceiling is below 2x; two engines are judged against it, not against 2x.
//!
//! Both engines are dockerds the bench starts (same storage driver, builder image loaded),
//! so that emptying their caches never touches this machine's engine and its users. The
//! three ways alternate within each run, every cache volume removed before each build. The
//! fixed cost of the two-engine run (engine preparation, sync, container start before the
//! first job; outputs and packaging after the last) is read from its `kbuild-timings.json`;
//! its whole overhead is what it takes beyond the raw ceiling.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use super::second_engine::SecondEngine;
use super::{median, remove_dir, time, uid_gid, VERSION};
use crate::builder_image::IMAGE;
use crate::util::{self, run, step, Failure};

pub const PLATFORMS: [&str; 2] = ["linux/amd64", "linux/arm64"];
const CPUS: &str = "1";

pub struct Measured {
    pub one: f64,
    pub two: f64,
    pub raw_parallel: f64,
    /// Seconds of the two-engine run before its first job started.
    pub before_jobs: f64,
    /// Seconds of the two-engine run after its last job ended.
    pub after_jobs: f64,
    pub runs: usize,
}

impl Measured {
    pub fn speedup(&self) -> f64 {
        self.one / self.two
    }

    pub fn ceiling(&self) -> f64 {
        self.one / self.raw_parallel
    }

    pub fn against_ceiling(&self) -> f64 {
        self.two / self.raw_parallel
    }

    /// kbuild's own cost in a two-engine run: what it takes beyond the raw parallel builds of
    /// the same work (engine preparation, sync, containers through the API, install), and at
    /// least what its timings show outside the jobs (a job's span starts with its engine's
    /// preparation, so the timings alone undercount it).
    pub fn overhead(&self) -> f64 {
        (self.two - self.raw_parallel).max(self.before_jobs + self.after_jobs)
    }

    /// The speed-up two separate machines would give: the one-engine time over one job's
    /// share plus kbuild's overhead. Each job is half of the one-engine run's compile work;
    /// separate machines do not share cores, so a job takes what it takes alone.
    pub fn separate_machines(&self) -> f64 {
        let one_job = (self.one - self.overhead()).max(0.0) / 2.0;
        self.one / (one_job + self.overhead())
    }

    pub fn markdown(&self) -> String {
        let runs = if self.runs == 1 {
            "One run each".to_string()
        } else {
            format!("Medians of {} runs, the three ways alternating", self.runs)
        };
        format!(
            "| kubectl for {}, empty Go caches, `--cpus {CPUS}` | seconds | speed-up over one engine | target |\n\
             |---|---|---|---|\n\
             | one engine (the platforms one after another) | {:.1} | 1.00x | |\n\
             | two engines (one platform each) | {:.1} | {:.2}x | within 1.1x of the ceiling: {:.2} |\n\
             | ceiling: two raw `docker run`s at once, one per engine | {:.1} | {:.2}x | |\n\
             | kbuild's overhead: two engines against the ceiling (outside the jobs: {:.1} before, {:.1} after) | {:.1} | | |\n\
             | two separate one-CPU machines, argued from the fixed cost | | {:.2}x | >= 1.8x |\n\n\
             {runs}. Every cache volume on both engines is removed before each build, so each \
             compiles the standard library for its platform. Both engines are dockerds the bench \
             starts, with the builder image loaded before timing starts. Both engines share this machine's {} cores (and its \
             disk), which puts the ceiling below 2x. The separate-machines figure takes the \
             one-engine time, halves its compile work (one platform per machine) and adds \
             kbuild's measured overhead.\n",
            PLATFORMS.join(" and "),
            self.one,
            self.two,
            self.speedup(),
            self.against_ceiling(),
            self.raw_parallel,
            self.ceiling(),
            self.before_jobs,
            self.after_jobs,
            self.overhead(),
            self.separate_machines(),
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(0),
        )
    }
}

pub fn measure(kbuild: &Path, tree: &Path, work: &Path, runs: usize) -> Result<Measured, Failure> {
    step("bench g: fan-out on compile work (starting two dockerds of the bench's own)");
    let engines = [SecondEngine::start_nth(1)?, SecondEngine::start_nth(2)?];
    let hosts = engines.each_ref().map(SecondEngine::docker_host);
    let first = hosts[0].clone();
    let both = hosts.join(",");
    let out = work.join("fanout-out");
    let commit = util::output(
        Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(tree),
    )
    .unwrap_or_default();
    let with_log = |result: Result<f64, Failure>| {
        result.map_err(|f| {
            Failure::with_code(
                format!(
                    "{}\n--- the bench's dockerds ---\n{}\n{}",
                    f.message,
                    engines[0].log(),
                    engines[1].log()
                ),
                f.code,
            )
        })
    };
    let cold = || -> Result<(), Failure> {
        remove_dir(&out);
        remove_dir(&tree.join("_output"));
        for host in &hosts {
            drop_volumes(host, "label=io.kbuild.cache")?;
        }
        Ok(())
    };

    let (mut one, mut two, mut raw) = (Vec::new(), Vec::new(), Vec::new());
    let (mut before, mut after) = (Vec::new(), Vec::new());
    for i in 0..runs {
        step(&format!("bench g: run {} of {runs}", i + 1));
        cold()?;
        one.push(with_log(time(&mut kbuild_build(
            kbuild, tree, &out, &first,
        )))?);
        cold()?;
        two.push(with_log(time(&mut kbuild_build(
            kbuild, tree, &out, &both,
        )))?);
        let (b, a) = fixed_cost(&out.join("kbuild-timings.json"))?;
        before.push(b);
        after.push(a);
        cold()?;
        raw.push(with_log(raw_parallel(&hosts, tree, commit.trim(), i))?);
    }
    remove_dir(&out);
    remove_dir(&tree.join("_output"));
    drop(engines);
    Ok(Measured {
        one: median(one),
        two: median(two),
        raw_parallel: median(raw),
        before_jobs: median(before),
        after_jobs: median(after),
        runs,
    })
}

fn kbuild_build(kbuild: &Path, tree: &Path, out: &Path, engines: &str) -> Command {
    let mut cmd = Command::new(kbuild);
    cmd.args([
        "--quiet",
        "build",
        "kubectl",
        "--timings",
        "--image",
        IMAGE,
        "--cpus",
        CPUS,
    ])
    .args(PLATFORMS.iter().flat_map(|p| ["--platform", p]))
    .arg("--kube-root")
    .arg(tree)
    .arg("--out")
    .arg(out)
    .args(["--engines", engines]);
    cmd
}

/// The two builds as upstream's make runs them in its build container, one per engine,
/// started together; each writes its own output subpath, from its own fresh cache volume.
fn raw_parallel(
    hosts: &[String],
    tree: &Path,
    commit: &str,
    run_no: usize,
) -> Result<f64, Failure> {
    let volumes: Vec<String> = (0..hosts.len())
        .map(|n| format!("kbuild-bench-fanout-{run_no}-{n}"))
        .collect();
    for (host, volume) in hosts.iter().zip(&volumes) {
        run(docker(host)
            .args([
                "run",
                "--rm",
                "--network",
                "none",
                "-v",
                &format!("{volume}:/v"),
                IMAGE,
            ])
            .args(["chown", &uid_gid(), "/v"])
            .stdout(Stdio::null()))?;
    }
    let start = Instant::now();
    let mut children: Vec<(Command, Child)> = Vec::new();
    for (n, ((host, volume), platform)) in hosts.iter().zip(&volumes).zip(PLATFORMS).enumerate() {
        let mut cmd = docker(host);
        cmd.args(["run", "--rm", "--network", "none", "--cpus", CPUS])
            .args([
                "--user",
                &uid_gid(),
                "-e",
                "HOME=/tmp",
                "-e",
                "GOCACHE=/cache/go-build",
            ])
            .arg("-v")
            .arg(format!("{}:/go/src/k8s.io/kubernetes", tree.display()))
            .arg("-v")
            .arg(format!("{volume}:/cache"))
            .args([
                "-w",
                "/go/src/k8s.io/kubernetes",
                IMAGE,
                "make",
                "all",
                "WHAT=cmd/kubectl",
            ])
            .arg(format!("KUBE_BUILD_PLATFORMS={platform}"))
            .arg(format!("KUBE_OUTPUT_SUBPATH=_output/raw-{n}"))
            .arg(format!("KUBE_GIT_VERSION={VERSION}"))
            .arg(format!("KUBE_GIT_COMMIT={commit}"))
            .args(["KUBE_GIT_TREE_STATE=clean", "SOURCE_DATE_EPOCH=1700000000"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd
            .spawn()
            .map_err(|e| Failure::new(format!("cannot run {}: {e}", util::show(&cmd))))?;
        children.push((cmd, child));
    }
    let mut failed = None;
    for (cmd, mut child) in children {
        match child.wait() {
            Ok(status) => {
                if let Err(f) = util::check(&cmd, status) {
                    failed.get_or_insert(f);
                }
            }
            Err(e) => {
                failed.get_or_insert(Failure::new(format!("cannot wait for a raw build: {e}")));
            }
        }
    }
    let took = start.elapsed().as_secs_f64();
    for (host, volume) in hosts.iter().zip(&volumes) {
        let _ = docker(host)
            .args(["volume", "rm", "-f", volume])
            .stdout(Stdio::null())
            .status();
    }
    match failed {
        Some(f) => Err(f),
        None => Ok(took),
    }
}

fn docker(host: &str) -> Command {
    let mut cmd = Command::new("docker");
    cmd.args(["-H", host]);
    cmd
}

/// Removes an engine's volumes that match `filter`. Cold means cold: a volume that cannot
/// be removed (a build elsewhere is using it) stops the benchmark.
pub fn drop_volumes(host: &str, filter: &str) -> Result<(), Failure> {
    let list = util::output(docker(host).args(["volume", "ls", "-q", "--filter", filter]));
    for volume in list.unwrap_or_default().split_whitespace() {
        run(docker(host)
            .args(["volume", "rm", "-f", volume])
            .stdout(Stdio::null()))
        .map_err(|_| {
            Failure::new(format!(
                "cannot remove the volume {volume} on {host}: stop other kbuild runs and tests, then run the benchmark again"
            ))
        })?;
    }
    Ok(())
}

/// (before the first job, after the last) in seconds, from a run's kbuild-timings.json.
fn fixed_cost(path: &Path) -> Result<(f64, f64), Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::new(format!("cannot read {}: {e}", path.display())))?;
    job_bounds(&text)
        .ok_or_else(|| Failure::new(format!("{} holds no wall time or no job", path.display())))
}

/// Reads the report's wall time and its job spans' bounds (xtask is std only, so a scan of
/// the pretty-printed JSON rather than a parser: each span is one flat object).
fn job_bounds(json: &str) -> Option<(f64, f64)> {
    let compact: String = json.chars().filter(|c| !c.is_whitespace()).collect();
    let wall = number_after(&compact, "\"wall_seconds\":")?;
    let mut first: Option<f64> = None;
    let mut last: Option<f64> = None;
    for object in compact
        .split('{')
        .filter(|o| o.contains("\"kind\":\"job\""))
    {
        let (start, end) = (
            number_after(object, "\"start\":")?,
            number_after(object, "\"end\":")?,
        );
        first = Some(first.map_or(start, |f: f64| f.min(start)));
        last = Some(last.map_or(end, |l: f64| l.max(end)));
    }
    Some((first?, (wall - last?).max(0.0)))
}

fn number_after(text: &str, key: &str) -> Option<f64> {
    let rest = &text[text.find(key)? + key.len()..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | 'e' | 'E' | '+')))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixed_cost_is_what_lies_outside_the_jobs() {
        let report = r#"{
  "schema_version": 1,
  "wall_seconds": 20.5,
  "spans": [
    { "lane": "kbuild", "label": "sync", "kind": "phase", "start": 0.5, "end": 2.0, "ok": true },
    { "lane": "a", "label": "kubectl-linux-amd64", "kind": "job", "start": 3.0, "end": 15.0, "ok": true, "job": "x" },
    { "lane": "b", "label": "kubectl-linux-arm64", "kind": "job", "start": 2.5, "end": 18.0, "ok": true, "job": "y" }
  ]
}"#;
        assert_eq!(job_bounds(report), Some((2.5, 2.5)));
    }

    #[test]
    fn a_report_without_jobs_gives_nothing() {
        assert_eq!(job_bounds(r#"{"wall_seconds": 1.0, "spans": []}"#), None);
    }

    #[test]
    fn separate_machines_halve_the_work_and_keep_the_fixed_cost() {
        let m = Measured {
            one: 100.0,
            two: 60.0,
            raw_parallel: 58.0,
            before_jobs: 3.0,
            after_jobs: 1.0,
            runs: 1,
        };
        // overhead: max(60 - 58, 3 + 1) = 4; (100 - 4) / 2 + 4 = 52
        assert!((m.separate_machines() - 100.0 / 52.0).abs() < 1e-9);
    }
}
