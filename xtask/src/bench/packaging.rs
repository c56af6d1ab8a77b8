//! Packaging benchmarks, like with like (issue 13). Two scenarios:
//!
//!   - client: the six client platforms plus the source tarball;
//!   - quick-release: server, node and client tarballs for linux/amd64 from seven large
//!     binaries, plus the source tarball (what most users run).
//!
//! Each is packaged three ways, interleaved run by run, and the medians compared:
//!
//!   - kbuild: `kbuild package`;
//!   - the upstream way: what build/lib/release.sh does (kube::release::package_tarballs:
//!     src and the clients in parallel, every client platform its own `( ... ) &` job, then
//!     kube::util::wait-for-jobs; then node and server in parallel, their platforms one after
//!     another; each tarball staged with `cp` and written by kube::release::create_tarball,
//!     `tar czf ... --owner=0 --group=0`; the clean tree's source tarball by
//!     kube::release::package_src_tarball, `git archive -o`), then one `sha256sum` and one
//!     `sha512sum` pass over the tarballs, as kubernetes/release's WriteChecksums does;
//!   - pigz: the same staging, one tarball at a time through Debian's `pigz -6` (which uses
//!     every core), then the same two checksum passes.
//!
//! Next to them: kbuild's peak RSS (reported alone: a shell pipeline has no comparable
//! peak), the compressed size against `tar czf` (gzip -6), and the lower bound this
//! machine's single-core deflate and SHA-256/SHA-512 throughput (measured in the same run by
//! the `pack-limits` example, bench/limits.rs) imply when all the work is spread evenly
//! over every core.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{chown_volume, docker_run_as_user, median, remove_dir, sh, time};
use crate::builder_image::IMAGE;
use crate::util::{self, run, step, Failure};

/// The client platforms of the client scenario.
const CLIENT_PLATFORMS: [(&str, &str); 6] = [
    ("linux", "amd64"),
    ("linux", "arm64"),
    ("darwin", "amd64"),
    ("darwin", "arm64"),
    ("windows", "amd64"),
    ("windows", "arm64"),
];
/// The seven linux/amd64 binaries of the quick-release scenario (upstream's server set
/// without the small ones), and which of them the node tarball carries.
const QUICK_BINARIES: [&str; 7] = [
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kube-proxy",
    "kubelet",
    "kubeadm",
    "kubectl",
];
const NODE_BINARIES: [&str; 4] = ["kube-proxy", "kubelet", "kubeadm", "kubectl"];

/// One tarball of a scenario, as the upstream way stages it.
struct Tarball {
    /// e.g. `kubernetes-client-linux-amd64`.
    name: String,
    /// `client`, `node` or `server`: the staging directory and the phase.
    kind: &'static str,
    /// (binary on disk, directory under `kubernetes/`).
    files: Vec<(PathBuf, String)>,
}

pub struct Scenario {
    pub name: &'static str,
    bin: PathBuf,
    tarballs: Vec<Tarball>,
    /// Where its binaries come from, for the results.
    pub binaries: String,
}

/// What one scenario measured.
pub struct Measured {
    pub name: &'static str,
    pub binaries: String,
    pub kbuild: f64,
    pub upstream: f64,
    pub pigz: f64,
    pub limit: f64,
    pub kbuild_bytes: u64,
    pub upstream_bytes: u64,
    pub input_bytes: u64,
    pub peak_rss_mb: f64,
    pub rates: Rates,
}

/// Single-core throughput of this machine, MB/s.
#[derive(Clone, Copy)]
pub struct Rates {
    pub deflate: f64,
    pub sha256: f64,
    pub sha512: f64,
}

