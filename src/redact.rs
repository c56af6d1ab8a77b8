//! Credentials never leave kbuild: a URL's user part can hold a password or a token
//! (`https://gitlab-ci-token:SECRET@host/...`, `https://TOKEN@github.com/...`,
//! `ssh://me:pw@box`). Every remote URL kbuild shows, writes in a manifest, a log or a JSON
//! event, or puts in an error message goes through here first.

/// Schemes whose user part alone can be a credential (a token as the user name).
const TOKEN_AS_USER: &[&str] = &["http", "https", "git", "ftp", "ftps"];

/// `url` with its credentials replaced by `***`: the password of `user:password@`, and for
/// http(s) the whole user part, which may be a token. Anything else is returned as it is.
pub fn url(url: &str) -> String {
    match redact_one(url) {
        Some(redacted) => redacted,
        None => url.to_string(),
    }
}

/// `text` with every URL in it redacted as [`url`] does (git's messages quote the URL).
pub fn text(text: &str) -> String {
    if !text.contains("://") || !text.contains('@') {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        // The scheme: the letters right before "://".
        let scheme_start = rest[..at]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map(|i| i + 1)
            .unwrap_or(0);
        // The URL ends at whitespace or a quote.
        let end = rest[at..]
            .find(|c: char| c.is_whitespace() || matches!(c, '\'' | '"' | '`' | '<' | '>'))
            .map(|i| at + i)
            .unwrap_or(rest.len());
        out.push_str(&rest[..scheme_start]);
        out.push_str(&url(&rest[scheme_start..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// An engine's name as a public record (a signed provenance) shows it: a docker context name
/// as it is, an endpoint without its user part (`ssh://builder@host` -> `ssh://***@host`),
/// since a user name says who runs the builds.
pub fn engine(name: &str) -> String {
    let Some((scheme, rest)) = name.split_once("://") else {
        return name.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((_, hostport)) => format!("{scheme}://***@{hostport}{}", &rest[authority_end..]),
        None => name.to_string(),
    }
}

/// The redacted form of one URL, or None when it holds no credentials.
fn redact_one(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (userinfo, hostport) = rest[..authority_end].rsplit_once('@')?;
    let path = &rest[authority_end..];
    let scheme_lower = scheme.to_ascii_lowercase();
    let user = match userinfo.split_once(':') {
        Some((user, _password)) => format!("{user}:***"),
        None if TOKEN_AS_USER.contains(&scheme_lower.as_str()) => "***".to_string(),
        None => return None,
    };
    // For http(s) a user name next to a password may itself be a token: hide it too.
    let user = if TOKEN_AS_USER.contains(&scheme_lower.as_str()) {
        "***".to_string()
    } else {
        user
    };
    Some(format!("{scheme}://{user}@{hostport}{path}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn engine_names_lose_their_user_part() {
        assert_eq!(super::engine("ci-remote"), "ci-remote");
        assert_eq!(
            super::engine("ssh://builder@10.0.0.5:2222"),
            "ssh://***@10.0.0.5:2222"
        );
        assert_eq!(
            super::engine("tcp://u:secret@h:2376/x"),
            "tcp://***@h:2376/x"
        );
        assert_eq!(
            super::engine("unix:///var/run/docker.sock"),
            "unix:///var/run/docker.sock"
        );
    }

    use super::*;

    #[test]
    fn hides_passwords_and_tokens() {
        assert_eq!(
            url("https://gitlab-ci-token:SECRET@gitlab.example.com/group/k8s.git"),
            "https://***@gitlab.example.com/group/k8s.git"
        );
        assert_eq!(
            url("https://ghp_TOKEN@github.com/kubernetes/kubernetes"),
            "https://***@github.com/kubernetes/kubernetes"
        );
        assert_eq!(url("ssh://me:pw@box:22"), "ssh://me:***@box:22");
        assert_eq!(url("tcp://u:p@h:2375/x"), "tcp://u:***@h:2375/x");
        // A password containing '@' is hidden whole.
        assert_eq!(url("https://u:p@ss@h/x"), "https://***@h/x");
    }

    #[test]
    fn leaves_urls_without_credentials_alone() {
        for plain in [
            "ssh://me@box",
            "ssh://git@github.com/kubernetes/kubernetes.git",
            "unix:///var/run/docker.sock",
            "https://github.com/kubernetes/kubernetes",
            "https://example.com/a@b",
            "git@github.com:kubernetes/kubernetes.git",
            "/srv/k8s",
        ] {
            assert_eq!(url(plain), plain);
        }
    }

    #[test]
    fn hides_urls_inside_messages() {
        let message = "git fetch from https://tok:SECRET@h/k.git failed: fatal: unable to access 'https://tok:SECRET@h/k.git/': Could not resolve host: h";
        let shown = text(message);
        assert!(
            !shown.contains("SECRET") && !shown.contains("tok"),
            "{shown}"
        );
        assert_eq!(
            shown,
            "git fetch from https://***@h/k.git failed: fatal: unable to access 'https://***@h/k.git/': Could not resolve host: h"
        );
        assert_eq!(text("no urls here"), "no urls here");
        assert_eq!(text("(http://u:p@h)"), "(http://***@h)");
    }
}
