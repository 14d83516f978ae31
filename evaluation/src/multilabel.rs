//! Multi-label targets: label strings (`"dog;bark"`) → a binary indicator matrix, a
//! one-vs-rest logistic probe on frozen features, and ranking metrics.
//!
//! - [`parse_multi_labels`] / [`multi_label_indicators`]: `;`-separated label strings
//!   (scikit-learn's `MultiLabelBinarizer`: classes sorted, a sample may have none).
//! - [`fit_multi_label_probe`]: one binary logistic regression per class on standardised
//!   features, all with one L2 strength `λ` chosen on a validation split by macro mean
//!   average precision (ties: the stronger `λ`), then refitted on train+val. The classes
//!   share `λ` but not parameters: the joint objective
//!   `mean_i Σ_c BCE(w_cᵀ x_i + b_c, y_ic) + λ/2 ‖W‖²` separates into one scikit-learn
//!   `LogisticRegression(C = 1 / (n λ))` per class, fitted together by the linear probe's
//!   L-BFGS ([`crate::lbfgs`]) and GEMM kernels.
//! - [`average_precision`], [`roc_auc`], [`multi_label_report`]: scikit-learn's
//!   `average_precision_score` (step-wise precision-recall area, tied scores form one
//!   threshold) and `roc_auc_score` (trapezoidal ROC area, equal to the Mann-Whitney
//!   statistic with average ranks for ties); micro mAP pools every (sample, class) pair,
//!   macro mAP and macro AUROC average the classes.
//!
//! Conventions where scikit-learn has none or raises: a class without positives in the
//! scored set has no AP (scikit-learn returns 0 with a warning) and is left out of macro
//! mAP; a class without positives or without negatives has no AUROC (scikit-learn raises)
//! and is left out of macro AUROC.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::kernels::a_bt;
use crate::lbfgs::{minimize, LbfgsConfig, LbfgsReport};
use crate::linear::{
    check_fit_inputs, gradient_from_residuals, logits, probe_logits, remap, scaler, standardise,
    transpose, LinearProbeConfig, ROWS_PER_BLOCK,
};
use crate::split::random_split;
use crate::{EvalError, Features, ProbeConfig, ResultRow};

/// Separator of the labels of one sample in a label string: `"a;c"`.
pub const MULTI_LABEL_SEPARATOR: char = ';';

/// A binary indicator matrix `[n, n_classes]`, row-major: `data[i * n_classes + c]` is true
/// when sample `i` has label `c`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelMatrix {
    /// Indicators, `[n, n_classes]` row-major.
    pub data: Vec<bool>,
    /// Number of samples (rows).
    pub n: usize,
    /// Number of classes (columns).
    pub n_classes: usize,
}

impl LabelMatrix {
    /// Wraps `data [n, n_classes]` after checking its length.
    pub fn new(data: Vec<bool>, n: usize, n_classes: usize) -> Result<Self, EvalError> {
        let m = Self { data, n, n_classes };
        m.check("label matrix")?;
        Ok(m)
    }

    /// Builds the matrix from per-sample lists of class indices (duplicates allowed).
    ///
    /// # Errors
    /// A class index `>= n_classes`.
    pub fn from_indices(rows: &[Vec<usize>], n_classes: usize) -> Result<Self, EvalError> {
        let mut data = vec![false; rows.len() * n_classes];
        for (i, r) in rows.iter().enumerate() {
            for &c in r {
                if c >= n_classes {
                    return Err(EvalError::UnknownLabel {
                        what: format!("labels of sample {i}"),
                        label: c,
                        n_classes,
                    });
                }
                data[i * n_classes + c] = true;
            }
        }
        Ok(Self {
            data,
            n: rows.len(),
            n_classes,
        })
    }

    /// Row `i` (`[n_classes]`), or `None` when out of range.
    pub fn row(&self, i: usize) -> Option<&[bool]> {
        let start = i.checked_mul(self.n_classes)?;
        if i >= self.n {
            return None;
        }
        self.data.get(start..start.checked_add(self.n_classes)?)
    }

    /// Column `c` (`[n]`): which samples have label `c`. Empty when `c >= n_classes`.
    pub fn column(&self, c: usize) -> Vec<bool> {
        if c >= self.n_classes {
            return Vec::new();
        }
        self.data
            .iter()
            .skip(c)
            .step_by(self.n_classes)
            .copied()
            .collect()
    }

    /// Number of positive samples per class, `[n_classes]`.
    pub fn positives(&self) -> Vec<usize> {
        let mut p = vec![0; self.n_classes];
        for row in self.data.chunks_exact(self.n_classes.max(1)) {
            for (c, &v) in row.iter().enumerate() {
                p[c] += usize::from(v);
            }
        }
        p
    }

    /// The rows listed in `idx`, in that order.
    pub fn select(&self, idx: &[usize]) -> Result<LabelMatrix, EvalError> {
        self.check("label matrix")?;
        let mut data = Vec::with_capacity(idx.len() * self.n_classes);
        for &i in idx {
            let row = self.row(i).ok_or_else(|| EvalError::IndexOutOfRange {
                what: "label-matrix row to select".into(),
                index: i,
                len: self.n,
            })?;
            data.extend_from_slice(row);
        }
        Ok(LabelMatrix {
            data,
            n: idx.len(),
            n_classes: self.n_classes,
        })
    }

