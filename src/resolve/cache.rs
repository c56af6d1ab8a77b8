//! `kbuild cache export|import`: which builder image, where, how much.

use std::path::{Path, PathBuf};

use crate::cli::{CacheExportArgs, CacheImageArgs, CacheImportArgs};
use crate::error::{Error, Result};

/// A validated `kbuild cache export` or `import`.
#[derive(Debug, Clone)]
pub struct CacheRequest {
    pub image: String,
    /// Absolute: the record names where an import came from.
    pub path: PathBuf,
    /// `--max-size` (export).
    pub max_size: Option<u64>,
    /// `--engines` (import); empty for the one engine `--context` chooses.
    pub engines: Vec<String>,
}

pub fn resolve_export(args: &CacheExportArgs) -> Result<CacheRequest> {
    Ok(CacheRequest {
        image: image(&args.image)?,
        path: absolute(&args.path)?,
        max_size: args
            .max_size
            .as_deref()
            .map(crate::units::parse_size)
            .transpose()?,
        engines: Vec::new(),
    })
}

pub fn resolve_import(args: &CacheImportArgs) -> Result<CacheRequest> {
    Ok(CacheRequest {
        image: image(&args.image)?,
        path: absolute(&args.path)?,
        max_size: None,
        engines: args.engines.clone(),
    })
}

fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).map_err(|e| Error::io("cannot find", path, e))
}

/// `--image`, else the kube-cross image the tree pins (as a build would choose it).
fn image(args: &CacheImageArgs) -> Result<String> {
    if let Some(image) = args.image.clone().filter(|i| !i.is_empty()) {
        crate::engine::docker::check_reference(&image)?;
        return Ok(image);
    }
    let version = args.kube_root.join("build/build-image/cross/VERSION");
    match std::fs::read_to_string(&version) {
        Ok(tag) if !tag.trim().is_empty() => {
            Ok(format!("{}:{}", crate::kube::KUBE_CROSS_IMAGE, tag.trim()))
        }
        _ => Err(Error::usage(format!(
            "no builder image: --image is not given and {} does not name one",
            version.display()
        ))
        .with_hint("name the image the builds use with --image, or run in (or point --kube-root at) the Kubernetes tree")),
    }
}
