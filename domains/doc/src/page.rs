//! Page rasters as scanners and writers store them: PNG (any bit depth, palette,
//! alpha, pHYs resolution), JPEG (JFIF density, EXIF orientation and resolution), TIFF
//! (multi-page; uncompressed, LZW, Deflate, PackBits, JPEG; bilevel pages in CCITT
//! Group 4 and 1-D Group 3 fax; 1/2/4/8/16-bit grey, palette, RGB(A), CMYK; both
//! photometric conventions; resolution and orientation tags). The format is found from
//! the file's first bytes, not its name. A page's size is checked against a pixel limit
//! before anything is allocated for its pixels, so a header claiming 100 000 × 100 000 px
//! is refused at once. PDF pages go through [`crate::pdf`].

use crate::DocError;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// A decoded page: 8-bit grey (1 channel, 255 = white) or RGB (3 channels), row-major,
/// upright (orientation applied).
#[derive(Debug, Clone, PartialEq)]
pub struct Raster {
    pub width: usize,
    pub height: usize,
    pub channels: usize,
    pub data: Vec<u8>,
    /// Resolution (x, y) in dots per inch, when the file declares a plausible one.
    pub dpi: Option<(f64, f64)>,
}

/// File formats by signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Png,
    Jpeg,
    Tiff,
    Pdf,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Png => "PNG",
            Format::Jpeg => "JPEG",
            Format::Tiff => "TIFF",
            Format::Pdf => "PDF",
        }
    }
}

/// What `inspect` reports of a page without decoding its pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct PageInfo {
    pub format: Format,
    pub width: u64,
    pub height: u64,
    /// Pages (frames, IFDs) in the file.
    pub pages: usize,
    /// Pixel layout, e.g. `grey 8-bit`, `bilevel`, `RGB 8-bit`, `palette 4-bit`.
    pub pixel: String,
    pub compression: String,
    pub dpi: Option<(f64, f64)>,
    /// EXIF/TIFF orientation 1..8 (1 = upright).
    pub orientation: u16,
    /// PDF only: whether the file is encrypted.
    pub encrypted: bool,
}

/// Extensions of page files.
pub const PAGE_EXTENSIONS: [&str; 6] = ["png", "jpg", "jpeg", "tif", "tiff", "pdf"];

/// The plausible range of a declared resolution; others (0, 1, 65535) are ignored.
const DPI_RANGE: std::ops::RangeInclusive<f64> = 10.0..=20_000.0;

fn plausible(dpi: (f64, f64)) -> Option<(f64, f64)> {
    (DPI_RANGE.contains(&dpi.0) && DPI_RANGE.contains(&dpi.1)).then_some(dpi)
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> DocError + '_ {
    move |source| DocError::Io {
        path: path.into(),
        source,
    }
}

/// The format of `path` from its first bytes.
pub fn sniff(path: &Path) -> Result<Format, DocError> {
    let mut head = [0u8; 8];
    let mut f = File::open(path).map_err(io_err(path))?;
    let n = read_up_to(&mut f, &mut head).map_err(io_err(path))?;
    let h = &head[..n];
    if h.starts_with(b"\x89PNG\r\n\x1a\n") {
        Ok(Format::Png)
    } else if h.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Ok(Format::Jpeg)
    } else if h.starts_with(b"II*\0")
        || h.starts_with(b"MM\0*")
        || h.starts_with(b"II+\0")
        || h.starts_with(b"MM\0+")
    {
        Ok(Format::Tiff)
    } else if h.starts_with(b"%PDF") {
        Ok(Format::Pdf)
    } else if n == 0 {
        Err(DocError::format(path, "empty file"))
    } else {
        Err(DocError::format(
            path,
            format!(
                "not a page this reader knows (first bytes {:02x?}; reads PNG, JPEG, TIFF and PDF)",
                h
            ),
        ))
    }
}

