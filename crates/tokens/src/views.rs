//! What a recipe asks of each training view, and the modality-free local crop.
//!
//! Multi-crop recipes (DINO, iBOT; Caron et al. 2021, arXiv:2104.14294) want global views
//! (the modality's whole training crop) and smaller local views of the same sample. Tokens
//! carry physical coordinates, so a local view is cut in coordinate space by
//! [`local_crop`]: a random window covering a fraction of the global view's extent along
//! chosen axes (time for audio and EEG, all three for volumes, x and y for rasters and
//! pages). A modality may cut views natively instead; this one needs no knowledge of it.

use crate::{Rng, SampleTokens, TokenError};
use serde::{Deserialize, Serialize};

/// Global (the whole training crop) or local (a window of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ViewKind {
    #[default]
    Global,
    Local,
}

/// One view a recipe asks for, per sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViewSpec {
    #[serde(default)]
    pub kind: ViewKind,
    /// Fraction of the global view's coordinate extent a local view keeps along each
    /// cropped axis, in (0, 1]. Ignored for global views.
    #[serde(default = "one")]
    pub extent: f32,
    /// Coordinate axes a local view is cropped along (empty: every axis).
    #[serde(default)]
    pub axes: Vec<usize>,
    /// Apply the modality's random augmentation ([`crate::Modality::augment`]).
    #[serde(default)]
    pub augment: bool,
}

fn one() -> f32 {
    1.0
}

impl Default for ViewSpec {
    fn default() -> Self {
        Self::global()
    }
}

impl ViewSpec {
    /// The plain training view (MAE, Volume Fusion): global, not augmented.
    pub fn global() -> Self {
        Self {
            kind: ViewKind::Global,
            extent: 1.0,
            axes: Vec::new(),
            augment: false,
        }
    }

    /// A local view keeping `extent` of the global extent along `axes` (empty: all).
    pub fn local(extent: f32, axes: Vec<usize>) -> Self {
        Self {
            kind: ViewKind::Local,
            extent,
            axes,
            augment: false,
        }
    }

    pub fn augmented(mut self, augment: bool) -> Self {
        self.augment = augment;
        self
    }

    /// This view of a global training view: the view itself, or for a local view its
    /// [`local_crop`].
    pub fn cut(&self, global: SampleTokens, rng: &mut Rng) -> SampleTokens {
        match self.kind {
            ViewKind::Global => global,
            ViewKind::Local => local_crop(&global, self.extent, &self.axes, rng),
        }
    }

    /// Checks the extent and that every axis exists for tokens with `k` coordinates.
    pub fn validate(&self, k: usize) -> Result<(), TokenError> {
        if !(self.extent > 0.0 && self.extent <= 1.0) {
            return Err(TokenError::Mask(format!(
                "view extent must be in (0, 1], got {}",
                self.extent
            )));
        }
        if let Some(a) = self.axes.iter().find(|&&a| a >= k) {
            return Err(TokenError::Mask(format!(
                "view axis {a} does not exist: tokens have {k} coordinate(s)"
            )));
        }
        Ok(())
    }
}

