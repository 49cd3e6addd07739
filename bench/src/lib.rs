//! Shared pieces of the benchmark suite: the HTTP hello handler every Rust peer uses (so the
//! peers differ in their runtime, not in their parsing), a blocking connection loop for the
//! stackful peers, a tiny flag parser, and the parsers of what the runner reads back (`wrk`
//! output, `/proc/PID/stat`, the load client's result line).
//!
//! The parsers are unit-tested here; the runner itself is `src/main.rs`.

use std::io::{self, Read, Write};

pub mod tokio_serve;

/// The response of `GET /`, byte for byte the same in every Rust peer.
pub const HELLO_RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nServer: zsync-bench\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!";
/// The response to any other path.
pub const NOT_FOUND_RESPONSE: &[u8] =
    b"HTTP/1.1 404 Not Found\r\nServer: zsync-bench\r\nContent-Length: 0\r\n\r\n";
/// The response to a request httparse rejects; the connection is closed after it.
pub const BAD_REQUEST_RESPONSE: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\nServer: zsync-bench\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";

/// Largest request head accepted; a longer incomplete head is a bad request.
pub const MAX_HEAD: usize = 16 * 1024;

/// A request the handler refuses: answer [`BAD_REQUEST_RESPONSE`] and close.
#[derive(Debug, PartialEq, Eq)]
pub struct BadRequest;

/// Parses every complete request at the start of `input` (keep-alive and pipelining) and
/// appends one response per request to `out`. Returns how many bytes of `input` were consumed;
/// the caller keeps the rest for the next read. Request bodies are not supported (the
/// benchmark only sends `GET`).
pub fn handle_http(input: &[u8], out: &mut Vec<u8>) -> Result<usize, BadRequest> {
    let mut off = 0;
    while off < input.len() {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&input[off..]) {
            Ok(httparse::Status::Complete(n)) => {
                off += n;
                if req.method == Some("GET") && req.path == Some("/") {
                    out.extend_from_slice(HELLO_RESPONSE);
                } else {
                    out.extend_from_slice(NOT_FOUND_RESPONSE);
                }
            }
            Ok(httparse::Status::Partial) => {
                if input.len() - off > MAX_HEAD {
                    return Err(BadRequest);
                }
                break;
            }
            Err(_) => return Err(BadRequest),
        }
    }
    Ok(off)
}

/// Serves one HTTP connection on a blocking (or fiber-blocking) stream until the peer closes.
pub fn serve_http<S: Read + Write>(mut s: S) -> io::Result<()> {
    let mut inbuf = vec![0u8; 8192];
    let mut len = 0;
    let mut out = Vec::with_capacity(4096);
    loop {
        if len == inbuf.len() {
            inbuf.resize(inbuf.len() * 2, 0);
        }
        let n = s.read(&mut inbuf[len..])?;
        if n == 0 {
            return Ok(());
        }
        len += n;
        match handle_http(&inbuf[..len], &mut out) {
            Ok(used) => {
                inbuf.copy_within(used..len, 0);
                len -= used;
            }
            Err(BadRequest) => {
                out.extend_from_slice(BAD_REQUEST_RESPONSE);
                s.write_all(&out)?;
                return Ok(());
            }
        }
        if !out.is_empty() {
            s.write_all(&out)?;
            out.clear();
        }
    }
}

/// Echoes one connection on a blocking (or fiber-blocking) stream until the peer closes.
pub fn serve_echo<S: Read + Write>(mut s: S) -> io::Result<()> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        s.write_all(&buf[..n])?;
    }
}

// ---------------------------------------------------------------------------------------------
// Flags

/// `--name value` / `--name=value` flags, as every binary of the suite takes them.
#[derive(Debug, Clone, Default)]
pub struct Args {
    items: Vec<String>,
}

impl Args {
    /// The process's own arguments (without argv\[0\]).
    pub fn from_env() -> Args {
        Args::from_vec(std::env::args().skip(1).collect())
    }

    /// Arguments from a list (tests).
    pub fn from_vec(items: Vec<String>) -> Args {
        Args { items }
    }

