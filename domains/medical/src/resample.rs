//! Resampling to a target voxel spacing in mm (trilinear for images, nearest for labels).
//!
//! Convention (SimpleITK-style "keep origin and direction, change spacing", as nnU-Net and
//! most preprocessing pipelines use it):
//! - output size per axis `n_out = max(1, round(n_in * spacing_in / spacing_out))`, i.e.
//!   the physical extent divided by the target spacing, rounded half away from zero;
//! - output voxel `j` sits at input continuous index `j * spacing_out / spacing_in`, so
//!   voxel 0 keeps its world position and the spacing is exactly the target;
//!   `world_from_voxel` columns are scaled by `spacing_out / spacing_in`, its translation
//!   is unchanged;
//! - positions past the last input voxel take the edge value (scipy's `mode="nearest"`).
//!
//! Linear interpolation equals `scipy.ndimage.map_coordinates(order=1, mode="nearest")` at
//! those positions; nearest picks index `floor(x + 0.5)` as scipy's `order=0` does. Each
//! channel is resampled on its own; output z slices run in parallel (rayon).

use rayon::prelude::*;

use crate::error::MedicalError;
use crate::volume::Volume;

/// Output grid size for `dims` at `spacing_mm` resampled to `target_mm` (see module docs).
pub fn output_shape(dims: [usize; 3], spacing_mm: [f64; 3], target_mm: [f64; 3]) -> [usize; 3] {
    std::array::from_fn(|i| {
        ((dims[i] as f64 * spacing_mm[i] / target_mm[i]).round() as usize).max(1)
    })
}

/// Trilinear resampling of an image to `target_mm`.
pub fn resample_linear(v: &Volume<f32>, target_mm: [f64; 3]) -> Result<Volume<f32>, MedicalError> {
    resample_with(v, target_mm, |axes, src, dims, out, z| {
        let (z0, z1, wz) = axes[2][z];
        let plane = dims[0] * dims[1];
        for (y, row) in out.chunks_mut(axes[0].len()).enumerate() {
            let (y0, y1, wy) = axes[1][y];
            let r = [
                z0 * plane + y0 * dims[0],
                z0 * plane + y1 * dims[0],
                z1 * plane + y0 * dims[0],
                z1 * plane + y1 * dims[0],
            ];
            for (o, &(x0, x1, wx)) in row.iter_mut().zip(&axes[0]) {
                let lerp = |r: usize| {
                    let (a, b) = (f64::from(src[r + x0]), f64::from(src[r + x1]));
                    a + (b - a) * wx
                };
                let (c00, c01, c10, c11) = (lerp(r[0]), lerp(r[1]), lerp(r[2]), lerp(r[3]));
                let c0 = c00 + (c01 - c00) * wy;
                let c1 = c10 + (c11 - c10) * wy;
                *o = (c0 + (c1 - c0) * wz) as f32;
            }
        }
    })
}

/// Nearest-neighbour resampling (label maps, or any voxel type) to `target_mm`.
pub fn resample_nearest<T: Copy + Send + Sync>(
    v: &Volume<T>,
    target_mm: [f64; 3],
) -> Result<Volume<T>, MedicalError> {
    resample_with(v, target_mm, |axes, src, dims, out, z| {
        let near = |(i0, i1, w): (usize, usize, f64)| if w >= 0.5 { i1 } else { i0 };
        let zi = near(axes[2][z]);
        for (y, row) in out.chunks_mut(axes[0].len()).enumerate() {
            let r = (zi * dims[1] + near(axes[1][y])) * dims[0];
            for (o, &ax) in row.iter_mut().zip(&axes[0]) {
                *o = src[r + near(ax)];
            }
        }
    })
}

/// For each output index along one axis: the two input neighbours and the weight of the
/// second, with positions clamped to the input (`w = 0` at and past the last voxel).
fn axis_weights(n_in: usize, n_out: usize, ratio: f64) -> Vec<(usize, usize, f64)> {
    (0..n_out)
        .map(|j| {
            let x = (j as f64 * ratio).min((n_in - 1) as f64);
            let i0 = x.floor() as usize;
            let i1 = (i0 + 1).min(n_in - 1);
            (i0, i1, if i1 == i0 { 0.0 } else { x - i0 as f64 })
        })
        .collect()
}

type Axes = [Vec<(usize, usize, f64)>; 3];

fn resample_with<T: Copy + Send + Sync>(
    v: &Volume<T>,
    target_mm: [f64; 3],
    slice: impl Fn(&Axes, &[T], [usize; 3], &mut [T], usize) + Sync,
) -> Result<Volume<T>, MedicalError> {
    if let Some(t) = target_mm.iter().find(|t| !(t.is_finite() && **t > 0.0)) {
        return Err(MedicalError::InvalidArgument {
            name: "target_mm",
            reason: format!("{t} in {target_mm:?}: every target spacing must be finite and > 0"),
        });
    }
    if v.n_spatial() == 0 || v.data.len() != v.n_spatial() * v.channels {
        return Err(MedicalError::InvalidArgument {
            name: "volume",
            reason: format!(
                "dims {:?} x {} channels do not match {} values",
                v.dims,
                v.channels,
                v.data.len()
            ),
        });
    }
    let dims = output_shape(v.dims, v.spacing_mm, target_mm);
    let n_out = dims
        .iter()
        .try_fold(v.channels, |n, &d| n.checked_mul(d))
        .filter(|&n| n <= (isize::MAX as usize) / 16)
        .ok_or_else(|| MedicalError::InvalidArgument {
            name: "target_mm",
            reason: format!("{target_mm:?} would make a {dims:?} grid, too large"),
        })?;
    let ratio: [f64; 3] = std::array::from_fn(|i| target_mm[i] / v.spacing_mm[i]);
    let axes: Axes = std::array::from_fn(|i| axis_weights(v.dims[i], dims[i], ratio[i]));
    let plane = dims[0] * dims[1];
    let mut data = Vec::with_capacity(n_out);
    for c in 0..v.channels {
        let src = v.channel(c);
        let mut out = vec![src[0]; plane * dims[2]];
        out.par_chunks_mut(plane)
            .enumerate()
            .for_each(|(z, o)| slice(&axes, src, v.dims, o, z));
        data.extend_from_slice(&out);
    }
    let mut a = v.world_from_voxel;
    for row in a.iter_mut().take(3) {
        for (j, r) in ratio.iter().enumerate() {
            row[j] *= r;
        }
    }
    Ok(Volume {
        data,
        dims,
        channels: v.channels,
        spacing_mm: target_mm,
        world_from_voxel: a,
        source: v.source.clone(),
        warnings: v.warnings.clone(),
    })
}
