//! Tokio peer: the suite's httparse hello handler (or an echo) on a multi-thread runtime.
//!
//! `tokio-http --addr 127.0.0.1:8080 --workers 2 [--mode http|echo]`

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use zsync_bench::{tokio_serve, Args};

fn main() {
    let args = Args::from_env();
    let addr = args.get_or("--addr", "127.0.0.1:8080");
    let workers = args.parse_or("--workers", 2usize);
    let echo = args.get_or("--mode", "http") == "echo";
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        let listener = TcpListener::bind(&addr).await.expect("bind");
        loop {
            let Ok((s, _)) = listener.accept().await else {
                continue;
            };
            let _ = s.set_nodelay(true);
            if echo {
                tokio::spawn(serve_echo(s));
            } else {
                tokio::spawn(serve_http(s));
            }
        }
    });
}

async fn serve_http(mut s: TcpStream) -> std::io::Result<()> {
    tokio_serve::serve_http(&mut s).await
}

async fn serve_echo(mut s: TcpStream) -> std::io::Result<()> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        s.write_all(&buf[..n]).await?;
    }
}
