//! The ceiling: a runtime-free server written directly on io_uring, the best a runtime on this
//! kernel can hope for with the same handler.
//!
//! One ring per thread, each thread with its own `SO_REUSEPORT` listener (the kernel spreads
//! connections), multishot accept, exactly one recv or send in flight per connection (recv →
//! handler → send → recv), and one `io_uring_enter` per loop turn (submit the SQEs queued while
//! draining the completions, and wait for the next). No fibers, no futures, no wakers, no
//! cross-thread anything.
//!
//! `uring-ceiling --addr 127.0.0.1:8080 --workers 2 [--mode http|echo]`

#[cfg(target_os = "linux")]
fn main() {
    ceiling::main()
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("uring-ceiling needs Linux io_uring");
    std::process::exit(1)
}

#[cfg(target_os = "linux")]
mod ceiling {
    use io_uring::{cqueue, opcode, squeue, types, IoUring};
    use slab::Slab;
    use socket2::{Domain, Protocol, Socket, Type};
    use std::net::SocketAddr;
    use std::os::fd::{AsRawFd, RawFd};
    use zsync_bench::{handle_http, Args, BadRequest, BAD_REQUEST_RESPONSE};

    const ACCEPT: u64 = u64::MAX;
    const RECV: u64 = 0;
    const SEND: u64 = 1;
    const RING_ENTRIES: u32 = 4096;
    const BUF: usize = 16 * 1024;

    struct Conn {
        fd: RawFd,
        inbuf: Vec<u8>,
        inlen: usize,
        out: Vec<u8>,
        sent: usize,
        /// Close once `out` is sent (after a 400).
        close_after: bool,
    }

    pub fn main() {
        let args = Args::from_env();
        let addr: SocketAddr = args
            .get_or("--addr", "127.0.0.1:8080")
            .parse()
            .expect("--addr HOST:PORT");
        let workers = args.parse_or("--workers", 2usize).max(1);
        let echo = args.get_or("--mode", "http") == "echo";
        // Bind every listener first, so that the port is fully served once any accepts.
        let mut listeners: Vec<Socket> = (0..workers).map(|_| listen(addr)).collect();
        let first = listeners.remove(0);
        let mut threads = Vec::new();
        for l in listeners {
            threads.push(std::thread::spawn(move || worker(l, echo)));
        }
        worker(first, echo);
        for t in threads {
            let _ = t.join();
        }
    }

    fn listen(addr: SocketAddr) -> Socket {
        let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
            .expect("socket");
        s.set_reuse_address(true).expect("SO_REUSEADDR");
        s.set_reuse_port(true).expect("SO_REUSEPORT");
        s.bind(&addr.into()).expect("bind");
        s.listen(4096).expect("listen");
        s
    }

    fn ring() -> IoUring {
        // The cheapest set-up the kernel accepts: no task-run interrupts, completions run when
        // this (only) thread enters the kernel.
        if let Ok(r) = IoUring::builder()
            .setup_single_issuer()
            .setup_coop_taskrun()
            .setup_defer_taskrun()
            .build(RING_ENTRIES)
        {
            return r;
        }
        if let Ok(r) = IoUring::builder().setup_coop_taskrun().build(RING_ENTRIES) {
            return r;
        }
        IoUring::new(RING_ENTRIES).expect("io_uring_setup")
    }

    fn ud(idx: usize, kind: u64) -> u64 {
        ((idx as u64) << 1) | kind
    }

    fn recv_sqe(idx: usize, c: &mut Conn) -> squeue::Entry {
        if c.inlen == c.inbuf.len() {
            c.inbuf.resize(c.inbuf.len() * 2, 0);
        }
        let free = &mut c.inbuf[c.inlen..];
        opcode::Recv::new(types::Fd(c.fd), free.as_mut_ptr(), free.len() as u32)
            .build()
            .user_data(ud(idx, RECV))
    }

