//! The example servers, tested in-process on every model: `examples/common/` (the very code the
//! `http_server` and `echo_server` examples run) is included here with `#[path]`, each test
//! starts a server on `127.0.0.1:0` in a `zsync::run` on a thread of its own, and drives it with
//! std sockets as a client would.
//!
//! Every test body is written once and expanded per model by `per_model!`: Blocking (connections
//! served one after another), Threaded, Green on epoll and Green on the default backend
//! (io_uring where the kernel allows it). Every test is bounded: client sockets give up after
//! 5 s, and a watchdog fails a test that has not finished after 60 s instead of hanging.

#[path = "../examples/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::echo;
use common::http::{self, HttpConfig};
use common::server::{Control, Stats};
use zsync::net::TcpListener;
use zsync::{Backend, Builder, Model};

/// How long a client socket waits for the server before the test fails.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a whole test may run.
const WATCHDOG: Duration = Duration::from_secs(60);

/// A runtime to run a server on.
#[derive(Debug, Clone, Copy)]
enum Rt {
    Blocking,
    Threaded,
    GreenEpoll,
    GreenAuto,
}

impl Rt {
    fn builder(self) -> Builder {
        let b = match self {
            Rt::Blocking => Builder::new(Model::Blocking),
            Rt::Threaded => Builder::new(Model::Threaded),
            Rt::GreenEpoll => Builder::new(Model::Green).backend(Backend::Epoll),
            Rt::GreenAuto => Builder::new(Model::Green),
        };
        // As in the http_server example: room for serde_json's recursion on fibers.
        b.worker_threads(2).stack_size(256 * 1024)
    }
}

/// Runs `body` on a thread of its own and fails the test if it takes longer than [`WATCHDOG`].
fn with_watchdog(rt: Rt, body: fn(Rt)) {
    let (tx, rx) = mpsc::channel();
    let t = std::thread::spawn(move || {
        body(rt);
        let _ = tx.send(());
    });
    match rx.recv_timeout(WATCHDOG) {
        Ok(()) => t.join().expect("test thread"),
        // The body panicked: re-raise its panic here.
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(p) = t.join() {
                std::panic::resume_unwind(p);
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("{rt:?}: test still running after {WATCHDOG:?}")
        }
    }
}

/// Expands each test body into one `#[test]` per runtime.
macro_rules! per_model {
    ($($name:ident),* $(,)?) => {
        mod blocking { $( #[test] fn $name() { super::with_watchdog(super::Rt::Blocking, super::$name) } )* }
        mod threaded { $( #[test] fn $name() { super::with_watchdog(super::Rt::Threaded, super::$name) } )* }
        mod green_epoll { $( #[test] fn $name() { super::with_watchdog(super::Rt::GreenEpoll, super::$name) } )* }
        mod green { $( #[test] fn $name() { super::with_watchdog(super::Rt::GreenAuto, super::$name) } )* }
    };
}

per_model! {
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
    echo_round_trips,
}

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
    let ctl = Control::new(std::env::var_os("SERVERS_VERBOSE").is_some());
    let (tx, rx) = mpsc::channel();
    let server_ctl = ctl.clone();
    let thread = std::thread::spawn(move || {
        rt.builder().run(|io| {
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
    let dir = temp_dir();
    let file = http::generate_file(&dir, "file.bin", file_len).expect("generate file");
    let mut cfg = HttpConfig::new(file);
    cfg.idle_timeout = Duration::from_secs(10);
    tune(&mut cfg);
    start(rt, Some(dir), move |io, listener, ctl| {
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
