//! 3-D patch tokens with coordinates in millimetres.
//!
//! A `[C, nz, ny, nx]` array (x fastest, as NIfTI stores voxels) on a RAS+ grid with voxel
//! spacing `(sx, sy, sz)` mm becomes non-overlapping `patch = [px, py, pz]` patches. Tokens
//! are row-major over the patch grid with z slowest; each token holds `C · pz · py · px`
//! values ordered (channel, z, y, x) and the coordinates `(R, A, S)` in mm of the patch
//! centre measured from the array's first voxel centre. Coordinates are relative to the
//! crop, not the scanner origin (which is arbitrary across sites), so crops anywhere in any
//! volume of any spacing share one model. This order equals the ONNX grid front applied to
//! a `[B, C, Z, Y, X]` array, whose coordinate axes are mapped back to (R, A, S).

use crate::MedicalError;
use serde::{Deserialize, Serialize};
use tessera_tokens::{CoordAxis, SampleTokens, TokenLayout, TokenSpec};

/// A dense `[channels, z, y, x]` block of voxels with its spacing.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    pub data: Vec<f32>,
    pub channels: usize,
    /// `[nx, ny, nz]`
    pub dims: [usize; 3],
    pub spacing_mm: [f64; 3],
}

impl Block {
    pub fn index(&self, c: usize, x: usize, y: usize, z: usize) -> usize {
        ((c * self.dims[2] + z) * self.dims[1] + y) * self.dims[0] + x
    }
}

/// Patch size in voxels, `[px, py, pz]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PatchConfig {
    pub patch: [usize; 3],
}

impl Default for PatchConfig {
    fn default() -> Self {
        Self { patch: [8, 8, 8] }
    }
}

/// Turns blocks into tokens and back.
#[derive(Debug, Clone)]
pub struct VolumeTokenizer {
    pub patch: [usize; 3],
    pub channels: usize,
}

impl VolumeTokenizer {
    pub fn new(cfg: &PatchConfig, channels: usize) -> Result<Self, MedicalError> {
        if cfg.patch.contains(&0) || channels == 0 {
            return Err(MedicalError::InvalidArgument {
                name: "patch",
                reason: format!(
                    "patch {:?} and channels {channels} must be positive",
                    cfg.patch
                ),
            });
        }
        Ok(Self {
            patch: cfg.patch,
            channels,
        })
    }

    /// Values per token.
    pub fn p(&self) -> usize {
        self.channels * self.patch.iter().product::<usize>()
    }

    /// Patch grid `[gx, gy, gz]` of a block (partial patches at the far edges are dropped).
    pub fn grid(&self, dims: [usize; 3]) -> [usize; 3] {
        [0, 1, 2].map(|a| dims[a] / self.patch[a])
    }

    /// What the tokens mean, for the model card; `extent_mm` is the typical crop size.
    pub fn spec(&self, extent_mm: [f64; 3]) -> TokenSpec {
        let axis = |name: &str, e: f64| CoordAxis {
            name: name.into(),
            unit: "mm".into(),
            scale: e.max(1.0) as f32,
        };
        TokenSpec {
            p: self.p(),
            k: 3,
            value_unit: "normalised intensity".into(),
            axes: vec![
                axis("right", extent_mm[0]),
                axis("anterior", extent_mm[1]),
                axis("superior", extent_mm[2]),
            ],
            layout: TokenLayout::Patch3d {
                channels: self.channels,
                patch: [self.patch[2], self.patch[1], self.patch[0]],
            },
        }
    }

    /// Centre of patch index `g` along axis `a`, in mm from the first voxel centre.
    pub fn centre_mm(&self, a: usize, g: usize, spacing: f64) -> f32 {
        ((g * self.patch[a]) as f64 + (self.patch[a] as f64 - 1.0) / 2.0) as f32 * spacing as f32
    }

    pub fn tokenize(&self, b: &Block) -> Result<SampleTokens, MedicalError> {
        if b.channels != self.channels {
            return Err(MedicalError::InvalidArgument {
                name: "channels",
                reason: format!(
                    "block has {} channels, the model takes {}",
                    b.channels, self.channels
                ),
            });
        }
        let [gx, gy, gz] = self.grid(b.dims);
        let n = gx * gy * gz;
        if n == 0 {
            return Err(MedicalError::InvalidArgument {
                name: "block",
                reason: format!(
                    "a {:?} block is smaller than one {:?} patch",
                    b.dims, self.patch
                ),
            });
        }
        let [px, py, pz] = self.patch;
        let mut values = Vec::with_capacity(n * self.p());
        let mut coords = Vec::with_capacity(n * 3);
        for tz in 0..gz {
            for ty in 0..gy {
                for tx in 0..gx {
                    for c in 0..b.channels {
                        for z in tz * pz..(tz + 1) * pz {
                            for y in ty * py..(ty + 1) * py {
                                let i = b.index(c, tx * px, y, z);
                                values.extend_from_slice(&b.data[i..i + px]);
                            }
                        }
                    }
                    coords.push(self.centre_mm(0, tx, b.spacing_mm[0]));
                    coords.push(self.centre_mm(1, ty, b.spacing_mm[1]));
                    coords.push(self.centre_mm(2, tz, b.spacing_mm[2]));
                }
            }
        }
        Ok(SampleTokens::new(values, coords, n, self.p(), 3)?)
    }

