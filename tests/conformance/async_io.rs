//! Conformance tests: the async API (driver readiness, timers, `_async` methods, `AsyncRead`/
//! `AsyncWrite`) waited for by colorblind code, on every model.
//!
//! Timing is never asserted beyond "not before the deadline"; generous bounds are watchdogs.

use std::future::{poll_fn, Future};
use std::io::ErrorKind;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_util::future::{join, join_all};
use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use zsync::net::{Interest, TcpListener, TcpStream, UdpSocket, UnixStream};
use zsync::time::{sleep, sleep_until, timeout};
use zsync::Io;

/// Colorblind code waiting for a future.
fn block_on<F: Future>(io: &Io, future: F) -> F::Output {
    io.block_on(future).expect("the task is not canceled")
}

fn pair(io: &Io) -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind(io, "127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    block_on(io, async {
        let (client, accepted) =
            join(TcpStream::connect_async(io, addr), listener.accept_async()).await;
        (client.unwrap(), accepted.unwrap().0)
    })
}

fn tcp_echo_through_async_read_write(io: &Io) {
    let (mut client, server) = pair(io);
    let data: Vec<u8> = (0..256 * 1024).map(|i| (i % 251) as u8).collect();
    let echoed = block_on(io, async {
        let echo = async {
            // `&TcpStream` is AsyncRead + AsyncWrite too: one socket, both halves.
            let (mut rd, mut wr) = (&server, &server);
            let mut buf = vec![0; 8192];
            loop {
                let n = rd.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                wr.write_all(&buf[..n]).await.unwrap();
            }
            wr.close().await.unwrap();
        };
        let talk = async {
            let mut reader = client.try_clone().unwrap();
            let send = async {
                client.write_all(&data).await.unwrap();
                client.close().await.unwrap(); // shuts the write half down
            };
            let mut back = Vec::new();
            let recv = reader.read_to_end(&mut back);
            let (_, n) = join(send, recv).await;
            n.unwrap();
            back
        };
        join(echo, talk).await.1
    });
    assert_eq!(echoed, data);
}

fn accept_and_connect(io: &Io) {
    let listener = TcpListener::bind(io, "127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    block_on(io, async {
        for _ in 0..8 {
            let (c, a) = join(TcpStream::connect_async(io, addr), listener.accept_async()).await;
            let (c, (s, peer)) = (c.unwrap(), a.unwrap());
            assert_eq!(peer, c.local_addr().unwrap());
            assert_eq!(s.peer_addr().unwrap(), c.local_addr().unwrap());
        }
    });
    // Nothing listens on a port just released: refused.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let e = block_on(io, TcpStream::connect_async(io, closed)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConnectionRefused);
}

fn unix_stream_async(io: &Io) {
    let (a, b) = UnixStream::pair(io).unwrap();
    block_on(io, async {
        let mut a = &a;
        a.write_all(b"hello").await.unwrap();
        let mut buf = [0; 5];
        (&b).read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hello");
        assert_eq!(b.write_async(b"x").await.unwrap(), 1);
        assert_eq!(a.read_async(&mut buf).await.unwrap(), 1);
    });
}

fn udp_async(io: &Io) {
    let a = UdpSocket::bind(io, "127.0.0.1:0").unwrap();
    let b = UdpSocket::bind(io, "127.0.0.1:0").unwrap();
    let b_addr = b.local_addr().unwrap();
    block_on(io, async {
        let mut buf = [0; 16];
        // The receiver waits first: the datagram arrives while it is registered.
        let (got, sent) = join(b.recv_from_async(&mut buf), async {
            sleep(Duration::from_millis(5)).await;
            a.send_to_async(b"ping", b_addr).await
        })
        .await;
        assert_eq!(sent.unwrap(), 4);
        let (n, from) = got.unwrap();
        assert_eq!((&buf[..n], from), (&b"ping"[..], a.local_addr().unwrap()));
        a.connect(b_addr).unwrap();
        b.connect(from).unwrap();
        b.send_async(b"pong").await.unwrap();
        let n = a.recv_async(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"pong");
    });
}

fn timeout_fires(io: &Io) {
    let (client, _server) = pair(io);
    let start = crate::support::now();
    let mut buf = [0; 8];
    let e = block_on(
        io,
        timeout(Duration::from_millis(20), client.read_async(&mut buf)),
    )
    .unwrap_err();
    assert!(zsync::is_timed_out(&e), "{e:?}");
    assert!(crate::support::elapsed(start) >= Duration::from_millis(20));
    let start = crate::support::now();
    block_on(io, sleep(Duration::from_millis(15)));
    assert!(crate::support::elapsed(start) >= Duration::from_millis(15));
    let at = crate::support::now() + Duration::from_millis(10);
    block_on(io, sleep_until(at));
    assert!(crate::support::now() >= at);
}

