//! Conformance tests: channels, oneshot and Queue on every model.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use zsync::channel::{
    self, oneshot, Queue, QueueErrorKind, Receiver, RecvError, SendError, TryRecvError,
    TrySendError,
};
use zsync::Io;

use crate::support::{assert_canceled, has_concurrency, let_it_block, wait_for};

// ---- basics -----------------------------------------------------------------------------------

fn fifo_order_is_kept(io: &Io) {
    let (tx, rx) = channel::unbounded();
    for i in 0..100 {
        tx.send(i).unwrap();
    }
    assert_eq!(rx.len(), 100);
    assert_eq!(
        rx.iter().take(100).collect::<Vec<_>>(),
        (0..100).collect::<Vec<_>>()
    );
    if !has_concurrency(io) {
        return;
    }
    // Through a small buffer with a concurrent producer, order still holds.
    let (tx, rx) = channel::bounded(3);
    let producer = io
        .concurrent(move |_| {
            for i in 0..1000u32 {
                tx.send(i).unwrap();
            }
        })
        .unwrap();
    for i in 0..1000u32 {
        assert_eq!(rx.recv(), Ok(i));
    }
    producer.join().unwrap();
    assert_eq!(rx.recv(), Err(RecvError::Closed));
}

fn close_drains_then_reports_closed(_io: &Io) {
    let (tx, rx) = channel::bounded(4);
    tx.send(1).unwrap();
    tx.send(2).unwrap();
    assert!(rx.close());
    assert!(!tx.close(), "closing twice reports false");
    assert!(tx.is_closed() && rx.is_closed());
    assert_eq!(tx.send(3), Err(SendError::Closed(3)));
    assert_eq!(tx.try_send(4), Err(TrySendError::Closed(4)));
    assert_eq!(rx.recv(), Ok(1));
    assert_eq!(rx.try_recv(), Ok(2));
    assert_eq!(rx.recv(), Err(RecvError::Closed));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
}

fn dropping_all_senders_closes_after_drain(_io: &Io) {
    let (tx, rx) = channel::bounded(2);
    let tx2 = tx.clone();
    tx.send("a").unwrap();
    drop(tx);
    assert!(!rx.is_closed(), "one sender is left");
    tx2.send("b").unwrap();
    drop(tx2);
    assert!(rx.is_closed());
    assert_eq!(rx.iter().collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(rx.recv(), Err(RecvError::Closed));
}

fn dropping_all_receivers_fails_sends(_io: &Io) {
    let (tx, rx) = channel::bounded(2);
    let rx2 = rx.clone();
    drop(rx);
    tx.send(1).unwrap();
    drop(rx2);
    assert_eq!(tx.send(2), Err(SendError::Closed(2)));
    assert_eq!(
        tx.len(),
        0,
        "buffered messages are dropped with the last receiver"
    );
    let err: std::io::Error = tx.send(3).unwrap_err().into();
    assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe);
}

fn recv_on_closed_empty_channel_does_not_hang(io: &Io) {
    // On Blocking this is the only way a recv can end without a message: it must not hang.
    let (tx, rx) = channel::bounded::<u8>(1);
    drop(tx);
    assert_eq!(rx.recv(), Err(RecvError::Closed));
    // A producer that finishes (inline on Blocking) before the consumer starts.
    let (tx, rx) = channel::unbounded();
    let producer = io.spawn(move |_| {
        for i in 0..10 {
            tx.send(i).unwrap();
        }
    });
    producer.join().unwrap();
    assert_eq!(rx.iter().sum::<i32>(), 45);
    assert_eq!(rx.recv(), Err(RecvError::Closed));
}

fn try_ops_on_full_and_empty(_io: &Io) {
    let (tx, rx) = channel::bounded(2);
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    assert_eq!(tx.try_send(1), Ok(()));
    assert_eq!(tx.try_send(2), Ok(()));
    assert_eq!(tx.try_send(3), Err(TrySendError::Full(3)));
    assert_eq!(
        (tx.len(), tx.capacity(), tx.is_empty()),
        (2, Some(2), false)
    );
    assert_eq!(rx.try_iter().collect::<Vec<_>>(), [1, 2]);
    assert!(rx.is_empty());
    let err: std::io::Error = tx
        .try_send(0)
        .and(tx.try_send(0))
        .and(tx.try_send(0))
        .unwrap_err()
        .into();
    assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
}

