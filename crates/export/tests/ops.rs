//! One golden test per operator pattern the exporter emits: the single-pattern graph is
//! built with `GraphBuilder`, run in ONNX Runtime, and compared with the float64 NumPy
//! reference written by `scripts/golden_onnx.py`.

mod common;

use common::{max_abs_diff, ort_ready, temp_dir};
use serde_json::Value;
use tessera_export::proto::{DataType, Dim, ModelProto};
use tessera_export::{AxisCoords, GraphBuilder, GridAxis, GridBuild, GridFront};
use tessera_runtime::{Options, RawSession};

fn golden() -> Value {
    let text = include_str!("golden/ops.json");
    serde_json::from_str(text).unwrap()
}

fn tensor(v: &Value) -> (Vec<usize>, Vec<f32>) {
    let shape = v["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    let data = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_f64().unwrap() as f32)
        .collect();
    (shape, data)
}

fn fixed(shape: &[usize]) -> Vec<Dim> {
    shape.iter().map(|&d| Dim::Fixed(d)).collect()
}

/// Runs a graph whose inputs are `(name, tensor)` and returns its outputs.
fn run(
    tag: &str,
    g: GraphBuilder,
    inputs: &[(&str, &tessera_tokens::GridInput)],
) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let bytes = ModelProto {
        producer_version: "test".into(),
        doc: String::new(),
        graph: g.graph,
        metadata: vec![],
    }
    .to_bytes();
    let path = temp_dir(tag).join("op.onnx");
    std::fs::write(&path, bytes).unwrap();
    let mut s = RawSession::open(
        &path,
        &Options {
            threads: 1,
            ..Default::default()
        },
    )
    .unwrap();
    let args: Vec<(&str, &[usize], &[f32])> = inputs
        .iter()
        .map(|(n, t)| (*n, t.0.as_slice(), t.1.as_slice()))
        .collect();
    s.run(&args).unwrap()
}

fn single(
    tag: &str,
    case: &Value,
    input: &str,
    build: impl FnOnce(&mut GraphBuilder, &str) -> String,
) {
    if !ort_ready() {
        return;
    }
    let x = tensor(&case[input]);
    let y = tensor(&case["y"]);
    let mut g = GraphBuilder::new(tag);
    let xi = g.input(input, DataType::Float, fixed(&x.0), "");
    let out = build(&mut g, &xi);
    g.output(&out, "y", fixed(&y.0), "");
    let got = run(tag, g, &[(input, &x)]);
    assert_eq!(got[0].1, y.0, "{tag}: output shape");
    let err = max_abs_diff(&got[0].2, &y.1);
    assert!(err < 2e-5, "{tag}: max abs error {err}");
}

#[test]
fn linear_matches_numpy() {
    let c = &golden()["linear"];
    let (w, b) = (tensor(&c["w"]), tensor(&c["b"]));
    single("linear", c, "x", |g, x| {
        g.linear(x, "fc", &w.1, w.0[1], w.0[0], Some(&b.1))
    });
}

#[test]
fn layer_norm_matches_numpy() {
    let c = &golden()["layer_norm"];
    let (w, b) = (tensor(&c["w"]), tensor(&c["b"]));
    let eps = c["eps"].as_f64().unwrap() as f32;
    single("layer_norm", c, "x", |g, x| {
        g.layer_norm(x, "ln", &w.1, &b.1, eps)
    });
}

#[test]
fn gelu_matches_numpy() {
    let c = &golden()["gelu"];
    single("gelu", c, "x", |g, x| g.gelu(x));
}

#[test]
fn fourier_matches_numpy() {
    let c = &golden()["fourier"];
    let w = tensor(&c["w"]);
    let dim = c["dim"].as_u64().unwrap() as usize;
    single("fourier", c, "coords", |g, x| {
        g.fourier(x, &w.1, w.0[0], w.0[1], dim)
    });
}

