//! Incremental source sync (`--transfer copy`) against a second, real Docker engine: the
//! first sync uploads the tree, a resync only what changed, removed files leave the volume,
//! and the binaries are the bytes a bind build on the main engine gives.

use std::path::Path;

use crate::common::*;
use crate::engines::SecondEngine;

/// Files of padding, so that the tree is a few MB and "under 1 %" means something.
const PADDING_FILES: usize = 8;
const PADDING_SIZE: usize = 512 * 1024;
/// kubectl's help text in the fixture, and as a test edits it.
const FIXTURE_SAYS: &str = "(mini-kube test fixture)";
const EDITED_SAYS: &str = "(mini-kube test fixture, edited between syncs)";

/// Adds `third_party/padding/blob-N.bin` (pseudo-random bytes) and a directory of small
/// files to the tree, committed so the tree stays clean.
fn pad(repo: &Path) {
    let dir = repo.join("third_party/padding");
    std::fs::create_dir_all(dir.join("extra")).unwrap();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for n in 0..PADDING_FILES {
        let blob: Vec<u8> = (0..PADDING_SIZE)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (state >> 33) as u8
            })
            .collect();
        std::fs::write(dir.join(format!("blob-{n}.bin")), blob).unwrap();
    }
    for n in 0..3 {
        std::fs::write(
            dir.join(format!("extra/note-{n}.txt")),
            format!("note {n}\n"),
        )
        .unwrap();
    }
    commit_all(repo, "padding");
}

/// `kbuild build kubectl --platform linux/amd64 --transfer copy --json` on the second engine,
/// with kbuild's cache (where the sync listings live) in `cache`; returns the `sync` event.
fn build_on(engine: &SecondEngine, repo: &Path, cache: &Path, out: &Path) -> serde_json::Value {
    let (code, stdout, stderr) = run(build_cmd(repo, out, &["kubectl"], &["linux/amd64"])
        .args(["--transfer", "copy", "--json"])
        .env("DOCKER_HOST", engine.docker_host())
        .env("XDG_CACHE_HOME", cache));
    assert_eq!(
        code,
        0,
        "{stdout}\n{stderr}\n--- second dockerd ---\n{}",
        engine.log()
    );
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let synced: Vec<_> = events.iter().filter(|e| e["event"] == "sync").collect();
    assert_eq!(synced.len(), 1, "one sync event:\n{stdout}");
    let sync = synced[0].clone();
    assert!(
        sync["message"]
            .as_str()
            .unwrap()
            .contains(&engine.docker_host()),
        "names the engine: {sync}"
    );
    sync
}

/// sha256 and path of every file the source volume holds (outside `_output`), as the tree's
/// files would be listed by `local_files`.
fn volume_files(engine: &SecondEngine, volume: &str) -> Vec<String> {
    let mount = format!("{volume}:/src:ro");
    let listed = engine.run_docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        &mount,
        "-w",
        "/src",
        BUILDER_IMAGE,
        "sh",
        "-c",
        "find . -path ./_output -prune -o -type f -print0 | xargs -0 -r sha256sum",
    ]);
    let mut files: Vec<String> = listed
        .lines()
        .map(|l| l.replacen("  ./", "  ", 1))
        .collect();
    files.sort();
    files
}

/// The same listing for the tree (without .git and _output).
fn local_files(repo: &Path) -> Vec<String> {
    use sha2::{Digest, Sha256};
    let mut files = Vec::new();
    let mut stack = vec![repo.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let rel = entry.path().strip_prefix(repo).unwrap().to_path_buf();
            if rel == Path::new(".git") || rel == Path::new("_output") {
                continue;
            }
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else {
                let digest = Sha256::digest(std::fs::read(entry.path()).unwrap());
                let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
                files.push(format!("{hex}  {}", rel.display()));
            }
        }
    }
    files.sort();
    files
}

fn number(event: &serde_json::Value, field: &str) -> u64 {
    event[field]
        .as_u64()
        .unwrap_or_else(|| panic!("no {field} in {event}"))
}

