//! Training-view augmentation for spectrogram tokens, used by the recipes whose views ask
//! for it (DINO, MoCo): a random gain, SpecAugment's time and frequency masks (Park et
//! al. 2019, arXiv:1904.08779) and optional Gaussian noise, all on normalised log-mel
//! tokens and drawn from the step's generator. Masked cells are set to 0, the dataset
//! mean after normalisation.

use crate::tokenizer::SpectrogramTokenizer;
use crate::AudioError;
use serde::{Deserialize, Serialize};
use tessera_tokens::{Rng, SampleTokens};

/// The `[audio.augment]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AugmentConfig {
    /// A gain drawn uniformly in ±`gain_db` (added to the log energies).
    #[serde(default = "default_gain")]
    pub gain_db: f32,
    /// Time masks per view, each up to `time_mask_frames` frames wide.
    #[serde(default = "two")]
    pub time_masks: usize,
    #[serde(default = "default_time_width")]
    pub time_mask_frames: usize,
    /// Frequency masks per view, each up to `freq_mask_bins` bins wide.
    #[serde(default = "two")]
    pub freq_masks: usize,
    #[serde(default = "default_freq_width")]
    pub freq_mask_bins: usize,
    /// Standard deviation of added Gaussian noise, in normalised units.
    #[serde(default)]
    pub noise_std: f32,
}

fn default_gain() -> f32 {
    6.0
}
fn two() -> usize {
    2
}
fn default_time_width() -> usize {
    10
}
fn default_freq_width() -> usize {
    16
}

impl Default for AugmentConfig {
    fn default() -> Self {
        Self {
            gain_db: default_gain(),
            time_masks: 2,
            time_mask_frames: default_time_width(),
            freq_masks: 2,
            freq_mask_bins: default_freq_width(),
            noise_std: 0.0,
        }
    }
}

impl AugmentConfig {
    pub fn validate(&self) -> Result<(), AudioError> {
        let ok = |x: f32| x.is_finite() && x >= 0.0;
        if !ok(self.gain_db) || !ok(self.noise_std) {
            return Err(AudioError::Config(format!(
                "augment: gain_db ({}) and noise_std ({}) must be finite and non-negative",
                self.gain_db, self.noise_std
            )));
        }
        Ok(())
    }
}

/// `[lo, hi)` ranges of `count` masks of up to `width` cells each inside `0..n`.
fn masks(count: usize, width: usize, n: usize, rng: &mut Rng) -> Vec<(usize, usize)> {
    (0..count)
        .filter_map(|_| {
            let w = rng.below(width.min(n) + 1);
            (w > 0).then(|| {
                let lo = rng.below(n - w + 1);
                (lo, lo + w)
            })
        })
        .collect()
}

/// Augments normalised log-mel tokens of a `bins`-bin spectrogram with hop `hop_s`; `std`
/// is the dataset standard deviation of the log energies (to express the gain in
/// normalised units).
pub fn augment_tokens(
    mut t: SampleTokens,
    tk: &SpectrogramTokenizer,
    bins: usize,
    hop_s: f64,
    std: f32,
    cfg: &AugmentConfig,
    rng: &mut Rng,
) -> SampleTokens {
    let [pf, pt] = tk.cfg.patch;
    let gain_db = (2.0 * rng.uniform() as f32 - 1.0) * cfg.gain_db;
    // dB of power → natural-log energy → normalised units.
    let gain = gain_db / 10.0 * std::f32::consts::LN_10 / std.max(1e-6);
    // Each token's first bin and first frame, from its (Hz, s) coordinates.
    let origins: Vec<(usize, usize)> = (0..t.n)
        .map(|i| {
            let (hz, s) = (t.coords[2 * i], t.coords[2 * i + 1]);
            (tk.first_bin(hz), tk.first_frame(s, hop_s))
        })
        .collect();
    let frames = origins.iter().map(|o| o.1 + pt).max().unwrap_or(0);
    let fmasks = masks(cfg.freq_masks, cfg.freq_mask_bins, bins, rng);
    let tmasks = masks(cfg.time_masks, cfg.time_mask_frames, frames, rng);
    let hit = |ms: &[(usize, usize)], x: usize| ms.iter().any(|&(lo, hi)| (lo..hi).contains(&x));
    for (i, &(b0, f0)) in origins.iter().enumerate() {
        let row = &mut t.values[i * pf * pt..(i + 1) * pf * pt];
        for bi in 0..pf {
            let band = hit(&fmasks, b0 + bi);
            for fi in 0..pt {
                let v = &mut row[bi * pt + fi];
                if band || hit(&tmasks, f0 + fi) {
                    *v = 0.0;
                } else {
                    *v += gain;
                    if cfg.noise_std > 0.0 {
                        *v += cfg.noise_std * rng.normal() as f32;
                    }
                }
            }
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::{FeatureConfig, MelConfig, Spectrogram};
    use crate::tokenizer::PatchConfig;

    #[test]
    fn gain_shifts_and_masks_zero_whole_bands_and_spans() {
        let (bins, frames) = (32, 40);
        let feats = FeatureConfig::LogMel(MelConfig {
            n_mels: bins,
            ..Default::default()
        });
        let tk = SpectrogramTokenizer::new(
            &PatchConfig {
                patch: [8, 4],
                stride: [8, 4],
            },
            &feats,
        )
        .unwrap();
        let data: Vec<f32> = (0..bins * frames).map(|i| 1.0 + (i % 7) as f32).collect();
        let s = Spectrogram {
            data: data.clone(),
            bins,
            frames,
            hop_s: 0.01,
        };
        let t = tk.tokenize(&s).unwrap();
        let cfg = AugmentConfig {
            gain_db: 3.0,
            time_masks: 1,
            time_mask_frames: 6,
            freq_masks: 1,
            freq_mask_bins: 5,
            noise_std: 0.0,
        };
        let a = augment_tokens(t.clone(), &tk, bins, 0.01, 2.0, &cfg, &mut Rng::new(3));
        assert_eq!(
            a,
            augment_tokens(t.clone(), &tk, bins, 0.01, 2.0, &cfg, &mut Rng::new(3))
        );
        assert_eq!(a.coords, t.coords);
        let back = tk.untokenize(&a, bins, frames).unwrap();
        // Every cell is either zeroed or shifted by one common gain within ±3 dB.
        let (mut zero_rows, mut zero_cols) = (vec![true; bins], vec![true; frames]);
        let mut gain = None;
        for b in 0..bins {
            for f in 0..frames {
                let (x, y) = (data[b * frames + f], back[b * frames + f]);
                if y == 0.0 {
                    continue;
                }
                zero_rows[b] = false;
                zero_cols[f] = false;
                let g = y - x;
                assert!((gain.get_or_insert(g) as &f32 - g).abs() < 1e-5);
            }
        }
        let g = gain.unwrap();
        assert!(
            g.abs() <= 3.0 / 10.0 * std::f32::consts::LN_10 / 2.0 + 1e-6,
            "{g}"
        );
        // The zeros form at most one band of ≤ 5 bins and one span of ≤ 6 frames.
        let count = |z: &[bool]| z.iter().filter(|&&x| x).count();
        assert!(count(&zero_rows) <= 5 && count(&zero_cols) <= 6);
        let zeros = back.iter().filter(|&&y| y == 0.0).count();
        assert_eq!(
            zeros,
            count(&zero_rows) * frames + count(&zero_cols) * bins
                - count(&zero_rows) * count(&zero_cols)
        );
        assert!(AugmentConfig {
            gain_db: -1.0,
            ..cfg
        }
        .validate()
        .is_err());
    }
}
