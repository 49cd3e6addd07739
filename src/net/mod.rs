//! Networking: TCP, UDP and Unix-domain sockets.
//!
//! Every type remembers the [`Io`](crate::Io) it was created with, implements the std traits
//! its std counterpart implements (`Read`/`Write` for streams), converts from and into the std
//! type, and exposes its descriptor (`AsFd`, `AsRawFd`). Every operation that can wait is a
//! cancellation point.

mod addr;
mod tcp;
mod timeout;
mod udp;
mod unix;

pub use addr::{resolve, ToSocketAddrs};
pub use tcp::{ListenOptions, TcpListener, TcpStream};
pub use udp::UdpSocket;
pub use unix::{UnixDatagram, UnixListener, UnixStream};