    /// Inverse of [`tokenize`](Self::tokenize) for `per_voxel` values per voxel (e.g. class
    /// logits): token rows of `P/C · per_voxel` values → `[per_voxel, nz, ny, nx]`; voxels
    /// beyond the patch grid are 0.
    pub fn untokenize(
        &self,
        rows: &[f32],
        dims: [usize; 3],
        per_voxel: usize,
    ) -> Result<Vec<f32>, MedicalError> {
        let [gx, gy, gz] = self.grid(dims);
        let [px, py, pz] = self.patch;
        let w = px * py * pz * per_voxel;
        if rows.len() != gx * gy * gz * w {
            return Err(MedicalError::InvalidArgument {
                name: "rows",
                reason: format!(
                    "{} values do not fill a {gx}x{gy}x{gz} grid of {w}",
                    rows.len()
                ),
            });
        }
        let [nx, ny, nz] = dims;
        let mut out = vec![0f32; per_voxel * nx * ny * nz];
        let mut t = 0;
        for tz in 0..gz {
            for ty in 0..gy {
                for tx in 0..gx {
                    let tok = &rows[t * w..(t + 1) * w];
                    for k in 0..per_voxel {
                        for dz in 0..pz {
                            for dy in 0..py {
                                let src = ((k * pz + dz) * py + dy) * px;
                                let dst =
                                    ((k * nz + tz * pz + dz) * ny + ty * py + dy) * nx + tx * px;
                                out[dst..dst + px].copy_from_slice(&tok[src..src + px]);
                            }
                        }
                    }
                    t += 1;
                }
            }
        }
        Ok(out)
    }
}

/// Copies the `size` voxels starting at `origin` (may lie partly outside) out of a
/// `[C, nz, ny, nx]` volume; outside voxels are `fill`.
pub fn crop_block(
    data: &[f32],
    channels: usize,
    dims: [usize; 3],
    spacing_mm: [f64; 3],
    origin: [isize; 3],
    size: [usize; 3],
    fill: f32,
) -> Block {
    let [sx, sy, sz] = size;
    let mut out = vec![fill; channels * sx * sy * sz];
    for c in 0..channels {
        for z in 0..sz {
            let zz = origin[2] + z as isize;
            if zz < 0 || zz >= dims[2] as isize {
                continue;
            }
            for y in 0..sy {
                let yy = origin[1] + y as isize;
                if yy < 0 || yy >= dims[1] as isize {
                    continue;
                }
                let x0 = origin[0].max(0);
                let x1 = (origin[0] + sx as isize).min(dims[0] as isize);
                if x0 >= x1 {
                    continue;
                }
                let src = ((c * dims[2] + zz as usize) * dims[1] + yy as usize) * dims[0];
                let dst = ((c * sz + z) * sy + y) * sx;
                let (a, b) = (x0 as usize, x1 as usize);
                let d0 = (x0 - origin[0]) as usize;
                out[dst + d0..dst + d0 + (b - a)].copy_from_slice(&data[src + a..src + b]);
            }
        }
    }
    Block {
        data: out,
        channels,
        dims: size,
        spacing_mm,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn tokens_round_trip(px in 1usize..4, py in 1usize..4, pz in 1usize..4,
                             gx in 1usize..4, gy in 1usize..4, gz in 1usize..4, c in 1usize..3) {
            let dims = [px * gx, py * gy, pz * gz];
            let n = c * dims.iter().product::<usize>();
            let data: Vec<f32> = (0..n).map(|i| i as f32).collect();
            let b = Block { data: data.clone(), channels: c, dims, spacing_mm: [1.0, 2.0, 3.0] };
            let tk = VolumeTokenizer::new(&PatchConfig { patch: [px, py, pz] }, c).unwrap();
            let t = tk.tokenize(&b).unwrap();
            prop_assert_eq!(t.n, gx * gy * gz);
            // per_voxel = channels: untokenize gives the block back.
            let back = tk.untokenize(&t.values, dims, c).unwrap();
            prop_assert_eq!(back, data);
            // The last token's centre along x is (dims - patch/2 - 1/2) voxels.
            let last = &t.coords[(t.n - 1) * 3..];
            prop_assert!((last[0] - ((dims[0] as f32) - (px as f32 + 1.0) / 2.0)).abs() < 1e-4);
            prop_assert!((last[2] - 3.0 * ((dims[2] as f32) - (pz as f32 + 1.0) / 2.0)).abs() < 1e-3);
        }
    }

    #[test]
    fn crops_outside_the_volume_are_filled() {
        let data: Vec<f32> = (0..8).map(|i| i as f32).collect(); // 2x2x2, x fastest
        let b = crop_block(&data, 1, [2, 2, 2], [1.0; 3], [-1, 0, 1], [2, 1, 2], -5.0);
        // x = -1 (fill), 0; y = 0; z = 1, 2 (2 is outside).
        assert_eq!(b.data, vec![-5.0, 4.0, -5.0, -5.0]);
    }
}
