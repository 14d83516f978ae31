//! Earth observation as a Tessera [`Modality`]: rasters (or windows of them) → bands on one
//! grid → one token per band per patch. Training views are random crops (flipped and
//! rotated when `[eo.augment] flip`), the evaluation view is the centre crop, and per-band
//! statistics of the converted values live in the card (`[eo.norm]`, keyed
//! `sensor.band`), so a model trained on Sentinel-2 and Sentinel-1 normalises each band the
//! same way in use.

use crate::frontend::split_fragment;
use crate::raster::RASTER_EXTENSIONS;
use crate::sensors;
use crate::{EoConfig, EoError, EoFrontend, EoSample};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tessera_tokens::stats::RunningStats;
use tessera_tokens::{InfoRow, Modality, Rng, SampleTokens, TokenSpec};

/// Side of the pooled image of the `pixels` baseline.
const POOL: usize = 16;
/// Spectral slots of the baselines.
const SLOTS: usize = 10;

/// The baselines' spectral slot of a band.
pub fn slot(b: &sensors::Band) -> usize {
    match b.physics {
        sensors::Physics::Optical {
            wavelength_nm: w, ..
        } => match w {
            w if w < 520.0 => 0,
            w if w < 600.0 => 1,
            w if w < 700.0 => 2,
            w if w < 800.0 => 3,
            w if w < 1000.0 => 4,
            w if w < 1900.0 => 5,
            w if w < 3000.0 => 6,
            _ => 7,
        },
        sensors::Physics::Radar { pol, .. } => match pol {
            sensors::Pol::HH | sensors::Pol::VV => 8,
            _ => 9,
        },
    }
}

