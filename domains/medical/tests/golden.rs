//! Rust output against nibabel/scipy/numpy on the fixtures written by
//! `scripts/golden_medical.py` (every dtype, both byte orders, NIfTI-1/2, .nii, .nii.gz,
//! .hdr/.img pairs, scaling, sform/qform variants, 4-D/5-D, NaN, extensions).

use std::path::{Path, PathBuf};

use serde_json::Value;
use tessera_medical::nifti::{read_header, read_labels, read_volume, NiftiVersion};
use tessera_medical::normalize::{
    crop, ct_window, foreground_box, mri_zscore, Foreground, MriNorm, OutputRange,
};
use tessera_medical::orient::{axcodes, to_ras};
use tessera_medical::resample::{resample_linear, resample_nearest};
use tessera_medical::{check_same_grid, inspect::inspect, MedicalError, Volume, Warning};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn golden() -> Value {
    let text = std::fs::read_to_string(dir().join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn floats(v: &Value) -> Vec<Option<f64>> {
    // null is NaN; "inf"/"-inf" are infinities (JSON has neither).
    let parse = |x: &Value| {
        x.as_f64()
            .or_else(|| x.as_str().and_then(|s| s.parse().ok()))
    };
    v.as_array().unwrap().iter().map(parse).collect()
}

fn affine(v: &Value) -> [[f64; 4]; 4] {
    let rows = v.as_array().unwrap();
    std::array::from_fn(|r| std::array::from_fn(|c| rows[r][c].as_f64().unwrap()))
}

fn assert_affine(got: &[[f64; 4]; 4], want: &Value, tol: f64, what: &str) {
    let want = affine(want);
    for r in 0..4 {
        for c in 0..4 {
            assert!(
                (got[r][c] - want[r][c]).abs() <= tol,
                "{what}: affine[{r}][{c}] {} vs nibabel {}\n{got:?}\n{want:?}",
                got[r][c],
                want[r][c]
            );
        }
    }
}

/// f32 values against the reference (None = NaN), relative tolerance `rel`.
fn assert_data(got: &[f32], want: &[Option<f64>], rel: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, w)) in got.iter().zip(want).enumerate() {
        match w {
            None => assert!(g.is_nan(), "{what}[{i}]: {g} vs NaN"),
            Some(w) => {
                let g = f64::from(g);
                let ok = if w.is_infinite() {
                    g == *w
                } else {
                    (g - w).abs() <= rel * w.abs().max(1.0)
                };
                assert!(ok, "{what}[{i}]: {g} vs {w}");
            }
        }
    }
}

fn shape_of(v: &Volume<impl Copy>) -> Vec<usize> {
    v.dims.to_vec()
}

