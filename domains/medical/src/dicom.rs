//! DICOM: a series (a folder of slices, a DICOMDIR, or one multi-frame object) assembled
//! into one [`Volume`], through dicom-rs (`dicom-object`, `dicom-pixeldata`).
//!
//! - **Which files**: a folder is searched recursively; files without the `DICM` marker
//!   that do not parse as DICOM are skipped (README, thumbnails), and so are DICOM objects
//!   without an image (DICOMDIR, reports, structure sets). A `DICOMDIR` names its
//!   files in `ReferencedFileID`. Files are grouped by `SeriesInstanceUID`; a folder holding
//!   more than one series is refused with the list of series, and `folder#series=N` (index
//!   in that list) or `folder#series=<UID>` picks one. A single file is read alone.
//! - **Order and spacing**: frames are ordered by their position along the slice normal
//!   (`ImageOrientationPatient` row × column), never by file name or `InstanceNumber`; the
//!   slice step is `(last position − first) / (n − 1)`, not `SliceThickness`. Unequal gaps
//!   and a step that is not along the normal (gantry tilt; the affine is then sheared so
//!   voxels stay in place, as ITK does) are reported as warnings. Two frames at one
//!   position are an error (a multi-echo or temporal series is not one volume).
//! - **Values**: stored values (only the `BitsStored` bits under `HighBit`, sign-extended
//!   when signed: junk or overlays in the unused bits are dropped) × `RescaleSlope` +
//!   `RescaleIntercept`, per frame (so CT is in HU), computed in f64.
//! - **Geometry**: the affine in RAS+ from `ImagePositionPatient`,
//!   `ImageOrientationPatient` and `PixelSpacing` (DICOM's patient space is LPS).
//! - **Multi-frame**: enhanced objects take position, orientation, spacing and rescale from
//!   the per-frame and shared functional groups; legacy multi-frame objects take
//!   `GridFrameOffsetVector` (RT dose), else `SpacingBetweenSlices`/`SliceThickness` with
//!   a warning.
//! - **Pixel data**: every transfer syntax dicom-rs decodes in pure Rust: implicit and
//!   explicit VR little/big endian, deflated, RLE, JPEG baseline/extended/lossless and
//!   JPEG 2000. Others (JPEG-LS, HTJ2K, video) are refused naming the transfer syntax.
//!
//! Errors name the file (or folder) and the attribute: slices of different sizes or
//! orientations, a missing `ImagePositionPatient` in a multi-slice series, colour images,
//! a truncated file.

use std::path::{Path, PathBuf};

use dicom_dictionary_std::tags;
use dicom_object::{InMemDicomObject, OpenFileOptions};
use dicom_pixeldata::{ConvertOptions, ModalityLutOption, PixelDecoder};
use rayon::prelude::*;

use crate::error::MedicalError;
use crate::formats::{self, Grid, Space};
use crate::nifti::Datatype;
use crate::volume::{Volume, Warning};

type Tag = dicom_core::Tag;

fn err(path: &Path, reason: impl Into<String>) -> MedicalError {
    MedicalError::Dicom {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Compressed pixel data may expand at most this much (far beyond what RLE, deflate or
/// JPEG reach on real images); a header declaring more is refused before allocating.
const MAX_EXPANSION: u128 = 4096;

/// Does the file carry the `DICM` marker after its 128-byte preamble?
pub fn has_dicom_marker(path: &Path) -> bool {
    use std::io::Read;
    let mut b = [0u8; 132];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut b))
        .is_ok()
        && &b[128..132] == b"DICM"
}

/// The name of a transfer syntax UID.
pub fn transfer_syntax_name(uid: &str) -> &'static str {
    match uid.trim_end_matches('\0').trim() {
        "1.2.840.10008.1.2" => "Implicit VR Little Endian",
        "1.2.840.10008.1.2.1" => "Explicit VR Little Endian",
        "1.2.840.10008.1.2.1.99" => "Deflated Explicit VR Little Endian",
        "1.2.840.10008.1.2.2" => "Explicit VR Big Endian",
        "1.2.840.10008.1.2.4.50" => "JPEG Baseline (Process 1)",
        "1.2.840.10008.1.2.4.51" => "JPEG Extended (Process 2 & 4)",
        "1.2.840.10008.1.2.4.57" => "JPEG Lossless (Process 14)",
        "1.2.840.10008.1.2.4.70" => "JPEG Lossless SV1",
        "1.2.840.10008.1.2.4.80" => "JPEG-LS Lossless",
        "1.2.840.10008.1.2.4.81" => "JPEG-LS Near-Lossless",
        "1.2.840.10008.1.2.4.90" => "JPEG 2000 Lossless",
        "1.2.840.10008.1.2.4.91" => "JPEG 2000",
        "1.2.840.10008.1.2.4.201" => "HTJ2K Lossless",
        "1.2.840.10008.1.2.4.202" => "HTJ2K Lossless RPCL",
        "1.2.840.10008.1.2.4.203" => "HTJ2K",
        "1.2.840.10008.1.2.5" => "RLE Lossless",
        u if u.starts_with("1.2.840.10008.1.2.4.10") => "MPEG/HEVC video",
        _ => "an unknown transfer syntax",
    }
}

