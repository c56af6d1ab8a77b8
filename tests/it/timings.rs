//! `--timings`: the page a real run writes, rendered by a real browser (headless Chromium
//! from Debian), and read back from the browser's DOM; the timings of a failed run; no
//! timings in a directory kbuild did not claim.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

/// `cargo xtask test` sets it, so that a machine without Chromium fails the test there
/// instead of skipping it.
const REQUIRE_CHROMIUM: &str = "KBUILD_REQUIRE_CHROMIUM";

/// Debian's chromium, or None (with the reason printed) when the test may skip.
fn chromium() -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join("chromium"))
        .find(|path| path.is_file());
    if found.is_none() {
        assert!(
            std::env::var_os(REQUIRE_CHROMIUM).is_none(),
            "{REQUIRE_CHROMIUM} is set but chromium is not installed (apt-get install chromium)"
        );
        eprintln!(
            "skipped: chromium is not installed (apt-get install chromium, or run `cargo xtask test`, which installs it)"
        );
    }
    found
}

/// Runs headless Chromium on `page` with `args`, in a profile of its own; returns stdout.
fn headless(chromium: &Path, page: &Path, args: &[&str]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("timeout")
        .arg("180")
        .arg(chromium)
        .args(["--headless", "--no-sandbox", "--disable-gpu"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 DOM")
}

/// The data the page embeds for tools, as the browser's DOM holds it.
/// Renders `html` to `png` at 1400x900 and checks it is a real, non-blank picture.
fn assert_renders(chromium: &Path, html: &Path, png: &Path) {
    headless(
        chromium,
        html,
        &[
            &format!("--screenshot={}", png.display()),
            "--window-size=1400,900",
        ],
    );
    let image = std::fs::read(png).expect("chromium wrote the screenshot");
    assert_eq!(&image[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    let (width, height) = (
        u32::from_be_bytes(image[16..20].try_into().unwrap()),
        u32::from_be_bytes(image[20..24].try_into().unwrap()),
    );
    assert_eq!((width, height), (1400, 900), "the window's size");
    // A blank 1400x900 page compresses to a few KiB; bars, text and tables do not.
    assert!(
        image.len() > 20_000,
        "the screenshot is nearly empty ({} bytes)",
        image.len()
    );
}

fn embedded_data(dom: &str) -> serde_json::Value {
    let marker = "id=\"kbuild-timings\"";
    let at = dom.find(marker).expect("the page embeds its data");
    let start = at + dom[at..].find('>').expect("tag ends") + 1;
    let len = dom[start..].find("</script>").expect("script ends");
    serde_json::from_str(&dom[start..start + len]).expect("the embedded data is JSON")
}

/// The JSON events kbuild printed with `--json`.
fn events(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn spans_of_kind<'a>(data: &'a serde_json::Value, kind: &str) -> Vec<&'a serde_json::Value> {
    data["spans"]
        .as_array()
        .expect("spans")
        .iter()
        .filter(|s| s["kind"] == kind)
        .collect()
}

#[test]
fn a_quick_release_timeline_renders_in_chromium_with_every_job_on_the_engine_lane() {
    let Some(chromium) = chromium() else { return };
    let repo = KubeRepo::tagged("v1.34.0");
    let parent = tempfile::tempdir().unwrap();
    let out = parent.path().join("out");
    let (code, stdout, stderr) = run(kbuild()
        .args([
            "--json",
            "quick-release",
            "--timings",
            "--no-test-tarballs",
            "--no-images",
        ])
        .args(["--platform", "linux/amd64", "--platform", "darwin/arm64"])
        .arg("--kube-root")
        .arg(repo.path())
        .args(["--image", BUILDER_IMAGE])
        .arg("--out")
        .arg(&out));
    assert_eq!(code, 0, "quick-release failed:\n{stderr}");

    // What the run itself said: its jobs, and the engine it ran them on.
    let events = events(&stdout);
    let mut jobs: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "phase" && e["phase"] == "build")
        .filter_map(|e| e["job"].as_str())
        .collect();
    jobs.sort();
    assert!(
        jobs.len() >= 2,
        "a two-platform quick-release has several jobs: {jobs:?}"
    );
    let engine_detail = events
        .iter()
        .find(|e| e["event"] == "phase" && e["phase"] == "engine")
        .and_then(|e| e["detail"].as_str())
        .expect("an engine phase");

    let html = out.join("kbuild-timings.html");
    assert_renders(&chromium, &html, &parent.path().join("timings.png"));

    let dom = headless(&chromium, &html, &["--dump-dom"]);
    assert!(dom.contains("<svg"), "the chart is in the DOM");
    let data = embedded_data(&dom);
    let file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("kbuild-timings.json")).unwrap()).unwrap();
    assert_eq!(data, file, "the page and the JSON file carry the same data");
    assert_eq!(data["ok"], true);
    assert_eq!(data["command"], "kbuild quick-release");

    let engines = data["engines"].as_array().expect("engines");
    assert_eq!(engines.len(), 1, "one engine: {engines:?}");
    let engine = engines[0]["name"].as_str().unwrap();
    assert!(
        engine_detail.contains(&format!("at {engine} ")),
        "the engine lane {engine:?} is the engine the run used: {engine_detail}"
    );
    let job_spans = spans_of_kind(&data, "job");
    let mut timed: Vec<&str> = job_spans.iter().filter_map(|s| s["job"].as_str()).collect();
    timed.sort();
    assert_eq!(timed, jobs, "each job of the run is on the timeline once");
    for span in &job_spans {
        assert_eq!(span["lane"], engine, "a job's lane is its engine: {span}");
        assert_eq!(span["ok"], true);
        assert!(span["end"].as_f64() >= span["start"].as_f64(), "{span}");
    }
    assert_eq!(engines[0]["jobs"], jobs.len());
    let share = engines[0]["busy_share"].as_f64().unwrap();
    assert!(share > 0.0 && share <= 1.0, "busy share {share}");

    let lanes: Vec<&str> = data["lanes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["name"].as_str())
        .collect();
    assert_eq!(lanes[..2], ["kbuild", engine], "{lanes:?}");
    let phases: Vec<&str> = spans_of_kind(&data, "phase")
        .iter()
        .filter_map(|s| s["label"].as_str())
        .collect();
    for phase in ["source", "checks", "package"] {
        assert!(phases.contains(&phase), "{phase} in {phases:?}");
    }
    // Every tarball written by a packaging thread, on that thread's lane.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("release-tars/manifest.json")).unwrap())
            .unwrap();
    let packaged = spans_of_kind(&data, "package");
    for artifact in manifest["artifacts"].as_array().unwrap() {
        let file = artifact["file"].as_str().unwrap();
        if !file.ends_with(".tar.gz") {
            continue;
        }
        let span = packaged
            .iter()
            .find(|s| s["label"] == format!("package {file}"))
            .unwrap_or_else(|| panic!("{file} has no packaging span"));
        assert!(
            span["lane"]
                .as_str()
                .unwrap()
                .starts_with("package thread "),
            "{span}"
        );
    }

    // Recorded as kbuild's, so `kbuild clean` removes them.
    let owner: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join(".kbuild/owner.json")).unwrap()).unwrap();
    let paths = owner["paths"].as_array().unwrap();
    for name in ["kbuild-timings.html", "kbuild-timings.json"] {
        assert!(paths.iter().any(|p| p == name), "{name} in {paths:?}");
    }
    assert_no_containers_left(repo.path());
}

