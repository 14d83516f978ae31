//! Classification metrics: accuracy, macro-F1 (scikit-learn's `f1_score(average="macro")`
//! over the labels present in `y_true` or `y_pred`), balanced accuracy (scikit-learn's
//! `balanced_accuracy_score`: mean recall over the classes present in `y_true`) and the
//! confusion matrix.
//!
//! The plain functions never fail: invalid input (different lengths, no samples, a label
//! `>= n_classes`) gives NaN, and [`confusion_matrix`] skips out-of-range pairs. Use
//! [`check_labels`] or [`classification_report`] to turn invalid input into an error.

use serde::{Deserialize, Serialize};

use crate::EvalError;

/// Checks that `y_true` and `y_pred` have the same non-zero length and every label is
/// below `n_classes`.
pub fn check_labels(y_true: &[usize], y_pred: &[usize], n_classes: usize) -> Result<(), EvalError> {
    if y_true.len() != y_pred.len() {
        return Err(EvalError::ShapeMismatch {
            what: "number of predictions (one per true label)".into(),
            expected: y_true.len(),
            got: y_pred.len(),
        });
    }
    if y_true.is_empty() {
        return Err(EvalError::EmptySplit {
            split: "labels to score".into(),
        });
    }
    for (what, ys) in [("true", y_true), ("predicted", y_pred)] {
        if let Some(&label) = ys.iter().find(|&&l| l >= n_classes) {
            return Err(EvalError::UnknownLabel {
                what: format!("{what} labels"),
                label,
                n_classes,
            });
        }
    }
    Ok(())
}

/// Fraction of positions where `y_pred[i] == y_true[i]`, in `[0, 1]`.
///
/// `y_true`, `y_pred`: `[n]`. NaN when the lengths differ or `n == 0`.
pub fn accuracy(y_true: &[usize], y_pred: &[usize]) -> f64 {
    if y_true.len() != y_pred.len() || y_true.is_empty() {
        return f64::NAN;
    }
    let hits = y_true.iter().zip(y_pred).filter(|(t, p)| t == p).count();
    hits as f64 / y_true.len() as f64
}

/// Confusion matrix `[n_classes, n_classes]`: entry `[t][p]` counts samples of true class
/// `t` predicted as `p` (rows = true, columns = predicted).
///
/// Pairs with a label `>= n_classes` are skipped; with different lengths only the common
/// prefix is counted.
pub fn confusion_matrix(y_true: &[usize], y_pred: &[usize], n_classes: usize) -> Vec<Vec<u64>> {
    let mut m = vec![vec![0u64; n_classes]; n_classes];
    for (&t, &p) in y_true.iter().zip(y_pred) {
        if let Some(cell) = m.get_mut(t).and_then(|row| row.get_mut(p)) {
            *cell += 1;
        }
    }
    m
}

/// Per-class F1 from a confusion matrix: `Some(2tp / (2tp + fp + fn))` for classes that
/// appear among the true or predicted labels, `None` for the others.
fn per_class_f1(confusion: &[Vec<u64>]) -> Vec<Option<f64>> {
    let n = confusion.len();
    (0..n)
        .map(|c| {
            let tp = confusion[c].get(c).copied().unwrap_or(0);
            let support: u64 = confusion[c].iter().sum();
            let predicted: u64 = confusion
                .iter()
                .map(|row| row.get(c).copied().unwrap_or(0))
                .sum();
            let (fneg, fpos) = (support - tp, predicted - tp);
            if support == 0 && predicted == 0 {
                None
            } else {
                Some(2.0 * tp as f64 / (2 * tp + fpos + fneg) as f64)
            }
        })
        .collect()
}

fn macro_from_confusion(confusion: &[Vec<u64>]) -> f64 {
    let f1: Vec<f64> = per_class_f1(confusion).into_iter().flatten().collect();
    if f1.is_empty() {
        return f64::NAN;
    }
    f1.iter().sum::<f64>() / f1.len() as f64
}

/// Mean per-class recall over the classes present in the true labels, from a confusion
/// matrix (rows = true); NaN when no row has support.
fn balanced_from_confusion(confusion: &[Vec<u64>]) -> f64 {
    let recalls: Vec<f64> = confusion
        .iter()
        .enumerate()
        .filter_map(|(c, row)| {
            let support: u64 = row.iter().sum();
            (support > 0).then(|| row.get(c).copied().unwrap_or(0) as f64 / support as f64)
        })
        .collect();
    if recalls.is_empty() {
        return f64::NAN;
    }
    recalls.iter().sum::<f64>() / recalls.len() as f64
}