fn read_up_to(f: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn check_size(
    path: &Path,
    w: u64,
    h: u64,
    channels: u64,
    max_pixels: usize,
) -> Result<(), DocError> {
    if w == 0 || h == 0 {
        return Err(DocError::format(path, format!("page of {w}×{h} px")));
    }
    if w.saturating_mul(h).saturating_mul(channels.max(1)) > max_pixels as u64 {
        return Err(DocError::TooLarge {
            path: path.into(),
            width: w,
            height: h,
            limit: max_pixels,
        });
    }
    Ok(())
}

/// The page's structure without decoding its pixels (PDF: see [`crate::pdf::info`]).
pub fn probe(path: &Path) -> Result<PageInfo, DocError> {
    match sniff(path)? {
        Format::Png => probe_png(path),
        Format::Jpeg => probe_jpeg(path),
        Format::Tiff => probe_tiff(path),
        Format::Pdf => crate::pdf::info(path),
    }
}

/// Decodes page `page` (0-based) of a raster file; `max_pixels` bounds width × height ×
/// channels. PDF pages are rendered with [`crate::pdf::render`] instead.
pub fn read(path: &Path, page: usize, max_pixels: usize) -> Result<Raster, DocError> {
    let format = sniff(path)?;
    if page > 0 && format != Format::Tiff {
        return Err(DocError::format(
            path,
            format!(
                "page {} asked for; a {} file holds one page",
                page + 1,
                format.name()
            ),
        ));
    }
    match format {
        Format::Png => read_png(path, max_pixels),
        Format::Jpeg => read_jpeg(path, max_pixels),
        Format::Tiff => read_tiff(path, page, max_pixels),
        Format::Pdf => Err(DocError::format(
            path,
            "a PDF is rendered, not decoded (use crate::pdf::render)",
        )),
    }
}

// ---------------------------------------------------------------- PNG

fn png_err(path: &Path) -> impl Fn(png::DecodingError) -> DocError + '_ {
    move |e| DocError::format(path, format!("PNG: {e}"))
}

fn png_reader(path: &Path, max_pixels: usize) -> Result<png::Reader<BufReader<File>>, DocError> {
    let f = File::open(path).map_err(io_err(path))?;
    let limits = png::Limits {
        bytes: max_pixels.saturating_mul(2).max(1 << 20),
    };
    let mut dec = png::Decoder::new_with_limits(BufReader::new(f), limits);
    dec.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    dec.read_info().map_err(png_err(path))
}

fn png_dpi(info: &png::Info) -> Option<(f64, f64)> {
    let d = info.pixel_dims?;
    (d.unit == png::Unit::Meter)
        .then(|| plausible((d.xppu as f64 * 0.0254, d.yppu as f64 * 0.0254)))
        .flatten()
}

fn png_pixel(info: &png::Info) -> String {
    let depth = info.bit_depth as u8;
    match info.color_type {
        png::ColorType::Grayscale if depth == 1 => "bilevel".into(),
        png::ColorType::Grayscale => format!("grey {depth}-bit"),
        png::ColorType::GrayscaleAlpha => format!("grey+alpha {depth}-bit"),
        png::ColorType::Rgb => format!("RGB {depth}-bit"),
        png::ColorType::Rgba => format!("RGBA {depth}-bit"),
        png::ColorType::Indexed => format!("palette {depth}-bit"),
    }
}

fn probe_png(path: &Path) -> Result<PageInfo, DocError> {
    // Header only: the limit is irrelevant until pixels are read.
    let reader = png_reader(path, usize::MAX / 4)?;
    let info = reader.info();
    Ok(PageInfo {
        format: Format::Png,
        width: info.width as u64,
        height: info.height as u64,
        pages: 1,
        pixel: png_pixel(info),
        compression: if info.interlaced {
            "deflate, Adam7 interlaced".into()
        } else {
            "deflate".into()
        },
        dpi: png_dpi(info),
        orientation: 1,
        encrypted: false,
    })
}

fn read_png(path: &Path, max_pixels: usize) -> Result<Raster, DocError> {
    let mut reader = png_reader(path, max_pixels)?;
    let (w, h) = (reader.info().width as u64, reader.info().height as u64);
    check_size(path, w, h, 1, max_pixels)?;
    let dpi = png_dpi(reader.info());
    let (ct, _) = reader.output_color_type();
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| DocError::format(path, "PNG: image too large for this platform"))?;
    let mut buf = vec![0u8; size];
    let out = reader.next_frame(&mut buf).map_err(png_err(path))?;
    buf.truncate(out.buffer_size());
    let (w, h) = (w as usize, h as usize);
    let stride = out.line_size;
    let src_ch = ct.samples();
    let mut data = Vec::with_capacity(w * h * 3);
    let channels = if src_ch <= 2 { 1 } else { 3 };
    for y in 0..h {
        let row = &buf[y * stride..y * stride + w * src_ch];
        for px in row.chunks_exact(src_ch) {
            match src_ch {
                1 => data.push(px[0]),
                2 => data.push(over_white(px[0], px[1])),
                3 => data.extend_from_slice(px),
                _ => data.extend(px[..3].iter().map(|&v| over_white(v, px[3]))),
            }
        }
    }
    Ok(Raster {
        width: w,
        height: h,
        channels,
        data,
        dpi,
    })
}

