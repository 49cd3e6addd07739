//! The SQL of the bank workload and its random choices, with no runtime in sight: the zsync
//! example, its test and the Tokio + deadpool-postgres peer (`bench/peers/tokio_db_pool.rs`)
//! include this one file, so both sides send the very same statements.

/// Creates the schema (if missing) and both tables afresh. `{schema}` is replaced by the
/// caller's schema name; the connections' `search_path` points at it.
pub const SETUP: &str = "
CREATE SCHEMA IF NOT EXISTS {schema};
DROP TABLE IF EXISTS {schema}.transfers;
DROP TABLE IF EXISTS {schema}.accounts;
CREATE TABLE {schema}.accounts (
    id      integer PRIMARY KEY,
    owner   text    NOT NULL,
    balance bigint  NOT NULL CHECK (balance >= 0)
);
CREATE TABLE {schema}.transfers (
    id       bigserial PRIMARY KEY,
    src      integer NOT NULL REFERENCES {schema}.accounts (id),
    dst      integer NOT NULL REFERENCES {schema}.accounts (id),
    amount   bigint  NOT NULL CHECK (amount > 0),
    at       timestamptz NOT NULL DEFAULT now()
);
";

/// Fills `accounts` with ids `1..=$1`, each holding `$2`.
pub const SEED: &str = "INSERT INTO accounts (id, owner, balance)
     SELECT g, 'owner ' || g, $2::bigint FROM generate_series(1, $1::integer) AS g";

/// Drops the schema and everything in it.
pub const DROP_SCHEMA: &str = "DROP SCHEMA IF EXISTS {schema} CASCADE";

/// The point query of the read workload: one account's balance (a prepared statement).
pub const BALANCE: &str = "SELECT balance FROM accounts WHERE id = $1";

/// Takes `$2` from account `$1` if it holds that much: one row updated, or none (too poor).
pub const DEBIT: &str =
    "UPDATE accounts SET balance = balance - $2 WHERE id = $1 AND balance >= $2";

/// Adds `$2` to account `$1`.
pub const CREDIT: &str = "UPDATE accounts SET balance = balance + $2 WHERE id = $1";

/// Records a transfer.
pub const RECORD: &str = "INSERT INTO transfers (src, dst, amount) VALUES ($1, $2, $3)";

/// The consistency check: total money, number of accounts, number of transfers recorded.
pub const TOTALS: &str = "SELECT (SELECT sum(balance)::bigint FROM accounts),
            (SELECT count(*) FROM accounts),
            (SELECT count(*) FROM transfers)";

/// The long query the cancellation demo cancels.
pub const LONG_QUERY: &str = "SELECT pg_sleep(60)";

/// How many backends of this application (same `application_name` as the asking connection)
/// are running `pg_sleep` right now.
pub const SLEEPERS: &str = "SELECT count(*) FROM pg_stat_activity
     WHERE state = 'active' AND query LIKE 'SELECT pg_sleep%' AND pid <> pg_backend_pid()
       AND application_name = current_setting('application_name')";

/// How many backends of this application sit inside a transaction (open or failed) with
/// nothing to do: a connection given back to the pool must never be one.
pub const IDLE_IN_TRANSACTION: &str = "SELECT count(*) FROM pg_stat_activity
     WHERE state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()
       AND application_name = current_setting('application_name')";

/// The asking connection's backend process id.
pub const BACKEND_PID: &str = "SELECT pg_backend_pid()";

/// Ends another backend (as a server restart or an idle-connection killer would).
pub const TERMINATE: &str = "SELECT pg_terminate_backend($1)";

/// `SETUP` or `DROP_SCHEMA` for `schema` (an identifier the program chose, never user input).
pub fn for_schema(sql: &str, schema: &str) -> String {
    assert!(
        !schema.is_empty()
            && schema
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
        "schema names are lowercase identifiers"
    );
    sql.replace("{schema}", schema)
}

/// The `application_name` of the connections working in `schema` (so that queries on
/// `pg_stat_activity` see only their own application's backends).
pub fn application_name(schema: &str) -> String {
    format!("db_pool {schema}")
}

/// The connection option that makes `schema` the connection's `search_path`.
pub fn search_path_option(schema: &str) -> String {
    format!("-c search_path={schema}")
}

/// A transfer between two accounts: `from` and `to` differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transfer {
    /// The account debited.
    pub from: i32,
    /// The account credited.
    pub to: i32,
    /// How much moves.
    pub amount: i64,
}

impl Transfer {
    /// The two accounts in id order: rows are locked in this order by every transaction, so
    /// two concurrent transfers between the same accounts never deadlock.
    pub fn lock_order(&self) -> [(i32, bool); 2] {
        let debit = (self.from, true);
        let credit = (self.to, false);
        if self.from < self.to {
            [debit, credit]
        } else {
            [credit, debit]
        }
    }
}

/// A small deterministic generator (xorshift64*): each client draws its own reproducible
/// sequence of accounts and amounts, the same on both sides of the benchmark.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// The generator of client `n`.
    pub fn for_client(n: u64) -> Rng {
        Rng(0x9E37_79B9_7F4A_7C15 ^ (n.wrapping_add(1)).wrapping_mul(0xBF58_476D_1CE4_E5B9))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// An account id in `1..=accounts`.
    pub fn account(&mut self, accounts: i32) -> i32 {
        (self.next_u64() % accounts as u64) as i32 + 1
    }

    /// A transfer between two different accounts of `1..=accounts` (at least 2), of 1..=100.
    pub fn transfer(&mut self, accounts: i32) -> Transfer {
        let from = self.account(accounts);
        let mut to = self.account(accounts - 1);
        if to >= from {
            to += 1;
        }
        let amount = (self.next_u64() % 100) as i64 + 1;
        Transfer { from, to, amount }
    }
}
