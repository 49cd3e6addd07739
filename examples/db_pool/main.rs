//! A bank on PostgreSQL, from colorblind code: tokio-postgres over zsync sockets behind
//! `zsync::pool`. See `examples/db_pool/README.md`.
//!
//! ```text
//! examples/db_pool/pg.sh start                  # a private server on 127.0.0.1:54329
//! cargo run --release --features tokio-io --example db_pool                  # the walkthrough
//! cargo run --release --features tokio-io --example db_pool -- --model threaded
//! cargo run --release --features tokio-io --example db_pool -- --mode bench --workload select
//! ```
//!
//! Modules, one job each:
//!
//! - `sql`: the statements and the random choices (shared with the Tokio peer).
//! - `pg`: the pool's `Manager` for PostgreSQL, the pooled connection, server-side
//!   cancellation, transactions.
//! - `bank`: the application, plain `fn(&Io)`s.
//! - `demo`: the walkthrough's steps (also asserted by `tests/db_pool.rs`).
//! - `load`: the benchmark loop.

#[path = "../common/cli.rs"]
#[allow(dead_code)]
mod cli;

// Shared with tests/db_pool.rs, which uses items the walkthrough does not.
#[allow(dead_code)]
mod bank;
mod demo;
mod load;
#[allow(dead_code)]
mod pg;
#[allow(dead_code)]
mod sql;

use std::net::SocketAddr;
use std::time::Duration;

use bank::Bank;
use cli::RuntimeOpts;
use load::Workload;
use pg::{Check, DbError};
use zsync::{Io, Model};

const USAGE: &str = "\
usage: db_pool [--mode demo|bench] [--db 127.0.0.1:54329] [--schema db_pool_demo]
               [--pool 16] [--acquire-timeout-ms 5000] [--check fast|verified]
               [--workload select|transfer] [--clients 64] [--seconds 5] [--accounts 1000]
               [--model green|threaded] [--backend io_uring|epoll|auto] [--workers N]

  --mode demo       the walkthrough: schema, concurrent transfers and a consistency check,
                    prepared statements, cancellation of a long query, pool exhaustion
  --mode bench      --clients tasks run --workload for --seconds; prints one RESULT line
  --db ADDR         the PostgreSQL server (examples/db_pool/pg.sh start runs one there)
  --check MODE      what the pool checks before handing out an idle connection: fast (has the
                    driver seen it close) or verified (a round trip)";

/// The settings from the command line.
struct Opts {
    rt: RuntimeOpts,
    bench: bool,
    db: SocketAddr,
    schema: String,
    pool: usize,
    acquire_timeout: Duration,
    check: Check,
    workload: Workload,
    clients: usize,
    seconds: f64,
    accounts: i32,
}

/// A flag's value, or the usage message and exit status 2.
fn or_exit<T>(r: Result<T, String>) -> T {
    r.unwrap_or_else(|e| cli::exit_usage(USAGE, &e))
}

fn parse() -> Opts {
    let valued = [
        cli::RUNTIME_FLAGS,
        &[
            "mode",
            "db",
            "schema",
            "pool",
            "acquire-timeout-ms",
            "check",
            "workload",
            "clients",
            "seconds",
            "accounts",
        ],
    ]
    .concat();
    let args = cli::parse_or_exit(&format!("{USAGE}\n{}", cli::RUNTIME_HELP), &valued, &[]);
    let rt = or_exit(RuntimeOpts::from_args(&args, "green"));
    if matches!(rt.model, Model::Blocking) {
        cli::exit_usage(
            USAGE,
            "--model blocking: tokio-postgres's connection is a future task, which runs inline \
             there and would never return; use green or threaded",
        );
    }
    let bench = match args.value("mode").unwrap_or("demo") {
        "demo" => false,
        "bench" => true,
        other => cli::exit_usage(USAGE, &format!("--mode {other}: expected demo or bench")),
    };
    let check = match args.value("check").unwrap_or("fast") {
        "fast" => Check::Fast,
        "verified" => Check::Verified,
        other => cli::exit_usage(
            USAGE,
            &format!("--check {other}: expected fast or verified"),
        ),
    };
    let accounts: i32 = or_exit(args.get_or("accounts", 1000));
    if accounts < 2 {
        cli::exit_usage(USAGE, "--accounts: at least 2");
    }
    Opts {
        rt,
        bench,
        db: or_exit(args.get_or("db", "127.0.0.1:54329".parse().unwrap())),
        schema: args
            .value("schema")
            .unwrap_or(if bench {
                "db_pool_bench"
            } else {
                "db_pool_demo"
            })
            .to_string(),
        pool: or_exit(args.get_or("pool", 16usize)).max(1),
        acquire_timeout: Duration::from_millis(or_exit(args.get_or("acquire-timeout-ms", 5000))),
        check,
        workload: or_exit(Workload::parse(args.value("workload").unwrap_or("select"))),
        clients: or_exit(args.get_or("clients", 64usize)).max(1),
        seconds: or_exit(args.get_or("seconds", 5.0f64)),
        accounts,
    }
}

