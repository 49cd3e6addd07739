//! The zsync demo: one colorblind application, every execution model.
//!
//! `app` below is plain Rust — `fn`, no `async`, no runtime type — that takes an injected
//! [`Io`]. `main` runs that same function under `zsync::run(model, app)` for each model and
//! prints what happened and how long it took:
//!
//! 1. **Echo** — a TCP echo server on `127.0.0.1:0` and `CLIENTS` client tasks doing `ROUNDS`
//!    request/response round trips each. The server is started with [`Io::concurrent`], because it
//!    must make progress while the clients run. On [`Model::Blocking`] that call reports
//!    [`zsync::ConcurrencyUnavailable`], and the app falls back to a design that needs no
//!    concurrency: each client connects first (the kernel queues the connection in the listen
//!    backlog), writes its request, and then accepts its own connection and echoes the request
//!    itself, before it reads the reply. Same building blocks, lock-step schedule.
//! 2. **Sleeps** — a fan-out of `SLEEPERS` tasks that each call `io.sleep(50ms)`. Blocking runs
//!    them one after the other (`SLEEPERS` × 50 ms); Threaded and Green overlap them (about 50 ms).
//! 3. **Cancel** — a concurrent task blocked in `accept` on a listener nobody connects to is
//!    canceled. Its `accept` returns an error for which [`zsync::is_canceled`] is true; the demo
//!    measures how long `Task::cancel` took, from request to the task having finished. Blocking
//!    cannot run the blocked task beside its canceler, so it reports the
//!    `ConcurrencyUnavailable` path instead.
//!
//! Loopback only, no external network; the whole run takes well under two seconds.
//!
//! ```text
//! cargo run --release --example demo
//! ```

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use zsync::net::{TcpListener, TcpStream};
use zsync::{Io, Model};

/// Number of echo clients, each a task of its own.
const CLIENTS: usize = 8;
/// Request/response round trips per client.
const ROUNDS: usize = 200;
/// Size of one request (and of its echo).
const MSG: usize = 32;
/// Number of tasks in the sleep fan-out.
const SLEEPERS: usize = 10;
/// How long each of them sleeps.
const NAP: Duration = Duration::from_millis(50);

/// What `app` did on one model, for the summary table.
struct Report {
    model: &'static str,
    /// Whether `io.concurrent` was available (the echo server got a task of its own).
    concurrent: bool,
    round_trips: usize,
    echo_elapsed: Duration,
    sleeps_elapsed: Duration,
    /// `None` where the model cannot run a blocked task beside its canceler.
    cancel_latency: Option<Duration>,
}

fn main() -> io::Result<()> {
    println!("zsync demo: the same `fn app(io: &Io)` on every execution model");
    println!(
        "  echo   : {CLIENTS} client tasks x {ROUNDS} round trips of {MSG} B over loopback TCP"
    );
    println!("  sleeps : {SLEEPERS} tasks each calling io.sleep({NAP:?})");
    println!("  cancel : a concurrent task blocked in accept() on an idle listener, canceled");

    let mut reports = Vec::new();
    for model in [Model::Blocking, Model::Threaded, Model::Green] {
        println!();
        println!("== {} ==", model.name());
        reports.push(zsync::run(model, app)?);
    }

    println!();
    print_table(&reports);
    Ok(())
}

/// The application: colorblind, it never asks which model it runs on, only what `Io` can do.
fn app(io: &Io) -> io::Result<Report> {
    let model = io.model_name();
    let (round_trips, echo_elapsed, concurrent) = echo(io)?;
    let sleeps_elapsed = sleep_fan_out(io)?;
    let cancel_latency = cancel_blocked_accept(io)?;
    Ok(Report {
        model,
        concurrent,
        round_trips,
        echo_elapsed,
        sleeps_elapsed,
        cancel_latency,
    })
}

