//! Signatures that need no service: SSHSIG (OpenSSH's PROTOCOL.sshsig, what
//! `ssh-keygen -Y sign -n file` writes) over a file's bytes, in `<file>.sig` beside it, made
//! and checked with the `ssh-key` crate. Anyone verifies them with
//! `ssh-keygen -Y verify -f allowed_signers -I ID -n file -s FILE.sig < FILE`.

use std::io::Write;
use std::path::{Path, PathBuf};

use jiff::tz::TimeZone;
use ssh_key::certificate::CertType;
use ssh_key::{Certificate, HashAlg, LineEnding, PrivateKey, PublicKey, SshSig};

use super::allowed;
pub use super::allowed::Signer;

use crate::error::{Error, Kind, Result};
use crate::input::{self, InputError, Links};
use crate::outdir::AtomicFile;

/// `ssh-keygen -Y sign` names the signature of FILE `FILE.sig`.
pub const SUFFIX: &str = ".sig";
/// The SSHSIG namespace for signing files (ssh-keygen's documented convention).
pub const NAMESPACE: &str = "file";
/// Keys, signatures and allowed_signers files are small; anything larger is not one.
const MAX_KEY_BYTES: u64 = 1 << 20;
/// What is signed is read whole: the sums and the attestations are well under this.
const MAX_SIGNED_BYTES: u64 = 256 << 20;

/// The checksum lists, signed when present. SHA256SUMS and SHA512SUMS list every artifact,
/// the attestations and manifest.json, so their signatures cover the whole set.
pub const SUMS: &[&str] = &["SHA256SUMS", "SHA512SUMS"];

/// The files of a set that carry signatures: SHA256SUMS, and of SHA512SUMS and the
/// attestations those that exist in `dir` (a consumer may check any of them alone).
pub fn signed_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| {
                    n.ends_with(super::sbom::SUFFIX)
                        || n.ends_with(super::provenance::SUFFIX)
                        || n == SUMS[1]
                })
                .collect()
        })
        .unwrap_or_default();
    names.push(SUMS[0].to_string());
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
    let key =
        PrivateKey::from_openssh(text.trim()).map_err(|e| not_a_private_key(path, &text, e))?;
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