fn timeout_does_not_fire(io: &Io) {
    let (client, server) = pair(io);
    let out = block_on(io, async {
        let read = async {
            let mut buf = [0; 4];
            let n = server.read_async(&mut buf).await.unwrap();
            buf[..n].to_vec()
        };
        let write = async {
            sleep(Duration::from_millis(5)).await;
            client.write_async(b"late").await.unwrap()
        };
        timeout(Duration::from_secs(60), join(read, write)).await
    });
    let (got, _) = out.unwrap();
    assert!(!got.is_empty() && b"late".starts_with(&got));
    assert_eq!(
        block_on(io, timeout(Duration::from_secs(60), async { 7 })).unwrap(),
        7
    );
    assert_eq!(
        io.async_driver_counts().1,
        0,
        "a completed timeout disarms its timer"
    );
}

fn dropped_sleep_frees_its_timer(io: &Io) {
    let before = io.async_driver_counts().1;
    let mut cx = Context::from_waker(Waker::noop());
    {
        let mut far = sleep(Duration::from_secs(3600));
        assert!(std::pin::Pin::new(&mut far).poll(&mut cx).is_pending());
        assert_eq!(io.async_driver_counts().1, before + 1);
        // Polled again by the same waker: not armed twice.
        assert!(std::pin::Pin::new(&mut far).poll(&mut cx).is_pending());
        assert_eq!(io.async_driver_counts().1, before + 1);
    }
    assert_eq!(
        io.async_driver_counts().1,
        before,
        "the dropped Sleep's timer is gone"
    );
    // A timed-out future's timer, and a completed sleep's, are gone too.
    block_on(
        io,
        timeout(Duration::from_millis(1), std::future::pending::<()>()),
    )
    .unwrap_err();
    assert_eq!(io.async_driver_counts().1, before);
}

fn many_concurrent_sleeps(io: &Io) {
    let start = crate::support::now();
    let sleeps = (0..2000u64).map(|i| {
        let at = start + Duration::from_micros(i * 13 % 30_000);
        async move {
            sleep_until(at).await;
            assert!(crate::support::now() >= at);
        }
    });
    block_on(io, join_all(sleeps));
    assert_eq!(io.async_driver_counts().1, 0);
}

fn sleep_reset_moves_the_deadline(io: &Io) {
    let mut s = sleep(Duration::from_secs(3600));
    block_on(io, async {
        // Armed far away, then moved close while a task waits on it.
        let mut s = std::pin::Pin::new(&mut s);
        assert!(poll_fn(|cx| Poll::Ready(s.as_mut().poll(cx)))
            .await
            .is_pending());
        let soon = crate::support::now() + Duration::from_millis(5);
        s.as_mut().get_mut().reset(soon);
        s.as_mut().await;
        assert!(crate::support::now() >= soon);
    });
}

fn socket_dropped_while_a_read_waits(io: &Io) {
    let (client, server) = pair(io);
    // Registered on first async use.
    let _ = server.poll_write_ready(&mut Context::from_waker(Waker::noop()));
    let registered = io.async_driver_counts().0;
    // The read owns its stream: when the timeout drops it, the stream goes with it while its
    // wait is registered.
    let e = block_on(
        io,
        timeout(Duration::from_millis(10), async move {
            let mut buf = [0; 8];
            server.read_async(&mut buf).await
        }),
    )
    .unwrap_err();
    assert!(zsync::is_timed_out(&e));
    assert_eq!(
        io.async_driver_counts().0,
        registered - 1,
        "deregistered on drop"
    );
    // The peer sees the close, and its own async use still works.
    let mut buf = [0; 8];
    assert_eq!(block_on(io, client.read_async(&mut buf)).unwrap(), 0);
}

fn readiness_after_would_block(io: &Io) {
    let (mut client, server) = pair(io);
    let mut cx = Context::from_waker(Waker::noop());
    let raw_read = |buf: &mut [u8]| {
        let mut s: &socket2::Socket = &socket2::SockRef::from(&server);
        std::io::Read::read(&mut s, buf)
    };
    for round in 0..50u8 {
        // Data arrives *inside* the try, after the syscall saw nothing: the event lands
        // between the try and the clear, and must not be lost.
        let e = server
            .try_io(Interest::Read, || {
                let r = raw_read(&mut [0; 1]);
                std::io::Write::write_all(&mut client, &[round]).unwrap();
                r
            })
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::WouldBlock);
        block_on(io, poll_fn(|cx| server.poll_read_ready(cx))).unwrap();
        let mut one = [0; 1];
        let n = server
            .try_io(Interest::Read, || raw_read(&mut one))
            .unwrap();
        assert_eq!((n, one[0]), (1, round));
    }
    // Nothing more: the readiness is cleared by the next WouldBlock, and a poll now waits.
    server
        .try_io(Interest::Read, || raw_read(&mut [0; 1]))
        .unwrap_err();
    assert!(server.poll_read_ready(&mut cx).is_pending());
    // Several reads from one burst: readiness stays until a read would block.
    std::io::Write::write_all(&mut client, b"0123456789").unwrap();
    block_on(io, async {
        for expected in b"0123456789" {
            let mut one = [0; 1];
            assert_eq!(server.read_async(&mut one).await.unwrap(), 1);
            assert_eq!(one[0], *expected);
        }
    });
}

