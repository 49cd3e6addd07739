//! Conformance tests: unix.

use std::io::{self, ErrorKind, IoSlice, IoSliceMut, Read, Write};
use std::net::Shutdown;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use zsync::net::{UnixDatagram, UnixListener, UnixStream};
use zsync::Io;

use crate::support::{self, assert_canceled, TempDir};
use crate::tcp::{cancel_blocked, cancel_race, is_nonblocking, precanceled_then_shielded};

fn listener(io: &Io) -> (TempDir, PathBuf, UnixListener) {
    let dir = TempDir::new("unix");
    let path = dir.path().join("sock");
    let l = UnixListener::bind(io, &path).unwrap();
    (dir, path, l)
}

/// A connected pair through a listener: (client, server side).
fn connected(io: &Io) -> (TempDir, UnixStream, UnixStream) {
    let (dir, path, l) = listener(io);
    let c = UnixStream::connect(io, &path).unwrap();
    let (s, _) = l.accept().unwrap();
    (dir, c, s)
}

/// A listener with backlog 0 whose queue is full, so a further connect cannot complete; with
/// the connections that fill it. `None` if this kernel completes connections regardless.
fn full_listener(io: &Io) -> Option<(TempDir, PathBuf, UnixListener, Vec<UnixStream>)> {
    let dir = TempDir::new("unix-full");
    let path = dir.path().join("sock");
    let sock = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None).unwrap();
    sock.bind(&socket2::SockAddr::unix(&path).unwrap()).unwrap();
    sock.listen(0).unwrap();
    let std_l = std::os::unix::net::UnixListener::from(OwnedFd::from(sock));
    let l = UnixListener::from_std(io, std_l).unwrap();
    let mut held = Vec::new();
    for _ in 0..64 {
        let deadline = crate::support::now() + Duration::from_millis(100);
        match io.timeout_until(deadline, |_| UnixStream::connect(io, &path)) {
            Ok(s) => held.push(s),
            Err(e) if e.kind() == ErrorKind::TimedOut => return Some((dir, path, l, held)),
            Err(e) => panic!("filling the backlog: {e:?}"),
        }
    }
    None
}

/// Writes into `s` (whose peer does not read) until a write would wait.
fn fill_stream(s: &UnixStream) {
    s.set_write_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let chunk = [0x5a; 16 * 1024];
    let mut total = 0usize;
    loop {
        match (&*s).write(&chunk) {
            Ok(n) => total += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break, // the write timeout, as std
            Err(e) => panic!("filling the stream: {e:?}"),
        }
        assert!(total < 256 << 20, "the stream never filled");
    }
    s.set_write_timeout(None).unwrap();
}

fn stream_echo_round_trip(io: &Io) {
    let (_dir, path, l) = listener(io);
    // On Blocking the connect completes against the backlog before accept is called.
    let mut c = UnixStream::connect(io, &path).unwrap();
    c.write_all(b"hello").unwrap();
    let (mut s, _) = l.accept().unwrap();
    let mut buf = [0; 5];
    s.read_exact(&mut buf).unwrap();
    s.write_all(&buf).unwrap();
    let mut reply = [0; 5];
    c.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"hello");
    assert_eq!(c.io().model_name(), io.model_name());
    assert_eq!(l.io().model_name(), io.model_name());
    assert!(format!("{c:?} {l:?}").contains("UnixStream"));
}

fn stream_with_concurrent_server(io: &Io) {
    let (_dir, path, l) = listener(io);
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
        let c = UnixStream::connect(io, &path).unwrap();
        let msg = vec![i; 100 + usize::from(i) * 10_000];
        (&c).write_all(&msg).unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let mut back = Vec::new();
        (&c).read_to_end(&mut back).unwrap();
        assert_eq!(back, msg);
    }
    assert_eq!(task.join().unwrap().unwrap(), 3);
}

