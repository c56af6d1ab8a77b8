//! manifest.json: what was packaged, from what, with what, and the bytes of each artifact.
//! It holds no timestamps of its own, so it is as reproducible as the artifacts.

use std::io::Write;
use std::path::Path;

use super::tarball::GZIP_LEVEL;
pub use crate::artifact::{Artifact, SourceRecord, Toolchain};
use crate::error::{Error, Result};
use crate::outdir::AtomicFile;

pub const FILE_NAME: &str = "manifest.json";
/// Bumped when a field changes meaning or disappears (adding fields does not bump it).
pub const SCHEMA_VERSION: u32 = 1;
/// manifest.json is read up to this size. It lists every entry of every tarball, about
/// 100 bytes each: an upstream quick-release for every platform, LICENSES included, writes
/// well under 2 MiB; 16 MiB leaves room for trees with many more files, and no more.
pub const MAX_BYTES: u64 = 16 << 20;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    pub kbuild_version: String,
    /// `release` (release-tars) or `extension` (the extension layout).
    pub kind: String,
    pub source: SourceRecord,
    pub toolchain: Toolchain,
    pub artifacts: Vec<Artifact>,
    /// What is absent compared with upstream's set and layouts, and why: what upstream's
    /// quick-release writes and kbuild does not (test tarballs, server images), and what
    /// the tree lacks. Nothing is left out without a note here.
    #[serde(default)]
    pub notes: Vec<String>,
    /// The plan the artifacts were built by (`kbuild plan --json`, redacted, without its
    /// packaging steps): every input with where it came from, the engine, each job's exact
    /// container. None when kbuild packaged binaries it did not build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<serde_json::Value>,
    /// The server images in release-images/ (and in the server tarballs), with their
    /// digests and their bases' (kube::release::build_server_images).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<super::serverimage::ImageRecord>,
}

impl Toolchain {
    pub fn compressor() -> String {
        "gzip via flate2 (zlib-rs backend), no name, mtime 0".to_string()
    }

    pub fn gzip_level() -> u32 {
        GZIP_LEVEL
    }
}

impl Manifest {
    pub fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join(FILE_NAME);
        let mut text = serde_json::to_string_pretty(self)
            .map_err(|e| Error::internal(format!("cannot encode the manifest: {e}")))?;
        text.push('\n');
        let mut file = AtomicFile::create(&path)?;
        file.write_all(text.as_bytes())
            .map_err(|e| Error::io("cannot write", &path, e))?;
        file.commit()
    }

    pub fn read(dir: &Path) -> Result<Option<Manifest>> {
        use crate::input::{self, InputError, Links};
        let path = dir.join(FILE_NAME);
        let text = match input::read_text_capped(&path, MAX_BYTES, Links::Refuse) {
            Ok(t) => t,
            Err(InputError::NotFound) => return Ok(None),
            Err(e) => {
                return Err(Error::new(
                    crate::error::Kind::Verify,
                    format!("{} {e}", path.display()),
                ))
            }
        };
        serde_json::from_str(&text).map(Some).map_err(|e| {
            Error::new(
                crate::error::Kind::Verify,
                format!("{} is not a kbuild manifest: {e}", path.display()),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_upstream_field_names() {
        let m = Manifest {
            schema_version: SCHEMA_VERSION,
            kbuild_version: "0.1.0".into(),
            kind: "release".into(),
            source: SourceRecord {
                repo: Some("https://github.com/kubernetes/kubernetes".into()),
                git_ref: Some("v1.34.0".into()),
                commit: Some("abc".into()),
                git_version: "v1.34.0".into(),
                tree_state: "clean".into(),
                source_date_epoch: 1,
                src_content: Some("commit".into()),
            },
            plan: None,
            toolchain: Toolchain {
                builder_image: None,
                builder_image_id: None,
                go_version: Some("go1.24.4".into()),
                go_version_from: "x".into(),
                go_version_pinned: None,
                compressor: Toolchain::compressor(),
                gzip_level: 6,
            },
            artifacts: vec![],
            notes: vec![],
            images: Vec::new(),
        };
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(v["schemaVersion"], 1);
        assert_eq!(v["source"]["ref"], "v1.34.0");
        assert_eq!(v["source"]["sourceDateEpoch"], 1);
        let back: Manifest = serde_json::from_value(v).unwrap();
        assert_eq!(back.source.git_version, "v1.34.0");
    }
}
