//! `kbuild verify --allowed-signers` against OpenSSH's `ssh-keygen -Y verify` on the same
//! inputs: the same allowed_signers line, identity and verify time over the same signed
//! SHA256SUMS. kbuild must accept exactly where ssh-keygen does. Both run with TZ=UTC, since
//! both read dates without `Z` in local time.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A small set as kbuild writes it (two artifacts, a manifest, then the sums listing all
/// three), signed by `kbuild sign` with a fresh ed25519 key. Returns (set, public key line).
fn signed_set(dir: &Path) -> (PathBuf, String) {
    let set = dir.join("set");
    std::fs::create_dir_all(&set).unwrap();
    let mut artifacts = Vec::new();
    for (name, bytes) in [
        ("kubernetes-a.tar.gz", "aaa"),
        ("kubernetes-b.tar.gz", "bbb"),
    ] {
        std::fs::write(set.join(name), bytes).unwrap();
        artifacts.push(serde_json::json!({
            "file": name, "kind": "client", "components": [], "size": 3,
            "sha256": digest(&set, name, "sha256sum"), "sha512": digest(&set, name, "sha512sum"),
            "sidecars": [],
        }));
    }
    let manifest = serde_json::json!({
        "schemaVersion": 1, "kbuildVersion": "0", "kind": "release",
        "source": {"gitVersion": "v1.34.0", "treeState": "clean", "sourceDateEpoch": 1},
        "toolchain": {"goVersionFrom": "x", "compressor": "gzip", "gzipLevel": 6},
        "artifacts": artifacts,
    });
    std::fs::write(set.join("manifest.json"), manifest.to_string()).unwrap();
    for (tool, file) in [("sha256sum", "SHA256SUMS"), ("sha512sum", "SHA512SUMS")] {
        let out = Command::new(tool)
            .args([
                "kubernetes-a.tar.gz",
                "kubernetes-b.tar.gz",
                "manifest.json",
            ])
            .current_dir(&set)
            .output()
            .unwrap();
        std::fs::write(set.join(file), out.stdout).unwrap();
    }
    let key = dir.join("release");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "release", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(made.success());
    let (code, _, stderr) = run(kbuild().args(["sign", "--key", s(&key), s(&set)]));
    assert_eq!(code, 0, "kbuild sign: {stderr}");
    let (code, _, stderr) = run(kbuild().args(["verify", s(&set)]));
    assert_eq!(code, 0, "the hand-made set verifies: {stderr}");
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    (set, public.trim().to_string())
}

