//! File operations for futures: the op owns its buffer and its descriptor until it completes.
//!
//! A fiber that reads a file lends the kernel (or a helper thread) a buffer on its stack and
//! waits, uninterruptibly, until the read is over (see `model::green::reactor::op`). A future
//! cannot promise that: it may be dropped at any `Pending`, and a `Send` future may be polled on
//! another worker at its next poll. So every file op a future starts takes its buffer (a `Vec`)
//! and a reference to its descriptor (`Arc<std::fs::File>`, so that a `File` closed meanwhile
//! cannot have its descriptor number reused under the op) and gives them back with the result.
//! Dropping the future mid-op leaves both with the op, freed when it ends.
//!
//! Two ways to run a disk file's op, chosen when it starts (see [`FileOp::start`]):
//!
//! - **On the ring** of the Green io_uring worker polling the future: the SQE points into the
//!   owned buffer, the worker's slot for the op holds a reference to [`RingOp`] until the CQE,
//!   and the worker hands the result over at the CQE ([`OwnedOp::complete`]) and wakes the
//!   future's waker. The future reads the result from the shared `RingOp`, whichever thread
//!   polls it by then; nobody but the owning worker ever touches that worker's ring.
//! - **On a helper thread** everywhere else (Green on epoll, Threaded, custom models, and a
//!   future polled outside any worker): an [`Offload`] job runs the same blocking syscall the
//!   colorblind `File` methods make (so a custom model still receives its `Operation`s), then
//!   wakes the future. On Blocking the job runs inline, at the first poll.
//!
//! ```text
//!  future              RingOp (Arc)                    worker's ring slot (Arc)
//!  start ── SQE(ptr into buf) ──▶ kernel owns buf ───CQE──▶ complete(res): result, DONE, waker
//!  poll: DONE? take result + buf                          slot freed: its Arc dropped
//!  drop mid-op: its Arc dropped; buf freed by the slot's drop at the CQE
//! ```
//!
//! Tokio's `fs::File` always takes the second way (a buffer filled on its blocking pool);
//! monoio and tokio-uring only the first (`IoBuf` types the op owns). Taking both behind one
//! future keeps one API on every model, and the ring's completions cost no thread hand-off.
//!
//! A *stream*'s read or write (a FIFO, a terminal: it may wait for another party for ever)
//! takes neither: it is tried in `poll` and waits for readiness through the async driver
//! ([`super::stream_async`]).

use std::any::Any;
use std::io::{self, SeekFrom};
use std::os::fd::AsRawFd;
use std::panic::{self, Location};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};

use atomic_waker::AtomicWaker;
use io_uring::types::{Fd, FsyncFlags};
use io_uring::{opcode, squeue};

use crate::model::green;
use crate::model::green::reactor::op::{OwnedOp, RingCancel};
use crate::task::{Run, Runnable};
use crate::Io;

use super::stream_async::{StreamFd, StreamOp};

/// What a [`FileOp`] does.
#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
    /// Reads into `buf[start..]`, at `offset` or (`None`) at the file position.
    Read { offset: Option<u64> },
    /// Writes `buf[start..]`, at `offset` or (`None`) at the file position.
    Write { offset: Option<u64> },
    /// `fsync(2)`, or `fdatasync(2)` when `data_only`.
    Sync { data_only: bool },
    /// `lseek(2)`; its result is the new position.
    Seek(SeekFrom),
}

/// A descriptor and a buffer an op owns.
#[derive(Debug)]
pub(crate) struct Owned {
    /// The descriptor, held open while the op runs (a socket's op holds a duplicate of the
    /// socket's descriptor, as a `File`: see `net/owned.rs`).
    pub(crate) file: Arc<std::fs::File>,
    /// For a non-blocking stream (FIFO, terminal…), not a regular file: its driver
    /// registration, through which its reads and writes wait.
    pub(crate) stream: Option<Arc<StreamFd>>,
    pub(crate) buf: Vec<u8>,
    /// Where in `buf` the transfer starts.
    pub(crate) start: usize,
}

/// What an op gives back: its result (a byte count, or the new position of a seek) and its
/// buffer.
pub(crate) type Outcome = (io::Result<u64>, Vec<u8>);

// ---- the helper-thread way ---------------------------------------------------------------------

/// Where a helper's result meets the future that waits for it.
struct Slot<T> {
    result: Mutex<Option<std::thread::Result<T>>>,
    /// Set (Release) once `result` holds the outcome; read (Acquire) by the future.
    done: AtomicBool,
    waker: AtomicWaker,
}