/// The distinct values, in first-seen order.
fn distinct(values: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for v in values {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

fn quantiles(mut v: Vec<f32>, qs: &[f64]) -> Vec<f32> {
    if v.is_empty() {
        return vec![0.0; qs.len()];
    }
    v.sort_by(|a, b| a.total_cmp(b));
    qs.iter()
        .map(|q| v[((v.len() - 1) as f64 * q).round() as usize])
        .collect()
}

impl Modality for EoFrontend {
    const NAME: &'static str = "eo";
    const EXTENSIONS: &'static [&'static str] = &RASTER_EXTENSIONS;
    type Config = EoConfig;
    type Sample = EoSample;
    type Stats = BTreeMap<String, RunningStats>;
    type Error = EoError;

    fn new(cfg: &EoConfig) -> Result<Self, EoError> {
        EoFrontend::new(cfg)
    }

    fn config(&self) -> &EoConfig {
        &self.cfg
    }

    fn token_spec(&self) -> TokenSpec {
        EoFrontend::token_spec(self)
    }

    /// Raster files by extension (a `#...` suffix allowed), and folders (scenes of band files).
    fn accepts(path: &Path) -> bool {
        let file = file_of(path);
        file.is_dir() || tessera_tokens::modality::has_extension(&file, Self::EXTENSIONS)
    }

    fn decode(&self, path: &Path) -> Result<EoSample, EoError> {
        self.load(path)
    }

    fn sample_bytes(s: &EoSample) -> usize {
        s.data.len() * std::mem::size_of::<f32>()
    }

    fn train_view(&self, s: &EoSample, rng: &mut Rng) -> Result<SampleTokens, EoError> {
        self.random_tokens(s, rng)
    }

    fn eval_view(&self, s: &EoSample) -> Result<SampleTokens, EoError> {
        self.eval_tokens(s)
    }

    /// Band dropout (whole bands, at least one kept) and noise, as `[eo.augment]` says.
    fn augment(&self, view: SampleTokens, rng: &mut Rng) -> Result<SampleTokens, EoError> {
        let a = &self.cfg.augment;
        let mut view = view;
        if a.band_drop > 0.0 {
            // Whole bands: tokens sharing the spectral coordinates (axes 2..5).
            let groups = view.groups(2..5);
            let keep_one = rng.below(groups.len().max(1));
            let keep: Vec<usize> = groups
                .iter()
                .enumerate()
                .filter(|(g, _)| *g == keep_one || rng.uniform() >= a.band_drop)
                .flat_map(|(_, idx)| idx.iter().copied())
                .collect();
            view = view.select(&keep);
        }
        if a.noise_std > 0.0 {
            for v in view.values.iter_mut() {
                *v += (rng.normal() * a.noise_std) as f32;
            }
        }
        Ok(view)
    }

    /// A Sentinel-2 10 m quadruple (B02, B03, B04, B08) and a Sentinel-1 pair, alternately,
    /// with the card's statistics.
    fn random_sample(&self, rng: &mut Rng) -> Result<EoSample, EoError> {
        let names: Vec<(&str, &str)> = if rng.below(2) == 0 {
            vec![
                ("sentinel2", "B02"),
                ("sentinel2", "B03"),
                ("sentinel2", "B04"),
                ("sentinel2", "B08"),
            ]
        } else {
            vec![("sentinel1", "VV"), ("sentinel1", "VH")]
        };
        let bands: Vec<_> = names
            .iter()
            .map(|(s, b)| sensors::lookup(s, b).expect("table band"))
            .collect();
        let side = self.cfg.crop_px;
        let gsd = if self.cfg.gsd_m > 0.0 {
            self.cfg.gsd_m
        } else {
            10.0
        };
        let mut data = Vec::with_capacity(bands.len() * side * side);
        for b in &bands {
            let n = self.cfg.norm.get(&b.key).copied().unwrap_or_default();
            data.extend((0..side * side).map(|_| (n.mean + n.std * rng.normal()) as f32));
        }
        Ok(EoSample {
            path: PathBuf::from("random"),
            bands,
            data,
            h: side,
            w: side,
            gsd_m: gsd,
        })
    }

    fn stats_start(&self) -> Option<Self::Stats> {
        self.cfg.norm.is_empty().then(BTreeMap::new)
    }

    fn stats_add(&self, stats: &mut Self::Stats, s: &EoSample) {
        for (c, b) in s.bands.iter().enumerate() {
            let valid: Vec<f32> = s
                .plane(c)
                .iter()
                .copied()
                .filter(|v| v.is_finite())
                .collect();
            stats.entry(b.key.clone()).or_default().push_slice(&valid);
        }
    }

    fn stats_finish(&self, stats: Self::Stats) -> Result<EoConfig, EoError> {
        let mut cfg = self.cfg.clone();
        cfg.norm = stats
            .into_iter()
            .filter(|(_, s)| s.count > 0)
            .map(|(k, s)| (k, s.finish()))
            .collect();
        Ok(cfg)
    }

    /// The scene's structure (driver, size, bands with their physics, data types, nodata,
    /// scale/offset, CRS, geotransform, blocks, overviews, Sentinel-2 baseline) and a full
    /// read in strips, so a truncated or damaged file is found: valid fraction, non-finite
    /// pixels, value range of each band.
    fn inspect(&self, path: &Path) -> Result<InfoRow, EoError> {
        let (scene, frag) = self.scene(path)?;
        let (x0, y0, w, h) = frag.window.unwrap_or((0, 0, scene.width, scene.height));
        let w = w.min(scene.width.saturating_sub(x0));
        let h = h.min(scene.height.saturating_sub(y0));
        let c = scene.bands.len();
        let rows = (self.cfg.max_pixels / (w.max(1) * c)).clamp(1, 1024);
        let mut stats = vec![(0usize, 0usize, f32::INFINITY, f32::NEG_INFINITY); c];
        let mut y = y0;
        while y < y0 + h {
            let n = rows.min(y0 + h - y);
            let data = scene.read((x0, y, w, n), (w, n), self.cfg.max_pixels, self.cfg.complex)?;
            for (b, st) in stats.iter_mut().enumerate() {
                for &v in &data[b * w * n..(b + 1) * w * n] {
                    if v.is_finite() {
                        st.0 += 1;
                        st.2 = st.2.min(v);
                        st.3 = st.3.max(v);
                    } else {
                        st.1 += 1;
                    }
                }
            }
            y += n;
        }
        let total = (w * h).max(1) as f64;
        let s0 = &scene.sources[0];
        let tiled = if s0.block.0 == s0.width && s0.width > 1 {
            "striped"
        } else {
            "tiled"
        };
        let join = |v: Vec<String>| {
            if v.is_empty() {
                "-".to_string()
            } else {
                v.join("; ")
            }
        };
        let mut row: InfoRow = vec![
            ("file".into(), path.display().to_string()),
            ("driver".into(), scene.driver.clone()),
            (
                "size_px".into(),
                format!("{}×{}", scene.width, scene.height),
            ),
            ("gsd_m".into(), format!("{:.3}", scene.gsd_m)),
            ("bands".into(), scene.bands.len().to_string()),
            (
                "band_physics".into(),
                scene
                    .bands
                    .iter()
                    .map(|b| b.describe())
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            (
                "dtype".into(),
                distinct(scene.sources.iter().map(|s| s.dtype.clone())).join(", "),
            ),
            (
                "nodata".into(),
                join(distinct(
                    scene
                        .sources
                        .iter()
                        .filter_map(|s| s.nodata.map(|v| v.to_string())),
                )),
            ),
            (
                "scale_offset".into(),
                join(
                    scene
                        .sources
                        .iter()
                        .filter(|s| s.scale != 1.0 || s.offset != 0.0)
                        .map(|s| format!("band {}: ×{} + {}", s.index, s.scale, s.offset))
                        .collect(),
                ),
            ),
            (
                "crs".into(),
                scene
                    .crs
                    .clone()
                    .unwrap_or_else(|| "none (warning: no CRS; pixel size from the card)".into()),
            ),
            (
                "geotransform".into(),
                scene
                    .geotransform
                    .map(|g| {
                        g.iter()
                            .map(|v| format!("{v}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_else(|| "-".into()),
            ),
            (
                "layout".into(),
                format!("{tiled} {}×{}", s0.block.0, s0.block.1),
            ),
            ("overviews".into(), s0.overviews.to_string()),
            (
                "s2_baseline".into(),
                match (&scene.baseline, scene.s2_offset) {
                    (Some(b), Some(o)) => format!("{b} (offset {o})"),
                    (Some(b), None) => b.clone(),
                    _ => "-".into(),
                },
            ),
            (
                "valid_fraction".into(),
                stats
                    .iter()
                    .map(|s| format!("{:.3}", s.0 as f64 / total))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            (
                "range".into(),
                stats
                    .iter()
                    .map(|s| {
                        if s.0 > 0 {
                            format!("{}..{}", s.2, s.3)
                        } else {
                            "-".into()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            ("skipped_files".into(), join(scene.skipped.clone())),
        ];
        if let Some(win) = frag.window {
            row.push((
                "window".into(),
                format!("{},{},{},{}", win.0, win.1, win.2, win.3),
            ));
        }
        if stats.iter().all(|s| s.0 == 0) {
            return Err(EoError::Unusable {
                path: path.into(),
                reason: "no valid pixel in any band (all nodata, masked or non-finite)".into(),
            });
        }
        Ok(row)
    }

    fn advise(&self, rows: &[InfoRow]) -> Vec<String> {
        let no_crs = rows
            .iter()
            .filter(|r| r.iter().any(|(k, v)| k == "crs" && v.starts_with("none")))
            .count();
        let mut out = Vec::new();
        if no_crs > 0 {
            out.push(format!("{no_crs} file(s) have no CRS: their pixel size comes from [eo] pixel_m or the sensor table; coordinates are relative to each chip"));
        }
        out
    }

    fn baselines() -> &'static [&'static str] {
        &["pixels", "bandstats"]
    }

    /// Features of the evaluation crop that do not depend on the band set: each band falls
    /// into one of ten spectral slots ([`slot`]: blue, green, red, red edge, NIR, SWIR 1,
    /// SWIR 2, thermal, co- and cross-polarised radar) and the bands of a slot are averaged
    /// (standardised values). `pixels`: each slot's crop average-pooled to 16×16;
    /// `bandstats`: per slot whether it is present, mean, sd and the 5/25/50/75/95 %
    /// quantiles. Absent slots are zeros.
    fn baseline(&self, name: &str, s: &EoSample) -> Result<Vec<f32>, EoError> {
        if !Self::baselines().contains(&name) {
            return Err(EoError::Config(format!(
                "unknown baseline `{name}` (known: pixels, bandstats)"
            )));
        }
        let c = self.cfg.crop_px;
        let x0 = s.w.saturating_sub(c) / 2;
        let y0 = s.h.saturating_sub(c) / 2;
        let mut sum = vec![vec![0f32; c * c]; SLOTS];
        let mut count = [0usize; SLOTS];
        for (b, band) in s.bands.iter().enumerate() {
            let n = self.cfg.norm.get(&band.key).copied().unwrap_or_default();
            let plane = s.plane(b);
            let k = slot(band);
            count[k] += 1;
            for r in 0..c {
                for q in 0..c {
                    let (y, x) = (y0 + r, x0 + q);
                    if y < s.h && x < s.w {
                        let v = plane[y * s.w + x];
                        if v.is_finite() {
                            sum[k][r * c + q] += ((v as f64 - n.mean) / n.std) as f32;
                        }
                    }
                }
            }
        }
        let mut out = Vec::new();
        for (k, acc) in sum.iter().enumerate() {
            let v: Vec<f32> = acc.iter().map(|x| x / count[k].max(1) as f32).collect();
            if name == "pixels" {
                let f = (c / POOL).max(1);
                for i in 0..POOL {
                    for j in 0..POOL {
                        let mut a = 0.0;
                        for r in 0..f {
                            for q in 0..f {
                                let (y, x) = (i * f + r, j * f + q);
                                if y < c && x < c {
                                    a += v[y * c + x];
                                }
                            }
                        }
                        out.push(a / (f * f) as f32);
                    }
                }
            } else {
                let mean = v.iter().sum::<f32>() / v.len() as f32;
                let sd =
                    (v.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / v.len() as f32).sqrt();
                out.push((count[k] > 0) as u8 as f32);
                out.push(mean);
                out.push(sd);
                out.extend(quantiles(v, &[0.05, 0.25, 0.5, 0.75, 0.95]));
            }
        }
        Ok(out)
    }

    /// Two land-cover-like classes as Sentinel-2 GeoTIFFs (4 or 12 bands, tiled or striped,
    /// compressed or not, with nodata) and Sentinel-1 VV/VH pairs (see `synth`).
    fn write_demo_data(dir: &Path, seed: u64) -> Result<PathBuf, EoError> {
        crate::synth::write_dataset(dir, 12, seed)
    }
}

/// The file part of a path that may carry `#...` settings.
pub fn file_of(path: &Path) -> PathBuf {
    split_fragment(path)
        .map(|(f, _)| f)
        .unwrap_or_else(|_| path.to_path_buf())
}
