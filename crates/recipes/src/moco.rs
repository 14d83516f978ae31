//! MoCo v3: contrastive learning with a momentum encoder (Chen, Xie & He 2021, "An
//! Empirical Study of Training Self-Supervised Vision Transformers", arXiv:2104.02057),
//! with MoCo v2's queue of past keys as an option (Chen et al. 2020, arXiv:2003.04297).
//!
//! Two augmented global views of each sample: the student (encoder → projector →
//! predictor) gives queries, the EMA teacher (encoder → projector) keys; the loss is the
//! symmetrised InfoNCE `ctr(q₁, k₂) + ctr(q₂, k₁)`, each scaled by `2τ` as in the paper,
//! whose negatives are the other keys of the batch and, with `queue > 0`, the last
//! `queue` keys of earlier steps. The teacher and the queue are non-trainable parameters,
//! so a resumed run continues with the same negatives.

use crate::ema::{set_state, Ema, EmaConfig};
use crate::heads::{MlpHead, Pool};
use crate::losses::{info_nce, l2_normalise, log_softmax, nll};
use crate::{Batch, Recipe, Result, StepContext, StepOutput, ENCODER_PREFIX};
use candle_core::{Tensor, D};
use serde::{Deserialize, Serialize};
use tessera_core::params::{Decay, Init};
use tessera_core::{no_grad, CoreError, Encoder, EncoderConfig, ParamStore, TokenTensors};
use tessera_tokens::{Rng, Tokens, ViewSpec};

const TEACHER: &str = "teacher";
const QUEUE: &str = "moco.queue";
const QUEUE_PTR: &str = "moco.queue_ptr";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MocoConfig {
    #[serde(default = "default_temperature")]
    pub temperature: f64,
    /// Output width of the projector and predictor.
    #[serde(default = "default_dim")]
    pub dim: usize,
    #[serde(default = "default_hidden")]
    pub hidden_dim: usize,
    /// Past keys kept as extra negatives (0: in-batch negatives only, MoCo v3).
    #[serde(default)]
    pub queue: usize,
    /// Apply the modality's augmentation to both views.
    #[serde(default = "yes")]
    pub augment: bool,
    /// Batch-normalise the hidden layers of the projector and predictor (the paper does).
    #[serde(default)]
    pub batch_norm: bool,
    /// What the projector reads: the CLS token (the paper) or the mean patch token.
    #[serde(default)]
    pub pool: Pool,
    #[serde(default = "default_ema")]
    pub ema: EmaConfig,
}

fn default_temperature() -> f64 {
    0.2
}
fn default_dim() -> usize {
    256
}
fn default_hidden() -> usize {
    1024
}
fn yes() -> bool {
    true
}
fn default_ema() -> EmaConfig {
    EmaConfig {
        momentum: 0.99,
        final_momentum: 1.0,
    }
}

impl Default for MocoConfig {
    fn default() -> Self {
        crate::serde_defaults()
    }
}

pub struct Moco {
    cfg: MocoConfig,
    encoder: Encoder,
    projector: MlpHead,
    predictor: MlpHead,
    teacher: Encoder,
    teacher_projector: MlpHead,
    ema: Ema,
    queue: Option<(Tensor, Tensor)>,
}