#[test]
fn a_resync_uploads_only_what_changed_and_the_volume_matches_the_tree() {
    let engine = SecondEngine::shared();
    let repo = KubeRepo::tagged("v1.34.0");
    pad(repo.path());
    let cache = tempfile::tempdir().unwrap();
    let outs: Vec<_> = (0..5).map(|_| tempfile::tempdir().unwrap()).collect();

    // First sync: everything.
    let first = build_on(&engine, repo.path(), cache.path(), outs[0].path());
    let tree_bytes = number(&first, "tree_bytes");
    assert!(
        tree_bytes > (PADDING_FILES * PADDING_SIZE) as u64,
        "{first}"
    );
    assert!(number(&first, "bytes_uploaded") >= tree_bytes, "{first}");
    // The files' own bytes are the tree's: the archive's headers are counted apart.
    assert_eq!(
        number(&first, "content_bytes_uploaded"),
        tree_bytes,
        "{first}"
    );
    assert_eq!(
        number(&first, "files_uploaded") as usize,
        local_files(repo.path()).len(),
        "{first}"
    );
    assert_eq!(first["full"], true);
    let volume = first["volume"].as_str().unwrap().to_string();
    assert_eq!(volume_files(&engine, &volume), local_files(repo.path()));

    // Nothing changed: nothing travels.
    let again = build_on(&engine, repo.path(), cache.path(), outs[1].path());
    assert_eq!(number(&again, "bytes_uploaded"), 0, "{again}");
    assert_eq!(number(&again, "files_uploaded"), 0, "{again}");
    assert_eq!(again["full"], false);

    // One file edited: only it travels, well under 1 % of the first upload.
    let main = repo.path().join("cmd/kubectl/main.go");
    let text = std::fs::read_to_string(&main).unwrap();
    assert!(text.contains(FIXTURE_SAYS));
    std::fs::write(&main, text.replace(FIXTURE_SAYS, EDITED_SAYS)).unwrap();
    let edited = build_on(&engine, repo.path(), cache.path(), outs[2].path());
    assert_eq!(number(&edited, "files_uploaded"), 1, "{edited}");
    assert_eq!(
        number(&edited, "content_bytes_uploaded"),
        std::fs::metadata(&main).unwrap().len(),
        "{edited}"
    );
    let uploaded = number(&edited, "bytes_uploaded");
    assert!(uploaded > 0, "{edited}");
    assert!(
        uploaded * 100 < number(&first, "bytes_uploaded"),
        "{uploaded} bytes is not under 1 % of the first sync: {edited}"
    );
    assert_eq!(volume_files(&engine, &volume), local_files(repo.path()));

    // A file and a directory removed: gone from the volume, nothing uploaded.
    let padding = repo.path().join("third_party/padding");
    std::fs::remove_file(padding.join("blob-0.bin")).unwrap();
    std::fs::remove_dir_all(padding.join("extra")).unwrap();
    let removed = build_on(&engine, repo.path(), cache.path(), outs[3].path());
    assert_eq!(number(&removed, "paths_removed"), 2, "{removed}");
    assert_eq!(number(&removed, "files_uploaded"), 0, "{removed}");
    assert_eq!(volume_files(&engine, &volume), local_files(repo.path()));

    // The volume recreated behind kbuild's back: its listing is not trusted, all travels.
    engine.run_docker(&["volume", "rm", &volume]);
    let recreated = build_on(&engine, repo.path(), cache.path(), outs[4].path());
    assert_eq!(recreated["full"], true, "{recreated}");
    assert_eq!(volume_files(&engine, &volume), local_files(repo.path()));

    // The same bytes as a bind build of the same tree on the main engine.
    let bind = tempfile::tempdir().unwrap();
    let (code, _, stderr) =
        run(
            build_cmd(repo.path(), bind.path(), &["kubectl"], &["linux/amd64"])
                .args(["--transfer", "bind"])
                .env_remove("DOCKER_HOST"),
        );
    assert_eq!(code, 0, "{stderr}");
    let kubectl = "bin/linux/amd64/kubectl";
    let from_bind = std::fs::read(bind.path().join(kubectl)).unwrap();
    for out in &outs[3..] {
        assert!(
            std::fs::read(out.path().join(kubectl)).unwrap() == from_bind,
            "copy (second engine) and bind (main engine) differ"
        );
    }
    // The edit reached the build in the volume.
    let says = |out: &tempfile::TempDir, what: &str| {
        let binary = std::fs::read(out.path().join(kubectl)).unwrap();
        binary.windows(what.len()).any(|w| w == what.as_bytes())
    };
    assert!(says(&outs[0], FIXTURE_SAYS) && !says(&outs[0], EDITED_SAYS));
    assert!(says(&outs[2], EDITED_SAYS));

    // Nothing labelled is left running on either engine; the volume stays for the next
    // sync, labelled so that `kbuild clean` finds it.
    assert_no_containers_left(repo.path());
    assert_eq!(engine.managed_containers(repo.path()), Vec::<String>::new());
    assert_eq!(engine.managed_volumes(repo.path()), vec![volume.clone()]);
    engine.run_docker(&["volume", "rm", &volume]);
}
