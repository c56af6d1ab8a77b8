//! Ctrl-C and SIGTERM as a value every long-running phase can wait on, so that each phase
//! stops, cleans up what it made, and the run exits 130 (SIGINT) or 143 (SIGTERM).

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

use crate::error::{Error, Kind};

/// A handle that resolves when the process is asked to stop. Cheap to clone.
#[derive(Clone)]
pub struct Interrupt {
    rx: watch::Receiver<Option<Kind>>,
}

impl Interrupt {
    /// Installs the SIGINT and SIGTERM handlers. Must run inside the tokio runtime.
    pub fn install() -> Interrupt {
        let (tx, rx) = watch::channel(None);
        let mut int = signal(SignalKind::interrupt()).expect("cannot install the SIGINT handler");
        let mut term = signal(SignalKind::terminate()).expect("cannot install the SIGTERM handler");
        tokio::spawn(async move {
            let kind = tokio::select! {
                _ = int.recv() => Kind::Interrupted,
                _ = term.recv() => Kind::Terminated,
            };
            let _ = tx.send(Some(kind));
        });
        Interrupt { rx }
    }

    #[cfg(test)]
    /// A handle that never fires, for code paths run outside `main` (tests of pure logic).
    pub fn never() -> Interrupt {
        let (tx, rx) = watch::channel(None);
        std::mem::forget(tx);
        Interrupt { rx }
    }

    /// Resolves with the error to return once a stop signal arrives.
    pub async fn wait(&self) -> Error {
        let mut rx = self.rx.clone();
        let kind = loop {
            if let Some(kind) = *rx.borrow_and_update() {
                break kind;
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        let what = if kind == Kind::Terminated {
            "SIGTERM"
        } else {
            "Ctrl-C"
        };
        Error::new(kind, format!("stopped by {what}"))
            .with_hint("nothing half-done was kept: run the same command again to start over")
    }

    /// Whether a stop signal already arrived.
    pub fn fired(&self) -> bool {
        self.rx.borrow().is_some()
    }
}
