//! Linear probe: multinomial logistic regression on frozen, standardised features.
//!
//! The protocol of the linear evaluations in SimCLR/BYOL-style papers when run with a
//! convex solver (e.g. DINOv2's scikit-learn-style logistic regression on frozen features):
//!
//! 1. standardise every feature with the mean and (population) standard deviation of the
//!    training split only;
//! 2. for every L2 strength `λ` of a grid, minimise
//!    `mean_i CE(softmax(W x_i + b), y_i) + λ/2 ‖W‖²` (bias unpenalised) by full-batch
//!    L-BFGS ([`crate::lbfgs`]), warm-starting from the previous, stronger `λ`;
//! 3. keep the `λ` with the best validation accuracy (ties: the stronger one);
//! 4. refit on train+val (re-standardised on their union) with that `λ`.
//!
//! Loss and gradient accumulate in `f64`; the two products per evaluation run on the
//! crate's `kernels` SIMD kernel over rayon, so a fit of n≈3000, d≈400, 60 classes takes
//! well under a second per `λ` in an optimised build.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::kernels::{a_bt, par_a_bt};
use crate::lbfgs::{minimize, LbfgsConfig, LbfgsReport};
use crate::{check_label_vec, EvalError, Features};

/// Samples per parallel block of the loss (fixed, so sums do not depend on thread count).
pub(crate) const ROWS_PER_BLOCK: usize = 64;

/// Settings of [`fit_linear_probe`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LinearProbeConfig {
    /// Candidate L2 strengths `λ` (penalty `λ/2 ‖W‖²` added to the mean cross-entropy);
    /// each must be finite and `>= 0`. Order and duplicates do not matter.
    pub l2_grid: Vec<f64>,
    /// L-BFGS iterations per fit.
    pub max_iter: usize,
    /// Convergence tolerance: stop when the largest absolute gradient entry of the
    /// objective is at most `tol`.
    pub tol: f64,
    /// Class-balanced fit (scikit-learn's `class_weight="balanced"`): sample `i` of class
    /// `c` weighs `n / (C · n_c)` in the loss, and the L2 strength is chosen by balanced
    /// accuracy on validation. For imbalanced tasks scored by balanced accuracy.
    pub balanced: bool,
}

impl Default for LinearProbeConfig {
    fn default() -> Self {
        Self {
            l2_grid: vec![1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0],
            max_iter: 300,
            tol: 1e-6,
            balanced: false,
        }
    }
}

impl LinearProbeConfig {
    pub(crate) fn validate(&self) -> Result<Vec<f64>, EvalError> {
        if self.l2_grid.is_empty() {
            return Err(EvalError::InvalidConfig {
                what: "l2_grid".into(),
                reason: "needs at least one L2 strength".into(),
            });
        }
        if let Some(bad) = self.l2_grid.iter().find(|v| !(v.is_finite() && **v >= 0.0)) {
            return Err(EvalError::InvalidConfig {
                what: "l2_grid".into(),
                reason: format!("L2 strengths must be finite and >= 0, got {bad}"),
            });
        }
        if self.max_iter == 0 {
            return Err(EvalError::InvalidConfig {
                what: "max_iter".into(),
                reason: "must be at least 1".into(),
            });
        }
        if !(self.tol.is_finite() && self.tol >= 0.0) {
            return Err(EvalError::InvalidConfig {
                what: "tol".into(),
                reason: format!("must be finite and >= 0, got {}", self.tol),
            });
        }
        // Strongest first: warm starts go from simple to complex solutions, and the
        // tie-break (keep the first best) prefers stronger regularisation.
        let mut grid = self.l2_grid.clone();
        grid.sort_by(|a, b| b.total_cmp(a));
        grid.dedup();
        Ok(grid)
    }

    pub(crate) fn lbfgs(&self) -> LbfgsConfig {
        LbfgsConfig {
            max_iter: self.max_iter,
            grad_tol: self.tol,
            ..LbfgsConfig::default()
        }
    }
}

/// One point of the L2 search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GridPoint {
    /// L2 strength `λ`.
    pub l2: f64,
    /// Accuracy on the validation split of the model fitted on the training split.
    pub val_accuracy: f64,
    /// L-BFGS iterations taken.
    pub iterations: usize,
    /// Whether L-BFGS met its tolerance before `max_iter`.
    pub converged: bool,
}

