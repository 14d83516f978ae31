//! Projection heads shared by the joint-embedding recipes: a GELU MLP (SimCLR, MoCo v3
//! projector and predictor) and DINO's head (MLP → L2-normalised bottleneck →
//! weight-normalised prototypes; Caron et al. 2021, arXiv:2104.14294).

use crate::losses::l2_normalise;
use crate::Result;
use candle_core::Tensor;
use serde::{Deserialize, Serialize};
use tessera_core::layers::Linear;
use tessera_core::ops::gelu;
use tessera_core::params::{Decay, Init};
use tessera_core::EncoderOutput;
use tessera_core::ParamStore;

/// `layers` linear maps `in → hidden → … → out` with GELU between them, optionally each
/// hidden layer batch-normalised before its GELU (training-mode statistics of the batch,
/// as the heads of MoCo v3 and DINO's `use_bn_in_head`; heads are never exported, so no
/// running statistics are kept).
pub struct MlpHead {
    layers: Vec<Linear>,
    norms: Vec<(Tensor, Tensor)>,
}

impl MlpHead {
    pub fn new(
        store: &mut ParamStore,
        prefix: &str,
        d_in: usize,
        hidden: usize,
        d_out: usize,
        layers: usize,
        batch_norm: bool,
    ) -> Result<Self> {
        let layers = layers.max(1);
        let mut out = Vec::with_capacity(layers);
        let mut norms = Vec::new();
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
            if batch_norm && i + 1 < layers {
                let p = |n: &str| format!("{prefix}.bn.{i}.{n}");
                norms.push((
                    store.get(&p("weight"), &[b], Init::Ones, Decay::No)?,
                    store.get(&p("bias"), &[b], Init::Zeros, Decay::No)?,
                ));
            }
        }
        Ok(Self { layers: out, norms })
    }

    /// # Shapes
    /// `x [.., in]` → `[.., out]`
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        for (i, l) in self.layers.iter().enumerate() {
            x = l.forward(&x)?;
            if i + 1 < self.layers.len() {
                if let Some((g, b)) = self.norms.get(i) {
                    x = batch_norm(&x, g, b)?;
                }
                x = gelu(&x)?;
            }
        }
        Ok(x)
    }
}

/// Every feature of `x [.., D]` standardised over all rows of the batch, then scaled and
/// shifted: `(x − mean) / sqrt(var + 1e-5) · g + b`.
fn batch_norm(x: &Tensor, g: &Tensor, b: &Tensor) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let d = dims[dims.len() - 1];
    let rows = x.reshape((x.elem_count() / d.max(1), d))?;
    let mean = rows.mean_keepdim(0)?;
    let c = rows.broadcast_sub(&mean)?;
    let var = c.sqr()?.mean_keepdim(0)?;
    let y = c
        .broadcast_div(&(var + 1e-5)?.sqrt()?)?
        .broadcast_mul(g)?
        .broadcast_add(b)?;
    Ok(y.reshape(dims)?)
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
    /// Batch-normalise the hidden layers (DINO's `use_bn_in_head`).
    #[serde(default)]
    pub batch_norm: bool,
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
            batch_norm: false,
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
                c.batch_norm,
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

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use tessera_tokens::Rng;

    #[test]
    fn batch_norm_standardises_each_feature_over_the_batch() {
        let dev = Device::Cpu;
        let mut rng = Rng::new(2);
        let v: Vec<f32> = (0..2 * 5 * 3)
            .map(|i| 3.0 + (i % 3) as f32 * rng.normal() as f32)
            .collect();
        let x = Tensor::from_vec(v, (2, 5, 3), &dev).unwrap();
        let g = Tensor::ones(3, candle_core::DType::F32, &dev).unwrap();
        let b = Tensor::zeros(3, candle_core::DType::F32, &dev).unwrap();
        let y = batch_norm(&x, &g, &b).unwrap().reshape((10, 3)).unwrap();
        let mean = y.mean(0).unwrap().to_vec1::<f32>().unwrap();
        let var = y.sqr().unwrap().mean(0).unwrap().to_vec1::<f32>().unwrap();
        for f in 1..3 {
            assert!(
                mean[f].abs() < 1e-5 && (var[f] - 1.0).abs() < 1e-3,
                "{mean:?} {var:?}"
            );
        }
        // Feature 0 is constant: it maps to 0, not to a division by zero.
        assert!(mean[0].abs() < 1e-6 && var[0] < 1e-6);
    }

    #[test]
    fn dino_head_logits_are_cosines() {
        let mut store = ParamStore::new(0, &Device::Cpu);
        let cfg = DinoHeadConfig {
            out_dim: 7,
            hidden_dim: 8,
            bottleneck_dim: 4,
            layers: 2,
            batch_norm: true,
        };
        let head = DinoHead::new(&mut store, "h", 6, &cfg).unwrap();
        let x = Tensor::from_vec(
            (0..18).map(|i| (i as f32).sin() * 5.0).collect::<Vec<_>>(),
            (3, 6),
            &Device::Cpu,
        )
        .unwrap();
        let y = head.forward(&x).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!((y.len(), y[0].len()), (3, 7));
        assert!(y.iter().flatten().all(|v| v.abs() <= 1.0 + 1e-5));
        assert!(store.param("h.mlp.bn.0.weight").is_some());
    }
}
