//! Stage 2: read a file in blocks through `zsync::fs` (ring reads on Green's io_uring
//! backend, a helper thread on epoll, plain `pread` on Threaded and Blocking).

use std::io;
use std::sync::Arc;

use zsync::fs::File;
use zsync::Io;

use crate::error::PipelineError;
use crate::stats::{Block, InFlight, Stats};
use crate::walk::Entry;

/// An open input file, read front to back.
pub struct Source {
    file: File,
    entry: Entry,
    offset: u64,
    block_size: usize,
    stats: Arc<Stats>,
    /// Counts this file in flight until the whole file is done (it moves on with the file).
    pub flight: Option<InFlight>,
}

impl Source {
    /// Opens `entry`. `Ok(None)` if it is not a regular file once symlinks are followed
    /// (counted as skipped).
    pub fn open(
        io: &Io,
        entry: Entry,
        block_size: usize,
        stats: &Arc<Stats>,
    ) -> Result<Option<Source>, PipelineError> {
        let flight = InFlight::new(stats);
        // O_NONBLOCK: a symlink to a FIFO must not wait for a writer in `open`; it changes
        // nothing for a regular file.
        let file = File::options()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(io, &entry.path)
            .map_err(|e| PipelineError::new("open", &entry.path, e))?;
        let meta = file
            .metadata()
            .map_err(|e| PipelineError::new("stat", &entry.path, e))?;
        if !meta.is_file() {
            Stats::count(&stats.skipped, 1);
            return Ok(None);
        }
        Ok(Some(Source {
            file,
            entry,
            offset: 0,
            block_size,
            stats: stats.clone(),
            flight: Some(flight),
        }))
    }

    /// The next block (full unless it is the last), or `None` at the end of the file.
    pub fn next_block(&mut self) -> Result<Option<Block>, PipelineError> {
        let mut buf = vec![0u8; self.block_size];
        let mut filled = 0;
        while filled < buf.len() {
            match self.file.read_at(&mut buf[filled..], self.offset) {
                Ok(0) => break,
                Ok(n) => {
                    filled += n;
                    self.offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted && !zsync::is_canceled(&e) => {}
                Err(e) => return Err(PipelineError::new("read", &self.entry.path, e)),
            }
        }
        if filled == 0 {
            return Ok(None);
        }
        buf.truncate(filled);
        Stats::count(&self.stats.bytes_in, filled as u64);
        Ok(Some(Block::new(buf, &self.stats)))
    }
}
