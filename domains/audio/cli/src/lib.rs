//! The audio application: the shared subcommands over [`AudioFrontend`], a library so that
//! tests and other tools can run it in-process.

use tessera_app::{App, AppInfo};
use tessera_audio::AudioFrontend;
use tessera_cli::Presets;

/// Named model cards compiled into the binary (`--preset NAME`).
pub const PRESETS: Presets = Presets(&[
    (
        "audio-tiny-mae",
        include_str!("../../../../models/audio-tiny-mae.toml"),
    ),
    (
        "audio-tiny-mae-frames",
        include_str!("../../../../models/audio-tiny-mae-frames.toml"),
    ),
    (
        "audio-tiny-dino",
        include_str!("../../../../models/audio-tiny-dino.toml"),
    ),
    (
        "audio-tiny-ijepa",
        include_str!("../../../../models/audio-tiny-ijepa.toml"),
    ),
    (
        "audio-tiny-moco",
        include_str!("../../../../models/audio-tiny-moco.toml"),
    ),
    (
        "audio-tiny-data2vec",
        include_str!("../../../../models/audio-tiny-data2vec.toml"),
    ),
    (
        "audio-tiny-hubert",
        include_str!("../../../../models/audio-tiny-hubert.toml"),
    ),
    (
        "audio-music-mae",
        include_str!("../../../../models/audio-music-mae.toml"),
    ),
    (
        "audio-music-cqt-mae",
        include_str!("../../../../models/audio-music-cqt-mae.toml"),
    ),
    (
        "audio-nano-demo",
        include_str!("../../../../models/audio-nano-demo.toml"),
    ),
]);

/// The `tessera-audio` application.
pub fn app() -> App<AudioFrontend> {
    App::new(AppInfo {
        bin: "tessera-audio",
        presets: PRESETS,
        default_preset: "audio-tiny-hubert",
        demo_preset: "audio-nano-demo",
        example_data: "fsdd/labels.csv",
    })
}
