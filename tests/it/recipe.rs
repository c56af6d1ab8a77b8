//! Recipes, plans, help texts and the terminal/CI/JSON output, as a user sees them.
//! Snapshots live in tests/it/snapshots (review changes with `cargo insta review`).

use std::path::{Path, PathBuf};

use crate::common::*;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn write_recipe(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn every_ready_recipe_checks_and_plans_without_running_anything() {
    let recipes: Vec<PathBuf> = std::fs::read_dir(repo_root().join("recipes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    assert!(
        recipes.len() >= 5,
        "the ready recipes are there: {recipes:?}"
    );
    for recipe in &recipes {
        let (code, stdout, stderr) = run(kbuild()
            .current_dir(repo_root())
            .arg("recipe")
            .arg("check")
            .arg(recipe));
        assert_eq!(code, 0, "{}: {stderr}", recipe.display());
        assert!(stdout.contains(": ok"), "{stdout}");
        let (code, stdout, stderr) = run(kbuild().current_dir(repo_root()).arg("plan").arg(recipe));
        assert_eq!(code, 0, "{}: {stderr}", recipe.display());
        assert!(stdout.contains("nothing was run."), "{stdout}");
    }
}

#[test]
fn plan_of_a_build_recipe_shows_jobs_image_mounts_env_and_outputs() {
    let repo = KubeRepo::tagged("v1.34.0");
    let dir = tempfile::tempdir().unwrap();
    let recipe = write_recipe(
        dir.path(),
        "kubectl.toml",
        &format!(
            "command = \"build\"\ncomponents = [\"kubectl\"]\nplatforms = [\"linux/amd64\", \"darwin/arm64\"]\n\
             [source]\nkube_root = \"{}\"\n[engine]\nimage = \"{BUILDER_IMAGE}\"\n[output]\ndir = \"out\"\n",
            repo.path().display()
        ),
    );
    let (code, stdout, stderr) = run(kbuild().arg("plan").arg(&recipe));
    assert_eq!(code, 0, "{stderr}");
    let commit = repo.commit();
    let text = stdout
        .replace(
            &repo.path().canonicalize().unwrap().display().to_string(),
            "[TREE]",
        )
        .replace(&repo.path().display().to_string(), "[TREE]")
        .replace(&recipe.display().to_string(), "[RECIPE]")
        .replace(&commit, "[COMMIT]");
    let text = machine_neutral(&text);
    insta::assert_snapshot!("plan_build_recipe", text);
    assert_no_containers_left(repo.path());
    assert!(!repo.path().join("_output").exists(), "plan built nothing");
}

#[test]
fn recipe_errors_point_at_the_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("bad_type", "command = \"build\"\ncomponents = \"kubectl\"\n"),
        ("unknown_key", "command = \"build\"\ncomponents = [\"kubectl\"]\n\n[engine]\nimgae = \"x\"\n"),
        ("bad_platform", "command = \"build\"\ncomponents = [\"kubectl\"]\nplatforms = [\"darwin/arm64\", \"darwn/amd64\"]\n"),
        ("bad_command", "command = \"quick-relase\"\n"),
    ];
    for (name, text) in cases {
        let recipe = write_recipe(dir.path(), &format!("{name}.toml"), text);
        let (code, _, stderr) = run(kbuild().arg("recipe").arg("check").arg(&recipe));
        assert_eq!(code, 2, "{name}: {stderr}");
        let stderr = stderr.replace(&dir.path().display().to_string(), "[DIR]");
        insta::assert_snapshot!(format!("recipe_error_{name}"), stderr);
    }
}

#[test]
fn help_texts() {
    for args in [
        vec!["--help"],
        vec!["build", "--help"],
        vec!["run", "--help"],
        vec!["plan", "--help"],
        vec!["clean", "--help"],
    ] {
        let (code, stdout, stderr) = run(kbuild().args(&args).env("COLUMNS", "100"));
        assert_eq!(code, 0, "{stderr}");
        insta::assert_snapshot!(format!("help_{}", args[0].trim_start_matches('-')), stdout);
    }
}