/// A value with alpha composited over white paper.
fn over_white(v: u8, a: u8) -> u8 {
    ((v as u32 * a as u32 + 255 * (255 - a as u32) + 127) / 255) as u8
}

// ---------------------------------------------------------------- JPEG

/// What the markers before the scan say.
#[derive(Debug, Default, Clone, PartialEq)]
struct JpegMeta {
    size: Option<(u64, u64)>,
    components: u8,
    progressive: bool,
    dpi: Option<(f64, f64)>,
    orientation: u16,
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

/// Walks the markers up to the first scan: SOF (size, components), APP0 JFIF density,
/// APP1 EXIF orientation and resolution.
fn jpeg_meta(path: &Path, bytes: &[u8]) -> Result<JpegMeta, DocError> {
    let mut m = JpegMeta {
        orientation: 1,
        ..Default::default()
    };
    let mut exif_dpi = None;
    let mut i = 2;
    loop {
        while i < bytes.len() && bytes[i] != 0xFF {
            i += 1; // tolerate garbage between segments, as decoders do
        }
        while i < bytes.len() && bytes[i] == 0xFF {
            i += 1;
        }
        if i >= bytes.len() {
            return Err(DocError::format(
                path,
                "JPEG: truncated before the first scan",
            ));
        }
        let marker = bytes[i];
        i += 1;
        if marker == 0xD8 || marker == 0x01 || (0xD0..=0xD7).contains(&marker) {
            continue;
        }
        if marker == 0xD9 {
            return Err(DocError::format(path, "JPEG: end of image before any scan"));
        }
        if i + 2 > bytes.len() {
            return Err(DocError::format(path, "JPEG: truncated segment header"));
        }
        let len = be16(&bytes[i..]) as usize;
        if len < 2 || i + len > bytes.len() {
            return Err(DocError::format(
                path,
                format!(
                    "JPEG: segment 0xFF{marker:02X} of {len} bytes runs past the end of the file"
                ),
            ));
        }
        let seg = &bytes[i + 2..i + len];
        match marker {
            0xC0..=0xCF if marker != 0xC4 && marker != 0xC8 && marker != 0xCC && seg.len() >= 6 => {
                m.size = Some((be16(&seg[3..]) as u64, be16(&seg[1..]) as u64));
                m.components = seg[5];
                m.progressive = matches!(marker, 0xC2 | 0xC6 | 0xCA | 0xCE);
            }
            0xE0 if seg.len() >= 12 && seg.starts_with(b"JFIF\0") => {
                let (xd, yd) = (be16(&seg[8..]) as f64, be16(&seg[10..]) as f64);
                m.dpi = match seg[7] {
                    1 => plausible((xd, yd)),
                    2 => plausible((xd * 2.54, yd * 2.54)),
                    _ => None,
                };
            }
            0xE1 if seg.starts_with(b"Exif\0\0") => {
                let (o, d) = exif(&seg[6..]);
                m.orientation = o.filter(|o| (1..=8).contains(o)).unwrap_or(1);
                exif_dpi = d;
            }
            0xDA => break,
            _ => {}
        }
        i += len;
    }
    if m.dpi.is_none() {
        m.dpi = exif_dpi;
    }
    Ok(m)
}

/// Orientation and resolution from an EXIF block (a little TIFF); `None`s when absent or
/// malformed.
fn exif(t: &[u8]) -> (Option<u16>, Option<(f64, f64)>) {
    if t.len() < 8 {
        return (None, None);
    }
    let le = &t[..2] == b"II";
    let u16_at = |o: usize| -> Option<u16> {
        let b = t.get(o..o + 2)?;
        Some(if le {
            u16::from_le_bytes([b[0], b[1]])
        } else {
            u16::from_be_bytes([b[0], b[1]])
        })
    };
    let u32_at = |o: usize| -> Option<u32> {
        let b = t.get(o..o + 4)?;
        Some(if le {
            u32::from_le_bytes([b[0], b[1], b[2], b[3]])
        } else {
            u32::from_be_bytes([b[0], b[1], b[2], b[3]])
        })
    };
    let Some(ifd) = u32_at(4).map(|v| v as usize) else {
        return (None, None);
    };
    let n = u16_at(ifd).unwrap_or(0) as usize;
    let (mut orientation, mut xr, mut yr, mut unit) = (None, None, None, 2u16);
    for e in 0..n.min(512) {
        let at = ifd + 2 + 12 * e;
        let (Some(tag), Some(typ)) = (u16_at(at), u16_at(at + 2)) else {
            break;
        };
        let rational = || -> Option<f64> {
            let off = u32_at(at + 8)? as usize;
            let (num, den) = (u32_at(off)?, u32_at(off + 4)?);
            (den != 0 && typ == 5).then(|| num as f64 / den as f64)
        };
        match tag {
            0x0112 => orientation = u16_at(at + 8),
            0x011A => xr = rational(),
            0x011B => yr = rational(),
            0x0128 => unit = u16_at(at + 8).unwrap_or(2),
            _ => {}
        }
    }
    let dpi = match (xr, yr, unit) {
        (Some(x), Some(y), 2) => plausible((x, y)),
        (Some(x), Some(y), 3) => plausible((x * 2.54, y * 2.54)),
        _ => None,
    };
    (orientation, dpi)
}

fn read_all(path: &Path) -> Result<Vec<u8>, DocError> {
    std::fs::read(path).map_err(io_err(path))
}

fn probe_jpeg(path: &Path) -> Result<PageInfo, DocError> {
    let bytes = read_all(path)?;
    let m = jpeg_meta(path, &bytes)?;
    let (w, h) = m
        .size
        .ok_or_else(|| DocError::format(path, "JPEG: no frame header (SOF) before the scan"))?;
    Ok(PageInfo {
        format: Format::Jpeg,
        width: w,
        height: h,
        pages: 1,
        pixel: match m.components {
            1 => "grey 8-bit".into(),
            3 => "YCbCr/RGB 8-bit".into(),
            4 => "CMYK 8-bit".into(),
            n => format!("{n} components"),
        },
        compression: if m.progressive {
            "JPEG progressive".into()
        } else {
            "JPEG baseline".into()
        },
        dpi: m.dpi,
        orientation: m.orientation,
        encrypted: false,
    })
}

fn read_jpeg(path: &Path, max_pixels: usize) -> Result<Raster, DocError> {
    use image::ImageDecoder;
    let bytes = read_all(path)?;
    let m = jpeg_meta(path, &bytes)?;
    let (w, h) = m
        .size
        .ok_or_else(|| DocError::format(path, "JPEG: no frame header (SOF) before the scan"))?;
    check_size(path, w, h, 1, max_pixels)?;
    let jerr = |e: image::ImageError| DocError::format(path, format!("JPEG: {e}"));
    let mut dec =
        image::codecs::jpeg::JpegDecoder::new(std::io::Cursor::new(&bytes)).map_err(jerr)?;
    let mut limits = image::Limits::default();
    limits.max_alloc = Some((max_pixels as u64).saturating_mul(4));
    dec.set_limits(limits).map_err(jerr)?;
    let ct = dec.color_type();
    let (dw, dh) = dec.dimensions();
    let mut buf = vec![0u8; dec.total_bytes() as usize];
    dec.read_image(&mut buf).map_err(jerr)?;
    let channels = match ct {
        image::ColorType::L8 => 1,
        image::ColorType::Rgb8 => 3,
        other => {
            return Err(DocError::format(
                path,
                format!("JPEG: decoded to {other:?}, not grey or RGB"),
            ))
        }
    };
    let r = Raster {
        width: dw as usize,
        height: dh as usize,
        channels,
        data: buf,
        dpi: m.dpi,
    };
    Ok(orient(r, m.orientation))
}

/// Applies an EXIF/TIFF orientation (1..8) so the page is upright.
pub fn orient(r: Raster, o: u16) -> Raster {
    if o <= 1 || o > 8 {
        return r;
    }
    let (w, h, c) = (r.width, r.height, r.channels);
    let (ow, oh) = if o >= 5 { (h, w) } else { (w, h) };
    let mut out = vec![0u8; r.data.len()];
    for y in 0..oh {
        for x in 0..ow {
            let (sx, sy) = match o {
                2 => (w - 1 - x, y),
                3 => (w - 1 - x, h - 1 - y),
                4 => (x, h - 1 - y),
                5 => (y, x),
                6 => (y, h - 1 - x),
                7 => (w - 1 - y, h - 1 - x),
                _ => (w - 1 - y, x),
            };
            let s = (sy * w + sx) * c;
            let d = (y * ow + x) * c;
            out[d..d + c].copy_from_slice(&r.data[s..s + c]);
        }
    }
    Raster {
        width: ow,
        height: oh,
        channels: c,
        data: out,
        dpi: r.dpi.map(|(x, y)| if o >= 5 { (y, x) } else { (x, y) }),
    }
}

// ---------------------------------------------------------------- TIFF

use tiff::decoder::{Decoder as TiffDecoder, DecodingResult};
use tiff::tags::Tag;
use tiff::ColorType;

type Tiff = TiffDecoder<BufReader<File>>;

fn tiff_err(path: &Path) -> impl Fn(tiff::TiffError) -> DocError + '_ {
    move |e| DocError::format(path, format!("TIFF: {e}"))
}

