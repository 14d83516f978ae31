//! The splat readers against the real splats of `../shared/data/splat` (golden values from
//! plyfile + NumPy, `make_golden.py`), round trips through every writer, a PlayCanvas
//! compressed PLY packed here as splat-transform packs it, bad files (counts beyond the
//! file, lists that disagree, NaN positions, zero scales, degenerate rotations, truncations),
//! and the token views.

use proptest::prelude::*;
use std::path::{Path, PathBuf};
use tessera_splat::formats::{read_npy, read_splat, read_spz, write_npy, write_splat, write_spz};
use tessera_splat::frontend::read_file;
use tessera_splat::gaussians::{sigmoid, Gaussians, SH_C0};
use tessera_splat::ply::{self, Encoding};
use tessera_splat::synth::shape;
use tessera_splat::{SplatConfig, SplatError, SplatFrontend};
use tessera_tokens::resources::{required, shared_data};
use tessera_tokens::{Modality, Rng};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tessera-splat-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn close(a: f32, b: f64, tol: f64, what: &str) {
    assert!(
        (a as f64 - b).abs() <= tol * (1.0 + b.abs()),
        "{what}: {a} vs {b}"
    );
}

fn err_of(r: Result<impl std::fmt::Debug, SplatError>) -> String {
    let e = r.expect_err("should fail");
    e.to_string()
}

#[test]
fn real_splats_match_plyfile() {
    let Some(root) = shared_data("splat") else {
        assert!(
            !required("TESSERA_REQUIRE_DATA"),
            "../shared/data/splat missing"
        );
        return;
    };
    let golden: serde_json::Value = serde_json::from_str(include_str!("golden.json")).unwrap();
    for s in golden["splats"].as_array().unwrap() {
        let path = root.join(s["path"].as_str().unwrap());
        let (kind, g) = read_file(&path, 3, 1 << 30).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(kind, "ply-3dgs");
        assert_eq!(g.len() as u64, s["count"].as_u64().unwrap());
        assert_eq!(g.rest_len() as u64, s["sh_rest"].as_u64().unwrap());
        let extra: Vec<&str> = g.extra.iter().map(|(n, _)| n.as_str()).collect();
        let want: Vec<&str> = s["extra"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(extra, want);
        for smp in s["samples"].as_array().unwrap() {
            let i = smp["index"].as_u64().unwrap() as usize;
            let f = |k: &str| -> Vec<f64> {
                smp[k]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap())
                    .collect()
            };
            for a in 0..3 {
                close(g.pos[i][a], f("pos")[a], 1e-12, "pos");
                close(g.log_scale[i][a], f("log_scale")[a], 1e-12, "log_scale");
                close(g.dc[i][a], f("dc")[a], 1e-12, "dc");
            }
            for a in 0..4 {
                close(g.rot[i][a], f("rot")[a], 1e-6, "rot");
            }
            close(
                g.opacity[i],
                smp["opacity"].as_f64().unwrap(),
                1e-6,
                "opacity",
            );
            let rest = f("rest");
            for (k, v) in rest.iter().enumerate() {
                close(g.sh_rest[i * rest.len() + k], *v, 1e-12, "f_rest");
            }
        }
        let sum: f64 = g.opacity.iter().map(|v| *v as f64).sum();
        close(
            sum as f32,
            s["sum_opacity"].as_f64().unwrap(),
            1e-5,
            "sum opacity",
        );
        for a in 0..3 {
            let sp: f64 = g.pos.iter().map(|p| p[a] as f64).sum();
            close(
                sp as f32,
                s["sum_pos"][a].as_f64().unwrap(),
                1e-5,
                "sum pos",
            );
        }
        // Fewer SH bands on request; the rest of the file is still checked.
        let (_, g0) = read_file(&path, 0, 1 << 30).unwrap();
        assert_eq!(g0.sh_degree, 0);
        assert!(g0.sh_rest.is_empty());
        assert_eq!(g0.pos, g.pos);
    }
    let m = &golden["modelnet"];
    let p = root.join(m["path"].as_str().unwrap());
    let i = m["index"].as_u64().unwrap() as usize;
    let g = read_npy(&p, Some(i), 1 << 20).unwrap();
    assert_eq!(g.len() as u64, m["shape"][1].as_u64().unwrap());
    for a in 0..3 {
        close(g.pos[0][a], m["first"][a].as_f64().unwrap(), 1e-12, "first");
        close(
            g.pos[1023][a],
            m["last"][a].as_f64().unwrap(),
            1e-12,
            "last",
        );
    }
    let tagged = PathBuf::from(format!("{}#index={i}", p.display()));
    assert_eq!(read_file(&tagged, 0, 1 << 20).unwrap().1.pos, g.pos);
    assert!(err_of(read_npy(&p, None, 1 << 20)).contains("#index"));
    assert!(err_of(read_npy(&p, Some(5000), 1 << 20)).contains("out of range"));
}

