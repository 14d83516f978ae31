//! `tessera-doc render`: PDF pages (and the pages of multi-page TIFFs) → PNG files at a
//! chosen resolution (pHYs recorded) and a manifest `pages.csv`.

use anyhow::{bail, Context, Result};
use clap::Args;
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use tessera_cli::{csv_field as csv, list_data, progress, ManifestColumns};
use tessera_doc::page::{probe, sniff, Format};
use tessera_doc::synth::write_png;
use tessera_doc::{DocConfig, DocFrontend};
use tessera_tokens::Modality;

#[derive(Debug, Clone, Args)]
pub struct RenderArgs {
    /// A PDF or TIFF, a folder of them, a CSV manifest (labels and splits carried over) or a
    /// text list.
    #[arg(long)]
    pub data: PathBuf,
    /// Folder for the page images and `pages.csv`.
    #[arg(long)]
    pub out: PathBuf,
    /// Resolution of the written pages.
    #[arg(long, default_value_t = 100.0)]
    pub dpi: f64,
    /// Keep colour (grey otherwise).
    #[arg(long)]
    pub colour: bool,
    /// At most this many pages per file (from the first).
    #[arg(long)]
    pub max_pages: Option<usize>,
    /// Files whose pages cannot be read are reported and skipped instead of stopping.
    #[arg(long)]
    pub skip_bad: bool,
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().replace([' ', ','], "_"))
        .unwrap_or_else(|| "page".into())
}

pub fn run(a: &RenderArgs) -> Result<()> {
    let fe = DocFrontend::new(&DocConfig {
        dpi: a.dpi,
        colour: a.colour,
        ..DocConfig::default()
    })?;
    let items = list_data(
        &a.data,
        &|p| DocFrontend::accepts(p),
        &ManifestColumns::default(),
    )?;
    let items: Vec<_> = items
        .into_iter()
        .filter(|i| {
            // By signature only; unreadable files stay, for the page count to report.
            matches!(sniff(&i.path), Ok(Format::Pdf | Format::Tiff) | Err(_))
        })
        .collect();
    if items.is_empty() {
        bail!("{}: no PDF or TIFF files", a.data.display());
    }
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    // (item, page) jobs, page counts first.
    let mut jobs = Vec::new();
    let mut failed = Vec::new();
    for (i, it) in items.iter().enumerate() {
        match probe(&it.path) {
            Ok(info) => {
                let n = a.max_pages.map_or(info.pages, |m| m.min(info.pages));
                jobs.extend((0..n).map(|p| (i, p)));
            }
            Err(e) if a.skip_bad => failed.push(e.to_string()),
            Err(e) => return Err(e.into()),
        }
    }
    let bar = progress(jobs.len() as u64, "rendering");
    let rows: Vec<Result<String, String>> = jobs
        .par_iter()
        .map(|&(i, p)| {
            let it = &items[i];
            let src = format!("{}#page={}", it.path.display(), p + 1);
            let r = fe.decode(Path::new(&src)).and_then(|s| {
                let name = format!("{}-{i:05}-p{:04}.png", stem(&it.path), p + 1);
                write_png(&a.out.join(&name), s.w, s.h, s.c, &s.data, Some(a.dpi))?;
                Ok(format!(
                    "{},{},{},{},{}\n",
                    csv(&name),
                    csv(it.label.as_deref().unwrap_or("")),
                    csv(it.split.as_deref().unwrap_or("")),
                    csv(&it.path.display().to_string()),
                    p + 1
                ))
            });
            bar.inc(1);
            r.map_err(|e| e.to_string())
        })
        .collect();
    bar.finish_and_clear();
    let mut text = String::from("path,label,split,source,page\n");
    for r in rows {
        match r {
            Ok(row) => text.push_str(&row),
            Err(e) if a.skip_bad => failed.push(e),
            Err(e) => bail!(e),
        }
    }
    let manifest = a.out.join("pages.csv");
    let tmp = manifest.with_extension("csv.tmp");
    std::fs::write(&tmp, &text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &manifest).with_context(|| format!("writing {}", manifest.display()))?;
    for f in &failed {
        eprintln!("skipped: {f}");
    }
    eprintln!(
        "{} page(s) of {} file(s) at {} dpi written to {} ({} failed)",
        text.lines().count() - 1,
        items.len(),
        a.dpi,
        manifest.display(),
        failed.len()
    );
    Ok(())
}
