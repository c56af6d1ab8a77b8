//! The SPDX 2.3 JSON SBOM of a set: one package per artifact, one per binary, one per Go
//! module a binary embeds, and the relationships between them:
//!
//! - the document DESCRIBES every artifact;
//! - an artifact CONTAINS the binaries (and the source tarball) it carries;
//! - a binary is GENERATED_FROM its main module and DEPENDS_ON every other module.
//!
//! Modules come from the binaries' Go build information (`kube::buildinfo`, kbuild's own
//! reader of what `go version -m` shows), never from running `go`. Everything is sorted
//! and dated from SOURCE_DATE_EPOCH, so the same inputs give the same bytes.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use serde_json::{json, Value};

use super::{epoch_time, redact_url, rfc3339, Binary, Input};
use crate::error::{Error, Result};
use crate::kube::buildinfo::{self, Module};
use crate::package::checksum;

pub const SUFFIX: &str = ".spdx.json";
const DOCUMENT: &str = "SPDXRef-DOCUMENT";
const NOASSERTION: &str = "NOASSERTION";

/// SPDX ids may hold letters, digits, `.` and `-` only.
fn spdx_id(prefix: &str, name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("SPDXRef-{prefix}-{clean}")
}

/// Hands out SPDX ids, adding a counter when two names clean up to the same id.
#[derive(Default)]
struct Ids(BTreeSet<String>);

impl Ids {
    fn unique(&mut self, prefix: &str, name: &str) -> String {
        let base = spdx_id(prefix, name);
        let mut id = base.clone();
        let mut n = 2;
        while !self.0.insert(id.clone()) {
            id = format!("{base}-{n}");
            n += 1;
        }
        id
    }
}

/// The package URL of a Go module (purl-spec's golang type): `pkg:golang/<path>@<version>`,
/// without a version for `(devel)` (the main module and local replacements).
pub fn purl(module: &Module) -> String {
    let path: String = module
        .path
        .chars()
        .map(|c| match c {
            '@' => "%40".to_string(),
            '?' => "%3F".to_string(),
            '#' => "%23".to_string(),
            ' ' => "%20".to_string(),
            c => c.to_string(),
        })
        .collect();
    if module.version.is_empty() || module.version == "(devel)" {
        format!("pkg:golang/{path}")
    } else {
        format!("pkg:golang/{path}@{}", module.version)
    }
}

/// The `h1:` sum as the SHA-256 it encodes (hex), as SPDX checksums are written.
fn h1_sha256(sum: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(sum.strip_prefix("h1:")?)
        .ok()?;
    (bytes.len() == 32).then(|| checksum::hex(&bytes))
}

/// A module as `go version -m` prints it (`path version sum`, `=> path version sum`).
fn module_line(m: &Module) -> String {
    let mut line = format!("{} {}", m.path, m.version);
    if let Some(sum) = &m.sum {
        line.push(' ');
        line.push_str(sum);
    }
    line
}

/// Where the module's bytes came from: the replacement when go.mod replaces it.
fn effective(m: &Module) -> &Module {
    m.replace.as_deref().unwrap_or(m)
}

fn module_package(id: &str, m: &Module, source_info: Option<&str>) -> Value {
    let used = effective(m);
    let mut package = json!({
        "SPDXID": id,
        "name": m.path,
        "versionInfo": m.version,
        "downloadLocation": NOASSERTION,
        "filesAnalyzed": false,
        "primaryPackagePurpose": "LIBRARY",
        "externalRefs": [{
            "referenceCategory": "PACKAGE-MANAGER",
            "referenceType": "purl",
            "referenceLocator": purl(m),
        }],
    });
    let mut comment = format!(
        "Go module, from the binary's build information: {}",
        module_line(m)
    );
    if let Some(r) = &m.replace {
        comment.push_str(&format!(" => {}", module_line(r)));
    }
    package["comment"] = json!(comment);
    if let Some(sha) = used.sum.as_deref().and_then(h1_sha256) {
        package["checksums"] = json!([{ "algorithm": "SHA256", "checksumValue": sha }]);
    }
    if let Some(info) = source_info {
        package["sourceInfo"] = json!(info);
    }
    package
}

