//! Token masking that respects padding, done on plain arrays before the network sees
//! anything: the encoder receives only the visible tokens (as in MAE), and the masked
//! tokens' values and coordinates become the targets and the decoder's queries.
//!
//! Strategies ([`MaskStrategy`], dispatched by [`mask_batch`]):
//! - [`random_mask`]: tokens picked uniformly (MAE);
//! - [`block_mask`]: the union of axis-aligned boxes in coordinate space (I-JEPA);
//! - [`span_mask`]: spans along one coordinate axis, e.g. time (wav2vec 2.0, HuBERT);
//! - [`group_mask`]: whole groups of tokens sharing one coordinate value (channels, bands).
//!
//! Every strategy is seeded by the crate's [`Rng`] (same seed and batch, same mask), never
//! selects padding, and leaves each sample with two or more real tokens at least one
//! visible and one masked token; a sample with one real token keeps it visible, an empty
//! sample gets two empty lists. The structured strategies aim at the target count
//! `t = round(ratio · n_real)` clamped to `[1, n_real - 1]` (the count [`random_mask`]
//! uses): block and span masks hit it exactly, group masks as closely as whole groups allow.

use crate::{Rng, SampleTokens, TokenError, Tokens};
use serde::{Deserialize, Serialize};

/// Masking hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaskConfig {
    /// Fraction of each sample's real tokens that is masked.
    pub ratio: f32,
    /// If positive, each sample draws its own ratio uniformly in `ratio ± jitter`.
    #[serde(default)]
    pub jitter: f32,
}

impl Default for MaskConfig {
    fn default() -> Self {
        Self {
            ratio: 0.75,
            jitter: 0.0,
        }
    }
}

/// A batch split into visible and masked tokens, each padded to its longest sample.
#[derive(Debug, Clone)]
pub struct MaskedBatch {
    /// Tokens the encoder sees: `[b, n_vis, p]`.
    pub visible: Tokens,
    /// Tokens to reconstruct: `[b, n_mask, p]`; padding marks filler.
    pub masked: Tokens,
    /// For each sample, the original indices of visible then masked tokens.
    pub visible_idx: Vec<Vec<usize>>,
    pub masked_idx: Vec<Vec<usize>>,
}

/// Masks `cfg.ratio` of each sample's real tokens at random. Every sample keeps at least
/// one visible and (when it has two or more tokens) one masked token.
pub fn random_mask(
    batch: &Tokens,
    cfg: &MaskConfig,
    rng: &mut Rng,
) -> Result<MaskedBatch, TokenError> {
    let mut vis = Vec::with_capacity(batch.b);
    let mut msk = Vec::with_capacity(batch.b);
    let mut visible_idx = Vec::with_capacity(batch.b);
    let mut masked_idx = Vec::with_capacity(batch.b);
    for i in 0..batch.b {
        let real: Vec<usize> = (0..batch.n)
            .filter(|&j| batch.padding[i * batch.n + j] == 0)
            .collect();
        let n_real = real.len();
        let ratio = if cfg.jitter > 0.0 {
            (cfg.ratio + cfg.jitter * (2.0 * rng.uniform() as f32 - 1.0)).clamp(0.0, 0.99)
        } else {
            cfg.ratio.clamp(0.0, 0.99)
        };
        let mut n_mask = (n_real as f32 * ratio).round() as usize;
        if n_real >= 2 {
            n_mask = n_mask.clamp(1, n_real - 1);
        } else {
            n_mask = 0;
        }
        let mut order = real.clone();
        rng.shuffle(&mut order);
        let (m, v) = order.split_at(n_mask);
        let mut v = v.to_vec();
        let mut m = m.to_vec();
        v.sort_unstable();
        m.sort_unstable();
        let sample = sample_of(batch, i);
        vis.push(sample.select(&v));
        msk.push(sample.select(&m));
        visible_idx.push(v);
        masked_idx.push(m);
    }
    Ok(MaskedBatch {
        visible: Tokens::from_samples(&vis)?,
        masked: Tokens::from_samples(&msk)?,
        visible_idx,
        masked_idx,
    })
}

/// Block masking (I-JEPA style): the masked set is the union of `n_blocks` axis-aligned
/// boxes in coordinate space (all K axes).
///
/// How a sample's mask is drawn, with `n_real` real tokens and the target
/// `t = round(ratio · n_real)` clamped to `[1, n_real - 1]`:
/// 1. Each box draws a volume fraction `s` uniformly in `scale` and, for every axis
///    `d ≥ 1`, an aspect ratio `r_d = extent_0 / extent_d` log-uniformly in `aspect`; its
///    extent along axis `d` is the fraction `s^(1/K) · g / r_d` (with `r_0 = 1` and `g` the
///    geometric mean of the `r_d`, so that the fractions multiply to `s`; for K = 2 this is
///    I-JEPA's `h = √(s·r)`, `w = √(s/r)`), capped at 1, of the spread (max − min) of the
///    sample's real-token coordinates along that axis. The box is placed uniformly inside
///    that bounding box.
/// 2. All boxes are then grown or shrunk together about their centres by one common factor
///    λ, the smallest at which their union holds at least `t` real tokens; the tokens that
///    enter exactly at that λ (the boundary of the final boxes) are taken in a seeded random
///    order until exactly `t` are masked. So `scale` and `aspect` set the boxes' relative
///    sizes, shapes and places, and `ratio` their common size; every real token strictly
///    inside the final boxes is masked and no token outside them is.
///
/// An axis along which all real tokens share one coordinate is always covered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockMaskConfig {
    /// Fraction of each sample's real tokens that is masked (in `(0, 1)`).
    #[serde(default = "default_block_ratio")]
    pub ratio: f32,
    /// Number of boxes (≥ 1).
    #[serde(default = "default_n_blocks")]
    pub n_blocks: usize,
    /// Range of a box's volume fraction of the bounding box, before the common rescaling
    /// (`0 < lo ≤ hi ≤ 1`).
    #[serde(default = "default_block_scale")]
    pub scale: (f32, f32),
    /// Range of the aspect ratios `extent_0 / extent_d` (`0 < lo ≤ hi`).
    #[serde(default = "default_block_aspect")]
    pub aspect: (f32, f32),
}

