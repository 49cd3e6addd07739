//! Stage 1: walk the input tree, depth first, each directory's entries in name order (so runs
//! are reproducible and the failing file of a run is always the same one).
//!
//! Directories are descended into (a symlink to a directory is not: no cycles), regular files
//! and symlinks are handed on (the reader opens a symlink and skips it unless it leads to a
//! regular file; a dangling one is an error), anything else (FIFOs, sockets, devices) is
//! skipped and counted: opening a FIFO would wait for a writer.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use zsync::Io;

use crate::error::{Abort, PipelineError, StageResult};
use crate::stats::Stats;

/// A file to process.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Its path.
    pub path: PathBuf,
    /// Its path relative to the input root.
    pub rel: PathBuf,
}

/// Walks `root`, calling `visit` for every file in order. Stops at the first error (recorded
/// in `abort`), when `visit` stops, or when `abort` is raised by another stage.
pub fn walk(
    io: &Io,
    root: &Path,
    stats: &Arc<Stats>,
    abort: &Abort,
    visit: &mut dyn FnMut(Entry) -> StageResult,
) -> StageResult {
    // Directories still to list, relative to `root`; popped from the end, so pushed in reverse
    // name order.
    let mut dirs = vec![PathBuf::new()];
    while let Some(rel_dir) = dirs.pop() {
        let dir = root.join(&rel_dir);
        let mut names = Vec::new();
        let listing = zsync::fs::read_dir(io, &dir)
            .map_err(|e| abort.fail(PipelineError::new("list directory", &dir, e)))?;
        for entry in listing {
            let entry =
                entry.map_err(|e| abort.fail(PipelineError::new("list directory", &dir, e)))?;
            let kind = entry
                .file_type()
                .map_err(|e| abort.fail(PipelineError::new("stat", entry.path(), e)))?;
            names.push((entry.file_name(), kind));
        }
        names.sort_by(|a, b| a.0.cmp(&b.0));
        let mut subdirs = Vec::new();
        for (name, kind) in names {
            let rel = rel_dir.join(&name);
            if kind.is_dir() {
                subdirs.push(rel);
            } else if kind.is_file() || kind.is_symlink() {
                if abort.raised() {
                    return Err(crate::error::Stop);
                }
                Stats::count(&stats.files_found, 1);
                visit(Entry {
                    path: root.join(&rel),
                    rel,
                })?;
            } else {
                Stats::count(&stats.skipped, 1);
            }
        }
        dirs.extend(subdirs.into_iter().rev());
    }
    Ok(())
}
