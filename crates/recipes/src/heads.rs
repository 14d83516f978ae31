//! Projection heads shared by the joint-embedding recipes: a GELU MLP (SimCLR, MoCo v3
//! projector and predictor) and DINO's head (MLP → L2-normalised bottleneck →
//! weight-normalised prototypes; Caron et al. 2021, arXiv:2104.14294).

use crate::losses::l2_normalise;
use crate::Result;
use candle_core::Tensor;
use serde::{Deserialize, Serialize};
use tessera_core::layers::Linear;
use tessera_core::ops::gelu;
use tessera_core::EncoderOutput;
use tessera_core::ParamStore;

/// `layers` linear maps `in → hidden → … → out` with GELU between them.
pub struct MlpHead {
    layers: Vec<Linear>,
}

impl MlpHead {
    pub fn new(
        store: &mut ParamStore,
        prefix: &str,
        d_in: usize,
        hidden: usize,
        d_out: usize,
        layers: usize,
    ) -> Result<Self> {
        let layers = layers.max(1);
        let mut out = Vec::with_capacity(layers);
        for i in 0..layers {
            let a = if i == 0 { d_in } else { hidden };
            let b = if i + 1 == layers { d_out } else { hidden };
            out.push(Linear::new(
                store,
                &format!("{prefix}.layers.{i}"),
                a,
                b,
                true,
            )?);
        }
        Ok(Self { layers: out })
    }

    /// # Shapes
    /// `x [.., in]` → `[.., out]`
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        for (i, l) in self.layers.iter().enumerate() {
            x = l.forward(&x)?;
            if i + 1 < self.layers.len() {
                x = gelu(&x)?;
            }
        }
        Ok(x)
    }
}

/// Sizes of a DINO head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DinoHeadConfig {
    /// Prototypes K (the paper: 65,536; small data wants far fewer).
    #[serde(default = "default_out")]
    pub out_dim: usize,
    #[serde(default = "default_hidden")]
    pub hidden_dim: usize,
    #[serde(default = "default_bottleneck")]
    pub bottleneck_dim: usize,
    /// Linear maps before the bottleneck.
    #[serde(default = "default_layers")]
    pub layers: usize,
}

fn default_out() -> usize {
    4096
}
fn default_hidden() -> usize {
    1024
}
fn default_bottleneck() -> usize {
    256
}
fn default_layers() -> usize {
    3
}

impl Default for DinoHeadConfig {
    fn default() -> Self {
        Self {
            out_dim: default_out(),
            hidden_dim: default_hidden(),
            bottleneck_dim: default_bottleneck(),
            layers: default_layers(),
        }
    }
}

/// MLP → L2 normalisation → prototypes with unit-norm rows (`norm_last_layer`).
pub struct DinoHead {
    mlp: MlpHead,
    prototypes: Linear,
}

impl DinoHead {
    pub fn new(
        store: &mut ParamStore,
        prefix: &str,
        d_in: usize,
        c: &DinoHeadConfig,
    ) -> Result<Self> {
        Ok(Self {
            mlp: MlpHead::new(
                store,
                &format!("{prefix}.mlp"),
                d_in,
                c.hidden_dim,
                c.bottleneck_dim,
                c.layers,
            )?,
            prototypes: Linear::new(
                store,
                &format!("{prefix}.prototypes"),
                c.bottleneck_dim,
                c.out_dim,
                false,
            )?,
        })
    }

    /// # Shapes
    /// `x [.., in]` → logits `[.., K]`
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let z = l2_normalise(&self.mlp.forward(x)?)?;
        let w = l2_normalise(&self.prototypes.weight)?;
        let dims = z.dims().to_vec();
        let d = dims[dims.len() - 1];
        let rows = z.elem_count() / d.max(1);
        let y = z.reshape((rows, d))?.matmul(&w.t()?)?;
        let mut out = dims;
        let last = out.len() - 1;
        out[last] = w.dim(0)?;
        Ok(y.reshape(out)?)
    }
}

/// Which encoder output a joint-embedding head reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pool {
    /// The CLS token (DINO, MoCo v3).
    #[default]
    Cls,
    /// The mean of the real patch tokens.
    Mean,
}

impl Pool {
    /// `[B, D]`
    pub fn apply(self, out: &EncoderOutput) -> Result<Tensor> {
        match self {
            Pool::Cls => Ok(out.cls.clone()),
            Pool::Mean => out.mean_patches(),
        }
    }
}
