//! The example servers, tested in-process on every model: `examples/common/` (the very code the
//! `http_server` and `echo_server` examples run) is included here with `#[path]`, each test
//! starts a server on `127.0.0.1:0` in a `zsync::run` on a thread of its own, and drives it with
//! std sockets as a client would.
//!
//! Every test body is written once and expanded per model by `per_model!`: Blocking (connections
//! served one after another), Threaded, Green on epoll and Green on the default backend
//! (io_uring where the kernel allows it). Every test is bounded: client sockets give up after
//! 5 s, and a watchdog fails a test that has not finished after 60 s instead of hanging.
//!
//! Clients that never read ([`NonReader`]) keep their receive buffer small, so that the server's
//! writes block soon. The accept-failure test runs its body in a child process (this binary,
//! re-run on that one test), because it lowers the process's descriptor limit.

#[path = "support/models.rs"]
#[macro_use]
mod models;

use models::Rt;

#[path = "../examples/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::echo;
use common::http::{self, HttpConfig};
use common::server::{Control, Stats};
use zsync::net::TcpListener;
use zsync::Builder;

/// How long a client socket waits for the server before the test fails.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a whole test may run.
const WATCHDOG: Duration = Duration::from_secs(60);

per_model!(every:
    http_get_hello,
    http_keep_alive,
    http_pipelining,
    http_file,
    http_json_echo,
    http_routes,
    http_malformed_then_serves,
    http_oversized_head,
    http_slowloris,
    http_client_vanishes_mid_response,
    http_get_after_non_reading_client_on_the_same_worker,
    http_non_reading_client_closed_after_write_timeout,
    http_pipelined_uploads_stay_within_request_memory_budget,
    http_accept_fd_exhaustion_logged_at_a_bounded_rate,
    http_host_missing_duplicated_or_invalid_is_400,
    http_long_request_target_is_414,
    http10_expect_continue_gets_no_100,
    echo_round_trips,
    echo_idle_client_is_closed_without_an_error,
    echo_non_reading_client_closed_after_write_timeout,
);

/// A server running on a thread of its own; stopped and joined on drop.
struct Running {
    addr: SocketAddr,
    ctl: Arc<Control>,
    thread: Option<JoinHandle<std::io::Result<()>>>,
    dir: Option<PathBuf>,
}

