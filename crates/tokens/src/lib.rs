//! The candle-free data contract shared by every Tessera domain.
//!
//! A domain turns a sample into [`SampleTokens`]: `values [N, P]` (what each token holds),
//! `coords [N, K]` (where it is, in physical units) and a [`TokenSpec`] that names P, K,
//! the units and how to undo the tokenization. [`Tokens::from_samples`] pads a ragged list
//! of samples into a batch `values [B, N, P]`, `coords [B, N, K]`, `padding [B, N]`.
//!
//! This crate has no numeric-framework dependency so that readers and tokenizers can be
//! reused by an ONNX-runtime-only application.

pub mod card;
pub mod grid;
pub mod mask;
pub mod modality;
pub mod resources;
pub mod rng;
pub mod spec;
pub mod stats;
pub mod views;

pub use card::ModelCard;
pub use grid::{AxisCoords, GridAxis, GridFront};
pub use mask::{
    block_mask, group_mask, mask_batch, random_mask, span_mask, BlockMaskConfig, GroupMaskConfig,
    MaskConfig, MaskStrategy, MaskedBatch, SpanMaskConfig,
};
pub use modality::{
    time_window, windows, with_time_window, BoxError, GridInput, InfoRow, Modality, Reader,
    Registry,
};
pub use rng::Rng;
pub use spec::{CoordAxis, TokenLayout, TokenSpec};
pub use stats::NormStats;
pub use views::{local_crop, ViewKind, ViewSpec};

/// Errors of the token contract.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token shape mismatch: {what}: expected {expected}, got {got}")]
    Shape {
        what: String,
        expected: usize,
        got: usize,
    },
    #[error("empty batch: no samples to batch")]
    EmptyBatch,
    #[error("non-finite value in {what} at index {index}")]
    NonFinite { what: String, index: usize },
    #[error("grid front: {0}")]
    Grid(String),
    #[error("model card: {0}")]
    Card(String),
    #[error("mask strategy: {0}")]
    Mask(String),
}

/// Tokens of one sample: `values [n, p]` and `coords [n, k]`, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleTokens {
    pub values: Vec<f32>,
    pub coords: Vec<f32>,
    pub n: usize,
    pub p: usize,
    pub k: usize,
}

impl SampleTokens {
    /// Builds a sample after checking that the buffers match `n`, `p` and `k`.
    pub fn new(
        values: Vec<f32>,
        coords: Vec<f32>,
        n: usize,
        p: usize,
        k: usize,
    ) -> Result<Self, TokenError> {
        if values.len() != n * p {
            return Err(TokenError::Shape {
                what: "values (n*p)".into(),
                expected: n * p,
                got: values.len(),
            });
        }
        if coords.len() != n * k {
            return Err(TokenError::Shape {
                what: "coords (n*k)".into(),
                expected: n * k,
                got: coords.len(),
            });
        }
        Ok(Self {
            values,
            coords,
            n,
            p,
            k,
        })
    }

    /// Token indices grouped by identical coordinates on `axes` (bit patterns, groups in
    /// the order of those patterns): an EEG electrode's tokens, a raster band's tokens.
    pub fn groups(&self, axes: std::ops::Range<usize>) -> Vec<Vec<usize>> {
        let mut g: std::collections::BTreeMap<Vec<u32>, Vec<usize>> = Default::default();
        for i in 0..self.n {
            let c = &self.coords[i * self.k + axes.start..i * self.k + axes.end];
            g.entry(c.iter().map(|v| v.to_bits()).collect())
                .or_default()
                .push(i);
        }
        g.into_values().collect()
    }

    /// Keeps only the tokens whose indices are listed (in that order).
    pub fn select(&self, idx: &[usize]) -> SampleTokens {
        let mut values = Vec::with_capacity(idx.len() * self.p);
        let mut coords = Vec::with_capacity(idx.len() * self.k);
        for &i in idx {
            values.extend_from_slice(&self.values[i * self.p..(i + 1) * self.p]);
            coords.extend_from_slice(&self.coords[i * self.k..(i + 1) * self.k]);
        }
        SampleTokens {
            values,
            coords,
            n: idx.len(),
            p: self.p,
            k: self.k,
        }
    }
}

