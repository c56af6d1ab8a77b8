//! SLSA provenance v1 (https://slsa.dev/spec/v1.0/provenance) in an in-toto Statement v1
//! (https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md), one JSON line:
//!
//! - subject: every artifact of the set (and the SBOM) with its sha256;
//! - buildDefinition: what was asked for as externalParameters, and the source commit and
//!   builder image as resolvedDependencies;
//! - runDetails: kbuild and its version as the builder, and the run's start and finish.
//!
//! Only the run times differ between two runs with the same inputs.

use std::time::SystemTime;

use serde_json::{json, Value};

use super::{redact_url, unix_seconds, Input};
use crate::units::rfc3339;

pub const SUFFIX: &str = ".intoto.jsonl";
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
/// What kind of build this is; the README's "Supply chain" section describes its parameters.
pub const BUILD_TYPE: &str = "https://kbuild.invalid/slsa/buildtypes/release-set/v1";

/// The in-toto Statement for `input`, whose artifacts are `subjects` (name, sha256).
pub fn statement(
    input: &Input<'_>,
    subjects: &[(String, String)],
    started: SystemTime,
    finished: SystemTime,
) -> Value {
    let source = input.source;
    let toolchain = input.toolchain;
    let repo = source.repo.as_deref().map(redact_url);
    // There is no resolved plan struct for packaging yet: the parameters are what the
    // manifest records of the inputs (source, version, platforms, image), with credentials
    // removed from URLs, and the plan's inputs when kbuild built the binaries.
    let mut platforms: Vec<String> = input
        .artifacts
        .iter()
        .filter_map(|a| Some(format!("{}/{}", a.os.as_ref()?, a.arch.as_ref()?)))
        .collect();
    platforms.sort();
    platforms.dedup();
    let mut artifacts: Vec<&str> = input.artifacts.iter().map(|a| a.file.as_str()).collect();
    artifacts.sort();
    let mut external = json!({
        "set": input.set.name(),
        "source": {
            "repository": repo,
            "ref": source.git_ref,
            "gitVersion": source.git_version,
            "treeState": source.tree_state,
            "sourceDateEpoch": source.source_date_epoch,
        },
        "platforms": platforms,
        "artifacts": artifacts,
        "builderImage": toolchain.builder_image,
    });
    let mut internal = json!({
        "compressor": toolchain.compressor,
        "gzipLevel": toolchain.gzip_level,
    });
    if let Some(ran) = input.plan.and_then(|p| p.get("ran")) {
        // Where each job really ran (and was planned), when, and every attempt: the
        // builder's own choices, named as the record in manifest.json names them.
        internal["jobs"] = ran.clone();
    }
    if let Some(plan) = input.plan {
        // Every input the run was asked with, and where each came from (flag, environment,
        // recipe), as `kbuild plan` resolved them.
        external["plan"] = json!({ "command": plan["command"], "inputs": plan["inputs"] });
    }
    let mut dependencies = Vec::new();
    if let Some(repo) = &repo {
        // A local tree is named by a file:// URL, a remote by its own.
        let url = if repo.starts_with('/') {
            format!("file://{repo}")
        } else {
            repo.clone()
        };
        let mut dep = json!({ "uri": format!("git+{url}") });
        if let Some(commit) = &source.commit {
            dep["digest"] = json!({ "gitCommit": commit });
        }
        if let Some(r) = &source.git_ref {
            dep["annotations"] = json!({ "ref": r });
        }
        dependencies.push(dep);
    }
    if let Some(image) = &toolchain.builder_image {
        let mut dep = json!({ "name": "builder-image", "uri": format!("docker-image://{image}") });
        if let Some(id) = toolchain.builder_image_id.as_deref() {
            let hex = id.strip_prefix("sha256:").unwrap_or(id);
            dep["digest"] = json!({ "sha256": hex });
            dep["annotations"] =
                json!({ "digestOf": "the image id (its config digest), as the engine reports it" });
        }
        dependencies.push(dep);
    }
    // Each imported Go cache (`--cache-from`): its entries were trusted by their key.
    let imports = input
        .plan
        .and_then(|p| p.get("cacheImports"))
        .and_then(Value::as_array);
    for import in imports.into_iter().flatten() {
        let origin = import["origin"].as_str().unwrap_or_default();
        dependencies.push(json!({
            "name": "go-cache",
            "uri": format!("file://{origin}"),
            "digest": { "sha256": import["sha256"] },
            "annotations": {
                "digestOf": import["digestOf"],
                "engine": import["engine"],
                "key": import["key"],
                "entries": import["entries"],
                "added": import["added"],
            },
        }));
    }
    if let Some(go) = &toolchain.go_version {
        dependencies.push(json!({ "name": "go-toolchain", "annotations": { "goVersion": go } }));
    }
    let subject: Vec<Value> = subjects
        .iter()
        .map(|(name, sha256)| json!({ "name": name, "digest": { "sha256": sha256 } }))
        .collect();
    json!({
        "_type": STATEMENT_TYPE,
        "subject": subject,
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": external,
                "internalParameters": internal,
                "resolvedDependencies": dependencies,
            },
            "runDetails": {
                "builder": {
                    "id": format!("https://kbuild.invalid/builder/kbuild@v{}", env!("CARGO_PKG_VERSION")),
                    "version": { "kbuild": env!("CARGO_PKG_VERSION") },
                },
                "metadata": {
                    "startedOn": rfc3339(unix_seconds(started)),
                    "finishedOn": rfc3339(unix_seconds(finished)),
                },
            },
        },
    })
}
