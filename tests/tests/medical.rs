//! The medical modality through the conformance suite.

use tessera_app::RunCard;
use tessera_conformance::*;
use tessera_medical::MedicalFrontend;

fn card() -> RunCard<MedicalFrontend> {
    let c = tessera_cli::CommonArgs {
        preset: Some("medical-nano-demo".into()),
        ..Default::default()
    };
    tessera_medical_cli::app().resolve(&c).unwrap()
}

#[test]
fn medical_readers() {
    readers(&modality(&card()));
}

#[test]
fn medical_corruption() {
    corruption(&modality(&card()), 40);
}

#[test]
fn medical_views() {
    views(&modality(&card()));
}

#[test]
fn medical_encoder_invariances() {
    encoder_invariances(&modality(&card()));
}

#[test]
fn medical_card_round_trip() {
    card_round_trip(&card());
}

#[test]
fn medical_cli() {
    cli(&tessera_medical_cli::app(), "medical-nano-demo");
}
