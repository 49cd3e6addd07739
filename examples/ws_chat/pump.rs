//! One task reading and writing one WebSocket: the loop's building blocks, shared by the
//! server's connections and the load client.
//!
//! tungstenite's `WebSocket` holds the protocol state of both directions (a ping read must be
//! answered by a pong written; a close read must be answered before the socket closes), so it
//! cannot be split between a reader and a writer task. Instead the task that owns it runs the
//! socket non-blocking (`nb.rs`) and turns:
//!
//! 1. [`Pump::read`] until `None` (the socket has no more bytes: `WouldBlock`), handling each
//!    message; tungstenite queues the automatic pong and close replies itself;
//! 2. [`Pump::write`] queued messages into tungstenite's out-buffer (bounded), then
//!    [`Pump::flush`], which writes as much as the socket takes;
//! 3. [`Pump::wait`]: sleep until the socket is readable, writable (only while bytes are
//!    pending: otherwise a writable socket would wake it at once), something was queued
//!    (`notify`), the server shuts down (`stop`), or a deadline.
//!
//! Every turn ends with a yield, so that a busy connection shares its worker fairly. Each
//! wake-up re-runs the whole turn, so no event is handled out of order and none is lost:
//! readiness is only cleared by a `WouldBlock` (a wake-up that finds nothing is harmless).

use std::io;
use std::time::Instant;

use tungstenite::{Error, Message, WebSocket};
use zsync::net::Interest;
use zsync::sync::{Notify, ResetEvent};
use zsync::Io;

use crate::nb::{Maybe, Nb};

/// A WebSocket driven by one task over a non-blocking socket.
#[derive(Debug)]
pub struct Pump {
    /// The WebSocket (its stream is in non-blocking mode).
    pub ws: WebSocket<Nb>,
    /// Bytes are waiting in tungstenite's out-buffer for the socket to take them.
    pending_out: bool,
}

/// The result of a [`Pump::write`].
#[derive(Debug)]
pub enum Wrote {
    /// Buffered (and perhaps written out).
    Done,
    /// Buffered, but the socket is full: stop writing until it is writable.
    Blocked,
    /// tungstenite's out-buffer is full: the message comes back, to be retried after a flush.
    Full(Message),
}

impl Pump {
    /// Takes over `ws` and switches its socket to non-blocking mode.
    pub fn new(mut ws: WebSocket<Nb>) -> Pump {
        ws.get_mut().set_nonblocking();
        Pump {
            ws,
            pending_out: false,
        }
    }

    /// The next message if one is complete, `Ok(None)` if the socket has no more bytes now.
    /// `Err(ConnectionClosed)` once the close handshake is complete.
    pub fn read(&mut self) -> Result<Option<Message>, Error> {
        match self.ws.read() {
            Ok(m) => Ok(Some(m)),
            // A pong or close reply that did not fit stays in tungstenite's buffer, for the
            // flush that ends every turn.
            Err(Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Queues `msg` in tungstenite's out-buffer, writing out whatever the socket takes once
    /// the buffer passes its target size.
    pub fn write(&mut self, msg: Message) -> Result<Wrote, Error> {
        match self.ws.write(msg) {
            Ok(()) => {
                self.pending_out = true;
                Ok(Wrote::Done)
            }
            Err(Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                self.pending_out = true;
                Ok(Wrote::Blocked)
            }
            Err(Error::WriteBufferFull(m)) => {
                self.pending_out = true;
                Ok(Wrote::Full(*m))
            }
            Err(e) => Err(e),
        }
    }

    /// Writes out everything buffered, as far as the socket takes it. `Ok(true)` if all of it
    /// went out, `Ok(false)` if the socket is full (the rest is written after the next
    /// "writable").
    pub fn flush(&mut self) -> Result<bool, Error> {
        match self.ws.flush() {
            Ok(()) => {
                self.pending_out = false;
                Ok(true)
            }
            Err(Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                self.pending_out = true;
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Whether bytes wait for the socket to become writable.
    pub fn pending_out(&self) -> bool {
        self.pending_out
    }

    /// Waits until the socket is readable, or writable while bytes are pending, or `notify`
    /// is notified, or `stop` is set, or `deadline` passes. Cancellation point.
    pub fn wait(
        &self,
        io: &Io,
        notify: Option<&Notify>,
        stop: Option<&ResetEvent>,
        deadline: Option<Instant>,
    ) -> io::Result<()> {
        // A wait whose event is already there returns without parking: a connection whose
        // socket is always readable (a client that floods its room) would then keep its worker
        // from every other task on it. Each turn ends by giving the others their turn.
        io.yield_now();
        let nb = self.ws.get_ref();
        zsync::select!(io;
            r = nb.ready(Interest::Read) => r?,
            w = Maybe(self.pending_out.then(|| nb.ready(Interest::Write))) => w?,
            () = Maybe(notify.map(|n| n.notified_event())) => {},
            () = Maybe(stop.map(|s| s.wait_event())) => {},
            () = Maybe(deadline.map(zsync::select::sleep_until)) => {},
        )
    }
}

/// Whether `e` is the end of a connection rather than a failure: the close handshake
/// completed, or the peer went away (reset, broken pipe, end of stream without a close).
pub fn is_disconnect(e: &Error) -> bool {
    match e {
        Error::ConnectionClosed | Error::AlreadyClosed => true,
        Error::Protocol(tungstenite::error::ProtocolError::ResetWithoutClosingHandshake) => true,
        Error::Io(e) => matches!(
            e.kind(),
            io::ErrorKind::ConnectionReset
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::UnexpectedEof
        ),
        _ => false,
    }
}
