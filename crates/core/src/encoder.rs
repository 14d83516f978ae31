//! The shared encoder: a pre-norm ViT (Dosovitskiy et al. 2021, arXiv:2010.11929) over
//! tokens with physical coordinates, with optional register tokens (Darcet et al. 2024,
//! arXiv:2309.16588) and LayerScale (Touvron et al. 2021, arXiv:2103.17239).
//!
//! Values are embedded by a linear layer (`patch_embed.proj`) or another
//! [`PatchEmbed`](crate::embed::PatchEmbed) (`[encoder.embed]`), coordinates by the
//! deterministic [`FourierEncoding`](crate::posenc::FourierEncoding) (plus an optional
//! learned linear map `coord_embed.proj`); a CLS token and R registers are prepended.

use crate::embed::{EmbedConfig, PatchEmbed};
use crate::layers::{attention_bias, masked_mean, Block, BlockConfig, LayerNorm, Linear};
use crate::params::{Decay, Init, ParamStore};
use crate::posenc::{FourierConfig, FourierEncoding};
use crate::{no_grad, CoreError, Result, TokenTensors};
use candle_core::{Tensor, D};
use serde::{Deserialize, Serialize};

/// Encoder hyperparameters. Sizes come from named presets ([`EncoderConfig::preset`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncoderConfig {
    /// Values per token (P).
    pub patch_dim: usize,
    /// Typical extent of each coordinate axis, in its unit (K = its length).
    pub coord_scales: Vec<f32>,
    pub dim: usize,
    pub depth: usize,
    pub heads: usize,
    #[serde(default = "default_mlp_ratio")]
    pub mlp_ratio: f32,
    #[serde(default = "default_true")]
    pub qkv_bias: bool,
    /// LayerScale initial value; `None` disables it.
    #[serde(default)]
    pub layer_scale: Option<f32>,
    #[serde(default)]
    pub registers: usize,
    #[serde(default = "default_eps")]
    pub norm_eps: f32,
    #[serde(default)]
    pub fourier: FourierConfig,
    /// Adds a learned linear map on top of the Fourier coordinate encoding.
    #[serde(default)]
    pub learned_coords: bool,
    /// How token values are embedded (linear by default).
    #[serde(default, skip_serializing_if = "EmbedConfig::is_linear")]
    pub embed: EmbedConfig,
}

fn default_mlp_ratio() -> f32 {
    4.0
}
fn default_true() -> bool {
    true
}
fn default_eps() -> f32 {
    1e-6
}

/// Named sizes: (dim, depth, heads).
pub const PRESETS: &[(&str, usize, usize, usize)] = &[
    ("nano", 128, 4, 4),
    ("micro", 192, 6, 3),
    ("tiny", 192, 12, 3),
    ("small", 384, 12, 6),
    ("base", 768, 12, 12),
];

impl EncoderConfig {
    /// A named size (`nano`, `micro`, `tiny`, `small`, `base`) for `P` values and the given
    /// coordinate scales.
    pub fn preset(name: &str, patch_dim: usize, coord_scales: Vec<f32>) -> Result<Self> {
        let (_, dim, depth, heads) = PRESETS.iter().find(|p| p.0 == name).ok_or_else(|| {
            CoreError::Config(format!(
                "unknown encoder size `{name}` (known: nano, micro, tiny, small, base)"
            ))
        })?;
        Ok(Self {
            patch_dim,
            coord_scales,
            dim: *dim,
            depth: *depth,
            heads: *heads,
            mlp_ratio: 4.0,
            qkv_bias: true,
            layer_scale: None,
            registers: 0,
            norm_eps: 1e-6,
            fourier: FourierConfig::default(),
            learned_coords: false,
            embed: EmbedConfig::Linear,
        })
    }

    pub fn validate(&self) -> Result<()> {
        if self.dim == 0 || self.heads == 0 || !self.dim.is_multiple_of(self.heads) {
            return Err(CoreError::Config(format!(
                "dim ({}) must be a positive multiple of heads ({})",
                self.dim, self.heads
            )));
        }
        if self.patch_dim == 0 || self.coord_scales.is_empty() {
            return Err(CoreError::Config(
                "patch_dim and coord_scales must be non-empty".into(),
            ));
        }
        self.embed.validate(self.patch_dim)
    }

