//! Fused CPU kernels with backward passes: softmax over the last dimension and
//! layer normalisation. candle's own fused versions have no backward pass, and the
//! composed versions cost several full passes over memory each.
//!
//! Every public function here (and [`crate::attention::fused_attention`]) has a composed
//! fallback built from candle's differentiable operations: tensors on any device other
//! than the CPU (CUDA, Metal) take it, and [`force_composed`] (or the environment
//! variable `TESSERA_COMPOSED_OPS=1`) makes the CPU take it too, so the fallback path is
//! tested where no GPU is.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor, D};
use rayon::prelude::*;
use std::sync::atomic::{AtomicU8, Ordering};

/// 0: not decided yet (read `TESSERA_COMPOSED_OPS` on first use), 1: fused, 2: composed.
static COMPOSED: AtomicU8 = AtomicU8::new(0);

/// Makes every fused operation of this process use its composed fallback (`true`) or the
/// fused CPU kernel again (`false`). Process-wide: for tests and comparisons.
pub fn force_composed(on: bool) {
    COMPOSED.store(if on { 2 } else { 1 }, Ordering::Relaxed);
}

/// Whether an operation on `x` takes the composed fallback: `x` is not on the CPU, or the
/// fallback was forced.
pub fn composed(x: &Tensor) -> bool {
    if !x.device().is_cpu() {
        return true;
    }
    match COMPOSED.load(Ordering::Relaxed) {
        0 => {
            let on = std::env::var("TESSERA_COMPOSED_OPS").is_ok_and(|v| v == "1");
            force_composed(on);
            on
        }
        v => v == 2,
    }
}

/// `exp(x)` in f32 written so that loops over it vectorise (no libm call, no branch, no
/// saturating float-to-int cast): range reduction `x = n·ln2 + r` with round-to-nearest by
/// the 1.5·2²³ trick (whose low mantissa bits then hold `n` as an integer), then a
/// degree-6 polynomial. Relative error below 2e-7 on [-87, 88]; inputs below -87 give ~0
/// (as exp does).
#[inline(always)]
pub fn fast_exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23
    let x = if x < -87.0 { -87.0 } else { x };
    let x = if x > 88.0 { 88.0 } else { x };
    let shifted = x * LOG2E + MAGIC;
    let n = shifted - MAGIC;
    // `n` exactly, as an integer: |n| < 2^22, so it sits in the mantissa of `shifted`.
    let ni = shifted.to_bits() as i32 - MAGIC.to_bits() as i32;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (0.166_666_67 + r * (0.041_666_52 + r * (0.008_333_7 + r * 0.001_394_1)))));
    f32::from_bits(((ni + 127) as u32) << 23) * p
}

/// Runs `f` compiled for AVX2 and FMA when the CPU has them: the crate is built for
/// baseline x86-64 (SSE2), where the row loops below run 4 lanes wide with scalar
/// reductions. `f` is inlined into a function with those features enabled.
#[inline(always)]
pub fn simd<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2,fma")]
        fn wide<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU supports the features `wide` is compiled for.
            return unsafe { wide(f) };
        }
    }
    f()
}

/// Lanes of the reductions below: independent partial sums let the compiler vectorise
/// them (a single running sum must be added in order).
const LANES: usize = 16;

/// `f(0) ⊕ f(1) ⊕ … ⊕ f(n-1)` in [`LANES`] partial results, each started at `init` and
/// combined with `op`, then folded together in order (a fixed order: the result does not
/// depend on the CPU's vector width).
#[inline(always)]
fn lane_fold(n: usize, init: f32, f: impl Fn(usize) -> f32, op: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [init; LANES];
    let whole = n - n % LANES;
    for i in (0..whole).step_by(LANES) {
        for (l, a) in acc.iter_mut().enumerate() {
            *a = op(*a, f(i + l));
        }
    }
    for (l, a) in acc.iter_mut().enumerate().take(n - whole) {
        *a = op(*a, f(whole + l));
    }
    acc.iter().fold(init, |r, &a| op(r, a))
}

