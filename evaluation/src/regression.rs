//! Regression probe for scalar targets: ridge regression on frozen, standardised features,
//! with R² and MAE as scikit-learn defines them.
//!
//! For every `λ` of a grid the probe minimises
//! `mean_i (y_i − wᵀ x̃_i − b)² + λ ‖w‖²` on features `x̃` standardised with the training
//! split's mean and population standard deviation (bias unpenalised: `b` is the mean
//! target), which is scikit-learn's `Ridge(alpha = n λ)` on `StandardScaler` output. It
//! keeps the `λ` with the best validation R² (ties: the stronger one) and refits on
//! train+val, re-standardised on their union.
//!
//! The normal equations are solved exactly by a Cholesky factorisation in `f64`, on the
//! smaller of the two Gram matrices: `X̃ᵀX̃ / n + λI` (`[d, d]`) when `d <= n`, else the
//! kernel form `X̃X̃ᵀ / n + λI` (`[n, n]`, then `w = X̃ᵀ a`). The Gram matrix is formed
//! once per split with the probes' GEMM kernel; each `λ` costs one factorisation.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::kernels::par_a_bt;
use crate::linear::{scaler, standardise, transpose};
use crate::split::random_split;
use crate::{EvalError, Features, ProbeConfig, ResultRow};

/// Settings of [`fit_ridge`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RidgeConfig {
    /// Candidate L2 strengths `λ` (penalty `λ ‖w‖²` added to the mean squared error on
    /// standardised features); each must be finite and `> 0`. Order and duplicates do
    /// not matter.
    pub l2_grid: Vec<f64>,
}

impl Default for RidgeConfig {
    fn default() -> Self {
        Self {
            l2_grid: vec![1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0],
        }
    }
}

impl RidgeConfig {
    /// The grid, strongest first, deduplicated.
    fn validate(&self) -> Result<Vec<f64>, EvalError> {
        if self.l2_grid.is_empty() {
            return Err(EvalError::InvalidConfig {
                what: "ridge l2_grid".into(),
                reason: "needs at least one L2 strength".into(),
            });
        }
        check_l2(&self.l2_grid)?;
        let mut grid = self.l2_grid.clone();
        grid.sort_by(|a, b| b.total_cmp(a));
        grid.dedup();
        Ok(grid)
    }
}

fn check_l2(grid: &[f64]) -> Result<(), EvalError> {
    if let Some(bad) = grid.iter().find(|v| !(v.is_finite() && **v > 0.0)) {
        return Err(EvalError::InvalidConfig {
            what: "ridge l2".into(),
            reason: format!("L2 strengths must be finite and > 0, got {bad}"),
        });
    }
    Ok(())
}

/// R² (coefficient of determination) of `y_pred [n]` against `y_true [n]`:
/// `1 − Σ(y − ŷ)² / Σ(y − ȳ)²`, at most 1 and unbounded below, as scikit-learn's
/// `r2_score`. A constant `y_true` gives 1 for a perfect prediction and 0 otherwise
/// (scikit-learn's `force_finite=True`). NaN when the lengths differ, `n < 2`
/// (scikit-learn warns and returns NaN) or a value is not finite.
pub fn r2_score(y_true: &[f64], y_pred: &[f64]) -> f64 {
    if y_true.len() != y_pred.len()
        || y_true.len() < 2
        || y_true.iter().chain(y_pred).any(|v| !v.is_finite())
    {
        return f64::NAN;
    }
    let mean = y_true.iter().sum::<f64>() / y_true.len() as f64;
    let ss_res: f64 = y_true
        .iter()
        .zip(y_pred)
        .map(|(t, p)| (t - p) * (t - p))
        .sum();
    let ss_tot: f64 = y_true.iter().map(|t| (t - mean) * (t - mean)).sum();
    if ss_tot == 0.0 {
        return if ss_res == 0.0 { 1.0 } else { 0.0 };
    }
    1.0 - ss_res / ss_tot
}

/// Mean absolute error `mean |y − ŷ|` of `y_pred [n]` against `y_true [n]`, in the
/// target's unit. NaN when the lengths differ, `n == 0` or a value is not finite.
pub fn mean_absolute_error(y_true: &[f64], y_pred: &[f64]) -> f64 {
    if y_true.len() != y_pred.len()
        || y_true.is_empty()
        || y_true.iter().chain(y_pred).any(|v| !v.is_finite())
    {
        return f64::NAN;
    }
    y_true
        .iter()
        .zip(y_pred)
        .map(|(t, p)| (t - p).abs())
        .sum::<f64>()
        / y_true.len() as f64
}