    pub fn block(&self) -> BlockConfig {
        BlockConfig {
            dim: self.dim,
            heads: self.heads,
            mlp_ratio: self.mlp_ratio,
            qkv_bias: self.qkv_bias,
            layer_scale: self.layer_scale,
            eps: self.norm_eps,
        }
    }
}

/// What the encoder returns (DINOv2-style typed output).
pub struct EncoderOutput {
    /// `[B, D]`
    pub cls: Tensor,
    /// `[B, R, D]` (R may be 0)
    pub registers: Tensor,
    /// `[B, N, D]`, after the final norm
    pub patches: Tensor,
    /// `[B, N]`, 1 = filler
    pub padding: Tensor,
    /// Each block's output at the patch tokens, `[B, N, D]` before the final norm (empty
    /// unless [`Forward::hidden_states`] was asked for).
    pub hidden: Vec<Tensor>,
}

/// Options of [`Encoder::forward_with`].
#[derive(Default, Clone, Copy)]
pub struct Forward<'a> {
    /// `(mask [B, N], mask_token [1, 1, D])`: where the mask is 1, the token's value
    /// embedding is replaced by the mask token (its coordinates still count).
    pub mask: Option<(&'a Tensor, &'a Tensor)>,
    /// Return every block's output in [`EncoderOutput::hidden`].
    pub hidden_states: bool,
}

impl EncoderOutput {
    /// Mean of the real patch tokens: `[B, D]`.
    pub fn mean_patches(&self) -> Result<Tensor> {
        masked_mean(&self.patches, &self.padding)
    }
}

/// `prefix.name`, or `name` when the prefix is empty.
fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

#[derive(Clone)]
pub struct Encoder {
    pub cfg: EncoderConfig,
    pub patch_embed: PatchEmbed,
    pub coord_enc: FourierEncoding,
    pub coord_proj: Option<Linear>,
    pub cls_token: Tensor,
    pub reg_token: Option<Tensor>,
    pub blocks: Vec<Block>,
    pub norm: LayerNorm,
}

impl Encoder {
    /// The device the encoder's parameters live on.
    pub fn device(&self) -> &candle_core::Device {
        self.cls_token.device()
    }

