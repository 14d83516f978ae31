//! The page reader against files other writers produced (Pillow with libtiff/libjpeg/zlib,
//! `fixtures/make_fixtures.py`, golden pixels as Pillow decodes them), this crate's own
//! writers, hand-built bad files (decompression bombs, strips past the end, truncations),
//! PDFs through Poppler, the physical-size claim (the same paper at 100 and 200 dpi gives
//! the same tokens), box pooling, and the real pages of `../shared/data/document`.

use proptest::prelude::*;
use std::path::{Path, PathBuf};
use tessera_doc::page::{self, Raster};
use tessera_doc::synth::{
    draw_page, write_g4_tiff, write_jpeg, write_png, write_tiff, TiffCompression,
};
use tessera_doc::{DocConfig, DocError, DocFrontend};
use tessera_tokens::resources::{required, shared_data};
use tessera_tokens::{Modality, Rng};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tessera-doc-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn pgm(path: &Path) -> Raster {
    tessera_doc::pdf::parse_pnm(path, &std::fs::read(path).unwrap()).unwrap()
}

fn grey(path: &Path) -> Raster {
    let r = page::read(path, 0, 1 << 24).unwrap_or_else(|e| panic!("{e}"));
    Raster {
        data: page::to_grey(&r),
        channels: 1,
        ..r
    }
}

/// Largest and mean absolute difference.
fn diff(a: &[u8], b: &[u8]) -> (u8, f64) {
    assert_eq!(a.len(), b.len());
    let d: Vec<u8> = a.iter().zip(b).map(|(x, y)| x.abs_diff(*y)).collect();
    (
        *d.iter().max().unwrap(),
        d.iter().map(|&v| v as f64).sum::<f64>() / d.len() as f64,
    )
}

#[test]
fn matches_pillow_on_files_other_writers_made() {
    // (file, largest allowed difference, expected dpi)
    type Case = (&'static str, u8, Option<(f64, f64)>);
    let cases: &[Case] = &[
        ("g3.tif", 0, Some((204.0, 196.0))),
        ("g4.tif", 0, Some((300.0, 300.0))),
        ("rgba.png", 1, None),
        ("palette.png", 1, Some((150.0, 150.0))),
        ("grey16.png", 0, None),
        ("deflate.tif", 0, Some((120.0, 120.0))),
        ("bigendian.tif", 0, Some((120.0, 120.0))),
        ("cmyk.jpg", 40, Some((300.0, 300.0))),
        ("exif6.jpg", 40, Some((200.0, 200.0))),
        ("progressive.jpg", 40, Some((96.0, 96.0))),
        ("jpeg.tif", 40, Some((200.0, 200.0))),
        ("bilevel.png", 0, Some((300.0, 300.0))),
        ("bigtiff.tif", 0, Some((150.0, 150.0))),
    ];
    for &(name, tol, dpi) in cases {
        let got = grey(&fixture(name));
        let want = pgm(&fixture(&format!("{name}.pgm")));
        assert_eq!(
            (got.width, got.height),
            (want.width, want.height),
            "{name}: size"
        );
        let (max, mean) = diff(&got.data, &want.data);
        assert!(
            max <= tol && mean < 3.0,
            "{name}: max diff {max}, mean {mean:.2}"
        );
        match (got.dpi, dpi) {
            (Some(g), Some(w)) => assert!(
                (g.0 - w.0).abs() < 0.5 && (g.1 - w.1).abs() < 0.5,
                "{name}: dpi {g:?}"
            ),
            (g, w) => assert_eq!(g, w, "{name}: dpi"),
        }
    }
}

#[test]
fn exif_orientation_makes_the_page_upright() {
    // Stored sideways (72 px tall, 56 wide) and displayed upright (72 wide, 56 tall).
    let info = page::probe(&fixture("exif6.jpg")).unwrap();
    assert_eq!((info.width, info.height, info.orientation), (56, 72, 6));
    let r = grey(&fixture("exif6.jpg"));
    assert_eq!((r.width, r.height), (72, 56));
}

#[test]
fn unsupported_variants_are_named() {
    let e = page::read(&fixture("ccitt_rle.tif"), 0, 1 << 24)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("ccitt_rle.tif") && e.contains("compression 2"),
        "{e}"
    );
    // Palette TIFFs: the tiff crate does not decode them (rare among scans).
    let e = page::read(&fixture("palette.tif"), 0, 1 << 24)
        .unwrap_err()
        .to_string();
    assert!(e.contains("palette.tif") && e.contains("Palette"), "{e}");
}

