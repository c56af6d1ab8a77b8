//! Recipes: TOML files that say what `kbuild run` does, so a team keeps its build the way
//! GoReleaser users keep a .goreleaser.yaml. A recipe maps straight onto the resolver's option
//! overlay (`resolve::options::from_recipe`), the same one flags give, so recipes and flags
//! share one path through validation.
//!
//! Precedence, highest first: flags given to `kbuild run`, the environment (KUBE_BUILD_PLATFORMS,
//! KUBE_GIT_VERSION, KBUILD_IMAGE), the recipe, kbuild's defaults.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::error::{Error, Result};
use crate::kube::{Component, Platform};

/// Recipes are read up to this size: the ready ones are under 2 KiB, and a file larger
/// than this is not a recipe (`/dev/zero`, a log named by mistake).
pub const MAX_BYTES: u64 = 4 << 20;

/// The commands a recipe can run.
pub const COMMANDS: &[&str] = &["build", "quick-release", "extension"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// build | quick-release | extension
    pub command: Spanned<String>,
    #[serde(default)]
    pub components: Vec<Spanned<String>>,
    #[serde(default)]
    pub platforms: Vec<Spanned<String>>,
    #[serde(default)]
    pub source: SourceSection,
    #[serde(default)]
    pub engine: EngineSection,
    #[serde(default)]
    pub checks: ChecksSection,
    #[serde(default)]
    pub output: OutputSection,
    #[serde(default)]
    pub extension: ExtensionSection,
    /// `[[engines]]`: several engines, each with how many jobs it takes at a time.
    #[serde(default)]
    pub engines: Vec<EngineEntry>,
}

