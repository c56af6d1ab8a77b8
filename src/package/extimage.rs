//! The Docker Desktop extension image, built from the extension layout with no Dockerfile,
//! no buildx and no emulation (nothing runs inside it): per image architecture, one layer
//! with that architecture's host binaries under /darwin, /linux and /windows, plus
//! metadata.json, the icon and the static UI, shared by both variants.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::extension::{self, HOST_OSES, IMAGE_ARCHES};
use super::extmeta::{METADATA, UI_DIR};
use super::ociimage::{self, Image, Variant};
use super::tarball::{self, Entry};
use super::Control;
use crate::error::{Error, Result};
use crate::outdir::AtomicFile;

/// What `kbuild extension --tag` was given beyond the binaries.
#[derive(Debug, Clone)]
pub struct Extras {
    pub metadata: Option<PathBuf>,
    pub icon: Option<PathBuf>,
    pub ui: Option<PathBuf>,
}

/// Names the image root holds besides the icon.
const RESERVED: &[&str] = &[METADATA, UI_DIR, "darwin", "linux", "windows"];

/// Checks the extras before anything is built: they exist and have usable names.
pub fn check(extras: &Extras) -> Result<()> {
    if let Some(f) = &extras.metadata {
        if !f.is_file() {
            return Err(
                Error::usage(format!("--metadata {} is not a file", f.display()))
                    .with_hint("give the extension's metadata.json"),
            );
        }
    }
    if let Some(icon) = &extras.icon {
        if !icon.is_file() {
            return Err(
                Error::usage(format!("--icon {} is not a file", icon.display()))
                    .with_hint("give an .svg, .png or .jpg file"),
            );
        }
        let name = icon_name(icon);
        if RESERVED.contains(&name.as_str()) {
            return Err(Error::usage(format!(
                "--icon {}: the image root already has a {name}",
                icon.display()
            ))
            .with_hint("rename the icon, e.g. icon.svg"));
        }
    }
    if let Some(ui) = &extras.ui {
        if !ui.is_dir() {
            return Err(
                Error::usage(format!("--ui {} is not a directory", ui.display()))
                    .with_hint("give the directory of the extension's static UI (with index.html)"),
            );
        }
        ui_entries(ui)?;
    }
    Ok(())
}

fn icon_name(icon: &Path) -> String {
    icon.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The files of `--ui DIR` under ui/ in the image; links and special files are refused
/// (the image would carry something else than the author sees).
fn ui_entries(ui: &Path) -> Result<Vec<Entry>> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = vec![Entry::dir(UI_DIR)];
    let mut stack = vec![(ui.to_path_buf(), UI_DIR.to_string())];
    while let Some((dir, rel)) = stack.pop() {
        for e in std::fs::read_dir(&dir).map_err(|e| Error::io("cannot read", &dir, e))? {
            let e = e.map_err(|e| Error::io("cannot read", &dir, e))?;
            let path = e.path();
            let meta =
                std::fs::symlink_metadata(&path).map_err(|e| Error::io("cannot read", &path, e))?;
            let Some(name) = e.file_name().to_str().map(str::to_string) else {
                return Err(
                    Error::usage(format!("--ui: {} is not UTF-8", path.display()))
                        .with_hint("rename it"),
                );
            };
            let inner = format!("{rel}/{name}");
            if meta.is_dir() {
                out.push(Entry::dir(&inner));
                stack.push((path, inner));
            } else if meta.is_file() {
                let mode = if meta.permissions().mode() & 0o111 != 0 {
                    tarball::MODE_EXEC
                } else {
                    tarball::MODE_FILE
                };
                out.push(Entry::file(inner, path, mode));
            } else {
                return Err(Error::usage(format!(
                    "--ui: {} is a symbolic link or special file",
                    path.display()
                ))
                .with_hint(
                    "copy the file it points to in its place; the image holds plain files only",
                ));
            }
        }
    }
    Ok(out)
}

/// Writes metadata.json to `<ext>/metadata.json` (the one the image carries, for the
/// author to read) and the image to `<ext>/image/` and `<ext>/image.oci.tar.gz`.
#[allow(clippy::too_many_arguments)]
pub fn write(
    ext: &Path,
    tag: &str,
    extras: &Extras,
    metadata: &serde_json::Value,
    labels: &BTreeMap<String, String>,
    mtime: u64,
    cancel: &Control,
) -> Result<Image> {
    let meta_path = ext.join(METADATA);
    let mut text = serde_json::to_string_pretty(metadata).expect("json");
    text.push('\n');
    let mut f = AtomicFile::create(&meta_path)?;
    std::io::Write::write_all(&mut f, text.as_bytes())
        .map_err(|e| Error::io("cannot write", &meta_path, e))?;
    f.commit()?;
    let mut shared = vec![Entry::file(METADATA, &meta_path, tarball::MODE_FILE)];
    if let Some(icon) = &extras.icon {
        shared.push(Entry::file(icon_name(icon), icon, tarball::MODE_FILE));
    }
    if let Some(ui) = &extras.ui {
        shared.extend(ui_entries(ui)?);
    }
    let mut variants = Vec::new();
    for arch in IMAGE_ARCHES {
        let mut entries = shared.clone();
        for os in HOST_OSES {
            let dir = ext.join(arch).join(os);
            let Ok(files) = std::fs::read_dir(&dir) else {
                continue;
            };
            entries.push(Entry::dir(*os));
            for e in files {
                let e = e.map_err(|e| Error::io("cannot read", &dir, e))?;
                entries.push(Entry::file(
                    format!("{os}/{}", e.file_name().to_string_lossy()),
                    e.path(),
                    tarball::MODE_EXEC,
                ));
            }
        }
        variants.push(Variant { arch, entries });
    }
    ociimage::write(ext, tag, labels, mtime, variants, cancel)
}

/// The host.binaries fragment extension::write computed, as metadata.json needs it.
pub fn host_binaries(
    components: &[&crate::kube::Component],
    platforms: &[crate::kube::Platform],
) -> serde_json::Value {
    extension::host_binaries(components, platforms).0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_missing_extras_and_links_in_the_ui() {
        let dir = tempfile::tempdir().unwrap();
        let missing = Extras {
            metadata: Some(dir.path().join("nope.json")),
            icon: None,
            ui: None,
        };
        assert!(check(&missing).is_err());
        let ui = dir.path().join("ui");
        std::fs::create_dir(&ui).unwrap();
        std::fs::write(ui.join("index.html"), "<p>hi</p>").unwrap();
        let ok = Extras {
            metadata: None,
            icon: None,
            ui: Some(ui.clone()),
        };
        assert!(check(&ok).is_ok());
        std::os::unix::fs::symlink("/etc/passwd", ui.join("leak")).unwrap();
        let e = check(&ok).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        std::fs::write(dir.path().join("metadata.json"), "{}").unwrap();
        let reserved = Extras {
            metadata: None,
            icon: Some(dir.path().join("metadata.json")),
            ui: None,
        };
        assert!(check(&reserved).is_err());
    }
}