impl Running {
    fn stats(&self) -> &Stats {
        &self.ctl.stats
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.ctl.stop(self.addr);
        if let Some(t) = self.thread.take() {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if !std::thread::panicking() {
                assert!(t.is_finished(), "the server did not stop within 10 s");
                t.join()
                    .expect("server thread panicked")
                    .expect("server failed");
            }
        }
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A fresh directory for one server's file.
fn temp_dir() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    std::env::temp_dir().join(format!(
        "zsync-servers-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Starts a server: `serve(io, listener, ctl)` inside `rt`'s `zsync::run`, on 127.0.0.1:0.
fn start(
    rt: Rt,
    dir: Option<PathBuf>,
    serve: impl FnOnce(&zsync::Io, &TcpListener, &Arc<Control>) -> std::io::Result<()> + Send + 'static,
) -> Running {
    start_on(rt.builder(), dir, serve)
}

/// [`start`] on a runtime built by `builder`.
fn start_on(
    builder: Builder,
    dir: Option<PathBuf>,
    serve: impl FnOnce(&zsync::Io, &TcpListener, &Arc<Control>) -> std::io::Result<()> + Send + 'static,
) -> Running {
    let ctl = Control::new(std::env::var_os("SERVERS_VERBOSE").is_some());
    let (tx, rx) = mpsc::channel();
    let server_ctl = ctl.clone();
    let thread = std::thread::spawn(move || {
        builder.run(|io| {
            let listener = TcpListener::bind(io, "127.0.0.1:0")?;
            tx.send(listener.local_addr()?).expect("test alive");
            serve(io, &listener, &server_ctl)
        })
    });
    let addr = rx.recv_timeout(CLIENT_TIMEOUT).expect("server bound");
    Running {
        addr,
        ctl,
        thread: Some(thread),
        dir,
    }
}

/// Starts the HTTP server with a generated file of `file_len` bytes; `tune` adjusts the config.
fn start_http(rt: Rt, file_len: usize, tune: impl FnOnce(&mut HttpConfig)) -> Running {
    start_http_on(rt.builder(), file_len, tune)
}

/// [`start_http`] on a runtime built by `builder` (for `rt`'s model).
fn start_http_on(builder: Builder, file_len: usize, tune: impl FnOnce(&mut HttpConfig)) -> Running {
    let dir = temp_dir();
    let file = http::generate_file(&dir, "file.bin", file_len).expect("generate file");
    let mut cfg = HttpConfig::new(file);
    cfg.idle_timeout = Duration::from_secs(10);
    tune(&mut cfg);
    start_on(builder, Some(dir), move |io, listener, ctl| {
        http::serve(io, listener, cfg, ctl)
    })
}

/// Waits (up to [`CLIENT_TIMEOUT`]) until `counter` reaches `n`, and returns its value: the
/// server updates its counters when a handler returns, which may be after the client has seen
/// the last byte.
fn wait_for(counter: &common::server::Counter, n: u64) -> u64 {
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    while Stats::get(counter) < n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    Stats::get(counter)
}

/// A client connection with bounded waits.
fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, CLIENT_TIMEOUT).expect("connect");
    s.set_read_timeout(Some(CLIENT_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(CLIENT_TIMEOUT)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// A parsed response.
#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

/// Reads one response (status line, headers, `content-length` body; no body for `HEAD`).
fn read_response(r: &mut impl BufRead, head_only: bool) -> Response {
    let mut line = String::new();
    r.read_line(&mut line).expect("status line");
    let mut parts = line.split_whitespace();
    assert_eq!(parts.next(), Some("HTTP/1.1"), "status line {line:?}");
    let status = parts
        .next()
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line).expect("header line");
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (n, v) = l.split_once(':').expect("header has a colon");
        headers.push((n.trim().to_string(), v.trim().to_string()));
    }
    let mut resp = Response {
        status,
        headers,
        body: Vec::new(),
    };
    if !head_only {
        let len: usize = resp
            .header("content-length")
            .expect("content-length")
            .parse()
            .expect("numeric content-length");
        resp.body = vec![0; len];
        r.read_exact(&mut resp.body).expect("body");
    }
    resp
}

/// Asserts the server has closed `r`'s connection: the next read is the end of the stream (or a
/// reset, if unread input was discarded).
fn assert_closed(r: &mut impl Read) {
    let mut buf = [0u8; 64];
    match r.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Ok(n) => panic!(
            "expected the server to close, got {n} more bytes: {:?}",
            &buf[..n]
        ),
        Err(e) => panic!("expected the server to close, got {e}"),
    }
}

fn request(method: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let mut req = format!("{method} {path} HTTP/1.1\r\nhost: test\r\n").into_bytes();
    if !body.is_empty() || method == "POST" {
        req.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    req.extend_from_slice(body);
    req
}

/// A one-shot GET on a new connection.
fn get(addr: SocketAddr, path: &str) -> Response {
    let mut s = connect(addr);
    s.write_all(&request("GET", path, b"")).unwrap();
    read_response(&mut BufReader::new(s), false)
}

fn http_get_hello(rt: Rt) {
    let server = start_http(rt, 1024, |_| {});
    let resp = get(server.addr, "/");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, b"Hello, World!");
    assert_eq!(resp.header("content-type"), Some("text/plain"));
    assert_eq!(resp.header("date").map(str::len), Some(29));
    assert!(!resp.closes());
}

fn http_keep_alive(rt: Rt) {
    let server = start_http(rt, 1024, |_| {});
    let s = connect(server.addr);
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    for _ in 0..3 {
        w.write_all(&request("GET", "/", b"")).unwrap();
        let resp = read_response(&mut r, false);
        assert_eq!(
            (resp.status, resp.body.as_slice()),
            (200, &b"Hello, World!"[..])
        );
        assert!(!resp.closes());
    }
    // `connection: close` is honoured: the response says so and the stream ends.
    w.write_all(b"GET / HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n")
        .unwrap();
    let resp = read_response(&mut r, false);
    assert!(resp.closes());
    assert_closed(&mut r);
    assert_eq!(
        Stats::get(&server.stats().accepted),
        1,
        "one connection for all requests"
    );
}

fn http_pipelining(rt: Rt) {
    let server = start_http(rt, 1024, |_| {});
    let s = connect(server.addr);
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    let mut burst = request("GET", "/", b"");
    burst.extend(request("POST", "/echo", b"[1,2,3]"));
    burst.extend(request("HEAD", "/", b""));
    burst.extend(request("GET", "/missing", b""));
    w.write_all(&burst).unwrap();
    let first = read_response(&mut r, false);
    assert_eq!(
        (first.status, first.body.as_slice()),
        (200, &b"Hello, World!"[..])
    );
    let second = read_response(&mut r, false);
    assert_eq!(
        (second.status, second.body.as_slice()),
        (200, &b"[1,2,3]"[..])
    );
    let third = read_response(&mut r, true);
    assert_eq!(third.status, 200);
    assert_eq!(third.header("content-length"), Some("13"));
    let fourth = read_response(&mut r, false);
    assert_eq!(fourth.status, 404);
    // Still open for more.
    w.write_all(&request("GET", "/", b"")).unwrap();
    assert_eq!(read_response(&mut r, false).status, 200);
}

fn http_file(rt: Rt) {
    const LEN: usize = 1 << 20;
    let server = start_http(rt, LEN, |_| {});
    let s = connect(server.addr);
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    // Twice on one connection: the framing holds after a sendfile.
    for _ in 0..2 {
        w.write_all(&request("GET", "/file", b"")).unwrap();
        let resp = read_response(&mut r, false);
        assert_eq!(resp.status, 200);
        assert_eq!(
            resp.header("content-type"),
            Some("application/octet-stream")
        );
        assert!(
            resp.body == http::file_pattern(LEN),
            "the file's exact bytes"
        );
    }
}

fn http_json_echo(rt: Rt) {
    let server = start_http(rt, 1024, |_| {});
    let s = connect(server.addr);
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    let json = br#"{"hello": ["world", 1, 2.5, null, true, {"nested": "\u00e9"}]}"#;
    w.write_all(&request("POST", "/echo", json)).unwrap();
    let resp = read_response(&mut r, false);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert_eq!(resp.body, json);
    // Invalid JSON: 400, and the connection stays usable (the HTTP framing was fine).
    w.write_all(&request("POST", "/echo", b"{\"a\": ")).unwrap();
    let resp = read_response(&mut r, false);
    assert_eq!(resp.status, 400);
    assert!(!resp.closes());
    // Deep nesting up to serde_json's limit fits the fiber stack; past it, 400.
    for (depth, status) in [(120, 200), (1000, 400)] {
        let deep = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        w.write_all(&request("POST", "/echo", deep.as_bytes()))
            .unwrap();
        assert_eq!(read_response(&mut r, false).status, status, "depth {depth}");
    }
    // `expect: 100-continue`: the interim response first, then the final one.
    w.write_all(
        b"POST /echo HTTP/1.1\r\nhost: t\r\nexpect: 100-continue\r\ncontent-length: 4\r\n\r\n",
    )
    .unwrap();
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert_eq!(line, "HTTP/1.1 100 Continue\r\n");
    r.read_line(&mut line).unwrap();
    w.write_all(b"true").unwrap();
    let resp = read_response(&mut r, false);
    assert_eq!((resp.status, resp.body.as_slice()), (200, &b"true"[..]));
}

fn http_routes(rt: Rt) {
    let server = start_http(rt, 1024, |_| {});
    assert_eq!(get(server.addr, "/nope").status, 404);
    let resp = get(server.addr, "/echo");
    assert_eq!((resp.status, resp.header("allow")), (405, Some("POST")));
    let mut s = connect(server.addr);
    s.write_all(&request("POST", "/", b"x")).unwrap();
    let resp = read_response(&mut BufReader::new(s), false);
    assert_eq!(
        (resp.status, resp.header("allow")),
        (405, Some("GET, HEAD"))
    );
    // A body over the limit is refused before it is read.
    let mut s = connect(server.addr);
    s.write_all(b"POST /echo HTTP/1.1\r\nhost: t\r\ncontent-length: 99999999\r\n\r\n")
        .unwrap();
    let mut r = BufReader::new(s);
    let resp = read_response(&mut r, false);
    assert_eq!(resp.status, 413);
    assert!(resp.closes());
    assert_closed(&mut r);
}

fn http_malformed_then_serves(rt: Rt) {
    let server = start_http(rt, 1024, |_| {});
    for garbage in [
        &b"GET / HTTP/1.1\r\nno colon here\r\n\r\n"[..],
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 tls hello?\r\n\r\n",
        b"GET / HTTP/1.1\r\ncontent-length: -1\r\n\r\n",
    ] {
        let s = connect(server.addr);
        (&s).write_all(garbage).unwrap();
        let mut r = BufReader::new(s);
        let resp = read_response(&mut r, false);
        assert_eq!(resp.status, 400, "for {garbage:?}");
        assert!(resp.closes());
        assert_closed(&mut r);
        drop(r);
        // The server keeps serving new connections.
        assert_eq!(get(server.addr, "/").status, 200);
    }
    // Counted when each handler returns, after its lingering close: possibly after the client
    // got its response, hence the wait.
    assert_eq!(wait_for(&server.stats().conn_errors, 3), 3);
}

fn http_oversized_head(rt: Rt) {
    let server = start_http(rt, 1024, |_| {});
    // One 10 KiB header.
    let big = format!(
        "GET / HTTP/1.1\r\nhost: t\r\nx-big: {}\r\n\r\n",
        "a".repeat(10 * 1024)
    );
    // 65 small headers.
    let mut many = String::from("GET / HTTP/1.1\r\n");
    for i in 0..65 {
        many.push_str(&format!("x-h{i}: v\r\n"));
    }
    many.push_str("\r\n");
    for head in [big, many] {
        let s = connect(server.addr);
        (&s).write_all(head.as_bytes()).unwrap();
        let mut r = BufReader::new(s);
        let resp = read_response(&mut r, false);
        assert_eq!(resp.status, 431);
        assert!(resp.closes());
        assert_closed(&mut r);
        drop(r);
        assert_eq!(get(server.addr, "/").status, 200);
    }
    // 40 headers: more than the parser's slots on the stack, within the limit: served, on a
    // connection that stays open for the next request.
    let mut forty = String::from("GET / HTTP/1.1\r\nhost: t\r\n");
    for i in 0..39 {
        forty.push_str(&format!("x-h{i}: v\r\n"));
    }
    forty.push_str("\r\n");
    let s = connect(server.addr);
    let mut r = BufReader::new(s);
    for _ in 0..2 {
        r.get_ref().write_all(forty.as_bytes()).unwrap();
        let resp = read_response(&mut r, false);
        assert_eq!(resp.status, 200);
        assert!(!resp.closes());
    }
}

fn http_slowloris(rt: Rt) {
    const TIMEOUT: Duration = Duration::from_millis(200);
    let server = start_http(rt, 1024, |cfg| cfg.header_timeout = TIMEOUT);
    // The clock starts before the connect: the server's starts at the accept, after it. (It
    // used to start after the connect, with 20 ms of slack that a descheduled client exceeded.)
    let start = Instant::now();
    let mut s = connect(server.addr);
    s.write_all(b"GET / HTTP/1.1\r\nhost: slow\r\n").unwrap(); // no blank line: never complete
    assert_closed(&mut s);
    let waited = start.elapsed();
    assert!(waited >= TIMEOUT, "closed after {waited:?}");
    assert!(
        waited < Duration::from_secs(3),
        "closed only after {waited:?}"
    );
    drop(s);
    assert_eq!(get(server.addr, "/").status, 200);
    // A client that connects and sends nothing at all is cut off the same way.
    let mut silent = connect(server.addr);
    let start = Instant::now();
    assert_closed(&mut silent);
    assert!(start.elapsed() < Duration::from_secs(3));
    drop(silent);
    assert_eq!(get(server.addr, "/").status, 200);
}

fn http_client_vanishes_mid_response(rt: Rt) {
    // Larger than what the socket buffers can absorb, so the server is still sending.
    const LEN: usize = 32 << 20;
    let server = start_http(rt, LEN, |_| {});
    for _ in 0..2 {
        let mut s = connect(server.addr);
        s.write_all(&request("GET", "/file", b"")).unwrap();
        let mut some = vec![0u8; 64 * 1024];
        s.read_exact(&mut some).unwrap();
        assert!(some.starts_with(b"HTTP/1.1 200 OK\r\n"));
        // Vanish with unread data: the kernel resets the connection.
        s.shutdown(Shutdown::Both).unwrap();
        drop(s);
        assert_eq!(get(server.addr, "/").status, 200);
    }
    // The server saw the failed transfers as connection errors (logged at debug level only).
    assert_eq!(wait_for(&server.stats().conn_errors, 2), 2);
}

fn echo_round_trips(rt: Rt) {
    let server = start(rt, None, |io, listener, ctl| {
        echo::serve(io, listener, ctl, Duration::from_secs(10))
    });
    // Two clients at once where the model serves connections concurrently.
    let clients: Vec<TcpStream> = if matches!(rt, Rt::Blocking) {
        vec![connect(server.addr)]
    } else {
        vec![connect(server.addr), connect(server.addr)]
    };
    for round in 0..50u32 {
        for (i, c) in clients.iter().enumerate() {
            let msg = format!("client {i} round {round}");
            (&*c).write_all(msg.as_bytes()).unwrap();
            let mut back = vec![0; msg.len()];
            (&*c).read_exact(&mut back).unwrap();
            assert_eq!(back, msg.as_bytes());
        }
    }
    // A message larger than the server's buffer comes back whole.
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    let c = &clients[0];
    let writer = {
        let mut c = c.try_clone().unwrap();
        let big = big.clone();
        std::thread::spawn(move || c.write_all(&big))
    };
    let mut back = vec![0; big.len()];
    (&*c).read_exact(&mut back).unwrap();
    writer.join().unwrap().unwrap();
    assert!(back == big);
    drop(clients);
    // One echoed read per round at least (a read may take two requests that arrived together).
    assert!(Stats::get(&server.stats().requests) >= 50);
}

/// The echo server closes a silent client after its idle timeout (the socket's read timeout,
/// which expires with `WouldBlock` as std's does) and counts no connection error for it.
fn echo_idle_client_is_closed_without_an_error(rt: Rt) {
    let server = start(rt, None, |io, listener, ctl| {
        echo::serve(io, listener, ctl, Duration::from_millis(50))
    });
    let c = connect(server.addr);
    assert_eq!((&c).read(&mut [0; 8]).unwrap(), 0, "closed by the server");
    let ctl = server.ctl.clone();
    drop(server); // stopped and joined: every handler has returned and been counted
    assert_eq!(Stats::get(&ctl.stats.conn_errors), 0);
}

/// How a [`NonReader`]'s connection ended.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    /// A write failed with this error: the server closed (or reset) the connection.
    Closed(std::io::ErrorKind),
    /// The server neither read nor closed the connection for [`STUCK_LIMIT`].
    StillOpen,
}

/// How long a [`NonReader`] keeps trying before it reports [`Ended::StillOpen`]: a watchdog,
/// far beyond every write timeout the tests set.
const STUCK_LIMIT: Duration = Duration::from_secs(20);

/// A client that sends `request` over and over and never reads a byte of the responses. Its
/// receive buffer is made small before it connects (no window autotuning), so the server's
/// responses soon fill the socket buffers and the server's writes block.
struct NonReader {
    /// Receives one message when a write of the client first waited for 100 ms: the server
    /// has stopped reading (or is very slow).
    stuck: mpsc::Receiver<()>,
    /// Asks the client to close its connection.
    quit: Arc<AtomicBool>,
    thread: JoinHandle<Ended>,
}

impl NonReader {
    fn start(addr: SocketAddr, request: &[u8]) -> NonReader {
        let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        sock.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        sock.connect_timeout(&addr.into(), CLIENT_TIMEOUT)
            .expect("connect");
        let s: TcpStream = sock.into();
        s.set_write_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        // Whole requests, so that wrapping around keeps the framing.
        let burst = request.repeat((64 * 1024 / request.len()).max(1));
        let (tx, stuck) = mpsc::channel();
        let quit = Arc::new(AtomicBool::new(false));
        let client_quit = quit.clone();
        let thread = std::thread::spawn(move || {
            let give_up = Instant::now() + STUCK_LIMIT;
            let mut pos = 0;
            loop {
                if client_quit.load(Ordering::Relaxed) {
                    return Ended::StillOpen;
                }
                match (&s).write(&burst[pos..]) {
                    Ok(0) => return Ended::Closed(std::io::ErrorKind::WriteZero),
                    Ok(n) => pos = (pos + n) % burst.len(),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        let _ = tx.send(());
                        if Instant::now() > give_up {
                            return Ended::StillOpen;
                        }
                    }
                    Err(e) => return Ended::Closed(e.kind()),
                }
            }
        });
        NonReader {
            stuck,
            quit,
            thread,
        }
    }

