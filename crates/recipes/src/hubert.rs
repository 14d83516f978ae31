//! HuBERT: masked prediction of discrete hidden units (Hsu et al. 2021, "HuBERT:
//! Self-Supervised Speech Representation Learning by Masked Prediction of Hidden Units",
//! arXiv:2106.07447).
//!
//! Iteration 1: before the first step, k-means (written here, [`crate::kmeans`]) clusters
//! the token values of the first `prepare_batches` batches (log-mel frame patches for
//! audio, as HuBERT clusters MFCC frames) into `units` centroids, kept as a non-trainable
//! parameter, so a resumed run keeps its codebook. Each step, every token's unit is its
//! nearest centroid; the student sees the view with a learned mask token in place of the
//! masked tokens' values (spans along time for audio) and a linear head predicts the units
//! of the masked tokens (cross-entropy over the real masked tokens). Iteration 2 (units
//! from a middle layer of the iteration-1 model) is not implemented yet.

use crate::kmeans::{kmeans, nearest};
use crate::losses::cross_entropy;
use crate::{ema::set_state, Batch, Recipe, Result, StepContext, StepOutput, ENCODER_PREFIX};
use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};
use tessera_core::layers::Linear;
use tessera_core::params::{Decay, Init};
use tessera_core::{CoreError, Encoder, EncoderConfig, Forward, ParamStore, TokenTensors};
use tessera_tokens::{mask_batch, MaskStrategy, Rng, SpanMaskConfig, Tokens, ViewSpec};

const CODEBOOK: &str = "hubert.codebook";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubertConfig {
    /// Which tokens are masked (and predicted).
    #[serde(default = "default_mask")]
    pub mask: MaskStrategy,
    /// Discrete units (k-means clusters).
    #[serde(default = "default_units")]
    pub units: usize,
    /// Batches whose token values k-means is fitted on.
    #[serde(default = "default_prepare")]
    pub prepare_batches: usize,
    #[serde(default = "default_iters")]
    pub kmeans_iters: usize,
    #[serde(default)]
    pub augment: bool,
}

fn default_mask() -> MaskStrategy {
    MaskStrategy::Span(SpanMaskConfig {
        ratio: 0.5,
        axis: 0,
        span: 1.0,
    })
}
fn default_units() -> usize {
    100
}
fn default_prepare() -> usize {
    20
}
fn default_iters() -> usize {
    30
}

impl Default for HubertConfig {
    fn default() -> Self {
        crate::serde_defaults()
    }
}

pub struct Hubert {
    cfg: HubertConfig,
    encoder: Encoder,
    mask_token: Tensor,
    head: Linear,
    codebook: Tensor,
}

impl Hubert {
    pub fn new(cfg: &HubertConfig, enc: &EncoderConfig, store: &mut ParamStore) -> Result<Self> {
        if cfg.units < 2 || cfg.prepare_batches == 0 {
            return Err(CoreError::Config(format!(
                "hubert: units ({}) must be at least 2 and prepare_batches ({}) positive",
                cfg.units, cfg.prepare_batches
            )));
        }
        cfg.mask.validate(enc.coord_scales.len())?;
        let encoder = Encoder::new(enc, store, ENCODER_PREFIX)?;
        let mask_token = store.get(
            "hubert.mask_token",
            &[1, 1, enc.dim],
            Init::TruncNormal(0.02),
            Decay::No,
        )?;
        let head = Linear::new(store, "hubert.head", enc.dim, cfg.units, true)?;
        let codebook = store.get(
            CODEBOOK,
            &[cfg.units, enc.patch_dim],
            Init::Zeros,
            Decay::No,
        )?;
        store.set_trainable(CODEBOOK, false);
        Ok(Self {
            cfg: cfg.clone(),
            encoder,
            mask_token,
            head,
            codebook,
        })
    }

    /// One-hot units of every token of `t`: `[B, N, units]`.
    fn units(&self, t: &Tokens) -> Result<Tensor> {
        let c = self.codebook.flatten_all()?.to_vec1::<f32>()?;
        let (k, p) = (self.cfg.units, t.p);
        let mut onehot = vec![0f32; t.b * t.n * k];
        for (i, row) in t.values.chunks(p).enumerate() {
            onehot[i * k + nearest(&c, p, row)] = 1.0;
        }
        Ok(Tensor::from_vec(
            onehot,
            (t.b, t.n, k),
            self.codebook.device(),
        )?)
    }
}

