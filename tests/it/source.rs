//! `kbuild source` and `--ref`: real git repositories with several tags, served over file://
//! and `git daemon` on 127.0.0.1; upstream's gitVersion rules checked against them.

use std::path::Path;

use crate::common::*;

/// `kbuild source --repo URL --ref REF --dir DIR [extra]` -> (code, stdout, stderr).
fn source(url: &str, git_ref: &str, dir: &Path, extra: &[&str]) -> (i32, String, String) {
    run(kbuild()
        .args(["source", "--repo", url, "--ref", git_ref, "--dir"])
        .arg(dir)
        .args(extra))
}

/// The `gitVersion` line kbuild source prints.
fn printed_version(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("gitVersion"))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("no gitVersion line in:\n{stdout}"))
}

fn head(dir: &Path) -> String {
    git(dir, &["rev-parse", "HEAD"])
}

fn short(commit: &str) -> &str {
    &commit[..14]
}

#[test]
fn clones_at_a_tag_shallow_with_far_fewer_objects_than_a_full_clone() {
    let up = HistoryRepo::new();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("k8s");
    let (code, stdout, stderr) = source(&up.url(), "v1.34.0-alpha.1", &dir, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(head(&dir), up.master[20], "HEAD is the tagged commit");
    assert_eq!(printed_version(&stdout), "v1.34.0-alpha.1");
    assert!(stdout.contains("gitMinor           34+"), "{stdout}");
    assert!(stdout.contains("gitTreeState       clean"), "{stdout}");
    assert!(
        stdout.contains("SOURCE_DATE_EPOCH  1700000000"),
        "the commit time: {stdout}"
    );
    assert!(stdout.contains("go                 1.24.4"), "{stdout}");
    assert!(
        stdout.contains("registry.k8s.io/build-image/kube-cross:v1.34.0-go1.24.4-bullseye.0"),
        "{stdout}"
    );
    assert_eq!(git(&dir, &["rev-parse", "--is-shallow-repository"]), "true");
    // Only that tag was fetched: no other tag, no branch.
    let refs = git(&dir, &["for-each-ref", "--format=%(refname)"]);
    assert_eq!(refs, "refs/tags/v1.34.0-alpha.1", "{refs}");

    let full = work.path().join("full");
    git(
        work.path(),
        &[
            "clone",
            "-q",
            "--no-checkout",
            &up.url(),
            full.to_str().unwrap(),
        ],
    );
    let (shallow_objects, full_objects) = (count_objects(&dir), count_objects(&full));
    eprintln!("objects: shallow clone at a tag {shallow_objects}, full clone {full_objects}");
    assert!(
        shallow_objects * 2 < full_objects,
        "a shallow clone holds {shallow_objects} objects, a full one {full_objects}"
    );
}

#[test]
fn clones_a_branch_over_git_daemon_and_describes_it_exactly() {
    let up = HistoryRepo::new();
    let daemon = GitDaemon::serve(up.path());
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("k8s");
    let (code, stdout, stderr) = source(&daemon.url(), "master", &dir, &[]);
    assert_eq!(code, 0, "{stderr}");
    let tip = &up.master[39];
    assert_eq!(&head(&dir), tip);
    // 19 commits after the pre-release tag v1.34.0-alpha.1: upstream's rewrite.
    assert_eq!(
        printed_version(&stdout),
        format!("v1.34.0-alpha.1.19+{}", short(tip))
    );
    // The same as describe on the full upstream history.
    assert_eq!(
        git(up.path(), &["describe", "--tags", "--abbrev=14", "master"]),
        format!("v1.34.0-alpha.1-19-g{}", short(tip))
    );
    // History was deepened only as far as needed, not fetched whole.
    assert_eq!(git(&dir, &["rev-parse", "--is-shallow-repository"]), "true");
    let have: u32 = git(&dir, &["rev-list", "--count", "HEAD"]).parse().unwrap();
    assert!(have < 40, "fetched {have} of 40 commits");
}

#[test]
fn clones_a_commit_over_git_daemon() {
    let up = HistoryRepo::new();
    let daemon = GitDaemon::serve(up.path());
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("k8s");
    let commit = &up.master[9]; // c10: 9 commits after v1.33.0
    let (code, stdout, stderr) = source(&daemon.url(), commit, &dir, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(&head(&dir), commit);
    assert_eq!(
        printed_version(&stdout),
        format!("v1.33.0-9+{}", short(commit))
    );
    assert!(
        !stderr.contains("does not serve commits by id"),
        "the commit was fetched by id: {stderr}"
    );
    // An abbreviated id of a commit no ref points at is found too (after a full fetch).
    let dir2 = work.path().join("k8s-short");
    let (code, stdout, stderr) = source(&up.url(), &up.master[4][..10], &dir2, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(head(&dir2), up.master[4]);
    assert_eq!(
        printed_version(&stdout),
        format!("v1.33.0-4+{}", short(&up.master[4]))
    );
}

#[test]
fn updates_an_existing_checkout_fetching_only_the_ref() {
    let up = HistoryRepo::new();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("k8s");
    let (code, stdout, stderr) = source(&up.url(), "v1.33.1", &dir, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(printed_version(&stdout), "v1.33.1");
    assert_eq!(head(&dir), up.release[1]);

    // Upstream moves on: the release branch gets a commit after the tag.
    let r4 = up.add_commit("release-1.33", "r4");
    let (code, stdout, stderr) = source(&up.url(), "release-1.33", &dir, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(head(&dir), r4);
    // r3 and r4 after v1.33.1.
    assert_eq!(
        printed_version(&stdout),
        format!("v1.33.1-2+{}", short(&r4))
    );
    // Only the asked ref and the version tags in its fetched history: no master, no
    // v1.34.0-alpha.1.
    let refs = git(&dir, &["for-each-ref", "--format=%(refname)"]);
    for r in refs.lines() {
        assert!(
            [
                "refs/remotes/origin/release-1.33",
                "refs/tags/v1.33.1",
                "refs/tags/v1.33.0"
            ]
            .contains(&r),
            "unexpected ref {r} fetched:\n{refs}"
        );
    }

    // And again once more upstream: an update fetches just the new commit.
    let r5 = up.add_commit("release-1.33", "r5");
    let (code, stdout, stderr) = source(&up.url(), "release-1.33", &dir, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(head(&dir), r5);
    assert_eq!(
        printed_version(&stdout),
        format!("v1.33.1-3+{}", short(&r5))
    );
}

#[test]
fn a_checkout_with_local_changes_is_not_switched_and_the_changes_stay() {
    let up = HistoryRepo::new();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("k8s");
    let (code, _, stderr) = source(&up.url(), "release-1.33", &dir, &[]);
    assert_eq!(code, 0, "{stderr}");
    let before = head(&dir);

    let edited = dir.join("pkg/history/log.txt");
    std::fs::write(&edited, "my local edit\n").unwrap();
    let untracked = dir.join("cmd/kubectl/notes.txt");
    std::fs::write(&untracked, "my notes\n").unwrap();

    // Same ref, no switch: allowed, and the version says dirty.
    let (code, stdout, stderr) = source(&up.url(), "release-1.33", &dir, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        printed_version(&stdout),
        format!("v1.33.1-1+{}-dirty", short(&before))
    );
    assert!(stdout.contains("gitTreeState       dirty"), "{stdout}");

    // Another ref: refused, exit 6, nothing touched (not even the refs the fetch brought).
    let state = checkout_state(&dir);
    let (code, _, stderr) = source(&up.url(), "master", &dir, &[]);
    assert_eq!(code, 6, "{stderr}");
    assert!(stderr.contains("uncommitted changes"), "{stderr}");
    assert!(stderr.contains("--force"), "{stderr}");
    assert!(
        stderr.contains("log.txt"),
        "the changed files are listed: {stderr}"
    );
    assert_eq!(head(&dir), before);
    assert_eq!(checkout_state(&dir), state);
    assert_eq!(std::fs::read_to_string(&edited).unwrap(), "my local edit\n");
    assert_eq!(std::fs::read_to_string(&untracked).unwrap(), "my notes\n");

    // --force switches, after stashing the changes where git keeps them.
    let (code, _, stderr) = source(&up.url(), "master", &dir, &["--force"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(head(&dir), up.master[39]);
    assert!(stderr.contains("stash"), "{stderr}");
    let stashes = git(&dir, &["stash", "list"]);
    assert!(stashes.contains("kbuild"), "{stashes}");
    git(&dir, &["checkout", "-q", &before]);
    git(&dir, &["stash", "pop", "-q"]);
    assert_eq!(std::fs::read_to_string(&edited).unwrap(), "my local edit\n");
    assert_eq!(std::fs::read_to_string(&untracked).unwrap(), "my notes\n");
}

#[test]
fn a_commit_with_no_tag_asks_for_its_version() {
    let repo = KubeRepo::tagged("v1.34.0");
    git(repo.path(), &["tag", "-d", "v1.34.0"]);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("k8s");
    let url = format!("file://{}", repo.path().display());
    let (code, _, stderr) = source(&url, "master", &dir, &[]);
    assert_eq!(code, 6, "{stderr}");
    assert!(stderr.contains("no version tag"), "{stderr}");
    assert!(stderr.contains("--version"), "{stderr}");
    assert!(stderr.contains("KUBE_GIT_VERSION"), "{stderr}");

    let (code, stdout, stderr) = source(&url, "master", &dir, &["--version", "v1.35.0-custom.1"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(printed_version(&stdout), "v1.35.0-custom.1");
    let (code, stdout, stderr) = run(kbuild()
        .env("KUBE_GIT_VERSION", "v1.35.0-env.2")
        .args(["source", "--repo", &url, "--ref", "master", "--dir"])
        .arg(&dir));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(printed_version(&stdout), "v1.35.0-env.2");
    // Not semver: refused as bad input.
    let (code, _, stderr) = source(&url, "master", &dir, &["--version", "1.35-custom"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("not a valid Kubernetes version"),
        "{stderr}"
    );
}

#[test]
fn an_unknown_ref_is_refused_with_a_suggestion() {
    let up = HistoryRepo::new();
    let work = tempfile::tempdir().unwrap();
    let (code, _, stderr) = source(&up.url(), "relese-1.33", &work.path().join("k8s"), &[]);
    assert_eq!(code, 6, "{stderr}");
    assert!(
        stderr.contains("not a tag, a branch or a commit"),
        "{stderr}"
    );
    assert!(stderr.contains("did you mean \"release-1.33\""), "{stderr}");
}

#[test]
fn json_facts_parse() {
    let up = HistoryRepo::new();
    let work = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = run(kbuild()
        .args([
            "--json",
            "source",
            "--repo",
            &up.url(),
            "--ref",
            "v1.33.0",
            "--dir",
        ])
        .arg(work.path().join("k8s")));
    assert_eq!(code, 0, "{stderr}");
    let facts: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let source = facts
        .iter()
        .find(|f| f["event"] == "source")
        .expect("a source event");
    assert_eq!(source["git_version"], "v1.33.0");
    assert_eq!(source["commit"], up.master[0].as_str());
    assert_eq!(source["tree_state"], "clean");
    assert_eq!(source["source_date_epoch"], COMMIT_EPOCH);
}

#[test]
fn build_at_a_ref_stamps_the_version_and_a_dirty_tree_says_so() {
    let up = HistoryRepo::new();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("k8s");
    let out = work.path().join("out");
    let (code, _, stderr) = run(kbuild()
        .args([
            "build",
            "kubectl",
            "--platform",
            "linux/amd64",
            "--image",
            BUILDER_IMAGE,
        ])
        .args(["--ref", "release-1.33", "--repo", &up.url(), "--source-dir"])
        .arg(&dir)
        .arg("--out")
        .arg(&out));
    assert_eq!(code, 0, "{stderr}");
    let kubectl = out.join("bin/linux/amd64/kubectl");
    let v = version_json(&kubectl);
    let tip = &up.release[2];
    assert_eq!(v["gitVersion"], format!("v1.33.1-1+{}", short(tip)));
    assert_eq!(v["gitCommit"], tip.as_str());
    assert_eq!(v["gitTreeState"], "clean");
    assert_eq!(v["minor"], "33+");

    // A local change: the binary reports -dirty once (make appends it; kbuild passes the base).
    std::fs::write(dir.join("pkg/history/log.txt"), "local edit\n").unwrap();
    let (code, _, stderr) = run(kbuild()
        .args([
            "build",
            "kubectl",
            "--platform",
            "linux/amd64",
            "--image",
            BUILDER_IMAGE,
        ])
        .arg("--kube-root")
        .arg(&dir)
        .arg("--out")
        .arg(&out));
    assert_eq!(code, 0, "{stderr}");
    let v = version_json(&kubectl);
    assert_eq!(v["gitVersion"], format!("v1.33.1-1+{}-dirty", short(tip)));
    assert_eq!(v["gitTreeState"], "dirty");
    assert_no_containers_left(&dir);
}

/// What a fetch can change in a checkout: HEAD, every ref, and the shallow boundary.
fn checkout_state(dir: &Path) -> (String, String, Option<String>) {
    let shallow = std::fs::read_to_string(dir.join(".git/shallow")).ok();
    (
        head(dir),
        git(dir, &["for-each-ref", "--format=%(objectname) %(refname)"]),
        shallow,
    )
}

#[test]
fn a_failed_first_fetch_leaves_nothing_behind_and_the_next_one_works() {
    let up = HistoryRepo::new();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("cache/k8s");
    let (code, _, stderr) = source(&up.url(), "mastr", &dir, &[]);
    assert_eq!(code, 6, "{stderr}");
    assert!(
        !work.path().join("cache").exists(),
        "the directories the failed run created are gone"
    );
    // An empty directory given by the user stays, empty.
    let empty = work.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let (code, _, stderr) = source(&up.url(), "mastr", &empty, &[]);
    assert_eq!(code, 6, "{stderr}");
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0, "still empty");

    for dir in [&dir, &empty] {
        let (code, stdout, stderr) = source(&up.url(), "master", dir, &[]);
        assert_eq!(code, 0, "{stderr}");
        assert_eq!(
            printed_version(&stdout),
            format!("v1.34.0-alpha.1.19+{}", short(&up.master[39]))
        );
    }
}

#[test]
fn a_failed_fetch_leaves_an_existing_checkout_as_it_was() {
    let up = HistoryRepo::new();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("k8s");
    let (code, _, stderr) = source(&up.url(), "v1.34.0-alpha.1", &dir, &[]);
    assert_eq!(code, 0, "{stderr}");
    let before = checkout_state(&dir);
    assert!(before.2.is_some(), "a shallow checkout");

    // A commit no branch holds: kbuild fetches every branch and tag, whole, to look for it.
    let missing = "ab".repeat(20);
    let (code, _, stderr) = source(&up.url(), &missing, &dir, &[]);
    assert_eq!(code, 6, "{stderr}");
    assert!(stderr.contains("is not in any branch or tag"), "{stderr}");
    assert_eq!(
        checkout_state(&dir),
        before,
        "HEAD, refs and shallow boundary as they were"
    );

    let (code, stdout, stderr) = source(&up.url(), "master", &dir, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        printed_version(&stdout),
        format!("v1.34.0-alpha.1.19+{}", short(&up.master[39]))
    );
}

#[test]
fn a_checkout_holding_only_git_from_an_interrupted_clone_is_completed() {
    let up = HistoryRepo::new();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("k8s");
    // What an interrupted first clone leaves: `git init` and the remote, nothing fetched.
    std::fs::create_dir(&dir).unwrap();
    git(&dir, &["init", "-q"]);
    git(&dir, &["remote", "add", "origin", &up.url()]);
    let (code, stdout, stderr) = source(&up.url(), "master", &dir, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("it holds no commits yet"), "{stderr}");
    assert_eq!(head(&dir), up.master[39]);
    assert_eq!(
        printed_version(&stdout),
        format!("v1.34.0-alpha.1.19+{}", short(&up.master[39]))
    );
    assert_eq!(
        git(&dir, &["rev-parse", "--is-shallow-repository"]),
        "true",
        "fetched like a new checkout: shallow"
    );
}
