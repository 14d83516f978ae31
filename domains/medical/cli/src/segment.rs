//! `segment`: few-label segmentation on top of a pretrained (or random) encoder.
//!
//! The head maps each patch token to voxel logits: `LayerNorm → Linear(D → P·C)` (SETR's
//! "naive" head at patch resolution, one logit per voxel and class) plus, with
//! `skip_values`, a linear map of the patch's own normalised voxels (`Linear(P → P·C)`), a
//! full-resolution skip that lets boundaries follow the intensities. With `conv_layers > 0`
//! the head is a light convolutional decoder instead (UNETR's last stage): each token maps
//! to `decoder_features` per voxel, the voxels' own intensities are concatenated, and
//! `conv_layers` 3×3×3 convolutions of `conv_channels` with ReLU and a 1×1×1 convolution
//! give the logits, so each voxel sees its neighbours across patch borders. The loss is
//! cross-entropy plus soft Dice over all classes (nnU-Net's loss). Training runs through the
//! shared trainer (checkpoints, resume, schedule) on random crops of the labelled cases,
//! `foreground_crop_fraction` of them centred on a labelled voxel; inference slides windows
//! of the training crop size over the whole volume with half overlap.

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use clap::Args;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tessera_app::{encoder_for, save_rows, App, RunCard};
use tessera_cli::{list_data, progress, CommonArgs, DataItem, ManifestColumns};
use tessera_core::layers::{Conv3d, LayerNorm, Linear};
use tessera_core::{CoreError, Encoder, ParamStore, TokenTensors};
use tessera_eval::segmentation::{cases_csv, score_label_maps, summarise_segmentation};
use tessera_eval::ResultRow;
use tessera_medical::modality::random_origin;
use tessera_medical::synth::{write_nifti, Voxels};
use tessera_medical::tokenizer::{crop_block, PatchConfig, VolumeTokenizer};
use tessera_medical::{MedicalFrontend, Volume};
use tessera_recipes::fusion::fusion_losses;
use tessera_recipes::{Batch, Recipe, StepContext, StepOutput, Targets};
use tessera_tokens::{Modality, Rng, Tokens, ViewSpec};
use tessera_train::{
    latest_checkpoint, BatchSlot, BatchSource, EpochOrder, RunOptions, TrainConfig, TrainError,
};

#[derive(Debug, Clone, Args)]
pub struct SegmentArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Start from a randomly initialised encoder (the baseline) instead of --checkpoint.
    #[arg(long)]
    pub random_init: bool,
    /// Keep the encoder frozen (train the head only).
    #[arg(long)]
    pub freeze: bool,
    /// Split value of the labelled training rows (default: every row that is not test).
    #[arg(long)]
    pub train_split: Option<String>,
    /// Stop training after this many minutes (the schedule is unchanged).
    #[arg(long)]
    pub minutes: Option<f64>,
    /// Apply a trained segmentation run (--checkpoint) to --data and write label maps to --out.
    #[arg(long)]
    pub apply: bool,
    /// Evaluate a trained segmentation run (--checkpoint) on the test split of --data.
    #[arg(long)]
    pub evaluate: bool,
    /// Name of this run in the printed results (default: the output folder name).
    #[arg(long)]
    pub name: Option<String>,
    /// Task name in the results table (`OUT/rows.jsonl`).
    #[arg(long, default_value = "segmentation")]
    pub task: String,
    /// Time this many training steps on one batch of labelled crops and print the JSON line
    /// of `bench-step` instead of training (the side-by-side of `benchmarks/seg_step.sh`).
    #[arg(long, value_name = "STEPS")]
    pub bench_steps: Option<usize>,
    /// Untimed steps before `--bench-steps`.
    #[arg(long, default_value_t = 2)]
    pub bench_warmup: usize,
}

fn three() -> usize {
    3
}
fn yes() -> bool {
    true
}
fn one() -> f64 {
    1.0
}
fn sixteen() -> usize {
    16
}
fn eight() -> usize {
    8
}
fn two_thirds() -> f64 {
    0.67
}

