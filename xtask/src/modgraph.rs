//! The module graph of src/: which module refers to which (`crate::x`, `super::x`,
//! `self::x` and child-module paths, in `use` trees and in code), and the circles in it. Layers call only down, so
//! `cargo xtask lint` fails on any circle and names it with a reference for each step.
//!
//! The nodes are the top-level modules, except that the submodules of the modules in
//! `SPLIT` are nodes of their own (`package::release`, `attest::sbom`); deeper modules
//! belong to their ancestor node. Two views are checked:
//! - between top-level modules (package <-> attest is a circle wherever in them it runs);
//! - between the nodes, without the edges between a module and its own submodules (a
//!   parent that dispatches to its children, which use the parent's shared types, is one
//!   layer), so circles between siblings (package::tarball <-> package::pgzip) show.
//!
//! Test modules (`#[cfg(test)] mod ...`) are left out: tests may reach anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Modules whose submodules are nodes of their own.
const SPLIT: &[&str] = &[
    "engine", "package", "attest", "kube", "commands", "exec", "outdir", "checks", "ui", "resolve",
];

/// src/'s layers, top first (DESIGN.md's layout). A module may refer to its own layer and
/// to any layer below it, never above: the data flows down from the command line.
pub const LAYERS: &[(&str, &[&str])] = &[
    ("entry", &["main"]),
    ("commands", &["commands"]),
    ("resolve", &["resolve"]),
    ("cli", &["cli"]),
    ("exec", &["exec"]),
    ("checks", &["checks"]),
    ("engine", &["engine"]),
    ("package", &["package"]),
    ("attest", &["attest"]),
    ("source", &["source"]),
    ("outdir", &["outdir"]),
    ("kube", &["kube"]),
    ("ui", &["ui"]),
    ("plan", &["plan"]),
    (
        "leaves",
        &[
            "artifact", "env", "error", "imageref", "input", "redact", "signals", "suggest",
            "units",
        ],
    ),
];

/// One reference, for the report: where it is and what it names.
#[derive(Debug, Clone)]
pub struct Site {
    pub file: PathBuf,
    pub line: usize,
    pub path: String,
}

/// Node -> node it refers to -> the first reference seen.
pub type Graph = BTreeMap<String, BTreeMap<String, Site>>;

/// Reads every `.rs` file under `src` and builds the graph.
pub fn read(src: &Path) -> std::io::Result<Graph> {
    let mut files = Vec::new();
    collect(src, &mut files)?;
    files.sort();
    let modules: Vec<(PathBuf, Vec<String>)> = files
        .into_iter()
        .map(|f| {
            let module = module_of(src, &f);
            (f, module)
        })
        .collect();
    let known: BTreeSet<Vec<String>> = modules.iter().map(|(_, m)| m.clone()).collect();
    let mut graph = Graph::new();
    for (file, module) in &modules {
        let text = std::fs::read_to_string(file)?;
        let from = node(module);
        graph.entry(from.clone()).or_default();
        for (line, path) in references(&without_tests(&code_only(&text)), module, &known) {
            let to = node(&longest_module(&known, &path));
            if to != from {
                graph
                    .entry(from.clone())
                    .or_default()
                    .entry(to)
                    .or_insert(Site {
                        file: file.clone(),
                        line,
                        path: format!("crate::{}", path.join("::")),
                    });
            }
        }
    }
    Ok(graph)
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, files)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    Ok(())
}

/// `src/package/release.rs` -> [package, release]; `src/package/mod.rs` -> [package];
/// `src/main.rs` -> [] (the crate root).
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap_or(file).with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts
        .last()
        .is_some_and(|p| p == "mod" || p == "main" || p == "lib")
    {
        parts.pop();
    }
    parts
}

/// The node a module belongs to.
fn node(module: &[String]) -> String {
    match module {
        [] => "main".to_string(),
        [top, sub, ..] if SPLIT.contains(&top.as_str()) => format!("{top}::{sub}"),
        [top, ..] => top.clone(),
    }
}