fn same(a: &Gaussians, b: &Gaussians) {
    assert_eq!(a.len(), b.len());
    assert_eq!(a.pos, b.pos);
    assert_eq!(a.log_scale, b.log_scale);
    assert_eq!(a.dc, b.dc);
    assert_eq!(a.sh_rest, b.sh_rest);
    for i in 0..a.len() {
        assert!((a.opacity[i] - b.opacity[i]).abs() < 1e-5);
        for k in 0..4 {
            assert!((a.rot[i][k] - b.rot[i][k]).abs() < 1e-6);
        }
    }
}

#[test]
fn ply_round_trips_in_every_encoding() {
    let d = tmp("ply");
    let mut g = shape("torus", 300, true, &mut Rng::new(3));
    g.extra
        .push(("segment".into(), (0..300).map(|i| (i % 7) as f32).collect()));
    for enc in [Encoding::BinaryLe, Encoding::BinaryBe, Encoding::Ascii] {
        let p = d.join(format!("{}.ply", enc.name()));
        ply::write(&p, &g, enc).unwrap();
        let (h, back) = ply::read(&p, 3, 1 << 20).unwrap();
        assert_eq!(h.encoding, enc);
        same(&g, &back);
        assert_eq!(back.extra, g.extra);
    }
}

#[test]
fn compact_formats_round_trip_within_their_quantisation() {
    let d = tmp("compact");
    let g = shape("cube", 257, true, &mut Rng::new(4));
    let p = d.join("a.splat");
    write_splat(&p, &g).unwrap();
    let s = read_splat(&p, 1 << 20).unwrap();
    assert_eq!(s.pos, g.pos);
    for i in 0..g.len() {
        for a in 0..3 {
            assert!((s.log_scale[i][a] - g.log_scale[i][a]).abs() < 1e-5);
            let c = (0.5 + SH_C0 * g.dc[i][a]).clamp(0.0, 1.0);
            assert!((s.rgb(i)[a] - c).abs() <= 0.5 / 255.0 + 1e-5);
        }
        let dot: f32 = (0..4).map(|k| s.rot[i][k] * g.rot[i][k]).sum();
        assert!(dot.abs() > 0.99, "rotation {i}: {dot}");
    }
    let p = d.join("a.spz");
    write_spz(&p, &g).unwrap();
    let z = read_spz(&p, 1 << 20, 3).unwrap();
    assert_eq!(z.sh_degree, 1);
    for i in 0..g.len() {
        for a in 0..3 {
            assert!((z.pos[i][a] - g.pos[i][a]).abs() <= 0.5 / 4096.0 + 1e-6);
            assert!((z.log_scale[i][a] - g.log_scale[i][a]).abs() <= 0.5 / 16.0 + 1e-5);
        }
        assert!((z.opacity[i] - g.opacity[i]).abs() <= 0.5 / 255.0 + 1e-6);
        let dot: f32 = (0..4).map(|k| z.rot[i][k] * g.rot[i][k]).sum();
        assert!(dot.abs() > 0.99);
        for k in 0..9 {
            assert!((z.sh_rest[i * 9 + k] - g.sh_rest[i * 9 + k]).abs() <= 0.5 / 128.0 + 1e-6);
        }
    }
    let p = d.join("a.npy");
    write_npy(&p, &g.pos).unwrap();
    assert_eq!(read_npy(&p, None, 1 << 20).unwrap().pos, g.pos);
}

