//! The pipeline: walk → read → hash+compress → write, one stage per kind of work, joined by
//! bounded zsync channels.
//!
//! ```text
//!              entries            ToCpu (+ a per-file            ToWrite (+ a per-file
//!   walk ──▶ bounded(queue) ──▶ readers ──▶ bounded(queue) ──▶ cpu ──▶ bounded(queue) ──▶ writers ──▶ manifest
//!   1 task                     R tasks    blocks: bounded(b))  C tasks  chunks: bounded(b))  W tasks     (root)
//! ```
//!
//! A file travels as a stream: its reader hands the CPU stage a `ToCpu` carrying the receiving
//! end of a small per-file channel of blocks, then reads the file block by block into it; a
//! CPU task does the same towards the writers. So a large file never sits in memory whole, and
//! every stage holds at most a few blocks of each file it works on. Each stage sends its
//! file's handle on *before* streaming it, so a stage only ever waits for a stage that is
//! working on the same file: no cycle, no deadlock, however the bounds are set.
//!
//! **Back-pressure.** Every channel is bounded, so a slow stage stops the ones before it: at
//! most [`Config::max_in_flight`] files are open at once and at most
//! [`Config::max_buffered`] bytes of file data are held between stages, whatever the size of
//! the tree (both gauges are in [`Stats`], with their peaks).
//!
//! **CPU work.** Hashing and compressing a block runs in `io.blocking`: on Green a helper
//! thread computes while the worker loops stay free to submit and reap the readers' and
//! writers' ring ops (a fiber that computed for milliseconds would hold up every other fiber
//! of its worker, since started fibers do not migrate); at most C blocks are being computed
//! at once, one per CPU task, so the helper threads never outnumber the CPU tasks. On
//! Threaded the same call moves the work off the stage's own thread; on Blocking it runs
//! inline.
//!
//! **Errors.** The stage tasks run in a fail-fast [`Group`]: the first stage that fails
//! records its error (naming the file) in the [`Abort`] slot, raises the flag that stops every
//! stage before its next file, and returns, which cancels every other stage at once,
//! interrupting its channel and `io.blocking` waits. Outputs not committed remove their
//! partial files as they drop, and the manifest is written only when every stage succeeded.
//!
//! **Blocking.** The Blocking model runs one task at a time, so stages joined by bounded
//! channels would wait for each other for ever. There the same stage functions run one file
//! after the other: Zig's `io.concurrent(f) catch ...` fallback, chosen once.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use zsync::channel::{self, Receiver, RecvError, Sender};
use zsync::{Group, Io};

use crate::codec::FileCodec;
use crate::error::{Abort, PipelineError, StageResult, Stop};
use crate::manifest::{self, manifest_path, MANIFEST_NAME};
use crate::sink::Output;
use crate::source::Source;
use crate::stats::{Block, InFlight, Stats};
use crate::walk::{walk, Entry};

/// What to process and how.
#[derive(Clone, Debug)]
pub struct Config {
    /// The input tree.
    pub input: PathBuf,
    /// The output directory (created if missing; must not be inside the input).
    pub output: PathBuf,
    /// gzip level, 0–9.
    pub level: u32,
    /// Reader tasks.
    pub readers: usize,
    /// CPU tasks (blocks hashed and compressed at once).
    pub cpu: usize,
    /// Writer tasks.
    pub writers: usize,
    /// Capacity of each stage-to-stage channel, in files.
    pub queue: usize,
    /// Capacity of each per-file channel, in blocks.
    pub blocks_per_file: usize,
    /// Bytes per read.
    pub block_size: usize,
    /// `fsync` every output before renaming it, and the manifest.
    pub fsync: bool,
}

impl Config {
    /// The defaults for `input` → `output`: gzip level 6, one CPU task per core.
    pub fn new(input: impl Into<PathBuf>, output: impl Into<PathBuf>) -> Config {
        Config {
            input: input.into(),
            output: output.into(),
            level: 6,
            readers: 4,
            cpu: std::thread::available_parallelism().map_or(1, |n| n.get()),
            writers: 2,
            queue: 16,
            blocks_per_file: 2,
            block_size: 256 * 1024,
            fsync: false,
        }
    }

