//! A multi-platform image written as an OCI image layout (image-spec `image-layout.md`),
//! with no build step: each platform's one layer is a deterministic tar.gz from
//! `tarball` (sorted entries, SOURCE_DATE_EPOCH mtimes, uid/gid 0, pinned gzip), its config
//! and manifest are canonical JSON (sorted keys), so the same files give the same digests.
//!
//! ```text
//! image/oci-layout            {"imageLayoutVersion": "1.0.0"}
//! image/index.json            the image index under the tag, and each manifest under
//!                             <tag>-linux-<arch> (one manifest per name, for tools such
//!                             as `umoci unpack` that want exactly one)
//! image/blobs/sha256/<hex>    the image index, manifests, configs and layers
//! image.oci.tar.gz            the same layout as one oci-archive
//! ```

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::tarball::{self, Entry};
use super::Control;
use crate::error::{Error, Result};
use crate::outdir::{AtomicFile, TMP_SUFFIX};

pub const LAYOUT_DIR: &str = "image";
pub const ARCHIVE: &str = "image.oci.tar.gz";

pub const MEDIA_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// What points at a blob.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    /// `sha256:<hex>`.
    pub digest: String,
    pub size: u64,
}

impl Descriptor {
    pub fn hex(&self) -> &str {
        self.digest.trim_start_matches("sha256:")
    }
}

/// One platform of the image: linux/<arch>, and the files of its single layer.
pub struct Variant {
    pub arch: &'static str,
    pub entries: Vec<Entry>,
}

/// What the layout holds for one platform.
#[derive(Debug, Clone)]
pub struct Written {
    pub arch: String,
    pub manifest: Descriptor,
    pub config: Descriptor,
    pub layer: Descriptor,
}

/// The written image.
#[derive(Debug, Clone)]
pub struct Image {
    pub index: Descriptor,
    pub variants: Vec<Written>,
    pub layout: PathBuf,
    pub archive: PathBuf,
}

/// Whether `name` (relative to the extension directory) belongs to the image, which
/// vouches for itself: every blob is named by its digest (`kbuild verify` skips them).
pub fn is_image_file(name: &str) -> bool {
    name == ARCHIVE || name.starts_with(&format!("{LAYOUT_DIR}/"))
}

