//! `tessera-splat segment`: per-Gaussian labels from frozen group features.
//!
//! Each scene is encoded in several views of `[splat] points` Gaussians as pretraining saw
//! them (the evaluation view, then random subsets grouped from random FPS starts, never
//! moved or scaled); every Gaussian takes the inverse-distance-weighted features of its
//! three nearest group tokens in each view (Point-MAE's feature propagation), averaged
//! over the views. A linear probe classifies the Gaussians, scored by spatial
//! cross-validation: the scene's footprint on its two longest axes is cut into
//! `cells × cells` blocks and block `(i, j)` belongs to fold `(i + j) mod cells`; the probe of
//! fold k is fitted on the labelled Gaussians of the other folds, so every labelled
//! Gaussian is predicted once by a probe that saw none of its block. A final probe on all
//! labelled Gaussians labels every Gaussian (`segment` column of the predictions).
//!
//! `--baseline attributes` replaces the network by each Gaussian's own position and, with
//! `[splat] attributes = "all"`, its log-scales, rotation, opacity and colour.

use anyhow::{bail, Context, Result};
use candle_core::Tensor;
use clap::Args;
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tessera_app::{encoder_for, file_safe, run_name, save_rows, App};
use tessera_cli::data::split_csv_line;
use tessera_cli::{csv_field, CommonArgs};
use tessera_core::{Encoder, TokenTensors};
use tessera_eval::linear::fit_linear_probe;
use tessera_eval::metrics::{classification_report, confusion_matrix, iou_per_class};
use tessera_eval::{Features, LinearProbeConfig, ResultRow};
use tessera_splat::{Attributes, SplatFrontend, SplatSample};
use tessera_tokens::{Rng, Tokens};

#[derive(Debug, Clone, Args)]
pub struct SegmentArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Per-Gaussian labels of the scene in --data: a CSV or TSV with a header, one row per
    /// Gaussian in file order, or an index column (`vertex_index`, `index`, `id`) giving
    /// each row's Gaussian; the label is the `--label-field` column (default: `label`,
    /// `category_id`, `class`, `segment` or the last column).
    #[arg(long, value_name = "CSV", conflicts_with = "label_property")]
    pub labels: Option<PathBuf>,
    /// Labels from a per-Gaussian property of the files instead (a PLY `label` property,
    /// say); every scene in --data must have it.
    #[arg(long, value_name = "NAME")]
    pub label_property: Option<String>,
    /// The label column of --labels.
    #[arg(long, value_name = "NAME")]
    pub label_field: Option<String>,
    /// Labels that mark unlabelled Gaussians: left out of fitting and scoring (repeatable).
    #[arg(long, value_name = "LABEL")]
    pub ignore: Vec<String>,
    /// Spatial folds: the scene's two longest axes cut into `cells × cells` blocks.
    #[arg(long, default_value_t = 4)]
    pub cells: usize,
    /// Views per scene whose features are averaged.
    #[arg(long, default_value_t = 8)]
    pub passes: usize,
    /// Use a randomly initialised encoder (the baseline) instead of --checkpoint.
    #[arg(long)]
    pub random_init: bool,
    /// Features without a network instead of an encoder (`attributes`).
    #[arg(long)]
    pub baseline: Option<String>,
    /// Name of this run in the results (default: the checkpoint folder, `random-init` or
    /// the baseline).
    #[arg(long)]
    pub name: Option<String>,
    /// Task name in the results.
    #[arg(long, default_value = "segment")]
    pub task: String,
}

/// Labelled Gaussians of one scene.
struct Scene {
    path: PathBuf,
    sample: SplatSample,
    /// Label per Gaussian (`None`: ignored).
    labels: Vec<Option<String>>,
}

