//! Task dumps (`Io::dump`, `Handle::dump`, `Builder::dump_on_signal`): what they show of each
//! task, per model.
//!
//! Every wait below is bounded by a generous watchdog only (a dump is polled until the tasks
//! it looks for are parked); nothing asserts on timing.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use zsync::dump::{Dump, TaskDump, TaskState, WaitOp};
use zsync::signal::SignalKind;
use zsync::{Backend, Builder, Io, Model};

/// The models with real concurrency, with two workers each (io_uring only where allowed).
fn concurrent_builders() -> Vec<(&'static str, Builder)> {
    let mut v = vec![
        ("threaded", Builder::new(Model::Threaded).worker_threads(2)),
        (
            "green_epoll",
            Builder::new(Model::Green)
                .backend(Backend::Epoll)
                .worker_threads(2),
        ),
    ];
    match Backend::IoUring.resolve() {
        Ok(_) => v.push((
            "green_uring",
            Builder::new(Model::Green)
                .backend(Backend::IoUring)
                .worker_threads(2),
        )),
        Err(e) => eprintln!("skipped: green_uring: io_uring unavailable: {e}"),
    }
    v
}

/// Takes dumps until `ready` holds for one (a watchdog of 20 s against a hang).
fn dump_until(take: impl Fn() -> Dump, ready: impl Fn(&Dump) -> bool) -> Dump {
    let give_up = Instant::now() + Duration::from_secs(20);
    loop {
        let dump = take();
        if ready(&dump) {
            return dump;
        }
        assert!(
            Instant::now() < give_up,
            "the tasks never all parked:\n{dump}"
        );
        // In a task, wait the task's way: a Green worker must stay free to start the others.
        match Io::current() {
            Some(io) => io.sleep(Duration::from_millis(5)).unwrap(),
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

fn parked(dump: &Dump, name: &str) -> bool {
    dump.task_named(name)
        .is_some_and(|t| t.state() == TaskState::Parked)
}

fn stack_has(task: &TaskDump, function: &str) -> bool {
    task.stack().is_some_and(|s| {
        s.frames()
            .iter()
            .any(|f| f.function().is_some_and(|n| n.contains(function)))
    })
}

#[inline(never)]
fn wait_for_a_message(rx: zsync::channel::Receiver<u32>, line: &Mutex<u32>) {
    *line.lock().unwrap() = line!() + 1;
    let _ = rx.recv();
}

#[inline(never)]
fn take_a_nap(io: &Io, line: &Mutex<u32>) {
    *line.lock().unwrap() = line!() + 1;
    let _ = io.sleep(Duration::from_secs(60));
}

#[inline(never)]
fn lock_the_mutex(m: &zsync::sync::Mutex<()>) {
    let _guard = m.lock();
}

#[inline(never)]
fn join_the_child(io: &Io, rx: zsync::channel::Receiver<u32>) {
    let child = io
        .task()
        .name("child")
        .spawn(move |_| wait_for_a_message(rx, &Mutex::new(0)));
    let _ = child.join();
}

/// The dump's central promise, on every model with concurrency: names, spawn sites, parents,
/// the operation each task waits in and the user's line of that call, how long; on Green
/// the parked fiber's stack with the user's functions in it.
#[test]
fn dump_shows_names_spawn_sites_wait_ops_user_lines_and_fiber_stacks() {
    for (model, builder) in concurrent_builders() {
        builder.run(|io| {
            let recv_line = Arc::new(Mutex::new(0));
            let nap_line = Arc::new(Mutex::new(0));
            let (tx, rx) = zsync::channel::bounded::<u32>(1);
            let (ctx, crx) = zsync::channel::bounded::<u32>(1);
            let mutex = Arc::new(zsync::sync::Mutex::new(()));
            let held = mutex.lock().unwrap();

            let l = recv_line.clone();
            let spawn_line = line!() + 4; // the line of `.spawn(`
            let receiver = io
                .task()
                .name("receiver")
                .spawn(move |_| wait_for_a_message(rx, &l));
            let l = nap_line.clone();
            let sleeper = io
                .task()
                .name("sleeper")
                .spawn(move |io| take_a_nap(io, &l));
            let m = mutex.clone();
            let locker = io.task().name("locker").spawn(move |_| lock_the_mutex(&m));
            let parent = io
                .task()
                .name("parent")
                .spawn(move |io| join_the_child(io, crx));

            let dump = dump_until(
                || io.dump(),
                |d| {
                    // On Green, also traced by its worker: a worker may answer just before a
                    // fiber it then starts parks (a dump is a snapshot).
                    let traced = |n: &str| {
                        !model.starts_with("green")
                            || d.task_named(n).is_some_and(|t| t.worker().is_some())
                    };
                    ["receiver", "sleeper", "locker", "child"]
                        .iter()
                        .all(|n| parked(d, n) && traced(n))
                        // The parent may be running its child inline (a join of an unstarted
                        // task runs it on the joiner), so only its operation is certain.
                        && d.task_named("parent").is_some_and(|p| {
                            p.wait().is_some_and(|w| w.op() == WaitOp::Join)
                        })
                },
            );
            let text = dump.to_string();
            println!("{model}:\n{text}");

            let r = dump.task_named("receiver").unwrap();
            let at = r.spawned_at().unwrap();
            assert_eq!((at.file(), at.line()), (file!(), spawn_line), "{model}");
            assert_eq!(r.parent(), None, "{model}: spawned by the root");
            let w = r.wait().unwrap();
            assert_eq!(w.op(), WaitOp::ChannelRecv, "{model}");
            let loc = w.location().unwrap();
            assert_eq!(
                (loc.file(), loc.line()),
                (file!(), *recv_line.lock().unwrap()),
                "{model}"
            );
            assert!(w.waiting_for().is_some(), "{model}");

            let s = dump.task_named("sleeper").unwrap();
            assert_eq!(s.wait().unwrap().op(), WaitOp::Sleep, "{model}");
            assert_eq!(
                s.wait().unwrap().location().unwrap().line(),
                *nap_line.lock().unwrap()
            );

            let l = dump.task_named("locker").unwrap();
            assert_eq!(l.wait().unwrap().op(), WaitOp::Mutex, "{model}");
            assert_eq!(l.wait().unwrap().location().unwrap().file(), file!());

            let p = dump.task_named("parent").unwrap();
            let c = dump.task_named("child").unwrap();
            assert_eq!(p.wait().unwrap().op(), WaitOp::Join, "{model}");
            assert_eq!(c.parent(), p.id(), "{model}: the child's parent");
            assert_eq!(c.wait().unwrap().op(), WaitOp::ChannelRecv, "{model}");

            let me = dump.tasks().iter().find(|t| t.is_current()).unwrap();
            assert!(me.is_root(), "{model}");
            assert_eq!(me.state(), TaskState::Running, "{model}");
            // (Closures are inlined in release builds without debug info: their frames are
            // named only with it.)
            assert!(
                !cfg!(debug_assertions) || stack_has(me, "dump_shows_names_spawn_sites"),
                "{model}: the dumping task's own stack:\n{text}"
            );

            for name in ["receiver", "sleeper", "locker"] {
                assert!(text.contains(&format!("'{name}'")), "{model}: {text}");
            }
            assert!(text.contains("channel recv"), "{model}: {text}");
            if model.starts_with("green") {
                assert!(r.worker().is_some(), "{model}");
                assert!(stack_has(r, "wait_for_a_message"), "{model}:\n{text}");
                assert!(stack_has(s, "take_a_nap"), "{model}:\n{text}");
                assert!(stack_has(l, "lock_the_mutex"), "{model}:\n{text}");
                // The child may run inline on its joiner's fiber: that fiber's stack is then
                // the child's, down to the join.
                assert!(
                    stack_has(c, "wait_for_a_message")
                        && (!cfg!(debug_assertions)
                            || stack_has(c, "join_the_child")
                            || stack_has(p, "join_the_child")),
                    "{model}:\n{text}"
                );
                assert!(text.contains("wait_for_a_message"), "{model}: {text}");
                // The stack starts at the user's side of the wait: zsync's park loop is cut.
                let top = r.stack().unwrap().frames()[0]
                    .function()
                    .unwrap()
                    .to_owned();
                assert!(top.contains("Receiver"), "{model}: top frame {top}");
            } else {
                // Parked OS threads answer the dump's request with their own stacks.
                assert!(stack_has(r, "wait_for_a_message"), "{model}:\n{text}");
                assert!(stack_has(s, "take_a_nap"), "{model}:\n{text}");
                assert!(stack_has(l, "lock_the_mutex"), "{model}:\n{text}");
                let top = r.stack().unwrap().frames()[0]
                    .function()
                    .unwrap()
                    .to_owned();
                assert!(top.contains("Receiver"), "{model}: top frame {top}");
            }

            drop(held);
            drop(tx);
            drop(ctx);
            let _ = sleeper.cancel();
            receiver.join().unwrap();
            locker.join().unwrap();
            parent.join().unwrap();
        });
    }
}

/// Future tasks show their future's type and frame size, and their wait state.
#[test]
fn dump_shows_future_tasks_with_type_and_frame_size() {
    for (model, builder) in concurrent_builders() {
        builder.run(|io| {
            let (tx, rx) = zsync::channel::bounded::<u32>(1);
            let task = io.spawn_future(async move { rx.recv_event().await });
            let future_parked = |d: &Dump| {
                d.tasks()
                    .iter()
                    .any(|t| t.future().is_some() && t.state() == TaskState::Parked)
            };
            let dump = dump_until(|| io.dump(), future_parked);
            let f = dump.tasks().iter().find(|t| t.future().is_some()).unwrap();
            let (ty, size) = f.future().expect("a future task");
            assert!(ty.contains("dump"), "{model}: {ty}");
            assert!(size > 0, "{model}");
            assert!(dump.to_string().contains("future "), "{model}");
            drop(tx);
            let _ = task.join();
        });
    }
}

/// The `block_on` caller's code in `handle_dump_from_outside_shows_a_blocked_block_on_caller_on_blocking`:
/// a function of its own that is not inlined and does not end in a tail call, so that a release
/// build keeps its frame (its name must show in the stack).
#[inline(never)]
fn block_on_caller_receives(
    rx: &zsync::channel::Receiver<u32>,
    line: &Mutex<u32>,
) -> Result<u32, zsync::channel::RecvError> {
    *line.lock().unwrap() = line!() + 1;
    let received = rx.recv();
    // Not a tail call, which would leave this frame out of the stack.
    std::hint::black_box(&received);
    received
}

/// From a thread outside the runtime (`Handle::dump`), on Blocking: a `block_on` caller parked
/// in a receive shows as a root task with its operation and line.
#[test]
fn handle_dump_from_outside_shows_a_blocked_block_on_caller_on_blocking() {
    let rt = zsync::Runtime::new(Model::Blocking).unwrap();
    let (tx, rx) = zsync::channel::bounded::<u32>(1);
    let line = Arc::new(Mutex::new(0));
    let handle = rt.handle();
    let l = line.clone();
    let waiter = std::thread::spawn(move || handle.block_on(|_| block_on_caller_receives(&rx, &l)));
    // (The runtime's host thread is a root task too, waiting for its shutdown.)
    let in_recv = |t: &&TaskDump| {
        t.is_root()
            && t.state() == TaskState::Parked
            && t.wait().is_some_and(|w| w.op() == WaitOp::ChannelRecv)
    };
    let dump = dump_until(
        || rt.handle().dump(),
        |d| d.tasks().iter().any(|t| in_recv(&t)),
    );
    let t = dump.tasks().iter().find(in_recv).unwrap();
    // Its thread answered the dump's request for its stack.
    assert!(stack_has(t, "block_on_caller_receives"), "{dump}");
    let w = t.wait().unwrap();
    assert_eq!(w.op(), WaitOp::ChannelRecv);
    assert_eq!(
        w.location().unwrap().line(),
        *line.lock().unwrap(),
        "{dump}"
    );
    tx.send(1).unwrap();
    assert_eq!(waiter.join().unwrap().unwrap(), 1);
}

/// A Green worker blocked in a call outside zsync cannot answer: the dump gives up on it
/// after its bounded wait, says so, and still returns.
#[test]
fn green_dump_gives_up_on_a_worker_blocked_outside_zsync() {
    let rt = Builder::new(Model::Green)
        .backend(Backend::Epoll)
        .worker_threads(2)
        .build()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let blocker = rt.spawn(move |_| {
        tx.send(()).unwrap();
        // A call that is not zsync's: the worker's loop stands still meanwhile.
        std::thread::sleep(Duration::from_secs(3));
    });
    rx.recv().unwrap();
    let dump = rt.handle().dump();
    assert!(
        dump.notes().iter().any(|n| n.contains("did not answer")),
        "{dump}"
    );
    blocker.join().unwrap();
}

/// Shared buffer a builder writes dumps into.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().write(b)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// `SIGQUIT` with `dump_on_signal_to`: the dump is written, with the parked task in it, and
/// the program goes on.
#[test]
fn dump_on_signal_writes_a_dump_and_the_program_goes_on() {
    let out = Buffer::default();
    let v = Builder::new(Model::Green)
        .worker_threads(2)
        .dump_on_signal_to(SignalKind::quit(), out.clone())
        .run(|io| {
            let (tx, rx) = zsync::channel::bounded::<u32>(1);
            let task = io
                .task()
                .name("signal-waiter")
                .spawn(move |_| wait_for_a_message(rx, &Mutex::new(0)));
            dump_until(|| io.dump(), |d| parked(d, "signal-waiter"));
            // SAFETY: kill(2) has no memory-safety preconditions.
            assert_eq!(unsafe { libc::kill(libc::getpid(), libc::SIGQUIT) }, 0);
            // A watchdog only: printing symbolizes the stacks, and the first symbolization of
            // a debug test binary reads all its debug info (slow on a loaded machine).
            let give_up = Instant::now() + Duration::from_secs(180);
            while !out.text().contains("signal-waiter") {
                assert!(Instant::now() < give_up, "no dump written: {}", out.text());
                io.sleep(Duration::from_millis(5)).unwrap();
            }
            drop(tx);
            task.join().unwrap();
            7
        });
    assert_eq!(v, 7, "the program went on");
    let text = out.text();
    assert!(text.starts_with("zsync task dump"), "{text}");
    assert!(text.contains("wait_for_a_message"), "{text}");
}

const CHILD_ENV: &str = "ZSYNC_DUMP_TEST_CHILD";

/// The default writer is stderr: a child process with `dump_on_signal(quit)` prints the dump
/// there on `SIGQUIT` and lives on until told to stop.
#[test]
fn dump_on_signal_prints_to_stderr_in_a_child_process() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return child();
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "dump_on_signal_prints_to_stderr_in_a_child_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert_ne!(stdout.read_line(&mut line).unwrap(), 0, "child ended early");
        if line.trim_end().ends_with("ready") {
            break;
        }
    }
    let pid = child.id() as libc::pid_t;
    // SAFETY: kill(2) has no memory-safety preconditions.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGQUIT) }, 0);
    let mut stderr = child.stderr.take().unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("'stuck-in-child'") {
        let n = stderr.read(&mut buf).unwrap();
        assert_ne!(n, 0, "stderr closed: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    drop(child.stdin.take()); // the child's task stops waiting
    let status = child.wait().unwrap();
    assert!(status.success(), "the child lived on: {status:?}");
}

fn child() {
    Builder::new(Model::Green)
        .worker_threads(1)
        .dump_on_signal(SignalKind::quit())
        .run(|io| {
            let task = io.task().name("stuck-in-child").spawn(|io| {
                // Stops when the parent closes our stdin (read on a helper thread).
                io.blocking(|| {
                    let mut b = [0u8; 1];
                    let _ = std::io::stdin().read(&mut b);
                })
            });
            dump_until(
                || io.dump(),
                |d| {
                    d.task_named("stuck-in-child")
                        .is_some_and(|t| t.state() == TaskState::Blocking)
                },
            );
            println!("ready");
            std::io::stdout().flush().unwrap();
            task.join().unwrap().unwrap();
        });
}

/// The models with queues, each with one worker, for the tests of tasks that never waited.
fn one_worker_builders() -> Vec<(&'static str, Builder)> {
    concurrent_builders()
        .into_iter()
        .map(|(m, b)| (m, b.worker_threads(1)))
        .collect()
}

/// A task queued behind a busy worker shows as unstarted, with its name, spawn site and
/// parent; the task holding the worker, which never waited, shows as running (on Threaded
/// with its name; on Green, whose worker cannot answer while it computes, by its spawn site).
#[test]
fn dump_lists_a_task_queued_behind_a_busy_worker_and_the_running_task() {
    for (model, builder) in one_worker_builders() {
        let rt = builder.build().unwrap();
        let go = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
        let g = go.clone();
        let busy_line = line!() + 1;
        let busy = rt.io().task().name("busy").spawn(move |_| {
            started_tx.send(()).unwrap();
            // Computes without ever reaching a zsync wait (bounded by a watchdog).
            let give_up = Instant::now() + Duration::from_secs(30);
            while !g.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < give_up {
                std::hint::spin_loop();
            }
        });
        started_rx.recv().unwrap();
        let queued_line = line!() + 1;
        let queued = rt.io().task().name("queued").spawn(|_| 7);
        let dump = rt.handle().dump();
        let q = dump
            .task_named("queued")
            .unwrap_or_else(|| panic!("{model}:\n{dump}"));
        assert_eq!(q.state(), TaskState::Unstarted, "{model}:\n{dump}");
        assert_eq!(q.spawned_at().unwrap().line(), queued_line, "{model}");
        assert_eq!(q.parent(), None, "{model}: spawned by the root");
        assert!(dump.to_string().contains("[unstarted]"), "{model}:\n{dump}");
        let b = dump
            .tasks()
            .iter()
            .find(|t| t.spawned_at().is_some_and(|l| l.line() == busy_line))
            .unwrap_or_else(|| panic!("{model}: the busy task is missing:\n{dump}"));
        assert_eq!(b.state(), TaskState::Running, "{model}:\n{dump}");
        if model == "threaded" {
            assert_eq!(b.name(), Some("busy"), "{model}");
            assert!(b.id().is_some(), "{model}");
        } else {
            assert_eq!(b.worker(), Some(0), "{model}:\n{dump}");
        }
        go.store(true, std::sync::atomic::Ordering::Relaxed);
        busy.join().unwrap();
        assert_eq!(queued.join().unwrap(), 7);
    }
}

/// On Green, tasks spawned by a fiber that has not given its worker back yet are unstarted;
/// the dump taken by that fiber lists them (it traces its own worker itself).
#[test]
fn green_dump_lists_tasks_spawned_and_not_started_yet() {
    for (model, builder) in one_worker_builders() {
        if model == "threaded" {
            continue;
        }
        builder.run(|io| {
            let line = line!() + 1;
            let a = io.task().name("a").spawn(|_| 1);
            let b = io.task().name("b").spawn(|_| 2);
            let dump = io.dump();
            for name in ["a", "b"] {
                let t = dump
                    .task_named(name)
                    .unwrap_or_else(|| panic!("{model}:\n{dump}"));
                assert_eq!(t.state(), TaskState::Unstarted, "{model}:\n{dump}");
                assert_eq!(t.parent(), None, "{model}: spawned by the root");
            }
            assert_eq!(
                dump.task_named("a").unwrap().spawned_at().unwrap().line(),
                line
            );
            assert_eq!(a.join().unwrap() + b.join().unwrap(), 3);
        });
    }
}

/// On Blocking a spawn runs inline: a dump taken two spawns deep lists the spawners as
/// running, with their names, spawn sites and parents.
#[test]
fn blocking_dump_lists_the_spawners_running_their_children_inline() {
    Builder::new(Model::Blocking).run(|io| {
        let outer_line = line!() + 1;
        let outer = io.task().name("outer").spawn(|io| {
            let inner = io.task().name("inner").spawn(|io| io.dump());
            inner.join().unwrap()
        });
        let dump = outer.join().unwrap();
        let o = dump.task_named("outer").unwrap_or_else(|| panic!("{dump}"));
        let i = dump.task_named("inner").unwrap();
        assert!(i.is_current());
        assert_eq!(o.state(), TaskState::Running, "{dump}");
        assert_eq!(o.spawned_at().unwrap().line(), outer_line);
        assert_eq!(i.parent(), o.id(), "{dump}");
        assert_eq!(o.parent(), None);
    });
}

/// Every kind of wait gets its operation, descriptor and the user's line: a pipe read, a
/// file read (a `File` on a pipe: a stream), a `select!`, a transfer; on every model with
/// concurrency.
#[test]
fn dump_shows_pipe_file_select_and_transfer_waits_with_user_lines() {
    use std::os::fd::AsRawFd;
    for (model, builder) in concurrent_builders() {
        builder.run(|io| {
            let (pipe_r, pipe_w) = zsync::pipe(io).unwrap();
            let pipe_fd = pipe_r.as_raw_fd();
            let pipe_line = line!() + 3;
            let piper = io.task().name("pipe").spawn(move |_| {
                let mut b = [0u8; 1];
                (&pipe_r).read(&mut b)
            });

            let (file_r, file_w) = std::io::pipe().unwrap();
            let file = zsync::fs::File::from_std(
                io,
                std::fs::File::from(std::os::fd::OwnedFd::from(file_r)),
            );
            let file_fd = file.as_raw_fd();
            let file_line = line!() + 3;
            let filer = io.task().name("file").spawn(move |_| {
                let mut b = [0u8; 1];
                (&file).read(&mut b)
            });

            let (tx, rx) = zsync::channel::bounded::<u32>(1);
            let select_line = line!() + 2;
            let selector = io.task().name("select").spawn(move |io| {
                zsync::select!(io;
                    v = rx.recv_event() => v.ok(),
                    _ = zsync::select::sleep(Duration::from_secs(60)) => None,
                )
            });

            let (src_r, src_w) = zsync::pipe(io).unwrap();
            let (dst_r, dst_w) = zsync::pipe(io).unwrap();
            let src_fd = src_r.as_raw_fd();
            let transfer_line = line!() + 4;
            let transfer = io
                .task()
                .name("transfer")
                .spawn(move |_| zsync::copy(&src_r, &dst_w));

            let names = ["pipe", "file", "select", "transfer"];
            let dump = dump_until(|| io.dump(), |d| names.iter().all(|n| parked(d, n)));
            let expect = [
                ("pipe", WaitOp::Read, Some(pipe_fd), pipe_line),
                ("file", WaitOp::Read, Some(file_fd), file_line),
                ("select", WaitOp::Select, None, select_line),
                ("transfer", WaitOp::Transfer, Some(src_fd), transfer_line),
            ];
            for (name, op, fd, line) in expect {
                let w = dump.task_named(name).unwrap().wait().unwrap();
                assert_eq!(w.op(), op, "{model} {name}:\n{dump}");
                if let Some(fd) = fd {
                    assert_eq!(
                        w.object(),
                        zsync::dump::WaitObject::Fd(fd),
                        "{model} {name}"
                    );
                }
                assert_eq!(
                    w.location().unwrap().line(),
                    line,
                    "{model} {name}:\n{dump}"
                );
                assert!(
                    w.location().unwrap().file().ends_with("dump.rs"),
                    "{model} {name}"
                );
            }
            (&pipe_w).write_all(b"x").unwrap();
            assert_eq!(piper.join().unwrap().unwrap(), 1);
            std::io::Write::write_all(&mut &file_w, b"y").unwrap();
            assert_eq!(filer.join().unwrap().unwrap(), 1);
            tx.send(5).unwrap();
            assert_eq!(selector.join().unwrap().unwrap(), Some(5));
            drop(src_w);
            assert_eq!(transfer.join().unwrap().unwrap(), 0);
            drop(dst_r);
        });
    }
}

#[inline(never)]
fn read_the_pipe(r: zsync::PipeReader) -> std::io::Result<usize> {
    let mut b = [0u8; 1];
    (&r).read(&mut b)
}

/// A task parked on an OS thread (Threaded workers, a `block_on` caller on Blocking) shows a
/// symbolized stack with the user's function in it, captured by the thread itself when the
/// dump asks; it then goes on waiting: a message sent afterwards is received once, a pipe
/// read still gets its byte, and a sleeping task still sees its cancellation.
#[test]
fn threaded_dump_shows_stacks_of_tasks_parked_on_threads_and_they_go_on_waiting() {
    let builder = Builder::new(Model::Threaded).worker_threads(4);
    builder.run(|io| {
        let (tx, rx) = zsync::channel::bounded::<u32>(1);
        let waiter = io
            .task()
            .name("waiter")
            .spawn(move |_| wait_for_a_message_and_return_it(rx));
        let (pipe_r, pipe_w) = zsync::pipe(io).unwrap();
        let reader = io
            .task()
            .name("reader")
            .spawn(move |_| read_the_pipe(pipe_r));
        let napper = io
            .task()
            .name("napper")
            .spawn(|io| take_a_nap(io, &Mutex::new(0)));
        let names = ["waiter", "reader", "napper"];
        let dump = dump_until(|| io.dump(), |d| names.iter().all(|n| parked(d, n)));
        for (name, function) in [
            ("waiter", "wait_for_a_message_and_return_it"),
            ("reader", "read_the_pipe"),
            ("napper", "take_a_nap"),
        ] {
            let t = dump.task_named(name).unwrap();
            assert!(stack_has(t, function), "{name}:\n{dump}");
        }
        assert!(dump
            .to_string()
            .contains("wait_for_a_message_and_return_it"));
        // A second dump works too (the request bit was consumed).
        let again = dump_until(|| io.dump(), |d| names.iter().all(|n| parked(d, n)));
        assert!(stack_has(
            again.task_named("waiter").unwrap(),
            "wait_for_a_message"
        ));
        // Still waiting, and nothing lost.
        assert!(!waiter.is_finished());
        tx.send(9).unwrap();
        assert_eq!(waiter.join().unwrap(), Some(9));
        (&pipe_w).write_all(b"z").unwrap();
        assert_eq!(reader.join().unwrap().unwrap(), 1);
        napper.cancel().unwrap();
    });
}

#[inline(never)]
fn wait_for_a_message_and_return_it(rx: zsync::channel::Receiver<u32>) -> Option<u32> {
    rx.recv().ok()
}

/// A future task awaiting an async file read shows the read, its descriptor and the user's
/// line of the `read_async` call; the wait point goes once the read completes.
#[test]
fn dump_shows_the_async_file_read_a_future_task_awaits() {
    use std::os::fd::AsRawFd;
    for (model, builder) in concurrent_builders() {
        builder.run(|io| {
            let (r, writer) = std::io::pipe().unwrap();
            let file =
                zsync::fs::File::from_std(io, std::fs::File::from(std::os::fd::OwnedFd::from(r)));
            let fd = file.as_raw_fd();
            let line = line!() + 1;
            let read = file.read_async(vec![0; 4]);
            let task = io.spawn_future(async move { read.await.0 });
            let awaiting = |d: &Dump| {
                d.tasks().iter().any(|t| {
                    t.future().is_some() && t.wait().is_some_and(|w| w.op() == WaitOp::Read)
                })
            };
            let dump = dump_until(|| io.dump(), awaiting);
            let t = dump.tasks().iter().find(|t| t.future().is_some()).unwrap();
            let w = t.wait().unwrap();
            assert_eq!(
                w.object(),
                zsync::dump::WaitObject::Fd(fd),
                "{model}:\n{dump}"
            );
            assert_eq!(w.location().unwrap().line(), line, "{model}:\n{dump}");
            std::io::Write::write_all(&mut &writer, b"ok").unwrap();
            assert_eq!(task.join().unwrap().unwrap(), 2, "{model}");
            drop(file);
        });
    }
}