// ---------------------------------------------------------------------------------------
// Attribute access

fn elem(o: &InMemDicomObject, tag: Tag) -> Option<&dicom_object::mem::InMemElement> {
    o.element_opt(tag).ok().flatten()
}

fn floats(o: &InMemDicomObject, tag: Tag) -> Option<Vec<f64>> {
    elem(o, tag)
        .and_then(|e| e.to_multi_float64().ok())
        .filter(|v| !v.is_empty())
}

fn float(o: &InMemDicomObject, tag: Tag) -> Option<f64> {
    floats(o, tag).map(|v| v[0])
}

fn int(o: &InMemDicomObject, tag: Tag) -> Option<i64> {
    elem(o, tag).and_then(|e| e.to_int::<i64>().ok())
}

fn text(o: &InMemDicomObject, tag: Tag) -> Option<String> {
    elem(o, tag)
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
}

fn items(o: &InMemDicomObject, tag: Tag) -> &[InMemDicomObject] {
    elem(o, tag).and_then(|e| e.items()).unwrap_or_default()
}

/// An attribute from a frame's functional group, else the shared group, else the top level.
fn grouped<T>(
    top: &InMemDicomObject,
    frame: Option<&InMemDicomObject>,
    seq: Tag,
    get: impl Fn(&InMemDicomObject) -> Option<T>,
) -> Option<T> {
    let shared = items(top, tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE).first();
    [frame, shared]
        .into_iter()
        .flatten()
        .find_map(|g| items(g, seq).first().and_then(&get))
        .or_else(|| get(top))
}

// ---------------------------------------------------------------------------------------
// Headers

/// One frame's geometry and rescale.
#[derive(Debug, Clone)]
struct Frame {
    file: usize,
    index: u32,
    position: Option<[f64; 3]>,
    slope: f64,
    intercept: f64,
}

/// What one file's header says.
#[derive(Debug, Clone)]
struct FileHeader {
    path: PathBuf,
    series: String,
    description: String,
    rows: usize,
    cols: usize,
    orientation: Option<[f64; 6]>,
    /// (row spacing, column spacing) in mm.
    pixel_spacing: Option<[f64; 2]>,
    /// SpacingBetweenSlices, else SliceThickness.
    slice_gap: Option<f64>,
    datatype: Datatype,
    /// Stored bits within the allocated container, when narrower:
    /// `(bits allocated, bits stored, high bit, signed)`.
    narrow: Option<(u32, u32, u32, bool)>,
    frames: Vec<Frame>,
    /// How positions of a legacy multi-frame object were found (for a warning).
    guessed_positions: bool,
}

/// The header of an image object; `None` for a DICOM object without an image (a
/// DICOMDIR, a structured report, an RT structure set, a presentation state).
fn read_header(path: &Path, file: usize) -> Result<Option<FileHeader>, MedicalError> {
    let obj = OpenFileOptions::new()
        .read_until(tags::PIXEL_DATA)
        .open_file(path)
        .map_err(|e| err(path, format!("cannot read the DICOM header: {e}")))?;
    if elem(&obj, tags::ROWS).is_none() && elem(&obj, tags::COLUMNS).is_none() {
        return Ok(None);
    }
    header_of(&obj, path, file).map(Some)
}

