//! Several engines in one run (`--engines`), against the main engine and a second real
//! dockerd (tests/it/engines.rs): a quick-release split over both gives the tarballs of a
//! one-engine run, an engine lost mid-build has its job run again on the other, and an
//! engine that does not answer at the start is left out (or fails the run when every
//! engine is required). No engine leaves a labelled container behind.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::*;
use crate::engines::SecondEngine;

/// The machine's own engine, as `--engines` names it.
const MAIN_ENGINE: &str = "unix:///var/run/docker.sock";
/// Three platforms: the server and node sets for two of them, the client for all three
/// (three jobs on several engines: one per platform).
const PLATFORMS: &[&str] = &["linux/amd64", "linux/arm64", "darwin/arm64"];
/// Two platforms, two jobs: the server, node and client sets for one, the client for the
/// other.
const TWO_PLATFORMS: &[&str] = &["linux/amd64", "darwin/arm64"];
/// The provenance states the run's times (and the checksum lists its digest): the one file
/// of a release that two runs do not share.
const PROVENANCE: &str = "kubernetes-release.intoto.jsonl";
/// A file in the tree's `.git` (which every job sees: each job's `_output` is its own) that
/// holds every build job before it compiles, for as long as it exists (see `hold_builds`).
const HOLD: &str = ".git/kbuild-test-hold";
/// Four platforms, four jobs on four lanes.
const FOUR_PLATFORMS: &[&str] = &["linux/amd64", "linux/arm64", "darwin/arm64", "darwin/amd64"];
/// mini-kube's releases take megabytes: the machine's free disk need not fit Kubernetes'.
const SMALL_DISK: &[&str] = &["--min-disk", "2g"];
/// Where the jobs of `race_place_bins` meet (in `.git`, which every job sees).
const MEETING: &str = ".git/kbuild-test-meet";

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `kbuild quick-release` of `platforms` with `--json`, on `engines` (None: the one engine
/// kbuild finds, with DOCKER_HOST unset).
fn quick_release(
    repo: &Path,
    out: &Path,
    platforms: &[&str],
    engines: Option<&str>,
) -> std::process::Command {
    let mut cmd = kbuild();
    // The four jobs counted here are the binary sets': no test jobs.
    cmd.args([
        "quick-release",
        "--json",
        "--no-test-tarballs",
        "--no-images",
        "--kube-root",
        s(repo),
    ])
    .args(["--image", BUILDER_IMAGE, "--out", s(out)])
    .env_remove("DOCKER_HOST");
    for p in platforms {
        cmd.args(["--platform", p]);
    }
    if let Some(engines) = engines {
        cmd.args(["--engines", engines]);
    }
    cmd
}

/// The JSON events of a `--json` run's stdout.
fn events(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Which engine ran each job, from the run's `ran` events.
fn ran_on(events: &[serde_json::Value]) -> BTreeMap<String, String> {
    let mut ran = BTreeMap::new();
    for e in events.iter().filter(|e| e["event"] == "ran") {
        let job = e["job"].as_str().expect("a ran event names its job");
        let engine = e["engine"].as_str().expect("a ran event names its engine");
        assert!(
            e["started"].as_str().is_some() && e["finished"].as_str().is_some(),
            "and when: {e}"
        );
        let before = ran.insert(job.to_string(), engine.to_string());
        assert!(before.is_none(), "{job} reported twice as ran: {events:?}");
    }
    ran
}

/// The job each kbuild build container created on an engine since `since` was for, as the
/// engine's own event stream (`docker events`) tells: job -> how many containers.
fn created_jobs(docker_events: &str) -> BTreeMap<String, usize> {
    let mut jobs = BTreeMap::new();
    for line in docker_events.lines().filter(|l| !l.trim().is_empty()) {
        let event: serde_json::Value = serde_json::from_str(line).unwrap();
        let job = event["Actor"]["Attributes"]["io.kbuild.job"]
            .as_str()
            .unwrap_or_default();
        // The copy transfer's helper containers are not build jobs.
        if !job.is_empty() && job != "transfer" {
            *jobs.entry(job.to_string()).or_insert(0) += 1;
        }
    }
    jobs
}

/// `docker events` arguments for kbuild's container creations for the tree at `root`
/// (other tests build other trees on the same engines at the same time), from `since` on,
/// and until `until` when given (else the stream goes on).
fn creations_args(root: &Path, since: &str, until: Option<&str>) -> Vec<String> {
    let source = format!(
        "label=io.kbuild.source={}",
        root.canonicalize().unwrap().display()
    );
    let mut args: Vec<String> = ["events", "--since", since]
        .into_iter()
        .map(str::to_string)
        .collect();
    if let Some(until) = until {
        args.extend(["--until".to_string(), until.to_string()]);
    }
    for filter in ["event=create", "label=io.kbuild.managed", source.as_str()] {
        args.extend(["--filter".to_string(), filter.to_string()]);
    }
    args.extend(["--format".to_string(), "{{json .}}".to_string()]);
    args
}

/// What manifest.json's `plan.ran` and the provenance's `internalParameters.jobs` record:
/// job -> (engine that built it, planned engine, engines of its attempts).
type Record = BTreeMap<String, (String, String, Vec<String>)>;

fn record_of(jobs: &serde_json::Value) -> Record {
    jobs.as_array()
        .expect("a record of the jobs")
        .iter()
        .map(|j| {
            let attempts = j["attempts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["engine"].as_str().unwrap().to_string())
                .collect();
            (
                j["job"].as_str().unwrap().to_string(),
                (
                    j["engine"].as_str().unwrap().to_string(),
                    j["planned_engine"].as_str().unwrap().to_string(),
                    attempts,
                ),
            )
        })
        .collect()
}

/// The record in `<out>/release-tars`: manifest.json's, which the provenance must repeat.
fn recorded_run(out: &Path) -> Record {
    let tars = out.join("release-tars");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tars.join(MANIFEST)).unwrap()).unwrap();
    let provenance = std::fs::read_to_string(tars.join(PROVENANCE)).unwrap();
    let statement: serde_json::Value =
        serde_json::from_str(provenance.lines().next().unwrap()).unwrap();
    let recorded = record_of(&manifest["plan"]["ran"]);
    assert_eq!(
        record_of(&statement["predicate"]["buildDefinition"]["internalParameters"]["jobs"]),
        recorded,
        "the provenance records the run as the manifest does"
    );
    recorded
}

/// Now, as `docker events --since/--until` reads it.
fn unix_now() -> String {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string()
}

/// Messages of the run's events of kind `event` (warning, info, ...).
fn messages(events: &[serde_json::Value], event: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["event"] == event)
        .filter_map(|e| e["message"].as_str().map(str::to_string))
        .collect()
}

