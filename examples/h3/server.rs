//! The HTTP/3 server: quinn's endpoint on zsync (`zsync::compat::quinn::server`), h3 over
//! `h3-quinn`, one future task per connection and one per request.
//!
//! h3's API is async, so the protocol side is future tasks (`io.spawn_future`): they poll h3
//! and move bytes. The application side is colorblind: a buffered route (`routes::handle`) is
//! a plain function run in a closure task (`io.spawn`, a fiber on Green) that the request's
//! future task awaits, so a handler may sleep, read files or call other zsync code with its
//! `&Io` and park only itself. The streaming routes (`GET /bytes/N`, `POST /echo`) stay in
//! the future task, chunk by chunk.
//!
//! Shutdown ([`Server::shutdown`]) is HTTP/3's graceful one (RFC 9114, section 5.2): new
//! connections are refused, every connection sends GOAWAY and finishes the requests it has,
//! waits a moment for the peer to acknowledge the last bytes (a QUIC close discards data not
//! yet delivered), and closes with `H3_NO_ERROR`; what is still open when the grace period
//! ends is closed with `H3_NO_ERROR` by the endpoint.

use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use http::{Method, Request, Response, StatusCode};
use quinn::{Endpoint, VarInt};
use zsync::channel::watch;
use zsync::{Io, Task};

use crate::body;
use crate::routes;
use crate::tls::BoxError;

/// HTTP/3's "no error" code (RFC 9114, section 8.1), for graceful closes.
pub const H3_NO_ERROR: u32 = 0x100;

/// The largest `GET /bytes/N` served (1 TiB): beyond it, `400`.
pub const MAX_GENERATED: u64 = 1 << 40;

type H3Conn = h3::server::Connection<h3_quinn::Connection, Bytes>;
type H3Stream = h3::server::RequestStream<h3_quinn::BidiStream<Bytes>, Bytes>;

/// Counters of a running server, readable at any time.
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections that completed the handshake.
    pub connections: AtomicU64,
    /// Requests whose headers were read.
    pub requests: AtomicU64,
    /// Requests that ended with an error (the peer reset the stream, closed the connection...).
    pub request_errors: AtomicU64,
    /// Response body bytes sent.
    pub body_bytes_sent: AtomicU64,
}

/// Live counts: connections and requests in progress. A `watch` so that shutdown (and tests)
/// can wait for them to reach zero.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Live {
    /// Connections being served (handshake included).
    pub connections: usize,
    /// Requests being served.
    pub requests: usize,
}

/// What the server's tasks share.
struct Shared {
    io: Io,
    stats: Stats,
    live: watch::Sender<Live>,
    /// `true` once shutdown began.
    shutdown: watch::Sender<bool>,
}

/// Decrements a live count when dropped: on every path out of a task, its cancellation (the
/// runtime drops a canceled future) included.
struct LiveGuard {
    shared: Arc<Shared>,
    field: fn(&mut Live) -> &mut usize,
}

impl LiveGuard {
    fn new(shared: &Arc<Shared>, field: fn(&mut Live) -> &mut usize) -> LiveGuard {
        shared.live.send_modify(|live| *field(live) += 1);
        LiveGuard {
            shared: shared.clone(),
            field,
        }
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        let field = self.field;
        self.shared.live.send_modify(|live| *field(live) -= 1);
    }
}

