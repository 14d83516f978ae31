//! Trainer behaviour on synthetic tokens: loss falls, resume is bit-exact, NaN stops the
//! run and keeps the last good checkpoint.

use candle_core::Device;
use tessera_core::{EncoderConfig, ParamStore};
use tessera_recipes::mae::MaeConfig;
use tessera_recipes::{Batch, RecipeConfig};
use tessera_tokens::{Rng, SampleTokens, Tokens, ViewSpec};
use tessera_train::{
    latest_checkpoint, train, BatchSource, Result, RunOptions, TrainConfig, TrainError,
};

/// Smooth 1-D signals cut into 8-value tokens: learnable structure.
struct Sines {
    poison_at: Option<u64>,
}

impl BatchSource for Sines {
    /// Each view of a sample is the same sine from its own random phase; a local view
    /// keeps half of its tokens.
    fn batch(
        &mut self,
        step: u64,
        batch_size: usize,
        views: &[ViewSpec],
        rng: &mut Rng,
    ) -> Result<Batch> {
        let freqs: Vec<f32> = (0..batch_size)
            .map(|_| 0.05 + 0.2 * rng.uniform() as f32)
            .collect();
        let mut out = Vec::new();
        for spec in views {
            let samples: Vec<SampleTokens> = freqs
                .iter()
                .map(|&f| {
                    let ph = rng.uniform() as f32 * std::f32::consts::TAU;
                    let n = 16;
                    let mut v: Vec<f32> = (0..n * 8).map(|t| (f * t as f32 + ph).sin()).collect();
                    if self.poison_at == Some(step) {
                        v[0] = f32::NAN;
                    }
                    let c = (0..n).map(|i| i as f32).collect();
                    spec.cut(SampleTokens::new(v, c, n, 8, 1).unwrap(), rng)
                })
                .collect();
            out.push(Tokens::from_samples(&samples).unwrap());
        }
        Ok(Batch {
            views: out,
            specs: views.to_vec(),
            ids: (0..batch_size as u64).collect(),
            targets: None,
        })
    }
}

fn setup() -> (EncoderConfig, RecipeConfig) {
    let mut enc = EncoderConfig::preset("nano", 8, vec![16.0]).unwrap();
    enc.depth = 2;
    enc.dim = 64;
    enc.heads = 2;
    let rc = RecipeConfig::Mae(MaeConfig {
        decoder_dim: 32,
        decoder_depth: 1,
        decoder_heads: 2,
        ..Default::default()
    });
    (enc, rc)
}

fn run(
    dir: &std::path::Path,
    cfg: &TrainConfig,
    resume: bool,
    poison: Option<u64>,
) -> std::result::Result<(Vec<f64>, ParamStore), TrainError> {
    run_recipe(dir, cfg, resume, poison, &setup().1)
}

fn run_recipe(
    dir: &std::path::Path,
    cfg: &TrainConfig,
    resume: bool,
    poison: Option<u64>,
    rc: &RecipeConfig,
) -> std::result::Result<(Vec<f64>, ParamStore), TrainError> {
    let enc = setup().0;
    let mut store = ParamStore::new(7, &Device::Cpu);
    let mut recipe = rc.build(&enc, &mut store)?;
    let opts = RunOptions {
        run_dir: dir,
        seed: 7,
        resume,
        config_toml: "# test\n".into(),
        progress: false,
    };
    let s = train(
        recipe.as_mut(),
        &store,
        &mut Sines { poison_at: poison },
        cfg,
        &opts,
    )?;
    Ok((s.losses, store))
}

/// Options of a fresh run in `dir` with seed 7.
fn fresh(dir: &std::path::Path) -> RunOptions<'_> {
    RunOptions {
        run_dir: dir,
        seed: 7,
        resume: false,
        config_toml: String::new(),
        progress: false,
    }
}

fn weights(store: &ParamStore) -> Vec<(String, Vec<f32>)> {
    store
        .iter()
        .map(|(n, p)| (n.clone(), p.var.flatten_all().unwrap().to_vec1().unwrap()))
        .collect()
}

#[test]
fn loss_falls() {
    let dir = tempdir("falls");
    let cfg = TrainConfig {
        steps: 60,
        batch_size: 8,
        lr: 2e-3,
        warmup_steps: 5,
        checkpoint_every: 1000,
        ..Default::default()
    };
    let (losses, _) = run(&dir, &cfg, false, None).unwrap();
    let first: f64 = losses[..5].iter().sum::<f64>() / 5.0;
    let last: f64 = losses[losses.len() - 5..].iter().sum::<f64>() / 5.0;
    assert!(last < 0.7 * first, "loss did not fall: {first} -> {last}");
    assert!(dir.join("metrics.jsonl").exists());
}

/// Recipes whose state must survive a resume: MAE (weights and moments only), MoCo with
/// an EMA teacher and a queue of keys, HuBERT with a k-means codebook fitted before step
/// 1 (and not again on resume), DINO with an EMA teacher and a centre.
fn resumable_recipes() -> Vec<RecipeConfig> {
    vec![
        setup().1,
        RecipeConfig::Moco(toml::from_str("dim = 16\nhidden_dim = 32\nqueue = 6").unwrap()),
        RecipeConfig::Hubert(
            toml::from_str("units = 4\nprepare_batches = 2\n[mask]\nratio = 0.5").unwrap(),
        ),
        RecipeConfig::Dino(
            toml::from_str(
                "local_views = 1\n[head]\nout_dim = 16\nhidden_dim = 32\nbottleneck_dim = 8",
            )
            .unwrap(),
        ),
    ]
}

