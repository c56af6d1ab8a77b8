//! Upstream's release tarballs (build/lib/release.sh, kube::release::package_tarballs):
//! their names, what each holds and where, and which target set builds what for a
//! quick-release. Pure data: every layout rule is a table below, each naming the upstream
//! function it mirrors.
//!
//! Written: kubernetes-src.tar.gz, kubernetes-client/node/server-<os>-<arch>.tar.gz,
//! kubernetes-manifests.tar.gz, kubernetes.tar.gz and (unless `--no-test-tarballs`)
//! kubernetes-test-<os>-<arch>.tar.gz and kubernetes-test-portable.tar.gz. The server
//! images are kube/images.rs's; `--no-images` leaves them out with a note (`NO_IMAGES_NOTE`).

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
    Manifests,
    Final,
    Test,
    #[serde(rename = "test-portable")]
    TestPortable,
}

impl TarballKind {
    pub fn name(self) -> &'static str {
        match self {
            TarballKind::Src => "src",
            TarballKind::Client => "client",
            TarballKind::Node => "node",
            TarballKind::Server => "server",
            TarballKind::Manifests => "manifests",
            TarballKind::Final => "final",
            TarballKind::Test => "test",
            TarballKind::TestPortable => "test-portable",
        }
    }
}

/// Where release tarballs go under the output directory (upstream: _output/release-tars).
pub const RELEASE_TARS: &str = "release-tars";

/// The top directory of every release tarball but the clean source one
/// (kube::release::create_tarball tars `<stage>/kubernetes`).
pub const TOP: &str = "kubernetes";
/// The source tarball's name.
pub const SRC_TARBALL: &str = "kubernetes-src.tar.gz";
/// The directory of license texts node, server and final tarballs carry (`cp -R LICENSES`).
pub const LICENSES: &str = "LICENSES";

/// kube::release::package_src_tarball: a clean tree is `git archive HEAD`, whose entries
/// sit at the top level (no prefix). Any other tree is the tree's top-level entries minus
/// those starting with these, tarred with `--transform` renaming the tree's path to
/// `SRC_TREE_PREFIX`: entries under `kubernetes/`, with no entry for `kubernetes/` itself.
pub const SRC_EXCLUDED_TOP: &[&str] = &["_", ".git", ".config", ".gsutil"];
/// See `SRC_EXCLUDED_TOP`.
pub const SRC_TREE_PREFIX: &str = TOP;

/// Whether upstream leaves the top-level entry `name` out of a non-clean source tarball.
pub fn src_excludes_top(name: &str) -> bool {
    SRC_EXCLUDED_TOP.iter().any(|p| name.starts_with(p))
}

/// kube::release::clean_cruft: names removed from every staged tree before it is tarred
/// (`*~`, `#*#`, `.DS*`).
pub fn is_cruft(name: &str) -> bool {
    name.ends_with('~')
        || (name.len() >= 2 && name.starts_with('#') && name.ends_with('#'))
        || name.starts_with(".DS")
}

/// One binary tarball kind: which set's binaries, and what else it holds.
#[derive(Debug)]
pub struct BinaryRule {
    pub kind: TarballKind,
    /// The set whose platforms get this tarball, and whose binaries it holds.
    pub set: TargetSet,
    /// A set whose binaries it also holds on the platforms that set builds for.
    pub also: Option<TargetSet>,
    /// It also carries the client binaries ("useful debugging tools").
    pub with_client: bool,
    /// Directories under `kubernetes/` besides `<kind>/bin`.
    pub extra_dirs: &'static [&'static str],
    /// `cp -R LICENSES` and `cp kubernetes-src.tar.gz` into `kubernetes/`.
    pub carries_source: bool,
}

/// The binary tarballs. Each holds `kubernetes/<kind>/bin/` with its set's binaries, then
/// (but the test ones) the client binaries, `.exe` on windows.
pub const BINARY_TARBALLS: &[BinaryRule] = &[
    // kube::release::package_client_tarballs
    BinaryRule {
        kind: TarballKind::Client,
        set: TargetSet::Client,
        also: None,
        with_client: true,
        extra_dirs: &[],
        carries_source: false,
    },
    // kube::release::package_node_tarballs
    BinaryRule {
        kind: TarballKind::Node,
        set: TargetSet::Node,
        also: None,
        with_client: true,
        extra_dirs: &[],
        carries_source: true,
    },
    // kube::release::package_server_tarballs (an empty addons/; the image archives
    // build_server_images puts in server/bin are left out: kbuild builds no images)
    BinaryRule {
        kind: TarballKind::Server,
        set: TargetSet::Server,
        also: None,
        with_client: true,
        extra_dirs: &["addons"],
        carries_source: true,
    },
    // kube::release::package_test_platform_tarballs: KUBE_TEST_BINARIES for every test
    // platform, KUBE_TEST_SERVER_BINARIES too on the server platforms; no LICENSES, no
    // client binaries.
    BinaryRule {
        kind: TarballKind::Test,
        set: TargetSet::Test,
        also: Some(TargetSet::TestServer),
        with_client: false,
        extra_dirs: &[],
        carries_source: false,
    },
];