/// Counts a request out of its connection's in-flight count when dropped.
struct InFlight(Arc<watch::Sender<usize>>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

/// A running HTTP/3 server.
pub struct Server {
    endpoint: Endpoint,
    shared: Arc<Shared>,
    accepting: Task<()>,
}

impl Server {
    /// Binds a QUIC endpoint at `addr` with `config` (whose ALPN must offer `h3`) and starts
    /// accepting connections in a future task of `io`.
    ///
    /// Errors: binding fails, or `io`'s model cannot run quinn (Blocking: `Unsupported`).
    pub fn start(io: &Io, config: quinn::ServerConfig, addr: SocketAddr) -> io::Result<Server> {
        let endpoint = zsync::compat::quinn::server(io, config, addr)?;
        let shared = Arc::new(Shared {
            io: io.clone(),
            stats: Stats::default(),
            live: watch::channel(Live::default()).0,
            shutdown: watch::channel(false).0,
        });
        let accepting = io.spawn_future(accept_loop(endpoint.clone(), shared.clone()));
        Ok(Server {
            endpoint,
            shared,
            accepting,
        })
    }

    /// The address the endpoint is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// The server's counters.
    pub fn stats(&self) -> &Stats {
        &self.shared.stats
    }

    /// Connections and requests in progress now.
    pub fn live(&self) -> Live {
        *self.shared.live.borrow()
    }

    /// Shuts down gracefully: no new connection is accepted, every connection sends GOAWAY,
    /// serves the requests it has and closes with `H3_NO_ERROR`. Connections still open after
    /// `grace` are closed by the endpoint (`H3_NO_ERROR` too). Returns once the endpoint is
    /// idle: every close sent and acknowledged, or timed out.
    pub fn shutdown(self, io: &Io, grace: Duration) -> Result<(), BoxError> {
        // No new connections from here on; `accept` then only ends.
        self.endpoint.set_server_config(None);
        self.shared.shutdown.send_replace(true);
        let mut live = self.shared.live.subscribe();
        let drained = live.wait_for_timeout(grace, |l| l.connections == 0).is_ok();
        if !drained {
            eprintln!(
                "h3 server: {} connection(s) still open after the grace period: closing them",
                self.live().connections
            );
        }
        self.endpoint
            .close(VarInt::from_u32(H3_NO_ERROR), b"server shut down");
        self.accepting.join()?;
        io.block_on(self.endpoint.wait_idle())?;
        Ok(())
    }
}

/// Accepts connections, each served by a future task of its own, until shutdown begins or the
/// endpoint closes.
async fn accept_loop(endpoint: Endpoint, shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        let incoming = {
            let mut accept = pin!(endpoint.accept());
            // The flag only ever turns true (or its sender drops with the server): any change
            // is the signal.
            let mut stop = shutdown.changed_event();
            poll_fn(|cx| {
                if Future::poll(std::pin::Pin::new(&mut stop), cx).is_ready() {
                    return Poll::Ready(None);
                }
                accept.as_mut().poll(cx)
            })
            .await
        };
        let Some(incoming) = incoming else { return };
        let guard = LiveGuard::new(&shared, |l| &mut l.connections);
        let conn_shared = shared.clone();
        shared
            .io
            .spawn_future(async move {
                let _live = guard;
                if let Err(e) = serve_connection(incoming, conn_shared).await {
                    if std::env::var_os("H3_VERBOSE").is_some() {
                        eprintln!("h3 connection: {e}");
                    }
                }
            })
            .detach();
    }
}

/// Whether a connection error is the ordinary end of a connection.
fn is_normal_close(e: &h3::error::ConnectionError) -> bool {
    e.is_h3_no_error() || {
        let text = e.to_string();
        text.contains("ApplicationClose") || text.contains("closed")
    }
}