/// A padded batch: `values [b, n, p]`, `coords [b, n, k]`, `padding [b, n]` (1 = filler).
#[derive(Debug, Clone, PartialEq)]
pub struct Tokens {
    pub values: Vec<f32>,
    pub coords: Vec<f32>,
    pub padding: Vec<u8>,
    pub b: usize,
    pub n: usize,
    pub p: usize,
    pub k: usize,
}

impl Tokens {
    /// Pads samples to the longest one. Filler tokens have zero values and coords and
    /// `padding = 1`.
    pub fn from_samples(samples: &[SampleTokens]) -> Result<Self, TokenError> {
        let first = samples.first().ok_or(TokenError::EmptyBatch)?;
        let (p, k) = (first.p, first.k);
        let n = samples.iter().map(|s| s.n).max().unwrap_or(0);
        let b = samples.len();
        let mut values = vec![0f32; b * n * p];
        let mut coords = vec![0f32; b * n * k];
        let mut padding = vec![1u8; b * n];
        for (i, s) in samples.iter().enumerate() {
            if s.p != p {
                return Err(TokenError::Shape {
                    what: format!("sample {i} token width P"),
                    expected: p,
                    got: s.p,
                });
            }
            if s.k != k {
                return Err(TokenError::Shape {
                    what: format!("sample {i} coord width K"),
                    expected: k,
                    got: s.k,
                });
            }
            values[i * n * p..i * n * p + s.n * p].copy_from_slice(&s.values);
            coords[i * n * k..i * n * k + s.n * k].copy_from_slice(&s.coords);
            padding[i * n..i * n + s.n].iter_mut().for_each(|x| *x = 0);
        }
        Ok(Self {
            values,
            coords,
            padding,
            b,
            n,
            p,
            k,
        })
    }

    /// Number of real (non-padding) tokens of sample `i`.
    pub fn len_of(&self, i: usize) -> usize {
        self.padding[i * self.n..(i + 1) * self.n]
            .iter()
            .filter(|&&x| x == 0)
            .count()
    }

    /// The real (non-padding) tokens of sample `i`, in order.
    pub fn sample(&self, i: usize) -> SampleTokens {
        let (n, p, k) = (self.n, self.p, self.k);
        let idx: Vec<usize> = (0..n).filter(|&j| self.padding[i * n + j] == 0).collect();
        let mut values = Vec::with_capacity(idx.len() * p);
        let mut coords = Vec::with_capacity(idx.len() * k);
        for &j in &idx {
            values.extend_from_slice(&self.values[(i * n + j) * p..(i * n + j + 1) * p]);
            coords.extend_from_slice(&self.coords[(i * n + j) * k..(i * n + j + 1) * k]);
        }
        SampleTokens {
            values,
            coords,
            n: idx.len(),
            p,
            k,
        }
    }

    /// The samples of several batches stacked into one (`Σ b` samples, padded anew to the
    /// longest): multi-crop recipes run all views of one size through one forward pass.
    pub fn cat(parts: &[&Tokens]) -> Result<Tokens, TokenError> {
        let samples: Vec<SampleTokens> = parts
            .iter()
            .flat_map(|t| (0..t.b).map(|i| t.sample(i)))
            .collect();
        Tokens::from_samples(&samples)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_pads_ragged_samples() {
        let a = SampleTokens::new(vec![1.0; 6], vec![0.5; 4], 2, 3, 2).unwrap();
        let b = SampleTokens::new(vec![2.0; 3], vec![0.25; 2], 1, 3, 2).unwrap();
        let t = Tokens::from_samples(&[a, b]).unwrap();
        assert_eq!((t.b, t.n, t.p, t.k), (2, 2, 3, 2));
        assert_eq!(t.padding, vec![0, 0, 0, 1]);
        assert_eq!(&t.values[6..9], &[2.0; 3]);
        assert_eq!(&t.values[9..12], &[0.0; 3]);
        assert_eq!(t.len_of(1), 1);
    }

    #[test]
    fn mismatched_widths_are_errors() {
        assert!(SampleTokens::new(vec![1.0; 5], vec![0.5; 4], 2, 3, 2).is_err());
        let a = SampleTokens::new(vec![1.0; 6], vec![0.5; 4], 2, 3, 2).unwrap();
        let b = SampleTokens::new(vec![2.0; 4], vec![0.25; 2], 1, 4, 2).unwrap();
        assert!(Tokens::from_samples(&[a, b]).is_err());
        assert!(Tokens::from_samples(&[]).is_err());
    }
}
