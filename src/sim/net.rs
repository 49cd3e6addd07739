//! The simulated network: TCP connections and UDP sockets between simulated hosts, through
//! links with latency, jitter, bandwidth, loss, duplication and reordering, and partitions.
//!
//! A simulated socket is a real socket the program made (`socket(2)`, nothing more: it is
//! never bound or connected), used as a placeholder descriptor; the world maps the descriptor
//! (number and inode, so that a reused number is not mistaken for the old socket) to a
//! simulated [`Sock`], and every operation on it comes here through the operation seam
//! instead of reaching the kernel.
//!
//! Everything here is decided from the run's PRNG and the simulated clock. Bytes are
//! [`Segment`]s with an arrival time: a receiver sees those that have arrived and waits (on the
//! simulated clock) for the next. TCP stays reliable and in order, as the real one does: a
//! loss delays a segment by a retransmission timeout, a partition holds segments back until it
//! heals, and duplication and reordering are invisible. UDP shows all of them: a lost datagram
//! is gone, a duplicated one comes twice, a reordered one late.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::task::Waker;
use std::time::{Duration, Instant};

use super::host::{self, HostId, HostState};

/// The simulated network's behaviour between different hosts (traffic within a host, over
/// loopback, has none of it). Set with [`Sim::network`](super::Sim::network).
///
/// ```
/// use std::time::Duration;
/// use zsync::sim::{NetFaults, Sim};
///
/// let faults = NetFaults::default()
///     .latency(Duration::from_millis(1), Duration::from_millis(20))
///     .bandwidth(10_000_000)
///     .loss(0.01)
///     .duplicate(0.01)
///     .reorder(0.05)
///     .partitions(Duration::from_secs(30), Duration::from_secs(5))
///     .crashes(Duration::from_secs(60), Duration::from_secs(2));
/// let sim = Sim::new(3).network(faults);
/// # let _ = sim;
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NetFaults {
    /// One-way delay of each segment or datagram, drawn uniformly from this range (the spread
    /// is the jitter).
    pub latency: (Duration, Duration),
    /// Bytes per second each direction of a link between two hosts carries; `None`: no limit.
    pub bandwidth: Option<u64>,
    /// Probability that a segment or datagram is lost: a TCP segment then arrives a
    /// retransmission timeout later (200 ms, per loss), a datagram never.
    pub loss: f64,
    /// Probability that a datagram arrives twice.
    pub duplicate: f64,
    /// Probability that a datagram is held back by up to ten times the maximum latency, so
    /// that later ones overtake it.
    pub reorder: f64,
    /// Seeded partitions: on average every `.0`, two hosts stop reaching each other, for up
    /// to `.1`.
    pub partitions: Option<(Duration, Duration)>,
    /// Seeded crashes: on average every `.0`, a host declared with
    /// [`Sim::host`](super::Sim::host) crashes and restarts after up to `.1`.
    pub crashes: Option<(Duration, Duration)>,
}

impl Default for NetFaults {
    /// 100 µs of latency, no jitter, no limit and no faults.
    fn default() -> NetFaults {
        NetFaults {
            latency: (Duration::from_micros(100), Duration::from_micros(100)),
            bandwidth: None,
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            partitions: None,
            crashes: None,
        }
    }
}

impl NetFaults {
    /// One-way latency between `min` and `max`.
    pub fn latency(mut self, min: Duration, max: Duration) -> Self {
        self.latency = (min, max.max(min));
        self
    }

    /// Each direction of a link carries `bytes_per_second`.
    pub fn bandwidth(mut self, bytes_per_second: u64) -> Self {
        self.bandwidth = Some(bytes_per_second.max(1));
        self
    }

    /// Segments and datagrams are lost with probability `p`.
    pub fn loss(mut self, p: f64) -> Self {
        self.loss = p;
        self
    }

    /// Datagrams arrive twice with probability `p`.
    pub fn duplicate(mut self, p: f64) -> Self {
        self.duplicate = p;
        self
    }

    /// Datagrams are held back (reordered) with probability `p`.
    pub fn reorder(mut self, p: f64) -> Self {
        self.reorder = p;
        self
    }

    /// The seed partitions two hosts about every `every`, for up to `lasting`.
    pub fn partitions(mut self, every: Duration, lasting: Duration) -> Self {
        self.partitions = Some((every, lasting));
        self
    }

    /// The seed crashes a declared host about every `every`, restarting it after up to
    /// `down_for`.
    pub fn crashes(mut self, every: Duration, down_for: Duration) -> Self {
        self.crashes = Some((every, down_for));
        self
    }
}

/// Delay a lost TCP segment takes to be sent again.
const RETRANSMIT: Duration = Duration::from_millis(200);
/// Losses of one segment in a row after which it gets through anyway (as TCP's backoff would,
/// before the connection times out).
const MAX_RETRANSMITS: u32 = 6;
/// Delay over loopback, within one host.
const LOOPBACK: Duration = Duration::from_micros(10);
/// Bytes a connection's receiver holds, unread, before its sender waits.
const WINDOW: usize = 256 * 1024;
/// Largest datagram (`EMSGSIZE` beyond).
const MAX_DATAGRAM: usize = 65_507;
/// First ephemeral port a host gives out.
const EPHEMERAL: u16 = 49_152;

pub(crate) type SockId = u64;

/// What a simulated socket is.
pub(crate) enum Kind {
    Listener {
        local: SocketAddr,
        /// Connections that arrived (at the time given), not accepted yet.
        queue: VecDeque<(Instant, SockId)>,
        /// Bound with `SO_REUSEPORT`: other listeners with it may share the port.
        reuse_port: bool,
    },
    Stream(Stream),
    Udp(Udp),
}