/// Packs Gaussians as PlayCanvas's splat-transform does (`compressed-chunk.ts`).
fn write_compressed(path: &Path, g: &Gaussians) {
    let n = g.len();
    let chunks = n.div_ceil(256);
    let mut head = format!("ply\nformat binary_little_endian 1.0\nelement chunk {chunks}\n");
    for p in [
        "min_x",
        "min_y",
        "min_z",
        "max_x",
        "max_y",
        "max_z",
        "min_scale_x",
        "min_scale_y",
        "min_scale_z",
        "max_scale_x",
        "max_scale_y",
        "max_scale_z",
    ] {
        head += &format!("property float {p}\n");
    }
    head += &format!("element vertex {n}\n");
    for p in [
        "packed_position",
        "packed_rotation",
        "packed_scale",
        "packed_color",
    ] {
        head += &format!("property uint {p}\n");
    }
    head += &format!("element sh {n}\n");
    for k in 0..9 {
        head += &format!("property uchar f_rest_{k}\n");
    }
    head += "end_header\n";
    let mut out = head.into_bytes();
    let pack = |v: f32, bits: u32| {
        ((v * ((1u32 << bits) - 1) as f32 + 0.5).floor() as u32).min((1 << bits) - 1)
    };
    let mut ranges = Vec::new();
    for c in 0..chunks {
        let idx: Vec<usize> = (c * 256..((c + 1) * 256).min(n)).collect();
        let mm = |f: &dyn Fn(usize) -> f32| {
            let lo = idx.iter().map(|&i| f(i)).fold(f32::INFINITY, f32::min);
            let hi = idx.iter().map(|&i| f(i)).fold(f32::NEG_INFINITY, f32::max);
            (lo, hi)
        };
        let p: Vec<(f32, f32)> = (0..3).map(|a| mm(&|i| g.pos[i][a])).collect();
        let s: Vec<(f32, f32)> = (0..3).map(|a| mm(&|i| g.log_scale[i][a])).collect();
        for v in p
            .iter()
            .map(|x| x.0)
            .chain(p.iter().map(|x| x.1))
            .chain(s.iter().map(|x| x.0))
            .chain(s.iter().map(|x| x.1))
        {
            out.extend(v.to_le_bytes());
        }
        ranges.push((p, s));
    }
    let norm = |v: f32, (lo, hi): (f32, f32)| if hi > lo { (v - lo) / (hi - lo) } else { 0.0 };
    for i in 0..n {
        let (p, s) = &ranges[i / 256];
        let t = |v: [f32; 3], r: &Vec<(f32, f32)>| {
            (pack(norm(v[0], r[0]), 11) << 21)
                | (pack(norm(v[1], r[1]), 10) << 11)
                | pack(norm(v[2], r[2]), 11)
        };
        let mut q = g.rot[i];
        let largest = (0..4)
            .max_by(|&a, &b| q[a].abs().total_cmp(&q[b].abs()))
            .unwrap();
        if q[largest] < 0.0 {
            q = q.map(|v| -v);
        }
        let mut rot = largest as u32;
        for k in (0..4).filter(|&k| k != largest) {
            rot = (rot << 10) | pack(q[k] * std::f32::consts::SQRT_2 * 0.5 + 0.5, 10);
        }
        let c = g.rgb(i).map(|v| pack(v.clamp(0.0, 1.0), 8));
        let col = (c[0] << 24) | (c[1] << 16) | (c[2] << 8) | pack(g.opacity[i], 8);
        for v in [t(g.pos[i], p), rot, t(g.log_scale[i], s), col] {
            out.extend(v.to_le_bytes());
        }
    }
    for i in 0..n {
        for k in 0..9 {
            out.push(((g.sh_rest[i * 9 + k] / 8.0 + 0.5) * 256.0).clamp(0.0, 255.0) as u8);
        }
    }
    std::fs::write(path, out).unwrap();
}

#[test]
#[allow(clippy::needless_range_loop)]
fn playcanvas_compressed_ply_decodes() {
    let d = tmp("compressed");
    let g = shape("sphere", 600, true, &mut Rng::new(5));
    let p = d.join("scene.compressed.ply");
    write_compressed(&p, &g);
    let (kind, c) = read_file(&p, 3, 1 << 20).unwrap();
    assert_eq!(kind, "ply-compressed");
    assert_eq!((c.len(), c.sh_degree), (600, 1));
    let ext: [f32; 3] = std::array::from_fn(|a| {
        g.pos
            .iter()
            .map(|p| p[a])
            .fold(0.0f32, |m, v| m.max(v.abs()))
    });
    for i in 0..600 {
        for a in 0..3 {
            assert!(
                (c.pos[i][a] - g.pos[i][a]).abs() < 2.0 * ext[a] / 1023.0,
                "pos {i}"
            );
            assert!(
                (c.log_scale[i][a] - g.log_scale[i][a]).abs() < 0.01,
                "scale {i}"
            );
            let rgb = (0.5 + SH_C0 * g.dc[i][a]).clamp(0.0, 1.0);
            assert!((c.rgb(i)[a] - rgb).abs() < 0.6 / 255.0, "colour {i}");
        }
        let dot: f32 = (0..4).map(|k| c.rot[i][k] * g.rot[i][k]).sum();
        assert!(dot.abs() > 0.999, "rotation {i}: {dot}");
        assert!((c.opacity[i] - g.opacity[i]).abs() < 0.6 / 255.0);
        for k in 0..9 {
            assert!((c.sh_rest[i * 9 + k] - g.sh_rest[i * 9 + k]).abs() <= 8.0 / 256.0);
        }
    }
}