/// Hyperparameters of `segment` (the `[segment]` table of a card).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentConfig {
    /// Classes including background.
    #[serde(default = "three")]
    pub classes: usize,
    #[serde(default)]
    pub freeze_encoder: bool,
    #[serde(default = "yes")]
    pub skip_values: bool,
    #[serde(default = "one")]
    pub dice_weight: f64,
    #[serde(default = "two_thirds")]
    pub foreground_crop_fraction: f64,
    /// Layer-wise learning-rate decay of a fine-tuned encoder (1 = none; MAE fine-tunes
    /// with 0.65-0.75): block `i` of `L` learns at `layer_decay^(L − i)` × the rate.
    #[serde(default = "one")]
    pub layer_decay: f64,
    /// 3×3×3 convolutions of the decoder (0: the per-token linear head alone).
    #[serde(default)]
    pub conv_layers: usize,
    /// Channels of each decoder convolution.
    #[serde(default = "sixteen")]
    pub conv_channels: usize,
    /// Features per voxel that each token is mapped to before the convolutions.
    #[serde(default = "eight")]
    pub decoder_features: usize,
    /// Set when the run was initialised from a pretraining run (recorded, not read).
    #[serde(default)]
    pub init: String,
    pub train: TrainConfig,
}

type Card = RunCard<MedicalFrontend>;

/// The `[segment]` table: the `medical-segment` preset, then the run card's own table (a
/// preset or an older run may carry one), each merged over the last.
pub fn segment_config(card: &Card) -> Result<SegmentConfig> {
    let base = crate::PRESETS.resolve(Some("medical-segment"), "medical-segment", None)?;
    let mut seg = base
        .get("segment")
        .cloned()
        .context("the medical-segment preset has no [segment] table")?;
    if let Some(own) = card.extra.get("segment") {
        tessera_cli::deep_merge(&mut seg, own.clone());
    }
    seg.try_into().context("invalid [segment] table")
}

/// Encoder plus the segmentation head; a `Recipe` so the shared trainer runs it. Views:
/// 0 = image tokens, 1 = label tokens (class ids as values, one per voxel).
pub struct SegModel {
    cfg: SegmentConfig,
    encoder: Encoder,
    norm: LayerNorm,
    head: Linear,
    skip: Option<Linear>,
    /// The convolutional decoder: 3×3×3 layers, then the 1×1×1 classifier.
    convs: Vec<Conv3d>,
    voxels: usize,
    /// Patch `[px, py, pz]` and tokens per axis `[gx, gy, gz]` of a training crop (the
    /// decoder reassembles the token grid of such windows).
    patch: [usize; 3],
    grid: [usize; 3],
    in_channels: usize,
}

impl SegModel {
    pub fn new(
        cfg: &SegmentConfig,
        encoder: Encoder,
        store: &mut ParamStore,
        patch: [usize; 3],
        crop: [usize; 3],
    ) -> Result<Self> {
        let d = encoder.cfg.dim;
        let p = encoder.cfg.patch_dim;
        let c = cfg.classes;
        let voxels = patch.iter().product::<usize>();
        let in_channels = p / voxels.max(1);
        if c < 2 {
            bail!("segment: classes must be at least 2 (background and one structure)");
        }
        if !(cfg.layer_decay > 0.0 && cfg.layer_decay <= 1.0) {
            bail!(
                "segment: layer_decay must be in (0, 1], got {}",
                cfg.layer_decay
            );
        }
        encoder.set_layer_decay(store, tessera_recipes::ENCODER_PREFIX, cfg.layer_decay);
        let conv = cfg.conv_layers > 0;
        let mut convs = Vec::new();
        if conv {
            if cfg.conv_channels == 0 || cfg.decoder_features == 0 {
                bail!("segment: conv_channels and decoder_features must be positive");
            }
            let mut width = cfg.decoder_features + if cfg.skip_values { in_channels } else { 0 };
            for i in 0..cfg.conv_layers {
                convs.push(Conv3d::new(
                    store,
                    &format!("seg.decoder.conv{i}"),
                    width,
                    cfg.conv_channels,
                    3,
                )?);
                width = cfg.conv_channels;
            }
            convs.push(Conv3d::new(store, "seg.decoder.classifier", width, c, 1)?);
        }
        let per_voxel = if conv { cfg.decoder_features } else { c };
        Ok(Self {
            norm: LayerNorm::new(store, "seg.head.norm", d, encoder.cfg.norm_eps)?,
            head: Linear::new(store, "seg.head.proj", d, voxels * per_voxel, true)?,
            skip: if cfg.skip_values && !conv {
                Some(Linear::new(store, "seg.skip", p, voxels * c, false)?)
            } else {
                None
            },
            convs,
            cfg: cfg.clone(),
            encoder,
            voxels,
            patch,
            grid: [0, 1, 2].map(|a| crop[a] / patch[a]),
            in_channels,
        })
    }

