//! Every `kbuild` command line the README and docs/ show is one the real parser accepts: a
//! renamed flag or a removed command fails this test, not a reader. Lines are taken from
//! ```sh blocks (and `run:` steps of ```yaml blocks), joined over `\` continuations, and cut
//! at a comment, a pipe, a redirection or `&&`. They are parsed, not run: many name a real
//! Kubernetes checkout, a registry or a remote engine (illustrative); running the ones that
//! work offline is `cargo xtask demo` and the integration tests.

#![cfg(test)]

use clap::Parser;

use super::{Cli, Command};

/// The words of a shell command line (quotes removed), up to the first operator. A CI
/// expression (`${{ matrix.platform }}`) stands for one word.
fn words(line: &str) -> Vec<String> {
    let mut line = line.to_string();
    while let (Some(a), Some(b)) = (line.find("${{"), line.find("}}")) {
        if b < a {
            break;
        }
        line.replace_range(a..b + 2, "CI-VALUE");
    }
    let line = line.as_str();
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut in_word = false;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, '#') if !in_word => break,
            (None, '|' | '>' | ';' | '&') => break,
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    // `2>&1`: the `2` before a redirection is not an argument.
    if words.last().is_some_and(|w| w == "2") && line.contains("2>") {
        words.pop();
    }
    words
}

/// The `kbuild` command lines of a Markdown text, with their line numbers.
fn command_lines(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let mut block: Option<String> = None;
    let mut pending: Option<(usize, String)> = None;
    for (n, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        if let Some(fence) = trimmed.strip_prefix("```") {
            block = match block {
                Some(_) => None,
                None => Some(fence.to_string()),
            };
            continue;
        }
        let Some(lang) = &block else { continue };
        let line = match lang.as_str() {
            "sh" | "bash" | "console" => trimmed.trim_start_matches("$ "),
            "yaml" | "yml" => match trimmed.trim_start_matches("- ").strip_prefix("run:") {
                Some(run) => run.trim(),
                None => continue,
            },
            _ => continue,
        };
        let (start, mut joined) = match pending.take() {
            Some((start, before)) => (start, format!("{before} {line}")),
            None if line.starts_with("kbuild ") || line == "kbuild" => (n + 1, line.to_string()),
            None => continue,
        };
        if let Some(open) = joined.strip_suffix('\\') {
            joined = open.to_string();
            pending = Some((start, joined));
            continue;
        }
        found.push((start, joined));
    }
    found
}

/// Parses `line` as kbuild would; `plan` and `run` lines also parse the command they carry.
fn parses(line: &[String]) -> Result<(), String> {
    let cli = match Cli::try_parse_from(line) {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => return Ok(()), // --help, --version
        Err(e) => return Err(e.render().to_string()),
    };
    if let Command::Plan(plan) = &cli.command {
        let inner = &plan.what[0];
        if !inner.ends_with(".toml") && !inner.ends_with(".json") {
            let mut again = vec!["kbuild".to_string()];
            again.extend(plan.what.iter().cloned());
            return parses(&again);
        }
    }
    Ok(())
}

#[test]
fn every_command_line_in_the_readme_and_docs_parses() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<_> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    let mut checked = 0;
    let mut refused = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in command_lines(&text) {
            checked += 1;
            if let Err(e) = parses(&words(&line)) {
                refused.push(format!("{}:{n}: {line}\n{e}", file.display()));
            }
        }
    }
    assert!(checked >= 40, "only {checked} command lines found");
    assert!(refused.is_empty(), "{}", refused.join("\n"));
}

#[test]
fn words_stop_at_operators_and_keep_quoted_text() {
    assert_eq!(
        words("kbuild --json build 'a b' --out \"x y\" > out.jsonl"),
        ["kbuild", "--json", "build", "a b", "--out", "x y"]
    );
    assert_eq!(
        words("kbuild verify out # checks"),
        ["kbuild", "verify", "out"]
    );
    assert_eq!(
        words("kbuild build kubectl 2>&1 | head -1"),
        ["kbuild", "build", "kubectl"]
    );
    let text = "```sh\nkbuild build kubectl \\\n    --platform linux/arm64\n```\n";
    assert_eq!(
        command_lines(text),
        [(
            2,
            "kbuild build kubectl  --platform linux/arm64".to_string()
        )]
    );
}