/// Says what `path` is when it is not a private key: a public key (the usual slip: the
/// `.pub` beside the key), or something ssh-key cannot read, with its own words.
fn not_a_private_key(path: &Path, text: &str, e: ssh_key::Error) -> Error {
    if PublicKey::from_openssh(text.trim()).is_ok() {
        let private = path.with_extension("");
        let hint = if path.extension().is_some_and(|x| x == "pub") && private.is_file() {
            format!(
                "pass the private key beside it: --key {}",
                private.display()
            )
        } else {
            "pass the private key file (-----BEGIN OPENSSH PRIVATE KEY-----); the .pub is what verifiers put in allowed_signers".to_string()
        };
        return Error::usage(format!(
            "{} is an OpenSSH public key, not an OpenSSH private key: kbuild signs with the private key",
            path.display()
        ))
        .with_hint(hint);
    }
    Error::usage(format!(
        "{} is not an OpenSSH private key ({e})",
        path.display()
    ))
    .with_hint("give the private key file ssh-keygen wrote (-----BEGIN OPENSSH PRIVATE KEY-----)")
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

/// What `kbuild verify --allowed-signers` checks each signature against, as
/// `ssh-keygen -Y verify -f FILE [-I ID] [-Overify-time=T] -n file` does.
#[derive(Debug)]
pub struct Trust {
    pub signers: Vec<Signer>,
    /// The identity the signer must have (`-I`); None: any identity its line lists.
    pub identity: Option<String>,
    /// Unix seconds at which keys and certificates must be valid (`-Overify-time`).
    pub time: i64,
}

/// Reads an allowed_signers file: its usable lines, and a warning for each line skipped
/// (ssh-keygen skips them too). A file with no usable line is bad input: exit 2.
pub fn load_allowed_signers(path: &Path, zone: &TimeZone) -> Result<(Vec<Signer>, Vec<String>)> {
    let text = input::read_text_capped(path, MAX_KEY_BYTES, Links::Follow).map_err(|e| {
        Error::usage(format!(
            "cannot read the allowed signers file {}: {e}",
            path.display()
        ))
    })?;
    let (signers, skipped) = allowed::parse(&text, zone);
    let skipped: Vec<String> = skipped
        .into_iter()
        .map(|why| format!("{}: {why}; ssh-keygen skips this line too", path.display()))
        .collect();
    if signers.is_empty() {
        let mut message = format!("{} lists no key kbuild can use", path.display());
        for why in &skipped {
            message.push_str("\n  ");
            message.push_str(why);
        }
        return Err(Error::usage(message).with_hint(
            "write one line per key, e.g. release@example.com namespaces=\"file\" ssh-ed25519 AAAA... (see ssh-keygen(1), ALLOWED SIGNERS)",
        ));
    }
    Ok((signers, skipped))
}

/// A signature as read from `<file>.sig`, with the certificate it was made with, if any.
struct Envelope {
    /// The SSHSIG, carrying the plain public key that made it.
    sig: SshSig,
    cert: Option<Certificate>,
}

/// Reads an SSHSIG in PEM. ssh-key reads those made by plain keys; one made with a
/// certificate (`ssh-keygen -Y sign -f user-cert.pub`) carries the certificate in the
/// public key field (PROTOCOL.sshsig), which is read here.
fn read_envelope(pem: &str) -> std::result::Result<Envelope, String> {
    match SshSig::from_pem(pem) {
        Ok(sig) => Ok(Envelope { sig, cert: None }),
        Err(e) => cert_envelope(pem).ok_or_else(|| e.to_string()),
    }
}

/// PROTOCOL.sshsig: "SSHSIG", uint32 version, then the strings publickey, namespace,
/// reserved, hash_algorithm and signature.
fn cert_envelope(pem: &str) -> Option<Envelope> {
    use base64::Engine;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let blob = base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .ok()?;
    let mut rest = blob.strip_prefix(b"SSHSIG")?;
    let (version, tail) = rest.split_first_chunk::<4>()?;
    rest = tail;
    if u32::from_be_bytes(*version) != 1 {
        return None;
    }
    let mut next = || -> Option<&[u8]> {
        let (len, tail) = rest.split_first_chunk::<4>()?;
        let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
        let (field, tail) = (tail.get(..len)?, tail.get(len..)?);
        rest = tail;
        Some(field)
    };
    let cert = Certificate::from_bytes(next()?).ok()?;
    let namespace = std::str::from_utf8(next()?).ok()?.to_string();
    let _reserved = next()?;
    let hash = HashAlg::new(std::str::from_utf8(next()?).ok()?).ok()?;
    let signature = ssh_key::Signature::try_from(next()?).ok()?;
    let sig = SshSig::new(cert.public_key().clone(), namespace, hash, signature).ok()?;
    Some(Envelope {
        sig,
        cert: Some(cert),
    })
}

/// Why a certificate does not vouch for the signer at `trust.time`, as OpenSSH's
/// `sshkey_cert_check_authority` judges a user certificate for `-Y verify`: its CA's
/// signature, its type, its validity (the end excluded) and its principals.
fn cert_problem(cert: &Certificate, trust: &Trust) -> Option<String> {
    if cert.verify_signature().is_err() {
        return Some("carries a certificate whose CA signature is not valid".to_string());
    }
    if cert.cert_type() != CertType::User {
        return Some("carries a host certificate, not a user certificate".to_string());
    }
    let time = u64::try_from(trust.time).unwrap_or(0);
    if time < cert.valid_after() {
        return Some(format!(
            "carries a certificate that is not valid yet at the verify time {}",
            allowed::show_time(trust.time)
        ));
    }
    if time >= cert.valid_before() {
        return Some(format!(
            "carries a certificate that has expired at the verify time {}",
            allowed::show_time(trust.time)
        ));
    }
    let id = trust.identity.as_deref()?;
    if !cert.valid_principals().iter().any(|p| p == id) {
        return Some(format!(
            "carries a certificate for {:?}, not for the identity {id:?}",
            cert.valid_principals()
        ));
    }
    None
}

/// Why `line` does not vouch for this signature, or None when it does. The checks are
/// those of OpenSSH sshsig.c `check_allowed_keys_line`.
fn line_problem(line: &Signer, envelope: &Envelope, trust: &Trust) -> Option<String> {
    let id = trust.identity.as_deref();
    if !line.allows_identity(id) {
        return Some(format!(
            "is trusted for {:?} only, not for the identity {:?}",
            line.principals,
            id.unwrap_or_default()
        ));
    }
    if !line.allows_namespace(NAMESPACE) {
        return Some(format!(
            "is trusted in namespaces {:?} only, not in {NAMESPACE:?}",
            line.namespaces.as_deref().unwrap_or_default()
        ));
    }
    if let Some(why) = line.invalid_at(trust.time) {
        return Some(why);
    }
    envelope.cert.as_ref().and_then(|c| cert_problem(c, trust))
}

/// Whether `line` names the key that made the signature: the key itself on a plain line,
/// the certificate's CA on a `cert-authority` line (sshsig.c: a certificate never matches a
/// plain line, nor a plain key a CA line).
fn names_key(line: &Signer, envelope: &Envelope) -> bool {
    match (&envelope.cert, line.cert_authority) {
        (None, false) => line.key.key_data() == envelope.sig.public_key(),
        (Some(cert), true) => line.key.key_data() == cert.signature_key(),
        _ => false,
    }
}

/// The line that vouches for the signature (any one will do, as ssh-keygen accepts the
/// first that does), or why none does.
fn trusted_line<'a>(
    envelope: &Envelope,
    trust: &'a Trust,
) -> std::result::Result<&'a Signer, String> {
    let mut reasons = Vec::new();
    for line in trust.signers.iter().filter(|l| names_key(l, envelope)) {
        match line_problem(line, envelope, trust) {
            None => return Ok(line),
            Some(why) => reasons.push(format!("line {}: its key {why}", line.line)),
        }
    }
    if reasons.is_empty() {
        let key = PublicKey::from(envelope.sig.public_key().clone());
        return Err(format!(
            "is signed by a key the allowed signers file does not trust ({})",
            key.fingerprint(HashAlg::Sha256)
        ));
    }
    Err(format!(
        "is signed by a key the allowed signers file does not accept here ({})",
        reasons.join("; ")
    ))
}

