//! The generated toy modality passes the whole conformance suite: a domain is new files
//! (its `Modality` impl, a preset) plus one registration line (`App::<Toy>::new`).

use tessera_app::{App, AppInfo};
use tessera_cli::Presets;
use tessera_conformance::toy::{Toy, PRESET};

fn app() -> App<Toy> {
    App::new(AppInfo {
        bin: "tessera-toy",
        presets: Presets(&[("toy-nano", PRESET)]),
        default_preset: "toy-nano",
        demo_preset: "toy-nano",
        example_data: "toy/",
    })
}

tessera_conformance::conformance_suite!(toy, super::app(), "toy-nano");
