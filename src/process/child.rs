//! [`Child`]: a running child process, its cancelable wait, and what happens to one nobody
//! waited for.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::process::{ExitStatus, Output};

use rustix::process::Pid;

use super::{output, reaper, ChildStderr, ChildStdin, ChildStdout};
use crate::park::{retry_on_fd, Interest};
use crate::signal::{self, SignalKind};
use crate::Io;

/// A child process started by [`Command::spawn`](super::Command::spawn). Tokio:
/// `tokio::process::Child`; std: [`std::process::Child`].
///
/// Its piped standard streams are zsync pipes (reads and writes are cancellation points).
/// [`wait`](Child::wait) is a cancellation point that parks only the waiting fiber on Green; a
/// canceled wait leaves the child running, to be waited for (or killed) later.
///
/// Dropping a `Child` does not wait for the process (as with std and Tokio): it keeps running,
/// or is killed first if [`kill_on_drop`](super::Command::kill_on_drop) was set. Either way its
/// exit status is collected for it, so it does not stay a zombie: at once if it has already
/// exited, else as soon as it exits, by a thread (`zsync-reaper`) that waits on the pidfds of
/// all such children and ends with the last one. Where pidfds are unavailable, it is collected
/// the next time this process spawns, waits for or drops a child through `zsync::process`, as
/// Tokio collects its "orphans" when its driver sees `SIGCHLD`.
///
/// ```
/// use std::io::{Read, Write};
/// use zsync::process::{Command, Stdio};
///
/// zsync::run(zsync::Model::Green, |io| -> std::io::Result<()> {
///     let mut child = Command::new("cat").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn(io)?;
///     child.stdin.take().unwrap().write_all(b"meow")?; // dropped: cat sees the end
///     let mut echoed = String::new();
///     child.stdout.take().unwrap().read_to_string(&mut echoed)?;
///     assert!(child.wait()?.success());
///     assert_eq!(echoed, "meow");
///     Ok(())
/// }).unwrap();
/// ```
#[must_use = "a child that is not waited for runs on unobserved"]
pub struct Child {
    io: Io,
    /// std's handle: spawns, kills, reaps (`try_wait` caches the status, so `kill` never
    /// signals a recycled pid). Its own stdio fields are always `None`.
    inner: std::process::Child,
    /// Readable once the child has exited; `None` where `pidfd_open` is unavailable (Linux
    /// before 5.3, a seccomp filter): then `wait` listens for `SIGCHLD` instead.
    pidfd: Option<OwnedFd>,
    kill_on_drop: bool,
    /// The child's standard input, if it was [`Stdio::piped`](super::Stdio::piped).
    /// [`wait`](Child::wait) closes it first, so a child reading to the end finishes.
    pub stdin: Option<ChildStdin>,
    /// The child's standard output, if it was [`Stdio::piped`](super::Stdio::piped).
    pub stdout: Option<ChildStdout>,
    /// The child's standard error, if it was [`Stdio::piped`](super::Stdio::piped).
    pub stderr: Option<ChildStderr>,
}

impl Child {
    /// Wraps a child std has just spawned: its piped streams become zsync pipes, and a pidfd is
    /// opened to wait on.
    pub(super) fn new(
        io: &Io,
        mut inner: std::process::Child,
        kill_on_drop: bool,
    ) -> io::Result<Child> {
        let (stdin, stdout, stderr) =
            (inner.stdin.take(), inner.stdout.take(), inner.stderr.take());
        let pidfd = Pid::from_raw(inner.id() as i32)
            .and_then(|pid| {
                rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()
            })
            .filter(|_| !force_sigchld());
        // Built before the conversions below, so that the child is killed or reaped by `Drop`
        // if one fails.
        let mut child = Child {
            io: io.clone(),
            inner,
            pidfd,
            kill_on_drop,
            stdin: None,
            stdout: None,
            stderr: None,
        };
        child.stdin = stdin.map(|s| ChildStdin::from_fd(io, s)).transpose()?;
        child.stdout = stdout.map(|s| ChildStdout::from_fd(io, s)).transpose()?;
        child.stderr = stderr.map(|s| ChildStderr::from_fd(io, s)).transpose()?;
        Ok(child)
    }

    /// The child's process id. It names this child only until it has been waited for.
    pub fn id(&self) -> u32 {
        self.inner.id()
    }