fn stream_pair_vectored(io: &Io) {
    let (mut a, mut b) = UnixStream::pair(io).unwrap();
    let n = a
        .write_vectored(&[IoSlice::new(b"abc"), IoSlice::new(b"defg")])
        .unwrap();
    assert_eq!(n, 7);
    let mut x = [0; 2];
    let mut y = [0; 5];
    let n = b
        .read_vectored(&mut [IoSliceMut::new(&mut x), IoSliceMut::new(&mut y)])
        .unwrap();
    assert_eq!(n, 7);
    assert_eq!((&x, &y), (b"ab", b"cdefg"));
    let n = (&b)
        .write_vectored(&[IoSlice::new(b"1"), IoSlice::new(b"2")])
        .unwrap();
    assert_eq!(n, 2);
    let mut p = [0; 1];
    let mut q = [0; 1];
    let n = (&a)
        .read_vectored(&mut [IoSliceMut::new(&mut p), IoSliceMut::new(&mut q)])
        .unwrap();
    assert_eq!((n, p, q), (2, [b'1'], [b'2']));
    a.flush().unwrap();
    (&a).flush().unwrap();
}

fn stream_shutdown(io: &Io) {
    let (a, mut b) = UnixStream::pair(io).unwrap();
    (&a).write_all(b"last").unwrap();
    a.shutdown(Shutdown::Write).unwrap();
    let mut buf = Vec::new();
    b.read_to_end(&mut buf).unwrap();
    assert_eq!(buf, b"last");
    assert_eq!(b.read(&mut [0; 4]).unwrap(), 0);
    // Writing to a closed peer: BrokenPipe, not SIGPIPE.
    let (w, gone) = UnixStream::pair(io).unwrap();
    drop(gone);
    let e = (&w).write(b"gone").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BrokenPipe, "{e:?}");
    // Own read half shut: reads return 0 at once.
    let (c, _d) = UnixStream::pair(io).unwrap();
    c.shutdown(Shutdown::Read).unwrap();
    assert_eq!((&c).read(&mut [0; 4]).unwrap(), 0);
}

fn stream_addresses(io: &Io) {
    let (_dir, path, l) = listener(io);
    assert_eq!(l.local_addr().unwrap().as_pathname(), Some(path.as_path()));
    let c = UnixStream::connect(io, &path).unwrap();
    let (s, peer) = l.accept().unwrap();
    assert!(peer.is_unnamed());
    assert_eq!(c.peer_addr().unwrap().as_pathname(), Some(path.as_path()));
    assert!(c.local_addr().unwrap().is_unnamed());
    assert_eq!(s.local_addr().unwrap().as_pathname(), Some(path.as_path()));
    assert!(s.peer_addr().unwrap().is_unnamed());
    assert!(l.take_error().unwrap().is_none());
    assert!(c.take_error().unwrap().is_none());
}

fn stream_errors(io: &Io) {
    let (dir, path, l) = listener(io);
    let e = UnixListener::bind(io, &path).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AddrInUse, "{e:?}");
    let e = UnixStream::connect(io, dir.path().join("missing")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e:?}");
    let e = UnixListener::bind(io, dir.path().join("no-dir").join("sock")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e:?}");
    // The socket file outlives its listener: nothing listens there any more.
    drop(l);
    let e = UnixStream::connect(io, &path).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e:?}");
    let long = Path::new("/tmp").join("x".repeat(200));
    let e = UnixStream::connect(io, &long).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e:?}");
}

fn stream_timeouts(io: &Io) {
    let (a, _b) = UnixStream::pair(io).unwrap();
    assert_eq!(a.read_timeout(), None);
    a.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    assert_eq!(a.read_timeout(), Some(Duration::from_millis(50)));
    let t0 = crate::support::now();
    // Expired timeouts are `WouldBlock`, as std's on Unix.
    let e = (&a).read(&mut [0; 4]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WouldBlock, "{e:?}");
    assert!(crate::support::elapsed(t0) >= Duration::from_millis(50));
    let e = (&a)
        .read_vectored(&mut [IoSliceMut::new(&mut [0; 4])])
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WouldBlock, "{e:?}");
    fill_stream(&a);
    a.set_write_timeout(Some(Duration::from_millis(30)))
        .unwrap();
    assert_eq!(a.write_timeout(), Some(Duration::from_millis(30)));
    let e = (&a).write(&[1; 4096]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WouldBlock, "{e:?}");
    let e = (&a)
        .write_vectored(&[IoSlice::new(&[1; 4096])])
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WouldBlock, "{e:?}");
    let e = a.set_read_timeout(Some(Duration::ZERO)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
}

