//! examples/microservices under `zsync::sim`: the example's own modules (included with
//! `#[path]`, as tests/microservices.rs does) run the three services — gateway → users → orders,
//! hyper over zsync — each on a simulated host of its own, and the scenario drives the gateway
//! over the simulated network with a minimal HTTP/1.1 client (`zsync::net::TcpStream`,
//! httparse), every request bounded by `io.timeout`.
//!
//! The hosts are declared in the order orders (10.0.0.2), users (10.0.0.3), gateway
//! (10.0.0.4); each service listens on `0.0.0.0:<its port>` (8082, 8081, 8080) and finds its
//! downstream by name (`"orders:8082"`, `"users:8081"`, resolved to the host's address), as
//! main.rs starts one service per process with `--addr` and `--orders-addr` / `--users-addr`.
//! The scenario reaches a running service's fault knobs and counters (as tests/microservices.rs
//! does in-process) through a thread-local the host fills in at each start.
//!
//! What is checked: the happy path (a user's profile, errors naming the service they are
//! about, `/health` of every host, pooled connections reused), in simulated time and
//! deterministically (the same seed, the same answers and the same log); the deadline budget
//! shrinking along the chain, and an over-budget request answering `504` at its deadline with
//! the slow downstream's work ended; a client that hangs up canceling the work in every
//! service below; a partition between users and orders costing requests their budget (`504`)
//! without opening a breaker, and healing; and, over [`SEEDS`] seeds of a network with latency,
//! jitter and loss ([`crash_and_restart`]): concurrent requests answered with the right profile
//! or a documented, clear error (`502`/`503`/`504` naming a service), budgets too small for
//! the chain answered `504`; orders crashed while requests are in its hands — clear errors
//! naming orders, users' breaker for orders opening (`503 circuit open` at once, users'
//! `/metrics` and `/health` saying so, the gateway's breaker untouched) — and after
//! `zsync::sim::restart`, requests succeeding again and the breaker closing. That scenario
//! replays exactly from its seed, with the example's retries and without; and the services
//! keep answering after more simulated time than hyper's header-read timeout (30 s), which
//! `ZsyncTimer` measures on zsync's clock.
//!
//! Nothing here measures real time: the only real-time bound is a generous watchdog.

use crate::watchdog::watchdog;

use crate::{breaker, budget, model, server, services};

use std::cell::RefCell;
use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use model::Profile;
use serde_json::Value;
use services::{Config, Role, Service};
use zsync::net::TcpStream;
use zsync::sim::{self, NetFaults, Sim};
use zsync::Io;

/// How long (simulated) the client waits for an answer before the test fails: far more than
/// any budget here plus the network's worst delays, so an answer that does not come is a hang.
const CLIENT_LIMIT: Duration = Duration::from_secs(10);
/// How long (simulated) a test waits for a condition before it fails.
const PATIENCE: Duration = Duration::from_secs(5);
/// A fault delay no passing test waits out.
const FOREVER_MS: u64 = 600_000;
/// Seeds of the fault scenario.
const SEEDS: u64 = 500;
/// hyper's header-read timeout (30 s, server.rs): computed as `Timer::now() + 30 s`, which
/// `ZsyncTimer` answers with zsync's clock, simulated here. (With hyper's default `now`, real
/// time, every service closed new connections unanswered once simulated time was 30 s ahead.)
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn load(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

// ---------------------------------------------------------------------------------------------
// The services on their hosts.

/// Where each service listens (on its own host).
fn port(role: Role) -> u16 {
    match role {
        Role::Gateway => 8080,
        Role::Users => 8081,
        Role::Orders => 8082,
    }
}

thread_local! {
    /// The service each host runs now (by `Role as usize`), for the scenario to set its fault
    /// knobs and read its counters, as tests/microservices.rs does in-process. A simulation
    /// runs every task, hosts and scenario alike, on one thread, so this is the run's own
    /// (`run_seeds` runs one simulation at a time per thread), and a restarted host replaces
    /// its entry. Weak: the host's own tasks keep its service alive, the scenario does not.
    static RUNNING: RefCell<[Weak<Service>; 3]> =
        const { RefCell::new([Weak::new(), Weak::new(), Weak::new()]) };
}

/// The service `role`'s host runs now.
fn service(role: Role) -> Arc<Service> {
    RUNNING
        .with(|r| r.borrow()[role as usize].upgrade())
        .unwrap_or_else(|| panic!("{} is not running", role.name()))
}

/// A host's main: `role` on `0.0.0.0:<port>`, its downstream found by name, as main.rs starts
/// one service per process (`--service S --addr A --S-addr B`).
fn service_host(role: Role, cfg: Config) -> impl Fn(&Io) -> io::Result<()> + Send + Sync + 'static {
    move |io| {
        let listen = SocketAddr::from(([0, 0, 0, 0], port(role)));
        let downstream = match role.downstream() {
            Some(d) => Some(zsync::net::resolve(io, format!("{}:{}", d.name(), port(d)))?[0]),
            None => None,
        };
        let running = services::start(io, role, listen, downstream, &cfg)?;
        RUNNING.with(|r| r.borrow_mut()[role as usize] = Arc::downgrade(&running.service));
        // The server runs in future tasks of this host; keep the host alive.
        loop {
            io.sleep(Duration::from_secs(3600))?;
        }
    }
}