#[test]
fn every_fixture_matches_nibabel() {
    let g = golden();
    let files = g["files"].as_object().unwrap();
    assert!(files.len() >= 40);
    for (name, e) in files {
        let path = dir().join(name);
        let v = read_volume(&path).unwrap_or_else(|err| panic!("{name}: {err}"));
        let h = &read_header(&path).unwrap();
        assert_eq!(v.source.datatype, h.datatype, "{name}");
        assert_eq!(v.source.format, h.format.to_string(), "{name}");
        let want_version = if e["version"] == 1 {
            NiftiVersion::Nifti1
        } else {
            NiftiVersion::Nifti2
        };
        assert_eq!(h.format.version, want_version, "{name}");
        assert_eq!(h.format.pair, e["pair"].as_bool().unwrap(), "{name}");
        assert_eq!(h.format.header_gz, e["gz"].as_bool().unwrap(), "{name}");
        assert_eq!(h.format.data_gz, e["gz"].as_bool().unwrap(), "{name}");
        assert_eq!(
            h.format.big_endian,
            e["big_endian"].as_bool().unwrap(),
            "{name}"
        );
        assert_eq!(h.datatype.name(), e["datatype"].as_str().unwrap(), "{name}");
        assert_eq!(
            h.qform_code as i64,
            e["qform_code"].as_i64().unwrap(),
            "{name}"
        );
        assert_eq!(
            h.sform_code as i64,
            e["sform_code"].as_i64().unwrap(),
            "{name}"
        );
        assert_eq!(h.descrip, e["descrip"].as_str().unwrap(), "{name}");
        let shape: Vec<usize> = e["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(shape_of(&v), shape[..3].to_vec(), "{name}");
        assert_eq!(v.channels, shape[3..].iter().product::<usize>(), "{name}");
        // Scaling is computed in f64 here and in float32 by nibabel for small ints: 1 ulp.
        assert_data(&v.data, &floats(&e["data"]), 2e-7, name);
        assert_affine(&v.world_from_voxel, &e["affine"], 1e-5, name);
        for (i, s) in floats(&e["spacing"]).iter().enumerate() {
            assert!(
                (v.spacing_mm[i] - s.unwrap()).abs() < 1e-5,
                "{name}: spacing {:?}",
                v.spacing_mm
            );
        }
        assert_eq!(
            axcodes(&v.world_from_voxel).unwrap(),
            e["axcodes"].as_str().unwrap(),
            "{name}"
        );
        let no_orientation = e["no_orientation"].as_bool().unwrap();
        assert_eq!(
            v.warnings.contains(&Warning::NoOrientation),
            no_orientation,
            "{name}"
        );
        let nan_count = floats(&e["data"])
            .iter()
            .filter(|x| x.is_none_or(|x| x.is_infinite()))
            .count();
        assert_eq!(
            v.warnings
                .contains(&Warning::NonFiniteVoxels { count: nan_count }),
            nan_count > 0,
            "{name}: {:?}",
            v.warnings
        );
        if let Some(c) = e.get("canonical") {
            let r = to_ras(&v).unwrap();
            let cshape: Vec<usize> = c["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as usize)
                .collect();
            assert_eq!(shape_of(&r), cshape[..3].to_vec(), "{name} canonical");
            assert_affine(
                &r.world_from_voxel,
                &c["affine"],
                1e-5,
                &format!("{name} canonical"),
            );
            assert_data(
                &r.data,
                &floats(&c["data"]),
                2e-7,
                &format!("{name} canonical"),
            );
            assert_eq!(axcodes(&r.world_from_voxel).unwrap(), "RAS", "{name}");
            let sizes = tessera_medical::orient::voxel_sizes(&r.world_from_voxel);
            for (s, rs) in sizes.iter().zip(r.spacing_mm) {
                assert!((s - rs).abs() < 1e-9, "{name}: spacing follows the axes");
            }
        }
        // The header alone agrees with the full read.
        // (Debug form: scl_slope may be NaN, which is never == itself.)
        assert_eq!(
            format!("{:?}", read_header(&path).unwrap()),
            format!("{h:?}"),
            "{name}"
        );
    }
}

#[test]
fn pairs_open_from_either_half() {
    let a = read_volume(&dir().join("n1pair_int16.hdr")).unwrap();
    let b = read_volume(&dir().join("n1pair_int16.img")).unwrap();
    assert_eq!(a.data, b.data);
    let c = read_volume(&dir().join("n2pair_int32_be.img.gz")).unwrap();
    let h = read_header(&dir().join("n2pair_int32_be.img.gz")).unwrap();
    assert!(h.format.pair && h.format.data_gz);
    assert_eq!(c.source.format, h.format.to_string());
}

fn image() -> Volume {
    read_volume(&dir().join("image_f32.nii.gz")).unwrap()
}

#[test]
fn resampling_matches_scipy() {
    let g = golden();
    let img = image();
    let lab = read_labels(&dir().join("label_u8.nii.gz")).unwrap();
    for case in g["resample"].as_array().unwrap() {
        let t: Vec<f64> = floats(&case["target"])
            .into_iter()
            .map(Option::unwrap)
            .collect();
        let target = [t[0], t[1], t[2]];
        let shape: Vec<usize> = case["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as usize)
            .collect();
        let r = resample_linear(&img, target).unwrap();
        assert_eq!(r.dims.to_vec(), shape, "{target:?}");
        assert_eq!(r.spacing_mm, target);
        assert_data(
            &r.data,
            &floats(&case["image"]),
            1e-6,
            &format!("linear {target:?}"),
        );
        assert_affine(&r.world_from_voxel, &case["affine"], 1e-9, "resampled");
        let rl = resample_nearest(&lab, target).unwrap();
        let want: Vec<u16> = case["label"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u16)
            .collect();
        assert_eq!(rl.data, want, "nearest {target:?}");
        check_same_grid(&r, &rl).unwrap();
    }
    assert!(matches!(
        resample_linear(&img, [1.0, 0.0, 1.0]),
        Err(MedicalError::InvalidArgument {
            name: "target_mm",
            ..
        })
    ));
    assert!(resample_linear(&img, [1.0, f64::NAN, 1.0]).is_err());
    assert!(resample_linear(&img, [1e-30, 1e-30, 1e-30]).is_err());
}

#[test]
fn normalisation_matches_numpy() {
    let g = golden();
    let n = &g["normalize"];
    for (lo, hi) in [(-50.0f32, 800.0f32), (100.0, 400.0)] {
        for (range, tag) in [
            (OutputRange::ZeroOne, "01"),
            (OutputRange::MinusOneOne, "11"),
        ] {
            let mut v = image();
            ct_window(&mut v, lo, hi, range).unwrap();
            let key = format!("ct_{lo:?}_{hi:?}_{tag}");
            assert_data(&v.data, &floats(&n[&key]), 1e-6, &key);
        }
    }
    for (key, fg) in [
        ("mri_nonzero", Foreground::NonZero),
        ("mri_above_100", Foreground::Above(100.0)),
    ] {
        let mut v = image();
        let cfg = MriNorm {
            foreground: fg,
            ..MriNorm::default()
        };
        let s = mri_zscore(&mut v, &cfg).unwrap();
        let e = &n[key];
        assert_eq!(
            s[0].n_foreground as u64,
            e["n_foreground"].as_u64().unwrap()
        );
        for (got, field) in [
            (s[0].clip_lo, "clip_lo"),
            (s[0].clip_hi, "clip_hi"),
            (s[0].mean, "mean"),
            (s[0].std, "std"),
        ] {
            let want = e[field].as_f64().unwrap();
            assert!(
                (got - want).abs() <= 1e-9 * want.abs().max(1.0),
                "{key} {field}: {got} vs {want}"
            );
        }
        assert_data(&v.data, &floats(&e["data"]), 1e-6, key);
    }
    let mut v = image();
    assert!(ct_window(&mut v, 5.0, 5.0, OutputRange::ZeroOne).is_err());
    v.data[3] = f32::NAN;
    assert!(matches!(
        mri_zscore(&mut v, &MriNorm::default()),
        Err(MedicalError::NonFinite { count: 1, .. })
    ));
    assert_eq!(v.replace_non_finite(0.0), 1);
    mri_zscore(&mut v, &MriNorm::default()).unwrap();
    let mut empty = image();
    empty.data.iter_mut().for_each(|x| *x = 0.0);
    assert!(mri_zscore(&mut empty, &MriNorm::default()).is_err());
}

#[test]
fn foreground_crop_applies_to_image_and_labels() {
    let g = golden();
    let img = image();
    let lab = read_labels(&dir().join("label_u8.nii.gz")).unwrap();
    let bx = foreground_box(&lab, |x| x > 0, 0).unwrap();
    let want = &g["label_bbox"];
    for i in 0..3 {
        assert_eq!(bx.start[i] as u64, want["start"][i].as_u64().unwrap());
        assert_eq!(bx.end[i] as u64, want["end"][i].as_u64().unwrap());
    }
    let grown = foreground_box(&lab, |x| x > 0, 1).unwrap();
    for i in 0..3 {
        assert_eq!(grown.start[i], bx.start[i].saturating_sub(1));
        assert_eq!(grown.end[i], (bx.end[i] + 1).min(lab.dims[i]));
    }
    let (ci, cl) = (crop(&img, &grown).unwrap(), crop(&lab, &grown).unwrap());
    check_same_grid(&ci, &cl).unwrap();
    assert_eq!(
        cl.data.iter().filter(|&&x| x > 0).count(),
        lab.data.iter().filter(|&&x| x > 0).count()
    );
    // Voxel (0,0,0) of the crop is voxel `start` of the original, in the same world place.
    let [sx, sy, sz] = grown.start;
    assert_eq!(
        ci.data[0],
        img.data[(sz * img.dims[1] + sy) * img.dims[0] + sx]
    );
    for r in 0..3 {
        let w = (0..3)
            .map(|j| img.world_from_voxel[r][j] * grown.start[j] as f64)
            .sum::<f64>()
            + img.world_from_voxel[r][3];
        assert!((ci.world_from_voxel[r][3] - w).abs() < 1e-9);
    }
    let mut zero = lab.clone();
    zero.data.iter_mut().for_each(|x| *x = 0);
    assert_eq!(foreground_box(&zero, |x| x > 0, 2), None);
    assert!(crop(
        &img,
        &tessera_medical::normalize::CropBox {
            start: [0, 0, 0],
            end: [8, 1, 1]
        }
    )
    .is_err());
}

#[test]
fn labels_and_grids() {
    let img = image();
    let lab = read_labels(&dir().join("label_u8.nii.gz")).unwrap();
    assert!(lab.data.iter().all(|&x| x <= 2));
    assert!(lab.data.contains(&2));
    check_same_grid(&img, &lab).unwrap();
    // Reorienting both keeps them on one grid.
    check_same_grid(&to_ras(&img).unwrap(), &to_ras(&lab).unwrap()).unwrap();

    let off = read_labels(&dir().join("label_offgrid.nii.gz")).unwrap();
    let err = check_same_grid(&img, &off).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            MedicalError::GridMismatch {
                field: "world_from_voxel (affine)",
                ..
            }
        ),
        "{msg}"
    );
    assert!(
        msg.contains("image_f32.nii.gz") && msg.contains("label_offgrid.nii.gz"),
        "{msg}"
    );
    let small = crop(
        &lab,
        &tessera_medical::normalize::CropBox {
            start: [0, 0, 0],
            end: [3, 3, 3],
        },
    )
    .unwrap();
    let msg = check_same_grid(&img, &small).unwrap_err().to_string();
    assert!(
        msg.contains("dims") && msg.contains("[7, 6, 5]") && msg.contains("[3, 3, 3]"),
        "{msg}"
    );

    let err = read_labels(&dir().join("label_float_bad.nii")).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, MedicalError::NotLabels { .. }) && msg.contains("0.5"),
        "{msg}"
    );
}

