//! `cargo xtask bench`: kbuild against the upstream way, side by side in one run on this
//! machine, written as medians and ratios to bench/results.md (which the README quotes) and
//! bench/results.json. It reports figures; it asserts nothing about time.
//!
//!   a. packaging, two scenarios against the upstream way and pigz, with the lower bound
//!      this machine's single-core rates imply and kbuild's peak memory (`packaging`);
//!   b. a no-op rebuild: `kbuild build` again with nothing changed, against a raw warm
//!      `docker run ... make all WHAT=cmd/kubectl`;
//!   c. a cold build: kbuild's first build against a raw `docker run` from empty caches;
//!   d. a one-file change: rebuild after editing one Go file, kbuild against raw, warm;
//!   e. several engines: a four-platform client build with `--cpus 1` on one engine against
//!      two, the second a dockerd the bench starts (`engines`, `second_engine`);
//!   f. incremental source sync: a first sync and a one-file resync of the fixture padded
//!      to about 200 MB (`sync`);
//!   g. fan-out on compile work: kubectl for two platforms from empty Go caches, `--cpus 1`,
//!      on one engine, on two, and as two raw `docker run`s at once, the ceiling (`fanout`);
//!   h. the travelling cache: a one-file rebuild on the warm engine, on a fresh engine with
//!      the exported cache imported, and on one without; export plus import against a cold
//!      build (`warmcache`).
//!
//! `cargo xtask bench --quick` runs the packaging scenarios, e, g and h once each, and f,
//! and prints them (written to target/bench-quick.md, not bench/): a check that the
//! benchmark works, not figures to quote. `--only LETTERS` (with --quick) runs just those of
//! a, e, f, g and h, e.g. `--quick --only gh`.

mod engines;
mod fanout;
mod packaging;
mod second_engine;
mod sync;
mod warmcache;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::builder_image::IMAGE;
use crate::util::{self, cargo, run, step, Failure};

/// How often each cheap measurement is repeated (the median is reported).
const RUNS: usize = 5;
/// How often each packaging scenario runs each way (tens of seconds a run on two cores).
const PACKAGING_RUNS: usize = 3;
/// How often each expensive (cold or rebuilding) measurement is repeated.
const BUILD_RUNS: usize = 3;
/// The version stamped in every build of the benchmark.
const VERSION: &str = "v1.34.0";

struct Figure {
    name: &'static str,
    kbuild: f64,
    upstream: f64,
    unit: &'static str,
    target: &'static str,
    kbuild_cmd: String,
    upstream_cmd: String,
}

pub fn run_bench(root: &Path, args: &[String]) -> Result<(), Failure> {
    let (quick, only) = parse_args(args)?;
    let wanted = |letter: char| only.as_ref().is_none_or(|o| o.contains(letter));
    // Leaves out the packaging scenarios of a quick check (they build six Go commands cold
    // first): for checking the others alone on a busy machine.
    let skip_packaging =
        !wanted('a') || (quick && std::env::var_os("KBUILD_BENCH_SKIP_PACKAGING").is_some());
    crate::builder_image::ensure(root, false)?;
    packaging::ensure_pigz()?;
    step("cargo build --release --bin kbuild --example pack-limits");
    run(cargo().args([
        "build",
        "--release",
        "--bin",
        "kbuild",
        "--example",
        "pack-limits",
    ]))?;
    let kbuild = root.join("target/release/kbuild");
    let limits = root.join("target/release/examples/pack-limits");
    let work = root.join("target/bench");
    remove_dir(&work);
    std::fs::create_dir_all(&work)
        .map_err(|e| Failure::new(format!("cannot create {}: {e}", work.display())))?;
    let tree = work.join("tree");
    make_tree(root, &tree)?;

    let runs = if quick { 1 } else { PACKAGING_RUNS };
    let mut packed = Vec::new();
    let scenarios = if skip_packaging {
        Vec::new()
    } else {
        packaging::scenarios(&work)?
    };
    for scenario in scenarios {
        packed.push(packaging::measure(
            &scenario, &kbuild, &limits, &tree, &work, runs,
        )?);
    }
    let build_runs = if quick { 1 } else { BUILD_RUNS };
    let fleet = if wanted('e') {
        Some(engines::measure(&kbuild, &tree, &work, build_runs)?)
    } else {
        None
    };
    let synced = if wanted('f') {
        let sync_tree = work.join("sync-tree");
        make_tree(root, &sync_tree)?;
        Some(sync::measure(&kbuild, &sync_tree, &work)?)
    } else {
        None
    };
    let fanned = if wanted('g') {
        Some(fanout::measure(&kbuild, &tree, &work, build_runs)?)
    } else {
        None
    };
    let travelled = if wanted('h') {
        Some(warmcache::measure(&kbuild, &tree, &work, build_runs)?)
    } else {
        None
    };
    if quick {
        let left_out = || "(left out: not in --only)\n".to_string();
        let md = format!(
            "# kbuild benchmark, quick check (one run each: not figures to quote)\n\n\
             ## a. Packaging\n\n{}\n## e. One engine against two\n\n{}\n## f. Incremental source sync\n\n{}\n\
             ## g. Fan-out on compile work\n\n{}\n## h. The travelling cache\n\n{}",
            if skip_packaging {
                "(left out: KBUILD_BENCH_SKIP_PACKAGING or --only)\n".to_string()
            } else {
                packaging::markdown(&packed, runs)
            },
            fleet.as_ref().map_or_else(left_out, engines::Measured::markdown),
            synced.as_ref().map_or_else(left_out, sync::Measured::markdown),
            fanned.as_ref().map_or_else(left_out, fanout::Measured::markdown),
            travelled.as_ref().map_or_else(left_out, warmcache::Measured::markdown),
        );
        print!("{md}");
        let path = root.join("target/bench-quick.md");
        std::fs::write(&path, md).map_err(|e| Failure::new(e.to_string()))?;
        println!("written to {}", path.display());
        remove_dir(&work);
        return Ok(());
    }
    let measured = (fleet, synced, fanned, travelled);
    let (Some(fleet), Some(synced), Some(fanned), Some(travelled)) = measured else {
        return Err(Failure::with_code("bench: --only goes with --quick", 2));
    };
    let figures = builds(&kbuild, &tree, &work)?;
    let scenarios = Scenarios {
        fleet,
        synced,
        fanned,
        travelled,
    };
    write_results(root, &packed, &figures, &scenarios)?;
    remove_dir(&work);
    Ok(())
}