/// The three hosts (orders 10.0.0.2, users 10.0.0.3, gateway 10.0.0.4) on `faults`.
fn stack(cfg: &Config, faults: NetFaults) -> Sim {
    Sim::default()
        .network(faults)
        .host("orders", service_host(Role::Orders, cfg.clone()))
        .host("users", service_host(Role::Users, cfg.clone()))
        .host("gateway", service_host(Role::Gateway, cfg.clone()))
}

// ---------------------------------------------------------------------------------------------
// The client.

/// A parsed response.
#[derive(Debug)]
struct Resp {
    status: u16,
    /// The `x-failed-service` header.
    failed_service: Option<String>,
    body: Value,
}

impl Resp {
    fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }

    fn service(&self) -> &str {
        self.body["service"].as_str().unwrap_or("")
    }

    /// Whether this is one of the example's documented errors about the chain: `502`, `503` or
    /// `504`, its JSON naming one of the services, the same as the `x-failed-service` header.
    fn is_clear_error(&self) -> bool {
        matches!(self.status, 502..=504)
            && ["gateway", "users", "orders"].contains(&self.service())
            && self.failed_service.as_deref() == Some(self.service())
            && !self.error().is_empty()
    }
}

/// Sends `GET path` to `role`'s host (`connection: close`), with a budget if given.
fn send(io: &Io, role: Role, path: &str, budget_ms: Option<u64>) -> io::Result<TcpStream> {
    let mut s = TcpStream::connect(io, format!("{}:{}", role.name(), port(role)))?;
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n",
        role.name()
    );
    if let Some(b) = budget_ms {
        req.push_str(&format!("{}: {b}\r\n", budget::HEADER));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    Ok(s)
}

/// Reads the whole response (the server closes after it).
fn read_resp(mut s: TcpStream) -> io::Result<Resp> {
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let mut slots = [httparse::EMPTY_HEADER; 32];
    let mut r = httparse::Response::new(&mut slots);
    let head = match r.parse(&raw) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return Err(io::Error::new(
                ErrorKind::UnexpectedEof,
                format!(
                    "the connection closed after {} bytes, before a whole response head",
                    raw.len()
                ),
            ))
        }
        Err(e) => panic!(
            "malformed response ({e}): {:?}",
            String::from_utf8_lossy(&raw)
        ),
    };
    let failed_service = r
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(server::FAILED_SERVICE))
        .map(|h| String::from_utf8_lossy(h.value).into_owned());
    let length: usize = r
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| std::str::from_utf8(h.value).ok()?.parse().ok())
        .expect("a content-length");
    assert_eq!(raw.len() - head, length, "a truncated body");
    let body = serde_json::from_slice(&raw[head..]).expect("a JSON body");
    Ok(Resp {
        status: r.code.expect("a status"),
        failed_service,
        body,
    })
}

/// `GET path` from `role`, answered within [`CLIENT_LIMIT`] (simulated) or an error.
fn get(io: &Io, role: Role, path: &str, budget_ms: Option<u64>) -> io::Result<Resp> {
    io.timeout(CLIENT_LIMIT, |io| {
        read_resp(send(io, role, path, budget_ms)?)
    })
}