/// A fitted linear probe: `logits = W · ((x - mean) / std) + b`.
///
/// Shapes: `W [n_classes, d]`, `b [n_classes]`, `mean`, `std [d]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearProbe {
    /// The chosen L2 strength.
    pub l2: f64,
    /// Validation accuracy of the chosen `λ` (model fitted on the training split only; NaN for
    /// [`fit_linear_probe_with_l2`]).
    #[serde(deserialize_with = "crate::f64_or_nan")]
    pub val_accuracy: f64,
    /// Every `λ` tried, strongest first.
    pub grid: Vec<GridPoint>,
    /// Number of classes (columns of the probabilities).
    pub n_classes: usize,
    /// Feature dimension.
    pub d: usize,
    /// L-BFGS iterations of the final refit on train+val.
    pub iterations: usize,
    /// Whether the final refit met its tolerance.
    pub converged: bool,
    mean: Vec<f64>,
    inv_std: Vec<f64>,
    weights: Vec<f64>,
    bias: Vec<f64>,
}

/// Fits a linear probe, choosing `λ` from `cfg.l2_grid` on the validation split, then
/// refitting on train+val.
///
/// # Shapes
/// - `train [n_train, d]`, `y_train [n_train]`; `val [n_val, d]`, `y_val [n_val]`;
///   labels in `0..n_classes`.
///
/// # Errors
/// Shape mismatches, empty train or validation split, labels `>= n_classes`, non-finite
/// features, an invalid config.
pub fn fit_linear_probe(
    train: &Features,
    y_train: &[usize],
    val: &Features,
    y_val: &[usize],
    n_classes: usize,
    cfg: &LinearProbeConfig,
) -> Result<LinearProbe, EvalError> {
    let grid = cfg.validate()?;
    train.check_finite("train features")?;
    val.check_finite("validation features")?;
    if n_classes == 0 {
        return Err(EvalError::InvalidConfig {
            what: "n_classes".into(),
            reason: "must be at least 1".into(),
        });
    }
    if train.d == 0 {
        return Err(EvalError::ShapeMismatch {
            what: "feature dimension d (must be at least 1)".into(),
            expected: 1,
            got: 0,
        });
    }
    if train.n == 0 {
        return Err(EvalError::EmptySplit {
            split: "linear-probe train".into(),
        });
    }
    if val.n == 0 {
        return Err(EvalError::EmptySplit {
            split: "linear-probe validation".into(),
        });
    }
    if val.d != train.d {
        return Err(EvalError::ShapeMismatch {
            what: "validation feature dimension (must match train)".into(),
            expected: train.d,
            got: val.d,
        });
    }
    check_label_vec(y_train, train.n, n_classes, "train")?;
    check_label_vec(y_val, val.n, n_classes, "validation")?;

    let lbfgs = cfg.lbfgs();
    let d = train.d;
    let (mean, inv_std) = scaler(train);
    let x_train = standardise(train, &mean, &inv_std);
    let x_val = standardise(val, &mean, &inv_std);
    let problem = Softmax::new(&x_train, y_train, d, n_classes).balanced(cfg.balanced);

    let mut theta = vec![0.0; n_classes * d + n_classes];
    let mut points = Vec::with_capacity(grid.len());
    let mut best: Option<(usize, Vec<f64>)> = None;
    for &l2 in &grid {
        let report = problem.fit(l2, &mut theta, &lbfgs);
        let pred = predict_standardised(&x_val, val.n, &theta, d, n_classes);
        let acc = if cfg.balanced {
            crate::metrics::balanced_accuracy(y_val, &pred, n_classes)
        } else {
            pred.iter().zip(y_val).filter(|(p, y)| p == y).count() as f64 / val.n as f64
        };
        let better = match &best {
            Some((k, _)) => acc > points_acc(&points, *k),
            None => true,
        };
        if better {
            best = Some((points.len(), theta.clone()));
        }
        points.push(GridPoint {
            l2,
            val_accuracy: acc,
            iterations: report.iterations,
            converged: report.converged(),
        });
    }
    let (best_k, best_theta) = best.ok_or_else(|| EvalError::InvalidConfig {
        what: "l2_grid".into(),
        reason: "needs at least one L2 strength".into(),
    })?;
    let l2 = points[best_k].l2;
    let val_accuracy = points[best_k].val_accuracy;

    // Refit on train+val, standardised on their union; warm start from the train-only
    // solution mapped to the new standardisation (same function of the raw features).
    let all = train.vstack(val)?;
    let y_all: Vec<usize> = y_train.iter().chain(y_val).copied().collect();
    let (mean_all, inv_std_all) = scaler(&all);
    let x_all = standardise(&all, &mean_all, &inv_std_all);
    let mut theta = remap(
        &best_theta,
        d,
        n_classes,
        (&mean, &inv_std),
        (&mean_all, &inv_std_all),
    );
    let report = Softmax::new(&x_all, &y_all, d, n_classes)
        .balanced(cfg.balanced)
        .fit(l2, &mut theta, &lbfgs);
    let bias = theta.split_off(n_classes * d);
    Ok(LinearProbe {
        l2,
        val_accuracy,
        grid: points,
        n_classes,
        d,
        iterations: report.iterations,
        converged: report.converged(),
        mean: mean_all,
        inv_std: inv_std_all,
        weights: theta,
        bias,
    })
}

