//! HTTP/3 on zsync: the server and client of `examples/h3` (included with `#[path]`, so the
//! tests drive the very code the example runs) on Threaded and Green (epoll, and io_uring where
//! the kernel allows it). Requests and responses round-trip on every route, requests run at
//! once on one connection and over many connections, request bodies are echoed whole, a client
//! that goes away in the middle of a large body leaves the server serving, and a shutdown
//! finishes the requests in flight and closes every connection with `H3_NO_ERROR`.
//! Blocking, which cannot run quinn's drivers beside the code that waits for them, is refused.

#![allow(missing_docs)]

#[path = "conformance/support/mod.rs"]
#[allow(unused_macros)]
mod support;

#[path = "../examples/h3/body.rs"]
#[allow(dead_code)]
mod body;
#[path = "../examples/h3/client.rs"]
#[allow(dead_code)]
mod client;
#[path = "../examples/h3/routes.rs"]
#[allow(dead_code)]
mod routes;
#[path = "../examples/h3/server.rs"]
#[allow(dead_code)]
mod server;
#[path = "../examples/h3/tls.rs"]
#[allow(dead_code)]
mod tls;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, StatusCode};
use quinn::rustls::pki_types::CertificateDer;
use quinn::{ConnectionError, VarInt};
use zsync::{Io, Task};

use client::{Client, Reply};
use server::{Server, H3_NO_ERROR};
use tls::{BoxError, ALPN_H3};