/// As [`get`], failing the test if no answer comes: the services must always answer.
fn must_get(io: &Io, role: Role, path: &str, budget_ms: Option<u64>) -> Resp {
    get(io, role, path, budget_ms).unwrap_or_else(|e| {
        panic!(
            "GET {path} from {}: no answer ({e}) at {:?}",
            role.name(),
            io.now()
        )
    })
}

/// Checks that `r` is user `id`'s profile as the chain builds it.
fn assert_profile(r: Resp, id: u64) {
    assert_eq!(r.status, 200, "{r:?}");
    let p: Profile = serde_json::from_value(r.body).unwrap();
    let orders = model::orders_of(id);
    assert_eq!(p.profile, model::user(id).unwrap());
    assert_eq!(p.order_count, orders.len());
    assert_eq!(p.total_cents, orders.iter().map(|o| o.cents).sum::<u64>());
    assert_eq!(p.trace, ["gateway", "users", "orders"]);
}

/// Waits (simulated time, 1 ms at a time) until `cond` holds, failing after [`PATIENCE`].
fn eventually(io: &Io, what: &str, mut cond: impl FnMut() -> bool) {
    let start = io.now();
    while !cond() {
        assert!(io.now() - start < PATIENCE, "gave up waiting: {what}");
        io.sleep(ms(1)).unwrap();
    }
}

/// The state of the breaker `role` keeps for its downstream, as its `/metrics` says.
fn breaker_metrics(io: &Io, role: Role) -> Value {
    let m = must_get(io, role, "/metrics", None);
    assert_eq!(m.status, 200, "{m:?}");
    m.body["downstream"]["breaker"].clone()
}

// ---------------------------------------------------------------------------------------------
// One seed at a time.

#[test]
fn the_happy_path_runs_on_three_hosts_in_simulated_time_and_deterministically() {
    watchdog(|| {
        let faults = NetFaults::default().latency(ms(5), ms(5));
        let scenario = |io: &Io| {
            let start = io.now();
            let r = must_get(io, Role::Gateway, "/api/users/7", None);
            let took = io.now() - start;
            assert_profile(r, 7);
            // Three connections opened and three requests answered, 5 ms each way: 12 trips.
            assert_eq!(took, ms(60));
            // Errors name the service they are about.
            let r = must_get(io, Role::Gateway, "/api/users/0", None);
            assert_eq!((r.status, r.service()), (404, "users"), "{r:?}");
            assert_eq!(r.failed_service.as_deref(), Some("users"));
            let r = must_get(io, Role::Gateway, "/api/users/x", None);
            assert_eq!((r.status, r.service()), (400, "gateway"), "{r:?}");
            let r = must_get(io, Role::Gateway, "/api/users/7", None);
            assert_eq!(r.status, 200);
            // users' pooled connection to orders was reused: one, for both its calls.
            let orders = service(Role::Orders);
            assert_eq!(load(&orders.server.accepted), 1);
            assert_eq!(load(&orders.server.completed), 2);
            for (role, downstream) in [
                (Role::Gateway, Some("users")),
                (Role::Users, Some("orders")),
                (Role::Orders, None),
            ] {
                let h = must_get(io, role, "/health", None);
                assert_eq!(h.status, 200, "{h:?}");
                assert_eq!(h.body["status"], "ok");
                assert_eq!(h.body["service"], role.name());
                if let Some(d) = downstream {
                    assert_eq!(h.body["downstream"][d], "closed", "{h:?}");
                }
            }
            // users found orders by name, at orders' address.
            let m = must_get(io, Role::Users, "/metrics", None);
            assert_eq!(m.body["downstream"]["addr"], "10.0.0.2:8082", "{m:?}");
            // The pooled connections were reused: one accepted by orders for two requests.
            took
        };
        let sim = stack(&Config::default(), faults).with_seed(3);
        let a = sim.run(scenario);
        let b = sim.run(scenario);
        assert_eq!(a.value, b.value);
        assert_eq!(a.elapsed, b.elapsed);
        assert_eq!(a.log.fingerprint(), b.log.fingerprint(), "not reproducible");
    });
}

