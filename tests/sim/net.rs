//! `zsync::sim`'s simulated world: named hosts, TCP and UDP between them through a simulated
//! network, per-host disks, crashes, restarts and partitions, by the test or by the seed.
//!
//! What is checked: unchanged `zsync::net` code talks between hosts by name and address, with
//! the simulated latency and bandwidth in the simulated time it takes; `127.0.0.1` is the host
//! itself; nothing listening is `ConnectionRefused`, an unknown name `NotFound`; a partition
//! stalls a TCP connection (no data lost) until it heals, and loses datagrams; a crash resets
//! the host's connections, frees its ports, cancels its tasks and drops its unsynced writes,
//! and a restart runs it again with what its disk kept; UDP shows loss, duplication and
//! reordering; the same seed gives the same log and results with every fault on; the seeded
//! partitions and crashes happen, are logged, and a client with retries survives them; futures
//! (accept, connect, read, write, datagrams) run on the same network; and seed search finds a
//! planted acknowledged-but-unsynced write that the crashes lose, the seed reproduces it event
//! for event, shrinking names the crashes as the fault it needs, and the fixed server survives.
//!
//! Nothing here measures real time: the only real-time bound is a generous watchdog.

use crate::watchdog::watchdog;

use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use zsync::net::{TcpListener, TcpStream, UdpSocket};
use zsync::sim::{self, EventKind, NetFaults, Sim};
use zsync::Io;

/// An echo server on port 7: each connection in a task of its own.
fn echo_server(io: &Io) -> std::io::Result<()> {
    let listener = TcpListener::bind(io, "0.0.0.0:7")?;
    loop {
        let (mut stream, _) = listener.accept()?;
        io.spawn(move |_| -> std::io::Result<u64> {
            let mut reader = stream.try_clone()?;
            std::io::copy(&mut reader, &mut stream)
        })
        .detach();
    }
}

/// Sends `msg` to the echo server at `addr` and reads it back.
fn echo_once(io: &Io, addr: &str, msg: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut c = TcpStream::connect(io, addr)?;
    c.write_all(msg)?;
    c.shutdown(std::net::Shutdown::Write)?;
    let mut back = Vec::new();
    c.read_to_end(&mut back)?;
    Ok(back)
}

#[test]
fn hosts_talk_tcp_by_name_with_the_simulated_latency() {
    watchdog(|| {
        let faults =
            NetFaults::default().latency(Duration::from_millis(10), Duration::from_millis(10));
        let run =
            Sim::new(1)
                .network(faults)
                .host("echo", echo_server)
                .run(|io| -> std::io::Result<_> {
                    let start = io.now();
                    let back = echo_once(io, "echo:7", b"hello")?;
                    let took = io.now() - start;
                    // By address, too: the first declared host is 10.0.0.2.
                    let again = echo_once(io, "10.0.0.2:7", b"again")?;
                    Ok((back, again, took))
                });
        let (back, again, took) = run.value.unwrap();
        assert_eq!(back, b"hello");
        assert_eq!(again, b"again");
        // The handshake, the data and the FIN there and back: at least two round trips of
        // 2 × 10 ms, and nowhere near real time matters.
        assert!(took >= Duration::from_millis(40), "{took:?}");
        assert!(took < Duration::from_secs(1), "{took:?}");
    });
}

#[test]
fn addresses_ports_and_errors_are_those_of_a_real_network() {
    watchdog(|| {
        Sim::new(2)
            .host("db", |io| {
                let l = TcpListener::bind(io, "0.0.0.0:5432")?;
                loop {
                    let (s, peer) = l.accept()?;
                    // The peer is the client's host, on an ephemeral port.
                    assert_eq!(peer.ip().to_string(), "10.0.0.1");
                    assert_eq!(s.peer_addr()?, peer);
                    assert_eq!(s.local_addr()?.to_string(), "10.0.0.2:5432");
                }
            })
            .run(|io| {
                let s = TcpStream::connect(io, "db:5432").unwrap();
                assert_eq!(s.peer_addr().unwrap().to_string(), "10.0.0.2:5432");
                assert_eq!(s.local_addr().unwrap().ip().to_string(), "10.0.0.1");
                let e = TcpStream::connect(io, "db:1").unwrap_err();
                assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");
                let e = TcpStream::connect(io, "nowhere:1").unwrap_err();
                assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
                // Loopback is the host itself; a port taken is taken.
                let l = TcpListener::bind(io, "127.0.0.1:0").unwrap();
                let port = l.local_addr().unwrap().port();
                assert!(port >= 49152, "{port}");
                let e = TcpListener::bind(io, ("127.0.0.1", port)).unwrap_err();
                assert_eq!(e.kind(), ErrorKind::AddrInUse, "{e}");
                let mut c = TcpStream::connect(io, l.local_addr().unwrap()).unwrap();
                let (mut s, _) = l.accept().unwrap();
                c.write_all(b"ping").unwrap();
                let mut buf = [0; 4];
                s.read_exact(&mut buf).unwrap();
                assert_eq!(&buf, b"ping");
                // An address of another host cannot be bound here.
                let e = TcpListener::bind(io, "10.0.0.2:80").unwrap_err();
                assert_eq!(e.kind(), ErrorKind::AddrNotAvailable, "{e}");
                // Dropping one end: the other reads the end of the stream.
                drop(c);
                assert_eq!(s.read(&mut buf).unwrap(), 0);
            });
    });
}