/// One of several engines (`--engines NAME=JOBS`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineEntry {
    /// A docker context name or an endpoint (unix://, tcp://, ssh://).
    pub name: Spanned<String>,
    pub jobs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSection {
    /// An existing checkout (relative paths are relative to the current directory).
    pub kube_root: Option<Spanned<PathBuf>>,
    /// A repository and ref to clone or update instead.
    pub repo: Option<Spanned<String>>,
    #[serde(rename = "ref")]
    pub git_ref: Option<Spanned<String>>,
    /// Where the ref is checked out.
    pub dir: Option<Spanned<PathBuf>>,
    /// The version to stamp (like KUBE_GIT_VERSION).
    pub version: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineSection {
    /// docker | host
    pub kind: Option<Spanned<String>>,
    pub image: Option<Spanned<String>>,
    /// A memory limit for build containers, e.g. "6g".
    pub memory: Option<Spanned<String>>,
    pub network: Option<bool>,
    pub stall_timeout: Option<u64>,
    /// CPUs each build container may use.
    pub cpus: Option<f64>,
    /// Refuse Go cache imports (`--no-cache-import`): a release recipe's clean build.
    pub no_cache_import: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChecksSection {
    pub min_memory: Option<Spanned<String>>,
    pub min_disk: Option<Spanned<String>>,
    #[serde(default)]
    pub skip: Vec<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSection {
    pub dir: Option<Spanned<PathBuf>>,
    /// The SSH private key that signs the set (`--sign-key`).
    pub sign_key: Option<Spanned<PathBuf>>,
    /// A quick-release without test targets and test tarballs (`--no-test-tarballs`).
    pub no_test_tarballs: Option<bool>,
    /// `--base-image BASE=REF`, as a table (`go-runner = "..."`).
    #[serde(default)]
    pub base_images: std::collections::BTreeMap<String, Spanned<String>>,
    /// `--no-images`.
    pub no_images: Option<bool>,
}

/// `kbuild extension --tag` and what goes with it (command = "extension" only).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtensionSection {
    /// The extension image, NAME:TAG.
    pub tag: Option<Spanned<String>>,
    pub metadata: Option<Spanned<PathBuf>>,
    pub icon: Option<Spanned<PathBuf>>,
    pub ui: Option<Spanned<PathBuf>>,
    /// KEY=VALUE image labels.
    #[serde(default)]
    pub labels: Vec<Spanned<String>>,
    pub load: Option<bool>,
    pub push: Option<bool>,
    pub insecure_registry: Option<bool>,
}

impl ExtensionSection {
    fn is_empty(&self) -> bool {
        self.tag.is_none()
            && self.metadata.is_none()
            && self.icon.is_none()
            && self.ui.is_none()
            && self.labels.is_empty()
            && self.load.is_none()
            && self.push.is_none()
            && self.insecure_registry.is_none()
    }
}

/// The keys each table accepts, for "did you mean" on unknown keys.
const KEYS: &[&str] = &[
    "command",
    "components",
    "platforms",
    "source",
    "engine",
    "checks",
    "output",
    "kube_root",
    "repo",
    "ref",
    "dir",
    "version",
    "kind",
    "image",
    "memory",
    "network",
    "stall_timeout",
    "min_memory",
    "min_disk",
    "skip",
    "sign_key",
    "extension",
    "tag",
    "metadata",
    "icon",
    "ui",
    "labels",
    "load",
    "push",
    "insecure_registry",
    "engines",
    "name",
    "jobs",
    "cpus",
    "no_cache_import",
    "no_test_tarballs",
    "base_images",
    "no_images",
];

/// A recipe read from a file.
pub struct Loaded {
    pub path: PathBuf,
    pub recipe: Recipe,
}

/// Reads and validates a recipe file.
pub fn load(path: &Path) -> Result<Loaded> {
    use crate::input::{self, InputError, Links};
    let text = input::read_text_capped(path, MAX_BYTES, Links::Follow).map_err(|e| {
        let hint = match e {
            InputError::TooLarge { .. } => format!(
                "a recipe is a short TOML file (the ready ones in recipes/ are under 2 KiB); kbuild reads at most {} MiB",
                MAX_BYTES >> 20
            ),
            _ => "pass the path of a recipe file, e.g. recipes/quick-release.toml".to_string(),
        };
        Error::usage(format!("recipe {} {e}", path.display())).with_hint(hint)
    })?;
    let recipe = parse(path, &text)?;
    Ok(Loaded {
        path: path.to_path_buf(),
        recipe,
    })
}

/// Parses and validates recipe text; errors point at file:line:column with the snippet.
pub fn parse(path: &Path, text: &str) -> Result<Recipe> {
    let recipe: Recipe = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        let message = e.message().to_string();
        let mut err = located(path, text, span.start, &message);
        if let Some(unknown) = unknown_key(&message) {
            if KEYS.contains(&unknown) {
                // A real key in the wrong table (say `kube_root` outside `[source]`).
                err = err.with_hint(format!(
                    "`{unknown}` is a recipe key of another table: the recipe schema in docs/plans-and-recipes.md says which"
                ));
            } else if let Some(close) = crate::suggest::closest(unknown, KEYS.iter().copied()) {
                err = err.with_hint(format!(
                    "did you mean `{close}`? see the recipe schema in docs/plans-and-recipes.md"
                ));
            }
        }
        err
    })?;
    validate(path, text, &recipe)?;
    Ok(recipe)
}

