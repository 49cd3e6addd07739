//! Conformance tests: udp.

use std::io::ErrorKind;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use zsync::net::UdpSocket;
use zsync::Io;

use crate::support::assert_canceled;
use crate::tcp::{cancel_blocked, cancel_race, is_nonblocking, precanceled_then_shielded};

fn socket(io: &Io) -> (UdpSocket, SocketAddr) {
    let s = UdpSocket::bind(io, "127.0.0.1:0").unwrap();
    let addr = s.local_addr().unwrap();
    (s, addr)
}

fn send_to_recv_from_round_trip(io: &Io) {
    let (a, a_addr) = socket(io);
    let (b, b_addr) = socket(io);
    assert_eq!(a.send_to(b"ping", b_addr).unwrap(), 4);
    let mut buf = [0; 16];
    let (n, from) = b.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"ping");
    assert_eq!(from, a_addr);
    b.send_to(b"pong", from).unwrap();
    let (n, from) = a.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&b"pong"[..], b_addr));
    assert_eq!(a.io().model_name(), io.model_name());
    assert!(format!("{a:?}").contains("UdpSocket"));
}

fn send_to_by_name(io: &Io) {
    let (a, _) = socket(io);
    let (b, b_addr) = socket(io);
    a.send_to(b"n", format!("localhost:{}", b_addr.port()))
        .unwrap();
    a.send_to(b"m", ("localhost", b_addr.port())).unwrap();
    let mut buf = [0; 4];
    assert_eq!(b.recv_from(&mut buf).unwrap().0, 1);
    assert_eq!(b.recv_from(&mut buf).unwrap().0, 1);
}

fn peek_from_leaves_datagram(io: &Io) {
    let (a, a_addr) = socket(io);
    let (b, b_addr) = socket(io);
    a.send_to(b"first", b_addr).unwrap();
    let mut buf = [0; 16];
    let (n, from) = b.peek_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&b"first"[..], a_addr));
    let (n, from) = b.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&b"first"[..], a_addr));
}

fn long_datagram_is_truncated(io: &Io) {
    let (a, _) = socket(io);
    let (b, b_addr) = socket(io);
    a.send_to(&[9; 100], b_addr).unwrap();
    a.send_to(b"next", b_addr).unwrap();
    let mut small = [0; 10];
    let (n, _) = b.recv_from(&mut small).unwrap();
    assert_eq!(n, 10);
    // The rest of the long datagram is gone: the next receive gets the next datagram.
    let mut buf = [0; 16];
    let (n, _) = b.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"next");
}

fn connected_send_recv_peek(io: &Io) {
    let (a, a_addr) = socket(io);
    let (b, b_addr) = socket(io);
    let (other, _) = socket(io);
    assert_eq!(a.peer_addr().unwrap_err().kind(), ErrorKind::NotConnected);
    a.connect(b_addr).unwrap();
    b.connect(a_addr).unwrap();
    assert_eq!(a.peer_addr().unwrap(), b_addr);
    // A connected socket drops datagrams from anyone but its peer.
    other.send_to(b"stranger", a_addr).unwrap();
    b.send(b"friend").unwrap();
    let mut buf = [0; 16];
    let n = a.peek(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"friend");
    let n = a.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"friend");
    a.send(b"back").unwrap();
    let n = b.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"back");
    // Connecting by name works too.
    a.connect(format!("localhost:{}", b_addr.port())).unwrap();
    assert_eq!(a.peer_addr().unwrap(), b_addr);
}

fn send_without_connect_fails(io: &Io) {
    let (a, _) = socket(io);
    let e = a.send(b"nowhere").unwrap_err();
    assert!(!zsync::is_canceled(&e));
}

fn connected_send_to_closed_port_is_refused(io: &Io) {
    let (a, _) = socket(io);
    let (gone, gone_addr) = socket(io);
    drop(gone);
    a.connect(gone_addr).unwrap();
    a.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    a.send(b"anyone?").unwrap();
    // The ICMP "port unreachable" comes back as an error on the next receive.
    let e = a.recv(&mut [0; 8]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e:?}");
}

fn broadcast_flag(io: &Io) {
    let (a, _) = socket(io);
    assert!(!a.broadcast().unwrap());
    a.set_broadcast(true).unwrap();
    assert!(a.broadcast().unwrap());
    a.set_broadcast(false).unwrap();
    assert!(!a.broadcast().unwrap());
}

