//! The three services, gateway → users → orders, and what they share: routing, the deadline
//! of each request, error responses that name the failed service, `/health` and `/metrics`.
//!
//! | service | route | answer |
//! |---|---|---|
//! | orders | `GET /orders?user=ID` | the user's orders, `[{"id","user","item","cents"}]` |
//! | users | `GET /users/ID` | `{"user", "orders", "total_cents"}`: the user, and its orders from *orders* |
//! | gateway | `GET /api/users/ID` | `{"profile", "order_count", "total_cents", "trace"}` from *users* |
//! | every one | `GET /health` | `200 {"status": "ok" or "degraded", "service", "downstream": {name: breaker state}}` |
//! | every one | `GET /metrics` | counters of the server, the handler and the downstream client, breaker included |
//!
//! Each request runs under a deadline (`io.timeout_until`): its `x-deadline-ms` budget, or the
//! service's default budget. Errors are JSON `{"error", "service"}` with the service also in
//! the `x-failed-service` header:
//!
//! - `504`: the budget ran out (in this service, or one further down);
//! - `502`: a downstream could not be reached or failed mid-response, retries included;
//! - `503`: a downstream's breaker is open (or the downstream said it is unavailable);
//! - `400`/`404`: a bad budget, id or route.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::{Method, Request, StatusCode};
use serde::Deserialize;
use serde_json::json;
use zsync::Io;

use crate::budget;
use crate::client::{Answer, CallError, ClientConfig, Downstream};
use crate::model::{orders_of, user, Order, Profile, UserOrders};
use crate::server::{json, json_error, Handler, Reply, Server, ServerStats, FAILED_SERVICE};

/// Which service a process (or a listener) runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The edge: `GET /api/users/ID`, calls users.
    Gateway,
    /// `GET /users/ID`, calls orders.
    Users,
    /// `GET /orders?user=ID`, calls nobody.
    Orders,
}

impl Role {
    /// The service's name, as errors and metrics say it.
    pub fn name(self) -> &'static str {
        match self {
            Role::Gateway => "gateway",
            Role::Users => "users",
            Role::Orders => "orders",
        }
    }

    /// The service it calls, if any.
    pub fn downstream(self) -> Option<Role> {
        match self {
            Role::Gateway => Some(Role::Users),
            Role::Users => Some(Role::Orders),
            Role::Orders => None,
        }
    }

    /// The role named `name`.
    pub fn parse(name: &str) -> Option<Role> {
        match name {
            "gateway" => Some(Role::Gateway),
            "users" => Some(Role::Users),
            "orders" => Some(Role::Orders),
            _ => None,
        }
    }
}

/// How the services behave.
#[derive(Clone, Debug)]
pub struct Config {
    /// The budget of a request that comes without `x-deadline-ms`.
    pub default_budget: Duration,
    /// How a service calls its downstream.
    pub client: ClientConfig,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            default_budget: Duration::from_secs(2),
            client: ClientConfig::default(),
        }
    }
}

/// Fault injection, for drills and tests: settable while the service runs.
#[derive(Debug, Default)]
pub struct Faults {
    /// Milliseconds every request of this service waits (under its deadline) before working.
    pub delay_ms: AtomicU64,
    /// The next this-many requests fail with `503` naming this service.
    pub fail_next: AtomicU64,
}

/// What a service's handler counts (statistics, relaxed).
#[derive(Debug, Default)]
pub struct HandlerStats {
    /// Requests routed (every route).
    pub requests: AtomicU64,
    /// Requests answered `504` because their budget ran out here or further down.
    pub timeouts: AtomicU64,
    /// Requests whose work was canceled because their client went away.
    pub canceled: AtomicU64,
    /// The budget of the last request that had one, in milliseconds (`u64::MAX`: none yet).
    pub last_budget_ms: AtomicU64,
}

/// One service: its role, its downstream client, its counters.
pub struct Service {
    role: Role,
    default_budget: Duration,
    downstream: Option<Downstream>,
    /// Fault injection.
    pub faults: Faults,
    /// The handler's counters.
    pub stats: HandlerStats,
    /// The server's counters.
    pub server: Arc<ServerStats>,
}

