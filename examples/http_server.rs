//! An HTTP/1.1 server on zsync: keep-alive, pipelining, httparse, and the same colorblind
//! handler (`fn handle(io: &Io, conn: TcpStream, ..)`) on every execution model.
//!
//! ```text
//! cargo run --release --example http_server -- --model green --backend io_uring --addr 127.0.0.1:8080
//! curl -s localhost:8080/                                    # Hello, World!
//! curl -s localhost:8080/file | wc -c                        # 1048576
//! curl -s -d '{"a":[1,2]}' localhost:8080/echo               # {"a":[1,2]}
//! wrk -t2 -c64 -d10s http://127.0.0.1:8080/
//!
//! cargo run --release --example http_server -- --tls        # HTTPS, self-signed certificate
//! curl -s --cacert /tmp/zsync-http-server-PID/cert.pem https://localhost:8080/
//! cargo run --release --example http_server -- --tls --cert chain.pem --key key.pem
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
//! HTTPS (`--tls`): rustls (ring provider, TLS 1.3 and 1.2, ALPN `http/1.1`) around the same
//! handler, with a certificate chain and key from PEM files (`--cert`, `--key`) or, without
//! them, a self-signed certificate for `localhost` and `127.0.0.1` made at start (its PEM is
//! written next to the generated file and its path printed, for `curl --cacert`). The handshake
//! must finish within the header timeout, like a plain first request; a failed handshake is
//! logged (at most one line a second) and closes only its connection; `close_notify` is sent at
//! every ordinary end. Details in `examples/common/tls.rs`.
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
//!   --tls                     serve HTTPS instead of HTTP
//!   --cert PATH, --key PATH   PEM certificate chain (leaf first) and private key for --tls
//!                             (default: a self-signed certificate made at start)
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
use common::tls::{Identity, TlsServer};
use zsync::net::TcpListener;

const USAGE: &str = "\
usage: http_server [--addr 127.0.0.1:8080] [--model blocking|threaded|green] [--backend io_uring|epoll|auto]
                   [--workers N] [--max-threads N] [--file PATH] [--header-timeout-ms 5000]
                   [--idle-timeout-ms 60000] [--write-timeout-ms 30000]
                   [--request-memory-mib 64] [--tls [--cert PEM --key PEM]]
                   [--verbose] [--profile]";

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
            "cert",
            "key",
        ],
    ]
    .concat();
    let args = cli::parse_or_exit(
        &format!("{USAGE}\n\n{}", cli::RUNTIME_HELP),
        &valued,
        &["verbose", "profile", "tls"],
    );
    let rt = or_exit(RuntimeOpts::from_args(&args, "green"));
    let addr = args.value("addr").unwrap_or("127.0.0.1:8080").to_string();
    let ms = |name: &str, default: u64| -> Duration {
        Duration::from_millis(or_exit(args.get_or(name, default)).max(1))
    };
    let dir = std::env::temp_dir().join(format!("zsync-http-server-{}", std::process::id()));
    let file = match args.value("file") {
        Some(path) => path.into(),
        None => http::generate_file(&dir, "file.bin", 1 << 20).unwrap_or_else(|e| {
            eprintln!(
                "error: cannot generate the file for GET /file in {}: {e}",
                dir.display()
            );
            std::process::exit(1);
        }),
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
    let tls = tls_setup(&args, &dir);
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
            "listening on {} ({}model {}, backend {}, {} workers; GET /, GET /file = {}, POST /echo)",
            listener.local_addr()?,
            if tls.is_some() { "HTTPS, " } else { "" },
            io.model_name(),
            io.backend_name(),
            if io.supports_concurrency() { rt.workers } else { 1 },
            cfg.file.display(),
        );
            match &tls {
                Some(tls) => common::tls::serve(io, &listener, cfg, tls, &ctl),
                None => http::serve(io, &listener, cfg, &ctl),
            }
        });
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// The TLS server for `--tls` (`None` without it): the certificate of `--cert`/`--key`, or a
/// self-signed one whose PEM is written to `dir/cert.pem`. Exits with a clear message when the
/// files do not load.
fn tls_setup(args: &cli::Args, dir: &std::path::Path) -> Option<Arc<TlsServer>> {
    let (cert, key) = (args.value("cert"), args.value("key"));
    if !args.switch("tls") {
        if cert.is_some() || key.is_some() {
            cli::exit_usage(USAGE, "--cert and --key need --tls");
        }
        return None;
    }
    let fail = |e: io::Error| -> ! {
        eprintln!("error: TLS: {e}");
        std::process::exit(1);
    };
    let identity = match (cert, key) {
        (Some(cert), Some(key)) => {
            Identity::from_pem_files(cert.as_ref(), key.as_ref()).unwrap_or_else(|e| fail(e))
        }
        (None, None) => {
            let made =
                Identity::self_signed(&["localhost", "127.0.0.1"]).unwrap_or_else(|e| fail(e));
            let path = dir.join("cert.pem");
            std::fs::create_dir_all(dir)
                .and_then(|()| std::fs::write(&path, &made.cert_pem))
                .unwrap_or_else(|e| {
                    fail(io::Error::new(e.kind(), format!("{}: {e}", path.display())))
                });
            println!(
                "TLS: self-signed certificate for localhost and 127.0.0.1 in {} (curl --cacert)",
                path.display()
            );
            made.identity
        }
        _ => cli::exit_usage(USAGE, "--cert and --key go together"),
    };
    Some(TlsServer::new(
        identity.server_config().unwrap_or_else(|e| fail(e)),
    ))
}
