//! PNG plots of training runs and evaluation results (the `plots` feature).
//!
//! - [`plot_run`]: every numeric column of a training run's `metrics.jsonl` (loss, lr,
//!   grad_norm, throughput, the recipe's own scalars...) against the step, one panel each.
//! - [`plot_confusion`]: a confusion-matrix heat map with class names; colour is the
//!   row-normalised fraction (recall per true class), cells show counts.
//! - [`plot_comparison`] / [`plot_comparison_rows`]: one bar per run/protocol/feature set
//!   with the mean over seeds and ±sd error bars of a chosen metric.
//!
//! Drawing uses plotters' bitmap backend into an RGB buffer, which `image` encodes as PNG.
//!
//! **Fonts.** Nothing is embedded. Text needs a TrueType/OpenType file found at run time:
//! [`PlotFont::File`], else (with [`PlotFont::Auto`], the default) the file named by the
//! `TESSERA_PLOT_FONT` environment variable (skipped if it is not a readable font), else the first of the usual system locations
//! of DejaVu Sans, Liberation Sans, Noto Sans, Arial (Debian/Ubuntu, Fedora, Arch, macOS,
//! Windows), else any `*Sans*.ttf` under the usual font folders. Without a font the plots
//! are still drawn, complete but with no text (titles, tick labels, class names, values);
//! [`PlotReport::font`] is then `None` so a caller can warn. A font is read once and stays
//! registered for the life of the process.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use plotters::backend::RGBPixel;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{FontTransform, TextStyle};

use crate::{summarise, EvalError, ResultRow, SummaryRow};

/// Environment variable naming a font file for [`PlotFont::Auto`].
pub const FONT_ENV: &str = "TESSERA_PLOT_FONT";

/// Largest accepted width or height, pixels.
const MAX_SIDE: u32 = 8192;

/// Which font draws the text of a plot.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PlotFont {
    /// `TESSERA_PLOT_FONT`, else a system font (see the module documentation), else no
    /// text.
    #[default]
    Auto,
    /// This font file (an error if it cannot be read or parsed).
    File(PathBuf),
    /// No text at all.
    None,
}

/// Settings shared by every plot.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PlotOptions {
    /// `(width, height)` in pixels; `None`: the plot's default (run: 1200×900, confusion:
    /// 900×900, comparison: 1000×600). Each side must be in `64..=8192`.
    pub size: Option<(u32, u32)>,
    /// The font of all text.
    pub font: PlotFont,
    /// A title instead of the default one.
    pub title: Option<String>,
}

/// What a plot function wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlotReport {
    /// The PNG file.
    pub path: PathBuf,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The font file of the text; `None` when the plot was drawn without text.
    pub font: Option<PathBuf>,
}

// ---------------------------------------------------------------------------------------
// Fonts

/// Font files registered with plotters so far: (file, family name).
static REGISTERED: Mutex<Vec<(PathBuf, String)>> = Mutex::new(Vec::new());
/// The font [`PlotFont::Auto`] resolved to (once per process).
static AUTO_FONT: OnceLock<Option<(String, PathBuf)>> = OnceLock::new();

const FONT_CANDIDATES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/local/share/fonts/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
    "/usr/share/fonts/noto/NotoSans-Regular.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
    "/Library/Fonts/Arial.ttf",
    "C:\\Windows\\Fonts\\arial.ttf",
];

const FONT_DIRS: &[&str] = &["/usr/share/fonts", "/usr/local/share/fonts"];

/// Registers the font file with plotters (once per file) and returns its family name.
fn register(path: &Path) -> Result<String, String> {
    let mut reg = REGISTERED.lock().map_err(|_| "font registry poisoned")?;
    if let Some((_, family)) = reg.iter().find(|(p, _)| p == path) {
        return Ok(family.clone());
    }
    let bytes = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let family = format!("tessera-font-{}", reg.len());
    // plotters keeps `&'static` font data: the bytes live for the rest of the process,
    // once per distinct file.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font(&family, FontStyle::Normal, bytes)
        .map_err(|_| format!("{} is not a TrueType/OpenType font", path.display()))?;
    reg.push((path.to_path_buf(), family.clone()));
    Ok(family)
}

