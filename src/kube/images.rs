//! Upstream's server images (build/common.sh, build/lib/release.sh): which binaries get an
//! image and on which base, the bases a tree pins, the names and tags, and the file
//! capability kube-apiserver's setcap stage gives its binary. Pure rules, no I/O.

use std::collections::BTreeMap;

/// Where the binary goes in its image (build/server-image/Dockerfile: `COPY` to here).
pub const BIN_DIR: &str = "usr/local/bin";
/// Where the image tars go under the output directory (upstream: _output/release-images).
pub const RELEASE_IMAGES: &str = "release-images";
/// The registry upstream names its images under (kube::release::create_docker_images_for_server).
pub const RELEASE_REGISTRY: &str = "registry.k8s.io";
/// build/common.sh's default for `KUBE_BASE_IMAGE_REGISTRY`.
pub const DEFAULT_BASE_REGISTRY: &str = "registry.k8s.io/build-image";
/// Upstream master's pinned versions (late 2025), for a tree whose common.sh pins none.
pub const DEFAULT_GO_RUNNER_VERSION: &str = "v2.4.0-go1.25.5-bookworm.0";
pub const DEFAULT_DISTROLESS_IPTABLES_VERSION: &str = "v0.8.6";

/// The two base images upstream builds server images on.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Base {
    /// For statically linked commands (`KUBE_GORUNNER_IMAGE`); its entrypoint is /go-runner.
    GoRunner,
    /// For dynamically linked ones and kube-proxy (`__default_dynamic_base_image`).
    DistrolessIptables,
}

impl Base {
    pub const ALL: [Base; 2] = [Base::GoRunner, Base::DistrolessIptables];

    /// The name `--base-image` and recipes use, which is also the image's repository name.
    pub fn name(self) -> &'static str {
        match self {
            Base::GoRunner => "go-runner",
            Base::DistrolessIptables => "distroless-iptables",
        }
    }

    pub fn parse(text: &str) -> Option<Base> {
        Base::ALL.into_iter().find(|b| b.name() == text)
    }
}

/// One image upstream builds: the binary and the variable that overrides its base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageBinary {
    pub binary: &'static str,
    /// `KUBE_<BINARY>_BASE_IMAGE` in build/common.sh.
    pub base_var: &'static str,
    /// Whether upstream's image gives the binary `cap_net_bind_service=+ep`
    /// (build/server-image/kube-apiserver/Dockerfile's setcap stage).
    pub net_bind: bool,
}

/// kube::build::get_docker_wrapped_binaries (build/common.sh), in its order.
pub const IMAGE_BINARIES: &[ImageBinary] = &[
    ImageBinary {
        binary: "kube-apiserver",
        base_var: "KUBE_APISERVER_BASE_IMAGE",
        net_bind: true,
    },
    ImageBinary {
        binary: "kube-controller-manager",
        base_var: "KUBE_CONTROLLER_MANAGER_BASE_IMAGE",
        net_bind: false,
    },
    ImageBinary {
        binary: "kube-proxy",
        base_var: "KUBE_PROXY_BASE_IMAGE",
        net_bind: false,
    },
    ImageBinary {
        binary: "kube-scheduler",
        base_var: "KUBE_SCHEDULER_BASE_IMAGE",
        net_bind: false,
    },
    ImageBinary {
        binary: "kubectl",
        base_var: "KUBECTL_BASE_IMAGE",
        net_bind: false,
    },
];

/// The image of `binary`, if upstream builds one.
pub fn image_binary(binary: &str) -> Option<&'static ImageBinary> {
    IMAGE_BINARIES.iter().find(|b| b.binary == binary)
}

/// What a tree's build/common.sh pins for the bases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreePins {
    pub registry: String,
    pub go_runner_version: String,
    /// None for an old tree without distroless-iptables (kube-proxy then uses go-runner).
    pub distroless_iptables_version: Option<String>,
    /// Whether common.sh was read (false: upstream master's facts are assumed).
    pub from_tree: bool,
}

impl TreePins {
    /// Upstream master's pins, for a tree without build/common.sh.
    pub fn upstream() -> TreePins {
        TreePins {
            registry: DEFAULT_BASE_REGISTRY.to_string(),
            go_runner_version: DEFAULT_GO_RUNNER_VERSION.to_string(),
            distroless_iptables_version: Some(DEFAULT_DISTROLESS_IPTABLES_VERSION.to_string()),
            from_tree: false,
        }
    }

    /// Reads build/common.sh's lines `readonly __default_go_runner_version=...`,
    /// `readonly __default_distroless_iptables_version=...` and
    /// `KUBE_BASE_IMAGE_REGISTRY="${KUBE_BASE_IMAGE_REGISTRY:-...}"`.
    pub fn parse(common_sh: &str) -> TreePins {
        let mut pins = TreePins {
            distroless_iptables_version: None,
            from_tree: true,
            ..TreePins::upstream()
        };
        for line in common_sh.lines().map(str::trim) {
            if line.starts_with('#') {
                continue;
            }
            let line = line.strip_prefix("readonly ").unwrap_or(line);
            if let Some(v) = assigned(line, "__default_go_runner_version") {
                pins.go_runner_version = v;
            } else if let Some(v) = assigned(line, "__default_distroless_iptables_version") {
                pins.distroless_iptables_version = Some(v);
            } else if let Some(v) = line
                .strip_prefix("KUBE_BASE_IMAGE_REGISTRY=\"${KUBE_BASE_IMAGE_REGISTRY:-")
                .and_then(|rest| rest.split_once('}'))
            {
                pins.registry = v.0.to_string();
            }
        }
        pins
    }

