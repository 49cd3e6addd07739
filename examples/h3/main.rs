//! An HTTP/3 server and client on zsync: quinn through `zsync::compat::quinn` (feature
//! `quinn`), HTTP/3 through `h3` and `h3-quinn`, TLS 1.3 with a self-signed certificate (rcgen)
//! and ALPN `h3`. See `examples/h3/README.md`.
//!
//! ```text
//! # server and client in one process: every route fetched and checked, then a graceful shutdown
//! cargo run --release --features quinn --example h3
//! # apart: the server writes its certificate (DER) where the client reads it
//! cargo run --release --features quinn --example h3 -- --server --addr 127.0.0.1:4433 --cert target/h3.der
//! cargo run --release --features quinn --example h3 -- --client --addr 127.0.0.1:4433 --cert target/h3.der
//! # benchmarks (what the runner's `--apps h3` runs, against bench/peers/tokio_h3.rs)
//! cargo run --release --features quinn --example h3 -- --bench h3 --bytes 1073741824
//! ```
//!
//! Flags:
//!
//! ```text
//!   --server | --client        one side only (default: both, on an ephemeral port)
//!   --addr HOST:PORT           the server's address (default 127.0.0.1:4433 with --server/--client)
//!   --cert FILE                the server's certificate (DER), written by --server, read by --client
//!   --bench h3|raw|handshakes  a benchmark instead (server and client in this process)
//!   --bytes N                  h3/raw: the body or stream size (default 1 GiB)
//!   --handshakes N             handshakes: connections to make (default 2000)
//!   --concurrency N            handshakes: connections in flight (default 8)
//!   --model threaded|green, --backend io_uring|epoll|auto, --workers N, --max-threads N
//! ```
//!
//! Modules: `server` (the h3 server: future tasks), `routes` (the colorblind handlers),
//! `client` (the colorblind client), `body` (the generated bodies), `tls` (certificate and
//! configs), `bench` (the benchmark modes).

#[path = "../common/cli.rs"]
#[allow(dead_code)]
mod cli;

mod bench;
mod body;
mod client;
mod routes;
mod server;
mod tls;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, StatusCode};
use quinn::rustls::pki_types::CertificateDer;
use zsync::{Io, Model};

use client::Client;
use server::Server;
use tls::{BoxError, ALPN_H3};

const USAGE: &str = "\
usage: h3 [--server | --client] [--addr 127.0.0.1:4433] [--cert FILE]
          [--bench h3|raw|handshakes] [--bytes N] [--handshakes N] [--concurrency N]
          [--model threaded|green] [--backend io_uring|epoll|auto] [--workers N] [--max-threads N]";

/// A flag's value, or the usage message and exit status 2.
fn or_exit<T>(r: Result<T, String>) -> T {
    r.unwrap_or_else(|e| cli::exit_usage(USAGE, &e))
}

