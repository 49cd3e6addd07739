//! Stack-overflow reporting: the process-wide `SIGSEGV`/`SIGBUS` handler, the registry of slab
//! address ranges it reads, the current task's name, and per-thread alternate signal stacks.
//!
//! Everything the signal handler touches is async-signal-safe: the registry is a fixed-size
//! static array of atomics (appended under a mutex by normal code, read lock-free by the
//! handler), the task name is a `const`-initialised thread-local without a destructor, the
//! message is formatted by hand into a stack buffer and written with a raw `write(2)`.

use std::cell::{Cell, RefCell};
use std::io;
use std::mem::MaybeUninit;
use std::panic::Location;
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// How many slabs the registry can describe at once. A slab that does not fit still has guard
/// pages; its overflows just die with a plain `SIGSEGV` instead of a message.
const REGISTRY_CAP: usize = 4096;

/// One registered slab: `[start, end)` carved into `slot`-byte slots whose lowest `guard`
/// bytes are the guard. `start == 0` means the entry is free.
struct Entry {
    /// Lowest address of the slab, or 0 when the entry is free. Published last (`Release`).
    start: AtomicUsize,
    /// One past the highest address of the slab.
    end: AtomicUsize,
    /// Bytes per slot (guard + usable stack).
    slot: AtomicUsize,
    /// Bytes of guard at the bottom of each slot.
    guard: AtomicUsize,
}

impl Entry {
    /// A free entry (usable in a `static` initialiser).
    const fn new() -> Self {
        Entry {
            start: AtomicUsize::new(0),
            end: AtomicUsize::new(0),
            slot: AtomicUsize::new(0),
            guard: AtomicUsize::new(0),
        }
    }
}

/// The slab registry the signal handler scans.
static REGISTRY: [Entry; REGISTRY_CAP] = [const { Entry::new() }; REGISTRY_CAP];
/// One past the highest entry index ever used: bounds the handler's scan.
static REGISTRY_HIGH: AtomicUsize = AtomicUsize::new(0);
/// Serialises writers of the registry (readers never take it).
static REGISTRY_LOCK: Mutex<()> = Mutex::new(());

/// Records a slab so the signal handler can recognise faults in its guard pages.
///
/// Returns the entry index to pass to [`unregister`], or `None` if the registry is full (the
/// slab's guards still fault, without the friendly message).
pub(crate) fn register(start: usize, end: usize, slot: usize, guard: usize) -> Option<usize> {
    let _lock = REGISTRY_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let idx = REGISTRY
        .iter()
        .position(|e| e.start.load(Ordering::Relaxed) == 0)?;
    let e = &REGISTRY[idx];
    e.end.store(end, Ordering::Relaxed);
    e.slot.store(slot, Ordering::Relaxed);
    e.guard.store(guard, Ordering::Relaxed);
    e.start.store(start, Ordering::Release);
    REGISTRY_HIGH.fetch_max(idx + 1, Ordering::Release);
    Some(idx)
}

/// Forgets the slab recorded at `idx` (called just before it is unmapped).
pub(crate) fn unregister(idx: usize) {
    let _lock = REGISTRY_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    REGISTRY[idx].start.store(0, Ordering::Release);
}

/// If `addr` lies in the guard of a registered stack, the usable size of that stack in bytes.
///
/// Lock-free and allocation-free: callable from the signal handler.
fn lookup_guard(addr: usize) -> Option<usize> {
    let high = REGISTRY_HIGH.load(Ordering::Acquire).min(REGISTRY_CAP);
    for e in &REGISTRY[..high] {
        let start = e.start.load(Ordering::Acquire);
        if start == 0 || addr < start || addr >= e.end.load(Ordering::Relaxed) {
            continue;
        }
        let slot = e.slot.load(Ordering::Relaxed);
        let guard = e.guard.load(Ordering::Relaxed);
        if slot == 0 {
            return None;
        }
        return if (addr - start) % slot < guard {
            Some(slot - guard)
        } else {
            None
        };
    }
    None
}

