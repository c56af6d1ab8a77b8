//! A container that is removed whatever happens: on success, on failure, on Ctrl-C
//! (the owning future is dropped) and on panic.

use bollard::query_parameters::RemoveContainerOptions;
use bollard::Docker;

/// Owns a created container; `remove` it explicitly, or dropping it removes it.
pub struct ContainerGuard {
    docker: Docker,
    pub id: String,
    removed: bool,
}

impl ContainerGuard {
    pub fn new(docker: Docker, id: String) -> Self {
        ContainerGuard {
            docker,
            id,
            removed: false,
        }
    }

    /// Force-removes the container and its anonymous volumes.
    pub async fn remove(mut self) {
        remove(&self.docker, &self.id).await;
        self.removed = true;
    }
}

async fn remove(docker: &Docker, id: &str) {
    let options = RemoveContainerOptions {
        force: true,
        v: true,
        ..Default::default()
    };
    // A container that is already gone is what we want; other errors leave it for `kbuild clean`
    // (and the engine removes build containers itself once they stop). An engine that no
    // longer answers must not keep kbuild from exiting.
    let gone = async {
        let _ = docker.remove_container(id, Some(options)).await;
        // The engine may already be removing it (build containers remove themselves once
        // they stop): wait until it is really gone, so that nothing outlives the run.
        // Removal usually takes tens of milliseconds: poll soon, then back off to 100 ms.
        let mut pause = std::time::Duration::from_millis(5);
        loop {
            match docker.inspect_container(id, None).await {
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => return,
                Err(_) => return, // the engine is gone, and the container with it
                Ok(_) => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(std::time::Duration::from_millis(100));
                }
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(30), gone).await;
}

async fn remove_owned(docker: Docker, id: String) {
    remove(&docker, &id).await
}

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        if self.removed {
            return;
        }
        // Dropped without `remove` (an early return, a cancelled future, a panic): removed
        // through the client of the engine that created it, on the run's own runtime (a
        // second engine's container is not on the default endpoint).
        let (docker, id) = (self.docker.clone(), std::mem::take(&mut self.id));
        super::client::cleanup_from_drop(remove_owned(docker, id));
    }
}