#[test]
fn inspect_summarises_the_header() {
    let s = inspect(&dir().join("n1_sform_permuted.nii")).unwrap();
    for want in [
        "NIfTI-1, single file (.nii), little-endian",
        "5 x 4 x 3",
        "int16",
        "orientation: PSL",
        "sform_code: 1",
        "affine from sform",
    ] {
        assert!(s.contains(want), "missing {want:?} in\n{s}");
    }
    assert!(
        s.contains("data:        120 bytes at offset 352; the file holds 472 bytes\n"),
        "{s}"
    );
    let s = inspect(&dir().join("n2pair_int32_be.hdr.gz")).unwrap();
    assert!(
        s.contains("NIfTI-2, pair, gzipped (.hdr.gz/.img.gz), big-endian"),
        "{s}"
    );
    assert!(
        s.contains("data:        240 bytes at offset 0; the ")
            && s.contains("-byte gzip stream inflates to 240 bytes (checksum verified)"),
        "{s}"
    );
    let s = inspect(&dir().join("n1_noorient.nii")).unwrap();
    assert!(s.contains("warning") && s.contains("pixdim only"), "{s}");
    let s = inspect(&dir().join("n1_int16_scl.nii")).unwrap();
    assert!(s.contains("scl_slope 2.5 scl_inter -10"), "{s}");
}
