//! PNG plots: files exist, decode, have the expected size, are not blank, and put colour
//! where the data says (geometry checked without text, whose layout depends on the font).
#![cfg(feature = "plots")]

use std::path::{Path, PathBuf};

use image::RgbImage;
use tessera_eval::{
    plot_comparison, plot_comparison_rows, plot_confusion, plot_run, plot_run_with,
    read_metrics_jsonl, summarise, EvalError, PlotFont, PlotOptions, ResultRow,
};

const DEJAVU: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tessera-eval-plots-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Removes a test folder, unless `TESSERA_KEEP_PLOTS` is set (to look at the PNGs).
fn cleanup(d: &Path) {
    if std::env::var_os("TESSERA_KEEP_PLOTS").is_some() {
        eprintln!("plots kept in {}", d.display());
    } else {
        std::fs::remove_dir_all(d).unwrap();
    }
}

fn load(path: &Path) -> RgbImage {
    assert!(path.is_file(), "{} missing", path.display());
    image::open(path).unwrap().to_rgb8()
}

/// Fraction of non-white pixels and number of distinct colours.
fn ink(img: &RgbImage) -> (f64, usize) {
    let mut colours: Vec<[u8; 3]> = img.pixels().map(|p| p.0).collect();
    let non_white = colours.iter().filter(|c| **c != [255, 255, 255]).count();
    colours.sort_unstable();
    colours.dedup();
    (
        non_white as f64 / (img.width() * img.height()) as f64,
        colours.len(),
    )
}

fn no_text() -> PlotOptions {
    PlotOptions {
        font: PlotFont::None,
        ..PlotOptions::default()
    }
}

/// A `metrics.jsonl` as the trainer writes it: NaN loss as null, recipe scalars nested,
/// and a last line still being written.
fn write_metrics(d: &Path) -> PathBuf {
    let mut s = String::new();
    for step in 1..=40u64 {
        let loss = if step == 17 {
            "null".to_string()
        } else {
            format!("{}", 2.0 * (-(step as f64) / 15.0).exp() + 0.1)
        };
        let lr = 1e-3 * (step.min(10) as f64 / 10.0);
        s.push_str(&format!(
            "{{\"step\":{step},\"loss\":{loss},\"lr\":{lr},\"grad_norm\":{},\"samples_per_s\":12.5,\"elapsed_s\":{},\"recipe\":{{\"alpha_accuracy\":{}}}}}\n",
            1.0 / step as f64,
            step as f64 * 0.3,
            step as f64 / 40.0
        ));
    }
    s.push_str("{\"step\":41,\"lo");
    let p = d.join("metrics.jsonl");
    std::fs::write(&p, s).unwrap();
    p
}

#[test]
fn run_plot_reads_every_numeric_column() {
    let d = dir("run");
    let m = write_metrics(&d);
    let metrics = read_metrics_jsonl(&m).unwrap();
    assert_eq!(metrics.records, 40);
    let names: Vec<&str> = metrics.series.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "loss",
            "lr",
            "elapsed_s",
            "grad_norm",
            "recipe.alpha_accuracy",
            "samples_per_s"
        ]
    );
    assert_eq!(metrics.series[0].1.len(), 39, "the null loss is skipped");
    assert_eq!(metrics.series[1].1[3], (4.0, 4e-4));

    let out = d.join("run.png");
    let r = plot_run(&m, &out).unwrap();
    let img = load(&out);
    assert_eq!((img.width(), img.height()), (1200, 900));
    assert_eq!((r.width, r.height), (1200, 900));
    let (frac, colours) = ink(&img);
    assert!(frac > 0.01 && colours >= 4, "{frac} {colours}");

    // Without text, and at another size: still drawn, and the loss curve (first panel,
    // first palette colour) is there.
    let out2 = d.join("run-notext.png");
    let r2 = plot_run_with(
        &m,
        &out2,
        &PlotOptions {
            size: Some((640, 480)),
            ..no_text()
        },
    )
    .unwrap();
    assert_eq!(r2.font, None);
    let img2 = load(&out2);
    assert_eq!((img2.width(), img2.height()), (640, 480));
    let blue = img2.pixels().filter(|p| p.0 == [31, 119, 180]).count();
    assert!(blue > 100, "{blue} pixels of the loss colour");

    if Path::new(DEJAVU).is_file() {
        // Text changes the picture when a font is there.
        let out3 = d.join("run-text.png");
        let r3 = plot_run_with(
            &m,
            &out3,
            &PlotOptions {
                size: Some((640, 480)),
                font: PlotFont::File(DEJAVU.into()),
                ..PlotOptions::default()
            },
        )
        .unwrap();
        assert_eq!(r3.font.as_deref(), Some(Path::new(DEJAVU)));
        let (with_text, _) = ink(&load(&out3));
        let (without, _) = ink(&img2);
        assert!(with_text > without + 0.005, "{with_text} vs {without}");
    }
    cleanup(&d);
}

