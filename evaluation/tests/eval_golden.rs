//! Balanced accuracy, macro-F1, mean average precision (micro/macro), AUROC with ties, R²,
//! MAE, the ridge probe and both logistic probes against scikit-learn (golden values made by
//! `scripts/golden_eval.py`).

use serde::Deserialize;
use tessera_eval::{
    accuracy, average_precision, balanced_accuracy, classification_report,
    fit_linear_probe_with_l2, fit_multi_label_probe_with_l2, fit_ridge_with_l2, macro_f1,
    mean_absolute_error, multi_label_report, r2_score, regression_report, roc_auc, Features,
    LabelMatrix, LinearProbeConfig,
};

#[derive(Deserialize)]
struct Golden {
    reference: String,
    classification: Vec<Classification>,
    ranking: Vec<Ranking>,
    regression: Vec<Regression>,
    ridge: Vec<RidgeCase>,
    logistic_multinomial: Logistic,
    logistic_one_vs_rest: Logistic,
}

#[derive(Deserialize)]
struct Classification {
    name: String,
    n_classes: usize,
    y_true: Vec<usize>,
    y_pred: Vec<usize>,
    accuracy: f64,
    macro_f1: f64,
    balanced_accuracy: f64,
}

#[derive(Deserialize)]
struct Ranking {
    name: String,
    n: usize,
    n_classes: usize,
    y: Vec<u8>,
    scores: Vec<f64>,
    ap_per_class: Vec<Option<f64>>,
    auroc_per_class: Vec<Option<f64>>,
    map_micro: f64,
    map_macro: f64,
    auroc_macro: Option<f64>,
    sklearn_map_macro: Option<f64>,
    sklearn_auroc_macro: Option<f64>,
}

#[derive(Deserialize)]
struct Regression {
    name: String,
    y_true: Vec<f64>,
    y_pred: Vec<f64>,
    r2: f64,
    mae: f64,
}

#[derive(Deserialize)]
struct RidgeCase {
    name: String,
    n: usize,
    d: usize,
    l2: f64,
    x: Vec<f64>,
    y: Vec<f64>,
    x_test: Vec<f64>,
    coef: Vec<f64>,
    intercept: f64,
    pred_test: Vec<f64>,
}

#[derive(Deserialize)]
struct Logistic {
    n: usize,
    d: usize,
    n_classes: usize,
    l2: f64,
    x: Vec<f64>,
    y: Vec<usize>,
    x_test: Vec<f64>,
    proba_test: Vec<f64>,
}

