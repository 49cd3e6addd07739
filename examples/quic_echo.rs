//! A QUIC echo on zsync through quinn: the server runs as future tasks, the client is
//! colorblind code that waits for quinn's futures with `io.block_on`. Needs the `quinn` feature.
//!
//! ```text
//! # server and client in one process (the default), on Green or Threaded
//! cargo run --release --features quinn --example quic_echo -- --model green --streams 8 --size 1048576
//! # or apart: the server writes its self-signed certificate where the client reads it
//! cargo run --release --features quinn --example quic_echo -- --server --addr 127.0.0.1:4433 --cert target/quic_echo.der
//! cargo run --release --features quinn --example quic_echo -- --client --addr 127.0.0.1:4433 --cert target/quic_echo.der
//! ```
//!
//! Every stream sends `--size` bytes of a pattern, reads the echo back while it sends (a stream
//! larger than the flow-control window would otherwise stall) and checks it byte for byte.
//!
//! Flags:
//!
//! ```text
//!   --server | --client       run one side only (default: both, on an ephemeral port)
//!   --addr HOST:PORT          the server's address (default 127.0.0.1:4433 with --server/--client)
//!   --cert FILE               the server's certificate (DER), written by --server, read by --client
//!   --streams N               concurrent bidirectional streams the client opens (default 4)
//!   --size BYTES              bytes each stream sends (default 1048576)
//!   --model threaded|green, --backend io_uring|epoll|auto, --workers N, --max-threads N
//! ```

#[path = "common/cli.rs"]
#[allow(dead_code)]
mod cli;

use std::error::Error;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use quinn::rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use quinn::{ClientConfig, Endpoint, ServerConfig};
use zsync::compat::quinn::{client, server};
use zsync::Io;

type BoxError = Box<dyn Error + Send + Sync>;

const USAGE: &str = "\
usage: quic_echo [--server | --client] [--addr 127.0.0.1:4433] [--cert FILE] [--streams 4] [--size 1048576]
                 [--model threaded|green] [--backend io_uring|epoll|auto] [--workers N] [--max-threads N]";

/// How many bytes a stream's echo may hold in one read.
const CHUNK: usize = 64 * 1024;

/// A flag's value, or the usage message and exit status 2.
fn or_exit<T>(r: Result<T, String>) -> T {
    r.unwrap_or_else(|e| cli::exit_usage(USAGE, &e))
}

fn main() {
    let valued = [cli::RUNTIME_FLAGS, &["addr", "cert", "streams", "size"]].concat();
    let args = cli::parse_or_exit(
        &format!("{USAGE}\n\n{}", cli::RUNTIME_HELP),
        &valued,
        &["server", "client"],
    );
    let rt = or_exit(cli::RuntimeOpts::from_args(&args, "green"));
    let streams: usize = or_exit(args.get_or("streams", 4usize)).max(1);
    let size: usize = or_exit(args.get_or("size", 1usize << 20));
    let cli::Roles {
        serve,
        connect,
        addr,
        cert_file,
    } = cli::Roles::from_args_or_exit(&args, USAGE);

    let result = rt.builder().run(|io| -> Result<(), BoxError> {
        let (endpoint, cert) = if serve {
            let (config, cert) = self_signed()?;
            if let (Some(file), false) = (&cert_file, connect) {
                std::fs::write(file, &cert)?;
            }
            let endpoint = server(io, config, addr)?;
            println!(
                "QUIC echo listening on {} (model {})",
                endpoint.local_addr()?,
                io.model_name()
            );
            (Some(endpoint), cert)
        } else {
            let file = cert_file.as_deref().expect("checked above");
            (None, CertificateDer::from(std::fs::read(file)?))
        };
        if !connect {
            // Server only: accept until the process is stopped.
            return io.block_on(serve_all(endpoint.expect("server side")))?;
        }
        let server_addr = match &endpoint {
            Some(endpoint) => endpoint.local_addr()?,
            None => addr,
        };
        if let Some(endpoint) = endpoint {
            // The server in the background, as future tasks; dropped (canceled) at the end.
            io.spawn_future(serve_all(endpoint)).detach();
        }
        run_client(io, server_addr, cert, streams, size)
    });
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// A server config with a fresh self-signed certificate for `localhost`, and that certificate.
fn self_signed() -> Result<(ServerConfig, CertificateDer<'static>), BoxError> {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()])?;
    let key = PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der());
    let der = cert.cert.der().clone();
    let config = ServerConfig::with_single_cert(vec![der.clone()], key.into())?;
    Ok((config, der))
}

