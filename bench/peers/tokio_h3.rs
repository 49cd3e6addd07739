//! The Tokio peer of `examples/h3`'s benchmark modes: the same three benchmarks, server and
//! client in one process, on quinn's own Tokio runtime (`runtime-tokio`) and a multi-threaded
//! Tokio runtime of `--workers` threads. The certificate, TLS configs and body pattern are the
//! example's own files (`examples/h3/tls.rs`, `body.rs`), so both sides move the same bytes
//! under the same TLS setup; the client here is async code, as Tokio code is.
//!
//! ```text
//! tokio-h3 --bench h3|raw|handshakes [--bytes N] [--handshakes N] [--concurrency N] [--workers N]
//! ```
//!
//! Prints `RESULT <name> <value> <unit>` lines, like the example.

#[path = "../../examples/h3/body.rs"]
mod body;
#[path = "../../examples/h3/tls.rs"]
#[allow(dead_code)]
mod tls;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use http::{Method, Request, Response, StatusCode};
use quinn::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use quinn::{Endpoint, VarInt};
use tls::{BoxError, ALPN_H3, ALPN_RAW};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let num = |name: &str, default: u64| {
        flag(name)
            .map(|v| v.parse().unwrap_or_else(|e| panic!("{name} {v}: {e}")))
            .unwrap_or(default)
    };
    let mode = flag("--bench").unwrap_or_else(|| "h3".into());
    let bytes = num("--bytes", 1 << 30);
    let count = num("--handshakes", 2000);
    let concurrency = num("--concurrency", 8);
    let workers = num("--workers", 2) as usize;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers.max(1))
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    let result = rt.block_on(async move {
        let (cert, key) = tls::self_signed()?;
        match mode.as_str() {
            "h3" => h3_stream(cert, key, bytes).await,
            "raw" => raw_stream_bench(cert, key, bytes).await,
            "handshakes" => handshakes(cert, key, count, concurrency).await,
            other => Err(format!("--bench {other}: expected h3, raw or handshakes").into()),
        }
    });
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn report(name: &str, value: f64, unit: &str) {
    println!("RESULT {name} {value:.1} {unit}");
}

fn mib_per_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / elapsed.as_secs_f64() / (1 << 20) as f64
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// The h3 server: `GET /bytes/N` only (what the benchmark asks for), a task per connection
/// and per request, as the example's server.
async fn h3_server(endpoint: Endpoint) {
    while let Some(incoming) = endpoint.accept().await {
        tokio::spawn(async move {
            let Ok(quic) = incoming.await else { return };
            let Ok(mut conn) = h3::server::builder()
                .build::<_, Bytes>(h3_quinn::Connection::new(quic))
                .await
            else {
                return;
            };
            while let Ok(Some(resolver)) = conn.accept().await {
                tokio::spawn(async move {
                    let Ok((req, mut stream)) = resolver.resolve_request().await else {
                        return;
                    };
                    let len = req
                        .uri()
                        .path()
                        .strip_prefix("/bytes/")
                        .and_then(|n| n.parse::<u64>().ok());
                    let Some(len) = len else {
                        let head = Response::builder().status(404).body(()).unwrap();
                        let _ = stream.send_response(head).await;
                        let _ = stream.finish().await;
                        return;
                    };
                    let head = Response::builder()
                        .status(StatusCode::OK)
                        .header("content-type", "application/octet-stream")
                        .header("content-length", len)
                        .body(())
                        .unwrap();
                    if stream.send_response(head).await.is_err() {
                        return;
                    }
                    for chunk in body::chunks(len) {
                        if stream.send_data(chunk).await.is_err() {
                            return;
                        }
                    }
                    let _ = stream.finish().await;
                });
            }
        });
    }
}

