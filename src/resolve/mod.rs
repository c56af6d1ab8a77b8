//! The resolver: flags, the environment (read once, `crate::env`), a recipe and the defaults
//! are stacked into one option overlay (`options`), turned into a command's typed arguments
//! (`args`), validated into settings (below), and, once the source and the engine are known,
//! into the plan every command executes (`jobs`). Invalid input stops here, before anything
//! is run.

pub mod recipe;
pub mod schedule;

pub mod args;
pub mod cache;
pub mod jobs;
pub mod options;

use std::path::PathBuf;
use std::time::Duration;

use crate::checks::{CheckPlan, Profile};
use crate::cli::{BuildArgs, EngineArgs, SourceArgs, TargetArgs};
use crate::engine::docker;
use crate::error::{Error, Result};
pub use crate::exec::settings::EngineSettings;
use crate::kube::component::{self, Component};
use crate::kube::Platform;
use crate::source::{checkout, SourceSpec};

/// A validated `kbuild build`, before the source and the engine are known.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    pub components: Vec<&'static Component>,
    pub platforms: Vec<Platform>,
    pub source: SourceSpec,
    pub git_version: Option<String>,
    pub engine: EngineSettings,
    pub out: PathBuf,
}

pub fn resolve_build(args: &BuildArgs) -> Result<BuildRequest> {
    let mut components: Vec<&'static Component> = Vec::new();
    for name in &args.components {
        let found = Component::parse(name)?;
        if !components.contains(&found) {
            components.push(found);
        }
    }
    let platforms = resolve_platforms(&args.target)?;
    component::check_pairs(&components, &platforms)?;
    Ok(BuildRequest {
        components,
        platforms,
        source: resolve_source(&args.source)?,
        git_version: args.source.git_version.clone(),
        engine: resolve_engine(&args.engine)?,
        out: args.out.clone(),
    })
}

/// Refuses an `--out` that cannot be a directory (a file, or a path under one) before
/// anything is made, in words rather than the OS's "File exists".
pub fn check_out_dir(out: &std::path::Path) -> Result<()> {
    // The nearest part of the path that exists must be a directory.
    let Some(existing) = out
        .ancestors()
        .find(|a| !a.as_os_str().is_empty() && a.exists())
    else {
        return Ok(());
    };
    if existing.is_dir() {
        return Ok(());
    }
    let what = if existing == out {
        format!("--out {} is not a directory", out.display())
    } else {
        format!(
            "--out {} cannot be made: {} is not a directory",
            out.display(),
            existing.display()
        )
    };
    Err(Error::usage(what).with_hint(
        "--out names the directory kbuild writes into: give a directory, or a path that does not exist yet",
    ))
}

/// Refuses a directory to read (`kbuild verify DIR`) that is missing or a file, saying which.
pub fn check_verify_dir(dir: &std::path::Path) -> Result<()> {
    let what = match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => return Ok(()),
        Ok(_) => "is not a directory",
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "does not exist",
        Err(e) => return Err(Error::io("cannot open", dir, e)),
    };
    Err(Error::usage(format!("{} {what}", dir.display())).with_hint(
        "point kbuild verify at a directory kbuild packaged, e.g. out/release-tars, or at the output directory holding it",
    ))
}

/// The platforms given (flags, KUBE_BUILD_PLATFORMS or a recipe, already merged), else
/// upstream's fast-build platform. A list that names no platform (`--platform ""`, `","`) is
/// refused: upstream would build an empty set and install nothing.
pub fn resolve_platforms(args: &TargetArgs) -> Result<Vec<Platform>> {
    if args.platforms.is_empty() {
        return Ok(vec![Platform::fastbuild()]);
    }
    let texts: Vec<&str> = args
        .platforms
        .iter()
        .flat_map(|p| p.split([',', ' ']))
        .collect();
    let mut platforms = Vec::new();
    for text in texts.iter().filter(|t| !t.is_empty()) {
        let platform = Platform::parse(text)?;
        if !platforms.contains(&platform) {
            platforms.push(platform);
        }
    }
    if platforms.is_empty() {
        let shown: Vec<String> = args
            .platforms
            .iter()
            .map(|p| format!("--platform \"{p}\""))
            .collect();
        return Err(Error::usage(format!("{} names no platform", shown.join(" "))).with_hint(format!(
            "name at least one os/arch (e.g. --platform {}), or leave it out for linux on this machine's architecture",
            Platform::fastbuild()
        )));
    }
    Ok(platforms)
}

