//! pretrain, embed, probe, stats, inspect and demo, over any modality.

use crate::card::RunCard;
use crate::source::{embed_chunks, fit_stats, list, list_from, map_files, Source};
use crate::App;
use anyhow::{bail, Context, Result};
use candle_core::Device;
use std::path::{Path, PathBuf};
use tessera_cli::{write_npy, CommonArgs, DataItem};
use tessera_core::{Encoder, ParamStore, TokenTensors};
use tessera_eval::{run_probes, Features, ResultRow};
use tessera_recipes::ENCODER_PREFIX;
use tessera_tokens::{InfoRow, Modality, SampleTokens, Tokens};
use tessera_train::{latest_checkpoint, RunOptions};

/// A run's encoder with its card and front end.
pub struct RunEncoder<M: Modality> {
    pub card: RunCard<M>,
    pub m: M,
    pub encoder: Encoder,
    pub store: ParamStore,
}

/// The encoder of a run (weights from its latest checkpoint), or a random one from the
/// The candle device `--device` names: `cpu`, `cuda[:N]` or `metal[:N]`.
pub fn device(common: &CommonArgs) -> Result<Device> {
    let spec = common.device.trim().to_ascii_lowercase();
    let (kind, index) = match spec.split_once(':') {
        Some((k, i)) => (
            k.to_string(),
            i.parse::<usize>().with_context(|| {
                format!("--device {spec}: the index after `:` must be a number")
            })?,
        ),
        None => (spec.clone(), 0),
    };
    let (dev, feature) = match kind.as_str() {
        "cpu" => return Ok(Device::Cpu),
        "cuda" => (Device::new_cuda(index), "cuda"),
        "metal" => (Device::new_metal(index), "metal"),
        _ => bail!("--device {spec}: expected cpu, cuda:N or metal"),
    };
    dev.with_context(|| {
        format!(
            "--device {spec}: not available (a binary for it is built with `--features {feature}`, \
             which needs the {} toolkit)",
            if feature == "cuda" { "CUDA" } else { "Metal" }
        )
    })
}

/// preset with `random_init`.
pub fn encoder_for<M: Modality>(
    app: &App<M>,
    common: &CommonArgs,
    random_init: bool,
) -> Result<RunEncoder<M>> {
    let card = match (&common.checkpoint, random_init) {
        (Some(run), false) => RunCard::<M>::from_run(run)?,
        (None, true) => app.resolve(common)?,
        (Some(_), true) => bail!("give either --checkpoint or --random-init, not both"),
        (None, false) => bail!("--checkpoint <run dir> is required (or --random-init)"),
    };
    let m = card.modality()?;
    let mut store = ParamStore::new(card.seed, &device(common)?);
    let encoder = Encoder::new(&card.encoder_config(&m)?, &mut store, ENCODER_PREFIX)?;
    if let (Some(run), false) = (&common.checkpoint, random_init) {
        if let Some(ck) = latest_checkpoint(run)? {
            store.load_safetensors(&ck.model_path(), ENCODER_PREFIX)?;
        }
    }
    Ok(RunEncoder {
        card,
        m,
        encoder,
        store,
    })
}

/// The results name of a frozen-feature run: the baseline's name, `random-init`, or the
/// checkpoint's folder (`pretrained` when it has none).
pub fn run_name(common: &CommonArgs, random_init: bool, baseline: Option<&str>) -> String {
    match (baseline, random_init) {
        (Some(b), _) => b.to_string(),
        (None, true) => "random-init".into(),
        (None, false) => common
            .checkpoint
            .as_ref()
            .and_then(|c| c.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "pretrained".into()),
    }
}

/// `s` with every character but ASCII letters, digits, `-` and `_` replaced by `_`, for
/// use in a file name.
pub fn file_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Fails unless every row has a label (`what` is the subcommand that needs them).
pub(crate) fn require_labels(items: &[DataItem], what: &str) -> Result<()> {
    if let Some(i) = items.iter().find(|i| i.label.is_none()) {
        bail!(
            "{what} needs labels ({} has none): a manifest with a label column (--label-column) or a folder of class folders",
            i.path.display()
        );
    }
    Ok(())
}

/// The sorted distinct classes of `labels`; at least two.
pub(crate) fn classes_of<'a>(
    labels: impl Iterator<Item = &'a String>,
    what: &str,
) -> Result<Vec<String>> {
    let mut classes: Vec<String> = labels.cloned().collect();
    classes.sort();
    classes.dedup();
    if classes.len() < 2 {
        bail!("{what} needs at least two classes (found {classes:?})");
    }
    Ok(classes)
}

/// The index of `label` in sorted `classes` (0 when absent).
pub(crate) fn class_index(classes: &[String], label: &str) -> usize {
    classes
        .binary_search_by(|c| c.as_str().cmp(label))
        .unwrap_or(0)
}

/// The `--config` file as a TOML table.
pub(crate) fn read_config(path: &Path) -> Result<toml::Table> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading --config {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("--config {}: not a TOML table", path.display()))
}

