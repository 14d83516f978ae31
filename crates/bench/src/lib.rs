//! `tessera-bench`: one entry point over every domain's public benchmarks.
//!
//! - [`registry`]: the datasets (`benchmarks/datasets/*.toml`): where each lives under the
//!   data root, its licence and citation, checksums, split, tasks and published anchors.
//! - [`suite`]: suites (`benchmarks/suites/*.toml`): dataset × encoders (preset, recipe,
//!   pretraining budget) × evaluations (probe, few-shot, fine-tune) × seeds, plus the
//!   no-network baselines; expanded into a plan of commands of the domain's CLI.
//! - [`run`]: runs a plan. Each run's key is the hash of its resolved command, the files it
//!   names and the dataset's checksums, so a rerun computes only what changed and an
//!   interrupted suite resumes (pretraining continues from its last checkpoint).
//! - [`report`]: every run's rows in one table (CSV and Parquet), mean ± sd over seeds,
//!   differences paired by seed against a reference, the anchors, PNG charts and a
//!   Markdown report that BENCHMARKS.md links.
//!
//! The harness names no domain: a dataset says which CLI (`tessera-<domain>`) reads it,
//! and every CLI has the same shared subcommands.

pub mod registry;
pub mod report;
pub mod run;
pub mod store;
pub mod suite;

use std::path::PathBuf;

/// Errors of the harness.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{0}")]
    Config(String),
    #[error("{what} failed (exit {code}); its log: {log}")]
    Run {
        what: String,
        code: String,
        log: PathBuf,
    },
    #[error(transparent)]
    Eval(#[from] tessera_eval::EvalError),
}

pub type Result<T> = std::result::Result<T, BenchError>;

pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> BenchError + '_ {
    move |source| BenchError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `bytes` to `path` through a temporary file beside it, so a crash leaves the old
/// file whole.
pub fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// Reads and parses a TOML file, naming it in any error.
pub(crate) fn read_toml<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    toml::from_str(&text).map_err(|e| BenchError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Lower-case hex SHA-256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(bytes))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The part of a cache key that an argument list gives: each argument that names a file
/// as that file's SHA-256, every other one as itself.
pub(crate) fn args_key(args: &[String]) -> Result<String> {
    let mut s = String::new();
    for a in args {
        let p = std::path::Path::new(a);
        s += &match p.is_file() {
            true => format!("file {}\n", sha256_file(p)?),
            false => format!("arg {a}\n"),
        };
    }
    Ok(s)
}

/// SHA-256 of a file, streamed.
pub fn sha256_file(path: &std::path::Path) -> Result<String> {
    use sha2::Digest;
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(io(path))?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}