    /// Voxel logits per token, class-major inside a token: `[B, N, C·V]`.
    pub fn logits(&self, t: &TokenTensors) -> tessera_recipes::Result<Tensor> {
        let x = if self.cfg.freeze_encoder {
            // No graph through a frozen encoder: its activations are freed as it goes.
            tessera_core::no_grad(|| self.encoder.forward(t))?.patches
        } else {
            self.encoder.forward(t)?.patches
        };
        let mut y = self.head.forward(&self.norm.forward(&x)?)?;
        if let Some(s) = &self.skip {
            y = (y + s.forward(&t.values)?)?;
        }
        if self.convs.is_empty() {
            return Ok(y);
        }
        // Token rows → channel-last voxel grid [B, Z, Y, X, F (+ intensities)].
        let n = y.dim(1)?;
        let [gx, gy, gz] = self.grid;
        if n != gx * gy * gz {
            return Err(CoreError::Shape {
                what: "segment decoder tokens".into(),
                expected: format!("{} (a {gx}x{gy}x{gz} grid)", gx * gy * gz),
                got: n.to_string(),
            });
        }
        let mut g = tokens_to_grid(&y, self.grid, self.patch, self.cfg.decoder_features)?;
        if self.cfg.skip_values {
            let v = tokens_to_grid(&t.values, self.grid, self.patch, self.in_channels)?;
            g = Tensor::cat(&[g, v], 4)?;
        }
        let last = self.convs.len() - 1;
        for (i, conv) in self.convs.iter().enumerate() {
            g = conv.forward(&g)?;
            if i < last {
                g = g.relu()?;
            }
        }
        Ok(grid_to_tokens(&g, self.grid, self.patch)?)
    }
}

/// Token rows `[B, N, F·V]` of a full `grid` of `patch`es (tokens z-slowest, values
/// feature-major then voxel `(z, y, x)`, as the volume tokenizer writes them) → the
/// channel-last voxel grid `[B, Z, Y, X, F]`.
pub fn tokens_to_grid(
    rows: &Tensor,
    grid: [usize; 3],
    patch: [usize; 3],
    f: usize,
) -> candle_core::Result<Tensor> {
    let b = rows.dim(0)?;
    let ([gx, gy, gz], [px, py, pz]) = (grid, patch);
    rows.reshape(vec![b, gz, gy, gx, f, pz, py, px])?
        .permute([0, 1, 5, 2, 6, 3, 7, 4])?
        .contiguous()?
        .reshape((b, gz * pz, gy * py, gx * px, f))
}

/// The inverse of [`tokens_to_grid`]: `[B, Z, Y, X, F]` → `[B, N, F·V]`.
pub fn grid_to_tokens(
    g: &Tensor,
    grid: [usize; 3],
    patch: [usize; 3],
) -> candle_core::Result<Tensor> {
    let (b, _, _, _, f) = g.dims5()?;
    let ([gx, gy, gz], [px, py, pz]) = (grid, patch);
    g.reshape(vec![b, gz, pz, gy, py, gx, px, f])?
        .permute([0, 1, 3, 5, 7, 2, 4, 6])?
        .contiguous()?
        .reshape((b, gx * gy * gz, f * px * py * pz))
}

