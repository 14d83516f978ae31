//! Modality-agnostic self-supervised objectives, one file each.
//!
//! A recipe owns the encoder and whatever heads it needs (decoder, projector, EMA
//! teacher), all registered in the trainer's [`ParamStore`]. It receives token batches and
//! a step-keyed random generator and returns a scalar loss; it never knows which modality
//! produced the tokens. Objectives: [`mae`] (masked autoencoding), [`fusion`] (Volume
//! Fusion, MIS-FM's segmentation pretext task). Adding an objective is a new file plus one
//! variant in [`RecipeConfig`]: the trainer does not change.

pub mod fusion;
pub mod losses;
pub mod mae;

use candle_core::Tensor;
use serde::{Deserialize, Serialize};
use tessera_core::{CoreError, Encoder, EncoderConfig, ParamStore};
use tessera_tokens::{Rng, Tokens};

pub type Result<T> = std::result::Result<T, CoreError>;

/// One training batch: one or more views of the same samples (contrastive and
/// self-distillation recipes ask for two or more; MAE uses one).
pub struct Batch {
    pub views: Vec<Tokens>,
}

/// A recipe's output for one step.
pub struct StepOutput {
    /// Scalar loss to minimise.
    pub loss: Tensor,
    /// Extra scalars to log (name, value).
    pub metrics: Vec<(String, f64)>,
}

/// A self-supervised objective.
pub trait Recipe {
    fn name(&self) -> &'static str;
    /// Views per sample this recipe needs in each [`Batch`].
    fn views(&self) -> usize {
        1
    }
    /// The loss of one batch. `rng` is keyed to the step, so a resumed run draws the same
    /// masks.
    fn loss(&self, batch: &Batch, rng: &mut Rng) -> Result<StepOutput>;
    /// Called after each optimiser step (EMA teachers update here).
    fn after_step(&mut self, _store: &ParamStore, _step: u64) -> Result<()> {
        Ok(())
    }
    /// The backbone being pretrained (its parameters live under `encoder.`).
    fn encoder(&self) -> &Encoder;
}

/// Every recipe's hyperparameters, tagged by `kind` in TOML.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RecipeConfig {
    /// Masked autoencoding, `kind = "mae"`.
    Mae(mae::MaeConfig),
    /// Volume Fusion (MIS-FM), `kind = "volume_fusion"`.
    VolumeFusion(fusion::FusionConfig),
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
        }
    }
}

/// Prefix of the shared encoder's parameters in every recipe's store.
pub const ENCODER_PREFIX: &str = "encoder";