    /// Waits for the child to exit and returns its status; at once if it already has (also
    /// when it was waited for before). Closes [`stdin`](Child::stdin) first, as std does.
    ///
    /// Cancellation point; honours the task's deadline. A canceled or timed-out wait leaves the
    /// child running: wait for it again, or [`kill`](Child::kill) it. On Linux 5.3 and later the
    /// wait is for readability of a pidfd (the fiber parks on Green); elsewhere it listens for
    /// `SIGCHLD` (see [`zsync::signal`](crate::signal)).
    ///
    /// ```
    /// use std::time::Duration;
    /// use zsync::process::Command;
    ///
    /// zsync::run(zsync::Model::Threaded, |io| -> std::io::Result<()> {
    ///     let mut child = Command::new("sleep").arg("30").spawn(io)?;
    ///     let err = io.timeout(Duration::from_millis(20), |_| child.wait()).unwrap_err();
    ///     assert!(zsync::is_timed_out(&err)); // still running
    ///     child.kill()?;
    ///     assert!(!child.wait()?.success());
    ///     Ok(())
    /// }).unwrap();
    /// ```
    #[track_caller]
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Process,
            crate::diag::wait_point::Object::None,
        );
        drop(self.stdin.take());
        reaper::sweep();
        if let Some(status) = self.inner.try_wait()? {
            return Ok(status);
        }
        if let Some(pidfd) = &self.pidfd {
            let inner = &mut self.inner;
            return crate::op::other_or(&self.io, "process::wait", || {
                retry_on_fd(pidfd.as_fd(), Interest::Read, None, || {
                    inner
                        .try_wait()?
                        .ok_or_else(|| io::ErrorKind::WouldBlock.into())
                })
            });
        }
        // Listening starts before the check, so an exit between the two is a delivery.
        let mut exits = signal::signal(&self.io, SignalKind::child())?;
        loop {
            if let Some(status) = self.inner.try_wait()? {
                return Ok(status);
            }
            exits.recv()?;
            reaper::sweep();
        }
    }

    /// The exit status if the child has exited (collecting it), `None` if it is still running.
    /// Never waits.
    ///
    /// ```
    /// use zsync::process::Command;
    ///
    /// zsync::run(zsync::Model::Green, |io| -> std::io::Result<()> {
    ///     let mut child = Command::new("sleep").arg("30").spawn(io)?;
    ///     assert!(child.try_wait()?.is_none());
    ///     child.kill()?;
    ///     let status = child.wait()?;
    ///     assert_eq!(child.try_wait()?, Some(status)); // kept
    ///     Ok(())
    /// }).unwrap();
    /// ```
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        reaper::sweep();
        self.inner.try_wait()
    }

    /// Sends `SIGKILL` to the child (std's [`kill`](std::process::Child::kill): it does not
    /// wait; Tokio's `kill` also waits, which is `kill` then [`wait`](Child::wait) here).
    /// `Ok(())` if the child has already exited and was waited for.
    pub fn kill(&mut self) -> io::Result<()> {
        self.inner.kill()
    }

    /// Closes stdin, reads stdout and stderr to their ends at once (a child filling one pipe
    /// while the other is read cannot deadlock), then waits for the child. Streams that were not
    /// piped give empty outputs.
    ///
    /// Cancellation point; honours the task's deadline. Canceled, the child is dropped (so
    /// [`kill_on_drop`](super::Command::kill_on_drop) applies).
    ///
    /// ```
    /// use zsync::process::{Command, Stdio};
    ///
    /// zsync::run(zsync::Model::Blocking, |io| -> std::io::Result<()> {
    ///     let child = Command::new("sh")
    ///         .args(["-c", "echo out; echo err >&2"])
    ///         .stdout(Stdio::piped())
    ///         .stderr(Stdio::piped())
    ///         .spawn(io)?;
    ///     let output = child.wait_with_output()?;
    ///     assert_eq!((&output.stdout[..], &output.stderr[..]), (&b"out\n"[..], &b"err\n"[..]));
    ///     Ok(())
    /// }).unwrap();
    /// ```
    #[track_caller]
    pub fn wait_with_output(mut self) -> io::Result<Output> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Process,
            crate::diag::wait_point::Object::None,
        );
        drop(self.stdin.take());
        let (stdout, stderr) = output::read_both(self.stdout.take(), self.stderr.take())?;
        let status = self.wait()?;
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }

    /// The `Io` this child was spawned with.
    pub fn io(&self) -> &Io {
        &self.io
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.kill_on_drop {
            let _ = self.inner.kill();
        }
        // Collected now if it has exited, else by the reaper when it does (a killed child may
        // take a moment).
        if let Ok(None) = self.inner.try_wait() {
            reaper::adopt(self.inner.id() as i32, self.pidfd.take());
        }
        reaper::sweep();
    }
}

impl fmt::Debug for Child {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Child")
            .field("pid", &self.inner.id())
            .field("stdin", &self.stdin)
            .field("stdout", &self.stdout)
            .field("stderr", &self.stderr)
            .field("model", &self.io.model_name())
            .finish()
    }
}

/// Tests force the `SIGCHLD` fallback with this, to cover it on a kernel that has pidfds.
static FORCE_SIGCHLD: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn force_sigchld() -> bool {
    FORCE_SIGCHLD.load(std::sync::atomic::Ordering::Relaxed)
}

/// Makes later spawns wait through `SIGCHLD` as if `pidfd_open` were unavailable (`true`), or
/// restores the default. For tests of the fallback only.
#[doc(hidden)]
pub fn force_sigchld_fallback(on: bool) {
    FORCE_SIGCHLD.store(on, std::sync::atomic::Ordering::Relaxed);
}
