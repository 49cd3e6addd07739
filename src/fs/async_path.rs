//! Whole-file helpers for async code: [`read_async`] and [`write_async`].
//!
//! Each is one call of its colorblind counterpart ([`super::read`], [`super::write()`]: open,
//! size, transfer, close) handed to a helper thread of the `Io`'s model as one job, as Tokio's
//! `fs::read` does on its blocking pool: one hand-off instead of one per syscall, and a custom
//! model still receives every operation. On Blocking the call runs inline at the first poll.

use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::owned::Offload;
use crate::diag::wait_point::{Object, PendingNote, WaitOp};
use crate::Io;

/// A call on a helper thread, started at the first poll.
struct Lazy<T, F> {
    io: Io,
    call: Option<F>,
    running: Option<Offload<io::Result<T>>>,
    /// What a task dump shows while the call is pending.
    wait: PendingNote,
}

impl<T, F> Unpin for Lazy<T, F> {}

impl<T, F> Future for Lazy<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Io) -> io::Result<T> + Send + 'static,
{
    type Output = io::Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let this = self.get_mut();
        if let Some(call) = this.call.take() {
            let io = this.io.clone();
            this.running = Some(Offload::start(&this.io, move || call(&io)));
        }
        let polled = this
            .running
            .as_mut()
            .expect("polled after completion")
            .poll_done(cx);
        match polled {
            Poll::Pending => this.wait.pending(),
            Poll::Ready(_) => this.wait.done(),
        }
        polled
    }
}

/// Reads the whole file at `path`, as a future; [`fs::read`](super::read) run on a helper thread
/// of `io`'s model. `'static` and `Send`: it owns the path and the `Io`.
///
/// Errors: those of [`fs::read`](super::read) (`NotFound`, `PermissionDenied`, …).
///
/// ```
/// # let path = std::env::temp_dir().join(format!("zsync-doc-fs-read-async-{}", std::process::id()));
/// zsync::run(zsync::Model::Threaded, |io| -> std::io::Result<()> {
///     futures::executor::block_on(zsync::fs::write_async(io, &path, b"file body"))?;
///     let body = futures::executor::block_on(zsync::fs::read_async(io, &path))?;
///     assert_eq!(body, b"file body");
///     zsync::fs::remove_file(io, &path)
/// }).unwrap();
/// ```
#[track_caller]
pub fn read_async(
    io: &Io,
    path: impl AsRef<Path>,
) -> impl Future<Output = io::Result<Vec<u8>>> + Send + Unpin + 'static {
    let path = path.as_ref().to_path_buf();
    Lazy {
        io: io.clone(),
        call: Some(move |io: &Io| super::read(io, &path)),
        running: None,
        wait: PendingNote::new(WaitOp::File, Object::None),
    }
}

/// Writes `contents` as the whole file at `path` (created, or truncated), as a future;
/// [`fs::write`](super::write()) run on a helper thread of `io`'s model. See [`read_async`] for
/// an example.
#[track_caller]
pub fn write_async(
    io: &Io,
    path: impl AsRef<Path>,
    contents: impl AsRef<[u8]>,
) -> impl Future<Output = io::Result<()>> + Send + Unpin + 'static {
    let path = path.as_ref().to_path_buf();
    let contents = contents.as_ref().to_vec();
    Lazy {
        io: io.clone(),
        call: Some(move |io: &Io| super::write(io, &path, &contents)),
        running: None,
        wait: PendingNote::new(WaitOp::File, Object::None),
    }
}
