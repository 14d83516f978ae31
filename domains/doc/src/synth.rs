//! Generated pages for the quick start and the tests: small "documents" of two layouts
//! (`letter`: one column of text lines under a heading; `form`: label/field pairs with
//! ruled boxes), written the ways scanners and writers store pages: grey PNG with a pHYs
//! resolution, RGB PNG without one, JPEG with a JFIF density, multi-page LZW/PackBits/
//! Deflate TIFF, and CCITT Group 4 bilevel TIFF, at 100–200 dpi. The same paper size is
//! used throughout, so the pages differ in resolution and encoding but not in physical
//! layout.

use crate::DocError;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use tessera_tokens::Rng;

/// Page size of the demo pages in mm (a small card, to keep tests fast).
pub const PAGE_MM: (f64, f64) = (60.0, 80.0);

fn io(path: &Path) -> impl Fn(std::io::Error) -> DocError + '_ {
    move |source| DocError::Io {
        path: path.into(),
        source,
    }
}

fn fmt_err(path: &Path) -> impl Fn(String) -> DocError + '_ {
    move |reason| DocError::Format {
        path: path.into(),
        reason,
    }
}

/// Grey page pixels (255 = paper) of a layout at `dpi`.
pub fn draw_page(layout: &str, dpi: f64, rng: &mut Rng) -> (usize, usize, Vec<u8>) {
    let px = |mm: f64| (mm * dpi / 25.4).round() as usize;
    let (w, h) = (px(PAGE_MM.0), px(PAGE_MM.1));
    let mut d = vec![255u8; w * h];
    let mut rect = |x0: f64, y0: f64, x1: f64, y1: f64, v: u8| {
        for y in px(y0).min(h)..px(y1).min(h) {
            for x in px(x0).min(w)..px(x1).min(w) {
                d[y * w + x] = v;
            }
        }
    };
    let margin = 5.0 + rng.uniform() * 2.0;
    if layout == "letter" {
        // Heading, then justified lines of "words".
        rect(
            margin,
            margin,
            margin + 25.0 + rng.uniform() * 15.0,
            margin + 4.0,
            20,
        );
        let mut y = margin + 9.0;
        while y < PAGE_MM.1 - margin - 3.0 {
            let mut x = margin;
            while x < PAGE_MM.0 - margin - 3.0 {
                let word = 2.0 + rng.uniform() * 6.0;
                rect(x, y, (x + word).min(PAGE_MM.0 - margin), y + 1.8, 40);
                x += word + 1.2;
            }
            y += 3.5;
        }
    } else {
        // Label: field box pairs with rules.
        let mut y = margin;
        while y < PAGE_MM.1 - margin - 6.0 {
            let label = 8.0 + rng.uniform() * 10.0;
            rect(margin, y + 1.0, margin + label, y + 3.0, 40);
            let fx = margin + label + 3.0;
            rect(fx, y, PAGE_MM.0 - margin, y + 0.4, 0);
            rect(fx, y + 5.0, PAGE_MM.0 - margin, y + 5.4, 0);
            rect(fx, y, fx + 0.4, y + 5.4, 0);
            rect(PAGE_MM.0 - margin - 0.4, y, PAGE_MM.0 - margin, y + 5.4, 0);
            if rng.uniform() < 0.6 {
                rect(
                    fx + 2.0,
                    y + 1.8,
                    fx + 2.0 + rng.uniform() * 20.0,
                    y + 3.6,
                    90,
                );
            }
            y += 8.0;
        }
    }
    // Scanner noise.
    for v in d.iter_mut() {
        let n = (rng.normal() * 6.0) as i32;
        *v = (*v as i32 + n).clamp(0, 255) as u8;
    }
    (w, h, d)
}

/// Writes a grey or RGB PNG, with a pHYs resolution when `dpi` is given.
pub fn write_png(
    path: &Path,
    w: usize,
    h: usize,
    channels: usize,
    data: &[u8],
    dpi: Option<f64>,
) -> Result<(), DocError> {
    let f = std::fs::File::create(path).map_err(io(path))?;
    let mut enc = png::Encoder::new(BufWriter::new(f), w as u32, h as u32);
    enc.set_color(if channels == 1 {
        png::ColorType::Grayscale
    } else {
        png::ColorType::Rgb
    });
    enc.set_depth(png::BitDepth::Eight);
    if let Some(dpi) = dpi {
        let ppm = (dpi / 0.0254).round() as u32;
        enc.set_pixel_dims(Some(png::PixelDimensions {
            xppu: ppm,
            yppu: ppm,
            unit: png::Unit::Meter,
        }));
    }
    let e = |e: png::EncodingError| fmt_err(path)(format!("PNG: {e}"));
    let mut wr = enc.write_header().map_err(e)?;
    wr.write_image_data(data).map_err(e)?;
    wr.finish().map_err(e)
}

/// Writes a JPEG with a JFIF density of `dpi` (grey or RGB).
pub fn write_jpeg(
    path: &Path,
    w: usize,
    h: usize,
    channels: usize,
    data: &[u8],
    dpi: u16,
) -> Result<(), DocError> {
    use image::codecs::jpeg::{JpegEncoder, PixelDensity, PixelDensityUnit};
    let f = std::fs::File::create(path).map_err(io(path))?;
    let mut enc = JpegEncoder::new_with_quality(BufWriter::new(f), 90);
    enc.set_pixel_density(PixelDensity {
        density: (dpi, dpi),
        unit: PixelDensityUnit::Inches,
    });
    let ct = if channels == 1 {
        image::ExtendedColorType::L8
    } else {
        image::ExtendedColorType::Rgb8
    };
    enc.encode(data, w as u32, h as u32, ct)
        .map_err(|e| fmt_err(path)(format!("JPEG: {e}")))
}

