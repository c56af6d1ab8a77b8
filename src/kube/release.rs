//! Upstream's release tarballs (build/lib/release.sh): their names, which binaries each
//! holds and where, and which target set builds what for a quick-release. Pure data.
//!
//! - kubernetes-src.tar.gz: the source, under `kubernetes/`;
//! - kubernetes-client-<os>-<arch>.tar.gz: `kubernetes/client/bin/` with the client
//!   binaries (`.exe` on windows), for every platform built;
//! - kubernetes-node-<os>-<arch>.tar.gz, node platforms only: `kubernetes/node/bin/` with
//!   the node binaries and the client binaries ("useful debugging tools"), plus
//!   `kubernetes/LICENSES` and `kubernetes/kubernetes-src.tar.gz`;
//! - kubernetes-server-linux-<arch>.tar.gz, server platforms only: `kubernetes/server/bin/`
//!   with the server and client binaries, an empty `kubernetes/addons/`, plus LICENSES and
//!   the source tarball. Upstream also puts image archives (`<bin>.tar`, `<bin>.docker_tag`)
//!   in server/bin; kbuild builds no images, so they are absent.

use super::component::{Component, TargetSet};
use super::platform::Platform;

/// The kinds of tarball kbuild writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TarballKind {
    Src,
    Client,
    Node,
    Server,
}

impl TarballKind {
    pub fn name(self) -> &'static str {
        match self {
            TarballKind::Src => "src",
            TarballKind::Client => "client",
            TarballKind::Node => "node",
            TarballKind::Server => "server",
        }
    }
}

/// The top directory of every release tarball.
pub const TOP: &str = "kubernetes";
/// The source tarball's name.
pub const SRC_TARBALL: &str = "kubernetes-src.tar.gz";
/// The directory of license texts node and server tarballs carry (`cp -R LICENSES`).
pub const LICENSES: &str = "LICENSES";

/// One binary tarball: what it is for and what goes in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub kind: TarballKind,
    pub platform: Platform,
    /// The binaries in `bin_dir`, set members first, then the client binaries.
    pub components: Vec<&'static Component>,
}

impl Layout {
    /// `kubernetes-<kind>-<os>-<arch>.tar.gz`.
    pub fn file_name(&self) -> String {
        format!(
            "kubernetes-{}-{}.tar.gz",
            self.kind.name(),
            self.platform.dashed()
        )
    }

    /// `kubernetes/<kind>/bin`.
    pub fn bin_dir(&self) -> String {
        format!("{TOP}/{}/bin", self.kind.name())
    }

    /// Every directory the tarball holds, parents first.
    pub fn dirs(&self) -> Vec<String> {
        let mut dirs = vec![
            TOP.to_string(),
            format!("{TOP}/{}", self.kind.name()),
            self.bin_dir(),
        ];
        if self.kind == TarballKind::Server {
            dirs.push(format!("{TOP}/addons"));
        }
        dirs
    }

    /// (path inside the tarball, component) for every binary.
    pub fn binaries(&self) -> Vec<(String, &'static Component)> {
        self.components
            .iter()
            .map(|c| {
                (
                    format!("{}/{}", self.bin_dir(), c.file_name(self.platform)),
                    *c,
                )
            })
            .collect()
    }

    /// Node and server tarballs carry LICENSES and the source tarball; client ones do not.
    pub fn carries_source(&self) -> bool {
        matches!(self.kind, TarballKind::Node | TarballKind::Server)
    }

    /// Upstream component names in this tarball (for the manifest).
    pub fn component_names(&self) -> Vec<&'static str> {
        self.components.iter().map(|c| c.name).collect()
    }
}

/// The components of `set` the tree has, in upstream's order.
fn present(set: TargetSet, has: &dyn Fn(&Component) -> bool) -> Vec<&'static Component> {
    set.components().filter(|c| has(c)).collect()
}

