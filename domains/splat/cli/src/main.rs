//! `tessera-splat`: the shared subcommands over Gaussian splats and point sets, plus
//! `convert`.

use clap::{Parser, Subcommand};
use std::process::ExitCode;
use tessera_app::Shared;
use tessera_splat_cli::{app, convert};

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
}

fn main() -> ExitCode {
    let app = app();
    let cli: Cli = app.parse();
    tessera_cli::report(match cli.cmd {
        Cmd::Shared(s) => app.run(*s),
        Cmd::Convert(args) => convert::run(&args),
    })
}