/// TIFF compressions the demo writer uses.
#[derive(Debug, Clone, Copy)]
pub enum TiffCompression {
    None,
    Lzw,
    Deflate,
    PackBits,
}

/// Writes grey pages as one multi-page TIFF at `dpi`.
pub fn write_tiff(
    path: &Path,
    pages: &[(usize, usize, Vec<u8>)],
    dpi: u32,
    c: TiffCompression,
) -> Result<(), DocError> {
    use tiff::encoder::{colortype, Compression, Rational, TiffEncoder};
    use tiff::tags::ResolutionUnit;
    let f = std::fs::File::create(path).map_err(io(path))?;
    let e = |e: tiff::TiffError| fmt_err(path)(format!("TIFF: {e}"));
    let compression = match c {
        TiffCompression::None => Compression::Uncompressed,
        TiffCompression::Lzw => Compression::Lzw,
        TiffCompression::Deflate => Compression::Deflate(Default::default()),
        TiffCompression::PackBits => Compression::Packbits,
    };
    let mut enc = TiffEncoder::new(BufWriter::new(f))
        .map_err(e)?
        .with_compression(compression);
    for (w, h, d) in pages {
        let mut img = enc
            .new_image::<colortype::Gray8>(*w as u32, *h as u32)
            .map_err(e)?;
        img.resolution(ResolutionUnit::Inch, Rational { n: dpi, d: 1 });
        img.write_data(d).map_err(e)?;
    }
    Ok(())
}

/// Writes a grey page as a bilevel CCITT Group 4 TIFF (WhiteIsZero) at 200 dpi (the
/// resolution `fax::tiff::wrap` records).
pub fn write_g4_tiff(path: &Path, w: usize, h: usize, data: &[u8]) -> Result<(), DocError> {
    let mut enc = fax::encoder::Encoder::new(fax::VecWriter::new());
    for y in 0..h {
        let row = &data[y * w..(y + 1) * w];
        enc.encode_line(
            row.iter().map(|&v| {
                if v < 128 {
                    fax::Color::Black
                } else {
                    fax::Color::White
                }
            }),
            w as u32,
        )
        .map_err(|_| fmt_err(path)("G4 encoder failed".into()))?;
    }
    let bits = enc
        .finish()
        .map_err(|_| fmt_err(path)("G4 encoder failed".into()))?
        .finish();
    std::fs::write(path, fax::tiff::wrap(&bits, w as u32, h as u32)).map_err(io(path))
}

/// Writes `n` labelled pages (half `letter`, half `form`) in mixed formats and resolutions
/// under `dir`, and `labels.csv` (`path,label,split`; every fourth page is a test page).
pub fn write_dataset(dir: &Path, n: usize, seed: u64) -> Result<PathBuf, DocError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut rng = Rng::new(seed);
    let mut rows = vec!["path,label,split".to_string()];
    for i in 0..n {
        let label = if i % 2 == 0 { "letter" } else { "form" };
        let split = if i % 4 == 3 { "test" } else { "train" };
        let kind = (i / 2) % 5;
        let name = match kind {
            0 => {
                let (w, h, d) = draw_page(label, 100.0, &mut rng);
                let name = format!("page{i:03}.png");
                write_png(&dir.join(&name), w, h, 1, &d, Some(100.0))?;
                name
            }
            1 => {
                let (w, h, d) = draw_page(label, 150.0, &mut rng);
                let rgb: Vec<u8> = d
                    .iter()
                    .flat_map(|&v| [v, v.saturating_sub(8), v])
                    .collect();
                let name = format!("page{i:03}_rgb.png");
                write_png(&dir.join(&name), w, h, 3, &rgb, None)?;
                // No pHYs: the manifest gives the resolution.
                format!("{name}#dpi=150")
            }
            2 => {
                let (w, h, d) = draw_page(label, 120.0, &mut rng);
                let name = format!("page{i:03}.jpg");
                write_jpeg(&dir.join(&name), w, h, 1, &d, 120)?;
                name
            }
            3 => {
                let a = draw_page(label, 200.0, &mut rng);
                let b = draw_page(
                    if label == "letter" { "form" } else { "letter" },
                    200.0,
                    &mut rng,
                );
                let name = format!("page{i:03}.tif");
                let c = [
                    TiffCompression::Lzw,
                    TiffCompression::PackBits,
                    TiffCompression::Deflate,
                ][i % 3];
                write_tiff(&dir.join(&name), &[b, a], 200, c)?;
                format!("{name}#page=2")
            }
            _ => {
                let (w, h, d) = draw_page(label, 200.0, &mut rng);
                let name = format!("page{i:03}_g4.tif");
                write_g4_tiff(&dir.join(&name), w, h, &d)?;
                name
            }
        };
        rows.push(format!("{name},{label},{split}"));
    }
    let manifest = dir.join("labels.csv");
    std::fs::write(&manifest, rows.join("\n") + "\n").map_err(io(&manifest))?;
    Ok(manifest)
}