    /// Builds (or re-binds) the encoder's parameters under `prefix` (e.g. `encoder`).
    pub fn new(cfg: &EncoderConfig, store: &mut ParamStore, prefix: &str) -> Result<Self> {
        cfg.validate()?;
        let p = |s: &str| join(prefix, s);
        let d = cfg.dim;
        let coord_enc = FourierEncoding::new(&cfg.coord_scales, d, &cfg.fourier, store.device())?;
        let coord_proj = if cfg.learned_coords {
            Some(Linear::new(store, &p("coord_embed.proj"), d, d, true)?)
        } else {
            None
        };
        let reg_token = if cfg.registers > 0 {
            Some(store.get(
                &p("reg_token"),
                &[1, cfg.registers, d],
                Init::TruncNormal(0.02),
                Decay::No,
            )?)
        } else {
            None
        };
        let bc = cfg.block();
        let blocks = (0..cfg.depth)
            .map(|i| Block::new(store, &p(&format!("blocks.{i}")), &bc))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            cfg: cfg.clone(),
            patch_embed: PatchEmbed::new(&cfg.embed, store, &p("patch_embed"), cfg.patch_dim, d)?,
            coord_enc,
            coord_proj,
            cls_token: store.get(
                &p("cls_token"),
                &[1, 1, d],
                Init::TruncNormal(0.02),
                Decay::No,
            )?,
            reg_token,
            blocks,
            norm: LayerNorm::new(store, &p("norm"), d, cfg.norm_eps)?,
        })
    }

    /// Layer-wise learning-rate decay for fine-tuning (BEiT, arXiv:2106.08254; MAE's
    /// fine-tuning recipe): block `i` of `L` learns at `decay^(L − i)` times the scheduled
    /// rate, the embeddings (patch, coordinate, CLS and register tokens) at `decay^(L + 1)`,
    /// the final norm (and every parameter outside `prefix`, such as a task head) at 1.
    pub fn set_layer_decay(&self, store: &mut ParamStore, prefix: &str, decay: f64) {
        let p = |s: &str| join(prefix, s);
        let depth = self.blocks.len() as i32;
        for name in ["patch_embed", "coord_embed", "cls_token", "reg_token"] {
            store.set_lr_scale(&p(name), decay.powi(depth + 1));
        }
        for i in 0..depth {
            store.set_lr_scale(&p(&format!("blocks.{i}")), decay.powi(depth - i));
        }
    }

    /// Embeds values and coordinates: `[B, N, D]` (no CLS).
    pub fn embed_tokens(&self, values: &Tensor, coords: &Tensor) -> Result<Tensor> {
        self.embed_masked(values, coords, None)
    }

    /// [`Encoder::embed_tokens`], with the value embedding of the tokens where `mask` is 1
    /// replaced by `mask_token` (BEiT/iBOT/data2vec); coordinates are still added.
    fn embed_masked(
        &self,
        values: &Tensor,
        coords: &Tensor,
        mask: Option<(&Tensor, &Tensor)>,
    ) -> Result<Tensor> {
        let (_, _, p) = values.dims3()?;
        let (_, _, k) = coords.dims3()?;
        if p != self.cfg.patch_dim {
            return Err(CoreError::Shape {
                what: "token width P".into(),
                expected: self.cfg.patch_dim.to_string(),
                got: p.to_string(),
            });
        }
        if k != self.cfg.coord_scales.len() {
            return Err(CoreError::Shape {
                what: "coordinate width K".into(),
                expected: self.cfg.coord_scales.len().to_string(),
                got: k.to_string(),
            });
        }
        let mut c = self.coord_enc.forward(coords)?;
        if let Some(proj) = &self.coord_proj {
            c = proj.forward(&c)?;
        }
        let mut v = self.patch_embed.forward(values)?;
        if let Some((mask, token)) = mask {
            let m = mask.to_dtype(v.dtype())?.unsqueeze(D::Minus1)?; // [B, N, 1]
            v = (v.broadcast_mul(&(1.0 - &m)?)? + m.broadcast_mul(token)?)?;
        }
        Ok((v + c)?)
    }

    /// # Shapes
    /// `values [B, N, P]`, `coords [B, N, K]`, `padding [B, N]` → [`EncoderOutput`].
    pub fn forward(&self, t: &TokenTensors) -> Result<EncoderOutput> {
        self.forward_with(t, &Forward::default())
    }

    /// [`Encoder::forward`] with options: mask tokens in place of chosen inputs, and every
    /// block's output on request.
    pub fn forward_with(&self, t: &TokenTensors, opts: &Forward) -> Result<EncoderOutput> {
        let x = self.embed_masked(&t.values, &t.coords, opts.mask)?;
        let (b, n, d) = x.dims3()?;
        let r = self.cfg.registers;
        let mut parts = vec![self.cls_token.broadcast_as((b, 1, d))?];
        if let Some(reg) = &self.reg_token {
            parts.push(reg.broadcast_as((b, r, d))?);
        }
        parts.push(x);
        let mut x = Tensor::cat(&parts, 1)?;
        let pad = Tensor::cat(
            &[
                Tensor::zeros((b, 1 + r), t.padding.dtype(), t.padding.device())?,
                t.padding.clone(),
            ],
            1,
        )?;
        let bias = attention_bias(&pad)?;
        let mut hidden = Vec::new();
        for blk in &self.blocks {
            x = blk.forward(&x, Some(&bias))?;
            if opts.hidden_states {
                hidden.push(x.narrow(1, 1 + r, n)?);
            }
        }
        let x = self.norm.forward(&x)?;
        Ok(EncoderOutput {
            cls: x.narrow(1, 0, 1)?.squeeze(1)?,
            registers: x.narrow(1, 1, r)?,
            patches: x.narrow(1, 1 + r, n)?,
            padding: t.padding.clone(),
            hidden,
        })
    }

    /// Frozen-feature embedding for probes: `[B, 2D]` = concat(CLS, mean of patches).
    /// Runs without recording a graph ([`no_grad`]): each layer's activations are freed as
    /// soon as the next layer has used them, and the result cannot be differentiated.
    pub fn embed(&self, t: &TokenTensors) -> Result<Tensor> {
        no_grad(|| {
            let out = self.forward(t)?;
            Ok(Tensor::cat(
                &[out.cls.clone(), out.mean_patches()?],
                D::Minus1,
            )?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use tessera_tokens::{Rng, SampleTokens, Tokens};

    fn sample(n: usize, rng: &mut Rng) -> SampleTokens {
        let values = (0..n * 6).map(|_| rng.normal() as f32).collect();
        let coords = (0..n * 2).map(|_| rng.uniform() as f32 * 10.0).collect();
        SampleTokens::new(values, coords, n, 6, 2).unwrap()
    }

    fn encoder(registers: usize) -> Encoder {
        let mut cfg = EncoderConfig::preset("nano", 6, vec![10.0, 10.0]).unwrap();
        cfg.registers = registers;
        cfg.layer_scale = Some(0.5);
        let mut store = ParamStore::new(0, &Device::Cpu);
        Encoder::new(&cfg, &mut store, "encoder").unwrap()
    }

    #[test]
    fn layer_decay_scales_by_depth() {
        let mut cfg = EncoderConfig::preset("nano", 6, vec![10.0, 10.0]).unwrap();
        cfg.depth = 11; // `blocks.1` must not also match `blocks.10`
        cfg.registers = 1;
        let mut store = ParamStore::new(0, &Device::Cpu);
        let enc = Encoder::new(&cfg, &mut store, "encoder").unwrap();
        store
            .get(
                "head.w",
                &[2],
                crate::params::Init::Zeros,
                crate::params::Decay::Yes,
            )
            .unwrap();
        enc.set_layer_decay(&mut store, "encoder", 0.5);
        let scale = |n: &str| store.param(n).unwrap().lr_scale;
        assert_eq!(scale("encoder.patch_embed.proj.weight"), 0.5f64.powi(12));
        assert_eq!(scale("encoder.cls_token"), 0.5f64.powi(12));
        assert_eq!(scale("encoder.reg_token"), 0.5f64.powi(12));
        assert_eq!(scale("encoder.blocks.0.attn.qkv.weight"), 0.5f64.powi(11));
        assert_eq!(scale("encoder.blocks.1.attn.qkv.weight"), 0.5f64.powi(10));
        assert_eq!(scale("encoder.blocks.10.mlp.fc1.weight"), 0.5);
        assert_eq!(scale("encoder.norm.weight"), 1.0);
        assert_eq!(scale("head.w"), 1.0);
    }

    #[test]
    fn shapes_and_padding_invariance() {
        let enc = encoder(2);
        let mut rng = Rng::new(5);
        let a = sample(7, &mut rng);
        let b = sample(3, &mut rng);
        let batch = Tokens::from_samples(&[a.clone(), b.clone()]).unwrap();
        let out = enc
            .forward(&TokenTensors::from_tokens(&batch, &Device::Cpu).unwrap())
            .unwrap();
        assert_eq!(out.cls.dims(), &[2, 128]);
        assert_eq!(out.patches.dims(), &[2, 7, 128]);
        assert_eq!(out.registers.dims(), &[2, 2, 128]);
        // The short sample alone gives the same CLS as inside the padded batch.
        let alone = Tokens::from_samples(&[b]).unwrap();
        let out1 = enc
            .forward(&TokenTensors::from_tokens(&alone, &Device::Cpu).unwrap())
            .unwrap();
        let c_batch: Vec<f32> = out.cls.get(1).unwrap().to_vec1().unwrap();
        let c_alone: Vec<f32> = out1.cls.get(0).unwrap().to_vec1().unwrap();
        for (x, y) in c_batch.iter().zip(&c_alone) {
            assert!((x - y).abs() < 1e-4, "{x} vs {y}");
        }
        let m_batch: Vec<f32> = out
            .mean_patches()
            .unwrap()
            .get(1)
            .unwrap()
            .to_vec1()
            .unwrap();
        let m_alone: Vec<f32> = out1
            .mean_patches()
            .unwrap()
            .get(0)
            .unwrap()
            .to_vec1()
            .unwrap();
        for (x, y) in m_batch.iter().zip(&m_alone) {
            assert!((x - y).abs() < 1e-4);
        }
    }

    #[test]
    fn token_order_does_not_matter_for_cls() {
        let enc = encoder(0);
        let mut rng = Rng::new(8);
        let a = sample(5, &mut rng);
        let rev = a.select(&[4, 3, 2, 1, 0]);
        let f = |s: SampleTokens| -> Vec<f32> {
            let t = Tokens::from_samples(&[s]).unwrap();
            enc.forward(&TokenTensors::from_tokens(&t, &Device::Cpu).unwrap())
                .unwrap()
                .cls
                .get(0)
                .unwrap()
                .to_vec1()
                .unwrap()
        };
        for (x, y) in f(a).iter().zip(&f(rev)) {
            assert!((x - y).abs() < 1e-4);
        }
    }

    #[test]
    fn mask_tokens_replace_values_and_hidden_states_are_returned() {
        let enc = encoder(1);
        let mut rng = Rng::new(9);
        let a = sample(6, &mut rng);
        let dev = Device::Cpu;
        let t = TokenTensors::from_tokens(
            &Tokens::from_samples(std::slice::from_ref(&a)).unwrap(),
            &dev,
        )
        .unwrap();
        let token = Tensor::ones((1, 1, 128), candle_core::DType::F32, &dev).unwrap();
        let flat = |x: &Tensor| x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let plain = enc.forward(&t).unwrap();
        // No token masked: the same output; hidden states on request, one per block.
        let none = Tensor::zeros((1, 6), candle_core::DType::F32, &dev).unwrap();
        let out = enc
            .forward_with(
                &t,
                &Forward {
                    mask: Some((&none, &token)),
                    hidden_states: true,
                },
            )
            .unwrap();
        assert_eq!(flat(&out.patches), flat(&plain.patches));
        assert!(plain.hidden.is_empty());
        assert_eq!(out.hidden.len(), enc.cfg.depth);
        let normed = enc.norm.forward(&out.hidden[enc.cfg.depth - 1]).unwrap();
        for (x, y) in flat(&normed).iter().zip(flat(&plain.patches)) {
            assert!((x - y).abs() < 1e-5);
        }
        // Token 2 masked: its values no longer matter, and the output changes.
        let mask = Tensor::new(&[[0f32, 0., 1., 0., 0., 0.]], &dev).unwrap();
        let run = |s: &SampleTokens| {
            let t = TokenTensors::from_tokens(
                &Tokens::from_samples(std::slice::from_ref(s)).unwrap(),
                &dev,
            )
            .unwrap();
            let o = enc
                .forward_with(
                    &t,
                    &Forward {
                        mask: Some((&mask, &token)),
                        hidden_states: false,
                    },
                )
                .unwrap();
            flat(&o.cls)
        };
        let mut b = a.clone();
        b.values[2 * 6..3 * 6].iter_mut().for_each(|v| *v += 5.0);
        assert_eq!(run(&a), run(&b));
        assert_ne!(run(&a), flat(&plain.cls));
    }

    #[test]
    fn wrong_widths_are_errors() {
        let enc = encoder(0);
        let t = Tokens::from_samples(&[
            SampleTokens::new(vec![0.0; 10], vec![0.0; 4], 2, 5, 2).unwrap()
        ])
        .unwrap();
        assert!(enc
            .forward(&TokenTensors::from_tokens(&t, &Device::Cpu).unwrap())
            .is_err());
        assert!(EncoderConfig::preset("huge", 6, vec![1.0]).is_err());
    }
}

/// How a model card names an encoder: a size preset plus optional overrides. The token
/// widths (P, coordinate scales) come from the domain's tokenizer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncoderSpec {
    pub size: String,
    #[serde(default)]
    pub dim: Option<usize>,
    #[serde(default)]
    pub depth: Option<usize>,
    #[serde(default)]
    pub heads: Option<usize>,
    #[serde(default)]
    pub registers: usize,
    #[serde(default)]
    pub layer_scale: Option<f32>,
    #[serde(default)]
    pub learned_coords: bool,
    #[serde(default)]
    pub fourier: FourierConfig,
    #[serde(default, skip_serializing_if = "EmbedConfig::is_linear")]
    pub embed: EmbedConfig,
}

impl EncoderSpec {
    pub fn resolve(&self, patch_dim: usize, coord_scales: Vec<f32>) -> Result<EncoderConfig> {
        let mut c = EncoderConfig::preset(&self.size, patch_dim, coord_scales)?;
        c.dim = self.dim.unwrap_or(c.dim);
        c.depth = self.depth.unwrap_or(c.depth);
        c.heads = self.heads.unwrap_or(c.heads);
        c.registers = self.registers;
        c.layer_scale = self.layer_scale;
        c.learned_coords = self.learned_coords;
        c.fourier = self.fourier;
        c.embed = self.embed.clone();
        c.validate()?;
        Ok(c)
    }
}