/// Frozen embeddings `[n, 2D]` (CLS ‖ mean patch) of token samples, in batches.
pub fn embed_samples(enc: &Encoder, tokens: &[SampleTokens]) -> Result<Features> {
    let bar = tessera_cli::progress(tokens.len() as u64, "embedding");
    let (data, d) = embed_batches(enc, tokens, |n| bar.inc(n))?;
    bar.finish_and_clear();
    Ok(Features::new(data, tokens.len(), d)?)
}

/// Rows of `tokens` embedded in batches of 32 and their width; `done(n)` after each batch.
fn embed_batches(
    enc: &Encoder,
    tokens: &[SampleTokens],
    done: impl Fn(u64),
) -> Result<(Vec<f32>, usize)> {
    let mut data = Vec::new();
    let mut d = 0;
    for chunk in tokens.chunks(32) {
        let t = TokenTensors::from_tokens(&Tokens::from_samples(chunk)?, enc.device())?;
        let e = enc.embed(&t)?;
        d = e.dim(1)?;
        data.extend(e.flatten_all()?.to_vec1::<f32>()?);
        done(chunk.len() as u64);
    }
    Ok((data, d))
}

/// Writes `embeddings.npy` (`[n, d]`) and `files.txt` (one path per row) into `out`. Rows that are windows of
/// recordings (`file#t=START,END`) also get `windows.csv` (file, start and end seconds,
/// label, split); with `pool`, the windows of each recording are averaged into one row
/// named by the recording.
/// Embeds `items` with `embed` and writes the rows to `--out`: at once, or with
/// `shard_rows` in parts of that many items, each in its own folder `part-NNNNNN/`
/// (`embeddings.npy`, `files.txt`, `windows.csv`) written under a temporary name and
/// renamed into place, so a rerun skips every finished part and an interrupted one loses
/// at most the part in progress. Processes started together by a launcher (`mpirun -np W`)
/// take every W-th part, with no communication.
pub(crate) fn embed_to<M: Modality>(
    m: &M,
    items: Vec<DataItem>,
    common: &CommonArgs,
    pool: bool,
    shard_rows: Option<usize>,
    mut embed: impl FnMut(&[SampleTokens]) -> Result<Vec<f32>>,
) -> Result<()> {
    let out = common.out()?;
    let Some(n) = shard_rows else {
        let (done, rows, d) = embed_chunks(m, items, common.strict, &mut embed)?;
        done.report_skipped();
        let n = write_embeddings(out, &done.items, &rows, d, pool)?;
        println!(
            "wrote {n} embeddings of width {d} to {}",
            out.join("embeddings.npy").display()
        );
        return Ok(());
    };
    if n == 0 {
        bail!("--shard-rows must be at least 1");
    }
    if pool {
        bail!(
            "--pool-windows averages a recording's windows, which --shard-rows may split across \
             parts: embed the windows in parts, then average the rows named in windows.csv"
        );
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let (rank, size) = tessera_train::dist::launched_rank();
    let parts = items.len().div_ceil(n);
    let (mut written, mut present) = (0, 0);
    for (i, chunk) in items
        .chunks(n)
        .enumerate()
        .filter(|(i, _)| i % size == rank)
    {
        let dir = out.join(format!("part-{i:06}"));
        if dir.join("embeddings.npy").is_file() {
            present += 1;
            continue;
        }
        let tmp = out.join(format!(".part-{i:06}.tmp"));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).with_context(|| format!("clearing {}", tmp.display()))?;
        }
        let (done, rows, d) = embed_chunks(m, chunk.to_vec(), common.strict, &mut embed)?;
        done.report_skipped();
        let rows = write_embeddings(&tmp, &done.items, &rows, d, false)?;
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
        }
        std::fs::rename(&tmp, &dir)
            .with_context(|| format!("moving {} to {}", tmp.display(), dir.display()))?;
        eprintln!("wrote {rows} embeddings of width {d} to {}", dir.display());
        written += 1;
    }
    println!(
        "{}: {written} part(s) written, {present} already there, of {parts} parts of up to {n} items{}",
        out.display(),
        if size > 1 {
            format!(" (process {rank} of {size} takes every {size}th)")
        } else {
            String::new()
        }
    );
    Ok(())
}

