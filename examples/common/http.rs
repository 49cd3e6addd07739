//! The HTTP/1.1 server: a colorblind connection handler ([`handle`]) and the accept loop around
//! it ([`serve`]).
//!
//! Routes:
//!
//! | request | response |
//! |---|---|
//! | `GET /` (and `HEAD`) | `200`, `text/plain`, `Hello, World!` — the benchmark route |
//! | `GET /file` (and `HEAD`) | `200`, `application/octet-stream`, the whole file, sent with `Writer::send_file` (`sendfile(2)`) |
//! | `POST /echo` | the body back with `application/json` if it parses as JSON, else `400` |
//! | a known path, another method | `405` with `allow` |
//! | anything else | `404` |
//!
//! Protocol: keep-alive by default on HTTP/1.1 (`connection: close` honoured; HTTP/1.0 keeps the
//! connection only with `connection: keep-alive`), pipelining (requests already buffered are
//! answered into the buffered writer, and the responses leave together in one write when the
//! handler runs out of buffered requests), `expect: 100-continue` on `/echo` (ignored in an
//! HTTP/1.0 request, as RFC 9110 §10.1.1 requires). Request bodies need a `content-length` of at
//! most [`MAX_BODY`]; `transfer-encoding` (chunked uploads) is answered with `501` and the
//! connection closed — not needed by any client of these examples.
//!
//! Robustness, each covered by `tests/servers.rs`:
//!
//! - a request httparse rejects, a bad `content-length`: `400`, connection closed;
//! - an HTTP/1.1 request without `Host`, any request with more than one `Host` or an invalid
//!   one (RFC 9112 §3.2): `400`, connection closed;
//! - a request target over [`MAX_TARGET_BYTES`]: `414`, connection closed (as soon as that many
//!   bytes of target have arrived);
//! - a request head over [`MAX_HEAD_BYTES`] or with more than [`MAX_HEADERS`] headers: `431`,
//!   connection closed;
//! - a head not complete within `header_timeout` of its first byte (of the accept, for the
//!   first request) — a slowloris client: connection closed without a response; an idle
//!   keep-alive connection is closed after `idle_timeout`;
//! - a client that stops reading: every write that reaches the socket (a flush, a large body,
//!   a file transfer, the last flush when the handler returns) waits at most `write_timeout`,
//!   then the connection is closed;
//! - a client that goes away mid-response: the write fails, the handler returns the error (counted,
//!   logged with `--verbose` only), the other connections are not affected.
//!
//! Memory per connection is bounded: requests are read into a fixed [`READ_BUF`]-byte buffer
//! (the server reads the next pipelined requests only when it has answered those buffered, so a
//! client that pipelines without reading stalls in its own socket buffers, not in the server),
//! responses into a fixed [`WRITE_BUF`]-byte buffer; only `/echo` holds a body, of at most
//! [`MAX_BODY`], and those bodies are held against one budget shared by every connection
//! ([`MemoryBudget`], `request_memory` in [`HttpConfig`]): a body that does not fit gets `503`
//! and the connection is closed.
//!
//! Every blocking step runs under a deadline (`Io::timeout_until`), so no client can hold a
//! connection's task forever, on any model.

use std::cell::Cell;
use std::io::{self, Read, Write};
use std::mem::MaybeUninit;
use std::net::Shutdown;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use zsync::bufio::{Reader, Writer};
use zsync::fs::File;
use zsync::net::{TcpListener, TcpStream};
use zsync::Io;

use super::server::{accept_loop, is_timeout, Control, Stats};

/// The largest request head (request line and headers) accepted; larger heads get `431`.
pub const MAX_HEAD_BYTES: usize = 8 * 1024;
/// The longest request target accepted; longer ones get `414`.
pub const MAX_TARGET_BYTES: usize = 4 * 1024;
/// The most headers a request may carry; more get `431`.
pub const MAX_HEADERS: usize = 64;
/// The largest request body accepted (`POST /echo`); larger ones get `413`.
pub const MAX_BODY: u64 = 1 << 20;
/// The body of `GET /`.
pub const HELLO: &[u8] = b"Hello, World!";
/// The body of the `503` a request gets when its body does not fit in the request memory.
const BUSY: &[u8] = b"request memory budget spent, retry later\n";
/// The default of [`HttpConfig::request_memory`]: the request bodies buffered at once, over
/// every connection.
pub const DEFAULT_REQUEST_MEMORY: usize = 64 << 20;
/// Read buffer per connection: larger than [`MAX_HEAD_BYTES`], so that an oversized head is
/// seen as such (and pipelined requests fit behind a full-sized one).
pub const READ_BUF: usize = 16 * 1024;
/// Write buffer per connection: pipelined responses accumulate here and leave in one write.
pub const WRITE_BUF: usize = 16 * 1024;
/// How long a closing connection keeps reading (and discarding) what the client still sends, so
/// that the final response is not destroyed by a reset (see [`close_gracefully`]).
const LINGER: Duration = Duration::from_millis(500);
/// How much a closing connection reads and discards at most.
const LINGER_BYTES: u64 = 256 * 1024;