    /// Waits until the client's writes block (or the connection ended).
    fn wait_stuck(&self) {
        // Disconnected: the thread ended (the connection was closed) before it ever blocked.
        let _ = self.stuck.recv_timeout(STUCK_LIMIT);
    }

    /// Waits for the connection to end and says how.
    fn ended(self) -> Ended {
        self.thread.join().expect("non-reading client thread")
    }

    /// Closes the connection (if the server has not) and says how it ended.
    fn close(self) -> Ended {
        self.quit.store(true, Ordering::Relaxed);
        self.ended()
    }
}

/// Asserts the server closed a non-reading client's connection (rather than leaving it open).
fn assert_closed_by_server(ended: Ended) {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
    match ended {
        Ended::Closed(BrokenPipe | ConnectionReset | ConnectionAborted) => {}
        other => panic!("expected the server to close the connection, got {other:?}"),
    }
}

/// Regression (issue 11, item 11): `GET /` copied its cached response into the writer while
/// holding a `RefCell` borrow of the per-thread cache; when that copy flushed into a client
/// that does not read, the fiber parked with the borrow held, and every later `GET /` on the
/// same worker panicked ("already borrowed") — its client saw the end of the stream. One
/// worker, so that every connection shares the stuck one's thread on Green.
fn http_get_after_non_reading_client_on_the_same_worker(rt: Rt) {
    // Long enough that the stuck connections are still stuck when the `GET` arrives.
    let server = start_http_on(rt.builder().worker_threads(1), 1024, |cfg| {
        cfg.write_timeout = Duration::from_secs(2);
    });
    let hello = request("GET", "/", b"");
    // Several: one of them is stuck in the copy of the cached response into the full buffer
    // (rather than in the flush that ends a batch of pipelined responses).
    let stuck: Vec<NonReader> = (0..3)
        .map(|_| NonReader::start(server.addr, &hello))
        .collect();
    for client in &stuck {
        client.wait_stuck();
    }
    // On Blocking, this connection waits in the backlog until the stuck ones time out.
    let mut s = connect(server.addr);
    s.set_read_timeout(Some(STUCK_LIMIT)).unwrap();
    s.write_all(&hello).unwrap();
    let resp = read_response(&mut BufReader::new(s), false);
    assert_eq!(
        (resp.status, resp.body.as_slice()),
        (200, &b"Hello, World!"[..])
    );
    for client in stuck {
        assert_closed_by_server(client.ended());
    }
}

