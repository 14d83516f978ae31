//! The EO front end: a scene (or a window of it, `scene.tif#window=x,y,w,h`) → bands on one
//! grid in physical units → per-band standardised patches, one token per band per patch
//! at (x m, y m) from the crop's top-left plus the band's spectral coordinates
//! (wavelength µm | radar GHz, polarisation). The card holds every choice: sensor, band
//! names, grid, SAR conversion and clipping, Sentinel-2 offset, per-band statistics.

use crate::raster::{Complex, Scene, SceneOptions};
use crate::sensors::{Band, UserBand};
use crate::EoError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tessera_tokens::stats::NormStats;
use tessera_tokens::{CoordAxis, Rng, SampleTokens, TokenLayout, TokenSpec};

/// What the numbers of a radar band are before conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SarInput {
    /// Linear power (σ⁰, β⁰): `10 log10`.
    Intensity,
    /// Linear amplitude (magnitude images, MSTAR): `20 log10`.
    Amplitude,
    /// Already in dB.
    Db,
}

/// Augmentations of training views.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EoAugment {
    /// Random horizontal/vertical flips and 90° rotations of training crops.
    pub flip: bool,
    /// Drop each band with this probability (at least one kept), for recipes that ask.
    pub band_drop: f64,
    /// Gaussian noise on normalised values, for recipes that ask.
    pub noise_std: f64,
    /// Training crops at most this many pixels off the centre crop in each direction
    /// (object-centred chips such as MSTAR's, where a crop anywhere in the chip can miss
    /// the target); unset: anywhere in the raster (scenes).
    pub centre_jitter_px: Option<usize>,
}

impl Default for EoAugment {
    fn default() -> Self {
        Self {
            flip: true,
            band_drop: 0.0,
            noise_std: 0.0,
            centre_jitter_px: None,
        }
    }
}

/// The `[eo]` table of a card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EoConfig {
    /// `auto` (from band descriptions or file names), or one of `sensors::SENSORS`.
    pub sensor: String,
    /// Band names in file order for files that do not name them (`#bands=` per file).
    pub bands: Vec<String>,
    /// Bands of instruments outside the sensor table.
    pub custom_bands: BTreeMap<String, UserBand>,
    /// Pixel size (m) of rasters without georeferencing (chips); `#pixel_m=` per file.
    pub pixel_m: Option<f64>,
    /// Grid the bands are resampled to (m); 0 keeps the finest band's grid.
    pub gsd_m: f64,
    /// Side of the square crop a view covers, in grid pixels.
    pub crop_px: usize,
    /// Side of a token's patch, in grid pixels.
    pub patch_px: usize,
    pub sar_input: SarInput,
    /// Convert radar bands to dB (clipped to `sar_clip_db`).
    pub sar_db: bool,
    pub sar_clip_db: [f64; 2],
    /// How complex (SLC) bands become real ones.
    pub complex: Complex,
    /// Sentinel-2 digital numbers → reflectance: `(DN + offset) / 10000`; `None` takes the
    /// offset from the product's processing baseline (−1000 from 04.00), 0 when unknown.
    pub s2_offset: Option<f64>,
    /// Tokens with a smaller fraction of valid pixels are left out.
    pub min_valid: f64,
    /// Largest read (pixels × bands) a file may ask for.
    pub max_pixels: usize,
    pub augment: EoAugment,
    /// Per-band statistics of the converted values, keyed `sensor.band`.
    pub norm: BTreeMap<String, NormStats>,
}

impl Default for EoConfig {
    fn default() -> Self {
        Self {
            sensor: "auto".into(),
            bands: Vec::new(),
            custom_bands: BTreeMap::new(),
            pixel_m: None,
            gsd_m: 0.0,
            crop_px: 64,
            patch_px: 8,
            sar_input: SarInput::Intensity,
            sar_db: true,
            sar_clip_db: [-50.0, 30.0],
            complex: Complex::Intensity,
            s2_offset: None,
            min_valid: 0.5,
            max_pixels: 1 << 26,
            augment: EoAugment::default(),
            norm: BTreeMap::new(),
        }
    }
}

/// A decoded scene window: bands on one grid in physical units, NaN where invalid.
#[derive(Debug, Clone)]
pub struct EoSample {
    /// The file (and fragment) it came from, for messages.
    pub path: PathBuf,
    pub bands: Vec<Band>,
    /// `[C, h, w]`.
    pub data: Vec<f32>,
    pub h: usize,
    pub w: usize,
    pub gsd_m: f64,
}

