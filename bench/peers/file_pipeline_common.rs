//! What the two file_pipeline peers share besides the example's codec and manifest: their
//! flags, the sorted depth-first walk, and the summary line (the example's `--json` format).

use std::path::{Path, PathBuf};

/// The peers' flags, named as the example's.
pub struct Opts {
    pub input: PathBuf,
    pub output: PathBuf,
    pub level: u32,
    pub readers: usize,
    pub cpu: usize,
    pub writers: usize,
    pub queue: usize,
    pub block_size: usize,
    pub workers: usize,
}

impl Opts {
    /// Parses `--name value` pairs (`--json` and `--quiet` are accepted and implied).
    pub fn parse() -> Opts {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut o = Opts {
            input: PathBuf::new(),
            output: PathBuf::new(),
            level: 6,
            readers: 4,
            cpu: cores,
            writers: 2,
            queue: 16,
            block_size: 256 << 10,
            workers: cores,
        };
        let mut args = std::env::args().skip(1);
        while let Some(flag) = args.next() {
            if flag == "--json" || flag == "--quiet" {
                continue;
            }
            let value = args
                .next()
                .unwrap_or_else(|| panic!("{flag} needs a value"));
            let num = || {
                value
                    .parse::<usize>()
                    .unwrap_or_else(|_| panic!("{flag} {value}"))
            };
            match flag.as_str() {
                "--input" => o.input = PathBuf::from(&value),
                "--output" => o.output = PathBuf::from(&value),
                "--level" => o.level = num() as u32,
                "--readers" => o.readers = num().max(1),
                "--cpu" => o.cpu = num().max(1),
                "--writers" => o.writers = num().max(1),
                "--queue" => o.queue = num().max(1),
                "--block-kib" => o.block_size = num().max(1) << 10,
                "--workers" => o.workers = num().max(1),
                other => panic!("unknown flag {other}"),
            }
        }
        assert!(
            !o.input.as_os_str().is_empty() && !o.output.as_os_str().is_empty(),
            "--input and --output"
        );
        o
    }
}

/// A file to process: its path and its path relative to the input root.
pub struct Entry {
    pub path: PathBuf,
    pub rel: PathBuf,
}

/// The files under `root`, depth first, each directory in name order (the example's order),
/// regular files and symlinks only.
pub fn walk(root: &Path) -> std::io::Result<Vec<Entry>> {
    let mut out = Vec::new();
    let mut dirs = vec![PathBuf::new()];
    while let Some(rel_dir) = dirs.pop() {
        let mut names = Vec::new();
        for e in std::fs::read_dir(root.join(&rel_dir))? {
            let e = e?;
            names.push((e.file_name(), e.file_type()?));
        }
        names.sort_by(|a, b| a.0.cmp(&b.0));
        let mut subdirs = Vec::new();
        for (name, kind) in names {
            let rel = rel_dir.join(name);
            if kind.is_dir() {
                subdirs.push(rel);
            } else if kind.is_file() || kind.is_symlink() {
                out.push(Entry {
                    path: root.join(&rel),
                    rel,
                });
            }
        }
        dirs.extend(subdirs.into_iter().rev());
    }
    Ok(out)
}

/// Ends a run as the example does: writes the manifest of `entries` (atomically: a partial
/// file renamed into place) and prints the summary as the example's `--json` does, `model`
/// naming the peer.
pub fn finish(
    opts: &Opts,
    model: &str,
    mut entries: Vec<crate::manifest::Entry>,
    start: std::time::Instant,
) -> std::io::Result<()> {
    let bytes = crate::manifest::render(&mut entries, opts.level);
    let path = opts.output.join(crate::manifest::MANIFEST_NAME);
    let partial = crate::manifest::partial_path(&path);
    std::fs::write(&partial, bytes)?;
    std::fs::rename(&partial, &path)?;
    println!(
        "{}",
        serde_json::json!({
            "model": model,
            "files": entries.len() as u64,
            "bytes_in": entries.iter().map(|e| e.size).sum::<u64>(),
            "bytes_out": entries.iter().map(|e| e.compressed).sum::<u64>(),
            "seconds": start.elapsed().as_secs_f64(),
        })
    );
    Ok(())
}
