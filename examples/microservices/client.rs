//! The client side of a service: calls to one downstream service over pooled keep-alive
//! HTTP/1.1 connections (hyper's client on zsync), with the deadline passed on, retries with
//! backoff for idempotent calls, and a circuit breaker.
//!
//! Colorblind: [`Downstream::get`] is a plain blocking call taking the task's `Io`. A pooled
//! connection is hyper's `client::conn::http1` pair: its `SendRequest` (used through
//! `io.block_on` by the calling task) and its connection future, a detached zsync future task
//! that ends when the socket closes. Connections come from `zsync::pool`: checkout waits for a
//! free slot under the request's deadline; a connection that hyper reports closed is discarded
//! on return.
//!
//! **Cancellation.** If the caller's deadline passes or its task is canceled while a request
//! is in flight, `block_on` drops the request's future and returns `TimedOut`/`Canceled`. The
//! connection is then in an unknown state (the response may still come), so it is shut down and
//! discarded, not pooled: the downstream sees its client hang up, and cancels its own work.
//!
//! **What counts against a downstream** ([`Outcome::Failure`]): a connection refused, reset or
//! closed before the whole response arrived, and a `5xx` other than `504` that the downstream
//! reports about *itself* (its name in the `x-failed-service` header). A `502`/`503`/`504` it
//! reports about a service further down is passed on as it is, neither retried nor counted:
//! the service that failed is the one whose breaker opens, and breakers do not cascade up the
//! chain. A timeout (the caller's own, or a `504` the downstream reports about itself) is
//! [`Outcome::Inconclusive`]: the budget is the caller's, and a small one says more about the
//! caller than about the downstream.
//!
//! **Retries** (GET only, idempotent): after a transport failure or a `503` the downstream
//! reports about itself, up to `max_attempts` tries in all, with the backoff of
//! [`RetryPolicy`], and only while the deadline leaves room. Each try asks the breaker first.

use std::fmt;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{HeaderMap, Request, StatusCode};
use zsync::net::TcpStream;
use zsync::pool::{Manager, Pool, PoolError};
use zsync::Io;

use crate::breaker::{Breaker, BreakerConfig, Outcome, Snapshot};
use crate::budget;
use crate::retry::{Jitter, RetryPolicy};
use crate::server::FAILED_SERVICE;

/// A downstream's answer: status, headers and the whole body.
#[derive(Debug)]
pub struct Answer {
    /// The response status.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The response body.
    pub body: Bytes,
}

impl Answer {
    /// The service a `5xx` answer names as the one that failed, if any.
    pub fn failed_service(&self) -> Option<&str> {
        if !self.status.is_server_error() {
            return None;
        }
        self.headers.get(FAILED_SERVICE)?.to_str().ok()
    }
}

/// Why a call to a downstream produced no answer.
#[derive(Debug)]
pub enum CallError {
    /// The breaker is open: the call was not made.
    CircuitOpen,
    /// The downstream could not be reached or failed mid-response, on every try.
    Unavailable(String),
    /// The request's deadline passed.
    DeadlineExceeded,
    /// The calling task was canceled (its client went away).
    Canceled,
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::CircuitOpen => f.write_str("circuit open"),
            CallError::Unavailable(e) => write!(f, "unavailable: {e}"),
            CallError::DeadlineExceeded => f.write_str("deadline exceeded"),
            CallError::Canceled => f.write_str("canceled"),
        }
    }
}

/// What a client counts (statistics, relaxed).
#[derive(Debug, Default)]
pub struct ClientStats {
    /// Calls made ([`Downstream::get`]).
    pub calls: AtomicU64,
    /// Tries after the first.
    pub retries: AtomicU64,
    /// Tries that failed against the downstream ([`Outcome::Failure`]).
    pub failures: AtomicU64,
    /// Calls refused by the open breaker.
    pub rejected: AtomicU64,
    /// In-flight requests abandoned (deadline or cancellation) and their connection closed.
    pub abandoned: AtomicU64,
}

/// How to call a downstream.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Most pooled connections to it.
    pub max_connections: usize,
    /// Retries of idempotent calls.
    pub retry: RetryPolicy,
    /// Its circuit breaker.
    pub breaker: BreakerConfig,
}

impl Default for ClientConfig {
    fn default() -> ClientConfig {
        ClientConfig {
            max_connections: 512,
            retry: RetryPolicy::default(),
            breaker: BreakerConfig::default(),
        }
    }
}

/// One pooled connection to a downstream.
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
    /// A second handle to the socket (`try_clone`), to shut it down (which ends the
    /// connection task) when the connection is abandoned or dropped.
    ctl: TcpStream,
}

impl Conn {
    fn close(&self) {
        let _ = self.ctl.shutdown(Shutdown::Both);
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.close();
    }
}

/// Opens connections to one address: TCP connect (under the caller's deadline), hyper's
/// handshake, and the connection future started as a detached future task.
pub struct Connector {
    addr: SocketAddr,
}

impl Manager for Connector {
    type Conn = Conn;
    type Error = io::Error;

    fn connect(&self, io: &Io) -> io::Result<Conn> {
        let stream = TcpStream::connect(io, self.addr)?;
        stream.set_nodelay(true)?;
        let ctl = stream.try_clone()?;
        let (sender, conn) = io
            .block_on(hyper::client::conn::http1::handshake(stream))?
            .map_err(io::Error::other)?;
        // Ends when the socket closes (a `Conn` shuts it down when dropped) or the runtime
        // shuts down.
        io.spawn_future(conn).detach();
        Ok(Conn { sender, ctl })
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.sender.is_closed()
    }
}

