//! Where Podman's Docker-compatible API (`podman system service`) behaves differently, and
//! what to tell the user when its container runtime refuses a container. Podman serves the
//! same Engine API kbuild uses, so builds need nothing else; these are the known failures
//! of its defaults on some machines.

/// A hint for an OCI runtime failure that Podman's configuration causes, from the engine's
/// error text; None when the text is not one of them.
pub fn runtime_hint(error: &str) -> Option<String> {
    if error.contains("error setting rlimit") || error.contains("setting rlimits") {
        // Podman's default_ulimits ask for nofile=1048576, above a smaller hard limit of the
        // engine's own process, and the runtime cannot raise it.
        return Some(
            "the engine asks for a higher open-files limit than it may set (Podman's default_ulimits exceed this machine's hard limit, `ulimit -Hn`): \
             in the containers.conf the Podman service reads (CONTAINERS_CONF, /etc/containers/containers.conf or ~/.config/containers/containers.conf) \
             set `default_ulimits = []` under [containers], restart `podman system service`, and run again"
                .to_string(),
        );
    }
    if error.contains("cgroups in hybrid mode not supported") {
        return Some(
            "crun cannot run containers on this machine's hybrid cgroups: set `runtime = \"runc\"` under [engine] in the Podman service's containers.conf \
             (CONTAINERS_CONF) and install runc, or boot with unified cgroups (cgroup v2); then restart `podman system service`"
                .to_string(),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rlimit_failure_points_at_default_ulimits() {
        let said = "Docker responded with status code 409: preparing container 96be for attach: runc: runc create failed: unable to start container process: error during container init: error setting rlimits for ready process: error setting rlimit type 7: operation not permitted: OCI permission denied";
        let hint = runtime_hint(said).unwrap();
        assert!(hint.contains("default_ulimits = []"), "{hint}");
        assert!(hint.contains("CONTAINERS_CONF"), "{hint}");
    }

    #[test]
    fn crun_on_hybrid_cgroups_points_at_runc() {
        let said = "crun: cgroups in hybrid mode not supported, drop all controllers from cgroupv2: OCI runtime error";
        assert!(runtime_hint(said).unwrap().contains("runtime = \"runc\""));
    }

    #[test]
    fn other_failures_get_no_podman_hint() {
        assert_eq!(runtime_hint("no such image"), None);
    }
}