/// The name an overflow report gives the fiber task running on a thread.
///
/// `Copy` and destructor-free, so the thread-local holding it can be read from the signal
/// handler. A spawn location is formatted (`file:line`) only when a report is written, so naming
/// a task costs nothing per spawn.
///
/// Its layout is fixed (`repr(C, u8)`: a tag byte, then the variant's fields from offset 8) so
/// that the Green monitor can decode a copy of a stuck worker's current name taken from another
/// thread ([`crate::stall::remote`]) without trusting the bytes: see [`RemoteName::decode`].
#[derive(Clone, Copy, Debug)]
#[repr(transparent)]
pub(crate) struct TaskName(Repr);

/// What a [`TaskName`] holds.
#[derive(Clone, Copy, Debug)]
#[repr(C, u8)]
enum Repr {
    /// No task (scheduler code, plain threads): reported as `<unnamed>`.
    None,
    /// A `'static` string given by pointer and length (see [`TaskName::fixed`]).
    Raw(*const u8, usize),
    /// Where the task was spawned, reported as `file:line`.
    Spawned(&'static Location<'static>),
    /// A named task: its name (pointer and length, see [`TaskName::task`]), id and spawn
    /// location, reported as `name' (#id, spawned at file:line)`.
    Named(*const u8, usize, u64, &'static Location<'static>),
}

impl TaskName {
    /// No name.
    pub(crate) const NONE: TaskName = TaskName(Repr::None);

    /// A fixed name, e.g. for a runtime's root task.
    pub(crate) const fn fixed(name: &'static str) -> TaskName {
        TaskName(Repr::Raw(name.as_ptr(), name.len()))
    }

    /// The code of the task's spawn site for [`crate::stall::progress`], `None` for no task.
    #[inline]
    pub(crate) fn site_code(&self) -> Option<usize> {
        match self.0 {
            Repr::None => None,
            Repr::Raw(..) => Some(crate::stall::progress::ROOT_SITE),
            Repr::Spawned(location) | Repr::Named(_, _, _, location) => {
                Some(crate::stall::progress::code_of(location))
            }
        }
    }

    /// The task spawned at `location`, reported as `file:line`.
    pub(crate) const fn spawned(location: &'static Location<'static>) -> TaskName {
        TaskName(Repr::Spawned(location))
    }

    /// A task with id `id` spawned at `location`, named `name` if it has a name (else as
    /// [`spawned`](Self::spawned)).
    ///
    /// # Safety
    ///
    /// `name` must stay alive and unmoved for as long as the returned name is current on any
    /// thread ([`replace_current_task_name`]): the overflow handler may read it at any moment
    /// until it is replaced. A task's cell owns its name and outlives the task's run, during
    /// which alone the name is current.
    pub(crate) unsafe fn task(
        name: Option<&str>,
        id: crate::task::TaskId,
        location: &'static Location<'static>,
    ) -> TaskName {
        match name {
            None => TaskName::spawned(location),
            Some(name) => TaskName(Repr::Named(
                name.as_ptr(),
                name.len(),
                id.as_u64(),
                location,
            )),
        }
    }
}

/// The size of a [`TaskName`]'s bytes, as [`RemoteName::decode`] reads them.
pub(crate) const TASK_NAME_SIZE: usize = 40;
const _: () = assert!(std::mem::size_of::<TaskName>() == TASK_NAME_SIZE);

/// What a copy of another thread's [`TaskName`] says, decoded from raw bytes: nothing in it
/// is trusted to point anywhere (the name is an address and a length to be read with a
/// checked copy; the spawn site is a bare address the caller compares with one it trusts).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RemoteName {
    /// The name's address and length in the other thread's memory, if it has one.
    pub(crate) name: Option<(usize, usize)>,
    /// The task's id, if known.
    pub(crate) id: Option<u64>,
    /// The address of the task's spawn site (`&'static Location`), if known.
    pub(crate) site: Option<usize>,
    /// Whether it is the fixed name of a run's root task.
    pub(crate) fixed: bool,
}

