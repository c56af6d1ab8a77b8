//! release-tars: the upstream-named tarballs from a `bin/<os>/<arch>/` tree and the source
//! tree, their checksums and the manifest. In upstream's phases
//! (kube::release::package_tarballs): the source, client and manifests tarballs first,
//! then the node and server tarballs (which contain the source tarball) and
//! kubernetes.tar.gz (which contains the manifests tarball), each phase on every core, one
//! tarball per thread; the test tarballs go with the first phase (the platform ones) and
//! the last (the portable one, as upstream's package_test_tarballs runs beside
//! package_final_tarball). What upstream writes and kbuild does not is named in the notes.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::checksum;
use super::manifest::{self, Manifest};
use super::srctar::Excluded;
use super::tarball::{self, Entry, Written, MODE_EXEC, MODE_FILE};
use super::{srctar, staged, Control};
use crate::artifact::{Artifact, Digests, SourceRecord, Toolchain};
use crate::error::{Error, Kind, Result};
use crate::kube::release::{
    Layout, TarballKind, FINAL_TARBALL, LICENSES, MANIFESTS_TARBALL, SRC_TARBALL,
    TEST_PORTABLE_TARBALL, TOP,
};
use crate::kube::Platform;
use crate::outdir::outputs;
use crate::outdir::TMP_SUFFIX;
use crate::source::SourceInfo;

/// What to package.
pub struct Input<'a> {
    /// `<bin>/<os>/<arch>/<binary>`.
    pub bin: &'a Path,
    /// The release-tars directory to write (`<--out>/release-tars`).
    pub out: &'a Path,
    /// The output directory's path relative to the tree, when it lies inside it (it is
    /// then git-ignored): no tarball holds it.
    pub out_in_tree: Option<&'a Path>,
    pub info: &'a SourceInfo,
    pub layouts: Vec<Layout>,
    /// Write kubernetes-test-portable.tar.gz (the test platform tarballs are in `layouts`).
    pub test_portable: bool,
    pub source: SourceRecord,
    pub toolchain: Toolchain,
    /// The plan record for the manifest (`Manifest::plan`).
    pub plan: Option<serde_json::Value>,
    /// The server images written into release-images/ (`Manifest::images`).
    pub images: Vec<super::serverimage::ImageRecord>,
    /// What each platform's server tarball holds besides its binaries: the image tars and
    /// their `.docker_tag` files in kubernetes/server/bin/.
    pub server_entries: Vec<(Platform, Vec<Entry>)>,
}

/// What packaging wrote.
#[derive(Debug)]
pub struct Packaged {
    pub manifest: Manifest,
    pub elapsed: Duration,
    pub threads: usize,
}

/// Where a layout's binary is in the bin tree.
fn bin_file(bin: &Path, platform: Platform, file: &str) -> PathBuf {
    bin.join(platform.os).join(platform.arch).join(file)
}

/// Files kbuild writes in release-tars (removed first, as upstream empties the directory,
/// without touching anything else a user keeps there).
fn is_ours(name: &str) -> bool {
    let tarball = name
        .strip_suffix(".sha256")
        .or_else(|| name.strip_suffix(".sha512"))
        .unwrap_or(name);
    (tarball.starts_with("kubernetes-") && tarball.ends_with(".tar.gz"))
        || tarball == FINAL_TARBALL
        || name == "SHA256SUMS"
        || name == "SHA512SUMS"
        || name == manifest::FILE_NAME
        || name.ends_with(TMP_SUFFIX)
        || crate::attest::is_ours(name)
}

