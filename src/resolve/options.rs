//! The option overlay: every setting a command takes, each either unset or set with where it
//! came from. Flags, the environment and a recipe each give one overlay; `over` stacks them
//! (flags over the environment over the recipe) and the resolver fills what is still unset
//! with kbuild's defaults. A recipe maps straight onto the overlay: no command line is made
//! from it and parsed again.

use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::ArgMatches;

use crate::cli::{
    BuildArgs, DoctorArgs, EngineArgs, ExtensionArgs, PackageArgs, QuickReleaseArgs, SourceArgs,
};
use crate::plan::{CommandKind, Input};
use crate::resolve::recipe::Recipe;

/// Where a value came from, highest precedence first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Flag,
    Env(&'static str),
    Recipe(PathBuf),
    /// A saved plan's inputs (`kbuild run plan.json`).
    Plan(PathBuf),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Flag => write!(f, "flag"),
            Origin::Env(name) => write!(f, "env {name}"),
            Origin::Recipe(path) => write!(f, "recipe {}", path.display()),
            Origin::Plan(path) => write!(f, "plan {}", path.display()),
        }
    }
}

/// A value and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Given<T> {
    pub value: T,
    pub from: Origin,
}

macro_rules! options {
    ($($field:ident : $ty:ty = $name:literal),* $(,)?) => {
        /// One command's settings before defaults.
        #[derive(Debug, Clone, Default)]
        pub struct Options {
            $(pub $field: Option<Given<$ty>>,)*
        }

        impl Options {
            /// Each setting from the first of `self` and `lower` that sets it.
            fn stack(self, lower: Options) -> Options {
                Options { $($field: self.$field.or(lower.$field),)* }
            }

            /// Sets one setting from a saved plan's input (`name` as the plan records it).
            pub fn set(
                &mut self,
                name: &str,
                value: serde_json::Value,
                from: Origin,
            ) -> std::result::Result<(), String> {
                match name {
                    $($name => {
                        let value: $ty = serde_json::from_value(value).map_err(|e| e.to_string())?;
                        self.$field = Some(Given { value, from });
                    })*
                    other => return Err(format!("unknown setting `{other}`")),
                }
                Ok(())
            }

            /// Every setting given, as the plan records it (secrets redacted).
            pub fn inputs(&self) -> Vec<Input> {
                let mut out = Vec::new();
                $(
                    if let Some(given) = &self.$field {
                        out.push(Input {
                            name: $name.to_string(),
                            value: redacted(serde_json::to_value(&given.value).unwrap_or_default()),
                            from: given.from.to_string(),
                        });
                    }
                )*
                out
            }
        }
    };
}

options! {
    components: Vec<String> = "component",
    platforms: Vec<String> = "platform",
    kube_root: PathBuf = "kube-root",
    git_ref: String = "ref",
    repo: String = "repo",
    source_dir: PathBuf = "source-dir",
    version: String = "version",
    engine: String = "engine",
    image: String = "image",
    memory: String = "memory",
    network: bool = "network",
    stall_timeout: u64 = "stall-timeout",
    transfer: String = "transfer",
    force: bool = "force",
    context: String = "context",
    skip_checks: Vec<String> = "skip-check",
    min_memory: String = "min-memory",
    min_disk: String = "min-disk",
    out: PathBuf = "out",
    sign_key: PathBuf = "sign-key",
    bin: PathBuf = "bin",
    profile: String = "for",
    tag: String = "tag",
    metadata: PathBuf = "metadata",
    icon: PathBuf = "icon",
    ui: PathBuf = "ui",
    labels: Vec<String> = "label",
    load: bool = "load",
    push: bool = "push",
    insecure_registry: bool = "insecure-registry",
    timings: bool = "timings",
    engines: Vec<String> = "engines",
    require_all_engines: bool = "require-all-engines",
    cpus: f64 = "cpus",
    cache_from: Vec<PathBuf> = "cache-from",
    no_cache_import: bool = "no-cache-import",
    no_test_tarballs: bool = "no-test-tarballs",
    base_images: Vec<String> = "base-image",
    no_images: bool = "no-images",
    images_only: bool = "images-only",
    base_registry: String = "base-image-registry",
    docker_registry: String = "docker-registry",
    docker_image_tag: String = "docker-image-tag",
}

