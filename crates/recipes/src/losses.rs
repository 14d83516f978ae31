//! Losses shared by recipes: cross-entropy (hard or soft targets), InfoNCE, soft Dice,
//! smooth L1 and Chamfer-L2.
//!
//! Every function takes and returns candle [`Tensor`]s and is composed from candle ops that
//! have backward passes, so `loss.backward()` reaches the inputs. Masks are float tensors
//! (any float dtype; they are converted to the input's): `keep` is 1 where a row or element
//! counts and 0 where it does not; Chamfer's `a_pad`/`b_pad` follow the token convention
//! (`Tokens::padding`: 1 = padding). A masked-out row never influences the value, as long
//! as its contents are finite. Mismatched shapes and invalid hyperparameters are
//! [`CoreError`]s, not panics.

use crate::Result;
use candle_core::{DType, Tensor, D};
use tessera_core::CoreError;

/// Smoothing of the soft Dice ratio (keeps absent classes finite).
pub const DICE_EPS: f64 = 1e-5;

/// Added to the squared distance of padded points so that no minimum picks them.
const CHAMFER_FAR: f64 = 1e30;

fn shape_err(what: &str, expected: impl Into<String>, got: &[usize]) -> CoreError {
    CoreError::Shape {
        what: what.to_string(),
        expected: expected.into(),
        got: format!("{got:?}"),
    }
}

fn same_shape(what: &str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.dims() != b.dims() {
        return Err(shape_err(what, format!("{:?}", a.dims()), b.dims()));
    }
    Ok(())
}

/// `keep` must be shaped like `x` without its last dimension; returned in `x`'s dtype.
fn row_keep(what: &str, x: &Tensor, keep: &Tensor) -> Result<Tensor> {
    let rows = &x.dims()[..x.rank() - 1];
    if keep.dims() != rows {
        return Err(shape_err(what, format!("{rows:?}"), keep.dims()));
    }
    Ok(keep.to_dtype(x.dtype())?)
}

/// Sum of all elements as an `f64` on the host.
fn host_sum(t: &Tensor) -> Result<f64> {
    Ok(t.sum_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?)
}

/// `log_softmax` over the last dimension, from ops with backward passes. The row maximum
/// is subtracted first (numerical stability); it is a constant shift, so it is detached.
///
/// # Shapes
/// `x [.., C]` → `[.., C]`
pub fn log_softmax(x: &Tensor) -> Result<Tensor> {
    let m = x.max_keepdim(D::Minus1)?.detach();
    let z = x.broadcast_sub(&m)?;
    let lse = z.exp()?.sum_keepdim(D::Minus1)?.log()?;
    Ok(z.broadcast_sub(&lse)?)
}

/// Negative log-likelihood of log-probabilities against target distributions, averaged
/// over the kept rows: `−Σ_rows keep · Σ_c target_c · log_probs_c / max(Σ keep, 1)`
/// (without `keep`, the mean over all rows). [`cross_entropy`] is this after
/// [`log_softmax`]; use this form to share one `log_softmax` between several losses.
///
/// # Shapes
/// `log_probs [.., C]`, `target [.., C]` (one-hot or probabilities), `keep [..]`
/// (optional, 1 = counts) → scalar `[]`
pub fn nll(log_probs: &Tensor, target: &Tensor, keep: Option<&Tensor>) -> Result<Tensor> {
    if log_probs.rank() == 0 || log_probs.dim(D::Minus1)? == 0 {
        return Err(shape_err(
            "nll: log_probs",
            "[.., C] with C > 0",
            log_probs.dims(),
        ));
    }
    same_shape("nll: target", log_probs, target)?;
    let (weighted, n) = match keep {
        Some(keep) => {
            let keep = row_keep("nll: keep", log_probs, keep)?;
            let n = host_sum(&keep)?.max(1.0);
            (target.broadcast_mul(&keep.unsqueeze(D::Minus1)?)?, n)
        }
        None => {
            let rows = log_probs.elem_count() / log_probs.dim(D::Minus1)?;
            (target.clone(), rows.max(1) as f64)
        }
    };
    Ok(((log_probs * weighted)?.sum_all()?.neg()? / n)?)
}

/// Cross-entropy of logits against one-hot or probability targets, averaged over the kept
/// rows (numerically stable: log-softmax with the row maximum subtracted). Gradients flow
/// to `logits` and, if it is a variable, to `target` (see [`soft_cross_entropy`] for a
/// target that must not receive any).
///
/// # Shapes
/// `logits [.., C]`, `target [.., C]`, `keep [..]` (optional, 1 = counts) → scalar `[]`
pub fn cross_entropy(logits: &Tensor, target: &Tensor, keep: Option<&Tensor>) -> Result<Tensor> {
    same_shape("cross_entropy: target", logits, target)?;
    nll(&log_softmax(logits)?, target, keep)
}

/// Cross-entropy of student logits against teacher probabilities (DINO's
/// `−Σ P_t log P_s`), averaged over the kept rows. The teacher is detached: no gradient
/// reaches it. Sharpening and centring of the teacher are the recipe's business.
///
/// # Shapes
/// `student_logits [.., C]`, `teacher_probs [.., C]`, `keep [..]` (optional, 1 = counts)
/// → scalar `[]`
pub fn soft_cross_entropy(
    student_logits: &Tensor,
    teacher_probs: &Tensor,
    keep: Option<&Tensor>,
) -> Result<Tensor> {
    cross_entropy(student_logits, &teacher_probs.detach(), keep)
}

