//! The accept loop shared by the servers: one task per connection, a stop switch, counters.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use zsync::net::{TcpListener, TcpStream};
use zsync::Io;

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

/// Accepts connections until [`Control::stop`] and runs `handler` on each, in a task of its own
/// started with [`Io::concurrent`] (the handler blocks in reads for as long as the client keeps
/// the connection open, so it needs a task that is guaranteed to make progress). Where the model
/// refuses — always on Blocking, on Threaded beyond `--max-threads` — the connection is served
/// inline: the loop accepts the next connection only when this one is done (on Blocking,
/// connections are served one after another).
///
/// A handler's error ends its connection only; it is counted and logged with `--verbose`.
/// Errors of `accept` itself (out of descriptors, a connection aborted before it was accepted)
/// are logged and retried after a short pause, so the server keeps serving. Returns `Ok` after a
/// stop, or the cancellation error if the loop's task is canceled.
pub fn accept_loop<H>(
    io: &Io,
    listener: &TcpListener,
    ctl: &Arc<Control>,
    handler: Arc<H>,
) -> io::Result<()>
where
    H: Fn(&Io, TcpStream) -> io::Result<()> + Send + Sync + 'static,
{
    loop {
        let (conn, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(e) if zsync::is_canceled(&e) => return Err(e),
            Err(e) => {
                if ctl.stopped() {
                    return Ok(());
                }
                eprintln!("warning: accept failed: {e}; retrying in 10 ms");
                io.sleep(Duration::from_millis(10))?;
                continue;
            }
        };
        if ctl.stopped() {
            return Ok(());
        }
        Stats::bump(&ctl.stats.accepted);
        // The connection travels in a slot rather than in the closure itself: if `concurrent`
        // refuses, the closure is dropped, and the connection must survive to be served inline.
        let slot = Arc::new(Mutex::new(Some(conn)));
        let task_slot = slot.clone();
        let (task_ctl, task_handler) = (ctl.clone(), handler.clone());
        let started = io.concurrent(move |io| {
            let conn = task_slot.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(conn) = conn {
                serve_one(io, conn, peer, &task_ctl, &*task_handler);
            }
        });
        match started {
            // Detached: it runs until its client leaves; `zsync::run` cancels it at shutdown.
            Ok(task) => task.detach(),
            Err(_) => {
                let conn = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
                if let Some(conn) = conn {
                    Stats::bump(&ctl.stats.inline);
                    serve_one(io, conn, peer, ctl, &*handler);
                }
            }
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
