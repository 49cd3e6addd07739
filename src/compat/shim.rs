//! TEMPORARY stand-in for the plan's core and driver names (`Io::spawn_future`, `Io::block_on`,
//! `zsync::time::{sleep, Sleep}`, `poll_read_ready`/`poll_write_ready`/`try_io`, `Interest`), so
//! the hyper glue can be compiled and tried before they land. Thread per wait: slow, test only.
//! Removed when main has the real ones.
#![allow(missing_docs, clippy::undocumented_unsafe_blocks)]

use std::future::Future;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use crate::Io;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interest {
    Read,
    Write,
}

struct Slot<T> {
    value: Option<T>,
    waker: Option<Waker>,
    detached: bool,
}

#[allow(missing_debug_implementations)]
pub struct ShimTask<T> {
    slot: Arc<Mutex<Slot<io::Result<T>>>>,
}

impl<T> ShimTask<T> {
    pub fn is_finished(&self) -> bool {
        self.slot.lock().unwrap().value.is_some()
    }
    pub fn detach(self) {
        self.slot.lock().unwrap().detached = true;
    }
}

impl<T> Future for ShimTask<T> {
    type Output = io::Result<T>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let mut s = self.slot.lock().unwrap();
        match s.value.take() {
            Some(v) => Poll::Ready(v),
            None => {
                s.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

struct ThreadWaker {
    flag: Mutex<bool>,
    cv: Condvar,
}
impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        *self.flag.lock().unwrap() = true;
        self.cv.notify_one();
    }
}

fn run<F: Future>(fut: F) -> F::Output {
    let tw = Arc::new(ThreadWaker {
        flag: Mutex::new(false),
        cv: Condvar::new(),
    });
    let waker = Waker::from(tw.clone());
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        let mut f = tw.flag.lock().unwrap();
        while !*f {
            f = tw.cv.wait(f).unwrap();
        }
        *f = false;
    }
}

pub trait ShimIo {
    fn spawn_future<F>(&self, fut: F) -> ShimTask<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static;
    fn block_on<F: Future>(&self, fut: F) -> io::Result<F::Output>;
}

impl ShimIo for Io {
    fn spawn_future<F>(&self, fut: F) -> ShimTask<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let slot = Arc::new(Mutex::new(Slot {
            value: None,
            waker: None,
            detached: false,
        }));
        let s2 = slot.clone();
        std::thread::spawn(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(fut)));
            let r = r.map_err(|_| io::Error::other("task panicked"));
            let mut s = s2.lock().unwrap();
            s.value = Some(r);
            if let Some(w) = s.waker.take() {
                w.wake();
            }
        });
        ShimTask { slot }
    }
    fn block_on<F: Future>(&self, fut: F) -> io::Result<F::Output> {
        Ok(run(fut))
    }
}

fn wait_fd(fd: &impl AsFd, interest: Interest, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
    let ev = match interest {
        Interest::Read => libc::POLLIN,
        Interest::Write => libc::POLLOUT,
    };
    let mut p = libc::pollfd {
        fd: fd.as_fd().as_raw_fd(),
        events: ev,
        revents: 0,
    };
    if unsafe { libc::poll(&mut p, 1, 0) } > 0 {
        return Poll::Ready(Ok(()));
    }
    let dup = fd.as_fd().try_clone_to_owned()?;
    let w = cx.waker().clone();
    std::thread::spawn(move || {
        let mut p = libc::pollfd {
            fd: dup.as_raw_fd(),
            events: ev,
            revents: 0,
        };
        unsafe { libc::poll(&mut p, 1, 50) };
        w.wake();
    });
    Poll::Pending
}

pub trait ShimReady: AsFd {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        wait_fd(&self.as_fd(), Interest::Read, cx)
    }
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        wait_fd(&self.as_fd(), Interest::Write, cx)
    }
    fn try_io<R>(&self, _interest: Interest, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
        f()
    }
}
impl ShimReady for crate::net::TcpStream {}
impl ShimReady for crate::net::UnixStream {}

#[derive(Debug)]
pub struct Sleep {
    deadline: Instant,
}
impl Sleep {
    pub fn deadline(&self) -> Instant {
        self.deadline
    }
    pub fn reset(&mut self, deadline: Instant) {
        self.deadline = deadline;
    }
}
pub fn sleep(d: Duration) -> Sleep {
    Sleep {
        deadline: Instant::now() + d,
    }
}
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep { deadline }
}
impl Future for Sleep {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let now = Instant::now();
        if now >= self.deadline {
            return Poll::Ready(());
        }
        let d = (self.deadline - now).min(Duration::from_millis(100));
        let w = cx.waker().clone();
        std::thread::spawn(move || {
            std::thread::sleep(d);
            w.wake();
        });
        Poll::Pending
    }
}

pub trait ShimListener {
    fn accept_async(
        &self,
    ) -> impl Future<Output = io::Result<(crate::net::TcpStream, std::net::SocketAddr)>> + Send + '_;
}
impl ShimListener for crate::net::TcpListener {
    #[allow(clippy::manual_async_fn)]
    fn accept_async(
        &self,
    ) -> impl Future<Output = io::Result<(crate::net::TcpStream, std::net::SocketAddr)>> + Send + '_
    {
        async move { self.accept() }
    }
}
pub trait ShimConnect: Sized {
    fn connect_async(
        io: &Io,
        addr: std::net::SocketAddr,
    ) -> impl Future<Output = io::Result<Self>> + Send + 'static;
}
impl ShimConnect for crate::net::TcpStream {
    #[allow(clippy::manual_async_fn)]
    fn connect_async(
        io: &Io,
        addr: std::net::SocketAddr,
    ) -> impl Future<Output = io::Result<Self>> + Send + 'static {
        let io = io.clone();
        async move { crate::net::TcpStream::connect(&io, addr) }
    }
}
