//! Scenes through GDAL: one raster file (any band count, any data type GDAL reads,
//! complex SAR included) or a folder of single-band files (BigEarthNet, the SAFE
//! `IMG_DATA` layout), put on one grid and read window by window. Headers are checked
//! before anything is allocated: a window larger than `max_pixels` is refused, whatever the
//! file claims.

use crate::sensors::{self, Band};
use crate::EoError;
use gdal::raster::ResampleAlg;
use gdal::{Dataset, Metadata};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Once;

/// How a complex (SLC) band becomes a real one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Complex {
    Amplitude,
    Intensity,
    Phase,
}

/// What the caller knows about a scene beyond its files.
#[derive(Debug, Clone, Default)]
pub struct SceneOptions {
    /// `sentinel2`, `sentinel1`, ... or `auto` (guess from band names).
    pub sensor: String,
    /// Band names in file order (empty: from the files' band descriptions or file names,
    /// else the sensor's default order for that band count).
    pub bands: Vec<String>,
    /// Pixel size in m for rasters without georeferencing (chips).
    pub pixel_m: Option<f64>,
    pub user_bands: BTreeMap<String, crate::sensors::UserBand>,
    pub complex: Option<Complex>,
}

/// One band's source: file, 1-based band index, size and pixel size in m.
#[derive(Debug, Clone)]
pub struct Source {
    pub path: PathBuf,
    pub index: usize,
    pub width: usize,
    pub height: usize,
    pub gsd_m: f64,
    pub dtype: String,
    pub complex: bool,
    pub nodata: Option<f64>,
    pub scale: f64,
    pub offset: f64,
    /// A mask band (not all-valid, not derived from nodata) to honour.
    pub mask: bool,
    pub description: String,
    pub overviews: usize,
    pub block: (usize, usize),
}

/// Open GDAL datasets of a scene's files, kept between reads (GDAL's block cache belongs to
/// an open dataset: reopening per window would decode every tile again). A clone starts
/// with none.
#[derive(Default)]
pub struct Handles(std::sync::Mutex<Vec<(PathBuf, Dataset)>>);

impl Clone for Handles {
    fn clone(&self) -> Self {
        Handles::default()
    }
}

impl std::fmt::Debug for Handles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Handles")
    }
}

/// A scene: bands on a reference grid (that of the finest band).
#[derive(Debug, Clone)]
pub struct Scene {
    pub path: PathBuf,
    pub driver: String,
    pub sources: Vec<Source>,
    pub bands: Vec<Band>,
    /// Reference grid size and pixel size (m).
    pub width: usize,
    pub height: usize,
    pub gsd_m: f64,
    pub crs: Option<String>,
    pub geotransform: Option<[f64; 6]>,
    /// Sentinel-2 processing baseline when known (`04.00`), and the offset to add to the
    /// digital numbers before dividing by 10 000.
    pub baseline: Option<String>,
    pub s2_offset: Option<f64>,
    /// Files in a folder that were not used, with why.
    pub skipped: Vec<String>,
    handles: Handles,
}

/// Raster file extensions read as scenes (and inside scene folders).
pub const RASTER_EXTENSIONS: [&str; 10] = [
    "tif", "tiff", "jp2", "jpg", "jpeg", "png", "img", "vrt", "nc", "hdf",
];

static QUIET: Once = Once::new();

/// GDAL prints warnings to stderr by default; errors reach the caller through the return
/// values, so warnings are dropped unless `TESSERA_GDAL_WARNINGS` is set.
pub fn open_quiet() {
    quiet_gdal();
}

fn quiet_gdal() {
    QUIET.call_once(|| {
        if std::env::var_os("TESSERA_GDAL_WARNINGS").is_none() {
            gdal::config::set_error_handler(|_, _, _| {});
        }
    });
}

