//! What a thread-model runner publishes for a task dump: the task it runs now.
//!
//! A Threaded pool worker runs each task to completion on its thread. A task that has not
//! reached a zsync wait is in no structure a dump can walk (the cancellation tree registers a
//! task when it first blocks), so each pool worker keeps its running task in a [`RunningSlot`]
//! of its own: a second reference to the task's cell, put in and taken out under the slot's
//! lock. The lock is the runner's alone except while a dump reads the slot, so it is never
//! contended on the task path; the reference keeps the cell alive while a dump reads its
//! identity, which a raw pointer could not do (the cell may be freed as soon as the task ends).
//!
//! Cost per task on a Threaded worker: an uncontended lock and unlock twice and one reference
//! count increment and decrement on the task's cell (whose line the task's own claim has just
//! written): four uncontended atomics on lines nobody else writes. Green does not use it: its
//! workers answer a dump at a safe point of their loop, where no task runs.

use std::sync::Mutex;

use crate::task::Runnable;

/// The task one runner thread runs now (see the module docs).
#[derive(Default)]
pub(crate) struct RunningSlot(Mutex<Option<Runnable>>);

impl RunningSlot {
    /// Publishes `task` as running until the returned guard drops. Only closure tasks: a
    /// future task's poll is short and its frame's references are the scheduler's to count.
    #[inline]
    pub(crate) fn enter(&self, task: &Runnable) -> Entered<'_> {
        if task.frame_size().is_none() && task.dump_owner().is_some() {
            let another = task.another();
            *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(another);
            Entered(Some(self))
        } else {
            Entered(None)
        }
    }

    /// A reference to the task running now, if any.
    pub(crate) fn current(&self) -> Option<Runnable> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(Runnable::another)
    }
}

/// Takes the task out of its slot when the task is over (also on an unwind).
pub(crate) struct Entered<'a>(Option<&'a RunningSlot>);

impl Drop for Entered<'_> {
    #[inline]
    fn drop(&mut self) {
        if let Some(slot) = self.0 {
            // Dropped outside the lock: the last reference runs the cell's drop.
            let task = slot.0.lock().unwrap_or_else(|p| p.into_inner()).take();
            drop(task);
        }
    }
}
