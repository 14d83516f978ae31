//! The subcommands of `tessera-medical` except `segment`.

use crate::SplitArgs;
use anyhow::{bail, Context, Result};
use candle_core::Device;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tessera_cli::{list_data, progress, write_npy, CommonArgs, DataItem, ManifestColumns, Presets};
use tessera_core::{Encoder, EncoderConfig, EncoderSpec, ParamStore, TokenTensors};
use tessera_eval::{run_probes, Features, ProbeConfig};
use tessera_export::{AxisCoords, GridAxis, GridFront};
use tessera_medical::cache::VolumeCache;
use tessera_medical::{MedicalFrontend, MedicalFrontendConfig, Volume};
use tessera_recipes::{Batch, RecipeConfig, ENCODER_PREFIX};
use tessera_tokens::card::Training;
use tessera_tokens::{ModelCard, Rng, SampleTokens, Tokens};
use tessera_train::{
    latest_checkpoint, BatchSource, EpochOrder, RunOptions, TrainConfig, TrainError,
};

/// Named model cards compiled into the binary (`--preset NAME`).
pub const PRESETS: Presets = Presets(&[
    (
        "medical-micro-mae",
        include_str!("../../../../models/medical-micro-mae.toml"),
    ),
    (
        "medical-micro-fusion",
        include_str!("../../../../models/medical-micro-fusion.toml"),
    ),
    (
        "medical-micro-mae-bench",
        include_str!("../../../../models/medical-micro-mae-bench.toml"),
    ),
    (
        "medical-nano-demo",
        include_str!("../../../../models/medical-nano-demo.toml"),
    ),
]);
const DEFAULT_PRESET: &str = "medical-micro-mae";

fn default_cache_mb() -> usize {
    1024
}

/// A resolved medical model card: everything needed to rebuild a run from its folder.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Card {
    pub name: String,
    pub seed: u64,
    /// Decoded volumes kept in memory during training, in MB (least recently used evicted).
    #[serde(default = "default_cache_mb")]
    pub cache_mb: usize,
    pub medical: MedicalFrontendConfig,
    pub encoder: EncoderSpec,
    pub recipe: RecipeConfig,
    pub train: TrainConfig,
    pub segment: crate::segment::SegmentConfig,
    #[serde(default)]
    pub probe: ProbeConfig,
    /// The data `pretrain` read (recorded for the deployment card).
    #[serde(default)]
    pub data: String,
}

impl Card {
    pub fn resolve(common: &CommonArgs) -> Result<Card> {
        let value = PRESETS.resolve(
            common.preset.as_deref(),
            DEFAULT_PRESET,
            common.config.as_deref(),
        )?;
        let mut card: Card = value.try_into().context("invalid model card")?;
        if let Some(s) = common.seed {
            card.seed = s;
        }
        Ok(card)
    }

    pub fn from_run(run: &Path) -> Result<Card> {
        let ck = latest_checkpoint(run)?.ok_or_else(|| {
            anyhow::anyhow!("{}: no checkpoint in this run folder", run.display())
        })?;
        let text = ck.config_toml()?;
        toml::from_str(&text).with_context(|| format!("{}: invalid saved config", ck.dir.display()))
    }

    pub fn to_toml(&self) -> Result<String> {
        Ok(toml::to_string(self)?)
    }

    pub fn encoder_config(&self, fe: &MedicalFrontend) -> Result<EncoderConfig> {
        let spec = fe.token_spec();
        Ok(self.encoder.resolve(spec.p, spec.scales())?)
    }
}

/// `.nii`, `.nii.gz`, `.hdr` or `.hdr.gz` (the `.img` of a pair is found from its `.hdr`).
pub fn is_volume(p: &Path) -> bool {
    let n = p
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    [".nii", ".nii.gz", ".hdr", ".hdr.gz"]
        .iter()
        .any(|e| n.ends_with(e))
}