/// `Σ f(i)` over `0..n` in [`LANES`] partial sums.
#[inline(always)]
fn lane_sum(n: usize, f: impl Fn(usize) -> f32) -> f32 {
    lane_fold(n, 0.0, f, |a, b| a + b)
}

/// `Σ x`.
#[inline(always)]
pub(crate) fn sum(x: &[f32]) -> f32 {
    lane_sum(x.len(), |i| x[i])
}

/// `Σ a·b`.
#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    lane_sum(n, |i| a[i] * b[i])
}

/// The largest value of `x` (−∞ for an empty row; NaNs are skipped unless first).
#[inline(always)]
fn row_max(x: &[f32]) -> f32 {
    lane_fold(
        x.len(),
        f32::NEG_INFINITY,
        |i| x[i],
        |a, v| if v > a { v } else { a },
    )
}

/// Softmax of one row in place.
#[inline(always)]
pub(crate) fn softmax_in_place(r: &mut [f32]) {
    let mx = row_max(r);
    r.iter_mut().for_each(|x| *x = fast_exp(*x - mx));
    let inv = 1.0 / sum(r);
    r.iter_mut().for_each(|x| *x *= inv);
}

/// The contiguous f32 data of a CPU storage, or an error naming the op.
pub(crate) fn contiguous<'a>(
    s: &'a CpuStorage,
    l: &Layout,
    op: &str,
) -> candle_core::Result<&'a [f32]> {
    let data = match s {
        CpuStorage::F32(v) => v.as_slice(),
        _ => candle_core::bail!("{op}: only f32 is supported"),
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("{op}: input must be contiguous"),
    }
}

fn last_dim(l: &Layout) -> usize {
    l.dims().last().copied().unwrap_or(1).max(1)
}

/// Rows per parallel task: small rows are grouped so rayon's overhead stays small.
fn rows_per_task(dim: usize) -> usize {
    (16384 / dim).max(1)
}

/// `f(out_row, in_row)` over every row of length `d`, rows in parallel.
fn map_rows(x: &[f32], d: usize, f: impl Fn(&mut [f32], &[f32]) + Sync) -> Vec<f32> {
    let mut y = vec![0f32; x.len()];
    let chunk = d * rows_per_task(d);
    y.par_chunks_mut(chunk)
        .zip(x.par_chunks(chunk))
        .for_each(|(yc, xc)| {
            simd(
                #[inline(always)]
                || {
                    for (yr, xr) in yc.chunks_mut(d).zip(xc.chunks(d)) {
                        f(yr, xr);
                    }
                },
            )
        });
    y
}

/// `f(out_row, a_row, b_row)` over every row of length `d` of two equal-shaped inputs.
fn map_rows2(
    a: &[f32],
    b: &[f32],
    d: usize,
    f: impl Fn(&mut [f32], &[f32], &[f32]) + Sync,
) -> Vec<f32> {
    let mut y = vec![0f32; a.len()];
    let chunk = d * rows_per_task(d);
    y.par_chunks_mut(chunk)
        .zip(a.par_chunks(chunk).zip(b.par_chunks(chunk)))
        .for_each(|(yc, (ac, bc))| {
            simd(
                #[inline(always)]
                || {
                    for ((yr, ar), br) in yc.chunks_mut(d).zip(ac.chunks(d)).zip(bc.chunks(d)) {
                        f(yr, ar, br);
                    }
                },
            )
        });
    y
}

struct Softmax;

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "tessera-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous(s, l, "softmax")?;
        let d = last_dim(l);
        let y = map_rows(
            x,
            d,
            #[inline(always)]
            |yr, xr| {
                yr.copy_from_slice(xr);
                softmax_in_place(yr);
            },
        );
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let g = grad.contiguous()?;
        Ok(Some(res.apply_op2_no_bwd(&g, &SoftmaxBwd)?))
    }
}

/// dx = y * (g - sum(g * y)) per row.
struct SoftmaxBwd;

