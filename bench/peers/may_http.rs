//! may peer (stackful coroutines): the suite's httparse hello handler, one coroutine per
//! connection.
//!
//! `may-http --addr 127.0.0.1:8080 --workers 2 [--mode http|echo]`

use zsync_bench::{serve_echo, serve_http, Args};

fn main() {
    let args = Args::from_env();
    let addr = args.get_or("--addr", "127.0.0.1:8080");
    let workers = args.parse_or("--workers", 2usize);
    let echo = args.get_or("--mode", "http") == "echo";
    may::config().set_workers(workers);
    let acceptor = may::go!(move || {
        let listener = may::net::TcpListener::bind(&addr).expect("bind");
        for s in listener.incoming() {
            let Ok(s) = s else { continue };
            let _ = s.set_nodelay(true);
            if echo {
                may::go!(move || serve_echo(s));
            } else {
                may::go!(move || serve_http(s));
            }
        }
    });
    let _ = acceptor.join();
}