/// Volumes of `--data`: a folder (its `images/` or `imagesTr/` sub-folder when present) or a
/// manifest with an `image` (or `path`) column, labels from `label_column`; test rows dropped
/// when `without_test`.
pub fn list_volumes(
    common: &CommonArgs,
    split: &SplitArgs,
    label_column: Option<&str>,
    without_test: bool,
) -> Result<Vec<DataItem>> {
    let data = common.data()?;
    let mut spec = data.to_path_buf();
    for sub in ["images", "imagesTr"] {
        if data.join(sub).is_dir() {
            spec = data.join(sub);
        }
    }
    let cols = ManifestColumns {
        label: label_column.map(String::from),
        split: split.split_column.clone(),
    };
    let items: Vec<DataItem> = list_data(&spec, &["nii", "gz", "hdr"], &cols)?
        .into_iter()
        .filter(|i| is_volume(&i.path))
        .filter(|i| !(without_test && i.split.as_deref() == Some(split.test_split.as_str())))
        .collect();
    if items.is_empty() {
        bail!("{}: no NIfTI volumes (.nii, .nii.gz, .hdr)", data.display());
    }
    Ok(items)
}

/// Training batches: epoch-wise shuffles and random crops (both keyed to the step), volumes
/// decoded on demand through a size-limited cache.
pub struct VolumeSource<'a> {
    pub fe: &'a MedicalFrontend,
    pub paths: &'a [PathBuf],
    pub cache: &'a VolumeCache,
    pub strict: bool,
    order: EpochOrder,
    /// Unreadable volumes: reported once, then passed over.
    bad: std::collections::HashSet<usize>,
    pub skipped: Vec<String>,
}

impl<'a> VolumeSource<'a> {
    pub fn new(
        fe: &'a MedicalFrontend,
        paths: &'a [PathBuf],
        cache: &'a VolumeCache,
        seed: u64,
        strict: bool,
    ) -> Self {
        Self {
            fe,
            paths,
            cache,
            strict,
            order: EpochOrder::new(seed, paths.len()),
            bad: Default::default(),
            skipped: Vec::new(),
        }
    }

    fn volume(&mut self, i: usize) -> tessera_train::Result<Option<Arc<Volume<f32>>>> {
        let fe = self.fe;
        if self.bad.contains(&i) {
            return Ok(None);
        }
        match self.cache.get_or_load(i, || fe.load(&self.paths[i])) {
            Ok(v) => Ok(Some(v)),
            Err(e) if self.strict => Err(TrainError::Data(e.to_string())),
            Err(e) => {
                self.bad.insert(i);
                self.skipped.push(e.to_string());
                Ok(None)
            }
        }
    }
}

/// A random crop origin along one axis: anywhere inside, or (volume smaller than the crop)
/// anywhere that keeps the whole volume in the crop.
pub fn random_origin(dims: [usize; 3], crop: [usize; 3], rng: &mut Rng) -> [isize; 3] {
    [0, 1, 2].map(|a| {
        if dims[a] >= crop[a] {
            rng.below(dims[a] - crop[a] + 1) as isize
        } else {
            -(rng.below(crop[a] - dims[a] + 1) as isize)
        }
    })
}

impl BatchSource for VolumeSource<'_> {
    fn batch(
        &mut self,
        step: u64,
        bs: usize,
        views: usize,
        rng: &mut Rng,
    ) -> tessera_train::Result<Batch> {
        let n = self.paths.len();
        let crop = self.fe.cfg.crop;
        let mut picked = Vec::with_capacity(bs);
        let mut k = 0usize;
        while picked.len() < bs {
            let global = (step - 1) as usize * bs + k;
            k += 1;
            if self.bad.len() == n {
                return Err(TrainError::Data(format!(
                    "none of the {n} volumes is readable; first error: {}",
                    self.skipped.first().cloned().unwrap_or_default()
                )));
            }
            let i = self.order.sample(global);
            if let Some(v) = self.volume(i)? {
                picked.push(v);
            }
        }
        let mut out = Vec::with_capacity(views.max(1));
        for _ in 0..views.max(1) {
            let samples = picked
                .iter()
                .map(|v| {
                    let b = self.fe.block(v, random_origin(v.dims, crop, rng), crop);
                    self.fe
                        .tokens(&b)
                        .map_err(|e| TrainError::Data(e.to_string()))
                })
                .collect::<tessera_train::Result<Vec<_>>>()?;
            out.push(Tokens::from_samples(&samples)?);
        }
        Ok(Batch { views: out })
    }
}

