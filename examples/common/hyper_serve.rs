//! The accept loop of the hyper server on zsync, shared by `examples/hyper_server.rs` and
//! `tests/hyper.rs`: an async accept loop, and each connection served by hyper's
//! `server::conn::http1` in a zsync future task of its own (`io.spawn_future`).
//!
//! Connection tasks are detached: a connection ends when its client closes it, when it errs,
//! or when the runtime shuts down (which cancels it: its future is dropped, closing the socket).
//! A panic in a handler ends its connection task only; zsync contains it in the task and
//! reports it when the runtime shuts down.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use zsync::compat::hyper::ZsyncTimer;
use zsync::net::TcpListener;
use zsync::time;
use zsync::Io;

/// What a server counts while it runs.
#[derive(Debug, Default)]
pub struct HyperStats {
    /// Connections accepted.
    pub accepted: AtomicUsize,
    /// Connections that ended with an error (hyper's: reset, timeout, malformed request).
    pub conn_errors: AtomicUsize,
    /// Failed accepts.
    pub accept_errors: AtomicUsize,
}

/// How a server serves its connections.
#[derive(Debug, Clone)]
pub struct HyperConfig {
    /// hyper's `header_read_timeout`: a client that has not sent a whole request head this long
    /// after it began (or, between requests, after the last response) is disconnected.
    pub header_timeout: Duration,
    /// Log each connection that ends with an error to stderr.
    pub verbose: bool,
}

impl Default for HyperConfig {
    fn default() -> HyperConfig {
        HyperConfig {
            header_timeout: Duration::from_secs(30),
            verbose: false,
        }
    }
}

/// Accepts connections on `listener` until the task running this future is canceled (or the
/// runtime shuts down), serving each with `handler` in a future task of its own.
pub async fn serve<F, Fut>(
    io: Io,
    listener: TcpListener,
    handler: F,
    cfg: HyperConfig,
    stats: Arc<HyperStats>,
) -> io::Result<()>
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send + 'static,
{
    loop {
        let stream = match listener.accept_async().await {
            Ok((stream, _)) => stream,
            Err(e) if zsync::is_canceled(&e) => return Err(e),
            Err(e) => {
                // Out of descriptors, or a connection reset before it was accepted: pause a
                // little (descriptors come back as connections end) and go on.
                stats.accept_errors.fetch_add(1, Ordering::Relaxed);
                if cfg.verbose {
                    eprintln!("accept: {e}");
                }
                time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        let (cfg, stats) = (cfg.clone(), stats.clone());
        io.spawn_future(async move {
            let conn = http1::Builder::new()
                .timer(ZsyncTimer::new())
                .header_read_timeout(cfg.header_timeout)
                .serve_connection(stream, service_fn(handler));
            if let Err(e) = conn.await {
                stats.conn_errors.fetch_add(1, Ordering::Relaxed);
                if cfg.verbose {
                    eprintln!("connection: {e}");
                }
            }
        })
        .detach();
    }
}
