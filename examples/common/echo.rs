//! The TCP echo server: every byte a client sends comes back, until the client closes.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::Duration;

use zsync::net::{TcpListener, TcpStream};
use zsync::Io;

use super::server::{accept_loop, is_timeout, Control, Stats};

/// The echo buffer per connection: one read of up to this many bytes, then one write of them.
const BUF: usize = 16 * 1024;

/// Serves one connection: reads and writes back whatever arrives, until the client closes
/// (`Ok`) or stays silent longer than `idle_timeout` (`Ok` as well: an idle client is not an
/// error). A client that stops reading what comes back is cut off when a write has waited
/// `idle_timeout` (an error: counted). Colorblind: the same code on every model (the stream
/// carries its `Io`).
pub fn handle(mut conn: TcpStream, ctl: &Control, idle_timeout: Duration) -> io::Result<()> {
    conn.set_nodelay(true)?;
    // The idle limit as the socket's read and write timeouts: each read or write gets its
    // deadline from the socket, with no task deadline to set and restore around it (and one
    // clock reading fewer).
    conn.set_read_timeout(Some(idle_timeout))?;
    conn.set_write_timeout(Some(idle_timeout))?;
    let mut buf = vec![0u8; BUF];
    loop {
        let n = match conn.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if is_timeout(&e) => return Ok(()),
            Err(e) => return Err(e),
        };
        conn.write_all(&buf[..n]).map_err(|e| {
            if is_timeout(&e) {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("client not reading: a write waited {idle_timeout:?}"),
                )
            } else {
                e
            }
        })?;
        Stats::bump(&ctl.stats.requests);
    }
}

/// Serves echo on `listener` until `ctl` is stopped.
pub fn serve(
    io: &Io,
    listener: &TcpListener,
    ctl: &Arc<Control>,
    idle_timeout: Duration,
) -> io::Result<()> {
    let handler_ctl = ctl.clone();
    accept_loop(
        io,
        listener,
        ctl,
        Arc::new(move |_: &Io, conn: TcpStream| handle(conn, &handler_ctl, idle_timeout)),
    )
}
