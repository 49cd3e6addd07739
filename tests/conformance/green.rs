//! Conformance tests: the Green model's I/O backends (io_uring ring ops and epoll readiness).
//!
//! The bodies run on every model; those about ring ops check the same invariants everywhere
//! (they are only the interesting case on `green_uring`). Tests that need a runtime of their own
//! (choosing the backend, the environment override) are `standalone!` items: the leak-check
//! binary leaves them out.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use zsync::net::{TcpListener, TcpStream, UnixStream};
use zsync::Io;

use crate::support::{self, assert_canceled};

conformance! {
    backend_name_names_an_engine,
    cancel_storm_on_idle_reads,
    read_canceled_right_after_data_arrives_keeps_the_data,
    ring_ops_roundtrip_tcp_and_files,
}

fn backend_name_names_an_engine(io: &Io) {
    match io.model() {
        zsync::ModelKind::Green => assert!(
            ["io_uring", "epoll"].contains(&io.backend_name()),
            "{}",
            io.backend_name()
        ),
        _ => assert_eq!(io.backend_name(), "syscalls"),
    }
}

/// Waits until `n` tasks announced themselves, then gives them time to enter their read.
fn wait_for(io: &Io, counter: &AtomicUsize, n: usize) {
    while counter.load(Ordering::SeqCst) < n {
        io.sleep(Duration::from_millis(1)).unwrap();
    }
    io.sleep(Duration::from_millis(20)).unwrap();
}

/// 100 tasks blocked in `read` on idle sockets, all canceled: every one returns `Canceled`,
/// and (checked by the leak test) every socket and in-flight op is released.
fn cancel_storm_on_idle_reads(io: &Io) {
    if !support::has_concurrency(io) {
        return;
    }
    const TASKS: usize = 100;
    let started = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    let mut peers = Vec::new(); // kept open: the reads stay idle
    for _ in 0..TASKS {
        let (mut a, b) = UnixStream::pair(io).unwrap();
        peers.push(b);
        let started = started.clone();
        tasks.push(
            io.concurrent(move |_| {
                started.fetch_add(1, Ordering::SeqCst);
                let mut buf = [0u8; 64];
                a.read(&mut buf)
            })
            .unwrap(),
        );
    }
    wait_for(io, &started, TASKS);
    for t in &tasks {
        t.request_cancel();
    }
    for t in tasks {
        assert_canceled(t.join().unwrap());
    }
    drop(peers);
}

/// Data arrives and the reader is canceled right after: whatever the race gives, no byte is
/// lost. Either the read returns the data, or it reports `Canceled` and the data is still
/// in the socket.
fn read_canceled_right_after_data_arrives_keeps_the_data(io: &Io) {
    if !support::has_concurrency(io) {
        return;
    }
    let (mut ok, mut canceled) = (0, 0);
    for round in 0..100u8 {
        let (mut a, mut b) = UnixStream::pair(io).unwrap();
        let started = Arc::new(AtomicUsize::new(0));
        let s = started.clone();
        let reader = io
            .concurrent(move |_| {
                s.fetch_add(1, Ordering::SeqCst);
                let mut buf = [0u8; 16];
                let r = a.read(&mut buf).map(|n| buf[..n].to_vec());
                (r, a)
            })
            .unwrap();
        while started.load(Ordering::SeqCst) == 0 {
            io.yield_now();
        }
        if round % 2 == 0 {
            // Sometimes let the reader get all the way into its wait.
            io.sleep(Duration::from_millis(1)).unwrap();
        }
        b.write_all(&[round; 4]).unwrap();
        let (r, mut a) = reader.cancel().unwrap();
        match r {
            Ok(data) => {
                assert_eq!(data, vec![round; 4]);
                ok += 1;
            }
            Err(e) => {
                assert!(zsync::is_canceled(&e), "{e:?}");
                let mut buf = [0u8; 16];
                let n = a.read(&mut buf).unwrap();
                assert_eq!(&buf[..n], &[round; 4], "a canceled read dropped data");
                canceled += 1;
            }
        }
    }
    assert_eq!(ok + canceled, 100);
}

