//! `tessera-doc boxes`: frozen-feature probes below the page level. A box manifest
//! (`path,x0,y0,x1,y1,label,split`, boxes in the page image's pixels) names labelled boxes
//! on pages: words, lines, layout regions. Every page is encoded once (its whole-page
//! evaluation view) and
//! - `--task boxes`: the tokens under each box pool into one vector (weighted by overlap),
//!   classified by a linear probe (word-level entity labelling, as FUNSD);
//! - `--task patches`: each patch takes the label of the smallest box holding its centre,
//!   `background` otherwise, and a linear probe classifies patches (layout segmentation,
//!   as PubLayNet), scored by per-class IoU and mIoU.
//!
//! `--baseline geometry` replaces the encoder with features that need no network: the
//! box's position and size on the page (mm and page fractions) and the ink density inside
//! it and in the four neighbouring boxes of its size.

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use clap::Args;
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tessera_app::finetune::{Classifier, HeadInit};
use tessera_app::{encoder_for, file_safe, finetune_config, run_name, save_rows, App, RunCard};
use tessera_cli::data::split_csv_line;
use tessera_cli::{progress, CommonArgs};
use tessera_core::{CoreError, Encoder, ParamStore, TokenTensors};
use tessera_doc::{DocFrontend, DocSample};
use tessera_eval::linear::fit_linear_probe;
use tessera_eval::metrics::{classification_report, confusion_matrix, iou_per_class};
use tessera_eval::{Features, ResultRow};
use tessera_recipes::losses::cross_entropy;
use tessera_recipes::{Batch, Recipe, StepContext, StepOutput, Targets};
use tessera_tokens::{Modality, Rng, SampleTokens, Tokens, ViewSpec};
use tessera_train::{BatchSlot, BatchSource, RunOptions};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Task {
    /// One vector per box (pooled tokens), one label per box.
    Boxes,
    /// One label per patch (from the box holding its centre, else `background`).
    Patches,
}

#[derive(Debug, Clone, Args)]
pub struct BoxesArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// The box manifest: CSV with `path,x0,y0,x1,y1,label,split` (pixels of the page image;
    /// paths relative to the manifest; `#dpi=`/`#page=` allowed).
    #[arg(long)]
    pub boxes: PathBuf,
    #[arg(long, value_enum, default_value_t = Task::Boxes)]
    pub task: Task,
    /// Use a randomly initialised encoder (the baseline) instead of --checkpoint.
    #[arg(long)]
    pub random_init: bool,
    /// Features without a network instead of an encoder (`geometry`).
    #[arg(long)]
    pub baseline: Option<String>,
    /// Name of this run in the results (default: the checkpoint folder, `random-init` or
    /// the baseline).
    #[arg(long)]
    pub name: Option<String>,
    /// Task name in the results.
    #[arg(long)]
    pub task_name: Option<String>,
    /// Split value of the training rows (default: every row that is not --test-split).
    #[arg(long)]
    pub train_split: Option<String>,
    /// Encode pages in windows of N × N patches (overlapping at the page's right and
    /// bottom edges, features averaged where windows overlap), as pretraining saw them;
    /// default: the card's training crop; 0 encodes the whole page at once.
    #[arg(long)]
    pub window: Option<usize>,
    /// Fine-tune the encoder with a classifier on every patch token (labels from the boxes
    /// over it), on training-crop windows of the training pages; a box is then classified
    /// by its pooled token logits. `[finetune]` in the card or --config sets layer decay,
    /// label smoothing and `[finetune.train]`.
    #[arg(long)]
    pub finetune: bool,
    /// Stop fine-tuning after this many minutes (the schedule is unchanged).
    #[arg(long)]
    pub minutes: Option<f64>,
    /// Training patches kept per page for `--task patches` (random, seeded; 0 keeps all).
    #[arg(long, default_value_t = 0)]
    pub max_train_patches: usize,
}

/// One labelled box of the manifest.
#[derive(Debug, Clone)]
struct BoxRow {
    page: usize,
    b: [f64; 4],
    label: String,
}

struct Pages {
    paths: Vec<PathBuf>,
    splits: Vec<String>,
    boxes: Vec<BoxRow>,
}

