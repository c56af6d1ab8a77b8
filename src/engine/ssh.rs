//! Engines at `DOCKER_HOST=ssh://[user@]host[:port][/socket]`, reached as the docker CLI
//! reaches them: every connection to the engine is an `ssh ... docker system dial-stdio`
//! process on this machine, whose stdin and stdout carry the Engine API. So the system's
//! ssh client does the work (its config, keys, agent, known hosts and ProxyJump apply),
//! and the remote needs an sshd and the docker CLI, nothing else.
//!
//! Not bollard's own `ssh` feature: in bollard 0.21 it loses the port of
//! `ssh://user@host:port` (it hands `user@host:port` to ssh as a host name), starts an
//! ssh ControlMaster per connection with `ControlPersist=yes` that outlives kbuild when
//! kbuild exits, accepts new host keys on its own (`StrictHostKeyChecking=accept-new`),
//! and gives neither a connect timeout nor ssh's error messages.
//!
//! Here the ssh processes belong to kbuild: each one is killed when hyper drops its
//! connection (and when the runtime goes, at exit); they run in their own process group,
//! so a Ctrl-C on the terminal reaches kbuild only and kbuild can still clean up through
//! them; and when kbuild dies anyway, ssh sees its stdin close and ends. Their stderr is
//! kept, so that a failed connection says why (authentication, host key, no docker on
//! the remote, nothing listening).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bollard::{BollardRequest, Docker, API_DEFAULT_VERSION};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::AsyncReadExt;
use tokio::process::{ChildStdin, ChildStdout};
use tokio::sync::{oneshot, Notify};

use crate::error::{Error, Result};

/// ssh's ConnectTimeout (whole seconds: TCP connect plus the server's banner) unless the
/// user's ssh config sets one: a host that is down fails in about this long.
const SSH_CONNECT_TIMEOUT_SECS: u64 = 1;
/// ServerAliveInterval unless the user's config sets one: a remote that vanishes mid-build
/// is noticed after about three of these.
const SSH_ALIVE_INTERVAL_SECS: u64 = 15;
/// The first answer over ssh includes the handshake, authentication and starting the
/// docker CLI on the remote; the dead-endpoint case is ssh's ConnectTimeout, not this.
const FIRST_ANSWER: Duration = Duration::from_secs(20);
/// How long an ssh process whose connection was dropped may take to end by itself.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// Keep this much of an ssh process's stderr.
const STDERR_LIMIT: usize = 16 * 1024;

/// An `ssh://` DOCKER_HOST taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    /// The engine's socket on the remote when the URL names one (`ssh://host/run/docker.sock`).
    pub socket: Option<String>,
}