/// A `*Sans*.ttf` (regular weight preferred) at most three folders below the font dirs.
fn scan_font_dirs() -> Option<PathBuf> {
    fn walk(dir: &Path, depth: usize, found: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten().take(2000) {
            let p = e.path();
            if p.is_dir() {
                if depth < 3 {
                    walk(&p, depth + 1, found);
                }
            } else if p
                .extension()
                .is_some_and(|x| x.eq_ignore_ascii_case("ttf") || x.eq_ignore_ascii_case("otf"))
            {
                found.push(p);
            }
        }
    }
    let mut found = Vec::new();
    for d in FONT_DIRS {
        walk(Path::new(d), 0, &mut found);
    }
    found.sort();
    let name = |p: &PathBuf| {
        p.file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_default()
    };
    let styled = |n: &str| {
        ["bold", "italic", "oblique", "mono", "light", "math"]
            .iter()
            .any(|s| n.contains(s))
    };
    found
        .iter()
        .find(|p| {
            let n = name(p);
            n.contains("sans") && !styled(&n)
        })
        .or_else(|| found.iter().find(|p| !styled(&name(p))))
        .cloned()
}

fn auto_font() -> Option<(String, PathBuf)> {
    AUTO_FONT
        .get_or_init(|| {
            let env = std::env::var_os(FONT_ENV).map(PathBuf::from);
            let candidates = env
                .into_iter()
                .chain(FONT_CANDIDATES.iter().map(PathBuf::from))
                .filter(|p| p.is_file())
                .chain(scan_font_dirs());
            for p in candidates {
                if let Ok(family) = register(&p) {
                    return Some((family, p));
                }
            }
            None
        })
        .clone()
}

fn resolve_font(choice: &PlotFont, out: &Path) -> Result<Option<(String, PathBuf)>, EvalError> {
    match choice {
        PlotFont::None => Ok(None),
        PlotFont::Auto => Ok(auto_font()),
        PlotFont::File(p) => {
            register(p)
                .map(|family| Some((family, p.clone())))
                .map_err(|message| EvalError::Plot {
                    path: out.to_path_buf(),
                    message: format!("font: {message}"),
                })
        }
    }
}

// ---------------------------------------------------------------------------------------
// Drawing helpers

type Area<'a> = DrawingArea<BitMapBackend<'a, RGBPixel>, Shift>;

const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];
const GRID: RGBColor = RGBColor(225, 225, 225);
const AXIS: RGBColor = RGBColor(60, 60, 60);

/// Draws on an area; text only when a font family is set.
struct Painter<'a, 'b> {
    area: &'b Area<'a>,
    font: Option<&'b str>,
}

type DrawResult = Result<(), String>;

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

impl Painter<'_, '_> {
    fn has_text(&self) -> bool {
        self.font.is_some()
    }

    /// Text of `size` px at `pos` with the anchor `(h, v)`, optionally rotated to read
    /// bottom to top.
    fn text(
        &self,
        s: &str,
        pos: (i32, i32),
        size: f64,
        (h, v): (HPos, VPos),
        vertical: bool,
        color: &RGBColor,
    ) -> DrawResult {
        let Some(family) = self.font else {
            return Ok(());
        };
        let mut style = (family, size).into_font().color(color).pos(Pos::new(h, v));
        if vertical {
            style = style.transform(FontTransform::Rotate270);
        }
        self.area.draw_text(s, &style, pos).map_err(err)
    }

    /// Width of `s` at `size` px (0 without a font).
    fn text_width(&self, s: &str, size: f64) -> i32 {
        let Some(family) = self.font else {
            return 0;
        };
        let style = TextStyle::from((family, size));
        self.area
            .estimate_text_size(s, &style)
            .map_or(0, |(w, _)| w as i32)
    }

    fn line(&self, a: (i32, i32), b: (i32, i32), color: &RGBColor, width: u32) -> DrawResult {
        self.area
            .draw(&PathElement::new(vec![a, b], color.stroke_width(width)))
            .map_err(err)
    }

    fn path(&self, pts: Vec<(i32, i32)>, color: &RGBColor, width: u32) -> DrawResult {
        self.area
            .draw(&PathElement::new(pts, color.stroke_width(width)))
            .map_err(err)
    }

    fn rect(&self, a: (i32, i32), b: (i32, i32), color: &RGBColor, filled: bool) -> DrawResult {
        let style = if filled {
            color.filled()
        } else {
            color.stroke_width(1)
        };
        self.area.draw(&Rectangle::new([a, b], style)).map_err(err)
    }
}

/// "Nice" tick positions (1, 2 or 5 × 10^k apart) covering `[lo, hi]`, about `target`.
fn nice_ticks(lo: f64, hi: f64, target: usize) -> (Vec<f64>, f64) {
    let span = hi - lo;
    if !(span.is_finite() && span > 0.0) {
        return (vec![lo], 1.0);
    }
    let raw = span / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    let ticks = (first..=last).map(|k| k as f64 * step).collect();
    (ticks, step)
}