impl Moco {
    pub fn new(cfg: &MocoConfig, enc: &EncoderConfig, store: &mut ParamStore) -> Result<Self> {
        if !(cfg.temperature.is_finite() && cfg.temperature > 0.0)
            || cfg.dim == 0
            || cfg.hidden_dim == 0
        {
            return Err(CoreError::Config(format!(
                "moco: temperature ({}), dim ({}) and hidden_dim ({}) must be positive",
                cfg.temperature, cfg.dim, cfg.hidden_dim
            )));
        }
        cfg.ema.validate("moco")?;
        let (d, h, o) = (enc.dim, cfg.hidden_dim, cfg.dim);
        let encoder = Encoder::new(enc, store, ENCODER_PREFIX)?;
        let bn = cfg.batch_norm;
        let projector = MlpHead::new(store, "moco.projector", d, h, o, 3, bn)?;
        let predictor = MlpHead::new(store, "moco.predictor", o, h, o, 2, bn)?;
        let teacher = Encoder::new(enc, store, &format!("{TEACHER}.{ENCODER_PREFIX}"))?;
        let teacher_projector =
            MlpHead::new(store, &format!("{TEACHER}.moco.projector"), d, h, o, 3, bn)?;
        let ema = Ema::new(store, TEACHER, cfg.ema)?;
        let queue = if cfg.queue > 0 {
            // Random unit keys to start with, as MoCo v2.
            let q = store.get(QUEUE, &[cfg.queue, o], Init::TruncNormal(1.0), Decay::No)?;
            set_state(store, QUEUE, &l2_normalise(&q)?)?;
            let ptr = store.get(QUEUE_PTR, &[1], Init::Zeros, Decay::No)?;
            store.set_trainable(QUEUE, false);
            Some((q, ptr))
        } else {
            None
        };
        Ok(Self {
            cfg: cfg.clone(),
            encoder,
            projector,
            predictor,
            teacher,
            teacher_projector,
            ema,
            queue,
        })
    }

    fn pooled(&self, encoder: &Encoder, t: &Tokens) -> Result<Tensor> {
        let dev = encoder.cls_token.device().clone();
        self.cfg
            .pool
            .apply(&encoder.forward(&TokenTensors::from_tokens(t, &dev)?)?)
    }

    /// `ctr(q, k)` against the in-batch keys and the queue: cross-entropy of
    /// `q̂ [k̂; queue]ᵀ / τ` with the positive on the diagonal.
    fn contrast(&self, q: &Tensor, k: &Tensor, queue: &Tensor) -> Result<Tensor> {
        let (n, _) = q.dims2()?;
        let keys = Tensor::cat(&[l2_normalise(k)?, queue.clone()], 0)?;
        let logits = (l2_normalise(q)?.matmul(&keys.t()?)? / self.cfg.temperature)?;
        let eye = Tensor::eye(n, logits.dtype(), logits.device())?;
        let extra = keys.dim(0)? - n;
        let target = Tensor::cat(
            &[
                eye,
                Tensor::zeros((n, extra), logits.dtype(), logits.device())?,
            ],
            1,
        )?;
        nll(&log_softmax(&logits)?, &target, None)
    }
}

