//! HTTPS for the HTTP server: rustls over zsync's [`TcpStream`], serving the very handler of
//! [`http`](super::http) (`http_server --tls`).
//!
//! Design:
//!
//! - [`TlsStream`] is a `rustls::ServerConnection` beside the socket, with `Read`/`Write` on a
//!   shared reference (like `&TcpStream`), so the handler's buffered reader and writer can both
//!   hold it. It is rustls' buffered API driven by plain blocking calls: a read decrypts what
//!   rustls holds, else reads the socket once (`read_tls`) and decrypts; a write encrypts and
//!   sends at once (`write_tls` until rustls has nothing left). The socket calls are zsync's,
//!   so a connection blocks only its own task (a fiber on Green) and every deadline of the
//!   handler (`Io::timeout_until`) bounds them as it bounds plain reads and writes. Errors of
//!   the socket are never swallowed (rustls' own `StreamOwned::write` drops them until the next
//!   call, which would let a write past its deadline look like a success).
//! - The handshake runs first, against the deadline of the first request's head (the header
//!   timeout from the accept): a client that stalls mid-handshake is dropped then, and the
//!   handshake and the first request together get what a plain first request gets.
//! - A handshake that fails (not TLS, no common cipher suite or protocol, a bad record) sends
//!   rustls' alert, closes gracefully (shutdown, then a short linger so that the alert is not
//!   destroyed by a reset) and is logged as a warning, at most one line a second with a count
//!   of those held back; one that times out is logged the same way. A client that closes
//!   before finishing (a port probe, the stop switch's wake-up connection) is only counted.
//!   Neither affects other connections.
//! - Every ordinary end of a connection sends a `close_notify` alert: before the shutdown of
//!   a closing response (`connection: close`, a refused request), and when the client closed or
//!   went idle (waiting at most [`LINGER`] for the socket to take it). A connection that ends
//!   in an error (a write timeout, a reset) is closed without one.
//! - `GET /file` cannot use `sendfile(2)` under TLS: the file is read in 16 KiB chunks (one
//!   TLS record each) and written through rustls.
//! - Certificates: a self-signed one made at start by rcgen ([`Identity::self_signed`]), or a
//!   chain and key from PEM files ([`Identity::from_pem_files`], rustls-pki-types' parser).
//!   Only rustls' ring provider is used (the one quinn brings in), TLS 1.3 and 1.2, ALPN
//!   `http/1.1`.
//!
//! A plain connection never goes through this module: the HTTP handler is generic over
//! [`Conn`], so `TcpStream`'s path is compiled as before.

use std::cell::{Cell, RefCell};
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection};
use zsync::bufio::{Reader, Writer};
use zsync::fs::File;
use zsync::net::{TcpListener, TcpStream};
use zsync::Io;

use super::http::{self, Conn, HttpApp, HttpConfig};
use super::server::{accept_loop, is_timeout, Control, Counter, RateLimitedLog};

/// How long a connection whose handshake failed keeps reading (and discarding) what the client
/// still sends, so that the alert is not destroyed by a reset.
const LINGER: Duration = Duration::from_millis(500);
/// How much such a connection reads and discards at most.
const LINGER_BYTES: usize = 64 * 1024;
/// The chunk `GET /file` is read and encrypted in: one full TLS record.
const FILE_CHUNK: usize = 16 * 1024;

/// A certificate chain and its private key.
pub struct Identity {
    /// The chain, leaf first.
    pub certs: Vec<CertificateDer<'static>>,
    /// The leaf's private key.
    pub key: PrivateKeyDer<'static>,
}

/// A self-signed certificate made at start ([`Identity::self_signed`]).
pub struct SelfSigned {
    /// The certificate and key, for the server.
    pub identity: Identity,
    /// The certificate, DER, for a client to trust.
    pub cert_der: CertificateDer<'static>,
    /// The certificate, PEM, for a client to trust (`curl --cacert`).
    pub cert_pem: String,
}

impl Identity {
    /// A fresh self-signed certificate (ECDSA P-256) for `names` (DNS names or IP addresses).
    pub fn self_signed(names: &[&str]) -> io::Result<SelfSigned> {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let made = rcgen::generate_simple_self_signed(names)
            .map_err(|e| io::Error::other(format!("generating a certificate: {e}")))?;
        let cert_der = made.cert.der().clone();
        let key = PrivatePkcs8KeyDer::from(made.signing_key.serialize_der());
        Ok(SelfSigned {
            identity: Identity {
                certs: vec![cert_der.clone()],
                key: key.into(),
            },
            cert_der,
            cert_pem: made.cert.pem(),
        })
    }

