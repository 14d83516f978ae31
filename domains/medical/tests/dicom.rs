//! DICOM against pydicom and SimpleITK on the fixtures written by `scripts/golden_dicom.py`:
//! pydicom's small test files in five transfer syntaxes, series stored in shuffled order
//! with misleading instance numbers and per-slice rescale, oblique and tilted geometry,
//! irregular gaps, two series in one folder, an enhanced multi-frame object, and broken
//! series.

use std::path::{Path, PathBuf};

use serde_json::Value;
use tessera_medical::dicom::list_series;
use tessera_medical::{read_volume, Format, Warning};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dicom")
}

fn golden() -> Value {
    let text = std::fs::read_to_string(dir().join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn check(name: &str, path: &Path, e: &Value) {
    let v = read_volume(path).unwrap_or_else(|err| panic!("{name}: {err}"));
    let dims: Vec<usize> = e["dims"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(v.dims.to_vec(), dims, "{name}");
    assert_eq!(v.channels, 1, "{name}");
    let stride = e["data_stride"].as_u64().unwrap_or(1) as usize;
    let want = e["data"].as_array().unwrap();
    assert_eq!(v.data.len().div_ceil(stride), want.len(), "{name}: length");
    for (i, w) in want.iter().enumerate() {
        let (g, w) = (f64::from(v.data[i * stride]), w.as_f64().unwrap());
        assert!(
            (g - w).abs() <= 1e-6 * w.abs().max(1.0),
            "{name}[{}]: {g} vs {w}",
            i * stride
        );
    }
    let a = e["affine"].as_array().unwrap();
    for (r, row) in a.iter().enumerate() {
        for c in 0..4 {
            let w = row[c].as_f64().unwrap();
            let g = v.world_from_voxel[r][c];
            assert!(
                (g - w).abs() < 1e-5,
                "{name}: affine[{r}][{c}] {g} vs {w}\n{:?}",
                v.world_from_voxel
            );
        }
    }
}

#[test]
fn files_and_series_match_pydicom_and_simpleitk() {
    let g = golden();
    let files = g["files"].as_object().unwrap();
    let mut n = 0;
    for (name, e) in files {
        if e.get("dims").is_some() {
            check(name, &dir().join(name), e);
            n += 1;
        }
    }
    assert!(n >= 11, "{n}");
    // A folder holding a DICOMDIR (an object without an image) and the images below it
    // reads like the DICOMDIR itself.
    let via_dir = read_volume(&dir().join("dicomdir_set/DICOMDIR")).unwrap();
    let via_folder = read_volume(&dir().join("dicomdir_set")).unwrap();
    assert_eq!(via_dir.data, via_folder.data);
    assert_eq!(via_dir.world_from_voxel, via_folder.world_from_voxel);
    // Two series in one folder: refused with the list, then picked by index or UID.
    let mixed = dir().join("series_mixed");
    let msg = read_volume(&mixed).unwrap_err().to_string();
    assert!(
        msg.contains("2 series") && msg.contains("#series="),
        "{msg}"
    );
    let listed = list_series(&mixed).unwrap();
    assert_eq!(listed.len(), 2);
    for (i, (uid, _, _, _)) in listed.iter().enumerate() {
        let e = &files["series_mixed"]["series"][uid];
        check(
            uid,
            &PathBuf::from(format!("{}#series={uid}", mixed.display())),
            e,
        );
        check(
            uid,
            &PathBuf::from(format!("{}#series={i}", mixed.display())),
            e,
        );
    }
}

#[test]
fn formats_and_units() {
    let v = read_volume(&dir().join("CT_small.dcm")).unwrap();
    assert_eq!(
        Format::detect(&dir().join("CT_small.dcm")).unwrap(),
        Format::Dicom
    );
    assert!(v.source.format.starts_with("DICOM"), "{}", v.source.format);
    // CT in Hounsfield units: air is near -1000.
    let min = v.data.iter().copied().fold(f32::INFINITY, f32::min);
    assert!(min < -800.0, "{min}");
    let v = read_volume(&dir().join("series_oblique")).unwrap();
    assert!(v.source.format.contains("7 slices"), "{}", v.source.format);
    assert!(
        v.source.format.contains("per-slice rescale"),
        "{}",
        v.source.format
    );
}

fn notes(v: &tessera_medical::Volume) -> String {
    v.warnings
        .iter()
        .map(|w| w.to_string())
        .collect::<Vec<_>>()
        .join(" | ")
}

#[test]
fn tilt_gaps_and_single_slices_are_reported() {
    let v = read_volume(&dir().join("series_tilt")).unwrap();
    assert!(
        notes(&v).contains("gantry tilt of 10.00 degrees"),
        "{}",
        notes(&v)
    );
    // The sheared affine keeps the slice positions: voxel (0,0,k) is at z = 2k (+ origin).
    let z0 = v.world_from_voxel[2][3];
    assert!(
        (v.world_from_voxel[2][2] - 2.0).abs() < 1e-6,
        "{:?}",
        v.world_from_voxel
    );
    assert!(z0.is_finite());
    let v = read_volume(&dir().join("series_gap")).unwrap();
    assert!(
        notes(&v).contains("irregular slice gaps from 2.0000 to 4.0000"),
        "{}",
        notes(&v)
    );
    let v = read_volume(&dir().join("one_slice")).unwrap();
    assert_eq!(v.dims[2], 1);
    assert!(notes(&v).contains("a single slice"), "{}", notes(&v));
    let v = read_volume(&dir().join("image_dfl.dcm")).unwrap();
    assert!(v
        .warnings
        .contains(&Warning::NoDirections { format: "DICOM" }));
}

#[test]
fn broken_series_and_unsupported_syntaxes_name_the_file_and_attribute() {
    let e = read_volume(&dir().join("bad_sizes"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("Rows x Columns") && e.contains(".dcm"), "{e}");
    let e = read_volume(&dir().join("bad_position"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("IM0001.dcm") && e.contains("ImagePositionPatient"),
        "{e}"
    );
    let e = read_volume(&dir().join("MR_small_jpeg_ls_lossless.dcm"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("MR_small_jpeg_ls_lossless.dcm") && e.contains("JPEG-LS Lossless"),
        "{e}"
    );
    let e = read_volume(&dir().join("MR_truncated.dcm"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("MR_truncated.dcm"), "{e}");
    let tmp = std::env::temp_dir().join(format!("tessera-dicom-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::write(tmp.join("README.txt"), "not dicom").unwrap();
    let e = read_volume(&tmp).unwrap_err().to_string();
    assert!(e.contains("no DICOM images"), "{e}");
    // Cut and corrupted files: an error naming the file, never a panic.
    let bytes = std::fs::read(dir().join("MR_small.dcm")).unwrap();
    for cut in [100, 140, 400, bytes.len() / 2, bytes.len() - 3] {
        let p = tmp.join("cut.dcm");
        std::fs::write(&p, &bytes[..cut]).unwrap();
        if let Err(e) = read_volume(&p) {
            assert!(e.to_string().contains("cut.dcm"), "{e}");
        }
    }
    // A header declaring far more pixels than the file holds: an error before any
    // allocation (Rows and Columns patched to 65535 in the explicit VR little endian bytes).
    let mut big = bytes.clone();
    for tag in [
        [0x28u8, 0, 0x10, 0, b'U', b'S', 2, 0],
        [0x28, 0, 0x11, 0, b'U', b'S', 2, 0],
    ] {
        let at = big
            .windows(8)
            .position(|w| w == tag)
            .expect("Rows/Columns element");
        big[at + 8..at + 10].copy_from_slice(&[0xff, 0xff]);
    }
    let p = tmp.join("huge.dcm");
    std::fs::write(&p, &big).unwrap();
    let e = read_volume(&p).unwrap_err().to_string();
    assert!(e.contains("huge.dcm") && e.contains("declare"), "{e}");
    let mut rng = 0x2545f4914f6cdd1du64;
    for _ in 0..40 {
        let mut b = bytes.clone();
        for _ in 0..4 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let i = 128 + (rng % (b.len() as u64 - 128)) as usize;
            b[i] = (rng >> 40) as u8;
        }
        let p = tmp.join("bent.dcm");
        std::fs::write(&p, &b).unwrap();
        if let Err(e) = read_volume(&p) {
            assert!(e.to_string().contains("bent.dcm"), "{e}");
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
}