    /// The most files that can be open at once: one per reader, CPU and writer task, plus
    /// those waiting in the two stage-to-stage channels.
    pub fn max_in_flight(&self) -> u64 {
        (self.readers + self.queue + self.cpu + self.queue + self.writers) as u64
    }

    /// The most bytes of file data held between stages: per file in flight, its per-file
    /// channels' blocks and one block in each stage's hands, on the input and output sides (a
    /// compressed block may exceed the input block by what the compressor held back).
    pub fn max_buffered(&self) -> u64 {
        let per_side = (self.blocks_per_file as u64 + 2) * (self.block_size as u64 + 64 * 1024);
        self.max_in_flight() * 2 * per_side
    }
}

/// What a successful run did.
#[derive(Clone, Debug)]
pub struct Summary {
    /// Files compressed.
    pub files: u64,
    /// Entries skipped (FIFOs, sockets, devices, symlinks to them).
    pub skipped: u64,
    /// Input bytes.
    pub bytes_in: u64,
    /// Compressed bytes.
    pub bytes_out: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Most files open at once.
    pub peak_in_flight: u64,
    /// Most bytes of file data held between stages at once.
    pub peak_buffered: u64,
    /// [`Config::max_in_flight`] when the stages ran concurrently, 1 when one file was
    /// processed after the other (Blocking).
    pub in_flight_bound: u64,
    /// [`Config::max_buffered`], or one file's worth on Blocking.
    pub buffered_bound: u64,
}

/// A file on its way from a reader to a CPU task.
struct ToCpu {
    entry: Entry,
    flight: InFlight,
    blocks: Receiver<Piece>,
}

/// A file on its way from a CPU task to a writer.
struct ToWrite {
    entry: Entry,
    flight: InFlight,
    chunks: Receiver<OutPiece>,
}

/// A piece of an input stream.
enum Piece {
    Data(Block),
    /// The end of the file, with its last block if the reader knew it was the last (a short
    /// read: one hand-off to the CPU pool instead of two for the many files of one block).
    End(Option<Block>),
}

/// A piece of an output stream.
enum OutPiece {
    Data(Block),
    End {
        hash: blake3::Hash,
        bytes_in: u64,
        tail: Block,
    },
}

/// Runs the pipeline on `io`'s model. `stats` is updated as it goes (for a progress bar).
pub fn run(io: &Io, cfg: &Config, stats: &Arc<Stats>) -> Result<Summary, PipelineError> {
    let start = Instant::now();
    prepare_output(io, cfg)?;
    let abort = Arc::new(Abort::default());
    let concurrent = io.supports_concurrency();
    let result = if concurrent {
        run_stages(io, cfg, stats, &abort)
    } else {
        run_sequential(io, cfg, stats, &abort)
    };
    let mut entries = match (result, abort.take()) {
        (_, Some(error)) => return Err(error),
        (Ok(entries), None) => entries,
        (Err(Stop), None) => {
            return Err(PipelineError::new("finish", &cfg.input, zsync::canceled()))
        }
    };
    write_manifest(io, cfg, &mut entries)?;
    Ok(Summary {
        files: entries.len() as u64,
        skipped: Stats::get(&stats.skipped),
        bytes_in: entries.iter().map(|e| e.size).sum(),
        bytes_out: entries.iter().map(|e| e.compressed).sum(),
        elapsed: start.elapsed(),
        peak_in_flight: stats.in_flight.peak(),
        peak_buffered: stats.buffered.peak(),
        in_flight_bound: if concurrent { cfg.max_in_flight() } else { 1 },
        buffered_bound: if concurrent {
            cfg.max_buffered()
        } else {
            2 * (cfg.block_size as u64 + 64 * 1024)
        },
    })
}

