//! The server: the accept loop (shared with the other example servers) running a chat
//! connection per client, and a graceful shutdown.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use zsync::net::TcpListener;
use zsync::Io;

use crate::common::server::{accept_loop, Control};
use crate::conn::{self, Shared};

/// Serves `listener` until [`shutdown`] (or the task is canceled).
pub fn serve(
    io: &Io,
    listener: &TcpListener,
    shared: &Arc<Shared>,
    ctl: &Arc<Control>,
) -> io::Result<()> {
    let s = shared.clone();
    let handler = Arc::new(move |io: &Io, sock| conn::serve(io, sock, &s));
    accept_loop(io, listener, ctl, handler)
}

/// Shuts the server listening on `addr` down gracefully: every connection sends Close (1001,
/// "going away") and waits for its client's reply (at most `close_timeout`); once none is left
/// (or after `grace`), the accept loop is stopped, which cancels whatever remains. `sleep`
/// pauses the caller (`io.sleep` inside the runtime, `thread::sleep` outside). Returns the
/// connections still open when the grace period ended.
pub fn shutdown(
    shared: &Shared,
    ctl: &Control,
    addr: SocketAddr,
    grace: Duration,
    sleep: impl Fn(Duration),
) -> usize {
    shared.stop.set();
    let end = Instant::now() + grace;
    let mut left = shared.live.load(Ordering::SeqCst);
    while left > 0 && Instant::now() < end {
        sleep(Duration::from_millis(5));
        left = shared.live.load(Ordering::SeqCst);
    }
    ctl.stop(addr);
    left
}
