//! A real-time bound on a test whose body must finish: the one place the simulation tests
//! (tests/sim*.rs) read real time, as a watchdog, never as a measure. Included with
//! `#[path = "support/watchdog.rs"] mod watchdog;`.

use std::sync::mpsc;
use std::time::Duration;

/// How long one test may run before it fails instead of hanging.
pub const WATCHDOG: Duration = Duration::from_secs(120);

/// Runs `body` on a thread of its own, failing the test if it is still running after
/// [`WATCHDOG`]; a panic of the body is re-raised.
pub fn watchdog(body: impl FnOnce() + Send + 'static) {
    let (tx, rx) = mpsc::channel();
    let t = std::thread::spawn(move || {
        body();
        let _ = tx.send(());
    });
    match rx.recv_timeout(WATCHDOG) {
        Ok(()) => t.join().unwrap(),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(p) = t.join() {
                std::panic::resume_unwind(p);
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("still running after {WATCHDOG:?}"),
    }
}
