//! Tests that must run in a binary without sockets elsewhere: the SIGPIPE test changes the
//! process-wide disposition, which the library's unit-test binary (no other socket tests) can
//! afford and the conformance binary cannot.

use std::io::Write;
use std::sync::Mutex;

use super::*;

/// Serialises the tests that change the SIGPIPE disposition.
static SIGNALS: Mutex<()> = Mutex::new(());

/// Where the kernel refuses io_uring, writes `skipped: io_uring unavailable: <reason>` for
/// `what` to the real stderr (past the harness's capture) and returns true.
fn skip_without_io_uring(what: &str) -> bool {
    match crate::Backend::IoUring.resolve() {
        Ok(_) => false,
        Err(e) => {
            let _ = writeln!(io::stderr(), "{what}: skipped: io_uring unavailable: {e}");
            true
        }
    }
}

fn set_sigpipe(handler: libc::sighandler_t) -> libc::sighandler_t {
    // SAFETY: installs SIG_DFL or SIG_IGN (no handler code runs) and reports the previous one.
    unsafe { libc::signal(libc::SIGPIPE, handler) }
}

/// With `SIGPIPE` at its default (terminate), a `sendfile` and a `splice` into a socket whose
/// peer is gone must fail with `BrokenPipe` — the process must not die — and leave no `SIGPIPE`
/// pending.
#[test]
fn sendfile_and_splice_to_a_closed_peer_with_default_sigpipe_do_not_kill() {
    let _serial = SIGNALS.lock().unwrap_or_else(|p| p.into_inner());
    let path = std::env::temp_dir().join(format!("zsync-sigpipe-{}", std::process::id()));
    std::fs::File::create(&path)
        .unwrap()
        .write_all(&[7u8; 100_000])
        .unwrap();
    let prev = set_sigpipe(libc::SIG_DFL);
    let mut results = Vec::new();
    let mut builders = vec![crate::Builder::new(crate::Model::Blocking)];
    if !skip_without_io_uring(
        "sendfile_and_splice_to_a_closed_peer_with_default_sigpipe (io_uring)",
    ) {
        // The ring's splice runs on an io-wq thread of this process: its EPIPE must not kill.
        builders.push(crate::Builder::new(crate::Model::Green).backend(crate::Backend::IoUring));
    }
    let runs = builders.len();
    for builder in builders {
        results.extend(builder.run(|io| {
            let file = File::open(io, &path).unwrap();
            let mut results = Vec::new();
            for use_splice in [false, true] {
                let (a, b) = UnixStream::pair(io).unwrap();
                drop(b);
                assert!(sys::sigpipe_live());
                let r = if use_splice {
                    splice(&a, &file, 0, 100_000)
                } else {
                    send_file(&a, &file, 0, 100_000)
                };
                results.push(r.map_err(|e| e.kind()));
            }
            results
        }));
    }
    set_sigpipe(prev);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(results, vec![Err(io::ErrorKind::BrokenPipe); 2 * runs]);
}

#[test]
fn sigpipe_is_ignored_in_rust_programs() {
    let _serial = SIGNALS.lock().unwrap_or_else(|p| p.into_inner());
    assert!(!sys::sigpipe_live());
}

/// On a Green io_uring worker, a file-to-socket transfer of uncached bytes goes file → pipe →
/// socket with ring splices, from the right offset and with the right count when the file ends
/// first; cached bytes leave with `sendfile`.
#[test]
fn green_uring_send_file_goes_through_ring_splices() {
    if skip_without_io_uring("green_uring_send_file_goes_through_ring_splices") {
        return;
    }
    use std::io::Read;
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let path = uncached_file("zsync-ring-splice", &data);
    let builder = crate::Builder::new(crate::Model::Green).backend(crate::Backend::IoUring);
    let got = builder.worker_threads(1).run(|io| {
        assert!(
            op::splice::on_ring_here(),
            "this kernel has IORING_OP_SPLICE"
        );
        let file = File::open(io, &path).unwrap();
        let (a, mut b) = UnixStream::pair(io).unwrap();
        let reader = io.concurrent(move |_| {
            let mut got = Vec::new();
            b.read_to_end(&mut got).map(|_| got)
        });
        assert!(!op::splice::cached(file.as_fd(), 0, 300_000));
        let before = op::splice::ring_ops();
        assert_eq!(send_file(&a, &file, 1234, 100_000).unwrap(), 100_000);
        assert!(op::splice::ring_ops() > before);
        // Past the end (the kernel's read-ahead may have cached this part meanwhile: either path).
        assert_eq!(send_file(&a, &file, 250_000, 100_000).unwrap(), 50_000);
        // Now cached: `sendfile`, no ring op.
        assert!(op::splice::cached(file.as_fd(), 1234, 100_000));
        let (before, calls) = (op::splice::ring_ops(), sendfiles());
        assert_eq!(send_file(&a, &file, 1234, 100_000).unwrap(), 100_000);
        assert_eq!(op::splice::ring_ops(), before);
        assert!(sendfiles() > calls);
        drop(a);
        reader.unwrap().join().unwrap().unwrap()
    });
    std::fs::remove_file(&path).unwrap();
    assert_eq!(
        got,
        [&data[1234..101_234], &data[250_000..], &data[1234..101_234]].concat()
    );
}

