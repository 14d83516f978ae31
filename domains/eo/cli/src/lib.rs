//! The EO application: the shared subcommands over [`EoFrontend`] and `tile`, a library so
//! that tests and other tools can run it in-process.

pub mod tile;

use tessera_app::{App, AppInfo};
use tessera_cli::Presets;
use tessera_eo::EoFrontend;

/// Named model cards compiled into the binary (`--preset NAME`).
pub const PRESETS: Presets = Presets(&[
    (
        "eo-tiny-mae",
        include_str!("../../../../models/eo-tiny-mae.toml"),
    ),
    (
        "eo-mstar-mae",
        include_str!("../../../../models/eo-mstar-mae.toml"),
    ),
    (
        "eo-nano-demo",
        include_str!("../../../../models/eo-nano-demo.toml"),
    ),
]);

/// The `tessera-eo` application.
pub fn app() -> App<EoFrontend> {
    App::new(AppInfo {
        bin: "tessera-eo",
        presets: PRESETS,
        default_preset: "eo-tiny-mae",
        demo_preset: "eo-nano-demo",
        example_data: "labels.csv",
    })
}
