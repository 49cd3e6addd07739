//! An HTTP/1.1 server on zsync: keep-alive, pipelining, httparse, and the same colorblind
//! handler (`fn handle(io: &Io, conn: TcpStream, ..)`) on every execution model.
//!
//! ```text
//! cargo run --release --example http_server -- --model green --backend io_uring --addr 127.0.0.1:8080
//! curl -s localhost:8080/                                    # Hello, World!
//! curl -s localhost:8080/file | wc -c                        # 1048576
//! curl -s -d '{"a":[1,2]}' localhost:8080/echo               # {"a":[1,2]}
//! wrk -t2 -c64 -d10s http://127.0.0.1:8080/
//! ```
//!
//! Routes: `GET /` → `Hello, World!` (the benchmark route); `GET /file` → the file given by
//! `--file` (default: a generated 1 MiB file in a temporary directory), sent with
//! `Writer::send_file` (`sendfile(2)`); `POST /echo` → the JSON body back with
//! `content-type: application/json`, `400` if it does not parse. Malformed requests get `400`
//! (so does an HTTP/1.1 request without `Host`, or any request with two or an invalid one),
//! targets over 4 KiB `414`, heads over 8 KiB or with more than 64 headers `431`, and the
//! connection is closed; a head not complete within `--header-timeout-ms` (slowloris) closes
//! the connection, and so does a client that leaves a response unread for
//! `--write-timeout-ms`. Request bodies are held against one budget for all connections
//! (`--request-memory-mib`); one that does not fit gets `503`. Accept failures (out of
//! descriptors) are logged at most once a second and retried after a growing pause. The
//! protocol details are in `examples/common/http.rs`.
//!
//! Concurrency: the accept loop starts one task per connection with `concurrent`, in a
//! `zsync::Group` it reaps as connections end (see `examples/common/server.rs`). On
//! `--model blocking` there is no concurrency: connections are served one after another, each
//! until its client closes it (or goes idle for `--idle-timeout-ms`), so a keep-alive client
//! holds the server — that is the model's nature, not a bug. On `--model threaded` each
//! connection gets a thread (up to `--max-threads`, then served inline by the accept loop);
//! on `--model green` each connection is a fiber.
//!
//! Flags:
//!
//! ```text
//!   --addr HOST:PORT          listen address (default 127.0.0.1:8080; port 0 picks one)
//!   --model blocking|threaded|green, --backend io_uring|epoll|auto, --workers N, --max-threads N
//!   --file PATH               file served by GET /file (default: generated, 1 MiB)
//!   --header-timeout-ms MS    request head deadline, from its first byte (default 5000)
//!   --idle-timeout-ms MS      keep-alive idle limit between requests (default 60000)
//!   --write-timeout-ms MS     limit on one write waiting for the client (default 30000)
//!   --request-memory-mib N    request bodies held at once, over all connections (default 64)
//!   --verbose                 log every connection that ends with an error (peer reset,
//!                             timeout, malformed request) to stderr; by default only counted
//!   --profile                 record a profile (`Builder::profile`) while serving, to measure
//!                             what profiling costs (needs `--features profile`)
//! ```
//!
//! It prints `listening on ADDR (...)` once bound (port 0 shows the port picked), then runs
//! until killed.

#[path = "common/mod.rs"]
mod common;

use std::io;
use std::sync::Arc;
use std::time::Duration;

use common::cli::{self, RuntimeOpts};
use common::http::{self, HttpConfig, MemoryBudget};
use common::server::Control;
use zsync::net::TcpListener;

const USAGE: &str = "\
usage: http_server [--addr 127.0.0.1:8080] [--model blocking|threaded|green] [--backend io_uring|epoll|auto]
                   [--workers N] [--max-threads N] [--file PATH] [--header-timeout-ms 5000]
                   [--idle-timeout-ms 60000] [--write-timeout-ms 30000]
                   [--request-memory-mib 64] [--verbose] [--profile]";

/// A flag's value, or the usage message and exit status 2.
fn or_exit<T>(r: Result<T, String>) -> T {
    r.unwrap_or_else(|e| cli::exit_usage(USAGE, &e))
}

fn main() {
    let valued = [
        cli::RUNTIME_FLAGS,
        &[
            "addr",
            "file",
            "header-timeout-ms",
            "idle-timeout-ms",
            "write-timeout-ms",
            "request-memory-mib",
        ],
    ]
    .concat();
    let args = cli::parse_or_exit(
        &format!("{USAGE}\n\n{}", cli::RUNTIME_HELP),
        &valued,
        &["verbose", "profile"],
    );
    let rt = or_exit(RuntimeOpts::from_args(&args, "green"));
    let addr = args.value("addr").unwrap_or("127.0.0.1:8080").to_string();
    let ms = |name: &str, default: u64| -> Duration {
        Duration::from_millis(or_exit(args.get_or(name, default)).max(1))
    };
    let file = match args.value("file") {
        Some(path) => path.into(),
        None => {
            let dir =
                std::env::temp_dir().join(format!("zsync-http-server-{}", std::process::id()));
            http::generate_file(&dir, "file.bin", 1 << 20).unwrap_or_else(|e| {
                eprintln!(
                    "error: cannot generate the file for GET /file in {}: {e}",
                    dir.display()
                );
                std::process::exit(1);
            })
        }
    };
    let cfg = HttpConfig {
        header_timeout: ms("header-timeout-ms", 5_000),
        idle_timeout: ms("idle-timeout-ms", 60_000),
        write_timeout: ms("write-timeout-ms", 30_000),
        request_memory: Arc::new(MemoryBudget::new(
            or_exit(args.get_or("request-memory-mib", http::DEFAULT_REQUEST_MEMORY >> 20))
                .saturating_mul(1 << 20),
        )),
        file,
    };
    let ctl = Control::new(args.switch("verbose"));
    let builder = rt.builder();
    #[cfg(feature = "profile")]
    let builder = builder.profile(args.switch("profile"));
    #[cfg(not(feature = "profile"))]
    if args.switch("profile") {
        cli::exit_usage(USAGE, "--profile needs the `profile` feature");
    }
    let result =
        builder.run(|io| -> io::Result<()> {
            let listener = TcpListener::bind(io, addr.as_str())?;
            println!(
            "listening on {} (model {}, backend {}, {} workers; GET /, GET /file = {}, POST /echo)",
            listener.local_addr()?,
            io.model_name(),
            io.backend_name(),
            if io.supports_concurrency() { rt.workers } else { 1 },
            cfg.file.display(),
        );
            http::serve(io, &listener, cfg, &ctl)
        });
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
