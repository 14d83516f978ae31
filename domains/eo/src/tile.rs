//! Large scenes → windows: `tile` walks a scene's reference grid in `size × size` windows
//! with `overlap` pixels shared between neighbours (the last row and column of windows
//! end at the scene's edge), measures each window's nodata fraction on a reduced read, and
//! keeps the windows under `max_nodata`. Each window is a `scene#window=x,y,w,h` path that
//! every subcommand reads without loading the scene.

use crate::{EoError, EoFrontend};
use std::path::Path;

#[derive(Debug, Clone, Copy)]
pub struct TileSpec {
    pub size: usize,
    pub overlap: usize,
    pub max_nodata: f64,
}

/// One kept window: `(x, y, w, h)` and its nodata fraction.
pub type Window = ((usize, usize, usize, usize), f64);

/// Window starts along an axis of `len` pixels.
pub fn starts(len: usize, size: usize, step: usize) -> Vec<usize> {
    if len <= size {
        return vec![0];
    }
    let mut v: Vec<usize> = (0..)
        .map(|i| i * step)
        .take_while(|s| s + size < len)
        .collect();
    v.push(len - size);
    v.dedup();
    v
}

/// The windows of `path`'s scene, with their nodata fraction (all, kept or not, in row-major
/// order; the caller filters on `max_nodata`).
pub fn windows(fe: &EoFrontend, path: &Path, spec: TileSpec) -> Result<Vec<Window>, EoError> {
    if spec.size == 0 || spec.overlap >= spec.size {
        return Err(EoError::Config(format!(
            "tile size {} must be positive and larger than the overlap {}",
            spec.size, spec.overlap
        )));
    }
    let (scene, frag) = fe.scene(path)?;
    if frag.window.is_some() {
        return Err(EoError::Unusable {
            path: path.into(),
            reason: "already a window; tile the scene itself".into(),
        });
    }
    let step = spec.size - spec.overlap;
    let xs = starts(scene.width, spec.size, step);
    let ys = starts(scene.height, spec.size, step);
    // Nodata on a reduced grid (at most 32×32 per window).
    let red = spec.size.min(32);
    let mut out = Vec::with_capacity(xs.len() * ys.len());
    for &y in &ys {
        for &x in &xs {
            let w = spec.size.min(scene.width - x);
            let h = spec.size.min(scene.height - y);
            let (rw, rh) = (red.min(w), red.min(h));
            let data = scene.read((x, y, w, h), (rw, rh), fe.cfg.max_pixels, fe.cfg.complex)?;
            let bad = data.iter().filter(|v| !v.is_finite()).count();
            out.push(((x, y, w, h), bad as f64 / data.len().max(1) as f64));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::starts;

    #[test]
    fn starts_cover_the_axis() {
        assert_eq!(starts(100, 128, 128), vec![0]);
        assert_eq!(starts(256, 128, 128), vec![0, 128]);
        assert_eq!(starts(300, 128, 128), vec![0, 128, 172]);
        assert_eq!(starts(300, 128, 96), vec![0, 96, 172]);
        for len in 1..400 {
            for size in [16, 33, 64] {
                for step in [size / 2, size] {
                    let s = starts(len, size, step);
                    assert_eq!(s[0], 0);
                    assert_eq!(*s.last().unwrap() + size.min(len), len);
                    assert!(s.windows(2).all(|w| w[1] > w[0] && w[1] - w[0] <= step));
                }
            }
        }
    }
}
