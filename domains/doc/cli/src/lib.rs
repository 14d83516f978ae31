//! The document application: the shared subcommands over [`DocFrontend`] plus `render` and
//! `boxes`, a
//! library so that tests and other tools can run it in-process.

pub mod boxes;
pub mod render;

use tessera_app::{App, AppInfo};
use tessera_cli::Presets;
use tessera_doc::DocFrontend;

/// Named model cards compiled into the binary (`--preset NAME`).
pub const PRESETS: Presets = Presets(&[
    (
        "doc-tiny-mae",
        include_str!("../../../../models/doc-tiny-mae.toml"),
    ),
    (
        "doc-nano-demo",
        include_str!("../../../../models/doc-nano-demo.toml"),
    ),
]);

/// The `tessera-doc` application.
pub fn app() -> App<DocFrontend> {
    App::new(AppInfo {
        bin: "tessera-doc",
        presets: PRESETS,
        default_preset: "doc-tiny-mae",
        demo_preset: "doc-nano-demo",
        example_data: "labels.csv",
    })
}
