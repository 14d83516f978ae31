//! `tessera-audio`: pretrain, embed, probe, stats, inspect and demo for audio.

mod app;
mod deploy;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use tessera_cli::CommonArgs;

#[derive(Parser)]
#[command(
    name = "tessera-audio",
    version,
    about = "Self-supervised audio encoders: pretrain on your own WAV files, embed, probe"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// Manifest columns and splits.
#[derive(Debug, Clone, Args, Default)]
pub struct LabelArgs {
    /// Manifest column holding the label (default: `label`; in a folder, the parent folder name).
    #[arg(long)]
    pub label_column: Option<String>,
    /// Manifest column holding the split (default: `split` if present).
    #[arg(long)]
    pub split_column: Option<String>,
    /// Split value that marks test rows (never used for pretraining or probe fitting).
    #[arg(long, default_value = "test")]
    pub test_split: String,
}

#[derive(Subcommand)]
enum Cmd {
    /// Pretrain an encoder on unlabelled WAV files (test-split rows of a manifest are left out).
    #[command(
        after_help = "Example:\n  tessera-audio pretrain --data fsdd/labels.csv --split-column official_split --preset audio-tiny-mae --out runs/fsdd-mae\n  tessera-audio pretrain --out runs/fsdd-mae --resume   # continue from the last checkpoint"
    )]
    Pretrain {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        labels: LabelArgs,
        /// Continue the run in --out from its latest checkpoint (its saved config is used).
        #[arg(long)]
        resume: bool,
        /// Stop after this many minutes (a checkpoint is written); the schedule is unchanged.
        #[arg(long)]
        minutes: Option<f64>,
    },
    /// Write embeddings (CLS and mean patch, concatenated) of every file as embeddings.npy + files.txt.
    #[command(
        after_help = "Example:\n  tessera-audio embed --checkpoint runs/fsdd-mae --data fsdd/recordings --out emb/"
    )]
    Embed {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        labels: LabelArgs,
        /// Use a randomly initialised encoder from --preset/--seed instead of a checkpoint.
        #[arg(long)]
        random_init: bool,
        /// Run an exported model folder (from `export`) with ONNX Runtime instead of candle.
        #[arg(long, value_name = "DIR")]
        onnx: Option<PathBuf>,
    },
    /// Linear and kNN probes on frozen features; writes results.csv, results.parquet, results.md.
    #[command(
        after_help = "Example:\n  tessera-audio probe --checkpoint runs/fsdd-mae --data fsdd/labels.csv --label-column digit --split-column official_split --out results/\n  tessera-audio probe --baseline logmel --preset audio-tiny-mae --data fsdd/labels.csv --label-column speaker --split-column official_split --out results/"
    )]
    Probe {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        labels: LabelArgs,
        /// Randomly initialised encoder (from --preset and --seed) instead of a checkpoint.
        #[arg(long)]
        random_init: bool,
        /// Feature baseline instead of an encoder: `logmel` (per-bin mean and std).
        #[arg(long)]
        baseline: Option<String>,
        /// Name of this run in the results table (default: the checkpoint folder name).
        #[arg(long)]
        name: Option<String>,
        /// Task name in the results table (default: the label column).
        #[arg(long)]
        task: Option<String>,
    },
    /// Dataset normalisation statistics of the log-mel values, written as a TOML fragment for --config.
    #[command(
        after_help = "Example:\n  tessera-audio stats --data my_wavs/ --preset audio-tiny-mae --out stats.toml\n  tessera-audio pretrain --data my_wavs/ --config stats.toml --out runs/mine"
    )]
    Stats {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        labels: LabelArgs,
    },
    /// Print a WAV file's format, rate, channels, duration and token grid.
    #[command(
        after_help = "Example:\n  tessera-audio inspect fsdd/recordings/0_george_0.wav --preset audio-tiny-mae"
    )]
    Inspect {
        /// WAV files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Benchmark one MAE training step on random log-mels (JSON line with samples/s).
    #[command(
        after_help = "Example:\n  tessera-audio bench-step --preset audio-tiny-mae --frames 1024 --batch-size 8 --threads 2"
    )]
    BenchStep {
        #[command(flatten)]
        common: CommonArgs,
        /// Spectrogram frames (time) per sample.
        #[arg(long, default_value_t = 1024)]
        frames: usize,
        #[arg(long, default_value_t = 2)]
        warmup: usize,
        /// Timed steps.
        #[arg(long, default_value_t = 10)]
        timed_steps: usize,
    },
    /// Export a run's encoder to ONNX (model.onnx, model_grid.onnx taking the log-mel) with its model card.
    #[command(
        after_help = "Example:\n  tessera-audio export --checkpoint runs/fsdd-mae --out exports/fsdd-mae\n  tessera-audio embed --onnx exports/fsdd-mae --data fsdd/recordings --out emb-onnx/"
    )]
    Export {
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Benchmark encoder inference: candle against ONNX Runtime on the same batches (JSON lines).
    #[command(
        after_help = "Example:\n  tessera-audio bench-infer --checkpoint runs/fsdd-mae --onnx exports/fsdd-mae --batches 1,32 --threads 2"
    )]
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
    /// The quick start: generate a small labelled dataset, pretrain, probe against random init and log-mel.
    #[command(after_help = "Example:\n  tessera-audio demo --out runs/demo")]
    Demo {
        #[command(flatten)]
        common: CommonArgs,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tessera_cli::report(match cli.cmd {
        Cmd::Pretrain {
            common,
            labels,
            resume,
            minutes,
        } => app::pretrain(&common, &labels, resume, minutes),
        Cmd::Embed {
            common,
            labels,
            onnx: Some(dir),
            ..
        } => deploy::embed_onnx(&common, &labels, &dir),
        Cmd::Embed {
            common,
            labels,
            random_init,
            onnx: None,
        } => app::embed(&common, &labels, random_init),
        Cmd::Export { common } => deploy::export(&common),
        Cmd::BenchInfer {
            common,
            onnx,
            batches,
            reps,
        } => deploy::bench_infer(&common, &onnx, &batches, reps),
        Cmd::Probe {
            common,
            labels,
            random_init,
            baseline,
            name,
            task,
        } => app::probe(
            &common,
            &labels,
            random_init,
            baseline.as_deref(),
            name,
            task,
        )
        .map(|_| ()),
        Cmd::Stats { common, labels } => app::stats(&common, &labels),
        Cmd::Inspect { files, common } => app::inspect(&files, &common),
        Cmd::Demo { common } => app::demo(&common),
        Cmd::BenchStep {
            common,
            frames,
            warmup,
            timed_steps,
        } => app::bench_step(&common, frames, warmup, timed_steps),
    })
}
