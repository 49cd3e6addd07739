//! Child processes: [`Command`] and [`Child`], std's [`std::process`] with waits that are
//! cancellation points and piped streams that are zsync pipes. Tokio: `tokio::process`.
//!
//! ```
//! use zsync::process::Command;
//!
//! fn git_head(io: &zsync::Io) -> std::io::Result<String> {
//!     let out = Command::new("echo").arg("4f2a1c9").output(io)?;
//!     Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
//! }
//!
//! for model in [zsync::Model::Blocking, zsync::Model::Threaded, zsync::Model::Green] {
//!     assert_eq!(zsync::run(model, git_head).unwrap(), "4f2a1c9");
//! }
//! ```
//!
//! - A [`Command`] is built without an `Io`, like std's; [`spawn`](Command::spawn),
//!   [`output`](Command::output) and [`status`](Command::status) take one (as
//!   [`TcpStream::connect`](crate::net::TcpStream::connect) does) and the [`Child`] remembers it.
//! - [`Child::wait`] waits for readability of a pidfd (`pidfd_open`, Linux 5.3+) with the same
//!   descriptor wait sockets use: the fiber parks on Green, the wait is canceled by
//!   `Task::cancel` and ends at the task's deadline, and the child keeps running for a later
//!   wait. Where pidfds are unavailable it listens for `SIGCHLD`
//!   ([`zsync::signal`](crate::signal)), which is just as cancelable.
//! - Piped streams are [`PipeReader`](crate::PipeReader) and [`PipeWriter`](crate::PipeWriter)
//!   (non-blocking, with cancelable waits; [`ChildStdout`] and friends are those types, so
//!   async code reads and writes them too: `read_async`/`write_async`, `AsyncRead`/`AsyncWrite`);
//!   [`Command::output`] reads stdout and stderr at once, so a child that fills one pipe while
//!   the other is read does not deadlock, even on the Blocking model.
//! - Spawning itself is std's (`posix_spawn` or `fork`+`exec`): it blocks the caller until the
//!   child has started or failed to (so `NotFound` is reported by `spawn`), as Tokio's does.
//! - A dropped `Child` is killed if [`kill_on_drop`](Command::kill_on_drop) says so, and its
//!   exit status is collected once it has exited, so it does not stay a zombie (see [`Child`]
//!   for when).

mod child;
mod output;
mod reaper;

use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::path::Path;
use std::process::ExitStatus;

pub use child::{force_sigchld_fallback, Child};
pub use std::process::{Output, Stdio};

use crate::Io;

/// A child's standard input when piped: a zsync [`PipeWriter`](crate::PipeWriter).
pub type ChildStdin = crate::PipeWriter;
/// A child's standard output when piped: a zsync [`PipeReader`](crate::PipeReader).
pub type ChildStdout = crate::PipeReader;
/// A child's standard error when piped: a zsync [`PipeReader`](crate::PipeReader).
pub type ChildStderr = crate::PipeReader;

/// A process builder: std's [`std::process::Command`] with [`spawn`](Command::spawn),
/// [`output`](Command::output) and [`status`](Command::status) that take an [`Io`] and wait
/// the zsync way. Tokio: `tokio::process::Command`.
///
/// The builder methods are std's and mean the same. Anything std's builder can do that is not
/// mirrored here (`uid`, `process_group`, `pre_exec`…) is reached by building a
/// [`std::process::Command`] and converting it with `Command::from`.
///
/// ```
/// use zsync::process::{Command, Stdio};
///
/// zsync::run(zsync::Model::Threaded, |io| -> std::io::Result<()> {
///     let status = Command::new("sh")
///         .args(["-c", "test \"$GREETING\" = hello && exit 3"])
///         .env("GREETING", "hello")
///         .stdout(Stdio::null())
///         .status(io)?;
///     assert_eq!(status.code(), Some(3));
///     Ok(())
/// }).unwrap();
/// ```
#[must_use = "a command does nothing until spawned"]
pub struct Command {
    std: std::process::Command,
    kill_on_drop: bool,
    /// Whether stdin, stdout, stderr were configured: [`output`](Command::output) pipes the
    /// others (and gives stdin `/dev/null`), as std's does.
    configured: [bool; 3],
}

impl Command {
    /// A command that runs `program` (looked up in `PATH` if it has no `/`), with no arguments,
    /// the parent's environment and working directory, and inherited standard streams
    /// ([`output`](Command::output) pipes stdout and stderr instead).
    pub fn new(program: impl AsRef<OsStr>) -> Command {
        Command::from(std::process::Command::new(program))
    }

