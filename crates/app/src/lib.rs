//! The application library behind every domain CLI: each shared subcommand (pretrain,
//! embed, probe, stats, inspect, export, bench-step, bench-infer, demo) written once over
//! the [`Modality`] trait. A domain binary is a short `main` that names its modality and
//! presets and adds its own subcommands:
//!
//! ```ignore
//! #[derive(clap::Parser)]
//! struct Cli { #[command(subcommand)] cmd: Cmd }
//! #[derive(clap::Subcommand)]
//! enum Cmd { #[command(flatten)] Shared(tessera_app::Shared) }
//! fn main() -> std::process::ExitCode {
//!     let app = tessera_app::App::<MyFrontend>::new(INFO);
//!     let cli: Cli = app.parse();
//!     tessera_cli::report(match cli.cmd { Cmd::Shared(s) => app.run(s) })
//! }
//! ```

pub mod cache;
pub mod card;
mod commands;
mod deploy;
pub mod finetune;
pub use finetune::{finetune_config, FinetuneConfig};
pub mod source;

pub use card::{CardCore, RunCard};
pub use commands::{
    embed_samples, encoder_for, file_safe, run_name, save_rows, write_embeddings, RunEncoder,
    Target,
};
pub use deploy::parity;

use clap::{CommandFactory, FromArgMatches, Subcommand};
use std::marker::PhantomData;
use std::path::PathBuf;
use tessera_cli::{CommonArgs, Presets};
use tessera_tokens::Modality;

/// What a domain binary tells the application library.
pub struct AppInfo {
    /// The binary's name (`tessera-audio`), used in help examples.
    pub bin: &'static str,
    /// Embedded model cards (`--preset NAME`).
    pub presets: Presets,
    /// The preset used when `--preset` is not given.
    pub default_preset: &'static str,
    /// The small preset `demo` trains.
    pub demo_preset: &'static str,
    /// A data argument for help examples (`fsdd/labels.csv`).
    pub example_data: &'static str,
}

/// The application for modality `M`.
pub struct App<M: Modality> {
    pub info: AppInfo,
    _m: PhantomData<fn() -> M>,
}