/// Creates the output directory, refuses one inside the input tree (the walk would find the
/// outputs), and removes a manifest left by an earlier run, so that only this run's success
/// can put one there.
fn prepare_output(io: &Io, cfg: &Config) -> Result<(), PipelineError> {
    let existed = zsync::fs::exists(io, &cfg.output).unwrap_or(true);
    zsync::fs::create_dir_all(io, &cfg.output)
        .map_err(|e| PipelineError::new("create directory", &cfg.output, e))?;
    let input = zsync::fs::canonicalize(io, &cfg.input)
        .map_err(|e| PipelineError::new("open input", &cfg.input, e))?;
    let output = zsync::fs::canonicalize(io, &cfg.output)
        .map_err(|e| PipelineError::new("open output", &cfg.output, e))?;
    if output.starts_with(&input) {
        if !existed {
            // Leave the input tree as it was.
            let _ = zsync::fs::remove_dir(io, &cfg.output);
        }
        return Err(PipelineError::new(
            "use output directory",
            &cfg.output,
            io::Error::new(io::ErrorKind::InvalidInput, "it is inside the input tree"),
        ));
    }
    let manifest = cfg.output.join(MANIFEST_NAME);
    match zsync::fs::remove_file(io, &manifest) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(PipelineError::new("remove old manifest", &manifest, e))
        }
        _ => Ok(()),
    }
}

/// Writes the manifest under a temporary name and renames it into place.
fn write_manifest(
    io: &Io,
    cfg: &Config,
    entries: &mut [manifest::Entry],
) -> Result<(), PipelineError> {
    let bytes = manifest::render(entries, cfg.level);
    let path = cfg.output.join(MANIFEST_NAME);
    let partial = manifest::partial_path(&path);
    let file = zsync::fs::File::create(io, &partial)
        .map_err(|e| PipelineError::new("write manifest", &partial, e))?;
    let written =
        file.write_all_at(&bytes, 0).and_then(
            |()| {
                if cfg.fsync {
                    file.sync_all()
                } else {
                    Ok(())
                }
            },
        );
    drop(file);
    if let Err(e) = written.and_then(|()| zsync::fs::rename(io, &partial, &path)) {
        let _ = zsync::fs::remove_file(io, &partial);
        return Err(PipelineError::new("write manifest", &path, e));
    }
    Ok(())
}

/// The stages as concurrent tasks joined by bounded channels.
fn run_stages(
    io: &Io,
    cfg: &Config,
    stats: &Arc<Stats>,
    abort: &Arc<Abort>,
) -> Result<Vec<manifest::Entry>, Stop> {
    let (entry_tx, entry_rx) = channel::bounded::<Entry>(cfg.queue);
    let (cpu_tx, cpu_rx) = channel::bounded::<ToCpu>(cfg.queue);
    let (write_tx, write_rx) = channel::bounded::<ToWrite>(cfg.queue);
    let (done_tx, done_rx) = channel::bounded::<manifest::Entry>(cfg.queue);
    let cfg = Arc::new(cfg.clone());
    let mut group: Group<StageResult> = Group::fail_fast(io);
    {
        let (cfg, stats, abort) = (cfg.clone(), stats.clone(), abort.clone());
        start(&mut group, move |io| {
            walk(io, &cfg.input, &stats, &abort, &mut |entry| {
                entry_tx.send(entry).map_err(|_| Stop)
            })
        });
    }
    for _ in 0..cfg.readers.max(1) {
        let (cfg, stats, abort) = (cfg.clone(), stats.clone(), abort.clone());
        let (rx, tx) = (entry_rx.clone(), cpu_tx.clone());
        start(&mut group, move |io| {
            reader(io, &cfg, &stats, &abort, rx, tx)
        });
    }
    for _ in 0..cfg.cpu.max(1) {
        let (cfg, stats, abort) = (cfg.clone(), stats.clone(), abort.clone());
        let (rx, tx) = (cpu_rx.clone(), write_tx.clone());
        start(&mut group, move |io| {
            compressor(io, &cfg, &stats, &abort, rx, tx)
        });
    }
    for _ in 0..cfg.writers.max(1) {
        let (cfg, stats, abort) = (cfg.clone(), stats.clone(), abort.clone());
        let (rx, tx) = (write_rx.clone(), done_tx.clone());
        start(&mut group, move |io| {
            writer(io, &cfg, &stats, &abort, rx, tx)
        });
    }
    // Only the stages hold channel ends now: a channel closes when its stage is done.
    drop((entry_rx, cpu_tx, cpu_rx, write_tx, write_rx, done_tx));
    // The manifest stage: the root collects the finished files until every writer is gone
    // (done, or stopped by a failure).
    let mut entries = Vec::new();
    loop {
        match done_rx.recv() {
            Ok(entry) => entries.push(entry),
            Err(RecvError::Closed) => break,
            Err(_) => {
                // The root was canceled: stop the stages and wait for them (dropping the group).
                group.request_cancel();
                break;
            }
        }
    }
    group.try_join_all()?;
    Ok(entries)
}

