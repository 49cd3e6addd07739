//! The process-wide half of [`zsync::signal`](super): the signal handler, the dispatcher thread
//! and the per-signal delivery counts every listener reads.
//!
//! ```text
//!   any thread, in the handler            dispatcher thread ("zsync-signal")     listeners
//!   PENDING[sig] = true     (SeqCst)      poll(wake)  read(wake)
//!   write(wake, 1)          (eventfd)     for each sig: if PENDING[sig].swap(false)
//!                                             GENERATION[sig] += 1  (SeqCst)
//!                                         WAITERS.notify_all()  ──────────────▶  seen < GENERATION?
//! ```
//!
//! 1. The handler (installed through `signal-hook-registry`, which chains to a handler installed
//!    before it and keeps `errno`) does only what is async-signal-safe: an atomic store and one
//!    `write(2)` to an eventfd. It never allocates, locks or wakes a task.
//! 2. The dispatcher thread turns each flagged signal into one more *delivery* (`GENERATION`),
//!    then wakes every waiting listener. Deliveries that arrive before the dispatcher runs are one
//!    flag, hence one delivery: they coalesce, as Tokio's do.
//! 3. A listener remembers the generation it has seen per signal; `recv` completes when the
//!    generation moved. It registers its waker before re-checking (the `WaitList` rule), and the
//!    dispatcher bumps the generation before notifying, so no delivery falls in between.
//!
//! The dispatcher exists while at least one listener does: the first listener starts it (and
//! installs the actions), the last one uninstalls the actions and joins it. `unregister` returns
//! only when no handler can still be running an old action (signal-hook-registry's half-lock
//! waits for the handlers that read the old action set), so the eventfd an action writes to is
//! closed strictly after the last write into it: no stray byte lands in a reused descriptor.
//!
//! Uninstalling an action does not restore the signal's default disposition (the handler stays,
//! with nothing to do): as in Tokio, a signal zsync once listened for is ignored afterwards when
//! nobody listens.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::thread::JoinHandle;

use rustix::event::{eventfd, poll, EventfdFlags, PollFd, PollFlags};
use signal_hook_registry::SigId;

use crate::wait::WaitList;

/// One past the highest signal number on Linux (`SIGRTMAX` is 64).
pub(super) const NSIG: usize = 65;

/// Set by the handler, cleared by the dispatcher: "this signal arrived since the last look".
static PENDING: [AtomicBool; NSIG] = [const { AtomicBool::new(false) }; NSIG];

/// Deliveries of each signal so far (written by the dispatcher, read by listeners).
static GENERATION: [AtomicU64; NSIG] = [const { AtomicU64::new(0) }; NSIG];

/// Every listener waiting for a delivery, of any signal: signals are rare, so the dispatcher
/// wakes them all and each re-checks its own signals.
pub(super) static WAITERS: LazyLock<WaitList> = LazyLock::new(WaitList::new);

/// The running dispatcher, while any listener exists.
static DRIVER: Mutex<Option<Driver>> = Mutex::new(None);

struct Driver {
    /// Live listeners; the last to go stops the driver.
    listeners: usize,
    /// The eventfd the handler actions write to (each action holds a reference).
    wake: Arc<OwnedFd>,
    stop: Arc<AtomicBool>,
    /// The actions installed in this driver's lifetime, by signal.
    installed: Vec<(usize, SigId)>,
    thread: JoinHandle<()>,
}

fn driver() -> MutexGuard<'static, Option<Driver>> {
    DRIVER.lock().unwrap_or_else(|p| p.into_inner())
}

/// Deliveries of `sig` so far.
pub(super) fn generation(sig: usize) -> u64 {
    GENERATION[sig].load(Ordering::SeqCst)
}

/// A listener's share in the dispatcher: keeps it running, stops it when the last one drops.
#[derive(Debug)]
pub(super) struct Registration(());

