//! The trainer: AdamW (no weight decay on norms, biases and embeddings), linear warm-up
//! then cosine decay, clipping by global norm, atomic checkpoints with exact resume,
//! a progress bar and JSONL metrics.
//!
//! Determinism: every random draw of step `s` comes from `Rng::new(seed).fork("step-s")`,
//! and the data source is asked for batch `s` by number, so a run stopped and resumed
//! at any checkpoint produces the same bytes as an uninterrupted one (same thread count).

pub mod checkpoint;
pub mod dist;
pub mod optim;
pub mod schedule;

use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tessera_core::{CoreError, ParamStore};
use tessera_recipes::{Batch, Recipe, StepContext, StepOutput};
use tessera_tokens::{Rng, SampleTokens, Tokens, ViewSpec};

pub use checkpoint::{latest_checkpoint, Checkpoint};
pub use dist::{Collective, Single, ThreadGroup};
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
    /// Parts the batch of each step is cut into, each with its own samples and random
    /// draws, their gradients added before the update ([`dist`]): the data order is a
    /// function of the seed, the step and this number. Unset means one part per process
    /// (the command records the resolved number); it must be a multiple of the process
    /// count and divide `batch_size`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub micro_batches: Option<usize>,
    /// How each epoch orders the samples ([`DataOrder`]).
    #[serde(default, skip_serializing_if = "DataOrder::is_global")]
    pub data_order: DataOrder,
}

/// How an epoch orders the samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataOrder {
    /// One permutation of every sample per epoch ([`EpochOrder`]); part `m` of a step takes
    /// the positions `(s−1)·B + m·B/M …` of that stream.
    #[default]
    Global,
    /// WebDataset-style ([`ShardOrder`]): each epoch permutes the shards and deals them to
    /// the parts of the batch, so the process computing a part reads only its own shards.
    Shards,
}

impl DataOrder {
    pub fn is_global(&self) -> bool {
        *self == DataOrder::Global
    }
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
            micro_batches: None,
            data_order: DataOrder::Global,
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
        if self.micro_batches == Some(0)
            || self
                .micro_batches
                .is_some_and(|m| !self.batch_size.is_multiple_of(m))
        {
            return Err(TrainError::Config(format!(
                "micro_batches ({}) must be positive and divide batch_size ({})",
                self.micro_batches.unwrap_or(0),
                self.batch_size
            )));
        }
        Ok(())
    }

    /// The parts of each step's batch with `processes` processes: `micro_batches`, or one
    /// per process when unset.
    pub fn parts(&self, processes: usize) -> Result<usize> {
        let parts = self.micro_batches.unwrap_or(processes);
        if !parts.is_multiple_of(processes) || !self.batch_size.is_multiple_of(parts) {
            return Err(TrainError::Config(format!(
                "[train] micro_batches = {parts} must be a multiple of the {processes} \
                 processes and divide batch_size = {}",
                self.batch_size
            )));
        }
        Ok(parts)
    }
}

/// Which samples of the data order one part of a step's batch holds: part `part` of
/// `parts` equal parts of global batch `step` (1-based) of `batch_size` samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSlot {
    pub step: u64,
    /// The global batch size (every part together).
    pub batch_size: usize,
    pub part: usize,
    pub parts: usize,
}

impl BatchSlot {
    /// The whole batch `step`.
    pub fn whole(step: u64, batch_size: usize) -> Self {
        Self {
            step,
            batch_size,
            part: 0,
            parts: 1,
        }
    }