/// Whether the ticks of one axis are written in scientific notation (all or none).
fn scientific(ticks: &[f64], step: f64) -> bool {
    step < 1e-3 || ticks.iter().any(|v| v.abs() >= 1e5)
}

fn tick_label(v: f64, step: f64, sci: bool) -> String {
    let v = if v.abs() < step * 1e-9 { 0.0 } else { v };
    if sci {
        return format!("{v:.1e}");
    }
    let decimals = (-step.log10().floor()).clamp(0.0, 6.0) as usize;
    format!("{v:.decimals$}")
}

fn value_label(v: f64) -> String {
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e5).contains(&a) {
        format!("{v:.3e}")
    } else {
        format!("{v:.4}")
    }
}

/// A data rectangle mapped onto a pixel rectangle.
struct Frame {
    px: (i32, i32, i32, i32),
    x: (f64, f64),
    y: (f64, f64),
}

impl Frame {
    fn map(&self, x: f64, y: f64) -> (i32, i32) {
        let (x0, y0, x1, y1) = self.px;
        let fx = (x - self.x.0) / (self.x.1 - self.x.0);
        let fy = (y - self.y.0) / (self.y.1 - self.y.0);
        (
            x0 + (fx * (x1 - x0) as f64).round() as i32,
            y1 - (fy * (y1 - y0) as f64).round() as i32,
        )
    }

    /// Grid, axes, y ticks with labels; x ticks with labels unless `x_ticks` is false.
    fn draw_axes(&self, p: &Painter, x_ticks: bool, font_px: f64) -> DrawResult {
        let (x0, y0, x1, y1) = self.px;
        let (yt, ystep) = nice_ticks(self.y.0, self.y.1, 5);
        let ysci = scientific(&yt, ystep);
        for v in yt {
            let (_, py) = self.map(self.x.0, v);
            p.line((x0, py), (x1, py), &GRID, 1)?;
            p.line((x0 - 4, py), (x0, py), &AXIS, 1)?;
            p.text(
                &tick_label(v, ystep, ysci),
                (x0 - 6, py),
                font_px,
                (HPos::Right, VPos::Center),
                false,
                &AXIS,
            )?;
        }
        if x_ticks {
            let (xt, xstep) = nice_ticks(self.x.0, self.x.1, 6);
            let xsci = scientific(&xt, xstep);
            for v in xt {
                let (px, _) = self.map(v, self.y.0);
                p.line((px, y0), (px, y1), &GRID, 1)?;
                p.line((px, y1), (px, y1 + 4), &AXIS, 1)?;
                p.text(
                    &tick_label(v, xstep, xsci),
                    (px, y1 + 6),
                    font_px,
                    (HPos::Center, VPos::Top),
                    false,
                    &AXIS,
                )?;
            }
        }
        p.rect((x0, y0), (x1, y1), &AXIS, false)
    }
}

/// Padded `[lo, hi]` of finite values (a constant gets ±5 % or ±1).
fn padded_range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    if lo > hi {
        return None;
    }
    if hi - lo <= f64::EPSILON * hi.abs().max(lo.abs()) {
        let pad = if lo == 0.0 { 1.0 } else { 0.05 * lo.abs() };
        return Some((lo - pad, hi + pad));
    }
    let pad = 0.05 * (hi - lo);
    Some((lo - pad, hi + pad))
}

fn check_size(size: (u32, u32), out: &Path) -> Result<(), EvalError> {
    let ok = |s: u32| (64..=MAX_SIDE).contains(&s);
    if !(ok(size.0) && ok(size.1)) {
        return Err(EvalError::InvalidConfig {
            what: format!("plot size for {}", out.display()),
            reason: format!(
                "width and height must be in 64..={MAX_SIDE} pixels, got {}×{}",
                size.0, size.1
            ),
        });
    }
    Ok(())
}

/// Draws into a white RGB buffer of `size` and writes it to `out` as PNG.
fn render(
    out: &Path,
    size: (u32, u32),
    font: &PlotFont,
    draw: impl FnOnce(&Painter) -> DrawResult,
) -> Result<PlotReport, EvalError> {
    check_size(size, out)?;
    let font = resolve_font(font, out)?;
    let (w, h) = size;
    let plot_err = |message: String| EvalError::Plot {
        path: out.to_path_buf(),
        message,
    };
    let mut buf = vec![255u8; w as usize * h as usize * 3];
    {
        let backend = BitMapBackend::<RGBPixel>::with_buffer_and_format(&mut buf, (w, h))
            .map_err(|e| plot_err(e.to_string()))?;
        let area = backend.into_drawing_area();
        let painter = Painter {
            area: &area,
            font: font.as_ref().map(|(family, _)| family.as_str()),
        };
        draw(&painter).map_err(plot_err)?;
        area.present().map_err(|e| plot_err(e.to_string()))?;
    }
    image::save_buffer_with_format(
        out,
        &buf,
        w,
        h,
        image::ExtendedColorType::Rgb8,
        image::ImageFormat::Png,
    )
    .map_err(|e| match e {
        image::ImageError::IoError(source) => EvalError::Io {
            path: out.to_path_buf(),
            source,
        },
        other => plot_err(other.to_string()),
    })?;
    Ok(PlotReport {
        path: out.to_path_buf(),
        width: w,
        height: h,
        font: font.map(|(_, p)| p),
    })
}

