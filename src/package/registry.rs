//! `kbuild extension --push`: the image index, both manifests and their blobs to a
//! registry, through `oci-client` (the OCI distribution protocol).
//!
//! - Transport as the Docker engine chooses it (moby `registry.newServiceConfig`, whose
//!   insecure list always holds 127.0.0.0/8, and `isSecureIndex`, which treats localhost
//!   the same): plain http to localhost, 127.0.0.0/8 and ::1, https to anything else unless
//!   `--insecure-registry` is given.
//! - Credentials: KBUILD_REGISTRY_USERNAME and KBUILD_REGISTRY_PASSWORD, else the docker
//!   CLI's config.json (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`): a
//!   credential helper (`credHelpers`, `credsStore`) or an `auths` entry. They are never
//!   printed, and errors from the registry are shown without them.

use std::net::IpAddr;

use base64::Engine as _;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};

use crate::error::{Error, Result};
use crate::imageref::ImageRef;
use crate::package::ociimage::{self, Descriptor, Image};
use crate::ui::Ui;

pub const ENV_USERNAME: &str = "KBUILD_REGISTRY_USERNAME";
pub const ENV_PASSWORD: &str = "KBUILD_REGISTRY_PASSWORD";

/// Whether plain http is the registry's transport.
pub fn plain_http(reference: &ImageRef, insecure: bool) -> bool {
    let host = reference
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    insecure || host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Where the docker CLI keeps its config.json.
fn docker_config() -> Option<serde_json::Value> {
    let env = crate::env::current();
    let dir = env
        .os("DOCKER_CONFIG")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            env.os("HOME")
                .map(|h| std::path::Path::new(h).join(".docker"))
        })?;
    let text = std::fs::read_to_string(dir.join("config.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// The keys config.json may file a registry under (Docker Hub has its own legacy key).
fn config_keys(registry: &str) -> Vec<String> {
    if registry == crate::imageref::DOCKER_HUB {
        vec![
            "https://index.docker.io/v1/".to_string(),
            "index.docker.io".to_string(),
            "docker.io".to_string(),
        ]
    } else {
        vec![
            registry.to_string(),
            format!("https://{registry}"),
            format!("http://{registry}"),
        ]
    }
}

/// Asks `docker-credential-<helper> get`.
fn from_helper(helper: &str, server: &str) -> Result<Option<RegistryAuth>> {
    let program = format!("docker-credential-{helper}");
    let out = duct::cmd!(&program, "get")
        .stdin_bytes(server.as_bytes())
        .stdout_capture()
        .stderr_null()
        .unchecked()
        .run()
        .map_err(|e| {
            Error::usage(format!(
                "the docker config names the credential helper {program}, which cannot run: {e}"
            ))
            .with_hint(format!(
                "install {program}, or set {ENV_USERNAME} and {ENV_PASSWORD}"
            ))
        })?;
    if !out.status.success() {
        return Ok(None); // the helper has nothing for this registry
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    match (v["Username"].as_str(), v["Secret"].as_str()) {
        (Some(user), Some(secret)) if !secret.is_empty() => Ok(Some(RegistryAuth::Basic(
            user.to_string(),
            secret.to_string(),
        ))),
        _ => Ok(None),
    }
}

/// The credentials for `registry`, from the environment or the docker config.
fn credentials(registry: &str) -> Result<RegistryAuth> {
    let env = |name| crate::env::current().get(name).map(str::to_string);
    if let (Some(user), Some(password)) = (env(ENV_USERNAME), env(ENV_PASSWORD)) {
        return Ok(RegistryAuth::Basic(user, password));
    }
    match docker_config() {
        Some(config) => from_config(&config, registry),
        None => Ok(RegistryAuth::Anonymous),
    }
}

/// The credentials a docker config.json holds for `registry`.
fn from_config(config: &serde_json::Value, registry: &str) -> Result<RegistryAuth> {
    let keys = config_keys(registry);
    for key in &keys {
        if let Some(helper) = config["credHelpers"][key.as_str()].as_str() {
            return Ok(from_helper(helper, key)?.unwrap_or(RegistryAuth::Anonymous));
        }
    }
    for key in &keys {
        let entry = &config["auths"][key.as_str()];
        if let Some(encoded) = entry["auth"].as_str().filter(|s| !s.is_empty()) {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .ok()
                .and_then(|b| String::from_utf8(b).ok());
            let Some((user, password)) = decoded.as_deref().and_then(|d| d.split_once(':')) else {
                return Err(Error::usage(format!(
                    "the docker config's credentials for {registry} cannot be read (auths.\"{key}\".auth is not base64 of user:password)"
                ))
                .with_hint(format!("run `docker login {registry}` again, or set {ENV_USERNAME} and {ENV_PASSWORD}")));
            };
            return Ok(RegistryAuth::Basic(user.to_string(), password.to_string()));
        }
    }
    if let Some(store) = config["credsStore"].as_str() {
        if let Some(auth) = from_helper(store, &keys[0])? {
            return Ok(auth);
        }
    }
    Ok(RegistryAuth::Anonymous)
}

/// An error with its causes ("error sending request" alone does not say why).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        cause = c.source();
    }
    text
}

/// Registry failures exit 5, as engine failures do: a service kbuild talks to refused.
fn push_failed(reference: &ImageRef, what: &str, e: &dyn std::error::Error) -> Error {
    Error::engine(format!("cannot push {reference} ({what}): {}", chain(e))).with_hint(format!(
        "check that the registry {} answers and that you may push there (`docker login {}`, or {ENV_USERNAME}/{ENV_PASSWORD}); a registry on another host that speaks plain http needs --insecure-registry",
        reference.registry, reference.registry
    ))
}

async fn push_blob(
    client: &Client,
    target: &Reference,
    layout: &std::path::Path,
    d: &Descriptor,
    reference: &ImageRef,
) -> Result<()> {
    if client.blob_exists(target, &d.digest).await.unwrap_or(false) {
        return Ok(());
    }
    let bytes = ociimage::read_blob(layout, &d.digest)?;
    client
        .push_blob(target, bytes, &d.digest)
        .await
        .map_err(|e| push_failed(reference, &format!("blob {}", d.digest), &e))?;
    Ok(())
}

async fn push_manifest(
    client: &Client,
    target: &Reference,
    layout: &std::path::Path,
    d: &Descriptor,
    reference: &ImageRef,
) -> Result<()> {
    let bytes = ociimage::read_blob(layout, &d.digest)?;
    let content_type = d
        .media_type
        .parse()
        .map_err(|_| Error::internal(format!("bad media type {}", d.media_type)))?;
    client
        .push_manifest_raw(target, bytes, content_type)
        .await
        .map_err(|e| push_failed(reference, &format!("manifest {}", d.digest), &e))?;
    Ok(())
}

/// Pushes the blobs, each platform's manifest by digest, then the index under the tag.
pub async fn push(image: &Image, reference: &ImageRef, insecure: bool, ui: &Ui) -> Result<()> {
    // rustls needs one crypto provider chosen for the process (ring: no C toolchain
    // beyond cc, unlike aws-lc); a second install is refused and harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let protocol = if plain_http(reference, insecure) {
        ClientProtocol::Http
    } else {
        ClientProtocol::Https
    };
    let client = Client::new(ClientConfig {
        protocol,
        ..Default::default()
    });
    let tagged = Reference::with_tag(
        reference.registry.clone(),
        reference.repository.clone(),
        reference.tag.clone(),
    );
    let auth = credentials(&reference.registry)?;
    client
        .auth(&tagged, &auth, RegistryOperation::Push)
        .await
        .map_err(|e| push_failed(reference, "signing in", &e))?;
    for v in &image.variants {
        ui.detail(&format!("pushing linux/{} {}", v.arch, v.manifest.digest));
        push_blob(&client, &tagged, &image.layout, &v.layer, reference).await?;
        push_blob(&client, &tagged, &image.layout, &v.config, reference).await?;
        let by_digest = Reference::with_digest(
            reference.registry.clone(),
            reference.repository.clone(),
            v.manifest.digest.clone(),
        );
        push_manifest(&client, &by_digest, &image.layout, &v.manifest, reference).await?;
    }
    push_manifest(&client, &tagged, &image.layout, &image.index, reference).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_to_loopback_unless_asked() {
        let r = |t: &str| ImageRef::parse(t).unwrap();
        assert!(plain_http(&r("127.0.0.1:5000/a:1"), false));
        assert!(plain_http(&r("127.1.2.3:5000/a:1"), false));
        assert!(plain_http(&r("localhost:5000/a:1"), false));
        assert!(plain_http(&r("[::1]:5000/a:1"), false));
        assert!(!plain_http(&r("10.0.0.1:5000/a:1"), false));
        assert!(!plain_http(&r("ghcr.io/a:1"), false));
        assert!(plain_http(&r("10.0.0.1:5000/a:1"), true));
    }

    #[test]
    fn reads_docker_login_credentials_from_the_config() {
        let auth = base64::engine::general_purpose::STANDARD.encode("me:s3cret");
        let config = serde_json::json!({"auths": {
            "127.0.0.1:5000": {"auth": auth},
            "https://index.docker.io/v1/": {"auth": base64::engine::general_purpose::STANDARD.encode("hub:pw")}
        }});
        let basic = |a: RegistryAuth| match a {
            RegistryAuth::Basic(u, p) => format!("{u}:{p}"),
            _ => "anonymous".to_string(),
        };
        assert_eq!(
            basic(from_config(&config, "127.0.0.1:5000").unwrap()),
            "me:s3cret"
        );
        assert_eq!(basic(from_config(&config, "docker.io").unwrap()), "hub:pw");
        assert_eq!(basic(from_config(&config, "ghcr.io").unwrap()), "anonymous");
        let broken = serde_json::json!({"auths": {"ghcr.io": {"auth": "not base64!"}}});
        let e = from_config(&broken, "ghcr.io").unwrap_err();
        assert!(e.to_string().contains("ghcr.io"), "{e}");
    }

    #[test]
    fn docker_hub_credentials_live_under_the_legacy_key() {
        assert_eq!(config_keys("docker.io")[0], "https://index.docker.io/v1/");
        assert_eq!(config_keys("127.0.0.1:5000")[0], "127.0.0.1:5000");
    }
}
