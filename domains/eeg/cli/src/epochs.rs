//! `tessera-eeg epochs`: recordings → a manifest of labelled windows (`file#t=a,b`).

use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::PathBuf;
use tessera_cli::{csv_field as csv, list_data, progress, ManifestColumns};
use tessera_eeg::epochs::{epochs, EpochSpec};
use tessera_eeg::EegFrontend;
use tessera_tokens::Modality;

#[derive(Debug, Clone, Args)]
pub struct EpochsArgs {
    /// An EDF/BDF file, a folder, a CSV manifest (with labels) or a text list.
    #[arg(long)]
    pub data: PathBuf,
    /// The manifest column holding each recording's label (default `label`).
    #[arg(long)]
    pub label_column: Option<String>,
    /// The manifest column holding each recording's split (default `split`).
    #[arg(long)]
    pub split_column: Option<String>,
    /// The epochs manifest to write (CSV: path,label,split,source,onset_s,duration_s).
    #[arg(long)]
    pub out: PathBuf,
    /// Seconds per epoch.
    #[arg(long, default_value_t = 4.0)]
    pub window: f64,
    /// Seconds between fixed-window starts (default: the window, no overlap).
    #[arg(long)]
    pub stride: Option<f64>,
    /// Epochs around annotations instead of fixed windows: `TEXT=LABEL,...` (or `TEXT,...`
    /// to use the annotation text as the label).
    #[arg(long, value_delimiter = ',')]
    pub events: Vec<String>,
    /// Seconds from an annotation's onset to its epoch's start (may be negative).
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    pub offset: f64,
    /// Split value written on every row (default: the recording's split, if any).
    #[arg(long)]
    pub split: Option<String>,
    /// Add rows to an existing manifest instead of replacing it.
    #[arg(long)]
    pub append: bool,
    /// Fail on the first unreadable file instead of skipping it.
    #[arg(long)]
    pub strict: bool,
}

const HEADER: &str = "path,label,split,source,onset_s,duration_s";

pub fn run(a: &EpochsArgs) -> Result<()> {
    let events: Vec<(String, String)> = a
        .events
        .iter()
        .filter(|e| !e.trim().is_empty())
        .map(|e| match e.split_once('=') {
            Some((k, v)) => (k.trim().to_string(), v.trim().to_string()),
            None => (e.trim().to_string(), e.trim().to_string()),
        })
        .collect();
    let spec = EpochSpec {
        window_s: a.window,
        stride_s: a.stride.unwrap_or(a.window),
        events,
        offset_s: a.offset,
    };
    let items = list_data(
        &a.data,
        &|p| EegFrontend::accepts(p),
        &ManifestColumns {
            label: a.label_column.clone(),
            split: a.split_column.clone(),
        },
    )?;
    if items.is_empty() {
        bail!("{}: no EDF/BDF files", a.data.display());
    }
    let mut text = if a.append && a.out.is_file() {
        let t = std::fs::read_to_string(&a.out)
            .with_context(|| format!("reading {}", a.out.display()))?;
        if t.lines().next() != Some(HEADER) {
            bail!(
                "{}: --append needs an epochs manifest whose header is `{HEADER}`",
                a.out.display()
            );
        }
        t
    } else {
        format!("{HEADER}\n")
    };
    let bar = progress(items.len() as u64, "epochs");
    let (mut rows, mut skipped, mut per_label) = (
        0usize,
        Vec::new(),
        std::collections::BTreeMap::<String, usize>::new(),
    );
    for item in &items {
        bar.inc(1);
        let found = match epochs(&item.path, &spec) {
            Ok(e) => e,
            Err(e) if !a.strict => {
                skipped.push(e.to_string());
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let source = std::fs::canonicalize(&item.path).unwrap_or_else(|_| item.path.clone());
        let src = source.display().to_string();
        for ep in found {
            let label = ep.label.or_else(|| item.label.clone()).unwrap_or_default();
            let split = a
                .split
                .clone()
                .or_else(|| item.split.clone())
                .unwrap_or_default();
            let end = ((ep.onset_s + ep.duration_s) * 1e6).round() / 1e6;
            text.push_str(&format!(
                "{},{},{},{},{},{}\n",
                csv(&format!("{src}#t={},{end}", ep.onset_s)),
                csv(&label),
                csv(&split),
                csv(&src),
                ep.onset_s,
                ep.duration_s
            ));
            *per_label.entry(label).or_default() += 1;
            rows += 1;
        }
    }
    bar.finish_and_clear();
    if let Some(first) = skipped.first() {
        eprintln!(
            "skipped {} unreadable file(s); first: {first}",
            skipped.len()
        );
    }
    if rows == 0 {
        bail!(
            "{}: no epochs (window {} s{})",
            a.data.display(),
            spec.window_s,
            if spec.events.is_empty() {
                String::new()
            } else {
                format!(", events {:?}", a.events)
            }
        );
    }
    if let Some(dir) = a.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = a.out.with_extension("csv.tmp");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &a.out).with_context(|| format!("writing {}", a.out.display()))?;
    let counts: Vec<String> = per_label
        .iter()
        .map(|(l, n)| format!("{} {n}", if l.is_empty() { "(no label)" } else { l }))
        .collect();
    println!(
        "{rows} epochs from {} recording(s) → {} ({})",
        items.len() - skipped.len(),
        a.out.display(),
        counts.join(", ")
    );
    Ok(())
}