impl RemoteName {
    /// Decodes the bytes of a `TaskName` (tag byte at 0, fields from offset 8, see
    /// `Repr`'s `repr(C, u8)`); `None` for a tag that is no variant's.
    pub(crate) fn decode(bytes: &[u8; TASK_NAME_SIZE]) -> Option<RemoteName> {
        let word = |at: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&bytes[at..at + 8]);
            u64::from_ne_bytes(w)
        };
        let addr = |at: usize| word(at) as usize;
        let mut r = RemoteName::default();
        match bytes[0] {
            0 => {}
            1 => {
                r.name = Some((addr(8), addr(16)));
                r.fixed = true;
            }
            2 => r.site = Some(addr(8)),
            3 => {
                r.name = Some((addr(8), addr(16)));
                r.id = Some(word(24));
                r.site = Some(addr(32));
            }
            _ => return None,
        }
        Some(r)
    }
}

/// The address of this thread's current task name, for the Green monitor, which copies it
/// while this thread is blocked (see [`crate::stall::remote`]).
pub(crate) fn current_task_name_addr() -> usize {
    TASK_NAME.with(|c| c.as_ptr() as usize)
}

thread_local! {
    /// Name of the fiber task running on this thread. `const`-initialised and without a
    /// destructor, so reading it never allocates or registers anything.
    static TASK_NAME: Cell<TaskName> = const { Cell::new(TaskName::NONE) };
}

/// Makes `name` the name reported if the fiber running on this thread overflows its stack, and
/// returns the previous one. The scheduler calls this around each resume of a fiber, and puts
/// the previous name back when the fiber suspends (a runtime nested in another's fiber restores
/// the outer fiber's name that way).
#[inline]
pub(crate) fn replace_current_task_name(name: TaskName) -> TaskName {
    // A monitored Green worker publishes which task holds it (see `crate::stall::progress`);
    // "no task" is not published: the worker's loop turns tell the monitor it moves on.
    if let Some(code) = name.site_code() {
        crate::stall::progress::note(code);
    }
    TASK_NAME.with(|c| c.replace(name))
}

/// Sets the name reported if the fiber running on this thread overflows its stack (`None`:
/// no task runs).
#[cfg(test)]
pub(crate) fn set_current_task_name(name: Option<&'static str>) {
    replace_current_task_name(name.map_or(TaskName::NONE, TaskName::fixed));
}

/// A fixed-capacity message buffer: hand-rolled formatting usable inside a signal handler.
struct MsgBuf {
    /// The bytes written so far.
    buf: [u8; 512],
    /// How many bytes of `buf` are used.
    len: usize,
}

impl MsgBuf {
    /// An empty buffer.
    fn new() -> Self {
        MsgBuf {
            buf: [0; 512],
            len: 0,
        }
    }

    /// Appends `bytes`, truncating at capacity.
    fn push(&mut self, bytes: &[u8]) -> &mut Self {
        let n = bytes.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        self.len += n;
        self
    }

    /// Appends `v` in decimal.
    fn dec(&mut self, mut v: usize) -> &mut Self {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.push(&digits[i..])
    }

    /// Appends `v` as `0x`-prefixed lowercase hexadecimal.
    fn hex(&mut self, mut v: usize) -> &mut Self {
        let mut digits = [0u8; 16];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b"0123456789abcdef"[v & 0xf];
            v >>= 4;
            if v == 0 {
                break;
            }
        }
        self.push(b"0x").push(&digits[i..])
    }

    /// The message so far.
    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Appends `loc` as `file:line`, keeping the end of a long path (it names the file).
fn push_location(msg: &mut MsgBuf, loc: &Location<'_>) {
    let file = loc.file().as_bytes();
    msg.push(&file[file.len().saturating_sub(128)..])
        .push(b":")
        .dec(loc.line() as usize);
}

