//! `cargo xtask`: developer tasks for kbuild.
//!
//! std only, so it compiles in a moment. Every task runs from the workspace root.
//!
//!   cargo xtask builder-image [--force]   make the local builder image (Debian trixie + Go 1.24)
//!   cargo xtask test [ARGS...]            builder-image, then `cargo test --workspace ARGS...`, timed
//!   cargo xtask demo                      builder-image, then a quick-release of a tagged git copy of the fixture (recipes/mini-kube.toml)
//!   cargo xtask bench [--quick]           benchmarks against the upstream way -> bench/results.md
//!   cargo xtask ci [ARGS...]              fmt --check, clippy -D warnings, then `test ARGS...`

mod bench;
mod builder_image;
mod demo;
mod deny;
mod modgraph;
mod packages;
mod testtimes;
mod util;

use std::path::Path;
use std::process::ExitCode;

use util::{cargo, run, Failure};

const USAGE: &str = "\
usage: cargo xtask <task> [options]

tasks:
  builder-image [--force]  make the local builder image from Debian packages (no registry needed);
                           does nothing when it is present, unless --force
  test [ARGS...]           builder-image, then `cargo test --workspace ARGS...` (cargo args, then
                           `--` and test args); names the ten slowest tests and the total time
  demo                     builder-image, a git copy of the mini-kube fixture tagged v1.34.0 in
                           target/demo/mini-kube, then `kbuild run recipes/mini-kube.toml` (a
                           quick-release of it for linux/amd64, darwin/arm64, windows/amd64) and
                           `kbuild verify`; results in out/mini-kube
  bench [--quick]          kbuild against the upstream way, side by side; writes bench/results.md
                           (--quick: a, e and f once each, to target/bench-quick.md)
  lint                     no circle in src/'s module graph, cargo fmt --check,
                           cargo clippy --all-targets -D warnings and cargo deny (deny.toml)
  ci [ARGS...]             cargo fmt --check, cargo clippy -D warnings, then `test ARGS...`
  help                     this text
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match dispatch(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            if !failure.message.is_empty() {
                eprintln!("xtask: error: {}", failure.message);
            }
            ExitCode::from(failure.code)
        }
    }
}

fn dispatch(args: &[String]) -> Result<(), Failure> {
    let root = util::workspace_root();
    std::env::set_current_dir(&root)
        .map_err(|e| Failure::new(format!("cannot enter {}: {e}", root.display())))?;

    let (task, rest) = match args.split_first() {
        Some((task, rest)) => (task.as_str(), rest),
        None => {
            eprint!("{USAGE}");
            return Err(Failure::with_code(String::new(), 2));
        }
    };
    match task {
        "builder-image" => {
            let mut force = false;
            for arg in rest {
                match arg.as_str() {
                    "--force" | "-f" => force = true,
                    "-h" | "--help" => {
                        print!("{USAGE}");
                        return Ok(());
                    }
                    other => {
                        return Err(usage_error(format!(
                            "builder-image: unknown option {other:?}"
                        )))
                    }
                }
            }
            builder_image::ensure(&root, force)
        }
        "test" => test(&root, rest),
        "bench" => bench::run_bench(&root, rest),
        "demo" => {
            if let Some(arg) = rest.first() {
                return Err(usage_error(format!("demo takes no arguments, got {arg:?}")));
            }
            demo::run_demo(&root)
        }
        "ci" => ci(&root, rest),
        "lint" => lint(),
        "help" | "-h" | "--help" => {
            print!("{USAGE}");
            Ok(())
        }
        other => Err(usage_error(format!("unknown task {other:?}"))),
    }
}

fn usage_error(message: String) -> Failure {
    eprint!("{USAGE}");
    Failure::with_code(message, 2)
}

/// The test packages and the builder image, then the whole workspace's tests (they name the
/// image by its constant, `kbuild-builder:go1.24-trixie`), each timed, the slowest named.
/// ARGS before a `--` go to cargo, those after it to the test binaries.
fn test(root: &Path, extra: &[String]) -> Result<(), Failure> {
    let started = std::time::Instant::now();
    packages::ensure()?;
    packages::ensure_pypi()?;
    builder_image::ensure(root, false)?;
    util::step("cargo test --workspace");
    let (cargo_args, test_args) = match extra.iter().position(|a| a == "--") {
        Some(at) => (&extra[..at], &extra[at + 1..]),
        None => (extra, &[][..]),
    };
    let mut cmd = cargo();
    // The timings test renders its page in chromium, installed above: it must not skip here.
    cmd.arg("test")
        .arg("--workspace")
        .args(cargo_args)
        .env("KBUILD_REQUIRE_CHROMIUM", "1");
    let tested = testtimes::run_timed(cmd, test_args);
    println!(
        "==> cargo xtask test took {:.0} s (packages, builder image and tests)",
        started.elapsed().as_secs_f64()
    );
    tested
}

/// The gates before the tests: layers that call only down, formatting and lints.
fn lint() -> Result<(), Failure> {
    util::step("module graph of src/ (layers call only down)");
    module_graph()?;

    util::step("cargo fmt --check");
    run(cargo().args(["fmt", "--all", "--", "--check"]))?;

    util::step("cargo clippy --all-targets -D warnings");
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;

    deny::check(&util::workspace_root())
}

/// Fails naming every circle in src/'s module graph, with a reference for each step.
fn module_graph() -> Result<(), Failure> {
    let graph = modgraph::read(Path::new("src"))
        .map_err(|e| Failure::new(format!("cannot read src/: {e}")))?;
    let (breaches, unplaced) = modgraph::layer_breaches(&graph);
    for module in &unplaced {
        eprintln!("src/{module}: in no layer; add it to LAYERS in xtask/src/modgraph.rs");
    }
    for (from, to, site) in &breaches {
        eprintln!(
            "{from} ({}) refers up to {to} ({}): {}:{} names {}",
            layer_name(from),
            layer_name(to),
            site.file.display(),
            site.line,
            site.path
        );
    }
    if !breaches.is_empty() || !unplaced.is_empty() {
        return Err(Failure::new(format!(
            "{} reference(s) climb to a higher layer and {} module(s) have none: a layer calls only down (move the shared item down, or pass the value in from above)",
            breaches.len(),
            unplaced.len()
        )));
    }
    let circles = modgraph::layer_circles(&graph);
    if circles.is_empty() {
        println!("no circles among {} modules", graph.len());
        return Ok(());
    }
    for (view, circle) in &circles {
        eprintln!("{}", modgraph::describe(view, circle));
    }
    Err(Failure::new(format!(
        "{} module circle(s) in src/: make one side call only down (move what both use to the lower module, or have the caller above call both)",
        circles.len()
    )))
}

fn layer_name(module: &str) -> &'static str {
    modgraph::rank(module).map_or("no layer", |r| modgraph::LAYERS[r].0)
}

fn ci(root: &Path, extra: &[String]) -> Result<(), Failure> {
    lint()?;
    test(root, extra)
}
