//! What kbuild says: counts that agree with their nouns, summaries without empty parts,
//! repeated phases told apart, paths named for what is wrong with them, and help texts and
//! flags that fit each command.

use std::path::Path;

use crate::common::*;

/// The closing `ok:` line of a run's stderr.
fn summary(stderr: &str) -> &str {
    stderr
        .lines()
        .rev()
        .find(|l| l.contains("ok: "))
        .unwrap_or_else(|| panic!("no summary line in:\n{stderr}"))
}

#[test]
fn a_build_package_and_verify_speak_in_counts_that_agree() {
    let repo = KubeRepo::tagged("v1.34.0");
    let out = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run(&mut build_cmd(
        repo.path(),
        out.path(),
        &["kubectl"],
        &["linux/amd64"],
    ));
    assert_eq!(code, 0, "{stderr}");
    let line = summary(&stderr);
    assert!(line.contains("ok: built 1 binary ("), "{line}");
    // The build phase is named by its job.
    assert!(line.contains("build kubectl "), "{line}");

    let (code, _, stderr) = run(kbuild()
        .args(["package", "--kube-root"])
        .arg(repo.path())
        .arg("--out")
        .arg(out.path()));
    assert_eq!(code, 0, "{stderr}");
    assert!(summary(&stderr).contains("packaged 3 tarballs"), "{stderr}");

    // One artifact gone: one problem, said in the singular.
    let tars = out.path().join("release-tars");
    std::fs::remove_file(tars.join("kubernetes-client-linux-amd64.tar.gz")).unwrap();
    let (code, _, stderr) = run(kbuild().arg("verify").arg(&tars));
    assert_eq!(code, 7, "{stderr}");
    assert!(
        stderr.contains("verification failed (1 problem):"),
        "{stderr}"
    );
}

#[test]
fn a_quick_release_names_each_build_job_in_its_summary() {
    let repo = KubeRepo::tagged("v1.34.0");
    let out = tempfile::tempdir().unwrap();
    // darwin gets the client only, linux everything: two build jobs (no test jobs).
    let (code, _, stderr) = run(kbuild()
        .args([
            "quick-release",
            "--no-test-tarballs",
            "--no-images",
            "--platform",
            "linux/amd64",
            "--platform",
            "darwin/arm64",
        ])
        .arg("--kube-root")
        .arg(repo.path())
        .args(["--image", BUILDER_IMAGE, "--out"])
        .arg(out.path()));
    assert_eq!(code, 0, "{stderr}");
    let line = summary(&stderr);
    let times = &line[line.rfind(" (").unwrap_or_else(|| panic!("{line}"))..];
    let builds: Vec<&str> = times
        .split([',', '(', ')'])
        .map(str::trim)
        .filter(|t| t.starts_with("build "))
        .map(|t| t.rsplit_once(' ').unwrap().0)
        .collect();
    assert!(builds.len() >= 2, "several build jobs: {line}");
    let mut distinct = builds.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), builds.len(), "each labelled: {line}");
    assert!(
        builds.iter().all(|b| b.starts_with("build quick-release-")),
        "{line}"
    );
}

#[test]
fn a_summary_with_no_phase_long_enough_to_show_has_no_empty_parentheses() {
    let (code, _, stderr) = run(kbuild()
        .arg("doctor")
        .arg("--kube-root")
        .arg(fixture_dir())
        .args(["--image", BUILDER_IMAGE])
        .args([
            "--skip-check",
            "memory",
            "--skip-check",
            "disk",
            "--skip-check",
            "cpus",
        ]));
    assert_eq!(code, 0, "{stderr}");
    let line = summary(&stderr);
    assert!(line.contains("ok: all checks passed"), "{line}");
    assert!(!line.contains("()"), "{line}");
}

