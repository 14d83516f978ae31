//! Intensity normalisation (CT windowing, MRI percentile clipping + z-score) and
//! foreground cropping.
//!
//! All functions refuse NaN/infinite input with [`MedicalError::NonFinite`]; clean it first
//! with [`Volume::replace_non_finite`]. Percentiles use numpy's default ("linear")
//! definition; the standard deviation is the population one (`ddof = 0`).

use rayon::prelude::*;

use crate::error::MedicalError;
use crate::volume::Volume;

/// Target range of a CT window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputRange {
    ZeroOne,
    MinusOneOne,
}

fn check_finite(data: &[f32], what: &str) -> Result<(), MedicalError> {
    let count = data.par_iter().filter(|x| !x.is_finite()).count();
    if count > 0 {
        return Err(MedicalError::NonFinite {
            what: what.to_string(),
            count,
        });
    }
    Ok(())
}

/// Clip to the window `[lo_hu, hi_hu]` (Hounsfield units) and scale it linearly onto
/// `range` (e.g. soft tissue `-160..240`, lung `-1000..200`, bone `-500..1300`).
pub fn ct_window(
    v: &mut Volume<f32>,
    lo_hu: f32,
    hi_hu: f32,
    range: OutputRange,
) -> Result<(), MedicalError> {
    if !(lo_hu.is_finite() && hi_hu.is_finite() && lo_hu < hi_hu) {
        return Err(MedicalError::InvalidArgument {
            name: "window",
            reason: format!("[{lo_hu}, {hi_hu}] must be finite with lo < hi"),
        });
    }
    check_finite(&v.data, &format!("CT window of {}", v.path().display()))?;
    let inv = 1.0 / (f64::from(hi_hu) - f64::from(lo_hu));
    let (scale, shift) = match range {
        OutputRange::ZeroOne => (1.0, 0.0),
        OutputRange::MinusOneOne => (2.0, -1.0),
    };
    v.data.par_iter_mut().for_each(|x| {
        let t = (f64::from(x.clamp(lo_hu, hi_hu)) - f64::from(lo_hu)) * inv;
        *x = (t * scale + shift) as f32;
    });
    Ok(())
}

/// Which voxels belong to the object (the rest is air/background).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Foreground {
    /// `x != 0` (MONAI's `nonzero=True`; skull-stripped MRI).
    NonZero,
    /// `x > threshold`.
    Above(f32),
}

impl Foreground {
    pub fn contains(self, x: f32) -> bool {
        match self {
            Foreground::NonZero => x != 0.0,
            Foreground::Above(t) => x > t,
        }
    }
}

/// MRI normalisation settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MriNorm {
    /// Lower clipping percentile of the foreground values, in percent (default 0.5).
    pub lower_percentile: f64,
    /// Upper clipping percentile, in percent (default 99.5).
    pub upper_percentile: f64,
    pub foreground: Foreground,
}

impl Default for MriNorm {
    fn default() -> Self {
        MriNorm {
            lower_percentile: 0.5,
            upper_percentile: 99.5,
            foreground: Foreground::NonZero,
        }
    }
}

/// What [`mri_zscore`] computed for one channel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ZScoreStats {
    /// Clipping bounds (the two percentiles of the foreground values).
    pub clip_lo: f64,
    pub clip_hi: f64,
    /// Mean and standard deviation of the clipped foreground values (std 0 is taken as 1).
    pub mean: f64,
    pub std: f64,
    pub n_foreground: usize,
}

/// Per channel: foreground mask from the input values, clip every voxel to the foreground's
/// `[lower, upper]` percentiles, then z-score foreground voxels with the clipped
/// foreground's mean and std; background voxels become 0.
pub fn mri_zscore(v: &mut Volume<f32>, cfg: &MriNorm) -> Result<Vec<ZScoreStats>, MedicalError> {
    let (lo_p, hi_p) = (cfg.lower_percentile, cfg.upper_percentile);
    if !(0.0..=100.0).contains(&lo_p) || !(0.0..=100.0).contains(&hi_p) || lo_p > hi_p {
        return Err(MedicalError::InvalidArgument {
            name: "percentiles",
            reason: format!("({lo_p}, {hi_p}) must satisfy 0 <= lower <= upper <= 100"),
        });
    }
    let what = format!("MRI normalisation of {}", v.path().display());
    check_finite(&v.data, &what)?;
    let n = v.n_spatial().max(1);
    let fg = cfg.foreground;
    let mut stats = Vec::with_capacity(v.channels);
    for ch in v.data.chunks_mut(n) {
        let mut values: Vec<f32> = ch.par_iter().copied().filter(|&x| fg.contains(x)).collect();
        if values.is_empty() {
            return Err(MedicalError::InvalidArgument {
                name: "foreground",
                reason: format!("{what}: no voxel is foreground ({fg:?})"),
            });
        }
        let clip_lo = percentile(&mut values, lo_p);
        let clip_hi = percentile(&mut values, hi_p);
        let clip = |x: f32| f64::from(x).clamp(clip_lo, clip_hi);
        let count = values.len() as f64;
        let mean = values.par_iter().map(|&x| clip(x)).sum::<f64>() / count;
        let var = values
            .par_iter()
            .map(|&x| (clip(x) - mean).powi(2))
            .sum::<f64>()
            / count;
        let std = if var.sqrt() > 1e-8 { var.sqrt() } else { 1.0 };
        ch.par_iter_mut().for_each(|x| {
            *x = if fg.contains(*x) {
                ((clip(*x) - mean) / std) as f32
            } else {
                0.0
            };
        });
        stats.push(ZScoreStats {
            clip_lo,
            clip_hi,
            mean,
            std,
            n_foreground: values.len(),
        });
    }
    Ok(stats)
}