fn open_tiff(path: &Path, max_pixels: usize) -> Result<Tiff, DocError> {
    let f = File::open(path).map_err(io_err(path))?;
    let mut limits = tiff::decoder::Limits::default();
    limits.decoding_buffer_size = max_pixels.saturating_mul(8).max(1 << 20);
    limits.intermediate_buffer_size = limits.decoding_buffer_size;
    Ok(TiffDecoder::new(BufReader::new(f))
        .map_err(tiff_err(path))?
        .with_limits(limits))
}

/// Pages (IFDs) in the file, at most 100 000 (a cycle of IFDs is an error).
fn tiff_pages(path: &Path, dec: &mut Tiff) -> Result<usize, DocError> {
    let mut n = 1;
    while dec.more_images() {
        dec.next_image().map_err(tiff_err(path))?;
        n += 1;
        if n > 100_000 {
            return Err(DocError::format(path, "TIFF: more than 100 000 pages"));
        }
    }
    Ok(n)
}

fn tag_u16(path: &Path, dec: &mut Tiff, tag: Tag) -> Result<Option<u16>, DocError> {
    dec.find_tag_unsigned::<u16>(tag).map_err(tiff_err(path))
}

fn tiff_dpi(path: &Path, dec: &mut Tiff) -> Result<Option<(f64, f64)>, DocError> {
    let mut get = |tag| -> Result<Option<f64>, DocError> {
        Ok(match dec.find_tag(tag).map_err(tiff_err(path))? {
            Some(tiff::decoder::ifd::Value::Rational(n, d)) if d != 0 => Some(n as f64 / d as f64),
            Some(v) => v
                .clone()
                .into_f64()
                .ok()
                .or_else(|| v.into_u64().ok().map(|x| x as f64)),
            None => None,
        })
    };
    let (x, y) = (get(Tag::XResolution)?, get(Tag::YResolution)?);
    let unit = tag_u16(path, dec, Tag::ResolutionUnit)?.unwrap_or(2);
    Ok(match (x, y.or(x), unit) {
        (Some(x), Some(y), 2) => plausible((x, y)),
        (Some(x), Some(y), 3) => plausible((x * 2.54, y * 2.54)),
        _ => None,
    })
}

