//! One chat connection on the server: the handshake (joining a room by path), then one task
//! that reads the client's messages and broadcasts them to its room, and drains the client's
//! outbox into the socket (see `pump.rs` for why one task does both).
//!
//! Closing, every way it happens:
//! - the client closes: tungstenite answers its Close frame; the next read reports the
//!   handshake complete and the task returns (the server closes the TCP connection first,
//!   as RFC 6455 asks);
//! - the server closes (shutdown: 1001, after the messages already queued for the client; the client's outbox overflowed under `disconnect`:
//!   1008 or 1013; idle: 1001; binary message: 1003; a bad room: 1008): the task sends Close,
//!   stops taking messages from its outbox, and keeps reading until the client's Close arrives,
//!   or `close_timeout` passes;
//! - the client breaks the protocol (oversized message: 1009; invalid UTF-8: 1007; anything
//!   else: 1002): the rest of the stream cannot be trusted, so the task sends Close, shuts the
//!   socket's write side, and discards what the client still sends until it hangs up (so that
//!   the kernel does not answer unread bytes with a reset that would destroy the Close frame).

use std::collections::VecDeque;
use std::io::{self, Read};
use std::net::Shutdown;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::handshake::HandshakeError;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::frame::CloseFrame;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Error, Message};
use zsync::net::{Interest, TcpStream};
use zsync::sync::ResetEvent;
use zsync::Io;

use crate::nb::Nb;
use crate::outbox::{Outbox, Policy};
use crate::pump::{is_disconnect, Pump, Wrote};
use crate::rooms::{valid_room_name, Membership, Rooms};

/// The server's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Messages each client's outbox holds before its policy applies.
    pub queue: usize,
    /// What a full outbox does.
    pub policy: Policy,
    /// The largest message (and frame) a client may send, in bytes.
    pub max_message: usize,
    /// How often the server pings each client.
    pub ping_interval: Duration,
    /// A client heard from neither by message nor by pong for this long is closed.
    pub idle_timeout: Duration,
    /// How long the HTTP upgrade may take.
    pub handshake_timeout: Duration,
    /// How long the server waits for the client's Close after sending its own.
    pub close_timeout: Duration,
    /// `SO_SNDBUF` for each connection, if set (small values make slow clients show sooner).
    pub send_buffer: Option<usize>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            queue: 256,
            policy: Policy::DropOldest,
            max_message: 64 * 1024,
            ping_interval: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(90),
            handshake_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(5),
            send_buffer: None,
        }
    }
}

impl Config {
    /// tungstenite's settings for a server connection.
    pub fn websocket(&self) -> WebSocketConfig {
        let write_target = 64 * 1024;
        WebSocketConfig::default()
            .read_buffer_size(8 * 1024)
            .write_buffer_size(write_target)
            // A write that takes the buffer past the target meets the full socket and stops
            // the turn, so the buffer holds at most the target plus one message before a write
            // and plus two after it: with that much room, a message or the Close frame always
            // fits, and the rest waits in the outbox, where the policy applies.
            .max_write_buffer_size(write_target + 2 * self.max_message + 1024)
            .max_message_size(Some(self.max_message))
            .max_frame_size(Some(self.max_message))
    }
}

/// What the server's connections share.
#[derive(Debug)]
pub struct Shared {
    /// The settings.
    pub config: Config,
    /// The rooms.
    pub rooms: Arc<Rooms>,
    /// Set to shut down: every connection closes with 1001.
    pub stop: ResetEvent,
    /// Connections past the handshake and not yet ended.
    pub live: AtomicUsize,
    /// Messages received from clients.
    pub received: AtomicU64,
    /// Connections closed by the outbox policy.
    pub overflow_closes: AtomicU64,
    /// Connections whose client did not answer the server's Close in time.
    pub close_timeouts: AtomicU64,
}

impl Shared {
    /// A server's shared state.
    pub fn new(config: Config) -> Arc<Shared> {
        Arc::new(Shared {
            config,
            rooms: Rooms::new(),
            stop: ResetEvent::new(),
            live: AtomicUsize::new(0),
            received: AtomicU64::new(0),
            overflow_closes: AtomicU64::new(0),
            close_timeouts: AtomicU64::new(0),
        })
    }
}

/// The room a request path asks for: `/room/<name>` joins at once, `/` joins by the first
/// message.
fn room_of_path(path: &str) -> Result<Option<&str>, ()> {
    match path {
        "/" => Ok(None),
        _ => match path.strip_prefix("/room/") {
            Some(name) if valid_room_name(name) => Ok(Some(name)),
            _ => Err(()),
        },
    }
}

/// A close frame.
fn close_frame(code: CloseCode, reason: &'static str) -> Option<CloseFrame> {
    Some(CloseFrame {
        code,
        reason: reason.into(),
    })
}