    /// The value of `--name`, if given.
    pub fn get(&self, name: &str) -> Option<String> {
        let mut it = self.items.iter();
        while let Some(a) = it.next() {
            if a == name {
                return it.next().cloned();
            }
            if let Some(v) = a.strip_prefix(name).and_then(|r| r.strip_prefix('=')) {
                return Some(v.to_string());
            }
        }
        None
    }

    /// The value of `--name` or `default`.
    pub fn get_or(&self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or_else(|| default.to_string())
    }

    /// The value of `--name` parsed, or `default`; exits with a message on a bad value.
    pub fn parse_or<T: std::str::FromStr>(&self, name: &str, default: T) -> T {
        match self.get(name) {
            None => default,
            Some(v) => v.parse().unwrap_or_else(|_| {
                eprintln!("bad value for {name}: {v}");
                std::process::exit(2)
            }),
        }
    }

    /// Whether the bare flag `--name` is present.
    pub fn flag(&self, name: &str) -> bool {
        self.items.iter().any(|a| a == name)
    }
}

// ---------------------------------------------------------------------------------------------
// Parsers of what the runner reads back

/// What the runner keeps of one `wrk` run.
#[derive(Debug, Clone, PartialEq)]
pub struct WrkResult {
    /// Responses completed in the run (`N requests in Xs`).
    pub requests: u64,
    /// Length of the run in seconds (from the same line).
    pub seconds: f64,
    /// `Requests/sec:`.
    pub req_per_sec: f64,
    /// 50th percentile latency (µs), from `--latency`.
    pub p50_us: f64,
    /// 99th percentile latency (µs), from `--latency`.
    pub p99_us: f64,
    /// Socket errors (connect + read + write + timeout) plus non-2xx/3xx responses.
    pub errors: u64,
}

/// Parses a `wrk` duration such as `264.00us`, `1.05ms`, `2.00s`, `1.00m` into microseconds.
pub fn parse_wrk_time_us(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s.find(|c: char| c.is_ascii_alphabetic())?;
    let (num, unit) = s.split_at(split);
    let v: f64 = num.parse().ok()?;
    let mult = match unit {
        "ns" => 0.001,
        "us" => 1.0,
        "ms" => 1_000.0,
        "s" => 1_000_000.0,
        "m" => 60_000_000.0,
        "h" => 3_600_000_000.0,
        _ => return None,
    };
    Some(v * mult)
}

/// Parses the output of `wrk --latency`. Errors name what is missing.
pub fn parse_wrk(text: &str) -> Result<WrkResult, String> {
    let mut requests = None;
    let mut seconds = None;
    let mut rps = None;
    let mut p50 = None;
    let mut p99 = None;
    let mut errors = 0u64;
    for line in text.lines() {
        let t = line.trim();
        let words: Vec<&str> = t.split_whitespace().collect();
        if words.len() >= 4 && words[1] == "requests" && words[2] == "in" {
            requests = words[0].parse::<u64>().ok();
            seconds = parse_wrk_time_us(words[3].trim_end_matches(',')).map(|us| us / 1e6);
        } else if let Some(v) = t.strip_prefix("Requests/sec:") {
            rps = v.trim().parse::<f64>().ok();
        } else if words.len() == 2 && words[0] == "50%" {
            p50 = parse_wrk_time_us(words[1]);
        } else if words.len() == 2 && words[0] == "99%" {
            p99 = parse_wrk_time_us(words[1]);
        } else if let Some(v) = t.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            for part in v.split(',') {
                if let Some(n) = part.split_whitespace().nth(1) {
                    errors += n.parse::<u64>().unwrap_or(0);
                }
            }
        } else if let Some(v) = t.strip_prefix("Non-2xx or 3xx responses:") {
            errors += v.trim().parse::<u64>().unwrap_or(0);
        }
    }
    Ok(WrkResult {
        requests: requests.ok_or("no `N requests in Xs` line")?,
        seconds: seconds.ok_or("no run length")?,
        req_per_sec: rps.ok_or("no `Requests/sec:` line")?,
        p50_us: p50.ok_or("no 50% latency (run wrk with --latency)")?,
        p99_us: p99.ok_or("no 99% latency (run wrk with --latency)")?,
        errors,
    })
}

