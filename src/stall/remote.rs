//! A look at a thread of this process that is blocked in the kernel, from another thread and
//! without stopping or signalling it: which task it runs and what is on its stack. The Green
//! monitor uses it for the blocked-worker warning (`model/green/sysmon.rs`).
//!
//! No signal is sent: a signal would make the call the task is stuck in fail with `EINTR`
//! (`poll`, `select`, `nanosleep` and timed socket calls are not restarted by `SA_RESTART`),
//! and the unwinder usable in a handler needs frame pointers or takes the loader's lock. While
//! a thread is blocked in a system call its user-space registers are saved and its stack does
//! not change, so both can be read from outside:
//!
//! 1. `/proc/self/task/<tid>/syscall` gives the system call it is blocked in, with its stack
//!    pointer and instruction pointer (`running` if it runs);
//! 2. the task name (the thread's `TASK_NAME` cell, whose address the worker published once)
//!    and the stack from the stack pointer up are copied with `pread` on `/proc/self/mem`: the
//!    kernel copies, so a page that is gone or changing is an error or stale bytes, never a
//!    fault or a data race in this process;
//! 3. the syscall line is read again: unchanged, the thread stayed blocked in that call (its
//!    stack pointer and instruction pointer, its arguments), so the copies are of one moment.
//!    The caller also checks the worker's progress word did not move.
//! 4. The stack is *scanned*, not unwound (an unwinder needs the frame registers, which the
//!    syscall line does not give, or frame pointers, which Rust's default builds omit): every
//!    word that points just after a `call` instruction in an executable mapping is taken as a
//!    return address (breakpad's "stack scanning"). A live frame's return address is always
//!    found; a stale one left in a frame's unused slot may be too, which the report says. The
//!    scan stops at the fiber's entry (corosensei's trampoline) or after [`MAX_FRAMES`].
//!
//! Nothing is trusted: the name's bytes are decoded by [`RemoteName::decode`], the spawn site
//! address is used only if it equals the one the progress word holds, and the name's text is
//! copied through `/proc/self/mem` too.

use std::fs::File;
use std::os::unix::fs::FileExt;

use crate::fiber_stack::{RemoteName, TASK_NAME_SIZE};

/// The most stack bytes copied.
const MAX_STACK: usize = 256 * 1024;
/// The most frames listed.
pub(crate) const MAX_FRAMES: usize = 40;
/// The longest task name copied.
const MAX_NAME: usize = 256;

/// What was seen of a blocked thread.
#[derive(Debug, Default)]
pub(crate) struct Blocked {
    /// The task name's decoded bytes, if they could be read.
    pub(crate) name: Option<RemoteName>,
    /// The name's text, if it has one.
    pub(crate) text: Option<String>,
    /// Symbolized frames, innermost first: `function` and `at file:line` lines.
    pub(crate) frames: Vec<String>,
}

/// The blocked system call of thread `tid`: its whole `/proc` line (to compare), its stack
/// pointer and its instruction pointer. `None` if it runs or cannot be told.
fn syscall(tid: i32) -> Option<(String, usize, usize)> {
    let line = std::fs::read_to_string(format!("/proc/self/task/{tid}/syscall")).ok()?;
    let fields: Vec<&str> = line.split_whitespace().collect();
    // `nr a1 … a6 sp pc` in a system call; `-1 sp pc` blocked outside one; `running`.
    if fields.len() < 3 || fields[0] == "running" {
        return None;
    }
    let hex = |s: &str| usize::from_str_radix(s.trim_start_matches("0x"), 16).ok();
    let pc = hex(fields[fields.len() - 1])?;
    let sp = hex(fields[fields.len() - 2])?;
    Some((line, sp, pc))
}

/// Copies what the thread `tid`, blocked in the kernel, runs: its task name from `name_addr`
/// and its stack. `None` if it is not blocked in a system call or moved while being read, or
/// if `unmoved` (the caller's own check, made after the copies) says it did.
pub(crate) fn look(tid: i32, name_addr: usize, unmoved: impl Fn() -> bool) -> Option<Blocked> {
    let mem = File::open("/proc/self/mem").ok()?;
    let (before, sp, pc) = syscall(tid)?;
    let mut name_bytes = [0u8; TASK_NAME_SIZE];
    let name_read = name_addr != 0 && mem.read_exact_at(&mut name_bytes, name_addr as u64).is_ok();
    let stack = copy_stack(&mem, sp);
    let (after, ..) = syscall(tid)?;
    if after != before || !unmoved() {
        return None;
    }
    let mut seen = Blocked::default();
    if name_read {
        seen.name = RemoteName::decode(&name_bytes);
        if let Some((addr, len)) = seen.name.and_then(|n| n.name) {
            let mut text = vec![0u8; len.min(MAX_NAME)];
            if mem.read_exact_at(&mut text, addr as u64).is_ok() {
                seen.text = Some(String::from_utf8_lossy(&text).into_owned());
            }
        }
    }
    seen.frames = frames(&mem, pc, &stack);
    Some(seen)
}

