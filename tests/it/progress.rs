//! Long builds show real progress: the Go packages a build compiles, counted out of what the
//! previous run of the same job compiled, as a bar on a terminal, a line every interval in
//! plain output and `progress` events with --json.
//!
//! The Go build cache volume is shared and warm, so the fixture alone compiles nothing.
//! Each run here first rewrites a chain of 40 small packages that kubectl imports (each
//! importing the one before), so that every run compiles them again, one after another.

use std::path::Path;

use crate::common::*;

/// Packages in the chain kubectl imports.
const CHAIN: usize = 40;

/// Writes pkg/progress/p00..p39 (p<n> imports p<n-1>), with a nonce in every file so that
/// none of them is in the build cache (tests run in parallel and the cache outlives them:
/// the nonce holds the tree's temporary path, `label` and the time), and makes kubectl
/// import the last one.
fn rewrite_chain(root: &Path, label: &str) {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let nonce = format!("{}-{label}-{nanos}", root.display());
    for n in 0..CHAIN {
        let dir = root.join(format!("pkg/progress/p{n:02}"));
        std::fs::create_dir_all(&dir).unwrap();
        let body = if n == 0 {
            format!("package p00\n\nfunc Value() string {{ return \"{nonce}\" }}\n")
        } else {
            format!(
                "package p{n:02}\n\nimport prev \"k8s.io/kubernetes/pkg/progress/p{:02}\"\n\nfunc Value() string {{ return prev.Value() + \"{n}-{nonce}\" }}\n",
                n - 1
            )
        };
        std::fs::write(dir.join("p.go"), body).unwrap();
    }
    let main = root.join("cmd/kubectl/main.go");
    let text = std::fs::read_to_string(&main).unwrap();
    let import = format!("\t_ \"k8s.io/kubernetes/pkg/progress/p{:02}\"\n", CHAIN - 1);
    if !text.contains(&import) {
        assert!(text.contains("import (\n"), "kubectl's main.go changed");
        std::fs::write(
            &main,
            text.replacen("import (\n", &format!("import (\n{import}"), 1),
        )
        .unwrap();
    }
}

