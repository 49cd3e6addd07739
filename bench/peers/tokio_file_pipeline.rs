//! The file_pipeline example on Tokio, stage for stage: a walk task, `--readers` reader
//! tasks (`tokio::fs`, which runs each read on Tokio's blocking pool), `--cpu` tasks that
//! hash and compress each block with `spawn_blocking` (the example's codec, same level),
//! `--writers` writer tasks (`tokio::fs`, partial name renamed when complete), joined by
//! bounded `tokio::sync::mpsc` channels with the same capacities and the same per-file block
//! streams; the first error aborts every task (a `JoinSet`). Same output tree and manifest as
//! the example. Invoked by the runner (`bench/src/apps/file_pipeline.rs`).

#[path = "../../examples/file_pipeline/codec.rs"]
mod codec;
#[path = "file_pipeline_common.rs"]
mod common;
#[path = "../../examples/file_pipeline/manifest.rs"]
mod manifest;

use std::io;
use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinSet;

type Shared<T> = Arc<Mutex<mpsc::Receiver<T>>>;

enum Piece {
    Data(Vec<u8>),
    /// The end, with the last block when a short read showed it was the last (as the example).
    End(Option<Vec<u8>>),
}

enum OutPiece {
    Data(Vec<u8>),
    End {
        hash: blake3::Hash,
        bytes_in: u64,
        tail: Vec<u8>,
    },
}

struct ToCpu {
    rel: std::path::PathBuf,
    blocks: mpsc::Receiver<Piece>,
}

struct ToWrite {
    rel: std::path::PathBuf,
    chunks: mpsc::Receiver<OutPiece>,
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "stage gone")
}

async fn next<T>(rx: &Shared<T>) -> Option<T> {
    rx.lock().await.recv().await
}

async fn reader(
    opts: Arc<common::Opts>,
    rx: Shared<common::Entry>,
    tx: mpsc::Sender<ToCpu>,
) -> io::Result<()> {
    while let Some(entry) = next(&rx).await {
        let named =
            |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", entry.path.display()));
        let mut file = tokio::fs::File::open(&entry.path).await.map_err(named)?;
        if !file.metadata().await.map_err(named)?.is_file() {
            continue;
        }
        let (btx, brx) = mpsc::channel(opts.blocks_per_file());
        tx.send(ToCpu {
            rel: entry.rel,
            blocks: brx,
        })
        .await
        .map_err(|_| closed())?;
        loop {
            let mut buf = vec![0u8; opts.block_size];
            let mut filled = 0;
            while filled < buf.len() {
                match file.read(&mut buf[filled..]).await.map_err(named)? {
                    0 => break,
                    n => filled += n,
                }
            }
            let piece = match filled {
                0 => Piece::End(None),
                n if n < buf.len() => {
                    buf.truncate(n);
                    Piece::End(Some(buf))
                }
                _ => Piece::Data(buf),
            };
            let end = matches!(piece, Piece::End(_));
            btx.send(piece).await.map_err(|_| closed())?;
            if end {
                break;
            }
        }
    }
    Ok(())
}

async fn compressor(
    opts: Arc<common::Opts>,
    rx: Shared<ToCpu>,
    tx: mpsc::Sender<ToWrite>,
) -> io::Result<()> {
    while let Some(mut job) = next(&rx).await {
        let (otx, orx) = mpsc::channel(opts.blocks_per_file());
        tx.send(ToWrite {
            rel: job.rel,
            chunks: orx,
        })
        .await
        .map_err(|_| closed())?;
        let mut codec = codec::FileCodec::new(opts.level);
        loop {
            match job.blocks.recv().await.ok_or_else(closed)? {
                Piece::Data(block) => {
                    let (back, out) = tokio::task::spawn_blocking(move || {
                        let out = codec.update(&block);
                        (codec, out)
                    })
                    .await?;
                    codec = back;
                    if !out.is_empty() {
                        otx.send(OutPiece::Data(out)).await.map_err(|_| closed())?;
                    }
                }
                Piece::End(last) => {
                    let done = tokio::task::spawn_blocking(move || {
                        let mut tail = last.map(|b| codec.update(&b)).unwrap_or_default();
                        let mut done = codec.finish();
                        tail.append(&mut done.tail);
                        done.tail = tail;
                        done
                    })
                    .await?;
                    let end = OutPiece::End {
                        hash: done.hash,
                        bytes_in: done.bytes_in,
                        tail: done.tail,
                    };
                    otx.send(end).await.map_err(|_| closed())?;
                    break;
                }
            }
        }
    }
    Ok(())
}

