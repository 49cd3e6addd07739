//! The threads of this process, as the deadlock check counts them.
//!
//! A deadlock is reported only when every thread of the process is known to the runtime and
//! idle: any other thread (the test harness, a `std::thread` holding a channel's sender, a
//! `Runtime`'s owner, another runtime, zsync's own signal dispatcher) could still wake a task.
//! The kernel's io_uring workers (`iou-wrk-*`, `iou-sqp-*`) are threads of the process too, but
//! they only complete ring ops, which the check already requires to be none; they are not
//! counted.

use std::io;

/// The number of threads of this process, io_uring workers left out. `Err` where it cannot be
/// told (no `/proc`): the caller must then assume foreign threads.
pub(crate) fn count() -> io::Result<usize> {
    let mut n = 0;
    for entry in std::fs::read_dir("/proc/self/task")? {
        let entry = entry?;
        let mut comm = entry.path();
        comm.push("comm");
        match std::fs::read(&comm) {
            Ok(name) if name.starts_with(b"iou-wrk-") || name.starts_with(b"iou-sqp-") => {}
            // A thread that exited between the listing and the read is still counted: the
            // count may only err on the high side (which prevents a report).
            _ => n += 1,
        }
    }
    Ok(n)
}

/// The number of threads of this process as the kernel counts them (io_uring workers
/// included), from one read of `/proc/self/stat`; `None` where it cannot be told.
pub(crate) fn count_fast() -> Option<usize> {
    use std::io::Read;
    let mut buf = [0u8; 1024];
    let n = std::fs::File::open("/proc/self/stat")
        .ok()?
        .read(&mut buf)
        .ok()?;
    let stat = std::str::from_utf8(&buf[..n]).ok()?;
    // `pid (comm) state ppid …`: fields after the last ')' start at the state (field 3);
    // `num_threads` is field 20.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(17)?.parse().ok()
}

/// The state letter of thread `tid` of this process (`/proc/self/task/<tid>/stat`).
pub(crate) fn state(tid: i32) -> Option<u8> {
    use std::io::Read;
    let mut file = std::fs::File::open(format!("/proc/self/task/{tid}/stat")).ok()?;
    let mut buf = [0u8; 1024];
    let n = file.read(&mut buf).ok()?;
    let stat = &buf[..n];
    // `tid (comm) S …`: the name may hold any byte, so the state follows the *last* ')'.
    let close = stat.iter().rposition(|&b| b == b')')?;
    stat.get(close + 2).copied()
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_a_thread_started_here() {
        let before = super::count().unwrap();
        assert!(before >= 1);
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            let _ = rx.recv();
        });
        // Other tests' threads come and go: at least one more than some earlier reading is all
        // that can be asserted, so compare against a reading with the thread surely alive.
        assert!(super::count().unwrap() >= 2);
        assert!(super::count_fast().unwrap() >= 2);
        drop(tx);
        t.join().unwrap();
    }
}
