//! examples/microservices, tested in-process: the example's own modules (included with
//! `#[path]`) run the three services — gateway → users → orders — each on its own listener of
//! one runtime, and the tests drive the gateway with std sockets from outside the runtime, as a
//! client would.
//!
//! What is checked: the happy path; the deadline budget shrinking along the chain; an
//! over-budget chain answering `504` and the downstream work ending; retries riding out
//! transient failures (and giving up with a clear error); a client that hangs up canceling the
//! work in every service below; and a service killed mid-request (listener closed, connections
//! reset): a clear `502` naming it, its breaker opening (`503`, visible in `/metrics` and
//! `/health`), and closing again once it is back.
//!
//! Every body runs on Threaded, Green on epoll (what Green's Auto backend uses where io_uring is
//! refused) and Green on the default backend. Nothing here measures time: client sockets give
//! up after [`CLIENT_TIMEOUT`] and every wait for a condition after [`PATIENCE`] (generous
//! watchdogs), and the faults that make a request slow are far longer than both, so a pass
//! proves the request did not wait for them.

#[path = "support/models.rs"]
#[macro_use]
mod models;

#[path = "../examples/microservices/breaker.rs"]
#[allow(dead_code)]
mod breaker;
#[path = "../examples/microservices/budget.rs"]
#[allow(dead_code)]
mod budget;
#[path = "../examples/microservices/client.rs"]
#[allow(dead_code)]
mod client;
#[path = "../examples/microservices/model.rs"]
mod model;
#[path = "../examples/microservices/retry.rs"]
#[allow(dead_code)]
mod retry;
#[path = "../examples/microservices/server.rs"]
#[allow(dead_code)]
mod server;
#[path = "../examples/microservices/services.rs"]
#[allow(dead_code)]
mod services;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use model::Profile;
use models::Rt;
use serde_json::Value;
use services::{Config, Role, Stack};
use zsync::Runtime;

/// How long a client socket waits for an answer before the test fails.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a test waits for a condition (a counter, a breaker state) before it fails.
const PATIENCE: Duration = Duration::from_secs(30);
/// A fault delay no passing test waits out.
const FOREVER_MS: u64 = 600_000;
/// How long a whole test may run before it fails instead of hanging.
const WATCHDOG: Duration = Duration::from_secs(120);

/// The services on a runtime of their own.
struct Harness {
    stack: Stack,
    cfg: Config,
    // Last: dropped after the handles above, it cancels every task and joins its threads.
    rt: Runtime,
}

impl Harness {
    fn start(rt: Rt, cfg: Config) -> Harness {
        let rt = rt.builder().build().expect("runtime");
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let stack = rt
            .block_on(|io| services::start_stack(io, [any; 3], &cfg))
            .expect("services start");
        Harness { stack, cfg, rt }
    }

    fn gateway(&self) -> SocketAddr {
        self.stack.gateway.server.addr()
    }
}

/// A parsed response.
#[derive(Debug)]
struct Resp {
    status: u16,
    head: String,
    body: Value,
}

impl Resp {
    fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }

    fn service(&self) -> &str {
        self.body["service"].as_str().unwrap_or("")
    }
}

/// Sends `GET path` with `headers` and reads the whole response (`connection: close`).
fn send(addr: SocketAddr, path: &str, headers: &[(&str, String)]) -> TcpStream {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(CLIENT_TIMEOUT)).unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s
}

