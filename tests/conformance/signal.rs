//! Conformance tests: `zsync::signal`. The process sends signals to itself (`kill(getpid())`,
//! which the kernel may deliver to any thread, or `raise`, to the calling one).
//!
//! Signals are process-wide and the per-model tests run in parallel threads of one process, so
//! every body holds [`SIGNALS`] and uses signals nobody else sends (`SIGUSR1`, `SIGUSR2`,
//! `SIGWINCH`, `SIGURG`). `SIGINT` is only sent to a child process (the harness itself may be
//! interrupted).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use zsync::signal::{self, SignalKind, Signals};
use zsync::Io;

use crate::support::{assert_canceled, concurrent_or_refused};

/// Serializes the bodies of this module (see the module docs).
static SIGNALS: Mutex<()> = Mutex::new(());

fn exclusive() -> MutexGuard<'static, ()> {
    SIGNALS.lock().unwrap_or_else(|p| p.into_inner())
}

/// A wait for a signal that was sent: a watchdog, never reached when things work.
const SENT: Duration = Duration::from_secs(30);

fn kill_self(sig: libc::c_int) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    assert_eq!(unsafe { libc::kill(libc::getpid(), sig) }, 0);
}

fn a_signal_sent_to_the_process_is_received(io: &Io) {
    let _x = exclusive();
    let mut usr1 = signal::signal(io, SignalKind::user_defined1()).unwrap();
    assert_eq!(usr1.try_recv(), None);
    kill_self(libc::SIGUSR1);
    assert_eq!(
        usr1.recv_timeout(SENT).unwrap(),
        SignalKind::user_defined1()
    );
    // `raise` delivers to the calling thread: a worker, on the models that have them.
    // SAFETY: raise(3) has no memory-safety preconditions.
    assert_eq!(unsafe { libc::raise(libc::SIGUSR1) }, 0);
    assert_eq!(
        usr1.recv_timeout(SENT).unwrap(),
        SignalKind::user_defined1()
    );
}

fn every_listener_sees_each_delivery(io: &Io) {
    let _x = exclusive();
    let mut a = Signals::new(io, &[SignalKind::user_defined2()]).unwrap();
    let mut b = Signals::new(io, &[SignalKind::user_defined2()]).unwrap();
    let mut both = Signals::new(
        io,
        &[SignalKind::user_defined1(), SignalKind::user_defined2()],
    )
    .unwrap();
    kill_self(libc::SIGUSR2);
    for s in [&mut a, &mut b, &mut both] {
        assert_eq!(s.recv_timeout(SENT).unwrap(), SignalKind::user_defined2());
    }
    // The multi-signal listener tells the kinds apart.
    kill_self(libc::SIGUSR1);
    assert_eq!(
        both.recv_timeout(SENT).unwrap(),
        SignalKind::user_defined1()
    );
}

fn a_listener_is_woken_from_another_task(io: &Io) {
    let _x = exclusive();
    let mut winch = signal::signal(io, SignalKind::window_change()).unwrap();
    let Some(waiter) = concurrent_or_refused(io, move |_| winch.recv_timeout(SENT)) else {
        return;
    };
    // The waiter may or may not be blocked yet: either way it sees this delivery.
    kill_self(libc::SIGWINCH);
    assert_eq!(waiter.join().unwrap().unwrap(), SignalKind::window_change());
}

fn a_canceled_recv_returns_canceled_and_the_listener_still_works(io: &Io) {
    let _x = exclusive();
    let mut urg = signal::signal(io, SignalKind::from_raw(libc::SIGURG)).unwrap();
    if io.supports_concurrency() {
        let task = io.concurrent(move |_| (urg.recv(), urg)).unwrap();
        io.sleep(Duration::from_millis(5)).unwrap(); // usually blocked by now; either way
        let (r, back) = task.cancel().unwrap();
        assert_canceled(r);
        urg = back;
    } else {
        let err = io
            .timeout(Duration::from_millis(5), |_| urg.recv())
            .unwrap_err();
        assert!(zsync::is_timed_out(&err), "{err:?}");
    }
    let err = urg.recv_timeout(Duration::from_millis(5)).unwrap_err();
    assert!(zsync::is_timed_out(&err), "{err:?}");
    kill_self(libc::SIGURG);
    assert_eq!(urg.recv_timeout(SENT).unwrap().as_raw(), libc::SIGURG);
}

fn a_signal_event_wins_a_select(io: &Io) {
    let _x = exclusive();
    let mut usr1 = signal::signal(io, SignalKind::user_defined1()).unwrap();
    let (_tx, rx) = zsync::channel::bounded::<u32>(1);
    kill_self(libc::SIGUSR1);
    let got = io
        .timeout(SENT, |io| {
            zsync::select!(io;
                kind = usr1.recv_event() => format!("{kind:?}"),
                m = rx.recv_event() => format!("message {m:?}"),
            )
        })
        .unwrap();
    assert_eq!(got, "SIGUSR1");
    // A select the signal loses leaves the listener untouched.
    let (tx, rx) = zsync::channel::bounded::<u32>(1);
    tx.send(7).unwrap();
    let got = zsync::select!(io;
        kind = usr1.recv_event() => format!("{kind:?}"),
        m = rx.recv_event() => format!("message {}", m.unwrap()),
    )
    .unwrap();
    assert_eq!(got, "message 7");
    kill_self(libc::SIGUSR1);
    assert_eq!(
        usr1.recv_timeout(SENT).unwrap(),
        SignalKind::user_defined1()
    );
}