/// `--kube-root DIR`, or `--ref REF [--repo URL] [--source-dir DIR]`.
pub fn resolve_source(args: &SourceArgs) -> Result<SourceSpec> {
    if let Some(version) = &args.git_version {
        crate::source::given_version(version)?;
    }
    match args.git_ref.as_deref().map(str::trim) {
        None => Ok(SourceSpec::Tree(args.kube_root.clone())),
        Some("") => Err(Error::usage("--ref is empty")
            .with_hint("name a tag (v1.34.2), a branch (master) or a commit id")),
        Some(git_ref) => Ok(SourceSpec::Git {
            repo: args.repo.clone(),
            git_ref: git_ref.to_string(),
            dir: match &args.source_dir {
                Some(dir) => dir.clone(),
                None => checkout::default_dir(&args.repo)?,
            },
        }),
    }
}

/// Engine settings with the check thresholds of a `kbuild build`.
pub fn resolve_engine(args: &EngineArgs) -> Result<EngineSettings> {
    resolve_engine_for(args, Profile::Build)
}

/// Engine settings with the check thresholds sized for `profile` (a quick-release needs more).
pub fn resolve_engine_for(args: &EngineArgs, profile: Profile) -> Result<EngineSettings> {
    let memory_limit = args.memory.as_deref().map(parse_size).transpose()?;
    if let Some(bytes) = memory_limit {
        docker::check_memory_limit(bytes, "--memory")?;
    }
    let image = args.image.clone().filter(|i| !i.is_empty());
    if let Some(image) = &image {
        docker::check_reference(image)?;
    }
    check_cache_imports(args)?;
    let checks = CheckPlan::new(
        profile,
        args.min_memory.as_deref().map(parse_size).transpose()?,
        args.min_disk.as_deref().map(parse_size).transpose()?,
        &args.skip_checks,
    )?;
    Ok(EngineSettings {
        image,
        stall_timeout: (args.stall_timeout > 0).then(|| Duration::from_secs(args.stall_timeout)),
        memory_limit,
        network: args.network,
        transfer: args.transfer,
        force: args.force,
        kind: args.engine.into(),
        checks,
        user_env: jobs::user_env(crate::env::current(), args.network),
        host_gocache: jobs::host_gocache(crate::env::current()),
        expect_image_id: None,
        engines: resolve_engines(&args.engines)?,
        require_all_engines: args.require_all_engines,
        cpus: args.cpus.map(check_cpus).transpose()?,
        endpoint: None,
        cache_from: args.cache_from.clone(),
    })
}

/// `--cache-from` is refused where imports are turned off (`--no-cache-import`, or
/// `no_cache_import` in a recipe) and where there is no cache volume to import into.
fn check_cache_imports(args: &EngineArgs) -> Result<()> {
    let Some(first) = args.cache_from.first() else {
        return Ok(());
    };
    if args.no_cache_import {
        return Err(Error::usage(format!(
            "--cache-from {} is refused: Go cache imports are turned off (--no-cache-import, or no_cache_import = true in the recipe)",
            first.display()
        ))
        .with_hint("an imported cache is trusted by its key; drop --cache-from for a clean build, or allow imports"));
    }
    if args.engine == crate::cli::EngineKind::Host {
        return Err(Error::usage("--cache-from imports into a Docker engine's cache volume; --engine host uses a host GOCACHE")
            .with_hint("with --engine host, let the CI cache step save and restore GOCACHE itself"));
    }
    Ok(())
}

/// The smallest `--cpus` Docker accepts (daemon/daemon_unix.go: "Range of CPUs is from 0.01
/// to N").
pub const MIN_CPUS: f64 = 0.01;

/// `--cpus` as the engine will take it: at least `MIN_CPUS`, and small enough for the
/// engine's nano-CPU count (an i64). Whether the engine has that many is known only once it
/// answers (`check_cpus_fit`).
fn check_cpus(cpus: f64) -> Result<f64> {
    // 1e30 as the user wrote it, not as thirty-one digits.
    let cpus_shown = match cpus.to_string() {
        long if long.len() > 12 => format!("{cpus:e}"),
        short => short,
    };
    let hint = "give a number of CPUs from 0.01 up to the engine's count, e.g. --cpus 1 or --cpus 2.5, or leave --cpus out for no limit";
    if !(cpus > 0.0 && cpus.is_finite()) {
        return Err(
            Error::usage(format!("--cpus {cpus_shown} is not a number of CPUs")).with_hint(hint),
        );
    }
    if cpus < MIN_CPUS {
        return Err(Error::usage(format!(
            "--cpus {cpus_shown} is below {MIN_CPUS}, the smallest share of a CPU Docker gives a container"
        ))
        .with_hint(hint));
    }
    if cpus * 1e9 >= i64::MAX as f64 {
        return Err(Error::usage(format!(
            "--cpus {cpus_shown} is more CPUs than any engine has"
        ))
        .with_hint(hint));
    }
    Ok(cpus)
}

