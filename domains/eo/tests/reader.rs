//! The EO reader against files GDAL writes in the layouts and types found in the wild
//! (tiled/striped, pixel/band interleaved, compressed with predictors, BigTIFF, every real
//! and complex data type, scale/offset, nodata, mask bands, folder scenes at mixed
//! resolutions, a SAFE-like Sentinel-2 product with its baseline), the bad inputs a user
//! will meet, and the real files of `../shared/data/eo` when present.

use gdal::raster::{Buffer, GdalType, RasterCreationOptions};
use gdal::DriverManager;
use proptest::prelude::*;
use std::path::{Path, PathBuf};
use tessera_eo::raster::{Complex, Scene, SceneOptions};
use tessera_eo::synth::write_geotiff;
use tessera_eo::{EoConfig, EoFrontend};
use tessera_tokens::resources::shared_data;
use tessera_tokens::Modality;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tessera-eo-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn opts(sensor: &str) -> SceneOptions {
    SceneOptions {
        sensor: sensor.into(),
        ..Default::default()
    }
}

fn read_all(s: &Scene) -> Vec<f32> {
    s.read(
        (0, 0, s.width, s.height),
        (s.width, s.height),
        1 << 26,
        Complex::Intensity,
    )
    .unwrap()
}

const LAYOUTS: [&[&str]; 7] = [
    &[],
    &["TILED=YES", "BLOCKXSIZE=16", "BLOCKYSIZE=16"],
    &["INTERLEAVE=BAND", "COMPRESS=DEFLATE", "PREDICTOR=2"],
    &["INTERLEAVE=PIXEL", "COMPRESS=LZW", "PREDICTOR=2"],
    &["COMPRESS=ZSTD"],
    &["BIGTIFF=YES", "TILED=YES"],
    &["COMPRESS=PACKBITS", "BLOCKYSIZE=3"],
];

