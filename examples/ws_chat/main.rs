//! A WebSocket chat server on zsync, with tungstenite's sync API over zsync's `TcpStream`:
//! rooms, fan-out to every member of a room, a bounded outbound queue per client with a policy
//! for slow consumers, close handshakes both ways, pings, message size limits. `--client` turns
//! it into the load generator that the benchmark runner uses.
//!
//! ```text
//! cargo run --release --example ws_chat -- --addr 127.0.0.1:9100
//! cargo run --release --example ws_chat -- --client --addr 127.0.0.1:9100 --clients 200 --rooms 10 --rate 20 --duration 5
//! ```
//!
//! See `examples/ws_chat/README.md` for the protocol, the design and the figures.

#[path = "../common/mod.rs"]
mod common;

mod client;
mod conn;
mod hist;
mod nb;
mod outbox;
mod pump;
mod rooms;
mod server;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::cli::{self, RuntimeOpts};
use common::server::Control;
use zsync::net::TcpListener;

const USAGE: &str = "\
usage: ws_chat [--addr 127.0.0.1:9100] [--queue 256] [--policy drop-oldest|drop-newest|disconnect|disconnect-1013]
               [--max-message 65536] [--ping-interval-ms 30000] [--idle-timeout-ms 90000]
               [--send-buffer BYTES] [--verbose] [runtime flags]
       ws_chat --client --addr HOST:PORT [--clients 200] [--rooms 10] [--rate 20] [--size 64]
               [--duration 5] [runtime flags]