/// Builds `go` for every client platform (the client scenario's binaries) and collects the
/// quick-release scenario's seven: real kubectl builds from PATH when there are any.
pub fn scenarios(work: &Path) -> Result<Vec<Scenario>, Failure> {
    step("packaging: binaries");
    let client_bin = work.join("bin-client");
    let go_size = build_go(&client_bin)?;
    let mut client = Vec::new();
    for (os, arch) in CLIENT_PLATFORMS {
        let exe = if os == "windows" { ".exe" } else { "" };
        client.push(Tarball {
            name: format!("kubernetes-client-{os}-{arch}"),
            kind: "client",
            files: vec![(
                client_bin.join(format!("{os}/{arch}/kubectl{exe}")),
                "client/bin".into(),
            )],
        });
    }
    let client = Scenario {
        name: "client: 6 client platforms + src",
        bin: client_bin.clone(),
        tarballs: client,
        binaries: format!(
            "the `go` command of the builder image's Go built for each platform, as kubectl (no kubectl for darwin or windows on PATH; linux/amd64: {:.1} MB)",
            go_size as f64 / 1e6
        ),
    };

    let quick_bin = work.join("bin-quick");
    let dir = quick_bin.join("linux/amd64");
    std::fs::create_dir_all(&dir).map_err(|e| Failure::new(e.to_string()))?;
    let (sources, binaries) = match real_kubectls() {
        Some(found) => {
            let total: u64 = found.iter().map(|p| file_size(p)).sum();
            let text = format!(
                "real kubectl builds from PATH ({}), {:.1} MB each on average, under the seven names",
                found
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                total as f64 / found.len() as f64 / 1e6
            );
            (found, text)
        }
        None => (
            vec![client_bin.join("linux/amd64/kubectl")],
            format!(
                "no kubectl on PATH: the `go` command built for linux/amd64 ({:.1} MB) under the seven names",
                go_size as f64 / 1e6
            ),
        ),
    };
    for (i, name) in QUICK_BINARIES.iter().enumerate() {
        let dest = dir.join(name);
        std::fs::copy(&sources[i % sources.len()], &dest).map_err(|e| {
            Failure::new(format!("cannot copy a binary to {}: {e}", dest.display()))
        })?;
    }
    let at = |names: &[&str], under: &str| -> Vec<(PathBuf, String)> {
        names
            .iter()
            .map(|n| (dir.join(n), under.to_string()))
            .collect()
    };
    let quick = Scenario {
        name: "quick-release: server, node, client for linux/amd64 + src",
        bin: quick_bin.clone(),
        tarballs: vec![
            Tarball {
                name: "kubernetes-client-linux-amd64".into(),
                kind: "client",
                files: at(&["kubectl"], "client/bin"),
            },
            Tarball {
                name: "kubernetes-node-linux-amd64".into(),
                kind: "node",
                files: at(&NODE_BINARIES, "node/bin"),
            },
            Tarball {
                name: "kubernetes-server-linux-amd64".into(),
                kind: "server",
                files: at(&QUICK_BINARIES, "server/bin"),
            },
        ],
        binaries,
    };
    Ok(vec![client, quick])
}

/// `go` built for each client platform in the builder image into `bin/<os>/<arch>/`;
/// returns the linux/amd64 binary's size.
fn build_go(bin: &Path) -> Result<u64, Failure> {
    let mut script = String::from("set -e; cd \"$(go env GOROOT)/src/cmd/go\"; ");
    for (os, arch) in CLIENT_PLATFORMS {
        let exe = if os == "windows" { ".exe" } else { "" };
        let _ = write!(
            script,
            "mkdir -p /out/{os}/{arch}; GOOS={os} GOARCH={arch} CGO_ENABLED=0 go build -trimpath -o /out/{os}/{arch}/kubectl{exe} .; "
        );
    }
    std::fs::create_dir_all(bin).map_err(|e| Failure::new(e.to_string()))?;
    chown_volume("kbuild-bench-gobuild")?;
    run(docker_run_as_user()
        .args(["-e", "GOCACHE=/gocache"])
        // Compiling cmd/go for six platforms from cold takes minutes on two cores: keep that
        // cache between benchmark runs in a volume of its own (kbuild's caches are not used).
        .args(["-v", "kbuild-bench-gobuild:/gocache"])
        .arg("-v")
        .arg(format!("{}:/out", bin.display()))
        .args([IMAGE, "sh", "-c", &script]))?;
    Ok(file_size(&bin.join("linux/amd64/kubectl")))
}

