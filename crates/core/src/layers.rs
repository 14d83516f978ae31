//! Small building blocks: linear, layer norm, multi-head self-attention with a padding
//! mask, GELU MLP, pre-norm block with optional LayerScale, a 3-D convolution. Each is built with
//! `new(store, prefix, ...)` so names mirror timm's ViT.

use crate::ops;
use crate::params::{Decay, Init, ParamStore};
use crate::Result;
use candle_core::{Tensor, D};

/// `y = x W^T + b`, `W [out, in]`.
#[derive(Clone)]
pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl Linear {
    pub fn new(
        store: &mut ParamStore,
        prefix: &str,
        d_in: usize,
        d_out: usize,
        bias: bool,
    ) -> Result<Self> {
        let weight = store.get(
            &format!("{prefix}.weight"),
            &[d_out, d_in],
            Init::XavierUniform,
            Decay::Yes,
        )?;
        let bias = if bias {
            Some(store.get(&format!("{prefix}.bias"), &[d_out], Init::Zeros, Decay::No)?)
        } else {
            None
        };
        Ok(Self { weight, bias })
    }

    /// # Shapes
    /// `x [.., in]` → `[.., out]`
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let d_in = dims[dims.len() - 1];
        let rows = x.elem_count() / d_in.max(1);
        let x2 = x.reshape((rows, d_in))?;
        let y = match &self.bias {
            Some(b) if !ops::composed(x) => crate::linear::linear_bias(&x2, &self.weight, b)?,
            Some(b) => ops::add_bias(&x2.matmul(&self.weight.t()?)?, b)?,
            None => x2.matmul(&self.weight.t()?)?,
        };
        let mut out = dims;
        let last = out.len() - 1;
        out[last] = self.weight.dim(0)?;
        Ok(y.reshape(out)?)
    }
}

/// A `k×k×k` convolution with zero "same" padding and stride 1 on channel-last volumes,
/// computed as one GEMM over the unfolded neighbourhoods (so the backward pass is GEMMs
/// and copies too). `weight [out, k³·in]`, neighbourhood-major (`dz, dy, dx`, then input
/// channel), He-normal initialised.
#[derive(Clone)]
pub struct Conv3d {
    pub weight: Tensor,
    pub bias: Tensor,
    pub kernel: usize,
}

impl Conv3d {
    pub fn new(
        store: &mut ParamStore,
        prefix: &str,
        c_in: usize,
        c_out: usize,
        kernel: usize,
    ) -> Result<Self> {
        if kernel.is_multiple_of(2) {
            return Err(crate::CoreError::Config(format!(
                "{prefix}: convolution kernel must be odd, got {kernel}"
            )));
        }
        let fan_in = kernel.pow(3) * c_in;
        let weight = store.get(
            &format!("{prefix}.weight"),
            &[c_out, fan_in],
            Init::TruncNormal((2.0 / fan_in as f32).sqrt()),
            Decay::Yes,
        )?;
        let bias = store.get(&format!("{prefix}.bias"), &[c_out], Init::Zeros, Decay::No)?;
        Ok(Self {
            weight,
            bias,
            kernel,
        })
    }

    /// # Shapes
    /// `x [B, Z, Y, X, in]` → `[B, Z, Y, X, out]`
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, z, y, w, c) = x.dims5()?;
        let k = self.kernel;
        if k > 1 && !ops::composed(x) {
            return Ok(crate::conv::conv3d(x, &self.weight, &self.bias, k)?);
        }
        let y_out = if k == 1 {
            x.reshape((b * z * y * w, c))?.matmul(&self.weight.t()?)?
        } else {
            ops::unfold3d_composed(x, k)?
                .reshape((b * z * y * w, k * k * k * c))?
                .matmul(&self.weight.t()?)?
        };
        let y_out = ops::add_bias(&y_out, &self.bias)?;
        Ok(y_out.reshape((b, z, y, w, self.weight.dim(0)?))?)
    }
}

#[derive(Clone)]
pub struct LayerNorm {
    pub weight: Tensor,
    pub bias: Tensor,
    pub eps: f32,
}

impl LayerNorm {
    pub fn new(store: &mut ParamStore, prefix: &str, dim: usize, eps: f32) -> Result<Self> {
        let weight = store.get(&format!("{prefix}.weight"), &[dim], Init::Ones, Decay::No)?;
        let bias = store.get(&format!("{prefix}.bias"), &[dim], Init::Zeros, Decay::No)?;
        Ok(Self { weight, bias, eps })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(ops::layer_norm(x, &self.weight, &self.bias, self.eps)?)
    }
}

