//! Signatures that need no service: SSHSIG (OpenSSH's PROTOCOL.sshsig, what
//! `ssh-keygen -Y sign -n file` writes) over a file's bytes, in `<file>.sig` beside it, made
//! and checked with the `ssh-key` crate. Anyone verifies them with
//! `ssh-keygen -Y verify -f allowed_signers -I ID -n file -s FILE.sig < FILE`.

use std::io::Write;
use std::path::{Path, PathBuf};

use ssh_key::{HashAlg, LineEnding, PrivateKey, PublicKey, SshSig};

use crate::error::{Error, Kind, Result};
use crate::input::{self, InputError, Links};
use crate::outdir::AtomicFile;

/// `ssh-keygen -Y sign` names the signature of FILE `FILE.sig`.
pub const SUFFIX: &str = ".sig";
/// The SSHSIG namespace for signing files (ssh-keygen's documented convention).
pub const NAMESPACE: &str = "file";
/// Keys, signatures and allowed_signers files are small; anything larger is not one.
const MAX_KEY_BYTES: u64 = 1 << 20;
/// What is signed is read whole: SHA256SUMS and the attestations are well under this.
const MAX_SIGNED_BYTES: u64 = 256 << 20;

/// The files of a set that carry signatures: the checksums (which vouch for every
/// artifact) and the attestations, those of them that exist in `dir`.
pub fn signed_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| {
                    n.ends_with(super::sbom::SUFFIX) || n.ends_with(super::provenance::SUFFIX)
                })
                .collect()
        })
        .unwrap_or_default();
    names.push("SHA256SUMS".to_string());
    names.sort();
    names
}

/// Reads an OpenSSH private key (`ssh-keygen -t ed25519` writes one). Bad input: exit 2.
pub fn load_key(path: &Path) -> Result<PrivateKey> {
    let text = input::read_text_capped(path, MAX_KEY_BYTES, Links::Follow).map_err(|e| {
        Error::usage(format!(
            "cannot read the signing key {}: {e}",
            path.display()
        ))
    })?;
    let key = PrivateKey::from_openssh(text.trim()).map_err(|e| {
        Error::usage(format!("{} is not an OpenSSH private key: {e}", path.display())).with_hint(
            "give the private key file ssh-keygen wrote (-----BEGIN OPENSSH PRIVATE KEY-----), not the .pub",
        )
    })?;
    if key.is_encrypted() {
        return Err(Error::usage(format!(
            "{} is protected by a passphrase, which kbuild cannot ask for",
            path.display()
        ))
        .with_hint("use a key without a passphrase kept for signing releases, or sign SHA256SUMS yourself: ssh-keygen -Y sign -f KEY -n file SHA256SUMS"));
    }
    let probe = key.sign(NAMESPACE, HashAlg::Sha512, b"kbuild");
    if let Err(e) = probe {
        return Err(Error::usage(format!(
            "{}: kbuild cannot sign with a {} key: {e}",
            path.display(),
            key.algorithm()
        ))
        .with_hint("use an Ed25519 or ECDSA P-256 key (ssh-keygen -t ed25519)"));
    }
    Ok(key)
}

/// Signs `<dir>/<name>` for every name, writing `<name>.sig` beside each.
pub fn sign_files(dir: &Path, names: &[String], key: &PrivateKey) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for name in names {
        let path = dir.join(name);
        let message = read_signed(&path).map_err(|e| {
            Error::new(Kind::Io, format!("cannot sign {}: {e}", path.display()))
                .with_hint("sign a directory kbuild packaged (it holds SHA256SUMS)")
        })?;
        let pem = key
            .sign(NAMESPACE, HashAlg::Sha512, &message)
            .and_then(|sig| sig.to_pem(LineEnding::LF))
            .map_err(|e| Error::internal(format!("cannot sign {}: {e}", path.display())))?;
        let sig_path = dir.join(format!("{name}{SUFFIX}"));
        let mut file = AtomicFile::create(&sig_path)?;
        file.write_all(pem.as_bytes())
            .map_err(|e| Error::io("cannot write", &sig_path, e))?;
        file.commit()?;
        written.push(sig_path);
    }
    Ok(written)
}

