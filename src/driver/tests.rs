//! Unit tests of the async driver that need its insides: the process-wide fallback, what a
//! runtime's end does to its values, stale events, the readiness protocol.

use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use super::source::{Ready, Waiter};
use super::*;
use crate::park::Interest;
use crate::test_waker::{counter, wakes};

/// A minimal executor: polls on the calling thread, parking it in between (what a foreign
/// executor such as `futures::executor::block_on` does).
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(v) = future.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

/// What `Io::spawn_future` needs of them: `Send` futures.
#[test]
fn the_futures_are_send() {
    fn send<T: Send>(_: &T) {}
    fn sync<T: Send + Sync>() {}
    sync::<crate::time::Sleep>();
    sync::<crate::time::Timeout<std::future::Ready<()>>>();
    sync::<crate::select::SleepEvent>();
    crate::run(crate::Model::Blocking, |io| {
        let (a, _b) = crate::net::UnixStream::pair(io).unwrap();
        let mut buf = [0; 4];
        send(&a.read_async(&mut buf));
        send(&a.write_async(b"x"));
        let udp = crate::net::UdpSocket::bind(io, "127.0.0.1:0").unwrap();
        send(&udp.recv_from_async(&mut buf));
        let l = crate::net::TcpListener::bind(io, "127.0.0.1:0").unwrap();
        send(&l.accept_async());
        send(&crate::net::TcpStream::connect_async(
            io,
            l.local_addr().unwrap(),
        ));
    });
}

#[test]
fn a_sleep_outside_any_runtime_runs_on_the_process_wide_driver() {
    let at = Instant::now() + Duration::from_millis(5);
    block_on(crate::time::sleep_until(at));
    assert!(Instant::now() >= at);
    let e = block_on(crate::time::timeout(
        Duration::from_millis(2),
        std::future::pending::<()>(),
    ))
    .unwrap_err();
    assert!(crate::is_timed_out(&e));
}

#[test]
fn a_sleep_armed_in_a_runtime_that_ended_moves_to_the_process_wide_driver() {
    for model in [
        crate::Model::Blocking,
        crate::Model::Threaded,
        crate::Model::Green,
    ] {
        // Far enough not to pass while the runtime starts on a loaded machine; moved close
        // once the runtime has ended.
        let mut sleep = crate::time::sleep(Duration::from_secs(3600));
        let (woken, waker) = counter();
        crate::run(model, |io| {
            let mut cx = Context::from_waker(&waker);
            assert!(Pin::new(&mut sleep).poll(&mut cx).is_pending());
            assert_eq!(io.async_driver_counts().1, 1);
        });
        // The runtime's end woke the waiter, so that it re-polls and re-arms elsewhere.
        assert!(wakes(&woken) >= 1);
        let deadline = Instant::now() + Duration::from_millis(5);
        sleep.reset(deadline);
        block_on(sleep);
        assert!(Instant::now() >= deadline);
    }
}

#[test]
fn a_socket_registered_in_a_runtime_that_ended_reports_it() {
    let stream = crate::run(crate::Model::Threaded, |io| {
        let (a, _b) = crate::net::UnixStream::pair(io).unwrap();
        let mut cx = Context::from_waker(Waker::noop());
        assert!(a.poll_write_ready(&mut cx).is_ready());
        assert_eq!(io.async_driver_counts().0, 1);
        a
    });
    let mut cx = Context::from_waker(Waker::noop());
    match stream.poll_read_ready(&mut cx) {
        Poll::Ready(Err(e)) => assert!(e.to_string().contains("shut down"), "{e}"),
        other => panic!("expected the shut-down error, got {other:?}"),
    }
    // A socket first used after its runtime ended registers with the process-wide driver.
    let late = crate::run(crate::Model::Blocking, |io| {
        crate::net::UnixStream::pair(io).unwrap()
    });
    let mut buf = [0; 1];
    let write = late.1.write_async(b"z");
    assert_eq!(block_on(write).unwrap(), 1);
    assert_eq!(block_on(late.0.read_async(&mut buf)).unwrap(), 1);
}

