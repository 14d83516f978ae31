//! The subcommands of `tessera-audio`.

use crate::LabelArgs;
use anyhow::{bail, Context, Result};
use candle_core::Device;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tessera_audio::features::Spectrogram;
use tessera_audio::{AudioFrontend, AudioFrontendConfig};
use tessera_cli::{list_data, progress, write_npy, CommonArgs, DataItem, ManifestColumns, Presets};
use tessera_core::{Encoder, EncoderConfig, EncoderSpec, ParamStore, TokenTensors};
use tessera_eval::{run_probes, Features, ProbeConfig, ResultRow};
use tessera_recipes::{Batch, RecipeConfig, ENCODER_PREFIX};
use tessera_tokens::stats::RunningStats;
use tessera_tokens::{Rng, SampleTokens, Tokens};
use tessera_train::{
    latest_checkpoint, BatchSource, EpochOrder, RunOptions, TrainConfig, TrainError,
};

/// Named model cards compiled into the binary (`--preset NAME`).
pub const PRESETS: Presets = Presets(&[
    (
        "audio-tiny-mae",
        include_str!("../../../../models/audio-tiny-mae.toml"),
    ),
    (
        "audio-tiny-mae-frames",
        include_str!("../../../../models/audio-tiny-mae-frames.toml"),
    ),
    (
        "audio-nano-demo",
        include_str!("../../../../models/audio-nano-demo.toml"),
    ),
]);
const DEFAULT_PRESET: &str = "audio-tiny-mae";

/// A resolved audio model card: everything needed to rebuild a run from its folder.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Card {
    pub name: String,
    pub seed: u64,
    pub audio: AudioFrontendConfig,
    pub encoder: EncoderSpec,
    pub recipe: RecipeConfig,
    pub train: TrainConfig,
    #[serde(default)]
    pub probe: ProbeConfig,
    /// The data `pretrain` read (recorded for the deployment card).
    #[serde(default)]
    pub data: String,
}

impl Card {
    fn resolve(common: &CommonArgs) -> Result<Card> {
        let value = PRESETS.resolve(
            common.preset.as_deref(),
            DEFAULT_PRESET,
            common.config.as_deref(),
        )?;
        let mut card: Card = value.try_into().context("invalid model card")?;
        if let Some(s) = common.steps {
            card.train.steps = s;
        }
        if let Some(b) = common.batch_size {
            card.train.batch_size = b;
        }
        if let Some(s) = common.seed {
            card.seed = s;
        }
        Ok(card)
    }

    pub(crate) fn from_run(run: &Path) -> Result<Card> {
        let ck = latest_checkpoint(run)?.ok_or_else(|| {
            anyhow::anyhow!("{}: no checkpoint in this run folder", run.display())
        })?;
        let text = ck.config_toml()?;
        toml::from_str(&text).with_context(|| format!("{}: invalid saved config", ck.dir.display()))
    }

    fn to_toml(&self) -> Result<String> {
        Ok(toml::to_string(self)?)
    }

    fn encoder_config(&self, fe: &AudioFrontend) -> Result<EncoderConfig> {
        let spec = fe.token_spec();
        Ok(self.encoder.resolve(spec.p, spec.scales())?)
    }
}

/// Files of a dataset, decoded and turned into (unnormalised or normalised) spectrograms.
pub(crate) struct Loaded {
    pub(crate) items: Vec<DataItem>,
    pub(crate) specs: Vec<Spectrogram>,
    pub(crate) skipped: Vec<String>,
}

fn columns(labels: &LabelArgs) -> ManifestColumns {
    ManifestColumns {
        label: labels.label_column.clone(),
        split: labels.split_column.clone(),
    }
}

/// The WAV files of `--data`, optionally without the test split; an empty list is an error
/// naming the folder or manifest.
pub(crate) fn list_wavs(
    common: &CommonArgs,
    labels: &LabelArgs,
    without_test: bool,
) -> Result<Vec<DataItem>> {
    let data = common.data()?;
    let items: Vec<DataItem> = list_data(data, &["wav", "wave"], &columns(labels))?
        .into_iter()
        .filter(|it| !without_test || it.split.as_deref() != Some(labels.test_split.as_str()))
        .collect();
    if items.is_empty() {
        let scope = if without_test {
            " outside the test split"
        } else {
            ""
        };
        bail!("{}: no .wav files{scope}", data.display());
    }
    Ok(items)
}