/// How a request's work ended early.
enum Fail {
    /// The deadline passed: `504`.
    Deadline,
    /// The client went away: nobody reads the answer.
    Canceled,
    /// An answer to send as it is (boxed: it is large, and the rare path).
    Reply(Box<Reply>),
}

impl Fail {
    fn reply(r: Reply) -> Fail {
        Fail::Reply(Box::new(r))
    }
}

impl From<io::Error> for Fail {
    fn from(e: io::Error) -> Fail {
        if zsync::is_canceled(&e) {
            Fail::Canceled
        } else {
            Fail::Deadline
        }
    }
}

impl Service {
    /// A service; `downstream` is the address of the service it calls (required for gateway
    /// and users).
    pub fn new(
        io: &Io,
        role: Role,
        downstream: Option<SocketAddr>,
        cfg: &Config,
    ) -> io::Result<Service> {
        let downstream = match (role.downstream(), downstream) {
            (None, _) => None,
            (Some(d), Some(addr)) => Some(Downstream::new(io, d.name(), addr, cfg.client.clone())),
            (Some(d), None) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{} needs the address of {}", role.name(), d.name()),
                ))
            }
        };
        Ok(Service {
            role,
            default_budget: cfg.default_budget,
            downstream,
            faults: Faults::default(),
            stats: HandlerStats {
                last_budget_ms: AtomicU64::new(u64::MAX),
                ..HandlerStats::default()
            },
            server: Arc::new(ServerStats::default()),
        })
    }

    /// The service's name.
    pub fn name(&self) -> &'static str {
        self.role.name()
    }

    /// The client of its downstream, if it has one.
    pub fn downstream(&self) -> Option<&Downstream> {
        self.downstream.as_ref()
    }

    fn health(&self) -> Reply {
        let mut status = "ok";
        let mut downstream = serde_json::Map::new();
        if let Some(d) = &self.downstream {
            let state = d.breaker().state;
            if state != crate::breaker::State::Closed {
                status = "degraded";
            }
            downstream.insert(d.name().into(), state.name().into());
        }
        json(
            StatusCode::OK,
            &json!({ "status": status, "service": self.name(), "downstream": downstream }),
        )
    }

    /// The `/metrics` document.
    pub fn metrics(&self) -> serde_json::Value {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let last_budget = r(&self.stats.last_budget_ms);
        let downstream = self.downstream.as_ref().map(|d| {
            let b = d.breaker();
            let cfg = d.breaker_config();
            json!({
                "name": d.name(),
                "addr": d.addr().to_string(),
                "breaker": {
                    "state": b.state.name(),
                    "consecutive_failures": b.consecutive_failures,
                    "opened": b.opened,
                    "rejected": b.rejected,
                    "failure_threshold": cfg.failure_threshold,
                    "open_ms": cfg.open_for.as_millis() as u64,
                },
                "calls": r(&d.stats.calls),
                "retries": r(&d.stats.retries),
                "failures": r(&d.stats.failures),
                "rejected": r(&d.stats.rejected),
                "abandoned": r(&d.stats.abandoned),
            })
        });
        json!({
            "service": self.name(),
            "server": {
                "accepted": r(&self.server.accepted),
                "completed": r(&self.server.completed),
                "abandoned": r(&self.server.abandoned),
                "in_flight": r(&self.server.in_flight),
            },
            "requests": r(&self.stats.requests),
            "timeouts": r(&self.stats.timeouts),
            "canceled": r(&self.stats.canceled),
            "last_budget_ms": (last_budget != u64::MAX).then_some(last_budget),
            "downstream": downstream,
        })
    }

    /// The work of one request, under its deadline.
    fn work(&self, io: &Io, deadline: Instant, req: &Request<Bytes>) -> Result<Reply, Fail> {
        let delay = self.faults.delay_ms.load(Ordering::Relaxed);
        if delay > 0 {
            io.sleep(Duration::from_millis(delay))?;
        }
        if take_one(&self.faults.fail_next) {
            return Err(Fail::reply(json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                self.name(),
                &format!("{} is unavailable (injected fault)", self.name()),
            )));
        }
        let path = req.uri().path();
        match self.role {
            Role::Orders if path == "/orders" => {
                let id = query_u64(req.uri().query(), "user").ok_or_else(|| {
                    Fail::reply(json_error(
                        StatusCode::BAD_REQUEST,
                        self.name(),
                        "expected /orders?user=ID",
                    ))
                })?;
                Ok(json(StatusCode::OK, &json!(orders_of(id))))
            }
            Role::Users => {
                let id = self.id_in(path, "/users/")?;
                let Some(user) = user(id) else {
                    return Err(self.not_found(id));
                };
                let answer = self.call(io, deadline, &format!("/orders?user={id}"))?;
                let orders: Vec<Order> = self.decode(&answer)?;
                let total_cents = orders.iter().map(|o| o.cents).sum();
                let body = UserOrders {
                    user,
                    orders,
                    total_cents,
                };
                Ok(json(StatusCode::OK, &json!(body)))
            }
            Role::Gateway => {
                let id = self.id_in(path, "/api/users/")?;
                let answer = self.call(io, deadline, &format!("/users/{id}"))?;
                let u: UserOrders = self.decode(&answer)?;
                let body = Profile {
                    order_count: u.orders.len(),
                    total_cents: u.total_cents,
                    profile: u.user,
                    trace: vec!["gateway".into(), "users".into(), "orders".into()],
                };
                Ok(json(StatusCode::OK, &json!(body)))
            }
            _ => Err(Fail::reply(json_error(
                StatusCode::NOT_FOUND,
                self.name(),
                "no such route",
            ))),
        }
    }

    fn id_in(&self, path: &str, prefix: &str) -> Result<u64, Fail> {
        let Some(rest) = path.strip_prefix(prefix) else {
            return Err(Fail::reply(json_error(
                StatusCode::NOT_FOUND,
                self.name(),
                "no such route",
            )));
        };
        rest.parse().map_err(|_| {
            Fail::reply(json_error(
                StatusCode::BAD_REQUEST,
                self.name(),
                "the user id must be a number",
            ))
        })
    }

    fn not_found(&self, id: u64) -> Fail {
        Fail::reply(json_error(
            StatusCode::NOT_FOUND,
            self.name(),
            &format!("no user {id}"),
        ))
    }

    /// Calls the downstream; an error answer from it (any status but 200) is passed on as it is.
    fn call(&self, io: &Io, deadline: Instant, path: &str) -> Result<Answer, Fail> {
        let d = self
            .downstream
            .as_ref()
            .expect("gateway and users have one");
        let answer = d.get(io, deadline, path).map_err(|e| match e {
            CallError::DeadlineExceeded => Fail::Deadline,
            CallError::Canceled => Fail::Canceled,
            CallError::CircuitOpen => Fail::reply(json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                d.name(),
                &format!(
                    "{} is unavailable: circuit open after repeated failures, retry later",
                    d.name()
                ),
            )),
            CallError::Unavailable(why) => Fail::reply(json_error(
                StatusCode::BAD_GATEWAY,
                d.name(),
                &format!("{} is unavailable: {why}", d.name()),
            )),
        })?;
        if answer.status != StatusCode::OK {
            return Err(Fail::reply(pass_on(answer)));
        }
        Ok(answer)
    }

    fn decode<T: for<'de> Deserialize<'de>>(&self, answer: &Answer) -> Result<T, Fail> {
        serde_json::from_slice(&answer.body).map_err(|e| {
            let d = self.downstream.as_ref().map_or("?", |d| d.name());
            Fail::reply(json_error(
                StatusCode::BAD_GATEWAY,
                d,
                &format!("{d} answered malformed JSON: {e}"),
            ))
        })
    }
}