fn question_mark_works_in_io_result_functions(_io: &Io) {
    fn relay(rx: &Receiver<u32>, tx: &channel::Sender<u32>) -> std::io::Result<u32> {
        let v = rx.recv()?;
        tx.send(v + 1)?;
        Ok(v)
    }
    let (tx_a, rx_a) = channel::unbounded();
    let (tx_b, rx_b) = channel::unbounded();
    tx_a.send(41).unwrap();
    assert_eq!(relay(&rx_a, &tx_b).unwrap(), 41);
    assert_eq!(rx_b.try_recv(), Ok(42));
    drop(tx_a);
    let err = relay(&rx_a, &tx_b).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
}

fn wait_on_recv_event(io: &Io) {
    let (tx, rx) = channel::bounded(1);
    io.wait(tx.send_event(3)).unwrap().unwrap();
    assert_eq!(io.wait(rx.recv_event()).unwrap(), Ok(3));
    let deadline = crate::support::now() + Duration::from_millis(20);
    let err = io.wait_until(rx.recv_event(), deadline).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    tx.send(4).unwrap();
    let pending = tx.send_event(5);
    assert_eq!(pending.into_value(), Some(5));
    assert_eq!(rx.try_iter().collect::<Vec<_>>(), [4]);
}

// ---- blocking and timing ----------------------------------------------------------------------

fn send_blocks_while_full(io: &Io) {
    if !has_concurrency(io) {
        return;
    }
    let (tx, rx) = channel::bounded(2);
    let sent = Arc::new(AtomicUsize::new(0));
    let producer = {
        let sent = sent.clone();
        io.concurrent(move |_| {
            for i in 0..5 {
                tx.send(i).unwrap();
                sent.fetch_add(1, Ordering::SeqCst);
            }
        })
        .unwrap()
    };
    wait_for("two sends", || sent.load(Ordering::SeqCst) == 2);
    let_it_block();
    assert_eq!(
        sent.load(Ordering::SeqCst),
        2,
        "the third send waits for space"
    );
    assert_eq!(rx.len(), 2);
    assert_eq!(rx.recv(), Ok(0));
    wait_for("the third send", || sent.load(Ordering::SeqCst) == 3);
    let_it_block();
    assert_eq!(sent.load(Ordering::SeqCst), 3);
    assert_eq!(rx.iter().collect::<Vec<_>>(), [1, 2, 3, 4]);
    producer.join().unwrap();
    assert_eq!(sent.load(Ordering::SeqCst), 5);
}

fn rendezvous_send_completes_only_when_taken(io: &Io) {
    let (tx, rx) = channel::bounded(0);
    assert_eq!(tx.capacity(), Some(0));
    assert_eq!(
        tx.try_send(1),
        Err(TrySendError::Full(1)),
        "nobody is receiving"
    );
    let err = tx.send_timeout(2, Duration::from_millis(20)).unwrap_err();
    assert_eq!(err, SendError::TimedOut(2));
    assert_eq!(
        rx.try_recv(),
        Err(TryRecvError::Empty),
        "the withdrawn offer is gone"
    );
    if !has_concurrency(io) {
        return;
    }
    let returned = Arc::new(AtomicBool::new(false));
    let sender = {
        let returned = returned.clone();
        io.concurrent(move |_| {
            tx.send(7).unwrap();
            returned.store(true, Ordering::SeqCst);
            tx.send(8).unwrap();
        })
        .unwrap()
    };
    wait_for("the offer", || rx.len() == 1);
    let_it_block();
    assert!(!returned.load(Ordering::SeqCst), "no receiver took it yet");
    assert_eq!(rx.recv(), Ok(7));
    wait_for("the send to return", || returned.load(Ordering::SeqCst));
    assert_eq!(rx.recv(), Ok(8));
    sender.join().unwrap();
    assert_eq!(rx.recv(), Err(RecvError::Closed));
}

fn recv_timeout_times_out_in_time(_io: &Io) {
    let (tx, rx) = channel::bounded::<u8>(1);
    let start = crate::support::now();
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(50)),
        Err(RecvError::TimedOut)
    );
    let took = crate::support::elapsed(start);
    assert!(
        took >= Duration::from_millis(50) && took < Duration::from_secs(2),
        "{took:?}"
    );
    tx.send(1).unwrap();
    let start = crate::support::now();
    let err = tx
        .send_until(2, crate::support::now() + Duration::from_millis(50))
        .unwrap_err();
    assert!(err.is_timed_out());
    assert_eq!(err.into_inner(), 2);
    assert!(crate::support::elapsed(start) >= Duration::from_millis(50));
    assert_eq!(rx.recv_timeout(Duration::from_millis(50)), Ok(1));
    let err: std::io::Error = RecvError::TimedOut.into();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
}

