//! A NIfTI-1 writer (float32 or uint8, sform = the given affine) and a generated dataset of
//! labelled phantoms, for tests and demos where no real data is at hand.
//!
//! Each phantom is a noisy ellipsoidal "brain" with a smaller two-part structure inside
//! (label 1 = head, label 2 = tail), at a random position, size and voxel spacing, so
//! segmentation and the spacing-aware tokens have something real to learn.

use crate::nifti::Datatype;
use crate::write::write_nifti_bytes;
use crate::MedicalError;
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
    let (dt, data): (Datatype, Vec<u8>) = match voxels {
        Voxels::F32(v) => (
            Datatype::F32,
            v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ),
        Voxels::U8(v) => (Datatype::U8, v.to_vec()),
    };
    write_nifti_bytes(path, dims, 1, affine, dt, &data)
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