impl Recipe for SegModel {
    fn name(&self) -> &'static str {
        "segment"
    }
    fn loss(
        &self,
        batch: &Batch,
        _ctx: &StepContext,
        _rng: &mut Rng,
    ) -> tessera_recipes::Result<StepOutput> {
        let img = batch.first("segment")?;
        let Some(Targets::PerToken(lab)) = &batch.targets else {
            return Err(CoreError::Config(
                "segment: the batch carries no per-token labels".into(),
            ));
        };
        let (b, n, v, c) = (img.b, img.n, self.voxels, self.cfg.classes);
        if lab.p != v || lab.n != n || lab.b != b {
            return Err(CoreError::Config(format!(
                "segment: label view has {}x{}x{} values, expected {b}x{n}x{v}",
                lab.b, lab.n, lab.p
            )));
        }
        let dev = Device::Cpu;
        let t = TokenTensors::from_tokens(img, &dev)?;
        // [B, N, C, V] → [B, N·V, C]
        let logits = self
            .logits(&t)?
            .reshape((b, n, c, v))?
            .transpose(2, 3)?
            .contiguous()?
            .reshape((b, n * v, c))?;
        let mut onehot = vec![0f32; b * n * v * c];
        let mut keep = vec![0f32; b * n * v];
        for bi in 0..b {
            for ni in 0..n {
                if lab.padding[bi * n + ni] != 0 {
                    continue;
                }
                for vi in 0..v {
                    let i = (bi * n + ni) * v + vi;
                    let k = (lab.values[i] as usize).min(c - 1);
                    onehot[i * c + k] = 1.0;
                    keep[i] = 1.0;
                }
            }
        }
        let onehot = Tensor::from_vec(onehot, (b, n * v, c), &dev)?;
        let keep = Tensor::from_vec(keep, (b, n * v), &dev)?;
        let (ce, dice) = fusion_losses(&logits, &onehot, &keep)?;
        let loss = (&ce + (&dice * self.cfg.dice_weight)?)?;
        let metrics = vec![
            ("ce".to_string(), ce.to_scalar::<f32>()? as f64),
            ("dice_loss".to_string(), dice.to_scalar::<f32>()? as f64),
        ];
        Ok(StepOutput::new(loss, metrics))
    }
    fn encoder(&self) -> &Encoder {
        &self.encoder
    }
}

/// A labelled case on the card's grid.
struct Case {
    image: Arc<Volume<f32>>,
    labels: Vec<f32>,
    /// Indices of labelled (non-zero) voxels.
    foreground: Vec<usize>,
}

struct CaseSource<'a> {
    fe: &'a MedicalFrontend,
    labels_tk: VolumeTokenizer,
    cases: &'a [Case],
    order: EpochOrder,
    fg_fraction: f64,
}

impl BatchSource for CaseSource<'_> {
    fn batch(
        &mut self,
        slot: &BatchSlot,
        _views: &[ViewSpec],
        rng: &mut Rng,
    ) -> tessera_train::Result<Batch> {
        let bs = slot.len();
        let crop = self.fe.cfg.crop;
        let data = |e: tessera_medical::MedicalError| TrainError::DataSource(Box::new(e));
        let (mut imgs, mut labs) = (Vec::with_capacity(bs), Vec::with_capacity(bs));
        for j in 0..bs {
            let case = &self.cases[self.order.sample(slot.first() + j)];
            let v = &case.image;
            let origin = if !case.foreground.is_empty() && rng.uniform() < self.fg_fraction {
                let i = case.foreground[rng.below(case.foreground.len())];
                let (x, y, z) = (
                    i % v.dims[0],
                    (i / v.dims[0]) % v.dims[1],
                    i / (v.dims[0] * v.dims[1]),
                );
                let c = [x, y, z];
                [0, 1, 2].map(|a| c[a] as isize - (crop[a] / 2) as isize)
            } else {
                random_origin(v.dims, crop, rng)
            };
            imgs.push(
                self.fe
                    .tokens(&self.fe.block(v, origin, crop))
                    .map_err(data)?,
            );
            let lb = crop_block(&case.labels, 1, v.dims, v.spacing_mm, origin, crop, 0.0);
            labs.push(self.labels_tk.tokenize(&lb).map_err(data)?);
        }
        let mut batch = Batch::single(Tokens::from_samples(&imgs)?);
        batch.targets = Some(Targets::PerToken(Tokens::from_samples(&labs)?));
        Ok(batch)
    }
}

