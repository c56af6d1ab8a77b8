//! Go build and module caches kept in labelled engine volumes between runs. A volume is
//! keyed by the builder image's id and the build user, so different images (and so Go
//! versions) never share one and files in it are always writable by the build.
//! This module only names things; `engine::cache_volume` creates the volumes.

use sha2::{Digest, Sha256};

/// Where the cache volume is mounted in a build container.
pub const MOUNT: &str = "/kbuild-cache";
/// Label marking cache volumes, so `kbuild clean --caches` can tell them apart.
pub const LABEL_CACHE: &str = "io.kbuild.cache";

/// GOCACHE and GOMODCACHE inside the mounted volume.
pub fn go_env() -> Vec<(String, String)> {
    vec![
        ("GOCACHE".to_string(), format!("{MOUNT}/go-build")),
        ("GOMODCACHE".to_string(), format!("{MOUNT}/mod")),
    ]
}

/// `kbuild-gocache-<12 hex of the image id>-<uid>`.
pub fn volume_name(image_id: &str, uid: u32) -> String {
    let digest = Sha256::digest(image_id.as_bytes());
    let hex = hex::encode(&digest[..6]);
    format!("kbuild-gocache-{hex}-{uid}")
}

/// The empty volume recording that `volume` was handed to its user.
pub fn owned_record(volume: &str) -> String {
    format!("{volume}.owned")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes_differ_by_image_and_user() {
        let a = volume_name("sha256:aaaa", 1000);
        assert!(a.starts_with("kbuild-gocache-") && a.ends_with("-1000"));
        assert_ne!(a, volume_name("sha256:bbbb", 1000));
        assert_ne!(a, volume_name("sha256:aaaa", 1001));
        assert_eq!(a, volume_name("sha256:aaaa", 1000));
    }
}
