//! The io_uring backend: one ring per worker, one `io_uring_enter` per loop turn.
//!
//! ## What goes through the ring
//!
//! - **Readiness waits** ([`Uring::register`]): a one-shot `IORING_OP_POLL_ADD` whose completion
//!   wakes the waiting fiber, which then retries its non-blocking syscall, exactly like the epoll
//!   backend. [`Uring::deregister`] abandons the poll and submits an `ASYNC_CANCEL` for it.
//! - **Ring ops** ([`Uring::submit`]): the operation itself (recv, send, accept, connect, file
//!   read/write/fsync; see [`crate::op`]), whose completion carries the syscall's result.
//! - **The worker's eventfd**, kept armed with a `POLL_ADD` (re-armed after each completion), so
//!   that a wake-up from another thread ends the worker's blocking wait.
//!
//! ## One enter per turn
//!
//! Submissions are only queued in the SQ while fibers run; [`Uring::poll`] hands them all to the
//! kernel and waits for completions in a single `io_uring_enter` (with the wait's timeout passed
//! as `IORING_ENTER_EXT_ARG`, or as a standalone `TIMEOUT` on kernels without it). A poll with a
//! zero timeout and nothing to do (no submission queued, no completion work pending in the
//! kernel: see [`build_ring`]) makes no syscall at all: completions are read from shared
//! memory. If the SQ fills up mid-turn, it is submitted early; if the CQ overflowed (the kernel
//! then keeps the extra completions aside, `IORING_SQ_CQ_OVERFLOW`), reaping continues until the
//! kernel's backlog is flushed.
//!
//! ## Memory ownership
//!
//! See [`super::op`]: a buffer, an address or a descriptor named by an SQE belongs to the kernel
//! until that SQE's completion has been reaped, cancellation requests notwithstanding.

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::{Arc, OnceLock};
use std::task::Waker;
use std::time::Duration;

use io_uring::types::{Fd, SubmitArgs, Timespec};
use io_uring::{opcode, squeue, IoUring, Probe};

use super::op::{
    InFlight, Mailbox, OpKey, OwnedOp, RingCancel, Woken, CANCEL_TOKEN, TIMEOUT_TOKEN, WAKE_TOKEN,
    WATCH_TOKEN,
};
use crate::park::Interest;

/// Submission queue entries per ring.
const SQ_ENTRIES: u32 = 256;
/// Completion queue entries per ring: bursts of completions (a wake-up storm, many sockets
/// ready at once) must fit without overflowing.
const CQ_ENTRIES: u32 = 4 * SQ_ENTRIES;

/// What the kernel's io_uring offers, probed once per process.
#[derive(Debug)]
pub(crate) struct Support {
    /// Bit `n` set: opcode `n` is supported.
    ops: [u64; 4],
    /// `IORING_FEAT_EXT_ARG`: a timeout can be passed to `io_uring_enter` directly.
    ext_arg: bool,
}

impl Support {
    /// Whether the kernel supports opcode `code`.
    pub(crate) fn has(&self, code: u8) -> bool {
        self.ops[usize::from(code / 64)] & (1 << (code % 64)) != 0
    }
}

/// The probe result of this process: `Err` says why io_uring cannot be used.
pub(crate) fn support() -> Result<&'static Support, &'static str> {
    static SUPPORT: OnceLock<Result<Support, String>> = OnceLock::new();
    SUPPORT.get_or_init(probe).as_ref().map_err(String::as_str)
}

/// Whether this process may use io_uring now. The capabilities are probed once per process
/// ([`support`]); `io_uring_setup` itself is tried again (a one-entry ring, set up and closed at
/// once: tens of microseconds), because whether it is allowed can change while the process runs
/// (`kernel.io_uring_disabled`): a runtime started after that then takes epoll (`Auto`) or
/// fails naming why, instead of failing to build its workers' rings with a bare EPERM.
pub(crate) fn available() -> Result<(), String> {
    support().map_err(str::to_owned)?;
    IoUring::new(1).map(drop).map_err(|e| setup_refused(&e))
}

