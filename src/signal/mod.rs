//! Unix signals as events: [`ctrl_c`] for a graceful shutdown, [`Signals`] for any set of
//! signals (`SIGTERM`, `SIGHUP`, `SIGUSR1`…). Tokio: `tokio::signal`.
//!
//! A listener sees every *delivery* of its signals that happens after it was created: each
//! [`recv`](Signals::recv) returns one, and deliveries that arrive before the listener looks are
//! coalesced into one (the kernel coalesces pending signals the same way). Every listener of a
//! signal sees each delivery: two `Signals` for `SIGTERM` both wake. Waiting is a cancellation
//! point, honours the task's deadline, and parks only the waiting fiber on Green; the
//! [`SignalEvent`] and [`CtrlCEvent`] forms let `select!` wait for a signal and something else at
//! once.
//!
//! ```
//! use std::time::Duration;
//! use zsync::select::sleep;
//! use zsync::signal::{SignalKind, Signals};
//!
//! zsync::run(zsync::Model::Threaded, |io| -> std::io::Result<()> {
//!     let mut shutdown = Signals::new(io, &[SignalKind::terminate(), SignalKind::user_defined1()])?;
//!     // Somebody asks this process to stop (here: itself).
//!     // SAFETY: kill(2) has no memory-safety preconditions.
//!     unsafe { libc::kill(libc::getpid(), libc::SIGUSR1) };
//!     let why = zsync::select!(io;
//!         kind = shutdown.recv_event() => Some(kind),
//!         _ = sleep(Duration::from_secs(60)) => None,
//!     )?;
//!     assert_eq!(why, Some(SignalKind::user_defined1()));
//!     Ok(())
//! }).unwrap();
//! ```
//!
//! # How it works, and what it changes in the process
//!
//! A signal handler (installed with `signal-hook-registry`, as Tokio does; it chains to a
//! handler installed before it) records the signal and writes to an eventfd; a dispatcher thread
//! (`zsync-signal`, alive while any listener exists) turns that into a delivery and wakes the
//! listeners. `signalfd` is not used: it only sees a signal that is blocked in *every* thread,
//! and threads started before the listener (by a test harness, a library, the user) keep it
//! unblocked, so the kernel would deliver it to one of them instead — with the default action,
//! which for `SIGTERM` or `SIGUSR1` ends the process.
//!
//! As in Tokio, once zsync has listened for a signal its default disposition is not restored:
//! when no listener is left, a `SIGINT` or `SIGTERM` is ignored rather than ending the process.
//! Signals the kernel reserves or that report faults (`SIGKILL`, `SIGSTOP`, `SIGILL`, `SIGFPE`,
//! `SIGSEGV`) cannot be listened for.

mod driver;

use std::fmt;
use std::io;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use crate::wait::{block_until, Waiter};
use crate::{Event, Io};

use driver::{Registration, NSIG, WAITERS};

/// A kind of signal: one of the named constructors, or any signal number with
/// [`from_raw`](SignalKind::from_raw). Tokio: `tokio::signal::unix::SignalKind`.
///
/// ```
/// use zsync::signal::SignalKind;
/// assert_eq!(SignalKind::terminate().as_raw(), libc::SIGTERM);
/// assert_eq!(SignalKind::from_raw(libc::SIGHUP), SignalKind::hangup());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SignalKind(libc::c_int);

impl SignalKind {
    /// The signal numbered `signum` (`libc::SIGWINCH`, a real-time signal `SIGRTMIN() + n`…).
    /// Whether it can be listened for is checked by [`Signals::new`].
    pub const fn from_raw(signum: libc::c_int) -> SignalKind {
        SignalKind(signum)
    }

    /// The signal's number.
    pub const fn as_raw(self) -> libc::c_int {
        self.0
    }

    /// `SIGINT`: Ctrl-C in a terminal.
    pub const fn interrupt() -> SignalKind {
        SignalKind(libc::SIGINT)
    }

