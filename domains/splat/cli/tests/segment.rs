//! `segment` in-process on a generated labelled scene (a sphere, a cube and a torus of one
//! colour, with unlabelled clutter): labels from a PLY property or a CSV in any row order,
//! spatial cross-validation that predicts every labelled Gaussian once, the attribute
//! baseline above chance and a random-init encoder (which sees each group's local shape)
//! well above it, and one-line errors naming the file for labels that do not fit the scene.

use clap::Parser;
use std::path::{Path, PathBuf};
use tessera_splat::ply::{self, Encoding};
use tessera_splat::synth::labelled_scene;
use tessera_splat_cli::segment::{run, spatial_folds, SegmentArgs};
use tessera_tokens::Rng;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: SegmentArgs,
}

fn segment(args: &[&str]) -> anyhow::Result<()> {
    let cli = Cli::try_parse_from(std::iter::once("segment").chain(args.iter().copied()))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    run(&tessera_splat_cli::app(), &cli.args)
}

fn miou(out: &Path, run: &str) -> f64 {
    let rows = tessera_eval::read_rows_jsonl(&out.join("rows.jsonl")).unwrap();
    rows.iter().rev().find(|r| r.run == run).unwrap().extra["miou"]
}

fn scene(d: &Path) -> (PathBuf, PathBuf, Vec<u32>) {
    let (g, labels) = labelled_scene(300, &mut Rng::new(3));
    let ply_path = d.join("scene.ply");
    ply::write(&ply_path, &g, Encoding::BinaryLe).unwrap();
    // The CSV lists the Gaussians backwards, with an index column.
    let mut csv = String::from("vertex_index,category_id\n");
    for i in (0..labels.len()).rev() {
        csv += &format!("{i},{}\n", labels[i]);
    }
    let csv_path = d.join("labels.csv");
    std::fs::write(&csv_path, csv).unwrap();
    (ply_path, csv_path, labels)
}

#[test]
fn segments_a_labelled_scene() {
    let d = std::env::temp_dir().join(format!("tessera-splat-segment-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    let (ply_path, csv_path, labels) = scene(&d);
    let out = d.join("out");
    let (p, c, o) = (
        ply_path.to_str().unwrap(),
        csv_path.to_str().unwrap(),
        out.to_str().unwrap(),
    );
    segment(&[
        "--baseline",
        "attributes",
        "--data",
        p,
        "--label-property",
        "label",
        "--ignore",
        "0",
        "--out",
        o,
        "--threads",
        "1",
    ])
    .unwrap();
    let base = miou(&out, "attributes");
    assert!(base > 0.34, "attribute baseline mIoU {base}");
    segment(&[
        "--random-init",
        "--preset",
        "splat-nano-demo",
        "--data",
        p,
        "--labels",
        c,
        "--ignore",
        "0",
        "--passes",
        "3",
        "--out",
        o,
        "--threads",
        "1",
        "--seed",
        "1",
    ])
    .unwrap();
    let random = miou(&out, "random-init");
    assert!(random > 0.5, "random-init mIoU {random} (chance ≈ 0.2)");

    // Every labelled Gaussian predicted once out of its fold; every Gaussian segmented.
    let text = std::fs::read_to_string(out.join("segments-random-init.csv")).unwrap();
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(rows.len(), labels.len());
    for (r, &l) in rows.iter().zip(&labels) {
        let want = if l == 0 { String::new() } else { l.to_string() };
        assert_eq!(r[2], want);
        assert_eq!(r[4].is_empty(), l == 0, "{r:?}");
        assert!(["1", "2", "3"].contains(&r[5]), "{r:?}");
    }
    let folds: Vec<usize> = rows.iter().map(|r| r[3].parse().unwrap()).collect();
    assert!((0..4).all(|k| folds.contains(&k)));

    // Labels that do not fit the scene: one line naming the file.
    let baseline_error = |labels: &[&str]| -> String {
        let mut args = vec!["--baseline", "attributes", "--data", p, "--out", o];
        args.extend_from_slice(labels);
        format!("{:#}", segment(&args).unwrap_err())
    };
    let short = d.join("short.csv");
    std::fs::write(&short, "label\n1\n2\n").unwrap();
    let msg = baseline_error(&["--labels", short.to_str().unwrap()]);
    assert!(
        msg.contains("short.csv") && msg.contains("2 labelled rows"),
        "{msg}"
    );
    let far = d.join("far.csv");
    std::fs::write(&far, "index,label\n999999,1\n").unwrap();
    let msg = baseline_error(&["--labels", far.to_str().unwrap()]);
    assert!(msg.contains("far.csv") && msg.contains("999999"), "{msg}");
    let msg = baseline_error(&["--label-property", "class"]);
    assert!(
        msg.contains("scene.ply") && msg.contains("`class`") && msg.contains("label"),
        "{msg}"
    );
    let msg = baseline_error(&[]);
    assert!(msg.contains("--labels"), "{msg}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn spatial_folds_are_diagonal_blocks_of_the_two_longest_axes() {
    // A 4 × 2 × 1 box: the folds follow x and y, never z.
    let mut pos = Vec::new();
    for i in 0..40 {
        for j in 0..20 {
            pos.push([i as f32 * 0.1, j as f32 * 0.1, (i + j) as f32 * 0.001]);
        }
    }
    let f = spatial_folds(&pos, 4);
    assert_eq!(f[0], 0);
    // x block 1, y block 0 → fold 1; x block 1, y block 1 → fold 2.
    assert_eq!(f[10 * 20], 1);
    assert_eq!(f[10 * 20 + 5], 2);
    let counts: Vec<usize> = (0..4)
        .map(|k| f.iter().filter(|&&v| v == k).count())
        .collect();
    assert!(counts.iter().all(|&c| c == 200), "{counts:?}");
}
