//! data2vec 2.0: regressing contextualised teacher targets (Baevski et al. 2022,
//! "Efficient Self-supervised Learning with Contextualized Target Representations for
//! Vision, Speech and Language", arXiv:2212.07525; data2vec, arXiv:2202.03555).
//!
//! The EMA teacher encodes the whole view and returns every block's output; the target of
//! each token is the average of the top `top_k_layers` block outputs, each
//! instance-normalised (per channel over the sample's tokens). The student encodes only the
//! visible tokens of `masks_per_sample` differently masked copies of each sample (2.0's
//! multi-mask, which amortises the teacher's pass), and a narrow decoder regresses the
//! targets at the masked tokens (mean squared error over the real masked tokens).

use crate::ema::{Ema, EmaConfig};
use crate::losses::masked_mse;
use crate::predictor::{gather_tokens, keep_of, Predictor, PredictorShape};
use crate::{Batch, Recipe, Result, StepContext, StepOutput, ENCODER_PREFIX};
use candle_core::{Tensor, D};
use serde::{Deserialize, Serialize};
use tessera_core::{no_grad, CoreError, Encoder, EncoderConfig, Forward, ParamStore, TokenTensors};
use tessera_tokens::{mask_batch, MaskConfig, MaskStrategy, Rng, Tokens, ViewSpec};

const TEACHER: &str = "teacher";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Data2vecConfig {
    /// Which tokens the student does not see (and regresses).
    #[serde(default = "default_mask")]
    pub mask: MaskStrategy,
    /// Differently masked copies of each sample per step.
    #[serde(default = "default_masks")]
    pub masks_per_sample: usize,
    /// Teacher blocks averaged into the target (the last ones).
    #[serde(default = "default_top_k")]
    pub top_k_layers: usize,
    #[serde(default = "default_decoder_dim")]
    pub decoder_dim: usize,
    #[serde(default = "default_decoder_depth")]
    pub decoder_depth: usize,
    #[serde(default = "default_decoder_heads")]
    pub decoder_heads: usize,
    #[serde(default)]
    pub augment: bool,
    #[serde(default)]
    pub ema: EmaConfig,
}

fn default_mask() -> MaskStrategy {
    MaskStrategy::Random(MaskConfig {
        ratio: 0.75,
        jitter: 0.0,
    })
}
fn default_masks() -> usize {
    4
}
fn default_top_k() -> usize {
    6
}
fn default_decoder_dim() -> usize {
    128
}
fn default_decoder_depth() -> usize {
    2
}
fn default_decoder_heads() -> usize {
    4
}

impl Default for Data2vecConfig {
    fn default() -> Self {
        crate::serde_defaults()
    }
}

pub struct Data2vec {
    cfg: Data2vecConfig,
    encoder: Encoder,
    teacher: Encoder,
    decoder: Predictor,
    ema: Ema,
}

impl Data2vec {
    pub fn new(cfg: &Data2vecConfig, enc: &EncoderConfig, store: &mut ParamStore) -> Result<Self> {
        if cfg.masks_per_sample == 0 || cfg.top_k_layers == 0 || cfg.top_k_layers > enc.depth {
            return Err(CoreError::Config(format!(
                "data2vec: masks_per_sample ({}) must be positive and top_k_layers ({}) in 1..={} (the encoder depth)",
                cfg.masks_per_sample, cfg.top_k_layers, enc.depth
            )));
        }
        cfg.ema.validate("data2vec")?;
        cfg.mask.validate(enc.coord_scales.len())?;
        let encoder = Encoder::new(enc, store, ENCODER_PREFIX)?;
        let shape = PredictorShape {
            dim: cfg.decoder_dim,
            depth: cfg.decoder_depth,
            heads: cfg.decoder_heads,
            out: enc.dim,
        };
        let decoder = Predictor::new(store, "data2vec.decoder", enc, &shape, "data2vec")?;
        let teacher = Encoder::new(enc, store, &format!("{TEACHER}.{ENCODER_PREFIX}"))?;
        let ema = Ema::new(store, TEACHER, cfg.ema)?;
        Ok(Self {
            cfg: cfg.clone(),
            encoder,
            teacher,
            decoder,
            ema,
        })
    }

    /// The teacher's targets for every token: `[B, N, D]`, the average of the top blocks'
    /// outputs, each instance-normalised (every channel over the real tokens of its
    /// sample, as data2vec normalises speech targets). Normalising across tokens, not
    /// within each token, keeps the targets from collapsing to one vector for all tokens.
    fn targets(&self, t: &TokenTensors) -> Result<Tensor> {
        // Without a recorded graph: the teacher's activations are freed as it goes.
        let out = no_grad(|| {
            self.teacher.forward_with(
                t,
                &Forward {
                    mask: None,
                    hidden_states: true,
                },
            )
        })?;
        let keep = (1.0 - t.padding.to_dtype(candle_core::DType::F32)?)?.unsqueeze(D::Minus1)?;
        let k = self.cfg.top_k_layers;
        let top = &out.hidden[out.hidden.len() - k..];
        let mut sum = instance_norm(&top[0], &keep)?;
        for h in &top[1..] {
            sum = (sum + instance_norm(h, &keep)?)?;
        }
        Ok((sum / k as f64)?.detach())
    }
}

