//! Random token masking that respects padding, done on plain arrays before the network
//! sees anything: the encoder receives only the visible tokens (as in MAE), and the
//! masked tokens' values and coordinates become the targets and the decoder's queries.

use crate::{Rng, SampleTokens, TokenError, Tokens};
use serde::{Deserialize, Serialize};

/// Masking hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaskConfig {
    /// Fraction of each sample's real tokens that is masked.
    pub ratio: f32,
    /// If positive, each sample draws its own ratio uniformly in `ratio ± jitter`.
    #[serde(default)]
    pub jitter: f32,
}

impl Default for MaskConfig {
    fn default() -> Self {
        Self {
            ratio: 0.75,
            jitter: 0.0,
        }
    }
}

/// A batch split into visible and masked tokens, each padded to its longest sample.
#[derive(Debug, Clone)]
pub struct MaskedBatch {
    /// Tokens the encoder sees: `[b, n_vis, p]`.
    pub visible: Tokens,
    /// Tokens to reconstruct: `[b, n_mask, p]`; padding marks filler.
    pub masked: Tokens,
    /// For each sample, the original indices of visible then masked tokens.
    pub visible_idx: Vec<Vec<usize>>,
    pub masked_idx: Vec<Vec<usize>>,
}

/// Masks `cfg.ratio` of each sample's real tokens at random. Every sample keeps at least
/// one visible and (when it has two or more tokens) one masked token.
pub fn random_mask(
    batch: &Tokens,
    cfg: &MaskConfig,
    rng: &mut Rng,
) -> Result<MaskedBatch, TokenError> {
    let mut vis = Vec::with_capacity(batch.b);
    let mut msk = Vec::with_capacity(batch.b);
    let mut visible_idx = Vec::with_capacity(batch.b);
    let mut masked_idx = Vec::with_capacity(batch.b);
    for i in 0..batch.b {
        let real: Vec<usize> = (0..batch.n)
            .filter(|&j| batch.padding[i * batch.n + j] == 0)
            .collect();
        let n_real = real.len();
        let ratio = if cfg.jitter > 0.0 {
            (cfg.ratio + cfg.jitter * (2.0 * rng.uniform() as f32 - 1.0)).clamp(0.0, 0.99)
        } else {
            cfg.ratio.clamp(0.0, 0.99)
        };
        let mut n_mask = (n_real as f32 * ratio).round() as usize;
        if n_real >= 2 {
            n_mask = n_mask.clamp(1, n_real - 1);
        } else {
            n_mask = 0;
        }
        let mut order = real.clone();
        rng.shuffle(&mut order);
        let (m, v) = order.split_at(n_mask);
        let mut v = v.to_vec();
        let mut m = m.to_vec();
        v.sort_unstable();
        m.sort_unstable();
        let sample = sample_of(batch, i);
        vis.push(sample.select(&v));
        msk.push(sample.select(&m));
        visible_idx.push(v);
        masked_idx.push(m);
    }
    Ok(MaskedBatch {
        visible: Tokens::from_samples(&vis)?,
        masked: Tokens::from_samples(&msk)?,
        visible_idx,
        masked_idx,
    })
}

/// The tokens of sample `i` of a batch, padding included.
pub fn sample_of(batch: &Tokens, i: usize) -> SampleTokens {
    let (n, p, k) = (batch.n, batch.p, batch.k);
    SampleTokens {
        values: batch.values[i * n * p..(i + 1) * n * p].to_vec(),
        coords: batch.coords[i * n * k..(i + 1) * n * k].to_vec(),
        n,
        p,
        k,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(lens: &[usize]) -> Tokens {
        let samples: Vec<SampleTokens> = lens
            .iter()
            .map(|&n| {
                SampleTokens::new(
                    (0..n * 2).map(|x| x as f32).collect(),
                    (0..n).map(|x| x as f32).collect(),
                    n,
                    2,
                    1,
                )
                .unwrap()
            })
            .collect();
        Tokens::from_samples(&samples).unwrap()
    }

    #[test]
    fn masks_only_real_tokens_and_partitions_them() {
        let b = batch(&[16, 8]);
        let m = random_mask(
            &b,
            &MaskConfig {
                ratio: 0.75,
                jitter: 0.0,
            },
            &mut Rng::new(3),
        )
        .unwrap();
        assert_eq!(m.masked_idx[0].len(), 12);
        assert_eq!(m.visible_idx[1].len(), 2);
        for i in 0..2 {
            let mut all: Vec<usize> = m.visible_idx[i]
                .iter()
                .chain(&m.masked_idx[i])
                .copied()
                .collect();
            all.sort();
            assert_eq!(all, (0..b.len_of(i)).collect::<Vec<_>>());
        }
        // Sample 1 has fewer tokens: its masked set is padded.
        assert_eq!(m.masked.len_of(1), 6);
        assert_eq!(m.masked.n, 12);
        // Values follow their tokens.
        let j = m.masked_idx[0][0];
        assert_eq!(&m.masked.values[0..2], &b.values[j * 2..j * 2 + 2]);
    }

    #[test]
    fn same_seed_same_mask() {
        let b = batch(&[20, 20, 5]);
        let cfg = MaskConfig {
            ratio: 0.6,
            jitter: 0.1,
        };
        let a = random_mask(&b, &cfg, &mut Rng::new(9)).unwrap();
        let c = random_mask(&b, &cfg, &mut Rng::new(9)).unwrap();
        assert_eq!(a.masked_idx, c.masked_idx);
    }
}
