//! PostgreSQL connections for `zsync::pool`: tokio-postgres over zsync sockets.
//!
//! - [`PgManager`] opens a connection with a zsync [`TcpStream`] handed to
//!   `tokio_postgres::Config::connect_raw` (tokio-postgres needs only Tokio's I/O traits, which
//!   zsync's sockets implement with feature `tokio-io`; no Tokio runtime runs). The driver's
//!   `Connection` future, which owns the socket and multiplexes the client's requests onto it,
//!   runs as a zsync future task.
//! - [`PgConn`] is a pooled connection: the `Client`, a per-connection cache of prepared
//!   statements, and what it takes to cancel its query on the server.
//! - [`PgConn::wait`] is how colorblind code runs one of the client's futures: `io.block_on`,
//!   plus the server-side cancellation a dropped future alone does not give.
//!
//! **Why the connection tasks have a supervisor.** Canceling a zsync task cancels every task it
//! spawned. A connection is opened by whichever task first needed one; if its `Connection`
//! future were that task's child, canceling the task (say, because its query took too long)
//! would kill a connection the pool still hands out. So the manager starts one supervisor future
//! task when it is made, and every `Connection` future is sent there and spawned as *its*
//! child: connections live as long as the manager, whoever opened them.
//!
//! **Cancellation.** Dropping a tokio-postgres query future does not stop the query: the
//! request is on the wire, the server runs it to the end, and the connection discards the
//! answer. With `SELECT pg_sleep(60)` that is a minute in which the connection is no use to
//! anyone. So when the task waiting in [`PgConn::wait`] is canceled (or its deadline passes),
//! `wait` does what psql does on Ctrl-C before it returns the error, shielded from the
//! cancellation it is handling: it opens a fresh zsync socket to the server and sends the
//! connection's cancel key (`CancelToken::cancel_query_raw`), reads until the server closes that
//! socket (by then the postmaster has signaled the backend), then waits for a no-op query on the
//! connection to come back: the proof that the backend is idle again. A cancel that arrived
//! before the query started is resent; if the connection does not come back within
//! [`DRAIN_LIMIT`], it is marked broken and the pool closes it instead of handing it out.
//!
//! **After a deadline.** `io.shielded` holds back a cancellation, not a deadline: once the
//! task's `io.timeout` has passed, every wait in it fails at once, shield or not, so the cleanup
//! above cannot run there. Then `wait` (and a transaction's rollback) only notes what is
//! pending on the connection and returns; the pool's [`Manager::check`] does it, in the task of
//! the next checkout, before the connection is handed out (or discards the connection if it
//! fails). The query is canceled on the server either way; after a deadline, by the next user.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::time::Duration;
use std::{collections::HashMap, fmt};

use tokio_postgres::{CancelToken, Client, NoTls, Statement};
use zsync::net::TcpStream;
use zsync::pool::{Manager, PoolError};
use zsync::Io;

/// How long a canceled query may take to end on the server before its connection is given up.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(10);

/// How long [`PgConn::wait`] waits for the connection to come back after each cancel request
/// before it sends another.
const RESEND_AFTER: Duration = Duration::from_millis(250);

/// Everything that can go wrong talking to the database.
#[derive(Debug)]
pub enum DbError {
    /// No pooled connection became free within the acquire timeout: the pool is exhausted.
    Exhausted {
        /// The acquire timeout that passed.
        waited: Duration,
        /// The pool's size, all of it in use.
        max_size: usize,
    },
    /// The pool was closed, or the task was canceled while it waited for a connection.
    Pool(String),
    /// The server or the driver reported an error (a failed statement, a lost connection).
    Pg(tokio_postgres::Error),
    /// A socket error, or the waiting task was canceled or timed out (`zsync::is_canceled`,
    /// `zsync::is_timed_out`); a query running then was canceled on the server too.
    Io(io::Error),
}

impl DbError {
    /// Maps a failed checkout, naming the pool's size and timeout when it was exhausted.
    pub fn from_pool(e: PoolError<DbError>, waited: Duration, max_size: usize) -> DbError {
        match e {
            PoolError::Timeout => DbError::Exhausted { waited, max_size },
            PoolError::Backend(e) => e,
            PoolError::Canceled => DbError::Io(zsync::canceled()),
            other => DbError::Pool(other.to_string()),
        }
    }

