//! Volume Fusion on any tokens (Wang et al. 2023, "MIS-FM: 3D Medical Image Segmentation
//! using Foundation Models Pretrained on a Large-Scale Unannotated Dataset",
//! arXiv:2306.16925).
//!
//! MIS-FM fuses a foreground sub-volume into a background sub-volume,
//! `x = α·fg + (1 − α)·bg`, with a voxel-wise α that is piecewise constant over random boxes
//! and takes the discrete values `k / (K − 1)`, `k ∈ 0..K` (α = 0 outside every box); the
//! network segments each voxel's α class (K-way, Dice + cross-entropy, K = 5 in the paper).
//!
//! Here the same pretext task runs on tokens, for any modality:
//! - **Pairing.** Within a batch, sample `i`'s background is its own tokens and its
//!   foreground is sample `(i + s) mod B`'s, for one random shift `s ∈ 1..B` per step (a
//!   derangement: nobody is its own foreground). Tokens are paired **by index**: token `j`
//!   of the background is fused with token `j` of the foreground, and only where both are
//!   real (not padding); a background token without a real partner stays unfused (class 0).
//!   This assumes the views are same-shape crops tokenized in the same order (as a grid
//!   tokenizer gives), so token `j` sits at the same place relative to its crop in every
//!   sample. With [`FusionConfig::check_grid`] the recipe verifies it: the offsets of paired
//!   tokens from the first paired token must agree (up to `grid_tolerance` × the spread of
//!   the coordinates along each axis), else it fails with a [`CoreError::Config`] naming the
//!   samples and token.
//! - **Boxes** are drawn in coordinate space (physical units): a random number of boxes,
//!   each centred on a random fusable token's coordinates, with half-extents per axis drawn
//!   as a fraction of the spread (max − min) of the sample's fusable coordinates along that
//!   axis, and a class drawn uniformly from `1..K`; later boxes overwrite earlier ones.
//! - **Token-aligned α.** Every token inside a box takes that box's class, and all `P`
//!   values of the token are fused with the same α: the target is one class per token (the
//!   per-element targets would be identical). This is the token-level simplification of
//!   MIS-FM's voxel-level boxes: box edges follow token boundaries.
//!
//! The encoder sees every fused token (no masking). A head `fusion.head` (LayerNorm, then
//! Linear `D → K`) classifies each patch token; the loss is the cross-entropy averaged over
//! real tokens plus, with [`FusionConfig::dice`], the soft Dice loss over the K classes.
//! The step logs `alpha_accuracy` (argmax class vs target over real tokens), `ce`,
//! `dice_loss` and `fused_fraction` (real tokens with class > 0).
//!
//! In a model card (every field optional, defaults shown):
//!
//! ```toml
//! [recipe]
//! kind = "volume_fusion"
//! classes = 5              # K: α ∈ {0, 1/4, 1/2, 3/4, 1}
//! boxes = [1, 4]           # boxes per sample, inclusive range
//! half_extent = [0.1, 0.3] # box half-size per axis, fraction of the coordinate spread
//! dice = true              # loss = CE + soft Dice (false: CE only)
//! check_grid = true        # paired tokens must sit on the same relative grid
//! grid_tolerance = 1e-3    # of the coordinate spread per axis
//! ```

use crate::{losses, Batch, Recipe, Result, StepContext, StepOutput, ENCODER_PREFIX};
use candle_core::{DType, Tensor, D};
use serde::{Deserialize, Serialize};
use tessera_core::layers::{LayerNorm, Linear};
use tessera_core::{CoreError, Encoder, EncoderConfig, ParamStore, TokenTensors};
use tessera_tokens::{Rng, Tokens};