impl CustomOp2 for SoftmaxBwd {
    fn name(&self) -> &'static str {
        "tessera-softmax-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let y = contiguous(s1, l1, "softmax-bwd")?;
        let g = contiguous(s2, l2, "softmax-bwd")?;
        let d = last_dim(l1);
        let dx = map_rows2(
            y,
            g,
            d,
            #[inline(always)]
            |dr, yr, gr| {
                let dot = dot(yr, gr);
                for ((o, &yv), &gv) in dr.iter_mut().zip(yr).zip(gr) {
                    *o = yv * (gv - dot);
                }
            },
        );
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

struct Normalize {
    eps: f32,
}

#[inline(always)]
fn moments(x: &[f32], eps: f32) -> (f32, f32) {
    let d = x.len() as f32;
    let mean = sum(x) / d;
    let var = lane_sum(x.len(), |i| (x[i] - mean) * (x[i] - mean)) / d;
    (mean, 1.0 / (var + eps).sqrt())
}

impl CustomOp1 for Normalize {
    fn name(&self) -> &'static str {
        "tessera-normalize"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous(s, l, "layer-norm")?;
        let d = last_dim(l);
        let eps = self.eps;
        let y = map_rows(
            x,
            d,
            #[inline(always)]
            |yr, xr| {
                let (mean, rstd) = moments(xr, eps);
                for (o, &v) in yr.iter_mut().zip(xr) {
                    *o = (v - mean) * rstd;
                }
            },
        );
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let g = grad.contiguous()?;
        let x = arg.contiguous()?;
        Ok(Some(
            x.apply_op2_no_bwd(&g, &NormalizeBwd { eps: self.eps })?,
        ))
    }
}

/// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) per row.
struct NormalizeBwd {
    eps: f32,
}

impl CustomOp2 for NormalizeBwd {
    fn name(&self) -> &'static str {
        "tessera-normalize-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous(s1, l1, "layer-norm-bwd")?;
        let g = contiguous(s2, l2, "layer-norm-bwd")?;
        let d = last_dim(l1);
        let eps = self.eps;
        let dx = map_rows2(
            x,
            g,
            d,
            #[inline(always)]
            |dr, xr, gr| {
                let (mean, rstd) = moments(xr, eps);
                let n = d as f32;
                let mg = sum(gr) / n;
                let mgx = lane_sum(d, |i| gr[i] * (xr[i] - mean) * rstd) / n;
                for ((o, &xv), &gv) in dr.iter_mut().zip(xr).zip(gr) {
                    *o = rstd * (gv - mg - (xv - mean) * rstd * mgx);
                }
            },
        );
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

/// Column sums of a contiguous `[rows, cols]` buffer, in a fixed order (chunks of rows
/// summed in parallel, partials added sequentially) so results do not depend on threads.
fn col_sums(x: &[f32], cols: usize) -> Vec<f32> {
    let rows_per = (65536 / cols.max(1)).max(1);
    let partials: Vec<Vec<f32>> = x
        .par_chunks(rows_per * cols)
        .map(|chunk| {
            let mut acc = vec![0f32; cols];
            for row in chunk.chunks(cols) {
                for (a, v) in acc.iter_mut().zip(row) {
                    *a += v;
                }
            }
            acc
        })
        .collect();
    let mut out = vec![0f32; cols];
    for p in partials {
        for (o, v) in out.iter_mut().zip(p) {
            *o += v;
        }
    }
    out
}

/// `[.., C] -> [C]`: sum over every leading dimension.
pub(crate) struct ColSum;

impl CustomOp1 for ColSum {
    fn name(&self) -> &'static str {
        "tessera-colsum"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous(s, l, "colsum")?;
        let c = last_dim(l);
        Ok((CpuStorage::F32(col_sums(x, c)), Shape::from(c)))
    }
}

/// `x [.., C] + b [C]` with a backward pass that reduces the bias gradient in one sweep.
struct AddBias;

