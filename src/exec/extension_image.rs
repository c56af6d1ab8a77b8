//! `kbuild extension --tag`: the extension image after the layout, then `--load` into the
//! engine and `--push` to a registry. Inputs are checked before anything is built.

use std::path::Path;

use crate::error::Result;
use crate::imageref::ImageRef;
use crate::kube::{Component, Platform};
use crate::package::extimage::{self, Extras};
use crate::package::{extension, extmeta, ociimage};
use crate::signals::Interrupt;
use crate::source::SourceInfo;
use crate::ui::Ui;

/// The checked `--tag` and its extras.
pub struct Plan {
    pub reference: ImageRef,
    pub extras: Extras,
    pub labels: Vec<String>,
    pub load: bool,
    pub push: bool,
    pub insecure_registry: bool,
}

/// Refuses missing extras, a bad label or a metadata.json that is no JSON object up front,
/// before the build is worth starting.
pub fn check(plan: Plan) -> Result<Plan> {
    extimage::check(&plan.extras)?;
    // Labels are checked now too (their defaults need the source, so these are stand-ins).
    extmeta::labels(&plan.labels, &facts(&plan, "v0.0.0", None, "", &[]))?;
    // And metadata.json: it must be a JSON object before the build is worth starting.
    let no_binaries = serde_json::json!({ "host": { "binaries": [] } });
    extmeta::metadata(
        plan.extras.metadata.as_deref(),
        &no_binaries,
        None,
        false,
        "",
    )?;
    Ok(plan)
}

fn facts<'a>(
    plan: &'a Plan,
    git_version: &'a str,
    commit: Option<&'a str>,
    created: &'a str,
    components: &[&'static Component],
) -> extmeta::Facts<'a> {
    extmeta::Facts {
        name: plan
            .reference
            .repository
            .rsplit('/')
            .next()
            .unwrap_or_default(),
        git_version,
        commit,
        created,
        components: components.iter().map(|c| c.name).collect(),
    }
}

/// Writes the image from `<out>/extension/`, then loads and pushes it as asked.
pub async fn run(
    plan: &Plan,
    out: &Path,
    info: &SourceInfo,
    components: &[&'static Component],
    platforms: &[Platform],
    ui: &Ui,
    interrupt: &Interrupt,
) -> Result<ociimage::Image> {
    let ext = out.join(extension::DIR);
    let created = crate::units::rfc3339(info.source_date_epoch);
    let f = facts(
        plan,
        &info.version.git_version,
        info.commit.as_deref(),
        &created,
        components,
    );
    let (labels, mut warnings) = extmeta::labels(&plan.labels, &f)?;
    let fragment = extimage::host_binaries(components, platforms);
    let icon_name = plan
        .extras
        .icon
        .as_ref()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned());
    let title = labels
        .get("org.opencontainers.image.title")
        .cloned()
        .unwrap_or_default();
    let (metadata, meta_warnings) = extmeta::metadata(
        plan.extras.metadata.as_deref(),
        &fragment,
        icon_name.as_deref(),
        plan.extras.ui.is_some(),
        &title,
    )?;
    warnings.extend(meta_warnings);
    for w in &warnings {
        ui.warn(w);
    }
    ui.phase(
        "image",
        &format!(
            "{} as an OCI layout in {}",
            plan.reference,
            ext.join(ociimage::LAYOUT_DIR).display()
        ),
    );
    let tag = plan.reference.tag.clone();
    let extras = plan.extras.clone();
    let mtime = info.source_date_epoch;
    let ext2 = ext.clone();
    let image = crate::package::worker::blocking(ui, "image", 0, interrupt, move |cancel| {
        extimage::write(&ext2, &tag, &extras, &metadata, &labels, mtime, &cancel)
    })
    .await?;
    for v in &image.variants {
        ui.artifact_digest(
            &format!("{} linux/{}", plan.reference, v.arch),
            v.layer.size,
            Some(v.manifest.hex()),
        );
    }
    ui.info(&format!(
        "image index {} ({}); oci-archive {}",
        image.index.digest,
        image.layout.display(),
        image.archive.display()
    ));
    if plan.load {
        ui.phase("load", &format!("{} into the engine", plan.reference));
        let arch = tokio::select! {
            loaded = crate::engine::image_load::load(&image, &plan.reference) => loaded?,
            err = interrupt.wait() => return Err(err),
        };
        ui.info(&format!(
            "loaded {} (linux/{arch}) into the engine",
            plan.reference
        ));
    }
    if plan.push {
        ui.phase("push", &plan.reference.to_string());
        // Stopping mid-push leaves only unreferenced blobs: the tag moves last.
        tokio::select! {
            pushed = crate::package::registry::push(&image, &plan.reference, plan.insecure_registry, ui) => pushed?,
            err = interrupt.wait() => return Err(err),
        }
        ui.info(&format!(
            "pushed {}@{} (linux/amd64, linux/arm64)",
            plan.reference, image.index.digest
        ));
    }
    Ok(image)
}
