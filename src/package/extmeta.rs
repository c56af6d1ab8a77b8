//! What an extension image says about itself: `metadata.json` (the author's, with
//! `host.binaries` filled in by kbuild) and the image labels Docker Desktop reads.
//! Required labels per Docker's "Extension image labels" page: the OCI title, description
//! and vendor, `com.docker.desktop.extension.api.version`, `com.docker.desktop.extension.icon`,
//! `com.docker.extension.screenshots`, `.detailed-description`, `.publisher-url` and
//! `.changelog`. A missing one is a warning: the image installs, but the Marketplace
//! would not list it.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{Error, Result};

pub const METADATA: &str = "metadata.json";
/// Where `--ui DIR` goes inside the image.
pub const UI_DIR: &str = "ui";

pub const REQUIRED_LABELS: &[&str] = &[
    "org.opencontainers.image.title",
    "org.opencontainers.image.description",
    "org.opencontainers.image.vendor",
    "com.docker.desktop.extension.api.version",
    "com.docker.desktop.extension.icon",
    "com.docker.extension.screenshots",
    "com.docker.extension.detailed-description",
    "com.docker.extension.publisher-url",
    "com.docker.extension.changelog",
];

/// The facts kbuild knows and stamps into the labels.
pub struct Facts<'a> {
    /// Last component of the image repository, the default title.
    pub name: &'a str,
    pub git_version: &'a str,
    pub commit: Option<&'a str>,
    pub created: &'a str,
    pub components: Vec<&'a str>,
}

/// The author's metadata.json (or `{}`), with kbuild's `host.binaries`, the icon's file
/// name and a default UI tab when `--ui` is given and the metadata names none.
pub fn metadata(
    file: Option<&Path>,
    host_binaries: &serde_json::Value,
    icon_name: Option<&str>,
    has_ui: bool,
    title: &str,
) -> Result<(serde_json::Value, Vec<String>)> {
    let mut warnings = Vec::new();
    let mut meta = match file {
        None => serde_json::json!({}),
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| Error::io("cannot read", path, e))?;
            let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                Error::usage(format!("--metadata {}: not JSON: {e}", path.display()))
                    .with_hint("give the extension's metadata.json (a JSON object)")
            })?;
            if !value.is_object() {
                return Err(Error::usage(format!(
                    "--metadata {}: metadata.json must be a JSON object",
                    path.display()
                ))
                .with_hint("give the extension's metadata.json, e.g. {\"icon\": \"icon.svg\"}"));
            }
            value
        }
    };
    let obj = meta.as_object_mut().expect("an object");
    let host = obj.entry("host").or_insert_with(|| serde_json::json!({}));
    if !host.is_object() {
        return Err(Error::usage("metadata.json: \"host\" must be an object")
            .with_hint("kbuild fills host.binaries; leave \"host\" out or make it an object"));
    }
    if host.get("binaries").is_some() {
        warnings.push(
            "metadata.json's host.binaries is replaced by the binaries kbuild built".to_string(),
        );
    }
    host["binaries"] = host_binaries["host"]["binaries"].clone();
    match icon_name {
        Some(name) => {
            obj.insert("icon".into(), name.into());
        }
        None if !obj.contains_key("icon") => {
            warnings.push("the extension has no icon: give one with --icon FILE".to_string())
        }
        None => {}
    }
    if has_ui && !obj.contains_key("ui") {
        obj.insert(
            "ui".into(),
            serde_json::json!({"dashboard-tab": {"title": title, "root": format!("/{UI_DIR}"), "src": "index.html"}}),
        );
    }
    Ok((meta, warnings))
}

/// `KEY=VALUE` flags over kbuild's defaults; warnings name required labels still missing.
pub fn labels(flags: &[String], facts: &Facts) -> Result<(BTreeMap<String, String>, Vec<String>)> {
    let mut labels = BTreeMap::new();
    let what = facts.components.join(", ");
    labels.insert(
        "org.opencontainers.image.title".into(),
        facts.name.to_string(),
    );
    labels.insert(
        "org.opencontainers.image.description".into(),
        format!(
            "{what} {} for Docker Desktop hosts (darwin, linux, windows)",
            facts.git_version
        ),
    );
    labels.insert(
        "org.opencontainers.image.version".into(),
        facts.git_version.to_string(),
    );
    labels.insert(
        "org.opencontainers.image.created".into(),
        facts.created.to_string(),
    );
    if let Some(commit) = facts.commit {
        labels.insert(
            "org.opencontainers.image.revision".into(),
            commit.to_string(),
        );
    }
    for flag in flags {
        let Some((key, value)) = flag.split_once('=').filter(|(k, _)| !k.trim().is_empty()) else {
            return Err(Error::usage(format!("--label \"{flag}\" is not KEY=VALUE"))
                .with_hint("e.g. --label org.opencontainers.image.vendor=\"Acme, Inc.\""));
        };
        labels.insert(key.trim().to_string(), value.to_string());
    }
    let missing: Vec<&str> = REQUIRED_LABELS
        .iter()
        .copied()
        .filter(|k| labels.get(*k).is_none_or(|v| v.is_empty()))
        .collect();
    let mut warnings = Vec::new();
    if !missing.is_empty() {
        warnings.push(format!(
            "Docker Desktop's Marketplace requires labels the image lacks (it still installs with `docker extension install`): {}; add them with --label KEY=VALUE",
            missing.join(", ")
        ));
    }
    Ok((labels, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fragment() -> serde_json::Value {
        serde_json::json!({"host": {"binaries": [{"linux": [{"path": "/linux/kubectl"}]}]}})
    }

    #[test]
    fn fills_host_binaries_and_keeps_the_authors_keys() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("metadata.json");
        std::fs::write(&file, r#"{"vm": {"image": "x"}, "host": {"binaries": []}}"#).unwrap();
        let (meta, warnings) =
            metadata(Some(&file), &fragment(), Some("icon.svg"), true, "Kubectl").unwrap();
        assert_eq!(meta["vm"]["image"], "x");
        assert_eq!(meta["icon"], "icon.svg");
        assert_eq!(
            meta["host"]["binaries"][0]["linux"][0]["path"],
            "/linux/kubectl"
        );
        assert_eq!(meta["ui"]["dashboard-tab"]["root"], "/ui");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
    }

    #[test]
    fn refuses_metadata_that_is_not_an_object() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("metadata.json");
        std::fs::write(&file, "[1]").unwrap();
        assert!(metadata(Some(&file), &fragment(), None, false, "t").is_err());
        std::fs::write(&file, "{").unwrap();
        assert!(metadata(Some(&file), &fragment(), None, false, "t").is_err());
    }

    #[test]
    fn label_flags_override_defaults_and_missing_required_ones_are_named() {
        let facts = Facts {
            name: "kubectl-ext",
            git_version: "v1.34.0",
            commit: Some("abc"),
            created: "2023-11-14T22:13:20Z",
            components: vec!["kubectl"],
        };
        let (labels, warnings) = labels(
            &["org.opencontainers.image.title=My ext".to_string()],
            &facts,
        )
        .unwrap();
        assert_eq!(labels["org.opencontainers.image.title"], "My ext");
        assert_eq!(labels["org.opencontainers.image.revision"], "abc");
        assert!(warnings[0].contains("org.opencontainers.image.vendor"));
        assert!(!warnings[0].contains("image.title,"));
        assert!(super::labels(&["novalue".to_string()], &facts).is_err());
    }
}
