//! TEMPORARY stand-in for the driver (`time::Sleep`,
//! `poll_*_ready`, `try_io`, `net::Interest`) while they are written on `main`. Deleted at the
//! merge; nothing here is meant to last. Threads and polling, correct but slow.
#![allow(missing_docs, dead_code, clippy::undocumented_unsafe_blocks)]

use std::collections::BinaryHeap;
use std::future::Future;
use std::io;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::{Condvar, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::net::UdpSocket;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interest {
    Read,
    Write,
}

struct Entry(Instant, Waker);
impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        self.0 == o.0
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        o.0.cmp(&self.0)
    }
}

struct Timers {
    heap: Mutex<BinaryHeap<Entry>>,
    cv: Condvar,
}

fn timers() -> &'static Timers {
    static T: OnceLock<&'static Timers> = OnceLock::new();
    T.get_or_init(|| {
        let t: &'static Timers = Box::leak(Box::new(Timers {
            heap: Mutex::new(BinaryHeap::new()),
            cv: Condvar::new(),
        }));
        std::thread::spawn(move || loop {
            let mut h = t.heap.lock().unwrap();
            let now = Instant::now();
            let mut due = Vec::new();
            while h.peek().is_some_and(|e| e.0 <= now) {
                due.push(h.pop().unwrap().1);
            }
            if due.is_empty() {
                let wait = h
                    .peek()
                    .map(|e| e.0 - now)
                    .unwrap_or(Duration::from_secs(1));
                drop(t.cv.wait_timeout(h, wait).unwrap());
            } else {
                drop(h);
                due.into_iter().for_each(Waker::wake);
            }
        });
        t
    })
}

fn wake_at(at: Instant, w: &Waker) {
    let t = timers();
    t.heap.lock().unwrap().push(Entry(at, w.clone()));
    t.cv.notify_one();
}

#[derive(Debug)]
pub struct Sleep {
    deadline: Instant,
}

pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep { deadline }
}

impl Sleep {
    pub fn deadline(&self) -> Instant {
        self.deadline
    }
    pub fn reset(&mut self, deadline: Instant) {
        self.deadline = deadline;
    }
}

impl Future for Sleep {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline {
            return Poll::Ready(());
        }
        wake_at(self.deadline, cx.waker());
        Poll::Pending
    }
}

fn poll_fd(s: &UdpSocket, events: libc::c_short, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
    let mut p = libc::pollfd {
        fd: s.as_raw_fd(),
        events,
        revents: 0,
    };
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    if n > 0 {
        return Poll::Ready(Ok(()));
    }
    wake_at(Instant::now() + Duration::from_micros(200), cx.waker());
    Poll::Pending
}

impl UdpSocket {
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        poll_fd(self, libc::POLLIN, cx)
    }
    pub fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        poll_fd(self, libc::POLLOUT, cx)
    }
    pub fn try_io<R>(&self, _i: Interest, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
        f()
    }
}
