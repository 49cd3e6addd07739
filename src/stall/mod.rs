//! Stall and deadlock detection: what the runtime says when a program stops making progress.
//!
//! Three detectors (see "Stalls and deadlocks" in docs/debugging.md for what they print, and
//! docs/ARCHITECTURE.md for why they are built this way):
//!
//! - **deadlock** (Green, `model/green/checkdead.rs`: checked by a worker about to sleep with
//!   nothing that could wake it; Blocking, [`single`]; Threaded, `model/threaded/checkdead.rs`:
//!   checked by the pool's monitor): reported only when it is proven that nothing can wake any
//!   task, never on a guess. The run then fails with [`Deadlock`](crate::Deadlock).
//! - **blocked worker** (Green, `model/green/sysmon.rs`): a monitor thread sees a worker whose
//!   task has run for longer than the threshold without giving the worker back (a call that is
//!   not zsync's) and prints one warning per incident.
//! - **starved queue** (Green's monitor; Threaded's `model/threaded/monitor.rs`): tasks wait to
//!   start while every worker is stuck; a warning names them.
//!
//! This module holds what they share: the settings from the [`Builder`](crate::Builder)
//! ([`StallConfig`]), where reports go ([`Diagnostics`]), the per-worker progress word
//! ([`progress`]), the count of the process's threads ([`threads`]), and [`describe`], the one
//! place that words what is known of a task.

pub(crate) mod describe;
pub(crate) mod monitor_thread;
pub(crate) mod progress;
pub(crate) mod remote;
pub(crate) mod single;
pub(crate) mod threads;

use std::fmt;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The default threshold of the blocked-worker and starved-queue warnings.
pub(crate) const DEFAULT_THRESHOLD: Duration = Duration::from_millis(100);

/// Where stall and deadlock reports are written: stderr, or a writer given to
/// [`Builder::diagnostics`](crate::Builder::diagnostics).
#[derive(Clone, Default)]
pub(crate) struct Diagnostics(Option<Arc<Mutex<Box<dyn Write + Send>>>>);

impl Diagnostics {
    /// Reports written to `out`.
    pub(crate) fn to(out: Box<dyn Write + Send>) -> Diagnostics {
        Diagnostics(Some(Arc::new(Mutex::new(out))))
    }

    /// Writes `msg` whole (one report is never interleaved with another through this writer) and
    /// flushes. A failed write has nowhere better to go and is dropped.
    pub(crate) fn write(&self, msg: &str) {
        match &self.0 {
            None => {
                let mut err = std::io::stderr().lock();
                let _ = err.write_all(msg.as_bytes());
            }
            Some(out) => {
                let mut out = out.lock().unwrap_or_else(|p| p.into_inner());
                let _ = out.write_all(msg.as_bytes());
                let _ = out.flush();
            }
        }
    }
}

impl fmt::Debug for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Diagnostics(writer)"
        } else {
            "Diagnostics(stderr)"
        })
    }
}

/// What a deadlock check found (Green's and Threaded's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Some thread or worker runs or can be woken: nothing to do.
    Alive,
    /// Every watched thread is quiet but something outside them may still act (a busy
    /// helper, another thread): look again later.
    Undecided,
    /// A deadlock, proven.
    Dead,
}

/// The detectors' settings, filled in by the [`Builder`](crate::Builder).
#[derive(Clone, Debug)]
pub(crate) struct StallConfig {
    /// How long a task may hold a worker (Green) or wait to start while every worker is stuck
    /// (Green, Threaded) before a warning; `None`: no warnings and no monitor thread (Green).
    pub(crate) threshold: Option<Duration>,
    /// Whether a proven deadlock fails the run (Green, Blocking, Threaded).
    pub(crate) deadlock: bool,
    /// Where reports go.
    pub(crate) out: Diagnostics,
}

impl Default for StallConfig {
    fn default() -> Self {
        StallConfig {
            threshold: Some(DEFAULT_THRESHOLD),
            deadlock: true,
            out: Diagnostics::default(),
        }
    }
}