    /// The default base of `binary` (build/common.sh): kube-proxy on the dynamic base, and any
    /// command not statically linked (`__default_base_image` asks
    /// kube::golang::is_statically_linked, KUBE_STATIC_LIBRARIES); the others on go-runner.
    pub fn base_of(&self, binary: &str) -> Base {
        let is_static = super::component::COMPONENTS
            .iter()
            .find(|c| c.name == binary)
            .is_none_or(|c| c.is_static);
        match (binary, is_static, &self.distroless_iptables_version) {
            (_, _, None) => Base::GoRunner,
            ("kube-proxy", _, _) | (_, false, _) => Base::DistrolessIptables,
            _ => Base::GoRunner,
        }
    }

    /// The reference the tree pins for `base`, under `registry`.
    pub fn reference(&self, base: Base, registry: &str) -> String {
        let version = match base {
            Base::GoRunner => &self.go_runner_version,
            Base::DistrolessIptables => self
                .distroless_iptables_version
                .as_ref()
                .unwrap_or(&self.go_runner_version),
        };
        format!("{registry}/{}:{version}", base.name())
    }
}

/// `NAME=value` or `NAME="value"`, unquoted.
fn assigned(line: &str, name: &str) -> Option<String> {
    let value = line.strip_prefix(name)?.strip_prefix('=')?;
    Some(value.trim_matches('"').trim_matches('\'').to_string())
}

/// What overrides the tree's bases, by key: `go-runner`, `distroless-iptables` (from
/// `--base-image BASE=REF` or `KUBE_GORUNNER_IMAGE`) or a binary's name (from
/// `KUBE_<BINARY>_BASE_IMAGE`), each optionally `@<arch>` for one architecture only; and the
/// registry of the tree's pinned bases (`KUBE_BASE_IMAGE_REGISTRY`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BaseOverrides {
    pub refs: BTreeMap<String, String>,
    pub registry: Option<String>,
}

/// Whether `key` names something `--base-image` can set (`go-runner`, `kubectl@arm64`).
pub fn valid_key(key: &str) -> bool {
    let name = key.split_once('@').map_or(key, |(n, _)| n);
    Base::parse(name).is_some() || image_binary(name).is_some()
}

/// The base image reference of `binary` for `arch`: its own variable, then its base's
/// override (the `@arch` ones first), then what the tree pins (under the overridden registry).
pub fn base_reference(
    binary: &str,
    arch: &str,
    pins: &TreePins,
    overrides: &BaseOverrides,
) -> (Base, String) {
    let base = pins.base_of(binary);
    for key in [
        format!("{binary}@{arch}"),
        binary.to_string(),
        format!("{}@{arch}", base.name()),
        base.name().to_string(),
    ] {
        if let Some(r) = overrides.refs.get(&key) {
            return (base, r.clone());
        }
    }
    let registry = overrides.registry.as_deref().unwrap_or(&pins.registry);
    (base, pins.reference(base, registry))
}

/// `${KUBE_GIT_VERSION/+/_}`: the first `+` becomes `_` (a docker tag has no `+`).
pub fn docker_tag(git_version: &str) -> String {
    git_version.replacen('+', "_", 1)
}

/// `registry.k8s.io/<binary>-<arch>:<tag>` (kube::release::create_docker_images_for_server).
pub fn image_name(binary: &str, arch: &str, tag: &str) -> String {
    format!("{RELEASE_REGISTRY}/{binary}-{arch}:{tag}")
}

/// The second name `${KUBE_DOCKER_REGISTRY}/<binary>-<arch>:${KUBE_DOCKER_IMAGE_TAG}`, when
/// either is set and the result differs from the first.
pub fn second_name(
    binary: &str,
    arch: &str,
    tag: &str,
    registry: Option<&str>,
    image_tag: Option<&str>,
) -> Option<String> {
    if registry.is_none() && image_tag.is_none() {
        return None;
    }
    let name = format!(
        "{}/{binary}-{arch}:{}",
        registry.unwrap_or(RELEASE_REGISTRY),
        image_tag.unwrap_or(tag)
    );
    (name != image_name(binary, arch, tag)).then_some(name)
}

/// The image tar's file name (`<binary>.tar`) and its tag file's (`<binary>.docker_tag`).
pub fn tar_name(binary: &str) -> String {
    format!("{binary}.tar")
}

pub fn tag_file_name(binary: &str) -> String {
    format!("{binary}.docker_tag")
}