#[test]
fn run_plot_errors() {
    let d = dir("run-errors");
    let bad = d.join("bad.jsonl");
    std::fs::write(&bad, "{\"step\":1,\"loss\":2}\nnot json\n{\"step\":3}\n").unwrap();
    assert!(matches!(
        plot_run(&bad, &d.join("x.png")),
        Err(EvalError::Parse { line: 2, .. })
    ));
    std::fs::write(&bad, "{\"loss\":2}\n").unwrap();
    assert!(matches!(
        read_metrics_jsonl(&bad),
        Err(EvalError::Parse { line: 1, .. })
    ));
    std::fs::write(&bad, "\n\n").unwrap();
    assert!(matches!(
        read_metrics_jsonl(&bad),
        Err(EvalError::EmptySplit { .. })
    ));
    assert!(matches!(
        plot_run(&d.join("missing.jsonl"), &d.join("x.png")),
        Err(EvalError::Io { .. })
    ));
    let m = write_metrics(&d);
    assert!(matches!(
        plot_run(&m, &d.join("no-such-dir/x.png")),
        Err(EvalError::Io { .. })
    ));
    assert!(!d.join("x.png").exists());
    cleanup(&d);
}

#[test]
fn confusion_heat_map() {
    let d = dir("confusion");
    let names: Vec<String> = [
        "dog",
        "cat",
        "a rather long class name indeed",
        "bird",
        "frog",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let cm: Vec<Vec<u64>> = (0..5)
        .map(|t| {
            (0..5)
                .map(|p| if t == p { 40 } else { (t + p) as u64 % 3 })
                .collect()
        })
        .collect();
    let out = d.join("cm.png");
    let r = plot_confusion(&cm, Some(&names), &out, &PlotOptions::default()).unwrap();
    let img = load(&out);
    assert_eq!((img.width(), img.height()), (900, 900));
    assert_eq!((r.width, r.height), (900, 900));
    let (frac, colours) = ink(&img);
    assert!(frac > 0.3 && colours >= 5, "{frac} {colours}");

    // Without text the layout is fixed: 12 px margins, 40 px for the colour scale, so
    // cells are (900 - 52) / 5 = 169 px from (12, 12). Diagonal cells are dark, the
    // others light.
    let out2 = d.join("cm-notext.png");
    plot_confusion(&cm, None, &out2, &no_text()).unwrap();
    let img2 = load(&out2);
    let at = |t: u32, p: u32| img2.get_pixel(12 + p * 169 + 84, 12 + t * 169 + 84).0;
    for t in 0..5 {
        for p in 0..5 {
            let [r, g, b] = at(t, p);
            if t == p {
                assert!(r < 60 && b > 100, "cell ({t}, {p}) = {:?}", [r, g, b]);
            } else {
                assert!(r > 200, "cell ({t}, {p}) = {:?}", [r, g, b]);
            }
        }
    }
    assert!(plot_confusion(&cm, Some(&names[..2]), &out2, &no_text()).is_err());
    assert!(plot_confusion(&[vec![1, 2]], None, &out2, &no_text()).is_err());
    assert!(plot_confusion(&[], None, &out2, &no_text()).is_err());
    cleanup(&d);
}

fn rows() -> Vec<ResultRow> {
    let mut rows = Vec::new();
    for (run, base) in [("mae-a", 0.80), ("mae-b", 0.65), ("random", 0.30)] {
        for seed in 0..3u64 {
            for (protocol, shift) in [("linear", 0.0), ("knn", -0.1)] {
                let acc = base + shift + 0.02 * seed as f64;
                let mut row = ResultRow {
                    run: run.into(),
                    task: "esc50".into(),
                    protocol: protocol.into(),
                    features: "cls".into(),
                    seed,
                    accuracy: acc,
                    macro_f1: acc - 0.05,
                    n_test: 400,
                    balanced_accuracy: acc - 0.02,
                    ..ResultRow::default()
                };
                row.extra.insert("r2".into(), acc - 0.9);
                rows.push(row);
            }
        }
    }
    rows
}

#[test]
fn comparison_over_seeds() {
    let d = dir("comparison");
    let r = rows();
    let out = d.join("cmp.png");
    let rep = plot_comparison_rows(&r, "accuracy", &out, &PlotOptions::default()).unwrap();
    let img = load(&out);
    assert_eq!((img.width(), img.height()), (1000, 600));
    assert_eq!((rep.width, rep.height), (1000, 600));
    let (frac, colours) = ink(&img);
    assert!(frac > 0.05 && colours >= 4, "{frac} {colours}");

    // Without text: six bars in a frame from x = 14 to 980, y = 12 to 586; bars are
    // coloured by run (mae-a blue, mae-b orange, random green), each from 0 to its mean.
    let out2 = d.join("cmp-notext.png");
    plot_comparison(&summarise(&r), "balanced_accuracy", &out2, &no_text()).unwrap();
    let img2 = load(&out2);
    let count = |c: [u8; 3]| img2.pixels().filter(|p| p.0 == c).count();
    let (blue, orange, green) = (
        count([31, 119, 180]),
        count([255, 127, 14]),
        count([44, 160, 44]),
    );
    assert!(
        blue > orange && orange > green && green > 1000,
        "{blue} {orange} {green}"
    );
    // Error bars (black) are drawn: three seeds per bar.
    assert!(count([0, 0, 0]) > 100);

    // An extra metric with negative values (R² of a bad probe) and one missing metric.
    let out3 = d.join("cmp-r2.png");
    plot_comparison_rows(&r, "r2", &out3, &PlotOptions::default()).unwrap();
    assert_eq!(load(&out3).dimensions(), (1000, 600));
    assert!(matches!(
        plot_comparison_rows(&r, "map_macro", &out3, &PlotOptions::default()),
        Err(EvalError::InvalidConfig { .. })
    ));
    cleanup(&d);
}
