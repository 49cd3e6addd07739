//! The HTTP/3 client, colorblind: plain functions taking `&Io` that wait for h3's futures with
//! `io.block_on` (a Green fiber parks, its worker keeps polling quinn's drivers). h3's
//! connection driver, which must be polled as long as the connection lives, is the one future
//! task. Requests may run at once on one connection: each caller uses its own clone of the
//! request sender.

use std::net::SocketAddr;

use bytes::{Buf, Bytes};
use http::{Method, Request, StatusCode};
use quinn::{Endpoint, VarInt};
use zsync::{Io, Task};

use crate::server::H3_NO_ERROR;
use crate::tls::BoxError;

type SendRequest = h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>;

/// One HTTP/3 connection. Its request methods are [`Requester`]'s (through `Deref`); clone
/// the requester ([`Client::requester`]) to make requests from other tasks at once.
pub struct Client {
    endpoint: Endpoint,
    requester: Requester,
    driver: Task<h3::error::ConnectionError>,
}

/// Makes requests on a [`Client`]'s connection; cheap to clone, one per concurrent task.
#[derive(Clone)]
pub struct Requester {
    quic: quinn::Connection,
    sender: SendRequest,
}

impl std::ops::Deref for Client {
    type Target = Requester;

    fn deref(&self) -> &Requester {
        &self.requester
    }
}

/// A response with its whole body.
#[derive(Debug)]
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: http::HeaderMap,
    /// The body.
    pub body: Vec<u8>,
}

impl Client {
    /// Connects to `server` (TLS name `localhost`) from a new client endpoint on loopback and
    /// sets HTTP/3 up on the connection.
    pub fn connect(
        io: &Io,
        server: SocketAddr,
        config: quinn::ClientConfig,
    ) -> Result<Client, BoxError> {
        let local: SocketAddr = if server.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        }
        .parse()?;
        let endpoint = zsync::compat::quinn::client(io, local)?;
        Client::connect_on(io, &endpoint, server, config)
    }

    /// Like [`connect`](Client::connect), from an existing client endpoint (many connections
    /// can share one socket).
    pub fn connect_on(
        io: &Io,
        endpoint: &Endpoint,
        server: SocketAddr,
        config: quinn::ClientConfig,
    ) -> Result<Client, BoxError> {
        let quic = io.block_on(endpoint.connect_with(config, server, "localhost")?)??;
        let (mut driver, sender) =
            io.block_on(h3::client::new(h3_quinn::Connection::new(quic.clone())))??;
        // h3's control streams: polled until the connection closes.
        let driver =
            io.spawn_future(async move { std::future::poll_fn(|cx| driver.poll_close(cx)).await });
        Ok(Client {
            endpoint: endpoint.clone(),
            requester: Requester { quic, sender },
            driver,
        })
    }

    /// A requester for another task.
    pub fn requester(&self) -> Requester {
        self.requester.clone()
    }

    /// Closes the connection with `H3_NO_ERROR` and waits until the endpoint is idle (the
    /// close acknowledged, or timed out).
    pub fn close(self, io: &Io) -> Result<(), BoxError> {
        self.requester
            .quic
            .close(VarInt::from_u32(H3_NO_ERROR), b"client done");
        let _ = self.driver.join();
        io.block_on(self.endpoint.wait_idle())?;
        Ok(())
    }
}

impl Requester {
    /// The QUIC connection underneath.
    pub fn connection(&self) -> &quinn::Connection {
        &self.quic
    }

    /// `GET path`, the whole body.
    pub fn get(&self, io: &Io, path: &str) -> Result<Reply, BoxError> {
        self.request(io, Method::GET, path, Bytes::new())
    }

    /// A request with `body` (sent while the response is read, so an echo of any size flows),
    /// and the whole response.
    pub fn request(
        &self,
        io: &Io,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<Reply, BoxError> {
        let mut body_out = Vec::new();
        let (status, headers) = self.request_streamed(io, method, path, body, |chunk| {
            body_out.extend_from_slice(chunk);
            Ok(())
        })?;
        Ok(Reply {
            status,
            headers,
            body: body_out,
        })
    }

    /// `GET /bytes/{len}`, every chunk checked against the generated pattern as it arrives
    /// (a body of any size, none of it held): the status, the headers and how many bytes
    /// came. A byte that differs abandons the response with an error naming where.
    pub fn get_generated(
        &self,
        io: &Io,
        len: u64,
    ) -> Result<(StatusCode, http::HeaderMap, u64), BoxError> {
        let mut offset = 0u64;
        let (status, headers) = self.request_streamed(
            io,
            Method::GET,
            &format!("/bytes/{len}"),
            Bytes::new(),
            |chunk| {
                if !crate::body::matches(offset, chunk) {
                    return Err(format!("body differs near byte {offset}").into());
                }
                offset += chunk.len() as u64;
                Ok(())
            },
        )?;
        Ok((status, headers, offset))
    }

    /// A request with `body`; the response body goes to `on_chunk` as it arrives (an error
    /// from it abandons the response: the stream is stopped). Returns the status and headers.
    pub fn request_streamed(
        &self,
        io: &Io,
        method: Method,
        path: &str,
        body: Bytes,
        mut on_chunk: impl FnMut(&[u8]) -> Result<(), BoxError>,
    ) -> Result<(StatusCode, http::HeaderMap), BoxError> {
        let req = Request::builder()
            .method(method)
            .uri(format!("https://localhost{path}"))
            .body(())?;
        let mut sender = self.sender.clone();
        let stream = io.block_on(sender.send_request(req))??;
        let (mut tx, mut rx) = stream.split();
        // A body goes out from a task of its own: a large echo would otherwise fill both
        // flow-control windows and wait for itself. Without one, the request ends here.
        let sending = if body.is_empty() {
            io.block_on(tx.finish())??;
            None
        } else {
            let task = io
                .concurrent(move |io| -> Result<(), BoxError> {
                    io.block_on(tx.send_data(body))??;
                    io.block_on(tx.finish())??;
                    Ok(())
                })
                .map_err(std::io::Error::from)?;
            Some(task)
        };
        let received = (|| -> Result<_, BoxError> {
            let head = io.block_on(rx.recv_response())??;
            while let Some(mut chunk) = io.block_on(rx.recv_data())?? {
                while chunk.has_remaining() {
                    let part = chunk.chunk();
                    let n = part.len();
                    // On an error, returning drops `rx`, which stops the stream (quinn sends
                    // STOP_SENDING). Not h3's `stop_sending`: h3-quinn 0.0.10 panics in it
                    // while a read of the stream is in flight, which h3 may leave behind
                    // after a chunk.
                    on_chunk(part)?;
                    chunk.advance(n);
                }
            }
            let (parts, ()) = head.into_parts();
            Ok((parts.status, parts.headers))
        })();
        if let Some(sending) = sending {
            if received.is_err() {
                // The sender may wait for flow control the server will never give now.
                let _ = sending.cancel();
            } else {
                // A server may answer before it has read the whole body and then stop the
                // request stream (RFC 9114, section 4.1): with the response complete, an error
                // sending the rest of the body is not the request's failure.
                let _ = sending.join();
            }
        }
        received
    }
}
