//! A toy modality generated for the conformance suite, to prove that a domain is a few new
//! files plus one registration line: `.toy` text files (`TOY1 <n>` then `n` numbers), one
//! token per `patch` consecutive values with its position as the coordinate, dataset
//! normalisation statistics in the card, random training windows and a centre evaluation
//! window.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tessera_tokens::grid::{AxisCoords, GridAxis, GridFront};
use tessera_tokens::stats::RunningStats;
use tessera_tokens::{
    CoordAxis, GridInput, InfoRow, Modality, NormStats, Rng, SampleTokens, TokenLayout, TokenSpec,
};

/// The toy domain's one error enum.
#[derive(Debug, thiserror::Error)]
pub enum ToyError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {msg}")]
    Format { path: PathBuf, msg: String },
    #[error("toy front end: {0}")]
    Config(String),
    #[error(transparent)]
    Tokens(#[from] tessera_tokens::TokenError),
}

/// The `[toy]` table of a card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToyConfig {
    /// Values per training window.
    pub crop: usize,
    /// Values per token.
    pub patch: usize,
    #[serde(default)]
    pub norm: Option<NormStats>,
}

/// The toy front end.
pub struct Toy {
    cfg: ToyConfig,
}

const MAX_BYTES: u64 = 1 << 20;

fn format_err(path: &Path, msg: impl Into<String>) -> ToyError {
    ToyError::Format {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

fn read_values(path: &Path) -> Result<Vec<f32>, ToyError> {
    let io = |source| ToyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let len = std::fs::metadata(path).map_err(io)?.len();
    if len > MAX_BYTES {
        return Err(format_err(
            path,
            format!("{len} bytes: larger than a toy file"),
        ));
    }
    let bytes = std::fs::read(path).map_err(io)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| format_err(path, "not UTF-8 text"))?;
    let mut lines = text.lines();
    let head = lines.next().unwrap_or_default();
    let n: usize = head
        .strip_prefix("TOY1 ")
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| format_err(path, format!("header `{head}` is not `TOY1 <count>`")))?;
    let values = lines
        .map(|l| {
            l.trim()
                .parse::<f32>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| format_err(path, format!("`{l}` is not a finite number")))
        })
        .collect::<Result<Vec<f32>, _>>()?;
    if values.len() != n {
        return Err(format_err(
            path,
            format!(
                "header declares {n} values, the file holds {}",
                values.len()
            ),
        ));
    }
    Ok(values)
}

impl Toy {
    fn window(&self, s: &[f32], start: usize) -> Result<SampleTokens, ToyError> {
        let (c, p) = (self.cfg.crop, self.cfg.patch);
        let mut w = vec![0f32; c];
        for (i, x) in w.iter_mut().enumerate() {
            if let Some(v) = s.get(start + i) {
                *x = *v;
            }
        }
        let n = c / p;
        let coords = (0..n)
            .map(|j| (j * p) as f32 + (p as f32 - 1.0) / 2.0)
            .collect();
        Ok(SampleTokens::new(w[..n * p].to_vec(), coords, n, p, 1)?)
    }
}

