//! The db_pool example against a real PostgreSQL server: tokio-postgres over zsync sockets
//! behind `zsync::pool`, on Green (Auto backend and epoll) and Threaded. The test drives the
//! example's own modules (`#[path]` includes), so it checks the code the example runs.
//!
//! The server is the one `examples/db_pool/pg.sh start` runs (127.0.0.1, port `ZSYNC_PG_PORT`,
//! default 54329). If none answers, the test starts it with pg.sh when the PostgreSQL binaries
//! are installed; without them every test prints "skipped: PostgreSQL not installed ..." and
//! passes. Each test works in a schema (and under an `application_name`) of its own, so the
//! tests run in parallel on one server without seeing each other's backends.
//!
//! Every assertion is about behaviour; durations appear only as generous watchdogs.

#[allow(dead_code)]
#[path = "../examples/db_pool/bank.rs"]
mod bank;
#[allow(dead_code)]
#[path = "../examples/db_pool/demo.rs"]
mod demo;
#[allow(dead_code)]
#[path = "../examples/db_pool/pg.rs"]
mod pg;
#[allow(dead_code)]
#[path = "../examples/db_pool/sql.rs"]
mod sql;

use std::net::{SocketAddr, TcpStream as StdTcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bank::{Bank, Outcome};
use pg::Check;
use zsync::{Backend, Builder, Io, Model};

/// The server's address, starting it with pg.sh if it does not answer; `None` (with a note on
/// stderr) if PostgreSQL is not installed.
fn server() -> Option<SocketAddr> {
    static START: Mutex<()> = Mutex::new(());
    let port: u16 = std::env::var("ZSYNC_PG_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(54329);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let answers = || StdTcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok();
    let _one_at_a_time = START.lock().unwrap_or_else(|e| e.into_inner());
    if answers() {
        return Some(addr);
    }
    if !postgres_installed() {
        eprintln!(
            "skipped: PostgreSQL not installed (no pg_ctl under /usr/lib/postgresql/*/bin or on \
             PATH; Debian: apt-get install postgresql)"
        );
        return None;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/db_pool/pg.sh");
    let out = Command::new(&script)
        .arg("start")
        .output()
        .expect("run examples/db_pool/pg.sh");
    assert!(
        out.status.success() && answers(),
        "pg.sh start failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(addr)
}

fn postgres_installed() -> bool {
    let packaged = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dirs| dirs.flatten().any(|d| d.path().join("bin/pg_ctl").exists()))
        .unwrap_or(false);
    packaged
        || std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("pg_ctl").exists()))
}

/// The models every behaviour is checked on.
fn models() -> Vec<(&'static str, Builder)> {
    vec![
        ("green", Builder::new(Model::Green).worker_threads(2)),
        (
            "green_epoll",
            Builder::new(Model::Green)
                .worker_threads(2)
                .backend(Backend::Epoll),
        ),
        ("threaded", Builder::new(Model::Threaded).worker_threads(2)),
    ]
}

/// Runs `body` on every model with a bank of `max_size` connections in a fresh schema
/// `db_pool_t_<test>_<model>`, dropped afterwards.
fn on_every_model(test: &str, max_size: usize, check: Check, body: impl Fn(&Io, &Bank)) {
    let Some(addr) = server() else { return };
    for (model, builder) in models() {
        let schema = format!("db_pool_t_{test}_{model}");
        builder.run(|io| {
            let bank = Bank::connect(io, addr, &schema, max_size, Duration::from_secs(30), check)
                .unwrap_or_else(|e| panic!("{model}: connect: {e}"));
            bank.setup(io, 10, 100)
                .unwrap_or_else(|e| panic!("{model}: setup: {e}"));
            body(io, &bank);
            bank.drop_schema(io).unwrap();
        });
    }
}

#[test]
fn concurrent_transfers_keep_the_books_consistent() {
    on_every_model("transfers", 4, Check::Fast, |io, bank| {
        // 16 tasks over 4 connections and 10 poor accounts: waits for connections, row-lock
        // conflicts between transactions, and some declined transfers.
        let counts = demo::concurrent_transfers(io, bank, 16, 10, 10).unwrap();
        assert_eq!(counts.done + counts.declined, 160);
        let totals = bank.totals(io).unwrap();
        assert_eq!(totals.money, 10 * 100, "money created or destroyed");
        assert_eq!(totals.accounts, 10);
        assert_eq!(
            totals.transfers, counts.done,
            "a declined transfer left a record"
        );
        assert!(bank.pool().status().size <= 4);
        assert_eq!(bank.idle_in_transaction(io).unwrap(), 0);
    });
}

#[test]
fn prepared_statements_are_prepared_once_per_connection() {
    on_every_model("prepared", 1, Check::Fast, |io, bank| {
        let before = bank.pool().manager().opened();
        for id in 1..=5 {
            assert_eq!(bank.balance(io, id).unwrap(), 100);
        }
        let mut conn = bank.conn(io).unwrap();
        // SEED (from setup) and BALANCE, on the pool's only connection.
        assert_eq!(conn.prepared(), 2);
        assert_eq!(bank::balance_on(io, &mut conn, 3).unwrap(), 100);
        assert_eq!(conn.prepared(), 2);
        drop(conn);
        assert_eq!(bank.pool().manager().opened(), before);
        assert_eq!(
            bank.transfer(
                io,
                sql::Transfer {
                    from: 1,
                    to: 2,
                    amount: 30
                }
            )
            .unwrap(),
            Outcome::Done
        );
        assert_eq!(bank.balance(io, 1).unwrap(), 70);
        assert_eq!(bank.balance(io, 2).unwrap(), 130);
        assert_eq!(
            bank.transfer(
                io,
                sql::Transfer {
                    from: 1,
                    to: 2,
                    amount: 71
                }
            )
            .unwrap(),
            Outcome::Declined
        );
        assert_eq!(bank.balance(io, 1).unwrap(), 70);
    });
}

#[test]
fn a_canceled_task_cancels_its_query_on_the_server() {
    on_every_model("cancel", 2, Check::Fast, |io, bank| {
        let report = demo::cancel_long_query(io, bank).unwrap();
        assert_eq!(report.sleeping_before, 1, "pg_sleep never started");
        assert!(
            report.task_saw_cancel,
            "the canceled task did not report Canceled"
        );
        // Timing-free: pg_stat_activity is read right after the task ended, and a query that
        // only the client had dropped would still be sleeping there for a minute.
        assert_eq!(
            report.sleeping_after, 0,
            "the server still runs the canceled query"
        );
        assert_eq!(
            report.opened_after, report.opened_before,
            "the canceled query's connection was not reused"
        );
        // Watchdog only: without the server-side cancel this is 60 s.
        assert!(report.cancel_took < Duration::from_secs(30), "{report:?}");
    });
}

#[test]
fn a_query_past_its_deadline_is_canceled_on_the_server() {
    on_every_model("deadline", 1, Check::Fast, |io, bank| {
        let err = io
            .timeout(Duration::from_millis(300), |io| bank.long_query(io))
            .unwrap_err();
        assert!(err.is_interrupted(), "{err}");
        // The pool's only connection answers at once: the minute-long query is gone.
        assert_eq!(bank.sleepers(io).unwrap(), 0);
        assert_eq!(bank.balance(io, 1).unwrap(), 100);
        assert_eq!(bank.pool().manager().opened(), 1);
    });
}

#[test]
fn a_canceled_transaction_rolls_back_before_its_connection_is_reused() {
    on_every_model("rollback", 2, Check::Fast, |io, bank| {
        let task = {
            let bank = bank.clone();
            io.spawn(move |io| -> Result<(), pg::DbError> {
                let mut conn = bank.conn(io)?;
                let debit = conn.prepare(io, sql::DEBIT)?;
                let tx = conn.begin(io)?;
                assert_eq!(tx.execute(&debit, &[&1i32, &50i64])?, 1);
                // Inside the transaction, a query that only a cancel ends.
                conn.wait(io, conn.client.simple_query(sql::LONG_QUERY))?;
                tx.commit()
            })
        };
        let watchdog = Instant::now() + Duration::from_secs(30);
        while bank.sleepers(io).unwrap() == 0 {
            assert!(Instant::now() < watchdog, "pg_sleep never started");
            io.sleep(Duration::from_millis(10)).unwrap();
        }
        let result = task.cancel().unwrap();
        assert!(result.unwrap_err().is_interrupted());
        assert_eq!(bank.idle_in_transaction(io).unwrap(), 0);
        assert_eq!(
            bank.balance(io, 1).unwrap(),
            100,
            "the debit was not rolled back"
        );
        // Both connections are back and fit: none was discarded, none opened anew.
        assert_eq!(bank.pool().status().discarded, 0);
        assert_eq!(bank.pool().manager().opened(), 2);
    });
}

#[test]
fn a_transaction_past_its_deadline_is_rolled_back_before_reuse() {
    on_every_model("tx_deadline", 1, Check::Fast, |io, bank| {
        let err = io
            .timeout(
                Duration::from_millis(300),
                |io| -> Result<(), pg::DbError> {
                    let mut conn = bank.conn(io)?;
                    let debit = conn.prepare(io, sql::DEBIT)?;
                    let tx = conn.begin(io)?;
                    assert_eq!(tx.execute(&debit, &[&1i32, &50i64])?, 1);
                    conn.wait(io, conn.client.simple_query(sql::LONG_QUERY))?;
                    tx.commit()
                },
            )
            .unwrap_err();
        assert!(err.is_interrupted(), "{err}");
        // The pool's only connection: its check cancels the query and rolls back first.
        assert_eq!(
            bank.balance(io, 1).unwrap(),
            100,
            "the debit was not rolled back"
        );
        assert_eq!(bank.sleepers(io).unwrap(), 0);
        assert_eq!(bank.idle_in_transaction(io).unwrap(), 0);
        assert_eq!(bank.pool().manager().opened(), 1);
    });
}

#[test]
fn an_exhausted_pool_times_out_with_a_clear_error() {
    on_every_model("exhausted", 2, Check::Fast, |io, bank| {
        let err = demo::exhaust(io, bank, 2, Duration::from_millis(50)).unwrap();
        assert!(err.is_exhausted(), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("pool exhausted") && text.contains("all 2 connections"),
            "{text}"
        );
        // Everything was given back: a checkout succeeds at once again.
        assert!(bank.conn_timeout(io, Duration::from_secs(30)).is_ok());
        assert_eq!(bank.pool().status().in_use, 0);
    });
}

#[test]
fn a_connection_the_server_ended_is_replaced() {
    on_every_model("broken", 2, Check::Verified, |io, bank| {
        let victim = bank.conn(io).unwrap();
        let pid: i32 = victim
            .wait(io, victim.client.query_one(sql::BACKEND_PID, &[]))
            .unwrap()
            .get(0);
        // Ended from another session, as an idle-connection killer or a restart would.
        {
            let other = bank.conn(io).unwrap();
            let ended: bool = other
                .wait(io, other.client.query_one(sql::TERMINATE, &[&pid]))
                .unwrap()
                .get(0);
            assert!(ended);
        }
        // Given back last, the dead connection is the first idle one a checkout tries: the
        // pool's check (a round trip) fails on it, and it is discarded.
        drop(victim);
        assert_eq!(bank.balance(io, 1).unwrap(), 100);
        assert_eq!(bank.pool().status().discarded, 1);
        assert_eq!(bank.pool().manager().opened(), 2);
    });
}
