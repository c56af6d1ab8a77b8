//! A server image (kube::release::create_docker_images_for_server) written with no build
//! step: the base image's layers, as uncompressed diff_id-addressed tars, then one layer
//! with the binary at /usr/local/bin/<binary>, and the base's config with the new layer
//! added, as docker build would merge it. Written as the docker-archive recent `docker
//! save` writes, which `docker load` and `ctr import` both read:
//!
//! ```text
//! blobs/sha256/<hex>   layers (uncompressed), config, OCI manifest
//! index.json           the manifest under each name (io.containerd.image.name)
//! manifest.json        [{Config, RepoTags, Layers}] (moby image/tarexport)
//! oci-layout
//! repositories         {"<repo>": {"<tag>": "<image id hex>"}}
//! ```
//!
//! Same base, binary and epoch give the same bytes: sorted entries, fixed headers, canonical
//! JSON; the tar is hashed as it is written.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::ociimage::{Descriptor, MEDIA_CONFIG, MEDIA_MANIFEST, REF_NAME};
use super::Control;
use crate::artifact::{Digests, HashingWriter};
use crate::error::{Error, Kind, Result};
use crate::kube::images::{self, BIN_DIR};
use crate::outdir::AtomicFile;

/// An uncompressed layer (the only kind kbuild writes: its digest is its diff_id).
pub const MEDIA_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// containerd's annotation for an image's full name (what `ctr import` names it).
const CONTAINERD_NAME: &str = "io.containerd.image.name";
/// The PAX record a file capability travels in (GNU tar and containerd read it).
pub const CAPABILITY_PAX_KEY: &str = "SCHILY.xattr.security.capability";

/// A base image, normalised: its config and its layers as uncompressed tars on disk.
#[derive(Debug, Clone)]
pub struct BaseImage {
    /// What the user or the tree named (`registry.k8s.io/build-image/go-runner:v2.4.0-...`).
    pub reference: String,
    /// The engine's image id or the registry digest it was taken by.
    pub digest: String,
    pub config: serde_json::Value,
    pub layers: Vec<BaseLayer>,
}

#[derive(Debug, Clone)]
pub struct BaseLayer {
    /// `sha256:<hex>` of the uncompressed tar, as the config's rootfs lists it.
    pub diff_id: String,
    pub path: PathBuf,
    pub size: u64,
}

/// One image to write.
pub struct ImageSpec<'a> {
    pub binary: &'a str,
    pub arch: &'a str,
    /// Its names: the upstream one first, then the `KUBE_DOCKER_REGISTRY` one.
    pub names: Vec<String>,
    /// The binary on disk.
    pub bin: &'a Path,
    /// Give the binary `cap_net_bind_service=+ep` (kube-apiserver).
    pub net_bind: bool,
    /// SOURCE_DATE_EPOCH: every mtime and the config's `created`.
    pub epoch: u64,
    pub base: &'a BaseImage,
}

/// What an image tar is, for the manifest, the SBOM and `kbuild verify`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageRecord {
    pub binary: String,
    pub arch: String,
    /// The tar, relative to the output directory (`release-images/<arch>/<binary>.tar`).
    pub file: String,
    pub names: Vec<String>,
    pub size: u64,
    pub sha256: String,
    pub sha512: String,
    /// The image id (`docker images --no-trunc`).
    pub config_digest: String,
    /// What a registry would serve it by.
    pub manifest_digest: String,
    pub base: String,
    pub base_digest: String,
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| match e.kind() {
        std::io::ErrorKind::Interrupted => Error::new(Kind::Interrupted, "packaging stopped"),
        _ => Error::io("cannot write", path, e),
    }
}

/// A tar header as every entry of kbuild's image tars has it: uid/gid 0, no names, `mtime`.
fn header(kind: tar::EntryType, size: u64, mode: u32, mtime: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(mtime);
    h.set_uid(0);
    h.set_gid(0);
    h
}

/// The binary's layer: `usr/local/bin/<binary>` and its directories, the capability as a
/// PAX record before the file when asked. Uncompressed, so its sha256 is its diff_id.
pub fn write_binary_layer(
    dest: &Path,
    binary: &str,
    bin: &Path,
    net_bind: bool,
    mtime: u64,
) -> Result<BaseLayer> {
    let src = std::fs::File::open(bin).map_err(|e| Error::io("cannot read", bin, e))?;
    let len = src
        .metadata()
        .map_err(|e| Error::io("cannot read", bin, e))?
        .len();
    let file = AtomicFile::create(dest)?;
    let mut tar = tar::Builder::new(HashingWriter::new(file));
    let err = io_err(dest);
    let mut path = String::new();
    for part in BIN_DIR.split('/') {
        path.push_str(part);
        path.push('/');
        let mut h = header(tar::EntryType::Directory, 0, 0o755, mtime);
        tar.append_data(&mut h, &path, std::io::empty())
            .map_err(&err)?;
    }
    if net_bind {
        let cap = images::net_bind_capability();
        tar.append_pax_extensions([(CAPABILITY_PAX_KEY, &cap[..])])
            .map_err(&err)?;
    }
    let mut h = header(tar::EntryType::Regular, len, 0o755, mtime);
    tar.append_data(&mut h, format!("{BIN_DIR}/{binary}"), src)
        .map_err(&err)?;
    let (file, size, digests) = tar.into_inner().map_err(&err)?.finish();
    file.commit()?;
    Ok(BaseLayer {
        diff_id: format!("sha256:{}", digests.sha256),
        path: dest.to_path_buf(),
        size,
    })
}

