//! The accept loop shared by the servers: one task per connection, a stop switch, counters.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use zsync::net::{TcpListener, TcpStream};
use zsync::{Group, Io};

/// Counters a server keeps while it runs (statistics, not synchronisation).
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections accepted.
    pub accepted: Counter,
    /// Requests answered (HTTP responses written, echo reads echoed).
    pub requests: Counter,
    /// Connections that ended with an error (peer reset, timeout, malformed input…).
    pub conn_errors: Counter,
    /// Connections handled inline because the model refused a concurrent task.
    pub inline: Counter,
    /// Failed `accept` calls (out of descriptors, a connection aborted before it was accepted…).
    pub accept_errors: Counter,
}

impl Stats {
    /// Adds one to `counter`.
    pub fn bump(counter: &Counter) {
        counter.add(1);
    }

    /// Reads `counter`.
    pub fn get(counter: &Counter) -> u64 {
        counter.sum()
    }
}

/// Shards of a [`Counter`]: more than the threads that bump it at once, typically.
const SHARDS: usize = 16;

/// A statistics counter bumped from every worker thread: one relaxed atomic per shard, each on a
/// cache line of its own, and each thread bumps its own shard. A single shared atomic was 56% of
/// the HTTP handler's own CPU at 1024 connections (`perf annotate`: the `lock inc` of the
/// request counter, its cache line bouncing between the two workers on every response).
#[derive(Debug, Default)]
pub struct Counter {
    shards: [Shard; SHARDS],
}

/// One shard, alone on its cache line (128 bytes: adjacent-line prefetch pairs lines).
#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard(AtomicU64);

impl Counter {
    /// Adds `n` to the calling thread's shard.
    pub fn add(&self, n: u64) {
        self.shards[shard_of_this_thread()]
            .0
            .fetch_add(n, Ordering::Relaxed);
    }

    /// The total over every shard: exact once the bumps it should count have happened-before
    /// the call (a relaxed snapshot otherwise, as for any statistics counter).
    pub fn sum(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| s.0.load(Ordering::Relaxed))
            .sum()
    }
}

/// This thread's shard: threads take shards in turn, the first time they bump a counter.
fn shard_of_this_thread() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    std::thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    SHARD.with(|s| *s)
}

/// What the accept loop and the handlers share: the stop switch, the counters, the log level.
#[derive(Debug, Default)]
pub struct Control {
    stop: AtomicBool,
    /// The server's counters.
    pub stats: Stats,
    /// Log every connection error to stderr (`--verbose`); otherwise they are only counted.
    pub verbose: bool,
}

impl Control {
    /// A control block; `verbose` logs per-connection errors.
    pub fn new(verbose: bool) -> Arc<Control> {
        Arc::new(Control {
            verbose,
            ..Control::default()
        })
    }

    /// Asks the accept loop listening on `addr` to return: sets the switch, then connects once
    /// so that an `accept` blocked right now wakes up and sees it. Callable from any thread,
    /// inside or outside the runtime. Connections already being served are canceled when the
    /// server's `zsync::run` returns.
    pub fn stop(&self, addr: SocketAddr) {
        self.stop.store(true, Ordering::SeqCst);
        // Failure means nothing listens any more: the loop has already returned.
        let _ = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1));
    }

    /// Whether [`stop`](Self::stop) was called.
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Logs a connection-level event at "debug" level: printed only with `--verbose`.
    pub fn debug(&self, what: std::fmt::Arguments<'_>) {
        if self.verbose {
            eprintln!("debug: {what}");
        }
    }
}

/// Whether `e` reports a timeout: a deadline of `Io::timeout`/`Io::timeout_until`
/// ([`zsync::is_timed_out`]), or a socket's own read or write timeout
/// (`set_read_timeout`/`set_write_timeout`), which reports `WouldBlock` as std does on Unix (or
/// `TimedOut`, as zsync did before).
pub fn is_timeout(e: &io::Error) -> bool {
    zsync::is_timed_out(e)
        || matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        )
}