#[test]
fn the_services_keep_answering_past_hypers_header_timeout_in_simulated_time() {
    watchdog(|| {
        let faults = NetFaults::default().latency(ms(5), ms(5));
        let run = stack(&Config::default(), faults).with_seed(4).run(|io| {
            for _ in 0..3 {
                assert_profile(must_get(io, Role::Gateway, "/api/users/7", None), 7);
                // Longer than the header-read timeout between requests: pooled connections
                // idle past it, and the services' clocks are simulated.
                io.sleep(HEADER_TIMEOUT + ms(1_000)).unwrap();
                let h = must_get(io, Role::Orders, "/health", None);
                assert_eq!(h.status, 200, "{h:?}");
            }
        });
        assert!(run.elapsed > HEADER_TIMEOUT * 3, "{:?}", run.elapsed);
    });
}

#[test]
fn the_budget_shrinks_along_the_chain_and_an_over_budget_request_answers_504_on_time() {
    watchdog(|| {
        let faults = NetFaults::default().latency(ms(2), ms(8));
        stack(&Config::default(), faults).with_seed(4).run(|io| {
            // users waits 200 ms before calling orders: orders must see at least that much less.
            service(Role::Users)
                .faults
                .delay_ms
                .store(200, Ordering::Relaxed);
            let r = must_get(io, Role::Gateway, "/api/users/3", Some(20_000));
            assert_profile(r, 3);
            let seen = |role| load(&service(role).stats.last_budget_ms);
            assert_eq!(seen(Role::Gateway), 20_000);
            let (users, orders) = (seen(Role::Users), seen(Role::Orders));
            assert!(users <= 20_000, "users saw {users} ms");
            assert!(
                orders <= users - 200 && orders > 0,
                "orders saw {orders} ms, users {users} ms, and users spent 200 ms first"
            );
            service(Role::Users)
                .faults
                .delay_ms
                .store(0, Ordering::Relaxed);

            // orders never answers: a 300 ms budget ends at its deadline, in simulated time.
            let orders = service(Role::Orders);
            orders.faults.delay_ms.store(FOREVER_MS, Ordering::Relaxed);
            let start = io.now();
            let r = must_get(io, Role::Gateway, "/api/users/5", Some(300));
            let took = io.now() - start;
            assert_eq!(r.status, 504, "{r:?}");
            assert!(r.is_clear_error(), "{r:?}");
            assert!(r.error().contains("deadline exceeded"), "{r:?}");
            assert!(
                (ms(300)..ms(400)).contains(&took),
                "answered after {took:?}"
            );
            // orders stopped working on it: its deadline passed or its caller hung up.
            eventually(io, "orders' slow request to end", || {
                load(&orders.stats.timeouts) + load(&orders.stats.canceled) == 1
                    && load(&orders.server.in_flight) == 0
            });
            // Timeouts say nothing against a downstream: no breaker moved.
            for role in [Role::Gateway, Role::Users] {
                let b = service(role).downstream().unwrap().breaker();
                assert_eq!(b.state, breaker::State::Closed);
                assert_eq!(b.consecutive_failures, 0);
            }
        });
    });
}

#[test]
fn a_client_that_hangs_up_cancels_the_work_in_every_service() {
    watchdog(|| {
        let faults = NetFaults::default().latency(ms(1), ms(10));
        stack(&Config::default(), faults).with_seed(5).run(|io| {
            let orders = service(Role::Orders);
            orders.faults.delay_ms.store(FOREVER_MS, Ordering::Relaxed);
            // An hour of budget: only the hang-up can end the request.
            let s = send(io, Role::Gateway, "/api/users/4", Some(3_600_000)).unwrap();
            eventually(io, "the request to reach orders", || {
                load(&orders.server.in_flight) == 1
            });
            drop(s);
            for role in [Role::Gateway, Role::Users, Role::Orders] {
                let svc = service(role);
                eventually(io, &format!("{} to drop the request", role.name()), || {
                    load(&svc.server.abandoned) == 1 && load(&svc.server.in_flight) == 0
                });
            }
            eventually(io, "orders' work to be canceled", || {
                load(&orders.stats.canceled) == 1
            });
            assert_eq!(load(&orders.stats.timeouts), 0);
            for role in [Role::Gateway, Role::Users] {
                let d = service(role);
                let d = d.downstream().unwrap();
                assert_eq!(load(&d.stats.abandoned), 1, "{}", role.name());
                assert_eq!(d.breaker().state, breaker::State::Closed);
            }
        });
    });
}