/// One end of a simulated TCP connection.
pub(crate) struct Stream {
    pub(crate) local: SocketAddr,
    pub(crate) peer: SocketAddr,
    peer_id: SockId,
    /// The peer's host.
    peer_host: u32,
    /// What the peer sent, in order, each with its arrival time (`None`: held by a partition).
    inbox: VecDeque<Segment>,
    /// Data bytes in `inbox`.
    queued: usize,
    read_shut: bool,
    write_shut: bool,
    /// A reset is on its way to this end (sent once).
    reset_coming: bool,
}

struct Segment {
    at: Option<Instant>,
    body: Body,
}

enum Body {
    Data(Vec<u8>, usize),
    Fin,
    Rst,
}

/// A simulated UDP socket.
pub(crate) struct Udp {
    local: SocketAddr,
    peer: Option<SocketAddr>,
    /// A "port unreachable" on its way back for a datagram sent to the connected peer: the
    /// next receive fails with `ConnectionRefused` from then (as Linux reports ICMP errors on
    /// connected sockets only).
    refused: Option<Instant>,
    /// Datagrams by arrival time (then sending order).
    inbox: Vec<Datagram>,
}

struct Datagram {
    at: Instant,
    seq: u64,
    from: SocketAddr,
    data: Vec<u8>,
}

/// A simulated socket: its host, its kind, how many descriptors name it, and the tasks waiting
/// on it.
pub(crate) struct Sock {
    host: HostId,
    refs: u32,
    pub(crate) kind: Kind,
    waiters: Vec<Waker>,
}

/// What an attempt at an operation came to.
pub(crate) enum Attempt<T> {
    Done(io::Result<T>),
    /// Not yet: wait until woken, or until the time given.
    Wait(Option<Instant>),
}

/// The network of a simulated run.
pub(crate) struct Network {
    pub(crate) faults: NetFaults,
    pub(crate) hosts: Vec<HostState>,
    fds: HashMap<RawFd, (u64, SockId)>,
    socks: HashMap<SockId, Sock>,
    next_id: SockId,
    next_seq: u64,
    /// Listeners by host and port: several with `SO_REUSEPORT`.
    tcp_ports: HashMap<(u32, u16), Vec<SockId>>,
    udp_ports: HashMap<(u32, u16), SockId>,
    next_port: Vec<u16>,
    partitions: HashSet<(u32, u32)>,
    link_free_at: HashMap<(u32, u32), Instant>,
    /// Tasks waiting for a host to come back or a partition to heal (connects).
    topology_waiters: Vec<Waker>,
    /// Wakers to wake once the world's lock is released.
    pub(crate) to_wake: Vec<Waker>,
    /// Who an attempt that has to wait registers to be woken: the blocked task's waker, a
    /// poll's context's, or nobody (a non-blocking try).
    pub(crate) waker: Option<Waker>,
}

fn err(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

fn gone() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "the simulated socket is gone: its host crashed",
    )
}

fn not_simulated(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!("{what} on a descriptor that is not a simulated socket"),
    )
}

fn loopback_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
    }
}

fn pair(a: u32, b: u32) -> (u32, u32) {
    (a.min(b), a.max(b))
}

fn ino(fd: BorrowedFd<'_>) -> Option<u64> {
    rustix::fs::fstat(fd).ok().map(|st| st.st_ino)
}

fn add_waker(list: &mut Vec<Waker>, waker: &Waker) {
    if !list.iter().any(|w| w.will_wake(waker)) {
        list.push(waker.clone());
    }
}

impl Network {
    pub(crate) fn new(faults: NetFaults, names: &[String]) -> Network {
        let hosts: Vec<HostState> = std::iter::once(host::MAIN_HOST.to_owned())
            .chain(names.iter().cloned())
            .map(|name| HostState {
                name,
                epoch: 0,
                up: true,
            })
            .collect();
        Network {
            faults,
            next_port: vec![EPHEMERAL; hosts.len()],
            hosts,
            fds: HashMap::new(),
            socks: HashMap::new(),
            next_id: 1,
            next_seq: 0,
            tcp_ports: HashMap::new(),
            udp_ports: HashMap::new(),
            partitions: HashSet::new(),
            link_free_at: HashMap::new(),
            topology_waiters: Vec::new(),
            to_wake: Vec::new(),
            waker: None,
        }
    }