/// Builds the report of an overflow of a stack of `usable` bytes that faulted at `fault`.
fn format_report(msg: &mut MsgBuf, name: TaskName, usable: usize, fault: usize) {
    msg.push(b"zsync: fiber task '");
    match name.0 {
        Repr::None | Repr::Raw(_, 0) => {
            msg.push(b"<unnamed>'");
        }
        Repr::Raw(p, len) => {
            // SAFETY: `Raw` names come only from `TaskName::fixed`, a `'static` string.
            let name = unsafe { std::slice::from_raw_parts(p, len) };
            msg.push(&name[..len.min(128)]).push(b"'");
        }
        Repr::Spawned(loc) => {
            push_location(msg, loc);
            msg.push(b"'");
        }
        Repr::Named(p, len, id, loc) => {
            // SAFETY: `Named` names come only from `TaskName::task`, whose callers keep the
            // string alive while the name is current.
            let name = unsafe { std::slice::from_raw_parts(p, len) };
            msg.push(&name[..len.min(128)])
                .push(b"' (#")
                .dec(id as usize)
                .push(b", spawned at ");
            push_location(msg, loc);
            msg.push(b")");
        }
    }
    msg.push(b" overflowed its stack of ")
        .dec(usable / 1024)
        .push(b" KiB (fault at ")
        .hex(fault)
        .push(b"): raise the stack size with Builder::stack_size\n");
}

/// Writes the overflow report for the current task to stderr and aborts the process.
///
/// Async-signal-safe: no allocation, no locks, no `fmt`.
fn report_overflow_and_abort(usable: usize, fault: usize) -> ! {
    let name = TASK_NAME.try_with(Cell::get).unwrap_or(TaskName::NONE);
    let mut msg = MsgBuf::new();
    format_report(&mut msg, name, usable, fault);
    let bytes = msg.as_bytes();
    let mut off = 0;
    while off < bytes.len() {
        // SAFETY: writes initialised bytes from a live buffer to fd 2.
        let n = unsafe { libc::write(2, bytes[off..].as_ptr().cast(), bytes.len() - off) };
        if n <= 0 {
            break;
        }
        off += n as usize;
    }
    // SAFETY: abort is async-signal-safe and never returns.
    unsafe { libc::abort() }
}

/// The previously installed action for one signal, saved for chaining.
struct PrevAction {
    /// `sa_sigaction` of the previous action (may be `SIG_DFL`/`SIG_IGN`).
    handler: AtomicUsize,
    /// `sa_flags` of the previous action.
    flags: AtomicUsize,
}

/// Previous actions for `SIGSEGV` (index 0) and `SIGBUS` (index 1).
static PREV: [PrevAction; 2] = [const {
    PrevAction {
        handler: AtomicUsize::new(libc::SIG_DFL),
        flags: AtomicUsize::new(0),
    }
}; 2];

/// Whether our handler is installed (guarded by the mutex so installation happens once).
static INSTALLED: Mutex<bool> = Mutex::new(false);

/// Installs (once per process) the `SIGSEGV`/`SIGBUS` handler that reports fiber stack
/// overflows and chains every other fault to the handler that was there before.
pub(crate) fn install_overflow_handler() -> io::Result<()> {
    let mut installed = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
    if *installed {
        return Ok(());
    }
    for (i, sig) in [libc::SIGSEGV, libc::SIGBUS].into_iter().enumerate() {
        let mut old = MaybeUninit::<libc::sigaction>::zeroed();
        // SAFETY: querying the current action into a valid, writable sigaction.
        if unsafe { libc::sigaction(sig, ptr::null(), old.as_mut_ptr()) } != 0 {
            return Err(with_context(
                io::Error::last_os_error(),
                "sigaction (query)",
            ));
        }
        // SAFETY: sigaction succeeded, so it initialised `old`.
        let old = unsafe { old.assume_init() };
        if old.sa_sigaction == overflow_handler as *const () as usize {
            continue; // installed by an earlier, partly failed call: never chain to ourselves
        }
        PREV[i].handler.store(old.sa_sigaction, Ordering::SeqCst);
        PREV[i].flags.store(old.sa_flags as usize, Ordering::SeqCst);

        // SAFETY: all-zero is a valid `sigaction` (empty mask, no flags); fields set below.
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = overflow_handler as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        // SAFETY: `sa.sa_mask` is a valid sigset_t to initialise.
        unsafe { libc::sigemptyset(&mut sa.sa_mask) };
        // SAFETY: installs a valid handler; `overflow_handler` only does async-signal-safe work.
        if unsafe { libc::sigaction(sig, &sa, ptr::null_mut()) } != 0 {
            return Err(with_context(
                io::Error::last_os_error(),
                "sigaction (install)",
            ));
        }
    }
    *installed = true;
    Ok(())
}

