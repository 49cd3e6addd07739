//! The public methods and trait impls the socket types share, written once.
//!
//! Each socket type is a struct with one field, `sock`, a [`Socket`](super::socket::Socket)
//! over its std counterpart; these macros give it the shared public surface as thin methods
//! over that core, each with its docs. A type invokes the ones that apply to it:
//!
//! | macro | what | types |
//! |---|---|---|
//! | [`impl_socket!`] | `from_std`, `try_clone`, `into_std`, `io`, `local_addr`, `take_error`, `Debug`, and the descriptor traits ([`impl_fd_traits!`]) | all six |
//! | [`impl_timeouts!`] | `set_read_timeout`, `set_write_timeout`, `read_timeout`, `write_timeout` | the four that transfer data |
//! | [`impl_stream_io!`] | `Read` and `Write` for the type and for `&` it | `TcpStream`, `UnixStream` |
//! | [`impl_ttl!`] | `set_ttl`, `ttl` | the three IP types |

/// `AsFd`, `AsRawFd`, `IntoRawFd` and `From<T> for OwnedFd` for a type, through its field
/// `$field` (`inner` unless named), which must be `AsFd` and convert into an `OwnedFd`. The
/// socket types and the pipe ends use it.
macro_rules! impl_fd_traits {
    ($t:ty) => {
        $crate::net::impl_fd_traits!($t, inner);
    };
    ($t:ty, $field:ident) => {
        impl std::os::fd::AsFd for $t {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                std::os::fd::AsFd::as_fd(&self.$field)
            }
        }

        impl std::os::fd::AsRawFd for $t {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                std::os::fd::AsRawFd::as_raw_fd(&std::os::fd::AsFd::as_fd(&self.$field))
            }
        }

        impl std::os::fd::IntoRawFd for $t {
            fn into_raw_fd(self) -> std::os::fd::RawFd {
                std::os::fd::IntoRawFd::into_raw_fd(std::os::fd::OwnedFd::from(self.$field))
            }
        }

        impl From<$t> for std::os::fd::OwnedFd {
            fn from(s: $t) -> std::os::fd::OwnedFd {
                s.$field.into()
            }
        }
    };
}
pub(crate) use impl_fd_traits;

/// The methods and trait impls every socket type has: `impl_socket!(Type, StdType, Addr,
/// "noun")`, with `, peer_addr` last for a type whose `Debug` shows its peer.
macro_rules! impl_socket {
    ($t:ident, $std:ty, $addr:ty, $noun:literal $(, $peer:ident)?) => {
        impl $t {
            #[doc = concat!("Wraps a std ", $noun, " (switching it to non-blocking mode).")]
            pub fn from_std(io: &$crate::Io, socket: $std) -> std::io::Result<$t> {
                Ok($t {
                    sock: $crate::net::socket::Socket::from_std(io, socket)?,
                })
            }

            /// Creates a second handle to the same socket (`dup`), like std's `try_clone`. The
            /// clone shares the socket (and its non-blocking mode) and starts with this handle's
            /// read and write timeouts, where it has them.
            pub fn try_clone(&self) -> std::io::Result<$t> {
                Ok($t {
                    sock: self.sock.try_clone()?,
                })
            }

            #[doc = concat!("Unwraps into a std ", $noun, " in blocking mode.")]
            pub fn into_std(self) -> std::io::Result<$std> {
                self.sock.into_std()
            }

            #[doc = concat!("The `Io` this ", $noun, " was created with.")]
            pub fn io(&self) -> &$crate::Io {
                self.sock.io()
            }

            /// The local address (the one the socket is bound to).
            pub fn local_addr(&self) -> std::io::Result<$addr> {
                self.sock.address(false, |s| s.local_addr())
            }

            /// Takes the pending socket error (`SO_ERROR`), if any.
            pub fn take_error(&self) -> std::io::Result<Option<std::io::Error>> {
                self.sock.take_error()
            }
        }

        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($t))
                    .field("local", &self.sock.address(false, |s| s.local_addr()).ok())
                    $(.field("peer", &self.sock.address(true, |s| s.$peer()).ok()))?
                    .field("fd", &std::os::fd::AsRawFd::as_raw_fd(self))
                    .finish()
            }
        }

        $crate::net::impl_fd_traits!($t, sock);
    };
}
pub(crate) use impl_socket;