/// Writes `embeddings.npy`, `files.txt` and (for windows) `windows.csv` into `out`;
/// returns the number of rows.
pub fn write_embeddings(
    out: &Path,
    items: &[DataItem],
    data: &[f32],
    d: usize,
    pool: bool,
) -> Result<usize> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let windows: Vec<(PathBuf, Option<(f64, f64)>)> = items
        .iter()
        .map(|i| tessera_tokens::time_window(&i.path).unwrap_or((i.path.clone(), None)))
        .collect();
    let (names, data): (Vec<String>, Vec<f32>) = if pool {
        pool_rows(&windows, data, d)
    } else {
        let names = items.iter().map(|i| i.path.display().to_string()).collect();
        (names, data.to_vec())
    };
    write_npy(&out.join("embeddings.npy"), &data, names.len(), d)?;
    let files = out.join("files.txt");
    std::fs::write(&files, names.join("\n") + "\n")
        .with_context(|| format!("writing {}", files.display()))?;
    if !pool && windows.iter().any(|w| w.1.is_some()) {
        let mut csv = String::from("file,start_s,end_s,label,split\n");
        for (item, (file, w)) in items.iter().zip(&windows) {
            let (a, b) = w.map_or((String::new(), String::new()), |(a, b)| {
                (a.to_string(), b.to_string())
            });
            let field = |s: &str| tessera_cli::csv_field(s);
            csv.push_str(&format!(
                "{},{a},{b},{},{}\n",
                field(&file.display().to_string()),
                field(item.label.as_deref().unwrap_or("")),
                field(item.split.as_deref().unwrap_or(""))
            ));
        }
        let p = out.join("windows.csv");
        std::fs::write(&p, csv).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(names.len())
}

/// The mean row of each recording's windows, recordings in order of first appearance.
fn pool_rows(
    windows: &[(PathBuf, Option<(f64, f64)>)],
    data: &[f32],
    d: usize,
) -> (Vec<String>, Vec<f32>) {
    let mut names: Vec<String> = Vec::new();
    let mut index: std::collections::HashMap<&Path, usize> = Default::default();
    let mut sums: Vec<f64> = Vec::new();
    let mut counts: Vec<usize> = Vec::new();
    for (row, (file, _)) in windows.iter().enumerate() {
        let k = *index.entry(file.as_path()).or_insert_with(|| {
            names.push(file.display().to_string());
            sums.resize(sums.len() + d, 0.0);
            counts.push(0);
            counts.len() - 1
        });
        counts[k] += 1;
        for (s, x) in sums[k * d..(k + 1) * d]
            .iter_mut()
            .zip(&data[row * d..(row + 1) * d])
        {
            *s += f64::from(*x);
        }
    }
    let pooled = sums
        .chunks(d)
        .zip(&counts)
        .flat_map(|(s, &c)| s.iter().map(move |x| (x / c as f64) as f32))
        .collect();
    (names, pooled)
}

fn columns_of(f: &Features, from: usize, to: usize) -> Result<Features> {
    let mut data = Vec::with_capacity(f.n * (to - from));
    for i in 0..f.n {
        data.extend_from_slice(&f.data[i * f.d + from..i * f.d + to]);
    }
    Ok(Features::new(data, f.n, to - from)?)
}

/// What `probe` predicts from the labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// One class per sample: linear and kNN probes.
    Classes,
    /// `;`-separated label sets: one-vs-rest linear probe, micro/macro mAP and AUROC.
    MultiLabel,
    /// k labelled samples per class, repeated seeded draws: mean ± sd.
    FewShot(usize),
    /// A number per sample: ridge regression, R² and MAE.
    Regression,
}

/// Result rows of one feature set for `target`; class probes also write the linear
/// probe's confusion matrix as CSV and PNG.
#[allow(clippy::too_many_arguments)]
fn score_features(
    target: Target,
    labels: &[String],
    train_idx: &[usize],
    test_idx: &[usize],
    train: &Features,
    test: &Features,
    cfg: &tessera_eval::ProbeConfig,
    seed: u64,
    (run, task, feat): (&str, &str, &str),
    out: &Path,
) -> Result<Vec<ResultRow>> {
    let pick = |idx: &[usize]| idx.iter().map(|&i| labels[i].clone()).collect::<Vec<_>>();
    let (l_train, l_test) = (pick(train_idx), pick(test_idx));
    match target {
        Target::MultiLabel => {
            let (classes, _) = tessera_eval::parse_multi_labels(labels)?;
            let y_train = tessera_eval::multi_label_indicators(&l_train, &classes)?;
            let y_test = tessera_eval::multi_label_indicators(&l_test, &classes)?;
            let r = tessera_eval::run_multi_label_probe(train, &y_train, test, &y_test, cfg, seed)?;
            Ok(vec![r.report.result_row(
                run,
                task,
                "linear-multilabel",
                feat,
                seed,
            )])
        }
        Target::Regression => {
            let num = |v: &[String]| -> Result<Vec<f64>> {
                v.iter()
                    .map(|s| {
                        s.trim()
                            .parse::<f64>()
                            .ok()
                            .filter(|x| x.is_finite())
                            .with_context(|| format!("--regression: label `{s}` is not a number"))
                    })
                    .collect()
            };
            let r = tessera_eval::run_regression_probe(
                train,
                &num(&l_train)?,
                test,
                &num(&l_test)?,
                cfg,
                seed,
            )?;
            Ok(vec![r.report.result_row(run, task, "ridge", feat, seed)])
        }
        Target::Classes | Target::FewShot(_) => {
            let classes = classes_of(labels.iter(), "probe")?;
            let ids = |v: &[String]| -> Vec<usize> {
                v.iter().map(|l| class_index(&classes, l)).collect()
            };
            let (y_train, y_test) = (ids(&l_train), ids(&l_test));
            if let Target::FewShot(_) = target {
                let r = tessera_eval::run_few_shot(
                    train,
                    &y_train,
                    test,
                    &y_test,
                    classes.len(),
                    cfg,
                    seed,
                )?;
                for s in &r.short_classes {
                    eprintln!(
                        "few-shot: class `{}` has only {} training samples (all used)",
                        classes[s.class], s.available
                    );
                }
                return Ok(r.rows(run, task, feat));
            }
            let r = run_probes(train, &y_train, test, &y_test, classes.len(), cfg, seed)?;
            let mut rows = Vec::new();
            for (protocol, rep) in [("linear", &r.linear), ("knn", &r.knn)] {
                rows.push(ResultRow {
                    run: run.into(),
                    task: task.into(),
                    protocol: protocol.into(),
                    features: feat.into(),
                    seed,
                    accuracy: rep.accuracy,
                    macro_f1: rep.macro_f1,
                    balanced_accuracy: rep.balanced_accuracy,
                    n_test: rep.n,
                    ..Default::default()
                });
            }
            let stem = format!("confusion-{run}-{task}-{feat}");
            tessera_eval::write_confusion_csv(
                &r.linear.confusion,
                Some(&classes),
                &out.join(format!("{stem}.csv")),
            )?;
            if let Err(e) = tessera_eval::plot_confusion(
                &r.linear.confusion,
                Some(&classes),
                &out.join(format!("{stem}.png")),
                &Default::default(),
            ) {
                eprintln!("no confusion plot: {e}");
            }
            Ok(rows)
        }
    }
}