/// The SPDX document for `input`.
pub fn document(input: &Input<'_>) -> Result<Value> {
    let source = input.source;
    // A remote repository is named; a local tree's path is not (it means nothing to the
    // SBOM's readers, and another checkout of the same commit must give the same SBOM).
    let repo = source
        .repo
        .as_deref()
        .filter(|r| !r.starts_with('/') && !r.starts_with('.'))
        .map(redact_url);
    let source_info = match (&repo, &source.commit) {
        (Some(r), Some(c)) => format!("built from {r} at commit {c} ({})", source.tree_state),
        (Some(r), None) => format!("built from {r} ({})", source.tree_state),
        _ => format!("built from a {} tree", source.tree_state),
    };
    let mut ids = Ids::default();
    let mut packages = Vec::new();
    let mut relationships: BTreeSet<(String, &str, String)> = BTreeSet::new();

    // Artifacts (tarballs; the extension's bare binaries are described as binaries below).
    let bare: BTreeMap<&str, &Binary> = input
        .binaries
        .iter()
        .filter_map(|b| b.is_artifact.as_deref().map(|a| (a, b)))
        .collect();
    let mut artifact_ids = BTreeMap::new();
    for a in input.artifacts {
        if bare.contains_key(a.file.as_str()) {
            continue;
        }
        let id = ids.unique("Artifact", &a.file);
        artifact_ids.insert(a.file.clone(), id.clone());
        packages.push(json!({
            "SPDXID": id,
            "name": a.file,
            "packageFileName": a.file,
            "versionInfo": source.git_version,
            "downloadLocation": NOASSERTION,
            "filesAnalyzed": false,
            "primaryPackagePurpose": if a.kind == "src" { "SOURCE" } else { "ARCHIVE" },
            "checksums": [
                { "algorithm": "SHA256", "checksumValue": a.sha256 },
                { "algorithm": "SHA512", "checksumValue": a.sha512 },
            ],
            "sourceInfo": source_info,
        }));
        relationships.insert((DOCUMENT.to_string(), "DESCRIBES", id));
    }
    // An artifact that carries another one (the node and server tarballs hold the source tarball).
    for a in input.artifacts {
        let Some(outer) = artifact_ids.get(&a.file) else {
            continue;
        };
        for entry in a.contents.iter().flatten() {
            let inner = entry.path.rsplit('/').next().unwrap_or_default();
            if let Some(inner_id) = artifact_ids.get(inner).filter(|_| inner != a.file) {
                relationships.insert((outer.clone(), "CONTAINS", inner_id.clone()));
            }
        }
    }

    // Binaries, and the modules their build information names.
    let mut binaries: Vec<&Binary> = input.binaries.iter().collect();
    binaries.sort_by(|a, b| (&a.os, &a.arch, &a.name).cmp(&(&b.os, &b.arch, &b.name)));
    let mut modules: BTreeMap<(String, String, Option<String>, Option<String>), String> =
        BTreeMap::new();
    let mut module_packages = Vec::new();
    for b in binaries {
        let (_, digests) = std::fs::File::open(&b.path)
            .and_then(checksum::hash_reader)
            .map_err(|e| Error::io("cannot read", &b.path, e))?;
        let info = buildinfo::read(&b.path).map_err(|e| Error::io("cannot read", &b.path, e))?;
        let id = ids.unique("Binary", &format!("{}-{}-{}", b.os, b.arch, b.name));
        let mut package = json!({
            "SPDXID": id,
            "name": b.name,
            "packageFileName": format!("{}/{}/{}", b.os, b.arch, b.name),
            "versionInfo": source.git_version,
            "downloadLocation": NOASSERTION,
            "filesAnalyzed": false,
            "primaryPackagePurpose": "APPLICATION",
            "checksums": [
                { "algorithm": "SHA256", "checksumValue": digests.sha256 },
                { "algorithm": "SHA512", "checksumValue": digests.sha512 },
            ],
            "sourceInfo": source_info,
        });
        match &info {
            Some(i) => {
                package["comment"] = json!(format!(
                    "{}/{} binary of Go package {}, linked with {}",
                    b.os,
                    b.arch,
                    i.path.as_deref().unwrap_or("(unknown)"),
                    i.go_version
                ))
            }
            None => {
                package["comment"] =
                    json!("the binary carries no Go build information: no modules are listed")
            }
        }
        packages.push(package);
        if let Some(artifact) = &b.is_artifact {
            relationships.insert((DOCUMENT.to_string(), "DESCRIBES", id.clone()));
            artifact_ids.insert(artifact.clone(), id.clone());
        }
        for carrier in &b.carried_by {
            if let Some(outer) = artifact_ids.get(carrier) {
                relationships.insert((outer.clone(), "CONTAINS", id.clone()));
            }
        }
        let Some(info) = info else { continue };
        let main = info.main.iter().map(|m| (m, "GENERATED_FROM"));
        for (m, relation) in main.chain(info.deps.iter().map(|m| (m, "DEPENDS_ON"))) {
            let used = effective(m);
            let key = (
                m.path.clone(),
                m.version.clone(),
                used.sum.clone(),
                m.replace.as_ref().map(|r| module_line(r)),
            );
            let module_id = match modules.get(&key) {
                Some(existing) => existing.clone(),
                None => {
                    let module_id = ids.unique("GoModule", &format!("{}-{}", m.path, m.version));
                    let is_main = relation == "GENERATED_FROM";
                    module_packages.push(module_package(
                        &module_id,
                        m,
                        is_main.then_some(source_info.as_str()),
                    ));
                    modules.insert(key, module_id.clone());
                    module_id
                }
            };
            relationships.insert((id.clone(), relation, module_id));
        }
    }
    packages.extend(module_packages);

    let name = format!("kubernetes-{}-{}", input.set.name(), source.git_version);
    // Unique per content, yet reproducible: the namespace names the artifacts' digests.
    let mut digests: Vec<String> = input
        .artifacts
        .iter()
        .map(|a| format!("{}  {}", a.sha256, a.file))
        .collect();
    digests.sort();
    let (_, content) = checksum::hash_reader(digests.join("\n").as_bytes())
        .map_err(|e| Error::internal(format!("cannot hash the artifact list: {e}")))?;
    let relationships: Vec<Value> = relationships
        .into_iter()
        .map(|(from, kind, to)| {
            json!({ "spdxElementId": from, "relationshipType": kind, "relatedSpdxElement": to })
        })
        .collect();
    Ok(json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": DOCUMENT,
        "name": name,
        "documentNamespace": format!("https://kbuild.invalid/spdx/{name}-{}", &content.sha256[..32]),
        "creationInfo": {
            "created": rfc3339(epoch_time(source.source_date_epoch)),
            "creators": [format!("Tool: kbuild-{}", env!("CARGO_PKG_VERSION"))],
            "comment": "created at SOURCE_DATE_EPOCH, the source commit's time, so the same inputs give the same document",
        },
        "packages": packages,
        "relationships": relationships,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(path: &str, version: &str) -> Module {
        Module {
            path: path.into(),
            version: version.into(),
            sum: None,
            replace: None,
        }
    }

    #[test]
    fn purls_follow_the_golang_type() {
        assert_eq!(
            purl(&module("github.com/spf13/pflag", "v1.0.6")),
            "pkg:golang/github.com/spf13/pflag@v1.0.6"
        );
        assert_eq!(
            purl(&module("k8s.io/kubernetes", "(devel)")),
            "pkg:golang/k8s.io/kubernetes"
        );
    }

    #[test]
    fn h1_sums_become_hex_sha256() {
        // 32 zero bytes in base64.
        let sum = "h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        assert_eq!(h1_sha256(sum).unwrap(), "0".repeat(64));
        assert_eq!(h1_sha256("h1:nope"), None);
    }

    #[test]
    fn ids_are_valid_and_unique() {
        let mut ids = Ids::default();
        assert_eq!(ids.unique("GoModule", "a/b@v1"), "SPDXRef-GoModule-a-b-v1");
        assert_eq!(
            ids.unique("GoModule", "a-b@v1"),
            "SPDXRef-GoModule-a-b-v1-2"
        );
    }
}