/// The longest prefix of `path` that is a module (`package::Control` -> [package]).
fn longest_module(known: &BTreeSet<Vec<String>>, path: &[String]) -> Vec<String> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|prefix| known.contains(prefix))
        .unwrap_or_default()
}

/// The text with comments, string and char literals blanked out (newlines kept, so line
/// numbers stay right): a doc comment naming `crate::x` is not a reference.
fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    let mut i = 0;
    while i < chars.len() {
        let rest = &chars[i..];
        if rest.starts_with(&['/', '/']) {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if rest.starts_with(&['/', '*']) {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i..].starts_with(&['/', '*']) {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i..].starts_with(&['*', '/']) {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if let Some(hashes) = raw_string_start(rest) {
            // r#"..."#: ends at a quote followed by as many hashes.
            let open = 2 + hashes;
            out.extend(std::iter::repeat_n(' ', open));
            i += open;
            while i < chars.len() {
                let closes = chars[i + 1..].iter().take(hashes).filter(|&&c| c == '#');
                if chars[i] == '"' && closes.count() == hashes {
                    out.extend(std::iter::repeat_n(' ', 1 + hashes));
                    i += 1 + hashes;
                    break;
                }
                out.push(blank(chars[i]));
                i += 1;
            }
        } else if chars[i] == '"' {
            out.push(' ');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                let skip = if chars[i] == '\\' { 2 } else { 1 };
                for c in chars.iter().skip(i).take(skip) {
                    out.push(blank(*c));
                }
                i += skip;
            }
            out.push(' ');
            i += 1;
        } else if chars[i] == '\'' && is_char_literal(rest) {
            out.push(' ');
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                let skip = if chars[i] == '\\' { 2 } else { 1 };
                out.extend(std::iter::repeat_n(' ', skip));
                i += skip;
            }
            out.push(' ');
            i += 1;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

/// `r"`, `r#"`, `br##"`...: the number of hashes, when a raw string starts here.
fn raw_string_start(rest: &[char]) -> Option<usize> {
    let rest = rest.strip_prefix(&['b']).unwrap_or(rest);
    let rest = rest.strip_prefix(&['r'])?;
    let hashes = rest.iter().take_while(|&&c| c == '#').count();
    (rest.get(hashes) == Some(&'"')).then_some(hashes)
}

/// `'a'`, `'\n'`, `'\u{1F600}'` are char literals; `'a` in `&'a str` is a lifetime.
fn is_char_literal(rest: &[char]) -> bool {
    match rest.get(1) {
        Some('\\') => true,
        Some(_) => rest.get(2) == Some(&'\''),
        None => false,
    }
}

/// The text up to its test module: `#[cfg(test)]` followed by `mod`.
fn without_tests(code: &str) -> String {
    let lines: Vec<&str> = code.lines().collect();
    let end = (0..lines.len())
        .find(|&i| {
            lines[i].trim() == "#[cfg(test)]"
                && lines[i + 1..]
                    .iter()
                    .find(|l| !l.trim().is_empty())
                    .is_some_and(|l| l.trim_start().starts_with("mod "))
        })
        .unwrap_or(lines.len());
    lines[..end].join("\n")
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    PathSep,
    Open,
    Close,
    Comma,
    Other,
}

/// Identifiers, `::`, braces and commas, each with its line; everything else is `Other`.
fn tokens(code: &str) -> Vec<(usize, Token)> {
    let chars: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push((line, Token::Ident(chars[start..i].iter().collect())));
        } else if chars[i..].starts_with(&[':', ':']) {
            out.push((line, Token::PathSep));
            i += 2;
        } else {
            let token = match c {
                '{' => Token::Open,
                '}' => Token::Close,
                ',' => Token::Comma,
                _ => Token::Other,
            };
            out.push((line, token));
            i += 1;
        }
    }
    out
}

