//! The async side of the socket types, written once: readiness polls, `try_io`, the `_async`
//! methods, and the `futures_io` (and, with feature `tokio-io`, Tokio) `AsyncRead`/`AsyncWrite`
//! impls. Everything goes through the socket core's driver registration (see
//! [`crate::driver`]), made on the first async use of a socket.
//!
//! | macro | what | types |
//! |---|---|---|
//! | [`impl_readiness!`] | `poll_read_ready`, `poll_write_ready`, `try_io` | all six |
//! | [`impl_async_stream!`] | `read_async`, `write_async`, `AsyncRead`/`AsyncWrite` for the type and `&` it | `TcpStream`, `UnixStream` |
//!
//! The datagram and listener methods (`recv_from_async`, `accept_async`, ...) stay in their
//! type's file, one line each over [`Socket::io_async`](super::socket::Socket::io_async).

/// `poll_read_ready`, `poll_write_ready` and `try_io` for a socket type.
macro_rules! impl_readiness {
    ($t:ident, $example:literal) => {
        impl $t {
            /// Polls for read readiness: `Ready(Ok(()))` once the socket may be readable (data,
            /// a connection to accept, the peer's hang-up or an error: the next operation
            /// tells), else `Pending`, with `cx`'s waker woken when that changes.
            ///
            /// Readiness stays set until an operation run through [`try_io`](Self::try_io)
            /// meets `WouldBlock`; a read with the blocking-style methods does not clear it.
            /// Only the waker of the last call is kept (one poller per direction); for several
            /// tasks waiting at once, use the `_async` methods. The first call registers the
            /// socket with the runtime's async driver (the process-wide one outside a
            /// runtime).
            ///
            /// Errors: the registration failed, or the socket's runtime has shut down since.
            #[doc = concat!("```\n", $example, "\n```")]
            pub fn poll_read_ready(
                &self,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                self.sock.poll_ready($crate::net::Interest::Read, cx)
            }

            /// Polls for write readiness: as [`poll_read_ready`](Self::poll_read_ready), for
            /// room in the send buffer (or a completed connect).
            #[doc = concat!("```\n", $example, "\n```")]
            pub fn poll_write_ready(
                &self,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                self.sock.poll_ready($crate::net::Interest::Write, cx)
            }

            /// Runs `f`, a non-blocking operation on this socket's descriptor (a raw syscall
            /// through [`AsFd`](std::os::fd::AsFd)), and returns its result. If it fails with
            /// `WouldBlock`, the readiness for `interest` is cleared, unless an event arrived
            /// meanwhile, so that the next `poll_*_ready` waits for the socket to become ready
            /// again rather than report the readiness that was just used up.
            ///
            /// `f` must not block: the socket is in non-blocking mode, but zsync's own
            /// methods (`read`, `recv`, ...) wait for readiness and must not be called in it.
            #[doc = concat!("```\n", $example, "\n```")]
            pub fn try_io<R>(
                &self,
                interest: $crate::net::Interest,
                f: impl FnOnce() -> std::io::Result<R>,
            ) -> std::io::Result<R> {
                self.sock.try_io(interest, f)
            }
        }
    };
}
pub(crate) use impl_readiness;

