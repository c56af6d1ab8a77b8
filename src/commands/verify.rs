//! `kbuild verify`: re-hash what was packaged.

use jiff::tz::TimeZone;

use crate::attest::allowed;
use crate::attest::sign::{self, Trust};
use crate::cli::VerifyArgs;
use crate::error::{Error, Kind, Result};
use crate::package::{self};
use crate::signals::Interrupt;
use crate::ui::Ui;

use crate::package::verify::verify_targets;
use crate::package::worker::blocking;

/// The allowed signers, identity and verify time of `--allowed-signers`, if given.
fn trust(args: &VerifyArgs, ui: &Ui) -> Result<Option<Trust>> {
    let Some(path) = args.allowed_signers.as_deref() else {
        return Ok(None);
    };
    let zone = local_zone();
    let (signers, skipped) = sign::load_allowed_signers(path, &zone)?;
    for why in &skipped {
        ui.warn(why);
    }
    let time = match &args.verify_time {
        Some(text) => allowed::parse_time(text, &zone).map_err(|why| {
            Error::usage(format!("--verify-time: {why}"))
                .with_hint("e.g. --verify-time 20250601 (local time) or 20250601120000Z (UTC)")
        })?,
        None => jiff::Timestamp::now().as_second(),
    };
    Ok(Some(Trust {
        signers,
        identity: args.identity.clone(),
        time,
    }))
}

/// The local time zone as the C library finds it, which is the zone ssh-keygen's mktime
/// reads dates without `Z` in: `TZ` (a zone name, a file or a POSIX rule), else
/// /etc/localtime, else UTC.
fn local_zone() -> TimeZone {
    let from_file = |path: &str| {
        let bytes = std::fs::read(path).ok()?;
        TimeZone::tzif(path, &bytes).ok()
    };
    let zone = match crate::env::current().get("TZ") {
        Some(tz) => {
            let tz = tz.strip_prefix(':').unwrap_or(tz);
            if tz.starts_with('/') {
                from_file(tz)
            } else {
                jiff::tz::db()
                    .get(tz)
                    .ok()
                    .or_else(|| TimeZone::posix(tz).ok())
            }
        }
        None => from_file("/etc/localtime"),
    };
    zone.unwrap_or(TimeZone::UTC)
}

/// `kbuild verify`.
pub async fn verify(args: &VerifyArgs, ui: &Ui, interrupt: &Interrupt) -> Result<()> {
    let signers = trust(args, ui)?;
    let targets = verify_targets(&args.dir);
    if targets.is_empty() {
        return Err(Error::usage(format!(
            "{} holds no SHA256SUMS, SHA512SUMS or manifest.json (nor do its release-tars/ or extension/)",
            args.dir.display()
        ))
        .with_hint("point kbuild verify at a directory kbuild packaged, e.g. out/release-tars"));
    }
    let mut problems = Vec::new();
    let mut signature_problems = false;
    let mut checked = 0;
    for dir in targets {
        ui.phase("verify", &dir.display().to_string());
        let d = dir.clone();
        let report = blocking(ui, "verify", 0, interrupt, move |cancel| {
            Ok(package::verify::verify_dir(&d, &cancel))
        })
        .await?;
        let Some(report) = report else { continue };
        ui.detail(&format!("checked against {}", report.sources.join(", ")));
        for (name, size) in &report.ok {
            ui.artifact(&format!("OK {}", dir.join(name).display()), *size);
        }
        checked += report.ok.len();
        for p in &report.problems {
            let shown = format!("{}: {}", dir.join(&p.file).display(), p.what);
            ui.warn(&shown);
            problems.push(shown);
        }
        if let Some(signers) = &signers {
            for (file, what) in super::sign::check_signatures(&dir, signers, ui) {
                signature_problems = true;
                let shown = format!("{}: {what}", dir.join(file).display());
                ui.warn(&shown);
                problems.push(shown);
            }
        }
    }
    if interrupt.fired() {
        return Err(interrupt.wait().await);
    }
    if !problems.is_empty() {
        let hint = if signature_problems {
            "a signature that is missing, made by a key the allowed signers file does not list, or that does not match its file means the set is not the one that was signed: get the set and its .sig files again from the release, and check that --allowed-signers lists the release key; for a key that has since expired, --verify-time can name a time it was valid"
        } else {
            "these files are not what kbuild wrote: download or package them again, and check what else touched them"
        };
        return Err(Error::new(
            Kind::Verify,
            format!(
                "verification failed ({}):\n  {}",
                crate::ui::count(problems.len(), "problem", "problems"),
                problems.join("\n  ")
            ),
        )
        .with_hint(hint));
    }
    let signed = if signers.is_some() {
        ", and every signature is good"
    } else {
        ""
    };
    ui.finished(&format!(
        "verified {}: every checksum, sidecar and manifest entry matches{signed}",
        crate::ui::count(checked, "artifact", "artifacts")
    ));
    Ok(())
}