/// Image/label pairs of `--data`: a manifest with `image` and `label` columns, or a folder
/// with `images/` and `labels/` (same file names).
fn list_cases(common: &CommonArgs) -> Result<Vec<(DataItem, PathBuf)>> {
    let data = common.data()?;
    if data.is_dir() {
        let (img, lab) = (data.join("images"), data.join("labels"));
        if !img.is_dir() || !lab.is_dir() {
            bail!("{}: expected images/ and labels/ sub-folders (or a manifest with image,label columns)", data.display());
        }
        let items = list_data(
            &img,
            &|p| MedicalFrontend::accepts(p),
            &ManifestColumns::default(),
        )?;
        return Ok(items
            .into_iter()
            .map(|i| {
                let l = lab.join(i.path.file_name().unwrap_or_default());
                (i, l)
            })
            .collect());
    }
    let cols = ManifestColumns {
        label: Some(
            common
                .label_column
                .clone()
                .unwrap_or_else(|| "label".into()),
        ),
        split: common.split_column.clone(),
    };
    let root = data.parent().unwrap_or(Path::new("."));
    list_data(data, &|p| MedicalFrontend::accepts(p), &cols)?
        .into_iter()
        .map(|i| {
            let l = i
                .label
                .clone()
                .with_context(|| format!("{}: row without a label path", i.path.display()))?;
            let l = PathBuf::from(l);
            let l = if l.is_absolute() { l } else { root.join(l) };
            Ok((i, l))
        })
        .collect()
}

/// Window origins along one axis: every `stride` voxels, the last one flush with the end
/// (one window at 0, zero-padded, when the volume is smaller than the window).
fn window_starts(n: usize, win: usize, stride: usize) -> Vec<isize> {
    if n <= win {
        return vec![0];
    }
    let mut v: Vec<isize> = (0..=n - win)
        .step_by(stride.max(1))
        .map(|x| x as isize)
        .collect();
    if *v.last().unwrap_or(&0) != (n - win) as isize {
        v.push((n - win) as isize);
    }
    v
}

/// Predicted labels (x fastest, on the volume's own grid) of one prepared volume: sliding
/// windows of the training crop size with half-window overlap (so token coordinates stay
/// in the range seen in training), class probabilities averaged where windows overlap.
fn predict(model: &SegModel, fe: &MedicalFrontend, v: &Volume<f32>) -> Result<Vec<u8>> {
    let c = model.cfg.classes;
    let win = fe.cfg.crop;
    let [nx, ny, nz] = v.dims;
    let n = nx * ny * nz;
    let mut prob = vec![0f32; c * n];
    let starts: Vec<Vec<isize>> = (0..3)
        .map(|a| window_starts(v.dims[a], win[a], win[a] / 2))
        .collect();
    let plane = win.iter().product::<usize>();
    for &z0 in &starts[2] {
        for &y0 in &starts[1] {
            for &x0 in &starts[0] {
                let o = [x0, y0, z0];
                let t = Tokens::from_samples(&[fe.tokens(&fe.block(v, o, win))?])?;
                let tt = TokenTensors::from_tokens(&t, &Device::Cpu)?;
                let logits = tessera_core::no_grad(|| model.logits(&tt))?;
                let rows = logits.flatten_all()?.to_vec1::<f32>()?;
                let lv = fe.tokenizer.untokenize(&rows, win, c)?; // [C, wz, wy, wx]
                for z in 0..win[2] {
                    for y in 0..win[1] {
                        for x in 0..win[0] {
                            let g = [o[0] + x as isize, o[1] + y as isize, o[2] + z as isize];
                            if (0..3).any(|a| g[a] < 0 || g[a] >= v.dims[a] as isize) {
                                continue;
                            }
                            let i = (z * win[1] + y) * win[0] + x;
                            let m = (0..c)
                                .map(|k| lv[k * plane + i])
                                .fold(f32::NEG_INFINITY, f32::max);
                            let sum: f32 = (0..c).map(|k| (lv[k * plane + i] - m).exp()).sum();
                            let gi = (g[2] as usize * ny + g[1] as usize) * nx + g[0] as usize;
                            for k in 0..c {
                                prob[k * n + gi] += (lv[k * plane + i] - m).exp() / sum;
                            }
                        }
                    }
                }
            }
        }
    }
    Ok((0..n)
        .map(|i| {
            (0..c)
                .max_by(|&a, &b| prob[a * n + i].total_cmp(&prob[b * n + i]))
                .unwrap_or(0) as u8
        })
        .collect())
}