/// Volume Fusion hyperparameters. [`FusionConfig::default`] follows MIS-FM (K = 5,
/// Dice + CE).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FusionConfig {
    /// Number of fusion classes K (at least 2): class `k` fuses with `α = k / (K − 1)`;
    /// class 0 is the untouched background.
    #[serde(default = "default_classes")]
    pub classes: usize,
    /// Inclusive range `[min, max]` of the number of boxes drawn per sample.
    #[serde(default = "default_boxes")]
    pub boxes: [usize; 2],
    /// Inclusive range `[min, max]` of a box's half-extent along each axis, as a fraction
    /// of the spread (max − min) of the sample's fusable token coordinates along that axis;
    /// drawn uniformly per box and axis.
    #[serde(default = "default_half_extent")]
    pub half_extent: [f32; 2],
    /// Adds the soft Dice loss over the K classes to the cross-entropy (MIS-FM: Dice + CE).
    #[serde(default = "yes")]
    pub dice: bool,
    /// Checks that paired tokens sit on the same relative grid (see the module doc).
    #[serde(default = "yes")]
    pub check_grid: bool,
    /// Tolerance of that check, as a fraction of the coordinate spread along each axis.
    #[serde(default = "default_grid_tolerance")]
    pub grid_tolerance: f32,
}

fn default_classes() -> usize {
    5
}
fn default_boxes() -> [usize; 2] {
    [1, 4]
}
fn default_half_extent() -> [f32; 2] {
    [0.1, 0.3]
}
fn default_grid_tolerance() -> f32 {
    1e-3
}
fn yes() -> bool {
    true
}

impl Default for FusionConfig {
    fn default() -> Self {
        Self {
            classes: default_classes(),
            boxes: default_boxes(),
            half_extent: default_half_extent(),
            dice: true,
            check_grid: true,
            grid_tolerance: default_grid_tolerance(),
        }
    }
}

impl FusionConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(CoreError::Config(format!("volume_fusion: {msg}")));
        if !(2..=256).contains(&self.classes) {
            return bad(format!("classes must be in 2..=256, got {}", self.classes));
        }
        if self.boxes[0] > self.boxes[1] {
            return bad(format!(
                "boxes must be [min, max] with min <= max, got {:?}",
                self.boxes
            ));
        }
        let [lo, hi] = self.half_extent;
        if !(lo.is_finite() && hi.is_finite() && 0.0 <= lo && lo <= hi) {
            return bad(format!(
                "half_extent must be [min, max] with 0 <= min <= max, got {:?}",
                self.half_extent
            ));
        }
        if !(self.grid_tolerance.is_finite() && self.grid_tolerance >= 0.0) {
            return bad(format!(
                "grid_tolerance must be finite and non-negative, got {}",
                self.grid_tolerance
            ));
        }
        Ok(())
    }
}

/// Where and how strongly one batch is fused.
#[derive(Debug, Clone, PartialEq)]
pub struct FusionPlan {
    /// The foreground sample of each background sample: `[B]`, never the sample itself.
    pub partner: Vec<usize>,
    /// Fusion class of each token: `[B, N]`, in `0..K` (0 = unfused, and always 0 for
    /// padding and for tokens whose partner token is padding).
    pub classes: Vec<u8>,
    /// K.
    pub k: usize,
}

impl FusionPlan {
    /// α of class `c`: `c / (K − 1)` (K below 2 is treated as 2).
    pub fn alpha(&self, c: u8) -> f32 {
        c as f32 / self.k.saturating_sub(1).max(1) as f32
    }
}

/// Tokens `j` of sample `i` that can be fused: real in both `i` and its partner.
fn fusable(tokens: &Tokens, i: usize, partner: usize) -> Vec<usize> {
    let n = tokens.n;
    (0..n)
        .filter(|&j| tokens.padding[i * n + j] == 0 && tokens.padding[partner * n + j] == 0)
        .collect()
}

/// Per-axis spread (max − min) of the coordinates of tokens `idx` of sample `i`.
fn spread(tokens: &Tokens, i: usize, idx: &[usize]) -> Vec<f32> {
    let k = tokens.k;
    (0..k)
        .map(|a| {
            let (lo, hi) = idx
                .iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &j| {
                    let c = tokens.coords[(i * tokens.n + j) * k + a];
                    (lo.min(c), hi.max(c))
                });
            if idx.is_empty() {
                0.0
            } else {
                hi - lo
            }
        })
        .collect()
}

