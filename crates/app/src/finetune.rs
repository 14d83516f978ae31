//! `finetune`: supervised fine-tuning of a pretrained (or randomly initialised) encoder
//! with a linear classifier on its pooled features, for any modality. The classifier is a
//! [`Recipe`] over batches that carry class targets, so the shared trainer runs it
//! (AdamW, warm-up + cosine, layer-wise learning-rate decay of the encoder, atomic
//! checkpoints); training views are the modality's random views, test rows are scored on
//! the evaluation view. `--shots K` fine-tunes on K labelled samples per class (a seeded
//! draw), as few-label benchmarks ask.

use crate::commands::{
    class_index, classes_of, encoder_for, read_config, require_labels, save_rows,
};
use crate::source::{list, Source};
use crate::App;
use anyhow::{bail, Context, Result};
use candle_core::Tensor;
use serde::{Deserialize, Serialize};
use tessera_cli::CommonArgs;
use tessera_core::layers::{LayerNorm, Linear};
use tessera_core::params::{Decay, Init};
use tessera_core::{no_grad, CoreError, Encoder, ParamStore, TokenTensors};
use tessera_eval::ResultRow;
use tessera_recipes::heads::Pool;
use tessera_recipes::losses::cross_entropy;
use tessera_recipes::{Batch, Recipe, StepContext, StepOutput, Targets, ENCODER_PREFIX};
use tessera_tokens::{Modality, Rng, Tokens};
use tessera_train::{RunOptions, TrainConfig};

fn point_seven_five() -> f64 {
    0.75
}
fn point_one() -> f64 {
    0.1
}
fn default_train() -> TrainConfig {
    toml::from_str(
        "steps = 500\nbatch_size = 32\nlr = 5e-4\nmin_lr = 1e-6\nwarmup_steps = 50\nweight_decay = 0.05\ncheckpoint_every = 1000\nlog_every = 10",
    )
    .expect("default [finetune.train]")
}

/// Hyperparameters of `finetune` (the `[finetune]` table of a card or `--config`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinetuneConfig {
    /// Features the classifier reads: `mean` (patch tokens) or `cls`.
    #[serde(default = "mean_pool")]
    pub pool: Pool,
    /// Layer-wise learning-rate decay (1 = none; MAE fine-tunes with 0.65-0.75).
    #[serde(default = "point_seven_five")]
    pub layer_decay: f64,
    #[serde(default = "point_one")]
    pub label_smoothing: f64,
    /// Train the classifier only (a linear probe trained by SGD on random views).
    #[serde(default)]
    pub freeze_encoder: bool,
    /// How the classifier starts: `probe` (LP-FT, Kumar et al. 2022: a linear probe fitted
    /// by L-BFGS on the frozen features of the training rows, so fine-tuning starts where
    /// the probe ends instead of sending a random head's gradients into the pretrained
    /// features) or `random` (Xavier-uniform weights, zero bias).
    #[serde(default)]
    pub head_init: HeadInit,
    /// Views per training row the `probe` head is fitted on: 0 (default) the evaluation
    /// view, N > 0 that many random training views (what fine-tuning trains on; on
    /// ModelNet10 it fine-tuned worse, BENCHMARKS.md).
    #[serde(default)]
    pub probe_views: usize,
    /// How the pooled (or per-token) features are normalised before the classifier.
    #[serde(default)]
    pub feature_norm: FeatureNorm,
    /// Weight of each step's batch statistics in the running ones (`feature_norm =
    /// "batch"`).
    #[serde(default = "point_one")]
    pub norm_momentum: f64,
    #[serde(default = "default_train")]
    pub train: TrainConfig,
}

/// The classifier's starting point (`[finetune] head_init`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HeadInit {
    #[default]
    Probe,
    Random,
}

/// The classifier's feature normalisation (`[finetune] feature_norm`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FeatureNorm {
    /// A layer norm with a learned scale and shift (MAE's `fc_norm`).
    #[default]
    Layer,
    /// Every feature standardised by the statistics of the batch's rows while training and
    /// by their running averages at test (batch norm without scale and shift, as MAE's
    /// linear probe): a shift or rescaling that fine-tuning gives every sample's features
    /// alike does not move the logits.
    Batch,
}

/// The feature normaliser in front of the head.
enum Norm {
    Layer(LayerNorm),
    /// Running mean and variance `[D]` (non-trainable parameters, kept in checkpoints).
    Batch {
        mean: Tensor,
        var: Tensor,
    },
}

const BN_EPS: f64 = 1e-5;
const BN_MEAN: &str = "finetune.bn.running_mean";
const BN_VAR: &str = "finetune.bn.running_var";
/// The step output's state entry holding the feature rows of the batch statistics.
const FEATURES: &str = "features";

