//! The plan is what runs: for each main command and each ready recipe (pointed at the
//! fixture), the containers the run creates are read back from the engine while they exist
//! and compared field by field with `kbuild plan --json` of the same command line. And a
//! saved plan runs, while a stale one (the tree moved, the image changed) is refused.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::common::*;

/// Every build container created for the tree at `root`, inspected the moment the engine
/// reports its creation (they remove themselves when the build ends).
struct ContainerWatch {
    child: std::process::Child,
    seen: Arc<Mutex<Vec<Value>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

/// `docker`, talking to the engine at `host` (None: the machine's own, as kbuild finds it).
fn docker_on(host: Option<&str>) -> Command {
    let mut cmd = Command::new("docker");
    match host {
        Some(host) => {
            cmd.args(["-H", host]);
        }
        None => {
            cmd.env_remove("DOCKER_HOST");
        }
    }
    cmd
}

impl ContainerWatch {
    fn start(root: &Path) -> ContainerWatch {
        ContainerWatch::start_on(root, None)
    }

    /// Watches the engine at `host` (None: the machine's own).
    fn start_on(root: &Path, host: Option<&str>) -> ContainerWatch {
        let root = root.canonicalize().unwrap();
        let inspect_host = host.map(str::to_string);
        let mut child = docker_on(host)
            .args([
                "events",
                "--filter",
                "type=container",
                "--filter",
                "event=create",
            ])
            .arg("--filter")
            .arg(format!("label=io.kbuild.source={}", root.display()))
            .args(["--format", "{{.Actor.ID}}"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("docker events runs");
        let stdout = child.stdout.take().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let reader = std::thread::spawn(move || {
            for id in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let out = docker_on(inspect_host.as_deref())
                    .args(["inspect", &id])
                    .output()
                    .unwrap();
                if let Ok(Value::Array(mut found)) = serde_json::from_slice::<Value>(&out.stdout) {
                    if let Some(config) = found.pop() {
                        sink.lock().unwrap().push(config);
                    }
                }
            }
        });
        // `docker events` subscribes asynchronously: give it a moment before the run starts.
        std::thread::sleep(std::time::Duration::from_millis(500));
        ContainerWatch {
            child,
            seen,
            reader: Some(reader),
        }
    }

    /// The build containers seen, by their job label.
    fn stop(mut self) -> Vec<(String, Value)> {
        std::thread::sleep(std::time::Duration::from_millis(300));
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        let seen = self.seen.lock().unwrap();
        seen.iter()
            .filter_map(|c| {
                let job = c["Config"]["Labels"]["io.kbuild.job"].as_str()?.to_string();
                Some((job, c.clone()))
            })
            .collect()
    }
}

impl Drop for ContainerWatch {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The variables the image itself sets (the container's Env holds them too).
fn image_env(image: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args([
            "image",
            "inspect",
            image,
            "--format",
            "{{json .Config.Env}}",
        ])
        .output()
        .unwrap();
    serde_json::from_slice::<Value>(&out.stdout)
        .map(|v| strings(&v))
        .unwrap_or_default()
}

/// `kbuild plan --json <args>`.
fn plan_json(args: &[String]) -> Value {
    let (code, stdout, stderr) = run(kbuild().arg("plan").arg("--json").args(args));
    assert_eq!(code, 0, "kbuild plan {args:?}: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("plan is JSON ({e}): {stdout}"))
}

/// Runs `args` for real while watching the engine, then checks every planned job ran in a
/// container exactly as planned (see `assert_run_matches_plan_of`).
fn assert_run_matches_plan(root: &Path, args: &[String]) {
    assert_run_matches_plan_of(root, args, args);
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn common_flags(repo: &Path, out: &Path) -> Vec<String> {
    vec![
        "--kube-root".into(),
        s(repo),
        "--image".into(),
        BUILDER_IMAGE.into(),
        "--out".into(),
        s(out),
        "--force".into(),
        "--min-memory".into(),
        "1g".into(),
        "--min-disk".into(),
        "1g".into(),
    ]
}

#[test]
fn the_three_main_commands_run_their_plan() {
    let repo = KubeRepo::tagged("v1.34.0");
    let out = tempfile::tempdir().unwrap();
    let flags = common_flags(repo.path(), &out.path().join("o"));
    let mut build = vec![
        "build".to_string(),
        "kubectl".into(),
        "--platform".into(),
        "linux/amd64,darwin/arm64".into(),
        "--memory".into(),
        "3g".into(),
        "--cpus".into(),
        "1.5".into(),
    ];
    build.extend(flags.clone());
    assert_run_matches_plan(repo.path(), &build);
    let mut release = vec![
        "quick-release".to_string(),
        "--no-test-tarballs".into(),
        "--no-images".into(),
        "--platform".into(),
        "linux/amd64".into(),
        "--platform".into(),
        "windows/amd64".into(),
    ];
    release.extend(flags.clone());
    assert_run_matches_plan(repo.path(), &release);
    let mut ext = vec![
        "extension".to_string(),
        "--platform".into(),
        "darwin/arm64".into(),
        "--platform".into(),
        "linux/amd64".into(),
        "--network".into(),
    ];
    ext.extend(flags);
    assert_run_matches_plan(repo.path(), &ext);
}

#[test]
fn every_ready_recipe_runs_its_plan() {
    let repo = KubeRepo::tagged("v1.34.0");
    let out = tempfile::tempdir().unwrap();
    let mut recipes: Vec<PathBuf> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
    recipes.sort();
    assert!(recipes.len() >= 5, "{recipes:?}");
    for (i, recipe) in recipes.iter().enumerate() {
        // Each recipe as written, pointed at the fixture, two platforms (the fixture builds
        // the same way for all), and checks sized for a test machine.
        let mut args = vec![s(recipe), "--".into()];
        // The recipe's own memory settings stay (they fit this machine); the disk check is
        // sized for a test machine.
        args.extend([
            "--kube-root".to_string(),
            s(repo.path()),
            "--image".into(),
            BUILDER_IMAGE.into(),
            "--out".into(),
            s(&out.path().join(format!("o{i}"))),
            "--min-disk".into(),
            "1g".into(),
        ]);
        args.extend(["--platform".into(), "linux/amd64".into()]);
        // No go-runner base in this engine: the release recipes run without server images
        // (tests/it/images.rs builds them on a local base).
        if std::fs::read_to_string(recipe)
            .unwrap()
            .contains("command = \"quick-release\"")
        {
            args.push("--no-images".into());
        }
        let mut plan_args = args.clone();
        plan_args.insert(0, "run".into());
        // `kbuild plan RECIPE -- flags` and `kbuild run RECIPE -- flags`.
        let plan = plan_json(&args);
        assert!(
            plan["inputs"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|i| i["from"].as_str().unwrap_or("").starts_with("recipe"))
                .count()
                > 0,
            "{}: the recipe's own settings are among the inputs: {plan}",
            recipe.display()
        );
        assert_run_matches_plan_of(repo.path(), &args, &plan_args);
    }
}

/// Plans with `plan_args`, runs `run_args` for real while watching the engine (they differ
/// for a recipe: `kbuild plan R -- ...` and `kbuild run R -- ...`), then checks every planned
/// job ran in a container exactly as planned: image and image id, command, working
/// directory, variables, mounts, network, user, memory and CPU limits.
fn assert_run_matches_plan_of(root: &Path, plan_args: &[String], run_args: &[String]) {
    let plan = plan_json(plan_args);
    let jobs = plan["jobs"].as_array().expect("jobs").clone();
    assert!(!jobs.is_empty(), "the plan has jobs: {plan}");
    let watch = ContainerWatch::start(root);
    let (code, _, stderr) = run(kbuild().args(run_args));
    let seen = watch.stop();
    assert_eq!(code, 0, "kbuild {run_args:?}: {stderr}");
    for job in &jobs {
        let name = job["name"].as_str().unwrap();
        let (_, c) = seen.iter().find(|(j, _)| j == name).unwrap_or_else(|| {
            let names: Vec<&String> = seen.iter().map(|(j, _)| j).collect();
            panic!("no container ran job {name} of {run_args:?}; seen {names:?}")
        });
        assert_container_is_job(c, job, &plan, &format!("{run_args:?} {name}"));
    }
    assert_no_containers_left(root);
}

/// The container `c`, as its engine's inspect shows it, is the plan's `job` field by field.
fn assert_container_is_job(c: &Value, job: &Value, plan: &Value, name: &str) {
    let image = job["image"].as_str().unwrap();
    assert_eq!(c["Config"]["Image"].as_str(), Some(image), "{name}: image");
    assert_eq!(
        c["Image"].as_str(),
        plan["engine"]["image_id"].as_str(),
        "{name}: the image id the plan names"
    );
    assert_eq!(
        strings(&c["Config"]["Cmd"]),
        strings(&job["command"]),
        "{name}: command"
    );
    assert_eq!(
        c["Config"]["WorkingDir"], job["workdir"],
        "{name}: working dir"
    );
    let from_image = image_env(image);
    let set: Vec<String> = strings(&c["Config"]["Env"])
        .into_iter()
        .filter(|e| !from_image.contains(e))
        .collect();
    assert_eq!(set, strings(&job["env"]), "{name}: environment");
    assert_eq!(
        strings(&c["HostConfig"]["Binds"]),
        strings(&job["mounts"]),
        "{name}: mounts"
    );
    assert_eq!(
        c["HostConfig"]["NetworkMode"], job["network"],
        "{name}: network"
    );
    assert_eq!(
        c["Config"]["User"].as_str().unwrap_or(""),
        job["user"].as_str().unwrap_or(""),
        "{name}: user"
    );
    let memory = c["HostConfig"]["Memory"].as_u64().unwrap_or(0);
    assert_eq!(
        memory,
        job["memory_limit"].as_u64().unwrap_or(0),
        "{name}: memory"
    );
    let nano_cpus = c["HostConfig"]["NanoCpus"].as_u64().unwrap_or(0);
    let cpus = job["cpus"].as_f64().map_or(0, |c| (c * 1e9) as u64);
    assert_eq!(nano_cpus, cpus, "{name}: cpus");
}

#[test]
fn a_two_engine_run_creates_each_job_on_its_planned_engine_as_planned() {
    let second = crate::engines::SecondEngine::shared();
    let main = "unix:///var/run/docker.sock".to_string();
    let repo = KubeRepo::tagged("v1.34.0");
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let mut args = vec!["build".to_string(), "kubectl".to_string()];
    args.extend(common_flags(repo.path(), &out));
    args.extend(["--platform", "linux/amd64", "--platform", "darwin/arm64"].map(String::from));
    args.extend([
        "--engines".to_string(),
        format!("{main},{}", second.docker_host()),
    ]);
    let plan = plan_json(&args);
    let jobs = plan["jobs"].as_array().expect("jobs").clone();
    let engines: Vec<&str> = jobs.iter().map(|j| j["engine"].as_str().unwrap()).collect();
    assert_eq!(jobs.len(), 2, "a job per platform: {plan}");
    assert_ne!(engines[0], engines[1], "one job on each engine: {plan}");

    let hosts = [
        (main.clone(), None),
        (second.docker_host(), Some(second.docker_host())),
    ];
    let watches: Vec<(String, ContainerWatch)> = hosts
        .iter()
        .map(|(name, host)| {
            (
                name.clone(),
                ContainerWatch::start_on(repo.path(), host.as_deref()),
            )
        })
        .collect();
    let (code, _, stderr) = run(kbuild().args(&args).env_remove("DOCKER_HOST"));
    let seen: Vec<(String, Vec<(String, Value)>)> = watches
        .into_iter()
        .map(|(name, w)| (name, w.stop()))
        .collect();
    assert_eq!(code, 0, "{stderr}");
    for job in &jobs {
        let name = job["name"].as_str().unwrap();
        let planned = job["engine"].as_str().unwrap();
        let mut found = Vec::new();
        for (engine, containers) in &seen {
            for (j, c) in containers {
                if j == name {
                    found.push((engine.clone(), c.clone()));
                }
            }
        }
        assert_eq!(
            found.len(),
            1,
            "{name} ran once: on {:?}",
            found.iter().map(|f| &f.0).collect::<Vec<_>>()
        );
        assert_eq!(found[0].0, planned, "{name} ran on its planned engine");
        assert_container_is_job(&found[0].1, job, &plan, name);
    }
    assert_no_containers_left(repo.path());

    // The next plan sends each job back to the engine where its Go cache is now warm,
    // even with the engines listed the other way round (which alone would swap them).
    let mut again = args.clone();
    let last = again.len() - 1;
    again[last] = format!("{},{main}", second.docker_host());
    let replanned = plan_json(&again);
    for job in &jobs {
        let name = job["name"].as_str().unwrap();
        let now = replanned["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["name"] == name)
            .unwrap_or_else(|| panic!("{name} is planned again: {replanned}"));
        assert_eq!(
            now["engine"], job["engine"],
            "{name} goes back: {replanned}"
        );
        assert_eq!(
            replanned["last_engines"][name], job["engine"],
            "{replanned}"
        );
    }
}

#[test]
fn a_saved_plan_runs_and_a_stale_one_is_refused() {
    let repo = KubeRepo::tagged("v1.34.0");
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("o");
    // A tag of its own for the builder image, so the test can move it.
    let tag = format!("kbuild-plan-test:{}", std::process::id());
    assert!(Command::new("docker")
        .args(["tag", BUILDER_IMAGE, &tag])
        .status()
        .unwrap()
        .success());
    let plan_file = work.path().join("plan.json");
    let (code, stdout, stderr) = run(kbuild()
        .args([
            "plan",
            "--json",
            "build",
            "kubectl",
            "--platform",
            "linux/amd64",
            "--image",
            &tag,
        ])
        .arg("--kube-root")
        .arg(repo.path())
        .arg("--out")
        .arg(&out));
    assert_eq!(code, 0, "{stderr}");
    std::fs::write(&plan_file, &stdout).unwrap();

    // Run elsewhere: the plan carries its tree and output directory.
    let elsewhere = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run(kbuild()
        .current_dir(elsewhere.path())
        .arg("run")
        .arg(&plan_file));
    assert_eq!(code, 0, "the saved plan runs: {stderr}");
    let kubectl = out.join("bin/linux/amd64/kubectl");
    let version = run_binary(&kubectl, &["version", "--client"]);
    assert!(version.contains("v1.34.0"), "{version}");

    // The engine's image under that name changes: refused before anything is built.
    let empty = work.path().join("empty.tar");
    let status = Command::new("tar")
        .args(["-cf"])
        .arg(&empty)
        .args(["-T", "/dev/null"])
        .status()
        .unwrap();
    assert!(status.success());
    let imported = Command::new("docker")
        .args(["import"])
        .arg(&empty)
        .arg(&tag)
        .output()
        .unwrap();
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    let (code, _, stderr) = run(kbuild().arg("run").arg(&plan_file));
    let _ = Command::new("docker").args(["rmi", "-f", &tag]).output();
    assert_eq!(code, 2, "a changed image is refused: {stderr}");
    assert!(
        stderr.contains("stale") && stderr.contains(&tag),
        "{stderr}"
    );

    // The tree moves on: refused naming both commits.
    assert!(Command::new("docker")
        .args(["tag", BUILDER_IMAGE, &tag])
        .status()
        .unwrap()
        .success());
    let planned = repo.commit();
    std::fs::write(repo.path().join("NEWS"), "a change\n").unwrap();
    let moved = commit_all(repo.path(), "news");
    let (code, _, stderr) = run(kbuild().arg("run").arg(&plan_file));
    let _ = Command::new("docker").args(["rmi", &tag]).output();
    assert_eq!(code, 2, "a moved tree is refused: {stderr}");
    assert!(
        stderr.contains(&planned) && stderr.contains(&moved),
        "{stderr}"
    );
    assert_no_containers_left(repo.path());
}

#[test]
fn every_command_prints_its_plan_as_json_and_runs_nothing() {
    let repo = KubeRepo::tagged("v1.34.0");
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("o");
    // A bin tree to package: what `kbuild package` would read (a plan reads nothing of it).
    let bin = work.path().join("bin/linux/amd64");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(bin.join("kubectl"), b"\x7fELF").unwrap();
    let tree = ["--kube-root".to_string(), s(repo.path())];
    let image = ["--image".to_string(), BUILDER_IMAGE.to_string()];
    let out_flag = ["--out".to_string(), s(&out)];
    let cases: Vec<(&str, Vec<String>)> = vec![
        (
            "build",
            [
                vec!["build".into(), "kubectl".into()],
                tree.to_vec(),
                image.to_vec(),
                out_flag.to_vec(),
            ]
            .concat(),
        ),
        (
            "quick-release",
            [
                vec!["quick-release".into(), "--no-images".into()],
                tree.to_vec(),
                image.to_vec(),
                out_flag.to_vec(),
            ]
            .concat(),
        ),
        (
            "extension",
            [
                vec!["extension".into()],
                tree.to_vec(),
                image.to_vec(),
                out_flag.to_vec(),
            ]
            .concat(),
        ),
        (
            "package",
            [
                vec![
                    "package".into(),
                    "--bin".into(),
                    s(&work.path().join("bin")),
                ],
                tree.to_vec(),
                out_flag.to_vec(),
            ]
            .concat(),
        ),
        (
            "doctor",
            [vec!["doctor".into()], tree.to_vec(), image.to_vec()].concat(),
        ),
    ];
    for (command, args) in cases {
        let plan = plan_json(&args);
        assert_eq!(plan["command"], command, "{plan}");
        assert_eq!(
            plan["source"]["commit"].as_str(),
            Some(repo.commit().as_str()),
            "{command}"
        );
        match command {
            "package" => {
                assert!(
                    plan["jobs"].as_array().unwrap().is_empty(),
                    "package builds nothing"
                );
                let files: Vec<&str> = plan["packaging"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|a| a["file"].as_str())
                    .collect();
                assert!(
                    files.contains(&"release-tars/kubernetes-client-linux-amd64.tar.gz"),
                    "{files:?}"
                );
            }
            "doctor" => {
                let checks: Vec<&str> = plan["checks"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|c| c["name"].as_str())
                    .collect();
                assert!(
                    checks.contains(&"memory") && checks.contains(&"disk"),
                    "{checks:?}"
                );
            }
            "quick-release" => {
                // By default the test targets build in jobs of their own and the test
                // tarballs are planned.
                let jobs: Vec<&str> = plan["jobs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|j| j["name"].as_str())
                    .collect();
                assert!(jobs.iter().any(|j| j.contains("test")), "{jobs:?}");
                let files = plan["packaging"].to_string();
                assert!(
                    files.contains("kubernetes-test-portable.tar.gz")
                        && files.contains("kubernetes/test/bin/e2e.test"),
                    "{files}"
                );
            }
            _ => assert!(
                !plan["jobs"].as_array().unwrap().is_empty(),
                "{command} builds"
            ),
        }
    }
    assert!(!out.exists(), "a plan writes nothing: {}", out.display());
    assert_no_containers_left(repo.path());
}
