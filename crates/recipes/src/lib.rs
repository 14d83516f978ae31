//! Modality-agnostic self-supervised objectives, one file each.
//!
//! A recipe owns the encoder and whatever heads it needs (decoder, projector, EMA
//! teacher), all registered in the trainer's [`ParamStore`]. It receives token batches and
//! a step-keyed random generator and returns a scalar loss; it never knows which modality
//! produced the tokens. Objectives: [`mae`] (masked autoencoding), [`fusion`] (Volume
//! Fusion, MIS-FM's segmentation pretext task). Adding an objective is a new file plus one
//! variant in [`RecipeConfig`]: the trainer does not change.

pub mod data2vec;
pub mod dino;
pub mod ema;
pub mod fusion;
pub mod heads;
pub mod hubert;
pub mod ijepa;
pub mod kmeans;
pub mod losses;
pub mod mae;
pub mod moco;
pub mod predictor;

use candle_core::Tensor;
use serde::{Deserialize, Serialize};
use tessera_core::{CoreError, Encoder, EncoderConfig, ParamStore};
use tessera_tokens::{Rng, Tokens, ViewSpec};

pub type Result<T> = std::result::Result<T, CoreError>;

/// Per-sample targets a batch may carry beside its views (never as a fake view).
#[derive(Debug, Clone, PartialEq)]
pub enum Targets {
    /// One class index per sample.
    Classes(Vec<usize>),
    /// A distribution (or multi-label indicator) per sample: `values [b, width]`.
    Soft { width: usize, values: Vec<f32> },
    /// Per-token values aligned with view 0 (`[b, n, p]`, same padding): voxel labels of
    /// a segmentation crop, k-means unit ids (p = 1).
    PerToken(Tokens),
}

/// One training batch: the views a recipe asked for ([`Recipe::views`], in that order) of
/// the same samples, their dataset ids, and optional per-sample targets.
pub struct Batch {
    pub views: Vec<Tokens>,
    /// What each view is (global or local, augmented or not); as long as `views`.
    pub specs: Vec<ViewSpec>,
    /// Dataset index of each sample (the same in every view).
    pub ids: Vec<u64>,
    pub targets: Option<Targets>,
}

impl Batch {
    /// One plain global view and no targets.
    pub fn single(tokens: Tokens) -> Self {
        let ids = (0..tokens.b as u64).collect();
        Self {
            views: vec![tokens],
            specs: vec![ViewSpec::global()],
            ids,
            targets: None,
        }
    }

    /// Samples per view.
    pub fn samples(&self) -> usize {
        self.views.first().map(|t| t.b).unwrap_or(0)
    }

    /// The first view, or an error naming `recipe` when the batch has none.
    pub fn first(&self, recipe: &str) -> Result<&Tokens> {
        self.views
            .first()
            .ok_or_else(|| CoreError::Config(format!("{recipe}: empty batch")))
    }
}

/// Where training is: schedules (EMA momentum, teacher temperature, weight decay) are
/// functions of it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepContext {
    /// 1-based step.
    pub step: u64,
    /// Steps of the whole schedule.
    pub total_steps: u64,
}

impl StepContext {
    /// Progress through the schedule in [0, 1].
    pub fn progress(&self) -> f64 {
        if self.total_steps <= 1 {
            return 1.0;
        }
        ((self.step.saturating_sub(1)) as f64 / (self.total_steps - 1) as f64).clamp(0.0, 1.0)
    }

    /// Cosine from `start` (step 1) to `end` (the last step).
    pub fn cosine(&self, start: f64, end: f64) -> f64 {
        end + (start - end) * 0.5 * (1.0 + (std::f64::consts::PI * self.progress()).cos())
    }

    /// Linear from `start` to `end` over the first `steps` steps, then `end`.
    pub fn warmup(&self, start: f64, end: f64, steps: u64) -> f64 {
        if steps == 0 || self.step >= steps {
            return end;
        }
        start + (end - start) * (self.step.saturating_sub(1)) as f64 / steps as f64
    }
}

/// A recipe's output for one step.
pub struct StepOutput {
    /// Scalar loss to minimise.
    pub loss: Tensor,
    /// Extra scalars to log (name, value).
    pub metrics: Vec<(String, f64)>,
    /// Detached tensors `after_step` needs (DINO's teacher outputs, MoCo's keys for the
    /// queue), by name: one row per sample or view, so a data-parallel step can
    /// concatenate the rows of every micro-batch and process.
    pub state: Vec<(&'static str, Tensor)>,
}

impl StepOutput {
    pub fn new(loss: Tensor, metrics: Vec<(String, f64)>) -> Self {
        Self {
            loss,
            metrics,
            state: Vec::new(),
        }
    }

    /// The state tensor `name`, or an error naming the recipe.
    pub fn state(&self, recipe: &str, name: &str) -> Result<&Tensor> {
        self.state
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| t)
            .ok_or_else(|| CoreError::Config(format!("{recipe}: step output lacks `{name}`")))
    }
}

