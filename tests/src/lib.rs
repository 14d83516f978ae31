//! The conformance suite: every check a modality must pass, written once and run for each
//! registered modality (`tests/tests/<modality>.rs` is one line per check). A new domain
//! gets all of it by implementing [`Modality`] and adding such a file.
//!
//! - [`readers`]: the domain's writer and reader agree, `inspect` checks every file;
//! - [`corruption`]: truncated and bit-flipped files give errors naming the file, never a
//!   panic;
//! - [`views`]: tokens match the spec, are finite, and training views are a pure function
//!   of the generator's state;
//! - [`encoder_invariances`]: the encoder ignores token order and padding;
//! - [`card_round_trip`]: run and model cards survive TOML;
//! - [`cli`]: every shared subcommand on generated data, ONNX parity of the token and grid
//!   graphs included.

pub mod toy;

pub use {tessera_app, tessera_cli, tessera_tokens};

use candle_core::Device;
use std::path::{Path, PathBuf};
use tessera_app::{App, RunCard, Shared};
use tessera_cli::CommonArgs;
use tessera_core::{Encoder, EncoderSpec, ParamStore, TokenTensors};
use tessera_tokens::{Modality, Rng, SampleTokens, Tokens};

/// A fresh temporary folder for one check.
pub fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tessera-conformance-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The data files of a manifest written by `write_demo_data`.
pub fn demo_files(manifest: &Path) -> Vec<PathBuf> {
    let root = manifest.parent().unwrap();
    let text = std::fs::read_to_string(manifest).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = header
        .iter()
        .position(|h| *h == "path" || *h == "image" || *h == "file")
        .expect("manifest has a path column");
    lines
        .map(|l| root.join(l.split(',').nth(col).unwrap()))
        .collect()
}

/// The modality of a card.
pub fn modality<M: Modality>(card: &RunCard<M>) -> M {
    card.modality().unwrap()
}

/// The demo data decodes, every file passes `inspect` (whose row names the file), and the
/// manifest has labels in at least two classes with train and test rows.
pub fn readers<M: Modality>(m: &M) {
    let d = tmp(&format!("{}-readers", M::NAME));
    let manifest = M::write_demo_data(&d, 3).unwrap();
    let text = std::fs::read_to_string(&manifest).unwrap();
    assert!(text.contains("test") && text.contains("train"), "{text}");
    let files = demo_files(&manifest);
    assert!(files.len() >= 8, "{} demo files", files.len());
    for f in &files {
        assert!(M::accepts(f), "{} not accepted", f.display());
        m.decode(f)
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let row = m.inspect(f).unwrap();
        assert!(
            row.iter().any(|(_, v)| v.contains(&*f.to_string_lossy())),
            "inspect row does not name the file: {row:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&d);
}

fn names_file(msg: &str, f: &Path) -> bool {
    let name = f.file_name().unwrap().to_string_lossy();
    msg.contains(&*name)
}

/// Truncations at many lengths and flipped bytes in the first kilobyte of a demo file:
/// decoding and inspecting never panic, and every error names the file.
pub fn corruption<M: Modality>(m: &M, cases: usize) {
    let d = tmp(&format!("{}-corrupt", M::NAME));
    let manifest = M::write_demo_data(&d.join("data"), 5).unwrap();
    let src = demo_files(&manifest).remove(0);
    let bytes = std::fs::read(&src).unwrap();
    let ext = src
        .file_name()
        .unwrap()
        .to_string_lossy()
        .split_once('.')
        .map(|(_, e)| e.to_string())
        .unwrap();
    let mut rng = Rng::new(11);
    for case in 0..cases {
        let mut b = bytes.clone();
        if case % 2 == 0 {
            b.truncate(rng.below(bytes.len()));
        } else {
            for _ in 0..1 + rng.below(8) {
                let i = rng.below(bytes.len().min(1024));
                b[i] ^= 1 << rng.below(8);
            }
        }
        let f = d.join(format!("bad{case}.{ext}"));
        std::fs::write(&f, &b).unwrap();
        let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| m.decode(&f)));
        match decoded {
            Err(_) => panic!("decoding {} panicked", f.display()),
            Ok(Err(e)) => assert!(names_file(&e.to_string(), &f), "case {case}: {e}"),
            Ok(Ok(_)) => {}
        }
        let inspected = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| m.inspect(&f)));
        match inspected {
            Err(_) => panic!("inspecting {} panicked", f.display()),
            Ok(Err(e)) => assert!(names_file(&e.to_string(), &f), "case {case}: {e}"),
            Ok(Ok(_)) => {}
        }
    }
    // A file that is not this format at all, and one that does not exist.
    let f = d.join(format!("text.{ext}"));
    std::fs::write(&f, b"plain text, not data").unwrap();
    let Err(e) = m.decode(&f) else {
        panic!("text decoded as data")
    };
    assert!(names_file(&e.to_string(), &f), "{e}");
    let f = d.join(format!("missing.{ext}"));
    let e = m.inspect(&f).expect_err("a missing file inspected");
    assert!(names_file(&e.to_string(), &f), "{e}");
    let _ = std::fs::remove_dir_all(&d);
}

