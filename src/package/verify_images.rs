//! `kbuild verify` of the server images a release set's manifest lists: each tar in
//! `<out>/release-images/<arch>/` re-hashed against its size, sha256 and sha512. The images
//! sit beside release-tars (upstream's _output/release-images), so only a release-tars
//! directory has them to check; a staged set is checked before its images move in by the
//! hashes their writer computed.

use std::path::Path;

use super::manifest::Manifest;
use super::Control;
use crate::artifact;
use crate::input::{self, InputError, Links};
use crate::kube::release::RELEASE_TARS;

/// One image tar as verify found it: its path as shown (relative to the release-tars
/// directory), its size, and what does not match (nothing: verified).
pub struct Checked {
    pub file: String,
    pub size: u64,
    pub problems: Vec<String>,
}

/// Checks the images `manifest` lists, beside `dir` (a release-tars directory).
pub fn check(dir: &Path, manifest: &Manifest, cancel: &Control) -> Vec<Checked> {
    let mut checked = Vec::new();
    if dir.file_name().is_none_or(|n| n != RELEASE_TARS) {
        return checked;
    }
    let Some(out) = dir.parent() else {
        return checked;
    };
    for image in &manifest.images {
        if cancel.check().is_err() {
            break;
        }
        let shown = format!("../{}", image.file);
        let mut problems: Vec<String> = Vec::new();
        // Only release-images/<arch>/<binary>.tar: a manifest never sends verify elsewhere.
        let parts: Vec<&str> = image.file.split('/').collect();
        let plain = parts.len() == 3
            && parts[0] == crate::kube::images::RELEASE_IMAGES
            && parts.iter().all(|p| !p.is_empty() && *p != "..");
        if !plain {
            problems.push("is not a release-images/<arch>/<binary>.tar path; not read".into());
        }
        let path = out.join(&image.file);
        let hashed = match plain {
            true => input::open_regular(&path, Links::Refuse)
                .and_then(|(file, _)| artifact::hash_reader(file).map_err(InputError::from)),
            false => Err(InputError::NotFound),
        };
        let mut size = 0;
        match hashed {
            _ if !plain => {}
            Err(InputError::NotFound) => problems.push("missing".to_string()),
            Err(e) => problems.push(format!("{e}; not verified")),
            Ok((found, d)) => {
                size = found;
                if d.sha256 != image.sha256 {
                    problems.push("sha256 differs from manifest.json".to_string());
                }
                if d.sha512 != image.sha512 {
                    problems.push("sha512 differs from manifest.json".to_string());
                }
                if found != image.size {
                    problems.push(format!(
                        "size {found} differs from manifest.json ({})",
                        image.size
                    ));
                }
            }
        }
        checked.push(Checked {
            file: shown,
            size,
            problems,
        });
    }
    checked
}
