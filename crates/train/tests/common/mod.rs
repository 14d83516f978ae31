//! What the trainer's test binaries share: a learnable synthetic source and a small MAE.

use candle_core::Device;
use tessera_core::{EncoderConfig, ParamStore};
use tessera_recipes::mae::MaeConfig;
use tessera_recipes::{Batch, RecipeConfig};
use tessera_tokens::{Rng, SampleTokens, Tokens, ViewSpec};
use tessera_train::{
    train, BatchSlot, BatchSource, Collective, Result, RunOptions, TrainConfig, TrainError,
};

/// Smooth 1-D signals cut into 8-value tokens: learnable structure.
pub struct Sines {
    pub poison_at: Option<u64>,
}

impl BatchSource for Sines {
    /// Each view of a sample is the same sine from its own random phase; a local view
    /// keeps half of its tokens.
    fn batch(&mut self, slot: &BatchSlot, views: &[ViewSpec], rng: &mut Rng) -> Result<Batch> {
        let (step, batch_size) = (slot.step, slot.len());
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

pub fn setup() -> (EncoderConfig, RecipeConfig) {
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

/// Trains `rc` with seed 7 on `src` as a member of `comm`.
pub fn train_sines(
    dir: &std::path::Path,
    cfg: &TrainConfig,
    resume: bool,
    rc: &RecipeConfig,
    comm: &dyn Collective,
    src: &mut dyn BatchSource,
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
        comm,
    };
    let s = train(recipe.as_mut(), &store, src, cfg, &opts)?;
    Ok((s.losses, store))
}