/// Fits a linear probe with one given L2 strength `l2` on all of `train` (standardised on
/// `train`), without a validation split: for protocols with too few samples to hold any
/// out (e.g. one-shot draws). `cfg.l2_grid` is ignored; `max_iter` and `tol` apply. The
/// returned probe has `grid` empty and `val_accuracy` NaN.
///
/// # Shapes
/// - `train [n_train, d]`, `y_train [n_train]`, labels in `0..n_classes`.
///
/// # Errors
/// Shape mismatches, an empty split, labels `>= n_classes`, non-finite features, an
/// `l2` that is not finite and `>= 0`, an invalid `max_iter`/`tol`.
pub fn fit_linear_probe_with_l2(
    train: &Features,
    y_train: &[usize],
    n_classes: usize,
    l2: f64,
    cfg: &LinearProbeConfig,
) -> Result<LinearProbe, EvalError> {
    let cfg = LinearProbeConfig {
        l2_grid: vec![l2],
        ..cfg.clone()
    };
    cfg.validate()?;
    check_fit_inputs(train, n_classes, "linear-probe train")?;
    check_label_vec(y_train, train.n, n_classes, "train")?;
    let d = train.d;
    let (mean, inv_std) = scaler(train);
    let x = standardise(train, &mean, &inv_std);
    let mut theta = vec![0.0; n_classes * d + n_classes];
    let report = Softmax::new(&x, y_train, d, n_classes)
        .balanced(cfg.balanced)
        .fit(l2, &mut theta, &cfg.lbfgs());
    let bias = theta.split_off(n_classes * d);
    Ok(LinearProbe {
        l2,
        val_accuracy: f64::NAN,
        grid: Vec::new(),
        n_classes,
        d,
        iterations: report.iterations,
        converged: report.converged(),
        mean,
        inv_std,
        weights: theta,
        bias,
    })
}

/// Checks finite features with `n >= 1`, `d >= 1` and `n_classes >= 1`.
pub(crate) fn check_fit_inputs(
    train: &Features,
    n_classes: usize,
    split: &str,
) -> Result<(), EvalError> {
    train.check_finite(&format!("{split} features"))?;
    if n_classes == 0 {
        return Err(EvalError::InvalidConfig {
            what: "n_classes".into(),
            reason: "must be at least 1".into(),
        });
    }
    if train.d == 0 {
        return Err(EvalError::ShapeMismatch {
            what: "feature dimension d (must be at least 1)".into(),
            expected: 1,
            got: 0,
        });
    }
    if train.n == 0 {
        return Err(EvalError::EmptySplit {
            split: split.into(),
        });
    }
    Ok(())
}

fn points_acc(points: &[GridPoint], k: usize) -> f64 {
    points.get(k).map_or(f64::NEG_INFINITY, |p| p.val_accuracy)
}

impl LinearProbe {
    /// Weights `W [n_classes, d]` (row-major), acting on standardised features.
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// Bias `b [n_classes]`.
    pub fn bias(&self) -> &[f64] {
        &self.bias
    }

    /// Per-feature mean and standard deviation `[d]` used to standardise inputs
    /// (a constant feature gets std 1).
    pub fn standardisation(&self) -> (Vec<f64>, Vec<f64>) {
        (
            self.mean.clone(),
            self.inv_std.iter().map(|s| 1.0 / s).collect(),
        )
    }

    /// Logits `[x.n, n_classes]`, row-major.
    pub fn logits(&self, x: &Features) -> Result<Vec<f64>, EvalError> {
        let (c, d) = (self.n_classes, self.d);
        probe_logits(
            x,
            &self.weights,
            &self.bias,
            &self.mean,
            &self.inv_std,
            c,
            d,
        )
    }

    /// Predicted class per row: `[x.n]` (ties go to the lower class index).
    pub fn predict(&self, x: &Features) -> Result<Vec<usize>, EvalError> {
        let z = self.logits(x)?;
        Ok(z.chunks_exact(self.n_classes.max(1)).map(argmax).collect())
    }

    /// Class probabilities `[x.n, n_classes]`, row-major; each row sums to 1.
    pub fn predict_proba(&self, x: &Features) -> Result<Vec<f64>, EvalError> {
        let mut z = self.logits(x)?;
        for row in z.chunks_exact_mut(self.n_classes.max(1)) {
            let lse = log_sum_exp(row);
            row.iter_mut().for_each(|v| *v = (*v - lse).exp());
        }
        Ok(z)
    }
}