/// R², MAE and RMSE of one regression evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegressionReport {
    /// Coefficient of determination (see [`r2_score`]).
    pub r2: f64,
    /// Mean absolute error, target unit.
    pub mae: f64,
    /// Root mean squared error, target unit.
    pub rmse: f64,
    /// Number of samples scored.
    pub n: usize,
}

impl RegressionReport {
    /// A results-table row: `r2`, `mae`, `rmse` as extra metrics; accuracy, macro-F1 and
    /// balanced accuracy NaN.
    pub fn result_row(
        &self,
        run: &str,
        task: &str,
        protocol: &str,
        features: &str,
        seed: u64,
    ) -> ResultRow {
        ResultRow::with_extras(
            [run, task, protocol, features],
            seed,
            self.n,
            [("r2", self.r2), ("mae", self.mae), ("rmse", self.rmse)],
        )
    }
}

fn check_targets(y: &[f64], n: usize, what: &str) -> Result<(), EvalError> {
    if y.len() != n {
        return Err(EvalError::ShapeMismatch {
            what: format!("number of {what} targets (one per feature row)"),
            expected: n,
            got: y.len(),
        });
    }
    if let Some(index) = y.iter().position(|v| !v.is_finite()) {
        return Err(EvalError::NonFinite {
            what: format!("{what} targets"),
            index,
        });
    }
    Ok(())
}

/// Scores predictions `y_pred [n]` against `y_true [n]`.
///
/// # Errors
/// Different lengths, `n < 2` (R² needs two samples), or a non-finite value.
pub fn regression_report(y_true: &[f64], y_pred: &[f64]) -> Result<RegressionReport, EvalError> {
    check_targets(y_pred, y_true.len(), "predicted")?;
    check_targets(y_true, y_true.len(), "true")?;
    if y_true.len() < 2 {
        return Err(EvalError::EmptySplit {
            split: "regression targets to score (R² needs at least 2)".into(),
        });
    }
    let mse = y_true
        .iter()
        .zip(y_pred)
        .map(|(t, p)| (t - p) * (t - p))
        .sum::<f64>()
        / y_true.len() as f64;
    Ok(RegressionReport {
        r2: r2_score(y_true, y_pred),
        mae: mean_absolute_error(y_true, y_pred),
        rmse: mse.sqrt(),
        n: y_true.len(),
    })
}

/// One point of the L2 search of [`fit_ridge`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RidgeGridPoint {
    /// L2 strength `λ`.
    pub l2: f64,
    /// Validation R² of the model fitted on the training split.
    pub val_r2: f64,
    /// Validation MAE of that model.
    pub val_mae: f64,
}

/// A fitted ridge probe: `ŷ = w · ((x − mean) / std) + b`. Shapes: `w`, `mean`, `std [d]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RidgeProbe {
    /// The chosen L2 strength.
    pub l2: f64,
    /// Validation R² of the chosen `λ` (NaN for [`fit_ridge_with_l2`]).
    #[serde(deserialize_with = "crate::f64_or_nan")]
    pub val_r2: f64,
    /// Every `λ` tried, strongest first (empty for a fixed `λ`).
    pub grid: Vec<RidgeGridPoint>,
    /// Feature dimension.
    pub d: usize,
    mean: Vec<f64>,
    inv_std: Vec<f64>,
    weights: Vec<f64>,
    bias: f64,
}

impl RidgeProbe {
    /// Weights `w [d]`, acting on standardised features.
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// Bias `b` (the mean training target).
    pub fn bias(&self) -> f64 {
        self.bias
    }

    /// Predictions `[x.n]`.
    pub fn predict(&self, x: &Features) -> Result<Vec<f64>, EvalError> {
        x.check_finite("features to predict")?;
        let d = self.d;
        for (what, expected, got) in [
            ("ridge feature dimension of the input", d, x.d),
            ("ridge weights (d)", d, self.weights.len()),
            ("ridge mean (d)", d, self.mean.len()),
            ("ridge std (d)", d, self.inv_std.len()),
        ] {
            if expected != got {
                return Err(EvalError::ShapeMismatch {
                    what: what.into(),
                    expected,
                    got,
                });
            }
        }
        let xs = standardise(x, &self.mean, &self.inv_std);
        Ok(predict_standardised(&xs, d, &self.weights, self.bias))
    }
}