/// Draws the pairing and the boxes of one batch (see the module doc). Uses only `rng`.
///
/// # Errors
/// An invalid config, fewer than two samples, or (with `check_grid`) paired tokens that do
/// not sit on the same relative grid.
pub fn plan_fusion(tokens: &Tokens, cfg: &FusionConfig, rng: &mut Rng) -> Result<FusionPlan> {
    cfg.validate()?;
    let (b, n, k) = (tokens.b, tokens.n, tokens.k);
    if b < 2 {
        return Err(CoreError::Config(format!(
            "volume_fusion: a batch needs at least 2 samples (each sample's foreground is \
             another sample), got {b}"
        )));
    }
    let shift = 1 + rng.below(b - 1);
    let partner: Vec<usize> = (0..b).map(|i| (i + shift) % b).collect();
    let mut classes = vec![0u8; b * n];
    for i in 0..b {
        let f = partner[i];
        let idx = fusable(tokens, i, f);
        let sp = spread(tokens, i, &idx);
        if cfg.check_grid {
            check_grid(
                tokens,
                i,
                f,
                &idx,
                &sp,
                &spread(tokens, f, &idx),
                cfg.grid_tolerance,
            )?;
        }
        let n_boxes = cfg.boxes[0] + rng.below(cfg.boxes[1] - cfg.boxes[0] + 1);
        if idx.is_empty() {
            continue;
        }
        let [hl, hh] = cfg.half_extent;
        for _ in 0..n_boxes {
            let centre = idx[rng.below(idx.len())];
            let c0 = &tokens.coords[(i * n + centre) * k..(i * n + centre + 1) * k];
            let half: Vec<f32> = sp
                .iter()
                .map(|s| s * (hl + (hh - hl) * rng.uniform() as f32))
                .collect();
            let class = 1 + rng.below(cfg.classes - 1) as u8;
            for &j in &idx {
                let c = &tokens.coords[(i * n + j) * k..(i * n + j + 1) * k];
                if c.iter()
                    .zip(c0)
                    .zip(&half)
                    .all(|((x, x0), h)| (x - x0).abs() <= *h)
                {
                    classes[i * n + j] = class;
                }
            }
        }
    }
    Ok(FusionPlan {
        partner,
        classes,
        k: cfg.classes,
    })
}

/// Paired tokens must have the same offsets from the first paired token in both samples.
fn check_grid(
    tokens: &Tokens,
    i: usize,
    f: usize,
    idx: &[usize],
    spread_i: &[f32],
    spread_f: &[f32],
    tol: f32,
) -> Result<()> {
    let (n, k) = (tokens.n, tokens.k);
    let Some(&j0) = idx.first() else {
        return Ok(());
    };
    let at = |s: usize, j: usize, a: usize| tokens.coords[(s * n + j) * k + a];
    for &j in idx {
        for a in 0..k {
            let di = at(i, j, a) - at(i, j0, a);
            let df = at(f, j, a) - at(f, j0, a);
            let allowed = tol * spread_i[a].max(spread_f[a]) + 1e-6;
            if (di - df).abs() > allowed {
                return Err(CoreError::Config(format!(
                    "volume_fusion: samples {i} and {f} are not same-shape crops on one grid: \
                     token {j} is {di} from token {j0} along coordinate axis {a} in sample {i} \
                     but {df} in sample {f} (views must be tokenized identically; set \
                     check_grid = false to pair tokens by index anyway)"
                )));
            }
        }
    }
    Ok(())
}