fn digest(dir: &Path, name: &str, tool: &str) -> String {
    let out = Command::new(tool).arg(dir.join(name)).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// One case: an allowed_signers line, the identity, and the verify time (None: now).
struct Case {
    what: &'static str,
    line: String,
    identity: &'static str,
    time: Option<&'static str>,
}

/// ssh-keygen's verdict on SHA256SUMS, and its words.
fn ssh_keygen(set: &Path, allowed: &Path, case: &Case) -> (bool, String) {
    let mut cmd = Command::new("ssh-keygen");
    cmd.env("TZ", "UTC")
        .args(["-Y", "verify", "-n", "file", "-f", s(allowed)])
        .args(["-I", case.identity, "-s", s(&set.join("SHA256SUMS.sig"))])
        .stdin(std::fs::File::open(set.join("SHA256SUMS")).unwrap());
    if let Some(time) = case.time {
        cmd.arg(format!("-Overify-time={time}"));
    }
    let (code, stdout, stderr) = run(&mut cmd);
    (code == 0, format!("{stdout}{stderr}"))
}

/// kbuild's exit code for the whole set.
fn kbuild_verify(set: &Path, allowed: &Path, case: &Case) -> (i32, String) {
    let mut cmd = kbuild();
    cmd.env("TZ", "UTC")
        .args(["verify", s(set), "--allowed-signers", s(allowed)])
        .args(["--identity", case.identity]);
    if let Some(time) = case.time {
        cmd.args(["--verify-time", time]);
    }
    let (code, _, stderr) = run(&mut cmd);
    (code, stderr)
}

#[test]
fn allowed_signers_options_are_honoured_exactly_where_ssh_keygen_honours_them() {
    let work = tempfile::tempdir().unwrap();
    let (set, key) = signed_set(work.path());
    let id = "release@example.com";
    let case = |what, options: &str, identity, time| Case {
        what,
        line: format!("{id} {options} {key}").replace("  ", " "),
        identity,
        time,
    };
    let cases = [
        case("a good key", "", id, None),
        case(
            "a good key, file namespace",
            "namespaces=\"file\"",
            id,
            None,
        ),
        case("a namespace pattern", "namespaces=\"git,fi*\"", id, None),
        case("the wrong namespace", "namespaces=\"git\"", id, None),
        case("a negated namespace", "namespaces=\"*,!file\"", id, None),
        case("the wrong principal", "", "other@example.com", None),
        case("an expired key", "valid-before=\"20200101\"", id, None),
        case(
            "an expired key, verified at a time it was valid",
            "valid-before=\"20200101\"",
            id,
            Some("20191231"),
        ),
        case(
            "valid-before is inclusive",
            "valid-before=\"20200101\"",
            id,
            Some("20200101000000Z"),
        ),
        case(
            "a second past valid-before",
            "valid-before=\"20200101\"",
            id,
            Some("20200101000001"),
        ),
        case("a key not yet valid", "valid-after=\"20990101\"", id, None),
        case(
            "a key not yet valid, verified later",
            "valid-after=\"20990101Z\"",
            id,
            Some("20990102"),
        ),
        case(
            "a valid window",
            "valid-after=\"20200101\",valid-before=\"20991231\"",
            id,
            None,
        ),
        case(
            "unquoted dates make the line unusable",
            "valid-before=20991231",
            id,
            None,
        ),
        case(
            "an unknown option makes the line unusable",
            "no-such-option",
            id,
            None,
        ),
    ];
    let mut principal_cases = vec![
        Case {
            what: "a principal pattern",
            line: format!("*@example.com,!evil@example.com {key}"),
            identity: id,
            time: None,
        },
        Case {
            what: "a negated principal",
            line: format!("*@example.com,!evil@example.com {key}"),
            identity: "evil@example.com",
            time: None,
        },
        Case {
            what: "principals are case-sensitive",
            line: format!("Release@example.com {key}"),
            identity: id,
            time: None,
        },
    ];
    let mut refused = 0;
    for (n, case) in cases
        .into_iter()
        .chain(principal_cases.drain(..))
        .enumerate()
    {
        let allowed = work.path().join(format!("allowed{n}"));
        std::fs::write(&allowed, format!("{}\n", case.line)).unwrap();
        let (accepts, says) = ssh_keygen(&set, &allowed, &case);
        let (code, stderr) = kbuild_verify(&set, &allowed, &case);
        let what = case.what;
        if accepts {
            assert_eq!(
                code, 0,
                "{what}: ssh-keygen accepts ({says}), kbuild refuses:\n{stderr}"
            );
        } else {
            refused += 1;
            assert_ne!(
                code, 0,
                "{what}: ssh-keygen refuses ({says}), kbuild accepts:\n{stderr}"
            );
            // A line kbuild cannot use at all leaves no key (exit 2); otherwise it is a
            // verification failure (exit 7) that names the file.
            let expected = if what.contains("unusable") { 2 } else { 7 };
            assert_eq!(code, expected, "{what}:\n{stderr}");
        }
    }
    assert_eq!(
        refused, 10,
        "the refusals are the cases meant to be refused"
    );
}

#[test]
fn a_bad_verify_time_and_an_identity_without_allowed_signers_are_refused() {
    let work = tempfile::tempdir().unwrap();
    let (set, key) = signed_set(work.path());
    let allowed = work.path().join("allowed");
    std::fs::write(&allowed, format!("* {key}\n")).unwrap();
    let (code, _, stderr) = run(kbuild().args([
        "verify",
        s(&set),
        "--allowed-signers",
        s(&allowed),
        "--verify-time",
        "2020-01-01",
    ]));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("--verify-time: \"2020-01-01\" is not a time") && stderr.contains("hint:"),
        "{stderr}"
    );
    let (code, _, stderr) = run(kbuild().args(["verify", s(&set), "--identity", "x"]));
    assert_eq!(code, 2, "{stderr}");
}