/// Up to seven distinct real kubectl builds: `kubectl` on PATH and its versioned siblings
/// (`kubectl.1.32`, ... as the Google Cloud SDK ships them), ELF files of 20 MB or more.
fn real_kubectls() -> Option<Vec<PathBuf>> {
    let kubectl = std::fs::canonicalize(util::find_program("kubectl")?).ok()?;
    let is_big_elf = |p: &Path| {
        file_size(p) >= 20_000_000
            && std::fs::read(p)
                .map(|b| b.starts_with(b"\x7fELF"))
                .unwrap_or(false)
    };
    if !is_big_elf(&kubectl) {
        return None;
    }
    let mut found = vec![kubectl.clone()];
    if let Some(dir) = kubectl.parent() {
        let mut siblings: Vec<PathBuf> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .map(|n| n.to_string_lossy().starts_with("kubectl."))
                    .unwrap_or(false)
            })
            .collect();
        siblings.sort();
        siblings.reverse();
        found.extend(siblings.into_iter().filter(|p| is_big_elf(p)).take(6));
    }
    Some(found)
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Stages one tarball's tree under `$T/release-stage/<kind>/<tag>/kubernetes`, as
/// kube::release::package_{client,node,server}_tarballs do (node and server tarballs also
/// get LICENSES, when the tree has them, and the source tarball).
fn stage(t: &Tarball, tree: &Path) -> (String, String) {
    let tag = t.name.rsplit('-').take(2).collect::<Vec<_>>();
    let stage = format!(
        "$T/release-stage/{}/{}-{}/kubernetes",
        t.kind, tag[1], tag[0]
    );
    let mut script = format!("rm -rf {stage} && ");
    let mut dirs: Vec<&String> = t.files.iter().map(|(_, d)| d).collect();
    dirs.dedup();
    for d in dirs {
        let _ = write!(script, "mkdir -p {stage}/{d} && ");
    }
    for (src, d) in &t.files {
        let _ = write!(script, "cp {} {stage}/{d}/ && ", src.display());
    }
    if t.kind != "client" {
        let _ = write!(
            script,
            "{{ [ ! -d {tree}/LICENSES ] || cp -R {tree}/LICENSES {stage}/; }} && cp $T/release-tars/kubernetes-src.tar.gz {stage}/ && ",
            tree = tree.display()
        );
    }
    (script, stage)
}

/// The upstream way's script (see the module comment).
fn upstream_script(s: &Scenario, tree: &Path, out: &Path) -> String {
    // kube::util::wait-for-jobs: wait for every job and fail if any failed.
    let mut script = format!(
        "wait_for_jobs() {{ local fail=0; for j in $(jobs -p); do wait $j || fail=1; done; return $fail; }}\n\
         T={out}; rm -rf $T; mkdir -p $T/release-tars\n\
         git -C {tree} archive -o $T/release-tars/kubernetes-src.tar.gz HEAD &\n\
         (\n",
        out = out.display(),
        tree = tree.display()
    );
    let create = |t: &Tarball| {
        let (staging, stage) = stage(t, tree);
        format!(
            "{staging}tar czf $T/release-tars/{}.tar.gz -C {stage}/.. kubernetes --owner=0 --group=0",
            t.name
        )
    };
    for t in s.tarballs.iter().filter(|t| t.kind == "client") {
        let _ = writeln!(script, "  ( {} ) &", create(t));
    }
    script.push_str("  wait_for_jobs\n) &\nwait_for_jobs\n");
    for kind in ["node", "server"] {
        let jobs: Vec<String> = s
            .tarballs
            .iter()
            .filter(|t| t.kind == kind)
            .map(create)
            .collect();
        if !jobs.is_empty() {
            let _ = writeln!(script, "( {} ) &", jobs.join(" && "));
        }
    }
    script.push_str(
        "wait_for_jobs\ncd $T/release-tars && sha256sum *.tar.gz > SHA256SUMS && sha512sum *.tar.gz > SHA512SUMS\n",
    );
    script
}

/// The pigz way: the same tarballs one at a time, each compressed by `pigz -6` on every core.
fn pigz_script(s: &Scenario, tree: &Path, out: &Path) -> String {
    let mut script = format!(
        "T={out}; rm -rf $T; mkdir -p $T/release-tars\n\
         git -C {tree} archive --format=tar HEAD | pigz -6 > $T/release-tars/kubernetes-src.tar.gz\n",
        out = out.display(),
        tree = tree.display()
    );
    for t in &s.tarballs {
        let (staging, stage) = stage(t, tree);
        let _ = writeln!(
            script,
            "{staging}tar cf - -C {stage}/.. kubernetes --owner=0 --group=0 | pigz -6 > $T/release-tars/{}.tar.gz",
            t.name
        );
    }
    script.push_str(
        "cd $T/release-tars && sha256sum *.tar.gz > SHA256SUMS && sha512sum *.tar.gz > SHA512SUMS\n",
    );
    script
}