fn header_of(o: &InMemDicomObject, path: &Path, file: usize) -> Result<FileHeader, MedicalError> {
    let need = |tag: Tag, name: &str| {
        int(o, tag)
            .filter(|&v| v > 0)
            .ok_or_else(|| err(path, format!("{name} is missing or not a positive integer")))
    };
    let rows = need(tags::ROWS, "Rows")? as usize;
    let cols = need(tags::COLUMNS, "Columns")? as usize;
    let spp = int(o, tags::SAMPLES_PER_PIXEL).unwrap_or(1);
    if spp != 1 {
        return Err(err(
            path,
            format!(
                "SamplesPerPixel is {spp} ({}): colour images are not read as volumes",
                text(o, tags::PHOTOMETRIC_INTERPRETATION).unwrap_or_default()
            ),
        ));
    }
    let bits = int(o, tags::BITS_ALLOCATED).unwrap_or(16);
    let signed = int(o, tags::PIXEL_REPRESENTATION).unwrap_or(0) == 1;
    let datatype = match (bits, signed) {
        (1 | 8, false) => Datatype::U8,
        (8, true) => Datatype::I8,
        (16, false) => Datatype::U16,
        (16, true) => Datatype::I16,
        (32, false) => Datatype::U32,
        (32, true) => Datatype::I32,
        (64, _) => Datatype::F64,
        (b, _) => return Err(err(path, format!("BitsAllocated {b} is not supported"))),
    };
    let stored = int(o, tags::BITS_STORED).unwrap_or(bits);
    let high = int(o, tags::HIGH_BIT).unwrap_or(stored - 1);
    let narrow = if (1..bits).contains(&stored) && bits <= 32 && (stored - 1..bits).contains(&high)
    {
        Some((bits as u32, stored as u32, high as u32, signed))
    } else {
        None
    };
    let n_frames = int(o, tags::NUMBER_OF_FRAMES).unwrap_or(1).max(1);
    // Frames are listed from NumberOfFrames: bound it by what the file can hold first.
    let file_len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0) as u128;
    let declared = n_frames as u128 * (rows * cols) as u128 * datatype.size() as u128;
    if declared > file_len * MAX_EXPANSION {
        return Err(MedicalError::Truncated {
            path: path.to_path_buf(),
            reason: format!(
                "NumberOfFrames {n_frames} x Rows {rows} x Columns {cols} declare {declared} bytes of pixel data, more than a {file_len}-byte file can hold"
            ),
        });
    }
    let per_frame = items(o, tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE);
    if !per_frame.is_empty() && per_frame.len() as i64 != n_frames {
        return Err(err(
            path,
            format!(
                "PerFrameFunctionalGroupsSequence has {} items for NumberOfFrames {n_frames}",
                per_frame.len()
            ),
        ));
    }
    let first = per_frame.first();
    let orientation = grouped(o, first, tags::PLANE_ORIENTATION_SEQUENCE, |g| {
        floats(g, tags::IMAGE_ORIENTATION_PATIENT)
    });
    let orientation = match orientation {
        None => None,
        Some(v) if v.len() == 6 && v.iter().all(|x| x.is_finite()) => {
            Some([v[0], v[1], v[2], v[3], v[4], v[5]])
        }
        Some(v) => {
            return Err(err(
                path,
                format!("ImageOrientationPatient {v:?} is not six finite numbers"),
            ))
        }
    };
    let pixel_spacing = grouped(o, first, tags::PIXEL_MEASURES_SEQUENCE, |g| {
        floats(g, tags::PIXEL_SPACING)
    })
    .or_else(|| floats(o, tags::IMAGER_PIXEL_SPACING));
    let pixel_spacing = match pixel_spacing {
        None => None,
        Some(v) if v.len() == 2 && v.iter().all(|x| x.is_finite() && *x > 0.0) => {
            Some([v[0], v[1]])
        }
        Some(v) => {
            return Err(err(
                path,
                format!("PixelSpacing {v:?} is not two positive numbers"),
            ))
        }
    };
    let slice_gap = grouped(o, first, tags::PIXEL_MEASURES_SEQUENCE, |g| {
        float(g, tags::SPACING_BETWEEN_SLICES).or_else(|| float(g, tags::SLICE_THICKNESS))
    })
    .filter(|x| x.is_finite() && *x > 0.0);
    let position_of = |g: Option<&InMemDicomObject>| {
        grouped(o, g, tags::PLANE_POSITION_SEQUENCE, |x| {
            floats(x, tags::IMAGE_POSITION_PATIENT)
        })
        .filter(|v| v.len() == 3 && v.iter().all(|x| x.is_finite()))
        .map(|v| [v[0], v[1], v[2]])
    };
    let rescale_of = |g: Option<&InMemDicomObject>| {
        let s = grouped(o, g, tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE, |x| {
            float(x, tags::RESCALE_SLOPE)
        })
        .filter(|s| s.is_finite() && *s != 0.0)
        .unwrap_or(1.0);
        let i = grouped(o, g, tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE, |x| {
            float(x, tags::RESCALE_INTERCEPT)
        })
        .filter(|i| i.is_finite())
        .unwrap_or(0.0);
        (s, i)
    };
    let mut guessed_positions = false;
    let frames: Vec<Frame> = if !per_frame.is_empty() {
        per_frame
            .iter()
            .enumerate()
            .map(|(k, g)| {
                let (slope, intercept) = rescale_of(Some(g));
                Frame {
                    file,
                    index: k as u32,
                    position: position_of(Some(g)),
                    slope,
                    intercept,
                }
            })
            .collect()
    } else {
        let (slope, intercept) = rescale_of(None);
        let p0 = position_of(None);
        let normal = orientation.map(|v| cross([v[0], v[1], v[2]], [v[3], v[4], v[5]]));
        // Legacy multi-frame: offsets along the normal from GridFrameOffsetVector (RT
        // dose), else the slice gap.
        let offsets: Option<Vec<f64>> =
            floats(o, tags::GRID_FRAME_OFFSET_VECTOR).filter(|v| v.len() as i64 == n_frames);
        if n_frames > 1 && offsets.is_none() {
            guessed_positions = true;
        }
        (0..n_frames as u32)
            .map(|k| {
                let off = match &offsets {
                    Some(v) => v[k as usize],
                    None => k as f64 * slice_gap.unwrap_or(1.0),
                };
                let position = match (p0, normal) {
                    (Some(p), Some(n)) => Some([0, 1, 2].map(|a| p[a] + off * n[a])),
                    (p, _) if k == 0 => p,
                    _ => None,
                };
                Frame {
                    file,
                    index: k,
                    position,
                    slope,
                    intercept,
                }
            })
            .collect()
    };
    Ok(FileHeader {
        path: path.to_path_buf(),
        series: text(o, tags::SERIES_INSTANCE_UID).unwrap_or_default(),
        description: text(o, tags::SERIES_DESCRIPTION).unwrap_or_default(),
        rows,
        cols,
        orientation,
        pixel_spacing,
        slice_gap,
        datatype,
        narrow,
        frames,
        guessed_positions,
    })
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