fn task_deadline_applies_to_recv(io: &Io) {
    let (_tx, rx) = channel::unbounded::<u8>();
    let start = crate::support::now();
    let r = io.timeout_until(crate::support::now() + Duration::from_millis(30), |_| {
        rx.recv()
    });
    assert_eq!(r, Err(RecvError::TimedOut));
    assert!(crate::support::elapsed(start) >= Duration::from_millis(30));
}

// ---- cancellation -----------------------------------------------------------------------------

fn canceled_recv_takes_nothing(io: &Io) {
    if !has_concurrency(io) {
        return;
    }
    let (tx, rx) = channel::bounded::<u32>(4);
    let started = Arc::new(AtomicBool::new(false));
    let task = {
        let (rx, started) = (rx.clone(), started.clone());
        io.concurrent(move |_| {
            started.store(true, Ordering::SeqCst);
            rx.recv()
        })
        .unwrap()
    };
    wait_for("the receiver", || started.load(Ordering::SeqCst));
    let_it_block();
    let start = crate::support::now();
    assert_eq!(task.cancel().unwrap(), Err(RecvError::Canceled));
    assert!(
        crate::support::elapsed(start) < Duration::from_secs(2),
        "cancel was not prompt"
    );
    tx.send(7).unwrap();
    assert_eq!(rx.recv(), Ok(7));
    assert_eq!(
        rx.try_recv(),
        Err(TryRecvError::Empty),
        "received exactly once"
    );
    let err: std::io::Error = RecvError::Canceled.into();
    assert_canceled::<()>(Err(err));
}

fn canceled_send_gives_the_value_back(io: &Io) {
    if !has_concurrency(io) {
        return;
    }
    for cap in [1, 0] {
        let (tx, rx) = channel::bounded::<String>(cap);
        if cap == 1 {
            tx.send("first".to_string()).unwrap();
        }
        let started = Arc::new(AtomicBool::new(false));
        let task = {
            let (tx, started) = (tx.clone(), started.clone());
            io.concurrent(move |_| {
                started.store(true, Ordering::SeqCst);
                tx.send("second".to_string())
            })
            .unwrap()
        };
        wait_for("the sender", || started.load(Ordering::SeqCst));
        let_it_block();
        let start = crate::support::now();
        match task.cancel().unwrap() {
            Err(SendError::Canceled(v)) => assert_eq!(v, "second"),
            other => panic!("cap {cap}: expected Canceled(value), got {other:?}"),
        }
        assert!(crate::support::elapsed(start) < Duration::from_secs(2));
        if cap == 1 {
            assert_eq!(rx.recv().as_deref(), Ok("first"));
        }
        assert_eq!(
            rx.try_recv(),
            Err(TryRecvError::Empty),
            "cap {cap}: nothing else was sent"
        );
    }
}

fn iterator_stops_on_close_and_on_cancel(io: &Io) {
    let (tx, rx) = channel::unbounded();
    let producer = io.spawn(move |_| {
        for i in 1..=50u64 {
            tx.send(i).unwrap();
        }
    });
    let mut total = 0;
    for v in &rx {
        total += v;
    }
    assert_eq!(total, 1275);
    producer.join().unwrap();
    if !has_concurrency(io) {
        return;
    }
    let (tx, rx) = channel::unbounded();
    let seen = Arc::new(AtomicUsize::new(0));
    let consumer = {
        let (seen, rx) = (seen.clone(), rx.clone());
        io.concurrent(move |_| {
            for _ in rx {
                seen.fetch_add(1, Ordering::SeqCst);
            }
            "stopped"
        })
        .unwrap()
    };
    for i in 0..3 {
        tx.send(i).unwrap();
    }
    wait_for("three messages", || seen.load(Ordering::SeqCst) == 3);
    assert_eq!(consumer.cancel().unwrap(), "stopped");
    assert!(
        !tx.is_closed(),
        "the sender is alive; only the cancel stopped the iterator"
    );
}

// ---- oneshot ----------------------------------------------------------------------------------

