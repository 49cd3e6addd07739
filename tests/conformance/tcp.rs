//! Conformance tests: tcp.
//!
//! Also home of the cancellation helpers the udp and unix tests share.

use std::fmt::Debug;
use std::io::{self, ErrorKind, IoSlice, IoSliceMut, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use zsync::net::{ListenOptions, TcpListener, TcpStream};
use zsync::Io;

use crate::support::{self, assert_canceled};

/// How long a blocked operation must stay blocked before the test cancels it.
const BLOCKED_FOR: Duration = Duration::from_millis(20);
/// How long a cancel may take to stop a blocked operation.
const PROMPT: Duration = Duration::from_secs(2);
/// Iterations of the cancel-right-after-spawn race.
const RACE_ITERATIONS: usize = 100;

/// On a concurrent model: runs `op` on a concurrent task, waits until it has been blocked for
/// [`BLOCKED_FOR`], cancels it and asserts it returned `Canceled` within [`PROMPT`]. On Blocking:
/// asserts the model refused and returns `false`.
pub(crate) fn cancel_blocked<T, F>(io: &Io, what: &str, op: F) -> bool
where
    T: Debug + Send + 'static,
    F: FnOnce(&Io) -> io::Result<T> + Send + 'static,
{
    let started = Arc::new(AtomicBool::new(false));
    let flag = started.clone();
    let Some(task) = support::concurrent_or_refused(io, move |io| {
        // The clock first: read after the flag, a task descheduled between the two could
        // start its clock after the cancel, and the "blocked for" check below failed.
        let t0 = crate::support::now();
        flag.store(true, Ordering::SeqCst);
        let r = op(io);
        (r, crate::support::elapsed(t0))
    }) else {
        return false;
    };
    while !started.load(Ordering::SeqCst) {
        io.sleep(Duration::from_millis(1)).unwrap();
    }
    io.sleep(BLOCKED_FOR).unwrap();
    assert!(!task.is_finished(), "{what}: the operation did not block");
    let t0 = crate::support::now();
    let (r, blocked) = task.cancel().unwrap();
    let took = crate::support::elapsed(t0);
    assert_canceled(r);
    assert!(blocked >= BLOCKED_FOR, "{what}: blocked only {blocked:?}");
    assert!(took < PROMPT, "{what}: cancel took {took:?}");
    true
}

/// On a concurrent model: [`RACE_ITERATIONS`] times, starts `op` on a concurrent task and
/// cancels it at once; every run must end with `Canceled` (and none may hang). No-op on Blocking.
pub(crate) fn cancel_race<T, F>(io: &Io, op: F)
where
    T: Debug + Send + 'static,
    F: Fn(&Io) -> io::Result<T> + Clone + Send + 'static,
{
    for _ in 0..RACE_ITERATIONS {
        let op = op.clone();
        let Some(task) = support::concurrent_or_refused(io, move |io| op(io)) else {
            return;
        };
        let t0 = crate::support::now();
        assert_canceled(task.cancel().unwrap());
        assert!(crate::support::elapsed(t0) < PROMPT);
    }
}

/// The path of every model without concurrency: a task canceled before the operation sees
/// `Canceled` from it, and the same operation inside [`Io::shielded`] still completes.
///
/// Leaves the running task canceled: call it last.
pub(crate) fn precanceled_then_shielded<T: Debug>(io: &Io, op: impl Fn() -> io::Result<T>) -> T {
    io.cancel_current();
    assert_canceled(op());
    let v = io.shielded(&op).unwrap();
    assert!(io.check_canceled().is_err(), "the cancel is still pending");
    v
}

/// Whether `fd` is in non-blocking mode.
pub(crate) fn is_nonblocking(fd: impl AsFd) -> bool {
    rustix::fs::fcntl_getfl(fd)
        .unwrap()
        .contains(rustix::fs::OFlags::NONBLOCK)
}

fn listener(io: &Io) -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind(io, "127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    (l, addr)
}

/// A connected pair: (client, server side).
pub(crate) fn pair(io: &Io) -> (TcpStream, TcpStream) {
    let (l, addr) = listener(io);
    let c = TcpStream::connect(io, addr).unwrap();
    let (s, _) = l.accept().unwrap();
    (c, s)
}

/// A connected pair with small socket buffers whose receiving end, in a concurrent task, reads
/// 64 KiB and then drops its socket with data unread (a reset): for the sender's "peer closed
/// mid-transfer" cases. Returns the sender and the reader's task. Needs concurrency.
pub(crate) fn pair_with_vanishing_reader(io: &Io) -> (TcpStream, zsync::Task<io::Result<()>>) {
    let (c, s) = pair(io);
    c.set_send_buffer_size(4096).unwrap();
    s.set_recv_buffer_size(4096).unwrap();
    let reader = io
        .concurrent(move |_| {
            let mut s = s;
            let mut buf = vec![0u8; 64 * 1024];
            s.read_exact(&mut buf)
        })
        .unwrap();
    (c, reader)
}

/// A listener whose accept queue is full (backlog 0, filled with connections), so a further
/// connect cannot complete; with the connections that fill it. `None` if this kernel completes
/// connections regardless of the backlog.
fn full_listener(io: &Io) -> Option<(TcpListener, SocketAddr, Vec<TcpStream>)> {
    let opts = ListenOptions::new().backlog(0);
    let l = TcpListener::bind_with(io, "127.0.0.1:0", &opts).unwrap();
    let addr = l.local_addr().unwrap();
    let mut held = Vec::new();
    for _ in 0..64 {
        match TcpStream::connect_timeout(io, &addr, Duration::from_millis(200)) {
            Ok(s) => held.push(s),
            Err(e) if e.kind() == ErrorKind::TimedOut => return Some((l, addr, held)),
            Err(e) => panic!("filling the backlog: {e:?}"),
        }
    }
    None
}

/// Writes into `s` (whose peer does not read) until the send path is full: a write would wait.
fn fill_send_buffer(s: &TcpStream) -> usize {
    s.set_send_buffer_size(4096).unwrap();
    s.set_write_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let chunk = [0x5a; 16 * 1024];
    let mut total = 0;
    loop {
        match (&*s).write(&chunk) {
            Ok(n) => total += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break, // the write timeout, as std
            Err(e) => panic!("filling the send buffer: {e:?}"),
        }
        assert!(total < 256 << 20, "the send buffer never filled");
    }
    s.set_write_timeout(None).unwrap();
    total
}

fn echo_round_trip_single_task(io: &Io) {
    let (l, addr) = listener(io);
    // On Blocking the connect completes against the backlog before accept is called.
    let mut client = TcpStream::connect(io, addr).unwrap();
    client.write_all(b"hello").unwrap();
    let (mut conn, peer) = l.accept().unwrap();
    assert_eq!(peer, client.local_addr().unwrap());
    let mut buf = [0; 5];
    conn.read_exact(&mut buf).unwrap();
    conn.write_all(&buf).unwrap();
    let mut reply = [0; 5];
    client.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"hello");
}

