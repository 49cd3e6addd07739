//! A service's HTTP server: hyper 1.x on zsync, each request's work in a task of its own.
//!
//! The accept loop and every connection are zsync future tasks: hyper's
//! `server::conn::http1` over a zsync `TcpStream`, with `zsync::compat::hyper::ZsyncTimer`
//! for its header timeout. A request's body is collected there (the services' requests are
//! small), then its handler runs as a plain colorblind function in a task of its own
//! (`io.spawn`, a fiber on Green) that the connection awaits. That is where the services' logic
//! lives: blocking-style code under `io.timeout_until`, calling other services with a blocking
//! client.
//!
//! **The client hangs up** mid-request: hyper notices the end of stream on the connection while
//! the response is pending (it keeps reading for exactly that), fails the connection and drops
//! the request's future. Dropping the handler's task handle inside a future task cancels the
//! task: the handler's current wait (a downstream call, a sleep) returns `Canceled`, and the
//! downstream call closes its connection, so the next service sees its own client hang up, and
//! so on down the chain. [`ServerStats::abandoned`] counts these requests.
//!
//! **Abrupt shutdown** ([`Server::kill`]): the accept loop stops and closes the listener (new
//! connections are refused), and every open connection is reset: `SO_LINGER` 0 and
//! `shutdown(2)` on a duplicate of its descriptor, which wakes hyper's pending reads and
//! writes on whatever backend. What a crashed process does to its peers, in-process, for the
//! tests and for `--kill-after-ms`-style drills.

use std::convert::Infallible;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use zsync::compat::hyper::ZsyncTimer;
use zsync::net::{TcpListener, TcpStream};
use zsync::Io;

/// The largest request body a service reads.
pub const MAX_BODY: usize = 64 * 1024;

/// A response as the services build them.
pub type Reply = Response<Full<Bytes>>;

/// A service's request handler: a plain function of the task's `Io`, run in a task of its own
/// per request, canceled if the client goes away.
pub trait Handler: Send + Sync + 'static {
    /// Answers `req`.
    fn handle(&self, io: &Io, req: Request<Bytes>) -> Reply;
}

/// What a server counts (statistics, relaxed).
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// Requests whose handler ran to the end and whose response went to hyper.
    pub completed: AtomicU64,
    /// Requests whose client went away (or whose connection was reset) before the response:
    /// their handler task was canceled.
    pub abandoned: AtomicU64,
    /// Requests in progress.
    pub in_flight: AtomicU64,
}

/// The connections of a running server, by a duplicate of each descriptor (to reset them).
#[derive(Debug, Default)]
struct Conns {
    next: u64,
    open: Vec<(u64, TcpStream)>,
}

#[derive(Debug)]
struct Shared {
    name: &'static str,
    addr: SocketAddr,
    killed: AtomicBool,
    conns: Mutex<Conns>,
    stats: Arc<ServerStats>,
}

/// A running service's server. Dropping it leaves the server running (until the runtime
/// shuts down); [`kill`](Server::kill) ends it.
#[derive(Debug, Clone)]
pub struct Server {
    shared: Arc<Shared>,
}