    /// Adds an argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Command {
        self.std.arg(arg);
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.std.args(args);
        self
    }

    /// Sets an environment variable for the child.
    pub fn env(&mut self, key: impl AsRef<OsStr>, val: impl AsRef<OsStr>) -> &mut Command {
        self.std.env(key, val);
        self
    }

    /// Sets environment variables for the child.
    pub fn envs<I, K, V>(&mut self, vars: I) -> &mut Command
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        self.std.envs(vars);
        self
    }

    /// Removes an environment variable from the child's environment.
    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut Command {
        self.std.env_remove(key);
        self
    }

    /// Starts the child with an empty environment (plus what [`env`](Command::env) adds).
    pub fn env_clear(&mut self) -> &mut Command {
        self.std.env_clear();
        self
    }

    /// Sets the child's working directory.
    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Command {
        self.std.current_dir(dir);
        self
    }

    /// Configures the child's standard input: [`Stdio::piped`] (then [`Child::stdin`] is a
    /// zsync pipe), [`Stdio::null`], [`Stdio::inherit`], or an end of a zsync pipe or a file.
    pub fn stdin(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.std.stdin(cfg);
        self.configured[0] = true;
        self
    }

    /// Configures the child's standard output (see [`stdin`](Command::stdin)).
    pub fn stdout(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.std.stdout(cfg);
        self.configured[1] = true;
        self
    }

    /// Configures the child's standard error (see [`stdin`](Command::stdin)).
    pub fn stderr(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.std.stderr(cfg);
        self.configured[2] = true;
        self
    }

    /// Whether a [`Child`] dropped before it was waited for is killed (`SIGKILL`) first.
    /// Default `false`: it keeps running (and is reaped when it exits). Tokio: `kill_on_drop`.
    ///
    /// ```
    /// use zsync::process::Command;
    ///
    /// zsync::run(zsync::Model::Green, |io| -> std::io::Result<()> {
    ///     let child = Command::new("sleep").arg("30").kill_on_drop(true).spawn(io)?;
    ///     drop(child); // `sleep` is killed
    ///     Ok(())
    /// }).unwrap();
    /// ```
    pub fn kill_on_drop(&mut self, kill: bool) -> &mut Command {
        self.kill_on_drop = kill;
        self
    }

    /// The program this command runs.
    pub fn get_program(&self) -> &OsStr {
        self.std.get_program()
    }

    /// std's builder, to read what is configured.
    pub fn as_std(&self) -> &std::process::Command {
        &self.std
    }

    /// Starts the child. Its piped streams are in [`Child::stdin`], [`Child::stdout`] and
    /// [`Child::stderr`].
    ///
    /// Cancellation point (checked before the child is started). Errors: std's, e.g.
    /// `NotFound` for a program that does not exist.
    ///
    /// ```
    /// use zsync::process::Command;
    ///
    /// zsync::run(zsync::Model::Blocking, |io| {
    ///     let err = Command::new("/no/such/program").spawn(io).unwrap_err();
    ///     assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    /// });
    /// ```
    pub fn spawn(&mut self, io: &Io) -> io::Result<Child> {
        crate::context::check()?;
        reaper::sweep();
        let std = &mut self.std;
        let inner = crate::op::other_or(io, "process::spawn", || std.spawn())?;
        Child::new(io, inner, self.kill_on_drop)
    }

    /// Runs the child to its end and returns its exit status and everything it wrote to stdout
    /// and stderr (read at once: no deadlock however much it writes to either). Unless
    /// configured otherwise, stdout and stderr are piped and stdin is `/dev/null`, as with std.
    ///
    /// Cancellation point; honours the task's deadline. Canceled, the child is dropped
    /// ([`kill_on_drop`](Command::kill_on_drop) decides whether it is killed).
    ///
    /// ```
    /// use zsync::process::Command;
    ///
    /// zsync::run(zsync::Model::Green, |io| -> std::io::Result<()> {
    ///     let out = Command::new("sh").args(["-c", "echo hi; exit 3"]).output(io)?;
    ///     assert_eq!(out.status.code(), Some(3));
    ///     assert_eq!(out.stdout, b"hi\n");
    ///     Ok(())
    /// }).unwrap();
    /// ```
    #[track_caller]
    pub fn output(&mut self, io: &Io) -> io::Result<Output> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Process,
            crate::diag::wait_point::Object::None,
        );
        let defaults: [fn() -> Stdio; 3] = [Stdio::null, Stdio::piped, Stdio::piped];
        self.with_defaults(defaults, |cmd| cmd.spawn(io))?
            .wait_with_output()
    }

    /// Runs the child to its end and returns its exit status. Standard streams are inherited
    /// unless configured otherwise.
    ///
    /// Cancellation point; honours the task's deadline. Canceled, the child is dropped
    /// ([`kill_on_drop`](Command::kill_on_drop) decides whether it is killed).
    ///
    /// ```
    /// zsync::run(zsync::Model::Blocking, |io| -> std::io::Result<()> {
    ///     let status = zsync::process::Command::new("false").status(io)?;
    ///     assert_eq!(status.code(), Some(1));
    ///     Ok(())
    /// }).unwrap();
    /// ```
    #[track_caller]
    pub fn status(&mut self, io: &Io) -> io::Result<ExitStatus> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Process,
            crate::diag::wait_point::Object::None,
        );
        self.spawn(io)?.wait()
    }

    /// Runs `f` with the streams that were not configured set to `defaults`; afterwards they
    /// are inherited again, which is what an unconfigured stream means to `spawn`.
    fn with_defaults<T>(
        &mut self,
        defaults: [fn() -> Stdio; 3],
        f: impl FnOnce(&mut Command) -> T,
    ) -> T {
        let set = |std: &mut std::process::Command, i: usize, s: Stdio| match i {
            0 => drop(std.stdin(s)),
            1 => drop(std.stdout(s)),
            _ => drop(std.stderr(s)),
        };
        for (i, default) in defaults.iter().enumerate() {
            if !self.configured[i] {
                set(&mut self.std, i, default());
            }
        }
        let result = f(self);
        for i in 0..3 {
            if !self.configured[i] {
                set(&mut self.std, i, Stdio::inherit());
            }
        }
        result
    }
}

/// Wraps std's builder, with everything it configured; its standard streams count as not
/// configured (std cannot tell), so [`output`](Command::output) pipes stdout and stderr.
impl From<std::process::Command> for Command {
    fn from(std: std::process::Command) -> Command {
        Command {
            std,
            kill_on_drop: false,
            configured: [false; 3],
        }
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Command")
            .field("std", &self.std)
            .field("kill_on_drop", &self.kill_on_drop)
            .finish()
    }
}