/// The binary tarballs for `platforms`, given which components the tree has: client for
/// every platform, node for node platforms, server for server platforms. A tarball whose
/// set has no component in the tree is not made.
pub fn layouts(platforms: &[Platform], has: &dyn Fn(&Component) -> bool) -> Vec<Layout> {
    let client = present(TargetSet::Client, has);
    let mut out = Vec::new();
    for &platform in platforms {
        for (kind, set) in [
            (TarballKind::Client, TargetSet::Client),
            (TarballKind::Node, TargetSet::Node),
            (TarballKind::Server, TargetSet::Server),
        ] {
            if !set.platforms().contains(&platform) {
                continue;
            }
            let own = present(set, has);
            if own.is_empty() {
                continue;
            }
            let mut components = own;
            for c in &client {
                if !components.contains(c) {
                    components.push(c);
                }
            }
            out.push(Layout {
                kind,
                platform,
                components,
            });
        }
    }
    out
}

/// One make run of a quick-release: the components every one of its platforms needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseJob {
    /// The target sets it covers, e.g. `server+node+client`.
    pub name: String,
    pub components: Vec<&'static Component>,
    pub platforms: Vec<Platform>,
}

/// What a quick-release builds for `platforms` in a tree, and what it leaves out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleasePlan {
    pub jobs: Vec<ReleaseJob>,
    /// (set, platform) pairs asked for that upstream does not build (e.g. node for darwin).
    pub skipped: Vec<(TargetSet, Platform)>,
    /// Upstream targets of the server, node and client sets that the tree does not have.
    pub missing: Vec<&'static Component>,
}