#[test]
fn a_partitioned_downstream_costs_the_budget_but_opens_no_breaker() {
    watchdog(|| {
        let faults = NetFaults::default().latency(ms(1), ms(5));
        stack(&Config::default(), faults).with_seed(6).run(|io| {
            assert_profile(must_get(io, Role::Gateway, "/api/users/8", None), 8);
            // users' calls to orders go unanswered (held back, not refused): the request ends
            // at its deadline, and nothing counts against orders.
            sim::partition(io, "users", "orders").unwrap();
            let start = io.now();
            let r = must_get(io, Role::Gateway, "/api/users/8", Some(500));
            let took = io.now() - start;
            assert_eq!(r.status, 504, "{r:?}");
            assert!(r.is_clear_error(), "{r:?}");
            assert!(r.error().contains("deadline exceeded"), "{r:?}");
            assert!(
                (ms(500)..ms(600)).contains(&took),
                "answered after {took:?}"
            );
            for role in [Role::Gateway, Role::Users] {
                let b = service(role).downstream().unwrap().breaker();
                assert_eq!(b.state, breaker::State::Closed, "{}", role.name());
                assert_eq!(b.consecutive_failures, 0, "{}", role.name());
            }
            sim::heal(io).unwrap();
            let r = must_get(io, Role::Gateway, "/api/users/8", None);
            assert_profile(r, 8);
        });
    });
}

// ---------------------------------------------------------------------------------------------
// Many seeds: a lossy network, and orders crashing and coming back.

/// Concurrent clients of the first phase, and the requests each sends.
const CLIENTS: u64 = 4;
const ROUNDS: u64 = 5;
/// Requests in orders' hands when it crashes.
const IN_FLIGHT: u64 = 3;
/// A budget smaller than the chain's round trips (1 to 20 ms each way, 4 ways at least).
const TIGHT_BUDGET_MS: u64 = 15;

/// 1 to 20 ms each way, and 2 % of the TCP segments lost (each loss costs 200 ms).
fn lossy_network() -> NetFaults {
    NetFaults::default().latency(ms(1), ms(20)).loss(0.02)
}

/// Two failures in a row open a breaker, for a second.
fn fault_config() -> Config {
    let mut cfg = Config::default();
    cfg.client.breaker.failure_threshold = 2;
    cfg.client.breaker.open_for = ms(1_000);
    cfg
}

/// What the runs saw, summed over the seeds.
#[derive(Default)]
struct Tally {
    /// Answers of the first phase: profiles, and clear errors.
    ok: AtomicU64,
    errors: AtomicU64,
    /// The [`TIGHT_BUDGET_MS`] requests answered 504.
    tight_504: AtomicU64,
    /// The answers to the requests orders held when it crashed, by status.
    pending_502: AtomicU64,
    pending_503: AtomicU64,
    pending_504: AtomicU64,
    /// Requests sent after the restart until one succeeded.
    after_restart_tries: AtomicU64,
    /// Simulated time of the longest run.
    longest_ms: AtomicU64,
}

