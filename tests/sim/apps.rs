//! The example servers under `zsync::sim`, with the network's faults: the very code of
//! `examples/common/` (included here with `#[path]`, as tests/servers.rs does) serving
//! simulated clients on simulated hosts, over many seeds.
//!
//! What is checked: the echo server (`common::echo::serve`) echoes every byte of many distinct
//! messages from concurrent clients, byte-exact, through latency, jitter, TCP loss and seeded
//! partitions and crashes, with clients that reconnect and retry; the HTTP server
//! (`common::http::serve`) answers `GET /`, `POST /echo`, `HEAD /file`, `GET /file` (the file on the
//! host's simulated disk, sent by the example's `send_file`) and an unknown route
//! correctly to keep-alive clients (a minimal HTTP/1.1 client parsed with httparse) through
//! seeded partitions, loss, and a crash and restart of its host while connections are open, and
//! keep-alive is used;
//! `zsync::pool` in front of a small key-value server (a line protocol written here, durable by
//! fsync before the acknowledgement) discards the connections a crash of the server broke, and
//! every request succeeds again after the restart, with every acknowledged write kept; and
//! `run_seeds` finds a planted bug, a client that retries a non-idempotent `INCR` after a
//! timeout so that the counter ends above the acknowledged increments, whose seed reproduces
//! the same failure with the same log, while the fixed protocol (request ids the server
//! deduplicates) passes every seed.
//!
//! Nothing here measures real time: the only real-time bound is a generous watchdog.

use crate::watchdog::watchdog;

use std::collections::BTreeMap;
use std::io::{self, ErrorKind, Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common;
use crate::common::http::{self, HttpConfig};
use crate::common::server::Control;
use zsync::net::{TcpListener, TcpStream};
use zsync::pool::{Manager, Pool, PoolError, Pooled};
use zsync::sim::{self, NetFaults, Sim, SimFailure};
use zsync::Io;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The errors a client of a faulty network expects, and retries: a timeout (of the attempt),
/// a connection reset, refused (a host restarting), aborted, closed under it.
fn retryable(e: &io::Error) -> bool {
    zsync::is_timed_out(e)
        || matches!(
            e.kind(),
            ErrorKind::TimedOut
                | ErrorKind::ConnectionReset
                | ErrorKind::ConnectionRefused
                | ErrorKind::ConnectionAborted
                | ErrorKind::BrokenPipe
                | ErrorKind::UnexpectedEof
        )
}

/// The pause before retry number `tries` (from 1): 10 ms more per try, up to 200 ms.
fn backoff(io: &Io, tries: u32) {
    io.sleep(ms(10 * u64::from(tries.min(20)))).unwrap();
}

/// Retries `attempt` (each bounded by `limit`) until it succeeds; every failure must be one a
/// faulty network explains. Returns the value and how many attempts failed.
fn with_retries<T>(
    io: &Io,
    limit: Duration,
    what: &str,
    mut attempt: impl FnMut(&Io) -> io::Result<T>,
) -> (T, u32) {
    let mut failed = 0;
    loop {
        match io.timeout(limit, &mut attempt) {
            Ok(v) => return (v, failed),
            Err(e) => {
                assert!(
                    retryable(&e),
                    "{what}: unexpected error: {e} ({:?})",
                    e.kind()
                );
                failed += 1;
                assert!(
                    failed < 500,
                    "{what}: still failing after 500 attempts: {e}"
                );
                backoff(io, failed);
            }
        }
    }
}

/// Reads one `\n`-terminated line from `s` (without the newline), a byte at a time (the
/// protocols here have short lines and the simulated reads cost no syscalls).
fn read_line(s: &mut TcpStream) -> io::Result<String> {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    loop {
        s.read_exact(&mut b)?;
        if b[0] == b'\n' {
            return String::from_utf8(line).map_err(|e| io::Error::new(ErrorKind::InvalidData, e));
        }
        line.push(b[0]);
    }
}

// ---------------------------------------------------------------------------------------------
// 1. The echo server.

/// Seeds the echo test runs.
const ECHO_SEEDS: u64 = 400;
/// Concurrent clients per run, and the messages each sends.
const ECHO_CLIENTS: usize = 4;
const ECHO_MESSAGES: usize = 30;

fn echo_faults() -> NetFaults {
    NetFaults::default()
        .latency(ms(1), ms(20))
        .loss(0.02)
        .partitions(ms(400), ms(300))
        .crashes(ms(800), ms(300))
}

/// Host "echo": the example's echo server on port 7, counting its boots.
fn echo_host(boots: Arc<AtomicU64>) -> impl Fn(&Io) -> io::Result<()> + Send + Sync + 'static {
    move |io| {
        boots.fetch_add(1, Ordering::Relaxed);
        let listener = TcpListener::bind(io, "0.0.0.0:7")?;
        let ctl = Control::new(false);
        common::echo::serve(io, &listener, &ctl, Duration::from_secs(10))
    }
}

