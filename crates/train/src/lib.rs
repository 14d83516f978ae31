//! The trainer: AdamW (no weight decay on norms, biases and embeddings), linear warm-up
//! then cosine decay, clipping by global norm, atomic checkpoints with exact resume,
//! a progress bar and JSONL metrics.
//!
//! Determinism: every random draw of step `s` comes from `Rng::new(seed).fork("step-s")`,
//! and the data source is asked for batch `s` by number, so a run stopped and resumed
//! at any checkpoint produces the same bytes as an uninterrupted one (same thread count).

pub mod checkpoint;
pub mod optim;
pub mod schedule;

use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tessera_core::{CoreError, ParamStore};
use tessera_recipes::{Batch, Recipe, StepContext};
use tessera_tokens::{Rng, SampleTokens, Tokens, ViewSpec};

pub use checkpoint::{latest_checkpoint, Checkpoint};
pub use optim::AdamW;

/// The train crate's one error enum.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error("data: {0}")]
    Data(String),
    /// A data error with its source kept (a reader's error names the file).
    #[error("data")]
    DataSource(#[source] tessera_tokens::BoxError),
    #[error("data: {0}")]
    Tokens(#[from] tessera_tokens::TokenError),
    #[error("non-finite {what} ({value}) at step {step}; stopped, the last good checkpoint is left in place")]
    NonFinite { what: String, value: f64, step: u64 },
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("invalid training configuration: {0}")]
    Config(String),
}

pub type Result<T> = std::result::Result<T, TrainError>;

pub(crate) fn io_err(path: &Path, e: impl std::fmt::Display) -> TrainError {
    TrainError::File {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Optimisation hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub steps: u64,
    pub batch_size: usize,
    /// Peak learning rate.
    pub lr: f64,
    #[serde(default)]
    pub min_lr: f64,
    #[serde(default)]
    pub warmup_steps: u64,
    #[serde(default = "default_wd")]
    pub weight_decay: f64,
    #[serde(default = "default_betas")]
    pub betas: [f64; 2],
    #[serde(default = "default_adam_eps")]
    pub eps: f64,
    /// Clip gradients to this global L2 norm (0 = off).
    #[serde(default = "default_clip")]
    pub clip_norm: f64,
    /// Write a checkpoint every this many steps (and always at the end).
    #[serde(default = "default_ckpt")]
    pub checkpoint_every: u64,
    /// How many checkpoints to keep.
    #[serde(default = "default_keep")]
    pub keep_checkpoints: usize,
    #[serde(default = "default_log")]
    pub log_every: u64,
    /// Stop early (with a checkpoint) after this many seconds; the schedule is unchanged.
    #[serde(default)]
    pub time_limit_s: Option<f64>,
}

fn default_wd() -> f64 {
    0.05
}
fn default_betas() -> [f64; 2] {
    [0.9, 0.95]
}
fn default_adam_eps() -> f64 {
    1e-8
}
fn default_clip() -> f64 {
    1.0
}
fn default_ckpt() -> u64 {
    500
}
fn default_keep() -> usize {
    2
}
fn default_log() -> u64 {
    10
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            steps: 1000,
            batch_size: 32,
            lr: 1.5e-4,
            min_lr: 0.0,
            warmup_steps: 100,
            weight_decay: default_wd(),
            betas: default_betas(),
            eps: default_adam_eps(),
            clip_norm: default_clip(),
            checkpoint_every: default_ckpt(),
            keep_checkpoints: default_keep(),
            log_every: default_log(),
            time_limit_s: None,
        }
    }
}

impl TrainConfig {
    pub fn validate(&self) -> Result<()> {
        if self.steps == 0 || self.batch_size == 0 {
            return Err(TrainError::Config(
                "steps and batch_size must be positive".into(),
            ));
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) || self.min_lr < 0.0 {
            return Err(TrainError::Config(format!(
                "lr must be positive (got {}), min_lr non-negative",
                self.lr
            )));
        }
        if self.checkpoint_every == 0 || self.keep_checkpoints == 0 {
            return Err(TrainError::Config(
                "checkpoint_every and keep_checkpoints must be positive".into(),
            ));
        }
        Ok(())
    }
}