impl<T> Slot<T> {
    fn new() -> Slot<T> {
        Slot {
            result: Mutex::new(None),
            done: AtomicBool::new(false),
            waker: AtomicWaker::new(),
        }
    }

    /// Publishes `result` and returns the waker to wake (outside any lock).
    fn publish(&self, result: std::thread::Result<T>) -> Option<Waker> {
        *self.result.lock().unwrap_or_else(|p| p.into_inner()) = Some(result);
        self.done.store(true, Ordering::Release);
        self.waker.take()
    }

    /// The published result, or `Pending` with `cx`'s waker registered.
    fn poll(&self, cx: &mut Context<'_>) -> Poll<std::thread::Result<T>> {
        if !self.done.load(Ordering::Acquire) {
            self.waker.register(cx.waker());
            // Published between the first look and the registration: its waker was taken
            // before ours was there.
            if !self.done.load(Ordering::Acquire) {
                return Poll::Pending;
            }
        }
        let result = self.result.lock().unwrap_or_else(|p| p.into_inner()).take();
        Poll::Ready(result.expect("a published result is taken once"))
    }
}

/// Wakes `waker`, user code, contained: a panic is reported by the hook and goes no further.
fn wake_contained(waker: Option<Waker>) {
    if let Some(w) = waker {
        if let Err(payload) = crate::contain::catch(move || w.wake()) {
            crate::contain::drop_payload(payload);
        }
    }
}

/// A closure for a helper thread, and the slot its result goes to.
struct Job<T, F> {
    body: Mutex<Option<F>>,
    slot: Arc<Slot<T>>,
    location: &'static Location<'static>,
}

impl<T: Send, F: FnOnce() -> T + Send> Run for Job<T, F> {
    fn run(self: Arc<Self>) {
        let body = self.body.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(body) = body {
            let result = crate::contain::catch(body);
            wake_contained(self.slot.publish(result));
        }
    }

    fn location(&self) -> &'static Location<'static> {
        self.location
    }
}

impl<T, F> Drop for Job<T, F> {
    /// A model that drops the job without running it (a custom model's choice) must not leave
    /// its future waiting for ever.
    fn drop(&mut self) {
        let body = self.body.get_mut().unwrap_or_else(|p| p.into_inner());
        if body.take().is_some() {
            let payload: Box<dyn Any + Send> =
                Box::new("zsync: the model dropped an offloaded call without running it");
            wake_contained(self.slot.publish(Err(payload)));
        }
    }
}

/// A blocking call run on a helper thread of `io`'s model (inline on Blocking, or where the
/// model takes no more work), as a future of its value. Dropping it leaves the call running; its
/// value is then dropped on the helper thread.
pub(crate) struct Offload<T> {
    slot: Option<Arc<Slot<T>>>,
}

impl<T: Send + 'static> Offload<T> {
    /// Hands `f` to `io`'s model now.
    #[track_caller]
    pub(crate) fn start(io: &Io, f: impl FnOnce() -> T + Send + 'static) -> Offload<T> {
        let slot = Arc::new(Slot::new());
        let job = Arc::new(Job {
            body: Mutex::new(Some(f)),
            slot: slot.clone(),
            location: Location::caller(),
        });
        if io
            .inner
            .model
            .blocking(Runnable::from_arc(job.clone()))
            .is_err()
        {
            // No helper thread: run it here (blocking the caller, still correct).
            job.run();
        }
        Offload { slot: Some(slot) }
    }

    /// The call's value once it has returned. A panic of the call resumes here. Must not be
    /// polled again after `Ready`.
    pub(crate) fn poll_done(&mut self, cx: &mut Context<'_>) -> Poll<T> {
        let slot = self
            .slot
            .as_ref()
            .expect("an Offload polled after it completed");
        let result = std::task::ready!(slot.poll(cx));
        self.slot = None;
        Poll::Ready(result.unwrap_or_else(|payload| panic::resume_unwind(payload)))
    }
}

// ---- the ring way ------------------------------------------------------------------------------

/// An op in a worker's ring: its memory, and where its completion goes. Sockets' owned
/// receives and sends use it too (`net/owned.rs`), with [`RingOp::submit`] and
/// [`RingOp::cancel`].
pub(crate) struct RingOp {
    /// The buffer and descriptor the SQE names. Untouched by anyone (the kernel uses them
    /// through the SQE's pointers) until `done`; then the future takes them.
    owned: Mutex<Option<Owned>>,
    slot: Slot<io::Result<u64>>,
    /// Cancels the op while it is in the kernel (set once it is queued).
    cancel: OnceLock<RingCancel>,
}

