//! A file processing pipeline on zsync: walk a tree, read every file, hash it (BLAKE3) and
//! compress it (gzip), write the compressed files and a manifest of hashes to an output
//! directory. Stages are joined by bounded channels (back-pressure), the first failing file
//! stops the whole run and is named in the error, and the same code runs on every model.
//! See `examples/file_pipeline/README.md`.
//!
//! ```sh
//! cargo run --release --example file_pipeline -- --generate /tmp/corpus --files 20000 --bytes 2GiB
//! cargo run --release --example file_pipeline -- --input /tmp/corpus --output /tmp/out
//! cargo run --release --example file_pipeline -- --input /tmp/corpus --output /tmp/out --model threaded
//! ```

#[path = "../common/cli.rs"]
#[allow(dead_code)] // the client/server roles are for the network examples
mod cli;
mod codec;
mod error;
mod generate;
mod manifest;
mod pipeline;
mod progress;
mod sink;
mod source;
mod stats;
mod summary;
mod walk;

use std::path::PathBuf;
use std::sync::Arc;

use cli::{RuntimeOpts, RUNTIME_FLAGS, RUNTIME_HELP};
use pipeline::Config;
use stats::Stats;

const USAGE: &str = "\
usage: file_pipeline --input DIR --output DIR [options]
       file_pipeline --generate DIR --files N --bytes SIZE [--seed N]

Compresses every file under --input to --output (same tree, `.gz` added) and writes
--output/manifest.json with each file's size, compressed size and BLAKE3 hash.

  --level N        gzip level 0-9 (default 6)
  --readers N      reader tasks (default 4)
  --cpu N          hash+compress tasks (default: available parallelism)
  --writers N      writer tasks (default 2)
  --queue N        files per stage-to-stage channel (default 16)
  --block-kib N    read size in KiB (default 256)
  --fsync          fsync every output and the manifest before renaming them into place
  --quiet          no progress bar (it is also off when stderr is not a terminal)
  --json           print the summary as one JSON line
  --generate DIR   write a corpus of compressible mixed content to DIR instead
  --files N        (--generate) number of files (default 20000)
  --bytes SIZE     (--generate) total size: 2GiB, 512MiB... (default 2GiB)
  --seed N         (--generate) random seed (default 1)
";

fn main() {
    let usage = format!("{USAGE}{RUNTIME_HELP}");
    let mut valued = vec![
        "input",
        "output",
        "level",
        "readers",
        "cpu",
        "writers",
        "queue",
        "block-kib",
        "generate",
        "files",
        "bytes",
        "seed",
    ];
    valued.extend_from_slice(RUNTIME_FLAGS);
    let args = cli::parse_or_exit(&usage, &valued, &["fsync", "quiet", "json"]);
    let fail = |e: String| -> ! { cli::exit_usage(&usage, &e) };

    if let Some(dir) = args.value("generate") {
        let files = args.get_or("files", 20_000u64).unwrap_or_else(|e| fail(e));
        let bytes = generate::parse_size(args.value("bytes").unwrap_or("2GiB"))
            .unwrap_or_else(|e| fail(format!("--bytes: {e}")));
        let seed = args.get_or("seed", 1u64).unwrap_or_else(|e| fail(e));
        match generate::generate(dir.as_ref(), files, bytes, seed) {
            Ok(written) => println!(
                "generated {files} files, {} in {dir}",
                summary::human_bytes(written)
            ),
            Err(e) => {
                eprintln!("error: cannot generate {dir}: {e}");
                std::process::exit(1);
            }
        }
        return;
    }

    let (Some(input), Some(output)) = (args.value("input"), args.value("output")) else {
        fail("--input and --output are required".into())
    };
    let mut cfg = Config::new(PathBuf::from(input), PathBuf::from(output));
    let get = |name: &str, default: usize| args.get_or(name, default).unwrap_or_else(|e| fail(e));
    cfg.level = get("level", cfg.level as usize).min(9) as u32;
    cfg.readers = get("readers", cfg.readers).max(1);
    cfg.cpu = get("cpu", cfg.cpu).max(1);
    cfg.writers = get("writers", cfg.writers).max(1);
    cfg.queue = get("queue", cfg.queue).max(1);
    cfg.block_size = get("block-kib", cfg.block_size >> 10).max(1) << 10;
    cfg.fsync = args.switch("fsync");
    let opts = RuntimeOpts::from_args(&args, "green").unwrap_or_else(|e| fail(e));

    let stats = Arc::new(Stats::default());
    let progress =
        progress::Progress::start(stats.clone(), args.switch("quiet") || args.switch("json"));
    let (result, model) = opts.builder().run(|io| {
        let model = match io.model() {
            zsync::ModelKind::Green => format!("{} ({})", io.model_name(), io.backend_name()),
            _ => io.model_name().to_string(),
        };
        (pipeline::run(io, &cfg, &stats), model)
    });
    progress.finish();
    match result {
        Ok(s) if args.switch("json") => println!("{}", summary::json(&s, &model)),
        Ok(s) => println!("{}", summary::render(&s, &model)),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