/// Reads `--labels` for a scene of `n` Gaussians.
fn read_label_file(path: &Path, field: Option<&str>, n: usize) -> Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let tsv = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("tsv"));
    let split = |l: &str| -> Vec<String> {
        if tsv {
            l.split('\t').map(|s| s.trim().to_string()).collect()
        } else {
            split_csv_line(l)
                .into_iter()
                .map(|s| s.trim().to_string())
                .collect()
        }
    };
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let header = lines
        .next()
        .map(|(_, l)| split(l))
        .with_context(|| format!("{}: empty labels file", path.display()))?;
    let find = |names: &[&str]| header.iter().position(|h| names.contains(&h.as_str()));
    let label_col = match field {
        Some(f) => find(&[f]).with_context(|| {
            format!(
                "{}: no column `{f}` (columns: {})",
                path.display(),
                header.join(", ")
            )
        })?,
        None => find(&["label", "category_id", "class", "segment"]).unwrap_or(header.len() - 1),
    };
    let index_col = find(&["vertex_index", "index", "id"]).filter(|&c| c != label_col);
    let mut labels: Vec<Option<String>> = vec![None; n];
    let mut rows = 0usize;
    for (no, line) in lines {
        let f = split(line);
        let cell = |c: usize| {
            f.get(c)
                .map(String::as_str)
                .with_context(|| format!("{}: line {}: too few columns", path.display(), no + 1))
        };
        let i = match index_col {
            Some(c) => cell(c)?.parse::<usize>().ok().with_context(|| {
                format!(
                    "{}: line {}: `{}` is not a Gaussian index",
                    path.display(),
                    no + 1,
                    f[c]
                )
            })?,
            None => rows,
        };
        if i >= n {
            bail!(
                "{}: line {}: Gaussian {i}, but the scene has {n}",
                path.display(),
                no + 1
            );
        }
        if labels[i].replace(cell(label_col)?.to_string()).is_some() {
            bail!(
                "{}: line {}: Gaussian {i} is labelled twice",
                path.display(),
                no + 1
            );
        }
        rows += 1;
    }
    if rows != n {
        bail!(
            "{}: {rows} labelled rows for a scene of {n} Gaussians (one row per Gaussian)",
            path.display()
        );
    }
    Ok(labels.into_iter().flatten().collect())
}

/// The label of a property value: integers without a decimal point.
fn property_label(v: f32) -> String {
    if v.fract() == 0.0 && v.abs() < 1e9 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// Fold of every Gaussian: blocks of the footprint on the two longest axes.
pub fn spatial_folds(pos: &[[f32; 3]], cells: usize) -> Vec<usize> {
    let (lo, hi) = tessera_splat::gaussians::bounds(pos);
    let mut axes = [0usize, 1, 2];
    axes.sort_by(|&a, &b| (hi[b] - lo[b]).total_cmp(&(hi[a] - lo[a])));
    let cell = |p: &[f32; 3], a: usize| -> usize {
        let ext = (hi[a] - lo[a]).max(f32::MIN_POSITIVE);
        (((p[a] - lo[a]) / ext * cells as f32) as usize).min(cells - 1)
    };
    pos.iter()
        .map(|p| (cell(p, axes[0]) + cell(p, axes[1])) % cells)
        .collect()
}

/// `[n, D]` features of every Gaussian: the tokens of `passes` views carried back to the
/// Gaussians by inverse-distance weights over their three nearest group centres.
fn network_features(
    fe: &SplatFrontend,
    enc: &Encoder,
    s: &SplatSample,
    passes: usize,
    seed: u64,
) -> Result<(Vec<f32>, usize)> {
    let mut rng = Rng::new(seed).fork("segment-views");
    let mut views = vec![fe.eval_tokens(s)?];
    for _ in 1..passes {
        views.push(fe.scene_tokens(s, &mut rng)?);
    }
    let d = enc.cfg.dim;
    let n = s.g.len();
    let mut feats = vec![0f32; n * d];
    for view in &views {
        let t = TokenTensors::from_tokens(
            &Tokens::from_samples(std::slice::from_ref(view))?,
            enc.device(),
        )?;
        let out: Tensor = enc.forward(&t)?.patches;
        let tok: Vec<f32> = out.squeeze(0)?.flatten_all()?.to_vec1()?;
        let centres: Vec<[f32; 3]> = view
            .coords
            .chunks_exact(3)
            .map(|c| [c[0], c[1], c[2]])
            .collect();
        feats
            .par_chunks_mut(d)
            .zip(s.g.pos.par_iter())
            .for_each(|(row, p)| {
                let mut near = [(f32::INFINITY, 0usize); 3];
                for (c, q) in centres.iter().enumerate() {
                    let d2 = (0..3).map(|a| (p[a] - q[a]).powi(2)).sum::<f32>();
                    if d2 < near[2].0 {
                        near[2] = (d2, c);
                        near.sort_by(|a, b| a.0.total_cmp(&b.0));
                    }
                }
                let k = centres.len().min(3);
                let w: Vec<f32> = near[..k]
                    .iter()
                    .map(|(d2, _)| 1.0 / (d2.sqrt() + 1e-8))
                    .collect();
                let total: f32 = w.iter().sum();
                for (&(_, c), wi) in near[..k].iter().zip(&w) {
                    let f = wi / total / views.len() as f32;
                    for (r, v) in row.iter_mut().zip(&tok[c * d..(c + 1) * d]) {
                        *r += f * v;
                    }
                }
            });
    }
    Ok((feats, d))
}

/// `[n, D]` features without a network: each Gaussian's own position (normalised scene
/// units) and, when the card uses them, its log-scales, rotation, opacity and colour.
fn attribute_features(fe: &SplatFrontend, s: &SplatSample) -> (Vec<f32>, usize) {
    let all = fe.config().attributes == Attributes::All;
    let g = &s.g;
    let mut out = Vec::new();
    for i in 0..g.len() {
        out.extend(g.pos[i]);
        if all {
            out.extend(g.log_scale[i]);
            out.extend(g.rot[i]);
            out.push(g.opacity[i]);
            out.extend(g.rgb(i));
        }
    }
    (out, if all { 14 } else { 3 })
}

/// Every Gaussian's features (`d` wide) and class, and how probes are fitted on them.
struct Table<'a> {
    feats: Vec<f32>,
    d: usize,
    y: Vec<usize>,
    classes: usize,
    val_fraction: f64,
    cfg: &'a LinearProbeConfig,
}

