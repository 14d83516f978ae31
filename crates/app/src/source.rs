//! Data for every domain: listing `--data` for a modality, decoding files in parallel
//! (skipping unreadable ones unless `--strict`), fitting normalisation statistics, and the
//! training batch source (epoch-keyed order, the size-bounded sample cache, random views).

use crate::cache::SampleCache;
use anyhow::{bail, Result};
use rayon::prelude::*;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use tessera_cli::{list_data, progress, CommonArgs, DataItem};
use tessera_recipes::{Batch, Targets};
use tessera_tokens::{Modality, Rng, Tokens, ViewSpec};
use tessera_train::{BatchSlot, BatchSource, DataOrder, EpochOrder, ShardOrder, TrainError};

/// The items of `--data` this modality reads; test rows dropped when `without_test`. An
/// empty list is an error naming the data and the file types looked for.
pub fn list<M: Modality>(common: &CommonArgs, without_test: bool) -> Result<Vec<DataItem>> {
    let data = common.data()?;
    list_from::<M>(data, common, without_test)
}

/// Decodes `path`; a member of a tar shard (`shard.tar#member=KEY.EXT`) through a scratch
/// copy whose path names the shard and the member (see `tessera_cli::shards`).
pub fn decode<M: Modality>(
    m: &M,
    path: &std::path::Path,
) -> std::result::Result<M::Sample, M::Error> {
    match tessera_cli::shards::materialise(path) {
        Ok(Some(scratch)) => m.decode(&scratch.path),
        Ok(None) => m.decode(path),
        // The shard was indexed when it was listed; should it have changed since, the
        // reader's own error for the member's name reports it.
        Err(_) => m.decode(path),
    }
}

/// [`list`] for an explicit data path.
pub fn list_from<M: Modality>(
    data: &std::path::Path,
    common: &CommonArgs,
    without_test: bool,
) -> Result<Vec<DataItem>> {
    let items: Vec<DataItem> = list_data(data, &|p| M::accepts(p), &common.columns())?
        .into_iter()
        .filter(|i| !(without_test && common.is_test(i)))
        .collect();
    if items.is_empty() {
        let scope = if without_test {
            format!(" outside the `{}` split", common.test_split)
        } else {
            String::new()
        };
        bail!(
            "{}: no {} files{scope} (looked for .{})",
            data.display(),
            M::NAME,
            M::EXTENSIONS.join(", .")
        );
    }
    match common.window {
        Some(w) => windowed::<M>(items, w, common.hop.unwrap_or(w), common.strict),
        None => Ok(items),
    }
}

/// `--window`/`--hop`: every recording becomes its `file#t=START,END` windows (label and
/// split carried over); a row that already names a window stays as it is. Durations come
/// from [`Modality::duration_s`], in parallel; an unreadable file is skipped (reported)
/// unless `strict`.
fn windowed<M: Modality>(
    items: Vec<DataItem>,
    window_s: f64,
    hop_s: f64,
    strict: bool,
) -> Result<Vec<DataItem>> {
    if !(window_s > 0.0 && window_s.is_finite() && hop_s > 0.0 && hop_s.is_finite()) {
        bail!("--window and --hop must be positive seconds, got {window_s} and {hop_s}");
    }
    let bar = progress(items.len() as u64, "measuring recordings");
    // Per item: `Ok(None)` keeps a row that already names a window, or says the modality
    // has no time axis; `Ok(Some(seconds))`; `Err` an unreadable file.
    let lengths: Vec<(bool, Result<Option<f64>, String>)> = items
        .par_iter()
        .map(|i| {
            let r = match tessera_tokens::time_window(&i.path) {
                Ok((_, Some(_))) => (true, Ok(None)),
                _ => (false, M::duration_s(&i.path).map_err(|e| e.to_string())),
            };
            bar.inc(1);
            r
        })
        .collect();
    bar.finish_and_clear();
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    for (item, (is_window, len)) in items.into_iter().zip(lengths) {
        match len {
            Ok(None) if is_window => out.push(item),
            Ok(None) => bail!("--window: {} files have no time axis to cut", M::NAME),
            Ok(Some(d)) => out.extend(tessera_tokens::windows(d, window_s, hop_s).into_iter().map(
                |(a, b)| DataItem {
                    path: tessera_tokens::with_time_window(&item.path, a, b),
                    ..item.clone()
                },
            )),
            Err(e) if strict => bail!(e),
            Err(e) => skipped.push(e),
        }
    }
    if let Some(first) = skipped.first() {
        eprintln!(
            "skipped {} unreadable recording(s); first: {first}",
            skipped.len()
        );
    }
    if out.is_empty() {
        bail!("--window: no readable recordings to cut");
    }
    Ok(out)
}