async fn h3_stream(
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
    bytes: u64,
) -> Result<(), BoxError> {
    let server = Endpoint::server(
        tls::server_config(cert.clone(), key, &[ALPN_H3])?,
        loopback(),
    )?;
    let addr = server.local_addr()?;
    tokio::spawn(h3_server(server.clone()));
    let mut endpoint = Endpoint::client(loopback())?;
    endpoint.set_default_client_config(tls::client_config(cert, ALPN_H3)?);
    let quic = endpoint.connect(addr, "localhost")?.await?;
    let (mut driver, mut sender) = h3::client::new(h3_quinn::Connection::new(quic.clone())).await?;
    let driving =
        tokio::spawn(async move { std::future::poll_fn(|cx| driver.poll_close(cx)).await });

    let started = Instant::now();
    let req = Request::builder()
        .method(Method::GET)
        .uri(format!("https://localhost/bytes/{bytes}"))
        .body(())?;
    let mut stream = sender.send_request(req).await?;
    stream.finish().await?;
    let head = stream.recv_response().await?;
    let mut offset = 0u64;
    while let Some(mut chunk) = stream.recv_data().await? {
        while chunk.has_remaining() {
            let part = chunk.chunk();
            if !body::matches(offset, part) {
                return Err(format!("body differs near byte {offset}").into());
            }
            offset += part.len() as u64;
            let n = part.len();
            chunk.advance(n);
        }
    }
    let elapsed = started.elapsed();
    if head.status() != StatusCode::OK || offset != bytes {
        return Err(format!("status {}, {offset} of {bytes} bytes", head.status()).into());
    }
    report("h3_stream", mib_per_s(bytes, elapsed), "MiB/s");
    quic.close(VarInt::from_u32(0x100), b"client done");
    let _ = driving.await;
    endpoint.wait_idle().await;
    server.close(VarInt::from_u32(0x100), b"done");
    server.wait_idle().await;
    Ok(())
}

/// The raw server: reads the length the client wants on each stream, writes that many bytes.
fn raw_server(
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
) -> Result<Endpoint, BoxError> {
    let endpoint = Endpoint::server(tls::server_config(cert, key, &[ALPN_RAW])?, loopback())?;
    let accepting = endpoint.clone();
    tokio::spawn(async move {
        while let Some(incoming) = accepting.accept().await {
            tokio::spawn(async move {
                let Ok(conn) = incoming.await else { return };
                while let Ok((send, recv)) = conn.accept_bi().await {
                    tokio::spawn(body::serve_raw_stream(send, recv));
                }
            });
        }
    });
    Ok(endpoint)
}

async fn raw_stream_bench(
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
    bytes: u64,
) -> Result<(), BoxError> {
    let server = raw_server(cert.clone(), key)?;
    let addr = server.local_addr()?;
    let endpoint = Endpoint::client(loopback())?;
    let conn = endpoint
        .connect_with(tls::client_config(cert, ALPN_RAW)?, addr, "localhost")?
        .await?;
    let started = Instant::now();
    let (mut send, mut recv) = conn.open_bi().await?;
    send.write_all(&bytes.to_le_bytes()).await?;
    send.finish()?;
    let mut offset = 0u64;
    while let Some(chunk) = recv.read_chunk(usize::MAX, true).await? {
        if !body::matches(offset, &chunk.bytes) {
            return Err(format!("stream differs near byte {offset}").into());
        }
        offset += chunk.bytes.len() as u64;
    }
    let elapsed = started.elapsed();
    if offset != bytes {
        return Err(format!("{offset} of {bytes} bytes").into());
    }
    report("raw_stream", mib_per_s(bytes, elapsed), "MiB/s");
    conn.close(VarInt::from_u32(0), b"done");
    endpoint.wait_idle().await;
    server.close(VarInt::from_u32(0), b"done");
    server.wait_idle().await;
    Ok(())
}

async fn handshakes(
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
    count: u64,
    concurrency: u64,
) -> Result<(), BoxError> {
    let server = raw_server(cert.clone(), key)?;
    let addr = server.local_addr()?;
    let endpoint = Endpoint::client(loopback())?;
    let config = tls::client_config(cert, ALPN_RAW)?;
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let (endpoint, config, next) = (endpoint.clone(), config.clone(), next.clone());
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < count {
                    let conn = endpoint
                        .connect_with(config.clone(), addr, "localhost")?
                        .await?;
                    conn.close(VarInt::from_u32(0), b"");
                }
                Ok::<_, BoxError>(())
            })
        })
        .collect();
    for worker in workers {
        worker.await??;
    }
    let elapsed = started.elapsed();
    report("handshakes", count as f64 / elapsed.as_secs_f64(), "/s");
    endpoint.wait_idle().await;
    server.close(VarInt::from_u32(0), b"done");
    server.wait_idle().await;
    Ok(())
}