    fn check(&self, what: &str) -> Result<(), EvalError> {
        let expected = self.n.saturating_mul(self.n_classes);
        if self.data.len() != expected {
            return Err(EvalError::ShapeMismatch {
                what: format!(
                    "{what}: data length (n * n_classes with n = {}, n_classes = {})",
                    self.n, self.n_classes
                ),
                expected,
                got: self.data.len(),
            });
        }
        Ok(())
    }
}

/// The class names of one label string: split at [`MULTI_LABEL_SEPARATOR`], trimmed,
/// empty parts dropped.
fn split_labels(s: &str) -> impl Iterator<Item = &str> {
    s.split(MULTI_LABEL_SEPARATOR)
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Parses one label string per sample (`"a;c"`, `"b"`, `""` for none) into the sorted class
/// names and the indicator matrix `[labels.len(), classes.len()]`.
///
/// Names are trimmed; empty parts (`"a;;c"`, a trailing `;`) and repeats are ignored, so a
/// sample may have no label. Parse all splits together (or use
/// [`multi_label_indicators`] with the training classes) so that columns agree.
///
/// # Errors
/// No class name in any string.
pub fn parse_multi_labels<S: AsRef<str>>(
    labels: &[S],
) -> Result<(Vec<String>, LabelMatrix), EvalError> {
    let mut classes: Vec<String> = labels
        .iter()
        .flat_map(|s| split_labels(s.as_ref()).map(str::to_string))
        .collect();
    classes.sort_unstable();
    classes.dedup();
    if classes.is_empty() {
        return Err(EvalError::EmptySplit {
            split: "multi-label classes (every label string is empty)".into(),
        });
    }
    let y = multi_label_indicators(labels, &classes)?;
    Ok((classes, y))
}

/// The indicator matrix `[labels.len(), classes.len()]` of label strings against given
/// class names (e.g. a test split against the training classes).
///
/// # Errors
/// A name that is not in `classes`.
pub fn multi_label_indicators<S: AsRef<str>>(
    labels: &[S],
    classes: &[String],
) -> Result<LabelMatrix, EvalError> {
    let index: std::collections::HashMap<&str, usize> = classes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i))
        .collect();
    let c = classes.len();
    let mut data = vec![false; labels.len() * c];
    for (i, s) in labels.iter().enumerate() {
        for name in split_labels(s.as_ref()) {
            let k = *index.get(name).ok_or_else(|| EvalError::UnknownClassName {
                what: format!("label string {i} ({:?})", s.as_ref()),
                name: name.to_string(),
                n_known: c,
            })?;
            data[i * c + k] = true;
        }
    }
    Ok(LabelMatrix {
        data,
        n: labels.len(),
        n_classes: c,
    })
}

/// Checks lengths and finiteness of a binary score vector; `None` when invalid.
fn valid_binary(y_true: &[bool], scores: &[f64]) -> Option<(usize, usize)> {
    if y_true.len() != scores.len() || y_true.is_empty() || scores.iter().any(|s| s.is_nan()) {
        return None;
    }
    let pos = y_true.iter().filter(|&&t| t).count();
    Some((pos, y_true.len() - pos))
}

/// Average precision of `scores [n]` for the binary truth `y_true [n]`, in `[0, 1]`:
/// `Σ_k (R_k − R_{k−1}) P_k` over the distinct score thresholds, highest first (scikit-learn's
/// `average_precision_score`; tied scores enter together, no interpolation).
///
/// NaN when there are no positives (scikit-learn warns and returns 0), the lengths
/// differ, `n == 0`, or a score is NaN.
pub fn average_precision(y_true: &[bool], scores: &[f64]) -> f64 {
    let Some((pos, _)) = valid_binary(y_true, scores) else {
        return f64::NAN;
    };
    if pos == 0 {
        return f64::NAN;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_unstable_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tp, mut fp) = (0usize, 0usize);
    // Σ (new true positives × precision) / positives: whole counts times precisions, one
    // division at the end, so an all-positive ranking gives exactly 1 (summing recall steps
    // of 1/pos could round above 1).
    let mut ap = 0.0;
    let mut prev_tp = 0usize;
    let mut k = 0;
    while k < order.len() {
        let s = scores[order[k]];
        while k < order.len() && scores[order[k]] == s {
            if y_true[order[k]] {
                tp += 1;
            } else {
                fp += 1;
            }
            k += 1;
        }
        if tp > prev_tp {
            ap += (tp - prev_tp) as f64 * tp as f64 / (tp + fp) as f64;
            prev_tp = tp;
        }
    }
    (ap / pos as f64).min(1.0)
}