/// Appends rows to `out/rows.jsonl` and rewrites the tables from all rows there.
pub fn save_rows(out: &Path, rows: &[ResultRow]) -> Result<()> {
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
    drop(f);
    let all = tessera_eval::read_rows_jsonl(&jl)?;
    tessera_eval::write_table(&all, &out.join("results.csv"))?;
    tessera_eval::write_table(&all, &out.join("results.parquet"))?;
    let summary = tessera_eval::summarise(&all);
    tessera_eval::write_summary_table(&summary, &out.join("summary.csv"))?;
    std::fs::write(
        out.join("results.md"),
        tessera_eval::to_markdown(&all) + "\n" + &tessera_eval::summary_to_markdown(&summary),
    )?;
    plot_results(out, &all);
    Ok(())
}

/// Comparison charts of every run in a results folder (mean ± sd over seeds), one per
/// metric the rows have; a plot that cannot be drawn is reported, not fatal.
pub(crate) fn plot_results(out: &Path, rows: &[ResultRow]) -> Vec<PathBuf> {
    let mut written = Vec::new();
    let metrics = ["accuracy", "balanced_accuracy", "map_macro", "r2"];
    for metric in metrics {
        let has = rows.iter().any(|r| match metric {
            "accuracy" => r.accuracy.is_finite(),
            "balanced_accuracy" => r.balanced_accuracy.is_finite(),
            m => r.extra.get(m).is_some_and(|v| v.is_finite()),
        });
        if !has {
            continue;
        }
        let path = out.join(format!("comparison-{metric}.png"));
        match tessera_eval::plot_comparison_rows(rows, metric, &path, &Default::default()) {
            Ok(_) => written.push(path),
            Err(e) => eprintln!("no {metric} plot: {e}"),
        }
    }
    written
}

/// The differences of `new` from `old` (tables recursively): a `--config` fragment.
fn diff(old: &toml::Value, new: &toml::Value) -> Option<toml::Value> {
    match (old, new) {
        (toml::Value::Table(o), toml::Value::Table(n)) => {
            let t: toml::Table = n
                .iter()
                .filter_map(|(k, v)| match o.get(k) {
                    Some(ov) => diff(ov, v).map(|d| (k.clone(), d)),
                    None => Some((k.clone(), v.clone())),
                })
                .collect();
            (!t.is_empty()).then_some(toml::Value::Table(t))
        }
        (o, n) if o == n => None,
        (_, n) => Some(n.clone()),
    }
}