    /// Whether this is [`DbError::Exhausted`].
    pub fn is_exhausted(&self) -> bool {
        matches!(self, DbError::Exhausted { .. })
    }

    /// Whether the task was canceled or timed out while it waited.
    pub fn is_interrupted(&self) -> bool {
        matches!(self, DbError::Io(e) if zsync::is_canceled(e) || zsync::is_timed_out(e))
    }
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbError::Exhausted { waited, max_size } => write!(
                f,
                "database pool exhausted: all {max_size} connections stayed in use for {waited:?} \
                 (raise the pool size or the acquire timeout, or hold connections for less time)"
            ),
            DbError::Pool(e) => write!(f, "database pool: {e}"),
            DbError::Pg(e) => write!(f, "database: {e}"),
            DbError::Io(e) => write!(f, "database I/O: {e}"),
        }
    }
}

impl std::error::Error for DbError {}

impl From<tokio_postgres::Error> for DbError {
    fn from(e: tokio_postgres::Error) -> DbError {
        DbError::Pg(e)
    }
}

impl From<io::Error> for DbError {
    fn from(e: io::Error) -> DbError {
        DbError::Io(e)
    }
}

/// How the pool checks an idle connection before handing it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Only whether the driver saw the connection close (deadpool-postgres's
    /// `RecyclingMethod::Fast`): no round trip.
    Fast,
    /// A round trip with an empty query (deadpool-postgres's `RecyclingMethod::Verified`).
    Verified,
}

/// A `Connection` future on its way to the supervisor task.
type ConnFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Opens, checks and judges PostgreSQL connections for a [`zsync::pool::Pool`].
pub struct PgManager {
    config: tokio_postgres::Config,
    addr: SocketAddr,
    check: Check,
    connect_timeout: Duration,
    /// To the supervisor task that starts every connection's `Connection` future (`None`
    /// where the model has no concurrency).
    drivers: Option<zsync::channel::Sender<ConnFuture>>,
    /// Connections opened so far (statistics).
    opened: AtomicU64,
}

impl PgManager {
    /// A manager for the server at `addr` (user `postgres`, database `postgres`, trust auth, no
    /// TLS, `search_path` set to `schema`), and its supervisor task, started through `io`.
    pub fn new(io: &Io, addr: SocketAddr, schema: &str, check: Check) -> PgManager {
        let mut config = tokio_postgres::Config::new();
        config
            .user("postgres")
            .dbname("postgres")
            .application_name(crate::sql::application_name(schema))
            .options(crate::sql::search_path_option(schema));
        let (drivers, rx) = zsync::channel::unbounded::<ConnFuture>();
        // A closure task with a promise of concurrency: a fiber on Green, a thread of its own
        // on Threaded, where it waits in `recv` without holding a pool worker.
        let drivers = match io.concurrent(move |io| {
            for driver in rx.iter() {
                start_driver(io, driver);
            }
        }) {
            Ok(supervisor) => {
                supervisor.detach();
                Some(drivers)
            }
            // Blocking: nothing can run beside the caller; `connect` starts drivers itself.
            Err(_) => None,
        };
        PgManager {
            config,
            addr,
            check,
            connect_timeout: Duration::from_secs(10),
            drivers,
            opened: AtomicU64::new(0),
        }
    }

    /// How many connections this manager has opened.
    pub fn opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }
}

impl Manager for PgManager {
    type Conn = PgConn;
    type Error = DbError;

    fn connect(&self, io: &Io) -> Result<PgConn, DbError> {
        let stream = TcpStream::connect_timeout(io, &self.addr, self.connect_timeout)?;
        stream.set_nodelay(true)?;
        let (client, connection) = io.block_on(self.config.connect_raw(stream, NoTls))??;
        let driver: ConnFuture = Box::pin(async move {
            // Ends when the client is dropped (after a clean Terminate) or the socket fails;
            // the client sees the latter as `is_closed`, which is all the pool needs.
            let _ = connection.await;
        });
        match &self.drivers {
            Some(drivers) => {
                if let Err(e) = drivers.send(driver) {
                    // The supervisor is gone (the runtime is shutting down): start it here.
                    start_driver(io, e.into_inner());
                }
            }
            None => start_driver(io, driver),
        }
        self.opened.fetch_add(1, Ordering::Relaxed);
        Ok(PgConn {
            cancel: CancelKey {
                token: client.cancel_token(),
                addr: self.addr,
            },
            client,
            statements: HashMap::new(),
            broken: AtomicBool::new(false),
            pending: AtomicU8::new(0),
        })
    }

