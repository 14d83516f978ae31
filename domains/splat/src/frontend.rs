//! The splat front end: any supported file → Gaussians normalised to the unit sphere (the
//! centre and radius recorded) → a view of `points` Gaussians → `groups` farthest-point
//! centres with their `group_size` nearest neighbours → one token per group.
//!
//! A token's coordinates are its centre (x, y, z) in normalised scene units; its values are
//! its members, nearest first, each as the offset from the centre and, with
//! `attributes = "all"`, the Gaussian's log-scales, unit quaternion (w ≥ 0), opacity, RGB
//! from band 0 and optionally higher SH bands; every feature is standardised with the
//! dataset statistics stored in the card.

use crate::gaussians::{bounds, canonical_quat, rest_per_channel, Gaussians};
use crate::group::{fps, knn};
use crate::{formats, ply, SplatError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tessera_tokens::stats::RunningStats;
use tessera_tokens::{CoordAxis, NormStats, Rng, SampleTokens, TokenLayout, TokenSpec};

/// Which member features a token carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Attributes {
    /// Offsets, log-scales, rotation, opacity, colour (and `sh_degree` bands).
    #[default]
    All,
    /// Offsets only (Point-MAE on point clouds).
    Positions,
}

/// How a scene is brought to common units before grouping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Normalize {
    /// Centroid at the origin, farthest Gaussian at distance 1 (Point-MAE's `pc_normalize`).
    #[default]
    UnitSphere,
    /// Scene units as stored.
    None,
}

/// The `[splat]` table of a card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplatConfig {
    /// Gaussians per view: a random subset in training, an evenly strided one in evaluation.
    #[serde(default = "d_points")]
    pub points: usize,
    /// Tokens (farthest-point centres) per view.
    #[serde(default = "d_groups")]
    pub groups: usize,
    /// Nearest neighbours per group.
    #[serde(default = "d_group_size")]
    pub group_size: usize,
    #[serde(default)]
    pub attributes: Attributes,
    /// SH bands beyond band 0 carried as features (0–3; `attributes = "all"` only).
    #[serde(default)]
    pub sh_degree: u8,
    #[serde(default)]
    pub normalize: Normalize,
    /// Files declaring more Gaussians are refused before anything is allocated.
    #[serde(default = "d_max")]
    pub max_gaussians: u64,
    /// Training views: per-axis scale drawn from this range (Point-MAE: [2/3, 3/2]).
    #[serde(default = "d_scale")]
    pub train_scale: [f32; 2],
    /// Training views: per-axis translation drawn from ±this (normalised units).
    #[serde(default = "d_translate")]
    pub train_translate: f32,
    /// Training views: a random rotation about z (the up axis of ModelNet and most scans).
    #[serde(default)]
    pub rotate_z: bool,
    /// Augmented views (recipes that ask): Gaussian jitter of member offsets (normalised units).
    #[serde(default = "d_jitter")]
    pub jitter: f32,
    /// Per-feature standardisation, fitted by pretraining.
    #[serde(default)]
    pub norm: Option<Vec<NormStats>>,
}

fn d_points() -> usize {
    1024
}
fn d_groups() -> usize {
    64
}
fn d_group_size() -> usize {
    32
}
fn d_max() -> u64 {
    50_000_000
}
fn d_scale() -> [f32; 2] {
    [2.0 / 3.0, 1.5]
}
fn d_translate() -> f32 {
    0.2
}
fn d_jitter() -> f32 {
    0.01
}

impl Default for SplatConfig {
    fn default() -> Self {
        toml::from_str("").expect("defaults")
    }
}

/// A decoded file: its Gaussians with positions (and log-scales) normalised.
#[derive(Debug, Clone)]
pub struct SplatSample {
    pub path: PathBuf,
    pub format: &'static str,
    pub g: Gaussians,
    /// What normalisation subtracted and divided by (scene units).
    pub centre: [f32; 3],
    pub radius: f32,
}

/// The splat front end.
pub struct SplatFrontend {
    cfg: SplatConfig,
    /// Values per member (`feature_names(cfg).len()`), fixed by the configuration.
    width: usize,
}