impl<M: Modality> App<M> {
    pub(crate) fn pretrain(
        &self,
        common: &CommonArgs,
        resume: bool,
        minutes: Option<f64>,
    ) -> Result<()> {
        tessera_cli::init_threads(common.threads)?;
        // The processes of `mpirun -np N` train one model together (the `mpi` feature).
        let world = tessera_train::dist::world()?;
        let lead = world.rank() == 0;
        let out = common.out()?;
        let mut card = if resume {
            let mut c = RunCard::<M>::from_run(out)?;
            if common.seed.is_some_and(|s| s != c.seed) {
                bail!(
                    "--seed differs from the run's seed {}: a resumed run keeps its seed",
                    c.seed
                );
            }
            c.apply_flags(common);
            c
        } else {
            if latest_checkpoint(out)?.is_some() {
                bail!(
                    "{} already holds a run: add --resume to continue it, or choose another --out",
                    out.display()
                );
            }
            self.resolve(common)?
        };
        card.train.time_limit_s = minutes.map(|m| m * 60.0);
        if card.train.micro_batches.is_none() && world.size() > 1 {
            // Recorded, so a resume with another process count keeps the data order.
            card.train.micro_batches = Some(world.size());
        }
        let data = match (&common.data, resume) {
            (Some(d), _) => d.clone(),
            (None, true) if !card.data.is_empty() => PathBuf::from(&card.data),
            (None, _) => bail!("--data is required (a file, folder, CSV manifest or list)"),
        };
        card.data = data.display().to_string();
        let mut items = list_from::<M>(&data, common, true)?;
        let mut m = card.modality()?;
        // The recipe is built (and its hyperparameters checked) before the statistics
        // pass: the token widths it needs do not depend on the statistics.
        let mut store = ParamStore::new(card.seed, &device(common)?);
        let mut recipe = card
            .recipe
            .build(&card.encoder_config(&m)?, &mut store)
            .context("invalid [recipe]")?;
        let mut skipped = Vec::new();
        if let Some(fit) = fit_stats(&m, &items, common.strict)? {
            if lead {
                eprintln!(
                    "fitted normalisation statistics on {} files (saved with the run)",
                    items.len() - fit.skipped.len()
                );
            }
            card.frontend = fit.config;
            m = card.modality()?;
            // Files the statistics pass could not read are left out of training.
            let bad: std::collections::HashSet<usize> = fit.skipped.iter().map(|s| s.0).collect();
            items = items
                .into_iter()
                .enumerate()
                .filter(|(i, _)| !bad.contains(i))
                .map(|(_, it)| it)
                .collect();
            skipped.extend(fit.skipped.into_iter().map(|s| s.1));
        }
        let paths: Vec<PathBuf> = items.into_iter().map(|i| i.path).collect();
        let n_files = paths.len();
        let mut source = Source::new(&m, paths, card.cache_mb, card.seed, common.strict)
            .with_order(card.train.data_order);
        let opts = RunOptions {
            run_dir: out,
            seed: card.seed,
            resume,
            config_toml: card.to_toml()?,
            progress: true,
            comm: world.as_ref(),
        };
        if lead {
            eprintln!(
                "pretraining `{}` ({}) on {n_files} files from {}{}",
                card.name,
                card.recipe_kind(),
                data.display(),
                if world.size() > 1 {
                    format!(", {} processes", world.size())
                } else {
                    String::new()
                }
            );
        }
        let summary =
            match tessera_train::train(recipe.as_mut(), &store, &mut source, &card.train, &opts) {
                Ok(s) => s,
                Err(e) => {
                    if world.size() > 1 {
                        // The others wait in a collective this process will never join.
                        eprintln!("error: rank {}: {e:#}", world.rank());
                        world.abort(1);
                    }
                    return Err(e.into());
                }
            };
        if !lead {
            return Ok(());
        }
        match summary.losses.last() {
            Some(last) => println!(
                "trained steps {}..{} in {:.1} s ({:.1} samples/s), final loss {last:.4}; checkpoint {}",
                summary.first_step,
                summary.last_step,
                summary.elapsed_s,
                summary.samples_per_s,
                summary
                    .checkpoint
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            ),
            None => println!(
                "nothing to do: {} is already at step {} of {} (pass --steps to extend it)",
                out.display(),
                summary.first_step - 1,
                card.train.steps
            ),
        }
        let s = source.cache().stats();
        println!(
            "sample cache: {} hits, {} misses, {} evictions, peak {:.1} MB of {} MB",
            s.hits,
            s.misses,
            s.evictions,
            s.peak_bytes as f64 / 1048576.0,
            card.cache_mb
        );
        skipped.extend(source.skipped);
        if let Some(first) = skipped.first() {
            eprintln!(
                "skipped {} unreadable file(s); first: {first}",
                skipped.len()
            );
        }
        Ok(())
    }

