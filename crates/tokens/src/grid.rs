//! The description of an ONNX grid front: how a modality's natural array (`[B,1,F,T]`
//! log-mel for audio, `[B,C,Z,Y,X]` crops for volumes) becomes tokens inside the graph.
//! Plain data, so a candle-free domain library can describe its own front; the exporter
//! (`tessera-export`) turns it into graph nodes.

use crate::TokenError;
use serde::{Deserialize, Serialize};

/// Coordinate of the patch at grid index `j` along one axis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AxisCoords {
    /// `offset + step · j` (dynamic axes: time, millimetres).
    Affine { offset: f32, step: f32 },
    /// A fixed table (e.g. mel-band centre frequencies); inputs may not have more patches
    /// along this axis than the table holds.
    Table { values: Vec<f32> },
}

/// One spatial axis of the grid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GridAxis {
    pub name: String,
    pub patch: usize,
    pub coords: AxisCoords,
    /// Position of this axis's coordinate in the token's `coords` (e.g. a `[Z, Y, X]` array
    /// gives `(R, A, S)` coordinates with indices 2, 1, 0).
    pub coord_index: usize,
}

/// A grid front: `channels` input channels, spatial axes in array order (each gives one
/// coordinate, at its `coord_index`), optional global normalisation `(x - mean) / std`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GridFront {
    pub channels: usize,
    pub axes: Vec<GridAxis>,
    pub norm: Option<(f32, f32)>,
}

impl GridFront {
    /// Values per token this front produces.
    pub fn patch_dim(&self) -> usize {
        self.channels * self.axes.iter().map(|a| a.patch).product::<usize>()
    }

    /// Checks the front against an encoder taking `patch_dim` values and `k` coordinates.
    pub fn validate(&self, patch_dim: usize, k: usize) -> Result<(), TokenError> {
        let bad = |msg: String| Err(TokenError::Grid(msg));
        if self.axes.is_empty() || self.axes.iter().any(|a| a.patch == 0) || self.channels == 0 {
            return bad(
                "grid front needs channels > 0 and at least one axis with a positive patch".into(),
            );
        }
        let p = self.patch_dim();
        if p != patch_dim || self.axes.len() != k {
            return bad(format!(
                "grid front gives {p} values and {} coordinates per token; the encoder takes {patch_dim} and {k}",
                self.axes.len()
            ));
        }
        let mut idx: Vec<usize> = self.axes.iter().map(|a| a.coord_index).collect();
        idx.sort_unstable();
        if idx != (0..self.axes.len()).collect::<Vec<_>>() {
            return bad(format!(
                "grid axes' coord_index values {idx:?} are not a permutation of 0..{}",
                self.axes.len()
            ));
        }
        if let Some((_, s)) = self.norm {
            if !(s.is_finite() && s > 0.0) {
                return bad(format!("normalisation std {s} is not positive"));
            }
        }
        Ok(())
    }

    /// Axis names of the input, for the card.
    pub fn input_axes(&self) -> Vec<String> {
        let mut v = vec!["batch".to_string(), "channel".to_string()];
        v.extend(self.axes.iter().map(|a| a.name.clone()));
        v
    }
}