fn oneshot_value_closed_timeout_cancel(io: &Io) {
    let (tx, rx) = oneshot();
    let t = io.spawn(move |_| tx.send(5u8));
    assert_eq!(rx.recv(), Ok(5));
    t.join().unwrap().unwrap();
    assert_eq!(rx.recv(), Err(RecvError::Closed), "one value, once");

    let (tx, rx) = oneshot::<u8>();
    drop(tx);
    assert_eq!(rx.recv(), Err(RecvError::Closed));

    let (tx, rx) = oneshot::<u8>();
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(20)),
        Err(RecvError::TimedOut)
    );
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    rx.close();
    assert!(tx.is_closed());
    assert_eq!(tx.send(1), Err(1));

    if !has_concurrency(io) {
        return;
    }
    let (tx, rx) = oneshot::<u8>();
    let started = Arc::new(AtomicBool::new(false));
    let waiter = {
        let started = started.clone();
        io.concurrent(move |_| {
            started.store(true, Ordering::SeqCst);
            let r = rx.recv();
            (r, rx)
        })
        .unwrap()
    };
    wait_for("the oneshot receiver", || started.load(Ordering::SeqCst));
    let_it_block();
    let (r, rx) = waiter.cancel().unwrap();
    assert_eq!(r, Err(RecvError::Canceled));
    tx.send(9).unwrap();
    assert_eq!(rx.recv(), Ok(9), "the value waits for a later recv");
}

// ---- Queue ------------------------------------------------------------------------------------

fn queue_put_get_with_min(io: &Io) {
    let q = Queue::new(4);
    assert_eq!(
        q.put(&[1, 2, 3, 4, 5, 6], 0),
        Ok(4),
        "as many as fit, min 0 never waits"
    );
    let mut buf = [0; 3];
    assert_eq!(q.get(&mut buf, 1), Ok(3));
    assert_eq!(buf, [1, 2, 3]);
    let err = q.get_until(
        &mut buf,
        3,
        crate::support::now() + Duration::from_millis(20),
    );
    assert_eq!(
        err.unwrap_err().count,
        1,
        "moved one, then timed out short of min"
    );
    assert_eq!(buf[0], 4);
    q.put_one(10).unwrap();
    assert_eq!(q.get_one(), Ok(10));
    if !has_concurrency(io) {
        q.close();
        assert_eq!(q.get_one(), Err(RecvError::Closed));
        return;
    }
    // A get with min 5 returns only after two puts supplied five elements.
    let q = Arc::new(Queue::new(8));
    let getter = {
        let q = q.clone();
        io.concurrent(move |_| {
            let mut buf = [0u32; 6];
            let n = q.get(&mut buf, 5).unwrap();
            buf[..n].to_vec()
        })
        .unwrap()
    };
    q.put_all(&[1, 2]).unwrap();
    let_it_block();
    assert!(!getter.is_finished(), "two of five");
    q.put_all(&[3, 4, 5]).unwrap();
    assert_eq!(getter.join().unwrap(), [1, 2, 3, 4, 5]);
    // A put_all larger than the capacity completes as a consumer makes room.
    let q = Arc::new(Queue::new(4));
    let putter = {
        let q = q.clone();
        io.concurrent(move |_| {
            let items: Vec<u32> = (0..100).collect();
            q.put_all(&items).unwrap();
            q.close();
        })
        .unwrap()
    };
    let mut got = Vec::new();
    let mut buf = [0u32; 7];
    loop {
        match q.get(&mut buf, 3) {
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => {
                assert_eq!(e.kind, QueueErrorKind::Closed);
                got.extend_from_slice(&buf[..e.count]);
                break;
            }
        }
    }
    putter.join().unwrap();
    assert_eq!(got, (0..100).collect::<Vec<_>>());
}

fn queue_cancel_keeps_partial_progress(io: &Io) {
    if !has_concurrency(io) {
        return;
    }
    let q = Arc::new(Queue::new(2));
    let started = Arc::new(AtomicBool::new(false));
    let putter = {
        let (q, started) = (q.clone(), started.clone());
        io.concurrent(move |_| {
            started.store(true, Ordering::SeqCst);
            q.put_all(&[1, 2, 3, 4])
        })
        .unwrap()
    };
    wait_for("the putter", || started.load(Ordering::SeqCst));
    wait_for("two elements", || q.len() == 2);
    let_it_block();
    let err = putter.cancel().unwrap().unwrap_err();
    assert_eq!((err.kind, err.count), (QueueErrorKind::Canceled, 2));
    let mut buf = [0; 4];
    assert_eq!(q.get(&mut buf, 0), Ok(2));
    assert_eq!(buf[..2], [1, 2]);
}

