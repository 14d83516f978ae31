//! Spectrogram patch tokens: a `[bins, frames]` spectrogram becomes patches of
//! `patch = [bins, frames]` taken every `stride`, ordered frequency-major then time, each
//! with coordinates (centre frequency in Hz, centre time in s). Square 16×16 patches are the
//! Audio-MAE/AST convention; SSAST found frame-shaped patches (e.g. 128×2) better for speech.

use crate::features::{hz_to_mel, mel_to_hz, FeatureConfig, MelScale, Spectrogram};
use crate::music::{chroma_frequencies, cqt_frequencies, ChromaSource};
use crate::AudioError;
use serde::{Deserialize, Serialize};
use tessera_tokens::{CoordAxis, SampleTokens, TokenLayout, TokenSpec};

/// Patch shape and step, as `[frequency bins, frames]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatchConfig {
    pub patch: [usize; 2],
    pub stride: [usize; 2],
}

impl Default for PatchConfig {
    fn default() -> Self {
        Self {
            patch: [16, 16],
            stride: [16, 16],
        }
    }
}

/// Centre frequency (Hz) of each output bin of a feature configuration: mel filter centres,
/// CQT bin frequencies ([`cqt_frequencies`]), or for chroma the pitch class in octave 4
/// ([`chroma_frequencies`]: C4 = 261.63 Hz ... B4, tuning applied).
pub fn bin_centres_hz(cfg: &FeatureConfig) -> Vec<f32> {
    let (n, lo, hi, scale) = match cfg {
        FeatureConfig::Cqt(c) => return cqt_frequencies(c).iter().map(|&f| f as f32).collect(),
        FeatureConfig::Chroma(c) => {
            return chroma_frequencies(c).iter().map(|&f| f as f32).collect()
        }
        FeatureConfig::LogMel(c) => (
            c.n_mels,
            c.f_min as f64,
            c.f_max
                .map(|f| f as f64)
                .unwrap_or((c.sample_rate_hz / 2) as f64),
            c.mel_scale.clone(),
        ),
        FeatureConfig::Fbank(c) => {
            let nyq = c.sample_rate_hz as f64 / 2.0;
            let hi = if c.high_freq <= 0.0 {
                nyq + c.high_freq as f64
            } else {
                c.high_freq as f64
            };
            (c.n_mels, c.low_freq as f64, hi, MelScale::Htk)
        }
    };
    let (mlo, mhi) = (hz_to_mel(lo, &scale), hz_to_mel(hi, &scale));
    (1..=n)
        .map(|i| mel_to_hz(mlo + (mhi - mlo) * i as f64 / (n + 1) as f64, &scale) as f32)
        .collect()
}

/// Time (s) of frame 0's centre.
pub fn first_frame_s(cfg: &FeatureConfig) -> f64 {
    match cfg {
        FeatureConfig::LogMel(c) if c.center => 0.0,
        FeatureConfig::LogMel(c) => {
            c.win_length.max(c.n_fft) as f64 / 2.0 / c.sample_rate_hz as f64
        }
        FeatureConfig::Fbank(c) if c.snip_edges => c.frame_length_ms as f64 / 2000.0,
        FeatureConfig::Fbank(_) => 0.0,
        FeatureConfig::Cqt(_) => 0.0,
        FeatureConfig::Chroma(c) if c.source == ChromaSource::Stft && !c.center => {
            c.n_fft as f64 / 2.0 / c.sample_rate_hz as f64
        }
        FeatureConfig::Chroma(_) => 0.0,
    }
}

/// What the token values are, for the token spec.
fn value_unit(cfg: &FeatureConfig) -> &'static str {
    match cfg {
        FeatureConfig::LogMel(_) | FeatureConfig::Fbank(_) => "normalised log mel energy",
        FeatureConfig::Cqt(_) => "normalised log constant-Q energy",
        FeatureConfig::Chroma(_) => "normalised chroma energy (frame-max scaled)",
    }
}

/// Turns spectrograms into tokens and back.
#[derive(Debug, Clone)]
pub struct SpectrogramTokenizer {
    pub cfg: PatchConfig,
    bin_hz: Vec<f32>,
    t0_s: f64,
    value_unit: &'static str,
}