    fn check(&self, io: &Io, conn: &mut PgConn) -> Result<(), DbError> {
        if conn.client.is_closed() {
            return Err(DbError::Pool("connection closed".into()));
        }
        conn.finish_pending(io)?;
        match self.check {
            Check::Fast => Ok(()),
            Check::Verified => conn.wait(io, conn.client.simple_query("")).map(drop),
        }
    }

    fn has_broken(&self, conn: &mut PgConn) -> bool {
        conn.broken.load(Ordering::Relaxed) || conn.client.is_closed()
    }
}

/// Starts a connection's `Connection` future as a task of the calling task (the supervisor).
///
/// On Green it is a future task (`spawn_future`), polled by the worker loops between fibers.
/// On Threaded it gets a thread of its own (`concurrent` + `block_on`), as a connection does in
/// a thread-per-connection program. As future tasks on the Threaded pool's workers, the
/// connections stalled for good in about one run in two with 32 tasks, 16 connections and 2
/// workers, every worker blocked in `block_on` for a reply (see docs/ARCHITECTURE.md, "The
/// db_pool application").
fn start_driver(io: &Io, driver: ConnFuture) {
    if io.model() == zsync::ModelKind::Threaded {
        // Refused only while the runtime shuts down: the driver is dropped with the closure,
        // its client sees the connection closed, and the pool discards it.
        if let Ok(task) = io.concurrent(move |io| io.block_on(driver).map(drop)) {
            task.detach();
        }
    } else {
        io.spawn_future(driver).detach();
    }
}

/// What canceling a connection's query takes: its key and where its server is.
struct CancelKey {
    token: CancelToken,
    addr: SocketAddr,
}

impl CancelKey {
    /// Sends the cancel request over a fresh zsync socket and waits until the server has
    /// taken it (it closes the socket once it has signaled the backend).
    fn send(&self, io: &Io) -> Result<(), DbError> {
        let stream = TcpStream::connect_timeout(io, &self.addr, Duration::from_secs(5))?;
        io.block_on(self.token.cancel_query_raw(&stream, NoTls))??;
        let mut buf = [0u8; 64];
        while io::Read::read(&mut &stream, &mut buf)? > 0 {}
        Ok(())
    }
}

/// A pooled PostgreSQL connection.
pub struct PgConn {
    /// The driver's client. Use its futures through [`PgConn::wait`].
    pub client: Client,
    statements: HashMap<&'static str, Statement>,
    cancel: CancelKey,
    /// Set when a canceled query did not end in time: the pool closes the connection.
    broken: AtomicBool,
    /// Cleanup left for the next checkout's check: [`PENDING_CANCEL`], [`PENDING_ROLLBACK`].
    pending: AtomicU8,
}

/// A query was interrupted after its task's deadline: cancel it on the server and drain.
const PENDING_CANCEL: u8 = 1;
/// A transaction was abandoned after its task's deadline: roll it back.
const PENDING_ROLLBACK: u8 = 2;

impl PgConn {
    /// Runs `query`, one of [`client`](PgConn::client)'s futures (or a transaction's), to
    /// completion from colorblind code. Cancellation point: if the task is canceled or its
    /// deadline passes, the query is canceled on the server too before the error returns (see
    /// the module docs), and the connection is fit for the next user.
    pub fn wait<T, F>(&self, io: &Io, query: F) -> Result<T, DbError>
    where
        F: Future<Output = Result<T, tokio_postgres::Error>>,
    {
        match io.block_on(query) {
            Ok(result) => Ok(result?),
            Err(interrupted) => {
                // The query future is dropped by now. Shielded: the cancellation being
                // handled must not stop the cleanup it asks for.
                io.shielded(|| {
                    if io.check_canceled().is_err() {
                        // The deadline passed: no wait can succeed here (module docs).
                        self.pending.fetch_or(PENDING_CANCEL, Ordering::Relaxed);
                    } else if !self.cancel_on_server(io) {
                        self.broken.store(true, Ordering::Relaxed);
                    }
                });
                Err(DbError::Io(interrupted))
            }
        }
    }

