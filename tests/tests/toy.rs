//! The generated toy modality passes the whole conformance suite: a domain is new files
//! (its `Modality` impl, a preset) plus one registration line (`App::<Toy>::new`).

use tessera_app::{App, AppInfo};
use tessera_cli::Presets;
use tessera_conformance::toy::{Toy, PRESET, RECIPE_PRESETS};

const PRESETS: &[(&str, &str)] = &[
    ("toy-nano", PRESET),
    RECIPE_PRESETS[0],
    RECIPE_PRESETS[1],
    RECIPE_PRESETS[2],
    RECIPE_PRESETS[3],
    RECIPE_PRESETS[4],
];

fn app() -> App<Toy> {
    App::new(AppInfo {
        bin: "tessera-toy",
        presets: Presets(PRESETS),
        default_preset: "toy-nano",
        demo_preset: "toy-nano",
        example_data: "toy/",
    })
}

tessera_conformance::conformance_suite!(toy, super::app(), "toy-nano");

/// Every recipe runs every shared subcommand (pretrain, resume, probe, export with ONNX
/// token and grid parity, ...) on the toy modality; the teacher is not exported.
#[test]
fn every_recipe_runs_every_subcommand() {
    for (name, _) in RECIPE_PRESETS {
        tessera_conformance::cli(&app(), name);
    }
}