/// Checks every binary the layouts need, before anything is written: each must be a
/// regular file (never a link, which would ship what it points at under a Kubernetes
/// name) built for its directory's platform. All of this is bad input: exit 2.
pub fn check_binaries(bin: &Path, layouts: &[Layout]) -> Result<()> {
    let mut missing = Vec::new();
    let mut refused = Vec::new();
    for layout in layouts {
        for (_, component) in layout.binaries() {
            let path = bin_file(bin, layout.platform, &component.file_name(layout.platform));
            match std::fs::symlink_metadata(&path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    missing.push(path.display().to_string())
                }
                Err(e) => return Err(Error::io("cannot read", &path, e)),
                Ok(meta) => {
                    if let Some(why) = super::bintree::refusal(&path, meta.file_type()) {
                        refused.push(why);
                    } else if !meta.is_file() {
                        refused.push(format!("{} is not a regular file", path.display()));
                    } else {
                        outputs::check_platform(&path, layout.platform).map_err(|e| Error {
                            kind: Kind::Usage,
                            hint: Some(format!("put each binary in the <os>/<arch>/ directory of the platform it was built for ({})", bin.display())),
                            ..e
                        })?;
                    }
                }
            }
        }
    }
    refused.sort();
    refused.dedup();
    if !refused.is_empty() {
        return Err(Error::usage(format!("cannot package: {}", refused.join("; "))).with_hint(
            "replace each link with a copy of the file it points at (cp -L), and remove anything that is not a regular file",
        ));
    }
    missing.sort();
    missing.dedup();
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::usage(format!(
        "cannot package: {} missing: {}",
        crate::ui::count(missing.len(), "binary is", "binaries are"),
        missing.join(", ")
    ))
    .with_hint("build them first (kbuild build <component> --platform <os/arch> --out <dir>), or package fewer platforms"))
}

/// The LICENSES entries (`kubernetes/LICENSES/...`), or None when the tree has none.
fn license_entries(root: &Path) -> Result<Option<Vec<Entry>>> {
    use std::os::unix::fs::PermissionsExt;
    let top = root.join(LICENSES);
    if !top.exists() {
        return Ok(None);
    }
    let mut entries = Vec::new();
    let mut stack = vec![(top.clone(), format!("{TOP}/{LICENSES}"))];
    while let Some((dir, inside)) = stack.pop() {
        let meta = std::fs::metadata(&dir).map_err(|e| Error::io("cannot read", &dir, e))?;
        if meta.is_file() {
            let mode = if meta.permissions().mode() & 0o111 != 0 {
                MODE_EXEC
            } else {
                MODE_FILE
            };
            entries.push(Entry::file(inside, dir, mode));
            continue;
        }
        entries.push(Entry::dir(inside.clone()));
        for child in std::fs::read_dir(&dir).map_err(|e| Error::io("cannot read", &dir, e))? {
            let child = child.map_err(|e| Error::io("cannot read", &dir, e))?;
            let name = child.file_name().to_string_lossy().into_owned();
            stack.push((child.path(), format!("{inside}/{name}")));
        }
    }
    Ok(Some(entries))
}

/// The entries of one binary tarball.
fn layout_entries(
    layout: &Layout,
    bin: &Path,
    src_tarball: &Path,
    licenses: Option<&[Entry]>,
    server_entries: &[(Platform, Vec<Entry>)],
) -> Vec<Entry> {
    let mut entries: Vec<Entry> = layout.dirs().into_iter().map(Entry::dir).collect();
    if layout.kind == TarballKind::Server {
        for (platform, extra) in server_entries {
            if *platform == layout.platform {
                entries.extend(extra.iter().cloned());
            }
        }
    }
    for (inside, component) in layout.binaries() {
        let src = bin_file(bin, layout.platform, &component.file_name(layout.platform));
        entries.push(Entry::file(inside, src, MODE_EXEC));
    }
    if layout.carries_source() {
        if let Some(licenses) = licenses {
            entries.extend(licenses.iter().cloned());
        }
        entries.push(Entry::file(
            format!("{TOP}/{SRC_TARBALL}"),
            src_tarball,
            MODE_FILE,
        ));
    }
    entries
}

/// One tarball to write, on some thread.
type Task<'a, T> = Box<dyn FnOnce() -> Result<T> + Send + 'a>;

