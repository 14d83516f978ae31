//! Few-shot protocol: `k` labelled training samples per class, drawn again for each of
//! `draws` seeded draws; the linear probe and kNN run on each draw and are scored on the
//! whole test set; results are reported per draw and as mean ± sample sd over draws.
//!
//! Randomness follows the crate's one seeded RNG ([`tessera_tokens::Rng`]): draw `j` takes
//! its own stream `Rng::new(seed).fork("few-shot-draw-j")`, so adding draws never changes
//! earlier ones. Within a draw, each class's training indices are shuffled (classes in
//! increasing order, one stream) and the first `min(k, available)` kept: a class with fewer
//! than `k` samples contributes all of them and is listed in
//! [`FewShotResults::short_classes`].
//!
//! The linear probe's L2 strength: a fixed [`FewShotConfig::l2`] if set; otherwise chosen
//! on a stratified validation split of the draw itself (`ProbeConfig::val_fraction` per
//! class, rounded, at least one sample per class kept for training) as in
//! [`crate::fit_linear_probe`]; when that split is empty (e.g. `k = 1`), the strongest
//! `λ` of `linear.l2_grid` is used on the whole draw (strong regularisation is the safe
//! choice with few samples). [`FewShotTrial::l2_on_validation`] says which happened.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tessera_tokens::Rng;

use crate::{
    check_label_vec, classification_report, fit_linear_probe, fit_linear_probe_with_l2,
    knn_predict, stratified_split, ClassificationReport, EvalError, Features, MeanStd, ProbeConfig,
    ResultRow,
};

/// Settings of [`run_few_shot`] (part of [`ProbeConfig`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FewShotConfig {
    /// Labelled training samples per class (`>= 1`).
    pub k: usize,
    /// Number of seeded draws (`>= 1`).
    pub draws: usize,
    /// A fixed L2 strength for the linear probe; `None` chooses it per draw (see the
    /// module documentation).
    pub l2: Option<f64>,
}

impl Default for FewShotConfig {
    fn default() -> Self {
        Self {
            k: 5,
            draws: 10,
            l2: None,
        }
    }
}

/// A class with fewer than `k` training samples: all `available` of them were used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShortClass {
    /// Class index.
    pub class: usize,
    /// Training samples of that class (`< k`; may be 0).
    pub available: usize,
}

/// The training samples of one few-shot draw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FewShotDraw {
    /// Indices into the training set, sorted.
    pub indices: Vec<usize>,
    /// Classes with fewer than `k` samples, in class order.
    pub short_classes: Vec<ShortClass>,
}

/// Draws `min(k, available)` training indices per class `0..n_classes` with
/// `Rng::new(seed)`: each class's indices (in increasing class order) are shuffled with
/// that one stream and the first ones kept. The same labels, `k` and seed always give the
/// same draw.
///
/// # Errors
/// `k == 0` or a label `>= n_classes`.
pub fn few_shot_indices(
    y: &[usize],
    n_classes: usize,
    k: usize,
    seed: u64,
) -> Result<FewShotDraw, EvalError> {
    if k == 0 {
        return Err(EvalError::InvalidConfig {
            what: "few-shot k".into(),
            reason: "must be at least 1".into(),
        });
    }
    check_label_vec(y, y.len(), n_classes, "few-shot train")?;
    let mut by_class: BTreeMap<usize, Vec<usize>> = (0..n_classes).map(|c| (c, vec![])).collect();
    for (i, &label) in y.iter().enumerate() {
        by_class.entry(label).or_default().push(i);
    }
    let mut rng = Rng::new(seed);
    let mut indices = Vec::with_capacity(k * n_classes);
    let mut short_classes = Vec::new();
    for (&class, idx) in by_class.iter_mut() {
        rng.shuffle(idx);
        if idx.len() < k {
            short_classes.push(ShortClass {
                class,
                available: idx.len(),
            });
        }
        indices.extend_from_slice(&idx[..k.min(idx.len())]);
    }
    indices.sort_unstable();
    Ok(FewShotDraw {
        indices,
        short_classes,
    })
}