#[test]
fn a_missing_or_wrong_kind_of_path_is_named_for_what_is_wrong() {
    let work = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run(kbuild().args(["verify", "/nonexistent"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("/nonexistent does not exist"), "{stderr}");

    let afile = work.path().join("afile");
    std::fs::write(&afile, "mine\n").unwrap();
    let (code, _, stderr) = run(kbuild().arg("verify").arg(&afile));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("afile is not a directory"), "{stderr}");

    let repo = KubeRepo::tagged("v1.34.0");
    for out in [afile.clone(), afile.join("sub")] {
        let (code, _, stderr) = run(&mut build_cmd(repo.path(), &out, &["kubectl"], &[]));
        assert_eq!(code, 2, "{}: {stderr}", out.display());
        assert!(stderr.contains("afile is not a directory"), "{stderr}");
        assert!(!stderr.contains("File exists"), "{stderr}");
    }
    assert_eq!(std::fs::read_to_string(&afile).unwrap(), "mine\n");
}

fn help(args: &[&str]) -> String {
    let (code, stdout, stderr) = run(kbuild().args(args).arg("--help"));
    assert_eq!(code, 0, "{stderr}");
    stdout
}

#[test]
fn package_help_says_what_its_source_and_platform_flags_choose() {
    let text = help(&["package"]);
    for building in [
        "to build",
        "checkout to build",
        "Build the source at this tag",
    ] {
        assert!(!text.contains(building), "{building}:\n{text}");
    }
    insta::assert_snapshot!("help_package", text);
}

#[test]
fn lock_flags_are_on_the_commands_that_lock_and_only_there() {
    for command in [
        "build",
        "quick-release",
        "extension",
        "package",
        "run",
        "source",
    ] {
        let text = help(&[command]);
        assert!(text.contains("--no-wait"), "{command}:\n{text}");
        assert!(text.contains("--lock-timeout"), "{command}:\n{text}");
    }
    for command in [
        vec!["verify"],
        vec!["doctor"],
        vec!["clean"],
        vec!["plan"],
        vec!["recipe", "check"],
        vec!["man"],
    ] {
        let text = help(&command);
        assert!(!text.contains("--no-wait"), "{command:?}:\n{text}");
        assert!(!text.contains("--lock-timeout"), "{command:?}:\n{text}");
    }
    let (code, _, stderr) = run(kbuild().args(["verify", "--no-wait", "out"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("unexpected argument '--no-wait'"),
        "{stderr}"
    );

    // A recipe's command takes them after `--`, and `run` itself takes them too.
    let recipe = Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes/mini-kube.toml");
    let (code, stdout, stderr) = run(kbuild()
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("plan")
        .arg(&recipe)
        .args(["--", "--no-wait"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("nothing was run."), "{stdout}");
    let (code, _, stderr) = run(kbuild().args(["run", "--lock-timeout", "5", "/nonexistent.toml"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(!stderr.contains("unexpected argument"), "{stderr}");
}

#[test]
fn stall_timeout_zero_is_documented_as_off() {
    for command in ["build", "quick-release", "extension"] {
        let text = help(&[command]);
        assert!(
            text.contains("0 turns the stall check off"),
            "{command}:\n{text}"
        );
    }
}

/// A place to run kbuild from that is no Kubernetes tree and has no docker configuration:
/// what kbuild says there depends on the command line alone.
struct Words {
    dir: tempfile::TempDir,
}

impl Words {
    fn new() -> Words {
        Words {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `kbuild args` run here, with the terminal width, colour and engine choice fixed.
    fn cmd(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = kbuild();
        cmd.current_dir(self.path())
            .args(args)
            .env("COLUMNS", "100")
            .env("NO_COLOR", "1")
            .env("TERM", "dumb")
            .env("DOCKER_CONFIG", self.path().join("no-docker-config"))
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT");
        cmd
    }

    /// The exit code, stdout and the whole of stderr of `kbuild args`, with this place's
    /// path and the repository's replaced: the text a snapshot keeps.
    fn said(&self, args: &[&str]) -> String {
        let (code, stdout, stderr) = run(&mut self.cmd(args));
        let normal = |text: &str| {
            text.replace(&self.path().display().to_string(), "[HERE]")
                .replace(env!("CARGO_MANIFEST_DIR"), "[REPO]")
        };
        format!(
            "$ kbuild {}\nexit {code}\n--- stdout\n{}--- stderr\n{}",
            normal(&args.join(" ")),
            normal(&stdout),
            normal(&stderr)
        )
    }

    /// A recipe that builds kubectl, written here.
    fn recipe(&self) -> String {
        let path = self.path().join("kubectl.toml");
        std::fs::write(&path, "command = \"build\"\ncomponents = [\"kubectl\"]\n").unwrap();
        path.display().to_string()
    }

    /// A recipe that builds kubectl from `tree`: a plan pins a tree it can read.
    fn recipe_for(&self, tree: &Path) -> String {
        let path = self.path().join("kubectl.toml");
        let text = format!(
            "command = \"build\"\ncomponents = [\"kubectl\"]\n\n[source]\nkube_root = \"{}\"\n",
            tree.display()
        );
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }
}

#[test]
fn a_plans_command_line_refused_by_clap_is_said_whole() {
    let here = Words::new();
    let said: Vec<String> = [
        // What is missing, under the message.
        &["plan", "build"][..],
        // The valid values.
        &["plan", "build", "kubectl", "--engine", "nope"],
        // The `-- -1` tip.
        &["plan", "build", "kubectl", "--cpus", "-1"],
        // The flag meant.
        &["plan", "build", "kubectl", "--platfrom", "linux/amd64"],
    ]
    .iter()
    .map(|args| here.said(args))
    .collect();
    insta::assert_snapshot!("plan_refused_by_clap", said.join("\n"));
}

#[test]
fn a_failed_json_plan_ends_with_the_json_summary() {
    let here = Words::new();
    let recipe = here.recipe();
    let said: Vec<String> = [
        &["--json", "plan", "build"][..],
        &["plan", "build", "--json"],
        &["plan", &recipe, "--json", "--engine", "nope"],
        &["plan", &recipe, "--", "--json", "--bogus"],
    ]
    .iter()
    .map(|args| here.said(args))
    .collect();
    insta::assert_snapshot!("plan_json_refused", said.join("\n"));
}

#[test]
fn json_after_a_plans_recipe_is_honoured() {
    let here = Words::new();
    let tree = KubeRepo::tagged("v1.34.0");
    let recipe = here.recipe_for(tree.path());
    for args in [
        vec!["plan", &recipe, "--json"],
        vec!["plan", &recipe, "--", "--json"],
        vec!["--json", "plan", &recipe],
    ] {
        let (code, stdout, stderr) = run(&mut here.cmd(&args));
        assert_eq!(code, 0, "{args:?}: {stderr}");
        let plan: serde_json::Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("{args:?}: not one JSON document ({e}):\n{stdout}"));
        assert_eq!(plan["command"], "build", "{args:?}");
    }
}

#[test]
fn cpus_engines_and_images_are_refused_in_true_words() {
    let here = Words::new();
    let said: Vec<String> = [
        &["plan", "build", "kubectl", "--cpus", "0.0000001"][..],
        &["plan", "build", "kubectl", "--cpus", "1e30"],
        &["plan", "build", "kubectl", "--engines", ",,"],
        &[
            "plan",
            "build",
            "kubectl",
            "--engines",
            "tcp://a:2375,,tcp://b:2375",
        ],
        &["plan", "build", "kubectl", "--engines", "default,default"],
        &[
            "plan",
            "build",
            "kubectl",
            "--engines",
            "default,unix:///var/run/docker.sock",
        ],
        &["plan", "build", "kubectl", "--image", "Bad Image!!"],
    ]
    .iter()
    .map(|args| here.said(args))
    .collect();
    insta::assert_snapshot!("refused_settings", said.join("\n"));
}

/// `--cpus` above what the engine has is refused when the engine answers, before any
/// container is made (Docker would refuse the container, exit 5).
#[test]
fn cpus_beyond_the_engine_are_refused_before_anything_is_made() {
    let here = Words::new();
    let tree = KubeRepo::tagged("v1.34.0");
    let (code, _, stderr) = run(&mut here.cmd(&[
        "plan",
        "build",
        "kubectl",
        "--kube-root",
        &tree.path().display().to_string(),
        "--cpus",
        "100000",
    ]));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("--cpus 100000 is more than the "),
        "{stderr}"
    );
    assert!(stderr.contains("CPUs of the engine at unix://"), "{stderr}");
    assert!(stderr.contains("hint: give at most --cpus "), "{stderr}");
}

/// The default `--out` follows the directory kbuild runs in: help says the rule, so help,
/// the man page and the completions are the same text wherever they are made.
#[test]
fn help_man_and_completions_do_not_depend_on_where_they_are_made() {
    let plain = Words::new();
    let tree = Words::new();
    std::fs::create_dir_all(tree.path().join("build/build-image/cross")).unwrap();
    std::fs::write(tree.path().join("build/build-image/cross/VERSION"), "v1\n").unwrap();
    std::fs::write(tree.path().join("go.mod"), "module k8s.io/kubernetes\n").unwrap();
    for args in [
        vec!["build", "--help"],
        vec!["quick-release", "--help"],
        vec!["clean", "--help"],
        vec!["verify", "--help"],
        vec!["man"],
        vec!["completions", "zsh"],
        vec!["completions", "fish"],
    ] {
        let (code, text, stderr) = run(&mut plain.cmd(&args));
        assert_eq!(code, 0, "{args:?}: {stderr}");
        let (_, in_tree, _) = run(&mut tree.cmd(&args));
        assert_eq!(text, in_tree, "{args:?}");
    }
    let (_, text, _) = run(&mut plain.cmd(&["build", "--help"]));
    let out = &text[text.find("--out <DIR>").unwrap()..];
    insta::assert_snapshot!("help_build_out", &out[..out.find("\n      --").unwrap()]);
}
