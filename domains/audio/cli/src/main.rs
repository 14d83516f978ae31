//! `tessera-audio`: the shared subcommands over the audio modality (WAV → log-mel patches).

use clap::{Parser, Subcommand};
use std::process::ExitCode;
use tessera_app::Shared;

#[derive(Parser)]
#[command(
    name = "tessera-audio",
    version,
    about = "Self-supervised audio encoders: pretrain on your own WAV files, embed, probe, export"
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
}

fn main() -> ExitCode {
    let app = tessera_audio_cli::app();
    let cli: Cli = app.parse();
    tessera_cli::report(match cli.cmd {
        Cmd::Shared(s) => app.run(s),
    })
}
