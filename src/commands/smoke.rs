//! `kbuild smoke DIR`: the built kubectl binaries, checked the way an extension uses them.
//!
//! - The host's own binary runs `version --client -o json`; it must report a semver
//!   gitVersion, a commit and a tree state (and the ones manifest.json records, when DIR
//!   holds one).
//! - Binaries for other platforms are not run: their executable format and the GOOS and
//!   GOARCH in their Go build info must match the platform, and the stamped gitVersion and
//!   gitCommit must be in their bytes (the -X strings the linker wrote).
//! - With `--kubeconfig`, the three calls a Docker Desktop extension makes through
//!   `ddClient.extension.host.cli.exec`, each bounded in time, reported as reachable,
//!   unreachable or failed. Values of secret kubeconfig keys never reach the output.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::SmokeArgs;
use crate::error::{Error, Kind, Result};
use crate::kube::{binary, buildinfo, Platform};
use crate::ui::Ui;

/// The names an extension runs.
const NAMES: &[&str] = &["kubectl", "kubectl.exe"];
/// How deep DIR is searched (out/extension/amd64/darwin/kubectl is four levels down).
const MAX_DEPTH: usize = 5;
/// A call that outlives this is stopped: an extension would hang as long.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// What the host binary says about itself (or manifest.json says was stamped).
#[derive(Debug, Clone, Default)]
struct Stamp {
    git_version: String,
    git_commit: String,
    tree_state: String,
}

/// Every kubectl under `dir`, sorted.
fn find_binaries(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), 0)];
    while let Some((d, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(t) = e.file_type() else { continue };
            let name = e.file_name();
            if t.is_dir() && depth < MAX_DEPTH {
                stack.push((e.path(), depth + 1));
            } else if t.is_file() && NAMES.iter().any(|n| name == *n) {
                found.push(e.path());
            }
        }
    }
    found.sort();
    found
}

/// The source facts of the nearest manifest.json kbuild wrote (DIR, DIR/extension,
/// DIR/release-tars).
fn manifest_stamp(dir: &Path) -> Option<Stamp> {
    ["", "extension", "release-tars"].iter().find_map(|sub| {
        let text = std::fs::read_to_string(dir.join(sub).join("manifest.json")).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        let s = &v["source"];
        Some(Stamp {
            git_version: s["gitVersion"].as_str()?.to_string(),
            git_commit: s["commit"].as_str().unwrap_or_default().to_string(),
            tree_state: s["treeState"].as_str().unwrap_or_default().to_string(),
        })
    })
}

/// Runs a binary with a time limit; (exit ok, stdout, stderr), or None when it timed out.
async fn run_bounded(
    bin: &Path,
    args: &[&str],
    kubeconfig: Option<&Path>,
) -> Result<Option<(bool, String, String)>> {
    let mut cmd = tokio::process::Command::new(bin);
    cmd.args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    if let Some(k) = kubeconfig {
        cmd.env("KUBECONFIG", k);
    }
    let child = cmd.output();
    match tokio::time::timeout(CALL_TIMEOUT, child).await {
        Err(_) => Ok(None),
        Ok(Err(e)) => Err(
            Error::new(Kind::Verify, format!("{} cannot run: {e}", bin.display()))
                .with_hint("check that it is executable and built for this machine"),
        ),
        Ok(Ok(out)) => Ok(Some((
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))),
    }
}

/// `version --client -o json` of the host binary.
async fn host_stamp(bin: &Path) -> std::result::Result<Stamp, String> {
    let out = run_bounded(bin, &["version", "--client", "-o", "json"], None)
        .await
        .map_err(|e| e.to_string())?;
    let Some((ok, stdout, stderr)) = out else {
        return Err(format!(
            "version --client did not finish within {}s",
            CALL_TIMEOUT.as_secs()
        ));
    };
    if !ok {
        return Err(format!(
            "version --client -o json failed: {}",
            stderr.trim()
        ));
    }
    let v: serde_json::Value = serde_json::from_str(&stdout)
        .map_err(|e| format!("version --client -o json printed no JSON ({e})"))?;
    // Real kubectl nests the facts under clientVersion; component-base prints them flat.
    let info = if v["clientVersion"].is_object() {
        &v["clientVersion"]
    } else {
        &v
    };
    let field = |k: &str| info[k].as_str().unwrap_or_default().to_string();
    Ok(Stamp {
        git_version: field("gitVersion"),
        git_commit: field("gitCommit"),
        tree_state: field("gitTreeState"),
    })
}

