//! Dice, HD95 (MONAI's and medpy's definitions) and HD against medpy 0.5.2 (golden values made by
//! `scripts/golden_segmentation.py`), plus a timing check on a 256³ volume.

use serde::Deserialize;
use tessera_eval::{
    dice, hausdorff95, hausdorff95_pooled, hausdorff_percentile, score_case, HdPooling,
};

#[derive(Deserialize)]
struct Golden {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    dims: [usize; 3],
    spacing_mm: [f64; 3],
    pred: Vec<u8>,
    truth: Vec<u8>,
    classes: Vec<Expected>,
}

#[derive(Deserialize)]
struct Expected {
    class: usize,
    dice: f64,
    hd95_monai_mm: f64,
    hd95_medpy_mm: f64,
    hd_mm: f64,
}

fn golden() -> Golden {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/segmentation.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn matches_medpy() {
    let g = golden();
    assert_eq!(g.cases.len(), 5);
    let mut checked = 0;
    for c in &g.cases {
        let u16_pred: Vec<u16> = c.pred.iter().map(|&l| l as u16).collect();
        let u16_truth: Vec<u16> = c.truth.iter().map(|&l| l as u16).collect();
        for e in &c.classes {
            let what = format!("{} class {}", c.name, e.class);
            let d = dice(&c.pred, &c.truth, e.class);
            assert!((d - e.dice).abs() < 1e-6, "{what}: dice {d} vs {}", e.dice);
            let h = hausdorff95(&c.pred, &c.truth, c.dims, c.spacing_mm, e.class);
            assert!(
                (h - e.hd95_monai_mm).abs() < 1e-6,
                "{what}: hd95 {h} vs MONAI {}",
                e.hd95_monai_mm
            );
            let hp = hausdorff95_pooled(&c.pred, &c.truth, c.dims, c.spacing_mm, e.class);
            assert!(
                (hp - e.hd95_medpy_mm).abs() < 1e-6,
                "{what}: pooled hd95 {hp} vs medpy {}",
                e.hd95_medpy_mm
            );
            assert!(hp <= h);
            let h16 = hausdorff95(&u16_pred, &u16_truth, c.dims, c.spacing_mm, e.class);
            assert_eq!(h16, h, "{what}: u16 labels");
            for pooling in [HdPooling::MaxOfDirected, HdPooling::Pooled] {
                let hd = hausdorff_percentile(
                    &c.pred,
                    &c.truth,
                    c.dims,
                    c.spacing_mm,
                    e.class,
                    100.0,
                    pooling,
                );
                assert!(
                    (hd - e.hd_mm).abs() < 1e-6,
                    "{what}: hd {hd} vs {}",
                    e.hd_mm
                );
            }
            checked += 1;
        }
        let classes: Vec<usize> = c.classes.iter().map(|e| e.class).collect();
        let s = score_case(&c.pred, &c.truth, c.dims, c.spacing_mm, &classes).unwrap();
        for (e, (d, h)) in c.classes.iter().zip(s.dice.iter().zip(&s.hd95_mm)) {
            assert!((d - e.dice).abs() < 1e-6 && (h - e.hd95_monai_mm).abs() < 1e-6);
        }
    }
    assert_eq!(checked, 9);
}

/// A sphere against a shifted, slightly larger sphere in a 256³ volume: the distance
/// transform is what makes this fast (brute force would compare ~10⁵ × 10⁵ surface voxels).
#[test]
fn large_volume_is_fast() {
    let n = 256usize;
    let dims = [n, n, n];
    let sphere = |c: [f64; 3], r: f64| -> Vec<u8> {
        let mut v = vec![0u8; n * n * n];
        for x in 0..n {
            for y in 0..n {
                for z in 0..n {
                    let d2 = (x as f64 - c[0]).powi(2)
                        + (y as f64 - c[1]).powi(2)
                        + (z as f64 - c[2]).powi(2);
                    if d2 <= r * r {
                        v[(x * n + y) * n + z] = 1;
                    }
                }
            }
        }
        v
    };
    let a = sphere([128.0, 128.0, 128.0], 90.0);
    let b = sphere([131.0, 128.0, 128.0], 93.0);
    let t = std::time::Instant::now();
    let h = hausdorff95(&a, &b, dims, [1.0, 1.0, 1.0], 1);
    let secs = t.elapsed().as_secs_f64();
    // Surfaces 3 to 6 voxels apart (up to discretisation).
    assert!(h > 2.0 && h < 7.5, "{h}");
    assert!(secs < 20.0, "hd95 on 256³ took {secs:.1} s");
    eprintln!("hd95 on 256^3: {h:.4} mm in {secs:.2} s");
}

/// Label maps in NIfTI order (x fastest) with (x, y, z) spacing score like the same maps
/// transposed to `[z][y][x]` with (z, y, x) spacing through `score_case`.
#[test]
fn label_maps_in_nifti_order_score_as_zyx() {
    use tessera_eval::segmentation::{cases_csv, score_case, score_label_maps};
    let dims_xyz = [5usize, 4, 3];
    let n: usize = dims_xyz.iter().product();
    let truth: Vec<u16> = (0..n).map(|i| ((i * 7) % 3) as u16).collect();
    let pred: Vec<u8> = (0..n).map(|i| ((i * 5) % 3) as u8).collect();
    let spacing = [0.5, 1.0, 2.0];
    let a = score_label_maps(&pred, &truth, dims_xyz, spacing, 3).unwrap();
    let t8: Vec<u8> = truth.iter().map(|&x| x as u8).collect();
    let b = score_case(&pred, &t8, [3, 4, 5], [2.0, 1.0, 0.5], &[1, 2]).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.classes, vec![1, 2]);
    let csv = cases_csv(&["c1".into()], &[a]);
    assert_eq!(csv.lines().count(), 3);
    assert!(csv.starts_with("case,class,dice,hd95_mm\nc1,1,"), "{csv}");
}
