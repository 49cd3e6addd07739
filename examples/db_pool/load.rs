//! The benchmark workload: `clients` tasks, each in a loop for a fixed time, checking a
//! connection out of the pool per operation. The Tokio + deadpool-postgres peer
//! (`bench/peers/tokio_db_pool.rs`) runs the same loop with the same statements and the same
//! random choices.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use zsync::Io;

use crate::bank::{self, Bank, Outcome};
use crate::pg::DbError;
use crate::sql::Rng;

/// What each client does in a loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// One prepared point query per checkout.
    Select,
    /// One transfer transaction per checkout (BEGIN, two UPDATEs, an INSERT, COMMIT).
    Transfer,
}

impl Workload {
    /// `select` or `transfer`.
    pub fn parse(name: &str) -> Result<Workload, String> {
        match name {
            "select" => Ok(Workload::Select),
            "transfer" => Ok(Workload::Transfer),
            other => Err(format!("--workload {other}: expected select or transfer")),
        }
    }

    /// The name the runner reads back.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Select => "select",
            Workload::Transfer => "transfer",
        }
    }
}

/// The counts of one run.
#[derive(Debug, Clone, Copy)]
pub struct Report {
    /// Operations completed (queries, or transactions committed or declined).
    pub ops: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl Report {
    /// Operations per second.
    pub fn per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }
}

/// Runs `workload` from `clients` concurrent tasks for `duration`, over `accounts` accounts.
/// The first error of any client ends the run with that error.
pub fn run(
    io: &Io,
    bank: &Bank,
    workload: Workload,
    clients: usize,
    accounts: i32,
    duration: Duration,
) -> Result<Report, DbError> {
    let ops = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<_> = (0..clients)
        .map(|n| {
            let bank = bank.clone();
            let ops = Arc::clone(&ops);
            io.spawn(move |io| -> Result<(), DbError> {
                let mut rng = Rng::for_client(n as u64);
                let mut done = 0;
                while Instant::now() < deadline {
                    let mut conn = bank.conn(io)?;
                    match workload {
                        Workload::Select => {
                            bank::balance_on(io, &mut conn, rng.account(accounts))?;
                        }
                        Workload::Transfer => {
                            let outcome = bank::transfer_on(io, &mut conn, rng.transfer(accounts))?;
                            debug_assert!(matches!(outcome, Outcome::Done | Outcome::Declined));
                        }
                    }
                    done += 1;
                }
                ops.fetch_add(done, Ordering::Relaxed);
                Ok(())
            })
        })
        .collect();
    let mut first_error = None;
    for task in tasks {
        match task.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(e) => {
                first_error.get_or_insert(DbError::Io(e));
            }
        }
    }
    let elapsed = start.elapsed();
    match first_error {
        Some(e) => Err(e),
        None => Ok(Report {
            ops: ops.load(Ordering::Relaxed),
            elapsed,
        }),
    }
}