/// The read and write timeouts of a socket that transfers data: `impl_timeouts!(Type, "reads",
/// "writes")` (the nouns of its operations), then optionally doc attributes (an example)
/// appended to `set_read_timeout`'s docs.
macro_rules! impl_timeouts {
    ($t:ident, $reads:literal, $writes:literal $(, $(#[$extra:meta])+)? $(,)?) => {
        impl $t {
            #[doc = concat!("Makes ", $reads, " that wait longer than `timeout` fail with")]
            /// [`WouldBlock`](std::io::ErrorKind::WouldBlock) (`EAGAIN`), as std's sockets report
            /// an expired `SO_RCVTIMEO` on Unix (`None`: wait forever). Each wait gets the whole
            /// `timeout`.
            ///
            /// The task's deadline ([`Io::timeout_until`](crate::Io::timeout_until),
            /// [`Io::timeout`](crate::Io::timeout)) still ends the operation with `TimedOut`;
            /// when both apply, the one that passes first gives its kind.
            ///
            /// Errors: `InvalidInput` for a zero duration, as std.
            $($(#[$extra])+)?
            pub fn set_read_timeout(&self, timeout: Option<std::time::Duration>) -> std::io::Result<()> {
                self.sock.set_read_timeout(timeout)
            }

            #[doc = concat!("Makes ", $writes, " that wait longer than `timeout` fail with")]
            /// [`WouldBlock`](std::io::ErrorKind::WouldBlock) (`EAGAIN`), as std's sockets report
            /// an expired `SO_SNDTIMEO` on Unix (`None`: wait forever). Each wait gets the whole
            /// `timeout`.
            ///
            /// The task's deadline ([`Io::timeout_until`](crate::Io::timeout_until),
            /// [`Io::timeout`](crate::Io::timeout)) still ends the operation with `TimedOut`;
            /// when both apply, the one that passes first gives its kind.
            ///
            /// Errors: `InvalidInput` for a zero duration, as std.
            pub fn set_write_timeout(&self, timeout: Option<std::time::Duration>) -> std::io::Result<()> {
                self.sock.set_write_timeout(timeout)
            }

            /// The read timeout.
            pub fn read_timeout(&self) -> Option<std::time::Duration> {
                self.sock.read_timeout()
            }

            /// The write timeout.
            pub fn write_timeout(&self) -> Option<std::time::Duration> {
                self.sock.write_timeout()
            }
        }
    };
}
pub(crate) use impl_timeouts;

/// `Read` and `Write` for a stream type and for `&` it, through the core's `recv`,
/// `recv_vectored`, `send` and `send_vectored` (the cancellation points; every write with
/// `MSG_NOSIGNAL`). `flush` has nothing to do: streams do not buffer.
macro_rules! impl_stream_io {
    ($t:ty) => {
        $crate::net::methods::impl_stream_io!(@for $t);
        $crate::net::methods::impl_stream_io!(@for &$t);
    };
    (@for $t:ty) => {
        impl std::io::Read for $t {
            #[track_caller]
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                self.sock.recv(buf)
            }
            #[track_caller]
            fn read_vectored(
                &mut self,
                bufs: &mut [std::io::IoSliceMut<'_>],
            ) -> std::io::Result<usize> {
                self.sock.recv_vectored(bufs)
            }
        }

        impl std::io::Write for $t {
            #[track_caller]
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.sock.send(buf)
            }
            #[track_caller]
            fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
                self.sock.send_vectored(bufs)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
    };
}
pub(crate) use impl_stream_io;

/// `set_ttl` and `ttl` of an IP socket type (through its std socket).
macro_rules! impl_ttl {
    ($t:ident, $what:literal) => {
        impl $t {
            #[doc = concat!("Sets the IP time-to-live of ", $what, ".")]
            pub fn set_ttl(&self, ttl: u32) -> std::io::Result<()> {
                self.sock.get().set_ttl(ttl)
            }

            /// The IP time-to-live.
            pub fn ttl(&self) -> std::io::Result<u32> {
                self.sock.get().ttl()
            }
        }
    };
}
pub(crate) use impl_ttl;