/// Applies a plan: token `j` of sample `i` becomes `α·fg + (1 − α)·bg` with `bg` its own
/// values, `fg` token `j` of `plan.partner[i]` and `α` its class's; class-0 tokens (and
/// padding) keep their values exactly. Coordinates and padding are the background's.
///
/// # Errors
/// A plan whose sizes do not match the batch, or with K < 2, a partner or a class out of
/// range.
pub fn fuse(tokens: &Tokens, plan: &FusionPlan) -> Result<Tokens> {
    let (b, n, p) = (tokens.b, tokens.n, tokens.p);
    if plan.partner.len() != b || plan.classes.len() != b * n {
        return Err(CoreError::Shape {
            what: "fusion plan (partners, classes) for the batch".into(),
            expected: format!("[{b}], [{}]", b * n),
            got: format!("[{}], [{}]", plan.partner.len(), plan.classes.len()),
        });
    }
    if plan.k < 2 || plan.partner.iter().any(|&f| f >= b) {
        return Err(CoreError::Config(format!(
            "volume_fusion: plan needs K >= 2 and partners below {b}, got K = {} and {:?}",
            plan.k, plan.partner
        )));
    }
    if let Some(&c) = plan.classes.iter().find(|&&c| c as usize >= plan.k) {
        return Err(CoreError::Config(format!(
            "volume_fusion: plan class {c} is not below K = {}",
            plan.k
        )));
    }
    let mut out = tokens.clone();
    for i in 0..b {
        let f = plan.partner[i];
        for j in 0..n {
            let c = plan.classes[i * n + j];
            if c == 0 {
                continue;
            }
            let a = plan.alpha(c);
            let bg = &tokens.values[(i * n + j) * p..(i * n + j + 1) * p];
            let fg = &tokens.values[(f * n + j) * p..(f * n + j + 1) * p];
            for ((o, x), y) in out.values[(i * n + j) * p..(i * n + j + 1) * p]
                .iter_mut()
                .zip(fg)
                .zip(bg)
            {
                *o = a * x + (1.0 - a) * y;
            }
        }
    }
    Ok(out)
}

/// `log_softmax` over the last dimension, from ops with backward passes (the max is a
/// constant shift, so it is detached).
pub fn log_softmax_last(x: &Tensor) -> Result<Tensor> {
    losses::log_softmax(x)
}

/// Cross-entropy and soft Dice of per-token logits.
///
/// # Shapes
/// `logits [B, N, K]`; `onehot [B, N, K]` (all-zero rows for tokens that do not count);
/// `keep [B, N]` (1 = counts). Returns `(ce, dice)`: `ce = −Σ onehot·log_softmax / Σ keep`,
/// `dice = 1 − mean_k (2 Σ p_k y_k + ε) / (Σ p_k + Σ y_k + ε)` with sums over the counted
/// tokens of the whole batch (`ε =` [`losses::DICE_EPS`]); composed from [`losses::nll`]
/// and [`losses::soft_dice`].
pub fn fusion_losses(logits: &Tensor, onehot: &Tensor, keep: &Tensor) -> Result<(Tensor, Tensor)> {
    let logp = losses::log_softmax(logits)?;
    let ce = losses::nll(&logp, onehot, Some(keep))?;
    let dice = losses::soft_dice(&logp.exp()?, onehot, Some(keep))?;
    Ok((ce, dice))
}

/// The Volume Fusion recipe: encoder plus the per-token α-class head.
pub struct VolumeFusion {
    cfg: FusionConfig,
    encoder: Encoder,
    head_norm: LayerNorm,
    head: Linear,
}

impl VolumeFusion {
    /// Registers the encoder under `encoder.` and the head under `fusion.head.`.
    pub fn new(cfg: &FusionConfig, enc: &EncoderConfig, store: &mut ParamStore) -> Result<Self> {
        cfg.validate()?;
        let encoder = Encoder::new(enc, store, ENCODER_PREFIX)?;
        Ok(Self {
            head_norm: LayerNorm::new(store, "fusion.head.norm", enc.dim, enc.norm_eps)?,
            head: Linear::new(store, "fusion.head.proj", enc.dim, cfg.classes, true)?,
            cfg: cfg.clone(),
            encoder,
        })
    }