impl Tally {
    fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

/// The fault scenario, on the hosts of `stack(&fault_config(), lossy_network())`:
///
/// 1. [`CLIENTS`] concurrent clients send [`ROUNDS`] requests each, then one with a budget too
///    small for the chain ([`TIGHT_BUDGET_MS`]): every answer is the right profile or a clear
///    error (most are profiles), the small budget a `504` saying the deadline was exceeded
///    (unless the latencies drawn were all short).
/// 2. orders is slowed down, [`IN_FLIGHT`] requests reach it, and it crashes: their
///    connections are reset, users' breaker for orders opens, and they are answered with clear
///    errors, all but at most one naming orders. While the breaker is open, a request is
///    answered `503 circuit open` naming orders; users' `/metrics` and `/health` show it, and
///    the gateway's breaker for users stays closed.
/// 3. orders restarts: the client retries until a request succeeds (bounded), then users'
///    breaker is closed again and every request succeeds.
fn crash_and_restart(io: &Io, tally: &Tally) {
    let start = io.now();
    // 1.
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            io.spawn(move |io| {
                let mut ok = 0;
                for i in 0..ROUNDS {
                    let id = 1 + (c * ROUNDS + i) * 389 % model::USERS;
                    let r = must_get(io, Role::Gateway, &format!("/api/users/{id}"), None);
                    if r.status == 200 {
                        assert_profile(r, id);
                        ok += 1;
                    } else {
                        assert!(r.is_clear_error(), "{r:?}");
                    }
                }
                // A budget too small for the chain, on whatever the pools hold (a connect may be
                // cut short by it).
                let id = 11 + c;
                let r = must_get(
                    io,
                    Role::Gateway,
                    &format!("/api/users/{id}"),
                    Some(TIGHT_BUDGET_MS),
                );
                let tight_504 = if r.status == 200 {
                    assert_profile(r, id);
                    0
                } else {
                    assert_eq!(r.status, 504, "{r:?}");
                    assert!(r.is_clear_error(), "{r:?}");
                    assert!(r.error().contains("deadline exceeded"), "{r:?}");
                    1
                };
                (ok, tight_504)
            })
        })
        .collect();
    let (mut ok, mut tight_504) = (0, 0);
    for t in clients {
        let (o, t) = t.join().unwrap();
        ok += o;
        tight_504 += t;
    }
    // Loss delays TCP segments (200 ms per retransmission), but the budget is 2 s.
    assert!(ok >= CLIENTS * ROUNDS * 3 / 4, "only {ok} profiles");
    Tally::add(&tally.ok, ok);
    Tally::add(&tally.errors, CLIENTS * ROUNDS - ok);
    Tally::add(&tally.tight_504, tight_504);

    // 2.
    let orders = service(Role::Orders);
    orders.faults.delay_ms.store(1_000, Ordering::Relaxed);
    let pending: Vec<_> = (0..IN_FLIGHT)
        .map(|i| {
            let path = format!("/api/users/{}", 20 + i);
            io.spawn(move |io| must_get(io, Role::Gateway, &path, Some(5_000)))
        })
        .collect();
    eventually(io, "the requests to reach orders", || {
        load(&orders.server.in_flight) == IN_FLIGHT
    });
    drop(orders);
    sim::crash(io, "orders").unwrap();
    let users = service(Role::Users);
    eventually(io, "users' breaker for orders to open", || {
        users.downstream().unwrap().breaker().state == breaker::State::Open
    });
    drop(users);
    let r = must_get(io, Role::Gateway, "/api/users/2", None);
    assert_eq!((r.status, r.service()), (503, "orders"), "{r:?}");
    assert!(r.is_clear_error(), "{r:?}");
    assert!(r.error().contains("circuit open"), "{r:?}");
    let mut named_orders = 0;
    for t in pending {
        let r = t.join().unwrap();
        // Reset (502) or refused by the open breaker on a retry (503), naming orders; or a
        // retry let through before the breaker opened, which waits until its deadline for a
        // host that does not answer (504, naming where the budget ran out).
        assert!(r.is_clear_error(), "{r:?}");
        let counter = match r.status {
            502 => &tally.pending_502,
            503 => &tally.pending_503,
            _ => &tally.pending_504,
        };
        Tally::add(counter, 1);
        if r.service() == "orders" {
            assert!(r.error().contains("orders is unavailable"), "{r:?}");
            named_orders += 1;
        } else {
            assert_eq!(r.status, 504, "{r:?}");
        }
    }
    // Two failures open the breaker: every request that failed after that is refused.
    assert!(named_orders >= IN_FLIGHT - 1, "{named_orders} named orders");
    let b = breaker_metrics(io, Role::Users);
    assert!(b["state"] == "open" || b["state"] == "half-open", "{b:?}");
    assert!(b["opened"].as_u64().unwrap() >= 1, "{b:?}");
    let h = must_get(io, Role::Users, "/health", None);
    assert_eq!(h.body["status"], "degraded", "{h:?}");
    assert_eq!(h.body["downstream"]["orders"], b["state"], "{h:?}");
    let h = must_get(io, Role::Gateway, "/health", None);
    assert_eq!(h.body["downstream"]["users"], "closed", "{h:?}");

    // 3.
    sim::restart(io, "orders").unwrap();
    let restarted = io.now();
    let mut tries = 0;
    loop {
        tries += 1;
        let r = must_get(io, Role::Gateway, "/api/users/2", Some(1_000));
        if r.status == 200 {
            assert_profile(r, 2);
            break;
        }
        assert!(r.is_clear_error(), "{r:?}");
        assert!(
            io.now() - restarted < ms(10_000),
            "still failing 10 s after the restart: {r:?}"
        );
        io.sleep(ms(100)).unwrap();
    }
    Tally::add(&tally.after_restart_tries, tries);
    let b = breaker_metrics(io, Role::Users);
    assert_eq!(b["state"], "closed", "{b:?}");
    let h = must_get(io, Role::Users, "/health", None);
    assert_eq!(h.body["status"], "ok", "{h:?}");
    for id in [2, 3, 4] {
        assert_profile(
            must_get(io, Role::Gateway, &format!("/api/users/{id}"), None),
            id,
        );
    }
    let elapsed = io.now() - start;
    tally
        .longest_ms
        .fetch_max(elapsed.as_millis() as u64, Ordering::Relaxed);
}