/// Area under the ROC curve of `scores [n]` for the binary truth `y_true [n]`, in
/// `[0, 1]`: the probability that a random positive scores above a random negative, ties
/// counting one half (average ranks), which equals scikit-learn's trapezoidal
/// `roc_auc_score`.
///
/// NaN without positives or without negatives (scikit-learn raises), when the lengths
/// differ, `n == 0`, or a score is NaN.
pub fn roc_auc(y_true: &[bool], scores: &[f64]) -> f64 {
    let Some((pos, neg)) = valid_binary(y_true, scores) else {
        return f64::NAN;
    };
    if pos == 0 || neg == 0 {
        return f64::NAN;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_unstable_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Sum of the (1-based, tie-averaged) ranks of the positives.
    let mut rank_sum = 0.0;
    let mut k = 0;
    while k < order.len() {
        let s = scores[order[k]];
        let start = k;
        let mut pos_in_group = 0usize;
        while k < order.len() && scores[order[k]] == s {
            pos_in_group += usize::from(y_true[order[k]]);
            k += 1;
        }
        let avg_rank = (start + 1 + k) as f64 / 2.0;
        rank_sum += avg_rank * pos_in_group as f64;
    }
    let p = pos as f64;
    (rank_sum - p * (p + 1.0) / 2.0) / (p * neg as f64)
}

/// Ranking metrics of multi-label scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MultiLabelReport {
    /// Micro mean average precision: [`average_precision`] of all (sample, class) pairs
    /// pooled, `[0, 1]`.
    pub map_micro: f64,
    /// Macro mean average precision: mean of the per-class AP over classes with at least
    /// one positive, `[0, 1]`.
    pub map_macro: f64,
    /// Macro AUROC: mean of the per-class AUROC over classes with both positives and
    /// negatives; `None` when no class has both.
    pub auroc_macro: Option<f64>,
    /// AP per class, `[n_classes]`; `None` for a class without positives.
    pub ap_per_class: Vec<Option<f64>>,
    /// AUROC per class, `[n_classes]`; `None` for a class without positives or negatives.
    pub auroc_per_class: Vec<Option<f64>>,
    /// Positives per class in the scored set, `[n_classes]`.
    pub support: Vec<usize>,
    /// Number of samples scored.
    pub n: usize,
}

impl MultiLabelReport {
    /// A results-table row: `map_micro`, `map_macro` and (when defined) `auroc_macro` as
    /// extra metrics; accuracy, macro-F1 and balanced accuracy NaN.
    pub fn result_row(
        &self,
        run: &str,
        task: &str,
        protocol: &str,
        features: &str,
        seed: u64,
    ) -> ResultRow {
        let metrics = [
            ("map_micro", Some(self.map_micro)),
            ("map_macro", Some(self.map_macro)),
            ("auroc_macro", self.auroc_macro),
        ];
        ResultRow::with_extras(
            [run, task, protocol, features],
            seed,
            self.n,
            metrics.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))),
        )
    }
}

fn mean_of(xs: impl Iterator<Item = f64>) -> Option<f64> {
    let (s, k) = xs.fold((0.0, 0usize), |(s, k), x| (s + x, k + 1));
    (k > 0).then(|| s / k as f64)
}

/// Scores `scores [n, n_classes]` (row-major; any monotone score, e.g. probabilities or
/// logits) against the truth `y_true [n, n_classes]`.
///
/// # Errors
/// Shape mismatches, `n == 0`, a non-finite score, or no positive label at all (mAP is
/// then undefined).
pub fn multi_label_report(
    y_true: &LabelMatrix,
    scores: &[f64],
) -> Result<MultiLabelReport, EvalError> {
    y_true.check("true labels")?;
    let (n, c) = (y_true.n, y_true.n_classes);
    if scores.len() != y_true.data.len() {
        return Err(EvalError::ShapeMismatch {
            what: format!("number of scores (n * n_classes with n = {n}, n_classes = {c})"),
            expected: y_true.data.len(),
            got: scores.len(),
        });
    }
    if n == 0 || c == 0 {
        return Err(EvalError::EmptySplit {
            split: "multi-label samples to score".into(),
        });
    }
    if let Some(index) = scores.iter().position(|s| !s.is_finite()) {
        return Err(EvalError::NonFinite {
            what: "multi-label scores".into(),
            index,
        });
    }
    let support = y_true.positives();
    if support.iter().all(|&p| p == 0) {
        return Err(EvalError::EmptySplit {
            split: "positive labels of the scored multi-label set".into(),
        });
    }
    let (ap_per_class, auroc_per_class): (Vec<Option<f64>>, Vec<Option<f64>>) = (0..c)
        .into_par_iter()
        .map(|k| {
            let t = y_true.column(k);
            let s: Vec<f64> = scores.iter().skip(k).step_by(c).copied().collect();
            let finite = |v: f64| v.is_finite().then_some(v);
            (finite(average_precision(&t, &s)), finite(roc_auc(&t, &s)))
        })
        .unzip();
    let map_macro = mean_of(ap_per_class.iter().flatten().copied()).unwrap_or(f64::NAN);
    Ok(MultiLabelReport {
        map_micro: average_precision(&y_true.data, scores),
        map_macro,
        auroc_macro: mean_of(auroc_per_class.iter().flatten().copied()),
        ap_per_class,
        auroc_per_class,
        support,
        n,
    })
}

/// Macro AP over the classes with positives, for model selection; `None` if none has.
fn macro_ap(y: &LabelMatrix, scores: &[f64]) -> Option<f64> {
    let c = y.n_classes;
    mean_of((0..c).filter_map(|k| {
        let s: Vec<f64> = scores.iter().skip(k).step_by(c).copied().collect();
        let ap = average_precision(&y.column(k), &s);
        ap.is_finite().then_some(ap)
    }))
}

/// One point of the L2 search of [`fit_multi_label_probe`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MultiLabelGridPoint {
    /// L2 strength `λ`.
    pub l2: f64,
    /// Validation macro mAP of the model fitted on the training split.
    pub val_map_macro: f64,
    /// L-BFGS iterations taken.
    pub iterations: usize,
    /// Whether L-BFGS met its tolerance before `max_iter`.
    pub converged: bool,
}

