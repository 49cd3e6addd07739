//! The runtimes the integration tests of the example applications run on, the watchdog each
//! test body runs under, and `per_model!`, which expands a body into one `#[test]` per runtime.
//!
//! Included by a test file with `#[path = "support/models.rs"] #[macro_use] mod models;`
//! (a file under `tests/support/` is not a test target of its own); the file defines
//! `const WATCHDOG: Duration`, how long one of its tests may run before it fails instead of
//! hanging. A file uses what it needs, hence the `dead_code` allowance.

#![allow(dead_code)]

use std::sync::mpsc;
use std::time::Duration;

use zsync::{Backend, Builder, Model};

/// A runtime to run a test body on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rt {
    /// `Model::Blocking`: everything inline, connections served one after another.
    Blocking,
    /// `Model::Threaded` with two workers.
    Threaded,
    /// `Model::Green` with two workers on epoll (forced).
    GreenEpoll,
    /// `Model::Green` with two workers on its default backend (io_uring where the kernel
    /// allows it).
    Green,
}

impl Rt {
    /// The name of the module `per_model!` expands this runtime's tests into.
    pub fn name(self) -> &'static str {
        match self {
            Rt::Blocking => "blocking",
            Rt::Threaded => "threaded",
            Rt::GreenEpoll => "green_epoll",
            Rt::Green => "green",
        }
    }

    /// A builder for this runtime (two workers where the model has workers).
    pub fn builder(self) -> Builder {
        let b = match self {
            Rt::Blocking => Builder::new(Model::Blocking),
            Rt::Threaded => Builder::new(Model::Threaded),
            Rt::GreenEpoll => Builder::new(Model::Green).backend(Backend::Epoll),
            Rt::Green => Builder::new(Model::Green),
        };
        b.worker_threads(2)
    }
}

/// Runs `body(rt)` on a thread of its own and fails the test if it takes longer than `limit`;
/// a panic of the body is re-raised here.
pub fn with_watchdog(rt: Rt, limit: Duration, body: fn(Rt)) {
    let (tx, rx) = mpsc::channel();
    let t = std::thread::spawn(move || {
        body(rt);
        let _ = tx.send(());
    });
    match rx.recv_timeout(limit) {
        Ok(()) => t.join().expect("test thread"),
        // The body panicked: re-raise its panic here.
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(p) = t.join() {
                std::panic::resume_unwind(p);
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("{rt:?}: test still running after {limit:?}")
        }
    }
}

/// Expands each test body (`fn name(rt: Rt)` in the including file) into one `#[test]` per
/// runtime, in modules named after them, each under the file's `WATCHDOG`:
/// `per_model!(every: a, b)` on all four runtimes, `per_model!(concurrent: a, b)` on those
/// with real concurrency (not Blocking).
macro_rules! per_model {
    (@on $module:ident $rt:ident: $($name:ident),*) => {
        mod $module {
            $( #[test] fn $name() {
                super::models::with_watchdog(super::models::Rt::$rt, super::WATCHDOG, super::$name)
            } )*
        }
    };
    (every: $($name:ident),* $(,)?) => {
        per_model!(@on blocking Blocking: $($name),*);
        per_model!(concurrent: $($name),*);
    };
    (concurrent: $($name:ident),* $(,)?) => {
        per_model!(@on threaded Threaded: $($name),*);
        per_model!(@on green_epoll GreenEpoll: $($name),*);
        per_model!(@on green Green: $($name),*);
    };
}