fn echo_with_concurrent_server(io: &Io) {
    let (l, addr) = listener(io);
    let server = move |_: &Io| -> io::Result<usize> {
        let mut served = 0;
        for conn in l.incoming().take(3) {
            let mut conn = conn?;
            let mut buf = Vec::new();
            conn.read_to_end(&mut buf)?;
            conn.write_all(&buf)?;
            served += 1;
        }
        Ok(served)
    };
    let Some(task) = support::concurrent_or_refused(io, server) else {
        return;
    };
    for i in 0..3u8 {
        let mut c = TcpStream::connect(io, addr).unwrap();
        let msg = vec![i; 1000 + usize::from(i) * 50_000];
        // Write and read concurrently: the echo may exceed the socket buffers.
        let writer = {
            let mut w = c.try_clone().unwrap();
            let msg = msg.clone();
            io.concurrent(move |_| -> io::Result<()> {
                w.write_all(&msg)?;
                w.shutdown(Shutdown::Write)
            })
            .unwrap()
        };
        let mut back = Vec::new();
        c.read_to_end(&mut back).unwrap();
        writer.join().unwrap().unwrap();
        assert_eq!(back, msg);
    }
    assert_eq!(task.join().unwrap().unwrap(), 3);
}

fn try_clone_shares_the_socket_and_timeouts(io: &Io) {
    let (c, mut s) = pair(io);
    c.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    let mut clone = c.try_clone().unwrap();
    assert_eq!(clone.read_timeout(), Some(Duration::from_millis(20)));
    clone.write_all(b"via clone").unwrap();
    let mut buf = [0u8; 9];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"via clone");
    // The clone's read times out like the original would.
    assert_eq!(
        clone.read(&mut buf).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
}