impl EoSample {
    pub fn plane(&self, c: usize) -> &[f32] {
        &self.data[c * self.h * self.w..(c + 1) * self.h * self.w]
    }
}

/// Per-file settings after `#`: `window=x,y,w,h`, `bands=VH,VV`, `sensor=`, `pixel_m=`,
/// `sar=amplitude|intensity|db`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fragment {
    pub window: Option<(usize, usize, usize, usize)>,
    pub bands: Option<Vec<String>>,
    pub sensor: Option<String>,
    pub pixel_m: Option<f64>,
    /// What the radar numbers are (`sar=amplitude|intensity|db`), when files differ.
    pub sar_input: Option<SarInput>,
}

/// Splits `file#key=value&...` into the file and its settings.
pub fn split_fragment(path: &Path) -> Result<(PathBuf, Fragment), EoError> {
    let bad = |reason: String| EoError::Unusable {
        path: path.into(),
        reason,
    };
    let (file, settings) = tessera_tokens::modality::file_settings(path).map_err(&bad)?;
    let mut f = Fragment::default();
    for (k, v) in &settings {
        let v = v.as_str();
        match k.as_str() {
            "window" => {
                let n: Vec<usize> = v
                    .split(',')
                    .map(|x| x.trim().parse::<usize>())
                    .collect::<Result<_, _>>()
                    .map_err(|_| bad(format!("window `{v}` is not x,y,w,h in pixels")))?;
                match n[..] {
                    [x, y, w, h] if w > 0 && h > 0 => f.window = Some((x, y, w, h)),
                    _ => return Err(bad(format!("window `{v}` is not x,y,w,h with w, h > 0"))),
                }
            }
            "bands" => f.bands = Some(v.split(',').map(|b| b.trim().to_string()).collect()),
            "sensor" => f.sensor = Some(v.to_string()),
            "pixel_m" => {
                f.pixel_m = Some(
                    v.parse::<f64>()
                        .ok()
                        .filter(|p| *p > 0.0 && p.is_finite())
                        .ok_or_else(|| bad(format!("pixel_m `{v}` is not a positive number")))?,
                )
            }
            "sar" => {
                f.sar_input = Some(match v {
                    "amplitude" => SarInput::Amplitude,
                    "intensity" => SarInput::Intensity,
                    "db" => SarInput::Db,
                    _ => return Err(bad(format!("sar `{v}` is not amplitude, intensity or db"))),
                })
            }
            _ => {
                return Err(bad(format!(
                    "unknown setting `#{k}=` (known: window, bands, sensor, pixel_m, sar)"
                )))
            }
        }
    }
    Ok((file, f))
}

/// The EO front end.
#[derive(Debug, Clone)]
pub struct EoFrontend {
    pub cfg: EoConfig,
}

impl EoFrontend {
    pub fn new(cfg: &EoConfig) -> Result<Self, EoError> {
        let bad = |m: String| Err(EoError::Config(m));
        if cfg.patch_px == 0
            || cfg.crop_px < cfg.patch_px
            || !cfg.crop_px.is_multiple_of(cfg.patch_px)
        {
            return bad(format!(
                "crop_px ({}) must be a positive multiple of patch_px ({})",
                cfg.crop_px, cfg.patch_px
            ));
        }
        if !(cfg.gsd_m >= 0.0 && cfg.gsd_m.is_finite()) {
            return bad(format!("gsd_m {} must be >= 0", cfg.gsd_m));
        }
        if cfg.sensor != "auto" && !crate::sensors::SENSORS.contains(&cfg.sensor.as_str()) {
            return bad(format!(
                "unknown sensor `{}` (known: auto, {})",
                cfg.sensor,
                crate::sensors::SENSORS.join(", ")
            ));
        }
        // NaN bounds fail too.
        if cfg.sar_clip_db[0].partial_cmp(&cfg.sar_clip_db[1]) != Some(std::cmp::Ordering::Less) {
            return bad("sar_clip_db must be [low, high] with low < high".into());
        }
        if !(0.0..=1.0).contains(&cfg.min_valid) || !(0.0..1.0).contains(&cfg.augment.band_drop) {
            return bad("min_valid must lie in [0, 1] and augment.band_drop in [0, 1)".into());
        }
        for (n, u) in &cfg.custom_bands {
            u.band(n).map_err(EoError::Config)?;
        }
        Ok(Self { cfg: cfg.clone() })
    }

