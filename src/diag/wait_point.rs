//! What a task waits on: its *wait point*, recorded per task where a dump can read it.
//!
//! ## The internal API (for the dump and the watchdogs)
//!
//! - [`note`] (`#[track_caller]`): a public blocking operation calls it first thing, naming the
//!   operation ([`WaitOp`]) and the object ([`Object`]: a descriptor or an address). It records
//!   them, and the *caller's* source location, in the running task's [`WaitSlot`]. Every
//!   function between the user's call and `note` carries `#[track_caller]`, so the location is
//!   the user's line, not zsync's.
//!   The returned [`Noted`] guard clears the operation when the operation returns (or
//!   unwinds); an operation noted inside another (a `Mutex::lock` waiting on its semaphore)
//!   leaves the outer one in place.
//! - [`begin`] / [`end`]: the places where a task really sleeps (a fiber's park, a thread's
//!   park or `ppoll`) bracket the sleep with them: `begin` stamps when it began (a coarse clock
//!   read, see [`now_coarse`]), `end` clears the stamp. A task is *waiting* only between the
//!   two; what it waits in is the operation noted, if any.
//! - [`WaitSlot::snapshot`]: from any thread, a [`WaitSnapshot`] of a task's slot: whether it
//!   waits, on what, where, since when. The slot lives in the task's
//!   [`CancelNode`](crate::cancel::CancelNode), so whatever holds a `NodeRef` to the task (the
//!   cancellation tree, a fiber's context) can read it for as long as it holds the reference.
//! - [`current`]: the running task's snapshot (for code that runs on the task itself, such as a
//!   fiber resumed into the dump's trace routine).
//!
//! ## Cost
//!
//! A slot is three relaxed atomic words in memory the task owns already (its cell, through
//! its node). `note` is one thread-local read, a load and three relaxed stores (plain `mov`s on
//! x86-64), its guard one store: no read-modify-write, no fence, no allocation, no shared
//! cache line. `begin` adds one `CLOCK_MONOTONIC_COARSE` read (vDSO, a few nanoseconds; the
//! precise clock costs several times more and a wait's length only needs milliseconds), a load
//! and a store; `end` a load and a store. Only a task that really sleeps pays `begin`/`end`,
//! and a sleep costs a context switch at least.
//!
//! A slot is written only by its task and read by anyone: the fields are independent relaxed
//! atomics, so a reader may see a mix of two consecutive waits (the operation of one, the
//! location of the next). A dump is a snapshot of a running program; it says so.

use std::fmt;
use std::panic::Location;
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::time::Duration;

use crate::context;

/// The kind of operation a task waits in, as a [task dump](crate::dump::Dump) shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[repr(u8)]
pub enum WaitOp {
    /// No operation recorded (a wait inside zsync that names none, or none at all).
    Unknown = 0,
    /// `Io::sleep`, `sleep_until`, a timer.
    Sleep,
    /// `Task::join` (or a group's join).
    Join,
    /// A channel send waiting for room.
    ChannelSend,
    /// A channel receive waiting for a message.
    ChannelRecv,
    /// `Mutex::lock`.
    Mutex,
    /// `RwLock::read`.
    RwLockRead,
    /// `RwLock::write`.
    RwLockWrite,
    /// `Semaphore::acquire`.
    Semaphore,
    /// `Condvar::wait`.
    Condvar,
    /// `Notify::notified`, `ResetEvent::wait`.
    Notify,
    /// `Barrier::wait`.
    Barrier,
    /// `WaitGroup::wait`.
    WaitGroup,
    /// `OnceCell` initialisation by another task.
    Once,
    /// `Io::futex_wait`, `Io::wait`.
    Futex,
    /// A read (socket, pipe, file).
    Read,
    /// A write (socket, pipe, file).
    Write,
    /// `accept` on a listener.
    Accept,
    /// `connect`.
    Connect,
    /// A datagram receive.
    Recv,
    /// A datagram send.
    Send,
    /// A file-system operation (open, metadata, directories, sync).
    File,
    /// `select!` over several events.
    Select,
    /// A future driven by `Io::block_on`.
    BlockOn,
    /// `Io::blocking`: a closure on a helper thread.
    Blocking,
    /// Waiting for a child process.
    Process,
    /// Waiting for a signal.
    Signal,
    /// A zero-copy transfer (`send_file`, `splice`, `copy`).
    Transfer,
    /// Name resolution.
    Resolve,
    /// `Io::wait` on an [`Event`](crate::Event).
    Event,
}