impl SpectrogramTokenizer {
    pub fn new(cfg: &PatchConfig, features: &FeatureConfig) -> Result<Self, AudioError> {
        let [pf, pt] = cfg.patch;
        let [sf, st] = cfg.stride;
        if pf == 0 || pt == 0 || sf == 0 || st == 0 {
            return Err(AudioError::Config(format!(
                "tokenizer: patch {:?} and stride {:?} must be positive",
                cfg.patch, cfg.stride
            )));
        }
        if pf > features.n_bins() {
            return Err(AudioError::Config(format!(
                "tokenizer: patch height {pf} exceeds the {} frequency bins",
                features.n_bins()
            )));
        }
        Ok(Self {
            cfg: cfg.clone(),
            bin_hz: bin_centres_hz(features),
            t0_s: first_frame_s(features),
            value_unit: value_unit(features),
        })
    }

    /// The first frequency bin of the token row whose centre is `hz` (the nearest row).
    pub fn first_bin(&self, hz: f32) -> usize {
        let [pf, sf] = [self.cfg.patch[0], self.cfg.stride[0]];
        let rows = self.grid(self.bin_hz.len(), self.cfg.patch[1]).0;
        let centre = |r: usize| self.bin_hz[r * sf..r * sf + pf].iter().sum::<f32>() / pf as f32;
        (0..rows)
            .min_by(|&a, &b| (centre(a) - hz).abs().total_cmp(&(centre(b) - hz).abs()))
            .unwrap_or(0)
            * sf
    }

    /// The first frame of the token column whose centre time is `t` seconds.
    pub fn first_frame(&self, t: f32, hop_s: f64) -> usize {
        let pt = self.cfg.patch[1] as f64;
        ((t as f64 - self.t0_s) / hop_s - (pt - 1.0) / 2.0)
            .round()
            .max(0.0) as usize
    }

    /// Values per token.
    pub fn p(&self) -> usize {
        self.cfg.patch[0] * self.cfg.patch[1]
    }

    /// Token grid `(frequency rows, time columns)` for a spectrogram size.
    pub fn grid(&self, bins: usize, frames: usize) -> (usize, usize) {
        let g = |n: usize, p: usize, s: usize| if n < p { 0 } else { (n - p) / s + 1 };
        (
            g(bins, self.cfg.patch[0], self.cfg.stride[0]),
            g(frames, self.cfg.patch[1], self.cfg.stride[1]),
        )
    }

    /// What the tokens mean, for the model card.
    pub fn spec(&self, sample_rate_hz: u32, duration_s: f32) -> TokenSpec {
        TokenSpec {
            p: self.p(),
            k: 2,
            value_unit: self.value_unit.into(),
            axes: vec![
                CoordAxis {
                    name: "frequency".into(),
                    unit: "Hz".into(),
                    scale: sample_rate_hz as f32 / 2.0,
                },
                CoordAxis {
                    name: "time".into(),
                    unit: "s".into(),
                    scale: duration_s.max(0.1),
                },
            ],
            layout: TokenLayout::Patch2d {
                channels: 1,
                patch: self.cfg.patch,
                stride: self.cfg.stride,
            },
        }
    }

    /// # Shapes
    /// `[bins, frames]` → `n = rows * cols` tokens of `p = patch[0] * patch[1]` values
    /// (row-major within the patch) and `k = 2` coords (Hz, s).
    pub fn tokenize(&self, s: &Spectrogram) -> Result<SampleTokens, AudioError> {
        if s.bins != self.bin_hz.len() {
            return Err(AudioError::Config(format!(
                "tokenizer: spectrogram has {} bins, features declare {}",
                s.bins,
                self.bin_hz.len()
            )));
        }
        let (rows, cols) = self.grid(s.bins, s.frames);
        if rows == 0 || cols == 0 {
            return Err(AudioError::Config(format!(
                "tokenizer: a {}x{} spectrogram is smaller than one {:?} patch",
                s.bins, s.frames, self.cfg.patch
            )));
        }
        let [pf, pt] = self.cfg.patch;
        let [sf, st] = self.cfg.stride;
        let mut values = Vec::with_capacity(rows * cols * pf * pt);
        let mut coords = Vec::with_capacity(rows * cols * 2);
        for r in 0..rows {
            let f0 = r * sf;
            let hz = self.bin_hz[f0..f0 + pf].iter().sum::<f32>() / pf as f32;
            for c in 0..cols {
                let t0 = c * st;
                for b in f0..f0 + pf {
                    values.extend_from_slice(&s.data[b * s.frames + t0..b * s.frames + t0 + pt]);
                }
                let t = self.t0_s + (t0 as f64 + (pt as f64 - 1.0) / 2.0) * s.hop_s;
                coords.push(hz);
                coords.push(t as f32);
            }
        }
        Ok(SampleTokens::new(values, coords, rows * cols, pf * pt, 2)?)
    }