/// Per-feature mean and `1 / std` (population std, `f64`); near-constant features get
/// `1 / std = 1`.
pub(crate) fn scaler(x: &Features) -> (Vec<f64>, Vec<f64>) {
    let d = x.d;
    let mut mean = vec![0.0f64; d];
    for row in x.data.chunks_exact(d.max(1)) {
        mean.iter_mut().zip(row).for_each(|(m, v)| *m += *v as f64);
    }
    let n = x.n.max(1) as f64;
    mean.iter_mut().for_each(|m| *m /= n);
    let mut var = vec![0.0f64; d];
    for row in x.data.chunks_exact(d.max(1)) {
        var.iter_mut()
            .zip(row.iter().zip(&mean))
            .for_each(|(s, (v, m))| {
                let t = *v as f64 - m;
                *s += t * t;
            });
    }
    let inv_std = var
        .iter()
        .zip(&mean)
        .map(|(s, m)| {
            let std = (s / n).sqrt();
            if std > 10.0 * f64::EPSILON * m.abs().max(1.0) {
                1.0 / std
            } else {
                1.0
            }
        })
        .collect();
    (mean, inv_std)
}

/// `(x - mean) * inv_std` as `f64`, `[n, d]`.
/// Logits `[x.n, c]` of a linear probe (`weights [c, d]`, `bias [c]`) on features
/// standardised by `mean` and `inv_std` (`[d]` each), after checking every size against
/// `c`, `d` and the input: the multinomial and the multi-label probes share it.
pub(crate) fn probe_logits(
    x: &Features,
    weights: &[f64],
    bias: &[f64],
    mean: &[f64],
    inv_std: &[f64],
    c: usize,
    d: usize,
) -> Result<Vec<f64>, EvalError> {
    x.check_finite("features to predict")?;
    let parts = [
        ("probe feature dimension of the input", d, x.d),
        (
            "probe weights (n_classes * d)",
            c.saturating_mul(d),
            weights.len(),
        ),
        ("probe bias (n_classes)", c, bias.len()),
        ("probe mean (d)", d, mean.len()),
        ("probe std (d)", d, inv_std.len()),
    ];
    for (what, expected, got) in parts {
        if expected != got {
            return Err(EvalError::ShapeMismatch {
                what: what.into(),
                expected,
                got,
            });
        }
    }
    let xs = standardise(x, mean, inv_std);
    let theta: Vec<f64> = weights.iter().chain(bias).copied().collect();
    Ok(logits(&xs, x.n, &theta, d, c))
}

pub(crate) fn standardise(x: &Features, mean: &[f64], inv_std: &[f64]) -> Vec<f64> {
    let mut out = Vec::with_capacity(x.data.len());
    for row in x.data.chunks_exact(x.d.max(1)) {
        out.extend(
            row.iter()
                .zip(mean.iter().zip(inv_std))
                .map(|(v, (m, s))| (*v as f64 - m) * s),
        );
    }
    out
}

/// Parameters of the same raw-feature function under another standardisation.
pub(crate) fn remap(
    theta: &[f64],
    d: usize,
    c: usize,
    (mean, inv_std): (&[f64], &[f64]),
    (mean_new, inv_std_new): (&[f64], &[f64]),
) -> Vec<f64> {
    let mut out = theta.to_vec();
    let (w_new, b_new) = out.split_at_mut(c * d);
    for cls in 0..c {
        let w = &theta[cls * d..(cls + 1) * d];
        let mut shift = 0.0;
        for k in 0..d {
            let raw = w[k] * inv_std[k];
            w_new[cls * d + k] = raw / inv_std_new[k];
            shift += raw * (mean_new[k] - mean[k]);
        }
        b_new[cls] += shift;
    }
    out
}

fn argmax(row: &[f64]) -> usize {
    let mut best = 0;
    for (k, v) in row.iter().enumerate() {
        if *v > row[best] {
            best = k;
        }
    }
    best
}

fn log_sum_exp(row: &[f64]) -> f64 {
    let m = row.iter().fold(f64::NEG_INFINITY, |a, b| a.max(*b));
    if !m.is_finite() {
        return m;
    }
    m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
}

/// Logits `[n, c]` of standardised rows `x [n, d]` under `theta = [W (c*d), b (c)]`.
pub(crate) fn logits(x: &[f64], n: usize, theta: &[f64], d: usize, c: usize) -> Vec<f64> {
    let (w, b) = theta.split_at(c * d);
    let mut z = vec![0.0; n * c];
    par_a_bt(x, n, w, c, d, &mut z);
    for row in z.chunks_exact_mut(c.max(1)) {
        row.iter_mut().zip(b).for_each(|(v, bv)| *v += bv);
    }
    z
}

fn predict_standardised(x: &[f64], n: usize, theta: &[f64], d: usize, c: usize) -> Vec<usize> {
    logits(x, n, theta, d, c)
        .chunks_exact(c.max(1))
        .map(argmax)
        .collect()
}