    /// The host named `name`.
    pub(crate) fn host_named(&self, name: &str) -> io::Result<u32> {
        self.hosts
            .iter()
            .position(|h| h.name == name)
            .map(|i| i as u32)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no simulated host is named {name:?}"),
                )
            })
    }

    /// Whether `host` is the host's current life.
    pub(crate) fn is_current(&self, host: HostId) -> bool {
        self.hosts
            .get(host.index as usize)
            .is_some_and(|h| h.epoch == host.epoch && h.up)
    }

    /// The simulated socket `fd` names, if it names one.
    ///
    /// By number alone: every simulated socket's owner reports its close (`Operation::Close`,
    /// also when the descriptor leaves zsync by `into_std`), so a number in the map is the
    /// socket's; the inode is checked where a mistake would cost most, at the close.
    pub(crate) fn sock_of(&self, fd: BorrowedFd<'_>) -> Option<SockId> {
        self.fds.get(&fd.as_raw_fd()).map(|&(_, id)| id)
    }

    /// [`sock_of`](Self::sock_of), checked by inode: for a descriptor that is about to become
    /// a socket (a bind, a connect), whose number a socket closed without its note (dropped
    /// before zsync wrapped it) may have left behind. A stale entry is forgotten.
    fn fresh_sock_of(&mut self, fd: BorrowedFd<'_>) -> Option<SockId> {
        let &(known, id) = self.fds.get(&fd.as_raw_fd())?;
        if ino(fd) == Some(known) {
            return Some(id);
        }
        self.fds.remove(&fd.as_raw_fd());
        None
    }

    /// Whether `fd` names a simulated socket (alive or gone).
    pub(crate) fn knows(&self, fd: BorrowedFd<'_>) -> bool {
        self.sock_of(fd).is_some()
    }

    fn sock(&mut self, fd: BorrowedFd<'_>) -> io::Result<&mut Sock> {
        let id = self
            .sock_of(fd)
            .ok_or_else(|| not_simulated("a socket operation"))?;
        self.socks.get_mut(&id).ok_or_else(gone)
    }

    fn register(&mut self, fd: BorrowedFd<'_>, id: SockId) -> io::Result<()> {
        let known = ino(fd).ok_or_else(|| err(libc::EBADF))?;
        self.fds.insert(fd.as_raw_fd(), (known, id));
        Ok(())
    }

    fn insert(&mut self, host: HostId, refs: u32, kind: Kind) -> SockId {
        let id = self.next_id;
        self.next_id += 1;
        self.socks.insert(
            id,
            Sock {
                host,
                refs,
                kind,
                waiters: Vec::new(),
            },
        );
        id
    }

    fn wake(&mut self, id: SockId) {
        if let Some(s) = self.socks.get_mut(&id) {
            self.to_wake.append(&mut s.waiters);
        }
    }

    /// Registers the waiter of the attempt under way ([`Network::waker`]) to be woken when
    /// socket `id` changes.
    fn wait_on(&mut self, id: SockId) {
        let Some(waker) = self.waker.clone() else {
            return;
        };
        if let Some(s) = self.socks.get_mut(&id) {
            add_waker(&mut s.waiters, &waker);
        }
    }

    /// Whether socket `fd` is ready for `interest` (a readiness poll of the async side): an
    /// operation would not wait. An error to report counts as ready.
    pub(crate) fn ready(
        &mut self,
        now: Instant,
        fd: BorrowedFd<'_>,
        interest: crate::park::Interest,
    ) -> Attempt<()> {
        let Some(id) = self.sock_of(fd) else {
            return Attempt::Done(Ok(()));
        };
        let Some(sock) = self.socks.get(&id) else {
            return Attempt::Done(Ok(()));
        };
        let waiting = match (&sock.kind, interest) {
            (Kind::Listener { queue, .. }, _) => match queue.front() {
                Some(&(at, _)) if at <= now => return Attempt::Done(Ok(())),
                Some(&(at, _)) => Some(at),
                None => None,
            },
            (Kind::Stream(_) | Kind::Udp(_), crate::park::Interest::Read) => {
                let probe = if matches!(sock.kind, Kind::Udp(_)) {
                    match self.recv_from(now, fd, &mut [], true) {
                        Attempt::Done(_) => return Attempt::Done(Ok(())),
                        Attempt::Wait(at) => return Attempt::Wait(at),
                    }
                } else {
                    self.recv(now, fd, &mut [0], true)
                };
                return match probe {
                    Attempt::Done(_) => Attempt::Done(Ok(())),
                    Attempt::Wait(at) => Attempt::Wait(at),
                };
            }
            (Kind::Udp(_), crate::park::Interest::Write) => return Attempt::Done(Ok(())),
            (Kind::Stream(s), crate::park::Interest::Write) => {
                let room = match self.socks.get(&s.peer_id).map(|p| &p.kind) {
                    Some(Kind::Stream(p)) => WINDOW.saturating_sub(p.queued),
                    _ => 1,
                };
                if room > 0 || s.write_shut {
                    return Attempt::Done(Ok(()));
                }
                None
            }
        };
        self.wait_on(id);
        Attempt::Wait(waiting)
    }

    fn ephemeral(&mut self, host: u32, udp: bool) -> io::Result<u16> {
        for _ in 0..(u16::MAX - EPHEMERAL) {
            let next = &mut self.next_port[host as usize];
            let port = *next;
            *next = if port == u16::MAX {
                EPHEMERAL
            } else {
                port + 1
            };
            let taken = if udp {
                self.udp_ports.contains_key(&(host, port))
            } else {
                self.tcp_ports.contains_key(&(host, port))
            };
            if !taken {
                return Ok(port);
            }
        }
        Err(err(libc::EADDRNOTAVAIL))
    }

    /// Which host `ip` reaches from `from`: loopback is `from` itself.
    fn host_at(&self, from: u32, ip: IpAddr) -> Option<u32> {
        if ip.is_loopback() {
            return Some(from);
        }
        host::index_of(ip, self.hosts.len())
    }

    /// Checks that `addr` names `host` (its address, loopback or any) for a bind.
    fn bindable(&self, host: u32, addr: SocketAddr) -> io::Result<()> {
        let ip = addr.ip();
        if ip.is_unspecified()
            || ip.is_loopback()
            || host::index_of(ip, self.hosts.len()) == Some(host)
        {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                format!(
                    "{ip} is not an address of simulated host {:?} (its address is {})",
                    self.hosts[host as usize].name,
                    host::address_of(host)
                ),
            ))
        }
    }

    /// Binds `fd` (a placeholder socket of `host`) to `addr`: a listener with `listen`, else a
    /// UDP socket.
    pub(crate) fn bind(
        &mut self,
        host: HostId,
        fd: BorrowedFd<'_>,
        mut addr: SocketAddr,
        listen: bool,
    ) -> io::Result<()> {
        if self.fresh_sock_of(fd).is_some() {
            return Err(err(libc::EINVAL));
        }
        self.bindable(host.index, addr)?;
        let reuse_port = rustix::net::sockopt::socket_reuseport(fd).unwrap_or(false);
        let key = (host.index, addr.port());
        let taken = if listen {
            // Shared only if every listener on the port, and this one, asked for it.
            self.tcp_ports.get(&key).is_some_and(|ids| {
                !reuse_port
                    || ids.iter().any(|id| {
                        !matches!(
                            self.socks.get(id).map(|s| &s.kind),
                            Some(Kind::Listener {
                                reuse_port: true,
                                ..
                            })
                        )
                    })
            })
        } else {
            self.udp_ports.contains_key(&key)
        };
        if addr.port() == 0 {
            addr.set_port(self.ephemeral(host.index, !listen)?);
        } else if taken {
            return Err(err(libc::EADDRINUSE));
        }
        let kind = if listen {
            Kind::Listener {
                local: addr,
                queue: VecDeque::new(),
                reuse_port,
            }
        } else {
            Kind::Udp(Udp {
                local: addr,
                peer: None,
                refused: None,
                inbox: Vec::new(),
            })
        };
        let id = self.insert(host, 1, kind);
        self.register(fd, id)?;
        let key = (host.index, addr.port());
        if listen {
            self.tcp_ports.entry(key).or_default().push(id);
        } else {
            self.udp_ports.insert(key, id);
        }
        Ok(())
    }

    /// Takes listener `id` off its port.
    fn unlisten(&mut self, host: u32, port: u16, id: SockId) {
        if let Some(ids) = self.tcp_ports.get_mut(&(host, port)) {
            ids.retain(|&i| i != id);
            if ids.is_empty() {
                self.tcp_ports.remove(&(host, port));
            }
        }
    }

    /// The socket's own address, or its peer's.
    pub(crate) fn address(&mut self, fd: BorrowedFd<'_>, peer: bool) -> io::Result<SocketAddr> {
        let sock = self.sock(fd)?;
        match (&sock.kind, peer) {
            (Kind::Listener { local, .. }, false) => Ok(*local),
            (Kind::Stream(s), false) => Ok(s.local),
            (Kind::Stream(s), true) => Ok(s.peer),
            (Kind::Udp(u), false) => Ok(u.local),
            (Kind::Udp(u), true) => u.peer.ok_or_else(|| err(libc::ENOTCONN)),
            (Kind::Listener { .. }, true) => Err(err(libc::ENOTCONN)),
        }
    }

    /// One more descriptor, `new`, for `fd`'s socket.
    pub(crate) fn duplicate(&mut self, fd: BorrowedFd<'_>, new: BorrowedFd<'_>) -> io::Result<()> {
        let id = self
            .sock_of(fd)
            .ok_or_else(|| not_simulated("`try_clone`"))?;
        if let Some(s) = self.socks.get_mut(&id) {
            s.refs += 1;
        }
        self.register(new, id)
    }

    /// One of the socket's descriptors closes; the last one closes the socket (a FIN to the
    /// peer, or a reset if data sent to this end was left unread, as TCP does).
    pub(crate) fn close(&mut self, now: Instant, rng: &mut fastrand::Rng, fd: BorrowedFd<'_>) {
        let Some(&(known, id)) = self.fds.get(&fd.as_raw_fd()) else {
            return;
        };
        if ino(fd) != Some(known) {
            // Not the socket the number was registered for: forget the stale entry only.
            self.fds.remove(&fd.as_raw_fd());
            return;
        }
        self.fds.remove(&fd.as_raw_fd());
        let Some(sock) = self.socks.get_mut(&id) else {
            return;
        };
        sock.refs = sock.refs.saturating_sub(1);
        if sock.refs == 0 {
            self.remove(now, rng, id);
        }
    }

    /// Takes socket `id` out of the network, telling its peers.
    fn remove(&mut self, now: Instant, rng: &mut fastrand::Rng, id: SockId) {
        let Some(mut sock) = self.socks.remove(&id) else {
            return;
        };
        self.to_wake.append(&mut sock.waiters);
        match sock.kind {
            Kind::Listener { local, queue, .. } => {
                self.unlisten(sock.host.index, local.port(), id);
                for (_, conn) in queue {
                    self.remove(now, rng, conn);
                }
            }
            Kind::Udp(u) => {
                if self.udp_ports.get(&(sock.host.index, u.local.port())) == Some(&id) {
                    self.udp_ports.remove(&(sock.host.index, u.local.port()));
                }
            }
            Kind::Stream(s) => {
                let body = if s.queued > 0 {
                    Body::Rst
                } else if s.write_shut {
                    return;
                } else {
                    Body::Fin
                };
                self.deliver(now, rng, sock.host.index, s.peer_id, body);
            }
        }
    }

    /// The time a segment of `len` bytes sent now from host `from` to `to` arrives, given the
    /// previous one's arrival (`None`: held); `None` while the two cannot reach each other.
    fn arrival(
        &mut self,
        now: Instant,
        rng: &mut fastrand::Rng,
        from: u32,
        to: u32,
        len: usize,
        after: Option<Option<Instant>>,
    ) -> Option<Instant> {
        if let Some(None) = after {
            return None;
        }
        let at = if from == to {
            now + LOOPBACK
        } else {
            if self.partitions.contains(&pair(from, to)) || !self.hosts[to as usize].up {
                return None;
            }
            let mut at = now + self.latency(rng);
            if let Some(bw) = self.faults.bandwidth {
                let free = self.link_free_at.entry((from, to)).or_insert(now);
                let start = (*free).max(now);
                let busy = Duration::from_nanos(
                    u64::try_from(len as u128 * 1_000_000_000 / u128::from(bw)).unwrap_or(u64::MAX),
                );
                *free = start + busy;
                at = at.max(start + busy + self.faults.latency.0);
            }
            let mut losses = 0;
            while losses < MAX_RETRANSMITS && self.faults.loss > 0.0 && rng.f64() < self.faults.loss
            {
                at += RETRANSMIT;
                losses += 1;
            }
            at
        };
        Some(match after {
            Some(Some(last)) => at.max(last),
            _ => at,
        })
    }

    fn latency(&self, rng: &mut fastrand::Rng) -> Duration {
        let (min, max) = self.faults.latency;
        let span = u64::try_from((max - min).as_nanos()).unwrap_or(u64::MAX);
        if span == 0 {
            min
        } else {
            min + Duration::from_nanos(rng.u64(0..=span))
        }
    }

    /// Puts `body`, sent now from host `from`, in stream `to`'s inbox.
    fn deliver(
        &mut self,
        now: Instant,
        rng: &mut fastrand::Rng,
        from: u32,
        to: SockId,
        body: Body,
    ) {
        let Some(peer) = self.socks.get(&to) else {
            return;
        };
        let Kind::Stream(ps) = &peer.kind else { return };
        let to_host = peer.host.index;
        let after = ps.inbox.back().map(|s| s.at);
        let len = match &body {
            Body::Data(d, _) => d.len(),
            _ => 0,
        };
        let at = self.arrival(now, rng, from, to_host, len, after);
        let Some(peer) = self.socks.get_mut(&to) else {
            return;
        };
        if let Kind::Stream(ps) = &mut peer.kind {
            ps.queued += len;
            ps.inbox.push_back(Segment { at, body });
        }
        self.wake(to);
    }

    /// Connects placeholder `fd` of `host` to `addr`: when the handshake ends, and how.
    pub(crate) fn connect(
        &mut self,
        now: Instant,
        rng: &mut fastrand::Rng,
        host: HostId,
        fd: BorrowedFd<'_>,
        addr: SocketAddr,
    ) -> Attempt<(Instant, io::Result<()>)> {
        if let Some(id) = self.fresh_sock_of(fd) {
            return match self.socks.get_mut(&id).map(|s| &mut s.kind) {
                // A UDP socket: sets its default peer.
                Some(Kind::Udp(u)) => {
                    u.peer = Some(addr);
                    Attempt::Done(Ok((now, Ok(()))))
                }
                Some(_) => Attempt::Done(Err(err(libc::EISCONN))),
                None => Attempt::Done(Err(gone())),
            };
        }
        let Some(to) = self.host_at(host.index, addr.ip()) else {
            return Attempt::Done(Err(io::Error::new(
                io::ErrorKind::HostUnreachable,
                format!("no simulated host has the address {}", addr.ip()),
            )));
        };
        if matches!(
            rustix::net::sockopt::socket_type(fd),
            Ok(rustix::net::SocketType::DGRAM)
        ) {
            // An unbound UDP socket: bound to an ephemeral port, then given its peer.
            let any = SocketAddr::new(
                match addr {
                    SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                    SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                },
                0,
            );
            return Attempt::Done(self.bind(host, fd, any, false).map(|()| {
                if let Ok(Kind::Udp(u)) = self.sock(fd).map(|s| &mut s.kind) {
                    u.peer = Some(addr);
                }
                (now, Ok(()))
            }));
        }
        if to != host.index
            && (self.partitions.contains(&pair(host.index, to)) || !self.hosts[to as usize].up)
        {
            // The SYN goes unanswered until the link or the host is back.
            if let Some(waker) = self.waker.clone() {
                add_waker(&mut self.topology_waiters, &waker);
            }
            return Attempt::Wait(None);
        }
        let rtt = if to == host.index {
            LOOPBACK * 2
        } else {
            self.latency(rng) + self.latency(rng)
        };
        // With several listeners on the port (`SO_REUSEPORT`), the seed picks one, as the
        // kernel's hash would.
        let listener = self.tcp_ports.get(&(to, addr.port())).map(|ids| {
            if ids.len() == 1 {
                ids[0]
            } else {
                ids[rng.usize(..ids.len())]
            }
        });
        let Some(listener) = listener else {
            let refused = io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!("nothing listens on {addr} in the simulation"),
            );
            return Attempt::Done(Ok((now + rtt, Err(refused))));
        };
        let local_ip = if addr.ip().is_loopback() {
            loopback_of(addr.ip())
        } else {
            host::address_of(host.index)
        };
        let local = match self.ephemeral(host.index, false) {
            Ok(port) => SocketAddr::new(local_ip, port),
            Err(e) => return Attempt::Done(Err(e)),
        };
        let client_id = self.next_id;
        let server_id = client_id + 1;
        let stream = |local, peer, peer_id, peer_host| {
            Kind::Stream(Stream {
                local,
                peer,
                peer_id,
                peer_host,
                inbox: VecDeque::new(),
                queued: 0,
                read_shut: false,
                write_shut: false,
                reset_coming: false,
            })
        };
        let server_host = self.socks[&listener].host;
        let listen_addr = match &self.socks[&listener].kind {
            Kind::Listener { local, .. } => *local,
            _ => addr,
        };
        let server_local = if listen_addr.ip().is_unspecified() {
            SocketAddr::new(addr.ip(), addr.port())
        } else {
            listen_addr
        };
        self.insert(host, 1, stream(local, addr, server_id, to));
        self.insert(
            server_host,
            0,
            stream(server_local, local, client_id, host.index),
        );
        if let Err(e) = self.register(fd, client_id) {
            return Attempt::Done(Err(e));
        }
        let arrives = now + rtt / 2;
        if let Some(Kind::Listener { queue, .. }) =
            self.socks.get_mut(&listener).map(|s| &mut s.kind)
        {
            queue.push_back((arrives, server_id));
        }
        self.wake(listener);
        Attempt::Done(Ok((now + rtt, Ok(()))))
    }

    /// Takes an arrived connection off listener `fd`'s queue and names it `new`.
    pub(crate) fn accept(
        &mut self,
        now: Instant,
        fd: BorrowedFd<'_>,
        new: impl FnOnce(SocketAddr) -> io::Result<std::os::fd::OwnedFd>,
    ) -> Attempt<std::os::fd::OwnedFd> {
        let id = match self.sock_of(fd) {
            Some(id) => id,
            None => return Attempt::Done(Err(not_simulated("`accept`"))),
        };
        let Some(sock) = self.socks.get_mut(&id) else {
            return Attempt::Done(Err(gone()));
        };
        let Kind::Listener { queue, .. } = &mut sock.kind else {
            return Attempt::Done(Err(err(libc::EINVAL)));
        };
        match queue.front() {
            Some(&(at, conn)) if at <= now => {
                queue.pop_front();
                let local = match self.socks.get(&conn).map(|s| &s.kind) {
                    Some(Kind::Stream(s)) => s.local,
                    _ => return Attempt::Wait(Some(now)),
                };
                let fd = match new(local) {
                    Ok(fd) => fd,
                    Err(e) => return Attempt::Done(Err(e)),
                };
                if let Some(s) = self.socks.get_mut(&conn) {
                    s.refs = 1;
                }
                Attempt::Done(
                    self.register(std::os::fd::AsFd::as_fd(&fd), conn)
                        .map(|()| fd),
                )
            }
            Some(&(at, _)) => {
                self.wait_on(id);
                Attempt::Wait(Some(at))
            }
            None => {
                self.wait_on(id);
                Attempt::Wait(None)
            }
        }
    }

    /// Sends from `buf` on a connected socket (a stream, or a UDP socket with a peer).
    pub(crate) fn send(
        &mut self,
        now: Instant,
        rng: &mut fastrand::Rng,
        fd: BorrowedFd<'_>,
        buf: &[u8],
    ) -> Attempt<usize> {
        let id = match self.sock_of(fd) {
            Some(id) => id,
            None => return Attempt::Done(Err(not_simulated("a send"))),
        };
        let Some(sock) = self.socks.get_mut(&id) else {
            return Attempt::Done(Err(gone()));
        };
        let from = sock.host.index;
        let s = match &mut sock.kind {
            Kind::Stream(s) => s,
            Kind::Udp(u) => {
                let Some(peer) = u.peer else {
                    return Attempt::Done(Err(err(libc::ENOTCONN)));
                };
                return Attempt::Done(self.send_to(now, rng, fd, buf, peer));
            }
            Kind::Listener { .. } => return Attempt::Done(Err(err(libc::ENOTCONN))),
        };
        if s.write_shut
            || s.inbox
                .iter()
                .any(|seg| matches!(seg.body, Body::Rst) && seg.at.is_some_and(|at| at <= now))
        {
            return Attempt::Done(Err(io::Error::from(io::ErrorKind::BrokenPipe)));
        }
        let peer_id = s.peer_id;
        let Some(peer) = self.socks.get(&peer_id) else {
            // The peer's socket is closed: its host answers with a reset, and the bytes are
            // lost.
            let s = match self.socks.get_mut(&id).map(|s| &mut s.kind) {
                Some(Kind::Stream(s)) => s,
                _ => return Attempt::Done(Ok(buf.len())),
            };
            if !s.reset_coming {
                s.reset_coming = true;
                let peer_host = s.peer_host;
                self.deliver(now, rng, peer_host, id, Body::Rst);
            }
            return Attempt::Done(Ok(buf.len()));
        };
        let queued = match &peer.kind {
            Kind::Stream(ps) => ps.queued,
            _ => 0,
        };
        let room = WINDOW.saturating_sub(queued);
        if buf.is_empty() {
            return Attempt::Done(Ok(0));
        }
        if room == 0 {
            self.wait_on(id);
            return Attempt::Wait(None);
        }
        let n = room.min(buf.len());
        self.deliver(now, rng, from, peer_id, Body::Data(buf[..n].to_vec(), 0));
        Attempt::Done(Ok(n))
    }

    /// Receives into `buf` from a connected socket (a stream, or a UDP socket with a peer).
    pub(crate) fn recv(
        &mut self,
        now: Instant,
        fd: BorrowedFd<'_>,
        buf: &mut [u8],
        peek: bool,
    ) -> Attempt<usize> {
        let id = match self.sock_of(fd) {
            Some(id) => id,
            None => return Attempt::Done(Err(not_simulated("a receive"))),
        };
        let Some(sock) = self.socks.get_mut(&id) else {
            return Attempt::Done(Err(gone()));
        };
        let s = match &mut sock.kind {
            Kind::Stream(s) => s,
            Kind::Udp(_) => {
                return match self.recv_from(now, fd, buf, peek) {
                    Attempt::Done(r) => Attempt::Done(r.map(|(n, _)| n)),
                    Attempt::Wait(at) => Attempt::Wait(at),
                }
            }
            Kind::Listener { .. } => return Attempt::Done(Err(err(libc::ENOTCONN))),
        };
        if s.read_shut {
            return Attempt::Done(Ok(0));
        }
        let mut copied = 0;
        let mut idx = 0;
        let mut blocked_until = None;
        while copied < buf.len() {
            let Some(seg) = s.inbox.get_mut(idx) else {
                break;
            };
            match seg.at {
                Some(at) if at <= now => {}
                at => {
                    blocked_until = Some(at);
                    break;
                }
            }
            match &mut seg.body {
                Body::Data(data, off) => {
                    let n = (data.len() - *off).min(buf.len() - copied);
                    buf[copied..copied + n].copy_from_slice(&data[*off..*off + n]);
                    copied += n;
                    if peek {
                        idx += 1;
                    } else {
                        *off += n;
                        s.queued -= n;
                        if *off == data.len() {
                            s.inbox.pop_front();
                        }
                    }
                }
                Body::Fin => break,
                Body::Rst if copied == 0 => {
                    return Attempt::Done(Err(io::Error::from(io::ErrorKind::ConnectionReset)))
                }
                Body::Rst => break,
            }
        }
        if copied > 0 || buf.is_empty() {
            let peer = s.peer_id;
            if !peek {
                // The window opened: the peer's waiting sends may go on.
                self.wake(peer);
            }
            return Attempt::Done(Ok(copied));
        }
        match (s.inbox.front(), blocked_until) {
            (
                Some(Segment {
                    body: Body::Fin,
                    at: Some(at),
                }),
                _,
            ) if *at <= now => Attempt::Done(Ok(0)),
            (_, Some(until)) => {
                self.wait_on(id);
                Attempt::Wait(until)
            }
            _ => {
                self.wait_on(id);
                Attempt::Wait(None)
            }
        }
    }

    /// Shuts down directions of a stream.
    pub(crate) fn shutdown(
        &mut self,
        now: Instant,
        rng: &mut fastrand::Rng,
        fd: BorrowedFd<'_>,
        how: std::net::Shutdown,
    ) -> io::Result<()> {
        let id = self
            .sock_of(fd)
            .ok_or_else(|| not_simulated("`shutdown`"))?;
        let sock = self.socks.get_mut(&id).ok_or_else(gone)?;
        let from = sock.host.index;
        let Kind::Stream(s) = &mut sock.kind else {
            return Err(err(libc::ENOTCONN));
        };
        use std::net::Shutdown::*;
        if matches!(how, Read | Both) {
            s.read_shut = true;
        }
        let fin = matches!(how, Write | Both) && !s.write_shut;
        if fin {
            s.write_shut = true;
            let peer = s.peer_id;
            self.deliver(now, rng, from, peer, Body::Fin);
        }
        self.wake(id);
        Ok(())
    }

    /// Sends one datagram from UDP socket `fd` to `to`.
    pub(crate) fn send_to(
        &mut self,
        now: Instant,
        rng: &mut fastrand::Rng,
        fd: BorrowedFd<'_>,
        buf: &[u8],
        to: SocketAddr,
    ) -> io::Result<usize> {
        if buf.len() > MAX_DATAGRAM {
            return Err(err(libc::EMSGSIZE));
        }
        let id = self.sock_of(fd).ok_or_else(|| not_simulated("`send_to`"))?;
        let sock = self.socks.get(&id).ok_or_else(gone)?;
        let Kind::Udp(u) = &sock.kind else {
            return Err(err(libc::EISCONN));
        };
        let from_host = sock.host.index;
        let mut from = u.local;
        if from.ip().is_unspecified() {
            from.set_ip(if to.ip().is_loopback() {
                loopback_of(to.ip())
            } else {
                host::address_of(from_host)
            });
        }
        let Some(to_host) = self.host_at(from_host, to.ip()) else {
            return Ok(buf.len());
        };
        let Some(&target) = self.udp_ports.get(&(to_host, to.port())) else {
            let back = if from_host == to_host {
                LOOPBACK * 2
            } else {
                self.latency(rng) * 2
            };
            if let Some(Kind::Udp(u)) = self.socks.get_mut(&id).map(|s| &mut s.kind) {
                if u.peer == Some(to) {
                    u.refused = Some(now + back);
                }
            }
            self.wake(id);
            return Ok(buf.len());
        };
        let copies = if from_host != to_host
            && self.faults.duplicate > 0.0
            && rng.f64() < self.faults.duplicate
        {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let mut at = if from_host == to_host {
                now + LOOPBACK
            } else {
                if self.partitions.contains(&pair(from_host, to_host))
                    || !self.hosts[to_host as usize].up
                    || (self.faults.loss > 0.0 && rng.f64() < self.faults.loss)
                {
                    continue;
                }
                now + self.latency(rng)
            };
            if from_host != to_host && self.faults.reorder > 0.0 && rng.f64() < self.faults.reorder
            {
                let max = self.faults.latency.1 * 10;
                at += Duration::from_nanos(rng.u64(0..=u64::try_from(max.as_nanos()).unwrap_or(0)));
            }
            let seq = self.next_seq;
            self.next_seq += 1;
            if let Some(Kind::Udp(t)) = self.socks.get_mut(&target).map(|s| &mut s.kind) {
                let pos = t.inbox.partition_point(|d| (d.at, d.seq) <= (at, seq));
                t.inbox.insert(
                    pos,
                    Datagram {
                        at,
                        seq,
                        from,
                        data: buf.to_vec(),
                    },
                );
            }
            self.wake(target);
        }
        Ok(buf.len())
    }

    /// Receives one datagram (and its sender) on UDP socket `fd`.
    pub(crate) fn recv_from(
        &mut self,
        now: Instant,
        fd: BorrowedFd<'_>,
        buf: &mut [u8],
        peek: bool,
    ) -> Attempt<(usize, SocketAddr)> {
        let id = match self.sock_of(fd) {
            Some(id) => id,
            None => return Attempt::Done(Err(not_simulated("`recv_from`"))),
        };
        let Some(sock) = self.socks.get_mut(&id) else {
            return Attempt::Done(Err(gone()));
        };
        let Kind::Udp(u) = &mut sock.kind else {
            return Attempt::Done(Err(err(libc::ENOTCONN)));
        };
        // A connected socket takes datagrams from its peer only.
        if let Some(peer) = u.peer {
            u.inbox.retain(|d| d.at > now || d.from == peer);
        }
        match u.refused {
            Some(at) if at <= now && u.peer.is_some() => {
                u.refused = None;
                return Attempt::Done(Err(io::Error::from(io::ErrorKind::ConnectionRefused)));
            }
            Some(at) if u.inbox.first().is_none_or(|d| d.at > now) => {
                self.wait_on(id);
                return Attempt::Wait(Some(at));
            }
            _ => {}
        }
        match u.inbox.first() {
            Some(d) if d.at <= now => {
                let n = d.data.len().min(buf.len());
                buf[..n].copy_from_slice(&d.data[..n]);
                let from = d.from;
                if !peek {
                    u.inbox.remove(0);
                }
                Attempt::Done(Ok((n, from)))
            }
            Some(d) => {
                let at = d.at;
                self.wait_on(id);
                Attempt::Wait(Some(at))
            }
            None => {
                self.wait_on(id);
                Attempt::Wait(None)
            }
        }
    }

    /// Resolves `"name:port"`: a host's name, `localhost`, or an address.
    pub(crate) fn resolve(&self, name: &str) -> io::Result<Vec<SocketAddr>> {
        if let Ok(addr) = name.parse::<SocketAddr>() {
            return Ok(vec![addr]);
        }
        let (host, port) = name.rsplit_once(':').ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid socket address {name:?}: expected \"host:port\""),
            )
        })?;
        let port: u16 = port.parse().map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid port in {name:?}"),
            )
        })?;
        let ip = if host == "localhost" {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            let index = self
                .hosts
                .iter()
                .position(|h| h.name == host)
                .ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("could not resolve {name:?}: no simulated host is named {host:?}"),
                    )
                })?;
            host::address_of(index as u32)
        };
        Ok(vec![SocketAddr::new(ip, port)])
    }

    /// Cuts hosts `a` and `b` off from each other.
    pub(crate) fn partition(&mut self, a: u32, b: u32) {
        if a != b {
            self.partitions.insert(pair(a, b));
        }
    }

    /// Heals every partition: what they held back is on its way.
    pub(crate) fn heal(&mut self, now: Instant, rng: &mut fastrand::Rng) {
        self.partitions.clear();
        self.release_held(now, rng);
    }

    /// Gives the segments a partition or a host's absence held back their arrival times, and
    /// wakes the connects waiting for a way through.
    fn release_held(&mut self, now: Instant, rng: &mut fastrand::Rng) {
        let mut ids: Vec<SockId> = self.socks.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let to = self.socks[&id].host.index;
            let peer_host = match &self.socks[&id].kind {
                Kind::Stream(s) => self.socks.get(&s.peer_id).map(|p| p.host.index),
                _ => None,
            };
            let from = peer_host.unwrap_or(to);
            if from != to
                && (self.partitions.contains(&pair(from, to)) || !self.hosts[to as usize].up)
            {
                continue;
            }
            let mut last = None;
            let mut changed = false;
            let lat: Vec<Duration> = match &self.socks[&id].kind {
                Kind::Stream(s) => s.inbox.iter().map(|_| self.latency(rng)).collect(),
                _ => continue,
            };
            if let Some(Kind::Stream(s)) = self.socks.get_mut(&id).map(|s| &mut s.kind) {
                for (seg, lat) in s.inbox.iter_mut().zip(lat) {
                    if seg.at.is_none() {
                        let at = (now + lat).max(last.unwrap_or(now));
                        seg.at = Some(at);
                        changed = true;
                    }
                    last = seg.at;
                }
            }
            if changed {
                self.wake(id);
            }
        }
        self.to_wake.append(&mut self.topology_waiters);
    }

    /// Host `index` crashes: its sockets are gone (their peers get resets), its ports free.
    pub(crate) fn crash(&mut self, now: Instant, rng: &mut fastrand::Rng, index: u32) {
        let h = &mut self.hosts[index as usize];
        h.up = false;
        h.epoch += 1;
        let mut ids: Vec<SockId> = self
            .socks
            .iter()
            .filter(|(_, s)| s.host.index == index)
            .map(|(&id, _)| id)
            .collect();
        ids.sort_unstable();
        for id in ids {
            let Some(mut sock) = self.socks.remove(&id) else {
                continue;
            };
            self.to_wake.append(&mut sock.waiters);
            match sock.kind {
                Kind::Listener { local, .. } => self.unlisten(index, local.port(), id),
                Kind::Udp(u) => {
                    self.udp_ports.remove(&(index, u.local.port()));
                }
                Kind::Stream(s) => {
                    // Its peers learn of the crash by a reset (what the kernel of a crashed
                    // process sends; a machine that lost power would leave them to time out).
                    self.deliver(now, rng, index, s.peer_id, Body::Rst);
                }
            }
        }
        self.to_wake.append(&mut self.topology_waiters);
    }

    /// Host `index` is back (a new epoch, with no sockets).
    pub(crate) fn restart(&mut self, now: Instant, rng: &mut fastrand::Rng, index: u32) -> HostId {
        let h = &mut self.hosts[index as usize];
        h.up = true;
        let id = HostId {
            index,
            epoch: h.epoch,
        };
        self.release_held(now, rng);
        id
    }
}