fn default_block_ratio() -> f32 {
    0.6
}
fn default_n_blocks() -> usize {
    4
}
fn default_block_scale() -> (f32, f32) {
    (0.15, 0.2)
}
fn default_block_aspect() -> (f32, f32) {
    (0.75, 1.5)
}

impl Default for BlockMaskConfig {
    fn default() -> Self {
        Self {
            ratio: default_block_ratio(),
            n_blocks: default_n_blocks(),
            scale: default_block_scale(),
            aspect: default_block_aspect(),
        }
    }
}

/// Span masking (wav2vec 2.0 / HuBERT style) along one coordinate axis, e.g. time.
///
/// With the target `t = round(ratio · n_real)` clamped to `[1, n_real - 1]`: spans
/// `[s, s + span]` (closed, in the axis's units) are drawn one after another, each
/// containing a real token no earlier span covers (chosen uniformly; this guarantees
/// progress) and lying inside the sample's coordinate range when `span` fits in it;
/// every real token whose coordinate falls in a span is masked, until at least `t` are.
/// The last span is then shortened from its end so that exactly `t` tokens are masked;
/// tokens sharing the coordinate where it is cut are taken in a seeded random order.
/// So every span but the last is masked whole and the last is a shorter span.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpanMaskConfig {
    /// Fraction of each sample's real tokens that is masked (in `(0, 1)`).
    #[serde(default = "default_span_ratio")]
    pub ratio: f32,
    /// Index of the coordinate axis the spans run along (`< K`).
    pub axis: usize,
    /// Span length in that axis's units (`> 0`; e.g. 0.2 for 200 ms when the axis is in s).
    pub span: f32,
}

fn default_span_ratio() -> f32 {
    0.5
}

/// Group masking: tokens are grouped by the exact value of one coordinate axis (electrode,
/// channel or band index) and whole groups are masked.
///
/// With the target `t = round(ratio · n_real)` clamped to `[1, n_real - 1]`: groups are
/// taken in a seeded random order while fewer than `t` tokens are masked; the group that
/// crosses `t` is kept only if that lands at least as close to `t` as stopping before it.
/// At least one group is masked and, when there are two or more groups, at least one stays
/// visible; a sample whose real tokens all share one value (a single group) falls back to
/// masking `t` of its tokens at random, so the one-visible/one-masked guarantee holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupMaskConfig {
    /// Fraction of each sample's real tokens that is masked (in `(0, 1)`), approximately.
    #[serde(default = "default_group_ratio")]
    pub ratio: f32,
    /// Index of the coordinate axis whose value names the group (`< K`).
    pub axis: usize,
    /// Further axes whose values are part of the group's name: `axis = 0, with_axes =
    /// [1, 2]` groups EEG tokens by electrode position (x, y, z), so whole channels are
    /// masked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub with_axes: Vec<usize>,
}

fn default_group_ratio() -> f32 {
    0.5
}

/// A masking strategy, tagged by `kind` in TOML:
/// `kind = "random" | "block" | "span" | "group"` plus that strategy's fields.
/// A table without `kind` reads as a [`MaskConfig`] (`ratio`, `jitter`), i.e. `random`,
/// so existing `[recipe.mask]` tables keep their meaning.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MaskStrategy {
    /// Uniform token masking, [`random_mask`].
    Random(MaskConfig),
    /// Boxes in coordinate space, [`block_mask`].
    Block(BlockMaskConfig),
    /// Spans along one axis, [`span_mask`].
    Span(SpanMaskConfig),
    /// Whole groups of one axis's values, [`group_mask`].
    Group(GroupMaskConfig),
}

impl Default for MaskStrategy {
    fn default() -> Self {
        MaskStrategy::Random(MaskConfig::default())
    }
}

impl From<MaskConfig> for MaskStrategy {
    fn from(cfg: MaskConfig) -> Self {
        MaskStrategy::Random(cfg)
    }
}

/// The tagged form `MaskStrategy` deserialises through when `kind` is present.
#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum TaggedStrategy {
    Random(MaskConfig),
    Block(BlockMaskConfig),
    Span(SpanMaskConfig),
    Group(GroupMaskConfig),
}

impl<'de> Deserialize<'de> for MaskStrategy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let value = toml::Value::deserialize(d)?;
        let tagged = matches!(&value, toml::Value::Table(t) if t.contains_key("kind"));
        if tagged {
            Ok(
                match TaggedStrategy::deserialize(value).map_err(D::Error::custom)? {
                    TaggedStrategy::Random(c) => MaskStrategy::Random(c),
                    TaggedStrategy::Block(c) => MaskStrategy::Block(c),
                    TaggedStrategy::Span(c) => MaskStrategy::Span(c),
                    TaggedStrategy::Group(c) => MaskStrategy::Group(c),
                },
            )
        } else {
            MaskConfig::deserialize(value)
                .map(MaskStrategy::Random)
                .map_err(D::Error::custom)
        }
    }
}

impl MaskStrategy {
    /// Checks the parameters against a coordinate width `k`.
    pub fn validate(&self, k: usize) -> Result<(), TokenError> {
        match self {
            MaskStrategy::Random(c) => {
                check_ratio(c.ratio)?;
                if !(c.jitter.is_finite() && c.jitter >= 0.0) {
                    return Err(invalid(format!(
                        "random: jitter must be finite and >= 0, got {}",
                        c.jitter
                    )));
                }
                Ok(())
            }
            MaskStrategy::Block(c) => c.validate(),
            MaskStrategy::Span(c) => c.validate(k),
            MaskStrategy::Group(c) => c.validate(k),
        }
    }
}

