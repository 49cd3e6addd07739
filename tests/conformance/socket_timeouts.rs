//! Conformance tests: socket timeouts behave as std's. A read or write timeout
//! (`set_read_timeout`/`set_write_timeout`) that expires fails the operation with `WouldBlock`
//! (`EAGAIN`), as std's `SO_RCVTIMEO`/`SO_SNDTIMEO` do on Unix, and the socket stays usable
//! (tungstenite's handshake resumes on `WouldBlock`; `TimedOut` made it fail). The task's
//! deadline (`Io::timeout_until`, `Io::timeout`) fails it with `TimedOut`. When both apply, the
//! one that passes first gives its kind.

use std::io::{ErrorKind, Read, Write};
use std::time::Duration;

use zsync::net::{TcpListener, TcpStream, UdpSocket, UnixDatagram, UnixStream};
use zsync::Io;

conformance! {
    on sim:
    a_read_resumes_after_its_timeout_expired,
    ;
    not on sim:
    // Each also checks a Unix socket pair or a transfer: real descriptors, which a
    // simulation refuses.
    an_expired_socket_timeout_is_would_block_as_std,
    a_task_deadline_before_the_read_timeout_is_timed_out,
    a_read_timeout_before_the_task_deadline_is_would_block,
    write_timeout_and_task_deadline_each_give_their_own_kind,
    transfer_timeout_and_task_deadline_each_give_their_own_kind,
}

/// The bound that fires.
const SHORT: Duration = Duration::from_millis(30);
/// The bound that must not be the one reported (it is far away).
const LONG: Duration = Duration::from_secs(30);

#[track_caller]
fn assert_would_block<T: std::fmt::Debug>(r: std::io::Result<T>, what: &str) {
    let e = r.expect_err(what);
    assert_eq!(e.kind(), ErrorKind::WouldBlock, "{what}: {e:?}");
    assert_eq!(e.raw_os_error(), Some(libc::EAGAIN), "{what}: {e:?}");
    assert!(!zsync::is_timed_out(&e), "{what}: {e:?}");
}

#[track_caller]
fn assert_timed_out<T: std::fmt::Debug>(r: std::io::Result<T>, what: &str) {
    let e = r.expect_err(what);
    assert!(zsync::is_timed_out(&e), "{what}: {e:?}");
}

