//! NRRD and MetaImage against SimpleITK on the fixtures written by
//! `scripts/golden_nrrd_mha.py` (files from ITK's own writers and hand-written headers for
//! the variants ITK never writes), and their bad-input behaviour.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use serde_json::Value;
use tessera_medical::{read_labels, read_volume, Format, MedicalError, Warning};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/formats")
}

fn golden() -> Value {
    let text = std::fs::read_to_string(dir().join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn every_fixture_matches_simpleitk() {
    let g = golden();
    let files = g["files"].as_object().unwrap();
    assert!(files.len() >= 20);
    for (name, e) in files {
        let path = dir().join(name);
        let v = read_volume(&path).unwrap_or_else(|err| panic!("{name}: {err}"));
        let dims: Vec<usize> = e["dims"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(v.dims.to_vec(), dims, "{name}");
        assert_eq!(v.channels as u64, e["channels"].as_u64().unwrap(), "{name}");
        assert_eq!(v.source.datatype.name(), e["datatype"], "{name}");
        let want: Vec<f64> = e["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        assert_eq!(v.data.len(), want.len(), "{name}");
        for (i, (&g, &w)) in v.data.iter().zip(&want).enumerate() {
            assert!(
                (f64::from(g) - w).abs() <= 1e-6 * w.abs().max(1.0),
                "{name}[{i}]: {g} vs SimpleITK {w}"
            );
        }
        let a = e["affine"].as_array().unwrap();
        for (r, row) in a.iter().enumerate() {
            for c in 0..4 {
                let w = row[c].as_f64().unwrap();
                assert!(
                    (v.world_from_voxel[r][c] - w).abs() < 1e-9,
                    "{name}: affine[{r}][{c}] {} vs SimpleITK {w}\n{:?}",
                    v.world_from_voxel[r][c],
                    v.world_from_voxel
                );
            }
        }
    }
}

#[test]
fn formats_are_detected_and_named() {
    for (name, format, text) in [
        ("itk_int16_oblique.nrrd", Format::Nrrd, "NRRD0004, raw"),
        ("detached_be.nhdr", Format::Nrrd, "detached data in"),
        ("itk_f32_zlib.mha", Format::MetaImage, "compressed"),
        ("itk_u8.mhd", Format::MetaImage, "data in"),
    ] {
        let p = dir().join(name);
        assert_eq!(Format::detect(&p).unwrap(), format, "{name}");
        let v = read_volume(&p).unwrap();
        assert!(
            v.source.format.contains(text),
            "{name}: {}",
            v.source.format
        );
    }
    // Content, not the name, decides for NRRD.
    let tmp = tempdir();
    let p = tmp.join("renamed.bin");
    std::fs::copy(dir().join("itk_int16_oblique.nrrd"), &p).unwrap();
    assert_eq!(Format::detect(&p).unwrap(), Format::Nrrd);
    assert_eq!(
        read_volume(&p).unwrap().data,
        read_volume(&dir().join("itk_int16_oblique.nrrd"))
            .unwrap()
            .data
    );
}

#[test]
fn headers_without_orientation_warn() {
    let v = read_volume(&dir().join("no_space.nrrd")).unwrap();
    assert!(v
        .warnings
        .contains(&Warning::NoDirections { format: "NRRD" }));
    assert_eq!(v.spacing_mm, [1.5, 2.0, 3.0]);
    let v = read_volume(&dir().join("scanner_xyz.nrrd")).unwrap();
    assert!(
        matches!(v.warnings[..], [Warning::Note(_)]),
        "{:?}",
        v.warnings
    );
}

fn tempdir() -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "tessera-formats-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

const NRRD_HEAD: &str = "NRRD0004\ntype: short\ndimension: 3\nspace: LPS\nsizes: 5 4 3\n\
space directions: (1,0,0) (0,1,0) (0,0,1)\nendian: little\n";

fn err_text(r: Result<impl std::fmt::Debug, MedicalError>) -> String {
    r.expect_err("expected an error").to_string()
}

#[test]
fn bad_nrrd_files_name_the_file_and_the_field() {
    let d = tempdir();
    let raw = [0u8; 120];
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "short.nrrd",
            [format!("{NRRD_HEAD}encoding: raw\n\n").as_bytes(), &raw[..100]].concat(),
            "truncated",
        ),
        (
            "huge.nrrd",
            "NRRD0004\ntype: float\ndimension: 3\nspace: LPS\nsizes: 100000 100000 100000\nspace directions: (1,0,0) (0,1,0) (0,0,1)\nendian: little\nencoding: raw\n\n".as_bytes().to_vec(),
            "truncated",
        ),
        (
            "huge_gz.nrrd",
            ["NRRD0004\ntype: float\ndimension: 3\nspace: LPS\nsizes: 4000 4000 4000\nspace directions: (1,0,0) (0,1,0) (0,0,1)\nendian: little\nencoding: gzip\n\n".as_bytes(), &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 3, 0]].concat(),
            "more than",
        ),
        (
            "bz.nrrd",
            [format!("{NRRD_HEAD}encoding: bzip2\n\n").as_bytes(), &raw[..]].concat(),
            "corrupt bzip2 stream",
        ),
        (
            "hex.nrrd",
            [format!("{NRRD_HEAD}encoding: hex\n\n").as_bytes(), &[b'z'; 240][..]].concat(),
            "not a hexadecimal digit",
        ),
        (
            "short_hex.nrrd",
            [format!("{NRRD_HEAD}encoding: hex\n\n").as_bytes(), &[b'0'; 200][..]].concat(),
            "hex stream holds only",
        ),
        (
            "zrl.nrrd",
            [format!("{NRRD_HEAD}encoding: zrl\n\n").as_bytes(), &raw[..]].concat(),
            "`encoding`",
        ),
        (
            "noendian.nrrd",
            b"NRRD0004\ntype: short\ndimension: 3\nsizes: 5 4 3\nencoding: raw\n\n".to_vec(),
            "`endian`",
        ),
        (
            "badtype.nrrd",
            b"NRRD0004\ntype: block\ndimension: 3\nsizes: 5 4 3\nencoding: raw\n\n".to_vec(),
            "`type`",
        ),
        (
            "sizes.nrrd",
            ["NRRD0004\ntype: short\ndimension: 3\nsizes: 5 4\nendian: little\nencoding: raw\n\n".as_bytes(), &raw[..]].concat(),
            "`sizes`",
        ),
        (
            "zero.nrrd",
            ["NRRD0004\ntype: short\ndimension: 3\nsizes: 5 0 3\nendian: little\nencoding: raw\n\n".as_bytes(), &raw[..]].concat(),
            "`sizes`",
        ),
        (
            "dirs.nrrd",
            ["NRRD0004\ntype: short\ndimension: 3\nspace: LPS\nsizes: 5 4 3\nspace directions: (1,0,0) (0,1,0)\nendian: little\nencoding: raw\n\n".as_bytes(), &raw[..]].concat(),
            "`space directions`",
        ),
        (
            "singular.nrrd",
            ["NRRD0004\ntype: short\ndimension: 3\nspace: LPS\nsizes: 5 4 3\nspace directions: (1,0,0) (0,0,0) (0,0,1)\nendian: little\nencoding: raw\n\n".as_bytes(), &raw[..]].concat(),
            "singular",
        ),
        (
            "space.nrrd",
            ["NRRD0004\ntype: short\ndimension: 3\nspace: right-anterior-superior-time\nsizes: 5 4 3\nendian: little\nencoding: raw\n\n".as_bytes(), &raw[..]].concat(),
            "`space`",
        ),
        (
            "missing.nhdr",
            format!("{NRRD_HEAD}encoding: raw\ndata file: nowhere.raw\n").into_bytes(),
            "nowhere.raw",
        ),
        (
            "list.nhdr",
            format!("{NRRD_HEAD}encoding: raw\ndata file: LIST\na.raw\nb.raw\n").into_bytes(),
            "`data file`",
        ),
        (
            "text_short.nrrd",
            format!("{NRRD_HEAD}encoding: ascii\n\n1 2 3\n").into_bytes(),
            "text data holds 3",
        ),
        (
            "text_bad.nrrd",
            format!("{NRRD_HEAD}encoding: ascii\n\n1 2 x\n").into_bytes(),
            "not a number",
        ),
        ("magic.nrrd", b"NRRD0009\n".to_vec(), "NRRD0009"),
    ];
    for (name, bytes, want) in cases {
        let p = write(&d, name, &bytes);
        let e = err_text(read_volume(&p));
        assert!(e.contains(name), "{name}: {e}");
        assert!(e.contains(want), "{name}: {e}");
    }
    // A gzip stream cut short.
    let gz = {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&(0..120).map(|i| (i * 7) as u8).collect::<Vec<u8>>())
            .unwrap();
        enc.finish().unwrap()
    };
    let head = format!("{NRRD_HEAD}encoding: gzip\n\n");
    let p = write(
        &d,
        "cut.nrrd",
        &[head.as_bytes(), &gz[..gz.len() / 2]].concat(),
    );
    let e = err_text(read_volume(&p));
    assert!(
        e.contains("cut.nrrd") && (e.contains("truncated") || e.contains("gzip")),
        "{e}"
    );
    let p = write(&d, "whole.nrrd", &[head.as_bytes(), &gz[..]].concat());
    assert_eq!(read_volume(&p).unwrap().data.len(), 60);
}