/// The `SIGSEGV`/`SIGBUS` handler: reports faults in our guard pages, chains the rest.
unsafe extern "C" fn overflow_handler(
    sig: libc::c_int,
    info: *mut libc::siginfo_t,
    ctx: *mut libc::c_void,
) {
    // SAFETY: the kernel passes a valid siginfo_t for SA_SIGINFO handlers of fault signals.
    let addr = unsafe { (*info).si_addr() } as usize;
    if let Some(usable) = lookup_guard(addr) {
        report_overflow_and_abort(usable, addr);
    }
    let prev = &PREV[usize::from(sig != libc::SIGSEGV)];
    let handler = prev.handler.load(Ordering::SeqCst);
    let flags = prev.flags.load(Ordering::SeqCst) as libc::c_int;
    if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
        // Not ours and nobody else wants it: restore the default action and return, so the
        // faulting instruction runs again and the fault kills the process as usual.
        // SAFETY: all-zero is a valid sigaction; SIG_DFL is 0. sigaction is async-signal-safe.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(sig, &sa, ptr::null_mut());
        }
    } else if flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the previous action declared SA_SIGINFO, so its handler has this signature.
        let f: unsafe extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute::<usize, _>(handler) };
        // SAFETY: chaining with the arguments the kernel gave us.
        unsafe { f(sig, info, ctx) }
    } else {
        // SAFETY: without SA_SIGINFO, the previous handler is a plain `fn(c_int)`.
        let f: unsafe extern "C" fn(libc::c_int) =
            unsafe { std::mem::transmute::<usize, _>(handler) };
        // SAFETY: chaining with the signal number.
        unsafe { f(sig) }
    }
}

/// An alternate signal stack this module allocated for the current thread.
struct AltStack {
    /// Start of the mapping (the lowest page is a guard).
    map: *mut libc::c_void,
    /// Length of the whole mapping.
    len: usize,
    /// The `ss_sp` we installed (just above the guard).
    sp: *mut libc::c_void,
}

impl Drop for AltStack {
    fn drop(&mut self) {
        // SAFETY: queries this thread's alternate stack into a valid, writable stack_t.
        unsafe {
            let mut cur: libc::stack_t = std::mem::zeroed();
            if libc::sigaltstack(ptr::null(), &mut cur) == 0
                && cur.ss_sp == self.sp
                && cur.ss_flags & libc::SS_DISABLE == 0
            {
                let off = libc::stack_t {
                    ss_sp: ptr::null_mut(),
                    ss_flags: libc::SS_DISABLE,
                    ss_size: 0,
                };
                libc::sigaltstack(&off, ptr::null_mut());
            }
        }
        // SAFETY: `map`/`len` is the mapping made in `ensure_sigaltstack`, no longer in use as a
        // signal stack (disabled above, or replaced by someone else).
        unsafe { libc::munmap(self.map, self.len) };
    }
}

thread_local! {
    /// The alternate signal stack allocated for this thread, freed when the thread exits.
    static ALT_STACK: RefCell<Option<AltStack>> = const { RefCell::new(None) };
}