/// Evaluation and training views have the spec's widths and finite values; the same
/// generator state gives the same training view; random samples tokenize too.
pub fn views<M: Modality>(m: &M) {
    let spec = m.token_spec();
    let mut rng = Rng::new(1);
    let s = m.random_sample(&mut rng).unwrap();
    let check = |t: &SampleTokens| {
        assert_eq!((t.p, t.k), (spec.p, spec.k));
        assert!(t.n > 0);
        assert!(t.values.iter().chain(&t.coords).all(|x| x.is_finite()));
    };
    let e = m.eval_view(&s).unwrap();
    check(&e);
    assert_eq!(
        e,
        m.eval_view(&s).unwrap(),
        "evaluation view is not deterministic"
    );
    let (mut r1, mut r2) = (Rng::new(9), Rng::new(9));
    let a = m.train_view(&s, &mut r1).unwrap();
    check(&a);
    assert_eq!(a, m.train_view(&s, &mut r2).unwrap());
    assert!(M::sample_bytes(&s) > 0);
    assert_eq!(spec.axes.len(), spec.k);
}

/// A random nano encoder for `m`'s tokens.
pub fn encoder<M: Modality>(m: &M) -> Encoder {
    let spec = m.token_spec();
    let es: EncoderSpec = toml::from_str("size = \"nano\"").unwrap();
    let cfg = es.resolve(spec.p, spec.scales()).unwrap();
    let mut store = ParamStore::new(5, &Device::Cpu);
    Encoder::new(&cfg, &mut store, "encoder").unwrap()
}