fn main() {
    let opts = parse();
    // `kill -QUIT <pid>` prints every task and what it waits on (docs/debugging.md).
    let builder = opts
        .rt
        .builder()
        .dump_on_signal(zsync::signal::SignalKind::quit());
    let result = builder.run(|io| {
        let bank = Bank::connect(
            io,
            opts.db,
            &opts.schema,
            opts.pool,
            opts.acquire_timeout,
            opts.check,
        )
        .map_err(|e| {
            format!(
                "cannot reach PostgreSQL at {} ({e}); start one with examples/db_pool/pg.sh start",
                opts.db
            )
        })?;
        let r = if opts.bench {
            bench(io, &bank, &opts)
        } else {
            walkthrough(io, &bank, &opts)
        };
        r.map_err(|e| e.to_string())
    });
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// `--mode bench`: the workload for the given time, then one machine-readable line.
fn bench(io: &Io, bank: &Bank, opts: &Opts) -> Result<(), DbError> {
    bank.setup(io, opts.accounts, 1_000_000)?;
    let report = load::run(
        io,
        bank,
        opts.workload,
        opts.clients,
        opts.accounts,
        Duration::from_secs_f64(opts.seconds),
    )?;
    println!(
        "RESULT workload={} model={} clients={} pool={} ops={} secs={:.3} per_sec={:.1}",
        opts.workload.name(),
        io.model_name(),
        opts.clients,
        opts.pool,
        report.ops,
        report.elapsed.as_secs_f64(),
        report.per_sec()
    );
    Ok(())
}

/// `--mode demo`: every feature once, printed.
fn walkthrough(io: &Io, bank: &Bank, opts: &Opts) -> Result<(), DbError> {
    println!(
        "db_pool: PostgreSQL at {}, model {} ({}), pool of {}",
        opts.db,
        io.model_name(),
        io.backend_name(),
        opts.pool
    );
    let balance = 1000;
    bank.setup(io, opts.accounts, balance)?;
    println!(
        "schema {}: {} accounts of {balance}",
        opts.schema, opts.accounts
    );

    let (tasks, per_task) = (opts.clients.min(32), 20);
    let counts = demo::concurrent_transfers(io, bank, tasks, per_task, opts.accounts)?;
    let totals = bank.totals(io)?;
    let expected = i64::from(opts.accounts) * balance;
    println!(
        "{tasks} tasks x {per_task} transfers: {} done, {} declined; money {} (expected {expected}), \
         {} transfers recorded: {}",
        counts.done,
        counts.declined,
        totals.money,
        totals.transfers,
        if totals.money == expected && totals.transfers == counts.done { "consistent" } else { "INCONSISTENT" }
    );

    let mut conn = bank.conn(io)?;
    let a = bank::balance_on(io, &mut conn, 1)?;
    let b = bank::balance_on(io, &mut conn, 2)?;
    println!(
        "prepared statements: account 1 holds {a}, account 2 holds {b}; this connection has {} statements prepared",
        conn.prepared()
    );
    drop(conn);

    let c = demo::cancel_long_query(io, bank)?;
    println!(
        "cancel: {} backend(s) in pg_sleep(60) before, {} after; task canceled: {}; took {:?}; \
         connections opened {} -> {} (the canceled one was reused)",
        c.sleeping_before,
        c.sleeping_after,
        c.task_saw_cancel,
        c.cancel_took,
        c.opened_before,
        c.opened_after
    );

    let err = demo::exhaust(io, bank, opts.pool, Duration::from_millis(100))?;
    println!("exhaustion: {err}");

    bank.drop_schema(io)?;
    println!("status: {:?}", bank.pool().status());
    Ok(())
}