/// Supplies batch number `step` (1-based). Must be a pure function of `step` and `rng`
/// for exact resume.
pub trait BatchSource {
    /// The views the recipe asks for ([`Recipe::views`]), in that order, of `batch_size`
    /// samples.
    fn batch(
        &mut self,
        step: u64,
        batch_size: usize,
        views: &[ViewSpec],
        rng: &mut Rng,
    ) -> Result<Batch>;
    /// Whether this source can give these views; checked once before the first step, so
    /// a recipe that needs two views fails at start on a one-view source.
    fn check_views(&self, _views: &[ViewSpec]) -> Result<()> {
        Ok(())
    }
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepLog {
    pub step: u64,
    pub loss: f64,
    pub lr: f64,
    pub grad_norm: f64,
    pub samples_per_s: f64,
    pub elapsed_s: f64,
    /// The recipe's own scalars of this step ([`StepOutput::metrics`], e.g. Volume
    /// Fusion's `alpha_accuracy`), by name.
    ///
    /// [`StepOutput::metrics`]: tessera_recipes::StepOutput::metrics
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub recipe: std::collections::BTreeMap<String, f64>,
}

/// What a finished (or time-limited) run reports.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    pub first_step: u64,
    pub last_step: u64,
    pub losses: Vec<f64>,
    pub elapsed_s: f64,
    pub samples_per_s: f64,
    pub checkpoint: Option<PathBuf>,
}

/// Options that are not hyperparameters.
pub struct RunOptions<'a> {
    pub run_dir: &'a Path,
    pub seed: u64,
    /// Continue from the run directory's latest checkpoint.
    pub resume: bool,
    /// The resolved configuration, saved verbatim with every checkpoint.
    pub config_toml: String,
    pub progress: bool,
}