/// File formats by extension, or by the first bytes for PLY/.spz written under other names.
pub fn read_file(
    path: &Path,
    max_sh: u8,
    max_count: u64,
) -> Result<(&'static str, Gaussians), SplatError> {
    let (file, settings) =
        tessera_tokens::modality::file_settings(path).map_err(|m| SplatError::format(path, m))?;
    let mut index = None;
    for (k, v) in settings {
        match k.as_str() {
            "index" => {
                index = Some(v.parse().map_err(|_| {
                    SplatError::format(path, format!("`#index={v}` is not a number"))
                })?)
            }
            _ => {
                return Err(SplatError::format(
                    path,
                    format!("unknown setting `#{k}` (index is read)"),
                ))
            }
        }
    }
    let name = file.to_string_lossy().to_ascii_lowercase();
    let mut magic = [0u8; 4];
    {
        use std::io::Read;
        let mut f = std::fs::File::open(&file).map_err(SplatError::io(&file))?;
        let _ = f.read(&mut magic).map_err(SplatError::io(&file))?;
    }
    if index.is_some() && !name.ends_with(".npy") {
        return Err(SplatError::format(
            path,
            "`#index=` selects a cloud of an .npy stack only",
        ));
    }
    let ext = name.rsplit('.').next().unwrap_or("");
    if &magic[..3] == b"ply" || ext == "ply" {
        let (h, g) = ply::read(&file, max_sh, max_count)?;
        let kind = if h.element("chunk").is_some() {
            "ply-compressed"
        } else if g.attributes {
            "ply-3dgs"
        } else {
            "ply-points"
        };
        return Ok((kind, g));
    }
    if ext == "spz" || magic == 0x5053_474eu32.to_le_bytes() {
        return Ok(("spz", formats::read_spz(&file, max_count, max_sh)?));
    }
    match ext {
        "splat" => Ok(("splat", formats::read_splat(&file, max_count)?)),
        "npy" => Ok(("npy", formats::read_npy(&file, index, max_count)?)),
        "off" => Ok(("off", formats::read_off(&file, max_count)?)),
        "xyz" | "txt" | "pts" | "csv" => Ok(("xyz", formats::read_xyz(&file, max_count)?)),
        _ => Err(SplatError::format(
            path,
            "unknown format (PLY, .splat, .spz, .npy, .off, .xyz are read)",
        )),
    }
}

/// Per-member feature names for a configuration.
pub fn feature_names(cfg: &SplatConfig) -> Vec<String> {
    let mut f: Vec<String> = ["dx", "dy", "dz"].map(String::from).to_vec();
    if cfg.attributes == Attributes::All {
        f.extend(
            [
                "log_sx", "log_sy", "log_sz", "qw", "qx", "qy", "qz", "opacity", "r", "g", "b",
            ]
            .map(String::from),
        );
        for c in ["r", "g", "b"] {
            f.extend((1..=rest_per_channel(cfg.sh_degree)).map(|j| format!("sh{j}_{c}")));
        }
    }
    f
}

/// A rigid-plus-scale transform of a training view.
#[derive(Debug, Clone, Copy)]
struct Transform {
    scale: [f32; 3],
    shift: [f32; 3],
    /// Rotation about z (radians).
    angle: f32,
}

impl Transform {
    const IDENTITY: Transform = Transform {
        scale: [1.0; 3],
        shift: [0.0; 3],
        angle: 0.0,
    };
    fn point(&self, p: [f32; 3]) -> [f32; 3] {
        let (s, c) = self.angle.sin_cos();
        let q = [c * p[0] - s * p[1], s * p[0] + c * p[1], p[2]];
        std::array::from_fn(|a| q[a] * self.scale[a] + self.shift[a])
    }
    fn quat(&self, q: [f32; 4]) -> [f32; 4] {
        if self.angle == 0.0 {
            return q;
        }
        let (s, c) = (self.angle / 2.0).sin_cos();
        // (c, 0, 0, s) ⊗ q
        let r = [
            c * q[0] - s * q[3],
            c * q[1] - s * q[2],
            c * q[2] + s * q[1],
            c * q[3] + s * q[0],
        ];
        canonical_quat(r).unwrap_or(q)
    }
    fn log_scale(&self) -> f32 {
        self.scale.iter().map(|s| s.ln()).sum::<f32>() / 3.0
    }
}