/// CPU time of a process so far, in clock ticks, from `/proc/PID/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTicks {
    /// Field 14, `utime`: user mode, all threads.
    pub user: u64,
    /// Field 15, `stime`: kernel mode, all threads.
    pub system: u64,
}

impl CpuTicks {
    /// user + sys.
    pub fn total(&self) -> u64 {
        self.user + self.system
    }
}

/// Parses the contents of `/proc/PID/stat`. The second field (the command name, in
/// parentheses) may itself contain spaces and parentheses, so fields are counted from the last
/// `)`.
pub fn parse_proc_stat(text: &str) -> Option<CpuTicks> {
    let rest = &text[text.rfind(')')? + 1..];
    // Field 3 (state) is the first after the name: field k is at index k - 3.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(CpuTicks {
        user: fields.get(14 - 3)?.parse().ok()?,
        system: fields.get(15 - 3)?.parse().ok()?,
    })
}

/// Reads `/proc/PID/stat` for `pid`.
pub fn read_proc_stat(pid: u32) -> io::Result<CpuTicks> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_proc_stat(&text)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unparsable /proc/PID/stat"))
}

/// The `VmRSS` line of `/proc/PID/status`, in KiB.
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The resident set of process `pid`, in KiB.
pub fn read_rss_kib(pid: u32) -> io::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_vm_rss(&text)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no VmRSS in /proc/PID/status"))
}

