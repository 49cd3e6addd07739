//! The WebSocket chat example (`examples/ws_chat/`), tested in-process: the example's own
//! modules are included with `#[path]`, a server runs on a Green runtime of its own (Auto
//! backend: io_uring where the kernel allows it, epoll elsewhere) on a thread, and the clients
//! are fibers of a second Green runtime.
//!
//! - 1,000 clients in 20 rooms: every message reaches every member of its room exactly once,
//!   in order per sender, and nobody else; every client closes with a clean handshake.
//! - Slow consumers (clients that stop reading) under each policy: the others in the room get
//!   every message; the slow one loses the oldest or the newest, or is closed with 1008/1013.
//! - Server shutdown (1001 to everyone, clean handshakes), oversized messages (1009), binary
//!   messages (1003), joining by first message, bad paths, server pings.
//!
//! Every wait is bounded: a watchdog fails a test that has not finished after 120 s.

#[path = "../examples/ws_chat/client.rs"]
mod client;
#[path = "../examples/common/mod.rs"]
mod common;
#[path = "../examples/ws_chat/conn.rs"]
mod conn;
#[path = "../examples/ws_chat/hist.rs"]
mod hist;
#[path = "../examples/ws_chat/nb.rs"]
mod nb;
#[path = "../examples/ws_chat/outbox.rs"]
mod outbox;
#[path = "../examples/ws_chat/pump.rs"]
mod pump;
#[path = "../examples/ws_chat/rooms.rs"]
mod rooms;
#[path = "../examples/ws_chat/server.rs"]
mod server;

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::server::Control;
use conn::{Config, Shared};
use outbox::Policy;
use tungstenite::Message;
use zsync::net::TcpListener;
use zsync::sync::{Barrier, ResetEvent};
use zsync::{Backend, Builder, Io, Model};

/// How long a whole test may run.
const WATCHDOG: Duration = Duration::from_secs(120);

/// Runs `f` on a thread and fails if it has not returned within [`WATCHDOG`].
fn with_watchdog<T: Send + 'static>(name: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let t = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .unwrap();
    match rx.recv_timeout(WATCHDOG) {
        Ok(v) => {
            t.join().unwrap();
            v
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => match t.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the thread sends before it returns"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{name}: still running after {WATCHDOG:?}"),
    }
}

/// Raises the soft descriptor limit to the hard one (1,000 clients and their server sides
/// need over 2,000 descriptors; the default soft limit is often 1,024).
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 && lim.rlim_cur < lim.rlim_max
    {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: `lim` is a valid rlimit read by the call only.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    }
}

