//! Conformance tests: `zsync::process`. Children are ordinary programs (`echo`, `cat`, `sh`,
//! `sleep`, `head`, `tr`); a wait for one that is still running is canceled or timed out, never
//! measured.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use zsync::process::{Command, Stdio};
use zsync::Io;

use crate::support::{assert_canceled, pattern};

/// A watchdog for a child that is expected to finish: never reached when things work.
const FINISH: Duration = Duration::from_secs(60);

/// The state letter of our child `pid` in `/proc` (`'Z'` for a zombie), or `None` once it is
/// gone (reaped) or no longer our child.
fn child_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) S ppid ...": comm may hold spaces, so parse after the last ')'.
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid: u32 = fields.next()?.parse().ok()?;
    (ppid == std::process::id()).then_some(state)
}

/// Waits (with a watchdog) until `done(child_state(pid))`. Nothing here collects the child: a
/// dropped child is collected by zsync's reaper as soon as it exits (with pidfds, i.e. on Linux
/// 5.3+ without a seccomp filter refusing `pidfd_open`).
fn eventually(io: &Io, pid: u32, what: &str, done: impl Fn(Option<char>) -> bool) {
    let start = crate::support::now();
    while !done(child_state(pid)) {
        assert!(
            crate::support::elapsed(start) < FINISH,
            "{what}: child {pid} is still {:?}",
            child_state(pid)
        );
        io.sleep(Duration::from_millis(2)).unwrap();
    }
}

fn echo_output_is_captured(io: &Io) {
    let out = Command::new("/bin/echo")
        .args(["hello", "world"])
        .output(io)
        .unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, b"hello world\n");
    assert!(out.stderr.is_empty());
}

fn exit_status_is_reported(io: &Io) {
    let status = Command::new("sh")
        .args(["-c", "exit 3"])
        .status(io)
        .unwrap();
    assert_eq!(status.code(), Some(3));
    let out = Command::new("sh")
        .args(["-c", "echo err >&2; exit 4"])
        .output(io)
        .unwrap();
    assert_eq!(
        (out.status.code(), &out.stderr[..]),
        (Some(4), &b"err\n"[..])
    );
    let mut child = Command::new("sh").args(["-c", "exit 5"]).spawn(io).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(5));
    assert_eq!(
        child.wait().unwrap().code(),
        Some(5),
        "a second wait returns the status again"
    );
    assert_eq!(child.try_wait().unwrap().and_then(|s| s.code()), Some(5));
    child.kill().unwrap(); // waited for: nothing to signal
}

