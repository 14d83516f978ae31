//! The shared frozen-feature protocol every domain's `probe` command runs: hold out a
//! stratified validation split from the training set to choose the linear probe's L2
//! strength, then report linear-probe and kNN results on the test set.

use crate::{
    classification_report, fit_linear_probe, knn_predict, stratified_split, ClassificationReport,
    EvalError, Features, KnnConfig, LinearProbeConfig,
};
use serde::{Deserialize, Serialize};

/// Protocol settings (saved with results).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeConfig {
    /// Fraction of the training split held out to choose the L2 strength.
    #[serde(default = "default_val")]
    pub val_fraction: f64,
    #[serde(default)]
    pub linear: LinearProbeConfig,
    #[serde(default)]
    pub knn: KnnConfig,
}

fn default_val() -> f64 {
    0.1
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self {
            val_fraction: default_val(),
            linear: LinearProbeConfig::default(),
            knn: KnnConfig::default(),
        }
    }
}

/// Results of one feature set under both protocols.
#[derive(Debug, Clone)]
pub struct ProbeResults {
    pub linear: ClassificationReport,
    pub linear_l2: f64,
    pub knn: ClassificationReport,
}

/// Runs the linear and kNN probes. `seed` drives the validation split.
pub fn run_probes(
    train: &Features,
    y_train: &[usize],
    test: &Features,
    y_test: &[usize],
    n_classes: usize,
    cfg: &ProbeConfig,
    seed: u64,
) -> Result<ProbeResults, EvalError> {
    let (tr, va) = stratified_split(y_train, cfg.val_fraction, seed);
    if tr.is_empty() || va.is_empty() {
        return Err(EvalError::EmptySplit {
            split: "train/validation".into(),
        });
    }
    let pick = |idx: &[usize]| idx.iter().map(|&i| y_train[i]).collect::<Vec<_>>();
    let probe = fit_linear_probe(
        &train.select(&tr)?,
        &pick(&tr),
        &train.select(&va)?,
        &pick(&va),
        n_classes,
        &cfg.linear,
    )?;
    let linear = classification_report(y_test, &probe.predict(test)?, n_classes)?;
    let knn = classification_report(
        y_test,
        &knn_predict(train, y_train, test, n_classes, &cfg.knn)?,
        n_classes,
    )?;
    Ok(ProbeResults {
        linear,
        linear_l2: probe.l2,
        knn,
    })
}