pub(crate) fn gdal_err(path: &Path, e: impl std::fmt::Display) -> EoError {
    EoError::Gdal {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Opens `path` read-only and raster-only.
pub fn open(path: &Path) -> Result<Dataset, EoError> {
    quiet_gdal();
    if !path.exists() {
        return Err(EoError::Io {
            path: path.into(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        });
    }
    let opts = gdal::DatasetOptions {
        open_flags: gdal::GdalOpenFlags::GDAL_OF_RASTER | gdal::GdalOpenFlags::GDAL_OF_READONLY,
        ..Default::default()
    };
    Dataset::open_ex(path, opts).map_err(|e| gdal_err(path, format!("GDAL cannot open it: {e}")))
}

/// The open dataset of `path`, opened on first use.
fn handle<'a>(
    handles: &'a mut Vec<(PathBuf, Dataset)>,
    path: &Path,
) -> Result<&'a Dataset, EoError> {
    let i = match handles.iter().position(|(p, _)| p == path) {
        Some(i) => i,
        None => {
            handles.push((path.to_path_buf(), open(path)?));
            handles.len() - 1
        }
    };
    Ok(&handles[i].1)
}

/// Metres per CRS unit along x and y at the raster's centre (degrees → m for geographic
/// CRSs).
fn metres_per_unit(ds: &Dataset, gt: &[f64; 6], w: usize, h: usize) -> (f64, f64) {
    match ds.spatial_ref() {
        Ok(srs) if srs.is_geographic() => {
            let lat = gt[3] + gt[5] * h as f64 / 2.0 + gt[4] * w as f64 / 2.0;
            let m = 111_320.0;
            (m * lat.to_radians().cos().abs().max(1e-6), m)
        }
        Ok(srs) if srs.is_projected() => {
            let u = srs.linear_units();
            (u, u)
        }
        _ => (1.0, 1.0),
    }
}

fn crs_name(ds: &Dataset) -> Option<String> {
    let srs = ds.spatial_ref().ok()?;
    match (srs.auth_name(), srs.auth_code()) {
        (Some(a), Ok(c)) => Some(format!("{a}:{c}")),
        _ => srs.name().or_else(|| srs.to_proj4().ok()),
    }
}

fn has_geotransform(ds: &Dataset) -> Option<[f64; 6]> {
    let gt = ds.geo_transform().ok()?;
    (gt != [0.0, 1.0, 0.0, 0.0, 0.0, 1.0]).then_some(gt)
}

/// A Sentinel-2 processing baseline from GDAL metadata or a `MTD_MSIL1C.xml` /
/// `MTD_MSIL2A.xml` in a folder above the file (the SAFE layout), and its offset.
fn s2_baseline(ds: &Dataset, path: &Path) -> (Option<String>, Option<f64>) {
    let from_md = ds
        .metadata_item("PROCESSING_BASELINE", "")
        .or_else(|| ds.metadata_item("PROCESSING_BASELINE", "SENTINEL2"));
    let mut offset = ds
        .metadata_item("BOA_ADD_OFFSET_B0", "")
        .and_then(|v| v.trim().parse::<f64>().ok());
    let mut baseline = from_md;
    if baseline.is_none() {
        let mut dir = path.parent();
        for _ in 0..6 {
            let Some(d) = dir else { break };
            for name in ["MTD_MSIL2A.xml", "MTD_MSIL1C.xml"] {
                if let Ok(xml) = std::fs::read_to_string(d.join(name)) {
                    let tag = |t: &str| {
                        let open = format!("<{t}");
                        let i = xml.find(&open)?;
                        let rest = &xml[i..];
                        let a = rest.find('>')? + 1;
                        let b = rest.find("</")?;
                        Some(rest[a..b].trim().to_string())
                    };
                    baseline = tag("PROCESSING_BASELINE");
                    offset = tag("BOA_ADD_OFFSET")
                        .or_else(|| tag("RADIO_ADD_OFFSET"))
                        .and_then(|v| v.parse().ok());
                    break;
                }
            }
            if baseline.is_some() {
                break;
            }
            dir = d.parent();
        }
    }
    if offset.is_none() {
        if let Some(b) = &baseline {
            let major: f64 = b.trim().parse().unwrap_or(0.0);
            offset = Some(if major >= 4.0 { -1000.0 } else { 0.0 });
        }
    }
    (baseline, offset)
}

fn sources_of(ds: &Dataset, path: &Path, pixel_m: Option<f64>) -> Result<Vec<Source>, EoError> {
    let (w, h) = ds.raster_size();
    let gt = has_geotransform(ds);
    let gsd = match (gt, pixel_m) {
        (Some(gt), _) => {
            let (mx, my) = metres_per_unit(ds, &gt, w, h);
            let gx = (gt[1].powi(2) + gt[4].powi(2)).sqrt() * mx;
            let gy = (gt[2].powi(2) + gt[5].powi(2)).sqrt() * my;
            (gx + gy) / 2.0
        }
        (None, Some(p)) => p,
        (None, None) => 0.0,
    };
    let mut out = Vec::new();
    for i in 1..=ds.raster_count() {
        let b = ds.rasterband(i).map_err(|e| gdal_err(path, e))?;
        let raw = unsafe { gdal_sys::GDALGetRasterDataType(b.c_rasterband()) };
        let complex = unsafe { gdal_sys::GDALDataTypeIsComplex(raw) } != 0;
        let dtype = unsafe {
            std::ffi::CStr::from_ptr(gdal_sys::GDALGetDataTypeName(raw))
                .to_string_lossy()
                .into_owned()
        };
        let flags = b.mask_flags().map_err(|e| gdal_err(path, e))?;
        out.push(Source {
            path: path.to_path_buf(),
            index: i,
            width: b.x_size(),
            height: b.y_size(),
            gsd_m: gsd,
            dtype,
            complex,
            nodata: b.no_data_value(),
            scale: b.scale().unwrap_or(1.0),
            offset: b.offset().unwrap_or(0.0),
            mask: !flags.is_all_valid() && !flags.is_nodata(),
            description: b.description().unwrap_or_default(),
            overviews: b.overview_count().unwrap_or(0).max(0) as usize,
            block: b.block_size(),
        });
    }
    Ok(out)
}

/// The last `_`-separated part of a file stem that names a band (`patch_B8A.tif` → `B8A`,
/// `T32TQM_20200101T101021_B02_10m.jp2` → `B02`).
fn band_from_file_name(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn guess_sensor(names: &[String]) -> Option<&'static str> {
    let all = |sensor: &'static str| {
        !names.is_empty() && names.iter().all(|n| sensors::lookup(sensor, n).is_some())
    };
    ["sentinel1", "sentinel2", "landsat", "rgb"]
        .into_iter()
        .find(|s| all(s))
}

