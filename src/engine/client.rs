//! Connecting to a Docker engine: the endpoint chosen as the docker CLI would, a client for
//! its scheme (unix, tcp with or without TLS, ssh), a fast failure when nothing answers, the
//! API version both speak, and fresh connections for clean-ups run from `Drop`.

use std::time::Duration;

use bollard::models::SystemVersion;
use bollard::{ClientVersion, Docker, API_DEFAULT_VERSION};

use super::endpoint::{self, Endpoint};
use crate::error::{Error, Result};

/// How long an engine may take to answer its first ping before we call it unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(1500);
/// An engine that answered its ping may take this long to report its version.
const VERSION_TIMEOUT: Duration = Duration::from_secs(30);
/// Requests after the first may legitimately take long (image pulls, waits).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(6 * 3600);

/// The engine endpoint kbuild talks to, as the docker CLI would pick it, fit to show
/// (a password in it is replaced with `***`), with why it was chosen.
pub fn endpoint() -> String {
    match endpoint::current() {
        Ok(chosen) => format!("{} (from {})", chosen.shown(), chosen.why()),
        Err(e) => e.message,
    }
}

/// No engine answers at the chosen endpoint: say which one and why it was chosen, and name
/// the engine sockets that do exist here.
pub(super) fn unreachable(chosen: &Endpoint, detail: impl std::fmt::Display) -> Error {
    let whose = match &chosen.context {
        Some(name) if name != endpoint::DEFAULT_CONTEXT => format!("docker context \"{name}\", "),
        _ => String::new(),
    };
    let mut hint = match &chosen.context {
        Some(name) if name != endpoint::DEFAULT_CONTEXT => format!(
            "start the engine of docker context \"{name}\" or fix the context (`docker context inspect {name}`), or choose another with --context NAME or DOCKER_HOST"
        ),
        _ => "start Docker (e.g. `systemctl start docker`, or open Docker Desktop), or point DOCKER_HOST (or --context) at a running engine".to_string(),
    };
    let found = endpoint::other_sockets_here(endpoint::env(), &chosen.host);
    if !found.is_empty() {
        let list: Vec<String> = found
            .iter()
            .map(|(whose, host)| format!("{whose} at {host}"))
            .collect();
        hint.push_str(&format!(
            "; engine sockets found here: {} (e.g. DOCKER_HOST={})",
            list.join(", "),
            found[0].1
        ));
    }
    hint.push_str("; `--engine host` builds with the local Go instead");
    Error::engine(format!(
        "no Docker engine answers at {} ({whose}from {}): {detail}",
        chosen.shown(),
        chosen.why()
    ))
    .with_hint(hint)
}

/// A client for the endpoint's scheme (no request made yet).
fn client_for(chosen: &Endpoint, api: &ClientVersion) -> Result<Docker> {
    let host = chosen.host.as_str();
    let timeout = REQUEST_TIMEOUT.as_secs();
    let refused = |why: &str, hint: &str| {
        Error::usage(format!(
            "the engine endpoint {} (from {}) {why}",
            chosen.shown(),
            chosen.why()
        ))
        .with_hint(hint.to_string())
    };
    if host.starts_with("unix://") {
        return Docker::connect_with_unix(host, timeout, api).map_err(|e| unreachable(chosen, e));
    }
    if !(host.starts_with("tcp://") || host.starts_with("http://") || host.starts_with("https://"))
    {
        return Err(refused(
            "has a scheme kbuild cannot use",
            "use a unix://, tcp:// or ssh:// endpoint",
        ));
    }
    let Some(tls) = &chosen.tls else {
        if host.starts_with("https://") {
            return Err(refused(
                "is https:// but has no TLS certificates",
                "give the context the engine's ca.pem, cert.pem and key.pem (docker context update NAME --docker host=...,ca=...,cert=...,key=...), or set DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH",
            ));
        }
        return Docker::connect_with_http(host, timeout, api).map_err(|e| unreachable(chosen, e));
    };
    if chosen.skip_tls_verify {
        return Err(refused(
            "asks to skip TLS verification (SkipTLSVerify), which kbuild does not do",
            "give the context the engine's CA instead (docker context update NAME --docker host=...,ca=...,cert=...,key=...)",
        ));
    }
    let (Some(ca), Some(cert), Some(key)) = (&tls.ca, &tls.cert, &tls.key) else {
        let missing: Vec<&str> = [
            ("ca.pem", &tls.ca),
            ("cert.pem", &tls.cert),
            ("key.pem", &tls.key),
        ]
        .iter()
        .filter(|(_, file)| file.is_none())
        .map(|(name, _)| *name)
        .collect();
        return Err(refused(
            &format!(
                "is reached over TLS, but {} has no {}",
                tls.dir.display(),
                missing.join(", ")
            ),
            "kbuild connects to TLS engines with a client certificate: give it ca.pem, cert.pem and key.pem (docker context update NAME --docker host=...,ca=...,cert=...,key=...)",
        ));
    };
    let host = host.replacen("http://", "tcp://", 1);
    Docker::connect_with_ssl(&host, key, cert, ca, timeout, api).map_err(|e| unreachable(chosen, e))
}