/// The server's settings.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// How long a request head may take to arrive, from its first byte (from the accept for the
    /// first request of a connection); the body gets the same time again.
    pub header_timeout: Duration,
    /// How long a keep-alive connection may sit idle between requests.
    pub idle_timeout: Duration,
    /// How long one write (a flush, a body larger than the write buffer, a file transfer) may
    /// wait for the client to read.
    pub write_timeout: Duration,
    /// The budget request bodies are held against, shared by every connection (a clone of the
    /// config shares it too): a body that does not fit gets `503`.
    pub request_memory: Arc<MemoryBudget>,
    /// The file `GET /file` serves.
    pub file: PathBuf,
}

impl HttpConfig {
    /// The defaults of `http_server` (header timeout 5 s, idle 60 s, write 30 s, 64 MiB of
    /// request bodies) for `file`.
    pub fn new(file: PathBuf) -> HttpConfig {
        HttpConfig {
            header_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(30),
            request_memory: Arc::new(MemoryBudget::new(DEFAULT_REQUEST_MEMORY)),
            file,
        }
    }
}

/// A limit on the bytes of request data held at once over every connection: a counter that a
/// connection raises before it allocates a body ([`try_acquire`](Self::try_acquire)) and lowers
/// when it frees it (the [`Permit`]'s drop). Without it, each connection may hold a body of up
/// to [`MAX_BODY`] for as long as its client takes to read the response, so a few hundred
/// clients that upload without reading hold hundreds of megabytes.
///
/// Thread-safe; the atomics are relaxed because the count publishes no data, it only limits.
#[derive(Debug)]
pub struct MemoryBudget {
    cap: usize,
    /// Bytes held by live permits.
    in_use: AtomicUsize,
    /// The most `in_use` has been.
    peak: AtomicUsize,
    /// Acquisitions refused because they did not fit.
    refused: AtomicU64,
}

impl MemoryBudget {
    /// A budget of `cap` bytes.
    pub fn new(cap: usize) -> MemoryBudget {
        MemoryBudget {
            cap,
            in_use: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
        }
    }

    /// Reserves `n` bytes, or returns `None` (and counts a refusal) if they do not fit beside
    /// those already held. The bytes are returned when the permit is dropped.
    pub fn try_acquire(&self, n: usize) -> Option<Permit<'_>> {
        let mut held = self.in_use.load(Ordering::Relaxed);
        loop {
            let Some(total) = held.checked_add(n).filter(|&t| t <= self.cap) else {
                self.refused.fetch_add(1, Ordering::Relaxed);
                return None;
            };
            match self.in_use.compare_exchange_weak(
                held,
                total,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    self.peak.fetch_max(total, Ordering::Relaxed);
                    return Some(Permit { budget: self, n });
                }
                Err(now) => held = now,
            }
        }
    }

    /// The budget's size in bytes.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// The bytes held right now.
    pub fn in_use(&self) -> usize {
        self.in_use.load(Ordering::Relaxed)
    }

    /// The most bytes held at once so far (never more than [`cap`](Self::cap)).
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// How many acquisitions were refused so far (each one a `503`).
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

/// Bytes held against a [`MemoryBudget`], returned to it on drop.
#[derive(Debug)]
pub struct Permit<'a> {
    budget: &'a MemoryBudget,
    n: usize,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.budget.in_use.fetch_sub(self.n, Ordering::Relaxed);
    }
}

/// What every connection's handler shares: the settings, the open file, the control block.
#[derive(Debug)]
pub struct HttpApp {
    cfg: HttpConfig,
    /// `GET /file`'s file, opened once; `send_file` reads it at explicit offsets, so every
    /// connection can share it.
    file: File,
    file_len: u64,
    ctl: Arc<Control>,
}

impl HttpApp {
    /// Opens the file of `cfg` on `io`.
    pub fn new(io: &Io, cfg: HttpConfig, ctl: Arc<Control>) -> io::Result<HttpApp> {
        // Through `io`, as every operation of the server: on a simulation, the file is on the
        // simulated disk.
        let file = File::open(io, &cfg.file)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", cfg.file.display())))?;
        let file_len = file.metadata()?.len();
        Ok(HttpApp {
            cfg,
            file,
            file_len,
            ctl,
        })
    }

    /// The server's settings.
    pub fn config(&self) -> &HttpConfig {
        &self.cfg
    }

    /// The control block: stop switch, counters, log level.
    pub fn control(&self) -> &Control {
        &self.ctl
    }
}

/// Serves HTTP on `listener` until `ctl` is stopped: the accept loop of
/// [`accept_loop`](super::server::accept_loop) with [`handle`] on every connection.
pub fn serve(
    io: &Io,
    listener: &TcpListener,
    cfg: HttpConfig,
    ctl: &Arc<Control>,
) -> io::Result<()> {
    let app = Arc::new(HttpApp::new(io, cfg, ctl.clone())?);
    accept_loop(
        io,
        listener,
        ctl,
        Arc::new(move |io: &Io, conn: TcpStream| handle(io, conn, &app)),
    )
}

/// The bytes of the generated file `GET /file` serves by default: a repeating pattern that
/// makes a misplaced or missing byte visible.
pub fn file_pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// Writes `len` bytes of [`file_pattern`] to `dir/name` and returns the path.
pub fn generate_file(dir: &Path, name: &str, len: usize) -> io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(name);
    std::fs::write(&path, file_pattern(len))?;
    Ok(path)
}

