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

use super::{redact_url, Binary, Input};
use crate::artifact::{self, Artifact, Digests, SourceRecord};
use crate::error::{Error, Result};
use crate::kube::buildinfo::{self, Module};
use crate::units::rfc3339;

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
    (bytes.len() == 32).then(|| hex::encode(&bytes))
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

/// How the SBOM says where everything was built from. A remote repository is named; a
/// local tree's path is not (it means nothing to the SBOM's readers, and another checkout
/// of the same commit must give the same SBOM).
fn source_info(source: &SourceRecord) -> String {
    let repo = source
        .repo
        .as_deref()
        .filter(|r| !r.starts_with('/') && !r.starts_with('.'))
        .map(redact_url);
    let state = &source.tree_state;
    match (repo, &source.commit) {
        (Some(r), Some(c)) => format!("built from {r} at commit {c} ({state})"),
        (None, Some(c)) => format!("built from commit {c} ({state})"),
        (Some(r), None) => format!("built from {r} ({state})"),
        (None, None) => format!("built from a {state} tree"),
    }
}

/// A module's identity in the SBOM: path, version, the sum of what was used, the replacement.
type ModuleKey = (String, String, Option<String>, Option<String>);

/// The document's packages and relationships as they are collected.
struct Builder<'a> {
    source: &'a SourceRecord,
    source_info: String,
    ids: Ids,
    packages: Vec<Value>,
    module_packages: Vec<Value>,
    modules: BTreeMap<ModuleKey, String>,
    /// Artifact file -> its SPDX id.
    artifact_ids: BTreeMap<String, String>,
    relationships: BTreeSet<(String, &'static str, String)>,
}

impl<'a> Builder<'a> {
    fn new(source: &'a SourceRecord) -> Self {
        Builder {
            source,
            source_info: source_info(source),
            ids: Ids::default(),
            packages: Vec::new(),
            module_packages: Vec::new(),
            modules: BTreeMap::new(),
            artifact_ids: BTreeMap::new(),
            relationships: BTreeSet::new(),
        }
    }

    fn relate(&mut self, from: &str, kind: &'static str, to: &str) {
        self.relationships
            .insert((from.to_string(), kind, to.to_string()));
    }

    /// A package for an artifact or a binary: name, file, version, digests, source.
    fn package(&self, id: &str, name: &str, file: &str, purpose: &str, digests: &Digests) -> Value {
        json!({
            "SPDXID": id,
            "name": name,
            "packageFileName": file,
            "versionInfo": self.source.git_version,
            "downloadLocation": NOASSERTION,
            "filesAnalyzed": false,
            "primaryPackagePurpose": purpose,
            "checksums": [
                { "algorithm": "SHA256", "checksumValue": digests.sha256 },
                { "algorithm": "SHA512", "checksumValue": digests.sha512 },
            ],
            "sourceInfo": self.source_info,
        })
    }

    /// The artifacts that are archives, which the document DESCRIBES, and which of them
    /// CONTAINS another (the node and server tarballs hold the source tarball).
    fn add_archives(&mut self, artifacts: &[Artifact], bare: &BTreeSet<&str>) {
        for a in artifacts.iter().filter(|a| !bare.contains(a.file.as_str())) {
            let id = self.ids.unique("Artifact", &a.file);
            let purpose = if a.kind == "src" { "SOURCE" } else { "ARCHIVE" };
            let digests = Digests {
                sha256: a.sha256.clone(),
                sha512: a.sha512.clone(),
            };
            self.packages
                .push(self.package(&id, &a.file, &a.file, purpose, &digests));
            self.relate(DOCUMENT, "DESCRIBES", &id);
            self.artifact_ids.insert(a.file.clone(), id);
        }
        for a in artifacts {
            let Some(outer) = self.artifact_ids.get(&a.file).cloned() else {
                continue;
            };
            for entry in a.contents.iter().flatten() {
                let inner = entry.path.rsplit('/').next().unwrap_or_default();
                if let Some(inner_id) = self.artifact_ids.get(inner).cloned() {
                    if inner != a.file {
                        self.relate(&outer, "CONTAINS", &inner_id);
                    }
                }
            }
        }
    }