impl Options {
    /// `self` over `lower`: each setting from the first overlay that sets it. The source is
    /// one choice: a tree given above replaces a ref given below, and a ref a tree.
    pub fn over(self, mut lower: Options) -> Options {
        if self.kube_root.is_some() && self.git_ref.is_none() {
            lower.git_ref = None;
            lower.repo = None;
            lower.source_dir = None;
        }
        if self.git_ref.is_some() && self.kube_root.is_none() {
            lower.kube_root = None;
        }
        // Base images are a map by key: a key given above replaces the same key below only.
        let base_images = merge_keyed(self.base_images.clone(), lower.base_images.take());
        let mut merged = self.stack(lower);
        merged.base_images = base_images;
        merged
    }
}

/// `KEY=VALUE` lists merged by key, `upper`'s first; the origin is the upper one's.
fn merge_keyed(
    upper: Option<Given<Vec<String>>>,
    lower: Option<Given<Vec<String>>>,
) -> Option<Given<Vec<String>>> {
    let key = |s: &String| s.split_once('=').map_or(s.clone(), |(k, _)| k.to_string());
    match (upper, lower) {
        (Some(mut u), Some(l)) => {
            let keys: Vec<String> = u.value.iter().map(key).collect();
            u.value
                .extend(l.value.into_iter().filter(|v| !keys.contains(&key(v))));
            Some(u)
        }
        (u, l) => u.or(l),
    }
}

/// Repository URLs may carry a token: strings go through the redactor.
fn redacted(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::String(s) => serde_json::Value::String(crate::redact::text(&s)),
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.into_iter().map(redacted).collect())
        }
        other => other,
    }
}

/// The flags a command line gave, read with clap's record of what the user typed: a value
/// clap filled in from its default is left unset, so a recipe can still set it.
pub struct Flags<'a> {
    matches: &'a ArgMatches,
}

