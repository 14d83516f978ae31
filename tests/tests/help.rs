//! Every shared subcommand has the same flags and help in every domain CLI: only the
//! binary name and the example data and presets differ.

use clap::{Parser, Subcommand};
use tessera_app::Shared;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    #[command(flatten)]
    Shared(Shared),
}

/// Long help of each subcommand with the domain's own words replaced by placeholders.
fn helps(mut cmd: clap::Command, words: &[(&str, &str)]) -> Vec<(String, String)> {
    cmd.build();
    cmd.get_subcommands_mut()
        .filter(|s| s.get_name() != "help")
        .map(|s| {
            let mut text = s.render_long_help().to_string();
            for (w, p) in words {
                text = text.replace(w, p);
            }
            (s.get_name().to_string(), text)
        })
        .collect()
}

#[test]
fn shared_subcommands_read_the_same_in_every_cli() {
    let audio = helps(
        tessera_audio_cli::app().command::<Cli>(),
        &[
            ("tessera-audio", "BIN"),
            ("audio-tiny-hubert", "PRESET"),
            ("audio-nano-demo", "DEMO"),
            ("fsdd/labels.csv", "DATA"),
        ],
    );
    let medical = helps(
        tessera_medical_cli::app().command::<Cli>(),
        &[
            ("tessera-medical", "BIN"),
            ("medical-micro-mae", "PRESET"),
            ("medical-nano-demo", "DEMO"),
            ("msd_hippocampus/images", "DATA"),
        ],
    );
    let eeg = helps(
        tessera_eeg_cli::app().command::<Cli>(),
        &[
            ("tessera-eeg", "BIN"),
            ("eeg-tiny-mae", "PRESET"),
            ("eeg-nano-demo", "DEMO"),
            ("epochs.csv", "DATA"),
        ],
    );
    let eo = helps(
        tessera_eo_cli::app().command::<Cli>(),
        &[
            ("tessera-eo", "BIN"),
            ("eo-tiny-mae", "PRESET"),
            ("eo-nano-demo", "DEMO"),
            ("labels.csv", "DATA"),
        ],
    );
    let doc = helps(
        tessera_doc_cli::app().command::<Cli>(),
        &[
            ("tessera-doc", "BIN"),
            ("doc-tiny-mae", "PRESET"),
            ("doc-nano-demo", "DEMO"),
            ("labels.csv", "DATA"),
        ],
    );
    let splat = helps(
        tessera_splat_cli::app().command::<Cli>(),
        &[
            ("tessera-splat", "BIN"),
            ("splat-tiny-pointmae", "PRESET"),
            ("splat-nano-demo", "DEMO"),
            ("labels.csv", "DATA"),
        ],
    );
    assert_eq!(
        audio.len(),
        12,
        "{:?}",
        audio.iter().map(|a| &a.0).collect::<Vec<_>>()
    );
    for (cli, other) in [
        ("medical", &medical),
        ("EEG", &eeg),
        ("EO", &eo),
        ("document", &doc),
        ("splat", &splat),
    ] {
        assert_eq!(other.len(), audio.len(), "{cli}");
        for ((name, a), (_, o)) in audio.iter().zip(other.iter()) {
            assert_eq!(
                a, o,
                "`{name} --help` differs between the audio and {cli} CLIs"
            );
        }
    }
    for (name, a) in &audio {
        assert!(a.contains("Example:") && a.contains("BIN"), "{name}: {a}");
        if name == "plot" {
            // Reads a run or results folder only.
            assert!(a.contains("--run") && a.contains("--out"), "{a}");
            continue;
        }
        for flag in [
            "--data",
            "--out",
            "--preset",
            "--config",
            "--seed",
            "--threads",
            "--strict",
        ] {
            assert!(a.contains(flag), "{name} lacks {flag}");
        }
    }
}