/// The results of one draw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FewShotTrial {
    /// Draw number, `0..draws`.
    pub draw: usize,
    /// Seed of the draw's sample (see [`few_shot_indices`]).
    pub seed: u64,
    /// Training samples in the draw.
    pub n_train: usize,
    /// Linear probe on the test set.
    pub linear: ClassificationReport,
    /// L2 strength of the linear probe.
    pub linear_l2: f64,
    /// Whether `linear_l2` was chosen on a validation split of the draw (false: fixed or
    /// the fallback, see the module documentation).
    pub l2_on_validation: bool,
    /// kNN on the test set.
    pub knn: ClassificationReport,
}

/// Mean ± sample sd over draws of the three classification metrics.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FewShotSummary {
    /// Accuracy over draws.
    pub accuracy: MeanStd,
    /// Macro-F1 over draws.
    pub macro_f1: MeanStd,
    /// Balanced accuracy over draws.
    pub balanced_accuracy: MeanStd,
}

impl FewShotSummary {
    fn of<'a>(reports: impl Iterator<Item = &'a ClassificationReport> + Clone) -> Self {
        let collect = |f: fn(&ClassificationReport) -> f64| {
            MeanStd::of(&reports.clone().map(f).collect::<Vec<_>>())
        };
        Self {
            accuracy: collect(|r| r.accuracy),
            macro_f1: collect(|r| r.macro_f1),
            balanced_accuracy: collect(|r| r.balanced_accuracy),
        }
    }
}

/// Outcome of [`run_few_shot`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FewShotResults {
    /// Shots per class asked for.
    pub k: usize,
    /// Root seed of the draws.
    pub seed: u64,
    /// Classes with fewer than `k` training samples (all of them were used in every draw).
    pub short_classes: Vec<ShortClass>,
    /// One entry per draw.
    pub trials: Vec<FewShotTrial>,
    /// Linear probe over draws.
    pub linear: FewShotSummary,
    /// kNN over draws.
    pub knn: FewShotSummary,
}

impl FewShotResults {
    /// Results-table rows, two per draw: protocols `linear-{k}shot` and `knn-{k}shot`, the
    /// draw number as the seed, so [`crate::summarise`] gives the mean ± sd over draws.
    pub fn rows(&self, run: &str, task: &str, features: &str) -> Vec<ResultRow> {
        let mut rows = Vec::with_capacity(2 * self.trials.len());
        for t in &self.trials {
            for (protocol, r) in [("linear", &t.linear), ("knn", &t.knn)] {
                rows.push(ResultRow {
                    run: run.into(),
                    task: task.into(),
                    protocol: format!("{protocol}-{}shot", self.k),
                    features: features.into(),
                    seed: t.draw as u64,
                    accuracy: r.accuracy,
                    macro_f1: r.macro_f1,
                    n_test: r.n,
                    balanced_accuracy: r.balanced_accuracy,
                    ..ResultRow::default()
                });
            }
        }
        rows
    }
}