/// The L2-regularised multinomial logistic objective on standardised features
/// `x [n, d]` with labels `y [n]`, parameters `theta = [W (c*d, row-major), b (c)]`.
pub(crate) struct Softmax<'a> {
    x: &'a [f64],
    /// `x` transposed, `[d, n]`, for the weight gradient `Xᵀ R` as `Xt · Rtᵀ`.
    xt: Vec<f64>,
    y: &'a [usize],
    n: usize,
    d: usize,
    c: usize,
    /// Per-class sample weights (`None`: all 1).
    class_weight: Option<Vec<f64>>,
}

/// `x [n, d]` transposed to `[d, n]`.
pub(crate) fn transpose(x: &[f64], n: usize, d: usize) -> Vec<f64> {
    let mut xt = vec![0.0; n * d];
    for (i, row) in x.chunks_exact(d.max(1)).enumerate() {
        for (k, v) in row.iter().enumerate() {
            xt[k * n + i] = *v;
        }
    }
    xt
}

/// Gradient of `mean_i loss_i + l2/2 ‖W‖²` for a linear model `z = W x + b` from the
/// residuals `r [n, c] = ∂loss_i/∂z_i`, written into `grad = [gW (c*d), gb (c)]`, given
/// `xt [d, n]` (the transposed inputs) and `w [c, d]`. Returns `l2/2 ‖W‖²`.
pub(crate) fn gradient_from_residuals(
    xt: &[f64],
    r: &[f64],
    (n, d, c): (usize, usize, usize),
    w: &[f64],
    l2: f64,
    grad: &mut [f64],
) -> f64 {
    let inv_n = 1.0 / n as f64;
    let rt = transpose(r, n, c);
    // Gt [d, c] = Xt [d, n] · Rt [c, n]ᵀ = (Rᵀ X)ᵀ.
    let mut gt = vec![0.0; d * c];
    par_a_bt(xt, d, &rt, c, n, &mut gt);
    let (gw, gb) = grad.split_at_mut(c * d);
    let mut penalty = 0.0;
    for cls in 0..c {
        for k in 0..d {
            let wv = w[cls * d + k];
            penalty += wv * wv;
            gw[cls * d + k] = gt[k * c + cls] * inv_n + l2 * wv;
        }
        gb[cls] = rt[cls * n..(cls + 1) * n].iter().sum::<f64>() * inv_n;
    }
    0.5 * l2 * penalty
}

impl<'a> Softmax<'a> {
    pub(crate) fn new(x: &'a [f64], y: &'a [usize], d: usize, c: usize) -> Self {
        let n = y.len();
        let xt = transpose(x, n, d);
        Self {
            x,
            xt,
            y,
            n,
            d,
            c,
            class_weight: None,
        }
    }

    /// With `on`, weighs each sample by `n / (C · n_class)` (classes present in `y`).
    pub(crate) fn balanced(mut self, on: bool) -> Self {
        if on {
            let mut count = vec![0usize; self.c];
            self.y.iter().for_each(|&k| count[k] += 1);
            let present = count.iter().filter(|&&k| k > 0).count().max(1);
            self.class_weight = Some(
                count
                    .iter()
                    .map(|&k| {
                        if k > 0 {
                            self.n as f64 / (present * k) as f64
                        } else {
                            0.0
                        }
                    })
                    .collect(),
            );
        }
        self
    }

    /// `mean_i CE + l2/2 ‖W‖²` at `theta`; writes the gradient into `grad` (same length).
    pub(crate) fn loss_grad(&self, theta: &[f64], l2: f64, grad: &mut [f64]) -> f64 {
        let (n, d, c) = (self.n, self.d, self.c);
        let (w, b) = theta.split_at(c * d);
        // Residuals R = softmax(Z) - onehot(y), [n, c]; per-block loss sums.
        let mut r = vec![0.0; n * c];
        let block_losses: Vec<f64> = r
            .par_chunks_mut(ROWS_PER_BLOCK * c)
            .zip(self.x.par_chunks(ROWS_PER_BLOCK * d.max(1)))
            .zip(self.y.par_chunks(ROWS_PER_BLOCK))
            .map(|((rb, xb), yb)| {
                let rows = yb.len();
                a_bt(&xb[..rows * d], rows, w, c, d, rb);
                let mut loss = 0.0;
                for (z, &yi) in rb.chunks_exact_mut(c).zip(yb) {
                    z.iter_mut().zip(b).for_each(|(v, bv)| *v += bv);
                    let lse = log_sum_exp(z);
                    let wi = self.class_weight.as_ref().map_or(1.0, |cw| cw[yi]);
                    loss += wi * (lse - z[yi]);
                    z.iter_mut().for_each(|v| *v = (*v - lse).exp());
                    z[yi] -= 1.0;
                    if wi != 1.0 {
                        z.iter_mut().for_each(|v| *v *= wi);
                    }
                }
                loss
            })
            .collect();
        let data_loss = block_losses.iter().sum::<f64>() / n as f64;
        data_loss + gradient_from_residuals(&self.xt, &r, (n, d, c), w, l2, grad)
    }