/// What the handler needs of a parsed request head: owned, so the read buffer is free again.
#[derive(Debug, Clone, Copy)]
struct Head {
    /// Length of the head in the read buffer, final blank line included.
    len: usize,
    method: Method,
    route: Route,
    keep_alive: bool,
    content_length: u64,
    expect_continue: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Get,
    Head,
    Post,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Hello,
    File,
    Echo,
    NotFound,
}

/// A response status: code and reason phrase, as written on the status line.
type Status = &'static str;
const OK: Status = "200 OK";
const BAD_REQUEST: Status = "400 Bad Request";
const NOT_FOUND: Status = "404 Not Found";
const METHOD_NOT_ALLOWED: Status = "405 Method Not Allowed";
const CONTENT_TOO_LARGE: Status = "413 Content Too Large";
const URI_TOO_LONG: Status = "414 URI Too Long";
const HEADERS_TOO_LARGE: Status = "431 Request Header Fields Too Large";
const NOT_IMPLEMENTED: Status = "501 Not Implemented";
const SERVICE_UNAVAILABLE: Status = "503 Service Unavailable";

/// The outcome of parsing the start of the read buffer.
enum Parsed {
    Complete(Head),
    /// More bytes are needed.
    Partial,
    /// Not a request this server accepts: answer with the status and close.
    Invalid(Status, &'static str),
    /// More headers than the slots given (only from [`parse_with`]; [`parse`] then retries).
    MoreSlots,
}

/// Header slots on the stack for [`parse`]'s first attempt: enough for ordinary requests. A
/// request with more headers is parsed again with [`MAX_HEADERS`] slots on the heap. The
/// handler runs on a fiber stack on Green, where every page its deepest call touches stays
/// committed for the connection's life: 64 slots of 32 bytes on the stack made the request
/// path one page deeper (see "Memory per connection" in docs/ARCHITECTURE.md).
const FEW_HEADERS: usize = 16;

/// Parses the request head at the start of `buf` with httparse.
fn parse(buf: &[u8]) -> Parsed {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; FEW_HEADERS];
    match parse_with(buf, &mut slots) {
        Parsed::MoreSlots => parse_many(buf),
        parsed => parsed,
    }
}

/// [`parse`] of a request with more than [`FEW_HEADERS`] headers: the slots on the heap.
#[cold]
#[inline(never)]
fn parse_many(buf: &[u8]) -> Parsed {
    let mut slots = Vec::with_capacity(MAX_HEADERS);
    parse_with(buf, &mut slots.spare_capacity_mut()[..MAX_HEADERS])
}

/// Parses the request head at the start of `buf` into `slots`: [`Parsed::MoreSlots`] if it has
/// more headers than `slots` holds while that is fewer than [`MAX_HEADERS`].
fn parse_with<'b>(buf: &'b [u8], slots: &mut [MaybeUninit<httparse::Header<'b>>]) -> Parsed {
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, slots) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial)
            if buf.len() > MAX_TARGET_BYTES && partial_target_len(buf) > MAX_TARGET_BYTES =>
        {
            return Parsed::Invalid(URI_TOO_LONG, "request target over 4 KiB")
        }
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD_BYTES => {
            return Parsed::Invalid(HEADERS_TOO_LARGE, "request head over 8 KiB")
        }
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) if slots.len() < MAX_HEADERS => {
            return Parsed::MoreSlots
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Parsed::Invalid(HEADERS_TOO_LARGE, "more than 64 headers")
        }
        Err(_) => return Parsed::Invalid(BAD_REQUEST, "malformed request head"),
    };
    let path = req.path.unwrap_or("");
    if path.len() > MAX_TARGET_BYTES {
        return Parsed::Invalid(URI_TOO_LONG, "request target over 4 KiB");
    }
    if len > MAX_HEAD_BYTES {
        return Parsed::Invalid(HEADERS_TOO_LARGE, "request head over 8 KiB");
    }
    let method = match req.method {
        Some("GET") => Method::Get,
        Some("HEAD") => Method::Head,
        Some("POST") => Method::Post,
        _ => Method::Other,
    };
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    let route = match path {
        "/" => Route::Hello,
        "/file" => Route::File,
        "/echo" => Route::Echo,
        _ => Route::NotFound,
    };
    let http11 = req.version == Some(1);
    let mut keep_alive = http11;
    let mut content_length: Option<u64> = None;
    let mut expect_continue = false;
    let mut host_seen = false;
    for h in req.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("host") {
            if host_seen {
                return Parsed::Invalid(BAD_REQUEST, "more than one host header");
            }
            if !valid_host(h.value.trim_ascii()) {
                return Parsed::Invalid(BAD_REQUEST, "invalid host header");
            }
            host_seen = true;
        } else if name.eq_ignore_ascii_case("content-length") {
            let Some(n) = std::str::from_utf8(h.value)
                .ok()
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<u64>().ok())
            else {
                return Parsed::Invalid(BAD_REQUEST, "invalid content-length");
            };
            if content_length.is_some_and(|prev| prev != n) {
                return Parsed::Invalid(BAD_REQUEST, "conflicting content-length headers");
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Parsed::Invalid(NOT_IMPLEMENTED, "transfer-encoding is not supported");
        } else if name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && !http11 {
                    keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("expect") {
            if h.value.trim_ascii().eq_ignore_ascii_case(b"100-continue") {
                // An HTTP/1.0 client may not understand a `100`: RFC 9110 §10.1.1 says to
                // ignore its expectation.
                expect_continue = http11;
            } else {
                return Parsed::Invalid("417 Expectation Failed", "unsupported expect");
            }
        }
    }
    if http11 && !host_seen {
        return Parsed::Invalid(BAD_REQUEST, "HTTP/1.1 request without a host header");
    }
    Parsed::Complete(Head {
        len,
        method,
        route,
        keep_alive,
        content_length: content_length.unwrap_or(0),
        expect_continue,
    })
}