/// The pause before the next `accept` after `failures` failures in a row (out of descriptors
/// or memory): 10 ms, doubling with each failure up to 250 ms. Short enough that the server
/// takes connections again soon after descriptors are freed, long enough that it does not spin
/// on a listener whose backlog it cannot drain.
pub fn accept_backoff(failures: u32) -> Duration {
    const FIRST: Duration = Duration::from_millis(10);
    const MAX: Duration = Duration::from_millis(250);
    FIRST
        .saturating_mul(1 << failures.saturating_sub(1).min(8))
        .min(MAX)
}

/// A log of repeated warnings that prints at most one line per `period` and counts the lines it
/// holds back, for the next printed line (or a summary) to report.
#[derive(Debug)]
pub struct RateLimitedLog {
    period: Duration,
    /// When a line was last printed.
    last: Option<Instant>,
    /// Lines held back since then.
    suppressed: u64,
}

impl RateLimitedLog {
    /// A log that prints at most one line per `period`.
    pub fn new(period: Duration) -> RateLimitedLog {
        RateLimitedLog {
            period,
            last: None,
            suppressed: 0,
        }
    }

    /// Asks to print a line at `now`: `Some(n)` if it may be printed, `n` being the number of
    /// lines held back since the last printed one (the count restarts); `None` if it is held
    /// back (and counted).
    pub fn admit(&mut self, now: Instant) -> Option<u64> {
        if self
            .last
            .is_some_and(|last| now.saturating_duration_since(last) < self.period)
        {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }

    /// The lines held back since the last printed one, if any (the count restarts): for a
    /// summary when the condition that caused them ends. At most one summary follows each
    /// printed line, so the log stays within two lines per `period`.
    pub fn take_suppressed(&mut self) -> Option<u64> {
        Some(std::mem::take(&mut self.suppressed)).filter(|&n| n > 0)
    }
}

/// Accepts connections until [`Control::stop`] and runs `handler` on each, in a task of its own
/// named `conn` started with [`Group::concurrent`] (the handler blocks in reads for as long as the
/// client keeps the connection open, so it needs a task that is guaranteed to make progress).
/// Where the model refuses — always on Blocking, on Threaded beyond `--max-threads` — the
/// refusal hands the closure back and the connection is served inline: the loop accepts the
/// next connection only when this one is done (on Blocking, connections are served one after
/// another).
///
/// The connection tasks live in one [`Group`], the loop's scope: each accept reaps the tasks
/// that ended since the last one ([`Group::try_join_next`]), so the group holds only live
/// connections however long the server runs, and when the loop returns the group cancels and
/// waits for those still open. A handler that panics is counted as a connection error (the
/// panic hook and zsync's `task 'conn' (#id, …) panicked` line have reported it); the server
/// goes on.
///
/// A handler's error ends its connection only; it is counted and logged with `--verbose`.
/// Errors of `accept` itself are counted: a connection that failed before it was accepted
/// (aborted, reset) is logged with `--verbose` and the loop accepts the next at once; any other
/// error (out of descriptors — `EMFILE`, `ENFILE` —, out of memory) is logged at most once a
/// second, with the number of failures not logged, and retried after a pause that grows while
/// the failures last ([`accept_backoff`]); the first accept that works again logs how many
/// failures went unlogged. So the server keeps serving and neither spins nor floods its log.
/// Returns `Ok` after a stop, or the cancellation error if the loop's task is canceled.
pub fn accept_loop<H>(
    io: &Io,
    listener: &TcpListener,
    ctl: &Arc<Control>,
    handler: Arc<H>,
) -> io::Result<()>
where
    H: Fn(&Io, TcpStream) -> io::Result<()> + Send + Sync + 'static,
{
    let mut conns: Group<()> = Group::new(io);
    let mut warnings = RateLimitedLog::new(Duration::from_secs(1));
    // Failures in a row that need a pause.
    let mut failures = 0u32;
    loop {
        let (conn, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(e) if zsync::is_canceled(&e) => return Err(e),
            Err(e) => {
                if ctl.stopped() {
                    return Ok(());
                }
                Stats::bump(&ctl.stats.accept_errors);
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionAborted
                        | io::ErrorKind::ConnectionReset
                        | io::ErrorKind::Interrupted
                ) {
                    ctl.debug(format_args!("accept: {e}"));
                    continue;
                }
                failures = failures.saturating_add(1);
                let pause = accept_backoff(failures);
                if let Some(held_back) = warnings.admit(Instant::now()) {
                    let held_back = match held_back {
                        0 => String::new(),
                        n => format!("; {n} more failures not logged"),
                    };
                    eprintln!("warning: accept failed: {e}; retrying in {pause:?}{held_back}");
                }
                io.sleep(pause)?;
                continue;
            }
        };
        if std::mem::take(&mut failures) > 0 {
            if let Some(n) = warnings.take_suppressed() {
                eprintln!("warning: accept works again; {n} more failures were not logged");
            }
        }
        if ctl.stopped() {
            return Ok(());
        }
        Stats::bump(&ctl.stats.accepted);
        let (task_ctl, task_handler) = (ctl.clone(), handler.clone());
        let serve = move |io: &Io| serve_one(io, conn, peer, &task_ctl, &*task_handler);
        if let Err(refused) = conns.task().name("conn").concurrent(serve) {
            // Refused: the closure, connection inside, comes back to be served inline.
            Stats::bump(&ctl.stats.inline);
            (refused.into_inner())(io);
        }
        reap(&mut conns, ctl);
    }
}

