//! QUIC on zsync: a [`quinn::Runtime`] whose endpoint and connection drivers are zsync future
//! tasks, whose timers are [`zsync::time::Sleep`](crate::time::Sleep)s and whose UDP socket is a
//! [`zsync::net::UdpSocket`](crate::net::UdpSocket) driven by readiness, with `quinn-udp`'s
//! GSO, GRO and ECN support. Feature `quinn`.
//!
//! Build endpoints with [`server`] and [`client`] (or hand a [`ZsyncRuntime`] to
//! [`quinn::Endpoint::new`]); colorblind code then waits for quinn's futures with
//! [`Io::block_on`], and async code runs in tasks started with
//! [`Io::spawn_future`]. Any model that runs tasks concurrently works: Green, Threaded, and a
//! [`CustomModel`](crate::CustomModel) that schedules future tasks; Blocking does not (quinn's
//! drivers must run beside the code that waits for them), and [`ZsyncRuntime::new`] says so.
//!
//! ```
//! use std::sync::Arc;
//! use zsync::compat::quinn::{client, server};
//!
//! zsync::run(zsync::Model::Green, |io| -> Result<(), Box<dyn std::error::Error>> {
//!     // A self-signed certificate for "localhost", trusted by the client.
//!     let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()])?;
//!     let cert_der = cert.cert.der().clone();
//!     let key = quinn::rustls::pki_types::PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der());
//!     let server_config = quinn::ServerConfig::with_single_cert(vec![cert_der.clone()], key.into())?;
//!     let mut roots = quinn::rustls::RootCertStore::empty();
//!     roots.add(cert_der)?;
//!     let client_config = quinn::ClientConfig::with_root_certificates(Arc::new(roots))?;
//!
//!     let server = server(io, server_config, "127.0.0.1:0".parse()?)?;
//!     let addr = server.local_addr()?;
//!     // The server answers one stream in a future task...
//!     let answered = io.spawn_future(async move {
//!         let conn = server.accept().await.expect("endpoint open").await?;
//!         let (mut send, mut recv) = conn.accept_bi().await?;
//!         let request = recv.read_to_end(64).await?;
//!         send.write_all(&request).await?;
//!         send.finish()?;
//!         conn.closed().await; // until the client closes
//!         Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
//!     });
//!
//!     // ...and colorblind code is the client.
//!     let endpoint = client(io, "127.0.0.1:0".parse()?)?;
//!     let conn = io.block_on(endpoint.connect_with(client_config, addr, "localhost")?)??;
//!     let (mut send, mut recv) = io.block_on(conn.open_bi())??;
//!     io.block_on(send.write_all(b"ping"))??;
//!     send.finish()?;
//!     assert_eq!(io.block_on(recv.read_to_end(64))??, b"ping");
//!     conn.close(0u32.into(), b"done");
//!     io.block_on(answered)?.map_err(|e| e.to_string())?;
//!     io.block_on(endpoint.wait_idle())?;
//!     Ok(())
//! })
//! .unwrap();
//! ```

mod socket;

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use quinn::{AsyncTimer, AsyncUdpSocket, Endpoint, EndpointConfig, Runtime, ServerConfig};

use crate::time::{sleep_until, Sleep};
use crate::Io;

/// A [`quinn::Runtime`] on a zsync runtime: quinn's drivers run as future tasks of its [`Io`],
/// its timers are [`Sleep`]s and its sockets
/// [`zsync::net::UdpSocket`](crate::net::UdpSocket)s.
///
/// Hand it to [`quinn::Endpoint::new`] (or use [`server`] and [`client`], which do):
///
/// ```
/// use std::sync::Arc;
/// use zsync::compat::quinn::ZsyncRuntime;
///
/// zsync::run(zsync::Model::Threaded, |io| -> std::io::Result<()> {
///     let runtime = Arc::new(ZsyncRuntime::new(io)?);
///     let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
///     let endpoint =
///         quinn::Endpoint::new(quinn::EndpointConfig::default(), None, socket, runtime)?;
///     assert!(endpoint.local_addr()?.port() != 0);
///     Ok(())
/// })
/// .unwrap();
/// ```
#[derive(Clone)]
pub struct ZsyncRuntime {
    io: Io,
}

