//! The chat client: the load generator of `--client`, and the clients of `tests/ws_chat.rs`.
//!
//! A client joins a room by path, sends `send` messages `interval` apart (each carrying its send
//! time, its sender and sequence number, and its room), reads everything the room delivers while
//! it sends, and records the delivery latency of each message. It then closes the connection
//! with a close handshake once it has `expect` messages or when `close_at` passes. Reading and
//! writing one WebSocket in one task works as on the server (`pump.rs`).
//!
//! Payload: `"<send time, µs since the Unix epoch> <client id> <seq> <room> <padding>"`: the
//! time is the wall clock, so a client in another process (the benchmark's) can measure it.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tungstenite::handshake::HandshakeError;
use tungstenite::protocol::frame::CloseFrame;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Error, Message, WebSocket};
use zsync::net::TcpStream;
use zsync::sync::{Barrier, ResetEvent};
use zsync::Io;

use crate::hist::Histogram;
use crate::nb::Nb;
use crate::pump::{is_disconnect, Pump, Wrote};

/// The wall clock in µs since the Unix epoch.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Connects to `addr` and upgrades to a WebSocket at `path` (`/room/<name>`, or `/`), with a
/// handshake bounded by `timeout`. `recv_buffer`: `SO_RCVBUF` before the upgrade, if set.
pub fn connect(
    io: &Io,
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
    recv_buffer: Option<usize>,
) -> io::Result<WebSocket<Nb>> {
    io.timeout(timeout, |io| {
        let sock = TcpStream::connect(io, addr)?;
        sock.set_nodelay(true)?;
        if let Some(n) = recv_buffer {
            sock.set_recv_buffer_size(n)?;
        }
        let url = format!("ws://{addr}{path}");
        let config = WebSocketConfig::default()
            .read_buffer_size(8 * 1024)
            .write_buffer_size(16 * 1024);
        match tungstenite::client::client_with_config(url.as_str(), Nb::new(sock), Some(config)) {
            Ok((ws, _response)) => Ok(ws),
            Err(HandshakeError::Failure(Error::Io(e))) => Err(e),
            Err(HandshakeError::Failure(e)) => Err(io::Error::other(e)),
            Err(HandshakeError::Interrupted(_)) => {
                Err(io::Error::new(io::ErrorKind::TimedOut, "handshake stalled"))
            }
        }
    })
}

/// What one client does.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The client's id (in its payloads).
    pub id: u32,
    /// Its room (joined by path).
    pub room: String,
    /// Messages to send.
    pub send: u64,
    /// Time between two sends (zero: as fast as the socket takes them).
    pub interval: Duration,
    /// Delay before the first send (spreads the clients' sends over the interval).
    pub offset: Duration,
    /// Padding added to each payload, in bytes.
    pub size: usize,
    /// Close once this many chat messages have arrived (and all were sent).
    pub expect: Option<u64>,
    /// Close at this time in any case.
    pub close_at: Instant,
    /// Keep every received (sender, seq, room) (for the tests).
    pub keep: bool,
    /// `SO_RCVBUF`, if set.
    pub recv_buffer: Option<usize>,
    /// Send at most this many messages ahead of the own messages that have come back (a
    /// sender that floods its room faster than the room reads is then held back), if set.
    pub window: Option<u64>,
}

/// What one client saw.
#[derive(Debug, Default)]
pub struct Report {
    /// Messages sent.
    pub sent: u64,
    /// Chat messages received.
    pub received: u64,
    /// Received messages, when [`Plan::keep`]: (sender id, seq, room).
    pub messages: Vec<(u32, u64, String)>,
    /// Server lines (`* ...`).
    pub notices: Vec<String>,
    /// The server's Close frame, if the server closed first.
    pub server_close: Option<CloseFrame>,
    /// The close handshake completed (either side first).
    pub clean_close: bool,
}

/// What the clients of one run share.
#[derive(Debug, Default)]
pub struct Shared {
    /// Delivery latencies, µs.
    pub latency: Histogram,
    /// Start sending together (after everyone has joined), if set.
    pub start: Option<Barrier>,
    /// Chat messages received so far by clients `0..floor.len()`: a sender with a
    /// [`Plan::window`] stays within the window of the slowest of them (empty: of its own
    /// messages that came back).
    pub floor: Vec<std::sync::atomic::AtomicU64>,
    /// When the start barrier opened (or the first client started).
    pub started: std::sync::OnceLock<Instant>,
}

/// Parses a chat payload: (send time µs, sender, seq, room).
pub fn parse(text: &str) -> Option<(u64, u32, u64, &str)> {
    let mut it = text.split(' ');
    let ts = it.next()?.parse().ok()?;
    let id = it.next()?.parse().ok()?;
    let seq = it.next()?.parse().ok()?;
    let room = it.next()?;
    Some((ts, id, seq, room))
}

