//! Moving what make built into the output directory: <out>/bin/<os>/<arch>/<binary>.
//! Each file is written under a temporary name and renamed when complete, and checked to
//! be an executable for the platform its directory names.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::kube::{binary, Component, Platform};

/// `<out>/bin/<os>/<arch>/<file>`.
pub fn bin_path(out: &Path, component: &Component, platform: Platform) -> PathBuf {
    out.join("bin")
        .join(platform.os)
        .join(platform.arch)
        .join(component.file_name(platform))
}

/// Copies `src` to `dest` atomically (temp file + rename) with mode 0755.
pub fn install_executable(src: &Path, dest: &Path) -> Result<u64> {
    use std::os::unix::fs::PermissionsExt;
    let dir = dest.parent().expect("destination has a parent");
    std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create", dir, e))?;
    let tmp = dir.join(format!(
        ".{}.kbuild-tmp",
        dest.file_name().unwrap_or_default().to_string_lossy()
    ));
    let copied = std::fs::copy(src, &tmp).and_then(|size| {
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
        std::fs::rename(&tmp, dest)?;
        Ok(size)
    });
    copied.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io("cannot write", dest, e)
    })
}

/// Checks that the executable at `path` was built for `platform`.
pub fn check_platform(path: &Path, platform: Platform) -> Result<()> {
    let found = binary::detect_file(path).map_err(|e| Error::io("cannot read", path, e))?;
    match found {
        Some((os, arch)) if os == platform.os && arch == platform.arch => Ok(()),
        Some((os, arch)) => Err(Error::build(format!(
            "{} is a {os}/{arch} executable, not {platform}",
            path.display()
        ))
        .with_hint("the builder image's toolchain ignored GOOS/GOARCH; check the tree's Makefile and KUBE_BUILD_PLATFORMS handling")),
        None => Err(Error::build(format!(
            "{} is not an executable kbuild recognises (ELF, Mach-O or PE)",
            path.display()
        ))),
    }
}

/// Installs every (component, platform) binary make left under `built_dir(platform)`.
pub fn collect(
    built: impl Fn(&Component, Platform) -> PathBuf,
    components: &[&'static Component],
    platforms: &[Platform],
    out: &Path,
) -> Result<Vec<(PathBuf, u64)>> {
    let mut installed = Vec::new();
    for platform in platforms {
        for component in components {
            let src = built(component, *platform);
            if !src.is_file() {
                return Err(Error::build(format!(
                    "make finished but did not produce {} for {platform} (expected {})",
                    component.name,
                    src.display()
                ))
                .with_hint("check the build log: the tree's Makefile may not know this component or platform"));
            }
            check_platform(&src, *platform)?;
            let dest = bin_path(out, component, *platform);
            let size = install_executable(&src, &dest)?;
            installed.push((dest, size));
        }
    }
    Ok(installed)
}