/// Every waiting Queue call has a `_timeout` and an `_until` form; each keeps what it moved.
fn queue_timeouts_and_deadlines(io: &Io) {
    let ms = Duration::from_millis;
    let q = Queue::new(2);
    let err = q.put_timeout(&[1, 2, 3], 3, ms(10)).unwrap_err();
    assert_eq!((err.kind, err.count), (QueueErrorKind::TimedOut, 2));
    assert!(err.is_timed_out() && !err.is_closed());
    let err = q
        .put_until(&[4], 1, crate::support::now() + ms(10))
        .unwrap_err();
    assert_eq!(err.count, 0);
    assert!(q.put_all_timeout(&[5], ms(10)).unwrap_err().is_timed_out());
    assert!(q
        .put_all_until(&[5], crate::support::now() + ms(10))
        .unwrap_err()
        .is_timed_out());
    let err = q.put_one_timeout(6, ms(10)).unwrap_err();
    assert_eq!(err, SendError::TimedOut(6));
    assert_eq!(
        q.put_one_until(7, crate::support::now() + ms(10)),
        Err(SendError::TimedOut(7))
    );
    let r = io.timeout_until(crate::support::now() + ms(10), |_| q.put_all(&[8]));
    assert!(r.unwrap_err().is_timed_out(), "the task's deadline applies");
    let mut buf = [0; 3];
    let err = q.get_timeout(&mut buf, 3, ms(10)).unwrap_err();
    assert_eq!(
        (err.kind, err.count, &buf[..2]),
        (QueueErrorKind::TimedOut, 2, &[1, 2][..])
    );
    assert_eq!(
        q.get_until(&mut buf, 1, crate::support::now() + ms(10))
            .unwrap_err()
            .count,
        0
    );
    assert_eq!(q.get_one_timeout(ms(10)), Err(RecvError::TimedOut));
    assert_eq!(
        q.get_one_until(crate::support::now() + ms(10)),
        Err(RecvError::TimedOut)
    );
    io.wait(q.put_event(9)).unwrap().unwrap();
    assert_eq!(q.get_one_timeout(ms(5000)), Ok(9));
    assert_eq!(q.put_timeout(&[10, 11], 2, ms(5000)), Ok(2));
    assert_eq!(
        q.get_until(&mut buf, 2, crate::support::now() + ms(5000)),
        Ok(2)
    );
    q.close();
    let err = q.get_timeout(&mut buf, 1, ms(5000)).unwrap_err();
    assert!(err.is_closed());
    assert!(zsync::is_closed(&err.into()));
}

/// `zsync::is_closed` recognises every closed-channel error converted into `io::Error`, and
/// nothing else.
fn closed_errors_are_recognisable(_io: &Io) {
    let closed: Vec<std::io::Error> = vec![
        SendError::Closed(1).into(),
        RecvError::Closed.into(),
        TrySendError::Closed(1).into(),
        TryRecvError::Closed.into(),
        zsync::channel::QueueError {
            kind: QueueErrorKind::Closed,
            count: 0,
        }
        .into(),
        zsync::channel::broadcast::RecvError::Closed.into(),
    ];
    for e in &closed {
        assert!(zsync::is_closed(e), "{e:?}");
    }
    assert!(RecvError::Closed.is_closed() && TryRecvError::Closed.is_closed());
    assert!(TrySendError::Closed(()).is_closed() && SendError::Closed(()).is_closed());
    for e in [
        std::io::Error::from(std::io::ErrorKind::BrokenPipe),
        RecvError::TimedOut.into(),
        zsync::canceled(),
    ] {
        assert!(!zsync::is_closed(&e), "{e:?}");
    }
}

/// An element whose `clone` announces itself, then waits for an event: user code that blocks.
struct Slow {
    cloning: Arc<AtomicBool>,
    gate: Arc<zsync::sync::ResetEvent>,
}

impl Clone for Slow {
    fn clone(&self) -> Slow {
        self.cloning.store(true, Ordering::SeqCst);
        self.gate.wait().unwrap();
        Slow {
            cloning: self.cloning.clone(),
            gate: self.gate.clone(),
        }
    }
}