/// One `#[test]` per model for each body: Threaded, Green on epoll, Green on io_uring (skipped
/// with a note where the kernel refuses it). Blocking has its own test (refused).
macro_rules! h3_tests {
    ($($name:ident),* $(,)?) => {
        mod threaded {
            $(#[test] fn $name() { $crate::support::run_on($crate::support::threaded, stringify!($name), super::$name) })*
        }
        mod green_epoll {
            $(#[test] fn $name() { $crate::support::run_on($crate::support::green_epoll, stringify!($name), super::$name) })*
        }
        mod green_uring {
            $(#[test] fn $name() { $crate::support::run_on_uring(stringify!($name), super::$name) })*
        }
    };
}

h3_tests!(
    requests_and_responses_round_trip,
    request_bodies_are_echoed_whole,
    concurrent_requests_share_one_connection,
    many_connections_at_once,
    a_client_gone_mid_stream_leaves_the_server_healthy,
    shutdown_finishes_requests_and_closes_connections_cleanly,
);

/// A generous bound for waits on the server's state: a hang detector, not a timing assertion.
const PATIENCE: Duration = Duration::from_secs(60);

/// A server on loopback with a fresh certificate, and a client config trusting it.
fn start(io: &Io) -> (Server, SocketAddr, quinn::ClientConfig) {
    let (cert, key): (CertificateDer<'static>, _) = tls::self_signed().unwrap();
    let config = tls::server_config(cert.clone(), key, &[ALPN_H3]).unwrap();
    let server = Server::start(io, config, "127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = server.local_addr().unwrap();
    (server, addr, tls::client_config(cert, ALPN_H3).unwrap())
}

fn concurrent<T: Send + 'static>(io: &Io, f: impl FnOnce(&Io) -> T + Send + 'static) -> Task<T> {
    io.concurrent(f)
        .unwrap_or_else(|refused| panic!("{}", std::io::Error::from(refused)))
}

/// `GET /bytes/N`, every byte checked against the pattern as it arrives.
fn fetch_generated(io: &Io, client: &client::Requester, len: u64) -> Result<u64, BoxError> {
    let (status, headers, offset) = client.get_generated(io, len)?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-length"], len.to_string().as_str());
    Ok(offset)
}

fn text(reply: &Reply) -> &str {
    std::str::from_utf8(&reply.body).unwrap()
}

/// Waits until `cond` holds, sleeping between looks; panics after [`PATIENCE`].
fn wait_until(io: &Io, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < PATIENCE, "gave up waiting for {what}");
        io.sleep(Duration::from_millis(5)).unwrap();
    }
}

fn requests_and_responses_round_trip(io: &Io) {
    let (server, addr, config) = start(io);
    let client = Client::connect(io, addr, config).unwrap();

    let hello = client.get(io, "/").unwrap();
    assert_eq!(hello.status, StatusCode::OK);
    assert_eq!(text(&hello), "Hello, HTTP/3!\n");
    assert_eq!(hello.headers["content-type"], "text/plain; charset=utf-8");
    assert_eq!(hello.headers["content-length"], "15");

    for len in [0, 1, body::BLOCK as u64 - 1, (1 << 20) + 3] {
        assert_eq!(fetch_generated(io, &client, len).unwrap(), len);
    }

    let digest = client
        .request(io, Method::POST, "/digest", Bytes::from_static(b"hello"))
        .unwrap();
    assert_eq!(
        text(&digest),
        format!("fnv1a64 {:016x} len 5\n", routes::fnv1a64(b"hello"))
    );
    let slept = client.get(io, "/sleep?ms=1").unwrap();
    assert_eq!(
        (slept.status, text(&slept)),
        (StatusCode::OK, "slept 1 ms\n")
    );

    for (method, path, status) in [
        (Method::GET, "/nope", StatusCode::NOT_FOUND),
        (Method::POST, "/", StatusCode::METHOD_NOT_ALLOWED),
        (Method::GET, "/echo", StatusCode::METHOD_NOT_ALLOWED),
        (Method::POST, "/bytes/10", StatusCode::METHOD_NOT_ALLOWED),
        (Method::GET, "/bytes/ten", StatusCode::BAD_REQUEST),
        (Method::GET, "/sleep?ms=soon", StatusCode::BAD_REQUEST),
    ] {
        let reply = client
            .request(io, method.clone(), path, Bytes::new())
            .unwrap();
        assert_eq!(reply.status, status, "{method} {path}");
    }
    // 1 + 4 + 1 + 1 + 6 requests, none failed.
    assert_eq!(server.stats().requests.load(Ordering::Relaxed), 13);
    assert_eq!(server.stats().request_errors.load(Ordering::Relaxed), 0);
    assert_eq!(server.stats().connections.load(Ordering::Relaxed), 1);

    client.close(io).unwrap();
    server.shutdown(io, PATIENCE).unwrap();
}

fn request_bodies_are_echoed_whole(io: &Io) {
    let (server, addr, config) = start(io);
    let client = Client::connect(io, addr, config).unwrap();
    // Up to several times the stream's flow-control window: the client sends while it reads.
    for len in [0usize, 1, 1000, 64 * 1024 + 1, (3 << 20) + 7] {
        let sent: Bytes = support::pattern(len, len as u32).into();
        let echoed = client
            .request(io, Method::POST, "/echo", sent.clone())
            .unwrap();
        assert_eq!(echoed.status, StatusCode::OK);
        assert_eq!(echoed.body.len(), len);
        assert!(echoed.body == sent, "the echo of {len} bytes differs");
    }
    // A buffered handler sees the whole body...
    let sent: Bytes = support::pattern(routes::MAX_BUFFERED_BODY, 9).into();
    let digest = client
        .request(io, Method::POST, "/digest", sent.clone())
        .unwrap();
    assert_eq!(
        text(&digest),
        format!(
            "fnv1a64 {:016x} len {}\n",
            routes::fnv1a64(&sent),
            sent.len()
        )
    );
    // ...up to its limit.
    let too_big: Bytes = vec![7u8; routes::MAX_BUFFERED_BODY + 1].into();
    match client.request(io, Method::POST, "/digest", too_big) {
        Ok(reply) => assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE),
        // The server stopped reading the body: the send side may see that first.
        Err(e) => assert!(
            e.to_string().contains("REQUEST_REJECTED") || e.to_string().contains("STOP"),
            "{e}"
        ),
    }
    // The connection is still good.
    assert_eq!(client.get(io, "/").unwrap().status, StatusCode::OK);
    client.close(io).unwrap();
    server.shutdown(io, PATIENCE).unwrap();
}

fn concurrent_requests_share_one_connection(io: &Io) {
    let (server, addr, config) = start(io);
    let client = Client::connect(io, addr, config).unwrap();
    // Sleepers parked in their handlers while bodies stream past them, all on one connection.
    let tasks: Vec<Task<()>> = (0..12)
        .map(|i| {
            let requester = client.requester();
            concurrent(io, move |io| match i % 3 {
                0 => {
                    let reply = requester.get(io, "/sleep?ms=50").unwrap();
                    assert_eq!(text(&reply), "slept 50 ms\n");
                }
                1 => {
                    let len = 256 * 1024 + i as u64;
                    assert_eq!(fetch_generated(io, &requester, len).unwrap(), len);
                }
                _ => {
                    let sent: Bytes = support::pattern(100_000 + i, i as u32).into();
                    let echoed = requester
                        .request(io, Method::POST, "/echo", sent.clone())
                        .unwrap();
                    assert!(echoed.body == sent, "echo {i} differs");
                }
            })
        })
        .collect();
    for task in tasks {
        task.join().unwrap();
    }
    assert_eq!(server.stats().connections.load(Ordering::Relaxed), 1);
    assert_eq!(server.stats().requests.load(Ordering::Relaxed), 12);
    client.close(io).unwrap();
    server.shutdown(io, PATIENCE).unwrap();
}

fn many_connections_at_once(io: &Io) {
    let (server, addr, config) = start(io);
    const CONNECTIONS: usize = 24;
    // Half share one client endpoint (one socket), half have their own.
    let shared = zsync::compat::quinn::client(io, "127.0.0.1:0".parse().unwrap()).unwrap();
    let tasks: Vec<Task<()>> = (0..CONNECTIONS)
        .map(|i| {
            let (config, shared) = (config.clone(), shared.clone());
            concurrent(io, move |io| {
                let client = if i % 2 == 0 {
                    Client::connect_on(io, &shared, addr, config).unwrap()
                } else {
                    Client::connect(io, addr, config).unwrap()
                };
                assert_eq!(client.get(io, "/").unwrap().status, StatusCode::OK);
                let len = 32 * 1024 + i as u64;
                assert_eq!(fetch_generated(io, &client, len).unwrap(), len);
                client.close(io).unwrap();
            })
        })
        .collect();
    for task in tasks {
        task.join().unwrap();
    }
    let stats = server.stats();
    assert_eq!(
        stats.connections.load(Ordering::Relaxed),
        CONNECTIONS as u64
    );
    assert_eq!(
        stats.requests.load(Ordering::Relaxed),
        2 * CONNECTIONS as u64
    );
    assert_eq!(stats.request_errors.load(Ordering::Relaxed), 0);
    server.shutdown(io, PATIENCE).unwrap();
}

fn a_client_gone_mid_stream_leaves_the_server_healthy(io: &Io) {
    let (server, addr, config) = start(io);
    const HUGE: u64 = 1 << 40;

    // One client stops reading a huge body after a MiB (STOP_SENDING on the stream)...
    let client = Client::connect(io, addr, config.clone()).unwrap();
    let mut seen = 0u64;
    let stopped = client.request_streamed(
        io,
        Method::GET,
        &format!("/bytes/{HUGE}"),
        Bytes::new(),
        |chunk| {
            seen += chunk.len() as u64;
            if seen > 1 << 20 {
                return Err("enough".into());
            }
            Ok(())
        },
    );
    assert_eq!(stopped.unwrap_err().to_string(), "enough");

    // ...another closes its whole connection in the middle of one, and of an echo.
    let leaving = Client::connect(io, addr, config.clone()).unwrap();
    let echo = {
        let requester = leaving.requester();
        concurrent(io, move |io| {
            // A request body that never ends: the sender keeps the stream open.
            let sent: Bytes = vec![1u8; 8 << 20].into();
            requester
                .request(io, Method::POST, "/echo", sent)
                .map(|_| ())
        })
    };
    let conn = leaving.connection().clone();
    let mut got = 0u64;
    let cut = leaving.request_streamed(
        io,
        Method::GET,
        &format!("/bytes/{HUGE}"),
        Bytes::new(),
        |chunk| {
            got += chunk.len() as u64;
            if got > 1 << 20 {
                conn.close(VarInt::from_u32(0x10c), b"leaving");
            }
            Ok(())
        },
    );
    assert!(cut.is_err(), "a body cut off by the client's close");
    assert!(echo.join().unwrap().is_err(), "the echo cut off too");
    leaving.close(io).unwrap();

    // The server ends those requests (none left running) and serves on. (Had the client's
    // close been lost, the server's idle timeout ends the connection instead.)
    wait_until(io, "the abandoned requests to end", || {
        server.live().requests == 0
    });
    assert!(server.stats().request_errors.load(Ordering::Relaxed) >= 2);
    wait_until(io, "the closed connection to end", || {
        server.live().connections == 1
    });
    let after = Client::connect(io, addr, config).unwrap();
    assert_eq!(after.get(io, "/").unwrap().status, StatusCode::OK);
    assert_eq!(fetch_generated(io, &after, 3 << 20).unwrap(), 3 << 20);
    assert_eq!(client.get(io, "/").unwrap().status, StatusCode::OK);
    after.close(io).unwrap();
    client.close(io).unwrap();
    server.shutdown(io, PATIENCE).unwrap();
}

/// Asserts that a connection ended with the server's graceful close.
#[track_caller]
fn assert_closed_gracefully(ended: ConnectionError) {
    match ended {
        ConnectionError::ApplicationClosed(close) => {
            assert_eq!(close.error_code, VarInt::from_u32(H3_NO_ERROR))
        }
        other => panic!("the connection ended with {other:?}, not H3_NO_ERROR"),
    }
}

fn shutdown_finishes_requests_and_closes_connections_cleanly(io: &Io) {
    let (server, addr, config) = start(io);
    let busy = Client::connect(io, addr, config.clone()).unwrap();
    let idle = Client::connect(io, addr, config).unwrap();
    assert_eq!(idle.get(io, "/").unwrap().status, StatusCode::OK);

    // A request in flight when the shutdown begins...
    let in_flight = {
        let requester = busy.requester();
        concurrent(io, move |io| requester.get(io, "/sleep?ms=300"))
    };
    wait_until(io, "the request to reach its handler", || {
        server.live().requests == 1
    });
    let (busy_conn, idle_conn) = (busy.connection().clone(), idle.connection().clone());
    let shutting = concurrent(io, move |io| {
        server.shutdown(io, PATIENCE).map_err(|e| e.to_string())
    });

    // ...is answered in full; both connections then end with H3_NO_ERROR.
    let reply = in_flight.join().unwrap().unwrap();
    assert_eq!(
        (reply.status, text(&reply)),
        (StatusCode::OK, "slept 300 ms\n")
    );
    assert_closed_gracefully(io.block_on(idle_conn.closed()).unwrap());
    assert_closed_gracefully(io.block_on(busy_conn.closed()).unwrap());
    shutting.join().unwrap().unwrap();
    // No new request gets through.
    assert!(idle.get(io, "/").is_err());
    busy.close(io).unwrap();
    idle.close(io).unwrap();
}

#[test]
fn blocking_is_refused() {
    zsync::run(zsync::Model::Blocking, |io| {
        let (cert, key) = tls::self_signed().unwrap();
        let config = tls::server_config(cert, key, &[ALPN_H3]).unwrap();
        let refused = Server::start(io, config, "127.0.0.1:0".parse().unwrap())
            .err()
            .expect("Blocking cannot run quinn");
        assert_eq!(refused.kind(), std::io::ErrorKind::Unsupported);
    });
}