    /// `SIGTERM`: the polite request to stop (what `kill` and service managers send).
    pub const fn terminate() -> SignalKind {
        SignalKind(libc::SIGTERM)
    }

    /// `SIGHUP`: the terminal went away; daemons take it as "reload the configuration".
    pub const fn hangup() -> SignalKind {
        SignalKind(libc::SIGHUP)
    }

    /// `SIGQUIT`: Ctrl-\ in a terminal.
    pub const fn quit() -> SignalKind {
        SignalKind(libc::SIGQUIT)
    }

    /// `SIGUSR1`: meaning defined by the application.
    pub const fn user_defined1() -> SignalKind {
        SignalKind(libc::SIGUSR1)
    }

    /// `SIGUSR2`: meaning defined by the application.
    pub const fn user_defined2() -> SignalKind {
        SignalKind(libc::SIGUSR2)
    }

    /// `SIGALRM`: a timer set with `alarm(2)` or `setitimer(2)` expired.
    pub const fn alarm() -> SignalKind {
        SignalKind(libc::SIGALRM)
    }

    /// `SIGCHLD`: a child process exited, stopped or continued.
    pub const fn child() -> SignalKind {
        SignalKind(libc::SIGCHLD)
    }

    /// `SIGPIPE`: a write to a pipe or socket nobody reads any more.
    pub const fn pipe() -> SignalKind {
        SignalKind(libc::SIGPIPE)
    }

    /// `SIGWINCH`: the terminal was resized.
    pub const fn window_change() -> SignalKind {
        SignalKind(libc::SIGWINCH)
    }

    /// `SIGIO`: a descriptor set up for signal-driven I/O is ready.
    pub const fn io() -> SignalKind {
        SignalKind(libc::SIGIO)
    }

    /// The signal's number as an index of the driver's tables, if it can be listened for.
    fn index(self) -> io::Result<usize> {
        let n = self.0;
        if n <= 0 || n as usize >= NSIG || signal_hook_registry::FORBIDDEN.contains(&n) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("signal {self:?} cannot be listened for"),
            ));
        }
        Ok(n as usize)
    }
}

impl fmt::Debug for SignalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.0 {
            libc::SIGINT => "SIGINT",
            libc::SIGTERM => "SIGTERM",
            libc::SIGHUP => "SIGHUP",
            libc::SIGQUIT => "SIGQUIT",
            libc::SIGUSR1 => "SIGUSR1",
            libc::SIGUSR2 => "SIGUSR2",
            libc::SIGALRM => "SIGALRM",
            libc::SIGCHLD => "SIGCHLD",
            libc::SIGPIPE => "SIGPIPE",
            libc::SIGWINCH => "SIGWINCH",
            libc::SIGIO => "SIGIO",
            n => return write!(f, "SignalKind({n})"),
        };
        f.write_str(name)
    }
}

/// A listener for one or more kinds of signal. Tokio: `tokio::signal::unix::Signal`.
///
/// It sees the deliveries that happen after it was created, each kind's coalesced into one
/// until the listener takes it (see the [module docs](self)). Listening stops when it drops.
///
/// ```
/// use zsync::signal::{SignalKind, Signals};
///
/// zsync::run(zsync::Model::Green, |io| -> std::io::Result<()> {
///     let mut usr2 = Signals::new(io, &[SignalKind::user_defined2()])?;
///     let mut also = zsync::signal::signal(io, SignalKind::user_defined2())?;
///     // SAFETY: kill(2) has no memory-safety preconditions.
///     unsafe { libc::kill(libc::getpid(), libc::SIGUSR2) };
///     assert_eq!(usr2.recv()?, SignalKind::user_defined2());
///     assert_eq!(also.recv()?, SignalKind::user_defined2()); // every listener sees it
///     Ok(())
/// }).unwrap();
/// ```
#[must_use = "a listener sees only the signals delivered while it exists"]
pub struct Signals {
    io: Io,
    /// The signals listened for, without duplicates, and the deliveries seen of each.
    kinds: Vec<(SignalKind, u64)>,
    /// Where the next search for a delivery starts, so that no kind starves the others.
    next: usize,
    _registration: Registration,
}

