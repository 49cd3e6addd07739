//! Networking: TCP, UDP and Unix-domain sockets.
//!
//! Every type remembers the [`Io`](crate::Io) it was created with, implements the std traits
//! its std counterpart implements (`Read`/`Write` for streams), converts from and into the std
//! type, and exposes its descriptor (`AsFd`, `AsRawFd`). Every operation that can wait is a
//! cancellation point.
//!
//! Timeouts behave as std's: a socket's read or write timeout (`set_read_timeout`,
//! `set_write_timeout`) that expires fails the operation with
//! [`WouldBlock`](std::io::ErrorKind::WouldBlock) (`EAGAIN`), as an expired `SO_RCVTIMEO` does
//! on Unix; the task's deadline ([`Io::with_deadline`](crate::Io::with_deadline)) fails it with
//! `TimedOut` ([`is_timed_out`](crate::is_timed_out)). With both, the one that passes first
//! decides.

/// `AsFd`, `AsRawFd`, `IntoRawFd` and `From<T> for OwnedFd` for a zsync socket type, through the
/// std socket it wraps (its `inner` field).
macro_rules! impl_fd_traits {
    ($t:ty) => {
        impl std::os::fd::AsFd for $t {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                std::os::fd::AsFd::as_fd(&self.inner)
            }
        }

        impl std::os::fd::AsRawFd for $t {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                std::os::fd::AsRawFd::as_raw_fd(&self.inner)
            }
        }

        impl std::os::fd::IntoRawFd for $t {
            fn into_raw_fd(self) -> std::os::fd::RawFd {
                std::os::fd::IntoRawFd::into_raw_fd(self.inner)
            }
        }

        impl From<$t> for std::os::fd::OwnedFd {
            fn from(s: $t) -> std::os::fd::OwnedFd {
                s.inner.into()
            }
        }
    };
}
pub(crate) use impl_fd_traits;

/// `Read` and `Write` for a zsync stream type and for `&` it, through its `read_inner`,
/// `read_vectored_inner`, `write_inner` and `write_vectored_inner` (the cancellation points).
/// `flush` has nothing to do: streams do not buffer.
macro_rules! impl_stream_io {
    ($t:ty) => {
        impl std::io::Read for $t {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                self.read_inner(buf)
            }
            fn read_vectored(
                &mut self,
                bufs: &mut [std::io::IoSliceMut<'_>],
            ) -> std::io::Result<usize> {
                self.read_vectored_inner(bufs)
            }
        }

        impl std::io::Read for &$t {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                self.read_inner(buf)
            }
            fn read_vectored(
                &mut self,
                bufs: &mut [std::io::IoSliceMut<'_>],
            ) -> std::io::Result<usize> {
                self.read_vectored_inner(bufs)
            }
        }

        impl std::io::Write for $t {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.write_inner(buf)
            }
            fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
                self.write_vectored_inner(bufs)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }

        impl std::io::Write for &$t {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.write_inner(buf)
            }
            fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
                self.write_vectored_inner(bufs)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
    };
}
pub(crate) use impl_stream_io;

mod addr;
mod tcp;
pub(crate) mod timeout;
mod udp;
mod unix;

pub use addr::{resolve, ToSocketAddrs};
pub use tcp::{ListenOptions, TcpListener, TcpStream};
pub use udp::UdpSocket;
pub use unix::{UnixDatagram, UnixListener, UnixStream};