/// Runs the echo exchange; returns the number of verified round trips, how long they took, and
/// whether the server ran as a concurrent task.
fn echo(io: &Io) -> io::Result<(usize, Duration, bool)> {
    let listener = Arc::new(TcpListener::bind(io, "127.0.0.1:0")?);
    let addr = listener.local_addr()?;
    let start = io.now();

    // Zig: `io.concurrent(serve, ...) catch |err| switch (err) { error.ConcurrencyUnavailable => ... }`.
    let server_listener = listener.clone();
    let (total, concurrent) = match io.concurrent(move |io| serve(io, &server_listener, CLIENTS)) {
        Ok(server) => {
            println!("[{}] echo: server started with io.concurrent, one concurrent handler per connection", io.model_name());
            let clients: Vec<_> = (0..CLIENTS)
                .map(|id| io.spawn(move |io| client(io, addr, id, None)))
                .collect();
            let mut total = 0;
            for c in clients {
                total += c.try_join()?;
            }
            let echoed = server.try_join()?;
            assert_eq!(
                echoed,
                total * MSG,
                "server echoed every byte the clients sent"
            );
            (total, true)
        }
        Err(unavailable) => {
            println!("[{}] echo: io.concurrent -> {unavailable}", io.model_name());
            println!("[{}] echo: fallback: each client connects (kernel backlog), writes, then serves its own request inline", io.model_name());
            let clients: Vec<_> = (0..CLIENTS)
                .map(|id| {
                    let inline_server = listener.clone();
                    io.spawn(move |io| client(io, addr, id, Some(&inline_server)))
                })
                .collect();
            let mut total = 0;
            for c in clients {
                total += c.try_join()?;
            }
            (total, false)
        }
    };
    let elapsed = start.elapsed();
    println!(
        "[{}] echo: {total} round trips verified in {}",
        io.model_name(),
        fmt_duration(elapsed)
    );
    Ok((total, elapsed, concurrent))
}

/// The server: accepts `n` connections and echoes each on a concurrent task of its own until the
/// client hangs up. Returns the number of bytes echoed.
fn serve(io: &Io, listener: &TcpListener, n: usize) -> io::Result<usize> {
    let mut handlers = Vec::with_capacity(n);
    for _ in 0..n {
        let (conn, _) = listener.accept()?;
        // A handler blocks in `read` for as long as its client is connected, so it needs a
        // task that is guaranteed to make progress: `concurrent`, not `spawn`.
        handlers.push(io.concurrent(move |_| echo_until_eof(conn))?);
    }
    let mut echoed = 0;
    for h in handlers {
        echoed += h.try_join()?;
    }
    Ok(echoed)
}

/// Echoes everything it reads until EOF; returns the number of bytes echoed.
fn echo_until_eof(mut conn: TcpStream) -> io::Result<usize> {
    let mut buf = [0u8; 4096];
    let mut echoed = 0;
    loop {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            return Ok(echoed);
        }
        conn.write_all(&buf[..n])?;
        echoed += n;
    }
}

/// Echoes exactly one request of `MSG` bytes: the server's half of one round trip.
fn echo_one(conn: &mut TcpStream) -> io::Result<()> {
    let mut buf = [0u8; MSG];
    conn.read_exact(&mut buf)?;
    conn.write_all(&buf)
}

/// One client: connects and does `ROUNDS` round trips, checking every reply.
///
/// `inline_server` is the fallback for models without concurrency: the client accepts its own
/// connection (already in the backlog, since `connect` completed) and plays the server's part of
/// each round trip between writing the request and reading the reply.
fn client(
    io: &Io,
    addr: SocketAddr,
    id: usize,
    inline_server: Option<&TcpListener>,
) -> io::Result<usize> {
    let mut stream = TcpStream::connect(io, addr)?;
    stream.set_nodelay(true)?;
    let mut server_side = match inline_server {
        Some(listener) => {
            let (conn, _) = listener.accept()?;
            conn.set_nodelay(true)?;
            Some(conn)
        }
        None => None,
    };
    let mut request = [0u8; MSG];
    let mut reply = [0u8; MSG];
    for round in 0..ROUNDS {
        // A request unique to (client, round), so a mixed-up reply would be caught.
        let tag = format!("client {id:3} round {round:5}");
        request[..tag.len()].copy_from_slice(tag.as_bytes());
        stream.write_all(&request)?;
        if let Some(conn) = &mut server_side {
            echo_one(conn)?;
        }
        stream.read_exact(&mut reply)?;
        if reply != request {
            return Err(io::Error::other(format!(
                "client {id}: wrong echo in round {round}"
            )));
        }
    }
    Ok(ROUNDS)
}

