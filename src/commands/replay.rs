//! `kbuild run plan.json`: a plan made by `kbuild plan --json` run as it was planned. The
//! command is resolved again from the plan's inputs, on the plan's tree and output directory;
//! it runs only when every pin holds (the tree's commit and the digest of its changes, the
//! `--ref`'s commit, the image id, `package`'s binaries) and the jobs and artifacts come out
//! the same. All of that is checked before anything is created (`building::run`): a refused
//! plan leaves no --out, no lock in it, and nothing on the engine. A pipeline plans once and
//! builds elsewhere.

use std::path::Path;

use crate::error::{Error, Result};
use crate::plan::PlannedImage;
use crate::plan::{Plan, FORMAT};
use crate::resolve::options::{Options, Origin};

/// A saved plan is read up to this size (a quick-release plan for every platform is ~100 KiB).
const MAX_BYTES: u64 = 8 << 20;

/// Whether `path` names a saved plan rather than a recipe.
pub fn is_plan_file(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "json")
}

pub fn load(path: &Path) -> Result<Plan> {
    use crate::input::{self, Links};
    let text = input::read_text_capped(path, MAX_BYTES, Links::Follow).map_err(|e| {
        Error::usage(format!("plan {} {e}", path.display()))
            .with_hint("make one with `kbuild plan --json <command or recipe> > plan.json`")
    })?;
    let plan: Plan = serde_json::from_str(&text).map_err(|e| {
        Error::usage(format!("{} is not a kbuild plan: {e}", path.display()))
            .with_hint("make one with `kbuild plan --json <command or recipe> > plan.json`")
    })?;
    if plan.format != FORMAT {
        return Err(Error::usage(format!(
            "{} is a plan of format {}, this kbuild reads format {FORMAT}",
            path.display(),
            plan.format
        ))
        .with_hint("plan again with this kbuild"));
    }
    Ok(plan)
}

/// The plan's inputs as an overlay, on the plan's own tree and output directory.
pub fn options(plan: &Plan, path: &Path) -> Result<Options> {
    let mut options = Options::default();
    for input in &plan.inputs {
        options
            .set(
                &input.name,
                input.value.clone(),
                Origin::Plan(path.to_path_buf()),
            )
            .map_err(|e| {
                Error::usage(format!("{}: input {}: {e}", path.display(), input.name))
                    .with_hint("plan again with this kbuild")
            })?;
    }
    let from = || Origin::Plan(path.to_path_buf());
    if let Some(source) = plan.source.as_ref().filter(|s| s.repo.is_none()) {
        options.kube_root = Some(crate::resolve::options::Given {
            value: source.root.clone(),
            from: from(),
        });
    }
    options.out = Some(crate::resolve::options::Given {
        value: plan.out.clone(),
        from: from(),
    });
    Ok(options)
}

fn stale(what: String) -> Error {
    Error::usage(format!("the saved plan is stale: {what}")).with_hint(
        "plan again (`kbuild plan --json ... > plan.json`) and run the new plan, or run the command itself",
    )
}

/// Before a fetch: the plan's `--ref` must still name the commit it pinned (asked with
/// `git ls-remote`, so a moved ref is refused before the checkout is switched). A remote
/// that does not answer is left to the fetch, whose commit is checked after.
pub fn check_remote(saved: &Plan, spec: &crate::source::SourceSpec) -> Result<()> {
    let crate::source::SourceSpec::Git { repo, git_ref, .. } = spec else {
        return Ok(());
    };
    let Some(planned) = saved.source.as_ref().and_then(|s| s.commit.as_deref()) else {
        return check_commit(saved, None);
    };
    match crate::source::checkout::remote_commit(repo, git_ref) {
        Ok(Some(now)) if now != planned => Err(stale(format!(
            "{git_ref} names commit {now} now, the plan was made at {planned}"
        ))),
        _ => Ok(()),
    }
}

/// The tree must be the one the plan was made on: its commit, and the digest of its
/// changes when it was not clean (a tree made dirty, or edited further, is refused).
pub fn check_source(saved: &Plan, info: &crate::source::SourceInfo) -> Result<()> {
    check_commit(saved, info.commit.as_deref())?;
    let Some(planned) = saved.source.as_ref() else {
        return Ok(());
    };
    let now = crate::resolve::jobs::source_facts(info)?;
    if planned.changes != now.changes {
        return Err(stale(match (&planned.changes, &now.changes) {
            (None, Some(_)) => format!(
                "the tree {} was clean when it was made and has changes now ({})",
                info.root.display(),
                now.tree_state
            ),
            (Some(_), None) => format!(
                "the tree {} had changes when it was made and is clean now",
                info.root.display()
            ),
            _ => format!(
                "the tree {} changed since it was made: its uncommitted changes differ",
                info.root.display()
            ),
        }));
    }
    Ok(())
}

/// `package`: every binary it packages must still have the planned sha256.
pub fn check_binaries(saved: &Plan, now: &[crate::plan::PinnedFile]) -> Result<()> {
    for planned in &saved.binaries {
        match now.iter().find(|f| f.path == planned.path) {
            None => {
                return Err(stale(format!(
                    "{} is gone from the binary tree",
                    planned.path.display()
                )))
            }
            Some(f) if f.sha256 != planned.sha256 => {
                return Err(stale(format!(
                    "{} changed: sha256 {} now, {} when it was made",
                    planned.path.display(),
                    f.sha256,
                    planned.sha256
                )))
            }
            Some(_) => {}
        }
    }
    match now
        .iter()
        .find(|f| !saved.binaries.iter().any(|p| p.path == f.path))
    {
        Some(extra) => Err(stale(format!(
            "{} appeared in the binary tree since it was made",
            extra.path.display()
        ))),
        None => Ok(()),
    }
}