/// The files of `<out>/release-tars`, by name.
fn release_files(out: &Path) -> BTreeMap<String, Vec<u8>> {
    let dir = out.join("release-tars");
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(e.path()).unwrap())
        })
        .collect()
}

/// A checksum list without the lines of the provenance and the manifest, which record the
/// run (its times, its plan) and are compared on their own.
fn without_provenance(sums: &[u8]) -> String {
    String::from_utf8_lossy(sums)
        .lines()
        .filter(|l| !l.ends_with(PROVENANCE) && !l.ends_with(MANIFEST))
        .collect::<Vec<_>>()
        .join("\n")
}

/// manifest.json records the run's plan (its inputs, engines and output directory), so two
/// runs compare by what it says of the artifacts, not byte for byte.
const MANIFEST: &str = "manifest.json";

/// The two runs wrote the same release of `platforms`: the same files, byte for byte, but
/// the provenance (and its line in the checksum lists) and the manifest, which lists the
/// same source, toolchain and artifacts.
fn assert_same_release(fleet: &Path, one: &Path, platforms: &[&str]) {
    let (a, b) = (release_files(fleet), release_files(one));
    let names: Vec<&String> = a.keys().collect();
    assert_eq!(names, b.keys().collect::<Vec<_>>(), "the same files");
    for p in platforms {
        let client = format!("kubernetes-client-{}.tar.gz", p.replace('/', "-"));
        assert!(a.contains_key(&client), "{client} in {names:?}");
    }
    for (name, bytes) in &a {
        if name == PROVENANCE {
            continue;
        }
        if name == MANIFEST {
            assert_same_manifest(bytes, &b[name]);
        } else if name.starts_with("SHA") && name.ends_with("SUMS") {
            assert_eq!(
                without_provenance(bytes),
                without_provenance(&b[name]),
                "{name} differs between the two-engine and the one-engine run"
            );
        } else {
            assert!(
                *bytes == b[name],
                "{name} differs between the two-engine and the one-engine run"
            );
        }
    }
}