impl Table<'_> {
    /// Rows at `idx`.
    fn rows(&self, idx: &[usize]) -> Result<Features> {
        let d = self.d;
        let data = idx
            .iter()
            .flat_map(|&i| self.feats[i * d..(i + 1) * d].iter().copied())
            .collect();
        Ok(Features::new(data, idx.len(), d)?)
    }

    fn labels(&self, idx: &[usize]) -> Vec<usize> {
        idx.iter().map(|&i| self.y[i]).collect()
    }

    /// A linear probe on the rows `fit` (L2 chosen on a stratified `val_fraction` of
    /// them), predicting the rows `apply`.
    fn probe(&self, fit: &[usize], apply: &[usize], seed: u64) -> Result<Vec<usize>> {
        let yf = self.labels(fit);
        let (tr, va) = tessera_eval::stratified_split(&yf, self.val_fraction, seed);
        let (tr, va): (Vec<usize>, Vec<usize>) = (
            tr.iter().map(|&k| fit[k]).collect(),
            va.iter().map(|&k| fit[k]).collect(),
        );
        let p = if va.is_empty() {
            let x = self.rows(fit)?;
            tessera_eval::fit_linear_probe_with_l2(&x, &yf, self.classes, 1e-3, self.cfg)?
        } else {
            fit_linear_probe(
                &self.rows(&tr)?,
                &self.labels(&tr),
                &self.rows(&va)?,
                &self.labels(&va),
                self.classes,
                self.cfg,
            )?
        };
        Ok(p.predict(&self.rows(apply)?)?)
    }
}

/// Per-class IoU (NaN for a class absent from both truth and prediction) and their mean
/// over the classes present.
fn ious(y: &[usize], pred: &[usize], classes: usize) -> (Vec<f64>, f64) {
    let iou = iou_per_class(&confusion_matrix(y, pred, classes));
    let present: Vec<f64> = iou.iter().copied().filter(|v| v.is_finite()).collect();
    let miou = present.iter().sum::<f64>() / present.len().max(1) as f64;
    (iou, miou)
}

