//! The Go cache travelling between machines: export a builder image's cache volume to a
//! path a CI cache step saves, and import it back (into every engine of a run) before the
//! build. The key (image digest and Go version) must match: a cache made for another image
//! is refused before anything is written. Each import is recorded, because an imported
//! cache is a supply-chain input: its entries are trusted by their key.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::engine::cache_export::{self, Exported};
use crate::engine::cache_helper;
use crate::engine::cache_import;
use crate::engine::cache_manifest::{self, CacheKey, Verified};
use crate::engine::docker::DockerEngine;
use crate::error::{Error, Result};
use crate::exec::fleet::Fleet;
use crate::signals::Interrupt;
use crate::ui::Ui;

/// One import into one engine, as the manifest and the provenance record it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportRecord {
    /// The archive's absolute path.
    pub origin: String,
    /// sha256 of the tarball, or of a directory's manifest (which pins every entry).
    pub sha256: String,
    pub digest_of: String,
    pub key: CacheKey,
    /// The engine that received it.
    pub engine: String,
    pub entries: usize,
    /// Entries the volume lacked.
    pub added: usize,
}

/// Exports the cache of `image` on `engine` to `target`.
pub async fn export(
    engine: &DockerEngine,
    image: &str,
    target: &Path,
    max_size: Option<u64>,
    ui: &Ui,
    interrupt: &Interrupt,
) -> Result<(CacheKey, Exported)> {
    let image_id = engine.image_id(image).await?.ok_or_else(|| {
        Error::usage(format!(
            "the engine has no image {image}, so no Go cache for it"
        ))
        .with_hint("build with that image first, or name the builder image with --image")
    })?;
    let uid = engine.build_user().map_or(0, |u| u.0);
    let volume = crate::engine::cache::volume_name(&image_id, uid);
    if engine.docker.inspect_volume(&volume).await.is_err() {
        return Err(Error::usage(format!(
            "there is no Go cache for {image} on {} yet (no volume {volume})",
            engine.info.endpoint
        ))
        .with_hint("build once with this image, then export"));
    }
    ui.detail(&format!("Go caches in volume {volume}"));
    let survey = cache_helper::survey(engine, image, &volume).await?;
    let key = cache_helper::key(engine, image, &survey.go).await?;
    let exported = cache_export::export(engine, &survey, &key, target, max_size, interrupt).await;
    survey.helper.remove().await;
    Ok((key, exported?))
}

/// Checks the archive at `path` whole (nothing is written).
pub fn verify(path: &Path) -> Result<Verified> {
    let absolute = std::path::absolute(path).map_err(|e| Error::io("cannot find", path, e))?;
    cache_manifest::verify(&absolute)
}

/// Refuses `verified` unless its key is that of `image` on `engine` (nothing is written).
pub async fn check_key(
    engine: &DockerEngine,
    name: &str,
    image: &str,
    verified: &Verified,
    ui: &Ui,
    interrupt: &Interrupt,
) -> Result<()> {
    engine.ensure_image(image, ui, interrupt).await?;
    let key = cache_helper::key(engine, image, &image_go(engine, image, verified).await?).await?;
    match key == verified.manifest.key {
        true => Ok(()),
        false => Err(mismatch(verified, image, name, &key)),
    }
}

/// Imports `verified` into the cache volume of `image` on `engine` (named `name` in the
/// record). A key that does not match is refused (exit 2) before the volume is touched.
pub async fn import(
    engine: &DockerEngine,
    name: &str,
    image: &str,
    verified: &Verified,
    ui: &Ui,
    interrupt: &Interrupt,
) -> Result<ImportRecord> {
    let image_id = engine.ensure_image(image, ui, interrupt).await?;
    let user = engine.build_user();
    let uid = user.map_or(0, |u| u.0);
    let volume = crate::engine::cache::volume_name(&image_id, uid);
    // Read-only until the key is known to match: a fresh volume is made only then.
    let exists = engine.docker.inspect_volume(&volume).await.is_ok();
    let (go, present) = if exists {
        let survey = cache_helper::survey(engine, image, &volume).await?;
        survey.helper.remove().await;
        let present: HashSet<String> = survey.entries.into_iter().map(|l| l.path).collect();
        (survey.go, present)
    } else {
        (image_go(engine, image, verified).await?, HashSet::new())
    };
    let key = cache_helper::key(engine, image, &go).await?;
    if key != verified.manifest.key {
        return Err(mismatch(verified, image, name, &key));
    }
    let volume =
        crate::engine::cache_volume::ensure_volume(engine, image, &image_id, user, ui).await?;
    let added = cache_import::import(
        engine,
        image,
        &volume,
        user.unwrap_or((0, 0)),
        verified,
        &present,
        interrupt,
    )
    .await?;
    ui.info(&format!(
        "Go cache from {} into {name}: {added} of {} entries added (the others were there)",
        verified.origin.display(),
        verified.manifest.entries.len()
    ));
    Ok(ImportRecord {
        origin: verified.origin.display().to_string(),
        sha256: verified.digest.clone(),
        digest_of: verified.digest_of.to_string(),
        key,
        engine: name.to_string(),
        entries: verified.manifest.entries.len(),
        added,
    })
}