    /// Packs `--data` into tar shards of `rows` samples (`shard-NNNNNN.tar` in `--out`),
    /// in listing order, one file in memory at a time; shards already there are kept.
    pub(crate) fn shard(&self, common: &CommonArgs, rows: usize) -> Result<()> {
        if rows == 0 {
            bail!("--shard-rows must be at least 1");
        }
        let out = common.out()?;
        let items = list::<M>(common, false)?;
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        let bar = tessera_cli::progress(items.len() as u64, "sharding");
        let (mut written, mut present) = (0, 0);
        for (i, chunk) in items.chunks(rows).enumerate() {
            let path = out.join(format!("shard-{i:06}.tar"));
            if path.is_file() {
                present += 1;
                bar.inc(chunk.len() as u64);
                continue;
            }
            let mut w = tessera_cli::shards::ShardWriter::create(&path)?;
            for (j, it) in chunk.iter().enumerate() {
                let shown = it.path.display();
                if it.path.is_dir() {
                    bail!("{shown}: a folder sample (a DICOM series); `shard` packs single files");
                }
                let name = it
                    .path
                    .file_name()
                    .map(|n| n.to_string_lossy().to_ascii_lowercase());
                let ext = match name.as_deref().and_then(|n| n.split_once('.')) {
                    Some((_, ext)) if !ext.contains('#') => ext.to_string(),
                    _ => bail!(
                        "{shown}: `shard` packs whole files with an extension (not windows or \
                         per-file settings: shard the files, then use --window)"
                    ),
                };
                let key = format!("{:09}", i * rows + j);
                let bytes = std::fs::read(&it.path).with_context(|| format!("reading {shown}"))?;
                w.append(&format!("{key}.{ext}"), &bytes)?;
                let meta = serde_json::json!({
                    "path": shown.to_string(),
                    "label": it.label,
                    "split": it.split,
                });
                w.append(&format!("{key}.json"), meta.to_string().as_bytes())?;
                bar.inc(1);
            }
            w.finish()?;
            written += 1;
        }
        bar.finish_and_clear();
        println!(
            "{}: {written} shard(s) written, {present} already there, {} samples in {} shards",
            out.display(),
            items.len(),
            items.len().div_ceil(rows)
        );
        Ok(())
    }

    pub(crate) fn embed(
        &self,
        common: &CommonArgs,
        random_init: bool,
        pool: bool,
        shard_rows: Option<usize>,
    ) -> Result<()> {
        tessera_cli::init_threads(common.threads)?;
        let run = encoder_for(self, common, random_init)?;
        let items = list::<M>(common, false)?;
        embed_to(&run.m, items, common, pool, shard_rows, |t| {
            // embed_chunks shows the progress.
            Ok(embed_batches(&run.encoder, t, |_| {})?.0)
        })
    }

    /// The front end for probing: the card's, with statistics fitted on the training rows
    /// when the card has none (as pretraining would).
    fn probe_frontend(
        &self,
        card: &mut RunCard<M>,
        items: &[DataItem],
        common: &CommonArgs,
    ) -> Result<M> {
        if let (Some(_), Some(path)) = (&common.checkpoint, &common.config) {
            // A run's model is fixed; `--config` may still change how it is probed.
            let mut over = read_config(path)?;
            let probe = over.remove("probe");
            if let Some(k) = over.keys().next() {
                bail!(
                    "--config {}: with --checkpoint only a [probe] table applies (the model is the run's), found `{k}`",
                    path.display()
                );
            }
            if let Some(p) = probe {
                let mut base = toml::Value::try_from(&card.probe)?;
                tessera_cli::deep_merge(&mut base, p);
                card.probe = base
                    .try_into()
                    .with_context(|| format!("--config {}: invalid [probe]", path.display()))?;
            }
        }
        let m = card.modality()?;
        let train: Vec<DataItem> = items
            .iter()
            .filter(|i| !common.is_test(i))
            .cloned()
            .collect();
        match fit_stats(&m, &train, common.strict)? {
            Some(fit) => {
                card.frontend = fit.config;
                card.modality()
            }
            None => Ok(m),
        }
    }