/// `Queue::put` clones with the queue's lock released: a clone that blocks until another task
/// has put into the same queue does not deadlock it (it used to hold the queue's std mutex while
/// its fiber or thread was parked, so the other task's put blocked its thread on the mutex).
fn queue_clone_runs_unlocked(io: &Io) {
    if !has_concurrency(io) {
        return;
    }
    let cloning = Arc::new(AtomicBool::new(false));
    let gate = Arc::new(zsync::sync::ResetEvent::new());
    let item = Slow {
        cloning: cloning.clone(),
        gate: gate.clone(),
    };
    let q = Arc::new(Queue::new(4));
    let putter = {
        let q = q.clone();
        io.concurrent(move |_| q.put_all(&[item]).map_err(|e| e.kind))
            .unwrap()
    };
    let other = {
        let (q, cloning, gate) = (q.clone(), cloning.clone(), gate.clone());
        io.concurrent(move |_| {
            wait_for("the putter's clone", || cloning.load(Ordering::SeqCst));
            // The putter is inside `T::clone`: using the queue must not wait for it.
            q.put_all(&[]).map_err(|e| e.kind)?;
            let r = q.len();
            gate.set();
            Ok::<_, QueueErrorKind>(r)
        })
        .unwrap()
    };
    assert_eq!(other.join().unwrap(), Ok(0));
    putter.join().unwrap().unwrap();
    assert_eq!(q.len(), 1);
}

// ---- stress -----------------------------------------------------------------------------------

const PRODUCERS: u32 = 4;
const CONSUMERS: usize = 4;
/// Sized so that the rendezvous stress on Threaded (a thread wake-up per message) stays within
/// seconds with two CPU hogs running (10 000 took 14 s there).
const PER_PRODUCER: u32 = 5_000;

/// 4 producers x 4 consumers x 5 000 messages each: every message arrives exactly once.
fn mpmc_stress(io: &Io, cap: Option<usize>) {
    let (tx, rx) = match cap {
        Some(c) => channel::bounded::<u32>(c),
        None => channel::unbounded(),
    };
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let tx = tx.clone();
            io.concurrent(move |_| {
                for i in 0..PER_PRODUCER {
                    tx.send(p * PER_PRODUCER + i).unwrap();
                }
            })
            .unwrap()
        })
        .collect();
    drop(tx);
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|_| {
            let rx = rx.clone();
            io.concurrent(move |_| rx.iter().collect::<Vec<u32>>())
                .unwrap()
        })
        .collect();
    drop(rx);
    for p in producers {
        p.join().unwrap();
    }
    check_exactly_once(consumers.into_iter().map(|c| c.join().unwrap()));
}

fn check_exactly_once(parts: impl Iterator<Item = Vec<u32>>) {
    let total = (PRODUCERS * PER_PRODUCER) as usize;
    let mut seen = vec![false; total];
    let mut count = 0;
    for part in parts {
        // Per producer, one consumer sees its messages in order.
        let mut last = vec![None; PRODUCERS as usize];
        for v in part {
            assert!(
                !std::mem::replace(&mut seen[v as usize], true),
                "{v} received twice"
            );
            let p = (v / PER_PRODUCER) as usize;
            assert!(last[p] < Some(v), "FIFO per producer broken at {v}");
            last[p] = Some(v);
            count += 1;
        }
    }
    assert_eq!(count, total);
    assert!(seen.iter().all(|&s| s));
}

fn stress_bounded_mpmc(io: &Io) {
    if has_concurrency(io) {
        mpmc_stress(io, Some(16));
    }
}

fn stress_unbounded_mpmc(io: &Io) {
    if has_concurrency(io) {
        mpmc_stress(io, None);
    }
}

fn stress_rendezvous_mpmc(io: &Io) {
    if has_concurrency(io) {
        mpmc_stress(io, Some(0));
    }
}

/// Capacity 1: nearly every send and receive of the lock-free bounded channel meets a full or
/// empty buffer, so both sides keep registering and being woken.
fn stress_bounded_one_mpmc(io: &Io) {
    if has_concurrency(io) {
        mpmc_stress(io, Some(1));
    }
}

