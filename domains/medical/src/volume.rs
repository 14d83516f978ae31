//! The volume type every transform takes and returns, and grid comparison.

use std::path::{Path, PathBuf};

use crate::error::MedicalError;
use crate::nifti::Datatype;

/// A volume on a voxel grid with its world coordinates.
///
/// # Shapes
/// `data` is `[channels][z][y][x]` flattened with x fastest (NIfTI order):
/// `data[((c * nz + z) * ny + y) * nx + x]`, `len = nx * ny * nz * channels`.
#[derive(Debug, Clone, PartialEq)]
pub struct Volume<T = f32> {
    pub data: Vec<T>,
    /// `[nx, ny, nz]`.
    pub dims: [usize; 3],
    /// Product of NIfTI `dim[4..=7]` (time points or vector components); 1 for 3-D.
    pub channels: usize,
    /// Voxel size along each voxel axis in mm: the column norms of `world_from_voxel`
    /// (nibabel's `voxel_sizes(affine)`, MONAI's spacing). Equals `pixdim[1..=3]` for a
    /// consistent header.
    pub spacing_mm: [f64; 3],
    /// Maps voxel indices `(i, j, k, 1)` to world mm (NIfTI RAS+ scanner/template space).
    pub world_from_voxel: [[f64; 4]; 4],
    /// Where the voxels came from (file, format, stored datatype). The volume itself is
    /// format-free: the fields above are all a transform needs.
    pub source: Provenance,
    /// Things the reader noticed but did not refuse.
    pub warnings: Vec<Warning>,
}

/// The file a volume was read from and how it was stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Provenance {
    /// The file the user named (the header of a detached pair or series).
    pub path: PathBuf,
    /// The format as read, e.g. `"NIfTI-1, single file, gzipped (.nii.gz), little-endian"`
    /// or `"NRRD0004, gzip, detached data in brain.raw.gz, big-endian"`.
    pub format: String,
    /// The stored voxel type (before any scaling).
    pub datatype: Datatype,
    /// `(slope, intercept)` applied to the stored values, if any.
    pub scaling: Option<(f64, f64)>,
}

/// An integer label map (segmentation) on a grid.
pub type LabelMap = Volume<u16>;

/// Non-fatal findings, returned rather than printed.
#[derive(Debug, Clone, PartialEq)]
pub enum Warning {
    /// `qform_code` and `sform_code` are both 0: the affine is `diag(pixdim[1..=3])`
    /// (NIfTI method 1; nibabel instead centres an ANALYZE-style LAS affine).
    NoOrientation,
    /// The header of a non-NIfTI format gives no directions (or no space): the affine is
    /// diagonal from the spacings the header gives (1 mm where it gives none).
    NoDirections { format: &'static str },
    /// The header states lengths in units other than mm; `scale` converted them to mm.
    Units { unit: String, scale: f64 },
    /// Anything else a reader noticed (an unnamed world space, irregular slice gaps, ...).
    Note(String),
    /// Voxels that are NaN or infinite after scaling (kept as read).
    NonFiniteVoxels { count: usize },
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Warning::NoOrientation => write!(
                f,
                "qform_code and sform_code are both 0: no orientation, using voxel sizes (pixdim) only"
            ),
            Warning::NonFiniteVoxels { count } => write!(f, "{count} voxels are NaN or infinite"),
            Warning::NoDirections { format } => write!(
                f,
                "the {format} header gives no space directions: no orientation, using the spacings only"
            ),
            Warning::Note(s) => write!(f, "{s}"),
            Warning::Units { unit, scale } => {
                write!(f, "lengths are in {unit}, multiplied by {scale} to mm")
            }
        }
    }
}

impl<T> Volume<T> {
    /// Voxels per channel (`nx * ny * nz`).
    pub fn n_spatial(&self) -> usize {
        self.dims.iter().product()
    }

    /// One channel's voxels, `[z][y][x]` flattened.
    ///
    /// # Panics
    /// If `c >= channels` (a programming error, not a data error).
    pub fn channel(&self, c: usize) -> &[T] {
        let n = self.n_spatial();
        &self.data[c * n..(c + 1) * n]
    }

    /// The file this volume was read from.
    pub fn path(&self) -> &Path {
        &self.source.path
    }

    /// Same grid, header and warnings, other data (`data.len()` must be a whole number of
    /// channels of this grid).
    pub fn with_data<U>(&self, data: Vec<U>) -> Volume<U> {
        debug_assert_eq!(data.len() % self.n_spatial().max(1), 0);
        Volume {
            channels: data.len() / self.n_spatial().max(1),
            data,
            dims: self.dims,
            spacing_mm: self.spacing_mm,
            world_from_voxel: self.world_from_voxel,
            source: self.source.clone(),
            warnings: self.warnings.clone(),
        }
    }
}

impl Volume<f32> {
    /// Replace NaN and infinite voxels by `value`; returns how many were replaced and drops
    /// the [`Warning::NonFiniteVoxels`].
    pub fn replace_non_finite(&mut self, value: f32) -> usize {
        let mut n = 0;
        for x in self.data.iter_mut().filter(|x| !x.is_finite()) {
            *x = value;
            n += 1;
        }
        self.warnings
            .retain(|w| !matches!(w, Warning::NonFiniteVoxels { .. }));
        n
    }
}

/// Affine elements may differ by this much (mm) on one grid: float32 storage of srow and
/// quaternions gives ~1e-5, real mismatches are much larger.
pub const GRID_TOLERANCE_MM: f64 = 1e-3;

/// Check that `label` lies on `image`'s grid: same `dims` and `world_from_voxel` (within
/// [`GRID_TOLERANCE_MM`]). Channels may differ. The error names both files and the field.
pub fn check_same_grid<A, B>(image: &Volume<A>, label: &Volume<B>) -> Result<(), MedicalError> {
    let mismatch = |field, a: String, b: String| MedicalError::GridMismatch {
        image: image.source.path.clone(),
        label: label.source.path.clone(),
        field,
        image_value: a,
        label_value: b,
    };
    if image.dims != label.dims {
        return Err(mismatch(
            "dims",
            format!("{:?}", image.dims),
            format!("{:?}", label.dims),
        ));
    }
    for r in 0..3 {
        for c in 0..4 {
            let (a, b) = (image.world_from_voxel[r][c], label.world_from_voxel[r][c]);
            let close = (a - b).abs() <= GRID_TOLERANCE_MM; // false for NaN
            if !close {
                return Err(mismatch(
                    "world_from_voxel (affine)",
                    format!("{:?}", image.world_from_voxel[r]),
                    format!("{:?} (row {r}, column {c})", label.world_from_voxel[r]),
                ));
            }
        }
    }
    Ok(())
}