/// Soft Dice loss as Volume Fusion (MIS-FM) uses it:
/// `1 − mean_c (2 Σ p_c y_c + ε) / (Σ p_c + Σ y_c + ε)` with `ε =` [`DICE_EPS`], the sums
/// running over the kept rows of the whole batch (not per sample) and the mean over all `C`
/// classes (absent classes included: their ratio is ε/(Σ p_c + ε)).
///
/// # Shapes
/// `probs [B, V, C]`, `onehot [B, V, C]`, `keep [B, V]` (optional, 1 = counts) → scalar `[]`
pub fn soft_dice(probs: &Tensor, onehot: &Tensor, keep: Option<&Tensor>) -> Result<Tensor> {
    if probs.rank() != 3 {
        return Err(shape_err("soft_dice: probs", "[B, V, C]", probs.dims()));
    }
    same_shape("soft_dice: onehot", probs, onehot)?;
    let (probs, onehot) = match keep {
        Some(keep) => {
            let keep = row_keep("soft_dice: keep", probs, keep)?.unsqueeze(D::Minus1)?;
            (probs.broadcast_mul(&keep)?, onehot.broadcast_mul(&keep)?)
        }
        None => (probs.clone(), onehot.clone()),
    };
    let inter = (&probs * &onehot)?.sum((0, 1))?; // [C]
    let denom = (probs.sum((0, 1))? + onehot.sum((0, 1))?)?;
    let ratio = (((inter * 2.0)? + DICE_EPS)? / (denom + DICE_EPS)?)?;
    Ok((1.0 - ratio.mean_all()?)?)
}

/// Rows scaled to unit L2 norm (`x / max(‖x‖, 1e-12)`, as `F.normalize`).
pub fn l2_normalise(x: &Tensor) -> Result<Tensor> {
    let norm = x.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.maximum(1e-12)?;
    Ok(x.broadcast_div(&norm)?)
}

/// InfoNCE as in SimCLR / MoCo v3: rows of `q` and `k` are L2-normalised, the logits are
/// `q̂ k̂ᵀ / temperature`, the positive of query `i` is key `i` (the diagonal) and the other
/// keys of the batch are its negatives; the loss is the cross-entropy averaged over the N
/// queries. With `symmetric`, it is the mean of the q→k and k→q losses. (MoCo v3 further
/// scales by `2τ`; that is the recipe's choice.)
///
/// # Shapes
/// `q [N, D]`, `k [N, D]` → scalar `[]`
pub fn info_nce(q: &Tensor, k: &Tensor, temperature: f64, symmetric: bool) -> Result<Tensor> {
    if !(temperature.is_finite() && temperature > 0.0) {
        return Err(CoreError::Config(format!(
            "info_nce: temperature must be positive and finite, got {temperature}"
        )));
    }
    let (n, _) = q
        .dims2()
        .map_err(|_| shape_err("info_nce: q", "[N, D]", q.dims()))?;
    same_shape("info_nce: k", q, k)?;
    if n == 0 {
        return Err(shape_err("info_nce: q", "[N, D] with N > 0", q.dims()));
    }
    let logits = (l2_normalise(q)?.matmul(&l2_normalise(k)?.t()?)? / temperature)?; // [N, N]
    let eye = Tensor::eye(n, logits.dtype(), logits.device())?;
    let q_to_k = nll(&log_softmax(&logits)?, &eye, None)?;
    if !symmetric {
        return Ok(q_to_k);
    }
    let k_to_q = nll(&log_softmax(&logits.t()?)?, &eye, None)?;
    Ok(((q_to_k + k_to_q)? * 0.5)?)
}

/// Mean squared error per row (the mean over the last dimension), averaged over the kept
/// rows: `Σ keep · mean_d (pred − target)² / max(Σ keep, 1)`; also returns that
/// denominator (the number of rows counted, at least 1). MAE's and data2vec's loss.
///
/// # Shapes
/// `pred [B, M, D]`, `target [B, M, D]`, `keep [B, M]` (1 = counts) → (scalar `[]`, count)
pub fn masked_mse(pred: &Tensor, target: &Tensor, keep: &Tensor) -> Result<(Tensor, f32)> {
    same_shape("masked_mse: target", pred, target)?;
    let keep = row_keep("masked_mse: keep", pred, keep)?;
    let per_row = (pred - target)?.sqr()?.mean(D::Minus1)?;
    let n = keep.sum_all()?.to_scalar::<f32>()?.max(1.0);
    Ok((((per_row * keep)?.sum_all()? / n as f64)?, n))
}

