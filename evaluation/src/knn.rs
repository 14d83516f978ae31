//! Weighted k-nearest-neighbour classifier of DINO (Caron et al. 2021, "Emerging
//! Properties in Self-Supervised Vision Transformers", arXiv:2104.14294, `eval_knn.py`).
//!
//! Features are L2-normalised; each test sample takes its `k` most cosine-similar training
//! samples, each voting for its label with weight `exp(sim / T)`; the prediction is the
//! class with the largest total vote (ties: the lower class index). DINO's defaults are
//! `k = 20`, `T = 0.07`.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::kernels::a_bt;
use crate::{check_label_vec, EvalError, Features};

/// Test rows per parallel block (similarities of a block: `[64, n_train]` `f64`).
const TEST_ROWS_PER_BLOCK: usize = 64;

/// Settings of [`knn_predict`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct KnnConfig {
    /// Neighbours per test sample (clamped to the number of training samples).
    pub k: usize,
    /// Temperature `T` of the vote weights `exp(sim / T)`; must be `> 0`.
    pub temperature: f64,
}

impl Default for KnnConfig {
    fn default() -> Self {
        Self {
            k: 20,
            temperature: 0.07,
        }
    }
}

/// Predicts a class per test row with DINO's weighted kNN.
///
/// # Shapes
/// - `train [n_train, d]`, `y_train [n_train]` (labels in `0..n_classes`),
///   `test [n_test, d]` → predictions `[n_test]`.
///
/// # Errors
/// Shape mismatches, an empty training split, labels `>= n_classes`, non-finite features,
/// `k == 0` or a temperature that is not finite and positive.
pub fn knn_predict(
    train: &Features,
    y_train: &[usize],
    test: &Features,
    n_classes: usize,
    cfg: &KnnConfig,
) -> Result<Vec<usize>, EvalError> {
    if cfg.k == 0 {
        return Err(EvalError::InvalidConfig {
            what: "knn k".into(),
            reason: "must be at least 1".into(),
        });
    }
    if !(cfg.temperature.is_finite() && cfg.temperature > 0.0) {
        return Err(EvalError::InvalidConfig {
            what: "knn temperature".into(),
            reason: format!("must be finite and > 0, got {}", cfg.temperature),
        });
    }
    train.check_finite("kNN train features")?;
    test.check_finite("kNN test features")?;
    if train.n == 0 {
        return Err(EvalError::EmptySplit {
            split: "kNN train".into(),
        });
    }
    if train.d == 0 {
        return Err(EvalError::ShapeMismatch {
            what: "kNN feature dimension d (must be at least 1)".into(),
            expected: 1,
            got: 0,
        });
    }
    if test.d != train.d {
        return Err(EvalError::ShapeMismatch {
            what: "kNN test feature dimension (must match train)".into(),
            expected: train.d,
            got: test.d,
        });
    }
    check_label_vec(y_train, train.n, n_classes, "kNN train")?;
    if test.n == 0 {
        return Ok(Vec::new());
    }
    let d = train.d;
    let k = cfg.k.min(train.n);
    let keys = l2_normalised(train);
    let queries = l2_normalised(test);
    let inv_t = 1.0 / cfg.temperature;
    let n_train = train.n;

    let blocks: Vec<Vec<usize>> = queries
        .par_chunks(TEST_ROWS_PER_BLOCK * d)
        .map(|qb| {
            let rows = qb.len() / d;
            let mut sims = vec![0.0; rows * n_train];
            a_bt(qb, rows, &keys, n_train, d, &mut sims);
            let mut order: Vec<usize> = Vec::with_capacity(n_train);
            let mut votes = vec![0.0f64; n_classes];
            sims.chunks_exact(n_train)
                .map(|s| {
                    // Most similar first; equal similarities: lower training index first.
                    let cmp = |a: &usize, b: &usize| s[*b].total_cmp(&s[*a]).then(a.cmp(b));
                    order.clear();
                    order.extend(0..n_train);
                    if k < n_train {
                        order.select_nth_unstable_by(k - 1, cmp);
                        order.truncate(k);
                    }
                    order.sort_unstable_by(cmp);
                    let top = s[order[0]];
                    votes.iter_mut().for_each(|v| *v = 0.0);
                    // exp((sim - top) / T): the argmax of exp(sim / T) without overflow.
                    for &j in order.iter() {
                        votes[y_train[j]] += ((s[j] - top) * inv_t).exp();
                    }
                    let mut best = 0;
                    for (c, v) in votes.iter().enumerate() {
                        if *v > votes[best] {
                            best = c;
                        }
                    }
                    best
                })
                .collect()
        })
        .collect();
    Ok(blocks.into_iter().flatten().collect())
}