/// Which statistics standardise the features (`feature_norm = "batch"`).
#[derive(Clone, Copy)]
enum Stats<'a> {
    /// The running averages (test).
    Running,
    /// The batch's own (training): of every row, or of the rows at these indices `[R]`
    /// into the flattened rows (real tokens).
    Batch(Option<&'a Tensor>),
}

/// Per-feature mean and (population) variance `[D]` of the rows of `x [R, D]`.
fn row_moments(x: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
    let mean = x.mean(0)?;
    let var = x.broadcast_sub(&mean)?.sqr()?.mean(0)?;
    Ok((mean, var))
}

/// `x [.., D]` standardised per feature: `(x − mean) / sqrt(var + ε)`.
fn standardise(x: &Tensor, mean: &Tensor, var: &Tensor) -> candle_core::Result<Tensor> {
    x.broadcast_sub(mean)?
        .broadcast_div(&(var + BN_EPS)?.sqrt()?)
}

/// The temperature `τ` (from 1/64 to 4, on a log grid) whose scaled `logits [n, c]`
/// minimise the mean cross-entropy against targets smoothed by `eps` (as the fine-tuning
/// loss), 1 when no scaling helps.
fn smoothed_temperature(logits: &[f64], y: &[usize], c: usize, eps: f64) -> f64 {
    let loss = |tau: f64| -> f64 {
        let mut total = 0.0;
        for (row, &k) in logits.chunks(c).zip(y) {
            let m = row.iter().fold(f64::NEG_INFINITY, |a, &v| a.max(tau * v));
            let lse = m + row.iter().map(|&v| (tau * v - m).exp()).sum::<f64>().ln();
            for (j, &v) in row.iter().enumerate() {
                let t = eps / c as f64 + if j == k { 1.0 - eps } else { 0.0 };
                total -= t * (tau * v - lse);
            }
        }
        total / y.len().max(1) as f64
    };
    (0..=48)
        .map(|i| 2f64.powf(-6.0 + i as f64 / 6.0))
        .map(|tau| (tau, loss(tau)))
        .fold(
            (1.0, loss(1.0)),
            |best, t| if t.1 < best.1 { t } else { best },
        )
        .0
}

/// The views of each `(index, item)` a probe head is fitted on: its evaluation view
/// (`per_row` 0) or `per_row` random training views, each row's draws seeded by the run's
/// seed and the row's index; unreadable rows are left out (an error with `strict`).
fn probe_views<M: Modality>(
    m: &M,
    rows: &[(usize, tessera_cli::DataItem)],
    per_row: usize,
    seed: u64,
    strict: bool,
) -> Result<Vec<(usize, tessera_tokens::SampleTokens)>> {
    use rayon::prelude::*;
    let bar = tessera_cli::progress(rows.len() as u64, "probe views");
    let made: Vec<std::result::Result<Vec<_>, M::Error>> = rows
        .par_iter()
        .map(|(i, it)| {
            let mut rng = Rng::new(seed).fork(&format!("finetune-probe-view-{i}"));
            let r = crate::source::decode(m, &it.path).and_then(|s| {
                if per_row == 0 {
                    return Ok(vec![(*i, m.eval_view(&s)?)]);
                }
                (0..per_row)
                    .map(|_| m.train_view(&s, &mut rng).map(|v| (*i, v)))
                    .collect()
            });
            bar.inc(1);
            r
        })
        .collect();
    bar.finish_and_clear();
    let mut out = Vec::new();
    for r in made {
        match r {
            Ok(v) => out.extend(v),
            Err(e) if strict => return Err(anyhow::Error::new(e)),
            Err(_) => {}
        }
    }
    Ok(out)
}

fn mean_pool() -> Pool {
    Pool::Mean
}

impl Default for FinetuneConfig {
    fn default() -> Self {
        toml::from_str("").expect("defaults")
    }
}

/// Encoder + feature normalisation + linear classifier.
pub struct Classifier {
    encoder: Encoder,
    norm: Norm,
    head: Linear,
    cfg: FinetuneConfig,
    classes: usize,
}

/// Logits, and (with batch statistics) the detached feature rows they were taken over.
pub struct TrainLogits {
    pub logits: Tensor,
    rows: Option<Tensor>,
}

impl TrainLogits {
    /// The step's output, carrying the feature rows `after_step` updates the running
    /// statistics with.
    pub fn output(self, loss: Tensor, metrics: Vec<(String, f64)>) -> StepOutput {
        let mut out = StepOutput::new(loss, metrics);
        if let Some(rows) = self.rows {
            out.state.push((FEATURES, rows));
        }
        out
    }
}