/// A fitted one-vs-rest logistic probe: `P(label c | x) = σ(w_c · ((x - mean) / std) + b_c)`.
///
/// Shapes: `W [n_classes, d]`, `b [n_classes]`, `mean`, `std [d]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MultiLabelProbe {
    /// The chosen L2 strength.
    pub l2: f64,
    /// Validation macro mAP of the chosen `λ` (NaN for [`fit_multi_label_probe_with_l2`]).
    #[serde(deserialize_with = "crate::f64_or_nan")]
    pub val_map_macro: f64,
    /// Every `λ` tried, strongest first (empty for a fixed `λ`).
    pub grid: Vec<MultiLabelGridPoint>,
    /// Number of classes.
    pub n_classes: usize,
    /// Feature dimension.
    pub d: usize,
    /// L-BFGS iterations of the final fit.
    pub iterations: usize,
    /// Whether the final fit met its tolerance.
    pub converged: bool,
    mean: Vec<f64>,
    inv_std: Vec<f64>,
    weights: Vec<f64>,
    bias: Vec<f64>,
}

fn check_multi_inputs(x: &Features, y: &LabelMatrix, split: &str) -> Result<(), EvalError> {
    check_fit_inputs(x, y.n_classes, split)?;
    y.check(&format!("{split} labels"))?;
    if y.n != x.n {
        return Err(EvalError::ShapeMismatch {
            what: format!("number of {split} label rows (one per feature row)"),
            expected: x.n,
            got: y.n,
        });
    }
    Ok(())
}

/// Fits a one-vs-rest logistic probe, choosing `λ` from `cfg.l2_grid` by validation macro
/// mAP (classes with validation positives; ties: the stronger `λ`), then refitting on
/// train+val (re-standardised on their union).
///
/// # Shapes
/// - `train [n_train, d]`, `y_train [n_train, c]`; `val [n_val, d]`, `y_val [n_val, c]`.
///
/// # Errors
/// Shape mismatches (including different class counts), empty splits, non-finite
/// features, an invalid config, or no positive label in the validation split.
pub fn fit_multi_label_probe(
    train: &Features,
    y_train: &LabelMatrix,
    val: &Features,
    y_val: &LabelMatrix,
    cfg: &LinearProbeConfig,
) -> Result<MultiLabelProbe, EvalError> {
    let grid = cfg.validate()?;
    check_multi_inputs(train, y_train, "multi-label train")?;
    check_multi_inputs(val, y_val, "multi-label validation")?;
    if val.d != train.d || y_val.n_classes != y_train.n_classes {
        return Err(EvalError::ShapeMismatch {
            what: "validation feature dimension and class count (must match train)".into(),
            expected: train.d * y_train.n_classes,
            got: val.d * y_val.n_classes,
        });
    }
    if y_val.positives().iter().all(|&p| p == 0) {
        return Err(EvalError::EmptySplit {
            split: "positive labels of the multi-label validation split".into(),
        });
    }
    let (d, c) = (train.d, y_train.n_classes);
    let lbfgs = cfg.lbfgs();
    let (mean, inv_std) = scaler(train);
    let x_train = standardise(train, &mean, &inv_std);
    let x_val = standardise(val, &mean, &inv_std);
    let problem = Sigmoid::new(&x_train, &y_train.data, d, c);
    let mut theta = vec![0.0; c * d + c];
    let mut points: Vec<MultiLabelGridPoint> = Vec::with_capacity(grid.len());
    let mut best: Option<(f64, f64, Vec<f64>)> = None;
    for &l2 in &grid {
        let report = problem.fit(l2, &mut theta, &lbfgs);
        let z = logits(&x_val, val.n, &theta, d, c);
        let score = macro_ap(y_val, &z).unwrap_or(f64::NAN);
        if best.as_ref().is_none_or(|(s, _, _)| score > *s) {
            best = Some((score, l2, theta.clone()));
        }
        points.push(MultiLabelGridPoint {
            l2,
            val_map_macro: score,
            iterations: report.iterations,
            converged: report.converged(),
        });
    }
    let (val_map_macro, l2, best_theta) = best.ok_or_else(|| EvalError::InvalidConfig {
        what: "l2_grid".into(),
        reason: "needs at least one L2 strength".into(),
    })?;
    let all = train.vstack(val)?;
    let y_all: Vec<bool> = y_train.data.iter().chain(&y_val.data).copied().collect();
    let (mean_all, inv_std_all) = scaler(&all);
    let x_all = standardise(&all, &mean_all, &inv_std_all);
    let mut theta = remap(
        &best_theta,
        d,
        c,
        (&mean, &inv_std),
        (&mean_all, &inv_std_all),
    );
    let report = Sigmoid::new(&x_all, &y_all, d, c).fit(l2, &mut theta, &lbfgs);
    let bias = theta.split_off(c * d);
    Ok(MultiLabelProbe {
        l2,
        val_map_macro,
        grid: points,
        n_classes: c,
        d,
        iterations: report.iterations,
        converged: report.converged(),
        mean: mean_all,
        inv_std: inv_std_all,
        weights: theta,
        bias,
    })
}

