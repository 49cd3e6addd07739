//! hyper 1.x on zsync (feature `hyper`): the example's server (`examples/common/hyper_serve.rs`
//! and `hyper_routes.rs`, included with `#[path]`) on a zsync runtime of its own, driven by
//! hyper's client (`client::conn::http1` over a zsync `TcpStream`) on a second runtime of the
//! same model, both written as futures (`io.block_on`, `io.spawn_future`).
//!
//! Every test body is written once and expanded per model by `per_model!`: Threaded, Green on
//! epoll and Green on the default backend (io_uring where the kernel allows it). Blocking is
//! left out: a future task runs inline there, so an accept loop would never return. Every test
//! is bounded by a watchdog (60 s); the timing figures in the tests are lower bounds of
//! sleeps the test asked for, never upper bounds.

#[path = "support/models.rs"]
#[macro_use]
mod models;

use models::Rt;

#[path = "../examples/common/hyper_routes.rs"]
mod hyper_routes;
#[path = "../examples/common/hyper_serve.rs"]
#[allow(dead_code)]
mod hyper_serve;

use std::convert::Infallible;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::{handshake, SendRequest};
use hyper::{Method, Request, Response, StatusCode};
use hyper_serve::{HyperConfig, HyperStats};
use zsync::compat::hyper::{ZsyncExecutor, ZsyncTimer};
use zsync::net::{TcpListener, TcpStream, UnixStream};
use zsync::time;
use zsync::{Io, Runtime, ShutdownStatus};

/// How long a whole test may run.
const WATCHDOG: Duration = Duration::from_secs(60);
/// A handler sleep no test waits for: the request stays in flight until canceled.
const FOREVER_MS: u64 = 600_000;

per_model!(concurrent:
    get_with_body,
    post_echo,
    keep_alive_serves_many_requests_on_one_connection,
    hundred_concurrent_clients,
    sleeping_handler_does_not_hold_other_connections,
    shutdown_with_a_client_mid_request_hangs_nothing,
    panicking_handler_is_contained_in_its_connection,
    header_read_timeout_closes_a_stalled_client,
    unix_stream_transport,
    executor_runs_hyper_tasks,
    http2_streams_run_on_the_executor,
    timer_reset_moves_the_deadline_in_place,
);

/// What the test server's handlers share with the test.
#[derive(Debug, Default)]
struct Probe {
    /// Handlers that started a `/sleep`.
    sleeping: AtomicUsize,
}

/// The example's routes plus `/sleep?ms=N` (a `zsync::time::sleep` in the handler) and
/// `/panic` (a handler that panics).
async fn test_routes(
    req: Request<Incoming>,
    probe: Arc<Probe>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    match req.uri().path() {
        "/sleep" => {
            let ms: u64 = req
                .uri()
                .query()
                .and_then(|q| q.strip_prefix("ms="))
                .and_then(|ms| ms.parse().ok())
                .unwrap_or(0);
            probe.sleeping.fetch_add(1, Ordering::SeqCst);
            time::sleep(Duration::from_millis(ms)).await;
            Ok(hyper_routes::respond(
                StatusCode::OK,
                "text/plain",
                Bytes::from_static(b"slept"),
            ))
        }
        "/panic" => panic!("handler panicked on purpose"),
        _ => hyper_routes::route(req).await,
    }
}

/// The example's server with [`test_routes`], on a runtime of its own.
struct Server {
    rt: Runtime,
    addr: SocketAddr,
    stats: Arc<HyperStats>,
    probe: Arc<Probe>,
}