impl ZsyncRuntime {
    /// A runtime for quinn on `io`'s model.
    ///
    /// Errors: `Unsupported` on a model that cannot run tasks concurrently
    /// ([`Io::supports_concurrency`] false: Blocking), where quinn's endpoint driver, a task that
    /// runs as long as the endpoint, would run inline and never return.
    ///
    /// ```
    /// use zsync::compat::quinn::ZsyncRuntime;
    ///
    /// zsync::run(zsync::Model::Blocking, |io| {
    ///     let refused = ZsyncRuntime::new(io).unwrap_err();
    ///     assert_eq!(refused.kind(), std::io::ErrorKind::Unsupported);
    /// });
    /// ```
    pub fn new(io: &Io) -> io::Result<ZsyncRuntime> {
        if !io.supports_concurrency() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "quinn needs a model that runs tasks concurrently; {} does not",
                    io.model_name()
                ),
            ));
        }
        Ok(ZsyncRuntime { io: io.clone() })
    }

    /// The [`Io`] whose tasks run quinn's drivers.
    ///
    /// ```
    /// zsync::run(zsync::Model::Green, |io| {
    ///     let runtime = zsync::compat::quinn::ZsyncRuntime::new(io).unwrap();
    ///     assert_eq!(runtime.io().model(), io.model());
    /// });
    /// ```
    pub fn io(&self) -> &Io {
        &self.io
    }
}

impl fmt::Debug for ZsyncRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZsyncRuntime")
            .field("model", &self.io.model_name())
            .finish()
    }
}

impl Runtime for ZsyncRuntime {
    fn new_timer(&self, deadline: Instant) -> Pin<Box<dyn AsyncTimer>> {
        Box::pin(sleep_until(deadline))
    }

    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) {
        // Detached: quinn's drivers end by themselves when their endpoint or connection is
        // gone, and a runtime that shuts down first cancels them (dropped at their next poll).
        self.io.spawn_future(future).detach();
    }

    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        Ok(Arc::new(socket::QuicSocket::new(&self.io, socket)?))
    }

    /// The monotonic clock, as quinn's default: the timers it arms from this reading are
    /// [`Sleep`]s, which run on the same clock.
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// quinn's timer is a zsync sleep; quinn moves its deadline with `reset` as the connection's
/// next timeout changes.
impl AsyncTimer for Sleep {
    fn reset(self: Pin<&mut Self>, deadline: Instant) {
        Sleep::reset(self.get_mut(), deadline);
    }

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Future::poll(self, cx)
    }
}

/// A QUIC endpoint that accepts connections with `config` (and can also connect out), bound
/// to `addr`, driven by `io`'s tasks. quinn's `Endpoint::server` on zsync.
///
/// Errors: those of [`ZsyncRuntime::new`] and of binding the socket (`AddrInUse`, …).
///
/// ```
/// use zsync::compat::quinn::server;
///
/// zsync::run(zsync::Model::Green, |io| -> Result<(), Box<dyn std::error::Error>> {
///     let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()])?;
///     let key = quinn::rustls::pki_types::PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der());
///     let config = quinn::ServerConfig::with_single_cert(vec![cert.cert.der().clone()], key.into())?;
///     let endpoint = server(io, config, "127.0.0.1:0".parse()?)?;
///     assert_ne!(endpoint.local_addr()?.port(), 0);
///     Ok(())
/// })
/// .unwrap();
/// ```
pub fn server(io: &Io, config: ServerConfig, addr: SocketAddr) -> io::Result<Endpoint> {
    endpoint(io, Some(config), addr)
}

/// A QUIC endpoint that only connects out, bound to `addr` (`0.0.0.0:0` or `[::]:0`: any
/// port), driven by `io`'s tasks. quinn's `Endpoint::client` on zsync; give it a default
/// [`quinn::ClientConfig`] with `set_default_client_config`, or one per connection with
/// `connect_with`.
///
/// Errors: those of [`ZsyncRuntime::new`] and of binding the socket.
///
/// ```
/// zsync::run(zsync::Model::Threaded, |io| -> std::io::Result<()> {
///     let endpoint = zsync::compat::quinn::client(io, "127.0.0.1:0".parse().unwrap())?;
///     endpoint.close(0u32.into(), b"unused");
///     io.block_on(endpoint.wait_idle())
/// })
/// .unwrap();
/// ```
pub fn client(io: &Io, addr: SocketAddr) -> io::Result<Endpoint> {
    endpoint(io, None, addr)
}

fn endpoint(io: &Io, config: Option<ServerConfig>, addr: SocketAddr) -> io::Result<Endpoint> {
    let runtime = Arc::new(ZsyncRuntime::new(io)?);
    let socket = std::net::UdpSocket::bind(addr)?;
    Endpoint::new(EndpointConfig::default(), config, socket, runtime)
}
