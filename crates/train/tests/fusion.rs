//! Volume Fusion trains through the shared trainer: on synthetic structured tokens the
//! fusion loss falls below its starting value, and the same seed gives the same losses.

use candle_core::Device;
use tessera_core::{EncoderConfig, ParamStore};
use tessera_recipes::fusion::FusionConfig;
use tessera_recipes::{Batch, RecipeConfig};
use tessera_tokens::{Rng, SampleTokens, Tokens, ViewSpec};
use tessera_train::{train, BatchSlot, BatchSource, Result, RunOptions, TrainConfig};

/// Same-shape 2-D crops: a 6 × 6 grid of tokens (coords in mm, spacing 2 × 3, a random
/// offset per crop), each token 8 values of a smooth field with a per-sample level and
/// amplitude, so a fused token stands out from its unfused neighbours.
struct Crops;

impl BatchSource for Crops {
    fn batch(&mut self, slot: &BatchSlot, _views: &[ViewSpec], rng: &mut Rng) -> Result<Batch> {
        let batch_size = slot.len();
        let (side, p) = (6usize, 8usize);
        let samples: Vec<SampleTokens> = (0..batch_size)
            .map(|_| {
                let level = 4.0 * rng.uniform() as f32 - 2.0;
                let amp = 0.2 + 0.8 * rng.uniform() as f32;
                let (fx, fy) = (0.3 + rng.uniform() as f32, 0.3 + rng.uniform() as f32);
                let (ox, oy) = (50.0 * rng.uniform() as f32, 50.0 * rng.uniform() as f32);
                let mut v = Vec::with_capacity(side * side * p);
                let mut c = Vec::with_capacity(side * side * 2);
                for ty in 0..side {
                    for tx in 0..side {
                        for e in 0..p {
                            let x = (tx * p + e) as f32 / p as f32;
                            v.push(level + amp * (fx * x).sin() * (fy * ty as f32).cos());
                        }
                        c.extend([ox + 2.0 * tx as f32, oy + 3.0 * ty as f32]);
                    }
                }
                SampleTokens::new(v, c, side * side, p, 2).unwrap()
            })
            .collect();
        Ok(Batch::single(Tokens::from_samples(&samples).unwrap()))
    }
}

/// Losses of a run and the recipe metrics of its logged steps.
fn run(name: &str, steps: u64) -> (Vec<f64>, Vec<serde_json::Value>) {
    let mut enc = EncoderConfig::preset("nano", 8, vec![12.0, 18.0]).unwrap();
    enc.depth = 2;
    enc.dim = 64;
    enc.heads = 2;
    let rc = RecipeConfig::VolumeFusion(FusionConfig::default());
    let mut store = ParamStore::new(3, &Device::Cpu);
    let mut recipe = rc.build(&enc, &mut store).unwrap();
    let dir = std::env::temp_dir().join(format!("tessera-fusion-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cfg = TrainConfig {
        steps,
        batch_size: 8,
        lr: 2e-3,
        warmup_steps: 5,
        checkpoint_every: 1000,
        ..Default::default()
    };
    let opts = RunOptions {
        run_dir: &dir,
        seed: 3,
        resume: false,
        config_toml: String::new(),
        progress: false,
        comm: &tessera_train::Single,
    };
    let s = train(recipe.as_mut(), &store, &mut Crops, &cfg, &opts).unwrap();
    let logs = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    let recipe_metrics = logs
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["recipe"].clone())
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    (s.losses, recipe_metrics)
}

const STEPS: u64 = 80;

#[test]
fn fusion_loss_falls() {
    let (losses, logged) = run("falls", STEPS);
    let first: f64 = losses[..5].iter().sum::<f64>() / 5.0;
    let last: f64 = losses[losses.len() - 5..].iter().sum::<f64>() / 5.0;
    eprintln!("volume fusion loss {first:.4} -> {last:.4}");
    eprintln!("last logged recipe metrics: {}", logged.last().unwrap());
    assert!(last < 0.8 * first, "loss did not fall: {first} -> {last}");
    // The trainer logs the recipe's metrics, each in its range: accuracy and fraction in
    // [0, 1], cross-entropy >= 0, soft Dice loss in [0, 1].
    let last_logged = logged.last().unwrap();
    for (name, hi) in [
        ("alpha_accuracy", 1.0),
        ("ce", f64::INFINITY),
        ("dice_loss", 1.0),
        ("fused_fraction", 1.0),
    ] {
        let v = last_logged[name]
            .as_f64()
            .unwrap_or_else(|| panic!("{name} not logged: {last_logged}"));
        assert!((0.0..=hi).contains(&v) && v.is_finite(), "{name} = {v}");
    }
    // Some tokens are fused (else the task is trivial).
    assert!(last_logged["fused_fraction"].as_f64().unwrap() > 0.0);
}

#[test]
fn same_seed_same_losses() {
    let (a, b) = (run("a", 4).0, run("b", 4).0);
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&a), bits(&b));
}