    /// Samples in this part.
    pub fn len(&self) -> usize {
        self.batch_size / self.parts
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Position of this part's first sample in the stream of the data order.
    pub fn first(&self) -> usize {
        (self.step - 1) as usize * self.batch_size + self.part * self.len()
    }
}

/// Supplies the samples of a [`BatchSlot`]. Must be a pure function of the slot and `rng`
/// for exact resume.
pub trait BatchSource {
    /// The views the recipe asks for ([`Recipe::views`]), in that order, of the
    /// `slot.len()` samples of `slot`.
    fn batch(&mut self, slot: &BatchSlot, views: &[ViewSpec], rng: &mut Rng) -> Result<Batch>;
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
    /// The processes training together ([`dist::world`]); rank 0 writes the checkpoints,
    /// the metrics and the progress bar.
    pub comm: &'a dyn Collective,
}

/// Trains `recipe` (whose parameters live in `store`) on batches from `source`, with the
/// other processes of `opts.comm` when there are any ([`dist`]).
pub fn train(
    recipe: &mut dyn Recipe,
    store: &ParamStore,
    source: &mut dyn BatchSource,
    cfg: &TrainConfig,
    opts: &RunOptions,
) -> Result<TrainSummary> {
    cfg.validate()?;
    let comm = opts.comm;
    let (rank, size) = (comm.rank(), comm.size());
    let parts = cfg.parts(size)?;
    let lead = rank == 0;
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
    let mut metrics = if lead {
        Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&metrics_path)
                .map_err(|e| io_err(&metrics_path, e))?,
        )
    } else {
        None
    };
    let bar = if opts.progress && lead && start <= cfg.steps {
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
            batches.push(source.batch(&BatchSlot::whole(i, cfg.batch_size), &views, &mut rng)?);
        }
        recipe.prepare(store, &batches, &mut root.fork("prepare"))?;
    }
    if size > 1 {
        // Every process starts from rank 0's parameters and recipe state.
        broadcast_params(comm, store)?;
        if lead {
            let values: usize = store
                .iter()
                .filter(|(_, p)| p.trainable)
                .map(|(_, p)| p.var.elem_count())
                .sum();
            eprintln!(
                "data-parallel: {size} processes, {} micro-batch(es) of {} samples each; \
                 all-reduce of {values} gradient values ({:.1} MB) per step",
                parts / size,
                cfg.batch_size / parts,
                values as f64 * 4.0 / 1e6
            );
        }
    }
    let t0 = Instant::now();
    let mut losses = Vec::new();
    let mut last_ckpt = None;
    let mut step = start;
    let mut window = (Instant::now(), 0usize);
    let mine = rank * parts / size..(rank + 1) * parts / size;
    while step <= cfg.steps {
        let ctx = StepContext {
            step,
            total_steps: cfg.steps,
        };
        let step_rng = root.fork(&format!("step-{step}"));
        let mut grads: Option<optim::HostGrads> = None;
        let mut done: Vec<(f64, StepOutput)> = Vec::new();
        let mut n_samples = 0usize;
        for part in mine.clone() {
            let mut rng = if parts == 1 {
                step_rng.clone()
            } else {
                step_rng.fork(&format!("part-{part}"))
            };
            let slot = BatchSlot {
                step,
                batch_size: cfg.batch_size,
                part,
                parts,
            };
            let batch = source.batch(&slot, &views, &mut rng)?;
            tessera_recipes::check_views(recipe, &batch)?;
            n_samples += batch.samples();
            let mut out = recipe.loss(&batch, &ctx, &mut rng)?;
            let loss = out.loss.to_scalar::<f32>()? as f64;
            if !loss.is_finite() {
                bar.abandon();
                return Err(TrainError::NonFinite {
                    what: "loss".into(),
                    value: loss,
                    step,
                });
            }
            let g = opt.host_grads(store, &out.loss.backward()?)?;
            grads = Some(match grads {
                None => g,
                Some(mut acc) => {
                    add_grads(&mut acc, &g)?;
                    acc
                }
            });
            if parts > 1 {
                // Keep what the update needs, not every part's autograd graph.
                out.loss = out.loss.detach();
                for (_, t) in out.state.iter_mut() {
                    *t = t.detach();
                }
            }
            done.push((loss, out));
        }
        let mut grads = grads.unwrap_or_default();
        let out_of_time = cfg
            .time_limit_s
            .is_some_and(|t| t0.elapsed().as_secs_f64() >= t);
        let (loss, out, out_of_time, n_samples) = if parts == 1 {
            let (loss, out) = done
                .pop()
                .ok_or_else(|| TrainError::Config("no batch".into()))?;
            (loss, out, out_of_time, n_samples)
        } else {
            if size > 1 {
                reduce_grads(comm, &mut grads)?;
            }
            let scale = 1.0 / parts as f32;
            grads
                .iter_mut()
                .flat_map(|(_, g)| g.iter_mut())
                .for_each(|x| *x *= scale);
            combine_outputs(comm, done, parts, out_of_time, n_samples)?
        };
        let lr = schedule::lr_at(cfg, step);
        let grad_norm = opt.apply(store, grads, lr, step)?;
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
            if let Some(metrics) = metrics.as_mut() {
                let line = serde_json::to_string(&log).map_err(|e| io_err(&metrics_path, e))?;
                writeln!(metrics, "{line}").map_err(|e| io_err(&metrics_path, e))?;
            }
            bar.set_message(format!(
                "loss {loss:.4} lr {lr:.2e} {:.1} samples/s",
                log.samples_per_s
            ));
            window = (Instant::now(), 0);
        }
        bar.set_position(step);
        let save = step.is_multiple_of(cfg.checkpoint_every) || step == cfg.steps || out_of_time;
        if save && lead {
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

fn add_grads(acc: &mut optim::HostGrads, g: &optim::HostGrads) -> Result<()> {
    if acc.len() != g.len() {
        return Err(TrainError::Config(
            "micro-batches produced gradients for different parameters".into(),
        ));
    }
    for ((na, a), (nb, b)) in acc.iter_mut().zip(g) {
        if na != nb || a.len() != b.len() {
            return Err(TrainError::Config(format!(
                "micro-batches produced gradients for different parameters ({na}, {nb})"
            )));
        }
        a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
    }
    Ok(())
}

/// Sums named vectors (gradients, or parameters) over the processes in one all-reduce.
fn reduce_grads(comm: &dyn Collective, grads: &mut optim::HostGrads) -> Result<()> {
    let mut flat: Vec<f32> = grads.iter().flat_map(|(_, g)| g.iter().copied()).collect();
    comm.all_reduce_sum(&mut flat)?;
    let mut at = 0;
    for (_, g) in grads.iter_mut() {
        let n = g.len();
        g.copy_from_slice(&flat[at..at + n]);
        at += n;
    }
    Ok(())
}

/// Rank 0's parameters and recipe state on every process (the others contribute zeros to
/// one sum).
fn broadcast_params(comm: &dyn Collective, store: &ParamStore) -> Result<()> {
    let mut values = store
        .iter()
        .map(|(name, p)| {
            let mut v = p.var.flatten_all()?.to_vec1::<f32>()?;
            if comm.rank() != 0 {
                v.fill(0.0);
            }
            Ok((name.clone(), v))
        })
        .collect::<Result<optim::HostGrads>>()?;
    reduce_grads(comm, &mut values)?;
    for ((_, p), (_, v)) in store.iter().zip(values) {
        p.var.set(&candle_core::Tensor::from_vec(
            v,
            p.var.shape(),
            p.var.device(),
        )?)?;
    }
    Ok(())
}

/// One step's output from the parts of every process: the mean loss and metrics, the
/// recipe state of every sample in part order (state tensors have one row per sample or
/// view, so they are concatenated), whether any process ran out of time, and the samples.
fn combine_outputs(
    comm: &dyn Collective,
    done: Vec<(f64, StepOutput)>,
    parts: usize,
    out_of_time: bool,
    n_samples: usize,
) -> Result<(f64, StepOutput, bool, usize)> {
    let names: Vec<String> = done
        .first()
        .map(|(_, o)| o.metrics.iter().map(|(n, _)| n.clone()).collect())
        .unwrap_or_default();
    let mut scalars = vec![0f64; names.len() + 3];
    for (loss, out) in &done {
        scalars[0] += loss;
        for (i, (_, v)) in out.metrics.iter().enumerate().take(names.len()) {
            scalars[3 + i] += v;
        }
    }
    scalars[1] = n_samples as f64;
    scalars[2] = out_of_time as u8 as f64;
    comm.all_reduce_sum_f64(&mut scalars)?;
    let loss = scalars[0] / parts as f64;
    let metrics = names
        .into_iter()
        .enumerate()
        .map(|(i, n)| (n, scalars[3 + i] / parts as f64))
        .collect();
    // State: this process's parts concatenated, then every process's rows gathered.
    let mut state = Vec::new();
    if let Some((_, first)) = done.first() {
        for (k, (name, _)) in first.state.iter().enumerate() {
            let rows = done
                .iter()
                .map(|(_, o)| o.state.get(k).map(|s| s.1.clone()))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| TrainError::Config(format!("a part lacks state `{name}`")))?;
            let local = candle_core::Tensor::cat(&rows, 0)?;
            state.push((*name, gather_rows(comm, &local)?));
        }
    }
    let device = done
        .first()
        .map(|(_, o)| o.loss.device().clone())
        .unwrap_or(candle_core::Device::Cpu);
    let mut out = StepOutput::new(candle_core::Tensor::new(loss as f32, &device)?, metrics);
    out.state = state;
    Ok((loss, out, scalars[2] > 0.0, scalars[1] as usize))
}

