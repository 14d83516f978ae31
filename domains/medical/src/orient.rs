//! World coordinates and orientation.
//!
//! [`world_from_voxel`] follows the NIfTI-1 spec (`nifti1.h`, "3D IMAGE (VOLUME)
//! ORIENTATION AND LOCATION IN SPACE"): method 3 when `sform_code > 0` (the `srow_x/y/z`
//! rows), else method 2 when `qform_code > 0` (the quaternion `quatern_b/c/d` with
//! `a = sqrt(1 - b² - c² - d²)`, voxel sizes `pixdim[1..=3]`, `qfac = pixdim[0] < 0 ? -1 : 1`
//! on the third axis, offset `qoffset_x/y/z`), else method 1 (`diag(pixdim[1..=3])`) with a
//! [`Warning::NoOrientation`].
//!
//! [`axcodes`] and [`to_ras`] reproduce nibabel's `aff2axcodes` (via `io_orientation`)
//! and `as_closest_canonical`: the closest orthogonal matrix to the column-normalised
//! affine (its polar factor; nibabel takes it from an SVD, we by Newton iteration, which
//! converges to the same matrix for a non-singular affine) assigns each voxel axis, in
//! order, to the world axis of its largest remaining component. Reorientation only permutes
//! and flips axes: no voxel is interpolated.

use rayon::prelude::*;

use crate::error::MedicalError;
use crate::nifti::{NiftiHeader, NiftiVersion};
use crate::volume::{Volume, Warning};

/// A 4×4 affine, row-major, mapping voxel `(i, j, k, 1)` to world mm.
pub type Affine = [[f64; 4]; 4];

fn identity() -> Affine {
    let mut a = [[0.0; 4]; 4];
    for (i, row) in a.iter_mut().enumerate() {
        row[i] = 1.0;
    }
    a
}

/// The affine of a header per the NIfTI rules above, and a warning when neither sform
/// nor qform is set.
pub fn world_from_voxel(h: &NiftiHeader) -> Result<(Affine, Option<Warning>), MedicalError> {
    let singular = |reason: String| MedicalError::SingularAffine {
        path: h.path.clone(),
        reason,
    };
    let mut a = identity();
    let warning = if h.sform_code > 0 {
        a[..3].copy_from_slice(&h.srow);
        if h.srow.iter().flatten().any(|x| !x.is_finite()) {
            return Err(singular(format!(
                "sform rows {:?} hold non-finite values",
                h.srow
            )));
        }
        None
    } else if h.qform_code > 0 {
        a = qform_affine(h)?;
        None
    } else {
        for (i, row) in a.iter_mut().take(3).enumerate() {
            row[i] = h.pixdim[i + 1];
        }
        Some(Warning::NoOrientation)
    };
    let sizes = voxel_sizes(&a);
    if let Some(i) = (0..3).find(|&i| !(sizes[i] > 0.0 && sizes[i].is_finite())) {
        return Err(singular(format!("column {i} has length {}", sizes[i])));
    }
    Ok((a, warning))
}

/// The qform affine (NIfTI method 2), with nibabel's normalisation of the quaternion.
fn qform_affine(h: &NiftiHeader) -> Result<Affine, MedicalError> {
    let [b, c, d] = h.quatern_bcd;
    if !(b.is_finite() && c.is_finite() && d.is_finite()) {
        return Err(MedicalError::BadHeader {
            path: h.path.clone(),
            field: "quatern_b/c/d",
            reason: format!("({b}, {c}, {d}) are not all finite"),
        });
    }
    if let Some(x) = h.qoffset.iter().find(|x| !x.is_finite()) {
        return Err(MedicalError::BadHeader {
            path: h.path.clone(),
            field: "qoffset_x/y/z",
            reason: format!("{x} is not finite"),
        });
    }
    // nibabel's fillpositive threshold: 3 eps of the stored float type.
    let eps = match h.format.version {
        NiftiVersion::Nifti1 => f64::from(f32::EPSILON),
        NiftiVersion::Nifti2 => f64::EPSILON,
    };
    let w2 = 1.0 - (b * b + c * c + d * d);
    if w2 < -3.0 * eps {
        return Err(MedicalError::BadHeader {
            path: h.path.clone(),
            field: "quatern_b/c/d",
            reason: format!("b² + c² + d² = {} exceeds 1", 1.0 - w2),
        });
    }
    let a = w2.max(0.0).sqrt();
    let r = quat2mat(a, b, c, d);
    let qfac = if h.pixdim[0] < 0.0 { -1.0 } else { 1.0 };
    let zooms = [h.pixdim[1], h.pixdim[2], h.pixdim[3] * qfac];
    let mut out = identity();
    for i in 0..3 {
        for j in 0..3 {
            out[i][j] = r[i][j] * zooms[j];
        }
        out[i][3] = h.qoffset[i];
    }
    Ok(out)
}

