//! `yield_now`: give the other tasks a turn from async code.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A future that is pending once, asking to be polled again after the other ready tasks: the
/// async counterpart of [`Io::yield_now`](crate::Io::yield_now) (Tokio's `task::yield_now`).
///
/// ```
/// zsync::run(zsync::Model::Green, |io| {
///     let task = io.spawn_future(async {
///         for _ in 0..3 {
///             zsync::task::yield_now().await;
///         }
///         "done"
///     });
///     assert_eq!(task.join().unwrap(), "done");
/// });
/// ```
pub fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

/// The future of [`yield_now`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        // Wake first: the task is requeued behind the others once this poll returns.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
