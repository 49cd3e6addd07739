//! [hyper] 1.x on zsync: hyper's runtime traits (`hyper::rt::{Executor, Timer, Read, Write}`)
//! implemented with zsync's future tasks, timers and readiness. Behind the cargo feature `hyper`.
//!
//! hyper 1.x owns no runtime: a connection is a future that needs somewhere to run (an
//! [`Executor`](hyper::rt::Executor), for the tasks hyper spawns itself: HTTP/2 streams, the
//! client's connection pool), a clock ([`Timer`](hyper::rt::Timer), for the header read
//! timeout and keep-alive pings) and a transport ([`Read`](hyper::rt::Read) +
//! [`Write`](hyper::rt::Write)). zsync provides the three:
//!
//! - [`ZsyncExecutor`] spawns each future as a detached zsync future task
//!   ([`Io::spawn_future`]): on Green it runs on the workers' loops next to the fibers, stealable
//!   between workers; on Threaded on the pool.
//! - [`ZsyncTimer`] hands out [`ZsyncSleep`]s, [`zsync::time::Sleep`](crate::time::Sleep)s that
//!   hyper can reset in place (no new allocation per keep-alive request).
//! - [`TcpStream`] and [`UnixStream`] implement hyper's `Read` and `Write` themselves: a zsync
//!   stream is passed to hyper as it is, no wrapper. A read waits for readiness
//!   (`poll_read_ready`) and then receives straight into hyper's uninitialized buffer with a
//!   non-blocking `recv`; a `WouldBlock` clears the readiness (`try_io`) and waits again, the
//!   edge-triggered protocol of Tokio's `PollEvented`. Writes are `send`/`sendmsg` with
//!   `MSG_NOSIGNAL` (a vectored write is one `sendmsg`: hyper writes head and body in one call).
//!
//! The socket's own read and write timeouts ([`TcpStream::set_read_timeout`]) do not apply on
//! this path: hyper's timer does (`header_read_timeout`), or wrap the connection future in
//! [`zsync::time::timeout`](crate::time::timeout). Canceling the task that polls a connection
//! drops the connection future at its next poll, which closes the socket.
//!
//! A whole server and client, on one runtime (the same code runs on Green):
//!
//! ```
//! use std::convert::Infallible;
//!
//! use bytes::Bytes;
//! use http_body_util::{BodyExt, Full};
//! use hyper::{body::Incoming, server::conn::http1, service::service_fn, Request, Response};
//! use zsync::compat::hyper::ZsyncTimer;
//! use zsync::net::{TcpListener, TcpStream};
//!
//! async fn hello(_: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
//!     Ok(Response::new(Full::new(Bytes::from("Hello, World!"))))
//! }
//!
//! zsync::run(zsync::Model::Threaded, |io| -> std::io::Result<()> {
//!     let listener = TcpListener::bind(io, "127.0.0.1:0")?;
//!     let addr = listener.local_addr()?;
//!     let server = io.spawn_future(async move {
//!         let (stream, _) = listener.accept_async().await?;
//!         // The zsync stream is hyper's transport as it is.
//!         http1::Builder::new()
//!             .timer(ZsyncTimer::new())
//!             .serve_connection(stream, service_fn(hello))
//!             .await
//!             .map_err(std::io::Error::other)
//!     });
//!     let body = io.block_on(async {
//!         let stream = TcpStream::connect_async(io, addr).await?;
//!         let (mut sender, conn) = hyper::client::conn::http1::handshake(stream)
//!             .await
//!             .map_err(std::io::Error::other)?;
//!         let conn = io.spawn_future(conn);
//!         let request = Request::get("/").header("host", "zsync").body(String::new());
//!         sender.ready().await.map_err(std::io::Error::other)?;
//!         let response = sender
//!             .send_request(request.unwrap())
//!             .await
//!             .map_err(std::io::Error::other)?;
//!         let body = response.into_body().collect().await.map_err(std::io::Error::other)?;
//!         drop(sender); // the client's connection task ends, and closes the socket
//!         conn.await?.map_err(std::io::Error::other)?;
//!         Ok::<_, std::io::Error>(body.to_bytes())
//!     })??;
//!     assert_eq!(body, "Hello, World!");
//!     io.block_on(server)???;
//!     Ok(())
//! })
//! .unwrap();
//! ```
//!
//! [hyper]: https://docs.rs/hyper/1

use crate::net::async_io::SimulatedStream;
use std::future::Future;
use std::io::{self, IoSlice};
use std::net::Shutdown;
use std::os::fd::AsFd;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use hyper::rt::ReadBufCursor;
use rustix::net::{RecvFlags, SendAncillaryBuffer, SendFlags};

use crate::net::Interest;
use crate::net::{TcpStream, UnixStream};
use crate::Io;

