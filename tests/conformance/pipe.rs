//! Conformance tests: pipes, FIFOs and terminals. A wait for the other end — a read of an empty
//! pipe, a write to a full one — is a cancellation point and honours deadlines on every model,
//! whether the descriptor is a [`zsync::pipe`], a FIFO or terminal opened with
//! [`zsync::fs::File`], or a std pipe wrapped with `File::from_std` (issue 11, item 6: such reads
//! through `fs::File` used to block their thread, so cancel, drop, `run`'s shutdown and deadlines
//! all waited for data forever on Threaded and Green/epoll).
//!
//! A regression would hang, so every scenario arms a [`Rescuer`]: if the operation is still
//! stuck after [`RESCUE_AFTER`], it feeds (or drains) the pipe from a plain thread, the
//! operation completes, and the test fails with a message instead of tripping the watchdog.

use std::io::{self, ErrorKind, IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use zsync::fs::{File, OpenOptions};
use zsync::net::UnixStream;
use zsync::{Io, PipeReader, PipeWriter};

use crate::support::{self, assert_canceled, pattern, TempDir};
use crate::tcp::{cancel_blocked, cancel_race, is_nonblocking, precanceled_then_shielded};

/// How long an operation may stay stuck before the rescuer unblocks it (and the test fails).
/// Far beyond any legitimate wait of these tests, even on a loaded machine.
const RESCUE_AFTER: Duration = Duration::from_secs(10);
/// The deadline given to a blocked operation.
const DEADLINE: Duration = Duration::from_millis(50);
/// How late a deadline or cancel may end the operation (a loaded CI machine).
const PROMPT: Duration = Duration::from_secs(2);

// ---- helpers -----------------------------------------------------------------------------------

/// Unblocks a stuck operation so that a regression fails instead of hanging: from
/// [`RESCUE_AFTER`] on until disarmed, runs `rescue` every 100 ms on a plain thread.
struct Rescuer {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<usize>,
}

impl Rescuer {
    fn arm(rescue: impl Fn() + Send + 'static) -> Rescuer {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let mut rescues = 0;
            let mut wait = RESCUE_AFTER;
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(wait) {
                rescue();
                rescues += 1;
                wait = Duration::from_millis(100);
            }
            rescues
        });
        Rescuer { stop, thread }
    }

    /// Stops the rescuer; fails the test if it had to step in.
    #[track_caller]
    fn disarm(self, what: &str) {
        let _ = self.stop.send(());
        let rescues = self.thread.join().unwrap();
        assert_eq!(
            rescues, 0,
            "{what}: stayed blocked for {RESCUE_AFTER:?} until the pipe was fed or drained"
        );
    }
}

/// Puts bytes into a pipe from outside the runtime, without waiting.
type Feed = Box<dyn Fn(&[u8]) + Send>;

/// Writes `bytes` to the non-blocking `fd` without waiting (what a rescuer or a test's other
/// end does from outside any task); a full pipe takes fewer.
fn feed(fd: impl AsFd, bytes: &[u8]) -> usize {
    rustix::io::write(fd, bytes).unwrap_or(0)
}

/// Empties the non-blocking `fd` without waiting; returns how many bytes it held.
fn drain(fd: impl AsFd) -> usize {
    let fd = fd.as_fd();
    let mut total = 0;
    let mut buf = vec![0u8; 65536]; // not on a 64 KiB fiber stack
    while let Ok(n @ 1..) = rustix::io::read(fd, &mut buf) {
        total += n;
    }
    total
}

/// Fills the non-blocking pipe behind `fd` until it takes nothing more; returns how much.
fn fill(fd: impl AsFd) -> usize {
    let fd = fd.as_fd();
    let chunk = vec![7u8; 65536];
    let mut total = 0;
    loop {
        match rustix::io::write(fd, &chunk) {
            Ok(n) => total += n,
            Err(rustix::io::Errno::AGAIN) => return total,
            Err(e) => panic!("filling the pipe: {e}"),
        }
    }
}

/// A FIFO in a fresh directory, with a *keeper*: a non-blocking read-write std description of
/// it, so that opening either end never waits and a reader never sees end of file. The keeper
/// feeds readers and drains writers from outside the runtime.
struct Fifo {
    _dir: TempDir,
    path: PathBuf,
    keeper: Arc<std::fs::File>,
}

