//! `examples/file_pipeline`, tested in-process on every model: the example's own modules are
//! included with `#[path]`, run on a generated tree (hundreds of files in nested directories,
//! empty files, one file of many blocks, a symlink, a FIFO), and checked for what a user relies
//! on: every output decompresses to its input, the manifest's hashes are the inputs' hashes,
//! the files in flight and the bytes buffered between stages stay within the bounds the
//! channels set, and one failing file (a dangling symlink: unreadable even as root; an output
//! name taken by a directory) stops the run with an error naming it, leaves no partial file
//! and no manifest.
//!
//! Each body runs on Blocking, Threaded, Green on epoll and Green on the default backend
//! (io_uring where the kernel allows it, else epoll), under a 60 s watchdog. Small blocks and
//! short channels make every file of the tree a stream of several blocks and keep the bounds
//! tight.

#[path = "support/models.rs"]
#[macro_use]
mod models;

use models::Rt;

#[path = "../examples/file_pipeline/codec.rs"]
mod codec;
#[path = "../examples/file_pipeline/error.rs"]
mod error;
#[path = "../examples/file_pipeline/manifest.rs"]
mod manifest;
#[path = "../examples/file_pipeline/pipeline.rs"]
mod pipeline;
#[path = "../examples/file_pipeline/sink.rs"]
mod sink;
#[path = "../examples/file_pipeline/source.rs"]
mod source;
#[path = "../examples/file_pipeline/stats.rs"]
mod stats;
#[path = "../examples/file_pipeline/walk.rs"]
mod walk;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use pipeline::{Config, Summary};
use stats::Stats;
use zsync::Model;

/// How long one test may run before it fails instead of hanging.
const WATCHDOG: Duration = Duration::from_secs(60);

/// A fresh scratch directory for one test on one model.
fn scratch(test: &str, rt: Rt) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "zsync-file-pipeline-{}-{test}-{}",
        std::process::id(),
        rt.name()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Deterministic, compressible content of `len` bytes.
fn content(seed: u64, len: usize) -> Vec<u8> {
    let words: [&[u8]; 8] = [
        b"alpha ", b"beta ", b"gamma ", b"delta\n", b"io ", b"ring ", b"fiber ", b"0x7f ",
    ];
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if x.is_multiple_of(16) {
            out.extend_from_slice(&x.to_le_bytes()); // a little noise
        } else {
            out.extend_from_slice(words[(x % 8) as usize]);
        }
    }
    out.truncate(len);
    out
}

/// The test tree: 320 regular files in nested directories (sizes 0 to ~40 KiB, every 40th one
/// empty), one file of 3 MiB and a bit, a symlink to a regular file, and a FIFO (skipped).
/// Returns the paths (relative) the pipeline must compress.
fn make_tree(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for i in 0..320u64 {
        let dir = match i % 5 {
            0 => PathBuf::new(),
            1 => PathBuf::from("a"),
            2 => PathBuf::from("a/b"),
            3 => PathBuf::from(format!("a/b/c{}/d", i % 3)),
            _ => PathBuf::from(format!("m{}", i % 7)),
        };
        std::fs::create_dir_all(root.join(&dir)).unwrap();
        let len = if i.is_multiple_of(40) {
            0
        } else {
            (i * 7919 % 40_000) as usize
        };
        let rel = dir.join(format!("f{i:03}.txt"));
        std::fs::write(root.join(&rel), content(i, len)).unwrap();
        files.push(rel);
    }
    let big = PathBuf::from("a/b/big.bin");
    std::fs::write(root.join(&big), content(999, 3 * 1024 * 1024 + 17)).unwrap();
    files.push(big);
    std::os::unix::fs::symlink("f001.txt", root.join("a/link.txt")).unwrap();
    files.push(PathBuf::from("a/link.txt"));
    let fifo =
        std::ffi::CString::new(root.join("m1/fifo").into_os_string().into_encoded_bytes()).unwrap();
    // SAFETY: `fifo` is a valid NUL-terminated path that outlives the call.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0, "mkfifo");
    files
}

/// Small blocks and short channels: every file but the smallest is several blocks, and the
/// bounds are tight enough to mean something.
fn config(input: &Path, output: &Path) -> Config {
    let mut cfg = Config::new(input, output);
    cfg.level = 1;
    cfg.readers = 2;
    cfg.cpu = 2;
    cfg.writers = 2;
    cfg.queue = 2;
    cfg.blocks_per_file = 1;
    cfg.block_size = 8 * 1024;
    cfg
}

