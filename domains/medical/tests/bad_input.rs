//! Bad input: every way a header or stream can be wrong gives a clear error (naming the
//! file and the field) and never a panic or an allocation the file cannot back.

use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use proptest::prelude::*;
use tessera_medical::nifti::{read_pair_bytes, read_volume_bytes};
use tessera_medical::{read_volume, MedicalError, Volume, Warning};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden")
            .join(name),
    )
    .unwrap()
}

fn p() -> &'static Path {
    Path::new("bad.nii")
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

fn set_f32(b: &mut [u8], off: usize, v: f32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

fn read(b: &[u8]) -> Result<Volume, MedicalError> {
    read_volume_bytes(b, p())
}

fn bad_field(r: Result<Volume, MedicalError>, field: &str) -> String {
    match r {
        Err(e @ MedicalError::BadHeader { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains(field) && msg.contains("bad.nii"), "{msg}");
            msg
        }
        other => panic!("expected BadHeader({field}), got {other:?}"),
    }
}

#[test]
fn the_fixture_itself_reads() {
    assert_eq!(read(&n1()).unwrap().data.len(), 60);
    assert_eq!(read(&gz(&n1())).unwrap().data.len(), 60);
}

#[test]
fn wrong_sizeof_hdr_or_magic() {
    let mut b = n1();
    b[0..4].copy_from_slice(&349i32.to_le_bytes());
    let msg = read(&b).unwrap_err().to_string();
    assert!(
        msg.contains("not a NIfTI file") && msg.contains("sizeof_hdr is 349"),
        "{msg}"
    );

    let mut b = n1();
    b[344..348].copy_from_slice(b"abc\0");
    let msg = read(&b).unwrap_err().to_string();
    assert!(msg.contains("magic is \"abc\\0\""), "{msg}");

    let mut b = fixture("n2_float32.nii");
    b[4..8].copy_from_slice(b"n+1\0");
    assert!(matches!(read(&b), Err(MedicalError::NotNifti { .. })));
    let mut b = fixture("n2_float32.nii");
    b[8..12].copy_from_slice(b"\n\n\n\n");
    assert!(read(&b).unwrap_err().to_string().contains("text-mode"));

    // A single file whose magic says pair.
    let mut b = n1();
    b[344..348].copy_from_slice(b"ni1\0");
    bad_field(read(&b), "magic");

    for short in [&b""[..], &b"\x5c\x01"[..], &n1()[..200]] {
        assert!(matches!(
            read(short),
            Err(MedicalError::NotNifti { .. } | MedicalError::Truncated { .. })
        ));
    }
    assert!(read(b"this is a text file, not an image at all").is_err());
}

#[test]
fn zero_negative_or_too_many_dimensions() {
    for (i, v) in [(2usize, 0i16), (1, -5), (3, 0)] {
        let mut b = n1();
        set_i16(&mut b, 40 + 2 * i, v);
        let msg = bad_field(read(&b), "dim");
        assert!(msg.contains(&format!("dim[{i}] is {v}")), "{msg}");
    }
    for nd in [0i16, 8, -1] {
        let mut b = n1();
        set_i16(&mut b, 40, nd);
        bad_field(read(&b), "dim[0]");
    }
    // NIfTI-2 dims are i64: a product that overflows is refused before any arithmetic.
    let mut b = fixture("n2_float32.nii");
    for i in 1..=3 {
        b[16 + 8 * i..24 + 8 * i].copy_from_slice(&(1i64 << 40).to_le_bytes());
    }
    bad_field(read(&b), "overflows");
}

#[test]
fn nan_or_non_positive_pixdim() {
    for v in [f32::NAN, 0.0, -1.0, f32::INFINITY] {
        let mut b = n1();
        set_f32(&mut b, 76 + 4 * 2, v);
        let msg = bad_field(read(&b), "pixdim");
        assert!(msg.contains("pixdim[2]"), "{msg}");
    }
}

#[test]
fn other_bad_fields() {
    let mut b = n1();
    set_f32(&mut b, 108, 100.0); // vox_offset inside the header
    bad_field(read(&b), "vox_offset");
    let mut b = n1();
    set_f32(&mut b, 108, f32::NAN);
    bad_field(read(&b), "vox_offset");
    let mut b = n1();
    set_f32(&mut b, 112, 2.0);
    set_f32(&mut b, 116, f32::NAN);
    bad_field(read(&b), "scl_inter");
    // qform only, with an impossible quaternion.
    let mut b = n1();
    set_i16(&mut b, 252, 1);
    set_i16(&mut b, 254, 0);
    for i in 0..3 {
        set_f32(&mut b, 256 + 4 * i, 0.9);
    }
    bad_field(read(&b), "quatern");
    // sform with a zero column.
    let mut b = n1();
    for r in 0..3 {
        set_f32(&mut b, 280 + 16 * r + 4, 0.0);
    }
    assert!(matches!(read(&b), Err(MedicalError::SingularAffine { .. })));
}

#[test]
fn unsupported_datatypes_are_named() {
    for (code, name) in [
        (32i16, "complex64"),
        (128, "RGB24"),
        (2304, "RGBA32"),
        (1536, "float128"),
        (1, "binary"),
        (7, "not a NIfTI datatype code"),
    ] {
        let mut b = n1();
        set_i16(&mut b, 70, code);
        let msg = read(&b).unwrap_err().to_string();
        assert!(
            msg.contains(&format!("unsupported datatype {code} ({name})")),
            "{msg}"
        );
    }
}

#[test]
fn truncated_files_and_huge_declared_volumes() {
    let b = n1();
    let msg = read(&b[..b.len() - 1]).unwrap_err().to_string();
    assert!(
        msg.contains("truncated") && msg.contains("5x4x3 int16") && msg.contains("471 bytes"),
        "{msg}"
    );
    let msg = read(&gz(&b[..b.len() - 10])).unwrap_err().to_string();
    assert!(
        msg.contains("truncated") && msg.contains("110 bytes of voxel data"),
        "{msg}"
    );

    // 30000^3 int16 = 54 TB declared by a 472-byte file (plain) and a tiny gz: refused
    // before allocating (plain: size check; gz: the stream cap).
    let mut huge = n1();
    for i in 1..=3 {
        set_i16(&mut huge, 40 + 2 * i, 30000);
    }
    assert!(matches!(read(&huge), Err(MedicalError::Truncated { .. })));
    assert!(matches!(
        read(&gz(&huge)),
        Err(MedicalError::Truncated { .. })
    ));
    let msg = read(&gz(&huge)).unwrap_err().to_string();
    assert!(
        msg.contains("more than a") && msg.contains("-byte gzip stream can hold"),
        "{msg}"
    );
    // A claim a gzip stream could hold (60 kB of zeros) but this one does not: streamed
    // with the cap, then refused.
    let mut claim = n1();
    set_i16(&mut claim, 44, 2000); // dim[2]: 5x2000x3 int16 = 60,000 bytes
    let mut padded = claim.clone();
    padded.extend(vec![0u8; 40_000]);
    let msg = read(&gz(&padded)).unwrap_err().to_string();
    assert!(
        msg.contains("holds only 40120 bytes of voxel data"),
        "{msg}"
    );
    padded.extend(vec![0u8; 19_880]);
    let v = read(&gz(&padded)).unwrap();
    assert_eq!((v.dims, v.data.len()), ([5, 2000, 3], 30_000));
}

#[test]
fn corrupt_and_truncated_gzip_streams() {
    let z = gz(&fixture("n1_float64.nii"));
    // Cut inside the deflate data.
    let err = read(&z[..z.len() / 2]).unwrap_err();
    assert!(matches!(err, MedicalError::Truncated { .. }), "{err}");
    // Cut inside the trailer (CRC + size).
    let err = read(&z[..z.len() - 3]).unwrap_err();
    assert!(
        matches!(
            err,
            MedicalError::Truncated { .. } | MedicalError::Gzip { .. }
        ),
        "{err}"
    );
    // Wrong CRC-32 in the trailer: only a full decode notices.
    let mut bad = z.clone();
    let n = bad.len();
    bad[n - 8] ^= 0xff;
    let err = read(&bad).unwrap_err();
    assert!(matches!(err, MedicalError::Gzip { .. }), "{err}");
    assert!(err.to_string().contains("corrupt gzip stream"), "{err}");
    // Garbage in the middle of the deflate stream.
    let mut bad = z.clone();
    for b in &mut bad[n / 2..n / 2 + 16] {
        *b = 0xff;
    }
    assert!(matches!(
        read(&bad),
        Err(MedicalError::Gzip { .. } | MedicalError::Truncated { .. })
    ));
    // A bad gzip header.
    let mut bad = z.clone();
    bad[2] = 99; // compression method
    assert!(matches!(read(&bad), Err(MedicalError::Gzip { .. })));
}

#[test]
fn warnings_for_missing_orientation_and_nan_voxels() {
    let mut b = n1();
    set_i16(&mut b, 252, 0);
    set_i16(&mut b, 254, 0);
    let v = read(&b).unwrap();
    assert_eq!(v.warnings, vec![Warning::NoOrientation]);
    assert_eq!(v.world_from_voxel[0][0], 1.5);
    assert_eq!(v.world_from_voxel[0][3], 0.0);

    let mut v = read(&fixture("n1_float32_nan.nii")).unwrap();
    assert_eq!(v.warnings, vec![Warning::NonFiniteVoxels { count: 3 }]);
    assert_eq!(v.warnings[0].to_string(), "3 voxels are NaN or infinite");
    assert_eq!(v.replace_non_finite(0.0), 3);
    assert!(v.warnings.is_empty() && v.data.iter().all(|x| x.is_finite()));
    // Scaling that overflows f32 is counted too.
    let mut b = n1();
    set_f32(&mut b, 112, 1e36);
    let v = read(&b).unwrap();
    assert!(matches!(v.warnings[..], [Warning::NonFiniteVoxels { count }] if count > 0));
}

#[test]
fn pairs_missing_or_mismatched() {
    let dir = std::env::temp_dir().join(format!("tessera-medical-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let hdr = dir.join("lonely.hdr");
    std::fs::write(&hdr, fixture("n1pair_int16.hdr")).unwrap();
    let msg = read_volume(&hdr).unwrap_err().to_string();
    assert!(
        msg.contains("lonely.img") && msg.contains("missing"),
        "{msg}"
    );
    // A .hdr whose magic says single file.
    let single = dir.join("single.hdr");
    std::fs::write(&single, n1()).unwrap();
    std::fs::write(dir.join("single.img"), [0u8; 120]).unwrap();
    bad_field(
        read_volume(&single).map_err(|e| rename(e, "bad.nii")),
        "magic",
    );
    let missing: PathBuf = dir.join("nothing.nii.gz");
    assert!(matches!(
        read_volume(&missing),
        Err(MedicalError::Io { .. })
    ));
    // Image file shorter than the header declares.
    let h = fixture("n1pair_int16.hdr");
    let img = fixture("n1pair_int16.img");
    let whole = read_pair_bytes(&h, &img, p()).unwrap();
    assert_eq!(whole.data.len(), 60);
    assert!(matches!(
        read_pair_bytes(&h, &img[..100], p()),
        Err(MedicalError::Truncated { .. })
    ));
    assert_eq!(
        read_pair_bytes(&h, &gz(&img), p()).unwrap().data,
        whole.data
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Relabel a BadHeader's path so `bad_field` can check the message.
fn rename(e: MedicalError, to: &str) -> MedicalError {
    match e {
        MedicalError::BadHeader { field, reason, .. } => MedicalError::BadHeader {
            path: to.into(),
            field,
            reason,
        },
        e => e,
    }
}

fn check_ok(v: &Volume) -> Result<(), TestCaseError> {
    prop_assert_eq!(v.data.len(), v.n_spatial() * v.channels);
    prop_assert!(v.spacing_mm.iter().all(|s| *s > 0.0 && s.is_finite()));
    Ok(())
}

fn mutate(mut b: Vec<u8>, edits: &[(usize, u8)]) -> Vec<u8> {
    for &(i, x) in edits {
        let n = b.len();
        b[i % n] = x;
    }
    b
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..700)) {
        let _ = read(&bytes);
        let _ = read_pair_bytes(&bytes, &bytes, p());
    }

    #[test]
    fn corrupted_headers_never_panic(
        name in prop::sample::select(vec!["n1_int16.nii", "n2_float32.nii", "n1_int16_be.nii", "n2_int16_be.nii", "n1_ext.nii", "n1_5d_vector.nii"]),
        edits in proptest::collection::vec((0usize..544, any::<u8>()), 1..12),
    ) {
        let b = mutate(fixture(name), &edits);
        if let Ok(v) = read(&b) { check_ok(&v)?; }
        if let Ok(v) = read(&gz(&b)) { check_ok(&v)?; }
    }

    #[test]
    fn random_header_fields_never_panic(
        dims in proptest::collection::vec(any::<i16>(), 8),
        pixdim in proptest::collection::vec(any::<f32>(), 8),
        datatype in prop::sample::select(vec![2i16, 4, 8, 16, 64, 256, 512, 768, 1024, 1280, 32, 0, -1]),
        vox_offset in any::<f32>(),
        slope in any::<f32>(),
        codes in (any::<i16>(), any::<i16>()),
        quat in proptest::collection::vec(any::<f32>(), 6),
    ) {
        let mut b = n1();
        for (i, d) in dims.iter().enumerate() { set_i16(&mut b, 40 + 2 * i, *d); }
        for (i, x) in pixdim.iter().enumerate() { set_f32(&mut b, 76 + 4 * i, *x); }
        set_i16(&mut b, 70, datatype);
        set_f32(&mut b, 108, vox_offset);
        set_f32(&mut b, 112, slope);
        set_i16(&mut b, 252, codes.0);
        set_i16(&mut b, 254, codes.1);
        for (i, x) in quat.iter().enumerate() { set_f32(&mut b, 256 + 4 * i, *x); }
        if let Ok(v) = read(&b) { check_ok(&v)?; }
        if let Ok(v) = read(&gz(&b)) { check_ok(&v)?; }
    }

    #[test]
    fn corrupted_gzip_never_panics(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6), cut in any::<usize>()) {
        let z = mutate(gz(&fixture("n1_float32.nii")), &edits);
        let cut = cut % (z.len() + 1);
        if let Ok(v) = read(&z[..cut]) { check_ok(&v)?; }
    }

    #[test]
    fn corrupted_pairs_never_panic(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..10)) {
        let h = mutate(fixture("n2pair_uint16.hdr"), &edits);
        let _ = read_pair_bytes(&h, &fixture("n2pair_uint16.img"), p());
    }
}
