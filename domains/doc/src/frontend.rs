//! The document front end: a page (`file`, `file#page=N`, `file#dpi=D`) → upright pixels at
//! the card's working resolution (resampled by the dpi the file declares, else the
//! card's `fallback_dpi`; PDFs rendered at it) → ink in [0, 1] (0 = paper), optionally
//! binarised → 2-D patches of the whole page, padded with paper to whole patches and never
//! squashed, one token per patch at (x mm, y mm) of its centre from the page's top-left.
//! A page at 100, 150 or 300 dpi therefore gives the same tokens for the same paper.

use crate::page::{self, Format, Raster};
use crate::resample::resize;
use crate::DocError;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tessera_tokens::stats::NormStats;
use tessera_tokens::{CoordAxis, Rng, SampleTokens, TokenLayout, TokenSpec};

/// Augmentations of training views, for recipes whose views ask for one.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DocAugment {
    /// Gaussian noise on normalised values.
    pub noise_std: f64,
    /// Random contrast (ink gain) factor range `[1 - c, 1 + c]`.
    pub contrast: f64,
}

impl Default for DocAugment {
    fn default() -> Self {
        Self {
            noise_std: 0.0,
            contrast: 0.2,
        }
    }
}

/// The `[doc]` table of a card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DocConfig {
    /// Working resolution: every page is resampled (PDFs rendered) to it.
    pub dpi: f64,
    /// Resolution of files that declare none (FUNSD's PNGs, most JPEG chips); `#dpi=` per
    /// file overrides both.
    pub fallback_dpi: f64,
    /// Keep colour (3 channels per patch pixel); grey otherwise (ITU-R 601 luma).
    pub colour: bool,
    /// Side of a token's patch, in working pixels.
    pub patch_px: usize,
    /// Side of a training crop, in working pixels (a multiple of `patch_px`).
    pub crop_px: usize,
    /// Training crops with less ink than this fraction are redrawn (up to 8 draws), so
    /// pretraining does not spend its steps on margins.
    pub min_ink: f64,
    /// Binarise ink at this threshold in [0, 1] (None keeps grey levels).
    pub binarise: Option<f64>,
    /// Straighten skewed scans (skew within ±5° from projection profiles, undone by a
    /// rotation about the page centre).
    pub deskew: bool,
    /// Largest decoded page (width × height × channels, source pixels); larger headers
    /// are refused before decoding.
    pub max_pixels: usize,
    /// Largest evaluation view (whole page) in tokens.
    pub max_tokens: usize,
    pub augment: DocAugment,
    /// Dataset statistics of ink values (fitted before pretraining).
    pub norm: Option<NormStats>,
}

impl Default for DocConfig {
    fn default() -> Self {
        Self {
            dpi: 100.0,
            fallback_dpi: 100.0,
            colour: false,
            patch_px: 16,
            crop_px: 256,
            min_ink: 0.01,
            binarise: None,
            deskew: false,
            max_pixels: 1 << 28,
            max_tokens: 16_384,
            augment: DocAugment::default(),
            norm: None,
        }
    }
}

/// A page at the working resolution.
#[derive(Debug, Clone)]
pub struct DocSample {
    /// The file (and fragment) it came from, for messages.
    pub path: PathBuf,
    pub w: usize,
    pub h: usize,
    pub c: usize,
    /// `[h, w, c]` 8-bit intensity, 255 = paper.
    pub data: Vec<u8>,
    /// The source resolution used (declared, `#dpi=`, or the fallback).
    pub source_dpi: (f64, f64),
    /// Whether `source_dpi` was declared by the file.
    pub dpi_declared: bool,
    /// The source page size in pixels.
    pub source_px: (usize, usize),
    /// The skew undone (degrees; 0 without `deskew`).
    pub skew_deg: f64,
}

impl DocSample {
    /// Millimetres per working pixel.
    pub fn mm_per_px(&self, dpi: f64) -> f64 {
        25.4 / dpi
    }
}

/// Per-file settings after `#`: `page=N` (1-based), `dpi=D`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fragment {
    pub page: Option<usize>,
    pub dpi: Option<f64>,
}