/// What an answer from the downstream `name` says about it: a `5xx` naming itself is its own
/// failure, except a `504` (its share of the caller's budget ran out: no verdict); anything
/// else, including errors it reports about services further down, is a success.
pub fn outcome_of(a: &Answer, name: &str) -> Outcome {
    match a.failed_service() {
        Some(s) if s == name && a.status == StatusCode::GATEWAY_TIMEOUT => Outcome::Inconclusive,
        Some(s) if s == name => Outcome::Failure,
        _ => Outcome::Success,
    }
}

/// A downstream service as seen by its caller.
pub struct Downstream {
    name: &'static str,
    addr: SocketAddr,
    authority: String,
    pool: Pool<Connector>,
    breaker: Breaker,
    retry: RetryPolicy,
    jitter: Mutex<Jitter>,
    /// The client's counters.
    pub stats: ClientStats,
}

/// How one try ended.
enum Try {
    Answer(Answer),
    Transport(String),
    TimedOut,
    Canceled,
}

impl Downstream {
    /// A client of the service `name` at `addr`. Opens no connection yet.
    pub fn new(io: &Io, name: &'static str, addr: SocketAddr, cfg: ClientConfig) -> Downstream {
        let pool = Pool::builder(Connector { addr })
            .max_size(cfg.max_connections.max(1))
            .build(io)
            .expect("a pool without min_idle opens nothing at build");
        Downstream {
            name,
            addr,
            authority: addr.to_string(),
            pool,
            breaker: Breaker::new(cfg.breaker),
            retry: cfg.retry,
            // Seeded from the wall clock as `io` reads it: different in every real run,
            // the same in every run of one simulated seed (a reproducible backoff).
            jitter: Mutex::new(Jitter::from_seed(
                io.wall_clock()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64)
                    ^ u64::from(addr.port()),
            )),
            stats: ClientStats::default(),
        }
    }

    /// The downstream's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its breaker's settings.
    pub fn breaker_config(&self) -> &BreakerConfig {
        self.breaker.config()
    }

    /// Its breaker's state and counts.
    pub fn breaker(&self) -> Snapshot {
        self.breaker.snapshot()
    }

    /// `GET path` from the downstream, before `deadline`, passing on the remaining budget.
    /// Idempotent, so retried (see the module docs). Blocks the calling task; cancellation
    /// point. Call it inside `io.timeout_until(deadline, ..)`: the deadline bounds every wait.
    pub fn get(&self, io: &Io, deadline: Instant, path: &str) -> Result<Answer, CallError> {
        self.stats.calls.fetch_add(1, Ordering::Relaxed);
        let mut attempt = 0;
        loop {
            let Some(permit) = self.breaker.admit(io.now()) else {
                self.stats.rejected.fetch_add(1, Ordering::Relaxed);
                return Err(CallError::CircuitOpen);
            };
            let (outcome, retryable, result) = match self.try_once(io, deadline, path) {
                Try::Answer(a) => {
                    let outcome = outcome_of(&a, self.name);
                    let retryable =
                        outcome == Outcome::Failure && a.status == StatusCode::SERVICE_UNAVAILABLE;
                    (outcome, retryable, Ok(a))
                }
                Try::Transport(e) => (Outcome::Failure, true, Err(CallError::Unavailable(e))),
                Try::TimedOut => (
                    Outcome::Inconclusive,
                    false,
                    Err(CallError::DeadlineExceeded),
                ),
                Try::Canceled => (Outcome::Inconclusive, false, Err(CallError::Canceled)),
            };
            let now = io.now();
            if outcome == Outcome::Failure {
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
            }
            permit.finish(outcome, now);
            if !retryable {
                return result;
            }
            let backoff = {
                let mut jitter = self.jitter.lock().unwrap_or_else(|p| p.into_inner());
                self.retry.backoff(attempt, now, deadline, &mut jitter)
            };
            let Some(backoff) = backoff else {
                return result;
            };
            match io.sleep(backoff) {
                Ok(()) => {}
                Err(e) if zsync::is_canceled(&e) => return Err(CallError::Canceled),
                Err(_) => return Err(CallError::DeadlineExceeded),
            }
            attempt += 1;
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn try_once(&self, io: &Io, deadline: Instant, path: &str) -> Try {
        let remaining = budget::remaining_ms(deadline, io.now());
        if remaining == 0 {
            return Try::TimedOut;
        }
        let mut conn = match self.pool.get(io) {
            Ok(conn) => conn,
            Err(PoolError::Timeout) => return Try::TimedOut,
            Err(PoolError::Canceled) => return Try::Canceled,
            Err(PoolError::Backend(e)) if zsync::is_timed_out(&e) => return Try::TimedOut,
            Err(PoolError::Backend(e)) if zsync::is_canceled(&e) => return Try::Canceled,
            Err(e) => return Try::Transport(format!("{e}")),
        };
        let req = Request::get(path)
            .header(hyper::header::HOST, self.authority.as_str())
            .header(budget::HEADER, remaining)
            .body(Full::new(Bytes::new()))
            .expect("a valid request");
        let sender = &mut conn.sender;
        let result = io.block_on(async move {
            sender.ready().await?;
            let resp = sender.send_request(req).await?;
            let (parts, body) = resp.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok::<_, hyper::Error>(Answer {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        });
        match result {
            Ok(Ok(answer)) => Try::Answer(answer), // the connection goes back to the pool
            Ok(Err(e)) => {
                conn.close();
                conn.discard();
                Try::Transport(e.to_string())
            }
            Err(e) => {
                // Deadline or cancellation with the request in flight: hang up, so the
                // downstream stops working on it.
                self.stats.abandoned.fetch_add(1, Ordering::Relaxed);
                conn.close();
                conn.discard();
                if zsync::is_canceled(&e) {
                    Try::Canceled
                } else {
                    Try::TimedOut
                }
            }
        }
    }
}
