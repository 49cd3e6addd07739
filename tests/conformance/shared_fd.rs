//! Conformance tests: several tasks waiting on ONE descriptor (a UDP socket shared by receivers,
//! a listener accepted from by several tasks). Every waiter must be woken when the descriptor
//! becomes ready, and a waiter that leaves (canceled, timed out) must withdraw only its own
//! wait.
//!
//! Green epoll once kept one waker per descriptor and direction: two fibers of one worker
//! overwrote each other's registration, and a leaving waiter erased whoever was registered
//! last, so the others slept until a timer or forever. The bodies run on every model with two
//! workers (three waiters: two of them share a worker, by pigeonhole) and, in
//! [`waiters_of_one_descriptor_on_one_worker`], with a single worker, where every waiter shares
//! one reactor.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use zsync::net::{TcpListener, TcpStream, UdpSocket};
use zsync::Io;

use crate::support::{self, assert_canceled};

conformance! {
    on sim:
    udp_receivers_sharing_one_socket_are_all_woken,
    tasks_accepting_on_one_listener_are_all_woken,
    a_waiter_that_leaves_does_not_strand_the_others,
    ;
    not on sim:
}

/// Waiters per descriptor: with two workers, at least two of three share one.
const WAITERS: usize = 3;
/// How long the waiters may take to be woken: a watchdog, not a measure.
const WATCHDOG: Duration = Duration::from_secs(20);

/// Waits until `n` tasks announced they are about to block, then gives them time to block.
/// (On one Green worker they have all blocked once this task runs again.)
fn wait_until_blocked(io: &Io, announced: &AtomicUsize, n: usize) {
    while announced.load(Ordering::SeqCst) < n {
        io.sleep(Duration::from_millis(1)).unwrap();
    }
    io.sleep(Duration::from_millis(20)).unwrap();
}

/// Waits until `count` reaches `n`; fails the test if it does not within [`WATCHDOG`]. (The
/// tasks still blocked are then canceled as their handles drop.)
fn await_count(io: &Io, count: &AtomicUsize, n: usize, what: &str) {
    let start = crate::support::now();
    while count.load(Ordering::SeqCst) < n {
        assert!(
            crate::support::elapsed(start) < WATCHDOG,
            "{what}: only {} of {n} woken within {WATCHDOG:?} on {} ({})",
            count.load(Ordering::SeqCst),
            io.model_name(),
            io.backend_name(),
        );
        io.sleep(Duration::from_millis(1)).unwrap();
    }
}

fn udp_socket(io: &Io) -> (Arc<UdpSocket>, SocketAddr) {
    let s = UdpSocket::bind(io, "127.0.0.1:0").unwrap();
    let addr = s.local_addr().unwrap();
    (Arc::new(s), addr)
}

/// Three tasks block in `recv_from` on one socket; three datagrams arrive: each task gets one.
fn udp_receivers_sharing_one_socket_are_all_woken(io: &Io) {
    let (sock, addr) = udp_socket(io);
    let announced = Arc::new(AtomicUsize::new(0));
    let received = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..WAITERS {
        let (sock, announced, received) = (sock.clone(), announced.clone(), received.clone());
        let Some(task) = support::concurrent_or_refused(io, move |_| {
            let mut buf = [0u8; 8];
            announced.fetch_add(1, Ordering::SeqCst);
            let r = sock.recv_from(&mut buf);
            received.fetch_add(1, Ordering::SeqCst);
            r.map(|(n, _)| buf[..n].to_vec())
        }) else {
            return; // Blocking: one task at a time, nothing to share
        };
        tasks.push(task);
    }
    wait_until_blocked(io, &announced, WAITERS);
    let sender = UdpSocket::bind(io, "127.0.0.1:0").unwrap();
    for i in 0..WAITERS as u8 {
        sender.send_to(&[i], addr).unwrap();
    }
    await_count(io, &received, WAITERS, "receivers of one UDP socket");
    let mut got: Vec<Vec<u8>> = tasks
        .into_iter()
        .map(|t| t.join().unwrap().unwrap())
        .collect();
    got.sort();
    let want: Vec<Vec<u8>> = (0..WAITERS as u8).map(|i| vec![i]).collect();
    assert_eq!(got, want);
}

