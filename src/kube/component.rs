//! Components (the binaries upstream builds) and the target sets they belong to
//! (hack/lib/golang.sh: server, node, client, test and server test targets).

use std::fmt;
use std::path::Path;

use super::platform::{self, Platform};
use crate::error::{Error, Result};

/// Upstream's target sets; each set has its own platform list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetSet {
    Client,
    Node,
    Server,
    /// kube::golang::test_targets (KUBE_TEST_TARGETS).
    Test,
    /// kube::golang::server_test_targets (KUBE_TEST_SERVER_TARGETS): built for the server
    /// platforms only.
    #[serde(rename = "test-server")]
    TestServer,
}

impl TargetSet {
    pub fn platforms(self) -> &'static [Platform] {
        match self {
            TargetSet::Client => platform::CLIENT,
            TargetSet::Node => platform::NODE,
            TargetSet::Server => platform::SERVER,
            TargetSet::Test => platform::TEST,
            TargetSet::TestServer => platform::SERVER,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            TargetSet::Client => "client",
            TargetSet::Node => "node",
            TargetSet::Server => "server",
            TargetSet::Test => "test",
            TargetSet::TestServer => "test-server",
        }
    }

    /// A test set: its binaries go in the test tarballs.
    pub fn is_test(self) -> bool {
        matches!(self, TargetSet::Test | TargetSet::TestServer)
    }

    /// The components of this set, in upstream's order.
    pub fn components(self) -> impl Iterator<Item = &'static Component> {
        COMPONENTS.iter().filter(move |c| c.sets.contains(&self))
    }
}

/// One binary upstream builds.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Component {
    /// The binary's name, e.g. `kubectl`.
    pub name: &'static str,
    /// The target as upstream's make takes it in `WHAT=`: a package directory, an alias
    /// (`ginkgo`) or `<dir>/<name>.test` for a `go test -c` binary.
    pub target: &'static str,
    /// The Go package directory under the tree root: whether the tree has the component.
    pub dir: &'static str,
    /// The target sets that build it.
    pub sets: &'static [TargetSet],
    /// Built with CGO_ENABLED=0 (KUBE_STATIC_LIBRARIES).
    pub is_static: bool,
}

const fn c(
    name: &'static str,
    target: &'static str,
    sets: &'static [TargetSet],
    is_static: bool,
) -> Component {
    Component {
        name,
        target,
        dir: target,
        sets,
        is_static,
    }
}

/// A test target whose `WHAT=` word is not its directory: the `ginkgo` alias
/// (kube::golang::best_guess_go_targets) and `<dir>/<name>.test` targets, which
/// kube::golang::build_binaries_for_platform builds with `go test -c`.
const fn t(
    name: &'static str,
    target: &'static str,
    dir: &'static str,
    sets: &'static [TargetSet],
    is_static: bool,
) -> Component {
    Component {
        name,
        target,
        dir,
        sets,
        is_static,
    }
}

use TargetSet::{Client, Node, Server, Test, TestServer};

/// Every component, in the order upstream lists server, node and client targets.
pub const COMPONENTS: &[Component] = &[
    c("kube-proxy", "cmd/kube-proxy", &[Node, Server], true),
    c("kube-apiserver", "cmd/kube-apiserver", &[Server], true),
    c(
        "kube-controller-manager",
        "cmd/kube-controller-manager",
        &[Server],
        true,
    ),
    c("kubelet", "cmd/kubelet", &[Node, Server], false),
    c("kubeadm", "cmd/kubeadm", &[Node, Server], true),
    c("kube-scheduler", "cmd/kube-scheduler", &[Server], true),
    c(
        "kube-log-runner",
        "staging/src/k8s.io/component-base/logs/kube-log-runner",
        &[Node, Server],
        true,
    ),
    c(
        "kube-aggregator",
        "staging/src/k8s.io/kube-aggregator",
        &[Server],
        true,
    ),
    c(
        "apiextensions-apiserver",
        "staging/src/k8s.io/apiextensions-apiserver",
        &[Server],
        true,
    ),
    c("mounter", "cluster/gce/gci/mounter", &[Server], true),
    c("kubectl", "cmd/kubectl", &[Client], true),
    c("kubectl-convert", "cmd/kubectl-convert", &[Client], true),
    // kube::golang::test_targets, then kube::golang::server_test_targets (ginkgo is in both;
    // upstream adds e2e_node.test only when it builds on Linux, as kbuild's engines do).
    t(
        "ginkgo",
        "ginkgo",
        "vendor/github.com/onsi/ginkgo/v2/ginkgo",
        &[Test, TestServer],
        false,
    ),
    t("e2e.test", "test/e2e/e2e.test", "test/e2e", &[Test], false),
    c(
        "go-runner",
        "test/conformance/image/go-runner",
        &[Test],
        false,
    ),
    c("kubemark", "cmd/kubemark", &[TestServer], true),
    t(
        "e2e_node.test",
        "test/e2e_node/e2e_node.test",
        "test/e2e_node",
        &[TestServer],
        false,
    ),
];

