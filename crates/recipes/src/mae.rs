//! Masked autoencoding on any tokens (He et al. 2022, "Masked Autoencoders Are Scalable
//! Vision Learners", arXiv:2111.06377; for spectrograms Audio-MAE, arXiv:2207.06405, and
//! for volumes 3-D MAE).
//!
//! The encoder sees only the visible tokens. A lightweight decoder (own width and depth)
//! receives the projected visible tokens plus a shared mask token at every masked
//! position, each with the Fourier encoding of its coordinates, and predicts the masked
//! tokens' values. The loss is the mean squared error over masked tokens only, optionally
//! against per-token normalised targets (`norm_pix_loss`).

use crate::{Batch, Recipe, Result, StepOutput, ENCODER_PREFIX};
use candle_core::Tensor;
use serde::{Deserialize, Serialize};
use tessera_core::layers::{attention_bias, Block, BlockConfig, LayerNorm, Linear};
use tessera_core::params::{Decay, Init};
use tessera_core::posenc::FourierEncoding;
use tessera_core::{CoreError, Encoder, EncoderConfig, ParamStore, TokenTensors};
use tessera_tokens::{random_mask, MaskConfig, Rng, Tokens};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaeConfig {
    #[serde(default)]
    pub mask: MaskConfig,
    pub decoder_dim: usize,
    pub decoder_depth: usize,
    pub decoder_heads: usize,
    /// Normalise each target token to zero mean, unit variance.
    #[serde(default = "yes")]
    pub norm_pix_loss: bool,
}

fn yes() -> bool {
    true
}

impl Default for MaeConfig {
    fn default() -> Self {
        Self {
            mask: MaskConfig::default(),
            decoder_dim: 128,
            decoder_depth: 2,
            decoder_heads: 4,
            norm_pix_loss: true,
        }
    }
}

pub struct Mae {
    cfg: MaeConfig,
    encoder: Encoder,
    decoder_embed: Linear,
    mask_token: Tensor,
    coord_enc: FourierEncoding,
    blocks: Vec<Block>,
    norm: LayerNorm,
    pred: Linear,
}

impl Mae {
    pub fn new(cfg: &MaeConfig, enc: &EncoderConfig, store: &mut ParamStore) -> Result<Self> {
        if cfg.decoder_heads == 0 || !cfg.decoder_dim.is_multiple_of(cfg.decoder_heads) {
            return Err(CoreError::Config(format!(
                "mae: decoder_dim ({}) must be a multiple of decoder_heads ({})",
                cfg.decoder_dim, cfg.decoder_heads
            )));
        }
        let encoder = Encoder::new(enc, store, ENCODER_PREFIX)?;
        let d = cfg.decoder_dim;
        let bc = BlockConfig {
            dim: d,
            heads: cfg.decoder_heads,
            mlp_ratio: 4.0,
            qkv_bias: true,
            layer_scale: None,
            eps: enc.norm_eps,
        };
        let blocks = (0..cfg.decoder_depth)
            .map(|i| Block::new(store, &format!("mae.decoder_blocks.{i}"), &bc))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            decoder_embed: Linear::new(store, "mae.decoder_embed", enc.dim, d, true)?,
            mask_token: store.get(
                "mae.mask_token",
                &[1, 1, d],
                Init::TruncNormal(0.02),
                Decay::No,
            )?,
            coord_enc: FourierEncoding::new(&enc.coord_scales, d, &enc.fourier, store.device())?,
            blocks,
            norm: LayerNorm::new(store, "mae.decoder_norm", d, enc.norm_eps)?,
            pred: Linear::new(store, "mae.decoder_pred", d, enc.patch_dim, true)?,
            cfg: cfg.clone(),
            encoder,
        })
    }

    /// Per-token normalised targets (`[B, M, P]`), as in MAE's `norm_pix_loss`.
    fn targets(&self, masked: &Tokens) -> Vec<f32> {
        let mut v = masked.values.clone();
        if self.cfg.norm_pix_loss {
            for row in v.chunks_mut(masked.p) {
                let n = row.len() as f32;
                let mean = row.iter().sum::<f32>() / n;
                let var =
                    row.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / (n - 1.0).max(1.0);
                let inv = 1.0 / (var + 1e-6).sqrt();
                row.iter_mut().for_each(|x| *x = (*x - mean) * inv);
            }
        }
        v
    }
}