/// Runs `scenario` `runs` times each way, interleaved, and measures the rest.
pub fn measure(
    scenario: &Scenario,
    kbuild: &Path,
    limits: &Path,
    tree: &Path,
    work: &Path,
    runs: usize,
) -> Result<Measured, Failure> {
    step(&format!("packaging: {}", scenario.name));
    let kbuild_out = work.join("pkg-kbuild");
    let upstream_out = work.join("pkg-upstream");
    let pigz_out = work.join("pkg-pigz");
    let kbuild_cmd = || {
        let mut cmd = Command::new(kbuild);
        cmd.args(["--quiet", "package", "--bin"])
            .arg(&scenario.bin)
            .arg("--kube-root")
            .arg(tree)
            .arg("--out")
            .arg(&kbuild_out);
        cmd
    };
    let upstream = upstream_script(scenario, tree, &upstream_out);
    let pigz = pigz_script(scenario, tree, &pigz_out);
    let (mut k, mut u, mut p) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        remove_dir(&kbuild_out);
        k.push(time(&mut kbuild_cmd())?);
        u.push(time(&mut sh(&upstream))?);
        p.push(time(&mut sh(&pigz))?);
    }

    let tars = kbuild_out.join("release-tars");
    let kbuild_bytes = dir_bytes(&tars);
    let upstream_bytes = dir_bytes(&upstream_out.join("release-tars"));
    let input_bytes = gzip_input_bytes(&tars);
    let rates = rates(limits, &scenario.tarballs[0].files[0].0)?;
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1) as f64;
    let cpu_seconds = input_bytes as f64 / 1e6 / rates.deflate
        + kbuild_bytes as f64 / 1e6 * (1.0 / rates.sha256 + 1.0 / rates.sha512);

    remove_dir(&kbuild_out);
    let peak_rss_mb = peak_rss_mb(&mut kbuild_cmd(), work)?;
    for dir in [&kbuild_out, &upstream_out, &pigz_out] {
        remove_dir(dir);
    }
    Ok(Measured {
        name: scenario.name,
        binaries: scenario.binaries.clone(),
        kbuild: median(k),
        upstream: median(u),
        pigz: median(p),
        limit: cpu_seconds / cores,
        kbuild_bytes,
        upstream_bytes,
        input_bytes,
        peak_rss_mb,
        rates,
    })
}

/// This machine's single-core rates, from `pack-limits` on `sample`.
fn rates(limits: &Path, sample: &Path) -> Result<Rates, Failure> {
    let text = util::output(Command::new(limits).arg(sample))
        .ok_or_else(|| Failure::new(format!("{} failed", limits.display())))?;
    let get = |key: &str| -> Result<f64, Failure> {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.trim().parse().ok())
            .ok_or_else(|| Failure::new(format!("pack-limits printed no {key}: {text}")))
    };
    Ok(Rates {
        deflate: get("deflate_mb_s")?,
        sha256: get("sha256_mb_s")?,
        sha512: get("sha512_mb_s")?,
    })
}

/// Peak resident memory of `cmd`, in MB, by GNU time.
fn peak_rss_mb(cmd: &mut Command, work: &Path) -> Result<f64, Failure> {
    if !Path::new("/usr/bin/time").exists() {
        run(Command::new("apt-get").args(["install", "-y", "-qq", "time"]))?;
    }
    let report = work.join("time.txt");
    let mut timed = Command::new("/usr/bin/time");
    timed
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&report)
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    run(&mut timed)?;
    let kib = std::fs::read_to_string(&report)
        .ok()
        .and_then(|t| t.lines().last().and_then(|l| l.trim().parse::<f64>().ok()))
        .ok_or_else(|| Failure::new("GNU time reported no peak memory"))?;
    Ok(kib / 1024.0)
}

/// Total size of the `.tar.gz` files in `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    tarballs(dir).iter().map(|p| file_size(p)).sum()
}

fn tarballs(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".tar.gz"))
        .collect()
}

/// The uncompressed bytes behind the `.tar.gz` files in `dir`: each gzip trailer's ISIZE
/// (the length modulo 4 GiB; every tarball here is smaller).
fn gzip_input_bytes(dir: &Path) -> u64 {
    use std::io::{Read, Seek, SeekFrom};
    tarballs(dir)
        .iter()
        .filter_map(|p| {
            let mut f = std::fs::File::open(p).ok()?;
            f.seek(SeekFrom::End(-4)).ok()?;
            let mut isize = [0u8; 4];
            f.read_exact(&mut isize).ok()?;
            Some(u32::from_le_bytes(isize) as u64)
        })
        .sum()
}

/// Makes sure Debian's pigz is there (the benchmark's comparator).
pub fn ensure_pigz() -> Result<(), Failure> {
    if util::find_program("pigz").is_none() {
        step("apt-get install pigz");
        run(Command::new("apt-get").args(["install", "-y", "-qq", "pigz"]))?;
    }
    Ok(())
}

