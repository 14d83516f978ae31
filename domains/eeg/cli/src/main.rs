//! `tessera-eeg`: the shared subcommands over EDF/BDF recordings, plus `epochs`.

use clap::{Parser, Subcommand};
use std::process::ExitCode;
use tessera_app::Shared;
use tessera_eeg_cli::{app, epochs};

#[derive(Parser)]
#[command(
    name = "tessera-eeg",
    version,
    about = "Self-supervised EEG encoders for any montage: pretrain on your own EDF/BDF files, embed, probe, export"
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
    /// Cut recordings into labelled windows (around annotations, or fixed windows) and write
    /// them as a manifest of `file#t=start,end` rows that every other subcommand reads.
    #[command(
        after_help = "Examples:\n  tessera-eeg epochs --data eegmat/labels.csv --label-column condition --window 4 --split train --out epochs.csv\n  tessera-eeg epochs --data eegmat_s20_26/labels.csv --label-column condition --window 4 --split test --append --out epochs.csv\n  tessera-eeg epochs --data S001R04.edf --events T1=left_fist,T2=right_fist --window 4 --out mi.csv"
    )]
    Epochs(epochs::EpochsArgs),
}

fn main() -> ExitCode {
    let app = app();
    let cli: Cli = app.parse();
    tessera_cli::report(match cli.cmd {
        Cmd::Shared(s) => app.run(s),
        Cmd::Epochs(args) => epochs::run(&args),
    })
}
