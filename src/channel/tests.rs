//! Unit tests of the channel core at the event level, with counting wakers (no runtime).

use std::sync::Arc;
use std::task::Poll;

use super::*;

use crate::test_waker::{counter, wakes};

#[test]
fn pending_recv_is_woken_by_send_and_takes_the_message() {
    let (tx, rx) = bounded(2);
    let (c, w) = counter();
    let mut ev = rx.recv_event();
    assert!(ev.poll_event(&w).is_pending());
    tx.try_send(5).unwrap();
    assert_eq!(wakes(&c), 1);
    assert_eq!(ev.poll_event(&w), Poll::Ready(Ok(5)));
}

#[test]
fn uncontended_send_notifies_nobody() {
    let (tx, rx) = bounded(2);
    tx.send(1).unwrap();
    assert_eq!(rx.chan.lock().recv_q.registered(), 0);
    assert_eq!(rx.try_recv(), Ok(1));
}

#[test]
fn dropped_notified_receiver_passes_the_wake_up_on() {
    let (tx, rx) = unbounded();
    let (a, wa) = counter();
    let (b, wb) = counter();
    let mut first = rx.recv_event();
    let mut second = rx.recv_event();
    assert!(first.poll_event(&wa).is_pending());
    assert!(second.poll_event(&wb).is_pending());
    tx.send(9).unwrap();
    assert_eq!((wakes(&a), wakes(&b)), (1, 0));
    drop(first); // canceled after the wake-up, before taking the message
    assert_eq!(wakes(&b), 1, "the turn moved on to the second receiver");
    assert_eq!(rx.len(), 1, "the canceled receiver took nothing");
    assert_eq!(second.poll_event(&wb), Poll::Ready(Ok(9)));
    drop(second);
    assert_eq!(rx.chan.lock().recv_q.registered(), 0);
}

#[test]
fn dropped_notified_sender_passes_the_space_on() {
    let (tx, rx) = bounded(1);
    tx.send(0).unwrap();
    let (a, wa) = counter();
    let (b, wb) = counter();
    let mut first = tx.send_event(1);
    let mut second = tx.send_event(2);
    assert!(first.poll_event(&wa).is_pending());
    assert!(second.poll_event(&wb).is_pending());
    assert_eq!(rx.try_recv(), Ok(0));
    assert_eq!((wakes(&a), wakes(&b)), (1, 0));
    assert_eq!(first.into_value(), Some(1));
    assert_eq!(wakes(&b), 1);
    assert_eq!(second.poll_event(&wb), Poll::Ready(Ok(())));
    drop(second);
    assert_eq!(rx.try_recv(), Ok(2));
    assert_eq!(tx.chan.lock().send_q.registered(), 0);
}

#[test]
fn rendezvous_offer_completes_only_when_taken() {
    let (tx, rx) = bounded(0);
    let (a, wa) = counter();
    let mut send = tx.send_event(3);
    assert!(send.poll_event(&wa).is_pending());
    assert_eq!(rx.len(), 1, "the value is offered");
    assert!(send.poll_event(&wa).is_pending());
    assert_eq!(rx.try_recv(), Ok(3));
    assert_eq!(wakes(&a), 1, "the taker wakes the sender of that offer");
    assert_eq!(send.poll_event(&wa), Poll::Ready(Ok(())));
}

#[test]
fn rendezvous_withdraw_returns_the_offer() {
    let (tx, rx) = bounded(0);
    let (_, w) = counter();
    let mut send = tx.send_event("v");
    assert!(send.poll_event(&w).is_pending());
    assert_eq!(send.into_value(), Some("v"));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    let mut send = tx.send_event("w");
    assert!(send.poll_event(&w).is_pending());
    assert_eq!(rx.try_recv(), Ok("w"));
    assert_eq!(send.into_value(), None, "taken: the send happened");
}

#[test]
fn rendezvous_try_send_needs_a_waiting_receiver() {
    let (tx, rx) = bounded(0);
    assert_eq!(tx.try_send(1), Err(TrySendError::Full(1)));
    let (c, w) = counter();
    let mut recv = rx.recv_event();
    assert!(recv.poll_event(&w).is_pending());
    assert_eq!(tx.try_send(2), Ok(()));
    assert_eq!(
        tx.try_send(3),
        Err(TrySendError::Full(3)),
        "one offer per waiter"
    );
    assert_eq!(wakes(&c), 1);
    assert_eq!(recv.poll_event(&w), Poll::Ready(Ok(2)));
}

#[test]
fn rendezvous_close_gives_pending_offers_back() {
    let (tx, rx) = bounded(0);
    let (c, w) = counter();
    let mut send = tx.send_event(8);
    assert!(send.poll_event(&w).is_pending());
    drop(rx);
    assert_eq!(wakes(&c), 1);
    assert_eq!(send.poll_event(&w), Poll::Ready(Err(SendError::Closed(8))));
}

#[test]
fn close_wakes_every_waiter() {
    let (tx, rx) = bounded::<u8>(1);
    let (a, wa) = counter();
    let (b, wb) = counter();
    let mut r1 = rx.recv_event();
    let mut r2 = rx.recv_event();
    assert!(r1.poll_event(&wa).is_pending());
    assert!(r2.poll_event(&wb).is_pending());
    drop(tx);
    assert_eq!((wakes(&a), wakes(&b)), (1, 1));
    assert_eq!(r1.poll_event(&wa), Poll::Ready(Err(RecvError::Closed)));
    assert_eq!(r2.poll_event(&wb), Poll::Ready(Err(RecvError::Closed)));
}

#[test]
fn last_receiver_drop_drops_buffered_messages() {
    let marker = Arc::new(());
    let (tx, rx) = bounded(4);
    tx.send(marker.clone()).unwrap();
    assert_eq!(Arc::strong_count(&marker), 2);
    drop(rx);
    assert_eq!(Arc::strong_count(&marker), 1);
    assert!(tx.is_closed());
}

#[test]
fn errors_convert_to_io_errors() {
    let e: std::io::Error = RecvError::Canceled.into();
    assert!(crate::is_canceled(&e));
    let e: std::io::Error = SendError::TimedOut(1).into();
    assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
    let e: std::io::Error = SendError::Closed(1).into();
    assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe);
    let e: std::io::Error = TryRecvError::Empty.into();
    assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
    let e: std::io::Error = RecvError::Closed.into();
    assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
}

#[test]
fn queue_put_and_get_respect_min_without_waiting() {
    let q = Queue::new(3);
    assert_eq!(q.put(&[1, 2, 3, 4], 0), Ok(3));
    let mut buf = [0; 2];
    assert_eq!(q.get(&mut buf, 0), Ok(2));
    assert_eq!(buf, [1, 2]);
    assert_eq!(q.put(&[4, 5], 2), Ok(2));
    let mut buf = [0; 5];
    assert_eq!(q.get(&mut buf, 3), Ok(3));
    assert_eq!(buf[..3], [3, 4, 5]);
    q.close();
    assert_eq!(
        q.get(&mut buf, 1),
        Err(QueueError {
            kind: QueueErrorKind::Closed,
            count: 0
        })
    );
    assert_eq!(q.put(&[1], 1).unwrap_err().kind, QueueErrorKind::Closed);
}

#[test]
fn handles_are_send_and_sync() {
    fn check<X: Send + Sync>() {}
    check::<Sender<String>>();
    check::<Receiver<String>>();
    check::<OneshotSender<String>>();
    check::<OneshotReceiver<String>>();
    check::<Queue<String>>();
}
