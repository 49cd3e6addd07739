//! The epoll backend: readiness of non-blocking descriptors, one-shot per wait.
//!
//! A fiber that got `WouldBlock` registers its waker for one direction of one descriptor; the
//! descriptor is (re)armed in this worker's epoll with `EPOLLONESHOT` and the union of the
//! directions still awaited. When an event arrives, the matching wakers fire and the descriptor
//! is re-armed only for a direction somebody still waits on. One-shot arming keeps the
//! bookkeeping honest when descriptors are closed and their numbers reused: a stale number is
//! simply re-added (`ENOENT` on modify) the next time somebody waits on it.
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

#[derive(Default)]
struct Waiters {
    read: Option<Waker>,
    write: Option<Waker>,
}

impl Waiters {
    fn flags(&self) -> EventFlags {
        let mut flags = EventFlags::ONESHOT;
        if self.read.is_some() {
            flags |= EventFlags::IN | EventFlags::RDHUP;
        }
        if self.write.is_some() {
            flags |= EventFlags::OUT;
        }
        flags
    }

    fn is_empty(&self) -> bool {
        self.read.is_none() && self.write.is_none()
    }
}

pub(crate) struct Epoll {
    epfd: OwnedFd,
    wake_fd: BorrowedFd<'static>,
    waiters: RefCell<HashMap<RawFd, Waiters>>,
    events: RefCell<Vec<Event>>,
    /// The wakers of one poll, kept between turns for their allocation.
    woken: Cell<Vec<Waker>>,
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
            events: RefCell::new(vec![empty; 256]),
            woken: Cell::new(Vec::new()),
        })
    }

    /// Wakes `waker` once `fd` may be ready for `interest`.
    pub(crate) fn register(
        &self,
        fd: BorrowedFd<'_>,
        interest: Interest,
        waker: &Waker,
    ) -> io::Result<()> {
        let raw = rustix::fd::AsRawFd::as_raw_fd(&fd);
        let mut waiters = self.waiters.borrow_mut();
        let entry = waiters.entry(raw).or_default();
        let slot = match interest {
            Interest::Read => &mut entry.read,
            Interest::Write => &mut entry.write,
        };
        match slot {
            Some(w) if w.will_wake(waker) => {}
            _ => *slot = Some(waker.clone()),
        }
        let flags = entry.flags();
        let data = EventData::new_u64(raw as u64);
        match epoll::modify(&self.epfd, fd, data, flags) {
            Err(rustix::io::Errno::NOENT) => epoll::add(&self.epfd, fd, data, flags)?,
            other => other?,
        }
        Ok(())
    }

    /// Forgets a waiter that stopped waiting (canceled, timed out). The descriptor stays armed
    /// until it fires once more or is closed; a later event with no waiter is ignored.
    pub(crate) fn deregister(&self, fd: RawFd, interest: Interest) {
        let mut waiters = self.waiters.borrow_mut();
        if let Some(entry) = waiters.get_mut(&fd) {
            match interest {
                Interest::Read => entry.read = None,
                Interest::Write => entry.write = None,
            }
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
                let raw = token as RawFd;
                let Some(entry) = waiters.get_mut(&raw) else {
                    continue;
                };
                let flags = event.flags;
                let failed = flags.intersects(EventFlags::ERR | EventFlags::HUP);
                if failed || flags.intersects(EventFlags::IN | EventFlags::RDHUP | EventFlags::PRI)
                {
                    wake.extend(entry.read.take());
                }
                if failed || flags.contains(EventFlags::OUT) {
                    wake.extend(entry.write.take());
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