/// Every process's `local` rows, in rank order (the same shape on every process).
fn gather_rows(comm: &dyn Collective, local: &candle_core::Tensor) -> Result<candle_core::Tensor> {
    if comm.size() == 1 {
        return Ok(local.clone());
    }
    let v = local
        .flatten_all()?
        .to_dtype(candle_core::DType::F32)?
        .to_vec1::<f32>()?;
    let mut all = vec![0f32; v.len() * comm.size()];
    all[comm.rank() * v.len()..(comm.rank() + 1) * v.len()].copy_from_slice(&v);
    comm.all_reduce_sum(&mut all)?;
    let mut dims = local.dims().to_vec();
    dims[0] *= comm.size();
    Ok(candle_core::Tensor::from_vec(all, dims, local.device())?.to_dtype(local.dtype())?)
}

/// Times whole training steps (loss, backward, AdamW at a fixed learning rate, the
/// recipe's after-step update) on one fixed
/// batch of `samples` (the recipe's views: the samples themselves, local views cut from
/// them): `warmup` untimed steps, then `steps` timed ones. Returns the JSON line every
/// `bench-step` prints (`impl`, `threads`, `tokens`, `samples_per_s`, `step_ms`, the
/// forward/backward/optimiser split, `peak_rss_mib`, `params_encoder`), the format the PyTorch peers in `benchmarks/` print too.
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
    let batch = Batch {
        views,
        specs,
        ids: (0..samples.len() as u64).collect(),
        targets: None,
    };
    bench_batch(recipe, store, cfg, &batch, &mut rng, warmup, steps)
}