#[test]
fn resume_is_bit_exact() {
    let cfg = TrainConfig {
        steps: 8,
        batch_size: 4,
        lr: 1e-3,
        warmup_steps: 2,
        checkpoint_every: 4,
        ..Default::default()
    };
    for rc in resumable_recipes() {
        let kind = format!("{rc:?}").chars().take(4).collect::<String>();
        let a = tempdir(&format!("straight-{kind}"));
        let (la, sa) = run_recipe(&a, &cfg, false, None, &rc).unwrap();
        let b = tempdir(&format!("resumed-{kind}"));
        {
            // The 8-step schedule, crashing after its step-4 checkpoint.
            let enc = setup().0;
            let mut store = ParamStore::new(7, &Device::Cpu);
            let mut recipe = rc.build(&enc, &mut store).unwrap();
            let opts = fresh(&b);
            let mut src = StopAfter {
                inner: Sines { poison_at: None },
                last: 4,
            };
            let err = train(recipe.as_mut(), &store, &mut src, &cfg, &opts);
            assert!(matches!(err, Err(TrainError::Data(_))), "{kind}");
        }
        assert_eq!(latest_checkpoint(&b).unwrap().unwrap().step().unwrap(), 4);
        let (lb, sb) = run_recipe(&b, &cfg, true, None, &rc).unwrap();
        assert_eq!(lb.len(), 4);
        assert_eq!(&la[4..], &lb[..], "{kind}: losses after resume differ");
        let (wa, wb) = (weights(&sa), weights(&sb));
        assert_eq!(
            wa, wb,
            "{kind}: weights and recipe state after resume differ"
        );
        // The state is really there and really moves.
        for name in [
            "teacher.encoder.norm.weight",
            "moco.queue",
            "dino.center",
            "hubert.codebook",
        ] {
            if let Some((_, w)) = wa.iter().find(|(n, _)| n == name) {
                assert!(
                    w.iter().any(|&x| x != 0.0 && x != 1.0),
                    "{kind}: {name} never moved"
                );
            }
        }
    }
}

/// A recipe asking for two views of a source that can only give one fails before step 1.
#[test]
fn a_one_view_source_is_refused_at_start() {
    struct OneView;
    impl BatchSource for OneView {
        fn batch(&mut self, _: u64, _: usize, _: &[ViewSpec], _: &mut Rng) -> Result<Batch> {
            panic!("no batch should be asked for");
        }
        fn check_views(&self, views: &[ViewSpec]) -> Result<()> {
            if views.len() > 1 {
                return Err(TrainError::Config(format!(
                    "one view only, {} asked",
                    views.len()
                )));
            }
            Ok(())
        }
    }
    let rc = &resumable_recipes()[1];
    let mut store = ParamStore::new(7, &Device::Cpu);
    let mut recipe = rc.build(&setup().0, &mut store).unwrap();
    let dir = tempdir("one-view");
    let opts = fresh(&dir);
    let e = train(
        recipe.as_mut(),
        &store,
        &mut OneView,
        &TrainConfig::default(),
        &opts,
    )
    .unwrap_err();
    assert!(e.to_string().contains("2 asked"), "{e}");
}

/// Fails at step `last + 1`, like a crash, after the step-`last` checkpoint is written.
struct StopAfter {
    inner: Sines,
    last: u64,
}

impl BatchSource for StopAfter {
    fn batch(&mut self, step: u64, bs: usize, views: &[ViewSpec], rng: &mut Rng) -> Result<Batch> {
        if step > self.last {
            return Err(TrainError::Data("simulated crash".into()));
        }
        self.inner.batch(step, bs, views, rng)
    }
}

#[test]
fn nan_loss_stops_and_keeps_last_checkpoint() {
    let dir = tempdir("nan");
    let cfg = TrainConfig {
        steps: 10,
        batch_size: 2,
        checkpoint_every: 3,
        ..Default::default()
    };
    match run(&dir, &cfg, false, Some(5)) {
        Err(e @ TrainError::NonFinite { step: 5, .. }) => assert!(e.to_string().contains("step 5")),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a NaN loss did not stop the run"),
    }
    assert_eq!(latest_checkpoint(&dir).unwrap().unwrap().step().unwrap(), 3);
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("tessera-train-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn lr_scale_applies_per_parameter() {
    // Scale 0 freezes a parameter for the optimiser (update and weight decay); scale 1
    // parameters still move.
    let cfg = TrainConfig {
        steps: 3,
        batch_size: 4,
        lr: 1e-3,
        weight_decay: 0.5,
        checkpoint_every: 1000,
        ..Default::default()
    };
    let (enc, rc) = setup();
    let mut store = ParamStore::new(7, &Device::Cpu);
    let mut recipe = rc.build(&enc, &mut store).unwrap();
    store.set_lr_scale("encoder.blocks.0", 0.0);
    let before = weights(&store);
    let dir = tempdir("lr-scale");
    let opts = fresh(&dir);
    train(
        recipe.as_mut(),
        &store,
        &mut Sines { poison_at: None },
        &cfg,
        &opts,
    )
    .unwrap();
    let after = weights(&store);
    let names = |w: &[(String, Vec<f32>)]| w.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&before), names(&after));
    let (mut frozen, mut moved) = (0, 0);
    for ((name, a), (_, b)) in before.iter().zip(&after) {
        if name.starts_with("encoder.blocks.0.") {
            assert_eq!(a, b, "{name} moved at lr scale 0");
            frozen += 1;
        } else if name.starts_with("encoder.blocks.1.") && a != b {
            moved += 1;
        }
    }
    assert!(frozen > 0 && moved > 0, "frozen {frozen}, moved {moved}");
}