/// Three tasks block in `accept` on one listener; three clients connect: each task accepts one.
fn tasks_accepting_on_one_listener_are_all_woken(io: &Io) {
    let listener = Arc::new(TcpListener::bind(io, "127.0.0.1:0").unwrap());
    let addr = listener.local_addr().unwrap();
    let announced = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..WAITERS {
        let (listener, announced, accepted) =
            (listener.clone(), announced.clone(), accepted.clone());
        let Some(task) = support::concurrent_or_refused(io, move |_| {
            announced.fetch_add(1, Ordering::SeqCst);
            let r = listener.accept();
            accepted.fetch_add(1, Ordering::SeqCst);
            r.map(|(_, peer)| peer)
        }) else {
            return;
        };
        tasks.push(task);
    }
    wait_until_blocked(io, &announced, WAITERS);
    let clients: Vec<TcpStream> = (0..WAITERS)
        .map(|_| TcpStream::connect(io, addr).unwrap())
        .collect();
    await_count(io, &accepted, WAITERS, "accepters on one listener");
    let mut peers: Vec<SocketAddr> = tasks
        .into_iter()
        .map(|t| t.join().unwrap().unwrap())
        .collect();
    peers.sort();
    let mut want: Vec<SocketAddr> = clients.iter().map(|c| c.local_addr().unwrap()).collect();
    want.sort();
    assert_eq!(peers, want);
}

/// Three tasks block in `recv_from` on one socket; one is canceled, one gives up at its
/// deadline; a datagram then arrives: the one still waiting gets it.
fn a_waiter_that_leaves_does_not_strand_the_others(io: &Io) {
    let (sock, addr) = udp_socket(io);
    let announced = Arc::new(AtomicUsize::new(0));
    let received = Arc::new(AtomicUsize::new(0));
    // How long the leaver with a deadline waits: long enough for all three to block first.
    let patience = Duration::from_millis(200);
    let spawn = |leave_at: Option<Duration>| {
        let (sock, announced, received) = (sock.clone(), announced.clone(), received.clone());
        support::concurrent_or_refused(io, move |io| {
            let mut buf = [0u8; 8];
            announced.fetch_add(1, Ordering::SeqCst);
            let r = match leave_at {
                Some(d) => io.timeout(d, |_| sock.recv_from(&mut buf)),
                None => sock.recv_from(&mut buf),
            };
            received.fetch_add(1, Ordering::SeqCst);
            r.map(|(n, _)| buf[..n].to_vec())
        })
    };
    let Some(stayer) = spawn(None) else {
        return;
    };
    let canceled = spawn(None).unwrap();
    let timed_out = spawn(Some(patience)).unwrap();
    wait_until_blocked(io, &announced, WAITERS);
    assert_canceled(canceled.cancel().unwrap());
    let e = timed_out.join().unwrap().unwrap_err();
    assert!(zsync::is_timed_out(&e), "{e:?}");
    UdpSocket::bind(io, "127.0.0.1:0")
        .unwrap()
        .send_to(b"stay", addr)
        .unwrap();
    await_count(io, &received, WAITERS, "the waiter left behind");
    assert_eq!(stayer.join().unwrap().unwrap(), b"stay");
}

standalone! {
    /// The bodies above on every model with a single worker: on Green every waiter then shares
    /// one reactor, whatever the placement.
    #[test]
    fn waiters_of_one_descriptor_on_one_worker() {
        for (_, builder) in support::models() {
            for &(name, body) in ALL {
                support::run_on_workers(builder, name, body, 1);
            }
        }
    }
}