/// A listener for one kind of signal: `Signals::new(io, &[kind])`.
///
/// ```
/// zsync::run(zsync::Model::Blocking, |io| -> std::io::Result<()> {
///     let mut hup = zsync::signal::signal(io, zsync::signal::SignalKind::hangup())?;
///     assert_eq!(hup.try_recv(), None); // nothing delivered yet
///     Ok(())
/// }).unwrap();
/// ```
pub fn signal(io: &Io, kind: SignalKind) -> io::Result<Signals> {
    Signals::new(io, &[kind])
}

impl Signals {
    /// Starts listening for `kinds`. The first listener of a signal in the process installs
    /// zsync's handler for it (see the [module docs](self) on what that changes).
    ///
    /// Errors: `InvalidInput` for a signal that cannot be listened for (`SIGKILL`, `SIGSTOP`,
    /// `SIGILL`, `SIGFPE`, `SIGSEGV`, a number out of range) or an empty `kinds`; the error of
    /// `sigaction` or of starting the dispatcher thread otherwise.
    pub fn new(io: &Io, kinds: &[SignalKind]) -> io::Result<Signals> {
        let mut sigs = Vec::with_capacity(kinds.len());
        for k in kinds {
            let i = k.index()?;
            if !sigs.contains(&i) {
                sigs.push(i);
            }
        }
        if sigs.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no signal to listen for",
            ));
        }
        let (registration, seen) = Registration::new(&sigs)?;
        Ok(Signals {
            io: io.clone(),
            kinds: sigs
                .iter()
                .zip(seen)
                .map(|(&s, g)| (SignalKind(s as libc::c_int), g))
                .collect(),
            next: 0,
            _registration: registration,
        })
    }

    /// Waits for the next delivery of one of the signals and returns its kind. Returns at once
    /// if one arrived since the last `recv`.
    ///
    /// Cancellation point; honours the task's deadline (`TimedOut`).
    ///
    /// ```
    /// use zsync::signal::{signal, SignalKind};
    ///
    /// zsync::run(zsync::Model::Blocking, |io| -> std::io::Result<()> {
    ///     let mut winch = signal(io, SignalKind::window_change())?;
    ///     for _ in 0..3 {
    ///         // SAFETY: kill(2) has no memory-safety preconditions.
    ///         unsafe { libc::kill(libc::getpid(), libc::SIGWINCH) };
    ///     }
    ///     winch.recv()?; // one, two or three deliveries: those not yet seen coalesce
    ///     Ok(())
    /// }).unwrap();
    /// ```
    #[track_caller]
    pub fn recv(&mut self) -> io::Result<SignalKind> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Signal,
            crate::diag::wait_point::Object::None,
        );
        let mut ev = self.recv_event();
        block_until(None, |w| ev.poll_event(w))
    }

    /// Like [`recv`](Signals::recv), giving up with `TimedOut` at `deadline`.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use zsync::signal::{signal, SignalKind};
    ///
    /// zsync::run(zsync::Model::Threaded, |io| -> std::io::Result<()> {
    ///     let mut hup = signal(io, SignalKind::hangup())?;
    ///     let err = hup.recv_until(Instant::now() + Duration::from_millis(10)).unwrap_err();
    ///     assert!(zsync::is_timed_out(&err)); // nobody sent SIGHUP
    ///     Ok(())
    /// }).unwrap();
    /// ```
    #[track_caller]
    pub fn recv_until(&mut self, deadline: Instant) -> io::Result<SignalKind> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Signal,
            crate::diag::wait_point::Object::None,
        );
        let mut ev = self.recv_event();
        block_until(Some(deadline), |w| ev.poll_event(w))
    }

    /// Like [`recv`](Signals::recv), giving up with `TimedOut` after `timeout`.
    #[track_caller]
    pub fn recv_timeout(&mut self, timeout: Duration) -> io::Result<SignalKind> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Signal,
            crate::diag::wait_point::Object::None,
        );
        let mut ev = self.recv_event();
        block_until(crate::clock::now().checked_add(timeout), |w| {
            ev.poll_event(w)
        })
    }

    /// A delivery that arrived since the last `recv`, if any, without waiting.
    pub fn try_recv(&mut self) -> Option<SignalKind> {
        let n = self.kinds.len();
        for i in 0..n {
            let at = (self.next + i) % n;
            let (kind, seen) = &mut self.kinds[at];
            let now = driver::generation(kind.0 as usize);
            if now != *seen {
                *seen = now;
                self.next = (at + 1) % n;
                return Some(*kind);
            }
        }
        None
    }

    /// The [`Event`] form of [`recv`](Signals::recv), for `select!`.
    pub fn recv_event(&mut self) -> SignalEvent<'_> {
        SignalEvent {
            signals: self,
            waiter: WAITERS.waiter(),
        }
    }

    /// The signals this listener listens for.
    pub fn kinds(&self) -> impl Iterator<Item = SignalKind> + '_ {
        self.kinds.iter().map(|&(k, _)| k)
    }

    /// The `Io` this listener was created with.
    pub fn io(&self) -> &Io {
        &self.io
    }

    fn poll_recv(&mut self, waiter: &mut Waiter<'static>, waker: &Waker) -> Poll<SignalKind> {
        if let Some(kind) = self.try_recv() {
            waiter.used();
            return Poll::Ready(kind);
        }
        waiter.register(waker);
        match self.try_recv() {
            Some(kind) => {
                waiter.used();
                Poll::Ready(kind)
            }
            None => Poll::Pending,
        }
    }
}