/// A self-supervised objective.
///
/// Everything a recipe must keep across a resume (EMA teachers, centres, queues,
/// codebooks) is a non-trainable parameter of the [`ParamStore`], so it is written with
/// every checkpoint and restored by `--resume`; only parameters under
/// [`ENCODER_PREFIX`] are exported.
pub trait Recipe {
    fn name(&self) -> &'static str;
    /// The views of each sample this recipe needs in every [`Batch`], in order.
    fn views(&self) -> Vec<ViewSpec> {
        vec![ViewSpec::global()]
    }
    /// The loss of one batch. `rng` is keyed to the step, so a resumed run draws the same
    /// masks.
    fn loss(&self, batch: &Batch, ctx: &StepContext, rng: &mut Rng) -> Result<StepOutput>;
    /// Called after each optimiser step with that step's output (EMA teachers, centres
    /// and queues update here).
    fn after_step(
        &mut self,
        _store: &ParamStore,
        _ctx: &StepContext,
        _out: &StepOutput,
    ) -> Result<()> {
        Ok(())
    }
    /// The backbone being pretrained (its parameters live under `encoder.`).
    fn encoder(&self) -> &Encoder;
    /// Batches this recipe fits something on before the first step of a fresh run (HuBERT's
    /// k-means codebook); 0 for none.
    fn prepare_batches(&self) -> usize {
        0
    }
    /// Fits what [`Recipe::prepare_batches`] asked for; the result is recipe state (a
    /// non-trainable parameter), so a resumed run keeps it and does not prepare again.
    fn prepare(&mut self, _store: &ParamStore, _batches: &[Batch], _rng: &mut Rng) -> Result<()> {
        Ok(())
    }
}

/// Checks that `batch` holds the views `recipe` asked for (count and specs).
pub fn check_views(recipe: &dyn Recipe, batch: &Batch) -> Result<()> {
    let want = recipe.views();
    if batch.views.len() != want.len() || batch.specs != want {
        return Err(CoreError::Config(format!(
            "{}: needs {} view(s) per sample, the data source gave {}",
            recipe.name(),
            want.len(),
            batch.views.len()
        )));
    }
    Ok(())
}

/// Every recipe's hyperparameters, tagged by `kind` in TOML.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RecipeConfig {
    /// Masked autoencoding, `kind = "mae"`.
    Mae(mae::MaeConfig),
    /// Volume Fusion (MIS-FM), `kind = "volume_fusion"`.
    VolumeFusion(fusion::FusionConfig),
    /// DINO self-distillation, `kind = "dino"`.
    Dino(dino::DinoConfig),
    /// MoCo v3 contrastive learning (optionally with MoCo v2's queue), `kind = "moco"`.
    Moco(moco::MocoConfig),
    /// I-JEPA latent prediction, `kind = "ijepa"`.
    Ijepa(ijepa::IjepaConfig),
    /// data2vec 2.0 regression of averaged teacher layers, `kind = "data2vec"`.
    Data2vec(data2vec::Data2vecConfig),
    /// HuBERT masked prediction of k-means units, `kind = "hubert"`.
    Hubert(hubert::HubertConfig),
}

impl RecipeConfig {
    /// Builds the recipe, registering the encoder under `encoder.` and the recipe's own
    /// parameters under its own prefix.
    pub fn build(&self, enc: &EncoderConfig, store: &mut ParamStore) -> Result<Box<dyn Recipe>> {
        match self {
            RecipeConfig::Mae(c) => Ok(Box::new(mae::Mae::new(c, enc, store)?)),
            RecipeConfig::VolumeFusion(c) => {
                Ok(Box::new(fusion::VolumeFusion::new(c, enc, store)?))
            }
            RecipeConfig::Dino(c) => Ok(Box::new(dino::Dino::new(c, enc, store)?)),
            RecipeConfig::Moco(c) => Ok(Box::new(moco::Moco::new(c, enc, store)?)),
            RecipeConfig::Ijepa(c) => Ok(Box::new(ijepa::Ijepa::new(c, enc, store)?)),
            RecipeConfig::Data2vec(c) => Ok(Box::new(data2vec::Data2vec::new(c, enc, store)?)),
            RecipeConfig::Hubert(c) => Ok(Box::new(hubert::Hubert::new(c, enc, store)?)),
        }
    }
}

/// A recipe configuration with every field at its serde default (the `Default` of a
/// config whose fields all have one).
pub(crate) fn serde_defaults<T: serde::de::DeserializeOwned>() -> T {
    toml::from_str("").expect("every field of a recipe configuration has a default")
}

/// Prefix of the shared encoder's parameters in every recipe's store.
pub const ENCODER_PREFIX: &str = "encoder";

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use tessera_tokens::{SampleTokens, ViewKind};

    pub const CTX: StepContext = StepContext {
        step: 1,
        total_steps: 100,
    };

    /// A batch of `b` samples with one view per spec: global views of `n` tokens, local
    /// views of `n / 2`, `p` random values each, one coordinate (the token's index).
    pub fn batch_for(specs: &[ViewSpec], b: usize, n: usize, p: usize) -> Batch {
        let mut rng = Rng::new(11);
        let views = specs
            .iter()
            .map(|s| {
                let len = if s.kind == ViewKind::Local { n / 2 } else { n };
                let samples: Vec<SampleTokens> = (0..b)
                    .map(|_| {
                        let v = (0..len * p).map(|_| rng.normal() as f32).collect();
                        let c = (0..len).map(|j| j as f32 * 0.25).collect();
                        SampleTokens::new(v, c, len, p, 1).unwrap()
                    })
                    .collect();
                Tokens::from_samples(&samples).unwrap()
            })
            .collect();
        Batch {
            views,
            specs: specs.to_vec(),
            ids: (0..b as u64).collect(),
            targets: None,
        }
    }
}
