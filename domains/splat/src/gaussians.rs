//! The in-memory form every reader produces: activated Gaussians in columns.
//!
//! Activations follow the INRIA 3DGS conventions: the file's `opacity` is a logit
//! (sigmoid here), `scale_*` are natural logs of the standard deviations along the
//! Gaussian's axes (kept as logs), `rot_*` is an unnormalised quaternion (w, x, y, z)
//! normalised here with its sign made canonical (w ≥ 0, so q and −q, the same rotation, are
//! one value), and colours are spherical-harmonic coefficients (`f_dc_*`, band 0, and
//! `f_rest_*`, bands 1–3, stored channel-major: all of red's, then green's, then blue's).

use crate::SplatError;
use std::path::Path;

/// The band-0 spherical-harmonic constant: colour = 0.5 + SH_C0 · f_dc.
pub const SH_C0: f32 = 0.282_094_8;

/// SH coefficients per colour channel beyond band 0 for a degree (0 → 0, 1 → 3, 2 → 8,
/// 3 → 15).
pub fn rest_per_channel(degree: u8) -> usize {
    let d = degree as usize;
    (d + 1) * (d + 1) - 1
}

/// The SH degree whose `f_rest_*` count is `n` (0, 9, 24, 45), if any.
pub fn degree_of_rest(n: usize) -> Option<u8> {
    (0u8..=3).find(|&d| 3 * rest_per_channel(d) == n)
}

/// Gaussians (or points read as isotropic Gaussians) in columns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Gaussians {
    /// Centres (x, y, z) in scene units.
    pub pos: Vec<[f32; 3]>,
    /// Natural log of the standard deviation along each of the Gaussian's axes.
    pub log_scale: Vec<[f32; 3]>,
    /// Unit quaternion (w, x, y, z), w ≥ 0.
    pub rot: Vec<[f32; 4]>,
    /// Opacity in [0, 1] (sigmoid of the file's logit).
    pub opacity: Vec<f32>,
    /// Band-0 SH coefficients (f_dc_0..2).
    pub dc: Vec<[f32; 3]>,
    /// SH coefficients of bands 1..=`sh_degree`, channel-major per Gaussian
    /// (`3 * rest_per_channel(sh_degree)` values each).
    pub sh_rest: Vec<f32>,
    /// The SH degree held in `sh_rest` (the file's degree unless a reader was asked for
    /// fewer bands).
    pub sh_degree: u8,
    /// Whether the file carried Gaussian attributes; `false` for a point set, whose
    /// scales, rotations, opacities and colours are the isotropic defaults.
    pub attributes: bool,
    /// Properties not mapped above (normals, labels, a tool's own fields), by name.
    pub extra: Vec<(String, Vec<f32>)>,
}

impl Gaussians {
    pub fn len(&self) -> usize {
        self.pos.len()
    }
    pub fn is_empty(&self) -> bool {
        self.pos.is_empty()
    }

    /// Isotropic Gaussians at `pos`: unit opacity, grey, identity rotation, each with the
    /// log of a typical spacing (the bounding-box diagonal over the cube root of the
    /// count) as its scale.
    pub fn points(pos: Vec<[f32; 3]>) -> Self {
        let n = pos.len();
        let (lo, hi) = bounds(&pos);
        let diag = (0..3).map(|a| (hi[a] - lo[a]).powi(2)).sum::<f32>().sqrt();
        let s = (diag.max(f32::MIN_POSITIVE) / (n.max(1) as f32).cbrt()).ln();
        Self {
            log_scale: vec![[s; 3]; n],
            rot: vec![[1.0, 0.0, 0.0, 0.0]; n],
            opacity: vec![1.0; n],
            dc: vec![[0.0; 3]; n],
            pos,
            attributes: false,
            ..Self::default()
        }
    }

    /// SH values per Gaussian in `sh_rest`.
    pub fn rest_len(&self) -> usize {
        3 * rest_per_channel(self.sh_degree)
    }

    /// Colour in [0, 1] (before clamping) from band 0.
    pub fn rgb(&self, i: usize) -> [f32; 3] {
        self.dc[i].map(|c| 0.5 + SH_C0 * c)
    }