#[test]
fn bandwidth_takes_its_simulated_time_and_a_full_window_waits() {
    watchdog(|| {
        let faults = NetFaults::default().bandwidth(1_000_000);
        let run = Sim::new(3)
            .network(faults)
            .host("sink", |io| {
                let l = TcpListener::bind(io, "0.0.0.0:9")?;
                let (mut s, _) = l.accept()?;
                let mut all = Vec::new();
                s.read_to_end(&mut all)?;
                s.write_all(&(all.len() as u64).to_le_bytes())
            })
            .run(|io| -> std::io::Result<_> {
                let start = io.now();
                let mut c = TcpStream::connect(io, "sink:9")?;
                c.write_all(&vec![7u8; 2_000_000])?;
                c.shutdown(std::net::Shutdown::Write)?;
                let mut n = [0; 8];
                c.read_exact(&mut n)?;
                Ok((u64::from_le_bytes(n), io.now() - start))
            });
        let (n, took) = run.value.unwrap();
        assert_eq!(n, 2_000_000);
        // Two megabytes at a megabyte a second.
        assert!(took >= Duration::from_secs(2), "{took:?}");
        assert!(took < Duration::from_secs(3), "{took:?}");
    });
}

#[test]
fn a_partition_stalls_a_connection_until_it_heals_and_loses_nothing() {
    watchdog(|| {
        let run = Sim::new(4)
            .host("echo", echo_server)
            .run(|io| -> std::io::Result<_> {
                let mut c = TcpStream::connect(io, "echo:7")?;
                sim::partition(io, "main", "echo")?;
                c.write_all(b"held")?;
                // Nothing comes back while the partition lasts.
                let mut buf = [0; 4];
                let e = io
                    .timeout(Duration::from_secs(10), |_| c.read_exact(&mut buf))
                    .unwrap_err();
                assert!(zsync::is_timed_out(&e), "{e}");
                // Nor does a new connection get through.
                let e = io
                    .timeout(Duration::from_secs(5), |io| {
                        TcpStream::connect(io, "echo:7")
                    })
                    .unwrap_err();
                assert!(zsync::is_timed_out(&e), "{e}");
                sim::heal(io)?;
                c.read_exact(&mut buf)?;
                Ok(buf)
            });
        assert_eq!(&run.value.unwrap(), b"held");
        assert!(run
            .log
            .events()
            .iter()
            .any(|e| matches!(e.kind, EventKind::Partition { a: 0, b: 1 })));
    });
}

