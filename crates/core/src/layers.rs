//! Small building blocks: linear, layer norm, multi-head self-attention with a padding
//! mask, GELU MLP, pre-norm block with optional LayerScale. Each is built with
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
        let y = x.reshape((rows, d_in))?.matmul(&self.weight.t()?)?;
        let y = match &self.bias {
            Some(b) => ops::add_bias(&y, b)?,
            None => y,
        };
        let mut out = dims;
        let last = out.len() - 1;
        out[last] = self.weight.dim(0)?;
        Ok(y.reshape(out)?)
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