    pub(crate) fn probe(
        &self,
        common: &CommonArgs,
        random_init: bool,
        baseline: Option<&str>,
        name: Option<String>,
        task: Option<String>,
        target: Target,
    ) -> Result<Vec<ResultRow>> {
        tessera_cli::init_threads(common.threads)?;
        let out = common.out()?;
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        let items = list::<M>(common, false)?;
        require_labels(&items, "probe")?;
        let mut sets: Vec<(String, Features)> = Vec::new();
        if target == Target::MultiLabel {
            // Label sets: `a;c`. Checked before any decoding.
            tessera_eval::parse_multi_labels(
                &items
                    .iter()
                    .map(|i| i.label.clone().unwrap_or_default())
                    .collect::<Vec<_>>(),
            )?;
        }
        let (card, mapped) = match baseline {
            Some(b) => {
                if !M::baselines().contains(&b) {
                    bail!(
                        "unknown --baseline `{b}` (the {} modality has: {})",
                        M::NAME,
                        if M::baselines().is_empty() {
                            "none".into()
                        } else {
                            M::baselines().join(", ")
                        }
                    );
                }
                if random_init {
                    bail!("--baseline uses no network; --random-init does not apply");
                }
                let mut card = match &common.checkpoint {
                    Some(run) => RunCard::<M>::from_run(run)?,
                    None => self.resolve(common)?,
                };
                let m = self.probe_frontend(&mut card, &items, common)?;
                let mapped = map_files(&m, items, common.strict, "decoding", |m, s| {
                    m.baseline(b, s)
                })?;
                let d = mapped.values.first().map_or(0, Vec::len);
                mapped.report_skipped();
                if mapped.values.iter().any(|v| v.len() != d) {
                    bail!("baseline `{b}` gave features of different widths");
                }
                let data: Vec<f32> = mapped.values.iter().flatten().copied().collect();
                sets.push((b.to_string(), Features::new(data, mapped.values.len(), d)?));
                (card, mapped.items_only())
            }
            None => {
                let mut run = encoder_for(self, common, random_init)?;
                let m = self.probe_frontend(&mut run.card, &items, common)?;
                let mapped = map_files(&m, items, common.strict, "decoding", M::eval_view)?;
                mapped.report_skipped();
                let f = embed_samples(&run.encoder, &mapped.values)?;
                let d = f.d / 2;
                sets.push(("cls".into(), columns_of(&f, 0, d)?));
                sets.push(("mean".into(), columns_of(&f, d, 2 * d)?));
                sets.push(("cls+mean".into(), f));
                (run.card, mapped.items_only())
            }
        };
        let kept = mapped.items;
        let is_test: Vec<bool> = kept.iter().map(|i| common.is_test(i)).collect();
        let test_idx: Vec<usize> = (0..kept.len()).filter(|&i| is_test[i]).collect();
        let train_idx: Vec<usize> = (0..kept.len()).filter(|&i| !is_test[i]).collect();
        if test_idx.is_empty() || train_idx.is_empty() {
            bail!(
                "probe needs both training rows and test rows (split `{}`; set --split-column / --test-split)",
                common.test_split
            );
        }
        let run_name = name.unwrap_or_else(|| match (baseline, random_init, &common.checkpoint) {
            (Some(b), _, _) => b.to_string(),
            (None, true, _) => format!("{}-random", card.name),
            (None, false, Some(p)) => p
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_else(|| card.name.clone()),
            _ => card.name.clone(),
        });
        let task = task
            .or_else(|| common.label_column.clone())
            .unwrap_or_else(|| "label".into());
        let labels: Vec<String> = kept
            .iter()
            .map(|i| i.label.clone().unwrap_or_default())
            .collect();
        let mut cfg = card.probe.clone();
        if let Target::FewShot(k) = target {
            cfg.few_shot.k = k;
        }
        let mut rows = Vec::new();
        for (feat, f) in &sets {
            let (train, test) = (f.select(&train_idx)?, f.select(&test_idx)?);
            rows.extend(score_features(
                target,
                &labels,
                &train_idx,
                &test_idx,
                &train,
                &test,
                &cfg,
                card.seed,
                (&run_name, &task, feat),
                out,
            )?);
        }
        save_rows(out, &rows)?;
        print!("{}", tessera_eval::to_markdown(&rows));
        Ok(rows)
    }

    pub(crate) fn stats(&self, common: &CommonArgs) -> Result<()> {
        tessera_cli::init_threads(common.threads)?;
        let out = common.out()?;
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        let card = self.resolve(common)?;
        let m = card.modality()?;
        let items = list::<M>(common, false)?;
        let bar = tessera_cli::progress(items.len() as u64, "checking");
        let mut table: Vec<InfoRow> = Vec::new();
        let mut bad = Vec::new();
        for it in &items {
            match m.inspect(&it.path) {
                Ok(r) => table.push(r),
                Err(e) if common.strict => return Err(anyhow::Error::new(e)),
                Err(e) => bad.push(e.to_string()),
            }
            bar.inc(1);
        }
        bar.finish_and_clear();
        let csv = out.join("files.csv");
        write_rows_csv(&csv, &table)?;
        println!(
            "{} {} files checked ({} bad); per-file table {}",
            items.len(),
            M::NAME,
            bad.len(),
            csv.display()
        );
        for b in bad.iter().take(5) {
            eprintln!("bad: {b}");
        }
        let train: Vec<DataItem> = items.into_iter().filter(|i| !common.is_test(i)).collect();
        match fit_stats(&m, &train, common.strict)? {
            Some(fit) => {
                let old = toml::Value::try_from(card.frontend.clone())?;
                let new = toml::Value::try_from(fit.config)?;
                let mut frag = toml::Table::new();
                if let Some(d) = diff(&old, &new) {
                    frag.insert(M::NAME.into(), d);
                }
                let text = toml::to_string(&frag)?;
                let path = out.join("stats.toml");
                std::fs::write(&path, &text)
                    .with_context(|| format!("writing {}", path.display()))?;
                println!(
                    "normalisation statistics of {} training files (a --config fragment, {}):\n{text}",
                    train.len(),
                    path.display()
                );
            }
            None => println!(
                "no dataset statistics to fit: the `{}` card normalises each file itself or has its statistics",
                M::NAME
            ),
        }
        for line in m.advise(&table) {
            println!("{line}");
        }
        Ok(())
    }