/// Two manifests list the same source, toolchain and artifacts (but the provenance's).
fn assert_same_manifest(a: &[u8], b: &[u8]) {
    let (a, b): (serde_json::Value, serde_json::Value) = (
        serde_json::from_slice(a).unwrap(),
        serde_json::from_slice(b).unwrap(),
    );
    for field in ["source", "toolchain", "notes"] {
        assert_eq!(a[field], b[field], "the manifests' {field} differ");
    }
    let artifacts = |m: &serde_json::Value| -> Vec<serde_json::Value> {
        m["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["file"] != PROVENANCE)
            .cloned()
            .collect()
    };
    assert!(artifacts(&a).len() > 3, "{a}");
    assert!(
        artifacts(&a) == artifacts(&b),
        "the manifests list different artifacts"
    );
}

/// Runs `cmd` and returns its events; panics with everything seen (and the second
/// engine's log) unless it exits 0.
fn succeed(
    cmd: &mut std::process::Command,
    engine: Option<&SecondEngine>,
) -> Vec<serde_json::Value> {
    let (code, stdout, stderr) = run(cmd);
    assert_eq!(
        code,
        0,
        "{stdout}\n{stderr}\n--- second dockerd ---\n{}",
        engine.map(SecondEngine::log).unwrap_or_default()
    );
    events(&stdout)
}

/// Asserts neither engine holds a container kbuild made for the tree at `root`.
fn assert_no_containers_on_either(root: &Path, engine: &SecondEngine) {
    assert_no_containers_left(root);
    assert_eq!(
        engine.managed_containers(root),
        Vec::<String>::new(),
        "kbuild left containers on the second engine"
    );
}

#[test]
fn a_quick_release_over_two_engines_gives_the_tarballs_of_one_engine() {
    let engine = SecondEngine::shared();
    let repo = KubeRepo::tagged("v1.34.0");
    let work = tempfile::tempdir().unwrap();
    let (fleet_out, one_out) = (work.path().join("two"), work.path().join("one"));
    let engines = format!("{MAIN_ENGINE},{}", engine.docker_host());

    // The plan assigns the jobs to both engines before anything runs.
    let (code, stdout, stderr) = run(kbuild()
        .args([
            "plan",
            "--json",
            "quick-release",
            "--no-test-tarballs",
            "--no-images",
            "--kube-root",
            s(repo.path()),
        ])
        .args(["--image", BUILDER_IMAGE, "--out", s(&fleet_out)])
        .args(PLATFORMS.iter().flat_map(|p| ["--platform", p]))
        .args(["--engines", &engines])
        .env_remove("DOCKER_HOST"));
    assert_eq!(code, 0, "{stderr}");
    let plan: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let planned_engines: Vec<&str> = plan["engines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        planned_engines,
        [MAIN_ENGINE, engine.docker_host().as_str()]
    );
    let assigned: BTreeMap<String, String> = plan["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            let name = j["name"].as_str().unwrap().to_string();
            (name, j["engine"].as_str().unwrap().to_string())
        })
        .collect();
    assert!(assigned.len() >= 3, "a job per platform: {assigned:?}");
    assert_eq!(
        assigned.values().collect::<BTreeSet<_>>().len(),
        2,
        "jobs assigned to both engines: {assigned:?}"
    );
    assert!(!fleet_out.exists(), "a plan writes nothing");

    // The run: every planned job ran once, both engines ran some.
    let since = unix_now();
    let events = succeed(
        &mut quick_release(repo.path(), &fleet_out, PLATFORMS, Some(&engines)),
        Some(&engine),
    );
    let ran = ran_on(&events);
    assert_eq!(
        ran.keys().collect::<Vec<_>>(),
        assigned.keys().collect::<Vec<_>>(),
        "the planned jobs ran: {events:?}"
    );
    let used: BTreeSet<&str> = ran.values().map(String::as_str).collect();
    assert_eq!(
        used,
        BTreeSet::from([MAIN_ENGINE, engine.docker_host().as_str()]),
        "both engines ran jobs: {ran:?}"
    );
    // (Other warnings, such as a disk check's, depend on the machine.)
    let engine_warnings: Vec<String> = messages(&events, "warning")
        .into_iter()
        .filter(|w| w.contains("engine") && (w.contains("lost") || w.contains("left out")))
        .collect();
    assert!(
        engine_warnings.is_empty(),
        "no engine was lost or left out: {engine_warnings:?}"
    );
    assert_no_containers_on_either(repo.path(), &engine);
    // The manifest records the plan the release was built by: each job with its engine.
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(fleet_out.join("release-tars").join(MANIFEST)).unwrap(),
    )
    .unwrap();
    let recorded: BTreeMap<String, String> = manifest["plan"]["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            let name = j["name"].as_str().unwrap().to_string();
            (name, j["engine"].as_str().unwrap().to_string())
        })
        .collect();
    assert_eq!(recorded, assigned, "the manifest's plan is the plan shown");

    // The record says where each job ran, and each engine's own event stream agrees: the
    // run followed the plan, each job on its planned engine, once.
    let until = (unix_now().parse::<u64>().unwrap() + 1).to_string();
    let asked = creations_args(repo.path(), &since, Some(&until));
    let on_main = run(std::process::Command::new("docker")
        .args(&asked)
        .env_remove("DOCKER_HOST"));
    assert_eq!(on_main.0, 0, "{}", on_main.2);
    let asked: Vec<&str> = asked.iter().map(String::as_str).collect();
    let on_second = engine.run_docker(&asked);
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for (name, stream) in [
        (MAIN_ENGINE.to_string(), on_main.1),
        (engine.docker_host(), on_second),
    ] {
        for (job, count) in created_jobs(&stream) {
            assert_eq!(count, 1, "{job} created once on {name}");
            assert!(
                seen.insert(job.clone(), name.clone()).is_none(),
                "{job} ran on one engine"
            );
        }
    }
    let record = recorded_run(&fleet_out);
    for (job, (ran_on, planned, attempts)) in &record {
        assert_eq!(
            Some(ran_on),
            seen.get(job),
            "{job}: the record and the engines' events"
        );
        assert_eq!(
            Some(planned),
            assigned.get(job),
            "{job}: the planned engine"
        );
        assert_eq!(attempts, &vec![ran_on.clone()], "{job}: one attempt");
    }
    assert_eq!(
        record.keys().collect::<Vec<_>>(),
        seen.keys().collect::<Vec<_>>(),
        "every job the engines ran is recorded"
    );

    // The same release as one engine makes of the same commit.
    let events = succeed(
        &mut quick_release(repo.path(), &one_out, PLATFORMS, None),
        None,
    );
    assert!(
        ran_on(&events).values().all(|e| e == MAIN_ENGINE),
        "{events:?}"
    );
    assert_same_release(&fleet_out, &one_out, PLATFORMS);
    assert_no_containers_on_either(repo.path(), &engine);
}