/// Splits `file#key=value&...` into the file and its settings.
pub fn split_fragment(path: &Path) -> Result<(PathBuf, Fragment), DocError> {
    let bad = |reason: String| DocError::format(path, reason);
    let (file, settings) = tessera_tokens::modality::file_settings(path).map_err(&bad)?;
    let mut f = Fragment::default();
    for (k, v) in &settings {
        let v = v.as_str();
        match k.as_str() {
            "page" => {
                f.page = Some(
                    v.parse::<usize>()
                        .ok()
                        .filter(|p| *p >= 1)
                        .ok_or_else(|| bad(format!("page `{v}` is not a page number from 1")))?,
                )
            }
            "dpi" => {
                f.dpi = Some(
                    v.parse::<f64>()
                        .ok()
                        .filter(|d| (10.0..=20_000.0).contains(d))
                        .ok_or_else(|| {
                            bad(format!("dpi `{v}` is not a resolution in [10, 20000]"))
                        })?,
                )
            }
            _ => return Err(bad(format!("unknown setting `#{k}=` (known: page, dpi)"))),
        }
    }
    Ok((file, f))
}

/// The document front end.
#[derive(Debug, Clone)]
pub struct DocFrontend {
    pub cfg: DocConfig,
}

impl DocFrontend {
    pub fn new(cfg: &DocConfig) -> Result<Self, DocError> {
        let bad = |m: String| Err(DocError::Config(m));
        if cfg.patch_px == 0
            || cfg.crop_px < cfg.patch_px
            || !cfg.crop_px.is_multiple_of(cfg.patch_px)
        {
            return bad(format!(
                "crop_px ({}) must be a positive multiple of patch_px ({})",
                cfg.crop_px, cfg.patch_px
            ));
        }
        for (name, v) in [("dpi", cfg.dpi), ("fallback_dpi", cfg.fallback_dpi)] {
            if !(10.0..=2400.0).contains(&v) {
                return bad(format!("{name} {v} must lie in [10, 2400]"));
            }
        }
        if !(0.0..1.0).contains(&cfg.min_ink)
            || cfg.binarise.is_some_and(|t| !(0.0..1.0).contains(&t))
        {
            return bad("min_ink and binarise must lie in [0, 1)".into());
        }
        if cfg.max_tokens == 0 || cfg.max_pixels == 0 {
            return bad("max_tokens and max_pixels must be positive".into());
        }
        Ok(Self { cfg: cfg.clone() })
    }

    pub fn channels(&self) -> usize {
        if self.cfg.colour {
            3
        } else {
            1
        }
    }

    pub fn mm_per_px(&self) -> f64 {
        25.4 / self.cfg.dpi
    }

    pub fn token_spec(&self) -> TokenSpec {
        let p = self.cfg.patch_px;
        let axis = |name: &str| CoordAxis {
            name: name.into(),
            unit: "mm".into(),
            scale: 300.0,
        };
        TokenSpec {
            p: self.channels() * p * p,
            k: 2,
            value_unit: "standardised ink (1 - intensity), 0 = paper".into(),
            axes: vec![axis("x"), axis("y")],
            layout: TokenLayout::Patch2d {
                channels: self.channels(),
                patch: [p, p],
                stride: [p, p],
            },
        }
    }

    /// Decodes (or renders) a page and brings it to the working resolution.
    pub fn load(&self, path: &Path) -> Result<DocSample, DocError> {
        let (file, frag) = split_fragment(path)?;
        let page = frag.page.unwrap_or(1) - 1;
        let format = page::sniff(&file)?;
        let raster: Raster = if format == Format::Pdf {
            crate::pdf::render(
                &file,
                page,
                self.cfg.dpi,
                self.cfg.colour,
                self.cfg.max_pixels,
            )?
        } else {
            page::read(&file, page, self.cfg.max_pixels)?
        };
        let declared = raster.dpi;
        let src_dpi = frag
            .dpi
            .map(|d| (d, d))
            .or(declared)
            .unwrap_or((self.cfg.fallback_dpi, self.cfg.fallback_dpi));
        let c = self.channels();
        let data = if c == 1 {
            page::to_grey(&raster)
        } else if raster.channels == 1 {
            raster.data.iter().flat_map(|&v| [v, v, v]).collect()
        } else {
            raster.data
        };
        let nw = ((raster.width as f64 * self.cfg.dpi / src_dpi.0).round() as usize).max(1);
        let nh = ((raster.height as f64 * self.cfg.dpi / src_dpi.1).round() as usize).max(1);
        if nw.saturating_mul(nh).saturating_mul(c) > self.cfg.max_pixels {
            return Err(DocError::TooLarge {
                path: path.into(),
                width: nw as u64,
                height: nh as u64,
                limit: self.cfg.max_pixels,
            });
        }
        let mut data = resize(&data, raster.width, raster.height, c, nw, nh);
        let mut skew_deg = 0.0;
        if self.cfg.deskew {
            let grey: Vec<u8> = data.iter().step_by(c).copied().collect();
            skew_deg = crate::deskew::estimate(&grey, nw, nh, 5.0);
            if skew_deg.abs() >= 0.1 {
                data = crate::deskew::rotate(&data, nw, nh, c, skew_deg);
            }
        }
        Ok(DocSample {
            path: path.to_path_buf(),
            w: nw,
            h: nh,
            c,
            data,
            source_dpi: src_dpi,
            dpi_declared: frag.dpi.is_none() && declared.is_some(),
            source_px: (raster.width, raster.height),
            skew_deg,
        })
    }

