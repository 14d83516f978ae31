//! A NIfTI-1 writer (float32 or uint8, sform = the given affine) and a generated dataset of
//! labelled phantoms, for tests and demos where no real data is at hand.
//!
//! Each phantom is a noisy ellipsoidal "brain" with a smaller two-part structure inside
//! (label 1 = head, label 2 = tail), at a random position, size and voxel spacing, so
//! segmentation and the spacing-aware tokens have something real to learn.

use crate::MedicalError;
use flate2::write::GzEncoder;
use std::io::Write;
use std::path::Path;
use tessera_tokens::Rng;

/// Voxel values to write.
pub enum Voxels<'a> {
    F32(&'a [f32]),
    U8(&'a [u8]),
}

/// Writes a single-file NIfTI-1 (`.nii`, or gzipped when the name ends in `.gz`) with
/// `dims = [nx, ny, nz]`, data x-fastest, and `world_from_voxel` as sform and qform code 0.
pub fn write_nifti(
    path: &Path,
    dims: [usize; 3],
    affine: [[f64; 4]; 4],
    voxels: Voxels,
) -> Result<(), MedicalError> {
    let mut h = vec![0u8; 352];
    let put_i16 =
        |h: &mut [u8], off: usize, v: i16| h[off..off + 2].copy_from_slice(&v.to_le_bytes());
    let put_f32 =
        |h: &mut [u8], off: usize, v: f32| h[off..off + 4].copy_from_slice(&v.to_le_bytes());
    h[0..4].copy_from_slice(&348i32.to_le_bytes());
    put_i16(&mut h, 40, 3);
    for (i, d) in dims.iter().enumerate() {
        put_i16(&mut h, 42 + 2 * i, *d as i16);
    }
    for i in 3..7 {
        put_i16(&mut h, 42 + 2 * i, 1);
    }
    let (code, bits, data): (i16, i16, Vec<u8>) = match voxels {
        Voxels::F32(v) => (16, 32, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        Voxels::U8(v) => (2, 8, v.to_vec()),
    };
    put_i16(&mut h, 70, code);
    put_i16(&mut h, 72, bits);
    put_f32(&mut h, 76, 1.0);
    for a in 0..3 {
        let s = affine[..3]
            .iter()
            .map(|row| row[a] * row[a])
            .sum::<f64>()
            .sqrt();
        put_f32(&mut h, 80 + 4 * a, s as f32);
    }
    put_f32(&mut h, 108, 352.0);
    put_f32(&mut h, 112, 1.0); // scl_slope
    h[123] = 2 | 8; // xyzt_units: mm, s
    put_i16(&mut h, 254, 2); // sform_code: aligned
    for (r, row) in affine[..3].iter().enumerate() {
        for (c, x) in row.iter().enumerate() {
            put_f32(&mut h, 280 + 16 * r + 4 * c, *x as f32);
        }
    }
    h[344..348].copy_from_slice(b"n+1\0");
    h.extend_from_slice(&data);
    let io = |source| MedicalError::Io {
        path: path.to_path_buf(),
        source,
    };
    let bytes = if path.extension().is_some_and(|e| e == "gz") {
        let mut e = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&h).map_err(io)?;
        e.finish().map_err(io)?
    } else {
        h
    };
    std::fs::write(path, bytes).map_err(io)
}

/// Writes `n` phantoms to `dir/images/case_XXX.nii.gz` and their label maps to
/// `dir/labels/case_XXX.nii.gz`.
pub fn write_dataset(dir: &Path, n: usize, seed: u64) -> Result<(), MedicalError> {
    for sub in ["images", "labels"] {
        std::fs::create_dir_all(dir.join(sub)).map_err(|source| MedicalError::Io {
            path: dir.join(sub),
            source,
        })?;
    }
    let mut rng = Rng::new(seed);
    for i in 0..n {
        let dims = [28 + rng.below(10), 32 + rng.below(10), 24 + rng.below(10)];
        let spacing = [
            1.0 + 0.25 * rng.below(3) as f64,
            1.0,
            1.0 + 0.5 * rng.below(2) as f64,
        ];
        let c = [0, 1, 2].map(|a| dims[a] as f64 * (0.4 + 0.2 * rng.uniform()));
        let r = [0, 1, 2].map(|a| dims[a] as f64 * (0.15 + 0.08 * rng.uniform()));
        let mut img = vec![0f32; dims.iter().product()];
        let mut lab = vec![0u8; img.len()];
        let mut idx = 0;
        for z in 0..dims[2] {
            for y in 0..dims[1] {
                for x in 0..dims[0] {
                    let p = [x as f64, y as f64, z as f64];
                    let brain = (0..3)
                        .map(|a| ((p[a] - dims[a] as f64 / 2.0) / (dims[a] as f64 * 0.48)).powi(2))
                        .sum::<f64>();
                    let inner = (0..3).map(|a| ((p[a] - c[a]) / r[a]).powi(2)).sum::<f64>();
                    let mut v = if brain < 1.0 { 300.0 } else { 0.0 };
                    if inner < 1.0 {
                        lab[idx] = if p[1] < c[1] { 1 } else { 2 };
                        v = if lab[idx] == 1 { 520.0 } else { 460.0 };
                    }
                    if v > 0.0 {
                        v += 40.0 * rng.normal();
                    }
                    img[idx] = v as f32;
                    idx += 1;
                }
            }
        }
        let mut aff = [[0.0; 4]; 4];
        for a in 0..3 {
            aff[a][a] = spacing[a];
            aff[a][3] = -(dims[a] as f64) * spacing[a] / 2.0;
        }
        aff[3][3] = 1.0;
        let name = format!("case_{i:03}.nii.gz");
        write_nifti(
            &dir.join("images").join(&name),
            dims,
            aff,
            Voxels::F32(&img),
        )?;
        write_nifti(&dir.join("labels").join(&name), dims, aff, Voxels::U8(&lab))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{check_same_grid, read_labels, read_volume};

    #[test]
    fn written_phantoms_read_back_on_one_grid() {
        let d = std::env::temp_dir().join(format!("tessera-medical-synth-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        write_dataset(&d, 3, 1).unwrap();
        let img = read_volume(&d.join("images/case_001.nii.gz")).unwrap();
        let lab = read_labels(&d.join("labels/case_001.nii.gz")).unwrap();
        check_same_grid(&img, &lab).unwrap();
        assert!(lab.data.contains(&1) && lab.data.contains(&2));
        assert!(img.warnings.is_empty());

        let _ = std::fs::remove_dir_all(&d);
    }
}
