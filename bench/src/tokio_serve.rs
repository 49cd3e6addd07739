//! The Tokio peers' HTTP connection loop: [`handle_http`](crate::handle_http) over any Tokio
//! stream (a `TcpStream`, a tokio-rustls session), so that the plaintext and the TLS peer
//! serve byte for byte what the zsync servers serve.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::{handle_http, BadRequest, BAD_REQUEST_RESPONSE};

/// Serves keep-alive (and pipelined) requests on `s` until the client closes or sends a
/// malformed request (answered `400`). Leaves closing `s` to the caller.
pub async fn serve_http<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S) -> std::io::Result<()> {
    let mut inbuf = vec![0u8; 8192];
    let mut len = 0;
    let mut out = Vec::with_capacity(4096);
    loop {
        if len == inbuf.len() {
            inbuf.resize(inbuf.len() * 2, 0);
        }
        let n = s.read(&mut inbuf[len..]).await?;
        if n == 0 {
            return Ok(());
        }
        len += n;
        match handle_http(&inbuf[..len], &mut out) {
            Ok(used) => {
                inbuf.copy_within(used..len, 0);
                len -= used;
            }
            Err(BadRequest) => {
                out.extend_from_slice(BAD_REQUEST_RESPONSE);
                return s.write_all(&out).await;
            }
        }
        if !out.is_empty() {
            s.write_all(&out).await?;
            out.clear();
        }
    }
}
