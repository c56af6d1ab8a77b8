//! Printing a plan: a readable tree on a terminal, or the plan itself as JSON (`--json`).
//! Secrets never reach the output: URLs with credentials and every variable's value go
//! through the redactor.

use std::fmt::Write;

use crate::error::Result;
use crate::plan::{Job, Plan};
use crate::units::human_bytes;

/// The plan fit to show or save: credentials in URLs (a GOPROXY, a repository) hidden.
pub fn redacted(plan: &Plan) -> Plan {
    let mut plan = plan.clone();
    for job in &mut plan.jobs {
        for pair in &mut job.env {
            *pair = crate::redact::text(pair);
        }
    }
    if let Some(source) = &mut plan.source {
        source.repo = source.repo.as_deref().map(crate::redact::url);
    }
    plan
}

/// Prints the plan: JSON (one document) or the tree.
pub fn print(plan: &Plan, json: bool) -> Result<()> {
    let plan = redacted(plan);
    let text = if json {
        let mut text = serde_json::to_string_pretty(&plan)
            .map_err(|e| crate::error::Error::internal(format!("cannot write the plan: {e}")))?;
        text.push('\n');
        text
    } else {
        tree(&plan)
    };
    crate::ui::write_stdout(text.as_bytes())
}

fn tree(plan: &Plan) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "plan: kbuild {}", plan.command.name());
    if !plan.inputs.is_empty() {
        let _ = writeln!(t, "├─ inputs");
        for (i, input) in plan.inputs.iter().enumerate() {
            let b = branch(i, plan.inputs.len());
            let _ = writeln!(
                t,
                "│  {b} {} = {}  ({})",
                input.name, input.value, input.from
            );
        }
    }
    if let Some(s) = &plan.source {
        let commit = s.commit.as_deref().unwrap_or("no commit");
        let _ = writeln!(t, "├─ source {}", s.root.display());
        if let (Some(repo), Some(r)) = (&s.repo, &s.git_ref) {
            let _ = writeln!(t, "│  ├─ from {repo} at {r}");
        }
        let _ = writeln!(
            t,
            "│  └─ {commit} ({}, {}), SOURCE_DATE_EPOCH={}",
            s.git_version, s.tree_state, s.source_date_epoch
        );
    }
    if let Some(e) = &plan.engine {
        let _ = writeln!(
            t,
            "├─ engine {:?} at {} ({})",
            e.kind, e.endpoint, e.endpoint_from
        );
        let id = e.image_id.as_deref().unwrap_or("not on the engine yet");
        let _ = writeln!(t, "│  ├─ image {} ({id})", e.image);
        if let Some(transfer) = &e.transfer {
            let _ = writeln!(t, "│  ├─ transfer {transfer}");
        }
        if let Some(volume) = &e.cache_volume {
            let _ = writeln!(t, "│  ├─ Go cache volume {volume}");
        }
        let memory = e
            .memory_limit
            .map(human_bytes)
            .unwrap_or_else(|| "no memory limit".into());
        let stall = e
            .stall_timeout_secs
            .map(|s| format!("stall timeout {s}s"))
            .unwrap_or_else(|| "no stall timeout".into());
        let _ = writeln!(
            t,
            "│  └─ {memory}, {stall}, network {}{}",
            if e.network { "on" } else { "off" },
            if e.force { ", --force" } else { "" }
        );
    }
    if !plan.checks.is_empty() {
        let _ = writeln!(t, "├─ checks");
        for (i, c) in plan.checks.iter().enumerate() {
            let what = c.requires.as_deref().unwrap_or("reported");
            let skipped = if c.skipped { " (skipped)" } else { "" };
            let b = branch(i, plan.checks.len());
            let _ = writeln!(t, "│  {b} {}: {what}{skipped}", c.name);
        }
    }
    for job in &plan.jobs {
        job_tree(&mut t, job);
    }
    if !plan.packaging.is_empty() {
        let _ = writeln!(t, "├─ packaging into {}", plan.out.display());
        for (i, a) in plan.packaging.iter().enumerate() {
            let platform = a
                .platform
                .as_deref()
                .map(|p| format!(" {p}"))
                .unwrap_or_default();
            let b = branch(i, plan.packaging.len());
            let _ = writeln!(t, "│  {b} {} [{}{platform}]", a.file, a.kind);
            let indent = if i + 1 == plan.packaging.len() {
                "   "
            } else {
                "│  "
            };
            for (j, m) in a.members.iter().enumerate() {
                let _ = writeln!(t, "│  {indent}{} {m}", branch(j, a.members.len()));
            }
        }
    }
    if !plan.images.is_empty() {
        let _ = writeln!(
            t,
            "├─ server images into {}",
            plan.out.join("release-images").display()
        );
        for (i, image) in plan.images.iter().enumerate() {
            let base_id = image.base_id.as_deref().unwrap_or("not in the engine");
            let _ = writeln!(
                t,
                "│  {} {} on {} ({base_id})",
                branch(i, plan.images.len()),
                image.names.join(", "),
                image.base_ref
            );
        }
    }
    for note in &plan.notes {
        let _ = writeln!(t, "├─ note: {note}");
    }
    let _ = writeln!(t, "└─ nothing was run.");
    t
}

/// `├─` for an item with more after it, `└─` for the last.
fn branch(i: usize, len: usize) -> &'static str {
    if i + 1 == len {
        "└─"
    } else {
        "├─"
    }
}

fn job_tree(t: &mut String, job: &Job) {
    let _ = writeln!(t, "├─ job {} ({})", job.name, job.platforms.join(", "));
    let _ = writeln!(t, "│  ├─ image {}", job.image);
    let _ = writeln!(
        t,
        "│  ├─ run {} (in {})",
        job.command.join(" "),
        job.workdir
    );
    if let Some(user) = &job.user {
        let _ = writeln!(t, "│  ├─ user {user}");
    }
    let _ = writeln!(t, "│  ├─ network {}", job.network);
    let _ = writeln!(t, "│  ├─ engine {}", job.engine);
    if let Some(cpus) = job.cpus {
        let _ = writeln!(t, "│  ├─ cpus {cpus}");
    }
    if let Some(limit) = job.memory_limit {
        let _ = writeln!(t, "│  ├─ memory {}", human_bytes(limit));
    }
    for m in &job.mounts {
        let _ = writeln!(t, "│  ├─ mount {m}");
    }
    for e in &job.env {
        let _ = writeln!(t, "│  ├─ env {e}");
    }
    for (i, o) in job.outputs.iter().enumerate() {
        let last = i + 1 == job.outputs.len();
        let _ = writeln!(t, "│  {} output {o}", if last { "└─" } else { "├─" });
    }
}
