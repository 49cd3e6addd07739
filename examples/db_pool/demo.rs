//! The walkthrough's steps, each a colorblind function the example prints and
//! `tests/db_pool.rs` asserts: concurrent transfers, cancellation of a long query, and pool
//! exhaustion.

use std::time::{Duration, Instant};

use zsync::Io;

use crate::bank::{Bank, Outcome};
use crate::pg::DbError;
use crate::sql::Rng;

/// What [`concurrent_transfers`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransferCounts {
    /// Transfers committed.
    pub done: i64,
    /// Transfers declined (the source account held too little).
    pub declined: i64,
}

/// Runs `tasks` concurrent tasks, each making `per_task` random transfers among `accounts`
/// accounts, and counts the outcomes.
pub fn concurrent_transfers(
    io: &Io,
    bank: &Bank,
    tasks: usize,
    per_task: usize,
    accounts: i32,
) -> Result<TransferCounts, DbError> {
    let handles: Vec<_> = (0..tasks)
        .map(|n| {
            let bank = bank.clone();
            io.spawn(move |io| -> Result<TransferCounts, DbError> {
                let mut rng = Rng::for_client(1000 + n as u64);
                let mut counts = TransferCounts::default();
                for _ in 0..per_task {
                    match bank.transfer(io, rng.transfer(accounts))? {
                        Outcome::Done => counts.done += 1,
                        Outcome::Declined => counts.declined += 1,
                    }
                }
                Ok(counts)
            })
        })
        .collect();
    let mut total = TransferCounts::default();
    for h in handles {
        let counts = h.join()??;
        total.done += counts.done;
        total.declined += counts.declined;
    }
    Ok(total)
}

/// What [`cancel_long_query`] observed.
#[derive(Debug, Clone, Copy)]
pub struct CancelReport {
    /// Backends running `pg_sleep` once the query had started (1).
    pub sleeping_before: i64,
    /// Backends running `pg_sleep` right after the task was canceled (0: the server stopped
    /// the query, not just the client).
    pub sleeping_after: i64,
    /// Whether the canceled task's result said it was canceled.
    pub task_saw_cancel: bool,
    /// Connections the pool opened in all (unchanged by the cancellation: the connection of
    /// the canceled query was reused).
    pub opened_before: u64,
    /// The same, after another query ran on the pool.
    pub opened_after: u64,
    /// From the cancel to the end of the canceled task.
    pub cancel_took: Duration,
}

/// Starts `SELECT pg_sleep(60)` in a task, waits until `pg_stat_activity` shows it running,
/// cancels the task, and looks again.
pub fn cancel_long_query(io: &Io, bank: &Bank) -> Result<CancelReport, DbError> {
    let sleeper = {
        let bank = bank.clone();
        io.spawn(move |io| bank.long_query(io))
    };
    // Until the server runs it (a cancel that arrives before the query starts has nothing to
    // cancel; `PgConn::wait` resends it, but the demo wants to see it running first).
    let watchdog = Instant::now() + Duration::from_secs(30);
    let sleeping_before = loop {
        let n = bank.sleepers(io)?;
        if n > 0 || Instant::now() > watchdog {
            break n;
        }
        io.sleep(Duration::from_millis(10))?;
    };
    let opened_before = bank.pool().manager().opened();
    let started = Instant::now();
    let result = sleeper.cancel()?;
    let cancel_took = started.elapsed();
    let task_saw_cancel = matches!(&result, Err(e) if e.is_interrupted());
    let sleeping_after = bank.sleepers(io)?;
    // The canceled query's connection is idle in the pool again: the next checkouts take it
    // or the one `sleepers` used, and open nothing.
    bank.balance(io, 1)?;
    Ok(CancelReport {
        sleeping_before,
        sleeping_after,
        task_saw_cancel,
        opened_before,
        opened_after: bank.pool().manager().opened(),
        cancel_took,
    })
}

/// Checks out every connection of the pool and asks for one more with a short timeout: the
/// error an application sees when its pool is exhausted.
pub fn exhaust(io: &Io, bank: &Bank, max_size: usize, wait: Duration) -> Result<DbError, DbError> {
    let held: Vec<_> = (0..max_size)
        .map(|_| bank.conn(io))
        .collect::<Result<_, _>>()?;
    let err = match bank.conn_timeout(io, wait) {
        Ok(_) => DbError::Pool("a connection was free beyond max_size".into()),
        Err(e) => e,
    };
    drop(held);
    Ok(err)
}
