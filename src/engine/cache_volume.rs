//! Creating the Go cache volume (`cache` names it) in the engine and handing it to the
//! build user.

use std::collections::HashMap;

use bollard::models::{ContainerCreateBody, HostConfig, VolumeCreateRequest};
use bollard::query_parameters::CreateContainerOptions;
use futures_util::StreamExt;

use crate::engine::cache::{owned_record, volume_name, LABEL_CACHE, MOUNT};
use crate::engine::docker::DockerEngine;
use crate::engine::guard::ContainerGuard;
use crate::engine::LABEL_MANAGED;
use crate::error::{Error, Result};
use crate::ui::Ui;

/// Makes sure the cache volume for `image` exists and belongs to `user` (uid:gid);
/// returns its name.
///
/// A fresh volume belongs to root and is handed to the user by a short container. A run
/// stopped between the two would leave it root-owned for good, so the hand-over is recorded
/// by a second, empty volume (`<name>.owned`, created only once the chown succeeded; volume
/// labels cannot change): a volume without its record is handed over again. Checking costs
/// one API call, so an up-to-date rebuild stays fast.
pub async fn ensure_volume(
    engine: &DockerEngine,
    image: &str,
    image_id: &str,
    user: Option<(u32, u32)>,
    ui: &Ui,
) -> Result<String> {
    let uid = user.map(|(u, _)| u).unwrap_or(0);
    let name = volume_name(image_id, uid);
    let labels = HashMap::from([
        (LABEL_MANAGED.to_string(), "true".to_string()),
        (LABEL_CACHE.to_string(), "go".to_string()),
        ("io.kbuild.image".to_string(), image.to_string()),
    ]);
    let existed = engine.docker.inspect_volume(&name).await.is_ok();
    if !existed {
        create_volume(engine, &name, labels.clone()).await?;
    }
    let Some((uid, gid)) = user.filter(|(uid, _)| *uid != 0) else {
        return Ok(name);
    };
    let record = owned_record(&name);
    if existed && engine.docker.inspect_volume(&record).await.is_ok() {
        return Ok(name);
    }
    if existed {
        ui.detail(&format!(
            "the Go cache volume {name} has no record of being handed to {uid}:{gid} (an earlier run stopped first?): handing it over now"
        ));
    }
    give_to_user(engine, image, &name, labels.clone(), uid, gid).await?;
    let mut record_labels = labels;
    record_labels.insert(LABEL_CACHE.to_string(), "owned".to_string());
    create_volume(engine, &record, record_labels).await?;
    Ok(name)
}

async fn create_volume(
    engine: &DockerEngine,
    name: &str,
    labels: HashMap<String, String>,
) -> Result<()> {
    engine
        .docker
        .create_volume(VolumeCreateRequest {
            name: Some(name.to_string()),
            labels: Some(labels),
            ..Default::default()
        })
        .await
        .map(|_| ())
        .map_err(|e| Error::engine(format!("cannot create the cache volume {name}: {e}")))
}

/// A fresh volume belongs to root; a short root container hands it to the build user.
async fn give_to_user(
    engine: &DockerEngine,
    image: &str,
    volume: &str,
    mut labels: HashMap<String, String>,
    uid: u32,
    gid: u32,
) -> Result<()> {
    // A run-scoped helper: `kbuild clean` must see whether its run is alive.
    labels.extend(super::owner::run_labels());
    let body = ContainerCreateBody {
        image: Some(image.to_string()),
        cmd: Some(vec!["chown".into(), format!("{uid}:{gid}"), MOUNT.into()]),
        user: Some("0:0".into()),
        labels: Some(labels),
        host_config: Some(HostConfig {
            binds: Some(vec![format!("{volume}:{MOUNT}")]),
            network_mode: Some("none".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let created = engine
        .docker
        .create_container(None::<CreateContainerOptions>, body)
        .await
        .map_err(|e| Error::engine(format!("cannot prepare the cache volume {volume}: {e}")))?;
    let guard = ContainerGuard::new(engine.docker.clone(), created.id.clone());
    let result = async {
        engine
            .docker
            .start_container(
                &created.id,
                None::<bollard::query_parameters::StartContainerOptions>,
            )
            .await?;
        let mut wait = engine.docker.wait_container(
            &created.id,
            None::<bollard::query_parameters::WaitContainerOptions>,
        );
        while let Some(item) = wait.next().await {
            item?;
        }
        Ok::<(), bollard::errors::Error>(())
    }
    .await;
    guard.remove().await;
    result.map_err(|e| Error::engine(format!("cannot prepare the cache volume {volume}: {e}")))
}
