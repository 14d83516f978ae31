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

/// A bad `[recipe]` in a `--config` file is refused before any data is read, naming the
/// file and the field.
#[test]
fn bad_recipe_configs_name_the_file_and_the_field() {
    use tessera_app::Shared;
    use tessera_tokens::Modality;
    let d = tessera_conformance::tmp("toy-bad-recipe");
    let data = Toy::write_demo_data(&d.join("data"), 1).unwrap();
    let run = |text: &str| {
        let cfg = d.join("bad.toml");
        std::fs::write(&cfg, text).unwrap();
        let common = tessera_cli::CommonArgs {
            data: Some(data.clone()),
            out: Some(d.join("run")),
            preset: Some("toy-nano".into()),
            config: Some(cfg),
            ..Default::default()
        };
        let e = app()
            .run(Shared::Pretrain {
                common,
                resume: false,
                minutes: None,
            })
            .unwrap_err();
        format!("{e:#}")
    };
    let e = run("[recipe]\nkind = \"dinoo\"\n");
    assert!(e.contains("bad.toml") && e.contains("dinoo"), "{e}");
    let e = run("[recipe]\nkind = \"dino\"\nglobal_view = 2\n");
    assert!(e.contains("bad.toml") && e.contains("global_view"), "{e}");
    let e = run("[recipe]\nkind = \"data2vec\"\ntop_k_layers = 99\n");
    assert!(e.contains("top_k_layers"), "{e}");
}
