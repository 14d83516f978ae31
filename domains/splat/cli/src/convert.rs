//! `convert`: one splat or point-set file into another format, chosen by the output's
//! extension. Attributes a target cannot hold (SH bands in `.splat`, everything but
//! positions in `.npy`/`.xyz`) are dropped with a note; the output is written to a
//! temporary name and renamed into place.

use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::PathBuf;
use tessera_splat::{formats, frontend::read_file, ply};

#[derive(Args, Debug)]
pub struct ConvertArgs {
    /// The input file (`.npy` stacks take `#index=i`).
    #[arg(long)]
    pub data: PathBuf,
    /// The output file: `.ply`, `.splat`, `.spz`, `.npy` or `.xyz`.
    #[arg(long)]
    pub out: PathBuf,
    /// Write PLY as ASCII instead of binary little-endian.
    #[arg(long)]
    pub ascii: bool,
    /// Refuse inputs with more Gaussians than this.
    #[arg(long, default_value_t = 50_000_000)]
    pub max_gaussians: u64,
}

pub fn run(a: &ConvertArgs) -> Result<()> {
    let (format, g) = read_file(&a.data, 3, a.max_gaussians)?;
    let ext = a
        .out
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let name = a
        .out
        .file_name()
        .context("--out names no file")?
        .to_string_lossy()
        .to_string();
    let tmp = a.out.with_file_name(format!(".{name}.tmp"));
    let lossy = match ext.as_str() {
        "ply" => {
            let enc = if a.ascii {
                ply::Encoding::Ascii
            } else {
                ply::Encoding::BinaryLe
            };
            ply::write(&tmp, &g, enc)?;
            None
        }
        "splat" => {
            formats::write_splat(&tmp, &g)?;
            (g.sh_degree > 0 || !g.extra.is_empty())
                .then_some("SH bands beyond 0 and extra properties")
        }
        "spz" => {
            formats::write_spz(&tmp, &g)?;
            (!g.extra.is_empty()).then_some("extra properties")
        }
        "npy" => {
            formats::write_npy(&tmp, &g.pos)?;
            g.attributes.then_some("every attribute but positions")
        }
        "xyz" => {
            let mut s = String::new();
            g.pos
                .iter()
                .for_each(|p| s += &format!("{} {} {}\n", p[0], p[1], p[2]));
            std::fs::write(&tmp, s).with_context(|| format!("{}", tmp.display()))?;
            g.attributes.then_some("every attribute but positions")
        }
        other => bail!(
            "{}: unknown output format `{other}` (ply, splat, spz, npy, xyz)",
            a.out.display()
        ),
    };
    std::fs::rename(&tmp, &a.out)
        .with_context(|| format!("{}: rename into place", a.out.display()))?;
    eprintln!(
        "{} ({format}, {} Gaussians, SH degree {}) → {}",
        a.data.display(),
        g.len(),
        g.sh_degree,
        a.out.display()
    );
    if let Some(l) = lossy {
        eprintln!("note: .{ext} cannot hold {l}; dropped");
    }
    Ok(())
}