fn read_boxes(path: &Path) -> Result<Pages> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = split_csv_line(lines.next().unwrap_or_default());
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h.trim() == name)
            .with_context(|| {
                format!(
                    "{}: no `{name}` column (needs path,x0,y0,x1,y1,label,split)",
                    path.display()
                )
            })
    };
    let (cp, cl, cs) = (col("path")?, col("label")?, col("split")?);
    let cb = [col("x0")?, col("y0")?, col("x1")?, col("y1")?];
    let base = path.parent().unwrap_or(Path::new("."));
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    let mut pages = Pages {
        paths: Vec::new(),
        splits: Vec::new(),
        boxes: Vec::new(),
    };
    for (n, line) in lines.enumerate() {
        let f = split_csv_line(line);
        let get = |i: usize| f.get(i).map(|s| s.trim()).unwrap_or("");
        let mut b = [0f64; 4];
        for (k, &c) in cb.iter().enumerate() {
            b[k] = get(c)
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite())
                .with_context(|| {
                    format!(
                        "{}: row {}: `{}` is not a box coordinate",
                        path.display(),
                        n + 2,
                        get(c)
                    )
                })?;
        }
        let p = get(cp).to_string();
        let page = *index.entry(p.clone()).or_insert_with(|| {
            let full = if Path::new(&p).is_absolute() {
                PathBuf::from(&p)
            } else {
                base.join(&p)
            };
            pages.paths.push(full);
            pages.splits.push(get(cs).to_string());
            pages.paths.len() - 1
        });
        if pages.splits[page] != get(cs) {
            bail!(
                "{}: row {}: page {p} appears in two splits",
                path.display(),
                n + 2
            );
        }
        pages.boxes.push(BoxRow {
            page,
            b,
            label: get(cl).to_string(),
        });
    }
    if pages.boxes.is_empty() {
        bail!("{}: no boxes", path.display());
    }
    Ok(pages)
}

/// Geometry and ink features of a box (`[x0, y0, x1, y1]` in working pixels).
fn geometry(fe: &DocFrontend, s: &DocSample, b: [f64; 4]) -> Vec<f32> {
    let mm = fe.mm_per_px();
    let ink = |x0: f64, y0: f64, x1: f64, y1: f64| -> f32 {
        let (xa, xb) = (x0.max(0.0) as usize, (x1.max(0.0) as usize).min(s.w));
        let (ya, yb) = (y0.max(0.0) as usize, (y1.max(0.0) as usize).min(s.h));
        let (mut sum, mut n) = (0f64, 0usize);
        for y in ya..yb {
            for x in xa..xb {
                sum += 1.0 - s.data[(y * s.w + x) * s.c] as f64 / 255.0;
                n += 1;
            }
        }
        if n == 0 {
            0.0
        } else {
            (sum / n as f64) as f32
        }
    };
    let [x0, y0, x1, y1] = b;
    let (w, h) = ((x1 - x0).max(1.0), (y1 - y0).max(1.0));
    vec![
        (x0 / s.w as f64) as f32,
        (y0 / s.h as f64) as f32,
        (x1 / s.w as f64) as f32,
        (y1 / s.h as f64) as f32,
        (x0 * mm) as f32 / 100.0,
        (y0 * mm) as f32 / 100.0,
        (w * mm).ln() as f32,
        (h * mm).ln() as f32,
        (w / h).ln() as f32,
        ink(x0, y0, x1, y1),
        ink(x0 - w, y0, x0, y1),
        ink(x1, y0, x1 + w, y1),
        ink(x0, y0 - h, x1, y0),
        ink(x0, y1, x1, y1 + h),
    ]
}

