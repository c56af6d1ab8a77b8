//! The plan's jobs and artifacts, made from the resolved settings and what is known about
//! the source and the engine. Pure: every function here computes, none runs anything, so
//! `kbuild plan` and a run make the same jobs from the same facts.

use std::path::Path;

use super::EngineSettings;
use crate::engine::{
    CONTAINER_SRC, DOCKER_OUTPUT_SUBPATH, HOST_OUTPUT_SUBPATH, NETWORK_ENV, PASSTHROUGH_ENV,
};
use crate::kube::release::{
    Layout, FINAL_TARBALL, MANIFESTS_TARBALL, RELEASE_TARS, SRC_TARBALL, TEST_PORTABLE_TARBALL,
};
use crate::kube::{Component, Platform};
use crate::plan::{Artifact, CheckStep, EngineChoice, EngineKind, Job, SourceFacts};
use crate::source::SourceInfo;

pub use crate::exec::settings::EngineFacts;

pub fn engine_choice(settings: &EngineSettings, facts: &EngineFacts) -> EngineChoice {
    EngineChoice {
        kind: facts.kind,
        endpoint: facts.endpoint.clone(),
        endpoint_from: facts.endpoint_from.clone(),
        image: facts.image.clone(),
        image_id: facts.image_id.clone(),
        repo_digest: facts.repo_digest.clone(),
        transfer: facts.transfer.map(|t| transfer_name(t).to_string()),
        user: facts.user.map(|(u, g)| format!("{u}:{g}")),
        cache_volume: facts.cache_volume(),
        memory_limit: settings.memory_limit,
        network: settings.network,
        stall_timeout_secs: settings.stall_timeout.map(|d| d.as_secs()),
        force: settings.force,
    }
}

fn transfer_name(t: crate::engine::transfer::Transfer) -> &'static str {
    match t {
        crate::engine::transfer::Transfer::Bind => "bind",
        crate::engine::transfer::Transfer::Copy => "copy",
    }
}

/// The tree's facts for a plan; a tree that is not clean is pinned by the digest of its
/// changes, the one the jobs' fingerprints use.
pub fn source_facts(info: &SourceInfo) -> crate::error::Result<SourceFacts> {
    let changes = match info.tree_state {
        crate::source::TreeState::Clean => None,
        _ => Some(crate::exec::fingerprint::tree_digest(info)?),
    };
    Ok(SourceFacts {
        root: info.root.clone(),
        repo: info.origin.as_ref().map(|o| o.repo.clone()),
        git_ref: info.origin.as_ref().map(|o| o.git_ref.clone()),
        commit: info.commit.clone(),
        tree_state: info.tree_state.as_str().to_string(),
        git_version: info.version.git_version.clone(),
        source_date_epoch: info.source_date_epoch,
        go_version: info.go_version.clone(),
        changes,
    })
}

/// A check's name and what it requires.
type Described = (&'static str, &'static str);

/// The checks a run makes, with what each requires.
pub fn check_steps(
    kind: EngineKind,
    c: &crate::checks::CheckPlan,
    has_git: bool,
) -> Vec<CheckStep> {
    let gib = |b: u64| crate::units::human_bytes(b);
    let mut steps: Vec<(&str, Option<String>)> = Vec::new();
    if has_git {
        steps.push(("git", Some("git on PATH".into())));
    }
    // Where the memory is counted, and the checks only one kind of engine has, in the
    // order they run (preflight.rs).
    let (whose, before, after): (&str, &[Described], &[Described]) = match kind {
        EngineKind::Docker => (
            "for the engine",
            &[("engine", "a Docker API answering")],
            &[
                ("image", "the builder image present or pullable"),
                ("arch", "the image runs on the engine's architecture"),
            ],
        ),
        EngineKind::Host => (
            "on this machine",
            &[
                ("go", "a Go satisfying the tree's .go-version"),
                ("make", "GNU make on PATH"),
            ],
            &[],
        ),
    };
    let described = |list: &[Described]| -> Vec<(&'static str, Option<String>)> {
        list.iter()
            .map(|(name, what)| (*name, Some(what.to_string())))
            .collect()
    };
    steps.extend(described(before));
    let memory = format!("at least {} {whose}", gib(c.min_memory));
    let disk = format!("{} free ({} to warn)", gib(c.min_disk), gib(c.warn_disk));
    steps.push(("memory", Some(memory)));
    steps.push(("cpus", None));
    steps.push(("disk", Some(disk)));
    steps.extend(described(after));
    steps
        .into_iter()
        .map(|(name, requires)| CheckStep {
            name: name.to_string(),
            requires,
            skipped: c.skips(name),
        })
        .collect()
}

