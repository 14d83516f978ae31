//! The seam every domain plugs into: a [`Modality`] turns files into tokens, and a
//! [`Registry`] maps a model card's `modality` name to the readers an application links.
//!
//! A domain implements [`Modality`] once (reader, views, normalisation statistics, one
//! `inspect` row, its ONNX grid front, a generated demo dataset); the application library
//! (`tessera-app`) writes every shared subcommand over it, the ort-only runtime reads files
//! through a [`Registry`], and the conformance suite in `tests/` runs against it. Nothing
//! here needs a numeric framework.

use crate::grid::GridFront;
use crate::{Rng, SampleTokens, TokenError, TokenSpec};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// A boxed error that keeps its source chain.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// One file's summary for `inspect` and `stats`: named fields in display order.
pub type InfoRow = Vec<(String, String)>;

/// The grid model's input: `(shape [1, C, ...], row-major data)`.
pub type GridInput = (Vec<usize>, Vec<f32>);

/// A data modality: how files become samples and samples become tokens.
///
/// The value implementing it is the ready front end built from the card's `[NAME]` table
/// ([`Modality::Config`]); every method is deterministic given its inputs, and random
/// choices come from the step-keyed [`Rng`] passed in.
pub trait Modality: Sized + Send + Sync + 'static {
    /// The card's `modality` value and the name of the run card's table holding
    /// [`Modality::Config`] (`audio`, `medical`, ...).
    const NAME: &'static str;
    /// File name endings this modality reads, lower case without the leading dot
    /// (`wav`, `nii.gz`).
    const EXTENSIONS: &'static [&'static str];
    /// The front end's configuration: reader, features, tokenizer, normalisation
    /// statistics, spacing or sample rate, channel order.
    type Config: Clone + std::fmt::Debug + PartialEq + Serialize + DeserializeOwned + Send + Sync;
    /// A decoded, prepared file (resampled and normalised as the config says).
    type Sample: Send + Sync;
    /// Accumulator of dataset normalisation statistics.
    type Stats: Send;
    /// The domain's error type.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Builds the front end, validating the configuration.
    fn new(cfg: &Self::Config) -> Result<Self, Self::Error>;
    fn config(&self) -> &Self::Config;
    /// P, K, units and layout of this front end's tokens.
    fn token_spec(&self) -> TokenSpec;

    /// Whether `path` names a file of this modality (by its name only). A modality whose
    /// samples can be folders (a DICOM series) may also accept a folder: data listing then
    /// takes it as one sample and does not enter it.
    fn accepts(path: &Path) -> bool {
        has_extension(path, Self::EXTENSIONS)
    }

    /// Seconds of recording in a file, for modalities whose files are recordings that
    /// `--window` cuts into `file#t=START,END` items (see [`time_window`]); `None` (the
    /// default) for modalities without a time axis. Should read no more than it must.
    fn duration_s(_path: &Path) -> Result<Option<f64>, Self::Error> {
        Ok(None)
    }

    /// Decodes and prepares one file.
    fn decode(&self, path: &Path) -> Result<Self::Sample, Self::Error>;
    /// Bytes a sample holds in memory (for the size-bounded sample cache).
    fn sample_bytes(sample: &Self::Sample) -> usize;
    /// A training view: a random crop (or window, or subset) drawn from `rng`.
    fn train_view(&self, sample: &Self::Sample, rng: &mut Rng)
        -> Result<SampleTokens, Self::Error>;
    /// The deterministic evaluation view (centre crop): what `embed` and probes use.
    fn eval_view(&self, sample: &Self::Sample) -> Result<SampleTokens, Self::Error>;
    /// A random augmentation of a training view, for recipes whose views ask for one
    /// ([`ViewSpec::augment`](crate::ViewSpec)): gain and spectro-temporal masks for audio,
    /// intensity and flips for volumes, and so on, as the front end's configuration says.
    /// Draws only from `rng`. The identity by default.
    fn augment(&self, view: SampleTokens, _rng: &mut Rng) -> Result<SampleTokens, Self::Error> {
        Ok(view)
    }
    /// A sample of standard-normal values at the training size (step benchmarks and the
    /// ONNX parity check).
    fn random_sample(&self, rng: &mut Rng) -> Result<Self::Sample, Self::Error>;

    /// `Some` accumulator when this configuration lacks dataset statistics that
    /// pretraining must fit (and store in the card); `None` when it has them or
    /// normalises each sample on its own.
    fn stats_start(&self) -> Option<Self::Stats>;
    /// Adds one decoded (unnormalised) sample to the statistics.
    fn stats_add(&self, stats: &mut Self::Stats, sample: &Self::Sample);
    /// The configuration with the fitted statistics.
    fn stats_finish(&self, stats: Self::Stats) -> Result<Self::Config, Self::Error>;

    /// Checks the whole file (declared sizes against the file, compressed-stream
    /// integrity) and summarises it as one row; an error names the file and the problem.
    fn inspect(&self, path: &Path) -> Result<InfoRow, Self::Error>;
    /// Advice printed after `stats` from all rows (e.g. a suggested target spacing).
    fn advise(&self, _rows: &[InfoRow]) -> Vec<String> {
        Vec::new()
    }

    /// The in-graph front of the ONNX grid model, if this front end has one.
    fn grid_front(&self) -> Option<GridFront> {
        None
    }
    /// The grid model's input for a sample's evaluation view: `(shape [1, C, ...], data)`,
    /// before any normalisation the grid front applies itself.
    fn grid_input(&self, _sample: &Self::Sample) -> Result<Option<GridInput>, Self::Error> {
        Ok(None)
    }

    /// Names of the feature baselines without a network (`probe --baseline NAME`).
    fn baselines() -> &'static [&'static str] {
        &[]
    }
    /// Baseline features of a sample's evaluation view.
    fn baseline(&self, name: &str, sample: &Self::Sample) -> Result<Vec<f32>, Self::Error>;

    /// Writes a small labelled dataset of this modality into `dir` (the quick start and
    /// the conformance suite); returns a CSV manifest with `path,label,split` columns.
    fn write_demo_data(dir: &Path, seed: u64) -> Result<PathBuf, Self::Error>;
}

