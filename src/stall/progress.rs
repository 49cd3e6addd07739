//! The progress word a Green worker publishes for its monitor (`model/green/sysmon.rs`).
//!
//! Every time a task's name becomes current on a worker's thread (a fiber resumed, a fiber
//! started, a task run inline by its joiner; see
//! [`replace_current_task_name`](crate::fiber_stack::replace_current_task_name)), the thread
//! stores one word, relaxed, into its worker's [`Progress`]: a sequence number in the top 16
//! bits and the task's spawn site in the low 48. The monitor compares two readings: the same
//! word twice, the worker's loop turn count unchanged and no sleep announced means the same task
//! has held the worker all along.
//!
//! The word holds only `'static` data (a `Location`), so the monitor may read it at any time;
//! a task's name and id live in its cell, which may be freed while the monitor looks, so they
//! are not published per resume: the worker publishes once, at binding, where its thread keeps
//! the current task's name, and the monitor copies it from there only while the thread is
//! blocked in the kernel ([`super::remote`]).
//!
//! Threads that are not a monitored worker have no slot: the cost there is one thread-local
//! load and a branch per name change, only for names other than "no task".

use std::cell::Cell;
use std::panic::Location;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// One worker's progress word. On a cache line of its own: its worker writes it at every
/// resume, the monitor reads it a few times per threshold.
#[repr(align(128))]
#[derive(Default)]
pub(crate) struct Progress(AtomicU64, AtomicUsize);

/// The low bits of a word that hold the site code.
const SITE_BITS: u32 = 48;
const SITE_MASK: u64 = (1 << SITE_BITS) - 1;

/// Site code of "no task" (scheduler code).
pub(crate) const NO_SITE: usize = 0;
/// Site code of a task with a fixed name (the root task of a run).
pub(crate) const ROOT_SITE: usize = 1;

thread_local! {
    /// The progress word of the worker running on this thread, or null.
    static SLOT: Cell<*const Progress> = const { Cell::new(std::ptr::null()) };
}

/// What a progress word says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Site {
    /// No task's name was published yet.
    None,
    /// The root task of the run.
    Root,
    /// A task spawned there.
    Spawned(&'static Location<'static>),
}

/// The site code of a spawn location (see [`Site`]).
#[inline]
pub(crate) fn code_of(location: &'static Location<'static>) -> usize {
    location as *const Location<'static> as usize
}

impl Progress {
    /// The current word (relaxed: a hint, compared across readings).
    pub(crate) fn read(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// The address of the bound thread's current task name
    /// ([`current_task_name_addr`](crate::fiber_stack::current_task_name_addr)), 0 before
    /// the first binding. Set once per binding, so it costs nothing per resume.
    pub(crate) fn name_addr(&self) -> usize {
        self.1.load(Ordering::Relaxed)
    }
}

/// The site a word names.
pub(crate) fn site(word: u64) -> Site {
    match (word & SITE_MASK) as usize {
        NO_SITE => Site::None,
        ROOT_SITE => Site::Root,
        addr => {
            // SAFETY: every code other than the two constants is `code_of` of a
            // `&'static Location` (user-space addresses on x86_64 fit in 47 bits, so the
            // pointer survives the mask), and `'static` data stays valid and unmoved.
            Site::Spawned(unsafe { &*(addr as *const Location<'static>) })
        }
    }
}

/// Publishes that the task with site code `code` holds this thread now, if this thread is a
/// monitored worker.
#[inline]
pub(crate) fn note(code: usize) {
    let slot = SLOT.with(Cell::get);
    if slot.is_null() {
        return;
    }
    note_slow(slot, code);
}

#[inline]
fn note_slow(slot: *const Progress, code: usize) {
    let code = code as u64;
    let code = if code > SITE_MASK {
        NO_SITE as u64
    } else {
        code
    };
    // SAFETY: `bind` sets the slot to a `Progress` that outlives the binding, and the binding
    // ends (the guard resets the slot) before the worker, which owns it through its monitor,
    // is dropped.
    let word = unsafe { &(*slot).0 };
    // This thread is the word's only writer: a plain read-modify-write keeps the sequence.
    let seq = (word.load(Ordering::Relaxed) >> SITE_BITS).wrapping_add(1);
    word.store(seq << SITE_BITS | code, Ordering::Relaxed);
}

/// Restores the thread's previous slot when dropped.
pub(crate) struct Bound(*const Progress);

impl Drop for Bound {
    fn drop(&mut self) {
        SLOT.with(|s| s.set(self.0));
    }
}

/// Makes `slot` this thread's progress word until the guard drops.
///
/// # Safety
/// `slot` must stay valid until the returned guard is dropped.
pub(crate) unsafe fn bind(slot: &Progress) -> Bound {
    slot.1.store(
        crate::fiber_stack::current_task_name_addr(),
        Ordering::Relaxed,
    );
    Bound(SLOT.with(|s| s.replace(slot)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_word_names_the_site_and_changes_with_every_publication() {
        let progress = Progress::default();
        assert_eq!(site(progress.read()), Site::None);
        // SAFETY: `progress` outlives the binding.
        let bound = unsafe { bind(&progress) };
        let here = Location::caller();
        note(code_of(here));
        let first = progress.read();
        assert_eq!(site(first), Site::Spawned(here));
        note(code_of(here));
        assert_ne!(progress.read(), first);
        note(ROOT_SITE);
        assert_eq!(site(progress.read()), Site::Root);
        drop(bound);
        let last = progress.read();
        note(code_of(here));
        assert_eq!(progress.read(), last, "unbound: nothing published");
    }
}