impl WaitOp {
    const ALL: [WaitOp; 30] = [
        WaitOp::Unknown,
        WaitOp::Sleep,
        WaitOp::Join,
        WaitOp::ChannelSend,
        WaitOp::ChannelRecv,
        WaitOp::Mutex,
        WaitOp::RwLockRead,
        WaitOp::RwLockWrite,
        WaitOp::Semaphore,
        WaitOp::Condvar,
        WaitOp::Notify,
        WaitOp::Barrier,
        WaitOp::WaitGroup,
        WaitOp::Once,
        WaitOp::Futex,
        WaitOp::Read,
        WaitOp::Write,
        WaitOp::Accept,
        WaitOp::Connect,
        WaitOp::Recv,
        WaitOp::Send,
        WaitOp::File,
        WaitOp::Select,
        WaitOp::BlockOn,
        WaitOp::Blocking,
        WaitOp::Process,
        WaitOp::Signal,
        WaitOp::Transfer,
        WaitOp::Resolve,
        WaitOp::Event,
    ];

    fn from_u8(v: u8) -> WaitOp {
        WaitOp::ALL
            .get(v as usize)
            .copied()
            .unwrap_or(WaitOp::Unknown)
    }

    /// A short lower-case name (`"channel recv"`, `"mutex"`), as the dump prints it.
    pub fn name(self) -> &'static str {
        match self {
            WaitOp::Unknown => "wait",
            WaitOp::Sleep => "sleep",
            WaitOp::Join => "join",
            WaitOp::ChannelSend => "channel send",
            WaitOp::ChannelRecv => "channel recv",
            WaitOp::Mutex => "mutex lock",
            WaitOp::RwLockRead => "rwlock read",
            WaitOp::RwLockWrite => "rwlock write",
            WaitOp::Semaphore => "semaphore acquire",
            WaitOp::Condvar => "condvar wait",
            WaitOp::Notify => "notify wait",
            WaitOp::Barrier => "barrier wait",
            WaitOp::WaitGroup => "wait group wait",
            WaitOp::Once => "once-cell init",
            WaitOp::Futex => "futex wait",
            WaitOp::Read => "read",
            WaitOp::Write => "write",
            WaitOp::Accept => "accept",
            WaitOp::Connect => "connect",
            WaitOp::Recv => "recv",
            WaitOp::Send => "send",
            WaitOp::File => "file op",
            WaitOp::Select => "select",
            WaitOp::BlockOn => "block_on",
            WaitOp::Blocking => "blocking helper",
            WaitOp::Process => "process wait",
            WaitOp::Signal => "signal wait",
            WaitOp::Transfer => "transfer",
            WaitOp::Resolve => "resolve",
            WaitOp::Event => "event wait",
        }
    }
}

impl fmt::Display for WaitOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a wait is on: a descriptor, the address of a zsync object (a channel's, a mutex's: two
/// tasks waiting on the same object show the same address), or nothing recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Object {
    /// Nothing recorded.
    None,
    /// A file descriptor.
    Fd(i32),
    /// The address of the object waited on.
    Addr(usize),
}

impl Object {
    /// The address of `value`, as an [`Object::Addr`].
    #[inline]
    pub(crate) fn of<T: ?Sized>(value: &T) -> Object {
        Object::Addr(value as *const T as *const u8 as usize)
    }

    /// Encoding in one word: 0 none, top bit set: a descriptor, else an address (user-space
    /// addresses on 64-bit Linux never have the top bit set).
    #[inline]
    fn encode(self) -> u64 {
        match self {
            Object::None => 0,
            Object::Fd(fd) => FD_TAG | fd as u32 as u64,
            Object::Addr(a) => a as u64 & !FD_TAG,
        }
    }

    fn decode(v: u64) -> Object {
        if v == 0 {
            Object::None
        } else if v & FD_TAG != 0 {
            Object::Fd(v as u32 as i32)
        } else {
            Object::Addr(v as usize)
        }
    }
}

const FD_TAG: u64 = 1 << 63;

impl fmt::Display for Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Object::None => Ok(()),
            Object::Fd(fd) => write!(f, "fd {fd}"),
            Object::Addr(a) => write!(f, "{a:#x}"),
        }
    }
}