impl Target {
    /// Parses `ssh://[user@]host[:port][/socket path]`; refuses passwords (without echoing them).
    pub fn parse(url: &str) -> Result<Target> {
        let bad = |why: &str| {
            Error::engine(format!("DOCKER_HOST={} {why}", redact(url))).with_hint(
                "write it as ssh://[user@]host[:port], e.g. ssh://builder@build-box or ssh://builder@10.0.0.5:2222",
            )
        };
        let rest = url
            .strip_prefix("ssh://")
            .ok_or_else(|| bad("is not an ssh:// URL"))?;
        if rest.contains(['?', '#']) {
            return Err(bad(
                "has a query or fragment, which ssh:// engines do not take",
            ));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (user, hostport) = match authority.rsplit_once('@') {
            Some((user, hostport)) => (Some(user), hostport),
            None => (None, authority),
        };
        if let Some(user) = user {
            if user.contains(':') {
                return Err(Error::engine(format!(
                    "DOCKER_HOST={} holds a password; kbuild only uses key-based ssh authentication",
                    redact(url)
                ))
                .with_hint(
                    "remove the password from DOCKER_HOST and give the remote your public key (ssh-copy-id user@host); a key with a passphrase needs ssh-agent (ssh-add)",
                ));
            }
            if user.is_empty() || user.starts_with('-') {
                return Err(bad("has an empty or invalid user name"));
            }
        }
        let (host, port) = if let Some(inner) = hostport.strip_prefix('[') {
            let (host, after) = inner
                .split_once(']')
                .ok_or_else(|| bad("has an unclosed [ in its host"))?;
            match after {
                "" => (host, None),
                p => (host, Some(p.strip_prefix(':').unwrap_or(p))),
            }
        } else {
            match hostport.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (hostport, None),
            }
        };
        if host.is_empty() || host.starts_with('-') || host.contains(char::is_whitespace) {
            return Err(bad("has no valid host"));
        }
        let port = match port {
            None => None,
            Some(p) => Some(
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| bad("has an invalid port"))?,
            ),
        };
        let socket = match path {
            "" | "/" => None,
            p => Some(p.to_string()),
        };
        Ok(Target {
            user: user.map(str::to_string),
            host: host.to_string(),
            port,
            socket,
        })
    }

    /// `-l user -p port` for ssh.
    fn login_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(user) = &self.user {
            args.extend(["-l".to_string(), user.clone()]);
        }
        if let Some(port) = self.port {
            args.extend(["-p".to_string(), port.to_string()]);
        }
        args
    }

    /// The command line a user can try by hand: `ssh -p 2222 user@host`.
    fn ssh_line(&self) -> String {
        let mut line = "ssh".to_string();
        if let Some(port) = self.port {
            line.push_str(&format!(" -p {port}"));
        }
        line.push(' ');
        line.push_str(&self.destination());
        line
    }

    fn destination(&self) -> String {
        match &self.user {
            Some(user) => format!("{user}@{}", self.host),
            None => self.host.clone(),
        }
    }

    /// What runs on the remote.
    fn remote_command(&self) -> Vec<String> {
        let mut cmd = vec!["docker".to_string()];
        if let Some(socket) = &self.socket {
            // ssh hands the command to the remote shell: quote the path.
            cmd.push("--host".to_string());
            cmd.push(shell_quote(&format!("unix://{socket}")));
        }
        cmd.extend(["system".to_string(), "dial-stdio".to_string()]);
        cmd
    }
}

/// Replaces the credentials of a URL's user part, if any, with `***` (crate::redact).
pub fn redact(url: &str) -> String {
    crate::redact::url(url)
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// Why an ssh process ended on its own.
#[derive(Debug, Clone)]
struct Failure {
    status: ExitStatus,
    stderr: String,
}

/// What the connections share: the ssh command line and the last failure.
struct Shared {
    args: Vec<String>,
    failure: Mutex<Option<Failure>>,
    failed: Notify,
}

impl Shared {
    fn record(&self, failure: Failure) {
        *self.failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(failure);
        self.failed.notify_waiters();
    }

    fn last_failure(&self) -> Option<Failure> {
        self.failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The failure of an ssh process, waiting a moment for it to finish exiting.
    async fn failure_within(&self, wait: Duration) -> Option<Failure> {
        let notified = self.failed.notified();
        if let Some(f) = self.last_failure() {
            return Some(f);
        }
        let _ = tokio::time::timeout(wait, notified).await;
        self.last_failure()
    }

    /// Starts one `ssh ... docker system dial-stdio`.
    fn spawn(self: &Arc<Self>) -> io::Result<SshStream> {
        let mut cmd = tokio::process::Command::new("ssh");
        cmd.args(&self.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            // Out of the terminal's process group: Ctrl-C is kbuild's to handle, and the
            // requests it makes to clean up must not lose their connection to it.
            .process_group(0);
        let mut child = cmd.spawn().map_err(|e| {
            io::Error::new(e.kind(), format!("cannot run the ssh client (ssh): {e}"))
        })?;
        let (Some(stdin), Some(stdout), Some(mut stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(io::Error::other("ssh started without its pipes"));
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let shared = Arc::clone(self);
        tokio::spawn(async move {
            let read_stderr = async {
                let mut kept = Vec::new();
                let mut buf = [0u8; 4096];
                while let Ok(n) = stderr.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    // Keep the end: that is where ssh and the remote say what went wrong.
                    kept.extend_from_slice(&buf[..n]);
                    if kept.len() > STDERR_LIMIT {
                        kept.drain(..kept.len() - STDERR_LIMIT);
                    }
                }
                String::from_utf8_lossy(&kept).into_owned()
            };
            let mut ended = std::pin::pin!(async { tokio::join!(child.wait(), read_stderr) });
            let outcome = tokio::select! {
                outcome = &mut ended => Some(outcome),
                // The connection was dropped, which closed ssh's stdin: a healthy ssh ends by
                // itself; one that was failing may be exiting right now (hyper saw its stdout
                // close first). Either way, give it a moment before it is killed.
                _ = stopped => tokio::time::timeout(STOP_GRACE, &mut ended).await.ok(),
            };
            if let Some((Ok(status), stderr)) = outcome {
                if !status.success() {
                    shared.record(Failure { status, stderr });
                }
            }
            // A child still running goes with this task (kill_on_drop).
        });
        Ok(SshStream {
            reader: TokioIo::new(stdout),
            writer: Some(TokioIo::new(stdin)),
            _stop: stop,
        })
    }
}

/// hyper's connector: each new connection is a new ssh process.
#[derive(Clone)]
struct Connector(Arc<Shared>);

impl tower_service::Service<hyper::Uri> for Connector {
    type Response = SshStream;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<SshStream>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: hyper::Uri) -> Self::Future {
        let shared = Arc::clone(&self.0);
        Box::pin(async move { shared.spawn() })
    }
}

/// One connection: the ssh process's stdout to read, its stdin to write.
struct SshStream {
    reader: TokioIo<ChildStdout>,
    writer: Option<TokioIo<ChildStdin>>,
    /// Dropped with the connection, which ends the ssh process.
    _stop: oneshot::Sender<()>,
}

impl SshStream {
    fn writer(&mut self) -> io::Result<Pin<&mut TokioIo<ChildStdin>>> {
        self.writer
            .as_mut()
            .map(Pin::new)
            .ok_or_else(|| io::ErrorKind::BrokenPipe.into())
    }
}

impl hyper::rt::Read for SshStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.reader).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for SshStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.writer()?.poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.writer()?.poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.writer.is_none() {
            return Poll::Ready(Ok(()));
        }
        let done = self.writer()?.poll_shutdown(cx);
        if done.is_ready() {
            // Closing ssh's stdin sends EOF to the remote's dial-stdio.
            self.writer = None;
        }
        done
    }
}