/// Groups the platforms by the target sets that build for them, one job per group, as
/// upstream's cross build builds each set for its own platform list.
pub fn plan(platforms: &[Platform], has: &dyn Fn(&Component) -> bool) -> ReleasePlan {
    let order = [TargetSet::Server, TargetSet::Node, TargetSet::Client];
    let mut jobs: Vec<ReleaseJob> = Vec::new();
    let mut skipped = Vec::new();
    for &platform in platforms {
        let sets: Vec<TargetSet> = order
            .iter()
            .copied()
            .filter(|s| s.platforms().contains(&platform))
            .collect();
        skipped.extend(
            order
                .iter()
                .copied()
                .filter(|s| !sets.contains(s))
                .map(|s| (s, platform)),
        );
        let mut components: Vec<&'static Component> = Vec::new();
        for set in &sets {
            for c in present(*set, has) {
                if !components.contains(&c) {
                    components.push(c);
                }
            }
        }
        if components.is_empty() {
            continue;
        }
        let name = sets.iter().map(|s| s.name()).collect::<Vec<_>>().join("+");
        match jobs.iter_mut().find(|j| j.name == name) {
            Some(job) => job.platforms.push(platform),
            None => jobs.push(ReleaseJob {
                name,
                components,
                platforms: vec![platform],
            }),
        }
    }
    let missing = super::component::COMPONENTS
        .iter()
        .filter(|c| !has(c))
        .collect();
    ReleasePlan {
        jobs,
        skipped,
        missing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        Platform::parse(s).unwrap()
    }

    /// mini-kube: no kube-log-runner, kube-aggregator, apiextensions-apiserver, mounter,
    /// kubectl-convert.
    fn mini(c: &Component) -> bool {
        c.target.starts_with("cmd/") && c.name != "kubectl-convert"
    }

    fn all(_: &Component) -> bool {
        true
    }

    #[test]
    fn names_follow_upstream() {
        let got: Vec<String> = layouts(&[p("linux/amd64")], &all)
            .iter()
            .map(Layout::file_name)
            .collect();
        assert_eq!(
            got,
            [
                "kubernetes-client-linux-amd64.tar.gz",
                "kubernetes-node-linux-amd64.tar.gz",
                "kubernetes-server-linux-amd64.tar.gz"
            ]
        );
    }

    #[test]
    fn client_tarball_holds_client_binaries_only() {
        let l = &layouts(&[p("darwin/arm64")], &all)[0];
        assert_eq!(l.kind, TarballKind::Client);
        let paths: Vec<String> = l.binaries().into_iter().map(|(p, _)| p).collect();
        assert_eq!(
            paths,
            [
                "kubernetes/client/bin/kubectl",
                "kubernetes/client/bin/kubectl-convert"
            ]
        );
        assert_eq!(
            l.dirs(),
            ["kubernetes", "kubernetes/client", "kubernetes/client/bin"]
        );
        assert!(!l.carries_source());
    }

    #[test]
    fn darwin_gets_no_node_or_server_tarball() {
        assert_eq!(layouts(&[p("darwin/amd64")], &all).len(), 1);
    }

    #[test]
    fn windows_node_tarball_has_exe_names_and_client_binaries() {
        let ls = layouts(&[p("windows/amd64")], &all);
        let kinds: Vec<_> = ls.iter().map(|l| l.kind).collect();
        assert_eq!(kinds, [TarballKind::Client, TarballKind::Node]);
        let node = &ls[1];
        assert_eq!(node.file_name(), "kubernetes-node-windows-amd64.tar.gz");
        let paths: Vec<String> = node.binaries().into_iter().map(|(p, _)| p).collect();
        assert_eq!(
            paths,
            [
                "kubernetes/node/bin/kube-proxy.exe",
                "kubernetes/node/bin/kubelet.exe",
                "kubernetes/node/bin/kubeadm.exe",
                "kubernetes/node/bin/kube-log-runner.exe",
                "kubernetes/node/bin/kubectl.exe",
                "kubernetes/node/bin/kubectl-convert.exe"
            ]
        );
        assert!(node.carries_source());
    }

    #[test]
    fn server_tarball_holds_server_and_client_binaries_and_addons() {
        let ls = layouts(&[p("linux/arm64")], &mini);
        let server = ls.iter().find(|l| l.kind == TarballKind::Server).unwrap();
        assert_eq!(server.file_name(), "kubernetes-server-linux-arm64.tar.gz");
        assert_eq!(
            server.component_names(),
            [
                "kube-proxy",
                "kube-apiserver",
                "kube-controller-manager",
                "kubelet",
                "kubeadm",
                "kube-scheduler",
                "kubectl"
            ]
        );
        assert!(server.dirs().contains(&"kubernetes/addons".to_string()));
        let node = ls.iter().find(|l| l.kind == TarballKind::Node).unwrap();
        assert_eq!(
            node.component_names(),
            ["kube-proxy", "kubelet", "kubeadm", "kubectl"]
        );
    }

    #[test]
    fn quick_release_plan_groups_platforms_and_names_what_is_left_out() {
        let plan = plan(
            &[
                p("linux/amd64"),
                p("darwin/arm64"),
                p("windows/amd64"),
                p("linux/arm64"),
            ],
            &mini,
        );
        let jobs: Vec<(String, usize, Vec<String>)> = plan
            .jobs
            .iter()
            .map(|j| {
                (
                    j.name.clone(),
                    j.components.len(),
                    j.platforms.iter().map(|p| p.to_string()).collect(),
                )
            })
            .collect();
        assert_eq!(
            jobs,
            [
                (
                    "server+node+client".to_string(),
                    7,
                    vec!["linux/amd64".to_string(), "linux/arm64".to_string()]
                ),
                ("client".to_string(), 1, vec!["darwin/arm64".to_string()]),
                (
                    "node+client".to_string(),
                    4,
                    vec!["windows/amd64".to_string()]
                ),
            ]
        );
        assert!(plan.skipped.contains(&(TargetSet::Node, p("darwin/arm64"))));
        assert!(plan
            .skipped
            .contains(&(TargetSet::Server, p("windows/amd64"))));
        assert_eq!(plan.skipped.len(), 3);
        let missing: Vec<&str> = plan.missing.iter().map(|c| c.name).collect();
        assert_eq!(
            missing,
            [
                "kube-log-runner",
                "kube-aggregator",
                "apiextensions-apiserver",
                "mounter",
                "kubectl-convert"
            ]
        );
    }
}
