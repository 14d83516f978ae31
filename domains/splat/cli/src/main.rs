//! `tessera-splat`: the shared subcommands over Gaussian splats and point sets, plus
//! `convert` and `segment`.

use clap::{Parser, Subcommand};
use std::process::ExitCode;
use tessera_app::Shared;
use tessera_splat_cli::{app, convert, segment};

#[derive(Parser)]
#[command(
    name = "tessera-splat",
    version,
    about = "Self-supervised encoders for 3-D Gaussian splats and point sets: pretrain on your own captures, embed, probe, export"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

// Parsed once per process: the size of the shared variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Cmd {
    #[command(flatten)]
    Shared(Box<Shared>),
    /// Convert splats and point sets between formats (PLY binary/ASCII, .splat, .spz,
    /// .npy, .xyz), by the output's extension.
    #[command(
        after_help = "Examples:\n  tessera-splat convert --data scene.spz --out scene.ply\n  tessera-splat convert --data scene.ply --out scene.splat\n  tessera-splat convert --data clouds.npy#index=3 --out cloud.ply --ascii"
    )]
    Convert(convert::ConvertArgs),
    /// Label every Gaussian of a scene from frozen group features: a linear probe on
    /// per-Gaussian labels, scored by spatial cross-validation (mIoU), then applied to the
    /// whole scene.
    #[command(
        after_help = "Examples:\n  tessera-splat segment --checkpoint runs/scene --data scene.ply --labels labels.csv --ignore 0 --out results/\n  tessera-splat segment --random-init --data scene.ply --label-property label --out results/\n  tessera-splat segment --baseline attributes --data scene.ply --labels labels.csv --out results/"
    )]
    Segment(segment::SegmentArgs),
}

fn main() -> ExitCode {
    let app = app();
    let cli: Cli = app.parse();
    tessera_cli::report(match cli.cmd {
        Cmd::Shared(s) => app.run(*s),
        Cmd::Convert(args) => convert::run(&args),
        Cmd::Segment(args) => segment::run(&app, &args),
    })
}