#[test]
fn point_sets_read_as_isotropic_gaussians() {
    let d = tmp("points");
    let off = d.join("chair.off");
    // ModelNet's header glued to the counts.
    std::fs::write(&off, "OFF3 1 0\n0 0 0\n1 0 0\n0 1 0.5\n3 0 1 2\n").unwrap();
    let (_, g) = read_file(&off, 0, 100).unwrap();
    assert_eq!(
        g.pos,
        vec![[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.5]]
    );
    assert!(!g.attributes && g.opacity == vec![1.0; 3]);
    let xyz = d.join("a.xyz");
    std::fs::write(&xyz, "x,y,z,intensity\n1,2,3,9\n# note\n4 5 6 9\n").unwrap();
    assert_eq!(
        read_file(&xyz, 0, 100).unwrap().1.pos,
        vec![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    );
    let p = d.join("c.ply");
    std::fs::write(
        &p,
        b"ply\nformat ascii 1.0\ncomment from a scanner\nelement vertex 2\nproperty double x\nproperty double y\nproperty double z\nproperty uchar red\nproperty uchar green\nproperty uchar blue\nelement face 1\nproperty list uchar int vertex_indices\nend_header\n0 0 0 255 0 0\n1 1 1 0 255 0\n3 0 1 1\n",
    )
    .unwrap();
    let (kind, g) = read_file(&p, 0, 100).unwrap();
    assert_eq!(kind, "ply-points");
    assert!((g.rgb(0)[0] - 1.0).abs() < 1e-6 && g.rgb(0)[1].abs() < 1e-6);
    // a binary point cloud with a face list after the vertices
    let mut b = b"ply\nformat binary_little_endian 1.0\nelement vertex 2\nproperty float x\nproperty float y\nproperty float z\nelement face 1\nproperty list uchar int vertex_indices\nend_header\n".to_vec();
    for v in [0f32, 1.0, 2.0, 3.0, 4.0, 5.0] {
        b.extend(v.to_le_bytes());
    }
    b.push(3);
    for i in [0i32, 1, 1] {
        b.extend(i.to_le_bytes());
    }
    std::fs::write(&p, &b).unwrap();
    assert_eq!(
        read_file(&p, 0, 100).unwrap().1.pos,
        vec![[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    );
}

#[test]
fn bad_files_are_refused_with_the_file_and_the_property() {
    let d = tmp("bad");
    let w = |name: &str, bytes: &[u8]| {
        let p = d.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let head = "ply\nformat binary_little_endian 1.0\nelement vertex 1000000000\nproperty float x\nproperty float y\nproperty float z\nend_header\n";
    let e = err_of(read_file(&w("huge.ply", head.as_bytes()), 0, u64::MAX));
    assert!(e.contains("huge.ply") && e.contains("1000000000"), "{e}");
    let mut small = head.replace("1000000000", "3").into_bytes();
    small.extend([0u8; 36]);
    let e = err_of(read_file(&w("limit.ply", &small), 0, 2));
    assert!(e.contains("max_gaussians"), "{e}");
    let e = err_of(read_file(
        &w("noend.ply", b"ply\nformat ascii 1.0\nelement vertex 1\n"),
        0,
        10,
    ));
    assert!(e.contains("end_header"), "{e}");
    let e = err_of(read_file(
        &w(
            "fmt.ply",
            b"ply\nformat binary_middle_endian 1.0\nend_header\n",
        ),
        0,
        10,
    ));
    assert!(e.contains("binary_middle_endian"), "{e}");
    let e = err_of(read_file(
        &w(
            "type.ply",
            b"ply\nformat ascii 1.0\nelement vertex 1\nproperty quad x\nend_header\n",
        ),
        0,
        10,
    ));
    assert!(e.contains("quad"), "{e}");
    // the ASCII row that is not a number, and one that is short
    let e = err_of(read_file(&w("a.ply", b"ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty float y\nproperty float z\nend_header\n1 2 3\n4 five 6\n"), 0, 10));
    assert!(e.contains("row 1") && e.contains("five"), "{e}");
    // a list count that runs past the file
    let mut b = b"ply\nformat binary_little_endian 1.0\nelement vertex 1\nproperty float x\nproperty float y\nproperty float z\nelement face 1\nproperty list uchar int vertex_indices\nend_header\n".to_vec();
    b.extend([0u8; 12]);
    b.push(200);
    let e = err_of(read_file(&w("list.ply", &b), 0, 10));
    assert!(e.contains("face"), "{e}");
    // NaN position, degenerate rotation, partial 3DGS properties
    let mut g = shape("sphere", 4, false, &mut Rng::new(1));
    g.pos[2][1] = f32::NAN;
    let p = d.join("nan.ply");
    ply::write(&p, &g, Encoding::BinaryLe).unwrap();
    let e = err_of(read_file(&p, 0, 10));
    assert!(
        e.contains("nan.ply") && e.contains("Gaussian 2") && e.contains("position"),
        "{e}"
    );
    let mut g = shape("sphere", 4, false, &mut Rng::new(1));
    g.rot[1] = [0.0; 4];
    let p = d.join("rot.ply");
    ply::write(&p, &g, Encoding::BinaryLe).unwrap();
    let e = err_of(read_file(&p, 0, 10));
    assert!(e.contains("Gaussian 1") && e.contains("rot_0..3"), "{e}");
    let e = err_of(read_file(&w("part.ply", b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\nproperty float z\nproperty float opacity\nend_header\n0 0 0 1\n"), 0, 10));
    assert!(e.contains("scale_0"), "{e}");
    // .splat: a zero scale, a size that is not whole Gaussians
    let g = shape("cube", 3, false, &mut Rng::new(2));
    let p = d.join("z.splat");
    write_splat(&p, &g).unwrap();
    let mut b = std::fs::read(&p).unwrap();
    b[32 + 12..32 + 16].copy_from_slice(&0f32.to_le_bytes());
    let e = err_of(read_file(&w("zero.splat", &b), 0, 10));
    assert!(e.contains("Gaussian 1") && e.contains("scale"), "{e}");
    let e = err_of(read_file(&w("cut.splat", &b[..40]), 0, 10));
    assert!(e.contains("32-byte"), "{e}");
    // .spz: truncated stream, a count beyond the limit
    let p = d.join("a.spz");
    write_spz(&p, &shape("cube", 50, false, &mut Rng::new(2))).unwrap();
    let b = std::fs::read(&p).unwrap();
    let e = err_of(read_file(&w("cut.spz", &b[..b.len() / 2]), 0, 100));
    assert!(e.contains("cut.spz"), "{e}");
    let e = err_of(read_file(&p, 0, 10));
    assert!(e.contains("max_gaussians"), "{e}");
    // .npy declaring more than it holds
    let e = err_of(read_file(&w("short.npy", b"\x93NUMPY\x01\x00\x49\x00{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 3), }        \n"), 0, 1 << 20));
    assert!(e.contains("short.npy") && e.contains("100000"), "{e}");
    let e = err_of(read_file(&w("what.bin", b"hello"), 0, 10));
    assert!(e.contains("unknown format"), "{e}");
}

fn bin_ply(n: usize, extra_rows: usize) -> Vec<u8> {
    let mut b = format!("ply\nformat binary_big_endian 1.0\nelement vertex {n}\nproperty float x\nproperty float y\nproperty float z\nend_header\n").into_bytes();
    for i in 0..(n - extra_rows) * 3 {
        b.extend((i as f32).to_be_bytes());
    }
    b
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any truncation or byte flip of a valid file is an error naming the file, or a
    /// valid read; never a panic.
    #[test]
    fn corrupted_files_never_panic(cut in 0usize..400, flip in 0usize..400, byte in any::<u8>(), fmt in 0usize..5) {
        let d = std::env::temp_dir().join(format!("tessera-splat-prop-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let g = shape("torus", 8, true, &mut Rng::new(fmt as u64));
        let name = ["a.ply", "b.ply", "c.splat", "d.spz", "e.npy"][fmt];
        let p = d.join(name);
        match fmt {
            0 => ply::write(&p, &g, Encoding::BinaryLe).unwrap(),
            1 => ply::write(&p, &g, Encoding::Ascii).unwrap(),
            2 => write_splat(&p, &g).unwrap(),
            3 => write_spz(&p, &g).unwrap(),
            _ => write_npy(&p, &g.pos).unwrap(),
        }
        let mut b = std::fs::read(&p).unwrap();
        let f = flip % b.len();
        b[f] ^= byte;
        b.truncate(b.len() - cut.min(b.len()));
        std::fs::write(&p, &b).unwrap();
        if let Err(e) = read_file(&p, 3, 1 << 16) {
            prop_assert!(e.to_string().contains(name), "{}", e);
        }
    }

    #[test]
    fn big_endian_rows_read_exactly(n in 1usize..50) {
        let d = std::env::temp_dir().join(format!("tessera-splat-be-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("be.ply");
        std::fs::write(&p, bin_ply(n, 0)).unwrap();
        let g = read_file(&p, 0, 1 << 16).unwrap().1;
        prop_assert_eq!(g.len(), n);
        prop_assert_eq!(g.pos[n - 1], [(3 * n - 3) as f32, (3 * n - 2) as f32, (3 * n - 1) as f32]);
        std::fs::write(&p, bin_ply(n, 1)).unwrap();
        prop_assert!(read_file(&p, 0, 1 << 16).is_err());
    }
}

#[test]
fn views_group_the_whole_shape_deterministically() {
    let d = tmp("views");
    let g = shape("torus", 2000, false, &mut Rng::new(9));
    let p = d.join("t.ply");
    ply::write(&p, &g, Encoding::BinaryLe).unwrap();
    let cfg = SplatConfig {
        points: 512,
        groups: 32,
        group_size: 16,
        ..SplatConfig::default()
    };
    let fe = SplatFrontend::new(&cfg).unwrap();
    let s = Modality::decode(&fe, &p).unwrap();
    // unit sphere: the farthest Gaussian at distance 1
    let r =
        s.g.pos
            .iter()
            .map(|p| (p[0] * p[0] + p[1] * p[1] + p[2] * p[2]).sqrt())
            .fold(0.0, f32::max);
    assert!((r - 1.0).abs() < 1e-5);
    let a = fe.eval_view(&s).unwrap();
    let b = fe.eval_view(&s).unwrap();
    assert_eq!(a.values, b.values);
    assert_eq!((a.n, a.p, a.k), (32, 16 * 14, 3));
    // each group's first member is its centre (offset 0), offsets stay local
    for t in 0..a.n {
        let row = &a.values[t * a.p..(t + 1) * a.p];
        assert_eq!(&row[..3], &[0.0, 0.0, 0.0]);
        for m in 0..16 {
            let o = &row[m * 14..m * 14 + 3];
            assert!(o.iter().map(|v| v * v).sum::<f32>().sqrt() < 0.5);
        }
        // opacity and quaternion features are activated values
        assert!((0.0..=1.0).contains(&row[10]));
    }
    let mut r1 = Rng::new(1);
    let mut r2 = Rng::new(1);
    let t1 = fe.train_view(&s, &mut r1).unwrap();
    assert_eq!(t1.values, fe.train_view(&s, &mut r2).unwrap().values);
    assert_ne!(t1.values, a.values);
    // statistics: standardised features have mean ≈ 0, sd ≈ 1 on the data they came from
    let mut st = fe.stats_start().unwrap();
    fe.stats_add(&mut st, &s);
    let fitted = SplatFrontend::new(&fe.stats_finish(st)).unwrap();
    let e = fitted.eval_view(&s).unwrap();
    let m = e.values.iter().step_by(14).sum::<f32>() / (e.values.len() / 14) as f32;
    assert!(m.abs() < 1e-3, "{m}");
    assert!(sigmoid(0.0) == 0.5);
}

/// The case proptest found: a byte flipped into invalid UTF-8 just before the dtype of an
/// `.npy` header (`'descr': '\xfff4'`) made the dtype parser slice inside a character.
#[test]
fn npy_dtype_with_a_non_ascii_byte_is_an_error() {
    let d = std::env::temp_dir().join(format!("tessera-splat-npy-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    let p = d.join("bent.npy");
    let g = shape("torus", 8, true, &mut Rng::new(0));
    write_npy(&p, &g.pos).unwrap();
    let mut b = std::fs::read(&p).unwrap();
    let at = b.windows(3).position(|w| w == b"<f4").expect("dtype");
    b[at] = 0xff;
    std::fs::write(&p, &b).unwrap();
    let e = read_file(&p, 3, 1 << 16).unwrap_err().to_string();
    assert!(e.contains("bent.npy"), "{e}");
}
