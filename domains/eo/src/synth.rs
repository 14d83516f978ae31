//! A small labelled EO dataset the project generates itself (the quick start, and tests
//! where `../shared/data` is absent), written through GDAL so that it exercises the real
//! read path. Two classes: `vegetation` (high near-infrared, moderate radar backscatter,
//! smooth fields) and `water` (low near-infrared, dark radar, speckle only), as
//! - Sentinel-2 GeoTIFFs, uint16 digital numbers with nodata 0 and a nodata corner: 4 bands
//!   (B02, B03, B04, B08) described in the file, or 12 bands without descriptions; tiled
//!   or striped, deflate/LZW with predictors or uncompressed, pixel or band interleaved;
//! - Sentinel-1 GeoTIFFs, float32 VV and VH in linear power (σ⁰), described in the file;
//! - a folder scene of single-band Sentinel-2 files at 10 and 20 m (the BigEarthNet layout).
//!
//! Every fifth scene is `test`.

use crate::raster::gdal_err;
use crate::sensors::{default_bands, SENTINEL2};
use crate::EoError;
use gdal::raster::{Buffer, RasterCreationOptions};
use gdal::spatial_ref::SpatialRef;
use gdal::DriverManager;
use std::path::{Path, PathBuf};
use tessera_tokens::Rng;

/// Reflectance of a band (by wavelength, nm) for a class.
fn reflectance(class: usize, nm: f64) -> f64 {
    match class {
        0 if nm > 700.0 && nm < 1300.0 => 0.35,
        0 if nm >= 1300.0 => 0.2,
        0 => 0.05 + 0.04 * ((nm - 450.0) / 110.0).cos().abs(),
        _ if nm > 700.0 => 0.01,
        _ => 0.06 - (nm - 440.0) / 10_000.0,
    }
}

/// A smooth random field in [-1, 1] (a few cosines).
fn field(rng: &mut Rng, w: usize, h: usize) -> Vec<f64> {
    let waves: Vec<(f64, f64, f64)> = (0..4)
        .map(|_| {
            (
                rng.uniform() * 0.3,
                rng.uniform() * 0.3,
                rng.uniform() * std::f64::consts::TAU,
            )
        })
        .collect();
    (0..w * h)
        .map(|i| {
            let (y, x) = ((i / w) as f64, (i % w) as f64);
            waves
                .iter()
                .map(|(a, b, p)| (a * x + b * y + p).cos())
                .sum::<f64>()
                / 4.0
        })
        .collect()
}

/// Writes a GeoTIFF of `bands` planes (`[C, h, w]`) with a UTM 32N geotransform at `gsd` m.
#[allow(clippy::too_many_arguments)]
pub fn write_geotiff<T: gdal::raster::GdalType + Copy>(
    path: &Path,
    w: usize,
    h: usize,
    planes: &[Vec<T>],
    gsd: f64,
    descriptions: &[&str],
    nodata: Option<f64>,
    options: &[&str],
) -> Result<(), EoError> {
    crate::raster::open_quiet();
    let driver = DriverManager::get_driver_by_name("GTiff").map_err(|e| gdal_err(path, e))?;
    let mut opts = RasterCreationOptions::new();
    for o in options {
        opts.add_string(o).map_err(|e| gdal_err(path, e))?;
    }
    let mut ds = driver
        .create_with_band_type_with_options::<T, _>(path, w, h, planes.len(), &opts)
        .map_err(|e| gdal_err(path, e))?;
    ds.set_geo_transform(&[500_000.0, gsd, 0.0, 5_000_000.0, 0.0, -gsd])
        .map_err(|e| gdal_err(path, e))?;
    let srs = SpatialRef::from_epsg(32632).map_err(|e| gdal_err(path, e))?;
    ds.set_spatial_ref(&srs).map_err(|e| gdal_err(path, e))?;
    for (i, plane) in planes.iter().enumerate() {
        let mut band = ds.rasterband(i + 1).map_err(|e| gdal_err(path, e))?;
        if let Some(d) = descriptions.get(i) {
            use gdal::Metadata;
            band.set_description(d).map_err(|e| gdal_err(path, e))?;
        }
        if nodata.is_some() {
            band.set_no_data_value(nodata)
                .map_err(|e| gdal_err(path, e))?;
        }
        let mut buf = Buffer::new((w, h), plane.clone());
        band.write((0, 0), (w, h), &mut buf)
            .map_err(|e| gdal_err(path, e))?;
    }
    ds.flush_cache().map_err(|e| gdal_err(path, e))?;
    Ok(())
}

