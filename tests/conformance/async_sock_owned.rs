//! Conformance tests: the stream sockets' owned-buffer methods (`read_owned`, `write_owned`),
//! on every model. On Green with io_uring, polled by a worker, they are ring ops
//! (`IORING_OP_RECV`/`SEND`) owning their buffer until the completion; elsewhere they wait for
//! readiness.

use std::future::Future;
use std::io::Write;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use zsync::net::{TcpListener, TcpStream, UdpSocket, UnixStream};
use zsync::Io;

use crate::support::{has_concurrency, let_it_block, pattern};

fn block_on<F: Future>(io: &Io, fut: F) -> F::Output {
    io.block_on(fut).expect("not canceled")
}

fn tcp_pair(io: &Io) -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind(io, "127.0.0.1:0").unwrap();
    let a = TcpStream::connect(io, listener.local_addr().unwrap()).unwrap();
    let (b, _) = listener.accept().unwrap();
    (a, b)
}

/// Writes all of `data` with `write_owned`, reusing the buffer across short writes.
macro_rules! write_all_owned {
    ($sock:expr, $data:expr) => {{
        let mut buf: Vec<u8> = $data;
        while !buf.is_empty() {
            let (n, back) = $sock.write_owned(buf).await;
            let n = n.unwrap();
            assert!(n > 0);
            buf = back;
            buf.drain(..n);
        }
    }};
}

/// Reads exactly `len` bytes with `read_owned` (or fewer at the end of the stream).
macro_rules! read_owned_up_to {
    ($sock:expr, $len:expr, $chunk:expr) => {{
        let mut got = Vec::new();
        let mut buf = vec![0u8; $chunk];
        while got.len() < $len {
            let (n, back) = $sock.read_owned(buf).await;
            let n = n.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&back[..n]);
            buf = back;
        }
        got
    }};
}

fn echo_round_trips_tcp_and_unix(io: &Io) {
    let (ta, tb) = tcp_pair(io);
    let (ua, ub) = UnixStream::pair(io).unwrap();
    block_on(io, async {
        for round in 0..50u32 {
            let msg = pattern(1 + round as usize * 37, round);
            write_all_owned!(ta, msg.clone());
            let got = read_owned_up_to!(tb, msg.len(), 4096);
            assert!(got == msg, "tcp round {round}");
            write_all_owned!(ub, got);
            let back = read_owned_up_to!(ua, msg.len(), 64);
            assert!(back == msg, "unix round {round}");
        }
    });
}

fn an_echo_server_with_owned_buffers(io: &Io) {
    let (a, b) = UnixStream::pair(io).unwrap();
    let server = async move {
        let mut buf = vec![0u8; 1024];
        let mut echoed = 0;
        loop {
            let (n, back) = b.read_owned(buf).await;
            let n = n.unwrap();
            if n == 0 {
                return echoed;
            }
            echoed += n;
            let mut out = back;
            out.truncate(n);
            write_all_owned!(b, out.clone());
            out.resize(1024, 0);
            buf = out;
        }
    };
    let client = async {
        let mut sent = 0;
        for round in 0..30u32 {
            let msg = pattern(100 + round as usize, round);
            write_all_owned!(a, msg.clone());
            let got = read_owned_up_to!(a, msg.len(), 512);
            assert!(got == msg, "round {round}");
            sent += msg.len();
        }
        a.shutdown(std::net::Shutdown::Write).unwrap();
        sent
    };
    if has_concurrency(io) {
        // The server is a future task: on Green a worker polls it, off any fiber.
        let server = io.spawn_future(server);
        let sent = block_on(io, client);
        assert_eq!(server.join().unwrap(), sent);
    } else {
        let (echoed, sent) = block_on(io, futures::future::join(server, client));
        assert_eq!(echoed, sent);
    }
}