/// Rotation matrix of the (normalised) quaternion `(w, x, y, z)`.
fn quat2mat(w: f64, x: f64, y: f64, z: f64) -> [[f64; 3]; 3] {
    let nq = w * w + x * x + y * y + z * z;
    if nq < f64::EPSILON {
        return [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    }
    let s = 2.0 / nq;
    let (xs, ys, zs) = (x * s, y * s, z * s);
    let (wx, wy, wz) = (w * xs, w * ys, w * zs);
    let (xx, xy, xz) = (x * xs, x * ys, x * zs);
    let (yy, yz, zz) = (y * ys, y * zs, z * zs);
    [
        [1.0 - (yy + zz), xy - wz, xz + wy],
        [xy + wz, 1.0 - (xx + zz), yz - wx],
        [xz - wy, yz + wx, 1.0 - (xx + yy)],
    ]
}

/// Voxel size along each voxel axis (column norms of the 3×3 part), nibabel's
/// `affines.voxel_sizes`.
pub fn voxel_sizes(a: &Affine) -> [f64; 3] {
    std::array::from_fn(|j| (0..3).map(|i| a[i][j] * a[i][j]).sum::<f64>().sqrt())
}

/// For each voxel axis: the world axis it runs along (0 = x/L-R, 1 = y/P-A, 2 = z/I-S) and
/// the direction (+1 towards R/A/S, -1 towards L/P/I). nibabel's `io_orientation`.
/// Fails only for a singular or non-finite affine.
pub fn orientation(a: &Affine) -> Result<[(usize, i8); 3], String> {
    let zooms = voxel_sizes(a);
    let mut m = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            m[i][j] = a[i][j] / if zooms[j] == 0.0 { 1.0 } else { zooms[j] };
        }
    }
    let mut r = polar_factor(m)
        .ok_or_else(|| format!("3x3 part {:?} is singular or not finite", &a[..3]))?;
    let mut out = [(0, 1); 3];
    for (j, o) in out.iter_mut().enumerate() {
        let mut best = 0;
        for i in 1..3 {
            if r[i][j].abs() > r[best][j].abs() {
                best = i;
            }
        }
        *o = (best, if r[best][j] < 0.0 { -1 } else { 1 });
        r[best] = [0.0; 3];
    }
    Ok(out)
}

/// The orthogonal polar factor `U Vᵀ` of `m = U S Vᵀ`, by Newton's iteration
/// `X ← (X + X⁻ᵀ) / 2` (Higham 1986); `None` if `m` is singular or not finite.
fn polar_factor(m: [[f64; 3]; 3]) -> Option<[[f64; 3]; 3]> {
    let mut x = m;
    for _ in 0..100 {
        let inv_t = inverse_transpose(&x)?;
        let mut next = [[0.0; 3]; 3];
        let mut change: f64 = 0.0;
        for i in 0..3 {
            for j in 0..3 {
                next[i][j] = 0.5 * (x[i][j] + inv_t[i][j]);
                change = change.max((next[i][j] - x[i][j]).abs());
            }
        }
        x = next;
        if change < 1e-14 {
            break;
        }
    }
    x.iter().flatten().all(|v| v.is_finite()).then_some(x)
}