/// `[--quick] [--only LETTERS]`.
fn parse_args(args: &[String]) -> Result<(bool, Option<String>), Failure> {
    let mut quick = false;
    let mut only = None;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--quick" => quick = true,
            "--only" => {
                let letters = rest
                    .next()
                    .filter(|l| !l.is_empty() && l.chars().all(|c| "aefgh".contains(c)));
                only = Some(letters.cloned().ok_or_else(|| {
                    Failure::with_code("bench: --only takes letters of a, e, f, g and h", 2)
                })?);
            }
            other => {
                return Err(Failure::with_code(
                    format!(
                    "bench: unknown option {other:?} (the options are --quick and --only LETTERS)"
                ),
                    2,
                ))
            }
        }
    }
    if only.is_some() && !quick {
        return Err(Failure::with_code(
            "bench: --only goes with --quick (bench/results.md holds every scenario of one run)",
            2,
        ));
    }
    Ok((quick, only))
}

/// The measured scenarios e to h of a full run.
struct Scenarios {
    fleet: engines::Measured,
    synced: sync::Measured,
    fanned: fanout::Measured,
    travelled: warmcache::Measured,
}

/// A copy of the fixture as a git repository tagged v1.34.0, like the tests make.
fn make_tree(root: &Path, tree: &Path) -> Result<(), Failure> {
    run(Command::new("cp")
        .arg("-a")
        .arg(root.join("tests/fixtures/mini-kube"))
        .arg(tree))?;
    remove_dir(&tree.join("_output"));
    for args in [
        vec!["init", "-q", "-b", "master"],
        vec!["add", "-A"],
        vec![
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@kbuild.invalid",
            "commit",
            "-q",
            "-m",
            "bench",
        ],
        vec![
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@kbuild.invalid",
            "tag",
            "-a",
            VERSION,
            "-m",
            VERSION,
        ],
    ] {
        run(Command::new("git").args(&args).current_dir(tree))?;
    }
    Ok(())
}

