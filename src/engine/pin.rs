//! What pins a builder image: its id and, where the engine knows where it came from, its
//! repository digest (`RepoDigests`). A saved plan names both; where the image is missing, a
//! plan that names a digest gets exactly that image (a pull by digest, tagged under the
//! plan's name), and one that does not is refused rather than pull whatever the tag is now.

use crate::error::{Error, Result};
use crate::signals::Interrupt;
use crate::ui::Ui;

use super::docker::DockerEngine;

/// An image as the engine has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pinned {
    pub id: String,
    /// `repository@sha256:...`: the one of the image's own repository, else the first.
    pub repo_digest: Option<String>,
}

/// The image's id and repository digest, if the engine has it (read only).
pub async fn inspect(engine: &DockerEngine, image: &str) -> Result<Option<Pinned>> {
    match engine.docker.inspect_image(image).await {
        Ok(found) => Ok(Some(Pinned {
            id: found.id.unwrap_or_default(),
            repo_digest: own_digest(image, &found.repo_digests.unwrap_or_default()),
        })),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(None),
        Err(e) => Err(Error::engine(format!("cannot inspect image {image}: {e}"))),
    }
}

/// The digest of `image`'s own repository among `digests`; an image pulled under another
/// name too has several, and a locally built one none.
fn own_digest(image: &str, digests: &[String]) -> Option<String> {
    let (repo, _) = super::docker::split_reference(image);
    digests
        .iter()
        .find(|d| d.split_once('@').is_some_and(|(r, _)| r == repo))
        .or_else(|| digests.first())
        .cloned()
}

/// Pulls `repo_digest` (`repository@sha256:...`) and tags it as `image`, the name the plan's
/// jobs create their containers from; returns the image id.
pub async fn pull_by_digest(
    engine: &DockerEngine,
    image: &str,
    repo_digest: &str,
    ui: &Ui,
    interrupt: &Interrupt,
) -> Result<String> {
    let id = engine.ensure_image(repo_digest, ui, interrupt).await?;
    let parts = crate::imageref::parse(image).map_err(|f| {
        Error::usage(format!(
            "\"{image}\" is not a valid image reference: {}",
            f.why
        ))
    })?;
    // A name that is itself a digest needs no tag: the pull made it.
    if parts.digest.is_none() {
        let options = bollard::query_parameters::TagImageOptionsBuilder::new()
            .repo(parts.name)
            .tag(parts.tag.unwrap_or("latest"))
            .build();
        engine
            .docker
            .tag_image(repo_digest, Some(options))
            .await
            .map_err(|e| Error::engine(format!("cannot tag {repo_digest} as {image}: {e}")))?;
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_of_the_image_s_own_repository_is_chosen() {
        let digests = vec![
            format!("mirror.example/kube-cross@sha256:{}", "a".repeat(64)),
            format!(
                "registry.k8s.io/build-image/kube-cross@sha256:{}",
                "b".repeat(64)
            ),
        ];
        let own = own_digest("registry.k8s.io/build-image/kube-cross:v1", &digests).unwrap();
        assert!(own.ends_with(&"b".repeat(64)), "{own}");
        assert_eq!(
            own_digest("other:v1", &digests).as_deref(),
            Some(digests[0].as_str())
        );
        assert_eq!(own_digest("kbuild-builder:go1.24", &[]), None);
    }
}