fn vectored_read_write(io: &Io) {
    let (mut c, mut s) = pair(io);
    let n = c
        .write_vectored(&[IoSlice::new(b"abc"), IoSlice::new(b"defg")])
        .unwrap();
    assert_eq!(n, 7);
    // Small writes on loopback arrive as one segment: one vectored read takes all of it.
    let mut a = [0; 2];
    let mut b = [0; 5];
    let n = s
        .read_vectored(&mut [IoSliceMut::new(&mut a), IoSliceMut::new(&mut b)])
        .unwrap();
    assert_eq!(n, 7);
    assert_eq!(&a, b"ab");
    assert_eq!(&b, b"cdefg");
    // Through `&TcpStream` too.
    let n = (&s)
        .write_vectored(&[IoSlice::new(b"x"), IoSlice::new(b"y")])
        .unwrap();
    assert_eq!(n, 2);
    let mut one = [0; 1];
    let mut two = [0; 1];
    let n = (&c)
        .read_vectored(&mut [IoSliceMut::new(&mut one), IoSliceMut::new(&mut two)])
        .unwrap();
    assert_eq!(n, 2);
    assert_eq!((one, two), ([b'x'], [b'y']));
}

fn shutdown_write_gives_peer_eof(io: &Io) {
    let (mut c, mut s) = pair(io);
    c.write_all(b"last").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    assert_eq!(buf, b"last");
    assert_eq!(s.read(&mut [0; 8]).unwrap(), 0);
    // The other direction still works.
    s.write_all(b"ok").unwrap();
    let mut two = [0; 2];
    c.read_exact(&mut two).unwrap();
    assert_eq!(&two, b"ok");
}

fn read_after_own_shutdown_read_is_zero(io: &Io) {
    let (c, _s) = pair(io);
    c.shutdown(Shutdown::Read).unwrap();
    assert_eq!((&c).read(&mut [0; 8]).unwrap(), 0);
}

fn peer_and_local_addr(io: &Io) {
    let (l, addr) = listener(io);
    let c = TcpStream::connect(io, addr).unwrap();
    let (s, peer) = l.accept().unwrap();
    assert_eq!(c.peer_addr().unwrap(), addr);
    assert_eq!(s.local_addr().unwrap(), addr);
    assert_eq!(s.peer_addr().unwrap(), c.local_addr().unwrap());
    assert_eq!(peer, c.local_addr().unwrap());
    assert!(c.local_addr().unwrap().ip().is_loopback());
    assert_eq!(c.io().model_name(), io.model_name());
    assert_eq!(l.io().model_name(), io.model_name());
    assert!(format!("{c:?}").contains("TcpStream"));
    assert!(format!("{l:?}").contains("TcpListener"));
}