/// Serves one connection until it closes. Errors are the connection's own (reset, timeout,
/// handshake refused); the caller counts them.
// The handshake callback's `Result<Response, ErrorResponse>` is tungstenite's signature.
#[allow(clippy::result_large_err)]
pub fn serve(io: &Io, sock: TcpStream, shared: &Shared) -> io::Result<()> {
    let cfg = &shared.config;
    sock.set_nodelay(true)?;
    if let Some(n) = cfg.send_buffer {
        sock.set_send_buffer_size(n)?;
    }
    let outbox = Arc::new(Outbox::new(cfg.queue, cfg.policy));
    let mut member: Option<Membership> = None;
    // Joined inside the handshake, before the 101 response is written: once the client has
    // the response, it is in the room and gets every message broadcast after that.
    let on_request = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        match room_of_path(req.uri().path()) {
            Ok(Some(name)) => {
                member = Some(shared.rooms.join(name, outbox.clone()));
                Ok(resp)
            }
            Ok(None) => Ok(resp),
            Err(()) => {
                let mut not_found = ErrorResponse::new(Some("no such room path\n".into()));
                *not_found.status_mut() = tungstenite::http::StatusCode::NOT_FOUND;
                Err(not_found)
            }
        }
    };
    let ws = io.timeout(cfg.handshake_timeout, |_| {
        tungstenite::accept_hdr_with_config(Nb::new(sock), on_request, Some(cfg.websocket()))
            .map_err(|e| match e {
                HandshakeError::Failure(e) => to_io(e),
                HandshakeError::Interrupted(_) => {
                    io::Error::new(io::ErrorKind::TimedOut, "handshake stalled")
                }
            })
    })?;
    shared.live.fetch_add(1, Ordering::Relaxed);
    let r = Session {
        pump: Pump::new(ws),
        shared,
        outbox: &outbox,
        member,
        closing: None,
    }
    .run(io);
    shared.live.fetch_sub(1, Ordering::Relaxed);
    r
}

/// A tungstenite error as an I/O error.
fn to_io(e: Error) -> io::Error {
    match e {
        Error::Io(e) => e,
        e => io::Error::other(e),
    }
}

/// A connection past its handshake.
struct Session<'a> {
    pump: Pump,
    shared: &'a Shared,
    outbox: &'a Arc<Outbox>,
    member: Option<Membership>,
    /// Set once the server has sent Close: the deadline for the client's reply.
    closing: Option<Instant>,
}