impl Fifo {
    fn new() -> Fifo {
        let dir = TempDir::new("pipe-fifo");
        let path = dir.path().join("fifo");
        let c_path = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let keeper = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .unwrap();
        Fifo {
            _dir: dir,
            path,
            keeper: Arc::new(keeper),
        }
    }

    /// The FIFO's reading end, opened through `zsync::fs`.
    fn reader(&self, io: &Io) -> File {
        File::open(io, &self.path).unwrap()
    }

    /// The FIFO's writing end, opened through `zsync::fs`.
    fn writer(&self, io: &Io) -> File {
        OpenOptions::new().write(true).open(io, &self.path).unwrap()
    }

    /// A second, non-blocking std writing end, to fill the FIFO without waiting.
    fn filler(&self) -> std::fs::File {
        std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&self.path)
            .unwrap()
    }
}

/// A `Builder` for a fresh runtime of the same model (and backend) as `io`.
fn same_model(io: &Io) -> zsync::Builder {
    let model = match io.model() {
        zsync::ModelKind::Blocking => zsync::Model::Blocking,
        zsync::ModelKind::Threaded => zsync::Model::Threaded,
        zsync::ModelKind::Green => {
            let backend = match io.backend_name() {
                "io_uring" => zsync::Backend::IoUring,
                _ => zsync::Backend::Epoll,
            };
            return zsync::Builder::new(zsync::Model::Green)
                .backend(backend)
                .worker_threads(2);
        }
        _ => zsync::Model::Custom(Arc::new(support::ThreadPerTask::default())),
    };
    zsync::Builder::new(model).worker_threads(2)
}

/// Something readable through `&`, shared with a task.
trait SharedRead: Send + Sync + 'static {
    fn read_some(&self, buf: &mut [u8]) -> io::Result<usize>;
    fn read_some_vectored(&self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize>;
}

impl<T: Send + Sync + 'static> SharedRead for T
where
    for<'a> &'a T: Read,
{
    fn read_some(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut r = self;
        r.read(buf)
    }
    fn read_some_vectored(&self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        let mut r = self;
        r.read_vectored(bufs)
    }
}

/// Something writable through `&`, shared with a task.
trait SharedWrite: Send + Sync + 'static {
    fn write_some(&self, buf: &[u8]) -> io::Result<usize>;
    fn write_some_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize>;
}

impl<T: Send + Sync + 'static> SharedWrite for T
where
    for<'a> &'a T: Write,
{
    fn write_some(&self, buf: &[u8]) -> io::Result<usize> {
        let mut w = self;
        w.write(buf)
    }
    fn write_some_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut w = self;
        w.write_vectored(bufs)
    }
}

// ---- scenarios, shared by every kind of descriptor ----------------------------------------------

/// A read of an empty pipe: canceled promptly while blocked (also right after it starts, and
/// in its vectored form), stopped by `io.timeout` and `timeout_until` with `TimedOut`; no byte
/// is lost to a canceled read. `feed` puts bytes into the pipe from outside the runtime.
fn blocked_read_scenarios<R: SharedRead>(
    io: &Io,
    what: &str,
    reader: Arc<R>,
    feed: impl Fn(&[u8]) + Send + Sync + Clone + 'static,
) {
    let rescue = {
        let feed = feed.clone();
        Rescuer::arm(move || feed(b"!"))
    };
    let r = reader.clone();
    if cancel_blocked(io, what, move |_| r.read_some(&mut [0; 8])) {
        let r = reader.clone();
        cancel_race(io, move |_| r.read_some(&mut [0; 8]));
        let r = reader.clone();
        cancel_blocked(io, what, move |_| {
            r.read_some_vectored(&mut [IoSliceMut::new(&mut [0; 8])])
        });
    }
    let t0 = crate::support::now();
    let e = io
        .timeout(DEADLINE, |_| reader.read_some(&mut [0; 8]))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TimedOut, "{what}: {e:?}");
    assert!(
        crate::support::elapsed(t0) >= DEADLINE && crate::support::elapsed(t0) < DEADLINE + PROMPT
    );
    let e = io
        .timeout_until(crate::support::now() + DEADLINE, |_| {
            reader.read_some_vectored(&mut [IoSliceMut::new(&mut [0; 8])])
        })
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TimedOut, "{what}: {e:?}");
    rescue.disarm(what);
    // No byte was lost to the canceled and timed-out reads.
    feed(b"z");
    let got = precanceled_then_shielded(io, || {
        let mut b = [0; 1];
        reader.read_some(&mut b).map(|n| b[..n].to_vec())
    });
    assert_eq!(got, b"z", "{what}");
}

