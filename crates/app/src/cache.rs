//! A size-limited cache of decoded, prepared samples, so a dataset larger than memory
//! trains with bounded memory: at most `limit_mb` of samples are kept (least recently used
//! evicted first); a sample larger than the whole limit is used and dropped, never cached.
//! Statistics (hits, misses, evictions, peak bytes) tell whether the limit was honoured.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// What the cache did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
    /// Samples larger than the whole limit (loaded, used, not kept).
    pub uncacheable: u64,
    /// Largest total size of cached samples seen, in bytes.
    pub peak_bytes: usize,
    pub bytes: usize,
}

struct Inner<T> {
    map: HashMap<usize, (Arc<T>, u64)>,
    clock: u64,
    stats: CacheStats,
}

/// Thread-safe LRU cache keyed by sample index; `size_of` gives a sample's bytes.
pub struct SampleCache<T> {
    limit_bytes: usize,
    size_of: fn(&T) -> usize,
    inner: Mutex<Inner<T>>,
}

impl<T> SampleCache<T> {
    pub fn new(limit_mb: usize, size_of: fn(&T) -> usize) -> Self {
        Self::with_limit_bytes(limit_mb.saturating_mul(1 << 20), size_of)
    }

    pub fn with_limit_bytes(limit_bytes: usize, size_of: fn(&T) -> usize) -> Self {
        Self {
            limit_bytes,
            size_of,
            inner: Mutex::new(Inner {
                map: HashMap::new(),
                clock: 0,
                stats: CacheStats::default(),
            }),
        }
    }

    pub fn limit_bytes(&self) -> usize {
        self.limit_bytes
    }

    pub fn stats(&self) -> CacheStats {
        self.lock().stats
    }

    /// The state; a panic in another thread while holding the lock leaves it consistent
    /// (every update is a single insert or remove), so poisoning is ignored.
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<T>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached sample `key`, if present (counted as a hit).
    pub fn get(&self, key: usize) -> Option<Arc<T>> {
        let mut g = self.lock();
        g.clock += 1;
        let now = g.clock;
        let entry = g.map.get_mut(&key)?;
        entry.1 = now;
        let v = entry.0.clone();
        g.stats.hits += 1;
        Some(v)
    }

    /// Caches `v` as `key` if it fits (evicting the least recently used), counting a miss.
    pub fn insert(&self, key: usize, v: Arc<T>) {
        let size = (self.size_of)(&v);
        let mut g = self.lock();
        g.stats.misses += 1;
        if size > self.limit_bytes {
            g.stats.uncacheable += 1;
            return;
        }
        if g.map.contains_key(&key) {
            return;
        }
        while g.stats.bytes + size > self.limit_bytes {
            let Some((&old, _)) = g.map.iter().min_by_key(|(_, (_, t))| *t) else {
                break;
            };
            if let Some((ov, _)) = g.map.remove(&old) {
                g.stats.bytes -= (self.size_of)(&ov);
                g.stats.evictions += 1;
            }
        }
        g.clock += 1;
        let now = g.clock;
        g.map.insert(key, (v, now));
        g.stats.bytes += size;
        g.stats.peak_bytes = g.stats.peak_bytes.max(g.stats.bytes);
    }

    /// The cached sample `key`, or `load()`'s result (cached if it fits). The loader runs
    /// without holding the lock.
    pub fn get_or_load<E>(
        &self,
        key: usize,
        load: impl FnOnce() -> Result<T, E>,
    ) -> Result<Arc<T>, E> {
        if let Some(v) = self.get(key) {
            return Ok(v);
        }
        let v = Arc::new(load()?);
        self.insert(key, v.clone());
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_at_most_its_limit_and_evicts_the_least_recent() {
        let sizes = [300usize, 200, 250];
        let limit = 300 + 200 / 2;
        let cache = SampleCache::<Vec<u8>>::with_limit_bytes(limit, |v| v.len());
        let mut loads = 0;
        for _round in 0..3 {
            for (i, &n) in sizes.iter().enumerate() {
                let v = cache
                    .get_or_load(i, || {
                        loads += 1;
                        Ok::<_, ()>(vec![i as u8; n])
                    })
                    .unwrap();
                assert_eq!(v.len(), n);
                assert!(v.iter().all(|&x| x == i as u8));
            }
        }
        let s = cache.stats();
        assert!(s.peak_bytes <= limit && s.evictions > 0, "{s:?}");
        assert_eq!(s.hits + s.misses, 9);
        assert_eq!(s.misses, loads);
        // Too large for the whole cache: used, never kept.
        let big = cache
            .get_or_load(9, || Ok::<_, ()>(vec![0u8; 1000]))
            .unwrap();
        assert_eq!(big.len(), 1000);
        assert_eq!(cache.stats().uncacheable, 1);
        assert!(cache.get(9).is_none());
        // A loader error is passed through and nothing is cached.
        assert_eq!(
            cache
                .get_or_load(7, || Err::<Vec<u8>, _>("bad"))
                .unwrap_err(),
            "bad"
        );
        assert!(cache.get(7).is_none());
    }
}
