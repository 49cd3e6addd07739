//! The operation layer: one file per operation, each with its arguments, its io_uring
//! submission, and its non-blocking (or blocking, for regular files) syscall.
//!
//! Every function here decides *what* to do; *how to wait* is the model's business:
//!
//! - On a Green fiber whose worker runs an io_uring whose kernel supports the opcode, the op is
//!   submitted to the ring and the fiber parks until its completion
//!   ([`green::ring_op`](crate::model::green::ring_op)): one step instead of "wait for
//!   readiness, then do the syscall". The fiber waits for the completion even when it is
//!   canceled (it asks the kernel to cancel and keeps waiting), so the buffers borrowed here
//!   stay valid for as long as the kernel may use them.
//! - Everywhere else (thread models, epoll workers, kernels without the opcode), the syscall is
//!   tried first and, on `WouldBlock`, the task waits for readiness
//!   ([`retry_on_fd`](crate::park::retry_on_fd)).
//!
//! Both paths are cancellation points and honour the op's deadline and the task's.

pub(crate) mod accept;
pub(crate) mod connect;
pub(crate) mod fsync;
pub(crate) mod msg;
pub(crate) mod open;
pub(crate) mod path;
pub(crate) mod read_at;
pub(crate) mod recv;
pub(crate) mod send;
pub(crate) mod send_zc;
pub(crate) mod splice;
pub(crate) mod stream;
pub(crate) mod vectored;
pub(crate) mod write_at;

use std::io;

use crate::model::operation::Operation;
use crate::model::CustomModel;
use crate::Io;

/// The custom model behind `io`, which receives every operation as an [`Operation`]; `None`
/// for the built-in models, whose operations run the code of this layer directly (one
/// predictable branch, no virtual call).
#[inline(always)]
pub(crate) fn custom(io: &Io) -> Option<&dyn CustomModel> {
    io.inner.model.custom()
}

/// Hands an operation that [`Operation`] does not describe to a custom model, as
/// [`Operation::Other`] named `name`: `f` runs when the model performs it, and its value comes
/// back here. Out of line.
#[cold]
#[inline(never)]
pub(crate) fn other<T>(
    model: &dyn CustomModel,
    name: &'static str,
    f: impl FnOnce() -> io::Result<T>,
) -> io::Result<T> {
    let mut f = Some(f);
    let mut out = None;
    let mut run = || {
        let f = f
            .take()
            .ok_or_else(|| io::Error::other(format!("`{name}` was performed twice")))?;
        out = Some(f()?);
        Ok(())
    };
    model
        .operate(Operation::Other {
            name,
            run: &mut run,
        })?
        .into_done(name)?;
    out.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the model completed `{name}` without performing it"),
        )
    })
}

/// Runs `f` as [`other`] on a custom model, or directly on a built-in one.
#[inline]
pub(crate) fn other_or<T>(
    io: &Io,
    name: &'static str,
    f: impl FnOnce() -> io::Result<T>,
) -> io::Result<T> {
    match custom(io) {
        Some(model) => other(model, name, f),
        None => f(),
    }
}

/// Hands `op` to the custom model and takes its byte count. Out of line, so that the
/// built-in models' path through the caller stays as small as it was.
#[cold]
#[inline(never)]
pub(crate) fn count_of(model: &dyn CustomModel, op: Operation<'_, '_>) -> io::Result<usize> {
    let name = op.name();
    model.operate(op)?.into_count(name)
}

/// Hands `op` to the custom model and checks it completed without a value. Out of line.
#[cold]
#[inline(never)]
pub(crate) fn done_of(model: &dyn CustomModel, op: Operation<'_, '_>) -> io::Result<()> {
    let name = op.name();
    model.operate(op)?.into_done(name)
}

/// A buffer length as the ring takes it: ops on longer buffers transfer less, as syscalls do.
fn ring_len(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// A completion's non-negative `res` as a byte count.
fn count(res: i32) -> usize {
    usize::try_from(res).unwrap_or(0)
}