fn rule(kind: TarballKind) -> &'static BinaryRule {
    BINARY_TARBALLS
        .iter()
        .find(|r| r.kind == kind)
        .expect("a binary tarball kind")
}

/// One file or tree copied from the source tree into a staged tarball.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeCopy {
    /// Relative to the tree.
    pub from: &'static str,
    /// Relative to `kubernetes/` in the tarball.
    pub to: &'static str,
    /// Upstream copies it unconditionally (its `cp` fails without it); kbuild leaves a
    /// missing one out and says so.
    pub required: bool,
}

const fn copy(from: &'static str, to: &'static str) -> TreeCopy {
    TreeCopy {
        from,
        to,
        required: true,
    }
}

/// kubernetes-manifests.tar.gz's name.
pub const MANIFESTS_TARBALL: &str = "kubernetes-manifests.tar.gz";
/// kube::release::package_kube_manifests_tarball: these files into `kubernetes/gci-trusty/`.
#[rustfmt::skip]
pub const MANIFESTS_FILES: &[TreeCopy] = &[
    copy("cluster/gce/manifests/kube-proxy.manifest", "gci-trusty/kube-proxy.manifest"),
    copy("cluster/gce/manifests/cluster-autoscaler.manifest", "gci-trusty/cluster-autoscaler.manifest"),
    copy("cluster/gce/manifests/etcd.manifest", "gci-trusty/etcd.manifest"),
    copy("cluster/gce/manifests/kube-scheduler.manifest", "gci-trusty/kube-scheduler.manifest"),
    copy("cluster/gce/manifests/kube-apiserver.manifest", "gci-trusty/kube-apiserver.manifest"),
    copy("cluster/gce/manifests/konnectivity-server.yaml", "gci-trusty/konnectivity-server.yaml"),
    copy("cluster/gce/manifests/abac-authz-policy.jsonl", "gci-trusty/abac-authz-policy.jsonl"),
    copy("cluster/gce/manifests/cloud-controller-manager.manifest", "gci-trusty/cloud-controller-manager.manifest"),
    copy("cluster/gce/manifests/kube-controller-manager.manifest", "gci-trusty/kube-controller-manager.manifest"),
    copy("cluster/gce/manifests/kube-addon-manager.yaml", "gci-trusty/kube-addon-manager.yaml"),
    copy("cluster/gce/manifests/glbc.manifest", "gci-trusty/glbc.manifest"),
    copy("cluster/gce/gci/configure-helper.sh", "gci-trusty/gci-configure-helper.sh"),
    copy("cluster/gce/gci/configure-kubeapiserver.sh", "gci-trusty/configure-kubeapiserver.sh"),
    // copied only when present
    TreeCopy { from: "cluster/gce/gci/gke-internal-configure-helper.sh", to: "gci-trusty/gke-internal-configure-helper.sh", required: false },
    copy("cluster/gce/gci/health-monitor.sh", "gci-trusty/health-monitor.sh"),
];
/// kube::release::package_kube_manifests_tarball copies from this directory (a tree without
/// it gets no manifests tarball, said in the notes); files named `internal-*` anywhere under
/// it go flat into `MANIFESTS_DIR`.
pub const MANIFESTS_SRC_DIR: &str = "cluster/gce/manifests";
/// Where the manifests go inside `kubernetes/`.
pub const MANIFESTS_DIR: &str = "gci-trusty";
/// kube::release::package_kube_manifests_tarball: the add-on manifests of these directories
/// (`is_addon_manifest`) are merged into `MANIFESTS_DIR`, keeping their relative paths.
pub const MANIFESTS_ADDON_DIRS: &[&str] = &["cluster/addons", "cluster/gce/addons"];

