//! A server image's base, from the engine's image store: what the engine has under a name
//! (id, platform), and its export (`GET /images/{name}/get`, what `docker save` calls) read
//! into a normalised base (package::imagearchive). Nothing is pulled or built here.

use std::io::Write;
use std::path::Path;

use bollard::Docker;
use futures_util::StreamExt;

use crate::error::{Error, Result};
use crate::package::serverimage::BaseImage;

/// A base image as the engine has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The image id (`sha256:...`): what a plan pins.
    pub id: String,
    pub os: String,
    pub arch: String,
}

/// What the engine has under `reference` (None: nothing).
pub async fn inspect(docker: &Docker, reference: &str) -> Result<Option<Found>> {
    match docker.inspect_image(reference).await {
        Ok(found) => Ok(Some(Found {
            id: found.id.unwrap_or_default(),
            os: found.os.unwrap_or_default(),
            arch: found.architecture.unwrap_or_default(),
        })),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(None),
        Err(e) => Err(Error::engine(format!(
            "cannot ask the engine for the base image {reference}: {e}"
        ))),
    }
}

/// Exports the image `id` (a pinned id, never a tag that may have moved) into `dir` and
/// reads it: its layers land in `dir` uncompressed, named by diff_id.
pub async fn export(docker: &Docker, reference: &str, id: &str, dir: &Path) -> Result<BaseImage> {
    let archive = dir.join(format!("{}.export.tar", id.trim_start_matches("sha256:")));
    {
        let mut file =
            std::fs::File::create(&archive).map_err(|e| Error::io("cannot write", &archive, e))?;
        let mut stream = docker.export_image(id);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                Error::engine(format!(
                    "the engine cannot export the base image {reference} ({id}): {e}"
                ))
            })?;
            file.write_all(&chunk)
                .map_err(|e| Error::io("cannot write", &archive, e))?;
        }
    }
    let (reference, id, d, a) = (
        reference.to_string(),
        id.to_string(),
        dir.to_path_buf(),
        archive.clone(),
    );
    let read = tokio::task::spawn_blocking(move || {
        crate::package::imagearchive::read(&a, &d, &reference, &id)
    })
    .await
    .map_err(|e| Error::internal(format!("reading a base image stopped: {e}")))?;
    let _ = std::fs::remove_file(&archive);
    read
}
