//! The medical application: the shared subcommands over [`MedicalFrontend`] and the
//! medical task head (`segment`), a library so that tests and other tools can call it.

pub mod convert;
pub mod segment;

use tessera_app::{App, AppInfo};
use tessera_cli::Presets;
use tessera_medical::MedicalFrontend;

/// Named model cards compiled into the binary (`--preset NAME`).
pub const PRESETS: Presets = Presets(&[
    (
        "medical-micro-mae",
        include_str!("../../../../models/medical-micro-mae.toml"),
    ),
    (
        "medical-micro-fusion",
        include_str!("../../../../models/medical-micro-fusion.toml"),
    ),
    (
        "medical-micro-mae-bench",
        include_str!("../../../../models/medical-micro-mae-bench.toml"),
    ),
    (
        "medical-nano-demo",
        include_str!("../../../../models/medical-nano-demo.toml"),
    ),
    (
        "medical-segment",
        include_str!("../../../../models/medical-segment.toml"),
    ),
]);

/// The `tessera-medical` application.
pub fn app() -> App<MedicalFrontend> {
    App::new(AppInfo {
        bin: "tessera-medical",
        presets: PRESETS,
        default_preset: "medical-micro-mae",
        demo_preset: "medical-nano-demo",
        example_data: "msd_hippocampus/images",
    })
}