/// Makes every build job of the tree at `root` wait, before it compiles, for as long as
/// `<root>/.git/kbuild-test-hold` exists (the tree is bind-mounted on both engines, and a
/// file in `.git` leaves the tree clean); committed and tagged again, so that the tree stays
/// clean. Returns the hold file, in place.
fn hold_builds(root: &Path) -> PathBuf {
    patch_build_script(
        root,
        &format!("while [ -e \"${{KUBE_ROOT}}/{HOLD}\" ]; do sleep 0.2; done"),
        "",
    );
    commit_all(root, "builds wait while the test holds them");
    git(root, &["tag", "-f", "-a", "v1.34.0", "-m", "v1.34.0"]);
    let hold = root.join(HOLD);
    std::fs::write(&hold, "").unwrap();
    hold
}

/// Makes the jobs of the tree at `root` that run at once meet before upstream's
/// `kube::golang::place_bins` (the fixture's copy) replaces `_output/bin`, and widens its
/// window between `rm -f` and `ln -s`: jobs sharing one `_output` then lose the race every
/// time (`ln -s` follows the link another job just made, or finds its own link there, "File
/// exists"). Jobs wait for `jobs` to arrive, or 10 s. Committed and tagged again.
fn race_place_bins(root: &Path, jobs: usize) {
    let path = root.join("hack/lib/golang.sh");
    let text = std::fs::read_to_string(&path).unwrap();
    let marker = "  rm -f \"${THIS_PLATFORM_BIN}\"\n";
    assert!(text.contains(marker), "golang.sh changed: {text}");
    let meet = format!(
        "  mkdir -p \"${{KUBE_ROOT}}/{MEETING}\"\n  touch \"${{KUBE_ROOT}}/{MEETING}/$$-${{RANDOM}}\"\n  \
         for _ in $(seq 100); do [ \"$(ls \"${{KUBE_ROOT}}/{MEETING}\" | wc -l)\" -ge {jobs} ] && break; sleep 0.1; done\n"
    );
    let patched = text.replacen(marker, &format!("{meet}{marker}  sleep 1\n"), 1);
    std::fs::write(&path, patched).unwrap();
    commit_all(root, "place_bins races");
    git(root, &["tag", "-f", "-a", "v1.34.0", "-m", "v1.34.0"]);
}