    /// Ink of working pixel (x, y), channel `ch`: 0 outside the page (paper).
    #[inline]
    fn ink(&self, s: &DocSample, x: usize, y: usize, ch: usize) -> f32 {
        if x >= s.w || y >= s.h {
            return 0.0;
        }
        let v = 1.0 - s.data[(y * s.w + x) * s.c + ch] as f32 / 255.0;
        match self.cfg.binarise {
            Some(t) => (v > t as f32) as u8 as f32,
            None => v,
        }
    }

    /// Patch grid (columns, rows) of the whole page.
    pub fn grid(&self, s: &DocSample) -> (usize, usize) {
        let p = self.cfg.patch_px;
        (s.w.div_ceil(p), s.h.div_ceil(p))
    }

    /// Raw ink of the patch at grid (gx, gy) in (channel, row, col) order.
    pub fn patch_ink(&self, s: &DocSample, gx: usize, gy: usize, out: &mut Vec<f32>) {
        let lut = self.ink_table();
        let p = self.cfg.patch_px;
        let (x0, y0) = (gx * p, gy * p);
        let inside = s.w.saturating_sub(x0).min(p);
        for ch in 0..s.c {
            for y in y0..y0 + p {
                if y >= s.h {
                    out.extend(std::iter::repeat_n(0.0, p));
                    continue;
                }
                let row = &s.data[(y * s.w + x0) * s.c..];
                out.extend((0..inside).map(|q| lut[row[q * s.c + ch] as usize]));
                out.extend(std::iter::repeat_n(0.0, p - inside));
            }
        }
    }

    /// Ink of each 8-bit intensity (binarised when the card says so).
    fn ink_table(&self) -> [f32; 256] {
        let mut t = [0f32; 256];
        for (v, out) in t.iter_mut().enumerate() {
            let ink = 1.0 - v as f32 / 255.0;
            *out = match self.cfg.binarise {
                Some(th) => (ink > th as f32) as u8 as f32,
                None => ink,
            };
        }
        t
    }

    /// Tokens of the patch-aligned window of `gw × gh` patches at grid (gx0, gy0), with
    /// page coordinates, standardised by the card's statistics.
    pub fn tokens_at(
        &self,
        s: &DocSample,
        gx0: usize,
        gy0: usize,
        gw: usize,
        gh: usize,
    ) -> Result<SampleTokens, DocError> {
        let p = self.cfg.patch_px;
        let mm = self.mm_per_px() as f32;
        let n = self.cfg.norm.unwrap_or_default();
        let (m, sd) = (n.mean as f32, n.std.max(1e-8) as f32);
        let pp = s.c * p * p;
        let mut values = Vec::with_capacity(gw * gh * pp);
        let mut coords = Vec::with_capacity(gw * gh * 2);
        for gy in gy0..gy0 + gh {
            for gx in gx0..gx0 + gw {
                let start = values.len();
                self.patch_ink(s, gx, gy, &mut values);
                for v in &mut values[start..] {
                    *v = (*v - m) / sd;
                }
                coords.push((gx * p) as f32 * mm + p as f32 * mm / 2.0);
                coords.push((gy * p) as f32 * mm + p as f32 * mm / 2.0);
            }
        }
        Ok(SampleTokens::new(values, coords, gw * gh, pp, 2)?)
    }

    /// The whole page, every patch in row-major order.
    pub fn eval_tokens(&self, s: &DocSample) -> Result<SampleTokens, DocError> {
        let (gw, gh) = self.grid(s);
        if gw * gh > self.cfg.max_tokens {
            return Err(DocError::format(
                &s.path,
                format!(
                    "the page gives {} tokens at {} dpi ({}×{} patches), more than [doc] max_tokens = {}; lower dpi or raise max_tokens",
                    gw * gh,
                    self.cfg.dpi,
                    gw,
                    gh,
                    self.cfg.max_tokens
                ),
            ));
        }
        self.tokens_at(s, 0, 0, gw, gh)
    }