/// How many bytes of request target the incomplete head in `buf` holds so far: from the space
/// after the method to the next space, the end of the line or the end of `buf`.
fn partial_target_len(buf: &[u8]) -> usize {
    let line = buf.split(|&b| b == b'\n').next().unwrap_or(buf);
    let Some(space) = line.iter().position(|&b| b == b' ') else {
        return 0;
    };
    let target = &line[space + 1..];
    target
        .iter()
        .position(|&b| b == b' ' || b == b'\r')
        .unwrap_or(target.len())
}

/// Whether `value` is a valid `Host` field value (RFC 9110 §7.2: `uri-host [ ":" port ]`, with
/// `uri-host` an IP literal in brackets, an IPv4 address or a registered name; RFC 3986 §3.2.2).
/// An empty value is valid (a target without an authority). The IP literal is checked for its
/// alphabet only, not parsed.
fn valid_host(value: &[u8]) -> bool {
    fn unreserved_or_sub_delim(b: u8) -> bool {
        b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(&b)
    }
    let (host_ok, port) = if let Some(rest) = value.strip_prefix(b"[") {
        let Some(close) = rest.iter().position(|&b| b == b']') else {
            return false;
        };
        let literal = &rest[..close];
        let ok = !literal.is_empty()
            && literal
                .iter()
                .all(|&b| b == b':' || unreserved_or_sub_delim(b));
        (ok, &rest[close + 1..])
    } else {
        let end = value.iter().position(|&b| b == b':').unwrap_or(value.len());
        let (name, port) = value.split_at(end);
        // reg-name: unreserved, sub-delims and percent-encoded octets (an IPv4 address is one).
        let mut ok = true;
        let mut i = 0;
        while i < name.len() && ok {
            if name[i] == b'%' {
                ok = name.len() > i + 2
                    && name[i + 1].is_ascii_hexdigit()
                    && name[i + 2].is_ascii_hexdigit();
                i += 3;
            } else {
                ok = unreserved_or_sub_delim(name[i]);
                i += 1;
            }
        }
        (ok, port)
    };
    let port_ok = match port.split_first() {
        None => true,
        Some((b':', digits)) => digits.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    };
    host_ok && port_ok
}

/// A connection the handler can serve: plain TCP ([`TcpStream`]) or TLS
/// ([`TlsStream`](super::tls::TlsStream)). The handler is generic over it, so the plain path is
/// compiled as if it were the only one (`handle` is [`serve_conn`] on a `TcpStream`).
pub trait Conn {
    /// What the buffered reader and writer hold: a shared reference that reads and writes (the
    /// reader and the writer are used in turn, never at once).
    type Stream<'a>: Read + Write
    where
        Self: 'a;

    /// The connection's buffered reader, with a buffer of `capacity` bytes.
    fn reader(&self, capacity: usize) -> Reader<Self::Stream<'_>>;

    /// The connection's buffered writer, with a buffer of `capacity` bytes.
    fn writer(&self, capacity: usize) -> Writer<Self::Stream<'_>>;

    /// Flushes `wr`, then sends `len` bytes of `file` from `offset`; returns the bytes sent
    /// (fewer only if the file ends first). Cancellation point.
    fn send_file<'c>(
        wr: &mut Writer<Self::Stream<'c>>,
        file: &File,
        offset: u64,
        len: u64,
    ) -> io::Result<u64>
    where
        Self: 'c;

    /// Ends the server's direction of the connection, so that the client sees the end of the
    /// stream: TCP's `shutdown(SHUT_WR)`, preceded on TLS by a `close_notify` alert.
    fn close_write(&self) -> io::Result<()>;
}

impl Conn for TcpStream {
    type Stream<'a> = &'a TcpStream;

    /// An [`on_demand`](Reader::on_demand) reader: an idle connection holds no read buffer.
    fn reader(&self, capacity: usize) -> Reader<&TcpStream> {
        Reader::on_demand(capacity, self)
    }

    fn writer(&self, capacity: usize) -> Writer<&TcpStream> {
        Writer::with_capacity(capacity, self)
    }

    /// `Writer::send_file`: `sendfile(2)`.
    fn send_file<'c>(
        wr: &mut Writer<&'c TcpStream>,
        file: &File,
        offset: u64,
        len: u64,
    ) -> io::Result<u64>
    where
        Self: 'c,
    {
        wr.send_file(file, offset, len)
    }

    fn close_write(&self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }
}

