//! QUIC through quinn on zsync (`zsync::compat::quinn`, feature `quinn`), on every model: a
//! server endpoint and client endpoints on loopback, several concurrent bidirectional streams,
//! one of a few MiB, every echo checked byte for byte, and the connection closed by the client
//! with a code and reason the server sees. Once from colorblind code (`io.spawn` tasks waiting
//! with `io.block_on`), once from future tasks (`io.spawn_future`). Blocking, which cannot run
//! quinn's drivers beside the code that waits for them, refuses with `Unsupported`.

// `conformance!` defines a public `ALL` list (read by the leak check elsewhere), undocumented.
#![allow(missing_docs)]

#[path = "conformance/support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::sync::Arc;

use quinn::rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use quinn::{ClientConfig, Connection, ConnectionError, Endpoint, ServerConfig, VarInt};
use zsync::compat::quinn::{client, server, ZsyncRuntime};
use zsync::{Io, Task};

conformance!(
    quic_echo_from_colorblind_code,
    quic_echo_from_future_tasks,
    quic_connections_share_a_full_send_buffer,
);

/// What the client closes its connection with, checked on the server.
const CLOSE_CODE: u32 = 42;
const CLOSE_REASON: &[u8] = b"done";

/// Bytes a stream may bring in one read on the server.
const CHUNK: usize = 32 * 1024;

/// Stream sizes of one connection: several small ones and one large (a few MiB), all at once.
/// ThreadPerTask (the custom model) starts a thread for every wake of a future task, so it gets
/// a smaller large stream: the same behaviour, less churn.
fn stream_sizes(io: &Io) -> Vec<usize> {
    let large = if io.model() == zsync::ModelKind::Custom {
        512 * 1024
    } else {
        3 * 1024 * 1024 + 17
    };
    vec![1, 1000, 64 * 1024, large]
}

/// True (and the refusal checked) on a model without concurrency.
fn refused(io: &Io) -> bool {
    match ZsyncRuntime::new(io) {
        Ok(_) => {
            assert!(io.supports_concurrency());
            false
        }
        Err(e) => {
            assert!(!io.supports_concurrency(), "{}: {e}", io.model_name());
            assert_eq!(e.kind(), std::io::ErrorKind::Unsupported);
            let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
            assert_eq!(
                client(io, any).unwrap_err().kind(),
                std::io::ErrorKind::Unsupported
            );
            true
        }
    }
}

/// A server config with a fresh self-signed certificate for `localhost`, and a client config
/// trusting it.
fn configs() -> (ServerConfig, ClientConfig) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let der: CertificateDer<'static> = cert.cert.der().clone();
    let key = PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der());
    let server = ServerConfig::with_single_cert(vec![der.clone()], key.into()).unwrap();
    let mut roots = quinn::rustls::RootCertStore::empty();
    roots.add(der).unwrap();
    let client = ClientConfig::with_root_certificates(Arc::new(roots)).unwrap();
    (server, client)
}

