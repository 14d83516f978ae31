//! Where tests and benchmarks find the shared public datasets, and whether a missing one is
//! a failure: tests skip what is absent on a laptop, but CI sets `TESSERA_REQUIRE_DATA=1`
//! (and `TESSERA_REQUIRE_ORT=1` for ONNX Runtime), where a missing resource fails loudly.

use std::path::PathBuf;

/// Whether the environment variable `var` is set to `1`.
pub fn required(var: &str) -> bool {
    std::env::var(var).as_deref() == Ok("1")
}

/// The shared data folder: `$TESSERA_DATA`, else `shared/data` beside the repository
/// (`<repo>/../shared/data`, the layout of this project's machines and CI).
pub fn data_root() -> PathBuf {
    match std::env::var_os("TESSERA_DATA") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"),
    }
}

/// `rel` under the shared data folder when it exists. When it does not: `None` (the caller
/// skips, saying so), or a panic naming the path when `TESSERA_REQUIRE_DATA=1`.
pub fn shared_data(rel: &str) -> Option<PathBuf> {
    let p = data_root().join(rel);
    if p.exists() {
        return Some(p);
    }
    if required("TESSERA_REQUIRE_DATA") {
        panic!(
            "TESSERA_REQUIRE_DATA=1 but {} does not exist (set TESSERA_DATA to the shared data folder)",
            p.display()
        );
    }
    eprintln!("skipping: {} not found", p.display());
    None
}
