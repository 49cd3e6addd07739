//! Command-line flags: `--name value`, `--name=value` and bare `--switch`es, parsed by hand (no
//! dependency), plus the runtime flags shared by every program.

use std::collections::HashMap;
use std::fmt::Display;
use std::str::FromStr;

use zsync::{Backend, Builder, Model};

/// Parsed flags. Every flag must be declared, so a typo is an error rather than a silently
/// ignored option.
#[derive(Debug, Default)]
pub struct Args {
    values: HashMap<String, String>,
    switches: Vec<String>,
}

impl Args {
    /// Parses `args` (without the program name). `valued` are the flags that take a value,
    /// `switches` those that do not (`--help` is always accepted and reported as a switch).
    pub fn parse(
        args: impl IntoIterator<Item = String>,
        valued: &[&str],
        switches: &[&str],
    ) -> Result<Args, String> {
        let mut out = Args::default();
        let mut it = args.into_iter();
        while let Some(arg) = it.next() {
            let Some(body) = arg.strip_prefix("--") else {
                return Err(format!("unexpected argument `{arg}`"));
            };
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (body, None),
            };
            if name == "help" || switches.contains(&name) {
                if inline.is_some() {
                    return Err(format!("--{name} takes no value"));
                }
                out.switches.push(name.to_string());
            } else if valued.contains(&name) {
                let value = match inline {
                    Some(v) => v,
                    None => it.next().ok_or_else(|| format!("--{name} needs a value"))?,
                };
                out.values.insert(name.to_string(), value);
            } else {
                return Err(format!("unknown flag --{name}"));
            }
        }
        Ok(out)
    }

    /// Whether the switch `--name` was given.
    pub fn switch(&self, name: &str) -> bool {
        self.switches.iter().any(|s| s == name)
    }

    /// The raw value of `--name`, if given.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// The value of `--name` parsed as `T`, or `default` if the flag is absent.
    pub fn get_or<T: FromStr>(&self, name: &str, default: T) -> Result<T, String>
    where
        T::Err: Display,
    {
        match self.value(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|e| format!("--{name} {v}: {e}")),
        }
    }
}

/// The flags that choose and size the runtime, shared by every program.
pub const RUNTIME_FLAGS: &[&str] = &["model", "backend", "workers", "max-threads"];

/// Help text for [`RUNTIME_FLAGS`].
pub const RUNTIME_HELP: &str = "\
  --model blocking|threaded|green   execution model (default: green)
  --backend io_uring|epoll|auto     Green's I/O engine (default: auto = io_uring if the kernel allows)
  --workers N                       Threaded/Green worker threads (default: available parallelism)
  --max-threads N                   Threaded: most concurrent tasks (one thread each) (default: 4096)";

/// The runtime chosen on the command line.
#[derive(Debug, Clone)]
pub struct RuntimeOpts {
    /// The execution model.
    pub model: Model,
    /// Green's I/O engine.
    pub backend: Backend,
    /// Worker threads (Threaded and Green).
    pub workers: usize,
    /// Threaded: the limit on concurrent tasks, each of which gets a thread.
    pub max_threads: usize,
}

impl RuntimeOpts {
    /// Reads `--model`, `--backend`, `--workers` and `--max-threads`, defaulting the model to
    /// `default_model`.
    pub fn from_args(args: &Args, default_model: &str) -> Result<RuntimeOpts, String> {
        let model = parse_model(args.value("model").unwrap_or(default_model))?;
        let backend = match args.value("backend").unwrap_or("auto") {
            "auto" => Backend::Auto,
            "io_uring" | "io-uring" | "uring" => Backend::IoUring,
            "epoll" => Backend::Epoll,
            other => {
                return Err(format!(
                    "--backend {other}: expected io_uring, epoll or auto"
                ))
            }
        };
        if matches!(model, Model::Green) && backend == Backend::IoUring {
            // Asked for by name where the kernel refuses it: an error naming why, not a panic
            // when the runtime starts.
            backend
                .resolve()
                .map_err(|e| format!("--backend io_uring: {e}"))?;
        }
        let parallelism = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(RuntimeOpts {
            model,
            backend,
            workers: args.get_or("workers", parallelism)?.max(1),
            max_threads: args.get_or("max-threads", 4096)?,
        })
    }

    /// A runtime builder with these settings.
    pub fn builder(&self) -> Builder {
        Builder::new(self.model.clone())
            .worker_threads(self.workers)
            .backend(self.backend)
            .max_concurrent_threads(self.max_threads)
    }
}

/// `blocking`, `threaded` or `green` (any case) as a [`Model`].
pub fn parse_model(name: &str) -> Result<Model, String> {
    match name.to_ascii_lowercase().as_str() {
        "blocking" => Ok(Model::Blocking),
        "threaded" => Ok(Model::Threaded),
        "green" => Ok(Model::Green),
        other => Err(format!(
            "--model {other}: expected blocking, threaded or green"
        )),
    }
}

/// Parses the process's arguments, printing `usage` and exiting on `--help` (status 0) or on an
/// error (status 2).
pub fn parse_or_exit(usage: &str, valued: &[&str], switches: &[&str]) -> Args {
    match Args::parse(std::env::args().skip(1), valued, switches) {
        Ok(args) if args.switch("help") => {
            println!("{usage}");
            std::process::exit(0);
        }
        Ok(args) => args,
        Err(e) => exit_usage(usage, &e),
    }
}

/// Prints `error` and `usage` to stderr and exits with status 2.
pub fn exit_usage(usage: &str, error: &str) -> ! {
    eprintln!("error: {error}\n\n{usage}");
    std::process::exit(2);
}

/// Who a client/server example is in this process (`--server`, `--client`; both when neither
/// is given: the process talks to itself), where it listens or connects (`--addr`; a free
/// port when it is both, `127.0.0.1:4433` otherwise) and the certificate file the two sides
/// share when they run apart (`--cert`, required then).
pub struct Roles {
    /// Runs the server.
    pub serve: bool,
    /// Runs the client.
    pub connect: bool,
    /// Where the server listens, or the client connects.
    pub addr: std::net::SocketAddr,
    /// The server's certificate: written by a lone server, read by a lone client.
    pub cert_file: Option<String>,
}

impl Roles {
    /// Reads the roles from `args`, printing `usage` and exiting on an error.
    pub fn from_args_or_exit(args: &Args, usage: &str) -> Roles {
        let (serve, connect) = match (args.switch("server"), args.switch("client")) {
            (false, false) => (true, true),
            (s, c) => (s, c),
        };
        let default_addr = if serve && connect {
            "127.0.0.1:0"
        } else {
            "127.0.0.1:4433"
        };
        let addr = args
            .value("addr")
            .unwrap_or(default_addr)
            .parse()
            .unwrap_or_else(|e| exit_usage(usage, &format!("--addr: {e}")));
        let cert_file = args.value("cert").map(str::to_string);
        if serve != connect && cert_file.is_none() {
            exit_usage(usage, "--server and --client need --cert FILE");
        }
        Roles {
            serve,
            connect,
            addr,
            cert_file,
        }
    }
}
