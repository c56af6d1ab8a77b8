//! The tarballs upstream stages from the tree's own files rather than from binaries:
//! kubernetes-manifests.tar.gz and kubernetes.tar.gz, by the tables in `kube::release`
//! (which name the upstream functions). Upstream copies into a staging directory, removes
//! cruft (kube::release::clean_cruft) and tars it; kbuild builds the same entry list and
//! writes it through the deterministic writer. What the tree lacks is left out and said.

use std::collections::BTreeMap;
use std::path::Path;

use super::srctar::{tree_entries, Excluded};
use super::tarball::{Content, Entry, TarGz, Written, MODE_EXEC, MODE_FILE};
use super::Control;
use crate::error::Result;
use crate::kube::release::{
    is_addon_manifest, is_cruft, TreeCopy, FINAL_COPIES, FINAL_MANIFESTS_AT, FINAL_TARBALL,
    FINAL_VERSION_FILE, FINAL_WRITTEN, MANIFESTS_ADDON_DIRS, MANIFESTS_DIR, MANIFESTS_FILES,
    MANIFESTS_SRC_DIR, MANIFESTS_TARBALL, TEST_PORTABLE_COPIES, TEST_PORTABLE_DIR, TOP,
};

/// A staged tarball's contents: entries from disk and files kbuild writes itself, by path.
#[derive(Debug, Default)]
pub struct Staged {
    disk: BTreeMap<String, Entry>,
    written: BTreeMap<String, Vec<u8>>,
    /// What upstream would copy that the tree lacks.
    pub missing: Vec<String>,
}

impl Staged {
    /// Adds `entry` and its parent directories (`mkdir -p`); a later copy to the same path
    /// replaces an earlier one, as `cp` overwrites.
    fn put(&mut self, entry: Entry) {
        let mut parent = Path::new(&entry.path).parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            let dir = p.to_string_lossy().into_owned();
            self.disk
                .entry(dir.clone())
                .or_insert_with(|| Entry::dir(dir));
            parent = p.parent();
        }
        self.disk.insert(entry.path.clone(), entry);
    }

    fn dir(&mut self, path: &str) {
        self.put(Entry::dir(path));
    }

    fn write(&mut self, path: String, bytes: Vec<u8>) {
        if let Some(parent) = Path::new(&path).parent() {
            self.dir(&parent.to_string_lossy());
        }
        self.written.insert(path, bytes);
    }

    /// Copies `copy` from the tree (a file, or a directory with everything under it).
    fn copy(&mut self, root: &Path, copy: &TreeCopy, excluded: &Excluded) -> Result<()> {
        let src = root.join(copy.from);
        let to = format!("{TOP}/{}", copy.to);
        let Ok(meta) = std::fs::symlink_metadata(&src) else {
            if copy.required {
                self.missing.push(copy.from.to_string());
            }
            return Ok(());
        };
        if meta.is_dir() {
            self.dir(&to);
            let skip = |rel: &str| excluded.covers(rel);
            for entry in tree_entries(root, copy.from, &to, &skip)? {
                self.put(entry);
            }
        } else {
            self.put(Entry::file(to, src, mode_of(&meta)));
        }
        Ok(())
    }

    /// kube::release::clean_cruft: drops entries named `*~`, `#*#` or `.DS*`.
    fn clean_cruft(&mut self) {
        let cruft = |path: &str| path.rsplit('/').next().is_some_and(is_cruft);
        self.disk.retain(|p, _| !cruft(p));
        self.written.retain(|p, _| !cruft(p));
    }

    /// Every path, as GNU tar lists them (directories end with `/`), sorted.
    #[cfg(test)]
    pub fn listing(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .disk
            .values()
            .map(Entry::key)
            .chain(self.written.keys().cloned())
            .collect();
        all.sort();
        all
    }

    /// Writes the tarball.
    pub fn write_to(
        self,
        dest: &Path,
        mtime: u64,
        list_contents: bool,
        cancel: &Control,
    ) -> Result<Written> {
        enum Item {
            Disk(Entry),
            Bytes(String, Vec<u8>),
        }
        let mut items: Vec<(String, Item)> = self
            .disk
            .into_values()
            .map(|e| (e.key(), Item::Disk(e)))
            .chain(
                self.written
                    .into_iter()
                    .map(|(p, b)| (p.clone(), Item::Bytes(p, b))),
            )
            .collect();
        items.sort_by(|a, b| a.0.cmp(&b.0));
        let mut tar = TarGz::create(dest, mtime, list_contents, cancel)?;
        for (_, item) in items {
            match item {
                Item::Disk(entry) => tar.add(&entry)?,
                Item::Bytes(path, bytes) => {
                    tar.file(&path, MODE_FILE, bytes.len() as u64, &mut bytes.as_slice())?
                }
            }
        }
        tar.finish()
    }
}