/// Intersection over union per class from a confusion matrix (`conf[true][pred]`):
/// `tp / (tp + fp + fn)`, NaN for a class absent from both truth and prediction.
pub fn iou_per_class(conf: &[Vec<u64>]) -> Vec<f64> {
    let k = conf.len();
    (0..k)
        .map(|c| {
            let tp = conf[c][c] as f64;
            let fp: f64 = (0..k).filter(|&r| r != c).map(|r| conf[r][c] as f64).sum();
            let fn_: f64 = (0..k).filter(|&j| j != c).map(|j| conf[c][j] as f64).sum();
            if tp + fp + fn_ > 0.0 {
                tp / (tp + fp + fn_)
            } else {
                f64::NAN
            }
        })
        .collect()
}

/// Balanced accuracy: the unweighted mean over classes of recall `tp / (tp + fn)`, in
/// `[0, 1]`, as scikit-learn's `balanced_accuracy_score` (with `adjusted=False`).
///
/// Only classes present in `y_true` enter the mean: a class that is predicted but never
/// true has no recall (scikit-learn warns and drops it too). Equals [`accuracy`] when every
/// class has the same support. `y_true`, `y_pred`: `[n]`. NaN when the lengths differ,
/// `n == 0` or a label is `>= n_classes`.
pub fn balanced_accuracy(y_true: &[usize], y_pred: &[usize], n_classes: usize) -> f64 {
    if check_labels(y_true, y_pred, n_classes).is_err() {
        return f64::NAN;
    }
    balanced_from_confusion(&confusion_matrix(y_true, y_pred, n_classes))
}

/// Unweighted mean over classes of `F1 = 2·tp / (2·tp + fp + fn)`, in `[0, 1]`.
///
/// Classes absent from both `y_true` and `y_pred` are left out of the mean (as
/// scikit-learn does with its default `labels`); a class that is predicted but never true
/// (or the reverse) counts with F1 = 0. `y_true`, `y_pred`: `[n]`. NaN when the lengths
/// differ, `n == 0` or a label is `>= n_classes`.
pub fn macro_f1(y_true: &[usize], y_pred: &[usize], n_classes: usize) -> f64 {
    if check_labels(y_true, y_pred, n_classes).is_err() {
        return f64::NAN;
    }
    macro_from_confusion(&confusion_matrix(y_true, y_pred, n_classes))
}

/// Accuracy, macro-F1, balanced accuracy and confusion matrix of one evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassificationReport {
    /// Fraction correct, `[0, 1]`.
    pub accuracy: f64,
    /// Macro-F1 over the classes present (see [`macro_f1`]), `[0, 1]`.
    pub macro_f1: f64,
    /// Mean recall over the classes present in the true labels (see
    /// [`balanced_accuracy`]), `[0, 1]`. Reports saved before this field read as NaN.
    #[serde(default = "crate::nan", deserialize_with = "crate::f64_or_nan")]
    pub balanced_accuracy: f64,
    /// `[n_classes, n_classes]`, rows = true class, columns = predicted class.
    pub confusion: Vec<Vec<u64>>,
    /// Number of samples scored.
    pub n: usize,
}