/// Creation options cycling through the layouts a reader must handle.
const LAYOUTS: [&[&str]; 4] = [
    &[
        "TILED=YES",
        "BLOCKXSIZE=16",
        "BLOCKYSIZE=16",
        "COMPRESS=DEFLATE",
        "PREDICTOR=2",
    ],
    &["INTERLEAVE=BAND", "COMPRESS=LZW"],
    &["INTERLEAVE=PIXEL"],
    &["TILED=YES", "BLOCKXSIZE=32", "BLOCKYSIZE=32", "BIGTIFF=YES"],
];

/// Writes `per_class` scenes per class (alternately Sentinel-2 and Sentinel-1, 48×48 px
/// at 10 m) and one folder scene per class into `dir`, and `manifest.csv`
/// (`path,label,split`). Returns the manifest.
pub fn write_dataset(dir: &Path, per_class: usize, seed: u64) -> Result<PathBuf, EoError> {
    std::fs::create_dir_all(dir).map_err(|e| EoError::Io {
        path: dir.into(),
        source: e,
    })?;
    let mut rng = Rng::new(seed);
    let (w, h) = (48usize, 48usize);
    let mut manifest = String::from("path,label,split\n");
    let mut k = 0usize;
    for (class, label) in ["vegetation", "water"].iter().enumerate() {
        for i in 0..per_class {
            let split = if k % 5 == 4 { "test" } else { "train" };
            k += 1;
            let f = field(&mut rng, w, h);
            let name = if i % 2 == 0 {
                let twelve = i % 4 == 2;
                let names = if twelve {
                    default_bands("sentinel2", 12).expect("12 bands")
                } else {
                    vec!["B02", "B03", "B04", "B08"]
                };
                let planes: Vec<Vec<u16>> = names
                    .iter()
                    .map(|n| {
                        let nm = SENTINEL2.iter().find(|b| b.0 == *n).expect("band").1;
                        let r = reflectance(class, nm);
                        (0..w * h)
                            .map(|p| {
                                // A nodata corner in some scenes.
                                if i % 3 == 1 && p % w < 6 && p / w < 6 {
                                    return 0;
                                }
                                let tex = if class == 0 { 0.25 * f[p] } else { 0.05 * f[p] };
                                let v = r * (1.0 + tex) + 0.005 * rng.normal();
                                (v.max(0.0005) * 10_000.0).round() as u16
                            })
                            .collect()
                    })
                    .collect();
                let name = format!("{label}_{i:02}_s2.tif");
                let desc: Vec<&str> = if twelve { Vec::new() } else { names.clone() };
                write_geotiff(
                    &dir.join(&name),
                    w,
                    h,
                    &planes,
                    10.0,
                    &desc,
                    Some(0.0),
                    LAYOUTS[i % 4],
                )?;
                if twelve {
                    format!("{name}#sensor=sentinel2")
                } else {
                    name
                }
            } else {
                let planes: Vec<Vec<f32>> = [(0.12, 0.02), (0.03, 0.004)]
                    .iter()
                    .map(|&(veg, water)| {
                        let base = if class == 0 { veg } else { water };
                        (0..w * h)
                            .map(|p| {
                                let speckle = -(1.0 - rng.uniform()).ln(); // exponential, mean 1
                                let tex = if class == 0 { 1.0 + 0.5 * f[p] } else { 1.0 };
                                (base * tex * speckle) as f32
                            })
                            .collect()
                    })
                    .collect();
                let name = format!("{label}_{i:02}_s1.tif");
                write_geotiff(
                    &dir.join(&name),
                    w,
                    h,
                    &planes,
                    10.0,
                    &["VV", "VH"],
                    None,
                    LAYOUTS[(i + 1) % 4],
                )?;
                name
            };
            manifest.push_str(&format!("{name},{label},{split}\n"));
        }
        // A folder scene: 10 m and 20 m bands in separate files.
        let scene = format!("{label}_scene");
        let sd = dir.join(&scene);
        std::fs::create_dir_all(&sd).map_err(|e| EoError::Io {
            path: sd.clone(),
            source: e,
        })?;
        for (n, nm, gsd) in [
            ("B02", 492.4, 10.0),
            ("B04", 664.6, 10.0),
            ("B08", 832.8, 10.0),
            ("B11", 1613.7, 20.0),
        ] {
            let side = (w as f64 * 10.0 / gsd) as usize;
            let r = reflectance(class, nm);
            let plane: Vec<u16> = (0..side * side)
                .map(|_| ((r + 0.005 * rng.normal()).max(0.0005) * 10_000.0).round() as u16)
                .collect();
            write_geotiff(
                &sd.join(format!("{scene}_{n}.tif")),
                side,
                side,
                &[plane],
                gsd,
                &[],
                None,
                &[],
            )?;
        }
        manifest.push_str(&format!("{scene},{label},train\n"));
    }
    let path = dir.join("manifest.csv");
    std::fs::write(&path, manifest).map_err(|e| EoError::Io {
        path: path.clone(),
        source: e,
    })?;
    Ok(path)
}
