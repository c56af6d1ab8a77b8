//! The Go cache travels: `kbuild cache export|import` and `--cache-from`, as a CI cache
//! step uses them around kbuild commands. The tests use an image of their own, built FROM
//! the builder image with a label (so its own key and its own cache volume, which they
//! remove without touching the cache other tests share).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

/// A builder image of the test's own, removed with its cache volumes when dropped.
struct OwnImage(String);

impl OwnImage {
    fn new(name: &str) -> OwnImage {
        let tag = format!("kbuild-gocache-test:{name}");
        let dockerfile = format!("FROM {BUILDER_IMAGE}\nLABEL io.kbuild.test=gocache-{name}\n");
        let mut child = Command::new("docker")
            .args(["build", "-q", "-t", &tag, "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(dockerfile.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success(), "docker build {tag}");
        let image = OwnImage(tag);
        image.remove_volumes();
        image
    }

    fn volumes(&self) -> Vec<String> {
        let out = Command::new("docker")
            .args(["volume", "ls", "-q", "--filter"])
            .arg(format!("label=io.kbuild.image={}", self.0))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn remove_volumes(&self) {
        for v in self.volumes() {
            let _ = Command::new("docker")
                .args(["volume", "rm", "-f", &v])
                .output();
        }
    }

    /// The cache volume (not its `.owned` record).
    fn volume(&self) -> String {
        self.volumes()
            .into_iter()
            .find(|v| !v.ends_with(".owned"))
            .expect("a cache volume")
    }

    /// Runs `script` in the cache volume (at /c) and returns its stdout.
    fn in_volume(&self, script: &str) -> String {
        let out = Command::new("docker")
            .args(["run", "--rm", "--network", "none", "-v"])
            .arg(format!("{}:/c", self.volume()))
            .args([BUILDER_IMAGE, "bash", "-c", script])
            .output()
            .unwrap();
        assert!(out.status.success(), "{script}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The cache volume's files as `owner mtime path`, sorted.
    fn listing(&self) -> Vec<String> {
        let volume = self.volume();
        let out = Command::new("docker")
            .args(["run", "--rm", "--network", "none", "-v"])
            .arg(format!("{volume}:/c:ro"))
            .args([
                BUILDER_IMAGE,
                "find",
                "/c",
                "-type",
                "f",
                "-printf",
                "%U %T@ %P\\n",
            ])
            .output()
            .unwrap();
        assert!(out.status.success());
        let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                // Whole seconds: what the manifest keeps.
                let mut parts = l.splitn(3, ' ');
                let (uid, t, p) = (
                    parts.next().unwrap(),
                    parts.next().unwrap(),
                    parts.next().unwrap(),
                );
                format!("{uid} {} {p}", t.split('.').next().unwrap())
            })
            .collect();
        lines.sort();
        lines
    }
}

impl Drop for OwnImage {
    fn drop(&mut self) {
        self.remove_volumes();
        let _ = Command::new("docker").args(["rmi", "-f", &self.0]).output();
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn cache(args: &[&str], image: &str) -> (i32, String) {
    let (code, _, stderr) = run(kbuild().arg("cache").args(args).args(["--image", image]));
    (code, stderr)
}

/// "kubectl: compiled N Go packages", or 0 when every package came from the cache.
fn compiled(stderr: &str) -> u64 {
    stderr
        .lines()
        .find_map(|l| {
            let rest = l.split("kubectl: compiled ").nth(1)?;
            rest.split(' ').next()?.parse().ok()
        })
        .unwrap_or(0)
}

fn build(repo: &KubeRepo, out: &Path, image: &str, extra: &[&str]) -> (i32, String) {
    let (code, _, stderr) = run(kbuild()
        .args([
            "build",
            "kubectl",
            "--platform",
            "linux/amd64",
            "--kube-root",
        ])
        .arg(repo.path())
        .args(["--image", image, "--out"])
        .arg(out)
        .args(extra));
    (code, stderr)
}

fn manifest(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("kbuild-cache.json")).unwrap()).unwrap()
}

/// The CI recipe of the README, then everything that can go wrong with an import.
#[test]
fn a_go_cache_travels_to_a_fresh_engine_and_bad_ones_are_refused() {
    let image = OwnImage::new("travel");
    let img = image.0.as_str();
    let repo = KubeRepo::tagged("v1.34.0");
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("ci-cache/kbuild-go");
    let out = work.path().join("out");

    // The README's CI steps on a fresh machine: nothing restored yet, build, export.
    let (code, stderr) = build(&repo, &out, img, &[]);
    assert_eq!(code, 0, "{stderr}");
    let cold = compiled(&stderr);
    assert!(
        cold > 50,
        "a cold cache compiles the standard library: {cold}"
    );
    let (code, stderr) = cache(&["export", s(&dir)], img);
    assert_eq!(code, 0, "{stderr}");
    let m = manifest(&dir);
    let entries = m["entries"].as_array().unwrap().len();
    assert!(entries > 100, "{entries}");
    assert_eq!(m["key"]["go"], "go1.24.4");
    // Incremental: a second export writes nothing.
    let (code, stderr) = cache(&["export", s(&dir)], img);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains(", 0 written"), "{stderr}");
    let tarball = work.path().join("cache.tar");
    let (code, stderr) = cache(&["export", s(&tarball)], img);
    assert_eq!(code, 0, "{stderr}");

    // Size cap: the most recently used entries up to the size, said as kbuild's policy.
    let small = work.path().join("small");
    let (code, stderr) = cache(&["export", s(&small), "--max-size", "4m"], img);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("left out by --max-size"), "{stderr}");
    let sm = manifest(&small);
    let kept: Vec<&serde_json::Value> = sm["entries"].as_array().unwrap().iter().collect();
    let size: u64 = kept.iter().map(|e| e["size"].as_u64().unwrap()).sum();
    assert!(
        size <= 4 << 20 && !kept.is_empty() && kept.len() < entries,
        "{size}"
    );
    let oldest_kept = kept
        .iter()
        .map(|e| e["mtime"].as_u64().unwrap())
        .min()
        .unwrap();
    let newest_left = m["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| !kept.iter().any(|k| k["path"] == e["path"]))
        .map(|e| e["mtime"].as_u64().unwrap())
        .max()
        .unwrap();
    assert!(oldest_kept >= newest_left, "trimmed by last use");

    // Another image's key: refused, exit 2.
    let (code, stderr) = cache(&["import", s(&dir)], BUILDER_IMAGE);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("was made for"), "{stderr}");

    // A fresh engine: the cache volume goes.
    image.remove_volumes();
    assert!(image.volumes().is_empty());

    // Corrupted and truncated archives are refused, and no volume is even made.
    let bytes = std::fs::read(&tarball).unwrap();
    let mut flipped = bytes.clone();
    flipped[bytes.len() / 2] ^= 0x55;
    let corrupt = work.path().join("corrupt.tar");
    std::fs::write(&corrupt, &flipped).unwrap();
    let cut = work.path().join("cut.tar");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    for bad in [&corrupt, &cut] {
        let (code, stderr) = cache(&["import", s(bad)], img);
        assert_eq!(code, 2, "{}: {stderr}", bad.display());
        assert!(stderr.contains("is refused"), "{stderr}");
        assert!(
            image.volumes().is_empty(),
            "{} changed nothing",
            bad.display()
        );
    }

    // --no-cache-import (and the recipe key) refuse imports.
    let (code, stderr) = build(
        &repo,
        &out,
        img,
        &["--cache-from", s(&dir), "--no-cache-import"],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("turned off"), "{stderr}");
    let recipe = work.path().join("release.toml");
    std::fs::write(
        &recipe,
        format!(
            "command = \"build\"\ncomponents = [\"kubectl\"]\nplatforms = [\"linux/amd64\"]\n\
             [source]\nkube_root = \"{}\"\n[engine]\nimage = \"{img}\"\nno_cache_import = true\n\
             [output]\ndir = \"{}\"\n",
            repo.path().display(),
            out.display()
        ),
    )
    .unwrap();
    let (code, _, stderr) = run(kbuild().args(["run", s(&recipe), "--", "--cache-from", s(&dir)]));
    assert_eq!(code, 2, "{stderr}");
    assert!(image.volumes().is_empty());

    // The CI restore: files owned by another runner's uid, then the build with --cache-from.
    let chown = Command::new("chown")
        .args(["-R", "4321:4321", s(&dir)])
        .status()
        .unwrap();
    assert!(chown.success());
    let (code, stderr) = build(&repo, &out, img, &["--force", "--cache-from", s(&dir)]);
    assert_eq!(code, 0, "{stderr}");
    let warm = compiled(&stderr);
    assert!(
        warm * 10 < cold,
        "the imported cache served the rebuild: {warm} of {cold}"
    );
    // Owned by the build user (this test's uid), mtimes as exported.
    let uid = rustix::process::getuid().as_raw().to_string();
    let listing = image.listing();
    assert!(listing.len() >= entries);
    assert!(
        listing.iter().all(|l| l.starts_with(&format!("{uid} "))),
        "{listing:?}"
    );
    let first = &m["entries"][0];
    let line = format!(
        "{uid} {} {}",
        first["mtime"],
        first["path"].as_str().unwrap()
    );
    assert!(listing.contains(&line), "mtime kept: {line}");

    // A bad archive on a warm volume changes nothing either.
    let before = image.listing();
    let (code, _) = cache(&["import", s(&corrupt)], img);
    assert_eq!(code, 2);
    assert_eq!(image.listing(), before);

    // A union: an entry the volume holds is never overwritten, one it lacks is added back.
    let (kept, lost) = (
        m["entries"][0]["path"].as_str().unwrap(),
        m["entries"][1]["path"].as_str().unwrap(),
    );
    image.in_volume(&format!("printf planted > /c/{kept}; rm /c/{lost}"));
    let (code, stderr) = cache(&["import", s(&dir)], img);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains(&format!(": 1 of {entries} entries added")),
        "{stderr}"
    );
    assert_eq!(image.in_volume(&format!("cat /c/{kept}")), "planted");
    let back = image.in_volume(&format!("stat -c '%u %s' /c/{lost}"));
    assert_eq!(
        back.trim(),
        format!("{uid} {}", m["entries"][1]["size"]),
        "{lost} came back whole, owned by the build user"
    );
    assert!(
        !image.in_volume("ls -A /c").contains(".kbuild-import"),
        "no staging directory stays"
    );

    // The provenance records the import: its digest and where it came from.
    let (code, _, stderr) = run(kbuild()
        .args([
            "quick-release",
            "--no-test-tarballs",
            "--no-images",
            "--platform",
            "linux/amd64",
        ])
        .arg("--kube-root")
        .arg(repo.path())
        .args(["--image", img, "--out"])
        .arg(work.path().join("rel"))
        .args(["--cache-from", s(&tarball)]));
    assert_eq!(code, 0, "{stderr}");
    let digest = hex_sha256(&tarball);
    let provenance = std::fs::read_to_string(
        work.path()
            .join("rel/release-tars/kubernetes-release.intoto.jsonl"),
    )
    .unwrap();
    let statement: serde_json::Value = serde_json::from_str(provenance.trim()).unwrap();
    let deps = &statement["predicate"]["buildDefinition"]["resolvedDependencies"];
    let import = deps
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "go-cache")
        .unwrap_or_else(|| panic!("no go-cache dependency: {deps}"));
    assert_eq!(import["digest"]["sha256"], digest.as_str());
    assert_eq!(import["uri"], format!("file://{}", tarball.display()));
}

fn hex_sha256(path: &PathBuf) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split(' ')
        .next()
        .unwrap()
        .to_string()
}