/// Decodes every file in parallel. Unreadable files are skipped (and counted) unless `strict`.
pub(crate) fn load(
    fe: &AudioFrontend,
    items: Vec<DataItem>,
    strict: bool,
    what: &str,
) -> Result<Loaded> {
    if items.is_empty() {
        bail!("no WAV files to read");
    }
    let bar = progress(items.len() as u64, what);
    let results: Vec<_> = items
        .par_iter()
        .map(|it| {
            let r = fe.load(&it.path).and_then(|w| fe.spectrogram(&w));
            bar.inc(1);
            r
        })
        .collect();
    bar.finish_and_clear();
    let mut kept = Vec::new();
    let mut specs = Vec::new();
    let mut skipped = Vec::new();
    for (it, r) in items.into_iter().zip(results) {
        match r {
            Ok(s) => {
                kept.push(it);
                specs.push(s);
            }
            Err(e) if strict => return Err(e.into()),
            Err(e) => skipped.push(e.to_string()),
        }
    }
    if specs.is_empty() {
        bail!(
            "no usable audio file among {} ({})",
            skipped.len(),
            skipped.first().cloned().unwrap_or_default()
        );
    }
    Ok(Loaded {
        items: kept,
        specs,
        skipped,
    })
}

pub(crate) fn report_skipped(skipped: &[String]) {
    if !skipped.is_empty() {
        eprintln!(
            "skipped {} unreadable file(s); first: {}",
            skipped.len(),
            skipped[0]
        );
    }
}

/// Training batches: epoch-wise shuffles and random crops, both keyed to the step.
struct SpecSource<'a> {
    fe: &'a AudioFrontend,
    specs: &'a [Spectrogram],
    order: EpochOrder,
}

impl BatchSource for SpecSource<'_> {
    fn batch(
        &mut self,
        step: u64,
        bs: usize,
        views: usize,
        rng: &mut Rng,
    ) -> tessera_train::Result<Batch> {
        let target = self
            .fe
            .target_frames()
            .map_err(|e| TrainError::Data(e.to_string()))?;
        let mut view_tokens = Vec::with_capacity(views);
        for _ in 0..views.max(1) {
            let mut samples = Vec::with_capacity(bs);
            for j in 0..bs {
                let s = &self.specs[self.order.sample((step - 1) as usize * bs + j)];
                let start = if s.frames > target {
                    rng.below(s.frames - target + 1)
                } else {
                    0
                };
                let crop = self
                    .fe
                    .crop(s, start)
                    .map_err(|e| TrainError::Data(e.to_string()))?;
                samples.push(
                    self.fe
                        .tokens(&crop)
                        .map_err(|e| TrainError::Data(e.to_string()))?,
                );
            }
            view_tokens.push(Tokens::from_samples(&samples)?);
        }
        Ok(Batch { views: view_tokens })
    }
}

/// Global mean/std of the spectrogram values (before normalisation).
fn compute_norm<'a>(specs: impl IntoIterator<Item = &'a Spectrogram>) -> tessera_tokens::NormStats {
    let mut r = RunningStats::default();
    for s in specs {
        r.push_slice(&s.data);
    }
    r.finish()
}

