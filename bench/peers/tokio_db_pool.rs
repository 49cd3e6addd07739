//! The db_pool example's benchmark on Tokio: tokio-postgres behind deadpool-postgres, the
//! pool Tokio applications use. The same statements and random choices as the zsync example
//! (it includes `examples/db_pool/sql.rs`), the same loop: `--clients` tasks, each checking a
//! connection out per operation for `--seconds`, on a pool of `--pool` connections
//! (`RecyclingMethod::Fast`, as the zsync side's `--check fast`), with deadpool's per-connection
//! prepared statement cache (`prepare_cached`), as the zsync side's.
//!
//! ```text
//! tokio-db-pool --workload select|transfer --clients 64 --pool 16 --seconds 5 --workers 2
//! ```
//!
//! Prints one `RESULT ...` line in the zsync example's format.

#[path = "../../examples/db_pool/sql.rs"]
#[allow(dead_code)]
mod sql;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

struct Opts {
    db: String,
    schema: String,
    pool: usize,
    workload: String,
    clients: usize,
    seconds: f64,
    accounts: i32,
    workers: usize,
}

fn parse() -> Opts {
    let mut o = Opts {
        db: "127.0.0.1:54329".into(),
        schema: "db_pool_bench".into(),
        pool: 16,
        workload: "select".into(),
        clients: 64,
        seconds: 5.0,
        accounts: 1000,
        workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.chunks(2);
    for pair in &mut it {
        let [flag, value] = pair else {
            eprintln!("error: {} needs a value", pair[0]);
            std::process::exit(2);
        };
        let bad = |e: &dyn std::fmt::Display| -> ! {
            eprintln!("error: {flag} {value}: {e}");
            std::process::exit(2)
        };
        match flag.as_str() {
            "--db" => o.db = value.clone(),
            "--schema" => o.schema = value.clone(),
            "--pool" => o.pool = value.parse().unwrap_or_else(|e| bad(&e)),
            "--workload" => o.workload = value.clone(),
            "--clients" => o.clients = value.parse().unwrap_or_else(|e| bad(&e)),
            "--seconds" => o.seconds = value.parse().unwrap_or_else(|e| bad(&e)),
            "--accounts" => o.accounts = value.parse().unwrap_or_else(|e| bad(&e)),
            "--workers" => o.workers = value.parse().unwrap_or_else(|e| bad(&e)),
            _ => bad(&"unknown flag"),
        }
    }
    if !matches!(o.workload.as_str(), "select" | "transfer") {
        eprintln!(
            "error: --workload {}: expected select or transfer",
            o.workload
        );
        std::process::exit(2);
    }
    o
}

type Error = Box<dyn std::error::Error + Send + Sync>;

fn main() {
    let o = parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(o.workers.max(1))
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(e) = rt.block_on(run(o)) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

async fn run(o: Opts) -> Result<(), Error> {
    let (host, port) = o.db.rsplit_once(':').ok_or("--db HOST:PORT")?;
    let mut config = tokio_postgres::Config::new();
    config
        .host(host)
        .port(port.parse()?)
        .user("postgres")
        .dbname("postgres")
        .application_name(sql::application_name(&o.schema))
        .options(sql::search_path_option(&o.schema));
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(manager)
        .max_size(o.pool)
        .wait_timeout(Some(Duration::from_secs(5)))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()?;

    {
        let client = pool.get().await?;
        client
            .batch_execute(&sql::for_schema(sql::SETUP, &o.schema))
            .await?;
        let seed = client.prepare_cached(sql::SEED).await?;
        client.execute(&seed, &[&o.accounts, &1_000_000i64]).await?;
    }

    let ops = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(o.seconds);
    let transfer = o.workload == "transfer";
    let mut tasks = Vec::new();
    for n in 0..o.clients {
        let pool = pool.clone();
        let ops = Arc::clone(&ops);
        let accounts = o.accounts;
        tasks.push(tokio::spawn(async move {
            let mut rng = sql::Rng::for_client(n as u64);
            let mut done = 0;
            while Instant::now() < deadline {
                let mut client = pool.get().await?;
                if transfer {
                    let t = rng.transfer(accounts);
                    let debit = client.prepare_cached(sql::DEBIT).await?;
                    let credit = client.prepare_cached(sql::CREDIT).await?;
                    let record = client.prepare_cached(sql::RECORD).await?;
                    let tx = client.transaction().await?;
                    let mut declined = false;
                    for (account, is_debit) in t.lock_order() {
                        if is_debit {
                            if tx.execute(&debit, &[&account, &t.amount]).await? == 0 {
                                declined = true;
                                break;
                            }
                        } else {
                            tx.execute(&credit, &[&account, &t.amount]).await?;
                        }
                    }
                    if declined {
                        tx.rollback().await?;
                    } else {
                        tx.execute(&record, &[&t.from, &t.to, &t.amount]).await?;
                        tx.commit().await?;
                    }
                } else {
                    let balance = client.prepare_cached(sql::BALANCE).await?;
                    let row = client
                        .query_one(&balance, &[&rng.account(accounts)])
                        .await?;
                    let _: i64 = row.get(0);
                }
                done += 1;
            }
            ops.fetch_add(done, Ordering::Relaxed);
            Ok::<(), Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let elapsed = start.elapsed();
    let ops = ops.load(Ordering::Relaxed);
    println!(
        "RESULT workload={} model=tokio clients={} pool={} ops={} secs={:.3} per_sec={:.1}",
        o.workload,
        o.clients,
        o.pool,
        ops,
        elapsed.as_secs_f64(),
        ops as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}