/// Scores predictions `y_pred [n]` against `y_true [n]` for classes `0..n_classes`.
///
/// # Errors
/// Different lengths, `n == 0`, or a label `>= n_classes`.
pub fn classification_report(
    y_true: &[usize],
    y_pred: &[usize],
    n_classes: usize,
) -> Result<ClassificationReport, EvalError> {
    check_labels(y_true, y_pred, n_classes)?;
    let confusion = confusion_matrix(y_true, y_pred, n_classes);
    Ok(ClassificationReport {
        accuracy: accuracy(y_true, y_pred),
        macro_f1: macro_from_confusion(&confusion),
        balanced_accuracy: balanced_from_confusion(&confusion),
        confusion,
        n: y_true.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // y_true = [0, 0, 0, 1, 1, 2], y_pred = [0, 0, 1, 1, 2, 2], 4 classes (3 never seen).
    // Confusion: row 0 = [2, 1, 0, 0], row 1 = [0, 1, 1, 0], row 2 = [0, 0, 1, 0].
    // F1: class 0: 2·2/(4+0+1) = 0.8; class 1: 2/(2+1+1) = 0.5; class 2: 2/(2+1+0) = 2/3.
    // Macro over the 3 present classes = (0.8 + 0.5 + 2/3) / 3 = 0.655555...
    // (sklearn.metrics.f1_score(..., average="macro") gives 0.6555555555555556.)
    const T: [usize; 6] = [0, 0, 0, 1, 1, 2];
    const P: [usize; 6] = [0, 0, 1, 1, 2, 2];

    #[test]
    fn iou_per_class_counts_false_positives_and_negatives() {
        // truth 0: 2 right, 1 called 1; truth 1: 3 right; class 2 never seen.
        let conf = vec![vec![2, 1, 0], vec![0, 3, 0], vec![0, 0, 0]];
        let iou = iou_per_class(&conf);
        assert!((iou[0] - 2.0 / 3.0).abs() < 1e-12);
        assert!((iou[1] - 3.0 / 4.0).abs() < 1e-12);
        assert!(iou[2].is_nan());
    }

    #[test]
    fn hand_computed_values() {
        assert!((accuracy(&T, &P) - 4.0 / 6.0).abs() < 1e-15);
        let cm = confusion_matrix(&T, &P, 4);
        assert_eq!(
            cm,
            vec![
                vec![2, 1, 0, 0],
                vec![0, 1, 1, 0],
                vec![0, 0, 1, 0],
                vec![0; 4]
            ]
        );
        let f1 = macro_f1(&T, &P, 4);
        assert!((f1 - (0.8 + 0.5 + 2.0 / 3.0) / 3.0).abs() < 1e-15, "{f1}");
        let r = classification_report(&T, &P, 4).unwrap();
        assert_eq!((r.n, r.confusion.clone()), (6, cm));
        assert_eq!(r.accuracy, accuracy(&T, &P));
        assert_eq!(r.macro_f1, f1);
        // Recalls: class 0: 2/3, class 1: 1/2, class 2: 1/1 (class 3 has no support).
        let bal = (2.0 / 3.0 + 0.5 + 1.0) / 3.0;
        assert!((balanced_accuracy(&T, &P, 4) - bal).abs() < 1e-15);
        assert_eq!(r.balanced_accuracy, balanced_accuracy(&T, &P, 4));
    }

    #[test]
    fn balanced_accuracy_ignores_classes_only_predicted() {
        // Class 1 is predicted but never true: only class 0's recall (1/2) counts.
        assert_eq!(balanced_accuracy(&[0, 0], &[0, 1], 2), 0.5);
        // Imbalanced: always predicting the majority class scores 1/2, not 0.9.
        let y: Vec<usize> = (0..10).map(|i| usize::from(i == 0)).collect();
        assert_eq!(accuracy(&y, &[0; 10]), 0.9);
        assert_eq!(balanced_accuracy(&y, &[0; 10], 2), 0.5);
        assert!(balanced_accuracy(&[0], &[3], 2).is_nan());
        assert!(balanced_accuracy(&[], &[], 2).is_nan());
    }

    #[test]
    fn predicted_but_absent_class_counts_as_zero() {
        // Class 1 is never true but predicted once: F1(0) = 2·1/(2+0+1) = 2/3, F1(1) = 0.
        let f1 = macro_f1(&[0, 0], &[0, 1], 2);
        assert!((f1 - 1.0 / 3.0).abs() < 1e-15, "{f1}");
        assert_eq!(macro_f1(&[1, 2, 1], &[1, 2, 1], 5), 1.0);
    }

    #[test]
    fn invalid_input_gives_nan_or_errors() {
        assert!(accuracy(&[], &[]).is_nan());
        assert!(accuracy(&[0], &[0, 1]).is_nan());
        assert!(macro_f1(&[0, 5], &[0, 0], 3).is_nan());
        assert_eq!(
            confusion_matrix(&[0, 5], &[0, 0], 2),
            vec![vec![1, 0], vec![0, 0]]
        );
        assert!(matches!(
            classification_report(&[0, 1], &[0], 2),
            Err(EvalError::ShapeMismatch {
                expected: 2,
                got: 1,
                ..
            })
        ));
        assert!(matches!(
            classification_report(&[], &[], 2),
            Err(EvalError::EmptySplit { .. })
        ));
        assert!(matches!(
            classification_report(&[0, 1], &[0, 7], 2),
            Err(EvalError::UnknownLabel { label: 7, .. })
        ));
    }
}