/// The stack from `sp` up, as far as it is mapped (at most [`MAX_STACK`] bytes), as words.
fn copy_stack(mem: &File, sp: usize) -> Vec<usize> {
    const CHUNK: usize = 4096;
    let mut bytes = Vec::new();
    let mut at = sp;
    while bytes.len() < MAX_STACK {
        let mut chunk = [0u8; CHUNK];
        // Up to the next page boundary first, then page by page.
        let len = CHUNK - at % CHUNK;
        match mem.read_at(&mut chunk[..len], at as u64) {
            Ok(n) if n > 0 => bytes.extend_from_slice(&chunk[..n]),
            _ => break,
        }
        at += len;
    }
    bytes
        .chunks_exact(8)
        .map(|w| usize::from_ne_bytes(w.try_into().expect("8 bytes")))
        .collect()
}

/// The executable mappings of the process (`/proc/self/maps`).
fn executable() -> Vec<(usize, usize)> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    maps.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let range = f.next()?;
            let perms = f.next()?;
            if !perms.contains('x') {
                return None;
            }
            let (lo, hi) = range.split_once('-')?;
            Some((
                usize::from_str_radix(lo, 16).ok()?,
                usize::from_str_radix(hi, 16).ok()?,
            ))
        })
        .collect()
}

/// Whether the bytes before `ret` end with a call instruction. On x86-64: `E8 rel32`, or
/// `FF /2` with any of its addressing forms (2 to 7 bytes, REX prefix optional).
#[cfg(not(target_arch = "x86_64"))]
fn follows_call(_mem: &File, _ret: usize) -> bool {
    true // no decoder for this architecture: every code address counts
}

/// Whether the bytes before `ret` end with an x86-64 `call` (see the other target's version).
#[cfg(target_arch = "x86_64")]
fn follows_call(mem: &File, ret: usize) -> bool {
    let mut code = [0u8; 8];
    if ret < 8 || mem.read_exact_at(&mut code, (ret - 8) as u64).is_err() {
        return false;
    }
    if code[3] == 0xE8 {
        return true;
    }
    // `FF modrm …` ending at `ret`, with modrm.reg == 2: length 2 (register or [reg]), 3
    // (disp8, or SIB), 4 (SIB + disp8), 6 (disp32 or rip-relative), 7 (SIB + disp32).
    [2usize, 3, 4, 6, 7].iter().any(|&len| {
        let op = 8 - len;
        code[op] == 0xFF && (code[op + 1] >> 3) & 7 == 2
    })
}

/// The symbolized frames: `pc`, then every return address found on `stack`.
fn frames(mem: &File, pc: usize, stack: &[usize]) -> Vec<String> {
    let exec = executable();
    let in_exec = |a: usize| exec.iter().any(|&(lo, hi)| a >= lo && a < hi);
    let mut out = Vec::new();
    let mut listed = 0;
    let addrs = std::iter::once((pc, false)).chain(
        stack
            .iter()
            .copied()
            .filter(|&a| in_exec(a) && follows_call(mem, a))
            .map(|a| (a, true)),
    );
    for (addr, is_return) in addrs {
        if listed >= MAX_FRAMES {
            break;
        }
        // A return address points after the call: look up the call itself.
        let lookup = if is_return { addr - 1 } else { addr };
        let mut names = Vec::new();
        backtrace::resolve(lookup as *mut std::ffi::c_void, |sym| {
            let name = sym
                .name()
                .map_or_else(|| format!("{addr:#x}"), |n| n.to_string());
            let place = match (sym.filename(), sym.lineno()) {
                (Some(file), Some(line)) => Some(format!("{}:{line}", file.display())),
                _ => None,
            };
            names.push((name, place));
        });
        if names.is_empty() {
            names.push((format!("{addr:#x}"), None));
        }
        let mut entry = false;
        for (name, place) in names {
            entry |= name.contains("corosensei");
            if entry {
                break;
            }
            out.push(name);
            if let Some(place) = place {
                out.push(format!("    at {place}"));
            }
            listed += 1;
        }
        if entry {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(never)]
    fn sleeps_here_for_the_test(rx: std::sync::mpsc::Receiver<()>) {
        let _ = rx.recv();
    }

    #[test]
    fn sees_a_blocked_threads_stack() {
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            tid_tx
                .send(rustix::thread::gettid().as_raw_nonzero().get())
                .unwrap();
            sleeps_here_for_the_test(stop_rx);
        });
        let tid = tid_rx.recv().unwrap();
        // Watchdog only: the thread blocks in `recv` at once.
        let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let seen = loop {
            if let Some(seen) = look(tid, 0, || true) {
                if seen
                    .frames
                    .iter()
                    .any(|f| f.contains("sleeps_here_for_the_test"))
                {
                    break seen;
                }
            }
            assert!(std::time::Instant::now() < until, "never seen blocked");
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        assert!(seen.name.is_none());
        stop_tx.send(()).unwrap();
        t.join().unwrap();
    }
}
