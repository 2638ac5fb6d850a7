//! A small bounded least-recently-used map shared between reader threads
//! (grain tables, inflated grains).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Debug)]
struct Inner<V: ?Sized> {
    map: HashMap<u64, (Arc<V>, u64)>,
    clock: u64,
}

/// Bounded LRU keyed by `u64`; values are shared `Arc`s so lookups never
/// copy and the lock is held only briefly.
#[derive(Debug)]
pub struct Lru<V: ?Sized> {
    inner: Mutex<Inner<V>>,
    cap: usize,
}

impl<V: ?Sized> Lru<V> {
    /// A cache holding at most `cap` (≥ 1) entries.
    pub fn new(cap: usize) -> Self {
        Lru {
            inner: Mutex::new(Inner {
                map: HashMap::new(),
                clock: 0,
            }),
            cap: cap.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<V>> {
        // A panic while holding the lock cannot leave the map inconsistent
        // (every update is a single insert/remove), so recover from poison.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached value for `key`, refreshing its age.
    pub fn get(&self, key: u64) -> Option<Arc<V>> {
        let mut g = self.lock();
        g.clock += 1;
        let now = g.clock;
        g.map.get_mut(&key).map(|(v, t)| {
            *t = now;
            v.clone()
        })
    }

    /// Insert `value`, evicting the least recently used entry when full.
    pub fn insert(&self, key: u64, value: Arc<V>) {
        let mut g = self.lock();
        g.clock += 1;
        let now = g.clock;
        if !g.map.contains_key(&key) && g.map.len() >= self.cap {
            if let Some(old) = g.map.iter().min_by_key(|(_, (_, t))| *t).map(|(k, _)| *k) {
                g.map.remove(&old);
            }
        }
        g.map.insert(key, (value, now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recent() {
        let c: Lru<[u8]> = Lru::new(2);
        c.insert(1, Arc::from(vec![1u8]));
        c.insert(2, Arc::from(vec![2u8]));
        assert!(c.get(1).is_some());
        c.insert(3, Arc::from(vec![3u8]));
        assert!(c.get(2).is_none());
        assert!(c.get(1).is_some() && c.get(3).is_some());
    }
}