fn mode_of(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    if meta.permissions().mode() & 0o111 != 0 {
        MODE_EXEC
    } else {
        MODE_FILE
    }
}

/// kube::release::package_kube_manifests_tarball, or None when the tree has no
/// `cluster/gce/manifests` to make it from.
pub fn manifests(root: &Path, excluded: &Excluded) -> Result<Option<Staged>> {
    if !root.join(MANIFESTS_SRC_DIR).is_dir() {
        return Ok(None);
    }
    let mut staged = Staged::default();
    staged.dir(&format!("{TOP}/{MANIFESTS_DIR}"));
    for copy in MANIFESTS_FILES {
        staged.copy(root, copy, excluded)?;
    }
    let dst = format!("{TOP}/{MANIFESTS_DIR}");
    // `find cluster/gce/manifests -name 'internal-*'`, copied flat.
    let skip = |rel: &str| excluded.covers(rel);
    for entry in tree_entries(root, MANIFESTS_SRC_DIR, "", &skip)? {
        let name = entry
            .path
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string();
        if name.starts_with("internal-") && matches!(entry.content, Content::File { .. }) {
            staged.put(Entry {
                path: format!("{dst}/{name}"),
                content: entry.content,
            });
        }
    }
    // The add-on manifests of each directory, keeping their paths below it.
    for dir in MANIFESTS_ADDON_DIRS {
        if !root.join(dir).is_dir() {
            continue;
        }
        let skip = |rel: &str| excluded.covers(rel);
        for entry in tree_entries(root, dir, &dst, &skip)? {
            let name = entry.path.rsplit('/').next().unwrap_or_default();
            if matches!(entry.content, Content::File { .. }) && is_addon_manifest(name) {
                staged.put(entry);
            }
        }
    }
    staged.clean_cruft();
    Ok(Some(staged))
}

/// kube::release::package_final_tarball. `manifests` is the written manifests tarball, if
/// there is one.
pub fn final_tarball(
    root: &Path,
    excluded: &Excluded,
    git_version: &str,
    manifests: Option<&Path>,
) -> Result<Staged> {
    let mut staged = Staged::default();
    staged.dir(TOP);
    for (path, text) in FINAL_WRITTEN {
        staged.write(format!("{TOP}/{path}"), text.as_bytes().to_vec());
    }
    for copy in FINAL_COPIES {
        staged.copy(root, copy, excluded)?;
    }
    if let Some(manifests) = manifests {
        staged.put(Entry::file(
            format!("{TOP}/{FINAL_MANIFESTS_AT}"),
            manifests,
            MODE_FILE,
        ));
    }
    staged.write(
        format!("{TOP}/{FINAL_VERSION_FILE}"),
        format!("{git_version}\n").into_bytes(),
    );
    staged.clean_cruft();
    Ok(staged)
}

/// kube::release::package_test_tarballs' portable part: test/images and KUBE_TEST_PORTABLE
/// from the tree, cruft cleaned.
pub fn test_portable(root: &Path, excluded: &Excluded) -> Result<Staged> {
    let mut staged = Staged::default();
    staged.dir(&format!("{TOP}/{TEST_PORTABLE_DIR}"));
    for copy in TEST_PORTABLE_COPIES {
        staged.copy(root, copy, excluded)?;
    }
    staged.clean_cruft();
    Ok(staged)
}

/// The note for what a staged tarball left out because the tree lacks it.
pub fn missing_note(tarball: &str, missing: &[String]) -> Option<String> {
    (!missing.is_empty()).then(|| {
        format!(
            "{tarball} holds no {}: the tree lacks {} (upstream copies {})",
            missing.join(", "),
            if missing.len() == 1 { "it" } else { "them" },
            if missing.len() == 1 { "it" } else { "them" },
        )
    })
}