    /// The server images, which the document DESCRIBES, each a DESCENDANT_OF its base
    /// (named by the digest it was taken by); their binaries are added as carried by them.
    fn add_images(&mut self, images: &[super::Image]) {
        let mut bases: BTreeMap<(String, String), String> = BTreeMap::new();
        for image in images {
            let id = self.ids.unique("Image", &image.file);
            let name = image.file.rsplit('/').next().unwrap_or(&image.file);
            self.packages
                .push(self.package(&id, name, &image.file, "CONTAINER", &image.digests));
            self.relate(DOCUMENT, "DESCRIBES", &id);
            self.artifact_ids.insert(image.file.clone(), id.clone());
            let key = (image.base.clone(), image.base_digest.clone());
            let base_id = match bases.get(&key) {
                Some(b) => b.clone(),
                None => {
                    let b = self.ids.unique("BaseImage", &image.base);
                    self.packages.push(json!({
                        "SPDXID": b,
                        "name": image.base,
                        "versionInfo": image.base_digest,
                        "downloadLocation": NOASSERTION,
                        "filesAnalyzed": false,
                        "primaryPackagePurpose": "CONTAINER",
                        "checksums": [{
                            "algorithm": "SHA256",
                            "checksumValue": image.base_digest.trim_start_matches("sha256:"),
                        }],
                        "comment": "the base image, by the image id it was taken by from the engine",
                    }));
                    bases.insert(key, b.clone());
                    b
                }
            };
            self.relate(&id, "DESCENDANT_OF", &base_id);
        }
    }

    /// A binary, what carries it (or that it is an artifact itself), and its modules.
    fn add_binary(&mut self, b: &Binary) -> Result<()> {
        let (_, digests) = std::fs::File::open(&b.path)
            .and_then(artifact::hash_reader)
            .map_err(|e| Error::io("cannot read", &b.path, e))?;
        let info = buildinfo::read(&b.path).map_err(|e| Error::io("cannot read", &b.path, e))?;
        let id = self
            .ids
            .unique("Binary", &format!("{}-{}-{}", b.os, b.arch, b.name));
        let file = format!("{}/{}/{}", b.os, b.arch, b.name);
        let mut package = self.package(&id, &b.name, &file, "APPLICATION", &digests);
        package["comment"] = json!(match &info {
            Some(i) => format!(
                "{}/{} binary of Go package {}, linked with {}",
                b.os,
                b.arch,
                i.path.as_deref().unwrap_or("(unknown)"),
                i.go_version
            ),
            None => "the binary carries no Go build information: no modules are listed".to_string(),
        });
        self.packages.push(package);
        if b.is_artifact.is_some() {
            self.relate(DOCUMENT, "DESCRIBES", &id);
        }
        for carrier in &b.carried_by {
            if let Some(outer) = self.artifact_ids.get(carrier).cloned() {
                self.relate(&outer, "CONTAINS", &id);
            }
        }
        let Some(info) = info else { return Ok(()) };
        let main = info.main.iter().map(|m| (m, "GENERATED_FROM"));
        for (m, relation) in main.chain(info.deps.iter().map(|m| (m, "DEPENDS_ON"))) {
            let module_id = self.module(m, relation == "GENERATED_FROM");
            self.relate(&id, relation, &module_id);
        }
        Ok(())
    }

    /// The id of the module's package, made the first time a binary names it.
    fn module(&mut self, m: &Module, is_main: bool) -> String {
        let key = (
            m.path.clone(),
            m.version.clone(),
            effective(m).sum.clone(),
            m.replace.as_deref().map(module_line),
        );
        if let Some(id) = self.modules.get(&key) {
            return id.clone();
        }
        let id = self
            .ids
            .unique("GoModule", &format!("{}-{}", m.path, m.version));
        let source_info = is_main.then_some(self.source_info.as_str());
        self.module_packages
            .push(module_package(&id, m, source_info));
        self.modules.insert(key, id.clone());
        id
    }
}

/// The SPDX document for `input`.
pub fn document(input: &Input<'_>) -> Result<Value> {
    let source = input.source;
    let mut builder = Builder::new(source);
    // The extension's bare binaries are described as binaries, not as archives.
    let bare: BTreeSet<&str> = input
        .binaries
        .iter()
        .filter_map(|b| b.is_artifact.as_deref())
        .collect();
    builder.add_archives(input.artifacts, &bare);
    builder.add_images(&input.images);
    let mut binaries: Vec<&Binary> = input.binaries.iter().collect();
    binaries.sort_by(|a, b| (&a.os, &a.arch, &a.name).cmp(&(&b.os, &b.arch, &b.name)));
    for b in binaries {
        builder.add_binary(b)?;
    }
    let Builder {
        mut packages,
        module_packages,
        relationships,
        ..
    } = builder;
    packages.extend(module_packages);

    let name = format!("kubernetes-{}-{}", input.set.name(), source.git_version);
    // Unique per content, yet reproducible: the namespace names the artifacts' digests.
    let mut digests: Vec<String> = input
        .artifacts
        .iter()
        .map(|a| format!("{}  {}", a.sha256, a.file))
        .collect();
    digests.sort();
    let (_, content) = artifact::hash_reader(digests.join("\n").as_bytes())
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
            "created": rfc3339(source.source_date_epoch),
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