/// What [`map_files`] kept.
pub struct Mapped<T> {
    pub items: Vec<DataItem>,
    pub values: Vec<T>,
    /// One message per unreadable file.
    pub skipped: Vec<String>,
}

impl<T> Mapped<T> {
    /// Prints how many files were skipped, with the first reason.
    pub fn report_skipped(&self) {
        if let Some(first) = self.skipped.first() {
            eprintln!(
                "skipped {} unreadable file(s); first: {first}",
                self.skipped.len()
            );
        }
    }
}

/// The error when every file was unreadable: how many, and the first reason.
fn none_readable<M: Modality>(skipped: &[String]) -> anyhow::Error {
    anyhow::anyhow!(
        "no readable {} file among {} ({})",
        M::NAME,
        skipped.len(),
        skipped.first().cloned().unwrap_or_default()
    )
}

/// Files decoded per chunk by [`embed_chunks`].
const EMBED_CHUNK: usize = 512;

/// Decodes the evaluation views of `items` and embeds them a chunk at a time through
/// `embed` (tokens → `[n, d]` rows), so memory holds one chunk's tokens whatever the number
/// of files or windows. Unreadable files are skipped and counted (the first is an error
/// with `strict`); no readable file is an error. Returns the embedded items, their rows and
/// the row width.
pub fn embed_chunks<M: Modality>(
    m: &M,
    items: Vec<DataItem>,
    strict: bool,
    mut embed: impl FnMut(&[tessera_tokens::SampleTokens]) -> Result<Vec<f32>>,
) -> Result<(Mapped<()>, Vec<f32>, usize)> {
    let bar = progress(items.len() as u64, "decoding and embedding");
    let mut out = Mapped {
        items: Vec::new(),
        values: Vec::new(),
        skipped: Vec::new(),
    };
    let mut rows = Vec::new();
    for chunk in items.chunks(EMBED_CHUNK) {
        let results: Vec<_> = chunk
            .par_iter()
            .map(|it| decode(m, &it.path).and_then(|s| m.eval_view(&s)))
            .collect();
        let mut tokens = Vec::with_capacity(chunk.len());
        for (it, r) in chunk.iter().zip(results) {
            match r {
                Ok(t) => {
                    out.items.push(it.clone());
                    tokens.push(t);
                }
                Err(e) if strict => return Err(anyhow::Error::new(e)),
                Err(e) => out.skipped.push(e.to_string()),
            }
        }
        if !tokens.is_empty() {
            rows.extend(embed(&tokens)?);
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    if out.items.is_empty() {
        return Err(none_readable::<M>(&out.skipped));
    }
    let d = rows.len() / out.items.len();
    Ok((out, rows, d))
}

/// Decodes every item in parallel and maps its sample through `f` (the sample is dropped
/// afterwards, so memory holds only the results). Unreadable files are skipped and
/// counted, or the first one is an error with `strict`; no readable file is an error.
pub fn map_files<M: Modality, T: Send>(
    m: &M,
    items: Vec<DataItem>,
    strict: bool,
    what: &str,
    f: impl Fn(&M, &M::Sample) -> std::result::Result<T, M::Error> + Sync,
) -> Result<Mapped<T>> {
    let bar = progress(items.len() as u64, what);
    let results: Vec<std::result::Result<T, M::Error>> = items
        .par_iter()
        .map(|it| {
            let r = decode(m, &it.path).and_then(|s| f(m, &s));
            bar.inc(1);
            r
        })
        .collect();
    bar.finish_and_clear();
    let mut out = Mapped {
        items: Vec::new(),
        values: Vec::new(),
        skipped: Vec::new(),
    };
    for (it, r) in items.into_iter().zip(results) {
        match r {
            Ok(v) => {
                out.items.push(it);
                out.values.push(v);
            }
            Err(e) if strict => return Err(anyhow::Error::new(e)),
            Err(e) => out.skipped.push(e.to_string()),
        }
    }
    if out.values.is_empty() {
        return Err(none_readable::<M>(&out.skipped));
    }
    Ok(out)
}

/// Dataset statistics fitted by [`fit_stats`].
pub struct Fitted<C> {
    /// The configuration with the statistics.
    pub config: C,
    /// Unreadable files: (index in the list, message).
    pub skipped: Vec<(usize, String)>,
}

/// The configuration with dataset statistics fitted on `items` (decoded in parallel,
/// accumulated in list order so the same data gives the same bytes); `None` when the front
/// end needs none.
pub fn fit_stats<M: Modality>(
    m: &M,
    items: &[DataItem],
    strict: bool,
) -> Result<Option<Fitted<M::Config>>> {
    let Some(mut stats) = m.stats_start() else {
        return Ok(None);
    };
    let bar = progress(items.len() as u64, "statistics");
    let mut used = 0usize;
    let mut skipped = Vec::new();
    for (c, chunk) in items.chunks(256).enumerate() {
        let decoded: Vec<_> = chunk
            .par_iter()
            .map(|it| {
                let r = decode(m, &it.path);
                bar.inc(1);
                r
            })
            .collect();
        for (j, r) in decoded.into_iter().enumerate() {
            match r {
                Ok(s) => {
                    m.stats_add(&mut stats, &s);
                    used += 1;
                }
                Err(e) if strict => return Err(anyhow::Error::new(e)),
                Err(e) => skipped.push((c * 256 + j, e.to_string())),
            }
        }
    }
    bar.finish_and_clear();
    if used == 0 {
        bail!(
            "no readable {} file among {} to fit normalisation statistics on ({})",
            M::NAME,
            items.len(),
            skipped.first().map(|s| s.1.clone()).unwrap_or_default()
        );
    }
    Ok(Some(Fitted {
        config: m.stats_finish(stats).map_err(anyhow::Error::new)?,
        skipped,
    }))
}

/// Training batches for any modality: the epoch-keyed order picks the files, samples come
/// from the size-bounded cache (decoded in parallel on a miss), and each view is the
/// modality's random training view drawn from the step's generator. Unreadable files are
/// reported once and passed over (or, with `strict`, stop the run).
pub struct Source<'a, M: Modality> {
    m: &'a M,
    paths: Vec<PathBuf>,
    cache: SampleCache<M::Sample>,
    strict: bool,
    seed: u64,
    order: EpochOrder,
    data_order: DataOrder,
    /// With `data_order = "shards"`: the shard-wise order, made at the first batch (it
    /// depends on the batch's parts).
    shard_order: Option<ShardOrder>,
    bad: HashSet<usize>,
    /// One message per unreadable file.
    pub skipped: Vec<String>,
    classes: Option<Vec<usize>>,
}

impl<'a, M: Modality> Source<'a, M> {
    pub fn new(m: &'a M, paths: Vec<PathBuf>, cache_mb: usize, seed: u64, strict: bool) -> Self {
        let n = paths.len();
        Self {
            m,
            paths,
            cache: SampleCache::new(cache_mb, M::sample_bytes),
            strict,
            seed,
            order: EpochOrder::new(seed, n),
            data_order: DataOrder::Global,
            shard_order: None,
            bad: HashSet::new(),
            skipped: Vec::new(),
            classes: None,
        }
    }

    /// Orders the samples as `order` says ([`DataOrder::Shards`]: by the tar shard of each
    /// path, a plain file being a shard of its own).
    pub fn with_order(mut self, order: DataOrder) -> Self {
        self.data_order = order;
        self
    }

    /// Every batch carries the class index of each of its samples (`Targets::Classes`),
    /// one per path.
    pub fn with_classes(mut self, classes: Vec<usize>) -> Self {
        self.classes = Some(classes);
        self
    }

    pub fn cache(&self) -> &SampleCache<M::Sample> {
        &self.cache
    }

    /// The slot's readable samples, in the order's sequence.
    fn pick(&mut self, slot: &BatchSlot) -> tessera_train::Result<Vec<(usize, Arc<M::Sample>)>> {
        let bs = slot.len();
        if self.data_order == DataOrder::Shards && self.shard_order.is_none() {
            let mut ids: std::collections::HashMap<PathBuf, usize> = Default::default();
            let shard_of: Vec<usize> = self
                .paths
                .iter()
                .map(|p| {
                    let tar =
                        tessera_cli::shards::split_member(p).map_or_else(|| p.clone(), |t| t.0);
                    let next = ids.len();
                    *ids.entry(tar).or_insert(next)
                })
                .collect();
            self.shard_order = Some(ShardOrder::new(self.seed, &shard_of, slot.parts)?);
        }
        let n = self.paths.len();
        let mut picked = Vec::with_capacity(bs);
        let mut k = 0usize;
        while picked.len() < bs {
            if self.bad.len() >= n {
                return Err(TrainError::Data(format!(
                    "none of the {n} files is readable; first error: {}",
                    self.skipped.first().cloned().unwrap_or_default()
                )));
            }
            let mut wanted = Vec::with_capacity(bs - picked.len());
            while wanted.len() < bs - picked.len() {
                let i = match &mut self.shard_order {
                    Some(o) => o.sample(slot.part, (slot.step - 1) as usize * bs + k),
                    None => self.order.sample(slot.first() + k),
                };
                k += 1;
                if !self.bad.contains(&i) {
                    wanted.push(i);
                }
            }
            let (m, paths, cache) = (self.m, &self.paths, &self.cache);
            let got: Vec<_> = wanted
                .par_iter()
                .map(|&i| cache.get_or_load(i, || decode(m, &paths[i])))
                .collect();
            for (i, r) in wanted.into_iter().zip(got) {
                match r {
                    Ok(s) => picked.push((i, s)),
                    Err(e) if self.strict => return Err(TrainError::DataSource(Box::new(e))),
                    Err(e) => {
                        if self.bad.insert(i) {
                            self.skipped.push(e.to_string());
                        }
                    }
                }
            }
        }
        Ok(picked)
    }
}

impl<M: Modality> BatchSource for Source<'_, M> {
    /// Each view is a fresh random training view of the sample; a local view is then cut
    /// from it in coordinate space, and views that ask for it are augmented by the
    /// modality, all from the step's generator.
    fn batch(
        &mut self,
        slot: &BatchSlot,
        views: &[ViewSpec],
        rng: &mut Rng,
    ) -> tessera_train::Result<Batch> {
        let picked = self.pick(slot)?;
        let data = |e: M::Error| TrainError::DataSource(Box::new(e));
        let mut out = Vec::with_capacity(views.len());
        for spec in views {
            let samples = picked
                .iter()
                .map(|(_, s)| {
                    let mut v = spec.cut(self.m.train_view(s, rng).map_err(data)?, rng);
                    if spec.augment {
                        v = self.m.augment(v, rng).map_err(data)?;
                    }
                    Ok(v)
                })
                .collect::<tessera_train::Result<Vec<_>>>()?;
            out.push(Tokens::from_samples(&samples)?);
        }
        Ok(Batch {
            views: out,
            specs: views.to_vec(),
            ids: picked.iter().map(|(i, _)| *i as u64).collect(),
            targets: self
                .classes
                .as_ref()
                .map(|c| Targets::Classes(picked.iter().map(|(i, _)| c[*i]).collect())),
        })
    }

    fn check_views(&self, views: &[ViewSpec]) -> tessera_train::Result<()> {
        let k = self.m.token_spec().k;
        for v in views {
            v.validate(k)?;
        }
        Ok(())
    }
}