/// A write to a full pipe: canceled promptly while blocked, stopped by a deadline with
/// `TimedOut`. `drain` empties the pipe from outside the runtime (the rescue).
fn blocked_write_scenarios<W: SharedWrite>(
    io: &Io,
    what: &str,
    writer: W,
    drain: impl Fn() + Send + Sync + 'static,
) {
    let writer = Arc::new(writer);
    let rescue = Rescuer::arm(drain);
    let w = writer.clone();
    if cancel_blocked(io, what, move |_| w.write_some(&[1; 1024])) {
        let w = writer.clone();
        cancel_race(io, move |_| w.write_some(&[1; 1024]));
        let w = writer.clone();
        cancel_blocked(io, what, move |_| {
            w.write_some_vectored(&[IoSlice::new(&[1; 1024])])
        });
    }
    let e = io
        .timeout(DEADLINE, |_| writer.write_some(&[1; 1024]))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TimedOut, "{what}: {e:?}");
    rescue.disarm(what);
    io.cancel_current();
    assert_canceled(writer.write_some(&[1; 1024]));
}

/// Dropping the handle of a task blocked in a read cancels it and returns once it has ended.
fn dropping_a_blocked_reader_returns<R: SharedRead>(
    io: &Io,
    what: &str,
    reader: R,
    feed: impl Fn(&[u8]) + Send + 'static,
) {
    let rescue = Rescuer::arm(move || feed(b"!"));
    let canceled = Arc::new(AtomicUsize::new(0));
    let c = canceled.clone();
    let started = Arc::new(AtomicBool::new(false));
    let s = started.clone();
    if let Some(task) = support::concurrent_or_refused(io, move |_| {
        s.store(true, Ordering::SeqCst);
        if reader
            .read_some(&mut [0; 8])
            .is_err_and(|e| zsync::is_canceled(&e))
        {
            c.fetch_add(1, Ordering::SeqCst);
        }
    }) {
        while !started.load(Ordering::SeqCst) {
            io.sleep(Duration::from_millis(1)).unwrap();
        }
        io.sleep(Duration::from_millis(20)).unwrap();
        drop(task);
        assert_eq!(
            canceled.load(Ordering::SeqCst),
            1,
            "{what}: drop returned without the task having been canceled"
        );
    }
    rescue.disarm(what);
}

/// `run` cancels a detached task blocked in a read at shutdown, and returns.
fn shutdown_with_a_detached_reader_finishes<R: SharedRead>(
    io: &Io,
    what: &str,
    make: impl FnOnce(&Io) -> (R, Feed) + Send,
) {
    let canceled = Arc::new(AtomicUsize::new(0));
    let c = canceled.clone();
    let mut rescue = None;
    let concurrent = same_model(io).run(|io| {
        let (reader, feed) = make(io);
        rescue = Some(Rescuer::arm(move || feed(b"!")));
        let started = Arc::new(AtomicBool::new(false));
        let s = started.clone();
        let task = io.concurrent(move |_| {
            s.store(true, Ordering::SeqCst);
            if reader
                .read_some(&mut [0; 8])
                .is_err_and(|e| zsync::is_canceled(&e))
            {
                c.fetch_add(1, Ordering::SeqCst);
            }
        });
        let Ok(task) = task else { return false };
        task.detach();
        while !started.load(Ordering::SeqCst) {
            io.sleep(Duration::from_millis(1)).unwrap();
        }
        io.sleep(Duration::from_millis(20)).unwrap();
        true
    });
    rescue.unwrap().disarm(what);
    assert_eq!(
        canceled.load(Ordering::SeqCst),
        usize::from(concurrent),
        "{what}: the detached reader was not canceled at shutdown"
    );
}

