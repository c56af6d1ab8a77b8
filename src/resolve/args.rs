//! The merged overlay turned into the typed arguments a command runs with, kbuild's defaults
//! filling what nothing set. Values keep their types: nothing is printed and parsed again.

use std::path::PathBuf;

use clap::ValueEnum;

use super::options::{Given, Options, Origin};
use crate::cli::{
    BuildArgs, Command, ContextArg, DoctorArgs, EngineArgs, ExtensionArgs, ExtensionImageArgs,
    ImageArgs, LockArgs, PackageArgs, QuickReleaseArgs, SourceArgs, TargetArgs, TimingsArg,
};
use crate::error::{Error, Result};
use crate::plan::CommandKind;

/// Upstream's (and kbuild's) defaults for what nothing set.
pub const DEFAULT_STALL_TIMEOUT: u64 = 1800;

fn value<T>(given: Option<Given<T>>) -> Option<T> {
    given.map(|g| g.value)
}

/// A value-enum setting (`--engine host`, `transfer = "copy"`), refused in words when unknown.
fn choice<T: ValueEnum>(given: Option<Given<String>>, flag: &str) -> Result<Option<T>> {
    let Some(given) = given else {
        return Ok(None);
    };
    T::from_str(&given.value, true).map(Some).map_err(|_| {
        let valid: Vec<String> = T::value_variants()
            .iter()
            .filter_map(|v| v.to_possible_value().map(|p| p.get_name().to_string()))
            .collect();
        Error::usage(format!(
            "--{flag} \"{}\" ({}) is not one of: {}",
            given.value,
            given.from,
            valid.join(", ")
        ))
        .with_hint(format!("use one of: {}", valid.join(", ")))
    })
}

/// Platform texts as given; a list from the environment that names nothing is refused here,
/// in the variable's words (flags are checked by `resolve_platforms`).
fn platforms(given: Option<Given<Vec<String>>>) -> Result<Vec<String>> {
    let Some(given) = given else {
        return Ok(Vec::new());
    };
    let names_nothing = given
        .value
        .iter()
        .all(|t| t.split([',', ' ']).all(str::is_empty));
    if let (Origin::Env(name), true) = (&given.from, names_nothing) {
        return Err(Error::usage(format!(
            "{name}=\"{}\" names no platform",
            given.value.join(" ")
        ))
        .with_hint(format!(
            "name at least one os/arch (e.g. {name}=\"{}\"), or unset it for linux on this machine's architecture",
            crate::kube::Platform::fastbuild()
        )));
    }
    Ok(given.value)
}

fn source(o: &mut Options) -> SourceArgs {
    SourceArgs {
        kube_root: value(o.kube_root.take()).unwrap_or_else(|| PathBuf::from(".")),
        git_ref: value(o.git_ref.take()),
        repo: value(o.repo.take())
            .unwrap_or_else(|| crate::source::checkout::DEFAULT_REPO.to_string()),
        source_dir: value(o.source_dir.take()),
        git_version: value(o.version.take()),
    }
}

fn engine(o: &mut Options) -> Result<EngineArgs> {
    Ok(EngineArgs {
        image: value(o.image.take()),
        stall_timeout: value(o.stall_timeout.take()).unwrap_or(DEFAULT_STALL_TIMEOUT),
        memory: value(o.memory.take()),
        network: value(o.network.take()).unwrap_or(false),
        transfer: choice(o.transfer.take(), "transfer")?,
        force: value(o.force.take()).unwrap_or(false),
        engines: value(o.engines.take()).unwrap_or_default(),
        require_all_engines: value(o.require_all_engines.take()).unwrap_or(false),
        cpus: value(o.cpus.take()),
        cache_from: value(o.cache_from.take()).unwrap_or_default(),
        no_cache_import: value(o.no_cache_import.take()).unwrap_or(false),
        engine: choice(o.engine.take(), "engine")?.unwrap_or(crate::cli::EngineKind::Docker),
        context: ContextArg {
            name: value(o.context.take()),
        },
        skip_checks: value(o.skip_checks.take()).unwrap_or_default(),
        min_memory: value(o.min_memory.take()),
        min_disk: value(o.min_disk.take()),
    })
}