/// Problems with a stamp: not what upstream's version rules produce, or not what
/// manifest.json recorded.
fn check_stamp(stamp: &Stamp, recorded: Option<&Stamp>) -> Vec<String> {
    let mut problems = Vec::new();
    if crate::kube::version::parse(&stamp.git_version).is_err() {
        problems.push(format!(
            "gitVersion \"{}\" is not a stamped version (vX.Y.Z...)",
            stamp.git_version
        ));
    }
    if !stamp.git_commit.is_empty()
        && (stamp.git_commit.len() != 40
            || !stamp.git_commit.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        problems.push(format!(
            "gitCommit \"{}\" is not a commit hash",
            stamp.git_commit
        ));
    }
    if !["clean", "dirty", "archive"].contains(&stamp.tree_state.as_str()) {
        problems.push(format!(
            "gitTreeState \"{}\" is not clean, dirty or archive",
            stamp.tree_state
        ));
    }
    if let Some(r) = recorded {
        for (what, got, want) in [
            ("gitVersion", &stamp.git_version, &r.git_version),
            ("gitCommit", &stamp.git_commit, &r.git_commit),
            ("gitTreeState", &stamp.tree_state, &r.tree_state),
        ] {
            if !want.is_empty() && got != want {
                problems.push(format!(
                    "{what} is \"{got}\" but manifest.json records \"{want}\""
                ));
            }
        }
    }
    problems
}

/// Whether `needle` occurs in the file (streamed; binaries are large).
fn contains(path: &Path, needle: &[u8]) -> std::io::Result<bool> {
    use std::io::Read;
    if needle.is_empty() {
        return Ok(true);
    }
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut carry = 0;
    loop {
        let n = f.read(&mut buf[carry..])?;
        if n == 0 {
            return Ok(false);
        }
        let filled = carry + n;
        if memchr::memmem::find(&buf[..filled], needle).is_some() {
            return Ok(true);
        }
        let keep = (needle.len() - 1).min(filled);
        buf.copy_within(filled - keep..filled, 0);
        carry = keep;
    }
}

/// Format, build info and stamped strings of a binary that is not run here.
fn check_foreign(path: &Path, platform: Platform, stamp: Option<&Stamp>) -> Vec<String> {
    let mut problems = Vec::new();
    match buildinfo::read(path) {
        Ok(Some(info)) => {
            for (key, want) in [("GOOS", platform.os), ("GOARCH", platform.arch)] {
                match info.setting(key) {
                    Some(got) if got == want => {}
                    got => problems.push(format!(
                        "its Go build info says {key}={}, not {want}",
                        got.unwrap_or("(nothing)")
                    )),
                }
            }
        }
        Ok(None) => problems.push("it holds no Go build info".to_string()),
        Err(e) => problems.push(format!("cannot read it: {e}")),
    }
    if let Some(stamp) = stamp {
        for (what, value) in [
            ("gitVersion", &stamp.git_version),
            ("gitCommit", &stamp.git_commit),
        ] {
            match contains(path, value.as_bytes()) {
                Ok(true) => {}
                Ok(false) => problems.push(format!("the {what} {value} is not stamped into it")),
                Err(e) => problems.push(format!("cannot read it: {e}")),
            }
        }
    }
    problems
}

/// Problems with where a binary sits: the OS and architecture directories on its path
/// (bin/<os>/<arch>/, extension/<arch>/<os>/, an image's /<os>/) and the `.exe` suffix
/// must name the platform its header says.
fn check_place(rel: &Path, platform: Platform) -> Vec<String> {
    let mut problems = Vec::new();
    let all = Platform::all();
    for c in rel.iter().filter_map(|c| c.to_str()) {
        if all.iter().any(|p| p.os == c) && c != platform.os {
            problems.push(format!("it sits under {c}/ but is a {platform} binary"));
        }
        if all.iter().any(|p| p.arch == c) && c != platform.arch {
            problems.push(format!("it sits under {c}/ but is a {platform} binary"));
        }
    }
    let exe = rel.extension().is_some_and(|e| e == "exe");
    if exe != (platform.os == "windows") {
        problems.push(format!("its name does not fit a {platform} binary"));
    }
    problems
}