/// The blob path of `digest` in a layout.
pub fn blob_path(layout: &Path, digest: &str) -> PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Writes a JSON blob (serde_json's map is sorted, so the bytes are canonical).
fn json_blob(layout: &Path, media_type: &str, value: &serde_json::Value) -> Result<Descriptor> {
    let bytes = serde_json::to_vec(value).expect("json");
    let hex = sha256_hex(&bytes);
    let path = layout.join("blobs/sha256").join(&hex);
    let mut f = AtomicFile::create(&path)?;
    f.write_all(&bytes)
        .map_err(|e| Error::io("cannot write", &path, e))?;
    f.commit()?;
    Ok(Descriptor {
        media_type: media_type.to_string(),
        digest: format!("sha256:{hex}"),
        size: bytes.len() as u64,
    })
}

/// The sha256 of the uncompressed tar (the config's diff_id).
fn diff_id(layer: &Path, cancel: &Control) -> Result<String> {
    let file = std::fs::File::open(layer).map_err(|e| Error::io("cannot read", layer, e))?;
    let mut gz = flate2::read::GzDecoder::new(std::io::BufReader::new(file));
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        cancel
            .check()
            .map_err(|_| Error::new(crate::error::Kind::Interrupted, "packaging stopped"))?;
        let n = gz
            .read(&mut buf)
            .map_err(|e| Error::io("cannot read", layer, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(format!("sha256:{}", hex::encode(hasher.finalize())))
}

fn write_variant(
    layout: &Path,
    variant: Variant,
    labels: &BTreeMap<String, String>,
    mtime: u64,
    cancel: &Control,
) -> Result<Written> {
    let part = layout.join(format!("blobs/sha256/layer-{}", variant.arch));
    let written = tarball::write(&part, mtime, variant.entries, false, cancel)?;
    let layer = Descriptor {
        media_type: MEDIA_LAYER.to_string(),
        digest: format!("sha256:{}", written.digests.sha256),
        size: written.size,
    };
    let diff_id = diff_id(&part, cancel)?;
    let final_path = blob_path(layout, &layer.digest);
    std::fs::rename(&part, &final_path).map_err(|e| Error::io("cannot write", &final_path, e))?;
    let created = crate::units::rfc3339(mtime);
    let config = json_blob(
        layout,
        MEDIA_CONFIG,
        &serde_json::json!({
            "architecture": variant.arch,
            "os": "linux",
            "created": created,
            "config": { "Labels": labels },
            "rootfs": { "type": "layers", "diff_ids": [diff_id] },
            "history": [{ "created": created, "created_by": format!("kbuild {} extension", env!("CARGO_PKG_VERSION")) }],
        }),
    )?;
    let manifest = json_blob(
        layout,
        MEDIA_MANIFEST,
        &serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": config,
            "layers": [layer],
        }),
    )?;
    Ok(Written {
        arch: variant.arch.to_string(),
        manifest,
        config,
        layer,
    })
}

fn platform_descriptor(w: &Written, ref_name: Option<String>) -> serde_json::Value {
    let mut d = serde_json::to_value(&w.manifest).expect("json");
    d["platform"] = serde_json::json!({ "architecture": w.arch, "os": "linux" });
    if let Some(name) = ref_name {
        d["annotations"] = serde_json::json!({ REF_NAME: name });
    }
    d
}

/// Writes `<dir>/image/` (replacing it whole) and `<dir>/image.oci.tar.gz`.
pub fn write(
    dir: &Path,
    tag: &str,
    labels: &BTreeMap<String, String>,
    mtime: u64,
    variants: Vec<Variant>,
    cancel: &Control,
) -> Result<Image> {
    let layout = dir.join(LAYOUT_DIR);
    let staging = dir.join(format!("{LAYOUT_DIR}{}", TMP_SUFFIX));
    let _ = std::fs::remove_dir_all(&staging);
    let guard = RemoveOnDrop(Some(staging.clone()));
    let blobs = staging.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).map_err(|e| Error::io("cannot create", &blobs, e))?;
    let mut written = Vec::new();
    for variant in variants {
        written.push(write_variant(&staging, variant, labels, mtime, cancel)?);
    }
    let manifests: Vec<serde_json::Value> = written
        .iter()
        .map(|w| platform_descriptor(w, None))
        .collect();
    let index = json_blob(
        &staging,
        MEDIA_INDEX,
        &serde_json::json!({ "schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": manifests }),
    )?;
    let mut top = serde_json::to_value(&index).expect("json");
    top["annotations"] = serde_json::json!({ REF_NAME: tag });
    let mut entries = vec![top];
    for w in &written {
        entries.push(platform_descriptor(
            w,
            Some(format!("{tag}-linux-{}", w.arch)),
        ));
    }
    write_file(
        &staging.join("index.json"),
        &serde_json::to_vec(&serde_json::json!({ "schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": entries }))
            .expect("json"),
    )?;
    write_file(
        &staging.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    let archive = dir.join(ARCHIVE);
    write_archive(&staging, &archive, mtime, cancel)?;
    let _ = std::fs::remove_dir_all(&layout);
    std::fs::rename(&staging, &layout).map_err(|e| Error::io("cannot write", &layout, e))?;
    std::mem::forget(guard);
    Ok(Image {
        index,
        variants: written,
        layout,
        archive,
    })
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = AtomicFile::create(path)?;
    f.write_all(bytes)
        .map_err(|e| Error::io("cannot write", path, e))?;
    f.commit()
}

/// The layout as an oci-archive: a tar(.gz) of its files, as skopeo's `oci-archive:` reads.
fn write_archive(layout: &Path, dest: &Path, mtime: u64, cancel: &Control) -> Result<()> {
    let mut entries = vec![Entry::dir("blobs"), Entry::dir("blobs/sha256")];
    for name in ["index.json", "oci-layout"] {
        entries.push(Entry::file(name, layout.join(name), tarball::MODE_FILE));
    }
    let blobs = layout.join("blobs/sha256");
    for e in std::fs::read_dir(&blobs).map_err(|e| Error::io("cannot read", &blobs, e))? {
        let e = e.map_err(|e| Error::io("cannot read", &blobs, e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        entries.push(Entry::file(
            format!("blobs/sha256/{name}"),
            e.path(),
            tarball::MODE_FILE,
        ));
    }
    tarball::write(dest, mtime, entries, false, cancel)?;
    Ok(())
}

/// Removes a directory unless forgotten.
struct RemoveOnDrop(Option<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Reads a JSON blob back from a layout.
pub fn read_blob(layout: &Path, digest: &str) -> Result<Vec<u8>> {
    let path = blob_path(layout, digest);
    std::fs::read(&path).map_err(|e| Error::io("cannot read", &path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn variants(dir: &Path) -> Vec<Variant> {
        std::fs::write(dir.join("a"), b"amd64 binary").unwrap();
        std::fs::write(dir.join("b"), b"arm64 binary").unwrap();
        vec![
            Variant {
                arch: "amd64",
                entries: vec![
                    Entry::dir("linux"),
                    Entry::file("linux/kubectl", dir.join("a"), 0o755),
                ],
            },
            Variant {
                arch: "arm64",
                entries: vec![
                    Entry::file("linux/kubectl", dir.join("b"), 0o755),
                    Entry::dir("linux"),
                ],
            },
        ]
    }

    #[test]
    fn same_files_same_index_digest_and_a_valid_layout() {
        let src = tempfile::tempdir().unwrap();
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let labels = BTreeMap::from([("k".to_string(), "v".to_string())]);
        let c = Control::default();
        let ia = write(
            a.path(),
            "1.0",
            &labels,
            1_700_000_000,
            variants(src.path()),
            &c,
        )
        .unwrap();
        let ib = write(
            b.path(),
            "1.0",
            &labels,
            1_700_000_000,
            variants(src.path()),
            &c,
        )
        .unwrap();
        assert_eq!(ia.index, ib.index);
        let index: serde_json::Value =
            serde_json::from_slice(&read_blob(&ia.layout, &ia.index.digest).unwrap()).unwrap();
        let arches: Vec<&str> = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["platform"]["architecture"].as_str().unwrap())
            .collect();
        assert_eq!(arches, ["amd64", "arm64"]);
        for w in &ia.variants {
            for d in [&w.manifest, &w.config, &w.layer] {
                let bytes = read_blob(&ia.layout, &d.digest).unwrap();
                assert_eq!(sha256_hex(&bytes), d.hex());
                assert_eq!(bytes.len() as u64, d.size);
            }
        }
        let config: serde_json::Value =
            serde_json::from_slice(&read_blob(&ia.layout, &ia.variants[1].config.digest).unwrap())
                .unwrap();
        assert_eq!(config["architecture"], "arm64");
        assert_eq!(config["config"]["Labels"]["k"], "v");
        assert!(ia.archive.is_file());
        assert!(!a.path().join("image.kbuild-tmp").exists());
    }
}
