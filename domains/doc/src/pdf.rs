//! PDF pages through Poppler's command-line tools (`pdfinfo`, `pdftoppm`; Debian package
//! `poppler-utils`, installed by `scripts/setup.sh`). Poppler is the renderer most Linux
//! viewers use: it handles the fonts, encodings and damaged cross-reference tables of PDFs
//! in the wild, which no pure-Rust renderer matched when this was written; running it as a
//! separate process keeps its C++ out of this crate's address space (a crash in the
//! renderer is an error naming the file, not a crash of training) and costs nothing to
//! build. A page is rendered straight at the front end's working resolution, so it is never
//! resampled.

use crate::page::{Format, PageInfo, Raster};
use crate::DocError;
use std::path::Path;
use std::process::Command;

fn tool(name: &str) -> String {
    std::env::var(format!("TESSERA_{}", name.to_ascii_uppercase())).unwrap_or_else(|_| name.into())
}

fn run(path: &Path, name: &str, args: &[String]) -> Result<Vec<u8>, DocError> {
    let out = Command::new(tool(name))
        .args(args)
        .arg(path)
        .output()
        .map_err(|e| DocError::Pdf {
            path: path.into(),
            reason: if e.kind() == std::io::ErrorKind::NotFound {
                format!("PDF pages need Poppler's `{name}` (Debian: apt-get install poppler-utils; scripts/setup.sh installs it)")
            } else {
                format!("running {name}: {e}")
            },
        })?;
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stderr);
        let msg = msg
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no message")
            .trim();
        let reason = if msg.contains("Invalid page count 0") {
            "the PDF has no pages".to_string()
        } else if msg.contains("Incorrect password") || msg.contains("encrypted") {
            "encrypted PDF: it needs a password, which Tessera does not ask for; decrypt it first (e.g. qpdf --decrypt)".to_string()
        } else {
            format!("{name} failed ({}): {msg}", out.status)
        };
        return Err(DocError::Pdf {
            path: path.into(),
            reason,
        });
    }
    Ok(out.stdout)
}

/// Page count, first page size and encryption from `pdfinfo`.
pub fn info(path: &Path) -> Result<PageInfo, DocError> {
    let text = String::from_utf8_lossy(&run(path, "pdfinfo", &[])?).into_owned();
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k).map(|v| v.trim().to_string()))
    };
    let pages: usize = field("Pages:").and_then(|v| v.parse().ok()).unwrap_or(0);
    if pages == 0 {
        return Err(DocError::Pdf {
            path: path.into(),
            reason: "the PDF has no pages".into(),
        });
    }
    let (w, h) = field("Page size:")
        .and_then(|v| parse_size(&v))
        .unwrap_or((0.0, 0.0));
    Ok(PageInfo {
        format: Format::Pdf,
        // Points (1/72 in): the size at 72 dpi.
        width: w.round() as u64,
        height: h.round() as u64,
        pages,
        pixel: "vector (rendered)".into(),
        compression: field("PDF version:")
            .map(|v| format!("PDF {v}"))
            .unwrap_or_default(),
        dpi: Some((72.0, 72.0)),
        orientation: 1,
        encrypted: field("Encrypted:").is_some_and(|v| v.starts_with("yes")),
    })
}

/// `W x H pts ...` → (W, H).
fn parse_size(v: &str) -> Option<(f64, f64)> {
    let mut it = v.split_whitespace();
    let w: f64 = it.next()?.parse().ok()?;
    it.next()?; // x
    let h: f64 = it.next()?.parse().ok()?;
    Some((w, h))
}

/// Page size in points of page `page` (0-based): one `pdfinfo` run; the page count is
/// asked for only to explain a page past the end.
fn page_size(path: &Path, page: usize) -> Result<(f64, f64), DocError> {
    let n = (page + 1).to_string();
    let text = match run(path, "pdfinfo", &["-f".into(), n.clone(), "-l".into(), n]) {
        Ok(out) => String::from_utf8_lossy(&out).into_owned(),
        Err(DocError::Pdf { reason, .. }) if reason.contains("Wrong page range") => {
            return Err(DocError::Pdf {
                path: path.into(),
                reason: format!(
                    "page {} asked for; the PDF has {}",
                    page + 1,
                    info(path)?.pages
                ),
            })
        }
        Err(e) => return Err(e),
    };
    let key = format!("Page {:>4} size:", page + 1);
    text.lines()
        .find_map(|l| {
            parse_size(
                l.strip_prefix(&key)
                    .or_else(|| l.strip_prefix("Page size:"))?,
            )
        })
        .ok_or_else(|| DocError::Pdf {
            path: path.into(),
            reason: format!("pdfinfo gives no size for page {}", page + 1),
        })
}

/// Renders page `page` (0-based) at `dpi`, grey or RGB; refuses pages whose rendering would
/// exceed `max_pixels`.
pub fn render(
    path: &Path,
    page: usize,
    dpi: f64,
    colour: bool,
    max_pixels: usize,
) -> Result<Raster, DocError> {
    let (wpt, hpt) = page_size(path, page)?;
    let (w, h) = (wpt / 72.0 * dpi, hpt / 72.0 * dpi);
    if !(w >= 1.0 && h >= 1.0) || w * h * if colour { 3.0 } else { 1.0 } > max_pixels as f64 {
        return Err(DocError::TooLarge {
            path: path.into(),
            width: w.ceil() as u64,
            height: h.ceil() as u64,
            limit: max_pixels,
        });
    }
    let n = (page + 1).to_string();
    let mut args = vec![
        "-r".into(),
        format!("{dpi}"),
        "-f".into(),
        n.clone(),
        "-l".into(),
        n,
    ];
    if !colour {
        args.push("-gray".into());
    }
    let bytes = run(path, "pdftoppm", &args)?;
    let mut r = parse_pnm(path, &bytes)?;
    r.dpi = Some((dpi, dpi));
    Ok(r)
}

/// A binary PGM (`P5`) or PPM (`P6`) with 8-bit samples.
pub fn parse_pnm(path: &Path, b: &[u8]) -> Result<Raster, DocError> {
    let bad = |m: &str| DocError::Pdf {
        path: path.into(),
        reason: format!("renderer output: {m}"),
    };
    let mut i = 0;
    let mut token = || -> Option<String> {
        loop {
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            if i < b.len() && b[i] == b'#' {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            break;
        }
        let s = i;
        while i < b.len() && !b[i].is_ascii_whitespace() {
            i += 1;
        }
        (i > s).then(|| String::from_utf8_lossy(&b[s..i]).into_owned())
    };
    let magic = token().ok_or_else(|| bad("empty"))?;
    let channels = match magic.as_str() {
        "P5" => 1,
        "P6" => 3,
        m => return Err(bad(&format!("not a binary PGM/PPM ({m})"))),
    };
    let mut num = || token().and_then(|t| t.parse::<usize>().ok());
    let (w, h, max) = (num(), num(), num());
    let (Some(w), Some(h), Some(255)) = (w, h, max) else {
        return Err(bad("header is not `width height 255`"));
    };
    let start = i + 1;
    let n = w
        .checked_mul(h)
        .and_then(|v| v.checked_mul(channels))
        .ok_or_else(|| bad("size overflows"))?;
    if b.len() < start + n {
        return Err(bad(&format!(
            "{} bytes of pixels for {w}×{h}",
            b.len().saturating_sub(start)
        )));
    }
    Ok(Raster {
        width: w,
        height: h,
        channels,
        data: b[start..start + n].to_vec(),
        dpi: None,
    })
}
