//! The exported encoder against candle: outputs agree within 1e-4 (max absolute error) for
//! several batch sizes and token counts, including token counts never seen in training,
//! padded batches, registers, LayerScale and learned coordinates; the grid front agrees
//! with patchifying on the host; the file passes `onnx.checker` (full check).

mod common;

use candle_core::Device;
use common::{max_abs_diff, ort_ready, python, temp_dir};
use std::path::Path;
use tessera_core::{Encoder, EncoderConfig, ParamStore, TokenTensors};
use tessera_export::{export, AxisCoords, GridAxis, GridFront};
use tessera_tokens::card::Training;
use tessera_tokens::{CoordAxis, ModelCard, Rng, SampleTokens, TokenLayout, TokenSpec, Tokens};

const P: usize = 6; // 2 x 3 patches, one channel
const K: usize = 2;

fn encoder(registers: usize, learned_coords: bool) -> Encoder {
    let mut cfg = EncoderConfig::preset("nano", P, vec![20.0, 5.0]).unwrap();
    cfg.depth = 2;
    cfg.registers = registers;
    cfg.layer_scale = Some(0.7);
    cfg.learned_coords = learned_coords;
    let mut store = ParamStore::new(3, &Device::Cpu);
    Encoder::new(&cfg, &mut store, "encoder").unwrap()
}

fn card() -> ModelCard {
    let axis = |name: &str, unit: &str, scale: f32| CoordAxis {
        name: name.into(),
        unit: unit.into(),
        scale,
    };
    let tokens = TokenSpec {
        p: P,
        k: K,
        value_unit: "a.u.".into(),
        axes: vec![axis("rows", "mm", 20.0), axis("cols", "s", 5.0)],
        layout: TokenLayout::Patch2d {
            channels: 1,
            patch: [2, 3],
            stride: [2, 3],
        },
    };
    ModelCard::new(
        "parity",
        "test",
        tokens,
        Training::default(),
        toml::Table::new(),
    )
}

fn sample(n: usize, rng: &mut Rng) -> SampleTokens {
    let values = (0..n * P).map(|_| rng.normal() as f32).collect();
    let coords = (0..n * K)
        .map(|_| rng.uniform() as f32 * 30.0 - 5.0)
        .collect();
    SampleTokens::new(values, coords, n, P, K).unwrap()
}

fn candle_outputs(enc: &Encoder, t: &Tokens) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let tt = TokenTensors::from_tokens(t, &Device::Cpu).unwrap();
    let out = enc.forward(&tt).unwrap();
    let emb = enc.embed(&tt).unwrap();
    let v = |x: &candle_core::Tensor| x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    (v(&out.cls), v(&out.patches), v(&emb))
}

/// Patch rows of real tokens only (filler rows are meaningless in both).
fn real_rows(x: &[f32], t: &Tokens, d: usize) -> Vec<f32> {
    let mut out = Vec::new();
    for i in 0..t.b * t.n {
        if t.padding[i] == 0 {
            out.extend_from_slice(&x[i * d..(i + 1) * d]);
        }
    }
    out
}

fn check_parity(dir: &Path, enc: &Encoder) {
    let mut rt = tessera_runtime::Encoder::open(dir).unwrap();
    let mut rng = Rng::new(11);
    let d = enc.cfg.dim;
    // (lengths per sample): single, batch of equal lengths, ragged (padded), long.
    for lens in [
        vec![1],
        vec![7],
        vec![5, 5, 5],
        vec![9, 2, 13, 4],
        vec![300, 17],
    ] {
        let samples: Vec<SampleTokens> = lens.iter().map(|&n| sample(n, &mut rng)).collect();
        let t = Tokens::from_samples(&samples).unwrap();
        let (cls, patches, emb) = candle_outputs(enc, &t);
        let o = rt.run(&t).unwrap();
        let e_cls = max_abs_diff(&o.cls, &cls);
        let e_pat = max_abs_diff(&real_rows(&o.patches, &t, d), &real_rows(&patches, &t, d));
        let e_emb = max_abs_diff(&o.embedding, &emb);
        assert!(
            e_cls <= 1e-4 && e_pat <= 1e-4 && e_emb <= 1e-4,
            "lengths {lens:?}: max abs error cls {e_cls}, patches {e_pat}, embedding {e_emb}"
        );
    }
}