/// Regression (issue 11, item 12): responses written into a client that stopped reading
/// blocked without a deadline (only `GET /file` honoured the write timeout), so the
/// connection, its buffers and its task were held forever. Now every write waits at most
/// `write_timeout`, then the connection is closed.
fn http_non_reading_client_closed_after_write_timeout(rt: Rt) {
    let server = start_http(rt, 1024, |cfg| {
        cfg.write_timeout = Duration::from_millis(300);
    });
    for req in [
        request("GET", "/", b""),
        request("HEAD", "/", b""),
        request("GET", "/missing", b""),
        request(
            "POST",
            "/echo",
            format!("\"{}\"", "x".repeat(4000)).as_bytes(),
        ),
    ] {
        let client = NonReader::start(server.addr, &req);
        assert_closed_by_server(client.ended());
        assert_eq!(get(server.addr, "/").status, 200);
    }
    assert!(wait_for(&server.stats().conn_errors, 4) >= 4);
}

/// RFC 9112 §3.2: a server MUST answer `400` to an HTTP/1.1 request without `Host`, and to any
/// request with more than one `Host` line or an invalid `Host` value.
fn http_host_missing_duplicated_or_invalid_is_400(rt: Rt) {
    let server = start_http(rt, 1024, |_| {});
    for head in [
        "GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nhost: a\r\nhost: a\r\n\r\n",
        "GET / HTTP/1.1\r\nhost: a\r\nx: y\r\nHOST: b\r\n\r\n",
        "GET / HTTP/1.0\r\nhost: a\r\nhost: b\r\n\r\n",
        "GET / HTTP/1.1\r\nhost: exa mple.com\r\n\r\n",
        "GET / HTTP/1.1\r\nhost: example.com/path\r\n\r\n",
        "GET / HTTP/1.1\r\nhost: user@example.com\r\n\r\n",
        "GET / HTTP/1.1\r\nhost: example.com:80x\r\n\r\n",
        "GET / HTTP/1.1\r\nhost: [::1\r\n\r\n",
        "GET / HTTP/1.1\r\nhost: [::1]x\r\n\r\n",
        "GET / HTTP/1.1\r\nhost: ex%zzample\r\n\r\n",
        "GET / HTTP/1.0\r\nhost: a b\r\n\r\n",
    ] {
        let s = connect(server.addr);
        (&s).write_all(head.as_bytes()).unwrap();
        let mut r = BufReader::new(s);
        let resp = read_response(&mut r, false);
        assert_eq!(resp.status, 400, "for {head:?}");
        assert!(resp.closes(), "for {head:?}");
        assert_closed(&mut r);
    }
    // Valid forms: a name, a port, an address, an IPv6 literal, an empty value (RFC 9110 §7.2),
    // percent-encoding; HTTP/1.0 without `Host`.
    for head in [
        "GET / HTTP/1.1\r\nhost: example.com\r\n\r\n",
        "GET / HTTP/1.1\r\nhost: example.com:8080\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: 127.0.0.1:80\r\n\r\n",
        "GET / HTTP/1.1\r\nhost: [::1]:8080\r\n\r\n",
        "GET / HTTP/1.1\r\nhost: [::1]\r\n\r\n",
        "GET / HTTP/1.1\r\nhost:\r\n\r\n",
        "GET / HTTP/1.1\r\nhost: ex%41mple_1-a~b\r\n\r\n",
        "GET / HTTP/1.0\r\n\r\n",
    ] {
        let s = connect(server.addr);
        (&s).write_all(head.as_bytes()).unwrap();
        let resp = read_response(&mut BufReader::new(s), false);
        assert_eq!(resp.status, 200, "for {head:?}");
    }
}