impl CustomOp2 for AddBias {
    fn name(&self) -> &'static str {
        "tessera-add-bias"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous(s1, l1, "add-bias")?;
        let b = contiguous(s2, l2, "add-bias")?;
        let c = last_dim(l1);
        if b.len() != c {
            candle_core::bail!("add-bias: bias has {} values, rows have {c}", b.len());
        }
        let y = map_rows(
            x,
            c,
            #[inline(always)]
            |yr, xr| {
                for ((o, v), bv) in yr.iter_mut().zip(xr).zip(b) {
                    *o = v + bv;
                }
            },
        );
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let g = grad.contiguous()?;
        let gb = g.apply_op1_no_bwd(&ColSum)?.reshape(b.shape())?;
        Ok((Some(g), Some(gb)))
    }
}

/// Adds a bias `[C]` to the last dimension of `x`.
pub fn add_bias(x: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    if composed(x) {
        return x.broadcast_add(b);
    }
    x.contiguous()?.apply_op2(&b.contiguous()?, AddBias)
}

/// Fused layer norm `(x - mean) / sqrt(var + eps) * w + b` over the last dimension.
struct LayerNormOp {
    eps: f32,
}

impl candle_core::CustomOp3 for LayerNormOp {
    fn name(&self) -> &'static str {
        "tessera-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous(s1, l1, "layer-norm")?;
        let w = contiguous(s2, l2, "layer-norm")?;
        let b = contiguous(s3, l3, "layer-norm")?;
        let d = last_dim(l1);
        let eps = self.eps;
        let y = map_rows(
            x,
            d,
            #[inline(always)]
            |yr, xr| {
                let (mean, rstd) = moments(xr, eps);
                for i in 0..d {
                    yr[i] = (xr[i] - mean) * rstd * w[i] + b[i];
                }
            },
        );
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = grad.contiguous()?;
        let x = x.contiguous()?;
        let d = x.dims().last().copied().unwrap_or(1);
        // dx from the normalised gradient g * w; dw = colsum(g * xhat); db = colsum(g).
        let gw = g.broadcast_mul(w)?;
        let dx = x.apply_op2_no_bwd(&gw, &NormalizeBwd { eps: self.eps })?;
        let xhat = x.apply_op1_no_bwd(&Normalize { eps: self.eps })?;
        let dw = (&g * xhat)?.apply_op1_no_bwd(&ColSum)?.reshape(d)?;
        let db = g.apply_op1_no_bwd(&ColSum)?.reshape(d)?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

/// GELU with the exact (erf) form, as timm's `nn.GELU()`.
struct Gelu;

/// erf in f32 (Abramowitz & Stegun 7.1.26 refined: |error| < 1.5e-7 relative to 1).
#[inline(always)]
fn erf(x: f32) -> f32 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * z);
    let poly = t
        * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_8 + t * (-1.453_152_1 + t * 1.061_405_4))));
    let e = 1.0 - poly * fast_exp(-z * z);
    if x >= 0.0 {
        e
    } else {
        -e
    }
}

/// Block length for elementwise kernels run through [`map_rows`].
const ELEMENTWISE_BLOCK: usize = 16384;
const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
const INV_SQRT_2PI: f32 = 0.398_942_3;

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        "tessera-gelu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous(s, l, "gelu")?;
        // Elementwise: "rows" are just blocks of the flat buffer.
        let y = map_rows(
            x,
            ELEMENTWISE_BLOCK,
            #[inline(always)]
            |yc, xc| {
                for (o, &v) in yc.iter_mut().zip(xc) {
                    *o = 0.5 * v * (1.0 + erf(v * FRAC_1_SQRT_2));
                }
            },
        );
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(
            arg.contiguous()?
                .apply_op2_no_bwd(&grad.contiguous()?, &GeluBwd)?,
        ))
    }
}

/// d/dx gelu(x) = Φ(x) + x φ(x).
struct GeluBwd;