/// Values of kubeconfig keys that hold secrets, to be masked in anything shown.
fn secrets(kubeconfig: &str) -> Vec<String> {
    const KEYS: &[&str] = &[
        "token",
        "password",
        "client-key-data",
        "client-certificate-data",
        "id-token",
        "refresh-token",
        "client-secret",
        "access-token",
    ];
    let mut out = Vec::new();
    for line in kubeconfig.lines() {
        let l = line.trim().trim_start_matches("- ");
        for key in KEYS {
            let rest = l
                .strip_prefix(key)
                .or_else(|| l.strip_prefix(&format!("\"{key}\"")));
            if let Some(value) = rest.and_then(|r| r.trim_start().strip_prefix(':')) {
                let v = value.trim().trim_end_matches(',').trim_matches(['"', '\'']);
                if v.len() >= 4 {
                    out.push(v.to_string());
                }
            }
        }
    }
    out
}

fn mask(text: &str, secrets: &[String]) -> String {
    secrets
        .iter()
        .fold(text.to_string(), |t, s| t.replace(s.as_str(), "***"))
}

/// Output that says the API server could not be reached (kubectl's wording, and Go's
/// network errors).
fn says_unreachable(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    [
        "connection refused",
        "was refused",
        "unable to connect",
        "no route to host",
        "i/o timeout",
        "deadline exceeded",
        "timeout awaiting",
        "no such host",
    ]
    .iter()
    .any(|n| t.contains(n))
}

/// The first line of `cluster-info`, without its colours: kubectl's
/// ClusterInfoOptions.Run (kubectl/pkg/cmd/clusterinfo) paints the name and URL, and ends
/// with a hint about `cluster-info dump`, so the last line says nothing.
fn control_plane(stdout: &str) -> String {
    let first = stdout.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let mut plain = String::with_capacity(first.len());
    let mut chars = first.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // ESC [ parameters, ended by a letter (SGR colours end in 'm').
            chars.by_ref().find(|c| c.is_ascii_alphabetic());
        } else {
            plain.push(c);
        }
    }
    plain.trim().to_string()
}

/// The names `get namespaces --no-headers -o custom-columns=:metadata.name` printed, one a line.
fn namespaces(stdout: &str) -> String {
    let names: Vec<&str> = stdout
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if names.is_empty() {
        "(none)".to_string()
    } else {
        names.join(", ")
    }
}

/// The calls an extension makes, with the context given.
fn extension_calls(context: &str) -> Vec<Vec<String>> {
    let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<String>>();
    vec![
        v(&[
            "cluster-info",
            "--request-timeout",
            "2s",
            "--context",
            context,
        ]),
        v(&["config", "view", "-o", "jsonpath={.contexts}"]),
        v(&[
            "get",
            "namespaces",
            "--no-headers",
            "-o",
            "custom-columns=:metadata.name",
            "--context",
            context,
        ]),
    ]
}

/// Runs the extension's calls; returns the failures (not the unreachable cluster, which
/// is an answer an extension handles).
async fn kubeconfig_calls(
    bin: &Path,
    kubeconfig: &Path,
    context: &str,
    ui: &Ui,
) -> Result<Vec<String>> {
    let text =
        std::fs::read_to_string(kubeconfig).map_err(|e| Error::io("cannot read", kubeconfig, e))?;
    let hidden = secrets(&text);
    let mut failures = Vec::new();
    for call in extension_calls(context) {
        let args: Vec<&str> = call.iter().map(String::as_str).collect();
        let shown = format!("kubectl {}", call.join(" "));
        // kubectl's last line is its summary ("The connection to the server ... was refused").
        let last_line = |s: &str| mask(s.trim().lines().last().unwrap_or(""), &hidden);
        match run_bounded(bin, &args, Some(kubeconfig)).await? {
            None => {
                let msg = format!(
                    "{shown}: no answer within {}s (an extension would hang)",
                    CALL_TIMEOUT.as_secs()
                );
                ui.warn(&msg);
                failures.push(msg);
            }
            Some((true, stdout, _)) => {
                let what = match args[0] {
                    "config" => "ok (contexts listed)".to_string(),
                    "get" => format!(
                        "reachable: namespaces {}",
                        mask(&namespaces(&stdout), &hidden)
                    ),
                    _ => format!("reachable: {}", mask(&control_plane(&stdout), &hidden)),
                };
                ui.info(&format!("{shown}: {what}"));
            }
            Some((false, _, stderr)) if says_unreachable(&stderr) => {
                ui.info(&format!("{shown}: unreachable: {}", last_line(&stderr)));
            }
            Some((false, _, stderr)) => {
                let msg = format!("{shown}: failed: {}", last_line(&stderr));
                ui.warn(&msg);
                failures.push(msg);
            }
        }
    }
    Ok(failures)
}