pub fn pretrain(
    common: &CommonArgs,
    split: &SplitArgs,
    resume: bool,
    minutes: Option<f64>,
) -> Result<()> {
    tessera_cli::init_threads(common.threads)?;
    let out = common.out()?;
    let mut card = if resume {
        Card::from_run(out)?
    } else {
        Card::resolve(common)?
    };
    if let Some(s) = common.steps {
        card.train.steps = s;
    }
    if let Some(b) = common.batch_size {
        card.train.batch_size = b;
    }
    if let Some(m) = minutes {
        card.train.time_limit_s = Some(m * 60.0);
    }
    if let (false, Some(data)) = (resume, &common.data) {
        card.data = data.display().to_string();
    }
    let paths: Vec<PathBuf> = list_volumes(common, split, None, true)?
        .into_iter()
        .map(|i| i.path)
        .collect();
    let fe = MedicalFrontend::new(&card.medical)?;
    let enc_cfg = card.encoder_config(&fe)?;
    let mut store = ParamStore::new(card.seed, &Device::Cpu);
    let mut recipe = card.recipe.build(&enc_cfg, &mut store)?;
    let grid = fe.tokenizer.grid(card.medical.crop);
    eprintln!(
        "{}: {} volumes, {} tokens of {} values per crop, encoder {:.2} M parameters, recipe {}, cache {} MB",
        card.name,
        paths.len(),
        grid.iter().product::<usize>(),
        fe.tokenizer.p(),
        store.count(ENCODER_PREFIX) as f64 / 1e6,
        recipe.name(),
        card.cache_mb
    );
    let cache = VolumeCache::new(card.cache_mb);
    let mut source = VolumeSource::new(&fe, &paths, &cache, card.seed, common.strict);
    let opts = RunOptions {
        run_dir: out,
        seed: card.seed,
        resume,
        config_toml: card.to_toml()?,
        progress: true,
    };
    let summary = tessera_train::train(recipe.as_mut(), &store, &mut source, &card.train, &opts)?;
    let s = cache.stats();
    if let Some(last) = summary.losses.last() {
        println!(
            "trained steps {}..{} in {:.1} s ({:.1} samples/s), final loss {last:.4}; checkpoint {}",
            summary.first_step,
            summary.last_step,
            summary.elapsed_s,
            summary.samples_per_s,
            summary.checkpoint.map(|p| p.display().to_string()).unwrap_or_default()
        );
    } else {
        println!(
            "nothing to do: {} is already at step {}",
            out.display(),
            card.train.steps
        );
    }
    println!(
        "volume cache: {} hits, {} misses, {} evictions, peak {:.1} MB of {} MB",
        s.hits,
        s.misses,
        s.evictions,
        s.peak_bytes as f64 / 1048576.0,
        card.cache_mb
    );
    if !source.skipped.is_empty() {
        eprintln!(
            "skipped {} unreadable volume(s); first: {}",
            source.skipped.len(),
            source.skipped[0]
        );
    }
    Ok(())
}

/// The card and encoder of a run (latest checkpoint), or a random one from the preset.
pub fn encoder_for(
    common: &CommonArgs,
    random_init: bool,
) -> Result<(Card, MedicalFrontend, Encoder, ParamStore)> {
    let card = match (&common.checkpoint, random_init) {
        (Some(run), false) => Card::from_run(run)?,
        (None, true) => Card::resolve(common)?,
        (Some(_), true) => bail!("give either --checkpoint or --random-init, not both"),
        (None, false) => bail!("--checkpoint <run dir> is required (or --random-init)"),
    };
    let fe = MedicalFrontend::new(&card.medical)?;
    let mut store = ParamStore::new(card.seed, &Device::Cpu);
    let enc = Encoder::new(&card.encoder_config(&fe)?, &mut store, ENCODER_PREFIX)?;
    if let (Some(run), false) = (&common.checkpoint, random_init) {
        if let Some(ck) = latest_checkpoint(run)? {
            store.load_safetensors(&ck.model_path(), ENCODER_PREFIX)?;
        }
    }
    Ok((card, fe, enc, store))
}

