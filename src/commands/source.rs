//! `kbuild source`: clone or update a checkout at a ref and print its version facts.

use std::path::Path;

use crate::checks::{self, CheckPlan, Checker};
use crate::cli::SourceCmdArgs;
use crate::error::Result;
use crate::source::{self, checkout, Overrides, SourceInfo};
use crate::ui::{Mode, Ui};

/// `kbuild source`.
pub fn source(args: &SourceCmdArgs, ui: &Ui) -> Result<()> {
    let overrides = Overrides::from_env(args.git_version.clone())?;
    let dir = match &args.dir {
        Some(dir) => dir.clone(),
        None => checkout::default_dir(&args.repo)?,
    };
    Checker::for_build(
        &CheckPlan::new(checks::Profile::Build, None, None, &[])?,
        ui,
    )
    .run("git", checks::git)?;
    let outcome = checkout::get(
        &checkout::Request {
            repo: &args.repo,
            git_ref: args.git_ref.as_deref(),
            dir: &dir,
            force: args.force,
            describe: overrides.git_version.is_none(),
        },
        ui,
    )?;
    for saved in &outcome.saved {
        ui.warn(&format!("local work put aside: {saved}"));
    }
    let info = source::inspect(&outcome.dir, &overrides)?;
    print_facts(&info, &outcome, ui);
    ui.finished(&format!(
        "{} at {} ({}) in {}",
        outcome.target,
        &outcome.commit[..12.min(outcome.commit.len())],
        info.version.git_version,
        outcome.dir.display()
    ));
    Ok(())
}

fn print_facts(info: &SourceInfo, outcome: &checkout::Outcome, ui: &Ui) {
    match ui.mode() {
        Mode::Json => {
            let mut facts = serde_json::json!({ "event": "source", "target": outcome.target, "switched": outcome.switched });
            if let (Some(o), Ok(serde_json::Value::Object(f))) =
                (facts.as_object_mut(), serde_json::to_value(info))
            {
                o.extend(f);
            }
            crate::ui::emit(crate::ui::Stream::Out, &facts.to_string());
        }
        Mode::Quiet => {}
        Mode::Plain | Mode::Terminal => {
            let rows: Vec<(&str, String)> = vec![
                ("dir", display(&outcome.dir)),
                ("ref", outcome.target.clone()),
                ("commit", info.commit.clone().unwrap_or_default()),
                ("gitVersion", info.version.git_version.clone()),
                ("gitMajor", info.version.git_major.clone()),
                ("gitMinor", info.version.git_minor.clone()),
                ("gitTreeState", info.tree_state.as_str().to_string()),
                ("SOURCE_DATE_EPOCH", info.source_date_epoch.to_string()),
                (
                    "go",
                    info.go_version
                        .clone()
                        .unwrap_or_else(|| "(no .go-version)".into()),
                ),
                (
                    "image",
                    info.default_image()
                        .unwrap_or_else(|| "(no build/build-image/cross/VERSION)".into()),
                ),
            ];
            for (key, value) in rows {
                crate::ui::emit(crate::ui::Stream::Out, &format!("{key:<18} {value}"));
            }
        }
    }
}

fn display(path: &Path) -> String {
    path.display().to_string()
}