#[test]
fn a_failed_build_still_writes_its_timings_with_the_failed_job() {
    let repo = KubeRepo::tagged("v1.34.0");
    patch_build_script(
        repo.path(),
        "echo 'kbuild-test: failing on purpose' >&2; exit 3",
        "",
    );
    let parent = tempfile::tempdir().unwrap();
    let out = parent.path().join("out");
    let (code, _, stderr) =
        run(build_cmd(repo.path(), &out, &["kubectl"], &["linux/amd64"]).arg("--timings"));
    assert_eq!(code, 4, "the build fails:\n{stderr}");
    let data: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("kbuild-timings.json")).unwrap())
            .expect("timings written for the failed run");
    assert_eq!(data["ok"], false);
    let jobs = spans_of_kind(&data, "job");
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0]["job"], "kubectl");
    assert_eq!(jobs[0]["ok"], false, "the job failed");
    let build = spans_of_kind(&data, "phase")
        .into_iter()
        .find(|s| s["label"] == "build kubectl")
        .expect("the build phase");
    assert_eq!(build["ok"], false, "the run stopped in the build phase");
    let page = std::fs::read_to_string(out.join("kbuild-timings.html")).unwrap();
    assert!(page.contains("failed"), "the page says the run failed");
    assert_no_containers_left(repo.path());
}