impl BlockMaskConfig {
    /// Checks `ratio`, `n_blocks`, `scale` and `aspect`.
    pub fn validate(&self) -> Result<(), TokenError> {
        check_ratio(self.ratio)?;
        if self.n_blocks == 0 {
            return Err(invalid("block: n_blocks must be >= 1, got 0".into()));
        }
        let (lo, hi) = self.scale;
        if !(lo.is_finite() && hi.is_finite() && lo > 0.0 && lo <= hi && hi <= 1.0) {
            return Err(invalid(format!(
                "block: scale must satisfy 0 < lo <= hi <= 1, got ({lo}, {hi})"
            )));
        }
        let (lo, hi) = self.aspect;
        if !(lo.is_finite() && hi.is_finite() && lo > 0.0 && lo <= hi) {
            return Err(invalid(format!(
                "block: aspect must satisfy 0 < lo <= hi (finite), got ({lo}, {hi})"
            )));
        }
        Ok(())
    }
}

impl SpanMaskConfig {
    /// Checks `ratio`, `axis < k` and `span > 0`.
    pub fn validate(&self, k: usize) -> Result<(), TokenError> {
        check_ratio(self.ratio)?;
        check_axis("span", self.axis, k)?;
        if !(self.span.is_finite() && self.span > 0.0) {
            return Err(invalid(format!(
                "span: span must be finite and > 0, got {}",
                self.span
            )));
        }
        Ok(())
    }
}

impl GroupMaskConfig {
    /// Checks `ratio` and `axis < k`.
    pub fn validate(&self, k: usize) -> Result<(), TokenError> {
        check_ratio(self.ratio)?;
        check_axis("group", self.axis, k)?;
        self.with_axes
            .iter()
            .try_for_each(|&a| check_axis("group", a, k))
    }

    /// Every axis of the group key.
    fn axes(&self) -> Vec<usize> {
        std::iter::once(self.axis)
            .chain(self.with_axes.iter().copied())
            .collect()
    }
}

/// Parameter errors. `TokenError` has no masking variant, so they travel as
/// `TokenError::Card` (the strategy is part of the run's configuration) with a message
/// that names the strategy and the field.
fn invalid(msg: String) -> TokenError {
    TokenError::Mask(msg)
}

fn check_ratio(ratio: f32) -> Result<(), TokenError> {
    if ratio.is_finite() && ratio > 0.0 && ratio < 1.0 {
        Ok(())
    } else {
        Err(invalid(format!("ratio must be in (0, 1), got {ratio}")))
    }
}

fn check_axis(kind: &str, axis: usize, k: usize) -> Result<(), TokenError> {
    if axis < k {
        Ok(())
    } else {
        Err(invalid(format!(
            "{kind}: axis {axis} is out of range for K = {k} coordinates"
        )))
    }
}

/// Checks that a batch's buffers match its stated shape (its fields are public).
fn check_batch(batch: &Tokens) -> Result<(), TokenError> {
    let (b, n, p, k) = (batch.b, batch.n, batch.p, batch.k);
    for (what, expected, got) in [
        ("batch values (b*n*p)", b * n * p, batch.values.len()),
        ("batch coords (b*n*k)", b * n * k, batch.coords.len()),
        ("batch padding (b*n)", b * n, batch.padding.len()),
    ] {
        if expected != got {
            return Err(TokenError::Shape {
                what: what.into(),
                expected,
                got,
            });
        }
    }
    Ok(())
}

/// Masks a batch with the given strategy (parameters checked first).
pub fn mask_batch(
    batch: &Tokens,
    strategy: &MaskStrategy,
    rng: &mut Rng,
) -> Result<MaskedBatch, TokenError> {
    match strategy {
        MaskStrategy::Random(c) => {
            strategy.validate(batch.k)?;
            check_batch(batch)?;
            random_mask(batch, c, rng)
        }
        MaskStrategy::Block(c) => block_mask(batch, c, rng),
        MaskStrategy::Span(c) => span_mask(batch, c, rng),
        MaskStrategy::Group(c) => group_mask(batch, c, rng),
    }
}

/// Masks each sample with the union of boxes in coordinate space; see [`BlockMaskConfig`]
/// for exactly how the boxes are drawn and how the target count is met.
pub fn block_mask(
    batch: &Tokens,
    cfg: &BlockMaskConfig,
    rng: &mut Rng,
) -> Result<MaskedBatch, TokenError> {
    cfg.validate()?;
    check_batch(batch)?;
    let axes: Vec<usize> = (0..batch.k).collect();
    mask_per_sample(batch, &axes, |c, real| {
        Ok(block_sample(c, batch.k, real, cfg, rng).0)
    })
}

/// Masks each sample with spans along `cfg.axis`; see [`SpanMaskConfig`].
pub fn span_mask(
    batch: &Tokens,
    cfg: &SpanMaskConfig,
    rng: &mut Rng,
) -> Result<MaskedBatch, TokenError> {
    cfg.validate(batch.k)?;
    check_batch(batch)?;
    mask_per_sample(batch, &[cfg.axis], |c, real| {
        Ok(span_sample(c, batch.k, real, cfg, rng).0)
    })
}

/// Masks whole groups of tokens sharing a value of `cfg.axis`; see [`GroupMaskConfig`].
pub fn group_mask(
    batch: &Tokens,
    cfg: &GroupMaskConfig,
    rng: &mut Rng,
) -> Result<MaskedBatch, TokenError> {
    cfg.validate(batch.k)?;
    check_batch(batch)?;
    mask_per_sample(batch, &cfg.axes(), |c, real| {
        Ok(group_sample(c, batch.k, real, cfg, rng))
    })
}

/// Target masked count for `n_real` real tokens (0 when fewer than two).
fn target(n_real: usize, ratio: f32) -> usize {
    if n_real < 2 {
        return 0;
    }
    ((n_real as f64 * ratio as f64).round() as usize).clamp(1, n_real - 1)
}