/// The results as Markdown: one table of times and ratios, one of sizes and memory.
pub fn markdown(results: &[Measured], runs: usize) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "| packaging scenario | kbuild | upstream way | ratio | pigz | ratio | lower bound | kbuild / bound |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|");
    for m in results {
        let _ = writeln!(
            md,
            "| {} | {:.2} s | {:.2} s | {:.3} | {:.2} s | {:.3} | {:.2} s | {:.2} |",
            m.name,
            m.kbuild,
            m.upstream,
            m.kbuild / m.upstream,
            m.pigz,
            m.kbuild / m.pigz,
            m.limit,
            m.kbuild / m.limit
        );
    }
    let _ = writeln!(
        md,
        "\nTargets: <= 0.25 of the upstream way, <= 0.45 of pigz, within 1.3x of the bound. Medians of {runs} runs, interleaved.\n"
    );
    let _ = writeln!(
        md,
        "| packaging scenario | input | kbuild output | tar czf (gzip -6) | size vs gzip -6 | kbuild peak RSS |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|");
    for m in results {
        let _ = writeln!(
            md,
            "| {} | {:.1} MB | {:.1} MB | {:.1} MB | {:+.1} % | {:.1} MB |",
            m.name,
            m.input_bytes as f64 / 1e6,
            m.kbuild_bytes as f64 / 1e6,
            m.upstream_bytes as f64 / 1e6,
            (m.kbuild_bytes as f64 / m.upstream_bytes as f64 - 1.0) * 100.0,
            m.peak_rss_mb
        );
    }
    let _ = writeln!(
        md,
        "\nTargets: within 3 % of gzip -6; peak RSS <= 64 MB (reported alone: the shell ways have no comparable peak).\n"
    );
    for m in results {
        let _ = writeln!(
            md,
            "- {}: binaries: {}; single-core rates here: deflate (zlib-rs, level 6) {:.1} MB/s, SHA-256 {:.0} MB/s, SHA-512 {:.0} MB/s; the bound is (input / deflate + output / SHA-256 + output / SHA-512) / cores.",
            m.name, m.binaries, m.rates.deflate, m.rates.sha256, m.rates.sha512
        );
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario() -> Scenario {
        let t = |name: &str, kind: &'static str, under: &str| Tarball {
            name: name.into(),
            kind,
            files: vec![(PathBuf::from("/b/kubectl"), under.into())],
        };
        Scenario {
            name: "test",
            bin: PathBuf::from("/b"),
            tarballs: vec![
                t("kubernetes-client-linux-amd64", "client", "client/bin"),
                t("kubernetes-client-darwin-arm64", "client", "client/bin"),
                t("kubernetes-server-linux-amd64", "server", "server/bin"),
            ],
            binaries: String::new(),
        }
    }

    #[test]
    fn upstream_script_runs_release_sh_phases_in_parallel_then_hashes_once_each() {
        let script = upstream_script(&scenario(), Path::new("/tree"), Path::new("/out"));
        let lines: Vec<&str> = script.lines().collect();
        // Phase 1: src and the clients (each its own job) in the background, then a wait.
        assert!(lines[2].starts_with("git -C /tree archive -o") && lines[2].ends_with('&'));
        let clients: Vec<&&str> = lines
            .iter()
            .filter(|l| l.contains("tar czf") && l.contains("client"))
            .collect();
        assert_eq!(clients.len(), 2);
        assert!(clients.iter().all(|l| l.trim_end().ends_with(") &")));
        // Phase 2 only after it: the server tarball embeds the source tarball.
        let server = lines.iter().position(|l| l.contains("server")).unwrap();
        let wait = lines.iter().position(|l| *l == "wait_for_jobs").unwrap();
        assert!(wait < server);
        assert!(lines[server].contains("cp $T/release-tars/kubernetes-src.tar.gz"));
        assert_eq!(script.matches("sha256sum").count(), 1);
        assert_eq!(script.matches("sha512sum").count(), 1);
        assert!(script.contains("--owner=0 --group=0"));
    }

    #[test]
    fn pigz_script_writes_one_tarball_at_a_time() {
        let script = pigz_script(&scenario(), Path::new("/tree"), Path::new("/out"));
        assert_eq!(script.matches("pigz -6").count(), 4);
        assert!(
            !script.lines().any(|l| l.trim_end().ends_with('&')),
            "nothing in the background: {script}"
        );
    }
}
