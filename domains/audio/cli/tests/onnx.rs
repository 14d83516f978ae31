//! Deployment as a user meets it: `export` a trained run, `embed --onnx` gives the candle
//! path's embeddings through ONNX Runtime, the Python client (numpy + onnxruntime + wave)
//! reproduces them from model.toml alone, and broken export folders give one clear error.
//! Uses real FSDD recordings when ../shared/data is present, generated clips otherwise.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tessera-audio"))
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tessera-audio-onnx-{}-{name}", std::process::id()));
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

fn run(args: &[&str]) -> String {
    let o = bin().args(args).output().unwrap();
    assert!(
        o.status.success(),
        "tessera-audio {args:?} failed:\n{}",
        text(&o)
    );
    text(&o)
}

fn required() -> bool {
    std::env::var("TESSERA_REQUIRE_ORT").as_deref() == Ok("1")
}

fn ort_ready() -> bool {
    match tessera_runtime::environment() {
        Ok(_) => true,
        Err(e) if required() => panic!("TESSERA_REQUIRE_ORT=1 but {e}"),
        Err(e) => {
            eprintln!("skipping: {e}");
            false
        }
    }
}

fn read_npy(path: &Path) -> Vec<f32> {
    let b = std::fs::read(path).unwrap();
    let header = u16::from_le_bytes([b[8], b[9]]) as usize;
    b[10 + header..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Real FSDD clips (8 kHz, so resampling is exercised) or generated ones.
fn clips(dir: &Path) -> PathBuf {
    let wavs = dir.join("wavs");
    std::fs::create_dir_all(&wavs).unwrap();
    let fsdd = tessera_tokens::resources::shared_data("audio/fsdd/recordings");
    let mut n = 0;
    if let Some(Ok(rd)) = fsdd.as_ref().map(std::fs::read_dir) {
        let mut names: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        names.sort();
        for p in names
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "wav"))
            .step_by(97)
            .take(12)
        {
            std::fs::copy(p, wavs.join(p.file_name().unwrap())).unwrap();
            n += 1;
        }
    }
    if n == 0 {
        tessera_audio::synth::write_dataset(&wavs, 2, 4, 8000, 3).unwrap();
    }
    wavs
}

#[test]
fn export_embed_onnx_and_python_client_agree() {
    if !ort_ready() {
        return;
    }
    let d = tmp("agree");
    let data = d.join("train");
    tessera_audio::synth::write_dataset(&data, 2, 4, 8000, 1).unwrap();
    let s = |p: &Path| p.display().to_string();
    let (runp, exp) = (d.join("run"), d.join("export"));
    run(&[
        "pretrain",
        "--preset",
        "audio-nano-demo",
        "--data",
        &s(&data),
        "--steps",
        "3",
        "--batch-size",
        "4",
        "--out",
        &s(&runp),
    ]);
    let out = run(&["export", "--checkpoint", &s(&runp), "--out", &s(&exp)]);
    assert!(
        out.contains("checked: ONNX Runtime matches candle"),
        "{out}"
    );
    for f in ["model.onnx", "model_grid.onnx", "model.toml"] {
        assert!(exp.join(f).is_file(), "{f} missing");
    }
    let card = std::fs::read_to_string(exp.join("model.toml")).unwrap();
    assert!(
        card.contains("modality = \"audio\"") && card.contains("[frontend.norm]"),
        "{card}"
    );

    let wavs = clips(&d);
    let (e1, e2) = (d.join("emb-candle"), d.join("emb-onnx"));
    run(&[
        "embed",
        "--checkpoint",
        &s(&runp),
        "--data",
        &s(&wavs),
        "--out",
        &s(&e1),
    ]);
    run(&[
        "embed",
        "--onnx",
        &s(&exp),
        "--data",
        &s(&wavs),
        "--out",
        &s(&e2),
    ]);
    let (a, b) = (
        read_npy(&e1.join("embeddings.npy")),
        read_npy(&e2.join("embeddings.npy")),
    );
    assert_eq!(a.len(), b.len());
    let err = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    assert!(
        err <= 1e-4,
        "candle vs ONNX Runtime embeddings: max abs error {err}"
    );
    assert_eq!(
        std::fs::read_to_string(e1.join("files.txt")).unwrap(),
        std::fs::read_to_string(e2.join("files.txt")).unwrap()
    );

    // The runtime's own file path, through the reader this application registers.
    let first = std::fs::read_to_string(e1.join("files.txt"))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    let mut bare = tessera_runtime::Encoder::open(&exp).unwrap();
    let err = bare.embed_file(Path::new(&first)).unwrap_err().to_string();
    assert!(
        err.contains("`audio`") && err.contains("registered: none"),
        "{err}"
    );
    let opts = tessera_runtime::Options::default().reader::<tessera_audio::AudioFrontend>();
    let mut rt = tessera_runtime::Encoder::open_with(&exp, &opts).unwrap();
    let e = rt.embed_file(Path::new(&first)).unwrap();
    let err = e
        .iter()
        .zip(&a[..e.len()])
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    assert!(err <= 1e-4, "embed_file vs candle: {err}");

    // The Python client, from model.toml alone.
    let py = std::env::var_os("TESSERA_PYTHON").map(PathBuf::from);
    match py {
        Some(py) => {
            let script =
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../examples/python/embed.py");
            let o = Command::new(py)
                .arg(script)
                .arg(&exp)
                .args([
                    "--files",
                    &s(&e1.join("files.txt")),
                    "--compare",
                    &s(&e1.join("embeddings.npy")),
                ])
                .output()
                .unwrap();
            assert!(o.status.success(), "python client:\n{}", text(&o));
            eprintln!("{}", text(&o));
        }
        None if required() => panic!("TESSERA_PYTHON is not set (run through scripts/test.sh)"),
        None => eprintln!("skipping the Python client: TESSERA_PYTHON not set"),
    }

    // Broken export folders: one clear line, non-zero exit.
    let broken = d.join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    let embed_broken = || {
        bin()
            .args([
                "embed",
                "--onnx",
                &s(&broken),
                "--data",
                &s(&wavs),
                "--out",
                &s(&d.join("x")),
            ])
            .output()
            .unwrap()
    };
    let o = embed_broken();
    assert!(
        !o.status.success() && text(&o).contains("model.toml"),
        "{}",
        text(&o)
    );
    std::fs::copy(exp.join("model.onnx"), broken.join("model.onnx")).unwrap();
    std::fs::write(
        broken.join("model.toml"),
        card.replace("name = \"audio-nano-demo\"", "name = \"other\""),
    )
    .unwrap();
    let o = embed_broken();
    assert!(
        !o.status.success() && text(&o).contains("does not match"),
        "{}",
        text(&o)
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stderr).trim().lines().count(),
        1,
        "{}",
        text(&o)
    );
}