impl Server {
    fn start(rt: Rt, cfg: HyperConfig) -> Server {
        let runtime = rt.builder().build().expect("server runtime");
        let stats = Arc::new(HyperStats::default());
        let probe = Arc::new(Probe::default());
        let io = runtime.io().clone();
        let listener = TcpListener::bind(&io, "127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("local_addr");
        let p = probe.clone();
        let handler = move |req| test_routes(req, p.clone());
        io.spawn_future(hyper_serve::serve(
            io.clone(),
            listener,
            handler,
            cfg,
            stats.clone(),
        ))
        .detach();
        Server {
            rt: runtime,
            addr,
            stats,
            probe,
        }
    }

    /// Shuts the server down; every task must end (none may hang).
    fn shutdown(self) -> ShutdownStatus {
        let status = self.rt.shutdown_timeout(WATCHDOG / 2);
        assert!(
            status.is_complete(),
            "server shutdown incomplete: {status:?}"
        );
        status
    }
}

/// Runs the client side `f` on a runtime of `rt`'s model.
fn client<T>(rt: Rt, f: impl FnOnce(&Io) -> T) -> T {
    rt.builder().run(f)
}

fn other(e: impl std::error::Error + Send + Sync + 'static) -> io::Error {
    io::Error::other(e)
}

/// A hyper client connection: the request sender, its connection running as a future task.
struct Conn {
    sender: SendRequest<Full<Bytes>>,
    _driver: zsync::Task<Result<(), hyper::Error>>,
}

impl Conn {
    async fn open(io: &Io, addr: SocketAddr) -> io::Result<Conn> {
        let stream = TcpStream::connect_async(io, addr).await?;
        let (sender, conn) = handshake(stream).await.map_err(other)?;
        Ok(Conn {
            sender,
            _driver: io.spawn_future(conn),
        })
    }

    /// Sends one request; the status and the whole body.
    async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> io::Result<(StatusCode, Bytes)> {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "zsync.test")
            .body(Full::new(body))
            .map_err(other)?;
        self.sender.ready().await.map_err(other)?;
        let response = self.sender.send_request(req).await.map_err(other)?;
        let status = response.status();
        let body = response.into_body().collect().await.map_err(other)?;
        Ok((status, body.to_bytes()))
    }

    async fn get(&mut self, path: &str) -> io::Result<(StatusCode, Bytes)> {
        self.send(Method::GET, path, Bytes::new()).await
    }
}

/// Polls `cond` (with short sleeps) until it holds; panics after [`WATCHDOG`] / 2.
async fn until(cond: impl Fn() -> bool) {
    let give_up = Instant::now() + WATCHDOG / 2;
    while !cond() {
        assert!(Instant::now() < give_up, "condition never held");
        time::sleep(Duration::from_millis(5)).await;
    }
}

fn get_with_body(rt: Rt) {
    let server = Server::start(rt, HyperConfig::default());
    let addr = server.addr;
    client(rt, |io| {
        io.block_on(async {
            let mut conn = Conn::open(io, addr).await.unwrap();
            let req = Request::get("/")
                .header("host", "zsync.test")
                .body(Full::new(Bytes::new()))
                .unwrap();
            conn.sender.ready().await.unwrap();
            let response = conn.sender.send_request(req).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(response.headers()["content-type"], "text/plain");
            assert_eq!(response.headers()["content-length"], "13");
            let body = response.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(body, hyper_routes::HELLO);
            let (status, _) = conn.get("/missing").await.unwrap();
            assert_eq!(status, StatusCode::NOT_FOUND);
        })
        .unwrap()
    });
    server.shutdown().resume();
}

fn post_echo(rt: Rt) {
    let server = Server::start(rt, HyperConfig::default());
    let addr = server.addr;
    // Larger than a socket buffer, so reads and writes on both sides come in several parts.
    let body: Bytes = (0..1 << 20)
        .map(|i: u32| (i % 251) as u8)
        .collect::<Vec<u8>>()
        .into();
    client(rt, |io| {
        io.block_on(async {
            let mut conn = Conn::open(io, addr).await.unwrap();
            let (status, echoed) = conn
                .send(Method::POST, "/echo", body.clone())
                .await
                .unwrap();
            assert_eq!(status, StatusCode::OK);
            assert!(
                echoed == body,
                "echoed body differs ({} bytes)",
                echoed.len()
            );
            let (_, small) = conn
                .send(Method::POST, "/echo", Bytes::from_static(b"{\"a\":[1,2]}"))
                .await
                .unwrap();
            assert_eq!(small, "{\"a\":[1,2]}");
        })
        .unwrap()
    });
    server.shutdown().resume();
}

