//! `tessera-eeg epochs` on generated and real recordings, and a probe whose `--config`
//! changes only how a run is probed.

use std::path::{Path, PathBuf};
use tessera_app::Shared;
use tessera_cli::CommonArgs;
use tessera_eeg_cli::epochs::{run, EpochsArgs};
use tessera_tokens::resources::shared_data;
use tessera_tokens::Modality;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tessera-eeg-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn args(data: &Path, out: &Path) -> EpochsArgs {
    EpochsArgs {
        data: data.to_path_buf(),
        label_column: None,
        split_column: None,
        out: out.to_path_buf(),
        window: 2.0,
        stride: None,
        events: Vec::new(),
        offset: 0.0,
        split: None,
        append: false,
        strict: true,
    }
}

fn rows(p: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .skip(1)
        .map(tessera_cli::data::split_csv_line)
        .collect()
}

#[test]
fn epochs_from_windows_and_events_feed_every_subcommand() {
    let d = tmp("epochs");
    let manifest = tessera_eeg::EegFrontend::write_demo_data(&d.join("data"), 1).unwrap();
    let out = d.join("epochs.csv");
    // Fixed 2 s windows of 12 s recordings: 6 per recording, labels and splits from the
    // manifest.
    run(&args(&manifest, &out)).unwrap();
    let r = rows(&out);
    assert_eq!(r.len(), 24 * 6);
    assert!(r
        .iter()
        .all(|f| f[0].contains("#t=") && !f[1].is_empty() && !f[2].is_empty()));
    // Events: the EDF+/BDF+ recordings carry one annotation per 4 s named by their class.
    let mut a = args(&manifest, &d.join("events.csv"));
    a.events = vec!["alpha=A".into(), "beta".into()];
    a.window = 3.0;
    a.split = Some("train".into());
    run(&a).unwrap();
    let ev = rows(&d.join("events.csv"));
    assert!(!ev.is_empty());
    assert!(ev
        .iter()
        .all(|f| (f[1] == "A" || f[1] == "beta") && f[2] == "train" && f[5] == "3"));
    // --append keeps the rows and the header; a different file is refused.
    a.append = true;
    a.split = Some("test".into());
    run(&a).unwrap();
    let both = rows(&d.join("events.csv"));
    assert_eq!(both.len(), 2 * ev.len());
    std::fs::write(d.join("other.csv"), "path,label\nx.edf,a\n").unwrap();
    let mut bad = a.clone();
    bad.out = d.join("other.csv");
    let e = run(&bad).unwrap_err().to_string();
    assert!(e.contains("--append needs an epochs manifest"), "{e}");
    // No annotation matches: a clear error, not an empty manifest.
    let mut none = args(&manifest, &d.join("none.csv"));
    none.events = vec!["T9".into()];
    let e = run(&none).unwrap_err().to_string();
    assert!(e.contains("no epochs"), "{e}");

    // The windows are data for every subcommand: stats and a random-init probe.
    let app = tessera_eeg_cli::app();
    let common = CommonArgs {
        data: Some(out.clone()),
        preset: Some("eeg-nano-demo".into()),
        out: Some(d.join("stats")),
        threads: Some(1),
        ..Default::default()
    };
    app.run(Shared::Stats {
        common: common.clone(),
    })
    .unwrap();
    // `--window 2` on the recordings themselves gives the same 2 s windows as `epochs`.
    let windowed = CommonArgs {
        data: Some(manifest.clone()),
        out: Some(d.join("emb")),
        window: Some(2.0),
        ..common.clone()
    };
    app.run(Shared::Embed {
        common: windowed,
        random_init: true,
        onnx: None,
        pool_windows: false,
        shard_rows: None,
    })
    .unwrap();
    let w = rows(&d.join("emb/windows.csv"));
    assert_eq!(w.len(), 24 * 6);
    let mut from_epochs: Vec<String> = r.iter().map(|f| f[0].clone()).collect();
    let mut from_windows: Vec<String> = std::fs::read_to_string(d.join("emb/files.txt"))
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    from_epochs.sort();
    from_windows.sort();
    assert_eq!(from_epochs, from_windows);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_checkpoint_probe_takes_only_probe_settings_from_config() {
    let d = tmp("probecfg");
    let manifest = tessera_eeg::EegFrontend::write_demo_data(&d.join("data"), 2).unwrap();
    let app = tessera_eeg_cli::app();
    let mut c = CommonArgs {
        data: Some(manifest.clone()),
        preset: Some("eeg-nano-demo".into()),
        out: Some(d.join("run")),
        steps: Some(2),
        batch_size: Some(4),
        threads: Some(1),
        ..Default::default()
    };
    app.run(Shared::Pretrain {
        common: c.clone(),
        resume: false,
        minutes: None,
    })
    .unwrap();
    c.checkpoint = Some(d.join("run"));
    c.out = Some(d.join("results"));
    let probe = |c: &CommonArgs| {
        app.run(Shared::Probe {
            common: c.clone(),
            random_init: false,
            baseline: None,
            name: None,
            task: None,
            multi_label: false,
            few_shot: None,
            regression: false,
        })
    };
    std::fs::write(d.join("probe.toml"), "[probe.linear]\nbalanced = true\n").unwrap();
    c.config = Some(d.join("probe.toml"));
    probe(&c).unwrap();
    std::fs::write(d.join("model.toml"), "[encoder]\nsize = \"tiny\"\n").unwrap();
    c.config = Some(d.join("model.toml"));
    let e = probe(&c).unwrap_err().to_string();
    assert!(
        e.contains("only a [probe] table applies") && e.contains("encoder"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn real_recordings_cut_into_the_documented_epochs() {
    let Some(root) = shared_data("eeg") else {
        return;
    };
    let d = tmp("real");
    // EEGMMIDB S001R04: 15 cues (T1 left fist, T2 right fist) of 4 s, all inside the run.
    let mut a = args(
        &root.join("eegmmidb_s001/edf/S001R04.edf"),
        &d.join("mi.csv"),
    );
    a.events = vec!["T1=left_fist".into(), "T2=right_fist".into()];
    a.window = 4.0;
    run(&a).unwrap();
    let r = rows(&d.join("mi.csv"));
    assert_eq!(r.len(), 15);
    assert_eq!(
        r.iter().filter(|f| f[1] == "left_fist").count()
            + r.iter().filter(|f| f[1] == "right_fist").count(),
        15
    );
    // EEGMAT subject 00: 182 s of rest and 62 s of arithmetic → 45 + 15 windows of 4 s.
    let mut a = args(&root.join("eegmat/labels.csv"), &d.join("mat.csv"));
    a.label_column = Some("condition".into());
    a.window = 4.0;
    run(&a).unwrap();
    let r = rows(&d.join("mat.csv"));
    let s00: Vec<&Vec<String>> = r
        .iter()
        .filter(|f| f[3].ends_with("Subject00_1.edf"))
        .collect();
    assert_eq!(s00.len(), 45);
    assert!(s00.iter().all(|f| f[1] == "rest"));
    let _ = std::fs::remove_dir_all(&d);
}