/// The tree must be at the commit the plan was made at.
pub fn check_commit(saved: &Plan, commit: Option<&str>) -> Result<()> {
    let Some(planned) = saved.source.as_ref() else {
        return Ok(());
    };
    match (planned.commit.as_deref(), commit) {
        (None, _) if planned.git_ref.is_some() => Err(stale(format!(
            "it was made before {} was fetched, so it names no commit",
            planned.git_ref.as_deref().unwrap_or("the ref")
        ))),
        (Some(p), Some(now)) if p != now => Err(stale(match &planned.git_ref {
            Some(git_ref) => {
                format!("{git_ref} was fetched at commit {now}, the plan was made at {p}")
            }
            None => format!(
                "the tree {} is at commit {now}, the plan was made at {p}",
                planned.root.display()
            ),
        })),
        (Some(p), None) => Err(stale(format!(
            "the plan was made at commit {p}, and {} has no commit now",
            planned.root.display()
        ))),
        _ => Ok(()),
    }
}

/// The image the engine must have (checked before anything is created, and again by the
/// builder); a plan made before the image was there names no id and is refused.
pub fn expected_image(saved: &Plan) -> Result<Option<crate::exec::builder::ImagePin>> {
    let Some(engine) = &saved.engine else {
        return Ok(None);
    };
    match &engine.image_id {
        None => Err(stale(format!(
            "it names no image id ({} was not on the engine when it was made)",
            engine.image
        ))),
        Some(id) => Ok(Some(crate::exec::builder::ImagePin {
            image: engine.image.clone(),
            id: id.clone(),
            repo_digest: engine.repo_digest.clone(),
        })),
    }
}

/// The plan resolved now must be the saved one: same jobs, same artifacts.
pub fn check_same(saved: &Plan, now: &Plan) -> Result<()> {
    let (saved, now) = (
        crate::ui::show::redacted(saved),
        crate::ui::show::redacted(now),
    );
    if saved.jobs.len() != now.jobs.len() {
        return Err(stale(format!(
            "it has {} jobs, the tree and settings now give {}",
            saved.jobs.len(),
            now.jobs.len()
        )));
    }
    // The engine each job runs on is part of the plan: the run follows it.
    for (a, b) in saved.jobs.iter().zip(&now.jobs) {
        if a != b {
            let field = first_difference(
                &serde_json::to_value(a).unwrap_or_default(),
                &serde_json::to_value(b).unwrap_or_default(),
            );
            return Err(stale(format!("job {} differs in {field}", a.name)));
        }
    }
    if saved.packaging != now.packaging {
        return Err(stale("the artifacts it writes differ".to_string()));
    }
    check_images(&saved.images, &now.images)
}

/// A saved plan's server images: the same ones, on bases the engine still has under the
/// pinned ids (as the builder image is checked by id).
fn check_images(saved: &[PlannedImage], now: &[PlannedImage]) -> Result<()> {
    if saved.len() != now.len() {
        return Err(stale(format!(
            "it has {} server images, the tree and settings now give {}",
            saved.len(),
            now.len()
        )));
    }
    for (a, b) in saved.iter().zip(now) {
        if a.base_id != b.base_id && a.base_ref == b.base_ref {
            return Err(stale(format!(
                "the base image {} of {} for linux/{} moved: planned {}, the engine has {}",
                a.base_ref,
                a.binary,
                a.arch,
                a.base_id.as_deref().unwrap_or("nothing"),
                b.base_id.as_deref().unwrap_or("nothing")
            )));
        }
        if a != b {
            let field = first_difference(
                &serde_json::to_value(a).unwrap_or_default(),
                &serde_json::to_value(b).unwrap_or_default(),
            );
            return Err(stale(format!(
                "the server image of {} for linux/{} differs in {field}",
                a.binary, a.arch
            )));
        }
    }
    Ok(())
}

/// The first top-level field in which two JSON objects differ, with both values.
fn first_difference(a: &serde_json::Value, b: &serde_json::Value) -> String {
    if let (Some(a), Some(b)) = (a.as_object(), b.as_object()) {
        for (key, value) in a {
            let other = b.get(key).cloned().unwrap_or_default();
            if *value != other {
                return format!("{key} (planned {value}, now {other})");
            }
        }
    }
    "its fields".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{CommandKind, SourceFacts};

    fn plan_at(commit: Option<&str>) -> Plan {
        let mut plan = Plan::new(CommandKind::Build, Vec::new(), "/tmp/out".into());
        plan.source = Some(SourceFacts {
            root: "/src/k".into(),
            repo: None,
            git_ref: None,
            commit: commit.map(str::to_string),
            tree_state: "clean".into(),
            git_version: "v1.34.0".into(),
            source_date_epoch: 1,
            go_version: None,
            changes: None,
        });
        plan
    }

    #[test]
    fn a_moved_tree_is_refused_naming_both_commits() {
        let saved = plan_at(Some("aaaa"));
        assert!(check_commit(&saved, Some("aaaa")).is_ok());
        let err = check_commit(&saved, Some("bbbb")).unwrap_err();
        assert!(
            err.message.contains("bbbb") && err.message.contains("aaaa"),
            "{}",
            err.message
        );
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn plans_round_trip_through_json() {
        let plan = plan_at(Some("aaaa"));
        let text = serde_json::to_string(&plan).unwrap();
        let back: Plan = serde_json::from_str(&text).unwrap();
        assert_eq!(plan, back);
    }
}