fn stream_connect_waits_on_full_backlog(io: &Io) {
    let Some((_dir, path, l, held)) = full_listener(io) else {
        eprintln!("stream_connect_waits_on_full_backlog: backlog not enforced here; skipped");
        return;
    };
    assert!(!held.is_empty());
    let t0 = crate::support::now();
    let e = io
        .timeout_until(crate::support::now() + Duration::from_millis(60), |_| {
            UnixStream::connect(io, &path)
        })
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TimedOut, "{e:?}");
    assert!(crate::support::elapsed(t0) >= Duration::from_millis(60));
    // Accepting one frees a slot: the retrying connect then succeeds.
    let _first = l.accept().unwrap();
    let _c = UnixStream::connect(io, &path).unwrap();
}

fn stream_std_round_trip(io: &Io) {
    let (_dir, path, l) = listener(io);
    assert!(is_nonblocking(&l));
    let std_l = l.into_std().unwrap();
    assert!(!is_nonblocking(&std_l));
    let l = UnixListener::from_std(io, std_l).unwrap();
    let std_c = std::os::unix::net::UnixStream::connect(&path).unwrap();
    let c = UnixStream::from_std(io, std_c).unwrap();
    assert!(is_nonblocking(&c));
    (&c).write_all(b"std").unwrap();
    let (s, _) = l.accept().unwrap();
    let mut std_s = s.into_std().unwrap();
    assert!(!is_nonblocking(&std_s));
    let mut buf = [0; 3];
    std_s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"std");
    let owned: OwnedFd = c.into();
    // SAFETY: `owned` is a connected Unix stream socket; ownership moves into the new stream.
    let c =
        unsafe { UnixStream::from_raw_fd(io, std::os::fd::IntoRawFd::into_raw_fd(owned)).unwrap() };
    assert_eq!(c.peer_addr().unwrap().as_pathname(), Some(path.as_path()));
    let _: OwnedFd = l.into();
}

fn cancel_blocked_accept(io: &Io) {
    let (_dir, path, l) = listener(io);
    let l = Arc::new(l);
    let shared = l.clone();
    if cancel_blocked(io, "unix accept", move |_| shared.accept().map(|_| ())) {
        let shared = l.clone();
        cancel_race(io, move |_| shared.accept().map(|_| ()));
    }
    let _c = UnixStream::connect(io, &path).unwrap();
    precanceled_then_shielded(io, || l.accept().map(|_| ()));
}

fn cancel_blocked_read(io: &Io) {
    let (_dir, c, s) = connected(io);
    let c = Arc::new(c);
    let shared = c.clone();
    if cancel_blocked(io, "unix read", move |_| (&*shared).read(&mut [0; 8])) {
        let shared = c.clone();
        cancel_race(io, move |_| (&*shared).read(&mut [0; 8]));
    }
    (&s).write_all(b"z").unwrap();
    let n = precanceled_then_shielded(io, || (&*c).read(&mut [0; 8]));
    assert_eq!(n, 1);
}

fn cancel_blocked_write(io: &Io) {
    let (a, b) = UnixStream::pair(io).unwrap();
    fill_stream(&a);
    let a = Arc::new(a);
    let shared = a.clone();
    if cancel_blocked(io, "unix write", move |_| (&*shared).write(&[1; 4096])) {
        let shared = a.clone();
        cancel_race(io, move |_| (&*shared).write(&[1; 4096]));
    }
    // Make room, then the shielded write succeeds.
    let mut sink = vec![0; 1 << 20];
    let _ = (&b).read(&mut sink).unwrap();
    precanceled_then_shielded(io, || (&*a).write(&[1; 16]));
}