/// Serves one connection: the handshake, then a future task per request, until the peer
/// closes or, at shutdown, GOAWAY has been sent and every request is done.
async fn serve_connection(incoming: quinn::Incoming, shared: Arc<Shared>) -> Result<(), BoxError> {
    let quic = incoming.await?;
    shared.stats.connections.fetch_add(1, Ordering::Relaxed);
    let mut conn: H3Conn = h3::server::builder()
        .build(h3_quinn::Connection::new(quic.clone()))
        .await?;
    let mut shutdown = shared.shutdown.subscribe();
    // This connection's requests in progress: once GOAWAY is out, the connection ends when
    // they are done (h3's `accept` ends by itself only after the *peer's* GOAWAY).
    let in_flight = Arc::new(watch::channel(0usize).0);
    let mut in_flight_rx = in_flight.subscribe();
    let mut draining = false;
    loop {
        enum Next<T> {
            Request(T),
            Shutdown,
            Recheck,
        }
        if draining && *in_flight_rx.borrow_and_update() == 0 {
            break;
        }
        let next = {
            // Shutdown may have begun before this connection subscribed.
            let already = *shutdown.borrow();
            let mut accept = pin!(conn.accept());
            let mut stop = shutdown.changed_event();
            let mut requests_changed = in_flight_rx.changed_event();
            poll_fn(|cx| {
                if !draining
                    && (already || Future::poll(std::pin::Pin::new(&mut stop), cx).is_ready())
                {
                    return Poll::Ready(Next::Shutdown);
                }
                if draining
                    && Future::poll(std::pin::Pin::new(&mut requests_changed), cx).is_ready()
                {
                    return Poll::Ready(Next::Recheck);
                }
                accept.as_mut().poll(cx).map(Next::Request)
            })
            .await
        };
        match next {
            Next::Shutdown => {
                draining = true;
                // GOAWAY: requests after the last accepted one are refused.
                conn.shutdown(0).await?;
            }
            Next::Recheck => {}
            Next::Request(Ok(Some(resolver))) => {
                let guard = LiveGuard::new(&shared, |l| &mut l.requests);
                in_flight.send_modify(|n| *n += 1);
                let conn_in_flight = InFlight(in_flight.clone());
                let req_shared = shared.clone();
                shared
                    .io
                    .spawn_future(async move {
                        let _live = (guard, conn_in_flight);
                        let result = match resolver.resolve_request().await {
                            Ok((req, stream)) => {
                                req_shared.stats.requests.fetch_add(1, Ordering::Relaxed);
                                serve_request(&req_shared, req, stream).await
                            }
                            Err(e) => Err(e.into()),
                        };
                        if let Err(e) = result {
                            if std::env::var_os("H3_VERBOSE").is_some() {
                                eprintln!("h3 request: {e}");
                            }
                            req_shared
                                .stats
                                .request_errors
                                .fetch_add(1, Ordering::Relaxed);
                        }
                    })
                    .detach();
            }
            // The peer's GOAWAY, and every request done.
            Next::Request(Ok(None)) => break,
            Next::Request(Err(e)) if is_normal_close(&e) => return Ok(()),
            Next::Request(Err(e)) => return Err(e.into()),
        }
    }
    // Drained. A QUIC close discards data not yet acknowledged, so let the last response
    // bytes arrive first: wait for the peer to close, at most a few round trips.
    let linger = (quic.rtt() * 4).max(Duration::from_millis(50));
    let until = Instant::now() + linger;
    let mut closed = pin!(quic.closed());
    let mut timer = pin!(zsync::time::sleep_until(until));
    poll_fn(|cx| {
        if closed.as_mut().poll(cx).is_ready() || timer.as_mut().poll(cx).is_ready() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    quic.close(VarInt::from_u32(H3_NO_ERROR), b"done");
    Ok(())
}

/// One request: a streaming route in this task, a buffered one in a closure task.
async fn serve_request(
    shared: &Arc<Shared>,
    req: Request<()>,
    mut stream: H3Stream,
) -> Result<(), BoxError> {
    let path = req.uri().path().to_string();
    if routes::is_streaming(&path) {
        match (req.method(), path.as_str()) {
            (&Method::GET, p) if p.starts_with("/bytes/") => {
                // Read the (empty) request to its end first: a receive side dropped unread
                // stops the client's request stream, which it may see as an error.
                discard_body(&mut stream).await?;
                return match p["/bytes/".len()..].parse::<u64>() {
                    Ok(n) if n <= MAX_GENERATED => send_generated(shared, &mut stream, n).await,
                    _ => {
                        let reply = routes::text(StatusCode::BAD_REQUEST, "want /bytes/N\n");
                        send_reply(shared, &mut stream, reply).await
                    }
                };
            }
            (&Method::POST, "/echo") => return echo(shared, &mut stream).await,
            // A wrong method: the buffered handler answers 405.
            _ => {}
        }
    }
    // Buffered: the whole body (bounded), then the colorblind handler in a closure task.
    let mut body = Vec::new();
    while let Some(mut chunk) = stream.recv_data().await? {
        if body.len() + chunk.remaining() > routes::MAX_BUFFERED_BODY {
            let reply = routes::text(StatusCode::PAYLOAD_TOO_LARGE, "body too large\n");
            return send_reply(shared, &mut stream, reply).await;
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            body.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    // `concurrent`, not `spawn`: a handler may block (sleep, disk, a database), and on Threaded
    // a spawned one would hold a pool thread that quinn's drivers need; where the model has no
    // thread or fiber to spare it runs as a spawned task.
    let run = move |io: &Io| {
        catch_unwind(AssertUnwindSafe(|| routes::handle(io, &req, &body))).unwrap_or_else(|_| {
            routes::text(StatusCode::INTERNAL_SERVER_ERROR, "handler panicked\n")
        })
    };
    let handler = match shared.io.concurrent(run) {
        Ok(task) => task,
        Err(refused) => shared.io.spawn(refused.into_inner()),
    };
    let reply = handler.await?;
    send_reply(shared, &mut stream, reply).await
}

/// Reads and drops a request body (at most [`routes::MAX_BUFFERED_BODY`] bytes).
async fn discard_body(stream: &mut H3Stream) -> Result<(), BoxError> {
    let mut seen = 0;
    while let Some(chunk) = stream.recv_data().await? {
        seen += chunk.remaining();
        if seen > routes::MAX_BUFFERED_BODY {
            return Err("request body too large".into());
        }
    }
    Ok(())
}

/// Sends a buffered reply and finishes the stream.
async fn send_reply(
    shared: &Shared,
    stream: &mut H3Stream,
    reply: routes::Reply,
) -> Result<(), BoxError> {
    let (mut parts, body) = reply.into_parts();
    parts.headers.insert(
        http::header::CONTENT_LENGTH,
        http::HeaderValue::from(body.len()),
    );
    stream
        .send_response(Response::from_parts(parts, ()))
        .await?;
    if !body.is_empty() {
        let n = body.len() as u64;
        stream.send_data(Bytes::from(body)).await?;
        shared.stats.body_bytes_sent.fetch_add(n, Ordering::Relaxed);
    }
    stream.finish().await?;
    Ok(())
}

/// `GET /bytes/N`: `N` bytes of the pattern, in slices of one shared block.
async fn send_generated(shared: &Shared, stream: &mut H3Stream, len: u64) -> Result<(), BoxError> {
    let head = Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/octet-stream")
        .header("content-length", len)
        .body(())?;
    stream.send_response(head).await?;
    for chunk in body::chunks(len) {
        let n = chunk.len() as u64;
        stream.send_data(chunk).await?;
        shared.stats.body_bytes_sent.fetch_add(n, Ordering::Relaxed);
    }
    stream.finish().await?;
    Ok(())
}

/// `POST /echo`: the body back as it arrives, chunk by chunk (no length known in advance).
async fn echo(shared: &Shared, stream: &mut H3Stream) -> Result<(), BoxError> {
    let head = Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/octet-stream")
        .body(())?;
    stream.send_response(head).await?;
    while let Some(mut chunk) = stream.recv_data().await? {
        let data = chunk.copy_to_bytes(chunk.remaining());
        let n = data.len() as u64;
        stream.send_data(data).await?;
        shared.stats.body_bytes_sent.fetch_add(n, Ordering::Relaxed);
    }
    stream.finish().await?;
    Ok(())
}