fn predict_standardised(x: &[f64], d: usize, w: &[f64], b: f64) -> Vec<f64> {
    x.chunks_exact(d.max(1)).map(|r| b + dot(r, w)).collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0f64; 4];
    let mut ca = a.chunks_exact(4);
    let mut cb = b.chunks_exact(4);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for l in 0..4 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        s += x * y;
    }
    s
}

/// The normal equations of one standardised split, ready for any `λ`.
struct Ridge {
    /// Standardised features `[n, d]`.
    x: Vec<f64>,
    n: usize,
    d: usize,
    /// Centred targets `[n]`.
    yc: Vec<f64>,
    y_mean: f64,
    /// `X̃ᵀX̃ / n` (`[d, d]`, primal) or `X̃X̃ᵀ / n` (`[n, n]`, dual).
    gram: Vec<f64>,
    primal: bool,
}

impl Ridge {
    fn new(x: Vec<f64>, n: usize, d: usize, y: &[f64]) -> Self {
        let y_mean = y.iter().sum::<f64>() / n as f64;
        let yc: Vec<f64> = y.iter().map(|v| v - y_mean).collect();
        let primal = d <= n;
        let m = if primal { d } else { n };
        let mut gram = vec![0.0; m * m];
        if primal {
            let xt = transpose(&x, n, d);
            par_a_bt(&xt, d, &xt, d, n, &mut gram);
        } else {
            par_a_bt(&x, n, &x, n, d, &mut gram);
        }
        let inv_n = 1.0 / n as f64;
        gram.iter_mut().for_each(|v| *v *= inv_n);
        Self {
            x,
            n,
            d,
            yc,
            y_mean,
            gram,
            primal,
        }
    }

    /// Weights `w [d]` for `λ = l2`.
    fn solve(&self, l2: f64) -> Result<Vec<f64>, EvalError> {
        let (n, d) = (self.n, self.d);
        let inv_n = 1.0 / n as f64;
        let m = if self.primal { d } else { n };
        let rhs: Vec<f64> = if self.primal {
            // X̃ᵀ yc / n.
            let mut r = vec![0.0; d];
            for (row, y) in self.x.chunks_exact(d).zip(&self.yc) {
                r.iter_mut().zip(row).for_each(|(a, v)| *a += v * y);
            }
            r.iter_mut().for_each(|v| *v *= inv_n);
            r
        } else {
            self.yc.iter().map(|v| v * inv_n).collect()
        };
        let mut a = self.gram.clone();
        for i in 0..m {
            a[i * m + i] += l2;
        }
        let sol = cholesky_solve(&mut a, m, &rhs).ok_or_else(|| EvalError::InvalidConfig {
            what: "ridge l2".into(),
            reason: format!(
                "the ridge system is not numerically positive definite at λ = {l2}: use a larger λ"
            ),
        })?;
        if self.primal {
            return Ok(sol);
        }
        // w = X̃ᵀ a.
        let mut w = vec![0.0; d];
        for (row, ai) in self.x.chunks_exact(d).zip(&sol) {
            w.iter_mut().zip(row).for_each(|(wk, v)| *wk += v * ai);
        }
        Ok(w)
    }
}

