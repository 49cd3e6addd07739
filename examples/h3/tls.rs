//! TLS for the example: a fresh self-signed certificate for `localhost` (rcgen), a server
//! config offering ALPN `h3` (and the raw-stream protocol of the benchmark), and a client
//! config trusting that one certificate, with quinn's default transport settings but for an
//! idle timeout and the client's keep-alive. rustls with the ring provider, named explicitly so
//! that no process-wide default provider is needed.

use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::rustls;
use quinn::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The error type of the example: anything, across tasks.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// HTTP/3's ALPN protocol id (RFC 9114, section 3.1).
pub const ALPN_H3: &[u8] = b"h3";

/// The benchmark's raw QUIC protocol (one stream of bytes, no HTTP framing).
pub const ALPN_RAW: &[u8] = b"zsync-raw";

/// How long a connection may go without a packet before it is dropped: a peer that vanished
/// (its close lost, its socket gone) is noticed this long after its last packet.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// How often an otherwise idle client pings, so that an idle connection is kept (at a third of
/// [`IDLE_TIMEOUT`], which tolerates two lost pings).
pub const KEEP_ALIVE: Duration = Duration::from_millis(3333);

/// A self-signed certificate for `localhost`: the certificate and its private key.
pub fn self_signed() -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), BoxError> {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()])?;
    let key = PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der());
    Ok((cert.cert.der().clone(), key.into()))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A QUIC server config presenting `cert` and offering `alpn` (in order of preference).
pub fn server_config(
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
    alpn: &[&[u8]],
) -> Result<quinn::ServerConfig, BoxError> {
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)?;
    tls.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tls.max_early_data_size = 0;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(QuicServerConfig::try_from(tls)?));
    let mut transport = quinn::TransportConfig::default();
    transport.max_idle_timeout(Some(IDLE_TIMEOUT.try_into()?));
    config.transport_config(Arc::new(transport));
    Ok(config)
}

/// A QUIC client config that trusts only `cert` and asks for `alpn`.
pub fn client_config(
    cert: CertificateDer<'static>,
    alpn: &[u8],
) -> Result<quinn::ClientConfig, BoxError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert)?;
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![alpn.to_vec()];
    let mut config = quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(tls)?));
    let mut transport = quinn::TransportConfig::default();
    transport.max_idle_timeout(Some(IDLE_TIMEOUT.try_into()?));
    transport.keep_alive_interval(Some(KEEP_ALIVE));
    config.transport_config(Arc::new(transport));
    Ok(config)
}