fn keep_alive_serves_many_requests_on_one_connection(rt: Rt) {
    let server = Server::start(rt, HyperConfig::default());
    let addr = server.addr;
    client(rt, |io| {
        io.block_on(async {
            let mut conn = Conn::open(io, addr).await.unwrap();
            for i in 0..50 {
                if i % 2 == 0 {
                    let (status, body) = conn.get("/").await.unwrap();
                    assert_eq!((status, &body[..]), (StatusCode::OK, hyper_routes::HELLO));
                } else {
                    let msg = Bytes::from(format!("request {i}"));
                    let (_, body) = conn.send(Method::POST, "/echo", msg.clone()).await.unwrap();
                    assert_eq!(body, msg);
                }
            }
        })
        .unwrap()
    });
    assert_eq!(
        server.stats.accepted.load(Ordering::Relaxed),
        1,
        "one connection for all"
    );
    server.shutdown().resume();
}

fn hundred_concurrent_clients(rt: Rt) {
    const CLIENTS: usize = 100;
    let server = Server::start(rt, HyperConfig::default());
    let addr = server.addr;
    let done = client(rt, |io| {
        io.block_on(async {
            let clients: Vec<_> = (0..CLIENTS)
                .map(|c| {
                    let io2 = io.clone();
                    io.spawn_future(async move {
                        let mut conn = Conn::open(&io2, addr).await?;
                        for r in 0..3 {
                            let msg = Bytes::from(format!("client {c} request {r}"));
                            let (_, body) = conn.send(Method::POST, "/echo", msg.clone()).await?;
                            assert_eq!(body, msg);
                        }
                        io::Result::Ok(())
                    })
                })
                .collect();
            let mut done = 0;
            for c in clients {
                c.await.unwrap().unwrap();
                done += 1;
            }
            done
        })
        .unwrap()
    });
    assert_eq!(done, CLIENTS);
    assert_eq!(server.stats.accepted.load(Ordering::Relaxed), CLIENTS);
    server.shutdown().resume();
}

fn sleeping_handler_does_not_hold_other_connections(rt: Rt) {
    let server = Server::start(rt, HyperConfig::default());
    let (addr, probe) = (server.addr, server.probe.clone());
    client(rt, |io| {
        io.block_on(async {
            // Handlers asleep for good, more of them than the server has workers.
            let sleepers: Vec<_> = (0..4)
                .map(|_| {
                    let io2 = io.clone();
                    io.spawn_future(async move {
                        let mut conn = Conn::open(&io2, addr).await?;
                        conn.get(&format!("/sleep?ms={FOREVER_MS}")).await
                    })
                })
                .collect();
            until(|| probe.sleeping.load(Ordering::SeqCst) == 4).await;
            // The workers are free: other connections are served meanwhile.
            let mut conn = Conn::open(io, addr).await.unwrap();
            let (status, body) = conn.get("/").await.unwrap();
            assert_eq!((status, &body[..]), (StatusCode::OK, hyper_routes::HELLO));
            // A short sleep in a handler ends, and not before it was due.
            let start = Instant::now();
            let (status, body) = conn.get("/sleep?ms=30").await.unwrap();
            assert_eq!((status, &body[..]), (StatusCode::OK, &b"slept"[..]));
            assert!(start.elapsed() >= Duration::from_millis(30));
            for s in &sleepers {
                assert!(!s.is_finished(), "a handler asleep for good answered");
            }
            // Dropping the clients' tasks cancels them; the server's handlers go on sleeping
            // until the shutdown below cancels them.
        })
        .unwrap()
    });
    server.shutdown().resume();
}