impl Registration {
    /// Makes sure the handler and the dispatcher serve every signal of `sigs`, and returns the
    /// generations seen so far: deliveries after this call are counted for the caller.
    ///
    /// The generations are read before any action is installed, so a signal that arrives while
    /// the rest of `sigs` is being installed counts as a delivery (it is never lost).
    pub(super) fn new(sigs: &[usize]) -> io::Result<(Registration, Vec<u64>)> {
        let mut guard = driver();
        if guard.is_none() {
            *guard = Some(Driver::start()?);
        }
        let d = guard.as_mut().expect("started above");
        d.listeners += 1;
        // From here on, dropping the registration (also on an error below) releases the share.
        let registration = Registration(());
        let seen = sigs.iter().map(|&s| generation(s)).collect();
        for &sig in sigs {
            if d.installed.iter().any(|&(s, _)| s == sig) {
                continue;
            }
            let wake = d.wake.clone();
            let action = move || {
                PENDING[sig].store(true, Ordering::SeqCst);
                // An eventfd write fails only when the counter would overflow, i.e. when the
                // dispatcher has plenty of wake-ups pending already.
                let _ = rustix::io::write(wake.as_fd(), &1u64.to_ne_bytes());
            };
            // SAFETY: the action is async-signal-safe: one atomic store and one `write(2)`
            // (rustix issues the syscall directly), no allocation, no lock, no panic. `sig` was
            // checked against signal-hook-registry's FORBIDDEN list by the caller.
            let id = unsafe { signal_hook_registry::register(sig as libc::c_int, action) }?;
            d.installed.push((sig, id));
        }
        drop(guard);
        Ok((registration, seen))
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let stopping = {
            let mut guard = driver();
            let d = guard.as_mut().expect("a registration keeps the driver");
            d.listeners -= 1;
            if d.listeners == 0 {
                guard.take()
            } else {
                None
            }
        };
        if let Some(d) = stopping {
            d.stop();
        }
    }
}

impl Driver {
    fn start() -> io::Result<Driver> {
        let wake = Arc::new(eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?);
        let stop = Arc::new(AtomicBool::new(false));
        // No action is installed now (a previous driver uninstalled its own before it stopped),
        // so a flag still raised is a delivery nobody listened for.
        for p in &PENDING {
            p.store(false, Ordering::SeqCst);
        }
        let thread = std::thread::Builder::new()
            .name("zsync-signal".into())
            .spawn({
                let (wake, stop) = (wake.clone(), stop.clone());
                move || dispatch_loop(&wake, &stop)
            })?;
        Ok(Driver {
            listeners: 0,
            wake,
            stop,
            installed: Vec::new(),
            thread,
        })
    }

    /// Uninstalls the actions, then stops and joins the dispatcher. Outside the driver lock.
    fn stop(self) {
        for (_, id) in self.installed {
            signal_hook_registry::unregister(id);
        }
        self.stop.store(true, Ordering::SeqCst);
        let _ = rustix::io::write(self.wake.as_fd(), &1u64.to_ne_bytes());
        // The dispatcher never panics (user wakers run under `catch`); a join error would only
        // repeat a panic already reported.
        let _ = self.thread.join();
    }
}

/// The dispatcher thread: waits for the handler's eventfd writes and turns flags into
/// deliveries, until stopped.
fn dispatch_loop(wake: &OwnedFd, stop: &AtomicBool) {
    loop {
        let mut fds = [PollFd::new(wake, PollFlags::IN)];
        match poll(&mut fds, None) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            // Cannot happen with one valid descriptor; do not spin if it does.
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
        }
        let mut buf = [0u8; 8];
        let _ = rustix::io::read(wake, &mut buf);
        dispatch();
        if stop.load(Ordering::SeqCst) {
            return;
        }
    }
}

/// What the handler's action records, without a signal: for unit tests of the dispatch step.
#[cfg(test)]
pub(super) fn raise_for_test(sig: usize) {
    PENDING[sig].store(true, Ordering::SeqCst);
}

/// Turns each raised flag into one delivery and wakes the listeners.
pub(super) fn dispatch() {
    let mut delivered = false;
    for sig in 1..NSIG {
        if PENDING[sig].swap(false, Ordering::SeqCst) {
            GENERATION[sig].fetch_add(1, Ordering::SeqCst);
            delivered = true;
        }
    }
    if delivered {
        // A waker may be the user's own (an `Event` polled by hand): its panic must not end
        // the dispatcher. There is no task to report it to, so it is dropped.
        if let Err(payload) = crate::contain::catch(|| WAITERS.notify_all()) {
            crate::contain::drop_payload(payload);
        }
    }
}