    pub(crate) fn inspect(&self, files: &[PathBuf], common: &CommonArgs) -> Result<()> {
        let card = self.resolve(common)?;
        let m = card.modality()?;
        let mut failed = 0;
        for f in files {
            match m.inspect(f) {
                Ok(row) => {
                    let w = row.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
                    for (k, v) in &row {
                        println!("{k:<w$}  {v}");
                    }
                    println!();
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

    pub(crate) fn demo(&self, common: &CommonArgs, data_only: bool) -> Result<()> {
        let out = common
            .out
            .clone()
            .unwrap_or_else(|| PathBuf::from("runs/demo"));
        let mut c = common.clone();
        if c.data.is_none() || data_only {
            let dir = out.join("data");
            eprintln!("generating a labelled demo dataset in {}", dir.display());
            let manifest = M::write_demo_data(&dir, 7).map_err(anyhow::Error::new)?;
            if data_only {
                println!("{}", manifest.display());
                return Ok(());
            }
            c.data = Some(manifest);
        }
        c.preset = Some(c.preset.unwrap_or_else(|| self.info.demo_preset.into()));
        let run = out.join("run");
        let _ = std::fs::remove_dir_all(&run);
        c.out = Some(run.clone());
        self.pretrain(&c, false, None)?;
        let results = out.join("results");
        let _ = std::fs::remove_dir_all(&results);
        c.out = Some(results.clone());
        c.checkpoint = Some(run);
        self.probe(
            &c,
            false,
            None,
            Some("pretrained".into()),
            None,
            Target::Classes,
        )?;
        c.checkpoint = None;
        self.probe(
            &c,
            true,
            None,
            Some("random-init".into()),
            None,
            Target::Classes,
        )?;
        for b in M::baselines() {
            self.probe(
                &c,
                false,
                Some(b),
                Some(b.to_string()),
                None,
                Target::Classes,
            )?;
        }
        println!("\nAll results: {}", results.join("results.md").display());
        Ok(())
    }
}

impl<T> crate::source::Mapped<T> {
    /// The kept items without the values.
    fn items_only(self) -> crate::source::Mapped<()> {
        crate::source::Mapped {
            values: vec![(); self.items.len()],
            items: self.items,
            skipped: self.skipped,
        }
    }
}

/// Writes rows as CSV: the columns of all rows in first-seen order, quoted where needed.
fn write_rows_csv(path: &Path, rows: &[InfoRow]) -> Result<()> {
    let mut cols: Vec<String> = Vec::new();
    for r in rows {
        for (k, _) in r {
            if !cols.contains(k) {
                cols.push(k.clone());
            }
        }
    }
    let quote = tessera_cli::csv_field;
    let mut text = cols.iter().map(|c| quote(c)).collect::<Vec<_>>().join(",") + "\n";
    for r in rows {
        let line: Vec<String> = cols
            .iter()
            .map(|c| {
                r.iter()
                    .find(|(k, _)| k == c)
                    .map(|(_, v)| quote(v))
                    .unwrap_or_default()
            })
            .collect();
        text += &(line.join(",") + "\n");
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// `plot --run DIR`: training curves of a run folder (`metrics.jsonl`) and/or the
/// comparison charts of a probe results folder (`rows.jsonl`).
pub(crate) fn plot(dir: &Path, out: Option<&Path>) -> Result<()> {
    let out = out.unwrap_or(dir);
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut written = Vec::new();
    let metrics = dir.join("metrics.jsonl");
    if metrics.is_file() {
        let path = out.join("training.png");
        let r = tessera_eval::plot_run(&metrics, &path)?;
        if r.font.is_none() {
            eprintln!(
                "no font found: plots are drawn without text (set TESSERA_PLOT_FONT to a .ttf)"
            );
        }
        written.push(path);
    }
    let rows = dir.join("rows.jsonl");
    if rows.is_file() {
        let all: Vec<ResultRow> = std::fs::read_to_string(&rows)
            .with_context(|| format!("reading {}", rows.display()))?
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(serde_json::from_str)
            .collect::<std::result::Result<_, _>>()
            .with_context(|| format!("{}: corrupt row", rows.display()))?;
        written.extend(plot_results(out, &all));
    }
    if written.is_empty() {
        bail!(
            "{}: neither a run folder (metrics.jsonl) nor a probe results folder (rows.jsonl)",
            dir.display()
        );
    }
    for p in written {
        println!("wrote {}", p.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on(spec: &str) -> Result<Device> {
        device(&CommonArgs {
            device: spec.into(),
            ..Default::default()
        })
    }

    #[test]
    fn device_names_what_is_missing() {
        assert!(matches!(on("cpu"), Ok(Device::Cpu)));
        assert!(matches!(on(" CPU "), Ok(Device::Cpu)));
        let e = format!("{:#}", on("gpu").unwrap_err());
        assert!(e.contains("expected cpu, cuda:N or metal"), "{e}");
        let e = format!("{:#}", on("cuda:x").unwrap_err());
        assert!(e.contains("must be a number"), "{e}");
        if !cfg!(feature = "cuda") {
            let e = format!("{:#}", on("cuda:0").unwrap_err());
            assert!(e.contains("--features cuda"), "{e}");
        }
    }
}