    /// Minimises the objective for `l2` from `theta` (overwritten with the solution).
    pub(crate) fn fit(&self, l2: f64, theta: &mut [f64], cfg: &LbfgsConfig) -> LbfgsReport {
        minimize(|t, g| self.loss_grad(t, l2, g), theta, cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::blobs;
    use tessera_tokens::Rng;

    fn acc(p: &[usize], y: &[usize]) -> f64 {
        p.iter().zip(y).filter(|(a, b)| a == b).count() as f64 / y.len() as f64
    }

    fn split(
        x: &Features,
        y: &[usize],
        n_first: usize,
    ) -> (Features, Vec<usize>, Features, Vec<usize>) {
        let a: Vec<usize> = (0..n_first).collect();
        let b: Vec<usize> = (n_first..x.n).collect();
        (
            x.select(&a).unwrap(),
            a.iter().map(|&i| y[i]).collect(),
            x.select(&b).unwrap(),
            b.iter().map(|&i| y[i]).collect(),
        )
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let (n, d, c) = (23, 5, 4);
        let mut rng = Rng::new(11);
        let x: Vec<f64> = (0..n * d).map(|_| rng.normal()).collect();
        let y: Vec<usize> = (0..n).map(|_| rng.below(c)).collect();
        let theta: Vec<f64> = (0..c * d + c).map(|_| 0.5 * rng.normal()).collect();
        let l2 = 0.3;
        let h = 1e-6;
        let mut scratch = vec![0.0; theta.len()];
        // The class-balanced loss has the same gradient check.
        let pb = Softmax::new(&x, &y, d, c).balanced(true);
        let mut gb = vec![0.0; theta.len()];
        pb.loss_grad(&theta, l2, &mut gb);
        for j in 0..theta.len() {
            let mut tp = theta.clone();
            tp[j] += h;
            let fp = pb.loss_grad(&tp, l2, &mut scratch);
            tp[j] -= 2.0 * h;
            let fm = pb.loss_grad(&tp, l2, &mut scratch);
            let num = (fp - fm) / (2.0 * h);
            assert!(
                (num - gb[j]).abs() < 1e-7 * (1.0 + gb[j].abs()),
                "balanced param {j}"
            );
        }
        let p = Softmax::new(&x, &y, d, c);
        let mut g = vec![0.0; theta.len()];
        let f0 = p.loss_grad(&theta, l2, &mut g);
        assert!(f0.is_finite() && f0 > 0.0);
        for j in 0..theta.len() {
            let mut tp = theta.clone();
            tp[j] += h;
            let fp = p.loss_grad(&tp, l2, &mut scratch);
            tp[j] -= 2.0 * h;
            let fm = p.loss_grad(&tp, l2, &mut scratch);
            let num = (fp - fm) / (2.0 * h);
            assert!(
                (num - g[j]).abs() < 1e-7 * (1.0 + g[j].abs()),
                "param {j}: {num} vs {}",
                g[j]
            );
        }
        // The loss itself against a direct computation.
        let (w, b) = theta.split_at(c * d);
        let mut direct = 0.0;
        for i in 0..n {
            let z: Vec<f64> = (0..c)
                .map(|k| b[k] + (0..d).map(|j| w[k * d + j] * x[i * d + j]).sum::<f64>())
                .collect();
            direct += log_sum_exp(&z) - z[y[i]];
        }
        direct = direct / n as f64 + 0.5 * l2 * w.iter().map(|v| v * v).sum::<f64>();
        assert!((direct - f0).abs() < 1e-12, "{direct} vs {f0}");
    }

    #[test]
    fn balanced_fit_raises_minority_recall() {
        // Two overlapping classes, 9:1: the plain fit favours the majority class.
        let mut rng = Rng::new(5);
        let (n, d) = (1000, 2);
        let y: Vec<usize> = (0..n).map(|i| usize::from(i % 10 == 0)).collect();
        let x: Vec<f32> = y
            .iter()
            .flat_map(|&k| [(k as f64 + rng.normal()) as f32, rng.normal() as f32])
            .collect();
        let f = Features::new(x, n, d).unwrap();
        let (tr, ytr, va, yva) = split(&f, &y, 800);
        let plain = LinearProbeConfig::default();
        let bal = LinearProbeConfig {
            balanced: true,
            ..plain.clone()
        };
        let score = |cfg: &LinearProbeConfig| {
            let p = fit_linear_probe(&tr, &ytr, &va, &yva, 2, cfg).unwrap();
            crate::metrics::balanced_accuracy(&y, &p.predict(&f).unwrap(), 2)
        };
        let (a, b) = (score(&plain), score(&bal));
        assert!(b > a + 0.1, "balanced {b} vs plain {a}");
    }

    #[test]
    fn separable_data_is_classified_perfectly() {
        let (x, y) = blobs(60, 3, 8, 6.0, 0.5, 1);
        let (tr, ytr, rest, yrest) = split(&x, &y, 100);
        let (va, yva, te, yte) = split(&rest, &yrest, 40);
        let probe =
            fit_linear_probe(&tr, &ytr, &va, &yva, 3, &LinearProbeConfig::default()).unwrap();
        assert_eq!(probe.val_accuracy, 1.0);
        assert_eq!(acc(&probe.predict(&te).unwrap(), &yte), 1.0);
        assert_eq!(acc(&probe.predict(&tr).unwrap(), &ytr), 1.0);
        let proba = probe.predict_proba(&te).unwrap();
        assert_eq!(proba.len(), te.n * 3);
        for row in proba.chunks_exact(3) {
            assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
        assert_eq!(probe.grid.len(), 6);
        // Ties in validation accuracy go to the strongest λ.
        assert_eq!(probe.l2, 1.0);
    }

    #[test]
    fn noisy_blobs_beat_chance() {
        let (x, y) = blobs(50, 10, 16, 1.0, 1.0, 2);
        let (tr, ytr, rest, yrest) = split(&x, &y, 300);
        let (va, yva, te, yte) = split(&rest, &yrest, 100);
        let probe =
            fit_linear_probe(&tr, &ytr, &va, &yva, 10, &LinearProbeConfig::default()).unwrap();
        let a = acc(&probe.predict(&te).unwrap(), &yte);
        assert!(a > 0.4, "accuracy {a} (chance 0.1), probe {:?}", probe.grid);
        // Fitting is deterministic.
        let again =
            fit_linear_probe(&tr, &ytr, &va, &yva, 10, &LinearProbeConfig::default()).unwrap();
        assert_eq!(probe, again);
    }

    #[test]
    fn pure_noise_prefers_strong_regularisation() {
        // Imbalanced labels (70/30) independent of the features: a strongly regularised
        // probe predicts the majority class, weakly regularised ones fit noise.
        let mut rng = Rng::new(5);
        let (n, d) = (300, 60);
        let data: Vec<f32> = (0..n * d).map(|_| rng.normal() as f32).collect();
        let y: Vec<usize> = (0..n).map(|_| usize::from(rng.uniform() < 0.3)).collect();
        let x = Features::new(data, n, d).unwrap();
        let (tr, ytr, va, yva) = split(&x, &y, 150);
        let probe =
            fit_linear_probe(&tr, &ytr, &va, &yva, 2, &LinearProbeConfig::default()).unwrap();
        assert!(
            probe.l2 >= 0.1,
            "chose λ = {} from {:?}",
            probe.l2,
            probe.grid
        );
    }

    #[test]
    fn bad_inputs_are_errors() {
        let (x, y) = blobs(10, 2, 3, 3.0, 1.0, 3);
        let cfg = LinearProbeConfig::default();
        let empty = Features::new(vec![], 0, 3).unwrap();
        assert!(matches!(
            fit_linear_probe(&empty, &[], &x, &y, 2, &cfg),
            Err(EvalError::EmptySplit { .. })
        ));
        assert!(matches!(
            fit_linear_probe(&x, &y, &x, &y, 1, &cfg),
            Err(EvalError::UnknownLabel {
                label: 1,
                n_classes: 1,
                ..
            })
        ));
        assert!(matches!(
            fit_linear_probe(&x, &y[1..], &x, &y, 2, &cfg),
            Err(EvalError::ShapeMismatch { .. })
        ));
        let mut nan = x.clone();
        nan.data[4] = f32::NAN;
        assert!(matches!(
            fit_linear_probe(&nan, &y, &x, &y, 2, &cfg),
            Err(EvalError::NonFinite { index: 4, .. })
        ));
        let bad_cfg = LinearProbeConfig {
            l2_grid: vec![],
            ..cfg.clone()
        };
        assert!(matches!(
            fit_linear_probe(&x, &y, &x, &y, 2, &bad_cfg),
            Err(EvalError::InvalidConfig { .. })
        ));
        let probe = fit_linear_probe(&x, &y, &x, &y, 2, &cfg).unwrap();
        let wrong_d = Features::new(vec![0.0; 4], 1, 4).unwrap();
        assert!(matches!(
            probe.predict(&wrong_d),
            Err(EvalError::ShapeMismatch { .. })
        ));
        // A class absent from the data and a constant feature do not break the fit.
        let mut constant = x.clone();
        for i in 0..constant.n {
            constant.data[i * 3] = 2.5;
        }
        let probe = fit_linear_probe(&constant, &y, &constant, &y, 4, &cfg).unwrap();
        assert!(probe.predict(&constant).unwrap().iter().all(|&p| p < 2));
    }

    #[test]
    fn fixed_l2_fit_has_no_grid_and_round_trips_through_json() {
        let (x, y) = blobs(20, 3, 4, 5.0, 0.5, 4);
        let cfg = LinearProbeConfig::default();
        let probe = fit_linear_probe_with_l2(&x, &y, 3, 0.01, &cfg).unwrap();
        assert!(probe.grid.is_empty() && probe.val_accuracy.is_nan());
        assert_eq!(probe.l2, 0.01);
        assert_eq!(acc(&probe.predict(&x).unwrap(), &y), 1.0);
        // NaN is written as null and read back as NaN.
        let json = serde_json::to_string(&probe).unwrap();
        let back: LinearProbe = serde_json::from_str(&json).unwrap();
        assert!(back.val_accuracy.is_nan());
        // (serde_json reads floats back to within an ulp.)
        for (a, b) in back.weights().iter().zip(probe.weights()) {
            assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0));
        }
        assert!(fit_linear_probe_with_l2(&x, &y, 3, f64::NAN, &cfg).is_err());
        assert!(fit_linear_probe_with_l2(&x, &y, 2, 0.1, &cfg).is_err());
    }

    #[test]
    fn config_round_trips_through_json() {
        let cfg = LinearProbeConfig::default();
        let s = serde_json::to_string(&cfg).unwrap();
        assert_eq!(serde_json::from_str::<LinearProbeConfig>(&s).unwrap(), cfg);
        let partial: LinearProbeConfig = serde_json::from_str(r#"{"max_iter": 50}"#).unwrap();
        assert_eq!(partial.max_iter, 50);
        assert_eq!(partial.l2_grid, cfg.l2_grid);
    }

    /// Low-rank, correlated features (like real embeddings): 64 latent blob dimensions
    /// mixed into 400 by a random matrix, plus small isotropic noise.
    #[test]
    #[ignore]
    fn timing_correlated_3000x400() {
        for &c in &[10usize, 60] {
            let (z, y) = blobs(3000 / c + 1, c, 64, 0.5, 1.0, 10);
            let mut rng = Rng::new(12);
            let mix: Vec<f64> = (0..64 * 400)
                .map(|_| rng.normal() / (1.0 + (rng.below(64) as f64)))
                .collect();
            let mut data = vec![0f32; z.n * 400];
            for i in 0..z.n {
                for k in 0..400 {
                    let mut v = 0.1 * rng.normal();
                    for j in 0..64 {
                        v += z.data[i * 64 + j] as f64 * mix[j * 400 + k];
                    }
                    data[i * 400 + k] = v as f32;
                }
            }
            let x = Features::new(data, z.n, 400).unwrap();
            let (tr, ytr, rest, yrest) = split(&x, &y, 2400);
            let (va, yva, te, yte) = split(&rest, &yrest, 300);
            let t = std::time::Instant::now();
            let probe =
                fit_linear_probe(&tr, &ytr, &va, &yva, c, &LinearProbeConfig::default()).unwrap();
            let secs = t.elapsed().as_secs_f64();
            let a = acc(&probe.predict(&te).unwrap(), &yte);
            eprintln!(
                "correlated c={c}: {secs:.2} s, test acc {a:.3}, λ={}, refit iters {} conv {}, grid {:?}",
                probe.l2,
                probe.iterations,
                probe.converged,
                probe.grid.iter().map(|g| (g.l2, g.val_accuracy, g.iterations, g.converged)).collect::<Vec<_>>()
            );
        }
    }

    /// Timing at the target size: `cargo test -p tessera-eval --release -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn timing_3000x400x60() {
        for &c in &[10usize, 60] {
            let (x, y) = blobs(3000 / c + 1, c, 400, 0.12, 1.0, 9);
            let (tr, ytr, rest, yrest) = split(&x, &y, 2400);
            let (va, yva, te, yte) = split(&rest, &yrest, 300);
            let t = std::time::Instant::now();
            let probe =
                fit_linear_probe(&tr, &ytr, &va, &yva, c, &LinearProbeConfig::default()).unwrap();
            let secs = t.elapsed().as_secs_f64();
            let a = acc(&probe.predict(&te).unwrap(), &yte);
            eprintln!(
                "c={c}: {secs:.2} s for {} λ + refit, test acc {a:.3}, λ={}, refit iters {}, grid {:?}",
                probe.grid.len(),
                probe.l2,
                probe.iterations,
                probe.grid.iter().map(|g| (g.l2, g.val_accuracy, g.iterations)).collect::<Vec<_>>()
            );
        }
    }
}