/// Seconds one run of `cmd` takes; a failing run is a failure of the benchmark.
fn time(cmd: &mut Command) -> Result<f64, Failure> {
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let start = Instant::now();
    let status = cmd
        .status()
        .map_err(|e| Failure::new(format!("cannot run {}: {e}", util::show(cmd))))?;
    let took = start.elapsed().as_secs_f64();
    util::check(cmd, status)?;
    Ok(took)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn sh(script: &str) -> Command {
    let mut cmd = Command::new("bash");
    cmd.args(["-euo", "pipefail", "-c", script]);
    cmd
}

fn uid_gid() -> String {
    let id =
        |flag: &str| util::output(Command::new("id").arg(flag)).unwrap_or_else(|| "0".to_string());
    format!("{}:{}", id("-u").trim(), id("-g").trim())
}

/// `docker run --rm --network none` as the build user (HOME=/tmp, since the user may
/// have no home in the image).
fn docker_run_as_user() -> Command {
    let mut cmd = Command::new("docker");
    cmd.args(["run", "--rm", "--network", "none", "--user", &uid_gid()])
        .args(["-e", "HOME=/tmp"]);
    cmd
}

/// A fresh volume belongs to root: hand it to the build user, as kbuild does for its caches.
fn chown_volume(volume: &str) -> Result<(), Failure> {
    run(Command::new("docker")
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
        .stdout(Stdio::null()))
}

/// b, c, d: builds of kubectl for linux/amd64.
fn builds(kbuild: &Path, tree: &Path, work: &Path) -> Result<[Figure; 4], Failure> {
    step("bench b-d: builds");
    let out = work.join("build-out");
    let kbuild_build = |extra: &[&str]| {
        let mut cmd = Command::new(kbuild);
        cmd.args([
            "--quiet",
            "build",
            "kubectl",
            "--platform",
            "linux/amd64",
            "--image",
            IMAGE,
        ])
        .arg("--kube-root")
        .arg(tree)
        .arg("--out")
        .arg(&out)
        .args(extra);
        cmd
    };
    let commit = util::output(
        Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(tree),
    )
    .unwrap_or_default();
    let raw = |volume: &str, state: &str| {
        let mut cmd = docker_run_as_user();
        cmd.args(["-e", "GOCACHE=/cache/go-build"])
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
                "KUBE_BUILD_PLATFORMS=linux/amd64",
                "KUBE_OUTPUT_SUBPATH=_output/dockerized",
            ])
            .arg(format!("KUBE_GIT_VERSION={VERSION}"))
            .arg(format!("KUBE_GIT_COMMIT={}", commit.trim()))
            .arg(format!("KUBE_GIT_TREE_STATE={state}"))
            .arg("SOURCE_DATE_EPOCH=1700000000");
        cmd
    };
    let raw_cmd = "docker run --rm -v <tree>:/go/src/k8s.io/kubernetes -v <cache>:/cache -e GOCACHE=/cache/go-build <image> make all WHAT=cmd/kubectl KUBE_BUILD_PLATFORMS=linux/amd64";
    // Cold means cold: a cache volume that cannot be removed (another build is using it)
    // stops the benchmark rather than reporting a warm build as a cold one.
    let drop_volumes = |filter: &str| -> Result<(), Failure> {
        let list =
            util::output(Command::new("docker").args(["volume", "ls", "-q", "--filter", filter]));
        for v in list.unwrap_or_default().split_whitespace() {
            run(Command::new("docker").args(["volume", "rm", "-f", v]).stdout(Stdio::null())).map_err(|_| {
                Failure::new(format!(
                    "cannot remove the cache volume {v}: stop other kbuild runs and tests, then run the benchmark again"
                ))
            })?;
        }
        Ok(())
    };
    step("bench c: cold builds from empty caches");
    let mut kbuild_cold = Vec::new();
    let mut raw_cold = Vec::new();
    for i in 0..BUILD_RUNS {
        drop_volumes("label=io.kbuild.cache")?;
        remove_dir(&out);
        remove_dir(&tree.join("_output"));
        kbuild_cold.push(time(&mut kbuild_build(&[]))?);
        let volume = format!("kbuild-bench-cold-{i}");
        remove_dir(&tree.join("_output"));
        chown_volume(&volume)?;
        raw_cold.push(time(&mut raw(&volume, "clean"))?);
        let _ = Command::new("docker")
            .args(["volume", "rm", "-f", &volume])
            .stdout(Stdio::null())
            .status();
    }

    step("bench b: no-op rebuilds");
    let warm = "kbuild-bench-warm";
    chown_volume(warm)?;
    time(&mut raw(warm, "clean"))?;
    time(&mut kbuild_build(&[]))?;
    let mut kbuild_noop = Vec::new();
    let mut raw_warm = Vec::new();
    for _ in 0..RUNS {
        kbuild_noop.push(time(&mut kbuild_build(&[]))?);
        raw_warm.push(time(&mut raw(warm, "clean"))?);
    }

    step("bench d: one-file change");
    let main = tree.join("cmd/kubectl/main.go");
    let original = std::fs::read_to_string(&main).map_err(|e| Failure::new(e.to_string()))?;
    let mut kbuild_edit = Vec::new();
    let mut raw_edit = Vec::new();
    for i in 0..BUILD_RUNS {
        let edit =
            |n: usize| std::fs::write(&main, format!("{original}\nvar benchEdit = \"{n}\"\n"));
        edit(2 * i).map_err(|e| Failure::new(e.to_string()))?;
        kbuild_edit.push(time(&mut kbuild_build(&[]))?);
        edit(2 * i + 1).map_err(|e| Failure::new(e.to_string()))?;
        raw_edit.push(time(&mut raw(warm, "dirty"))?);
    }
    std::fs::write(&main, original).map_err(|e| Failure::new(e.to_string()))?;
    let _ = Command::new("docker")
        .args(["volume", "rm", "-f", warm])
        .stdout(Stdio::null())
        .status();

    let raw_warm_median = median(raw_warm);
    Ok([
        Figure {
            name: "b. no-op rebuild (nothing changed)",
            kbuild: median(kbuild_noop),
            upstream: raw_warm_median,
            unit: "s",
            target: "<= 0.05 (and <= 0.5 s wall)",
            kbuild_cmd: "kbuild build kubectl --platform linux/amd64 (second run)".into(),
            upstream_cmd: format!("{raw_cmd} (warm cache)"),
        },
        Figure {
            name: "c. cold build (empty caches)",
            kbuild: median(kbuild_cold),
            upstream: median(raw_cold),
            unit: "s",
            target: "<= 1.10",
            kbuild_cmd: "kbuild build kubectl --platform linux/amd64 (cache volume removed)".into(),
            upstream_cmd: format!("{raw_cmd} (fresh volume)"),
        },
        Figure {
            name: "d. one-file change, against the raw warm rebuild",
            kbuild: median(kbuild_edit.clone()),
            upstream: raw_warm_median,
            unit: "s",
            target: "<= 1.2",
            kbuild_cmd: "edit cmd/kubectl/main.go; kbuild build kubectl --platform linux/amd64"
                .into(),
            upstream_cmd: format!("{raw_cmd} (warm cache, nothing changed)"),
        },
        Figure {
            name: "d'. one-file change, both after the same kind of edit",
            kbuild: median(kbuild_edit),
            upstream: median(raw_edit),
            unit: "s",
            target: "(like for like)",
            kbuild_cmd: "edit cmd/kubectl/main.go; kbuild build kubectl --platform linux/amd64"
                .into(),
            upstream_cmd: format!("edit cmd/kubectl/main.go; {raw_cmd} (warm cache)"),
        },
    ])
}