fn shutdown_with_a_client_mid_request_hangs_nothing(rt: Rt) {
    let server = Server::start(rt, HyperConfig::default());
    let (addr, probe) = (server.addr, server.probe.clone());
    let (tx, rx) = mpsc::channel::<()>();
    let shutter = std::thread::spawn(move || {
        rx.recv().unwrap();
        // The handler is asleep mid-request: the shutdown cancels it, dropping the
        // connection's future, which closes the socket.
        server.shutdown().resume();
    });
    let result = client(rt, |io| {
        io.block_on(async {
            let mut conn = Conn::open(io, addr).await.unwrap();
            let request =
                io.spawn_future(async move { conn.get(&format!("/sleep?ms={FOREVER_MS}")).await });
            until(|| probe.sleeping.load(Ordering::SeqCst) == 1).await;
            tx.send(()).unwrap();
            request.await.unwrap()
        })
        .unwrap()
    });
    let e = result.expect_err("the server went away mid-request: no response");
    assert!(
        e.to_string().contains("connection closed") || e.to_string().contains("incomplete"),
        "unexpected error: {e}"
    );
    shutter.join().unwrap();
}

fn panicking_handler_is_contained_in_its_connection(rt: Rt) {
    let server = Server::start(rt, HyperConfig::default());
    let addr = server.addr;
    client(rt, |io| {
        io.block_on(async {
            let mut conn = Conn::open(io, addr).await.unwrap();
            // The handler's panic ends its connection task: the client sees the connection go.
            conn.get("/panic")
                .await
                .expect_err("a panicking handler sends no response");
            // The server goes on: the accept loop and the other connections are untouched.
            for _ in 0..3 {
                let mut conn = Conn::open(io, addr).await.unwrap();
                let (status, body) = conn.get("/").await.unwrap();
                assert_eq!((status, &body[..]), (StatusCode::OK, hyper_routes::HELLO));
            }
        })
        .unwrap()
    });
    // The panic was kept in its (detached) task and is reported by the shutdown.
    match server.shutdown() {
        ShutdownStatus::Panicked(p) => {
            assert_eq!(
                p.downcast_ref::<&str>(),
                Some(&"handler panicked on purpose")
            )
        }
        other => panic!("the handler's panic was not reported: {other:?}"),
    }
}

fn header_read_timeout_closes_a_stalled_client(rt: Rt) {
    let cfg = HyperConfig {
        header_timeout: Duration::from_millis(100),
        verbose: false,
    };
    let server = Server::start(rt, cfg);
    // A plain std client: half a request head, then nothing.
    let mut s = std::net::TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(WATCHDOG / 2)).unwrap();
    let start = Instant::now();
    s.write_all(b"GET / HTTP/1.1\r\nhost: zsync.test\r\n")
        .unwrap();
    let mut seen = Vec::new();
    // hyper answers `408 Request Timeout` and closes: read to the end (a timeout of the read
    // above would be an error here, failing the test).
    s.read_to_end(&mut seen).unwrap();
    assert!(start.elapsed() >= Duration::from_millis(100));
    let seen = String::from_utf8_lossy(&seen);
    assert!(
        seen.is_empty() || seen.starts_with("HTTP/1.1 408"),
        "{seen}"
    );
    // A whole request and then silence: between requests the timer is reset and fires again.
    let mut s = std::net::TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(WATCHDOG / 2)).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nhost: zsync.test\r\n\r\n")
        .unwrap();
    let mut seen = Vec::new();
    s.read_to_end(&mut seen).unwrap();
    let seen = String::from_utf8_lossy(&seen);
    assert!(
        seen.starts_with("HTTP/1.1 200 OK") && seen.contains("Hello, World!"),
        "{seen}"
    );
    assert!(server.stats.conn_errors.load(Ordering::Relaxed) >= 1);
    server.shutdown().resume();
}