fn probe() -> Result<Support, String> {
    let ring = IoUring::new(2).map_err(|e| setup_refused(&e))?;
    let mut probe = Probe::new();
    ring.submitter()
        .register_probe(&mut probe)
        .map_err(|e| format!("io_uring has no opcode probe (kernel older than 5.6): {e}"))?;
    let mut ops = [0u64; 4];
    for code in 0..=u8::MAX {
        if probe.is_supported(code) {
            ops[usize::from(code / 64)] |= 1 << (code % 64);
        }
    }
    let support = Support {
        ops,
        ext_arg: ring.params().is_feature_ext_arg(),
    };
    let mut required = vec![
        (opcode::PollAdd::CODE, "POLL_ADD"),
        (opcode::AsyncCancel::CODE, "ASYNC_CANCEL"),
    ];
    if !support.ext_arg {
        required.push((opcode::Timeout::CODE, "TIMEOUT"));
        required.push((opcode::TimeoutRemove::CODE, "TIMEOUT_REMOVE"));
    }
    let missing: Vec<&str> = required
        .iter()
        .filter(|(code, _)| !support.has(*code))
        .map(|(_, name)| *name)
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "the kernel's io_uring lacks required opcodes: {}",
            missing.join(", ")
        ));
    }
    Ok(support)
}

/// Explains a failed `io_uring_setup`.
fn setup_refused(e: &io::Error) -> String {
    let disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .ok()
        .map(|s| s.trim().to_owned());
    match (e.raw_os_error(), disabled.as_deref()) {
        (Some(libc::ENOSYS), _) => {
            "io_uring_setup is not available (ENOSYS: kernel without io_uring, or filtered)".into()
        }
        (Some(libc::EPERM), Some("2")) => {
            "io_uring is disabled on this system (kernel.io_uring_disabled = 2)".into()
        }
        (Some(libc::EPERM), Some("1")) => {
            "io_uring is restricted to privileged users (kernel.io_uring_disabled = 1)".into()
        }
        (Some(libc::EPERM), _) => {
            "io_uring_setup refused (EPERM: a seccomp filter or container policy)".into()
        }
        _ => format!("io_uring_setup failed: {e}"),
    }
}

/// Builds a worker's ring with the cheapest completion delivery the kernel offers.
///
/// Without flags, the kernel runs a socket op's completion work (the retried `recv`, posting the
/// CQE) as task work on the submitting thread *as soon as it can*: it interrupts the worker
/// (an IPI, then the signal-delivery path on the way back to user space) even while the worker
/// is busy running fibers. Profiled under `wrk`, that interrupt path (reschedule IPIs,
/// `get_signal`, `io_req_task_submit` and its lock contention) took a double-digit share of the
/// server's CPU (see docs/ARCHITECTURE.md, "Measurements behind the tuning").
/// So, newest first:
///
/// - `SINGLE_ISSUER | DEFER_TASKRUN | TASKRUN_FLAG` (Linux 6.1): completion work waits until the
///   worker asks for completions (an `io_uring_enter` with `GETEVENTS`, i.e. [`Uring::poll`]),
///   and runs there in one batch; no interrupts at all. Only the thread that created the ring
///   may submit to it, which holds: a worker builds its ring on its own thread and nothing else
///   touches it (it sits in a `RefCell`). The kernel raises `IORING_SQ_TASKRUN` in the shared
///   SQ flags while such work is pending, so a non-blocking poll knows when an enter is needed.
/// - `COOP_TASKRUN | TASKRUN_FLAG` (5.19): no forced interrupts; the work runs at the next
///   syscall or when the worker polls (same flag).
/// - no flags (older kernels).
fn build_ring() -> io::Result<IoUring> {
    let base = || {
        let mut b = IoUring::builder();
        b.setup_cqsize(CQ_ENTRIES).setup_clamp();
        b
    };
    let mut deferred = base();
    deferred
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_taskrun_flag();
    if let Ok(ring) = deferred.build(SQ_ENTRIES) {
        return Ok(ring);
    }
    let mut coop = base();
    coop.setup_coop_taskrun().setup_taskrun_flag();
    if let Ok(ring) = coop.build(SQ_ENTRIES) {
        return Ok(ring);
    }
    base().build(SQ_ENTRIES)
}