/// Smooth L1 (Huber-like) loss with PyTorch's definition: per element `x = pred − target`,
/// `0.5 x² / β` where `|x| < β` and `|x| − 0.5 β` elsewhere (`β = 0` is plain L1), averaged
/// over the kept elements. Computed as `0.5 min(|x|, β)² / β + |x| − min(|x|, β)`, which is
/// the same function.
///
/// # Shapes
/// `pred [..]`, `target [..]` (same shape); `keep` (optional, 1 = counts) either shaped
/// like `pred` (per element) or like `pred` without its last dimension (per row: a kept row
/// counts all its elements) → scalar `[]`
pub fn smooth_l1(
    pred: &Tensor,
    target: &Tensor,
    beta: f64,
    keep: Option<&Tensor>,
) -> Result<Tensor> {
    if !(beta.is_finite() && beta >= 0.0) {
        return Err(CoreError::Config(format!(
            "smooth_l1: beta must be finite and non-negative, got {beta}"
        )));
    }
    same_shape("smooth_l1: target", pred, target)?;
    let a = (pred - target)?.abs()?;
    let per = if beta > 0.0 {
        let m = a.minimum(beta)?;
        ((m.sqr()? * (0.5 / beta))? + (&a - &m)?)?
    } else {
        a
    };
    match keep {
        None => Ok(per.mean_all()?),
        Some(keep) => {
            let keep = keep.to_dtype(per.dtype())?;
            let keep = if keep.dims() == per.dims() {
                keep
            } else if per.rank() > 0 && keep.dims() == &per.dims()[..per.rank() - 1] {
                keep.unsqueeze(D::Minus1)?.broadcast_as(per.shape())?
            } else {
                return Err(shape_err(
                    "smooth_l1: keep",
                    format!("{:?} or its rows", per.dims()),
                    keep.dims(),
                ));
            };
            let n = host_sum(&keep)?.max(1.0);
            Ok(((per * keep)?.sum_all()? / n)?)
        }
    }
}

/// Per-sample keep mask `[B, L]` (1 = real) from an optional padding mask, checked, in
/// `x`'s dtype, with the host-side count of real points per sample.
fn chamfer_keep(what: &str, x: &Tensor, pad: Option<&Tensor>) -> Result<(Tensor, Vec<f64>)> {
    let (b, l, _) = x.dims3()?;
    let keep = match pad {
        Some(pad) => {
            if pad.dims() != [b, l] {
                return Err(shape_err(what, format!("[{b}, {l}]"), pad.dims()));
            }
            (1.0 - pad.to_dtype(x.dtype())?)?
        }
        None => Tensor::ones((b, l), x.dtype(), x.device())?,
    };
    let counts = keep.sum(1)?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
    if let Some(i) = counts.iter().position(|&c| c < 0.5) {
        return Err(CoreError::Config(format!(
            "chamfer_l2: sample {i} of {what} has no real points"
        )));
    }
    Ok((keep, counts))
}