/// One task's wait point. Written by the task only (relaxed loads and stores: one writer needs
/// no read-modify-write), read by anyone. 24 bytes: it lives in every task's cell, and a small
/// future task's cell must stay within its 256-byte size class (see `stackless/frame.rs`).
pub(crate) struct WaitSlot {
    /// The operation in the top byte ([`OP_SHIFT`]); below it, when the current sleep began in
    /// units of 2^20 ns ([`TICK_SHIFT`]) of [`now_coarse`], plus one (0: not sleeping).
    state: AtomicU64,
    object: AtomicU64,
    location: AtomicPtr<Location<'static>>,
}

/// Where the operation sits in [`WaitSlot::state`].
const OP_SHIFT: u32 = 56;
/// The operation's bits.
const OP_MASK: u64 = !((1 << OP_SHIFT) - 1);
/// Set by a task dump that wants the stack of a task sleeping on an OS thread: the thread
/// captures it when it wakes (see `diag/thread_trace.rs`). The bit below the operation; the
/// start of a sleep never reaches it (2^55 units of 2^20 ns is a billion years of uptime).
const TRACE: u64 = 1 << (OP_SHIFT - 1);
/// The sleep's start below the operation and the trace request.
const SINCE_MASK: u64 = TRACE - 1;
/// The start's unit: 2^20 ns (~1.05 ms, below the coarse clock's own tick).
const TICK_SHIFT: u32 = 20;

