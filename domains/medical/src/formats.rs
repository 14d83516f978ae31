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
use crate::nifti::{self, labels_from_volume, read_layout, Compression, Datatype, RawLayout};
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
    /// From the first bytes (DICOM's `DICM` marker, NRRD's `NRRD000x` magic, a MetaImage
    /// key), else the name; a folder (or `folder#series=N`) is DICOM.
    pub fn detect(path: &Path) -> Result<Format, MedicalError> {
        if crate::dicom::is_dicom_name(path) {
            return Ok(Format::Dicom);
        }
        let name = path.to_string_lossy().to_ascii_lowercase();
        let mut head = Vec::with_capacity(132);
        std::fs::File::open(path)
            .and_then(|f| f.take(132).read_to_end(&mut head))
            .map_err(|source| MedicalError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        if head.get(128..132) == Some(b"DICM") {
            return Ok(Format::Dicom);
        }
        let head = &head[..head.len().min(64)];
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

    /// Read `path` as this format.
    pub fn read(self, path: &Path) -> Result<Volume, MedicalError> {
        match self {
            Format::Nifti => nifti::read_volume(path),
            Format::Nrrd => crate::nrrd::read(path),
            Format::MetaImage => crate::metaimage::read(path),
            Format::Dicom => crate::dicom::read(path),
        }
    }
}

/// Read an image of any supported format as f32, oriented as stored (see the module
/// documentation).
pub fn read_volume(path: &Path) -> Result<Volume, MedicalError> {
    Format::detect(path)?.read(path)
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

/// Where the voxels of an NRRD or MetaImage header lie: in the header file itself, in one
/// data file, or in equal slabs over several files.
pub(crate) struct DataFiles {
    /// The files in order (the header file itself when `attached`).
    pub files: Vec<PathBuf>,
    /// The data follows the header in the header file.
    pub attached: bool,
    /// The `subdim` of a multi-file form as written (`2`, or MetaIO's `2D`).
    subdim: Option<String>,
}

impl DataFiles {
    /// Parse a data-file field (`field`, e.g. `data file`): `None` for attached data;
    /// `LIST [subdim]` with the names in `list`; `<printf format> <min> <max> <step>
    /// [subdim]`; or one file name. Names are relative to the header's folder and every
    /// file must open (the error names the header and the field).
    pub fn parse(
        header: &Path,
        field: &'static str,
        value: Option<&str>,
        list: &[String],
    ) -> Result<DataFiles, MedicalError> {
        let dir = header.parent().unwrap_or(Path::new("."));
        let resolve = |name: &str| -> Result<PathBuf, MedicalError> {
            let p = PathBuf::from(name);
            let p = if p.is_absolute() { p } else { dir.join(p) };
            std::fs::File::open(&p)
                .map_err(|e| MedicalError::BadHeader {
                    path: header.to_path_buf(),
                    field,
                    reason: format!(
                        "names the data file {}, which cannot be opened: {e}",
                        p.display()
                    ),
                })
                .map(|_| p)
        };
        let Some(value) = value else {
            return Ok(DataFiles {
                files: vec![header.to_path_buf()],
                attached: true,
                subdim: None,
            });
        };
        let words: Vec<&str> = value.split_whitespace().collect();
        let (names, subdim) = if words.first() == Some(&"LIST") {
            (list.to_vec(), words.get(1))
        } else if words.len() >= 4 && words[0].contains('%') {
            (
                expand_pattern(header, field, words[0], &words[1..4])?,
                words.get(4),
            )
        } else {
            (vec![value.to_string()], None)
        };
        Ok(DataFiles {
            files: names.iter().map(|n| resolve(n)).collect::<Result<_, _>>()?,
            attached: false,
            subdim: subdim.map(|s| s.to_string()),
        })
    }

    /// How many of `sizes` (the axes a file may split, fastest first) each file holds:
    /// `subdim`, by default all but the slowest when there are several files; the number
    /// of files must be the product of the remaining sizes.
    pub fn slab_axes(
        &self,
        header: &Path,
        field: &'static str,
        sizes: &[usize],
    ) -> Result<usize, MedicalError> {
        let bad = |reason: String| MedicalError::BadHeader {
            path: header.to_path_buf(),
            field,
            reason,
        };
        let nd = sizes.len();
        let axes = match &self.subdim {
            None => nd - usize::from(self.files.len() > 1),
            Some(d) => d
                .trim_end_matches(['D', 'd'])
                .parse()
                .ok()
                .filter(|d| (1..=nd).contains(d))
                .ok_or_else(|| bad(format!("subdim {d:?}, expected 1..={nd}")))?,
        };
        let needed: usize = sizes[axes..].iter().product();
        if self.files.len() != needed {
            return Err(bad(format!(
                "{} data files for sizes {sizes:?} with {axes} axes per file ({needed} needed)",
                self.files.len()
            )));
        }
        Ok(axes)
    }

    /// The format's description of where the data is, e.g. `detached data in 3 files from
    /// a.raw`.
    pub fn describe(&self, attached: &str) -> String {
        match (self.attached, self.files.len()) {
            (true, _) => attached.to_string(),
            (false, 1) => format!("data in {}", self.files[0].display()),
            (false, n) => format!("data in {n} files from {}", self.files[0].display()),
        }
    }

    /// Read every file's slab of `layout.shape` voxels and concatenate them. A file's data
    /// (or compressed stream) starts at `start(file)`; `skip` more bytes are skipped (in
    /// the inflated data of a compressed stream; `-1`: uncompressed voxels ending the
    /// file, named `skip_name` in errors). Text data holds whitespace-separated numbers.
    pub fn read(
        &self,
        mut layout: RawLayout,
        text: bool,
        compression: Compression,
        start: impl Fn(&Path) -> Result<u64, MedicalError>,
        skip: i64,
        skip_name: &str,
    ) -> Result<(Vec<f32>, usize), MedicalError> {
        let mut data = Vec::new();
        let mut non_finite = 0;
        for file in &self.files {
            let start = start(file)?;
            layout.path = file.clone();
            let (d, nf) = match (text, compression, skip) {
                (true, _, s) => read_text_values(file, start + s.max(0) as u64, layout.n_voxels())?,
                (false, Compression::None, -1) => {
                    layout.offset = offset_of_trailing_data(&layout, skip_name)?;
                    read_layout(&layout, 0, Compression::None)?
                }
                (false, Compression::None, s) => {
                    layout.offset = start + s.max(0) as u64;
                    read_layout(&layout, 0, Compression::None)?
                }
                (false, c, s) => {
                    layout.offset = s.max(0) as u64;
                    read_layout(&layout, start, c)?
                }
            };
            if self.files.len() == 1 {
                data = d;
            } else {
                data.extend_from_slice(&d);
            }
            non_finite += nf;
        }
        Ok((data, non_finite))
    }
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