/// Checks `<dir>/<name>.sig` against `<dir>/<name>`: Ok(the principals of the line that
/// vouches for it), or what is wrong.
pub fn verify_file(dir: &Path, name: &str, trust: &Trust) -> std::result::Result<String, String> {
    let sig_name = format!("{name}{SUFFIX}");
    let sig_text = match input::read_text_capped(&dir.join(&sig_name), MAX_KEY_BYTES, Links::Refuse)
    {
        Ok(t) => t,
        Err(InputError::NotFound) => return Err(format!("is not signed: {sig_name} is missing")),
        Err(e) => return Err(format!("{sig_name} {e}")),
    };
    let envelope = read_envelope(sig_text.trim())
        .map_err(|e| format!("{sig_name} is not an SSH signature: {e}"))?;
    if envelope.sig.namespace() != NAMESPACE {
        return Err(format!(
            "{sig_name} is signed for namespace {:?}, not {NAMESPACE:?}",
            envelope.sig.namespace()
        ));
    }
    let line = trusted_line(&envelope, trust).map_err(|why| format!("{sig_name} {why}"))?;
    let message =
        read_signed(&dir.join(name)).map_err(|e| format!("{e}; signature not checked"))?;
    PublicKey::from(envelope.sig.public_key().clone())
        .verify(NAMESPACE, &message, &envelope.sig)
        .map(|()| line.principals.clone())
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

    fn trust(allowed: &str, identity: Option<&str>, time: &str) -> Trust {
        let (signers, _) = allowed::parse(allowed, &TimeZone::UTC);
        Trust {
            signers,
            identity: identity.map(str::to_string),
            time: allowed::parse_time(time, &TimeZone::UTC).unwrap(),
        }
    }

    #[test]
    fn signs_and_verifies_against_allowed_signers() {
        let dir = tempfile::tempdir().unwrap();
        let key_path = dir.path().join("key");
        std::fs::write(&key_path, KEY).unwrap();
        let key = load_key(&key_path).unwrap();
        let out = dir.path().join("set");
        std::fs::create_dir(&out).unwrap();
        std::fs::write(out.join("SHA256SUMS"), "abc  x\n").unwrap();
        std::fs::write(out.join("SHA512SUMS"), "abc  x\n").unwrap();
        assert_eq!(signed_files(&out), ["SHA256SUMS", "SHA512SUMS"]);
        sign_files(&out, &signed_files(&out), &key).unwrap();
        let public = key.public_key().to_openssh().unwrap();
        let line = format!("rel@example.com namespaces=\"file\" {public}\n");
        let good = trust(&line, Some("rel@example.com"), "20250101");
        assert_eq!(
            verify_file(&out, "SHA256SUMS", &good).unwrap(),
            "rel@example.com"
        );
        let other = trust(&line, Some("other@example.com"), "20250101");
        let why = verify_file(&out, "SHA256SUMS", &other).unwrap_err();
        assert!(why.contains("not for the identity"), "{why}");
        let git = trust(
            &format!("rel@example.com namespaces=\"git\" {public}\n"),
            None,
            "20250101",
        );
        let why = verify_file(&out, "SHA256SUMS", &git).unwrap_err();
        assert!(why.contains("not in \"file\""), "{why}");
        let expired = trust(
            &format!("* valid-before=\"20240101\" {public}\n"),
            None,
            "20250101",
        );
        let why = verify_file(&out, "SHA256SUMS", &expired).unwrap_err();
        assert!(why.contains("has expired"), "{why}");
        std::fs::write(out.join("SHA256SUMS"), "abd  x\n").unwrap();
        assert!(verify_file(&out, "SHA256SUMS", &good)
            .unwrap_err()
            .contains("does not match"));
    }

    /// Made with ssh-keygen 9.2: a CA, and a user certificate (principals alice and bob,
    /// valid from 20200101 to 20300101 UTC) whose key signed "hello\n" through ssh-agent
    /// with `ssh-keygen -Y sign -f user-cert.pub -n file`.
    const CA: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK8xz+DI0E0ih1hpgP2Q7Das0CswNQAc15OyV7LI/D5j";
    const USER: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG0DnGsRoM9INBfOccH1IkFCEn+8nxcLavW0lvM2zMnl";
    const CERT_SIG: &str = "-----BEGIN SSH SIGNATURE-----
U1NIU0lHAAAAAQAAAcIAAAAgc3NoLWVkMjU1MTktY2VydC12MDFAb3BlbnNzaC5jb20AAA
Agbdp/M7BW872q8kmlTXeFdL/a0lPgycb2ycJj16EwmC4AAAAgbQOcaxGgz0g0F85xwfUi
QUISf7yfFwtq9bSW8zbMyeUAAAAAAAAAAAAAAAEAAAAGY2VydGlkAAAAEAAAAAVhbGljZQ
AAAANib2IAAAAAXgvhAAAAAABw29iAAAAAAAAAAIIAAAAVcGVybWl0LVgxMS1mb3J3YXJk
aW5nAAAAAAAAABdwZXJtaXQtYWdlbnQtZm9yd2FyZGluZwAAAAAAAAAWcGVybWl0LXBvcn
QtZm9yd2FyZGluZwAAAAAAAAAKcGVybWl0LXB0eQAAAAAAAAAOcGVybWl0LXVzZXItcmMA
AAAAAAAAAAAAADMAAAALc3NoLWVkMjU1MTkAAAAgrzHP4MjQTSKHWGmA/ZDsNqzQKzA1AB
zXk7JXssj8PmMAAABTAAAAC3NzaC1lZDI1NTE5AAAAQFODh5ZvBBKkaF901EHoFRvdRQZg
x+/dFh/zRJU3seLU6fzefzXUxQH29kZXFSX+aHGg1RHtehcY8lisKfmYKgIAAAAEZmlsZQ
AAAAAAAAAGc2hhNTEyAAAAUwAAAAtzc2gtZWQyNTUxOQAAAEC0jkn+P510g6/2a93r6eBt
Yy7MPLKAeplrsUc4eDmmSoFFlHSLCWqxUb4Wl2twC94vWycS++FDE5qTUtYF4lIH
-----END SSH SIGNATURE-----
";

    /// The verdicts ssh-keygen -Y verify gave on these inputs (TZ=UTC).
    #[test]
    fn certificate_signatures_need_a_cert_authority_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("m"), "hello\n").unwrap();
        std::fs::write(dir.path().join("m.sig"), CERT_SIG).unwrap();
        let check = |allowed: &str, id: &str, time: &str| {
            verify_file(dir.path(), "m", &trust(allowed, Some(id), time))
        };
        let ca = format!("*@x,alice cert-authority {CA}");
        assert_eq!(check(&ca, "alice", "20250101").unwrap(), "*@x,alice");
        let why = check(&format!("* cert-authority {CA}"), "carol", "20250101").unwrap_err();
        assert!(why.contains("not for the identity \"carol\""), "{why}");
        // The certificate's end is excluded, its start included.
        assert!(check(&ca, "alice", "20300101000000")
            .unwrap_err()
            .contains("expired"));
        assert!(check(&ca, "alice", "20291231235959").is_ok());
        assert!(check(&ca, "alice", "20191231")
            .unwrap_err()
            .contains("not valid yet"));
        // The CA line's own options apply too.
        let old_ca = format!("alice cert-authority,valid-before=\"20250101\" {CA}");
        assert!(check(&old_ca, "alice", "20260101")
            .unwrap_err()
            .contains("has expired"));
        // A plain line never takes a certificate, whether it names the CA or the user key.
        for plain in [format!("alice {CA}"), format!("alice {USER}")] {
            let why = check(&plain, "alice", "20250101").unwrap_err();
            assert!(why.contains("does not trust"), "{why}");
        }
        std::fs::write(dir.path().join("m"), "hullo\n").unwrap();
        assert!(check(&ca, "alice", "20250101")
            .unwrap_err()
            .contains("does not match"));
    }

    #[test]
    fn a_public_key_given_as_the_signing_key_is_named_as_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("release"), KEY).unwrap();
        let public = dir.path().join("release.pub");
        std::fs::write(&public, format!("{USER} c\n")).unwrap();
        let e = load_key(&public).unwrap_err();
        assert!(
            e.message.contains("is an OpenSSH public key"),
            "{}",
            e.message
        );
        assert!(!e.message.contains("NUL"), "{}", e.message);
        let hint = e.hint.as_deref().unwrap_or_default();
        assert!(
            hint.contains(&format!("--key {}", dir.path().join("release").display())),
            "{hint}"
        );
    }
}
