//! The async side of [`PipeReader`] and [`PipeWriter`]: readiness polls, `try_io`, the `_async`
//! methods, and the `futures_io` (and, with feature `tokio-io`, Tokio) `AsyncRead`/`AsyncWrite`
//! impls, for the type and for `&` it.
//!
//! The same shape as the sockets' (`net/async_io.rs`): a pipe end registers with its runtime's
//! async driver on first async use ([`Registered`](crate::driver::Registered), a field declared
//! before the descriptor), edge-triggered for both directions, and every async operation is the
//! non-blocking `read(2)`/`write(2)` tried from `poll`, waiting for readiness on `WouldBlock`.
//! Nothing runs outside the poll: a future dropped while it waits has taken no byte and holds no
//! buffer, and no thread, ring op or second event loop exists per pipe.
//!
//! **Blocking mode.** A pipe end is `O_NONBLOCK` from [`pipe`](crate::pipe) (or
//! [`from_fd`](PipeReader::from_fd)) until [`into_std`](PipeReader::into_std): the colorblind
//! `Read`/`Write` methods already make non-blocking syscalls and wait for readiness themselves
//! (a ring op on Green io_uring, `retry_on_fd` elsewhere), so the async methods share the
//! descriptor with them as they are, with no mode switch on any model, as with sockets.
//!
//! **`SIGPIPE`.** A pipe write has no `MSG_NOSIGNAL`: a write when every reader is gone fails with
//! `BrokenPipe` *and* the kernel raises `SIGPIPE`, which Rust programs ignore (std sets it to
//! `SIG_IGN` before `main`), as for the colorblind writes and std's pipes (see
//! [`zsync::bufio`](crate::bufio#sigpipe)).

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::AsFd;
use std::task::{Context, Poll};

use crate::driver::source::Waiter;
use crate::driver::Source;
use crate::park::Interest;

use super::{PipeReader, PipeWriter};

impl PipeReader {
    /// The reader's driver registration, made on first use.
    fn source(&self) -> io::Result<&Source> {
        self.registered.source(&self.io, self.inner.as_fd())
    }

    /// A non-blocking `read(2)`.
    fn read_now(&self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(rustix::io::read(self.inner.as_fd(), buf)?)
    }

    /// A non-blocking `readv(2)`.
    fn readv_now(&self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        let n = bufs.len().min(crate::bufio::IOV_MAX);
        Ok(rustix::io::readv(self.inner.as_fd(), &mut bufs[..n])?)
    }