/// Every ```toml block in the README and docs/ that holds a recipe (a `command = ` line)
/// must parse, so the documentation cannot drift from the schema.
#[test]
fn readme_recipe_examples_parse() {
    let mut readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    for page in std::fs::read_dir(repo_root().join("docs")).unwrap() {
        let page = page.unwrap().path();
        if page.extension().is_some_and(|e| e == "md") {
            readme.push_str(&std::fs::read_to_string(page).unwrap());
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for (i, block) in readme.split("```toml").skip(1).enumerate() {
        let body = block.split("```").next().unwrap();
        if !body.lines().any(|l| l.trim_start().starts_with("command")) {
            continue;
        }
        let recipe = write_recipe(dir.path(), &format!("readme-{i}.toml"), body);
        let (code, _, stderr) = run(kbuild().arg("recipe").arg("check").arg(&recipe));
        assert_eq!(
            code, 0,
            "README recipe #{i} does not check:\n{body}\n{stderr}"
        );
        checked += 1;
    }
    assert!(
        checked >= 2,
        "the documentation shows recipe examples ({checked} found)"
    );
}

#[test]
fn piped_output_has_no_escape_codes_and_json_lines_all_parse() {
    let repo = KubeRepo::tagged("v1.34.0");
    let out = tempfile::tempdir().unwrap();
    let args = |json: bool| {
        let mut cmd = build_cmd(repo.path(), out.path(), &["kubectl"], &["linux/amd64"]);
        if json {
            cmd.arg("--json");
        }
        cmd
    };
    let (code, stdout, stderr) = run(&mut args(false));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        !stderr.contains('\x1b') && !stdout.contains('\x1b'),
        "escape codes in piped output:\n{stderr}"
    );
    assert!(
        stderr.contains("==> build:"),
        "plain phase lines:\n{stderr}"
    );

    let (code, stdout, stderr) = run(args(true).arg("--force"));
    assert_eq!(code, 0, "{stderr}");
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(events
        .iter()
        .any(|e| e["event"] == "phase" && e["phase"] == "build"));
    assert!(
        events.iter().any(|e| e["event"] == "log"),
        "make's lines are events"
    );
    let last = events.last().unwrap();
    assert_eq!(last["event"], "summary");
    assert_eq!(last["ok"], true);
}

#[test]
fn on_a_terminal_the_progress_spinners_draw() {
    // `script` gives kbuild a real pseudo-terminal, as a user's shell would.
    let repo = KubeRepo::tagged("v1.34.0");
    let out = tempfile::tempdir().unwrap();
    let kbuild_bin = assert_cmd::cargo::cargo_bin("kbuild");
    let command = format!(
        "{} build kubectl --platform linux/amd64 --force --image {BUILDER_IMAGE} --kube-root {} --out {}",
        kbuild_bin.display(),
        repo.path().display(),
        out.path().display()
    );
    let output = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("TERM", "xterm-256color")
        .env_remove("NO_COLOR")
        .output()
        .expect("script (util-linux) runs");
    let screen = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{screen}");
    assert!(
        screen.contains('\x1b'),
        "a terminal gets drawing codes:\n{screen}"
    );
    assert!(screen.contains("build"), "{screen}");
    assert!(
        ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏', '✓']
            .iter()
            .any(|c| screen.contains(*c)),
        "spinner glyphs drawn:\n{screen}"
    );
    assert!(screen.contains("ok:"), "{screen}");
}

#[test]
fn running_the_mini_kube_recipe_produces_its_artifacts() {
    // The recipe the demo runs, on a tagged git copy of the fixture as the demo makes one,
    // into a directory of the test's own (flags after -- win).
    let repo = KubeRepo::tagged("v1.34.0");
    let out = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run(kbuild()
        .current_dir(repo_root())
        .args(["run", "recipes/mini-kube.toml", "--", "--kube-root"])
        .arg(repo.path())
        // Three platforms of test targets are tests/it/testtars.rs's to build.
        .arg("--no-test-tarballs")
        .arg("--out")
        .arg(out.path()));
    assert_eq!(code, 0, "{stderr}");
    let tars = out.path().join("release-tars");
    for name in [
        "kubernetes-client-linux-amd64.tar.gz",
        "kubernetes-client-darwin-arm64.tar.gz",
        "kubernetes-client-windows-amd64.tar.gz",
        "kubernetes-node-linux-amd64.tar.gz",
        "kubernetes-server-linux-amd64.tar.gz",
        "kubernetes-src.tar.gz",
        "SHA256SUMS",
        "manifest.json",
    ] {
        assert!(tars.join(name).is_file(), "{name} missing:\n{stderr}");
    }
    let kubectl = out.path().join("bin/linux/amd64/kubectl");
    // Real version facts: the tag, the commit and its date (not $Format:%H$ and 1970).
    let v = version_json(&kubectl);
    assert_eq!(v["gitVersion"], "v1.34.0");
    assert_eq!(v["gitCommit"], repo.commit());
    assert_eq!(v["buildDate"], "2023-11-14T22:13:20Z");
    assert!(!run_binary(&kubectl, &["version"]).contains("$Format"));
    let (code, _, stderr) = run(kbuild().arg("verify").arg(&tars));
    assert_eq!(code, 0, "{stderr}");
}

/// Runs `sh -c 'ulimit -v <1 GiB>; exec kbuild ARGS'` in the background and returns
/// (exit code, stderr) within `secs`: a kbuild that tried to read an endless input whole
/// would die of the memory limit (or be killed at the deadline), not take the machine down.
fn run_bounded(args: &[&str], secs: u64) -> (i32, String) {
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg("ulimit -v 1048576; exec \"$@\"")
        .arg("sh")
        .arg(assert_cmd::cargo::cargo_bin("kbuild"))
        .args(args);
    Running::spawn(&mut cmd).finish(secs)
}

#[test]
fn recipe_check_refuses_devices_fifos_and_huge_files_fast() {
    let started = std::time::Instant::now();
    let (code, stderr) = run_bounded(&["recipe", "check", "/dev/zero"], 30);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("recipe /dev/zero is a character device, not a regular file"),
        "{stderr}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "refused up front, not after reading"
    );

    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.toml");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let (code, stderr) = run_bounded(&["plan", fifo.to_str().unwrap()], 30);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("is a FIFO, not a regular file"), "{stderr}");

    // A valid recipe padded with comments past the cap: not a recipe anyone writes.
    let mut text = "command = \"build\"\ncomponents = [\"kubectl\"]\n".to_string();
    while text.len() <= 5 << 20 {
        text.push_str("# padding padding padding padding padding padding padding\n");
    }
    let big = write_recipe(dir.path(), "big.toml", &text);
    let (code, stderr) = run_bounded(&["recipe", "check", big.to_str().unwrap()], 30);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&format!("more than the {} bytes", 4 << 20)),
        "{stderr}"
    );
    assert!(stderr.contains("hint:"), "{stderr}");
}