fn tcp_pair(io: &Io) -> (TcpStream, TcpStream) {
    let l = TcpListener::bind(io, "127.0.0.1:0").unwrap();
    let c = TcpStream::connect(io, l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().unwrap();
    (c, s)
}

/// Writes into `s` (whose peer does not read) until a write fails, and returns that error.
fn write_until_error(mut s: impl Write) -> std::io::Error {
    let chunk = [0x5a; 16 * 1024];
    let mut total = 0usize;
    loop {
        match s.write(&chunk) {
            Ok(n) => total += n,
            Err(e) => return e,
        }
        assert!(total < 256 << 20, "the socket never filled");
    }
}

/// Every socket type's expired read timeout gives the error std's gives: the same kind and
/// the same `EAGAIN`.
fn an_expired_socket_timeout_is_would_block_as_std(io: &Io) {
    // What std says, on a blocking std socket with `SO_RCVTIMEO` (off the worker: it blocks).
    let std_err = io
        .blocking(|| {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            let c = std::net::TcpStream::connect(l.local_addr()?)?;
            let _s = l.accept()?;
            c.set_read_timeout(Some(SHORT))?;
            Ok::<_, std::io::Error>((&c).read(&mut [0; 4]).unwrap_err())
        })
        .unwrap()
        .unwrap();
    let (c, _s) = tcp_pair(io);
    c.set_read_timeout(Some(SHORT)).unwrap();
    let ours = (&c).read(&mut [0; 4]).unwrap_err();
    assert_eq!(ours.kind(), std_err.kind(), "{ours:?} vs std's {std_err:?}");
    assert_eq!(ours.raw_os_error(), std_err.raw_os_error());
    assert_would_block(c.peek(&mut [0; 4]), "tcp peek");

    let udp = UdpSocket::bind(io, "127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(SHORT)).unwrap();
    assert_would_block(udp.recv_from(&mut [0; 4]), "udp recv_from");
    assert_would_block(udp.peek_from(&mut [0; 4]), "udp peek_from");

    let (a, _b) = UnixStream::pair(io).unwrap();
    a.set_read_timeout(Some(SHORT)).unwrap();
    assert_would_block((&a).read(&mut [0; 4]), "unix stream read");

    let (x, _y) = UnixDatagram::pair(io).unwrap();
    x.set_read_timeout(Some(SHORT)).unwrap();
    assert_would_block(x.recv(&mut [0; 4]), "unix datagram recv");
    assert_would_block(x.recv_from(&mut [0; 4]), "unix datagram recv_from");
}

/// As a resumable handshake does: a read whose timeout expired is tried again later and gets
/// the data that arrived meanwhile; nothing was lost or consumed by the expiry.
fn a_read_resumes_after_its_timeout_expired(io: &Io) {
    let (mut c, mut s) = tcp_pair(io);
    c.set_read_timeout(Some(SHORT)).unwrap();
    let mut buf = [0u8; 5];
    let mut expired = 0;
    let n = loop {
        match c.read(&mut buf) {
            Ok(n) => break n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                expired += 1;
                if expired == 1 {
                    s.write_all(b"hello").unwrap(); // the peer's turn
                }
            }
            Err(e) => panic!("read: {e:?}"),
        }
    };
    assert_eq!(&buf[..n], &b"hello"[..n]);
    assert!(expired >= 1);
}

/// A task deadline that passes before the socket's read timeout ends the read with `TimedOut`.
fn a_task_deadline_before_the_read_timeout_is_timed_out(io: &Io) {
    let (c, _s) = tcp_pair(io);
    c.set_read_timeout(Some(LONG)).unwrap();
    let t0 = crate::support::now();
    assert_timed_out(
        io.timeout_until(crate::support::now() + SHORT, |_| (&c).read(&mut [0; 4])),
        "tcp read",
    );
    assert_timed_out(io.timeout(SHORT, |_| c.peek(&mut [0; 4])), "tcp peek");
    let udp = UdpSocket::bind(io, "127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(LONG)).unwrap();
    assert_timed_out(
        io.timeout(SHORT, |_| udp.recv_from(&mut [0; 4])),
        "udp recv_from",
    );
    let (x, _y) = UnixDatagram::pair(io).unwrap();
    x.set_read_timeout(Some(LONG)).unwrap();
    assert_timed_out(io.timeout(SHORT, |_| x.recv(&mut [0; 4])), "unix recv");
    assert!(
        crate::support::elapsed(t0) < LONG,
        "a socket timeout was waited for"
    );
}

/// A socket read timeout that passes before the task's deadline ends the read with
/// `WouldBlock`, and the deadline stays in force afterwards.
fn a_read_timeout_before_the_task_deadline_is_would_block(io: &Io) {
    let (c, _s) = tcp_pair(io);
    c.set_read_timeout(Some(SHORT)).unwrap();
    let udp = UdpSocket::bind(io, "127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(SHORT)).unwrap();
    let (a, _b) = UnixStream::pair(io).unwrap();
    a.set_read_timeout(Some(SHORT)).unwrap();
    let t0 = crate::support::now();
    io.timeout_until(crate::support::now() + LONG, |_| {
        assert_would_block((&c).read(&mut [0; 4]), "tcp read");
        assert_would_block(udp.recv_from(&mut [0; 4]), "udp recv_from");
        assert_would_block((&a).read(&mut [0; 4]), "unix read");
    });
    assert!(crate::support::elapsed(t0) < LONG);
}

/// Writes: the socket's write timeout first gives `WouldBlock`, the task's deadline first gives
/// `TimedOut`.
fn write_timeout_and_task_deadline_each_give_their_own_kind(io: &Io) {
    let (a, _b) = UnixStream::pair(io).unwrap();
    a.set_write_timeout(Some(SHORT)).unwrap();
    assert_would_block(
        io.timeout_until(crate::support::now() + LONG, |_| {
            Err::<(), _>(write_until_error(&a))
        }),
        "unix: write timeout first",
    );
    a.set_write_timeout(Some(LONG)).unwrap();
    assert_timed_out(
        io.timeout(SHORT, |_| Err::<(), _>(write_until_error(&a))),
        "unix: task deadline first",
    );
    let (c, _s) = tcp_pair(io);
    c.set_send_buffer_size(4096).unwrap();
    c.set_write_timeout(Some(SHORT)).unwrap();
    assert_would_block(
        io.timeout_until(crate::support::now() + LONG, |_| {
            Err::<(), _>(write_until_error(&c))
        }),
        "tcp: write timeout first",
    );
    c.set_write_timeout(Some(LONG)).unwrap();
    assert_timed_out(
        io.timeout(SHORT, |_| Err::<(), _>(write_until_error(&c))),
        "tcp: task deadline first",
    );
}

/// Transfers honour the same rule for the timeouts of their sockets (`Descriptor::
/// read_timeout`, `write_timeout`).
fn transfer_timeout_and_task_deadline_each_give_their_own_kind(io: &Io) {
    let (src, _peer) = UnixStream::pair(io).unwrap(); // nothing ever arrives
    let (dst, _sink) = UnixStream::pair(io).unwrap();
    src.set_read_timeout(Some(SHORT)).unwrap();
    assert_would_block(
        io.timeout_until(crate::support::now() + LONG, |_| zsync::copy(&src, &dst)),
        "copy: source read timeout first",
    );
    src.set_read_timeout(Some(LONG)).unwrap();
    assert_timed_out(
        io.timeout(SHORT, |_| zsync::copy(&src, &dst)),
        "copy: task deadline first",
    );
}
