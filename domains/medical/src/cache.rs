//! A size-limited cache of decoded, preprocessed volumes, so a dataset larger than memory
//! trains with bounded memory: at most `limit_mb` of volumes are kept (least recently used
//! evicted first); a volume larger than the whole limit is used and dropped, never cached.
//! Statistics (hits, misses, evictions, peak bytes) tell whether the limit was honoured.

use crate::{MedicalError, Volume};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// What the cache did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
    /// Volumes larger than the whole limit (loaded, used, not kept).
    pub uncacheable: u64,
    /// Largest total size of cached volumes seen, in bytes.
    pub peak_bytes: usize,
    pub bytes: usize,
}

struct Inner {
    map: HashMap<usize, (Arc<Volume<f32>>, u64)>,
    clock: u64,
    stats: CacheStats,
}

/// Thread-safe LRU cache keyed by sample index.
pub struct VolumeCache {
    limit_bytes: usize,
    inner: Mutex<Inner>,
}

fn size_of(v: &Volume<f32>) -> usize {
    v.data.len() * std::mem::size_of::<f32>()
}

impl VolumeCache {
    pub fn new(limit_mb: usize) -> Self {
        Self::with_limit_bytes(limit_mb.saturating_mul(1 << 20))
    }

    pub fn with_limit_bytes(limit_bytes: usize) -> Self {
        Self {
            limit_bytes,
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
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached volume `key`, or `load()`'s result (cached if it fits). The loader runs
    /// without holding the lock.
    pub fn get_or_load(
        &self,
        key: usize,
        load: impl FnOnce() -> Result<Volume<f32>, MedicalError>,
    ) -> Result<Arc<Volume<f32>>, MedicalError> {
        {
            let mut g = self.lock();
            g.clock += 1;
            let now = g.clock;
            if let Some(entry) = g.map.get_mut(&key) {
                entry.1 = now;
                let v = entry.0.clone();
                g.stats.hits += 1;
                return Ok(v);
            }
            g.stats.misses += 1;
        }
        let v = Arc::new(load()?);
        let size = size_of(&v);
        let mut g = self.lock();
        if size > self.limit_bytes {
            g.stats.uncacheable += 1;
            return Ok(v);
        }
        if g.map.contains_key(&key) {
            return Ok(v);
        }
        while g.stats.bytes + size > self.limit_bytes {
            let Some((&old, _)) = g.map.iter().min_by_key(|(_, (_, t))| *t) else {
                break;
            };
            if let Some((ov, _)) = g.map.remove(&old) {
                g.stats.bytes -= size_of(&ov);
                g.stats.evictions += 1;
            }
        }
        g.clock += 1;
        let now = g.clock;
        g.map.insert(key, (v.clone(), now));
        g.stats.bytes += size;
        g.stats.peak_bytes = g.stats.peak_bytes.max(g.stats.bytes);
        Ok(v)
    }
}