/// Per-token features `[N, D]` of a page's evaluation view (row-major patches): the whole
/// page at once (`window` 0), or windows of `window × window` patches encoded as one batch,
/// each token's features averaged over the windows holding it.
fn page_features(
    fe: &DocFrontend,
    net: &dyn Fn(&TokenTensors) -> Result<Tensor>,
    s: &DocSample,
    window: usize,
) -> Result<(Vec<f32>, usize)> {
    let (gw, gh) = fe.grid(s);
    let encode = |views: Vec<tessera_tokens::SampleTokens>| -> Result<(Vec<f32>, usize)> {
        let tt = TokenTensors::from_tokens(&Tokens::from_samples(&views)?, &Device::Cpu)?;
        let o = net(&tt)?;
        let d = o.dim(2)?;
        Ok((o.flatten_all()?.to_vec1::<f32>()?, d))
    };
    if window == 0 || (window >= gw && window >= gh) {
        return encode(vec![fe.eval_view(s)?]);
    }
    let (ww, wh) = (window.min(gw), window.min(gh));
    let starts = |n: usize, w: usize| -> Vec<usize> {
        let mut v: Vec<usize> = (0..n.saturating_sub(w)).step_by(w).collect();
        v.push(n - w);
        v.dedup();
        v
    };
    let mut origins = Vec::new();
    for &y in &starts(gh, wh) {
        for &x in &starts(gw, ww) {
            origins.push((x, y));
        }
    }
    let mut sum: Vec<f32> = Vec::new();
    let mut count = vec![0f32; gw * gh];
    let mut d = 0;
    for batch in origins.chunks(8) {
        let views = batch
            .iter()
            .map(|&(x, y)| fe.tokens_at(s, x, y, ww, wh))
            .collect::<Result<Vec<_>, _>>()?;
        let (f, dd) = encode(views)?;
        d = dd;
        if sum.is_empty() {
            sum = vec![0f32; gw * gh * d];
        }
        for (b, &(x0, y0)) in batch.iter().enumerate() {
            for r in 0..wh {
                for q in 0..ww {
                    let t = (y0 + r) * gw + x0 + q;
                    let src = &f[(b * ww * wh + r * ww + q) * d..][..d];
                    for (acc, v) in sum[t * d..(t + 1) * d].iter_mut().zip(src) {
                        *acc += v;
                    }
                    count[t] += 1.0;
                }
            }
        }
    }
    for (t, c) in count.iter().enumerate() {
        sum[t * d..(t + 1) * d]
            .iter_mut()
            .for_each(|v| *v /= c.max(1.0));
    }
    Ok((sum, d))
}

/// Features and labels of one page: one row per box (`boxes`) or per patch (`patches`).
type PageRows = (Vec<Vec<f32>>, Vec<String>);

