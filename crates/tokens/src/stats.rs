//! Dataset normalisation statistics, computed once and stored in the model card so that
//! pretraining and use normalise identically.

use serde::{Deserialize, Serialize};

/// A global mean and standard deviation (computed with Welford/Chan merging in f64).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NormStats {
    pub mean: f64,
    pub std: f64,
}

impl Default for NormStats {
    fn default() -> Self {
        Self {
            mean: 0.0,
            std: 1.0,
        }
    }
}

/// Streaming accumulator of count, mean and M2 (numerically stable).
#[derive(Debug, Clone, Default)]
pub struct RunningStats {
    pub count: u64,
    mean: f64,
    m2: f64,
}

impl RunningStats {
    /// Adds a block of values (block mean/variance merged with Chan's formula).
    pub fn push_slice(&mut self, xs: &[f32]) {
        if xs.is_empty() {
            return;
        }
        let n = xs.len() as f64;
        let mean = xs.iter().map(|&x| x as f64).sum::<f64>() / n;
        let m2 = xs.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>();
        let total = self.count as f64 + n;
        let delta = mean - self.mean;
        self.mean += delta * n / total;
        self.m2 += m2 + delta * delta * self.count as f64 * n / total;
        self.count += xs.len() as u64;
    }

    pub fn finish(&self) -> NormStats {
        let var = if self.count > 1 {
            self.m2 / self.count as f64
        } else {
            0.0
        };
        NormStats {
            mean: self.mean,
            std: var.sqrt().max(1e-8),
        }
    }
}

impl NormStats {
    pub fn apply(&self, xs: &mut [f32]) {
        let (m, s) = (self.mean as f32, self.std as f32);
        xs.iter_mut().for_each(|x| *x = (*x - m) / s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_merge_to_the_global_moments() {
        let xs: Vec<f32> = (0..1000)
            .map(|i| (i as f32 * 0.37).sin() * 3.0 + 1.0)
            .collect();
        let mut r = RunningStats::default();
        for c in xs.chunks(77) {
            r.push_slice(c);
        }
        let s = r.finish();
        let mean = xs.iter().map(|&x| x as f64).sum::<f64>() / 1000.0;
        let var = xs.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / 1000.0;
        assert!((s.mean - mean).abs() < 1e-9);
        assert!((s.std - var.sqrt()).abs() < 1e-9);
    }
}
