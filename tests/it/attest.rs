//! Supply-chain metadata checked with the tools others use: the SPDX validator from PyPI
//! (`pyspdxtools`), Go's own `go version -m` in the builder image, the in-toto attestation
//! bindings from PyPI, and OpenSSH's `ssh-keygen -Y verify`. The PyPI tools live in a venv
//! that `cargo xtask test` makes (target/attest-venv).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::common::*;

const SBOM: &str = "kubernetes-release.spdx.json";
const PROVENANCE: &str = "kubernetes-release.intoto.jsonl";

/// A module as `go version -m` and the SBOM name it: (path, version, h1: sum or "").
type ModuleId = (String, String, String);
/// A relationship: (from, type, to).
type Relationship = (String, String, String);

/// What `go version -m` shows of one binary: its modules and its `=>` replacements.
#[derive(Debug, Default)]
struct GoModules {
    modules: BTreeSet<ModuleId>,
    replacements: Vec<String>,
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A tool from the venv `cargo xtask test` installs the PyPI packages into.
fn venv_tool(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/attest-venv/bin")
        .join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo xtask test` once (it installs spdx-tools and in-toto-attestation)",
        path.display()
    );
    path
}

fn json_file(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// SHA256SUMS as name -> digest.
fn sums(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(dir.join("SHA256SUMS"))
        .unwrap()
        .lines()
        .map(|l| (l[66..].to_string(), l[..64].to_string()))
        .collect()
}

fn sha256_hex(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout)[..64].to_string()
}

/// `go version -m` on every file in `dir`, run by the builder image's Go: for each binary,
/// the modules as (mod|dep, path, version, sum) and the replacements (`=>` lines).
fn go_version_m(dir: &Path) -> BTreeMap<String, GoModules> {
    let out = Command::new("docker")
        .args(["run", "--rm", "--network", "none", "-v"])
        .arg(format!("{}:/b:ro", dir.display()))
        .args([BUILDER_IMAGE, "sh", "-c", "go version -m /b/*"])
        .output()
        .expect("docker runs");
    assert!(
        out.status.success(),
        "go version -m failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut found: BTreeMap<String, GoModules> = BTreeMap::new();
    let mut current = String::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some(name) = line.strip_prefix("/b/") {
            current = name.split(':').next().unwrap().to_string();
            found.entry(current.clone()).or_default();
            continue;
        }
        let fields: Vec<&str> = line.trim_start_matches('\t').split('\t').collect();
        let entry = found.get_mut(&current).unwrap();
        match fields[0] {
            "mod" | "dep" => {
                entry.modules.insert((
                    fields[1].to_string(),
                    fields[2].to_string(),
                    fields.get(3).copied().unwrap_or("").to_string(),
                ));
            }
            "=>" => entry
                .replacements
                .push(format!("{} {}", fields[1], fields[2])),
            _ => {}
        }
    }
    found
}

/// The SPDX packages by id, and the relationships as (from, type, to).
fn spdx(doc: &Value) -> (BTreeMap<String, Value>, Vec<Relationship>) {
    let packages = doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["SPDXID"].as_str().unwrap().to_string(), p.clone()))
        .collect();
    let relationships = doc["relationships"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["spdxElementId"].as_str().unwrap().to_string(),
                r["relationshipType"].as_str().unwrap().to_string(),
                r["relatedSpdxElement"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (packages, relationships)
}

fn checksum_of(package: &Value, algorithm: &str) -> Option<String> {
    package["checksums"]
        .as_array()?
        .iter()
        .find(|c| c["algorithm"] == algorithm)
        .map(|c| c["checksumValue"].as_str().unwrap().to_string())
}

/// The in-toto Statement parsed by the in-toto-attestation bindings (Statement.validate,
/// then the SLSA v1 Provenance message, which refuses unknown fields); prints the subjects
/// and what the predicate holds, as the bindings read them.
const PARSE_PROVENANCE: &str = r#"
import json, sys
from google.protobuf import json_format
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.statement import Statement
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
lines = [l for l in open(sys.argv[1]).read().splitlines() if l.strip()]
assert len(lines) == 1, "one statement per line, one line"
pb = json_format.Parse(lines[0], statement_pb2.Statement())
Statement.copy_from_pb(pb).validate()
prov = json_format.ParseDict(json_format.MessageToDict(pb.predicate), provenance_pb2.Provenance())
deps = {}
for d in prov.build_definition.resolved_dependencies:
    deps[d.name or d.uri] = dict(d.digest)
print(json.dumps({
    "predicateType": pb.predicate_type,
    "subjects": {s.name: s.digest["sha256"] for s in pb.subject},
    "builder": prov.run_details.builder.id,
    "started": prov.run_details.metadata.started_on.seconds,
    "finished": prov.run_details.metadata.finished_on.seconds,
    "deps": deps,
    "external": json_format.MessageToDict(prov.build_definition.external_parameters),
}))
"#;

fn parse_provenance(path: &Path) -> Value {
    let out = Command::new(venv_tool("python"))
        .args(["-c", PARSE_PROVENANCE])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the in-toto bindings refuse {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn quick_release_writes_an_sbom_and_provenance_that_standard_tools_accept() {
    let repo = KubeRepo::tagged("v1.34.0");
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    // The test tarballs' attestation is checked in tests/it/testtars.rs.
    let (code, _, stderr) = run(kbuild().args([
        "quick-release",
        "--no-test-tarballs",
        "--no-images",
        "--kube-root",
        s(repo.path()),
        "--image",
        BUILDER_IMAGE,
        "--out",
        s(&out),
        "--platform",
        "linux/amd64",
    ]));
    assert_eq!(code, 0, "kbuild quick-release failed:\n{stderr}");
    let tars = out.join("release-tars");
    let sums = sums(&tars);

    // Listed with the tarballs: in SHA256SUMS, which sha256sum checks, and in the manifest.
    assert!(
        sums.contains_key(SBOM) && sums.contains_key(PROVENANCE),
        "{sums:?}"
    );
    let check = Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(&tars)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let manifest = json_file(&tars.join("manifest.json"));
    let kinds: BTreeMap<&str, &str> = manifest["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["file"].as_str().unwrap(), a["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(kinds.get(SBOM), Some(&"sbom"));
    assert_eq!(kinds.get(PROVENANCE), Some(&"provenance"));

    // The SPDX validator accepts the SBOM.
    let check = Command::new(venv_tool("pyspdxtools"))
        .arg("-i")
        .arg(tars.join(SBOM))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "pyspdxtools refuses the SBOM: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let doc = json_file(&tars.join(SBOM));
    assert_eq!(doc["spdxVersion"], "SPDX-2.3");
    assert_eq!(
        doc["creationInfo"]["created"], "2023-11-14T22:13:20Z",
        "SOURCE_DATE_EPOCH"
    );
    let (packages, relationships) = spdx(&doc);
    let related = |from: &str, kind: &str| -> Vec<String> {
        relationships
            .iter()
            .filter(|(f, k, _)| f == from && k == kind)
            .map(|(_, _, t)| t.clone())
            .collect()
    };
    let by_file = |name: &str| -> (String, Value) {
        packages
            .iter()
            .find(|(_, p)| p["packageFileName"] == name)
            .map(|(id, p)| (id.clone(), p.clone()))
            .unwrap_or_else(|| panic!("no package for {name} in the SBOM"))
    };
    // The document describes every tarball, with the digests SHA256SUMS gives.
    let described = related("SPDXRef-DOCUMENT", "DESCRIBES");
    for (name, digest) in &sums {
        if !name.ends_with(".tar.gz") {
            continue;
        }
        let (id, package) = by_file(name);
        assert!(described.contains(&id), "{name} is not described");
        assert_eq!(
            checksum_of(&package, "SHA256").as_deref(),
            Some(digest.as_str())
        );
        assert!(
            package["sourceInfo"]
                .as_str()
                .unwrap()
                .contains(&repo.commit()),
            "the source commit: {package}"
        );
    }
    // Every tarball contains its binaries; the server tarball, the source tarball too.
    let (client, _) = by_file("kubernetes-client-linux-amd64.tar.gz");
    let (kubectl, _) = by_file("linux/amd64/kubectl");
    assert!(related(&client, "CONTAINS").contains(&kubectl));
    let (server, _) = by_file("kubernetes-server-linux-amd64.tar.gz");
    let (src, _) = by_file("kubernetes-src.tar.gz");
    assert!(related(&server, "CONTAINS").contains(&src));

    // Each binary's modules are exactly what `go version -m` shows for the same file.
    let bin = out.join("bin/linux/amd64");
    let go = go_version_m(&bin);
    assert!(go.len() >= 7, "every binary read: {go:?}");
    for (
        name,
        GoModules {
            modules,
            replacements,
        },
    ) in &go
    {
        assert!(!modules.is_empty(), "{name}: go version -m shows modules");
        let (id, package) = by_file(&format!("linux/amd64/{name}"));
        assert_eq!(
            checksum_of(&package, "SHA256").unwrap(),
            sha256_hex(&bin.join(name)),
            "{name}"
        );
        let mut listed = BTreeSet::new();
        let mut comments = Vec::new();
        for kind in ["GENERATED_FROM", "DEPENDS_ON"] {
            for module in related(&id, kind) {
                let m = &packages[&module];
                let purl = m["externalRefs"][0]["referenceLocator"].as_str().unwrap();
                assert!(
                    purl.starts_with(&format!("pkg:golang/{}", m["name"].as_str().unwrap())),
                    "{purl}"
                );
                // The h1: sum, when there is one, is the module's SHA256 checksum.
                let comment = m["comment"].as_str().unwrap().to_string();
                let sum = comment
                    .split_whitespace()
                    .find(|w| w.starts_with("h1:"))
                    .unwrap_or("")
                    .to_string();
                listed.insert((
                    m["name"].as_str().unwrap().to_string(),
                    m["versionInfo"].as_str().unwrap().to_string(),
                    sum,
                ));
                comments.push(comment);
            }
        }
        assert_eq!(
            &listed, modules,
            "{name}: SBOM modules against go version -m"
        );
        for replacement in replacements {
            assert!(
                comments
                    .iter()
                    .any(|c| c.contains(&format!("=> {replacement}"))),
                "{name}: the replacement {replacement} is named: {comments:?}"
            );
        }
    }

    // The in-toto bindings parse the provenance; its subjects are every artifact with the
    // digest SHA256SUMS gives (all but the provenance itself, which cannot name its own, and
    // the manifest, written after it).
    let provenance = parse_provenance(&tars.join(PROVENANCE));
    assert_eq!(
        provenance["predicateType"],
        "https://slsa.dev/provenance/v1"
    );
    let subjects: BTreeMap<String, String> =
        serde_json::from_value(provenance["subjects"].clone()).unwrap();
    let mut expected = sums.clone();
    expected.remove(PROVENANCE);
    expected.remove("manifest.json");
    assert_eq!(subjects, expected);
    assert_eq!(
        provenance["deps"][format!("git+file://{}", repo.path().display())]["gitCommit"],
        repo.commit()
    );
    let image_id = manifest["toolchain"]["builderImageId"].as_str().unwrap();
    assert_eq!(
        provenance["deps"]["builder-image"]["sha256"],
        image_id.trim_start_matches("sha256:")
    );
    assert!(provenance["builder"].as_str().unwrap().contains("kbuild"));
    assert!(provenance["started"].as_i64() <= provenance["finished"].as_i64());
    assert_eq!(provenance["external"]["source"]["gitVersion"], "v1.34.0");

    // Reproducible: packaging the same binaries again gives the same SBOM, and a provenance
    // that differs only in the run's times.
    let again = work.path().join("again");
    let (code, _, stderr) = run(kbuild().args([
        "package",
        "--bin",
        s(&out.join("bin")),
        "--kube-root",
        s(repo.path()),
        "--out",
        s(&again),
    ]));
    assert_eq!(code, 0, "kbuild package failed:\n{stderr}");
    let again_tars = again.join("release-tars");
    // The quick-release's provenance carries the plan's inputs, as its manifest records
    // them; `kbuild package` built nothing, so its provenance has no plan.
    let built = json_file(&tars.join(PROVENANCE));
    let packaged = json_file(&again_tars.join(PROVENANCE));
    let plan_of =
        |v: &Value| v["predicate"]["buildDefinition"]["externalParameters"]["plan"].clone();
    assert_eq!(plan_of(&built)["command"], "quick-release");
    assert_eq!(plan_of(&built)["inputs"], manifest["plan"]["inputs"]);
    assert!(
        plan_of(&built)["inputs"]
            .as_array()
            .is_some_and(|i| !i.is_empty()),
        "{built}"
    );
    assert_eq!(plan_of(&packaged), Value::Null);
    // The quick-release's provenance says where each job ran; `package` ran no job.
    let jobs_of =
        |v: &Value| v["predicate"]["buildDefinition"]["internalParameters"]["jobs"].clone();
    let jobs = jobs_of(&built);
    assert!(
        jobs.as_array().is_some_and(|j| !j.is_empty()
            && j.iter()
                .all(|j| j["engine"].is_string() && j["engine"] == j["planned_engine"])),
        "{jobs}"
    );
    assert_eq!(jobs_of(&packaged), Value::Null);
    // `kbuild package` has no builder image (nor plan) to name, so compare what both runs know.
    assert_eq!(
        std::fs::read(tars.join(SBOM)).unwrap(),
        std::fs::read(again_tars.join(SBOM)).unwrap(),
        "the SBOM differs between two packagings of the same binaries"
    );
    let strip_times = |path: &Path| {
        let mut v = json_file(path);
        let meta = &mut v["predicate"]["runDetails"]["metadata"];
        assert!(meta["startedOn"].is_string() && meta["finishedOn"].is_string());
        *meta = Value::Null;
        v["predicate"]["buildDefinition"]["resolvedDependencies"] = Value::Null;
        let external = &mut v["predicate"]["buildDefinition"]["externalParameters"];
        external["builderImage"] = Value::Null;
        if let Some(external) = external.as_object_mut() {
            external.remove("plan");
        }
        // Only a build has jobs to record (where each ran); `package` ran none.
        if let Some(internal) =
            v["predicate"]["buildDefinition"]["internalParameters"].as_object_mut()
        {
            internal.remove("jobs");
        }
        v
    };
    assert_eq!(
        strip_times(&tars.join(PROVENANCE)),
        strip_times(&again_tars.join(PROVENANCE))
    );
    let (code, _, stderr) = run(kbuild().args(["verify", s(&out)]));
    assert_eq!(code, 0, "{stderr}");
    assert_no_containers_left(repo.path());
}

/// An ed25519 key pair made by ssh-keygen, and an allowed_signers line for it.
fn keypair(dir: &Path, name: &str, principal: &str) -> (PathBuf, PathBuf) {
    let key = dir.join(name);
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", principal, "-f"])
        .arg(&key)
        .status()
        .expect("ssh-keygen runs");
    assert!(status.success());
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let allowed = dir.join(format!("{name}.allowed"));
    std::fs::write(
        &allowed,
        format!("{principal} namespaces=\"file\" {public}"),
    )
    .unwrap();
    (key, allowed)
}

/// `ssh-keygen -Y verify -f allowed -I principal -n file -s FILE.sig < FILE`.
fn ssh_keygen_verify(dir: &Path, file: &str, allowed: &Path, principal: &str) -> (bool, String) {
    let out = Command::new("ssh-keygen")
        .args(["-Y", "verify", "-f"])
        .arg(allowed)
        .args(["-I", principal, "-n", "file", "-s"])
        .arg(dir.join(format!("{file}.sig")))
        .stdin(std::fs::File::open(dir.join(file)).unwrap())
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn signatures_verify_with_ssh_keygen_and_verify_rejects_tampering_and_other_keys() {
    let repo = KubeRepo::tagged("v1.34.0");
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let (code, _, stderr) = run(&mut build_cmd(
        repo.path(),
        &out,
        &["kubectl"],
        &["linux/amd64"],
    ));
    assert_eq!(code, 0, "kbuild build failed:\n{stderr}");
    let (key, allowed) = keypair(work.path(), "release", "release@example.com");
    let (other_key, other_allowed) = keypair(work.path(), "other", "other@example.com");

    // A bad key is refused before anything is packaged: exit 2, with a hint.
    let (code, _, stderr) = run(kbuild()
        .args(["package", "--out", s(&out), "--kube-root", s(repo.path())])
        .arg("--sign-key")
        .arg(key.with_extension("pub")));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("is an OpenSSH public key, not an OpenSSH private key")
            && stderr.contains(&format!(
                "hint: pass the private key beside it: --key {}",
                key.display()
            ))
            && !stderr.contains("NUL"),
        "{stderr}"
    );
    assert!(!out.join("release-tars").exists(), "nothing packaged");

    // --sign-key signs as part of the run.
    let (code, _, stderr) = run(kbuild()
        .args([
            "package",
            "--out",
            s(&out),
            "--kube-root",
            s(repo.path()),
            "--sign-key",
        ])
        .arg(&key));
    assert_eq!(code, 0, "kbuild package --sign-key failed:\n{stderr}");
    let tars = out.join("release-tars");
    for file in ["SHA256SUMS", "SHA512SUMS", SBOM, PROVENANCE] {
        let (ok, text) = ssh_keygen_verify(&tars, file, &allowed, "release@example.com");
        assert!(ok, "ssh-keygen -Y verify refuses {file}.sig: {text}");
        assert!(text.contains("Good \"file\" signature"), "{text}");
    }
    let verify =
        |allowed: &Path| run(kbuild().args(["verify", s(&out), "--allowed-signers", s(allowed)]));
    let (code, _, stderr) = verify(&allowed);
    assert_eq!(
        code, 0,
        "kbuild verify --allowed-signers refuses a good set:\n{stderr}"
    );

    // The signed sums list the manifest and the time-stamped provenance, and sha256sum
    // checks them as they are.
    let sums = sums(&tars);
    assert!(
        sums.contains_key("manifest.json") && sums.contains_key(PROVENANCE),
        "{sums:?}"
    );
    let check = Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(&tars)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );

    // A rewritten manifest (another commit and version, the artifacts untouched) in the
    // signed set: the signed sums no longer match it, exit 7.
    let manifest_path = tars.join("manifest.json");
    let original = std::fs::read(&manifest_path).unwrap();
    let mut manifest = json_file(&manifest_path);
    manifest["source"]["commit"] = "0".repeat(40).into();
    manifest["source"]["gitVersion"] = "v1.99.0".into();
    std::fs::write(
        &manifest_path,
        serde_json::to_vec_pretty(&manifest).unwrap(),
    )
    .unwrap();
    let (code, _, stderr) = verify(&allowed);
    assert_eq!(code, 7, "a rewritten manifest passes verify:\n{stderr}");
    assert!(
        stderr.contains("manifest.json: sha256 differs from SHA256SUMS"),
        "{stderr}"
    );
    std::fs::write(&manifest_path, original).unwrap();

    // A key the allowed signers file does not list: exit 7, naming the file.
    let (code, _, stderr) = verify(&other_allowed);
    assert_eq!(code, 7, "{stderr}");
    assert!(
        stderr.contains(
            "SHA256SUMS: SHA256SUMS.sig is signed by a key the allowed signers file does not trust"
        ),
        "{stderr}"
    );

    // `kbuild sign` re-signs with another key; now the other file trusts the set.
    let (code, _, stderr) = run(kbuild().args(["sign", "--key", s(&other_key), s(&out)]));
    assert_eq!(code, 0, "kbuild sign failed:\n{stderr}");
    let (code, _, stderr) = verify(&other_allowed);
    assert_eq!(code, 0, "{stderr}");
    let (ok, _) = ssh_keygen_verify(&tars, "SHA256SUMS", &allowed, "release@example.com");
    assert!(!ok, "ssh-keygen: the old key no longer signs it");

    // Tampered SHA256SUMS: still a valid checksum list (binary-mode marker), no longer the
    // bytes that were signed. ssh-keygen and kbuild both refuse it.
    let sums_path = tars.join("SHA256SUMS");
    let text = std::fs::read_to_string(&sums_path).unwrap();
    std::fs::write(&sums_path, text.replacen("  ", " *", 1)).unwrap();
    let (ok, _) = ssh_keygen_verify(&tars, "SHA256SUMS", &other_allowed, "other@example.com");
    assert!(!ok, "ssh-keygen accepts a tampered SHA256SUMS");
    // A missing signature is named too.
    std::fs::remove_file(tars.join(format!("{SBOM}.sig"))).unwrap();
    let (code, _, stderr) = verify(&other_allowed);
    assert_eq!(code, 7, "{stderr}");
    assert!(
        stderr.contains("SHA256SUMS: does not match its signature SHA256SUMS.sig"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{SBOM}: is not signed: {SBOM}.sig is missing")),
        "{stderr}"
    );
    assert!(
        !stderr.contains("sha256 differs"),
        "only the signature catches this: {stderr}"
    );
    // Without --allowed-signers, verify checks digests only, and they still match.
    let (code, _, stderr) = run(kbuild().args(["verify", s(&out)]));
    assert_eq!(code, 0, "{stderr}");

    // Nothing to sign: exit 2 with a hint.
    let empty = work.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let (code, _, stderr) = run(kbuild().args(["sign", "--key", s(&key), s(&empty)]));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("nothing to sign") && stderr.contains("hint:"),
        "{stderr}"
    );
}

#[test]
fn extension_layout_carries_its_own_sbom_and_provenance_and_signs_with_sign_key() {
    let repo = KubeRepo::tagged("v1.34.0");
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let (key, allowed) = keypair(work.path(), "release", "release@example.com");
    let (code, _, stderr) = run(kbuild()
        .args([
            "extension",
            "--kube-root",
            s(repo.path()),
            "--image",
            BUILDER_IMAGE,
        ])
        .args([
            "--platform",
            "linux/amd64",
            "--platform",
            "darwin/arm64",
            "--out",
            s(&out),
        ])
        .arg("--sign-key")
        .arg(&key));
    assert_eq!(code, 0, "kbuild extension failed:\n{stderr}");
    let ext = out.join("extension");
    let sbom = ext.join("kubernetes-extension.spdx.json");
    let check = Command::new(venv_tool("pyspdxtools"))
        .arg("-i")
        .arg(&sbom)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "pyspdxtools refuses the extension SBOM: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    // The document describes the binaries themselves (the layout ships them bare), with
    // the digests SHA256SUMS gives, and each names its modules.
    let (packages, relationships) = spdx(&json_file(&sbom));
    let sums = sums(&ext);
    for file in ["amd64/linux/kubectl", "arm64/darwin/kubectl"] {
        let (id, package) = packages
            .iter()
            .find(|(_, p)| {
                checksum_of(p, "SHA256").as_deref() == sums.get(file).map(String::as_str)
            })
            .unwrap_or_else(|| panic!("no package with {file}'s digest"));
        assert!(
            relationships.contains(&("SPDXRef-DOCUMENT".into(), "DESCRIBES".into(), id.clone())),
            "{file}"
        );
        assert!(
            relationships
                .iter()
                .any(|(f, k, _)| f == id && k == "DEPENDS_ON"),
            "{file}: {package}"
        );
    }
    let provenance = parse_provenance(&ext.join("kubernetes-extension.intoto.jsonl"));
    let subjects: BTreeMap<String, String> =
        serde_json::from_value(provenance["subjects"].clone()).unwrap();
    // The sums list the metadata beside the binaries too; the provenance names the binaries
    // and the SBOM.
    let mut expected = sums.clone();
    for file in [
        "kubernetes-extension.intoto.jsonl",
        "manifest.json",
        "host-binaries.json",
        "Dockerfile.snippet",
    ] {
        assert!(expected.remove(file).is_some(), "SHA256SUMS lists {file}");
    }
    assert_eq!(subjects, expected);
    // The arch directories still hold nothing but the binaries.
    for arch in ["amd64", "arm64"] {
        let entries: Vec<_> = std::fs::read_dir(ext.join(arch)).unwrap().collect();
        assert_eq!(entries.len(), 1, "{arch}/ holds only its os directory");
    }
    let (ok, text) = ssh_keygen_verify(&ext, "SHA256SUMS", &allowed, "release@example.com");
    assert!(ok, "{text}");
    let (code, _, stderr) =
        run(kbuild().args(["verify", s(&out), "--allowed-signers", s(&allowed)]));
    assert_eq!(code, 0, "{stderr}");
}
