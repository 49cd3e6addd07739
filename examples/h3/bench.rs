//! The benchmark modes (`--bench`), server and client in one process on one runtime, as the
//! Tokio peer (`bench/peers/tokio_h3.rs`) runs them:
//!
//! - `h3`: one `GET /bytes/N` from the example's own server, the body checked as it arrives;
//! - `raw`: one QUIC stream of `N` bytes from a raw server (ALPN `zsync-raw`: the client
//!   sends the length, the server writes that many bytes of the same pattern and finishes);
//! - `handshakes`: `N` connections to the raw server, `C` at a time, each closed as soon as it
//!   is established: full TLS 1.3 handshakes per second.
//!
//! Each prints `RESULT <name> <value> <unit>` lines for the runner (`bench/src/apps/h3.rs`).
//! The client side is colorblind code, like the rest of the example's client.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::StatusCode;
use quinn::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use quinn::{Endpoint, VarInt};
use zsync::Io;

use crate::body;
use crate::client::Client;
use crate::server::Server;
use crate::tls::{self, BoxError, ALPN_H3, ALPN_RAW};

/// One benchmark's figure.
pub fn report(name: &str, value: f64, unit: &str) {
    println!("RESULT {name} {value:.1} {unit}");
}

fn mib_per_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / elapsed.as_secs_f64() / (1 << 20) as f64
}

/// `h3`: one response body of `bytes` bytes over HTTP/3, checked.
pub fn h3_stream(
    io: &Io,
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
    bytes: u64,
) -> Result<(), BoxError> {
    let config = tls::server_config(cert.clone(), key, &[ALPN_H3])?;
    let server = Server::start(io, config, "127.0.0.1:0".parse()?)?;
    let client = Client::connect(io, server.local_addr()?, tls::client_config(cert, ALPN_H3)?)?;
    let started = Instant::now();
    let (status, _, offset) = client.get_generated(io, bytes)?;
    let elapsed = started.elapsed();
    if status != StatusCode::OK || offset != bytes {
        return Err(format!("status {status}, {offset} of {bytes} bytes").into());
    }
    report("h3_stream", mib_per_s(bytes, elapsed), "MiB/s");
    client.close(io)?;
    server.shutdown(io, Duration::from_secs(5))?;
    Ok(())
}

/// The raw QUIC server of `raw` and `handshakes`: a future task per connection and per stream.
fn raw_server(
    io: &Io,
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
) -> Result<Endpoint, BoxError> {
    let config = tls::server_config(cert, key, &[ALPN_RAW])?;
    let endpoint = zsync::compat::quinn::server(io, config, "127.0.0.1:0".parse()?)?;
    let accepting = endpoint.clone();
    let spawner = io.clone();
    io.spawn_future(async move {
        while let Some(incoming) = accepting.accept().await {
            let io = spawner.clone();
            spawner
                .spawn_future(async move {
                    let Ok(conn) = incoming.await else { return };
                    while let Ok((send, recv)) = conn.accept_bi().await {
                        io.spawn_future(body::serve_raw_stream(send, recv)).detach();
                    }
                })
                .detach();
        }
    })
    .detach();
    Ok(endpoint)
}

/// `raw`: one QUIC stream of `bytes` bytes, checked.
pub fn raw_stream_bench(
    io: &Io,
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
    bytes: u64,
) -> Result<(), BoxError> {
    let server = raw_server(io, cert.clone(), key)?;
    let addr = server.local_addr()?;
    let endpoint = zsync::compat::quinn::client(io, "127.0.0.1:0".parse()?)?;
    let config = tls::client_config(cert, ALPN_RAW)?;
    let conn = io.block_on(endpoint.connect_with(config, addr, "localhost")?)??;
    let started = Instant::now();
    let (mut send, mut recv) = io.block_on(conn.open_bi())??;
    io.block_on(send.write_all(&bytes.to_le_bytes()))??;
    send.finish()?;
    let mut offset = 0u64;
    while let Some(chunk) = io.block_on(recv.read_chunk(usize::MAX, true))?? {
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
    io.block_on(endpoint.wait_idle())?;
    server.close(VarInt::from_u32(0), b"done");
    io.block_on(server.wait_idle())?;
    Ok(())
}

/// `handshakes`: `count` connections, `concurrency` at a time, from one client endpoint.
pub fn handshakes(
    io: &Io,
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
    count: u64,
    concurrency: u64,
) -> Result<(), BoxError> {
    let server = raw_server(io, cert.clone(), key)?;
    let addr = server.local_addr()?;
    let endpoint = zsync::compat::quinn::client(io, "127.0.0.1:0".parse()?)?;
    let config = tls::client_config(cert, ALPN_RAW)?;
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers = (0..concurrency.max(1))
        .map(|_| {
            let (endpoint, config, next) = (endpoint.clone(), config.clone(), next.clone());
            io.concurrent(move |io| -> Result<(), BoxError> {
                while next.fetch_add(1, Ordering::Relaxed) < count {
                    let connecting = endpoint.connect_with(config.clone(), addr, "localhost")?;
                    let conn = io.block_on(connecting)??;
                    conn.close(VarInt::from_u32(0), b"");
                }
                Ok(())
            })
            .map_err(std::io::Error::from)
        })
        .collect::<Result<Vec<_>, _>>()?;
    for worker in workers {
        worker.join()??;
    }
    let elapsed = started.elapsed();
    report("handshakes", count as f64 / elapsed.as_secs_f64(), "/s");
    io.block_on(endpoint.wait_idle())?;
    server.close(VarInt::from_u32(0), b"done");
    io.block_on(server.wait_idle())?;
    Ok(())
}
