//! Version facts as upstream's hack/lib/version.sh derives them: gitMinor's `+`, and trees
//! whose version cannot be derived (not a git checkout of their own) refused unless given.

use std::path::Path;

use crate::common::*;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `kbuild plan` of a one-job build recipe for the tree at `root` with `version`.
fn plan_with_version(root: &Path, version: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let recipe = dir.path().join("r.toml");
    std::fs::write(
        &recipe,
        format!(
            "command = \"build\"\ncomponents = [\"kubectl\"]\n[source]\nkube_root = \"{}\"\nversion = \"{version}\"\n[engine]\nimage = \"{BUILDER_IMAGE}\"\n",
            s(root)
        ),
    )
    .unwrap();
    let (code, stdout, stderr) = run(kbuild().arg("plan").arg(&recipe));
    assert_eq!(code, 0, "{stderr}");
    stdout
}

#[test]
fn build_metadata_alone_gives_no_plus_on_git_minor() {
    let repo = KubeRepo::tagged("v1.34.0");
    // version.sh's regex: `+` only when a `-` part follows MAJOR.MINOR[.PATCH].
    for (version, minor) in [
        ("v1.34.2+custom", "34"),
        ("v1.34.2-rc.1", "34+"),
        ("v1.34.2-rc.1+custom", "34+"),
    ] {
        let plan = plan_with_version(repo.path(), version);
        assert!(
            plan.lines()
                .any(|l| l.trim().ends_with(&format!("env KUBE_GIT_MINOR={minor}"))),
            "{version} should pass KUBE_GIT_MINOR={minor}:\n{plan}"
        );
    }
}

fn refused_without_a_version(root: &Path, out: &Path, says: &str) {
    let (code, _, stderr) = run(&mut build_cmd(root, out, &["kubectl"], &["linux/amd64"]));
    assert_eq!(code, 6, "{stderr}");
    assert!(stderr.contains(says), "{stderr}");
    assert!(
        stderr.contains("hint:") && stderr.contains("--version"),
        "{stderr}"
    );
    assert!(!out.join("bin").exists(), "nothing built");
    assert!(!root.join("_output").exists(), "nothing built in the tree");
}

#[test]
fn a_tree_that_is_not_its_own_checkout_is_refused_unless_a_version_is_given() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");

    // An exported tree: no git at all.
    let plain = work.path().join("plain");
    copy_tree(&fixture_dir(), &plain);
    refused_without_a_version(&plain, &out, "is not a git checkout");
    // KUBE_GIT_VERSION counts as given too... refused only when neither is set.
    let (code, _, stderr) =
        run(build_cmd(&plain, &out, &["kubectl"], &["linux/amd64"])
            .env("KUBE_GIT_VERSION", "v1.34.1"));
    assert_eq!(code, 0, "{stderr}");
    let kubectl = out.join("bin/linux/amd64/kubectl");
    assert_eq!(version_json(&kubectl)["gitVersion"], "v1.34.1");

    // A tree inside another repository: that repository's commit is not the tree's.
    let outer = work.path().join("outer");
    copy_tree(&fixture_dir(), &outer.join("vendor/kube"));
    git(&outer, &["init", "-q", "-b", "main"]);
    commit_all(&outer, "outer");
    let out2 = work.path().join("out2");
    refused_without_a_version(
        &outer.join("vendor/kube"),
        &out2,
        "sits inside the repository at",
    );
    assert_no_containers_left(&plain);
}