/// Producers send until the channel is closed under them, mid-stream (by the consumer that takes
/// the 1000th message);
/// consumers receive until `Closed`. The messages received are exactly those whose send
/// reported success (each once): a send racing the close is either refused with its value back,
/// or delivered — never accepted and then lost behind a `Closed`.
fn stress_close_racing_sends(io: &Io) {
    if !has_concurrency(io) {
        return;
    }
    for cap in [1, 4, 64] {
        let (tx, rx) = channel::bounded::<u32>(cap);
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let tx = tx.clone();
                io.concurrent(move |_| {
                    let mut sent = Vec::new();
                    for i in 0..PER_PRODUCER {
                        let v = p * PER_PRODUCER + i;
                        match tx.send(v) {
                            Ok(()) => sent.push(v),
                            Err(e) => {
                                assert!(e.is_closed());
                                assert_eq!(e.into_inner(), v, "the refused value comes back");
                                break;
                            }
                        }
                    }
                    sent
                })
                .unwrap()
            })
            .collect();
        drop(tx);
        let received = Arc::new(AtomicUsize::new(0));
        let consumers: Vec<_> = (0..CONSUMERS)
            .map(|_| {
                let (rx, received) = (rx.clone(), received.clone());
                io.concurrent(move |_| {
                    let mut got = Vec::new();
                    while let Ok(v) = rx.recv() {
                        got.push(v);
                        if received.fetch_add(1, Ordering::Relaxed) + 1 == 1000 {
                            rx.close();
                        }
                    }
                    got
                })
                .unwrap()
            })
            .collect();
        drop(rx);
        let mut sent: Vec<u32> = producers
            .into_iter()
            .flat_map(|p| p.join().unwrap())
            .collect();
        let mut got: Vec<u32> = consumers
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect();
        sent.sort_unstable();
        got.sort_unstable();
        assert!(
            sent.len() < (PRODUCERS * PER_PRODUCER) as usize,
            "cap {cap}: never closed"
        );
        assert_eq!(got, sent, "cap {cap}: received != successfully sent");
    }
}

/// Consumers are canceled at random moments (mostly while blocked in `recv`) and replaced; the
/// messages they received plus everyone else's are exactly the messages sent.
fn stress_random_receiver_cancellation(io: &Io) {
    if !has_concurrency(io) {
        return;
    }
    for cap in [Some(8), None, Some(0)] {
        let (tx, rx) = match cap {
            Some(c) => channel::bounded::<u32>(c),
            None => channel::unbounded(),
        };
        // Producers pace themselves on the cancellation rounds, so that cancellations really
        // happen mid-stream however the scheduler (or a loaded machine) orders the tasks.
        let rounds = Arc::new(AtomicUsize::new(0));
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let (tx, rounds) = (tx.clone(), rounds.clone());
                io.concurrent(move |io| {
                    for i in 0..PER_PRODUCER / 4 {
                        tx.send(p * PER_PRODUCER + i).unwrap();
                        if i % 64 == 0 {
                            io.sleep(Duration::from_micros(50)).unwrap();
                        }
                        while (rounds.load(Ordering::SeqCst) as u32) < i / 256 {
                            io.sleep(Duration::from_micros(50)).unwrap();
                        }
                    }
                })
                .unwrap()
            })
            .collect();
        drop(tx);
        let consumer = |io: &Io, rx: &Receiver<u32>| {
            let rx = rx.clone();
            io.concurrent(move |_| {
                let mut got = Vec::new();
                loop {
                    match rx.recv() {
                        Ok(v) => got.push(v),
                        Err(RecvError::Closed) => return (got, false),
                        Err(e) => {
                            assert_eq!(e, RecvError::Canceled);
                            return (got, true);
                        }
                    }
                }
            })
            .unwrap()
        };
        let mut consumers: Vec<_> = (0..CONSUMERS).map(|_| consumer(io, &rx)).collect();
        let mut parts = Vec::new();
        let mut canceled = 0;
        let mut rng = 0x9E37_79B9_u32;
        while !rx.is_closed() {
            rng ^= rng << 13;
            rng ^= rng >> 17;
            rng ^= rng << 5;
            io.sleep(Duration::from_micros(u64::from(rng % 300)))
                .unwrap();
            let victim = consumers.swap_remove(rng as usize % consumers.len());
            let (got, was_canceled) = victim.cancel().unwrap();
            canceled += usize::from(was_canceled);
            parts.push(got);
            consumers.push(consumer(io, &rx));
            rounds.fetch_add(1, Ordering::SeqCst);
        }
        for p in producers {
            p.join().unwrap();
        }
        for c in consumers {
            parts.push(c.join().unwrap().0);
        }
        assert!(
            canceled > 0,
            "cap {cap:?}: no receiver was canceled mid-stream"
        );
        let per = PER_PRODUCER / 4;
        let mut seen = vec![false; (PRODUCERS * PER_PRODUCER) as usize];
        let mut count = 0u32;
        for v in parts.into_iter().flatten() {
            assert!(
                !std::mem::replace(&mut seen[v as usize], true),
                "{v} received twice"
            );
            assert!(v % PER_PRODUCER < per);
            count += 1;
        }
        assert_eq!(count, PRODUCERS * per, "cap {cap:?}: messages lost");
    }
}