fn compression_name(c: u16) -> String {
    match c {
        1 => "none".into(),
        2 => "CCITT modified Huffman (RLE)".into(),
        3 => "CCITT Group 3 fax".into(),
        4 => "CCITT Group 4 fax".into(),
        5 => "LZW".into(),
        6 => "old-style JPEG".into(),
        7 => "JPEG".into(),
        8 | 32946 => "Deflate".into(),
        32773 => "PackBits".into(),
        34887 => "LERC".into(),
        50000 => "ZSTD".into(),
        50001 => "WebP".into(),
        c => format!("unknown ({c})"),
    }
}

fn tiff_pixel(ct: ColorType) -> String {
    match ct {
        ColorType::Gray(1) => "bilevel".into(),
        ColorType::Gray(b) => format!("grey {b}-bit"),
        ColorType::GrayA(b) => format!("grey+alpha {b}-bit"),
        ColorType::RGB(b) => format!("RGB {b}-bit"),
        ColorType::RGBA(b) => format!("RGBA {b}-bit"),
        ColorType::Palette(b) => format!("palette {b}-bit"),
        ColorType::CMYK(b) => format!("CMYK {b}-bit"),
        ColorType::CMYKA(b) => format!("CMYK+alpha {b}-bit"),
        ColorType::YCbCr(b) => format!("YCbCr {b}-bit"),
        ColorType::Lab(b) => format!("Lab {b}-bit"),
        ColorType::Multiband {
            bit_depth,
            num_samples,
        } => format!("{num_samples} samples {bit_depth}-bit"),
        _ => format!("{ct:?}"),
    }
}