    /// A certificate chain (leaf first) and a private key (PKCS#8, PKCS#1 or SEC1) from PEM
    /// files. Errors name the file and what is wrong with it.
    pub fn from_pem_files(cert: &Path, key: &Path) -> io::Result<Identity> {
        let bad = |path: &Path, what: String| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: {what}", path.display()),
            )
        };
        let certs = CertificateDer::pem_file_iter(cert)
            .map_err(|e| bad(cert, e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(cert, e.to_string()))?;
        if certs.is_empty() {
            return Err(bad(cert, "no CERTIFICATE block".into()));
        }
        let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, e.to_string()))?;
        Ok(Identity {
            certs,
            key: key_der,
        })
    }

    /// The rustls server configuration: ring, TLS 1.3 and 1.2, no client certificates, ALPN
    /// `http/1.1`. Fails if the key does not fit the certificate or is of an unsupported kind.
    pub fn server_config(self) -> io::Result<Arc<ServerConfig>> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(io::Error::other)?
            .with_no_client_auth()
            .with_single_cert(self.certs, self.key)
            .map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("certificate and key: {e}"),
                )
            })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// A TLS server connection over a zsync socket. `Read` and `Write` are implemented on
/// `&TlsStream`; they must not be called from two tasks at once (the type is `!Sync`), and
/// the HTTP handler uses its reader and writer in turn.
pub struct TlsStream {
    sock: TcpStream,
    /// rustls' state: borrowed for the length of one read, write or handshake (which may block
    /// in the socket: nothing else uses the stream meanwhile).
    tls: RefCell<ServerConnection>,
    /// Whether the `close_notify` alert has been queued.
    close_notify_queued: Cell<bool>,
}

impl TlsStream {
    /// A server connection on `sock`, handshake not yet made.
    pub fn new(config: Arc<ServerConfig>, sock: TcpStream) -> io::Result<TlsStream> {
        let tls = ServerConnection::new(config).map_err(io::Error::other)?;
        Ok(TlsStream {
            sock,
            tls: RefCell::new(tls),
            close_notify_queued: Cell::new(false),
        })
    }

    /// The socket underneath.
    pub fn socket(&self) -> &TcpStream {
        &self.sock
    }

    /// Runs the handshake to its end (and sends the session tickets that follow it). Errors:
    /// `InvalidData` for a handshake rustls refused (its alert has been sent),
    /// `UnexpectedEof` for a client that closed before the end, the socket's otherwise.
    /// Cancellation point; bounded by the caller's deadline.
    pub fn handshake(&self) -> io::Result<()> {
        let mut tls = self.tls.borrow_mut();
        while tls.is_handshaking() {
            self.send_pending(&mut tls)?;
            if !tls.is_handshaking() {
                break;
            }
            if !tls.wants_read() {
                return Err(io::Error::other(
                    "TLS handshake stuck: nothing to send or read",
                ));
            }
            if self.receive(&mut tls)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "client closed during the TLS handshake",
                ));
            }
        }
        self.send_pending(&mut tls)
    }

    /// Sends a `close_notify` alert (once), waiting at most [`LINGER`] for the socket to
    /// take it. For the ordinary ends of a connection that have not sent one already.
    pub fn finish(&self, io: &Io) {
        if self.close_notify_queued.get() || self.tls.borrow().is_handshaking() {
            return;
        }
        let _ = io.timeout_until(io.now() + LINGER, |_| self.queue_close_notify_and_send());
    }

    fn queue_close_notify_and_send(&self) -> io::Result<()> {
        let mut tls = self.tls.borrow_mut();
        if !self.close_notify_queued.replace(true) {
            tls.send_close_notify();
        }
        self.send_pending(&mut tls)
    }

    /// Writes what rustls has to send (records, alerts, tickets) to the socket, all of it.
    fn send_pending(&self, tls: &mut ServerConnection) -> io::Result<()> {
        while tls.wants_write() {
            if tls.write_tls(&mut &self.sock)? == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
        }
        Ok(())
    }

    /// Reads the socket once into rustls and processes what arrived; returns the bytes read
    /// (0: the client closed its direction). A protocol error queues rustls' alert, which is
    /// sent before the error is returned.
    fn receive(&self, tls: &mut ServerConnection) -> io::Result<usize> {
        let n = tls.read_tls(&mut &self.sock)?;
        if let Err(e) = tls.process_new_packets() {
            let _ = self.send_pending(tls);
            return Err(io::Error::new(io::ErrorKind::InvalidData, TlsError(e)));
        }
        Ok(n)
    }
}

