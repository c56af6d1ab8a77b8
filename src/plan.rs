//! Flags (and, later, recipes and the environment) resolved into one validated plan.
//! Invalid input stops here, before anything is run.

use std::path::PathBuf;
use std::time::Duration;

use crate::cli::{BuildArgs, EngineArgs, TargetArgs};
use crate::error::{Error, Result};
use crate::kube::component::{self, Component};
use crate::kube::Platform;

/// Engine settings shared by every command that builds.
#[derive(Debug, Clone)]
pub struct EnginePlan {
    pub image: Option<String>,
    pub stall_timeout: Option<Duration>,
    pub memory_limit: Option<u64>,
    pub network: bool,
    /// Rebuild even when the fingerprint says the outputs are up to date.
    pub force: bool,
}

/// A validated `kbuild build`.
#[derive(Debug, Clone)]
pub struct BuildPlan {
    pub components: Vec<&'static Component>,
    pub platforms: Vec<Platform>,
    pub kube_root: PathBuf,
    pub git_version: Option<String>,
    pub engine: EnginePlan,
    pub out: PathBuf,
}

pub fn resolve_build(args: &BuildArgs) -> Result<BuildPlan> {
    let mut components: Vec<&'static Component> = Vec::new();
    for name in &args.components {
        let found = Component::parse(name)?;
        if !components.contains(&found) {
            components.push(found);
        }
    }
    let platforms = resolve_platforms(&args.target)?;
    component::check_pairs(&components, &platforms)?;
    Ok(BuildPlan {
        components,
        platforms,
        kube_root: args.source.kube_root.clone(),
        git_version: args.source.git_version.clone(),
        engine: resolve_engine(&args.engine)?,
        out: args.out.clone(),
    })
}

/// `--platform` flags, else KUBE_BUILD_PLATFORMS, else upstream's fast-build platform.
pub fn resolve_platforms(args: &TargetArgs) -> Result<Vec<Platform>> {
    let texts: Vec<String> = if !args.platforms.is_empty() {
        args.platforms
            .iter()
            .flat_map(|p| p.split([',', ' ']).map(str::to_string).collect::<Vec<_>>())
            .collect()
    } else if let Some(env) = std::env::var("KUBE_BUILD_PLATFORMS")
        .ok()
        .filter(|v| !v.trim().is_empty())
    {
        env.split_whitespace().map(str::to_string).collect()
    } else {
        return Ok(vec![Platform::fastbuild()]);
    };
    let mut platforms = Vec::new();
    for text in texts.iter().filter(|t| !t.is_empty()) {
        let platform = Platform::parse(text)?;
        if !platforms.contains(&platform) {
            platforms.push(platform);
        }
    }
    Ok(platforms)
}

pub fn resolve_engine(args: &EngineArgs) -> Result<EnginePlan> {
    let memory_limit = args.memory.as_deref().map(parse_size).transpose()?;
    Ok(EnginePlan {
        image: args.image.clone().filter(|i| !i.is_empty()),
        stall_timeout: (args.stall_timeout > 0).then(|| Duration::from_secs(args.stall_timeout)),
        memory_limit,
        network: args.network,
        force: args.force,
    })
}

/// `512m`, `6g`, `6GiB`, `1073741824` -> bytes.
pub fn parse_size(text: &str) -> Result<u64> {
    let t = text.trim().to_ascii_lowercase();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits_end);
    let multiplier: u64 = match unit.trim() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => 0,
    };
    match number.parse::<u64>() {
        Ok(n) if multiplier > 0 && n > 0 => Ok(n * multiplier),
        _ => Err(Error::usage(format!("\"{text}\" is not a size"))
            .with_hint("write a size like 512m, 6g or 8GiB")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512m").unwrap(), 512 << 20);
        assert_eq!(parse_size("8GiB").unwrap(), 8 << 30);
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("0g").is_err());
        assert!(parse_size("5x").is_err());
    }

    #[test]
    fn platform_flags_accept_commas_and_dedupe() {
        let args = TargetArgs {
            platforms: vec!["linux/amd64,darwin/arm64".into(), "linux/amd64".into()],
        };
        let got = resolve_platforms(&args).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].to_string(), "darwin/arm64");
    }
}
