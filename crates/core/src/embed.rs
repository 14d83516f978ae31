//! Token embedders: how a token's P values become one D-wide vector.
//!
//! `linear` (the default) is ViT's patch projection. `point_net` is Point-MAE's mini-PointNet
//! (Pang et al. 2022, arXiv:2203.06604, `Encoder` in `models/Point_MAE.py`) for tokens that
//! are sets of `points` members of `P / points` values each (a group of Gaussians or points
//! around its centre): a shared MLP per member, the max over members concatenated back onto
//! each member, a second shared MLP, and the max over members again, so the embedding does
//! not depend on the members' order. Point-MAE's batch norms are left out (GELU between the
//! layers instead of BN + ReLU), so a token's embedding never depends on its batch.

use crate::layers::Linear;
use crate::params::ParamStore;
use crate::{ops, CoreError, Result};
use candle_core::{Tensor, D};
use serde::{Deserialize, Serialize};

/// The `[encoder.embed]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum EmbedConfig {
    /// One linear map of the P values (`patch_embed.proj`).
    #[default]
    Linear,
    /// Mini-PointNet over `points` members per token.
    PointNet {
        /// Members per token; P must be a multiple of it.
        points: usize,
        /// Widths of the first shared MLP (`[128, 256]` in Point-MAE).
        #[serde(default = "d_first")]
        first: [usize; 2],
        /// Hidden width of the second shared MLP (512 in Point-MAE); its output is D.
        #[serde(default = "d_second")]
        second: usize,
    },
}

fn d_first() -> [usize; 2] {
    [128, 256]
}
fn d_second() -> usize {
    512
}

impl EmbedConfig {
    pub fn is_linear(&self) -> bool {
        matches!(self, Self::Linear)
    }

    /// Checks the embedder against the token width P.
    pub fn validate(&self, patch_dim: usize) -> Result<()> {
        if let Self::PointNet {
            points,
            first,
            second,
        } = self
        {
            if *points == 0 || !patch_dim.is_multiple_of(*points) {
                return Err(CoreError::Config(format!(
                    "point_net embedder: P = {patch_dim} is not a whole number of {points} members"
                )));
            }
            if first.contains(&0) || *second == 0 {
                return Err(CoreError::Config(
                    "point_net embedder: zero layer width".into(),
                ));
            }
        }
        Ok(())
    }
}

/// Point-MAE's two shared MLPs.
#[derive(Clone)]
pub struct PointNet {
    pub points: usize,
    pub first: [Linear; 2],
    pub second: [Linear; 2],
}

/// The built embedder, parameters under `{prefix}.patch_embed`.
#[derive(Clone)]
pub enum PatchEmbed {
    Linear(Linear),
    PointNet(PointNet),
}

impl PatchEmbed {
    pub fn new(
        cfg: &EmbedConfig,
        store: &mut ParamStore,
        prefix: &str,
        p: usize,
        d: usize,
    ) -> Result<Self> {
        cfg.validate(p)?;
        Ok(match cfg {
            EmbedConfig::Linear => {
                Self::Linear(Linear::new(store, &format!("{prefix}.proj"), p, d, true)?)
            }
            EmbedConfig::PointNet {
                points,
                first,
                second,
            } => {
                let f = p / points;
                let l = |store: &mut ParamStore, name: &str, i, o| {
                    Linear::new(store, &format!("{prefix}.{name}"), i, o, true)
                };
                Self::PointNet(PointNet {
                    points: *points,
                    first: [
                        l(store, "first.0", f, first[0])?,
                        l(store, "first.1", first[0], first[1])?,
                    ],
                    second: [
                        l(store, "second.0", 2 * first[1], *second)?,
                        l(store, "second.1", *second, d)?,
                    ],
                })
            }
        })
    }

    /// # Shapes
    /// `values [B, N, P]` → `[B, N, D]`
    pub fn forward(&self, values: &Tensor) -> Result<Tensor> {
        match self {
            Self::Linear(l) => l.forward(values),
            Self::PointNet(pn) => {
                let (b, n, p) = values.dims3()?;
                let k = pn.points;
                let x = values.reshape((b * n, k, p / k))?;
                let h = pn.first[1].forward(&ops::gelu(&pn.first[0].forward(&x)?)?)?;
                let g = h.max_keepdim(1)?.broadcast_as(h.shape())?;
                let h = Tensor::cat(&[&h, &g], D::Minus1)?;
                let h = pn.second[1].forward(&ops::gelu(&pn.second[0].forward(&h)?)?)?;
                let d = h.dim(D::Minus1)?;
                Ok(h.max(1)?.reshape((b, n, d))?)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn pointnet() -> (ParamStore, PatchEmbed) {
        let mut store = ParamStore::new(3, &Device::Cpu);
        let cfg = EmbedConfig::PointNet {
            points: 4,
            first: [8, 6],
            second: 10,
        };
        let e = PatchEmbed::new(&cfg, &mut store, "patch_embed", 12, 5).unwrap();
        (store, e)
    }

    #[test]
    fn point_net_ignores_member_order_and_trains() {
        let (store, e) = pointnet();
        let v: Vec<f32> = (0..2 * 3 * 12)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0)
            .collect();
        let x = Tensor::from_vec(v.clone(), (2, 3, 12), &Device::Cpu).unwrap();
        let y = e.forward(&x).unwrap();
        assert_eq!(y.dims(), &[2, 3, 5]);
        // swap members 0 and 2 of every token
        let mut w = v.clone();
        for t in w.chunks_exact_mut(12) {
            for j in 0..3 {
                t.swap(j, 6 + j);
            }
        }
        let y2 = e
            .forward(&Tensor::from_vec(w, (2, 3, 12), &Device::Cpu).unwrap())
            .unwrap();
        let d = (y - y2)
            .unwrap()
            .abs()
            .unwrap()
            .max_keepdim(0)
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap();
        assert!(d.to_scalar::<f32>().unwrap() < 1e-5);
        // gradients reach every parameter
        let xv = Var::from_tensor(&x).unwrap();
        let loss = e
            .forward(xv.as_tensor())
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap();
        let grads = loss.backward().unwrap();
        for name in [
            "patch_embed.first.0.weight",
            "patch_embed.first.1.bias",
            "patch_embed.second.0.weight",
            "patch_embed.second.1.weight",
        ] {
            let g = grads
                .get(&store.param(name).unwrap().var)
                .unwrap_or_else(|| panic!("{name}"));
            assert!(
                g.abs()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
                    > 0.0,
                "{name}"
            );
        }
        assert!(EmbedConfig::PointNet {
            points: 5,
            first: [8, 6],
            second: 10
        }
        .validate(12)
        .is_err());
    }
}
