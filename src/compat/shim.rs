//! TEMPORARY stand-in for the plan's core and driver names (`Io::spawn_future`, `Io::block_on`,
//! `zsync::time::{sleep, Sleep}`, `poll_read_ready`/`poll_write_ready`/`try_io`, `Interest`), so
//! the hyper glue can be compiled and tried before they land. Thread per wait: slow, test only.
//! Removed when main has the real ones.
#![allow(missing_docs, clippy::undocumented_unsafe_blocks)]

use std::future::Future;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::Io;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interest {
    Read,
    Write,
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
    fn accept_async(
        &self,
    ) -> impl Future<Output = io::Result<(crate::net::TcpStream, std::net::SocketAddr)>> + Send + '_
    {
        std::future::poll_fn(move |cx| loop {
            match rustix::net::accept_with(
                self,
                rustix::net::SocketFlags::NONBLOCK | rustix::net::SocketFlags::CLOEXEC,
            ) {
                Ok(fd) => {
                    let std = std::net::TcpStream::from(fd);
                    let peer = std.peer_addr()?;
                    let io = Io::current().expect("shim accept_async outside a task");
                    return Poll::Ready(Ok((crate::net::TcpStream::from_std(&io, std)?, peer)));
                }
                Err(rustix::io::Errno::AGAIN) => {
                    if wait_fd(self, Interest::Read, cx)?.is_pending() {
                        return Poll::Pending;
                    }
                }
                Err(e) => return Poll::Ready(Err(e.into())),
            }
        })
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
        async move { crate::net::TcpStream::from_std(&io, std::net::TcpStream::connect(addr)?) }
    }
}
