//! What every domain CLI shares: the common flags (same meaning in every domain), layered
//! configuration (embedded preset → `--config` file → flags), data listing from a folder
//! or a CSV manifest, thread setup, progress bars and one-line error reporting.

pub mod config;
pub mod data;
pub mod shards;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub use config::{deep_merge, merge_file, Presets};
pub use data::{csv_field, list_data, DataItem, ManifestColumns};

/// Flags shared by every subcommand of every domain CLI.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Data: a file, a folder (searched recursively), a CSV manifest (`path`/`file`/`image`,
    /// label and split columns) or a text list of paths.
    #[arg(long, value_name = "PATH")]
    pub data: Option<PathBuf>,
    /// Manifest column holding the label (default: `label`; in a folder, the parent folder name).
    #[arg(long, value_name = "NAME")]
    pub label_column: Option<String>,
    /// Manifest column holding the split (default: `split` if present).
    #[arg(long, value_name = "NAME")]
    pub split_column: Option<String>,
    /// Split value that marks test rows (never used for pretraining, statistics or fitting).
    #[arg(long, value_name = "NAME", default_value = "test")]
    pub test_split: String,
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
    /// Where the network runs: `cpu`, `cuda:N` or `metal` (the last two in binaries built
    /// with the `cuda` or `metal` feature; they run the composed fallbacks of the fused
    /// CPU kernels).
    #[arg(long, value_name = "DEVICE", default_value = "cpu")]
    pub device: String,
    /// Fail on the first unreadable file instead of skipping it.
    #[arg(long)]
    pub strict: bool,
    /// Cut every recording into windows of this many seconds (`file#t=START,END` items,
    /// each read on its own, so hours-long files stream in bounded memory); modalities
    /// with a time axis only (audio, EEG).
    #[arg(long, value_name = "SECONDS")]
    pub window: Option<f64>,
    /// Step between windows in seconds (default: --window, no overlap).
    #[arg(long, value_name = "SECONDS", requires = "window")]
    pub hop: Option<f64>,
}

impl Default for CommonArgs {
    fn default() -> Self {
        Self {
            data: None,
            label_column: None,
            split_column: None,
            test_split: "test".into(),
            out: None,
            checkpoint: None,
            config: None,
            preset: None,
            steps: None,
            batch_size: None,
            seed: None,
            window: None,
            hop: None,
            threads: None,
            device: "cpu".into(),
            strict: false,
        }
    }
}

impl CommonArgs {
    /// The manifest columns these flags name.
    pub fn columns(&self) -> ManifestColumns {
        ManifestColumns {
            label: self.label_column.clone(),
            split: self.split_column.clone(),
        }
    }

    /// Whether a listed item is in the test split.
    pub fn is_test(&self, item: &DataItem) -> bool {
        item.split.as_deref() == Some(self.test_split.as_str())
    }

    pub fn data(&self) -> anyhow::Result<&PathBuf> {
        self.data.as_ref().ok_or_else(|| {
            anyhow::anyhow!("--data is required (a file, folder, CSV manifest or list)")
        })
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
/// training step or a batch of inference allocates and frees the same large buffers over
/// and over, and with glibc's defaults each of those becomes a fresh mmap and thousands
/// of page faults. glibc cannot raise its mmap threshold above 32 MiB, and activations of
/// 32 samples × 513 tokens × 768 channels are 50 MiB, so mmap is switched off for the main
/// heap (other threads' heaps still map blocks too large for them); the heap returns
/// memory only when more than 1 GiB at its top is free.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator thresholds; called before other threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

/// Sets the thread count for candle's matrix kernels and rayon, and tunes the allocator.
/// Call before any work.
pub fn init_threads(threads: Option<usize>) -> anyhow::Result<()> {
    tune_allocator();
    // candle 0.11 runs its parallel element-wise maps on a second pool of spinning threads
    // beside rayon's, and on a few cores those threads take turns with the GEMM workers
    // (audio MAE step +8 %, one-sample inference +10 % without them, BENCHMARKS.md issue
    // 15). With one thread that pool has no workers and the maps run on the calling thread.
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
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

/// An error and its causes as one line (`outer context: cause`), leaving out a cause
/// whose text the line already holds (library errors often repeat their source's message).
pub fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if text.is_empty() || line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line.replace('\n', " ")
}

/// Prints an error as one line (`error: outer context: cause`) and returns exit code 1.
pub fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_drops_repeated_causes() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let e = anyhow::Error::new(io)
            .context("a.wav: no such file")
            .context("reading data");
        assert_eq!(one_line(&e), "reading data: a.wav: no such file");
        let e = anyhow::anyhow!("two\nlines").context("outer");
        assert_eq!(one_line(&e), "outer: two lines");
    }
}