#[test]
fn own_writers_round_trip_with_resolution_and_pages() {
    let d = tmp("roundtrip");
    let mut rng = Rng::new(3);
    let (w, h, px) = draw_page("form", 150.0, &mut rng);
    let p = d.join("a.png");
    write_png(&p, w, h, 1, &px, Some(150.0)).unwrap();
    let r = page::read(&p, 0, 1 << 24).unwrap();
    assert_eq!(r.data, px);
    let dpi = r.dpi.unwrap();
    assert!((dpi.0 - 150.0).abs() < 0.1, "{dpi:?}");

    let (w2, h2, px2) = draw_page("letter", 150.0, &mut rng);
    for c in [
        TiffCompression::None,
        TiffCompression::Lzw,
        TiffCompression::Deflate,
        TiffCompression::PackBits,
    ] {
        let p = d.join(format!("{c:?}.tif"));
        write_tiff(&p, &[(w, h, px.clone()), (w2, h2, px2.clone())], 150, c).unwrap();
        assert_eq!(page::probe(&p).unwrap().pages, 2);
        assert_eq!(page::read(&p, 0, 1 << 24).unwrap().data, px, "{c:?} page 1");
        let r2 = page::read(&p, 1, 1 << 24).unwrap();
        assert_eq!(
            (r2.data, r2.dpi),
            (px2.clone(), Some((150.0, 150.0))),
            "{c:?} page 2"
        );
        let e = page::read(&p, 2, 1 << 24).unwrap_err().to_string();
        assert!(e.contains("page 3") && e.contains("holds 2"), "{e}");
    }

    let p = d.join("g4.tif");
    write_g4_tiff(&p, w, h, &px).unwrap();
    let r = page::read(&p, 0, 1 << 24).unwrap();
    let want: Vec<u8> = px.iter().map(|&v| if v < 128 { 0 } else { 255 }).collect();
    assert_eq!(r.data, want);

    let p = d.join("a.jpg");
    write_jpeg(&p, w, h, 1, &px, 150).unwrap();
    let r = page::read(&p, 0, 1 << 24).unwrap();
    assert_eq!(r.dpi, Some((150.0, 150.0)));
    assert!(diff(&r.data, &px).1 < 4.0);
}

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    out.extend_from_slice(&body);
    // CRC-32 (IEEE) of type + data.
    let mut crc = 0xFFFF_FFFFu32;
    for &b in &body {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    out.extend_from_slice(&(!crc).to_be_bytes());
}