fn build_model(
    card: &Card,
    seg: &SegmentConfig,
    enc: Encoder,
    store: &mut ParamStore,
) -> Result<SegModel> {
    SegModel::new(
        seg,
        enc,
        store,
        card.frontend.tokenizer.patch,
        card.frontend.crop,
    )
}

/// `segment`: train and evaluate, `--evaluate` a trained run, or `--apply` it.
pub fn run(app: &App<MedicalFrontend>, args: &SegmentArgs) -> Result<()> {
    let common = &args.common;
    tessera_cli::init_threads(common.threads)?;
    if args.apply {
        return apply(app, common);
    }
    let out = common.out()?;
    let all = list_cases(common)?;
    let test: Vec<_> = all.iter().filter(|(i, _)| common.is_test(i)).collect();
    let (seg, fe, model, head, seed) = if args.evaluate {
        if test.is_empty() {
            bail!("no `{}` rows to evaluate", common.test_split);
        }
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        let (seg, fe, model) = load_run(app, common)?;
        let head = format!(
            "\"init\": \"{}\", \"run\": \"{}\"",
            seg.init,
            common
                .checkpoint
                .as_deref()
                .unwrap_or(Path::new(""))
                .display()
        );
        (seg, fe, model, head, common.seed.unwrap_or(0))
    } else {
        match fit(app, args, out, &all, test.len())? {
            Some(fitted) => fitted,
            None => return Ok(()), // --bench-steps
        }
    };
    if test.is_empty() {
        println!("no `{}` rows: nothing to evaluate", common.test_split);
        return Ok(());
    }
    let row = ResultRow {
        run: run_name(args, out),
        task: args.task.clone(),
        protocol: if seg.freeze_encoder {
            "frozen"
        } else {
            "finetune"
        }
        .into(),
        features: if seg.conv_layers > 0 {
            "conv decoder"
        } else {
            "linear head"
        }
        .into(),
        seed,
        ..Default::default()
    };
    evaluate(&model, &fe, &test, seg.classes, out, row, &head)
}

/// A trained segmentation model: its config, front end, model, the head of its result
/// line and its seed.
type Fitted = (SegmentConfig, MedicalFrontend, SegModel, String, u64);