/// `kbuild smoke`.
pub async fn run(args: &SmokeArgs, ui: &Ui) -> Result<()> {
    if let Some(k) = &args.kubeconfig {
        if !k.is_file() {
            return Err(
                Error::usage(format!("--kubeconfig {} is not a file", k.display()))
                    .with_hint("give the kubeconfig the extension's user has, e.g. ~/.kube/config"),
            );
        }
    }
    let binaries = find_binaries(&args.dir);
    if binaries.is_empty() {
        return Err(Error::usage(format!(
            "no kubectl or kubectl.exe in {} (searched {MAX_DEPTH} levels down)",
            args.dir.display()
        ))
        .with_hint("point kbuild smoke at what kbuild extension or kbuild build wrote, e.g. out or out/extension"));
    }
    let recorded = manifest_stamp(&args.dir);
    let host = Platform::host();
    let mut problems: Vec<String> = Vec::new();
    let mut placed = Vec::new();
    for path in &binaries {
        match binary::detect_file(path) {
            Ok(Some((os, arch))) => match Platform::parse(&format!("{os}/{arch}")) {
                Ok(p) => {
                    let rel = path.strip_prefix(&args.dir).unwrap_or(path);
                    let misplaced = check_place(rel, p);
                    problems.extend(misplaced.iter().map(|m| format!("{}: {m}", path.display())));
                    placed.push((path.clone(), p));
                }
                Err(_) => problems.push(format!(
                    "{}: {os}/{arch} is not a Kubernetes platform",
                    path.display()
                )),
            },
            Ok(None) => problems.push(format!(
                "{}: not an ELF, Mach-O or PE executable",
                path.display()
            )),
            Err(e) => problems.push(format!("{}: cannot read it: {e}", path.display())),
        }
    }
    // The host's binary runs, and what it reports is what the others must carry.
    let mut stamp = recorded.clone();
    let mut calls_failed = Vec::new();
    let host_bin = placed
        .iter()
        .find(|(_, p)| *p == host)
        .map(|(b, _)| b.clone());
    if let Some(bin) = &host_bin {
        ui.phase(
            "run",
            &format!("{} version --client -o json", bin.display()),
        );
        match host_stamp(bin).await {
            Ok(s) => {
                let found = check_stamp(&s, recorded.as_ref());
                ui.info(&format!(
                    "{} ({host}): gitVersion {}, gitCommit {}, gitTreeState {}",
                    bin.display(),
                    s.git_version,
                    s.git_commit,
                    s.tree_state
                ));
                problems.extend(found.into_iter().map(|p| format!("{}: {p}", bin.display())));
                stamp = Some(s);
            }
            Err(e) => problems.push(format!("{}: {e}", bin.display())),
        }
    } else {
        ui.warn(&format!(
            "no {host} kubectl in {}: nothing is run, the others are only inspected",
            args.dir.display()
        ));
    }
    ui.phase(
        "inspect",
        "the other platforms' binaries, without running them",
    );
    for (path, platform) in placed.iter().filter(|(_, p)| *p != host) {
        let found = check_foreign(path, *platform, stamp.as_ref());
        if found.is_empty() {
            ui.info(&format!(
                "{} ({platform}): format, GOOS/GOARCH and stamped version ok",
                path.display()
            ));
        }
        problems.extend(
            found
                .into_iter()
                .map(|p| format!("{} ({platform}): {p}", path.display())),
        );
    }
    if let (Some(k), Some(bin)) = (&args.kubeconfig, &host_bin) {
        ui.phase(
            "kubeconfig",
            &format!("the extension's calls with --context {}", args.context),
        );
        calls_failed = kubeconfig_calls(bin, k, &args.context, ui).await?;
    } else if args.kubeconfig.is_some() {
        problems.push(format!(
            "--kubeconfig needs a {host} kubectl to run, and {} has none",
            args.dir.display()
        ));
    }
    let hint = if problems.is_empty() {
        "the kubectl must answer the calls an extension makes; check --context and the kubeconfig, and that it is a full kubectl"
    } else {
        "rebuild the binaries (kbuild extension), and check the version stamping of the tree"
    };
    problems.extend(calls_failed);
    if !problems.is_empty() {
        return Err(Error::new(
            Kind::Verify,
            format!(
                "smoke test failed ({} problems):\n  {}",
                problems.len(),
                problems.join("\n  ")
            ),
        )
        .with_hint(hint));
    }
    ui.finished(&format!(
        "smoke-tested {} in {}",
        match placed.len() {
            1 => "1 kubectl binary".to_string(),
            n => format!("{n} kubectl binaries"),
        },
        args.dir.display()
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binary_must_sit_where_its_platform_goes() {
        let p = |t: &str| Platform::parse(t).unwrap();
        assert!(check_place(Path::new("bin/darwin/arm64/kubectl"), p("darwin/arm64")).is_empty());
        assert!(check_place(Path::new("arm64/windows/kubectl.exe"), p("windows/arm64")).is_empty());
        assert!(check_place(Path::new("linux/kubectl"), p("linux/amd64")).is_empty());
        assert_eq!(
            check_place(
                Path::new("bin/windows/amd64/kubectl.exe"),
                p("darwin/arm64")
            )
            .len(),
            3
        );
    }

    #[test]
    fn secret_values_of_a_kubeconfig_are_masked() {
        let cfg = "users:\n- name: me\n  user:\n    token: abcdef123456\n    client-key-data: \"S3CR3TKEY\"\n";
        let s = secrets(cfg);
        assert_eq!(s, ["abcdef123456", "S3CR3TKEY"]);
        assert_eq!(
            mask("bad token abcdef123456 and S3CR3TKEY", &s),
            "bad token *** and ***"
        );
    }

    #[test]
    fn reports_where_the_control_plane_runs_and_which_namespaces_exist() {
        let real = "\x1b[0;32mKubernetes control plane\x1b[0m is running at \x1b[0;33mhttps://127.0.0.1:6443\x1b[0m\n\nTo further debug and diagnose cluster problems, use 'kubectl cluster-info dump'.\n";
        assert_eq!(
            control_plane(real),
            "Kubernetes control plane is running at https://127.0.0.1:6443"
        );
        assert_eq!(namespaces("default\nkube-system\n"), "default, kube-system");
        assert_eq!(namespaces("\n"), "(none)");
    }

    #[test]
    fn tells_an_unreachable_server_from_other_failures() {
        assert!(says_unreachable("The connection to the server 127.0.0.1:1 was refused - did you specify the right host or port?"));
        assert!(says_unreachable(
            "Unable to connect to the server: dial tcp 127.0.0.1:9: connect: connection refused"
        ));
        assert!(!says_unreachable(
            "error: unknown command \"cluster-info\" for \"kubectl\""
        ));
    }

    #[test]
    fn a_stamp_must_look_stamped_and_match_the_manifest() {
        let s = Stamp {
            git_version: "v1.34.0".into(),
            git_commit: "a".repeat(40),
            tree_state: "clean".into(),
        };
        assert!(check_stamp(&s, None).is_empty());
        let other = Stamp {
            git_version: "v1.34.1".into(),
            ..s.clone()
        };
        assert_eq!(check_stamp(&s, Some(&other)).len(), 1);
        let bad = Stamp {
            git_version: "v0.0.0-master+$Format:%H$".into(),
            tree_state: String::new(),
            ..s
        };
        assert_eq!(check_stamp(&bad, None).len(), 2);
    }
}
