//! A client's bounded outbound queue, and what happens when it is full.
//!
//! A room's fan-out pushes into every member's outbox and never waits: a member that reads
//! slowly (or not at all) fills its own outbox, and the [`Policy`] decides what it loses — its
//! oldest queued messages, the newest ones, or its connection (closed with 1008 or 1013). The
//! sender and every other member go on at full speed. The connection's task drains the outbox
//! into its WebSocket when the socket takes more bytes.
//!
//! Locking: one short `std::sync::Mutex` section per push and per drain, never held across a
//! wait; the waking goes through a zsync [`Notify`], which stores a permit when the connection's
//! task is not waiting, so a push between its last drain and its next wait is not lost.

use std::collections::VecDeque;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::Message;
use zsync::sync::Notify;

/// What a full outbox does with one more message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Drop the oldest queued message to make room (the client sees the latest messages).
    DropOldest,
    /// Drop the new message (the client sees an unbroken prefix, then a gap).
    DropNewest,
    /// Close the client's connection with this code (1008 policy violation or 1013 try again
    /// later); queued messages are discarded.
    Disconnect(u16),
}

impl FromStr for Policy {
    type Err = String;

    fn from_str(s: &str) -> Result<Policy, String> {
        match s {
            "drop-oldest" => Ok(Policy::DropOldest),
            "drop-newest" => Ok(Policy::DropNewest),
            "disconnect" | "disconnect-1008" => Ok(Policy::Disconnect(1008)),
            "disconnect-1013" => Ok(Policy::Disconnect(1013)),
            other => Err(format!(
                "{other}: expected drop-oldest, drop-newest, disconnect (1008) or disconnect-1013"
            )),
        }
    }
}

impl Policy {
    /// The close code of a `Disconnect` policy.
    pub fn close_code(self) -> Option<CloseCode> {
        match self {
            Policy::Disconnect(code) => Some(CloseCode::from(code)),
            _ => None,
        }
    }
}

/// What a [`Outbox::push`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Queued.
    Queued,
    /// Queued, and the oldest message was dropped for it.
    DroppedOldest,
    /// Not queued: the outbox was full (`DropNewest`), or the client is being disconnected.
    Dropped,
    /// Not queued: the outbox was full and the client is now to be disconnected.
    Overflowed,
}

/// The queue itself, under the outbox's lock.
#[derive(Debug, Default)]
struct State {
    msgs: VecDeque<Message>,
    /// Set when a `Disconnect` policy tripped: the connection's task closes it.
    overflowed: bool,
}

/// A client's bounded outbound queue.
#[derive(Debug)]
pub struct Outbox {
    state: Mutex<State>,
    /// Wakes the connection's task: notified when the queue goes from empty to non-empty, or
    /// overflows.
    pub notify: Notify,
    cap: usize,
    policy: Policy,
    /// Messages this client lost to its policy (statistics).
    dropped: AtomicU64,
}

impl Outbox {
    /// An empty outbox of at most `cap` messages (at least 1).
    pub fn new(cap: usize, policy: Policy) -> Outbox {
        Outbox {
            state: Mutex::new(State::default()),
            notify: Notify::new(),
            cap: cap.max(1),
            policy,
            dropped: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `msg`, applying the policy if the outbox is full. Never waits.
    pub fn push(&self, msg: Message) -> Pushed {
        let (pushed, wake) = {
            let mut s = self.lock();
            if s.overflowed {
                (Pushed::Dropped, false)
            } else if s.msgs.len() < self.cap {
                s.msgs.push_back(msg);
                (Pushed::Queued, s.msgs.len() == 1)
            } else {
                match self.policy {
                    Policy::DropOldest => {
                        s.msgs.pop_front();
                        s.msgs.push_back(msg);
                        (Pushed::DroppedOldest, false)
                    }
                    Policy::DropNewest => (Pushed::Dropped, false),
                    Policy::Disconnect(_) => {
                        s.overflowed = true;
                        s.msgs.clear();
                        (Pushed::Overflowed, true)
                    }
                }
            }
        };
        if pushed != Pushed::Queued {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        if wake {
            self.notify.notify_one();
        }
        pushed
    }

    /// Takes up to `max` queued messages, oldest first, into `out`. Returns whether the
    /// `Disconnect` policy has tripped (then nothing is taken).
    pub fn drain_into(&self, out: &mut VecDeque<Message>, max: usize) -> bool {
        let mut s = self.lock();
        if s.overflowed {
            return true;
        }
        let n = max.min(s.msgs.len());
        out.extend(s.msgs.drain(..n));
        false
    }

    /// Puts back messages taken by [`drain_into`](Self::drain_into) that the socket did not
    /// take, in front of the queue, in order, then applies the policy to whatever exceeds the
    /// bound.
    pub fn unget(&self, back: &mut VecDeque<Message>) {
        if back.is_empty() {
            return;
        }
        let mut s = self.lock();
        if s.overflowed {
            back.clear();
            return;
        }
        while let Some(m) = back.pop_back() {
            s.msgs.push_front(m);
        }
        // Pushes made while these were out may have filled the queue: apply the policy to the
        // excess now, so that the bound holds.
        let excess = s.msgs.len().saturating_sub(self.cap);
        if excess > 0 {
            match self.policy {
                Policy::DropOldest => drop(s.msgs.drain(..excess)),
                Policy::DropNewest => s.msgs.truncate(self.cap),
                Policy::Disconnect(_) => {
                    s.overflowed = true;
                    s.msgs.clear();
                    // The connection's task sees it at its next turn.
                    self.notify.notify_one();
                }
            }
            self.dropped.fetch_add(excess as u64, Ordering::Relaxed);
        }
    }

    /// Whether messages are queued (or the `Disconnect` policy has tripped).
    pub fn has_queued(&self) -> bool {
        let s = self.lock();
        s.overflowed || !s.msgs.is_empty()
    }

    /// Messages this client has lost to its policy.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The policy.
    pub fn policy(&self) -> Policy {
        self.policy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(i: usize) -> Message {
        Message::text(i.to_string())
    }

    fn drain(o: &Outbox) -> Vec<String> {
        let mut q = VecDeque::new();
        o.drain_into(&mut q, usize::MAX);
        q.into_iter()
            .map(|m| m.into_text().unwrap().to_string())
            .collect()
    }

    #[test]
    fn drop_oldest_keeps_the_latest() {
        let o = Outbox::new(3, Policy::DropOldest);
        for i in 0..5 {
            o.push(text(i));
        }
        assert_eq!(drain(&o), ["2", "3", "4"]);
        assert_eq!(o.dropped(), 2);
    }

    #[test]
    fn drop_newest_keeps_the_first() {
        let o = Outbox::new(3, Policy::DropNewest);
        for i in 0..5 {
            o.push(text(i));
        }
        assert_eq!(drain(&o), ["0", "1", "2"]);
        assert_eq!(o.dropped(), 2);
    }

    #[test]
    fn disconnect_trips_once_and_discards() {
        let o = Outbox::new(2, Policy::Disconnect(1013));
        assert_eq!(o.push(text(0)), Pushed::Queued);
        assert_eq!(o.push(text(1)), Pushed::Queued);
        assert_eq!(o.push(text(2)), Pushed::Overflowed);
        assert_eq!(o.push(text(3)), Pushed::Dropped);
        let mut q = VecDeque::new();
        assert!(o.drain_into(&mut q, 10));
        assert!(q.is_empty());
    }
}