/// `read_async`, `write_async`, and `AsyncRead`/`AsyncWrite` (futures-io; Tokio's with feature
/// `tokio-io`) for a stream type and for `&` it.
macro_rules! impl_async_stream {
    ($t:ident, $example:literal) => {
        impl $t {
            /// Reads into `buf` once data is there: the number of bytes read, `0` at the end
            /// of the stream. A future: it waits through the async driver (any number of
            /// tasks may wait on one stream), never parking the task; dropped, it leaves the
            /// stream untouched. The socket's read timeout does not apply (bound it with
            /// [`zsync::time::timeout`](crate::time::timeout)).
            #[doc = concat!("```\n", $example, "\n```")]
            pub async fn read_async(&self, buf: &mut [u8]) -> std::io::Result<usize> {
                let len = buf.len();
                self.sock
                    .transfer_async($crate::net::Interest::Read, len, |_| {
                        self.sock.recv_now(buf)
                    })
                    .await
            }

            /// Writes from `buf` once there is room: the number of bytes written (possibly
            /// fewer than `buf.len()`). With `MSG_NOSIGNAL`: a peer that has gone is
            /// `BrokenPipe`. A future, as [`read_async`](Self::read_async).
            #[doc = concat!("```\n", $example, "\n```")]
            pub async fn write_async(&self, buf: &[u8]) -> std::io::Result<usize> {
                self.sock
                    .transfer_async($crate::net::Interest::Write, buf.len(), |_| {
                        self.sock.send_now(buf)
                    })
                    .await
            }
        }

        impl $t {
            /// `try_io` for a transfer of up to `len` bytes: a short one uses the readiness up
            /// too (for `compat::hyper`'s transport).
            #[cfg_attr(not(feature = "hyper"), allow(dead_code))]
            pub(crate) fn try_transfer(
                &self,
                interest: $crate::net::Interest,
                len: usize,
                f: impl FnOnce() -> std::io::Result<usize>,
            ) -> std::io::Result<usize> {
                self.sock.try_transfer(interest, len, f)
            }
        }

        $crate::net::async_io::impl_async_stream!(@for $t);
        $crate::net::async_io::impl_async_stream!(@for &$t);
    };
    (@for $t:ty) => {
        impl $crate::net::async_io::SimulatedStream for $t {
            fn is_simulated(&self) -> bool {
                self.sock.simulated().is_some()
            }
            fn simulated_recv(&self, buf: &mut [u8]) -> std::io::Result<usize> {
                self.sock.recv_now(buf)
            }
            fn simulated_send(&self, buf: &[u8]) -> std::io::Result<usize> {
                self.sock.send_now(buf)
            }
        }

        /// Reads through the async driver (the stream's poll slot: one reader at a time).
        impl ::futures_io::AsyncRead for $t {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &mut [u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                let len = buf.len();
                self.sock
                    .poll_transfer($crate::net::Interest::Read, cx, len, |_| {
                        self.sock.recv_now(buf)
                    })
            }
        }

        /// Writes through the async driver (`MSG_NOSIGNAL`); `close` shuts the write half
        /// down.
        impl ::futures_io::AsyncWrite for $t {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                self.sock
                    .poll_transfer($crate::net::Interest::Write, cx, buf.len(), |_| {
                        self.sock.send_now(buf)
                    })
            }

            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(Ok(()))
            }

            fn poll_close(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(self.sock.shutdown(std::net::Shutdown::Write))
            }
        }

        /// Tokio's read trait (feature `tokio-io`), as the futures-io impl.
        #[cfg(feature = "tokio-io")]
        impl ::tokio::io::AsyncRead for $t {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &mut ::tokio::io::ReadBuf<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                let len = buf.remaining();
                let polled = self.sock.poll_transfer($crate::net::Interest::Read, cx, len, |_| {
                    self.sock.recv_now(buf.initialize_unfilled())
                });
                match polled {
                    std::task::Poll::Ready(Ok(n)) => {
                        buf.advance(n);
                        std::task::Poll::Ready(Ok(()))
                    }
                    std::task::Poll::Ready(Err(e)) => std::task::Poll::Ready(Err(e)),
                    std::task::Poll::Pending => std::task::Poll::Pending,
                }
            }
        }

        /// Tokio's write trait (feature `tokio-io`), as the futures-io impl; `shutdown`
        /// shuts the write half down.
        #[cfg(feature = "tokio-io")]
        impl ::tokio::io::AsyncWrite for $t {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                self.sock
                    .poll_transfer($crate::net::Interest::Write, cx, buf.len(), |_| {
                        self.sock.send_now(buf)
                    })
            }

            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(Ok(()))
            }

            fn poll_shutdown(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(self.sock.shutdown(std::net::Shutdown::Write))
            }
        }
    };
}
pub(crate) use impl_async_stream;

/// A stream socket that may be a simulated one (see `crate::sim`), whose transfers the world
/// performs: for the transports (`compat::hyper`) that otherwise call the kernel directly.
#[cfg_attr(not(feature = "hyper"), allow(dead_code))]
pub(crate) trait SimulatedStream {
    /// Whether the socket is a simulated one.
    fn is_simulated(&self) -> bool;
    /// A receive that does not wait, on a simulated socket.
    fn simulated_recv(&self, buf: &mut [u8]) -> std::io::Result<usize>;
    /// A send that does not wait, on a simulated socket.
    fn simulated_send(&self, buf: &[u8]) -> std::io::Result<usize>;
}
