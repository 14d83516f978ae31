//! Masked autoencoding on any tokens (He et al. 2022, "Masked Autoencoders Are Scalable
//! Vision Learners", arXiv:2111.06377; for spectrograms Audio-MAE, arXiv:2207.06405, and
//! for volumes 3-D MAE).
//!
//! The encoder sees only the visible tokens. A lightweight decoder (own width and depth)
//! receives the projected visible tokens plus a shared mask token at every masked
//! position, each with the Fourier encoding of its coordinates, and predicts the masked
//! tokens' values. The loss is the mean squared error over masked tokens only, optionally
//! against per-token normalised targets (`norm_pix_loss`). Tokens that are sets of members
//! (point groups) take Point-MAE's loss instead (Pang et al. 2022, arXiv:2203.06604;
//! `set_loss`): Chamfer-L2 between the predicted and true member positions of each masked
//! token, plus the mean squared error of the members' other values (Gaussian-MAE's
//! attributes, arXiv:2408.10906) in the token's member order.

use crate::losses::{chamfer_l2, masked_mse};
use crate::predictor::{keep_of, Predictor, PredictorShape};
use crate::{Batch, Recipe, Result, StepContext, StepOutput, ENCODER_PREFIX};
use candle_core::Tensor;
use serde::{Deserialize, Serialize};
use tessera_core::{Encoder, EncoderConfig, ParamStore};
use tessera_tokens::{mask_batch, MaskStrategy, MaskedBatch, Rng, Tokens};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaeConfig {
    #[serde(default)]
    pub mask: MaskStrategy,
    pub decoder_dim: usize,
    pub decoder_depth: usize,
    pub decoder_heads: usize,
    /// Normalise each target token to zero mean, unit variance.
    #[serde(default = "yes")]
    pub norm_pix_loss: bool,
    /// Point-MAE's loss for tokens made of `members` points.
    #[serde(default)]
    pub set_loss: Option<SetLoss>,
}

/// Tokens of `members` members of P / members values each; the first `position_dims`
/// values of a member are its position.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetLoss {
    pub members: usize,
    #[serde(default = "three")]
    pub position_dims: usize,
    /// Weight of the other values' squared error against the Chamfer term.
    #[serde(default = "one")]
    pub attribute_weight: f64,
}

fn three() -> usize {
    3
}
fn one() -> f64 {
    1.0
}

fn yes() -> bool {
    true
}

impl Default for MaeConfig {
    fn default() -> Self {
        Self {
            mask: MaskStrategy::default(),
            decoder_dim: 128,
            decoder_depth: 2,
            decoder_heads: 4,
            norm_pix_loss: true,
            set_loss: None,
        }
    }
}

pub struct Mae {
    cfg: MaeConfig,
    encoder: Encoder,
    decoder: Predictor,
}

impl Mae {
    pub fn new(cfg: &MaeConfig, enc: &EncoderConfig, store: &mut ParamStore) -> Result<Self> {
        if let Some(s) = &cfg.set_loss {
            let bad = |m: String| {
                Err(tessera_core::CoreError::Config(format!(
                    "mae set_loss: {m}"
                )))
            };
            if s.members == 0 || !enc.patch_dim.is_multiple_of(s.members) {
                return bad(format!(
                    "P = {} is not a whole number of {} members",
                    enc.patch_dim, s.members
                ));
            }
            if s.position_dims == 0 || s.position_dims > enc.patch_dim / s.members {
                return bad(format!(
                    "{} position values in members of {}",
                    s.position_dims,
                    enc.patch_dim / s.members
                ));
            }
            if cfg.norm_pix_loss {
                return bad(
                    "set with norm_pix_loss = true (a set loss compares raw positions)".into(),
                );
            }
        }
        let encoder = Encoder::new(enc, store, ENCODER_PREFIX)?;
        let shape = PredictorShape {
            dim: cfg.decoder_dim,
            depth: cfg.decoder_depth,
            heads: cfg.decoder_heads,
            out: enc.patch_dim,
        };
        Ok(Self {
            decoder: Predictor::new(store, "mae", enc, &shape, "mae")?,
            cfg: cfg.clone(),
            encoder,
        })
    }