/// Every path the code names through `crate::`, `super::`, `self::` or a child module's
/// name (`docker::connect` in engine/mod.rs), resolved to an absolute path (without
/// `crate`), with the line it starts on. `use` trees are expanded.
fn references(
    code: &str,
    module: &[String],
    known: &BTreeSet<Vec<String>>,
) -> Vec<(usize, Vec<String>)> {
    let tokens = tokens(code);
    let is_child = |word: &str| {
        let mut child = module.to_vec();
        child.push(word.to_string());
        known.contains(&child)
    };
    let mut found = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let (line, token) = &tokens[i];
        let start = match token {
            Token::Ident(word)
                if word == "crate" || word == "super" || word == "self" || is_child(word) =>
            {
                // Only at the start of a path, not inside one (`a::self`).
                i == 0 || tokens[i - 1].1 != Token::PathSep
            }
            _ => false,
        };
        if !start || tokens.get(i + 1).map(|t| &t.1) != Some(&Token::PathSep) {
            i += 1;
            continue;
        }
        let mut base: Vec<String> = Vec::new();
        let mut j = i;
        // Leading `crate::` or one or more `super::`.
        if let Token::Ident(w) = token {
            if w == "crate" {
                j += 2;
            } else if w == "self" {
                base = module.to_vec();
                j += 2;
            } else if w != "super" {
                // A child module: the path goes on from this module.
                base = module.to_vec();
            } else {
                base = module.to_vec();
                while matches!(&tokens.get(j).map(|t| &t.1), Some(Token::Ident(w)) if w == "super")
                    && tokens.get(j + 1).map(|t| &t.1) == Some(&Token::PathSep)
                {
                    base.pop();
                    j += 2;
                }
            }
        }
        let mut paths = Vec::new();
        j = use_tree(&tokens, j, base, &mut paths);
        found.extend(paths.into_iter().map(|p| (*line, p)));
        i = j.max(i + 1);
    }
    found
}

/// Reads a path or a use tree (`a::b`, `a::{b, c::d}`, `{a, b}`) at `tokens[i]`, pushing
/// each full path onto `out`; returns the index after it.
fn use_tree(
    tokens: &[(usize, Token)],
    mut i: usize,
    mut prefix: Vec<String>,
    out: &mut Vec<Vec<String>>,
) -> usize {
    loop {
        match tokens.get(i).map(|t| &t.1) {
            Some(Token::Ident(word)) => {
                if word != "self" {
                    prefix.push(word.clone());
                }
                if tokens.get(i + 1).map(|t| &t.1) == Some(&Token::PathSep) {
                    i += 2;
                } else {
                    out.push(prefix);
                    return i + 1;
                }
            }
            Some(Token::Open) => {
                i += 1;
                loop {
                    match tokens.get(i).map(|t| &t.1) {
                        Some(Token::Close) => return i + 1,
                        Some(Token::Comma) => i += 1,
                        None => return i,
                        _ => {
                            let next = use_tree(tokens, i, prefix.clone(), out);
                            // Skip what a tree may end with that is not a path (`as x`, `*`).
                            i = next;
                            while !matches!(
                                tokens.get(i).map(|t| &t.1),
                                Some(Token::Comma) | Some(Token::Close) | None
                            ) {
                                i += 1;
                            }
                        }
                    }
                }
            }
            _ => {
                // `crate::*`, or a path ending in `::*`.
                out.push(prefix);
                return i;
            }
        }
    }
}

/// The circles of both views (see the module comment), with the graph each was found in.
pub fn layer_circles(graph: &Graph) -> Vec<(Graph, Vec<String>)> {
    let mut found: Vec<(Graph, Vec<String>)> = Vec::new();
    for view in [top_level(graph), without_parent_edges(graph)] {
        for circle in circles(&view) {
            found.push((view.clone(), circle));
        }
    }
    found
}

/// A reference from a lower layer to a higher one: (from, to, where).
pub type Breach = (String, String, Site);

