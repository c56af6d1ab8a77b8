//! Packaging work on a blocking thread, with progress, Ctrl-C/SIGTERM and clean-up.

use crate::error::{Error, Result};
use crate::package::Control;
use crate::signals::Interrupt;
use crate::ui::Ui;

/// Runs blocking packaging work, showing the input bytes it has packaged against `total`
/// (a bar on a terminal), cancelling it on Ctrl-C/SIGTERM and waiting until it has
/// removed its temporary files.
pub async fn blocking<T: Send + 'static>(
    ui: &Ui,
    label: &str,
    total: u64,
    interrupt: &Interrupt,
    work: impl FnOnce(Control) -> Result<T> + Send + 'static,
) -> Result<T> {
    let control = Control::default();
    let task_control = control.clone();
    let bar = ui.bytes(label, total);
    let mut task = tokio::task::spawn_blocking(move || work(task_control));
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
    let joined = loop {
        tokio::select! {
            joined = &mut task => break joined,
            _ = tick.tick() => bar.set_position(control.progress().min(total)),
            err = interrupt.wait() => {
                control.cancel();
                let _ = task.await;
                bar.finish_and_clear();
                return Err(err);
            }
        }
    };
    bar.finish_and_clear();
    joined.map_err(|e| Error::internal(format!("packaging thread failed: {e}")))?
}