impl Connection for SshStream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

/// The options of the user's ssh config for this target that kbuild would otherwise set.
struct UserConfig {
    connect_timeout: Option<u64>,
    alive_interval: bool,
}

/// Reads the user's effective ssh config for the target (`ssh -G`, no network involved).
async fn user_config(target: &Target) -> Result<UserConfig> {
    let out = tokio::process::Command::new("ssh")
        .arg("-G")
        .args(target.login_args())
        .arg("--")
        .arg(&target.host)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| {
            let what = if e.kind() == io::ErrorKind::NotFound {
                "no ssh client is installed (ssh is not on PATH)".to_string()
            } else {
                format!("cannot run the ssh client: {e}")
            };
            Error::engine(format!(
                "DOCKER_HOST={} needs the ssh client: {what}",
                endpoint_text(target)
            ))
            .with_hint(
                "install OpenSSH's client (Debian/Ubuntu: apt-get install openssh-client), or point DOCKER_HOST at a tcp:// or unix:// engine",
            )
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(Error::engine(format!(
            "DOCKER_HOST={}: ssh cannot read its configuration for {}: {}",
            endpoint_text(target),
            target.host,
            last_lines(&stderr, 3)
        ))
        .with_hint("fix ~/.ssh/config (check it with `ssh -G <host>`)"));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let value = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ').map(str::trim))
    };
    Ok(UserConfig {
        connect_timeout: value("connecttimeout").and_then(|v| v.parse().ok()),
        alive_interval: value("serveraliveinterval").is_some_and(|v| v != "0"),
    })
}

/// The endpoint as shown to the user.
fn endpoint_text(target: &Target) -> String {
    let host = if target.host.contains(':') {
        format!("[{}]", target.host)
    } else {
        target.host.clone()
    };
    let mut text = match &target.user {
        Some(user) => format!("ssh://{user}@{host}"),
        None => format!("ssh://{host}"),
    };
    if let Some(port) = target.port {
        text.push_str(&format!(":{port}"));
    }
    if let Some(socket) = &target.socket {
        text.push_str(socket);
    }
    text
}