/// `-name *.yaml -o -name *.yaml.in -o -name *.json`, and not `-name *demo*`.
pub fn is_addon_manifest(name: &str) -> bool {
    (name.ends_with(".yaml") || name.ends_with(".yaml.in") || name.ends_with(".json"))
        && !name.contains("demo")
}

/// kubernetes.tar.gz's name.
pub const FINAL_TARBALL: &str = "kubernetes.tar.gz";
/// kube::release::package_final_tarball: trees and files copied under `kubernetes/`.
pub const FINAL_COPIES: &[TreeCopy] = &[
    copy("cluster", "cluster"),
    copy("hack/lib", "hack/lib"),
    copy("docs", "docs"),
    copy("README.md", "README.md"),
    copy(LICENSES, LICENSES),
];
/// kube::release::package_final_tarball: files it writes itself (path under `kubernetes/`,
/// content). Client and server binaries are not in the final tarball.
pub const FINAL_WRITTEN: &[(&str, &str)] = &[
    (
        "client/README",
        "Client binaries are no longer included in the Kubernetes final tarball.\n\nRun cluster/get-kube-binaries.sh to download client and server binaries.\n",
    ),
    (
        "server/README",
        "Server binary tarballs are no longer included in the Kubernetes final tarball.\n\nRun cluster/get-kube-binaries.sh to download client and server binaries.\n",
    ),
];
/// kube::release::package_final_tarball: the manifests tarball is copied here.
pub const FINAL_MANIFESTS_AT: &str = "server/kubernetes-manifests.tar.gz";
/// kube::release::package_final_tarball: `echo KUBE_GIT_VERSION` into this file.
pub const FINAL_VERSION_FILE: &str = "version";

/// kubernetes-test-portable.tar.gz's name.
pub const TEST_PORTABLE_TARBALL: &str = "kubernetes-test-portable.tar.gz";
/// kube::release::package_test_tarballs: `mkdir -p test/images`, then `cp -fR test/images`
/// and KUBE_TEST_PORTABLE (hack/lib/golang.sh), each under `kubernetes/` at its own path.
/// No binaries, no LICENSES, no version file; cruft is cleaned.
pub const TEST_PORTABLE_COPIES: &[TreeCopy] = &[
    copy("test/images", "test/images"),
    copy("test/e2e/testing-manifests", "test/e2e/testing-manifests"),
    copy("test/kubemark", "test/kubemark"),
    copy("hack/e2e-internal", "hack/e2e-internal"),
    copy("hack/get-build.sh", "hack/get-build.sh"),
    copy("hack/ginkgo-e2e.sh", "hack/ginkgo-e2e.sh"),
    copy("hack/lib", "hack/lib"),
];
/// The directory the portable tarball always holds (its `mkdir -p`), under `kubernetes/`.
pub const TEST_PORTABLE_DIR: &str = "test/images";

/// The note of a run that writes no test tarballs, for the manifest.
pub fn no_test_tarballs_note(why: &str) -> String {
    format!("no {TEST_PORTABLE_TARBALL} or kubernetes-test-<os>-<arch>.tar.gz (upstream's kube::release::package_test_tarballs writes them): {why}")
}

/// The note of a release set made with `--no-images`.
pub const NO_IMAGES_NOTE: &str = "no server images (--no-images): upstream's quick-release also writes release-images/<arch>/<binary>.tar, and <binary>.tar and <binary>.docker_tag in kubernetes/server/bin of each server tarball (kube::release::build_server_images)";

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
        dirs.extend(
            rule(self.kind)
                .extra_dirs
                .iter()
                .map(|d| format!("{TOP}/{d}")),
        );
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
        rule(self.kind).carries_source
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

/// Appends the components of `more` that `to` does not hold yet.
fn add_new(to: &mut Vec<&'static Component>, more: Vec<&'static Component>) {
    for c in more {
        if !to.contains(&c) {
            to.push(c);
        }
    }
}

