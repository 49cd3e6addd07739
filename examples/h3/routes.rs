//! The buffered routes: plain colorblind functions of a request and its whole body, run by the
//! server in a closure task (`io.spawn`: a fiber on Green, a pool thread on Threaded), so they
//! may block on zsync's I/O, sleep or compute without holding up the connection's future task.
//!
//! The streaming routes (`GET /bytes/N`, `POST /echo`) live in `server.rs`: they move bytes
//! as they come, which is the async code's job.

use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use zsync::Io;

/// The most bytes a buffered route reads of a request body; more is `413`.
pub const MAX_BUFFERED_BODY: usize = 1 << 20;

/// The longest `GET /sleep?ms=` accepted, in milliseconds.
pub const MAX_SLEEP_MS: u64 = 10_000;

/// A buffered response: status, content type and body.
pub type Reply = Response<Vec<u8>>;

/// Whether `path` is one of the streaming routes that `server.rs` serves itself.
pub fn is_streaming(path: &str) -> bool {
    path == "/echo" || path.starts_with("/bytes/")
}

/// Answers a buffered request:
///
/// - `GET /` → `Hello, HTTP/3!`
/// - `POST /digest` → the FNV-1a 64 hash of the body and its length, as text
/// - `GET /sleep?ms=N` → waits `N` ms with `io.sleep` (the task parks; the connection goes on),
///   then `slept N ms`
/// - anything else: `404`, or `405` for a known path with the wrong method
pub fn handle(io: &Io, req: &Request<()>, body: &[u8]) -> Reply {
    let path = req.uri().path();
    match (req.method(), path) {
        (&Method::GET, "/") => text(StatusCode::OK, "Hello, HTTP/3!\n"),
        (&Method::POST, "/digest") => text(
            StatusCode::OK,
            &format!("fnv1a64 {:016x} len {}\n", fnv1a64(body), body.len()),
        ),
        (&Method::GET, "/sleep") => match query_u64(req, "ms") {
            Some(ms) if ms <= MAX_SLEEP_MS => match io.sleep(Duration::from_millis(ms)) {
                Ok(()) => text(StatusCode::OK, &format!("slept {ms} ms\n")),
                Err(e) => text(StatusCode::SERVICE_UNAVAILABLE, &format!("{e}\n")),
            },
            _ => text(
                StatusCode::BAD_REQUEST,
                &format!("want ?ms=0..={MAX_SLEEP_MS}\n"),
            ),
        },
        (_, "/" | "/digest" | "/sleep" | "/echo") => {
            text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
        }
        _ if path.starts_with("/bytes/") => {
            text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// A `text/plain` reply.
pub fn text(status: StatusCode, body: &str) -> Reply {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain; charset=utf-8")
        .body(body.as_bytes().to_vec())
        .expect("a valid static response")
}

/// The FNV-1a 64-bit hash of `data`.
pub fn fnv1a64(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The value of `?name=` in the request's query, as a number.
fn query_u64(req: &Request<()>, name: &str) -> Option<u64> {
    req.uri()
        .query()?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| v.parse().ok())
}