/// Trains the segmentation model on the non-test (or `--train-split`) rows of `all`;
/// returns it with the head of its result line and its seed (`None` after
/// `--bench-steps`, which times steps instead of training).
fn fit(
    app: &App<MedicalFrontend>,
    args: &SegmentArgs,
    out: &Path,
    all: &[(DataItem, PathBuf)],
    test_cases: usize,
) -> Result<Option<Fitted>> {
    let common = &args.common;
    let run = encoder_for(app, common, args.random_init)?;
    let (mut card, enc, mut store) = (run.card, run.encoder, run.store);
    let fe = run.m;
    if let (Some(cfg), Some(_)) = (&common.config, &common.checkpoint) {
        // A pretraining run's card comes from its folder; --config still overrides it here
        // (e.g. `[segment.train] lr = ...`).
        let mut base = card.to_value()?;
        tessera_cli::merge_file(&mut base, cfg)?;
        card = Card::from_value(base, &cfg.display().to_string())?;
    }
    if let Some(seed) = common.seed {
        card.seed = seed; // data order and crops (and the encoder itself with --random-init)
    }
    let mut seg = segment_config(&card)?;
    seg.freeze_encoder |= args.freeze;
    seg.init = match (&common.checkpoint, args.random_init) {
        (Some(run), false) => run.display().to_string(),
        _ => format!("random (seed {})", card.seed),
    };
    if let Some(s) = common.steps {
        seg.train.steps = s;
    }
    if let Some(b) = common.batch_size {
        seg.train.batch_size = b;
    }
    if let Some(m) = args.minutes {
        seg.train.time_limit_s = Some(m * 60.0);
    }
    card.extra
        .insert("segment".into(), toml::Value::try_from(&seg)?);
    let mut model = build_model(&card, &seg, enc, &mut store)?;
    if seg.freeze_encoder {
        store.set_trainable(tessera_recipes::ENCODER_PREFIX, false);
    }
    let train: Vec<_> = all
        .iter()
        .filter(|(i, _)| {
            !common.is_test(i)
                && args
                    .train_split
                    .as_ref()
                    .is_none_or(|s| i.split.as_deref() == Some(s.as_str()))
        })
        .collect();
    if train.is_empty() {
        bail!("no labelled training cases (check --train-split and the split column)");
    }
    let bar = progress(train.len() as u64, "reading labelled cases");
    let mut cases = Vec::with_capacity(train.len());
    for (item, lab) in &train {
        let (v, l) = fe.load_case(&item.path, lab)?;
        let labels: Vec<f32> = l.data.iter().map(|&x| x as f32).collect();
        let foreground = (0..labels.len()).filter(|&i| labels[i] > 0.0).collect();
        cases.push(Case {
            image: Arc::new(v),
            labels,
            foreground,
        });
        bar.inc(1);
    }
    bar.finish_and_clear();
    eprintln!(
        "segment: {} labelled cases, {} test cases, encoder {} ({}), head {} parameters",
        cases.len(),
        test_cases,
        if seg.freeze_encoder {
            "frozen"
        } else {
            "fine-tuned"
        },
        seg.init,
        store.count("seg.")
    );
    let mut source = CaseSource {
        fe: &fe,
        labels_tk: VolumeTokenizer::new(
            &PatchConfig {
                patch: card.frontend.tokenizer.patch,
            },
            1,
        )?,
        cases: &cases,
        order: EpochOrder::new(card.seed, cases.len()),
        fg_fraction: seg.foreground_crop_fraction,
    };
    if let Some(steps) = args.bench_steps {
        let mut rng = Rng::new(card.seed);
        let slot = BatchSlot::whole(1, seg.train.batch_size);
        let batch = source.batch(&slot, &[], &mut rng)?;
        let line = tessera_train::bench_batch(
            &mut model,
            &store,
            &seg.train,
            &batch,
            &mut rng,
            args.bench_warmup,
            steps,
        )?;
        println!("{line}");
        return Ok(None);
    }
    let opts = RunOptions {
        run_dir: out,
        seed: card.seed,
        resume: false,
        config_toml: card.to_toml()?,
        progress: true,
        comm: &tessera_train::Single,
    };
    let summary = tessera_train::train(&mut model, &store, &mut source, &seg.train, &opts)?;
    println!(
        "trained {} steps in {:.1} s, final loss {:.4}",
        summary.last_step,
        summary.elapsed_s,
        summary.losses.last().copied().unwrap_or(f64::NAN)
    );
    let head = format!(
        "\"init\": \"{}\", \"encoder\": \"{}\", \"train_cases\": {}, \"steps\": {}, \"train_s\": {:.0}",
        seg.init,
        if seg.freeze_encoder { "frozen" } else { "fine-tuned" },
        cases.len(),
        summary.last_step,
        summary.elapsed_s
    );
    Ok(Some((seg, fe, model, head, card.seed)))
}

fn run_name(args: &SegmentArgs, out: &Path) -> String {
    args.name.clone().unwrap_or_else(|| {
        out.file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    })
}