/// Centre-crop tokens of every readable volume (skipping, or failing with --strict).
fn centre_tokens(
    fe: &MedicalFrontend,
    items: Vec<DataItem>,
    strict: bool,
) -> Result<(Vec<DataItem>, Vec<SampleTokens>)> {
    let bar = progress(items.len() as u64, "reading");
    let mut kept = Vec::new();
    let mut tokens = Vec::new();
    let mut skipped = Vec::new();
    for it in items {
        match fe.file_tokens(&it.path) {
            Ok(t) => {
                tokens.push(t);
                kept.push(it);
            }
            Err(e) if strict => return Err(e.into()),
            Err(e) => skipped.push(e.to_string()),
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    if !skipped.is_empty() {
        eprintln!(
            "skipped {} unreadable volume(s); first: {}",
            skipped.len(),
            skipped[0]
        );
    }
    if tokens.is_empty() {
        bail!(
            "no usable volume ({})",
            skipped.first().cloned().unwrap_or_default()
        );
    }
    Ok((kept, tokens))
}

fn embed_tokens(enc: &Encoder, tokens: &[SampleTokens]) -> Result<Features> {
    let mut data = Vec::new();
    let mut d = 0;
    for chunk in tokens.chunks(16) {
        let t = TokenTensors::from_tokens(&Tokens::from_samples(chunk)?, &Device::Cpu)?;
        let e = enc.embed(&t)?;
        d = e.dim(1)?;
        data.extend(e.flatten_all()?.to_vec1::<f32>()?);
    }
    Ok(Features::new(data, tokens.len(), d)?)
}

pub fn embed(
    common: &CommonArgs,
    split: &SplitArgs,
    random_init: bool,
    onnx: Option<&Path>,
) -> Result<()> {
    tessera_cli::init_threads(common.threads)?;
    let out = common.out()?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let items = list_volumes(common, split, None, false)?;
    let (kept, data, d) = match onnx {
        Some(dir) => {
            let mut rt = tessera_runtime::Encoder::open_with(
                dir,
                &tessera_runtime::Options {
                    threads: common.threads.unwrap_or(0),
                },
            )?;
            let cfg: MedicalFrontendConfig = rt.card().frontend_as().with_context(|| {
                format!("{}: [frontend] is not a medical front end", dir.display())
            })?;
            let fe = MedicalFrontend::new(&cfg)?;
            let (kept, tokens) = centre_tokens(&fe, items, common.strict)?;
            let mut data = Vec::new();
            for chunk in tokens.chunks(16) {
                data.extend(rt.embed_tokens(chunk)?.into_iter().flatten());
            }
            let d = data.len() / kept.len();
            (kept, data, d)
        }
        None => {
            let (_card, fe, enc, _store) = encoder_for(common, random_init)?;
            let (kept, tokens) = centre_tokens(&fe, items, common.strict)?;
            let f = embed_tokens(&enc, &tokens)?;
            (kept, f.data, f.d)
        }
    };
    write_npy(&out.join("embeddings.npy"), &data, kept.len(), d)?;
    let names: Vec<String> = kept.iter().map(|i| i.path.display().to_string()).collect();
    std::fs::write(out.join("files.txt"), names.join("\n") + "\n")?;
    println!(
        "wrote {} embeddings of width {d} to {}",
        kept.len(),
        out.join("embeddings.npy").display()
    );
    Ok(())
}

pub fn probe(
    common: &CommonArgs,
    split: &SplitArgs,
    label_column: &str,
    random_init: bool,
) -> Result<()> {
    tessera_cli::init_threads(common.threads)?;
    let out = common.out()?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let (card, fe, enc, _store) = encoder_for(common, random_init)?;
    let items = list_volumes(common, split, Some(label_column), false)?;
    let (kept, tokens) = centre_tokens(&fe, items, common.strict)?;
    let f = embed_tokens(&enc, &tokens)?;
    let mut classes: Vec<String> = kept.iter().filter_map(|i| i.label.clone()).collect();
    classes.sort();
    classes.dedup();
    if classes.len() < 2 {
        bail!("probe needs at least two classes in column `{label_column}`");
    }
    let y: Vec<usize> = kept
        .iter()
        .map(|i| {
            classes
                .binary_search(i.label.as_ref().unwrap_or(&String::new()))
                .unwrap_or(0)
        })
        .collect();
    let is_test: Vec<bool> = kept
        .iter()
        .map(|i| i.split.as_deref() == Some(split.test_split.as_str()))
        .collect();
    let test: Vec<usize> = (0..y.len()).filter(|&i| is_test[i]).collect();
    let train: Vec<usize> = (0..y.len()).filter(|&i| !is_test[i]).collect();
    if test.is_empty() || train.is_empty() {
        bail!(
            "probe needs train and `{}` rows (split column)",
            split.test_split
        );
    }
    let pick = |idx: &[usize]| idx.iter().map(|&i| y[i]).collect::<Vec<_>>();
    let r = run_probes(
        &f.select(&train)?,
        &pick(&train),
        &f.select(&test)?,
        &pick(&test),
        classes.len(),
        &card.probe,
        card.seed,
    )?;
    let text = format!("{r:#?}\n");
    std::fs::write(out.join("probe.txt"), &text)?;
    println!("{text}");
    Ok(())
}

pub fn stats(common: &CommonArgs, split: &SplitArgs) -> Result<()> {
    let out = common.out()?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let items = list_volumes(common, split, None, false)?;
    let bar = progress(items.len() as u64, "reading");
    let mut rows =
        vec!["file,nx,ny,nz,channels,sx_mm,sy_mm,sz_mm,datatype,axcodes,min,max,mean".to_string()];
    let mut spacings: Vec<[f64; 3]> = Vec::new();
    let mut skipped = 0;
    for it in &items {
        bar.inc(1);
        let v = match tessera_medical::read_volume(&it.path) {
            Ok(v) => v,
            Err(e) if common.strict => return Err(e.into()),
            Err(e) => {
                eprintln!("skipped: {e}");
                skipped += 1;
                continue;
            }
        };
        let ax = tessera_medical::orient::axcodes(&v.world_from_voxel).unwrap_or_else(|e| e);
        let (mut lo, mut hi, mut sum) = (f32::INFINITY, f32::NEG_INFINITY, 0f64);
        for &x in &v.data {
            lo = lo.min(x);
            hi = hi.max(x);
            sum += x as f64;
        }
        let s = v.spacing_mm;
        spacings.push(s);
        rows.push(format!(
            "{},{},{},{},{},{:.4},{:.4},{:.4},{},{ax},{lo},{hi},{:.4}",
            it.path.display(),
            v.dims[0],
            v.dims[1],
            v.dims[2],
            v.channels,
            s[0],
            s[1],
            s[2],
            v.header.datatype.name(),
            sum / v.data.len().max(1) as f64
        ));
    }
    bar.finish_and_clear();
    let path = out.join("volumes.csv");
    std::fs::write(&path, rows.join("\n") + "\n")?;
    if spacings.is_empty() {
        bail!("no readable volume");
    }
    let median = [0, 1, 2].map(|a| {
        let mut v: Vec<f64> = spacings.iter().map(|s| s[a]).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    });
    println!(
        "{} volumes ({skipped} unreadable); per-file table {}; median spacing {:?} mm (nnU-Net's default target): put `spacing_mm = {:?}` under [medical] in --config",
        spacings.len(),
        path.display(),
        median,
        median
    );
    Ok(())
}

pub fn inspect(files: &[PathBuf]) -> Result<()> {
    for f in files {
        println!("{}", tessera_medical::inspect::inspect(f)?);
    }
    Ok(())
}

/// The in-graph front for a `[B, C, Z, Y, X]` crop on the card's grid (normalised already:
/// MRI/CT normalisation is per volume, so it stays outside the graph).
fn grid_front(fe: &MedicalFrontend) -> GridFront {
    let p = fe.cfg.tokenizer.patch;
    let s = fe.cfg.spacing_mm;
    let axis = |name: &str, a: usize| GridAxis {
        name: name.into(),
        patch: p[a],
        coords: AxisCoords::Affine {
            offset: ((p[a] as f64 - 1.0) / 2.0 * s[a]) as f32,
            step: (p[a] as f64 * s[a]) as f32,
        },
        coord_index: a,
    };
    GridFront {
        channels: fe.cfg.channels,
        axes: vec![axis("z", 2), axis("y", 1), axis("x", 0)],
        norm: None,
    }
}

pub fn export(common: &CommonArgs) -> Result<()> {
    tessera_cli::init_threads(common.threads)?;
    let Some(run) = &common.checkpoint else {
        bail!("--checkpoint <run dir> is required");
    };
    let out = common.out()?;
    let (card, fe, enc, _store) = encoder_for(common, false)?;
    let step = match latest_checkpoint(run)? {
        Some(c) => c.step()?,
        None => 0,
    };
    let training = Training {
        data: card.data.clone(),
        steps: step,
        seed: card.seed,
        recipe: toml::Table::try_from(&card.recipe)?,
    };
    let frontend = toml::Table::try_from(&card.medical)?;
    let mcard = ModelCard::new(&card.name, "medical", fe.token_spec(), training, frontend);
    let report = tessera_export::export(&enc, &mcard, Some(&grid_front(&fe)), out)?;
    for f in &report.files {
        println!("wrote {}", f.display());
    }
    // Check ONNX Runtime against candle on random crops.
    let check = || -> Result<f32> {
        let mut rt = tessera_runtime::Encoder::open(out)?;
        let mut rng = Rng::new(0);
        let samples = random_crops(&fe, 2, &mut rng)?;
        let t = Tokens::from_samples(&samples)?;
        let want = enc
            .embed(&TokenTensors::from_tokens(&t, &Device::Cpu)?)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let got = rt.run(&t)?.embedding;
        Ok(got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max))
    };
    match check() {
        Ok(e) => println!(
            "checked: ONNX Runtime matches candle on 2 random crops (max abs error {e:.2e})"
        ),
        Err(e) => println!("not checked against ONNX Runtime: {e}"),
    }
    Ok(())
}

/// Tokens of `n` crops of random normal voxels (benchmarks and export checks).
fn random_crops(fe: &MedicalFrontend, n: usize, rng: &mut Rng) -> Result<Vec<SampleTokens>> {
    let c = fe.cfg.crop;
    (0..n)
        .map(|_| {
            let len = fe.cfg.channels * c.iter().product::<usize>();
            let b = tessera_medical::tokenizer::Block {
                data: (0..len).map(|_| rng.normal() as f32).collect(),
                channels: fe.cfg.channels,
                dims: c,
                spacing_mm: fe.cfg.spacing_mm,
            };
            Ok(fe.tokens(&b)?)
        })
        .collect()
}

/// One pretraining step on random crops of the card's size (the 96³/16³ benchmark
/// with `--preset medical-micro-mae-bench`): samples/s as a JSON line.
pub fn bench_step(common: &CommonArgs, warmup: usize, steps: usize) -> Result<()> {
    tessera_cli::init_threads(common.threads)?;
    let card = Card::resolve(common)?;
    let fe = MedicalFrontend::new(&card.medical)?;
    let mut store = ParamStore::new(card.seed, &Device::Cpu);
    let recipe = card.recipe.build(&card.encoder_config(&fe)?, &mut store)?;
    let samples = random_crops(
        &fe,
        common.batch_size.unwrap_or(4),
        &mut Rng::new(card.seed),
    )?;
    println!(
        "{}",
        tessera_train::bench_steps(
            recipe.as_ref(),
            &store,
            &card.train,
            &samples,
            card.seed,
            warmup,
            steps
        )?
    );
    Ok(())
}