fn a_large_transfer_arrives_whole(io: &Io) {
    const LEN: usize = 4 * 1024 * 1024;
    let (a, b) = tcp_pair(io);
    let data = pattern(LEN, 7);
    let writer = async {
        for chunk in data.chunks(100_000) {
            write_all_owned!(a, chunk.to_vec());
        }
        a.shutdown(std::net::Shutdown::Write).unwrap();
    };
    let reader = async { read_owned_up_to!(b, usize::MAX, 64 * 1024) };
    let ((), got) = block_on(io, futures::future::join(writer, reader));
    assert_eq!(got.len(), LEN);
    let sum = |v: &[u8]| {
        v.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| {
            (h ^ u64::from(x)).wrapping_mul(0x100_0000_01b3)
        })
    };
    assert_eq!(sum(&got), sum(&data));
    assert!(got[..] == data[..]);
}

fn end_of_stream_and_errors_come_back_with_the_buffer(io: &Io) {
    let (a, b) = UnixStream::pair(io).unwrap();
    drop(a);
    let (n, buf) = block_on(io, b.read_owned(vec![9; 32]));
    assert_eq!(n.unwrap(), 0);
    assert_eq!(buf, vec![9; 32], "the buffer comes back untouched");
    // Writing to a peer that has gone: BrokenPipe, never SIGPIPE, buffer back.
    let (n, buf) = block_on(io, b.write_owned(b"gone".to_vec()));
    assert_eq!(n.unwrap_err().kind(), std::io::ErrorKind::BrokenPipe);
    assert_eq!(buf, b"gone");
    // An empty buffer reads 0 at once.
    let (c, _d) = UnixStream::pair(io).unwrap();
    let (n, buf) = block_on(io, c.read_owned(Vec::new()));
    assert_eq!((n.unwrap(), buf.len()), (0, 0));
}

/// Polls `fut` once from inside a zsync wait (on Green the worker's ring then takes it), then
/// drops it mid-op.
fn poll_once_then_drop<F: Future>(io: &Io, fut: F) {
    block_on(io, async {
        let mut fut = pin!(fut);
        std::future::poll_fn(|cx| {
            let _ = fut.as_mut().poll(cx);
            Poll::Ready(())
        })
        .await;
    });
}

fn a_read_future_dropped_mid_op_then_the_socket_closed(io: &Io) {
    for round in 0..20u8 {
        let (a, b) = UnixStream::pair(io).unwrap();
        // Nothing to read: on a ring the receive is in the kernel when the future goes; its
        // cancel, and its completion, come later, and the buffer must be alive until then.
        poll_once_then_drop(io, a.read_owned(vec![0; 64 * 1024]));
        poll_once_then_drop(io, a.read_owned(vec![0; 16]));
        drop(a);
        // The peer's data finds no reader, or a canceled one: either way nothing breaks.
        let _ = (&b).write(b"late");
        // The heap is reused at once: a freed buffer the kernel still wrote into would show up
        // under ASan, or as corrupted data here.
        let scratch = vec![round; 64 * 1024];
        let (c, d) = UnixStream::pair(io).unwrap();
        let (n, buf) = block_on(io, async {
            write_all_owned!(c, b"still fine".to_vec());
            d.read_owned(vec![0; 64]).await
        });
        assert_eq!(&buf[..n.unwrap()], b"still fine");
        assert!(scratch.iter().all(|&x| x == round));
    }
}

