//! The file_pipeline example on rayon + std: the thread-pool way to write it. The walk lists
//! every file first (std::fs, sorted as the example's), then a rayon pool of `--workers`
//! threads processes files in parallel, each file on one thread from open to rename: blocking
//! `std::fs` reads, the example's codec (BLAKE3 + gzip, same level), a write under a partial
//! name renamed when complete; the first error stops the iteration. Same output tree and
//! manifest as the example. Invoked by the runner (`bench/src/apps/file_pipeline.rs`).

#[path = "../../examples/file_pipeline/codec.rs"]
mod codec;
#[path = "file_pipeline_common.rs"]
mod common;
#[path = "../../examples/file_pipeline/manifest.rs"]
mod manifest;

use std::fs::File;
use std::io::{self, Read, Write};
use std::time::Instant;

use rayon::prelude::*;

fn process(opts: &common::Opts, entry: &common::Entry) -> io::Result<Option<manifest::Entry>> {
    let named = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", entry.path.display()));
    let mut input = File::open(&entry.path).map_err(named)?;
    if !input.metadata().map_err(named)?.is_file() {
        return Ok(None);
    }
    let final_path = manifest::output_path(&opts.output, &entry.rel);
    if let Some(dir) = final_path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let partial = manifest::partial_path(&final_path);
    let mut out = File::create(&partial)?;
    let mut codec = codec::FileCodec::new(opts.level);
    let mut buf = vec![0u8; opts.block_size];
    let mut written = 0u64;
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            match input.read(&mut buf[filled..]).map_err(named)? {
                0 => break,
                n => filled += n,
            }
        }
        if filled == 0 {
            break;
        }
        let bytes = codec.update(&buf[..filled]);
        out.write_all(&bytes)?;
        written += bytes.len() as u64;
    }
    let done = codec.finish();
    out.write_all(&done.tail)?;
    written += done.tail.len() as u64;
    drop(out);
    std::fs::rename(&partial, &final_path)?;
    Ok(Some(manifest::Entry {
        path: manifest::manifest_path(&entry.rel).expect("UTF-8 names"),
        size: done.bytes_in,
        compressed: written,
        blake3: done.hash.to_hex().to_string(),
    }))
}

fn main() -> io::Result<()> {
    let opts = common::Opts::parse();
    let start = Instant::now();
    std::fs::create_dir_all(&opts.output)?;
    let _ = std::fs::remove_file(opts.output.join(manifest::MANIFEST_NAME));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.workers)
        .build()
        .expect("a rayon pool");
    let files = common::walk(&opts.input)?;
    let done: Vec<Option<manifest::Entry>> = pool.install(|| {
        files
            .par_iter()
            .map(|e| process(&opts, e))
            .collect::<io::Result<_>>()
    })?;
    let entries: Vec<manifest::Entry> = done.into_iter().flatten().collect();
    common::finish(
        &opts,
        &format!("rayon ({} threads)", opts.workers),
        entries,
        start,
    )
}