    pub fn token_spec(&self) -> TokenSpec {
        let axis = |name: &str, unit: &str, scale: f32| CoordAxis {
            name: name.into(),
            unit: unit.into(),
            scale,
        };
        let extent = (self.cfg.crop_px as f64 * self.cfg.gsd_m.max(1.0)) as f32;
        TokenSpec {
            p: self.cfg.patch_px * self.cfg.patch_px,
            k: 5,
            value_unit: "per-band standardised reflectance or backscatter (dB)".into(),
            axes: vec![
                axis("x", "m", extent),
                axis("y", "m", extent),
                axis("wavelength", "µm", 2.5),
                axis("radar_frequency", "GHz", 10.0),
                axis("polarisation", "code", 4.0),
            ],
            layout: TokenLayout::Set,
        }
    }

    pub fn scene_options(&self, frag: &Fragment) -> SceneOptions {
        SceneOptions {
            sensor: frag
                .sensor
                .clone()
                .unwrap_or_else(|| self.cfg.sensor.clone()),
            bands: frag.bands.clone().unwrap_or_else(|| self.cfg.bands.clone()),
            pixel_m: frag.pixel_m.or(self.cfg.pixel_m),
            user_bands: self.cfg.custom_bands.clone(),
            complex: Some(self.cfg.complex),
        }
    }

    /// Opens the scene a path (with its fragment) names.
    pub fn scene(&self, path: &Path) -> Result<(Scene, Fragment), EoError> {
        let (file, frag) = split_fragment(path)?;
        let scene = Scene::open(&file, &self.scene_options(&frag))?;
        Ok((scene, frag))
    }

    /// Reads a window (`#window=` or the whole scene) onto the card's grid and converts
    /// every band to its physical unit.
    pub fn load(&self, path: &Path) -> Result<EoSample, EoError> {
        let (scene, frag) = self.scene(path)?;
        let win = frag.window.unwrap_or((0, 0, scene.width, scene.height));
        if win.0 >= scene.width || win.1 >= scene.height {
            return Err(EoError::Unusable {
                path: path.into(),
                reason: format!(
                    "window starts at ({}, {}), outside the {}×{} px scene",
                    win.0, win.1, scene.width, scene.height
                ),
            });
        }
        let gsd = if self.cfg.gsd_m > 0.0 {
            self.cfg.gsd_m
        } else {
            scene.gsd_m
        };
        let f = scene.gsd_m / gsd;
        let ow = ((win.2 as f64 * f).round() as usize).max(1);
        let oh = ((win.3 as f64 * f).round() as usize).max(1);
        let mut data = scene.read(win, (ow, oh), self.cfg.max_pixels, self.cfg.complex)?;
        self.convert(
            &scene,
            &mut data,
            ow * oh,
            frag.sar_input.unwrap_or(self.cfg.sar_input),
        );
        Ok(EoSample {
            path: path.to_path_buf(),
            bands: scene.bands.clone(),
            data,
            h: oh,
            w: ow,
            gsd_m: gsd,
        })
    }

    /// Sentinel-2 DN → reflectance (with the baseline offset), radar → dB (clipped).
    pub fn convert(&self, scene: &Scene, data: &mut [f32], plane: usize, sar_input: SarInput) {
        for (c, b) in scene.bands.iter().enumerate() {
            let x = &mut data[c * plane..(c + 1) * plane];
            if b.key.starts_with("sentinel2.") {
                let off = self.cfg.s2_offset.or(scene.s2_offset).unwrap_or(0.0) as f32;
                x.iter_mut().for_each(|v| *v = (*v + off) / 10_000.0);
            } else if b.is_radar() && self.cfg.sar_db && sar_input != SarInput::Db {
                let k = if sar_input == SarInput::Amplitude {
                    20.0
                } else {
                    10.0
                };
                let [lo, hi] = self.cfg.sar_clip_db;
                x.iter_mut().for_each(|v| {
                    if v.is_finite() {
                        *v = (k * (v.max(0.0) as f64 + 1e-10).log10()).clamp(lo, hi) as f32;
                    }
                });
            } else if b.is_radar() && self.cfg.sar_db {
                let [lo, hi] = self.cfg.sar_clip_db;
                x.iter_mut()
                    .for_each(|v| *v = (*v as f64).clamp(lo, hi) as f32);
            }
        }
    }