/// Joins the connection tasks that have ended, counting a panicked one as a connection error.
fn reap(conns: &mut Group<()>, ctl: &Control) {
    loop {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| conns.try_join_next())) {
            Ok(Some(())) => {}
            Ok(None) => return,
            Err(_panic) => Stats::bump(&ctl.stats.conn_errors),
        }
    }
}

/// Runs the handler on one connection and records how it ended.
fn serve_one<H>(io: &Io, conn: TcpStream, peer: SocketAddr, ctl: &Control, handler: &H)
where
    H: Fn(&Io, TcpStream) -> io::Result<()>,
{
    match handler(io, conn) {
        Ok(()) => {}
        // Shutdown: the runtime cancels the handlers still running. Not an error of the peer.
        Err(e) if zsync::is_canceled(&e) => {}
        Err(e) => {
            Stats::bump(&ctl.stats.conn_errors);
            ctl.debug(format_args!("connection {peer}: {e}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limited_log_prints_one_line_per_period_and_counts_the_rest() {
        let mut log = RateLimitedLog::new(Duration::from_secs(1));
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        assert_eq!(log.admit(t0), Some(0), "the first line is printed");
        for n in 1..=99 {
            assert_eq!(log.admit(ms(n * 10)), None, "at {} ms", n * 10);
        }
        assert_eq!(
            log.admit(ms(1_000)),
            Some(99),
            "one period later, with the count"
        );
        assert_eq!(log.admit(ms(1_500)), None);
        assert_eq!(log.take_suppressed(), Some(1));
        assert_eq!(log.take_suppressed(), None, "the count restarts");
        assert_eq!(log.admit(ms(1_999)), None);
        assert_eq!(log.admit(ms(2_000)), Some(1));
        // 100 failures a second for 10 s: 10 lines.
        let mut log = RateLimitedLog::new(Duration::from_secs(1));
        let printed = (0..1_000)
            .filter(|&n| log.admit(ms(n * 10)).is_some())
            .count();
        assert_eq!(printed, 10);
    }

    #[test]
    fn accept_backoff_grows_to_a_bound() {
        let pauses: Vec<u64> = (1..=8)
            .map(|n| accept_backoff(n).as_millis() as u64)
            .collect();
        assert_eq!(pauses, [10, 20, 40, 80, 160, 250, 250, 250]);
        assert_eq!(accept_backoff(u32::MAX), Duration::from_millis(250));
        assert_eq!(accept_backoff(0), Duration::from_millis(10));
    }

    #[test]
    fn socket_and_deadline_timeouts_are_timeouts() {
        assert!(is_timeout(&zsync::timed_out()));
        assert!(is_timeout(&io::Error::from(io::ErrorKind::WouldBlock)));
        assert!(is_timeout(&io::Error::from(io::ErrorKind::TimedOut)));
        assert!(!is_timeout(&io::Error::from(
            io::ErrorKind::ConnectionReset
        )));
        assert!(!is_timeout(&zsync::canceled()));
    }
}