    /// Polls for read readiness: `Ready(Ok(()))` once the pipe may be readable (data, or every
    /// writer gone: the next read tells), else `Pending`, with `cx`'s waker woken when that
    /// changes.
    ///
    /// Readiness stays set until an operation run through [`try_io`](Self::try_io) meets
    /// `WouldBlock`. Only the waker of the last call is kept (one poller); for several tasks
    /// waiting at once, use [`read_async`](Self::read_async). The first call registers the
    /// pipe with the runtime's async driver (the process-wide one outside a runtime).
    ///
    /// Errors: the registration failed, or the reader's runtime has shut down since.
    ///
    /// ```
    /// use std::io::Write;
    /// use std::task::{Context, Waker};
    ///
    /// zsync::run(zsync::Model::Blocking, |io| -> std::io::Result<()> {
    ///     let (reader, mut writer) = zsync::pipe(io)?;
    ///     writer.write_all(b"x")?;
    ///     let mut cx = Context::from_waker(Waker::noop());
    ///     assert!(reader.poll_read_ready(&mut cx).is_ready());
    ///     Ok(())
    /// })
    /// .unwrap();
    /// ```
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.source() {
            Ok(source) => source.poll_ready(Interest::Read, cx, Waiter::Poll),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    /// Runs `f`, a non-blocking read of this pipe's descriptor (a raw syscall through
    /// [`AsFd`]), and returns its result. If it fails with `WouldBlock`, the read readiness is
    /// cleared, unless an event arrived meanwhile, so that the next
    /// [`poll_read_ready`](Self::poll_read_ready) waits for new data rather than report the
    /// readiness just used up. (A reader only reads: unlike the sockets' `try_io`, there is no
    /// interest to pass.)
    ///
    /// `f` must not block: the descriptor is non-blocking, but zsync's own `Read` methods wait
    /// for readiness and must not be called in it.
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use std::os::fd::AsFd;
    /// use std::task::{Context, Waker};
    ///
    /// zsync::run(zsync::Model::Blocking, |io| -> std::io::Result<()> {
    ///     let (reader, mut writer) = zsync::pipe(io)?;
    ///     // A plain std handle on the same (non-blocking) description.
    ///     let raw = std::fs::File::from(reader.as_fd().try_clone_to_owned()?);
    ///     let mut buf = [0; 8];
    ///     let e = reader.try_io(|| (&raw).read(&mut buf)).unwrap_err();
    ///     assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
    ///     let mut cx = Context::from_waker(Waker::noop());
    ///     assert!(reader.poll_read_ready(&mut cx).is_pending());
    ///     writer.write_all(b"hi")?;
    ///     io.block_on(std::future::poll_fn(|cx| reader.poll_read_ready(cx)))??;
    ///     assert_eq!(reader.try_io(|| (&raw).read(&mut buf))?, 2);
    ///     Ok(())
    /// })
    /// .unwrap();
    /// ```
    pub fn try_io<R>(&self, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
        self.source()?.try_io(Interest::Read, f)
    }

    /// Reads into `buf` once data is there: the number of bytes read, `0` once every writer is
    /// gone and the pipe is empty. A future: it waits through the async driver (any number of
    /// tasks may wait on one pipe), never parking the task; dropped, it has read nothing. Bound
    /// it with [`zsync::time::timeout`](crate::time::timeout).
    ///
    /// ```
    /// use std::io::Write;
    ///
    /// zsync::run(zsync::Model::Threaded, |io| -> std::io::Result<()> {
    ///     let (reader, mut writer) = zsync::pipe(io)?;
    ///     writer.write_all(b"ping")?;
    ///     let mut buf = [0; 16];
    ///     let n = io.block_on(reader.read_async(&mut buf))??;
    ///     assert_eq!(&buf[..n], b"ping");
    ///     drop(writer);
    ///     assert_eq!(io.block_on(reader.read_async(&mut buf))??, 0, "end of stream");
    ///     Ok(())
    /// })
    /// .unwrap();
    /// ```
    pub async fn read_async(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.source()?
            .io(Interest::Read, || self.read_now(buf))
            .await
    }

    /// The `AsyncRead` impls' read: the poll slot (one reader at a time).
    fn poll_read_priv(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        match self.source() {
            Ok(source) => source.poll_io(Interest::Read, cx, Waiter::Poll, || self.read_now(buf)),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_read_vectored_priv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.source() {
            Ok(source) => source.poll_io(Interest::Read, cx, Waiter::Poll, || self.readv_now(bufs)),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl PipeWriter {
    /// The writer's driver registration, made on first use.
    fn source(&self) -> io::Result<&Source> {
        self.registered.source(&self.io, self.inner.as_fd())
    }

    /// A non-blocking `write(2)`.
    fn write_now(&self, buf: &[u8]) -> io::Result<usize> {
        Ok(rustix::io::write(self.inner.as_fd(), buf)?)
    }

    /// A non-blocking `writev(2)`.
    fn writev_now(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let n = bufs.len().min(crate::bufio::IOV_MAX);
        Ok(rustix::io::writev(self.inner.as_fd(), &bufs[..n])?)
    }

    /// Polls for write readiness: `Ready(Ok(()))` once the pipe may have room (or every reader
    /// is gone: the next write tells), else `Pending`, with `cx`'s waker woken when that
    /// changes. As [`PipeReader::poll_read_ready`], for the other direction.
    ///
    /// ```
    /// use std::task::{Context, Waker};
    ///
    /// zsync::run(zsync::Model::Blocking, |io| -> std::io::Result<()> {
    ///     let (_reader, writer) = zsync::pipe(io)?;
    ///     let mut cx = Context::from_waker(Waker::noop());
    ///     assert!(writer.poll_write_ready(&mut cx).is_ready()); // an empty pipe has room
    ///     Ok(())
    /// })
    /// .unwrap();
    /// ```
    pub fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.source() {
            Ok(source) => source.poll_ready(Interest::Write, cx, Waiter::Poll),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    /// Runs `f`, a non-blocking write to this pipe's descriptor, and returns its result; on
    /// `WouldBlock` the write readiness is cleared unless an event arrived meanwhile. As
    /// [`PipeReader::try_io`], for writes.
    ///
    /// ```
    /// use std::io::Write;
    /// use std::os::fd::AsFd;
    ///
    /// zsync::run(zsync::Model::Blocking, |io| -> std::io::Result<()> {
    ///     let (_reader, writer) = zsync::pipe(io)?;
    ///     let raw = std::fs::File::from(writer.as_fd().try_clone_to_owned()?);
    ///     // Fill the pipe: the write that finds no room reports `WouldBlock`.
    ///     let chunk = [7u8; 4096];
    ///     let full = loop {
    ///         match writer.try_io(|| (&raw).write(&chunk)) {
    ///             Ok(_) => continue,
    ///             Err(e) => break e,
    ///         }
    ///     };
    ///     assert_eq!(full.kind(), std::io::ErrorKind::WouldBlock);
    ///     Ok(())
    /// })
    /// .unwrap();
    /// ```
    pub fn try_io<R>(&self, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
        self.source()?.try_io(Interest::Write, f)
    }

    /// Writes from `buf` once there is room: the number of bytes written (possibly fewer than
    /// `buf.len()`; at most 4096 bytes, `PIPE_BUF`, are written atomically). A pipe without a
    /// reader is `BrokenPipe`. A future, as [`PipeReader::read_async`].
    ///
    /// ```
    /// use std::io::Read;
    ///
    /// zsync::run(zsync::Model::Threaded, |io| -> std::io::Result<()> {
    ///     let (mut reader, writer) = zsync::pipe(io)?;
    ///     assert_eq!(io.block_on(writer.write_async(b"pong"))??, 4);
    ///     let mut buf = [0; 4];
    ///     reader.read_exact(&mut buf)?;
    ///     assert_eq!(&buf, b"pong");
    ///     drop(reader);
    ///     let e = io.block_on(writer.write_async(b"lost"))?.unwrap_err();
    ///     assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe);
    ///     Ok(())
    /// })
    /// .unwrap();
    /// ```
    pub async fn write_async(&self, buf: &[u8]) -> io::Result<usize> {
        self.source()?
            .io(Interest::Write, || self.write_now(buf))
            .await
    }

    /// The `AsyncWrite` impls' write: the poll slot (one writer at a time).
    fn poll_write_priv(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.source() {
            Ok(source) => source.poll_io(Interest::Write, cx, Waiter::Poll, || self.write_now(buf)),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_write_vectored_priv(
        &self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.source() {
            Ok(source) => {
                source.poll_io(Interest::Write, cx, Waiter::Poll, || self.writev_now(bufs))
            }
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

/// The trait impls for a reader type (`PipeReader`, `&PipeReader`).
macro_rules! impl_async_read {
    ($t:ty) => {
        /// Reads through the async driver (the reader's poll slot: one reader at a time).
        impl futures_io::AsyncRead for $t {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut [u8],
            ) -> Poll<io::Result<usize>> {
                self.poll_read_priv(cx, buf)
            }

            fn poll_read_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &mut [IoSliceMut<'_>],
            ) -> Poll<io::Result<usize>> {
                self.poll_read_vectored_priv(cx, bufs)
            }
        }

        /// Tokio's read trait (feature `tokio-io`), as the futures-io impl.
        #[cfg(feature = "tokio-io")]
        impl tokio::io::AsyncRead for $t {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut tokio::io::ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                let n = std::task::ready!(self.poll_read_priv(cx, buf.initialize_unfilled()))?;
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
        }
    };
}

/// The trait impls for a writer type (`PipeWriter`, `&PipeWriter`).
macro_rules! impl_async_write {
    ($t:ty) => {
        /// Writes through the async driver (the writer's poll slot). Flushing has nothing to
        /// do (writes go straight to the pipe); `poll_close` neither: a pipe has no half to
        /// shut down, the reader sees the end of the stream when every writer is dropped.
        impl futures_io::AsyncWrite for $t {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                self.poll_write_priv(cx, buf)
            }

            fn poll_write_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                self.poll_write_vectored_priv(cx, bufs)
            }

            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut Context<'_>,
            ) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }

            fn poll_close(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut Context<'_>,
            ) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }
        }

        /// Tokio's write trait (feature `tokio-io`), as the futures-io impl (`poll_shutdown`
        /// does nothing, as Tokio's own pipe `Sender`'s).
        #[cfg(feature = "tokio-io")]
        impl tokio::io::AsyncWrite for $t {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                self.poll_write_priv(cx, buf)
            }

            fn poll_write_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                self.poll_write_vectored_priv(cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                true
            }

            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut Context<'_>,
            ) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }

            fn poll_shutdown(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut Context<'_>,
            ) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }
        }
    };
}

impl_async_read!(PipeReader);
impl_async_read!(&PipeReader);
impl_async_write!(PipeWriter);
impl_async_write!(&PipeWriter);