#[test]
fn values_that_would_become_flags_empty_paths_and_nul_bytes_are_refused_at_their_location() {
    let dir = tempfile::tempdir().unwrap();
    let build = "command = \"build\"\ncomponents = [\"kubectl\"]\n";
    let cases = [
        (
            "dash",
            format!("{build}[output]\ndir = \"--upload-pack=x\"\n"),
            ":4:7: `output.dir` is \"--upload-pack=x\": a value cannot start with `-`",
        ),
        (
            "empty",
            format!("{build}[output]\ndir = \"\"\n"),
            ":4:7: `output.dir` is empty",
        ),
        (
            "nul",
            format!("{build}[source]\nkube_root = \"tree\\u0000x\"\n"),
            ":4:13: `source.kube_root` holds a NUL byte",
        ),
    ];
    for (name, text, want) in cases {
        let recipe = write_recipe(dir.path(), &format!("{name}.toml"), &text);
        let located = format!("{}{want}", recipe.display());
        for args in [vec!["recipe", "check"], vec!["plan"], vec!["run"]] {
            let (code, _, stderr) = run(kbuild().args(&args).arg(&recipe));
            assert_eq!(code, 2, "{name} {args:?}: {stderr}");
            assert!(stderr.contains(&located), "{name} {args:?}: {stderr}");
            assert!(stderr.contains("hint:"), "{name} {args:?}: {stderr}");
        }
    }
}

/// A plan's text without what differs between machines: the builder image's id, the cache
/// volume named from it, the build user.
fn machine_neutral(text: &str) -> String {
    let id = std::process::Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", BUILDER_IMAGE])
        .output()
        .unwrap();
    let id = String::from_utf8_lossy(&id.stdout).trim().to_string();
    let user = format!("{}:{}", id_of("-u"), id_of("-g"));
    text.replace(&id, "[IMAGE ID]")
        .replace(&format!("user {user}"), "user [UID:GID]")
        .split("kbuild-gocache-")
        .enumerate()
        .map(|(i, part)| match i {
            0 => part.to_string(),
            // `<12 hex>-<uid>` up to the next `:` or the end of the line.
            _ => {
                let end = part.find([':', '\n']).unwrap_or(part.len());
                format!("[CACHE VOLUME]{}", &part[end..])
            }
        })
        .collect()
}

/// `id -u` / `id -g`.
fn id_of(flag: &str) -> String {
    let out = std::process::Command::new("id").arg(flag).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