/// Gives this thread's io-wq (the kernel threads that run the thread's blocking ring ops: file
/// I/O, a FIFO's open) the concurrency the worker's own ring would have given it. The kernel
/// sizes a thread's io-wq once, from the first ring the thread sets up: min(its SQ entries,
/// 4 × online CPUs) "bounded" workers. A smaller ring set up earlier on the thread (the
/// capability probe, 2 entries; `Backend::resolve`'s check, 1) left worker 0 at 2, then 1:
/// a FIFO's reader and writer, both opening through the ring, then waited for each other for
/// ever (a conformance test hung). Kernels without the call (before 5.15) keep their sizing.
fn size_io_wq(ring: &IoUring) {
    // SAFETY: `sysconf` has no preconditions.
    let cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    let cpus = u32::try_from(cpus).unwrap_or(1).max(1);
    // [bounded, unbounded]; 0 leaves the unbounded limit as it is.
    let mut max = [SQ_ENTRIES.min(4 * cpus), 0];
    let _ = ring.submitter().register_iowq_max_workers(&mut max);
}

/// One worker's ring.
pub(crate) struct Uring {
    ring: RefCell<IoUring>,
    ops: RefCell<InFlight>,
    /// The worker's eventfd (outlives the ring; see `WorkerLocal`'s field order).
    wake_fd: BorrowedFd<'static>,
    /// Whether a `POLL_ADD` on `wake_fd` is queued or in the kernel.
    wake_armed: Cell<bool>,
    /// Whether `io_uring_enter` takes a timeout (else a `TIMEOUT` SQE bounds the wait).
    ext_arg: bool,
    /// The standalone wait timeout's duration: the kernel reads it when the SQE is submitted,
    /// which happens inside the `poll` that queued it.
    timeout: Cell<Timespec>,
    /// Whether a standalone `TIMEOUT` is in the kernel.
    timeout_armed: Cell<bool>,
    support: &'static Support,
    /// The wakers of one reaping, kept between turns for their allocation.
    woken: Cell<Vec<Waker>>,
    /// The watched descriptor (see `Reactor::watch`): a one-shot `POLL_ADD` re-armed by each
    /// `poll` after it completed, so readiness left undrained completes it again at once.
    watched: Cell<Option<BorrowedFd<'static>>>,
    /// Whether the `POLL_ADD` on `watched` is queued or in the kernel.
    watch_armed: Cell<bool>,
    /// Whether it completed since `take_watched` last asked.
    watched_ready: Cell<bool>,
    /// The owned ops completed by one reaping, with their results (same reuse).
    owned_done: Cell<Vec<(Arc<dyn OwnedOp>, i32)>>,
    /// Cancel requests for owned ops, from whichever thread drops their futures.
    cancels: Arc<Mailbox>,
}

impl Uring {
    /// A new ring for one worker; `wake_fd` is the worker's eventfd, which outlives it.
    pub(crate) fn new(wake_fd: BorrowedFd<'static>) -> io::Result<Uring> {
        let support = support().map_err(io::Error::other)?;
        Uring::with_support(wake_fd, support, support.ext_arg)
    }

    fn with_support(
        wake_fd: BorrowedFd<'static>,
        support: &'static Support,
        ext_arg: bool,
    ) -> io::Result<Uring> {
        let ring = build_ring()?;
        size_io_wq(&ring);
        Ok(Uring {
            ring: RefCell::new(ring),
            ops: RefCell::new(InFlight::default()),
            wake_fd,
            wake_armed: Cell::new(false),
            ext_arg,
            timeout: Cell::new(Timespec::new()),
            timeout_armed: Cell::new(false),
            support,
            woken: Cell::new(Vec::new()),
            watched: Cell::new(None),
            watch_armed: Cell::new(false),
            watched_ready: Cell::new(false),
            owned_done: Cell::new(Vec::new()),
            cancels: Arc::new(Mailbox::new(wake_fd.try_clone_to_owned()?)),
        })
    }

    /// Watches `fd` for readability (see `Reactor::watch`); the poll is queued by the next
    /// [`poll`](Self::poll).
    pub(crate) fn watch(&self, fd: BorrowedFd<'static>) {
        self.watched.set(Some(fd));
    }

    pub(crate) fn is_watching(&self) -> bool {
        self.watched.get().is_some()
    }