pub fn run(app: &App<DocFrontend>, a: &BoxesArgs) -> Result<()> {
    let common = &a.common;
    tessera_cli::init_threads(common.threads)?;
    let out = common.out()?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let pages = read_boxes(&a.boxes)?;
    let baseline = match a.baseline.as_deref() {
        None => false,
        Some("geometry") => true,
        Some(b) => bail!("unknown baseline `{b}` (known: geometry)"),
    };
    let (card, enc) = if baseline {
        (app.resolve(common)?, None)
    } else {
        let r = encoder_for(app, common, a.random_init)?;
        (r.card, Some((r.encoder, r.store)))
    };
    let fe = card.modality()?;
    if fe.cfg.deskew {
        bail!("boxes are given in the scan's own pixels; [doc] deskew would move the page under them (turn it off for boxes)");
    }
    let run_name = a
        .name
        .clone()
        .unwrap_or_else(|| run_name(common, a.random_init, baseline.then_some("geometry")));
    let window = a.window.unwrap_or(fe.cfg.crop_px / fe.cfg.patch_px);
    let mut by_page: Vec<Vec<&BoxRow>> = vec![Vec::new(); pages.paths.len()];
    for b in &pages.boxes {
        by_page[b.page].push(b);
    }
    let mut classes: Vec<String> = pages.boxes.iter().map(|b| b.label.clone()).collect();
    if a.task == Task::Patches {
        classes.push("background".into());
    }
    classes.sort();
    classes.dedup();
    if classes.len() < 2 {
        bail!(
            "{}: needs at least two labels (found {classes:?})",
            a.boxes.display()
        );
    }
    let is_train = |p: usize| match &a.train_split {
        Some(t) => &pages.splits[p] == t,
        None => pages.splits[p] != common.test_split,
    };
    let test_pages: Vec<usize> = (0..pages.paths.len())
        .filter(|&p| pages.splits[p] == common.test_split)
        .collect();
    let train_pages: Vec<usize> = (0..pages.paths.len()).filter(|&p| is_train(p)).collect();
    if test_pages.is_empty() || train_pages.len() < 2 {
        bail!(
            "{}: needs `{}` pages and at least two training pages (found {} and {})",
            a.boxes.display(),
            common.test_split,
            test_pages.len(),
            train_pages.len()
        );
    }
    let model = match (a.finetune, enc) {
        (true, None) => {
            bail!("--finetune needs an encoder (--checkpoint or --random-init), not a baseline")
        }
        (true, Some((encoder, store))) => finetune(
            &fe,
            &card,
            common,
            a,
            encoder,
            store,
            &pages,
            &by_page,
            &train_pages,
            &classes,
            out,
        )?,
        (false, e) => {
            return probe_frozen(
                &fe,
                &card,
                a,
                e.map(|e| e.0),
                &pages,
                &by_page,
                &classes,
                &train_pages,
                &test_pages,
                window,
                &run_name,
                out,
            );
        }
    };
    // Fine-tuned: the class of a box is the arg-max of its pooled token logits (of a patch,
    // its own logits).
    let net = |t: &TokenTensors| -> Result<Tensor> { Ok(model.logits(t)?) };
    let bar = progress(test_pages.len() as u64, "predicting");
    let (mut yte, mut pred, mut ids) = (Vec::new(), Vec::new(), Vec::new());
    for &p in &test_pages {
        let s = fe.decode(&pages.paths[p])?;
        let (f, d) = page_features(&fe, &net, &s, window)?;
        let (feats, labels) = page_rows(&fe, a.task, &s, &by_page[p], Some((&f, d)));
        for (i, (v, l)) in feats.iter().zip(labels).enumerate() {
            ids.push((p, i));
            yte.push(class_index(&classes, &l));
            pred.push(
                (0..v.len())
                    .max_by(|&i, &j| v[i].total_cmp(&v[j]))
                    .unwrap_or(0),
            );
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    score(&Scored {
        a,
        out,
        pages: &pages,
        ids: &ids,
        classes: &classes,
        yte: &yte,
        pred: &pred,
        run: run_name,
        protocol: "finetune",
        features: "token classifier".into(),
        seed: card.seed,
    })
}

fn class_index(classes: &[String], l: &str) -> usize {
    classes.binary_search_by(|c| c.as_str().cmp(l)).unwrap_or(0)
}

/// Rows of one page: one per box (`boxes`: token features pooled by overlap, or the
/// geometry baseline without features) or one per patch (`patches`).
fn page_rows(
    fe: &DocFrontend,
    task: Task,
    s: &DocSample,
    boxes: &[&BoxRow],
    tokens_feat: Option<(&[f32], usize)>,
) -> PageRows {
    let (fx, fy) = (
        s.w as f64 / s.source_px.0 as f64,
        s.h as f64 / s.source_px.1 as f64,
    );
    let to_work = |b: [f64; 4]| [b[0] * fx, b[1] * fy, b[2] * fx, b[3] * fy];
    let mut feats = Vec::new();
    let mut labels = Vec::new();
    match task {
        Task::Boxes => {
            for b in boxes {
                feats.push(match tokens_feat {
                    Some((f, d)) => {
                        let mut v = vec![0f32; d];
                        for (t, w) in fe.box_tokens(s, b.b) {
                            for (acc, x) in v.iter_mut().zip(&f[t * d..(t + 1) * d]) {
                                *acc += w * x;
                            }
                        }
                        v
                    }
                    None => geometry(fe, s, to_work(b.b)),
                });
                labels.push(b.label.clone());
            }
        }
        Task::Patches => {
            let bx: Vec<[f64; 4]> = boxes.iter().map(|b| b.b).collect();
            let owner = fe.token_boxes(s, &bx);
            let (gw, _) = fe.grid(s);
            let p = fe.cfg.patch_px as f64;
            for (t, o) in owner.iter().enumerate() {
                feats.push(match tokens_feat {
                    Some((f, d)) => f[t * d..(t + 1) * d].to_vec(),
                    None => {
                        let (gx, gy) = ((t % gw) as f64, (t / gw) as f64);
                        geometry(fe, s, [gx * p, gy * p, gx * p + p, gy * p + p])
                    }
                });
                labels.push(o.map_or("background".to_string(), |i| boxes[i].label.clone()));
            }
        }
    }
    (feats, labels)
}

/// Frozen features (an encoder's tokens or the geometry baseline) and a linear probe.
#[allow(clippy::too_many_arguments)]
fn probe_frozen(
    fe: &DocFrontend,
    card: &RunCard<DocFrontend>,
    a: &BoxesArgs,
    enc: Option<Encoder>,
    pages: &Pages,
    by_page: &[Vec<&BoxRow>],
    classes: &[String],
    train_pages: &[usize],
    test_pages: &[usize],
    window: usize,
    run_name: &str,
    out: &Path,
) -> Result<()> {
    let probe_cfg = &card.probe;
    let bar = progress(pages.paths.len() as u64, "encoding pages");
    let mut rows: Vec<PageRows> = Vec::with_capacity(pages.paths.len());
    // Decode a few pages in parallel, encode one page at a time.
    for chunk in (0..pages.paths.len()).collect::<Vec<_>>().chunks(4) {
        let samples: Vec<Result<DocSample>> = chunk
            .par_iter()
            .map(|&p| fe.decode(&pages.paths[p]).map_err(anyhow::Error::new))
            .collect();
        for (&p, s) in chunk.iter().zip(samples) {
            let s = s?;
            let tokens_feat = match &enc {
                Some(enc) => {
                    let net = |t: &TokenTensors| -> Result<Tensor> { Ok(enc.forward(t)?.patches) };
                    Some(page_features(fe, &net, &s, window)?)
                }
                None => None,
            };
            let (feats, labels) = page_rows(
                fe,
                a.task,
                &s,
                &by_page[p],
                tokens_feat.as_ref().map(|(f, d)| (f.as_slice(), *d)),
            );
            rows.push((feats, labels));
            bar.inc(1);
        }
    }
    bar.finish_and_clear();

    // Validation pages (for the L2 choice) from the training pages.
    let n_val = ((train_pages.len() as f64 * probe_cfg.val_fraction).round() as usize)
        .clamp(1, train_pages.len() - 1);
    let (fit_pages, val_pages) = train_pages.split_at(train_pages.len() - n_val);
    let class_of = |l: &str| class_index(classes, l);
    let mut rng = tessera_tokens::Rng::new(card.seed ^ 0xB0C5);
    let gather = |ps: &[usize],
                  cap: usize,
                  rng: &mut tessera_tokens::Rng|
     -> Result<(Features, Vec<usize>)> {
        let mut data = Vec::new();
        let mut y = Vec::new();
        let mut d = 0;
        for &p in ps {
            let (f, l) = &rows[p];
            let mut idx: Vec<usize> = (0..f.len()).collect();
            if cap > 0 && idx.len() > cap {
                for i in 0..cap {
                    let j = i + rng.below(idx.len() - i);
                    idx.swap(i, j);
                }
                idx.truncate(cap);
            }
            for i in idx {
                d = f[i].len();
                data.extend_from_slice(&f[i]);
                y.push(class_of(&l[i]));
            }
        }
        let n = y.len();
        Ok((Features::new(data, n, d)?, y))
    };
    let cap = if a.task == Task::Patches {
        a.max_train_patches
    } else {
        0
    };
    let (xtr, ytr) = gather(fit_pages, cap, &mut rng)?;
    let (xva, yva) = gather(val_pages, cap, &mut rng)?;
    let (xte, yte) = gather(test_pages, 0, &mut rng)?;
    let ids: Vec<(usize, usize)> = test_pages
        .iter()
        .flat_map(|&p| (0..rows[p].1.len()).map(move |i| (p, i)))
        .collect();
    eprintln!(
        "linear probe on {} training {} ({} validation), {} test, {} classes, width {}",
        ytr.len(),
        if a.task == Task::Boxes {
            "boxes"
        } else {
            "patches"
        },
        yva.len(),
        yte.len(),
        classes.len(),
        xtr.d
    );
    let probe = fit_linear_probe(&xtr, &ytr, &xva, &yva, classes.len(), &probe_cfg.linear)?;
    let pred = probe.predict(&xte)?;
    score(&Scored {
        a,
        out,
        pages,
        ids: &ids,
        classes,
        yte: &yte,
        pred: &pred,
        run: run_name.to_string(),
        protocol: "linear",
        features: match (enc.is_some(), a.task) {
            (false, _) => "geometry".into(),
            (true, Task::Boxes) => "box-pooled tokens".into(),
            (true, Task::Patches) => "patch tokens".into(),
        },
        seed: card.seed,
    })
}

/// What [`score`] reports.
struct Scored<'a> {
    a: &'a BoxesArgs,
    out: &'a Path,
    pages: &'a Pages,
    /// (page, item) of each test row.
    ids: &'a [(usize, usize)],
    classes: &'a [String],
    yte: &'a [usize],
    pred: &'a [usize],
    run: String,
    protocol: &'static str,
    features: String,
    seed: u64,
}

/// Scores test predictions: accuracy, macro-F1, per-class F1 (and IoU and mIoU over the
/// box classes for `patches`); writes the predictions and the results tables.
fn score(r: &Scored) -> Result<()> {
    let (a, classes, yte, pred) = (r.a, r.classes, r.yte, r.pred);
    let report = classification_report(yte, pred, classes.len())?;
    let task_name = a.task_name.clone().unwrap_or_else(|| match a.task {
        Task::Boxes => "boxes".into(),
        Task::Patches => "patches".into(),
    });
    // Predictions of the test rows: page, item (box row of the page or patch index), label.
    let mut text = String::from("path,item,label,predicted\n");
    for (k, &(p, i)) in r.ids.iter().enumerate() {
        text.push_str(&format!(
            "{},{i},{},{}\n",
            tessera_cli::csv_field(&r.pages.paths[p].display().to_string()),
            tessera_cli::csv_field(&classes[yte[k]]),
            tessera_cli::csv_field(&classes[pred[k]])
        ));
    }
    let out = r.out;
    let pred_path = out.join(format!(
        "predictions-{}-{}.csv",
        file_safe(&r.run),
        task_name
    ));
    std::fs::write(&pred_path, text).with_context(|| format!("writing {}", pred_path.display()))?;
    let conf = confusion_matrix(yte, pred, classes.len());
    let class_iou = iou_per_class(&conf);
    let mut extra = BTreeMap::new();
    let mut per_class = Vec::new();
    let mut ious = Vec::new();
    for (c, name) in classes.iter().enumerate() {
        let tp = conf[c][c] as f64;
        let fp: f64 = (0..classes.len())
            .filter(|&r| r != c)
            .map(|r| conf[r][c] as f64)
            .sum();
        let fn_: f64 = (0..classes.len())
            .filter(|&k| k != c)
            .map(|k| conf[c][k] as f64)
            .sum();
        let f1 = if tp + fp + fn_ > 0.0 {
            2.0 * tp / (2.0 * tp + fp + fn_)
        } else {
            f64::NAN
        };
        let iou = class_iou[c];
        extra.insert(format!("f1_{name}"), f1);
        if a.task == Task::Patches {
            extra.insert(format!("iou_{name}"), iou);
            if name != "background" && iou.is_finite() {
                ious.push(iou);
            }
        }
        per_class.push(format!(
            "{name}: F1 {:.3}{}",
            f1,
            if a.task == Task::Patches {
                format!(", IoU {iou:.3}")
            } else {
                String::new()
            }
        ));
    }
    if a.task == Task::Patches {
        extra.insert(
            "miou".into(),
            ious.iter().sum::<f64>() / ious.len().max(1) as f64,
        );
    }
    let row = ResultRow {
        run: r.run.clone(),
        task: task_name,
        protocol: r.protocol.into(),
        features: r.features.clone(),
        seed: r.seed,
        accuracy: report.accuracy,
        macro_f1: report.macro_f1,
        balanced_accuracy: report.balanced_accuracy,
        n_test: yte.len(),
        extra,
    };
    save_rows(out, std::slice::from_ref(&row))?;
    print!("{}", tessera_eval::to_markdown(std::slice::from_ref(&row)));
    println!("per class: {}", per_class.join("; "));
    if a.task == Task::Patches {
        println!(
            "mIoU over the {} box classes: {:.4}",
            ious.len(),
            row.extra["miou"]
        );
    }
    Ok(())
}

/// The app's fine-tuning classifier applied to every patch token.
struct TokenClassifier(Classifier);

impl TokenClassifier {
    /// `[B, N, classes]`
    fn logits(&self, t: &TokenTensors) -> tessera_recipes::Result<Tensor> {
        self.0.token_logits(t)
    }
}

impl Recipe for TokenClassifier {
    fn name(&self) -> &'static str {
        "boxes-finetune"
    }

    /// Cross-entropy (label-smoothed) over the tokens that carry a label.
    fn loss(
        &self,
        batch: &Batch,
        _ctx: &StepContext,
        _rng: &mut Rng,
    ) -> tessera_recipes::Result<StepOutput> {
        let x = batch.first("boxes-finetune")?;
        let Some(Targets::PerToken(lab)) = &batch.targets else {
            return Err(CoreError::Config(
                "boxes-finetune: the batch carries no token labels".into(),
            ));
        };
        let dev = Device::Cpu;
        let out = self
            .0
            .train_token_logits(&TokenTensors::from_tokens(x, &dev)?)?;
        let logits = &out.logits;
        let (b, n, c) = (x.b, x.n, self.0.classes());
        let eps = self.0.config().label_smoothing as f32;
        let mut target = vec![0f32; b * n * c];
        let mut keep = vec![0f32; b * n];
        for (i, &l) in lab.values.iter().enumerate() {
            if l >= 0.0 && x.padding[i] == 0 {
                keep[i] = 1.0;
                target[i * c..(i + 1) * c]
                    .iter_mut()
                    .for_each(|v| *v = eps / c as f32);
                target[i * c + (l as usize).min(c - 1)] += 1.0 - eps;
            }
        }
        let kept = keep.iter().sum::<f32>();
        let target = Tensor::from_vec(target, (b, n, c), &dev)?;
        let keep_t = Tensor::from_vec(keep.clone(), (b, n), &dev)?;
        let loss = cross_entropy(logits, &target, Some(&keep_t))?;
        let pred = logits.argmax(2)?.flatten_all()?.to_vec1::<u32>()?;
        let right = pred
            .iter()
            .zip(&lab.values)
            .zip(&keep)
            .filter(|((p, l), k)| **k > 0.0 && **p as f32 == **l)
            .count();
        Ok(out.output(
            loss,
            vec![("train_acc".into(), right as f64 / kept.max(1.0) as f64)],
        ))
    }

    fn after_step(
        &mut self,
        store: &ParamStore,
        _ctx: &StepContext,
        out: &StepOutput,
    ) -> tessera_recipes::Result<()> {
        self.0.update_statistics(store, out)
    }

    fn encoder(&self) -> &Encoder {
        self.0.encoder()
    }
}

