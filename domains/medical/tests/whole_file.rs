//! Whole-file checks: `check_file` (and `inspect`, which calls it) compare the data a
//! header declares with what the file holds, without decoding voxels. Every failure names
//! the file and the problem, and agrees with `read_volume`; files are generated here.

use std::error::Error as _;
use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use proptest::prelude::*;
use tessera_medical::inspect::inspect;
use tessera_medical::nifti::{check_file, read_header, FileCheck};
use tessera_medical::{read_volume, MedicalError};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden")
            .join(name),
    )
    .unwrap()
}

/// The little-endian NIfTI-1 int16 5x4x3 fixture (vox_offset 352, 120 data bytes).
fn n1() -> Vec<u8> {
    fixture("n1_int16.nii")
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn set_i16(b: &mut [u8], off: usize, v: i16) {
    b[off..off + 2].copy_from_slice(&v.to_le_bytes());
}

/// A fresh folder per test (tests run in parallel).
fn tmp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "tessera-medical-whole-{}-{tag}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// `check_file`, `inspect` and `read_volume` all fail on `path`; returns check_file's
/// error after asserting that every message names `names` (the file at fault).
fn all_fail(path: &Path, names: &Path) -> MedicalError {
    let e = check_file(path).unwrap_err();
    for msg in [
        e.to_string(),
        inspect(path).unwrap_err().to_string(),
        read_volume(path).unwrap_err().to_string(),
    ] {
        assert!(
            msg.contains(&names.display().to_string()),
            "does not name {}: {msg}",
            names.display()
        );
    }
    e
}

fn truncated(e: &MedicalError) -> String {
    assert!(matches!(e, MedicalError::Truncated { .. }), "{e}");
    e.to_string()
}

#[test]
fn complete_files_pass_and_report_what_was_checked() {
    let d = tmp("ok");
    let plain = write(&d, "ok.nii", &n1());
    let c = check_file(&plain).unwrap();
    assert_eq!(
        (
            c.data_offset,
            c.declared_bytes,
            c.present_bytes,
            c.file_bytes
        ),
        (352, 120, 472, 472)
    );
    assert_eq!(c.trailing_bytes(), 0);
    assert_eq!(c.header.path, plain);
    let s = inspect(&plain).unwrap();
    assert!(
        s.contains("data:        120 bytes at offset 352; the file holds 472 bytes"),
        "{s}"
    );

    let z = gz(&n1());
    let zipped = write(&d, "ok.nii.gz", &z);
    let c = check_file(&zipped).unwrap();
    assert_eq!(
        (
            c.data_offset,
            c.declared_bytes,
            c.present_bytes,
            c.file_bytes
        ),
        (352, 120, 472, z.len() as u64)
    );
    assert!(c.header.format.data_gz);
    let s = inspect(&zipped).unwrap();
    assert!(
        s.contains(&format!(
            "the {}-byte gzip stream inflates to 472 bytes (checksum verified)",
            z.len()
        )),
        "{s}"
    );

    // Data after the declared voxels is allowed (nibabel and read_volume ignore it).
    let mut longer = n1();
    longer.extend([7u8; 100]);
    for (name, bytes) in [("long.nii", longer.clone()), ("long.nii.gz", gz(&longer))] {
        let p = write(&d, name, &bytes);
        let c = check_file(&p).unwrap();
        assert_eq!((c.present_bytes, c.trailing_bytes()), (572, 100), "{name}");
        assert!(inspect(&p)
            .unwrap()
            .contains("100 bytes after the voxels are ignored"));
        read_volume(&p).unwrap();
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn every_fixture_passes_with_the_declared_size() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        // Pairs open from their .hdr; expected.json is not an image.
        if name.ends_with(".json") || name.contains(".img") {
            continue;
        }
        let c: FileCheck = check_file(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let v = read_volume(&path).unwrap();
        // (Debug form: scl_slope may be NaN, which is never == itself.)
        let h = read_header(&path).unwrap();
        assert_eq!(format!("{:?}", c.header), format!("{h:?}"), "{name}");
        assert_eq!(v.source.format, h.format.to_string(), "{name}");
        assert_eq!(c.declared_bytes, h.data_bytes(), "{name}");
        assert_eq!(
            c.declared_bytes,
            (v.data.len() * v.source.datatype.size()) as u64,
            "{name}"
        );
        assert!(
            c.present_bytes >= c.data_offset + c.declared_bytes,
            "{name}: {c:?}"
        );
        let on_disk = std::fs::metadata(&c.header.data_path).unwrap().len();
        assert_eq!(c.file_bytes, on_disk, "{name}");
        if !c.header.format.data_gz {
            assert_eq!(c.present_bytes, on_disk, "{name}");
        }
        n += 1;
    }
    assert!(n >= 40, "{n} fixtures");
}

#[test]
fn truncated_plain_files_are_errors_naming_the_file() {
    let d = tmp("plain");
    let b = n1();
    // One byte short of the data.
    let p = write(&d, "short.nii", &b[..b.len() - 1]);
    let msg = truncated(&all_fail(&p, &p));
    assert!(
        msg.contains(
            "5x4x3 int16 voxels (120 bytes) at offset 352, but the file holds 471 bytes (472 needed)"
        ),
        "{msg}"
    );
    // Cut in half: inside the header.
    let p = write(&d, "half.nii", &b[..b.len() / 2]);
    let msg = truncated(&all_fail(&p, &p));
    assert!(msg.contains("ends inside the header"), "{msg}");
    // Only the header: no voxels at all.
    let p = write(&d, "header_only.nii", &b[..352]);
    let msg = truncated(&all_fail(&p, &p));
    assert!(msg.contains("holds 352 bytes (472 needed)"), "{msg}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_huge_declared_volume_over_a_small_file_is_an_error() {
    // 30000^3 int16 voxels (54 TB) declared by a 68 KB file: refused without allocating.
    let d = tmp("huge");
    let mut huge = n1();
    for i in 1..=3 {
        set_i16(&mut huge, 40 + 2 * i, 30000);
    }
    huge.resize(68 * 1024, 0);
    let p = write(&d, "huge.nii", &huge);
    let msg = truncated(&all_fail(&p, &p));
    assert!(
        msg.contains("30000x30000x30000 int16 voxels (54000000000000 bytes) at offset 352")
            && msg.contains("the file holds 69632 bytes (54000000000352 needed)"),
        "{msg}"
    );
    // The same compressed: the whole stream is inflated and counted.
    let p = write(&d, "huge.nii.gz", &gz(&huge));
    let msg = truncated(&all_fail(&p, &p));
    assert!(
        msg.contains("54000000000000 bytes")
            && msg.contains("the gzip stream holds only 69280 bytes of voxel data"),
        "{msg}"
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn truncated_and_corrupt_gzip_streams_are_errors_naming_the_file() {
    let d = tmp("gz");
    let z = gz(&fixture("n1_float64.nii"));
    let n = z.len();

    // Cut in half, inside the deflate data.
    let p = write(&d, "half.nii.gz", &z[..n / 2]);
    let msg = truncated(&all_fail(&p, &p));
    assert!(msg.contains("gzip stream ends early"), "{msg}");
    // Cut inside the 8-byte trailer.
    let p = write(&d, "trailer.nii.gz", &z[..n - 3]);
    let e = all_fail(&p, &p);
    assert!(
        matches!(
            e,
            MedicalError::Truncated { .. } | MedicalError::Gzip { .. }
        ),
        "{e}"
    );

    // Wrong CRC-32: a corrupt stream, with the decoder's error kept as the source.
    let mut bad = z.clone();
    bad[n - 8] ^= 0xff;
    let p = write(&d, "crc.nii.gz", &bad);
    let e = all_fail(&p, &p);
    assert!(matches!(e, MedicalError::Gzip { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("corrupt gzip stream") && msg.contains("checksum"),
        "{msg}"
    );
    let source = e.source().expect("the decoder's error is the source");
    assert!(source.downcast_ref::<std::io::Error>().is_some());
    // Wrong length in the trailer.
    let mut bad = z.clone();
    bad[n - 1] ^= 0x01;
    let p = write(&d, "isize.nii.gz", &bad);
    assert!(matches!(all_fail(&p, &p), MedicalError::Gzip { .. }));

    // A complete stream holding less than the header declares.
    let b = n1();
    let p = write(&d, "short.nii.gz", &gz(&b[..b.len() - 10]));
    let msg = truncated(&all_fail(&p, &p));
    assert!(
        msg.contains("5x4x3 int16 voxels (120 bytes) at offset 352")
            && msg.contains("holds only 110 bytes of voxel data"),
        "{msg}"
    );
    // A stream ending before vox_offset (header extensions cut).
    let p = write(&d, "noext.nii.gz", &gz(&b[..350]));
    let msg = truncated(&all_fail(&p, &p));
    assert!(msg.contains("before the voxel offset 352"), "{msg}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn the_check_verifies_a_trailer_read_volume_stops_short_of() {
    // read_volume reads at most 64 KiB past the voxels of a gzip stream; check_file
    // inflates to the end, so a bad checksum behind 200 KB of trailing data is found.
    let d = tmp("far");
    let mut long = n1();
    long.extend((0..200_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
    let mut z = gz(&long);
    let n = z.len();
    z[n - 8] ^= 0xff;
    let p = write(&d, "far.nii.gz", &z);
    assert!(read_volume(&p).is_ok());
    let e = check_file(&p).unwrap_err();
    assert!(matches!(e, MedicalError::Gzip { .. }), "{e}");
    assert!(e.to_string().contains(&p.display().to_string()), "{e}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn pairs_name_the_half_at_fault() {
    let d = tmp("pairs");
    let (h, img) = (fixture("n1pair_int16.hdr"), fixture("n1pair_int16.img"));
    let hdr = write(&d, "a.hdr", &h);
    write(&d, "a.img", &img);
    let c = check_file(&hdr).unwrap();
    assert_eq!(c.header.data_path, d.join("a.img"));
    assert_eq!((c.data_offset, c.present_bytes), (0, img.len() as u64));
    // A short .img: the error names the .img, opened from either half.
    write(&d, "a.img", &img[..img.len() - 2]);
    for open in [hdr.clone(), d.join("a.img")] {
        let msg = truncated(&all_fail(&open, &d.join("a.img")));
        assert!(msg.contains("needed"), "{msg}");
    }
    // A gzipped .img with a bad checksum.
    let hdr = write(&d, "b.hdr", &h);
    let mut z = gz(&img);
    let n = z.len();
    z[n - 6] ^= 0x55;
    write(&d, "b.img.gz", &z);
    let e = all_fail(&hdr, &d.join("b.img.gz"));
    assert!(matches!(e, MedicalError::Gzip { .. }), "{e}");
    // A gzipped .hdr.gz with a bad checksum: only the whole-file check inflates the header
    // file to its end.
    let mut zh = gz(&h);
    let n = zh.len();
    zh[n - 8] ^= 0xff;
    let hdr = write(&d, "c.hdr.gz", &zh);
    write(&d, "c.img", &img);
    let e = check_file(&hdr).unwrap_err();
    assert!(matches!(e, MedicalError::Gzip { .. }), "{e}");
    assert!(e.to_string().contains(&hdr.display().to_string()), "{e}");
    assert!(e.to_string().contains("header file"), "{e}");
    let _ = std::fs::remove_dir_all(&d);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Cut anywhere, plain or gzipped: check_file fails exactly when read_volume fails,
    /// names the file, and never panics.
    #[test]
    fn check_file_agrees_with_read_volume_on_cut_files(
        name in prop::sample::select(vec!["n1_int16.nii", "n2_float32.nii", "n1_ext.nii", "n1_5d_vector.nii"]),
        zipped in any::<bool>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let d = tmp("prop");
        let raw = fixture(name);
        let bytes = if zipped { gz(&raw) } else { raw };
        let len = cut.index(bytes.len() + 1);
        let p = write(&d, if zipped { "x.nii.gz" } else { "x.nii" }, &bytes[..len]);
        let check = check_file(&p);
        let read = read_volume(&p);
        prop_assert_eq!(check.is_ok(), read.is_ok(), "{:?} vs {:?}", check.as_ref().err(), read.as_ref().err());
        prop_assert_eq!(check.is_ok(), len == bytes.len());
        if let Err(e) = check {
            prop_assert!(e.to_string().contains(&p.display().to_string()), "{}", e);
        }
        let _ = std::fs::remove_dir_all(&d);
    }
}
