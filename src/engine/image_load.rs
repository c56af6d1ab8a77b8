//! `kbuild extension --load`: one variant of an OCI layout into the engine through the
//! Engine API's image load (`POST /images/load`, what `docker load` calls). Engines before
//! 25.0 read only the docker-archive form (a `manifest.json` naming config, tags and
//! layers; moby `image/tarexport` Load), which every later engine reads too, so that is
//! what is sent: the variant of the engine's own architecture, under the image's name.

use futures_util::StreamExt;

use crate::error::{Error, Result};
use crate::imageref::ImageRef;
use crate::package::ociimage::{self, Image};

/// Go's architecture name for what the engine reports (`docker version` Arch is Go's).
async fn engine_arch(docker: &bollard::Docker) -> Result<String> {
    let version = docker
        .version()
        .await
        .map_err(|e| Error::engine(format!("cannot ask the engine its architecture: {e}")))?;
    Ok(version.arch.unwrap_or_default())
}

/// The docker-archive of one variant, in memory (a variant is its binaries: megabytes).
fn docker_archive(image: &Image, arch: &str, name: &str) -> Result<Vec<u8>> {
    let variant = image
        .variants
        .iter()
        .find(|v| v.arch == arch)
        .ok_or_else(|| {
            Error::usage(format!(
                "the engine runs linux/{arch}, and the extension image has no such variant"
            ))
            .with_hint(
                "load it on an amd64 or arm64 engine, or push it and let Docker Desktop pull it",
            )
        })?;
    let config_path = format!("blobs/sha256/{}", variant.config.hex());
    let layer_path = format!("blobs/sha256/{}", variant.layer.hex());
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": config_path,
        "RepoTags": [name],
        "Layers": [layer_path],
    }]))
    .expect("json");
    let mut tar = tar::Builder::new(Vec::new());
    let mut add = |path: &str, bytes: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, path, bytes)
    };
    let io = |e: std::io::Error| Error::internal(format!("cannot assemble the image archive: {e}"));
    for d in [&variant.config, &variant.layer] {
        let bytes = ociimage::read_blob(&image.layout, &d.digest)?;
        add(&format!("blobs/sha256/{}", d.hex()), &bytes).map_err(io)?;
    }
    add("manifest.json", &manifest).map_err(io)?;
    tar.into_inner().map_err(io)
}

/// Loads the engine's variant; returns its architecture.
pub async fn load(image: &Image, reference: &ImageRef) -> Result<String> {
    let docker = crate::engine::client::connect_client().await?;
    let arch = engine_arch(&docker).await?;
    let archive = docker_archive(image, &arch, &reference.shown)?;
    let mut stream = docker.import_image(
        bollard::query_parameters::ImportImageOptions::default(),
        bollard::body_full(archive.into()),
        None,
    );
    while let Some(item) = stream.next().await {
        item.map_err(|e| {
            Error::engine(format!("the engine refused to load {reference}: {e}")).with_hint(
                "check `docker info`; the image is also in the oci-archive for `skopeo copy`",
            )
        })?;
    }
    Ok(arch)
}