async fn writer(
    opts: Arc<common::Opts>,
    rx: Shared<ToWrite>,
    tx: mpsc::Sender<manifest::Entry>,
) -> io::Result<()> {
    while let Some(mut job) = next(&rx).await {
        let final_path = manifest::output_path(&opts.output, &job.rel);
        if let Some(dir) = final_path.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        let partial = manifest::partial_path(&final_path);
        let mut out = tokio::fs::File::create(&partial).await?;
        let mut written = 0u64;
        loop {
            match job.chunks.recv().await.ok_or_else(closed)? {
                OutPiece::Data(bytes) => {
                    out.write_all(&bytes).await?;
                    written += bytes.len() as u64;
                }
                OutPiece::End {
                    hash,
                    bytes_in,
                    tail,
                } => {
                    out.write_all(&tail).await?;
                    written += tail.len() as u64;
                    out.flush().await?;
                    drop(out);
                    tokio::fs::rename(&partial, &final_path).await?;
                    let entry = manifest::Entry {
                        path: manifest::manifest_path(&job.rel).expect("UTF-8 names"),
                        size: bytes_in,
                        compressed: written,
                        blake3: hash.to_hex().to_string(),
                    };
                    tx.send(entry).await.map_err(|_| closed())?;
                    break;
                }
            }
        }
    }
    Ok(())
}

impl common::Opts {
    fn blocks_per_file(&self) -> usize {
        2
    }
}

async fn run(opts: Arc<common::Opts>) -> io::Result<Vec<manifest::Entry>> {
    tokio::fs::create_dir_all(&opts.output).await?;
    let _ = tokio::fs::remove_file(opts.output.join(manifest::MANIFEST_NAME)).await;
    let (etx, erx) = mpsc::channel::<common::Entry>(opts.queue);
    let (ctx, crx) = mpsc::channel::<ToCpu>(opts.queue);
    let (wtx, wrx) = mpsc::channel::<ToWrite>(opts.queue);
    let (dtx, mut drx) = mpsc::channel::<manifest::Entry>(opts.queue);
    let (erx, crx, wrx) = (
        Arc::new(Mutex::new(erx)),
        Arc::new(Mutex::new(crx)),
        Arc::new(Mutex::new(wrx)),
    );
    let mut set = JoinSet::new();
    let input = opts.input.clone();
    set.spawn(async move {
        // The walk is std::fs on the blocking pool, in one go (as tokio::fs would, call by call).
        let files = tokio::task::spawn_blocking(move || common::walk(&input)).await??;
        for f in files {
            etx.send(f).await.map_err(|_| closed())?;
        }
        Ok(())
    });
    for _ in 0..opts.readers {
        set.spawn(reader(opts.clone(), erx.clone(), ctx.clone()));
    }
    for _ in 0..opts.cpu {
        set.spawn(compressor(opts.clone(), crx.clone(), wtx.clone()));
    }
    for _ in 0..opts.writers {
        set.spawn(writer(opts.clone(), wrx.clone(), dtx.clone()));
    }
    drop((ctx, wtx, dtx));
    let mut entries = Vec::new();
    let mut failure = None;
    loop {
        tokio::select! {
            entry = drx.recv() => match entry {
                Some(e) => entries.push(e),
                None => break,
            },
            Some(joined) = set.join_next() => {
                let result = joined.map_err(io::Error::other).and_then(|r| r);
                if let Err(e) = result {
                    failure.get_or_insert(e);
                    set.abort_all();
                }
            }
        }
    }
    while let Some(joined) = set.join_next().await {
        if let Ok(Err(e)) = joined {
            failure.get_or_insert(e);
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(entries)
}

fn main() -> io::Result<()> {
    let opts = Arc::new(common::Opts::parse());
    let start = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.workers)
        .enable_all()
        .build()?;
    let entries = rt.block_on(run(opts.clone()))?;
    common::finish(
        &opts,
        &format!("tokio ({} workers)", opts.workers),
        entries,
        start,
    )
}
