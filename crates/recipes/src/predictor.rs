//! The narrow transformer that MAE's decoder and I-JEPA's predictor share: encoder outputs
//! of the visible (context) tokens are projected to the predictor width and given the
//! Fourier encoding of their coordinates; every query (a masked or target token) is one
//! shared learned mask token plus the encoding of its own coordinates; after the blocks,
//! the queries' outputs are normalised and projected to `out` values per token.

use crate::Result;
use candle_core::Tensor;
use tessera_core::layers::{attention_bias, Block, BlockConfig, LayerNorm, Linear};
use tessera_core::params::{Decay, Init};
use tessera_core::posenc::FourierEncoding;
use tessera_core::{CoreError, Encoder, EncoderConfig, EncoderOutput, ParamStore, TokenTensors};
use tessera_tokens::MaskedBatch;

/// Width, depth and heads of a predictor.
pub struct PredictorShape {
    pub dim: usize,
    pub depth: usize,
    pub heads: usize,
    /// Values predicted per query.
    pub out: usize,
}

pub struct Predictor {
    embed: Linear,
    mask_token: Tensor,
    coord_enc: FourierEncoding,
    blocks: Vec<Block>,
    norm: LayerNorm,
    pred: Linear,
}

impl Predictor {
    /// Parameters `{prefix}.decoder_embed`, `.mask_token`, `.decoder_blocks.{i}`,
    /// `.decoder_norm`, `.decoder_pred` (MAE's names under `mae`).
    pub fn new(
        store: &mut ParamStore,
        prefix: &str,
        enc: &EncoderConfig,
        s: &PredictorShape,
        recipe: &str,
    ) -> Result<Self> {
        if s.heads == 0 || !s.dim.is_multiple_of(s.heads) {
            return Err(CoreError::Config(format!(
                "{recipe}: predictor width ({}) must be a multiple of its heads ({})",
                s.dim, s.heads
            )));
        }
        let bc = BlockConfig {
            dim: s.dim,
            heads: s.heads,
            mlp_ratio: 4.0,
            qkv_bias: true,
            layer_scale: None,
            eps: enc.norm_eps,
        };
        let blocks = (0..s.depth)
            .map(|i| Block::new(store, &format!("{prefix}.decoder_blocks.{i}"), &bc))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            embed: Linear::new(
                store,
                &format!("{prefix}.decoder_embed"),
                enc.dim,
                s.dim,
                true,
            )?,
            mask_token: store.get(
                &format!("{prefix}.mask_token"),
                &[1, 1, s.dim],
                Init::TruncNormal(0.02),
                Decay::No,
            )?,
            coord_enc: FourierEncoding::new(
                &enc.coord_scales,
                s.dim,
                &enc.fourier,
                store.device(),
            )?,
            blocks,
            norm: LayerNorm::new(
                store,
                &format!("{prefix}.decoder_norm"),
                s.dim,
                enc.norm_eps,
            )?,
            pred: Linear::new(store, &format!("{prefix}.decoder_pred"), s.dim, s.out, true)?,
        })
    }

    /// Predictions `[B, M, out]` at the masked tokens of `m` (`M` = `m.masked.n`, padded
    /// rows included) from `encoder`, which sees only `m.visible`: the student pass of
    /// MAE, I-JEPA and data2vec.
    pub fn predict_masked(&self, encoder: &Encoder, m: &MaskedBatch) -> Result<Tensor> {
        let dev = self.mask_token.device().clone();
        let vis = TokenTensors::from_tokens(&m.visible, &dev)?;
        let queries = TokenTensors::from_tokens(&m.masked, &dev)?;
        self.forward(&encoder.forward(&vis)?, &vis, &queries)
    }

    /// Predictions for the queries, `[B, M, out]`, from the encoder's output on the
    /// visible tokens `vis` (its CLS token included) and the queries' coordinates and
    /// padding `queries`.
    pub fn forward(
        &self,
        out: &EncoderOutput,
        vis: &TokenTensors,
        queries: &TokenTensors,
    ) -> Result<Tensor> {
        let dev = self.mask_token.device().clone();
        let (b, nv, _) = out.patches.dims3()?;
        let nm = queries.coords.dim(1)?;
        let cls = self.embed.forward(&out.cls.unsqueeze(1)?)?;
        let visible = (self.embed.forward(&out.patches)? + self.coord_enc.forward(&vis.coords)?)?;
        let q = self
            .coord_enc
            .forward(&queries.coords)?
            .broadcast_add(&self.mask_token)?;
        let mut x = Tensor::cat(&[cls, visible, q], 1)?;
        let pad = Tensor::cat(
            &[
                Tensor::zeros((b, 1), vis.padding.dtype(), &dev)?,
                vis.padding.clone(),
                queries.padding.clone(),
            ],
            1,
        )?;
        let bias = attention_bias(&pad)?;
        for blk in &self.blocks {
            x = blk.forward(&x, Some(&bias))?;
        }
        let x = self.norm.forward(&x.narrow(1, 1 + nv, nm)?)?;
        self.pred.forward(&x)
    }
}

/// Rows of `x [B, N, D]` at each sample's token indices, padded with token 0 to `m` rows:
/// `[B, m, D]` (the padded rows are the caller's to mask out).
pub fn gather_tokens(x: &Tensor, idx: &[Vec<usize>], m: usize) -> Result<Tensor> {
    let (b, n, d) = x.dims3()?;
    let mut flat = Vec::with_capacity(b * m);
    for (i, rows) in idx.iter().enumerate().take(b) {
        for slot in 0..m {
            flat.push((i * n + rows.get(slot).copied().unwrap_or(0)) as u32);
        }
    }
    let flat = Tensor::from_vec(flat, b * m, x.device())?;
    Ok(x.reshape((b * n, d))?
        .index_select(&flat, 0)?
        .reshape((b, m, d))?)
}

/// 1 for the real rows of a padded token set, 0 for filler: `[B, N]` as f32.
pub fn keep_of(t: &tessera_tokens::Tokens, dev: &candle_core::Device) -> Result<Tensor> {
    let keep: Vec<f32> = t.padding.iter().map(|&x| 1.0 - x as f32).collect();
    Ok(Tensor::from_vec(keep, (t.b, t.n), dev)?)
}