/// One layout's tarball, written to `dest`, as a task for `run_parallel`.
fn tarball_task<'a>(
    layout: &'a Layout,
    dest: PathBuf,
    entries: Vec<Entry>,
    epoch: u64,
    cancel: &'a Control,
) -> Task<'a, Artifact> {
    Box::new(move || {
        let span = crate::ui::timings::thread_span(&format!("package {}", layout.file_name()));
        let written = tarball::write(&dest, epoch, entries, true, cancel)?;
        span.done();
        Ok(artifact(
            &layout.file_name(),
            layout.kind,
            Some(layout),
            written,
        ))
    })
}

/// Runs `tasks` on `threads` threads; the first failure cancels the others.
fn run_parallel<T: Send>(
    tasks: Vec<Task<'_, T>>,
    threads: usize,
    cancel: &Control,
) -> Result<Vec<T>> {
    let count = tasks.len();
    let slots: Vec<Mutex<Option<Task<'_, T>>>> =
        tasks.into_iter().map(|t| Mutex::new(Some(t))).collect();
    let results: Vec<Mutex<Option<Result<T>>>> = (0..count).map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for thread in 1..=threads.min(count).max(1) {
            let (next, slots, results) = (&next, &slots, &results);
            scope.spawn(move || {
                // The lane of this thread's artifacts in the timings.
                crate::ui::timings::set_thread_lane(format!("package thread {thread}"));
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= count {
                        break;
                    }
                    let task = slots[i]
                        .lock()
                        .expect("task slot")
                        .take()
                        .expect("taken once");
                    let result = task();
                    if result.is_err() {
                        cancel.cancel();
                    }
                    *results[i].lock().expect("result slot") = Some(result);
                }
            });
        }
    });
    let mut out = Vec::with_capacity(count);
    let mut first_err: Option<Error> = None;
    for slot in results {
        match slot
            .into_inner()
            .expect("result slot")
            .expect("every task ran")
        {
            Ok(v) => out.push(v),
            // Prefer the error that caused the cancellation over the ones it caused.
            Err(e) => match &first_err {
                Some(f) if f.kind != Kind::Interrupted => {}
                _ => first_err = Some(e),
            },
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// A staged tarball (manifests, final), written to `out/<file>`, as a task for `run_parallel`.
fn staged_task<'a>(
    file: &'static str,
    kind: TarballKind,
    contents: staged::Staged,
    out: &Path,
    epoch: u64,
    cancel: &'a Control,
) -> Task<'a, Artifact> {
    let dest = out.join(file);
    // The final and portable tarballs carry whole trees of the tree (cluster/, test/images):
    // thousands of entries in a real tree, so they are counted, not listed, like the
    // source tarball.
    let list = !matches!(kind, TarballKind::Final | TarballKind::TestPortable);
    Box::new(move || {
        let span = crate::ui::timings::thread_span(&format!("package {file}"));
        let written = contents.write_to(&dest, epoch, list, cancel)?;
        span.done();
        Ok(artifact(file, kind, None, written))
    })
}

fn artifact(file: &str, kind: TarballKind, layout: Option<&Layout>, written: Written) -> Artifact {
    Artifact {
        file: file.to_string(),
        kind: kind.name().to_string(),
        components: layout
            .map(|l| l.component_names().iter().map(|s| s.to_string()).collect())
            .unwrap_or_default(),
        os: layout.map(|l| l.platform.os.to_string()),
        arch: layout.map(|l| l.platform.arch.to_string()),
        size: written.size,
        sha256: written.digests.sha256,
        sha512: written.digests.sha512,
        sidecars: vec![format!("{file}.sha256"), format!("{file}.sha512")],
        entry_count: Some(written.entry_count),
        contents: written.contents,
        mode: None,
    }
}