fn sleep_and_tick_events_are_futures(io: &Io) {
    let start = crate::support::now();
    block_on(io, zsync::select::sleep(Duration::from_millis(5)));
    assert!(crate::support::elapsed(start) >= Duration::from_millis(5));
    let mut interval = io.interval(Duration::from_millis(5));
    let first = block_on(io, interval.tick_event());
    let second = block_on(io, interval.tick_event());
    assert_eq!(second - first, Duration::from_millis(5));
    assert!(crate::support::now() >= second);
}

/// An echo server whose connections are future tasks, with clients as future tasks too: the
/// driver wakes tasks of the model (a worker's queue, the pool, or inline on Blocking).
fn echo_server_of_future_tasks(io: &Io) {
    if !io.supports_concurrency() {
        return; // Blocking runs a future task to completion at once: the server needs clients
    }
    let listener = TcpListener::bind(io, "127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    const CLIENTS: usize = 8;
    let server = io.spawn_future(async move {
        let io = Io::current().unwrap();
        let mut conns = Vec::new();
        for _ in 0..CLIENTS {
            let (stream, _) = listener.accept_async().await.unwrap();
            conns.push(io.spawn_future(async move {
                let mut buf = [0; 1024];
                loop {
                    let n = stream.read_async(&mut buf).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    (&stream).write_all(&buf[..n]).await.unwrap();
                }
            }));
        }
        for c in conns {
            c.await.unwrap();
        }
    });
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            io.spawn_future(async move {
                let io = Io::current().unwrap();
                let mut stream = TcpStream::connect_async(&io, addr).await.unwrap();
                let msg = vec![i as u8; 3000 + i];
                stream.write_all(&msg).await.unwrap();
                let mut back = vec![0; msg.len()];
                stream.read_exact(&mut back).await.unwrap();
                assert_eq!(back, msg);
            })
        })
        .collect();
    block_on(io, async {
        for c in clients {
            c.await.unwrap();
        }
        server.await.unwrap();
    });
}

/// A canceled future task is dropped at its next poll, and its socket (and its registration,
/// and its `Sleep`) with it.
fn canceled_future_task_drops_its_socket_and_timer(io: &Io) {
    let (client, server) = pair(io);
    let _ = server.poll_write_ready(&mut Context::from_waker(Waker::noop()));
    let (registered, timers) = io.async_driver_counts();
    let waiting = async move {
        let mut buf = [0; 8];
        let _ = timeout(Duration::from_secs(3600), server.read_async(&mut buf)).await;
    };
    let Ok(task) = io.concurrent_future(waiting) else {
        return; // Blocking: no task runs beside the caller (the refused future is dropped)
    };
    // Let it start waiting.
    block_on(io, sleep(Duration::from_millis(5)));
    assert!(zsync::is_canceled(&task.cancel().unwrap_err()));
    assert_eq!(io.async_driver_counts(), (registered - 1, timers));
    let mut buf = [0; 8];
    assert_eq!(
        block_on(io, client.read_async(&mut buf)).unwrap(),
        0,
        "closed"
    );
}

#[cfg(feature = "tokio-io")]
fn tokio_io_traits(io: &Io) {
    let (mut client, mut server) = pair(io);
    block_on(io, async {
        tokio::io::AsyncWriteExt::write_all(&mut client, b"tokio")
            .await
            .unwrap();
        tokio::io::AsyncWriteExt::shutdown(&mut client)
            .await
            .unwrap();
        let mut got = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut server, &mut got)
            .await
            .unwrap();
        assert_eq!(got, b"tokio");
    });
}

#[cfg(not(feature = "tokio-io"))]
fn tokio_io_traits(_io: &Io) {}

conformance! {
    on sim:
        unix_stream_async,
        dropped_sleep_frees_its_timer,
        sleep_reset_moves_the_deadline,
        sleep_and_tick_events_are_futures,
    ;
    not on sim:
        tcp_echo_through_async_read_write,
        accept_and_connect,
        udp_async,
        timeout_fires,
        timeout_does_not_fire,
        many_concurrent_sleeps,
        socket_dropped_while_a_read_waits,
        readiness_after_would_block,
        tokio_io_traits,
        echo_server_of_future_tasks,
        canceled_future_task_drops_its_socket_and_timer,
}