/// Starts a stage task: it must run concurrently with the others.
fn start(group: &mut Group<StageResult>, f: impl FnOnce(&Io) -> StageResult + Send + 'static) {
    if group.concurrent(f).is_err() {
        unreachable!("run_stages runs only where `concurrent` is available");
    }
}

/// Stage 2: opens files and streams their blocks to the CPU stage.
fn reader(
    io: &Io,
    cfg: &Config,
    stats: &Arc<Stats>,
    abort: &Abort,
    entries: Receiver<Entry>,
    to_cpu: Sender<ToCpu>,
) -> StageResult {
    loop {
        let entry = match entries.recv() {
            Ok(entry) => entry,
            Err(RecvError::Closed) => return Ok(()),
            Err(_) => return Err(Stop),
        };
        if abort.raised() {
            return Err(Stop);
        }
        let Some(mut source) =
            Source::open(io, entry.clone(), cfg.block_size, stats).map_err(|e| abort.fail(e))?
        else {
            continue;
        };
        let (tx, rx) = channel::bounded(cfg.blocks_per_file);
        let flight = source.flight.take().expect("a new source is in flight");
        to_cpu
            .send(ToCpu {
                entry,
                flight,
                blocks: rx,
            })
            .map_err(|_| Stop)?;
        loop {
            let piece = match source.next_block().map_err(|e| abort.fail(e))? {
                // A short block: the read reached the end of the file.
                Some(block) if block.data().len() < cfg.block_size => Piece::End(Some(block)),
                Some(block) => Piece::Data(block),
                None => Piece::End(None),
            };
            let end = matches!(piece, Piece::End(_));
            tx.send(piece).map_err(|_| Stop)?;
            if end {
                break;
            }
        }
    }
}

/// Stage 3: hashes and compresses each file's blocks off the I/O workers (`io.blocking`) and
/// streams the compressed bytes to a writer.
fn compressor(
    io: &Io,
    cfg: &Config,
    stats: &Arc<Stats>,
    abort: &Abort,
    from_read: Receiver<ToCpu>,
    to_write: Sender<ToWrite>,
) -> StageResult {
    loop {
        let job = match from_read.recv() {
            Ok(job) => job,
            Err(RecvError::Closed) => return Ok(()),
            Err(_) => return Err(Stop),
        };
        if abort.raised() {
            return Err(Stop);
        }
        let (tx, rx) = channel::bounded(cfg.blocks_per_file);
        to_write
            .send(ToWrite {
                entry: job.entry,
                flight: job.flight,
                chunks: rx,
            })
            .map_err(|_| Stop)?;
        let mut codec = FileCodec::new(cfg.level);
        loop {
            // A closed stream without `End`: its reader stopped, on an error it recorded or
            // because the run is canceled.
            match job.blocks.recv().map_err(|_| Stop)? {
                Piece::Data(block) => {
                    let (back, out) = io.blocking(move || {
                        let out = codec.update(block.data());
                        (codec, out)
                    })?;
                    codec = back;
                    if !out.is_empty() {
                        tx.send(OutPiece::Data(Block::new(out, stats)))
                            .map_err(|_| Stop)?;
                    }
                }
                Piece::End(last) => {
                    let done = io.blocking(move || {
                        let mut tail = last.map(|b| codec.update(b.data())).unwrap_or_default();
                        let mut done = codec.finish();
                        tail.append(&mut done.tail);
                        done.tail = tail;
                        done
                    })?;
                    tx.send(OutPiece::End {
                        hash: done.hash,
                        bytes_in: done.bytes_in,
                        tail: Block::new(done.tail, stats),
                    })
                    .map_err(|_| Stop)?;
                    break;
                }
            }
        }
    }
}