/// Message `i` of client `c`: its own length (1 byte to 24 KB, so that some take several of the
/// server's 16 KiB reads) and bytes, with a header naming it.
fn echo_message(c: usize, i: usize) -> Vec<u8> {
    let len = 1 + (c * 7_919 + i * 104_729) % 24_000;
    let mut msg = format!("client {c} message {i}:").into_bytes();
    msg.extend((0..len).map(|j| ((c * 31 + i * 17 + j) % 251) as u8));
    msg
}

/// One client: sends its messages over one connection, each echo checked byte for byte; a
/// failed attempt drops the connection (what it held may have been half echoed) and retries on
/// a new one. Returns the failed attempts.
fn echo_client(io: &Io, c: usize) -> u64 {
    let mut conn: Option<TcpStream> = None;
    let mut failures = 0;
    for i in 0..ECHO_MESSAGES {
        let msg = echo_message(c, i);
        let (back, failed) = with_retries(io, ms(1_000), "echo", |io| {
            if conn.is_none() {
                conn = Some(TcpStream::connect(io, "echo:7")?);
            }
            let s = conn.as_mut().unwrap();
            let r = (|| {
                s.write_all(&msg)?;
                let mut back = vec![0; msg.len()];
                s.read_exact(&mut back)?;
                Ok(back)
            })();
            if r.is_err() {
                conn = None;
            }
            r
        });
        assert!(back == msg, "client {c}: message {i} came back changed");
        failures += u64::from(failed);
        io.sleep(ms(5)).unwrap();
    }
    failures
}

#[test]
fn the_echo_server_echoes_every_byte_through_loss_partitions_and_crashes() {
    watchdog(|| {
        let boots = Arc::new(AtomicU64::new(0));
        let retries = AtomicU64::new(0);
        let report = Sim::default()
            .network(echo_faults())
            .host("echo", echo_host(boots.clone()))
            .run_seeds(0..ECHO_SEEDS, |io| {
                let clients: Vec<_> = (0..ECHO_CLIENTS)
                    .map(|c| io.spawn(move |io| echo_client(io, c)))
                    .collect();
                for t in clients {
                    retries.fetch_add(t.join().unwrap(), Ordering::Relaxed);
                }
            });
        let report = report.unwrap_or_else(|f| panic!("{f}"));
        let restarts = boots.load(Ordering::Relaxed) - ECHO_SEEDS;
        let retries = retries.load(Ordering::Relaxed);
        eprintln!("echo: {report:?}; {restarts} restarts of the server, {retries} retries");
        assert_eq!(report.seeds, ECHO_SEEDS);
        // The faults did reach the clients.
        assert!(restarts > 0, "no seed crashed the server");
        assert!(retries > 0, "no client had to retry");
    });
}

// ---------------------------------------------------------------------------------------------
// 2. The HTTP server.

