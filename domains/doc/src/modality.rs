//! Document pages as a Tessera [`Modality`]: training views are random crops of the page
//! (redrawn off blank margins), the evaluation view is the whole page (every patch, row
//! major, padded with paper), and one ink mean/sd lives in the card (`[doc.norm]`).

use crate::frontend::split_fragment;
use crate::page::{self, Format, PAGE_EXTENSIONS};
use crate::{DocConfig, DocError, DocFrontend, DocSample};
use std::path::{Path, PathBuf};
use tessera_tokens::grid::{AxisCoords, GridAxis, GridFront};
use tessera_tokens::modality::GridInput;
use tessera_tokens::stats::RunningStats;
use tessera_tokens::{InfoRow, Modality, Rng, SampleTokens, TokenSpec};

/// Cell side (mm) and extent (mm) of the `inkgrid` baseline.
const CELL_MM: f64 = 10.0;
const EXTENT_MM: (f64, f64) = (220.0, 300.0);

/// The file part of a path that may carry `#...` settings.
pub fn file_of(path: &Path) -> PathBuf {
    split_fragment(path)
        .map(|(f, _)| f)
        .unwrap_or_else(|_| path.to_path_buf())
}

impl Modality for DocFrontend {
    const NAME: &'static str = "doc";
    const EXTENSIONS: &'static [&'static str] = &PAGE_EXTENSIONS;
    type Config = DocConfig;
    type Sample = DocSample;
    type Stats = RunningStats;
    type Error = DocError;

    fn new(cfg: &DocConfig) -> Result<Self, DocError> {
        DocFrontend::new(cfg)
    }

    fn config(&self) -> &DocConfig {
        &self.cfg
    }

    fn token_spec(&self) -> TokenSpec {
        DocFrontend::token_spec(self)
    }

    /// Page files by extension (a `#page=`/`#dpi=` suffix allowed).
    fn accepts(path: &Path) -> bool {
        tessera_tokens::modality::has_extension(&file_of(path), Self::EXTENSIONS)
    }

    fn decode(&self, path: &Path) -> Result<DocSample, DocError> {
        self.load(path)
    }

    fn sample_bytes(s: &DocSample) -> usize {
        s.data.len()
    }

    fn train_view(&self, s: &DocSample, rng: &mut Rng) -> Result<SampleTokens, DocError> {
        self.random_tokens(s, rng)
    }

    fn eval_view(&self, s: &DocSample) -> Result<SampleTokens, DocError> {
        self.eval_tokens(s)
    }

    /// Contrast (ink gain) and noise, as `[doc.augment]` says.
    fn augment(&self, view: SampleTokens, rng: &mut Rng) -> Result<SampleTokens, DocError> {
        let a = self.cfg.augment;
        let mut view = view;
        let n = self.cfg.norm.unwrap_or_default();
        let (m, sd) = (n.mean as f32, n.std.max(1e-8) as f32);
        let gain = (1.0 + a.contrast * (2.0 * rng.uniform() - 1.0)) as f32;
        for v in view.values.iter_mut() {
            *v = ((*v * sd + m) * gain - m) / sd + (rng.normal() * a.noise_std) as f32;
        }
        Ok(view)
    }

    /// Random grey levels on a page of one training crop.
    fn random_sample(&self, rng: &mut Rng) -> Result<DocSample, DocError> {
        let side = self.cfg.crop_px;
        let c = self.channels();
        Ok(DocSample {
            path: PathBuf::from("random"),
            w: side,
            h: side,
            c,
            data: (0..side * side * c).map(|_| rng.below(256) as u8).collect(),
            source_dpi: (self.cfg.dpi, self.cfg.dpi),
            dpi_declared: false,
            source_px: (side, side),
            skew_deg: 0.0,
        })
    }

    fn stats_start(&self) -> Option<RunningStats> {
        self.cfg.norm.is_none().then(RunningStats::default)
    }

    fn stats_add(&self, stats: &mut RunningStats, s: &DocSample) {
        let (gw, gh) = self.grid(s);
        let mut buf = Vec::new();
        for gy in 0..gh {
            for gx in 0..gw {
                self.patch_ink(s, gx, gy, &mut buf);
            }
        }
        stats.push_slice(&buf);
    }

    fn stats_finish(&self, stats: RunningStats) -> Result<DocConfig, DocError> {
        let mut cfg = self.cfg.clone();
        cfg.norm = Some(stats.finish());
        Ok(cfg)
    }

    /// The file's structure (format, pages, size in px and mm, declared dpi, pixel
    /// layout, compression, orientation) and a full decode of the page the path names.
    fn inspect(&self, path: &Path) -> Result<InfoRow, DocError> {
        let (file, frag) = split_fragment(path)?;
        let info = page::probe(&file)?;
        let s = self.load(path)?;
        let (gw, gh) = self.grid(&s);
        let inked = s.data.iter().step_by(s.c).filter(|&&v| v < 128).count() as f64
            / (s.w * s.h).max(1) as f64;
        let mm = |px: usize, dpi: f64| px as f64 * 25.4 / dpi;
        let dpi = match (frag.dpi, info.dpi) {
            _ if info.format == Format::Pdf => "vector (rendered at the working dpi)".to_string(),
            (Some(d), _) => format!("{d} (from #dpi=)"),
            (None, Some((x, y))) if (x - y).abs() < 0.01 => format!("{x:.1}"),
            (None, Some((x, y))) => format!("{x:.1} × {y:.1}"),
            (None, None) => format!(
                "none (warning: {} from [doc] fallback_dpi)",
                self.cfg.fallback_dpi
            ),
        };
        let mut row: InfoRow = vec![
            ("file".into(), path.display().to_string()),
            ("format".into(), info.format.name().into()),
            ("pages".into(), info.pages.to_string()),
            ("page".into(), frag.page.unwrap_or(1).to_string()),
            (
                "size_px".into(),
                format!("{}×{}", s.source_px.0, s.source_px.1),
            ),
            ("dpi".into(), dpi),
            (
                "size_mm".into(),
                format!(
                    "{:.1}×{:.1}",
                    mm(s.source_px.0, s.source_dpi.0),
                    mm(s.source_px.1, s.source_dpi.1)
                ),
            ),
            ("pixel".into(), info.pixel.clone()),
            ("compression".into(), info.compression.clone()),
            ("orientation".into(), info.orientation.to_string()),
            ("working_px".into(), format!("{}×{}", s.w, s.h)),
            ("tokens".into(), format!("{} ({gw}×{gh})", gw * gh)),
            ("ink_fraction".into(), format!("{inked:.3}")),
        ];
        if self.cfg.deskew {
            row.push(("skew_deg".into(), format!("{:.2}", s.skew_deg)));
        }
        if info.encrypted {
            row.push(("encrypted".into(), "yes".into()));
        }
        if info.pages > 1 && frag.page.is_none() {
            row.push((
                "warning".into(),
                format!(
                    "{} pages; only page 1 is read (list `{}#page=N` rows, or `render` them)",
                    info.pages,
                    file.display()
                ),
            ));
        }
        Ok(row)
    }

    fn advise(&self, rows: &[InfoRow]) -> Vec<String> {
        let no_dpi = rows
            .iter()
            .filter(|r| r.iter().any(|(k, v)| k == "dpi" && v.starts_with("none")))
            .count();
        let mut out = Vec::new();
        if no_dpi > 0 {
            out.push(format!(
                "{no_dpi} page(s) declare no resolution: their physical size assumes [doc] fallback_dpi = {}; give `#dpi=N` per file in a manifest if that is wrong",
                self.cfg.fallback_dpi
            ));
        }
        out
    }

    /// `[B, C, H, W]` ink (0 = paper) at the working resolution → patches at (x mm, y mm);
    /// none when pages are binarised (a threshold is not a graph front).
    fn grid_front(&self) -> Option<GridFront> {
        if self.cfg.binarise.is_some() {
            return None;
        }
        let p = self.cfg.patch_px;
        let mm = self.mm_per_px() as f32;
        let axis = |name: &str, coord_index| GridAxis {
            name: name.into(),
            patch: p,
            coords: AxisCoords::Affine {
                offset: p as f32 * mm / 2.0,
                step: p as f32 * mm,
            },
            coord_index,
        };
        Some(GridFront {
            channels: self.channels(),
            axes: vec![axis("y", 1), axis("x", 0)],
            norm: self.cfg.norm.map(|n| (n.mean as f32, n.std as f32)),
        })
    }

    /// The whole page's ink `[1, C, H, W]`, padded with paper to whole patches.
    fn grid_input(&self, s: &DocSample) -> Result<Option<GridInput>, DocError> {
        if self.cfg.binarise.is_some() {
            return Ok(None);
        }
        let p = self.cfg.patch_px;
        let (gw, gh) = self.grid(s);
        let (w, h) = (gw * p, gh * p);
        let mut data = vec![0f32; s.c * h * w];
        for ch in 0..s.c {
            for y in 0..s.h {
                for x in 0..s.w {
                    data[(ch * h + y) * w + x] =
                        1.0 - s.data[(y * s.w + x) * s.c + ch] as f32 / 255.0;
                }
            }
        }
        Ok(Some((vec![1, s.c, h, w], data)))
    }

    fn baselines() -> &'static [&'static str] {
        &["inkgrid"]
    }

    /// `inkgrid`: the page's width and height in mm and its ink density in 10 mm cells over
    /// a 220 × 300 mm area from the top-left (paper beyond the page).
    fn baseline(&self, name: &str, s: &DocSample) -> Result<Vec<f32>, DocError> {
        if name != "inkgrid" {
            return Err(DocError::Config(format!(
                "unknown baseline `{name}` (known: inkgrid)"
            )));
        }
        let mm = self.mm_per_px();
        let (cw, ch) = (
            (EXTENT_MM.0 / CELL_MM) as usize,
            (EXTENT_MM.1 / CELL_MM) as usize,
        );
        let mut sum = vec![0f64; cw * ch];
        for y in 0..s.h {
            let cy = (y as f64 * mm / CELL_MM) as usize;
            if cy >= ch {
                break;
            }
            for x in 0..s.w {
                let cx = (x as f64 * mm / CELL_MM) as usize;
                if cx >= cw {
                    break;
                }
                sum[cy * cw + cx] += 1.0 - s.data[(y * s.w + x) * s.c] as f64 / 255.0;
            }
        }
        let cell_px = (CELL_MM / mm).powi(2);
        let mut out = vec![(s.w as f64 * mm) as f32, (s.h as f64 * mm) as f32];
        out.extend(sum.iter().map(|v| (v / cell_px) as f32));
        Ok(out)
    }

    /// Sixteen `letter`/`form` pages in PNG (grey with pHYs, RGB without), JPEG, multi-page
    /// TIFF and Group 4 fax TIFF at 100–200 dpi (see `synth`).
    fn write_demo_data(dir: &Path, seed: u64) -> Result<PathBuf, DocError> {
        crate::synth::write_dataset(dir, 16, seed)
    }
}