impl<'a> Flags<'a> {
    pub fn new(matches: &'a ArgMatches) -> Flags<'a> {
        Flags { matches }
    }

    fn given<T>(&self, id: &str, value: T) -> Option<Given<T>> {
        let from = match self.matches.value_source(id)? {
            ValueSource::CommandLine => Origin::Flag,
            ValueSource::EnvVariable => Origin::Env(env_name(id)?),
            _ => return None,
        };
        Some(Given { value, from })
    }

    fn given_list(&self, id: &str, value: &[String]) -> Option<Given<Vec<String>>> {
        (!value.is_empty())
            .then(|| self.given(id, value.to_vec()))
            .flatten()
    }

    fn source(&self, o: &mut Options, a: &SourceArgs) {
        o.kube_root = self.given("kube_root", a.kube_root.clone());
        o.git_ref = a.git_ref.clone().and_then(|v| self.given("git_ref", v));
        o.repo = self.given("repo", a.repo.clone());
        o.source_dir = a
            .source_dir
            .clone()
            .and_then(|v| self.given("source_dir", v));
        o.version = a
            .git_version
            .clone()
            .and_then(|v| self.given("git_version", v));
    }

    fn engine(&self, o: &mut Options, a: &EngineArgs) {
        o.image = a.image.clone().and_then(|v| self.given("image", v));
        o.stall_timeout = self.given("stall_timeout", a.stall_timeout);
        o.memory = a.memory.clone().and_then(|v| self.given("memory", v));
        o.network = self.given("network", a.network);
        o.transfer = a
            .transfer
            .and_then(|t| self.given("transfer", value_name(&t)));
        o.force = self.given("force", a.force);
        o.engines = self.given_list("engines", &a.engines);
        o.require_all_engines = self.given("require_all_engines", a.require_all_engines);
        o.cpus = a.cpus.and_then(|v| self.given("cpus", v));
        o.cache_from = (!a.cache_from.is_empty())
            .then(|| self.given("cache_from", a.cache_from.clone()))
            .flatten();
        o.no_cache_import = self.given("no_cache_import", a.no_cache_import);
        o.engine = self.given("engine", value_name(&a.engine));
        o.context = a.context.name.clone().and_then(|v| self.given("name", v));
        o.skip_checks = self.given_list("skip_checks", &a.skip_checks);
        o.min_memory = a
            .min_memory
            .clone()
            .and_then(|v| self.given("min_memory", v));
        o.min_disk = a.min_disk.clone().and_then(|v| self.given("min_disk", v));
    }

    pub fn build(&self, a: &BuildArgs) -> Options {
        let mut o = Options {
            timings: self.given("timings", a.timings.timings),
            components: self.given_list("components", &a.components),
            platforms: self.given_list("platforms", &a.target.platforms),
            out: self.given("out", a.out.clone()),
            ..Options::default()
        };
        self.source(&mut o, &a.source);
        self.engine(&mut o, &a.engine);
        o
    }

    pub fn quick_release(&self, a: &QuickReleaseArgs) -> Options {
        let mut o = Options {
            timings: self.given("timings", a.timings.timings),
            platforms: self.given_list("platforms", &a.target.platforms),
            out: self.given("out", a.out.clone()),
            sign_key: a.sign_key.clone().and_then(|v| self.given("sign_key", v)),
            no_test_tarballs: self.given("no_test_tarballs", a.no_test_tarballs),
            base_images: self.given_list("base_images", &a.images.base_images),
            no_images: self.given("no_images", a.images.no_images),
            images_only: self.given("images_only", a.images.images_only),
            ..Options::default()
        };
        self.source(&mut o, &a.source);
        self.engine(&mut o, &a.engine);
        o
    }

    pub fn extension(&self, a: &ExtensionArgs) -> Options {
        let i = &a.image;
        let mut o = Options {
            timings: self.given("timings", a.timings.timings),
            components: self.given_list("components", &a.components),
            platforms: self.given_list("platforms", &a.platforms),
            out: self.given("out", a.out.clone()),
            sign_key: a.sign_key.clone().and_then(|v| self.given("sign_key", v)),
            tag: i.tag.clone().and_then(|v| self.given("tag", v)),
            metadata: i.metadata.clone().and_then(|v| self.given("metadata", v)),
            icon: i.icon.clone().and_then(|v| self.given("icon", v)),
            ui: i.ui.clone().and_then(|v| self.given("ui", v)),
            labels: self.given_list("labels", &i.labels),
            load: self.given("load", i.load),
            push: self.given("push", i.push),
            insecure_registry: self.given("insecure_registry", i.insecure_registry),
            ..Options::default()
        };
        self.source(&mut o, &a.source);
        self.engine(&mut o, &a.engine);
        o
    }

    pub fn package(&self, a: &PackageArgs) -> Options {
        let mut o = Options {
            timings: self.given("timings", a.timings.timings),
            bin: a.bin.clone().and_then(|v| self.given("bin", v)),
            platforms: self.given_list("platforms", &a.target.platforms),
            out: self.given("out", a.out.clone()),
            sign_key: a.sign_key.clone().and_then(|v| self.given("sign_key", v)),
            ..Options::default()
        };
        self.source(&mut o, &a.source);
        o
    }

    pub fn doctor(&self, a: &DoctorArgs) -> Options {
        Options {
            profile: self.given("profile", value_name(&a.profile)),
            kube_root: self.given("kube_root", a.kube_root.clone()),
            out: self.given("out", a.out.clone()),
            image: a.image.clone().and_then(|v| self.given("image", v)),
            engine: self.given("engine", value_name(&a.engine)),
            context: a.context.name.clone().and_then(|v| self.given("name", v)),
            min_memory: a
                .min_memory
                .clone()
                .and_then(|v| self.given("min_memory", v)),
            min_disk: a.min_disk.clone().and_then(|v| self.given("min_disk", v)),
            skip_checks: self.given_list("skip_checks", &a.skip_checks),
            ..Options::default()
        }
    }
}

/// The variable a flag falls back to in clap (`env = ...` in cli.rs).
fn env_name(id: &str) -> Option<&'static str> {
    match id {
        "image" => Some("KBUILD_IMAGE"),
        _ => None,
    }
}

/// A value enum's name as the user writes it (`docker`, `copy`, `quick-release`).
fn value_name<T: clap::ValueEnum>(value: &T) -> String {
    value
        .to_possible_value()
        .map(|p| p.get_name().to_string())
        .unwrap_or_default()
}

/// The environment's settings: KUBE_BUILD_PLATFORMS (for the commands upstream's make reads
/// it for), KUBE_GIT_VERSION and KBUILD_IMAGE. Empty values count as unset, as upstream's
/// `-n` tests do (kube::golang::setup_platforms in hack/lib/golang.sh).
pub fn from_env(env: &crate::env::Env, command: CommandKind) -> Options {
    let mut o = Options::default();
    let platforms_apply = matches!(
        command,
        CommandKind::Build | CommandKind::QuickRelease | CommandKind::Package
    );
    if platforms_apply {
        if let Some(value) = env.get("KUBE_BUILD_PLATFORMS") {
            o.platforms = Some(Given {
                // Kept whole: the resolver splits it, and names it if it names nothing.
                value: vec![value.to_string()],
                from: Origin::Env("KUBE_BUILD_PLATFORMS"),
            });
        }
    }
    if let Some(value) = env.non_blank("KUBE_GIT_VERSION") {
        o.version = Some(Given {
            value: value.to_string(),
            from: Origin::Env("KUBE_GIT_VERSION"),
        });
    }
    if command == CommandKind::QuickRelease {
        images_from_env(env, &mut o);
    }
    if command != CommandKind::Package {
        if let Some(value) = env.get("KBUILD_IMAGE") {
            o.image = Some(Given {
                value: value.to_string(),
                from: Origin::Env("KBUILD_IMAGE"),
            });
        }
    }
    o
}

