//! Profiles the example HTTP server under load: runs `http_server`'s handler (the very code of
//! `examples/common/http.rs`) on a profiled runtime, drives it for a while with client fibers
//! of its own, then prints the text report and writes a flame graph of where the tasks spent
//! their time, per spawn site: running, waiting to be scheduled, or blocked per operation.
//!
//! ```text
//! cargo run --release --example profile --features profile
//! cargo run --release --example profile --features profile -- --model threaded --seconds 5
//! ```
//!
//! Flags:
//!
//! ```text
//!   --model blocking|threaded|green, --backend io_uring|epoll|auto, --workers N, --max-threads N
//!                             the runtime (default: green on 2 workers)
//!   --clients N               client tasks, one keep-alive connection each (default 32)
//!   --seconds S               how long the load lasts (default 2)
//!   --svg PATH                where the flame graph goes (default profile.svg; the running
//!                             time alone goes to PATH-running.svg)
//!   --json PATH               also write the profile as JSON
//!   --no-profile              run without profiling (to compare the request rate)
//! ```
//!
//! The clients run in the same runtime as the server, as tasks spawned at one site: the
//! report shows them beside the server's accept loop and connection tasks. On `--model
//! blocking` there is no concurrency to serve several connections: use green or threaded.

#[path = "common/mod.rs"]
mod common;

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::cli::{self, RuntimeOpts};
use common::http::{self, HttpConfig};
use common::server::Control;
use zsync::net::{TcpListener, TcpStream};
use zsync::sync::Mutex;
use zsync::Io;

const USAGE: &str = "\
usage: profile [--model blocking|threaded|green] [--backend io_uring|epoll|auto] [--workers N]
               [--clients 32] [--seconds 2] [--svg profile.svg] [--json PATH] [--no-profile]";

/// A flag's value, or the usage message and exit status 2.
fn or_exit<T>(r: Result<T, String>) -> T {
    r.unwrap_or_else(|e| cli::exit_usage(USAGE, &e))
}

/// Requests a client adds to the shared tally at once (under a zsync `Mutex`: the report's
/// lock section shows its contention).
const TALLY_EVERY: u64 = 64;

fn main() {
    let valued = [cli::RUNTIME_FLAGS, &["clients", "seconds", "svg", "json"]].concat();
    let args = cli::parse_or_exit(
        &format!("{USAGE}\n\n{}", cli::RUNTIME_HELP),
        &valued,
        &["no-profile"],
    );
    let mut rt = or_exit(RuntimeOpts::from_args(&args, "green"));
    if args.value("workers").is_none() {
        rt.workers = 2;
    }
    let clients: usize = or_exit(args.get_or("clients", 32)).max(1);
    let seconds: f64 = or_exit(args.get_or("seconds", 2.0));
    let svg = args.value("svg").unwrap_or("profile.svg").to_owned();
    let json = args.value("json").map(str::to_owned);
    let profiling = !args.switch("no-profile");

    let dir = std::env::temp_dir().join(format!("zsync-profile-{}", std::process::id()));
    let file = http::generate_file(&dir, "file.bin", 1 << 16).unwrap_or_else(|e| {
        eprintln!("error: cannot generate the file for GET /file: {e}");
        std::process::exit(1);
    });
    let result = rt.builder().profile(profiling).run(|io| -> io::Result<()> {
        let listener = TcpListener::bind(io, "127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let ctl = Control::new(false);
        let server_ctl = ctl.clone();
        let server = io
            .task()
            .name("http server")
            .spawn(move |io| http::serve(io, &listener, HttpConfig::new(file), &server_ctl));
        println!(
            "profiling the HTTP server on {addr} (model {}, backend {}, {} workers) \
                 under {clients} clients for {seconds} s",
            io.model_name(),
            io.backend_name(),
            if io.supports_concurrency() {
                rt.workers
            } else {
                1
            },
        );
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Mutex::new(0u64));
        let started = Instant::now();
        let load: Vec<_> = (0..clients)
            .map(|i| {
                let (stop, tally) = (stop.clone(), tally.clone());
                io.task()
                    .name(format!("client {i}"))
                    .spawn(move |io| client(io, addr, &stop, &tally))
            })
            .collect();
        io.sleep(Duration::from_secs_f64(seconds))?;
        stop.store(true, Ordering::Relaxed);
        let mut requests = 0;
        for c in load {
            match c.join() {
                Ok(Ok(n)) => requests += n,
                Ok(Err(e)) => eprintln!("client error: {e}"),
                Err(_) => eprintln!("a client panicked"),
            }
        }
        let elapsed = started.elapsed();
        let profile = io.profile();
        ctl.stop(addr);
        server
            .join()
            .map_err(|_| io::Error::other("the server panicked"))??;
        assert_eq!(*tally.lock()?, requests, "every request tallied");
        println!(
            "{requests} requests in {:.2} s: {:.0} req/s{}",
            elapsed.as_secs_f64(),
            requests as f64 / elapsed.as_secs_f64(),
            if profiling {
                " (profiled)"
            } else {
                " (not profiled)"
            }
        );
        if !profiling {
            return Ok(());
        }
        println!("\n{profile}");
        profile.write_flamegraph(std::io::BufWriter::new(std::fs::File::create(&svg)?))?;
        let running_svg = format!("{}-running.svg", svg.trim_end_matches(".svg"));
        profile
            .running_only()
            .write_flamegraph(std::io::BufWriter::new(std::fs::File::create(
                &running_svg,
            )?))?;
        println!("flame graphs written to {svg} (every state) and {running_svg} (running only)");
        if let Some(json) = &json {
            std::fs::write(json, profile.to_json())?;
            println!("JSON written to {json}");
        }
        Ok(())
    });
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// One keep-alive connection making `GET /` requests (every 16th a `POST /echo`) until `stop`;
/// returns how many it made. Reads each response by its `content-length`.
fn client(
    io: &Io,
    addr: std::net::SocketAddr,
    stop: &AtomicBool,
    tally: &Mutex<u64>,
) -> io::Result<u64> {
    let mut conn = TcpStream::connect(io, addr)?;
    conn.set_nodelay(true)?;
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let mut done = 0u64;
    while !stop.load(Ordering::Relaxed) {
        if done % 16 == 15 {
            let body = br#"{"n":[1,2,3]}"#;
            write!(
                conn,
                "POST /echo HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                body.len()
            )?;
            conn.write_all(body)?;
        } else {
            conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")?;
        }
        // The head, then the body.
        let (head_len, body_len) = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                break (end + 4, len);
            }
            let n = conn.read(&mut chunk)?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        while buf.len() < head_len + body_len {
            let n = conn.read(&mut chunk)?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        buf.drain(..head_len + body_len);
        done += 1;
        if done.is_multiple_of(TALLY_EVERY) {
            *tally.lock()? += TALLY_EVERY;
        }
    }
    *tally.lock()? += done % TALLY_EVERY;
    Ok(done)
}
