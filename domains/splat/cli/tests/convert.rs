//! `convert` between every writable format, in-process: Gaussians survive PLY exactly and the
//! compact formats within their quantisation; a point target keeps the positions; unknown
//! targets and unreadable inputs are one-line errors naming the file.

use tessera_splat::frontend::read_file;
use tessera_splat::ply::{self, Encoding};
use tessera_splat::synth::shape;
use tessera_splat_cli::convert::{run, ConvertArgs};
use tessera_tokens::Rng;

#[test]
fn converts_between_formats() {
    let d = std::env::temp_dir().join(format!("tessera-splat-convert-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    let src = d.join("src.ply");
    let g = shape("torus", 200, true, &mut Rng::new(1));
    ply::write(&src, &g, Encoding::BinaryBe).unwrap();
    let args = |data: &std::path::Path, out: &str, ascii| ConvertArgs {
        data: data.to_path_buf(),
        out: d.join(out),
        ascii,
        max_gaussians: 1 << 20,
    };
    for (out, ascii) in [
        ("a.ply", true),
        ("b.ply", false),
        ("c.splat", false),
        ("d.spz", false),
        ("e.npy", false),
        ("f.xyz", false),
    ] {
        run(&args(&src, out, ascii)).unwrap();
        let (_, back) = read_file(&d.join(out), 3, 1 << 20).unwrap();
        assert_eq!(back.len(), 200, "{out}");
        let tol = if out.ends_with(".spz") {
            1.0 / 4096.0
        } else if out.ends_with(".xyz") {
            1e-5
        } else {
            0.0
        };
        for (a, b) in back.pos.iter().zip(&g.pos) {
            for k in 0..3 {
                assert!(
                    (a[k] - b[k]).abs() <= tol * (1.0 + b[k].abs()),
                    "{out}: {a:?} vs {b:?}"
                );
            }
        }
        if out.ends_with(".ply") {
            assert_eq!(back.sh_rest, g.sh_rest);
            assert_eq!(back.log_scale, g.log_scale);
        }
        assert!(!d.join(format!(".{out}.tmp")).exists());
    }
    // .spz back to PLY keeps its SH band
    run(&args(&d.join("d.spz"), "g.ply", false)).unwrap();
    assert_eq!(
        read_file(&d.join("g.ply"), 3, 1 << 20).unwrap().1.sh_degree,
        1
    );
    let e = run(&args(&src, "x.obj", false)).unwrap_err().to_string();
    assert!(e.contains("x.obj") && e.contains("obj"), "{e}");
    std::fs::write(d.join("bad.ply"), "ply\nformat ascii 1.0\n").unwrap();
    let e = format!(
        "{:#}",
        run(&args(&d.join("bad.ply"), "y.ply", false)).unwrap_err()
    );
    assert!(e.contains("bad.ply"), "{e}");
    assert!(!d.join("y.ply").exists());
}
