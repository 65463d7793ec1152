//! A small map whose entries expire after a TTL, for what the host reads
//! from Confluence and Slack and may keep for a while (users, groups, a
//! space's permissions, email lists).
//!
//! It lives beside the modules that use it, not in any of them, so that
//! [`crate::confluence`] and [`crate::enrich`] can both cache without one
//! importing the other. It must never grow without bound (it is emptied when
//! full and refills from the service) and never hand out an entry older
//! than its TTL.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most entries a cache holds before it is emptied (it refills from Confluence).
const CACHE_CAP: usize = 10_000;

/// A small map whose entries expire after a TTL (emptied when full).
pub(crate) struct TtlCache<K, V> {
    ttl: Duration,
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: Eq + Hash, V: Clone> TtlCache<K, V> {
    pub(crate) fn new(ttl: Duration) -> Self {
        TtlCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn get(&self, key: &K) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, v)| v.clone())
    }

    pub(crate) fn put(&self, key: K, value: V) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= CACHE_CAP {
            entries.clear();
        }
        entries.insert(key, (Instant::now(), value));
    }
}
