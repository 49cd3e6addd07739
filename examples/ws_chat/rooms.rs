//! Rooms: who is in which room, and the fan-out of a message to every member.
//!
//! A room is a list of members' outboxes behind a `RwLock`: a broadcast takes the read lock and
//! pushes into each outbox (never waiting, see `outbox.rs`), so broadcasts in one room run in
//! parallel on every worker; joining and leaving take the write lock briefly. The registry maps
//! names to rooms and drops a room when its last member leaves.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tungstenite::Message;

use crate::outbox::{Outbox, Pushed};

/// The longest room name, in bytes.
pub const MAX_ROOM_NAME: usize = 64;

/// Whether `name` is a valid room name: 1 to 64 ASCII letters, digits, `-`, `_` or `.`.
pub fn valid_room_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_ROOM_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// One room's members, by member id.
type Members = RwLock<HashMap<u64, Arc<Outbox>>>;

/// Every room of a server.
#[derive(Debug, Default)]
pub struct Rooms {
    rooms: Mutex<HashMap<String, Arc<Members>>>,
    next_id: AtomicU64,
    /// Messages pushed into outboxes (one per member reached).
    pub fanned_out: AtomicU64,
    /// Messages dropped or refused by full outboxes.
    pub dropped: AtomicU64,
}

/// A member's place in a room; leaving the room is dropping it.
#[derive(Debug)]
pub struct Membership {
    rooms: Arc<Rooms>,
    name: String,
    room: Arc<Members>,
    id: u64,
}

impl Rooms {
    /// No rooms yet.
    pub fn new() -> Arc<Rooms> {
        Arc::new(Rooms::default())
    }

    /// Adds `outbox` to the room `name` (created if needed).
    pub fn join(self: &Arc<Rooms>, name: &str, outbox: Arc<Outbox>) -> Membership {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        let room = rooms.entry(name.to_string()).or_default().clone();
        // Under the registry lock, so that a concurrent last `leave` cannot drop the room
        // between our lookup and our insert.
        room.write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, outbox);
        Membership {
            rooms: self.clone(),
            name: name.to_string(),
            room,
            id,
        }
    }

    /// The number of rooms with members.
    pub fn len(&self) -> usize {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl Membership {
    /// Pushes `msg` to every member of the room (the sender included). Returns the number of
    /// members it reached and the number that dropped it or an older message.
    pub fn broadcast(&self, msg: &Message) -> (usize, usize) {
        let members = self.room.read().unwrap_or_else(|p| p.into_inner());
        let mut dropped = 0;
        for outbox in members.values() {
            // A clone of a message is a reference count: the payload is shared.
            if outbox.push(msg.clone()) != Pushed::Queued {
                dropped += 1;
            }
        }
        self.rooms
            .fanned_out
            .fetch_add(members.len() as u64, Ordering::Relaxed);
        if dropped > 0 {
            self.rooms
                .dropped
                .fetch_add(dropped as u64, Ordering::Relaxed);
        }
        (members.len(), dropped)
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        let mut rooms = self.rooms.rooms.lock().unwrap_or_else(|p| p.into_inner());
        let mut members = self.room.write().unwrap_or_else(|p| p.into_inner());
        members.remove(&self.id);
        if members.is_empty() {
            drop(members);
            rooms.remove(&self.name);
        }
    }
}
