//! The splat application: the shared subcommands over [`SplatFrontend`] plus `convert` and `segment`, a
//! library so that tests and other tools can run it in-process.

pub mod convert;
pub mod segment;

use tessera_app::{App, AppInfo};
use tessera_cli::Presets;
use tessera_splat::SplatFrontend;

/// Named model cards compiled into the binary (`--preset NAME`).
pub const PRESETS: Presets = Presets(&[
    (
        "splat-tiny-pointmae",
        include_str!("../../../../models/splat-tiny-pointmae.toml"),
    ),
    (
        "splat-nano-demo",
        include_str!("../../../../models/splat-nano-demo.toml"),
    ),
]);

/// The `tessera-splat` application.
pub fn app() -> App<SplatFrontend> {
    App::new(AppInfo {
        bin: "tessera-splat",
        presets: PRESETS,
        default_preset: "splat-tiny-pointmae",
        demo_preset: "splat-nano-demo",
        example_data: "labels.csv",
    })
}