/// Connects to the engine at an `ssh://` DOCKER_HOST: pings it (the first ssh connection)
/// and negotiates the API version. `request_timeout` bounds every later request.
pub async fn connect(url: &str, request_timeout: Duration) -> Result<Docker> {
    let target = Target::parse(url)?;
    let config = user_config(&target).await?;
    // -T: no terminal on the remote; BatchMode: never prompt (kbuild owns the terminal).
    let mut args: Vec<String> = ["-T", "-o", "BatchMode=yes"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    if config.connect_timeout.is_none() {
        args.extend([
            "-o".to_string(),
            format!("ConnectTimeout={SSH_CONNECT_TIMEOUT_SECS}"),
        ]);
    }
    if !config.alive_interval {
        args.extend([
            "-o".to_string(),
            format!("ServerAliveInterval={SSH_ALIVE_INTERVAL_SECS}"),
        ]);
    }
    args.extend(target.login_args());
    args.push("--".to_string());
    args.push(target.host.clone());
    args.extend(target.remote_command());
    let shared = Arc::new(Shared {
        args,
        failure: Mutex::new(None),
        failed: Notify::new(),
    });
    let client = Client::builder(TokioExecutor::new()).build(Connector(Arc::clone(&shared)));
    let docker = Docker::connect_with_custom_transport(
        move |request: BollardRequest| {
            let client = client.clone();
            async move {
                client
                    .request(request)
                    .await
                    .map_err(bollard::errors::Error::from)
            }
        },
        // The daemon ignores the host name; the ssh process is the connection.
        Some("http://api.moby.localhost"),
        request_timeout.as_secs(),
        API_DEFAULT_VERSION,
    )
    .map_err(|e| Error::internal(format!("cannot set up the ssh transport: {e}")))?;

    let first_answer = FIRST_ANSWER.max(Duration::from_secs(
        config.connect_timeout.unwrap_or(0).saturating_add(10),
    ));
    let answered = async {
        docker.ping().await?;
        docker.negotiate_version().await
    };
    match tokio::time::timeout(first_answer, answered).await {
        Ok(Ok(docker)) => Ok(docker),
        Ok(Err(e)) => {
            let failure = shared.failure_within(Duration::from_secs(2)).await;
            Err(diagnose(&target, failure, &e.to_string()))
        }
        Err(_) => {
            let failure = shared.last_failure();
            Err(diagnose(
                &target,
                failure,
                &format!("no answer within {} seconds", first_answer.as_secs()),
            ))
        }
    }
}

/// Turns a failed first connection into an error that says what to do.
fn diagnose(target: &Target, failure: Option<Failure>, detail: &str) -> Error {
    let endpoint = endpoint_text(target);
    let try_it = format!("{} docker version", target.ssh_line());
    let Some(failure) = failure else {
        return Error::engine(format!("no Docker engine answers at {endpoint}: {detail}"))
            .with_hint(format!(
                "check the remote by hand: `{try_it}`; or point DOCKER_HOST at a running engine"
            ));
    };
    let said = last_lines(&failure.stderr, 3);
    let stderr = failure.stderr.to_lowercase();
    let code = failure.status.code();
    let has = |needle: &str| stderr.contains(needle);
    let remote = target.destination();
    if has("host key verification failed")
        || has("remote host identification has changed")
        || has("host key is known for")
    {
        let changed = has("has changed");
        return Error::engine(format!(
            "ssh does not trust the host key of {} (DOCKER_HOST={endpoint}): {said}",
            target.host
        ))
        .with_hint(if changed {
            format!(
                "the host's key CHANGED since you last connected: make sure that is expected (a reinstalled host), then remove the old key (ssh-keygen -R {}) and connect once by hand: `{}`",
                target.host, target.ssh_line()
            )
        } else {
            format!(
                "kbuild never accepts host keys itself: connect once by hand and check the fingerprint (`{}`), or add the key to ~/.ssh/known_hosts",
                target.ssh_line()
            )
        });
    }
    if has("permission denied") && (has("publickey") || has("password") || has("keyboard")) {
        return Error::engine(format!(
            "ssh refused to log in as {remote} (DOCKER_HOST={endpoint}): {said}"
        ))
        .with_hint(format!(
            "kbuild needs key-based ssh authentication that asks nothing: put your public key in the remote's ~/.ssh/authorized_keys (ssh-copy-id {remote}), load a key with a passphrase into ssh-agent (ssh-add), or name the key with IdentityFile in ~/.ssh/config; check with `{try_it}`"
        ));
    }
    let network = [
        "connection refused",
        "connection timed out",
        "timed out during banner exchange",
        "no route to host",
        "network is unreachable",
        "could not resolve hostname",
        "name or service not known",
        "connection closed by",
        "connection reset",
    ];
    if code == Some(255) && network.iter().any(|n| has(n)) {
        let port = target
            .port
            .map(|p| format!("port {p}"))
            .unwrap_or_else(|| "its ssh port".to_string());
        return Error::engine(format!(
            "no Docker engine answers at {endpoint}: ssh cannot reach {}: {said}",
            target.host
        ))
        .with_hint(format!(
            "check that {} is up and its sshd listens on {port} (`{try_it}`), or point DOCKER_HOST at a running engine; `--engine host` builds with the local Go instead",
            target.host
        ));
    }
    if code == Some(127) || (has("docker") && (has("not found") || has("no such file"))) {
        return Error::engine(format!(
            "{} has no docker CLI on its PATH (DOCKER_HOST={endpoint}): {said}",
            target.host
        ))
        .with_hint(format!(
            "kbuild runs `docker system dial-stdio` on the remote, as the docker CLI does: install the Docker CLI there (Debian/Ubuntu: docker.io or docker-ce-cli), on the PATH of non-interactive ssh sessions of {remote}; check with `{try_it}`"
        ));
    }
    if has("cannot connect to the docker daemon")
        || has("failed to open the raw stream connection")
        || has("permission denied while trying to connect")
        || has("is the docker daemon running")
    {
        return Error::engine(format!(
            "the docker CLI on {} cannot reach its engine (DOCKER_HOST={endpoint}): {said}",
            target.host
        ))
        .with_hint(format!(
            "start Docker on {} (e.g. `systemctl start docker`) and let {remote} use it (the docker group); check with `{try_it}`",
            target.host
        ));
    }
    let how = match code {
        Some(code) => format!("exit code {code}"),
        None => "killed by a signal".to_string(),
    };
    Error::engine(format!(
        "the ssh connection to the engine at {endpoint} failed ({how}): {}",
        if said.is_empty() { detail } else { &said }
    ))
    .with_hint(format!(
        "check the remote by hand: `{try_it}` must print the engine's version"
    ))
}

/// The last `n` lines of ssh's stderr worth showing, joined with " / ".
fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Warning: Permanently added"))
        .collect();
    lines[lines.len().saturating_sub(n)..].join(" / ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ssh_urls() {
        let t = Target::parse("ssh://builder@build-box:2222").unwrap();
        assert_eq!(t.user.as_deref(), Some("builder"));
        assert_eq!(t.host, "build-box");
        assert_eq!(t.port, Some(2222));
        assert_eq!(t.socket, None);
        assert_eq!(t.login_args(), ["-l", "builder", "-p", "2222"]);
        assert_eq!(t.ssh_line(), "ssh -p 2222 builder@build-box");
        assert_eq!(t.remote_command(), ["docker", "system", "dial-stdio"]);

        let t = Target::parse("ssh://build-box").unwrap();
        assert_eq!((t.user, t.port), (None, None));

        let t = Target::parse("ssh://root@[::1]:22/run/user/1000/docker.sock").unwrap();
        assert_eq!(t.host, "::1");
        assert_eq!(t.port, Some(22));
        assert_eq!(
            t.remote_command(),
            [
                "docker",
                "--host",
                "'unix:///run/user/1000/docker.sock'",
                "system",
                "dial-stdio"
            ]
        );
        assert_eq!(
            endpoint_text(&t),
            "ssh://root@[::1]:22/run/user/1000/docker.sock"
        );
    }

    #[test]
    fn refuses_bad_ssh_urls_without_echoing_passwords() {
        let err = Target::parse("ssh://me:hunter2@box").unwrap_err();
        assert!(!err.message.contains("hunter2"), "{}", err.message);
        assert!(err.message.contains("ssh://me:***@box"), "{}", err.message);
        for bad in [
            "ssh://",
            "ssh://box:notaport",
            "ssh://box:0",
            "ssh://-oProxyCommand=x",
            "ssh://-l@box",
            "ssh://box?x=1",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact("ssh://me:pw@box:22"), "ssh://me:***@box:22");
        assert_eq!(redact("tcp://u:p@h:2375/x"), "tcp://u:***@h:2375/x");
        assert_eq!(redact("ssh://me@box"), "ssh://me@box");
        assert_eq!(
            redact("unix:///var/run/docker.sock"),
            "unix:///var/run/docker.sock"
        );
    }

    #[test]
    fn quotes_for_the_remote_shell() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