/// `WHAT=cmd/kubectl cmd/kubeadm`.
fn what(components: &[&'static Component]) -> String {
    let targets: Vec<&str> = components.iter().map(|c| c.target).collect();
    format!("WHAT={}", targets.join(" "))
}

/// The make variables: platforms, output place, module policy, version stamping, and what
/// the user passes through (an allowlist: nothing else of the environment reaches a build).
fn make_env(
    platforms: &[Platform],
    output_subpath: &str,
    info: &Tree<'_>,
    settings: &EngineSettings,
) -> Vec<(String, String)> {
    let platforms: Vec<String> = platforms.iter().map(Platform::to_string).collect();
    let mut env = vec![
        ("KUBE_BUILD_PLATFORMS".to_string(), platforms.join(" ")),
        (
            "KUBE_OUTPUT_SUBPATH".to_string(),
            output_subpath.to_string(),
        ),
    ];
    if !settings.network {
        // Upstream's containerized build runs with GOPROXY=off: vendored modules only.
        env.push(("GOPROXY".to_string(), "off".to_string()));
    }
    env.extend(info.version_env.iter().cloned());
    for (name, value) in &settings.user_env {
        if !env.iter().any(|(k, _)| k == name) {
            env.push((name.clone(), value.clone()));
        }
    }
    crate::ui::progress::name_compiled_packages(&mut env);
    env
}

/// Where the outputs go in the output directory: `bin/<os>/<arch>/<file>`.
fn outputs(components: &[&'static Component], platforms: &[Platform]) -> Vec<String> {
    let mut out = Vec::new();
    for p in platforms {
        for c in components {
            out.push(format!("bin/{}/{}/{}", p.os, p.arch, c.file_name(*p)));
        }
    }
    out
}

fn pairs(env: Vec<(String, String)>) -> Vec<String> {
    env.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// The tree a job builds: where it is, and the version variables its facts give (none
/// when a `--ref` is planned before it is fetched).
pub struct Tree<'a> {
    pub root: &'a Path,
    pub version_env: Vec<(String, String)>,
}

impl<'a> Tree<'a> {
    pub fn of(info: &'a SourceInfo) -> Tree<'a> {
        Tree {
            root: &info.root,
            version_env: info.version_env(),
        }
    }
}

/// One job as the engine will run it.
pub fn job(
    name: String,
    components: &[&'static Component],
    platforms: &[Platform],
    tree: &Tree<'_>,
    settings: &EngineSettings,
    facts: &EngineFacts,
) -> Job {
    let info = tree;
    let command = vec!["make".to_string(), "all".to_string(), what(components)];
    let common = |image: String, workdir: String| Job {
        name: name.clone(),
        components: components.iter().map(|c| c.name.to_string()).collect(),
        platforms: platforms.iter().map(Platform::to_string).collect(),
        image,
        command: command.clone(),
        workdir,
        env: Vec::new(),
        mounts: Vec::new(),
        network: String::new(),
        user: None,
        memory_limit: None,
        cpus: None,
        engine: facts.endpoint.clone(),
        output_subpath: String::new(),
        outputs: outputs(components, platforms),
    };
    match facts.kind {
        EngineKind::Docker => {
            let mut job = common(facts.image.clone(), CONTAINER_SRC.to_string());
            let mut env = vec![
                ("HOME".to_string(), "/tmp".to_string()),
                ("GOTOOLCHAIN".to_string(), "local".to_string()),
            ];
            let copied = matches!(
                facts.transfer,
                Some(crate::engine::transfer::Transfer::Copy)
            );
            let tree = match copied {
                true => crate::engine::sync::source_volume_name(info.root),
                false => info.root.display().to_string(),
            };
            job.mounts.push(format!("{tree}:{CONTAINER_SRC}"));
            // A bind-mounted tree is shared by every job that runs at once: each gets an
            // `_output` of its own (a copied tree is one per engine, whose jobs take turns).
            let own_output = (!copied).then(|| crate::engine::job_output_dir(&name, 0));
            if let Some(dir) = &own_output {
                job.mounts
                    .push(format!("{tree}/{dir}:{CONTAINER_SRC}/_output"));
            }
            if let Some(volume) = facts.cache_volume() {
                job.mounts
                    .push(format!("{volume}:{}", crate::engine::cache::MOUNT));
                env.extend(crate::engine::cache::go_env());
            }
            env.extend(make_env(platforms, DOCKER_OUTPUT_SUBPATH, info, settings));
            job.env = pairs(env);
            job.network = if settings.network { "bridge" } else { "none" }.to_string();
            job.user = facts.user.map(|(u, g)| format!("{u}:{g}"));
            job.memory_limit = settings.memory_limit;
            job.cpus = settings.cpus;
            job.output_subpath = match &own_output {
                Some(dir) => crate::engine::job_output_subpath(dir),
                None => DOCKER_OUTPUT_SUBPATH.to_string(),
            };
            job
        }
        EngineKind::Host => {
            let mut job = common(facts.image.clone(), info.root.display().to_string());
            let mut env = vec![("GOTOOLCHAIN".to_string(), "local".to_string())];
            env.extend(make_env(platforms, HOST_OUTPUT_SUBPATH, info, settings));
            if let Some(cache) = &settings.host_gocache {
                env.push(("GOCACHE".to_string(), cache.display().to_string()));
            }
            job.env = pairs(env);
            job.network = "host".to_string();
            job.output_subpath = HOST_OUTPUT_SUBPATH.to_string();
            job
        }
    }
}

/// The variables the user's environment passes into builds, read from the snapshot: the
/// allowlist always, and the module settings when the build has a network.
pub fn user_env(env: &crate::env::Env, network: bool) -> Vec<(String, String)> {
    let mut names: Vec<&str> = PASSTHROUGH_ENV.to_vec();
    if network {
        names.extend(NETWORK_ENV);
    }
    names
        .into_iter()
        .filter_map(|name| Some((name.to_string(), env.get(name)?.to_string())))
        .collect()
}

/// Host builds share one Go build cache (content-addressed, safe to share), as Docker
/// builds keep one in a volume; a GOCACHE the user set is left to them.
pub fn host_gocache(env: &crate::env::Env) -> Option<std::path::PathBuf> {
    if env.is_set("GOCACHE") {
        return None;
    }
    crate::env::cache_home().map(|c| c.join("kbuild").join("go-build"))
}

/// The release artifacts: each binary tarball with its members, then the source, manifests
/// and final tarballs (and the portable test tarball with `test_portable`), the sums, the
/// manifest and the attestations.
pub fn release_artifacts(layouts: &[Layout], test_portable: bool) -> Vec<Artifact> {
    let tars = |file: &str| format!("{RELEASE_TARS}/{file}");
    let mut out: Vec<Artifact> = layouts
        .iter()
        .map(|l| Artifact {
            file: tars(&l.file_name()),
            kind: l.kind.name().to_string(),
            platform: Some(l.platform.to_string()),
            members: l.binaries().into_iter().map(|(path, _)| path).collect(),
        })
        .collect();
    let whole = |file: &str, kind: &str, members: &[&str]| Artifact {
        file: tars(file),
        kind: kind.to_string(),
        platform: None,
        members: members.iter().map(|m| m.to_string()).collect(),
    };
    out.push(whole(
        SRC_TARBALL,
        "src",
        &["the tree at HEAD (git archive), or the working tree when dirty"],
    ));
    out.push(whole(
        MANIFESTS_TARBALL,
        "manifests",
        &["kubernetes/gci-trusty/ (cluster/gce/manifests)"],
    ));
    out.push(whole(
        FINAL_TARBALL,
        "final",
        &["kubernetes/ (cluster, docs, version, server/kubernetes-manifests.tar.gz)"],
    ));
    if test_portable {
        out.push(whole(
            TEST_PORTABLE_TARBALL,
            "test-portable",
            &["kubernetes/ (test/images, test/e2e/testing-manifests, test/kubemark, hack/e2e-internal, hack/get-build.sh, hack/ginkgo-e2e.sh, hack/lib)"],
        ));
    }
    for (file, kind) in [
        ("SHA256SUMS", "sums"),
        ("SHA512SUMS", "sums"),
        ("manifest.json", "manifest"),
    ] {
        out.push(whole(file, kind, &["every artifact above"]));
    }
    out
}

/// The extension layout: each binary under its image architecture, and the two snippets.
pub fn extension_artifacts(
    components: &[&'static Component],
    platforms: &[Platform],
) -> Vec<Artifact> {
    use crate::package::extension::{layout_path, DIR, DOCKERFILE_SNIPPET, METADATA_FRAGMENT};
    let mut out = Vec::new();
    for p in platforms {
        for c in components {
            out.push(Artifact {
                file: format!("{DIR}/{}", layout_path(*p, c)),
                kind: "extension-binary".to_string(),
                platform: Some(p.to_string()),
                members: vec![format!("bin/{}/{}/{}", p.os, p.arch, c.file_name(*p))],
            });
        }
    }
    for (file, kind) in [
        (METADATA_FRAGMENT, "metadata-fragment"),
        (DOCKERFILE_SNIPPET, "dockerfile-snippet"),
        ("SHA256SUMS", "sums"),
        ("manifest.json", "manifest"),
    ] {
        out.push(Artifact {
            file: format!("{DIR}/{file}"),
            kind: kind.to_string(),
            platform: None,
            members: Vec::new(),
        });
    }
    out
}

/// The extension image `--tag` writes: an OCI layout of both variants and its archive.
pub fn extension_image_artifacts(tag: &str) -> Vec<Artifact> {
    use crate::package::extension::{DIR, IMAGE_ARCHES};
    let variants: Vec<String> = IMAGE_ARCHES
        .iter()
        .map(|a| format!("{tag} linux/{a}"))
        .collect();
    vec![
        Artifact {
            file: format!("{DIR}/image"),
            kind: "oci-layout".to_string(),
            platform: None,
            members: variants.clone(),
        },
        Artifact {
            file: format!("{DIR}/image.oci.tar.gz"),
            kind: "oci-archive".to_string(),
            platform: None,
            members: variants,
        },
    ]
}

/// The output directory as the plan records it: absolute, so a saved plan means the same
/// directory wherever `kbuild run` is started.
pub fn absolute(path: &Path) -> std::path::PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}
