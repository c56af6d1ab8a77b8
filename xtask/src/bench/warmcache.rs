//! h. The travelling cache's effect (issue 25): the rebuild after a one-file change
//!
//! - on a warm engine (a dockerd of the bench's own, so its cache holds what this job built
//!   and nothing the other scenarios left: the cache a CI run of this job would save);
//! - on a fresh engine (the bench's second dockerd with no volumes) given the warm engine's
//!   exported Go cache (`kbuild cache import`);
//! - on a fresh engine without one, which is a cold build.
//!
//! And what the cache's journey costs: `kbuild cache export` on the warm engine plus `kbuild
//! cache import` on the fresh one, against that cold build. Each run edits
//! cmd/kubectl/main.go anew, so every build has one changed file to compile.

use std::path::Path;
use std::process::Command;

use super::fanout::drop_volumes;
use super::second_engine::SecondEngine;
use super::{median, remove_dir, time};
use crate::builder_image::IMAGE;
use crate::util::{step, Failure};

const PLATFORM: &str = "linux/amd64";

pub struct Measured {
    pub warm_local: f64,
    pub fresh_imported: f64,
    pub fresh_cold: f64,
    pub export: f64,
    pub import: f64,
    pub runs: usize,
}

impl Measured {
    pub fn imported_against_warm(&self) -> f64 {
        self.fresh_imported / self.warm_local
    }

    pub fn cold_against_warm(&self) -> f64 {
        self.fresh_cold / self.warm_local
    }

    /// What export plus import add to a cold build, as a share of it.
    pub fn journey_share(&self) -> f64 {
        (self.export + self.import) / self.fresh_cold
    }

    pub fn markdown(&self) -> String {
        let runs = if self.runs == 1 {
            "One run each".to_string()
        } else {
            format!("Medians of {} runs, alternating", self.runs)
        };
        format!(
            "| rebuild after a one-file change, kubectl {PLATFORM} | seconds | against the warm local rebuild | target |\n\
             |---|---|---|---|\n\
             | warm local engine | {:.1} | 1.00x | |\n\
             | fresh engine with the imported cache | {:.1} | {:.2}x | <= 1.3x |\n\
             | fresh engine without a cache (a cold build) | {:.1} | {:.2}x | |\n\n\
             | the cache's journey | seconds | share of the cold build | target |\n\
             |---|---|---|---|\n\
             | `kbuild cache export DIR.tar` (warm engine) | {:.1} | {:.1} % | |\n\
             | `kbuild cache import DIR.tar` (fresh engine) | {:.1} | {:.1} % | |\n\
             | both | {:.1} | {:.1} % | <= 10 % |\n\n\
             {runs}. Both engines are dockerds the bench starts: the warm one's cache holds only what \
             this job built (the cache a CI run of it would save); the fresh one is another with its kbuild volumes \
             removed before each build (the builder image stays loaded, as a CI runner pulls it).\n",
            self.warm_local,
            self.fresh_imported,
            self.imported_against_warm(),
            self.fresh_cold,
            self.cold_against_warm(),
            self.export,
            100.0 * self.export / self.fresh_cold,
            self.import,
            100.0 * self.import / self.fresh_cold,
            self.export + self.import,
            100.0 * self.journey_share(),
        )
    }
}

pub fn measure(kbuild: &Path, tree: &Path, work: &Path, runs: usize) -> Result<Measured, Failure> {
    step("bench h: the travelling cache (starting two dockerds of the bench's own)");
    let warm_engine = SecondEngine::start_nth(1)?;
    let second = SecondEngine::start()?;
    let main = warm_engine.docker_host();
    let fresh = second.docker_host();
    let archive = work.join("go-cache.tar");
    let source = tree.join("cmd/kubectl/main.go");
    let original = std::fs::read_to_string(&source).map_err(|e| Failure::new(e.to_string()))?;
    let mut edits = 0usize;
    let mut edit = || {
        edits += 1;
        std::fs::write(
            &source,
            format!("{original}\nvar benchEdit = \"{edits}\"\n"),
        )
        .map_err(|e| Failure::new(e.to_string()))
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
    let build = |host: &str, out: &str| {
        let mut cmd = Command::new(kbuild);
        cmd.args([
            "--quiet",
            "build",
            "kubectl",
            "--platform",
            PLATFORM,
            "--image",
            IMAGE,
        ])
        .arg("--kube-root")
        .arg(tree)
        .arg("--out")
        .arg(work.join(out))
        .env("DOCKER_HOST", host)
        .env_remove("DOCKER_CONTEXT");
        cmd
    };

    step("bench h: warming the warm engine (a cold build, not measured)");
    time(&mut build(&main, "warm-out"))?;

    let (mut warm, mut imported, mut cold) = (Vec::new(), Vec::new(), Vec::new());
    let (mut exports, mut imports) = (Vec::new(), Vec::new());
    for i in 0..runs {
        step(&format!("bench h: run {} of {runs}", i + 1));
        edit()?;
        warm.push(time(&mut build(&main, "warm-out"))?);

        let _ = std::fs::remove_file(&archive);
        let mut export = Command::new(kbuild);
        export
            .args(["--quiet", "cache", "export", "--image", IMAGE])
            .arg(&archive)
            .env("DOCKER_HOST", &main)
            .env_remove("DOCKER_CONTEXT");
        exports.push(time(&mut export)?);

        drop_volumes(&fresh, "label=io.kbuild.cache")?;
        remove_dir(&work.join("fresh-out"));
        let mut import = Command::new(kbuild);
        import
            .args([
                "--quiet",
                "cache",
                "import",
                "--image",
                IMAGE,
                "--engines",
                &fresh,
            ])
            .arg(&archive);
        imports.push(with_log(time(&mut import))?);
        edit()?;
        imported.push(with_log(time(&mut build(&fresh, "fresh-out")))?);

        drop_volumes(&fresh, "label=io.kbuild.cache")?;
        remove_dir(&work.join("fresh-out"));
        edit()?;
        cold.push(with_log(time(&mut build(&fresh, "fresh-out")))?);
    }
    std::fs::write(&source, original).map_err(|e| Failure::new(e.to_string()))?;
    let _ = std::fs::remove_file(&archive);
    for out in ["warm-out", "fresh-out"] {
        remove_dir(&work.join(out));
    }
    drop(second);
    drop(warm_engine);
    Ok(Measured {
        warm_local: median(warm),
        fresh_imported: median(imported),
        fresh_cold: median(cold),
        export: median(exports),
        import: median(imports),
        runs,
    })
}
