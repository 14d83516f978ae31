//! The EEG application: the shared subcommands over [`EegFrontend`] and `epochs`, a
//! library so that tests and other tools can run it in-process.

pub mod epochs;

use tessera_app::{App, AppInfo};
use tessera_cli::Presets;
use tessera_eeg::EegFrontend;

/// Named model cards compiled into the binary (`--preset NAME`).
pub const PRESETS: Presets = Presets(&[
    (
        "eeg-tiny-mae",
        include_str!("../../../../models/eeg-tiny-mae.toml"),
    ),
    (
        "eeg-tiny-mae-channels",
        include_str!("../../../../models/eeg-tiny-mae-channels.toml"),
    ),
    (
        "eeg-tiny-mae-spans",
        include_str!("../../../../models/eeg-tiny-mae-spans.toml"),
    ),
    (
        "eeg-nano-demo",
        include_str!("../../../../models/eeg-nano-demo.toml"),
    ),
]);

/// The `tessera-eeg` application.
pub fn app() -> App<EegFrontend> {
    App::new(AppInfo {
        bin: "tessera-eeg",
        presets: PRESETS,
        default_preset: "eeg-tiny-mae",
        demo_preset: "eeg-nano-demo",
        example_data: "epochs.csv",
    })
}