/// The note for a manifests tarball that could not be made.
pub fn no_manifests_note() -> String {
    format!(
        "no {MANIFESTS_TARBALL} (and no {FINAL_MANIFESTS_AT} in {FINAL_TARBALL}): the tree has no {MANIFESTS_SRC_DIR}/, which upstream's package_kube_manifests_tarball copies from"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for f in files {
            let path = dir.path().join(f);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, f).unwrap();
        }
        dir
    }

    fn none(root: &Path) -> Excluded {
        Excluded::new(root, &[])
    }

    #[test]
    fn manifests_follow_package_kube_manifests_tarball() {
        let t = tree(&[
            "cluster/gce/manifests/kube-apiserver.manifest",
            "cluster/gce/manifests/etcd.manifest",
            "cluster/gce/manifests/sub/internal-extra.yaml",
            "cluster/gce/gci/configure-helper.sh",
            "cluster/gce/gci/health-monitor.sh",
            "cluster/addons/dns/coredns.yaml.in",
            "cluster/addons/dns/demo-app.yaml",
            "cluster/addons/dns/README.md",
            "cluster/addons/rbac/roles.json",
            "cluster/addons/rbac/roles.json~",
            "cluster/gce/addons/default-storage-class.yaml",
        ]);
        let staged = manifests(t.path(), &none(t.path())).unwrap().unwrap();
        assert_eq!(
            staged.listing(),
            [
                "kubernetes/",
                "kubernetes/gci-trusty/",
                "kubernetes/gci-trusty/default-storage-class.yaml",
                "kubernetes/gci-trusty/dns/",
                "kubernetes/gci-trusty/dns/coredns.yaml.in",
                "kubernetes/gci-trusty/etcd.manifest",
                "kubernetes/gci-trusty/gci-configure-helper.sh",
                "kubernetes/gci-trusty/health-monitor.sh",
                "kubernetes/gci-trusty/internal-extra.yaml",
                "kubernetes/gci-trusty/kube-apiserver.manifest",
                "kubernetes/gci-trusty/rbac/",
                "kubernetes/gci-trusty/rbac/roles.json",
            ]
        );
        assert!(staged
            .missing
            .contains(&"cluster/gce/manifests/glbc.manifest".to_string()));
        assert!(
            !staged.missing.iter().any(|m| m.contains("gke-internal")),
            "upstream copies gke-internal-configure-helper.sh only when present"
        );
        assert!(manifests(tree(&["go.mod"]).path(), &none(t.path()))
            .unwrap()
            .is_none());
    }

    #[test]
    fn final_tarball_follows_package_final_tarball() {
        let t = tree(&[
            "cluster/get-kube-binaries.sh",
            "cluster/.DS_Store",
            "hack/lib/version.sh",
            "hack/make-rules/build.sh",
            "README.md",
            "LICENSES/LICENSE",
        ]);
        let m = t.path().join("m.tar.gz");
        let staged = final_tarball(t.path(), &none(t.path()), "v1.34.0", Some(&m)).unwrap();
        assert_eq!(
            staged.listing(),
            [
                "kubernetes/",
                "kubernetes/LICENSES/",
                "kubernetes/LICENSES/LICENSE",
                "kubernetes/README.md",
                "kubernetes/client/",
                "kubernetes/client/README",
                "kubernetes/cluster/",
                "kubernetes/cluster/get-kube-binaries.sh",
                "kubernetes/hack/",
                "kubernetes/hack/lib/",
                "kubernetes/hack/lib/version.sh",
                "kubernetes/server/",
                "kubernetes/server/README",
                "kubernetes/server/kubernetes-manifests.tar.gz",
                "kubernetes/version",
            ]
        );
        assert_eq!(staged.missing, ["docs"]);
        assert_eq!(
            staged.written["kubernetes/version"], b"v1.34.0\n",
            "echo KUBE_GIT_VERSION"
        );
    }

    #[test]
    fn test_portable_follows_package_test_tarballs() {
        let t = tree(&[
            "test/images/agnhost/VERSION",
            "test/e2e/testing-manifests/storage/pod.yaml",
            "test/e2e/testing-manifests/storage/pod.yaml~",
            "test/e2e/e2e_test.go",
            "hack/e2e-internal/e2e-up.sh",
            "hack/ginkgo-e2e.sh",
            "hack/lib/init.sh",
            "hack/make-rules/build.sh",
        ]);
        let staged = test_portable(t.path(), &none(t.path())).unwrap();
        assert_eq!(
            staged.listing(),
            [
                "kubernetes/",
                "kubernetes/hack/",
                "kubernetes/hack/e2e-internal/",
                "kubernetes/hack/e2e-internal/e2e-up.sh",
                "kubernetes/hack/ginkgo-e2e.sh",
                "kubernetes/hack/lib/",
                "kubernetes/hack/lib/init.sh",
                "kubernetes/test/",
                "kubernetes/test/e2e/",
                "kubernetes/test/e2e/testing-manifests/",
                "kubernetes/test/e2e/testing-manifests/storage/",
                "kubernetes/test/e2e/testing-manifests/storage/pod.yaml",
                "kubernetes/test/images/",
                "kubernetes/test/images/agnhost/",
                "kubernetes/test/images/agnhost/VERSION",
            ]
        );
        assert_eq!(staged.missing, ["test/kubemark", "hack/get-build.sh"]);
        // `mkdir -p test/images` comes first: a tree without it still gets the directory.
        let bare = tree(&["go.mod"]);
        let staged = test_portable(bare.path(), &none(bare.path())).unwrap();
        assert_eq!(
            staged.listing(),
            ["kubernetes/", "kubernetes/test/", "kubernetes/test/images/"]
        );
        assert_eq!(staged.missing.len(), TEST_PORTABLE_COPIES.len());
    }
}