    /// Inverse of [`tokenize`](Self::tokenize) for a `[bins, frames]` grid: overlapping
    /// patches are averaged; cells no patch covers are 0.
    pub fn untokenize(
        &self,
        t: &SampleTokens,
        bins: usize,
        frames: usize,
    ) -> Result<Vec<f32>, AudioError> {
        let (rows, cols) = self.grid(bins, frames);
        if t.n != rows * cols || t.p != self.p() {
            return Err(AudioError::Config(format!(
                "untokenize: {} tokens of {} values do not fit a {bins}x{frames} grid",
                t.n, t.p
            )));
        }
        let [pf, pt] = self.cfg.patch;
        let [sf, st] = self.cfg.stride;
        let mut out = vec![0f32; bins * frames];
        let mut hits = vec![0u32; bins * frames];
        for r in 0..rows {
            for c in 0..cols {
                let tok = &t.values[(r * cols + c) * t.p..(r * cols + c + 1) * t.p];
                for i in 0..pf {
                    for j in 0..pt {
                        let idx = (r * sf + i) * frames + c * st + j;
                        out[idx] += tok[i * pt + j];
                        hits[idx] += 1;
                    }
                }
            }
        }
        out.iter_mut()
            .zip(&hits)
            .filter(|(_, &h)| h > 1)
            .for_each(|(o, &h)| *o /= h as f32);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::MelConfig;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn untokenize_inverts_tokenize(bins in 2usize..40, frames in 2usize..60, pf in 1usize..8, pt in 1usize..8, sf in 1usize..8, st in 1usize..8) {
            let feats = FeatureConfig::LogMel(MelConfig { n_mels: bins, ..Default::default() });
            prop_assume!(pf <= bins && pt <= frames);
            let tok = SpectrogramTokenizer::new(&PatchConfig { patch: [pf, pt], stride: [sf, st] }, &feats).unwrap();
            let data: Vec<f32> = (0..bins * frames).map(|i| (i as f32 * 0.37).sin()).collect();
            let s = Spectrogram { data: data.clone(), bins, frames, hop_s: 0.01 };
            let t = tok.tokenize(&s).unwrap();
            let (rows, cols) = tok.grid(bins, frames);
            prop_assert_eq!(t.n, rows * cols);
            // Each token's coordinates lead back to its first bin and frame.
            for i in 0..t.n {
                let (b0, f0) = (tok.first_bin(t.coords[2 * i]), tok.first_frame(t.coords[2 * i + 1], 0.01));
                prop_assert_eq!(t.values[i * pf * pt], data[b0 * frames + f0]);
            }
            let back = tok.untokenize(&t, bins, frames).unwrap();
            // Every covered cell comes back exactly (overlaps average identical copies).
            for r in 0..bins { for c in 0..frames {
                let covered = (0..rows).any(|i| r >= i * sf && r < i * sf + pf) && (0..cols).any(|j| c >= j * st && c < j * st + pt);
                if covered { prop_assert!((back[r * frames + c] - data[r * frames + c]).abs() < 1e-6); }
            }}
        }
    }

    #[test]
    fn coordinates_are_physical() {
        let feats = FeatureConfig::LogMel(MelConfig::default());
        let tok = SpectrogramTokenizer::new(
            &PatchConfig {
                patch: [128, 2],
                stride: [128, 2],
            },
            &feats,
        )
        .unwrap();
        let s = Spectrogram {
            data: vec![0.0; 128 * 101],
            bins: 128,
            frames: 101,
            hop_s: 0.01,
        };
        let t = tok.tokenize(&s).unwrap();
        assert_eq!((t.n, t.p), (50, 256));
        // Second token: frames 2..4, centred at 2.5 hops = 25 ms.
        assert!((t.coords[3] - 0.025).abs() < 1e-6);
        let c = bin_centres_hz(&feats);
        assert!(c[0] > 0.0 && c[127] < 8000.0 && c.windows(2).all(|w| w[1] > w[0]));
        assert!(SpectrogramTokenizer::new(
            &PatchConfig {
                patch: [256, 2],
                stride: [1, 1]
            },
            &feats
        )
        .is_err());
    }
}
