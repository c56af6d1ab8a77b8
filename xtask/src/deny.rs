//! `cargo deny check bans licenses sources` against deny.toml: one version of each crate
//! (bar the listed exceptions), permissive licenses, crates.io only.
//!
//! cargo-deny is installed from crates.io into target/tools on first use, at a pinned
//! version, so that a fresh machine needs nothing beyond cargo.

use std::path::Path;

use crate::util::{cargo, output, run, step, Failure};

const VERSION: &str = "0.20.2";

pub fn check(root: &Path) -> Result<(), Failure> {
    let tools = root.join("target/tools");
    let binary = tools.join("bin/cargo-deny");
    let installed = output(std::process::Command::new(&binary).arg("--version"))
        .is_some_and(|v| v.ends_with(VERSION));
    if !installed {
        step(&format!(
            "cargo install cargo-deny {VERSION} into target/tools (once; a few minutes)"
        ));
        run(cargo()
            .args([
                "install",
                "--locked",
                "--quiet",
                "--version",
                VERSION,
                "--root",
            ])
            .arg(&tools)
            .arg("cargo-deny"))?;
    }
    step("cargo deny check bans licenses sources (deny.toml)");
    // Called as cargo calls a subcommand: the subcommand's name comes first.
    run(std::process::Command::new(&binary).args(["deny", "check", "bans", "licenses", "sources"]))
}