/// The rank of a top-level module in LAYERS (0 = top), or None for a module no layer names.
pub fn rank(module: &str) -> Option<usize> {
    LAYERS
        .iter()
        .position(|(_, members)| members.contains(&module))
}

/// Every reference that climbs to a higher layer, and the modules no layer names.
pub fn layer_breaches(graph: &Graph) -> (Vec<Breach>, Vec<String>) {
    let top = top_level(graph);
    let unplaced = top.keys().filter(|m| rank(m).is_none()).cloned().collect();
    let mut breaches = Vec::new();
    for (from, edges) in &top {
        for (to, site) in edges {
            if let (Some(a), Some(b)) = (rank(from), rank(to)) {
                if b < a {
                    breaches.push((from.clone(), to.clone(), site.clone()));
                }
            }
        }
    }
    (breaches, unplaced)
}

/// The modules that all reach one another with `node` (its strongly connected component).
pub fn entangled_with(graph: &Graph, node: &str) -> BTreeSet<String> {
    strongly_connected(graph)
        .into_iter()
        .find(|c| c.contains(node))
        .unwrap_or_default()
}

/// The graph between top-level modules (`package::release` -> `package`).
fn top_level(graph: &Graph) -> Graph {
    let top = |node: &str| node.split("::").next().unwrap_or(node).to_string();
    let mut collapsed = Graph::new();
    for (from, edges) in graph {
        let entry = collapsed.entry(top(from)).or_default();
        for (to, site) in edges {
            if top(to) != top(from) {
                entry.entry(top(to)).or_insert_with(|| site.clone());
            }
        }
    }
    collapsed
}

/// The graph without the edges between a node and its parent (`attest` <-> `attest::sbom`).
fn without_parent_edges(graph: &Graph) -> Graph {
    let parent_of = |a: &str, b: &str| b.strip_prefix(a).is_some_and(|rest| rest.starts_with("::"));
    graph
        .iter()
        .map(|(from, edges)| {
            let kept = edges
                .iter()
                .filter(|(to, _)| !parent_of(from, to) && !parent_of(to, from))
                .map(|(to, site)| (to.clone(), site.clone()))
                .collect();
            (from.clone(), kept)
        })
        .collect()
}

/// The circles of the graph, each once, as node lists from its smallest node round to it.
pub fn circles(graph: &Graph) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    for component in strongly_connected(graph) {
        if component.len() < 2 {
            continue;
        }
        // One circle through the component's first node, as a witness: the shortest path
        // from it back to itself inside the component.
        let start = component.iter().min().expect("not empty").clone();
        if let Some(circle) = shortest_cycle(graph, &start, &component) {
            found.push(circle);
        }
    }
    found.sort();
    found
}

/// Tarjan's strongly connected components.
fn strongly_connected(graph: &Graph) -> Vec<BTreeSet<String>> {
    struct State<'a> {
        graph: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        components: Vec<BTreeSet<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        let graph = s.graph;
        for w in graph.get(v).into_iter().flat_map(|e| e.keys()) {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = BTreeSet::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.insert(w.to_string());
                if w == v {
                    break;
                }
            }
            s.components.push(component);
        }
    }
    let mut state = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        components: Vec::new(),
    };
    for v in graph.keys() {
        if !state.index.contains_key(v.as_str()) {
            visit(&mut state, v);
        }
    }
    state.components
}

/// The shortest path `start -> ... -> start` within `within` (breadth first).
fn shortest_cycle(graph: &Graph, start: &str, within: &BTreeSet<String>) -> Option<Vec<String>> {
    let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for w in graph.get(v).into_iter().flat_map(|e| e.keys()) {
            if !within.contains(w) {
                continue;
            }
            if w == start {
                let mut path = vec![start.to_string()];
                let mut at = v;
                while at != start {
                    path.push(at.to_string());
                    at = came_from[at];
                }
                path.push(start.to_string());
                path.reverse();
                return Some(path);
            }
            if !came_from.contains_key(w.as_str()) {
                came_from.insert(w, v);
                queue.push_back(w);
            }
        }
    }
    None
}