/// numpy's default percentile (linear interpolation between order statistics); `values`
/// is non-empty and finite, and gets reordered.
fn percentile(values: &mut [f32], p: f64) -> f64 {
    let pos = p / 100.0 * (values.len() - 1) as f64;
    let k = (pos.floor() as usize).min(values.len() - 1);
    let (_, &mut a, rest) = values.select_nth_unstable_by(k, f32::total_cmp);
    let a = f64::from(a);
    match rest.iter().copied().min_by(f32::total_cmp) {
        Some(b) if pos > k as f64 => a + (f64::from(b) - a) * (pos - k as f64),
        _ => a,
    }
}

/// A box of voxels: `start` inclusive, `end` exclusive, `[x, y, z]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CropBox {
    pub start: [usize; 3],
    pub end: [usize; 3],
}

impl CropBox {
    pub fn shape(&self) -> [usize; 3] {
        std::array::from_fn(|i| self.end[i] - self.start[i])
    }
}

/// Bounding box of the voxels where `is_foreground` holds in any channel, grown by
/// `margin` voxels on every side (clamped to the grid); `None` if nothing is foreground.
/// Apply the same box to the label map with [`crop`].
pub fn foreground_box<T: Copy + Sync>(
    v: &Volume<T>,
    is_foreground: impl Fn(T) -> bool + Sync,
    margin: usize,
) -> Option<CropBox> {
    let [nx, ny, nz] = v.dims;
    let n = v.n_spatial();
    let plane = nx * ny;
    if n == 0 {
        return None;
    }
    // Per z slice: (min x, max x, min y, max y) of the foreground, merged over channels.
    let merge = |a: Option<[usize; 6]>, b: Option<[usize; 6]>| match (a, b) {
        (Some(a), Some(b)) => Some([
            a[0].min(b[0]),
            a[1].max(b[1]),
            a[2].min(b[2]),
            a[3].max(b[3]),
            a[4].min(b[4]),
            a[5].max(b[5]),
        ]),
        (a, None) => a,
        (None, b) => b,
    };
    let bounds = v
        .data
        .par_chunks(plane)
        .enumerate()
        .map(|(s, slice)| {
            let z = s % nz;
            let mut b: Option<[usize; 6]> = None;
            for (y, row) in slice.chunks(nx).enumerate() {
                let first = row.iter().position(|&x| is_foreground(x));
                if let Some(x0) = first {
                    let x1 = row.iter().rposition(|&x| is_foreground(x)).unwrap_or(x0);
                    b = merge(b, Some([x0, x1, y, y, z, z]));
                }
            }
            b
        })
        .reduce(|| None, merge)?;
    let lo = |a: usize| a.saturating_sub(margin);
    Some(CropBox {
        start: [lo(bounds[0]), lo(bounds[2]), lo(bounds[4])],
        end: [
            (bounds[1] + 1 + margin).min(nx),
            (bounds[3] + 1 + margin).min(ny),
            (bounds[5] + 1 + margin).min(nz),
        ],
    })
}

/// Cut `bx` out of every channel; the affine's origin moves to the box's first voxel, so
/// every voxel keeps its world position.
pub fn crop<T: Copy>(v: &Volume<T>, bx: &CropBox) -> Result<Volume<T>, MedicalError> {
    if (0..3).any(|i| bx.start[i] >= bx.end[i] || bx.end[i] > v.dims[i]) {
        return Err(MedicalError::InvalidArgument {
            name: "crop box",
            reason: format!("{bx:?} is empty or outside the grid {:?}", v.dims),
        });
    }
    let [nx, ny, _] = v.dims;
    let shape = bx.shape();
    let mut data = Vec::with_capacity(shape.iter().product::<usize>() * v.channels);
    for c in 0..v.channels {
        let src = v.channel(c);
        for z in bx.start[2]..bx.end[2] {
            for y in bx.start[1]..bx.end[1] {
                let row = (z * ny + y) * nx;
                data.extend_from_slice(&src[row + bx.start[0]..row + bx.end[0]]);
            }
        }
    }
    let mut a = v.world_from_voxel;
    for row in a.iter_mut().take(3) {
        row[3] += (0..3).map(|j| row[j] * bx.start[j] as f64).sum::<f64>();
    }
    Ok(Volume {
        data,
        dims: shape,
        channels: v.channels,
        spacing_mm: v.spacing_mm,
        world_from_voxel: a,
        source: v.source.clone(),
        warnings: v.warnings.clone(),
    })
}
