//! What a token means: widths, units, and how to undo the tokenization.

use serde::{Deserialize, Serialize};

/// One coordinate axis: its name and physical unit (e.g. `time`, `s`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CoordAxis {
    pub name: String,
    pub unit: String,
    /// Typical extent of this axis in its unit; the encoder's Fourier encoding uses it to
    /// choose wavelengths (largest wavelength about `4 * scale`).
    pub scale: f32,
}

/// How tokens map back onto the natural array (needed for MAE targets and decoders).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TokenLayout {
    /// Non-overlapping 2-D patches of a `[channels, rows, cols]` array, token-major in
    /// row-major grid order; each token holds `channels * patch[0] * patch[1]` values
    /// ordered (channel, row, col).
    Patch2d {
        channels: usize,
        patch: [usize; 2],
        stride: [usize; 2],
    },
    /// Non-overlapping 3-D patches of a `[channels, d, h, w]` array.
    Patch3d { channels: usize, patch: [usize; 3] },
    /// Tokens with no grid (point groups, channel windows): no generic inverse.
    Set,
}

/// Names P, K, the units and the layout of a domain's tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenSpec {
    /// Values per token.
    pub p: usize,
    /// Coordinates per token.
    pub k: usize,
    /// What a value is (e.g. `normalised log-mel`).
    pub value_unit: String,
    pub axes: Vec<CoordAxis>,
    pub layout: TokenLayout,
}

impl TokenSpec {
    pub fn scales(&self) -> Vec<f32> {
        self.axes.iter().map(|a| a.scale).collect()
    }
}