/// The subcommands every domain CLI has, with the same flags everywhere.
#[derive(Debug, Subcommand)]
pub enum Shared {
    /// Pretrain an encoder on unlabelled files (test-split rows of a manifest are left out).
    Pretrain {
        #[command(flatten)]
        common: CommonArgs,
        /// Continue the run in --out from its latest checkpoint (its saved card is used;
        /// --steps extends the run, --data replaces the recorded data).
        #[arg(long)]
        resume: bool,
        /// Stop after this many minutes (a checkpoint is written); the schedule is unchanged.
        #[arg(long)]
        minutes: Option<f64>,
    },
    /// Write embeddings (CLS and mean patch, concatenated) of every file as embeddings.npy + files.txt.
    Embed {
        #[command(flatten)]
        common: CommonArgs,
        /// Use a randomly initialised encoder from --preset/--seed instead of a checkpoint.
        #[arg(long)]
        random_init: bool,
        /// Run an exported model folder (from `export`) with ONNX Runtime instead of candle.
        #[arg(long, value_name = "DIR")]
        onnx: Option<PathBuf>,
        /// With --window: one row per recording, the mean of its windows' embeddings
        /// (default: one row per window, its start and end in windows.csv).
        #[arg(long, requires = "window")]
        pool_windows: bool,
        /// Write the rows in parts of this many input files (or windows), each in its own
        /// folder `part-NNNNNN/` written atomically; a rerun skips the parts already there,
        /// and processes started together by `mpirun -np W` take every W-th part.
        #[arg(long, value_name = "N")]
        shard_rows: Option<usize>,
    },
    /// Linear and kNN probes on frozen features; writes results.csv, results.parquet, results.md.
    Probe {
        #[command(flatten)]
        common: CommonArgs,
        /// Randomly initialised encoder (from --preset and --seed) instead of a checkpoint.
        #[arg(long)]
        random_init: bool,
        /// Features without a network instead of an encoder (the modality's baselines).
        #[arg(long, value_name = "NAME")]
        baseline: Option<String>,
        /// Name of this run in the results table (default: the checkpoint folder name).
        #[arg(long)]
        name: Option<String>,
        /// Task name in the results table (default: the label column).
        #[arg(long)]
        task: Option<String>,
        /// Labels are `;`-separated sets (`a;c`): one-vs-rest probe, micro/macro mAP, AUROC.
        #[arg(long, conflicts_with_all = ["few_shot", "regression"])]
        multi_label: bool,
        /// Few-shot: K labelled training samples per class, repeated seeded draws (mean ± sd).
        #[arg(long, value_name = "K", conflicts_with = "regression")]
        few_shot: Option<usize>,
        /// Labels are numbers: ridge regression, R² and MAE.
        #[arg(long)]
        regression: bool,
    },
    /// Fine-tune an encoder (a run's, or random with --random-init) with a linear classifier on labelled rows; scores the test rows (results.csv, results.md).
    Finetune {
        #[command(flatten)]
        common: CommonArgs,
        /// Randomly initialised encoder (from --preset and --seed) instead of a checkpoint.
        #[arg(long)]
        random_init: bool,
        /// Train on K labelled rows per class (a seeded draw from the training rows).
        #[arg(long, value_name = "K")]
        shots: Option<usize>,
        /// Name of this run in the results table (default: the checkpoint folder name).
        #[arg(long)]
        name: Option<String>,
        /// Task name in the results table (default: the label column).
        #[arg(long)]
        task: Option<String>,
        /// Stop after this many minutes; the schedule is unchanged.
        #[arg(long)]
        minutes: Option<f64>,
    },
    /// Per-file table (files.csv) and the normalisation statistics pretraining would fit (stats.toml, a --config fragment).
    Stats {
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Check whole files and print their format, sizes and token grid; exits non-zero if any file is bad.
    Inspect {
        /// Files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Export a run's encoder to ONNX (model.onnx, model_grid.onnx when the modality has a grid front) with its model card, checked against candle.
    Export {
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Benchmark one training step on random samples of the card's size (JSON line with samples/s).
    BenchStep {
        #[command(flatten)]
        common: CommonArgs,
        /// Untimed steps first.
        #[arg(long, default_value_t = 2)]
        warmup: usize,
        /// Timed steps.
        #[arg(long, default_value_t = 10)]
        timed_steps: usize,
    },
    /// Benchmark encoder inference: candle against ONNX Runtime on the same batches (JSON lines).
    BenchInfer {
        #[command(flatten)]
        common: CommonArgs,
        /// Exported model folder.
        #[arg(long, value_name = "DIR")]
        onnx: PathBuf,
        /// Batch sizes to time.
        #[arg(long, value_delimiter = ',', default_value = "1,32")]
        batches: Vec<usize>,
        /// Timed repetitions per batch size.
        #[arg(long, default_value_t = 10)]
        reps: usize,
    },
    /// PNG plots: a run's loss and metric curves (from metrics.jsonl), or the comparison charts of a probe results folder.
    Plot {
        /// A run folder (pretrain or segment) or a probe --out folder.
        #[arg(long, value_name = "DIR")]
        run: PathBuf,
        /// Where to write the PNG files (default: the folder itself).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Packs files into tar shards (WebDataset convention: `KEY.EXT` holds a file's bytes,
    /// `KEY.json` its label, split and source path), which every command reads back as
    /// --data (one shard or a folder of them) in the same order; a rerun keeps the shards
    /// already written.
    Shard {
        #[command(flatten)]
        common: CommonArgs,
        /// Samples per shard.
        #[arg(long, value_name = "N", default_value_t = 1000)]
        shard_rows: usize,
    },
    /// The quick start: generate a small labelled dataset (or use --data), pretrain, probe against random init and the baselines.
    Demo {
        #[command(flatten)]
        common: CommonArgs,
        /// Only write the labelled demo dataset to --out/data and print its manifest's path.
        #[arg(long)]
        data_only: bool,
    },
}

/// Help examples per shared subcommand; `{bin}`, `{preset}`, `{demo}` and `{data}` are
/// filled in per domain.
const EXAMPLES: &[(&str, &str)] = &[
    ("pretrain", "{bin} pretrain --data {data} --preset {preset} --out runs/mae\n  {bin} pretrain --out runs/mae --resume --steps 3000   # continue, or extend the schedule"),
    ("embed", "{bin} embed --checkpoint runs/mae --data my_files/ --out emb/\n  {bin} embed --onnx exports/mae --data my_files/ --out emb-onnx/\n  {bin} embed --checkpoint runs/mae --data shards/ --shard-rows 10000 --out emb/   # resumable parts"),
    ("shard", "{bin} shard --data {data} --shard-rows 1000 --out shards/\n  {bin} pretrain --data shards/ --preset {preset} --out runs/mae"),
    ("probe", "{bin} probe --checkpoint runs/mae --data {data} --out results/\n  {bin} probe --random-init --preset {preset} --data {data} --out results/"),
    ("finetune", "{bin} finetune --checkpoint runs/mae --data {data} --out results/ft\n  {bin} finetune --checkpoint runs/mae --data {data} --shots 10 --seed 1 --out results/ft10"),
    ("stats", "{bin} stats --data my_files/ --preset {preset} --out stats/\n  {bin} pretrain --data my_files/ --config stats/stats.toml --out runs/mine"),
    ("inspect", "{bin} inspect file1 file2 --preset {preset}"),
    ("export", "{bin} export --checkpoint runs/mae --out exports/mae"),
    ("bench-step", "{bin} bench-step --preset {preset} --batch-size 8 --threads 2"),
    ("bench-infer", "{bin} bench-infer --checkpoint runs/mae --onnx exports/mae --batches 1,32 --threads 2"),
    ("demo", "{bin} demo --out runs/demo   # preset {demo}"),
    ("plot", "{bin} plot --run runs/mae        # runs/mae/training.png\n  {bin} plot --run results/          # comparison charts of every run probed into results/"),
];

impl<M: Modality> App<M> {
    pub fn new(info: AppInfo) -> Self {
        Self {
            info,
            _m: PhantomData,
        }
    }

    /// Parses the command line of a domain CLI whose subcommands include [`Shared`],
    /// adding each shared subcommand's examples.
    pub fn parse<C: CommandFactory + FromArgMatches>(&self) -> C {
        let mut cmd = self.command::<C>();
        let matches = cmd.get_matches_mut();
        C::from_arg_matches(&matches).unwrap_or_else(|e| e.format(&mut cmd).exit())
    }

    /// The clap command with the shared subcommands' examples filled in for this domain.
    pub fn command<C: CommandFactory>(&self) -> clap::Command {
        let mut cmd = C::command();
        for (name, text) in EXAMPLES {
            let text = text
                .replace("{bin}", self.info.bin)
                .replace("{preset}", self.info.default_preset)
                .replace("{demo}", self.info.demo_preset)
                .replace("{data}", self.info.example_data);
            if cmd.find_subcommand(name).is_some() {
                cmd = cmd.mut_subcommand(name, |s| s.after_help(format!("Example:\n  {text}")));
            }
        }
        cmd
    }

    /// The card of `--preset` (or the default) with `--config` and flags applied.
    pub fn resolve(&self, common: &CommonArgs) -> anyhow::Result<RunCard<M>> {
        RunCard::resolve(&self.info.presets, self.info.default_preset, common)
    }

    /// Runs a shared subcommand.
    pub fn run(&self, cmd: Shared) -> anyhow::Result<()> {
        let divides = matches!(
            cmd,
            Shared::Pretrain { .. }
                | Shared::Embed {
                    shard_rows: Some(_),
                    ..
                }
        );
        if let Some(n) = tessera_train::dist::launched_size().filter(|&n| n > 1 && !divides) {
            anyhow::bail!(
                "launched by mpirun with {n} processes, but only `pretrain` and `embed --shard-rows` \
                 divide their work between processes; run this command once, without mpirun"
            );
        }
        match cmd {
            Shared::Pretrain {
                common,
                resume,
                minutes,
            } => self.pretrain(&common, resume, minutes),
            Shared::Embed {
                common,
                random_init,
                onnx: Some(dir),
                pool_windows,
                shard_rows,
            } => {
                if random_init {
                    anyhow::bail!("--onnx runs an exported model; --random-init does not apply");
                }
                self.embed_onnx(&common, &dir, pool_windows, shard_rows)
            }
            Shared::Embed {
                common,
                random_init,
                onnx: None,
                pool_windows,
                shard_rows,
            } => self.embed(&common, random_init, pool_windows, shard_rows),
            Shared::Finetune {
                common,
                random_init,
                shots,
                name,
                task,
                minutes,
            } => self
                .finetune(finetune::FinetuneArgs {
                    random_init,
                    shots,
                    name,
                    task,
                    minutes,
                    common: &common,
                })
                .map(|_| ()),
            Shared::Probe {
                common,
                random_init,
                baseline,
                name,
                task,
                multi_label,
                few_shot,
                regression,
            } => {
                let target = match (multi_label, few_shot, regression) {
                    (true, _, _) => Target::MultiLabel,
                    (_, Some(0), _) => anyhow::bail!("--few-shot needs K >= 1"),
                    (_, Some(k), _) => Target::FewShot(k),
                    (_, _, true) => Target::Regression,
                    _ => Target::Classes,
                };
                self.probe(
                    &common,
                    random_init,
                    baseline.as_deref(),
                    name,
                    task,
                    target,
                )
                .map(|_| ())
            }
            Shared::Plot { run, out } => commands::plot(&run, out.as_deref()),
            Shared::Stats { common } => self.stats(&common),
            Shared::Inspect { files, common } => self.inspect(&files, &common),
            Shared::Export { common } => self.export(&common),
            Shared::BenchStep {
                common,
                warmup,
                timed_steps,
            } => self.bench_step(&common, warmup, timed_steps),
            Shared::BenchInfer {
                common,
                onnx,
                batches,
                reps,
            } => self.bench_infer(&common, &onnx, &batches, reps),
            Shared::Demo { common, data_only } => self.demo(&common, data_only),
            Shared::Shard { common, shard_rows } => self.shard(&common, shard_rows),
        }
    }
}
