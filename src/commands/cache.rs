//! `kbuild cache export|import`: the Go cache volume of a builder image, out to a path a CI
//! cache step saves and back (see `exec::cache_travel`).

use crate::engine::docker::DockerEngine;
use crate::error::Result;
use crate::exec::cache_travel;
use crate::resolve::cache::CacheRequest;
use crate::signals::Interrupt;
use crate::ui::Ui;
use crate::units::human_bytes;

pub async fn export(request: &CacheRequest, ui: &Ui, interrupt: &Interrupt) -> Result<()> {
    let engine = DockerEngine::connect().await?;
    ui.engine(&engine.info.endpoint);
    let (key, done) = cache_travel::export(
        &engine,
        &request.image,
        &request.path,
        request.max_size,
        ui,
        interrupt,
    )
    .await?;
    let trimmed = match done.trimmed {
        0 => String::new(),
        n => format!("; {n} least recently used left out by --max-size"),
    };
    ui.measured(
        "cache_export",
        &format!(
            "exported the Go cache of {} ({key}) to {}: {} entries, {}, {} written{trimmed}",
            request.image,
            request.path.display(),
            done.entries,
            human_bytes(done.bytes),
            done.written,
        ),
        serde_json::json!({ "path": request.path, "key": key, "exported": done }),
    );
    Ok(())
}

pub async fn import(request: &CacheRequest, ui: &Ui, interrupt: &Interrupt) -> Result<()> {
    // The whole archive is checked before any engine is asked anything.
    let verified = cache_travel::verify(&request.path)?;
    let mut engines = Vec::new();
    if request.engines.is_empty() {
        let engine = DockerEngine::connect().await?;
        engines.push((engine.info.endpoint.clone(), engine));
    } else {
        for name in &request.engines {
            let endpoint = crate::engine::endpoint::named(name)?;
            engines.push((name.clone(), DockerEngine::connect_to(endpoint).await?));
        }
    }
    // With several engines, every key first: a mismatch anywhere changes nothing anywhere.
    // One engine's import checks its key itself before it touches the volume.
    if engines.len() > 1 {
        for (name, engine) in &engines {
            cache_travel::check_key(engine, name, &request.image, &verified, ui, interrupt).await?;
        }
    }
    for (name, engine) in &engines {
        let record =
            cache_travel::import(engine, name, &request.image, &verified, ui, interrupt).await?;
        ui.measured(
            "cache_import",
            &format!(
                "imported {} into {name}: {} of {} entries added",
                request.path.display(),
                record.added,
                record.entries
            ),
            serde_json::json!(record),
        );
    }
    Ok(())
}
