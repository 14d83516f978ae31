//! Frozen-feature evaluation for Tessera: the shared protocols every benchmark runs on the
//! features an encoder produces, with no numeric-framework dependency.
//!
//! - [`linear`]: a linear probe, multinomial logistic regression on standardised features,
//!   fitted by full-batch L-BFGS with the L2 strength chosen on a validation split.
//! - [`knn`]: DINO's weighted k-nearest-neighbour classifier (Caron et al. 2021,
//!   "Emerging Properties in Self-Supervised Vision Transformers", arXiv:2104.14294).
//! - [`metrics`]: accuracy, macro-F1, balanced accuracy and the confusion matrix.
//! - [`multilabel`]: multi-label targets (`"a;c"` label strings → indicator matrix), a
//!   one-vs-rest logistic probe, micro/macro mean average precision and macro AUROC.
//! - [`fewshot`]: k labelled samples per class, repeated over seeded draws; linear probe
//!   and kNN on each draw, mean ± sd over draws.
//! - [`regression`]: a ridge probe for scalar targets (L2 chosen on validation), R² and
//!   MAE.
//! - [`segmentation`]: Dice and HD95 (95th-percentile Hausdorff distance in mm, exact
//!   anisotropic distance transform) on label volumes, as medpy and MONAI define them, and
//!   their per-class mean over cases.
//! - [`split`]: a deterministic stratified train/validation split.
//! - [`tables`]: result rows, their summary over seeds, Markdown, and (with the `tables`
//!   feature) CSV/Parquet files through polars.
//! - `plots` (with the default `plots` feature): PNG training curves, confusion heat maps
//!   and run comparisons (mean ± sd over seeds) through plotters.
//!
//! Features are passed as [`Features`]: a row-major `[n, d]` `f32` matrix. Labels are class
//! indices `0..n_classes`. Every numeric sum is accumulated in `f64`, and results do not depend
//! on the number of threads: work is split into fixed blocks whose partial results are
//! combined in a fixed order.
//!
//! ```
//! use tessera_eval::{
//!     classification_report, fit_linear_probe, knn_predict, stratified_split, Features,
//!     KnnConfig, LinearProbeConfig,
//! };
//!
//! // Two classes in 2-D: [n = 8, d = 2], row-major.
//! let x = Features::new(
//!     vec![0.0, 0.1, 0.2, 0.0, 0.1, 0.3, 0.3, 0.2, 3.0, 3.1, 3.2, 3.0, 3.1, 3.3, 3.3, 3.2],
//!     8,
//!     2,
//! )?;
//! let y = [0, 0, 0, 0, 1, 1, 1, 1];
//! let (train_idx, val_idx) = stratified_split(&y, 0.25, 0);
//! let pick = |idx: &[usize]| idx.iter().map(|&i| y[i]).collect::<Vec<_>>();
//! let (train, val) = (x.select(&train_idx)?, x.select(&val_idx)?);
//! let probe =
//!     fit_linear_probe(&train, &pick(&train_idx), &val, &pick(&val_idx), 2, &LinearProbeConfig::default())?;
//! let report = classification_report(&y, &probe.predict(&x)?, 2)?;
//! assert_eq!(report.accuracy, 1.0);
//! let knn = knn_predict(&train, &pick(&train_idx), &x, 2, &KnnConfig { k: 3, ..KnnConfig::default() })?;
//! assert_eq!(knn.len(), 8);
//! # Ok::<(), tessera_eval::EvalError>(())
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

pub mod fewshot;
mod kernels;
pub mod knn;
pub mod lbfgs;
pub mod linear;
pub mod metrics;
pub mod multilabel;
#[cfg(feature = "plots")]
pub mod plots;
pub mod protocol;
pub mod regression;
pub mod segmentation;
pub mod split;
pub mod tables;