fn ttl_and_multicast_options(io: &Io) {
    let (a, _) = socket(io);
    a.set_ttl(33).unwrap();
    assert_eq!(a.ttl().unwrap(), 33);
    a.set_multicast_ttl_v4(5).unwrap();
    assert_eq!(a.multicast_ttl_v4().unwrap(), 5);
    a.set_multicast_loop_v4(false).unwrap();
    assert!(!a.multicast_loop_v4().unwrap());
    a.set_multicast_loop_v4(true).unwrap();
    assert!(a.multicast_loop_v4().unwrap());
    assert!(a.take_error().unwrap().is_none());
}

/// Errors a VM without multicast routing on the interface may report for a join.
fn multicast_unavailable(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EADDRNOTAVAIL) | Some(libc::ENODEV) | Some(libc::ENOPROTOOPT)
    )
}

fn multicast_join_leave_v4(io: &Io) {
    let s = UdpSocket::bind(io, "0.0.0.0:0").unwrap();
    let group = Ipv4Addr::new(239, 255, 42, 99);
    match s.join_multicast_v4(&group, &Ipv4Addr::LOCALHOST) {
        Ok(()) => {
            // Joining twice is an error; leaving works once.
            assert!(s.join_multicast_v4(&group, &Ipv4Addr::LOCALHOST).is_err());
            s.leave_multicast_v4(&group, &Ipv4Addr::LOCALHOST).unwrap();
            assert!(s.leave_multicast_v4(&group, &Ipv4Addr::LOCALHOST).is_err());
        }
        Err(e) => assert!(multicast_unavailable(&e), "join on loopback: {e:?}"),
    }
    // Not a multicast address.
    let e = s
        .join_multicast_v4(&Ipv4Addr::new(10, 0, 0, 1), &Ipv4Addr::LOCALHOST)
        .unwrap_err();
    assert!(!zsync::is_canceled(&e));
}

fn multicast_join_leave_v6(io: &Io) {
    let s = match UdpSocket::bind(io, "[::1]:0") {
        Ok(s) => s,
        Err(e) => {
            assert_eq!(
                e.kind(),
                ErrorKind::AddrNotAvailable,
                "no IPv6 loopback: {e:?}"
            );
            return;
        }
    };
    s.set_multicast_loop_v6(false).unwrap();
    assert!(!s.multicast_loop_v6().unwrap());
    let group: Ipv6Addr = "ff02::1:2:3".parse().unwrap();
    // Interface 1 is the loopback on Linux.
    match s.join_multicast_v6(&group, 1) {
        Ok(()) => s.leave_multicast_v6(&group, 1).unwrap(),
        Err(e) => assert!(multicast_unavailable(&e), "join v6 on lo: {e:?}"),
    }
}

fn timeouts(io: &Io) {
    let (a, _) = socket(io);
    assert_eq!(a.read_timeout(), None);
    a.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    a.set_write_timeout(Some(Duration::from_millis(70)))
        .unwrap();
    assert_eq!(a.read_timeout(), Some(Duration::from_millis(50)));
    assert_eq!(a.write_timeout(), Some(Duration::from_millis(70)));
    let t0 = crate::support::now();
    // Expired, as std's `SO_RCVTIMEO` on Unix: `WouldBlock`.
    let e = a.recv_from(&mut [0; 8]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WouldBlock, "{e:?}");
    assert!(crate::support::elapsed(t0) >= Duration::from_millis(50));
    let e = a.peek_from(&mut [0; 8]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WouldBlock, "{e:?}");
    let (_b, b_addr) = socket(io);
    a.connect(b_addr).unwrap();
    let e = a.recv(&mut [0; 8]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WouldBlock, "{e:?}");
    let e = a.peek(&mut [0; 8]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WouldBlock, "{e:?}");
    let e = a.set_read_timeout(Some(Duration::ZERO)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    let e = a.set_write_timeout(Some(Duration::ZERO)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
}

fn bind_errors(io: &Io) {
    let (_a, a_addr) = socket(io);
    let e = UdpSocket::bind(io, a_addr).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AddrInUse, "{e:?}");
    let e = UdpSocket::bind(io, "not an address").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e:?}");
    let e = UdpSocket::bind(io, "no-such-host.invalid:0").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e:?}");
    assert!(e.to_string().contains("no-such-host.invalid"), "{e}");
}