    fn norm_of(&self, b: &Band) -> NormStats {
        self.cfg.norm.get(&b.key).copied().unwrap_or_default()
    }

    /// Tokens of the `crop × crop` window at `(x0, y0)` of the sample, with an optional
    /// flip/rotation `t` (0..8: bit 0 flips columns, bit 1 flips rows, bit 2 transposes).
    pub fn tokens_at(
        &self,
        s: &EoSample,
        x0: usize,
        y0: usize,
        t: u8,
        bands: &[usize],
    ) -> Result<SampleTokens, EoError> {
        let c = self.cfg.crop_px;
        let p = self.cfg.patch_px;
        let g = c / p;
        let pp = p * p;
        let mut values = Vec::new();
        let mut coords = Vec::new();
        let mut n = 0;
        let mut patch = vec![0f32; pp];
        for &b in bands {
            let band = &s.bands[b];
            let ns = self.norm_of(band);
            let (m, sd) = (ns.mean as f32, ns.std.max(1e-8) as f32);
            let plane = s.plane(b);
            let spectral = band.spectral_coords();
            for gi in 0..g {
                for gj in 0..g {
                    let mut valid = 0;
                    for r in 0..p {
                        for q in 0..p {
                            // Output pixel (row, col) of the crop, mapped back through t.
                            let (mut rr, mut cc) = (gi * p + r, gj * p + q);
                            if t & 4 != 0 {
                                std::mem::swap(&mut rr, &mut cc);
                            }
                            if t & 1 != 0 {
                                cc = c - 1 - cc;
                            }
                            if t & 2 != 0 {
                                rr = c - 1 - rr;
                            }
                            let (y, x) = (y0 + rr, x0 + cc);
                            let v = if y < s.h && x < s.w {
                                plane[y * s.w + x]
                            } else {
                                f32::NAN
                            };
                            patch[r * p + q] = if v.is_finite() {
                                valid += 1;
                                (v - m) / sd
                            } else {
                                0.0
                            };
                        }
                    }
                    if valid == 0 || (valid as f64) < self.cfg.min_valid * pp as f64 {
                        continue;
                    }
                    values.extend_from_slice(&patch);
                    let gsd = s.gsd_m as f32;
                    coords.extend_from_slice(&[
                        (gj * p) as f32 * gsd + p as f32 * gsd / 2.0,
                        (gi * p) as f32 * gsd + p as f32 * gsd / 2.0,
                        spectral[0],
                        spectral[1],
                        spectral[2],
                    ]);
                    n += 1;
                }
            }
        }
        if n == 0 {
            return Err(EoError::Unusable {
                path: s.path.clone(),
                reason: format!(
                    "no valid pixels in the {c}×{c} crop at ({x0}, {y0}) (all nodata, masked or non-finite)"
                ),
            });
        }
        Ok(SampleTokens::new(values, coords, n, pp, 5)?)
    }

    /// The centre crop, all bands.
    pub fn eval_tokens(&self, s: &EoSample) -> Result<SampleTokens, EoError> {
        let c = self.cfg.crop_px;
        let x0 = s.w.saturating_sub(c) / 2;
        let y0 = s.h.saturating_sub(c) / 2;
        let all: Vec<usize> = (0..s.bands.len()).collect();
        self.tokens_at(s, x0, y0, 0, &all)
    }

    /// A random crop (and flip/rotation when `[eo.augment] flip`), all bands.
    pub fn random_tokens(&self, s: &EoSample, rng: &mut Rng) -> Result<SampleTokens, EoError> {
        let c = self.cfg.crop_px;
        let (x0, y0) = match self.cfg.augment.centre_jitter_px {
            None => (
                rng.below(s.w.saturating_sub(c) + 1),
                rng.below(s.h.saturating_sub(c) + 1),
            ),
            Some(j) => {
                // Offsets in [-j, j] around the centre crop, kept inside the raster.
                let near = |size: usize, rng: &mut Rng| {
                    let (centre, max) = (size.saturating_sub(c) / 2, size.saturating_sub(c));
                    let lo = centre.saturating_sub(j);
                    lo + rng.below((centre + j).min(max) - lo + 1)
                };
                (near(s.w, rng), near(s.h, rng))
            }
        };
        let t = if self.cfg.augment.flip {
            rng.below(8) as u8
        } else {
            0
        };
        let all: Vec<usize> = (0..s.bands.len()).collect();
        self.tokens_at(s, x0, y0, t, &all)
    }
}