// ---- FIFOs through zsync::fs::File ------------------------------------------------------------

fn fifo_read_through_fs_file_is_canceled_and_times_out(io: &Io) {
    let fifo = Fifo::new();
    let reader = fifo.reader(io);
    let keeper = fifo.keeper.clone();
    blocked_read_scenarios(io, "FIFO read", Arc::new(reader), move |b| {
        feed(&*keeper, b);
    });
}

fn fifo_write_through_fs_file_is_canceled_and_times_out(io: &Io) {
    let fifo = Fifo::new();
    let writer = fifo.writer(io);
    assert!(fill(fifo.filler()) > 0);
    let keeper = fifo.keeper.clone();
    blocked_write_scenarios(io, "FIFO write", writer, move || {
        drain(&*keeper);
    });
}

fn dropping_a_task_blocked_on_a_fifo_read_returns(io: &Io) {
    let fifo = Fifo::new();
    let reader = fifo.reader(io);
    let keeper = fifo.keeper.clone();
    dropping_a_blocked_reader_returns(io, "FIFO read", reader, move |b| {
        feed(&*keeper, b);
    });
}

fn run_shutdown_with_a_detached_fifo_reader_finishes(io: &Io) {
    let fifo = Fifo::new();
    shutdown_with_a_detached_reader_finishes(io, "FIFO read", |io| {
        let keeper = fifo.keeper.clone();
        let feed: Feed = Box::new(move |b| {
            feed(&*keeper, b);
        });
        (fifo.reader(io), feed)
    });
}

/// A FIFO opened through `fs` reads what its writer wrote, then end of file once the writer
/// is gone; its descriptor is non-blocking, and `into_std` makes it blocking again. A regular
/// file keeps its blocking descriptor.
fn fifo_through_fs_file_round_trips_and_ends(io: &Io) {
    let fifo = Fifo::new();
    let mut reader = fifo.reader(io);
    let mut writer = fifo.writer(io);
    assert!(is_nonblocking(&reader) && is_nonblocking(&writer));
    // Close the keeper: `writer` is then the FIFO's only writer, and its close ends the stream.
    let Fifo {
        _dir: dir, keeper, ..
    } = fifo;
    drop(keeper);
    let data = pattern(200_000, 6);
    if io.supports_concurrency() {
        let task = io
            .concurrent(move |_| -> io::Result<Vec<u8>> {
                let mut v = Vec::new();
                reader.read_to_end(&mut v)?;
                Ok(v)
            })
            .unwrap();
        writer.write_all(&data).unwrap();
        drop(writer);
        assert!(task.join().unwrap().unwrap() == data, "the bytes changed");
    } else {
        // One task: what fits in the FIFO, then end of file.
        writer.write_all(&data[..1000]).unwrap();
        drop(writer);
        let mut v = Vec::new();
        reader.read_to_end(&mut v).unwrap();
        assert_eq!(v, &data[..1000]);
    }

    let regular = File::create(io, dir.path().join("regular")).unwrap();
    assert!(!is_nonblocking(&regular));
    let std_file = regular.into_std();
    assert!(!is_nonblocking(&std_file));
}

/// A std pipe wrapped with `File::from_std` waits like a FIFO opened through `fs`: reads are
/// canceled and stopped by deadlines; `into_std` hands back a blocking descriptor.
fn std_pipe_wrapped_as_fs_file_is_canceled_and_times_out(io: &Io) {
    let (r, w) = std::io::pipe().unwrap();
    let reader = File::from_std(io, std::fs::File::from(OwnedFd::from(r)));
    let w = Arc::new(w);
    rustix::io::ioctl_fionbio(&*w, true).unwrap();
    let feeder = w.clone();
    blocked_read_scenarios(io, "std pipe as File", Arc::new(reader), move |b| {
        feed(&*feeder, b);
    });
    let (r, _w) = std::io::pipe().unwrap();
    let wrapped = File::from_std(io, std::fs::File::from(OwnedFd::from(r)));
    assert!(is_nonblocking(&wrapped));
    assert!(!is_nonblocking(wrapped.into_std()));
    // A description that was non-blocking already stays so.
    let (r, _w) = std::io::pipe().unwrap();
    rustix::io::ioctl_fionbio(&r, true).unwrap();
    let wrapped = File::from_std(io, std::fs::File::from(OwnedFd::from(r)));
    assert!(is_nonblocking(wrapped.into_std()));
}