fn write_results(
    root: &Path,
    packed: &[packaging::Measured],
    figures: &[Figure],
    scenarios: &Scenarios,
) -> Result<(), Failure> {
    let Scenarios {
        fleet,
        synced,
        fanned,
        travelled,
    } = scenarios;
    let machine = format!(
        "{} CPUs, {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        util::output(Command::new("docker").args([
            "version",
            "--format",
            "Docker {{.Server.Version}}"
        ]))
        .unwrap_or_default()
        .trim()
    );
    let mut md = String::new();
    let _ = writeln!(md, "# kbuild benchmark results\n");
    let _ = writeln!(md, "Written by `cargo xtask bench` on {machine}; medians of {PACKAGING_RUNS} runs for packaging, {RUNS} for no-op rebuilds, {BUILD_RUNS} for other builds, all in one run.\n");
    let size = binary_size(root);
    let _ = writeln!(
        md,
        "The release binary, `target/release/kbuild`: {:.1} MB ({size} bytes; Cargo.toml's release profile: thin LTO, one codegen unit, symbols stripped).\n",
        size as f64 / 1e6
    );
    let _ = writeln!(md, "## a. Packaging\n");
    md.push_str(&packaging::markdown(packed, PACKAGING_RUNS));
    let _ = writeln!(md, "\n## b-d. Builds\n");
    let _ = writeln!(
        md,
        "| comparison | kbuild | upstream way | ratio | target |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|");
    for f in figures {
        let _ = writeln!(
            md,
            "| {} | {:.3} {} | {:.3} {} | {:.3} | {} |",
            f.name,
            f.kbuild,
            f.unit,
            f.upstream,
            f.unit,
            f.kbuild / f.upstream,
            f.target
        );
    }
    let _ = writeln!(md, "\nCommands:\n");
    for f in figures {
        let _ = writeln!(
            md,
            "- {}: kbuild `{}`; upstream way: `{}`",
            f.name, f.kbuild_cmd, f.upstream_cmd
        );
    }
    let _ = writeln!(md, "\n## e. One engine against two\n");
    md.push_str(&fleet.markdown());
    let _ = writeln!(md, "\n## f. Incremental source sync\n");
    md.push_str(&synced.markdown());
    let _ = writeln!(md, "\n## g. Fan-out on compile work\n");
    md.push_str(&fanned.markdown());
    let _ = writeln!(md, "\n## h. The travelling cache\n");
    md.push_str(&travelled.markdown());
    let mut json = format!("{{\n  \"binary_bytes\": {size},\n  \"packaging\": [\n");
    for (i, m) in packed.iter().enumerate() {
        let _ = writeln!(
            json,
            "    {{\"name\": {:?}, \"kbuild_s\": {:.4}, \"upstream_s\": {:.4}, \"pigz_s\": {:.4}, \"lower_bound_s\": {:.4}, \"kbuild_bytes\": {}, \"upstream_bytes\": {}, \"peak_rss_mb\": {:.1}}}{}",
            m.name,
            m.kbuild,
            m.upstream,
            m.pigz,
            m.limit,
            m.kbuild_bytes,
            m.upstream_bytes,
            m.peak_rss_mb,
            if i + 1 < packed.len() { "," } else { "" }
        );
    }
    json.push_str("  ],\n  \"figures\": [\n");
    for (i, f) in figures.iter().enumerate() {
        let _ = writeln!(
            json,
            "    {{\"name\": {:?}, \"kbuild\": {:.4}, \"upstream\": {:.4}, \"unit\": {:?}, \"ratio\": {:.4}, \"target\": {:?}}}{}",
            f.name,
            f.kbuild,
            f.upstream,
            f.unit,
            f.kbuild / f.upstream,
            f.target,
            if i + 1 < figures.len() { "," } else { "" }
        );
    }
    json.push_str("  ],\n");
    let _ = writeln!(
        json,
        "  \"engines\": {{\"one_engine_s\": {:.4}, \"two_engines_s\": {:.4}, \"throughput_ratio\": {:.4}, \"runs\": {}}},",
        fleet.one,
        fleet.two,
        fleet.throughput_ratio(),
        fleet.runs
    );
    let _ = writeln!(
        json,
        "  \"sync\": {{\"tree_bytes\": {}, \"first_bytes\": {}, \"first_files\": {}, \"first_s\": {:.4}, \"resync_bytes\": {}, \"resync_files\": {}, \"resync_s\": {:.4}}}",
        synced.tree_bytes,
        synced.first.bytes,
        synced.first.files,
        synced.first.seconds,
        synced.resync.bytes,
        synced.resync.files,
        synced.resync.seconds
    );
    let _ = writeln!(
        json,
        "  ,\"fanout\": {{\"one_engine_s\": {:.4}, \"two_engines_s\": {:.4}, \"raw_parallel_s\": {:.4}, \"before_jobs_s\": {:.4}, \"after_jobs_s\": {:.4}, \"speedup\": {:.4}, \"against_ceiling\": {:.4}, \"separate_machines\": {:.4}, \"runs\": {}}}",
        fanned.one,
        fanned.two,
        fanned.raw_parallel,
        fanned.before_jobs,
        fanned.after_jobs,
        fanned.speedup(),
        fanned.against_ceiling(),
        fanned.separate_machines(),
        fanned.runs
    );
    let _ = writeln!(
        json,
        "  ,\"travelling_cache\": {{\"warm_local_s\": {:.4}, \"fresh_imported_s\": {:.4}, \"fresh_cold_s\": {:.4}, \"export_s\": {:.4}, \"import_s\": {:.4}, \"runs\": {}}}",
        travelled.warm_local,
        travelled.fresh_imported,
        travelled.fresh_cold,
        travelled.export,
        travelled.import,
        travelled.runs
    );
    json.push_str("}\n");
    let dir = root.join("bench");
    std::fs::create_dir_all(&dir).map_err(|e| Failure::new(e.to_string()))?;
    std::fs::write(dir.join("results.md"), &md).map_err(|e| Failure::new(e.to_string()))?;
    std::fs::write(dir.join("results.json"), &json).map_err(|e| Failure::new(e.to_string()))?;
    print!("{md}");
    println!("written to bench/results.md and bench/results.json");
    Ok(())
}

/// The size of the release binary the bench built and ran.
fn binary_size(root: &Path) -> u64 {
    std::fs::metadata(root.join("target/release/kbuild")).map_or(0, |m| m.len())
}

fn remove_dir(dir: &PathBuf) {
    if dir.exists() {
        // Go's module cache and some outputs are read-only; make them removable first.
        let _ = Command::new("chmod").args(["-R", "u+w"]).arg(dir).status();
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
    }
}
