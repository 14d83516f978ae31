//! The shared frozen-feature protocol every domain's `probe` command runs: hold out a
//! stratified validation split from the training set to choose the linear probe's L2
//! strength, then report linear-probe and kNN results on the test set.
//!
//! The same [`ProbeConfig`] drives the other protocols: multi-label
//! ([`crate::run_multi_label_probe`]), few-shot ([`crate::run_few_shot`], settings in
//! [`ProbeConfig::few_shot`]) and regression ([`crate::run_regression_probe`], settings in
//! [`ProbeConfig::ridge`]).

use crate::{
    classification_report, fit_linear_probe, knn_predict, stratified_split, ClassificationReport,
    EvalError, Features, FewShotConfig, KnnConfig, LinearProbeConfig, RidgeConfig,
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
    /// Ridge probe of [`crate::run_regression_probe`].
    #[serde(default)]
    pub ridge: RidgeConfig,
    /// Shots per class and draws of [`crate::run_few_shot`].
    #[serde(default)]
    pub few_shot: FewShotConfig,
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
            ridge: RidgeConfig::default(),
            few_shot: FewShotConfig::default(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_round_trips_through_toml_and_old_cards_parse() {
        // Model cards store the probe settings as TOML; older cards lack the new sections.
        let old: ProbeConfig = toml::from_str("val_fraction = 0.2").unwrap();
        assert_eq!(old.val_fraction, 0.2);
        assert_eq!(old.few_shot, FewShotConfig::default());
        assert_eq!(old.ridge, RidgeConfig::default());
        let mut cfg = ProbeConfig::default();
        cfg.few_shot.k = 1;
        cfg.few_shot.l2 = Some(0.5);
        let text = toml::to_string(&cfg).unwrap();
        assert_eq!(toml::from_str::<ProbeConfig>(&text).unwrap(), cfg);
        let default_text = toml::to_string(&ProbeConfig::default()).unwrap();
        assert!(!default_text.contains("l2 ="), "{default_text}");
        assert_eq!(
            toml::from_str::<ProbeConfig>(&default_text).unwrap(),
            ProbeConfig::default()
        );
    }
}