/// Where the per-Gaussian labels come from.
enum LabelSource<'a> {
    File(&'a Path),
    Property(&'a str),
}

pub fn run(app: &App<SplatFrontend>, a: &SegmentArgs) -> Result<()> {
    let common = &a.common;
    tessera_cli::init_threads(common.threads)?;
    let out = common.out()?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    if a.cells < 2 {
        bail!("--cells {}: spatial folds need at least 2", a.cells);
    }
    if a.passes == 0 {
        bail!("--passes must be at least 1");
    }
    let source = match (&a.labels, &a.label_property) {
        (Some(file), _) => LabelSource::File(file),
        (None, Some(prop)) => LabelSource::Property(prop),
        (None, None) => {
            bail!("segment needs per-Gaussian labels: --labels FILE or --label-property NAME")
        }
    };
    let baseline = match a.baseline.as_deref() {
        None => false,
        Some("attributes") => true,
        Some(b) => bail!("unknown baseline `{b}` (known: attributes)"),
    };
    let items = tessera_app::source::list::<SplatFrontend>(common, false)?;
    if a.labels.is_some() && items.len() != 1 {
        bail!(
            "--labels labels one scene, but --data lists {} (label several scenes with --label-property)",
            items.len()
        );
    }
    let (mut card, enc) = if baseline {
        (app.resolve(common)?, None)
    } else {
        let r = encoder_for(app, common, a.random_init)?;
        (r.card, Some((r.encoder, r.store)))
    };
    let seed = common.seed.unwrap_or(card.seed);
    let run_name = a
        .name
        .clone()
        .unwrap_or_else(|| run_name(common, a.random_init, baseline.then_some("attributes")));

    // Scenes and their labels.
    // Decoding does not depend on the feature statistics, so a card without them (random
    // init) fits them on the decoded scenes, as pretraining would.
    let fe = card.modality()?;
    let mut scenes = Vec::new();
    let mut stats = fe.stats_start();
    for it in &items {
        let sample = tessera_app::source::decode(&fe, &it.path)?;
        if let Some(st) = &mut stats {
            fe.stats_add(st, &sample);
        }
        let n = sample.g.len();
        let raw: Vec<String> = match source {
            LabelSource::File(file) => read_label_file(file, a.label_field.as_deref(), n)?,
            LabelSource::Property(prop) => match sample.g.extra.iter().find(|(k, _)| k == prop) {
                Some((_, v)) => v.iter().map(|&x| property_label(x)).collect(),
                None => bail!(
                    "{}: no per-Gaussian property `{prop}` (extra properties: {})",
                    it.path.display(),
                    if sample.g.extra.is_empty() {
                        "none".to_string()
                    } else {
                        sample
                            .g
                            .extra
                            .iter()
                            .map(|(k, _)| k.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                ),
            },
        };
        let labels = raw
            .into_iter()
            .map(|l| (!a.ignore.contains(&l)).then_some(l))
            .collect();
        scenes.push(Scene {
            path: it.path.clone(),
            sample,
            labels,
        });
    }
    let fe = match stats {
        Some(st) => {
            card.frontend = fe.stats_finish(st);
            card.modality()?
        }
        None => fe,
    };
    let mut classes: Vec<String> = scenes
        .iter()
        .flat_map(|s| s.labels.iter().flatten().cloned())
        .collect();
    classes.sort();
    classes.dedup();
    if classes.len() < 2 {
        bail!("segment needs at least two labels besides the ignored ones (found {classes:?})");
    }

    // Features, labels and folds of every Gaussian of every scene.
    let bar = tessera_cli::progress(scenes.len() as u64, "encoding scenes");
    let (mut feats, mut d) = (Vec::new(), 0);
    let (mut y, mut labelled, mut folds, mut owner) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (k, sc) in scenes.iter().enumerate() {
        let (f, w) = match &enc {
            Some((encoder, _)) => network_features(&fe, encoder, &sc.sample, a.passes, seed)?,
            None => attribute_features(&fe, &sc.sample),
        };
        feats.extend(f);
        d = w;
        folds.extend(spatial_folds(&sc.sample.g.pos, a.cells));
        for (i, l) in sc.labels.iter().enumerate() {
            if l.is_some() {
                labelled.push(y.len());
            }
            y.push(
                l.as_ref()
                    .map_or(0, |l| classes.binary_search(l).unwrap_or(0)),
            );
            owner.push((k, i));
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let nc = classes.len();
    let table = Table {
        feats,
        d,
        y,
        classes: nc,
        val_fraction: card.probe.val_fraction,
        cfg: &card.probe.linear,
    };
    let (y, folds) = (&table.y, &folds);

    // Spatial cross-validation.
    let mut pred = vec![usize::MAX; y.len()];
    let mut fold_miou = BTreeMap::new();
    for k in 0..a.cells {
        let test: Vec<usize> = labelled
            .iter()
            .copied()
            .filter(|&i| folds[i] == k)
            .collect();
        let fit: Vec<usize> = labelled
            .iter()
            .copied()
            .filter(|&i| folds[i] != k)
            .collect();
        if test.is_empty() {
            continue;
        }
        let mut seen: Vec<usize> = fit.iter().map(|&i| y[i]).collect();
        seen.sort_unstable();
        seen.dedup();
        if seen.len() < 2 {
            bail!("fold {k}: the other folds hold fewer than two classes; use fewer --cells");
        }
        let p = table.probe(&fit, &test, seed ^ k as u64)?;
        let yt: Vec<usize> = test.iter().map(|&i| y[i]).collect();
        fold_miou.insert(format!("miou_fold{k}"), ious(&yt, &p, nc).1);
        for (&i, &c) in test.iter().zip(&p) {
            pred[i] = c;
        }
    }
    let yl: Vec<usize> = labelled.iter().map(|&i| y[i]).collect();
    let pl: Vec<usize> = labelled.iter().map(|&i| pred[i]).collect();
    let report = classification_report(&yl, &pl, nc)?;
    let (iou, miou) = ious(&yl, &pl, nc);

    // Every Gaussian labelled by a probe on all labelled ones.
    let everyone: Vec<usize> = (0..y.len()).collect();
    let segment = table.probe(&labelled, &everyone, seed)?;
    let mut text = String::from("path,index,label,fold,predicted,segment\n");
    for (g, &(k, i)) in owner.iter().enumerate() {
        let sc = &scenes[k];
        text.push_str(&format!(
            "{},{i},{},{},{},{}\n",
            csv_field(&sc.path.display().to_string()),
            csv_field(sc.labels[i].as_deref().unwrap_or("")),
            folds[g],
            if pred[g] == usize::MAX {
                ""
            } else {
                &classes[pred[g]]
            },
            csv_field(&classes[segment[g]])
        ));
    }
    let pred_path = out.join(format!("segments-{}.csv", file_safe(&run_name)));
    std::fs::write(&pred_path, text).with_context(|| format!("writing {}", pred_path.display()))?;

    let mut extra: BTreeMap<String, f64> = fold_miou;
    extra.insert("miou".into(), miou);
    extra.insert("cells".into(), a.cells as f64);
    extra.insert("passes".into(), a.passes as f64);
    for (c, v) in classes.iter().zip(&iou) {
        extra.insert(format!("iou_{c}"), *v);
    }
    let row = ResultRow {
        run: run_name,
        task: a.task.clone(),
        protocol: "linear-spatial-cv".into(),
        features: if enc.is_some() {
            "propagated group tokens".into()
        } else {
            "gaussian attributes".into()
        },
        seed,
        accuracy: report.accuracy,
        macro_f1: report.macro_f1,
        balanced_accuracy: report.balanced_accuracy,
        n_test: yl.len(),
        extra,
    };
    save_rows(out, std::slice::from_ref(&row))?;
    print!("{}", tessera_eval::to_markdown(std::slice::from_ref(&row)));
    println!(
        "mIoU over {} classes: {miou:.4} (IoU {}); predictions in {}",
        nc,
        classes
            .iter()
            .zip(&iou)
            .map(|(c, v)| format!("{c} {v:.3}"))
            .collect::<Vec<_>>()
            .join(", "),
        pred_path.display()
    );
    Ok(())
}