/// Raises this process's soft limit on open files to at least `n` (no higher than the hard
/// limit), so that servers and load generators started afterwards inherit it. Returns the
/// soft limit in force afterwards.
pub fn raise_nofile(n: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit write/read the struct passed, which lives on this frame.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < n {
            lim.rlim_cur = n.min(lim.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        }
    }
    lim.rlim_cur
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`, 100 on Linux).
pub fn clock_ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// Microseconds of CPU per request between two samples.
pub fn cpu_us_per_request(
    before: CpuTicks,
    after: CpuTicks,
    ticks_per_sec: f64,
    requests: u64,
) -> f64 {
    if requests == 0 {
        return f64::NAN;
    }
    let ticks = after.total().saturating_sub(before.total()) as f64;
    ticks / ticks_per_sec * 1e6 / requests as f64
}

/// The load client's result.
///
/// Output contract of `examples/load_client` (and of the suite's own `load-standin`): one line
/// of space-separated `key=value` pairs containing at least `req/s=<f> p50_us=<f> p99_us=<f>`;
/// optional `requests=<n>` (round trips completed) and `errors=<n>`. Other lines are ignored.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadResult {
    /// Round trips per second.
    pub req_per_sec: f64,
    /// Median round-trip latency, µs.
    pub p50_us: f64,
    /// 99th percentile round-trip latency, µs.
    pub p99_us: f64,
    /// Round trips completed, if the client printed it.
    pub requests: Option<u64>,
    /// Errors, if the client printed it.
    pub errors: Option<u64>,
}

/// Parses the load client's output (see [`LoadResult`] for the contract).
pub fn parse_load_line(text: &str) -> Result<LoadResult, String> {
    let line = text
        .lines()
        .rev()
        .find(|l| l.split_whitespace().any(|w| w.starts_with("req/s=")))
        .ok_or("no line with `req/s=`")?;
    let get = |key: &str| -> Option<&str> {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
    };
    let num = |key: &str| -> Result<f64, String> {
        get(key)
            .ok_or(format!("no `{key}=`"))?
            .parse::<f64>()
            .map_err(|e| format!("`{key}=`: {e}"))
    };
    Ok(LoadResult {
        req_per_sec: num("req/s")?,
        p50_us: num("p50_us")?,
        p99_us: num("p99_us")?,
        requests: get("requests").and_then(|v| v.parse().ok()),
        errors: get("errors").and_then(|v| v.parse().ok()),
    })
}

/// The `p`-th percentile (0..=100) of sorted samples, nearest rank.
pub fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64
}

/// One micro-benchmark child's figures: the first iteration of a fresh process (cold) and the
/// median of the iterations after it (warm; `None` when only one ran).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MicroFigures {
    /// The first iteration.
    pub cold: f64,
    /// The median of the later iterations.
    pub warm: Option<f64>,
}

/// Parses the `RESULT v0 v1 ...` line a micro-benchmark child prints (zsync's `benches/green.rs`
/// with `--child`, the Go and Node peers): the first value is the cold iteration, the rest warm.
pub fn parse_micro_result(text: &str) -> Result<MicroFigures, String> {
    let line = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("RESULT "))
        .ok_or("no RESULT line")?;
    let values = line
        .split_whitespace()
        .map(|v| {
            v.parse::<f64>()
                .map_err(|e| format!("bad value {v:?}: {e}"))
        })
        .collect::<Result<Vec<f64>, String>>()?;
    let (&cold, rest) = values.split_first().ok_or("empty RESULT line")?;
    Ok(MicroFigures {
        cold,
        warm: median(rest),
    })
}

/// The median of `values` (the upper one of an even count); `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_read_from_status() {
        let status = "Name:\tx\nVmPeak:\t  9000 kB\nVmRSS:\t  1234 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss(status), Some(1234));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
    }

    const WRK: &str = "Running 5s test @ http://127.0.0.1:39915/
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   276.50us  100.30us   3.59ms   85.92%
    Req/Sec   230.82k    10.25k  245.63k    76.00%
  Latency Distribution
     50%  264.00us
     75%  305.00us
     90%  356.00us
     99%    1.57ms
  1147946 requests in 5.00s, 136.85MB read
  Socket errors: connect 0, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 5
Requests/sec: 229546.90
Transfer/sec:     27.37MB
";

    #[test]
    fn wrk_output() {
        let r = parse_wrk(WRK).unwrap();
        assert_eq!(r.requests, 1_147_946);
        assert_eq!(r.seconds, 5.0);
        assert_eq!(r.req_per_sec, 229_546.90);
        assert_eq!(r.p50_us, 264.0);
        assert!((r.p99_us - 1570.0).abs() < 1e-6);
        assert_eq!(r.errors, 10);
    }

    #[test]
    fn wrk_output_without_latency_is_an_error() {
        let text: String = WRK
            .lines()
            .filter(|l| !l.contains('%') || l.contains("Stdev"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(parse_wrk(&text).unwrap_err().contains("--latency"));
        assert!(parse_wrk("").is_err());
    }

    #[test]
    fn wrk_times() {
        assert_eq!(parse_wrk_time_us("264.00us"), Some(264.0));
        assert_eq!(parse_wrk_time_us("1.50ms"), Some(1500.0));
        assert_eq!(parse_wrk_time_us("2.00s"), Some(2_000_000.0));
        assert_eq!(parse_wrk_time_us("1.00m"), Some(60_000_000.0));
        assert_eq!(parse_wrk_time_us("12"), None);
        assert_eq!(parse_wrk_time_us("3.0xs"), None);
    }

    #[test]
    fn proc_stat() {
        // A real line, with a command name that contains a space and a parenthesis.
        let line = "4242 (tokio (x) rt) S 1 4242 4242 0 -1 4194560 1234 0 0 0 \
                    1500 2700 0 0 20 0 3 0 123456 12345678 900 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let t = parse_proc_stat(line).unwrap();
        assert_eq!(
            t,
            CpuTicks {
                user: 1500,
                system: 2700
            }
        );
        assert_eq!(t.total(), 4200);
        assert!(parse_proc_stat("12 (x) S 1 2").is_none());
        assert!(parse_proc_stat("garbage").is_none());
    }

    #[test]
    fn proc_stat_of_self() {
        let t = read_proc_stat(std::process::id()).unwrap();
        // Burn a little CPU: the counters never go backwards.
        let mut x = 0u64;
        for i in 0..1_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let u = read_proc_stat(std::process::id()).unwrap();
        assert!(u.total() >= t.total());
        assert!(clock_ticks_per_sec() >= 1.0);
    }

    #[test]
    fn cpu_per_request() {
        let a = CpuTicks {
            user: 100,
            system: 200,
        };
        let b = CpuTicks {
            user: 150,
            system: 650,
        };
        // 500 ticks at 100 Hz = 5 s = 5e6 µs over 1e6 requests.
        assert_eq!(cpu_us_per_request(a, b, 100.0, 1_000_000), 5.0);
        assert!(cpu_us_per_request(a, b, 100.0, 0).is_nan());
    }

    #[test]
    fn load_line() {
        let r = parse_load_line(
            "connecting\nreq/s=123456.7 p50_us=250.5 p99_us=900 requests=617283 errors=0\n",
        )
        .unwrap();
        assert_eq!(r.req_per_sec, 123_456.7);
        assert_eq!(r.p50_us, 250.5);
        assert_eq!(r.p99_us, 900.0);
        assert_eq!(r.requests, Some(617_283));
        assert_eq!(r.errors, Some(0));
        let r = parse_load_line("req/s=10 p50_us=1 p99_us=2").unwrap();
        assert_eq!(r.requests, None);
        assert!(parse_load_line("req/s=10 p50_us=1")
            .unwrap_err()
            .contains("p99_us"));
        assert!(parse_load_line("nothing").is_err());
    }

    #[test]
    fn http_handler_pipelining_and_partial() {
        let req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        let mut input = Vec::new();
        input.extend_from_slice(req);
        input.extend_from_slice(req);
        input.extend_from_slice(b"GET /nope HTTP/1.1\r\n\r\n");
        input.extend_from_slice(&req[..10]);
        let mut out = Vec::new();
        let used = handle_http(&input, &mut out).unwrap();
        assert_eq!(used, input.len() - 10);
        let mut want = Vec::new();
        want.extend_from_slice(HELLO_RESPONSE);
        want.extend_from_slice(HELLO_RESPONSE);
        want.extend_from_slice(NOT_FOUND_RESPONSE);
        assert_eq!(out, want);
        assert_eq!(
            handle_http(b"\x01\x02 nonsense\r\n\r\n", &mut out),
            Err(BadRequest)
        );
    }

    #[test]
    fn serve_http_over_a_socket() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let server = std::thread::spawn(move || serve_http(l.accept().unwrap().0));
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        c.write_all(b"GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n")
            .unwrap();
        let mut got = vec![0u8; 2 * HELLO_RESPONSE.len()];
        c.read_exact(&mut got).unwrap();
        assert_eq!(&got[..HELLO_RESPONSE.len()], HELLO_RESPONSE);
        drop(c);
        server.join().unwrap().unwrap();
    }

    #[test]
    fn flags() {
        let a = Args::from_vec(
            ["--addr", "1.2.3.4:5", "--workers=3", "--quick"]
                .map(String::from)
                .to_vec(),
        );
        assert_eq!(a.get("--addr").as_deref(), Some("1.2.3.4:5"));
        assert_eq!(a.parse_or("--workers", 1usize), 3);
        assert_eq!(a.parse_or("--missing", 7usize), 7);
        assert!(a.flag("--quick"));
        assert!(!a.flag("--slow"));
    }

    #[test]
    fn percentiles() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert!(percentile(&[], 50.0).is_nan());
    }

    #[test]
    fn micro_result_line_gives_cold_and_warm_median() {
        let out = "warming up\nRESULT 640.5 612.0 574.0 1023.0\n";
        let f = parse_micro_result(out).unwrap();
        assert_eq!(f.cold, 640.5);
        assert_eq!(f.warm, Some(612.0));
        let only_cold = parse_micro_result("RESULT 2.66").unwrap();
        assert_eq!((only_cold.cold, only_cold.warm), (2.66, None));
    }

    #[test]
    fn micro_result_rejects_missing_or_bad_lines() {
        assert!(parse_micro_result("panicked at ...").is_err());
        assert!(parse_micro_result("RESULT 1.0 x").is_err());
        assert!(parse_micro_result("RESULT ").is_err());
    }
}