/// RFC 9112 §3: a request target longer than the server accepts gets `414` — also one longer
/// than the whole head limit, and one whose request line has not even ended yet.
fn http_long_request_target_is_414(rt: Rt) {
    let server = start_http(rt, 1024, |_| {});
    let target = |len: usize| format!("/{}", "a".repeat(len - 1));
    let at_limit = format!(
        "GET {} HTTP/1.1\r\nhost: t\r\n\r\n",
        target(http::MAX_TARGET_BYTES)
    );
    let s = connect(server.addr);
    (&s).write_all(at_limit.as_bytes()).unwrap();
    assert_eq!(read_response(&mut BufReader::new(s), false).status, 404);
    for (len, complete) in [
        (http::MAX_TARGET_BYTES + 1, true),
        (3 * http::MAX_HEAD_BYTES, true),
        (http::MAX_TARGET_BYTES + 1, false),
    ] {
        let mut head = format!("GET {}", target(len));
        if complete {
            head.push_str(" HTTP/1.1\r\nhost: t\r\n\r\n");
        }
        let s = connect(server.addr);
        (&s).write_all(head.as_bytes()).unwrap();
        let mut r = BufReader::new(s);
        let resp = read_response(&mut r, false);
        assert_eq!(
            resp.status, 414,
            "target of {len} bytes, complete: {complete}"
        );
        assert!(resp.closes());
        assert_closed(&mut r);
    }
    assert_eq!(get(server.addr, "/").status, 200);
}

