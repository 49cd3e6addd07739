//! The pipeline's error, which names the file it is about, and the first-error slot that turns
//! one failing file into a prompt stop of every stage.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Why the pipeline stopped: what it was doing, to which file, and the system's error.
#[derive(Debug)]
pub struct PipelineError {
    /// What failed: "read", "write output for", "list directory"...
    pub action: &'static str,
    /// The file (or directory) concerned.
    pub path: PathBuf,
    /// The underlying error.
    pub source: io::Error,
}

impl PipelineError {
    /// An error of `action` on `path`.
    pub fn new(action: &'static str, path: impl AsRef<Path>, source: io::Error) -> PipelineError {
        PipelineError {
            action,
            path: path.as_ref().to_path_buf(),
            source,
        }
    }
}

impl fmt::Display for PipelineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot {} {}: {}",
            self.action,
            self.path.display(),
            self.source
        )
    }
}

impl std::error::Error for PipelineError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// A stage stopped: because of an error already recorded in the [`Abort`] slot, or because
/// the pipeline was canceled. Carries nothing: the cause is the recorded error, never the
/// closed channels and `Canceled` errors it caused in the other stages.
#[derive(Debug)]
pub struct Stop;

impl From<io::Error> for Stop {
    fn from(_: io::Error) -> Stop {
        Stop
    }
}

/// What a stage task returns.
pub type StageResult = Result<(), Stop>;

/// The first error of a run, and a flag that every stage checks before it starts on a new
/// file, so that nothing new starts once a file has failed (the stages' tasks are canceled
/// too, which interrupts their waits).
#[derive(Default)]
pub struct Abort {
    raised: AtomicBool,
    first: Mutex<Option<PipelineError>>,
}

impl Abort {
    /// Records `error` if it is the first, raises the flag, and returns [`Stop`]. A
    /// `Canceled` error is not a cause (the run was stopped from outside, or by a failure
    /// recorded already) and is not recorded.
    pub fn fail(&self, error: PipelineError) -> Stop {
        let mut first = self.first.lock().unwrap_or_else(|e| e.into_inner());
        if first.is_none() && !zsync::is_canceled(&error.source) {
            *first = Some(error);
        }
        self.raised.store(true, Ordering::Release);
        Stop
    }

    /// Whether a stage has failed.
    pub fn raised(&self) -> bool {
        self.raised.load(Ordering::Acquire)
    }

    /// The first recorded error, if any.
    pub fn take(&self) -> Option<PipelineError> {
        self.first.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}
