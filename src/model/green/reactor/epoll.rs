//! The epoll backend: readiness of non-blocking descriptors, one-shot per wait.
//!
//! A fiber that got `WouldBlock` registers its waker for one direction of one descriptor; the
//! descriptor is (re)armed in this worker's epoll with `EPOLLONESHOT` and the union of the
//! directions still awaited. When an event arrives, *every* waker of the matching directions
//! fires and the descriptor is re-armed only for a direction somebody still waits on. One-shot
//! arming keeps the bookkeeping honest when descriptors are closed and their numbers reused: a
//! stale number is simply re-added (`ENOENT` on modify) the next time somebody waits on it.
//!
//! Several fibers of one worker may wait on one descriptor and direction (receivers sharing a
//! UDP socket, tasks accepting on one listener). Each registration gets a token; a direction
//! keeps its first waiter inline and the others in a spill list, so the common single waiter
//! allocates nothing. All waiters of a direction are woken together, as io_uring completes
//! every `POLL_ADD` of a descriptor (and Tokio wakes every waiter of its readiness): those that
//! lose the race for the data find `WouldBlock` and register again. A waiter that leaves without
//! being woken (canceled, timed out) withdraws its own token, and only that.
//!
//! ```text
//!   waiters: fd ──▶ Waiters { read:  [first (token, waker)] + [more …],
//!                             write: [first (token, waker)] + [more …] }
//!   register(fd, dir, waker) → token      push; epoll_ctl(MOD, or ADD) with the union of dirs
//!   deregister(fd, dir, token)            remove that token only (a woken token is gone already)
//!   event(fd, flags)                      take every waker of each ready dir; re-arm the rest
//! ```
//!
//! The worker's eventfd is registered level-triggered under [`WAKE_TOKEN`]: other threads write
//! it to end a blocking `epoll_wait`.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::task::Waker;
use std::time::Duration;

use rustix::event::epoll::{self, CreateFlags, Event, EventData, EventFlags};

use crate::park::Interest;

/// `data` of the worker's eventfd registration.
const WAKE_TOKEN: u64 = u64::MAX;

/// `data` of the watched descriptor's registration (see [`Epoll::watch`]).
const WATCH_TOKEN: u64 = u64::MAX - 1;

/// Names one registration among the waiters of its descriptor, so that withdrawing it removes
/// that waiter and no other. Unique per reactor (a 64-bit count never wraps).
pub(crate) type Token = u64;

/// The fibers waiting for one direction of one descriptor, in no particular order (they are
/// woken together). Invariant: `more` is empty whenever `first` is `None`, so `first` tells
/// whether anybody waits.
#[derive(Default)]
struct Direction {
    /// The first waiter, inline: the usual single waiter costs no allocation.
    first: Option<(Token, Waker)>,
    /// Every further waiter.
    more: Vec<(Token, Waker)>,
}

impl Direction {
    fn is_waited(&self) -> bool {
        self.first.is_some()
    }

    fn push(&mut self, token: Token, waker: Waker) {
        if self.first.is_none() {
            self.first = Some((token, waker));
        } else {
            self.more.push((token, waker));
        }
    }

    /// Withdraws `token`'s waiter, if it still waits (a woken one was taken already).
    fn remove(&mut self, token: Token) {
        if self.first.as_ref().is_some_and(|(t, _)| *t == token) {
            self.first = self.more.pop();
        } else if let Some(i) = self.more.iter().position(|(t, _)| *t == token) {
            self.more.swap_remove(i);
        }
    }

    /// Moves every waker into `out`.
    fn take_all(&mut self, out: &mut Vec<Waker>) {
        out.extend(self.first.take().map(|(_, w)| w));
        out.extend(self.more.drain(..).map(|(_, w)| w));
    }
}

#[derive(Default)]
struct Waiters {
    read: Direction,
    write: Direction,
}

impl Waiters {
    fn flags(&self) -> EventFlags {
        let mut flags = EventFlags::ONESHOT;
        if self.read.is_waited() {
            flags |= EventFlags::IN | EventFlags::RDHUP;
        }
        if self.write.is_waited() {
            flags |= EventFlags::OUT;
        }
        flags
    }

    fn is_empty(&self) -> bool {
        !self.read.is_waited() && !self.write.is_waited()
    }

    fn direction(&mut self, interest: Interest) -> &mut Direction {
        match interest {
            Interest::Read => &mut self.read,
            Interest::Write => &mut self.write,
        }
    }
}