/// RFC 9110 §10.1.1: a server that receives `expect: 100-continue` in an HTTP/1.0 request MUST
/// ignore it: no `100 Continue`, just the final response once the body has arrived.
fn http10_expect_continue_gets_no_100(rt: Rt) {
    let server = start_http(rt, 1024, |_| {});
    for path in ["/echo", "/"] {
        let s = connect(server.addr);
        let head = format!(
            "POST {path} HTTP/1.0\r\nexpect: 100-continue\r\ncontent-length: 4\r\n\r\ntrue"
        );
        (&s).write_all(head.as_bytes()).unwrap();
        let mut r = BufReader::new(s);
        let resp = read_response(&mut r, false);
        let want = if path == "/echo" { 200 } else { 405 };
        assert_eq!(resp.status, want, "POST {path}");
        // HTTP/1.0 without keep-alive: the connection ends after the one response.
        assert_closed(&mut r);
    }
    // HTTP/1.1 still gets the interim response (see http_json_echo).
}

/// The class of item 12 in the echo server: a client that sends without reading made the
/// echo's `write_all` wait forever. Its write timeout (the idle timeout) now closes it.
fn echo_non_reading_client_closed_after_write_timeout(rt: Rt) {
    let server = start(rt, None, |io, listener, ctl| {
        echo::serve(io, listener, ctl, Duration::from_millis(300))
    });
    let client = NonReader::start(server.addr, &[b'e'; 4096]);
    assert_closed_by_server(client.ended());
    // The server still echoes.
    let c = connect(server.addr);
    (&c).write_all(b"ping").unwrap();
    let mut back = [0u8; 4];
    (&c).read_exact(&mut back).unwrap();
    assert_eq!(&back, b"ping");
}

