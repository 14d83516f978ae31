//! The audio modality through the conformance suite.

use tessera_app::RunCard;
use tessera_audio::AudioFrontend;
use tessera_conformance::*;

fn card() -> RunCard<AudioFrontend> {
    let c = tessera_cli::CommonArgs {
        preset: Some("audio-nano-demo".into()),
        ..Default::default()
    };
    tessera_audio_cli::app().resolve(&c).unwrap()
}

#[test]
fn audio_readers() {
    readers(&modality(&card()));
}

#[test]
fn audio_corruption() {
    corruption(&modality(&card()), 40);
}

#[test]
fn audio_views() {
    views(&modality(&card()));
}

#[test]
fn audio_encoder_invariances() {
    encoder_invariances(&modality(&card()));
}

#[test]
fn audio_card_round_trip() {
    card_round_trip(&card());
}

#[test]
fn audio_cli() {
    cli(&tessera_audio_cli::app(), "audio-nano-demo");
}