impl WaitSlot {
    pub(crate) const fn new() -> WaitSlot {
        WaitSlot {
            state: AtomicU64::new(0),
            object: AtomicU64::new(0),
            location: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// Records `op` unless an operation is recorded already (an outer operation, such as a
    /// `Mutex::lock` waiting through its semaphore, keeps its own name). Returns whether it did.
    #[inline]
    fn set(&self, op: WaitOp, object: Object, location: &'static Location<'static>) -> bool {
        let state = self.state.load(Ordering::Relaxed);
        if state >> OP_SHIFT != 0 {
            return false;
        }
        self.state
            .store((op as u64) << OP_SHIFT | state, Ordering::Relaxed);
        self.object.store(object.encode(), Ordering::Relaxed);
        self.location
            .store(location as *const _ as *mut _, Ordering::Relaxed);
        true
    }

    /// The operation is over (it no longer sleeps either). One store: the object and the
    /// location are stale from here, and [`snapshot`](WaitSlot::snapshot) reads them only
    /// while an operation is noted (`note` never records `Unknown`).
    #[inline]
    fn clear(&self) {
        self.state.store(0, Ordering::Relaxed);
    }

    #[inline]
    fn begin(&self) {
        let op = self.state.load(Ordering::Relaxed) & OP_MASK;
        let since = ((now_coarse() >> TICK_SHIFT) + 1) & SINCE_MASK;
        self.state.store(op | since, Ordering::Relaxed);
    }

    /// Ends the sleep; returns whether a dump asked for the task's stack meanwhile.
    #[inline]
    fn end(&self) -> bool {
        let state = self.state.load(Ordering::Relaxed);
        self.state.store(state & OP_MASK, Ordering::Relaxed);
        state & TRACE != 0
    }

    /// Asks the task, sleeping now, for its stack when it wakes (see `diag/thread_trace.rs`).
    /// The only write to a slot by anyone but its task: a read-modify-write, so that it never
    /// undoes the task's own stores; the task's plain stores may undo it (a sleep ending at
    /// that moment), and the dump then gives up on that stack after its bounded wait.
    pub(crate) fn request_trace(&self) {
        self.state.fetch_or(TRACE, Ordering::Relaxed);
    }

    /// The operation noted now (one relaxed load): what a profile charges a sleep to.
    #[cfg(any(feature = "tracing", feature = "profile"))]
    #[inline]
    pub(crate) fn op(&self) -> WaitOp {
        WaitOp::from_u8((self.state.load(Ordering::Relaxed) >> OP_SHIFT) as u8)
    }

    /// What the slot says now (see the module docs on consistency).
    pub(crate) fn snapshot(&self) -> WaitSnapshot {
        let state = self.state.load(Ordering::Relaxed);
        let since = state & SINCE_MASK;
        let op = WaitOp::from_u8((state >> OP_SHIFT) as u8);
        // Left over from the last operation once it is cleared (see `clear`).
        let noted = op != WaitOp::Unknown;
        let location = if noted {
            self.location.load(Ordering::Relaxed)
        } else {
            ptr::null_mut()
        };
        WaitSnapshot {
            op,
            object: if noted {
                Object::decode(self.object.load(Ordering::Relaxed))
            } else {
                Object::None
            },
            // SAFETY: a non-null pointer was stored from a `&'static Location` by `set`.
            location: unsafe { location.as_ref() },
            waiting_for: (since != 0).then(|| {
                let began = (since - 1) << TICK_SHIFT;
                Duration::from_nanos(now_coarse().saturating_sub(began))
            }),
        }
    }
}

impl Default for WaitSlot {
    fn default() -> WaitSlot {
        WaitSlot::new()
    }
}

/// A copy of a task's wait point.
#[derive(Clone, Copy, Debug)]
#[allow(dead_code)] // read by the dump (next) and the watchdogs
pub(crate) struct WaitSnapshot {
    /// The operation last noted (`Unknown` when the current sleep named none).
    pub(crate) op: WaitOp,
    pub(crate) object: Object,
    /// The user's call site of the operation, if one was noted.
    pub(crate) location: Option<&'static Location<'static>>,
    /// How long the task has been sleeping, or `None` if it is not sleeping.
    pub(crate) waiting_for: Option<Duration>,
}

/// Records that the running task is entering `op` on `object`, called from the user's line
/// (`#[track_caller]` all the way from the public method), until the returned guard drops at
/// the end of the operation. Does nothing outside a task, or inside an operation already noted
/// (the outer one keeps its name).
#[track_caller]
#[inline]
pub(crate) fn note(op: WaitOp, object: Object) -> Noted {
    let location = Location::caller();
    context::with(|c| match c {
        Some(c) if c.wait.set(op, object, location) => Noted(c.wait),
        _ => Noted(ptr::null()),
    })
}

/// [`note`] for an operation on descriptor `fd`.
#[track_caller]
#[inline]
pub(crate) fn note_fd(op: WaitOp, fd: std::os::fd::RawFd) -> Noted {
    note(op, Object::Fd(fd))
}

/// Clears the operation [`note`] recorded, when dropped (also by an unwind).
#[must_use = "the operation is noted until this guard drops"]
pub(crate) struct Noted(*const WaitSlot);

impl Drop for Noted {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: non-null only when `note` recorded into the running task's slot, which lives
        // in the task's cancellation node for at least as long as the task runs; the guard is
        // a local of one blocking operation of that task, dropped before the task ends.
        if let Some(slot) = unsafe { self.0.as_ref() } {
            slot.clear();
        }
    }
}

/// The wait point of an asynchronous operation (a future a future task awaits): noted where the
/// future was made (`#[track_caller]` up to the public constructor), recorded in the polling
/// task's slot each time the future returns `Pending`, cleared when it completes or drops. A
/// future task's slot then says which operation it awaits, and where. Like [`note`], it
/// leaves an operation noted already in place (a `block_on` of a fiber keeps its own).
pub(crate) struct PendingNote {
    op: WaitOp,
    object: Object,
    location: &'static Location<'static>,
    /// The address of the slot it recorded into (0: none). Compared, never dereferenced: the
    /// future may be dropped by another task than the one that polled it.
    slot: usize,
}

impl PendingNote {
    #[track_caller]
    #[inline]
    pub(crate) fn new(op: WaitOp, object: Object) -> PendingNote {
        PendingNote {
            op,
            object,
            location: Location::caller(),
            slot: 0,
        }
    }

    /// The future returns `Pending`: record the operation in the polling task's slot.
    #[inline]
    pub(crate) fn pending(&mut self) {
        if self.slot != 0 {
            return;
        }
        context::with(|c| {
            if let Some(c) = c {
                if c.wait.set(self.op, self.object, self.location) {
                    self.slot = c.wait as *const WaitSlot as usize;
                }
            }
        })
    }

