//! `tessera-medical` as a user meets it, on generated phantoms (and the real MSD
//! hippocampus files when ../shared/data is present): pretraining with both recipes and a
//! bounded cache, segmentation with Dice/HD95, applying a trained head, export with the
//! grid graph matching candle, ONNX embeddings equal to candle's, and bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tessera_medical::MedicalFrontend;
use tessera_tokens::Modality;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tessera-medical"))
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tessera-medical-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok(args: &[&str]) -> String {
    let o = bin().args(args).output().unwrap();
    assert!(
        o.status.success(),
        "tessera-medical {args:?} failed:\n{}",
        text(&o)
    );
    text(&o)
}

fn fails(args: &[&str]) -> String {
    let o = bin().args(args).output().unwrap();
    assert!(
        !o.status.success(),
        "tessera-medical {args:?} should fail:\n{}",
        text(&o)
    );
    let stderr = String::from_utf8_lossy(&o.stderr).to_string();
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "one error line expected:\n{stderr}");
    errors[0].to_string()
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn read_npy(path: &Path) -> Vec<f32> {
    let b = std::fs::read(path).unwrap();
    let header = u16::from_le_bytes([b[8], b[9]]) as usize;
    b[10 + header..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Phantoms plus a manifest: 6 training cases, 3 test cases.
fn dataset(d: &Path) -> PathBuf {
    let data = d.join("data");
    tessera_medical::synth::write_dataset(&data, 9, 4).unwrap();
    let mut csv = String::from("image,label,split\n");
    for i in 0..9 {
        let split = if i < 6 { "train" } else { "test" };
        csv += &format!("images/case_{i:03}.nii.gz,labels/case_{i:03}.nii.gz,{split}\n");
    }
    std::fs::write(data.join("split.csv"), csv).unwrap();
    data
}

#[test]
fn pretrain_segment_apply_and_export() {
    let d = tmp("flow");
    let data = dataset(&d);
    let manifest = data.join("split.csv");
    let mae = d.join("mae");
    let out = ok(&[
        "pretrain",
        "--preset",
        "medical-nano-demo",
        "--data",
        &s(&manifest),
        "--steps",
        "6",
        "--batch-size",
        "2",
        "--out",
        &s(&mae),
    ]);
    assert!(
        out.contains("on 6 files") && out.contains("trained steps 1..6"),
        "{out}"
    );
    assert!(out.contains("sample cache:"), "{out}");
    // Volume Fusion through the same command.
    let cfg = d.join("vf.toml");
    std::fs::write(&cfg, "[recipe]\nkind = \"volume_fusion\"\n").unwrap();
    let out = ok(&[
        "pretrain",
        "--preset",
        "medical-nano-demo",
        "--config",
        &s(&cfg),
        "--data",
        &s(&manifest),
        "--steps",
        "4",
        "--batch-size",
        "2",
        "--out",
        &s(&d.join("vf")),
    ]);
    assert!(out.contains("(volume_fusion)"), "{out}");

    // Segmentation from the MAE run, with the convolutional decoder and layer-wise decay:
    // Dice and HD95 on the 3 test cases.
    let seg = d.join("seg");
    let seg_cfg = d.join("seg.toml");
    std::fs::write(
        &seg_cfg,
        "[segment]\nconv_layers = 1\nconv_channels = 4\nlayer_decay = 0.9\n",
    )
    .unwrap();
    let out = ok(&[
        "segment",
        "--checkpoint",
        &s(&mae),
        "--config",
        &s(&seg_cfg),
        "--data",
        &s(&manifest),
        "--train-split",
        "train",
        "--steps",
        "8",
        "--batch-size",
        "2",
        "--out",
        &s(&seg),
    ]);
    let line = out
        .lines()
        .find(|l| l.starts_with("{\"name\""))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.contains("\"test_cases\": 3") && line.contains("dice_1") && line.contains("hd95_2"),
        "{line}"
    );
    let cases = std::fs::read_to_string(seg.join("cases.csv")).unwrap();
    assert_eq!(cases.lines().count(), 1 + 3 * 2, "{cases}");
    // The same scores as a row of the shared results table (what tessera-bench reads).
    let rows = std::fs::read_to_string(seg.join("rows.jsonl")).unwrap();
    let row: serde_json::Value = serde_json::from_str(rows.lines().next().unwrap()).unwrap();
    assert_eq!(row["task"], "segmentation");
    assert_eq!(row["protocol"], "finetune");
    assert_eq!(row["n_test"], 3);
    let dice = row["extra"]["dice_mean"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&dice), "{rows}");
    assert!(
        line.contains(&format!("\"dice_mean\": {dice:.4}")),
        "{line} / {rows}"
    );
    let latest = std::fs::read_to_string(seg.join("checkpoints/latest")).unwrap();
    let card = std::fs::read_to_string(
        seg.join("checkpoints")
            .join(latest.trim())
            .join("config.toml"),
    )
    .unwrap();
    assert!(
        card.contains("conv_layers = 1") && card.contains("layer_decay = 0.9"),
        "{card}"
    );
    // `--bench-steps` times steps on one batch of labelled crops and trains nothing.
    let bench = d.join("seg-bench");
    let out = ok(&[
        "segment",
        "--random-init",
        "--config",
        &s(&seg_cfg),
        "--data",
        &s(&manifest),
        "--train-split",
        "train",
        "--batch-size",
        "2",
        "--bench-steps",
        "2",
        "--bench-warmup",
        "1",
        "--out",
        &s(&bench),
    ]);
    let json = out
        .lines()
        .find(|l| l.starts_with("{\"impl\""))
        .unwrap_or_else(|| panic!("{out}"));
    let line: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(line["impl"], "tessera", "{out}");
    assert!(line["samples_per_s"].as_f64().unwrap() > 0.0, "{out}");
    assert!(
        !bench.join("checkpoints").exists(),
        "a bench trains nothing"
    );
    // Re-evaluating the saved run gives the same scores.
    ok(&[
        "segment",
        "--evaluate",
        "--checkpoint",
        &s(&seg),
        "--data",
        &s(&manifest),
        "--out",
        &s(&d.join("eval")),
    ]);
    assert_eq!(
        std::fs::read_to_string(d.join("eval/cases.csv")).unwrap(),
        cases
    );
    // Apply the trained head: one label map per input, on a readable grid.
    let preds = d.join("preds");
    ok(&[
        "segment",
        "--apply",
        "--checkpoint",
        &s(&seg),
        "--data",
        &s(&data.join("images")),
        "--out",
        &s(&preds),
    ]);
    let p = tessera_medical::read_labels(&preds.join("case_000.nii.gz")).unwrap();
    assert!(p.data.iter().all(|&x| x < 3));

    // Export: the token graph and the [B,C,Z,Y,X] grid graph against candle.
    let exp = d.join("export");
    let out = ok(&["export", "--checkpoint", &s(&mae), "--out", &s(&exp)]);
    let runtime = tessera_runtime::environment().is_ok();
    if runtime {
        assert!(
            out.contains("checked: ONNX Runtime matches candle"),
            "{out}"
        );
        let (e1, e2) = (d.join("e1"), d.join("e2"));
        ok(&[
            "embed",
            "--checkpoint",
            &s(&mae),
            "--data",
            &s(&data.join("images")),
            "--out",
            &s(&e1),
        ]);
        ok(&[
            "embed",
            "--onnx",
            &s(&exp),
            "--data",
            &s(&data.join("images")),
            "--out",
            &s(&e2),
        ]);
        let (a, b) = (
            read_npy(&e1.join("embeddings.npy")),
            read_npy(&e2.join("embeddings.npy")),
        );
        let err = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        assert!(
            a.len() == b.len() && err <= 1e-4,
            "candle vs ONNX Runtime: {err}"
        );
        // The grid graph takes the normalised centre crop as [1, 1, Z, Y, X].
        let mut rt = tessera_runtime::Encoder::open(&exp).unwrap();
        let fe = <MedicalFrontend as Modality>::new(&rt.card().frontend_as().unwrap()).unwrap();
        let sample = fe.decode(&data.join("images/case_002.nii.gz")).unwrap();
        let tokens = fe.eval_view(&sample).unwrap();
        let (shape, grid) = fe.grid_input(&sample).unwrap().unwrap();
        let want = rt.embed_tokens(&[tokens]).unwrap().remove(0);
        let mut g =
            tessera_runtime::RawSession::open(&exp.join("model_grid.onnx"), &Default::default())
                .unwrap();
        let got = g.run(&[("grid", &shape, &grid)]).unwrap();
        let emb = &got.iter().find(|o| o.0 == "embedding").unwrap().2;
        let err = emb
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(err <= 1e-4, "grid graph vs token graph: {err}");
    } else if std::env::var("TESSERA_REQUIRE_ORT").as_deref() == Ok("1") {
        panic!("TESSERA_REQUIRE_ORT=1 but ONNX Runtime is missing");
    }
    let out = ok(&["inspect", &s(&data.join("images/case_000.nii.gz"))]);
    assert!(out.contains("RAS"), "{out}");
    let out = ok(&["stats", "--data", &s(&data), "--out", &s(&d.join("stats"))]);
    assert!(out.contains("median spacing"), "{out}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn bad_volumes_are_skipped_or_fatal_with_strict() {
    let d = tmp("bad");
    let data = dataset(&d);
    let imgs = data.join("images");
    std::fs::write(
        imgs.join("corrupt.nii.gz"),
        b"\x1f\x8b\x08\x00garbage that is not deflate",
    )
    .unwrap();
    std::fs::write(imgs.join("notes.nii"), b"not a nifti header at all").unwrap();
    let run = d.join("run");
    let out = ok(&[
        "pretrain",
        "--preset",
        "medical-nano-demo",
        "--data",
        &s(&imgs),
        "--steps",
        "12",
        "--batch-size",
        "4",
        "--out",
        &s(&run),
    ]);
    assert!(out.contains("skipped 2 unreadable"), "{out}");
    let err = fails(&[
        "pretrain",
        "--preset",
        "medical-nano-demo",
        "--data",
        &s(&imgs),
        "--steps",
        "12",
        "--batch-size",
        "4",
        "--strict",
        "--out",
        &s(&d.join("strict")),
    ]);
    assert!(
        err.contains("corrupt.nii.gz") || err.contains("notes.nii"),
        "{err}"
    );
    // A label map on a different grid than its image.
    let other = d.join("other");
    tessera_medical::synth::write_dataset(&other, 1, 99).unwrap();
    std::fs::copy(
        other.join("labels/case_000.nii.gz"),
        data.join("labels/case_001.nii.gz"),
    )
    .unwrap();
    let err = fails(&[
        "segment",
        "--random-init",
        "--preset",
        "medical-nano-demo",
        "--data",
        &s(&data.join("split.csv")),
        "--train-split",
        "train",
        "--steps",
        "2",
        "--out",
        &s(&d.join("seg")),
    ]);
    assert!(
        err.contains("case_001.nii.gz") && err.contains("grid"),
        "{err}"
    );
    // An empty folder.
    let empty = d.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let err = fails(&["pretrain", "--data", &s(&empty), "--out", &s(&d.join("e"))]);
    assert!(
        err.contains("no medical files") && err.contains(".nii.gz"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// The real MSD hippocampus files, when present: a short segmentation run from random
/// initialisation on the 10% split evaluates all 52 held-out cases.
#[test]
fn real_msd_hippocampus_when_present() {
    let Some(_root) = tessera_tokens::resources::shared_data("medical/msd_hippocampus") else {
        return;
    };
    let split =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../benchmarks/msd_hippocampus_split.csv");
    let d = tmp("msd");
    let out = ok(&[
        "segment",
        "--random-init",
        "--preset",
        "medical-nano-demo",
        "--data",
        &s(&split),
        "--train-split",
        "labelled",
        "--steps",
        "10",
        "--batch-size",
        "2",
        "--out",
        &s(&d.join("seg")),
    ]);
    let line = out
        .lines()
        .find(|l| l.starts_with("{\"name\""))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.contains("\"train_cases\": 26") && line.contains("\"test_cases\": 52"),
        "{line}"
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// `convert` turns every NRRD and MetaImage fixture into NIfTI with the same voxels and
/// RAS+ affine (float32 sform precision), and `inspect` summarises every format.
#[test]
fn convert_and_inspect_any_format() {
    let d = tmp("convert");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/formats");
    let mut n = 0;
    for e in std::fs::read_dir(&fixtures).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if !["nrrd", "nhdr", "mha", "mhd"]
            .iter()
            .any(|x| name.ends_with(&format!(".{x}")))
        {
            continue;
        }
        let out = d.join(format!("{name}.nii.gz"));
        ok(&["convert", "--data", &s(&p), "--out", &s(&out)]);
        let a = tessera_medical::read_volume(&p).unwrap();
        let b = tessera_medical::read_volume(&out).unwrap();
        assert_eq!((a.dims, a.channels), (b.dims, b.channels), "{name}");
        assert_eq!(a.data, b.data, "{name}");
        for r in 0..3 {
            for c in 0..4 {
                let (x, y) = (a.world_from_voxel[r][c], b.world_from_voxel[r][c]);
                assert!(
                    (x - y).abs() <= 1e-5 * x.abs().max(1.0),
                    "{name}: {x} vs {y}"
                );
            }
        }
        if !a.source.datatype.is_float() && a.source.datatype.size() <= 2 {
            assert_eq!(b.source.datatype, a.source.datatype, "{name}");
        }
        let info = ok(&["inspect", &s(&p)]);
        assert!(info.contains(&a.source.format), "{name}: {info}");
        n += 1;
    }
    assert!(n >= 20, "{n} fixtures");
    // A DICOM series folder, and one series of a folder holding two.
    let dicom = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/dicom");
    for (src, name) in [
        (s(&dicom.join("series_oblique")), "oblique.nii.gz"),
        (
            format!("{}#series=1", s(&dicom.join("series_mixed"))),
            "mixed1.nii",
        ),
    ] {
        let out = d.join(name);
        ok(&["convert", "--data", &src, "--out", &s(&out)]);
        let a = tessera_medical::read_volume(Path::new(&src)).unwrap();
        let b = tessera_medical::read_volume(&out).unwrap();
        assert_eq!((a.dims, &a.data), (b.dims, &b.data), "{src}");
    }
    let e = fails(&[
        "convert",
        "--data",
        &s(&dicom.join("series_mixed")),
        "--out",
        &s(&d.join("m.nii")),
    ]);
    assert!(e.contains("#series=") && e.lines().count() <= 2, "{e}");
    let e = fails(&[
        "convert",
        "--data",
        &s(&fixtures.join("msb.mha")),
        "--out",
        &s(&d.join("x.nrrd")),
    ]);
    assert!(e.contains("x.nrrd") && e.contains("NIfTI"), "{e}");
}