/// A random window of `sample` covering `extent` of its coordinate range along each of
/// `axes` (empty: every axis with a non-zero range): the tokens whose coordinates fall in
/// the window, in their original order. The window's start is uniform over the positions
/// that keep it inside the range. At least one token is kept (the one nearest the window's
/// centre when none falls inside). `extent = 1` returns the sample unchanged; an empty
/// sample stays empty.
pub fn local_crop(
    sample: &SampleTokens,
    extent: f32,
    axes: &[usize],
    rng: &mut Rng,
) -> SampleTokens {
    let (n, k) = (sample.n, sample.k);
    if n == 0 || extent >= 1.0 {
        return sample.clone();
    }
    let all: Vec<usize> = (0..k).collect();
    let axes = if axes.is_empty() { &all[..] } else { axes };
    // Per axis: the window [lo, hi] and its centre.
    let mut windows = Vec::with_capacity(axes.len());
    for &a in axes.iter().filter(|&&a| a < k) {
        let (mut min, mut max) = (f32::INFINITY, f32::NEG_INFINITY);
        for i in 0..n {
            let c = sample.coords[i * k + a];
            min = min.min(c);
            max = max.max(c);
        }
        let range = max - min;
        if range.is_nan() || range <= 0.0 {
            continue;
        }
        let w = extent * range;
        let lo = min + (range - w) * rng.uniform() as f32;
        windows.push((a, lo, lo + w));
    }
    let inside = |i: usize| {
        windows
            .iter()
            .all(|&(a, lo, hi)| (lo..=hi).contains(&sample.coords[i * k + a]))
    };
    let mut keep: Vec<usize> = (0..n).filter(|&i| inside(i)).collect();
    if keep.is_empty() {
        let dist = |i: usize| -> f32 {
            windows
                .iter()
                .map(|&(a, lo, hi)| (sample.coords[i * k + a] - 0.5 * (lo + hi)).powi(2))
                .sum()
        };
        let best = (0..n)
            .min_by(|&x, &y| dist(x).total_cmp(&dist(y)))
            .unwrap_or(0);
        keep.push(best);
    }
    sample.select(&keep)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(nx: usize, ny: usize) -> SampleTokens {
        let n = nx * ny;
        let mut coords = Vec::with_capacity(2 * n);
        for y in 0..ny {
            for x in 0..nx {
                coords.extend([x as f32, 10.0 * y as f32]);
            }
        }
        let values = (0..n).map(|i| i as f32).collect();
        SampleTokens::new(values, coords, n, 1, 2).unwrap()
    }

    #[test]
    fn a_crop_keeps_a_window_of_the_requested_extent() {
        let s = grid(20, 10);
        let mut rng = Rng::new(4);
        for _ in 0..50 {
            let c = local_crop(&s, 0.5, &[0], &mut rng);
            // x range 19 → a window of 9.5 holds 9 or 10 columns, every row kept.
            let xs: Vec<f32> = c.coords.chunks(2).map(|r| r[0]).collect();
            let (lo, hi) = xs
                .iter()
                .fold((f32::MAX, f32::MIN), |m, &x| (m.0.min(x), m.1.max(x)));
            assert!(hi - lo <= 9.5 + 1e-4, "{lo}..{hi}");
            assert!(c.n == 90 || c.n == 100, "{}", c.n);
            // Values travel with their coordinates.
            for (v, r) in c.values.iter().zip(c.coords.chunks(2)) {
                assert_eq!(*v, r[0] + 20.0 * (r[1] / 10.0));
            }
        }
        // Both axes: about a quarter of the tokens.
        let c = local_crop(&s, 0.5, &[], &mut rng);
        assert!((40..=60).contains(&c.n), "{}", c.n);
    }

    #[test]
    fn crops_are_seeded_and_never_empty() {
        let s = grid(8, 1);
        let a = local_crop(&s, 0.3, &[], &mut Rng::new(1));
        let b = local_crop(&s, 0.3, &[], &mut Rng::new(1));
        assert_eq!(a, b);
        let tiny = local_crop(&s, 0.01, &[0], &mut Rng::new(2));
        assert_eq!(tiny.n, 1);
        assert_eq!(local_crop(&s, 1.0, &[0], &mut Rng::new(2)), s);
        let one = grid(1, 1);
        assert_eq!(local_crop(&one, 0.2, &[], &mut Rng::new(3)), one);
    }

    #[test]
    fn specs_validate_and_parse() {
        assert!(ViewSpec::local(0.4, vec![0]).validate(2).is_ok());
        assert!(ViewSpec::local(0.0, vec![]).validate(2).is_err());
        assert!(ViewSpec::local(0.5, vec![3]).validate(2).is_err());
        let s: ViewSpec = toml::from_str("kind = \"local\"\nextent = 0.4\naugment = true").unwrap();
        assert_eq!(s, ViewSpec::local(0.4, vec![]).augmented(true));
        assert!(toml::from_str::<ViewSpec>("kind = \"local\"\nextnt = 0.4").is_err());
    }
}
