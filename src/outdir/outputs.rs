//! Moving what make built into the output directory: <out>/bin/<os>/<arch>/<binary>.
//! Each file is written under a new temporary name and renamed when complete, in
//! directories checked not to be links, and checked to be an executable for the platform
//! its directory names.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::kube::{binary, Component, Platform};
use crate::outdir;

/// `bin/<os>/<arch>`, relative to the output directory.
fn bin_dir(platform: Platform) -> PathBuf {
    Path::new("bin").join(platform.os).join(platform.arch)
}

/// Copies `src` to `dest` atomically (a new temp file, then a rename) with mode 0755.
/// `dest`'s directory must have been made by `outdir::ensure_dir`.
pub fn install_executable(src: &Path, dest: &Path) -> Result<u64> {
    use std::os::unix::fs::PermissionsExt;
    let tmp = outdir::temp_path(dest);
    let mut file = outdir::create_file(&tmp, 0o755)?;
    let copied = std::fs::File::open(src)
        .and_then(|mut input| std::io::copy(&mut input, &mut file))
        .and_then(|size| {
            // On the open file (no path to follow), and whatever the umask took away.
            file.set_permissions(std::fs::Permissions::from_mode(0o755))?;
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
            let dir = outdir::ensure_dir(out, &bin_dir(*platform))?;
            let dest = dir.join(component.file_name(*platform));
            let size = install_executable(&src, &dest)?;
            installed.push((dest, size));
        }
    }
    Ok(installed)
}