pub(crate) struct Epoll {
    epfd: OwnedFd,
    wake_fd: BorrowedFd<'static>,
    waiters: RefCell<HashMap<RawFd, Waiters>>,
    /// The token of the next registration.
    next_token: Cell<Token>,
    events: RefCell<Vec<Event>>,
    /// The wakers of one poll, kept between turns for their allocation.
    woken: Cell<Vec<Waker>>,
    /// Whether a descriptor is watched, and whether it was seen readable (see `watch`).
    watching: Cell<bool>,
    watched_ready: Cell<bool>,
}

impl Epoll {
    /// A new epoll instance watching `wake_fd` (the worker's eventfd, which outlives it).
    pub(crate) fn new(wake_fd: BorrowedFd<'static>) -> io::Result<Epoll> {
        let epfd = epoll::create(CreateFlags::CLOEXEC)?;
        epoll::add(
            &epfd,
            wake_fd,
            EventData::new_u64(WAKE_TOKEN),
            EventFlags::IN,
        )?;
        let empty = Event {
            flags: EventFlags::empty(),
            data: EventData::new_u64(0),
        };
        Ok(Epoll {
            epfd,
            wake_fd,
            waiters: RefCell::new(HashMap::new()),
            next_token: Cell::new(0),
            events: RefCell::new(vec![empty; 256]),
            woken: Cell::new(Vec::new()),
            watching: Cell::new(false),
            watched_ready: Cell::new(false),
        })
    }

    /// Watches `fd` for readability, level-triggered, under [`WATCH_TOKEN`] (see
    /// `Reactor::watch`).
    pub(crate) fn watch(&self, fd: BorrowedFd<'static>) -> io::Result<()> {
        epoll::add(
            &self.epfd,
            fd,
            EventData::new_u64(WATCH_TOKEN),
            EventFlags::IN,
        )?;
        self.watching.set(true);
        Ok(())
    }

    pub(crate) fn is_watching(&self) -> bool {
        self.watching.get()
    }

    /// Whether no fiber waits for a descriptor here.
    pub(crate) fn has_waiters(&self) -> bool {
        !self.waiters.borrow().is_empty()
    }

    pub(crate) fn take_watched(&self) -> bool {
        self.watched_ready.replace(false)
    }

    /// Wakes `waker` once `fd` may be ready for `interest`, together with every other waiter of
    /// that direction. Returns the token to [`deregister`](Self::deregister) it with.
    pub(crate) fn register(
        &self,
        fd: BorrowedFd<'_>,
        interest: Interest,
        waker: &Waker,
    ) -> io::Result<Token> {
        let raw = rustix::fd::AsRawFd::as_raw_fd(&fd);
        let token = self.next_token.get();
        self.next_token.set(token + 1);
        let mut waiters = self.waiters.borrow_mut();
        let entry = waiters.entry(raw).or_default();
        entry.direction(interest).push(token, waker.clone());
        let flags = entry.flags();
        let data = EventData::new_u64(raw as u64);
        let armed = match epoll::modify(&self.epfd, fd, data, flags) {
            Err(rustix::io::Errno::NOENT) => epoll::add(&self.epfd, fd, data, flags),
            other => other,
        };
        if let Err(e) = armed {
            // Nothing will wake it: withdraw it before reporting.
            entry.direction(interest).remove(token);
            if entry.is_empty() {
                waiters.remove(&raw);
            }
            return Err(e.into());
        }
        Ok(token)
    }

    /// Forgets the waiter `token` if it stopped waiting without being woken (canceled, timed
    /// out); the other waiters of `fd` keep waiting. The descriptor stays armed until it fires
    /// once more or is closed; a later event with no waiter is ignored.
    pub(crate) fn deregister(&self, fd: RawFd, interest: Interest, token: Token) {
        let mut waiters = self.waiters.borrow_mut();
        if let Some(entry) = waiters.get_mut(&fd) {
            entry.direction(interest).remove(token);
            if entry.is_empty() {
                waiters.remove(&fd);
            }
        }
    }