fn main() {
    let valued = [
        cli::RUNTIME_FLAGS,
        &[
            "addr",
            "cert",
            "bench",
            "bytes",
            "handshakes",
            "concurrency",
        ],
    ]
    .concat();
    let args = cli::parse_or_exit(
        &format!("{USAGE}\n\n{}", cli::RUNTIME_HELP),
        &valued,
        &["server", "client"],
    );
    let rt = or_exit(cli::RuntimeOpts::from_args(&args, "green"));
    if matches!(rt.model, Model::Blocking) {
        cli::exit_usage(
            USAGE,
            "--model blocking: quinn's drivers must run beside the code that waits for them; \
             use green or threaded",
        );
    }
    let bytes: u64 = or_exit(args.get_or("bytes", 1u64 << 30));
    let count: u64 = or_exit(args.get_or("handshakes", 2000u64));
    let concurrency: u64 = or_exit(args.get_or("concurrency", 8u64));
    let bench_mode = args.value("bench").map(str::to_string);
    let cli::Roles {
        serve,
        connect,
        addr,
        cert_file,
    } = cli::Roles::from_args_or_exit(&args, USAGE);

    let result = rt.builder().run(|io| -> Result<(), BoxError> {
        if let Some(mode) = bench_mode.as_deref() {
            let (cert, key) = tls::self_signed()?;
            return match mode {
                "h3" => bench::h3_stream(io, cert, key, bytes),
                "raw" => bench::raw_stream_bench(io, cert, key, bytes),
                "handshakes" => bench::handshakes(io, cert, key, count, concurrency),
                other => Err(format!("--bench {other}: expected h3, raw or handshakes").into()),
            };
        }
        if !serve {
            let file = cert_file.as_deref().expect("checked above");
            let cert = CertificateDer::from(std::fs::read(file)?);
            let client = Client::connect(io, addr, tls::client_config(cert, ALPN_H3)?)?;
            tour(io, &client)?;
            return client.close(io);
        }
        let (cert, key) = tls::self_signed()?;
        let server = Server::start(io, tls::server_config(cert.clone(), key, &[ALPN_H3])?, addr)?;
        println!(
            "HTTP/3 listening on {} (model {})",
            server.local_addr()?,
            io.model_name()
        );
        if !connect {
            if let Some(file) = &cert_file {
                std::fs::write(file, &cert)?;
                println!("certificate written to {file}");
            }
            // Until the process is stopped.
            loop {
                io.sleep(Duration::from_secs(3600))?;
            }
        }
        let client = Client::connect(io, server.local_addr()?, tls::client_config(cert, ALPN_H3)?)?;
        tour(io, &client)?;
        client.close(io)?;
        let stats = server.stats();
        println!(
            "server: {} connection(s), {} requests ({} failed), {} body bytes sent",
            stats.connections.load(Ordering::Relaxed),
            stats.requests.load(Ordering::Relaxed),
            stats.request_errors.load(Ordering::Relaxed),
            stats.body_bytes_sent.load(Ordering::Relaxed),
        );
        server.shutdown(io, Duration::from_secs(5))?;
        println!("server shut down");
        Ok(())
    });
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// Fetches every route once and checks the answers; concurrent requests on one connection.
fn tour(io: &Io, client: &Client) -> Result<(), BoxError> {
    let hello = client.get(io, "/")?;
    expect(hello.status == StatusCode::OK, "GET / status")?;
    print!(
        "GET /            {} ({:?}, rtt {:?}) {}",
        hello.status,
        hello.headers.get("content-type"),
        client.connection().rtt(),
        String::from_utf8_lossy(&hello.body)
    );

    let size = 64u64 << 20;
    let started = Instant::now();
    let (status, _, offset) = client.get_generated(io, size)?;
    expect(status == StatusCode::OK && offset == size, "GET /bytes")?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "GET /bytes/{size} {status} checked, {:.0} MiB/s",
        size as f64 / secs / (1 << 20) as f64
    );

    let sent: Bytes = (0..(3 << 20) + 7).map(|i| (i * 13) as u8).collect();
    let echoed = client.request(io, Method::POST, "/echo", sent.clone())?;
    expect(
        echoed.status == StatusCode::OK && echoed.body == sent,
        "POST /echo",
    )?;
    println!(
        "POST /echo       {} {} bytes back, equal",
        echoed.status,
        echoed.body.len()
    );

    let digest = client.request(io, Method::POST, "/digest", Bytes::from_static(b"hello"))?;
    expect(
        digest.body == format!("fnv1a64 {:016x} len 5\n", routes::fnv1a64(b"hello")).as_bytes(),
        "POST /digest",
    )?;
    print!(
        "POST /digest     {} {}",
        digest.status,
        String::from_utf8_lossy(&digest.body)
    );

    // Eight requests at once on this one connection, each parked in its handler for 200 ms:
    // eight handler tasks sleep side by side, so this takes about 200 ms, not 1.6 s.
    let started = Instant::now();
    let sleepers = (0..8)
        .map(|_| {
            let requester = client.requester();
            io.concurrent(move |io| requester.get(io, "/sleep?ms=200"))
                .map_err(std::io::Error::from)
        })
        .collect::<Result<Vec<_>, _>>()?;
    for sleeper in sleepers {
        let reply = sleeper.join()??;
        expect(reply.status == StatusCode::OK, "GET /sleep")?;
    }
    println!(
        "GET /sleep?ms=200 x8 at once on one connection: {:?}",
        started.elapsed()
    );

    let missing = client.get(io, "/nope")?;
    expect(missing.status == StatusCode::NOT_FOUND, "GET /nope")?;
    println!("GET /nope        {}", missing.status);
    Ok(())
}

fn expect(ok: bool, what: &str) -> Result<(), BoxError> {
    if ok {
        Ok(())
    } else {
        Err(format!("{what}: unexpected answer").into())
    }
}