fn probe_tiff(path: &Path) -> Result<PageInfo, DocError> {
    let mut dec = open_tiff(path, 1 << 28)?;
    let (w, h) = dec.dimensions().map_err(tiff_err(path))?;
    let compression = tag_u16(path, &mut dec, Tag::Compression)?.unwrap_or(1);
    let orientation = tag_u16(path, &mut dec, Tag::Orientation)?.unwrap_or(1);
    let dpi = tiff_dpi(path, &mut dec)?;
    let pixel = tiff_pixel(dec.colortype().map_err(tiff_err(path))?);
    let pages = tiff_pages(path, &mut dec)?;
    Ok(PageInfo {
        format: Format::Tiff,
        width: w as u64,
        height: h as u64,
        pages,
        pixel,
        compression: compression_name(compression),
        dpi,
        orientation,
        encrypted: false,
    })
}

fn read_tiff(path: &Path, page: usize, max_pixels: usize) -> Result<Raster, DocError> {
    let mut dec = open_tiff(path, max_pixels)?;
    if page > 0 {
        let pages = tiff_pages(path, &mut dec)?;
        if page >= pages {
            return Err(DocError::format(
                path,
                format!("page {} asked for; the TIFF holds {pages}", page + 1),
            ));
        }
        dec.seek_to_image(page).map_err(tiff_err(path))?;
    }
    let (w, h) = dec.dimensions().map_err(tiff_err(path))?;
    let ct = dec.colortype().map_err(tiff_err(path))?;
    let spp = match ct {
        ColorType::RGB(_) | ColorType::YCbCr(_) | ColorType::Lab(_) => 3,
        ColorType::RGBA(_) | ColorType::CMYK(_) => 4,
        ColorType::CMYKA(_) => 5,
        ColorType::GrayA(_) => 2,
        _ => 1,
    };
    check_size(path, w as u64, h as u64, spp, max_pixels)?;
    let compression = tag_u16(path, &mut dec, Tag::Compression)?.unwrap_or(1);
    let photometric = tag_u16(path, &mut dec, Tag::PhotometricInterpretation)?;
    let orientation = tag_u16(path, &mut dec, Tag::Orientation)?.unwrap_or(1);
    let dpi = tiff_dpi(path, &mut dec)?;
    let (w, h) = (w as usize, h as usize);
    let white_is_zero = photometric == Some(0);
    let (channels, data) = if matches!(compression, 2 | 3) {
        (
            1,
            read_g3(path, &mut dec, compression, w, h, white_is_zero)?,
        )
    } else {
        let res = dec.read_image().map_err(tiff_err(path))?;
        tiff_pixels(path, &mut dec, ct, res, w, h)?
    };
    let r = Raster {
        width: w,
        height: h,
        channels,
        data,
        dpi,
    };
    Ok(orient(r, orientation))
}

/// Unpacks rows of `bits`-bit samples (each row padded to a byte) into 8-bit values.
fn unpack(packed: &[u8], w: usize, h: usize, bits: u8) -> Vec<u8> {
    let row = (w * bits as usize).div_ceil(8);
    let max = (1u32 << bits) - 1;
    let mut out = Vec::with_capacity(w * h);
    for y in 0..h {
        let r = &packed[(y * row).min(packed.len())..((y + 1) * row).min(packed.len())];
        for x in 0..w {
            let bit = x * bits as usize;
            let byte = r.get(bit / 8).copied().unwrap_or(0);
            let v = (byte >> (8 - bits as usize - bit % 8)) as u32 & max;
            out.push((v * 255 / max) as u8);
        }
    }
    out
}