    /// The future completed (or drops): clear what [`pending`](Self::pending) recorded, if the
    /// task running now is the one it recorded into.
    #[inline]
    pub(crate) fn done(&mut self) {
        if self.slot == 0 {
            return;
        }
        let slot = std::mem::take(&mut self.slot);
        context::with(|c| {
            if let Some(c) = c.filter(|c| c.wait as *const WaitSlot as usize == slot) {
                c.wait.clear();
            }
        })
    }
}

impl Drop for PendingNote {
    fn drop(&mut self) {
        self.done();
    }
}

/// The running task is about to sleep: stamp the time (see [`end`]).
#[inline]
pub(crate) fn begin() {
    context::with(|c| {
        if let Some(c) = c {
            c.wait.begin()
        }
    })
}

/// The running task's sleep ended (the operation may sleep again: it stays noted). Returns
/// whether a task dump asked for the task's stack during the sleep (only thread waits answer:
/// see `diag/thread_trace.rs`).
#[inline]
pub(crate) fn end() -> bool {
    context::with(|c| match c {
        Some(c) => c.wait.end(),
        None => false,
    })
}

/// [`begin`] for the context `ctx` (null: none), which the caller has in hand already: a
/// fiber's suspension, which takes the context off the thread, saves the thread-local lookup.
///
/// # Safety
/// `ctx` is null or points to a live context (the suspending fiber's own, whose frame is on
/// the fiber's stack for the whole suspension).
#[inline]
pub(crate) unsafe fn begin_in(ctx: *const context::TaskContext<'static>) {
    // SAFETY: the caller's promise.
    if let Some(c) = unsafe { ctx.as_ref() } {
        c.wait.begin()
    }
}

/// [`end`] for the context `ctx`, as [`begin_in`]. For a fiber, whose stack a dump captures by
/// resuming it into a trace routine (`Resume::Trace`): a thread's trace request does not apply,
/// so `end`'s answer is dropped.
///
/// # Safety
/// As [`begin_in`].
#[inline]
pub(crate) unsafe fn end_in(ctx: *const context::TaskContext<'static>) {
    // SAFETY: the caller's promise.
    if let Some(c) = unsafe { ctx.as_ref() } {
        let _trace_requested = c.wait.end();
    }
}

/// The running task's wait point, or `None` outside a task.
#[allow(dead_code)] // for the watchdogs and observers
pub(crate) fn current() -> Option<WaitSnapshot> {
    context::with(|c| c.map(|c| c.wait.snapshot()))
}

/// `CLOCK_MONOTONIC_COARSE` in nanoseconds: a vDSO read of the kernel's tick-time copy, a few
/// nanoseconds (the precise clock costs several times that; a wait's length needs no better
/// than the tick, 1–4 ms).
#[inline]
pub(crate) fn now_coarse() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // glibc's clock_gettime (its vDSO path; rustix's own vDSO lookup crashes under valgrind,
    // which the project uses to count instructions). Cannot fail for this clock; on failure
    // `t` stays zero, a wait of unknown start.
    // SAFETY: `clock_gettime` only writes the `timespec` it is given, which is valid.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut t) };
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn object_encoding_round_trips() {
        for o in [
            Object::None,
            Object::Fd(0),
            Object::Fd(7),
            Object::Fd(-1),
            Object::Addr(0x1000),
        ] {
            assert_eq!(Object::decode(o.encode()), o);
        }
    }

    #[test]
    fn every_op_round_trips() {
        for op in WaitOp::ALL {
            assert_eq!(WaitOp::from_u8(op as u8), op);
        }
    }

    #[test]
    fn a_noted_operation_shows_until_its_guard_drops_and_the_outer_one_wins() {
        crate::Builder::new(crate::Model::Blocking).run(|_io| {
            assert!(current().expect("in a task").location.is_none());
            let line = line!() + 1;
            let outer = note(WaitOp::Mutex, Object::Fd(3));
            let inner = note(WaitOp::Semaphore, Object::None);
            let w = current().unwrap();
            assert_eq!(w.op, WaitOp::Mutex);
            assert_eq!(w.object, Object::Fd(3));
            assert_eq!(w.location.unwrap().line(), line);
            assert!(w.waiting_for.is_none());
            begin();
            assert!(current().unwrap().waiting_for.is_some());
            end();
            drop(inner);
            assert_eq!(current().unwrap().op, WaitOp::Mutex);
            drop(outer);
            assert_eq!(current().unwrap().op, WaitOp::Unknown);
            assert!(current().unwrap().location.is_none());
        });
    }
}