/// Splits `file#key=value&key=value` (per-file settings a manifest row may carry) into the
/// file and its settings, in order; no `#` gives no settings. The error is the piece that
/// is not `key=value`, for the domain to report with the path.
pub fn file_settings(path: &Path) -> Result<(PathBuf, Vec<(String, String)>), String> {
    let s = path.to_string_lossy();
    let Some((file, frag)) = s.rsplit_once('#') else {
        return Ok((path.to_path_buf(), Vec::new()));
    };
    let settings = frag
        .split('&')
        .filter(|k| !k.is_empty())
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| format!("`#{kv}` is not key=value"))
        })
        .collect::<Result<_, _>>()?;
    Ok((PathBuf::from(file), settings))
}

/// Splits `file#t=START,END` (a window of a recording in seconds, the W3C media-fragment
/// form) into the file and the window; no `#t=` gives no window. The error says what a
/// window must look like, for the domain to report with the path.
pub fn time_window(path: &Path) -> Result<(PathBuf, Option<(f64, f64)>), String> {
    let s = path.to_string_lossy();
    let Some((file, frag)) = s.rsplit_once("#t=") else {
        return Ok((path.to_path_buf(), None));
    };
    let parsed = frag
        .split_once(',')
        .and_then(|(a, b)| Some((a.trim().parse::<f64>().ok()?, b.trim().parse::<f64>().ok()?)));
    match parsed {
        Some((a, b)) if a.is_finite() && b.is_finite() && b > a && a >= 0.0 => {
            Ok((PathBuf::from(file), Some((a, b))))
        }
        _ => Err(format!(
            "window `#t={frag}` is not `#t=START,END` with 0 <= START < END seconds"
        )),
    }
}

/// `file#t=START,END`, the item [`time_window`] reads back (times to the microsecond).
pub fn with_time_window(file: &Path, start_s: f64, end_s: f64) -> PathBuf {
    PathBuf::from(format!(
        "{}#t={},{}",
        file.display(),
        trim_time(start_s),
        trim_time(end_s)
    ))
}

