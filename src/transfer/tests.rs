//! Tests that must run in a binary without sockets elsewhere: the SIGPIPE test changes the
//! process-wide disposition, which the library's unit-test binary (no other socket tests) can
//! afford and the conformance binary cannot.

use std::io::Write;
use std::sync::Mutex;

use super::*;

/// Serialises the tests that change the SIGPIPE disposition.
static SIGNALS: Mutex<()> = Mutex::new(());

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
    let results = crate::run(crate::Model::Blocking, |io| {
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
    });
    set_sigpipe(prev);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(
        results,
        vec![
            Err(io::ErrorKind::BrokenPipe),
            Err(io::ErrorKind::BrokenPipe)
        ]
    );
}

#[test]
fn sigpipe_is_ignored_in_rust_programs() {
    let _serial = SIGNALS.lock().unwrap_or_else(|p| p.into_inner());
    assert!(!sys::sigpipe_live());
}