/// Makes sure the calling thread has an alternate signal stack, so the overflow handler can run
/// when a fiber has exhausted its own stack. Worker threads call this when they start.
///
/// If one is already set (Rust's std sets one on the threads it spawns), nothing changes.
/// Otherwise one is `mmap`ed (with a guard page), installed, and freed in a thread-local
/// destructor when the thread exits.
pub(crate) fn ensure_sigaltstack() -> io::Result<()> {
    // SAFETY: all-zero is a valid stack_t; sigaltstack writes the current one into it.
    let mut cur: libc::stack_t = unsafe { std::mem::zeroed() };
    // SAFETY: querying this thread's alternate stack into a valid, writable stack_t.
    if unsafe { libc::sigaltstack(ptr::null(), &mut cur) } != 0 {
        return Err(with_context(
            io::Error::last_os_error(),
            "sigaltstack (query)",
        ));
    }
    if cur.ss_flags & libc::SS_DISABLE == 0 {
        return Ok(());
    }
    let page = super::page_size();
    // AT_MINSIGSTKSZ (51): the kernel's minimum for this CPU's signal frame (AVX-512 etc.).
    // SAFETY: getauxval has no preconditions; it returns 0 for unknown keys.
    let min = unsafe { libc::getauxval(51) } as usize;
    let size = (64 * 1024)
        .max(min.saturating_mul(4))
        .next_multiple_of(page);
    let len = size + page;
    // SAFETY: a fresh anonymous private mapping; no existing memory is affected.
    let map = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if map == libc::MAP_FAILED {
        return Err(with_context(
            io::Error::last_os_error(),
            "mmap (sigaltstack)",
        ));
    }
    // SAFETY: `map + page` stays inside the `len`-byte mapping just created.
    let sp = unsafe { map.cast::<u8>().add(page) }.cast::<libc::c_void>();
    let alt = AltStack { map, len, sp };
    // SAFETY: the lowest page of our own fresh mapping becomes a guard.
    if unsafe { libc::mprotect(map, page, libc::PROT_NONE) } != 0 {
        return Err(with_context(
            io::Error::last_os_error(),
            "mprotect (sigaltstack guard)",
        ));
    }
    let new = libc::stack_t {
        ss_sp: sp,
        ss_flags: 0,
        ss_size: size,
    };
    // SAFETY: installs `size` bytes of our mapping, kept alive in ALT_STACK until thread exit.
    if unsafe { libc::sigaltstack(&new, ptr::null_mut()) } != 0 {
        return Err(with_context(
            io::Error::last_os_error(),
            "sigaltstack (install)",
        ));
    }
    ALT_STACK.with(|s| *s.borrow_mut() = Some(alt));
    Ok(())
}

/// Prefixes an OS error with the operation that failed, keeping its kind.
pub(crate) fn with_context(err: io::Error, what: &str) -> io::Error {
    io::Error::new(err.kind(), format!("zsync fiber stacks: {what}: {err}"))
}

#[cfg(test)]
mod remote_name_tests {
    use super::*;

    /// The bytes of `name` as the monitor gets them: copied by the kernel (padding included,
    /// which a Rust read could not touch).
    fn bytes(name: TaskName) -> [u8; TASK_NAME_SIZE] {
        use std::os::unix::fs::FileExt;
        let mut buf = [0u8; TASK_NAME_SIZE];
        let at = std::ptr::addr_of!(name) as u64;
        std::fs::File::open("/proc/self/mem")
            .unwrap()
            .read_exact_at(&mut buf, at)
            .unwrap();
        buf
    }