    /// Fraction of inked pixels (ink > 0.5) in a window of patches.
    fn ink_fraction(&self, s: &DocSample, gx0: usize, gy0: usize, g: usize) -> f64 {
        let p = self.cfg.patch_px;
        let (mut inked, mut total) = (0usize, 0usize);
        for y in (gy0 * p..(gy0 + g) * p).step_by(2) {
            for x in (gx0 * p..(gx0 + g) * p).step_by(2) {
                total += 1;
                inked += (self.ink(s, x, y, 0) > 0.5) as usize;
            }
        }
        inked as f64 / total.max(1) as f64
    }

    /// A random patch-aligned crop of `crop_px`, redrawn (up to 8 times) while it holds
    /// less than `min_ink` ink; pages smaller than the crop are padded with paper.
    pub fn random_tokens(&self, s: &DocSample, rng: &mut Rng) -> Result<SampleTokens, DocError> {
        let g = self.cfg.crop_px / self.cfg.patch_px;
        let (gw, gh) = self.grid(s);
        let mut pos = (0, 0);
        for _ in 0..8 {
            pos = (
                rng.below(gw.saturating_sub(g) + 1),
                rng.below(gh.saturating_sub(g) + 1),
            );
            if self.ink_fraction(s, pos.0, pos.1, g) >= self.cfg.min_ink {
                break;
            }
        }
        self.tokens_at(s, pos.0, pos.1, g, g)
    }

    /// Indices (into the evaluation view) and weights of the tokens a box covers; the box
    /// is `[x0, y0, x1, y1]` in source pixels of the page. Weights are overlap areas
    /// (summing to 1); a box between patch centres still gets its nearest patch.
    pub fn box_tokens(&self, s: &DocSample, b: [f64; 4]) -> Vec<(usize, f32)> {
        let (gw, gh) = self.grid(s);
        let fx = s.w as f64 / s.source_px.0 as f64;
        let fy = s.h as f64 / s.source_px.1 as f64;
        let p = self.cfg.patch_px as f64;
        let (x0, x1) = (b[0].min(b[2]) * fx / p, b[0].max(b[2]) * fx / p);
        let (y0, y1) = (b[1].min(b[3]) * fy / p, b[1].max(b[3]) * fy / p);
        let mut out = Vec::new();
        let clamp = |v: f64, n: usize| (v.max(0.0) as usize).min(n.saturating_sub(1));
        for gy in clamp(y0.floor(), gh)..=clamp(y1.ceil() - 1.0, gh).max(clamp(y0.floor(), gh)) {
            for gx in clamp(x0.floor(), gw)..=clamp(x1.ceil() - 1.0, gw).max(clamp(x0.floor(), gw))
            {
                let ox = (x1.min(gx as f64 + 1.0) - x0.max(gx as f64)).max(0.0);
                let oy = (y1.min(gy as f64 + 1.0) - y0.max(gy as f64)).max(0.0);
                out.push((gy * gw + gx, (ox * oy) as f32));
            }
        }
        let total: f32 = out.iter().map(|(_, w)| w).sum();
        if total > 0.0 {
            out.retain(|(_, w)| *w > 0.0);
            out.iter_mut().for_each(|(_, w)| *w /= total);
        } else {
            let n = out.len().max(1) as f32;
            out.iter_mut().for_each(|(_, w)| *w = 1.0 / n);
        }
        out
    }

    /// The evaluation-view token whose patch centre lies in each box (`[x0, y0, x1, y1]`
    /// in source pixels): for every token, the index of the smallest box containing its
    /// centre, if any.
    pub fn token_boxes(&self, s: &DocSample, boxes: &[[f64; 4]]) -> Vec<Option<usize>> {
        let (gw, gh) = self.grid(s);
        let p = self.cfg.patch_px as f64;
        let fx = s.source_px.0 as f64 / s.w as f64;
        let fy = s.source_px.1 as f64 / s.h as f64;
        let mut out = vec![None; gw * gh];
        for gy in 0..gh {
            for gx in 0..gw {
                let cx = (gx as f64 + 0.5) * p * fx;
                let cy = (gy as f64 + 0.5) * p * fy;
                let mut best: Option<(usize, f64)> = None;
                for (i, b) in boxes.iter().enumerate() {
                    let inside = cx >= b[0].min(b[2])
                        && cx < b[0].max(b[2])
                        && cy >= b[1].min(b[3])
                        && cy < b[1].max(b[3]);
                    let area = (b[2] - b[0]).abs() * (b[3] - b[1]).abs();
                    if inside && best.is_none_or(|(_, a)| area < a) {
                        best = Some((i, area));
                    }
                }
                out[gy * gw + gx] = best.map(|(i, _)| i);
            }
        }
        out
    }
}