const HTTP_SEEDS: u64 = 300;
const HTTP_CLIENTS: usize = 3;
/// Rounds per client, each of four requests.
const HTTP_ROUNDS: usize = 6;
/// The length of the file `HEAD /file` describes.
const FILE_LEN: usize = 20_000;

/// Partitions that outlast a client's attempt (1 s), so that keep-alive connections are given
/// up on and opened again.
fn http_faults() -> NetFaults {
    NetFaults::default()
        .latency(ms(1), ms(20))
        .loss(0.02)
        .partitions(ms(500), ms(1_500))
}

/// Host "web": the example's HTTP server on port 80, serving `file`, which it writes on its
/// simulated disk first (once: a restart finds it there).
fn web_host(file: PathBuf) -> impl Fn(&Io) -> io::Result<()> + Send + Sync + 'static {
    move |io| {
        if zsync::fs::File::open(io, &file).is_err() {
            let mut f = zsync::fs::File::create(io, &file)?;
            f.write_all(&http::file_pattern(FILE_LEN))?;
            f.sync_all()?;
        }
        let listener = TcpListener::bind(io, "0.0.0.0:80")?;
        let ctl = Control::new(false);
        http::serve(io, &listener, HttpConfig::new(file.clone()), &ctl)
    }
}

/// A response as the client read it.
#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
}

/// A minimal keep-alive HTTP/1.1 client over `zsync::net::TcpStream`: one connection, reused
/// until it fails or the server closes it.
struct HttpClient {
    conn: Option<TcpStream>,
    /// Bytes read past the last response.
    buf: Vec<u8>,
    connects: u64,
    requests: u64,
}

impl HttpClient {
    fn new() -> HttpClient {
        HttpClient {
            conn: None,
            buf: Vec::new(),
            connects: 0,
            requests: 0,
        }
    }

    /// Sends one request and reads its response; drops the connection on any error.
    fn request(&mut self, io: &Io, method: &str, path: &str, body: &[u8]) -> io::Result<Response> {
        let r = self.try_request(io, method, path, body);
        if r.is_err() {
            self.conn = None;
            self.buf.clear();
        }
        r
    }