/// A chat server running on a thread of its own.
struct TestServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    ctl: Arc<Control>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl TestServer {
    fn start(config: Config) -> TestServer {
        let shared = Shared::new(config);
        let ctl = Control::new(false);
        let (tx, rx) = mpsc::channel();
        let (s, c) = (shared.clone(), ctl.clone());
        let thread = std::thread::spawn(move || {
            Builder::new(Model::Green)
                .worker_threads(2)
                .backend(Backend::Auto)
                .run(|io| {
                    let listener = TcpListener::bind(io, "127.0.0.1:0")?;
                    tx.send(listener.local_addr()?).unwrap();
                    server::serve(io, &listener, &s, &c)
                })
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("server started");
        TestServer {
            addr,
            shared,
            ctl,
            thread: Some(thread),
        }
    }

    /// Graceful shutdown; returns the connections still open after the grace period.
    fn shutdown(&mut self) -> usize {
        let left = server::shutdown(
            &self.shared,
            &self.ctl,
            self.addr,
            Duration::from_secs(30),
            std::thread::sleep,
        );
        if let Some(t) = self.thread.take() {
            t.join().unwrap().unwrap();
        }
        left
    }

    /// Waits (bounded) until every room is empty, as after every client has left.
    fn wait_rooms_empty(&self) {
        let end = Instant::now() + Duration::from_secs(30);
        while self.shared.rooms.len() > 0 {
            assert!(Instant::now() < end, "rooms not emptied after clients left");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.shutdown();
        }
    }
}

/// A Green runtime for the clients.
fn clients_rt() -> Builder {
    Builder::new(Model::Green)
        .worker_threads(2)
        .backend(Backend::Auto)
}

fn plan(id: u32, room: &str, send: u64, expect: Option<u64>) -> client::Plan {
    client::Plan {
        id,
        room: room.to_string(),
        send,
        interval: Duration::ZERO,
        offset: Duration::ZERO,
        size: 16,
        expect,
        close_at: Instant::now() + Duration::from_secs(90),
        keep: true,
        recv_buffer: None,
        window: None,
    }
}

#[test]
fn thousand_clients_in_rooms_each_message_reaches_its_room_exactly_once() {
    raise_fd_limit();
    with_watchdog("thousand", || {
        const CLIENTS: u32 = 1_000;
        const ROOMS: u32 = 20;
        const SEND: u64 = 10;
        let per_room = u64::from(CLIENTS / ROOMS);
        let server = TestServer::start(Config {
            queue: 1024, // room for every message of the room: no client may lose one
            policy: Policy::DropNewest,
            ..Config::default()
        });
        let room_of = |id: u32| format!("room-{}", id % ROOMS);
        let clients = (0..CLIENTS)
            .map(|id| (plan(id, &room_of(id), SEND, Some(per_room * SEND)), None))
            .collect();
        let shared = Arc::new(client::Shared {
            start: Some(Barrier::new(CLIENTS as usize)),
            ..client::Shared::default()
        });
        let addr = server.addr;
        let reports = clients_rt()
            .run(move |io| client::run_all(io, addr, clients, shared))
            .into_iter()
            .enumerate();
        for (id, report) in reports {
            let id = id as u32;
            let r = report.unwrap_or_else(|e| panic!("client {id}: {e}"));
            assert_eq!(r.sent, SEND, "client {id}");
            assert!(r.clean_close, "client {id}: no clean close");
            assert!(
                r.server_close.is_none(),
                "client {id}: the server closed: {:?}",
                r.server_close
            );
            assert_eq!(r.received, per_room * SEND, "client {id}");
            // Exactly once: as many distinct (sender, seq) as messages, all from this room.
            let distinct: BTreeSet<(u32, u64)> =
                r.messages.iter().map(|(s, q, _)| (*s, *q)).collect();
            assert_eq!(distinct.len() as u64, r.received, "client {id}: duplicates");
            let expected: BTreeSet<(u32, u64)> = (0..CLIENTS)
                .filter(|s| s % ROOMS == id % ROOMS)
                .flat_map(|s| (0..SEND).map(move |q| (s, q)))
                .collect();
            assert_eq!(distinct, expected, "client {id}: wrong set of messages");
            assert!(r.messages.iter().all(|(_, _, room)| *room == room_of(id)));
            // In order per sender.
            let mut last: HashMap<u32, u64> = HashMap::new();
            for (s, q, _) in &r.messages {
                if let Some(prev) = last.insert(*s, *q) {
                    assert!(*q > prev, "client {id}: sender {s} out of order");
                }
            }
        }
        assert_eq!(server.shared.rooms.dropped.load(Ordering::Relaxed), 0);
        assert_eq!(
            server.shared.rooms.fanned_out.load(Ordering::Relaxed),
            u64::from(CLIENTS) * SEND * per_room
        );
        server.wait_rooms_empty();
    });
}

/// Three clients read everything; a fourth (small receive buffer) stops reading while one of
/// the three sends 3,000 1-KiB messages (at most 64 ahead of the slowest of the three, so
/// that they, with 512-message queues, keep up however the machine schedules them: the slow
/// one's 512 messages, tungstenite buffer and fixed-size socket buffers hold about 1 MB of the
/// 3 MB); then it reads again and the server shuts down (it gets
/// what is queued for it, then Close 1001, unless its policy closed it already). Returns the
/// slow client's report after checking the three others'.
fn slow_consumer_run(policy: Policy) -> (client::Report, Arc<Shared>) {
    let mut server = TestServer::start(Config {
        queue: 512,
        policy,
        // A fixed send buffer (no autotuning to megabytes) so that the slow reader's share of
        // the 3 MB overflows its queue, large enough for the fast readers to keep up.
        send_buffer: Some(64 * 1024),
        close_timeout: Duration::from_secs(60),
        ..Config::default()
    });
    let addr = server.addr;
    let (shared, ctl) = (server.shared.clone(), server.ctl.clone());
    let (fast, slow) = clients_rt().run(move |io: &Io| {
        let gate = Arc::new(ResetEvent::new());
        let cs = Arc::new(client::Shared {
            start: Some(Barrier::new(4)),
            // The sender stays within 64 messages of the slowest fast reader (ids 0..3).
            floor: (0..3).map(|_| Default::default()).collect(),
            ..client::Shared::default()
        });
        let spawn = |p: client::Plan, gate: Option<Arc<ResetEvent>>| {
            let cs = cs.clone();
            io.spawn(move |io| {
                let path = format!("/room/{}", p.room);
                let ws = client::connect(io, addr, &path, Duration::from_secs(20), p.recv_buffer)?;
                client::run(io, ws, &p, &cs, gate.as_deref())
            })
        };
        let mut slow_plan = plan(9, "slow", 0, None);
        // A fixed receive buffer (no autotuning). Not a tiny one: on loopback (64 KiB MSS) a
        // receive window that reopens by less than an MSS is not announced, and the sender
        // waits for its zero-window probes (backing off to seconds) before it sends again.
        slow_plan.recv_buffer = Some(128 * 1024);
        let slow = spawn(slow_plan, Some(gate.clone()));
        let fast: Vec<_> = (0..3)
            .map(|id| {
                let mut p = plan(
                    id,
                    "slow",
                    if id == 0 { SLOW_SEND } else { 0 },
                    Some(SLOW_SEND),
                );
                p.size = 1000;
                p.window = Some(64);
                spawn(p, None)
            })
            .collect();
        let fast: Vec<client::Report> = fast
            .into_iter()
            .map(|t| t.join().unwrap().unwrap())
            .collect();
        // The room went on without the slow reader. Now it reads again, and the server shuts
        // down.
        gate.set();
        let left = server::shutdown(&shared, &ctl, addr, Duration::from_secs(60), |d| {
            let _ = io.sleep(d);
        });
        assert_eq!(left, 0, "connections left after shutdown");
        (fast, slow.join().unwrap().unwrap())
    });
    server.shutdown();
    for (i, r) in fast.iter().enumerate() {
        assert!(
            r.clean_close && r.server_close.is_none(),
            "fast client {i}: received {}, clean close {}, server close {:?}",
            r.received,
            r.clean_close,
            r.server_close
        );
        let seqs: Vec<u64> = r.messages.iter().map(|m| m.1).collect();
        let first_wrong = seqs.iter().zip(0..).position(|(s, i)| *s != i);
        assert!(
            seqs.len() as u64 == SLOW_SEND && first_wrong.is_none(),
            "fast client {i}: {} messages, first out of place at {first_wrong:?}",
            seqs.len()
        );
    }
    assert!(slow.clean_close, "slow client: no clean close");
    let seqs: Vec<u64> = slow.messages.iter().map(|m| m.1).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "slow client: out of order"
    );
    assert!(
        (seqs.len() as u64) < SLOW_SEND,
        "slow client lost nothing: the test did not fill its queue"
    );
    let shared = server.shared.clone();
    (slow, shared)
}

/// Messages the fast client sends in the slow-consumer tests.
const SLOW_SEND: u64 = 3_000;

fn close_code(r: &client::Report) -> Option<u16> {
    r.server_close.as_ref().map(|f| u16::from(f.code))
}

#[test]
fn slow_consumer_drop_oldest_loses_the_oldest_and_keeps_the_latest() {
    let (slow, shared) = with_watchdog("drop-oldest", || slow_consumer_run(Policy::DropOldest));
    assert_eq!(close_code(&slow), Some(1001), "closed by the shutdown");
    assert_eq!(
        slow.messages.last().map(|m| m.1),
        Some(SLOW_SEND - 1),
        "the latest arrives"
    );
    assert!(shared.rooms.dropped.load(Ordering::Relaxed) > 0);
}

#[test]
fn slow_consumer_drop_newest_keeps_a_prefix() {
    let (slow, shared) = with_watchdog("drop-newest", || slow_consumer_run(Policy::DropNewest));
    assert_eq!(close_code(&slow), Some(1001), "closed by the shutdown");
    let seqs: Vec<u64> = slow.messages.iter().map(|m| m.1).collect();
    assert!(
        seqs.len() >= 512 && seqs[..512] == (0..512).collect::<Vec<_>>()[..],
        "a prefix"
    );
    assert_ne!(
        seqs.last(),
        Some(&(SLOW_SEND - 1)),
        "the newest were dropped"
    );
    assert!(shared.rooms.dropped.load(Ordering::Relaxed) > 0);
}

#[test]
fn slow_consumer_disconnect_closes_it_with_1008() {
    let (slow, shared) =
        with_watchdog("disconnect", || slow_consumer_run(Policy::Disconnect(1008)));
    assert_eq!(close_code(&slow), Some(1008));
    assert_eq!(shared.overflow_closes.load(Ordering::Relaxed), 1);
}

#[test]
fn slow_consumer_disconnect_closes_it_with_1013() {
    let (slow, shared) = with_watchdog("disconnect-1013", || {
        slow_consumer_run(Policy::Disconnect(1013))
    });
    assert_eq!(close_code(&slow), Some(1013));
    assert_eq!(shared.overflow_closes.load(Ordering::Relaxed), 1);
}

/// Reads the next message within 10 s (blocking-style: the socket is not switched to
/// non-blocking mode).
fn next(io: &Io, ws: &mut tungstenite::WebSocket<nb::Nb>) -> Result<Message, tungstenite::Error> {
    io.timeout(Duration::from_secs(10), |_| ws.read())
}

/// Reads until the server's Close; returns its code, after checking the handshake completes.
fn read_until_close(io: &Io, ws: &mut tungstenite::WebSocket<nb::Nb>) -> Option<u16> {
    let mut code = None;
    loop {
        match next(io, ws) {
            Ok(Message::Close(f)) => code = f.map(|f| u16::from(f.code)),
            Ok(_) => {}
            Err(tungstenite::Error::ConnectionClosed) => return code,
            Err(e) => panic!("no clean close: {e}"),
        }
    }
}

#[test]
fn shutdown_closes_every_client_with_1001_and_a_clean_handshake() {
    with_watchdog("shutdown", || {
        let mut server = TestServer::start(Config::default());
        let addr = server.addr;
        let (shared, ctl) = (server.shared.clone(), server.ctl.clone());
        clients_rt().run(move |io: &Io| {
            let tasks: Vec<_> = (0..20)
                .map(|i| {
                    io.spawn(move |io| {
                        let path = format!("/room/r{}", i % 3);
                        let mut ws =
                            client::connect(io, addr, &path, Duration::from_secs(20), None)
                                .unwrap();
                        read_until_close(io, &mut ws)
                    })
                })
                .collect();
            while shared.live.load(Ordering::SeqCst) < 20 {
                io.sleep(Duration::from_millis(5)).unwrap();
            }
            let left = server::shutdown(&shared, &ctl, addr, Duration::from_secs(30), |d| {
                let _ = io.sleep(d);
            });
            assert_eq!(left, 0);
            for t in tasks {
                assert_eq!(t.join().unwrap(), Some(1001));
            }
        });
        server.shutdown();
        assert_eq!(server.shared.rooms.len(), 0);
    });
}

#[test]
fn protocol_limits_join_by_message_and_pings() {
    with_watchdog("protocol", || {
        let server = TestServer::start(Config {
            max_message: 1024,
            ping_interval: Duration::from_millis(50),
            ..Config::default()
        });
        let addr = server.addr;
        clients_rt().run(move |io: &Io| {
            let connect =
                |path: &str| client::connect(io, addr, path, Duration::from_secs(20), None);
            // Oversized message: Close 1009.
            let mut ws = connect("/room/big").unwrap();
            ws.send(Message::text("x".repeat(4096))).unwrap();
            assert_eq!(read_until_close(io, &mut ws), Some(1009));
            // Binary message: Close 1003.
            let mut ws = connect("/room/bin").unwrap();
            ws.send(Message::binary(vec![1u8, 2, 3])).unwrap();
            assert_eq!(read_until_close(io, &mut ws), Some(1003));
            // A path that is not a room: 404, no WebSocket.
            let e = connect("/nope").unwrap_err();
            assert!(e.to_string().contains("404"), "{e}");
            // Join by first message, confirmed; then a member by path talks to it.
            let mut lobby = connect("/").unwrap();
            lobby.send(Message::text("lobby")).unwrap();
            let joined = loop {
                match next(io, &mut lobby).unwrap() {
                    Message::Text(t) => break t.to_string(),
                    _ => continue, // pings
                }
            };
            assert_eq!(joined, "* joined lobby");
            let mut other = connect("/room/lobby").unwrap();
            other.send(Message::text("1 7 0 lobby hello")).unwrap();
            for ws in [&mut lobby, &mut other] {
                let got = loop {
                    match next(io, ws).unwrap() {
                        Message::Text(t) => break t.to_string(),
                        _ => continue,
                    }
                };
                assert_eq!(got, "1 7 0 lobby hello");
            }
            // An invalid room name as first message: Close 1008.
            let mut bad = connect("/").unwrap();
            bad.send(Message::text("no spaces allowed")).unwrap();
            assert_eq!(read_until_close(io, &mut bad), Some(1008));
            // The server pings (every 50 ms here); tungstenite answers with pongs.
            let pinged = loop {
                match next(io, &mut other).unwrap() {
                    Message::Ping(_) => break true,
                    _ => continue,
                }
            };
            assert!(pinged);
            // Client-initiated close: the server answers, the handshake completes.
            other.close(None).unwrap();
            assert_eq!(read_until_close(io, &mut other), None);
            lobby.close(None).unwrap();
            assert_eq!(read_until_close(io, &mut lobby), None);
        });
        server.wait_rooms_empty();
    });
}