/// What a folder scene takes from its first band file: the GDAL driver, the CRS name, the
/// geotransform, and the Sentinel-2 processing baseline found with it.
type FirstGrid = (
    String,
    Option<String>,
    Option<[f64; 6]>,
    (Option<String>, Option<f64>),
);

fn resolve_band(sensor: &str, name: &str, opts: &SceneOptions) -> Option<Band> {
    if let Some(u) = opts.user_bands.get(name) {
        return u.band(name).ok();
    }
    sensors::lookup(sensor, name)
}

impl Scene {
    /// Opens a raster file or a folder of band files.
    pub fn open(path: &Path, opts: &SceneOptions) -> Result<Scene, EoError> {
        if path.is_dir() {
            return Self::open_folder(path, opts);
        }
        let ds = open(path)?;
        let driver = ds.driver().short_name();
        let sources = sources_of(&ds, path, opts.pixel_m)?;
        if sources.is_empty() {
            return Err(EoError::Unusable {
                path: path.into(),
                reason: "the file has no raster bands".into(),
            });
        }
        let count = sources.len();
        let described: Vec<String> = sources.iter().map(|s| s.description.clone()).collect();
        let sensor = if opts.sensor == "auto" || opts.sensor.is_empty() {
            guess_sensor(&opts.bands)
                .or_else(|| guess_sensor(&described))
                .unwrap_or("auto")
                .to_string()
        } else {
            opts.sensor.clone()
        };
        let names: Vec<String> = if !opts.bands.is_empty() {
            if opts.bands.len() != count {
                return Err(EoError::Unusable {
                    path: path.into(),
                    reason: format!(
                        "{count} band(s) in the file but {} named ({})",
                        opts.bands.len(),
                        opts.bands.join(", ")
                    ),
                });
            }
            opts.bands.clone()
        } else if described
            .iter()
            .all(|d| resolve_band(&sensor, d, opts).is_some())
        {
            described
        } else if let Some(d) = sensors::default_bands(&sensor, count) {
            d.iter().map(|s| s.to_string()).collect()
        } else {
            return Err(EoError::Unusable {
                path: path.into(),
                reason: format!(
                    "{count} band(s) without recognisable descriptions, and sensor `{sensor}` has no default order for {count} bands: name them with [eo] bands or `#bands=B04,B03,...` (known sensors: {})",
                    sensors::SENSORS.join(", ")
                ),
            });
        };
        let mut bands = Vec::with_capacity(count);
        for n in &names {
            bands.push(resolve_band(&sensor, n, opts).ok_or_else(|| EoError::Unusable {
                path: path.into(),
                reason: format!("band `{n}` is not a band of sensor `{sensor}` (declare it under [eo.bands.{n}])"),
            })?);
        }
        let (baseline, s2_offset) = if sensor == "sentinel2" {
            s2_baseline(&ds, path)
        } else {
            (None, None)
        };
        let (w, h) = ds.raster_size();
        let gt = has_geotransform(&ds);
        let mut scene = Scene {
            path: path.into(),
            driver,
            gsd_m: sources[0].gsd_m,
            sources,
            bands,
            width: w,
            height: h,
            crs: crs_name(&ds),
            geotransform: gt,
            baseline,
            s2_offset,
            skipped: Vec::new(),
            handles: Handles::default(),
        };
        scene.fill_gsd(path)?;
        scene.keep_open(vec![(path.to_path_buf(), ds)]);
        Ok(scene)
    }