    fn send_sqe(idx: usize, c: &Conn) -> squeue::Entry {
        let rest = &c.out[c.sent..];
        opcode::Send::new(types::Fd(c.fd), rest.as_ptr(), rest.len() as u32)
            .build()
            .user_data(ud(idx, SEND))
    }

    fn worker(listener: Socket, echo: bool) {
        let mut ring = ring();
        let lfd = listener.as_raw_fd();
        let accept = opcode::AcceptMulti::new(types::Fd(lfd))
            .build()
            .user_data(ACCEPT);
        let mut conns: Slab<Conn> = Slab::with_capacity(1024);
        let (submitter, mut sq, mut cq) = ring.split();
        let mut pending: Vec<squeue::Entry> = vec![accept.clone()];
        loop {
            // Queue everything decided last turn, then one io_uring_enter: submit and wait.
            for e in pending.drain(..) {
                // SAFETY: every buffer an SQE points to is owned by a `Conn` in `conns`, whose
                // heap buffer is neither freed nor resized until that SQE's completion arrives
                // (one op in flight per connection; a connection is removed only on the
                // completion of its last op).
                while unsafe { sq.push(&e) }.is_err() {
                    sq.sync();
                    submitter.submit().expect("io_uring_enter");
                    sq.sync();
                }
            }
            sq.sync();
            match submitter.submit_and_wait(1) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
                Err(e) => panic!("io_uring_enter: {e}"),
            }
            cq.sync();
            for cqe in &mut cq {
                let res = cqe.result();
                let data = cqe.user_data();
                if data == ACCEPT {
                    if res >= 0 {
                        let fd = res as RawFd;
                        set_nodelay(fd);
                        let entry = conns.vacant_entry();
                        let idx = entry.key();
                        let c = entry.insert(Conn {
                            fd,
                            inbuf: vec![0u8; BUF],
                            inlen: 0,
                            out: Vec::with_capacity(BUF),
                            sent: 0,
                            close_after: false,
                        });
                        pending.push(recv_sqe(idx, c));
                    }
                    if !cqueue::more(cqe.flags()) {
                        pending.push(accept.clone());
                    }
                    continue;
                }
                let idx = (data >> 1) as usize;
                let kind = data & 1;
                let c = &mut conns[idx];
                if res <= 0 {
                    // Peer closed (0) or error: nothing else is in flight on this connection.
                    // SAFETY: the fd is ours and no op references it any more.
                    unsafe { libc::close(c.fd) };
                    conns.remove(idx);
                    continue;
                }
                let n = res as usize;
                if kind == RECV {
                    if echo {
                        c.out.extend_from_slice(&c.inbuf[..n]);
                    } else {
                        c.inlen += n;
                        match handle_http(&c.inbuf[..c.inlen], &mut c.out) {
                            Ok(used) => {
                                c.inbuf.copy_within(used..c.inlen, 0);
                                c.inlen -= used;
                            }
                            Err(BadRequest) => {
                                c.out.extend_from_slice(BAD_REQUEST_RESPONSE);
                                c.close_after = true;
                            }
                        }
                    }
                    if c.out.is_empty() {
                        pending.push(recv_sqe(idx, c));
                    } else {
                        c.sent = 0;
                        pending.push(send_sqe(idx, c));
                    }
                } else {
                    c.sent += n;
                    if c.sent < c.out.len() {
                        pending.push(send_sqe(idx, c));
                    } else if c.close_after {
                        // SAFETY: as above, nothing is in flight.
                        unsafe { libc::close(c.fd) };
                        conns.remove(idx);
                    } else {
                        c.out.clear();
                        c.sent = 0;
                        pending.push(recv_sqe(idx, c));
                    }
                }
            }
        }
    }

    fn set_nodelay(fd: RawFd) {
        let one: libc::c_int = 1;
        // SAFETY: a valid socket fd and a c_int option value of the right size.
        unsafe {
            libc::setsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}