pub fn pretrain(
    common: &CommonArgs,
    labels: &LabelArgs,
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
    if let Some(m) = minutes {
        card.train.time_limit_s = Some(m * 60.0);
    }
    if let (false, Some(data)) = (resume, &common.data) {
        card.data = data.display().to_string();
    }
    let items = list_wavs(common, labels, true)?;
    // Statistics come from the card if present, otherwise from this data (then saved in the card).
    let had_norm = card.audio.norm.is_some();
    let mut raw_cfg = card.audio.clone();
    raw_cfg.norm = None;
    let fe_raw = AudioFrontend::new(&raw_cfg)?;
    let mut loaded = load(&fe_raw, items, common.strict, "decoding")?;
    report_skipped(&loaded.skipped);
    if !had_norm {
        card.audio.norm = Some(compute_norm(&loaded.specs));
    }
    let norm = card.audio.norm.unwrap_or_default();
    loaded
        .specs
        .par_iter_mut()
        .for_each(|s| norm.apply(&mut s.data));
    let fe = AudioFrontend::new(&card.audio)?;
    let enc_cfg = card.encoder_config(&fe)?;
    let mut store = ParamStore::new(card.seed, &Device::Cpu);
    let mut recipe = card.recipe.build(&enc_cfg, &mut store)?;
    eprintln!(
        "{}: {} files, {} tokens of {} values per clip, encoder {} M parameters, recipe {}",
        card.name,
        loaded.specs.len(),
        {
            let (rows, cols) = fe.token_grid()?;
            rows * cols
        },
        fe.tokenizer.p(),
        store.count(ENCODER_PREFIX) as f64 / 1e6,
        recipe.name()
    );
    let mut source = SpecSource {
        fe: &fe,
        specs: &loaded.specs,
        order: EpochOrder::new(card.seed, loaded.specs.len()),
    };
    let opts = RunOptions {
        run_dir: out,
        seed: card.seed,
        resume,
        config_toml: card.to_toml()?,
        progress: true,
    };
    let summary = tessera_train::train(recipe.as_mut(), &store, &mut source, &card.train, &opts)?;
    let Some(last) = summary.losses.last().copied() else {
        println!(
            "nothing to do: {} is already at step {} of {}",
            out.display(),
            summary.first_step - 1,
            card.train.steps
        );
        return Ok(());
    };
    println!(
        "trained steps {}..{} in {:.1} s ({:.1} samples/s), final loss {:.4}; checkpoint {}",
        summary.first_step,
        summary.last_step,
        summary.elapsed_s,
        summary.samples_per_s,
        last,
        summary
            .checkpoint
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    );
    if !loaded.skipped.is_empty() {
        println!("skipped {} unreadable file(s)", loaded.skipped.len());
    }
    Ok(())
}

/// The encoder of a run (weights from its latest checkpoint), or a random one.
pub(crate) fn encoder_for(
    common: &CommonArgs,
    random_init: bool,
) -> Result<(Card, AudioFrontend, Encoder)> {
    let card = match (&common.checkpoint, random_init) {
        (Some(run), false) => Card::from_run(run)?,
        (None, true) => Card::resolve(common)?,
        (Some(_), true) => bail!("give either --checkpoint or --random-init, not both"),
        (None, false) => bail!("--checkpoint <run dir> is required (or --random-init)"),
    };
    let fe = AudioFrontend::new(&card.audio)?;
    let mut store = ParamStore::new(card.seed, &Device::Cpu);
    let enc = Encoder::new(&card.encoder_config(&fe)?, &mut store, ENCODER_PREFIX)?;
    if let (Some(run), false) = (&common.checkpoint, random_init) {
        if let Some(ck) = latest_checkpoint(run)? {
            store.load_safetensors(&ck.model_path(), ENCODER_PREFIX)?;
        }
    }
    Ok((card, fe, enc))
}