impl CustomOp2 for GeluBwd {
    fn name(&self) -> &'static str {
        "tessera-gelu-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous(s1, l1, "gelu-bwd")?;
        let g = contiguous(s2, l2, "gelu-bwd")?;
        let dx = map_rows2(
            x,
            g,
            ELEMENTWISE_BLOCK,
            #[inline(always)]
            |dc, xc, gc| {
                for ((o, &v), &gv) in dc.iter_mut().zip(xc).zip(gc) {
                    let cdf = 0.5 * (1.0 + erf(v * FRAC_1_SQRT_2));
                    let pdf = INV_SQRT_2PI * fast_exp(-0.5 * v * v);
                    *o = gv * (cdf + v * pdf);
                }
            },
        );
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

/// Exact GELU with a fused backward pass.
pub fn gelu(x: &Tensor) -> candle_core::Result<Tensor> {
    if composed(x) {
        return x.gelu_erf();
    }
    x.contiguous()?.apply_op1(Gelu)
}

/// `softmax(scale * att + bias)` over the last dimension, where `att [B, H, N, M]` and
/// `bias [B, M]` (0 for real keys, a large negative number for padding). Fused forward and
/// backward; no gradient flows to `bias`.
struct MaskedSoftmax {
    scale: f32,
}

impl CustomOp2 for MaskedSoftmax {
    fn name(&self) -> &'static str {
        "tessera-masked-softmax"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous(s1, l1, "masked-softmax")?;
        let bias = contiguous(s2, l2, "masked-softmax")?;
        let m = last_dim(l1);
        let dims = l1.dims();
        let b = dims.first().copied().unwrap_or(1);
        if bias.len() != b * m {
            candle_core::bail!(
                "masked-softmax: bias has {} values, expected {b}x{m}",
                bias.len()
            );
        }
        let rows_per_batch = x.len() / m / b.max(1);
        let scale = self.scale;
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(m)
            .zip(x.par_chunks(m))
            .enumerate()
            .for_each(|(r, (yr, xr))| {
                let br = &bias[(r / rows_per_batch) * m..(r / rows_per_batch + 1) * m];
                simd(
                    #[inline(always)]
                    || {
                        for (o, (&v, &bv)) in yr.iter_mut().zip(xr.iter().zip(br)) {
                            *o = v * scale + bv;
                        }
                        softmax_in_place(yr);
                    },
                )
            });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        _bias: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let g = grad.contiguous()?;
        let dx = res.apply_op2_no_bwd(&g, &SoftmaxBwd)?;
        Ok((Some((dx * self.scale as f64)?), None))
    }
}

/// `softmax(scale * att + bias)`: `att [B, H, N, M]`, `bias [B, M]`.
pub fn masked_softmax(att: &Tensor, bias: &Tensor, scale: f32) -> candle_core::Result<Tensor> {
    if composed(att) {
        let (b, m) = bias.dims2()?;
        let scores = (att * scale as f64)?.broadcast_add(&bias.reshape((b, 1, 1, m))?)?;
        return candle_nn::ops::softmax(&scores, D::Minus1);
    }
    att.contiguous()?
        .apply_op2(&bias.contiguous()?, MaskedSoftmax { scale })
}

/// Softmax over the last dimension (f32, CPU), with a fused backward pass.
pub fn softmax_last_dim(x: &Tensor) -> candle_core::Result<Tensor> {
    if composed(x) {
        return candle_nn::ops::softmax(x, D::Minus1);
    }
    x.contiguous()?.apply_op1(Softmax)
}

/// `(x - mean) / sqrt(var + eps)` over the last dimension, with a fused backward pass.
pub fn normalize_last_dim(x: &Tensor, eps: f32) -> candle_core::Result<Tensor> {
    if composed(x) {
        let centred = x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?;
        let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
        return centred.broadcast_div(&(var + eps as f64)?.sqrt()?);
    }
    x.contiguous()?.apply_op1(Normalize { eps })
}