    /// Cancels whatever the connection's backend runs, and waits for it to be idle; `false` if
    /// it did not come back within [`DRAIN_LIMIT`].
    fn cancel_on_server(&self, io: &Io) -> bool {
        let deadline = io.now() + DRAIN_LIMIT;
        // Queued behind the canceled query: it answers once the backend is free again.
        let mut ping = pin!(self.client.simple_query(""));
        while io.now() < deadline {
            if self.cancel.send(io).is_err() {
                return false;
            }
            let wait = RESEND_AFTER.min(deadline.saturating_duration_since(io.now()));
            match io.timeout(wait, |io| io.block_on(ping.as_mut())) {
                // Answered (or failed with 57014 if the cancel met the ping itself): idle.
                Ok(Ok(_)) => return true,
                Ok(Err(_)) if self.client.is_closed() => return false,
                Ok(Err(_)) => return true,
                Err(_) => continue,
            }
        }
        false
    }

    /// The prepared statement for `sql` on this connection, prepared on first use and cached
    /// with the connection (prepared statements belong to one server session).
    pub fn prepare(&mut self, io: &Io, sql: &'static str) -> Result<Statement, DbError> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let statement = self.wait(io, self.client.prepare(sql))?;
        self.statements.insert(sql, statement.clone());
        Ok(statement)
    }

    /// Does the cleanup an interruption after a deadline left (see the module docs): called
    /// by the pool's check, in the task of the next checkout.
    fn finish_pending(&self, io: &Io) -> Result<(), DbError> {
        let pending = self.pending.swap(0, Ordering::Relaxed);
        if pending & PENDING_CANCEL != 0 && !self.cancel_on_server(io) {
            return Err(DbError::Pool("a canceled query did not end".into()));
        }
        if pending & PENDING_ROLLBACK != 0 {
            self.wait(io, self.client.batch_execute("ROLLBACK"))?;
        }
        Ok(())
    }

    /// Starts a transaction (`BEGIN`). The [`Tx`] guard commits or rolls back; dropped
    /// without either (an error, a cancellation), it rolls back before the connection can go
    /// back to the pool.
    pub fn begin<'a>(&'a self, io: &'a Io) -> Result<Tx<'a>, DbError> {
        self.wait(io, self.client.batch_execute("BEGIN"))?;
        Ok(Tx {
            conn: self,
            io,
            open: true,
        })
    }

    /// How many statements this connection has prepared.
    pub fn prepared(&self) -> usize {
        self.statements.len()
    }
}

/// An open transaction on a [`PgConn`] (tokio-postgres's own `Transaction` needs the client
/// mutably, which the cancellation in [`PgConn::wait`] cannot share).
pub struct Tx<'a> {
    conn: &'a PgConn,
    io: &'a Io,
    open: bool,
}

impl Tx<'_> {
    /// Runs a statement in the transaction: the number of rows it changed.
    pub fn execute(
        &self,
        statement: &Statement,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64, DbError> {
        self.conn
            .wait(self.io, self.conn.client.execute(statement, params))
    }

    /// Commits.
    pub fn commit(mut self) -> Result<(), DbError> {
        self.open = false;
        self.conn
            .wait(self.io, self.conn.client.batch_execute("COMMIT"))
    }

    /// Rolls back.
    pub fn rollback(mut self) -> Result<(), DbError> {
        self.open = false;
        self.conn
            .wait(self.io, self.conn.client.batch_execute("ROLLBACK"))
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if !self.open {
            return;
        }
        // Shielded: this runs while a cancellation unwinds the transaction, and a connection
        // left inside a transaction must not go back to the pool.
        let io = self.io;
        io.shielded(|| {
            if io.check_canceled().is_err() {
                // The deadline passed: the next checkout's check rolls back (module docs).
                self.conn
                    .pending
                    .fetch_or(PENDING_ROLLBACK, Ordering::Relaxed);
                return;
            }
            let rolled_back = io
                .timeout(DRAIN_LIMIT, |io| {
                    self.conn
                        .wait(io, self.conn.client.batch_execute("ROLLBACK"))
                })
                .is_ok();
            if !rolled_back {
                self.conn.broken.store(true, Ordering::Relaxed);
            }
        });
    }
}