fn read_signed(path: &Path) -> std::result::Result<Vec<u8>, InputError> {
    use std::io::Read;
    let (file, _) = input::open_regular(path, Links::Refuse)?;
    let mut bytes = Vec::new();
    file.take(MAX_SIGNED_BYTES).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// One key an allowed_signers file trusts for the `file` namespace.
#[derive(Debug)]
pub struct Signer {
    pub principals: String,
    pub key: PublicKey,
}

/// Splits a line on whitespace outside double quotes.
fn tokens(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            c if c.is_whitespace() && !quoted => {
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Whether the options allow the `file` namespace (`namespaces="file,git"`; none: every one).
fn allows_file_namespace(options: &[String]) -> bool {
    let joined = options.join(",");
    let Some(at) = joined.to_ascii_lowercase().find("namespaces=\"") else {
        return true;
    };
    let list = &joined[at + "namespaces=\"".len()..];
    let list = list.split('"').next().unwrap_or_default();
    list.split(',').any(|n| n.trim() == NAMESPACE)
}

/// Parses an allowed_signers file (ssh-keygen(1) "ALLOWED SIGNERS": `principals [options]
/// keytype base64 [comment]` per line). Certificate authorities are not supported.
pub fn load_allowed_signers(path: &Path) -> Result<Vec<Signer>> {
    let text = input::read_text_capped(path, MAX_KEY_BYTES, Links::Follow).map_err(|e| {
        Error::usage(format!(
            "cannot read the allowed signers file {}: {e}",
            path.display()
        ))
    })?;
    let mut signers = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields = tokens(line);
        let key_at = (1..fields.len().saturating_sub(1)).find_map(|i| {
            PublicKey::from_openssh(&format!("{} {}", fields[i], fields[i + 1]))
                .ok()
                .map(|k| (i, k))
        });
        let Some((at, key)) = key_at else {
            return Err(Error::usage(format!(
                "{}:{}: not `principals [options] keytype base64`",
                path.display(),
                n + 1
            ))
            .with_hint("write one line per key, e.g. release@example.com ssh-ed25519 AAAA... (see ssh-keygen(1), ALLOWED SIGNERS)"));
        };
        let options = &fields[1..at];
        if options
            .iter()
            .any(|o| o.eq_ignore_ascii_case("cert-authority"))
        {
            return Err(Error::usage(format!(
                "{}:{}: cert-authority lines are not supported by kbuild verify",
                path.display(),
                n + 1
            ))
            .with_hint("list the signing keys themselves, or check with ssh-keygen -Y verify"));
        }
        if allows_file_namespace(options) {
            signers.push(Signer {
                principals: fields[0].trim_matches('"').to_string(),
                key,
            });
        }
    }
    if signers.is_empty() {
        return Err(Error::usage(format!(
            "{} trusts no key for the `file` namespace",
            path.display()
        ))
        .with_hint("add the release key's line: <principal> ssh-ed25519 AAAA..."));
    }
    Ok(signers)
}

/// Checks `<dir>/<name>.sig` against `<dir>/<name>`: Ok(principals of the signer), or
/// what is wrong.
pub fn verify_file(
    dir: &Path,
    name: &str,
    signers: &[Signer],
) -> std::result::Result<String, String> {
    let sig_name = format!("{name}{SUFFIX}");
    let sig_text = match input::read_text_capped(&dir.join(&sig_name), MAX_KEY_BYTES, Links::Refuse)
    {
        Ok(t) => t,
        Err(InputError::NotFound) => return Err(format!("is not signed: {sig_name} is missing")),
        Err(e) => return Err(format!("{sig_name} {e}")),
    };
    let sig = SshSig::from_pem(sig_text.trim())
        .map_err(|e| format!("{sig_name} is not an SSH signature: {e}"))?;
    if sig.namespace() != NAMESPACE {
        return Err(format!(
            "{sig_name} is signed for namespace {:?}, not {NAMESPACE:?}",
            sig.namespace()
        ));
    }
    let Some(signer) = signers
        .iter()
        .find(|s| s.key.key_data() == sig.public_key())
    else {
        let key = PublicKey::from(sig.public_key().clone());
        return Err(format!(
            "{sig_name} is signed by a key the allowed signers file does not trust ({})",
            key.fingerprint(HashAlg::Sha256)
        ));
    };
    let message =
        read_signed(&dir.join(name)).map_err(|e| format!("{e}; signature not checked"))?;
    signer
        .key
        .verify(NAMESPACE, &message, &sig)
        .map(|()| signer.principals.clone())
        .map_err(|_| {
            format!(
                "does not match its signature {sig_name}: the file or the signature was changed"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACCzPq7zfqLffKoBDe/eo04kH2XxtSmk9D7RQyf1xUqrYgAAAJgAIAxdACAM
XQAAAAtzc2gtZWQyNTUxOQAAACCzPq7zfqLffKoBDe/eo04kH2XxtSmk9D7RQyf1xUqrYg
AAAEC2BsIi0QwW2uFscKTUUXNHLsYX4FxlaSDSblbAj7WR7bM+rvN+ot98qgEN796jTiQf
ZfG1KaT0PtFDJ/XFSqtiAAAAEHVzZXJAZXhhbXBsZS5jb20BAgMEBQ==
-----END OPENSSH PRIVATE KEY-----
";

    #[test]
    fn signs_and_verifies_against_allowed_signers() {
        let dir = tempfile::tempdir().unwrap();
        let key_path = dir.path().join("key");
        std::fs::write(&key_path, KEY).unwrap();
        let key = load_key(&key_path).unwrap();
        let out = dir.path().join("set");
        std::fs::create_dir(&out).unwrap();
        std::fs::write(out.join("SHA256SUMS"), "abc  x\n").unwrap();
        assert_eq!(signed_files(&out), ["SHA256SUMS"]);
        sign_files(&out, &signed_files(&out), &key).unwrap();
        let public = key.public_key().to_openssh().unwrap();
        let allowed = dir.path().join("allowed");
        std::fs::write(
            &allowed,
            format!("# releases\nrel@example.com namespaces=\"file\" {public}\n"),
        )
        .unwrap();
        let signers = load_allowed_signers(&allowed).unwrap();
        assert_eq!(
            verify_file(&out, "SHA256SUMS", &signers).unwrap(),
            "rel@example.com"
        );
        std::fs::write(out.join("SHA256SUMS"), "abd  x\n").unwrap();
        assert!(verify_file(&out, "SHA256SUMS", &signers)
            .unwrap_err()
            .contains("does not match"));
        std::fs::write(
            &allowed,
            format!("git@example.com namespaces=\"git\" {public}\n"),
        )
        .unwrap();
        assert!(load_allowed_signers(&allowed).is_err(), "no key for `file`");
    }

    #[test]
    fn tokens_keep_quoted_options_whole() {
        assert_eq!(
            tokens(r#"a@b namespaces="file,git" ssh-ed25519 AAAA c"#),
            [
                "a@b",
                r#"namespaces="file,git""#,
                "ssh-ed25519",
                "AAAA",
                "c"
            ]
        );
    }
}