impl Modality for Toy {
    const NAME: &'static str = "toy";
    const EXTENSIONS: &'static [&'static str] = &["toy"];
    type Config = ToyConfig;
    type Sample = Vec<f32>;
    type Stats = RunningStats;
    type Error = ToyError;

    fn new(cfg: &ToyConfig) -> Result<Self, ToyError> {
        if cfg.patch == 0 || cfg.crop < cfg.patch {
            return Err(ToyError::Config(format!(
                "crop {} must hold at least one patch of {}",
                cfg.crop, cfg.patch
            )));
        }
        Ok(Self { cfg: cfg.clone() })
    }
    fn config(&self) -> &ToyConfig {
        &self.cfg
    }
    fn token_spec(&self) -> TokenSpec {
        TokenSpec {
            p: self.cfg.patch,
            k: 1,
            value_unit: "normalised value".into(),
            axes: vec![CoordAxis {
                name: "position".into(),
                unit: "sample".into(),
                scale: self.cfg.crop as f32,
            }],
            layout: TokenLayout::Set,
        }
    }
    fn decode(&self, path: &Path) -> Result<Vec<f32>, ToyError> {
        let mut v = read_values(path)?;
        if let Some(n) = &self.cfg.norm {
            n.apply(&mut v);
        }
        Ok(v)
    }
    fn sample_bytes(s: &Vec<f32>) -> usize {
        s.len() * 4
    }
    fn train_view(&self, s: &Vec<f32>, rng: &mut Rng) -> Result<SampleTokens, ToyError> {
        let start = rng.below(s.len().saturating_sub(self.cfg.crop) + 1);
        self.window(s, start)
    }
    fn eval_view(&self, s: &Vec<f32>) -> Result<SampleTokens, ToyError> {
        self.window(s, s.len().saturating_sub(self.cfg.crop) / 2)
    }
    fn random_sample(&self, rng: &mut Rng) -> Result<Vec<f32>, ToyError> {
        Ok((0..self.cfg.crop).map(|_| rng.normal() as f32).collect())
    }
    fn stats_start(&self) -> Option<RunningStats> {
        self.cfg.norm.is_none().then(RunningStats::default)
    }
    fn stats_add(&self, st: &mut RunningStats, s: &Vec<f32>) {
        st.push_slice(s);
    }
    fn stats_finish(&self, st: RunningStats) -> Result<ToyConfig, ToyError> {
        Ok(ToyConfig {
            norm: Some(st.finish()),
            ..self.cfg.clone()
        })
    }
    fn inspect(&self, path: &Path) -> Result<InfoRow, ToyError> {
        let v = read_values(path)?;
        Ok(vec![
            ("file".into(), path.display().to_string()),
            ("values".into(), v.len().to_string()),
        ])
    }
    /// `[1, 1, crop]`: the centre window, normalised in the graph.
    fn grid_front(&self) -> Option<GridFront> {
        Some(GridFront {
            channels: 1,
            axes: vec![GridAxis {
                name: "position".into(),
                patch: self.cfg.patch,
                coords: AxisCoords::Affine {
                    offset: (self.cfg.patch as f32 - 1.0) / 2.0,
                    step: self.cfg.patch as f32,
                },
                coord_index: 0,
            }],
            norm: self.cfg.norm.map(|n| (n.mean as f32, n.std as f32)),
        })
    }
    fn grid_input(&self, s: &Vec<f32>) -> Result<Option<GridInput>, ToyError> {
        let t = self.eval_view(s)?;
        let (m, sd) = self
            .cfg
            .norm
            .map(|n| (n.mean as f32, n.std as f32))
            .unwrap_or((0.0, 1.0));
        let data: Vec<f32> = t.values.iter().map(|x| x * sd + m).collect();
        Ok(Some((vec![1, 1, data.len()], data)))
    }
    fn baselines() -> &'static [&'static str] {
        &["moments"]
    }
    fn baseline(&self, name: &str, s: &Vec<f32>) -> Result<Vec<f32>, ToyError> {
        if name != "moments" {
            return Err(ToyError::Config(format!("unknown baseline `{name}`")));
        }
        let t = self.eval_view(s)?;
        let m = t.values.iter().sum::<f32>() / t.values.len() as f32;
        let v = t.values.iter().map(|x| (x - m).powi(2)).sum::<f32>() / t.values.len() as f32;
        let d = t
            .values
            .windows(2)
            .map(|w| (w[1] - w[0]).abs())
            .sum::<f32>();
        Ok(vec![m, v.sqrt(), d])
    }
    fn write_demo_data(dir: &Path, seed: u64) -> Result<PathBuf, ToyError> {
        let io = |path: &Path, source| ToyError::Io {
            path: path.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let mut rng = Rng::new(seed);
        let mut manifest = String::from("path,label,split\n");
        for class in ["sine", "ramp"] {
            for i in 0..12 {
                let n = 32 + rng.below(16);
                let phase = rng.uniform() * std::f64::consts::TAU;
                let values: Vec<String> = (0..n)
                    .map(|t| {
                        let x = if class == "sine" {
                            (t as f64 * 0.8 + phase).sin()
                        } else {
                            ((t as f64 * 0.1 + phase) % 1.0) * 2.0 - 1.0
                        };
                        format!("{:.5}", x + 0.05 * rng.normal())
                    })
                    .collect();
                let name = format!("{class}_{i:02}.toy");
                let p = dir.join(&name);
                std::fs::write(&p, format!("TOY1 {n}\n{}\n", values.join("\n")))
                    .map_err(|e| io(&p, e))?;
                let split = if i % 4 == 0 { "test" } else { "train" };
                manifest += &format!("{name},{class},{split}\n");
            }
        }
        let m = dir.join("manifest.csv");
        std::fs::write(&m, manifest).map_err(|e| io(&m, e))?;
        Ok(m)
    }
}

/// The toy application's one preset.
pub const PRESET: &str = r#"
name = "toy-nano"
seed = 0

[toy]
crop = 16
patch = 4

[encoder]
size = "nano"

[recipe]
kind = "mae"
decoder_dim = 32
decoder_depth = 1
decoder_heads = 2
norm_pix_loss = false

[recipe.mask]
ratio = 0.5

[train]
steps = 4
batch_size = 4
lr = 1e-3
min_lr = 1e-5
warmup_steps = 1
weight_decay = 0.05
betas = [0.9, 0.95]
clip_norm = 1.0
checkpoint_every = 2
log_every = 1
"#;

/// The toy preset trained by each recipe beyond MAE (tiny heads, a few steps): every
/// recipe must pretrain, resume, probe and export with ONNX parity on any modality.
pub const RECIPE_PRESETS: &[(&str, &str)] = &[
    (
        "toy-nano-dino",
        "extends = \"toy-nano\"\nname = \"toy-nano-dino\"\n[recipe]\nkind = \"dino\"\nlocal_views = 1\nlocal_extent = 0.5\n[recipe.head]\nout_dim = 32\nhidden_dim = 32\nbottleneck_dim = 16\n",
    ),
    (
        "toy-nano-moco",
        "extends = \"toy-nano\"\nname = \"toy-nano-moco\"\n[recipe]\nkind = \"moco\"\ndim = 16\nhidden_dim = 32\nqueue = 8\n",
    ),
    (
        "toy-nano-ijepa",
        "extends = \"toy-nano\"\nname = \"toy-nano-ijepa\"\n[recipe]\nkind = \"ijepa\"\npredictor_dim = 32\npredictor_depth = 1\npredictor_heads = 2\n",
    ),
    (
        "toy-nano-data2vec",
        "extends = \"toy-nano\"\nname = \"toy-nano-data2vec\"\n[recipe]\nkind = \"data2vec\"\nmasks_per_sample = 2\ntop_k_layers = 2\ndecoder_dim = 32\ndecoder_depth = 1\ndecoder_heads = 2\n",
    ),
    (
        "toy-nano-hubert",
        "extends = \"toy-nano\"\nname = \"toy-nano-hubert\"\n[recipe]\nkind = \"hubert\"\nunits = 4\nprepare_batches = 1\n[recipe.mask]\nratio = 0.5\n",
    ),
];