fn trim_time(t: f64) -> String {
    let s = format!("{t:.6}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Windows of `window_s` every `hop_s` over a recording of `duration_s` seconds: as many
/// whole windows as fit, plus one ending at the recording's end when the last whole window
/// leaves at least half a hop uncovered; a recording shorter than a window is one window.
pub fn windows(duration_s: f64, window_s: f64, hop_s: f64) -> Vec<(f64, f64)> {
    if !(duration_s > 0.0 && window_s > 0.0 && hop_s > 0.0) {
        return Vec::new();
    }
    if duration_s <= window_s {
        return vec![(0.0, duration_s)];
    }
    let n = ((duration_s - window_s) / hop_s + 1e-9).floor() as usize + 1;
    let mut w: Vec<(f64, f64)> = (0..n)
        .map(|k| (k as f64 * hop_s, k as f64 * hop_s + window_s))
        .collect();
    let last_end = w.last().map_or(0.0, |l| l.1);
    if duration_s - last_end >= hop_s / 2.0 {
        w.push((duration_s - window_s, duration_s));
    }
    w
}

/// Whether the file name of `path` ends with `.EXT` for one of `extensions` (ASCII case
/// ignored).
pub fn has_extension(path: &Path, extensions: &[&str]) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    extensions.iter().any(|e| {
        name.len() > e.len() + 1
            && name.ends_with(e)
            && name.as_bytes()[name.len() - e.len() - 1] == b'.'
    })
}

/// A file reader for the deployment runtime: file → evaluation-view tokens, as the card
/// says. Every [`Modality`] is one.
pub trait Reader: Send + Sync {
    fn token_spec(&self) -> TokenSpec;
    fn file_tokens(&self, path: &Path) -> Result<SampleTokens, BoxError>;
}

impl<M: Modality> Reader for M {
    fn token_spec(&self) -> TokenSpec {
        Modality::token_spec(self)
    }
    fn file_tokens(&self, path: &Path) -> Result<SampleTokens, BoxError> {
        Ok(self.eval_view(&self.decode(path)?)?)
    }
}

type Factory = fn(&toml::Table) -> Result<Box<dyn Reader>, BoxError>;

fn make_reader<M: Modality>(table: &toml::Table) -> Result<Box<dyn Reader>, BoxError> {
    let cfg: M::Config = toml::Table::try_into(table.clone())?;
    let m = M::new(&cfg)?;
    if m.stats_start().is_some() {
        return Err(Box::new(TokenError::Card(format!(
            "the `{}` front end has no dataset normalisation statistics; pretraining writes them",
            M::NAME
        ))));
    }
    Ok(Box::new(m))
}

/// The modalities an application links, by card name. A runtime built with an empty
/// registry still runs tokens; files need a registered reader.
#[derive(Clone, Default)]
pub struct Registry {
    entries: Vec<(&'static str, Factory)>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the reader of `M`.
    pub fn register<M: Modality>(&mut self) {
        self.entries.retain(|(n, _)| *n != M::NAME);
        self.entries.push((M::NAME, make_reader::<M>));
    }

    /// Builder form of [`Registry::register`].
    pub fn with<M: Modality>(mut self) -> Self {
        self.register::<M>();
        self
    }

    /// Registered modality names.
    pub fn names(&self) -> Vec<&'static str> {
        self.entries.iter().map(|(n, _)| *n).collect()
    }

    /// The reader for `modality` built from its front-end table; `Ok(None)` when no such
    /// modality is registered.
    pub fn reader(
        &self,
        modality: &str,
        frontend: &toml::Table,
    ) -> Result<Option<Box<dyn Reader>>, BoxError> {
        match self.entries.iter().find(|(n, _)| *n == modality) {
            Some((_, make)) => make(frontend).map(Some),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_windows_round_trip_and_tile() {
        let p = with_time_window(Path::new("a/b.flac"), 12.5, 17.25);
        assert_eq!(p, PathBuf::from("a/b.flac#t=12.5,17.25"));
        assert_eq!(
            time_window(&p).unwrap(),
            (PathBuf::from("a/b.flac"), Some((12.5, 17.25)))
        );
        assert_eq!(time_window(Path::new("x.wav")).unwrap().1, None);
        for bad in ["x.wav#t=3,2", "x.wav#t=-1,2", "x.wav#t=1", "x.wav#t=a,b"] {
            assert!(time_window(Path::new(bad)).is_err(), "{bad}");
        }
        assert_eq!(
            windows(25.0, 10.0, 10.0),
            vec![(0.0, 10.0), (10.0, 20.0), (15.0, 25.0)]
        );
        assert_eq!(windows(21.0, 10.0, 10.0), vec![(0.0, 10.0), (10.0, 20.0)]);
        assert_eq!(windows(4.0, 10.0, 5.0), vec![(0.0, 4.0)]);
        assert_eq!(windows(20.0, 10.0, 5.0).len(), 3);
        assert!(windows(0.0, 10.0, 5.0).is_empty());
    }

    #[test]
    fn extensions_match_whole_suffixes() {
        let e = &["nii", "nii.gz", "wav"];
        assert!(has_extension(Path::new("a/b.NII.GZ"), e));
        assert!(has_extension(Path::new("x.wav"), e));
        assert!(!has_extension(Path::new("x.gz"), e));
        assert!(!has_extension(Path::new("wav"), e));
        assert!(!has_extension(Path::new("xwav"), e));
        assert!(!has_extension(Path::new("x.wave"), e));
    }
}