/// hyper's [`Executor`](hyper::rt::Executor) on zsync: every future hyper hands it becomes a
/// detached zsync future task ([`Io::spawn_future`]) of the runtime it was made from.
///
/// hyper spawns through it for HTTP/2 (one task per stream) and in `hyper-util`'s pooled
/// client; an HTTP/1 connection needs none. Cheap to clone (one `Io`).
///
/// ```
/// use hyper::rt::Executor;
/// use zsync::compat::hyper::ZsyncExecutor;
///
/// zsync::run(zsync::Model::Threaded, |io| {
///     let (tx, rx) = zsync::channel::bounded(1);
///     ZsyncExecutor::new(io).execute(async move {
///         let _ = tx.send(42);
///     });
///     assert_eq!(rx.recv().unwrap(), 42);
/// });
/// ```
#[derive(Clone, Debug)]
pub struct ZsyncExecutor {
    io: Io,
}

impl ZsyncExecutor {
    /// An executor spawning on `io`'s runtime.
    ///
    /// ```
    /// zsync::run(zsync::Model::Green, |io| {
    ///     let _executor = zsync::compat::hyper::ZsyncExecutor::new(io);
    /// });
    /// ```
    pub fn new(io: &Io) -> ZsyncExecutor {
        ZsyncExecutor { io: io.clone() }
    }
}

impl<F> hyper::rt::Executor<F> for ZsyncExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        self.io.spawn_future(fut).detach();
    }
}

/// hyper's [`Timer`](hyper::rt::Timer) on zsync's timers: [`sleep`](hyper::rt::Timer::sleep)
/// and [`sleep_until`](hyper::rt::Timer::sleep_until) return a [`ZsyncSleep`], and
/// [`reset`](hyper::rt::Timer::reset) moves a `ZsyncSleep`'s deadline in place.
///
/// It holds nothing: a sleep finds its runtime's timers when it is first polled (the running
/// task's runtime), so one `ZsyncTimer` serves any runtime.
///
/// ```
/// use std::time::Duration;
/// use hyper::rt::Timer;
/// use zsync::compat::hyper::ZsyncTimer;
///
/// zsync::run(zsync::Model::Green, |io| {
///     let sleep = ZsyncTimer::new().sleep(Duration::from_millis(5));
///     io.block_on(sleep).unwrap();
/// });
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct ZsyncTimer;

impl ZsyncTimer {
    /// The timer.
    ///
    /// ```
    /// let mut http = hyper::server::conn::http1::Builder::new();
    /// http.timer(zsync::compat::hyper::ZsyncTimer::new());
    /// ```
    pub fn new() -> ZsyncTimer {
        ZsyncTimer
    }
}

impl hyper::rt::Timer for ZsyncTimer {
    /// zsync's clock: simulated time on a simulation (hyper computes its header-read deadline
    /// from it; its default, `Instant::now`, is real time there).
    fn now(&self) -> Instant {
        crate::clock::now()
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(ZsyncSleep::new(crate::time::sleep(duration)))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(ZsyncSleep::new(crate::time::sleep_until(deadline)))
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn hyper::rt::Sleep>>, new_deadline: Instant) {
        match sleep.as_mut().downcast_mut_pin::<ZsyncSleep>() {
            Some(mut ours) => ours.inner.reset(new_deadline),
            // Another timer's sleep: replace it.
            None => *sleep = self.sleep_until(new_deadline),
        }
    }
}

/// The sleep [`ZsyncTimer`] hands to hyper: a [`zsync::time::Sleep`](crate::time::Sleep) that
/// is also a [`hyper::rt::Sleep`].
///
/// ```
/// use std::time::{Duration, Instant};
/// use zsync::compat::hyper::ZsyncSleep;
///
/// zsync::run(zsync::Model::Threaded, |io| {
///     let start = Instant::now();
///     let sleep = ZsyncSleep::new(zsync::time::sleep(Duration::from_millis(5)));
///     io.block_on(sleep).unwrap();
///     assert!(start.elapsed() >= Duration::from_millis(5));
/// });
/// ```
#[derive(Debug)]
pub struct ZsyncSleep {
    inner: crate::time::Sleep,
}

impl ZsyncSleep {
    /// Wraps a zsync sleep.
    ///
    /// ```
    /// let sleep = zsync::time::sleep(std::time::Duration::from_secs(1));
    /// let deadline = sleep.deadline();
    /// assert_eq!(zsync::compat::hyper::ZsyncSleep::new(sleep).deadline(), deadline);
    /// ```
    pub fn new(inner: crate::time::Sleep) -> ZsyncSleep {
        ZsyncSleep { inner }
    }

    /// When the sleep ends.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let at = Instant::now() + Duration::from_secs(1);
    /// let sleep = zsync::compat::hyper::ZsyncSleep::new(zsync::time::sleep_until(at));
    /// assert_eq!(sleep.deadline(), at);
    /// ```
    pub fn deadline(&self) -> Instant {
        self.inner.deadline()
    }
}

impl Future for ZsyncSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.inner).poll(cx)
    }
}

impl hyper::rt::Sleep for ZsyncSleep {}