/// Upstream's image variables (build/common.sh, build/lib/release.sh): KUBE_GORUNNER_IMAGE
/// and KUBE_<BINARY>_BASE_IMAGE as base-image keys, KUBE_BASE_IMAGE_REGISTRY,
/// KUBE_DOCKER_REGISTRY and KUBE_DOCKER_IMAGE_TAG.
fn images_from_env(env: &crate::env::Env, o: &mut Options) {
    let mut keyed = Vec::new();
    let mut from = None;
    let vars = std::iter::once(("KUBE_GORUNNER_IMAGE", "go-runner")).chain(
        crate::kube::images::IMAGE_BINARIES
            .iter()
            .map(|b| (b.base_var, b.binary)),
    );
    for (var, key) in vars {
        if let Some(value) = env.non_blank(var) {
            keyed.push(format!("{key}={value}"));
            from.get_or_insert(var);
        }
    }
    if let Some(var) = from {
        o.base_images = Some(Given {
            value: keyed,
            from: Origin::Env(var),
        });
    }
    let text = |var: &'static str| {
        env.non_blank(var).map(|v| Given {
            value: v.to_string(),
            from: Origin::Env(var),
        })
    };
    o.base_registry = text("KUBE_BASE_IMAGE_REGISTRY");
    o.docker_registry = text("KUBE_DOCKER_REGISTRY");
    o.docker_image_tag = text("KUBE_DOCKER_IMAGE_TAG");
}

/// A recipe's settings, straight from its tables.
pub fn from_recipe(recipe: &Recipe, path: &std::path::Path) -> Options {
    let from = || Origin::Recipe(path.to_path_buf());
    let set = |value| {
        Some(Given {
            value,
            from: from(),
        })
    };
    let text = |v: &Option<toml::Spanned<String>>| v.as_ref().and_then(|v| set_string(v, path));
    let file = |v: &Option<toml::Spanned<PathBuf>>| {
        v.as_ref().map(|v| Given {
            value: v.get_ref().clone(),
            from: from(),
        })
    };
    let list = |v: &[toml::Spanned<String>]| {
        (!v.is_empty()).then(|| Given {
            value: v.iter().map(|s| s.get_ref().clone()).collect::<Vec<_>>(),
            from: from(),
        })
    };
    let flag = |v: Option<bool>| {
        v.map(|value| Given {
            value,
            from: from(),
        })
    };
    let ext = &recipe.extension;
    Options {
        components: list(&recipe.components),
        platforms: list(&recipe.platforms),
        kube_root: file(&recipe.source.kube_root),
        git_ref: text(&recipe.source.git_ref),
        repo: text(&recipe.source.repo),
        source_dir: file(&recipe.source.dir),
        version: text(&recipe.source.version),
        engine: text(&recipe.engine.kind),
        image: text(&recipe.engine.image),
        memory: text(&recipe.engine.memory),
        network: flag(recipe.engine.network),
        stall_timeout: recipe.engine.stall_timeout.and_then(set),
        cpus: recipe.engine.cpus.map(|value| Given {
            value,
            from: from(),
        }),
        engines: (!recipe.engines.is_empty()).then(|| Given {
            value: recipe
                .engines
                .iter()
                .map(|e| match e.jobs {
                    Some(jobs) => format!("{}={jobs}", e.name.get_ref()),
                    None => e.name.get_ref().clone(),
                })
                .collect(),
            from: from(),
        }),
        no_cache_import: flag(recipe.engine.no_cache_import),
        skip_checks: list(&recipe.checks.skip),
        min_memory: text(&recipe.checks.min_memory),
        min_disk: text(&recipe.checks.min_disk),
        out: file(&recipe.output.dir),
        sign_key: file(&recipe.output.sign_key),
        no_test_tarballs: flag(recipe.output.no_test_tarballs),
        base_images: (!recipe.output.base_images.is_empty()).then(|| Given {
            value: recipe
                .output
                .base_images
                .iter()
                .map(|(k, v)| format!("{k}={}", v.get_ref()))
                .collect(),
            from: from(),
        }),
        no_images: flag(recipe.output.no_images),
        tag: text(&ext.tag),
        metadata: file(&ext.metadata),
        icon: file(&ext.icon),
        ui: file(&ext.ui),
        labels: list(&ext.labels),
        load: flag(ext.load),
        push: flag(ext.push),
        insecure_registry: flag(ext.insecure_registry),
        ..Options::default()
    }
}