/// `CAP_NET_BIND_SERVICE` (linux/capability.h).
const CAP_NET_BIND_SERVICE: u32 = 10;
/// `VFS_CAP_REVISION_2` (linux/capability.h): 64-bit capability sets, no root uid.
const VFS_CAP_REVISION_2: u32 = 0x0200_0000;
/// `VFS_CAP_FLAGS_EFFECTIVE`: the `e` of `+ep`.
const VFS_CAP_FLAGS_EFFECTIVE: u32 = 0x0000_0001;

/// The value of the `security.capability` xattr that `setcap cap_net_bind_service=+ep`
/// writes: `struct vfs_cap_data` revision 2, little-endian: magic_etc, then permitted and
/// inheritable for the low 32 capabilities, then for the high 32.
pub fn net_bind_capability() -> [u8; 20] {
    let words = [
        VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE,
        1 << CAP_NET_BIND_SERVICE,
        0,
        0,
        0,
    ];
    let mut out = [0u8; 20];
    for (i, w) in words.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMON_SH: &str = r#"
readonly KUBE_BASE_IMAGE_REGISTRY="${KUBE_BASE_IMAGE_REGISTRY:-registry.k8s.io/build-image}"
# readonly __default_go_runner_version=v0.0.0
readonly __default_distroless_iptables_version=v0.8.6
readonly __default_go_runner_version=v2.4.0-go1.25.5-bookworm.0
readonly __default_setcap_version=bookworm-v1.0.6
"#;

    #[test]
    fn the_tree_pins_are_read_from_common_sh() {
        let pins = TreePins::parse(COMMON_SH);
        assert_eq!(pins.go_runner_version, "v2.4.0-go1.25.5-bookworm.0");
        assert_eq!(pins.distroless_iptables_version.as_deref(), Some("v0.8.6"));
        assert_eq!(pins.registry, "registry.k8s.io/build-image");
        let none = BaseOverrides::default();
        assert_eq!(
            base_reference("kube-proxy", "amd64", &pins, &none),
            (
                Base::DistrolessIptables,
                "registry.k8s.io/build-image/distroless-iptables:v0.8.6".to_string()
            )
        );
        assert_eq!(
            base_reference("kube-apiserver", "amd64", &pins, &none).1,
            "registry.k8s.io/build-image/go-runner:v2.4.0-go1.25.5-bookworm.0"
        );
    }

    #[test]
    fn an_old_tree_without_distroless_puts_kube_proxy_on_go_runner() {
        let pins = TreePins::parse("readonly __default_go_runner_version=v2.3.1-go1.20\n");
        assert_eq!(pins.base_of("kube-proxy"), Base::GoRunner);
    }

    #[test]
    fn overrides_go_binary_then_base_then_registry() {
        let pins = TreePins::parse(COMMON_SH);
        let mut o = BaseOverrides {
            registry: Some("example.com/mirror".into()),
            ..Default::default()
        };
        assert_eq!(
            base_reference("kubectl", "amd64", &pins, &o).1,
            "example.com/mirror/go-runner:v2.4.0-go1.25.5-bookworm.0"
        );
        o.refs.insert("go-runner".into(), "local/base:1".into());
        o.refs
            .insert("go-runner@arm64".into(), "local/base-arm64:1".into());
        let of = |binary, arch| base_reference(binary, arch, &pins, &o).1;
        assert_eq!(of("kubectl", "amd64"), "local/base:1");
        assert_eq!(of("kubectl", "arm64"), "local/base-arm64:1");
        o.refs.insert("kubectl".into(), "local/kubectl:1".into());
        let of = |binary, arch| base_reference(binary, arch, &pins, &o).1;
        assert_eq!(of("kubectl", "arm64"), "local/kubectl:1");
        assert_eq!(of("kube-scheduler", "amd64"), "local/base:1");
        assert!(valid_key("distroless-iptables@arm64") && valid_key("kube-proxy"));
        assert!(!valid_key("go_runner"));
    }

    #[test]
    fn names_and_tags_follow_upstream() {
        // A released version and a dirty one (hack/lib/version.sh forms).
        assert_eq!(docker_tag("v1.34.2"), "v1.34.2");
        assert_eq!(
            docker_tag("v1.35.0-alpha.1.12+abcdef0123456-dirty"),
            "v1.35.0-alpha.1.12_abcdef0123456-dirty"
        );
        assert_eq!(docker_tag("v1+a+b"), "v1_a+b");
        assert_eq!(
            image_name("kube-apiserver", "arm64", "v1.34.2"),
            "registry.k8s.io/kube-apiserver-arm64:v1.34.2"
        );
        assert_eq!(second_name("kubectl", "amd64", "v1", None, None), None);
        assert_eq!(
            second_name("kubectl", "amd64", "v1", Some("registry.k8s.io"), None),
            None
        );
        assert_eq!(
            second_name("kubectl", "amd64", "v1", Some("me.io/k"), Some("dev")).as_deref(),
            Some("me.io/k/kubectl-amd64:dev")
        );
    }

    #[test]
    fn the_capability_is_setcaps_vfs_cap_data() {
        // getfattr -n security.capability -e hex on a `setcap cap_net_bind_service=+ep` file.
        assert_eq!(
            hex::encode(net_bind_capability()),
            "0100000200040000000000000000000000000000"
        );
    }
}
