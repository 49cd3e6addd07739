//! Tokio peer of `examples/hyper_server.rs`: the very same hyper 1.x server (the same routes,
//! included from `examples/common/hyper_routes.rs`, the same `http1::Builder` settings: a timer
//! and a 30 s header read timeout) on a Tokio multi-thread runtime, through `hyper-util`'s
//! `TokioIo` and `TokioTimer`.
//!
//! `tokio-hyper --addr 127.0.0.1:8080 --workers 2`

#[path = "../../examples/common/hyper_routes.rs"]
#[allow(dead_code)]
mod hyper_routes;

use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use zsync_bench::Args;

fn main() {
    let args = Args::from_env();
    let addr = args.get_or("--addr", "127.0.0.1:8080");
    let workers = args.parse_or("--workers", 2usize);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        let listener = TcpListener::bind(&addr).await.expect("bind");
        loop {
            let Ok((s, _)) = listener.accept().await else {
                continue;
            };
            let _ = s.set_nodelay(true);
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(30))
                    .serve_connection(TokioIo::new(s), service_fn(hyper_routes::route))
                    .await;
            });
        }
    });
}