#[test]
fn a_runtime_that_never_used_the_driver_makes_none() {
    let io = crate::run(crate::Model::Threaded, |io| io.clone());
    assert!(io.inner.state.driver.get().is_none());
    assert_eq!(io.async_driver_counts(), (0, 0));
}

#[test]
fn an_event_for_a_removed_source_reaches_nobody() {
    let driver = Driver::threaded().unwrap();
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    let first = driver.register(a.as_fd()).unwrap();
    let old_key = first.key();
    driver.deregister(a.as_fd(), &first);
    let second = driver.register(a.as_fd()).unwrap();
    assert_ne!(second.key(), old_key, "a reused slot gets a new generation");
    let (woken, waker) = counter();
    let mut cx = Context::from_waker(&waker);
    // Use up the initial readiness, then wait.
    let _ = second.try_io(Interest::Read, || -> io::Result<()> {
        Err(io::ErrorKind::WouldBlock.into())
    });
    assert!(second
        .poll_ready(Interest::Read, &mut cx, Waiter::Poll)
        .is_pending());
    let mut wake = Vec::new();
    driver
        .registry
        .dispatch(&[(old_key, Ready::from_epoll(EventFlags::IN))], &mut wake);
    assert!(wake.is_empty(), "the stale key finds nobody");
    driver.registry.dispatch(
        &[(second.key(), Ready::from_epoll(EventFlags::IN))],
        &mut wake,
    );
    wake_contained(wake);
    assert_eq!(wakes(&woken), 1);
    driver.deregister(a.as_fd(), &second);
    assert_eq!(driver.registered(), 0);
    driver.close();
}

#[test]
fn a_would_block_after_a_newer_event_keeps_the_readiness() {
    let driver = Driver::threaded().unwrap();
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    let source = driver.register(a.as_fd()).unwrap();
    let mut cx = Context::from_waker(Waker::noop());
    // An event lands while the operation runs: its WouldBlock must not clear the bit.
    let _ = source.try_io(Interest::Read, || -> io::Result<()> {
        let mut wake = Vec::new();
        source.set_ready(Ready::from_epoll(EventFlags::IN), &mut wake);
        Err(io::ErrorKind::WouldBlock.into())
    });
    assert!(source
        .poll_ready(Interest::Read, &mut cx, Waiter::Poll)
        .is_ready());
    // An event for the other direction meanwhile does not keep it (a tick per direction).
    let _ = source.try_io(Interest::Read, || -> io::Result<()> {
        let mut wake = Vec::new();
        source.set_ready(Ready::from_epoll(EventFlags::OUT), &mut wake);
        Err(io::ErrorKind::WouldBlock.into())
    });
    assert!(source
        .poll_ready(Interest::Read, &mut cx, Waiter::Poll)
        .is_pending());
    let mut wake = Vec::new();
    source.set_ready(Ready::from_epoll(EventFlags::IN), &mut wake);
    // Without one, it clears; the other direction is untouched.
    let _ = source.try_io(Interest::Read, || -> io::Result<()> {
        Err(io::ErrorKind::WouldBlock.into())
    });
    assert!(source
        .poll_ready(Interest::Read, &mut cx, Waiter::Poll)
        .is_pending());
    assert!(source
        .poll_ready(Interest::Write, &mut cx, Waiter::Poll)
        .is_ready());
    // Keyed waiters are all woken, and leave without a trace.
    let (w1, k1) = counter();
    let (w2, k2) = counter();
    let (mut key1, mut key2) = (None, None);
    let mut cx1 = Context::from_waker(&k1);
    let mut cx2 = Context::from_waker(&k2);
    assert!(source
        .poll_ready(Interest::Read, &mut cx1, Waiter::Keyed(&mut key1))
        .is_pending());
    assert!(source
        .poll_ready(Interest::Read, &mut cx2, Waiter::Keyed(&mut key2))
        .is_pending());
    let mut wake = Vec::new();
    source.set_ready(Ready::from_epoll(EventFlags::IN), &mut wake);
    wake_contained(wake);
    assert_eq!((wakes(&w1), wakes(&w2)), (1, 1));
    source.leave(Interest::Read, key1.unwrap());
    source.leave(Interest::Read, key2.unwrap());
    driver.deregister(a.as_fd(), &source);
    driver.close();
}

