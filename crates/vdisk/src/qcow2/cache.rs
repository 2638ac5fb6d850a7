//! A small bounded least-recently-used map for L2 tables and decompressed
//! clusters (callers wrap it in a `Mutex`).

use std::collections::HashMap;

/// LRU map from file offsets to shared values, holding at most `cap`.
#[derive(Debug)]
pub struct Lru<V> {
    map: HashMap<u64, (V, u64)>,
    tick: u64,
    cap: usize,
}

impl<V: Clone> Lru<V> {
    /// An empty cache holding at most `cap` (at least 1) values.
    pub fn new(cap: usize) -> Self {
        Lru {
            map: HashMap::new(),
            tick: 0,
            cap: cap.max(1),
        }
    }

    /// The value for `key`, marking it recently used.
    pub fn get(&mut self, key: u64) -> Option<V> {
        self.tick += 1;
        let t = self.tick;
        self.map.get_mut(&key).map(|(v, used)| {
            *used = t;
            v.clone()
        })
    }

    /// Insert (or replace) `key`, evicting the least recently used value
    /// when full.
    pub fn insert(&mut self, key: u64, value: V) {
        self.tick += 1;
        if !self.map.contains_key(&key) && self.map.len() >= self.cap {
            if let Some(old) = self
                .map
                .iter()
                .min_by_key(|(_, (_, t))| *t)
                .map(|(k, _)| *k)
            {
                self.map.remove(&old);
            }
        }
        self.map.insert(key, (value, self.tick));
    }

    /// Number of cached values.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::Lru;

    #[test]
    fn evicts_least_recent() {
        let mut c = Lru::new(2);
        c.insert(1, 'a');
        c.insert(2, 'b');
        assert_eq!(c.get(1), Some('a'));
        c.insert(3, 'c');
        assert_eq!(c.get(2), None);
        assert_eq!(c.get(1), Some('a'));
        assert_eq!(c.get(3), Some('c'));
        assert_eq!(c.len(), 2);
    }
}