/// Runs `pick` on each sample (its coordinates and real-token indices; the coordinates of
/// `axes` checked finite) and assembles the visible/masked batch from the masked indices.
fn mask_per_sample(
    batch: &Tokens,
    axes: &[usize],
    mut pick: impl FnMut(&[f32], &[usize]) -> Result<Vec<usize>, TokenError>,
) -> Result<MaskedBatch, TokenError> {
    let (n, k) = (batch.n, batch.k);
    let mut vis = Vec::with_capacity(batch.b);
    let mut msk = Vec::with_capacity(batch.b);
    let mut visible_idx = Vec::with_capacity(batch.b);
    let mut masked_idx = Vec::with_capacity(batch.b);
    for i in 0..batch.b {
        let coords = &batch.coords[i * n * k..(i + 1) * n * k];
        let real: Vec<usize> = (0..n).filter(|&j| batch.padding[i * n + j] == 0).collect();
        for &j in &real {
            for &d in axes {
                if !coords[j * k + d].is_finite() {
                    return Err(TokenError::NonFinite {
                        what: format!("coords of sample {i} (axis {d}) used for masking"),
                        index: j * k + d,
                    });
                }
            }
        }
        let mut m = pick(coords, &real)?;
        m.sort_unstable();
        let mut is_masked = vec![false; n];
        m.iter().for_each(|&j| is_masked[j] = true);
        let v: Vec<usize> = real.iter().copied().filter(|&j| !is_masked[j]).collect();
        let sample = sample_of(batch, i);
        vis.push(sample.select(&v));
        msk.push(sample.select(&m));
        visible_idx.push(v);
        masked_idx.push(m);
    }
    Ok(MaskedBatch {
        visible: Tokens::from_samples(&vis)?,
        masked: Tokens::from_samples(&msk)?,
        visible_idx,
        masked_idx,
    })
}

/// A drawn box: its centre and its half extents at λ = 1, per axis.
#[derive(Debug, Clone)]
struct DrawnBox {
    centre: Vec<f64>,
    half: Vec<f64>,
}

/// Entry factor of a point into a box: the smallest λ at which the box scaled by λ about
/// its centre contains it (`0` on degenerate axes where the point sits on the centre).
fn entry(bx: &DrawnBox, x: &[f32]) -> f64 {
    let mut lam = 0f64;
    for (d, (&c, &h)) in bx.centre.iter().zip(&bx.half).enumerate() {
        let dist = (x[d] as f64 - c).abs();
        let l = if dist == 0.0 {
            0.0
        } else if h > 0.0 {
            dist / h
        } else {
            f64::INFINITY
        };
        lam = lam.max(l);
    }
    lam
}

/// Per-axis minimum and maximum of the real tokens' coordinates.
fn bounds(coords: &[f32], k: usize, real: &[usize], d: usize) -> (f64, f64) {
    real.iter()
        .map(|&j| coords[j * k + d] as f64)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
            (lo.min(x), hi.max(x))
        })
}

/// One sample's block mask: the masked indices, the boxes and the final common factor λ.
fn block_sample(
    coords: &[f32],
    k: usize,
    real: &[usize],
    cfg: &BlockMaskConfig,
    rng: &mut Rng,
) -> (Vec<usize>, Vec<DrawnBox>, f64) {
    let t = target(real.len(), cfg.ratio);
    if t == 0 {
        return (Vec::new(), Vec::new(), 0.0);
    }
    let range: Vec<(f64, f64)> = (0..k).map(|d| bounds(coords, k, real, d)).collect();
    let (a_lo, a_hi) = ((cfg.aspect.0 as f64).ln(), (cfg.aspect.1 as f64).ln());
    let boxes: Vec<DrawnBox> = (0..cfg.n_blocks)
        .map(|_| {
            let s = cfg.scale.0 as f64 + rng.uniform() * (cfg.scale.1 - cfg.scale.0) as f64;
            // log r_d for d ≥ 1 (r_0 = 1); extents ∝ 1 / r_d, normalised to volume s.
            let log_r: Vec<f64> = (0..k)
                .map(|d| {
                    if d == 0 {
                        0.0
                    } else {
                        a_lo + rng.uniform() * (a_hi - a_lo)
                    }
                })
                .collect();
            let mean = log_r.iter().sum::<f64>() / k.max(1) as f64;
            let base = s.powf(1.0 / k.max(1) as f64);
            let mut centre = Vec::with_capacity(k);
            let mut half = Vec::with_capacity(k);
            for d in 0..k {
                let (lo, hi) = range[d];
                let ext = (base * (mean - log_r[d]).exp()).min(1.0) * (hi - lo);
                let start = lo + rng.uniform() * (hi - lo - ext).max(0.0);
                centre.push(start + ext / 2.0);
                half.push(ext / 2.0);
            }
            DrawnBox { centre, half }
        })
        .collect();
    // Each token's entry factor into the union; ties broken by a seeded permutation.
    let tie = rng.permutation(real.len());
    let mut order: Vec<(f64, usize, usize)> = real
        .iter()
        .zip(&tie)
        .map(|(&j, &r)| {
            let x = &coords[j * k..(j + 1) * k];
            let lam = boxes
                .iter()
                .map(|bx| entry(bx, x))
                .fold(f64::INFINITY, f64::min);
            (lam, r, j)
        })
        .collect();
    order.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let lambda = order[t - 1].0;
    (order[..t].iter().map(|o| o.2).collect(), boxes, lambda)
}

/// One sample's span mask: the masked indices and the spans `(start, end)` drawn, the last
/// one already shortened to where it was cut.
fn span_sample(
    coords: &[f32],
    k: usize,
    real: &[usize],
    cfg: &SpanMaskConfig,
    rng: &mut Rng,
) -> (Vec<usize>, Vec<(f64, f64)>) {
    let t = target(real.len(), cfg.ratio);
    if t == 0 {
        return (Vec::new(), Vec::new());
    }
    let a = cfg.axis;
    let (lo, hi) = bounds(coords, k, real, a);
    let len = cfg.span as f64;
    let x = |j: usize| coords[j * k + a] as f64;
    let mut free: Vec<usize> = real.to_vec();
    let mut masked = Vec::with_capacity(t);
    let mut spans = Vec::new();
    while masked.len() < t {
        let c = x(free[rng.below(free.len())]);
        // A start keeping the anchor inside and, when the span fits, the span in range.
        let (s_lo, s_hi) = if len <= hi - lo {
            ((c - len).max(lo), c.min(hi - len))
        } else {
            (hi - len, lo)
        };
        let start = (s_lo + rng.uniform() * (s_hi - s_lo).max(0.0)).min(c);
        let end = (start + len).max(c);
        let mut new: Vec<usize> = free
            .iter()
            .copied()
            .filter(|&j| start <= x(j) && x(j) <= end)
            .collect();
        if masked.len() + new.len() > t {
            // Shorten from the end: earliest coordinates first, ties in seeded order.
            rng.shuffle(&mut new);
            new.sort_by(|&p, &q| x(p).total_cmp(&x(q)));
            new.truncate(t - masked.len());
            spans.push((start, x(*new.last().expect("t > masked"))));
        } else {
            spans.push((start, end));
        }
        let mut taken = vec![false; coords.len() / k.max(1)];
        new.iter().for_each(|&j| taken[j] = true);
        free.retain(|&j| !taken[j]);
        masked.extend(new);
    }
    (masked, spans)
}