/// Trains `recipe` (whose parameters live in `store`) on batches from `source`.
pub fn train(
    recipe: &mut dyn Recipe,
    store: &ParamStore,
    source: &mut dyn BatchSource,
    cfg: &TrainConfig,
    opts: &RunOptions,
) -> Result<TrainSummary> {
    cfg.validate()?;
    std::fs::create_dir_all(opts.run_dir).map_err(|e| io_err(opts.run_dir, e))?;
    let mut opt = AdamW::new(store, cfg);
    let mut start = 1u64;
    if opts.resume {
        let ck = latest_checkpoint(opts.run_dir)?.ok_or_else(|| {
            io_err(
                opts.run_dir,
                "--resume given but the run directory has no checkpoint",
            )
        })?;
        let step = ck.load(store, &mut opt)?;
        start = step + 1;
    }
    let metrics_path = opts.run_dir.join("metrics.jsonl");
    let mut metrics = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&metrics_path)
        .map_err(|e| io_err(&metrics_path, e))?;
    let bar = if opts.progress && start <= cfg.steps {
        let b = ProgressBar::new(cfg.steps);
        b.set_style(
            ProgressStyle::with_template(
                "{bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}] {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b.set_position(start - 1);
        b
    } else {
        ProgressBar::hidden()
    };
    let views = recipe.views();
    source.check_views(&views)?;
    let root = Rng::new(opts.seed);
    let prepare = recipe.prepare_batches() as u64;
    if start == 1 && prepare > 0 {
        // The first batches of the data order, drawn with their own generators.
        let mut batches = Vec::with_capacity(prepare as usize);
        for i in 1..=prepare {
            let mut rng = root.fork(&format!("prepare-{i}"));
            batches.push(source.batch(i, cfg.batch_size, &views, &mut rng)?);
        }
        recipe.prepare(store, &batches, &mut root.fork("prepare"))?;
    }
    let t0 = Instant::now();
    let mut losses = Vec::new();
    let mut last_ckpt = None;
    let mut step = start;
    let mut window = (Instant::now(), 0usize);
    while step <= cfg.steps {
        let mut rng = root.fork(&format!("step-{step}"));
        let ctx = StepContext {
            step,
            total_steps: cfg.steps,
        };
        let batch = source.batch(step, cfg.batch_size, &views, &mut rng)?;
        tessera_recipes::check_views(recipe, &batch)?;
        let n_samples = batch.samples();
        let out = recipe.loss(&batch, &ctx, &mut rng)?;
        let loss = out.loss.to_scalar::<f32>()? as f64;
        if !loss.is_finite() {
            bar.abandon();
            return Err(TrainError::NonFinite {
                what: "loss".into(),
                value: loss,
                step,
            });
        }
        let grads = out.loss.backward()?;
        let lr = schedule::lr_at(cfg, step);
        let grad_norm = opt.step(store, &grads, lr, step)?;
        recipe.after_step(store, &ctx, &out)?;
        losses.push(loss);
        window.1 += n_samples;
        if step.is_multiple_of(cfg.log_every) || step == cfg.steps {
            let dt = window.0.elapsed().as_secs_f64().max(1e-9);
            let log = StepLog {
                step,
                loss,
                lr,
                grad_norm,
                samples_per_s: window.1 as f64 / dt,
                elapsed_s: t0.elapsed().as_secs_f64(),
                recipe: out.metrics.iter().cloned().collect(),
            };
            let line = serde_json::to_string(&log).map_err(|e| io_err(&metrics_path, e))?;
            writeln!(metrics, "{line}").map_err(|e| io_err(&metrics_path, e))?;
            bar.set_message(format!(
                "loss {loss:.4} lr {lr:.2e} {:.1} samples/s",
                log.samples_per_s
            ));
            window = (Instant::now(), 0);
        }
        bar.set_position(step);
        let out_of_time = cfg
            .time_limit_s
            .is_some_and(|t| t0.elapsed().as_secs_f64() >= t);
        if step.is_multiple_of(cfg.checkpoint_every) || step == cfg.steps || out_of_time {
            last_ckpt = Some(checkpoint::save(
                opts.run_dir,
                step,
                store,
                &opt,
                &opts.config_toml,
                cfg.keep_checkpoints,
            )?);
        }
        if out_of_time {
            break;
        }
        step += 1;
    }
    bar.finish_and_clear();
    let elapsed_s = t0.elapsed().as_secs_f64();
    let done = losses.len();
    Ok(TrainSummary {
        first_step: start,
        last_step: start + done as u64 - 1,
        samples_per_s: (done * cfg.batch_size) as f64 / elapsed_s.max(1e-9),
        losses,
        elapsed_s,
        checkpoint: last_ckpt,
    })
}

/// Times whole training steps (loss, backward, AdamW at a fixed learning rate, the
/// recipe's after-step update) on one fixed
/// batch of `samples` (the recipe's views: the samples themselves, local views cut from
/// them): `warmup` untimed steps, then `steps` timed ones. Returns the JSON line every
/// `bench-step` prints (`impl`, `threads`, `tokens`, `samples_per_s`, `step_ms`,
/// `params_encoder`), the format the PyTorch peers in `benchmarks/` print too.
pub fn bench_steps(
    recipe: &mut dyn Recipe,
    store: &ParamStore,
    cfg: &TrainConfig,
    samples: &[SampleTokens],
    seed: u64,
    warmup: usize,
    steps: usize,
) -> Result<String> {
    let mut rng = Rng::new(seed);
    let specs = recipe.views();
    let views = specs
        .iter()
        .map(|s| {
            let v: Vec<SampleTokens> = samples.iter().map(|x| s.cut(x.clone(), &mut rng)).collect();
            Tokens::from_samples(&v)
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let batch = &Batch {
        views,
        specs,
        ids: (0..samples.len() as u64).collect(),
        targets: None,
    };
    let mut opt = AdamW::new(store, cfg);
    let mut timed = 0.0;
    for i in 0..warmup + steps {
        let t0 = Instant::now();
        let ctx = StepContext {
            step: i as u64 + 1,
            total_steps: (warmup + steps) as u64,
        };
        let out = recipe.loss(batch, &ctx, &mut rng)?;
        let grads = out.loss.backward()?;
        opt.step(store, &grads, 1e-4, i as u64 + 1)?;
        recipe.after_step(store, &ctx, &out)?;
        if i >= warmup {
            timed += t0.elapsed().as_secs_f64();
        }
    }
    let threads = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
    let bs = batch.views.first().map(|v| v.b).unwrap_or(0);
    let tokens = batch.views.first().map(|v| v.n).unwrap_or(0);
    Ok(format!(
        "{{\"impl\": \"tessera\", \"threads\": {threads}, \"tokens\": {tokens}, \"samples_per_s\": {:.3}, \"step_ms\": {:.1}, \"params_encoder\": {}}}",
        (bs * steps) as f64 / timed,
        1000.0 * timed / steps.max(1) as f64,
        store.count(tessera_recipes::ENCODER_PREFIX)
    ))
}

/// Epoch-wise shuffled data order that is a pure function of the seed and the epoch (so a
/// resumed run sees the same samples), with the current epoch's permutation cached.
#[derive(Debug, Clone)]
pub struct EpochOrder {
    seed: u64,
    n: usize,
    cached: Option<(usize, Vec<usize>)>,
}

impl EpochOrder {
    pub fn new(seed: u64, n: usize) -> Self {
        Self {
            seed,
            n,
            cached: None,
        }
    }

    /// Index of the sample at position `global` of the stream (`global / n` is the epoch).
    pub fn sample(&mut self, global: usize) -> usize {
        if self.n == 0 {
            return 0;
        }
        let (epoch, pos) = (global / self.n, global % self.n);
        if self.cached.as_ref().map(|c| c.0) != Some(epoch) {
            let perm = Rng::new(self.seed)
                .fork(&format!("epoch-{epoch}"))
                .permutation(self.n);
            self.cached = Some((epoch, perm));
        }
        self.cached.as_ref().map(|c| c.1[pos]).unwrap_or(pos)
    }
}