/// Layer normalisation over the last dimension with affine `weight` and `bias` `[D]`.
pub fn layer_norm(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f32,
) -> candle_core::Result<Tensor> {
    if composed(x) {
        return normalize_last_dim(x, eps)?
            .broadcast_mul(weight)?
            .broadcast_add(bias);
    }
    x.contiguous()?.apply_op3(weight, bias, LayerNormOp { eps })
}

/// The zero-padded `k³` neighbourhoods of a channel-last volume `[B, Z, Y, X, C]` as
/// `[B, Z, Y, X, k³·C]` (neighbourhood-major: `dz, dy, dx`, then channel), from candle's
/// differentiable ops (any device): zero-pad each spatial axis,
/// then take the `k³` shifted windows, `dx` fastest, and concatenate them before the
/// channels.
pub fn unfold3d_composed(x: &Tensor, k: usize) -> candle_core::Result<Tensor> {
    let (_, z, y, w, _) = x.dims5()?;
    let (lo, hi) = (k / 2, k - 1 - k / 2);
    let p = x
        .pad_with_zeros(1, lo, hi)?
        .pad_with_zeros(2, lo, hi)?
        .pad_with_zeros(3, lo, hi)?;
    let mut parts = Vec::with_capacity(k * k * k);
    for dz in 0..k {
        for dy in 0..k {
            for dx in 0..k {
                parts.push(p.narrow(1, dz, z)?.narrow(2, dy, y)?.narrow(3, dx, w)?);
            }
        }
    }
    Tensor::cat(&parts, 4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var, D};
    use tessera_tokens::Rng;

    /// `mean + std * N(0, 1)` from the seeded generator, as a CPU tensor of `shape`
    /// (candle's own generator cannot be seeded).
    fn randn(rng: &mut Rng, mean: f32, std: f32, shape: &[usize]) -> Tensor {
        let n = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| mean + std * rng.normal() as f32).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    fn reference_grads(x: &Var, f: impl Fn(&Tensor) -> Tensor, w: &Tensor) -> (Vec<f32>, Vec<f32>) {
        let y = f(x.as_tensor());
        let loss = (y.clone() * w).unwrap().sum_all().unwrap();
        let g = loss.backward().unwrap();
        (
            y.flatten_all().unwrap().to_vec1().unwrap(),
            g.get(x).unwrap().flatten_all().unwrap().to_vec1().unwrap(),
        )
    }

    fn close(a: &[f32], b: &[f32], tol: f32) {
        assert_eq!(a.len(), b.len(), "lengths differ");
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < tol, "{x} vs {y}");
        }
    }

    #[test]
    fn fused_ops_match_composed_ops_forward_and_backward() {
        let dev = Device::Cpu;
        let mut rng = Rng::new(11);
        let x = Var::from_tensor(&randn(&mut rng, 0.0, 2.0, &[3, 5, 37])).unwrap();
        let w = randn(&mut rng, 0.0, 1.0, &[3, 5, 37]);
        let (y1, g1) = reference_grads(&x, |t| softmax_last_dim(t).unwrap(), &w);
        let (y2, g2) = reference_grads(&x, |t| candle_nn::ops::softmax(t, D::Minus1).unwrap(), &w);
        close(&y1, &y2, 1e-6);
        close(&g1, &g2, 1e-5);
        let (y1, g1) = reference_grads(&x, |t| normalize_last_dim(t, 1e-6).unwrap(), &w);
        let slow = |t: &Tensor| {
            let ones = Tensor::ones(37, candle_core::DType::F32, &dev).unwrap();
            let zeros = Tensor::zeros(37, candle_core::DType::F32, &dev).unwrap();
            candle_nn::ops::layer_norm_slow(t, &ones, &zeros, 1e-6).unwrap()
        };
        let (y2, g2) = reference_grads(&x, slow, &w);
        close(&y1, &y2, 1e-5);
        close(&g1, &g2, 1e-4);
        let (y1, g1) = reference_grads(&x, |t| gelu(t).unwrap(), &w);
        let (y2, g2) = reference_grads(&x, |t| t.gelu_erf().unwrap(), &w);
        close(&y1, &y2, 1e-5);
        close(&g1, &g2, 1e-4);
        // Masked, scaled softmax equals softmax of the explicitly biased scores.
        let bias = Tensor::new(
            &[
                [0f32, 0.0, -1e9, 0.0, 0.0],
                [0.0, -1e9, -1e9, 0.0, 0.0],
                [0.0; 5],
            ],
            &dev,
        )
        .unwrap();
        let xa = Var::from_tensor(&randn(&mut rng, 0.0, 1.0, &[3, 2, 4, 5])).unwrap();
        let wa = randn(&mut rng, 0.0, 1.0, &[3, 2, 4, 5]);
        let (y1, g1) = reference_grads(&xa, |t| masked_softmax(t, &bias, 0.5).unwrap(), &wa);
        let b4 = bias.reshape((3, 1, 1, 5)).unwrap();
        let (y2, g2) = reference_grads(
            &xa,
            |t| {
                candle_nn::ops::softmax(&(t * 0.5).unwrap().broadcast_add(&b4).unwrap(), D::Minus1)
                    .unwrap()
            },
            &wa,
        );
        close(&y1, &y2, 1e-6);
        close(&g1, &g2, 1e-5);
    }

    #[test]
    fn fast_exp_is_accurate() {
        // Relative error below 3e-7 on [-87, 88] (the documented range), on a fine grid
        // plus seeded random points.
        let mut rng = Rng::new(13);
        let grid = (0..)
            .map(|i| -87.0 + 0.0137 * i as f32)
            .take_while(|&x| x <= 88.0);
        let random: Vec<f32> = (0..20_000)
            .map(|_| -87.0 + 175.0 * rng.uniform() as f32)
            .collect();
        for x in grid.chain(random).chain([-87.0, 0.0, 88.0]) {
            let (a, b) = (fast_exp(x), x.exp());
            assert!((a - b).abs() <= 3e-7 * b, "{x}: {a} vs {b}");
        }
        assert_eq!(fast_exp(0.0), 1.0);
        // Below the range the input is clamped: a tiny positive value, never NaN or < 0.
        let floor = fast_exp(-87.0);
        for x in [-87.5f32, -90.0, -1e4, f32::MIN] {
            assert_eq!(fast_exp(x), floor, "{x}");
        }
        assert!(floor > 0.0 && floor < 2e-38);
    }

    #[test]
    fn fused_affine_ops_give_parameter_gradients() {
        let mut rng = Rng::new(12);
        let x = Var::from_tensor(&randn(&mut rng, 0.0, 1.0, &[2, 3, 8])).unwrap();
        let wv = Var::from_tensor(&randn(&mut rng, 1.0, 0.1, &[8])).unwrap();
        let bv = Var::from_tensor(&randn(&mut rng, 0.0, 0.1, &[8])).unwrap();
        let r = randn(&mut rng, 0.0, 1.0, &[2, 3, 8]);
        let grads = |fused: bool| -> Vec<Vec<f32>> {
            let y = if fused {
                add_bias(
                    &layer_norm(x.as_tensor(), wv.as_tensor(), bv.as_tensor(), 1e-5).unwrap(),
                    bv.as_tensor(),
                )
                .unwrap()
            } else {
                let ln = candle_nn::ops::layer_norm_slow(
                    x.as_tensor(),
                    wv.as_tensor(),
                    bv.as_tensor(),
                    1e-5,
                )
                .unwrap();
                ln.broadcast_add(bv.as_tensor()).unwrap()
            };
            let g = (y * &r).unwrap().sum_all().unwrap().backward().unwrap();
            [x.as_tensor(), wv.as_tensor(), bv.as_tensor()]
                .iter()
                .map(|t| g.get(t).unwrap().flatten_all().unwrap().to_vec1().unwrap())
                .collect()
        };
        for (a, b) in grads(true).iter().zip(grads(false).iter()) {
            close(a, b, 1e-4);
        }
    }
}