#[test]
fn over_many_seeds_a_lossy_network_and_a_crash_of_orders_get_clear_answers_and_recover() {
    watchdog(|| {
        let tally = Tally::default();
        let report = stack(&fault_config(), lossy_network())
            .run_seeds(0..SEEDS, |io| crash_and_restart(io, &tally))
            .unwrap_or_else(|f| panic!("{f}"));
        let n = |c: &AtomicU64| load(c);
        eprintln!(
            "{report:?}\n  before the crash: {} profiles, {} clear errors, {} of {} tight budgets \
             answered 504; held by orders when it crashed: {} answered 502, {} 503, {} 504; \
             {} tries after the restart; longest run {} ms simulated",
            n(&tally.ok),
            n(&tally.errors),
            n(&tally.tight_504),
            SEEDS * CLIENTS,
            n(&tally.pending_502),
            n(&tally.pending_503),
            n(&tally.pending_504),
            n(&tally.after_restart_tries),
            n(&tally.longest_ms),
        );
        assert_eq!(report.seeds, SEEDS);
        // The faults reached the clients: tight budgets ran out, and the crash was seen.
        assert!(n(&tally.tight_504) > 0);
        assert!(n(&tally.pending_503) > 0);
    });
}

/// Replays of the fault scenario, each seed twice, without retries and with the example's
/// retries (whose jitter is seeded from `io.wall_clock()`, simulated here): the same log.
#[test]
fn a_seed_replays_exactly_with_and_without_retries() {
    watchdog(|| {
        let mut cfg = fault_config();
        cfg.client.retry.max_attempts = 1;
        let sim = stack(&cfg, lossy_network());
        for seed in 0..4 {
            let sim = sim.with_seed(seed);
            let tally = Tally::default();
            let a = sim.run(|io| crash_and_restart(io, &tally));
            let b = sim.run(|io| crash_and_restart(io, &tally));
            assert_eq!(a.elapsed, b.elapsed, "seed {seed}");
            assert_eq!(a.log.fingerprint(), b.log.fingerprint(), "seed {seed}");
            // Without retries, each request orders held is answered 502.
            assert_eq!(load(&tally.pending_502), 2 * IN_FLIGHT, "seed {seed}");
        }
        let sim = stack(&fault_config(), lossy_network());
        for seed in 0..4 {
            let sim = sim.with_seed(seed);
            let tally = Tally::default();
            let a = sim.run(|io| crash_and_restart(io, &tally));
            let b = sim.run(|io| crash_and_restart(io, &tally));
            assert_eq!(a.elapsed, b.elapsed, "seed {seed}, with retries");
            assert_eq!(
                a.log.fingerprint(),
                b.log.fingerprint(),
                "seed {seed}, with retries"
            );
        }
    });
}