/// [`bench_steps`] on a given batch (one whose recipe needs targets, such as a
/// segmentation model's per-voxel labels).
pub fn bench_batch(
    recipe: &mut dyn Recipe,
    store: &ParamStore,
    cfg: &TrainConfig,
    batch: &Batch,
    rng: &mut Rng,
    warmup: usize,
    steps: usize,
) -> Result<String> {
    let mut opt = AdamW::new(store, cfg);
    let mut timed = 0.0;
    // Seconds in the forward pass + loss, the backward pass, and the optimiser.
    let mut phases = [0.0f64; 3];
    for i in 0..warmup + steps {
        let t0 = Instant::now();
        let ctx = StepContext {
            step: i as u64 + 1,
            total_steps: (warmup + steps) as u64,
        };
        let out = recipe.loss(batch, &ctx, rng)?;
        let t1 = Instant::now();
        let grads = out.loss.backward()?;
        let t2 = Instant::now();
        opt.step(store, &grads, 1e-4, i as u64 + 1)?;
        recipe.after_step(store, &ctx, &out)?;
        if i >= warmup {
            timed += t0.elapsed().as_secs_f64();
            phases[0] += (t1 - t0).as_secs_f64();
            phases[1] += (t2 - t1).as_secs_f64();
            phases[2] += t2.elapsed().as_secs_f64();
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
        "{{\"impl\": \"tessera\", \"threads\": {threads}, \"tokens\": {tokens}, \"samples_per_s\": {:.3}, \"step_ms\": {:.1}, \"forward_ms\": {:.1}, \"backward_ms\": {:.1}, \"optimiser_ms\": {:.1}, \"peak_rss_mib\": {}, \"params_encoder\": {}}}",
        (bs * steps) as f64 / timed,
        1000.0 * timed / steps.max(1) as f64,
        1000.0 * phases[0] / steps.max(1) as f64,
        1000.0 * phases[1] / steps.max(1) as f64,
        1000.0 * phases[2] / steps.max(1) as f64,
        peak_rss_mib().map_or("null".to_string(), |m| format!("{m:.1}")),
        store.count(tessera_recipes::ENCODER_PREFIX)
    ))
}

