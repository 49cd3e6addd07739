//! The peer of `examples/ws_chat`: the same chat server on Tokio and tokio-tungstenite, as a
//! Tokio user would write it. Same protocol (join by `/room/<name>`), same bounded per-client
//! outbox with the same drop-oldest policy and size, same message size limit, TCP_NODELAY.
//!
//! Idiomatic Tokio shape: the WebSocket stream is split (`StreamExt::split`); a writer task
//! drains the client's outbox into the sink (`feed` each message, one `flush` per batch) and
//! the connection's task reads and broadcasts. tungstenite's automatic pong and close replies
//! go out through the shared stream behind the split's lock.
//!
//! ```text
//! tokio-ws-chat --addr 127.0.0.1:9101 --workers 2 --queue 256
//! ```

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

/// A client's bounded outbox (drop-oldest when full).
struct Outbox {
    msgs: Mutex<VecDeque<Message>>,
    notify: Notify,
    cap: usize,
    closed: std::sync::atomic::AtomicBool,
}

impl Outbox {
    fn push(&self, m: Message) {
        let wake = {
            let mut q = self.msgs.lock().unwrap();
            if q.len() >= self.cap {
                q.pop_front();
            }
            q.push_back(m);
            q.len() == 1
        };
        if wake {
            self.notify.notify_one();
        }
    }
}

type Room = RwLock<HashMap<u64, Arc<Outbox>>>;

#[derive(Default)]
struct Rooms {
    rooms: Mutex<HashMap<String, Arc<Room>>>,
    next: AtomicU64,
}

fn main() {
    let mut addr = "127.0.0.1:9101".to_string();
    let mut workers = 2usize;
    let mut queue = 256usize;
    let mut max_message = 64 * 1024usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args.next().unwrap_or_default();
        match a.as_str() {
            "--addr" => addr = v,
            "--workers" => workers = v.parse().expect("--workers N"),
            "--queue" => queue = v.parse().expect("--queue N"),
            "--max-message" => max_message = v.parse().expect("--max-message N"),
            other => panic!("unknown flag {other}"),
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let listener = TcpListener::bind(&addr).await.unwrap();
        println!(
            "listening on {} (tokio, {workers} workers; WebSocket chat)",
            listener.local_addr().unwrap()
        );
        let rooms = Arc::new(Rooms::default());
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                continue;
            };
            let rooms = rooms.clone();
            tokio::spawn(async move {
                let _ = serve(sock, rooms, queue, max_message).await;
            });
        }
    });
}

/// Serves one connection until it closes.
// The handshake callback's `Result<Response, ErrorResponse>` is tungstenite's signature.
#[allow(clippy::result_large_err)]
async fn serve(
    sock: TcpStream,
    rooms: Arc<Rooms>,
    queue: usize,
    max_message: usize,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    sock.set_nodelay(true)?;
    let mut room_name = None;
    let cb = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        match req.uri().path().strip_prefix("/room/") {
            Some(n) if !n.is_empty() => {
                room_name = Some(n.to_string());
                Ok(resp)
            }
            _ => {
                let mut r = ErrorResponse::new(Some("no such room path\n".into()));
                *r.status_mut() = tokio_tungstenite::tungstenite::http::StatusCode::NOT_FOUND;
                Err(r)
            }
        }
    };
    let config = WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(64 * 1024)
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message));
    let ws = tokio_tungstenite::accept_hdr_async_with_config(sock, cb, Some(config)).await?;
    let name = room_name.expect("set by the callback");
    let outbox = Arc::new(Outbox {
        msgs: Mutex::new(VecDeque::new()),
        notify: Notify::new(),
        cap: queue,
        closed: Default::default(),
    });
    let id = rooms.next.fetch_add(1, Ordering::Relaxed);
    let room = {
        let mut all = rooms.rooms.lock().unwrap();
        let room = all.entry(name.clone()).or_default().clone();
        room.write().unwrap().insert(id, outbox.clone());
        room
    };
    let (mut sink, mut stream) = ws.split();
    let out = outbox.clone();
    let writer = tokio::spawn(async move {
        let mut batch = Vec::new();
        loop {
            batch.extend(out.msgs.lock().unwrap().drain(..));
            if batch.is_empty() {
                if out.closed.load(Ordering::Acquire) {
                    return;
                }
                out.notify.notified().await;
                continue;
            }
            for m in batch.drain(..) {
                if sink.feed(m).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    while let Some(msg) = stream.next().await {
        match msg {
            Ok(Message::Text(t)) => {
                let members = room.read().unwrap();
                let m = Message::Text(t);
                for o in members.values() {
                    o.push(m.clone());
                }
            }
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => {}
        }
    }
    {
        let mut all = rooms.rooms.lock().unwrap();
        let mut members = room.write().unwrap();
        members.remove(&id);
        if members.is_empty() {
            all.remove(&name);
        }
    }
    outbox.closed.store(true, Ordering::Release);
    outbox.notify.notify_one();
    let _ = writer.await;
    Ok(())
}