#[test]
fn a_panicking_waker_does_not_stop_the_driver() {
    struct Panics;
    impl Wake for Panics {
        fn wake(self: Arc<Self>) {
            panic!("a waker that panics");
        }
    }
    let driver = Driver::threaded().unwrap();
    let now = Instant::now();
    driver.arm_timer(None, now, Waker::from(Arc::new(Panics)));
    let (woken, waker) = counter();
    driver.arm_timer(None, now, waker);
    let deadline = Instant::now() + Duration::from_secs(60);
    while wakes(&woken) == 0 {
        assert!(Instant::now() < deadline, "the second timer never fired");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(driver.armed_timers(), 0);
    driver.close();
}

#[test]
fn one_green_worker_turns_the_driver_alone() {
    let mut backends = vec![crate::Backend::Epoll];
    if crate::Backend::IoUring.resolve().is_ok() {
        backends.push(crate::Backend::IoUring);
    }
    for backend in backends {
        let builder = crate::Builder::new(crate::Model::Green)
            .worker_threads(1)
            .backend(backend);
        builder.run(|io| {
            let at = Instant::now() + Duration::from_millis(3);
            io.block_on(crate::time::sleep_until(at)).unwrap();
            assert!(Instant::now() >= at);
            let (a, b) = crate::net::UnixStream::pair(io).unwrap();
            // A future task writes later; the root waits for the data through the driver.
            let writer = io.spawn_future(async move {
                crate::time::sleep(Duration::from_millis(2)).await;
                b.write_async(b"!").await.unwrap()
            });
            let mut buf = [0; 1];
            assert_eq!(io.block_on(a.read_async(&mut buf)).unwrap().unwrap(), 1);
            assert_eq!(writer.join().unwrap(), 1);
        });
    }
}

#[test]
fn a_short_transfer_uses_the_readiness_up_but_never_past_a_hang_up() {
    let driver = Driver::threaded().unwrap();
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    let source = driver.register(a.as_fd()).unwrap();
    let mut cx = Context::from_waker(Waker::noop());
    let mut wake = Vec::new();
    // A full transfer keeps it (more may be there); a short one clears it, as WouldBlock would.
    assert_eq!(source.try_transfer(Interest::Read, 8, || Ok(8)).unwrap(), 8);
    assert!(source
        .poll_ready(Interest::Read, &mut cx, Waiter::Poll)
        .is_ready());
    assert_eq!(source.try_transfer(Interest::Read, 8, || Ok(3)).unwrap(), 3);
    assert!(source
        .poll_ready(Interest::Read, &mut cx, Waiter::Poll)
        .is_pending());
    // The end of the stream (0) keeps it.
    source.set_ready(Ready::from_epoll(EventFlags::IN), &mut wake);
    assert_eq!(source.try_transfer(Interest::Read, 8, || Ok(0)).unwrap(), 0);
    assert!(source
        .poll_ready(Interest::Read, &mut cx, Waiter::Poll)
        .is_ready());
    // After the peer's hang-up, a short read that drains the last data keeps it: the end of
    // the stream is still to be read, and no further edge will announce it.
    source.set_ready(
        Ready::from_epoll(EventFlags::IN | EventFlags::RDHUP),
        &mut wake,
    );
    assert_eq!(source.try_transfer(Interest::Read, 8, || Ok(3)).unwrap(), 3);
    assert!(source
        .poll_ready(Interest::Read, &mut cx, Waiter::Poll)
        .is_ready());
    let _ = source.try_io(Interest::Read, || -> io::Result<()> {
        Err(io::ErrorKind::WouldBlock.into())
    });
    assert!(source
        .poll_ready(Interest::Read, &mut cx, Waiter::Poll)
        .is_ready());
    // Writes: a short one clears the write readiness alone.
    assert_eq!(
        source.try_transfer(Interest::Write, 8, || Ok(5)).unwrap(),
        5
    );
    assert!(source
        .poll_ready(Interest::Write, &mut cx, Waiter::Poll)
        .is_pending());
    wake_contained(wake);
}
