//! The cache's bookkeeping, without Redis.

use super::*;

fn ready(cache: &Arc<ClientCache>, key: &str, generation: u64) {
    let p = cache.begin(key);
    p.fill(
        generation,
        "{}".to_owned(),
        Instant::now() + Duration::from_secs(60),
    );
}

fn invalidate(keys: &[&str]) -> Vec<Value> {
    vec![
        Value::BulkString(b"invalidate".to_vec()),
        Value::Array(
            keys.iter()
                .map(|k| Value::BulkString(k.as_bytes().to_vec()))
                .collect(),
        ),
    ]
}

#[test]
fn an_invalidation_before_the_load_finishes_keeps_it_out() {
    let cache = Arc::new(ClientCache::new(8, 1024));
    ready(&cache, "a", 0);
    let p = cache.begin("k");
    cache.on_push(&invalidate(&["k"]));
    p.fill(0, "{}".into(), Instant::now() + Duration::from_secs(60));
    assert!(cache.hit("k", Some(0)).is_none());
    assert!(cache.hit("a", Some(0)).is_some());
}

#[test]
fn an_invalidation_after_the_load_finishes_removes_it() {
    let cache = Arc::new(ClientCache::new(8, 1024));
    ready(&cache, "a", 0);
    ready(&cache, "k", 0);
    assert!(cache.hit("k", Some(0)).is_some());
    cache.on_push(&invalidate(&["k"]));
    assert!(cache.hit("k", Some(0)).is_none());
    assert!(cache.hit("a", Some(0)).is_some());
}

#[test]
fn a_flushall_or_an_unknown_push_empties_the_cache() {
    for push in [
        vec![Value::BulkString(b"invalidate".to_vec()), Value::Nil],
        vec![Value::BulkString(b"message".to_vec()), Value::Nil],
        vec![],
    ] {
        let cache = Arc::new(ClientCache::new(8, 1024));
        ready(&cache, "a", 0);
        ready(&cache, "b", 0);
        let p = cache.begin("c");
        cache.on_push(&push);
        p.fill(0, "{}".into(), Instant::now() + Duration::from_secs(60));
        assert_eq!(cache.len(), 0, "{push:?}");
    }
}

#[test]
fn entries_are_served_only_on_the_connection_they_were_loaded_on() {
    let cache = Arc::new(ClientCache::new(8, 1024));
    ready(&cache, "a", 0);
    ready(&cache, "a", 0);
    assert!(cache.hit("a", Some(0)).is_some());
    assert!(cache.hit("a", Some(1)).is_none(), "replaced connection");
    assert!(cache.hit("a", None).is_none(), "discarded connection");
    // The first load on a new connection drops the old entries.
    ready(&cache, "b", 1);
    assert_eq!(cache.len(), 0);
    // A late load from the old connection stores nothing.
    ready(&cache, "c", 0);
    assert_eq!(cache.len(), 0);
    ready(&cache, "b", 1);
    assert!(cache.hit("b", Some(1)).is_some());
}

#[test]
fn a_cancelled_load_leaves_no_placeholder_and_a_later_load_wins() {
    let cache = Arc::new(ClientCache::new(8, 1024));
    ready(&cache, "x", 0);
    drop(cache.begin("k"));
    assert!(!cache.state().map.contains_key("k"));
    let first = cache.begin("k");
    let second = cache.begin("k");
    first.fill(0, "{}".into(), Instant::now() + Duration::from_secs(60));
    assert!(cache.hit("k", Some(0)).is_none(), "superseded load");
    second.fill(0, "{}".into(), Instant::now() + Duration::from_secs(60));
    assert!(cache.hit("k", Some(0)).is_some());
}

#[test]
fn expired_entries_are_not_served() {
    let cache = Arc::new(ClientCache::new(8, 1024));
    ready(&cache, "x", 0);
    let p = cache.begin("k");
    p.fill(0, "{}".into(), Instant::now());
    assert!(cache.hit("k", Some(0)).is_none());
}

#[test]
fn the_cache_holds_at_most_its_capacity_and_keeps_the_recently_used() {
    let cache = Arc::new(ClientCache::new(4, 1024));
    ready(&cache, "seed", 0);
    for i in 0..100 {
        ready(&cache, &format!("k{i}"), 0);
        assert!(cache.hit("k0", Some(0)).is_some(), "k0 is used every time");
        assert!(cache.len() <= 4);
        assert!(cache.state().ring.len() <= 2 * 4 + 64);
    }
    assert_eq!(cache.len(), 4);
}
