//! Stand-in for `examples/http_server` / `examples/echo_server` until they are merged: the
//! suite's httparse hello handler (or an echo) on zsync, one task per connection, with the
//! flags of the examples.
//!
//! `zsync-http-standin --model blocking|threaded|green --backend io_uring|epoll
//!  --addr 127.0.0.1:8080 --workers 2 [--mode http|echo]`

use zsync::net::{ListenOptions, TcpListener};
use zsync::{Backend, Builder, Model};
use zsync_bench::{serve_echo, serve_http, Args};

fn main() {
    let args = Args::from_env();
    let addr = args.get_or("--addr", "127.0.0.1:8080");
    let workers = args.parse_or("--workers", 2usize);
    let echo = args.get_or("--mode", "http") == "echo";
    let model = match args.get_or("--model", "green").as_str() {
        "blocking" => Model::Blocking,
        "threaded" => Model::Threaded,
        "green" => Model::Green,
        m => {
            eprintln!("unknown --model {m}");
            std::process::exit(2)
        }
    };
    let backend = match args.get_or("--backend", "auto").as_str() {
        "io_uring" | "uring" => Backend::IoUring,
        "epoll" => Backend::Epoll,
        _ => Backend::Auto,
    };
    Builder::new(model)
        .worker_threads(workers)
        .backend(backend)
        .run(move |io| {
            let opts = ListenOptions::new().backlog(4096);
            let listener = TcpListener::bind_with(io, addr.as_str(), &opts).expect("bind");
            loop {
                let Ok((s, _)) = listener.accept() else {
                    continue;
                };
                let _ = s.set_nodelay(true);
                let conn = move |_: &zsync::Io| {
                    let _ = if echo { serve_echo(s) } else { serve_http(s) };
                };
                // Every connection needs its own task that may block: a fiber on Green, a
                // thread on Threaded; Blocking serves one connection at a time, inline.
                if io.supports_concurrency() {
                    match io.concurrent(conn) {
                        Ok(task) => task.detach(),
                        Err(e) => eprintln!("{e}"),
                    }
                } else {
                    conn(io);
                }
            }
        });
}