fn socket_options_read_back(io: &Io) {
    let (c, _s) = pair(io);
    c.set_nodelay(true).unwrap();
    assert!(c.nodelay().unwrap());
    c.set_nodelay(false).unwrap();
    assert!(!c.nodelay().unwrap());

    c.set_keepalive(Some(Duration::from_secs(60))).unwrap();
    assert!(c.keepalive().unwrap());
    c.set_keepalive(None).unwrap();
    assert!(!c.keepalive().unwrap());

    c.set_linger(Some(Duration::from_secs(3))).unwrap();
    assert_eq!(c.linger().unwrap(), Some(Duration::from_secs(3)));
    c.set_linger(None).unwrap();
    assert_eq!(c.linger().unwrap(), None);

    c.set_ttl(42).unwrap();
    assert_eq!(c.ttl().unwrap(), 42);

    // The kernel may double or clamp the sizes: check they moved in the right direction.
    c.set_recv_buffer_size(256 * 1024).unwrap();
    let big_recv = c.recv_buffer_size().unwrap();
    c.set_recv_buffer_size(8 * 1024).unwrap();
    let small_recv = c.recv_buffer_size().unwrap();
    assert!(
        small_recv >= 4096 && small_recv < big_recv,
        "{small_recv} vs {big_recv}"
    );
    c.set_send_buffer_size(256 * 1024).unwrap();
    let big_send = c.send_buffer_size().unwrap();
    c.set_send_buffer_size(8 * 1024).unwrap();
    let small_send = c.send_buffer_size().unwrap();
    assert!(
        small_send >= 4096 && small_send < big_send,
        "{small_send} vs {big_send}"
    );

    let (l, _) = listener(io);
    l.set_ttl(7).unwrap();
    assert_eq!(l.ttl().unwrap(), 7);
    assert!(l.take_error().unwrap().is_none());
    assert!(c.take_error().unwrap().is_none());
}

fn timeouts_read_back_and_reject_zero(io: &Io) {
    let (c, _s) = pair(io);
    assert_eq!(c.read_timeout(), None);
    assert_eq!(c.write_timeout(), None);
    c.set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    c.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    assert_eq!(c.read_timeout(), Some(Duration::from_millis(1500)));
    assert_eq!(c.write_timeout(), Some(Duration::from_secs(2)));
    let e = c.set_read_timeout(Some(Duration::ZERO)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    let e = c.set_write_timeout(Some(Duration::ZERO)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    c.set_read_timeout(None).unwrap();
    assert_eq!(c.read_timeout(), None);
}

fn peek_leaves_data(io: &Io) {
    let (mut c, s) = pair(io);
    c.write_all(b"peek").unwrap();
    let mut buf = [0; 4];
    let mut n = 0;
    while n < 4 {
        n = s.peek(&mut buf).unwrap();
    }
    assert_eq!(&buf, b"peek");
    let mut again = [0; 4];
    (&s).read_exact(&mut again).unwrap();
    assert_eq!(&again, b"peek");
}

fn reuse_port_two_listeners(io: &Io) {
    let opts = ListenOptions::new().reuse_port(true);
    let a = TcpListener::bind_with(io, "127.0.0.1:0", &opts).unwrap();
    let addr = a.local_addr().unwrap();
    let b = TcpListener::bind_with(io, addr, &opts).unwrap();
    assert_eq!(b.local_addr().unwrap(), addr);
    // Connections reach one of the two.
    let _c = TcpStream::connect(io, addr).unwrap();
    // Without the option, the port is taken.
    let e = TcpListener::bind(io, addr).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AddrInUse);
    let _ = ListenOptions::default().reuse_address(false).only_v6(true);
}

fn bind_addr_in_use(io: &Io) {
    let (_l, addr) = listener(io);
    let e = TcpListener::bind(io, addr).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AddrInUse, "{e:?}");
}

fn connect_refused(io: &Io) {
    let (l, addr) = listener(io);
    drop(l);
    let e = TcpStream::connect(io, addr).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e:?}");
    let e = TcpStream::connect_timeout(io, &addr, Duration::from_secs(5)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e:?}");
}