/// Accepts connections until the endpoint closes, each served by a future task of its own.
async fn serve_all(endpoint: Endpoint) -> Result<(), BoxError> {
    let io = Io::current().expect("runs as a zsync task");
    while let Some(incoming) = endpoint.accept().await {
        io.spawn_future(async move {
            if let Err(e) = serve_connection(incoming).await {
                eprintln!("connection: {e}");
            }
        })
        .detach();
    }
    Ok(())
}

/// Echoes every bidirectional stream the client opens, each in a future task, until the client
/// closes the connection.
async fn serve_connection(incoming: quinn::Incoming) -> Result<(), BoxError> {
    let io = Io::current().expect("runs as a zsync task");
    let conn = incoming.await?;
    loop {
        let (mut send, mut recv) = match conn.accept_bi().await {
            Ok(stream) => stream,
            Err(quinn::ConnectionError::ApplicationClosed(_)) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        io.spawn_future(async move {
            let mut buf = vec![0; CHUNK];
            loop {
                match recv.read(&mut buf).await {
                    Ok(Some(n)) => {
                        if send.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                    Ok(None) => break,
                    Err(_) => return,
                }
            }
            let _ = send.finish();
        })
        .detach();
    }
}

/// Connects, runs `streams` echoes of `size` bytes at once, checks them and closes.
fn run_client(
    io: &Io,
    server: SocketAddr,
    cert: CertificateDer<'static>,
    streams: usize,
    size: usize,
) -> Result<(), BoxError> {
    let mut roots = quinn::rustls::RootCertStore::empty();
    roots.add(cert)?;
    let config = ClientConfig::with_root_certificates(Arc::new(roots))?;
    let local: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    }
    .parse()?;
    let endpoint = client(io, local)?;
    let started = Instant::now();
    let conn = io.block_on(endpoint.connect_with(config, server, "localhost")?)??;
    println!("connected to {server} in {:?}", started.elapsed());

    let started = Instant::now();
    // Concurrent, not spawned: each stream waits on the network, and on Threaded a spawned task
    // may queue behind the others.
    let tasks = (0..streams)
        .map(|i| {
            let conn = conn.clone();
            io.concurrent(move |io| echo_stream(io, &conn, i, size))
                .map_err(std::io::Error::from)
        })
        .collect::<Result<Vec<_>, _>>()?;
    for task in tasks {
        task.join().map_err(|e| e.to_string())??;
    }
    let elapsed = started.elapsed();
    let total = (streams * size) as f64;
    println!(
        "{streams} streams x {size} bytes echoed and checked in {elapsed:?} ({:.1} MiB/s each way)",
        total / elapsed.as_secs_f64() / (1 << 20) as f64
    );
    conn.close(0u32.into(), b"done");
    io.block_on(endpoint.wait_idle())?;
    Ok(())
}

/// Stream `i`'s bytes: a pattern that differs from stream to stream and from byte to byte.
fn pattern(i: usize, size: usize) -> Vec<u8> {
    (0..size).map(|n| (n * 31 + i * 7) as u8).collect()
}

/// One stream: sends the pattern from a task of its own while this one reads the echo, then
/// compares.
fn echo_stream(io: &Io, conn: &quinn::Connection, i: usize, size: usize) -> Result<(), BoxError> {
    let (mut send, mut recv) = io.block_on(conn.open_bi())??;
    let sent = pattern(i, size);
    let data = sent.clone();
    let writer = io
        .concurrent(move |io| -> Result<(), BoxError> {
            io.block_on(send.write_all(&data))??;
            send.finish()?;
            Ok(())
        })
        .map_err(std::io::Error::from)?;
    let echoed = io.block_on(recv.read_to_end(size))??;
    writer.join().map_err(|e| e.to_string())??;
    if echoed != sent {
        return Err(format!("stream {i}: the echo differs from what was sent").into());
    }
    Ok(())
}
