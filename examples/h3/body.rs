//! The bytes of the generated bodies (`GET /bytes/N`): a 64 KiB block of a pattern, repeated.
//! The server sends slices of one shared block (no copy per chunk); the client checks each
//! chunk against the block at its offset, so a body of any size is verified without holding it.

use std::sync::OnceLock;

use bytes::Bytes;

/// The pattern's period, and the size of the chunks the server sends.
pub const BLOCK: usize = 64 * 1024;

/// The shared block: byte `i` of every body is `block()[i % BLOCK]`.
pub fn block() -> Bytes {
    static BLOCK_BYTES: OnceLock<Bytes> = OnceLock::new();
    BLOCK_BYTES
        .get_or_init(|| {
            (0..BLOCK)
                .map(|i| (i.wrapping_mul(31) ^ (i >> 9)) as u8)
                .collect::<Vec<u8>>()
                .into()
        })
        .clone()
}

/// The chunks of a body of `len` bytes, in order: slices of the block.
pub fn chunks(len: u64) -> impl Iterator<Item = Bytes> {
    let block = block();
    let mut left = len;
    std::iter::from_fn(move || {
        if left == 0 {
            return None;
        }
        let n = left.min(BLOCK as u64) as usize;
        left -= n as u64;
        Some(block.slice(..n))
    })
}

/// Whether `data`, found at byte `offset` of a body, is what the body holds there.
pub fn matches(offset: u64, mut data: &[u8]) -> bool {
    let block = block();
    let mut at = (offset % BLOCK as u64) as usize;
    while !data.is_empty() {
        let n = data.len().min(BLOCK - at);
        if data[..n] != block[at..at + n] {
            return false;
        }
        data = &data[n..];
        at = 0;
    }
    true
}

/// The raw QUIC benchmark's server side of one stream (runtime-agnostic: quinn's streams are
/// futures): reads the length the client wants (8 bytes, little-endian), writes that many
/// pattern bytes, finishes the stream and waits for the client to have them.
pub async fn serve_raw_stream(mut send: quinn::SendStream, mut recv: quinn::RecvStream) {
    let mut len = [0u8; 8];
    if recv.read_exact(&mut len).await.is_err() {
        return;
    }
    for chunk in chunks(u64::from_le_bytes(len)) {
        if send.write_chunk(chunk).await.is_err() {
            return;
        }
    }
    let _ = send.finish();
    let _ = send.stopped().await;
}