fn signals_that_cannot_be_listened_for_are_refused(io: &Io) {
    for sig in [libc::SIGKILL, libc::SIGSTOP, libc::SIGSEGV, 0, 200] {
        let err = Signals::new(io, &[SignalKind::from_raw(sig)]).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{sig}");
    }
    let err = Signals::new(io, &[]).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

/// Listeners come and go (each one installs its signals' actions on a fresh dispatcher, in
/// order) while a plain thread keeps sending `SIGUSR2`: every listener created sees a delivery,
/// including one that arrives while its other signal is being installed, and none reaches a
/// thread without a handler (which would end the process).
fn no_delivery_is_lost_while_listeners_come_and_go(io: &Io) {
    let _x = exclusive();
    // Install zsync's handler for SIGUSR2 first: from then on it stays (see the module docs).
    drop(signal::signal(io, SignalKind::user_defined2()).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let sender = std::thread::spawn({
        let stop = stop.clone();
        move || {
            while !stop.load(Ordering::Relaxed) {
                kill_self(libc::SIGUSR2);
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    });
    for _ in 0..30 {
        let mut s = Signals::new(
            io,
            &[
                SignalKind::from_raw(libc::SIGURG),
                SignalKind::user_defined2(),
            ],
        )
        .unwrap();
        assert_eq!(s.recv_timeout(SENT).unwrap(), SignalKind::user_defined2());
    }
    stop.store(true, Ordering::Relaxed);
    sender.join().unwrap();
}

conformance! {
    a_signal_sent_to_the_process_is_received,
    every_listener_sees_each_delivery,
    a_listener_is_woken_from_another_task,
    a_canceled_recv_returns_canceled_and_the_listener_still_works,
    a_signal_event_wins_a_select,
    signals_that_cannot_be_listened_for_are_refused,
    no_delivery_is_lost_while_listeners_come_and_go,
}

standalone! {
    /// Ctrl-C reaches `ctrl_c_event` and `ctrl_c`: checked in a child process (this test binary
    /// re-run on the ignored child test), which the parent interrupts with `SIGINT` once it
    /// says it listens.
    #[test]
    fn ctrl_c_is_received_in_a_child_process() {
        use std::io::{BufRead, BufReader, Read};
        use zsync::process::{Command, Stdio};

        zsync::run(zsync::Model::Threaded, |io| {
            let mut child = Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "signal::ctrl_c_child", "--nocapture", "--include-ignored"])
                .stdout(Stdio::piped())
                .kill_on_drop(true)
                .spawn(io)
                .unwrap();
            let mut out = BufReader::new(child.stdout.take().unwrap());
            let mut line = String::new();
            while !line.starts_with("child: got ctrl-c twice") {
                line.clear();
                let n = io.timeout(SENT, |_| out.read_line(&mut line)).unwrap();
                assert_ne!(n, 0, "the child ended before it got Ctrl-C twice");
                if line.starts_with("child: listening") {
                    // SAFETY: kill(2) has no memory-safety preconditions.
                    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
                }
            }
            let mut rest = String::new();
            io.timeout(SENT, |_| out.read_to_string(&mut rest)).unwrap();
            let status = io.timeout(SENT, |_| child.wait()).unwrap();
            assert!(status.success(), "child failed: {rest}");
            assert!(rest.contains("1 passed"), "the child test did not run: {rest}");
        });
    }

    /// Run by `ctrl_c_is_received_in_a_child_process` only.
    #[test]
    #[ignore = "run in a child process by ctrl_c_is_received_in_a_child_process"]
    fn ctrl_c_child() {
        use std::io::Write;
        zsync::run(zsync::Model::Green, |io| {
            // Without a Ctrl-C, both forms honour the task's deadline.
            let err = io.timeout(Duration::from_millis(5), signal::ctrl_c).unwrap_err();
            assert!(zsync::is_timed_out(&err), "{err:?}");
            let ev = signal::ctrl_c_event(io).unwrap();
            println!("child: listening (event)");
            std::io::stdout().flush().unwrap();
            io.wait(ev).unwrap();
            // `ctrl_c` listens from its call on, and a task cannot announce "the root is
            // waiting now": announce it until the Ctrl-C comes (an early one is not seen, and
            // the parent sends one per announcement).
            let announcer = io.concurrent(|io| -> std::io::Result<()> { loop {
                println!("child: listening (function)");
                std::io::stdout().flush().unwrap();
                io.sleep(Duration::from_millis(100))?;
            } }).unwrap();
            signal::ctrl_c(io).unwrap();
            announcer.cancel().unwrap().unwrap_err();
            println!("child: got ctrl-c twice");
        });
    }
}