impl Recipe for Moco {
    fn name(&self) -> &'static str {
        "moco"
    }

    fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    fn views(&self) -> Vec<ViewSpec> {
        vec![ViewSpec::global().augmented(self.cfg.augment); 2]
    }

    fn loss(&self, batch: &Batch, _ctx: &StepContext, _rng: &mut Rng) -> Result<StepOutput> {
        if batch.views.len() != 2 {
            return Err(CoreError::Config(format!(
                "moco: needs two views per sample, got {}",
                batch.views.len()
            )));
        }
        let b = batch.samples();
        let both = Tokens::cat(&[&batch.views[0], &batch.views[1]])?;
        let q = self.predictor.forward(
            &self
                .projector
                .forward(&self.pooled(&self.encoder, &both)?)?,
        )?;
        let k = no_grad(|| {
            self.teacher_projector
                .forward(&self.pooled(&self.teacher, &both)?)
        })?;
        let (q1, q2) = (q.narrow(0, 0, b)?, q.narrow(0, b, b)?);
        let (k1, k2) = (k.narrow(0, 0, b)?, k.narrow(0, b, b)?);
        let scale = 2.0 * self.cfg.temperature;
        let loss = match &self.queue {
            None => {
                ((info_nce(&q1, &k2, self.cfg.temperature, false)?
                    + info_nce(&q2, &k1, self.cfg.temperature, false)?)?
                    * scale)?
            }
            Some((queue, _)) => {
                let queue = queue.detach();
                ((self.contrast(&q1, &k2, &queue)? + self.contrast(&q2, &k1, &queue)?)? * scale)?
            }
        };
        // Mean cosine of the positive pairs: 1 is collapse or success, the loss says which.
        let cos = (l2_normalise(&q1)? * l2_normalise(&k2)?)?
            .sum(D::Minus1)?
            .mean_all()?
            .to_scalar::<f32>()? as f64;
        let mut out = StepOutput::new(loss, vec![("positive_cosine".into(), cos)]);
        out.state.push(("keys", l2_normalise(&k)?));
        Ok(out)
    }

    fn after_step(
        &mut self,
        store: &ParamStore,
        ctx: &StepContext,
        out: &StepOutput,
    ) -> Result<()> {
        self.ema.update(ctx)?;
        let Some((queue, ptr)) = &self.queue else {
            return Ok(());
        };
        // Ring buffer: the newest keys overwrite the oldest, from the saved pointer on.
        let keys = out.state("moco", "keys")?.to_vec2::<f32>()?;
        let mut q = queue.to_vec2::<f32>()?;
        let len = q.len();
        let mut at = ptr.to_vec1::<f32>()?[0] as usize % len;
        for k in keys {
            q[at] = k;
            at = (at + 1) % len;
        }
        let flat: Vec<f32> = q.into_iter().flatten().collect();
        set_state(
            store,
            QUEUE,
            &Tensor::from_vec(flat, queue.dims(), queue.device())?,
        )?;
        set_state(store, QUEUE_PTR, &Tensor::new(&[at as f32], ptr.device())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{batch_for, CTX};
    use candle_core::Device;

    #[test]
    fn queue_fills_as_a_ring_and_the_teacher_gets_no_gradient() {
        let enc = EncoderConfig::preset("nano", 8, vec![4.0]).unwrap();
        let cfg: MocoConfig = toml::from_str("dim = 16\nhidden_dim = 32\nqueue = 5").unwrap();
        let mut store = ParamStore::new(0, &Device::Cpu);
        let mut moco = Moco::new(&cfg, &enc, &mut store).unwrap();
        let batch = batch_for(&moco.views(), 3, 10, 8);
        let out = moco.loss(&batch, &CTX, &mut Rng::new(1)).unwrap();
        let l = out.loss.to_scalar::<f32>().unwrap();
        assert!(l.is_finite() && l > 0.0, "{l}");
        let grads = out.loss.backward().unwrap();
        let has = |n: &str| grads.get(&store.param(n).unwrap().var).is_some();
        assert!(has("encoder.blocks.0.attn.qkv.weight") && has("moco.predictor.layers.0.weight"));
        assert!(!has("teacher.encoder.blocks.0.attn.qkv.weight") && !has(QUEUE));
        moco.after_step(&store, &CTX, &out).unwrap();
        // Six keys into a queue of five: slots 0..4 then slot 0 again; the pointer is 1.
        let keys = out.state("moco", "keys").unwrap().to_vec2::<f32>().unwrap();
        let q = store.param(QUEUE).unwrap().var.to_vec2::<f32>().unwrap();
        assert_eq!(q[0], keys[5]);
        assert_eq!(&q[1..5], &keys[1..5]);
        assert_eq!(
            store
                .param(QUEUE_PTR)
                .unwrap()
                .var
                .to_vec1::<f32>()
                .unwrap(),
            vec![1.0]
        );
    }

    #[test]
    fn without_a_queue_the_loss_is_symmetric_info_nce() {
        let enc = EncoderConfig::preset("nano", 8, vec![4.0]).unwrap();
        let cfg: MocoConfig = toml::from_str("dim = 16\nhidden_dim = 32").unwrap();
        let mut store = ParamStore::new(0, &Device::Cpu);
        let moco = Moco::new(&cfg, &enc, &mut store).unwrap();
        let batch = batch_for(&moco.views(), 4, 10, 8);
        let l = moco
            .loss(&batch, &CTX, &mut Rng::new(1))
            .unwrap()
            .loss
            .to_scalar::<f32>()
            .unwrap();
        // Untrained: near 2τ · 2 ln 4.
        let chance = 2.0 * 0.2 * 2.0 * 4f32.ln();
        assert!((l - chance).abs() < 0.5 * chance, "{l} vs {chance}");
        assert!(toml::from_str::<MocoConfig>("temprature = 0.1").is_err());
    }
}