impl OwnedOp for RingOp {
    fn complete(&self, res: i32) -> Option<Waker> {
        let result = if res >= 0 {
            Ok(u64::from(res.unsigned_abs()))
        } else {
            Err(io::Error::from_raw_os_error(-res))
        };
        self.slot.publish(Ok(result))
    }

    fn submitted(&self, cancel: RingCancel) {
        let _ = self.cancel.set(cancel);
    }
}

impl RingOp {
    /// Submits the entry `sqe(fd, ptr, len)` builds, for `owned.buf[owned.start..]` (`ptr`,
    /// `len`) and `owned.file` (`fd`), on the calling worker's ring if it has one for opcode
    /// `code` (see `green::submit_owned`); gives `owned` back otherwise.
    pub(crate) fn submit(
        owned: Owned,
        code: u8,
        sqe: impl FnOnce(Fd, *mut u8, u32) -> squeue::Entry,
    ) -> Result<Arc<RingOp>, Owned> {
        let start = owned.start.min(owned.buf.len());
        let len = u32::try_from(owned.buf.len() - start).unwrap_or(u32::MAX);
        let fd = Fd(owned.file.as_raw_fd());
        let op = Arc::new(RingOp {
            owned: Mutex::new(Some(owned)),
            slot: Slot::new(),
            cancel: OnceLock::new(),
        });
        let ptr = {
            let mut guard = op.owned.lock().unwrap_or_else(|p| p.into_inner());
            let owned = guard.as_mut().expect("just stored");
            // The heap block of the `Vec`, which stays where it is while the `Vec` sits in `op`.
            owned.buf[start..].as_mut_ptr()
        };
        let shared: Arc<dyn OwnedOp> = op.clone();
        // SAFETY: the entry names `ptr..ptr+len`, inside the heap block of the `Vec` held by
        // `op`, and the descriptor held open by `op` (`Arc<std::fs::File>`). The worker's slot
        // holds `shared` (a reference to `op`) until the CQE, so both outlive the kernel's use.
        // Nobody else touches the `Vec` before `complete` publishes `done`: the future takes
        // `owned` only after observing `done` (`poll_done`), and nothing else reaches `op`.
        match unsafe { green::submit_owned(code, || sqe(fd, ptr, len), move || shared) } {
            Some(Ok(())) => Ok(op),
            Some(Err(e)) => {
                // Never queued: the memory is ours again; report the error as the op's outcome.
                let _ = op.slot.publish(Ok(Err(e)));
                Ok(op)
            }
            None => {
                let owned = op.owned.lock().unwrap_or_else(|p| p.into_inner()).take();
                Err(owned.expect("not submitted: still here"))
            }
        }
    }

    /// The outcome once the CQE has arrived. Must not be polled again after `Ready`.
    pub(crate) fn poll_done(&self, cx: &mut Context<'_>) -> Poll<Outcome> {
        let result = std::task::ready!(self.slot.poll(cx))
            .unwrap_or_else(|payload| panic::resume_unwind(payload));
        let owned = self.owned.lock().unwrap_or_else(|p| p.into_inner()).take();
        Poll::Ready((result, owned.map(|o| o.buf).unwrap_or_default()))
    }

    /// Asks the owning worker to cancel the op if it is still in the kernel (its future is
    /// going): the buffer stays the op's until the CQE, which may still report success.
    pub(crate) fn cancel(&self) {
        if !self.slot.done.load(Ordering::Acquire) {
            if let Some(cancel) = self.cancel.get() {
                cancel.cancel();
            }
        }
    }
}

/// Submits `kind` on the calling worker's ring if there is one for it; gives `owned` back
/// otherwise.
fn submit_on_ring(kind: Kind, owned: Owned) -> Result<Arc<RingOp>, Owned> {
    if owned.stream.is_some() {
        // A stream's seek or sync (its reads and writes never come here): not for the ring.
        return Err(owned);
    }
    let code = match kind {
        Kind::Read { .. } => opcode::Read::CODE,
        Kind::Write { .. } => opcode::Write::CODE,
        Kind::Sync { .. } => opcode::Fsync::CODE,
        Kind::Seek(_) => return Err(owned),
    };
    // The ring reads `u64::MAX` as "at the file position"; larger offsets are refused by the
    // syscalls, which the helper path reports.
    let offset = match kind {
        Kind::Read { offset } | Kind::Write { offset } => match offset {
            None => crate::op::vectored::AT_CURSOR,
            Some(o) if o <= i64::MAX as u64 => o,
            Some(_) => return Err(owned),
        },
        _ => 0,
    };
    RingOp::submit(owned, code, |fd, ptr, len| match kind {
        Kind::Read { .. } => opcode::Read::new(fd, ptr, len).offset(offset).build(),
        Kind::Write { .. } => opcode::Write::new(fd, ptr, len).offset(offset).build(),
        Kind::Sync { data_only } => {
            let flags = if data_only {
                FsyncFlags::DATASYNC
            } else {
                FsyncFlags::empty()
            };
            opcode::Fsync::new(fd).flags(flags).build()
        }
        Kind::Seek(_) => unreachable!("seeks are not ring ops"),
    })
}

