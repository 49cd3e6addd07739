//! Running a blocking call that borrows from the fiber's stack on a helper thread.
//!
//! File operations on Green must not stall the worker (a cold-cache read can wait for the disk
//! for milliseconds while every other fiber of the worker waits too), but their closures borrow
//! buffers and paths from the calling fiber. [`Green::offload`] hands such a closure to the
//! runtime's helper threads and parks the fiber until it has run — **uninterruptibly**, like a
//! submitted ring op: the borrowed memory must stay valid until the helper is done with it, so
//! the fiber cannot leave early even when canceled. Cancellation is checked before the call.

use std::panic::{self, Location};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::{fiber, Green};
use crate::task::{Run, Runnable};

/// A type-erased job for the helper pool.
struct Job {
    body: Mutex<Option<Box<dyn FnOnce() + Send>>>,
    location: &'static Location<'static>,
}

impl Run for Job {
    fn run(self: Arc<Self>) {
        let body = self.body.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(body) = body {
            body();
        }
    }

    fn location(&self) -> &'static Location<'static> {
        self.location
    }
}

/// Where the result travels back, and how the fiber learns it is there. Lives on the fiber's
/// stack: the helper must not touch it after setting `done` (the fiber may see `done` at once,
/// woken by anything, and return).
struct Slot<R> {
    result: Mutex<Option<std::thread::Result<R>>>,
    done: AtomicBool,
}

impl Green {
    /// Runs `f` on a helper thread while the running fiber waits; inline when not on a fiber or
    /// when no helper thread can be had. A panic in `f` resumes here.
    #[track_caller]
    pub(crate) fn offload<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        // A simulation has no helper threads: its one thread runs everything, in seed order.
        if self.sim.is_some() {
            return f();
        }
        let Some(waker) = fiber::current_waker() else {
            return f();
        };
        let slot = Slot {
            result: Mutex::new(None),
            done: AtomicBool::new(false),
        };
        let slot_ref = &slot;
        #[cfg(test)]
        let after_done = tests::AFTER_DONE.with(|h| h.borrow_mut().take());
        // The job owns the waker: after publishing `done` it touches nothing of the fiber's.
        let body: Box<dyn FnOnce() + Send + '_> = Box::new(move || {
            let r = crate::contain::catch(f);
            *slot_ref.result.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
            slot_ref.done.store(true, Ordering::Release);
            // From here on `slot` may be gone.
            #[cfg(test)]
            if let Some(hook) = after_done {
                hook();
            }
            waker.wake();
        });
        // The fiber may not leave this frame before the job is done with it: an unwind (a
        // bug, or a forced unwind of the fiber) aborts instead.
        let waiting = crate::contain::AbortOnUnwind::new("a fiber waiting for an offloaded call");
        // SAFETY: `body` borrows `f`'s captures and `slot`, which live in this frame. The job
        // uses them only until it sets `done` (it owns what it touches after: the waker), and
        // this frame is left only after `done` is seen: by the loop below, since nothing here
        // unwinds (`waiting` aborts first), and the fiber is never dropped unfinished (see
        // `WorkerLocal::start`). A job the pool refuses is run inline below, so `done` is
        // always eventually set.
        let body: Box<dyn FnOnce() + Send + 'static> = unsafe { std::mem::transmute(body) };
        let job = Arc::new(Job {
            body: Mutex::new(Some(body)),
            location: Location::caller(),
        });
        if self.blocking(Runnable::from_arc(job.clone())).is_err() {
            // No helper thread: run the job on this fiber (blocking the worker, still correct).
            job.run();
        }
        while !slot.done.load(Ordering::Acquire) {
            fiber::park();
        }
        waiting.disarm();
        let result = slot.result.lock().unwrap_or_else(|p| p.into_inner()).take();
        match result.expect("the job stored its result") {
            Ok(v) => v,
            Err(payload) => panic::resume_unwind(payload),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use crate::model::ModelImpl;
    use crate::{Builder, Model};

    thread_local! {
        /// Run by the next offloaded job of this thread's fiber between publishing `done` and
        /// waking the fiber.
        pub(super) static AFTER_DONE: RefCell<Option<Box<dyn FnOnce() + Send>>> =
            const { RefCell::new(None) };
    }

    /// Overwrites the stack below the caller with a pattern no pointer has.
    #[inline(never)]
    fn scribble_stack() {
        let mut junk = [0xA5u8; 8192];
        std::hint::black_box(&mut junk);
    }

    /// Issue 11, item 2: the helper set `done`, then woke the fiber through the waker in the
    /// fiber's stack slot. Woken by anything else in between, the fiber returned and its stack
    /// was reused, and the helper called a waker read from dead memory. The hook holds the
    /// helper between the two steps until the fiber, woken by a storm of wake-ups, has returned
    /// and overwritten the frame.
    #[test]
    fn offload_never_touches_the_fibers_stack_after_done() {
        Builder::new(Model::Green).worker_threads(1).run(|io| {
            let ModelImpl::Green(green) = &io.inner.model else {
                unreachable!()
            };
            let returned = Arc::new(AtomicBool::new(false));
            let wait_for_return = returned.clone();
            AFTER_DONE.with(|h| {
                *h.borrow_mut() = Some(Box::new(move || {
                    let give_up = Instant::now() + Duration::from_secs(10);
                    while !wait_for_return.load(Ordering::SeqCst) && Instant::now() < give_up {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }))
            });
            // Spurious wake-ups of the waiting fiber, from another thread.
            let fiber = crate::park::current_waker();
            let storming = Arc::new(AtomicBool::new(true));
            let storm = {
                let storming = storming.clone();
                std::thread::spawn(move || {
                    while storming.load(Ordering::SeqCst) {
                        fiber.wake_by_ref();
                        std::thread::sleep(Duration::from_micros(200));
                    }
                })
            };
            assert_eq!(green.offload(|| 42), 42);
            scribble_stack();
            returned.store(true, Ordering::SeqCst);
            // Let the helper finish its wake-up (into the scribbled frame, before the fix).
            io.sleep(Duration::from_millis(50)).unwrap();
            storming.store(false, Ordering::SeqCst);
            storm.join().unwrap();
        });
    }
}