/// `sendfile` calls that moved bytes on this thread so far.
fn sendfiles() -> usize {
    SENDFILES.with(std::cell::Cell::get)
}

/// On a Green io_uring worker, a cached file larger than one chunk (16 MiB) leaves by
/// `sendfile` alone — no pipe, no ring op — across the chunk boundary (the page cache is asked
/// again for the next chunk), from an offset, and to its exact end.
#[test]
fn green_uring_send_file_of_a_cached_file_takes_sendfile_across_chunks() {
    if skip_without_io_uring("green_uring_send_file_of_a_cached_file_takes_sendfile_across_chunks")
    {
        return;
    }
    use std::io::Read;
    let len = (FILE_CHUNK + (1 << 20) + 4321) as usize;
    let data: Vec<u8> = (0..len as u32).map(|i| (i ^ (i >> 9)) as u8).collect();
    let path = std::env::temp_dir().join(format!("zsync-cached-chunks-{}", std::process::id()));
    std::fs::write(&path, &data).unwrap();
    let builder = crate::Builder::new(crate::Model::Green).backend(crate::Backend::IoUring);
    let got = builder.worker_threads(1).run(|io| {
        let file = File::open(io, &path).unwrap();
        if !op::splice::cached(file.as_fd(), 0, len as u64) {
            // Evicted under memory pressure right after writing, or no `cachestat(2)` here.
            let _ = writeln!(
                io::stderr(),
                "green_uring_send_file_of_a_cached_file_takes_sendfile_across_chunks: \
                 skipped: the file is not known to be cached"
            );
            return None;
        }
        let (a, mut b) = UnixStream::pair(io).unwrap();
        let reader = io.concurrent(move |_| {
            let mut got = Vec::new();
            b.read_to_end(&mut got).map(|_| got)
        });
        let (ring_ops, calls) = (op::splice::ring_ops(), sendfiles());
        assert_eq!(
            send_file(&a, &file, 1000, u64::MAX).unwrap(),
            len as u64 - 1000
        );
        assert_eq!(op::splice::ring_ops(), ring_ops, "no ring splice");
        assert!(sendfiles() >= calls + 2, "a sendfile per chunk at least");
        drop(a);
        Some(reader.unwrap().join().unwrap().unwrap())
    });
    std::fs::remove_file(&path).unwrap();
    if let Some(got) = got {
        assert!(got == data[1000..], "the bytes sent are the file's");
    }
}

/// A file holding `data` and not in the page cache: in the temp dir, or in the crate's directory
/// when the temp dir keeps files in memory (tmpfs cannot drop them).
fn uncached_file(name: &str, data: &[u8]) -> std::path::PathBuf {
    let name = format!("{name}-{}", std::process::id());
    let dirs = [
        std::env::temp_dir(),
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")),
    ];
    for dir in dirs {
        let path = dir.join(&name);
        std::fs::write(&path, data).unwrap();
        drop_from_page_cache(&path);
        let f = std::fs::File::open(&path).unwrap();
        if !op::splice::cached(f.as_fd(), 0, data.len() as u64) {
            return path;
        }
        std::fs::remove_file(&path).unwrap();
    }
    panic!("no directory here lets a file leave the page cache");
}

/// Writes the file's pages back and drops them from the page cache, so the next read of it
/// must go to the disk.
fn drop_from_page_cache(path: &std::path::Path) {
    let f = std::fs::File::open(path).unwrap();
    f.sync_all().unwrap();
    rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed).unwrap();
}