/// `--engines`: each entry parsed, and no engine named twice. Names are compared by the
/// endpoint they reach, resolved as the docker CLI would (`default` and
/// `unix:///var/run/docker.sock` are one engine), not by spelling. A daemon's ID would not
/// do: two daemons of one machine may share it (see engine::sync's `engine_id`).
fn resolve_engines(list: &[String]) -> Result<Vec<(String, usize)>> {
    // Every entry is read before any is looked up: a slip in the list is said first.
    let parsed = (0..list.len())
        .map(|at| parse_engine_entry(list, at))
        .collect::<Result<Vec<_>>>()?;
    let mut engines: Vec<(String, usize)> = Vec::new();
    let mut reached: Vec<String> = Vec::new();
    for ((name, jobs), entry) in parsed.into_iter().zip(list) {
        let endpoint = crate::engine::endpoint::named(&name)?;
        let key = endpoint_key(&endpoint.host);
        if let Some(first) = reached.iter().position(|k| *k == key) {
            let first = &engines[first].0;
            let what = if *first == name {
                format!("--engines names {name} twice")
            } else {
                format!(
                    "--engines names one engine twice: {first} and {} both reach {}",
                    entry.trim(),
                    endpoint.shown()
                )
            };
            return Err(Error::usage(what).with_hint(
                "name each engine once; to give one engine more jobs at a time, write NAME=JOBS, e.g. --engines default=2",
            ));
        }
        reached.push(key);
        engines.push((name, jobs));
    }
    Ok(engines)
}

/// What tells two endpoints apart: a socket by the file it is (`/var/run` is often a link
/// to `/run`), a network endpoint as written, but for a trailing `/`.
fn endpoint_key(host: &str) -> String {
    match host.strip_prefix("unix://") {
        Some(path) => std::fs::canonicalize(path)
            .map(|p| format!("unix://{}", p.display()))
            .unwrap_or_else(|_| host.to_string()),
        None => host.trim_end_matches('/').to_string(),
    }
}

/// Entry `at` of `--engines`, `NAME` or `NAME=JOBS`: an engine and how many jobs it takes
/// at a time. Errors quote the whole list as given, split at its commas.
fn parse_engine_entry(list: &[String], at: usize) -> Result<(String, usize)> {
    let entry = list[at].trim();
    let given = format!("--engines \"{}\"", list.join(","));
    let which = format!("entry {} of {}", at + 1, list.len());
    let (name, jobs) = match entry.rsplit_once('=') {
        Some((name, jobs)) => match jobs.parse::<usize>() {
            Ok(n) if n > 0 => (name.trim(), n),
            _ => {
                return Err(Error::usage(format!(
                    "{given}: \"{jobs}\" in {which} is not a number of jobs"
                ))
                .with_hint(
                    "write NAME or NAME=JOBS with JOBS at least 1, e.g. --engines default=2,ci",
                ))
            }
        },
        None => (entry, 1),
    };
    if name.is_empty() {
        let what = if list.iter().all(|e| e.trim().is_empty()) {
            format!("{given} names no engine")
        } else if entry.is_empty() {
            format!("{given}: {which} is empty")
        } else {
            format!("{given}: {which} (\"{entry}\") has no engine name")
        };
        return Err(Error::usage(what).with_hint(
            "name docker contexts or endpoints, separated by single commas, e.g. --engines default,tcp://build:2376",
        ));
    }
    Ok((name.to_string(), jobs))
}

pub use crate::units::parse_size;