pub use fewshot::{
    few_shot_indices, run_few_shot, FewShotConfig, FewShotDraw, FewShotResults, FewShotSummary,
    FewShotTrial, ShortClass,
};
pub use knn::{knn_predict, KnnConfig};
pub use linear::{
    fit_linear_probe, fit_linear_probe_with_l2, GridPoint, LinearProbe, LinearProbeConfig,
};
pub use metrics::{
    accuracy, balanced_accuracy, check_labels, classification_report, confusion_matrix,
    iou_per_class, macro_f1, ClassificationReport,
};
pub use multilabel::{
    average_precision, fit_multi_label_probe, fit_multi_label_probe_with_l2,
    multi_label_indicators, multi_label_report, parse_multi_labels, roc_auc, run_multi_label_probe,
    LabelMatrix, MultiLabelGridPoint, MultiLabelProbe, MultiLabelReport, MultiLabelResults,
    MULTI_LABEL_SEPARATOR,
};
#[cfg(feature = "plots")]
pub use plots::{
    plot_comparison, plot_comparison_rows, plot_confusion, plot_run, plot_run_with,
    read_metrics_jsonl, PlotFont, PlotOptions, PlotReport, RunMetrics,
};
pub use protocol::{run_probes, ProbeConfig, ProbeResults};
pub use regression::{
    fit_ridge, fit_ridge_with_l2, mean_absolute_error, r2_score, regression_report,
    run_regression_probe, RegressionReport, RegressionResults, RidgeConfig, RidgeGridPoint,
    RidgeProbe,
};
pub use segmentation::{
    cases_csv, check_volume, dice, dice_per_class, hausdorff95, hausdorff95_pooled,
    hausdorff_percentile, score_case, score_label_maps, summarise_segmentation, CaseScores,
    ClassSummary, HdPooling,
};
pub use split::{random_split, stratified_split};
pub use tables::{
    confusion_to_csv, read_rows_jsonl, summarise, summary_to_markdown, to_markdown,
    write_confusion_csv, MeanStd, ResultRow, SummaryRow,
};
#[cfg(feature = "tables")]
pub use tables::{write_summary_table, write_table};

/// Errors of the evaluation protocols. Each variant names what was being checked.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A buffer or dimension does not have the size it must have.
    #[error("shape mismatch: {what}: expected {expected}, got {got}")]
    ShapeMismatch {
        what: String,
        expected: usize,
        got: usize,
    },
    /// A split (train, validation, test, rows of a table...) has no samples.
    #[error("empty split: {split} has no samples")]
    EmptySplit { split: String },
    /// A label is not a class index below `n_classes`.
    #[error("unknown label {label} in {what}: expected a class index below {n_classes}")]
    UnknownLabel {
        what: String,
        label: usize,
        n_classes: usize,
    },
    /// An index (e.g. of a sample to select) is out of range.
    #[error("index out of range: {what}: index {index}, length {len}")]
    IndexOutOfRange {
        what: String,
        index: usize,
        len: usize,
    },
    /// A feature or parameter is NaN or infinite.
    #[error("non-finite value in {what} at flat index {index}")]
    NonFinite { what: String, index: usize },
    /// A configuration value is not usable.
    #[error("invalid config: {what}: {reason}")]
    InvalidConfig { what: String, reason: String },
    /// Reading or writing a file failed.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// polars failed to build or write a table (its error, as text).
    #[error("table error on {}: {message}", path.display())]
    Polars { path: PathBuf, message: String },
    /// A table path whose extension is neither `.csv` nor `.parquet`.
    #[error("unsupported table extension for {}: expected .csv or .parquet", path.display())]
    UnsupportedExtension { path: PathBuf },
    /// A class name that is not among the known classes (e.g. a test label never seen in
    /// training).
    #[error("unknown class name {name:?} in {what}: expected one of the {n_known} known classes")]
    UnknownClassName {
        what: String,
        name: String,
        n_known: usize,
    },
    /// A line of an input file could not be parsed (1-based line number).
    #[error("parse error in {} line {line}: {message}", path.display())]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// Drawing or encoding a plot failed (the plotting library's error, as text).
    #[error("plot error on {}: {message}", path.display())]
    Plot { path: PathBuf, message: String },
}

/// NaN, the serde default of metrics that were not measured.
pub(crate) fn nan() -> f64 {
    f64::NAN
}

