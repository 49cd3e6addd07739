//! [`Barrier`]: `n` tasks wait for each other.

use std::fmt;
use std::io;
use std::sync::{Mutex as StdMutex, MutexGuard as StdGuard};
use std::task::Poll;
use std::time::{Duration, Instant};

use crate::wait::{block_until, WaitList};

/// Lets `n` tasks wait until all of them have arrived; then all proceed, and the barrier is ready
/// for the next round. Exactly one task per round (the last to arrive) is the *leader*.
///
/// **Cancellation and timeouts.** [`wait`](Barrier::wait) is a cancellation point, and
/// [`wait_timeout`](Barrier::wait_timeout) / [`wait_until`](Barrier::wait_until) (and the task's
/// own deadline) bound it. A waiter that is canceled or times out *withdraws*: its arrival is
/// taken back, so the round now needs one more task, and the others keep waiting (they are
/// neither released early nor failed). If the round completed before the waiter noticed, it was
/// counted and the others went through: the wait then returns `Ok` (a cancellation is reported
/// by the task's next cancellation point). Java's `CyclicBarrier` instead *breaks* the barrier
/// for everyone when one waiter times out; Go and Tokio have no timed barrier wait. Withdrawing
/// keeps the count exact for the tasks that stay, and a task that gave up can simply arrive
/// again.
///
/// ```
/// use std::sync::Arc;
/// use zsync::sync::Barrier;
///
/// zsync::run(zsync::Model::Threaded, |io| {
///     let barrier = Arc::new(Barrier::new(3));
///     let tasks: Vec<_> = (0..3)
///         .map(|_| {
///             let b = barrier.clone();
///             io.concurrent(move |_| b.wait().unwrap().is_leader()).unwrap()
///         })
///         .collect();
///     let leaders = tasks.into_iter().map(|t| t.join().unwrap());
///     assert_eq!(leaders.filter(|&leader| leader).count(), 1);
/// });
/// ```
pub struct Barrier {
    n: usize,
    state: StdMutex<State>,
    waiters: WaitList,
}

struct State {
    arrived: usize,
    /// Incremented each time a round completes.
    generation: u64,
}

/// What [`Barrier::wait`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarrierWaitResult(bool);

impl BarrierWaitResult {
    /// True for exactly one task per round: the one whose arrival completed it.
    pub fn is_leader(&self) -> bool {
        self.0
    }
}

impl Barrier {
    /// A barrier for `n` tasks (`0` behaves like `1`: every wait returns at once, as leader).
    pub fn new(n: usize) -> Barrier {
        Barrier {
            n: n.max(1),
            state: StdMutex::new(State {
                arrived: 0,
                generation: 0,
            }),
            waiters: WaitList::new(),
        }
    }

    fn lock(&self) -> StdGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Arrives and waits for the other tasks of this round. Cancellation point (see the type's
    /// docs for what cancellation does to the round).
    #[track_caller]
    pub fn wait(&self) -> io::Result<BarrierWaitResult> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Barrier,
            crate::diag::wait_point::Object::of(self),
        );
        self.wait_with(None)
    }

    /// Like [`wait`](Barrier::wait), giving up with `TimedOut` after `timeout`; a waiter that
    /// gives up withdraws its arrival (see the type's docs).
    ///
    /// ```
    /// use std::time::Duration;
    /// use zsync::sync::Barrier;
    /// zsync::run(zsync::Model::Blocking, |_| {
    ///     let barrier = Barrier::new(2);
    ///     let err = barrier.wait_timeout(Duration::from_millis(5)).unwrap_err();
    ///     assert!(zsync::is_timed_out(&err));
    /// });
    /// ```
    #[track_caller]
    pub fn wait_timeout(&self, timeout: Duration) -> io::Result<BarrierWaitResult> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Barrier,
            crate::diag::wait_point::Object::of(self),
        );
        self.wait_with(super::deadline_after(timeout))
    }

    /// Like [`wait`](Barrier::wait), giving up with `TimedOut` at `deadline`; a waiter that
    /// gives up withdraws its arrival (see the type's docs).
    #[track_caller]
    pub fn wait_until(&self, deadline: Instant) -> io::Result<BarrierWaitResult> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Barrier,
            crate::diag::wait_point::Object::of(self),
        );
        self.wait_with(Some(deadline))
    }

    fn wait_with(&self, deadline: Option<Instant>) -> io::Result<BarrierWaitResult> {
        crate::context::check()?;
        let generation = {
            let mut s = self.lock();
            s.arrived += 1;
            if s.arrived == self.n {
                s.arrived = 0;
                s.generation += 1;
                drop(s);
                self.waiters.notify_all();
                return Ok(BarrierWaitResult(true));
            }
            s.generation
        };
        let mut waiter = self.waiters.waiter();
        let waited = block_until(deadline, |waker| {
            waiter.register(waker);
            if self.lock().generation != generation {
                waiter.used();
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        });
        match waited {
            Ok(()) => Ok(BarrierWaitResult(false)),
            Err(e) => {
                let mut s = self.lock();
                if s.generation == generation {
                    s.arrived -= 1;
                    Err(e)
                } else {
                    Ok(BarrierWaitResult(false))
                }
            }
        }
    }

    /// How many tasks make up a round.
    pub fn size(&self) -> usize {
        self.n
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.lock();
        f.debug_struct("Barrier")
            .field("n", &self.n)
            .field("arrived", &s.arrived)
            .finish()
    }
}