/// Solves `A x = b` for symmetric positive definite `a [m, m]` (overwritten by its
/// Cholesky factor in the lower triangle); `None` if a pivot is not positive.
fn cholesky_solve(a: &mut [f64], m: usize, b: &[f64]) -> Option<Vec<f64>> {
    for j in 0..m {
        let (head, tail) = a.split_at_mut((j + 1) * m);
        let row_j = &mut head[j * m..];
        let s = row_j[j] - dot(&row_j[..j], &row_j[..j]);
        if !(s > 0.0 && s.is_finite()) {
            return None;
        }
        let ljj = s.sqrt();
        row_j[j] = ljj;
        let lj = &row_j[..j];
        let update = |row_i: &mut [f64]| {
            row_i[j] = (row_i[j] - dot(&row_i[..j], lj)) / ljj;
        };
        // Rows below j are independent: parallel when the work is worth it.
        if (m - j - 1) * j > 1 << 15 {
            tail.par_chunks_mut(m).for_each(update);
        } else {
            tail.chunks_mut(m).for_each(update);
        }
    }
    // L z = b, then Lᵀ x = z.
    let mut z = vec![0.0; m];
    for i in 0..m {
        let row = &a[i * m..i * m + i];
        z[i] = (b[i] - dot(row, &z[..i])) / a[i * m + i];
    }
    let mut x = z;
    for i in (0..m).rev() {
        let mut s = x[i];
        for k in i + 1..m {
            s -= a[k * m + i] * x[k];
        }
        x[i] = s / a[i * m + i];
    }
    Some(x)
}

fn check_ridge_inputs(x: &Features, y: &[f64], what: &str) -> Result<(), EvalError> {
    x.check_finite(&format!("{what} features"))?;
    if x.n == 0 {
        return Err(EvalError::EmptySplit { split: what.into() });
    }
    if x.d == 0 {
        return Err(EvalError::ShapeMismatch {
            what: "feature dimension d (must be at least 1)".into(),
            expected: 1,
            got: 0,
        });
    }
    check_targets(y, x.n, what)
}

/// Fits a ridge probe with the L2 strength chosen from `cfg.l2_grid` by validation R²
/// (ties: the stronger `λ`), refitted on train+val.
///
/// # Shapes
/// - `train [n_train, d]`, `y_train [n_train]`; `val [n_val, d]`, `y_val [n_val]`.
///
/// # Errors
/// Shape mismatches, empty splits, fewer than 2 validation samples, non-finite features or
/// targets, an invalid grid.
pub fn fit_ridge(
    train: &Features,
    y_train: &[f64],
    val: &Features,
    y_val: &[f64],
    cfg: &RidgeConfig,
) -> Result<RidgeProbe, EvalError> {
    let grid = cfg.validate()?;
    check_ridge_inputs(train, y_train, "ridge train")?;
    check_ridge_inputs(val, y_val, "ridge validation")?;
    if val.d != train.d {
        return Err(EvalError::ShapeMismatch {
            what: "validation feature dimension (must match train)".into(),
            expected: train.d,
            got: val.d,
        });
    }
    if val.n < 2 {
        return Err(EvalError::EmptySplit {
            split: "ridge validation (R² needs at least 2 samples)".into(),
        });
    }
    let d = train.d;
    let (mean, inv_std) = scaler(train);
    let problem = Ridge::new(standardise(train, &mean, &inv_std), train.n, d, y_train);
    let x_val = standardise(val, &mean, &inv_std);
    let mut points = Vec::with_capacity(grid.len());
    let mut best: Option<(f64, f64)> = None;
    for &l2 in &grid {
        let w = problem.solve(l2)?;
        let pred = predict_standardised(&x_val, d, &w, problem.y_mean);
        let val_r2 = r2_score(y_val, &pred);
        if best.is_none_or(|(s, _)| val_r2 > s) {
            best = Some((val_r2, l2));
        }
        points.push(RidgeGridPoint {
            l2,
            val_r2,
            val_mae: mean_absolute_error(y_val, &pred),
        });
    }
    let (val_r2, l2) = best.ok_or_else(|| EvalError::InvalidConfig {
        what: "ridge l2_grid".into(),
        reason: "needs at least one L2 strength".into(),
    })?;
    let all = train.vstack(val)?;
    let y_all: Vec<f64> = y_train.iter().chain(y_val).copied().collect();
    let mut probe = fit_ridge_with_l2(&all, &y_all, l2)?;
    probe.val_r2 = val_r2;
    probe.grid = points;
    Ok(probe)
}

/// Fits a ridge probe with one given `l2` on all of `train` (no validation split).
///
/// # Errors
/// Shape mismatches, an empty split, non-finite features or targets, an `l2` that is not
/// finite and `> 0`.
pub fn fit_ridge_with_l2(
    train: &Features,
    y_train: &[f64],
    l2: f64,
) -> Result<RidgeProbe, EvalError> {
    check_l2(&[l2])?;
    check_ridge_inputs(train, y_train, "ridge train")?;
    let (mean, inv_std) = scaler(train);
    let problem = Ridge::new(
        standardise(train, &mean, &inv_std),
        train.n,
        train.d,
        y_train,
    );
    let weights = problem.solve(l2)?;
    Ok(RidgeProbe {
        l2,
        val_r2: f64::NAN,
        grid: Vec::new(),
        d: train.d,
        mean,
        inv_std,
        weights,
        bias: problem.y_mean,
    })
}