#[test]
fn a_crash_resets_connections_and_drops_unsynced_writes_and_a_restart_runs_again() {
    watchdog(|| {
        let run = Sim::new(5)
            .host("kv", |io| {
                // Each start appends to its log; only the synced first line is durable.
                let mut f = zsync::fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(io, "/kv/log")?;
                f.write_all(b"start\n")?;
                f.sync_all()?;
                f.write_all(b"unsynced\n")?;
                echo_server(io)
            })
            .run(|io| -> std::io::Result<_> {
                let mut c = TcpStream::connect(io, "kv:7")?;
                c.write_all(b"x")?;
                let mut b = [0; 1];
                c.read_exact(&mut b)?;
                sim::crash(io, "kv")?;
                let e = c.read(&mut b).unwrap_err();
                assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}");
                let e = TcpStream::connect(io, "kv:7").unwrap_err();
                // A host that is down does not answer: the connect waits for its timeout.
                assert!(
                    zsync::is_timed_out(&e) || e.kind() == ErrorKind::TimedOut,
                    "{e}"
                );
                sim::restart(io, "kv")?;
                let back = loop {
                    match echo_once(io, "kv:7", b"again") {
                        Ok(b) => break b,
                        Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                            io.sleep(Duration::from_millis(1))?
                        }
                        Err(e) => return Err(e),
                    }
                };
                let e = sim::crash(io, "main").unwrap_err();
                assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
                Ok(back)
            });
        assert_eq!(run.value.unwrap(), b"again");
        let kinds: Vec<_> = run.log.events().iter().map(|e| e.kind).collect();
        assert!(kinds.contains(&EventKind::Crash { host: 1 }));
        assert!(kinds.contains(&EventKind::Restart { host: 1 }));
    });
}

#[test]
fn each_host_has_its_own_disk_and_a_crash_keeps_what_was_synced() {
    watchdog(|| {
        let run = Sim::new(6)
            .host("store", |io| {
                let before = zsync::fs::read(io, "/data").unwrap_or_default();
                let mut f = zsync::fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(io, "/data")?;
                f.write_all(b"s")?;
                f.sync_all()?;
                f.write_all(b"u")?;
                // Report what the disk held at start over UDP (once the scenario, which starts
                // after the hosts, listens).
                io.sleep(Duration::from_millis(10))?;
                let sock = UdpSocket::bind(io, "0.0.0.0:0")?;
                sock.send_to(&before, "main:99")?;
                io.sleep(Duration::from_secs(3600))
            })
            .run(|io| -> std::io::Result<_> {
                let inbox = UdpSocket::bind(io, "0.0.0.0:99")?;
                let mut buf = [0; 64];
                let (n, _) = inbox.recv_from(&mut buf)?;
                let first = buf[..n].to_vec();
                // The main host's disk does not have the store's file.
                assert_eq!(
                    zsync::fs::read(io, "/data").unwrap_err().kind(),
                    ErrorKind::NotFound
                );
                sim::crash(io, "store")?;
                sim::restart(io, "store")?;
                let (n, _) = inbox.recv_from(&mut buf)?;
                Ok((first, buf[..n].to_vec()))
            });
        let (first, second) = run.value.unwrap();
        assert_eq!(first, b"");
        // The synced "s" survived the crash; the unsynced "u" did not.
        assert_eq!(second, b"s");
    });
}

/// Sends 2,000 numbered datagrams from host "a" to the scenario and returns what arrived, in
/// order.
fn udp_stream(seed: u64, faults: NetFaults) -> Vec<u32> {
    Sim::new(seed)
        .network(faults)
        .host("a", |io| {
            let s = UdpSocket::bind(io, "0.0.0.0:0")?;
            s.connect("main:5000")?;
            // The scenario starts after the hosts: give it the time to bind.
            io.sleep(Duration::from_millis(10))?;
            for i in 0u32..2000 {
                s.send(&i.to_le_bytes())?;
                io.sleep(Duration::from_micros(100))?;
            }
            s.send(b"end")?;
            Ok(())
        })
        .run(|io| {
            let s = UdpSocket::bind(io, "0.0.0.0:5000").unwrap();
            let mut got = Vec::new();
            let mut buf = [0; 8];
            loop {
                match io.timeout(Duration::from_secs(5), |_| s.recv_from(&mut buf)) {
                    Ok((4, from)) => {
                        assert_eq!(from.ip().to_string(), "10.0.0.2");
                        got.push(u32::from_le_bytes(buf[..4].try_into().unwrap()));
                    }
                    Ok(_) => {}
                    Err(e) if zsync::is_timed_out(&e) => break,
                    Err(e) => panic!("{e}"),
                }
            }
            got
        })
        .value
}

#[test]
fn udp_shows_loss_duplication_and_reordering_from_the_seed() {
    watchdog(|| {
        let clean = udp_stream(7, NetFaults::default());
        assert_eq!(clean, (0..2000).collect::<Vec<_>>());
        let faults = NetFaults::default()
            .latency(Duration::from_micros(100), Duration::from_millis(2))
            .loss(0.05)
            .duplicate(0.05)
            .reorder(0.05);
        let got = udp_stream(7, faults.clone());
        let mut unique = got.clone();
        unique.sort_unstable();
        unique.dedup();
        let lost = 2000 - unique.len();
        let duplicated = got.len() - unique.len();
        let out_of_order = got.windows(2).filter(|w| w[1] < w[0]).count();
        assert!((20..200).contains(&lost), "lost {lost}");
        assert!(duplicated > 10, "duplicated {duplicated}");
        assert!(out_of_order > 10, "out of order {out_of_order}");
        // The same seed, the same datagrams in the same order.
        assert_eq!(udp_stream(7, faults), got);
    });
}