/// The image config, merged as docker build merges a `FROM base` + `COPY`: the base's
/// runtime config (Entrypoint, Env, User, WorkingDir, ...) and history, kept; the new layer
/// and a history line for it, added; the platform of the image.
pub fn merged_config(
    base: &serde_json::Value,
    arch: &str,
    layer: &str,
    binary: &str,
    created: &str,
) -> serde_json::Value {
    let mut diff_ids: Vec<serde_json::Value> = base["rootfs"]["diff_ids"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    diff_ids.push(layer.into());
    let mut history: Vec<serde_json::Value> =
        base["history"].as_array().cloned().unwrap_or_default();
    history.push(serde_json::json!({
        "created": created,
        "created_by": format!("COPY {binary} /{BIN_DIR}/{binary} # kbuild"),
    }));
    let mut config = serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "created": created,
        "config": base.get("config").cloned().unwrap_or_else(|| serde_json::json!({})),
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
        "history": history,
    });
    if let Some(variant) = base.get("variant") {
        config["variant"] = variant.clone();
    }
    config
}

/// A JSON blob's bytes and descriptor (serde_json's maps are sorted: canonical bytes).
fn blob(media_type: &str, value: &serde_json::Value) -> (Vec<u8>, Descriptor) {
    let bytes = serde_json::to_vec(value).expect("json");
    let d = Descriptor {
        media_type: media_type.to_string(),
        digest: format!("sha256:{}", hex::encode(Sha256::digest(&bytes))),
        size: bytes.len() as u64,
    };
    (bytes, d)
}

/// `repo:tag` split at the last `:` after the last `/`.
fn split_name(name: &str) -> (&str, &str) {
    match name.rfind(':') {
        Some(i) if !name[i..].contains('/') => (&name[..i], &name[i + 1..]),
        _ => (name, "latest"),
    }
}

/// The archive's small files: index.json, manifest.json, oci-layout and repositories.
pub fn archive_files(
    names: &[String],
    config: &Descriptor,
    manifest: &Descriptor,
    layers: &[String],
) -> Vec<(&'static str, Vec<u8>)> {
    let index_entries: Vec<serde_json::Value> = names
        .iter()
        .map(|n| {
            let mut d = serde_json::to_value(manifest).expect("json");
            d["annotations"] = serde_json::json!({ CONTAINERD_NAME: n, REF_NAME: split_name(n).1 });
            d
        })
        .collect();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": super::ociimage::MEDIA_INDEX,
        "manifests": index_entries,
    });
    let docker = serde_json::json!([{
        "Config": format!("blobs/sha256/{}", config.hex()),
        "RepoTags": names,
        "Layers": layers.iter().map(|l| format!("blobs/sha256/{}", l.trim_start_matches("sha256:"))).collect::<Vec<_>>(),
    }]);
    let mut repositories = serde_json::Map::new();
    for n in names {
        let (repo, tag) = split_name(n);
        let entry = repositories
            .entry(repo.to_string())
            .or_insert_with(|| serde_json::json!({}));
        entry[tag] = config.hex().into();
    }
    let json = |v: &serde_json::Value| serde_json::to_vec(v).expect("json");
    vec![
        ("index.json", json(&index)),
        ("manifest.json", json(&docker)),
        ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
        (
            "repositories",
            json(&serde_json::Value::Object(repositories)),
        ),
    ]
}