/// Multi-head self-attention.
#[derive(Clone)]
pub struct Attention {
    pub qkv: Linear,
    pub proj: Linear,
    pub heads: usize,
}

impl Attention {
    pub fn new(
        store: &mut ParamStore,
        prefix: &str,
        dim: usize,
        heads: usize,
        qkv_bias: bool,
    ) -> Result<Self> {
        Ok(Self {
            qkv: Linear::new(store, &format!("{prefix}.qkv"), dim, 3 * dim, qkv_bias)?,
            proj: Linear::new(store, &format!("{prefix}.proj"), dim, dim, true)?,
            heads,
        })
    }

    /// # Shapes
    /// `x [B, N, D]`, `bias [B, N]` (0 for real tokens, a large negative number for
    /// padding) → `[B, N, D]`
    pub fn forward(&self, x: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        let y = crate::attention::fused_attention(&self.qkv.forward(x)?, bias, self.heads)?;
        self.proj.forward(&y)
    }
}

#[derive(Clone)]
pub struct Mlp {
    pub fc1: Linear,
    pub fc2: Linear,
}

impl Mlp {
    pub fn new(store: &mut ParamStore, prefix: &str, dim: usize, hidden: usize) -> Result<Self> {
        Ok(Self {
            fc1: Linear::new(store, &format!("{prefix}.fc1"), dim, hidden, true)?,
            fc2: Linear::new(store, &format!("{prefix}.fc2"), hidden, dim, true)?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.fc2.forward(&ops::gelu(&self.fc1.forward(x)?)?)
    }
}

/// Hyperparameters of a stack of pre-norm blocks.
#[derive(Debug, Clone, Copy)]
pub struct BlockConfig {
    pub dim: usize,
    pub heads: usize,
    pub mlp_ratio: f32,
    pub qkv_bias: bool,
    pub layer_scale: Option<f32>,
    pub eps: f32,
}

/// Pre-norm transformer block: `x + ls1 * attn(norm1(x))`, then `x + ls2 * mlp(norm2(x))`.
#[derive(Clone)]
pub struct Block {
    pub norm1: LayerNorm,
    pub attn: Attention,
    pub ls1: Option<Tensor>,
    pub norm2: LayerNorm,
    pub mlp: Mlp,
    pub ls2: Option<Tensor>,
}

impl Block {
    pub fn new(store: &mut ParamStore, prefix: &str, c: &BlockConfig) -> Result<Self> {
        let ls = |store: &mut ParamStore, name: &str| -> Result<Option<Tensor>> {
            match c.layer_scale {
                Some(v) => Ok(Some(store.get(
                    &format!("{prefix}.{name}.gamma"),
                    &[c.dim],
                    Init::Const(v),
                    Decay::No,
                )?)),
                None => Ok(None),
            }
        };
        let hidden = (c.dim as f32 * c.mlp_ratio).round() as usize;
        Ok(Self {
            norm1: LayerNorm::new(store, &format!("{prefix}.norm1"), c.dim, c.eps)?,
            attn: Attention::new(store, &format!("{prefix}.attn"), c.dim, c.heads, c.qkv_bias)?,
            ls1: ls(store, "ls1")?,
            norm2: LayerNorm::new(store, &format!("{prefix}.norm2"), c.dim, c.eps)?,
            mlp: Mlp::new(store, &format!("{prefix}.mlp"), c.dim, hidden)?,
            ls2: ls(store, "ls2")?,
        })
    }

    pub fn forward(&self, x: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        let scale = |y: Tensor, g: &Option<Tensor>| -> Result<Tensor> {
            Ok(match g {
                Some(g) => y.broadcast_mul(g)?,
                None => y,
            })
        };
        let y = scale(self.attn.forward(&self.norm1.forward(x)?, bias)?, &self.ls1)?;
        let x = (x + y)?;
        let y = scale(self.mlp.forward(&self.norm2.forward(&x)?)?, &self.ls2)?;
        Ok((x + y)?)
    }
}

/// Additive attention bias from a padding mask: `padding [B, N]` (1 = filler) →
/// `[B, N]` with `-1e9` at filler tokens.
pub fn attention_bias(padding: &Tensor) -> Result<Tensor> {
    Ok((padding * -1e9)?)
}

/// Mean over the real tokens: `x [B, N, D]`, `padding [B, N]` → `[B, D]`.
pub fn masked_mean(x: &Tensor, padding: &Tensor) -> Result<Tensor> {
    let keep = (1.0 - padding)?.unsqueeze(D::Minus1)?;
    let sum = x.broadcast_mul(&keep)?.sum(1)?;
    let count = keep.sum(1)?.clamp(1.0, f64::MAX)?;
    Ok(sum.broadcast_div(&count)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};
    use tessera_tokens::Rng;

    /// Direct convolution, channel-last, zero padding.
    fn naive(x: &[f32], dims: [usize; 5], w: &[f32], bias: &[f32], k: usize) -> Vec<f32> {
        let [b, z, y, xx, c] = dims;
        let o = bias.len();
        let h = (k / 2) as isize;
        let mut out = vec![0f32; b * z * y * xx * o];
        for bi in 0..b {
            for zi in 0..z {
                for yi in 0..y {
                    for xi in 0..xx {
                        for oi in 0..o {
                            let mut acc = bias[oi];
                            for dz in 0..k {
                                for dy in 0..k {
                                    for dx in 0..k {
                                        let (sz, sy, sx) = (
                                            zi as isize + dz as isize - h,
                                            yi as isize + dy as isize - h,
                                            xi as isize + dx as isize - h,
                                        );
                                        if sz < 0 || sy < 0 || sx < 0 {
                                            continue;
                                        }
                                        let (sz, sy, sx) = (sz as usize, sy as usize, sx as usize);
                                        if sz >= z || sy >= y || sx >= xx {
                                            continue;
                                        }
                                        for ci in 0..c {
                                            let xv =
                                                x[(((bi * z + sz) * y + sy) * xx + sx) * c + ci];
                                            let wi = ((dz * k + dy) * k + dx) * c + ci;
                                            acc += w[oi * k * k * k * c + wi] * xv;
                                        }
                                    }
                                }
                            }
                            out[(((bi * z + zi) * y + yi) * xx + xi) * o + oi] = acc;
                        }
                    }
                }
            }
        }
        out
    }

    #[test]
    fn conv3d_matches_direct_convolution_and_has_gradients() {
        let dev = Device::Cpu;
        let mut rng = Rng::new(3);
        for k in [1, 3] {
            let dims = [2, 3, 4, 5, 2];
            let mut store = ParamStore::new(k as u64, &dev);
            let conv = Conv3d::new(&mut store, "c", 2, 3, k).unwrap();
            let bias: Vec<f32> = (0..3).map(|_| rng.normal() as f32).collect();
            let conv = Conv3d {
                bias: Tensor::new(bias.as_slice(), &dev).unwrap(),
                ..conv
            };
            let n: usize = dims.iter().product();
            let x: Vec<f32> = (0..n).map(|_| rng.normal() as f32).collect();
            let xt = Var::from_tensor(&Tensor::from_vec(x.clone(), dims.to_vec(), &dev).unwrap())
                .unwrap();
            let y = conv.forward(xt.as_tensor()).unwrap();
            let w: Vec<f32> = conv.weight.flatten_all().unwrap().to_vec1().unwrap();
            let want = naive(&x, dims, &w, &bias, k);
            let got: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
            assert_eq!(y.dims(), &[2, 3, 4, 5, 3]);
            for (a, b) in got.iter().zip(&want) {
                assert!((a - b).abs() < 1e-4, "k={k}: {a} vs {b}");
            }
            // d(sum y)/dx at one voxel: the sum of the weights that reach it.
            let g = y.sum_all().unwrap().backward().unwrap();
            let gx: Vec<f32> = g
                .get(xt.as_tensor())
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let eps = 1e-2;
            let i = 2 * 5 * 2 + 3 * 2 + 1; // an interior voxel's channel 1
            let mut xp = x.clone();
            xp[i] += eps;
            let fd: f32 = (naive(&xp, dims, &w, &bias, k).iter().sum::<f32>()
                - want.iter().sum::<f32>())
                / eps;
            assert!(
                (gx[i] - fd).abs() < 1e-2 * (1.0 + fd.abs()),
                "k={k}: {} vs {fd}",
                gx[i]
            );
        }
        assert!(Conv3d::new(&mut ParamStore::new(0, &dev), "c", 1, 1, 2).is_err());
    }
}