    /// Hands datasets opened while reading the headers to the scene's reads.
    fn keep_open(&self, datasets: Vec<(PathBuf, Dataset)>) {
        self.handles
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(datasets);
    }

    /// Unknown pixel sizes: the sensor's native one, else an error.
    fn fill_gsd(&mut self, path: &Path) -> Result<(), EoError> {
        for (s, b) in self.sources.iter_mut().zip(&self.bands) {
            if s.gsd_m <= 0.0 {
                s.gsd_m = b.gsd_m;
            }
            if !(s.gsd_m > 0.0 && s.gsd_m.is_finite()) {
                return Err(EoError::Unusable {
                    path: path.into(),
                    reason: format!(
                        "no georeferencing and no pixel size for band `{}`: set [eo] pixel_m or `#pixel_m=`",
                        b.name
                    ),
                });
            }
        }
        let finest = self
            .sources
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.gsd_m.total_cmp(&b.1.gsd_m))
            .map(|(i, _)| i)
            .unwrap_or(0);
        let f = &self.sources[finest];
        self.gsd_m = f.gsd_m;
        // The reference grid covers the largest extent any band covers.
        let (ew, eh) = self.sources.iter().fold((0.0f64, 0.0f64), |(a, b), s| {
            (
                a.max(s.width as f64 * s.gsd_m),
                b.max(s.height as f64 * s.gsd_m),
            )
        });
        self.width = (ew / f.gsd_m).round() as usize;
        self.height = (eh / f.gsd_m).round() as usize;
        Ok(())
    }

    fn open_folder(dir: &Path, opts: &SceneOptions) -> Result<Scene, EoError> {
        let mut files = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            let rd = std::fs::read_dir(&d).map_err(|e| EoError::Io {
                path: d.clone(),
                source: e,
            })?;
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if tessera_tokens::modality::has_extension(&p, &RASTER_EXTENSIONS) {
                    files.push(p);
                }
            }
        }
        files.sort();
        let stems: Vec<String> = files.iter().map(|f| band_from_file_name(f)).collect();
        let sensor = if opts.sensor == "auto" || opts.sensor.is_empty() {
            // The sensor naming most files; ties go to the earlier one.
            let hits = |s: &str| {
                stems
                    .iter()
                    .filter(|n| sensors::lookup(s, n).is_some())
                    .count()
            };
            ["sentinel2", "sentinel1", "landsat"]
                .into_iter()
                .fold(("sentinel2", 0), |best, s| {
                    let h = hits(s);
                    if h > best.1 {
                        (s, h)
                    } else {
                        best
                    }
                })
                .0
                .to_string()
        } else {
            opts.sensor.clone()
        };
        // Per band name, the finest file (SAFE L2A holds B02 at 10, 20 and 60 m).
        let mut chosen: BTreeMap<String, (Source, Band, f64)> = BTreeMap::new();
        let mut opened: Vec<(PathBuf, Dataset)> = Vec::new();
        let mut skipped = Vec::new();
        let mut first: Option<FirstGrid> = None;
        for (f, stem) in files.iter().zip(&stems) {
            let Some(band) = resolve_band(&sensor, stem, opts) else {
                skipped.push(format!("{} (not a {sensor} band)", f.display()));
                continue;
            };
            if !opts.bands.is_empty()
                && !opts
                    .bands
                    .iter()
                    .any(|b| sensors::normalise_name(&sensor, b) == band.name)
            {
                skipped.push(format!("{} (not in [eo] bands)", f.display()));
                continue;
            }
            let ds = open(f)?;
            let src = sources_of(&ds, f, opts.pixel_m)?;
            let ds = {
                opened.push((f.clone(), ds));
                &opened.last().expect("pushed").1
            };
            if src.len() != 1 {
                skipped.push(format!(
                    "{} ({} bands; a scene folder holds one band per file)",
                    f.display(),
                    src.len()
                ));
                continue;
            }
            if first.is_none() {
                let b = if sensor == "sentinel2" {
                    s2_baseline(ds, f)
                } else {
                    (None, None)
                };
                first = Some((
                    ds.driver().short_name(),
                    crs_name(ds),
                    has_geotransform(ds),
                    b,
                ));
            }
            let s = src.into_iter().next().expect("one band");
            let g = if s.gsd_m > 0.0 { s.gsd_m } else { band.gsd_m };
            match chosen.get(&band.name) {
                Some((_, _, old)) if *old <= g => {}
                _ => {
                    chosen.insert(band.name.clone(), (s, band, g));
                }
            }
        }
        let Some((driver, crs, gt, (baseline, s2_offset))) = first else {
            return Err(EoError::Unusable {
                path: dir.into(),
                reason: format!(
                    "the folder holds no single-band raster named after a {sensor} band (file names end in _B02, _VV, ...)"
                ),
            });
        };
        // Sensor band order, not file-name order.
        let mut items: Vec<(Source, Band, f64)> = chosen.into_values().collect();
        let order = |b: &Band| -> usize {
            let table: Vec<&str> = match sensor.as_str() {
                "sentinel2" => sensors::SENTINEL2.iter().map(|b| b.0).collect(),
                "landsat" => sensors::LANDSAT89.iter().map(|b| b.0).collect(),
                _ => vec!["HH", "HV", "VH", "VV"],
            };
            table
                .iter()
                .position(|n| *n == b.name)
                .unwrap_or(usize::MAX)
        };
        items.sort_by_key(|(_, b, _)| order(b));
        let mut scene = Scene {
            path: dir.into(),
            driver,
            sources: items.iter().map(|i| i.0.clone()).collect(),
            bands: items.into_iter().map(|i| i.1).collect(),
            width: 0,
            height: 0,
            gsd_m: 0.0,
            crs,
            geotransform: gt,
            baseline,
            s2_offset,
            skipped,
            handles: Handles::default(),
        };
        scene.fill_gsd(dir)?;
        opened.retain(|(p, _)| scene.sources.iter().any(|s| &s.path == p));
        scene.keep_open(opened);
        Ok(scene)
    }

    /// Reads the window `(x, y, w, h)` of the reference grid, resampled to `out_w × out_h`,
    /// band-major `[C, out_h, out_w]`, in the bands' physical units (scale/offset applied,
    /// complex bands converted), nodata, masked and non-finite pixels as NaN. Windows
    /// reaching past the raster read NaN there.
    pub fn read(
        &self,
        win: (usize, usize, usize, usize),
        out: (usize, usize),
        max_pixels: usize,
        complex: Complex,
    ) -> Result<Vec<f32>, EoError> {
        let (x, y, w, h) = win;
        let (ow, oh) = out;
        let total = ow
            .checked_mul(oh)
            .and_then(|p| p.checked_mul(self.bands.len()))
            .unwrap_or(usize::MAX);
        if total > max_pixels || w == 0 || h == 0 || ow == 0 || oh == 0 {
            return Err(EoError::Unusable {
                path: self.path.clone(),
                reason: format!(
                    "a read of {ow}×{oh} px × {} bands exceeds [eo] max_pixels = {max_pixels} (or is empty): cut the scene with `tessera-eo tile` and read its windows",
                    self.bands.len()
                ),
            });
        }
        let mut data = vec![f32::NAN; total];
        let mut handles = self.handles.0.lock().unwrap_or_else(|e| e.into_inner());
        // One file, one grid, no resampling, no complex or mask band: every band in one
        // dataset-level read (a pixel-interleaved tile is decoded once for all bands).
        let s0 = &self.sources[0];
        let exact_f32 = |d: &str| matches!(d, "Byte" | "Int8" | "UInt16" | "Int16" | "Float32");
        if (ow, oh) == (w, h)
            && self.sources.iter().all(|s| {
                s.path == s0.path
                    && (s.width, s.height) == (self.width, self.height)
                    && !s.complex
                    && !s.mask
                    && exact_f32(&s.dtype)
            })
        {
            let (cw, ch) = (
                w.min(self.width.saturating_sub(x)),
                h.min(self.height.saturating_sub(y)),
            );
            if cw == 0 || ch == 0 {
                return Ok(data);
            }
            let ds = handle(&mut handles, &s0.path)?;
            let mut map: Vec<i32> = self.sources.iter().map(|s| s.index as i32).collect();
            let mut buf = vec![0f32; map.len() * cw * ch];
            let rv = unsafe {
                gdal_sys::GDALDatasetRasterIO(
                    ds.c_dataset(),
                    gdal_sys::GDALRWFlag::GF_Read,
                    x as i32,
                    y as i32,
                    cw as i32,
                    ch as i32,
                    buf.as_mut_ptr() as *mut std::ffi::c_void,
                    cw as i32,
                    ch as i32,
                    gdal_sys::GDALDataType::GDT_Float32,
                    map.len() as i32,
                    map.as_mut_ptr(),
                    0,
                    0,
                    0,
                )
            };
            if rv != gdal_sys::CPLErr::CE_None {
                return Err(gdal_err(
                    &s0.path,
                    "reading the bands failed (truncated or damaged file?)",
                ));
            }
            for (c, s) in self.sources.iter().enumerate() {
                let nd = s.nodata.map(|v| v as f32);
                let plain = nd.is_none() && s.scale == 1.0 && s.offset == 0.0;
                for r in 0..ch {
                    let src = &buf[(c * ch + r) * cw..(c * ch + r + 1) * cw];
                    let dst = &mut data[(c * oh + r) * ow..(c * oh + r) * ow + cw];
                    if plain {
                        // Copy; non-finite float values still become NaN.
                        dst.copy_from_slice(src);
                        dst.iter_mut()
                            .filter(|v| v.is_infinite())
                            .for_each(|v| *v = f32::NAN);
                        continue;
                    }
                    for (d, &v) in dst.iter_mut().zip(src) {
                        let bad = nd.is_some_and(|n| v == n || (n.is_nan() && v.is_nan()))
                            || !v.is_finite();
                        *d = if bad {
                            f32::NAN
                        } else {
                            (v as f64 * s.scale + s.offset) as f32
                        };
                    }
                }
            }
            return Ok(data);
        }
        for (c, s) in self.sources.iter().enumerate() {
            let ds = handle(&mut handles, &s.path)?;
            let band = ds.rasterband(s.index).map_err(|e| gdal_err(&s.path, e))?;
            // This band's pixels per reference pixel.
            let f = self.gsd_m / s.gsd_m;
            let sx0 = x as f64 * f;
            let sy0 = y as f64 * f;
            let sx1 = ((x + w) as f64 * f).min(s.width as f64);
            let sy1 = ((y + h) as f64 * f).min(s.height as f64);
            if sx1 <= sx0 || sy1 <= sy0 {
                continue;
            }
            // The part of the output grid the band covers.
            let ow_in = (((sx1 - sx0) / f) * ow as f64 / w as f64)
                .round()
                .clamp(1.0, ow as f64) as usize;
            let oh_in = (((sy1 - sy0) / f) * oh as f64 / h as f64)
                .round()
                .clamp(1.0, oh as f64) as usize;
            let (ix0, iy0) = (sx0.floor() as isize, sy0.floor() as isize);
            let iw = ((sx1.ceil() as isize - ix0).max(1)) as usize;
            let ih = ((sy1.ceil() as isize - iy0).max(1)) as usize;
            let alg = if iw == ow_in && ih == oh_in {
                None
            } else {
                Some(ResampleAlg::Bilinear)
            };
            let vals: Vec<f64> = if s.complex {
                let mut buf = vec![0f64; 2 * ow_in * oh_in];
                let rv = unsafe {
                    gdal_sys::GDALRasterIO(
                        band.c_rasterband(),
                        gdal_sys::GDALRWFlag::GF_Read,
                        ix0 as i32,
                        iy0 as i32,
                        iw as i32,
                        ih as i32,
                        buf.as_mut_ptr() as *mut std::ffi::c_void,
                        ow_in as i32,
                        oh_in as i32,
                        gdal_sys::GDALDataType::GDT_CFloat64,
                        0,
                        0,
                    )
                };
                if rv != gdal_sys::CPLErr::CE_None {
                    return Err(gdal_err(
                        &s.path,
                        format!(
                            "reading band {} failed (truncated or damaged file?)",
                            s.index
                        ),
                    ));
                }
                buf.chunks_exact(2)
                    .map(|z| match complex {
                        Complex::Amplitude => z[0].hypot(z[1]),
                        Complex::Intensity => z[0] * z[0] + z[1] * z[1],
                        Complex::Phase => z[1].atan2(z[0]),
                    })
                    .collect()
            } else {
                let mut buf = vec![0f64; ow_in * oh_in];
                band.read_into_slice::<f64>((ix0, iy0), (iw, ih), (ow_in, oh_in), &mut buf, alg)
                    .map_err(|e| {
                        gdal_err(
                            &s.path,
                            format!(
                                "reading band {} failed (truncated or damaged file?): {e}",
                                s.index
                            ),
                        )
                    })?;
                buf
            };
            let mask: Option<Vec<u8>> = if s.mask {
                let m = band.open_mask_band().map_err(|e| gdal_err(&s.path, e))?;
                let mut buf = vec![0u8; ow_in * oh_in];
                m.read_into_slice::<u8>((ix0, iy0), (iw, ih), (ow_in, oh_in), &mut buf, None)
                    .map_err(|e| gdal_err(&s.path, e))?;
                Some(buf)
            } else {
                None
            };
            let plane = &mut data[c * ow * oh..(c + 1) * ow * oh];
            for r in 0..oh_in {
                for q in 0..ow_in {
                    let i = r * ow_in + q;
                    let v = vals[i];
                    let bad = s
                        .nodata
                        .is_some_and(|nd| v == nd || (nd.is_nan() && v.is_nan()))
                        || mask.as_ref().is_some_and(|m| m[i] == 0)
                        || !v.is_finite();
                    plane[r * ow + q] = if bad {
                        f32::NAN
                    } else {
                        (v * s.scale + s.offset) as f32
                    };
                }
            }
        }
        Ok(data)
    }
}