fn unix_stream_transport(rt: Rt) {
    client(rt, |io| {
        let (server_end, client_end) = UnixStream::pair(io).unwrap();
        let server = io.spawn_future(
            hyper::server::conn::http1::Builder::new()
                .timer(ZsyncTimer::new())
                .serve_connection(server_end, hyper::service::service_fn(hyper_routes::route)),
        );
        io.block_on(async {
            let (mut sender, conn) = handshake(client_end).await.unwrap();
            let driver = io.spawn_future(conn);
            let req = Request::post("/echo")
                .header("host", "zsync.test")
                .body(Full::new(Bytes::from_static(b"over a unix socket")))
                .unwrap();
            sender.ready().await.unwrap();
            let response = sender.send_request(req).await.unwrap();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(body, "over a unix socket");
            drop(sender);
            // The client's connection ends (it shuts its socket down), then the server's.
            driver.await.unwrap().unwrap();
            server.await.unwrap().unwrap();
        })
        .unwrap()
    });
}

fn executor_runs_hyper_tasks(rt: Rt) {
    use hyper::rt::Executor;
    client(rt, |io| {
        let ran = Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        ZsyncExecutor::new(io).execute(async move {
            time::sleep(Duration::from_millis(1)).await;
            r.store(true, Ordering::SeqCst);
        });
        io.block_on(until(|| ran.load(Ordering::SeqCst))).unwrap();
    });
}

fn http2_streams_run_on_the_executor(rt: Rt) {
    client(rt, |io| {
        let listener = TcpListener::bind(io, "127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server_io = io.clone();
        // HTTP/2: hyper spawns every stream's handler through the executor.
        let server = io.spawn_future(async move {
            let (stream, _) = listener.accept_async().await?;
            hyper::server::conn::http2::Builder::new(ZsyncExecutor::new(&server_io))
                .timer(ZsyncTimer::new())
                .serve_connection(stream, hyper::service::service_fn(hyper_routes::route))
                .await
                .map_err(other)
        });
        io.block_on(async {
            let stream = TcpStream::connect_async(io, addr).await.unwrap();
            let (sender, conn) = hyper::client::conn::http2::Builder::new(ZsyncExecutor::new(io))
                .timer(ZsyncTimer::new())
                .handshake(stream)
                .await
                .unwrap();
            let driver = io.spawn_future(conn);
            // Many streams in flight at once on the one connection.
            let requests: Vec<_> = (0..16)
                .map(|i| {
                    let mut sender = sender.clone();
                    io.spawn_future(async move {
                        let body = Bytes::from(format!("stream {i}"));
                        let req = Request::post("http://zsync.test/echo")
                            .body(Full::new(body.clone()))
                            .unwrap();
                        sender.ready().await.map_err(other)?;
                        let response = sender.send_request(req).await.map_err(other)?;
                        let echoed = response.into_body().collect().await.map_err(other)?;
                        assert_eq!(echoed.to_bytes(), body);
                        io::Result::Ok(())
                    })
                })
                .collect();
            for r in requests {
                r.await.unwrap().unwrap();
            }
            drop(sender);
            driver.await.unwrap().unwrap();
        })
        .unwrap();
        io.block_on(server).unwrap().unwrap().unwrap();
    });
}

fn timer_reset_moves_the_deadline_in_place(rt: Rt) {
    use hyper::rt::Timer;
    client(rt, |io| {
        let timer = ZsyncTimer::new();
        let mut sleep = timer.sleep(Duration::from_secs(3600));
        let before: *const () = (&*sleep as *const dyn hyper::rt::Sleep).cast();
        let start = Instant::now();
        timer.reset(&mut sleep, start + Duration::from_millis(10));
        // The same sleep, re-armed: hyper's per-request reset allocates nothing.
        let after: *const () = (&*sleep as *const dyn hyper::rt::Sleep).cast();
        assert_eq!(before, after);
        io.block_on(sleep).unwrap();
        assert!(start.elapsed() >= Duration::from_millis(10));
    });
}
