//! Reads a docker-archive (what the engine's image export, `docker save`, writes) into a
//! normalised base image: its config, and each layer as an uncompressed tar named by its
//! diff_id. Engines export differently (the classic store uncompressed, the containerd store
//! the registry's gzip blobs), so a base is the same bytes whichever engine gave it.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::serverimage::{BaseImage, BaseLayer};
use crate::artifact::HashingWriter;
use crate::error::{Error, Result};

fn bad(archive: &Path, why: impl std::fmt::Display) -> Error {
    Error::engine(format!(
        "the engine's export of a base image ({}) is not a docker-archive kbuild can read: {why}",
        archive.display()
    ))
}

/// manifest.json's one image: its config and layer paths inside the archive.
#[derive(serde::Deserialize)]
struct Entry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// Reads `archive` (one image) and writes its layers uncompressed into `dir` as
/// `<diff_id hex>.tar`; `reference` and `digest` say what it is.
pub fn read(archive: &Path, dir: &Path, reference: &str, digest: &str) -> Result<BaseImage> {
    let open = || std::fs::File::open(archive).map_err(|e| Error::io("cannot read", archive, e));
    // Pass 1: manifest.json (written after the blobs by `docker save`).
    let mut entry: Option<Entry> = None;
    let mut tar = tar::Archive::new(open()?);
    for e in tar.entries().map_err(|e| bad(archive, e))? {
        let mut e = e.map_err(|e| bad(archive, e))?;
        if e.path().map_err(|e| bad(archive, e))?.as_os_str() == "manifest.json" {
            let mut text = String::new();
            e.read_to_string(&mut text).map_err(|e| bad(archive, e))?;
            let mut all: Vec<Entry> = serde_json::from_str(&text).map_err(|e| bad(archive, e))?;
            if all.len() != 1 {
                return Err(bad(archive, format!("{} images in it, not one", all.len())));
            }
            entry = all.pop();
        }
    }
    let entry = entry.ok_or_else(|| bad(archive, "no manifest.json"))?;
    // Pass 2: the config and each layer, decompressed once.
    let mut config: Option<serde_json::Value> = None;
    let mut layers: BTreeMap<String, BaseLayer> = BTreeMap::new();
    let mut tar = tar::Archive::new(open()?);
    for e in tar.entries().map_err(|e| bad(archive, e))? {
        let mut e = e.map_err(|e| bad(archive, e))?;
        let path = e.path().map_err(|e| bad(archive, e))?.display().to_string();
        if path == entry.config {
            let mut bytes = Vec::new();
            e.read_to_end(&mut bytes).map_err(|e| bad(archive, e))?;
            config = Some(serde_json::from_slice(&bytes).map_err(|e| bad(archive, e))?);
        } else if entry.layers.contains(&path) && !layers.contains_key(&path) {
            let layer = normalise(&mut e, dir).map_err(|e| bad(archive, e))?;
            layers.insert(path, layer);
        }
    }
    let config = config.ok_or_else(|| bad(archive, "its config is missing"))?;
    let ordered: Vec<BaseLayer> = entry
        .layers
        .iter()
        .map(|p| {
            layers
                .get(p)
                .cloned()
                .ok_or_else(|| bad(archive, format!("layer {p} is missing")))
        })
        .collect::<Result<_>>()?;
    let expected: Vec<&str> = config["rootfs"]["diff_ids"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    let got: Vec<&str> = ordered.iter().map(|l| l.diff_id.as_str()).collect();
    if expected != got {
        return Err(bad(
            archive,
            "its layers are not the ones its config lists (rootfs.diff_ids)",
        ));
    }
    Ok(BaseImage {
        reference: reference.to_string(),
        digest: digest.to_string(),
        config,
        layers: ordered,
    })
}

/// One layer, gunzipped when it is gzip, hashed as it is written to `dir/<diff_id>.tar`.
fn normalise(layer: &mut impl Read, dir: &Path) -> std::io::Result<BaseLayer> {
    let mut head = [0u8; 2];
    let mut got = 0;
    while got < 2 {
        let n = layer.read(&mut head[got..])?;
        if n == 0 {
            break;
        }
        got += n;
    }
    let chained = std::io::Cursor::new(head[..got].to_vec()).chain(layer);
    let mut reader: Box<dyn Read + '_> = if head[..got] == [0x1f, 0x8b] {
        Box::new(flate2::read::GzDecoder::new(chained))
    } else {
        Box::new(chained)
    };
    // Named by its digest once it is known: written to a temporary file beside it first.
    let file = tempfile::Builder::new()
        .suffix(crate::outdir::TMP_SUFFIX)
        .tempfile_in(dir)?;
    let mut out = HashingWriter::new(std::io::BufWriter::new(file));
    std::io::copy(&mut reader, &mut out)?;
    out.flush()?;
    let (file, size, digests) = out.finish();
    let file = file.into_inner().map_err(|e| e.into_error())?;
    let path: PathBuf = dir.join(format!("{}.tar", digests.sha256));
    file.persist(&path).map_err(|e| e.error)?;
    Ok(BaseLayer {
        diff_id: format!("sha256:{}", digests.sha256),
        path,
        size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};
    use std::io::Write;

    /// A one-file layer tar.
    fn layer() -> Vec<u8> {
        let mut t = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_size(3);
        h.set_mode(0o755);
        h.set_cksum();
        t.append_data(&mut h, "go-runner", &b"abc"[..]).unwrap();
        t.into_inner().unwrap()
    }

    /// A docker-archive as `docker save` writes it, its layer gzipped or not.
    fn archive(dir: &Path, gzip: bool) -> (PathBuf, String) {
        let raw = layer();
        let diff_id = format!("sha256:{}", hex::encode(Sha256::digest(&raw)));
        archive_listing(dir, gzip, &diff_id)
    }

    /// As `archive`, with the config listing `diff_id` for the layer.
    fn archive_listing(dir: &Path, gzip: bool, diff_id: &str) -> (PathBuf, String) {
        let raw = layer();
        let diff_id = diff_id.to_string();
        let stored = match gzip {
            true => {
                let mut gz =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                gz.write_all(&raw).unwrap();
                gz.finish().unwrap()
            }
            false => raw,
        };
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "config": { "Entrypoint": ["/go-runner"] },
            "rootfs": { "type": "layers", "diff_ids": [diff_id] },
        }))
        .unwrap();
        let manifest = serde_json::to_vec(&serde_json::json!([{
            "Config": "blobs/sha256/cfg", "RepoTags": ["b:1"], "Layers": ["blobs/sha256/l"],
        }]))
        .unwrap();
        let mut t = tar::Builder::new(Vec::new());
        for (name, bytes) in [
            ("blobs/sha256/cfg", &config),
            ("blobs/sha256/l", &stored),
            ("manifest.json", &manifest),
        ] {
            let mut h = tar::Header::new_ustar();
            h.set_size(bytes.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            t.append_data(&mut h, name, &bytes[..]).unwrap();
        }
        let path = dir.join(format!("save-{gzip}.tar"));
        std::fs::write(&path, t.into_inner().unwrap()).unwrap();
        (path, diff_id)
    }

    #[test]
    fn gzipped_and_plain_exports_give_the_same_uncompressed_layer() {
        let dir = tempfile::tempdir().unwrap();
        let mut seen = Vec::new();
        for gzip in [true, false] {
            let (path, diff_id) = archive(dir.path(), gzip);
            let base = read(&path, dir.path(), "b:1", "sha256:id").unwrap();
            assert_eq!(base.config["config"]["Entrypoint"][0], "/go-runner");
            assert_eq!(base.layers.len(), 1);
            assert_eq!(base.layers[0].diff_id, diff_id);
            let bytes = std::fs::read(&base.layers[0].path).unwrap();
            assert_eq!(bytes, layer());
            assert_eq!(base.layers[0].size, bytes.len() as u64);
            seen.push(base.layers[0].path.clone());
        }
        assert_eq!(seen[0], seen[1], "the layer is named by its diff_id");
    }

    #[test]
    fn a_layer_that_is_not_what_the_config_lists_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = archive_listing(dir.path(), true, "sha256:00");
        let e = read(&path, dir.path(), "b:1", "x").unwrap_err();
        assert!(e.message.contains("rootfs.diff_ids"), "{}", e.message);
        assert!(read(&dir.path().join("missing.tar"), dir.path(), "b:1", "x").is_err());
    }
}