    /// Per-token α-class logits of (already fused) tokens.
    ///
    /// # Shapes
    /// `values [B, N, P]`, `coords [B, N, K]`, `padding [B, N]` → `[B, N, classes]`
    pub fn logits(&self, t: &TokenTensors) -> Result<Tensor> {
        let out = self.encoder.forward(t)?;
        self.head.forward(&self.head_norm.forward(&out.patches)?)
    }
}

impl Recipe for VolumeFusion {
    fn name(&self) -> &'static str {
        "volume_fusion"
    }

    fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    fn loss(&self, batch: &Batch, _ctx: &StepContext, rng: &mut Rng) -> Result<StepOutput> {
        let tokens = batch.first("volume_fusion")?;
        let plan = plan_fusion(tokens, &self.cfg, rng)?;
        let fused = fuse(tokens, &plan)?;
        let dev = self.head.weight.device().clone();
        let t = TokenTensors::from_tokens(&fused, &dev)?;
        let logits = self.logits(&t)?;

        let (b, n, kc) = (tokens.b, tokens.n, self.cfg.classes);
        let mut onehot = vec![0f32; b * n * kc];
        for (r, (&c, &pad)) in plan.classes.iter().zip(&tokens.padding).enumerate() {
            if pad == 0 {
                onehot[r * kc + c as usize] = 1.0;
            }
        }
        let onehot = Tensor::from_vec(onehot, (b, n, kc), &dev)?;
        let keep = (1.0 - &t.padding)?;
        let (ce, dice) = fusion_losses(&logits, &onehot, &keep)?;
        let loss = if self.cfg.dice {
            (&ce + &dice)?
        } else {
            ce.clone()
        };

        let pred = logits
            .argmax(D::Minus1)?
            .to_dtype(DType::U32)?
            .flatten_all()?
            .to_vec1::<u32>()?;
        let (mut real, mut hits, mut fused_n) = (0usize, 0usize, 0usize);
        for ((&p, &c), &pad) in pred.iter().zip(&plan.classes).zip(&tokens.padding) {
            if pad == 0 {
                real += 1;
                hits += (p == c as u32) as usize;
                fused_n += (c > 0) as usize;
            }
        }
        let real_f = real.max(1) as f64;
        Ok(StepOutput::new(
            loss,
            vec![
                ("alpha_accuracy".into(), hits as f64 / real_f),
                ("ce".into(), ce.to_scalar::<f32>()? as f64),
                ("dice_loss".into(), dice.to_scalar::<f32>()? as f64),
                ("fused_fraction".into(), fused_n as f64 / real_f),
            ],
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::losses::DICE_EPS;
    use candle_core::Device;
    use tessera_tokens::SampleTokens;

    /// `lens[i]` tokens on a 2-D grid of width 4 (coords in mm, spacing 1.5 × 2.0, offset per
    /// sample), `p` values each.
    fn grid_batch(lens: &[usize], p: usize, rng: &mut Rng) -> Tokens {
        let samples: Vec<SampleTokens> = lens
            .iter()
            .enumerate()
            .map(|(s, &n)| {
                let v = (0..n * p).map(|_| rng.normal() as f32).collect();
                let c = (0..n)
                    .flat_map(|j| [10.0 * s as f32 + 1.5 * (j % 4) as f32, 2.0 * (j / 4) as f32])
                    .collect();
                SampleTokens::new(v, c, n, p, 2).unwrap()
            })
            .collect();
        Tokens::from_samples(&samples).unwrap()
    }

    #[test]
    fn fused_values_follow_alpha_and_padding_is_left_alone() {
        let mut rng = Rng::new(3);
        let t = grid_batch(&[16, 12, 8], 3, &mut rng);
        let cfg = FusionConfig {
            boxes: [2, 3],
            half_extent: [0.2, 0.5],
            ..Default::default()
        };
        let plan = plan_fusion(&t, &cfg, &mut Rng::new(11)).unwrap();
        let fused = fuse(&t, &plan).unwrap();
        assert_eq!(
            (fused.coords.clone(), fused.padding.clone()),
            (t.coords.clone(), t.padding.clone())
        );
        let (n, p) = (t.n, t.p);
        let mut n_fused = 0;
        for i in 0..t.b {
            let f = plan.partner[i];
            assert_ne!(f, i);
            for j in 0..n {
                let c = plan.classes[i * n + j];
                assert!((c as usize) < cfg.classes);
                let real_both = t.padding[i * n + j] == 0 && t.padding[f * n + j] == 0;
                if !real_both {
                    assert_eq!(c, 0, "sample {i} token {j}: padding on one side");
                }
                let got = &fused.values[(i * n + j) * p..(i * n + j + 1) * p];
                let bg = &t.values[(i * n + j) * p..(i * n + j + 1) * p];
                if c == 0 {
                    assert_eq!(got, bg);
                    continue;
                }
                n_fused += 1;
                let a = c as f32 / 4.0;
                let fg = &t.values[(f * n + j) * p..(f * n + j + 1) * p];
                for e in 0..p {
                    assert!((got[e] - (a * fg[e] + (1.0 - a) * bg[e])).abs() < 1e-6);
                }
            }
        }
        assert!(n_fused > 0);
        // Same seed, same plan.
        assert_eq!(plan, plan_fusion(&t, &cfg, &mut Rng::new(11)).unwrap());
    }

    #[test]
    fn boxes_cover_tokens_within_the_half_extent() {
        // One box with half-extent 0 along both axes covers exactly its centre token; a
        // half-extent of the full spread covers every fusable token.
        let mut rng = Rng::new(4);
        let t = grid_batch(&[16, 16], 2, &mut rng);
        let one = FusionConfig {
            boxes: [1, 1],
            half_extent: [0.0, 0.0],
            ..Default::default()
        };
        let plan = plan_fusion(&t, &one, &mut Rng::new(5)).unwrap();
        for i in 0..2 {
            let fused = plan.classes[i * 16..(i + 1) * 16]
                .iter()
                .filter(|&&c| c > 0)
                .count();
            assert_eq!(fused, 1);
        }
        let all = FusionConfig {
            boxes: [1, 1],
            half_extent: [1.0, 1.0],
            ..Default::default()
        };
        let plan = plan_fusion(&t, &all, &mut Rng::new(5)).unwrap();
        assert!(plan.classes.iter().all(|&c| c > 0));
    }

    #[test]
    fn mismatched_grids_and_tiny_batches_are_errors() {
        let mut rng = Rng::new(6);
        let mut t = grid_batch(&[8, 8], 2, &mut rng);
        t.coords[2 * 8 + 5 * 2] += 0.5; // sample 1, token 5, axis 0
        let err = plan_fusion(&t, &FusionConfig::default(), &mut Rng::new(1)).unwrap_err();
        assert!(err.to_string().contains("same-shape crops"), "{err}");
        let lax = FusionConfig {
            check_grid: false,
            ..Default::default()
        };
        assert!(plan_fusion(&t, &lax, &mut Rng::new(1)).is_ok());
        let one = grid_batch(&[8], 2, &mut rng);
        assert!(plan_fusion(&one, &lax, &mut Rng::new(1)).is_err());
        let bad = FusionConfig {
            classes: 1,
            ..Default::default()
        };
        assert!(bad.validate().is_err());
        let t = grid_batch(&[4, 4], 2, &mut rng);
        let plan = FusionPlan {
            partner: vec![1, 0],
            classes: vec![0, 5, 0, 0, 0, 0, 0, 0],
            k: 5,
        };
        assert!(fuse(&t, &plan).is_err());
        assert!(fuse(
            &t,
            &FusionPlan {
                classes: vec![0; 7],
                ..plan
            }
        )
        .is_err());
    }

    #[test]
    fn cross_entropy_matches_a_hand_computation() {
        let dev = Device::Cpu;
        let logits = Tensor::new(&[[[1.0f32, 2.0, 0.5], [0.0, 0.0, 3.0]]], &dev).unwrap();
        let onehot = Tensor::new(&[[[0.0f32, 1.0, 0.0], [0.0, 0.0, 0.0]]], &dev).unwrap();
        let keep = Tensor::new(&[[1.0f32, 0.0]], &dev).unwrap();
        let (ce, dice) = fusion_losses(&logits, &onehot, &keep).unwrap();
        let lse = (1f64.exp() + 2f64.exp() + 0.5f64.exp()).ln();
        let want = lse - 2.0;
        assert!((ce.to_scalar::<f32>().unwrap() as f64 - want).abs() < 1e-6);
        // Dice by hand: p = softmax of the one counted row.
        let p: Vec<f64> = [1.0f64, 2.0, 0.5].iter().map(|x| (x - lse).exp()).collect();
        let y = [0.0, 1.0, 0.0];
        let mean: f64 = (0..3)
            .map(|k| (2.0 * p[k] * y[k] + DICE_EPS) / (p[k] + y[k] + DICE_EPS))
            .sum::<f64>()
            / 3.0;
        assert!((dice.to_scalar::<f32>().unwrap() as f64 - (1.0 - mean)).abs() < 1e-5);
    }

    #[test]
    fn loss_has_gradients_and_same_seed_gives_same_bits() {
        let enc = EncoderConfig::preset("nano", 6, vec![6.0, 8.0]).unwrap();
        let build = || {
            let mut store = ParamStore::new(0, &Device::Cpu);
            let r = VolumeFusion::new(&FusionConfig::default(), &enc, &mut store).unwrap();
            (r, store)
        };
        let (vf, store) = build();
        let batch = Batch::single(grid_batch(&[16, 12, 16], 6, &mut Rng::new(2)));
        let out = vf
            .loss(&batch, &crate::tests::CTX, &mut Rng::new(9))
            .unwrap();
        let l = out.loss.to_scalar::<f32>().unwrap();
        assert!(l.is_finite() && l > 0.0);
        let names: Vec<&str> = out.metrics.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["alpha_accuracy", "ce", "dice_loss", "fused_fraction"]
        );
        let grads = out.loss.backward().unwrap();
        for name in [
            "encoder.blocks.0.attn.qkv.weight",
            "encoder.patch_embed.proj.weight",
            "fusion.head.norm.weight",
            "fusion.head.proj.weight",
        ] {
            let g = grads.get(&store.param(name).unwrap().var).unwrap();
            let norm = g
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(norm > 0.0, "{name}");
        }
        let (vf2, _) = build();
        let l2 = vf2
            .loss(&batch, &crate::tests::CTX, &mut Rng::new(9))
            .unwrap()
            .loss
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(l.to_bits(), l2.to_bits());
    }

    #[test]
    fn config_round_trips_through_toml() {
        let rc = crate::RecipeConfig::VolumeFusion(FusionConfig {
            classes: 3,
            boxes: [2, 6],
            half_extent: [0.05, 0.25],
            dice: false,
            check_grid: true,
            grid_tolerance: 0.01,
        });
        let text = toml::to_string(&rc).unwrap();
        assert!(text.contains("kind = \"volume_fusion\""), "{text}");
        assert_eq!(toml::from_str::<crate::RecipeConfig>(&text).unwrap(), rc);
        let minimal: crate::RecipeConfig = toml::from_str("kind = \"volume_fusion\"\n").unwrap();
        assert_eq!(
            minimal,
            crate::RecipeConfig::VolumeFusion(FusionConfig::default())
        );
        // The module doc's card fragment gives the defaults.
        #[derive(Deserialize)]
        struct Card {
            recipe: crate::RecipeConfig,
        }
        let doc: String = include_str!("fusion.rs")
            .lines()
            .skip_while(|l| !l.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| format!("{}\n", l.trim_start_matches("//!").trim_start()))
            .collect();
        let card: Card = toml::from_str(&doc).unwrap();
        assert_eq!(card.recipe, minimal);
    }
}
