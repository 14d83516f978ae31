//! `tessera-eo tile`: scenes → a manifest of windows (`scene#window=x,y,w,h`).

use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::PathBuf;
use tessera_cli::{csv_field as csv, list_data, progress, ManifestColumns};
use tessera_eo::tile::{windows, TileSpec};
use tessera_eo::{EoConfig, EoFrontend};
use tessera_tokens::Modality;

#[derive(Debug, Clone, Args)]
pub struct TileArgs {
    /// A raster, a folder, a CSV manifest (labels and splits are carried over) or a text list.
    #[arg(long)]
    pub data: PathBuf,
    /// The manifest to write (CSV: path,label,split,source,x,y,w,h,nodata_fraction).
    #[arg(long)]
    pub out: PathBuf,
    /// Window side in pixels of the scene's finest band.
    #[arg(long, default_value_t = 128)]
    pub size: usize,
    /// Pixels shared by neighbouring windows.
    #[arg(long, default_value_t = 0)]
    pub overlap: usize,
    /// Leave out windows whose nodata fraction is above this.
    #[arg(long, default_value_t = 0.5)]
    pub max_nodata: f64,
    /// Sensor of files that do not say (`sentinel2`, `sentinel1`, `landsat`, `mstar`, `rgb`).
    #[arg(long, default_value = "auto")]
    pub sensor: String,
    /// Pixel size in m of rasters without georeferencing.
    #[arg(long)]
    pub pixel_m: Option<f64>,
    /// The manifest column holding each scene's label (default `label`).
    #[arg(long)]
    pub label_column: Option<String>,
    /// The manifest column holding each scene's split (default `split`).
    #[arg(long)]
    pub split_column: Option<String>,
}

pub fn run(a: &TileArgs) -> Result<()> {
    let fe = EoFrontend::new(&EoConfig {
        sensor: a.sensor.clone(),
        pixel_m: a.pixel_m,
        ..EoConfig::default()
    })?;
    let spec = TileSpec {
        size: a.size,
        overlap: a.overlap,
        max_nodata: a.max_nodata,
    };
    let items = list_data(
        &a.data,
        &|p| EoFrontend::accepts(p),
        &ManifestColumns {
            label: a.label_column.clone(),
            split: a.split_column.clone(),
        },
    )?;
    if items.is_empty() {
        bail!("{}: no rasters", a.data.display());
    }
    let mut text = String::from("path,label,split,source,x,y,w,h,nodata_fraction\n");
    let (mut kept, mut dropped) = (0usize, 0usize);
    let bar = progress(items.len() as u64, "tiling");
    for it in &items {
        let path = it.path.canonicalize().unwrap_or(it.path.clone());
        for ((x, y, w, h), nd) in windows(&fe, &it.path, spec)? {
            if nd > spec.max_nodata {
                dropped += 1;
                continue;
            }
            kept += 1;
            let p = format!("{}#window={x},{y},{w},{h}", path.display());
            text.push_str(&format!(
                "{},{},{},{},{x},{y},{w},{h},{nd:.4}\n",
                csv(&p),
                csv(it.label.as_deref().unwrap_or("")),
                csv(it.split.as_deref().unwrap_or("")),
                csv(&path.display().to_string()),
            ));
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    if let Some(d) = a.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let tmp = a.out.with_extension("csv.tmp");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &a.out).with_context(|| format!("writing {}", a.out.display()))?;
    eprintln!(
        "{kept} window(s) of {} scene(s) written to {} ({dropped} left out: nodata fraction above {})",
        items.len(),
        a.out.display(),
        spec.max_nodata
    );
    Ok(())
}