type ConnReader<'a, C> = Reader<<C as Conn>::Stream<'a>>;
type ConnWriter<'a, C> = Writer<<C as Conn>::Stream<'a>>;

/// A connection's buffered writer with the write deadline on every write that can block. A
/// write that fits in the buffer's spare room is a copy and needs none; anything that reaches
/// the socket — a flush, a body larger than the room, a file transfer, the last flush when the
/// handler returns — waits at most `timeout` for the client to read, then fails with
/// `TimedOut`. So a client that stops reading cannot hold its connection (and whatever the
/// handler holds, such as a request body) for longer than that.
struct Out<'c, C: Conn> {
    io: &'c Io,
    conn: &'c C,
    wr: ConnWriter<'c, C>,
    timeout: Duration,
}

impl<'c, C: Conn> Out<'c, C> {
    fn new(io: &'c Io, conn: &'c C, timeout: Duration) -> Out<'c, C> {
        Out {
            io,
            conn,
            wr: conn.writer(WRITE_BUF),
            timeout,
        }
    }

    /// Whether responses are buffered, not yet sent.
    fn has_pending(&self) -> bool {
        !self.wr.buffer().is_empty()
    }

    /// Whether `n` more bytes fit in the buffer: writing them is a copy, not a syscall.
    fn has_room_for(&self, n: usize) -> bool {
        n <= self.wr.capacity() - self.wr.buffer().len()
    }

    /// Runs `f` on the writer with the write timeout as its deadline.
    fn timed<T>(
        &mut self,
        f: impl FnOnce(&mut ConnWriter<'c, C>) -> io::Result<T>,
    ) -> io::Result<T> {
        let wr = &mut self.wr;
        self.io
            .timeout_until(self.io.now() + self.timeout, |_| f(wr))
    }

    /// Sends the buffered responses.
    fn flush_buf(&mut self) -> io::Result<()> {
        self.timed(|wr| wr.flush_buf())
    }

    /// Sends the buffered responses, then `len` bytes of `file` from `offset` (`sendfile(2)`),
    /// all within one write timeout.
    fn send_file(&mut self, file: &File, offset: u64, len: u64) -> io::Result<u64> {
        self.timed(|wr| C::send_file(wr, file, offset, len))
    }
}

impl<C: Conn> Write for Out<'_, C> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.has_room_for(data.len()) {
            return self.wr.write(data);
        }
        self.timed(|wr| wr.write(data))
    }

    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        if self.has_room_for(data.len()) {
            return self.wr.write_all(data);
        }
        self.timed(|wr| wr.write_all(data))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.timed(|wr| wr.flush())
    }
}

impl<C: Conn> Drop for Out<'_, C> {
    /// `Writer`'s own drop flushes what is still buffered with no deadline: into a client that
    /// does not read, that waits for ever. Every ordinary end of a connection has flushed
    /// already, so what is left belongs to one that failed; it gets one try, under a deadline
    /// that has already passed (what the socket takes at once is sent, nothing is waited for).
    fn drop(&mut self) {
        let wr = std::mem::replace(&mut self.wr, self.conn.writer(0));
        let io = self.io;
        io.timeout_until(io.now(), move |_| drop(wr));
    }
}

/// Serves one connection until the client closes it, asks to close it, sends something this
/// server refuses, or times out. Colorblind: the same code on every model.
///
/// Returns `Ok` for the ordinary ends (the client closed between requests or asked to close,
/// an idle keep-alive connection timed out) and an error otherwise (a refused request, a
/// slowloris head, a client that vanished mid-response…), for the accept loop to count and log.
pub fn handle(io: &Io, conn: TcpStream, app: &HttpApp) -> io::Result<()> {
    conn.set_nodelay(true)?;
    serve_conn(io, &conn, app, io.now() + app.cfg.header_timeout)
}