// ---------------------------------------------------------------------------------------
// Finding the files of a series

/// `path#series=SEL` → (path, Some(SEL)).
fn split_selector(path: &Path) -> (PathBuf, Option<String>) {
    let s = path.to_string_lossy();
    match s.rsplit_once("#series=") {
        Some((p, sel)) => (PathBuf::from(p), Some(sel.to_string())),
        None => (path.to_path_buf(), None),
    }
}

/// Whether a path names DICOM data without reading it: a folder, a DICOMDIR or a `.dcm`
/// file (a `#series=` selector allowed). Other DICOM files are found by their `DICM`
/// marker ([`crate::Format::detect`]).
pub fn is_dicom_name(path: &Path) -> bool {
    let (p, selector) = split_selector(path);
    let name = p.to_string_lossy().to_ascii_lowercase();
    selector.is_some() || p.is_dir() || name.ends_with(".dcm") || name.ends_with("dicomdir")
}

/// Whether a folder looks like one series: it has no sub-folders and, among its first 64
/// entries, a file named `.dcm`/`.ima`, without an extension or with a numeric one, carries
/// the `DICM` marker (at most 8 are opened, so a folder of thousands of NIfTI files is
/// decided from names alone). A folder with sub-folders is a collection to walk into.
pub fn holds_dicom_files(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    let paths: Vec<PathBuf> = entries
        .take(64)
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    if paths.iter().any(|p| p.is_dir()) {
        return false;
    }
    paths
        .iter()
        .filter(|p| {
            let ext = p
                .extension()
                .map(|e| e.to_string_lossy().to_ascii_lowercase());
            match ext.as_deref() {
                None | Some("dcm") | Some("ima") => true,
                // UID-style names (1.2.840.113619...) have numeric "extensions".
                Some(e) => e.bytes().all(|b| b.is_ascii_digit()),
            }
        })
        .take(8)
        .any(|p| has_dicom_marker(p))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), MedicalError> {
    let entries = std::fs::read_dir(dir).map_err(|source| MedicalError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    for e in entries {
        let p = e
            .map_err(|source| MedicalError::Io {
                path: dir.to_path_buf(),
                source,
            })?
            .path();
        if p.is_dir() {
            walk(&p, out)?;
        } else {
            out.push(p);
        }
    }
    Ok(())
}

/// The files a DICOMDIR references.
fn dicomdir_files(path: &Path) -> Result<Vec<PathBuf>, MedicalError> {
    let obj = dicom_object::open_file(path)
        .map_err(|e| err(path, format!("cannot read the DICOMDIR: {e}")))?;
    let root = path.parent().unwrap_or(Path::new("."));
    let mut files = Vec::new();
    for rec in items(&obj, tags::DIRECTORY_RECORD_SEQUENCE) {
        if let Some(e) = elem(rec, tags::REFERENCED_FILE_ID) {
            let parts = e
                .to_multi_str()
                .map_err(|e| err(path, format!("ReferencedFileID is not a path: {e}")))?;
            let mut p = root.to_path_buf();
            for part in parts.iter() {
                p.push(part.trim_end_matches(['\0', ' ']));
            }
            files.push(p);
        }
    }
    if files.is_empty() {
        return Err(err(path, "the DICOMDIR references no files"));
    }
    Ok(files)
}

/// Headers of the DICOM files among `files` (others skipped), grouped by series in order
/// of first appearance (files sorted by name first, for a stable order).
fn series_of(where_: &Path, mut files: Vec<PathBuf>) -> Result<Vec<Vec<FileHeader>>, MedicalError> {
    files.sort();
    let headers: Vec<Result<Option<FileHeader>, MedicalError>> = files
        .par_iter()
        .enumerate()
        .map(|(i, p)| read_header(p, i))
        .collect();
    let mut series: Vec<Vec<FileHeader>> = Vec::new();
    let mut first_error = None;
    let mut non_image = 0;
    for (h, p) in headers.into_iter().zip(&files) {
        match h {
            Ok(None) => non_image += 1,
            Ok(Some(h)) => match series.iter_mut().find(|s| s[0].series == h.series) {
                Some(s) => s.push(h),
                None => series.push(vec![h]),
            },
            // A file with the DICM marker that fails is an error; anything else is not DICOM.
            Err(e) if has_dicom_marker(p) => return Err(e),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if series.is_empty() {
        return Err(match first_error {
            Some(e) if files.len() == 1 && !where_.is_dir() => e,
            Some(e) => err(
                where_,
                format!("no DICOM images among {} files (first: {e})", files.len()),
            ),
            None if non_image > 0 => err(
                where_,
                format!("{non_image} DICOM object(s) without an image (DICOMDIR, report, structure set, ...) and no images"),
            ),
            None => err(where_, "no files"),
        });
    }
    // Re-number frames' file indices within each series.
    for s in &mut series {
        for (i, h) in s.iter_mut().enumerate() {
            h.frames.iter_mut().for_each(|f| f.file = i);
        }
    }
    Ok(series)
}

/// The series found under a folder, DICOMDIR or file: `(UID, description, files, frames)`.
pub fn list_series(path: &Path) -> Result<Vec<(String, String, usize, usize)>, MedicalError> {
    let (path, _) = split_selector(path);
    Ok(find_series(&path)?
        .iter()
        .map(|s| {
            (
                s[0].series.clone(),
                s[0].description.clone(),
                s.len(),
                s.iter().map(|h| h.frames.len()).sum(),
            )
        })
        .collect())
}

fn find_series(path: &Path) -> Result<Vec<Vec<FileHeader>>, MedicalError> {
    let files = if path.is_dir() {
        let mut f = Vec::new();
        walk(path, &mut f)?;
        f
    } else if path
        .file_name()
        .is_some_and(|n| n.to_string_lossy().eq_ignore_ascii_case("DICOMDIR"))
    {
        dicomdir_files(path)?
    } else {
        vec![path.to_path_buf()]
    };
    series_of(path, files)
}

// ---------------------------------------------------------------------------------------
// Reading

/// Read a DICOM series (folder, DICOMDIR, `#series=` selection) or a single DICOM file.
pub fn read(path: &Path) -> Result<Volume, MedicalError> {
    let (path, selector) = split_selector(path);
    let mut all = find_series(&path)?;
    let series = match (all.len(), selector) {
        (1, None) => all.remove(0),
        (_, Some(sel)) => {
            let i = match sel.parse::<usize>() {
                Ok(i) if i < all.len() => i,
                _ => all.iter().position(|s| s[0].series == sel).ok_or_else(|| {
                    err(&path, format!("no series `{sel}` here: {}", describe(&all)))
                })?,
            };
            all.swap_remove(i)
        }
        (_, None) => {
            return Err(err(
                &path,
                format!(
                    "{} series in one place; pick one with `{}#series=N` (N or the UID): {}",
                    all.len(),
                    path.display(),
                    describe(&all)
                ),
            ))
        }
    };
    assemble_series(&path, series)
}

fn describe(all: &[Vec<FileHeader>]) -> String {
    let more = match all.len() {
        n if n > 8 => format!("; ... ({} more)", n - 8),
        _ => String::new(),
    };
    all.iter()
        .take(8)
        .enumerate()
        .map(|(i, s)| {
            format!(
                "{i}: {} ({:?}, {} files)",
                s[0].series,
                s[0].description,
                s.len()
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
        + &more
}

fn assemble_series(path: &Path, files: Vec<FileHeader>) -> Result<Volume, MedicalError> {
    let first = &files[0];
    let (rows, cols) = (first.rows, first.cols);
    for h in &files[1..] {
        if (h.rows, h.cols) != (rows, cols) {
            return Err(err(
                &h.path,
                format!(
                    "Rows x Columns is {} x {}, but {} in the same series is {rows} x {cols}",
                    h.rows,
                    h.cols,
                    first.path.display()
                ),
            ));
        }
        let same = match (h.orientation, first.orientation) {
            (Some(a), Some(b)) => a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-4),
            (a, b) => a.is_none() && b.is_none(),
        };
        if !same {
            return Err(err(
                &h.path,
                format!(
                    "ImageOrientationPatient {:?} differs from {:?} in {} (a localizer or a reformat in the series?)",
                    h.orientation,
                    first.orientation,
                    first.path.display()
                ),
            ));
        }
    }
    let mut warnings = Vec::new();
    let frames: Vec<Frame> = files.iter().flat_map(|h| h.frames.clone()).collect();
    let n = frames.len();
    let [sr, sc] = first.pixel_spacing.unwrap_or([1.0, 1.0]);
    if first.pixel_spacing.is_none() {
        warnings.push(Warning::Note("no PixelSpacing: 1 mm pixels assumed".into()));
    }
    let (row_dir, col_dir) = match first.orientation {
        Some(o) => ([o[0], o[1], o[2]], [o[3], o[4], o[5]]),
        None if n == 1 => {
            warnings.push(Warning::NoDirections { format: "DICOM" });
            ([1.0, 0.0, 0.0], [0.0, 1.0, 0.0])
        }
        None => {
            return Err(err(
                &first.path,
                "ImageOrientationPatient is missing, so the slices cannot be ordered",
            ))
        }
    };
    let normal = cross(row_dir, col_dir);
    if files.iter().any(|h| h.guessed_positions) {
        warnings.push(Warning::Note(
            "a multi-frame object without per-frame positions: frames placed SpacingBetweenSlices/SliceThickness apart".into(),
        ));
    }
    // Order frames along the normal.
    let mut keyed: Vec<(f64, Frame)> = Vec::with_capacity(n);
    for f in frames {
        let key = match f.position {
            Some(p) => dot(p, normal),
            None if n == 1 => 0.0,
            None => {
                return Err(err(
                    &files[f.file].path,
                    format!(
                        "ImagePositionPatient is missing (frame {}), so the {n} slices cannot be ordered",
                        f.index
                    ),
                ))
            }
        };
        keyed.push((key, f));
    }
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
    for w in keyed.windows(2) {
        if (w[1].0 - w[0].0).abs() < 1e-4 {
            return Err(err(
                &files[w[1].1.file].path,
                format!(
                    "two slices at one position along the normal ({:.4} mm; also {} frame {}): a multi-echo, multi-phase or duplicated series is not one volume",
                    w[1].0,
                    files[w[0].1.file].path.display(),
                    w[0].1.index
                ),
            ));
        }
    }
    let origin = keyed[0].1.position.unwrap_or([0.0; 3]);
    let step = if n > 1 {
        let last = keyed[n - 1].1.position.unwrap_or(origin);
        [0, 1, 2].map(|a| (last[a] - origin[a]) / (n - 1) as f64)
    } else {
        let gap = first.slice_gap.unwrap_or(1.0);
        normal.map(|x| x * gap)
    };
    if n > 1 {
        let gaps: Vec<f64> = keyed.windows(2).map(|w| w[1].0 - w[0].0).collect();
        let mean = (keyed[n - 1].0 - keyed[0].0) / (n - 1) as f64;
        let (lo, hi) = gaps
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &g| {
                (a.min(g), b.max(g))
            });
        if hi - lo > 1e-3 + 0.01 * mean.abs() {
            warnings.push(Warning::Note(format!(
                "irregular slice gaps from {lo:.4} to {hi:.4} mm (mean {mean:.4}); the volume assumes the mean, resample the series for exact positions"
            )));
        }
        let len = dot(step, step).sqrt();
        let cos = (dot(step, normal) / len).abs().min(1.0);
        let angle = cos.acos().to_degrees();
        if angle > 0.05 {
            warnings.push(Warning::Note(format!(
                "gantry tilt of {angle:.2} degrees: the affine is sheared so voxels keep their positions"
            )));
        }
    } else {
        warnings.push(Warning::Note(format!(
            "a single slice: {:.4} mm thick from {}",
            dot(step, step).sqrt(),
            if first.slice_gap.is_some() {
                "SpacingBetweenSlices/SliceThickness"
            } else {
                "no thickness attribute (1 mm assumed)"
            }
        )));
    }

    // Decode each file once, in parallel, into its frames' places.
    let plane = rows * cols;
    // place[file][frame] = the frame's slice index in the volume.
    let mut place: Vec<Vec<usize>> = files.iter().map(|h| vec![0; h.frames.len()]).collect();
    for (z, (_, f)) in keyed.iter().enumerate() {
        place[f.file][f.index as usize] = z;
    }
    let rescale: Vec<Vec<(f64, f64)>> = files
        .iter()
        .map(|h| h.frames.iter().map(|f| (f.slope, f.intercept)).collect())
        .collect();
    // Per file: (slice index, rescaled values) of each frame.
    type Slices = Vec<(usize, Vec<f32>)>;
    let decoded: Result<Vec<Slices>, MedicalError> = files
        .par_iter()
        .enumerate()
        .map(|(i, h)| {
            let mut raw = decode_file(&h.path, h.frames.len(), plane, h.datatype.size())?;
            if let Some(n) = h.narrow {
                raw.iter_mut().for_each(|v| *v = stored_bits(*v, n));
            }
            Ok(raw
                .chunks_exact(plane)
                .enumerate()
                .map(|(k, px)| {
                    let (s, c) = rescale[i][k];
                    (
                        place[i][k],
                        px.iter().map(|&v| (v * s + c) as f32).collect(),
                    )
                })
                .collect())
        })
        .collect();
    // Every file decoded (its sizes checked against its bytes) before the volume exists.
    let decoded = decoded?;
    let mut data = vec![0f32; n * plane];
    let mut non_finite = 0;
    for d in decoded {
        for (z, px) in d {
            non_finite += px.iter().filter(|x| !x.is_finite()).count();
            data[z * plane..(z + 1) * plane].copy_from_slice(&px);
        }
    }
    let scales: Vec<(f64, f64)> = rescale.iter().flatten().copied().collect();
    let uniform = scales.windows(2).all(|w| w[0] == w[1]);
    let scaling = match scales.first() {
        Some(&(s, i)) if uniform && (s, i) != (1.0, 0.0) => Some((s, i)),
        _ => None,
    };
    let grid = Grid {
        path: path.to_path_buf(),
        format: format!(
            "DICOM ({} file{}, {n} slice{}{}{})",
            files.len(),
            if files.len() == 1 { "" } else { "s" },
            if n == 1 { "" } else { "s" },
            if first.series.is_empty() {
                String::new()
            } else {
                format!(", series {}", first.series)
            },
            if !uniform { ", per-slice rescale" } else { "" }
        ),
        datatype: first.datatype,
        sizes: vec![cols, rows, n],
        directions: vec![
            Some(row_dir.map(|x| x * sc)),
            Some(col_dir.map(|x| x * sr)),
            Some(step),
        ],
        origin,
        space: Space::LPS,
        warnings,
    };
    formats::assemble(grid, data, non_finite, scaling)
}

/// The value held in the stored bits of a container (`BitsStored` < `BitsAllocated`):
/// bits outside `HighBit - BitsStored + 1 ..= HighBit` (overlays, junk) are dropped and a
/// signed value is sign-extended from its top stored bit. Idempotent, so decoders that
/// already did it are unaffected.
fn stored_bits(v: f64, (alloc, stored, high, signed): (u32, u32, u32, bool)) -> f64 {
    let word = (v as i64) & ((1i64 << alloc) - 1);
    let x = (word >> (high + 1 - stored)) & ((1i64 << stored) - 1);
    if signed && x & (1i64 << (stored - 1)) != 0 {
        (x - (1i64 << stored)) as f64
    } else {
        x as f64
    }
}

/// The stored values of every frame of one file (no rescale), as f64.
fn decode_file(
    path: &Path,
    frames: usize,
    plane: usize,
    bytes_per_value: usize,
) -> Result<Vec<f64>, MedicalError> {
    let obj = dicom_object::open_file(path)
        .map_err(|e| err(path, format!("cannot read the file: {e}")))?;
    let ts = obj.meta().transfer_syntax().to_string();
    let name = transfer_syntax_name(&ts);
    // Nothing is allocated from the header's sizes before they are checked against the
    // file: uncompressed pixel data must hold them, compressed data may expand at most
    // MAX_EXPANSION-fold.
    let declared = frames as u128 * plane as u128 * bytes_per_value as u128;
    let file_len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0) as u128;
    let native = matches!(
        ts.trim_end_matches('\0').trim(),
        "1.2.840.10008.1.2" | "1.2.840.10008.1.2.1" | "1.2.840.10008.1.2.2"
    );
    let most = if native {
        file_len
    } else {
        file_len * MAX_EXPANSION
    };
    if declared > most {
        return Err(MedicalError::Truncated {
            path: path.to_path_buf(),
            reason: format!(
                "Rows x Columns x NumberOfFrames declare {declared} bytes of pixel data, more than a {file_len}-byte file can hold ({name})"
            ),
        });
    }
    let decoded = obj.decode_pixel_data().map_err(|e| {
        err(
            path,
            format!(
                "cannot decode the pixel data ({name}, {}): {e}",
                ts.trim_end_matches('\0')
            ),
        )
    })?;
    let values: Vec<f64> = decoded
        .to_vec_with_options(&ConvertOptions::new().with_modality_lut(ModalityLutOption::None))
        .map_err(|e| err(path, format!("cannot convert the pixel data ({name}): {e}")))?;
    if values.len() < frames * plane {
        return Err(MedicalError::Truncated {
            path: path.to_path_buf(),
            reason: format!(
                "the pixel data holds {} values, {frames} frame(s) of {plane} need {}",
                values.len(),
                frames * plane
            ),
        });
    }
    Ok(values)
}
