//! Shared by the export tests: ONNX Runtime availability and temp folders.

#![allow(dead_code)]

use std::path::PathBuf;

/// Whether ONNX Runtime can be loaded. `scripts/test.sh` sets `TESSERA_REQUIRE_ORT=1`, so
/// there a missing library fails the test instead of skipping it.
pub fn ort_ready() -> bool {
    match tessera_runtime::environment() {
        Ok(_) => true,
        Err(e) if std::env::var("TESSERA_REQUIRE_ORT").as_deref() == Ok("1") => {
            panic!("TESSERA_REQUIRE_ORT=1 but {e}")
        }
        Err(e) => {
            eprintln!("skipping: {e}");
            false
        }
    }
}

pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tessera-export-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The Python interpreter with numpy, onnx and onnxruntime (the set-up script's venv), if any.
pub fn python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TESSERA_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let cache = std::env::var_os("TESSERA_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/tessera")))?;
    let p = cache.join("venv/bin/python");
    p.is_file().then_some(p)
}