// ---------------------------------------------------------------------------------------
// Training runs

/// The numeric series of a training run's `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq)]
pub struct RunMetrics {
    /// `(name, [(step, value)])`: `loss` and `lr` first (when present), then the other
    /// numeric fields by name; nested objects (the recipe's scalars) flattened as
    /// `parent.child`. Points keep file order; missing or `null` values are skipped.
    pub series: Vec<(String, Vec<(f64, f64)>)>,
    /// Number of records (lines) read.
    pub records: usize,
}

fn flatten(
    prefix: &str,
    obj: &serde_json::Map<String, serde_json::Value>,
    step: f64,
    out: &mut Vec<(String, Vec<(f64, f64)>)>,
) {
    for (k, v) in obj {
        if prefix.is_empty() && k == "step" {
            continue;
        }
        let name = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            serde_json::Value::Number(n) => {
                if let Some(x) = n.as_f64().filter(|x| x.is_finite()) {
                    match out.iter_mut().find(|(n, _)| *n == name) {
                        Some((_, pts)) => pts.push((step, x)),
                        None => out.push((name, vec![(step, x)])),
                    }
                }
            }
            serde_json::Value::Object(inner) => flatten(&name, inner, step, out),
            _ => {}
        }
    }
}

/// Reads a `metrics.jsonl` as the trainer writes it (`tessera_train::StepLog`: one JSON
/// object per line with `step`, `loss`, `lr`, `grad_norm`, ..., and the recipe's scalars
/// under `recipe`). Blank lines are skipped, and so is an unparsable last line without a
/// final newline (a line the trainer is still writing).
///
/// # Errors
/// The file cannot be read; a line is not a JSON object or has no numeric `step`; no
/// record.
pub fn read_metrics_jsonl(path: &Path) -> Result<RunMetrics, EvalError> {
    let text = std::fs::read_to_string(path).map_err(|source| EvalError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let lines: Vec<&str> = text.lines().collect();
    let complete = text.ends_with('\n');
    let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    let mut records = 0;
    for (i, line) in lines.iter().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let parse_err = |message: String| EvalError::Parse {
            path: path.to_path_buf(),
            line: i + 1,
            message,
        };
        let value: serde_json::Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(_) if i + 1 == lines.len() && !complete => break,
            Err(e) => return Err(parse_err(format!("not JSON: {e}"))),
        };
        let obj = value
            .as_object()
            .ok_or_else(|| parse_err("expected a JSON object".into()))?;
        let step = obj
            .get("step")
            .and_then(serde_json::Value::as_f64)
            .ok_or_else(|| parse_err("missing numeric field `step`".into()))?;
        flatten("", obj, step, &mut series);
        records += 1;
    }
    if records == 0 {
        return Err(EvalError::EmptySplit {
            split: format!("metric records of {}", path.display()),
        });
    }
    let rank = |n: &str| match n {
        "loss" => 0,
        "lr" => 1,
        _ => 2,
    };
    series.sort_by(|a, b| rank(&a.0).cmp(&rank(&b.0)).then(a.0.cmp(&b.0)));
    Ok(RunMetrics { series, records })
}

/// [`plot_run_with`] with the default options (1200×900, automatic font).
pub fn plot_run(metrics_jsonl: &Path, out_png: &Path) -> Result<PlotReport, EvalError> {
    plot_run_with(metrics_jsonl, out_png, &PlotOptions::default())
}