impl SplatFrontend {
    pub fn new(cfg: &SplatConfig) -> Result<Self, SplatError> {
        let bad = |m: String| Err(SplatError::Config(m));
        if cfg.groups == 0 || cfg.group_size == 0 || cfg.points == 0 {
            return bad("points, groups and group_size must be positive".into());
        }
        if cfg.groups > cfg.points || cfg.group_size > cfg.points {
            return bad(format!(
                "groups ({}) and group_size ({}) cannot exceed points ({})",
                cfg.groups, cfg.group_size, cfg.points
            ));
        }
        if cfg.sh_degree > 3 {
            return bad(format!("sh_degree {} (0–3)", cfg.sh_degree));
        }
        if cfg.sh_degree > 0 && cfg.attributes == Attributes::Positions {
            return bad("sh_degree needs attributes = \"all\"".into());
        }
        if !(cfg.train_scale[0] > 0.0 && cfg.train_scale[0] <= cfg.train_scale[1])
            || cfg.train_translate < 0.0
            || cfg.jitter < 0.0
        {
            return bad(format!(
                "train_scale {:?} (0 < lo ≤ hi), train_translate and jitter ≥ 0",
                cfg.train_scale
            ));
        }
        if let Some(n) = &cfg.norm {
            if n.len() != feature_names(cfg).len() {
                return bad(format!(
                    "norm has {} features, the configuration makes {}",
                    n.len(),
                    feature_names(cfg).len()
                ));
            }
        }
        Ok(Self {
            cfg: cfg.clone(),
            width: feature_names(cfg).len(),
        })
    }

    pub fn config(&self) -> &SplatConfig {
        &self.cfg
    }

    /// Values per member.
    pub fn width(&self) -> usize {
        self.width
    }

    pub fn token_spec(&self) -> TokenSpec {
        let f = self.width();
        TokenSpec {
            p: self.cfg.group_size * f,
            k: 3,
            value_unit: format!(
                "{} members × ({}), standardised",
                self.cfg.group_size,
                feature_names(&self.cfg).join(" ")
            ),
            axes: ["x", "y", "z"]
                .map(|a| CoordAxis {
                    name: a.into(),
                    unit: match self.cfg.normalize {
                        Normalize::UnitSphere => "scene radius".into(),
                        Normalize::None => "scene unit".into(),
                    },
                    scale: 1.0,
                })
                .to_vec(),
            layout: TokenLayout::Set,
        }
    }

    /// Reads and normalises one file.
    pub fn decode(&self, path: &Path) -> Result<SplatSample, SplatError> {
        let (format, mut g) = read_file(path, self.cfg.sh_degree, self.cfg.max_gaussians)?;
        if g.is_empty() {
            return Err(SplatError::format(path, "no Gaussians"));
        }
        let (centre, radius) = match self.cfg.normalize {
            Normalize::None => ([0.0; 3], 1.0),
            Normalize::UnitSphere => {
                let n = g.len() as f64;
                let c: [f32; 3] = std::array::from_fn(|a| {
                    (g.pos.iter().map(|p| p[a] as f64).sum::<f64>() / n) as f32
                });
                let r = g
                    .pos
                    .iter()
                    .map(|p| (0..3).map(|a| (p[a] - c[a]).powi(2)).sum::<f32>())
                    .fold(0.0f32, f32::max)
                    .sqrt();
                (c, if r > 0.0 && r.is_finite() { r } else { 1.0 })
            }
        };
        let lr = radius.ln();
        for p in &mut g.pos {
            *p = std::array::from_fn(|a| (p[a] - centre[a]) / radius);
        }
        for s in &mut g.log_scale {
            *s = s.map(|v| v - lr);
        }
        Ok(SplatSample {
            path: path.to_path_buf(),
            format,
            g,
            centre,
            radius,
        })
    }