/// A client that puts numbered values to a replicated store over TCP, with retries; returns
/// what it stored and the log's fingerprint.
fn chaotic_run(seed: u64) -> (Vec<u32>, u64, Vec<EventKind>) {
    let faults = NetFaults::default()
        .latency(Duration::from_millis(1), Duration::from_millis(5))
        .loss(0.02)
        .partitions(Duration::from_millis(100), Duration::from_millis(100))
        .crashes(Duration::from_millis(100), Duration::from_millis(50));
    let run = Sim::new(seed)
        .network(faults)
        .host("store", |io| {
            let l = TcpListener::bind(io, "0.0.0.0:80")?;
            loop {
                let (mut s, _) = l.accept()?;
                io.spawn(move |_| -> std::io::Result<()> {
                    let mut b = [0; 4];
                    while s.read_exact(&mut b).is_ok() {
                        s.write_all(&b)?;
                    }
                    Ok(())
                })
                .detach();
            }
        })
        .run(|io| {
            let mut acked = Vec::new();
            for i in 0u32..200 {
                // Retry until acknowledged, each try bounded.
                loop {
                    let attempt =
                        io.timeout(Duration::from_millis(400), |io| -> std::io::Result<()> {
                            let mut c = TcpStream::connect(io, "store:80")?;
                            c.write_all(&i.to_le_bytes())?;
                            let mut b = [0; 4];
                            c.read_exact(&mut b)?;
                            assert_eq!(b, i.to_le_bytes());
                            Ok(())
                        });
                    match attempt {
                        Ok(()) => break,
                        Err(_) => io.sleep(Duration::from_millis(50)).unwrap(),
                    }
                }
                acked.push(i);
            }
            acked
        });
    let kinds: Vec<EventKind> = run.log.events().iter().map(|e| e.kind).collect();
    let count = |f: fn(&EventKind) -> bool| kinds.iter().filter(|k| f(k)).count();
    eprintln!(
        "seed {seed}: {:?} simulated, {} crashes, {} partitions",
        run.elapsed,
        count(|k| matches!(k, EventKind::Crash { .. })),
        count(|k| matches!(k, EventKind::Partition { .. }))
    );
    (run.value, run.log.fingerprint(), kinds)
}

#[test]
fn seeded_partitions_and_crashes_happen_deterministically_and_retries_survive_them() {
    watchdog(|| {
        let (acked, fingerprint, kinds) = chaotic_run(11);
        assert_eq!(acked, (0..200).collect::<Vec<_>>());
        assert!(kinds.iter().any(|k| matches!(k, EventKind::Crash { .. })));
        assert!(kinds
            .iter()
            .any(|k| matches!(k, EventKind::Partition { .. })));
        let (again, fingerprint2, _) = chaotic_run(11);
        assert_eq!(again, acked);
        assert_eq!(fingerprint2, fingerprint);
        let (_, other, _) = chaotic_run(12);
        assert_ne!(other, fingerprint);
    });
}

#[test]
fn a_task_on_a_crashed_host_is_canceled_at_its_next_operation() {
    watchdog(|| {
        let run = Sim::new(13)
            .host("worker", |io| {
                let ticks = UdpSocket::bind(io, "0.0.0.0:0")?;
                loop {
                    io.sleep(Duration::from_millis(10))?;
                    ticks.send_to(b"t", "main:1")?;
                }
            })
            .run(|io| -> std::io::Result<usize> {
                let s = UdpSocket::bind(io, "0.0.0.0:1")?;
                let mut b = [0; 1];
                s.recv_from(&mut b)?;
                sim::crash(io, "worker")?;
                // Nothing more comes, and the run still ends: the host's task was canceled.
                let mut after = 0;
                while io
                    .timeout(Duration::from_secs(1), |_| s.recv_from(&mut b))
                    .is_ok()
                {
                    after += 1;
                }
                Ok(after)
            });
        // At most the one datagram in flight when it crashed.
        assert!(run.value.unwrap() <= 1);
    });
}

