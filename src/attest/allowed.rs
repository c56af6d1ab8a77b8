//! The allowed_signers file as `ssh-keygen -Y verify` reads it (ssh-keygen(1), ALLOWED
//! SIGNERS; OpenSSH sshsig.c `check_allowed_keys_line`): one line per trusted key,
//! `principals [options] keytype base64 [comment]`, with the options `cert-authority`,
//! `namespaces="..."`, `valid-after="..."` and `valid-before="..."`. A line ssh-keygen cannot
//! read is skipped by it, so it is skipped here too (and named in a warning).

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use ssh_key::PublicKey;

/// One usable line of an allowed_signers file.
#[derive(Debug, Clone)]
pub struct Signer {
    /// 1-based line number, to name the line in messages.
    pub line: usize,
    /// A pattern-list of the identities this key may sign as (`-I` must match it).
    pub principals: String,
    pub key: PublicKey,
    /// The key certifies signing keys rather than signing itself.
    pub cert_authority: bool,
    /// A pattern-list of the namespaces the key may sign in; None: any.
    pub namespaces: Option<String>,
    /// Unix seconds: the key is valid at or after this time.
    pub valid_after: Option<i64>,
    /// Unix seconds: the key is valid at or before this time.
    pub valid_before: Option<i64>,
}

/// The options of one line.
#[derive(Debug, Default, PartialEq)]
struct Options {
    cert_authority: bool,
    namespaces: Option<String>,
    valid_after: Option<i64>,
    valid_before: Option<i64>,
}

/// The usable lines of a file, and what is wrong with the lines that were skipped.
pub fn parse(text: &str, zone: &TimeZone) -> (Vec<Signer>, Vec<String>) {
    let mut signers = Vec::new();
    let mut skipped = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match parse_line(line, n + 1, zone) {
            Ok(signer) => signers.push(signer),
            Err(why) => skipped.push(format!("line {}: {why}", n + 1)),
        }
    }
    (signers, skipped)
}

fn parse_line(line: &str, number: usize, zone: &TimeZone) -> Result<Signer, String> {
    let fields = tokens(line);
    let key_at = |i: usize| {
        let (kind, data) = (fields.get(i)?, fields.get(i + 1)?);
        PublicKey::from_openssh(&format!("{kind} {data}")).ok()
    };
    // As sshsig.c: the key right after the principals, or after one options field.
    let (options, key) = match (key_at(1), key_at(2)) {
        (Some(key), _) => (Options::default(), key),
        (None, Some(key)) => (parse_options(&fields[1], zone)?, key),
        (None, None) => return Err("no `keytype base64` key after the principals".to_string()),
    };
    Ok(Signer {
        line: number,
        principals: dequote(&fields[0]).to_string(),
        key,
        cert_authority: options.cert_authority,
        namespaces: options.namespaces,
        valid_after: options.valid_after,
        valid_before: options.valid_before,
    })
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

fn dequote(text: &str) -> &str {
    text.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text)
}

/// Splits `a,b="x,y",c` on the commas outside double quotes.
fn split_options(field: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in field.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&field[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&field[start..]);
    parts
}

/// OpenSSH sshsig.c `sshsigopt_parse`: keywords are case-insensitive, values must be
/// double-quoted, and an unknown option makes the line unusable.
fn parse_options(field: &str, zone: &TimeZone) -> Result<Options, String> {
    let mut options = Options::default();
    for option in split_options(field) {
        let (name, value) = match option.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (option, None),
        };
        let quoted = || {
            let value = value.ok_or_else(|| format!("{name} needs a value"))?;
            value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .ok_or_else(|| format!("the value of {name} must be in double quotes"))
        };
        match name.to_ascii_lowercase().as_str() {
            "cert-authority" if value.is_none() => options.cert_authority = true,
            "namespaces" => options.namespaces = Some(quoted()?.to_string()),
            "valid-after" => options.valid_after = Some(parse_time(quoted()?, zone)?),
            "valid-before" => options.valid_before = Some(parse_time(quoted()?, zone)?),
            _ => return Err(format!("unknown option {option:?}")),
        }
    }
    Ok(options)
}