fn set_string(v: &toml::Spanned<String>, path: &std::path::Path) -> Option<Given<String>> {
    Some(Given {
        value: v.get_ref().clone(),
        from: Origin::Recipe(path.to_path_buf()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn given<T>(value: T, from: Origin) -> Option<Given<T>> {
        Some(Given { value, from })
    }

    #[test]
    fn flags_beat_the_environment_which_beats_the_recipe() {
        let recipe = Options {
            platforms: given(vec!["linux/arm64".into()], Origin::Recipe("r.toml".into())),
            image: given("recipe-image".into(), Origin::Recipe("r.toml".into())),
            network: given(true, Origin::Recipe("r.toml".into())),
            ..Options::default()
        };
        let env = from_env(
            &crate::env::Env::from_pairs(&[("KUBE_BUILD_PLATFORMS", "darwin/arm64")]),
            CommandKind::Build,
        );
        let flags = Options {
            image: given("flag-image".into(), Origin::Flag),
            ..Options::default()
        };
        let merged = flags.over(env).over(recipe);
        assert_eq!(merged.image.unwrap().value, "flag-image");
        let platforms = merged.platforms.unwrap();
        assert_eq!(platforms.value, vec!["darwin/arm64".to_string()]);
        assert_eq!(platforms.from, Origin::Env("KUBE_BUILD_PLATFORMS"));
        assert!(merged.network.unwrap().value);
    }

    #[test]
    fn a_tree_given_over_a_recipe_ref_replaces_it() {
        let recipe = Options {
            git_ref: given("v1.34.2".into(), Origin::Recipe("r.toml".into())),
            repo: given(
                "https://example.com/k.git".into(),
                Origin::Recipe("r.toml".into()),
            ),
            ..Options::default()
        };
        let flags = Options {
            kube_root: given("/src/k".into(), Origin::Flag),
            ..Options::default()
        };
        let merged = flags.over(recipe);
        assert!(merged.git_ref.is_none() && merged.repo.is_none());
        assert_eq!(
            merged.kube_root.unwrap().value,
            std::path::Path::new("/src/k")
        );
    }

    #[test]
    fn base_images_merge_by_key_and_upstreams_variables_are_keys() {
        let env = from_env(
            &crate::env::Env::from_pairs(&[
                ("KUBE_GORUNNER_IMAGE", "env/go-runner:1"),
                ("KUBE_PROXY_BASE_IMAGE", "env/proxy:1"),
                ("KUBE_DOCKER_REGISTRY", "me.io/k"),
            ]),
            CommandKind::QuickRelease,
        );
        assert_eq!(env.docker_registry.as_ref().unwrap().value, "me.io/k");
        let flags = Options {
            base_images: given(vec!["go-runner=flag/base:1".into()], Origin::Flag),
            ..Options::default()
        };
        let merged = flags.over(env).base_images.unwrap();
        assert_eq!(
            merged.value,
            ["go-runner=flag/base:1", "kube-proxy=env/proxy:1"]
        );
        let build = from_env(
            &crate::env::Env::from_pairs(&[("KUBE_GORUNNER_IMAGE", "x")]),
            CommandKind::Build,
        );
        assert!(build.base_images.is_none());
    }

    #[test]
    fn the_extension_ignores_kube_build_platforms() {
        let env = crate::env::Env::from_pairs(&[("KUBE_BUILD_PLATFORMS", "linux/amd64")]);
        assert!(from_env(&env, CommandKind::Extension).platforms.is_none());
        assert!(from_env(&env, CommandKind::Build).platforms.is_some());
    }

    #[test]
    fn inputs_name_the_origin_and_hide_tokens() {
        let o = Options {
            repo: given(
                "https://user:secret@example.com/k.git".into(),
                Origin::Recipe("ci.toml".into()),
            ),
            ..Options::default()
        };
        let inputs = o.inputs();
        assert_eq!(inputs[0].name, "repo");
        assert_eq!(inputs[0].from, "recipe ci.toml");
        assert!(!inputs[0].value.to_string().contains("secret"));
    }
}