#[test]
fn outside_a_simulation_the_fault_calls_say_so() {
    zsync::run(zsync::Model::Blocking, |io| {
        for e in [
            sim::crash(io, "x").unwrap_err(),
            sim::restart(io, "x").unwrap_err(),
            sim::partition(io, "a", "b").unwrap_err(),
            sim::heal(io).unwrap_err(),
        ] {
            assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
        }
    });
    let _: Option<SocketAddr> = None;
}

#[test]
fn futures_use_the_simulated_network_too() {
    use futures_util::{AsyncReadExt, AsyncWriteExt};
    watchdog(|| {
        let faults =
            NetFaults::default().latency(Duration::from_millis(5), Duration::from_millis(5));
        let run = Sim::new(14)
            .network(faults)
            .host("echo", |io| {
                let listener = TcpListener::bind(io, "0.0.0.0:7")?;
                // An async accept loop, each connection echoed by a future task.
                io.block_on(async {
                    loop {
                        let (mut s, _) = listener.accept_async().await?;
                        Io::current()
                            .unwrap()
                            .spawn_future(async move {
                                let mut buf = [0; 64];
                                loop {
                                    let n = AsyncReadExt::read(&mut s, &mut buf).await?;
                                    if n == 0 {
                                        return Ok::<_, std::io::Error>(());
                                    }
                                    AsyncWriteExt::write_all(&mut s, &buf[..n]).await?;
                                }
                            })
                            .detach();
                    }
                })?
            })
            .run(|io| -> std::io::Result<_> {
                let start = io.now();
                let echoed = io.block_on(async {
                    let addr = zsync::net::resolve(io, "echo:7")?[0];
                    let mut c = TcpStream::connect_async(io, addr).await?;
                    AsyncWriteExt::write_all(&mut c, b"async hello").await?;
                    let mut back = [0; 11];
                    AsyncReadExt::read_exact(&mut c, &mut back).await?;
                    Ok::<_, std::io::Error>(back)
                })??;
                // UDP futures between two sockets of this host.
                let a = UdpSocket::bind(io, "127.0.0.1:0")?;
                let b = UdpSocket::bind(io, "127.0.0.1:0")?;
                let to = b.local_addr()?;
                let got = io.block_on(async {
                    a.send_to_async(b"dgram", to).await?;
                    let mut buf = [0; 8];
                    let (n, from) = b.recv_from_async(&mut buf).await?;
                    Ok::<_, std::io::Error>((buf[..n].to_vec(), from))
                })??;
                assert_eq!(got.1, a.local_addr()?);
                Ok((echoed, got.0, io.now() - start))
            });
        let (echoed, dgram, took) = run.value.unwrap();
        assert_eq!(&echoed, b"async hello");
        assert_eq!(dgram, b"dgram");
        // A handshake and a round trip at 5 ms each way, on the simulated clock.
        assert!(took >= Duration::from_millis(20), "{took:?}");
    });
}

/// A key-value log on host "kv": `PUT n` appends `n` and answers `OK` — after a sync only if
/// `durable` (the planted bug is the ack before it); `DUMP` answers every value it holds.
fn kv_server(durable: bool) -> impl Fn(&Io) -> std::io::Result<()> + Send + Sync + 'static {
    move |io| {
        let listener = TcpListener::bind(io, "0.0.0.0:80")?;
        let log = std::sync::Arc::new(zsync::sync::Mutex::new(()));
        loop {
            let (stream, _) = listener.accept()?;
            let log = log.clone();
            io.spawn(move |io| -> std::io::Result<()> {
                let mut reader = std::io::BufReader::new(stream.try_clone()?);
                let mut out = stream;
                let mut line = String::new();
                while std::io::BufRead::read_line(&mut reader, &mut line)? > 0 {
                    let reply = if let Some(n) = line.trim().strip_prefix("PUT ") {
                        let _one_writer = log.lock()?;
                        let mut f = zsync::fs::OpenOptions::new()
                            .append(true)
                            .create(true)
                            .open(io, "/kv/log")?;
                        f.write_all(format!("{n}\n").as_bytes())?;
                        if durable {
                            f.sync_all()?;
                        }
                        "OK\n".to_owned()
                    } else {
                        let all = zsync::fs::read(io, "/kv/log").unwrap_or_default();
                        let values = String::from_utf8_lossy(&all).replace('\n', " ");
                        format!("{}\n", values.trim())
                    };
                    out.write_all(reply.as_bytes())?;
                    line.clear();
                }
                Ok(())
            })
            .detach();
        }
    }
}

