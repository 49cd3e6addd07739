//! hyper 1.x on zsync: an HTTP/1.1 server whose connections are hyper's
//! `server::conn::http1`, each in a zsync future task (`io.spawn_future`), behind an async
//! accept loop. hyper's runtime traits come from `zsync::compat::hyper` (feature `hyper`):
//! the zsync `TcpStream` is hyper's transport as it is, and `ZsyncTimer` runs the header read
//! timeout.
//!
//! ```text
//! cargo run --release --features hyper --example hyper_server -- --model green --workers 2 --addr 127.0.0.1:8080
//! curl -s localhost:8080/                        # Hello, World!
//! curl -s -d 'some bytes' localhost:8080/echo    # some bytes
//! wrk -t1 -c64 -d10s http://127.0.0.1:8080/
//! ```
//!
//! Routes (`examples/common/hyper_routes.rs`, the same handler the benchmark runner serves on
//! Tokio): `GET /` → `Hello, World!` (as `http_server`'s benchmark route), `POST /echo` → the
//! body back, anything else `404`.
//!
//! Flags:
//!
//! ```text
//!   --addr HOST:PORT          listen address (default 127.0.0.1:8080; port 0 picks one)
//!   --model green|threaded    execution model (default green); blocking is refused: a
//!                             future task there runs inline, so one connection would hold
//!                             the accept loop
//!   --backend io_uring|epoll|auto, --workers N, --max-threads N
//!   --header-timeout-ms MS    hyper's header read timeout (default 30000)
//!   --verbose                 log every connection that ends with an error
//! ```
//!
//! It prints `listening on ADDR (...)` once bound, then runs until killed.

#[path = "common/cli.rs"]
#[allow(dead_code)]
mod cli;
#[path = "common/hyper_routes.rs"]
mod hyper_routes;
#[path = "common/hyper_serve.rs"]
#[allow(dead_code)]
mod hyper_serve;

use std::io;
use std::sync::Arc;
use std::time::Duration;

use cli::RuntimeOpts;
use hyper_serve::{HyperConfig, HyperStats};
use zsync::net::TcpListener;
use zsync::Model;

const USAGE: &str = "\
usage: hyper_server [--addr 127.0.0.1:8080] [--model green|threaded] [--backend io_uring|epoll|auto]
                    [--workers N] [--max-threads N] [--header-timeout-ms 30000] [--verbose]";

/// A flag's value, or the usage message and exit status 2.
fn or_exit<T>(r: Result<T, String>) -> T {
    r.unwrap_or_else(|e| cli::exit_usage(USAGE, &e))
}

fn main() {
    let valued = [cli::RUNTIME_FLAGS, &["addr", "header-timeout-ms"]].concat();
    let args = cli::parse_or_exit(
        &format!("{USAGE}\n\n{}", cli::RUNTIME_HELP),
        &valued,
        &["verbose"],
    );
    let rt = or_exit(RuntimeOpts::from_args(&args, "green"));
    if matches!(rt.model, Model::Blocking) {
        cli::exit_usage(
            USAGE,
            "--model blocking: a future task runs inline there, so the first connection would \
             hold the accept loop; use green or threaded",
        );
    }
    let addr = args.value("addr").unwrap_or("127.0.0.1:8080").to_string();
    let cfg = HyperConfig {
        header_timeout: Duration::from_millis(
            or_exit(args.get_or("header-timeout-ms", 30_000u64)).max(1),
        ),
        verbose: args.switch("verbose"),
    };
    let result = rt.builder().run(|io| -> io::Result<()> {
        let listener = TcpListener::bind(io, addr.as_str())?;
        println!(
            "listening on {} (hyper, model {}, backend {}, {} workers; GET /, POST /echo)",
            listener.local_addr()?,
            io.model_name(),
            io.backend_name(),
            rt.workers,
        );
        let stats = Arc::new(HyperStats::default());
        io.block_on(hyper_serve::serve(
            io.clone(),
            listener,
            hyper_routes::route,
            cfg,
            stats,
        ))?
    });
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
