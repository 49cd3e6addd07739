//! Conformance tests: writes to a stream socket whose peer has gone.
//!
//! Every write path of a stream socket — `write` (a ring `send` on Green io_uring), and
//! `write_vectored` — fails with `BrokenPipe` and never raises `SIGPIPE`, for TCP and Unix
//! streams alike. In the test binary `SIGPIPE` is ignored (std's runtime does that before
//! `main`), so the bodies check the error; a child process runs them again with `SIGPIPE` at its
//! default disposition (terminate), where a write without `MSG_NOSIGNAL` would kill it.

use std::io::{ErrorKind, IoSlice, Write};
use std::net::Shutdown;
use std::time::Duration;

use zsync::net::{TcpListener, TcpStream, UnixStream};
use zsync::Io;

#[allow(unused_imports)] // used by the standalone tests, which the leak check leaves out
use crate::support;

conformance! {
    // Also checks a Unix socket pair and a pipe: real descriptors, which a simulation refuses.
    writes_to_a_closed_peer_fail_with_broken_pipe,
}

/// Bound on the writes it takes a TCP writer to learn that its peer has gone.
const ATTEMPTS: usize = 2000;

/// One write of `b"ping"`, plain or vectored (two slices).
fn write_once(s: &mut impl Write, vectored: bool) -> std::io::Result<usize> {
    if vectored {
        s.write_vectored(&[IoSlice::new(b"pi"), IoSlice::new(b"ng")])
    } else {
        s.write(b"ping")
    }
}

#[track_caller]
fn assert_broken_pipe(r: std::io::Result<usize>, what: &str) {
    match r {
        Err(e) => assert_eq!(e.kind(), ErrorKind::BrokenPipe, "{what}: {e:?}"),
        Ok(n) => panic!("{what}: wrote {n} bytes to a closed peer"),
    }
}

/// Writes until the stream reports `BrokenPipe`. A TCP writer learns of its peer's close only
/// when a write draws the peer's reset: the first writes may succeed, and the one after the
/// reset fails with `ConnectionReset`; each of them is a write to a closed peer that must not
/// raise `SIGPIPE` either.
fn write_until_broken(io: &Io, s: &mut impl Write, vectored: bool, what: &str) {
    for _ in 0..ATTEMPTS {
        match write_once(s, vectored) {
            Ok(_) => io.sleep(Duration::from_millis(1)).unwrap(),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
            Err(e) if e.kind() == ErrorKind::BrokenPipe => return,
            Err(e) => panic!("{what}: {e:?}"),
        }
    }
    panic!("{what}: no BrokenPipe after {ATTEMPTS} writes to a closed peer");
}

fn writes_to_a_closed_peer_fail_with_broken_pipe(io: &Io) {
    let listener = TcpListener::bind(io, "127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    for vectored in [false, true] {
        let what = if vectored {
            "tcp write_vectored"
        } else {
            "tcp write"
        };
        let mut client = TcpStream::connect(io, addr).unwrap();
        drop(listener.accept().unwrap());
        write_until_broken(io, &mut client, vectored, what);
        // Once broken, both forms say so.
        assert_broken_pipe(write_once(&mut client, false), what);
        assert_broken_pipe(write_once(&mut client, true), what);
    }

    for vectored in [false, true] {
        let what = if vectored {
            "unix write_vectored"
        } else {
            "unix write"
        };
        let (mut a, b) = UnixStream::pair(io).unwrap();
        drop(b);
        assert_broken_pipe(write_once(&mut a, vectored), what);
        assert_broken_pipe(write_once(&mut a, !vectored), what);
    }

    // A write after this end's own `shutdown(Write)` is `EPIPE` at once, on both kinds.
    let mut client = TcpStream::connect(io, addr).unwrap();
    let _server = listener.accept().unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    assert_broken_pipe(write_once(&mut client, false), "tcp write after shutdown");
    assert_broken_pipe(
        write_once(&mut client, true),
        "tcp write_vectored after shutdown",
    );
    let (mut a, _b) = UnixStream::pair(io).unwrap();
    a.shutdown(Shutdown::Write).unwrap();
    assert_broken_pipe(write_once(&mut a, false), "unix write after shutdown");
    assert_broken_pipe(
        write_once(&mut a, true),
        "unix write_vectored after shutdown",
    );
}

standalone! {
    /// Tells [`default_sigpipe_child`] that it runs in the child process.
    const CHILD_ENV: &str = "ZSYNC_BROKEN_PIPE_CHILD";

    /// [`writes_to_a_closed_peer_fail_with_broken_pipe`] on every model with `SIGPIPE` at its
    /// default disposition: checked in a child process (this test binary re-run on the ignored
    /// child test), which a raised `SIGPIPE` would kill.
    #[test]
    fn writes_to_a_closed_peer_with_default_sigpipe_do_not_kill() {
        use std::os::unix::process::ExitStatusExt;
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "broken_pipe::default_sigpipe_child",
                "--nocapture",
                "--include-ignored",
            ])
            .env(CHILD_ENV, "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_ne!(
            out.status.signal(),
            Some(libc::SIGPIPE),
            "a write to a closed peer raised SIGPIPE:\n{stdout}\n{stderr}"
        );
        assert!(out.status.success(), "child failed:\n{stdout}\n{stderr}");
        assert!(stdout.contains("1 passed"), "the child test did not run: {stdout}");
    }

    /// Run by `writes_to_a_closed_peer_with_default_sigpipe_do_not_kill` only (it does nothing
    /// outside that child: the disposition it sets is process-wide).
    #[test]
    #[ignore = "run in a child process by writes_to_a_closed_peer_with_default_sigpipe_do_not_kill"]
    fn default_sigpipe_child() {
        if std::env::var_os(CHILD_ENV).is_none() {
            return;
        }
        // SAFETY: installs SIG_DFL: no handler code of ours runs on any thread.
        let prev = unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
        assert_ne!(prev, libc::SIG_ERR);
        for (name, builder) in support::models() {
            support::run_on(builder, name, writes_to_a_closed_peer_fail_with_broken_pipe);
        }
        // Still the default: nothing on the way changed it back to `SIG_IGN`.
        // SAFETY: as above; restores SIG_DFL right after reading it.
        let now = unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
        assert_eq!(now, libc::SIG_DFL);
    }
}