impl Recipe for Hubert {
    fn name(&self) -> &'static str {
        "hubert"
    }

    fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    fn views(&self) -> Vec<ViewSpec> {
        vec![ViewSpec::global().augmented(self.cfg.augment)]
    }

    fn prepare_batches(&self) -> usize {
        self.cfg.prepare_batches
    }

    fn prepare(&mut self, store: &ParamStore, batches: &[Batch], rng: &mut Rng) -> Result<()> {
        let mut data = Vec::new();
        for b in batches {
            let t = b.first("hubert")?;
            for (row, &pad) in t.values.chunks(t.p).zip(&t.padding) {
                if pad == 0 {
                    data.extend_from_slice(row);
                }
            }
        }
        let p = self.encoder.cfg.patch_dim;
        let c = kmeans(&data, p, self.cfg.units, self.cfg.kmeans_iters, rng)?;
        set_state(
            store,
            CODEBOOK,
            &Tensor::from_vec(c, (self.cfg.units, p), self.codebook.device())?,
        )
    }

    fn loss(&self, batch: &Batch, _ctx: &StepContext, rng: &mut Rng) -> Result<StepOutput> {
        let tokens = batch.first("hubert")?;
        let dev = self.mask_token.device().clone();
        let m = mask_batch(tokens, &self.cfg.mask, rng)?;
        let (b, n) = (tokens.b, tokens.n);
        let mut masked = vec![0f32; b * n];
        for (i, idx) in m.masked_idx.iter().enumerate() {
            for &j in idx {
                masked[i * n + j] = 1.0;
            }
        }
        let masked = Tensor::from_vec(masked, (b, n), &dev)?;
        let out = self.encoder.forward_with(
            &TokenTensors::from_tokens(tokens, &dev)?,
            &Forward {
                mask: Some((&masked, &self.mask_token)),
                hidden_states: false,
            },
        )?;
        let logits = self.head.forward(&out.patches)?;
        let units = self.units(tokens)?;
        let loss = cross_entropy(&logits, &units, Some(&masked))?;
        // Accuracy of the masked predictions.
        let hit = logits
            .argmax(candle_core::D::Minus1)?
            .eq(&units.argmax(candle_core::D::Minus1)?)?
            .to_dtype(DType::F32)?;
        let n_masked = masked.sum_all()?.to_scalar::<f32>()?.max(1.0);
        let acc = (hit * &masked)?.sum_all()?.to_scalar::<f32>()? / n_masked;
        Ok(StepOutput::new(
            loss,
            vec![("unit_accuracy".into(), acc as f64)],
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{batch_for, CTX};
    use candle_core::Device;

    #[test]
    fn fits_a_codebook_then_predicts_units_of_masked_tokens() {
        let enc = EncoderConfig::preset("nano", 8, vec![4.0]).unwrap();
        let cfg: HubertConfig =
            toml::from_str("units = 4\nprepare_batches = 2\n[mask]\nkind = \"span\"\nratio = 0.5\naxis = 0\nspan = 0.5").unwrap();
        let mut store = ParamStore::new(0, &Device::Cpu);
        let mut h = Hubert::new(&cfg, &enc, &mut store).unwrap();
        assert_eq!(h.prepare_batches(), 2);
        let batches = vec![
            batch_for(&h.views(), 3, 12, 8),
            batch_for(&h.views(), 3, 10, 8),
        ];
        h.prepare(&store, &batches, &mut Rng::new(1)).unwrap();
        let c = store.param(CODEBOOK).unwrap().var.to_vec2::<f32>().unwrap();
        assert!(
            c.iter().all(|r| r.iter().any(|&x| x != 0.0)),
            "codebook not fitted"
        );
        let out = h.loss(&batches[0], &CTX, &mut Rng::new(2)).unwrap();
        let l = out.loss.to_scalar::<f32>().unwrap();
        assert!(l.is_finite() && l > 0.0, "{l}");
        let grads = out.loss.backward().unwrap();
        let has = |n: &str| grads.get(&store.param(n).unwrap().var).is_some();
        assert!(has("encoder.blocks.0.attn.qkv.weight") && has("hubert.mask_token"));
        assert!(!has(CODEBOOK));
        // One-hot units are each token's nearest centroid.
        let u = h
            .units(&batches[0].views[0])
            .unwrap()
            .sum(candle_core::D::Minus1)
            .unwrap();
        assert!(u
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .all(|&x| x == 1.0));
        assert!(toml::from_str::<HubertConfig>("unit = 3").is_err());
    }
}
