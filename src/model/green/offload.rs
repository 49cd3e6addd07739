//! Running a blocking call that borrows from the fiber's stack on a helper thread.
//!
//! File operations on Green must not stall the worker (a cold-cache read can wait for the disk
//! for milliseconds while every other fiber of the worker waits too), but their closures borrow
//! buffers and paths from the calling fiber. [`Green::offload`] hands such a closure to the
//! runtime's helper threads and parks the fiber until it has run — **uninterruptibly**, like a
//! submitted ring op: the borrowed memory must stay valid until the helper is done with it, so
//! the fiber cannot leave early even when canceled. Cancellation is checked before the call.

use std::panic::{self, AssertUnwindSafe, Location};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Waker;

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

/// Where the result travels back, and how the fiber learns it is there.
struct Slot<R> {
    result: Mutex<Option<std::thread::Result<R>>>,
    done: AtomicBool,
    waker: Waker,
}

impl Green {
    /// Runs `f` on a helper thread while the running fiber waits; inline when not on a fiber or
    /// when no helper thread can be had. A panic in `f` resumes here.
    #[track_caller]
    pub(crate) fn offload<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        let Some(waker) = fiber::current_waker() else {
            return f();
        };
        let slot = Slot {
            result: Mutex::new(None),
            done: AtomicBool::new(false),
            waker,
        };
        let slot_ref = &slot;
        let body: Box<dyn FnOnce() + Send + '_> = Box::new(move || {
            let r = panic::catch_unwind(AssertUnwindSafe(f));
            *slot_ref.result.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
            slot_ref.done.store(true, Ordering::Release);
            slot_ref.waker.wake_by_ref();
        });
        // SAFETY: `body` borrows `f`'s captures and `slot`, which live in this frame. The loop
        // below does not return before `done` is set, which the job does after its last use of
        // them, and a fiber is never abandoned mid-wait (fibers always run to completion), so
        // this frame outlives every use. A job the pool refuses is run inline below, so `done`
        // is always eventually set.
        let body: Box<dyn FnOnce() + Send + 'static> = unsafe { std::mem::transmute(body) };
        let job = Arc::new(Job {
            body: Mutex::new(Some(body)),
            location: Location::caller(),
        });
        if self.blocking(Runnable(job.clone())).is_err() {
            // No helper thread: run the job on this fiber (blocking the worker, still correct).
            job.run();
        }
        while !slot.done.load(Ordering::Acquire) {
            fiber::park();
        }
        let result = slot.result.lock().unwrap_or_else(|p| p.into_inner()).take();
        match result.expect("the job stored its result") {
            Ok(v) => v,
            Err(payload) => panic::resume_unwind(payload),
        }
    }
}