/// Outcome of [`run_regression_probe`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegressionResults {
    /// Test-set R², MAE and RMSE.
    pub report: RegressionReport,
    /// The chosen L2 strength.
    pub l2: f64,
    /// Validation R² of the chosen `λ`.
    pub val_r2: f64,
    /// Training samples of the `λ` search (the final fit uses these plus `n_val`).
    pub n_train: usize,
    /// Validation samples of the `λ` search.
    pub n_val: usize,
}

/// The regression protocol: a random validation split of `cfg.val_fraction` of the
/// training samples (seeded by `seed`) chooses the ridge `λ` from `cfg.ridge`, the probe is
/// refitted on all training samples and scored on the test set.
///
/// # Shapes
/// - `train [n_train, d]`, `y_train [n_train]`, `test [n_test, d]`, `y_test [n_test]`.
///
/// # Errors
/// As [`fit_ridge`] and [`regression_report`].
pub fn run_regression_probe(
    train: &Features,
    y_train: &[f64],
    test: &Features,
    y_test: &[f64],
    cfg: &ProbeConfig,
    seed: u64,
) -> Result<RegressionResults, EvalError> {
    check_ridge_inputs(train, y_train, "ridge train")?;
    let (tr, va) = random_split(train.n, cfg.val_fraction, seed);
    let pick = |idx: &[usize]| idx.iter().map(|&i| y_train[i]).collect::<Vec<f64>>();
    let probe = fit_ridge(
        &train.select(&tr)?,
        &pick(&tr),
        &train.select(&va)?,
        &pick(&va),
        &cfg.ridge,
    )?;
    let report = regression_report(y_test, &probe.predict(test)?)?;
    Ok(RegressionResults {
        report,
        l2: probe.l2,
        val_r2: probe.val_r2,
        n_train: tr.len(),
        n_val: va.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tessera_tokens::Rng;

    /// `y = x · beta + 3 + noise`, `x ~ N(0, I)` scaled per column.
    fn linear_data(n: usize, d: usize, noise: f64, seed: u64) -> (Features, Vec<f64>, Vec<f64>) {
        let mut rng = Rng::new(seed);
        let beta: Vec<f64> = (0..d).map(|_| rng.normal()).collect();
        let scale: Vec<f64> = (0..d).map(|k| 1.0 + k as f64).collect();
        let mut data = Vec::with_capacity(n * d);
        let mut y = Vec::with_capacity(n);
        for _ in 0..n {
            let row: Vec<f64> = scale.iter().map(|s| s * rng.normal()).collect();
            y.push(
                3.0 + row.iter().zip(&beta).map(|(a, b)| a * b).sum::<f64>() + noise * rng.normal(),
            );
            data.extend(row.iter().map(|&v| v as f32));
        }
        (Features::new(data, n, d).unwrap(), y, beta)
    }

    #[test]
    fn hand_computed_metrics() {
        let t = [3.0, -0.5, 2.0, 7.0];
        let p = [2.5, 0.0, 2.0, 8.0];
        // sklearn: r2_score = 0.9486081370449679, mean_absolute_error = 0.5.
        assert!((r2_score(&t, &p) - 0.948_608_137_044_967_9).abs() < 1e-15);
        assert_eq!(mean_absolute_error(&t, &p), 0.5);
        assert_eq!(r2_score(&[1.0, 1.0], &[1.0, 1.0]), 1.0);
        assert_eq!(r2_score(&[1.0, 1.0], &[1.0, 2.0]), 0.0);
        assert!(r2_score(&[1.0], &[1.0]).is_nan());
        assert!(r2_score(&[1.0, 2.0], &[1.0]).is_nan());
        assert!(mean_absolute_error(&[], &[]).is_nan());
        assert!(mean_absolute_error(&[f64::NAN], &[0.0]).is_nan());
        let r = regression_report(&t, &p).unwrap();
        assert!((r.rmse - (0.25f64 + 0.25 + 0.0 + 1.0).sqrt() / 2.0).abs() < 1e-15);
        assert!(regression_report(&t, &p[1..]).is_err());
        assert!(regression_report(&[1.0], &[1.0]).is_err());
        let row = r.result_row("a", "age", "ridge", "cls", 0);
        assert_eq!(row.extra.get("mae"), Some(&0.5));
        assert!(row.accuracy.is_nan() && row.balanced_accuracy.is_nan());
    }

    #[test]
    fn cholesky_solves_spd_systems() {
        let mut rng = Rng::new(4);
        for m in [1usize, 2, 5, 40, 300] {
            let b: Vec<f64> = (0..m * m).map(|_| rng.normal()).collect();
            // A = B Bᵀ + I.
            let mut a = vec![0.0; m * m];
            for i in 0..m {
                for j in 0..m {
                    a[i * m + j] = dot(&b[i * m..(i + 1) * m], &b[j * m..(j + 1) * m])
                        + f64::from(u8::from(i == j));
                }
            }
            let x_true: Vec<f64> = (0..m).map(|_| rng.normal()).collect();
            let rhs: Vec<f64> = (0..m)
                .map(|i| dot(&a[i * m..(i + 1) * m], &x_true))
                .collect();
            let x = cholesky_solve(&mut a.clone(), m, &rhs).unwrap();
            for (u, v) in x.iter().zip(&x_true) {
                assert!((u - v).abs() < 1e-8 * (1.0 + m as f64), "m={m}: {u} vs {v}");
            }
        }
        let mut not_pd = vec![1.0, 2.0, 2.0, 1.0];
        assert!(cholesky_solve(&mut not_pd, 2, &[1.0, 1.0]).is_none());
    }

    #[test]
    fn primal_and_dual_forms_agree() {
        // d > n uses the kernel form; compare it with the primal on the same data by
        // checking the normal equations (Gᵀ G / n + λ I) w = Gᵀ yc / n directly.
        for (n, d) in [(30usize, 8usize), (8, 30)] {
            let (x, y, _) = linear_data(n, d, 0.5, 9);
            let l2 = 0.05;
            let p = fit_ridge_with_l2(&x, &y, l2).unwrap();
            let (mean, inv_std) = scaler(&x);
            let xs = standardise(&x, &mean, &inv_std);
            let w = p.weights();
            let y_mean = y.iter().sum::<f64>() / n as f64;
            for k in 0..d {
                let mut lhs = l2 * w[k];
                let mut rhs = 0.0;
                for i in 0..n {
                    let r = &xs[i * d..(i + 1) * d];
                    lhs += r[k] * dot(r, w) / n as f64;
                    rhs += r[k] * (y[i] - y_mean) / n as f64;
                }
                assert!(
                    (lhs - rhs).abs() < 1e-9,
                    "n={n} d={d} k={k}: {lhs} vs {rhs}"
                );
            }
            assert!((p.bias() - y_mean).abs() < 1e-12);
        }
    }

    #[test]
    fn recovers_a_linear_signal() {
        // Train and test from one draw (same coefficients).
        let (x, y, _) = linear_data(400, 12, 0.1, 2);
        let (tr, te): (Vec<usize>, Vec<usize>) = ((0..300).collect(), (300..400).collect());
        let pick = |idx: &[usize]| idx.iter().map(|&i| y[i]).collect::<Vec<_>>();
        let r = run_regression_probe(
            &x.select(&tr).unwrap(),
            &pick(&tr),
            &x.select(&te).unwrap(),
            &pick(&te),
            &ProbeConfig::default(),
            0,
        )
        .unwrap();
        assert!(r.report.r2 > 0.999, "{r:?}");
        assert!(r.report.mae < 0.15, "{r:?}");
        assert!(r.l2 <= 1e-2, "{r:?}");
        assert_eq!((r.n_train, r.n_val), (270, 30));
    }

    #[test]
    fn noise_targets_prefer_strong_regularisation() {
        let mut rng = Rng::new(3);
        let (n, d) = (200, 50);
        let x = Features::new((0..n * d).map(|_| rng.normal() as f32).collect(), n, d).unwrap();
        let y: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
        let tr: Vec<usize> = (0..100).collect();
        let va: Vec<usize> = (100..200).collect();
        let pick = |idx: &[usize]| idx.iter().map(|&i| y[i]).collect::<Vec<_>>();
        let p = fit_ridge(
            &x.select(&tr).unwrap(),
            &pick(&tr),
            &x.select(&va).unwrap(),
            &pick(&va),
            &RidgeConfig::default(),
        )
        .unwrap();
        assert!(p.l2 >= 1.0, "{:?}", p.grid);
        assert_eq!(p.grid.len(), 9);
        assert!(p.grid.windows(2).all(|w| w[0].l2 > w[1].l2));
    }

    #[test]
    fn bad_inputs_are_errors() {
        let (x, y, _) = linear_data(20, 3, 0.1, 1);
        let cfg = RidgeConfig::default();
        assert!(matches!(
            fit_ridge(&x, &y[1..], &x, &y, &cfg),
            Err(EvalError::ShapeMismatch { .. })
        ));
        let mut ynan = y.clone();
        ynan[2] = f64::NAN;
        assert!(matches!(
            fit_ridge(&x, &ynan, &x, &y, &cfg),
            Err(EvalError::NonFinite { index: 2, .. })
        ));
        assert!(fit_ridge_with_l2(&x, &y, 0.0).is_err());
        assert!(fit_ridge(&x, &y, &x, &y, &RidgeConfig { l2_grid: vec![] }).is_err());
        let one = x.select(&[0]).unwrap();
        assert!(matches!(
            fit_ridge(&x, &y, &one, &y[..1], &cfg),
            Err(EvalError::EmptySplit { .. })
        ));
        let p = fit_ridge_with_l2(&x, &y, 1.0).unwrap();
        assert!(p
            .predict(&Features::new(vec![0.0; 2], 1, 2).unwrap())
            .is_err());
        // A constant feature does not break the fit.
        let mut c = x.clone();
        for i in 0..c.n {
            c.data[i * 3] = 4.0;
        }
        assert!(fit_ridge_with_l2(&c, &y, 1e-6).is_ok());
    }

    /// Timing at embedding sizes: `cargo test -p tessera-eval --release -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn timing_ridge_3000x1536() {
        let (x, y, _) = linear_data(3000, 1536, 1.0, 5);
        let (tr, va): (Vec<usize>, Vec<usize>) = ((0..2700).collect(), (2700..3000).collect());
        let pick = |idx: &[usize]| idx.iter().map(|&i| y[i]).collect::<Vec<_>>();
        let t = std::time::Instant::now();
        let p = fit_ridge(
            &x.select(&tr).unwrap(),
            &pick(&tr),
            &x.select(&va).unwrap(),
            &pick(&va),
            &RidgeConfig::default(),
        )
        .unwrap();
        eprintln!(
            "ridge 2700+300 x 1536, {} λ + refit: {:.2} s, λ = {}, val R² = {:.4}",
            p.grid.len(),
            t.elapsed().as_secs_f64(),
            p.l2,
            p.val_r2
        );
    }

    proptest! {
        #[test]
        fn metric_properties(
            pairs in prop::collection::vec((-100.0f64..100.0, -100.0f64..100.0), 2..30),
        ) {
            let t: Vec<f64> = pairs.iter().map(|p| p.0).collect();
            let p: Vec<f64> = pairs.iter().map(|p| p.1).collect();
            prop_assert_eq!(r2_score(&t, &t), 1.0);
            prop_assert!(r2_score(&t, &p) <= 1.0);
            let mae = mean_absolute_error(&t, &p);
            prop_assert!(mae >= 0.0);
            prop_assert_eq!(mae, mean_absolute_error(&p, &t));
            // Predicting the mean gives R² = 0 (up to rounding) unless y is constant.
            let mean = t.iter().sum::<f64>() / t.len() as f64;
            let r = r2_score(&t, &vec![mean; t.len()]);
            prop_assert!(r.abs() < 1e-9 || r == 1.0 || r == 0.0, "{}", r);
            // Shifting both by a constant changes neither metric.
            let ts: Vec<f64> = t.iter().map(|v| v + 7.0).collect();
            let ps: Vec<f64> = p.iter().map(|v| v + 7.0).collect();
            prop_assert!((mean_absolute_error(&ts, &ps) - mae).abs() < 1e-9);
        }
    }
}
