//! [`Builder::dump_on_signal`](crate::Builder::dump_on_signal): a task dump written out each
//! time a chosen signal arrives, the way a Go program prints its goroutines on `SIGQUIT`, but
//! without ending the program.
//!
//! A plain thread ("zsync-dump", not a task: it neither keeps the runtime alive nor is
//! canceled with it) listens through [`zsync::signal`](crate::signal), so the signal's handler
//! only does what is async-signal-safe (see `signal/driver.rs`); the dump is taken and
//! written on that thread, like a call of [`Handle::dump`](crate::Handle::dump) from outside.
//! The listener is registered before `run` starts the root task, so a signal sent from then on
//! is seen; the thread is stopped and joined when the root task has returned.

use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::thread::JoinHandle;

use atomic_waker::AtomicWaker;

use crate::signal::{SignalKind, Signals};
use crate::{Event, Io};

/// What the builder was asked for: a signal and where to write.
#[derive(Clone)]
pub(crate) struct DumpOnSignal {
    pub(crate) kind: SignalKind,
    pub(crate) out: Arc<Mutex<Box<dyn Write + Send>>>,
}

impl fmt::Debug for DumpOnSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DumpOnSignal")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// The listening thread; stopped and joined on drop.
pub(crate) struct Watcher {
    stop: Arc<Stop>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct Stop {
    flag: AtomicBool,
    waker: AtomicWaker,
}

impl Watcher {
    /// Registers the listener for `cfg.kind` on `io`'s runtime and starts the thread.
    pub(crate) fn start(io: &Io, cfg: DumpOnSignal) -> io::Result<Watcher> {
        let mut signals = Signals::new(io, &[cfg.kind])?;
        let stop = Arc::new(Stop::default());
        let io = io.clone();
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("zsync-dump".to_owned())
                .spawn(move || loop {
                    // One event across polls: its place in the listeners' wait list is kept
                    // until it completes.
                    let mut event = signals.recv_event();
                    let got = crate::wait::block_until(None, |waker| {
                        stop.waker.register(waker);
                        if stop.flag.load(Ordering::SeqCst) {
                            return Poll::Ready(false);
                        }
                        event.poll_event(waker).map(|_| true)
                    });
                    drop(event);
                    if got.ok() != Some(true) {
                        return;
                    }
                    let dump = io.dump();
                    let mut out = cfg.out.lock().unwrap_or_else(|p| p.into_inner());
                    let _ = write!(out, "{dump}");
                    let _ = out.flush();
                })?
        };
        Ok(Watcher {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.flag.store(true, Ordering::SeqCst);
        self.stop.waker.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
