//! The optional grid front: the natural array of a grid modality (`[B,1,F,T]` log-mel for
//! audio, `[B,C,D,H,W]` crops for volumes) is normalised, cropped to whole patches,
//! patchified and given coordinates inside the graph, with every spatial size dynamic.
//! Token order and value order match the Rust tokenizers: tokens row-major over the patch
//! grid, values ordered (channel, then patch axes row-major).

use crate::builder::GraphBuilder;
use crate::proto::{Attr, DataType, TensorProto};
use crate::{ExportError, Result};
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
    pub fn validate(&self, patch_dim: usize, k: usize) -> Result<()> {
        let p: usize = self.channels * self.axes.iter().map(|a| a.patch).product::<usize>();
        if self.axes.is_empty() || self.axes.iter().any(|a| a.patch == 0) || self.channels == 0 {
            return Err(ExportError::Unsupported(
                "grid front needs channels > 0 and at least one axis with a positive patch".into(),
            ));
        }
        if p != patch_dim || self.axes.len() != k {
            return Err(ExportError::Mismatch(format!(
                "grid front gives {p} values and {} coordinates per token; the encoder takes {patch_dim} and {k}",
                self.axes.len()
            )));
        }
        let mut idx: Vec<usize> = self.axes.iter().map(|a| a.coord_index).collect();
        idx.sort_unstable();
        if idx != (0..self.axes.len()).collect::<Vec<_>>() {
            return Err(ExportError::Unsupported(format!(
                "grid axes' coord_index values {idx:?} are not a permutation of 0..{}",
                self.axes.len()
            )));
        }
        if let Some((_, s)) = self.norm {
            if !(s.is_finite() && s > 0.0) {
                return Err(ExportError::Mismatch(format!(
                    "normalisation std {s} is not positive"
                )));
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

    /// Appends the front to `g`; returns `(values [B,N,P], coords [B,N,K], padding [B,N])`.
    pub fn build(&self, g: &mut GraphBuilder, grid: &str) -> (String, String, String) {
        let n_ax = self.axes.len();
        let mut x = grid.to_string();
        if let Some((m, s)) = self.norm {
            let m = g.scalar(m);
            let s = g.scalar(s);
            let c = g.op("Sub", &[&x, &m], vec![]);
            x = g.op("Div", &[&c, &s], vec![]);
        }
        // Patches per axis and the crop to whole patches.
        let mut counts = Vec::with_capacity(n_ax);
        let mut ends = Vec::with_capacity(n_ax);
        for (i, a) in self.axes.iter().enumerate() {
            let size = g.dim_of(&x, 2 + i as i64);
            let p = g.const_i64(&[1], &[a.patch as i64]);
            let n = g.op("Div", &[&size, &p], vec![]);
            ends.push(g.op("Mul", &[&n, &p], vec![]));
            counts.push(n);
        }
        let starts = g.const_i64(&[n_ax], &vec![0; n_ax]);
        let ends_v = g.concat_shape(&ends.iter().map(|s| s.as_str()).collect::<Vec<_>>());
        let axes = g.const_i64(&[n_ax], &(2..2 + n_ax as i64).collect::<Vec<_>>());
        let x = g.op("Slice", &[&x, &starts, &ends_v, &axes], vec![]);
        // [B, C, n1, p1, …, nG, pG] → [B, n1…nG, C, p1…pG] → [B, N, P].
        let lead = g.const_i64(&[2], &[0, self.channels as i64]);
        let mut parts = vec![lead];
        for (a, n) in self.axes.iter().zip(&counts) {
            parts.push(n.clone());
            parts.push(g.const_i64(&[1], &[a.patch as i64]));
        }
        let shape = g.concat_shape(&parts.iter().map(|s| s.as_str()).collect::<Vec<_>>());
        let x = g.op("Reshape", &[&x, &shape], vec![]);
        let mut perm = vec![0i64];
        perm.extend((0..n_ax).map(|i| 2 + 2 * i as i64));
        perm.push(1);
        perm.extend((0..n_ax).map(|i| 3 + 2 * i as i64));
        let x = g.op("Transpose", &[&x], vec![("perm", Attr::Ints(perm))]);
        let p: usize = self.channels * self.axes.iter().map(|a| a.patch).product::<usize>();
        let shape = g.const_i64(&[3], &[0, -1, p as i64]);
        let values = g.op("Reshape", &[&x, &shape], vec![]);
        // Coordinates: one vector per axis, broadcast over the grid.
        let grid_shape = g.concat_shape(&counts.iter().map(|s| s.as_str()).collect::<Vec<_>>());
        let last = g.const_i64(&[1], &[-1]);
        let mut per_axis = Vec::with_capacity(n_ax);
        for (i, (a, n)) in self.axes.iter().zip(&counts).enumerate() {
            let c = match &a.coords {
                AxisCoords::Affine { offset, step } => {
                    let zero = g.const_i64(&[], &[0]);
                    let one = g.const_i64(&[], &[1]);
                    let n0 = g.op("Squeeze", &[n], vec![]);
                    let idx = g.op("Range", &[&zero, &n0, &one], vec![]);
                    let idx = g.op(
                        "Cast",
                        &[&idx],
                        vec![("to", Attr::Int(DataType::Float as i64))],
                    );
                    let step = g.scalar(*step);
                    let offset = g.scalar(*offset);
                    let c = g.mul(&idx, &step);
                    g.add(&c, &offset)
                }
                AxisCoords::Table { values } => {
                    let t = g.const_f32(&[values.len()], values);
                    let zero = g.const_i64(&[1], &[0]);
                    g.op("Slice", &[&t, &zero, n], vec![])
                }
            };
            let mut s = vec![1i64; n_ax];
            s[i] = -1;
            let s = g.const_i64(&[n_ax], &s);
            let c = g.op("Reshape", &[&c, &s], vec![]);
            let c = g.op("Expand", &[&c, &grid_shape], vec![]);
            per_axis.push((a.coord_index, g.op("Unsqueeze", &[&c, &last], vec![])));
        }
        per_axis.sort();
        let c = g.op(
            "Concat",
            &per_axis.iter().map(|(_, s)| s.as_str()).collect::<Vec<_>>(),
            vec![("axis", Attr::Int(-1))],
        );
        let shape = g.const_i64(&[3], &[1, -1, n_ax as i64]);
        let c = g.op("Reshape", &[&c, &shape], vec![]);
        let b = g.dim_of(&values, 0);
        let ones = g.const_i64(&[2], &[1, 1]);
        let bshape = g.concat_shape(&[&b, &ones]);
        let coords = g.op("Expand", &[&c, &bshape], vec![]);
        // No filler: padding is zeros [B, N].
        let bn = g.op("Shape", &[&values], vec![]);
        let s0 = g.const_i64(&[1], &[0]);
        let s2 = g.const_i64(&[1], &[2]);
        let bn = g.op("Slice", &[&bn, &s0, &s2], vec![]);
        let padding = g.op(
            "ConstantOfShape",
            &[&bn],
            vec![(
                "value",
                Attr::Tensor(TensorProto::f32("value", &[1], &[0.0])),
            )],
        );
        (values, coords, padding)
    }
}