fn golden() -> Golden {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/eval.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The stored values are float32 numbers written as f64: converting back is exact.
fn features(x: &[f64], n: usize, d: usize) -> Features {
    Features::new(x.iter().map(|&v| v as f32).collect(), n, d).unwrap()
}

fn close(a: f64, b: f64, tol: f64, what: &str) {
    assert!((a - b).abs() <= tol, "{what}: {a} vs scikit-learn {b}");
}

#[test]
fn classification_matches_sklearn() {
    let g = golden();
    assert!(g.reference.starts_with("scikit-learn"));
    assert_eq!(g.classification.len(), 3);
    for c in &g.classification {
        let (t, p, k) = (&c.y_true, &c.y_pred, c.n_classes);
        close(
            balanced_accuracy(t, p, k),
            c.balanced_accuracy,
            1e-12,
            &c.name,
        );
        close(macro_f1(t, p, k), c.macro_f1, 1e-12, &c.name);
        close(accuracy(t, p), c.accuracy, 1e-12, &c.name);
        let r = classification_report(t, p, k).unwrap();
        close(r.balanced_accuracy, c.balanced_accuracy, 1e-12, &c.name);
    }
}

#[test]
fn ranking_metrics_match_sklearn() {
    let g = golden();
    assert_eq!(g.ranking.len(), 3);
    let mut with_ties = 0;
    for c in &g.ranking {
        let y = LabelMatrix::new(c.y.iter().map(|&v| v != 0).collect(), c.n, c.n_classes).unwrap();
        let r = multi_label_report(&y, &c.scores).unwrap();
        for k in 0..c.n_classes {
            let what = format!("{} class {k}", c.name);
            let s: Vec<f64> = c
                .scores
                .iter()
                .skip(k)
                .step_by(c.n_classes)
                .copied()
                .collect();
            match c.ap_per_class[k] {
                Some(ap) => {
                    close(r.ap_per_class[k].unwrap(), ap, 1e-12, &format!("{what} AP"));
                    close(average_precision(&y.column(k), &s), ap, 1e-12, &what);
                }
                None => assert!(r.ap_per_class[k].is_none(), "{what}"),
            }
            match c.auroc_per_class[k] {
                Some(auc) => {
                    close(
                        r.auroc_per_class[k].unwrap(),
                        auc,
                        1e-12,
                        &format!("{what} AUROC"),
                    );
                    close(roc_auc(&y.column(k), &s), auc, 1e-12, &what);
                }
                None => assert!(r.auroc_per_class[k].is_none(), "{what}"),
            }
            let mut sorted = s.clone();
            sorted.sort_by(f64::total_cmp);
            sorted.dedup();
            with_ties += usize::from(sorted.len() < s.len());
        }
        close(
            r.map_micro,
            c.map_micro,
            1e-12,
            &format!("{} micro mAP", c.name),
        );
        close(
            r.map_macro,
            c.map_macro,
            1e-12,
            &format!("{} macro mAP", c.name),
        );
        match (r.auroc_macro, c.auroc_macro) {
            (Some(a), Some(b)) => close(a, b, 1e-12, &format!("{} macro AUROC", c.name)),
            (a, b) => assert_eq!(a, b, "{}", c.name),
        }
        if let (Some(m), Some(a)) = (c.sklearn_map_macro, c.sklearn_auroc_macro) {
            close(
                r.map_macro,
                m,
                1e-12,
                &format!("{} sklearn macro mAP", c.name),
            );
            close(
                r.auroc_macro.unwrap(),
                a,
                1e-12,
                &format!("{} sklearn macro AUROC", c.name),
            );
        }
    }
    // The cases do exercise tied scores.
    assert!(with_ties >= 5, "{with_ties}");
}

#[test]
fn regression_metrics_match_sklearn() {
    let g = golden();
    assert_eq!(g.regression.len(), 4);
    for c in &g.regression {
        close(r2_score(&c.y_true, &c.y_pred), c.r2, 1e-12, &c.name);
        close(
            mean_absolute_error(&c.y_true, &c.y_pred),
            c.mae,
            1e-12,
            &c.name,
        );
        let r = regression_report(&c.y_true, &c.y_pred).unwrap();
        assert_eq!(
            (r.r2, r.mae),
            (
                r2_score(&c.y_true, &c.y_pred),
                mean_absolute_error(&c.y_true, &c.y_pred)
            )
        );
    }
}

#[test]
fn ridge_matches_sklearn() {
    let g = golden();
    assert_eq!(g.ridge.len(), 2);
    for c in &g.ridge {
        let x = features(&c.x, c.n, c.d);
        let probe = fit_ridge_with_l2(&x, &c.y, c.l2).unwrap();
        for (k, (a, b)) in probe.weights().iter().zip(&c.coef).enumerate() {
            close(
                *a,
                *b,
                1e-9 * (1.0 + b.abs()),
                &format!("{} coef {k}", c.name),
            );
        }
        close(
            probe.bias(),
            c.intercept,
            1e-9,
            &format!("{} intercept", c.name),
        );
        let pred = probe
            .predict(&features(&c.x_test, c.x_test.len() / c.d, c.d))
            .unwrap();
        for (a, b) in pred.iter().zip(&c.pred_test) {
            close(
                *a,
                *b,
                1e-8 * (1.0 + b.abs()),
                &format!("{} prediction", c.name),
            );
        }
    }
}

fn tight() -> LinearProbeConfig {
    LinearProbeConfig {
        max_iter: 5000,
        tol: 1e-10,
        ..LinearProbeConfig::default()
    }
}

#[test]
fn multinomial_probe_matches_sklearn() {
    let c = golden().logistic_multinomial;
    let x = features(&c.x, c.n, c.d);
    let probe = fit_linear_probe_with_l2(&x, &c.y, c.n_classes, c.l2, &tight()).unwrap();
    assert!(probe.converged);
    let proba = probe
        .predict_proba(&features(&c.x_test, c.x_test.len() / c.d, c.d))
        .unwrap();
    assert_eq!(proba.len(), c.proba_test.len());
    for (i, (a, b)) in proba.iter().zip(&c.proba_test).enumerate() {
        close(*a, *b, 1e-6, &format!("multinomial probability {i}"));
    }
}

#[test]
fn one_vs_rest_probe_matches_sklearn() {
    let c = golden().logistic_one_vs_rest;
    let x = features(&c.x, c.n, c.d);
    let y = LabelMatrix::new(c.y.iter().map(|&v| v != 0).collect(), c.n, c.n_classes).unwrap();
    let probe = fit_multi_label_probe_with_l2(&x, &y, c.l2, &tight()).unwrap();
    assert!(probe.converged);
    let proba = probe
        .predict_proba(&features(&c.x_test, c.x_test.len() / c.d, c.d))
        .unwrap();
    assert_eq!(proba.len(), c.proba_test.len());
    for (i, (a, b)) in proba.iter().zip(&c.proba_test).enumerate() {
        close(*a, *b, 1e-6, &format!("one-vs-rest probability {i}"));
    }
}