/// Runs the few-shot protocol with `cfg.few_shot` (`k`, `draws`, `l2`), `cfg.linear`,
/// `cfg.knn` and `cfg.val_fraction`; `seed` is the root of the draws.
///
/// # Shapes
/// - `train [n_train, d]`, `y_train [n_train]`, `test [n_test, d]`, `y_test [n_test]`,
///   labels in `0..n_classes`.
///
/// # Errors
/// `k == 0`, `draws == 0`, an invalid L2 setting, and the errors of the probes and
/// metrics (shape mismatches, empty splits, unknown labels, non-finite features).
pub fn run_few_shot(
    train: &Features,
    y_train: &[usize],
    test: &Features,
    y_test: &[usize],
    n_classes: usize,
    cfg: &ProbeConfig,
    seed: u64,
) -> Result<FewShotResults, EvalError> {
    let fs = &cfg.few_shot;
    if fs.draws == 0 {
        return Err(EvalError::InvalidConfig {
            what: "few-shot draws".into(),
            reason: "must be at least 1".into(),
        });
    }
    train.check("few-shot train features")?;
    check_label_vec(y_train, train.n, n_classes, "few-shot train")?;
    // Strongest λ of the grid: the fallback when a draw has no validation split.
    let fallback_l2 = match fs.l2 {
        Some(l2) => l2,
        None => cfg.linear.validate()?[0],
    };
    let root = Rng::new(seed);
    let mut trials = Vec::with_capacity(fs.draws);
    let mut short_classes = Vec::new();
    for draw in 0..fs.draws {
        let mut rng = root.fork(&format!("few-shot-draw-{draw}"));
        let draw_seed = rng.next_u64();
        let split_seed = rng.next_u64();
        let sample = few_shot_indices(y_train, n_classes, fs.k, draw_seed)?;
        short_classes = sample.short_classes;
        let x = train.select(&sample.indices)?;
        let y: Vec<usize> = sample.indices.iter().map(|&i| y_train[i]).collect();
        let (tr, va) = if fs.l2.is_none() {
            stratified_split(&y, cfg.val_fraction, split_seed)
        } else {
            (Vec::new(), Vec::new())
        };
        let (probe, l2_on_validation) = if !va.is_empty() {
            let pick = |idx: &[usize]| idx.iter().map(|&i| y[i]).collect::<Vec<_>>();
            let probe = fit_linear_probe(
                &x.select(&tr)?,
                &pick(&tr),
                &x.select(&va)?,
                &pick(&va),
                n_classes,
                &cfg.linear,
            )?;
            (probe, true)
        } else {
            let probe = fit_linear_probe_with_l2(&x, &y, n_classes, fallback_l2, &cfg.linear)?;
            (probe, false)
        };
        let linear = classification_report(y_test, &probe.predict(test)?, n_classes)?;
        let knn = classification_report(
            y_test,
            &knn_predict(&x, &y, test, n_classes, &cfg.knn)?,
            n_classes,
        )?;
        trials.push(FewShotTrial {
            draw,
            seed: draw_seed,
            n_train: sample.indices.len(),
            linear,
            linear_l2: probe.l2,
            l2_on_validation,
            knn,
        });
    }
    Ok(FewShotResults {
        k: fs.k,
        seed,
        short_classes,
        linear: FewShotSummary::of(trials.iter().map(|t| &t.linear)),
        knn: FewShotSummary::of(trials.iter().map(|t| &t.knn)),
        trials,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::blobs;
    use crate::FewShotConfig;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn draws_take_min_k_per_class(
            y in prop::collection::vec(0usize..5, 0..60),
            k in 1usize..6,
            seed in any::<u64>(),
        ) {
            let d = few_shot_indices(&y, 6, k, seed).unwrap();
            prop_assert_eq!(&d, &few_shot_indices(&y, 6, k, seed).unwrap());
            prop_assert!(d.indices.windows(2).all(|w| w[0] < w[1]));
            for c in 0..6 {
                let available = y.iter().filter(|&&l| l == c).count();
                let taken = d.indices.iter().filter(|&&i| y[i] == c).count();
                prop_assert_eq!(taken, k.min(available));
                let short = d.short_classes.iter().find(|s| s.class == c);
                prop_assert_eq!(short.is_some(), available < k);
                if let Some(s) = short {
                    prop_assert_eq!(s.available, available);
                }
            }
        }
    }

    #[test]
    fn draws_differ_by_seed_and_reject_bad_input() {
        let y: Vec<usize> = (0..100).map(|i| i % 4).collect();
        let a = few_shot_indices(&y, 4, 3, 1).unwrap();
        let b = few_shot_indices(&y, 4, 3, 2).unwrap();
        assert_eq!(a.indices.len(), 12);
        assert_ne!(a.indices, b.indices);
        assert!(few_shot_indices(&y, 4, 0, 1).is_err());
        assert!(matches!(
            few_shot_indices(&y, 3, 1, 1),
            Err(EvalError::UnknownLabel { label: 3, .. })
        ));
    }

    fn data() -> (Features, Vec<usize>, Features, Vec<usize>) {
        let (x, y) = blobs(40, 4, 8, 4.0, 1.0, 3);
        let tr: Vec<usize> = (0..120).collect();
        let te: Vec<usize> = (120..160).collect();
        // Class 3 keeps only two training samples.
        let tr: Vec<usize> = tr
            .into_iter()
            .filter(|&i| y[i] != 3 || y[..=i].iter().filter(|&&l| l == 3).count() <= 2)
            .collect();
        let pick = |idx: &[usize]| idx.iter().map(|&i| y[i]).collect::<Vec<_>>();
        (
            x.select(&tr).unwrap(),
            pick(&tr),
            x.select(&te).unwrap(),
            pick(&te),
        )
    }

    #[test]
    fn few_shot_runs_and_summarises() {
        let (x, y, xt, yt) = data();
        let cfg = ProbeConfig {
            few_shot: FewShotConfig {
                k: 5,
                draws: 4,
                l2: None,
            },
            ..ProbeConfig::default()
        };
        let r = run_few_shot(&x, &y, &xt, &yt, 4, &cfg, 7).unwrap();
        assert_eq!(r.trials.len(), 4);
        assert_eq!(
            r.short_classes,
            vec![ShortClass {
                class: 3,
                available: 2
            }]
        );
        assert!(r.trials.iter().all(|t| t.n_train == 5 * 3 + 2));
        // Well-separated blobs: few shots are enough, far above chance (1/4).
        assert!(r.linear.accuracy.mean > 0.8, "{:?}", r.linear);
        assert!(r.knn.accuracy.mean > 0.8, "{:?}", r.knn);
        assert_eq!(r.linear.accuracy.n, 4);
        assert!(r.linear.accuracy.std.is_some());
        // k = 5 with val_fraction 0.1 holds out one sample of each full class.
        assert!(r.trials.iter().all(|t| t.l2_on_validation));
        let mean = r.trials.iter().map(|t| t.linear.accuracy).sum::<f64>() / 4.0;
        assert!((r.linear.accuracy.mean - mean).abs() < 1e-12);
        assert_ne!(r.trials[0].seed, r.trials[1].seed);
        // Deterministic, and adding draws keeps the earlier ones.
        assert_eq!(r, run_few_shot(&x, &y, &xt, &yt, 4, &cfg, 7).unwrap());
        let more = ProbeConfig {
            few_shot: FewShotConfig {
                draws: 5,
                ..cfg.few_shot.clone()
            },
            ..cfg.clone()
        };
        let r5 = run_few_shot(&x, &y, &xt, &yt, 4, &more, 7).unwrap();
        assert_eq!(r5.trials[..4], r.trials[..]);
        let rows = r.rows("run", "task", "cls");
        assert_eq!(rows.len(), 8);
        let s = crate::summarise(&rows);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].protocol, "linear-5shot");
        assert!((s[0].accuracy_mean - r.linear.accuracy.mean).abs() < 1e-12);
        assert_eq!(s[1].balanced_accuracy_std, r.knn.balanced_accuracy.std);
    }

    #[test]
    fn one_shot_uses_the_fallback_or_fixed_l2() {
        let (x, y, xt, yt) = data();
        let mut cfg = ProbeConfig::default();
        cfg.few_shot.k = 1;
        cfg.few_shot.draws = 2;
        let r = run_few_shot(&x, &y, &xt, &yt, 4, &cfg, 0).unwrap();
        assert!(r
            .trials
            .iter()
            .all(|t| !t.l2_on_validation && t.linear_l2 == 1.0));
        assert!(r.trials.iter().all(|t| t.n_train == 4));
        assert!(r.short_classes.is_empty());
        cfg.few_shot.l2 = Some(0.01);
        let r = run_few_shot(&x, &y, &xt, &yt, 4, &cfg, 0).unwrap();
        assert!(r.trials.iter().all(|t| t.linear_l2 == 0.01));
        cfg.few_shot.l2 = Some(-1.0);
        assert!(run_few_shot(&x, &y, &xt, &yt, 4, &cfg, 0).is_err());
        cfg.few_shot.l2 = None;
        cfg.few_shot.draws = 0;
        assert!(matches!(
            run_few_shot(&x, &y, &xt, &yt, 4, &cfg, 0),
            Err(EvalError::InvalidConfig { .. })
        ));
    }
}
