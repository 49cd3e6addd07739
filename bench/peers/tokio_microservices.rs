//! Tokio peer of `examples/microservices`: the same three services (gateway → users →
//! orders), the same routes and JSON (`examples/microservices/model.rs`), the same deadline
//! header, retry policy and circuit breaker (`budget.rs`, `retry.rs`, `breaker.rs`, included
//! as they are), written the way a Tokio user would: hyper 1.x servers through `hyper-util`'s
//! `TokioIo`, `hyper-util`'s pooled legacy `Client` for the downstream calls, the request's
//! work under `tokio::time::timeout_at`, and cancellation by dropping futures (hyper drops a
//! request's future when its client hangs up; dropping an in-flight client request closes
//! that pooled connection).
//!
//! `tokio-microservices --gateway-addr 127.0.0.1:8080 --users-addr 127.0.0.1:8081
//!  --orders-addr 127.0.0.1:8082 --workers 2 [--budget-ms 2000]`

#[path = "../../examples/microservices/breaker.rs"]
#[allow(dead_code)]
mod breaker;
#[path = "../../examples/microservices/budget.rs"]
#[allow(dead_code)]
mod budget;
#[path = "../../examples/microservices/model.rs"]
#[allow(dead_code)]
mod model;
#[path = "../../examples/microservices/retry.rs"]
#[allow(dead_code)]
mod retry;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use breaker::{Breaker, BreakerConfig, Outcome};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{HeaderMap, Request, Response, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use model::{orders_of, user, Order, Profile, UserOrders};
use retry::{Jitter, RetryPolicy};
use serde_json::json;
use tokio::net::TcpListener;
use zsync_bench::Args;

const FAILED_SERVICE: &str = "x-failed-service";

type Reply = Response<Full<Bytes>>;

fn reply_json(status: StatusCode, body: &serde_json::Value) -> Reply {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

fn json_error(status: StatusCode, service: &str, message: &str) -> Reply {
    let mut r = reply_json(status, &json!({ "error": message, "service": service }));
    if let Ok(v) = hyper::header::HeaderValue::from_str(service) {
        r.headers_mut().insert(FAILED_SERVICE, v);
    }
    r
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

enum CallError {
    CircuitOpen,
    Unavailable(String),
}

/// One downstream: a pooled client, a breaker, a retry policy.
struct Downstream {
    name: &'static str,
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
    breaker: Breaker,
    retry: RetryPolicy,
    jitter: Mutex<Jitter>,
}

impl Downstream {
    fn new(name: &'static str, addr: SocketAddr) -> Downstream {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(512)
            .build(connector);
        Downstream {
            name,
            base: format!("http://{addr}"),
            client,
            breaker: Breaker::new(BreakerConfig::default()),
            retry: RetryPolicy::default(),
            jitter: Mutex::new(Jitter::new()),
        }
    }

    /// GET with retries and the breaker; the caller's `timeout_at` bounds it all.
    async fn get(&self, deadline: Instant, path: &str) -> Result<Answer, CallError> {
        let mut attempt = 0;
        loop {
            let Some(permit) = self.breaker.admit(Instant::now()) else {
                return Err(CallError::CircuitOpen);
            };
            let remaining = budget::remaining_ms(deadline, Instant::now());
            let req = Request::get(format!("{}{path}", self.base))
                .header(budget::HEADER, remaining)
                .body(Full::new(Bytes::new()))
                .expect("a valid request");
            let tried = async {
                let resp = self.client.request(req).await.map_err(|e| e.to_string())?;
                let (parts, body) = resp.into_parts();
                let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
                Ok::<_, String>(Answer {
                    status: parts.status,
                    headers: parts.headers,
                    body,
                })
            }
            .await;
            let (outcome, retryable, result) = match tried {
                Ok(a) => {
                    let own = a.status.is_server_error()
                        && a.headers.get(FAILED_SERVICE).and_then(|v| v.to_str().ok())
                            == Some(self.name);
                    let outcome = match (own, a.status) {
                        (true, StatusCode::GATEWAY_TIMEOUT) => Outcome::Inconclusive,
                        (true, _) => Outcome::Failure,
                        (false, _) => Outcome::Success,
                    };
                    let retryable =
                        outcome == Outcome::Failure && a.status == StatusCode::SERVICE_UNAVAILABLE;
                    (outcome, retryable, Ok(a))
                }
                Err(e) => (Outcome::Failure, true, Err(CallError::Unavailable(e))),
            };
            let now = Instant::now();
            permit.finish(outcome, now);
            if !retryable {
                return result;
            }
            let backoff = {
                let mut j = self.jitter.lock().unwrap();
                self.retry.backoff(attempt, now, deadline, &mut j)
            };
            let Some(backoff) = backoff else {
                return result;
            };
            tokio::time::sleep(backoff).await;
            attempt += 1;
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Role {
    Gateway,
    Users,
    Orders,
}

struct Service {
    role: Role,
    name: &'static str,
    default_budget: Duration,
    downstream: Option<Downstream>,
}

enum Fail {
    Reply(Box<Reply>),
}

impl Fail {
    fn reply(r: Reply) -> Fail {
        Fail::Reply(Box::new(r))
    }
}

impl Service {
    async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Result<Reply, Infallible> {
        let path = req.uri().path().to_string();
        if path == "/health" || path == "/metrics" {
            let state = self
                .downstream
                .as_ref()
                .map(|d| d.breaker.snapshot().state.name());
            return Ok(reply_json(
                StatusCode::OK,
                &json!({ "service": self.name, "downstream": state }),
            ));
        }
        let budget = match budget::from_headers(req.headers()) {
            Ok(b) => b.unwrap_or(self.default_budget),
            Err(m) => return Ok(json_error(StatusCode::BAD_REQUEST, self.name, &m)),
        };
        let deadline = Instant::now() + budget;
        let query = req.uri().query().map(str::to_string);
        let work = self.work(deadline, path, query);
        Ok(
            match tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), work).await {
                Ok(Ok(r)) => r,
                Ok(Err(Fail::Reply(r))) => *r,
                Err(_) => json_error(
                    StatusCode::GATEWAY_TIMEOUT,
                    self.name,
                    &format!(
                        "deadline exceeded: the request's budget of {} ms ran out in {}",
                        budget.as_millis(),
                        self.name
                    ),
                ),
            },
        )
    }

    async fn work(
        &self,
        deadline: Instant,
        path: String,
        query: Option<String>,
    ) -> Result<Reply, Fail> {
        let bad = |status, msg: &str| Fail::reply(json_error(status, self.name, msg));
        match self.role {
            Role::Orders if path == "/orders" => {
                let id = query
                    .as_deref()
                    .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("user=")))
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or_else(|| bad(StatusCode::BAD_REQUEST, "expected /orders?user=ID"))?;
                Ok(reply_json(StatusCode::OK, &json!(orders_of(id))))
            }
            Role::Users => {
                let id = id_in(&path, "/users/")
                    .ok_or_else(|| bad(StatusCode::NOT_FOUND, "no such route"))?;
                let Some(user) = user(id) else {
                    return Err(bad(StatusCode::NOT_FOUND, &format!("no user {id}")));
                };
                let answer = self.call(deadline, &format!("/orders?user={id}")).await?;
                let orders: Vec<Order> = self.decode(&answer)?;
                let total_cents = orders.iter().map(|o| o.cents).sum();
                Ok(reply_json(
                    StatusCode::OK,
                    &json!(UserOrders {
                        user,
                        orders,
                        total_cents
                    }),
                ))
            }
            Role::Gateway => {
                let id = id_in(&path, "/api/users/")
                    .ok_or_else(|| bad(StatusCode::NOT_FOUND, "no such route"))?;
                let answer = self.call(deadline, &format!("/users/{id}")).await?;
                let u: UserOrders = self.decode(&answer)?;
                Ok(reply_json(
                    StatusCode::OK,
                    &json!(Profile {
                        order_count: u.orders.len(),
                        total_cents: u.total_cents,
                        profile: u.user,
                        trace: vec!["gateway".into(), "users".into(), "orders".into()],
                    }),
                ))
            }
            _ => Err(bad(StatusCode::NOT_FOUND, "no such route")),
        }
    }

    async fn call(&self, deadline: Instant, path: &str) -> Result<Answer, Fail> {
        let d = self
            .downstream
            .as_ref()
            .expect("gateway and users have one");
        let answer = d.get(deadline, path).await.map_err(|e| match e {
            CallError::CircuitOpen => Fail::reply(json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                d.name,
                &format!(
                    "{} is unavailable: circuit open after repeated failures, retry later",
                    d.name
                ),
            )),
            CallError::Unavailable(why) => Fail::reply(json_error(
                StatusCode::BAD_GATEWAY,
                d.name,
                &format!("{} is unavailable: {why}", d.name),
            )),
        })?;
        if answer.status != StatusCode::OK {
            let mut r = Response::new(Full::new(answer.body));
            *r.status_mut() = answer.status;
            for name in [hyper::header::CONTENT_TYPE.as_str(), FAILED_SERVICE] {
                if let Some(v) = answer.headers.get(name) {
                    r.headers_mut().insert(name, v.clone());
                }
            }
            return Err(Fail::reply(r));
        }
        Ok(answer)
    }

    fn decode<T: for<'de> serde::Deserialize<'de>>(&self, answer: &Answer) -> Result<T, Fail> {
        serde_json::from_slice(&answer.body).map_err(|e| {
            let d = self.downstream.as_ref().map_or("?", |d| d.name);
            Fail::reply(json_error(
                StatusCode::BAD_GATEWAY,
                d,
                &format!("{d} answered malformed JSON: {e}"),
            ))
        })
    }
}

fn id_in(path: &str, prefix: &str) -> Option<u64> {
    path.strip_prefix(prefix)?.parse().ok()
}

async fn serve(listener: TcpListener, svc: Arc<Service>) {
    loop {
        let Ok((s, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = s.set_nodelay(true);
        let svc = svc.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| svc.clone().handle(req));
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30))
                .serve_connection(TokioIo::new(s), service)
                .await;
        });
    }
}

fn main() {
    let args = Args::from_env();
    let workers = args.parse_or("--workers", 2usize);
    let budget = Duration::from_millis(args.parse_or("--budget-ms", 2000u64));
    let addr = |flag: &str, default: &str| -> SocketAddr {
        args.get_or(flag, default).parse().expect("an address")
    };
    let (g, u, o) = (
        addr("--gateway-addr", "127.0.0.1:8080"),
        addr("--users-addr", "127.0.0.1:8081"),
        addr("--orders-addr", "127.0.0.1:8082"),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        let mut tasks = Vec::new();
        for (role, name, at, down) in [
            (Role::Orders, "orders", o, None),
            (Role::Users, "users", u, Some(("orders", o))),
            (Role::Gateway, "gateway", g, Some(("users", u))),
        ] {
            let listener = TcpListener::bind(at).await.expect("bind");
            println!(
                "{name} listening on {} (tokio, {workers} workers)",
                listener.local_addr().unwrap()
            );
            let svc = Arc::new(Service {
                role,
                name,
                default_budget: budget,
                downstream: down.map(|(n, a)| Downstream::new(n, a)),
            });
            tasks.push(tokio::spawn(serve(listener, svc)));
        }
        for t in tasks {
            let _ = t.await;
        }
    });
}