/// A little-endian grey TIFF of one strip, `w × h` declared, `strip` bytes at `offset`.
fn tiny_tiff(w: u32, h: u32, offset: u32, strip: &[u8]) -> Vec<u8> {
    let entries: [(u16, u16, u32); 8] = [
        (256, 4, w),
        (257, 4, h),
        (258, 3, 8),
        (259, 3, 1),
        (262, 3, 1),
        (273, 4, offset),
        (278, 4, h),
        (279, 4, strip.len() as u32),
    ];
    let mut out = b"II*\0".to_vec();
    out.extend_from_slice(&8u32.to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    for (tag, typ, v) in entries {
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&typ.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        if typ == 3 {
            out.extend_from_slice(&(v as u16).to_le_bytes());
            out.extend_from_slice(&[0, 0]);
        } else {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(strip);
    out
}

#[test]
fn decompression_bombs_are_refused_before_decoding() {
    let d = tmp("bombs");
    // PNG: IHDR of 100 000 × 100 000 grey and a few bytes of IDAT.
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = 100_000u32.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
    png_chunk(&mut png, b"IHDR", &ihdr);
    png_chunk(
        &mut png,
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    );
    png_chunk(&mut png, b"IEND", &[]);
    let p = d.join("bomb.png");
    std::fs::write(&p, &png).unwrap();
    // TIFF: 100 000 × 100 000 declared, 16 bytes of strip.
    let t = d.join("bomb.tif");
    std::fs::write(
        &t,
        tiny_tiff(100_000, 100_000, 8 + 2 + 8 * 12 + 4, &[0; 16]),
    )
    .unwrap();
    // JPEG: SOF0 of 65 000 × 65 000.
    let mut jpg = vec![0xFF, 0xD8, 0xFF, 0xC0, 0, 11, 8];
    jpg.extend_from_slice(&65_000u16.to_be_bytes());
    jpg.extend_from_slice(&65_000u16.to_be_bytes());
    jpg.extend_from_slice(&[1, 1, 0x11, 0]);
    jpg.extend_from_slice(&[0xFF, 0xDA, 0, 8, 1, 1, 0, 0, 63, 0, 0xFF, 0xD9]);
    let j = d.join("bomb.jpg");
    std::fs::write(&j, &jpg).unwrap();
    let fe = DocFrontend::new(&DocConfig::default()).unwrap();
    for f in [&p, &t, &j] {
        let e = fe.decode(f).unwrap_err();
        assert!(
            matches!(e, DocError::TooLarge { .. }),
            "{}: {e}",
            f.display()
        );
        let msg = e.to_string();
        assert!(
            msg.contains(&f.display().to_string()) && msg.contains("max_pixels"),
            "{msg}"
        );
    }
}

#[test]
fn damaged_tiffs_and_unknown_files_give_errors_naming_the_file() {
    let d = tmp("damaged");
    // A strip pointing past the end of the file.
    let t = d.join("strip.tif");
    std::fs::write(&t, tiny_tiff(16, 16, 1_000_000, &[])).unwrap();
    // A Group 3 page cut short.
    let g3 = std::fs::read(fixture("g3.tif")).unwrap();
    let cut = d.join("g3cut.tif");
    std::fs::write(&cut, &g3[..g3.len() / 2]).unwrap();
    let unknown = d.join("notes.png");
    std::fs::write(&unknown, b"hello, this is text").unwrap();
    let empty = d.join("empty.tif");
    std::fs::write(&empty, b"").unwrap();
    let fe = DocFrontend::new(&DocConfig::default()).unwrap();
    for f in [&t, &cut, &unknown, &empty] {
        let e = fe.decode(f).unwrap_err().to_string();
        assert!(e.contains(&f.display().to_string()), "{e}");
    }
}

fn pdftoppm_available() -> bool {
    let ok = std::process::Command::new("pdftoppm")
        .arg("-v")
        .output()
        .is_ok();
    if !ok {
        assert!(
            !required("TESSERA_REQUIRE_DATA"),
            "TESSERA_REQUIRE_DATA=1 but Poppler's pdftoppm is missing (scripts/setup.sh installs poppler-utils)"
        );
        eprintln!("skipping: pdftoppm not found");
    }
    ok
}

/// A one-page PDF (144 × 72 pt) with a black rectangle at x 10..60, y 10..40 pt from the
/// bottom-left, or a PDF with no page.
fn write_pdf(path: &Path, pages: bool) {
    let content = b"0 0 0 rg 10 10 50 30 re f\n";
    let mut objs: Vec<Vec<u8>> = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        if pages {
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec()
        } else {
            b"<< /Type /Pages /Kids [] /Count 0 >>".to_vec()
        },
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 144 72] /Contents 4 0 R >>".to_vec(),
    ];
    let mut s = format!("<< /Length {} >>\nstream\n", content.len()).into_bytes();
    s.extend_from_slice(content);
    s.extend_from_slice(b"endstream");
    objs.push(s);
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objs.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(o);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objs.len() + 1).as_bytes());
    for o in offsets {
        out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objs.len() + 1
        )
        .as_bytes(),
    );
    std::fs::write(path, out).unwrap();
}