/// A read of an idle terminal through `fs` (the slave side of a pseudo-terminal): a driver
/// without in-kernel waiting for io_uring, so the ring returns `EAGAIN` and the read waits for
/// readiness instead.
fn terminal_read_through_fs_file_is_canceled_and_times_out(io: &Io) {
    // SAFETY: plain libc calls on a descriptor this function owns; `ptsname_r` writes at most
    // `buf.len()` bytes into `buf`.
    let (master, name) = unsafe {
        let fd = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        if fd < 0 {
            eprintln!("terminal read: no pseudo-terminals here; skipped");
            return;
        }
        let master = <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd);
        assert_eq!(libc::grantpt(fd), 0);
        assert_eq!(libc::unlockpt(fd), 0);
        let mut buf = [0 as libc::c_char; 128];
        assert_eq!(libc::ptsname_r(fd, buf.as_mut_ptr(), buf.len()), 0);
        let name = std::ffi::CStr::from_ptr(buf.as_ptr()).to_owned();
        (master, name)
    };
    let path = PathBuf::from(name.to_str().unwrap());
    let tty = match OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(io, &path)
    {
        Ok(tty) => tty,
        Err(e) => {
            eprintln!(
                "terminal read: cannot open {}: {e}; skipped",
                path.display()
            );
            return;
        }
    };
    // Raw mode on the slave: every byte is delivered at once, without echo.
    // SAFETY: `termios` is plain old data; `tcgetattr`/`tcsetattr` get a valid descriptor and a
    // valid pointer.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        assert_eq!(libc::tcgetattr(tty.as_fd().as_raw_fd(), &mut t), 0);
        libc::cfmakeraw(&mut t);
        assert_eq!(
            libc::tcsetattr(tty.as_fd().as_raw_fd(), libc::TCSANOW, &t),
            0
        );
    }
    rustix::io::ioctl_fionbio(&master, true).unwrap();
    let master = Arc::new(master);
    let tty = Arc::new(tty);
    blocked_read_scenarios(io, "terminal read", tty.clone(), move |b| {
        feed(&*master, b);
    });
    assert!(is_nonblocking(&*tty));
}

// ---- zsync::pipe -------------------------------------------------------------------------------

fn pipe_read_is_canceled_and_times_out(io: &Io) {
    let (r, w) = zsync::pipe(io).unwrap();
    let w = Arc::new(w);
    blocked_read_scenarios(io, "pipe read", Arc::new(r), move |b| {
        feed(&*w, b);
    });
}

fn pipe_write_to_a_full_pipe_is_canceled_and_times_out(io: &Io) {
    let (r, w) = zsync::pipe(io).unwrap();
    assert!(fill(&w) > 0);
    blocked_write_scenarios(io, "pipe write", w, move || {
        drain(&r);
    });
}

fn dropping_a_task_blocked_on_a_pipe_read_returns(io: &Io) {
    let (r, w) = zsync::pipe(io).unwrap();
    dropping_a_blocked_reader_returns(io, "pipe read", r, move |b| {
        feed(&w, b);
    });
}

fn run_shutdown_with_a_detached_pipe_reader_finishes(io: &Io) {
    shutdown_with_a_detached_reader_finishes(io, "pipe read", |io| {
        let (r, w) = zsync::pipe(io).unwrap();
        let feed: Feed = Box::new(move |b| {
            feed(&w, b);
        });
        (r, feed)
    });
}

