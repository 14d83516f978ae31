//! One entry point for every volume format: [`read_volume`] picks NIfTI, NRRD, MetaImage
//! or DICOM (a file, a series folder, a DICOMDIR) from the file's magic bytes (the name only where the bytes cannot tell) and
//! returns the same format-free [`Volume`]: voxels as f32, channel-major, an affine in
//! RAS+ mm and the file's provenance.
//!
//! NRRD and MetaImage headers describe their grids in the same terms (sizes with the
//! fastest axis first, per-axis direction vectors scaled by the spacing, an origin, a
//! named world space), so both end in `assemble`, which moves a leading (interleaved)
//! channel axis behind the spatial ones, completes a 2-D grid to 3-D and converts LPS
//! (ITK's and Slicer's world) to RAS by negating the first two rows of the affine, as
//! nibabel and ITK's NIfTI writer do.

use std::io::Read;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::error::MedicalError;
use crate::nifti::{self, labels_from_volume, Datatype, RawLayout};
use crate::orient::voxel_sizes;
use crate::volume::{LabelMap, Provenance, Volume, Warning};

/// Headers of the text formats may not be longer than this: a file without the end of a
/// header within it is not one of them.
pub const MAX_TEXT_HEADER: usize = 1 << 20;

/// The volume formats [`read_volume`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Nifti,
    Nrrd,
    MetaImage,
    /// A DICOM file, a folder of DICOM files (a series), or a DICOMDIR.
    Dicom,
}

