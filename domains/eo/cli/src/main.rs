//! `tessera-eo`: the shared subcommands over GDAL rasters, plus `tile`.

use clap::{Parser, Subcommand};
use std::process::ExitCode;
use tessera_app::Shared;
use tessera_eo_cli::{app, tile};

#[derive(Parser)]
#[command(
    name = "tessera-eo",
    version,
    about = "Self-supervised encoders for any band set and for SAR: pretrain on your own rasters, embed, probe, export"
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
    Shared(Shared),
    /// Cut large scenes into windows (with overlap, leaving out mostly-nodata windows) and
    /// write them as a manifest of `scene#window=x,y,w,h` rows that every other subcommand
    /// reads without loading the scene.
    #[command(
        after_help = "Examples:\n  tessera-eo tile --data S2_scene.tif --size 128 --out tiles.csv\n  tessera-eo tile --data scenes.csv --size 256 --overlap 32 --max-nodata 0.2 --out tiles.csv"
    )]
    Tile(tile::TileArgs),
}

fn main() -> ExitCode {
    let app = app();
    let cli: Cli = app.parse();
    tessera_cli::report(match cli.cmd {
        Cmd::Shared(s) => app.run(s),
        Cmd::Tile(args) => tile::run(&args),
    })
}
