//! Splats and point sets as a Tessera [`Modality`]: training views are random subsets,
//! scaled, shifted (and optionally turned about z) before grouping; the evaluation view is
//! an evenly strided subset grouped from its first Gaussian; per-feature statistics live in
//! the card (`[[splat.norm]]`).

use crate::frontend::read_file;
use crate::gaussians::bounds;
use crate::{SplatConfig, SplatError, SplatFrontend, SplatSample};
use std::path::{Path, PathBuf};
use tessera_tokens::stats::RunningStats;
use tessera_tokens::{InfoRow, Modality, Rng, SampleTokens, TokenSpec};

/// File endings read (a `#index=` suffix allowed on `.npy`).
pub const EXTENSIONS: [&str; 7] = ["ply", "splat", "spz", "npy", "off", "xyz", "pts"];

fn file_of(path: &Path) -> PathBuf {
    tessera_tokens::modality::file_settings(path)
        .map(|(f, _)| f)
        .unwrap_or_else(|_| path.to_path_buf())
}

fn range(xs: impl Iterator<Item = f32>) -> (f32, f32, f32) {
    let (mut lo, mut hi, mut sum, mut n) = (f32::INFINITY, f32::NEG_INFINITY, 0f64, 0usize);
    for x in xs {
        lo = lo.min(x);
        hi = hi.max(x);
        sum += x as f64;
        n += 1;
    }
    (lo, hi, (sum / n.max(1) as f64) as f32)
}

impl Modality for SplatFrontend {
    const NAME: &'static str = "splat";
    const EXTENSIONS: &'static [&'static str] = &EXTENSIONS;
    type Config = SplatConfig;
    type Sample = SplatSample;
    type Stats = Vec<RunningStats>;
    type Error = SplatError;

    fn new(cfg: &SplatConfig) -> Result<Self, SplatError> {
        SplatFrontend::new(cfg)
    }
    fn config(&self) -> &SplatConfig {
        SplatFrontend::config(self)
    }
    fn token_spec(&self) -> TokenSpec {
        SplatFrontend::token_spec(self)
    }
    fn accepts(path: &Path) -> bool {
        tessera_tokens::modality::has_extension(&file_of(path), Self::EXTENSIONS)
    }
    fn decode(&self, path: &Path) -> Result<SplatSample, SplatError> {
        SplatFrontend::decode(self, path)
    }
    fn sample_bytes(s: &SplatSample) -> usize {
        let g = &s.g;
        g.len() * (12 + 12 + 16 + 4 + 12)
            + g.sh_rest.len() * 4
            + g.extra.iter().map(|(_, c)| c.len() * 4).sum::<usize>()
    }
    fn train_view(&self, s: &SplatSample, rng: &mut Rng) -> Result<SampleTokens, SplatError> {
        self.train_tokens(s, rng)
    }
    fn eval_view(&self, s: &SplatSample) -> Result<SampleTokens, SplatError> {
        self.eval_tokens(s)
    }
    /// Jitter of the member offsets (`[splat] jitter`).
    fn augment(&self, view: SampleTokens, rng: &mut Rng) -> Result<SampleTokens, SplatError> {
        Ok(self.jitter(view, rng))
    }
    fn random_sample(&self, rng: &mut Rng) -> Result<SplatSample, SplatError> {
        Ok(SplatFrontend::random_sample(self, rng))
    }
    fn stats_start(&self) -> Option<Vec<RunningStats>> {
        SplatFrontend::stats_start(self)
    }
    fn stats_add(&self, st: &mut Vec<RunningStats>, s: &SplatSample) {
        SplatFrontend::stats_add(self, st, s)
    }
    fn stats_finish(&self, st: Vec<RunningStats>) -> Result<SplatConfig, SplatError> {
        Ok(SplatFrontend::stats_finish(self, st))
    }

    /// Reads the whole file (every Gaussian checked) and reports count, SH degree,
    /// bounds, attribute ranges and suspicious values.
    fn inspect(&self, path: &Path) -> Result<InfoRow, SplatError> {
        let (format, g) = read_file(path, 3, self.config().max_gaussians)?;
        let (lo, hi) = bounds(&g.pos);
        let f3 = |v: [f32; 3]| format!("{:.4} {:.4} {:.4}", v[0], v[1], v[2]);
        let mut row: InfoRow = vec![
            ("file".into(), path.display().to_string()),
            ("format".into(), format.into()),
            ("gaussians".into(), g.len().to_string()),
            (
                "attributes".into(),
                if g.attributes { "gaussian" } else { "points" }.into(),
            ),
            ("sh_degree".into(), g.sh_degree.to_string()),
            ("min".into(), f3(lo)),
            ("max".into(), f3(hi)),
            ("extent".into(), f3(std::array::from_fn(|a| hi[a] - lo[a]))),
        ];
        let mut warn = Vec::new();
        if g.attributes {
            let (olo, ohi, om) = range(g.opacity.iter().copied());
            let (slo, shi, sm) = range(g.log_scale.iter().flatten().copied());
            row.push((
                "opacity".into(),
                format!("{olo:.3}..{ohi:.3} (mean {om:.3})"),
            ));
            row.push((
                "log_scale".into(),
                format!("{slo:.2}..{shi:.2} (mean {sm:.2})"),
            ));
            let diag = (0..3).map(|a| (hi[a] - lo[a]).powi(2)).sum::<f32>().sqrt();
            let huge = g
                .log_scale
                .iter()
                .filter(|s| s.iter().any(|v| v.exp() > 0.5 * diag))
                .count();
            let faint = g.opacity.iter().filter(|o| **o < 1.0 / 255.0).count();
            if huge > 0 {
                warn.push(format!("{huge} Gaussians larger than half the scene"));
            }
            if faint > 0 {
                warn.push(format!("{faint} Gaussians with opacity below 1/255"));
            }
        }
        let mut seen = std::collections::HashSet::new();
        let dups = g
            .pos
            .iter()
            .filter(|p| !seen.insert(p.map(f32::to_bits)))
            .count();
        if dups > 0 {
            warn.push(format!("{dups} duplicate positions"));
        }
        row.push((
            "extra".into(),
            g.extra
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(" "),
        ));
        row.push(("warnings".into(), warn.join("; ")));
        Ok(row)
    }

    fn baselines() -> &'static [&'static str] {
        &["shape"]
    }
    fn baseline(&self, name: &str, s: &SplatSample) -> Result<Vec<f32>, SplatError> {
        match name {
            "shape" => Ok(self.shape_features(s)),
            _ => Err(SplatError::Config(format!(
                "unknown baseline `{name}` (shape)"
            ))),
        }
    }

    fn write_demo_data(dir: &Path, seed: u64) -> Result<PathBuf, SplatError> {
        crate::synth::write_dataset(dir, seed)
    }
}
