//! The application: a bank whose accounts live in PostgreSQL, written as plain colorblind
//! functions taking `&Io`. Every call checks a connection out of the pool, uses it, and gives it
//! back when its guard drops.

use std::net::SocketAddr;
use std::time::Duration;

use zsync::pool::{Pool, Pooled};
use zsync::Io;

use crate::pg::{Check, DbError, PgConn, PgManager};
use crate::sql::{self, Transfer};

/// The bank's database: a pool of PostgreSQL connections and its settings.
#[derive(Clone)]
pub struct Bank {
    pool: Pool<PgManager>,
    schema: String,
    acquire_timeout: Duration,
    max_size: usize,
}

/// What [`Bank::transfer`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The money moved and the transfer was recorded.
    Done,
    /// The source account held too little: nothing changed (the transaction rolled back).
    Declined,
}

/// The result of the consistency check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    /// All the money in all accounts.
    pub money: i64,
    /// Number of accounts.
    pub accounts: i64,
    /// Number of transfers recorded.
    pub transfers: i64,
}

impl Bank {
    /// A pool of at most `max_size` connections to the server at `addr`, working in `schema`;
    /// a checkout waits at most `acquire_timeout`.
    pub fn connect(
        io: &Io,
        addr: SocketAddr,
        schema: &str,
        max_size: usize,
        acquire_timeout: Duration,
        check: Check,
    ) -> Result<Bank, DbError> {
        let manager = PgManager::new(io, addr, schema, check);
        let pool = Pool::builder(manager)
            .max_size(max_size)
            .acquire_timeout(acquire_timeout)
            .build(io)
            .map_err(|e| DbError::from_pool(e, acquire_timeout, max_size))?;
        Ok(Bank {
            pool,
            schema: schema.to_string(),
            acquire_timeout,
            max_size,
        })
    }

    /// The pool (for its status, and for the examples that hold connections themselves).
    pub fn pool(&self) -> &Pool<PgManager> {
        &self.pool
    }

    /// Checks a connection out, waiting at most the acquire timeout; an exhausted pool is
    /// [`DbError::Exhausted`].
    pub fn conn(&self, io: &Io) -> Result<Pooled<PgManager>, DbError> {
        self.pool
            .get(io)
            .map_err(|e| DbError::from_pool(e, self.acquire_timeout, self.max_size))
    }

    /// [`conn`](Bank::conn) with a timeout of this call's own.
    pub fn conn_timeout(&self, io: &Io, timeout: Duration) -> Result<Pooled<PgManager>, DbError> {
        self.pool
            .get_timeout(io, Some(timeout))
            .map_err(|e| DbError::from_pool(e, timeout, self.max_size))
    }

    /// Creates the schema and tables afresh and opens `accounts` accounts holding `balance`
    /// each.
    pub fn setup(&self, io: &Io, accounts: i32, balance: i64) -> Result<(), DbError> {
        let mut conn = self.conn(io)?;
        let ddl = sql::for_schema(sql::SETUP, &self.schema);
        conn.wait(io, conn.client.batch_execute(&ddl))?;
        let seed = conn.prepare(io, sql::SEED)?;
        conn.wait(io, conn.client.execute(&seed, &[&accounts, &balance]))?;
        Ok(())
    }

    /// Drops the schema and everything in it.
    pub fn drop_schema(&self, io: &Io) -> Result<(), DbError> {
        let conn = self.conn(io)?;
        let ddl = sql::for_schema(sql::DROP_SCHEMA, &self.schema);
        conn.wait(io, conn.client.batch_execute(&ddl))
    }

    /// One account's balance, through a prepared statement.
    pub fn balance(&self, io: &Io, account: i32) -> Result<i64, DbError> {
        let mut conn = self.conn(io)?;
        balance_on(io, &mut conn, account)
    }

    /// Moves money in one transaction: debit and credit (rows locked in id order, so
    /// concurrent transfers never deadlock), and a record of the transfer. A source account
    /// without the money declines the transfer and changes nothing. Canceled midway, the
    /// transaction rolls back and the server's statement is canceled.
    pub fn transfer(&self, io: &Io, t: Transfer) -> Result<Outcome, DbError> {
        let mut conn = self.conn(io)?;
        transfer_on(io, &mut conn, t)
    }

    /// The consistency check's figures, read in one statement (one snapshot).
    pub fn totals(&self, io: &Io) -> Result<Totals, DbError> {
        let conn = self.conn(io)?;
        let row = conn.wait(io, conn.client.query_one(sql::TOTALS, &[]))?;
        Ok(Totals {
            money: row.get(0),
            accounts: row.get(1),
            transfers: row.get(2),
        })
    }

    /// Runs the minute-long `SELECT pg_sleep(60)` on a pooled connection: it ends only if the
    /// task is canceled (then canceled on the server as well, see `PgConn::wait`).
    pub fn long_query(&self, io: &Io) -> Result<(), DbError> {
        let conn = self.conn(io)?;
        conn.wait(io, conn.client.simple_query(sql::LONG_QUERY))
            .map(drop)
    }

    /// How many of this bank's backends run `pg_sleep` now, as `pg_stat_activity` shows them.
    pub fn sleepers(&self, io: &Io) -> Result<i64, DbError> {
        self.count(io, sql::SLEEPERS)
    }

    /// How many of this bank's backends sit idle inside a transaction.
    pub fn idle_in_transaction(&self, io: &Io) -> Result<i64, DbError> {
        self.count(io, sql::IDLE_IN_TRANSACTION)
    }

    /// A `SELECT count(*) ...` with no parameters.
    fn count(&self, io: &Io, query: &str) -> Result<i64, DbError> {
        let conn = self.conn(io)?;
        let row = conn.wait(io, conn.client.query_one(query, &[]))?;
        Ok(row.get(0))
    }
}

/// [`Bank::balance`] on a connection the caller holds.
pub fn balance_on(io: &Io, conn: &mut PgConn, account: i32) -> Result<i64, DbError> {
    let statement = conn.prepare(io, sql::BALANCE)?;
    let row = conn.wait(io, conn.client.query_one(&statement, &[&account]))?;
    Ok(row.get(0))
}

/// [`Bank::transfer`] on a connection the caller holds.
pub fn transfer_on(io: &Io, conn: &mut PgConn, t: Transfer) -> Result<Outcome, DbError> {
    // Statements are prepared (or found in the connection's cache) before the transaction:
    // the cache needs the connection mutably, the transaction borrows it.
    let debit = conn.prepare(io, sql::DEBIT)?;
    let credit = conn.prepare(io, sql::CREDIT)?;
    let record = conn.prepare(io, sql::RECORD)?;
    let tx = conn.begin(io)?;
    for (account, is_debit) in t.lock_order() {
        if is_debit {
            if tx.execute(&debit, &[&account, &t.amount])? == 0 {
                tx.rollback()?;
                return Ok(Outcome::Declined);
            }
        } else {
            tx.execute(&credit, &[&account, &t.amount])?;
        }
    }
    tx.execute(&record, &[&t.from, &t.to, &t.amount])?;
    tx.commit()?;
    Ok(Outcome::Done)
}