#[test]
fn token_graph_matches_candle() {
    if !ort_ready() {
        return;
    }
    for (registers, learned) in [(0, false), (2, true)] {
        let enc = encoder(registers, learned);
        let dir = temp_dir(&format!("parity-{registers}"));
        let report = export(&enc, &card(), None, &dir).unwrap();
        assert_eq!(report.files.len(), 2);
        assert_eq!(report.card.encoder.registers, registers);
        check_parity(&dir, &enc);
    }
}

#[test]
fn grid_graph_matches_host_patchify() {
    if !ort_ready() {
        return;
    }
    let enc = encoder(1, false);
    let table: Vec<f32> = (0..8).map(|i| 1.0 + 2.5 * i as f32).collect();
    let front = GridFront {
        channels: 1,
        axes: vec![
            GridAxis {
                coord_index: 0,
                name: "rows".into(),
                patch: 2,
                coords: AxisCoords::Table {
                    values: table.clone(),
                },
            },
            GridAxis {
                coord_index: 1,
                name: "cols".into(),
                patch: 3,
                coords: AxisCoords::Affine {
                    offset: 0.1,
                    step: 0.3,
                },
            },
        ],
        norm: Some((0.25, 1.5)),
    };
    let dir = temp_dir("grid");
    export(&enc, &card(), Some(&front), &dir).unwrap();
    let mut s =
        tessera_runtime::RawSession::open(&dir.join("model_grid.onnx"), &Default::default())
            .unwrap();
    let mut rng = Rng::new(5);
    for (b, h, w) in [(1usize, 16usize, 30usize), (3, 9, 47)] {
        let grid: Vec<f32> = (0..b * h * w).map(|_| rng.normal() as f32 * 2.0).collect();
        // Host tokens: normalise, crop to whole patches, row-major grid, values (row, col).
        let (n1, n2) = (h / 2, w / 3);
        let samples: Vec<SampleTokens> = (0..b)
            .map(|bi| {
                let mut values = Vec::new();
                let mut coords = Vec::new();
                for r in 0..n1 {
                    for c in 0..n2 {
                        for i in 0..2 {
                            for j in 0..3 {
                                let v = grid[bi * h * w + (r * 2 + i) * w + c * 3 + j];
                                values.push((v - 0.25) / 1.5);
                            }
                        }
                        coords.push(table[r]);
                        coords.push(0.1 + 0.3 * c as f32);
                    }
                }
                SampleTokens::new(values, coords, n1 * n2, P, K).unwrap()
            })
            .collect();
        let t = Tokens::from_samples(&samples).unwrap();
        let (cls, patches, emb) = candle_outputs(&enc, &t);
        let out = s.run(&[("grid", &[b, 1, h, w], &grid)]).unwrap();
        assert_eq!(out[1].1, vec![b, n1 * n2, enc.cfg.dim]);
        for (got, want, name) in [
            (&out[0].2, &cls, "cls"),
            (&out[1].2, &patches, "patches"),
            (&out[2].2, &emb, "embedding"),
        ] {
            let e = max_abs_diff(got, want);
            assert!(e <= 1e-4, "grid {b}x{h}x{w}: {name} max abs error {e}");
        }
    }
}

#[test]
fn export_passes_the_onnx_checker() {
    let Some(py) = python() else {
        if std::env::var("TESSERA_REQUIRE_ORT").as_deref() == Ok("1") {
            panic!(
                "TESSERA_REQUIRE_ORT=1 but no Python environment with onnx (run scripts/setup.sh)"
            );
        }
        eprintln!("skipping: no Python environment with onnx");
        return;
    };
    let enc = encoder(2, true);
    let front = GridFront {
        channels: 1,
        axes: vec![
            GridAxis {
                coord_index: 0,
                name: "rows".into(),
                patch: 2,
                coords: AxisCoords::Table {
                    values: vec![1.0; 8],
                },
            },
            GridAxis {
                coord_index: 1,
                name: "cols".into(),
                patch: 3,
                coords: AxisCoords::Affine {
                    offset: 0.0,
                    step: 1.0,
                },
            },
        ],
        norm: None,
    };
    let dir = temp_dir("checker");
    export(&enc, &card(), Some(&front), &dir).unwrap();
    for f in ["model.onnx", "model_grid.onnx"] {
        let out = std::process::Command::new(&py)
            .arg("-c")
            .arg("import onnx,sys; m=onnx.load(sys.argv[1]); onnx.checker.check_model(m, full_check=True); print(m.opset_import[0].version, {p.key for p in m.metadata_props})")
            .arg(dir.join(f))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{f}: onnx.checker failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.starts_with("17 ") && stdout.contains("tessera.card"),
            "{f}: {stdout}"
        );
    }
}