    /// Per-token normalised targets (`[B, M, P]`), as in MAE's `norm_pix_loss`.
    fn targets(&self, masked: &Tokens) -> Vec<f32> {
        let mut v = masked.values.clone();
        if self.cfg.norm_pix_loss {
            for row in v.chunks_mut(masked.p) {
                let n = row.len() as f32;
                let mean = row.iter().sum::<f32>() / n;
                let var =
                    row.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / (n - 1.0).max(1.0);
                let inv = 1.0 / (var + 1e-6).sqrt();
                row.iter_mut().for_each(|x| *x = (*x - mean) * inv);
            }
        }
        v
    }
}

impl Recipe for Mae {
    fn name(&self) -> &'static str {
        "mae"
    }

    fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    fn loss(&self, batch: &Batch, _ctx: &StepContext, rng: &mut Rng) -> Result<StepOutput> {
        let m = mask_batch(batch.first("mae")?, &self.cfg.mask, rng)?;
        let pred = self.predict(&m)?;
        let (loss, n_real) = self.masked_loss(&pred, &m.masked)?;
        Ok(StepOutput::new(
            loss,
            vec![("masked_tokens".into(), n_real as f64)],
        ))
    }
}

impl Mae {
    /// The decoder's predictions for the masked tokens, `[B, M, P]` (`M` = `m.masked.n`,
    /// padded rows included). The encoder sees only `m.visible`.
    fn predict(&self, m: &MaskedBatch) -> Result<Tensor> {
        let pred = self.decoder.predict_masked(&self.encoder, m)?;
        debug_assert_eq!(pred.dims(), &[m.visible.b, m.masked.n, m.masked.p]);
        Ok(pred)
    }

