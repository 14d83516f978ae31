//! `tessera-medical`: pretrain, embed, segment, probe, stats, inspect, export for 3-D volumes.

mod app;
mod segment;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use tessera_cli::CommonArgs;

#[derive(Parser)]
#[command(
    name = "tessera-medical",
    version,
    about = "Self-supervised 3-D encoders for NIfTI volumes: pretrain on your own scans, embed, segment"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// Manifest columns and splits.
#[derive(Debug, Clone, Args, Default)]
pub struct SplitArgs {
    /// Manifest column holding the split (default: `split` if present).
    #[arg(long)]
    pub split_column: Option<String>,
    /// Split value that marks test rows (never used for pretraining or fitting).
    #[arg(long, default_value = "test")]
    pub test_split: String,
}

#[derive(Subcommand)]
enum Cmd {
    /// Pretrain an encoder on unlabelled volumes (3-D MAE or Volume Fusion; test rows are left out).
    #[command(
        after_help = "Example:\n  tessera-medical pretrain --data msd_hippocampus/images --preset medical-micro-mae --out runs/mae\n  tessera-medical pretrain --data split.csv --preset medical-micro-fusion --out runs/vf --minutes 15\n  tessera-medical pretrain --out runs/mae --resume"
    )]
    Pretrain {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        split: SplitArgs,
        /// Continue the run in --out from its latest checkpoint.
        #[arg(long)]
        resume: bool,
        /// Stop after this many minutes (a checkpoint is written); the schedule is unchanged.
        #[arg(long)]
        minutes: Option<f64>,
    },
    /// Embeddings (CLS and mean patch) of each volume's centre crop: embeddings.npy + files.txt.
    #[command(
        after_help = "Example:\n  tessera-medical embed --checkpoint runs/mae --data scans/ --out emb/\n  tessera-medical embed --onnx exports/mae --data scans/ --out emb-onnx/"
    )]
    Embed {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        split: SplitArgs,
        /// Use a randomly initialised encoder from --preset/--seed instead of a checkpoint.
        #[arg(long)]
        random_init: bool,
        /// Run an exported model folder with ONNX Runtime instead of candle.
        #[arg(long, value_name = "DIR")]
        onnx: Option<PathBuf>,
    },
    /// Train a segmentation head on labelled cases (encoder frozen or fine-tuned) and report
    /// Dice and HD95 on the test split; or, with --apply, write label maps for new volumes.
    #[command(
        after_help = "Example:\n  tessera-medical segment --checkpoint runs/mae --data split.csv --train-split labelled --out runs/seg-mae\n  tessera-medical segment --random-init --data split.csv --train-split labelled --out runs/seg-random\n  tessera-medical segment --checkpoint runs/seg-mae --apply --data new_scans/ --out predictions/"
    )]
    Segment {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        split: SplitArgs,
        #[command(flatten)]
        seg: segment::SegmentArgs,
    },
    /// Linear probe and kNN on frozen embeddings, with labels from a manifest column.
    #[command(
        after_help = "Example:\n  tessera-medical probe --checkpoint runs/mae --data cases.csv --label-column site --out results/"
    )]
    Probe {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        split: SplitArgs,
        /// Manifest column with the class label.
        #[arg(long, default_value = "label")]
        label_column: String,
        #[arg(long)]
        random_init: bool,
    },
    /// Dataset summary: dimensions, spacing, datatypes, orientations and intensities per file (CSV), with a suggested target spacing.
    #[command(
        after_help = "Example:\n  tessera-medical stats --data msd_hippocampus/images --out stats/"
    )]
    Stats {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        split: SplitArgs,
    },
    /// Print a NIfTI file's header: dimensions, spacing, datatype, scaling, orientation codes, affine.
    #[command(after_help = "Example:\n  tessera-medical inspect scan.nii.gz")]
    Inspect {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Export a run's encoder to ONNX (model.onnx; model_grid.onnx takes a [B,C,D,H,W] crop) with its model card.
    #[command(
        after_help = "Example:\n  tessera-medical export --checkpoint runs/mae --out exports/mae"
    )]
    Export {
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Benchmark one pretraining step on random crops (JSON line with samples/s).
    #[command(
        after_help = "Example:\n  tessera-medical bench-step --preset medical-micro-mae-bench --batch-size 4 --threads 2"
    )]
    BenchStep {
        #[command(flatten)]
        common: CommonArgs,
        #[arg(long, default_value_t = 2)]
        warmup: usize,
        #[arg(long, default_value_t = 6)]
        timed_steps: usize,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tessera_cli::report(match cli.cmd {
        Cmd::Pretrain {
            common,
            split,
            resume,
            minutes,
        } => app::pretrain(&common, &split, resume, minutes),
        Cmd::Embed {
            common,
            split,
            random_init,
            onnx,
        } => app::embed(&common, &split, random_init, onnx.as_deref()),
        Cmd::Segment { common, split, seg } => segment::run(&common, &split, &seg),
        Cmd::Probe {
            common,
            split,
            label_column,
            random_init,
        } => app::probe(&common, &split, &label_column, random_init),
        Cmd::Stats { common, split } => app::stats(&common, &split),
        Cmd::Inspect { files } => app::inspect(&files),
        Cmd::Export { common } => app::export(&common),
        Cmd::BenchStep {
            common,
            warmup,
            timed_steps,
        } => app::bench_step(&common, warmup, timed_steps),
    })
}