/// Reads an `f64` that may be `null` (how serde_json writes NaN) as NaN.
pub(crate) fn f64_or_nan<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    use serde::Deserialize;
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// Reads a map of `f64` whose values may be `null` (NaN) as NaN.
pub(crate) fn map_f64_or_nan<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, f64>, D::Error> {
    use serde::Deserialize;
    Ok(BTreeMap::<String, Option<f64>>::deserialize(d)?
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or(f64::NAN)))
        .collect())
}

/// A feature matrix: `data [n, d]`, row-major (row `i` is `data[i * d..(i + 1) * d]`).
///
/// Built through [`Features::new`] (or [`Features::from_rows`]), which checks
/// `data.len() == n * d`; the probes re-check it since the fields are public.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Features {
    /// Values, `[n, d]` row-major.
    pub data: Vec<f32>,
    /// Number of samples (rows).
    pub n: usize,
    /// Feature dimension (columns).
    pub d: usize,
}

impl Features {
    /// Wraps `data [n, d]` after checking that `data.len() == n * d`.
    pub fn new(data: Vec<f32>, n: usize, d: usize) -> Result<Self, EvalError> {
        let f = Self { data, n, d };
        f.check("features")?;
        Ok(f)
    }

    /// Stacks equally long rows into `[rows.len(), d]`. No rows gives `[0, 0]`.
    pub fn from_rows(rows: &[Vec<f32>]) -> Result<Self, EvalError> {
        let d = rows.first().map_or(0, Vec::len);
        let mut data = Vec::with_capacity(rows.len() * d);
        for (i, r) in rows.iter().enumerate() {
            if r.len() != d {
                return Err(EvalError::ShapeMismatch {
                    what: format!("length of feature row {i}"),
                    expected: d,
                    got: r.len(),
                });
            }
            data.extend_from_slice(r);
        }
        Ok(Self {
            data,
            n: rows.len(),
            d,
        })
    }

    /// Row `i` (`[d]`), or `None` when `i >= n` or the buffer is too short.
    pub fn row(&self, i: usize) -> Option<&[f32]> {
        if i >= self.n {
            return None;
        }
        let start = i.checked_mul(self.d)?;
        self.data.get(start..start.checked_add(self.d)?)
    }

    /// The rows listed in `idx`, in that order: `[idx.len(), d]`.
    pub fn select(&self, idx: &[usize]) -> Result<Features, EvalError> {
        self.check("features")?;
        let mut data = Vec::with_capacity(idx.len() * self.d);
        for &i in idx {
            let row = self.row(i).ok_or_else(|| EvalError::IndexOutOfRange {
                what: "feature row to select".into(),
                index: i,
                len: self.n,
            })?;
            data.extend_from_slice(row);
        }
        Ok(Features {
            data,
            n: idx.len(),
            d: self.d,
        })
    }

    /// Rows of `self` followed by rows of `other`: `[n + other.n, d]`.
    pub fn vstack(&self, other: &Features) -> Result<Features, EvalError> {
        self.check("first features")?;
        other.check("second features")?;
        if other.d != self.d {
            return Err(EvalError::ShapeMismatch {
                what: "feature dimension of stacked rows".into(),
                expected: self.d,
                got: other.d,
            });
        }
        let mut data = Vec::with_capacity(self.data.len() + other.data.len());
        data.extend_from_slice(&self.data);
        data.extend_from_slice(&other.data);
        Ok(Features {
            data,
            n: self.n + other.n,
            d: self.d,
        })
    }

    /// Concatenates the columns of feature sets of the same samples, e.g. `cls` `[n, d1]`
    /// and `mean` `[n, d2]` into `cls+mean` `[n, d1 + d2]`.
    pub fn hstack(parts: &[&Features]) -> Result<Features, EvalError> {
        let n = parts.first().map_or(0, |p| p.n);
        let mut d = 0;
        for (j, p) in parts.iter().enumerate() {
            p.check(&format!("feature block {j}"))?;
            if p.n != n {
                return Err(EvalError::ShapeMismatch {
                    what: format!("number of rows of feature block {j}"),
                    expected: n,
                    got: p.n,
                });
            }
            d += p.d;
        }
        let mut data = Vec::with_capacity(n * d);
        for i in 0..n {
            for p in parts {
                data.extend_from_slice(&p.data[i * p.d..(i + 1) * p.d]);
            }
        }
        Ok(Features { data, n, d })
    }