/// Every closed-channel error answers `is_closed()`, and the `io::Error` it converts into (by `?`)
/// is recognised by `zsync::is_closed`, through one more wrapping too; a cancel or timeout is not.
fn closed_errors_are_recognised_after_conversion(io: &Io) {
    fn as_io<E: Into<std::io::Error>>(e: E) -> std::io::Error {
        e.into()
    }
    let (tx, rx) = channel::bounded::<u8>(1);
    drop(rx);
    let e = tx.send(1).unwrap_err();
    assert!(e.is_closed());
    assert!(zsync::is_closed(&as_io(e)));
    let e = tx.try_send(2).unwrap_err();
    assert!(e.is_closed() && !e.is_full());
    assert!(zsync::is_closed(&as_io(e)));

    let (tx, rx) = channel::unbounded::<u8>();
    drop(tx);
    let e = rx.recv().unwrap_err();
    assert!(e.is_closed() && !e.is_canceled() && !e.is_timed_out());
    let wrapped = std::io::Error::other(as_io(e));
    assert!(zsync::is_closed(&wrapped));
    let e = rx.try_recv().unwrap_err();
    assert!(e.is_closed() && !e.is_empty());
    assert!(zsync::is_closed(&as_io(e)));

    let (tx, rx) = oneshot::<u8>();
    drop(tx);
    assert!(zsync::is_closed(&as_io(rx.recv().unwrap_err())));

    let q = Queue::<u8>::new(2);
    q.close();
    let e = q.put(&[1], 1).unwrap_err();
    assert!(e.is_closed() && !e.is_canceled() && !e.is_timed_out());
    assert!(zsync::is_closed(&as_io(e)));

    let sem = zsync::sync::Semaphore::new(1);
    sem.close();
    assert!(sem.try_acquire().unwrap_err().is_closed());
    assert!(zsync::is_closed(&sem.acquire().unwrap_err()));

    // Not closed: a timed-out receive, and a canceled one.
    let (_tx, rx) = channel::bounded::<u8>(1);
    let e = rx.recv_timeout(Duration::from_millis(1)).unwrap_err();
    assert!(e.is_timed_out() && !e.is_closed());
    assert!(!zsync::is_closed(&as_io(e)));
    let r = io.timeout(Duration::from_millis(1), |_| rx.recv().map_err(as_io));
    assert!(!zsync::is_closed(&r.unwrap_err()));
    assert!(!zsync::is_closed(&zsync::canceled()));
}

conformance! {
    on sim:
        closed_errors_are_recognised_after_conversion,
        fifo_order_is_kept,
        close_drains_then_reports_closed,
        dropping_all_senders_closes_after_drain,
        dropping_all_receivers_fails_sends,
        recv_on_closed_empty_channel_does_not_hang,
        try_ops_on_full_and_empty,
        question_mark_works_in_io_result_functions,
        wait_on_recv_event,
        send_blocks_while_full,
        rendezvous_send_completes_only_when_taken,
        recv_timeout_times_out_in_time,
        task_deadline_applies_to_recv,
        canceled_recv_takes_nothing,
        canceled_send_gives_the_value_back,
        iterator_stops_on_close_and_on_cancel,
        oneshot_value_closed_timeout_cancel,
        queue_put_get_with_min,
        queue_cancel_keeps_partial_progress,
        queue_clone_runs_unlocked,
        queue_timeouts_and_deadlines,
        closed_errors_are_recognisable,
        stress_bounded_mpmc,
        stress_bounded_one_mpmc,
        stress_close_racing_sends,
        stress_unbounded_mpmc,
        stress_rendezvous_mpmc,
        stress_random_receiver_cancellation,
    ;
    not on sim:
}