/// Plots every numeric series of `metrics_jsonl` (see [`read_metrics_jsonl`]) against the
/// step, one panel per series (one column up to two series, else two), and writes the PNG
/// `out_png`. The default title is the run folder's name.
///
/// # Errors
/// As [`read_metrics_jsonl`]; an invalid size or font; drawing or writing the file fails.
pub fn plot_run_with(
    metrics_jsonl: &Path,
    out_png: &Path,
    opts: &PlotOptions,
) -> Result<PlotReport, EvalError> {
    let metrics = read_metrics_jsonl(metrics_jsonl)?;
    let title = opts.title.clone().unwrap_or_else(|| {
        let run = metrics_jsonl
            .parent()
            .and_then(Path::file_name)
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| metrics_jsonl.display().to_string());
        format!("training run {run} ({} records)", metrics.records)
    });
    let size = opts.size.unwrap_or((1200, 900));
    render(out_png, size, &opts.font, |p| {
        let (w, h) = (size.0 as i32, size.1 as i32);
        let top = if p.has_text() {
            p.text(
                &title,
                (w / 2, 8),
                20.0,
                (HPos::Center, VPos::Top),
                false,
                &BLACK,
            )?;
            38
        } else {
            10
        };
        let n = metrics.series.len();
        let cols = if n <= 2 { 1 } else { 2 };
        let rows = n.div_ceil(cols).max(1);
        let (cell_w, cell_h) = (w / cols as i32, (h - top) / rows as i32);
        let (left, bottom, head) = if p.has_text() {
            (78, 34, 22)
        } else {
            (12, 12, 8)
        };
        for (k, (name, pts)) in metrics.series.iter().enumerate() {
            let (cx, cy) = ((k % cols) as i32 * cell_w, top + (k / cols) as i32 * cell_h);
            let Some(y) = padded_range(pts.iter().map(|q| q.1)) else {
                continue;
            };
            let x = padded_range(pts.iter().map(|q| q.0)).unwrap_or((0.0, 1.0));
            let frame = Frame {
                px: (
                    cx + left,
                    cy + head,
                    cx + cell_w - 16,
                    cy + cell_h - bottom - 6,
                ),
                x,
                y,
            };
            frame.draw_axes(p, true, 12.0)?;
            let color = PALETTE[k % PALETTE.len()];
            let last = pts.last().map_or(f64::NAN, |q| q.1);
            p.text(
                &format!("{name} (last {})", value_label(last)),
                (frame.px.0, cy + head - 4),
                14.0,
                (HPos::Left, VPos::Bottom),
                false,
                &BLACK,
            )?;
            let path: Vec<(i32, i32)> = pts.iter().map(|&(s, v)| frame.map(s, v)).collect();
            if path.len() == 1 {
                p.area
                    .draw(&Circle::new(path[0], 3, color.filled()))
                    .map_err(err)?;
            } else {
                p.path(path, &color, 2)?;
            }
            if k + cols >= n {
                p.text(
                    "step",
                    ((frame.px.0 + frame.px.2) / 2, frame.px.3 + 20),
                    12.0,
                    (HPos::Center, VPos::Top),
                    false,
                    &AXIS,
                )?;
            }
        }
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------
// Confusion matrix

/// White → dark blue, `t` in `[0, 1]`.
fn blues(t: f64) -> RGBColor {
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let lerp = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
    RGBColor(lerp(247.0, 8.0), lerp(251.0, 48.0), lerp(255.0, 107.0))
}

fn shorten(name: &str, max_chars: usize) -> String {
    if name.chars().count() <= max_chars {
        return name.to_string();
    }
    let mut s: String = name.chars().take(max_chars.saturating_sub(1)).collect();
    s.push('…');
    s
}

/// Draws a confusion matrix `[c, c]` (rows = true, columns = predicted) as a heat map and
/// writes the PNG `out_png`. Colour: the row-normalised fraction (recall of the true
/// class; rows without samples stay white); each cell shows its count when there is room.
/// Classes are named by `class_names [c]` (long names shortened) or by index.
///
/// # Errors
/// A non-square or empty matrix, `class_names` of the wrong length, an invalid size or
/// font, drawing or writing the file fails.
pub fn plot_confusion(
    confusion: &[Vec<u64>],
    class_names: Option<&[String]>,
    out_png: &Path,
    opts: &PlotOptions,
) -> Result<PlotReport, EvalError> {
    let c = confusion.len();
    if c == 0 {
        return Err(EvalError::EmptySplit {
            split: "confusion matrix to plot".into(),
        });
    }
    if let Some((i, row)) = confusion.iter().enumerate().find(|(_, r)| r.len() != c) {
        return Err(EvalError::ShapeMismatch {
            what: format!("length of confusion-matrix row {i} (square matrix)"),
            expected: c,
            got: row.len(),
        });
    }
    let names: Vec<String> = match class_names {
        Some(n) if n.len() != c => {
            return Err(EvalError::ShapeMismatch {
                what: "number of class names (one per confusion-matrix row)".into(),
                expected: c,
                got: n.len(),
            })
        }
        Some(n) => n.iter().map(|s| shorten(s, 18)).collect(),
        None => (0..c).map(|i| i.to_string()).collect(),
    };
    let total: u64 = confusion.iter().flatten().sum();
    let title = opts.title.clone().unwrap_or_else(|| {
        format!("confusion matrix (n = {total}; colour: fraction of the true class)")
    });
    let size = opts.size.unwrap_or((900, 900));
    render(out_png, size, &opts.font, |p| {
        let (w, h) = (size.0 as i32, size.1 as i32);
        let (top, right) = if p.has_text() { (44, 70) } else { (12, 40) };
        // Label margins from the widest class name (capped), at a provisional size.
        let avail = (w - right).min(h - top);
        let provisional = ((avail as f64 * 0.75 / c as f64) * 0.6).clamp(7.0, 14.0);
        let widest = names
            .iter()
            .map(|n| p.text_width(n, provisional))
            .max()
            .unwrap_or(0);
        let margin = if p.has_text() {
            (widest + 34).min(avail / 3)
        } else {
            12
        };
        let side = (w - right - margin).min(h - top - margin).max(c as i32);
        let cell = side / c as i32;
        let side = cell * c as i32;
        let (x0, y0) = (margin, top);
        let name_px = (cell as f64 * 0.6).clamp(7.0, 14.0);
        p.text(
            &title,
            (w / 2, 10),
            18.0,
            (HPos::Center, VPos::Top),
            false,
            &BLACK,
        )?;
        for (t, row) in confusion.iter().enumerate() {
            let support: u64 = row.iter().sum();
            for (q, &count) in row.iter().enumerate() {
                let frac = if support > 0 {
                    count as f64 / support as f64
                } else {
                    0.0
                };
                let a = (x0 + q as i32 * cell, y0 + t as i32 * cell);
                let b = (a.0 + cell, a.1 + cell);
                p.rect(a, b, &blues(frac), true)?;
                if cell >= 16 {
                    let fg = if frac > 0.5 { WHITE } else { BLACK };
                    let label = count.to_string();
                    let px = (cell as f64 * 0.4).min(16.0);
                    if p.text_width(&label, px) < cell - 2 {
                        p.text(
                            &label,
                            (a.0 + cell / 2, a.1 + cell / 2),
                            px,
                            (HPos::Center, VPos::Center),
                            false,
                            &fg,
                        )?;
                    }
                }
            }
        }
        p.rect((x0, y0), (x0 + side, y0 + side), &AXIS, false)?;
        if cell >= 7 {
            for (i, n) in names.iter().enumerate() {
                let mid = i as i32 * cell + cell / 2;
                p.text(
                    n,
                    (x0 - 4, y0 + mid),
                    name_px,
                    (HPos::Right, VPos::Center),
                    false,
                    &BLACK,
                )?;
                p.text(
                    n,
                    (x0 + mid, y0 + side + 4),
                    name_px,
                    (HPos::Right, VPos::Center),
                    true,
                    &BLACK,
                )?;
            }
        }
        p.text(
            "true class",
            (12, y0 + side / 2),
            14.0,
            (HPos::Center, VPos::Top),
            true,
            &AXIS,
        )?;
        p.text(
            "predicted class",
            (x0 + side / 2, h - 6),
            14.0,
            (HPos::Center, VPos::Bottom),
            false,
            &AXIS,
        )?;
        // Colour scale.
        let bx = x0 + side + 16;
        let steps = 50;
        for k in 0..steps {
            let ya = y0 + side - (k + 1) * side / steps;
            let yb = y0 + side - k * side / steps;
            p.rect(
                (bx, ya),
                (bx + 14, yb),
                &blues((k as f64 + 0.5) / steps as f64),
                true,
            )?;
        }
        p.rect((bx, y0), (bx + 14, y0 + side), &AXIS, false)?;
        for (v, label) in [(0.0, "0"), (0.5, "0.5"), (1.0, "1")] {
            p.text(
                label,
                (bx + 18, y0 + side - (v * side as f64) as i32),
                12.0,
                (HPos::Left, VPos::Center),
                false,
                &AXIS,
            )?;
        }
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------
// Comparison over seeds

/// Summarises `rows` over seeds ([`summarise`]) and plots them with [`plot_comparison`].
pub fn plot_comparison_rows(
    rows: &[ResultRow],
    metric: &str,
    out_png: &Path,
    opts: &PlotOptions,
) -> Result<PlotReport, EvalError> {
    plot_comparison(&summarise(rows), metric, out_png, opts)
}

/// One bar per summary row: the mean over seeds of `metric` (`accuracy`, `macro_f1`,
/// `balanced_accuracy` or an extra metric such as `map_macro` or `r2`, see
/// [`SummaryRow::metric`]) with ±sd error bars (none for one seed), coloured by run and
/// labelled by whichever of run / task / protocol / features differ between the bars.
/// Rows without a finite value of the metric are left out.
///
/// # Errors
/// No row has a finite value of `metric`; an invalid size or font; drawing or writing the
/// file fails.
pub fn plot_comparison(
    summary: &[SummaryRow],
    metric: &str,
    out_png: &Path,
    opts: &PlotOptions,
) -> Result<PlotReport, EvalError> {
    let bars: Vec<(&SummaryRow, f64, f64)> = summary
        .iter()
        .filter_map(|r| {
            let m = r.metric(metric)?;
            let sd = m.std.filter(|s| s.is_finite()).unwrap_or(0.0);
            m.mean.is_finite().then_some((r, m.mean, sd))
        })
        .collect();
    if bars.is_empty() {
        return Err(EvalError::InvalidConfig {
            what: format!("metric to plot in {}", out_png.display()),
            reason: format!("no summary row has a finite value of `{metric}`"),
        });
    }
    type Field = fn(&SummaryRow) -> &str;
    let fields: [Field; 4] = [
        |r| r.run.as_str(),
        |r| r.task.as_str(),
        |r| r.protocol.as_str(),
        |r| r.features.as_str(),
    ];
    let varying: Vec<Field> = fields
        .iter()
        .copied()
        .filter(|f| bars.iter().any(|b| f(b.0) != f(bars[0].0)))
        .collect();
    let label = |r: &SummaryRow| -> String {
        if varying.is_empty() {
            return r.run.clone();
        }
        varying.iter().map(|f| f(r)).collect::<Vec<_>>().join(" / ")
    };
    let labels: Vec<String> = bars.iter().map(|b| shorten(&label(b.0), 40)).collect();
    let mut runs: Vec<&str> = Vec::new();
    for b in &bars {
        if !runs.contains(&b.0.run.as_str()) {
            runs.push(&b.0.run);
        }
    }
    let seeds = bars.iter().map(|b| b.0.n_seeds).max().unwrap_or(0);
    let title = opts
        .title
        .clone()
        .unwrap_or_else(|| format!("{metric}: mean ± sd over seeds (up to {seeds} per bar)"));
    let lo = bars.iter().map(|b| b.1 - b.2).fold(0.0f64, f64::min);
    let hi = bars.iter().map(|b| b.1 + b.2).fold(0.0f64, f64::max);
    // Room for the value labels beyond the bars, on the side(s) the bars extend to.
    let (lo, hi) = if hi - lo > 0.0 {
        let room = |extends: bool| if extends { 0.12 } else { 0.02 } * (hi - lo);
        (lo - room(lo < 0.0), hi + room(hi > 0.0))
    } else {
        (lo, lo + 1.0)
    };
    let size = opts.size.unwrap_or((1000, 600));
    render(out_png, size, &opts.font, |p| {
        let (w, h) = (size.0 as i32, size.1 as i32);
        let n = bars.len() as i32;
        let label_px = 12.0;
        let left = if p.has_text() { 80 } else { 14 };
        let slot_guess = (w - left - 20) / n;
        let widest = labels
            .iter()
            .map(|l| p.text_width(l, label_px))
            .max()
            .unwrap_or(0);
        let vertical = widest > slot_guess - 6;
        let bottom = match (p.has_text(), vertical) {
            (false, _) => 14,
            (true, false) => 40,
            (true, true) => (widest + 20).min(h / 3),
        };
        let top = if p.has_text() { 44 } else { 12 };
        let frame = Frame {
            px: (left, top, w - 20, h - bottom),
            x: (-0.5, n as f64 - 0.5),
            y: (lo, hi),
        };
        p.text(
            &title,
            (w / 2, 10),
            18.0,
            (HPos::Center, VPos::Top),
            false,
            &BLACK,
        )?;
        frame.draw_axes(p, false, 12.0)?;
        p.text(
            metric,
            (16, (top + h - bottom) / 2),
            14.0,
            (HPos::Center, VPos::Top),
            true,
            &AXIS,
        )?;
        let slot = (frame.px.2 - frame.px.0) / n.max(1);
        for (i, ((row, mean, sd), name)) in bars.iter().zip(&labels).enumerate() {
            let x = i as f64;
            let color = PALETTE[runs.iter().position(|r| *r == row.run).unwrap_or(0) % 10];
            let a = frame.map(x - 0.35, 0.0f64.max(lo));
            let b = frame.map(x + 0.35, *mean);
            p.rect((a.0, a.1.min(b.1)), (b.0, a.1.max(b.1)), &color, true)?;
            if *sd > 0.0 {
                let (cx, y_lo) = frame.map(x, mean - sd);
                let (_, y_hi) = frame.map(x, mean + sd);
                let cap = ((b.0 - a.0) / 4).max(2);
                p.line((cx, y_lo), (cx, y_hi), &BLACK, 2)?;
                p.line((cx - cap, y_lo), (cx + cap, y_lo), &BLACK, 2)?;
                p.line((cx - cap, y_hi), (cx + cap, y_hi), &BLACK, 2)?;
            }
            // The value beyond the end of the error bar, away from zero.
            let (cx, y_end, anchor) = if *mean >= 0.0 {
                let (cx, y) = frame.map(x, mean + sd);
                (cx, y - 4, VPos::Bottom)
            } else {
                let (cx, y) = frame.map(x, mean - sd);
                (cx, y + 4, VPos::Top)
            };
            let value = match (row.n_seeds > 1, *sd > 0.0) {
                (true, true) => format!("{} ± {}", value_label(*mean), value_label(*sd)),
                _ => value_label(*mean),
            };
            if p.text_width(&value, 11.0) < slot - 2 {
                p.text(
                    &value,
                    (cx, y_end),
                    11.0,
                    (HPos::Center, anchor),
                    false,
                    &BLACK,
                )?;
            }
            if vertical {
                p.text(
                    name,
                    (cx, frame.px.3 + 6),
                    label_px,
                    (HPos::Right, VPos::Center),
                    true,
                    &BLACK,
                )?;
            } else {
                p.text(
                    name,
                    (cx, frame.px.3 + 8),
                    label_px,
                    (HPos::Center, VPos::Top),
                    false,
                    &BLACK,
                )?;
            }
        }
        // The zero line when the range spans it.
        if lo < 0.0 {
            let (x0, y) = frame.map(-0.5, 0.0);
            p.line((x0, y), (frame.px.2, y), &AXIS, 1)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_nice() {
        let (t, step) = nice_ticks(0.0, 1.0, 5);
        assert_eq!(step, 0.2);
        assert_eq!(t.len(), 6);
        let (t, step) = nice_ticks(-3.2, 17.0, 5);
        assert_eq!(step, 5.0);
        assert_eq!(t, vec![0.0, 5.0, 10.0, 15.0]);
        assert_eq!(nice_ticks(1.0, 1.0, 5).0, vec![1.0]);
        assert_eq!(tick_label(0.30000000000000004, 0.1, false), "0.3");
        assert_eq!(tick_label(2000.0, 500.0, false), "2000");
        assert_eq!(tick_label(3e-5, 1e-5, true), "3.0e-5");
        // One notation per axis: learning-rate ticks 2e-4 apart are all scientific.
        let (t, step) = nice_ticks(0.0, 1.05e-3, 5);
        assert!(scientific(&t, step));
        assert_eq!(tick_label(1e-3, step, true), "1.0e-3");
        let (t, step) = nice_ticks(0.0, 2.0, 5);
        assert!(!scientific(&t, step));
        assert_eq!(padded_range([2.0, 2.0].into_iter()), Some((1.9, 2.1)));
        assert_eq!(padded_range([f64::NAN].into_iter()), None);
    }

    #[test]
    fn bad_sizes_and_fonts_are_errors() {
        let out = std::env::temp_dir().join("tessera-eval-never-written.png");
        let cm = vec![vec![1, 0], vec![0, 1]];
        let opts = PlotOptions {
            size: Some((10, 10)),
            ..PlotOptions::default()
        };
        assert!(matches!(
            plot_confusion(&cm, None, &out, &opts),
            Err(EvalError::InvalidConfig { .. })
        ));
        let opts = PlotOptions {
            font: PlotFont::File("/nonexistent/font.ttf".into()),
            ..PlotOptions::default()
        };
        assert!(matches!(
            plot_confusion(&cm, None, &out, &opts),
            Err(EvalError::Plot { .. })
        ));
        // A file that is not a font.
        let not_font =
            std::env::temp_dir().join(format!("tessera-not-a-font-{}.ttf", std::process::id()));
        std::fs::write(&not_font, b"definitely not a font").unwrap();
        let opts = PlotOptions {
            font: PlotFont::File(not_font.clone()),
            ..PlotOptions::default()
        };
        assert!(matches!(
            plot_confusion(&cm, None, &out, &opts),
            Err(EvalError::Plot { .. })
        ));
        std::fs::remove_file(&not_font).unwrap();
        assert!(!out.exists());
    }
}