impl Classifier {
    pub fn new(
        cfg: &FinetuneConfig,
        encoder: Encoder,
        store: &mut ParamStore,
        classes: usize,
    ) -> Result<Self> {
        if !(cfg.layer_decay > 0.0 && cfg.layer_decay <= 1.0) {
            bail!(
                "finetune: layer_decay must be in (0, 1], got {}",
                cfg.layer_decay
            );
        }
        if !(0.0..1.0).contains(&cfg.label_smoothing) {
            bail!("finetune: label_smoothing must be in [0, 1)");
        }
        if cfg.feature_norm == FeatureNorm::Batch && cfg.train.batch_size < 2 {
            bail!("finetune: feature_norm = \"batch\" needs a batch_size of at least 2");
        }
        if !(cfg.norm_momentum > 0.0 && cfg.norm_momentum <= 1.0) {
            bail!(
                "finetune: norm_momentum must be in (0, 1], got {}",
                cfg.norm_momentum
            );
        }
        encoder.set_layer_decay(store, ENCODER_PREFIX, cfg.layer_decay);
        let d = encoder.cfg.dim;
        let norm = match cfg.feature_norm {
            FeatureNorm::Layer => Norm::Layer(LayerNorm::new(
                store,
                "finetune.norm",
                d,
                encoder.cfg.norm_eps,
            )?),
            FeatureNorm::Batch => {
                let mean = store.get(BN_MEAN, &[d], Init::Zeros, Decay::No)?;
                let var = store.get(BN_VAR, &[d], Init::Ones, Decay::No)?;
                store.set_trainable("finetune.bn", false);
                Norm::Batch { mean, var }
            }
        };
        Ok(Self {
            norm,
            head: Linear::new(store, "finetune.head", d, classes, true)?,
            encoder,
            cfg: cfg.clone(),
            classes,
        })
    }

    /// The encoder's features from `f`; with a frozen encoder, computed without a recorded
    /// graph (nothing flows back into it, and its activations are freed as it goes).
    fn features(
        &self,
        f: impl FnOnce() -> tessera_recipes::Result<Tensor>,
    ) -> tessera_recipes::Result<Tensor> {
        if self.cfg.freeze_encoder {
            no_grad(f)
        } else {
            f()
        }
    }

    /// What the probe of LP-FT is fitted on: the layer-normed features, or (batch
    /// statistics) the raw ones, which the probe standardises itself.
    fn probe_input(&self, f: &Tensor) -> tessera_recipes::Result<Tensor> {
        match &self.norm {
            Norm::Layer(n) => n.forward(f),
            Norm::Batch { .. } => Ok(f.clone()),
        }
    }

    /// The head's logits of features `f [.., D]`, normalised with `stats`.
    fn head_logits(&self, f: &Tensor, stats: Stats) -> tessera_recipes::Result<TrainLogits> {
        let (x, rows) = match (&self.norm, stats) {
            (Norm::Layer(n), _) => (n.forward(f)?, None),
            (Norm::Batch { mean, var }, Stats::Running) => (standardise(f, mean, var)?, None),
            (Norm::Batch { .. }, Stats::Batch(keep)) => {
                let d = f.dim(candle_core::D::Minus1)?;
                let rows = f.reshape(((), d))?;
                let rows = match keep {
                    Some(keep) => rows.index_select(keep, 0)?,
                    None => rows,
                };
                let (m, v) = row_moments(&rows)?;
                (standardise(f, &m, &v)?, Some(rows.detach()))
            }
        };
        Ok(TrainLogits {
            logits: self.head.forward(&x)?,
            rows,
        })
    }

    /// `[B, classes]`, normalised by the running statistics.
    pub fn logits(&self, t: &TokenTensors) -> tessera_recipes::Result<Tensor> {
        let f = self.features(|| self.cfg.pool.apply(&self.encoder.forward(t)?))?;
        Ok(self.head_logits(&f, Stats::Running)?.logits)
    }

    /// `[B, classes]` as training computes them (batch statistics over the samples).
    pub fn train_logits(&self, t: &TokenTensors) -> tessera_recipes::Result<TrainLogits> {
        let f = self.features(|| self.cfg.pool.apply(&self.encoder.forward(t)?))?;
        self.head_logits(&f, Stats::Batch(None))
    }

    /// Per-token logits `[B, N, classes]`: the same normalisation and head on every patch
    /// token (token classification, e.g. words on a page).
    pub fn token_logits(&self, t: &TokenTensors) -> tessera_recipes::Result<Tensor> {
        let f = self.features(|| Ok(self.encoder.forward(t)?.patches))?;
        Ok(self.head_logits(&f, Stats::Running)?.logits)
    }

    /// [`Classifier::token_logits`] as training computes them (batch statistics over the
    /// batch's real tokens).
    pub fn train_token_logits(&self, t: &TokenTensors) -> tessera_recipes::Result<TrainLogits> {
        let f = self.features(|| Ok(self.encoder.forward(t)?.patches))?;
        let real: Vec<u32> = t
            .padding
            .flatten_all()?
            .to_vec1::<f32>()?
            .iter()
            .enumerate()
            .filter(|(_, &p)| p == 0.0)
            .map(|(i, _)| i as u32)
            .collect();
        if real.is_empty() {
            // Nothing but filler: no statistics to take, the running ones serve.
            return self.head_logits(&f, Stats::Running);
        }
        let n = real.len();
        let real = Tensor::from_vec(real, n, f.device())?;
        self.head_logits(&f, Stats::Batch(Some(&real)))
    }