/// Stage 4: writes each file's compressed stream, commits it, and reports it to the manifest.
fn writer(
    io: &Io,
    cfg: &Config,
    stats: &Arc<Stats>,
    abort: &Abort,
    from_cpu: Receiver<ToWrite>,
    done: Sender<manifest::Entry>,
) -> StageResult {
    loop {
        let job = match from_cpu.recv() {
            Ok(job) => job,
            Err(RecvError::Closed) => return Ok(()),
            Err(_) => return Err(Stop),
        };
        if abort.raised() {
            return Err(Stop);
        }
        let name = record_name(&job.entry).map_err(|e| abort.fail(e))?;
        let mut out = Output::create(io, &cfg.output, &job.entry.rel, cfg.fsync)
            .map_err(|e| abort.fail(e))?;
        loop {
            match job.chunks.recv().map_err(|_| Stop)? {
                OutPiece::Data(block) => {
                    out.write(block.data()).map_err(|e| abort.fail(e))?;
                    Stats::count(&stats.bytes_out, block.data().len() as u64);
                }
                OutPiece::End {
                    hash,
                    bytes_in,
                    tail,
                } => {
                    out.write(tail.data()).map_err(|e| abort.fail(e))?;
                    Stats::count(&stats.bytes_out, tail.data().len() as u64);
                    let compressed = out.commit().map_err(|e| abort.fail(e))?;
                    Stats::count(&stats.files_done, 1);
                    let entry = manifest::Entry {
                        path: name,
                        size: bytes_in,
                        compressed,
                        blake3: hash.to_hex().to_string(),
                    };
                    done.send(entry).map_err(|_| Stop)?;
                    break;
                }
            }
        }
        drop(job.flight);
    }
}

/// The name the manifest records for `entry`.
fn record_name(entry: &Entry) -> Result<String, PipelineError> {
    manifest_path(&entry.rel).ok_or_else(|| {
        PipelineError::new(
            "record",
            &entry.path,
            io::Error::new(
                io::ErrorKind::InvalidData,
                "the file name is not UTF-8 (the manifest is JSON)",
            ),
        )
    })
}

/// The same stages, one file after another (the Blocking model).
fn run_sequential(
    io: &Io,
    cfg: &Config,
    stats: &Arc<Stats>,
    abort: &Abort,
) -> Result<Vec<manifest::Entry>, Stop> {
    let mut entries = Vec::new();
    walk(io, &cfg.input, stats, abort, &mut |entry| {
        let done = process_one(io, cfg, stats, entry).map_err(|e| abort.fail(e))?;
        entries.extend(done);
        Ok(())
    })?;
    Ok(entries)
}

/// Reads, hashes, compresses and writes one file (the Blocking model's pipeline).
fn process_one(
    io: &Io,
    cfg: &Config,
    stats: &Arc<Stats>,
    entry: Entry,
) -> Result<Option<manifest::Entry>, PipelineError> {
    let Some(mut source) = Source::open(io, entry.clone(), cfg.block_size, stats)? else {
        return Ok(None);
    };
    let name = record_name(&entry)?;
    let mut out = Output::create(io, &cfg.output, &entry.rel, cfg.fsync)?;
    let mut codec = FileCodec::new(cfg.level);
    let cancel = |e: io::Error| PipelineError::new("process", &entry.path, e);
    while let Some(block) = source.next_block()? {
        let (back, bytes) = io
            .blocking(move || {
                let out = codec.update(block.data());
                (codec, out)
            })
            .map_err(cancel)?;
        codec = back;
        out.write(&bytes)?;
        Stats::count(&stats.bytes_out, bytes.len() as u64);
    }
    let done = io.blocking(move || codec.finish()).map_err(cancel)?;
    out.write(&done.tail)?;
    Stats::count(&stats.bytes_out, done.tail.len() as u64);
    let compressed = out.commit()?;
    Stats::count(&stats.files_done, 1);
    Ok(Some(manifest::Entry {
        path: name,
        size: done.bytes_in,
        compressed,
        blake3: done.hash.to_hex().to_string(),
    }))
}