/// A protocol error of rustls, as the `io::Error` payload: `TLS: ` and rustls' message.
#[derive(Debug)]
struct TlsError(rustls::Error);

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TLS: {}", self.0)
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl Read for &TlsStream {
    /// Decrypted bytes: what rustls holds, else one socket read's worth. `Ok(0)` after the
    /// client's `close_notify`; `UnexpectedEof` if it closed without one.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut tls = self.tls.borrow_mut();
        loop {
            match tls.reader().read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                done => return done,
            }
            // Anything rustls must answer first (a key update) goes out before we wait.
            self.send_pending(&mut tls)?;
            if self.receive(&mut tls)? == 0 {
                return match tls.reader().read(buf) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        Err(io::ErrorKind::UnexpectedEof.into())
                    }
                    done => done,
                };
            }
        }
    }
}

impl Write for &TlsStream {
    /// Encrypts `data` (as much as rustls' buffer limit takes) and sends it before returning.
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut tls = self.tls.borrow_mut();
        let n = tls.writer().write(data)?;
        self.send_pending(&mut tls)?;
        Ok(n)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let mut tls = self.tls.borrow_mut();
        let n = tls.writer().write_vectored(bufs)?;
        self.send_pending(&mut tls)?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        let mut tls = self.tls.borrow_mut();
        self.send_pending(&mut tls)
    }
}

impl Conn for TlsStream {
    type Stream<'a> = &'a TlsStream;

    /// A reader that holds its buffer: rustls may hold decrypted bytes while the socket is
    /// empty, so waiting for the socket with no buffer (`Reader::on_demand`) could wait for
    /// ever.
    fn reader(&self, capacity: usize) -> Reader<&TlsStream> {
        Reader::with_capacity(capacity, self)
    }

    fn writer(&self, capacity: usize) -> Writer<&TlsStream> {
        Writer::with_capacity(capacity, self)
    }

    /// Reads the file in [`FILE_CHUNK`]s and writes them through rustls (no `sendfile(2)`
    /// under TLS).
    fn send_file<'c>(
        wr: &mut Writer<&'c TlsStream>,
        file: &File,
        offset: u64,
        len: u64,
    ) -> io::Result<u64>
    where
        Self: 'c,
    {
        wr.flush_buf()?;
        let mut chunk = vec![0; FILE_CHUNK.min(usize::try_from(len).unwrap_or(usize::MAX))];
        let mut sent = 0;
        while sent < len {
            let want = chunk
                .len()
                .min(usize::try_from(len - sent).unwrap_or(usize::MAX));
            let n = file.read_at(&mut chunk[..want], offset + sent)?;
            if n == 0 {
                break;
            }
            wr.get_mut().write_all(&chunk[..n])?;
            sent += n as u64;
        }
        Ok(sent)
    }

    /// `close_notify`, then `shutdown(SHUT_WR)`.
    fn close_write(&self) -> io::Result<()> {
        self.queue_close_notify_and_send()?;
        self.sock.shutdown(Shutdown::Write)
    }
}

/// What every TLS connection shares: the rustls configuration, the counters, the warning log.
pub struct TlsServer {
    config: Arc<ServerConfig>,
    /// Handshakes completed.
    pub handshakes: Counter,
    /// Handshakes that failed: refused by rustls, timed out, or ended by the client.
    pub handshake_failures: Counter,
    /// Handshake warnings, at most one line a second.
    log: Mutex<RateLimitedLog>,
}

impl TlsServer {
    /// A server with `config`.
    pub fn new(config: Arc<ServerConfig>) -> Arc<TlsServer> {
        Arc::new(TlsServer {
            config,
            handshakes: Counter::default(),
            handshake_failures: Counter::default(),
            log: Mutex::new(RateLimitedLog::new(Duration::from_secs(1))),
        })
    }