#[test]
fn no_timings_go_into_a_directory_kbuild_did_not_claim() {
    let repo = KubeRepo::tagged("v1.34.0");
    let out = tempfile::tempdir().unwrap();
    std::fs::write(out.path().join("notes.txt"), b"mine").unwrap();
    let (code, _, stderr) =
        run(build_cmd(repo.path(), out.path(), &["kubectl"], &["linux/amd64"]).arg("--timings"));
    assert_eq!(
        code, 2,
        "a directory with files and no marker is refused:\n{stderr}"
    );
    assert!(
        stderr.contains("timings not written"),
        "the user learns why there are no timings:\n{stderr}"
    );
    let names: Vec<String> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["notes.txt"], "nothing added");
}

#[test]
fn a_two_engine_build_timeline_renders_in_chromium_with_a_lane_per_engine() {
    let Some(chromium) = chromium() else { return };
    let second = crate::engines::SecondEngine::shared();
    let repo = KubeRepo::tagged("v1.34.0");
    let parent = tempfile::tempdir().unwrap();
    let out = parent.path().join("out");
    let engines = format!("unix:///var/run/docker.sock,{}", second.docker_host());
    let (code, stdout, stderr) = run(kbuild()
        .args(["--json", "build", "kubectl", "--timings", "--force"])
        .args(["--platform", "linux/amd64", "--platform", "darwin/arm64"])
        .args(["--engines", &engines])
        .arg("--kube-root")
        .arg(repo.path())
        .args(["--image", BUILDER_IMAGE])
        .arg("--out")
        .arg(&out));
    assert_eq!(code, 0, "the two-engine build failed:\n{stderr}");
    // Which engine ran which job, as the run reported it.
    let ran: Vec<(String, String)> = events(&stdout)
        .iter()
        .filter(|e| e["event"] == "ran")
        .map(|e| {
            (
                e["job"].as_str().unwrap().to_string(),
                e["engine"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(ran.len(), 2, "one job per platform: {ran:?}\n{stdout}");

    let html = out.join("kbuild-timings.html");
    assert_renders(&chromium, &html, &parent.path().join("timings.png"));
    let dom = headless(&chromium, &html, &["--dump-dom"]);
    let data = embedded_data(&dom);
    let engines = data["engines"].as_array().expect("engines");
    assert_eq!(
        engines.len(),
        2,
        "both engines are on the page: {engines:?}"
    );
    let job_spans = spans_of_kind(&data, "job");
    for (job, _) in &ran {
        assert!(
            job_spans.iter().any(|s| s["job"] == job.as_str()),
            "job {job} is on the timeline: {job_spans:?}"
        );
    }
    // Every job sits on the lane of an engine the page lists.
    let lanes: Vec<&str> = engines.iter().filter_map(|e| e["name"].as_str()).collect();
    for span in &job_spans {
        let lane = span["lane"].as_str().unwrap();
        assert!(lanes.contains(&lane), "{lane} is one of {lanes:?}");
    }
    assert_no_containers_left(repo.path());
}