/// A quick-release of FOUR_PLATFORMS on `engines`, four jobs meeting at `place_bins`.
fn four_at_once(repo: &Path, out: &Path, engines: &str, second: Option<&SecondEngine>) {
    let _ = std::fs::remove_dir_all(repo.join(MEETING));
    let events = succeed(
        quick_release(repo, out, FOUR_PLATFORMS, Some(engines)).args(SMALL_DISK),
        second,
    );
    assert_eq!(ran_on(&events).len(), 4, "four jobs: {events:?}");
}

#[test]
fn four_jobs_at_once_on_one_tree_give_the_tarballs_of_one_at_a_time() {
    let engine = SecondEngine::shared();
    let repo = KubeRepo::tagged("v1.34.0");
    race_place_bins(repo.path(), 4);
    let work = tempfile::tempdir().unwrap();
    let (one_engine, two_engines, one_at_a_time) = (
        work.path().join("one-engine"),
        work.path().join("two-engines"),
        work.path().join("one-at-a-time"),
    );
    // Four lanes on the main engine, then two on each engine: four jobs at once.
    four_at_once(repo.path(), &one_engine, &format!("{MAIN_ENGINE}=4"), None);
    let both = format!("{MAIN_ENGINE}=2,{}=2", engine.docker_host());
    four_at_once(repo.path(), &two_engines, &both, Some(&engine));
    // No job wrote into another's directory: `_output/bin` of each is its own link.
    let jobs = repo.path().join("_output/jobs");
    for job in std::fs::read_dir(&jobs).unwrap() {
        let dir = job.unwrap().path();
        let bin = dir.join("dockerized/bin/linux/amd64");
        if let Ok(entries) = std::fs::read_dir(&bin) {
            for e in entries {
                let e = e.unwrap();
                assert!(
                    !e.file_type().unwrap().is_symlink(),
                    "a link in {}: {:?}",
                    bin.display(),
                    e.file_name()
                );
            }
        }
        let link = std::fs::read_link(dir.join("bin")).unwrap();
        assert!(link.ends_with("dockerized/bin/linux/amd64"), "{link:?}");
    }
    // The same release one job at a time.
    let _ = std::fs::remove_dir_all(repo.path().join(MEETING));
    succeed(
        quick_release(repo.path(), &one_at_a_time, FOUR_PLATFORMS, None).args(SMALL_DISK),
        None,
    );
    assert_same_release(&one_engine, &one_at_a_time, FOUR_PLATFORMS);
    assert_same_release(&two_engines, &one_at_a_time, FOUR_PLATFORMS);
    assert_no_containers_on_either(repo.path(), &engine);
}