fn two_input(
    tag: &str,
    c: &Value,
    a: &str,
    b: &str,
    build: impl FnOnce(&mut GraphBuilder, &str, &str) -> String,
) {
    if !ort_ready() {
        return;
    }
    let (ta, tb, y) = (tensor(&c[a]), tensor(&c[b]), tensor(&c["y"]));
    let mut g = GraphBuilder::new(tag);
    let ia = g.input(a, DataType::Float, fixed(&ta.0), "");
    let ib = g.input(b, DataType::Float, fixed(&tb.0), "");
    let out = build(&mut g, &ia, &ib);
    g.output(&out, "y", fixed(&y.0), "");
    let got = run(tag, g, &[(a, &ta), (b, &tb)]);
    assert_eq!(got[0].1, y.0, "{tag}: output shape");
    let err = max_abs_diff(&got[0].2, &y.1);
    assert!(err < 2e-5, "{tag}: max abs error {err}");
}

#[test]
fn attention_with_padding_matches_numpy() {
    let c = &golden()["attention"];
    let (dim, heads) = (
        c["dim"].as_u64().unwrap() as usize,
        c["heads"].as_u64().unwrap() as usize,
    );
    two_input("attention", c, "qkv", "padding", |g, qkv, pad| {
        let big = g.scalar(-1e9);
        let bias = g.mul(pad, &big);
        let axes = g.const_i64(&[2], &[1, 2]);
        let bias = g.op("Unsqueeze", &[&bias, &axes], vec![]);
        g.attention(qkv, &bias, dim, heads)
    });
}

#[test]
fn masked_mean_matches_numpy() {
    let c = &golden()["masked_mean"];
    two_input("masked_mean", c, "x", "padding", |g, x, pad| {
        g.masked_mean(x, pad)
    });
}

#[test]
fn grid_front_matches_numpy() {
    if !ort_ready() {
        return;
    }
    let c = &golden()["grid_front"];
    let grid = tensor(&c["grid"]);
    let p: Vec<usize> = c["patch"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let f = |k: &str| c[k].as_f64().unwrap() as f32;
    let front = GridFront {
        channels: c["channels"].as_u64().unwrap() as usize,
        axes: vec![
            GridAxis {
                coord_index: 0,
                name: "rows".into(),
                patch: p[0],
                coords: AxisCoords::Table {
                    values: c["table"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_f64().unwrap() as f32)
                        .collect(),
                },
            },
            GridAxis {
                coord_index: 1,
                name: "cols".into(),
                patch: p[1],
                coords: AxisCoords::Affine {
                    offset: f("offset"),
                    step: f("step"),
                },
            },
        ],
        norm: Some((f("mean"), f("std"))),
    };
    let mut g = GraphBuilder::new("grid_front");
    let dims = vec![
        Dim::Named("b".into()),
        Dim::Fixed(grid.0[1]),
        Dim::Named("s1".into()),
        Dim::Named("s2".into()),
    ];
    let gi = g.input("grid", DataType::Float, dims, "");
    let (values, coords, padding) = front.build(&mut g, &gi);
    let any = |n: &str| {
        vec![
            Dim::Named(format!("{n}0")),
            Dim::Named(format!("{n}1")),
            Dim::Named(format!("{n}2")),
        ]
    };
    g.output(&values, "values", any("v"), "");
    g.output(&coords, "coords", any("c"), "");
    g.output(&padding, "padding", any("p")[..2].to_vec(), "");
    let got = run("grid_front", g, &[("grid", &grid)]);
    for (i, key) in ["values", "coords"].iter().enumerate() {
        let want = tensor(&c[*key]);
        assert_eq!(got[i].1, want.0, "{key} shape");
        let err = max_abs_diff(&got[i].2, &want.1);
        assert!(err < 1e-5, "{key}: max abs error {err}");
    }
    assert!(got[2].2.iter().all(|&v| v == 0.0));
    assert_eq!(got[2].1, got[0].1[..2].to_vec());
}