    pub fn classes(&self) -> usize {
        self.classes
    }

    pub fn config(&self) -> &FinetuneConfig {
        &self.cfg
    }

    /// Moves the running statistics towards the step's feature rows (batch statistics;
    /// nothing for a layer norm).
    pub fn update_statistics(
        &self,
        store: &ParamStore,
        out: &StepOutput,
    ) -> tessera_recipes::Result<()> {
        let Norm::Batch { mean, var } = &self.norm else {
            return Ok(());
        };
        // A step without feature rows (only filler tokens) leaves the statistics as they are.
        // Moments are taken again from the rows (not passed on from the loss) because a
        // data-parallel step gathers the rows of every part before this runs.
        let Some((_, rows)) = out.state.iter().find(|(n, _)| *n == FEATURES) else {
            return Ok(());
        };
        let (m, v) = row_moments(rows)?;
        let k = self.cfg.norm_momentum;
        let next = |old: &Tensor, new: &Tensor| -> candle_core::Result<Tensor> {
            (old * (1.0 - k))? + (new * k)?
        };
        tessera_recipes::ema::set_state(store, BN_MEAN, &next(mean, &m)?)?;
        tessera_recipes::ema::set_state(store, BN_VAR, &next(var, &v)?)?;
        Ok(())
    }

