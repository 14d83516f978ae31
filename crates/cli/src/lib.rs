//! What every domain CLI shares: the common flags (same meaning in every domain), layered
//! configuration (embedded preset → `--config` file → flags), data listing from a folder
//! or a CSV manifest, thread setup, progress bars and one-line error reporting.

pub mod config;
pub mod data;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub use config::{deep_merge, merge_file, Presets};
pub use data::{list_data, DataItem, ManifestColumns};

/// Flags shared by every subcommand of every domain CLI.
#[derive(Debug, Clone, Args, Default)]
pub struct CommonArgs {
    /// Data: a folder (searched recursively) or a CSV manifest with a path/file column.
    #[arg(long, value_name = "DIR|MANIFEST.csv")]
    pub data: Option<PathBuf>,
    /// Output folder.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// A run folder written by `pretrain` (its latest checkpoint and resolved config).
    #[arg(long, value_name = "RUN_DIR")]
    pub checkpoint: Option<PathBuf>,
    /// A TOML file merged over the preset.
    #[arg(long, value_name = "TOML")]
    pub config: Option<PathBuf>,
    /// A named model card from `models/` (or a path to one).
    #[arg(long, value_name = "NAME")]
    pub preset: Option<String>,
    /// Training steps (overrides the config).
    #[arg(long)]
    pub steps: Option<u64>,
    /// Batch size (overrides the config).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Root random seed (overrides the config).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Worker threads (default: all cores). Results are bit-identical for a given count.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Fail on the first unreadable file instead of skipping it.
    #[arg(long)]
    pub strict: bool,
}

impl CommonArgs {
    pub fn data(&self) -> anyhow::Result<&PathBuf> {
        self.data
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("--data is required (a folder or a CSV manifest)"))
    }
    pub fn out(&self) -> anyhow::Result<&PathBuf> {
        self.out
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("--out is required"))
    }
    pub fn checkpoint(&self) -> anyhow::Result<&PathBuf> {
        self.checkpoint
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("--checkpoint <run dir> is required"))
    }
}

/// Keeps freed tensor buffers in the heap instead of returning them to the kernel: a
/// training step allocates and frees the same large buffers every step, and with glibc's
/// defaults each of those becomes a fresh mmap and thousands of page faults.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator thresholds; called before other threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

/// Sets the thread count for candle's matrix kernels and rayon, and tunes the allocator.
/// Call before any work.
pub fn init_threads(threads: Option<usize>) -> anyhow::Result<()> {
    tune_allocator();
    if let Some(n) = threads {
        if n == 0 {
            anyhow::bail!("--threads must be at least 1");
        }
        // candle reads RAYON_NUM_THREADS for its gemm parallelism; rayon uses the global pool.
        // Set before any rayon or candle use, while the program is single-threaded.
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
    Ok(())
}

/// A progress bar with Tessera's style (hidden when stderr is not a terminal).
pub fn progress(len: u64, what: &str) -> ProgressBar {
    let b = ProgressBar::new(len);
    b.set_style(
        ProgressStyle::with_template(
            "{msg:>12} {bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}]",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    b.set_message(what.to_string());
    b
}

/// Prints an error as one line (`error: outer context: cause`) and returns exit code 1.
pub fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Writes a row-major `[rows, cols]` f32 matrix as a NumPy `.npy` file (atomically).
pub fn write_npy(path: &Path, data: &[f32], rows: usize, cols: usize) -> anyhow::Result<()> {
    let mut header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = Vec::with_capacity(10 + header.len() + data.len() * 4);
    bytes.extend_from_slice(b"\x93NUMPY\x01\x00");
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for v in data {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    let tmp = path.with_extension("npy.tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