/// The process's peak resident memory in MiB (`VmHWM` of `/proc/self/status`; `None`
/// where that file does not exist).
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
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

/// The shard-wise data order ([`DataOrder::Shards`]): in epoch `e`, the shards are permuted
/// (seed, `e`) and part `p` of every batch takes the shards at positions `p, p + M, …` of
/// that permutation, reading them one after another, each shard's samples in their own
/// seeded order. A part's stream moves to its next epoch when it has read its shards, so
/// the processes computing different parts never read the same shard in an epoch. A
/// function of the seed, the grouping and the number of parts `M` only.
#[derive(Debug, Clone)]
pub struct ShardOrder {
    seed: u64,
    groups: Vec<Vec<usize>>,
    parts: usize,
    /// Per part: the epoch in its cache, where that epoch starts in the part's stream, and
    /// the epoch's samples.
    cached: Vec<Option<(usize, usize, Vec<usize>)>>,
}

impl ShardOrder {
    /// `shard_of[i]` is the shard of sample `i` (any ids; shards in order of first
    /// appearance). Needs at least one shard per part.
    pub fn new(seed: u64, shard_of: &[usize], parts: usize) -> Result<Self> {
        let mut ids: std::collections::HashMap<usize, usize> = Default::default();
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for (i, &s) in shard_of.iter().enumerate() {
            let g = *ids.entry(s).or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            });
            groups[g].push(i);
        }
        if groups.len() < parts.max(1) {
            return Err(TrainError::Config(format!(
                "data_order = \"shards\" deals whole shards to the {parts} parts of each batch, \
                 but the data has {} shard(s): write more, smaller shards (shard --shard-rows)",
                groups.len()
            )));
        }
        Ok(Self {
            seed,
            groups,
            parts: parts.max(1),
            cached: vec![None; parts.max(1)],
        })
    }

    fn stream(&self, epoch: usize, part: usize) -> Vec<usize> {
        let root = Rng::new(self.seed);
        let perm = root
            .fork(&format!("shards-epoch-{epoch}"))
            .permutation(self.groups.len());
        perm.iter()
            .skip(part)
            .step_by(self.parts)
            .flat_map(|&g| {
                let members = &self.groups[g];
                root.fork(&format!("shard-{g}-epoch-{epoch}"))
                    .permutation(members.len())
                    .into_iter()
                    .map(|i| members[i])
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// The sample at position `pos` of part `part`'s stream.
    pub fn sample(&mut self, part: usize, pos: usize) -> usize {
        let part = part % self.parts;
        let (mut epoch, mut start) = match &self.cached[part] {
            Some((e, s, _)) if *s <= pos => (*e, *s),
            _ => (0, 0),
        };
        loop {
            let stream = match self.cached[part].take() {
                Some((e, s, v)) if e == epoch && s == start => v,
                _ => self.stream(epoch, part),
            };
            if pos < start + stream.len() {
                let i = stream[pos - start];
                self.cached[part] = Some((epoch, start, stream));
                return i;
            }
            start += stream.len();
            epoch += 1;
        }
    }
}