impl Component {
    /// Looks a component up by binary name (or by its `cmd/<name>` target), refusing
    /// unknown names with the list of valid ones and the closest match.
    pub fn parse(text: &str) -> Result<&'static Component> {
        let name = text.trim().trim_end_matches('/');
        if let Some(found) = COMPONENTS
            .iter()
            .find(|c| c.name == name || c.target == name || c.dir == name)
        {
            return Ok(found);
        }
        let names: Vec<&str> = COMPONENTS.iter().map(|c| c.name).collect();
        let mut hint = format!("valid components are: {}", names.join(", "));
        if let Some(close) = crate::suggest::closest(name, names.iter().copied()) {
            hint = format!("did you mean \"{close}\"? {hint}");
        }
        Err(Error::usage(format!("unknown component \"{name}\"")).with_hint(hint))
    }

    /// Every platform some set of this component builds for, in upstream's client order.
    pub fn platforms(&self) -> Vec<Platform> {
        Platform::all()
            .iter()
            .copied()
            .filter(|p| self.sets.iter().any(|s| s.platforms().contains(p)))
            .collect()
    }

    pub fn supports(&self, platform: Platform) -> bool {
        self.sets.iter().any(|s| s.platforms().contains(&platform))
    }

    /// The file name of the binary on `platform` (`kubectl.exe` on windows).
    pub fn file_name(&self, platform: Platform) -> String {
        format!("{}{}", self.name, platform.exe_suffix())
    }

    /// Whether the tree at `root` has this component's source directory.
    pub fn exists_in(&self, root: &Path) -> bool {
        root.join(self.dir).is_dir()
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// The name of a `kbuild build` job: its components, `kubectl+kubeadm`.
pub fn build_job_name(components: &[&Component]) -> String {
    let names: Vec<&str> = components.iter().map(|c| c.name).collect();
    names.join("+")
}

/// The name of `kbuild extension`'s one job.
pub const EXTENSION_JOB: &str = "extension";

/// Checks every (component, platform) pair, refusing the first pair upstream does not
/// build with the platforms that component does support.
pub fn check_pairs(components: &[&Component], platforms: &[Platform]) -> Result<()> {
    for component in components {
        for platform in platforms {
            if !component.supports(*platform) {
                return Err(Error::usage(format!(
                    "upstream does not build {component} for {platform}"
                ))
                .with_hint(format!(
                    "{component} builds for: {}",
                    platform::list(&component.platforms())
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_up_by_name_and_target() {
        assert_eq!(Component::parse("kubectl").unwrap().target, "cmd/kubectl");
        assert_eq!(Component::parse("cmd/kubeadm").unwrap().name, "kubeadm");
    }

    #[test]
    fn unknown_component_suggests_closest() {
        let err = Component::parse("kubctl").unwrap_err();
        let hint = err.hint.unwrap();
        assert!(hint.starts_with("did you mean \"kubectl\"?"), "{hint}");
        assert!(hint.contains("kube-apiserver"));
    }

    #[test]
    fn kubelet_is_not_built_for_darwin() {
        let kubelet = Component::parse("kubelet").unwrap();
        let darwin = Platform::parse("darwin/arm64").unwrap();
        let err = check_pairs(&[kubelet], &[darwin]).unwrap_err();
        assert!(err.message.contains("kubelet") && err.message.contains("darwin/arm64"));
        assert!(err.hint.unwrap().contains("windows/amd64"));
    }

    #[test]
    fn kubectl_builds_everywhere_clients_run() {
        let kubectl = Component::parse("kubectl").unwrap();
        assert_eq!(kubectl.platforms().len(), platform::CLIENT.len());
        assert!(!Component::parse("kubelet").unwrap().is_static);
    }

    #[test]
    fn set_membership_matches_upstream() {
        let names = |s: TargetSet| s.components().map(|c| c.name).collect::<Vec<_>>();
        assert_eq!(names(TargetSet::Client), ["kubectl", "kubectl-convert"]);
        assert_eq!(
            names(TargetSet::Node),
            ["kube-proxy", "kubelet", "kubeadm", "kube-log-runner"]
        );
        assert_eq!(names(TargetSet::Server).len(), 10);
        assert_eq!(names(TargetSet::Test), ["ginkgo", "e2e.test", "go-runner"]);
        assert_eq!(
            names(TargetSet::TestServer),
            ["ginkgo", "kubemark", "e2e_node.test"]
        );
    }

    #[test]
    fn test_targets_name_their_make_word_and_directory() {
        let e2e = Component::parse("e2e.test").unwrap();
        assert_eq!((e2e.target, e2e.dir), ("test/e2e/e2e.test", "test/e2e"));
        let windows = Platform::parse("windows/amd64").unwrap();
        assert_eq!(e2e.file_name(windows), "e2e.test.exe");
        let ginkgo = Component::parse("vendor/github.com/onsi/ginkgo/v2/ginkgo").unwrap();
        assert_eq!((ginkgo.name, ginkgo.target), ("ginkgo", "ginkgo"));
        let darwin = Platform::parse("darwin/arm64").unwrap();
        assert!(Component::parse("go-runner").unwrap().supports(darwin));
        // Server test targets build for the server platforms only.
        for server_only in ["kubemark", "e2e_node.test"] {
            let c = Component::parse(server_only).unwrap();
            assert!(!c.supports(darwin) && !c.supports(windows), "{server_only}");
        }
    }
}