fn tiff_pixels(
    path: &Path,
    dec: &mut Tiff,
    ct: ColorType,
    res: DecodingResult,
    w: usize,
    h: usize,
) -> Result<(usize, Vec<u8>), DocError> {
    let bad =
        |what: String| DocError::format(path, format!("TIFF: {what} pages are not supported"));
    let to8 = |res: DecodingResult| -> Result<Vec<u8>, DocError> {
        Ok(match res {
            DecodingResult::U8(v) => v,
            DecodingResult::U16(v) => v.iter().map(|&x| (x >> 8) as u8).collect(),
            DecodingResult::U32(v) => v.iter().map(|&x| (x >> 24) as u8).collect(),
            _ => {
                return Err(bad(format!(
                    "{} with signed or floating-point samples",
                    tiff_pixel(ct)
                )))
            }
        })
    };
    let n = w * h;
    let (channels, mut data) = match ct {
        ColorType::Gray(b) if b < 8 => match res {
            DecodingResult::U8(v) => (1, unpack(&v, w, h, b)),
            _ => return Err(bad(tiff_pixel(ct))),
        },
        ColorType::Gray(_) => (1, to8(res)?),
        ColorType::GrayA(_) => {
            let v = to8(res)?;
            (
                1,
                v.chunks_exact(2).map(|p| over_white(p[0], p[1])).collect(),
            )
        }
        ColorType::RGB(_) => (3, to8(res)?),
        ColorType::RGBA(_) => {
            let v = to8(res)?;
            let mut out = Vec::with_capacity(n * 3);
            for p in v.chunks_exact(4) {
                out.extend(p[..3].iter().map(|&c| over_white(c, p[3])));
            }
            (3, out)
        }
        ColorType::CMYK(8) | ColorType::CMYKA(8) => {
            let k = if matches!(ct, ColorType::CMYK(_)) {
                4
            } else {
                5
            };
            let v = to8(res)?;
            let mut out = Vec::with_capacity(n * 3);
            for p in v.chunks_exact(k) {
                let black = 255 - p[3] as u32;
                out.extend(
                    p[..3]
                        .iter()
                        .map(|&c| ((255 - c as u32) * black / 255) as u8),
                );
            }
            (3, out)
        }
        ColorType::Palette(b) => {
            let map = dec.get_tag_u16_vec(Tag::ColorMap).map_err(|e| {
                DocError::format(
                    path,
                    format!("TIFF: palette page without a colour map: {e}"),
                )
            })?;
            let entries = 1usize << b;
            if map.len() < 3 * entries {
                return Err(DocError::format(
                    path,
                    format!(
                        "TIFF: colour map of {} values for {b}-bit indices (needs {})",
                        map.len(),
                        3 * entries
                    ),
                ));
            }
            let idx = match res {
                DecodingResult::U8(v) if b < 8 => unpack(&v, w, h, b)
                    .into_iter()
                    .map(|x| (x as u32 * (entries as u32 - 1) / 255) as u8)
                    .collect(),
                DecodingResult::U8(v) => v,
                _ => return Err(bad(tiff_pixel(ct))),
            };
            let mut out = Vec::with_capacity(n * 3);
            for &i in &idx {
                let i = i as usize;
                out.extend((0..3).map(|c| (map[c * entries + i] >> 8) as u8));
            }
            (3, out)
        }
        _ => return Err(bad(tiff_pixel(ct))),
    };
    if data.len() < n * channels {
        return Err(DocError::format(
            path,
            format!("TIFF: decoded {} values for a {w}×{h} page", data.len()),
        ));
    }
    data.truncate(n * channels);
    // (The decoder has already inverted WhiteIsZero pages.)
    Ok((channels, data))
}

