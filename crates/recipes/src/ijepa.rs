//! I-JEPA: predicting representations of target blocks from a context (Assran et al.
//! 2023, "Self-Supervised Learning from Images with a Joint-Embedding Predictive
//! Architecture", arXiv:2301.08243).
//!
//! Target tokens are drawn by a mask in coordinate space (by default the union of
//! I-JEPA's blocks, [`tessera_tokens::block_mask`]); the student encoder sees only the
//! remaining context tokens; a narrow predictor (MAE's decoder shape, queries at the
//! targets' coordinates) predicts the EMA teacher's layer-normalised outputs at the target
//! tokens, the teacher having seen the whole view. The loss is smooth L1 (β = 1, as the
//! reference code) over the real target tokens. No pixels are reconstructed, so the
//! features are not spent on noise (speckle, hiss).

use crate::ema::{Ema, EmaConfig};
use crate::losses::smooth_l1;
use crate::predictor::{gather_tokens, keep_of, Predictor, PredictorShape};
use crate::{Batch, Recipe, Result, StepContext, StepOutput, ENCODER_PREFIX};
use serde::{Deserialize, Serialize};
use tessera_core::ops::normalize_last_dim;
use tessera_core::{no_grad, CoreError, Encoder, EncoderConfig, ParamStore, TokenTensors};
use tessera_tokens::{mask_batch, BlockMaskConfig, MaskStrategy, Rng, ViewSpec};

const TEACHER: &str = "teacher";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IjepaConfig {
    /// Which tokens are targets (the rest is the context).
    #[serde(default = "default_mask")]
    pub mask: MaskStrategy,
    #[serde(default = "default_pred_dim")]
    pub predictor_dim: usize,
    #[serde(default = "default_pred_depth")]
    pub predictor_depth: usize,
    #[serde(default = "default_pred_heads")]
    pub predictor_heads: usize,
    /// Apply the modality's augmentation to the view (I-JEPA itself uses none).
    #[serde(default)]
    pub augment: bool,
    #[serde(default)]
    pub ema: EmaConfig,
}

fn default_mask() -> MaskStrategy {
    MaskStrategy::Block(BlockMaskConfig {
        ratio: 0.5,
        n_blocks: 4,
        ..BlockMaskConfig::default()
    })
}
fn default_pred_dim() -> usize {
    96
}
fn default_pred_depth() -> usize {
    4
}
fn default_pred_heads() -> usize {
    3
}

impl Default for IjepaConfig {
    fn default() -> Self {
        crate::serde_defaults()
    }
}

pub struct Ijepa {
    cfg: IjepaConfig,
    encoder: Encoder,
    teacher: Encoder,
    predictor: Predictor,
    ema: Ema,
}

impl Ijepa {
    pub fn new(cfg: &IjepaConfig, enc: &EncoderConfig, store: &mut ParamStore) -> Result<Self> {
        cfg.ema.validate("ijepa")?;
        cfg.mask.validate(enc.coord_scales.len())?;
        let encoder = Encoder::new(enc, store, ENCODER_PREFIX)?;
        let shape = PredictorShape {
            dim: cfg.predictor_dim,
            depth: cfg.predictor_depth,
            heads: cfg.predictor_heads,
            out: enc.dim,
        };
        let predictor = Predictor::new(store, "ijepa.predictor", enc, &shape, "ijepa")?;
        let teacher = Encoder::new(enc, store, &format!("{TEACHER}.{ENCODER_PREFIX}"))?;
        let ema = Ema::new(store, TEACHER, cfg.ema)?;
        Ok(Self {
            cfg: cfg.clone(),
            encoder,
            teacher,
            predictor,
            ema,
        })
    }
}

impl Recipe for Ijepa {
    fn name(&self) -> &'static str {
        "ijepa"
    }

    fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    fn views(&self) -> Vec<ViewSpec> {
        vec![ViewSpec::global().augmented(self.cfg.augment)]
    }

    fn loss(&self, batch: &Batch, ctx: &StepContext, rng: &mut Rng) -> Result<StepOutput> {
        let tokens = batch.first("ijepa")?;
        let dev = self.encoder.cls_token.device().clone();
        let m = mask_batch(tokens, &self.cfg.mask, rng)?;
        // Teacher targets: the whole view, layer-normalised, gathered at the targets.
        let full = no_grad(|| {
            self.teacher
                .forward(&TokenTensors::from_tokens(tokens, &dev)?)
        })?;
        let target = normalize_last_dim(
            &gather_tokens(&full.patches, &m.masked_idx, m.masked.n)?,
            1e-6,
        )?
        .detach();
        // Student: the context only, then the predictor at the targets' coordinates.
        let pred = self.predictor.predict_masked(&self.encoder, &m)?;
        let loss = smooth_l1(&pred, &target, 1.0, Some(&keep_of(&m.masked, &dev)?))?;
        let targets: usize = m.masked_idx.iter().map(Vec::len).sum();
        let context: usize = m.visible_idx.iter().map(Vec::len).sum();
        if targets == 0 {
            return Err(CoreError::Config(
                "ijepa: the mask left no target token (samples of one token?)".into(),
            ));
        }
        Ok(StepOutput::new(
            loss,
            vec![
                (
                    "target_fraction".into(),
                    targets as f64 / (targets + context) as f64,
                ),
                ("momentum".into(), self.cfg.ema.at(ctx)),
            ],
        ))
    }

    fn after_step(
        &mut self,
        _store: &ParamStore,
        ctx: &StepContext,
        _out: &StepOutput,
    ) -> Result<()> {
        self.ema.update(ctx)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{batch_for, CTX};
    use candle_core::Device;

    #[test]
    fn predicts_teacher_features_at_the_targets_only() {
        let enc = EncoderConfig::preset("nano", 8, vec![4.0]).unwrap();
        let cfg: IjepaConfig =
            toml::from_str("predictor_dim = 32\npredictor_depth = 1\npredictor_heads = 2").unwrap();
        let mut store = ParamStore::new(0, &Device::Cpu);
        let mut ij = Ijepa::new(&cfg, &enc, &mut store).unwrap();
        let batch = batch_for(&ij.views(), 3, 16, 8);
        let out = ij.loss(&batch, &CTX, &mut Rng::new(3)).unwrap();
        let l = out.loss.to_scalar::<f32>().unwrap();
        assert!(l.is_finite() && l > 0.0, "{l}");
        let frac = out.metrics[0].1;
        assert!((0.3..0.7).contains(&frac), "{frac}");
        let grads = out.loss.backward().unwrap();
        let has = |n: &str| grads.get(&store.param(n).unwrap().var).is_some();
        assert!(has("encoder.blocks.0.attn.qkv.weight"));
        assert!(has("ijepa.predictor.decoder_pred.weight"));
        assert!(!has("teacher.encoder.blocks.0.attn.qkv.weight"));
        ij.after_step(&store, &CTX, &out).unwrap();
        // Same step rng, same loss (the mask is drawn from it).
        let again = ij.loss(&batch, &CTX, &mut Rng::new(3)).unwrap();
        assert_eq!(
            again.loss.to_scalar::<f32>().unwrap().to_bits(),
            l.to_bits()
        );
        assert!(toml::from_str::<IjepaConfig>("predictor_dims = 3").is_err());
    }
}