/// Connects to the endpoint chosen as the docker CLI would (--context, DOCKER_HOST,
/// DOCKER_CONTEXT, config.json, default socket), fails within seconds when nothing answers,
/// and negotiates the API version (older engines such as 20.10 speak 1.41).
pub async fn connect_client() -> Result<Docker> {
    Ok(connect_versioned().await?.0)
}

/// As `connect_client`, with the engine's version report (asked once: Podman's takes a
/// second or more, as it runs its runtime and conmon to say their versions).
async fn connect_versioned() -> Result<(Docker, SystemVersion)> {
    connect_versioned_to(endpoint::current()?).await
}

/// As `connect_versioned`, to a given endpoint (one of several engines).
pub(super) async fn connect_versioned_to(chosen: Endpoint) -> Result<(Docker, SystemVersion)> {
    if chosen.host.starts_with("ssh://") {
        // The ssh client's ConnectTimeout makes a dead host fail fast; the first answer
        // also waits for the handshake and the docker CLI starting on the remote.
        let docker = super::ssh::connect(&chosen.host, REQUEST_TIMEOUT)
            .await
            .map_err(|mut e| {
                // The ssh errors speak of DOCKER_HOST; say where the endpoint really came from.
                if chosen.source != endpoint::Source::DockerHost {
                    e.message = format!("{} (the endpoint is from {})", e.message, chosen.why());
                }
                e
            })?;
        let version = docker
            .version()
            .await
            .map_err(|e| unreachable(&chosen, e))?;
        return Ok((docker, version));
    }
    let docker = client_for(&chosen, API_DEFAULT_VERSION)?;
    match tokio::time::timeout(CONNECT_TIMEOUT, docker.ping()).await {
        Err(_) => {
            return Err(unreachable(
                &chosen,
                format!(
                    "no answer within {:.1} seconds",
                    CONNECT_TIMEOUT.as_secs_f64()
                ),
            ))
        }
        Ok(Err(e)) => return Err(unreachable(&chosen, e)),
        Ok(Ok(_)) => {}
    }
    // It answered, so it is there: its version report may take longer.
    let version = tokio::time::timeout(VERSION_TIMEOUT, docker.version())
        .await
        .map_err(|_| {
            unreachable(
                &chosen,
                format!(
                    "no answer to the version request within {} seconds",
                    VERSION_TIMEOUT.as_secs()
                ),
            )
        })?
        .map_err(|e| unreachable(&chosen, e))?;
    let api = negotiated(version.api_version.as_deref());
    Ok((client_for(&chosen, &api)?, version))
}

/// The API version to speak: the engine's when older than bollard's, else bollard's
/// (as bollard's `negotiate_version`, without asking the engine a second time).
fn negotiated(engine_api: Option<&str>) -> ClientVersion {
    let ours = (
        API_DEFAULT_VERSION.major_version,
        API_DEFAULT_VERSION.minor_version,
    );
    let theirs = engine_api
        .and_then(|v| v.split_once('.'))
        .and_then(|(major, minor)| Some((major.parse().ok()?, minor.parse().ok()?)));
    let (major_version, minor_version) = match theirs {
        Some(theirs) if theirs < ours => theirs,
        _ => ours,
    };
    ClientVersion {
        major_version,
        minor_version,
    }
}

/// Runs an engine clean-up to completion from a `Drop`, which cannot await: on the run's own
/// multi-thread runtime (main builds one), waiting for it in place so that nothing outlives
/// the guard. No runtime and no connection is made here; outside a multi-thread runtime the
/// clean-up is left to the engine (build containers remove themselves once they stop) and to
/// `kbuild clean`.
pub fn cleanup_from_drop<Fut>(cleanup: Fut)
where
    Fut: std::future::Future<Output = ()>,
{
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
        return;
    }
    tokio::task::block_in_place(|| handle.block_on(cleanup));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_version_is_the_older_of_the_two() {
        let v = negotiated(Some("1.41"));
        assert_eq!((v.major_version, v.minor_version), (1, 41));
        let v = negotiated(Some("9.99"));
        assert_eq!(
            (v.major_version, v.minor_version),
            (
                API_DEFAULT_VERSION.major_version,
                API_DEFAULT_VERSION.minor_version
            )
        );
        let v = negotiated(None);
        assert_eq!(v.major_version, API_DEFAULT_VERSION.major_version);
    }
}