    pub(crate) fn take_watched(&self) -> bool {
        self.watched_ready.replace(false)
    }

    /// Whether ops with opcode `code` can go through this ring.
    pub(crate) fn supports(&self, code: u8) -> bool {
        self.support.has(code)
    }

    /// Queues `entry` in the SQ, submitting early when it is full.
    ///
    /// # Safety
    /// Every pointer in `entry` must stay valid until its completion has been reaped (see
    /// [`super::op`]).
    unsafe fn push(&self, entry: &squeue::Entry) -> io::Result<()> {
        loop {
            {
                let mut ring = self.ring.borrow_mut();
                // SAFETY: forwarded from this function's contract.
                if unsafe { ring.submission().push(entry) }.is_ok() {
                    return Ok(());
                }
            }
            // The SQ is full: hand it to the kernel now.
            let submitted = self.ring.borrow().submit();
            match submitted {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                // The CQ is full (the kernel keeps completions aside): make room and retry.
                Err(e) if matches!(e.raw_os_error(), Some(libc::EBUSY | libc::EAGAIN)) => {
                    self.reap_and_wake();
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Queues an entry that names no memory (poll, cancel).
    fn push_plain(&self, entry: &squeue::Entry) -> io::Result<()> {
        // SAFETY: the entries given here (poll, async cancel, timeout removal) carry no pointer;
        // the only other caller-supplied pointer, the standalone timeout's `Timespec`, lives in
        // `self` and is pushed through `push` directly.
        unsafe { self.push(entry) }
    }

    /// Wakes `waker` once `fd` may be ready for `interest`: a one-shot poll on the ring.
    pub(crate) fn register(
        &self,
        fd: BorrowedFd<'_>,
        interest: Interest,
        waker: &Waker,
    ) -> io::Result<OpKey> {
        let events = match interest {
            Interest::Read => libc::POLLIN | libc::POLLRDHUP,
            Interest::Write => libc::POLLOUT,
        };
        let key = self.ops.borrow_mut().insert(waker.clone());
        let entry = opcode::PollAdd::new(Fd(fd.as_raw_fd()), events as u32)
            .build()
            .user_data(key.user_data());
        if let Err(e) = self.push_plain(&entry) {
            // Never queued: nothing will complete it.
            self.ops.borrow_mut().forget(key);
            return Err(e);
        }
        Ok(key)
    }

    /// Stops waiting for a registered poll. Its slot stays allocated until the kernel's
    /// completion for it arrives.
    pub(crate) fn deregister(&self, key: OpKey) {
        let cancel = self.ops.borrow_mut().abandon(key);
        if cancel {
            self.cancel(key);
        }
    }

    /// Submits a ring op whose completion wakes `waker`; its result is then collected with
    /// [`take`](Self::take).
    ///
    /// # Safety
    /// Every pointer in `entry` (buffers, addresses, lengths) must stay valid until `take`
    /// returns `Some` for the returned key: the caller waits for the completion even when it is
    /// canceled.
    pub(crate) unsafe fn submit(&self, entry: squeue::Entry, waker: Waker) -> io::Result<OpKey> {
        let key = self.ops.borrow_mut().insert(waker);
        let entry = entry.user_data(key.user_data());
        // SAFETY: forwarded from this function's contract.
        if let Err(e) = unsafe { self.push(&entry) } {
            // Never queued: the kernel never saw the memory.
            self.ops.borrow_mut().forget(key);
            return Err(e);
        }
        Ok(key)
    }

    /// Submits a ring op whose memory `op` owns (a future's): at its CQE the worker hands the
    /// result to [`OwnedOp::complete`] and drops the slot's reference to `op`. Nobody waits on
    /// this ring for it: the future learns the result from `op`, on whatever thread polls it.
    ///
    /// # Safety
    /// Every pointer in `entry` must point into memory that `op` keeps alive and that nobody
    /// else reads or writes until `op.complete` has been called.
    pub(crate) unsafe fn submit_owned(
        &self,
        entry: squeue::Entry,
        op: Arc<dyn OwnedOp>,
    ) -> io::Result<()> {
        let key = self.ops.borrow_mut().insert_owned(op.clone());
        let entry = entry.user_data(key.user_data());
        // SAFETY: forwarded from this function's contract; the slot keeps `op` (so the memory)
        // alive until the CQE.
        if let Err(e) = unsafe { self.push(&entry) } {
            self.ops.borrow_mut().forget(key);
            return Err(e);
        }
        op.submitted(RingCancel::new(self.cancels.clone(), key));
        Ok(())
    }

    /// The op's result (the CQE's `res`) once it has completed, freeing its slot; else `None`
    /// and `waker` will be woken by the completion.
    pub(crate) fn take(&self, key: OpKey, waker: &Waker) -> Option<i32> {
        self.ops.borrow_mut().take(key, waker)
    }

    /// Asks the kernel to cancel a submitted op. The op still owns its memory until its own
    /// completion arrives (which may report success).
    pub(crate) fn request_cancel(&self, key: OpKey) {
        if self.ops.borrow_mut().request_cancel(key) {
            self.cancel(key);
        }
    }

    fn cancel(&self, key: OpKey) {
        let entry = opcode::AsyncCancel::new(key.user_data())
            .build()
            .user_data(CANCEL_TOKEN);
        if let Err(e) = self.push_plain(&entry) {
            // The op then completes on its own (readiness, data, or the socket's close).
            eprintln!("zsync: cannot queue an io_uring cancel: {e}");
        }
    }

    /// Whether completions are waiting to be reaped, or completion work waits in the kernel
    /// for this thread's next enter (`IORING_SQ_TASKRUN`), as far as shared memory tells: no
    /// syscall.
    pub(crate) fn has_events(&self) -> bool {
        let mut ring = self.ring.borrow_mut();
        ring.submission().taskrun() || !ring.completion().is_empty()
    }

    /// Submits everything queued and waits up to `timeout` (`None`: until a completion; zero:
    /// not at all) for completions, then wakes their owners.
    pub(crate) fn poll(&self, timeout: Option<Duration>) -> io::Result<()> {
        for data in self.cancels.take() {
            let key = OpKey::from_user_data(data);
            // Completed meanwhile (maybe its slot reused, under a new generation): nothing to do.
            if self.ops.borrow().is_owned(key) {
                self.cancel(key);
            }
        }
        if !self.wake_armed.get() {
            let entry = opcode::PollAdd::new(Fd(self.wake_fd.as_raw_fd()), libc::POLLIN as u32)
                .build()
                .user_data(WAKE_TOKEN);
            self.push_plain(&entry)?;
            self.wake_armed.set(true);
        }
        if let (Some(fd), false) = (self.watched.get(), self.watch_armed.get()) {
            let entry = opcode::PollAdd::new(Fd(fd.as_raw_fd()), libc::POLLIN as u32)
                .build()
                .user_data(WATCH_TOKEN);
            self.push_plain(&entry)?;
            self.watch_armed.set(true);
        }
        let result = match timeout {
            Some(t) if t.is_zero() => {
                let mut ring = self.ring.borrow_mut();
                let pending = {
                    let sq = ring.submission();
                    // `taskrun`: completion work waits for an enter (see `build_ring`).
                    !sq.is_empty() || sq.cq_overflow() || sq.taskrun()
                };
                if pending {
                    ring.submit()
                } else {
                    Ok(0)
                }
            }
            None => self.ring.borrow().submit_and_wait(1),
            Some(t) if self.ext_arg => {
                let ts = Timespec::from(t);
                let args = SubmitArgs::new().timespec(&ts);
                self.ring.borrow().submitter().submit_with_args(1, &args)
            }
            Some(t) => {
                self.arm_timeout(t)?;
                self.ring.borrow().submit_and_wait(1)
            }
        };
        match result {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN)
                ) => {}
            Err(e) => return Err(e),
        }
        self.reap_and_wake();
        if self.timeout_armed.get() {
            // The wait ended before its timeout: withdraw it, so that it does not cut a later
            // wait short (queued now, submitted with the next turn).
            let entry = opcode::TimeoutRemove::new(TIMEOUT_TOKEN)
                .build()
                .user_data(CANCEL_TOKEN);
            self.push_plain(&entry)?;
            self.timeout_armed.set(false);
        }
        Ok(())
    }

    /// Kernels without `IORING_FEAT_EXT_ARG`: bounds the coming wait with a `TIMEOUT` SQE.
    fn arm_timeout(&self, t: Duration) -> io::Result<()> {
        self.timeout.set(Timespec::from(t));
        let entry = opcode::Timeout::new(self.timeout.as_ptr())
            .build()
            .user_data(TIMEOUT_TOKEN);
        // SAFETY: the timespec lives in `self`; the kernel copies it when the SQE is submitted,
        // which the caller does right away, before `self.timeout` can change.
        unsafe { self.push(&entry) }?;
        self.timeout_armed.set(true);
        Ok(())
    }

    /// Reaps every completion (flushing a CQ overflow backlog) and wakes the owners, outside
    /// any borrow of the ring.
    fn reap_and_wake(&self) {
        // The list of a previous turn, reused for its allocation. Taken out of its cell, so a
        // waker that reentered the reactor would find an empty one rather than a borrow.
        let mut wake = self.woken.take();
        let mut owned = self.owned_done.take();
        {
            let mut ring = self.ring.borrow_mut();
            let mut ops = self.ops.borrow_mut();
            loop {
                for cqe in ring.completion() {
                    match cqe.user_data() {
                        CANCEL_TOKEN => {}
                        WAKE_TOKEN => {
                            let mut buf = [0u8; 8];
                            let _ = rustix::io::read(self.wake_fd, &mut buf);
                            self.wake_armed.set(false);
                        }
                        WATCH_TOKEN => {
                            self.watch_armed.set(false);
                            self.watched_ready.set(true);
                        }
                        TIMEOUT_TOKEN => {
                            // -ECANCELED: removed before it fired; either way it is gone.
                            self.timeout_armed.set(false);
                        }
                        data => match ops.complete(data, cqe.result(), cqe.flags()) {
                            Some(Woken::Waker(w)) => wake.push(w),
                            Some(Woken::Owned(op, res)) => owned.push((op, res)),
                            None => {}
                        },
                    }
                }
                if !ring.submission().cq_overflow() {
                    break;
                }
                // Completions the kernel set aside: an enter flushes them into the CQ we just
                // emptied.
                if ring.submit().is_err() {
                    break;
                }
            }
        }
        for w in wake.drain(..) {
            w.wake();
        }
        self.woken.set(wake);
        if !owned.is_empty() {
            complete_owned(&mut owned);
        }
        self.owned_done.set(owned);
    }

    /// Waits for the completions of the owned ops still in the kernel, after asking it to
    /// cancel them: their memory is freed when their completion arrives, never before. Only
    /// futures dropped mid-op leave such ops behind (a live future's task finishes before its
    /// runtime shuts down), and file ops end on their own once the disk answers.
    fn drain_owned(&self) {
        let keys = self.ops.borrow().owned_keys();
        for key in keys {
            self.cancel(key);
        }
        while self.ops.borrow().owned() > 0 {
            if let Err(e) = self.poll(Some(Duration::from_millis(100))) {
                // Leak what is left rather than free memory the kernel may still write.
                eprintln!("zsync: cannot reap a closing io_uring's last ops ({e}); leaking them");
                let ops = std::mem::take(&mut *self.ops.borrow_mut());
                std::mem::forget(ops);
                return;
            }
        }
    }

    /// Number of ops the kernel may still complete: readiness polls, ring ops and owned ops
    /// (the ring's own wake-up poll and wait timeout are not counted).
    pub(crate) fn in_flight(&self) -> usize {
        self.ops.borrow().len()
    }
}

impl Drop for Uring {
    fn drop(&mut self) {
        if self.ops.get_mut().owned() > 0 {
            self.drain_owned();
        }
    }
}

/// Hands each completed owned op its result and wakes whoever awaits it. A waker is the
/// awaiting party's (a future task's, or a user's own when a future is polled by hand), so
/// each wake-up, and each drop of the op (its memory), is contained: a panic there is reported
/// by the panic hook and goes no further, and the other ops still complete.
fn complete_owned(done: &mut Vec<(Arc<dyn OwnedOp>, i32)>) {
    for (op, res) in done.drain(..) {
        let woke = crate::contain::catch(move || {
            if let Some(w) = op.complete(res) {
                w.wake();
            }
        });
        if let Err(payload) = woke {
            crate::contain::drop_payload(payload);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsFd, OwnedFd};

    use std::time::Instant;

    use rustix::event::{eventfd, EventfdFlags};

    use crate::test_waker::{counter, wakes};

    fn leak_eventfd() -> BorrowedFd<'static> {
        let fd: OwnedFd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK).unwrap();
        let fd: &'static OwnedFd = Box::leak(Box::new(fd));
        fd.as_fd()
    }

    /// The rings to test (with and without `EXT_ARG`), or none, with a note written past the
    /// harness's capture, where the kernel refuses io_uring.
    fn rings() -> Vec<Uring> {
        let support = match available().and_then(|()| support().map_err(str::to_owned)) {
            Ok(support) => support,
            Err(why) => {
                use std::io::Write as _;
                let _ = writeln!(
                    std::io::stderr(),
                    "ring unit test: skipped: io_uring unavailable: {why}"
                );
                return Vec::new();
            }
        };
        let mut rings = vec![Uring::with_support(leak_eventfd(), support, false).unwrap()];
        if support.ext_arg {
            rings.push(Uring::with_support(leak_eventfd(), support, true).unwrap());
        }
        rings
    }

    /// A small ring set up first on a thread (as the capability probe does) must not leave a
    /// worker ring built later on that thread with a one- or two-worker io-wq.
    #[test]
    fn a_worker_ring_gets_a_full_io_wq_after_a_small_probe_ring() {
        if rings().is_empty() {
            return;
        }
        let limits = std::thread::spawn(|| {
            drop(IoUring::new(1).unwrap());
            let ring = Uring::new(leak_eventfd()).unwrap();
            let mut max = [0u32; 2]; // 0: read the limits without changing them
            let ring = ring.ring.borrow();
            ring.submitter()
                .register_iowq_max_workers(&mut max)
                .map(|()| max)
        })
        .join()
        .unwrap();
        let Ok([bounded, _]) = limits else {
            return; // a kernel before 5.15: neither the call nor the per-thread sizing
        };
        // SAFETY: `sysconf` has no preconditions.
        let cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
        let cpus = u32::try_from(cpus).unwrap_or(1).max(1);
        assert_eq!(bounded, SQ_ENTRIES.min(4 * cpus));
    }

    #[test]
    fn a_wait_ends_at_its_timeout_with_and_without_ext_arg() {
        for ring in rings() {
            for _ in 0..3 {
                let start = Instant::now();
                ring.poll(Some(Duration::from_millis(20))).unwrap();
                let took = start.elapsed();
                assert!(took >= Duration::from_millis(15), "{took:?}");
                assert!(took < Duration::from_secs(2), "{took:?}");
            }
        }
    }

    #[test]
    fn an_eventfd_write_ends_a_wait_forever() {
        for ring in rings() {
            ring.poll(Some(Duration::ZERO)).unwrap();
            rustix::io::write(ring.wake_fd, &1u64.to_ne_bytes()).unwrap();
            ring.poll(None).unwrap();
            // Drained and re-armed: a second wake-up works too.
            let fd = ring.wake_fd;
            let t = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                rustix::io::write(fd, &1u64.to_ne_bytes()).unwrap();
            });
            ring.poll(None).unwrap();
            t.join().unwrap();
        }
    }

    /// An owned op that records its result and the cancel handle the ring gives it.
    struct Recorded {
        res: std::sync::Mutex<Option<i32>>,
        cancel: std::sync::OnceLock<RingCancel>,
        buf: std::cell::UnsafeCell<[u8; 16]>,
    }

    // SAFETY: `buf` is only written by the kernel, through the SQE, and never read here.
    unsafe impl Sync for Recorded {}

    impl OwnedOp for Recorded {
        fn complete(&self, res: i32) -> Option<Waker> {
            *self.res.lock().unwrap() = Some(res);
            None
        }
        fn submitted(&self, cancel: RingCancel) {
            let _ = self.cancel.set(cancel);
        }
    }

    #[test]
    fn an_owned_receive_is_canceled_from_another_thread_and_completes() {
        for ring in rings() {
            let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
            let op = Arc::new(Recorded {
                res: std::sync::Mutex::new(None),
                cancel: std::sync::OnceLock::new(),
                buf: std::cell::UnsafeCell::new([0; 16]),
            });
            let entry = opcode::Recv::new(Fd(a.as_raw_fd()), op.buf.get().cast(), 16).build();
            // SAFETY: the entry names `op`'s buffer, kept alive by the slot's reference until
            // the CQE, and `a`, open until the end of this scope, after the CQE is reaped.
            unsafe { ring.submit_owned(entry, op.clone()) }.unwrap();
            ring.poll(Some(Duration::ZERO)).unwrap();
            assert_eq!(*op.res.lock().unwrap(), None, "nothing to receive yet");
            // Dropped elsewhere: the request goes through the mailbox (and the eventfd).
            let cancel = op.cancel.get().expect("handed over at submission");
            std::thread::scope(|s| {
                s.spawn(|| cancel.cancel());
            });
            for _ in 0..1000 {
                if op.res.lock().unwrap().is_some() {
                    break;
                }
                ring.poll(Some(Duration::from_millis(10))).unwrap();
            }
            assert_eq!(*op.res.lock().unwrap(), Some(-libc::ECANCELED));
            assert_eq!(ring.in_flight(), 0);
            // A late request for an op that has completed cancels nothing.
            cancel.cancel();
            ring.poll(Some(Duration::ZERO)).unwrap();
        }
    }

    #[test]
    fn polls_wake_and_deregistered_polls_are_freed_by_their_cqe() {
        for ring in rings() {
            let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
            let (count, waker) = counter();
            // Writable at once.
            let ready = ring.register(a.as_fd(), Interest::Write, &waker).unwrap();
            // Not readable: deregistered, canceled.
            let idle = ring.register(b.as_fd(), Interest::Read, &waker).unwrap();
            ring.poll(Some(Duration::from_millis(100))).unwrap();
            assert_eq!(wakes(&count), 1);
            ring.deregister(ready);
            assert_eq!(
                ring.in_flight(),
                1,
                "a completed poll is freed when withdrawn"
            );
            ring.deregister(idle);
            assert_eq!(
                ring.in_flight(),
                1,
                "the slot waits for the kernel's answer"
            );
            // Bounded generously (up to 10 s), not by what a quiet machine needs.
            for _ in 0..1000 {
                if ring.in_flight() == 0 {
                    break;
                }
                ring.poll(Some(Duration::from_millis(10))).unwrap();
            }
            assert_eq!(ring.in_flight(), 0);
            assert_eq!(wakes(&count), 1, "a canceled poll wakes nobody");
        }
    }

    #[test]
    fn every_poll_of_one_descriptor_completes() {
        use std::io::Write;
        for ring in rings() {
            let (mut a, b) = std::os::unix::net::UnixStream::pair().unwrap();
            let (first, w1) = counter();
            let (second, w2) = counter();
            let k1 = ring.register(b.as_fd(), Interest::Read, &w1).unwrap();
            let k2 = ring.register(b.as_fd(), Interest::Read, &w2).unwrap();
            ring.poll(Some(Duration::ZERO)).unwrap(); // submitted, nothing ready
            a.write_all(b"x").unwrap();
            for _ in 0..100 {
                if wakes(&first) + wakes(&second) == 2 {
                    break;
                }
                ring.poll(Some(Duration::from_millis(50))).unwrap();
            }
            assert_eq!((wakes(&first), wakes(&second)), (1, 1));
            ring.deregister(k1);
            ring.deregister(k2);
            assert_eq!(ring.in_flight(), 0);
        }
    }

    #[test]
    fn a_full_submission_queue_is_submitted_early() {
        for ring in rings() {
            let (_a, b) = std::os::unix::net::UnixStream::pair().unwrap();
            let waker = Waker::noop().clone();
            let keys: Vec<OpKey> = (0..SQ_ENTRIES * 3)
                .map(|_| ring.register(b.as_fd(), Interest::Read, &waker).unwrap())
                .collect();
            for k in keys {
                ring.deregister(k);
            }
            for _ in 0..1000 {
                if ring.in_flight() == 0 {
                    break;
                }
                ring.poll(Some(Duration::from_millis(10))).unwrap();
            }
            assert_eq!(ring.in_flight(), 0);
        }
    }
}