/// Training windows of labelled pages: a random page, a random window of the training
/// crop's size holding at least one labelled token (up to 8 draws), and its token labels.
struct PageSource<'a> {
    fe: &'a DocFrontend,
    pages: Vec<(DocSample, Vec<f32>)>,
}

impl BatchSource for PageSource<'_> {
    fn batch(
        &mut self,
        slot: &BatchSlot,
        _views: &[ViewSpec],
        rng: &mut Rng,
    ) -> tessera_train::Result<Batch> {
        let bs = slot.len();
        let g = self.fe.cfg.crop_px / self.fe.cfg.patch_px;
        let data = |e: tessera_doc::DocError| tessera_train::TrainError::DataSource(Box::new(e));
        let (mut views, mut labels, mut ids) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..bs {
            let p = rng.below(self.pages.len());
            let (s, lab) = &self.pages[p];
            let (gw, gh) = self.fe.grid(s);
            let (ww, wh) = (g.min(gw), g.min(gh));
            let mut pos = (0, 0);
            for _ in 0..8 {
                pos = (rng.below(gw - ww + 1), rng.below(gh - wh + 1));
                let any =
                    (0..wh).any(|r| (0..ww).any(|q| lab[(pos.1 + r) * gw + pos.0 + q] >= 0.0));
                if any {
                    break;
                }
            }
            views.push(self.fe.tokens_at(s, pos.0, pos.1, ww, wh).map_err(data)?);
            let l: Vec<f32> = (0..wh)
                .flat_map(|r| (0..ww).map(move |q| (r, q)))
                .map(|(r, q)| lab[(pos.1 + r) * gw + pos.0 + q])
                .collect();
            let coords = vec![0f32; l.len()];
            labels.push(SampleTokens::new(l, coords, ww * wh, 1, 1)?);
            ids.push(p as u64);
        }
        Ok(Batch {
            views: vec![Tokens::from_samples(&views)?],
            specs: vec![ViewSpec::global()],
            ids,
            targets: Some(Targets::PerToken(Tokens::from_samples(&labels)?)),
        })
    }
}