fn send_to_errors(io: &Io) {
    let (a, _) = socket(io);
    let e = a.send_to(b"x", "no-port").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e:?}");
    let e = a.send_to(b"x", "no-such-host.invalid:9").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e:?}");
    let empty: &[SocketAddr] = &[];
    let e = a.send_to(b"x", empty).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e:?}");
}

fn std_round_trip(io: &Io) {
    let (a, a_addr) = socket(io);
    assert!(is_nonblocking(&a));
    let std_a = a.into_std().unwrap();
    assert!(!is_nonblocking(&std_a));
    let a = UdpSocket::from_std(io, std_a).unwrap();
    assert!(is_nonblocking(&a));
    assert_eq!(a.local_addr().unwrap(), a_addr);
    let owned: std::os::fd::OwnedFd = a.into();
    // SAFETY: `owned` is a UDP socket; ownership moves into the new socket.
    let a =
        unsafe { UdpSocket::from_raw_fd(io, std::os::fd::IntoRawFd::into_raw_fd(owned)).unwrap() };
    assert_eq!(a.local_addr().unwrap(), a_addr);
    let _ = std::os::fd::AsRawFd::as_raw_fd(&a);
}

fn cancel_blocked_recv_from(io: &Io) {
    let (a, a_addr) = socket(io);
    let a = Arc::new(a);
    let shared = a.clone();
    if cancel_blocked(io, "recv_from", move |_| shared.recv_from(&mut [0; 8])) {
        let shared = a.clone();
        cancel_race(io, move |_| shared.recv_from(&mut [0; 8]));
        let shared = a.clone();
        cancel_blocked(io, "peek_from", move |_| shared.peek_from(&mut [0; 8]));
    }
    let (b, _) = socket(io);
    b.send_to(b"late", a_addr).unwrap();
    let (n, _) = precanceled_then_shielded(io, || a.recv_from(&mut [0; 8]));
    assert_eq!(n, 4);
}

fn cancel_blocked_connected_recv(io: &Io) {
    let (a, a_addr) = socket(io);
    let (b, b_addr) = socket(io);
    a.connect(b_addr).unwrap();
    b.connect(a_addr).unwrap();
    let a = Arc::new(a);
    let shared = a.clone();
    if cancel_blocked(io, "recv", move |_| shared.recv(&mut [0; 8])) {
        let shared = a.clone();
        cancel_race(io, move |_| shared.recv(&mut [0; 8]));
        let shared = a.clone();
        cancel_blocked(io, "peek", move |_| shared.peek(&mut [0; 8]));
    }
    b.send(b"x").unwrap();
    assert_eq!(precanceled_then_shielded(io, || a.peek(&mut [0; 8])), 1);
    assert_canceled(a.recv(&mut [0; 8]));
}

fn precanceled_sends_report_canceled(io: &Io) {
    let (a, _) = socket(io);
    let (b, b_addr) = socket(io);
    a.connect(b_addr).unwrap();
    io.cancel_current();
    assert_canceled(a.send(b"x"));
    assert_canceled(a.send_to(b"x", b_addr));
    assert_canceled(a.send_to(b"x", format!("localhost:{}", b_addr.port())));
    assert_canceled(UdpSocket::bind(io, "localhost:0"));
    assert_eq!(io.shielded(|| a.send_to(b"xy", b_addr)).unwrap(), 2);
    assert_eq!(io.shielded(|| b.recv_from(&mut [0; 8])).unwrap().0, 2);
}

conformance! {
    on sim:
    send_to_recv_from_round_trip,
    send_to_by_name,
    peek_from_leaves_datagram,
    long_datagram_is_truncated,
    connected_send_recv_peek,
    send_without_connect_fails,
    connected_send_to_closed_port_is_refused,
    broadcast_flag,
    ttl_and_multicast_options,
    multicast_join_leave_v4,
    multicast_join_leave_v6,
    timeouts,
    bind_errors,
    send_to_errors,
    cancel_blocked_recv_from,
    cancel_blocked_connected_recv,
    precanceled_sends_report_canceled,
    ;
    not on sim:
    // std's own sockets (`into_std`, `from_std`) do their I/O without the seam.
    std_round_trip,
}
