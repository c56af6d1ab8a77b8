//! The one orchestration of the prerequisite checks: which run, in which order, against the
//! Docker engine or this machine. A build (`Checker::for_build`) stops at the first failure;
//! `kbuild doctor` (`Checker::for_doctor`) records every result and goes on. The checks
//! themselves (src/checks.rs) take plain values; the engine is asked here.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::checks::{self, Check, Checker, EngineSeen, ImageFound};
use crate::engine::docker::{DockerEngine, EngineInfo};
use crate::error::{Error, Result};

/// How long the doctor waits for the registry of an image the engine lacks.
const REGISTRY_TIMEOUT: Duration = Duration::from_secs(15);

/// The Docker engine checks: engine, memory (against `memory_limit`, `--memory`, too), cpus,
/// disk over `places` and the engine's data, image, arch. `image` is the builder image, or
/// why there is none. Returns the image's architecture when it is known: a build checks the
/// arch of an image it has still to pull once it is pulled (the doctor reports it skipped).
/// A build passes a connected engine: an unreachable one keeps its own error and exit code.
pub async fn docker(
    checker: &mut Checker<'_>,
    connected: std::result::Result<&DockerEngine, &Error>,
    image: std::result::Result<&str, &str>,
    memory_limit: Option<u64>,
    mut places: Vec<(&'static str, PathBuf)>,
) -> Result<Option<String>> {
    let plan = checker.plan;
    let engine = match connected {
        Ok(engine) => engine,
        Err(err) => {
            let endpoint = crate::engine::client::endpoint();
            checker.run("engine", || checks::engine(Err(err), &endpoint))?;
            for name in ["memory", "cpus", "image", "arch"] {
                checker.run(name, || {
                    Check::skip(name, "needs the engine, which did not answer")
                })?;
            }
            checker.run("disk", || checks::disk(plan, &places))?;
            return Ok(None);
        }
    };
    let seen = seen(&engine.info);
    checker.run("engine", || {
        checks::engine(Ok(&seen), &engine.info.endpoint)
    })?;
    checker.run("memory", || {
        checks::memory(
            plan,
            engine.info.memory_bytes,
            "the Docker engine",
            memory_limit,
        )
    })?;
    checker.run("cpus", || {
        checks::cpus(engine.info.cpus, "the Docker engine")
    })?;
    if let Some(dir) = engine.local_root_dir() {
        places.push(("the engine's data", dir));
    }
    checker.run("disk", || checks::disk(plan, &places))?;
    let image = match image {
        Ok(image) => image,
        Err(why) => {
            checker.run("image", || {
                Check::warn(
                    "image",
                    why,
                    "pass --kube-root with the tree to build, or --image",
                )
            })?;
            checker.run("arch", || Check::skip("arch", "no builder image to check"))?;
            return Ok(None);
        }
    };
    let mut image_arch = None;
    if checker.wants("image") {
        // Only the doctor asks the registry: a build pulls a missing image anyway.
        let found = look_up_image(engine, image, checker.is_for_doctor()).await;
        let (check, arch) = checks::image(image, found, &engine.info.arch);
        image_arch = arch;
        checker.record(check)?;
    }
    if image_arch.is_some() || checker.is_for_doctor() {
        checker.run("arch", || checks::arch(&seen, image, image_arch.as_deref()))?;
    }
    Ok(image_arch)
}

/// The arch check of an image pulled after the other checks: the engine picked its own
/// platform, this checks what it got.
pub async fn pulled_arch(
    checker: &mut Checker<'_>,
    engine: &DockerEngine,
    image: &str,
) -> Result<()> {
    if checker.wants("arch") {
        let arch = match look_up_image(engine, image, false).await {
            ImageFound::Present { arch, .. } => arch,
            _ => None,
        };
        checker.record(checks::arch(&seen(&engine.info), image, arch.as_deref()))?;
    }
    Ok(())
}

/// The host checks, for `--engine host`: go (against the tree's `.go-version` pin), make,
/// memory and cpus of this machine, disk over `places`.
pub fn host(
    checker: &mut Checker<'_>,
    go_pin: Option<&str>,
    root: Option<&Path>,
    places: &[(&'static str, PathBuf)],
) -> Result<()> {
    let plan = checker.plan;
    checker.run("go", || super::go::check(go_pin, root))?;
    checker.run("make", checks::make)?;
    checker.run("memory", || {
        checks::memory(plan, checks::host_memory(), "this machine", None)
    })?;
    checker.run("cpus", || checks::cpus(checks::host_cpus(), "this machine"))?;
    checker.run("disk", || checks::disk(plan, places))?;
    Ok(())
}

/// Records `names` as skipped for `why` (the doctor lists the other engine's checks).
pub fn skip(checker: &mut Checker<'_>, names: &[&'static str], why: &str) -> Result<()> {
    for &name in names {
        checker.run(name, || Check::skip(name, why))?;
    }
    Ok(())
}

fn seen(info: &EngineInfo) -> EngineSeen<'_> {
    EngineSeen {
        product: info.product,
        version: &info.server_version,
        os: &info.os,
        arch: &info.arch,
        endpoint: &info.endpoint,
        chosen_by: &info.endpoint_why,
    }
}

/// What the engine has of `image`; when it lacks it and `ask_registry`, what its registry has.
async fn look_up_image(engine: &DockerEngine, image: &str, ask_registry: bool) -> ImageFound {
    match engine.docker.inspect_image(image).await {
        Ok(found) => ImageFound::Present {
            id: found.id.unwrap_or_default(),
            os: found.os.unwrap_or_default(),
            arch: found.architecture,
            size: found.size.unwrap_or(0).max(0) as u64,
        },
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) if !ask_registry => ImageFound::Absent,
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => {
            let asked = engine.docker.inspect_registry_image(image, None);
            match tokio::time::timeout(REGISTRY_TIMEOUT, asked).await {
                Ok(Ok(dist)) => ImageFound::Pullable(
                    dist.platforms
                        .iter()
                        .filter_map(|p| p.architecture.clone())
                        .collect(),
                ),
                Ok(Err(e)) => ImageFound::Unpullable(e.to_string()),
                Err(_) => ImageFound::RegistrySilent(REGISTRY_TIMEOUT),
            }
        }
        Err(e) => ImageFound::Unreadable(e.to_string()),
    }
}