    /// Checks every column's length and value: finite positions, scales and colours,
    /// opacities in [0, 1], unit quaternions. The error names the file, the Gaussian and
    /// the attribute.
    pub fn validate(&self, path: &Path) -> Result<(), SplatError> {
        let n = self.len();
        let bad = |what: &str| SplatError::format(path, format!("{what} (internal column length)"));
        if self.log_scale.len() != n
            || self.rot.len() != n
            || self.opacity.len() != n
            || self.dc.len() != n
            || self.sh_rest.len() != n * self.rest_len()
        {
            return Err(bad("columns disagree"));
        }
        for i in 0..n {
            let err = |what: String| Err(SplatError::format(path, format!("Gaussian {i}: {what}")));
            if !self.pos[i].iter().all(|v| v.is_finite()) {
                return err(format!("position {:?} is not finite", self.pos[i]));
            }
            if !self.log_scale[i].iter().all(|v| v.is_finite()) {
                return err(format!(
                    "scale {:?} is not finite (zero, negative or overflowing)",
                    self.log_scale[i].map(f32::exp)
                ));
            }
            if !self.opacity[i].is_finite() {
                return err("opacity is not finite".into());
            }
            if !self.dc[i].iter().all(|v| v.is_finite()) {
                return err(format!("colour (f_dc) {:?} is not finite", self.dc[i]));
            }
        }
        if let Some(i) = self.sh_rest.iter().position(|v| !v.is_finite()) {
            return Err(SplatError::format(
                path,
                format!(
                    "Gaussian {}: an f_rest coefficient is not finite",
                    i / self.rest_len()
                ),
            ));
        }
        Ok(())
    }
}

/// Axis-aligned bounds of points; zeros for none.
pub fn bounds(pos: &[[f32; 3]]) -> ([f32; 3], [f32; 3]) {
    if pos.is_empty() {
        return ([0.0; 3], [0.0; 3]);
    }
    let mut lo = [f32::INFINITY; 3];
    let mut hi = [f32::NEG_INFINITY; 3];
    for p in pos {
        for a in 0..3 {
            lo[a] = lo[a].min(p[a]);
            hi[a] = hi[a].max(p[a]);
        }
    }
    (lo, hi)
}

/// The logistic function.
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// The inverse of [`sigmoid`], clamped away from ±∞.
pub fn logit(p: f32) -> f32 {
    let p = p.clamp(1e-7, 1.0 - 1e-7);
    (p / (1.0 - p)).ln()
}

/// Normalises a quaternion (w, x, y, z) and makes its sign canonical (w ≥ 0; for w = 0
/// the first non-zero component positive). `None` when its norm is zero or not finite.
pub fn canonical_quat(q: [f32; 4]) -> Option<[f32; 4]> {
    let n = q.iter().map(|v| v * v).sum::<f32>().sqrt();
    if !n.is_finite() || n < 1e-12 {
        return None;
    }
    let mut u = q.map(|v| v / n);
    let first = u.iter().copied().find(|v| *v != 0.0).unwrap_or(1.0);
    if u[0] < 0.0 || (u[0] == 0.0 && first < 0.0) {
        u = u.map(|v| -v);
    }
    Some(u)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quaternions_are_unit_and_canonical() {
        let q = canonical_quat([-2.0, 0.0, 0.0, 0.0]).unwrap();
        assert_eq!(q, [1.0, 0.0, 0.0, 0.0]);
        let q = canonical_quat([0.0, -3.0, 4.0, 0.0]).unwrap();
        assert!((q[1] - 0.6).abs() < 1e-6 && (q[2] + 0.8).abs() < 1e-6);
        assert!(canonical_quat([0.0; 4]).is_none());
        assert!(canonical_quat([f32::NAN, 1.0, 0.0, 0.0]).is_none());
    }

    #[test]
    fn sh_degrees_from_rest_counts() {
        assert_eq!(degree_of_rest(0), Some(0));
        assert_eq!(degree_of_rest(9), Some(1));
        assert_eq!(degree_of_rest(24), Some(2));
        assert_eq!(degree_of_rest(45), Some(3));
        assert_eq!(degree_of_rest(10), None);
        assert!((logit(sigmoid(1.3)) - 1.3).abs() < 1e-5);
    }
}