fn embed(enc: &Encoder, samples: &[SampleTokens]) -> Vec<f32> {
    let t = Tokens::from_samples(samples).unwrap();
    enc.embed(&TokenTensors::from_tokens(&t, &Device::Cpu).unwrap())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// The f32 values of a `.npy` file `write_npy` wrote (a 128-byte header).
fn npy_values(path: &Path) -> Vec<f32> {
    let v = std::fs::read(path).unwrap();
    v[128..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// `shard` packs the generated single-file samples into tar shards, and pretraining and
/// embedding from the shards give the same bytes as from the files (the same order, the
/// same decoded samples).
fn shards_round_trip<M: Modality>(app: &App<M>, manifest: &Path, d: &Path, preset: &str) {
    let cols = tessera_cli::ManifestColumns::default();
    let items = tessera_cli::list_data(manifest, &|p| M::accepts(p), &cols).unwrap();
    let mut plain = String::from("path,label,split\n");
    let mut n = 0usize;
    for it in items.iter().filter(|i| i.path.is_file()) {
        plain.push_str(&format!(
            "{},{},{}\n",
            tessera_cli::csv_field(&it.path.display().to_string()),
            tessera_cli::csv_field(it.label.as_deref().unwrap_or("")),
            tessera_cli::csv_field(it.split.as_deref().unwrap_or(""))
        ));
        n += 1;
    }
    assert!(n >= 4, "too few single-file samples ({n}) to shard");
    let plain_csv = d.join("plain.csv");
    std::fs::write(&plain_csv, plain).unwrap();
    let shards = d.join("shards");
    let mut c = common(Some(&plain_csv), &shards, preset);
    app.run(Shared::Shard {
        common: c.clone(),
        shard_rows: 3,
    })
    .unwrap();
    let tars = std::fs::read_dir(&shards).unwrap().count();
    assert_eq!(tars, n.div_ceil(3));
    let model = |run: &Path| {
        let latest = std::fs::read_to_string(run.join("checkpoints/latest")).unwrap();
        std::fs::read(
            run.join("checkpoints")
                .join(latest.trim())
                .join("model.safetensors"),
        )
        .unwrap()
    };
    for (data, run) in [(&plain_csv, "run-plain"), (&shards, "run-shards")] {
        c = common(Some(data), &d.join(run), preset);
        app.run(Shared::Pretrain {
            common: c.clone(),
            resume: false,
            minutes: None,
        })
        .unwrap();
        c.checkpoint = Some(d.join("run-plain"));
        c.out = Some(d.join(format!("emb-{run}")));
        app.run(Shared::Embed {
            common: c.clone(),
            random_init: false,
            onnx: None,
            pool_windows: false,
            shard_rows: None,
        })
        .unwrap();
    }
    assert!(
        model(&d.join("run-plain")) == model(&d.join("run-shards")),
        "pretraining from shards differs from pretraining from the files"
    );
    assert_eq!(
        npy_values(&d.join("emb-run-plain/embeddings.npy")),
        npy_values(&d.join("emb-run-shards/embeddings.npy"))
    );
    // The shard-wise order: each of the two micro-batches reads its own shards.
    let cfg = d.join("shard-order.toml");
    std::fs::write(
        &cfg,
        "[train]\ndata_order = \"shards\"\nmicro_batches = 2\n",
    )
    .unwrap();
    let mut c = common(Some(&shards), &d.join("run-shard-order"), preset);
    c.config = Some(cfg);
    app.run(Shared::Pretrain {
        common: c,
        resume: false,
        minutes: None,
    })
    .unwrap();
    assert_eq!(tessera_train_latest(&d.join("run-shard-order")), 4);
}

/// `embed --shard-rows 2` writes parts whose rows and files, in order, are the unsharded
/// embedding's; a rerun rewrites only a missing part.
fn embed_in_parts<M: Modality>(app: &App<M>, e: &CommonArgs, d: &Path) {
    let parts = d.join("emb-parts");
    let mut c = e.clone();
    c.out = Some(parts.clone());
    let run = |c: &CommonArgs| {
        app.run(Shared::Embed {
            common: c.clone(),
            random_init: false,
            onnx: None,
            pool_windows: false,
            shard_rows: Some(2),
        })
        .unwrap()
    };
    run(&c);
    let mut names: Vec<_> = std::fs::read_dir(&parts)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let files = std::fs::read_to_string(d.join("emb/files.txt")).unwrap();
    let n = files.lines().count();
    assert_eq!(names.len(), n.div_ceil(2), "{names:?}");
    assert!(names.iter().all(|p| p.starts_with("part-")), "{names:?}");
    let (mut rows, mut listed) = (Vec::new(), String::new());
    for p in &names {
        rows.extend(npy_values(&parts.join(p).join("embeddings.npy")));
        listed.push_str(&std::fs::read_to_string(parts.join(p).join("files.txt")).unwrap());
    }
    assert_eq!(listed, files);
    assert!(max_diff(&rows, &npy_values(&d.join("emb/embeddings.npy"))) <= 1e-6);
    // Resume: the first part is kept as it is, the removed last part is written again.
    std::fs::write(parts.join(&names[0]).join("kept"), "").unwrap();
    let last = parts.join(names.last().unwrap());
    std::fs::remove_dir_all(&last).unwrap();
    run(&c);
    assert!(parts.join(&names[0]).join("kept").is_file());
    assert!(last.join("embeddings.npy").is_file());
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The embedding of a sample does not depend on the order of its tokens nor on padding
/// added when it shares a batch with a longer sample.
pub fn encoder_invariances<M: Modality>(m: &M) {
    let enc = encoder(m);
    let mut rng = Rng::new(2);
    let t = m.eval_view(&m.random_sample(&mut rng).unwrap()).unwrap();
    let base = embed(&enc, std::slice::from_ref(&t));
    let mut idx: Vec<usize> = (0..t.n).collect();
    for i in (1..idx.len()).rev() {
        idx.swap(i, rng.below(i + 1));
    }
    let shuffled = embed(&enc, &[t.select(&idx)]);
    assert!(
        max_diff(&base, &shuffled) < 1e-4,
        "token order changes the embedding"
    );
    if t.n > 1 {
        let short = t.select(&(0..t.n / 2).collect::<Vec<_>>());
        let alone = embed(&enc, std::slice::from_ref(&short));
        let batched = embed(&enc, &[short, t]);
        assert!(
            max_diff(&alone, &batched[..alone.len()]) < 1e-4,
            "padding changes the embedding"
        );
    }
}

/// The run card survives TOML (front-end table included) and the model card too.
pub fn card_round_trip<M: Modality>(card: &RunCard<M>) {
    let text = card.to_toml().unwrap();
    let back = RunCard::<M>::from_value(toml::from_str(&text).unwrap(), "round trip").unwrap();
    assert_eq!(back.frontend, card.frontend);
    assert_eq!(back.to_toml().unwrap(), text);
    let m = modality(card);
    let mc = tessera_tokens::ModelCard::new(
        &card.name,
        M::NAME,
        m.token_spec(),
        Default::default(),
        toml::Table::try_from(&card.frontend).unwrap(),
    );
    let again = tessera_tokens::ModelCard::from_toml(&mc.to_toml().unwrap()).unwrap();
    assert_eq!(again, mc);
    let cfg: M::Config = again.frontend_as().unwrap();
    assert_eq!(&cfg, m.config());
}

fn common(data: Option<&Path>, out: &Path, preset: &str) -> CommonArgs {
    CommonArgs {
        data: data.map(Path::to_path_buf),
        out: Some(out.to_path_buf()),
        preset: Some(preset.into()),
        steps: Some(4),
        batch_size: Some(4),
        threads: Some(2),
        ..Default::default()
    }
}

/// Every shared subcommand on the modality's generated data with `preset` (a small card):
/// stats, inspect, pretrain (and extending it with --resume --steps), embed, probe (encoder,
/// random init and every baseline), export with the ONNX parity check and `embed --onnx`
/// (when ONNX Runtime is available; required with `TESSERA_REQUIRE_ORT=1`), bench-step.
pub fn cli<M: Modality>(app: &App<M>, preset: &str) {
    let d = tmp(&format!("{}-{preset}-cli", M::NAME));
    let manifest = M::write_demo_data(&d.join("data"), 7).unwrap();
    let run = d.join("run");
    let c = common(Some(&manifest), &d.join("stats"), preset);
    app.run(Shared::Stats { common: c.clone() }).unwrap();
    assert!(d.join("stats/files.csv").is_file());
    let files = demo_files(&manifest);
    // `--data` also takes one file and a text list of paths.
    let one = common(Some(&files[0]), &d.join("stats-one"), preset);
    app.run(Shared::Stats { common: one }).unwrap();
    let csv = std::fs::read_to_string(d.join("stats-one/files.csv")).unwrap();
    assert_eq!(csv.lines().count(), 2, "{csv}");
    let list = d.join("list.txt");
    let names: Vec<String> = files[..3].iter().map(|f| f.display().to_string()).collect();
    std::fs::write(&list, names.join("\n")).unwrap();
    app.run(Shared::Stats {
        common: common(Some(&list), &d.join("stats-list"), preset),
    })
    .unwrap();
    let csv = std::fs::read_to_string(d.join("stats-list/files.csv")).unwrap();
    assert_eq!(csv.lines().count(), 4, "{csv}");
    app.run(Shared::Inspect {
        files: files[..2].to_vec(),
        common: c.clone(),
    })
    .unwrap();
    // A bad file makes inspect fail.
    let bad = d.join(format!(
        "bad.{}",
        M::EXTENSIONS.first().copied().unwrap_or("dat")
    ));
    std::fs::write(&bad, b"not data").unwrap();
    assert!(app
        .run(Shared::Inspect {
            files: vec![files[0].clone(), bad],
            common: c.clone()
        })
        .is_err());

    let c = common(Some(&manifest), &run, preset);
    app.run(Shared::Pretrain {
        common: c.clone(),
        resume: false,
        minutes: None,
    })
    .unwrap();
    let latest = tessera_train_latest(&run);
    assert_eq!(latest, 4);
    // A second pretrain into the same folder without --resume is refused; with --resume
    // and more steps it extends the run.
    assert!(app
        .run(Shared::Pretrain {
            common: c.clone(),
            resume: false,
            minutes: None
        })
        .is_err());
    let mut more = common(None, &run, preset);
    more.steps = Some(6);
    app.run(Shared::Pretrain {
        common: more,
        resume: true,
        minutes: None,
    })
    .unwrap();
    assert_eq!(tessera_train_latest(&run), 6);

    let mut e = common(Some(&manifest), &d.join("emb"), preset);
    e.checkpoint = Some(run.clone());
    app.run(Shared::Embed {
        common: e.clone(),
        random_init: false,
        onnx: None,
        pool_windows: false,
        shard_rows: None,
    })
    .unwrap();
    assert!(d.join("emb/embeddings.npy").is_file());
    embed_in_parts(app, &e, &d);
    shards_round_trip(app, &manifest, &d, preset);

    let mut p = e.clone();
    p.out = Some(d.join("probe"));
    app.run(Shared::Probe {
        common: p.clone(),
        random_init: false,
        baseline: None,
        name: None,
        task: None,
        multi_label: false,
        few_shot: None,
        regression: false,
    })
    .unwrap();
    p.checkpoint = None;
    app.run(Shared::Probe {
        common: p.clone(),
        random_init: true,
        baseline: None,
        name: None,
        task: None,
        multi_label: false,
        few_shot: None,
        regression: false,
    })
    .unwrap();
    for b in M::baselines() {
        app.run(Shared::Probe {
            common: p.clone(),
            random_init: false,
            baseline: Some(b.to_string()),
            name: None,
            task: None,
            multi_label: false,
            few_shot: None,
            regression: false,
        })
        .unwrap();
    }
    // Few-shot (k = 2, repeated draws) and multi-label (single-label sets here) protocols.
    app.run(Shared::Probe {
        common: p.clone(),
        random_init: true,
        baseline: None,
        name: Some("few".into()),
        task: None,
        multi_label: false,
        few_shot: Some(2),
        regression: false,
    })
    .unwrap();
    app.run(Shared::Probe {
        common: p.clone(),
        random_init: true,
        baseline: None,
        name: Some("multi".into()),
        task: None,
        multi_label: true,
        few_shot: None,
        regression: false,
    })
    .unwrap();
    let md = std::fs::read_to_string(d.join("probe/results.md")).unwrap();
    for protocol in ["| linear |", "| knn |", "linear-2shot", "linear-multilabel"] {
        assert!(md.contains(protocol), "{protocol} missing:\n{md}");
    }
    assert!(std::fs::read_to_string(d.join("probe/results.csv")).is_ok());
    assert!(d.join("probe/comparison-accuracy.png").is_file());
    assert!(std::fs::read_dir(d.join("probe"))
        .unwrap()
        .flatten()
        .any(
            |e| e.file_name().to_string_lossy().starts_with("confusion-")
                && e.file_name().to_string_lossy().ends_with(".png")
        ));
    // Fine-tuning the run's encoder (all rows, and 2 per class) and a random one.
    let mut f = e.clone();
    f.out = Some(d.join("finetune"));
    for (shots, random) in [(None, false), (Some(2), false)] {
        app.run(Shared::Finetune {
            common: f.clone(),
            random_init: random,
            shots,
            name: None,
            task: None,
            minutes: None,
        })
        .unwrap();
    }
    f.checkpoint = None;
    app.run(Shared::Finetune {
        common: f.clone(),
        random_init: true,
        shots: None,
        name: Some("ft-random".into()),
        task: None,
        minutes: None,
    })
    .unwrap();
    let md = std::fs::read_to_string(d.join("finetune/results.md")).unwrap();
    assert!(md.matches("| finetune |").count() >= 3, "{md}");
    assert!(md.contains("ft-random"), "{md}");
    // Training curves of the run.
    app.run(Shared::Plot {
        run: run.clone(),
        out: None,
    })
    .unwrap();
    assert!(run.join("training.png").is_file());
    assert!(app
        .run(Shared::Plot {
            run: d.join("data"),
            out: None
        })
        .is_err());

    let mut x = e.clone();
    x.out = Some(d.join("export"));
    app.run(Shared::Export { common: x }).unwrap();
    assert!(d.join("export/model.onnx").is_file() && d.join("export/model.toml").is_file());
    match tessera_runtime::environment() {
        Ok(_) => {
            let card = RunCard::<M>::from_run(&run).unwrap();
            let enc = tessera_app::encoder_for(app, &e, false).unwrap();
            let (tok, grid) =
                tessera_app::parity(&enc.m, &enc.encoder, &d.join("export"), 3).unwrap();
            assert!(tok <= 1e-4, "token graph vs candle: {tok}");
            if modality(&card).grid_front().is_some() {
                let g = grid.expect("a grid front but no grid parity");
                assert!(g <= 1e-3, "grid graph vs candle: {g}");
            }
            let mut o = e.clone();
            o.out = Some(d.join("emb-onnx"));
            o.checkpoint = None;
            app.run(Shared::Embed {
                common: o,
                random_init: false,
                onnx: Some(d.join("export")),
                pool_windows: false,
                shard_rows: None,
            })
            .unwrap();
            let a = npy_values(&d.join("emb/embeddings.npy"));
            let b = npy_values(&d.join("emb-onnx/embeddings.npy"));
            assert_eq!(a.len(), b.len());
            assert!(max_diff(&a, &b) <= 1e-4);
        }
        Err(e) if tessera_tokens::resources::required("TESSERA_REQUIRE_ORT") => {
            panic!("TESSERA_REQUIRE_ORT=1 but {e}")
        }
        Err(e) => eprintln!("skipping the ONNX Runtime checks: {e}"),
    }
    app.run(Shared::BenchStep {
        common: common(None, &d.join("bench"), preset),
        warmup: 1,
        timed_steps: 1,
    })
    .unwrap();
    let _ = std::fs::remove_dir_all(&d);
}

fn tessera_train_latest(run: &Path) -> u64 {
    let text = std::fs::read_to_string(run.join("checkpoints/latest")).unwrap();
    text.trim()
        .rsplit('-')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .parse()
        .unwrap()
}

/// The whole suite for one modality as `#[test]`s in a module named `$name`: `$app` is an
/// expression giving the domain's `tessera_app::App`, `$preset` a small preset of it.
/// Every embedded model card (a preset with the modality's table) resolves, builds its front end, encoder and recipe, and asks for
/// views the front end's tokens can give (a typo in a preset fails here, not in a user's
/// first run).
pub fn presets_build<M: Modality>(app: &tessera_app::App<M>) {
    for name in app.info.presets.names() {
        let raw = app.info.presets.resolve(Some(name), name, None).unwrap();
        if raw.get(M::NAME).is_none() {
            continue; // a fragment layered by a task command (`medical-segment`)
        }
        let c = tessera_cli::CommonArgs {
            preset: Some(name.into()),
            ..Default::default()
        };
        let card = app
            .resolve(&c)
            .unwrap_or_else(|e| panic!("preset {name}: {e:#}"));
        let m = card
            .modality()
            .unwrap_or_else(|e| panic!("preset {name}: {e:#}"));
        let mut store = tessera_core::ParamStore::new(0, &candle_core::Device::Cpu);
        let enc = card.encoder_config(&m).unwrap();
        let recipe = card
            .recipe
            .build(&enc, &mut store)
            .unwrap_or_else(|e| panic!("preset {name}: {e}"));
        for v in recipe.views() {
            v.validate(m.token_spec().k)
                .unwrap_or_else(|e| panic!("preset {name}: {e}"));
        }
    }
}

#[macro_export]
macro_rules! conformance_suite {
    ($name:ident, $app:expr, $preset:expr) => {
        mod $name {
            use $crate::*;

            fn card() -> $crate::tessera_app::RunCard<impl $crate::tessera_tokens::Modality> {
                let c = $crate::tessera_cli::CommonArgs {
                    preset: Some($preset.into()),
                    ..Default::default()
                };
                $app.resolve(&c).unwrap()
            }

            #[test]
            fn readers_round_trip() {
                readers(&modality(&card()));
            }

            #[test]
            fn corrupt_files_are_errors_naming_the_file() {
                corruption(&modality(&card()), 40);
            }

            #[test]
            fn views_are_deterministic_and_match_the_spec() {
                views(&modality(&card()));
            }

            #[test]
            fn encoder_ignores_token_order_and_padding() {
                encoder_invariances(&modality(&card()));
            }

            #[test]
            fn cards_round_trip() {
                card_round_trip(&card());
            }

            #[test]
            fn every_subcommand_runs() {
                cli(&$app, $preset);
            }

            #[test]
            fn every_preset_builds_its_recipe() {
                presets_build(&$app);
            }
        }
    };
}