fn images(o: &mut Options) -> ImageArgs {
    ImageArgs {
        base_images: value(o.base_images.take()).unwrap_or_default(),
        no_images: value(o.no_images.take()).unwrap_or(false),
        images_only: value(o.images_only.take()).unwrap_or(false),
        base_registry: value(o.base_registry.take()),
        docker_registry: value(o.docker_registry.take()),
        docker_image_tag: value(o.docker_image_tag.take()),
    }
}

fn timings(o: &mut Options) -> TimingsArg {
    TimingsArg {
        timings: value(o.timings.take()).unwrap_or(false),
    }
}

fn out(o: &mut Options) -> PathBuf {
    value(o.out.take()).unwrap_or_else(crate::cli::default_out)
}

/// The command `kind` with the settings of `o` and the defaults; `lock` is the process's
/// own waiting policy, not part of what is built.
pub fn command(kind: CommandKind, mut o: Options, lock: LockArgs) -> Result<Command> {
    let o = &mut o;
    Ok(match kind {
        CommandKind::Build => {
            let components = value(o.components.take()).unwrap_or_default();
            if components.is_empty() {
                return Err(Error::usage("kbuild build needs at least one component")
                    .with_hint("name one, e.g. kbuild build kubectl (or components = [\"kubectl\"] in a recipe)"));
            }
            Command::Build(BuildArgs {
                components,
                target: TargetArgs {
                    platforms: platforms(o.platforms.take())?,
                },
                source: source(o),
                engine: engine(o)?,
                out: out(o),
                lock,
                timings: timings(o),
            })
        }
        CommandKind::QuickRelease => Command::QuickRelease(QuickReleaseArgs {
            target: TargetArgs {
                platforms: platforms(o.platforms.take())?,
            },
            source: source(o),
            engine: engine(o)?,
            out: out(o),
            lock,
            sign_key: value(o.sign_key.take()),
            timings: timings(o),
            no_test_tarballs: value(o.no_test_tarballs.take()).unwrap_or(false),
            images: images(o),
        }),
        CommandKind::Extension => Command::Extension(ExtensionArgs {
            components: value(o.components.take()).unwrap_or_default(),
            platforms: platforms(o.platforms.take())?,
            source: source(o),
            engine: engine(o)?,
            out: out(o),
            lock,
            sign_key: value(o.sign_key.take()),
            timings: timings(o),
            image: ExtensionImageArgs {
                tag: value(o.tag.take()),
                metadata: value(o.metadata.take()),
                icon: value(o.icon.take()),
                ui: value(o.ui.take()),
                labels: value(o.labels.take()).unwrap_or_default(),
                load: value(o.load.take()).unwrap_or(false),
                push: value(o.push.take()).unwrap_or(false),
                insecure_registry: value(o.insecure_registry.take()).unwrap_or(false),
            },
        }),
        CommandKind::Package => Command::Package(PackageArgs {
            bin: value(o.bin.take()),
            target: TargetArgs {
                platforms: platforms(o.platforms.take())?,
            },
            source: source(o),
            out: out(o),
            lock,
            sign_key: value(o.sign_key.take()),
            timings: timings(o),
        }),
        CommandKind::Doctor => Command::Doctor(DoctorArgs {
            profile: choice(o.profile.take(), "for")?.unwrap_or(crate::checks::Profile::Build),
            kube_root: value(o.kube_root.take()).unwrap_or_else(|| PathBuf::from(".")),
            out: out(o),
            image: value(o.image.take()),
            engine: choice(o.engine.take(), "engine")?.unwrap_or(crate::cli::EngineKind::Docker),
            context: ContextArg {
                name: value(o.context.take()),
            },
            min_memory: value(o.min_memory.take()),
            min_disk: value(o.min_disk.take()),
            skip_checks: value(o.skip_checks.take()).unwrap_or_default(),
        }),
    })
}