#[test]
fn pdf_pages_render_at_the_working_resolution() {
    if !pdftoppm_available() {
        return;
    }
    let d = tmp("pdf");
    let p = d.join("one.pdf");
    write_pdf(&p, true);
    let info = page::probe(&p).unwrap();
    assert_eq!((info.pages, info.width, info.height), (1, 144, 72));
    let fe = DocFrontend::new(&DocConfig {
        dpi: 72.0,
        ..DocConfig::default()
    })
    .unwrap();
    let s = fe.decode(&p).unwrap();
    assert_eq!((s.w, s.h), (144, 72));
    // Inside the rectangle (x 10..60, rows 72-40..72-10) ink; outside paper.
    assert!(s.data[40 * 144 + 30] < 20 && s.data[5 * 144 + 100] > 235);
    let e = fe
        .decode(Path::new(&format!("{}#page=2", p.display())))
        .unwrap_err()
        .to_string();
    assert!(e.contains("page 2") && e.contains("has 1"), "{e}");
    let z = d.join("zero.pdf");
    write_pdf(&z, false);
    let e = fe.decode(&z).unwrap_err().to_string();
    assert!(e.contains("zero.pdf") && e.contains("no pages"), "{e}");
    let e = fe
        .decode(&fixture("encrypted.pdf"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("encrypted.pdf") && e.contains("password"), "{e}");
    let broken = d.join("broken.pdf");
    std::fs::write(&broken, b"%PDF-1.4\n1 0 obj << /Type /Catalog").unwrap();
    let e = fe.decode(&broken).unwrap_err().to_string();
    assert!(e.contains("broken.pdf"), "{e}");
}

#[test]
fn the_same_paper_at_100_and_200_dpi_gives_the_same_tokens() {
    let d = tmp("dpi");
    let cfg = DocConfig {
        dpi: 50.0,
        patch_px: 8,
        crop_px: 64,
        ..DocConfig::default()
    };
    let fe = DocFrontend::new(&cfg).unwrap();
    let mut views = Vec::new();
    for dpi in [100.0, 200.0] {
        // The same drawing (same seed) at two resolutions.
        let (w, h, px) = draw_page("letter", dpi, &mut Rng::new(11));
        let p = d.join(format!("p{dpi}.png"));
        write_png(&p, w, h, 1, &px, Some(dpi)).unwrap();
        views.push(fe.eval_view(&fe.decode(&p).unwrap()).unwrap());
    }
    let (a, b) = (&views[0], &views[1]);
    assert_eq!(a.n, b.n);
    assert_eq!(a.coords, b.coords);
    let mean = a
        .values
        .iter()
        .zip(&b.values)
        .map(|(x, y)| (x - y).abs())
        .sum::<f32>()
        / a.values.len() as f32;
    let spread = a.values.iter().map(|x| x.abs()).sum::<f32>() / a.values.len() as f32;
    assert!(
        mean < 0.15 * spread.max(0.1),
        "mean |diff| {mean} against mean |value| {spread}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn box_pooling_weights_are_a_distribution_over_covered_patches(
        x0 in 0.0f64..300.0, y0 in 0.0f64..400.0, bw in 0.5f64..200.0, bh in 0.5f64..200.0,
    ) {
        let fe = DocFrontend::new(&DocConfig { dpi: 100.0, patch_px: 16, crop_px: 64, ..DocConfig::default() }).unwrap();
        let s = tessera_doc::DocSample {
            path: "p".into(), w: 300, h: 400, c: 1, data: vec![255; 300 * 400],
            source_dpi: (100.0, 100.0), dpi_declared: true, source_px: (300, 400), skew_deg: 0.0,
        };
        let (gw, gh) = fe.grid(&s);
        let t = fe.box_tokens(&s, [x0, y0, x0 + bw, y0 + bh]);
        prop_assert!(!t.is_empty());
        let sum: f32 = t.iter().map(|(_, w)| w).sum();
        prop_assert!((sum - 1.0).abs() < 1e-4);
        for (i, w) in t {
            prop_assert!(i < gw * gh && w > 0.0);
            let (gx, gy) = ((i % gw) as f64 * 16.0, (i / gw) as f64 * 16.0);
            // Every pooled patch touches the box (or is the nearest one to a box off the page).
            prop_assert!(gx < (x0 + bw).max(gx + 1.0) && gy < (y0 + bh).max(gy + 1.0));
        }
        // The patch holding the box's centre is the box's (when the centre is on the page).
        let owner = fe.token_boxes(&s, &[[0.0, 0.0, 300.0, 400.0], [x0, y0, x0 + bw, y0 + bh]]);
        prop_assert_eq!(owner.len(), gw * gh);
        prop_assert!(owner.iter().all(|o| o.is_some()));
    }
}

#[test]
fn real_pages_read_at_their_physical_size() {
    let Some(root) = shared_data("document") else {
        return;
    };
    let fe = DocFrontend::new(&DocConfig::default()).unwrap();
    let funsd = root.join("funsd_ec_roor/images/82092117.png");
    let s = fe
        .decode(Path::new(&format!("{}#dpi=90", funsd.display())))
        .unwrap();
    // 754 × 1000 px at 90 dpi: 212.8 × 282.2 mm (a US letter form), at 100 dpi.
    assert_eq!((s.w, s.h), (838, 1111));
    let info = fe.inspect(&funsd).unwrap();
    assert!(
        info.iter()
            .any(|(k, v)| k == "dpi" && v.starts_with("none")),
        "{info:?}"
    );
    let dir = root.join("publaynet_examples/images");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let s = fe
            .decode(Path::new(&format!("{}#dpi=72", p.display())))
            .unwrap();
        let (wmm, hmm) = (s.w as f64 * 0.254, s.h as f64 * 0.254);
        // Letter (216 × 279) or A4 (210 × 297).
        assert!(
            (205.0..220.0).contains(&wmm) && (275.0..300.0).contains(&hmm),
            "{}: {wmm}×{hmm}",
            p.display()
        );
        n += 1;
    }
    assert_eq!(n, 20);
}