    /// Counts and reports a failed handshake of `stream` and closes it suitably; returns the
    /// error for the accept loop (which counts it, and logs it with `--verbose`).
    fn handshake_failed(
        &self,
        io: &Io,
        ctl: &Control,
        stream: TlsStream,
        timeout: Duration,
        e: io::Error,
    ) -> io::Error {
        if zsync::is_canceled(&e) {
            return e;
        }
        self.handshake_failures.add(1);
        let peer = stream
            .sock
            .peer_addr()
            .map_or_else(|_| "?".to_string(), |a| a.to_string());
        let e = if is_timeout(&e) {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("not complete within {timeout:?}"),
            )
        } else {
            e
        };
        // A client that just closed (a port probe, the stop switch) is not worth a warning.
        let warn = e.kind() == io::ErrorKind::TimedOut || e.kind() == io::ErrorKind::InvalidData;
        if warn {
            let admitted = self
                .log
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .admit(Instant::now());
            if let Some(held_back) = admitted {
                let held_back = match held_back {
                    0 => String::new(),
                    n => format!(" ({n} more failed handshakes not logged)"),
                };
                eprintln!(
                    "warning: TLS handshake with {peer} failed: {}{held_back}",
                    Plain(&e)
                );
            }
        } else {
            ctl.debug(format_args!("TLS handshake with {peer}: {}", Plain(&e)));
        }
        if e.kind() == io::ErrorKind::InvalidData {
            // The alert has been sent: let the client read it rather than a reset.
            linger_close(io, &stream.sock);
        }
        io::Error::new(e.kind(), format!("TLS handshake: {}", Plain(&e)))
    }
}

/// An error's message without the `TLS: ` of a [`TlsError`] (where the text says TLS already).
struct Plain<'e>(&'e io::Error);

impl std::fmt::Display for Plain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.get_ref().and_then(|e| e.downcast_ref::<TlsError>()) {
            Some(tls) => write!(f, "{}", tls.0),
            None => write!(f, "{}", self.0),
        }
    }
}

/// Shuts down the write side of `sock`, then reads and discards what the client still sends
/// for a short while ([`LINGER`], at most [`LINGER_BYTES`]), so that what was sent last is
/// not destroyed by the reset a close with unread input causes.
fn linger_close(io: &Io, sock: &TcpStream) {
    if sock.shutdown(Shutdown::Write).is_err() {
        return;
    }
    io.timeout_until(io.now() + LINGER, |_| {
        let mut scratch = [0u8; 1024];
        let mut left = LINGER_BYTES;
        let mut reader = sock;
        while left > 0 {
            match reader.read(&mut scratch) {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    });
}

/// Serves HTTPS on `listener` until `ctl` is stopped: the accept loop of
/// [`accept_loop`](super::server::accept_loop) with [`handle`] on every connection.
pub fn serve(
    io: &Io,
    listener: &TcpListener,
    cfg: HttpConfig,
    tls: &Arc<TlsServer>,
    ctl: &Arc<Control>,
) -> io::Result<()> {
    let app = Arc::new(HttpApp::new(io, cfg, ctl.clone())?);
    let tls = tls.clone();
    accept_loop(
        io,
        listener,
        ctl,
        Arc::new(move |io: &Io, conn: TcpStream| handle(io, conn, &app, &tls)),
    )
}

/// Serves one HTTPS connection: the handshake, then [`http::serve_conn`] on the TLS stream,
/// then a `close_notify` if none was sent. Colorblind: the same code on every model.
pub fn handle(io: &Io, conn: TcpStream, app: &HttpApp, tls: &TlsServer) -> io::Result<()> {
    let header_timeout = app.config().header_timeout;
    // The handshake and the first request's head share the plain first request's deadline.
    let deadline = io.now() + header_timeout;
    conn.set_nodelay(true)?;
    let stream = TlsStream::new(tls.config.clone(), conn)?;
    if let Err(e) = io.timeout_until(deadline, |_| stream.handshake()) {
        return Err(tls.handshake_failed(io, app.control(), stream, header_timeout, e));
    }
    tls.handshakes.add(1);
    let served = http::serve_conn(io, &stream, app, deadline);
    if served.is_ok() {
        // The client closed, went idle, or asked to close: end the session properly. (After
        // an error the connection is broken or its client not reading: it is just closed.)
        stream.finish(io);
    }
    served
}