fn mismatch(verified: &Verified, image: &str, engine: &str, key: &CacheKey) -> Error {
    Error::usage(format!(
        "the Go cache at {} was made for {}, not for {image} on {engine}, which is {key}",
        verified.origin.display(),
        verified.manifest.key,
    ))
    .with_hint("export the cache with the builder image this run uses (the key is the image's digest and its Go version); nothing was imported")
}

/// The Go version of `image`, for its key. An image's Go version is a function of its
/// content: when the image's digest is the one `verified` was made with, its Go version is
/// the archive's too, and no container needs to ask (one container start less on a fresh
/// CI machine). Otherwise `go env GOVERSION` tells, for the refusal's message.
async fn image_go(engine: &DockerEngine, image: &str, verified: &Verified) -> Result<String> {
    let made_with = &verified.manifest.key;
    let assumed = cache_helper::key(engine, image, &made_with.go).await?;
    if !assumed.image.is_empty()
        && assumed.image == made_with.image
        && assumed.image_digest_of == made_with.image_digest_of
    {
        return Ok(made_with.go.clone());
    }
    go_version(engine, image).await
}

/// `go env GOVERSION` in `image`, for an engine that has no cache volume yet (a survey
/// needs one; a throwaway volume is not worth making).
async fn go_version(engine: &DockerEngine, image: &str) -> Result<String> {
    let volume = format!("kbuild-cache-probe-{}", crate::engine::owner::run_id());
    let helper =
        cache_helper::helper(engine, image, &volume, "go env GOVERSION".into(), true).await;
    let result = match helper {
        Ok(helper) => {
            let out = cache_helper::run(engine, &helper, "`go env GOVERSION`").await;
            helper.remove().await;
            out
        }
        Err(e) => Err(e),
    };
    let _ = engine
        .docker
        .remove_volume(
            &volume,
            None::<bollard::query_parameters::RemoveVolumeOptions>,
        )
        .await;
    Ok(String::from_utf8_lossy(&result?).trim().to_string())
}

/// `--cache-from`: every archive checked first, then imported into every engine of the run.
pub async fn import_fleet(
    fleet: &Fleet,
    archives: &[PathBuf],
    ui: &Ui,
    interrupt: &Interrupt,
) -> Result<Vec<ImportRecord>> {
    let mut records = Vec::new();
    if archives.is_empty() {
        return Ok(records);
    }
    let verified: Vec<Verified> = archives.iter().map(|a| verify(a)).collect::<Result<_>>()?;
    let mut engines = Vec::new();
    for (slot, builder) in &fleet.slots {
        let Some(engine) = builder.docker() else {
            return Err(Error::usage("--cache-from imports into a Docker engine's cache volume, and this run builds on the host")
                .with_hint("leave --cache-from out with --engine host (its GOCACHE is a host directory a CI cache step can save itself)"));
        };
        engines.push((slot, builder, engine));
    }
    // With several engines, every key is checked before any engine receives anything.
    if engines.len() > 1 {
        for (slot, builder, engine) in &engines {
            for v in &verified {
                check_key(engine, &slot.name, &builder.image, v, ui, interrupt).await?;
            }
        }
    }
    for (slot, builder, engine) in engines {
        for v in &verified {
            ui.phase(
                "cache",
                &format!("importing {} into {}", v.origin.display(), slot.name),
            );
            records.push(import(engine, &slot.name, &builder.image, v, ui, interrupt).await?);
        }
    }
    Ok(records)
}