impl Server {
    /// Binds `addr` and serves `handler` there, in future tasks of `io`'s runtime. Returns once
    /// the listener is bound.
    pub fn start(
        io: &Io,
        name: &'static str,
        addr: SocketAddr,
        handler: Arc<dyn Handler>,
        stats: Arc<ServerStats>,
    ) -> io::Result<Server> {
        let listener = TcpListener::bind(io, addr)?;
        let shared = Arc::new(Shared {
            name,
            addr: listener.local_addr()?,
            killed: AtomicBool::new(false),
            conns: Mutex::new(Conns::default()),
            stats,
        });
        io.spawn_future(accept_loop(io.clone(), listener, handler, shared.clone()))
            .detach();
        Ok(Server { shared })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// Ends the server abruptly, as a crash would: the listener closes (connections are
    /// refused from now on) and every open connection is reset. Returns at once; callable from
    /// any thread. The port can be bound again right away (`SO_REUSEADDR`).
    pub fn kill(&self) {
        if self.shared.killed.swap(true, Ordering::SeqCst) {
            return;
        }
        let open = std::mem::take(&mut lock(&self.shared.conns).open);
        for (_, conn) in open {
            reset(&conn);
        }
        // Wake an `accept` waiting now, so that it sees `killed` and drops the listener. A
        // failure means nothing listens any more.
        let _ = std::net::TcpStream::connect_timeout(&self.shared.addr, Duration::from_secs(1));
    }
}

/// Resets a connection through a second handle to its socket: linger 0 makes the last close
/// send RST, and `shutdown` wakes whoever waits on it now.
fn reset(conn: &TcpStream) {
    let _ = socket2::SockRef::from(conn).set_linger(Some(Duration::ZERO));
    let _ = conn.shutdown(Shutdown::Both);
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn accept_loop(
    io: Io,
    listener: TcpListener,
    handler: Arc<dyn Handler>,
    shared: Arc<Shared>,
) {
    loop {
        let accepted = listener.accept_async().await;
        if shared.killed.load(Ordering::SeqCst) {
            return; // drops the listener, and the connection that woke us
        }
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) if zsync::is_canceled(&e) => return,
            Err(_) => {
                // Out of descriptors, or a connection reset before it was accepted: pause a
                // little and go on.
                let _ = zsync::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        shared.stats.accepted.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        let Ok(dup) = stream.try_clone() else {
            continue; // out of descriptors: drop the connection
        };
        let key = {
            let mut conns = lock(&shared.conns);
            let key = conns.next;
            conns.next += 1;
            conns.open.push((key, dup));
            key
        };
        if shared.killed.load(Ordering::SeqCst) {
            // `kill` ran between the check above and the registration: reset this one too.
            if let Some(conn) = unregister(&shared, key) {
                reset(&conn);
            }
            continue;
        }
        let (io2, handler, shared) = (io.clone(), handler.clone(), shared.clone());
        io.spawn_future(async move {
            let service = {
                let shared = shared.clone();
                service_fn(move |req| serve_one(io2.clone(), handler.clone(), shared.clone(), req))
            };
            // Errors here are the client's doing (reset, timeout, malformed request) and end
            // only this connection.
            let _ = http1::Builder::new()
                .timer(ZsyncTimer::new())
                .header_read_timeout(Duration::from_secs(30))
                .serve_connection(stream, service)
                .await;
            unregister(&shared, key);
        })
        .detach();
    }
}

fn unregister(shared: &Shared, key: u64) -> Option<TcpStream> {
    let mut conns = lock(&shared.conns);
    let at = conns.open.iter().position(|(k, _)| *k == key)?;
    Some(conns.open.swap_remove(at).1)
}

/// Counts a request in flight; dropped before [`finish`](InFlight::finish) (the connection
/// dropped the request's future), it counts the request as abandoned.
struct InFlight {
    stats: Arc<ServerStats>,
    done: bool,
}

impl InFlight {
    fn new(stats: Arc<ServerStats>) -> InFlight {
        stats.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight { stats, done: false }
    }

    fn finish(mut self) {
        self.done = true;
        self.stats.completed.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
        if !self.done {
            self.stats.abandoned.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn serve_one(
    io: Io,
    handler: Arc<dyn Handler>,
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Reply, Infallible> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => {
            return Ok(json_error(
                StatusCode::BAD_REQUEST,
                shared.name,
                "request body unreadable or too large",
            ))
        }
    };
    let req = Request::from_parts(parts, body);
    let in_flight = InFlight::new(shared.stats.clone());
    // The handler's task: dropping its handle here (this future dropped by hyper when the
    // client goes away) cancels it. `concurrent`, because the handler blocks: on Green that
    // is a fiber like any task; on Threaded a thread of its own, so that handlers blocked on
    // downstream calls never hold the pool threads that run the connections' futures.
    // Where the model refuses (Threaded's thread limit), a queued task.
    let task = io
        .concurrent(move |io| handler.handle(io, req))
        .unwrap_or_else(|refused| io.spawn(refused.into_inner()));
    let reply = match task.await {
        Ok(reply) => reply,
        Err(e) => json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            shared.name,
            &format!("handler failed: {e}"),
        ),
    };
    in_flight.finish();
    Ok(reply)
}

/// The header naming the service an error response is about.
pub const FAILED_SERVICE: &str = "x-failed-service";

/// A JSON response.
pub fn json(status: StatusCode, body: &serde_json::Value) -> Reply {
    let mut reply = Response::new(Full::new(Bytes::from(body.to_string())));
    *reply.status_mut() = status;
    reply.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    reply
}

/// An error response: `{"error": message, "service": service}`, with the service also in the
/// [`FAILED_SERVICE`] header (so that a caller can tell a downstream's own failure from one it
/// reports about a service further down).
pub fn json_error(status: StatusCode, service: &str, message: &str) -> Reply {
    let mut reply = json(
        status,
        &serde_json::json!({ "error": message, "service": service }),
    );
    if let Ok(v) = hyper::header::HeaderValue::from_str(service) {
        reply.headers_mut().insert(FAILED_SERVICE, v);
    }
    reply
}
