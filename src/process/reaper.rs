//! Children dropped before they exited ("orphans"): their exit status is collected for them, so
//! they do not stay zombies.
//!
//! With a pidfd (the usual case), the orphan is handed to a reaper thread (`zsync-reaper`) that
//! `poll`s the pidfds of all orphans and collects each one as it exits. The thread exists while
//! orphans do: the first orphan starts it, and it ends by itself when it has collected the last
//! one (it is detached; nothing outlives the orphans it serves). A thread rather than a task:
//! an orphan belongs to no task (it may outlive the runtime that spawned it), and Tokio's
//! answer — a queue swept when its driver sees `SIGCHLD` — needs a driver the Blocking and
//! Threaded models do not have.
//!
//! Without a pidfd (Linux before 5.3, a seccomp filter), the pid joins a list that every spawn,
//! wait and drop of a child sweeps with `waitpid(pid, WNOHANG)`, as Tokio's queue is swept.
//!
//! Only the orphans' own pids are waited for (never `waitpid(-1)`): children spawned by other
//! code are left to it.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};

use rustix::event::{eventfd, poll, EventfdFlags, PollFd, PollFlags};
use rustix::process::{Pid, WaitOptions};

struct State {
    /// Orphans with a pidfd not yet taken over by the reaper thread.
    inbox: Vec<(i32, OwnedFd)>,
    /// The running reaper's wake-up eventfd; `None` when no reaper runs. Written only under the
    /// lock, and cleared under it by the reaper before it ends, so it is never written after
    /// the reaper closed it.
    wake: Option<Arc<OwnedFd>>,
    /// Orphans without a pidfd, swept by [`sweep`].
    unwatched: Vec<i32>,
}

static STATE: Mutex<State> = Mutex::new(State {
    inbox: Vec::new(),
    wake: None,
    unwatched: Vec::new(),
});

fn state() -> MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Whether `pid`, our child, has exited: collects its status if so. `true` also if it is not
/// (or no longer) our child: there is nothing left to collect.
fn collect(pid: i32) -> bool {
    let Some(p) = Pid::from_raw(pid) else {
        return true;
    };
    !matches!(
        rustix::process::waitpid(Some(p), WaitOptions::NOHANG),
        Ok(None)
    )
}

/// Takes over a child that was dropped while still running: it is collected once it exits.
pub(super) fn adopt(pid: i32, pidfd: Option<OwnedFd>) {
    let mut st = state();
    let Some(pidfd) = pidfd else {
        st.unwatched.push(pid);
        return;
    };
    st.inbox.push((pid, pidfd));
    if let Some(wake) = &st.wake {
        // An eventfd write fails only if the counter would overflow: wake-ups are pending.
        let _ = rustix::io::write(wake.as_fd(), &1u64.to_ne_bytes());
        return;
    }
    let started = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
        .map_err(std::io::Error::from)
        .and_then(|wake| {
            let wake = Arc::new(wake);
            let theirs = wake.clone();
            std::thread::Builder::new()
                .name("zsync-reaper".into())
                .spawn(move || reap_loop(&theirs))
                .map(|_detached| wake)
        });
    match started {
        Ok(wake) => st.wake = Some(wake),
        // No thread (out of memory or threads): fall back to sweeping.
        Err(_) => {
            let orphans = std::mem::take(&mut st.inbox);
            st.unwatched.extend(orphans.into_iter().map(|(pid, _)| pid));
        }
    }
}

/// The reaper thread: waits for any orphan to exit, collects it, ends with the last one.
fn reap_loop(wake: &OwnedFd) {
    let mut watched: Vec<(i32, OwnedFd)> = Vec::new();
    loop {
        {
            let mut st = state();
            watched.append(&mut st.inbox);
            watched.retain(|&(pid, _)| !collect(pid));
            if watched.is_empty() {
                st.wake = None;
                return;
            }
        }
        let mut fds: Vec<PollFd<'_>> = watched
            .iter()
            .map(|(_, fd)| PollFd::new(fd, PollFlags::IN))
            .chain(std::iter::once(PollFd::new(wake, PollFlags::IN)))
            .collect();
        match poll(&mut fds, None) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            // Cannot happen with valid descriptors; do not spin if it does.
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
        }
        drop(fds);
        let mut buf = [0u8; 8];
        let _ = rustix::io::read(wake, &mut buf);
    }
}

/// Collects the orphans without a pidfd that have exited (never waits).
pub(super) fn sweep() {
    let mut st = state();
    if !st.unwatched.is_empty() {
        st.unwatched.retain(|&pid| !collect(pid));
    }
}