/// Ids of the running containers kbuild made for the tree at `root` on `engine`.
fn running_on(engine: &SecondEngine, root: &Path) -> Vec<String> {
    let filter = format!(
        "label=io.kbuild.source={}",
        root.canonicalize().unwrap().display()
    );
    engine
        .run_docker(&[
            "ps",
            "-q",
            "--filter",
            "label=io.kbuild.managed",
            "--filter",
            &filter,
        ])
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

#[test]
fn an_engine_lost_mid_build_has_its_job_run_again_on_the_other_with_the_same_bytes() {
    lost_mid_build(SecondEngine::kill);
}

/// A SIGTERM'd dockerd answers pings while it stops its containers (make gets SIGTERM, then
/// SIGKILL: exit code 137, as from an OOM kill): that is an engine lost, not a failed build.
#[test]
fn an_engine_shut_down_mid_build_is_lost_and_the_healthy_engine_s_jobs_finish() {
    lost_mid_build(SecondEngine::terminate);
}

/// Runs a two-engine release whose second engine is lost (by `lose`) while it holds a job:
/// the job runs again on the main engine, in an output place of its own, the main engine's
/// own job finishes, and the release is the one-engine release.
fn lost_mid_build(lose: fn(&mut SecondEngine)) {
    // An engine of this test's own: the shared one serves other tests while this one dies.
    let mut engine = SecondEngine::private();
    let repo = KubeRepo::tagged("v1.34.0");
    let hold = hold_builds(repo.path());
    let work = tempfile::tempdir().unwrap();
    let (fleet_out, one_out) = (work.path().join("two"), work.path().join("one"));
    let engines = format!("{MAIN_ENGINE},{}", engine.docker_host());
    let stdout_path = work.path().join("stdout.jsonl");
    let mut cmd = quick_release(repo.path(), &fleet_out, TWO_PLATFORMS, Some(&engines));
    cmd.args(SMALL_DISK)
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::fs::File::create(work.path().join("stderr")).unwrap());
    // The second engine's own event stream, read while it lives (it dies mid-run).
    let since = unix_now();
    let events_path = work.path().join("second-engine-events.jsonl");
    let mut stream = engine.docker();
    stream
        .args(creations_args(repo.path(), &since, None))
        .stdout(std::fs::File::create(&events_path).unwrap());
    let mut second_events = ProcessGuard::spawn(&mut stream, "docker events");
    let mut kbuild_run = ProcessGuard::spawn(&mut cmd, "kbuild");

    // A job's container runs on the second engine (held before it compiles): the engine
    // goes down with it. Then the held jobs go on.
    let deadline = Instant::now() + Duration::from_secs(180);
    while running_on(&engine, repo.path()).is_empty() {
        assert!(
            kbuild_run.try_wait().is_none(),
            "{}",
            seen(work.path(), &engine, "kbuild ended early")
        );
        assert!(
            Instant::now() < deadline,
            "{}",
            seen(work.path(), &engine, "no job started on the second engine")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    lose(&mut engine);
    std::fs::remove_file(&hold).unwrap();
    let deadline = Instant::now() + Duration::from_secs(600);
    let status = loop {
        if let Some(status) = kbuild_run.try_wait() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "{}",
            seen(work.path(), &engine, "kbuild did not finish")
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        status.success(),
        "{}",
        seen(work.path(), &engine, &format!("kbuild failed: {status}"))
    );

    // The run says which job it lost and ran again, and every job ran on the main engine.
    let events = events(&std::fs::read_to_string(&stdout_path).unwrap());
    let lost: Vec<String> = messages(&events, "warning")
        .into_iter()
        .filter(|m| {
            m.contains(&format!(
                "engine {} was lost during job",
                engine.docker_host()
            ))
        })
        .collect();
    assert_eq!(
        lost.len(),
        1,
        "{}",
        seen(work.path(), &engine, "one job lost")
    );
    assert!(
        lost[0].contains(&format!("running it again on {MAIN_ENGINE}")),
        "{}",
        lost[0]
    );
    let ran = ran_on(&events);
    assert!(
        ran.keys()
            .any(|job| lost[0].contains(&format!("during job {job} "))),
        "the lost job is one that ran in the end: {} / {ran:?}",
        lost[0]
    );
    assert!(
        ran.values().all(|e| e == MAIN_ENGINE) && ran.len() == 2,
        "every job ran on the engine left: {ran:?}"
    );
    assert_eq!(
        engine.processes(),
        Vec::<(u32, String)>::new(),
        "nothing of the lost engine runs on"
    );
    assert_no_containers_left(repo.path());

    // The record: the lost job was planned on the second engine, tried there (as its event
    // stream shows), and built on the main engine (as the main engine's shows).
    let _ = second_events.try_wait();
    drop(second_events);
    let on_second = created_jobs(&std::fs::read_to_string(&events_path).unwrap());
    let until = (unix_now().parse::<u64>().unwrap() + 1).to_string();
    let on_main = run(std::process::Command::new("docker")
        .args(creations_args(repo.path(), &since, Some(&until)))
        .env_remove("DOCKER_HOST"));
    let on_main = created_jobs(&on_main.1);
    let record = recorded_run(&fleet_out);
    let second = engine.docker_host();
    let rerun: Vec<&String> = record
        .iter()
        .filter(|(_, (_, _, attempts))| attempts.len() > 1)
        .map(|(job, _)| job)
        .collect();
    assert_eq!(rerun.len(), 1, "one job ran twice: {record:?}");
    let (built_on, planned, attempts) = &record[rerun[0]];
    assert_eq!(planned, &second, "it was planned on the lost engine");
    assert_eq!(attempts, &vec![second.clone(), MAIN_ENGINE.to_string()]);
    assert_eq!(built_on, MAIN_ENGINE);
    // The rerun built in a place of its own: the lost engine's container may have gone on
    // writing into the first.
    let rerun_bin = repo
        .path()
        .join(format!("_output/jobs/{}.rerun1/dockerized/bin", rerun[0]));
    assert!(rerun_bin.is_dir(), "{}", rerun_bin.display());
    assert_eq!(
        on_second.keys().collect::<Vec<_>>(),
        [rerun[0]],
        "{on_second:?}"
    );
    for (job, (built_on, _, _)) in &record {
        assert_eq!(built_on, MAIN_ENGINE);
        assert_eq!(
            on_main.get(job),
            Some(&1),
            "{job} created on the main engine: {on_main:?}"
        );
    }

    // The same release as one engine makes of the same commit.
    succeed(
        quick_release(repo.path(), &one_out, TWO_PLATFORMS, None).args(SMALL_DISK),
        None,
    );
    assert_same_release(&fleet_out, &one_out, TWO_PLATFORMS);
    assert_no_containers_left(repo.path());
}

/// What went wrong, with what kbuild printed so far and the second engine's log.
fn seen(work: &Path, engine: &SecondEngine, what: &str) -> String {
    format!(
        "{what}\n--- kbuild ---\n{}{}\n--- second dockerd ---\n{}",
        std::fs::read_to_string(work.join("stdout.jsonl")).unwrap_or_default(),
        std::fs::read_to_string(work.join("stderr")).unwrap_or_default(),
        engine.log()
    )
}

/// A unix socket path whose engine has gone: the socket file is left, nobody listens.
fn stale_socket(dir: &Path) -> String {
    let path = dir.join("gone.sock");
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    format!("unix://{}", path.display())
}

#[test]
fn an_engine_that_does_not_answer_is_left_out_unless_every_engine_is_required() {
    let repo = KubeRepo::tagged("v1.34.0");
    let work = tempfile::tempdir().unwrap();
    let gone = stale_socket(work.path());
    let missing = format!("unix://{}", work.path().join("missing.sock").display());
    let platforms = ["linux/amd64", "darwin/arm64"];
    let build = |out: &Path, engines: &str| {
        let mut cmd = build_cmd(repo.path(), out, &["kubectl"], &platforms);
        cmd.args(["--json", "--engines", engines])
            .env_remove("DOCKER_HOST");
        cmd
    };

    // The plan notes the engine that does not answer and leaves it out.
    let with_gone = format!("{MAIN_ENGINE},{gone}");
    let out = work.path().join("out");
    let (code, stdout, stderr) = run(kbuild()
        .args([
            "plan",
            "--json",
            "build",
            "kubectl",
            "--kube-root",
            s(repo.path()),
        ])
        .args(["--platform", platforms[0], "--platform", platforms[1]])
        .args([
            "--image",
            BUILDER_IMAGE,
            "--out",
            s(&out),
            "--engines",
            &with_gone,
        ])
        .env_remove("DOCKER_HOST"));
    assert_eq!(code, 0, "{stderr}");
    let plan: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(plan["engines"].as_array().unwrap().len(), 1, "{plan}");
    assert_eq!(plan["engines"][0]["name"], MAIN_ENGINE);
    let notes = plan["notes"].to_string();
    assert!(
        notes.contains(&gone) && notes.contains("left out"),
        "{notes}"
    );

    // The run warns, leaves it out, and builds everything on the engine that answers.
    let events = succeed(&mut build(&out, &with_gone), None);
    let warnings = messages(&events, "warning");
    assert!(
        warnings
            .iter()
            .any(|w| w.contains(&gone) && w.contains("left out")),
        "{events:?}"
    );
    let ran = ran_on(&events);
    assert!(
        !ran.is_empty() && ran.values().all(|e| e == MAIN_ENGINE),
        "{ran:?}"
    );
    assert!(is_elf_amd64(&header(&out.join("bin/linux/amd64/kubectl"))));
    assert!(is_macho_arm64(&header(
        &out.join("bin/darwin/arm64/kubectl")
    )));

    // Every engine required: the run fails as an engine failure, naming the one.
    let strict = work.path().join("strict");
    let (code, stdout, stderr) = run(build(&strict, &with_gone).arg("--require-all-engines"));
    assert_eq!(code, 5, "{stdout}\n{stderr}");
    assert!(stderr.contains(&gone), "names the engine: {stderr}");
    assert!(
        stderr.contains("drop --require-all-engines"),
        "says how to go on without it: {stderr}"
    );
    assert!(!strict.join("bin").exists(), "nothing built");

    // No engine answers: exit 5, naming both.
    let none = work.path().join("none");
    let (code, stdout, stderr) = run(&mut build(&none, &format!("{gone},{missing}")));
    assert_eq!(code, 5, "{stdout}\n{stderr}");
    assert!(
        stderr.contains("none of the engines answers")
            && stderr.contains(&gone)
            && stderr.contains(&missing),
        "{stderr}"
    );
    assert!(!none.join("bin").exists(), "nothing built");
    assert_no_containers_left(repo.path());
}