/// Token labels of a page: under `boxes`, each token takes the class of the box covering
/// most of it (−1 where no box lies); under `patches`, the class of the smallest box
/// holding its centre, else `background`.
fn token_labels(
    fe: &DocFrontend,
    task: Task,
    s: &DocSample,
    boxes: &[&BoxRow],
    classes: &[String],
) -> Vec<f32> {
    let (gw, gh) = fe.grid(s);
    let mut lab = vec![-1f32; gw * gh];
    match task {
        Task::Boxes => {
            let mut best = vec![0f32; gw * gh];
            for b in boxes {
                let c = class_index(classes, &b.label) as f32;
                for (t, w) in fe.box_tokens(s, b.b) {
                    if w > best[t] {
                        best[t] = w;
                        lab[t] = c;
                    }
                }
            }
        }
        Task::Patches => {
            let bx: Vec<[f64; 4]> = boxes.iter().map(|b| b.b).collect();
            for (t, o) in fe.token_boxes(s, &bx).into_iter().enumerate() {
                let l = o.map_or("background", |i| boxes[i].label.as_str());
                lab[t] = class_index(classes, l) as f32;
            }
        }
    }
    lab
}

/// The head's input features and labels of the labelled tokens of `pages` (each page's
/// [`page_features`] in windows of the training crop's size), at most `MAX_PROBE_TOKENS`
/// of them (an even stride through the labelled tokens), with each token's page.
#[allow(clippy::type_complexity)]
fn labelled_token_features(
    fe: &DocFrontend,
    model: &Classifier,
    pages: &[(DocSample, Vec<f32>)],
) -> Result<(Vec<Vec<f32>>, Vec<usize>, Vec<usize>)> {
    const MAX_PROBE_TOKENS: usize = 20_000;
    let window = fe.cfg.crop_px / fe.cfg.patch_px;
    let labelled: usize = pages
        .iter()
        .map(|(_, l)| l.iter().filter(|&&v| v >= 0.0).count())
        .sum();
    let stride = labelled.div_ceil(MAX_PROBE_TOKENS).max(1);
    let net = |t: &TokenTensors| Ok(model.token_features(t)?);
    let (mut feats, mut y, mut page, mut seen) = (Vec::new(), Vec::new(), Vec::new(), 0usize);
    for (p, (s, lab)) in pages.iter().enumerate() {
        if !lab.iter().any(|&v| v >= 0.0) {
            continue;
        }
        let (f, d) = page_features(fe, &net, s, window)?;
        for (t, &l) in lab.iter().enumerate().filter(|(_, l)| **l >= 0.0) {
            if seen % stride == 0 {
                feats.push(f[t * d..(t + 1) * d].to_vec());
                y.push(l as usize);
                page.push(p);
            }
            seen += 1;
        }
    }
    Ok((feats, y, page))
}