impl fmt::Debug for Signals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signals")
            .field("kinds", &self.kinds().collect::<Vec<_>>())
            .field("model", &self.io.model_name())
            .finish()
    }
}

/// The [`Event`] form of [`Signals::recv`]: completes with the kind of the next delivery.
///
/// Also a [`Future`](std::future::Future) with the same output, for async code:
///
/// ```
/// use zsync::signal::{signal, SignalKind};
///
/// zsync::run(zsync::Model::Blocking, |io| -> std::io::Result<()> {
///     let mut usr1 = signal(io, SignalKind::user_defined1())?;
///     // SAFETY: kill(2) has no memory-safety preconditions.
///     unsafe { libc::kill(libc::getpid(), libc::SIGUSR1) };
///     let kind = futures::executor::block_on(usr1.recv_event());
///     assert_eq!(kind, SignalKind::user_defined1());
///     Ok(())
/// }).unwrap();
/// ```
#[must_use = "an event does nothing until waited for"]
pub struct SignalEvent<'a> {
    signals: &'a mut Signals,
    waiter: Waiter<'static>,
}

impl Event for SignalEvent<'_> {
    type Output = SignalKind;

    fn poll_event(&mut self, waker: &Waker) -> Poll<SignalKind> {
        self.signals.poll_recv(&mut self.waiter, waker)
    }
}

crate::event::event_future!([] SignalEvent<'_>, [] CtrlCEvent);

impl fmt::Debug for SignalEvent<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignalEvent")
            .field("signals", &self.signals)
            .finish()
    }
}

/// Waits for Ctrl-C (`SIGINT`). Tokio: `tokio::signal::ctrl_c`.
///
/// Listens from the call on: a Ctrl-C pressed before it is not seen. Cancellation point;
/// honours the task's deadline, so `io.timeout(d, |_| ctrl_c(io))` waits at most `d`. After the
/// first call, Ctrl-C no longer ends the process by itself (see the [module docs](self)): keep
/// listening, or exit when it arrives.
///
/// ```no_run
/// zsync::run(zsync::Model::Green, |io| -> std::io::Result<()> {
///     let server = io.concurrent(|io| serve(io)).unwrap();
///     zsync::signal::ctrl_c(io)?;
///     eprintln!("shutting down");
///     server.cancel().unwrap(); // its blocked accept returns Canceled
///     Ok(())
/// }).unwrap();
/// # fn serve(_: &zsync::Io) {}
/// ```
#[track_caller]
pub fn ctrl_c(io: &Io) -> io::Result<()> {
    let _wait = crate::diag::wait_point::note(
        crate::diag::wait_point::WaitOp::Signal,
        crate::diag::wait_point::Object::None,
    );
    signal(io, SignalKind::interrupt())?.recv().map(drop)
}

