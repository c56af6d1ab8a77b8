//! e. One engine against two (issue 14): the same four-platform client build, every build
//! container limited to one CPU (`--cpus 1`), on this machine's engine alone and then on it
//! and a second dockerd the bench starts (`second_engine`). With two engines kbuild splits
//! the plan into one job per platform and runs two at a time, one on each.
//!
//! Both engines live on this machine and share its cores: `--cpus 1` per container stands in
//! for two one-CPU machines. Each engine's Go cache volume is warmed first by an unmeasured
//! build of all four platforms on it, so that both sides do the same (warm, forced) work.

use std::path::Path;
use std::process::Command;

use super::second_engine::SecondEngine;
use super::{median, remove_dir, time};
use crate::builder_image::IMAGE;
use crate::util::{self, step, Failure};

/// The client build of the benchmark: what a Docker Desktop extension ships.
pub const PLATFORMS: [&str; 4] = [
    "linux/amd64",
    "linux/arm64",
    "darwin/arm64",
    "windows/amd64",
];
/// What each build container may use.
const CPUS: &str = "1";

/// What the comparison measured: wall seconds, medians of `runs` interleaved runs.
pub struct Measured {
    pub one: f64,
    pub two: f64,
    pub runs: usize,
    pub main_engine: String,
}

impl Measured {
    /// How much more work two engines get through in the same time.
    pub fn throughput_ratio(&self) -> f64 {
        self.one / self.two
    }

    pub fn markdown(&self) -> String {
        let platforms = PLATFORMS.join(", ");
        format!(
            "| builds | one engine | two engines | throughput ratio | target |\n\
             |---|---|---|---|---|\n\
             | kubectl for {platforms}, `--cpus {CPUS}`, `--force`, warm Go caches | {:.2} s | {:.2} s | {:.2}x | >= 1.8x |\n\n\
             {}. One engine: `kbuild build kubectl {} --cpus {CPUS} --force --engines {}` \
             (one job, the four platforms one after another). Two engines: the same with \
             `--engines {},unix:///tmp/kbb<pid>/d.sock`, a second dockerd the bench starts on this machine \
             (one job per platform, one at a time on each engine). \
             Both engines share this machine's {} cores: `--cpus {CPUS}` per build container stands in \
             for two one-CPU machines, not a measure of two real ones.\n",
            self.one,
            self.two,
            self.throughput_ratio(),
            if self.runs == 1 {
                "One run each".to_string()
            } else {
                format!("Medians of {} runs, interleaved", self.runs)
            },
            platform_flags(),
            self.main_engine,
            self.main_engine,
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(0),
        )
    }
}

fn platform_flags() -> String {
    PLATFORMS
        .iter()
        .map(|p| format!("--platform {p}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs the comparison `runs` times each way on the tagged tree at `tree`.
pub fn measure(kbuild: &Path, tree: &Path, work: &Path, runs: usize) -> Result<Measured, Failure> {
    step("bench e: one engine against two (starting a second dockerd)");
    let second = SecondEngine::start()?;
    let main_engine = main_endpoint();
    let both = format!("{main_engine},{}", second.docker_host());
    let out = work.join("engines-out");
    let build = |engines: &str, limited: bool| {
        let mut cmd = Command::new(kbuild);
        cmd.args(["--quiet", "build", "kubectl", "--image", IMAGE, "--force"])
            .args(PLATFORMS.iter().flat_map(|p| ["--platform", p]))
            .arg("--kube-root")
            .arg(tree)
            .arg("--out")
            .arg(&out)
            .args(["--engines", engines]);
        if limited {
            cmd.args(["--cpus", CPUS]);
        }
        cmd
    };
    let with_log = |result: Result<f64, Failure>| {
        result.map_err(|f| {
            Failure::with_code(
                format!(
                    "{}\n--- the bench's second dockerd ---\n{}",
                    f.message,
                    second.log()
                ),
                f.code,
            )
        })
    };

    step("bench e: warming the Go caches of both engines (not measured)");
    for engine in [main_engine.as_str(), second.docker_host().as_str()] {
        with_log(time(&mut build(engine, false)))?;
    }
    let mut one = Vec::new();
    let mut two = Vec::new();
    for i in 0..runs {
        step(&format!("bench e: run {} of {runs}", i + 1));
        one.push(with_log(time(&mut build(&main_engine, true)))?);
        two.push(with_log(time(&mut build(&both, true)))?);
    }
    remove_dir(&out);
    drop(second);
    Ok(Measured {
        one: median(one),
        two: median(two),
        runs,
        main_engine,
    })
}

/// This machine's engine as the docker CLI finds it (DOCKER_HOST or the docker context).
fn main_endpoint() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            util::output(Command::new("docker").args([
                "context",
                "inspect",
                "--format",
                "{{.Endpoints.docker.Host}}",
            ]))
            .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| "unix:///var/run/docker.sock".to_string())
}