/// Rows divided by their L2 norm (`max(norm, 1e-12)`, as `F.normalize`), as `f64`.
fn l2_normalised(x: &Features) -> Vec<f64> {
    let mut out: Vec<f64> = x.data.iter().map(|v| *v as f64).collect();
    for row in out.chunks_exact_mut(x.d.max(1)) {
        let norm = row.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
        row.iter_mut().for_each(|v| *v /= norm);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::blobs;

    fn acc(p: &[usize], y: &[usize]) -> f64 {
        p.iter().zip(y).filter(|(a, b)| a == b).count() as f64 / y.len() as f64
    }

    #[test]
    fn blobs_are_classified() {
        let (x, y) = blobs(40, 5, 12, 2.0, 1.0, 4);
        let tr: Vec<usize> = (0..150).collect();
        let te: Vec<usize> = (150..200).collect();
        let (xtr, xte) = (x.select(&tr).unwrap(), x.select(&te).unwrap());
        let ytr: Vec<usize> = tr.iter().map(|&i| y[i]).collect();
        let yte: Vec<usize> = te.iter().map(|&i| y[i]).collect();
        let pred = knn_predict(&xtr, &ytr, &xte, 5, &KnnConfig::default()).unwrap();
        assert_eq!(pred.len(), 50);
        let a = acc(&pred, &yte);
        assert!(a > 0.8, "accuracy {a}");
        // k larger than the training set is clamped; still deterministic.
        let cfg = KnnConfig {
            k: 1000,
            temperature: 0.07,
        };
        let p1 = knn_predict(&xtr, &ytr, &xte, 5, &cfg).unwrap();
        assert_eq!(p1, knn_predict(&xtr, &ytr, &xte, 5, &cfg).unwrap());
    }

    #[test]
    fn hand_checked_votes() {
        // Train: two close to +x labelled 0, one exactly +x labelled 1.
        let train = Features::new(vec![1.0, 0.1, 1.0, -0.1, 2.0, 0.0], 3, 2).unwrap();
        let y = [0, 0, 1];
        let test = Features::new(vec![5.0, 0.0], 1, 2).unwrap();
        // k = 1: the exact match (label 1) wins.
        let p = knn_predict(
            &train,
            &y,
            &test,
            2,
            &KnnConfig {
                k: 1,
                temperature: 0.07,
            },
        )
        .unwrap();
        assert_eq!(p, vec![1]);
        // k = 3, high temperature: two nearly equal votes for 0 beat one for 1.
        let p = knn_predict(
            &train,
            &y,
            &test,
            2,
            &KnnConfig {
                k: 3,
                temperature: 1.0,
            },
        )
        .unwrap();
        assert_eq!(p, vec![0]);
        // k = 3, tiny temperature: exp((sim - top) / T) makes the nearest dominate:
        // sim of the 0s is 1/sqrt(1.01) ≈ 0.995, weight exp(-0.005 / 1e-3) ≈ 0.007 each.
        let p = knn_predict(
            &train,
            &y,
            &test,
            2,
            &KnnConfig {
                k: 3,
                temperature: 1e-3,
            },
        )
        .unwrap();
        assert_eq!(p, vec![1]);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let train = Features::new(vec![1.0, 0.0], 1, 2).unwrap();
        let test = Features::new(vec![1.0, 0.0, 0.0], 1, 3).unwrap();
        let cfg = KnnConfig::default();
        assert!(matches!(
            knn_predict(&train, &[0], &test, 1, &cfg),
            Err(EvalError::ShapeMismatch { .. })
        ));
        assert!(matches!(
            knn_predict(&train, &[3], &train, 2, &cfg),
            Err(EvalError::UnknownLabel { label: 3, .. })
        ));
        let zero_k = KnnConfig {
            k: 0,
            ..cfg.clone()
        };
        assert!(knn_predict(&train, &[0], &train, 1, &zero_k).is_err());
        let bad_t = KnnConfig {
            temperature: 0.0,
            ..cfg.clone()
        };
        assert!(knn_predict(&train, &[0], &train, 1, &bad_t).is_err());
        let empty = Features::new(vec![], 0, 2).unwrap();
        assert!(matches!(
            knn_predict(&empty, &[], &train, 1, &cfg),
            Err(EvalError::EmptySplit { .. })
        ));
        assert_eq!(
            knn_predict(&train, &[0], &empty, 1, &cfg).unwrap(),
            Vec::<usize>::new()
        );
    }
}