/// [`handle`] on any [`Conn`]: serves requests on `conn` until the client closes it, asks to
/// close it, sends something this server refuses, or times out. The first request's head must
/// be complete by `first_head_deadline` (on TLS, the handshake ran against the same deadline).
pub fn serve_conn<C: Conn>(
    io: &Io,
    conn: &C,
    app: &HttpApp,
    first_head_deadline: Instant,
) -> io::Result<()> {
    let mut rd = conn.reader(READ_BUF);
    let mut out = Out::new(io, conn, app.cfg.write_timeout);
    // When the head of the request being received must be complete; `None` while the
    // connection is idle between requests. The first request's clock starts at the accept.
    let mut head_deadline = Some(first_head_deadline);
    loop {
        let head = match parse(rd.buffer()) {
            Parsed::Complete(head) => head,
            Parsed::Invalid(status, why) => {
                return refuse(io, conn, &mut rd, &mut out, status, why);
            }
            Parsed::MoreSlots => unreachable!("parse retries with MAX_HEADERS slots"),
            Parsed::Partial => {
                // Out of buffered requests: the responses written so far leave now, in one write.
                if out.has_pending() {
                    out.flush_buf()?;
                }
                let idle = rd.buffer().is_empty();
                if !idle && head_deadline.is_none() {
                    head_deadline = Some(io.now() + app.cfg.header_timeout);
                }
                let deadline = head_deadline.unwrap_or_else(|| io.now() + app.cfg.idle_timeout);
                let want = rd.buffer().len() + 1;
                match io.timeout_until(deadline, |_| rd.fill(want)) {
                    Ok(()) => continue,
                    // The client left between requests: a close, or a reset when it closed
                    // with responses unread (load generators do at the end of a run).
                    Err(e)
                        if idle
                            && matches!(
                                e.kind(),
                                io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset
                            ) =>
                    {
                        return Ok(())
                    }
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                        return Err(io::Error::new(e.kind(), "client closed mid-request"))
                    }
                    Err(e) if is_timeout(&e) && head_deadline.is_none() => {
                        return Ok(()); // idle keep-alive connection
                    }
                    Err(e) if is_timeout(&e) => {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!(
                                "request head not complete within {:?} (slowloris?)",
                                app.cfg.header_timeout
                            ),
                        ));
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        io::BufRead::consume(&mut rd, head.len);
        head_deadline = None;
        let keep = respond(io, &mut rd, &mut out, app, &head)?;
        Stats::bump(&app.ctl.stats.requests);
        if !keep {
            out.flush_buf()?;
            close_gracefully(io, conn, &mut rd);
            return Ok(());
        }
    }
}

/// Answers one parsed request into the writer (not flushed, unless the route transfers a file
/// or the client waits for `100 Continue`). Returns whether the connection stays open.
fn respond<'c, C: Conn>(
    io: &Io,
    rd: &mut ConnReader<'c, C>,
    wr: &mut Out<'c, C>,
    app: &HttpApp,
    head: &Head,
) -> io::Result<bool> {
    if head.content_length > MAX_BODY {
        write_response(
            wr,
            CONTENT_TOO_LARGE,
            "text/plain",
            b"request body too large\n",
            false,
            head.method,
        )?;
        return Ok(false);
    }
    let wants_body = head.route == Route::Echo && head.method == Method::Post;
    let mut keep = head.keep_alive;
    if !wants_body && head.content_length > 0 {
        if head.expect_continue {
            // The client waits for `100 Continue` before sending the body it announced; with a
            // final response instead, whether it sends the body anyway is up to it, so the
            // connection's framing is unknown afterwards: close.
            keep = false;
        } else {
            let skip = head.content_length;
            let skipped = body_phase(io, app, || rd.discard(skip))?;
            if skipped < skip {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "client closed mid-body",
                ));
            }
        }
    }
    match (head.route, head.method) {
        (Route::Hello, Method::Get) if keep => wr.write_all(hello_response().as_bytes())?,
        (Route::Hello, Method::Get | Method::Head) => {
            write_response(wr, OK, "text/plain", HELLO, keep, head.method)?;
        }
        (Route::File, Method::Get | Method::Head) => {
            write_head(wr, OK, "application/octet-stream", app.file_len, keep, &[])?;
            if head.method == Method::Get {
                // Flushes the buffered responses and this head, then `sendfile(2)`.
                let sent = wr.send_file(&app.file, 0, app.file_len)?;
                if sent < app.file_len {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the file shrank while being served",
                    ));
                }
            }
        }
        (Route::Echo, Method::Post) => {
            let len = usize::try_from(head.content_length).unwrap_or(usize::MAX);
            // Held until the echo is written (within the body and write timeouts).
            let Some(_held) = app.cfg.request_memory.try_acquire(len) else {
                // The body is not read: the connection's framing is lost, close it.
                write_head(
                    wr,
                    SERVICE_UNAVAILABLE,
                    "text/plain",
                    BUSY.len() as u64,
                    false,
                    &[("retry-after", "1")],
                )?;
                wr.write_all(BUSY)?;
                return Ok(false);
            };
            if head.expect_continue && head.content_length > 0 {
                wr.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
                wr.flush_buf()?;
            }
            let mut body = vec![0; len];
            body_phase(io, app, || rd.read_exact(&mut body)).map_err(|e| {
                if e.kind() == io::ErrorKind::UnexpectedEof {
                    io::Error::new(e.kind(), "client closed mid-body")
                } else {
                    e
                }
            })?;
            if serde_json::from_slice::<serde_json::Value>(&body).is_ok() {
                write_response(wr, OK, "application/json", &body, keep, head.method)?;
            } else {
                write_response(
                    wr,
                    BAD_REQUEST,
                    "text/plain",
                    b"invalid JSON\n",
                    keep,
                    head.method,
                )?;
            }
        }
        (Route::Hello | Route::File, _) => {
            write_head(
                wr,
                METHOD_NOT_ALLOWED,
                "text/plain",
                0,
                keep,
                &[("allow", "GET, HEAD")],
            )?;
        }
        (Route::Echo, _) => {
            write_head(
                wr,
                METHOD_NOT_ALLOWED,
                "text/plain",
                0,
                keep,
                &[("allow", "POST")],
            )?;
        }
        (Route::NotFound, _) => {
            write_response(
                wr,
                NOT_FOUND,
                "text/plain",
                b"not found\n",
                keep,
                head.method,
            )?;
        }
    }
    Ok(keep)
}