/// NRRD's `hex` encoding (bytes as digit pairs, either case, any whitespace, `byte skip`
/// counted in decoded bytes) reads the same voxels as the raw file it was made from.
#[test]
fn nrrd_hex_reads_as_its_raw_twin() {
    let d = tempdir();
    let raw = std::fs::read(dir().join("itk_int16_oblique.nrrd")).unwrap();
    let split = raw.windows(2).position(|w| w == b"\n\n").unwrap() + 2;
    let header = String::from_utf8_lossy(&raw[..split]).replace("encoding: raw", "encoding: hex");
    let header = header.replace("\n\n", "\nbyte skip: 2\n\n");
    let mut body = String::from("AbCd");
    for (i, b) in raw[split..].iter().enumerate() {
        body.push_str(&if i % 3 == 0 {
            format!("{b:02X}")
        } else {
            format!("{b:02x}")
        });
        body.push(if i % 16 == 15 { '\n' } else { ' ' });
    }
    let hex = write(
        &d,
        "hex.nrrd",
        [header.as_bytes(), body.as_bytes()].concat().as_slice(),
    );
    let a = read_volume(&dir().join("itk_int16_oblique.nrrd")).unwrap();
    let b = read_volume(&hex).unwrap();
    assert_eq!(a.data, b.data);
    assert_eq!(a.world_from_voxel, b.world_from_voxel);
}

