//! Graph nodes of the optional grid front ([`GridFront`], described in `tessera-tokens`):
//! the natural array of a grid modality (`[B,1,F,T]` log-mel for audio, `[B,C,D,H,W]` crops for volumes) is normalised, cropped to whole patches,
//! patchified and given coordinates inside the graph, with every spatial size dynamic.
//! Token order and value order match the Rust tokenizers: tokens row-major over the patch
//! grid, values ordered (channel, then patch axes row-major).

use crate::builder::GraphBuilder;
use crate::proto::{Attr, DataType, TensorProto};
pub use tessera_tokens::grid::{AxisCoords, GridAxis, GridFront};

/// Graph building for a [`GridFront`].
pub trait GridBuild {
    /// Appends the front to `g`; returns `(values [B,N,P], coords [B,N,K], padding [B,N])`.
    fn build(&self, g: &mut GraphBuilder, grid: &str) -> (String, String, String);
}

impl GridBuild for GridFront {
    fn build(&self, g: &mut GraphBuilder, grid: &str) -> (String, String, String) {
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