/// Every channel of `x [B, N, D]` normalised to zero mean and unit variance over the
/// tokens where `keep [B, N, 1]` is 1.
fn instance_norm(x: &Tensor, keep: &Tensor) -> Result<Tensor> {
    let n = keep.sum_keepdim(1)?.maximum(1.0)?; // [B, 1, 1]
    let mean = x.broadcast_mul(keep)?.sum_keepdim(1)?.broadcast_div(&n)?;
    let centred = x.broadcast_sub(&mean)?;
    let var = centred
        .sqr()?
        .broadcast_mul(keep)?
        .sum_keepdim(1)?
        .broadcast_div(&n)?;
    Ok(centred.broadcast_div(&(var + 1e-5)?.sqrt()?)?)
}

impl Recipe for Data2vec {
    fn name(&self) -> &'static str {
        "data2vec"
    }

    fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    fn views(&self) -> Vec<ViewSpec> {
        vec![ViewSpec::global().augmented(self.cfg.augment)]
    }

    fn loss(&self, batch: &Batch, ctx: &StepContext, rng: &mut Rng) -> Result<StepOutput> {
        let tokens = batch.first("data2vec")?;
        let dev = self.encoder.cls_token.device().clone();
        let targets = self.targets(&TokenTensors::from_tokens(tokens, &dev)?)?;
        let copies = self.cfg.masks_per_sample;
        // Copy c of sample i is row c·B + i, both of the tokens and of the targets.
        let rep = Tokens::cat(&vec![tokens; copies])?;
        let m = mask_batch(&rep, &self.cfg.mask, rng)?;
        let targets = Tensor::cat(&vec![&targets; copies], 0)?;
        let target = gather_tokens(&targets, &m.masked_idx, m.masked.n)?;
        let pred = self.decoder.predict_masked(&self.encoder, &m)?;
        let (loss, n) = masked_mse(&pred, &target, &keep_of(&m.masked, &dev)?)?;
        Ok(StepOutput::new(
            loss,
            vec![
                ("masked_tokens".into(), n as f64),
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
    fn regresses_averaged_teacher_layers_at_masked_tokens_of_every_copy() {
        let enc = EncoderConfig::preset("nano", 8, vec![4.0]).unwrap();
        let cfg: Data2vecConfig = toml::from_str(
            "masks_per_sample = 3\ntop_k_layers = 2\ndecoder_dim = 32\ndecoder_depth = 1\ndecoder_heads = 2",
        )
        .unwrap();
        let mut store = ParamStore::new(0, &Device::Cpu);
        let mut d2v = Data2vec::new(&cfg, &enc, &mut store).unwrap();
        let batch = batch_for(&d2v.views(), 2, 12, 8);
        let out = d2v.loss(&batch, &CTX, &mut Rng::new(5)).unwrap();
        let l = out.loss.to_scalar::<f32>().unwrap();
        // Unit-variance targets against a random decoder: of the order of 1.
        assert!(l.is_finite() && l > 0.1 && l < 10.0, "{l}");
        // 3 copies x 2 samples x 9 of 12 tokens masked.
        assert_eq!(out.metrics[0].1, 54.0);
        let grads = out.loss.backward().unwrap();
        let has = |n: &str| grads.get(&store.param(n).unwrap().var).is_some();
        assert!(has("encoder.blocks.0.attn.qkv.weight"));
        assert!(has("data2vec.decoder.decoder_pred.weight"));
        assert!(!has("teacher.encoder.blocks.3.attn.qkv.weight"));
        d2v.after_step(&store, &CTX, &out).unwrap();
        // Targets: zero mean and unit variance per channel over each sample's real tokens.
        let t = TokenTensors::from_tokens(&batch.views[0], &Device::Cpu).unwrap();
        let y = d2v.targets(&t).unwrap().to_vec3::<f32>().unwrap();
        assert_eq!(d2v.cfg.top_k_layers, 2);
        for sample in &y {
            let mean = sample.iter().map(|r| r[5]).sum::<f32>() / 12.0;
            assert!(mean.abs() < 1e-4, "{mean}");
        }
        assert!(Data2vec::new(
            &Data2vecConfig {
                top_k_layers: 9,
                ..cfg
            },
            &enc,
            &mut ParamStore::new(0, &Device::Cpu)
        )
        .is_err());
    }
}