/// How a turn of reading ended.
enum Next {
    /// Go on.
    Continue,
    /// The connection is over (close handshake complete, or the peer went away).
    Done,
    /// The client broke the protocol: close with this code and drop the connection.
    Fail(CloseCode, &'static str),
}

impl Session<'_> {
    fn run(mut self, io: &Io) -> io::Result<()> {
        let cfg = &self.shared.config;
        let mut batch = VecDeque::new();
        let mut last_heard = Instant::now();
        let mut next_ping = last_heard + cfg.ping_interval;
        loop {
            // 1. Everything the client has sent.
            match self.read_all(&mut last_heard) {
                Next::Continue => {}
                Next::Done => return Ok(()),
                Next::Fail(code, why) => return self.fail(io, code, why),
            }
            // 2. The outbox, while the connection is open; a shutdown, an overflow, an idle
            //    client or a due ping.
            let mut more = false;
            // Read once per turn: the wait below listens for the stop switch unless this turn
            // saw it set, so a `set` landing in between still wakes the next wait.
            let stopping = self.shared.stop.is_set();
            if self.pump.ws.can_write() {
                let now = Instant::now();
                if now.duration_since(last_heard) >= cfg.idle_timeout {
                    self.close(CloseCode::Away, "idle")?;
                } else if self.outbox.drain_into(&mut batch, usize::MAX) {
                    self.shared.overflow_closes.fetch_add(1, Ordering::Relaxed);
                    let code = self
                        .outbox
                        .policy()
                        .close_code()
                        .unwrap_or(CloseCode::Policy);
                    self.close(code, "too slow: outbound queue overflowed")?;
                } else {
                    if now >= next_ping && !stopping {
                        batch.push_front(Message::Ping(Default::default()));
                        next_ping = now + cfg.ping_interval;
                    }
                    while let Some(m) = batch.pop_front() {
                        match self.pump.write(m) {
                            Ok(Wrote::Done) => {}
                            Ok(Wrote::Blocked) => break,
                            Ok(Wrote::Full(m)) => {
                                batch.push_front(m);
                                more = true;
                                break;
                            }
                            Err(e) if is_disconnect(&e) => return Ok(()),
                            Err(e) => return Err(to_io(e)),
                        }
                    }
                    batch.retain(|m| !m.is_ping());
                    self.outbox.unget(&mut batch);
                    if stopping && !self.outbox.has_queued() {
                        // What was queued before the shutdown is in the WebSocket's buffer,
                        // ahead of the Close frame.
                        self.close(CloseCode::Away, "server shutting down")?;
                    }
                }
            }
            // 3. Out to the socket, as far as it takes it.
            match self.pump.flush() {
                Ok(true) if more => continue, // room again for what did not fit
                Ok(_) => {}
                Err(e) if is_disconnect(&e) => return Ok(()),
                Err(e) => return Err(to_io(e)),
            }
            // 4. Wait.
            let open = self.pump.ws.can_write();
            let deadline = match self.closing {
                Some(t) if Instant::now() >= t => {
                    self.shared.close_timeouts.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                Some(t) => t,
                None => next_ping.min(last_heard + cfg.idle_timeout),
            };
            self.pump.wait(
                io,
                open.then_some(&self.outbox.notify),
                // Once seen set, the stop switch would wake every wait: leave it out.
                (open && !stopping).then_some(&self.shared.stop),
                Some(deadline),
            )?;
        }
    }

    /// Reads every complete message; broadcasts text, joins a room by the first message.
    fn read_all(&mut self, last_heard: &mut Instant) -> Next {
        loop {
            let msg = match self.pump.read() {
                Ok(Some(m)) => m,
                Ok(None) => return Next::Continue,
                Err(e) if is_disconnect(&e) => return Next::Done,
                Err(Error::Capacity(_)) => return Next::Fail(CloseCode::Size, "message too big"),
                Err(Error::Utf8(_)) => return Next::Fail(CloseCode::Invalid, "invalid UTF-8"),
                Err(_) => return Next::Fail(CloseCode::Protocol, "protocol error"),
            };
            *last_heard = Instant::now();
            match msg {
                Message::Text(text) => {
                    self.shared.received.fetch_add(1, Ordering::Relaxed);
                    if !self.pump.ws.can_write() {
                        continue; // closing: no more broadcasts from this client
                    }
                    match &self.member {
                        Some(m) => {
                            m.broadcast(&Message::Text(text));
                        }
                        None => {
                            let name = text.as_str().trim();
                            if !valid_room_name(name) {
                                if self.close(CloseCode::Policy, "invalid room name").is_err() {
                                    return Next::Done;
                                }
                                continue;
                            }
                            self.member = Some(self.shared.rooms.join(name, self.outbox.clone()));
                            self.outbox.push(Message::text(format!("* joined {name}")));
                        }
                    }
                }
                Message::Binary(_) => {
                    if self
                        .close(CloseCode::Unsupported, "text messages only")
                        .is_err()
                    {
                        return Next::Done;
                    }
                }
                // The client's Close: tungstenite has queued the reply. Leave the room now.
                Message::Close(_) => self.member = None,
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
            }
        }
    }

    /// Starts the server's side of the close handshake (once): leaves the room, sends Close.
    fn close(&mut self, code: CloseCode, reason: &'static str) -> io::Result<()> {
        if self.closing.is_some() || !self.pump.ws.can_write() {
            return Ok(());
        }
        self.member = None;
        self.closing = Some(Instant::now() + self.shared.config.close_timeout);
        match self.pump.ws.close(close_frame(code, reason)) {
            Ok(()) => Ok(()),
            Err(Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(e) if is_disconnect(&e) => Ok(()),
            Err(e) => Err(to_io(e)),
        }
    }

    /// Closes after a protocol error: Close frame, write side shut, the client's further
    /// bytes discarded until it hangs up or `close_timeout` passes.
    fn fail(mut self, io: &Io, code: CloseCode, reason: &'static str) -> io::Result<()> {
        self.member = None;
        let deadline = Instant::now() + self.shared.config.close_timeout;
        let _ = self.pump.ws.close(close_frame(code, reason));
        // Flush what fits; wait for room until the deadline.
        loop {
            match self.pump.flush() {
                Ok(true) => break,
                Ok(false) if Instant::now() < deadline => {
                    self.pump.wait(io, None, None, Some(deadline))?;
                }
                _ => return Ok(()),
            }
        }
        let nb = self.pump.ws.get_mut();
        nb.socket().shutdown(Shutdown::Write)?;
        let mut sink = [0u8; 4096];
        while Instant::now() < deadline {
            match nb.read(&mut sink) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    zsync::select!(io;
                        r = nb.ready(Interest::Read) => r?,
                        () = zsync::select::sleep_until(deadline) => {},
                    )?;
                }
                Err(_) => break,
            }
        }
        Ok(())
    }
}
