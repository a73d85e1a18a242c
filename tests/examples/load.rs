//! A steady request load on a running Beaker, for `make profile`.
//!
//! `LOAD_CLIENTS` concurrent clients (default 16) send `stock.add`,
//! `stock.get` and `stock.remove` requests over `LOAD_SKUS` products
//! (default 64) to the service at `NATS_URL` for `LOAD_SECONDS` (default 20),
//! each waiting for its reply before sending the next, then the totals are
//! printed. Bounded in time and in requests in flight, it stops by itself.
//!
//! ```sh
//! NATS_URL=nats://127.0.0.1:4222 cargo run --release -p beaker-tests --example load
//! ```

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;

/// What one client saw.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    /// Successful replies.
    ok: u64,
    /// Error replies (`Nats-Service-Error-Code` set): refused removes, mostly.
    refused: u64,
    /// No reply at all: timeouts, no responders.
    failed: u64,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.ok += other.ok;
        self.refused += other.refused;
        self.failed += other.failed;
    }

    fn total(&self) -> u64 {
        self.ok + self.refused + self.failed
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// The request the `n`th call of client `client` sends: mostly adds and
/// gets, with removes that are sometimes refused (more than in stock).
fn request(client: usize, n: u64, skus: usize) -> (&'static str, Bytes) {
    let sku_index = (client.wrapping_mul(31) as u64).wrapping_add(n) % skus.max(1) as u64;
    let sku = format!("load-{sku_index}");
    let quantity = 1 + (n % 5);
    let (subject, body) = match n % 4 {
        0 | 1 => (
            "stock.add",
            serde_json::json!({"product-sku": sku, "quantity": quantity}),
        ),
        2 => ("stock.get", serde_json::json!({"product-sku": sku})),
        _ => (
            "stock.remove",
            serde_json::json!({"product-sku": sku, "quantity": quantity * 2}),
        ),
    };
    (subject, Bytes::from(body.to_string()))
}

async fn run_client(
    nats: async_nats::Client,
    client: usize,
    skus: usize,
    deadline: Instant,
) -> Tally {
    let mut tally = Tally::default();
    let mut n: u64 = 0;
    while Instant::now() < deadline {
        let (subject, payload) = request(client, n, skus);
        n += 1;
        let call = async_nats::Request::new()
            .payload(payload)
            .timeout(Some(Duration::from_secs(5)));
        match nats.send_request(subject, call).await {
            Ok(reply) => {
                let refused = reply
                    .headers
                    .as_ref()
                    .is_some_and(|headers| headers.get("Nats-Service-Error-Code").is_some());
                if refused {
                    tally.refused += 1;
                } else {
                    tally.ok += 1;
                }
            }
            Err(_) => tally.failed += 1,
        }
    }
    tally
}

#[tokio::main]
async fn main() -> Result<()> {
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let seconds: u64 = env_or("LOAD_SECONDS", 20);
    let clients: usize = env_or("LOAD_CLIENTS", 16);
    let skus: usize = env_or("LOAD_SKUS", 64);

    let nats = async_nats::connect(&url)
        .await
        .with_context(|| format!("cannot connect to NATS at {url}"))?;
    eprintln!("load: {clients} clients, {skus} products, {seconds} s against {url}");

    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..clients)
        .map(|client| tokio::spawn(run_client(nats.clone(), client, skus, deadline)))
        .collect();
    let mut total = Tally::default();
    for task in tasks {
        total.add(task.await.context("a load client panicked")?);
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "load: {} requests in {elapsed:.1} s ({:.0}/s): {} ok, {} refused, {} without reply",
        total.total(),
        total.total() as f64 / elapsed.max(f64::EPSILON),
        total.ok,
        total.refused,
        total.failed,
    );
    nats.drain()
        .await
        .context("cannot drain the NATS connection")?;
    if total.ok == 0 {
        anyhow::bail!("no request succeeded: is Beaker serving at {url}?");
    }
    Ok(())
}
