//! Three HTTP/JSON microservices on zsync — gateway → users → orders — with deadlines passed
//! between them, retries with backoff and jitter, a circuit breaker per downstream, and
//! cancellation of downstream work when a client hangs up. hyper 1.x is the HTTP server and
//! client (through `zsync::compat::hyper`); the services' logic is plain blocking-style code
//! taking an `Io`, each request in a task of its own. See README.md next to this file.
//!
//! ```text
//! # all three in one process, each on its own listener:
//! cargo run --release --features hyper --example microservices
//! curl -s localhost:8080/api/users/7
//! curl -s -H 'x-deadline-ms: 50' localhost:8080/api/users/7
//! curl -s localhost:8081/metrics
//!
//! # or one process per service:
//! cargo run --release --features hyper --example microservices -- --service orders --addr 127.0.0.1:8082
//! cargo run --release --features hyper --example microservices -- --service users --addr 127.0.0.1:8081 --orders-addr 127.0.0.1:8082
//! cargo run --release --features hyper --example microservices -- --service gateway --addr 127.0.0.1:8080 --users-addr 127.0.0.1:8081
//! ```

#[path = "../common/cli.rs"]
#[allow(dead_code)]
mod cli;

// `Permit::is_probe` and `Server::kill` serve tests/microservices.rs, which includes these
// modules too.
#[allow(dead_code)]
mod breaker;
mod budget;
mod client;
mod model;
mod retry;
#[allow(dead_code)]
mod server;
mod services;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use cli::{Args, RuntimeOpts};
use services::{Config, Role, Running};
use zsync::Model;

const USAGE: &str = "\
usage: microservices [--service all|gateway|users|orders] [--addr HOST:PORT]
                     [--gateway-addr A] [--users-addr A] [--orders-addr A]
                     [--budget-ms 2000] [--attempts 3] [--backoff-ms 10] [--backoff-max-ms 200]
                     [--breaker-failures 5] [--breaker-open-ms 1000] [--max-connections 512]
                     [--delay-ms 0] [--fail-next 0] [runtime flags]

  --service S            run all three services (default), or only S
  --addr HOST:PORT       with --service S: where S listens (default: its --S-addr)
  --gateway-addr A       where the gateway listens (default 127.0.0.1:8080)
  --users-addr A         where users listens, or (for the gateway) where to find it (default 127.0.0.1:8081)
  --orders-addr A        where orders listens, or (for users) where to find it (default 127.0.0.1:8082)
  --budget-ms MS         budget of a request without x-deadline-ms
  --attempts N           tries in all for an idempotent downstream call (1 = no retry)
  --backoff-ms MS        backoff ceiling of the first retry (doubling, full jitter)
  --backoff-max-ms MS    largest backoff ceiling
  --breaker-failures N   consecutive failures that open a downstream's breaker
  --breaker-open-ms MS   how long an open breaker refuses calls before a probe
  --max-connections N    pooled connections per downstream
  --delay-ms MS          fault: every request of orders (or of --service S) waits this long
  --fail-next N          fault: the next N requests of orders (or of S) answer 503";

const VALUED: &[&str] = &[
    "service",
    "addr",
    "gateway-addr",
    "users-addr",
    "orders-addr",
    "budget-ms",
    "attempts",
    "backoff-ms",
    "backoff-max-ms",
    "breaker-failures",
    "breaker-open-ms",
    "max-connections",
    "delay-ms",
    "fail-next",
];

/// A flag's value, or the usage message and exit status 2.
fn or_exit<T>(r: Result<T, String>) -> T {
    r.unwrap_or_else(|e| cli::exit_usage(USAGE, &e))
}

fn addr_flag(args: &Args, name: &str, default: &str) -> SocketAddr {
    let v = args.value(name).unwrap_or(default);
    or_exit(v.parse().map_err(|e| format!("--{name} {v}: {e}")))
}

fn config(args: &Args) -> Result<Config, String> {
    let mut cfg = Config {
        default_budget: Duration::from_millis(args.get_or("budget-ms", 2000u64)?),
        ..Config::default()
    };
    let c = &mut cfg.client;
    c.max_connections = args.get_or("max-connections", c.max_connections)?;
    c.retry.max_attempts = args.get_or("attempts", c.retry.max_attempts)?.max(1);
    c.retry.base = Duration::from_millis(args.get_or("backoff-ms", 10u64)?);
    c.retry.max = Duration::from_millis(args.get_or("backoff-max-ms", 200u64)?);
    c.breaker.failure_threshold = args
        .get_or("breaker-failures", c.breaker.failure_threshold)?
        .max(1);
    c.breaker.open_for = Duration::from_millis(args.get_or("breaker-open-ms", 1000u64)?);
    Ok(cfg)
}

fn main() {
    let valued = [cli::RUNTIME_FLAGS, VALUED].concat();
    let args = cli::parse_or_exit(&format!("{USAGE}\n\n{}", cli::RUNTIME_HELP), &valued, &[]);
    let rt = or_exit(RuntimeOpts::from_args(&args, "green"));
    if matches!(rt.model, Model::Blocking) {
        cli::exit_usage(
            USAGE,
            "--model blocking: a future task runs inline there, so the first connection would \
             hold the accept loop; use green or threaded",
        );
    }
    let cfg = or_exit(config(&args));
    let gateway = addr_flag(&args, "gateway-addr", "127.0.0.1:8080");
    let users = addr_flag(&args, "users-addr", "127.0.0.1:8081");
    let orders = addr_flag(&args, "orders-addr", "127.0.0.1:8082");
    let only = match args.value("service").unwrap_or("all") {
        "all" => None,
        name => Some(Role::parse(name).unwrap_or_else(|| {
            cli::exit_usage(
                USAGE,
                &format!("--service {name}: expected all, gateway, users or orders"),
            )
        })),
    };
    let delay_ms: u64 = or_exit(args.get_or("delay-ms", 0));
    let fail_next: u64 = or_exit(args.get_or("fail-next", 0));
    let result = rt.builder().run(|io| -> io::Result<()> {
        let running: Vec<Running> = match only {
            None => {
                let s = services::start_stack(io, [gateway, users, orders], &cfg)?;
                vec![s.gateway, s.users, s.orders]
            }
            Some(role) => {
                let (listen, downstream) = match role {
                    Role::Gateway => (gateway, Some(users)),
                    Role::Users => (users, Some(orders)),
                    Role::Orders => (orders, None),
                };
                let listen = args
                    .value("addr")
                    .map_or(listen, |_| addr_flag(&args, "addr", ""));
                vec![services::start(io, role, listen, downstream, &cfg)?]
            }
        };
        for r in &running {
            let faulty = only.is_some() || r.service.name() == "orders";
            if faulty {
                r.service.faults.delay_ms.store(delay_ms, Ordering::Relaxed);
                r.service
                    .faults
                    .fail_next
                    .store(fail_next, Ordering::Relaxed);
            }
            let calls = r
                .service
                .downstream()
                .map(|d| format!(", calls {} at {}", d.name(), d.addr()))
                .unwrap_or_default();
            println!(
                "{} listening on {}{calls} (model {}, backend {}, {} workers)",
                r.service.name(),
                r.server.addr(),
                io.model_name(),
                io.backend_name(),
                rt.workers,
            );
        }
        loop {
            io.sleep(Duration::from_secs(3600))?;
        }
    });
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