/// OpenSSH misc.c `parse_absolute_time`: YYYYMMDD or YYYYMMDDHHMM[SS], in UTC when it ends
/// in `Z` or `UTC` (any case), otherwise in `zone` (ssh-keygen uses the local time zone).
pub fn parse_time(text: &str, zone: &TimeZone) -> Result<i64, String> {
    let bad = || format!("{text:?} is not a time as YYYYMMDD or YYYYMMDDHHMM[SS], with Z for UTC");
    let upper = text.to_ascii_uppercase();
    let (digits, zone) = match upper
        .strip_suffix("UTC")
        .or_else(|| upper.strip_suffix('Z'))
    {
        Some(digits) => (digits, &TimeZone::UTC),
        None => (upper.as_str(), zone),
    };
    if !matches!(digits.len(), 8 | 12 | 14) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    // Checked to be digits above; a field past the end (no time, no seconds) is 0.
    let field = |at: usize, len: usize| -> i16 {
        digits
            .get(at..at + len)
            .map_or(0, |f| f.parse().unwrap_or(0))
    };
    // Two digits always fit in an i8.
    let two = |at: usize| field(at, 2) as i8;
    let civil = DateTime::new(field(0, 4), two(4), two(6), two(8), two(10), two(12), 0)
        .map_err(|_| bad())?;
    let guess = zone
        .to_ambiguous_zoned_datetime(civil)
        .compatible()
        .map_err(|_| bad())?
        .timestamp();
    standard_offset(zone, guess)
        .to_timestamp(civil)
        .map(|t| t.as_second())
        .map_err(|_| bad())
}

/// The zone's standard (not summer) offset around `at`: parse_absolute_time leaves
/// tm_isdst at 0, so mktime reads a local time as standard time even in summer.
fn standard_offset(zone: &TimeZone, at: jiff::Timestamp) -> jiff::tz::Offset {
    let info = zone.to_offset_info(at);
    if !info.dst().is_dst() {
        return info.offset();
    }
    zone.preceding(at)
        .find(|t| !t.dst().is_dst())
        .map_or(info.offset(), |t| t.offset())
}