#[test]
fn bad_metaimage_files_name_the_file_and_the_key() {
    let d = tempdir();
    let head = "ObjectType = Image\nNDims = 3\nDimSize = 5 4 3\nElementType = MET_SHORT\n";
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "short.mha",
            [format!("{head}ElementDataFile = LOCAL\n").as_bytes(), &[0u8; 50]].concat(),
            "truncated",
        ),
        (
            "nodata.mha",
            head.as_bytes().to_vec(),
            "`ElementDataFile`",
        ),
        (
            "type.mha",
            b"NDims = 3\nDimSize = 5 4 3\nElementType = MET_SHORT_ARRAY\nElementDataFile = LOCAL\n"
                .to_vec(),
            "`ElementType`",
        ),
        (
            "ndims.mha",
            b"NDims = 7\nDimSize = 5 4 3\nElementType = MET_SHORT\nElementDataFile = LOCAL\n"
                .to_vec(),
            "`NDims`",
        ),
        (
            "dimsize.mha",
            b"NDims = 3\nDimSize = 5 4\nElementType = MET_SHORT\nElementDataFile = LOCAL\n"
                .to_vec(),
            "`DimSize`",
        ),
        (
            "object.mha",
            b"ObjectType = Mesh\nNDims = 3\nElementDataFile = LOCAL\n".to_vec(),
            "`ObjectType`",
        ),
        (
            "missing.mhd",
            format!("{head}ElementDataFile = gone.raw\n").into_bytes(),
            "gone.raw",
        ),
        (
            "pattern.mhd",
            format!("{head}ElementDataFile = slice%03d.raw 1 3 1\n").into_bytes(),
            "`ElementDataFile`",
        ),
        (
            "zlib.mha",
            [format!("{head}CompressedData = True\nElementDataFile = LOCAL\n").as_bytes(), &[0x78, 0x9c, 1, 2, 3]].concat(),
            "zlib",
        ),
        (
            "huge.mha",
            b"NDims = 3\nDimSize = 100000 100000 100000\nElementType = MET_FLOAT\nElementDataFile = LOCAL\n"
                .to_vec(),
            "truncated",
        ),
        (
            "bool.mha",
            format!("{head}BinaryData = maybe\nElementDataFile = LOCAL\n").into_bytes(),
            "`BinaryData`",
        ),
    ];
    for (name, bytes, want) in cases {
        let p = write(&d, name, &bytes);
        let e = err_text(read_volume(&p));
        assert!(e.contains(name), "{name}: {e}");
        assert!(e.contains(want), "{name}: {e}");
    }
}

#[test]
fn label_maps_read_from_any_format() {
    let l = read_labels(&dir().join("itk_u8.mhd")).unwrap();
    let v = read_volume(&dir().join("itk_u8.mhd")).unwrap();
    assert_eq!(l.data.iter().map(|&x| x as f32).collect::<Vec<_>>(), v.data);
    assert!(read_labels(&dir().join("itk_f32_zlib.mha")).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Any corruption of a header or its data gives a volume or an error, never a panic.
    #[test]
    fn corrupted_files_never_panic(
        which in 0usize..5,
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in any::<usize>(),
    ) {
        let name = ["itk_int16_oblique.nrrd", "itk_f64_gzip.nrrd", "itk_f32_zlib.mha", "msb.mha", "bzip2.nrrd"][which];
        let mut b = std::fs::read(dir().join(name)).unwrap();
        for (i, v) in edits {
            let n = b.len();
            b[i % n] = v;
        }
        let keep = b.len() - cut % (b.len() / 2);
        b.truncate(keep);
        let d = tempdir();
        let p = write(&d, name, &b);
        let _ = read_volume(&p);
    }
}