fn json_events(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn progress_events(events: &[serde_json::Value]) -> Vec<&serde_json::Value> {
    events.iter().filter(|e| e["event"] == "progress").collect()
}

/// The count in "kubectl: compiled N Go packages in 3.2s", the line a finished job ends with.
fn compiled_count(stderr: &str) -> u64 {
    stderr
        .lines()
        .find_map(|l| {
            let rest = l.split("kubectl: compiled ").nth(1)?;
            rest.split(' ').next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no \"kubectl: compiled N Go packages\" line:\n{stderr}"))
}

#[test]
fn json_progress_events_count_packages_then_know_the_total() {
    let repo = KubeRepo::tagged("v1.34.0");
    let out = tempfile::tempdir().unwrap();
    let build = || {
        let mut cmd = build_cmd(repo.path(), out.path(), &["kubectl"], &["linux/amd64"]);
        cmd.arg("--json");
        cmd
    };

    // No history: a count without a total or an estimate.
    rewrite_chain(repo.path(), "first");
    let (code, stdout, stderr) = run(&mut build());
    assert_eq!(code, 0, "{stderr}");
    let events = json_events(&stdout);
    let first = progress_events(&events);
    assert!(
        first.len() > CHAIN,
        "one progress event per package compiled (at least the chain and kubectl):\n{stdout}"
    );
    for (i, event) in first.iter().enumerate() {
        assert_eq!(event["job"], "kubectl", "{event}");
        assert_eq!(
            event["done"],
            i as u64 + 1,
            "done counts up by one: {event}"
        );
        assert!(event["total"].is_null(), "no history, no total: {event}");
        assert!(event["eta"].is_null(), "no total, no estimate: {event}");
    }
    let compiled = first.last().unwrap()["done"].as_u64().unwrap();
    // go build -v lines are progress, not log lines; the job log keeps them all.
    assert!(
        !events
            .iter()
            .any(|e| e["event"] == "log" && e["line"] == "k8s.io/kubernetes/pkg/progress/p00"),
        "package names are not log events"
    );
    let log = std::fs::read_to_string(out.path().join("logs/kubectl.log")).unwrap();
    assert!(
        log.contains("k8s.io/kubernetes/pkg/progress/p00\n"),
        "{log}"
    );

    // The next run counts out of what the first one compiled, with an estimate.
    rewrite_chain(repo.path(), "second");
    let (code, stdout, stderr) = run(&mut build());
    assert_eq!(code, 0, "{stderr}");
    let events = json_events(&stdout);
    let second = progress_events(&events);
    assert!(second.len() > CHAIN, "{stdout}");
    let mut last_done = 0;
    for event in &second {
        let done = event["done"].as_u64().unwrap();
        assert!(done > last_done, "done increases: {event}");
        last_done = done;
        if done <= compiled {
            assert_eq!(event["total"], compiled, "the first run's count: {event}");
        }
    }
    assert!(
        second.iter().any(|e| e["eta"].as_u64().is_some()),
        "an estimate of the time left once the rate is known:\n{stdout}"
    );
}

#[test]
fn on_a_terminal_the_bar_counts_packages_out_of_the_last_runs_total() {
    let repo = KubeRepo::tagged("v1.34.0");
    let out = tempfile::tempdir().unwrap();
    rewrite_chain(repo.path(), "first");
    let (code, _, stderr) = run(&mut build_cmd(
        repo.path(),
        out.path(),
        &["kubectl"],
        &["linux/amd64"],
    ));
    assert_eq!(code, 0, "{stderr}");
    let total = compiled_count(&stderr);
    assert!(total > CHAIN as u64, "{stderr}");

    // `script` gives kbuild a real pseudo-terminal, as a user's shell would.
    rewrite_chain(repo.path(), "second");
    let command = format!(
        "{} build kubectl --platform linux/amd64 --image {BUILDER_IMAGE} --kube-root {} --out {}",
        assert_cmd::cargo::cargo_bin("kbuild").display(),
        repo.path().display(),
        out.path().display()
    );
    let output = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("TERM", "xterm-256color")
        .env_remove("NO_COLOR")
        .env_remove("GOFLAGS")
        .output()
        .expect("script (util-linux) runs");
    let screen = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{screen}");
    let of_total = format!("/{total} Go packages compiled");
    let counts: Vec<u64> = screen
        .split(&of_total)
        .collect::<Vec<_>>()
        .split_last()
        .map(|(_, before)| before)
        .unwrap_or_default()
        .iter()
        .filter_map(|chunk| {
            let digits: String = chunk
                .chars()
                .rev()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.chars().rev().collect::<String>().parse().ok()
        })
        .collect();
    assert!(
        counts.iter().any(|&n| n >= 1 && n <= total),
        "the bar shows N{of_total}:\n{screen}"
    );
    assert!(
        counts.windows(2).all(|w| w[0] <= w[1]),
        "the count only grows: {counts:?}"
    );
    assert!(screen.contains("kubectl: compiled "), "{screen}");
}

#[test]
fn plain_output_prints_the_count_every_interval() {
    let repo = KubeRepo::tagged("v1.34.0");
    let out = tempfile::tempdir().unwrap();
    rewrite_chain(repo.path(), "plain");
    let (code, _, stderr) = run(
        build_cmd(repo.path(), out.path(), &["kubectl"], &["linux/amd64"])
            .args(["--progress-interval", "0.2"]),
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains('\x1b'), "plain lines only:\n{stderr}");
    // `[   6.1s] [kubectl] 13 Go packages compiled`: no history, so no total.
    let counts: Vec<u64> = stderr
        .lines()
        .filter_map(|l| {
            let rest = l.split("] [kubectl] ").nth(1)?;
            let n = rest.strip_suffix(" Go packages compiled")?;
            n.parse().ok()
        })
        .collect();
    assert!(
        counts.len() >= 2,
        "a progress line every 0.2 s while the chain compiles:\n{stderr}"
    );
    assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");
    assert!(
        !stderr
            .lines()
            .any(|l| l.ends_with("k8s.io/kubernetes/pkg/progress/p00")),
        "package names are counted, not printed:\n{stderr}"
    );
    assert!(compiled_count(&stderr) > CHAIN as u64, "{stderr}");
}

#[test]
fn the_host_engine_counts_out_of_the_total_a_docker_run_left_in_the_same_outputs() {
    use crate::host::{host_go, minor_of, path_with, pinned_repo};
    let (go_dir, version) = host_go();
    let repo = pinned_repo(&version, &minor_of(&version));
    let out = tempfile::tempdir().unwrap();
    rewrite_chain(repo.path(), "docker");
    let (code, _, stderr) = run(&mut build_cmd(
        repo.path(),
        out.path(),
        &["kubectl"],
        &["linux/amd64"],
    ));
    assert_eq!(code, 0, "{stderr}");
    let total = compiled_count(&stderr);

    rewrite_chain(repo.path(), "host");
    let (code, stdout, stderr) = run(kbuild()
        .env("PATH", path_with(&go_dir))
        .args(["--json", "build", "kubectl", "--engine", "host"])
        .args(["--platform", "linux/amd64", "--kube-root"])
        .arg(repo.path())
        .arg("--out")
        .arg(out.path()));
    assert_eq!(code, 0, "{stderr}\n{stdout}");
    let events = json_events(&stdout);
    let host = progress_events(&events);
    assert!(
        host.len() > CHAIN,
        "the host Go names the packages it compiles too:\n{stdout}"
    );
    for event in host.iter().filter(|e| e["done"].as_u64() <= Some(total)) {
        assert_eq!(event["total"], total, "the docker run's count: {event}");
    }
}