fn run(rt: Rt, cfg: &Config) -> (Result<Summary, error::PipelineError>, Arc<Stats>) {
    let stats = Arc::new(Stats::default());
    let result = rt.builder().run(|io| pipeline::run(io, cfg, &stats));
    (result, stats)
}

fn gunzip(path: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut out)
        .unwrap_or_else(|e| panic!("{}: not a complete gzip stream: {e}", path.display()));
    out
}

/// Every file under `dir`, relative.
fn list(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path().strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// After a failed run: no manifest, no partial file, and every output present is complete
/// (it decompresses to its input). Returns how many outputs there are.
fn check_failed_output(input: &Path, output: &Path) -> usize {
    assert!(
        !output.join(manifest::MANIFEST_NAME).exists(),
        "a failed run left a manifest"
    );
    let mut outputs = 0;
    for rel in list(output) {
        let name = rel.to_str().unwrap();
        assert!(
            !name.ends_with(manifest::PARTIAL_SUFFIX),
            "partial output left: {name}"
        );
        if let Some(src) = name.strip_suffix(".gz") {
            assert_eq!(
                gunzip(&output.join(&rel)),
                std::fs::read(input.join(src)).unwrap(),
                "{name}"
            );
            outputs += 1;
        }
    }
    outputs
}

/// The files in the order the pipeline visits them.
fn walk_order(input: &Path) -> Vec<PathBuf> {
    zsync::run(Model::Blocking, |io| {
        let stats = Arc::new(Stats::default());
        let mut order = Vec::new();
        walk::walk(io, input, &stats, &error::Abort::default(), &mut |e| {
            order.push(e.rel);
            Ok(())
        })
        .unwrap();
        order
    })
}

fn roundtrip(rt: Rt) {
    let dir = scratch("roundtrip", rt);
    let (input, output) = (dir.join("in"), dir.join("out"));
    let files = make_tree(&input);
    let cfg = config(&input, &output);
    let (result, stats) = run(rt, &cfg);
    let summary = result.unwrap_or_else(|e| panic!("{rt:?}: {e}"));

    assert_eq!(summary.files, files.len() as u64);
    assert!(summary.elapsed > Duration::ZERO);
    assert_eq!(summary.skipped, 1, "the FIFO is skipped");
    let total: u64 = files
        .iter()
        .map(|f| std::fs::metadata(input.join(f)).unwrap().len())
        .sum();
    assert_eq!(summary.bytes_in, total);

    // Every output decompresses to its input.
    for rel in &files {
        let out = manifest::output_path(&output, rel);
        assert_eq!(
            gunzip(&out),
            std::fs::read(input.join(rel)).unwrap(),
            "{}",
            rel.display()
        );
    }
    // The manifest lists exactly those files, with their hashes and sizes.
    let entries =
        manifest::parse(&std::fs::read(output.join(manifest::MANIFEST_NAME)).unwrap()).unwrap();
    let by_path: BTreeMap<_, _> = entries.iter().map(|e| (e.path.clone(), e)).collect();
    assert_eq!(by_path.len(), files.len());
    for rel in &files {
        let e = by_path[rel.to_str().unwrap()];
        let data = std::fs::read(input.join(rel)).unwrap();
        assert_eq!(
            e.blake3,
            blake3::hash(&data).to_hex().to_string(),
            "{}",
            rel.display()
        );
        assert_eq!(e.size, data.len() as u64);
        assert_eq!(
            e.compressed,
            std::fs::metadata(manifest::output_path(&output, rel))
                .unwrap()
                .len()
        );
    }
    assert_eq!(
        summary.bytes_out,
        entries.iter().map(|e| e.compressed).sum::<u64>()
    );
    // Nothing but outputs and the manifest.
    assert_eq!(list(&output).len(), files.len() + 1);

    // Back-pressure: the files in flight and the bytes held between stages never exceeded
    // what the channels allow, and everything was released at the end.
    assert!(summary.peak_in_flight >= 1);
    assert!(
        summary.peak_in_flight <= cfg.max_in_flight(),
        "{rt:?}: {} files in flight, bound {}",
        summary.peak_in_flight,
        cfg.max_in_flight()
    );
    assert!(summary.peak_buffered <= cfg.max_buffered());
    assert!(summary.peak_in_flight <= summary.in_flight_bound);
    assert!(summary.peak_buffered <= summary.buffered_bound);
    if matches!(rt, Rt::Blocking) {
        assert_eq!(
            summary.peak_in_flight, 1,
            "Blocking processes one file at a time"
        );
    }
    assert_eq!(stats.in_flight.peak(), summary.peak_in_flight);
    std::fs::remove_dir_all(&dir).unwrap();
}

fn unreadable_file_stops_the_run(rt: Rt) {
    let dir = scratch("unreadable", rt);
    let (input, output) = (dir.join("in"), dir.join("out"));
    let files = make_tree(&input);
    let cfg = config(&input, &output);
    // A first run succeeds and leaves a manifest.
    run(rt, &cfg).0.unwrap_or_else(|e| panic!("{rt:?}: {e}"));
    assert!(output.join(manifest::MANIFEST_NAME).exists());

    // A dangling symlink in the middle of the walk: unreadable, even as root.
    std::os::unix::fs::symlink("no-such-target", input.join("a/b/f150-broken.txt")).unwrap();
    let order = walk_order(&input);
    let position = order
        .iter()
        .position(|p| p.ends_with("f150-broken.txt"))
        .unwrap();
    assert!(
        position > 10 && position + 30 < order.len(),
        "the broken link is mid-walk"
    );
    // The first run's outputs and manifest stay: the failing run must remove that manifest.

    let (result, stats) = run(rt, &cfg);
    let err = result.expect_err("a dangling symlink fails the run");
    assert_eq!(err.action, "open");
    assert_eq!(
        err.path,
        input.join("a/b/f150-broken.txt"),
        "the error names the file"
    );
    assert_eq!(err.source.kind(), std::io::ErrorKind::NotFound);
    assert!(err.to_string().contains("f150-broken.txt"));

    // No manifest (the earlier run's was removed first), no partial file, and every output
    // (this run's or the earlier run's) complete.
    assert_eq!(check_failed_output(&input, &output), files.len());
    // Prompt: files start in walk order, at most `max_in_flight` are open at once and nothing
    // starts after the failure, so no file far past the broken one was processed.
    let done = Stats::get(&stats.files_done);
    let bound = position as u64 + cfg.max_in_flight() + cfg.readers as u64;
    assert!(
        done <= bound,
        "{rt:?}: {done} files done after a failure at file {position} (bound {bound})"
    );
    assert!(stats.in_flight.peak() <= cfg.max_in_flight());
    std::fs::remove_dir_all(&dir).unwrap();
}

fn output_collision_stops_the_run(rt: Rt) {
    let dir = scratch("collision", rt);
    let (input, output) = (dir.join("in"), dir.join("out"));
    let files = make_tree(&input);
    let cfg = config(&input, &output);
    // The output name of a mid-walk file is taken by a directory (with a file in it, so the
    // rename cannot replace it).
    let victim = PathBuf::from("a/b/f152.txt");
    let taken = manifest::output_path(&output, &victim);
    std::fs::create_dir_all(taken.join("occupied")).unwrap();

    let (result, stats) = run(rt, &cfg);
    let err = result.expect_err("an output that cannot be written fails the run");
    assert_eq!(err.action, "write output");
    assert_eq!(err.path, taken, "the error names the output");
    assert!(err.to_string().contains("f152.txt.gz"));

    std::fs::remove_dir_all(&taken).unwrap();
    let outputs = check_failed_output(&input, &output);
    let position = walk_order(&input)
        .iter()
        .position(|p| *p == victim)
        .unwrap();
    let bound = position as u64 + cfg.max_in_flight() + cfg.readers as u64;
    assert!(
        (outputs as u64) <= bound && Stats::get(&stats.files_done) <= bound,
        "{rt:?}: {outputs} outputs after a failure at file {position} (bound {bound})"
    );
    assert!(outputs < files.len());
    std::fs::remove_dir_all(&dir).unwrap();
}

per_model!(every:
    roundtrip,
    unreadable_file_stops_the_run,
    output_collision_stops_the_run
);

/// An output directory inside the input tree would have the walk find the outputs: refused,
/// and the directory the run would have created is not left behind.
#[test]
fn output_inside_input_is_refused() {
    let dir = scratch("inside", Rt::Blocking);
    let input = dir.join("in");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::write(input.join("a.txt"), b"a").unwrap();
    let cfg = config(&input, &input.join("out"));
    let err = run(Rt::Blocking, &cfg).0.expect_err("refused");
    assert_eq!(err.action, "use output directory");
    assert!(!input.join("out").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}