/// One sample's group mask.
fn group_sample(
    coords: &[f32],
    k: usize,
    real: &[usize],
    cfg: &GroupMaskConfig,
    rng: &mut Rng,
) -> Vec<usize> {
    let t = target(real.len(), cfg.ratio);
    if t == 0 {
        return Vec::new();
    }
    // Groups by exact values (-0 and +0 together), in value order, then seeded order.
    let axes = cfg.axes();
    let key = |j: usize| -> Vec<f32> {
        axes.iter()
            .map(|&a| {
                let v = coords[j * k + a];
                if v == 0.0 {
                    0f32
                } else {
                    v
                }
            })
            .collect()
    };
    let cmp = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| x.total_cmp(y))
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    };
    let mut sorted = real.to_vec();
    sorted.sort_by(|&p, &q| cmp(&key(p), &key(q)).then(p.cmp(&q)));
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for j in sorted {
        match groups.last_mut() {
            Some(g) if key(g[0]) == key(j) => g.push(j),
            _ => groups.push(vec![j]),
        }
    }
    if groups.len() == 1 {
        // One group: whole groups cannot leave both sets non-empty; fall back to tokens.
        let mut g = groups.pop().expect("one group");
        rng.shuffle(&mut g);
        g.truncate(t);
        return g;
    }
    rng.shuffle(&mut groups);
    let mut taken = 0;
    let mut m = 0;
    for g in &groups {
        if m >= t {
            break;
        }
        if m + g.len() > t && m + g.len() - t > t - m && m > 0 {
            break;
        }
        m += g.len();
        taken += 1;
    }
    if taken == groups.len() {
        taken -= 1; // keep one group visible
    }
    groups[..taken].concat()
}