impl Handler for Service {
    fn handle(&self, io: &Io, req: Request<Bytes>) -> Reply {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        if req.method() != Method::GET {
            return json_error(
                StatusCode::METHOD_NOT_ALLOWED,
                self.name(),
                "only GET is served",
            );
        }
        match req.uri().path() {
            "/health" => return self.health(),
            "/metrics" => return json(StatusCode::OK, &self.metrics()),
            _ => {}
        }
        let budget = match budget::from_headers(req.headers()) {
            Ok(b) => b.unwrap_or(self.default_budget),
            Err(msg) => return json_error(StatusCode::BAD_REQUEST, self.name(), &msg),
        };
        let budget_ms = budget.as_millis() as u64;
        self.stats
            .last_budget_ms
            .store(budget_ms, Ordering::Relaxed);
        let Some(deadline) = io.now().checked_add(budget) else {
            return json_error(StatusCode::BAD_REQUEST, self.name(), "budget too large");
        };
        match io.timeout_until(deadline, |io| self.work(io, deadline, &req)) {
            Ok(reply) => reply,
            Err(Fail::Reply(reply)) => *reply,
            Err(Fail::Deadline) => {
                self.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                json_error(
                    StatusCode::GATEWAY_TIMEOUT,
                    self.name(),
                    &format!(
                        "deadline exceeded: the request's budget of {budget_ms} ms ran out in {}",
                        self.name()
                    ),
                )
            }
            Err(Fail::Canceled) => {
                self.stats.canceled.fetch_add(1, Ordering::Relaxed);
                // Nobody reads this: the connection is gone (nginx's "client closed request").
                json_error(
                    StatusCode::from_u16(499).expect("a valid status"),
                    self.name(),
                    "client closed the request",
                )
            }
        }
    }
}