/// Frozen embeddings `[n, 2D]` (CLS then mean patch) of centre-cropped clips.
fn embed_specs(fe: &AudioFrontend, enc: &Encoder, specs: &[Spectrogram]) -> Result<Features> {
    let bs = 64;
    let bar = progress(specs.len() as u64, "embedding");
    let mut data = Vec::new();
    let mut d = 0;
    for chunk in specs.chunks(bs) {
        let samples = chunk
            .iter()
            .map(|s| Ok(fe.tokens(&fe.centre_crop(s)?)?))
            .collect::<Result<Vec<SampleTokens>>>()?;
        let t = TokenTensors::from_tokens(&Tokens::from_samples(&samples)?, &Device::Cpu)?;
        let e = enc.embed(&t)?;
        d = e.dim(1)?;
        data.extend(e.flatten_all()?.to_vec1::<f32>()?);
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok(Features::new(data, specs.len(), d)?)
}

/// Per-bin mean and standard deviation over time of the normalised log-mel: `[n, 2F]`.
fn logmel_baseline(fe: &AudioFrontend, specs: &[Spectrogram]) -> Result<Features> {
    let mut data = Vec::new();
    let mut d = 0;
    for s in specs {
        let s = fe.centre_crop(s)?;
        d = 2 * s.bins;
        let mut stds = Vec::with_capacity(s.bins);
        for b in 0..s.bins {
            let row = &s.data[b * s.frames..(b + 1) * s.frames];
            let m = row.iter().sum::<f32>() / row.len() as f32;
            let v = row.iter().map(|x| (x - m) * (x - m)).sum::<f32>() / row.len() as f32;
            data.push(m);
            stds.push(v.sqrt());
        }
        data.extend(stds);
    }
    Ok(Features::new(data, specs.len(), d)?)
}

fn columns_of(f: &Features, from: usize, to: usize) -> Result<Features> {
    let mut data = Vec::with_capacity(f.n * (to - from));
    for i in 0..f.n {
        data.extend_from_slice(&f.data[i * f.d + from..i * f.d + to]);
    }
    Ok(Features::new(data, f.n, to - from)?)
}

pub fn embed(common: &CommonArgs, labels: &LabelArgs, random_init: bool) -> Result<()> {
    tessera_cli::init_threads(common.threads)?;
    let (_card, fe, enc) = encoder_for(common, random_init)?;
    let out = common.out()?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let loaded = load(
        &fe,
        list_wavs(common, labels, false)?,
        common.strict,
        "decoding",
    )?;
    report_skipped(&loaded.skipped);
    let f = embed_specs(&fe, &enc, &loaded.specs)?;
    write_npy(&out.join("embeddings.npy"), &f.data, f.n, f.d)?;
    let names: Vec<String> = loaded
        .items
        .iter()
        .map(|i| i.path.display().to_string())
        .collect();
    std::fs::write(out.join("files.txt"), names.join("\n") + "\n")?;
    println!(
        "wrote {} embeddings of width {} to {}",
        f.n,
        f.d,
        out.join("embeddings.npy").display()
    );
    Ok(())
}

pub fn probe(
    common: &CommonArgs,
    labels: &LabelArgs,
    random_init: bool,
    baseline: Option<&str>,
    name: Option<String>,
    task: Option<String>,
) -> Result<Vec<ResultRow>> {
    tessera_cli::init_threads(common.threads)?;
    let out = common.out()?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let (card, fe, enc) = match baseline {
        Some("logmel") => {
            let card = match &common.checkpoint {
                Some(run) => Card::from_run(run)?,
                None => Card::resolve(common)?,
            };
            let fe = AudioFrontend::new(&card.audio)?;
            (card, fe, None)
        }
        Some(other) => bail!("unknown --baseline `{other}` (known: logmel)"),
        None => {
            let (c, f, e) = encoder_for(common, random_init)?;
            (c, f, Some(e))
        }
    };
    let items = list_wavs(common, labels, false)?;
    if items.iter().any(|i| i.label.is_none()) {
        bail!("probe needs labels: a manifest with a label column (--label-column) or a folder of class folders");
    }
    // Statistics: the card's, else computed from the training rows (as pretrain would).
    let mut loaded = load(&fe, items, common.strict, "decoding")?;
    if fe.cfg.norm.is_none() {
        let train = loaded
            .items
            .iter()
            .zip(&loaded.specs)
            .filter(|(i, _)| i.split.as_deref() != Some(labels.test_split.as_str()))
            .map(|(_, s)| s);
        let norm = compute_norm(train);
        loaded
            .specs
            .par_iter_mut()
            .for_each(|s| norm.apply(&mut s.data));
    }
    report_skipped(&loaded.skipped);
    let mut classes: Vec<String> = loaded
        .items
        .iter()
        .filter_map(|i| i.label.clone())
        .collect();
    classes.sort();
    classes.dedup();
    let y: Vec<usize> = loaded
        .items
        .iter()
        .map(|i| {
            classes
                .binary_search(i.label.as_ref().unwrap_or(&String::new()))
                .unwrap_or(0)
        })
        .collect();
    let is_test: Vec<bool> = loaded
        .items
        .iter()
        .map(|i| i.split.as_deref() == Some(labels.test_split.as_str()))
        .collect();
    let test_idx: Vec<usize> = (0..y.len()).filter(|&i| is_test[i]).collect();
    let train_idx: Vec<usize> = (0..y.len()).filter(|&i| !is_test[i]).collect();
    if test_idx.is_empty() || train_idx.is_empty() {
        bail!("probe needs both training and test rows (test rows have split `{}`; set --split-column)", labels.test_split);
    }
    let mut sets: Vec<(String, Features)> = Vec::new();
    match &enc {
        Some(enc) => {
            let f = embed_specs(&fe, enc, &loaded.specs)?;
            let d = f.d / 2;
            sets.push(("cls".into(), columns_of(&f, 0, d)?));
            sets.push(("mean".into(), columns_of(&f, d, 2 * d)?));
            sets.push(("cls+mean".into(), f));
        }
        None => sets.push(("logmel".into(), logmel_baseline(&fe, &loaded.specs)?)),
    }
    let run = name.unwrap_or_else(|| match (baseline, random_init, &common.checkpoint) {
        (Some(b), _, _) => b.to_string(),
        (None, true, _) => format!("{}-random", card.name),
        (None, false, Some(p)) => p
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| card.name.clone()),
        _ => card.name.clone(),
    });
    let task = task
        .or_else(|| labels.label_column.clone())
        .unwrap_or_else(|| "label".into());
    let pick = |idx: &[usize]| idx.iter().map(|&i| y[i]).collect::<Vec<_>>();
    let (y_train, y_test) = (pick(&train_idx), pick(&test_idx));
    let mut rows = Vec::new();
    for (feat, f) in &sets {
        let r = run_probes(
            &f.select(&train_idx)?,
            &y_train,
            &f.select(&test_idx)?,
            &y_test,
            classes.len(),
            &card.probe,
            card.seed,
        )?;
        for (protocol, rep) in [("linear", &r.linear), ("knn", &r.knn)] {
            rows.push(ResultRow {
                run: run.clone(),
                task: task.clone(),
                protocol: protocol.into(),
                features: feat.clone(),
                seed: card.seed,
                accuracy: rep.accuracy,
                macro_f1: rep.macro_f1,
                n_test: rep.n,
            });
        }
        tessera_eval::write_confusion_csv(
            &r.linear.confusion,
            Some(&classes),
            &out.join(format!("confusion-{run}-{task}-{feat}.csv")),
        )?;
    }
    save_rows(out, &rows)?;
    print!("{}", tessera_eval::to_markdown(&rows));
    Ok(rows)
}

