//! `boxes` end to end on generated pages: box-pooled and per-patch probes, the geometry
//! baseline and fine-tuning, each writing its results row and predictions.

use clap::Parser;
use std::path::PathBuf;
use tessera_doc::DocFrontend;
use tessera_doc_cli::boxes::{run, BoxesArgs};
use tessera_tokens::Modality;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: BoxesArgs,
}

fn parse(args: &[&str]) -> BoxesArgs {
    Cli::parse_from(std::iter::once("boxes").chain(args.iter().copied())).args
}

#[test]
fn boxes_probes_baseline_and_finetune_run_and_score() {
    let dir = std::env::temp_dir().join(format!("tessera-doc-boxes-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let manifest = DocFrontend::write_demo_data(&dir.join("data"), 5).unwrap();
    // Every page: a `head` box over its top fifth and a `body` box below it (pixels of the
    // page image: the demo pages are 60 × 80 mm at their own dpi).
    let mut rows = vec!["path,x0,y0,x1,y1,label,split".to_string()];
    for line in std::fs::read_to_string(&manifest).unwrap().lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let fe = DocFrontend::new(&Default::default()).unwrap();
        let s = fe.decode(&dir.join("data").join(f[0])).unwrap();
        let (w, h) = (s.source_px.0 as f64, s.source_px.1 as f64);
        rows.push(format!("{},0,0,{w},{},head,{}", f[0], h * 0.2, f[2]));
        rows.push(format!("{},0,{},{w},{h},body,{}", f[0], h * 0.2, f[2]));
    }
    let boxes = dir.join("data/boxes.csv");
    std::fs::write(&boxes, rows.join("\n") + "\n").unwrap();
    let out = dir.join("out");
    let b = boxes.to_str().unwrap();
    let o = out.to_str().unwrap();
    let app = tessera_doc_cli::app();
    for extra in [
        vec!["--random-init", "--name", "rnd"],
        vec!["--random-init", "--name", "rnd", "--task", "patches"],
        vec!["--baseline", "geometry"],
        vec![
            "--random-init",
            "--name",
            "ft",
            "--finetune",
            "--steps",
            "3",
            "--batch-size",
            "4",
        ],
    ] {
        let mut args = vec![
            "--preset",
            "doc-nano-demo",
            "--boxes",
            b,
            "--out",
            o,
            "--threads",
            "2",
        ];
        args.extend(extra.iter().copied());
        run(&app, &parse(&args)).unwrap_or_else(|e| panic!("{args:?}: {e:#}"));
    }
    let table = std::fs::read_to_string(out.join("results.md")).unwrap();
    for needle in [
        "| rnd | boxes | linear",
        "| rnd | patches | linear",
        "| geometry | boxes",
        "| ft | boxes | finetune",
    ] {
        assert!(table.contains(needle), "{needle} missing from\n{table}");
    }
    let preds: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("predictions-")
        })
        .collect();
    assert_eq!(preds.len(), 4, "{preds:?}");
    // Box rows: one prediction per test box (4 test pages × 2 boxes).
    let p = std::fs::read_to_string(out.join("predictions-geometry-boxes.csv")).unwrap();
    assert_eq!(p.lines().count(), 1 + 8);
    // A bad manifest names itself and the problem.
    std::fs::write(
        dir.join("bad.csv"),
        "path,x0,y0,x1,y1,label,split\np.png,a,0,1,1,x,train\n",
    )
    .unwrap();
    let bad = dir.join("bad.csv");
    let e = run(
        &app,
        &parse(&[
            "--baseline",
            "geometry",
            "--boxes",
            bad.to_str().unwrap(),
            "--out",
            o,
        ]),
    )
    .unwrap_err();
    assert!(
        format!("{e:#}").contains("bad.csv") && format!("{e:#}").contains("row 2"),
        "{e:#}"
    );
}