    /// Mean over the real (non-padding) masked tokens of the per-token mean squared error
    /// between `pred` (`[B, M, P]`) and the (normalised) values of `masked`; returns the
    /// loss and the number of tokens it averages over (at least 1).
    fn masked_loss(&self, pred: &Tensor, masked: &Tokens) -> Result<(Tensor, f32)> {
        let dev = pred.device();
        let target = Tensor::from_vec(self.targets(masked), (masked.b, masked.n, masked.p), dev)?;
        let Some(s) = &self.cfg.set_loss else {
            return masked_mse(pred, &target, &keep_of(masked, dev)?);
        };
        // The real masked tokens as sets [R, members, width].
        let real: Vec<u32> = (0..masked.b * masked.n)
            .filter(|&i| masked.padding[i] == 0)
            .map(|i| i as u32)
            .collect();
        let r = real.len();
        if r == 0 {
            return Ok(((pred.sum_all()? * 0.0)?, 1.0));
        }
        let idx = Tensor::from_vec(real, r, dev)?;
        let (k, f) = (s.members, masked.p / s.members);
        let rows = |t: &Tensor| -> Result<Tensor> {
            Ok(t.reshape((masked.b * masked.n, k, f))?
                .index_select(&idx, 0)?)
        };
        let (pred, target) = (rows(pred)?, rows(&target)?);
        let d = s.position_dims;
        let mut loss = chamfer_l2(&pred.narrow(2, 0, d)?, &target.narrow(2, 0, d)?, None, None)?;
        if f > d {
            let attr = (pred.narrow(2, d, f - d)? - target.narrow(2, d, f - d)?)?
                .sqr()?
                .mean_all()?;
            loss = (loss + (attr * s.attribute_weight)?)?;
        }
        Ok((loss, r as f32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use tessera_tokens::SampleTokens;

    #[test]
    fn every_mask_strategy_from_a_card_trains() {
        let enc = EncoderConfig::preset("nano", 8, vec![4.0]).unwrap();
        let mut rng = Rng::new(3);
        let samples: Vec<SampleTokens> = (0..2)
            .map(|_| {
                let n = 24;
                let v = (0..n * 8).map(|_| rng.normal() as f32).collect();
                let c = (0..n).map(|j| (j % 6) as f32 * 0.5).collect();
                SampleTokens::new(v, c, n, 8, 1).unwrap()
            })
            .collect();
        let batch = Batch::single(Tokens::from_samples(&samples).unwrap());
        for mask in [
            "ratio = 0.5",
            "kind = \"block\"\nratio = 0.5\nn_blocks = 2",
            "kind = \"span\"\nratio = 0.5\naxis = 0\nspan = 1.0",
            "kind = \"group\"\nratio = 0.5\naxis = 0",
        ] {
            let text =
                format!("decoder_dim = 32\ndecoder_depth = 1\ndecoder_heads = 2\n[mask]\n{mask}\n");
            let cfg: MaeConfig = toml::from_str(&text).unwrap();
            let mut store = ParamStore::new(0, &Device::Cpu);
            let mae = Mae::new(&cfg, &enc, &mut store).unwrap();
            let out = mae
                .loss(&batch, &crate::tests::CTX, &mut Rng::new(2))
                .unwrap();
            let l = out.loss.to_scalar::<f32>().unwrap();
            assert!(l.is_finite() && l > 0.0, "{mask}: {l}");
            assert_eq!(out.metrics[0].1, 24.0, "{mask}: half of 2 x 24 tokens");
        }
    }

    #[test]
    fn set_loss_is_chamfer_on_positions_plus_attribute_error() {
        // tokens of 4 members × (x, y, z, a)
        let enc = EncoderConfig::preset("nano", 16, vec![1.0; 3]).unwrap();
        let text = "decoder_dim = 32\ndecoder_depth = 1\ndecoder_heads = 2\nnorm_pix_loss = false\n[set_loss]\nmembers = 4\n";
        let cfg: MaeConfig = toml::from_str(text).unwrap();
        let mut store = ParamStore::new(0, &Device::Cpu);
        let mae = Mae::new(&cfg, &enc, &mut store).unwrap();
        let mut rng = Rng::new(5);
        let samples: Vec<SampleTokens> = (0..2)
            .map(|i| {
                let n = 6 + 2 * i;
                let v = (0..n * 16).map(|_| rng.normal() as f32).collect();
                let c = (0..n * 3).map(|_| rng.uniform() as f32).collect();
                SampleTokens::new(v, c, n, 16, 3).unwrap()
            })
            .collect();
        let batch = Batch::single(Tokens::from_samples(&samples).unwrap());
        let out = mae
            .loss(&batch, &crate::tests::CTX, &mut Rng::new(2))
            .unwrap();
        assert!(out.loss.to_scalar::<f32>().unwrap() > 0.0);
        let grads = out.loss.backward().unwrap();
        assert!(grads
            .get(&store.param("mae.decoder_pred.weight").unwrap().var)
            .is_some());
        // predictions equal to the targets with members permuted: the Chamfer term is 0 and
        // only the attributes' slot-wise error remains
        let m = mask_batch(batch.first("mae").unwrap(), &cfg.mask, &mut Rng::new(2)).unwrap();
        let t = Tensor::from_vec(
            m.masked.values.clone(),
            (m.masked.b, m.masked.n, 16),
            &Device::Cpu,
        )
        .unwrap();
        let (l, _) = mae.masked_loss(&t, &m.masked).unwrap();
        assert!(l.to_scalar::<f32>().unwrap().abs() < 1e-6);
        let mut perm = m.masked.values.clone();
        for tok in perm.chunks_exact_mut(16) {
            let (a, b) = tok.split_at_mut(8);
            for j in 0..3 {
                std::mem::swap(&mut a[j], &mut b[j]); // member 0 ↔ member 2 positions only
            }
        }
        let t = Tensor::from_vec(perm, (m.masked.b, m.masked.n, 16), &Device::Cpu).unwrap();
        let (l, _) = mae.masked_loss(&t, &m.masked).unwrap();
        assert!(
            l.to_scalar::<f32>().unwrap().abs() < 1e-6,
            "positions as a set"
        );
        let bad =
            "decoder_dim = 32\ndecoder_depth = 1\ndecoder_heads = 2\n[set_loss]\nmembers = 4\n";
        let cfg: MaeConfig = toml::from_str(bad).unwrap();
        assert!(Mae::new(&cfg, &enc, &mut ParamStore::new(0, &Device::Cpu)).is_err());
    }

    #[test]
    fn loss_is_finite_and_has_gradients_for_encoder_and_decoder() {
        let enc = EncoderConfig::preset("nano", 8, vec![4.0]).unwrap();
        let mut store = ParamStore::new(0, &Device::Cpu);
        let mae = Mae::new(&MaeConfig::default(), &enc, &mut store).unwrap();
        let mut rng = Rng::new(1);
        let samples: Vec<SampleTokens> = (0..3)
            .map(|i| {
                let n = 10 + i;
                let v = (0..n * 8).map(|_| rng.normal() as f32).collect();
                let c = (0..n).map(|j| j as f32 * 0.1).collect();
                SampleTokens::new(v, c, n, 8, 1).unwrap()
            })
            .collect();
        let batch = Batch::single(Tokens::from_samples(&samples).unwrap());
        let out = mae
            .loss(&batch, &crate::tests::CTX, &mut Rng::new(2))
            .unwrap();
        let l = out.loss.to_scalar::<f32>().unwrap();
        assert!(l.is_finite() && l > 0.0);
        let grads = out.loss.backward().unwrap();
        for name in [
            "encoder.blocks.0.attn.qkv.weight",
            "encoder.patch_embed.proj.weight",
            "mae.mask_token",
            "mae.decoder_pred.weight",
        ] {
            let p = store.param(name).unwrap();
            let g = grads
                .get(&p.var)
                .unwrap_or_else(|| panic!("no grad for {name}"));
            let norm = g
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(norm > 0.0, "{name}");
        }
    }

    /// Samples of 12, 7 and 9 tokens (P = 8, K = 1): the batch is padded, and so is its
    /// masked set (9, 5 and 7 masked tokens at the default ratio 0.75).
    fn uneven_batch() -> Tokens {
        let mut rng = Rng::new(1);
        let samples: Vec<SampleTokens> = [12usize, 7, 9]
            .iter()
            .map(|&n| {
                let v = (0..n * 8).map(|_| rng.normal() as f32).collect();
                let c = (0..n).map(|j| j as f32 * 0.1).collect();
                SampleTokens::new(v, c, n, 8, 1).unwrap()
            })
            .collect();
        Tokens::from_samples(&samples).unwrap()
    }

    fn mae() -> Mae {
        let enc = EncoderConfig::preset("nano", 8, vec![4.0]).unwrap();
        let mut store = ParamStore::new(0, &Device::Cpu);
        Mae::new(&MaeConfig::default(), &enc, &mut store).unwrap()
    }

    /// The loss and its `masked_tokens` metric at the step whose rng is `Rng::new(2)`.
    fn loss_of(mae: &Mae, t: &Tokens) -> (f32, f64) {
        let batch = Batch::single(t.clone());
        let out = mae
            .loss(&batch, &crate::tests::CTX, &mut Rng::new(2))
            .unwrap();
        assert_eq!(out.metrics[0].0, "masked_tokens");
        (out.loss.to_scalar::<f32>().unwrap(), out.metrics[0].1)
    }

    /// Reference loss in f64 from the same split and predictions: the mean, over the real
    /// masked tokens only, of the squared error against each token's normalised values
    /// (`norm_pix_loss`, unbiased variance). Also returns the loss a wrong implementation
    /// counting the padded masked slots would give, and the split.
    fn reference(mae: &Mae, t: &Tokens) -> (f64, f64, MaskedBatch) {
        let m = mask_batch(t, &mae.cfg.mask, &mut Rng::new(2)).unwrap();
        let pred: Vec<f32> = mae
            .predict(&m)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let (n, p, nm) = (t.n, t.p, m.masked.n);
        let mse = |y: &[f32], target: &[f64]| {
            y.iter()
                .zip(target)
                .map(|(&a, b)| (f64::from(a) - b).powi(2))
                .sum::<f64>()
                / p as f64
        };
        let (mut real, mut padded) = (0.0f64, 0.0f64);
        for (i, idx) in m.masked_idx.iter().enumerate() {
            for slot in 0..nm {
                let y = &pred[(i * nm + slot) * p..(i * nm + slot + 1) * p];
                match idx.get(slot) {
                    Some(&j) => {
                        let x: Vec<f64> = t.values[(i * n + j) * p..(i * n + j + 1) * p]
                            .iter()
                            .map(|&v| f64::from(v))
                            .collect();
                        let mean = x.iter().sum::<f64>() / p as f64;
                        let var =
                            x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (p - 1) as f64;
                        let target: Vec<f64> =
                            x.iter().map(|v| (v - mean) / (var + 1e-6).sqrt()).collect();
                        real += mse(y, &target);
                    }
                    None => padded += mse(y, &vec![0.0; p]),
                }
            }
        }
        let n_masked: usize = m.masked_idx.iter().map(Vec::len).sum();
        (
            real / n_masked as f64,
            (real + padded) / (t.b * nm) as f64,
            m,
        )
    }

    #[test]
    fn only_masked_real_tokens_count_in_the_loss() {
        let mae = mae();
        let t = uneven_batch();
        assert!(t.padding.contains(&1), "the input batch must be padded");
        let (l0, counted) = loss_of(&mae, &t);
        let (want, with_padding, m) = reference(&mae, &t);
        assert!(
            m.masked.padding.contains(&1),
            "the masked set must be padded"
        );
        let n_masked: usize = m.masked_idx.iter().map(Vec::len).sum();
        assert_eq!(counted, n_masked as f64);
        assert!(
            (f64::from(l0) - want).abs() <= 1e-5 * want,
            "loss {l0} vs masked-only reference {want}"
        );
        // Counting the padded slots would give another value, so the check above can fail.
        assert!(
            (with_padding - want).abs() > 1e-3 * want,
            "{with_padding} vs {want}"
        );

        let (n, p) = (t.n, t.p);
        let token = |i: usize, j: usize| (i * n + j) * p..(i * n + j + 1) * p;

        // Padding tokens of the input: any values and coordinates give the same loss, bit
        // for bit.
        let mut junk = t.clone();
        for i in 0..t.b {
            for j in (0..n).filter(|&j| t.padding[i * n + j] == 1) {
                junk.values[token(i, j)].fill(1e3);
                junk.coords[i * n + j] = -77.0;
            }
        }
        assert_eq!(loss_of(&mae, &junk).0.to_bits(), l0.to_bits());

        // A masked real token's values are a target: changing one (not by an affine map,
        // which norm_pix_loss would undo) changes the loss.
        let j = m.masked_idx[0][0];
        let mut moved = t.clone();
        moved.values[token(0, j).start] += 3.0;
        let l1 = loss_of(&mae, &moved).0;
        assert!((l1 - l0).abs() > 1e-4 * l0, "{l1} vs {l0}");
        assert!((f64::from(l1) - reference(&mae, &moved).0).abs() <= 1e-5 * f64::from(l1));

        // A visible token's values are encoder input, never a target: the loss moves with
        // the predictions, and still equals the masked-only reference.
        let j = m.visible_idx[0][0];
        let mut seen = t.clone();
        seen.values[token(0, j).start] += 3.0;
        let l2 = loss_of(&mae, &seen).0;
        let (want2, _, m2) = reference(&mae, &seen);
        assert_eq!(m2.masked_idx, m.masked_idx);
        assert!(
            (f64::from(l2) - want2).abs() <= 1e-5 * want2,
            "{l2} vs {want2}"
        );
    }
}