fn read_resp(mut s: TcpStream) -> Resp {
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .expect("a whole response before the client timeout");
    let text = String::from_utf8(raw).expect("utf-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    let body = serde_json::from_str(body).unwrap_or(Value::String(body.to_string()));
    Resp {
        status,
        head: head.to_ascii_lowercase(),
        body,
    }
}

fn get(addr: SocketAddr, path: &str, headers: &[(&str, String)]) -> Resp {
    read_resp(send(addr, path, headers))
}

/// Waits until `cond` holds, failing the test after [`PATIENCE`].
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < PATIENCE, "gave up waiting: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn load(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

fn happy_path(rt: Rt) {
    let h = Harness::start(rt, Config::default());
    let r = get(h.gateway(), "/api/users/7", &[]);
    assert_eq!(r.status, 200, "{r:?}");
    let p: Profile = serde_json::from_value(r.body).unwrap();
    let orders = model::orders_of(7);
    assert_eq!(p.profile, model::user(7).unwrap());
    assert_eq!(p.order_count, orders.len());
    assert_eq!(p.total_cents, orders.iter().map(|o| o.cents).sum::<u64>());
    assert_eq!(p.trace, ["gateway", "users", "orders"]);
    // Errors name the service they are about.
    let r = get(h.gateway(), "/api/users/0", &[]);
    assert_eq!((r.status, r.service()), (404, "users"), "{r:?}");
    let r = get(h.gateway(), "/api/users/x", &[]);
    assert_eq!((r.status, r.service()), (400, "gateway"), "{r:?}");
    let r = get(
        h.gateway(),
        "/api/users/7",
        &[(budget::HEADER, "soon".into())],
    );
    assert_eq!(r.status, 400, "{r:?}");
    let r = get(h.gateway(), "/health", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body["status"], "ok");
    assert_eq!(r.body["downstream"]["users"], "closed");
}

fn deadline_shrinks_along_the_chain(rt: Rt) {
    let h = Harness::start(rt, Config::default());
    // users waits 200 ms before calling orders: orders must see at least that much less.
    h.stack
        .users
        .service
        .faults
        .delay_ms
        .store(200, Ordering::Relaxed);
    let r = get(
        h.gateway(),
        "/api/users/3",
        &[(budget::HEADER, "20000".into())],
    );
    assert_eq!(r.status, 200, "{r:?}");
    let seen = |s: &services::Running| load(&s.service.stats.last_budget_ms);
    assert_eq!(seen(&h.stack.gateway), 20_000);
    let users = seen(&h.stack.users);
    let orders = seen(&h.stack.orders);
    assert!(users <= 20_000, "users saw {users} ms");
    assert!(
        orders <= users - 200 && orders > 0,
        "orders saw {orders} ms, users {users} ms, and users spent 200 ms first"
    );
    // Without the header, a service's default budget applies (and is passed on).
    let r = get(h.gateway(), "/api/users/3", &[]);
    assert_eq!(r.status, 200);
    let default = h.cfg.default_budget.as_millis() as u64;
    assert_eq!(seen(&h.stack.gateway), default);
    assert!(seen(&h.stack.orders) < default);
}

fn over_budget_chain_answers_504_and_downstream_work_ends(rt: Rt) {
    let h = Harness::start(rt, Config::default());
    let orders = &h.stack.orders.service;
    orders.faults.delay_ms.store(FOREVER_MS, Ordering::Relaxed);
    let r = get(
        h.gateway(),
        "/api/users/5",
        &[(budget::HEADER, "300".into())],
    );
    assert_eq!(r.status, 504, "{r:?}");
    assert!(r.error().contains("deadline exceeded"), "{r:?}");
    assert!(r.head.contains("x-failed-service"), "{r:?}");
    // orders stopped working on it: its deadline passed or its caller hung up.
    eventually("orders' slow request to end", || {
        load(&orders.stats.timeouts) + load(&orders.stats.canceled) == 1
            && load(&orders.server.in_flight) == 0
    });
    // The 504 names the service whose deadline ran out first (each sees a smaller budget than
    // its caller, so usually orders, passed on as it is) and that service counted it.
    let named = [&h.stack.gateway, &h.stack.users, &h.stack.orders]
        .into_iter()
        .find(|s| s.service.name() == r.service())
        .unwrap_or_else(|| panic!("a 504 naming no service: {r:?}"));
    assert!(load(&named.service.stats.timeouts) >= 1, "{r:?}");
    // Timeouts say nothing against a downstream: no breaker moved.
    let users = h.stack.users.service.downstream().unwrap();
    assert_eq!(users.breaker().state, breaker::State::Closed);
    assert_eq!(users.breaker().consecutive_failures, 0);
}

fn retries_ride_out_transient_failures(rt: Rt) {
    let mut cfg = Config::default();
    cfg.client.retry.max_attempts = 3;
    cfg.client.breaker.failure_threshold = 10;
    let h = Harness::start(rt, cfg);
    let orders = &h.stack.orders.service;
    let users = h.stack.users.service.downstream().unwrap();
    orders.faults.fail_next.store(2, Ordering::Relaxed);
    let r = get(h.gateway(), "/api/users/9", &[]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(load(&users.stats.retries), 2);
    assert_eq!(load(&users.stats.failures), 2);
    assert_eq!(users.breaker().state, breaker::State::Closed);
    assert_eq!(users.breaker().consecutive_failures, 0, "a success resets");
    // More failures than tries: the last answer, naming orders, comes back through the gateway
    // (which neither retries nor counts it: users is fine).
    orders.faults.fail_next.store(3, Ordering::Relaxed);
    let r = get(h.gateway(), "/api/users/9", &[]);
    assert_eq!((r.status, r.service()), (503, "orders"), "{r:?}");
    assert_eq!(load(&users.stats.retries), 4);
    let gw = h.stack.gateway.service.downstream().unwrap();
    assert_eq!(load(&gw.stats.retries), 0);
    assert_eq!(load(&gw.stats.failures), 0);
}

fn client_hangup_cancels_the_chain(rt: Rt) {
    let cfg = Config {
        default_budget: Duration::from_millis(FOREVER_MS * 2),
        ..Config::default()
    };
    let h = Harness::start(rt, cfg);
    let orders = &h.stack.orders.service;
    orders.faults.delay_ms.store(FOREVER_MS, Ordering::Relaxed);
    let s = send(h.gateway(), "/api/users/4", &[]);
    eventually("the request to reach orders", || {
        load(&orders.server.in_flight) == 1
    });
    s.shutdown(Shutdown::Both).unwrap();
    drop(s);
    for (name, svc) in [
        ("gateway", &h.stack.gateway.service),
        ("users", &h.stack.users.service),
        ("orders", orders),
    ] {
        eventually(&format!("{name} to drop the abandoned request"), || {
            load(&svc.server.abandoned) == 1 && load(&svc.server.in_flight) == 0
        });
    }
    eventually("orders' work to be canceled", || {
        load(&orders.stats.canceled) == 1
    });
    assert_eq!(load(&orders.stats.timeouts), 0);
    for svc in [&h.stack.gateway.service, &h.stack.users.service] {
        assert_eq!(load(&svc.downstream().unwrap().stats.abandoned), 1);
    }
}

fn killed_service_breaker_opens_and_closes(rt: Rt) {
    let mut cfg = Config {
        default_budget: Duration::from_secs(60),
        ..Config::default()
    };
    cfg.client.retry.max_attempts = 2;
    cfg.client.breaker.failure_threshold = 2;
    cfg.client.breaker.open_for = Duration::from_millis(200);
    let h = Harness::start(rt, cfg);
    let orders_addr = h.stack.orders.server.addr();
    let users = h.stack.users.service.clone();
    let ds = users.downstream().unwrap();
    let r = get(h.gateway(), "/api/users/2", &[]);
    assert_eq!(r.status, 200, "{r:?}");

    // Kill orders while it works on a request.
    let orders = &h.stack.orders.service;
    orders.faults.delay_ms.store(FOREVER_MS, Ordering::Relaxed);
    let pending = send(h.gateway(), "/api/users/2", &[]);
    eventually("the request to reach orders", || {
        load(&orders.server.in_flight) == 1
    });
    h.stack.orders.server.kill();
    let r = read_resp(pending);
    assert_eq!((r.status, r.service()), (502, "orders"), "{r:?}");
    assert!(r.error().contains("orders is unavailable"), "{r:?}");
    // Reset, then refused on the retry: two failures in a row open the breaker.
    assert_eq!(ds.breaker().state, breaker::State::Open);

    // While open: 503 at once, naming orders; visible in users' /metrics and /health.
    let r = get(h.gateway(), "/api/users/2", &[]);
    assert_eq!((r.status, r.service()), (503, "orders"), "{r:?}");
    assert!(r.error().contains("circuit open"), "{r:?}");
    let users_addr = h.stack.users.server.addr();
    let m = get(users_addr, "/metrics", &[]);
    assert_eq!(m.body["downstream"]["breaker"]["state"], "open", "{m:?}");
    assert_eq!(m.body["downstream"]["name"], "orders");
    let health = get(users_addr, "/health", &[]);
    assert_eq!(health.body["status"], "degraded", "{health:?}");
    // The gateway's breaker for users did not move: users itself is fine.
    let gw = h.stack.gateway.service.downstream().unwrap();
    assert_eq!(gw.breaker().state, breaker::State::Closed);

    // orders comes back on the same address (the old listener may take a moment to close).
    let start = Instant::now();
    let _orders = loop {
        match h
            .rt
            .block_on(|io| services::start(io, Role::Orders, orders_addr, None, &h.cfg))
        {
            Ok(running) => break running,
            Err(e) => {
                assert!(start.elapsed() < PATIENCE, "rebinding {orders_addr}: {e}");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    };
    // After `open_for`, a probe goes through and closes the breaker.
    eventually("a request to succeed again", || {
        get(h.gateway(), "/api/users/2", &[]).status == 200
    });
    let snap = ds.breaker();
    assert_eq!(snap.state, breaker::State::Closed);
    assert!(snap.opened >= 1);
    let m = get(users_addr, "/metrics", &[]);
    assert_eq!(m.body["downstream"]["breaker"]["state"], "closed", "{m:?}");
}

per_model!(concurrent:
    happy_path,
    deadline_shrinks_along_the_chain,
    over_budget_chain_answers_504_and_downstream_work_ends,
    retries_ride_out_transient_failures,
    client_hangup_cancels_the_chain,
    killed_service_breaker_opens_and_closes,
);
