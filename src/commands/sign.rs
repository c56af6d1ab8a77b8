//! Signing as the commands use it: `kbuild sign`, `--sign-key` at the end of a packaging
//! run, and the signature checks of `kbuild verify --allowed-signers`.

use std::path::{Path, PathBuf};

use ssh_key::{HashAlg, PrivateKey};

use crate::attest::sign::{self, Trust};
use crate::cli::SignArgs;
use crate::error::{Error, Result};
use crate::ui::Ui;

/// The directories under `dir` that hold a packaged set (they have SHA256SUMS).
fn signable(dir: &Path) -> Vec<PathBuf> {
    crate::package::verify::verify_targets(dir)
        .into_iter()
        .filter(|d| d.join("SHA256SUMS").is_file())
        .collect()
}

/// `kbuild sign`.
pub fn sign(args: &SignArgs, ui: &Ui) -> Result<()> {
    let key = sign::load_key(&args.key)?;
    let targets = signable(&args.dir);
    if targets.is_empty() {
        return Err(Error::usage(format!(
            "{} holds no SHA256SUMS (nor do its release-tars/ or extension/): nothing to sign",
            args.dir.display()
        ))
        .with_hint(
            "sign a directory kbuild packaged, e.g. kbuild sign --key KEY out/release-tars",
        ));
    }
    let mut count = 0;
    for dir in &targets {
        count += sign_set(dir, &key, ui)?;
    }
    ui.finished(&format!(
        "wrote {count} signatures with key {}; check them with: kbuild verify --allowed-signers FILE {}",
        key.fingerprint(HashAlg::Sha256),
        args.dir.display()
    ));
    Ok(())
}

/// Signs the sums and the attestations in `dir`; returns how many signatures it wrote.
pub fn sign_set(dir: &Path, key: &PrivateKey, ui: &Ui) -> Result<usize> {
    ui.phase("sign", &dir.display().to_string());
    let names = sign::signed_files(dir);
    let written = sign::sign_files(dir, &names, key)?;
    for path in &written {
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        ui.artifact(&path.display().to_string(), size);
    }
    Ok(written.len())
}

/// After a packaging run: signs the set in `dir` when `--sign-key` was given.
pub fn sign_after_run(key: Option<&PrivateKey>, dir: &Path, ui: &Ui) -> Result<()> {
    let Some(key) = key else { return Ok(()) };
    let count = sign_set(dir, key, ui)?;
    ui.info(&format!(
        "signed {count} files with key {}",
        key.fingerprint(HashAlg::Sha256)
    ));
    Ok(())
}

/// Loads `--sign-key` before any work starts, so a bad key fails at once (exit 2).
pub fn load_sign_key(path: Option<&Path>) -> Result<Option<PrivateKey>> {
    path.map(sign::load_key).transpose()
}

/// Checks the signatures of `dir`'s sums and attestations: (file, what is wrong) for each
/// problem; the files that pass are reported as they are checked.
pub fn check_signatures(dir: &Path, trust: &Trust, ui: &Ui) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    for name in sign::signed_files(dir) {
        match sign::verify_file(dir, &name, trust) {
            Ok(principals) => ui.info(&format!(
                "signature OK {} (signed by {principals})",
                dir.join(&name).display()
            )),
            Err(what) => problems.push((name, what)),
        }
    }
    problems
}