    /// Waits up to `timeout` (`None`: forever, zero: just look) and wakes whoever is ready.
    pub(crate) fn poll(&self, timeout: Option<Duration>) -> io::Result<()> {
        let timeout = timeout.map(|d| {
            rustix::time::Timespec::try_from(d).unwrap_or(rustix::time::Timespec {
                tv_sec: i64::MAX,
                tv_nsec: 0,
            })
        });
        let mut events = self.events.borrow_mut();
        let n = match epoll::wait(&self.epfd, &mut events[..], timeout.as_ref()) {
            Ok(n) => n,
            Err(rustix::io::Errno::INTR) => 0,
            Err(e) => return Err(e.into()),
        };
        // Reused between turns for its allocation (see `woken`).
        let mut wake = self.woken.take();
        {
            let mut waiters = self.waiters.borrow_mut();
            for event in &events[..n] {
                let token = event.data.u64();
                if token == WAKE_TOKEN {
                    let mut buf = [0u8; 8];
                    let _ = rustix::io::read(self.wake_fd, &mut buf);
                    continue;
                }
                if token == WATCH_TOKEN {
                    self.watched_ready.set(true);
                    continue;
                }
                let raw = token as RawFd;
                let Some(entry) = waiters.get_mut(&raw) else {
                    continue;
                };
                let flags = event.flags;
                let failed = flags.intersects(EventFlags::ERR | EventFlags::HUP);
                if failed || flags.intersects(EventFlags::IN | EventFlags::RDHUP | EventFlags::PRI)
                {
                    entry.read.take_all(&mut wake);
                }
                if failed || flags.contains(EventFlags::OUT) {
                    entry.write.take_all(&mut wake);
                }
                if entry.is_empty() {
                    waiters.remove(&raw);
                } else {
                    // The other direction still waits: re-arm for it alone.
                    // SAFETY: the descriptor is registered because a fiber is blocked waiting on
                    // it, and that fiber keeps it open until it is woken or deregisters.
                    let fd = unsafe { BorrowedFd::borrow_raw(raw) };
                    let _ = epoll::modify(&self.epfd, fd, EventData::new_u64(token), entry.flags());
                }
            }
        }
        drop(events);
        for w in wake.drain(..) {
            w.wake();
        }
        self.woken.set(wake);
        Ok(())
    }
}

impl AsFd for Epoll {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.epfd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsFd;

    use rustix::event::{eventfd, EventfdFlags};

    use crate::test_waker::{counter, wakes};

    fn reactor() -> Epoll {
        let wake: OwnedFd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK).unwrap();
        let wake: &'static OwnedFd = Box::leak(Box::new(wake));
        Epoll::new(wake.as_fd()).unwrap()
    }

    #[test]
    fn every_waiter_of_one_descriptor_is_woken() {
        let ep = reactor();
        let (mut a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let (first, w1) = counter();
        let (second, w2) = counter();
        let (third, w3) = counter();
        ep.register(b.as_fd(), Interest::Read, &w1).unwrap();
        ep.register(b.as_fd(), Interest::Read, &w2).unwrap();
        ep.register(b.as_fd(), Interest::Read, &w3).unwrap();
        a.write_all(b"x").unwrap();
        ep.poll(Some(Duration::from_secs(5))).unwrap();
        assert_eq!((wakes(&first), wakes(&second), wakes(&third)), (1, 1, 1));
        assert!(ep.waiters.borrow().is_empty(), "woken waiters are gone");
    }

    #[test]
    fn a_waiter_that_leaves_withdraws_only_itself() {
        let ep = reactor();
        let (mut a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let (leaves_first, w1) = counter();
        let (stays, w2) = counter();
        let (leaves_last, w3) = counter();
        let fd = rustix::fd::AsRawFd::as_raw_fd(&b);
        let t1 = ep.register(b.as_fd(), Interest::Read, &w1).unwrap();
        let t2 = ep.register(b.as_fd(), Interest::Read, &w2).unwrap();
        let t3 = ep.register(b.as_fd(), Interest::Read, &w3).unwrap();
        // The inline first waiter leaves while others spill: one of them takes its place.
        ep.deregister(fd, Interest::Read, t1);
        ep.deregister(fd, Interest::Read, t3);
        // A waiter of the other direction is touched by neither.
        let (writer, w4) = counter();
        let t4 = ep.register(b.as_fd(), Interest::Write, &w4).unwrap();
        ep.deregister(fd, Interest::Write, t4 + 1000); // an unknown token: no effect
        a.write_all(b"x").unwrap();
        ep.poll(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(wakes(&stays), 1, "the one left waiting is woken");
        assert_eq!((wakes(&leaves_first), wakes(&leaves_last)), (0, 0));
        assert_eq!(wakes(&writer), 1, "writable at once");
        // A token already woken withdraws nothing.
        ep.deregister(fd, Interest::Read, t2);
        assert!(ep.waiters.borrow().is_empty());
    }

    #[test]
    fn a_failed_registration_leaves_no_waiter() {
        let ep = reactor();
        // epoll refuses regular files (EPERM).
        let file = std::fs::File::open(std::env::current_exe().unwrap()).unwrap();
        let (_, w) = counter();
        assert!(ep.register(file.as_fd(), Interest::Read, &w).is_err());
        assert!(ep.waiters.borrow().is_empty());
    }
}
