//! `tessera-medical`: the shared subcommands over NIfTI, NRRD, MetaImage and DICOM volumes, plus
//! `segment` and `convert`.

use clap::{Parser, Subcommand};
use std::process::ExitCode;
use tessera_app::Shared;
use tessera_medical_cli::{app, convert, segment};

#[derive(Parser)]
#[command(
    name = "tessera-medical",
    version,
    about = "Self-supervised 3-D encoders for NIfTI, NRRD, MetaImage and DICOM volumes: pretrain on your own scans, embed, segment"
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
    /// Train a segmentation head on labelled cases (encoder frozen or fine-tuned) and report
    /// Dice and HD95 on the test split; or, with --apply, write label maps for new volumes.
    #[command(
        after_help = "Example:\n  tessera-medical segment --checkpoint runs/mae --data split.csv --train-split labelled --out runs/seg-mae\n  tessera-medical segment --random-init --data split.csv --train-split labelled --out runs/seg-random\n  tessera-medical segment --checkpoint runs/seg-mae --apply --data new_scans/ --out predictions/"
    )]
    Segment(segment::SegmentArgs),
    /// Convert a volume (NIfTI, NRRD, MetaImage, DICOM series) to NIfTI-1 with its RAS+ affine
    /// as the sform.
    #[command(
        after_help = "Examples:\n  tessera-medical convert --data scan.nrrd --out scan.nii.gz\n  tessera-medical convert --data scan.mhd --out scan.nii\n  tessera-medical convert --data dicom/CT_series/ --out ct.nii.gz\n  tessera-medical convert --data dicom/study#series=2 --out t1.nii.gz"
    )]
    Convert(convert::ConvertArgs),
}

fn main() -> ExitCode {
    let app = app();
    let cli: Cli = app.parse();
    tessera_cli::report(match cli.cmd {
        Cmd::Shared(s) => app.run(s),
        Cmd::Segment(args) => segment::run(&app, &args),
        Cmd::Convert(args) => convert::run(&args),
    })
}
