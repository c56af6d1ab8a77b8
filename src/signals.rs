//! Ctrl-C and SIGTERM as a value every long-running phase can wait on, so that each phase
//! stops, cleans up what it made, and the run exits 130 (SIGINT) or 143 (SIGTERM). A reader
//! of kbuild's stderr that goes away (`kbuild build 2>&1 | head -1`) stops the run the same
//! way, with exit 141.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

use crate::error::{Error, Kind};

/// A handle that resolves when the process is asked to stop. Cheap to clone.
#[derive(Clone)]
pub struct Interrupt {
    rx: watch::Receiver<Option<Kind>>,
}

/// Every reason to stop goes through this one channel: the signals' and a closed output's.
static STOP: OnceLock<watch::Sender<Option<Kind>>> = OnceLock::new();
/// Set once kbuild's stderr lost its reader: the run can no longer succeed.
static OUTPUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Stops the run for `kind`; the first reason wins.
fn stop(kind: Kind) {
    if let Some(tx) = STOP.get() {
        tx.send_if_modified(|now| {
            let first = now.is_none();
            if first {
                *now = Some(kind);
            }
            first
        });
    }
}

/// The reader of stderr went away: stop the run as Ctrl-C would, so that every phase
/// cleans up, and make sure it does not end as a success.
pub fn output_closed() {
    OUTPUT_CLOSED.store(true, Ordering::SeqCst);
    stop(Kind::OutputClosed);
}

/// Whether output was lost to a closed pipe during this run.
pub fn output_was_closed() -> bool {
    OUTPUT_CLOSED.load(Ordering::SeqCst)
}

/// The error a run stopped by a closed output ends with.
pub fn output_closed_error() -> Error {
    Error::new(
        Kind::OutputClosed,
        "stopped: the program reading kbuild's stderr went away (a closed pipe)",
    )
    .with_hint("nothing half-done was kept: to read only part of the output while the run goes on, send it to a file (kbuild ... > log 2>&1) and read that")
}

impl Interrupt {
    /// Installs the SIGINT and SIGTERM handlers. Must run inside the tokio runtime.
    pub fn install() -> Interrupt {
        let rx = STOP.get_or_init(|| watch::channel(None).0).subscribe();
        let mut int = signal(SignalKind::interrupt()).expect("cannot install the SIGINT handler");
        let mut term = signal(SignalKind::terminate()).expect("cannot install the SIGTERM handler");
        tokio::spawn(async move {
            let kind = tokio::select! {
                _ = int.recv() => Kind::Interrupted,
                _ = term.recv() => Kind::Terminated,
            };
            stop(kind);
        });
        // A pipe closed before the handlers were installed counts too.
        if output_was_closed() {
            stop(Kind::OutputClosed);
        }
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
        if kind == Kind::OutputClosed {
            return output_closed_error();
        }
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
