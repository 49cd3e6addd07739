//! A waker that counts its wake-ups: what the unit tests of wait queues, channels, sync types,
//! timers and the reactor hand to the code under test.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Wake, Waker};

/// The wake-up counter behind a [`counter`] waker.
pub(crate) struct Count(AtomicUsize);

impl Wake for Count {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A fresh counter and a waker that increments it.
pub(crate) fn counter() -> (Arc<Count>, Waker) {
    let c = Arc::new(Count(AtomicUsize::new(0)));
    (c.clone(), Waker::from(c))
}

/// How many times `c`'s waker was woken.
pub(crate) fn wakes(c: &Count) -> usize {
    c.0.load(Ordering::SeqCst)
}