/// Data written in many sizes (plain and vectored) comes out whole and in order, across tasks
/// where the model has them; the reader sees end of file once every writer (a clone too) is
/// gone.
fn pipe_round_trips_data_and_ends_when_the_writers_close(io: &Io) {
    let (mut r, w) = zsync::pipe(io).unwrap();
    let w2 = w.try_clone().unwrap();
    let data = pattern(1 << 20, 11);
    if !io.supports_concurrency() {
        // One task: what fits in the pipe, then end of file once both writers are gone.
        (&w).write_all(&data[..10_000]).unwrap();
        drop(w);
        let mut got = vec![0; 10_000];
        r.read_exact(&mut got).unwrap();
        assert_eq!(got, &data[..10_000]);
        let e = io.timeout(DEADLINE, |_| r.read(&mut got)).unwrap_err();
        assert_eq!(
            e.kind(),
            ErrorKind::TimedOut,
            "the clone keeps the pipe open"
        );
        drop(w2);
        assert_eq!(r.read(&mut got).unwrap(), 0);
        return;
    }
    let expect = data.clone();
    let writer = io
        .concurrent(move |_| -> io::Result<()> {
            let mut w = w;
            let (mut at, mut size) = (0, 1);
            while at < data.len() {
                let end = (at + size).min(data.len());
                let half = (at + end) / 2;
                at += w.write_vectored(&[
                    IoSlice::new(&data[at..half]),
                    IoSlice::new(&data[half..end]),
                ])?;
                size = size * 3 % 100_000 + 1;
            }
            w.flush()
        })
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 3000];
    while got.len() < expect.len() {
        let (a, b) = buf.split_at_mut(1000);
        let n = r
            .read_vectored(&mut [IoSliceMut::new(a), IoSliceMut::new(b)])
            .unwrap();
        assert!(n > 0, "end of file before the data");
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got == expect, "the bytes changed or came out of order");
    writer.join().unwrap().unwrap();
    // The clone still holds the pipe open: no end of file, the read waits.
    let e = io.timeout(DEADLINE, |_| r.read(&mut buf)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TimedOut);
    drop(w2);
    assert_eq!(r.read(&mut buf).unwrap(), 0);
}

/// A write when every reader is gone fails with `BrokenPipe` (SIGPIPE is ignored in Rust
/// programs), on every path.
fn pipe_write_without_reader_is_broken_pipe(io: &Io) {
    let (r, mut w) = zsync::pipe(io).unwrap();
    drop(r);
    assert_eq!(w.write(b"x").unwrap_err().kind(), ErrorKind::BrokenPipe);
    assert_eq!(
        w.write_vectored(&[IoSlice::new(b"x")]).unwrap_err().kind(),
        ErrorKind::BrokenPipe
    );
}