/// Chamfer-L2 distance as Point-MAE uses it: for each sample, the mean over the real points
/// of `a` of the squared distance to the nearest real point of `b`, plus the same from `b`
/// to `a`; then the mean over the samples. Padded points (`a_pad`/`b_pad` = 1) are neither
/// matched nor averaged; a sample with no real point in `a` or `b` is an error. Memory is
/// `O(B·N·M·D)` (exact differences, no `‖a‖² + ‖b‖² − 2a·b` cancellation).
///
/// # Shapes
/// `a [B, N, D]`, `b [B, M, D]` (any `D`, 3 for points), `a_pad [B, N]`, `b_pad [B, M]`
/// (optional, 1 = padding) → scalar `[]`
pub fn chamfer_l2(
    a: &Tensor,
    b: &Tensor,
    a_pad: Option<&Tensor>,
    b_pad: Option<&Tensor>,
) -> Result<Tensor> {
    let (ba, _, da) = a
        .dims3()
        .map_err(|_| shape_err("chamfer_l2: a", "[B, N, D]", a.dims()))?;
    let (bb, _, db) = b
        .dims3()
        .map_err(|_| shape_err("chamfer_l2: b", "[B, M, D]", b.dims()))?;
    if ba != bb || da != db || ba == 0 {
        return Err(shape_err(
            "chamfer_l2: b",
            format!("[{ba}, M, {da}] with B > 0"),
            b.dims(),
        ));
    }
    let (keep_a, count_a) = chamfer_keep("a_pad", a, a_pad)?;
    let (keep_b, count_b) = chamfer_keep("b_pad", b, b_pad)?;
    let b = b.to_dtype(a.dtype())?;
    // Zero the padded points so that their contents cannot reach the value.
    let a0 = a.broadcast_mul(&keep_a.unsqueeze(2)?)?;
    let b0 = b.broadcast_mul(&keep_b.unsqueeze(2)?)?;
    let d = a0
        .unsqueeze(2)?
        .broadcast_sub(&b0.unsqueeze(1)?)?
        .sqr()?
        .sum(3)?; // [B, N, M]
    let far_b = ((1.0 - &keep_b)? * CHAMFER_FAR)?.unsqueeze(1)?; // [B, 1, M]
    let far_a = ((1.0 - &keep_a)? * CHAMFER_FAR)?.unsqueeze(2)?; // [B, N, 1]
    let a_to_b = d.broadcast_add(&far_b)?.min(2)?; // [B, N]
    let b_to_a = d.broadcast_add(&far_a)?.min(1)?; // [B, M]
    let dev = a.device();
    let count_a = Tensor::new(count_a, dev)?.to_dtype(a.dtype())?;
    let count_b = Tensor::new(count_b, dev)?.to_dtype(a.dtype())?;
    let term_a = (a_to_b * &keep_a)?.sum(1)?.div(&count_a)?;
    let term_b = (b_to_a * &keep_b)?.sum(1)?.div(&count_b)?;
    Ok((term_a + term_b)?.mean_all()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};
    use tessera_tokens::Rng;

    fn randn(rng: &mut Rng, n: usize) -> Vec<f64> {
        (0..n).map(|_| rng.normal()).collect()
    }

    fn t(v: &[f64], shape: &[usize]) -> Tensor {
        let v32: Vec<f32> = v.iter().map(|&x| x as f32).collect();
        Tensor::from_vec(v32, shape, &Device::Cpu).unwrap()
    }

    /// Round `v` through f32, so references see the same inputs as the tensors.
    fn f32ed(v: &[f64]) -> Vec<f64> {
        v.iter().map(|&x| x as f32 as f64).collect()
    }

    fn scalar(x: &Tensor) -> f64 {
        x.to_scalar::<f32>().unwrap() as f64
    }

    fn close(got: f64, want: f64, tol: f64) {
        assert!(
            (got - want).abs() <= tol * (1.0 + want.abs()),
            "got {got}, want {want}"
        );
    }

    fn assert_finite_nonzero_grad(loss: &Tensor, v: &Var) {
        let grads = loss.backward().unwrap();
        let g = grads.get(v).expect("gradient exists");
        let g: Vec<f32> = g.flatten_all().unwrap().to_vec1().unwrap();
        assert!(g.iter().all(|x| x.is_finite()), "{g:?}");
        assert!(g.iter().any(|&x| x != 0.0));
    }

    fn softmax_f64(row: &[f64]) -> Vec<f64> {
        let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let s: f64 = row.iter().map(|x| (x - m).exp()).sum();
        row.iter().map(|x| (x - m).exp() / s).collect()
    }

    /// Random probability rows `[rows, c]`.
    fn random_probs(rng: &mut Rng, rows: usize, c: usize) -> Vec<f64> {
        let mut out = Vec::new();
        for _ in 0..rows {
            out.extend(softmax_f64(&randn(rng, c)));
        }
        out
    }

    fn ce_ref(logits: &[f64], target: &[f64], keep: Option<&[f64]>, c: usize) -> f64 {
        let rows = logits.len() / c;
        let (mut s, mut n) = (0.0, 0.0);
        for r in 0..rows {
            let w = keep.map_or(1.0, |k| k[r]);
            let p = softmax_f64(&logits[r * c..(r + 1) * c]);
            for j in 0..c {
                s -= w * target[r * c + j] * p[j].ln();
            }
            n += w;
        }
        s / f64::max(n, 1.0)
    }

    #[test]
    fn cross_entropy_matches_a_reference_with_and_without_keep() {
        let mut rng = Rng::new(1);
        let (b, v, c) = (2, 5, 4);
        let logits = f32ed(&randn(&mut rng, b * v * c));
        let probs = f32ed(&random_probs(&mut rng, b * v, c));
        let mut onehot = vec![0.0; b * v * c];
        for r in 0..b * v {
            onehot[r * c + rng.below(c)] = 1.0;
        }
        let keep: Vec<f64> = (0..b * v).map(|r| (r % 3 != 1) as u8 as f64).collect();
        let (lt, kt) = (t(&logits, &[b, v, c]), t(&keep, &[b, v]));
        for target in [&probs, &onehot] {
            let tt = t(target, &[b, v, c]);
            let got = scalar(&cross_entropy(&lt, &tt, Some(&kt)).unwrap());
            close(got, ce_ref(&logits, target, Some(&keep), c), 1e-5);
            let got = scalar(&cross_entropy(&lt, &tt, None).unwrap());
            close(got, ce_ref(&logits, target, None, c), 1e-5);
            // Soft targets: same value, teacher detached.
            let got = scalar(&soft_cross_entropy(&lt, &tt, Some(&kt)).unwrap());
            close(got, ce_ref(&logits, target, Some(&keep), c), 1e-5);
        }
    }

    #[test]
    fn cross_entropy_is_stable_for_large_logits() {
        let logits = t(&[1000.0, 0.0, -1000.0, 2000.0, 2001.0, 1999.0], &[2, 3]);
        let target = t(&[1.0, 0.0, 0.0, 0.0, 1.0, 0.0], &[2, 3]);
        let got = scalar(&cross_entropy(&logits, &target, None).unwrap());
        let second = (1.0f64 + (-1.0f64).exp() + (-2.0f64).exp()).ln();
        close(got, second / 2.0, 1e-6);
    }

    #[test]
    fn cross_entropy_ignores_rows_that_are_not_kept() {
        let mut rng = Rng::new(2);
        let (rows, c) = (6, 3);
        let mut logits = randn(&mut rng, rows * c);
        let target = random_probs(&mut rng, rows, c);
        let keep = [1.0, 1.0, 0.0, 1.0, 0.0, 1.0];
        let kt = t(&keep, &[rows]);
        let l1 = scalar(
            &cross_entropy(&t(&logits, &[rows, c]), &t(&target, &[rows, c]), Some(&kt)).unwrap(),
        );
        logits[2 * c] = 50.0;
        logits[4 * c + 1] = -30.0;
        let l2 = scalar(
            &cross_entropy(&t(&logits, &[rows, c]), &t(&target, &[rows, c]), Some(&kt)).unwrap(),
        );
        assert_eq!(l1.to_bits(), l2.to_bits());
    }

    #[test]
    fn cross_entropy_gradients_and_detached_teacher() {
        let mut rng = Rng::new(3);
        let logits = Var::from_tensor(&t(&randn(&mut rng, 12), &[4, 3])).unwrap();
        let teacher = Var::from_tensor(&t(&random_probs(&mut rng, 4, 3), &[4, 3])).unwrap();
        let keep = t(&[1.0, 0.0, 1.0, 1.0], &[4]);
        let loss = cross_entropy(logits.as_tensor(), teacher.as_tensor(), Some(&keep)).unwrap();
        assert_finite_nonzero_grad(&loss, &logits);
        let loss = soft_cross_entropy(logits.as_tensor(), teacher.as_tensor(), None).unwrap();
        let grads = loss.backward().unwrap();
        assert!(grads.get(&logits).is_some());
        assert!(grads.get(&teacher).is_none(), "teacher must be detached");
        // The CE gradient is softmax − target per row / rows.
        let g: Vec<f32> = grads
            .get(&logits)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let l: Vec<f32> = logits.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        let tp: Vec<f32> = teacher
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        for r in 0..4 {
            let row: Vec<f64> = l[r * 3..r * 3 + 3].iter().map(|&x| x as f64).collect();
            let p = softmax_f64(&row);
            for j in 0..3 {
                close(
                    g[r * 3 + j] as f64,
                    (p[j] - tp[r * 3 + j] as f64) / 4.0,
                    1e-5,
                );
            }
        }
    }

    #[test]
    fn shape_mismatches_are_errors() {
        let x = t(&[0.0; 6], &[2, 3]);
        let y = t(&[0.0; 4], &[2, 2]);
        let k3 = t(&[1.0; 3], &[3]);
        assert!(cross_entropy(&x, &y, None).is_err());
        assert!(cross_entropy(&x, &x, Some(&k3)).is_err());
        assert!(soft_cross_entropy(&x, &y, None).is_err());
        assert!(nll(&t(&[], &[0]), &t(&[], &[0]), None).is_err());
        assert!(info_nce(&x, &y, 0.1, true).is_err());
        assert!(info_nce(&x, &x, 0.0, true).is_err());
        assert!(info_nce(&t(&[0.0; 6], &[6]), &t(&[0.0; 6], &[6]), 0.1, false).is_err());
        assert!(soft_dice(&x, &x, None).is_err()); // rank 2
        let p = t(&[0.0; 12], &[2, 2, 3]);
        assert!(soft_dice(&p, &t(&[0.0; 12], &[2, 3, 2]), None).is_err());
        assert!(soft_dice(&p, &p, Some(&t(&[1.0; 4], &[4]))).is_err());
        assert!(smooth_l1(&x, &y, 1.0, None).is_err());
        assert!(smooth_l1(&x, &x, -1.0, None).is_err());
        assert!(smooth_l1(&x, &x, 1.0, Some(&k3)).is_err());
        let a = t(&[0.0; 12], &[2, 2, 3]);
        assert!(chamfer_l2(&a, &t(&[0.0; 8], &[2, 2, 2]), None, None).is_err());
        assert!(chamfer_l2(&a, &t(&[0.0; 6], &[1, 2, 3]), None, None).is_err());
        assert!(chamfer_l2(&a, &a, Some(&t(&[0.0; 2], &[2])), None).is_err());
        // A sample whose points are all padding.
        assert!(chamfer_l2(&a, &a, None, Some(&t(&[0.0, 0.0, 1.0, 1.0], &[2, 2]))).is_err());
    }

    fn info_nce_ref(q: &[f64], k: &[f64], n: usize, d: usize, tau: f64, sym: bool) -> f64 {
        let unit = |x: &[f64]| -> Vec<f64> {
            let mut out = Vec::new();
            for r in 0..n {
                let row = &x[r * d..(r + 1) * d];
                let norm = row.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
                out.extend(row.iter().map(|v| v / norm));
            }
            out
        };
        let (qn, kn) = (unit(q), unit(k));
        let mut logits = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                logits[i * n + j] =
                    (0..d).map(|e| qn[i * d + e] * kn[j * d + e]).sum::<f64>() / tau;
            }
        }
        let one_way = |lg: &[f64]| -> f64 {
            (0..n)
                .map(|i| -softmax_f64(&lg[i * n..(i + 1) * n])[i].ln())
                .sum::<f64>()
                / n as f64
        };
        let a = one_way(&logits);
        if !sym {
            return a;
        }
        let mut tr = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                tr[j * n + i] = logits[i * n + j];
            }
        }
        0.5 * (a + one_way(&tr))
    }

    #[test]
    fn info_nce_matches_a_reference() {
        let mut rng = Rng::new(4);
        let (n, d) = (6, 5);
        let q = f32ed(&randn(&mut rng, n * d));
        let k = f32ed(&randn(&mut rng, n * d));
        for (tau, sym) in [(0.5, false), (0.5, true), (0.1, true), (1.0, false)] {
            let got = scalar(&info_nce(&t(&q, &[n, d]), &t(&k, &[n, d]), tau, sym).unwrap());
            close(got, info_nce_ref(&q, &k, n, d, tau, sym), 1e-5);
        }
    }

    #[test]
    fn info_nce_is_near_zero_for_matching_keys_and_large_for_shuffled_ones() {
        let mut rng = Rng::new(5);
        let (n, d) = (8, 32);
        let q = randn(&mut rng, n * d);
        let qt = t(&q, &[n, d]);
        // Scale does not matter: the rows are normalised.
        let k2 = (&qt * 3.0).unwrap();
        let same = scalar(&info_nce(&qt, &k2, 0.01, true).unwrap());
        assert!(same < 1e-4, "{same}");
        // A derangement of the keys: every positive is a random other vector.
        let mut shuffled = Vec::new();
        for i in 0..n {
            let j = (i + 3) % n;
            shuffled.extend_from_slice(&q[j * d..(j + 1) * d]);
        }
        let st = t(&shuffled, &[n, d]);
        let bad = scalar(&info_nce(&qt, &st, 0.1, false).unwrap());
        assert!(bad > 3.0, "{bad}");
        assert!(scalar(&info_nce(&qt, &st, 0.1, true).unwrap()) > 3.0);
    }

    #[test]
    fn info_nce_has_finite_gradients() {
        let mut rng = Rng::new(6);
        let q = Var::from_tensor(&t(&randn(&mut rng, 20), &[4, 5])).unwrap();
        let k = Var::from_tensor(&t(&randn(&mut rng, 20), &[4, 5])).unwrap();
        let loss = info_nce(q.as_tensor(), k.as_tensor(), 0.2, true).unwrap();
        assert_finite_nonzero_grad(&loss, &q);
        let loss = info_nce(q.as_tensor(), k.as_tensor(), 0.2, false).unwrap();
        assert_finite_nonzero_grad(&loss, &k);
    }

    fn dice_ref(p: &[f64], y: &[f64], keep: &[f64], c: usize) -> f64 {
        let rows = keep.len();
        let mut mean = 0.0;
        for j in 0..c {
            let (mut inter, mut sp, mut sy) = (0.0, 0.0, 0.0);
            for r in 0..rows {
                inter += keep[r] * p[r * c + j] * y[r * c + j];
                sp += keep[r] * p[r * c + j];
                sy += keep[r] * y[r * c + j];
            }
            mean += (2.0 * inter + DICE_EPS) / (sp + sy + DICE_EPS) / c as f64;
        }
        1.0 - mean
    }

    #[test]
    fn soft_dice_matches_a_reference_and_ignores_dropped_rows() {
        let mut rng = Rng::new(7);
        let (b, v, c) = (2, 6, 4);
        let mut p = f32ed(&random_probs(&mut rng, b * v, c));
        let mut y = vec![0.0; b * v * c];
        for r in 0..b * v {
            y[r * c + rng.below(c - 1)] = 1.0; // class c−1 absent
        }
        let keep: Vec<f64> = (0..b * v).map(|r| (r % 4 != 2) as u8 as f64).collect();
        let kt = t(&keep, &[b, v]);
        let got = scalar(&soft_dice(&t(&p, &[b, v, c]), &t(&y, &[b, v, c]), Some(&kt)).unwrap());
        close(got, dice_ref(&p, &y, &keep, c), 1e-5);
        let ones = vec![1.0; b * v];
        let got_all = scalar(&soft_dice(&t(&p, &[b, v, c]), &t(&y, &[b, v, c]), None).unwrap());
        close(got_all, dice_ref(&p, &y, &ones, c), 1e-5);
        // Change a dropped row (probabilities and labels): same bits.
        p[2 * c..3 * c].copy_from_slice(&[0.7, 0.1, 0.1, 0.1]);
        y[2 * c..3 * c].copy_from_slice(&[0.0, 0.0, 0.0, 1.0]);
        let again = scalar(&soft_dice(&t(&p, &[b, v, c]), &t(&y, &[b, v, c]), Some(&kt)).unwrap());
        assert_eq!(got.to_bits(), again.to_bits());
    }

    #[test]
    fn soft_dice_has_finite_gradients() {
        let mut rng = Rng::new(8);
        let logits = Var::from_tensor(&t(&randn(&mut rng, 24), &[2, 4, 3])).unwrap();
        let mut y = vec![0.0; 24];
        for r in 0..8 {
            y[r * 3 + rng.below(3)] = 1.0;
        }
        let probs = log_softmax(logits.as_tensor()).unwrap().exp().unwrap();
        let keep = t(&[1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0], &[2, 4]);
        let loss = soft_dice(&probs, &t(&y, &[2, 4, 3]), Some(&keep)).unwrap();
        assert_finite_nonzero_grad(&loss, &logits);
    }

    fn smooth_l1_elem(x: f64, beta: f64) -> f64 {
        if x.abs() < beta {
            0.5 * x * x / beta
        } else {
            x.abs() - 0.5 * beta
        }
    }

    #[test]
    fn smooth_l1_follows_the_piecewise_formula_on_both_sides_of_beta() {
        let beta = 0.8;
        // |x| = 0.3β, 0.9β (quadratic side) and 1.5β, 4β (linear side), both signs.
        let xs = [0.24, -0.72, 1.2, -3.2, 0.0];
        let zeros = [0.0; 5];
        for (i, &x) in xs.iter().enumerate() {
            let got = scalar(&smooth_l1(&t(&[x], &[1]), &t(&[0.0], &[1]), beta, None).unwrap());
            let want = smooth_l1_elem(x as f32 as f64, beta);
            close(got, want, 1e-6);
            if i < 2 {
                close(got, 0.5 * x * x / beta, 1e-6);
            } else if i < 4 {
                close(got, x.abs() - 0.4, 1e-6);
            }
        }
        let mean = xs
            .iter()
            .map(|&x| smooth_l1_elem(x as f32 as f64, beta))
            .sum::<f64>()
            / 5.0;
        close(
            scalar(&smooth_l1(&t(&xs, &[5]), &t(&zeros, &[5]), beta, None).unwrap()),
            mean,
            1e-6,
        );
        // β = 0 is L1.
        let l1 = xs.iter().map(|x| x.abs()).sum::<f64>() / 5.0;
        close(
            scalar(&smooth_l1(&t(&xs, &[5]), &t(&zeros, &[5]), 0.0, None).unwrap()),
            l1,
            1e-6,
        );
    }

    #[test]
    fn smooth_l1_matches_a_reference_with_element_and_row_keeps() {
        let mut rng = Rng::new(9);
        let (r, d, beta) = (5, 4, 0.7);
        let mut p = f32ed(&randn(&mut rng, r * d));
        let y = f32ed(&randn(&mut rng, r * d));
        let ek: Vec<f64> = (0..r * d)
            .map(|_| (rng.uniform() < 0.6) as u8 as f64)
            .collect();
        let rk = [1.0, 0.0, 1.0, 1.0, 0.0];
        let reference = |p: &[f64], w: &dyn Fn(usize) -> f64| {
            let (mut s, mut n) = (0.0, 0.0);
            for i in 0..r * d {
                s += w(i) * smooth_l1_elem(p[i] - y[i], beta);
                n += w(i);
            }
            s / n
        };
        let (ekt, rkt, yt) = (t(&ek, &[r, d]), t(&rk, &[r]), t(&y, &[r, d]));
        let got_e = scalar(&smooth_l1(&t(&p, &[r, d]), &yt, beta, Some(&ekt)).unwrap());
        close(got_e, reference(&p, &|i| ek[i]), 1e-5);
        let got_r = scalar(&smooth_l1(&t(&p, &[r, d]), &yt, beta, Some(&rkt)).unwrap());
        close(got_r, reference(&p, &|i| rk[i / d]), 1e-5);
        // Changing a dropped row leaves the row-kept loss unchanged.
        p[d..2 * d].copy_from_slice(&[9.0, -9.0, 3.0, 0.1]);
        let again = scalar(&smooth_l1(&t(&p, &[r, d]), &yt, beta, Some(&rkt)).unwrap());
        assert_eq!(got_r.to_bits(), again.to_bits());

        let pv = Var::from_tensor(&t(&p, &[r, d])).unwrap();
        let loss = smooth_l1(pv.as_tensor(), &yt, beta, Some(&ekt)).unwrap();
        assert_finite_nonzero_grad(&loss, &pv);
    }

    /// Chamfer-L2 in f64; `pad` = 1 for padding.
    #[allow(clippy::too_many_arguments)]
    fn chamfer_ref(
        a: &[f64],
        b: &[f64],
        ap: &[f64],
        bp: &[f64],
        nb: usize,
        n: usize,
        m: usize,
        d: usize,
    ) -> f64 {
        let dist = |s: usize, i: usize, j: usize| -> f64 {
            (0..d)
                .map(|e| (a[(s * n + i) * d + e] - b[(s * m + j) * d + e]).powi(2))
                .sum()
        };
        let mut total = 0.0;
        for s in 0..nb {
            let real_a: Vec<usize> = (0..n).filter(|&i| ap[s * n + i] == 0.0).collect();
            let real_b: Vec<usize> = (0..m).filter(|&j| bp[s * m + j] == 0.0).collect();
            let ta: f64 = real_a
                .iter()
                .map(|&i| {
                    real_b
                        .iter()
                        .map(|&j| dist(s, i, j))
                        .fold(f64::INFINITY, f64::min)
                })
                .sum::<f64>()
                / real_a.len() as f64;
            let tb: f64 = real_b
                .iter()
                .map(|&j| {
                    real_a
                        .iter()
                        .map(|&i| dist(s, i, j))
                        .fold(f64::INFINITY, f64::min)
                })
                .sum::<f64>()
                / real_b.len() as f64;
            total += ta + tb;
        }
        total / nb as f64
    }

    #[test]
    fn chamfer_matches_a_reference_and_excludes_padding() {
        let mut rng = Rng::new(10);
        let (nb, n, m, d) = (3, 7, 5, 3);
        let mut a = f32ed(&randn(&mut rng, nb * n * d));
        let b = f32ed(&randn(&mut rng, nb * m * d));
        let mut ap = vec![0.0; nb * n];
        let mut bp = vec![0.0; nb * m];
        ap[n - 1] = 1.0; // sample 0: last two of a padded
        ap[n - 2] = 1.0;
        bp[2 * m + 1] = 1.0; // sample 2: one of b padded
        let (apt, bpt) = (t(&ap, &[nb, n]), t(&bp, &[nb, m]));
        let bt = t(&b, &[nb, m, d]);
        let got = scalar(&chamfer_l2(&t(&a, &[nb, n, d]), &bt, Some(&apt), Some(&bpt)).unwrap());
        close(got, chamfer_ref(&a, &b, &ap, &bp, nb, n, m, d), 1e-5);
        let none = scalar(&chamfer_l2(&t(&a, &[nb, n, d]), &bt, None, None).unwrap());
        let zeros_a = vec![0.0; nb * n];
        let zeros_b = vec![0.0; nb * m];
        close(
            none,
            chamfer_ref(&a, &b, &zeros_a, &zeros_b, nb, n, m, d),
            1e-5,
        );
        // A padded point moved next to a real point of b (it would be a nearest neighbour
        // if it counted) or far away: same bits.
        a[(n - 1) * d..n * d].copy_from_slice(&b[..d]);
        a[(n - 2) * d..(n - 1) * d].copy_from_slice(&[1e3, -1e3, 1e3]);
        let again = scalar(&chamfer_l2(&t(&a, &[nb, n, d]), &bt, Some(&apt), Some(&bpt)).unwrap());
        assert_eq!(got.to_bits(), again.to_bits());
    }

    #[test]
    fn chamfer_is_zero_for_identical_sets_and_symmetric() {
        let mut rng = Rng::new(11);
        let (nb, n, m, d) = (2, 6, 4, 3);
        let a = randn(&mut rng, nb * n * d);
        let b = randn(&mut rng, nb * m * d);
        let (at, bt) = (t(&a, &[nb, n, d]), t(&b, &[nb, m, d]));
        assert_eq!(scalar(&chamfer_l2(&at, &at, None, None).unwrap()), 0.0);
        // The same set in another order (and with a padded duplicate) is still distance 0.
        let mut perm = Vec::new();
        for s in 0..nb {
            for i in (0..n).rev() {
                perm.extend_from_slice(&a[(s * n + i) * d..(s * n + i + 1) * d]);
            }
            perm.extend_from_slice(&[5.0, 5.0, 5.0]);
        }
        let mut pp = vec![0.0; nb * (n + 1)];
        pp[n] = 1.0;
        pp[2 * n + 1] = 1.0;
        let pt = t(&perm, &[nb, n + 1, d]);
        let ppt = t(&pp, &[nb, n + 1]);
        assert_eq!(
            scalar(&chamfer_l2(&at, &pt, None, Some(&ppt)).unwrap()),
            0.0
        );
        let ab = scalar(&chamfer_l2(&at, &bt, None, None).unwrap());
        let ba = scalar(&chamfer_l2(&bt, &at, None, None).unwrap());
        assert!(ab > 0.0);
        close(ab, ba, 1e-6);
        // Also with padding on both sides, swapped with the sets.
        let apd = t(
            &[0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0],
            &[nb, n],
        );
        let bpd = t(&[0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0], &[nb, m]);
        let ab = scalar(&chamfer_l2(&at, &bt, Some(&apd), Some(&bpd)).unwrap());
        let ba = scalar(&chamfer_l2(&bt, &at, Some(&bpd), Some(&apd)).unwrap());
        close(ab, ba, 1e-6);
    }

    #[test]
    fn chamfer_has_finite_gradients_and_none_for_padded_points() {
        let mut rng = Rng::new(12);
        let (nb, n, m, d) = (2, 5, 4, 3);
        let a = Var::from_tensor(&t(&randn(&mut rng, nb * n * d), &[nb, n, d])).unwrap();
        let b = Var::from_tensor(&t(&randn(&mut rng, nb * m * d), &[nb, m, d])).unwrap();
        let mut ap = vec![0.0; nb * n];
        ap[3] = 1.0;
        let loss = chamfer_l2(a.as_tensor(), b.as_tensor(), Some(&t(&ap, &[nb, n])), None).unwrap();
        let grads = loss.backward().unwrap();
        for v in [&a, &b] {
            let g: Vec<f32> = grads
                .get(v)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            assert!(g.iter().all(|x| x.is_finite()));
            assert!(g.iter().any(|&x| x != 0.0));
        }
        let ga: Vec<f32> = grads
            .get(&a)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert!(ga[3 * d..4 * d].iter().all(|&x| x == 0.0));
    }

    /// `fusion::fusion_losses` now composes [`nll`] and [`soft_dice`]; its values and
    /// gradients are bit-identical to the formula it used to inline.
    #[test]
    fn fusion_losses_are_bit_identical_to_the_former_inline_formula() {
        let mut rng = Rng::new(13);
        let (b, n, k) = (3, 7, 5);
        let logits = Var::from_tensor(&t(&randn(&mut rng, b * n * k), &[b, n, k])).unwrap();
        let keep: Vec<f64> = (0..b * n).map(|r| (r % 5 != 3) as u8 as f64).collect();
        let mut onehot = vec![0.0; b * n * k];
        for r in 0..b * n {
            if keep[r] == 1.0 {
                onehot[r * k + rng.below(k)] = 1.0;
            }
        }
        let (keep, onehot) = (t(&keep, &[b, n]), t(&onehot, &[b, n, k]));
        let old = |logits: &Tensor| -> (Tensor, Tensor) {
            let n_real = keep.sum_all().unwrap().to_scalar::<f32>().unwrap().max(1.0) as f64;
            let logp = log_softmax(logits).unwrap();
            let ce = ((logp.clone() * &onehot)
                .unwrap()
                .sum_all()
                .unwrap()
                .neg()
                .unwrap()
                / n_real)
                .unwrap();
            let probs = logp
                .exp()
                .unwrap()
                .broadcast_mul(&keep.unsqueeze(D::Minus1).unwrap())
                .unwrap();
            let inter = (&probs * &onehot).unwrap().sum((0, 1)).unwrap();
            let denom = (probs.sum((0, 1)).unwrap() + onehot.sum((0, 1)).unwrap()).unwrap();
            let ratio = (((inter * 2.0).unwrap() + DICE_EPS).unwrap()
                / (denom + DICE_EPS).unwrap())
            .unwrap();
            let dice = (1.0 - ratio.mean_all().unwrap()).unwrap();
            (ce, dice)
        };
        let (ce0, dice0) = old(logits.as_tensor());
        let (ce1, dice1) =
            crate::fusion::fusion_losses(logits.as_tensor(), &onehot, &keep).unwrap();
        assert_eq!(scalar(&ce0).to_bits(), scalar(&ce1).to_bits());
        assert_eq!(scalar(&dice0).to_bits(), scalar(&dice1).to_bits());
        let grad = |l: Tensor| -> Vec<u32> {
            let g = l.backward().unwrap();
            let g: Vec<f32> = g
                .get(&logits)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            g.iter().map(|x| x.to_bits()).collect()
        };
        assert_eq!(
            grad((&ce0 + &dice0).unwrap()),
            grad((&ce1 + &dice1).unwrap())
        );
    }
}