    /// Checks the buffer length against `n * d` (`what` names the matrix in the error).
    pub(crate) fn check(&self, what: &str) -> Result<(), EvalError> {
        let expected = self
            .n
            .checked_mul(self.d)
            .ok_or_else(|| EvalError::ShapeMismatch {
                what: format!("{what}: n * d overflows (n = {}, d = {})", self.n, self.d),
                expected: usize::MAX,
                got: self.data.len(),
            })?;
        if self.data.len() != expected {
            return Err(EvalError::ShapeMismatch {
                what: format!(
                    "{what}: data length (n * d with n = {}, d = {})",
                    self.n, self.d
                ),
                expected,
                got: self.data.len(),
            });
        }
        Ok(())
    }

    /// Checks the shape and that every value is finite.
    pub(crate) fn check_finite(&self, what: &str) -> Result<(), EvalError> {
        self.check(what)?;
        match self.data.iter().position(|v| !v.is_finite()) {
            Some(index) => Err(EvalError::NonFinite {
                what: what.to_string(),
                index,
            }),
            None => Ok(()),
        }
    }
}

/// Checks that `labels` has one entry per row of a `[n, d]` matrix and that every label is
/// below `n_classes`.
pub(crate) fn check_label_vec(
    labels: &[usize],
    n: usize,
    n_classes: usize,
    what: &str,
) -> Result<(), EvalError> {
    if labels.len() != n {
        return Err(EvalError::ShapeMismatch {
            what: format!("number of {what} labels (one per feature row)"),
            expected: n,
            got: labels.len(),
        });
    }
    if let Some(&label) = labels.iter().find(|&&l| l >= n_classes) {
        return Err(EvalError::UnknownLabel {
            what: format!("{what} labels"),
            label,
            n_classes,
        });
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::Features;
    use tessera_tokens::Rng;

    /// Gaussian blobs: `n_per_class` samples per class around class means drawn as
    /// `sep * N(0, I)`, with isotropic noise `noise * N(0, I)`. Rows are shuffled.
    pub fn blobs(
        n_per_class: usize,
        n_classes: usize,
        d: usize,
        sep: f64,
        noise: f64,
        seed: u64,
    ) -> (Features, Vec<usize>) {
        let mut rng = Rng::new(seed);
        let means: Vec<Vec<f64>> = (0..n_classes)
            .map(|_| (0..d).map(|_| sep * rng.normal()).collect())
            .collect();
        let order = rng.permutation(n_per_class * n_classes);
        let mut data = Vec::with_capacity(order.len() * d);
        let mut y = Vec::with_capacity(order.len());
        for &i in &order {
            let c = i % n_classes;
            for &m in &means[c] {
                data.push((m + noise * rng.normal()) as f32);
            }
            y.push(c);
        }
        (
            Features {
                data,
                n: order.len(),
                d,
            },
            y,
        )
    }

    #[test]
    fn features_constructors_check_shapes() {
        assert!(Features::new(vec![0.0; 6], 2, 3).is_ok());
        assert!(matches!(
            Features::new(vec![0.0; 5], 2, 3),
            Err(super::EvalError::ShapeMismatch {
                expected: 6,
                got: 5,
                ..
            })
        ));
        let f = Features::from_rows(&[vec![1.0, 2.0], vec![3.0, 4.0]]).unwrap();
        assert_eq!((f.n, f.d), (2, 2));
        assert!(Features::from_rows(&[vec![1.0], vec![3.0, 4.0]]).is_err());
        let s = f.select(&[1, 1, 0]).unwrap();
        assert_eq!(s.data, vec![3.0, 4.0, 3.0, 4.0, 1.0, 2.0]);
        assert!(f.select(&[2]).is_err());
        let h = Features::hstack(&[&f, &s.select(&[0, 2]).unwrap()]).unwrap();
        assert_eq!(h.data, vec![1.0, 2.0, 3.0, 4.0, 3.0, 4.0, 1.0, 2.0]);
        assert_eq!(f.vstack(&f).unwrap().n, 4);
        assert!(f.row(2).is_none());
    }
}