/// The key named in serde's "unknown field `x`, expected ..." message.
fn unknown_key(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

fn validate(path: &Path, text: &str, recipe: &Recipe) -> Result<()> {
    let at = |span: std::ops::Range<usize>, message: String, hint: String| {
        located(path, text, span.start, &message).with_hint(hint)
    };
    for (key, value) in recipe.values() {
        if let Some((message, hint)) = argument_problem(key, &value) {
            return Err(at(value.span, message, hint));
        }
    }
    let command = recipe.command.get_ref();
    if !COMMANDS.contains(&command.as_str()) {
        let mut hint = format!("valid commands are: {}", COMMANDS.join(", "));
        if let Some(close) = crate::suggest::closest(command, COMMANDS.iter().copied()) {
            hint = format!("did you mean \"{close}\"? {hint}");
        }
        return Err(at(
            recipe.command.span(),
            format!("unknown command \"{command}\""),
            hint,
        ));
    }
    if command == "build" && recipe.components.is_empty() {
        return Err(at(
            recipe.command.span(),
            "a build recipe needs components".to_string(),
            "add e.g. components = [\"kubectl\"]".to_string(),
        ));
    }
    if command == "quick-release" {
        if let Some(first) = recipe.components.first() {
            return Err(at(
                first.span(),
                "a quick-release builds every target set the tree has; it takes no components"
                    .to_string(),
                "remove `components`, or use command = \"build\" for chosen components".to_string(),
            ));
        }
    }
    for c in &recipe.components {
        if let Err(e) = Component::parse(c.get_ref()) {
            return Err(at(c.span(), e.message, e.hint.unwrap_or_default()));
        }
    }
    for p in &recipe.platforms {
        if let Err(e) = Platform::parse(p.get_ref()) {
            return Err(at(p.span(), e.message, e.hint.unwrap_or_default()));
        }
    }
    if let Some(kind) = &recipe.engine.kind {
        if !["docker", "host"].contains(&kind.get_ref().as_str()) {
            return Err(at(
                kind.span(),
                format!("unknown engine kind \"{}\"", kind.get_ref()),
                "valid kinds are: docker, host".to_string(),
            ));
        }
    }
    for size in [
        &recipe.engine.memory,
        &recipe.checks.min_memory,
        &recipe.checks.min_disk,
    ]
    .into_iter()
    .flatten()
    {
        if let Err(e) = crate::units::parse_size(size.get_ref()) {
            return Err(at(size.span(), e.message, e.hint.unwrap_or_default()));
        }
    }
    if let Some(version) = &recipe.source.version {
        if let Err(e) = crate::kube::version::parse(version.get_ref()) {
            return Err(at(version.span(), e.message, e.hint.unwrap_or_default()));
        }
    }
    if command != "quick-release" && recipe.output.no_test_tarballs.is_some() {
        return Err(at(
            recipe.command.span(),
            format!(
                "[output] no_test_tarballs is for command = \"quick-release\", not \"{command}\""
            ),
            "remove no_test_tarballs: only a quick-release writes test tarballs".to_string(),
        ));
    }
    if command != "extension" && !recipe.extension.is_empty() {
        return Err(at(
            recipe.command.span(),
            format!("[extension] is for command = \"extension\", not \"{command}\""),
            "remove the [extension] table, or make the recipe an extension recipe".to_string(),
        ));
    }
    if let (Some(_), Some(git_ref)) = (&recipe.source.kube_root, &recipe.source.git_ref) {
        return Err(at(
            git_ref.span(),
            "[source] has both kube_root and ref".to_string(),
            "build an existing checkout (kube_root) or a ref to fetch (ref), not both".to_string(),
        ));
    }
    Ok(())
}

/// A recipe value as text, with where it is in the file.
struct Value {
    text: String,
    span: std::ops::Range<usize>,
    /// A path, which a user can write as `./-name` when it really starts with `-`.
    is_path: bool,
}

impl Recipe {
    /// Every string and path value with its key, for the checks every value gets.
    fn values(&self) -> Vec<(&'static str, Value)> {
        let text = |key, v: &Spanned<String>| {
            let value = Value {
                text: v.get_ref().clone(),
                span: v.span(),
                is_path: false,
            };
            (key, value)
        };
        let path = |key, v: &Spanned<PathBuf>| {
            let value = Value {
                text: v.get_ref().to_string_lossy().into_owned(),
                span: v.span(),
                is_path: true,
            };
            (key, value)
        };
        let mut out = vec![text("command", &self.command)];
        out.extend(self.components.iter().map(|v| text("components", v)));
        out.extend(self.platforms.iter().map(|v| text("platforms", v)));
        out.extend(
            self.source
                .kube_root
                .iter()
                .map(|v| path("source.kube_root", v)),
        );
        out.extend(self.source.repo.iter().map(|v| text("source.repo", v)));
        out.extend(self.source.git_ref.iter().map(|v| text("source.ref", v)));
        out.extend(self.source.dir.iter().map(|v| path("source.dir", v)));
        out.extend(
            self.source
                .version
                .iter()
                .map(|v| text("source.version", v)),
        );
        out.extend(self.engine.kind.iter().map(|v| text("engine.kind", v)));
        out.extend(self.engine.image.iter().map(|v| text("engine.image", v)));
        out.extend(self.engine.memory.iter().map(|v| text("engine.memory", v)));
        out.extend(self.engines.iter().map(|e| text("engines.name", &e.name)));
        out.extend(
            self.checks
                .min_memory
                .iter()
                .map(|v| text("checks.min_memory", v)),
        );
        out.extend(
            self.checks
                .min_disk
                .iter()
                .map(|v| text("checks.min_disk", v)),
        );
        out.extend(self.checks.skip.iter().map(|v| text("checks.skip", v)));
        out.extend(self.output.dir.iter().map(|v| path("output.dir", v)));
        out.extend(
            self.output
                .sign_key
                .iter()
                .map(|v| path("output.sign_key", v)),
        );
        let ext = &self.extension;
        out.extend(ext.tag.iter().map(|v| text("extension.tag", v)));
        out.extend(ext.metadata.iter().map(|v| path("extension.metadata", v)));
        out.extend(ext.icon.iter().map(|v| path("extension.icon", v)));
        out.extend(ext.ui.iter().map(|v| path("extension.ui", v)));
        out.extend(ext.labels.iter().map(|v| text("extension.labels", v)));
        out
    }
}

/// What is wrong with a value that becomes a command-line argument or a path, as
/// (message, hint): empty, starting with `-` (it would be read as a flag, e.g.
/// `--upload-pack=...` reaching git), or holding a NUL byte (no path or argument can).
fn argument_problem(key: &str, value: &Value) -> Option<(String, String)> {
    let shown = value.text.escape_debug().to_string();
    if value.text.contains('\0') {
        return Some((
            format!("`{key}` holds a NUL byte (\"{shown}\"), which no path or argument can carry"),
            "remove the \\u0000 from the value".to_string(),
        ));
    }
    if value.text.trim().is_empty() {
        let hint = if value.is_path {
            format!("give a path, or remove `{key}` to use the default")
        } else {
            format!("give a value, or remove `{key}`")
        };
        return Some((format!("`{key}` is empty"), hint));
    }
    if value.text.starts_with('-') {
        let hint = if value.is_path {
            format!("a path that really starts with `-` can be written \"./{shown}\"")
        } else {
            "remove the leading `-`".to_string()
        };
        return Some((
            format!("`{key}` is \"{shown}\": a value cannot start with `-`, where it would be read as a flag"),
            hint,
        ));
    }
    None
}

/// An error at byte `offset` of `text`: `file:line:col: message` and the line with a caret.
fn located(path: &Path, text: &str, offset: usize, message: &str) -> Error {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let column = text[line_start..offset].chars().count() + 1;
    let line_text = text[line_start..].lines().next().unwrap_or("");
    let first_line = message.lines().next().unwrap_or(message).trim();
    Error::usage(format!("{}:{line}:{column}: {first_line}", path.display())).with_details(vec![
        line_text.to_string(),
        format!("{}^", " ".repeat(column - 1)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> Error {
        parse(Path::new("r.toml"), text).unwrap_err()
    }

    /// The command a recipe resolves to, with no flags and no environment over it.
    fn resolved(r: &Recipe) -> crate::cli::Command {
        let kind = match r.command.get_ref().as_str() {
            "build" => crate::plan::CommandKind::Build,
            "quick-release" => crate::plan::CommandKind::QuickRelease,
            _ => crate::plan::CommandKind::Extension,
        };
        let overlay = crate::resolve::options::from_recipe(r, Path::new("r.toml"));
        crate::resolve::args::command(kind, overlay, Default::default()).unwrap()
    }

    #[test]
    fn a_minimal_build_recipe_maps_onto_the_build_settings() {
        let r = parse(
            Path::new("r.toml"),
            "command = \"build\"\ncomponents = [\"kubectl\"]\nplatforms = [\"darwin/arm64\"]\n[engine]\nnetwork = true\n[output]\ndir = \"o\"\n",
        )
        .unwrap();
        let crate::cli::Command::Build(args) = resolved(&r) else {
            panic!("a build recipe resolves to kbuild build");
        };
        assert_eq!(args.components, ["kubectl"]);
        assert_eq!(args.target.platforms, ["darwin/arm64"]);
        assert_eq!(args.out, Path::new("o"));
        assert!(args.engine.network);
        // What the recipe leaves out takes kbuild's defaults.
        assert_eq!(args.engine.stall_timeout, 1800);
        assert_eq!(args.source.kube_root, Path::new("."));
    }

    #[test]
    fn a_sign_key_signs_the_set() {
        let r = parse(
            Path::new("r.toml"),
            "command = \"quick-release\"\n[output]\ndir = \"o\"\nsign_key = \"keys/release\"\n",
        )
        .unwrap();
        let crate::cli::Command::QuickRelease(args) = resolved(&r) else {
            panic!("a quick-release recipe resolves to kbuild quick-release");
        };
        assert_eq!(args.sign_key.as_deref(), Some(Path::new("keys/release")));
        let e = err("command = \"quick-release\"\n[output]\nsign_key = \"-k\"\n");
        assert!(e.message.starts_with("r.toml:3:12:"), "{}", e.message);
    }

    #[test]
    fn no_test_tarballs_is_an_output_key_of_quick_release_recipes() {
        let r = parse(
            Path::new("r.toml"),
            "command = \"quick-release\"\n[output]\nno_test_tarballs = true\n",
        )
        .unwrap();
        let crate::cli::Command::QuickRelease(args) = resolved(&r) else {
            panic!("a quick-release recipe resolves to kbuild quick-release");
        };
        assert!(args.no_test_tarballs);
        let e = err(
            "command = \"build\"\ncomponents = [\"kubectl\"]\n[output]\nno_test_tarballs = true\n",
        );
        assert!(
            e.message
                .contains("no_test_tarballs is for command = \"quick-release\""),
            "{}",
            e.message
        );
        // In the wrong table, it is named as a key of another one.
        let e = err("command = \"quick-release\"\nno_test_tarballs = true\n");
        assert!(e.hint.unwrap().contains("another table"));
    }

    #[test]
    fn base_images_and_no_images_are_output_keys() {
        let r = parse(
            Path::new("r.toml"),
            "command = \"quick-release\"\n[output]\nbase_images = { go-runner = \"me/base:1\", \"kube-proxy@arm64\" = \"me/proxy:1\" }\n",
        )
        .unwrap();
        let crate::cli::Command::QuickRelease(args) = resolved(&r) else {
            panic!("a quick-release recipe resolves to kbuild quick-release");
        };
        let images = crate::resolve::resolve_images(&args.images)
            .unwrap()
            .unwrap();
        assert_eq!(images.overrides.refs["go-runner"], "me/base:1");
        assert_eq!(images.overrides.refs["kube-proxy@arm64"], "me/proxy:1");
        let r = parse(
            Path::new("r.toml"),
            "command = \"quick-release\"\n[output]\nno_images = true\n",
        )
        .unwrap();
        let crate::cli::Command::QuickRelease(args) = resolved(&r) else {
            panic!("a quick-release recipe resolves to kbuild quick-release");
        };
        assert!(crate::resolve::resolve_images(&args.images)
            .unwrap()
            .is_none());
    }

    #[test]
    fn unknown_key_points_at_line_and_column_with_a_suggestion() {
        let e =
            err("command = \"build\"\ncomponents = [\"kubectl\"]\nplatfrom = [\"linux/amd64\"]\n");
        assert!(
            e.message
                .starts_with("r.toml:3:1: unknown field `platfrom`"),
            "{}",
            e.message
        );
        assert!(e.hint.unwrap().contains("did you mean `platforms`?"));
        assert_eq!(e.details[0], "platfrom = [\"linux/amd64\"]");
    }

    #[test]
    fn a_key_in_the_wrong_table_is_named_as_such() {
        let e = parse(
            Path::new("r.toml"),
            "command = \"build\"\nkube_root = \".\"\n",
        )
        .unwrap_err();
        let hint = e.hint.unwrap();
        assert!(
            hint.contains("`kube_root` is a recipe key of another table"),
            "{hint}"
        );
        assert!(!hint.contains("did you mean"), "{hint}");
    }

    #[test]
    fn bad_type_and_bad_values_are_located() {
        let e = err("command = \"build\"\ncomponents = \"kubectl\"\n");
        assert!(e.message.starts_with("r.toml:2:14:"), "{}", e.message);
        let e = err("command = \"build\"\ncomponents = [\"kubectl\"]\nplatforms = [\"linux/amd64\", \"linux/amd65\"]\n");
        assert!(
            e.message.starts_with("r.toml:3:29: unknown platform"),
            "{}",
            e.message
        );
        let e = err("command = \"biuld\"\n");
        assert!(e.hint.unwrap().contains("did you mean \"build\"?"));
        let e =
            err("command = \"build\"\ncomponents = [\"kubectl\"]\n[engine]\nmemory = \"lots\"\n");
        assert!(e.message.starts_with("r.toml:4:10:"), "{}", e.message);
    }

    #[test]
    fn values_that_would_become_flags_empty_paths_and_nul_bytes_are_located() {
        let build = "command = \"build\"\ncomponents = [\"kubectl\"]\n";
        let e = err(&format!("{build}[output]\ndir = \"--upload-pack=x\"\n"));
        assert_eq!(
            e.message,
            "r.toml:4:7: `output.dir` is \"--upload-pack=x\": a value cannot start with `-`, where it would be read as a flag"
        );
        assert!(e.hint.unwrap().contains("\"./--upload-pack=x\""));
        let e = err(&format!("{build}[output]\ndir = \"\"\n"));
        assert_eq!(e.message, "r.toml:4:7: `output.dir` is empty");
        let e = err(&format!("{build}[source]\ndir = \"a\\u0000b\"\n"));
        assert!(
            e.message
                .starts_with("r.toml:4:7: `source.dir` holds a NUL byte (\"a\\0b\")"),
            "{}",
            e.message
        );
        let e = err(&format!("{build}[source]\nref = \"-x\"\n"));
        assert!(
            e.message.starts_with("r.toml:4:7: `source.ref` is \"-x\""),
            "{}",
            e.message
        );
        assert_eq!(e.hint.unwrap(), "remove the leading `-`");
        let e = err(&format!(
            "{build}[checks]\nskip = [\"memory\", \"--force\"]\n"
        ));
        assert!(
            e.message.starts_with("r.toml:4:19: `checks.skip`"),
            "{}",
            e.message
        );
        let e = err(&format!(
            "{build}[source]\nkube_root = \".\"\nref = \"v1\"\n"
        ));
        assert!(
            e.message.starts_with("r.toml:5:7: [source] has both"),
            "{}",
            e.message
        );
    }

    /// A small deterministic generator, so the mutation test needs no extra crate.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    #[test]
    fn thousands_of_mutated_recipes_give_errors_never_a_panic() {
        let seeds = [
            include_str!("../../recipes/quick-release.toml"),
            include_str!("../../recipes/kubectl-cross.toml"),
            include_str!("../../recipes/extension-kubectl.toml"),
            include_str!("../../recipes/ci-release.toml"),
            include_str!("../../recipes/mini-kube.toml"),
        ];
        let pieces = [
            "\"", "[", "]", "=", "\n", "é", "[[x]]", "0x", "1e999", "{", "}", "#", "\\u{0}", ",",
            "'''",
        ];
        let mut rng = Rng(0x5eed_cafe_f00d);
        let mut rejected = 0;
        for i in 0..5000 {
            let mut text: Vec<char> = seeds[i % seeds.len()].chars().collect();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(text.len() + 1);
                match rng.below(3) {
                    0 if at < text.len() => {
                        text.remove(at);
                    }
                    1 => text
                        .splice(at..at, pieces[rng.below(pieces.len())].chars())
                        .for_each(drop),
                    _ if at < text.len() => text[at] = char::from(b' ' + rng.below(95) as u8),
                    _ => {}
                }
            }
            let text: String = text.into_iter().collect();
            if let Ok(recipe) = parse(Path::new("m.toml"), &text) {
                let _ = resolved(&recipe);
            } else {
                rejected += 1;
            }
        }
        assert!(
            rejected > 1000,
            "the mutations really break recipes ({rejected} rejected)"
        );
    }
}