/// Regression (issue 11, item 12): each connection could hold a request body of up to 1 MiB
/// for as long as its client did not read the response, so 100 clients pipelining uploads
/// without reading held ~113 MB on Threaded. Bodies are now held against one budget for all
/// connections; one that does not fit gets `503` and its connection is closed.
fn http_pipelined_uploads_stay_within_request_memory_budget(rt: Rt) {
    const BODY: usize = 64 * 1024;
    const CAP: usize = 4 * BODY;
    let budget = Arc::new(http::MemoryBudget::new(CAP));
    let server_budget = budget.clone();
    let server = start_http(rt, 1024, move |cfg| {
        cfg.request_memory = server_budget;
        // Long: the uploads must be stuck at the same time. The clients close at the end.
        cfg.write_timeout = STUCK_LIMIT;
    });
    let upload = request(
        "POST",
        "/echo",
        format!("\"{}\"", "u".repeat(BODY - 2)).as_bytes(),
    );
    // Blocking serves one connection at a time: one body at most, nothing to refuse.
    let n = if matches!(rt, Rt::Blocking) { 2 } else { 8 };
    let clients: Vec<NonReader> = (0..n)
        .map(|_| NonReader::start(server.addr, &upload))
        .collect();
    for client in &clients {
        client.wait_stuck();
    }
    if !matches!(rt, Rt::Blocking) {
        // Eight uploads stuck in their echo hold eight bodies, twice the budget: the ones that
        // do not fit are refused.
        let deadline = Instant::now() + STUCK_LIMIT;
        while budget.refused() == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(budget.refused() > 0, "no upload refused");
    }
    assert!(budget.peak() > 0, "a body was held");
    assert!(budget.peak() <= CAP, "held {} bytes", budget.peak());
    let mut closed_by_server = 0;
    for client in clients {
        if matches!(client.close(), Ended::Closed(_)) {
            closed_by_server += 1;
        }
    }
    if !matches!(rt, Rt::Blocking) {
        assert!(closed_by_server > 0, "the refused connections are closed");
    }
    // Every body is returned to the budget once its connection ends.
    let deadline = Instant::now() + STUCK_LIMIT;
    while budget.in_use() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(budget.in_use(), 0);
    assert_eq!(get(server.addr, "/").status, 200);
}

/// Set in the environment of the child process that runs the body of
/// [`http_accept_fd_exhaustion_logged_at_a_bounded_rate`].
const EMFILE_CHILD: &str = "ZSYNC_SERVERS_EMFILE_CHILD";

