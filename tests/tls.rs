//! HTTPS on the example HTTP server (`http_server --tls`), tested in-process on every model:
//! `examples/common/` (the code the example runs, `tls.rs` included) is included with `#[path]`,
//! each test starts the TLS server with a fresh self-signed certificate on `127.0.0.1:0` in a
//! `zsync::run` on a thread of its own, and drives it with a rustls client that trusts that
//! certificate, over std sockets.
//!
//! Every test body is expanded per model by `per_model!` (Blocking, Threaded, Green on epoll,
//! Green on the default backend). Client sockets give up after 10 s; a watchdog fails a test
//! still running after 60 s.

#[path = "support/models.rs"]
#[macro_use]
mod models;

use models::Rt;

#[path = "../examples/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::http::{self, HttpConfig};
use common::server::{Control, Counter, Stats};
use common::tls::{Identity, TlsServer};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use zsync::net::TcpListener;

/// How long a client socket waits for the server before the test fails.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a whole test may run.
const WATCHDOG: Duration = Duration::from_secs(60);

per_model!(every:
    https_routes,
    https_keep_alive,
    https_close_notify_on_connection_close_and_idle_timeout,
    https_stalled_handshake_dropped_at_deadline,
    https_garbage_client_hello_clean_close,
);

/// A TLS server running on a thread of its own; stopped and joined on drop.
struct Running {
    addr: SocketAddr,
    ctl: Arc<Control>,
    tls: Arc<TlsServer>,
    client: Arc<ClientConfig>,
    thread: Option<JoinHandle<std::io::Result<()>>>,
    dir: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.ctl.stop(self.addr);
        if let Some(t) = self.thread.take() {
            let deadline = Instant::now() + Duration::from_secs(20);
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if !std::thread::panicking() {
                assert!(t.is_finished(), "the server did not stop within 20 s");
                t.join()
                    .expect("server thread panicked")
                    .expect("server failed");
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts the TLS server with a generated file of `file_len` bytes and a fresh self-signed
/// certificate; `tune` adjusts the config. The returned client config trusts the certificate.
fn start(rt: Rt, file_len: usize, tune: impl FnOnce(&mut HttpConfig)) -> Running {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "zsync-tls-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let file = http::generate_file(&dir, "file.bin", file_len).expect("generate file");
    let mut cfg = HttpConfig::new(file);
    cfg.idle_timeout = Duration::from_secs(10);
    tune(&mut cfg);
    let made = Identity::self_signed(&["localhost", "127.0.0.1"]).expect("certificate");
    let client = client_config(made.cert_der.clone());
    let tls = TlsServer::new(made.identity.server_config().expect("server config"));
    let ctl = Control::new(std::env::var_os("SERVERS_VERBOSE").is_some());
    let (tx, rx) = mpsc::channel();
    let (server_ctl, server_tls) = (ctl.clone(), tls.clone());
    let thread = std::thread::spawn(move || {
        rt.builder().run(|io| {
            let listener = TcpListener::bind(io, "127.0.0.1:0")?;
            tx.send(listener.local_addr()?).expect("test alive");
            common::tls::serve(io, &listener, cfg, &server_tls, &server_ctl)
        })
    });
    let addr = rx.recv_timeout(CLIENT_TIMEOUT).expect("server bound");
    Running {
        addr,
        ctl,
        tls,
        client,
        thread: Some(thread),
        dir,
    }
}

/// A rustls client configuration (ring) trusting only `cert`.
fn client_config(cert: CertificateDer<'static>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(cert).expect("trust the certificate");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// A TCP connection with bounded waits.
fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, CLIENT_TIMEOUT).expect("connect");
    s.set_read_timeout(Some(CLIENT_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(CLIENT_TIMEOUT)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

type Tls = BufReader<StreamOwned<ClientConnection, TcpStream>>;

/// A TLS connection to `server` for `localhost` (the handshake happens with the first write).
fn connect_tls(server: &Running) -> Tls {
    let name = ServerName::try_from("localhost").unwrap();
    let conn = ClientConnection::new(server.client.clone(), name).expect("client connection");
    BufReader::new(StreamOwned::new(conn, connect(server.addr)))
}

/// Waits (up to [`CLIENT_TIMEOUT`]) until `counter` reaches `n`, and returns its value.
fn wait_for(counter: &Counter, n: u64) -> u64 {
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    while Stats::get(counter) < n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    Stats::get(counter)
}

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
}

/// Sends one request (`body` with a `content-length`, `extra` headers added) on `s`.
fn send(s: &mut Tls, method: &str, path: &str, extra: &str, body: &[u8]) {
    let mut req = format!("{method} {path} HTTP/1.1\r\nhost: localhost\r\n{extra}").into_bytes();
    if !body.is_empty() || method == "POST" {
        req.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    req.extend_from_slice(body);
    let w = s.get_mut();
    w.write_all(&req).expect("send request");
    w.flush().expect("flush request");
}

/// Reads one response (status line, headers, `content-length` body).
fn read_response(r: &mut Tls) -> Response {
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
    let len: usize = resp
        .header("content-length")
        .expect("content-length")
        .parse()
        .expect("numeric content-length");
    resp.body = vec![0; len];
    r.read_exact(&mut resp.body).expect("body");
    resp
}

/// Asserts the server ended the TLS session cleanly: the next read is the end of the stream
/// after a `close_notify` (rustls reports a close without one as `UnexpectedEof`).
fn assert_close_notify(r: &mut Tls) {
    let mut buf = [0u8; 64];
    match r.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!(
            "expected the server to close, got {n} more bytes: {:?}",
            &buf[..n]
        ),
        Err(e) => panic!("expected a close_notify, got {e} ({:?})", e.kind()),
    }
}

/// Reads `s` to its end and returns what came, failing on a reset or a timeout.
fn read_to_eof(s: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    s.read_to_end(&mut got)
        .unwrap_or_else(|e| panic!("expected a clean close, got {e} after {got:?}"));
    got
}

/// One GET of `/` on a fresh TLS connection, which is then closed.
fn hello_over_tls(server: &Running) {
    let mut s = connect_tls(server);
    send(&mut s, "GET", "/", "", b"");
    let resp = read_response(&mut s);
    assert_eq!((resp.status, &resp.body[..]), (200, http::HELLO));
}

fn https_routes(rt: Rt) {
    const LEN: usize = 300_000;
    let server = start(rt, LEN, |_| {});
    let mut s = connect_tls(&server);
    send(&mut s, "GET", "/", "", b"");
    let resp = read_response(&mut s);
    assert_eq!((resp.status, &resp.body[..]), (200, http::HELLO));
    assert_eq!(
        s.get_ref().conn.alpn_protocol(),
        None,
        "the client offered no ALPN"
    );
    // The file goes through rustls (no sendfile under TLS): every byte in place.
    send(&mut s, "GET", "/file", "", b"");
    let resp = read_response(&mut s);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body.len(), LEN);
    assert!(resp.body == http::file_pattern(LEN), "file content differs");
    let json = br#"{"tls":[1,2,3]}"#;
    send(&mut s, "POST", "/echo", "", json);
    let resp = read_response(&mut s);
    assert_eq!((resp.status, &resp.body[..]), (200, &json[..]));
    assert_eq!(resp.header("content-type"), Some("application/json"));
    send(&mut s, "GET", "/nope", "", b"");
    assert_eq!(read_response(&mut s).status, 404);
    // A malformed request inside TLS gets its 400 and a clean TLS close.
    s.get_mut().write_all(b"NOT HTTP\r\n\r\n").unwrap();
    s.get_mut().flush().unwrap();
    assert_eq!(read_response(&mut s).status, 400);
    assert_close_notify(&mut s);
    drop(s);
    // ALPN: a client offering http/1.1 gets it; one offering only h2 is refused.
    let mut alpn = (*server.client).clone();
    alpn.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let name = ServerName::try_from("localhost").unwrap();
    let conn = ClientConnection::new(Arc::new(alpn), name.clone()).unwrap();
    let mut s = BufReader::new(StreamOwned::new(conn, connect(server.addr)));
    send(&mut s, "GET", "/", "", b"");
    assert_eq!(read_response(&mut s).status, 200);
    assert_eq!(s.get_ref().conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    drop(s);
    let mut h2 = (*server.client).clone();
    h2.alpn_protocols = vec![b"h2".to_vec()];
    let mut conn = ClientConnection::new(Arc::new(h2), name).unwrap();
    let mut sock = connect(server.addr);
    let refused = loop {
        match conn.complete_io(&mut sock) {
            Err(e) => break Some(e),
            Ok(_) if !conn.is_handshaking() => break None,
            Ok(_) => {}
        }
    };
    let refused = refused.expect("a client offering only h2 is refused");
    assert!(
        refused.to_string().contains("NoApplicationProtocol"),
        "{refused}"
    );
    drop(sock);
    hello_over_tls(&server);
}

fn https_keep_alive(rt: Rt) {
    let server = start(rt, 1024, |_| {});
    let mut s = connect_tls(&server);
    for i in 0..20 {
        send(&mut s, "GET", "/", "", b"");
        let resp = read_response(&mut s);
        assert_eq!(resp.status, 200, "request {i}");
        assert_eq!(resp.body, http::HELLO, "request {i}");
        assert_eq!(
            resp.header("connection"),
            None,
            "request {i} keeps the connection"
        );
    }
    drop(s);
    assert_eq!(wait_for(&server.tls.handshakes, 1), 1, "one handshake");
    assert_eq!(wait_for(&server.ctl.stats.requests, 20), 20);
    assert_eq!(Stats::get(&server.ctl.stats.accepted), 1, "one connection");
    hello_over_tls(&server);
    assert_eq!(wait_for(&server.tls.handshakes, 2), 2);
    assert_eq!(Stats::get(&server.tls.handshake_failures), 0);
}

fn https_close_notify_on_connection_close_and_idle_timeout(rt: Rt) {
    let server = start(rt, 1024, |cfg| {
        cfg.idle_timeout = Duration::from_millis(300);
    });
    // `connection: close`: the response, then close_notify.
    let mut s = connect_tls(&server);
    send(&mut s, "GET", "/", "connection: close\r\n", b"");
    let resp = read_response(&mut s);
    assert_eq!(
        (resp.status, resp.header("connection")),
        (200, Some("close"))
    );
    assert_close_notify(&mut s);
    drop(s);
    // An idle keep-alive connection: closed after the idle timeout, with close_notify.
    let mut s = connect_tls(&server);
    send(&mut s, "GET", "/", "", b"");
    assert_eq!(read_response(&mut s).status, 200);
    assert_close_notify(&mut s);
    drop(s);
    // The client closes first, with its own close_notify: a clean end, not an error.
    let mut s = connect_tls(&server);
    send(&mut s, "GET", "/", "", b"");
    assert_eq!(read_response(&mut s).status, 200);
    let errors_before = Stats::get(&server.ctl.stats.conn_errors);
    s.get_mut().conn.send_close_notify();
    s.get_mut().flush().unwrap();
    assert_close_notify(&mut s);
    drop(s);
    hello_over_tls(&server);
    assert_eq!(Stats::get(&server.ctl.stats.conn_errors), errors_before);
}

fn https_stalled_handshake_dropped_at_deadline(rt: Rt) {
    const TIMEOUT: Duration = Duration::from_millis(1000);
    let server = start(rt, 1024, |cfg| cfg.header_timeout = TIMEOUT);
    // Sends a real ClientHello, reads the server's answer, never sends its Finished. (On a
    // loaded machine the server may reach the deadline before it answers: then nothing comes.)
    let start = Instant::now();
    let mut raw = connect(server.addr);
    let name = ServerName::try_from("localhost").unwrap();
    let mut client = ClientConnection::new(server.client.clone(), name).unwrap();
    client.write_tls(&mut raw).expect("send ClientHello");
    let flight = read_to_eof(&mut raw);
    let waited = start.elapsed();
    assert!(
        flight.is_empty() || flight[0] == 0x16,
        "the server answers a ClientHello with a handshake record: {flight:?}"
    );
    assert!(
        waited >= TIMEOUT,
        "dropped after {waited:?}, before the deadline"
    );
    assert!(waited < CLIENT_TIMEOUT, "dropped only after {waited:?}");
    drop(raw);
    assert!(wait_for(&server.tls.handshake_failures, 1) >= 1);
    // Half a ClientHello: a record header announcing more than ever comes.
    let start = Instant::now();
    let mut raw = connect(server.addr);
    raw.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .unwrap();
    assert_eq!(read_to_eof(&mut raw), b"", "nothing to answer yet");
    assert!(start.elapsed() >= TIMEOUT);
    drop(raw);
    assert!(wait_for(&server.tls.handshake_failures, 2) >= 2);
    // Nothing at all after the connect.
    let mut raw = connect(server.addr);
    assert_eq!(read_to_eof(&mut raw), b"");
    drop(raw);
    assert!(wait_for(&server.tls.handshake_failures, 3) >= 3);
    // The server still serves.
    hello_over_tls(&server);
    assert_eq!(wait_for(&server.tls.handshakes, 1), 1);
}

fn https_garbage_client_hello_clean_close(rt: Rt) {
    let server = start(rt, 1024, |_| {});
    // Plain HTTP on the TLS port: rustls refuses the first record.
    let mut raw = connect(server.addr);
    raw.write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .unwrap();
    let got = read_to_eof(&mut raw);
    assert!(
        got.is_empty() || got[0] == 0x15,
        "only a TLS alert may come back: {got:?}"
    );
    drop(raw);
    assert!(wait_for(&server.tls.handshake_failures, 1) >= 1);
    // A handshake record whose ClientHello is random bytes.
    let mut raw = connect(server.addr);
    let mut record = vec![0x16, 0x03, 0x01, 0x00, 0x40, 0x01, 0x00, 0x00, 0x3c];
    record.extend((0..0x3c).map(|i: u8| i.wrapping_mul(37)));
    raw.write_all(&record).unwrap();
    let got = read_to_eof(&mut raw);
    assert!(
        got.is_empty() || got[0] == 0x15,
        "only a TLS alert may come back: {got:?}"
    );
    drop(raw);
    assert!(wait_for(&server.tls.handshake_failures, 2) >= 2);
    // The server goes on.
    hello_over_tls(&server);
    assert_eq!(wait_for(&server.tls.handshakes, 1), 1);
}
