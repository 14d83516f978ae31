//! `tessera-doc`: the shared subcommands over document pages, plus `render` and `boxes`.

use clap::{Parser, Subcommand};
use std::process::ExitCode;
use tessera_app::Shared;
use tessera_doc_cli::{app, boxes, render};

#[derive(Parser)]
#[command(
    name = "tessera-doc",
    version,
    about = "Self-supervised encoders for document pages at their physical size: pretrain on your own scans and PDFs, embed, probe, export"
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
    /// Render the pages of PDFs (and split multi-page TIFFs) into PNG files at a chosen
    /// resolution, with a manifest every other subcommand reads.
    #[command(
        after_help = "Examples:\n  tessera-doc render --data paper.pdf --out pages/\n  tessera-doc render --data manuals/ --dpi 100 --max-pages 20 --out pages/"
    )]
    Render(render::RenderArgs),
    /// Probe frozen features below the page level: labelled boxes (words, lines, regions)
    /// pool the tokens they cover (`--task boxes`), or every patch takes the label of the
    /// box holding it (`--task patches`, layout segmentation scored by mIoU).
    #[command(
        after_help = "Examples:\n  tessera-doc boxes --checkpoint runs/doc --boxes words.csv --out results/\n  tessera-doc boxes --random-init --boxes words.csv --out results/\n  tessera-doc boxes --baseline geometry --boxes words.csv --out results/\n  tessera-doc boxes --checkpoint runs/doc --boxes regions.csv --task patches --out results/"
    )]
    Boxes(boxes::BoxesArgs),
}

fn main() -> ExitCode {
    let app = app();
    let cli: Cli = app.parse();
    tessera_cli::report(match cli.cmd {
        Cmd::Shared(s) => app.run(s),
        Cmd::Render(args) => render::run(&args),
        Cmd::Boxes(args) => boxes::run(&app, &args),
    })
}
