//! The tarballs kbuild compresses on every core (one gzip stream in 128 KiB blocks) are
//! read by the tools people use: gzip -t, GNU tar, Python's gzip and zlib, and Go's
//! compress/gzip; and a tarball is the same bytes whether kbuild had one core or all.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A linux/amd64 "kubectl" of several MB: an ELF header, then text, noise and zeros, so
/// that the compressor's blocks hold every kind of content.
fn big_kubectl(bin: &Path) -> Vec<u8> {
    let dir = bin.join("linux/amd64");
    std::fs::create_dir_all(&dir).unwrap();
    let mut bytes = vec![0u8; 64];
    bytes[..4].copy_from_slice(b"\x7fELF");
    bytes[4] = 2;
    bytes[5] = 1;
    bytes[18] = 0x3e;
    let text = b"func main() { fmt.Println(\"kubectl\") }\n";
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for i in 0..6_000_000usize {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        bytes.push(match (i / 50_000) % 3 {
            0 => text[i % text.len()],
            1 => x as u8,
            _ => 0,
        });
    }
    std::fs::write(dir.join("kubectl"), &bytes).unwrap();
    bytes
}

/// `kbuild package` of `bin` into `out`, on the cores `cpus` allows (`taskset -c`), or all.
fn package(bin: &Path, repo: &Path, out: &Path, cpus: Option<&str>) -> PathBuf {
    let base = kbuild();
    let mut cmd = match cpus {
        Some(cpus) => {
            // The program and its arguments as assert_cmd made them: under a cargo target
            // runner (`cargo xtask test` sets one) the program is the runner.
            let mut cmd = Command::new("taskset");
            cmd.args(["-c", cpus])
                .arg(base.get_program())
                .args(base.get_args());
            for (key, value) in base.get_envs() {
                match value {
                    Some(value) => cmd.env(key, value),
                    None => cmd.env_remove(key),
                };
            }
            cmd
        }
        None => base,
    };
    let (code, _, stderr) = run(cmd
        .args(["package", "--bin", s(bin), "--out", s(out)])
        .args(["--kube-root", s(repo)]));
    assert_eq!(code, 0, "kbuild package failed:\n{stderr}");
    out.join("release-tars/kubernetes-client-linux-amd64.tar.gz")
}

fn output(cmd: &mut Command) -> String {
    let out = cmd.output().expect("tool runs");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Reads the tarball as one gzip member with Python: zlib must reach the stream's end with
/// nothing after it, and the gzip module must agree. Prints the tar's sha256.
const PYTHON: &str = r#"
import gzip, hashlib, sys, zlib
data = open(sys.argv[1], "rb").read()
d = zlib.decompressobj(31)
tar = d.decompress(data) + d.flush()
assert d.eof, "the gzip stream does not end"
assert d.unused_data == b"", "%d bytes after the first gzip member" % len(d.unused_data)
assert gzip.open(sys.argv[1]).read() == tar
print(hashlib.sha256(tar).hexdigest())
"#;

/// The same with Go's compress/gzip, one member only (Multistream(false), then no second).
const GO: &str = r#"package main

import (
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
)

func main() {
	f, err := os.Open(os.Args[1])
	if err != nil {
		panic(err)
	}
	br := bufio.NewReader(f)
	z, err := gzip.NewReader(br)
	if err != nil {
		panic(err)
	}
	z.Multistream(false)
	h := sha256.New()
	if _, err := io.Copy(h, z); err != nil {
		panic(err)
	}
	if err := z.Reset(br); err != io.EOF {
		panic(fmt.Sprintf("something after the first gzip member: %v", err))
	}
	fmt.Printf("%x\n", h.Sum(nil))
}
"#;

/// Runs the Go reader with the Go in the builder image (the Go that builds Kubernetes).
fn go_sha256(tarball: &Path, work: &Path) -> String {
    let src = work.join("gunzip.go");
    std::fs::write(&src, GO).unwrap();
    let dir = tarball.parent().unwrap();
    output(
        Command::new("docker")
            .args(["run", "--rm", "--network", "none", "-e", "HOME=/tmp"])
            .args(["-e", "GO111MODULE=off", "-e", "GOTOOLCHAIN=local"])
            .arg("-v")
            .arg(format!("{}:/src:ro", work.display()))
            .arg("-v")
            .arg(format!("{}:/t:ro", dir.display()))
            .args([BUILDER_IMAGE, "go", "run", "/src/gunzip.go"])
            .arg(format!(
                "/t/{}",
                tarball.file_name().unwrap().to_str().unwrap()
            )),
    )
}

#[test]
fn gzip_tar_python_and_go_read_a_multi_block_tarball_and_cores_do_not_change_its_bytes() {
    let repo = KubeRepo::tagged("v1.34.0");
    let work = tempfile::tempdir().unwrap();
    let bin = work.path().join("bin");
    let kubectl = big_kubectl(&bin);

    let tarball = package(&bin, repo.path(), &work.path().join("all-cores"), None);
    assert!(
        std::fs::metadata(&tarball).unwrap().len() > 4 * 128 * 1024,
        "the tarball spans many compression blocks"
    );

    output(Command::new("gzip").arg("-t").arg(&tarball));
    let tar_sha = output(Command::new("bash").args([
        "-c",
        &format!("gzip -dc {} | sha256sum | cut -d' ' -f1", s(&tarball)),
    ]));
    assert_eq!(
        output(Command::new("tar").arg("tzf").arg(&tarball)),
        "kubernetes/\nkubernetes/client/\nkubernetes/client/bin/\nkubernetes/client/bin/kubectl"
    );
    let unpacked = work.path().join("unpacked");
    std::fs::create_dir_all(&unpacked).unwrap();
    output(
        Command::new("tar")
            .arg("xzf")
            .arg(&tarball)
            .arg("-C")
            .arg(&unpacked),
    );
    assert!(
        std::fs::read(unpacked.join("kubernetes/client/bin/kubectl")).unwrap() == kubectl,
        "GNU tar unpacks the binary as it was"
    );
    let python = output(Command::new("python3").args(["-c", PYTHON, s(&tarball)]));
    assert_eq!(python, tar_sha, "Python reads the same tar as gzip");
    let go = go_sha256(&tarball, work.path());
    assert_eq!(go, tar_sha, "Go's compress/gzip reads the same tar as gzip");

    // One core (one compression thread) against all of them: the same file.
    let one_core = package(&bin, repo.path(), &work.path().join("one-core"), Some("0"));
    assert!(
        std::fs::read(&one_core).unwrap() == std::fs::read(&tarball).unwrap(),
        "the tarball's bytes depend on the number of cores"
    );
}