/// Regression (issue 11, item 13): out of descriptors, `accept` fails at once for as long as
/// connections wait in the backlog, and the accept loop logged every failure (100 lines a
/// second). Now it logs at most one a second with a count of those it held back, pauses longer
/// while the failures last, and takes connections again once descriptors are available. Runs
/// in a child process, whose descriptor limit it lowers.
fn http_accept_fd_exhaustion_logged_at_a_bounded_rate(rt: Rt) {
    if std::env::var_os(EMFILE_CHILD).is_some() {
        return accept_fd_exhaustion_child(rt);
    }
    let test = format!(
        "{}::http_accept_fd_exhaustion_logged_at_a_bounded_rate",
        rt.name()
    );
    let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([test.as_str(), "--exact", "--nocapture", "--test-threads=1"])
        .env(EMFILE_CHILD, "1")
        .output()
        .expect("run the child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "child failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let report = stdout
        .lines()
        .find_map(|l| Some(l.split_once("emfile-report ")?.1))
        .unwrap_or_else(|| panic!("no report\nstdout:\n{stdout}\nstderr:\n{stderr}"));
    let field = |name: &str| -> u64 {
        report
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {report:?}"))
    };
    let (failures, elapsed_ms) = (field("failures"), field("elapsed_ms"));
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("accept failed"))
        .collect();
    assert!(!warnings.is_empty(), "no warning logged\n{stderr}");
    assert!(
        warnings.len() as u64 <= 1 + elapsed_ms / 1000,
        "{} warnings in {elapsed_ms} ms (at most one a second)\n{stderr}",
        warnings.len()
    );
    // Every failure is either logged or counted in a later line.
    let held_back: u64 = stderr
        .lines()
        .filter(|l| l.contains("not logged"))
        .filter_map(|l| {
            let (_, tail) = l.split_once("; ")?;
            let tail = tail.rsplit("; ").next()?;
            tail.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum();
    assert_eq!(
        warnings.len() as u64 + held_back,
        failures,
        "logged + held back = failures\n{stderr}"
    );
    assert!(held_back > 0, "some failures were held back\n{stderr}");
    assert!(
        stderr.contains("accept works again"),
        "the recovery is logged\n{stderr}"
    );
}

/// The child of [`http_accept_fd_exhaustion_logged_at_a_bounded_rate`]: runs a server, takes
/// every descriptor away (the soft `RLIMIT_NOFILE` lowered to the lowest free descriptor
/// number, so that any new one is refused with `EMFILE`), connects clients that stay in the
/// backlog, gives the descriptors back after a few failures and checks that the clients are
/// then served. Prints `emfile-report failures=N elapsed_ms=M` for the parent.
///
/// The limit is lowered once the server has opened its file, and before any connection: a
/// descriptor closed during the episode below the limit would let one more connection in (a
/// connection's, or the wake-up descriptor of a Threaded connection's thread when it exits).
/// One worker: a Green worker opens its ring or epoll descriptors when its thread starts,
/// which may be after the server is up.
fn accept_fd_exhaustion_child(rt: Rt) {
    const FAILURES: u64 = 8;
    const CLIENTS: usize = 4;
    let dir = temp_dir();
    let file = http::generate_file(&dir, "file.bin", 1024).expect("generate file");
    let (ready_tx, ready) = mpsc::channel();
    let server = start_on(
        rt.builder().worker_threads(1),
        Some(dir),
        move |io, listener, ctl| {
            let app = Arc::new(http::HttpApp::new(io, HttpConfig::new(file), ctl.clone())?);
            ready_tx.send(()).expect("test alive");
            let handler = move |io: &zsync::Io, conn| http::handle(io, conn, &app);
            common::server::accept_loop(io, listener, ctl, Arc::new(handler))
        },
    );
    ready.recv_timeout(CLIENT_TIMEOUT).expect("server ready");
    // Made while descriptors are still available; `connect` and `write` need none.
    let clients: Vec<socket2::Socket> = (0..CLIENTS)
        .map(|_| {
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
                .expect("socket")
        })
        .collect();
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    assert_eq!(rc, 0, "getrlimit");
    let lowest_free = {
        use std::os::fd::AsRawFd;
        std::fs::File::open("/dev/null").expect("open").as_raw_fd()
    };
    let lowered = libc::rlimit {
        rlim_cur: lowest_free as libc::rlim_t,
        rlim_max: limit.rlim_max,
    };
    let start = Instant::now();
    // SAFETY: `lowered` is a valid rlimit within the hard limit.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lowered) }, 0);
    // Each client sends its whole request at once and asks to close: if an accept that was
    // prepared under the old limit (an io_uring accept takes the limit when it is submitted)
    // lets one in, it is served and closed (inline on Blocking), and the loop goes on
    // failing on the others.
    let sent: Vec<std::io::Result<()>> = clients
        .iter()
        .map(|c| {
            c.connect_timeout(&server.addr.into(), CLIENT_TIMEOUT)?;
            (&*c).write_all(b"GET / HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n")
        })
        .collect();
    let deadline = start + STUCK_LIMIT;
    while Stats::get(&server.stats().accept_errors) < FAILURES && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let failed = Stats::get(&server.stats().accept_errors);
    // SAFETY: as above; `limit` is what getrlimit returned.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
    for r in sent {
        r.expect("client connects and sends");
    }
    assert!(failed >= FAILURES, "only {failed} accept failures");
    // The connections that waited in the backlog are served.
    for c in clients {
        let c: TcpStream = c.into();
        c.set_read_timeout(Some(STUCK_LIMIT)).unwrap();
        assert_eq!(read_response(&mut BufReader::new(c), false).status, 200);
    }
    println!(
        "emfile-report failures={} elapsed_ms={}",
        Stats::get(&server.stats().accept_errors),
        start.elapsed().as_millis()
    );
}