/// Fine-tunes the encoder with a token classifier on the training pages.
#[allow(clippy::too_many_arguments)]
fn finetune(
    fe: &DocFrontend,
    card: &RunCard<DocFrontend>,
    common: &CommonArgs,
    a: &BoxesArgs,
    encoder: Encoder,
    mut store: ParamStore,
    pages: &Pages,
    by_page: &[Vec<&BoxRow>],
    train_pages: &[usize],
    classes: &[String],
    out: &Path,
) -> Result<TokenClassifier> {
    let cfg = finetune_config(&card.extra, common, a.minutes)?;
    let model = TokenClassifier(Classifier::new(&cfg, encoder, &mut store, classes.len())?);
    let samples: Vec<Result<(DocSample, Vec<f32>)>> = train_pages
        .par_iter()
        .map(|&p| {
            let s = fe.decode(&pages.paths[p])?;
            let lab = token_labels(fe, a.task, &s, &by_page[p], classes);
            Ok((s, lab))
        })
        .collect();
    let mut source = PageSource {
        fe,
        pages: samples.into_iter().collect::<Result<_>>()?,
    };
    eprintln!(
        "fine-tuning on {} training pages ({} classes), {} steps of {} windows",
        source.pages.len(),
        classes.len(),
        cfg.train.steps,
        cfg.train.batch_size
    );
    if cfg.head_init == HeadInit::Probe {
        let (feats, y, pages) = labelled_token_features(fe, &model.0, &source.pages)?;
        let acc = model
            .0
            .head_from_probe(&store, &feats, &y, &pages, card.seed)?;
        eprintln!(
            "head initialised from a linear probe on {} frozen token features (training accuracy {acc:.3})",
            y.len()
        );
    }
    let mut card = card.clone();
    card.extra
        .insert("finetune".into(), toml::Value::try_from(&cfg)?);
    let run_dir = out.join("runs").join(format!(
        "boxes-{}-seed{}",
        file_safe(&a.name.clone().unwrap_or_else(|| "finetune".into())),
        card.seed
    ));
    if run_dir.exists() {
        std::fs::remove_dir_all(&run_dir)
            .with_context(|| format!("clearing {}", run_dir.display()))?;
    }
    let opts = RunOptions {
        run_dir: &run_dir,
        seed: card.seed,
        resume: false,
        config_toml: card.to_toml()?,
        progress: true,
        comm: &tessera_train::Single,
    };
    let mut model = model;
    tessera_train::train(&mut model, &store, &mut source, &cfg.train, &opts)?;
    Ok(model)
}