    fn try_request(
        &mut self,
        io: &Io,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> io::Result<Response> {
        if self.conn.is_none() {
            self.conn = Some(TcpStream::connect(io, "web:80")?);
            self.buf.clear();
            self.connects += 1;
        }
        let s = self.conn.as_mut().unwrap();
        let mut req = format!("{method} {path} HTTP/1.1\r\nhost: web\r\n").into_bytes();
        if !body.is_empty() {
            req.extend_from_slice(
                format!(
                    "content-type: application/json\r\ncontent-length: {}\r\n",
                    body.len()
                )
                .as_bytes(),
            );
        }
        req.extend_from_slice(b"\r\n");
        req.extend_from_slice(body);
        s.write_all(&req)?;
        self.requests += 1;
        // The head.
        let (head_len, status, headers) = loop {
            let mut slots = [httparse::EMPTY_HEADER; 32];
            let mut resp = httparse::Response::new(&mut slots);
            match resp.parse(&self.buf) {
                Ok(httparse::Status::Complete(n)) => {
                    let headers = resp
                        .headers
                        .iter()
                        .map(|h| (h.name.to_owned(), h.value.to_vec()))
                        .collect::<Vec<_>>();
                    break (n, resp.code.unwrap_or(0), headers);
                }
                Ok(httparse::Status::Partial) => {}
                Err(e) => panic!("malformed response head: {e}"),
            }
            let mut chunk = [0u8; 4096];
            let n = s.read(&mut chunk)?;
            if n == 0 {
                return Err(ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        };
        self.buf.drain(..head_len);
        let mut resp = Response {
            status,
            headers,
            body: Vec::new(),
        };
        let len: usize = match resp.header("content-length") {
            Some(v) => std::str::from_utf8(v).unwrap().parse().unwrap(),
            None => panic!("a response without content-length: {resp:?}"),
        };
        // A HEAD response announces a length but has no body.
        let body_len = if method == "HEAD" { 0 } else { len };
        while self.buf.len() < body_len {
            let mut chunk = [0u8; 4096];
            let n = s.read(&mut chunk)?;
            if n == 0 {
                return Err(ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
        resp.body = self.buf.drain(..body_len).collect();
        if resp
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case(b"close"))
        {
            self.conn = None;
            self.buf.clear();
        }
        Ok(resp)
    }
}

/// What one client did: connections opened, requests sent, attempts that failed.
struct ClientRun {
    connects: u64,
    requests: u64,
    failures: u64,
}

/// One client's rounds: `GET /`, `POST /echo`, `HEAD /file`, `GET /missing`, each retried
/// (all four are idempotent: the echo has no effect on the server) and checked.
fn http_client(io: &Io, c: usize) -> ClientRun {
    let mut client = HttpClient::new();
    let mut failures = 0;
    let mut call = |client: &mut HttpClient, method: &str, path: &str, body: &[u8]| {
        let (r, failed) = with_retries(io, ms(1_000), path, |io| {
            client.request(io, method, path, body)
        });
        failures += u64::from(failed);
        r
    };
    for round in 0..HTTP_ROUNDS {
        let r = call(&mut client, "GET", "/", b"");
        assert_eq!(r.status, 200);
        assert_eq!(r.body, http::HELLO);

        let json = format!(
            "{{\"client\":{c},\"round\":{round},\"pad\":\"{}\"}}",
            "x".repeat(100 + 400 * round)
        );
        let r = call(&mut client, "POST", "/echo", json.as_bytes());
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.header("content-type"), Some(&b"application/json"[..]));
        assert!(r.body == json.as_bytes(), "the echoed body differs");

        let r = call(&mut client, "HEAD", "/file", b"");
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("content-length"),
            Some(FILE_LEN.to_string().as_bytes())
        );
        assert!(r.body.is_empty());

        // The whole file, sent by the example's `send_file` (through the simulation's
        // operations): every byte in place.
        let r = call(&mut client, "GET", "/file", b"");
        assert_eq!(r.status, 200);
        assert!(
            r.body == http::file_pattern(FILE_LEN),
            "the file's bytes differ"
        );

        let r = call(&mut client, "GET", "/missing", b"");
        assert_eq!(r.status, 404);
    }
    ClientRun {
        connects: client.connects,
        requests: client.requests,
        failures,
    }
}

/// [`HTTP_CLIENTS`] clients at once; when they are done, their connections are closed.
fn http_clients(io: &Io) -> Vec<ClientRun> {
    let clients: Vec<_> = (0..HTTP_CLIENTS)
        .map(|c| io.spawn(move |io| http_client(io, c)))
        .collect();
    clients.into_iter().map(|t| t.join().unwrap()).collect()
}

/// Clients against "web" under the seeded faults, then a crash of "web" while the next clients
/// start (they wait for its restart, 300 ms later).
///
/// The crash comes while the first clients are served (their connections open, requests in
/// flight): they retry through it; the second clients start after the restart.
fn http_scenario(io: &Io) -> (Vec<ClientRun>, Vec<ClientRun>) {
    let start = io.now();
    let chaos = io.spawn(|io| {
        io.sleep(ms(CRASH_AT_MS))?;
        sim::crash(io, "web")?;
        io.sleep(ms(300))?;
        sim::restart(io, "web")?;
        Ok::<_, io::Error>(())
    });
    let before = http_clients(io);
    // The first clients were still at work when the host crashed.
    assert!(
        io.now() - start > ms(CRASH_AT_MS),
        "the crash came after the clients"
    );
    chaos.join().unwrap().unwrap();
    let after = http_clients(io);
    (before, after)
}

/// When the web host crashes, after the start of the first clients.
const CRASH_AT_MS: u64 = 200;

#[test]
fn the_http_server_answers_keep_alive_clients_through_faults_and_a_restart() {
    watchdog(|| {
        let file = PathBuf::from("/srv/file");
        let totals = Mutex::new((0u64, 0u64, 0u64));
        let report = Sim::default()
            .network(http_faults())
            .host("web", web_host(file))
            .run_seeds(0..HTTP_SEEDS, |io| {
                let (before, after) = http_scenario(io);
                let runs = || before.iter().chain(&after);
                let connects: u64 = runs().map(|r| r.connects).sum();
                let requests: u64 = runs().map(|r| r.requests).sum();
                // Keep-alive: connections carry several requests.
                assert!(
                    requests > 2 * connects,
                    "{requests} requests on {connects} connections"
                );
                let mut t = totals.lock().unwrap();
                t.0 += connects;
                t.1 += requests;
                t.2 += runs().map(|r| r.failures).sum::<u64>();
            });
        let report = report.unwrap_or_else(|f| panic!("{f}"));
        let (connects, requests, failures) = *totals.lock().unwrap();
        eprintln!(
            "http: {report:?}; {requests} requests on {connects} connections, \
             {failures} failed attempts"
        );
        assert!(failures > 0, "no attempt failed: the faults did not show");
    });
}

// ---------------------------------------------------------------------------------------------
// 3. A connection pool in front of a key-value server that crashes.

const POOL_SEEDS: u64 = 300;
const POOL_WORKERS: usize = 6;
const POOL_MAX: usize = 3;
/// Keys each worker writes (and reads back).
const POOL_KEYS: usize = 8;

fn pool_faults() -> NetFaults {
    NetFaults::default().latency(ms(1), ms(10)).loss(0.01)
}

/// The key-value server's state: the map, and the log that makes it durable.
struct Kv {
    map: BTreeMap<String, String>,
    log: zsync::fs::File,
}

/// Host "kv": a line protocol on port 6379 (`SET k v` → `OK`, `GET k` → `VALUE v` or `NONE`,
/// `PING` → `PONG`). A `SET` is appended to `/kv/log` and synced before its `OK`; a boot
/// replays the log (a torn last line, never acknowledged, is ignored).
fn kv_host(io: &Io) -> io::Result<()> {
    let mut map = BTreeMap::new();
    let text = zsync::fs::read(io, "/kv/log").unwrap_or_default();
    for line in text.split_inclusive(|&b| b == b'\n') {
        let Some(line) = line.strip_suffix(b"\n") else {
            break; // a torn last line: never acknowledged
        };
        let line = String::from_utf8_lossy(line);
        if let Some((k, v)) = line.split_once(' ') {
            map.insert(k.to_owned(), v.to_owned());
        }
    }
    let log = zsync::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(io, "/kv/log")?;
    let kv = Arc::new(zsync::sync::Mutex::new(Kv { map, log }));
    let listener = TcpListener::bind(io, "0.0.0.0:6379")?;
    loop {
        let (mut s, _) = listener.accept()?;
        let kv = kv.clone();
        io.spawn(move |_| -> io::Result<()> {
            loop {
                let line = read_line(&mut s)?;
                let reply = match line.split_once(' ') {
                    None if line == "PING" => "PONG".to_owned(),
                    Some(("GET", k)) => match kv.lock()?.map.get(k) {
                        Some(v) => format!("VALUE {v}"),
                        None => "NONE".to_owned(),
                    },
                    Some(("SET", kv_pair)) => {
                        let (k, v) = kv_pair.split_once(' ').expect("SET k v");
                        let mut kv = kv.lock()?;
                        kv.log.write_all(format!("{k} {v}\n").as_bytes())?;
                        kv.log.sync_data()?;
                        kv.map.insert(k.to_owned(), v.to_owned());
                        "OK".to_owned()
                    }
                    _ => "ERR".to_owned(),
                };
                s.write_all(format!("{reply}\n").as_bytes())?;
            }
        })
        .detach();
    }
}

/// A pooled connection to "kv", marked broken by any failed call.
struct KvConn {
    s: TcpStream,
    broken: bool,
}

impl KvConn {
    /// One request and its reply line, within 500 ms.
    fn call(&mut self, io: &Io, line: &str) -> io::Result<String> {
        let r = io.timeout(ms(500), |_| {
            self.s.write_all(format!("{line}\n").as_bytes())?;
            read_line(&mut self.s)
        });
        if r.is_err() {
            self.broken = true;
        }
        r
    }
}

/// Opens connections to "kv", checks them with a `PING` at checkout, and discards those a call
/// failed on.
struct KvManager {
    connects: AtomicU64,
}

impl Manager for KvManager {
    type Conn = KvConn;
    type Error = io::Error;

    fn connect(&self, io: &Io) -> io::Result<KvConn> {
        let s = io.timeout(ms(500), |io| TcpStream::connect(io, "kv:6379"))?;
        self.connects.fetch_add(1, Ordering::Relaxed);
        Ok(KvConn { s, broken: false })
    }

    fn check(&self, io: &Io, conn: &mut KvConn) -> io::Result<()> {
        match conn.call(io, "PING")?.as_str() {
            "PONG" => Ok(()),
            other => Err(io::Error::other(format!("PING answered {other:?}"))),
        }
    }

    fn has_broken(&self, conn: &mut KvConn) -> bool {
        conn.broken
    }
}

/// A checkout, its errors as `io::Error`s (a pool that is closed or canceled is a bug here).
fn checkout(io: &Io, pool: &Pool<KvManager>) -> io::Result<Pooled<KvManager>> {
    pool.get_timeout(io, Some(ms(1_000))).map_err(|e| match e {
        PoolError::Backend(e) => e,
        PoolError::Timeout => zsync::timed_out(),
        other => panic!("pool: {other:?}"),
    })
}

/// One request through the pool, retried (a fresh checkout each time) until it is answered.
fn kv_call(io: &Io, pool: &Pool<KvManager>, line: &str) -> String {
    with_retries(io, ms(2_000), line, |io| checkout(io, pool)?.call(io, line)).0
}

#[test]
fn the_pool_discards_connections_a_crash_broke_and_recovers_after_the_restart() {
    watchdog(|| {
        let discarded = AtomicU64::new(0);
        let report = Sim::default()
            .network(pool_faults())
            .host("kv", kv_host)
            .run_seeds(0..POOL_SEEDS, |io| {
                let pool = Pool::builder(KvManager {
                    connects: AtomicU64::new(0),
                })
                .max_size(POOL_MAX)
                .build(io)
                .unwrap();
                let done = Arc::new(AtomicU64::new(0));
                // Set once the server is back: each worker counts the keys it finished after.
                let restarted = Arc::new(std::sync::atomic::AtomicBool::new(false));
                let workers: Vec<_> = (0..POOL_WORKERS)
                    .map(|w| {
                        let (pool, done, restarted) =
                            (pool.clone(), done.clone(), restarted.clone());
                        io.spawn(move |io| {
                            let mut after_restart = 0;
                            for i in 0..POOL_KEYS {
                                let (k, v) = (format!("w{w}k{i}"), format!("v{i}.{w}"));
                                assert_eq!(kv_call(io, &pool, &format!("SET {k} {v}")), "OK");
                                assert_eq!(
                                    kv_call(io, &pool, &format!("GET {k}")),
                                    format!("VALUE {v}")
                                );
                                done.fetch_add(1, Ordering::Relaxed);
                                if restarted.load(Ordering::Relaxed) {
                                    after_restart += 1;
                                }
                                io.sleep(ms(10)).unwrap();
                            }
                            after_restart
                        })
                    })
                    .collect();
                // Halfway through, the server crashes (its connections, busy and idle, are
                // reset) and is back 300 ms later.
                while done.load(Ordering::Relaxed) < (POOL_WORKERS * POOL_KEYS / 2) as u64 {
                    io.sleep(ms(1)).unwrap();
                }
                let before = pool.status();
                assert!(before.size > 0, "{before:?}");
                sim::crash(io, "kv").unwrap();
                io.sleep(ms(300)).unwrap();
                sim::restart(io, "kv").unwrap();
                restarted.store(true, Ordering::Relaxed);
                let mut after_restart = 0;
                for t in workers {
                    after_restart += t.join().unwrap();
                }
                // Requests succeeded after the restart, every acknowledged write is there (the
                // crash lost nothing that was synced), and the pool stayed within its size.
                assert!(after_restart > 0, "nothing succeeded after the restart");
                for w in 0..POOL_WORKERS {
                    for i in 0..POOL_KEYS {
                        assert_eq!(
                            kv_call(io, &pool, &format!("GET w{w}k{i}")),
                            format!("VALUE v{i}.{w}")
                        );
                    }
                }
                // Every connection the pool holds works: checking out as many as it may hold
                // at once (each checked with a `PING`) finds those the crash broke and are still
                // idle, which are discarded; a call on each that is handed out succeeds.
                let mut held: Vec<_> = (0..POOL_MAX)
                    .map(|_| with_retries(io, ms(2_000), "checkout", |io| checkout(io, &pool)).0)
                    .collect();
                for conn in &mut held {
                    assert_eq!(conn.call(io, "PING").unwrap(), "PONG");
                }
                drop(held);
                let status = pool.status();
                assert!(status.size <= POOL_MAX, "{status:?}");
                // The connections the crash broke (at least those idle then) were discarded, not
                // handed out again: new ones were opened.
                assert!(
                    status.discarded >= before.idle.max(1) as u64,
                    "idle at the crash: {}, {status:?}",
                    before.idle
                );
                let connects = pool.manager().connects.load(Ordering::Relaxed);
                assert!(
                    connects > before.size as u64,
                    "{connects} connects, {status:?}"
                );
                discarded.fetch_add(status.discarded, Ordering::Relaxed);
            });
        let report = report.unwrap_or_else(|f| panic!("{f}"));
        eprintln!(
            "pool: {report:?}; {} connections discarded",
            discarded.load(Ordering::Relaxed)
        );
    });
}

// ---------------------------------------------------------------------------------------------
// 4. A planted bug, found by seed search.

/// Seeds searched for the planted bug, and run on the fixed protocol.
const COUNTER_SEARCH: u64 = 100;
const COUNTER_SEEDS: u64 = 300;
const COUNTER_CLIENTS: usize = 3;
const INCREMENTS: u64 = 20;

fn counter_faults() -> NetFaults {
    NetFaults::default()
        .latency(ms(1), ms(20))
        .loss(0.02)
        .partitions(ms(400), ms(300))
}

/// Host "counter": a counter on port 9000 (`INCR` → `OK`, `GET` → `VALUE n`). With `dedup`,
/// an increment carries a request id (`INCR client seq`) and one the server has seen (a
/// client's retry, or a late copy) is acknowledged again but not counted again.
fn counter_host(dedup: bool) -> impl Fn(&Io) -> io::Result<()> + Send + Sync + 'static {
    move |io| {
        // (count, highest sequence number counted per client); no I/O while it is locked.
        let state = Arc::new(Mutex::new((0u64, BTreeMap::<String, u64>::new())));
        let listener = TcpListener::bind(io, "0.0.0.0:9000")?;
        loop {
            let (mut s, _) = listener.accept()?;
            let state = state.clone();
            io.spawn(move |_| -> io::Result<()> {
                loop {
                    let line = read_line(&mut s)?;
                    let mut words = line.split(' ');
                    let reply = match words.next() {
                        Some("INCR") => {
                            let mut st = state.lock().unwrap();
                            match (dedup, words.next(), words.next()) {
                                (false, None, _) => st.0 += 1,
                                (true, Some(client), Some(seq)) => {
                                    let seq: u64 = seq.parse().unwrap();
                                    let last = st.1.entry(client.to_owned()).or_insert(0);
                                    if seq > *last {
                                        *last = seq;
                                        st.0 += 1;
                                    }
                                }
                                _ => panic!("bad INCR: {line:?}"),
                            }
                            "OK".to_owned()
                        }
                        Some("GET") => format!("VALUE {}", state.lock().unwrap().0),
                        _ => "ERR".to_owned(),
                    };
                    s.write_all(format!("{reply}\n").as_bytes())?;
                }
            })
            .detach();
        }
    }
}

/// The counter's simulation, buggy or fixed.
fn counter_sim(dedup: bool) -> Sim {
    Sim::default()
        .network(counter_faults())
        .host("counter", counter_host(dedup))
}

/// Sends `line` on the client's connection (opened if need be) and reads the reply, retried
/// until answered; a failed attempt drops the connection.
fn counter_call(io: &Io, conn: &mut Option<TcpStream>, line: &str) -> String {
    with_retries(io, ms(300), line, |io| {
        if conn.is_none() {
            *conn = Some(TcpStream::connect(io, "counter:9000")?);
        }
        let s = conn.as_mut().unwrap();
        let r = s
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|()| read_line(s));
        if r.is_err() {
            *conn = None;
        }
        r
    })
    .0
}

/// Clients increment the counter [`INCREMENTS`] times each, retrying each increment until it
/// is acknowledged; then the counter must be exactly the number of acknowledged increments.
/// Without `dedup`, a retry of an increment the server counted but whose `OK` was late or lost
/// counts it twice: the planted bug.
fn counter_scenario(io: &Io, dedup: bool) {
    let clients: Vec<_> = (0..COUNTER_CLIENTS)
        .map(|c| {
            io.spawn(move |io| {
                let mut conn = None;
                for seq in 1..=INCREMENTS {
                    let line = if dedup {
                        format!("INCR c{c} {seq}")
                    } else {
                        "INCR".to_owned()
                    };
                    assert_eq!(counter_call(io, &mut conn, &line), "OK");
                }
                INCREMENTS
            })
        })
        .collect();
    let acked: u64 = clients.into_iter().map(|t| t.join().unwrap()).sum();
    // Let late copies of abandoned attempts arrive (a partition lasts at most 300 ms).
    io.sleep(ms(1_000)).unwrap();
    let mut conn = None;
    let reply = counter_call(io, &mut conn, "GET");
    let value: u64 = reply
        .strip_prefix("VALUE ")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("GET answered {reply:?}"));
    assert!(
        value >= acked,
        "acknowledged increments were lost: {value} < {acked}"
    );
    assert!(
        value == acked,
        "the counter is {value}, {} more than the {acked} increments acknowledged",
        value - acked
    );
}

