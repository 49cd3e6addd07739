//! `--generate DIR --files N --bytes SIZE`: a reproducible corpus of compressible mixed
//! content for the benchmark. Plain `std::fs` on the calling thread: it is setup, run before
//! any runtime starts.
//!
//! Files go 100 to a directory, two levels deep (`d007/d3/f0007312.log`). Sizes are skewed as
//! real trees are: most files small, a few large, 1% empty; they are scaled so that the total
//! is `SIZE`. Content comes from three 4 MiB pools, cut at random offsets in 64 KiB slices:
//! English-like text, structured log lines (both compress several-fold, as source trees and
//! logs do) and random bytes (one file in ten: already-compressed media).

use std::fs;
use std::io::{self, Write};
use std::path::Path;

/// A small, fast, reproducible generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

const POOL: usize = 4 << 20;
const SLICE: usize = 64 << 10;

/// The text pool's vocabulary.
const WORDS: &str =
    "the of and to in is that for it as was with be by on not he this are or his from at \
     which but have an had they you were their one all we can her has there been if more \
     when will would who so no runtime fiber worker channel buffer kernel request stream \
     file directory hash compress pipeline stage error cancel deadline thread memory ring";

fn text_pool(rng: &mut Rng) -> Vec<u8> {
    let mut pool = Vec::with_capacity(POOL + 64);
    let words: Vec<&str> = WORDS.split_whitespace().collect();
    let mut line = 0;
    while pool.len() < POOL {
        let word = words[rng.below(words.len() as u64) as usize];
        pool.extend_from_slice(word.as_bytes());
        line += word.len() + 1;
        if line > 72 {
            pool.extend_from_slice(b".\n");
            line = 0;
        } else {
            pool.push(b' ');
        }
    }
    pool.truncate(POOL);
    pool
}

fn log_pool(rng: &mut Rng) -> Vec<u8> {
    const LEVELS: &[&str] = &["INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"];
    const PATHS: &[&str] = &[
        "/api/users",
        "/api/orders",
        "/static/app.js",
        "/health",
        "/login",
    ];
    let mut pool = Vec::with_capacity(POOL + 256);
    let mut t = 1_700_000_000_000u64;
    while pool.len() < POOL {
        t += rng.below(50);
        let _ = writeln!(
            pool,
            "{}.{:03} {} req={:08x} method=GET path={} status={} bytes={} ms={}",
            t / 1000,
            t % 1000,
            LEVELS[rng.below(LEVELS.len() as u64) as usize],
            rng.next() as u32,
            PATHS[rng.below(PATHS.len() as u64) as usize],
            [200, 200, 200, 304, 404, 500][rng.below(6) as usize],
            rng.below(100_000),
            rng.below(900),
        );
    }
    pool.truncate(POOL);
    pool
}

fn random_pool(rng: &mut Rng) -> Vec<u8> {
    (0..POOL / 8)
        .flat_map(|_| rng.next().to_le_bytes())
        .collect()
}

/// Writes `files` files of `bytes` bytes in all under `dir` (created; must be empty or
/// missing). Returns the bytes written.
pub fn generate(dir: &Path, files: u64, bytes: u64, seed: u64) -> io::Result<u64> {
    fs::create_dir_all(dir)?;
    if fs::read_dir(dir)?.next().is_some() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} is not empty", dir.display()),
        ));
    }
    let mut rng = Rng(seed);
    let pools = [
        text_pool(&mut rng),
        log_pool(&mut rng),
        random_pool(&mut rng),
    ];
    // Relative sizes first, then scaled to the total.
    let weights: Vec<u64> = (0..files)
        .map(|_| match rng.below(100) {
            0 => 0,                          // empty
            1..=69 => 10 + rng.below(100),   // small
            70..=94 => 100 + rng.below(300), // medium
            _ => 400 + rng.below(3600),      // large
        })
        .collect();
    let total_weight: u64 = weights.iter().sum::<u64>().max(1);
    let mut written = 0u64;
    for (i, w) in weights.iter().enumerate() {
        let size = (*w as u128 * bytes as u128 / total_weight as u128) as usize;
        let sub = dir
            .join(format!("d{:03}", i / 1000))
            .join(format!("d{}", (i / 100) % 10));
        if i.is_multiple_of(100) {
            fs::create_dir_all(&sub)?;
        }
        let (kind, ext) = match i % 10 {
            0 => (2, "bin"),
            1..=4 => (1, "log"),
            _ => (0, "txt"),
        };
        let pool = &pools[kind];
        let mut f = fs::File::create(sub.join(format!("f{i:07}.{ext}")))?;
        let mut left = size;
        while left > 0 {
            let n = left.min(SLICE);
            let at = rng.below((POOL - n) as u64 + 1) as usize;
            f.write_all(&pool[at..at + n])?;
            left -= n;
        }
        written += size as u64;
    }
    Ok(written)
}

/// Parses `2GiB`, `512MiB`, `64k`, `1000` as bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let num: f64 = num.parse().map_err(|_| format!("`{s}` is not a size"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => return Err(format!("`{other}`: expected B, KiB, MiB or GiB")),
    };
    Ok((num * mult as f64) as u64)
}