/// The ops the ring runs (accept, connect, recv, send, pread, pwrite, fsync) give the same
/// results as syscalls.
fn ring_ops_roundtrip_tcp_and_files(io: &Io) {
    let l = TcpListener::bind(io, "127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let mut c = TcpStream::connect(io, addr).unwrap();
    let (mut s, peer) = l.accept().unwrap();
    assert_eq!(peer, c.local_addr().unwrap());
    for i in 0..50u32 {
        c.write_all(&i.to_le_bytes()).unwrap();
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).unwrap();
        s.write_all(&buf).unwrap();
        c.read_exact(&mut buf).unwrap();
        assert_eq!(u32::from_le_bytes(buf), i);
    }
    drop(c);
    let mut rest = Vec::new();
    assert_eq!(s.read_to_end(&mut rest).unwrap(), 0);

    let dir = support::TempDir::new("green-ring");
    let path = dir.path().join("f");
    let f = zsync::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .open(io, &path)
        .unwrap();
    assert_eq!(f.write_at(b"hello ring", 3).unwrap(), 10);
    f.sync_all().unwrap();
    f.sync_data().unwrap();
    let mut buf = [0u8; 13];
    assert_eq!(f.read_at(&mut buf, 0).unwrap(), 13);
    assert_eq!(&buf, b"\0\0\0hello ring");
    assert_eq!(f.read_at(&mut buf, 100).unwrap(), 0, "past the end");
}