/// Answers a request the server refuses (`400`, `414`, `431`, `501`…), closes the connection
/// gracefully and returns the reason as an error, for the accept loop to count and log.
fn refuse<'c, C: Conn>(
    io: &Io,
    conn: &'c C,
    rd: &mut ConnReader<'c, C>,
    wr: &mut Out<'c, C>,
    status: Status,
    why: &'static str,
) -> io::Result<()> {
    let mut body = Vec::with_capacity(why.len() + 1);
    body.extend_from_slice(why.as_bytes());
    body.push(b'\n');
    write_response(wr, status, "text/plain", &body, false, Method::Get)?;
    wr.flush_buf()?;
    close_gracefully(io, conn, rd);
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{status}: {why}"),
    ))
}

/// Closes a connection the server has finished with so that the client gets the last
/// response: shut down the write side (the client sees the end of the stream), then read and
/// discard what the client still sends for a short while. Closing a socket with unread input
/// makes the kernel send a reset, which can destroy the response in the client's receive
/// buffer before it reads it (the "lingering close" of Apache and nginx).
fn close_gracefully<'c, C: Conn>(io: &Io, conn: &'c C, rd: &mut ConnReader<'c, C>) {
    // On TLS the close_notify is a write: bounded like the linger that follows.
    if io
        .timeout_until(io.now() + LINGER, |_| conn.close_write())
        .is_err()
    {
        return;
    }
    let _ = io.timeout_until(io.now() + LINGER, |_| rd.discard(LINGER_BYTES));
}

/// Runs a body read with the header timeout as its deadline.
fn body_phase<T>(io: &Io, app: &HttpApp, f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    io.timeout_until(io.now() + app.cfg.header_timeout, |_| f())
}

/// Writes a whole response with a body (the body left out for `HEAD`) into the writer.
fn write_response(
    wr: &mut impl Write,
    status: Status,
    content_type: &str,
    body: &[u8],
    keep_alive: bool,
    method: Method,
) -> io::Result<()> {
    write_head(wr, status, content_type, body.len() as u64, keep_alive, &[])?;
    if method != Method::Head {
        wr.write_all(body)?;
    }
    Ok(())
}

/// Writes a response head into the writer.
fn write_head(
    wr: &mut impl Write,
    status: Status,
    content_type: &str,
    content_length: u64,
    keep_alive: bool,
    extra: &[(&str, &str)],
) -> io::Result<()> {
    render_head(
        wr,
        status,
        content_type,
        content_length,
        keep_alive,
        extra,
        &http_date(),
    )
}

/// Writes a response head dated `date` into `out`.
fn render_head(
    out: &mut impl Write,
    status: Status,
    content_type: &str,
    content_length: u64,
    keep_alive: bool,
    extra: &[(&str, &str)],
    date: &[u8; 29],
) -> io::Result<()> {
    out.write_all(b"HTTP/1.1 ")?;
    out.write_all(status.as_bytes())?;
    out.write_all(b"\r\nserver: zsync\r\ncontent-type: ")?;
    out.write_all(content_type.as_bytes())?;
    write!(out, "\r\ncontent-length: {content_length}\r\ndate: ")?;
    out.write_all(date)?;
    for (name, value) in extra {
        write!(out, "\r\n{name}: {value}")?;
    }
    if !keep_alive {
        out.write_all(b"\r\nconnection: close")?;
    }
    out.write_all(b"\r\n\r\n")
}

/// Room for the keep-alive response to `GET /`: its length is fixed (the date has a fixed
/// width), and well under this.
const HELLO_RESPONSE_ROOM: usize = 192;

/// The keep-alive `200` response to `GET /` rendered for one second, by value.
#[derive(Clone, Copy)]
struct HelloResponse {
    /// The second it is dated (`u64::MAX`: not rendered yet).
    secs: u64,
    len: usize,
    bytes: [u8; HELLO_RESPONSE_ROOM],
}

impl HelloResponse {
    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

std::thread_local! {
    /// The `date` header of the current second, formatted once per second per thread.
    static DATE: Cell<(u64, [u8; 29])> = const { Cell::new((u64::MAX, [0; 29])) };
    /// The whole keep-alive response to `GET /` of the current second, rendered once per
    /// second per thread: the benchmark route then costs one copy into the writer instead of
    /// a dozen small writes and a formatted number. A `Cell` read by copy, not a `RefCell`
    /// borrowed: the write that follows may block, and another task of this thread (a fiber of
    /// the same worker) then runs and needs the cache; a borrow held across that write made
    /// it panic with "already borrowed".
    static HELLO_RESPONSE: Cell<HelloResponse> = const {
        Cell::new(HelloResponse { secs: u64::MAX, len: 0, bytes: [0; HELLO_RESPONSE_ROOM] })
    };
}

/// Seconds since the Unix epoch, from the coarse wall clock: the date header has a resolution
/// of one second, and the coarse clock costs a memory read where the precise one reads the
/// hardware clock (measurably, per response, in a VM).
fn unix_secs() -> u64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
    u64::try_from(now.tv_sec).unwrap_or(0)
}

/// The current time as an HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110 IMF-fixdate).
fn http_date() -> [u8; 29] {
    date_at(unix_secs())
}