    #[test]
    fn decodes_every_variant() {
        let here = Location::caller();
        let site = here as *const Location<'static> as usize;
        assert_eq!(
            RemoteName::decode(&bytes(TaskName::NONE)),
            Some(RemoteName::default())
        );
        let fixed = RemoteName::decode(&bytes(TaskName::fixed("root"))).unwrap();
        assert!(fixed.fixed && fixed.name.unwrap().1 == 4);
        let spawned = RemoteName::decode(&bytes(TaskName::spawned(here))).unwrap();
        assert_eq!(spawned.site, Some(site));
        let name = String::from("sleepy");
        let id = crate::task::TaskId::next();
        // SAFETY: `name` outlives the value, which is never made current.
        let named = unsafe { TaskName::task(Some(&name), id, here) };
        let named = RemoteName::decode(&bytes(named)).unwrap();
        assert_eq!(named.name, Some((name.as_ptr() as usize, 6)));
        assert_eq!((named.id, named.site), (Some(id.as_u64()), Some(site)));
        let mut bad = [0u8; TASK_NAME_SIZE];
        bad[0] = 9;
        assert_eq!(RemoteName::decode(&bad), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The report reads as specified, numbers formatted by hand.
    #[test]
    fn report_format() {
        let mut msg = MsgBuf::new();
        format_report(
            &mut msg,
            TaskName::fixed("worker"),
            64 * 1024,
            0x7f00_dead_b000,
        );
        assert_eq!(
            std::str::from_utf8(msg.as_bytes()).unwrap(),
            "zsync: fiber task 'worker' overflowed its stack of 64 KiB (fault at \
             0x7f00deadb000): raise the stack size with Builder::stack_size\n"
        );
        let mut msg = MsgBuf::new();
        format_report(&mut msg, TaskName::NONE, 4096, 0x10);
        let s = std::str::from_utf8(msg.as_bytes()).unwrap();
        assert!(s.starts_with("zsync: fiber task '<unnamed>' overflowed its stack of 4 KiB"));
        assert!(s.contains("(fault at 0x10)"), "{s}");
        let mut msg = MsgBuf::new();
        msg.dec(0).push(b" ").dec(usize::MAX).push(b" ").hex(0);
        assert_eq!(msg.as_bytes(), b"0 18446744073709551615 0x0");
    }

    /// A spawn location is reported as `file:line`, and the previous name comes back.
    #[test]
    fn report_names_a_spawn_location() {
        let here = Location::caller();
        let mut msg = MsgBuf::new();
        format_report(&mut msg, TaskName::spawned(here), 32 * 1024, 0x1000);
        let s = std::str::from_utf8(msg.as_bytes()).unwrap();
        let expected = format!(
            "zsync: fiber task '{}:{}' overflowed its stack of 32 KiB (fault at 0x1000)",
            here.file(),
            here.line()
        );
        assert!(s.starts_with(&expected), "{s}");

        let name = String::from("conn");
        let id = crate::task::TaskId::next();
        let mut msg = MsgBuf::new();
        // SAFETY: `name` outlives the call; the name is never made current.
        let named = unsafe { TaskName::task(Some(&name), id, here) };
        format_report(&mut msg, named, 32 * 1024, 0x1000);
        let s = std::str::from_utf8(msg.as_bytes()).unwrap();
        let expected = format!(
            "zsync: fiber task 'conn' ({id}, spawned at {}:{}) overflowed its stack of 32 KiB",
            here.file(),
            here.line()
        );
        assert!(s.starts_with(&expected), "{s}");

        let outer = replace_current_task_name(TaskName::fixed("outer"));
        let prev = replace_current_task_name(TaskName::spawned(here));
        assert!(matches!(prev.0, Repr::Raw(_, 5)));
        replace_current_task_name(prev);
        replace_current_task_name(outer);
        assert!(matches!(TASK_NAME.with(Cell::get).0, Repr::None));
    }

    /// The registry maps guard addresses (only) to their stack size.
    #[test]
    fn registry_lookup() {
        let page = 4096;
        let start = 0x1000_0000_0000;
        let idx = register(start, start + 4 * 5 * page, 5 * page, page).unwrap();
        assert_eq!(lookup_guard(start), Some(4 * page));
        assert_eq!(lookup_guard(start + page - 1), Some(4 * page));
        assert_eq!(lookup_guard(start + page), None);
        assert_eq!(lookup_guard(start + 5 * page + 10), Some(4 * page));
        assert_eq!(lookup_guard(start + 20 * page), None);
        unregister(idx);
        assert_eq!(lookup_guard(start), None);
    }

    /// `ensure_sigaltstack` installs one on a thread without, and is idempotent.
    #[test]
    fn sigaltstack_on_a_thread_without_one() {
        std::thread::spawn(|| {
            // SAFETY: disabling this thread's alternate stack (std's); nothing faults here.
            unsafe {
                let off = libc::stack_t {
                    ss_sp: ptr::null_mut(),
                    ss_flags: libc::SS_DISABLE,
                    ss_size: 0,
                };
                assert_eq!(libc::sigaltstack(&off, ptr::null_mut()), 0);
            }
            ensure_sigaltstack().unwrap();
            // SAFETY: querying into a valid stack_t.
            let cur = unsafe {
                let mut cur: libc::stack_t = std::mem::zeroed();
                assert_eq!(libc::sigaltstack(ptr::null(), &mut cur), 0);
                cur
            };
            assert_eq!(cur.ss_flags & libc::SS_DISABLE, 0);
            assert!(cur.ss_size >= 64 * 1024);
            assert!(ALT_STACK.with(|s| s.borrow().is_some()));
            // Idempotent: a second call keeps the same stack.
            ensure_sigaltstack().unwrap();
        })
        .join()
        .unwrap();
    }
}