/// Runs one client over `ws` (from [`connect`]) to its end. `read_gate`: the client does not
/// read until it is set (a slow consumer), if given.
pub fn run(
    io: &Io,
    ws: WebSocket<Nb>,
    plan: &Plan,
    shared: &Shared,
    read_gate: Option<&ResetEvent>,
) -> io::Result<Report> {
    let mut pump = Pump::new(ws);
    let mut report = Report::default();
    if let Some(b) = &shared.start {
        b.wait()?;
    }
    shared.started.get_or_init(Instant::now);
    let padding = "x".repeat(plan.size);
    let mut next_send = Instant::now() + plan.offset;
    let mut closing = false;
    let mut own_back = 0u64;
    loop {
        // Read what has arrived (unless gated).
        if read_gate.is_none_or(|g| g.is_set()) {
            loop {
                match pump.read() {
                    Ok(Some(Message::Text(t))) => {
                        if let Some(line) = t.as_str().strip_prefix("* ") {
                            report.notices.push(line.to_string());
                            continue;
                        }
                        let Some((ts, id, seq, room)) = parse(t.as_str()) else {
                            return Err(io::Error::other(format!("bad payload {t:?}")));
                        };
                        report.received += 1;
                        if let Some(f) = shared.floor.get(plan.id as usize) {
                            f.store(report.received, std::sync::atomic::Ordering::Relaxed);
                        }
                        if id == plan.id {
                            own_back += 1;
                        }
                        shared.latency.record(now_us().saturating_sub(ts));
                        if plan.keep {
                            report.messages.push((id, seq, room.to_string()));
                        }
                    }
                    Ok(Some(Message::Close(frame))) => {
                        if !closing {
                            report.server_close = frame;
                        }
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(Error::ConnectionClosed) => {
                        report.clean_close = true;
                        return Ok(report);
                    }
                    Err(e) if is_disconnect(&e) => return Ok(report),
                    Err(Error::Io(e)) => return Err(e),
                    Err(e) => return Err(io::Error::other(e)),
                }
            }
        }
        let now = Instant::now();
        let floor = match shared
            .floor
            .iter()
            .map(|f| f.load(std::sync::atomic::Ordering::Relaxed))
            .min()
        {
            Some(least) => least,
            None => own_back,
        };
        let window_shut = plan.window.is_some_and(|w| report.sent >= floor + w);
        // Send what is due.
        if !closing && pump.ws.can_write() {
            while report.sent < plan.send
                && next_send <= now
                && !pump.pending_out()
                && plan.window.is_none_or(|w| report.sent < floor + w)
            {
                let text = format!(
                    "{} {} {} {} {padding}",
                    now_us(),
                    plan.id,
                    report.sent,
                    plan.room
                );
                match pump.write(Message::text(text)) {
                    Ok(Wrote::Done) => {}
                    Ok(Wrote::Blocked) => {}
                    Ok(Wrote::Full(_)) => break,
                    Err(e) if is_disconnect(&e) => return Ok(report),
                    Err(e) => return Err(io::Error::other(e)),
                }
                report.sent += 1;
                next_send += plan.interval;
                if plan.interval.is_zero() {
                    break; // one per turn: reading keeps pace
                }
            }
            let done =
                report.sent >= plan.send && plan.expect.is_some_and(|n| report.received >= n);
            if done || now >= plan.close_at {
                closing = true;
                match pump.ws.close(None) {
                    Ok(()) => {}
                    Err(Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if is_disconnect(&e) => return Ok(report),
                    Err(e) => return Err(io::Error::other(e)),
                }
            }
        }
        match pump.flush() {
            Ok(_) => {}
            Err(Error::ConnectionClosed) => {
                report.clean_close = true;
                return Ok(report);
            }
            Err(e) if is_disconnect(&e) => return Ok(report),
            Err(e) => return Err(io::Error::other(e)),
        }
        if closing && Instant::now() >= plan.close_at + Duration::from_secs(10) {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "no close reply"));
        }
        let deadline = if closing {
            plan.close_at + Duration::from_secs(10)
        } else if report.sent < plan.send && window_shut && !shared.floor.is_empty() {
            // Waiting for other clients' progress, which nothing here signals: look again soon.
            now + Duration::from_millis(1)
        } else if report.sent < plan.send {
            next_send.min(plan.close_at)
        } else {
            plan.close_at
        };
        match read_gate.filter(|g| !g.is_set()) {
            // Not reading: wait for the gate (or the next send) only.
            Some(gate) if !pump.pending_out() => zsync::select!(io;
                () = gate.wait_event() => {},
                () = zsync::select::sleep_until(deadline) => {},
            )?,
            _ => pump.wait(io, None, None, Some(deadline))?,
        }
    }
}

/// Runs `clients` clients as tasks of `io` and returns their reports, in id order. Each client
/// is `(plan, gate)`; errors are per client.
pub fn run_all(
    io: &Io,
    addr: SocketAddr,
    clients: Vec<(Plan, Option<Arc<ResetEvent>>)>,
    shared: Arc<Shared>,
) -> Vec<io::Result<Report>> {
    let mut tasks = Vec::with_capacity(clients.len());
    for (plan, gate) in clients {
        let shared = shared.clone();
        let task = io.task().name("ws-client").spawn(move |io| {
            let path = format!("/room/{}", plan.room);
            let ws = connect(io, addr, &path, Duration::from_secs(20), plan.recv_buffer)?;
            run(io, ws, &plan, &shared, gate.as_deref())
        });
        tasks.push(task);
    }
    tasks
        .into_iter()
        .map(|t| {
            t.join()
                .unwrap_or_else(|e| Err(io::Error::other(format!("{e:?}"))))
        })
        .collect()
}