fn bad_address_is_invalid_input(io: &Io) {
    let e = TcpStream::connect(io, "not an address").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e:?}");
    let e = TcpListener::bind(io, "not an address").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e:?}");
    let e = TcpStream::connect(io, "127.0.0.1:notaport").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e:?}");
    let empty: &[SocketAddr] = &[];
    let e = TcpStream::connect(io, empty).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e:?}");
}

fn unresolvable_name_is_not_found(io: &Io) {
    let e = TcpStream::connect(io, "no-such-host.invalid:80").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e:?}");
    assert!(e.to_string().contains("no-such-host.invalid"), "{e}");
    let e = TcpListener::bind(io, ("no-such-host.invalid", 0)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e:?}");
}

fn connect_by_name(io: &Io) {
    let (l, addr) = listener(io);
    let mut c = TcpStream::connect(io, format!("localhost:{}", addr.port())).unwrap();
    c.write_all(b"n").unwrap();
    let (mut s, _) = l.accept().unwrap();
    let mut b = [0; 1];
    s.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"n");
    let _c2 = TcpStream::connect(io, ("localhost", addr.port())).unwrap();
    let _c3 = TcpStream::connect(io, (addr.ip(), addr.port())).unwrap();
}

fn connect_timeout_on_full_backlog(io: &Io) {
    let Some((_l, addr, _held)) = full_listener(io) else {
        eprintln!("connect_timeout_on_full_backlog: this kernel accepts past the backlog; skipped");
        return;
    };
    let t0 = crate::support::now();
    let e = TcpStream::connect_timeout(io, &addr, Duration::from_millis(100)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TimedOut, "{e:?}");
    let took = crate::support::elapsed(t0);
    assert!(
        took >= Duration::from_millis(100) && took < PROMPT,
        "{took:?}"
    );
    // A task deadline stops a plain connect the same way.
    let e = io
        .timeout_until(crate::support::now() + Duration::from_millis(50), |_| {
            TcpStream::connect(io, addr)
        })
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TimedOut, "{e:?}");
}

/// An expired read timeout is `WouldBlock` (`EAGAIN`), as std's `SO_RCVTIMEO` on Unix.
fn read_timeout_times_out(io: &Io) {
    let (c, _s) = pair(io);
    c.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let t0 = crate::support::now();
    let e = (&c).read(&mut [0; 4]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WouldBlock, "{e:?}");
    assert!(crate::support::elapsed(t0) >= Duration::from_millis(50));
    let e = c.peek(&mut [0; 4]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WouldBlock, "{e:?}");
    let e = (&c)
        .read_vectored(&mut [IoSliceMut::new(&mut [0; 4])])
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WouldBlock, "{e:?}");
}

/// An expired write timeout is `WouldBlock` (`EAGAIN`), as std's `SO_SNDTIMEO` on Unix.
fn write_timeout_times_out(io: &Io) {
    let (c, _s) = pair(io);
    let sent = fill_send_buffer(&c);
    assert!(sent > 0);
    c.set_write_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    // The kernel may move more to the peer at any time (loopback drains the send queue into
    // the receiver's buffer): write until a wait expires, for the plain and vectored forms.
    let mut total = 0;
    let e = loop {
        match (&c).write(&[1; 1024]) {
            Ok(n) => total += n,
            Err(e) => break e,
        }
        assert!(total < 256 << 20, "the send buffer never filled");
    };
    assert_eq!(e.kind(), ErrorKind::WouldBlock, "{e:?}");
    let mut total = 0;
    let e = loop {
        match (&c).write_vectored(&[IoSlice::new(&[1; 1024])]) {
            Ok(n) => total += n,
            Err(e) => break e,
        }
        assert!(total < 256 << 20, "the send buffer never filled");
    };
    assert_eq!(e.kind(), ErrorKind::WouldBlock, "{e:?}");
}