fn inverse_transpose(m: &[[f64; 3]; 3]) -> Option<[[f64; 3]; 3]> {
    // Cofactor matrix / det is exactly the inverse transposed.
    let c = |i: usize, j: usize| {
        let (i1, i2) = ((i + 1) % 3, (i + 2) % 3);
        let (j1, j2) = ((j + 1) % 3, (j + 2) % 3);
        m[i1][j1] * m[i2][j2] - m[i1][j2] * m[i2][j1]
    };
    let cof: [[f64; 3]; 3] = std::array::from_fn(|i| std::array::from_fn(|j| c(i, j)));
    let det: f64 = (0..3).map(|j| m[0][j] * cof[0][j]).sum();
    let scale = m.iter().flatten().fold(0.0f64, |s, v| s.max(v.abs()));
    if !(det.is_finite() && det.abs() > 1e-12 * scale.powi(3)) {
        return None;
    }
    Some(cof.map(|row| row.map(|v| v / det)))
}

/// Orientation codes like nibabel's `aff2axcodes`: `"RAS"`, `"LPS"`, `"LAS"`, ...
pub fn axcodes(a: &Affine) -> Result<String, String> {
    const LABELS: [[char; 2]; 3] = [['L', 'R'], ['P', 'A'], ['I', 'S']];
    Ok(orientation(a)?
        .iter()
        .map(|&(ax, dir)| LABELS[ax][usize::from(dir > 0)])
        .collect())
}

/// Reorient to RAS+ by permuting and flipping voxel axes, as nibabel's
/// `as_closest_canonical`: afterwards voxel axis 0 runs towards R, 1 towards A, 2 towards
/// S (as closely as the grid allows). `world_from_voxel` and `spacing_mm` are updated so
/// every voxel keeps its world position; channels are untouched. Works for images and label
/// maps alike.
pub fn to_ras<T: Copy + Send + Sync>(v: &Volume<T>) -> Result<Volume<T>, MedicalError> {
    let ornt = orientation(&v.world_from_voxel).map_err(|reason| MedicalError::SingularAffine {
        path: v.source.path.clone(),
        reason,
    })?;
    if ornt
        .iter()
        .enumerate()
        .all(|(i, &(ax, dir))| ax == i && dir > 0)
    {
        return Ok(v.clone());
    }
    let n_in = v.dims;
    let strides = [1, n_in[0], n_in[0] * n_in[1]];
    let mut dims = [0; 3];
    let mut spacing_mm = [0.0; 3];
    // Input offset of output index X: sum over output axes of base[a] + X[a] * step[a].
    let mut base = [0isize; 3];
    let mut step = [0isize; 3];
    let old = v.world_from_voxel;
    let mut a = old;
    for (i, &(o, dir)) in ornt.iter().enumerate() {
        dims[o] = n_in[i];
        spacing_mm[o] = v.spacing_mm[i];
        let s = strides[i] as isize;
        let flipped = dir < 0;
        base[o] = if flipped {
            (n_in[i] as isize - 1) * s
        } else {
            0
        };
        step[o] = if flipped { -s } else { s };
        // New column o is the old column i, negated if flipped; a flipped axis moves the
        // origin to the old last voxel.
        for r in 0..3 {
            a[r][o] = f64::from(dir) * old[r][i];
        }
        if flipped {
            for r in 0..3 {
                a[r][3] += (n_in[i] as f64 - 1.0) * old[r][i];
            }
        }
    }
    let mut data = v.data.clone();
    let plane = dims[0] * dims[1];
    if plane > 0 {
        for (c, out) in data.chunks_mut(v.n_spatial()).enumerate() {
            let src = v.channel(c);
            out.par_chunks_mut(plane)
                .enumerate()
                .for_each(|(z, slice)| {
                    let oz = base[2] + z as isize * step[2];
                    for (y, row) in slice.chunks_mut(dims[0]).enumerate() {
                        let oy = oz + base[1] + y as isize * step[1] + base[0];
                        for (x, o) in row.iter_mut().enumerate() {
                            *o = src[(oy + x as isize * step[0]) as usize];
                        }
                    }
                });
        }
    }
    Ok(Volume {
        data,
        dims,
        channels: v.channels,
        spacing_mm,
        world_from_voxel: a,
        source: v.source.clone(),
        warnings: v.warnings.clone(),
    })
}
