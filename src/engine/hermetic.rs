//! Whether a tree builds without the network, as upstream builds (GOPROXY=off): it vendors
//! its dependencies (a `vendor/` directory, as kubernetes/kubernetes does), or its go.mod
//! requires nothing that is not replaced by a directory inside the tree.
//!
//! Build containers get no network by default. A tree that is not hermetic would fail
//! deep inside `go build` with a module download error, so kbuild stops before starting
//! and asks for `--network` (which also lifts GOPROXY=off).

use std::path::Path;

/// Why a tree needs the network, or None when it builds offline.
pub fn needs_network(root: &Path) -> Option<String> {
    if root.join("vendor").is_dir() {
        return None;
    }
    let go_mod = std::fs::read_to_string(root.join("go.mod")).ok()?;
    let missing = external_requires(&go_mod);
    if missing.is_empty() {
        None
    } else {
        let shown: Vec<_> = missing.iter().take(3).map(String::as_str).collect();
        let more = if missing.len() > 3 {
            format!(" and {} more", missing.len() - 3)
        } else {
            String::new()
        };
        Some(format!(
            "{} has no vendor/ directory and its go.mod requires modules from outside the tree ({}{more})",
            root.display(),
            shown.join(", ")
        ))
    }
}

/// Required module paths without a `replace` pointing at a local directory.
fn external_requires(go_mod: &str) -> Vec<String> {
    let mut requires = Vec::new();
    let mut local = Vec::new();
    let mut block: Option<&str> = None;
    for raw in go_mod.lines() {
        let line = raw.split("//").next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let (verb, rest) = match block {
            Some(_) if line == ")" => {
                block = None;
                continue;
            }
            Some(verb) => (verb, line),
            None => {
                let (verb, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
                let rest = rest.trim();
                if rest == "(" {
                    block = Some(match verb {
                        "require" => "require",
                        "replace" => "replace",
                        _ => "other",
                    });
                    continue;
                }
                (verb, rest)
            }
        };
        match verb {
            "require" => {
                if let Some(module) = rest.split_whitespace().next() {
                    requires.push(module.to_string());
                }
            }
            "replace" => {
                if let Some((from, to)) = rest.split_once("=>") {
                    let to = to.trim();
                    if to.starts_with("./") || to.starts_with("../") {
                        if let Some(module) = from.split_whitespace().next() {
                            local.push(module.to_string());
                        }
                    }
                }
            }
            _ => {}
        }
    }
    requires.retain(|m| !local.contains(m));
    requires
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_replaces_are_hermetic_external_requires_are_not() {
        let fixture = "module k8s.io/kubernetes\n\ngo 1.24\n\nrequire k8s.io/component-base v0.0.0\n\nreplace k8s.io/component-base => ./staging/src/k8s.io/component-base\n";
        assert!(external_requires(fixture).is_empty());
        let external = "module k8s.io/kubernetes\n\nrequire (\n\tgithub.com/spf13/cobra v1.8.0 // indirect\n\tk8s.io/api v0.0.0\n)\n\nreplace (\n\tk8s.io/api => ./staging/src/k8s.io/api\n\tgithub.com/x/y => github.com/z/y v1.0.0\n)\n";
        assert_eq!(external_requires(external), ["github.com/spf13/cobra"]);
    }

    #[test]
    fn the_fixture_builds_offline() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mini-kube");
        assert_eq!(needs_network(&root), None);
    }
}
