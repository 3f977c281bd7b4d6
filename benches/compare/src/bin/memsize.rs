//! Resident memory of a `MemoryStore` holding 100 000 sessions of about 100
//! bytes of data each, created through the public `Store` API.
//!
//! `memsize [COUNT]` prints RSS before and after, and bytes per session.
//! Run it alone (nothing else in the process), in release mode.

use std::time::{Duration, SystemTime};

use serde_json::json;
use sessio::store::{Deadline, Record, Store};
use sessio::MemoryStore;

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("VmRSS value");
    kib * 1024
}

/// About 100 bytes of JSON: a user id, a name, a role and a counter.
fn record(i: usize) -> Record {
    let r: Record = [
        ("user_id".to_owned(), json!(i)),
        ("name".to_owned(), json!(format!("user-{i:08}"))),
        ("role".to_owned(), json!("member")),
        ("csrf".to_owned(), json!("k2Jd9xQp1LmZ7vT3bN8wYc")),
        ("count".to_owned(), json!(i % 1000)),
    ]
    .into_iter()
    .collect();
    r
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let count: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse().expect("COUNT"))
        .unwrap_or(100_000);
    let json_len = serde_json::to_string(&record(count / 2)).unwrap().len();
    // Room for every session measured: the default cap (100,000, split
    // across shards) would start evicting before the last ones.
    let store = MemoryStore::new().with_max_sessions(1_000_000);
    let expires = Deadline::new(
        SystemTime::now() + Duration::from_secs(3600),
        Duration::from_secs(3600),
    );
    let before = rss_bytes();
    let mut ids = Vec::with_capacity(count);
    for i in 0..count {
        ids.push(store.create(&record(i), expires).await.expect("create"));
    }
    let after = rss_bytes();
    // Keep the ids out of the measurement's conclusion but alive until here,
    // as a server keeps them in its clients' cookies.
    let ids_bytes = ids.capacity() * std::mem::size_of::<String>() + ids.len() * 22;
    assert_eq!(store.len(), count);
    let per = (after - before).saturating_sub(ids_bytes as u64) as f64 / count as f64;
    println!("sessions          {count}");
    println!("record JSON bytes {json_len}");
    println!("RSS before        {:.1} MiB", before as f64 / 1048576.0);
    println!("RSS after         {:.1} MiB", after as f64 / 1048576.0);
    println!("bytes/session     {per:.0} (RSS growth less the {ids_bytes} bytes of ids kept by this program)");
}