/// Dice and HD95 of every test case: `cases.csv`, `summary.json`, one printed JSON line and
/// `row` with the means appended to `rows.jsonl` (Dice and HD95 per class, `dice_mean`).
fn evaluate(
    model: &SegModel,
    fe: &MedicalFrontend,
    test: &[&(DataItem, PathBuf)],
    classes: usize,
    out: &Path,
    mut row: ResultRow,
    head: &str,
) -> Result<()> {
    let bar = progress(test.len() as u64, "evaluating");
    let mut scores = Vec::new();
    for (item, lab) in test {
        let (v, l) = fe.load_case(&item.path, lab)?;
        let pred = predict(model, fe, &v)?;
        scores.push(score_label_maps(
            &pred,
            &l.data,
            l.dims,
            l.spacing_mm,
            classes,
        )?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let names: Vec<String> = test
        .iter()
        .map(|(i, _)| i.path.display().to_string())
        .collect();
    std::fs::write(out.join("cases.csv"), cases_csv(&names, &scores))?;
    let sum = summarise_segmentation(&scores)?;
    let mean_dice = sum.iter().map(|c| c.dice_mean).sum::<f64>() / sum.len() as f64;
    let mut line = format!(
        "{{\"name\": \"{}\", {head}, \"test_cases\": {}",
        row.run,
        test.len()
    );
    for c in &sum {
        line += &format!(
            ", \"dice_{}\": {:.4}, \"hd95_{}\": {:.3}",
            c.class, c.dice_mean, c.class, c.hd95_mean_mm
        );
        row.extra.insert(format!("dice_{}", c.class), c.dice_mean);
        row.extra
            .insert(format!("hd95_{}", c.class), c.hd95_mean_mm);
    }
    line += &format!(", \"dice_mean\": {mean_dice:.4}}}");
    row.extra.insert("dice_mean".into(), mean_dice);
    row.n_test = test.len();
    std::fs::write(out.join("summary.json"), format!("{line}\n"))?;
    save_rows(out, std::slice::from_ref(&row))?;
    println!("{line}");
    Ok(())
}

/// A trained segmentation run: its card, front end and model (encoder and head weights).
fn load_run(
    app: &App<MedicalFrontend>,
    common: &CommonArgs,
) -> Result<(SegmentConfig, MedicalFrontend, SegModel)> {
    let Some(run) = &common.checkpoint else {
        bail!("--apply and --evaluate need --checkpoint <segmentation run>");
    };
    let r = encoder_for(app, common, false)?;
    let (card, fe, mut store) = (r.card, r.m, r.store);
    let seg = segment_config(&card)?;
    let model = build_model(&card, &seg, r.encoder, &mut store)?;
    let ck =
        latest_checkpoint(run)?.with_context(|| format!("{}: no checkpoint", run.display()))?;
    store.load_safetensors(&ck.model_path(), "seg")?;
    if store.count("seg.") == 0 {
        bail!(
            "{}: not a segmentation run (no seg.* weights)",
            run.display()
        );
    }
    Ok((seg, fe, model))
}

/// `segment --apply`: label maps of new volumes, written on the card's grid (RAS+, target
/// spacing) with that grid's affine, as `<out>/<file name>`.
fn apply(app: &App<MedicalFrontend>, common: &CommonArgs) -> Result<()> {
    let out = common.out()?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let (_seg, fe, model) = load_run(app, common)?;
    let items = tessera_app::source::list::<MedicalFrontend>(common, false)?;
    let bar = progress(items.len() as u64, "segmenting");
    for it in &items {
        let v = fe.load(&it.path)?;
        let pred = predict(&model, &fe, &v)?;
        let name = it
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = if name.ends_with(".gz") {
            name
        } else {
            format!("{name}.gz")
        };
        write_nifti(
            &out.join(&name),
            v.dims,
            v.world_from_voxel,
            Voxels::U8(&pred),
        )?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    println!("wrote {} label maps to {}", items.len(), out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_medical::tokenizer::Block;

    #[test]
    fn decoder_grid_matches_the_tokenizer_layout() {
        // Anisotropic patch and grid, two channels: the tokens of a block, reassembled,
        // are the block's voxels (channel-last), and the inverse gives the tokens back.
        let (patch, dims, ch) = ([2, 3, 1], [4, 6, 3], 2);
        let n: usize = dims.iter().product();
        let data: Vec<f32> = (0..n * ch).map(|i| i as f32).collect();
        let block = Block {
            data: data.clone(),
            channels: ch,
            dims,
            spacing_mm: [1.0; 3],
        };
        let tk = VolumeTokenizer::new(&PatchConfig { patch }, ch).unwrap();
        let t = tk.tokenize(&block).unwrap();
        let grid = tk.grid(dims);
        let rows = Tensor::from_vec(t.values.clone(), (1, t.n, t.p), &Device::Cpu).unwrap();
        let g = tokens_to_grid(&rows, grid, patch, ch).unwrap();
        assert_eq!(g.dims(), &[1, 3, 6, 4, 2]);
        let flat: Vec<f32> = g.flatten_all().unwrap().to_vec1().unwrap();
        for z in 0..3 {
            for y in 0..6 {
                for x in 0..4 {
                    for c in 0..ch {
                        let got = flat[((z * 6 + y) * 4 + x) * ch + c];
                        assert_eq!(got, data[block.index(c, x, y, z)], "voxel {x},{y},{z} c{c}");
                    }
                }
            }
        }
        let back: Vec<f32> = grid_to_tokens(&g, grid, patch)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(back, t.values);
    }
}
