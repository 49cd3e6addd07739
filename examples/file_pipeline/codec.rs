//! The CPU stage's work on one file: a BLAKE3 hash of the input and a gzip stream of it, fed
//! block by block. Shared word for word with the benchmark's Tokio and rayon peers
//! (`bench/peers/*_file_pipeline.rs` include this file), so every contender does the same
//! CPU work.
//!
//! Nothing here does I/O or knows about runtimes: [`FileCodec::update`] is a plain computation
//! that the pipeline runs where a long computation belongs on its model (`Io::blocking`).

use std::io::Write;

use flate2::write::GzEncoder;
use flate2::Compression;

/// The extension of a compressed output (`a/b.txt` → `a/b.txt.gz`).
pub const OUTPUT_EXTENSION: &str = "gz";

/// Hash and compressor state of one file being processed.
pub struct FileCodec {
    hasher: blake3::Hasher,
    encoder: GzEncoder<Vec<u8>>,
    bytes_in: u64,
}

/// What a finished file produced.
#[derive(Debug)]
pub struct Finished {
    /// BLAKE3 of the whole input.
    pub hash: blake3::Hash,
    /// The last compressed bytes (the deflate tail and the gzip trailer).
    pub tail: Vec<u8>,
    /// Bytes of input fed in.
    pub bytes_in: u64,
}

impl FileCodec {
    /// A codec compressing at gzip `level` (0–9).
    pub fn new(level: u32) -> FileCodec {
        FileCodec {
            hasher: blake3::Hasher::new(),
            encoder: GzEncoder::new(Vec::new(), Compression::new(level.min(9))),
            bytes_in: 0,
        }
    }

    /// Hashes and compresses `data`; returns the compressed bytes ready so far (possibly none:
    /// the compressor keeps a window of input until it has a block to emit).
    pub fn update(&mut self, data: &[u8]) -> Vec<u8> {
        self.hasher.update(data);
        self.bytes_in += data.len() as u64;
        self.encoder
            .write_all(data)
            .expect("writing into a Vec cannot fail");
        std::mem::take(self.encoder.get_mut())
    }

    /// Ends the stream: the hash and the remaining compressed bytes.
    pub fn finish(self) -> Finished {
        let tail = self
            .encoder
            .finish()
            .expect("writing into a Vec cannot fail");
        Finished {
            hash: self.hasher.finalize(),
            tail,
            bytes_in: self.bytes_in,
        }
    }
}
