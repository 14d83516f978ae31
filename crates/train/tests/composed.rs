//! The composed fallback of every fused CPU kernel (what a CUDA or Metal device runs)
//! trains like the fused kernels: forced on the CPU, 50 steps of each recipe family follow
//! the fused run's loss trajectory. Its own test binary, since forcing is process-wide.

mod common;

use common::{setup, train_sines, Sines};
use tessera_core::ops::force_composed;
use tessera_recipes::RecipeConfig;
use tessera_train::{Single, TrainConfig};

fn losses(rc: &RecipeConfig, composed: bool) -> Vec<f64> {
    force_composed(composed);
    let dir = std::env::temp_dir().join(format!(
        "tessera-composed-{}-{composed}-{}",
        std::process::id(),
        format!("{rc:?}").chars().take(4).collect::<String>()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let cfg = TrainConfig {
        steps: 50,
        batch_size: 8,
        lr: 1e-3,
        warmup_steps: 5,
        checkpoint_every: 1000,
        ..Default::default()
    };
    let mut src = Sines { poison_at: None };
    let (losses, _) = train_sines(&dir, &cfg, false, rc, &Single, &mut src).unwrap();
    force_composed(false);
    losses
}

/// Largest relative difference of the loss over 50 steps between the fused kernels and
/// their composed fallbacks (the same seed, data and draws): below 1e-3 for MAE (layer
/// norm, GELU, bias, attention with padding), DINO (softmax heads, multi-crop), data2vec
/// (every layer's states, instance norm) and I-JEPA (predictor).
#[test]
fn the_composed_fallback_trains_like_the_fused_kernels() {
    let recipes = [
        setup().1,
        RecipeConfig::Dino(
            toml::from_str("local_views = 1\n[head]\nout_dim = 16\nhidden_dim = 32\nbottleneck_dim = 8")
                .unwrap(),
        ),
        RecipeConfig::Data2vec(
            toml::from_str("masks_per_sample = 2\ntop_k_layers = 2\ndecoder_dim = 32\ndecoder_depth = 1\ndecoder_heads = 2")
                .unwrap(),
        ),
        RecipeConfig::Ijepa(
            toml::from_str("predictor_dim = 32\npredictor_depth = 1\npredictor_heads = 2").unwrap(),
        ),
    ];
    for rc in recipes {
        let fused = losses(&rc, false);
        let composed = losses(&rc, true);
        assert_eq!(fused.len(), 50);
        let worst = fused
            .iter()
            .zip(&composed)
            .map(|(a, b)| (a - b).abs() / a.abs().max(1e-3))
            .fold(0f64, f64::max);
        eprintln!("{rc:?}: largest relative loss difference {worst:.2e}");
        assert!(
            worst < 1e-3,
            "{rc:?}: composed ops drift from fused by {worst}"
        );
        // Different arithmetic: bit-identical losses would mean the fallback never ran.
        assert_ne!(
            fused, composed,
            "{rc:?}: forcing the fallback changed nothing"
        );
    }
}