/// The tokens of sample `i` of a batch, padding included.
pub fn sample_of(batch: &Tokens, i: usize) -> SampleTokens {
    let (n, p, k) = (batch.n, batch.p, batch.k);
    SampleTokens {
        values: batch.values[i * n * p..(i + 1) * n * p].to_vec(),
        coords: batch.coords[i * n * k..(i + 1) * n * k].to_vec(),
        n,
        p,
        k,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(lens: &[usize]) -> Tokens {
        let samples: Vec<SampleTokens> = lens
            .iter()
            .map(|&n| {
                SampleTokens::new(
                    (0..n * 2).map(|x| x as f32).collect(),
                    (0..n).map(|x| x as f32).collect(),
                    n,
                    2,
                    1,
                )
                .unwrap()
            })
            .collect();
        Tokens::from_samples(&samples).unwrap()
    }

    #[test]
    fn masks_only_real_tokens_and_partitions_them() {
        let b = batch(&[16, 8]);
        let m = random_mask(
            &b,
            &MaskConfig {
                ratio: 0.75,
                jitter: 0.0,
            },
            &mut Rng::new(3),
        )
        .unwrap();
        assert_eq!(m.masked_idx[0].len(), 12);
        assert_eq!(m.visible_idx[1].len(), 2);
        for i in 0..2 {
            let mut all: Vec<usize> = m.visible_idx[i]
                .iter()
                .chain(&m.masked_idx[i])
                .copied()
                .collect();
            all.sort();
            assert_eq!(all, (0..b.len_of(i)).collect::<Vec<_>>());
        }
        // Sample 1 has fewer tokens: its masked set is padded.
        assert_eq!(m.masked.len_of(1), 6);
        assert_eq!(m.masked.n, 12);
        // Values follow their tokens.
        let j = m.masked_idx[0][0];
        assert_eq!(&m.masked.values[0..2], &b.values[j * 2..j * 2 + 2]);
    }

    #[test]
    fn same_seed_same_mask() {
        let b = batch(&[20, 20, 5]);
        let cfg = MaskConfig {
            ratio: 0.6,
            jitter: 0.1,
        };
        let a = random_mask(&b, &cfg, &mut Rng::new(9)).unwrap();
        let c = random_mask(&b, &cfg, &mut Rng::new(9)).unwrap();
        assert_eq!(a.masked_idx, c.masked_idx);
    }

    /// A `b`-sample batch of `w × h` grids with coordinates `(x·dx, y·dy)`; sample `i` keeps
    /// only its first `len[i]` tokens (the rest is padding).
    fn grid(w: usize, h: usize, dx: f32, dy: f32, lens: &[usize]) -> Tokens {
        let samples: Vec<SampleTokens> = lens
            .iter()
            .map(|&n| {
                let n = n.min(w * h);
                let coords: Vec<f32> = (0..n)
                    .flat_map(|j| [(j % w) as f32 * dx, (j / w) as f32 * dy])
                    .collect();
                SampleTokens::new((0..n).map(|x| x as f32).collect(), coords, n, 1, 2).unwrap()
            })
            .collect();
        Tokens::from_samples(&samples).unwrap()
    }

    fn strategies() -> Vec<MaskStrategy> {
        vec![
            MaskStrategy::Random(MaskConfig::default()),
            MaskStrategy::Block(BlockMaskConfig::default()),
            MaskStrategy::Span(SpanMaskConfig {
                ratio: 0.5,
                axis: 0,
                span: 2.5,
            }),
            MaskStrategy::Group(GroupMaskConfig {
                ratio: 0.5,
                axis: 1,
                with_axes: vec![],
            }),
        ]
    }

    /// Visible and masked lists partition the real tokens, sorted, with no padding.
    fn check_partition(b: &Tokens, m: &MaskedBatch) {
        for i in 0..b.b {
            let real: Vec<usize> = (0..b.n).filter(|&j| b.padding[i * b.n + j] == 0).collect();
            let mut all: Vec<usize> = m.visible_idx[i]
                .iter()
                .chain(&m.masked_idx[i])
                .copied()
                .collect();
            all.sort_unstable();
            assert_eq!(all, real, "sample {i}");
            assert!(m.visible_idx[i].windows(2).all(|w| w[0] < w[1]));
            assert!(m.masked_idx[i].windows(2).all(|w| w[0] < w[1]));
            if real.len() >= 2 {
                assert!(!m.visible_idx[i].is_empty() && !m.masked_idx[i].is_empty());
            }
            assert_eq!(m.visible.len_of(i), m.visible_idx[i].len());
            assert_eq!(m.masked.len_of(i), m.masked_idx[i].len());
            // Values and coordinates follow their tokens.
            for (r, &j) in m.masked_idx[i].iter().enumerate() {
                let (src, dst) = ((i * b.n + j) * b.k, (i * m.masked.n + r) * b.k);
                assert_eq!(&m.masked.coords[dst..dst + b.k], &b.coords[src..src + b.k]);
            }
        }
    }

    #[test]
    fn every_strategy_is_deterministic_and_skips_padding() {
        let b = grid(12, 10, 1.0, 0.5, &[120, 77, 1, 0]);
        for s in strategies() {
            let a = mask_batch(&b, &s, &mut Rng::new(5)).unwrap();
            let c = mask_batch(&b, &s, &mut Rng::new(5)).unwrap();
            assert_eq!(a.masked_idx, c.masked_idx, "{s:?}");
            assert_eq!(a.visible_idx, c.visible_idx, "{s:?}");
            let d = mask_batch(&b, &s, &mut Rng::new(6)).unwrap();
            assert_ne!(a.masked_idx, d.masked_idx, "{s:?}: seed ignored");
            check_partition(&b, &a);
            // Padding (indices ≥ len) is never selected.
            assert!(a.masked_idx[1]
                .iter()
                .chain(&a.visible_idx[1])
                .all(|&j| j < 77));
            assert_eq!(a.visible_idx[2], vec![0]);
            assert!(a.masked_idx[2].is_empty());
            assert!(a.visible_idx[3].is_empty() && a.masked_idx[3].is_empty());
        }
    }

    /// Masked fraction on a 16×16 grid: block and span hit `round(ratio·n)` exactly; group
    /// masks (16 groups of 16 tokens) land within half a group (1/32) of `ratio`.
    #[test]
    fn masked_fraction_matches_ratio() {
        let b = grid(16, 16, 0.02, 100.0, &[256; 4]);
        for &ratio in &[0.1f32, 0.3, 0.5, 0.75, 0.9] {
            let t = (256.0 * ratio).round() as usize;
            let cfgs = [
                MaskStrategy::Block(BlockMaskConfig {
                    ratio,
                    ..Default::default()
                }),
                MaskStrategy::Span(SpanMaskConfig {
                    ratio,
                    axis: 0,
                    span: 0.05,
                }),
            ];
            for s in &cfgs {
                let m = mask_batch(&b, s, &mut Rng::new(1)).unwrap();
                assert!(m.masked_idx.iter().all(|x| x.len() == t), "{s:?}");
            }
            let g = GroupMaskConfig {
                ratio,
                axis: 1,
                with_axes: vec![],
            };
            let m = group_mask(&b, &g, &mut Rng::new(1)).unwrap();
            for x in &m.masked_idx {
                let f = x.len() as f32 / 256.0;
                assert!((f - ratio).abs() <= 1.0 / 32.0 + 1e-6, "{ratio}: {f}");
            }
        }
    }

    #[test]
    fn block_masks_are_boxes() {
        let b = grid(14, 14, 1.5, 1.0, &[196, 150]);
        let k = b.k;
        for seed in 0..20 {
            for n_blocks in [1, 4] {
                let cfg = BlockMaskConfig {
                    n_blocks,
                    ratio: 0.4,
                    ..Default::default()
                };
                let mut rng = Rng::new(seed);
                let m = block_mask(&b, &cfg, &mut rng).unwrap();
                // Recompute with the same stream: same boxes, same mask.
                let mut rng = Rng::new(seed);
                for i in 0..b.b {
                    let coords = &b.coords[i * b.n * k..(i + 1) * b.n * k];
                    let real: Vec<usize> = (0..b.len_of(i)).collect();
                    let (mut mask, boxes, lam) = block_sample(coords, k, &real, &cfg, &mut rng);
                    mask.sort_unstable();
                    assert_eq!(mask, m.masked_idx[i]);
                    assert_eq!(boxes.len(), n_blocks);
                    // Geometry alone: is token j inside some box scaled by λ·(1 ∓ ε)
                    // about its centre (strictly inside / on the boundary allowed)?
                    let inside = |j: usize, strict: bool| {
                        let x = &coords[j * k..(j + 1) * k];
                        let l = if strict {
                            lam * (1.0 - 1e-9)
                        } else {
                            lam * (1.0 + 1e-9)
                        };
                        boxes.iter().any(|bx| {
                            (0..k).all(|d| (x[d] as f64 - bx.centre[d]).abs() <= l * bx.half[d])
                        })
                    };
                    for &j in &real {
                        let masked = m.masked_idx[i].binary_search(&j).is_ok();
                        if inside(j, true) {
                            assert!(masked, "seed {seed}: token {j} inside a box is visible");
                        }
                        if masked {
                            assert!(inside(j, false), "seed {seed}: token {j} outside boxes");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn span_masks_are_whole_spans() {
        // 20 time frames 0.1 s apart, 6 bands each: axis 0 is time.
        let w = 20;
        let b = {
            let n = w * 6;
            let coords: Vec<f32> = (0..n)
                .flat_map(|j| [(j / 6) as f32 * 0.1, (j % 6) as f32])
                .collect();
            let s = SampleTokens::new(vec![0.0; n], coords, n, 1, 2).unwrap();
            Tokens::from_samples(&[s]).unwrap()
        };
        for seed in 0..30 {
            let cfg = SpanMaskConfig {
                ratio: 0.45,
                axis: 0,
                span: 0.25,
            };
            let m = span_mask(&b, &cfg, &mut Rng::new(seed)).unwrap();
            let (mut mask, spans) = span_sample(
                &b.coords,
                2,
                &(0..b.n).collect::<Vec<_>>(),
                &cfg,
                &mut Rng::new(seed),
            );
            mask.sort_unstable();
            assert_eq!(mask, m.masked_idx[0]);
            assert_eq!(mask.len(), 54);
            let t = |j: usize| b.coords[j * 2] as f64;
            let in_span = |j: usize, s: &(f64, f64)| s.0 <= t(j) && t(j) <= s.1;
            let (last, whole) = spans.split_last().unwrap();
            for j in 0..b.n {
                let masked = mask.binary_search(&j).is_ok();
                // Every complete span is masked whole, and whole frames go together.
                if whole.iter().any(|s| in_span(j, s)) {
                    assert!(masked, "seed {seed}: token {j} in a span is visible");
                }
                // Nothing outside the spans; the last span is a prefix ending at its cut.
                if masked {
                    assert!(spans.iter().any(|s| in_span(j, s)), "seed {seed}: {j}");
                }
                if in_span(j, last) && t(j) < last.1 {
                    assert!(masked, "seed {seed}: last span has a hole at {j}");
                }
            }
            for s in whole {
                assert!(s.1 - s.0 >= 0.25 - 1e-6);
            }
        }
    }

    #[test]
    fn group_masks_are_whole_groups() {
        // 8 electrodes (axis 1) × 25 time steps (axis 0), tokens shuffled in the batch.
        let order = Rng::new(0).permutation(200);
        let coords: Vec<f32> = order
            .iter()
            .flat_map(|&j| [(j / 8) as f32 * 0.5, (j % 8) as f32])
            .collect();
        let s = SampleTokens::new(vec![0.0; 200], coords, 200, 1, 2).unwrap();
        let short = s.select(&(0..120).collect::<Vec<_>>());
        let b = Tokens::from_samples(&[s, short]).unwrap();
        for seed in 0..20 {
            for ratio in [0.05, 0.3, 0.5, 0.95] {
                let cfg = GroupMaskConfig {
                    ratio,
                    axis: 1,
                    with_axes: vec![],
                };
                let m = group_mask(&b, &cfg, &mut Rng::new(seed)).unwrap();
                check_partition(&b, &m);
                for i in 0..2 {
                    let g = |j: usize| b.coords[(i * b.n + j) * 2 + 1];
                    let masked_groups: Vec<f32> = m.masked_idx[i].iter().map(|&j| g(j)).collect();
                    for &j in &m.visible_idx[i] {
                        assert!(!masked_groups.contains(&g(j)), "group split");
                    }
                }
            }
        }
        // A single group falls back to token masking, keeping both sets non-empty.
        let one = grid(5, 1, 1.0, 1.0, &[5]);
        let m = group_mask(
            &one,
            &GroupMaskConfig {
                ratio: 0.5,
                axis: 1,
                with_axes: vec![],
            },
            &mut Rng::new(1),
        )
        .unwrap();
        assert_eq!((m.masked_idx[0].len(), m.visible_idx[0].len()), (3, 2));
    }

    #[test]
    fn groups_over_several_axes_mask_whole_electrodes() {
        // 6 electrodes × 4 time patches, K = 4 (x, y, z, t); electrodes 0-2 share x.
        let pos = [
            [0.0, 1.0, 2.0],
            [0.0, 2.0, 2.0],
            [0.0, 3.0, 1.0],
            [5.0, 1.0, 2.0],
            [6.0, 1.0, 2.0],
            [7.0, 0.0, 0.0],
        ];
        let mut coords = Vec::new();
        for p in &pos {
            for t in 0..4 {
                coords.extend([p[0], p[1], p[2], t as f32]);
            }
        }
        let s = SampleTokens::new(vec![0.0; 24], coords, 24, 1, 4).unwrap();
        let b = Tokens::from_samples(&[s.clone(), s]).unwrap();
        let cfg = GroupMaskConfig {
            ratio: 0.5,
            axis: 0,
            with_axes: vec![1, 2],
        };
        for seed in 0..20 {
            let m = group_mask(&b, &cfg, &mut Rng::new(seed)).unwrap();
            for i in 0..2 {
                let masked: Vec<usize> = m.masked_idx[i].iter().map(|j| j / 4).collect();
                for e in 0..6 {
                    let n = masked.iter().filter(|&&x| x == e).count();
                    assert!(n == 0 || n == 4, "electrode {e} split: {n} of 4 masked");
                }
                assert_eq!(m.masked_idx[i].len(), 12, "3 of 6 electrodes");
            }
        }
        let bad = GroupMaskConfig {
            ratio: 0.5,
            axis: 0,
            with_axes: vec![4],
        };
        assert!(group_mask(&b, &bad, &mut Rng::new(0)).is_err());
    }

    #[test]
    fn invalid_parameters_are_errors() {
        let b = grid(4, 4, 1.0, 1.0, &[16]);
        let bad = [
            MaskStrategy::Random(MaskConfig {
                ratio: 1.0,
                jitter: 0.0,
            }),
            MaskStrategy::Random(MaskConfig {
                ratio: 0.5,
                jitter: -0.1,
            }),
            MaskStrategy::Block(BlockMaskConfig {
                ratio: 0.0,
                ..Default::default()
            }),
            MaskStrategy::Block(BlockMaskConfig {
                ratio: f32::NAN,
                ..Default::default()
            }),
            MaskStrategy::Block(BlockMaskConfig {
                n_blocks: 0,
                ..Default::default()
            }),
            MaskStrategy::Block(BlockMaskConfig {
                scale: (0.3, 0.2),
                ..Default::default()
            }),
            MaskStrategy::Block(BlockMaskConfig {
                scale: (0.0, 0.2),
                ..Default::default()
            }),
            MaskStrategy::Block(BlockMaskConfig {
                scale: (0.5, 1.5),
                ..Default::default()
            }),
            MaskStrategy::Block(BlockMaskConfig {
                aspect: (-1.0, 1.0),
                ..Default::default()
            }),
            MaskStrategy::Block(BlockMaskConfig {
                aspect: (1.0, f32::INFINITY),
                ..Default::default()
            }),
            MaskStrategy::Span(SpanMaskConfig {
                ratio: 0.5,
                axis: 2,
                span: 1.0,
            }),
            MaskStrategy::Span(SpanMaskConfig {
                ratio: 0.5,
                axis: 0,
                span: 0.0,
            }),
            MaskStrategy::Span(SpanMaskConfig {
                ratio: 0.5,
                axis: 0,
                span: -1.0,
            }),
            MaskStrategy::Span(SpanMaskConfig {
                ratio: 1.5,
                axis: 0,
                span: 1.0,
            }),
            MaskStrategy::Group(GroupMaskConfig {
                ratio: 0.5,
                axis: 7,
                with_axes: vec![],
            }),
            MaskStrategy::Group(GroupMaskConfig {
                ratio: -0.5,
                axis: 0,
                with_axes: vec![],
            }),
        ];
        for s in &bad {
            assert!(mask_batch(&b, s, &mut Rng::new(0)).is_err(), "{s:?}");
            assert!(s.validate(b.k).is_err(), "{s:?}");
        }
        // Non-finite coordinates on the axes used, and inconsistent buffers, are errors.
        let mut nan = b.clone();
        nan.coords[4] = f32::NAN;
        nan.coords[5] = f32::NAN;
        for s in &strategies()[1..] {
            assert!(mask_batch(&nan, s, &mut Rng::new(0)).is_err(), "{s:?}");
        }
        let mut short = b.clone();
        short.padding.pop();
        for s in &strategies() {
            assert!(mask_batch(&short, s, &mut Rng::new(0)).is_err(), "{s:?}");
        }
    }

    #[test]
    fn strategies_read_from_toml_and_kindless_is_random() {
        #[derive(Deserialize)]
        struct Recipe {
            mask: MaskStrategy,
        }
        let r: Recipe = toml::from_str("[mask]\nratio = 0.6\njitter = 0.1\n").unwrap();
        assert_eq!(
            r.mask,
            MaskStrategy::Random(MaskConfig {
                ratio: 0.6,
                jitter: 0.1
            })
        );
        // MaskConfig itself reads as before.
        let c: MaskConfig = toml::from_str("ratio = 0.6\n").unwrap();
        assert_eq!(
            c,
            MaskConfig {
                ratio: 0.6,
                jitter: 0.0
            }
        );
        let r: Recipe = toml::from_str("[mask]\nkind = \"block\"\nn_blocks = 2\n").unwrap();
        assert_eq!(
            r.mask,
            MaskStrategy::Block(BlockMaskConfig {
                n_blocks: 2,
                ..Default::default()
            })
        );
        let r: Recipe = toml::from_str("[mask]\nkind = \"span\"\naxis = 1\nspan = 0.2\n").unwrap();
        assert_eq!(
            r.mask,
            MaskStrategy::Span(SpanMaskConfig {
                ratio: 0.5,
                axis: 1,
                span: 0.2
            })
        );
        let r: Recipe = toml::from_str("[mask]\nkind = \"group\"\naxis = 0\n").unwrap();
        assert_eq!(
            r.mask,
            MaskStrategy::Group(GroupMaskConfig {
                ratio: 0.5,
                axis: 0,
                with_axes: vec![],
            })
        );
        // Unknown kinds, unknown fields and missing required fields are errors.
        for bad in [
            "[mask]\nkind = \"blocks\"\n",
            "[mask]\nkind = \"block\"\nn_block = 2\n",
            "[mask]\nkind = \"span\"\naxis = 1\n",
        ] {
            assert!(toml::from_str::<Recipe>(bad).is_err(), "{bad}");
        }
        // Round trip.
        for s in strategies() {
            let text = toml::to_string(&s).unwrap();
            assert_eq!(toml::from_str::<MaskStrategy>(&text).unwrap(), s, "{text}");
        }
    }

    proptest::proptest! {
        #[test]
        fn visible_and_masked_partition_real_tokens(
            lens in proptest::collection::vec(0usize..40, 1..5),
            k in 1usize..4,
            seed in 0u64..1000,
            ratio in 0.01f32..0.99,
            which in 0usize..4,
            quant in 1u32..5,
        ) {
            let mut rng = Rng::new(seed ^ 0xabc);
            let samples: Vec<SampleTokens> = lens
                .iter()
                .map(|&n| {
                    // Coordinates on a coarse lattice so that groups and ties occur.
                    let coords = (0..n * k)
                        .map(|_| rng.below(quant as usize * 3) as f32 / quant as f32)
                        .collect();
                    SampleTokens::new(vec![1.0; n * 2], coords, n, 2, k).unwrap()
                })
                .collect();
            let b = Tokens::from_samples(&samples).unwrap();
            let s = match which {
                0 => MaskStrategy::Random(MaskConfig { ratio, jitter: 0.0 }),
                1 => MaskStrategy::Block(BlockMaskConfig { ratio, ..Default::default() }),
                2 => MaskStrategy::Span(SpanMaskConfig { ratio, axis: k - 1, span: 0.7 }),
                _ => MaskStrategy::Group(GroupMaskConfig {
                    ratio,
                    axis: 0,
                    with_axes: vec![],
                }),
            };
            let m = mask_batch(&b, &s, &mut Rng::new(seed)).unwrap();
            check_partition(&b, &m);
        }
    }
}