/// Writes the image tar of `spec` to `dest`, its binary layer through `work` (a scratch
/// directory); returns what it wrote.
pub fn write(dest: &Path, work: &Path, spec: &ImageSpec<'_>, cancel: &Control) -> Result<Written> {
    let layer_path = work.join(format!("{}-{}.layer.tar", spec.binary, spec.arch));
    let layer = write_binary_layer(
        &layer_path,
        spec.binary,
        spec.bin,
        spec.net_bind,
        spec.epoch,
    )?;
    let created = crate::units::rfc3339(spec.epoch);
    let config_value = merged_config(
        &spec.base.config,
        spec.arch,
        &layer.diff_id,
        spec.binary,
        &created,
    );
    let (config_bytes, config) = blob(MEDIA_CONFIG, &config_value);
    let mut layers: Vec<&BaseLayer> = spec.base.layers.iter().collect();
    layers.push(&layer);
    let layer_descriptors: Vec<Descriptor> = layers
        .iter()
        .map(|l| Descriptor {
            media_type: MEDIA_LAYER_TAR.to_string(),
            digest: l.diff_id.clone(),
            size: l.size,
        })
        .collect();
    let (manifest_bytes, manifest) = blob(
        MEDIA_MANIFEST,
        &serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": config,
            "layers": layer_descriptors,
        }),
    );
    let diff_ids: Vec<String> = layers.iter().map(|l| l.diff_id.clone()).collect();
    let small = archive_files(&spec.names, &config, &manifest, &diff_ids);

    // Blobs in byte order of their names; a layer the base lists twice is stored once.
    enum Source<'a> {
        File(&'a Path, u64),
        Bytes(&'a [u8]),
    }
    let mut blobs: Vec<(String, Source<'_>)> = layers
        .iter()
        .map(|l| (hex_of(&l.diff_id), Source::File(&l.path, l.size)))
        .collect();
    blobs.push((config.hex().to_string(), Source::Bytes(&config_bytes)));
    blobs.push((manifest.hex().to_string(), Source::Bytes(&manifest_bytes)));
    blobs.sort_by(|a, b| a.0.cmp(&b.0));
    blobs.dedup_by(|a, b| a.0 == b.0);

    let err = io_err(dest);
    let file = AtomicFile::create(dest)?;
    let mut tar = tar::Builder::new(HashingWriter::new(file));
    for dir in ["blobs/", "blobs/sha256/"] {
        let mut h = header(tar::EntryType::Directory, 0, 0o755, spec.epoch);
        tar.append_data(&mut h, dir, std::io::empty())
            .map_err(&err)?;
    }
    for (hex, source) in &blobs {
        cancel.check().map_err(&err)?;
        let path = format!("blobs/sha256/{hex}");
        match source {
            Source::File(src, size) => {
                let f = std::fs::File::open(src).map_err(|e| Error::io("cannot read", src, e))?;
                let mut h = header(tar::EntryType::Regular, *size, 0o644, spec.epoch);
                // Exactly `size` bytes: a layer that changed under us fails, not corrupts.
                tar.append_data(&mut h, &path, Exact(f.take(*size), *size))
                    .map_err(&err)?;
            }
            Source::Bytes(bytes) => {
                let mut h = header(
                    tar::EntryType::Regular,
                    bytes.len() as u64,
                    0o644,
                    spec.epoch,
                );
                tar.append_data(&mut h, &path, *bytes).map_err(&err)?;
            }
        }
    }
    for (name, bytes) in &small {
        let mut h = header(
            tar::EntryType::Regular,
            bytes.len() as u64,
            0o644,
            spec.epoch,
        );
        tar.append_data(&mut h, name, &bytes[..]).map_err(&err)?;
    }
    let mut out = tar.into_inner().map_err(&err)?;
    out.flush().map_err(&err)?;
    let (file, size, digests) = out.finish();
    file.commit()?;
    let _ = std::fs::remove_file(&layer_path);
    Ok(Written {
        size,
        digests,
        config_digest: config.digest,
        manifest_digest: manifest.digest,
    })
}

/// What writing one image tar produced.
#[derive(Debug, Clone)]
pub struct Written {
    pub size: u64,
    pub digests: Digests,
    pub config_digest: String,
    pub manifest_digest: String,
}

fn hex_of(digest: &str) -> String {
    digest.trim_start_matches("sha256:").to_string()
}

/// A reader that fails unless it yields exactly its length.
struct Exact<R>(R, u64);

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.read(buf)?;
        if n == 0 && self.1 != 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "a base layer is shorter than it was",
            ));
        }
        self.1 -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(dir: &Path) -> BaseImage {
        let layer = dir.join("base.tar");
        let mut t = tar::Builder::new(Vec::new());
        let mut h = header(tar::EntryType::Regular, 3, 0o755, 0);
        t.append_data(&mut h, "go-runner", &b"abc"[..]).unwrap();
        let bytes = t.into_inner().unwrap();
        std::fs::write(&layer, &bytes).unwrap();
        let diff_id = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        BaseImage {
            reference: "test/base:1".into(),
            digest: "sha256:00".into(),
            config: serde_json::json!({
                "architecture": "amd64", "os": "linux",
                "config": { "Entrypoint": ["/go-runner"], "User": "65532", "Env": ["PATH=/usr/local/bin"], "WorkingDir": "/" },
                "rootfs": { "type": "layers", "diff_ids": [diff_id.clone()] },
                "history": [{ "created_by": "import" }],
            }),
            layers: vec![BaseLayer {
                diff_id,
                path: layer,
                size: bytes.len() as u64,
            }],
        }
    }

    #[test]
    fn the_config_keeps_the_base_runtime_and_adds_the_layer() {
        let b = serde_json::json!({
            "config": { "Entrypoint": ["/go-runner"], "User": "65532" },
            "rootfs": { "diff_ids": ["sha256:a"] },
            "history": [{ "created_by": "x" }],
            "variant": "v8",
            "container_config": { "Cmd": ["junk"] },
        });
        let c = merged_config(&b, "arm64", "sha256:b", "kubectl", "1970-01-01T00:00:00Z");
        assert_eq!(c["config"]["Entrypoint"][0], "/go-runner");
        assert_eq!(c["config"]["User"], "65532");
        assert_eq!(
            c["rootfs"]["diff_ids"],
            serde_json::json!(["sha256:a", "sha256:b"])
        );
        assert_eq!(c["history"].as_array().unwrap().len(), 2);
        assert_eq!(c["architecture"], "arm64");
        assert_eq!(c["variant"], "v8");
        assert!(c.get("container_config").is_none());
    }

    #[test]
    fn the_capability_travels_as_a_pax_record_before_the_binary() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("kube-apiserver");
        std::fs::write(&bin, b"binary").unwrap();
        let layer =
            write_binary_layer(&dir.path().join("l.tar"), "kube-apiserver", &bin, true, 7).unwrap();
        let mut archive = tar::Archive::new(std::fs::File::open(&layer.path).unwrap());
        let mut found = None;
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            if e.path().unwrap() == Path::new("usr/local/bin/kube-apiserver") {
                for ext in e.pax_extensions().unwrap().unwrap() {
                    let ext = ext.unwrap();
                    if ext.key().unwrap() == CAPABILITY_PAX_KEY {
                        found = Some(ext.value_bytes().to_vec());
                    }
                }
                assert_eq!(e.header().mode().unwrap(), 0o755);
            }
        }
        assert_eq!(found.unwrap(), images::net_bind_capability());
    }

    #[test]
    fn the_archive_has_both_layouts_and_the_same_bytes_twice() {
        let dir = tempfile::tempdir().unwrap();
        let b = base(dir.path());
        let bin = dir.path().join("kube-scheduler");
        std::fs::write(&bin, b"binary").unwrap();
        let spec = ImageSpec {
            binary: "kube-scheduler",
            arch: "amd64",
            names: vec![
                "registry.k8s.io/kube-scheduler-amd64:v1.0.0".into(),
                "me.io/kube-scheduler-amd64:dev".into(),
            ],
            bin: &bin,
            net_bind: false,
            epoch: 1_700_000_000,
            base: &b,
        };
        let one = write(
            &dir.path().join("a.tar"),
            dir.path(),
            &spec,
            &Control::default(),
        )
        .unwrap();
        let two = write(
            &dir.path().join("b.tar"),
            dir.path(),
            &spec,
            &Control::default(),
        )
        .unwrap();
        assert_eq!(one.digests.sha256, two.digests.sha256);
        let mut names = Vec::new();
        let mut manifest = None;
        let mut a = tar::Archive::new(std::fs::File::open(dir.path().join("a.tar")).unwrap());
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let name = e.path().unwrap().display().to_string();
            if name == "manifest.json" {
                let mut s = String::new();
                e.read_to_string(&mut s).unwrap();
                manifest = Some(serde_json::from_str::<serde_json::Value>(&s).unwrap());
            }
            names.push(name);
        }
        let tail: Vec<&str> = names[names.len() - 4..]
            .iter()
            .map(|s| s.as_str())
            .collect();
        assert_eq!(
            tail,
            ["index.json", "manifest.json", "oci-layout", "repositories"]
        );
        let m = manifest.unwrap();
        assert_eq!(m[0]["RepoTags"].as_array().unwrap().len(), 2);
        assert_eq!(m[0]["Layers"].as_array().unwrap().len(), 2);
        assert_eq!(
            m[0]["Config"],
            format!("blobs/sha256/{}", hex_of(&one.config_digest))
        );
        // 2 dirs, 2 layers, config, manifest, 4 files.
        assert_eq!(names.len(), 10);
    }

    #[test]
    fn names_split_at_the_tag() {
        assert_eq!(
            split_name("registry.k8s.io/kube-proxy-amd64:v1_a"),
            ("registry.k8s.io/kube-proxy-amd64", "v1_a")
        );
        assert_eq!(
            split_name("localhost:5000/x"),
            ("localhost:5000/x", "latest")
        );
    }
}