/// A downstream's error answer, passed on: same status, body and failed-service header.
fn pass_on(answer: Answer) -> Reply {
    let mut reply = hyper::Response::new(http_body_util::Full::new(answer.body));
    *reply.status_mut() = answer.status;
    for name in [hyper::header::CONTENT_TYPE.as_str(), FAILED_SERVICE] {
        if let Some(v) = answer.headers.get(name) {
            reply.headers_mut().insert(name, v.clone());
        }
    }
    reply
}

/// Takes one from `n` if it is above zero.
fn take_one(n: &AtomicU64) -> bool {
    n.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1))
        .is_ok()
}

/// The value of `key` in a query string, as a number.
fn query_u64(query: Option<&str>, key: &str) -> Option<u64> {
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.parse().ok())
}

/// A running service: its server and its state.
#[derive(Clone)]
pub struct Running {
    /// The server (its address, and `kill`).
    pub server: Server,
    /// The service (its faults and counters).
    pub service: Arc<Service>,
}

/// Starts `role` on `addr`, calling `downstream` (its address) if it has one.
pub fn start(
    io: &Io,
    role: Role,
    addr: SocketAddr,
    downstream: Option<SocketAddr>,
    cfg: &Config,
) -> io::Result<Running> {
    let service = Arc::new(Service::new(io, role, downstream, cfg)?);
    let server = Server::start(
        io,
        role.name(),
        addr,
        service.clone(),
        service.server.clone(),
    )?;
    Ok(Running { server, service })
}

/// The three services, each on its own listener.
#[derive(Clone)]
pub struct Stack {
    /// The edge.
    pub gateway: Running,
    /// The middle.
    pub users: Running,
    /// The leaf.
    pub orders: Running,
}

/// Starts orders, users and gateway (in that order, each knowing the address of the next),
/// on `addrs` (gateway, users, orders; port 0 picks one).
pub fn start_stack(io: &Io, addrs: [SocketAddr; 3], cfg: &Config) -> io::Result<Stack> {
    let orders = start(io, Role::Orders, addrs[2], None, cfg)?;
    let users = start(io, Role::Users, addrs[1], Some(orders.server.addr()), cfg)?;
    let gateway = start(io, Role::Gateway, addrs[0], Some(users.server.addr()), cfg)?;
    Ok(Stack {
        gateway,
        users,
        orders,
    })
}