/// Starts `SLEEPERS` tasks that each sleep `NAP`, waits for all, returns the elapsed time.
///
/// Each sleeper asks for `concurrent` (so they overlap where the model can) and takes `spawn`
/// when refused (Zig: `io.concurrent(f) catch io.async(f)`): on Blocking it runs inline.
fn sleep_fan_out(io: &Io) -> io::Result<Duration> {
    let start = io.now();
    let nap = |io: &Io| io.sleep(NAP);
    let tasks: Vec<_> = (0..SLEEPERS)
        .map(|_| {
            io.concurrent(nap)
                .unwrap_or_else(|refused| io.spawn(refused.into_inner()))
        })
        .collect();
    for t in tasks {
        t.try_join()?;
    }
    let elapsed = start.elapsed();
    println!(
        "[{}] sleeps: {SLEEPERS} x io.sleep({NAP:?}) finished in {}",
        io.model_name(),
        fmt_duration(elapsed)
    );
    Ok(elapsed)
}

/// Cancels a concurrent task blocked in `accept` and returns how long `Task::cancel` took, or
/// `None` if the model cannot run such a task at all.
fn cancel_blocked_accept(io: &Io) -> io::Result<Option<Duration>> {
    let idle = TcpListener::bind(io, "127.0.0.1:0")?;
    let task = match io.concurrent(move |_| idle.accept().map(|_| ())) {
        Ok(task) => task,
        Err(unavailable) => {
            // Nothing to cancel: a task that blocks forever cannot run inline next to its canceler.
            println!(
                "[{}] cancel: io.concurrent -> {unavailable}",
                io.model_name()
            );
            return Ok(None);
        }
    };
    // Give the task time to really block in accept, so the cancel has to interrupt a wait.
    io.sleep(Duration::from_millis(20))?;
    let start = io.now();
    let outcome = task.cancel().unwrap();
    let latency = start.elapsed();
    match outcome {
        Err(e) if zsync::is_canceled(&e) => {
            println!(
                "[{}] cancel: accept() returned `{e}` (zsync::is_canceled = true) {} after cancel",
                io.model_name(),
                fmt_duration(latency)
            );
            Ok(Some(latency))
        }
        other => Err(io::Error::other(format!(
            "expected accept() to report Canceled, got {other:?}"
        ))),
    }
}

/// Prints the summary, one aligned row per model.
fn print_table(reports: &[Report]) {
    let header = [
        "model",
        "io.concurrent",
        "echo round trips",
        "echo elapsed",
        "sleeps elapsed",
        "cancel latency",
    ];
    let rows: Vec<[String; 6]> = reports
        .iter()
        .map(|r| {
            [
                r.model.to_string(),
                if r.concurrent {
                    "available"
                } else {
                    "unavailable"
                }
                .to_string(),
                r.round_trips.to_string(),
                fmt_duration(r.echo_elapsed),
                fmt_duration(r.sleeps_elapsed),
                r.cancel_latency
                    .map_or_else(|| "n/a".to_string(), fmt_duration),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: [&str; 6]| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            // First column left-aligned (a name), the rest right-aligned (figures).
            if i == 0 {
                out.push_str(&format!("{cell:<w$}"));
            } else {
                out.push_str(&format!("  {cell:>w$}"));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header);
    line(widths.map(|w| "-".repeat(w)).each_ref().map(String::as_str));
    for row in &rows {
        line(row.each_ref().map(String::as_str));
    }
}

/// Formats a duration with a unit suited to its size: `412 µs`, `12.3 ms`, `1.02 s`.
fn fmt_duration(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1_000.0 {
        format!("{us:.0} µs")
    } else if us < 1_000_000.0 {
        format!("{:.1} ms", us / 1e3)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}