    /// Member features and centres of a view: Gaussians `subset` of the sample, moved by
    /// `t`, grouped from the FPS start `start`. Unstandardised.
    fn group_features(
        &self,
        s: &SplatSample,
        subset: &[usize],
        t: Transform,
        start: usize,
    ) -> (Vec<f32>, Vec<f32>, usize) {
        let g = &s.g;
        let pos: Vec<[f32; 3]> = subset.iter().map(|&i| t.point(g.pos[i])).collect();
        let centres_i = fps(&pos, self.cfg.groups, start);
        let centres: Vec<[f32; 3]> = centres_i.iter().map(|&i| pos[i]).collect();
        let k = self.cfg.group_size.min(pos.len());
        let members = knn(&pos, &centres, k);
        let f = self.width();
        let (all, rest) = (
            self.cfg.attributes == Attributes::All,
            3 * rest_per_channel(self.cfg.sh_degree),
        );
        let ls = t.log_scale();
        let mut values = Vec::with_capacity(centres.len() * self.cfg.group_size * f);
        for (c, m) in centres.iter().zip(&members) {
            for slot in 0..self.cfg.group_size {
                // A view with fewer Gaussians than a group repeats its nearest ones.
                let j = m[slot % m.len()];
                let i = subset[j];
                values.extend((0..3).map(|a| pos[j][a] - c[a]));
                if all {
                    values.extend(g.log_scale[i].map(|v| v + ls));
                    values.extend(t.quat(g.rot[i]));
                    values.push(g.opacity[i]);
                    values.extend(g.rgb(i));
                    let have = g.rest_len();
                    let per_have = have / 3;
                    let per = rest / 3;
                    for ch in 0..3 {
                        for q in 0..per {
                            values.push(if q < per_have {
                                g.sh_rest[i * have + ch * per_have + q]
                            } else {
                                0.0
                            });
                        }
                    }
                }
            }
        }
        let coords = centres.iter().flatten().copied().collect();
        (values, coords, centres.len())
    }

    fn standardise(&self, values: &mut [f32]) {
        if let Some(n) = &self.cfg.norm {
            for row in values.chunks_exact_mut(n.len()) {
                for (v, s) in row.iter_mut().zip(n) {
                    *v = (*v - s.mean as f32) / s.std as f32;
                }
            }
        }
    }

    fn tokens(
        &self,
        s: &SplatSample,
        subset: &[usize],
        t: Transform,
        start: usize,
    ) -> Result<SampleTokens, SplatError> {
        let (mut values, coords, n) = self.group_features(s, subset, t, start);
        self.standardise(&mut values);
        Ok(SampleTokens::new(
            values,
            coords,
            n,
            self.cfg.group_size * self.width(),
            3,
        )?)
    }

    /// The evaluation subset: every Gaussian, or `points` evenly strided ones.
    pub fn eval_subset(&self, n: usize) -> Vec<usize> {
        let m = self.cfg.points.min(n);
        (0..m).map(|i| i * n / m).collect()
    }

    /// The deterministic evaluation view (FPS from the subset's first Gaussian).
    pub fn eval_tokens(&self, s: &SplatSample) -> Result<SampleTokens, SplatError> {
        self.tokens(s, &self.eval_subset(s.g.len()), Transform::IDENTITY, 0)
    }

    /// A training view: a random subset, scale, translation (and rotation about z), and
    /// FPS start.
    pub fn train_tokens(&self, s: &SplatSample, rng: &mut Rng) -> Result<SampleTokens, SplatError> {
        let subset = self.random_subset(s.g.len(), rng);
        let m = subset.len();
        let [lo, hi] = self.cfg.train_scale;
        let tr = self.cfg.train_translate;
        let t = Transform {
            scale: std::array::from_fn(|_| lo + (hi - lo) * rng.uniform() as f32),
            shift: std::array::from_fn(|_| tr * (2.0 * rng.uniform() as f32 - 1.0)),
            angle: if self.cfg.rotate_z {
                std::f32::consts::TAU * rng.uniform() as f32
            } else {
                0.0
            },
        };
        self.tokens(s, &subset, t, rng.below(m))
    }

