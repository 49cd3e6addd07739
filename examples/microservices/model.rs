//! The services' data: users, orders, and the JSON documents the services exchange. Plain
//! serde types and deterministic demo data, shared with the benchmark's Tokio peer.

use serde::{Deserialize, Serialize};

/// An order, as orders stores and serves it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Order {
    /// The order's id.
    pub id: u64,
    /// The user who placed it.
    pub user: u64,
    /// What was ordered.
    pub item: String,
    /// Its price in cents.
    pub cents: u64,
}

/// A user, as users stores it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct User {
    /// The user's id.
    pub id: u64,
    /// Display name.
    pub name: String,
    /// E-mail address.
    pub email: String,
}

/// What users answers: the user with its orders.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct UserOrders {
    /// The user.
    pub user: User,
    /// Its orders, from the orders service.
    pub orders: Vec<Order>,
    /// The sum of their prices.
    pub total_cents: u64,
}

/// What the gateway answers.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Profile {
    /// The user.
    pub profile: User,
    /// How many orders the user placed.
    pub order_count: usize,
    /// The sum of their prices.
    pub total_cents: u64,
    /// The services that answered, outermost first.
    pub trace: Vec<String>,
}

/// Users known to the demo: ids 1 to this.
pub const USERS: u64 = 10_000;

const ITEMS: [&str; 5] = ["book", "lamp", "kettle", "chair", "plant"];

/// The orders of `user` (deterministic demo data: 1 to 4 orders each).
pub fn orders_of(user: u64) -> Vec<Order> {
    (0..1 + user % 4)
        .map(|i| Order {
            id: user * 10 + i,
            user,
            item: ITEMS[((user + i) % ITEMS.len() as u64) as usize].to_string(),
            cents: 500 + (user * 37 + i * 101) % 9_500,
        })
        .collect()
}

/// The user `id`, if it exists.
pub fn user(id: u64) -> Option<User> {
    (1..=USERS).contains(&id).then(|| User {
        id,
        name: format!("user {id}"),
        email: format!("user{id}@example.com"),
    })
}