/// Writes every tarball, the sidecars, SHA256SUMS/SHA512SUMS and manifest.json.
/// The new set is written into a staging directory beside `out` and moved in only when all
/// of it is complete: on failure (disk full, Ctrl-C) the previous set in `out` is left intact
/// and nothing half-written remains.
pub fn package(input: Input<'_>, notes: Vec<String>, cancel: &Control) -> Result<Packaged> {
    check_binaries(input.bin, &input.layouts)?;
    let out = release_tars_dir(input.out)?;
    // A directory under one of kbuild's names would stop the swap: say so before the work.
    crate::outdir::refuse_dirs(&out, &ours_in(&out)?)?;
    let staging = staging_dir(&out);
    // A leftover of a killed run (or a link planted there) goes; the link's target stays.
    let _ = std::fs::remove_dir_all(&staging);
    let _ = std::fs::remove_file(&staging);
    // Made new here, so nothing can be in it yet.
    std::fs::create_dir(&staging).map_err(|e| Error::io("cannot create", &staging, e))?;
    let result = package_into(
        Input {
            out: &staging,
            ..input
        },
        notes,
        cancel,
    )
    .and_then(|packaged| check_staged(&staging, cancel).map(|()| packaged))
    .and_then(|packaged| move_in(&staging, &out).map(|()| packaged));
    let _ = std::fs::remove_dir_all(&staging);
    result
}

/// `out` (`<--out>/release-tars`), created below the output directory with no link on the
/// way, and recorded in its owner file.
fn release_tars_dir(out: &Path) -> Result<PathBuf> {
    match (out.parent(), out.file_name()) {
        (Some(parent), Some(name)) if !parent.as_os_str().is_empty() => {
            crate::outdir::ensure_dir(parent, Path::new(name))
        }
        _ => crate::outdir::ensure_dir(Path::new("."), out),
    }
}

/// `<parent>/.<name>.<pid>.kbuild-tmp`, on the same filesystem as `out` so moves are renames.
fn staging_dir(out: &Path) -> PathBuf {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "release-tars".to_string());
    let parent = out.parent().unwrap_or(Path::new("."));
    parent.join(format!(".{name}.{}{}", std::process::id(), TMP_SUFFIX))
}

/// Checks the staged set as `kbuild verify` would, before it replaces anything: a set that
/// fails its own check never becomes the release set.
fn check_staged(staging: &Path, cancel: &Control) -> Result<()> {
    let report = super::verify::verify_dir(staging, cancel)
        .ok_or_else(|| Error::internal("the staged release set has no checksums or manifest"))?;
    cancel
        .check()
        .map_err(|_| Error::new(Kind::Interrupted, "packaging stopped"))?;
    if report.problems.is_empty() {
        return Ok(());
    }
    let problems: Vec<String> = report.problems.iter().map(|p| p.to_string()).collect();
    Err(Error::internal(format!(
        "the new release set failed its own check before replacing the previous one (which is untouched): {}",
        problems.join("; ")
    )))
}

/// Replaces kbuild's files in `out` with the complete set in `staging`, so that a kill at
/// any point leaves one whole set or a journal the next run settles
/// (`outdir::replace_set`). Other files a user keeps there are never moved.
fn move_in(staging: &Path, out: &Path) -> Result<()> {
    crate::outdir::replace_set(out, staging, &ours_in(out)?)
}