standalone! {
    #[test]
    fn a_forced_backend_is_the_one_used() {
        let name = |b| {
            zsync::Builder::new(zsync::Model::Green)
                .worker_threads(1)
                .backend(b)
                .run(|io| io.backend_name())
        };
        assert_eq!(name(zsync::Backend::Epoll), "epoll");
        let uring = support::io_uring_unavailable().is_none();
        if uring {
            assert_eq!(name(zsync::Backend::IoUring), "io_uring");
        } else {
            // Forced where the kernel refuses: `run` fails, naming why.
            let refused = std::panic::catch_unwind(|| name(zsync::Backend::IoUring)).unwrap_err();
            let msg = refused.downcast_ref::<String>().expect("a formatted panic message");
            assert!(msg.contains("cannot start"), "{msg}");
            support::skip_without_io_uring("a_forced_backend_is_the_one_used (io_uring)");
        }
        match std::env::var("ZSYNC_BACKEND").as_deref() {
            Ok("epoll") => assert_eq!(name(zsync::Backend::Auto), "epoll"),
            Ok("io_uring") if !uring => {}
            _ => assert_eq!(name(zsync::Backend::Auto), if uring { "io_uring" } else { "epoll" }),
        }
    }

    /// `ZSYNC_BACKEND=epoll` turns `Auto` into epoll: checked in a child process (this test
    /// binary re-run with the variable set and a filter selecting the child test).
    #[test]
    fn env_override_selects_epoll_for_auto() {
        let mut cases = vec![("epoll", "epoll")];
        if !support::skip_without_io_uring("env_override_selects_epoll_for_auto (io_uring)") {
            cases.push(("io_uring", "io_uring"));
        }
        for (value, expected) in cases {
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "green::env_override_child", "--nocapture", "--include-ignored"])
                .env("ZSYNC_BACKEND", value)
                .env("ZSYNC_TEST_EXPECT_BACKEND", expected)
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "child failed: {stdout}{}", String::from_utf8_lossy(&out.stderr));
            assert!(stdout.contains("1 passed"), "the child test did not run: {stdout}");
        }
    }

    /// Run by `env_override_selects_epoll_for_auto` only.
    #[test]
    #[ignore = "run in a child process by env_override_selects_epoll_for_auto"]
    fn env_override_child() {
        let expected = std::env::var("ZSYNC_TEST_EXPECT_BACKEND").unwrap();
        let name = zsync::Builder::new(zsync::Model::Green)
            .worker_threads(1)
            .run(|io| io.backend_name());
        assert_eq!(name, expected);
    }

    /// Where the kernel refuses io_uring (here: a seccomp filter that fails `io_uring_setup`
    /// with EPERM, as Docker's default profile does; no root needed), `Auto` runs on epoll, a
    /// forced io_uring fails naming why, and the suite's io_uring-forced tests skip with a
    /// note. Checked in a child process, which installs the filter after asking once (as a
    /// process started before `kernel.io_uring_disabled` was switched would have).
    #[test]
    fn where_the_kernel_refuses_io_uring_auto_runs_on_epoll_and_uring_tests_skip() {
        if !cfg!(target_arch = "x86_64") {
            eprintln!("the seccomp filter of this test is written for x86_64; skipped");
            return;
        }
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "green::io_uring_refused_child", "--nocapture", "--include-ignored"])
            .env_remove("ZSYNC_BACKEND")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "child failed: {stdout}{stderr}");
        assert!(stdout.contains("1 passed"), "the child test did not run: {stdout}");
        // The reason names the filter (EPERM), or the sysctl where that refuses io_uring too.
        let note = "conformance test refused_child_body on green_uring: skipped: io_uring \
                    unavailable: the io_uring backend was requested but cannot start: io_uring";
        assert!(stderr.contains(note), "no skip note in: {stderr}");
    }

    /// Run by `where_the_kernel_refuses_io_uring_auto_runs_on_epoll_and_uring_tests_skip` only.
    #[test]
    #[ignore = "run in a child process by where_the_kernel_refuses_io_uring_auto_runs_on_epoll_and_uring_tests_skip"]
    fn io_uring_refused_child() {
        // Asked first, as a process that started before io_uring was refused: `resolve` (and
        // so `run`) must not rely on that answer afterwards.
        let before = zsync::Backend::Auto.resolve().unwrap();
        println!("before the filter: {before:?}");
        refuse_io_uring_setup();
        let why = zsync::Backend::IoUring.resolve().unwrap_err().to_string();
        assert!(why.contains("cannot start"), "{why}");
        assert_eq!(zsync::Backend::Auto.resolve().unwrap(), zsync::Backend::Epoll);
        let on = zsync::Builder::new(zsync::Model::Green)
            .worker_threads(2)
            .run(|io| {
                // The whole of a Green program works on epoll: a task, a socket round trip.
                let (mut a, mut b) = UnixStream::pair(io).unwrap();
                let echo = io.spawn(move |_| {
                    let mut buf = [0u8; 4];
                    b.read_exact(&mut buf).unwrap();
                    b.write_all(&buf).unwrap();
                });
                a.write_all(b"ping").unwrap();
                let mut buf = [0u8; 4];
                a.read_exact(&mut buf).unwrap();
                assert_eq!(&buf, b"ping");
                echo.join().unwrap();
                io.backend_name()
            });
        assert_eq!(on, "epoll");
        let forced = std::panic::catch_unwind(|| {
            zsync::Builder::new(zsync::Model::Green)
                .backend(zsync::Backend::IoUring)
                .run(|_| ())
        })
        .unwrap_err();
        let msg = forced.downcast_ref::<String>().expect("a formatted panic message");
        assert!(msg.contains(&why), "{msg}");
        fn refused_child_body(_: &Io) {
            panic!("an io_uring-forced test ran where io_uring is refused");
        }
        support::run_on_uring("refused_child_body", refused_child_body);
        assert!(support::models().iter().all(|(name, _)| *name != "green_uring"));
    }

    /// Makes `io_uring_setup` fail with EPERM in this thread and the threads it starts from now
    /// on: a seccomp filter, as container runtimes install.
    #[cfg(target_arch = "x86_64")]
    fn refuse_io_uring_setup() {
        const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
        let stmt = |code: u16, k: u32| libc::sock_filter { code, jt: 0, jf: 0, k };
        let jump = |code: u16, k: u32, jt: u8, jf: u8| libc::sock_filter { code, jt, jf, k };
        let (ld_abs_w, jeq_k, ret_k) = (0x20, 0x15, 0x06); // BPF_LD|BPF_W|BPF_ABS, BPF_JMP|BPF_JEQ|BPF_K, BPF_RET|BPF_K
        let program = [
            stmt(ld_abs_w, 4), // seccomp_data.arch
            jump(jeq_k, AUDIT_ARCH_X86_64, 0, 3),
            stmt(ld_abs_w, 0), // seccomp_data.nr
            jump(jeq_k, libc::SYS_io_uring_setup as u32, 0, 1),
            stmt(ret_k, libc::SECCOMP_RET_ERRNO | libc::EPERM as u32),
            stmt(ret_k, libc::SECCOMP_RET_ALLOW),
        ];
        let prog = libc::sock_fprog {
            len: program.len() as u16,
            filter: program.as_ptr().cast_mut(),
        };
        // SAFETY: PR_SET_NO_NEW_PRIVS takes plain integers.
        let r = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
        assert_eq!(r, 0, "PR_SET_NO_NEW_PRIVS: {}", std::io::Error::last_os_error());
        // SAFETY: `prog` points at `program`, a valid filter that outlives the call (the kernel
        // copies it).
        let r = unsafe {
            libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &prog as *const libc::sock_fprog)
        };
        assert_eq!(r, 0, "PR_SET_SECCOMP: {}", std::io::Error::last_os_error());
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn refuse_io_uring_setup() {
        unreachable!("the parent test skips on this architecture")
    }
}