/// The [`Event`] form of [`ctrl_c`]: listens from this call on, completes at the next Ctrl-C.
///
/// ```no_run
/// use zsync::net::TcpListener;
///
/// zsync::run(zsync::Model::Threaded, |io| -> std::io::Result<()> {
///     let listener = TcpListener::bind(io, "127.0.0.1:0")?;
///     let mut accepting = io.spawn(move |_| loop {
///         let (_conn, _) = listener.accept()?;
///     });
///     let stop = zsync::signal::ctrl_c_event(io)?;
///     let result: std::io::Result<()> = zsync::select!(io;
///         r = accepting.join_event() => r.unwrap(),
///         () = stop => Ok(()), // `accepting` is canceled when dropped
///     )?;
///     result
/// }).unwrap();
/// ```
pub fn ctrl_c_event(io: &Io) -> io::Result<CtrlCEvent> {
    Ok(CtrlCEvent {
        signals: signal(io, SignalKind::interrupt())?,
        waiter: WAITERS.waiter(),
    })
}

/// The [`Event`] form of [`ctrl_c`], from [`ctrl_c_event`]: owns its listener.
///
/// Also a [`Future`](std::future::Future), for async code:
///
/// ```no_run
/// zsync::run(zsync::Model::Blocking, |io| -> std::io::Result<()> {
///     let ctrl_c = zsync::signal::ctrl_c_event(io)?;
///     futures::executor::block_on(ctrl_c); // until Ctrl-C
///     Ok(())
/// }).unwrap();
/// ```
#[must_use = "an event does nothing until waited for"]
pub struct CtrlCEvent {
    signals: Signals,
    waiter: Waiter<'static>,
}

impl Event for CtrlCEvent {
    type Output = ();

    fn poll_event(&mut self, waker: &Waker) -> Poll<()> {
        self.signals.poll_recv(&mut self.waiter, waker).map(drop)
    }
}

impl fmt::Debug for CtrlCEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CtrlCEvent")
            .field("model", &self.signals.io.model_name())
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// Deliveries the listener has not looked at yet coalesce into one; a listener created
    /// after a delivery does not see it. Drives the dispatcher's step by hand (no signal is
    /// sent, so the dispatcher thread is not woken meanwhile).
    #[test]
    fn pending_deliveries_coalesce_into_one() {
        crate::run(crate::Model::Blocking, |io| {
            let mut s = Signals::new(io, &[SignalKind::user_defined2()]).unwrap();
            for _ in 0..3 {
                driver::raise_for_test(libc::SIGUSR2 as usize);
            }
            driver::dispatch();
            let mut late = Signals::new(io, &[SignalKind::user_defined2()]).unwrap();
            assert_eq!(s.try_recv(), Some(SignalKind::user_defined2()));
            assert_eq!(s.try_recv(), None);
            assert_eq!(late.try_recv(), None);
            for _ in 0..2 {
                driver::raise_for_test(libc::SIGUSR2 as usize);
                driver::dispatch();
            }
            assert_eq!(
                s.try_recv(),
                Some(SignalKind::user_defined2()),
                "two, seen as one"
            );
            assert_eq!(s.try_recv(), None);
            assert_eq!(late.try_recv(), Some(SignalKind::user_defined2()));
        });
    }

    #[test]
    fn kinds_print_their_names() {
        assert_eq!(format!("{:?}", SignalKind::terminate()), "SIGTERM");
        assert_eq!(format!("{:?}", SignalKind::from_raw(40)), "SignalKind(40)");
    }
}