fn cancel_blocked_connect(io: &Io) {
    let Some((_dir, path, l, _held)) = full_listener(io) else {
        eprintln!("unix cancel_blocked_connect: backlog not enforced here; skipped");
        return;
    };
    let p = path.clone();
    if cancel_blocked(io, "unix connect", move |io| {
        UnixStream::connect(io, &p).map(|_| ())
    }) {
        let p = path.clone();
        cancel_race(io, move |io| UnixStream::connect(io, &p).map(|_| ()));
    }
    io.cancel_current();
    assert_canceled(UnixStream::connect(io, &path));
    let _ = io.shielded(|| l.accept()).unwrap();
    io.shielded(|| UnixStream::connect(io, &path)).unwrap();
}

fn datagram_bind_send_to_recv_from(io: &Io) {
    let dir = TempDir::new("dgram");
    let pa = dir.path().join("a");
    let pb = dir.path().join("b");
    let a = UnixDatagram::bind(io, &pa).unwrap();
    let b = UnixDatagram::bind(io, &pb).unwrap();
    assert_eq!(a.local_addr().unwrap().as_pathname(), Some(pa.as_path()));
    assert_eq!(a.send_to(b"to-b", &pb).unwrap(), 4);
    let mut buf = [0; 16];
    let (n, from) = b.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"to-b");
    assert_eq!(from.as_pathname(), Some(pa.as_path()));
    // An unbound socket can send; its datagrams come from an unnamed address.
    let u = UnixDatagram::unbound(io).unwrap();
    u.send_to(b"anon", &pb).unwrap();
    let (n, from) = b.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"anon");
    assert!(from.is_unnamed());
    assert_eq!(a.io().model_name(), io.model_name());
    assert!(format!("{a:?}").contains("UnixDatagram"));
    // Errors.
    let e = UnixDatagram::bind(io, &pa).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AddrInUse, "{e:?}");
    let e = a.send_to(b"x", dir.path().join("missing")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e:?}");
    let e = a.connect(dir.path().join("missing")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e:?}");
    assert_eq!(a.peer_addr().unwrap_err().kind(), ErrorKind::NotConnected);
}

fn datagram_connected_and_pair(io: &Io) {
    let dir = TempDir::new("dgram-conn");
    let pb = dir.path().join("b");
    let b = UnixDatagram::bind(io, &pb).unwrap();
    let a = UnixDatagram::unbound(io).unwrap();
    a.connect(&pb).unwrap();
    assert_eq!(a.peer_addr().unwrap().as_pathname(), Some(pb.as_path()));
    a.send(b"conn").unwrap();
    let mut buf = [0; 8];
    let n = b.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"conn");

    let (x, y) = UnixDatagram::pair(io).unwrap();
    x.send(b"p1").unwrap();
    x.send(b"p2").unwrap();
    assert_eq!(y.recv(&mut buf).unwrap(), 2);
    assert_eq!(&buf[..2], b"p1");
    let (n, from) = y.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from.is_unnamed()), (&b"p2"[..], true));
    x.shutdown(Shutdown::Write).unwrap();
    assert!(x.send(b"no").is_err());
    assert!(x.take_error().unwrap().is_none());
}