impl Recipe for Mae {
    fn name(&self) -> &'static str {
        "mae"
    }

    fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    fn loss(&self, batch: &Batch, rng: &mut Rng) -> Result<StepOutput> {
        let tokens = batch
            .views
            .first()
            .ok_or_else(|| CoreError::Config("mae: empty batch".into()))?;
        let m = random_mask(tokens, &self.cfg.mask, rng)?;
        let dev = self.mask_token.device().clone();
        let vis = TokenTensors::from_tokens(&m.visible, &dev)?;
        let msk = TokenTensors::from_tokens(&m.masked, &dev)?;
        let out = self.encoder.forward(&vis)?;

        let (b, nv, nm) = (m.visible.b, m.visible.n, m.masked.n);
        let cls = self.decoder_embed.forward(&out.cls.unsqueeze(1)?)?;
        let visible =
            (self.decoder_embed.forward(&out.patches)? + self.coord_enc.forward(&vis.coords)?)?;
        let queries = self
            .coord_enc
            .forward(&msk.coords)?
            .broadcast_add(&self.mask_token)?;
        let mut x = Tensor::cat(&[cls, visible, queries], 1)?;
        let pad = Tensor::cat(
            &[
                Tensor::zeros((b, 1), vis.padding.dtype(), &dev)?,
                vis.padding.clone(),
                msk.padding.clone(),
            ],
            1,
        )?;
        let bias = attention_bias(&pad)?;
        for blk in &self.blocks {
            x = blk.forward(&x, Some(&bias))?;
        }
        let x = self.norm.forward(&x.narrow(1, 1 + nv, nm)?)?;
        let pred = self.pred.forward(&x)?;
        debug_assert_eq!(pred.dims(), &[b, nm, m.masked.p]);

        let target = Tensor::from_vec(self.targets(&m.masked), (b, nm, m.masked.p), &dev)?;
        let per_token = (pred - target)?.sqr()?.mean(2)?; // [B, M]
        let keep = (1.0 - &msk.padding)?;
        let n_real = keep.sum_all()?.to_scalar::<f32>()?.max(1.0);
        let loss = ((per_token * keep)?.sum_all()? / n_real as f64)?;
        Ok(StepOutput {
            loss,
            metrics: vec![("masked_tokens".into(), n_real as f64)],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use tessera_tokens::SampleTokens;

    #[test]
    fn loss_is_finite_and_has_gradients_for_encoder_and_decoder() {
        let enc = EncoderConfig::preset("nano", 8, vec![4.0]).unwrap();
        let mut store = ParamStore::new(0, &Device::Cpu);
        let mae = Mae::new(&MaeConfig::default(), &enc, &mut store).unwrap();
        let mut rng = Rng::new(1);
        let samples: Vec<SampleTokens> = (0..3)
            .map(|i| {
                let n = 10 + i;
                let v = (0..n * 8).map(|_| rng.normal() as f32).collect();
                let c = (0..n).map(|j| j as f32 * 0.1).collect();
                SampleTokens::new(v, c, n, 8, 1).unwrap()
            })
            .collect();
        let batch = Batch {
            views: vec![Tokens::from_samples(&samples).unwrap()],
        };
        let out = mae.loss(&batch, &mut Rng::new(2)).unwrap();
        let l = out.loss.to_scalar::<f32>().unwrap();
        assert!(l.is_finite() && l > 0.0);
        let grads = out.loss.backward().unwrap();
        for name in [
            "encoder.blocks.0.attn.qkv.weight",
            "encoder.patch_embed.proj.weight",
            "mae.mask_token",
            "mae.decoder_pred.weight",
        ] {
            let p = store.param(name).unwrap();
            let g = grads
                .get(&p.var)
                .unwrap_or_else(|| panic!("no grad for {name}"));
            let norm = g
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(norm > 0.0, "{name}");
        }
    }
}