fn cat_round_trips_through_piped_stdin_and_stdout(io: &Io) {
    let data = pattern(20_000, 12);
    let mut child = Command::new("cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn(io)
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    stdin.write_all(&data).unwrap(); // fits in the pipes: no reader needed yet
    drop(stdin);
    let mut echoed = Vec::new();
    io.timeout(FINISH, |_| stdout.read_to_end(&mut echoed))
        .unwrap();
    assert_eq!(echoed, data);
    assert!(child.wait().unwrap().success());
}

fn a_large_output_on_both_pipes_does_not_deadlock(io: &Io) {
    const N: usize = 1_500_000; // far beyond a pipe's 64 KiB
                                // stderr first, then stdout, then both in small turns: whichever pipe a reader waits on
                                // first, the child fills the other.
    let script = format!(
        "head -c {N} /dev/zero | tr '\\0' e >&2; head -c {N} /dev/zero | tr '\\0' o; \
         for i in 1 2 3 4 5 6 7 8; do head -c 100000 /dev/zero | tr '\\0' o; \
         head -c 100000 /dev/zero | tr '\\0' e >&2; done"
    );
    let out = io
        .timeout(FINISH, |io| {
            Command::new("sh").args(["-c", &script]).output(io)
        })
        .unwrap();
    assert!(out.status.success(), "{:?}", out.status);
    assert_eq!(out.stdout.len(), N + 800_000);
    assert_eq!(out.stderr.len(), N + 800_000);
    assert!(out.stdout.iter().all(|&b| b == b'o'));
    assert!(out.stderr.iter().all(|&b| b == b'e'));
}

fn a_canceled_wait_leaves_the_child_to_kill_and_wait(io: &Io) {
    let child = Command::new("sleep")
        .arg("30")
        .kill_on_drop(true)
        .spawn(io)
        .unwrap();
    let mut child = if io.supports_concurrency() {
        let task = io
            .concurrent(move |_| {
                let mut child = child;
                let r = child.wait();
                (r, child)
            })
            .unwrap();
        io.sleep(Duration::from_millis(5)).unwrap(); // usually blocked by now; either way
        let (r, child) = task.cancel().unwrap();
        assert_canceled(r);
        child
    } else {
        let mut child = child;
        let err = io
            .timeout(Duration::from_millis(5), |_| child.wait())
            .unwrap_err();
        assert!(zsync::is_timed_out(&err), "{err:?}");
        child
    };
    assert!(child.try_wait().unwrap().is_none(), "still running");
    assert!(matches!(child_state(child.id()), Some(s) if s != 'Z'));
    child.kill().unwrap();
    let status = io.timeout(FINISH, |_| child.wait()).unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    assert_eq!(child_state(child.id()), None, "reaped by wait");
}

fn output_honours_the_deadline_and_kill_on_drop_kills(io: &Io) {
    let err = io
        .timeout(Duration::from_millis(20), |io| {
            Command::new("sleep")
                .arg("30")
                .kill_on_drop(true)
                .output(io)
        })
        .unwrap_err();
    assert!(zsync::is_timed_out(&err), "{err:?}");
    let child = Command::new("sleep")
        .arg("30")
        .kill_on_drop(true)
        .spawn(io)
        .unwrap();
    let pid = child.id();
    drop(child);
    eventually(io, pid, "killed on drop and reaped", |s| s.is_none());
}

fn a_dropped_child_is_reaped_when_it_exits(io: &Io) {
    let mut child = Command::new("cat").stdin(Stdio::piped()).spawn(io).unwrap();
    let pid = child.id();
    let stdin = child.stdin.take().unwrap();
    drop(child); // still running: cat waits for its input
    assert!(
        matches!(child_state(pid), Some(s) if s != 'Z'),
        "not killed"
    );
    drop(stdin); // now it exits
    eventually(io, pid, "reaped after it exited", |s| s.is_none());
}

fn a_missing_program_is_not_found(io: &Io) {
    let err = Command::new("/nonexistent/zsync-no-such-program")
        .spawn(io)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let err = Command::new("zsync-no-such-program-in-path")
        .output(io)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

fn a_child_stdout_feeds_another_child(io: &Io) {
    let mut first = Command::new("echo")
        .arg("piped along")
        .stdout(Stdio::piped())
        .spawn(io)
        .unwrap();
    let out = Command::new("cat")
        .stdin(Stdio::from(first.stdout.take().unwrap()))
        .output(io)
        .unwrap();
    assert!(first.wait().unwrap().success());
    assert_eq!(out.stdout, b"piped along\n");
}

fn the_environment_and_directory_are_passed(io: &Io) {
    let dir = std::env::temp_dir();
    let out = Command::new("sh")
        .args(["-c", "echo \"$ZSYNC_X:$HOME:$(pwd -P)\""])
        .env_clear()
        .env("ZSYNC_X", "x")
        .env("HOME", "h")
        .env_remove("HOME")
        .current_dir(&dir)
        .output(io)
        .unwrap();
    let expected = format!("x::{}\n", dir.canonicalize().unwrap().display());
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
}

conformance! {
    echo_output_is_captured,
    exit_status_is_reported,
    cat_round_trips_through_piped_stdin_and_stdout,
    a_large_output_on_both_pipes_does_not_deadlock,
    a_canceled_wait_leaves_the_child_to_kill_and_wait,
    output_honours_the_deadline_and_kill_on_drop_kills,
    a_dropped_child_is_reaped_when_it_exits,
    a_missing_program_is_not_found,
    a_child_stdout_feeds_another_child,
    the_environment_and_directory_are_passed,
}

standalone! {
    /// Where `pidfd_open` is unavailable, waits listen for `SIGCHLD`: forced here, the
    /// cancelable wait and the exit status work the same on every model.
    #[test]
    fn waits_work_through_sigchld_without_pidfds() {
        zsync::process::force_sigchld_fallback(true);
        for (name, builder) in crate::support::models() {
            crate::support::run_on(builder, name, |io| {
                exit_status_is_reported(io);
                a_canceled_wait_leaves_the_child_to_kill_and_wait(io);
            });
        }
        zsync::process::force_sigchld_fallback(false);
    }
}