/// OpenSSH match.c `match_pattern`: the whole of `text` against `pattern`, where `*`
/// matches any run of characters and `?` any one character.
pub fn match_pattern(text: &str, pattern: &str) -> bool {
    let (text, pattern): (Vec<char>, Vec<char>) =
        (text.chars().collect(), pattern.chars().collect());
    // The classic greedy matcher: on a mismatch, let the last `*` take one more character.
    let (mut t, mut p) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            t += 1;
            p += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

/// OpenSSH match.c `match_pattern_list`: comma-separated patterns, each negated by a
/// leading `!`; a negated match refuses at once, else any plain match accepts. Case matters
/// (sshsig.c passes dolower=0).
pub fn match_pattern_list(text: &str, list: &str) -> bool {
    let mut positive = false;
    for pattern in list.split(',') {
        match pattern.strip_prefix('!') {
            Some(negated) if match_pattern(text, negated) => return false,
            Some(_) => {}
            None => positive |= match_pattern(text, pattern),
        }
    }
    positive
}

impl Signer {
    /// Whether this line vouches for `identity` (any identity when None).
    pub fn allows_identity(&self, identity: Option<&str>) -> bool {
        identity.is_none_or(|id| match_pattern_list(id, &self.principals))
    }

    pub fn allows_namespace(&self, namespace: &str) -> bool {
        self.namespaces
            .as_deref()
            .is_none_or(|list| match_pattern_list(namespace, list))
    }

    /// Why the key is not valid at `time` (unix seconds), if it is not: sshsig.c compares
    /// with `<` and `>`, so both bounds are inclusive.
    pub fn invalid_at(&self, time: i64) -> Option<String> {
        if let Some(after) = self.valid_after.filter(|&after| time < after) {
            return Some(format!(
                "is not valid yet: valid-after {} is later than the verify time {}",
                show_time(after),
                show_time(time)
            ));
        }
        if let Some(before) = self.valid_before.filter(|&before| time > before) {
            return Some(format!(
                "has expired: valid-before {} is earlier than the verify time {}",
                show_time(before),
                show_time(time)
            ));
        }
        None
    }
}

/// A time for messages, in UTC.
pub fn show_time(seconds: i64) -> String {
    jiff::Timestamp::from_second(seconds)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|_| seconds.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUBLIC: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILM+rvN+ot98qgEN796jTiQfZfG1KaT0PtFDJ/XFSqti";

    fn utc(text: &str) -> i64 {
        parse_time(text, &TimeZone::UTC).unwrap()
    }

    #[test]
    fn times_in_the_three_ssh_keygen_forms() {
        assert_eq!(utc("20200101"), 1_577_836_800);
        assert_eq!(utc("202001010001"), 1_577_836_860);
        assert_eq!(utc("20200101000001"), 1_577_836_801);
        // Z or UTC, any case, means UTC whatever the zone; otherwise the zone applies.
        let east = TimeZone::fixed(jiff::tz::offset(2));
        assert_eq!(parse_time("20200101Z", &east).unwrap(), 1_577_836_800);
        assert_eq!(parse_time("20200101utc", &east).unwrap(), 1_577_836_800);
        assert_eq!(parse_time("20200101", &east).unwrap(), 1_577_836_800 - 7200);
        // In summer too the zone's standard offset applies: with TZ=Europe/Berlin,
        // ssh-keygen 9.2 takes valid-before="20250701" as 2025-06-30T23:00:00Z.
        let berlin = TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").unwrap();
        assert_eq!(
            parse_time("20250701", &berlin).unwrap(),
            utc("20250630230000")
        );
        assert_eq!(
            parse_time("20250101", &berlin).unwrap(),
            utc("20241231230000")
        );
        for bad in ["2020011", "2020-01-01", "20201301", "20200101T1", "Z", ""] {
            assert!(parse_time(bad, &TimeZone::UTC).is_err(), "{bad}");
        }
    }

    #[test]
    fn patterns_as_openssh_matches_them() {
        assert!(match_pattern("rel@example.com", "*@example.com"));
        assert!(match_pattern("ab", "a?"));
        assert!(match_pattern("abcbd", "a*b*d"));
        assert!(!match_pattern("abc", "a?"));
        assert!(!match_pattern("Rel", "rel"), "case matters");
        assert!(match_pattern_list("me", "*@x,me"));
        assert!(
            !match_pattern_list("me", "m*,!me"),
            "a negated match refuses"
        );
        assert!(
            !match_pattern_list("me", "!you"),
            "negations alone accept nothing"
        );
        assert!(match_pattern_list("file", "fi*"));
    }

    #[test]
    fn lines_with_options_and_the_lines_ssh_keygen_skips() {
        let text = format!(
            "# releases\n\
             \"rel@example.com,ci@*\" NAMESPACES=\"file,git\",valid-after=\"20200101Z\",Valid-Before=\"20300101\" {PUBLIC} c\n\
             *@example.com cert-authority {PUBLIC}\n\
             plain {PUBLIC}\n\
             bad valid-before=20300101 {PUBLIC}\n\
             bad unknown {PUBLIC}\n\
             bad ssh-ed25519 notbase64\n"
        );
        let (signers, skipped) = parse(&text, &TimeZone::UTC);
        assert_eq!(signers.len(), 3, "{skipped:?}");
        let first = &signers[0];
        assert_eq!(first.line, 2);
        assert_eq!(first.principals, "rel@example.com,ci@*");
        assert_eq!(first.namespaces.as_deref(), Some("file,git"));
        assert_eq!(first.valid_after, Some(1_577_836_800));
        assert_eq!(first.valid_before, Some(utc("20300101")));
        assert!(first.allows_identity(Some("ci@host")) && !first.allows_identity(Some("x")));
        assert!(first.allows_namespace("git") && !first.allows_namespace("email"));
        assert!(signers[1].cert_authority);
        assert!(!signers[2].cert_authority && signers[2].namespaces.is_none());
        assert_eq!(skipped.len(), 3, "{skipped:?}");
        assert!(skipped[0].starts_with("line 5: ") && skipped[0].contains("double quotes"));
        assert!(skipped[1].contains("unknown option"));
    }

    #[test]
    fn tokens_keep_quoted_options_whole() {
        assert_eq!(
            tokens(r#"a@b namespaces="file, git" ssh-ed25519 AAAA c"#),
            [
                "a@b",
                r#"namespaces="file, git""#,
                "ssh-ed25519",
                "AAAA",
                "c"
            ]
        );
        assert_eq!(
            split_options(r#"cert-authority,namespaces="a,b",x"#),
            ["cert-authority", r#"namespaces="a,b""#, "x"]
        );
    }

    #[test]
    fn validity_bounds_are_inclusive() {
        let (signers, _) = parse(
            &format!("a valid-after=\"20200101Z\",valid-before=\"20210101Z\" {PUBLIC}"),
            &TimeZone::UTC,
        );
        let s = &signers[0];
        assert!(s.invalid_at(utc("20200101")).is_none());
        assert!(s.invalid_at(utc("20210101")).is_none());
        assert!(s
            .invalid_at(utc("20191231235959"))
            .unwrap()
            .contains("not valid yet"));
        assert!(s
            .invalid_at(utc("20210101000001"))
            .unwrap()
            .contains("has expired"));
    }
}