/// The binary tarballs for `platforms`, given which components the tree has: client for
/// every platform, node for node platforms, server for server platforms, and with `tests`
/// test for test platforms. A tarball whose set has no component in the tree is not made.
pub fn layouts(
    platforms: &[Platform],
    has: &dyn Fn(&Component) -> bool,
    tests: bool,
) -> Vec<Layout> {
    let client = present(TargetSet::Client, has);
    let mut out = Vec::new();
    for &platform in platforms {
        for rule in BINARY_TARBALLS {
            if !rule.set.platforms().contains(&platform)
                || (rule.kind == TarballKind::Test && !tests)
            {
                continue;
            }
            let mut components = present(rule.set, has);
            if let Some(also) = rule.also.filter(|s| s.platforms().contains(&platform)) {
                add_new(&mut components, present(also, has));
            }
            if components.is_empty() {
                continue;
            }
            if rule.with_client {
                add_new(&mut components, client.clone());
            }
            out.push(Layout {
                kind: rule.kind,
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

impl ReleaseJob {
    /// The job's name in logs, progress and the plan: `quick-release-server+node+client`.
    pub fn job_name(&self) -> String {
        format!("quick-release-{}", self.name)
    }
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

/// The binary sets, built together per platform.
const BINARY_SETS: &[TargetSet] = &[TargetSet::Server, TargetSet::Node, TargetSet::Client];
/// The test sets (hack/make-rules/cross.sh makes them apart from the others): jobs of their
/// own, so the heavy e2e.test link can run on another engine.
const TEST_SETS: &[TargetSet] = &[TargetSet::Test, TargetSet::TestServer];

/// Groups the platforms by the target sets that build for them, one job per group, as
/// upstream's cross build builds each set for its own platform list; with `tests`, the test
/// sets are grouped the same way into jobs of their own.
pub fn plan(platforms: &[Platform], has: &dyn Fn(&Component) -> bool, tests: bool) -> ReleasePlan {
    let mut groups = vec![BINARY_SETS];
    if tests {
        groups.push(TEST_SETS);
    }
    let mut jobs: Vec<ReleaseJob> = Vec::new();
    let mut skipped = Vec::new();
    for order in &groups {
        group_jobs(order, platforms, has, &mut jobs, &mut skipped);
    }
    let missing = super::component::COMPONENTS
        .iter()
        .filter(|c| c.sets.iter().any(|s| groups.iter().any(|g| g.contains(s))))
        .filter(|c| !has(c))
        .collect();
    ReleasePlan {
        jobs,
        skipped,
        missing,
    }
}

/// One group of sets' jobs for `platforms`, and the (set, platform) pairs it does not build.
fn group_jobs(
    order: &[TargetSet],
    platforms: &[Platform],
    has: &dyn Fn(&Component) -> bool,
    jobs: &mut Vec<ReleaseJob>,
    skipped: &mut Vec<(TargetSet, Platform)>,
) {
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
            add_new(&mut components, present(*set, has));
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
    fn src_exclusions_follow_package_src_tarball() {
        // find -mindepth 1 -maxdepth 1 ! ( -path _* -o .git* -o .config* -o .gsutil* ) -prune
        for out in [
            "_output",
            "_artifacts",
            ".git",
            ".github",
            ".gitignore",
            ".config",
            ".gsutil",
        ] {
            assert!(src_excludes_top(out), "{out}");
        }
        for kept in ["cmd", ".go-version", "go.mod", "hack", ".golangci.yaml"] {
            assert!(!src_excludes_top(kept), "{kept}");
        }
    }

    #[test]
    fn cruft_follows_clean_cruft() {
        for cruft in ["main.go~", "#main.go#", ".DS_Store"] {
            assert!(is_cruft(cruft), "{cruft}");
        }
        for kept in ["main.go", "#notes", "DS"] {
            assert!(!is_cruft(kept), "{kept}");
        }
    }

    #[test]
    fn names_follow_upstream() {
        let got: Vec<String> = layouts(&[p("linux/amd64")], &all, false)
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
        let l = &layouts(&[p("darwin/arm64")], &all, false)[0];
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
        assert_eq!(layouts(&[p("darwin/amd64")], &all, false).len(), 1);
    }

    #[test]
    fn windows_node_tarball_has_exe_names_and_client_binaries() {
        let ls = layouts(&[p("windows/amd64")], &all, false);
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
        let ls = layouts(&[p("linux/arm64")], &mini, false);
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
            false,
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

    /// mini-kube with its test targets: every test target but e2e_node.test.
    fn mini_with_tests(c: &Component) -> bool {
        mini(c) || (c.sets.contains(&TargetSet::Test) || c.name == "kubemark")
    }

    #[test]
    fn test_tarballs_follow_package_test_platform_tarballs() {
        let platforms = [
            p("linux/amd64"),
            p("darwin/arm64"),
            p("windows/amd64"),
            p("linux/386"),
        ];
        let ls: Vec<Layout> = layouts(&platforms, &all, true)
            .into_iter()
            .filter(|l| l.kind == TarballKind::Test)
            .collect();
        let names: Vec<String> = ls.iter().map(Layout::file_name).collect();
        // linux/386 is no test platform.
        assert_eq!(
            names,
            [
                "kubernetes-test-linux-amd64.tar.gz",
                "kubernetes-test-darwin-arm64.tar.gz",
                "kubernetes-test-windows-amd64.tar.gz"
            ]
        );
        let paths = |l: &Layout| -> Vec<String> {
            let mut v: Vec<String> = l.binaries().into_iter().map(|(p, _)| p).collect();
            v.sort();
            v
        };
        // A server platform: KUBE_TEST_BINARIES and KUBE_TEST_SERVER_BINARIES, no client ones.
        assert_eq!(
            paths(&ls[0]),
            [
                "kubernetes/test/bin/e2e.test",
                "kubernetes/test/bin/e2e_node.test",
                "kubernetes/test/bin/ginkgo",
                "kubernetes/test/bin/go-runner",
                "kubernetes/test/bin/kubemark"
            ]
        );
        assert_eq!(
            ls[0].dirs(),
            ["kubernetes", "kubernetes/test", "kubernetes/test/bin"]
        );
        assert!(!ls[0].carries_source());
        assert_eq!(
            paths(&ls[1]),
            [
                "kubernetes/test/bin/e2e.test",
                "kubernetes/test/bin/ginkgo",
                "kubernetes/test/bin/go-runner"
            ]
        );
        // KUBE_TEST_BINARIES_WIN.
        assert_eq!(
            paths(&ls[2]),
            [
                "kubernetes/test/bin/e2e.test.exe",
                "kubernetes/test/bin/ginkgo.exe",
                "kubernetes/test/bin/go-runner.exe"
            ]
        );
        assert!(layouts(&platforms, &all, false)
            .iter()
            .all(|l| l.kind != TarballKind::Test));
    }

    #[test]
    fn test_targets_are_jobs_of_their_own_and_missing_ones_are_named() {
        let platforms = [p("linux/amd64"), p("darwin/arm64")];
        let plan = plan(&platforms, &mini_with_tests, true);
        let jobs: Vec<(String, Vec<&str>, Vec<String>)> = plan
            .jobs
            .iter()
            .map(|j| {
                (
                    j.job_name(),
                    j.components.iter().map(|c| c.target).collect(),
                    j.platforms.iter().map(|p| p.to_string()).collect(),
                )
            })
            .collect();
        assert_eq!(jobs[0].0, "quick-release-server+node+client");
        assert_eq!(
            jobs[2],
            (
                "quick-release-test+test-server".to_string(),
                vec![
                    "ginkgo",
                    "test/e2e/e2e.test",
                    "test/conformance/image/go-runner",
                    "cmd/kubemark"
                ],
                vec!["linux/amd64".to_string()]
            )
        );
        assert_eq!(jobs[3].0, "quick-release-test");
        assert_eq!(jobs[3].2, ["darwin/arm64"]);
        assert!(plan
            .skipped
            .contains(&(TargetSet::TestServer, p("darwin/arm64"))));
        let missing: Vec<&str> = plan.missing.iter().map(|c| c.name).collect();
        assert!(missing.contains(&"e2e_node.test"), "{missing:?}");
        // Without test tarballs, neither test jobs nor missing test targets.
        let plan = super::plan(&platforms, &mini, false);
        assert_eq!(plan.jobs.len(), 2);
        assert!(plan.missing.iter().all(
            |c| !c.sets.contains(&TargetSet::Test) && !c.sets.contains(&TargetSet::TestServer)
        ));
    }

    #[test]
    fn portable_tarball_copies_test_images_and_kube_test_portable() {
        let from: Vec<&str> = TEST_PORTABLE_COPIES.iter().map(|c| c.from).collect();
        assert_eq!(
            from,
            [
                "test/images",
                "test/e2e/testing-manifests",
                "test/kubemark",
                "hack/e2e-internal",
                "hack/get-build.sh",
                "hack/ginkgo-e2e.sh",
                "hack/lib"
            ]
        );
        assert!(TEST_PORTABLE_COPIES
            .iter()
            .all(|c| c.from == c.to && c.required));
        assert!(no_test_tarballs_note("--no-test-tarballs").contains(TEST_PORTABLE_TARBALL));
    }
}
