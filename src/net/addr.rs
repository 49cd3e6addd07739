//! Socket addresses and name resolution that does not stall other tasks.
//!
//! [`ToSocketAddrs`] accepts what [`std::net::ToSocketAddrs`] accepts. Literal addresses are
//! parsed in place; a host name is resolved with the system resolver (`getaddrinfo`) on a
//! concurrent task when the model has them (so the workers keep running other tasks), inline on
//! Blocking.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use crate::Io;

mod sealed {
    pub trait Sealed {}
}

/// What a lookup needs: addresses already known, or a `host:port` string to resolve.
#[doc(hidden)]
#[derive(Debug)]
pub enum Lookup {
    /// Nothing to resolve.
    Ready(Vec<SocketAddr>),
    /// A name to pass to the system resolver, as `host:port`.
    Name(String),
}

/// Anything [`std::net::ToSocketAddrs`] accepts: `SocketAddr`, `(IpAddr, u16)`, `"host:port"`,
/// `("host", port)`, `&[SocketAddr]`, …
///
/// Sealed: zsync resolves names itself so that a slow resolver does not stall other tasks.
pub trait ToSocketAddrs: sealed::Sealed {
    #[doc(hidden)]
    fn to_lookup(&self) -> io::Result<Lookup>;
}

macro_rules! literal {
    ($($t:ty),*) => {$(
        impl sealed::Sealed for $t {}
        impl ToSocketAddrs for $t {
            fn to_lookup(&self) -> io::Result<Lookup> {
                Ok(Lookup::Ready(std::net::ToSocketAddrs::to_socket_addrs(self)?.collect()))
            }
        }
    )*};
}

literal!(
    SocketAddr,
    SocketAddrV4,
    SocketAddrV6,
    (IpAddr, u16),
    (Ipv4Addr, u16),
    (Ipv6Addr, u16)
);

impl sealed::Sealed for str {}
impl ToSocketAddrs for str {
    fn to_lookup(&self) -> io::Result<Lookup> {
        if let Ok(addr) = self.parse::<SocketAddr>() {
            return Ok(Lookup::Ready(vec![addr]));
        }
        Ok(Lookup::Name(self.to_owned()))
    }
}

impl sealed::Sealed for String {}
impl ToSocketAddrs for String {
    fn to_lookup(&self) -> io::Result<Lookup> {
        self.as_str().to_lookup()
    }
}

impl sealed::Sealed for (&str, u16) {}
impl ToSocketAddrs for (&str, u16) {
    fn to_lookup(&self) -> io::Result<Lookup> {
        let (host, port) = *self;
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(Lookup::Ready(vec![SocketAddr::new(ip, port)]));
        }
        Ok(Lookup::Name(format!("{host}:{port}")))
    }
}

impl sealed::Sealed for (String, u16) {}
impl ToSocketAddrs for (String, u16) {
    fn to_lookup(&self) -> io::Result<Lookup> {
        (self.0.as_str(), self.1).to_lookup()
    }
}

impl sealed::Sealed for [SocketAddr] {}
impl ToSocketAddrs for [SocketAddr] {
    fn to_lookup(&self) -> io::Result<Lookup> {
        Ok(Lookup::Ready(self.to_vec()))
    }
}

impl<const N: usize> sealed::Sealed for [SocketAddr; N] {}
impl<const N: usize> ToSocketAddrs for [SocketAddr; N] {
    fn to_lookup(&self) -> io::Result<Lookup> {
        Ok(Lookup::Ready(self.to_vec()))
    }
}

impl sealed::Sealed for Vec<SocketAddr> {}
impl ToSocketAddrs for Vec<SocketAddr> {
    fn to_lookup(&self) -> io::Result<Lookup> {
        Ok(Lookup::Ready(self.clone()))
    }
}

impl<T: ToSocketAddrs + ?Sized> sealed::Sealed for &T {}
impl<T: ToSocketAddrs + ?Sized> ToSocketAddrs for &T {
    fn to_lookup(&self) -> io::Result<Lookup> {
        (**self).to_lookup()
    }
}

/// Resolves `addr` to its socket addresses.
///
/// Literal addresses (`"127.0.0.1:80"`, `"[::1]:80"`, `("::1", 80)`, `SocketAddr`, …) are parsed
/// in place: no resolver call, so not a cancellation point. A host name goes to the system
/// resolver, on a concurrent task where the model has them: that is a cancellation point.
///
/// Errors: `NotFound` when a name does not resolve (the message names it), `InvalidInput` for a
/// malformed `host:port`.
///
/// ```
/// zsync::run(zsync::Model::Threaded, |io| {
///     let addrs = zsync::net::resolve(io, "localhost:80").unwrap();
///     assert!(addrs.iter().all(|a| a.port() == 80 && a.ip().is_loopback()));
/// });
/// ```
#[track_caller]
pub fn resolve(io: &Io, addr: impl ToSocketAddrs) -> io::Result<Vec<SocketAddr>> {
    let _wait = crate::diag::wait_point::note(
        crate::diag::wait_point::WaitOp::Resolve,
        crate::diag::wait_point::Object::None,
    );
    match addr.to_lookup()? {
        Lookup::Ready(addrs) => Ok(addrs),
        Lookup::Name(name) => {
            crate::context::check()?;
            if let Some(model) = crate::op::custom(io) {
                let op = crate::model::operation::Operation::Resolve { name: &name };
                return model.operate(op)?.into_addresses("resolve");
            }
            if io.supports_concurrency() {
                let owned = name.clone();
                if let Ok(task) = io.concurrent(move |_: &Io| lookup_name(owned)) {
                    return task.join_or_detach()?;
                }
            }
            lookup_name(name)
        }
    }
}

pub(crate) fn lookup_name(name: String) -> io::Result<Vec<SocketAddr>> {
    if !name.contains(':') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid socket address {name:?}: expected \"host:port\""),
        ));
    }
    match std::net::ToSocketAddrs::to_socket_addrs(name.as_str()) {
        Ok(addrs) => Ok(addrs.collect()),
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid socket address {name:?}: {e}"),
        )),
        Err(e) => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("could not resolve {name:?}: {e}"),
        )),
    }
}

/// Resolves `addr` and calls `f` on each address until one succeeds; returns the last error.
pub(crate) fn each_addr<T>(
    io: &Io,
    addr: impl ToSocketAddrs,
    mut f: impl FnMut(SocketAddr) -> io::Result<T>,
) -> io::Result<T> {
    let mut last = None;
    for a in resolve(io, addr)? {
        match f(a) {
            Ok(v) => return Ok(v),
            Err(e) if crate::is_canceled(&e) => return Err(e),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "could not resolve to any address",
        )
    }))
}