fn std_round_trip(io: &Io) {
    let (l, addr) = listener(io);
    assert!(is_nonblocking(&l));
    let std_l = l.into_std().unwrap();
    assert!(!is_nonblocking(&std_l));
    let l = TcpListener::from_std(io, std_l).unwrap();
    assert!(is_nonblocking(&l));

    let std_c = std::net::TcpStream::connect(addr).unwrap();
    assert!(!is_nonblocking(&std_c));
    let mut c = TcpStream::from_std(io, std_c).unwrap();
    assert!(is_nonblocking(&c));
    c.write_all(b"std").unwrap();
    let (s, _) = l.accept().unwrap();
    assert!(is_nonblocking(&s));
    let mut std_s = s.into_std().unwrap();
    assert!(!is_nonblocking(&std_s));
    let mut buf = [0; 3];
    std_s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"std");

    let owned: std::os::fd::OwnedFd = c.into();
    // SAFETY: `owned` is a connected TCP socket; ownership moves into the new stream.
    let c =
        unsafe { TcpStream::from_raw_fd(io, std::os::fd::IntoRawFd::into_raw_fd(owned)).unwrap() };
    assert_eq!(c.peer_addr().unwrap(), addr);
    let _fd = std::os::fd::AsRawFd::as_raw_fd(&c);
}

fn cancel_blocked_accept(io: &Io) {
    let (l, addr) = listener(io);
    let l = Arc::new(l);
    let shared = l.clone();
    if cancel_blocked(io, "accept", move |_| shared.accept().map(|_| ())) {
        let shared = l.clone();
        cancel_race(io, move |_| shared.accept().map(|_| ()));
    }
    // The listener still works after the canceled accepts.
    let _c = TcpStream::connect(io, addr).unwrap();
    precanceled_then_shielded(io, || l.accept().map(|(_, peer)| peer));
}

fn cancel_blocked_read(io: &Io) {
    let (c, mut s) = pair(io);
    let c = Arc::new(c);
    let shared = c.clone();
    if cancel_blocked(io, "read", move |_| (&*shared).read(&mut [0; 8])) {
        let shared = c.clone();
        cancel_race(io, move |_| (&*shared).read(&mut [0; 8]));
        let shared = c.clone();
        cancel_blocked(io, "peek", move |_| shared.peek(&mut [0; 8]));
    }
    // No byte was lost to a canceled read.
    s.write_all(b"z").unwrap();
    let got = precanceled_then_shielded(io, || {
        let mut b = [0; 1];
        (&*c).read_exact(&mut b).map(|_| b)
    });
    assert_eq!(&got, b"z");
}

fn cancel_blocked_write(io: &Io) {
    let (c, s) = pair(io);
    s.set_recv_buffer_size(4096).unwrap();
    fill_send_buffer(&c);
    let c = Arc::new(c);
    let shared = c.clone();
    if cancel_blocked(io, "write", move |_| (&*shared).write(&[7; 1024])) {
        let shared = c.clone();
        cancel_race(io, move |_| (&*shared).write(&[7; 1024]));
        let shared = c.clone();
        cancel_blocked(io, "write_vectored", move |_| {
            (&*shared).write_vectored(&[IoSlice::new(&[7; 1024])])
        });
    }
    io.cancel_current();
    assert_canceled((&*c).write(&[7; 1024]));
}

fn cancel_blocked_connect(io: &Io) {
    let Some((_l, addr, _held)) = full_listener(io) else {
        eprintln!("cancel_blocked_connect: this kernel accepts past the backlog; skipped");
        return;
    };
    if cancel_blocked(io, "connect", move |io| {
        TcpStream::connect(io, addr).map(|_| ())
    }) {
        cancel_race(io, move |io| TcpStream::connect(io, addr).map(|_| ()));
    }
    let (_l2, open) = listener(io);
    precanceled_then_shielded(io, || TcpStream::connect(io, open).map(|_| ()));
}