/// 1-D Group 3 fax strips (TIFF compression 3 without the 2-D option), decoded from the
/// raw strips. Compression 2 (no end-of-line codes) and 2-D Group 3 are refused by name.
fn read_g3(
    path: &Path,
    dec: &mut Tiff,
    compression: u16,
    w: usize,
    h: usize,
    white_is_zero: bool,
) -> Result<Vec<u8>, DocError> {
    if compression == 2 {
        return Err(DocError::format(
            path,
            "TIFF: CCITT modified Huffman without end-of-line codes (compression 2) is not supported; Group 3 (1-D) and Group 4 are",
        ));
    }
    let t4 = dec
        .find_tag_unsigned::<u32>(Tag::Unknown(292))
        .map_err(tiff_err(path))?
        .unwrap_or(0);
    if t4 & 1 != 0 {
        return Err(DocError::format(
            path,
            "TIFF: 2-D Group 3 fax (T4Options bit 0) is not supported; 1-D Group 3 and Group 4 are",
        ));
    }
    let fill_order = tag_u16(path, dec, Tag::FillOrder)?.unwrap_or(1);
    let offsets = dec
        .get_tag_u64_vec(Tag::StripOffsets)
        .map_err(tiff_err(path))?;
    let counts = dec
        .get_tag_u64_vec(Tag::StripByteCounts)
        .map_err(tiff_err(path))?;
    let rows = dec
        .find_tag_unsigned::<u64>(Tag::RowsPerStrip)
        .map_err(tiff_err(path))?
        .unwrap_or(h as u64)
        .min(h as u64)
        .max(1) as usize;
    if offsets.len() != counts.len() || offsets.len() < h.div_ceil(rows) {
        return Err(DocError::format(
            path,
            format!(
                "TIFF: {} strip offsets and {} byte counts for {} strips",
                offsets.len(),
                counts.len(),
                h.div_ceil(rows)
            ),
        ));
    }
    let mut f = File::open(path).map_err(io_err(path))?;
    let len = f.metadata().map_err(io_err(path))?.len();
    let mut out = vec![255u8; w * h];
    for (s, (&off, &count)) in offsets
        .iter()
        .zip(&counts)
        .enumerate()
        .take(h.div_ceil(rows))
    {
        if off.checked_add(count).is_none_or(|end| end > len) {
            return Err(DocError::format(
                path,
                format!("TIFF: strip {s} ({count} bytes at {off}) runs past the end of the {len}-byte file"),
            ));
        }
        let mut bytes = vec![0u8; count as usize];
        f.seek(SeekFrom::Start(off)).map_err(io_err(path))?;
        f.read_exact(&mut bytes).map_err(io_err(path))?;
        if fill_order == 2 {
            bytes.iter_mut().for_each(|b| *b = b.reverse_bits());
        }
        let y0 = s * rows;
        let end = (y0 + rows).min(h);
        let mut y = y0;
        let damaged = || {
            DocError::format(
                path,
                format!(
                    "TIFF: Group 3 strip {s} is damaged (no end-of-line code where one belongs)"
                ),
            )
        };
        let mut g3 = fax::decoder::Group3Decoder::new(
            bytes.into_iter().map(Ok::<u8, std::convert::Infallible>),
        )
        .map_err(|_| damaged())?;
        while y < end {
            let (status, complete) = match g3.advance() {
                Ok(st) => (Some(st), true),
                // The last line of a strip is often not followed by an end-of-line code
                // (libtiff writes none): it counts when its runs reach the page width.
                Err(_) => (None, g3.transitions().last() == Some(&(w as u32))),
            };
            if !complete {
                break;
            }
            for (x, c) in fax::decoder::pels(g3.transitions(), w as u32)
                .enumerate()
                .take(w)
            {
                if c == fax::Color::Black {
                    out[y * w + x] = 0;
                }
            }
            y += 1;
            if status != Some(fax::decoder::DecodeStatus::Incomplete) {
                break;
            }
        }
        if y < end {
            return Err(DocError::format(
                path,
                format!(
                    "TIFF: Group 3 strip {s} is damaged (decoded {} of {} rows)",
                    y - y0,
                    end - y0
                ),
            ));
        }
    }
    // Fax runs are black-on-white whatever the tag says, except a BlackIsZero page whose
    // writer meant inverted runs.
    if !white_is_zero {
        out.iter_mut().for_each(|v| *v = 255 - *v);
    }
    Ok(out)
}

/// Converts RGB to 8-bit grey with ITU-R 601-2 luma (PIL's `L`).
pub fn to_grey(r: &Raster) -> Vec<u8> {
    if r.channels == 1 {
        return r.data.clone();
    }
    r.data
        .chunks_exact(3)
        .map(|p| ((p[0] as u32 * 299 + p[1] as u32 * 587 + p[2] as u32 * 114 + 500) / 1000) as u8)
        .collect()
}