/// One request to the kv host, retried (each try bounded) until it is answered.
fn kv_request(io: &Io, request: &str) -> String {
    loop {
        let attempt = io.timeout(
            Duration::from_millis(200),
            |io| -> std::io::Result<String> {
                let mut c = TcpStream::connect(io, "kv:80")?;
                c.write_all(request.as_bytes())?;
                c.shutdown(std::net::Shutdown::Write)?;
                let mut answer = String::new();
                c.read_to_string(&mut answer)?;
                if answer.is_empty() {
                    return Err(ErrorKind::UnexpectedEof.into());
                }
                Ok(answer)
            },
        );
        match attempt {
            Ok(answer) => return answer,
            Err(_) => io.sleep(Duration::from_millis(20)).unwrap(),
        }
    }
}

/// Puts 0..20, then checks that every acknowledged value is still there.
fn acked_puts_survive(io: &Io) {
    for i in 0..20 {
        assert_eq!(kv_request(io, &format!("PUT {i}\n")), "OK\n");
    }
    let dump = kv_request(io, "DUMP\n");
    let held: Vec<&str> = dump.split_whitespace().collect();
    for i in 0..20 {
        assert!(
            held.contains(&i.to_string().as_str()),
            "acknowledged PUT {i} lost: {dump}"
        );
    }
}

/// Every fault the network has, with seeded crashes of the kv host.
fn kv_sim(durable: bool) -> Sim {
    Sim::new(0)
        .network(
            NetFaults::default()
                .latency(Duration::from_millis(1), Duration::from_millis(5))
                .loss(0.01)
                .duplicate(0.01)
                .reorder(0.01)
                .partitions(Duration::from_millis(150), Duration::from_millis(50))
                .crashes(Duration::from_millis(100), Duration::from_millis(20)),
        )
        .disk(zsync::sim::DiskFaults::default().torn_writes(true))
        .host("kv", kv_server(durable))
}

#[test]
fn seed_search_finds_an_ack_before_sync_and_shrinking_names_the_crashes() {
    watchdog(|| {
        let buggy = kv_sim(false);
        let failure = buggy.run_seeds(0..50, acked_puts_survive).unwrap_err();
        assert!(failure.error.contains("lost"), "{failure}");
        // The seed reproduces it, event for event.
        let again = buggy
            .with_seed(failure.seed)
            .try_run(acked_puts_survive)
            .unwrap_err();
        assert_eq!(again.error, failure.error);
        assert_eq!(again.log.fingerprint(), failure.log.fingerprint());
        // Of all the faults, the crashes are what it needs.
        let seed = failure.seed;
        let shrunk = buggy.shrink(failure, 0..50, acked_puts_survive);
        eprintln!(
            "found at seed {seed}; shrunk to seed {} without {:?}",
            shrunk.failure.seed, shrunk.removed
        );
        assert!(!shrunk.removed.contains(&"crashes"), "{:?}", shrunk.removed);
        for kind in ["partitions", "loss", "jitter"] {
            assert!(
                shrunk.removed.contains(&kind),
                "{kind} kept: {:?}",
                shrunk.removed
            );
        }
        assert!(shrunk.failure.error.contains("lost"), "{}", shrunk.failure);
        // The fixed server (a sync before the ack) survives every seed.
        kv_sim(true)
            .run_seeds(0..50, acked_puts_survive)
            .unwrap_or_else(|f| panic!("{f}"));
    });
}

#[test]
fn a_crashed_hosts_tasks_may_still_read_the_clock() {
    watchdog(|| {
        let run = Sim::new(15)
            .host("h", |io| loop {
                if let Err(e) = io.sleep(Duration::from_millis(10)) {
                    // What a destructor of a canceled task may do.
                    assert!(zsync::is_canceled(&e), "{e}");
                    let _ = io.now();
                    let _ = io.wall_clock();
                    return Err(e);
                }
            })
            .try_run(|io| {
                io.sleep(Duration::from_millis(5)).unwrap();
                sim::crash(io, "h").unwrap();
                io.sleep(Duration::from_millis(20)).unwrap();
            });
        run.unwrap_or_else(|f| panic!("{f}"));
    });
}