/// The names of kbuild's files in `out` (a link among them counts: it is replaced, not
/// written through).
fn ours_in(out: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(out).map_err(|e| Error::io("cannot read", out, e))? {
        let entry = entry.map_err(|e| Error::io("cannot read", out, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_ours(&name) {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

fn package_into(input: Input<'_>, notes: Vec<String>, cancel: &Control) -> Result<Packaged> {
    let started = Instant::now();
    let out = input.out;
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let epoch = input.info.source_date_epoch;
    let mut notes = notes;
    let licenses = license_entries(&input.info.root)?;
    if licenses.is_none() && input.layouts.iter().any(Layout::carries_source) {
        notes.push(format!(
            "the tree has no {LICENSES} directory, so the node and server tarballs carry none (upstream copies {LICENSES}/ into them)"
        ));
    }
    let src_path = out.join(SRC_TARBALL);
    let root = input.info.root.as_path();
    // Never package kbuild's own outputs: the output directory and the staging one in it.
    let mut exclude = vec![out.to_path_buf()];
    exclude.extend(input.out_in_tree.map(|rel| root.join(rel)));
    let excluded = Excluded::new(root, &exclude);

    // Phase 1: the source tarball, the client and test tarballs and the manifests tarball.
    let info = input.info;
    let src_dest = src_path.clone();
    let src_content = Mutex::new(None);
    let src_content_ref = &src_content;
    let exclude_ref = &exclude;
    let mut first: Vec<Task<'_, Artifact>> = Vec::new();
    first.push(Box::new(move || {
        let span = crate::ui::timings::thread_span(&format!("package {SRC_TARBALL}"));
        let (written, content) = srctar::write(
            &info.root,
            info.tree_state,
            exclude_ref,
            &src_dest,
            epoch,
            cancel,
        )?;
        span.done();
        *src_content_ref.lock().expect("src content") = Some(content);
        Ok(artifact(SRC_TARBALL, TarballKind::Src, None, written))
    }));
    // The tarballs that carry no source tarball need not wait for it.
    let (clients, rest): (Vec<&Layout>, Vec<&Layout>) =
        input.layouts.iter().partition(|l| !l.carries_source());
    let licenses_ref = licenses.as_deref();
    let task = |layout| {
        let entries = layout_entries(
            layout,
            input.bin,
            &src_path,
            licenses_ref,
            &input.server_entries,
        );
        tarball_task(layout, out.join(layout.file_name()), entries, epoch, cancel)
    };
    first.extend(clients.into_iter().map(task));
    let manifests = staged::manifests(root, &excluded)?;
    match &manifests {
        Some(m) => notes.extend(staged::missing_note(MANIFESTS_TARBALL, &m.missing)),
        None => notes.push(staged::no_manifests_note()),
    }
    let manifests_path = manifests.is_some().then(|| out.join(MANIFESTS_TARBALL));
    if let Some(m) = manifests {
        first.push(staged_task(
            MANIFESTS_TARBALL,
            TarballKind::Manifests,
            m,
            out,
            epoch,
            cancel,
        ));
    }
    let mut artifacts = run_parallel(first, threads, cancel)?;

    // Phase 2: node and server tarballs, which contain the source tarball, and
    // kubernetes.tar.gz, which contains the manifests tarball.
    let final_tarball = staged::final_tarball(
        root,
        &excluded,
        &input.info.version.git_version,
        manifests_path.as_deref(),
    )?;
    notes.extend(staged::missing_note(FINAL_TARBALL, &final_tarball.missing));
    let mut second: Vec<Task<'_, Artifact>> = rest.into_iter().map(task).collect();
    second.push(staged_task(
        FINAL_TARBALL,
        TarballKind::Final,
        final_tarball,
        out,
        epoch,
        cancel,
    ));
    if input.test_portable {
        let portable = staged::test_portable(root, &excluded)?;
        notes.extend(staged::missing_note(
            TEST_PORTABLE_TARBALL,
            &portable.missing,
        ));
        second.push(staged_task(
            TEST_PORTABLE_TARBALL,
            TarballKind::TestPortable,
            portable,
            out,
            epoch,
            cancel,
        ));
    }
    artifacts.extend(run_parallel(second, threads, cancel)?);
    artifacts.sort_by(|a, b| a.file.cmp(&b.file));

    let digests = |a: &Artifact| {
        (
            a.file.clone(),
            Digests {
                sha256: a.sha256.clone(),
                sha512: a.sha512.clone(),
            },
        )
    };
    let mut sums: Vec<(String, Digests)> = artifacts.iter().map(digests).collect();
    for (name, digests) in &sums {
        checksum::write_sidecars(out, name, digests)?;
    }
    // The SBOM and provenance describe the tarballs and are listed beside them.
    let attested = crate::attest::write(&crate::attest::Input {
        set: crate::attest::Set::Release,
        dir: out,
        artifacts: &artifacts,
        binaries: with_images(
            crate::attest::release_binaries(input.bin, &input.layouts),
            &input.images,
        ),
        source: &input.source,
        toolchain: &input.toolchain,
        plan: input.plan.as_ref(),
        images: input
            .images
            .iter()
            .map(|i| crate::attest::Image {
                file: i.file.clone(),
                digests: Digests {
                    sha256: i.sha256.clone(),
                    sha512: i.sha512.clone(),
                },
                base: i.base.clone(),
                base_digest: i.base_digest.clone(),
            })
            .collect(),
    })?;
    sums.extend(attested.iter().map(digests));
    artifacts.extend(attested);
    artifacts.sort_by(|a, b| a.file.cmp(&b.file));
    notes.push(crate::attest::RUN_TIMES_NOTE.to_string());

    let mut source = input.source;
    source.src_content = src_content
        .into_inner()
        .expect("src content")
        .map(|c| c.as_str().to_string());
    if source.tree_state == "dirty" {
        notes.push("the tree is dirty: kubernetes-src.tar.gz holds the working tree as it is on disk under kubernetes/ (every file, ignored ones too, but top-level _*, .git*, .config*, .gsutil* and kbuild's output directory), as upstream tars a tree that is not clean, not the commit".to_string());
    }
    let manifest = Manifest {
        schema_version: manifest::SCHEMA_VERSION,
        kbuild_version: env!("CARGO_PKG_VERSION").to_string(),
        kind: "release".to_string(),
        source,
        toolchain: input.toolchain,
        artifacts,
        notes,
        plan: input.plan,
        images: input.images,
    };
    manifest.write(out)?;
    // The sums come last and list the manifest too, so a signature of SHA256SUMS covers
    // what the manifest says of the source, the toolchain and the plan.
    sums.push(checksum::listed_file(out, manifest::FILE_NAME)?);
    checksum::write_sums(out, &sums)?;
    Ok(Packaged {
        manifest,
        elapsed: started.elapsed(),
        threads,
    })
}

/// The binaries, each also carried by the server images made of it.
fn with_images(
    mut binaries: Vec<crate::attest::Binary>,
    images: &[super::serverimage::ImageRecord],
) -> Vec<crate::attest::Binary> {
    for image in images {
        let made_of = binaries
            .iter_mut()
            .find(|b| b.os == "linux" && b.arch == image.arch && b.name == image.binary);
        if let Some(b) = made_of {
            b.carried_by.push(image.file.clone());
        }
    }
    binaries
}

/// The platforms that have a directory in `<bin>/<os>/<arch>/`, in upstream's order.
pub fn platforms_in(bin: &Path) -> Vec<Platform> {
    Platform::all()
        .iter()
        .copied()
        .filter(|p| bin.join(p.os).join(p.arch).is_dir())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_kbuild_files_are_cleaned() {
        assert!(is_ours("kubernetes-client-linux-amd64.tar.gz"));
        assert!(is_ours("kubernetes-src.tar.gz.sha512"));
        assert!(is_ours("kubernetes.tar.gz"));
        assert!(is_ours("kubernetes.tar.gz.sha256"));
        assert!(!is_ours("kubernetes.tar"));
        assert!(is_ours("SHA256SUMS"));
        assert!(is_ours("manifest.json"));
        assert!(!is_ours("notes.txt"));
        assert!(!is_ours("kubernetes"));
    }

    #[test]
    fn parallel_runner_returns_results_in_order_and_the_first_real_error() {
        let cancel = Control::default();
        let tasks: Vec<Task<'static, usize>> = (0..5usize)
            .map(|i| Box::new(move || Ok(i * 2)) as Task<'static, usize>)
            .collect();
        assert_eq!(run_parallel(tasks, 2, &cancel).unwrap(), [0, 2, 4, 6, 8]);
        let tasks: Vec<Task<'static, usize>> =
            vec![Box::new(|| Err(Error::usage("boom"))), Box::new(|| Ok(1))];
        let cancel = Control::default();
        assert_eq!(run_parallel(tasks, 2, &cancel).unwrap_err().message, "boom");
    }
}