server: join a room with the path /room/NAME, or connect to / and send NAME as the first message
        (answered with \"* joined NAME\"); every text message is sent to everyone in the room.
client: each client joins room (id % rooms), sends --rate messages a second (0: as fast as it can)
        for --duration seconds, reads everything its room delivers, then closes; prints a RESULT
        line: messages sent and delivered, delivered/s, delivery latency p50/p99 (µs).";

/// A flag's value, or the usage message and exit status 2.
fn or_exit<T>(r: Result<T, String>) -> T {
    r.unwrap_or_else(|e| cli::exit_usage(USAGE, &e))
}

fn main() {
    let valued = [
        cli::RUNTIME_FLAGS,
        &[
            "addr",
            "queue",
            "policy",
            "max-message",
            "ping-interval-ms",
            "idle-timeout-ms",
            "send-buffer",
            "clients",
            "rooms",
            "rate",
            "size",
            "duration",
        ],
    ]
    .concat();
    let args = cli::parse_or_exit(
        &format!("{USAGE}\n\n{}", cli::RUNTIME_HELP),
        &valued,
        &["client", "verbose"],
    );
    let rt = or_exit(RuntimeOpts::from_args(&args, "green"));
    let addr = args.value("addr").unwrap_or("127.0.0.1:9100").to_string();
    if args.switch("client") {
        let addr: SocketAddr = or_exit(addr.parse().map_err(|e| format!("--addr {addr}: {e}")));
        let opts = ClientOpts {
            clients: or_exit(args.get_or("clients", 200usize)).max(1),
            rooms: or_exit(args.get_or("rooms", 10usize)).max(1),
            rate: or_exit(args.get_or("rate", 20.0f64)),
            size: or_exit(args.get_or("size", 64usize)),
            duration: Duration::from_secs_f64(or_exit(args.get_or("duration", 5.0f64)).max(0.1)),
        };
        if let Err(e) = rt.builder().run(|io| client_main(io, addr, &opts)) {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
        return;
    }
    let ms = |name, default: u64| Duration::from_millis(or_exit(args.get_or(name, default)).max(1));
    let config = conn::Config {
        queue: or_exit(args.get_or("queue", 256usize)),
        policy: or_exit(args.get_or("policy", outbox::Policy::DropOldest)),
        max_message: or_exit(args.get_or("max-message", 64 * 1024usize)),
        ping_interval: ms("ping-interval-ms", 30_000),
        idle_timeout: ms("idle-timeout-ms", 90_000),
        send_buffer: args
            .value("send-buffer")
            .map(|v| or_exit(v.parse().map_err(|e| format!("--send-buffer {v}: {e}")))),
        ..conn::Config::default()
    };
    let ctl = Control::new(args.switch("verbose"));
    let shared = conn::Shared::new(config);
    let result = rt.builder().run(|io| -> io::Result<()> {
        let listener = TcpListener::bind(io, addr.as_str())?;
        let local = listener.local_addr()?;
        println!(
            "listening on {local} (model {}, backend {}, {} workers; WebSocket chat, policy {:?}, queue {})",
            io.model_name(),
            io.backend_name(),
            rt.workers,
            shared.config.policy,
            shared.config.queue,
        );
        // Ctrl-C: close every connection with 1001, then stop.
        let (sh, c) = (shared.clone(), ctl.clone());
        let _on_ctrl_c = io.task().name("ctrl-c").spawn(move |io| -> io::Result<()> {
            zsync::signal::ctrl_c(io)?;
            eprintln!("shutting down");
            let left = server::shutdown(&sh, &c, local, sh.config.close_timeout * 2, |d| {
                let _ = io.sleep(d);
            });
            if left > 0 {
                eprintln!("{left} connections did not close in time");
            }
            Ok(())
        });
        server::serve(io, &listener, &shared, &ctl)
    });
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
    let rooms = &shared.rooms;
    println!(
        "stopped: {} messages received, {} deliveries queued, {} dropped by full queues, {} connections closed as too slow, {} rooms left",
        shared.received.load(std::sync::atomic::Ordering::Relaxed),
        rooms.fanned_out.load(std::sync::atomic::Ordering::Relaxed),
        rooms.dropped.load(std::sync::atomic::Ordering::Relaxed),
        shared.overflow_closes.load(std::sync::atomic::Ordering::Relaxed),
        rooms.len(),
    );
}

/// The load generator's settings.
struct ClientOpts {
    clients: usize,
    rooms: usize,
    rate: f64,
    size: usize,
    duration: Duration,
}

/// Runs the load generator and prints its RESULT line.
fn client_main(io: &zsync::Io, addr: SocketAddr, o: &ClientOpts) -> io::Result<()> {
    let per_client = if o.rate > 0.0 {
        (o.rate * o.duration.as_secs_f64()).round().max(1.0) as u64
    } else {
        u64::MAX
    };
    let interval = if o.rate > 0.0 {
        Duration::from_secs_f64(1.0 / o.rate)
    } else {
        Duration::ZERO
    };
    let shared = Arc::new(client::Shared {
        start: Some(zsync::sync::Barrier::new(o.clients)),
        ..client::Shared::default()
    });
    // The clock starts when the barrier opens; close_at is set generously past the sends, and
    // a client closes as soon as it has every message of its room.
    let start = Instant::now();
    let close_at = start + o.duration + Duration::from_secs(30);
    let members = |room: usize| (0..o.clients).filter(|c| c % o.rooms == room).count() as u64;
    let clients = (0..o.clients)
        .map(|id| {
            let room = id % o.rooms;
            let plan = client::Plan {
                id: id as u32,
                room: format!("r{room}"),
                send: per_client,
                interval,
                offset: interval.mul_f64(id as f64 / o.clients as f64),
                size: o.size,
                expect: (per_client != u64::MAX).then(|| per_client * members(room)),
                close_at: if per_client == u64::MAX {
                    start + o.duration
                } else {
                    close_at
                },
                keep: false,
                recv_buffer: None,
                window: None,
            };
            (plan, None)
        })
        .collect();
    let reports = client::run_all(io, addr, clients, shared.clone());
    // From the moment every client had joined to the last delivery.
    let elapsed = shared
        .started
        .get()
        .map_or(start, |t| *t)
        .elapsed()
        .as_secs_f64();
    let (mut sent, mut delivered, mut errors) = (0u64, 0u64, 0usize);
    for r in &reports {
        match r {
            Ok(r) => {
                sent += r.sent;
                delivered += r.received;
            }
            Err(e) => {
                errors += 1;
                if errors <= 3 {
                    eprintln!("client error: {e}");
                }
            }
        }
    }
    println!(
        "RESULT clients={} rooms={} sent={sent} delivered={delivered} secs={elapsed:.3} delivered_per_sec={:.0} p50_us={} p99_us={} errors={errors}",
        o.clients,
        o.rooms,
        delivered as f64 / elapsed,
        shared.latency.quantile(0.50),
        shared.latency.quantile(0.99),
    );
    Ok(())
}