/// [`http_date`] for `now` (seconds since the epoch), from the per-thread cache.
fn date_at(now: u64) -> [u8; 29] {
    DATE.with(|cell| {
        let (secs, text) = cell.get();
        if secs == now {
            return text;
        }
        let text = format_http_date(now);
        cell.set((now, text));
        text
    })
}

/// The keep-alive `200` response to `GET /`, byte for byte what [`write_response`] writes,
/// from the per-thread cache (re-rendered when the second changes).
fn hello_response() -> HelloResponse {
    let now = unix_secs();
    HELLO_RESPONSE.with(|cell| {
        let cached = cell.get();
        if cached.secs == now {
            return cached;
        }
        let mut rendered = Vec::with_capacity(HELLO_RESPONSE_ROOM);
        render_head(
            &mut rendered,
            OK,
            "text/plain",
            HELLO.len() as u64,
            true,
            &[],
            &date_at(now),
        )
        .expect("writing to a Vec cannot fail");
        rendered.extend_from_slice(HELLO);
        let mut fresh = HelloResponse {
            secs: now,
            len: rendered.len(),
            bytes: [0; HELLO_RESPONSE_ROOM],
        };
        fresh.bytes[..rendered.len()].copy_from_slice(&rendered);
        cell.set(fresh);
        fresh
    })
}

/// Formats `secs` since the Unix epoch as an IMF-fixdate.
fn format_http_date(secs: u64) -> [u8; 29] {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, rem / 60 % 60, rem % 60);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm), in u64: no date before
    // the epoch reaches here.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    let text = format!(
        "{}, {day:02} {} {year:04} {h:02}:{m:02}:{s:02} GMT",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize]
    );
    let mut out = [b' '; 29];
    let n = text.len().min(29);
    out[..n].copy_from_slice(&text.as_bytes()[..n]);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn cached_hello_response_is_the_rendered_one() {
        // Rendered twice around the cached copy: a second boundary can fall between them, but
        // not twice in a row.
        for _ in 0..2 {
            let before = super::unix_secs();
            let cached = super::hello_response().as_bytes().to_vec();
            let mut fresh = Vec::new();
            let date = super::date_at(before);
            super::render_head(&mut fresh, super::OK, "text/plain", 13, true, &[], &date).unwrap();
            fresh.extend_from_slice(super::HELLO);
            if super::unix_secs() == before {
                assert_eq!(
                    String::from_utf8(cached).unwrap(),
                    String::from_utf8(fresh).unwrap()
                );
                let text = String::from_utf8(super::hello_response().as_bytes().to_vec()).unwrap();
                assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
                assert!(text.contains("\r\ncontent-length: 13\r\n"), "{text}");
                assert!(text.ends_with("\r\n\r\nHello, World!"), "{text}");
                assert!(!text.contains("connection: close"), "{text}");
                return;
            }
        }
        panic!("the second changed twice in a row");
    }

    #[test]
    fn host_values() {
        for ok in [
            "",
            "example.com",
            "example.com:8080",
            "example.com:",
            "127.0.0.1",
            "[::1]",
            "[::1]:80",
            "[v1.fe80::a+en1]",
            "ex%41mple",
            "a-b_c~d!$&'()*+,;=",
        ] {
            assert!(super::valid_host(ok.as_bytes()), "{ok:?} is valid");
        }
        for bad in [
            "exa mple",
            "example.com/",
            "user@example.com",
            "example.com:8x",
            "example.com:80:80",
            "[::1",
            "[]",
            "[::1]x",
            "[::1]:x",
            "ex%4",
            "ex%zz",
            "\u{e9}x",
            "a\tb",
        ] {
            assert!(!super::valid_host(bad.as_bytes()), "{bad:?} is invalid");
        }
    }

    #[test]
    fn partial_target_length() {
        assert_eq!(super::partial_target_len(b"GET /abc"), 4);
        assert_eq!(
            super::partial_target_len(b"GET /abc HTTP/1.1\r\nhost: x"),
            4
        );
        assert_eq!(super::partial_target_len(b"GET /abc\r\n"), 4);
        assert_eq!(super::partial_target_len(b"GET"), 0);
    }

    #[test]
    fn memory_budget_holds_at_most_its_cap() {
        let budget = super::MemoryBudget::new(100);
        let a = budget.try_acquire(60).expect("fits");
        assert!(budget.try_acquire(41).is_none());
        let b = budget.try_acquire(40).expect("fits exactly");
        assert_eq!(
            (budget.in_use(), budget.peak(), budget.refused()),
            (100, 100, 1)
        );
        assert!(budget.try_acquire(usize::MAX).is_none());
        drop(a);
        assert_eq!(budget.in_use(), 40);
        assert!(budget.try_acquire(60).is_some());
        drop(b);
        assert_eq!(
            (budget.in_use(), budget.peak(), budget.refused()),
            (0, 100, 2)
        );
    }

    #[test]
    fn http_date_known_values() {
        assert_eq!(
            &super::format_http_date(784_111_777),
            b"Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(
            &super::format_http_date(0),
            b"Thu, 01 Jan 1970 00:00:00 GMT"
        );
        assert_eq!(
            &super::format_http_date(951_782_400),
            b"Tue, 29 Feb 2000 00:00:00 GMT"
        );
    }
}