/// Appends rows to `out/rows.jsonl` and rewrites the tables from all rows there.
fn save_rows(out: &Path, rows: &[ResultRow]) -> Result<()> {
    use std::io::Write;
    let jl = out.join("rows.jsonl");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&jl)
        .with_context(|| format!("opening {}", jl.display()))?;
    for r in rows {
        writeln!(f, "{}", serde_json::to_string(r)?)?;
    }
    let all: Vec<ResultRow> = std::fs::read_to_string(&jl)?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<std::result::Result<_, _>>()
        .with_context(|| format!("{}: corrupt row", jl.display()))?;
    tessera_eval::write_table(&all, &out.join("results.csv"))?;
    tessera_eval::write_table(&all, &out.join("results.parquet"))?;
    let summary = tessera_eval::summarise(&all);
    tessera_eval::write_summary_table(&summary, &out.join("summary.csv"))?;
    std::fs::write(
        out.join("results.md"),
        tessera_eval::to_markdown(&all) + "\n" + &tessera_eval::summary_to_markdown(&summary),
    )?;
    Ok(())
}

#[derive(Serialize)]
struct NormFragment {
    audio: NormAudio,
}
#[derive(Serialize)]
struct NormAudio {
    norm: tessera_tokens::NormStats,
}

pub fn stats(common: &CommonArgs, labels: &LabelArgs) -> Result<()> {
    tessera_cli::init_threads(common.threads)?;
    let mut card = Card::resolve(common)?;
    card.audio.norm = None;
    let fe = AudioFrontend::new(&card.audio)?;
    let items = list_wavs(common, labels, true)?;
    let loaded = load(&fe, items, common.strict, "decoding")?;
    report_skipped(&loaded.skipped);
    let norm = compute_norm(&loaded.specs);
    let text = toml::to_string(&NormFragment {
        audio: NormAudio { norm },
    })?;
    print!("{} files\n{text}", loaded.specs.len());
    if let Some(out) = &common.out {
        std::fs::write(out, &text).with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}

pub fn inspect(files: &[PathBuf], common: &CommonArgs) -> Result<()> {
    let card = Card::resolve(common)?;
    let fe = AudioFrontend::new(&card.audio)?;
    let mut failed = 0;
    for f in files {
        match tessera_audio::wav::inspect_wav(f) {
            Ok(info) => {
                let resampled = (info.frames as f64 * fe.sample_rate_hz() as f64
                    / info.sample_rate_hz.max(1) as f64)
                    .ceil() as usize;
                let frames = fe.frames_for(resampled)?;
                let (r, c) = fe.token_grid()?;
                println!(
                    "{}: {}, {} ch, {} Hz, {} bits, {} frames, {:.3} s; {}: {} x {} spectrogram (whole clip {} frames), {} x {} = {} tokens of {} values per {} s crop",
                    f.display(), info.format, info.channels, info.sample_rate_hz, info.bits_per_sample, info.frames, info.duration_s,
                    card.name, card.audio.features.n_bins(), fe.target_frames()?, frames, r, c, r * c, fe.tokenizer.p(), card.audio.duration_s
                );
            }
            Err(e) => {
                failed += 1;
                eprintln!("error: {e}");
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} file(s) could not be read", files.len());
    }
    Ok(())
}

pub fn demo(common: &CommonArgs) -> Result<()> {
    let out = common
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs/demo"));
    let (data, labels) = match &common.data {
        Some(d) => (
            d.clone(),
            LabelArgs {
                label_column: None,
                split_column: None,
                test_split: "test".into(),
            },
        ),
        None => {
            let dir = out.join("data");
            eprintln!("generating a labelled demo dataset in {}", dir.display());
            let m = tessera_audio::synth::write_dataset(&dir, 6, 40, 8000, 7)?;
            (
                m,
                LabelArgs {
                    label_column: Some("label".into()),
                    split_column: Some("split".into()),
                    test_split: "test".into(),
                },
            )
        }
    };
    let mut c = common.clone();
    c.data = Some(data);
    c.preset = Some(c.preset.unwrap_or_else(|| "audio-nano-demo".into()));
    let run = out.join("run");
    let _ = std::fs::remove_dir_all(&run);
    c.out = Some(run.clone());
    pretrain(&c, &labels, false, None)?;
    let results = out.join("results");
    let _ = std::fs::remove_dir_all(&results);
    c.out = Some(results.clone());
    c.checkpoint = Some(run);
    probe(&c, &labels, false, None, Some("mae".into()), None)?;
    c.checkpoint = None;
    probe(&c, &labels, true, None, Some("random-init".into()), None)?;
    probe(
        &c,
        &labels,
        false,
        Some("logmel"),
        Some("logmel".into()),
        None,
    )?;
    println!("\nAll results: {}", results.join("results.md").display());
    Ok(())
}

/// One MAE training step (forward, backward, AdamW) on random `[bins, frames]` log-mels:
/// prints samples/s as a JSON line (the same measurement as benchmarks/mae_step_torch.py).
pub fn bench_step(common: &CommonArgs, frames: usize, warmup: usize, steps: usize) -> Result<()> {
    tessera_cli::init_threads(common.threads)?;
    let mut card = Card::resolve(common)?;
    let bs = common.batch_size.unwrap_or(8);
    card.audio.duration_s = (frames as f64 * card.audio.features.hop_s()) as f32;
    let fe = AudioFrontend::new(&card.audio)?;
    let enc_cfg = card.encoder_config(&fe)?;
    let mut store = ParamStore::new(card.seed, &Device::Cpu);
    let recipe = card.recipe.build(&enc_cfg, &mut store)?;
    let bins = card.audio.features.n_bins();
    let mut rng = Rng::new(card.seed);
    let samples = (0..bs)
        .map(|_| {
            let data = (0..bins * frames).map(|_| rng.normal() as f32).collect();
            fe.tokens(&Spectrogram {
                data,
                bins,
                frames,
                hop_s: card.audio.features.hop_s(),
            })
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
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
