//! The output directory's layout: where each file's compressed output goes, the name it has
//! while it is being written, and the manifest that lists every finished output with its
//! hash. Shared with the benchmark's peers, so every contender writes the same tree.
//!
//! The manifest is the run's claim of success: it is written last, under a temporary name,
//! and renamed into place only when every file is done. A run that fails leaves no manifest
//! (an old one is removed before the run starts), and no output under its final name that is
//! not complete: outputs are written as `NAME.gz.partial` and renamed when complete.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::codec::OUTPUT_EXTENSION;

/// The manifest's file name in the output directory.
pub const MANIFEST_NAME: &str = "manifest.json";

/// The suffix of a file still being written.
pub const PARTIAL_SUFFIX: &str = ".partial";

/// One finished file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The input's path relative to the input root, `/`-separated.
    pub path: String,
    /// Bytes of input.
    pub size: u64,
    /// Bytes of compressed output.
    pub compressed: u64,
    /// BLAKE3 of the input, lowercase hex.
    pub blake3: String,
}

/// Where the compressed output of the input `rel` (relative to the input root) goes.
pub fn output_path(out_root: &Path, rel: &Path) -> PathBuf {
    let mut name = out_root.join(rel).into_os_string();
    name.push(".");
    name.push(OUTPUT_EXTENSION);
    PathBuf::from(name)
}

/// The name an output has while it is written.
pub fn partial_path(final_path: &Path) -> PathBuf {
    let mut name = OsString::from(final_path.as_os_str());
    name.push(PARTIAL_SUFFIX);
    PathBuf::from(name)
}

/// `rel` as the manifest spells it, or `None` if it is not UTF-8 (the manifest is JSON).
pub fn manifest_path(rel: &Path) -> Option<String> {
    let s = rel.to_str()?;
    Some(s.replace(std::path::MAIN_SEPARATOR, "/"))
}

/// The manifest's bytes: the entries sorted by path, one JSON object per file.
pub fn render(entries: &mut [Entry], level: u32) -> Vec<u8> {
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    let files: Vec<serde_json::Value> = entries
        .iter()
        .map(|e| {
            serde_json::json!({
                "path": e.path,
                "size": e.size,
                "compressed": e.compressed,
                "blake3": e.blake3,
            })
        })
        .collect();
    let total_in: u64 = entries.iter().map(|e| e.size).sum();
    let total_out: u64 = entries.iter().map(|e| e.compressed).sum();
    let doc = serde_json::json!({
        "hash": "blake3",
        "compression": "gzip",
        "level": level,
        "files": files,
        "bytes_in": total_in,
        "bytes_out": total_out,
    });
    let mut bytes = serde_json::to_vec_pretty(&doc).expect("JSON values serialize");
    bytes.push(b'\n');
    bytes
}

/// Parses a manifest written by [`render`] (for checks and tests).
#[allow(dead_code)] // Used by tests/file_pipeline.rs.
pub fn parse(bytes: &[u8]) -> Result<Vec<Entry>, String> {
    let doc: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let files = doc["files"].as_array().ok_or("no `files` array")?;
    files
        .iter()
        .map(|f| {
            Ok(Entry {
                path: f["path"].as_str().ok_or("no path")?.to_string(),
                size: f["size"].as_u64().ok_or("no size")?,
                compressed: f["compressed"].as_u64().ok_or("no compressed size")?,
                blake3: f["blake3"].as_str().ok_or("no hash")?.to_string(),
            })
        })
        .collect()
}