    /// `f` of token samples in batches of 32, one row per sample (no graph recorded).
    fn rows(
        &self,
        tokens: &[tessera_tokens::SampleTokens],
        f: impl Fn(&TokenTensors) -> tessera_recipes::Result<Tensor>,
    ) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(tokens.len());
        for chunk in tokens.chunks(32) {
            let t =
                TokenTensors::from_tokens(&Tokens::from_samples(chunk)?, self.encoder.device())?;
            out.extend(no_grad(|| f(&t))?.to_vec2::<f32>()?);
        }
        Ok(out)
    }

    /// Class predictions of token samples, in batches.
    pub fn predict(&self, tokens: &[tessera_tokens::SampleTokens]) -> Result<Vec<usize>> {
        let logits = self.rows(tokens, |t| self.logits(t))?;
        Ok(logits
            .iter()
            .map(|r| {
                (0..r.len())
                    .max_by(|&a, &b| r[a].total_cmp(&r[b]))
                    .unwrap_or(0)
            })
            .collect())
    }

    /// LP-FT's first stage on whole samples: [`Classifier::head_from_probe`] on the
    /// pooled features of `tokens` (the encoder frozen).
    pub fn init_head_from_probe(
        &self,
        store: &ParamStore,
        tokens: &[tessera_tokens::SampleTokens],
        y: &[usize],
        groups: &[usize],
        seed: u64,
    ) -> Result<f64> {
        let feats = self.rows(tokens, |t| {
            let f = self.cfg.pool.apply(&self.encoder.forward(t)?)?;
            self.probe_input(&f)
        })?;
        self.head_from_probe(store, &feats, y, groups, seed)
    }

    /// The head's input features of every patch token, `[B, N, D]` (token
    /// classification's counterpart of the pooled features).
    pub fn token_features(&self, t: &TokenTensors) -> tessera_recipes::Result<Tensor> {
        self.probe_input(&self.encoder.forward(t)?.patches)
    }

    /// Fits a linear probe (L-BFGS; L2 chosen on a stratified 20 % of the groups when
    /// every class has two groups, else L2 = 1e-3) on the head's input features `feats`
    /// (one row per view or token; rows of one `groups` value, such as the views of one
    /// sample, stay on one side of the split) and writes it into the head, its
    /// standardisation folded into the weights. Returns the probe's accuracy on `feats`.
    pub fn head_from_probe(
        &self,
        store: &ParamStore,
        feats: &[Vec<f32>],
        y: &[usize],
        groups: &[usize],
        seed: u64,
    ) -> Result<f64> {
        use tessera_eval::{fit_linear_probe, fit_linear_probe_with_l2, Features};
        let d = self.encoder.cfg.dim;
        let rows = |idx: &[usize]| -> Result<(Features, Vec<usize>)> {
            let data = idx.iter().flat_map(|&i| feats[i].iter().copied()).collect();
            Ok((
                Features::new(data, idx.len(), d)?,
                idx.iter().map(|&i| y[i]).collect(),
            ))
        };
        // One label per group (its first row's), split by group.
        let mut first: std::collections::BTreeMap<usize, usize> = Default::default();
        for (i, &g) in groups.iter().enumerate() {
            first.entry(g).or_insert(y[i]);
        }
        let ids: Vec<usize> = first.keys().copied().collect();
        let labels: Vec<usize> = first.values().copied().collect();
        let (tr, va) = tessera_eval::stratified_split(&labels, 0.2, seed);
        let side = |part: &[usize]| -> Vec<usize> {
            let keep: std::collections::BTreeSet<usize> = part.iter().map(|&k| ids[k]).collect();
            (0..y.len())
                .filter(|&i| keep.contains(&groups[i]))
                .collect()
        };
        let cfg = tessera_eval::LinearProbeConfig::default();
        let (x, ys) = rows(&(0..y.len()).collect::<Vec<_>>())?;
        let mut counts = vec![0usize; self.classes];
        labels.iter().for_each(|&c| counts[c] += 1);
        let probe = if va.is_empty() || counts.contains(&1) {
            fit_linear_probe_with_l2(&x, &ys, self.classes, 1e-3, &cfg)?
        } else {
            let ((xt, yt), (xv, yv)) = (rows(&side(&tr))?, rows(&side(&va))?);
            fit_linear_probe(&xt, &yt, &xv, &yv, self.classes, &cfg)?
        };
        // The probe minimised plain cross-entropy with a small L2, so its logits can be far
        // more confident than fine-tuning's label-smoothed target wants: scale them by the
        // temperature that minimises that target on these features, so the first steps'
        // gradients do not go into shrinking every logit through the encoder.
        let tau = smoothed_temperature(
            &probe.logits(&x)?,
            &ys,
            self.classes,
            self.cfg.label_smoothing,
        );
        let (mean, std) = probe.standardisation();
        let (w, b) = (probe.weights(), probe.bias());
        let mut weight = vec![0f32; self.classes * d];
        let mut bias = vec![0f32; self.classes];
        match &self.norm {
            // logits = τ (W ((x - mean) / std) + b) = τ (W / std) x + τ (b - W (mean / std))
            Norm::Layer(_) => {
                for c in 0..self.classes {
                    let mut shift = 0.0;
                    for j in 0..d {
                        let wj = w[c * d + j] / std[j];
                        weight[c * d + j] = (tau * wj) as f32;
                        shift += wj * mean[j];
                    }
                    bias[c] = (tau * (b[c] - shift)) as f32;
                }
            }
            // The probe's standardisation becomes the running statistics.
            Norm::Batch { .. } => {
                for (o, &v) in weight.iter_mut().zip(w) {
                    *o = (tau * v) as f32;
                }
                for (o, &v) in bias.iter_mut().zip(b) {
                    *o = (tau * v) as f32;
                }
                let dev = self.encoder.device();
                let var: Vec<f32> = std
                    .iter()
                    .map(|s| (s * s - BN_EPS).max(0.0) as f32)
                    .collect();
                let mean: Vec<f32> = mean.iter().map(|&m| m as f32).collect();
                tessera_recipes::ema::set_state(store, BN_MEAN, &Tensor::from_vec(mean, d, dev)?)?;
                tessera_recipes::ema::set_state(store, BN_VAR, &Tensor::from_vec(var, d, dev)?)?;
            }
        }
        let dev = self.encoder.device();
        let tensors = std::collections::HashMap::from([
            (
                "finetune.head.weight".to_string(),
                Tensor::from_vec(weight, (self.classes, d), dev)?,
            ),
            (
                "finetune.head.bias".to_string(),
                Tensor::from_vec(bias, self.classes, dev)?,
            ),
        ]);
        store.assign(&tensors, "finetune.head")?;
        Ok(tessera_eval::metrics::accuracy(&ys, &probe.predict(&x)?))
    }
}

impl Recipe for Classifier {
    fn name(&self) -> &'static str {
        "finetune"
    }

    fn loss(
        &self,
        batch: &Batch,
        _ctx: &StepContext,
        _rng: &mut Rng,
    ) -> tessera_recipes::Result<StepOutput> {
        let x = batch.first("finetune")?;
        let Some(Targets::Classes(y)) = &batch.targets else {
            return Err(CoreError::Config(
                "finetune: the batch carries no class targets".into(),
            ));
        };
        let dev = self.encoder.device().clone();
        let out = self.train_logits(&TokenTensors::from_tokens(x, &dev)?)?;
        let logits = &out.logits;
        let (b, c) = (y.len(), self.classes);
        let eps = self.cfg.label_smoothing as f32;
        let mut target = vec![eps / c as f32; b * c];
        for (i, &k) in y.iter().enumerate() {
            target[i * c + k.min(c - 1)] += 1.0 - eps;
        }
        let target = Tensor::from_vec(target, (b, c), &dev)?;
        let loss = cross_entropy(logits, &target, None)?;
        let pred = logits.argmax(1)?.to_vec1::<u32>()?;
        let acc = pred
            .iter()
            .zip(y)
            .filter(|(p, t)| **p as usize == **t)
            .count() as f64
            / b.max(1) as f64;
        Ok(out.output(loss, vec![("train_acc".into(), acc)]))
    }

    fn after_step(
        &mut self,
        store: &ParamStore,
        _ctx: &StepContext,
        out: &StepOutput,
    ) -> tessera_recipes::Result<()> {
        self.update_statistics(store, out)
    }

    fn encoder(&self) -> &Encoder {
        &self.encoder
    }
}

