//! Deterministic Fourier encoding of K-dimensional physical coordinates.
//!
//! Axis `a` gets `F = D / (2K)` frequencies with wavelengths spaced geometrically from
//! `scale_a * min_wavelength` to `scale_a * max_wavelength` (in the axis's unit), and the
//! encoding is `[sin(2π c/λ), cos(2π c/λ)]` per axis, zero-padded to D. It is a plain
//! `coords @ W` followed by sin/cos, so it exports to ONNX as MatMul, Sin, Cos, Concat:
//! no position table to interpolate, any spacing and any token count.

use crate::{CoreError, Result};
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// Wavelength range of the coordinate encoding, as fractions of each axis's scale.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FourierConfig {
    pub min_wavelength: f32,
    pub max_wavelength: f32,
}

impl Default for FourierConfig {
    fn default() -> Self {
        Self {
            min_wavelength: 1.0 / 128.0,
            max_wavelength: 4.0,
        }
    }
}

/// The frequency matrix `W [K, K*F]` (block-diagonal, radians per unit) and the output width.
#[derive(Clone)]
pub struct FourierEncoding {
    pub w: Tensor,
    pub dim: usize,
    pub freqs_per_axis: usize,
}

/// Frequencies (radians per unit) for one axis.
pub fn axis_frequencies(scale: f32, f: usize, cfg: &FourierConfig) -> Vec<f32> {
    let lo = (scale * cfg.min_wavelength) as f64;
    let hi = (scale * cfg.max_wavelength) as f64;
    (0..f)
        .map(|j| {
            let t = if f > 1 {
                j as f64 / (f - 1) as f64
            } else {
                0.0
            };
            let lambda = lo * (hi / lo).powf(t);
            (2.0 * std::f64::consts::PI / lambda) as f32
        })
        .collect()
}

impl FourierEncoding {
    pub fn new(scales: &[f32], dim: usize, cfg: &FourierConfig, device: &Device) -> Result<Self> {
        let k = scales.len();
        if k == 0 || dim < 2 * k {
            return Err(CoreError::Config(format!(
                "coordinate encoding needs 1 <= K and 2K <= D (K={k}, D={dim})"
            )));
        }
        if let Some(s) = scales.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(CoreError::Config(format!(
                "coordinate scale must be positive and finite, got {s}"
            )));
        }
        let f = dim / (2 * k);
        let mut w = vec![0f32; k * k * f];
        for (a, &s) in scales.iter().enumerate() {
            for (j, fr) in axis_frequencies(s, f, cfg).into_iter().enumerate() {
                w[a * k * f + a * f + j] = fr;
            }
        }
        Ok(Self {
            w: Tensor::from_vec(w, (k, k * f), device)?,
            dim,
            freqs_per_axis: f,
        })
    }

    /// # Shapes
    /// `coords [B, N, K]` → `[B, N, D]`
    pub fn forward(&self, coords: &Tensor) -> Result<Tensor> {
        let (b, n, k) = coords.dims3()?;
        let ang = coords.reshape((b * n, k))?.matmul(&self.w)?;
        let mut parts = vec![ang.sin()?, ang.cos()?];
        let used = 2 * k * self.freqs_per_axis;
        if used < self.dim {
            parts.push(Tensor::zeros(
                (b * n, self.dim - used),
                coords.dtype(),
                coords.device(),
            )?);
        }
        Ok(Tensor::cat(&parts, 1)?.reshape((b, n, self.dim))?)
    }
}