impl Format {
    /// From the first bytes (NRRD's `NRRD000x` magic, a MetaImage key), else the name.
    pub fn detect(path: &Path) -> Result<Format, MedicalError> {
        if crate::dicom::is_dicom(path) {
            return Ok(Format::Dicom);
        }
        let name = path.to_string_lossy().to_ascii_lowercase();
        let mut head = [0u8; 64];
        let n = std::fs::File::open(path)
            .and_then(|mut f| read_up_to(&mut f, &mut head))
            .map_err(|source| MedicalError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        let head = &head[..n];
        if head.starts_with(b"NRRD000") {
            return Ok(Format::Nrrd);
        }
        if name.ends_with(".mha") || name.ends_with(".mhd") {
            return Ok(Format::MetaImage);
        }
        if name.ends_with(".nrrd") || name.ends_with(".nhdr") {
            return Ok(Format::Nrrd);
        }
        let text = String::from_utf8_lossy(head);
        let first = text.trim_start().split(['=', ' ']).next().unwrap_or("");
        const META_KEYS: [&str; 6] = [
            "ObjectType",
            "NDims",
            "ObjectSubType",
            "Comment",
            "TransformType",
            "Name",
        ];
        if META_KEYS.contains(&first) && text.contains('=') {
            return Ok(Format::MetaImage);
        }
        Ok(Format::Nifti)
    }
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Read an image of any supported format as f32, oriented as stored (see the module
/// documentation).
pub fn read_volume(path: &Path) -> Result<Volume, MedicalError> {
    match Format::detect(path)? {
        Format::Nifti => nifti::read_volume(path),
        Format::Nrrd => crate::nrrd::read(path),
        Format::MetaImage => crate::metaimage::read(path),
        Format::Dicom => crate::dicom::read(path),
    }
}

/// Read a label map of any supported format (integers in 0..=65535, see
/// [`nifti::read_labels`]).
pub fn read_labels(path: &Path) -> Result<LabelMap, MedicalError> {
    labels_from_volume(read_volume(path)?)
}

/// The start of a text header: up to [`MAX_TEXT_HEADER`] bytes of the file.
pub(crate) fn header_bytes(path: &Path) -> Result<Vec<u8>, MedicalError> {
    let mut buf = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_TEXT_HEADER as u64).read_to_end(&mut buf))
        .map_err(|source| MedicalError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(buf)
}

/// A detached header's data file must be a readable file; the error names the header.
pub(crate) fn check_data_file(
    header: &Path,
    field: &'static str,
    data: &Path,
) -> Result<(), MedicalError> {
    std::fs::File::open(data)
        .map(drop)
        .map_err(|e| MedicalError::BadHeader {
            path: header.to_path_buf(),
            field,
            reason: format!(
                "names the data file {}, which cannot be opened: {e}",
                data.display()
            ),
        })
}

/// The file names of a printf-style pattern (`slice%03d.raw` with `min max step`, step may
/// be negative; `%d`, `%Nd`, `%0Nd` and `%%`), as NRRD and MetaImage multi-file data use.
pub(crate) fn expand_pattern(
    header: &Path,
    field: &'static str,
    format: &str,
    range: &[&str],
) -> Result<Vec<String>, MedicalError> {
    let bad = |reason: String| MedicalError::BadHeader {
        path: header.to_path_buf(),
        field,
        reason,
    };
    let nums = range
        .iter()
        .map(|t| t.parse::<i64>())
        .collect::<Result<Vec<i64>, _>>()
        .map_err(|_| bad(format!("{range:?} are not integers (min max step)")))?;
    let (min, max, step) = (nums[0], nums[1], nums[2]);
    if step == 0 || (max - min).signum() * step.signum() < 0 {
        return Err(bad(format!(
            "min {min}, max {max}, step {step} give no files"
        )));
    }
    let count = (max - min) / step + 1;
    if count > 1_000_000 {
        return Err(bad(format!("{count} files")));
    }
    let (pre, rest) = format
        .split_once('%')
        .ok_or_else(|| bad(format!("{format:?} has no %d")))?;
    let conv = rest
        .find('d')
        .ok_or_else(|| bad(format!("{format:?}: only %d conversions are read")))?;
    let (spec, post) = (&rest[..conv], &rest[conv + 1..]);
    let width: usize = if spec.is_empty() {
        0
    } else {
        spec.parse()
            .map_err(|_| bad(format!("{format:?}: width {spec:?} is not a number")))?
    };
    let zero = spec.starts_with('0');
    Ok((0..count)
        .map(|k| {
            let i = min + k * step;
            let n = if zero {
                format!("{i:0width$}")
            } else {
                format!("{i:width$}")
            };
            format!("{pre}{n}{post}").replace("%%", "%")
        })
        .collect())
}

/// The offset of voxels that end their file (NRRD `byte skip: -1`, MetaImage
/// `HeaderSize = -1`); `what` names the field for the error.
pub(crate) fn offset_of_trailing_data(layout: &RawLayout, what: &str) -> Result<u64, MedicalError> {
    let path = &layout.path;
    let len = std::fs::metadata(path)
        .map_err(|source| MedicalError::Io {
            path: path.clone(),
            source,
        })?
        .len();
    len.checked_sub(layout.data_bytes())
        .ok_or_else(|| MedicalError::Truncated {
            path: path.clone(),
            reason: format!(
                "{what} (data at the end) but the file holds {len} bytes, fewer than the {} declared",
                layout.data_bytes()
            ),
        })
}

/// How the world axes of a header's space relate to RAS+.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Space {
    /// Negate world axis i to reach RAS+.
    pub flip: [bool; 3],
    /// Multiply lengths by this to reach mm.
    pub to_mm: f64,
}

impl Space {
    pub const LPS: Space = Space {
        flip: [true, true, false],
        to_mm: 1.0,
    };
}

/// A grid as NRRD and MetaImage headers describe it, before it becomes a [`Volume`].
pub(crate) struct Grid {
    pub path: PathBuf,
    pub format: String,
    pub datatype: Datatype,
    /// Axis sizes in file order, fastest first.
    pub sizes: Vec<usize>,
    /// For every axis: its direction scaled by the spacing (world units), `None` for a
    /// non-spatial axis (channels, vector components, time, a list).
    pub directions: Vec<Option<[f64; 3]>>,
    pub origin: [f64; 3],
    pub space: Space,
    pub warnings: Vec<Warning>,
}

impl Grid {
    /// Check the sizes (every axis ≥ 1, the product fits in memory addressing) before any
    /// allocation; `field` names the header field for the error.
    pub fn check_sizes(&self, field: &'static str) -> Result<usize, MedicalError> {
        let bad = |reason: String| MedicalError::BadHeader {
            path: self.path.clone(),
            field,
            reason,
        };
        if let Some(i) = self.sizes.iter().position(|&s| s == 0) {
            return Err(bad(format!("axis {i} has size 0 in {:?}", self.sizes)));
        }
        self.sizes
            .iter()
            .try_fold(1usize, |n, &s| n.checked_mul(s))
            .filter(|&n| n <= isize::MAX as usize / 8)
            .ok_or_else(|| bad(format!("{:?} overflows the voxel count", self.sizes)))
    }
}

/// Turn decoded voxels (file order) and their grid into a RAS+ [`Volume`].
pub(crate) fn assemble(
    g: Grid,
    data: Vec<f32>,
    non_finite: usize,
    scaling: Option<(f64, f64)>,
) -> Result<Volume, MedicalError> {
    let path = g.path.clone();
    let header_err = |reason: String| MedicalError::BadHeader {
        path: path.clone(),
        field: "axes",
        reason,
    };
    let spatial: Vec<usize> = (0..g.sizes.len())
        .filter(|&i| g.directions[i].is_some())
        .collect();
    if !(2..=3).contains(&spatial.len()) {
        return Err(header_err(format!(
            "{} spatial axes among sizes {:?}; an image needs 2 or 3",
            spatial.len(),
            g.sizes
        )));
    }
    let (first, last) = (spatial[0], *spatial.last().unwrap_or(&0));
    if spatial.len() != last - first + 1 {
        return Err(header_err(format!(
            "a non-spatial axis lies between the spatial axes {spatial:?} of sizes {:?}",
            g.sizes
        )));
    }
    let channels_before: usize = g.sizes[..first].iter().product();
    let channels_after: usize = g.sizes[last + 1..].iter().product();
    if channels_before > 1 && channels_after > 1 {
        return Err(header_err(format!(
            "non-spatial axes both before and after the spatial axes in sizes {:?}",
            g.sizes
        )));
    }
    let mut dims = [1usize; 3];
    let mut cols = [[0f64; 3]; 3];
    for (k, &a) in spatial.iter().enumerate() {
        dims[k] = g.sizes[a];
        cols[k] = g.directions[a]
            .unwrap_or_default()
            .map(|x| x * g.space.to_mm);
    }
    if spatial.len() == 2 {
        // A 2-D image: the third axis is the unit normal of the first two.
        let [a, b] = [cols[0], cols[1]];
        let n = [
            a[1] * b[2] - a[2] * b[1],
            a[2] * b[0] - a[0] * b[2],
            a[0] * b[1] - a[1] * b[0],
        ];
        let len = n.iter().map(|x| x * x).sum::<f64>().sqrt();
        cols[2] = if len > 0.0 {
            n.map(|x| x / len)
        } else {
            [0.0, 0.0, 1.0]
        };
    }
    let mut affine = [[0f64; 4]; 4];
    affine[3][3] = 1.0;
    for r in 0..3 {
        let sign = if g.space.flip[r] { -1.0 } else { 1.0 };
        for (c, col) in cols.iter().enumerate() {
            affine[r][c] = sign * col[r];
        }
        affine[r][3] = sign * g.origin[r] * g.space.to_mm;
    }
    let spacing_mm = voxel_sizes(&affine);
    if let Some(i) = (0..3).find(|&i| !(spacing_mm[i] > 0.0 && spacing_mm[i].is_finite())) {
        return Err(MedicalError::SingularAffine {
            path: g.path,
            reason: format!(
                "axis {i} has a direction of length {} (directions {cols:?})",
                spacing_mm[i]
            ),
        });
    }
    if affine.iter().flatten().any(|x| !x.is_finite()) {
        return Err(MedicalError::SingularAffine {
            path: g.path,
            reason: format!("the origin {:?} is not finite", g.origin),
        });
    }
    let data = if channels_before > 1 {
        interleaved_to_planar(data, channels_before)
    } else {
        data
    };
    let mut warnings = g.warnings;
    if non_finite > 0 {
        warnings.push(Warning::NonFiniteVoxels { count: non_finite });
    }
    Ok(Volume {
        channels: channels_before * channels_after,
        data,
        dims,
        spacing_mm,
        world_from_voxel: affine,
        source: Provenance {
            path: g.path,
            format: g.format,
            datatype: g.datatype,
            scaling,
        },
        warnings,
    })
}

/// `[voxel][channel]` (channel fastest) → `[channel][voxel]`.
fn interleaved_to_planar(data: Vec<f32>, channels: usize) -> Vec<f32> {
    let n = data.len() / channels;
    let mut out = vec![0f32; data.len()];
    out.par_chunks_mut(n).enumerate().for_each(|(c, o)| {
        for (s, x) in o.iter_mut().enumerate() {
            *x = data[s * channels + c];
        }
    });
    out
}

/// Voxels stored as text (NRRD `ascii`/`text`, MetaImage `BinaryData = False`): `n`
/// numbers separated by white space (or commas) from byte `offset` of `path`.
pub(crate) fn read_text_values(
    path: &Path,
    offset: u64,
    n: usize,
) -> Result<(Vec<f32>, usize), MedicalError> {
    let bytes = std::fs::read(path).map_err(|source| MedicalError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let text = bytes.get(offset as usize..).unwrap_or_default();
    let text = String::from_utf8_lossy(text);
    let mut out = Vec::with_capacity(n.min(text.len() / 2 + 1));
    for (i, tok) in text
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|t| !t.is_empty())
        .take(n)
        .enumerate()
    {
        let v: f64 = tok.parse().map_err(|_| MedicalError::BadHeader {
            path: path.to_path_buf(),
            field: "data",
            reason: format!("value {i} of the text data is {tok:?}, not a number"),
        })?;
        out.push(v as f32);
    }
    if out.len() < n {
        return Err(MedicalError::Truncated {
            path: path.to_path_buf(),
            reason: format!(
                "the header declares {n} voxels, the text data holds {}",
                out.len()
            ),
        });
    }
    let non_finite = out.iter().filter(|x| !x.is_finite()).count();
    Ok((out, non_finite))
}

/// Parse `n` numbers from a header value (white space separated).
pub(crate) fn numbers<T: std::str::FromStr>(
    path: &Path,
    field: &'static str,
    value: &str,
    n: Option<usize>,
) -> Result<Vec<T>, MedicalError> {
    let bad = |reason: String| MedicalError::BadHeader {
        path: path.to_path_buf(),
        field,
        reason,
    };
    let v = value
        .split_whitespace()
        .map(|t| {
            t.parse::<T>().map_err(|_| {
                bad(format!(
                    "{t:?} in {value:?} is not a number of the right kind"
                ))
            })
        })
        .collect::<Result<Vec<T>, _>>()?;
    match n {
        Some(n) if v.len() != n => Err(bad(format!(
            "{value:?} holds {} values, expected {n}",
            v.len()
        ))),
        _ => Ok(v),
    }
}