fn datagram_timeouts(io: &Io) {
    let (x, _y) = UnixDatagram::pair(io).unwrap();
    x.set_read_timeout(Some(Duration::from_millis(40))).unwrap();
    x.set_write_timeout(Some(Duration::from_millis(60)))
        .unwrap();
    assert_eq!(x.read_timeout(), Some(Duration::from_millis(40)));
    assert_eq!(x.write_timeout(), Some(Duration::from_millis(60)));
    // Expired timeouts are `WouldBlock`, as std's on Unix.
    let e = x.recv(&mut [0; 4]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WouldBlock, "{e:?}");
    let e = x.recv_from(&mut [0; 4]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WouldBlock, "{e:?}");
    let e = x.set_write_timeout(Some(Duration::ZERO)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
}

/// Sends to `to` (a socket nobody reads) until its queue is full and `send_to` times out.
fn fill_datagram_queue(from: &UnixDatagram, to: &Path) {
    from.set_write_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut sent = 0;
    loop {
        match from.send_to(&[3; 512], to) {
            Ok(_) => sent += 1,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break, // the write timeout
            Err(e) => panic!("filling the datagram queue: {e:?}"),
        }
        assert!(sent < 1_000_000, "the datagram queue never filled");
    }
    from.set_write_timeout(None).unwrap();
}

fn datagram_send_to_waits_while_receiver_full(io: &Io) {
    let dir = TempDir::new("dgram-full");
    let pb = dir.path().join("b");
    let b = UnixDatagram::bind(io, &pb).unwrap();
    let a = Arc::new(UnixDatagram::unbound(io).unwrap());
    fill_datagram_queue(&a, &pb);
    let (shared, p) = (a.clone(), pb.clone());
    if cancel_blocked(io, "unix send_to", move |_| shared.send_to(b"more", &p)) {
        let (shared, p) = (a.clone(), pb.clone());
        cancel_race(io, move |_| shared.send_to(b"more", &p));
    }
    // Draining one datagram lets the next send through.
    b.recv(&mut [0; 512]).unwrap();
    precanceled_then_shielded(io, || a.send_to(b"more", &pb));
}

fn datagram_connected_send_waits_while_receiver_full(io: &Io) {
    let (x, y) = UnixDatagram::pair(io).unwrap();
    x.set_write_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut sent = 0;
    loop {
        match x.send(&[3; 512]) {
            Ok(_) => sent += 1,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break, // the write timeout
            Err(e) => panic!("filling the pair: {e:?}"),
        }
        assert!(sent < 1_000_000, "the datagram queue never filled");
    }
    x.set_write_timeout(None).unwrap();
    let x = Arc::new(x);
    let shared = x.clone();
    if cancel_blocked(io, "unix send", move |_| shared.send(b"more")) {
        let shared = x.clone();
        cancel_race(io, move |_| shared.send(b"more"));
    }
    y.recv(&mut [0; 512]).unwrap();
    precanceled_then_shielded(io, || x.send(b"more"));
}

fn datagram_cancel_blocked_recv(io: &Io) {
    let (x, y) = UnixDatagram::pair(io).unwrap();
    let x = Arc::new(x);
    let shared = x.clone();
    if cancel_blocked(io, "unix recv", move |_| shared.recv(&mut [0; 8])) {
        let shared = x.clone();
        cancel_race(io, move |_| shared.recv(&mut [0; 8]));
        let shared = x.clone();
        cancel_blocked(io, "unix recv_from", move |_| {
            shared.recv_from(&mut [0; 8]).map(|(n, _)| n)
        });
    }
    y.send(b"d").unwrap();
    let n = precanceled_then_shielded(io, || x.recv(&mut [0; 8]));
    assert_eq!(n, 1);
    assert_canceled(x.recv_from(&mut [0; 8]));
}

fn datagram_std_round_trip(io: &Io) {
    let (x, y) = UnixDatagram::pair(io).unwrap();
    assert!(is_nonblocking(&x));
    let std_x = x.into_std().unwrap();
    assert!(!is_nonblocking(&std_x));
    let x = UnixDatagram::from_std(io, std_x).unwrap();
    x.send(b"s").unwrap();
    assert_eq!(y.recv(&mut [0; 4]).unwrap(), 1);
    let _ = std::os::fd::AsRawFd::as_raw_fd(&x);
    let fd: OwnedFd = x.into();
    drop(fd);
}

conformance! {
    stream_echo_round_trip,
    stream_with_concurrent_server,
    stream_pair_vectored,
    stream_shutdown,
    stream_addresses,
    stream_errors,
    stream_timeouts,
    stream_connect_waits_on_full_backlog,
    stream_std_round_trip,
    cancel_blocked_accept,
    cancel_blocked_read,
    cancel_blocked_write,
    cancel_blocked_connect,
    datagram_bind_send_to_recv_from,
    datagram_connected_and_pair,
    datagram_timeouts,
    datagram_send_to_waits_while_receiver_full,
    datagram_connected_send_waits_while_receiver_full,
    datagram_cancel_blocked_recv,
    datagram_std_round_trip,
}
