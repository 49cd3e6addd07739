//! The socket under a WebSocket: a zsync `TcpStream` that is blocking-style during the HTTP
//! handshake and non-blocking afterwards, plus the readiness events a connection waits on.
//!
//! tungstenite is written for both kinds of stream: on a non-blocking one, `read` returns
//! `WouldBlock` with the partial frame kept in its buffer, and `write`/`flush` keep unsent bytes
//! in its out-buffer. That is what lets one task both read and write one `WebSocket` (which
//! cannot be split): it reads until `WouldBlock`, writes until `WouldBlock`, then waits for
//! whichever of "readable", "writable" (only while bytes are pending) or "a message was queued"
//! comes first (see `pump.rs`).
//!
//! In non-blocking mode every read and write goes through [`TcpStream::try_io`], which runs one
//! plain `recv`/`send` on the descriptor and, on `WouldBlock`, clears the readiness that
//! [`Readiness`] waits for, so that the next wait sleeps until the kernel reports the socket ready
//! again.

use std::io::{self, Read, Write};
use std::task::{Context, Poll, Waker};

use socket2::SockRef;
use zsync::net::{Interest, TcpStream};
use zsync::Event;

/// A zsync `TcpStream` with a switch between blocking-style and non-blocking I/O.
#[derive(Debug)]
pub struct Nb {
    sock: TcpStream,
    nonblocking: bool,
}

impl Nb {
    /// Wraps `sock`, blocking-style (for the handshake) until [`set_nonblocking`](Self::set_nonblocking).
    pub fn new(sock: TcpStream) -> Nb {
        Nb {
            sock,
            nonblocking: false,
        }
    }

    /// Switches to non-blocking reads and writes (`WouldBlock` instead of waiting).
    pub fn set_nonblocking(&mut self) {
        self.nonblocking = true;
    }

    /// The socket.
    pub fn socket(&self) -> &TcpStream {
        &self.sock
    }

    /// An event that completes once the socket may be readable (`interest` = `Read`) or
    /// writable (`Write`).
    pub fn ready(&self, interest: Interest) -> Readiness<'_> {
        Readiness {
            sock: &self.sock,
            interest,
        }
    }
}

impl Read for Nb {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.nonblocking {
            return self.sock.read(buf);
        }
        let sock = &self.sock;
        sock.try_io(Interest::Read, || (&*SockRef::from(sock)).read(buf))
    }
}

impl Write for Nb {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !self.nonblocking {
            return self.sock.write(buf);
        }
        let sock = &self.sock;
        sock.try_io(Interest::Write, || {
            SockRef::from(sock).send_with_flags(buf, libc::MSG_NOSIGNAL)
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Completes when the socket may be ready for `interest` (or has an error or a hang-up: the
/// next read or write tells). Readiness is cleared only by a `WouldBlock` met in
/// [`Nb`]'s non-blocking reads and writes, so a wait never misses an event that arrived after
/// the last read.
#[derive(Debug)]
#[must_use = "an event does nothing until waited for"]
pub struct Readiness<'a> {
    sock: &'a TcpStream,
    interest: Interest,
}

impl Event for Readiness<'_> {
    type Output = io::Result<()>;

    fn poll_event(&mut self, waker: &Waker) -> Poll<io::Result<()>> {
        let mut cx = Context::from_waker(waker);
        match self.interest {
            Interest::Write => self.sock.poll_write_ready(&mut cx),
            Interest::Read => self.sock.poll_read_ready(&mut cx),
        }
    }
}

/// An optional event: `None` never completes, so a `select!` arm can be switched off.
#[derive(Debug)]
#[must_use = "an event does nothing until waited for"]
pub struct Maybe<E>(pub Option<E>);

impl<E: Event> Event for Maybe<E> {
    type Output = E::Output;

    fn poll_event(&mut self, waker: &Waker) -> Poll<E::Output> {
        match &mut self.0 {
            Some(e) => e.poll_event(waker),
            None => Poll::Pending,
        }
    }

    fn wake_at(&self) -> Option<std::time::Instant> {
        self.0.as_ref().and_then(|e| e.wake_at())
    }
}