/// `K` rows per class from `idx` (all a class has when it has fewer), a seeded draw.
pub fn draw_shots(idx: &[usize], y: &[usize], classes: usize, k: usize, seed: u64) -> Vec<usize> {
    let mut rng = Rng::new(seed).fork("finetune-shots");
    let mut out = Vec::new();
    for c in 0..classes {
        let mut of: Vec<usize> = idx.iter().copied().filter(|&i| y[i] == c).collect();
        rng.shuffle(&mut of);
        out.extend(of.into_iter().take(k));
    }
    out.sort_unstable();
    out
}

/// The `[finetune]` settings of a run: the card's own table, then `--config`'s, then
/// `--steps`, `--batch-size` and a time limit of `minutes`.
pub fn finetune_config(
    extra: &toml::Table,
    common: &CommonArgs,
    minutes: Option<f64>,
) -> Result<FinetuneConfig> {
    let mut ft = extra
        .get("finetune")
        .cloned()
        .unwrap_or(toml::Value::Table(Default::default()));
    if let Some(path) = &common.config {
        if let Some(t) = read_config(path)?.get("finetune") {
            tessera_cli::deep_merge(&mut ft, t.clone());
        }
    }
    let mut cfg: FinetuneConfig = ft.try_into().context("invalid [finetune] table")?;
    if let Some(s) = common.steps {
        cfg.train.steps = s;
    }
    if let Some(b) = common.batch_size {
        cfg.train.batch_size = b;
    }
    cfg.train.time_limit_s = minutes.map(|m| m * 60.0);
    Ok(cfg)
}

/// The arguments `finetune` adds to the common ones.
pub struct FinetuneArgs<'a> {
    pub random_init: bool,
    pub shots: Option<usize>,
    pub name: Option<String>,
    pub task: Option<String>,
    pub minutes: Option<f64>,
    pub common: &'a CommonArgs,
}