/// `recv(2)` without waiting into the unfilled part of `buf`, advancing it by what arrived.
fn recv_into<S: AsFd + SimulatedStream>(fd: &S, buf: &mut ReadBufCursor<'_>) -> io::Result<usize> {
    if fd.is_simulated() {
        // SAFETY: only initialized bytes (zeros, then what the world copies) are written.
        let unfilled = unsafe { buf.as_mut() };
        for b in unfilled.iter_mut() {
            b.write(0);
        }
        // SAFETY: every byte of `unfilled` was initialized just above; `MaybeUninit<u8>` and
        // `u8` have the same layout.
        let init = unsafe { &mut *(std::ptr::from_mut(unfilled) as *mut [u8]) };
        let n = fd.simulated_recv(init)?;
        // SAFETY: the first `n` bytes are initialized (all of them are).
        unsafe { buf.advance(n) };
        return Ok(n);
    }
    // SAFETY: `recv` only writes initialized bytes into the slice, and nothing here writes
    // uninitialized ones into it: hyper's contract for `as_mut`.
    let unfilled = unsafe { buf.as_mut() };
    let ((filled, _), _) = rustix::net::recv(fd, unfilled, RecvFlags::DONTWAIT)?;
    let n = filled.len();
    // SAFETY: the kernel initialized the first `n` bytes of the unfilled part.
    unsafe { buf.advance(n) };
    Ok(n)
}

/// `send(2)` without waiting and without `SIGPIPE`.
fn send<S: AsFd + SimulatedStream>(fd: &S, buf: &[u8]) -> io::Result<usize> {
    if fd.is_simulated() {
        return fd.simulated_send(buf);
    }
    Ok(rustix::net::send(
        fd,
        buf,
        SendFlags::DONTWAIT | SendFlags::NOSIGNAL,
    )?)
}

/// `sendmsg(2)` of the slices without waiting and without `SIGPIPE`.
fn send_vectored<S: AsFd + SimulatedStream>(fd: &S, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    if fd.is_simulated() {
        let all: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
        return fd.simulated_send(&all);
    }
    Ok(rustix::net::sendmsg(
        fd,
        bufs,
        &mut SendAncillaryBuffer::default(),
        SendFlags::DONTWAIT | SendFlags::NOSIGNAL,
    )?)
}

/// The result of `shutdown(Write)`, where `NotConnected` (the peer reset the connection
/// first: nothing more can be written either way) is success, so that a connection whose
/// client already went ends cleanly rather than with an error.
fn shutdown_write(result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
        other => other,
    }
}

/// Runs the non-blocking transfer `op` of up to `$len` bytes on `$s` each time `$poll_ready`
/// reports readiness, until it does not end in `WouldBlock` (which `try_transfer` turns into
/// "wait again", as it does a short transfer: the buffer is drained, or full, and the next try
/// would only meet `WouldBlock`); `Interrupted` retries.
macro_rules! poll_io {
    ($s:expr, $cx:expr, $poll_ready:ident, $interest:expr, $len:expr, $op:expr) => {
        loop {
            ready!($s.$poll_ready($cx))?;
            match $s.try_transfer($interest, $len, $op) {
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) => {}
                r => break Poll::Ready(r),
            }
        }
    };
}

/// hyper's `Read` and `Write` for a zsync stream socket type.
macro_rules! impl_hyper_io {
    ($ty:ident) => {
        /// hyper's transport: readiness, then a non-blocking `recv` straight into hyper's
        /// buffer (see [`compat::hyper`](crate::compat::hyper)).
        impl hyper::rt::Read for $ty {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                mut buf: ReadBufCursor<'_>,
            ) -> Poll<io::Result<()>> {
                if buf.remaining() == 0 {
                    return Poll::Ready(Ok(()));
                }
                let s = &*self;
                let len = buf.remaining();
                poll_io!(s, cx, poll_read_ready, Interest::Read, len, || recv_into(
                    s, &mut buf
                ))
                .map(|r| r.map(drop))
            }
        }

        /// hyper's transport: readiness, then a non-blocking `send`/`sendmsg` with
        /// `MSG_NOSIGNAL`. Flushing has nothing to do; shutting down is `shutdown(Write)`.
        impl hyper::rt::Write for $ty {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                let s = &*self;
                poll_io!(
                    s,
                    cx,
                    poll_write_ready,
                    Interest::Write,
                    buf.len(),
                    || send(s, buf)
                )
            }

            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                let s = &*self;
                let len = bufs.iter().map(|b| b.len()).sum();
                poll_io!(s, cx, poll_write_ready, Interest::Write, len, || {
                    send_vectored(s, bufs)
                })
            }

            fn is_write_vectored(&self) -> bool {
                true
            }

            fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }

            fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(shutdown_write(self.shutdown(Shutdown::Write)))
            }
        }
    };
}

impl_hyper_io!(TcpStream);
impl_hyper_io!(UnixStream);
