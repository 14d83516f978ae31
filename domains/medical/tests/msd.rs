//! Real data: every image and label of MSD Task04 Hippocampus (260 cases, see
//! /work/shared/data/medical/README.md). Skipped when the folder is absent; point
//! `MSD_HIPPOCAMPUS` elsewhere to use another copy. The data is never committed.

use std::path::PathBuf;

use tessera_medical::nifti::{check_file, Datatype};
use tessera_medical::orient::{axcodes, to_ras};
use tessera_medical::{check_same_grid, read_labels, read_volume};

fn data_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("MSD_HIPPOCAMPUS") {
        Some(d) => PathBuf::from(d),
        None => tessera_tokens::resources::shared_data("medical/msd_hippocampus")?,
    };
    dir.join("cases.csv").is_file().then_some(dir)
}

#[test]
fn reads_every_hippocampus_case() {
    let Some(dir) = data_dir() else {
        eprintln!("MSD hippocampus data not found: skipping");
        return;
    };
    let csv = std::fs::read_to_string(dir.join("cases.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (ci, cl, cx, cy, cz, cd) = (
        col("image"),
        col("label"),
        col("dim_x"),
        col("dim_y"),
        col("dim_z"),
        col("image_dtype"),
    );
    let (c1, c2) = (col("n_voxels_anterior(1)"), col("n_voxels_posterior(2)"));
    let mut n = 0;
    for line in lines.filter(|l| !l.is_empty()) {
        let f: Vec<&str> = line.split(',').collect();
        let img = read_volume(&dir.join(f[ci])).unwrap_or_else(|e| panic!("{e}"));
        let lab = read_labels(&dir.join(f[cl])).unwrap_or_else(|e| panic!("{e}"));
        // The whole-file check passes (gzip inflated to the end, checksum verified) and
        // sees exactly the data the reader decoded.
        for (file, voxels, bytes_per_voxel) in [
            (f[ci], img.data.len(), img.source.datatype.size()),
            (f[cl], lab.data.len(), lab.source.datatype.size()),
        ] {
            let c = check_file(&dir.join(file)).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                c.declared_bytes,
                (voxels * bytes_per_voxel) as u64,
                "{file}"
            );
            assert!(
                c.present_bytes >= c.data_offset + c.declared_bytes,
                "{file}"
            );
        }
        let dims: [usize; 3] = [
            f[cx].parse().unwrap(),
            f[cy].parse().unwrap(),
            f[cz].parse().unwrap(),
        ];
        assert_eq!(img.dims, dims, "{}", f[ci]);
        assert_eq!(img.channels, 1);
        let want = if f[cd] == "uint8" {
            Datatype::U8
        } else {
            Datatype::F32
        };
        assert_eq!(img.source.datatype, want, "{}", f[ci]);
        check_same_grid(&img, &lab).unwrap();
        assert!(lab.data.iter().all(|&x| x <= 2), "{}", f[cl]);
        let count = |k| lab.data.iter().filter(|&&x| x == k).count();
        assert_eq!(count(1), f[c1].parse::<usize>().unwrap(), "{}", f[cl]);
        assert_eq!(count(2), f[c2].parse::<usize>().unwrap(), "{}", f[cl]);
        assert!(img.data.iter().all(|x| x.is_finite()), "{}", f[ci]);
        // 1 mm isotropic; to_ras keeps the label counts and the shared grid.
        assert!(
            img.spacing_mm.iter().all(|s| (s - 1.0).abs() < 1e-4),
            "{:?}",
            img.spacing_mm
        );
        let (ri, rl) = (to_ras(&img).unwrap(), to_ras(&lab).unwrap());
        assert_eq!(axcodes(&ri.world_from_voxel).unwrap(), "RAS");
        check_same_grid(&ri, &rl).unwrap();
        assert_eq!(rl.data.iter().filter(|&&x| x == 1).count(), count(1));
        n += 1;
    }
    assert_eq!(n, 260);
}
