//! A TCP echo server on zsync: every byte a client sends comes back, on any execution model.
//!
//! ```text
//! cargo run --release --example echo_server -- --model green --addr 127.0.0.1:9000
//! cargo run --release --example load_client -- --addr 127.0.0.1:9000 --connections 64 --duration 10
//! ```
//!
//! One task per connection, named `conn`, started with `concurrent` into a `zsync::Group` that
//! the accept loop reaps as connections end (`try_join_next`) and that cancels the rest when the
//! loop returns (see `examples/common/server.rs`); on `--model blocking` connections are served
//! one after another, each until its client closes it, as in `http_server`.
//!
//! Flags:
//!
//! ```text
//!   --addr HOST:PORT          listen address (default 127.0.0.1:9000; port 0 picks one)
//!   --model blocking|threaded|green, --backend io_uring|epoll|auto, --workers N, --max-threads N
//!   --idle-timeout-ms MS      close a connection silent, or not reading what comes back, for
//!                             this long (default 60000)
//!   --verbose                 log every connection that ends with an error to stderr
//! ```

#[path = "common/mod.rs"]
mod common;

use std::io;
use std::time::Duration;

use common::cli::{self, RuntimeOpts};
use common::echo;
use common::server::Control;
use zsync::net::TcpListener;

const USAGE: &str = "\
usage: echo_server [--addr 127.0.0.1:9000] [--model blocking|threaded|green] [--backend io_uring|epoll|auto]
                   [--workers N] [--max-threads N] [--idle-timeout-ms 60000] [--verbose]";

/// A flag's value, or the usage message and exit status 2.
fn or_exit<T>(r: Result<T, String>) -> T {
    r.unwrap_or_else(|e| cli::exit_usage(USAGE, &e))
}

fn main() {
    let valued = [cli::RUNTIME_FLAGS, &["addr", "idle-timeout-ms"]].concat();
    let args = cli::parse_or_exit(
        &format!("{USAGE}\n\n{}", cli::RUNTIME_HELP),
        &valued,
        &["verbose"],
    );
    let rt = or_exit(RuntimeOpts::from_args(&args, "green"));
    let addr = args.value("addr").unwrap_or("127.0.0.1:9000").to_string();
    let idle = Duration::from_millis(or_exit(args.get_or("idle-timeout-ms", 60_000)).max(1));
    let ctl = Control::new(args.switch("verbose"));
    let result = rt.builder().run(|io| -> io::Result<()> {
        let listener = TcpListener::bind(io, addr.as_str())?;
        println!(
            "listening on {} (model {}, backend {}, {} workers; TCP echo)",
            listener.local_addr()?,
            io.model_name(),
            io.backend_name(),
            if io.supports_concurrency() {
                rt.workers
            } else {
                1
            },
        );
        echo::serve(io, &listener, &ctl, idle)
    });
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