fn precanceled_ops_report_canceled(io: &Io) {
    let (l, addr) = listener(io);
    io.cancel_current();
    assert_canceled(TcpStream::connect(io, addr));
    assert_canceled(TcpStream::connect(io, format!("localhost:{}", addr.port())));
    assert_canceled(l.accept());
    let (c, _) = io.shielded(|| {
        let c = TcpStream::connect(io, addr).unwrap();
        (c, l.accept().unwrap())
    });
    assert_canceled((&c).read(&mut [0; 1]));
    assert_canceled((&c).write(b"x"));
    assert_canceled((&c).read_vectored(&mut [IoSliceMut::new(&mut [0; 1])]));
    assert_canceled((&c).write_vectored(&[IoSlice::new(b"x")]));
    assert_canceled(c.peek(&mut [0; 1]));
    assert_eq!(io.shielded(|| (&c).write(b"x")).unwrap(), 1);
}

/// Spawned tasks blocked in `accept` on every worker must not keep the queued task that connects
/// to them from running (on Threaded it runs on a rescue worker of the pool's monitor; see
/// `tasks::spawned_waiters_blocking_every_worker_still_let_the_queued_feeder_run`). One listener
/// per acceptor: several waiters on one descriptor is a test of its own.
fn spawned_accepts_blocking_every_worker_still_let_the_queued_client_run(io: &Io) {
    if !io.supports_concurrency() {
        return; // Blocking runs `spawn` inline: the first accept would wait forever.
    }
    const ACCEPTORS: u8 = 4; // more than the suite's 2 workers
    let (started_tx, started_rx) = zsync::channel::unbounded::<()>();
    let mut addrs = Vec::new();
    let acceptors: Vec<_> = (0..ACCEPTORS)
        .map(|_| {
            let l = TcpListener::bind(io, "127.0.0.1:0").unwrap();
            addrs.push(l.local_addr().unwrap());
            let started_tx = started_tx.clone();
            io.spawn(move |_| {
                started_tx.send(()).unwrap();
                let (mut s, _) = l.accept().unwrap();
                let mut b = [0u8; 1];
                s.read_exact(&mut b).unwrap();
                b[0]
            })
        })
        .collect();
    for _ in 0..ACCEPTORS {
        started_rx.recv().unwrap();
    }
    let client = io.spawn(move |io| {
        for (i, addr) in (0..).zip(addrs) {
            TcpStream::connect(io, addr)
                .unwrap()
                .write_all(&[i])
                .unwrap();
        }
    });
    // The acceptors first: joining the client first would run it inline.
    let got: Vec<u8> = acceptors.into_iter().map(|t| t.join().unwrap()).collect();
    client.join().unwrap();
    assert_eq!(got, (0..ACCEPTORS).collect::<Vec<_>>());
}

conformance! {
    on sim:
    spawned_accepts_blocking_every_worker_still_let_the_queued_client_run,
    try_clone_shares_the_socket_and_timeouts,
    echo_round_trip_single_task,
    echo_with_concurrent_server,
    vectored_read_write,
    shutdown_write_gives_peer_eof,
    read_after_own_shutdown_read_is_zero,
    peer_and_local_addr,
    socket_options_read_back,
    timeouts_read_back_and_reject_zero,
    peek_leaves_data,
    reuse_port_two_listeners,
    bind_addr_in_use,
    connect_refused,
    bad_address_is_invalid_input,
    unresolvable_name_is_not_found,
    connect_by_name,
    connect_timeout_on_full_backlog,
    read_timeout_times_out,
    write_timeout_times_out,
    cancel_blocked_accept,
    cancel_blocked_read,
    cancel_blocked_write,
    cancel_blocked_connect,
    precanceled_ops_report_canceled,
    ;
    not on sim:
    // std's own sockets (`into_std`, `from_std`) do their I/O without the seam.
    std_round_trip,
}