fn a_future_task_canceled_while_parked_in_read_owned(io: &Io) {
    if !has_concurrency(io) {
        // Blocking runs a future task to its end at once: nothing to cancel mid-wait.
        return;
    }
    let (a, b) = UnixStream::pair(io).unwrap();
    let a = Arc::new(a);
    for _ in 0..10 {
        let s = a.clone();
        let task = io.spawn_future(async move {
            let (n, buf) = s.read_owned(vec![0; 4096]).await;
            (n.map_err(|e| e.kind()), buf.len())
        });
        let_it_block();
        // Nobody writes: the task waits in `read_owned` until canceled; its op (on a ring)
        // is canceled when the future is dropped, and keeps its buffer until its completion.
        match task.cancel() {
            Err(e) => assert!(zsync::is_canceled(&e), "{e}"),
            Ok(v) => panic!("nothing was written, yet the read ended: {v:?}"),
        }
    }
    // The socket still works both ways.
    block_on(io, async {
        write_all_owned!(a, b"ping".to_vec());
        assert_eq!(read_owned_up_to!(b, 4, 16), b"ping");
    });
}

fn on_green_io_uring_the_receive_is_a_ring_op(io: &Io) {
    let (a, b) = UnixStream::pair(io).unwrap();
    (&b).write_all(b"ring").unwrap();
    let on_ring = io.backend_name() == "io_uring";
    let (first_poll_pending, n, buf) = block_on(io, async {
        let mut fut = pin!(a.read_owned(vec![0; 16]));
        // The data is there already: the readiness path returns it at the first poll; a ring
        // op is only queued by it, and completes after the worker's next turn of its ring.
        let first = std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await;
        match first {
            Poll::Ready((n, buf)) => (false, n, buf),
            Poll::Pending => {
                let (n, buf) = fut.await;
                (true, n, buf)
            }
        }
    });
    assert_eq!(&buf[..n.unwrap()], b"ring");
    assert_eq!(
        first_poll_pending,
        on_ring,
        "a ring op exactly on Green io_uring (backend {})",
        io.backend_name()
    );
    // Polled by a foreign executor on a fiber it is not a ring op (it would block the
    // worker's ring), and still completes.
    (&b).write_all(b"foreign").unwrap();
    let mut fut = pin!(a.read_owned(vec![0; 16]));
    let polled = fut.as_mut().poll(&mut Context::from_waker(Waker::noop()));
    match polled {
        Poll::Ready((n, buf)) => assert_eq!(&buf[..n.unwrap()], b"foreign"),
        Poll::Pending => panic!("the data was there: the readiness path returns it at once"),
    }
}

fn udp_datagrams_with_owned_buffers(io: &Io) {
    let a = UdpSocket::bind(io, "127.0.0.1:0").unwrap();
    let b = UdpSocket::bind(io, "127.0.0.1:0").unwrap();
    a.connect(b.local_addr().unwrap()).unwrap();
    b.connect(a.local_addr().unwrap()).unwrap();
    block_on(io, async {
        for round in 0..20u32 {
            let msg = pattern(1 + round as usize * 50, round);
            let (n, back) = a.send_owned(msg.clone()).await;
            assert_eq!((n.unwrap(), back.len()), (msg.len(), msg.len()));
            let (n, buf) = b.recv_owned(vec![0; 2048]).await;
            assert!(buf[..n.unwrap()] == msg[..], "round {round}");
        }
        // An empty datagram is sent and received, not skipped.
        let (n, _) = a.send_owned(Vec::new()).await;
        assert_eq!(n.unwrap(), 0);
        let (n, _) = b.recv_owned(vec![7; 8]).await;
        assert_eq!(n.unwrap(), 0);
        let (n, _) = a.send_owned(b"after".to_vec()).await;
        assert_eq!(n.unwrap(), 5);
        let (n, buf) = b.recv_owned(vec![0; 8]).await;
        assert_eq!(&buf[..n.unwrap()], b"after");
    });
}

conformance! {
    echo_round_trips_tcp_and_unix,
    an_echo_server_with_owned_buffers,
    a_large_transfer_arrives_whole,
    end_of_stream_and_errors_come_back_with_the_buffer,
    a_read_future_dropped_mid_op_then_the_socket_closed,
    a_future_task_canceled_while_parked_in_read_owned,
    on_green_io_uring_the_receive_is_a_ring_op,
    udp_datagrams_with_owned_buffers,
}