impl<M: Modality> App<M> {
    pub(crate) fn finetune(&self, a: FinetuneArgs) -> Result<Vec<ResultRow>> {
        let common = a.common;
        tessera_cli::init_threads(common.threads)?;
        let out = common.out()?;
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        let items = list::<M>(common, false)?;
        require_labels(&items, "finetune")?;
        let run = encoder_for(self, common, a.random_init)?;
        let (mut card, encoder, mut store) = (run.card, run.encoder, run.store);
        let cfg = finetune_config(&card.extra, common, a.minutes)?;
        if let Some(seed) = common.seed {
            card.seed = seed;
        }
        let label = |i: &tessera_cli::DataItem| i.label.clone().unwrap_or_default();
        let classes = classes_of(items.iter().filter_map(|i| i.label.as_ref()), "finetune")?;
        let y: Vec<usize> = items
            .iter()
            .map(|i| class_index(&classes, &label(i)))
            .collect();
        let test: Vec<usize> = (0..items.len())
            .filter(|&i| common.is_test(&items[i]))
            .collect();
        let pool: Vec<usize> = (0..items.len())
            .filter(|&i| !common.is_test(&items[i]))
            .collect();
        if test.is_empty() || pool.is_empty() {
            bail!(
                "finetune needs both training rows and test rows (split `{}`; set --split-column / --test-split)",
                common.test_split
            );
        }
        let train = match a.shots {
            Some(0) => bail!("--shots needs K >= 1"),
            Some(k) => draw_shots(&pool, &y, classes.len(), k, card.seed),
            None => pool,
        };
        // Statistics from the training rows only (a run's card already holds them).
        let m = {
            let train_items: Vec<_> = train.iter().map(|&i| items[i].clone()).collect();
            match crate::source::fit_stats(&card.modality()?, &train_items, common.strict)? {
                Some(fit) => {
                    card.frontend = fit.config;
                    card.modality()?
                }
                None => card.modality()?,
            }
        };
        let init = match (&common.checkpoint, a.random_init) {
            (Some(run), false) => run.display().to_string(),
            _ => format!("random (seed {})", card.seed),
        };
        card.extra
            .insert("finetune".into(), toml::Value::try_from(&cfg)?);
        let mut model = Classifier::new(&cfg, encoder, &mut store, classes.len())?;
        if cfg.freeze_encoder {
            store.set_trainable(ENCODER_PREFIX, false);
        }
        if cfg.head_init == HeadInit::Probe {
            let rows: Vec<(usize, tessera_cli::DataItem)> =
                train.iter().map(|&i| (i, items[i].clone())).collect();
            let views = probe_views(&m, &rows, cfg.probe_views, card.seed, common.strict)?;
            let groups: Vec<usize> = views.iter().map(|(i, _)| *i).collect();
            let (tokens, ys): (Vec<_>, Vec<usize>) = views
                .into_iter()
                .map(|(i, v)| (v, class_index(&classes, &label(&items[i]))))
                .unzip();
            let acc = model.init_head_from_probe(&store, &tokens, &ys, &groups, card.seed)?;
            eprintln!(
                "finetune: head initialised from a linear probe on frozen features of {} views (training accuracy {acc:.3})",
                tokens.len()
            );
        }
        eprintln!(
            "finetune: {} training rows ({} classes{}), {} test rows, encoder {} ({init})",
            train.len(),
            classes.len(),
            a.shots
                .map(|k| format!(", {k} per class"))
                .unwrap_or_default(),
            test.len(),
            if cfg.freeze_encoder {
                "frozen"
            } else {
                "fine-tuned"
            },
        );
        let paths = train.iter().map(|&i| items[i].path.clone()).collect();
        let mut source = Source::new(&m, paths, card.cache_mb, card.seed, common.strict)
            .with_classes(train.iter().map(|&i| y[i]).collect());
        let run_name =
            a.name
                .clone()
                .unwrap_or_else(|| match (&common.checkpoint, a.random_init) {
                    (Some(p), false) => p
                        .file_name()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_else(|| card.name.clone()),
                    _ => format!("{}-random", card.name),
                });
        // Each fine-tuning run trains in its own folder under --out; the results table in
        // --out gathers every run's row.
        let run_dir = out.join("runs").join(format!(
            "{run_name}-seed{}{}",
            card.seed,
            a.shots.map(|k| format!("-k{k}")).unwrap_or_default()
        ));
        if run_dir.exists() {
            std::fs::remove_dir_all(&run_dir)
                .with_context(|| format!("clearing {}", run_dir.display()))?;
        }
        let opts = RunOptions {
            run_dir: &run_dir,
            seed: card.seed,
            resume: false,
            config_toml: card.to_toml()?,
            progress: true,
            comm: &tessera_train::Single,
        };
        let summary = tessera_train::train(&mut model, &store, &mut source, &cfg.train, &opts)?;
        if !source.skipped.is_empty() {
            eprintln!(
                "skipped {} unreadable training file(s); first: {}",
                source.skipped.len(),
                source.skipped[0]
            );
        }
        let test_items: Vec<_> = test.iter().map(|&i| items[i].clone()).collect();
        let mapped =
            crate::source::map_files(&m, test_items, common.strict, "decoding", M::eval_view)?;
        mapped.report_skipped();
        let kept_y: Vec<usize> = mapped
            .items
            .iter()
            .map(|it| class_index(&classes, &label(it)))
            .collect();
        let pred = model.predict(&mapped.values)?;
        let n = classes.len();
        let mut extra = std::collections::BTreeMap::new();
        extra.insert("train_rows".into(), train.len() as f64);
        extra.insert("steps".into(), summary.last_step as f64);
        if let Some(k) = a.shots {
            extra.insert("k".into(), k as f64);
        }
        let row = ResultRow {
            run: run_name,
            task: a
                .task
                .clone()
                .or_else(|| common.label_column.clone())
                .unwrap_or_else(|| "label".into()),
            protocol: if cfg.freeze_encoder {
                "sgd-linear".into()
            } else {
                "finetune".into()
            },
            features: format!("{:?}", cfg.pool).to_lowercase(),
            seed: card.seed,
            accuracy: tessera_eval::metrics::accuracy(&kept_y, &pred),
            macro_f1: tessera_eval::metrics::macro_f1(&kept_y, &pred, n),
            balanced_accuracy: tessera_eval::metrics::balanced_accuracy(&kept_y, &pred, n),
            n_test: pred.len(),
            extra,
        };
        let rows = vec![row];
        save_rows(out, &rows)?;
        print!("{}", tessera_eval::to_markdown(&rows));
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_core::EncoderConfig;
    use tessera_tokens::SampleTokens;

    /// Three classes told apart by the mean of their token values.
    fn samples(n: usize, seed: u64) -> (Vec<SampleTokens>, Vec<usize>) {
        let mut rng = Rng::new(seed);
        let (tokens, p) = (6, 8);
        (0..n)
            .map(|i| {
                let c = i % 3;
                let values = (0..tokens * p)
                    .map(|_| c as f32 - 1.0 + 0.3 * rng.normal() as f32)
                    .collect();
                let coords = (0..tokens).map(|t| t as f32).collect();
                (SampleTokens::new(values, coords, tokens, p, 1).unwrap(), c)
            })
            .unzip()
    }

    fn classifier(norm: FeatureNorm) -> (Classifier, ParamStore) {
        let enc = EncoderConfig::preset("nano", 8, vec![4.0]).unwrap();
        let cfg = FinetuneConfig {
            feature_norm: norm,
            ..Default::default()
        };
        let mut store = ParamStore::new(0, &candle_core::Device::Cpu);
        let encoder = Encoder::new(&enc, &mut store, ENCODER_PREFIX).unwrap();
        let model = Classifier::new(&cfg, encoder, &mut store, 3).unwrap();
        (model, store)
    }

    #[test]
    fn a_probe_initialised_head_predicts_as_the_probe_does() {
        assert_eq!(FinetuneConfig::default().head_init, HeadInit::Probe);
        for norm in [FeatureNorm::Layer, FeatureNorm::Batch] {
            let (model, store) = classifier(norm);
            let (x, y) = samples(30, 1);
            let random = model.predict(&x).unwrap();
            let groups: Vec<usize> = (0..y.len()).map(|i| i / 2).collect();
            let probe_acc = model
                .init_head_from_probe(&store, &x, &y, &groups, 0)
                .unwrap();
            // The folded standardisation (layer norm) or the running statistics (batch
            // statistics) reproduce the probe's predictions exactly.
            let pred = model.predict(&x).unwrap();
            let acc = tessera_eval::metrics::accuracy(&y, &pred);
            assert!(
                (acc - probe_acc).abs() < 1e-9,
                "{norm:?}: {acc} vs probe {probe_acc}"
            );
            assert!(acc > 0.9, "separable classes: {acc}");
            assert!(tessera_eval::metrics::accuracy(&y, &random) < 0.9);
        }
        let (model, store) = classifier(FeatureNorm::Layer);
        // One sample per class: no validation split, a fixed L2; still a valid head.
        let (x1, y1) = samples(3, 2);
        assert!(
            model
                .init_head_from_probe(&store, &x1, &y1, &[0, 1, 2], 0)
                .unwrap()
                > 0.99
        );
        assert!(toml::from_str::<FinetuneConfig>("head_init = \"zero\"").is_err());
        // Over-confident logits are cooled for a smoothed target, not for a hard one.
        let logits = [30.0, 0.0, 0.0, 0.0, 30.0, 0.0];
        let cool = smoothed_temperature(&logits, &[0, 1], 3, 0.1);
        assert!(cool < 0.2, "{cool}");
        assert!(smoothed_temperature(&logits, &[0, 1], 3, 0.0) >= 1.0);
        let random: FinetuneConfig = toml::from_str("head_init = \"random\"").unwrap();
        assert_eq!(random.head_init, HeadInit::Random);
    }

    #[test]
    fn batch_statistics_ignore_a_common_shift_and_are_tracked_by_running_averages() {
        let (model, store) = classifier(FeatureNorm::Batch);
        let dev = candle_core::Device::Cpu;
        let mut rng = Rng::new(3);
        let f: Vec<f32> = (0..8 * 128).map(|_| rng.normal() as f32).collect();
        let f = Tensor::from_vec(f, (8, 128), &dev).unwrap();
        let a = model.head_logits(&f, Stats::Batch(None)).unwrap();
        // Every sample's features moved and scaled alike: the same training logits.
        let moved = ((&f * 3.0).unwrap() + 5.0).unwrap();
        let b = model.head_logits(&moved, Stats::Batch(None)).unwrap();
        let max_diff = |x: &Tensor, y: &Tensor| -> f32 {
            let d = (x - y).unwrap().abs().unwrap().max_all().unwrap();
            d.to_scalar::<f32>().unwrap()
        };
        let diff = max_diff(&a.logits, &b.logits);
        assert!(diff < 1e-4, "{diff}");
        // Test logits use the running statistics (0 and 1 at first), which then move
        // towards the step's rows by the momentum (0.1).
        let test = model.head_logits(&moved, Stats::Running).unwrap().logits;
        assert!(max_diff(&test, &b.logits) > 1.0);
        let out = b.output(Tensor::new(0f32, &dev).unwrap(), Vec::new());
        model.update_statistics(&store, &out).unwrap();
        let mean = store
            .param(BN_MEAN)
            .unwrap()
            .var
            .as_tensor()
            .to_vec1::<f32>()
            .unwrap();
        let want = moved.mean(0).unwrap().to_vec1::<f32>().unwrap();
        for (m, w) in mean.iter().zip(&want) {
            assert!((m - 0.1 * w).abs() < 1e-5, "{m} vs 0.1 * {w}");
        }
        assert!(!store.param(BN_VAR).unwrap().trainable);
        let bad: FinetuneConfig =
            toml::from_str("feature_norm = \"batch\"\nnorm_momentum = 0.0").unwrap();
        let (encoder, mut s2) = {
            let enc = EncoderConfig::preset("nano", 8, vec![4.0]).unwrap();
            let mut s2 = ParamStore::new(0, &dev);
            (Encoder::new(&enc, &mut s2, ENCODER_PREFIX).unwrap(), s2)
        };
        assert!(Classifier::new(&bad, encoder, &mut s2, 3).is_err());
    }
}