/// Fits a one-vs-rest logistic probe with one given `l2` on all of `train`, without a
/// validation split (`cfg.l2_grid` is ignored).
///
/// # Errors
/// Shape mismatches, an empty split, non-finite features, an `l2` that is not finite and
/// `>= 0`, an invalid `max_iter`/`tol`.
pub fn fit_multi_label_probe_with_l2(
    train: &Features,
    y_train: &LabelMatrix,
    l2: f64,
    cfg: &LinearProbeConfig,
) -> Result<MultiLabelProbe, EvalError> {
    let cfg = LinearProbeConfig {
        l2_grid: vec![l2],
        ..cfg.clone()
    };
    cfg.validate()?;
    check_multi_inputs(train, y_train, "multi-label train")?;
    let (d, c) = (train.d, y_train.n_classes);
    let (mean, inv_std) = scaler(train);
    let x = standardise(train, &mean, &inv_std);
    let mut theta = vec![0.0; c * d + c];
    let report = Sigmoid::new(&x, &y_train.data, d, c).fit(l2, &mut theta, &cfg.lbfgs());
    let bias = theta.split_off(c * d);
    Ok(MultiLabelProbe {
        l2,
        val_map_macro: f64::NAN,
        grid: Vec::new(),
        n_classes: c,
        d,
        iterations: report.iterations,
        converged: report.converged(),
        mean,
        inv_std,
        weights: theta,
        bias,
    })
}

fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// `ln(1 + e^z)` without overflow.
fn softplus(z: f64) -> f64 {
    z.max(0.0) + (-z.abs()).exp().ln_1p()
}

impl MultiLabelProbe {
    /// Weights `W [n_classes, d]` (row-major), acting on standardised features.
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// Bias `b [n_classes]`.
    pub fn bias(&self) -> &[f64] {
        &self.bias
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

    /// Per-class probabilities `[x.n, n_classes]`, row-major (independent sigmoids).
    pub fn predict_proba(&self, x: &Features) -> Result<Vec<f64>, EvalError> {
        let mut z = self.logits(x)?;
        z.iter_mut().for_each(|v| *v = sigmoid(*v));
        Ok(z)
    }

    /// Labels whose probability is at least `threshold` (e.g. 0.5).
    pub fn predict(&self, x: &Features, threshold: f64) -> Result<LabelMatrix, EvalError> {
        let p = self.predict_proba(x)?;
        Ok(LabelMatrix {
            data: p.iter().map(|&v| v >= threshold).collect(),
            n: x.n,
            n_classes: self.n_classes,
        })
    }
}

/// The L2-regularised one-vs-rest logistic objective on standardised `x [n, d]` with
/// indicators `y [n, c]`: `mean_i Σ_c (softplus(z_ic) − y_ic z_ic) + λ/2 ‖W‖²`.
struct Sigmoid<'a> {
    x: &'a [f64],
    xt: Vec<f64>,
    y: &'a [bool],
    n: usize,
    d: usize,
    c: usize,
}

impl<'a> Sigmoid<'a> {
    fn new(x: &'a [f64], y: &'a [bool], d: usize, c: usize) -> Self {
        let n = y.len() / c.max(1);
        Self {
            x,
            xt: transpose(x, n, d),
            y,
            n,
            d,
            c,
        }
    }

    fn loss_grad(&self, theta: &[f64], l2: f64, grad: &mut [f64]) -> f64 {
        let (n, d, c) = (self.n, self.d, self.c);
        let (w, b) = theta.split_at(c * d);
        let mut r = vec![0.0; n * c];
        let block_losses: Vec<f64> = r
            .par_chunks_mut(ROWS_PER_BLOCK * c)
            .zip(self.x.par_chunks(ROWS_PER_BLOCK * d.max(1)))
            .zip(self.y.par_chunks(ROWS_PER_BLOCK * c))
            .map(|((rb, xb), yb)| {
                let rows = rb.len() / c;
                a_bt(&xb[..rows * d], rows, w, c, d, rb);
                let mut loss = 0.0;
                for (z, yr) in rb.chunks_exact_mut(c).zip(yb.chunks_exact(c)) {
                    for ((v, bv), &t) in z.iter_mut().zip(b).zip(yr) {
                        let zz = *v + bv;
                        let t = f64::from(u8::from(t));
                        loss += softplus(zz) - t * zz;
                        *v = sigmoid(zz) - t;
                    }
                }
                loss
            })
            .collect();
        let data_loss = block_losses.iter().sum::<f64>() / n as f64;
        data_loss + gradient_from_residuals(&self.xt, &r, (n, d, c), w, l2, grad)
    }

    fn fit(&self, l2: f64, theta: &mut [f64], cfg: &LbfgsConfig) -> LbfgsReport {
        minimize(|t, g| self.loss_grad(t, l2, g), theta, cfg)
    }
}

/// Outcome of [`run_multi_label_probe`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MultiLabelResults {
    /// Test-set metrics of the probe's probabilities.
    pub report: MultiLabelReport,
    /// The chosen L2 strength.
    pub l2: f64,
    /// Validation macro mAP of the chosen `λ`.
    pub val_map_macro: f64,
    /// Training samples of the `λ` search (the final fit uses these plus `n_val`).
    pub n_train: usize,
    /// Validation samples of the `λ` search.
    pub n_val: usize,
}