/// Conversions: to and from std's pipe ends (non-blocking while zsync's, blocking when
/// handed back), to `OwnedFd`, from a child's stdout; a descriptor that is not a pipe is refused.
fn pipe_converts_to_and_from_std(io: &Io) {
    let (r, w) = zsync::pipe(io).unwrap();
    assert!(is_nonblocking(&r) && is_nonblocking(&w));
    let std_r = r.into_std().unwrap();
    assert!(!is_nonblocking(&std_r));
    let r = PipeReader::from_std(io, std_r).unwrap();
    assert!(is_nonblocking(&r));
    let w = PipeWriter::from_std(io, w.into_std().unwrap()).unwrap();
    assert!(is_nonblocking(&w));
    (&w).write_all(b"abc").unwrap();
    let mut buf = [0; 3];
    (&r).read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"abc");
    let fd: OwnedFd = w.into();
    let w = PipeWriter::from_fd(io, fd).unwrap();
    drop(w);
    assert_eq!((&r).read(&mut buf).unwrap(), 0);
    let _ = format!("{r:?}");

    let dir = TempDir::new("pipe-not-a-pipe");
    let regular = std::fs::File::create(dir.path().join("f")).unwrap();
    let e = PipeReader::from_fd(io, regular).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);

    // A child writes into our pipe (blocking, as children expect), we read it cancelably.
    let (mut r, w) = zsync::pipe(io).unwrap();
    let mut child = std::process::Command::new("sh")
        .args(["-c", "printf 'from the child'"])
        .stdout(w)
        .spawn()
        .unwrap();
    let mut text = String::new();
    r.read_to_string(&mut text).unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(text, "from the child");
    let mut child = std::process::Command::new("sh")
        .args(["-c", "printf 'via stdout'"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = PipeReader::from_fd(io, child.stdout.take().unwrap()).unwrap();
    let mut text = String::new();
    out.read_to_string(&mut text).unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(text, "via stdout");
}

// ---- transfers ---------------------------------------------------------------------------------

/// `zsync::copy` and `send_file` with pipe ends: pipe → socket and socket → pipe through
/// `splice`, file → pipe through `sendfile`, each moving every byte in order; a copy from an
/// empty pipe is canceled like a read.
fn transfers_with_pipes_move_every_byte_and_are_canceled(io: &Io) {
    let data = pattern(300_000, 9);
    let dir = TempDir::new("pipe-transfer");
    let path = dir.path().join("src");
    std::fs::write(&path, &data).unwrap();
    let file = File::open(io, &path).unwrap();
    if !support::has_concurrency(io) {
        // One task: what fits in the pipe.
        let (r, w) = zsync::pipe(io).unwrap();
        assert_eq!(
            zsync::transfer::send_file(&w, &file, 0, 1000).unwrap(),
            1000
        );
        drop(w);
        let (a, mut b) = UnixStream::pair(io).unwrap();
        assert_eq!(zsync::copy(&r, &a).unwrap(), 1000);
        let mut got = vec![0; 1000];
        b.read_exact(&mut got).unwrap();
        assert_eq!(got, &data[..1000]);
        let (r, _w) = zsync::pipe(io).unwrap();
        let e = io.timeout(DEADLINE, |_| zsync::copy(&r, &a)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimedOut);
        return;
    }
    // file → pipe (sendfile) → socket (splice) → pipe (splice) → us.
    let (r1, w1) = zsync::pipe(io).unwrap();
    let (a, b) = UnixStream::pair(io).unwrap();
    let (mut r2, w2) = zsync::pipe(io).unwrap();
    let len = data.len() as u64;
    let sender = io
        .concurrent(move |_| {
            let n = zsync::transfer::send_file(&w1, &file, 0, len)?;
            drop(w1);
            Ok::<_, io::Error>(n)
        })
        .unwrap();
    let forward = io
        .concurrent(move |_| {
            let n = zsync::copy(&r1, &a)?;
            drop(a);
            Ok::<_, io::Error>(n)
        })
        .unwrap();
    let back = io
        .concurrent(move |_| {
            let n = zsync::copy(&b, &w2)?;
            drop(w2);
            Ok::<_, io::Error>(n)
        })
        .unwrap();
    let mut got = Vec::new();
    r2.read_to_end(&mut got).unwrap();
    assert_eq!(sender.join().unwrap().unwrap(), len);
    assert_eq!(forward.join().unwrap().unwrap(), len);
    assert_eq!(back.join().unwrap().unwrap(), len);
    assert!(got == data, "the bytes arrived changed or out of order");

    let (r, w) = zsync::pipe(io).unwrap();
    let (a, _b) = UnixStream::pair(io).unwrap();
    let rescue = Rescuer::arm(move || {
        feed(&w, b"!");
    });
    cancel_blocked(io, "copy from an empty pipe", move |_| zsync::copy(&r, &a));
    rescue.disarm("copy from an empty pipe");
}

conformance! {
    fifo_read_through_fs_file_is_canceled_and_times_out,
    fifo_write_through_fs_file_is_canceled_and_times_out,
    dropping_a_task_blocked_on_a_fifo_read_returns,
    run_shutdown_with_a_detached_fifo_reader_finishes,
    fifo_through_fs_file_round_trips_and_ends,
    std_pipe_wrapped_as_fs_file_is_canceled_and_times_out,
    terminal_read_through_fs_file_is_canceled_and_times_out,
    pipe_read_is_canceled_and_times_out,
    pipe_write_to_a_full_pipe_is_canceled_and_times_out,
    dropping_a_task_blocked_on_a_pipe_read_returns,
    run_shutdown_with_a_detached_pipe_reader_finishes,
    pipe_round_trips_data_and_ends_when_the_writers_close,
    pipe_write_without_reader_is_broken_pipe,
    pipe_converts_to_and_from_std,
    transfers_with_pipes_move_every_byte_and_are_canceled,
}
