//! Stage 4: write a compressed output under a temporary name and rename it into place when
//! it is complete. An output that is dropped uncommitted (its file failed, or the run was
//! canceled) removes its partial file, so nothing half-written is left under a final name.

use std::io::Write;
use std::path::{Path, PathBuf};

use zsync::fs::File;
use zsync::Io;

use crate::error::PipelineError;
use crate::manifest::{output_path, partial_path};

/// A compressed output being written.
pub struct Output {
    io: Io,
    file: Option<File>,
    partial: PathBuf,
    final_path: PathBuf,
    written: u64,
    fsync: bool,
}

impl Output {
    /// Creates the partial output of the input `rel` under `out_root` (and its directory).
    pub fn create(
        io: &Io,
        out_root: &Path,
        rel: &Path,
        fsync: bool,
    ) -> Result<Output, PipelineError> {
        let final_path = output_path(out_root, rel);
        if let Some(dir) = final_path.parent() {
            zsync::fs::create_dir_all(io, dir)
                .map_err(|e| PipelineError::new("create directory", dir, e))?;
        }
        let partial = partial_path(&final_path);
        let file = File::create(io, &partial)
            .map_err(|e| PipelineError::new("create output", &partial, e))?;
        Ok(Output {
            io: io.clone(),
            file: Some(file),
            partial,
            final_path,
            written: 0,
            fsync,
        })
    }

    /// Appends compressed bytes.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), PipelineError> {
        let file = self
            .file
            .as_mut()
            .expect("an output is written until committed");
        file.write_all(bytes)
            .map_err(|e| PipelineError::new("write output", &self.partial, e))?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Closes the output (after an `fsync` if asked) and renames it to its final name.
    /// Returns the bytes written.
    pub fn commit(mut self) -> Result<u64, PipelineError> {
        let file = self.file.take().expect("committed once");
        if self.fsync {
            file.sync_all()
                .map_err(|e| PipelineError::new("sync output", &self.partial, e))?;
        }
        drop(file);
        zsync::fs::rename(&self.io, &self.partial, &self.final_path)
            .map_err(|e| PipelineError::new("write output", &self.final_path, e))?;
        // Renamed: nothing left for `drop` to remove.
        self.partial.clear();
        Ok(self.written)
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        drop(self.file.take());
        if !self.partial.as_os_str().is_empty() {
            // Shielded: this runs in a canceled task too, where an unshielded call would
            // return `Canceled` without removing anything.
            let _ = self
                .io
                .shielded(|| zsync::fs::remove_file(&self.io, &self.partial));
        }
    }
}