/// The multi-label protocol: a random validation split of `cfg.val_fraction` of the
/// training samples (seeded by `seed`; multi-label targets have no single class to
/// stratify by) chooses the probe's `λ` from `cfg.linear`, the probe is refitted on all
/// training samples and scored on the test set.
///
/// # Shapes
/// - `train [n_train, d]`, `y_train [n_train, c]`, `test [n_test, d]`, `y_test [n_test, c]`.
///
/// # Errors
/// As [`fit_multi_label_probe`] and [`multi_label_report`]; an empty validation split
/// (fewer than two training samples or `val_fraction` too small).
pub fn run_multi_label_probe(
    train: &Features,
    y_train: &LabelMatrix,
    test: &Features,
    y_test: &LabelMatrix,
    cfg: &ProbeConfig,
    seed: u64,
) -> Result<MultiLabelResults, EvalError> {
    check_multi_inputs(train, y_train, "multi-label train")?;
    let (tr, va) = random_split(train.n, cfg.val_fraction, seed);
    if tr.is_empty() || va.is_empty() {
        return Err(EvalError::EmptySplit {
            split: "multi-label train/validation".into(),
        });
    }
    if y_test.n_classes != y_train.n_classes {
        return Err(EvalError::ShapeMismatch {
            what: "number of test label columns (classes, must match train)".into(),
            expected: y_train.n_classes,
            got: y_test.n_classes,
        });
    }
    let probe = fit_multi_label_probe(
        &train.select(&tr)?,
        &y_train.select(&tr)?,
        &train.select(&va)?,
        &y_train.select(&va)?,
        &cfg.linear,
    )?;
    let report = multi_label_report(y_test, &probe.predict_proba(test)?)?;
    Ok(MultiLabelResults {
        report,
        l2: probe.l2,
        val_map_macro: probe.val_map_macro,
        n_train: tr.len(),
        n_val: va.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::blobs;
    use proptest::prelude::*;
    use tessera_tokens::Rng;

    #[test]
    fn parses_label_strings() {
        let (classes, y) = parse_multi_labels(&["a;c", " b ", "", "c;a;;a;", "b;d"]).unwrap();
        assert_eq!(classes, ["a", "b", "c", "d"]);
        assert_eq!((y.n, y.n_classes), (5, 4));
        assert_eq!(y.row(0).unwrap(), [true, false, true, false]);
        assert_eq!(y.row(2).unwrap(), [false; 4]);
        assert_eq!(y.row(3).unwrap(), [true, false, true, false]);
        assert_eq!(y.positives(), vec![2, 2, 2, 1]);
        assert_eq!(y.column(1), vec![false, true, false, false, true]);
        assert!(y.row(5).is_none() && y.column(4).is_empty());
        let sel = y.select(&[4, 0]).unwrap();
        assert_eq!(
            sel.data,
            [false, true, false, true, true, false, true, false]
        );
        assert!(y.select(&[5]).is_err());
        assert!(matches!(
            multi_label_indicators(&["a;e"], &classes),
            Err(EvalError::UnknownClassName { ref name, .. }) if name == "e"
        ));
        assert!(matches!(
            parse_multi_labels(&["", ";"]),
            Err(EvalError::EmptySplit { .. })
        ));
        assert!(LabelMatrix::new(vec![true; 5], 2, 3).is_err());
        let m = LabelMatrix::from_indices(&[vec![2, 0], vec![]], 3).unwrap();
        assert_eq!(m.data, [true, false, true, false, false, false]);
        assert!(LabelMatrix::from_indices(&[vec![3]], 3).is_err());
    }

    #[test]
    fn hand_computed_ap_and_auc() {
        // Scores 0.9 (+), 0.8 (−), 0.8 (+), 0.1 (−): thresholds 0.9 → P 1, R 1/2;
        // 0.8 → P 2/3, R 1; AP = 1/2 · 1 + 1/2 · 2/3 = 5/6.
        let y = [true, false, true, false];
        let s = [0.9, 0.8, 0.8, 0.1];
        assert!((average_precision(&y, &s) - 5.0 / 6.0).abs() < 1e-15);
        // Pairs (pos, neg): (0.9, 0.8) 1, (0.9, 0.1) 1, (0.8, 0.8) ½, (0.8, 0.1) 1 → 3.5/4.
        assert!((roc_auc(&y, &s) - 0.875).abs() < 1e-15);
        assert!(average_precision(&[false, false], &[0.1, 0.2]).is_nan());
        assert!(roc_auc(&[true, true], &[0.1, 0.2]).is_nan());
        assert!(roc_auc(&[true, false], &[f64::NAN, 0.2]).is_nan());
        assert!(average_precision(&[true], &[0.1, 0.2]).is_nan());
        // All tied: AP = prevalence, AUROC = 1/2.
        assert_eq!(average_precision(&y, &[0.3; 4]), 0.5);
        assert_eq!(roc_auc(&y, &[0.3; 4]), 0.5);
    }

    fn brute_auc(y: &[bool], s: &[f64]) -> f64 {
        let (mut num, mut den) = (0.0, 0.0);
        for i in 0..y.len() {
            for j in 0..y.len() {
                if y[i] && !y[j] {
                    den += 1.0;
                    num += if s[i] > s[j] {
                        1.0
                    } else if s[i] == s[j] {
                        0.5
                    } else {
                        0.0
                    };
                }
            }
        }
        num / den
    }

    /// AP from its definition: for each positive, the precision at its score threshold
    /// (all samples scoring at least as high), averaged over positives.
    fn brute_ap(y: &[bool], s: &[f64]) -> f64 {
        let pos: Vec<usize> = (0..y.len()).filter(|&i| y[i]).collect();
        let mut total = 0.0;
        for &i in &pos {
            let above: Vec<usize> = (0..y.len()).filter(|&j| s[j] >= s[i]).collect();
            let tp = above.iter().filter(|&&j| y[j]).count();
            total += tp as f64 / above.len() as f64;
        }
        total / pos.len() as f64
    }

    proptest! {
        #[test]
        fn ap_and_auc_match_their_definitions(
            pairs in prop::collection::vec((any::<bool>(), 0u8..6), 2..40),
        ) {
            let y: Vec<bool> = pairs.iter().map(|p| p.0).collect();
            // Few distinct scores: many ties.
            let s: Vec<f64> = pairs.iter().map(|p| p.1 as f64 / 5.0).collect();
            let pos = y.iter().filter(|&&t| t).count();
            let ap = average_precision(&y, &s);
            let auc = roc_auc(&y, &s);
            if pos == 0 {
                prop_assert!(ap.is_nan());
            } else {
                prop_assert!((ap - brute_ap(&y, &s)).abs() < 1e-12, "{} vs {}", ap, brute_ap(&y, &s));
                prop_assert!((0.0..=1.0).contains(&ap));
            }
            if pos == 0 || pos == y.len() {
                prop_assert!(auc.is_nan());
            } else {
                prop_assert!((auc - brute_auc(&y, &s)).abs() < 1e-12);
                // Reversing the scores mirrors the AUROC.
                let neg: Vec<f64> = s.iter().map(|v| -v).collect();
                prop_assert!((roc_auc(&y, &neg) - (1.0 - auc)).abs() < 1e-12);
                // A strictly increasing transform changes nothing.
                let exp: Vec<f64> = s.iter().map(|v| (3.0 * v).exp()).collect();
                prop_assert_eq!(roc_auc(&y, &exp), auc);
                prop_assert_eq!(average_precision(&y, &exp), ap);
            }
        }

        #[test]
        fn label_strings_round_trip(
            rows in prop::collection::vec(prop::collection::btree_set(0usize..6, 0..4), 1..12),
        ) {
            let names = ["alpha", "beta", "gamma", "delta", "eps", "zeta"];
            let strings: Vec<String> = rows
                .iter()
                .map(|r| r.iter().map(|&k| names[k]).collect::<Vec<_>>().join(";"))
                .collect();
            match parse_multi_labels(&strings) {
                Err(_) => prop_assert!(rows.iter().all(|r| r.is_empty())),
                Ok((classes, y)) => {
                    for (i, r) in rows.iter().enumerate() {
                        let got: std::collections::BTreeSet<&str> = y
                            .row(i)
                            .unwrap()
                            .iter()
                            .zip(&classes)
                            .filter(|(v, _)| **v)
                            .map(|(_, c)| c.as_str())
                            .collect();
                        let want: std::collections::BTreeSet<&str> =
                            r.iter().map(|&k| names[k]).collect();
                        prop_assert_eq!(got, want);
                    }
                }
            }
        }
    }

    #[test]
    fn report_skips_undefined_classes() {
        // Class 0 fine, class 1 no positives, class 2 all positive.
        let y = LabelMatrix::from_indices(&[vec![0, 2], vec![2], vec![0, 2], vec![2]], 3).unwrap();
        let s = [0.9, 0.5, 0.2, 0.1, 0.4, 0.3, 0.8, 0.6, 0.7, 0.2, 0.1, 0.9];
        let r = multi_label_report(&y, &s).unwrap();
        assert_eq!(r.ap_per_class[0], Some(1.0));
        assert_eq!(r.ap_per_class[1], None);
        assert_eq!(r.ap_per_class[2], Some(1.0));
        assert_eq!(r.map_macro, 1.0);
        assert_eq!(r.auroc_per_class, vec![Some(1.0), None, None]);
        assert_eq!(r.auroc_macro, Some(1.0));
        assert_eq!(r.support, vec![2, 0, 4]);
        assert!(r.map_micro < 1.0 && r.map_micro > 0.5);
        let row = r.result_row("run", "task", "linear", "cls", 3);
        assert_eq!(row.extra.len(), 3);
        assert!(row.accuracy.is_nan());
        assert!(multi_label_report(&y, &s[1..]).is_err());
        let mut bad = s;
        bad[3] = f64::INFINITY;
        assert!(matches!(
            multi_label_report(&y, &bad),
            Err(EvalError::NonFinite { index: 3, .. })
        ));
        let none = LabelMatrix::new(vec![false; 4], 2, 2).unwrap();
        assert!(multi_label_report(&none, &[0.0; 4]).is_err());
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let (n, d, c) = (19, 4, 3);
        let mut rng = Rng::new(21);
        let x: Vec<f64> = (0..n * d).map(|_| rng.normal()).collect();
        let y: Vec<bool> = (0..n * c).map(|_| rng.uniform() < 0.4).collect();
        let theta: Vec<f64> = (0..c * d + c).map(|_| 0.7 * rng.normal()).collect();
        let p = Sigmoid::new(&x, &y, d, c);
        let l2 = 0.2;
        let mut g = vec![0.0; theta.len()];
        let f0 = p.loss_grad(&theta, l2, &mut g);
        let mut scratch = g.clone();
        for j in 0..theta.len() {
            let h = 1e-6;
            let mut tp = theta.clone();
            tp[j] += h;
            let fp = p.loss_grad(&tp, l2, &mut scratch);
            tp[j] -= 2.0 * h;
            let fm = p.loss_grad(&tp, l2, &mut scratch);
            let num = (fp - fm) / (2.0 * h);
            assert!(
                (num - g[j]).abs() < 1e-7 * (1.0 + g[j].abs()),
                "{j}: {num} vs {}",
                g[j]
            );
        }
        // Direct loss.
        let (w, b) = theta.split_at(c * d);
        let mut direct = 0.0;
        for i in 0..n {
            for k in 0..c {
                let z = b[k] + (0..d).map(|j| w[k * d + j] * x[i * d + j]).sum::<f64>();
                let p = 1.0 / (1.0 + (-z).exp());
                direct -= if y[i * c + k] { p.ln() } else { (1.0 - p).ln() };
            }
        }
        direct = direct / n as f64 + 0.5 * l2 * w.iter().map(|v| v * v).sum::<f64>();
        assert!((direct - f0).abs() < 1e-10, "{direct} vs {f0}");
    }

    /// Labels from the blob classes: label 0 = class 0 or 1, label 1 = class 1 or 2,
    /// label 2 = class 3, label 3 never.
    fn multi_blobs(seed: u64) -> (Features, LabelMatrix) {
        let (x, y) = blobs(40, 4, 6, 5.0, 0.7, seed);
        let rows: Vec<Vec<usize>> = y
            .iter()
            .map(|&c| match c {
                0 => vec![0],
                1 => vec![0, 1],
                2 => vec![1],
                _ => vec![2],
            })
            .collect();
        (x, LabelMatrix::from_indices(&rows, 4).unwrap())
    }

    #[test]
    fn probe_separates_blob_labels() {
        let (x, y) = multi_blobs(7);
        let cfg = ProbeConfig::default();
        let tr: Vec<usize> = (0..120).collect();
        let te: Vec<usize> = (120..160).collect();
        let r = run_multi_label_probe(
            &x.select(&tr).unwrap(),
            &y.select(&tr).unwrap(),
            &x.select(&te).unwrap(),
            &y.select(&te).unwrap(),
            &cfg,
            1,
        )
        .unwrap();
        assert!(r.report.map_macro > 0.99, "{:?}", r.report);
        // Pooled over classes, scores of different classes are not calibrated to each
        // other: micro mAP is high but need not be perfect.
        assert!(r.report.map_micro > 0.95, "{:?}", r.report);
        assert!(r.report.auroc_macro.unwrap() > 0.99);
        assert_eq!(r.report.ap_per_class[3], None);
        assert_eq!((r.n_train + r.n_val, r.n_val), (120, 12));
        // Deterministic.
        let again = run_multi_label_probe(
            &x.select(&tr).unwrap(),
            &y.select(&tr).unwrap(),
            &x.select(&te).unwrap(),
            &y.select(&te).unwrap(),
            &cfg,
            1,
        )
        .unwrap();
        assert_eq!(r, again);
        let probe = fit_multi_label_probe_with_l2(&x, &y, 0.01, &cfg.linear).unwrap();
        let pred = probe.predict(&x, 0.5).unwrap();
        let agree = pred
            .data
            .iter()
            .zip(&y.data)
            .filter(|(a, b)| a == b)
            .count();
        assert!(agree as f64 / y.data.len() as f64 > 0.97);
        // The never-seen label gets a low probability everywhere.
        let p = probe.predict_proba(&x).unwrap();
        assert!(p.iter().skip(3).step_by(4).all(|&v| v < 0.01));
    }

    #[test]
    fn bad_inputs_are_errors() {
        let (x, y) = multi_blobs(2);
        let cfg = LinearProbeConfig::default();
        let short = y.select(&[0, 1]).unwrap();
        assert!(matches!(
            fit_multi_label_probe(&x, &short, &x, &y, &cfg),
            Err(EvalError::ShapeMismatch { .. })
        ));
        let none = LabelMatrix::new(vec![false; y.data.len()], y.n, 4).unwrap();
        assert!(matches!(
            fit_multi_label_probe(&x, &y, &x, &none, &cfg),
            Err(EvalError::EmptySplit { .. })
        ));
        let three = LabelMatrix::new(vec![false; x.n * 3], x.n, 3).unwrap();
        assert!(fit_multi_label_probe(&x, &y, &x, &three, &cfg).is_err());
        assert!(fit_multi_label_probe_with_l2(&x, &y, -1.0, &cfg).is_err());
        let mut nan = x.clone();
        nan.data[0] = f32::NAN;
        assert!(matches!(
            fit_multi_label_probe_with_l2(&nan, &y, 0.1, &cfg),
            Err(EvalError::NonFinite { .. })
        ));
        let probe = fit_multi_label_probe_with_l2(&x, &y, 0.1, &cfg).unwrap();
        assert!(probe
            .predict_proba(&Features::new(vec![0.0; 3], 1, 3).unwrap())
            .is_err());
        let one = x.select(&[0]).unwrap();
        assert!(matches!(
            run_multi_label_probe(
                &one,
                &y.select(&[0]).unwrap(),
                &x,
                &y,
                &ProbeConfig::default(),
                0
            ),
            Err(EvalError::EmptySplit { .. })
        ));
    }
}