fn round_trip<T: GdalType + Copy + Into<f64>>(
    dir: &Path,
    tag: &str,
    planes: Vec<Vec<T>>,
    w: usize,
    h: usize,
) {
    for (i, layout) in LAYOUTS.iter().enumerate() {
        let p = dir.join(format!("{tag}-{i}.tif"));
        let names = ["B02", "B03", "B04", "B08"];
        write_geotiff(
            &p,
            w,
            h,
            &planes,
            10.0,
            &names[..planes.len()],
            None,
            layout,
        )
        .unwrap();
        let s = Scene::open(&p, &opts("auto")).unwrap();
        assert_eq!(
            (s.width, s.height, s.bands.len()),
            (w, h, planes.len()),
            "{layout:?}"
        );
        assert_eq!(s.bands[0].key, "sentinel2.B02");
        assert!((s.gsd_m - 10.0).abs() < 1e-9);
        assert_eq!(s.crs.as_deref(), Some("EPSG:32632"));
        let got = read_all(&s);
        let want: Vec<f32> = planes.iter().flatten().map(|&v| v.into() as f32).collect();
        assert_eq!(got, want, "{tag} {layout:?}");
        // A window is the same pixels as the whole read.
        if w > 4 && h > 4 {
            let win = s
                .read(
                    (1, 2, w - 3, h - 4),
                    (w - 3, h - 4),
                    1 << 26,
                    Complex::Intensity,
                )
                .unwrap();
            for c in 0..planes.len() {
                for r in 0..h - 4 {
                    for q in 0..w - 3 {
                        assert_eq!(
                            win[(c * (h - 4) + r) * (w - 3) + q],
                            want[(c * h + r + 2) * w + q + 1]
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn every_real_type_and_layout_reads_back_exactly() {
    let d = tmp("types");
    let (w, h) = (37, 29);
    let n = w * h;
    round_trip(
        &d,
        "u8",
        vec![(0..n).map(|i| (i % 251) as u8).collect(); 3],
        w,
        h,
    );
    round_trip(
        &d,
        "u16",
        vec![(0..n).map(|i| (i * 37 % 65521) as u16).collect(); 4],
        w,
        h,
    );
    round_trip(
        &d,
        "i16",
        vec![(0..n).map(|i| (i as i32 * 13 - 9000) as i16).collect(); 2],
        w,
        h,
    );
    round_trip(
        &d,
        "u32",
        vec![(0..n).map(|i| (i * 7919) as u32).collect(); 1],
        w,
        h,
    );
    round_trip(
        &d,
        "i32",
        vec![(0..n).map(|i| i as i32 * -31).collect(); 2],
        w,
        h,
    );
    round_trip(
        &d,
        "f32",
        vec![(0..n).map(|i| (i as f32).sin() * 1e3).collect(); 2],
        w,
        h,
    );
    round_trip(
        &d,
        "f64",
        vec![(0..n).map(|i| (i as f64).cos() * 0.5).collect(); 1],
        w,
        h,
    );
    let _ = std::fs::remove_dir_all(&d);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    /// Random sizes, band counts, layouts and windows: a window read equals the same part
    /// of the whole read; reads past the edge are NaN there.
    #[test]
    fn windows_match_whole_reads(w in 1usize..50, h in 1usize..50, c in 1usize..4, layout in 0usize..7,
                                 x in 0usize..60, y in 0usize..60, ww in 1usize..40, wh in 1usize..40, seed in 0u64..1000) {
        let d = tmp(&format!("prop-{seed}-{w}-{h}"));
        let p = d.join("a.tif");
        let planes: Vec<Vec<u16>> = (0..c).map(|b| (0..w * h).map(|i| ((i as u64 * 31 + b as u64 * 7 + seed) % 60000) as u16 + 1).collect()).collect();
        let names = ["B02", "B03", "B04"];
        write_geotiff(&p, w, h, &planes, 10.0, &names[..c], None, LAYOUTS[layout]).unwrap();
        let s = Scene::open(&p, &opts("sentinel2")).unwrap();
        prop_assume!(x < w && y < h);
        let got = s.read((x, y, ww, wh), (ww, wh), 1 << 26, Complex::Intensity).unwrap();
        for b in 0..c {
            for r in 0..wh {
                for q in 0..ww {
                    let v = got[(b * wh + r) * ww + q];
                    if y + r < h && x + q < w {
                        prop_assert_eq!(v, planes[b][(y + r) * w + x + q] as f32);
                    } else {
                        prop_assert!(v.is_nan());
                    }
                }
            }
        }
        let _ = std::fs::remove_dir_all(&d);
    }
}

#[test]
fn scale_offset_nodata_nonfinite_and_masks() {
    let d = tmp("nodata");
    let (w, h) = (8, 6);
    // Scale/offset and nodata.
    let p = d.join("scaled.tif");
    let plane: Vec<i16> = (0..48)
        .map(|i| if i == 5 { -9999 } else { i as i16 })
        .collect();
    write_geotiff(&p, w, h, &[plane], 10.0, &["VV"], Some(-9999.0), &[]).unwrap();
    {
        let ds = gdal::Dataset::open_ex(
            &p,
            gdal::DatasetOptions {
                open_flags: gdal::GdalOpenFlags::GDAL_OF_UPDATE,
                ..Default::default()
            },
        )
        .unwrap();
        let mut b = ds.rasterband(1).unwrap();
        b.set_scale(0.5).unwrap();
        b.set_offset(-3.0).unwrap();
    }
    let s = Scene::open(&p, &opts("auto")).unwrap();
    assert!(s.bands[0].is_radar());
    let v = read_all(&s);
    assert!(v[5].is_nan());
    assert_eq!(v[4], 4.0 * 0.5 - 3.0);
    // NaN and inf in a float band are invalid pixels.
    let p = d.join("nan.tif");
    let mut plane: Vec<f32> = (0..48).map(|i| i as f32).collect();
    plane[0] = f32::NAN;
    plane[1] = f32::INFINITY;
    write_geotiff(&p, w, h, &[plane], 10.0, &["VV"], None, &[]).unwrap();
    let v = read_all(&Scene::open(&p, &opts("auto")).unwrap());
    assert!(v[0].is_nan() && v[1].is_nan() && v[2] == 2.0);
    // A per-dataset mask band (as GDAL writes for JPEG-compressed or masked GeoTIFFs).
    let p = d.join("mask.tif");
    write_geotiff(&p, w, h, &[vec![7u8; 48]], 10.0, &["B04"], None, &[]).unwrap();
    {
        let ds = gdal::Dataset::open_ex(
            &p,
            gdal::DatasetOptions {
                open_flags: gdal::GdalOpenFlags::GDAL_OF_UPDATE,
                ..Default::default()
            },
        )
        .unwrap();
        let mut b = ds.rasterband(1).unwrap();
        b.create_mask_band(true).unwrap();
        let mut m = b.open_mask_band().unwrap();
        let mut buf = Buffer::new(
            (w, h),
            (0..48)
                .map(|i| if i < 8 { 0u8 } else { 255 })
                .collect::<Vec<_>>(),
        );
        m.write((0, 0), (w, h), &mut buf).unwrap();
    }
    let v = read_all(&Scene::open(&p, &opts("sentinel2")).unwrap());
    assert!(
        v[..8].iter().all(|x| x.is_nan()) && v[8..].iter().all(|&x| x == 7.0),
        "{v:?}"
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// Writes a complex band through the C API (the safe wrapper has no complex type).
fn write_complex(path: &Path, w: usize, h: usize, re_im: &[f32]) {
    let driver = DriverManager::get_driver_by_name("GTiff").unwrap();
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    unsafe {
        let ds = gdal_sys::GDALCreate(
            driver.c_driver(),
            c.as_ptr(),
            w as i32,
            h as i32,
            1,
            gdal_sys::GDALDataType::GDT_CFloat32,
            std::ptr::null_mut(),
        );
        assert!(!ds.is_null());
        let b = gdal_sys::GDALGetRasterBand(ds, 1);
        let rv = gdal_sys::GDALRasterIO(
            b,
            gdal_sys::GDALRWFlag::GF_Write,
            0,
            0,
            w as i32,
            h as i32,
            re_im.as_ptr() as *mut _,
            w as i32,
            h as i32,
            gdal_sys::GDALDataType::GDT_CFloat32,
            0,
            0,
        );
        assert_eq!(rv, gdal_sys::CPLErr::CE_None);
        gdal_sys::GDALClose(ds);
    }
}

#[test]
fn complex_slc_becomes_amplitude_intensity_or_phase() {
    let d = tmp("complex");
    let p = d.join("slc.tif");
    let z: Vec<f32> = vec![3.0, 4.0, 0.0, -2.0, -1.0, 0.0, 1.0, 1.0];
    write_complex(&p, 2, 2, &z);
    let mut o = opts("sentinel1");
    o.bands = vec!["VV".into()];
    o.pixel_m = Some(5.0);
    let s = Scene::open(&p, &o).unwrap();
    assert!(s.sources[0].complex);
    let r = |c| s.read((0, 0, 2, 2), (2, 2), 1 << 20, c).unwrap();
    assert_eq!(r(Complex::Amplitude), vec![5.0, 2.0, 1.0, 2f32.sqrt()]);
    assert_eq!(r(Complex::Intensity), vec![25.0, 4.0, 1.0, 2.0]);
    let ph = r(Complex::Phase);
    assert!(
        (ph[1] + std::f32::consts::FRAC_PI_2).abs() < 1e-6
            && (ph[2] - std::f32::consts::PI).abs() < 1e-6
    );
    // Through the front end: intensity in dB.
    let fe = EoFrontend::new(&EoConfig {
        bands: vec!["VV".into()],
        pixel_m: Some(5.0),
        sensor: "sentinel1".into(),
        ..Default::default()
    })
    .unwrap();
    let smp = fe.decode(&p).unwrap();
    assert!((smp.data[0] - 10.0 * 25f32.log10()).abs() < 1e-4);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn folder_scenes_put_every_band_on_the_finest_grid() {
    let d = tmp("folder");
    let sd = d.join("S2_patch");
    std::fs::create_dir_all(&sd).unwrap();
    write_geotiff(
        &sd.join("S2_patch_B04.tif"),
        12,
        12,
        &[vec![1000u16; 144]],
        10.0,
        &[],
        None,
        &[],
    )
    .unwrap();
    write_geotiff(
        &sd.join("S2_patch_B02.tif"),
        12,
        12,
        &[vec![500u16; 144]],
        10.0,
        &[],
        None,
        &[],
    )
    .unwrap();
    write_geotiff(
        &sd.join("S2_patch_B11.tif"),
        6,
        6,
        &[vec![3000u16; 36]],
        20.0,
        &[],
        None,
        &[],
    )
    .unwrap();
    write_geotiff(
        &sd.join("S2_patch_B01.tif"),
        2,
        2,
        &[vec![200u16; 4]],
        60.0,
        &[],
        None,
        &[],
    )
    .unwrap();
    std::fs::write(sd.join("S2_patch_labels_metadata.json"), "{}").unwrap();
    write_geotiff(
        &sd.join("S2_patch_TCI.tif"),
        12,
        12,
        &[vec![1u8; 144]],
        10.0,
        &[],
        None,
        &[],
    )
    .unwrap();
    let s = Scene::open(&sd, &opts("auto")).unwrap();
    let names: Vec<&str> = s.bands.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["B01", "B02", "B04", "B11"], "sensor band order");
    assert_eq!((s.width, s.height, s.gsd_m), (12, 12, 10.0));
    assert_eq!(s.skipped.len(), 1, "{:?}", s.skipped);
    let v = read_all(&s);
    for (c, want) in [200.0, 500.0, 1000.0, 3000.0].iter().enumerate() {
        assert!(
            v[c * 144..(c + 1) * 144].iter().all(|x| x == want),
            "band {c}"
        );
    }
    // Through the front end: reflectance, on a 20 m grid when the card asks.
    let fe = EoFrontend::new(&EoConfig {
        gsd_m: 20.0,
        crop_px: 8,
        ..Default::default()
    })
    .unwrap();
    let smp = fe.decode(&sd).unwrap();
    assert_eq!((smp.w, smp.h, smp.bands.len()), (6, 6, 4));
    assert!((smp.data[3 * 36] - 0.3).abs() < 1e-6);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn sentinel2_baseline_04_offset_is_applied() {
    let d = tmp("safe");
    let img = d.join("S2B_MSIL2A_X.SAFE/GRANULE/L2A_T32/IMG_DATA/R10m");
    std::fs::create_dir_all(&img).unwrap();
    std::fs::write(
        d.join("S2B_MSIL2A_X.SAFE/MTD_MSIL2A.xml"),
        "<root><Product_Info><PROCESSING_BASELINE>04.00</PROCESSING_BASELINE></Product_Info><BOA_ADD_OFFSET band_id=\"0\">-1000</BOA_ADD_OFFSET></root>",
    )
    .unwrap();
    write_geotiff(
        &img.join("T32_20220101_B04_10m.tif"),
        4,
        4,
        &[vec![2000u16; 16]],
        10.0,
        &[],
        None,
        &[],
    )
    .unwrap();
    write_geotiff(
        &img.join("T32_20220101_B03_10m.tif"),
        4,
        4,
        &[vec![1500u16; 16]],
        10.0,
        &[],
        None,
        &[],
    )
    .unwrap();
    let fe = EoFrontend::new(&EoConfig {
        crop_px: 8,
        ..Default::default()
    })
    .unwrap();
    let s = fe.decode(&img).unwrap();
    assert_eq!(s.bands[0].name, "B03");
    assert!(
        (s.data[0] - 0.05).abs() < 1e-6 && (s.data[16] - 0.1).abs() < 1e-6,
        "{:?}",
        &s.data[..2]
    );
    let row = fe.inspect(&img).unwrap();
    assert!(
        row.iter()
            .any(|(k, v)| k == "s2_baseline" && v.contains("04.00") && v.contains("-1000")),
        "{row:?}"
    );
    // Without the product metadata no offset; the card can force one.
    let fe = EoFrontend::new(&EoConfig {
        crop_px: 8,
        s2_offset: Some(0.0),
        ..Default::default()
    })
    .unwrap();
    assert!((fe.decode(&img).unwrap().data[0] - 0.15).abs() < 1e-6);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn geographic_crs_gives_metres() {
    let d = tmp("geo");
    let p = d.join("wgs84.tif");
    let driver = DriverManager::get_driver_by_name("GTiff").unwrap();
    {
        let mut ds = driver
            .create_with_band_type::<u8, _>(&p, 10, 10, 1)
            .unwrap();
        // 0.0001° pixels at 60° N: 11.1 m north-south, 5.6 m east-west.
        ds.set_geo_transform(&[10.0, 0.0001, 0.0, 60.0005, 0.0, -0.0001])
            .unwrap();
        ds.set_spatial_ref(&gdal::spatial_ref::SpatialRef::from_epsg(4326).unwrap())
            .unwrap();
        ds.rasterband(1)
            .unwrap()
            .write((0, 0), (10, 10), &mut Buffer::new((10, 10), vec![1u8; 100]))
            .unwrap();
    }
    let s = Scene::open(
        &p,
        &SceneOptions {
            sensor: "rgb".into(),
            bands: vec!["R".into()],
            ..Default::default()
        },
    )
    .unwrap();
    assert!(
        (s.gsd_m - (11.132 + 5.566) / 2.0).abs() < 0.05,
        "{}",
        s.gsd_m
    );
    let _ = std::fs::remove_dir_all(&d);
}

fn err_of(fe: &EoFrontend, p: &Path) -> String {
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fe.decode(p)));
    match r {
        Err(_) => panic!("{} panicked", p.display()),
        Ok(Ok(_)) => panic!("{} decoded", p.display()),
        Ok(Err(e)) => e.to_string(),
    }
}

#[test]
fn bad_inputs_get_clear_errors_naming_the_file() {
    let d = tmp("bad");
    let fe = EoFrontend::new(&EoConfig {
        crop_px: 16,
        ..Default::default()
    })
    .unwrap();
    // Not a raster.
    let p = d.join("text.tif");
    std::fs::write(&p, "not a raster").unwrap();
    let e = err_of(&fe, &p);
    assert!(
        e.contains("text.tif") && e.contains("GDAL cannot open"),
        "{e}"
    );
    // Missing.
    let e = err_of(&fe, &d.join("missing.tif"));
    assert!(e.contains("missing.tif"), "{e}");
    // Truncated data: the header opens, the read fails.
    let p = d.join("full.tif");
    let plane: Vec<u16> = (0..64 * 64).map(|i| (i * 7919 % 65000) as u16).collect();
    write_geotiff(
        &p,
        64,
        64,
        &[plane.clone(), plane],
        10.0,
        &["B02", "B03"],
        None,
        &[
            "COMPRESS=DEFLATE",
            "TILED=YES",
            "BLOCKXSIZE=16",
            "BLOCKYSIZE=16",
        ],
    )
    .unwrap();
    let bytes = std::fs::read(&p).unwrap();
    for cut in [bytes.len() / 2, bytes.len() - 100, 600, 16] {
        let t = d.join(format!("trunc{cut}.tif"));
        std::fs::write(&t, &bytes[..cut]).unwrap();
        let e = err_of(&fe, &t);
        assert!(e.contains(&format!("trunc{cut}.tif")), "{e}");
    }
    // A header declaring 100 000 × 100 000 pixels over a small (sparse) file: refused
    // before any allocation, with the way out.
    let p = d.join("huge.tif");
    {
        let driver = DriverManager::get_driver_by_name("GTiff").unwrap();
        let mut o = RasterCreationOptions::new();
        o.add_string("SPARSE_OK=TRUE").unwrap();
        o.add_string("TILED=YES").unwrap();
        o.add_string("BIGTIFF=YES").unwrap();
        let mut ds = driver
            .create_with_band_type_with_options::<u16, _>(&p, 100_000, 100_000, 1, &o)
            .unwrap();
        ds.set_geo_transform(&[0.0, 10.0, 0.0, 0.0, 0.0, -10.0])
            .unwrap();
    }
    assert!(std::fs::metadata(&p).unwrap().len() < 10_000_000);
    let e = err_of(
        &fe,
        &p.with_file_name("huge.tif#bands=B02&sensor=sentinel2"),
    );
    assert!(
        e.contains("huge.tif") && e.contains("max_pixels") && e.contains("tile"),
        "{e}"
    );
    // ... and a window of it reads.
    let w = PathBuf::from(format!(
        "{}#bands=B02&sensor=sentinel2&window=50000,50000,32,32",
        p.display()
    ));
    assert_eq!(fe.decode(&w).unwrap().data.len(), 32 * 32);
    // All nodata: decodes, but yields no tokens, with a message.
    let p = d.join("empty.tif");
    write_geotiff(
        &p,
        16,
        16,
        &[vec![0u16; 256]],
        10.0,
        &["B02"],
        Some(0.0),
        &[],
    )
    .unwrap();
    let s = fe.decode(&p).unwrap();
    let e = fe.eval_view(&s).unwrap_err().to_string();
    assert!(
        e.contains("empty.tif") && e.contains("no valid pixels"),
        "{e}"
    );
    assert!(fe
        .inspect(&p)
        .unwrap_err()
        .to_string()
        .contains("empty.tif"));
    // A band count that contradicts the declared sensor.
    let p = d.join("five.tif");
    write_geotiff(&p, 16, 16, &vec![vec![1u16; 256]; 5], 10.0, &[], None, &[]).unwrap();
    let fe2 = EoFrontend::new(&EoConfig {
        sensor: "sentinel2".into(),
        ..Default::default()
    })
    .unwrap();
    let e = err_of(&fe2, &p);
    assert!(e.contains("five.tif") && e.contains("5 band"), "{e}");
    let e = err_of(
        &fe2,
        &PathBuf::from(format!("{}#bands=B02,B03", p.display())),
    );
    assert!(e.contains("5 band(s) in the file but 2 named"), "{e}");
    let e = err_of(
        &fe2,
        &PathBuf::from(format!("{}#bands=B02,B03,B04,B08,VV", p.display())),
    );
    assert!(
        e.contains("`VV` is not a band of sensor `sentinel2`"),
        "{e}"
    );
    // A bad fragment.
    let e = err_of(&fe, &PathBuf::from(format!("{}#window=1,2", p.display())));
    assert!(e.contains("five.tif") && e.contains("x,y,w,h"), "{e}");
    // No CRS and no pixel size: an error naming the way out; with pixel_m it reads and
    // inspect warns.
    let p = d.join("chip.tif");
    let driver = DriverManager::get_driver_by_name("GTiff").unwrap();
    driver
        .create_with_band_type::<f32, _>(&p, 16, 16, 1)
        .unwrap()
        .rasterband(1)
        .unwrap()
        .write(
            (0, 0),
            (16, 16),
            &mut Buffer::new((16, 16), vec![0.1f32; 256]),
        )
        .unwrap();
    let fe3 = EoFrontend::new(&EoConfig {
        sensor: "sentinel1".into(),
        bands: vec!["VV".into()],
        crop_px: 16,
        ..Default::default()
    })
    .unwrap();
    let chip = PathBuf::from(format!("{}#pixel_m=10", p.display()));
    let s = fe3.decode(&chip).unwrap();
    assert!((s.data[0] + 10.0).abs() < 1e-4, "0.1 → -10 dB");
    let row = fe3.inspect(&chip).unwrap();
    assert!(
        row.iter().any(|(k, v)| k == "crs" && v.contains("warning")),
        "{row:?}"
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn tokens_carry_physics_and_any_band_set_fits_one_spec() {
    let d = tmp("tokens");
    let manifest = EoFrontend::write_demo_data(&d, 1).unwrap();
    let fe = EoFrontend::new(&EoConfig {
        crop_px: 32,
        ..Default::default()
    })
    .unwrap();
    let spec = fe.token_spec();
    let mut seen = std::collections::BTreeSet::new();
    for line in std::fs::read_to_string(&manifest).unwrap().lines().skip(1) {
        let p = d.join(line.split(',').next().unwrap());
        let s = fe.decode(&p).unwrap();
        let t = fe.eval_view(&s).unwrap();
        assert_eq!((t.p, t.k), (spec.p, spec.k));
        assert_eq!(t.n % 16, 0, "whole bands of 4×4 patches unless nodata");
        for i in 0..t.n {
            let c = &t.coords[i * 5..i * 5 + 5];
            // Optical tokens have a wavelength and no radar axes; radar tokens the reverse.
            assert!((c[2] > 0.0) != (c[3] > 0.0), "{c:?}");
            assert!(
                c[0] > 0.0 && c[0] < 320.0 && c[1] > 0.0 && c[1] < 320.0,
                "{c:?}"
            );
            seen.insert(s.bands.len());
        }
    }
    assert!(
        seen.contains(&2) && seen.contains(&4) && seen.contains(&12),
        "{seen:?}"
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// Real files: MSTAR JPEG chips, OpenSARShip float32 TIFF chips (no georeferencing; 1 or 2
/// polarisations) and BigEarthNet S1/S2 folder scenes.
#[test]
fn real_files_read() {
    let Some(root) = shared_data("eo") else {
        return;
    };
    let mstar = EoFrontend::new(
        &toml::from_str::<EoConfig>("sensor = \"mstar\"\npixel_m = 0.3\nsar_input = \"amplitude\"")
            .unwrap(),
    )
    .unwrap();
    let s = mstar
        .decode(&root.join("mstar_soc/train/0/00001.jpeg"))
        .unwrap();
    assert_eq!((s.w, s.h, s.bands[0].key.as_str()), (128, 128, "mstar.HH"));
    assert!(s.data.iter().all(|v| v.is_finite()));
    let ship = root.join("opensarship_s1");
    let text = std::fs::read_to_string(ship.join("labels.csv")).unwrap();
    let s1 = EoFrontend::new(&EoConfig {
        sensor: "sentinel1".into(),
        pixel_m: Some(10.0),
        crop_px: 32,
        ..Default::default()
    })
    .unwrap();
    let mut counts = [0usize; 3];
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let bands = if f[15] == "2" { "VH,VV" } else { "VV" };
        let p = PathBuf::from(format!("{}#bands={bands}", ship.join(f[0]).display()));
        let s = s1.decode(&p).unwrap();
        assert_eq!((s.w, s.h), (f[13].parse().unwrap(), f[14].parse().unwrap()));
        counts[s.bands.len()] += 1;
        let t = s1.eval_view(&s).unwrap();
        assert!(t.n > 0);
    }
    assert!(counts[1] > 0 && counts[2] > 0, "{counts:?}");
    let ben = root.join("bigearthnet_mm");
    let any = EoFrontend::new(&EoConfig {
        crop_px: 64,
        ..Default::default()
    })
    .unwrap();
    for (dir, n) in [("S2", 12), ("S1", 2)] {
        let first = std::fs::read_dir(ben.join(dir))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .min()
            .unwrap();
        let s = any.decode(&first).unwrap();
        assert_eq!(
            (s.w, s.h, s.bands.len()),
            (120, 120, n),
            "{}",
            first.display()
        );
        assert!((s.gsd_m - 10.0).abs() < 1e-6);
        let row = any.inspect(&first).unwrap();
        assert!(
            row.iter()
                .any(|(k, v)| k == "crs" && v.starts_with("EPSG:")),
            "{row:?}"
        );
    }
}

/// `[eo.augment] centre_jitter_px`: training crops stay within the jitter of the centre
/// crop (object-centred chips), and still move; unset, they range over the raster.
#[test]
fn centre_jitter_keeps_training_crops_near_the_centre() {
    let d = tmp("jitter");
    let manifest = EoFrontend::write_demo_data(&d, 1).unwrap();
    let line = std::fs::read_to_string(&manifest).unwrap();
    let p = d.join(line.lines().nth(1).unwrap().split(',').next().unwrap());
    let cfg = |j: Option<usize>| EoConfig {
        crop_px: 16,
        patch_px: 4,
        augment: tessera_eo::frontend::EoAugment {
            flip: false,
            centre_jitter_px: j,
            ..Default::default()
        },
        ..Default::default()
    };
    let offsets = |j: Option<usize>| {
        let fe = EoFrontend::new(&cfg(j)).unwrap();
        let s = fe.decode(&p).unwrap();
        let all: Vec<usize> = (0..s.bands.len()).collect();
        let (cx, cy) = ((s.w - 16) / 2, (s.h - 16) / 2);
        let mut rng = tessera_tokens::Rng::new(5);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let t = fe.random_tokens(&s, &mut rng).unwrap();
            let at = (0..=s.w - 16)
                .flat_map(|x| (0..=s.h - 16).map(move |y| (x, y)))
                .find(|&(x, y)| fe.tokens_at(&s, x, y, 0, &all).unwrap().values == t.values)
                .expect("a crop of the raster");
            seen.insert((at.0 as i64 - cx as i64, at.1 as i64 - cy as i64));
        }
        seen
    };
    let near = offsets(Some(2));
    assert!(
        near.iter().all(|(x, y)| x.abs() <= 2 && y.abs() <= 2),
        "{near:?}"
    );
    assert!(near.len() > 10, "{near:?}");
    let anywhere = offsets(None);
    assert!(
        anywhere.iter().any(|(x, y)| x.abs() > 2 || y.abs() > 2),
        "{anywhere:?}"
    );
    let _ = std::fs::remove_dir_all(&d);
}