/// A circle with the reference behind each step, one step a line, and the other modules
/// caught in it when there are more.
pub fn describe(graph: &Graph, circle: &[String]) -> String {
    let mut text = format!("module circle: {}", circle.join(" -> "));
    let all = entangled_with(graph, &circle[0]);
    if all.len() + 1 > circle.len() {
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        text.push_str(&format!(
            "\n  (one of the circles among {} modules that all reach one another: {})",
            all.len(),
            all.join(", ")
        ));
    }
    for pair in circle.windows(2) {
        let site = &graph[&pair[0]][&pair[1]];
        text.push_str(&format!(
            "\n  {} -> {}: {} ({}:{})",
            pair[0],
            pair[1],
            site.path,
            site.file.display(),
            site.line
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(path: &str) -> Vec<String> {
        path.split("::").map(String::from).collect()
    }

    fn circle_of(nodes: &[&str]) -> Vec<String> {
        nodes.iter().map(|n| n.to_string()).collect()
    }

    fn refs(code: &str, at: &str) -> Vec<String> {
        let known = BTreeSet::from([module("engine::docker")]);
        references(&without_tests(&code_only(code)), &module(at), &known)
            .into_iter()
            .map(|(_, p)| p.join("::"))
            .collect()
    }

    #[test]
    fn use_trees_and_paths_in_code_are_found() {
        let code = "use crate::a::{b, c::{d, e as f}, self};\nuse super::Control;\nfn x() { crate::g::h(); }\nuse crate::*;\n";
        assert_eq!(
            refs(code, "package::release"),
            [
                "a::b",
                "a::c::d",
                "a::c::e",
                "a",
                "package::Control",
                "g::h",
                ""
            ]
        );
    }

    #[test]
    fn a_parent_naming_its_child_refers_to_it() {
        let code = "pub mod docker;\npub use docker::Docker;\nfn f() { self::docker::run(); x::docker::y(); }\n";
        assert_eq!(
            refs(code, "engine"),
            ["engine::docker::Docker", "engine::docker::run"]
        );
    }

    #[test]
    fn comments_strings_and_tests_are_not_references() {
        let code = "//! uses `crate::a`\n/* crate::b */ let s = \"crate::c\"; let r = r#\"crate::d\"#;\nlet c = '\"'; fn f<'a>(x: &'a str) { crate::e::f() }\n#[cfg(test)]\nmod tests {\n    use crate::g;\n}\n";
        assert_eq!(refs(code, "x"), ["e::f"]);
    }

    #[test]
    fn a_circle_is_found_and_named_with_its_references() {
        let dir = std::env::temp_dir().join(format!("modgraph-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("package")).unwrap();
        std::fs::create_dir_all(dir.join("attest")).unwrap();
        std::fs::write(
            dir.join("main.rs"),
            "mod attest;\nmod package;\nmod units;\n",
        )
        .unwrap();
        std::fs::write(dir.join("units.rs"), "").unwrap();
        std::fs::write(
            dir.join("package/mod.rs"),
            "pub mod release;\npub struct Control;\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("package/release.rs"),
            "use crate::attest::write;\nuse crate::units;\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("attest/mod.rs"),
            "\nuse crate::package::release::Input;\n",
        )
        .unwrap();
        let graph = read(&dir).unwrap();
        let found = circles(&graph);
        assert_eq!(
            found,
            [circle_of(&["attest", "package::release", "attest"])]
        );
        let text = describe(&graph, &found[0]);
        assert!(
            text.contains("attest -> package::release: crate::package::release::Input"),
            "{text}"
        );
        assert!(text.contains("mod.rs:2"), "{text}");

        std::fs::write(dir.join("attest/mod.rs"), "use crate::units;\n").unwrap();
        assert!(circles(&read(&dir).unwrap()).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
