//! The generated toy modality passes the whole conformance suite: a domain is new files
//! (its `Modality` impl, a preset) plus one registration line (`App::<Toy>::new`).

use tessera_app::{App, AppInfo, RunCard};
use tessera_cli::Presets;
use tessera_conformance::toy::{Toy, PRESET};
use tessera_conformance::*;

fn app() -> App<Toy> {
    App::new(AppInfo {
        bin: "tessera-toy",
        presets: Presets(&[("toy-nano", PRESET)]),
        default_preset: "toy-nano",
        demo_preset: "toy-nano",
        example_data: "toy/",
    })
}

fn card() -> RunCard<Toy> {
    app().resolve(&Default::default()).unwrap()
}

#[test]
fn toy_readers() {
    readers(&modality(&card()));
}

#[test]
fn toy_corruption() {
    corruption(&modality(&card()), 40);
}

#[test]
fn toy_views() {
    views(&modality(&card()));
}

#[test]
fn toy_encoder_invariances() {
    encoder_invariances(&modality(&card()));
}

#[test]
fn toy_card_round_trip() {
    card_round_trip(&card());
}

#[test]
fn toy_cli() {
    cli(&app(), "toy-nano");
}