/// `io.concurrent(f)`: these tasks wait for each other, so each needs a thread or fiber of
/// its own (`io.spawn` may queue it behind the waiting ones on a small thread pool).
fn concurrent<T: Send + 'static>(io: &Io, f: impl FnOnce(&Io) -> T + Send + 'static) -> Task<T> {
    io.concurrent(f)
        .unwrap_or_else(|refused| panic!("{}", std::io::Error::from(refused)))
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Asserts the server saw the client's close, with its code and reason.
#[track_caller]
fn assert_closed_by_client(seen: ConnectionError) {
    match seen {
        ConnectionError::ApplicationClosed(close) => {
            assert_eq!(close.error_code, VarInt::from_u32(CLOSE_CODE));
            assert_eq!(&close.reason[..], CLOSE_REASON);
        }
        other => panic!("the server's connection ended with {other:?}, not the client's close"),
    }
}

// ---- colorblind: tasks are closures, quinn's futures are waited for with `io.block_on` ----

/// The server side of one connection: accepts streams until the client closes, echoing each in
/// a task of its own. Returns how the connection ended and how many streams it echoed.
fn serve_colorblind(io: &Io, endpoint: &Endpoint) -> (ConnectionError, usize) {
    let incoming = io
        .block_on(endpoint.accept())
        .unwrap()
        .expect("endpoint open");
    let conn = io.block_on(incoming.accept().unwrap()).unwrap().unwrap();
    let mut echoes = Vec::new();
    let ended = loop {
        match io.block_on(conn.accept_bi()).unwrap() {
            Ok((mut send, mut recv)) => echoes.push(concurrent(io, move |io| {
                let mut buf = vec![0; CHUNK];
                while let Some(n) = io.block_on(recv.read(&mut buf)).unwrap().unwrap() {
                    io.block_on(send.write_all(&buf[..n])).unwrap().unwrap();
                }
                send.finish().unwrap();
                // Until the client has read it all (it closes only then).
                let _ = io.block_on(send.stopped());
            })),
            Err(e) => break e,
        }
    };
    let streams = echoes.len();
    for echo in echoes {
        echo.join().unwrap();
    }
    (ended, streams)
}

/// One stream from the client: sends `size` bytes from a task of its own while this one reads
/// the echo, then compares it byte for byte.
fn echo_colorblind(io: &Io, conn: &Connection, seed: u32, size: usize) {
    let (mut send, mut recv) = io.block_on(conn.open_bi()).unwrap().unwrap();
    let sent = support::pattern(size, seed);
    let data = sent.clone();
    let writer = concurrent(io, move |io| {
        io.block_on(send.write_all(&data)).unwrap().unwrap();
        send.finish().unwrap();
    });
    let echoed = io.block_on(recv.read_to_end(size)).unwrap().unwrap();
    writer.join().unwrap();
    assert_eq!(echoed.len(), sent.len(), "stream {seed}");
    assert!(echoed == sent, "stream {seed}: the echo differs");
}

fn quic_echo_from_colorblind_code(io: &Io) {
    if refused(io) {
        return;
    }
    let (server_config, client_config) = configs();
    let server = server(io, server_config, loopback()).unwrap();
    let addr = server.local_addr().unwrap();
    let serving = concurrent(io, {
        let server = server.clone();
        move |io| serve_colorblind(io, &server)
    });

    let endpoint = client(io, loopback()).unwrap();
    let connecting = endpoint
        .connect_with(client_config, addr, "localhost")
        .unwrap();
    let conn = io.block_on(connecting).unwrap().unwrap();
    assert_eq!(conn.remote_address(), addr);
    let sizes = stream_sizes(io);
    let streams: Vec<_> = sizes
        .iter()
        .enumerate()
        .map(|(i, &size)| {
            let conn = conn.clone();
            concurrent(io, move |io| echo_colorblind(io, &conn, i as u32, size))
        })
        .collect();
    for stream in streams {
        stream.join().unwrap();
    }

    conn.close(VarInt::from_u32(CLOSE_CODE), CLOSE_REASON);
    let (ended, echoed) = serving.join().unwrap();
    assert_closed_by_client(ended);
    assert_eq!(echoed, sizes.len());
    io.block_on(endpoint.wait_idle()).unwrap();
    server.close(VarInt::from_u32(0), b"");
    io.block_on(server.wait_idle()).unwrap();
}

// ---- async: the same echo as future tasks ----

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// The server side as a future task: one connection, a future task per stream. Finds its `Io`
/// with `Io::current`, which a future task sees while it is polled.
async fn serve_async(endpoint: Endpoint) -> Result<(ConnectionError, usize), Failure> {
    let io = Io::current().expect("a future task knows its Io");
    let conn = endpoint.accept().await.expect("endpoint open").await?;
    let mut echoes = Vec::new();
    let ended = loop {
        match conn.accept_bi().await {
            Ok((mut send, mut recv)) => echoes.push(io.spawn_future(async move {
                let mut buf = vec![0; CHUNK];
                while let Some(n) = recv.read(&mut buf).await? {
                    send.write_all(&buf[..n]).await?;
                }
                send.finish()?;
                let _ = send.stopped().await;
                Ok::<_, Failure>(())
            })),
            Err(e) => break e,
        }
    };
    let streams = echoes.len();
    for echo in echoes {
        echo.await??;
    }
    Ok((ended, streams))
}

/// One stream from the client, as a future task; the bytes go out from a second one.
async fn echo_async(io: Io, conn: Connection, seed: u32, size: usize) -> Result<(), Failure> {
    let (mut send, mut recv) = conn.open_bi().await?;
    let sent = support::pattern(size, seed);
    let data = sent.clone();
    let writer = io.spawn_future(async move {
        send.write_all(&data).await?;
        send.finish()?;
        Ok::<_, Failure>(())
    });
    let echoed = recv.read_to_end(size).await?;
    writer.await??;
    assert_eq!(echoed.len(), sent.len(), "stream {seed}");
    assert!(echoed == sent, "stream {seed}: the echo differs");
    Ok(())
}

async fn client_async(
    io: Io,
    config: ClientConfig,
    addr: SocketAddr,
    sizes: Vec<usize>,
) -> Result<(), Failure> {
    let endpoint = client(&io, loopback())?;
    let conn = endpoint.connect_with(config, addr, "localhost")?.await?;
    let streams: Vec<_> = sizes
        .into_iter()
        .enumerate()
        .map(|(i, size)| io.spawn_future(echo_async(io.clone(), conn.clone(), i as u32, size)))
        .collect();
    for stream in streams {
        stream.await??;
    }
    conn.close(VarInt::from_u32(CLOSE_CODE), CLOSE_REASON);
    endpoint.wait_idle().await;
    Ok(())
}

fn quic_echo_from_future_tasks(io: &Io) {
    if refused(io) {
        return;
    }
    let (server_config, client_config) = configs();
    let server = server(io, server_config, loopback()).unwrap();
    let addr = server.local_addr().unwrap();
    let serving = io.spawn_future(serve_async(server.clone()));
    let sizes = stream_sizes(io);
    let streams = sizes.len();
    let client = io.spawn_future(client_async(io.clone(), client_config, addr, sizes));

    io.block_on(client).unwrap().unwrap().unwrap();
    let (ended, echoed) = io.block_on(serving).unwrap().unwrap().unwrap();
    assert_closed_by_client(ended);
    assert_eq!(echoed, streams);
    server.close(VarInt::from_u32(0), b"");
    io.block_on(server.wait_idle()).unwrap();
}

// ---- many connections waiting to send on one socket ----

/// Three connections of one client endpoint whose socket has a tiny send buffer: sends hit
/// `EAGAIN`, and several connection drivers wait for the same socket to drain at once. Every
/// one must be woken when it does (none left to its next timer), and every echo arrive whole.
fn quic_connections_share_a_full_send_buffer(io: &Io) {
    if refused(io) {
        return;
    }
    let (server_config, client_config) = configs();
    let server = server(io, server_config, loopback()).unwrap();
    let addr = server.local_addr().unwrap();
    let size = if io.model() == zsync::ModelKind::Custom {
        128 * 1024
    } else {
        1024 * 1024
    };
    const CONNECTIONS: usize = 3;
    let serving = concurrent(io, {
        let server = server.clone();
        move |io| {
            let conns: Vec<_> = (0..CONNECTIONS)
                .map(|_| {
                    concurrent(io, {
                        let server = server.clone();
                        move |io| serve_colorblind(io, &server)
                    })
                })
                .collect();
            for conn in conns {
                let (ended, echoed) = conn.join().unwrap();
                assert_closed_by_client(ended);
                assert_eq!(echoed, 1);
            }
        }
    });

    let socket = std::net::UdpSocket::bind(loopback()).unwrap();
    socket2::SockRef::from(&socket)
        .set_send_buffer_size(4096)
        .unwrap();
    let runtime = Arc::new(ZsyncRuntime::new(io).unwrap());
    let endpoint = Endpoint::new(quinn::EndpointConfig::default(), None, socket, runtime).unwrap();
    let conns: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let connecting = endpoint
                .connect_with(client_config.clone(), addr, "localhost")
                .unwrap();
            io.block_on(connecting).unwrap().unwrap()
        })
        .collect();
    let streams: Vec<_> = conns
        .iter()
        .enumerate()
        .map(|(i, conn)| {
            let conn = conn.clone();
            concurrent(io, move |io| echo_colorblind(io, &conn, i as u32, size))
        })
        .collect();
    for stream in streams {
        stream.join().unwrap();
    }
    for conn in &conns {
        conn.close(VarInt::from_u32(CLOSE_CODE), CLOSE_REASON);
    }
    serving.join().unwrap();
    io.block_on(endpoint.wait_idle()).unwrap();
}