    /// `points` of `n` Gaussians drawn without replacement (all of them when fewer).
    fn random_subset(&self, n: usize, rng: &mut Rng) -> Vec<usize> {
        let m = self.cfg.points.min(n);
        let mut idx: Vec<usize> = (0..n).collect();
        if m < n {
            for i in 0..m {
                let j = i + rng.below(n - i);
                idx.swap(i, j);
            }
            idx.truncate(m);
        }
        idx
    }

    /// Another view of the scene as it is (no scale, shift or rotation): a random subset
    /// of `points` Gaussians grouped from a random FPS start. Token coordinates are the
    /// group centres in the sample's normalised frame, so features of several such views
    /// can be carried back to every Gaussian (`tessera-splat segment`).
    pub fn scene_tokens(&self, s: &SplatSample, rng: &mut Rng) -> Result<SampleTokens, SplatError> {
        let subset = self.random_subset(s.g.len(), rng);
        let start = rng.below(subset.len());
        self.tokens(s, &subset, Transform::IDENTITY, start)
    }

    /// Jitter of member offsets (standardised units scaled back) for augmented views.
    pub fn jitter(&self, mut view: SampleTokens, rng: &mut Rng) -> SampleTokens {
        if self.cfg.jitter > 0.0 {
            let f = self.width();
            let std: Vec<f32> = (0..3)
                .map(|a| self.cfg.norm.as_ref().map_or(1.0, |n| n[a].std as f32))
                .collect();
            for row in view.values.chunks_exact_mut(f) {
                for a in 0..3 {
                    row[a] += self.cfg.jitter * rng.normal() as f32 / std[a];
                }
            }
        }
        view
    }

    /// A unit-sphere Gaussian blob of `points` Gaussians (benchmarks, ONNX parity).
    pub fn random_sample(&self, rng: &mut Rng) -> SplatSample {
        let pos = (0..self.cfg.points)
            .map(|_| std::array::from_fn(|_| rng.normal() as f32 * 0.4))
            .collect();
        let mut g = Gaussians::points(pos);
        g.attributes = true;
        g.sh_degree = self.cfg.sh_degree;
        g.sh_rest = vec![0.0; g.len() * g.rest_len()];
        SplatSample {
            path: PathBuf::from("random"),
            format: "random",
            g,
            centre: [0.0; 3],
            radius: 1.0,
        }
    }

    pub fn stats_start(&self) -> Option<Vec<RunningStats>> {
        self.cfg
            .norm
            .is_none()
            .then(|| vec![RunningStats::default(); self.width()])
    }

    /// Adds the member features of a sample's evaluation view.
    pub fn stats_add(&self, st: &mut [RunningStats], s: &SplatSample) {
        let (values, _, _) =
            self.group_features(s, &self.eval_subset(s.g.len()), Transform::IDENTITY, 0);
        let f = st.len();
        let mut col = Vec::with_capacity(values.len() / f);
        for (k, acc) in st.iter_mut().enumerate() {
            col.clear();
            col.extend(values.iter().skip(k).step_by(f));
            acc.push_slice(&col);
        }
    }

    /// The configuration with fitted per-feature statistics (a constant feature keeps a
    /// unit scale rather than dividing by zero).
    pub fn stats_finish(&self, st: Vec<RunningStats>) -> SplatConfig {
        SplatConfig {
            norm: Some(
                st.iter()
                    .map(|r| {
                        let n = r.finish();
                        NormStats {
                            mean: n.mean,
                            std: if n.std < 1e-3 { 1.0 } else { n.std },
                        }
                    })
                    .collect(),
            ),
            ..self.cfg.clone()
        }
    }

