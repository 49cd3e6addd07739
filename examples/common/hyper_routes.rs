//! The routes of the hyper servers, runtime-free: `examples/hyper_server.rs` serves them on
//! zsync, `tests/hyper.rs` tests them there, and the benchmark runner's `tokio-hyper` peer
//! serves the very same handler on Tokio (it includes this file with `#[path]`).
//!
//! `GET /` → `200`, `text/plain`, `Hello, World!` (the benchmark route, as
//! `examples/http_server.rs`'s); `POST /echo` → the request body back; anything else `404`.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE, SERVER};
use hyper::{Method, Request, Response, StatusCode};

/// The body of `GET /`.
pub const HELLO: &[u8] = b"Hello, World!";

/// A response with `status`, `content-type` and `body` (and `server: zsync`, as the other
/// example servers send).
pub fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: Bytes,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(SERVER, HeaderValue::from_static("zsync"));
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// The routes: `GET /` (and `HEAD /`), `POST /echo`, else `404`.
pub async fn route(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(match (req.method(), req.uri().path()) {
        (&Method::GET | &Method::HEAD, "/") => {
            respond(StatusCode::OK, "text/plain", Bytes::from_static(HELLO))
        }
        (&Method::POST, "/echo") => match req.into_body().collect().await {
            Ok(body) => respond(StatusCode::OK, "application/octet-stream", body.to_bytes()),
            // The client went away or sent a malformed body: hyper closes the connection.
            Err(_) => respond(StatusCode::BAD_REQUEST, "text/plain", Bytes::new()),
        },
        _ => respond(
            StatusCode::NOT_FOUND,
            "text/plain",
            Bytes::from_static(b"not found"),
        ),
    })
}