#[test]
fn seed_search_finds_a_retried_non_idempotent_increment_and_the_fix_passes() {
    watchdog(|| {
        let failure: SimFailure = counter_sim(false)
            .run_seeds(0..COUNTER_SEARCH, |io| counter_scenario(io, false))
            .expect_err("the planted double increment went unnoticed");
        eprintln!("planted bug found: {failure}");
        assert!(failure.seed < COUNTER_SEARCH);
        assert!(
            failure.error.contains("increments acknowledged"),
            "{}",
            failure.error
        );
        // The seed reproduces it: the same error, the same log.
        let again = Sim::new(failure.seed)
            .network(counter_faults())
            .host("counter", counter_host(false))
            .try_run(|io| counter_scenario(io, false))
            .expect_err("the failing seed passed when run again");
        assert_eq!(again.seed, failure.seed);
        assert_eq!(again.error, failure.error);
        assert_eq!(again.log.fingerprint(), failure.log.fingerprint());
        assert_eq!(again.elapsed, failure.elapsed);
        // Request ids fix it, on every seed.
        let report = counter_sim(true)
            .run_seeds(0..COUNTER_SEEDS, |io| counter_scenario(io, true))
            .unwrap_or_else(|f| panic!("{f}"));
        eprintln!("counter with request ids: {report:?}");
    });
}