    /// The `shape` baseline: a D2 shape distribution (a 32-bin histogram of distances
    /// between point pairs of the evaluation subset), the sorted principal variances and
    /// the sorted bounding-box extents — classic rotation-robust shape features with no
    /// network — and the mean and spread of opacity, log-scale and colour.
    pub fn shape_features(&self, s: &SplatSample) -> Vec<f32> {
        let sub = self.eval_subset(s.g.len());
        let pos: Vec<[f32; 3]> = sub.iter().map(|&i| s.g.pos[i]).collect();
        let n = pos.len();
        let mut hist = [0f32; 32];
        let mut pairs = 0;
        let step = (n / 256).max(1);
        for i in (0..n).step_by(step) {
            for j in (i + 1..n).step_by(step) {
                let d = (0..3)
                    .map(|a| (pos[i][a] - pos[j][a]).powi(2))
                    .sum::<f32>()
                    .sqrt();
                hist[((d / 2.0 * 32.0) as usize).min(31)] += 1.0;
                pairs += 1;
            }
        }
        hist.iter_mut().for_each(|h| *h /= pairs.max(1) as f32);
        let mean: [f32; 3] =
            std::array::from_fn(|a| pos.iter().map(|p| p[a]).sum::<f32>() / n as f32);
        let mut cov = [[0f32; 3]; 3];
        for p in &pos {
            for a in 0..3 {
                for b in 0..3 {
                    cov[a][b] += (p[a] - mean[a]) * (p[b] - mean[b]) / n as f32;
                }
            }
        }
        let mut ev = sym3_eigenvalues(cov);
        ev.sort_by(|a, b| b.total_cmp(a));
        let (lo, hi) = bounds(&pos);
        let mut ext: Vec<f32> = (0..3).map(|a| hi[a] - lo[a]).collect();
        ext.sort_by(|a, b| b.total_cmp(a));
        let mut out: Vec<f32> = hist.to_vec();
        out.extend(ev);
        out.extend(ext);
        {
            // point sets contribute their isotropic defaults, so every file gives one width
            let ms = |xs: &mut dyn Iterator<Item = f32>| {
                let v: Vec<f32> = xs.collect();
                let m = v.iter().sum::<f32>() / v.len() as f32;
                [
                    m,
                    (v.iter().map(|x| (x - m).powi(2)).sum::<f32>() / v.len() as f32).sqrt(),
                ]
            };
            out.extend(ms(&mut sub.iter().map(|&i| s.g.opacity[i])));
            out.extend(ms(&mut sub
                .iter()
                .map(|&i| s.g.log_scale[i].iter().sum::<f32>() / 3.0)));
            for c in 0..3 {
                out.extend(ms(&mut sub.iter().map(|&i| s.g.rgb(i)[c])));
            }
        }
        out
    }
}

/// Eigenvalues of a symmetric 3×3 matrix (the trigonometric closed form).
fn sym3_eigenvalues(a: [[f32; 3]; 3]) -> [f32; 3] {
    let p1 = a[0][1].powi(2) + a[0][2].powi(2) + a[1][2].powi(2);
    let q = (a[0][0] + a[1][1] + a[2][2]) / 3.0;
    if p1 < 1e-20 {
        return [a[0][0], a[1][1], a[2][2]];
    }
    let p2 = (0..3).map(|i| (a[i][i] - q).powi(2)).sum::<f32>() + 2.0 * p1;
    let p = (p2 / 6.0).sqrt();
    let b: [[f32; 3]; 3] = std::array::from_fn(|i| {
        std::array::from_fn(|j| (a[i][j] - if i == j { q } else { 0.0 }) / p)
    });
    let det = b[0][0] * (b[1][1] * b[2][2] - b[1][2] * b[2][1])
        - b[0][1] * (b[1][0] * b[2][2] - b[1][2] * b[2][0])
        + b[0][2] * (b[1][0] * b[2][1] - b[1][1] * b[2][0]);
    let phi = (det / 2.0).clamp(-1.0, 1.0).acos() / 3.0;
    let e1 = q + 2.0 * p * phi.cos();
    let e3 = q + 2.0 * p * (phi + 2.0 * std::f32::consts::PI / 3.0).cos();
    [e1, 3.0 * q - e1 - e3, e3]
}