/// `--base-image KEY=REF` and the image variables into what quick-release builds its
/// server images with; None with `--no-images`.
pub fn resolve_images(
    args: &crate::cli::ImageArgs,
) -> Result<Option<crate::exec::images::ImageRequest>> {
    if args.no_images {
        return Ok(None);
    }
    let mut overrides = crate::kube::images::BaseOverrides {
        registry: args.base_registry.clone(),
        ..Default::default()
    };
    for given in &args.base_images {
        let parsed = given
            .split_once('=')
            .filter(|(k, v)| crate::kube::images::valid_key(k) && !v.trim().is_empty());
        let Some((key, reference)) = parsed else {
            return Err(Error::usage(format!(
                "--base-image \"{given}\" is not BASE=REF with BASE one of go-runner, distroless-iptables or a server image's binary"
            ))
            .with_hint("e.g. --base-image go-runner=registry.k8s.io/build-image/go-runner:v2.4.0-go1.25.5-bookworm.0 (BASE@ARCH=REF for one architecture)"));
        };
        overrides
            .refs
            .insert(key.to_string(), reference.trim().to_string());
    }
    Ok(Some(crate::exec::images::ImageRequest {
        overrides,
        docker_registry: args.docker_registry.clone(),
        docker_image_tag: args.docker_image_tag.clone(),
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_base_image_is_base_equals_ref() {
        let args = |v: &[&str]| crate::cli::ImageArgs {
            base_images: v.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        let ok = super::resolve_images(&args(&["distroless-iptables@arm64=me/d:1"])).unwrap();
        assert_eq!(
            ok.unwrap().overrides.refs["distroless-iptables@arm64"],
            "me/d:1"
        );
        for bad in ["go-runner", "gorunner=x", "go-runner="] {
            let e = super::resolve_images(&args(&[bad])).unwrap_err();
            assert_eq!(e.kind, crate::error::Kind::Usage, "{bad}");
            assert!(e.hint.is_some());
        }
    }

    use super::*;
    use crate::checks::check_cpus_fit;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512m").unwrap(), 512 << 20);
        assert_eq!(parse_size("8GiB").unwrap(), 8 << 30);
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("0g").is_err());
        assert!(parse_size("5x").is_err());
    }

    #[test]
    fn cpus_are_refused_where_docker_would_refuse_them() {
        for good in [0.01, 1.0, 2.5] {
            assert_eq!(check_cpus(good).unwrap(), good);
        }
        for (bad, says) in [
            (0.0, "not a number of CPUs"),
            (-1.0, "not a number of CPUs"),
            (f64::NAN, "not a number of CPUs"),
            (f64::INFINITY, "not a number of CPUs"),
            (0.0000001, "below 0.01"),
            (1e30, "more CPUs than any engine has"),
        ] {
            let err = check_cpus(bad).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad}");
            assert!(err.message.contains(says), "{bad}: {}", err.message);
        }
        assert!(check_cpus_fit(Some(2.0), 2, "e").is_ok());
        assert!(
            check_cpus_fit(Some(3.0), 0, "e").is_ok(),
            "an engine that did not say"
        );
        assert!(check_cpus_fit(None, 1, "e").is_ok());
        let err = check_cpus_fit(Some(3.0), 2, "unix:///var/run/docker.sock").unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert_eq!(
            err.message,
            "--cpus 3 is more than the 2 CPUs of the engine at unix:///var/run/docker.sock"
        );
    }

    #[test]
    fn engines_are_named_once_and_never_empty() {
        let list = |l: &[&str]| l.iter().map(|e| e.to_string()).collect::<Vec<_>>();
        let says = |l: &[&str]| resolve_engines(&list(l)).unwrap_err().message;
        assert_eq!(says(&["", "", ""]), "--engines \",,\" names no engine");
        assert_eq!(
            says(&["tcp://a:2375", "", "tcp://b:2375"]),
            "--engines \"tcp://a:2375,,tcp://b:2375\": entry 2 of 3 is empty"
        );
        assert_eq!(
            says(&["=2"]),
            "--engines \"=2\": entry 1 of 1 (\"=2\") has no engine name"
        );
        assert_eq!(
            says(&["tcp://a:2375", "tcp://a:2375=2"]),
            "--engines names tcp://a:2375 twice"
        );
        assert_eq!(
            says(&["tcp://a:2375", "tcp://a:2375"]),
            "--engines names tcp://a:2375 twice"
        );
        assert_eq!(
            says(&["tcp://a:2375", "tcp://a:2375/"]),
            "--engines names one engine twice: tcp://a:2375 and tcp://a:2375/ both reach tcp://a:2375/"
        );
        let two = resolve_engines(&list(&["tcp://a:2375=2", "tcp://b:2375"])).unwrap();
        assert_eq!(
            two,
            vec![
                ("tcp://a:2375".to_string(), 2),
                ("tcp://b:2375".to_string(), 1)
            ]
        );
    }

    #[test]
    fn platform_flags_accept_commas_and_dedupe() {
        let args = TargetArgs {
            platforms: vec!["linux/amd64,darwin/arm64".into(), "linux/amd64".into()],
        };
        let got = resolve_platforms(&args).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].to_string(), "darwin/arm64");
    }

    #[test]
    fn a_platform_list_naming_nothing_is_refused() {
        for given in ["", ",", " ", " , "] {
            let args = TargetArgs {
                platforms: vec![given.into()],
            };
            let err = resolve_platforms(&args).unwrap_err();
            assert_eq!(err.kind, crate::error::Kind::Usage, "{given:?}");
            assert!(err.message.contains("names no platform"), "{}", err.message);
            assert!(err.hint.unwrap().contains("--platform"));
        }
    }
}