// ---- the future-side handle --------------------------------------------------------------------

/// One file op in progress. See the module docs.
pub(super) enum FileOp {
    Ring(Arc<RingOp>),
    /// On a helper thread.
    Helper(Offload<(io::Result<u64>, Owned)>),
    /// A stream's read or write, waiting for readiness (see [`super::stream_async`]).
    Stream(StreamOp),
    /// Completed before it started (nothing to do).
    Ready(Option<Outcome>),
}

impl FileOp {
    /// Starts `kind` on `owned` for `io`. A stream's read or write: tried at once, then waiting
    /// for readiness, on every model (as the sockets' async methods, a custom model does not
    /// receive it). Else on the calling worker's ring if it has one for this op, the worker
    /// keeps running while the future waits (see `green::submit_owned`), and `io` is not a
    /// custom model (which must receive its operations); else on a helper thread of `io`'s
    /// model.
    #[track_caller]
    pub(super) fn start(io: &Io, kind: Kind, owned: Owned) -> FileOp {
        if owned.stream.is_some() && matches!(kind, Kind::Read { .. } | Kind::Write { .. }) {
            return match StreamOp::start(kind, owned) {
                Ok(op) => FileOp::Stream(op),
                Err(outcome) => FileOp::Ready(Some(outcome)),
            };
        }
        let owned = if crate::op::custom(io).is_none() {
            match submit_on_ring(kind, owned) {
                Ok(op) => return FileOp::Ring(op),
                Err(owned) => owned,
            }
        } else {
            owned
        };
        let io2 = io.clone();
        FileOp::Helper(Offload::start(io, move || {
            let mut owned = owned;
            let result = perform(&io2, kind, &mut owned);
            (result, owned)
        }))
    }

    /// The outcome once the op is over. Must not be polled again after `Ready`.
    pub(super) fn poll_done(&mut self, cx: &mut Context<'_>) -> Poll<Outcome> {
        match self {
            FileOp::Ring(op) => {
                let outcome = std::task::ready!(op.poll_done(cx));
                *self = FileOp::Ready(None);
                Poll::Ready(outcome)
            }
            FileOp::Helper(job) => {
                let (result, owned) = std::task::ready!(job.poll_done(cx));
                *self = FileOp::Ready(None);
                Poll::Ready((result, owned.buf))
            }
            FileOp::Stream(op) => {
                let outcome = std::task::ready!(op.poll_done(cx));
                *self = FileOp::Ready(None);
                Poll::Ready(outcome)
            }
            FileOp::Ready(outcome) => {
                Poll::Ready(outcome.take().expect("a FileOp polled after it completed"))
            }
        }
    }
}

/// The op as a blocking call, on a helper thread: what the colorblind `File` methods do. A
/// stream's reads and writes never come here ([`FileOp::start`]); its seeks and syncs do (they
/// do not wait for anybody).
fn perform(io: &Io, kind: Kind, owned: &mut Owned) -> io::Result<u64> {
    let file: &std::fs::File = &owned.file;
    let start = owned.start.min(owned.buf.len());
    let n = match kind {
        Kind::Read { offset } => match offset {
            Some(at) => super::sys::pread(io, file, &mut owned.buf[start..], at),
            None => super::sys::read(io, file, &mut owned.buf[start..]),
        },
        Kind::Write { offset } => match offset {
            Some(at) => super::sys::pwrite(io, file, &owned.buf[start..], at),
            None => super::sys::write(io, file, &owned.buf[start..]),
        },
        Kind::Sync { data_only: false } => super::sys::fsync(io, file).map(|()| 0),
        Kind::Sync { data_only: true } => super::sys::fdatasync(io, file).map(|()| 0),
        Kind::Seek(pos) => return super::sys::seek(io, file, pos),
    }?;
    Ok(n as u64)
}
