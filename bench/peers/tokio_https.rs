//! Tokio peer of `http_server --tls`: the handler of `tokio_http.rs` (the suite's httparse hello)
//! behind tokio-rustls on a multi-thread runtime, with the same rustls (ring provider, TLS 1.3
//! and 1.2, ALPN `http/1.1`) and the same certificate files as the zsync side. A handshake gets
//! 5 s (the zsync server's default header timeout); the session ends with `close_notify`
//! (tokio-rustls' `shutdown`).
//!
//! `tokio-https --addr 127.0.0.1:8443 --workers 2 --cert cert.pem --key key.pem`

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;
use zsync_bench::{tokio_serve, Args};

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

fn main() {
    let args = Args::from_env();
    let addr = args.get_or("--addr", "127.0.0.1:8443");
    let workers = args.parse_or("--workers", 2usize);
    let (Some(cert), Some(key)) = (args.get("--cert"), args.get("--key")) else {
        eprintln!("usage: tokio-https --addr HOST:PORT --workers N --cert PEM --key PEM");
        std::process::exit(2);
    };
    let certs = CertificateDer::pem_file_iter(&cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .unwrap_or_else(|e| fail(&format!("{cert}: {e}")));
    let key = PrivateKeyDer::from_pem_file(&key).unwrap_or_else(|e| fail(&format!("{key}: {e}")));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|e| fail(&e.to_string()))
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap_or_else(|e| fail(&format!("certificate and key: {e}")));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        let listener = TcpListener::bind(&addr).await.expect("bind");
        loop {
            let Ok((s, _)) = listener.accept().await else {
                continue;
            };
            let _ = s.set_nodelay(true);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(Ok(tls)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(s)).await
                else {
                    return;
                };
                let _ = serve_http(tls).await;
            });
        }
    });
}

fn fail(what: &str) -> ! {
    eprintln!("error: TLS: {what}");
    std::process::exit(1);
}

/// `tokio_http.rs`'s connection loop over the TLS stream, then `close_notify`.
async fn serve_http<S: AsyncRead + AsyncWrite + Unpin>(mut s: S) -> std::io::Result<()> {
    tokio_serve::serve_http(&mut s).await?;
    s.shutdown().await
}
