//! Direct 3-D convolution of channel-last volumes on the CPU, for the few-channel decoders
//! of segmentation heads (9 → 16 channels, 3³ kernels).
//!
//! The unfolded form (`k³·C` neighbour values per voxel, then one GEMM) writes and reads a
//! buffer `k³` times the input, and its GEMMs have 16 output columns or a 16-deep
//! reduction, where packing costs as much as the arithmetic: 168 ms forward and 453 ms
//! forward plus backward for a batch of 4 × 32³ voxels on one core. Here the output
//! channels of a voxel stay in registers (16 at a time) while it walks its neighbours,
//! four neighbouring voxels along x at once so that each weight row loaded serves four
//! sums: forward and input gradient are the same walk (the input gradient over the
//! mirrored offsets with the transposed weights), and the weight gradient is summed per
//! chunk of slices, the chunks added in order. Every output element is summed in one
//! fixed order (offsets, then channels; voxels in order for the weight gradient) with
//! plain multiplies and adds, no fused multiply-add, so results do not depend on the
//! CPU's vector width, the thread count or which voxels share a walk.

use crate::ops::{contiguous, simd};
use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

/// Output (or input-gradient) channels held in registers at a time.
const BLOCK: usize = 16;
/// Neighbouring voxels along x that share one walk over the weights.
const GROUP: usize = 4;
/// Chunks of `(batch, z)` slices of the weight-gradient reduction, at most (a fixed count,
/// so the order of the sum does not depend on the thread count).
const MAX_CHUNKS: usize = 64;

/// Shape `[B, Z, Y, X, C]` of a channel-last volume layout.
fn dims5(l: &Layout, op: &str) -> candle_core::Result<[usize; 5]> {
    match l.dims() {
        &[b, z, y, x, c] => Ok([b, z, y, x, c]),
        d => candle_core::bail!("{op}: expected [B, Z, Y, X, C], got {d:?}"),
    }
}

/// `w [rows, cols]` → blocks of [`BLOCK`] columns, each `[cols/BLOCK][rows][BLOCK]` with the
/// last block zero-padded: the operand layout of [`gather`]. `transpose` reads `w` as
/// `[cols, rows]` instead.
fn blocked(w: &[f32], rows: usize, cols: usize, transpose: bool) -> Vec<f32> {
    let blocks = cols.div_ceil(BLOCK);
    let mut out = vec![0f32; blocks * rows * BLOCK];
    for r in 0..rows {
        for c in 0..cols {
            let v = if transpose {
                w[c * rows + r]
            } else {
                w[r * cols + c]
            };
            out[((c / BLOCK) * rows + r) * BLOCK + c % BLOCK] = v;
        }
    }
    out
}

/// `a[j] += x · w[j]` for a block of [`BLOCK`] lanes.
#[inline(always)]
fn axpy(a: &mut [f32; BLOCK], x: f32, w: &[f32]) {
    let w: &[f32; BLOCK] = w.try_into().expect("a block of BLOCK values");
    for j in 0..BLOCK {
        a[j] += x * w[j];
    }
}

/// Calls `f(o, n, len)` for every run of neighbours of voxel `p = (z, y, x)` along x that
/// lies inside the volume: offsets `o..o + len` (index of `(dz, dy, dx)` in `k³`, `dx`
/// fastest) hold the voxels `n..n + len` (indices inside one `[Z, Y, X]` volume), so a
/// run's values and its weight rows are both contiguous. Zero padding is skipped.
#[inline(always)]
fn each_run(p: [usize; 3], k: usize, dims: [usize; 3], mut f: impl FnMut(usize, usize, usize)) {
    let h = k / 2;
    // Offsets d of one axis whose neighbour p + d - h lies in 0..n.
    let valid = |a: usize| -> (usize, usize) {
        let lo = h.saturating_sub(p[a]);
        let hi = (dims[a] + h - p[a]).min(k);
        (lo, hi.max(lo))
    };
    let ((z0, z1), (y0, y1), (x0, x1)) = (valid(0), valid(1), valid(2));
    if x1 == x0 {
        return;
    }
    for dz in z0..z1 {
        for dy in y0..y1 {
            let n = ((p[0] + dz - h) * dims[1] + p[1] + dy - h) * dims[2] + p[2] + x0 - h;
            f((dz * k + dy) * k + x0, n, x1 - x0);
        }
    }
}

/// Calls `f(x, n)` for the voxels of one line along x of `n_x` voxels: `n = GROUP` for
/// each group of voxels `x..x + GROUP` whose neighbourhoods lie inside the line (so their
/// runs along x are whole and equally long), `n = 1` for the voxels near the ends.
#[inline(always)]
fn each_group(n_x: usize, k: usize, mut f: impl FnMut(usize, usize)) {
    let h = k / 2;
    let mut x = 0;
    while x < n_x {
        let n = if x >= h && x + GROUP + h <= n_x {
            GROUP
        } else {
            1
        };
        f(x, n);
        x += n;
    }
}

/// The first `n` (1 or [`GROUP`]) of `GROUP` sums `acc[j] += Σ_t src[j·stride + t] ·
/// w[t]` over the rows `t` of `w` ([`BLOCK`] values each).
#[inline(always)]
fn dot_rows(acc: &mut [[f32; BLOCK]; GROUP], n: usize, src: &[f32], stride: usize, w: &[f32]) {
    let rows = w.chunks_exact(BLOCK);
    if n == GROUP {
        let m = w.len() / BLOCK;
        let x: [&[f32]; GROUP] = std::array::from_fn(|j| &src[j * stride..j * stride + m]);
        let [a0, a1, a2, a3] = acc;
        for ((((wr, &x0), &x1), &x2), &x3) in rows.zip(x[0]).zip(x[1]).zip(x[2]).zip(x[3]) {
            axpy(a0, x0, wr);
            axpy(a1, x1, wr);
            axpy(a2, x2, wr);
            axpy(a3, x3, wr);
        }
    } else {
        for (&x, wr) in src.iter().zip(rows) {
            axpy(&mut acc[0], x, wr);
        }
    }
}

/// Fills `out` (`b` volumes of `dims` voxels, `width` values per voxel) with
/// `out[v][c] = init[c] + Σ_(o, n) Σ_i src[n·src_width + i] · wb[o·src_width + i][c]` over
/// the neighbours `(o, n)` of each voxel `v` ([`each_run`]), [`BLOCK`] outputs at a time
/// from the blocked operand `wb` (`k³·src_width` rows per block) and [`GROUP`] voxels at a
/// time. One parallel task per `(batch, z)` slice.
#[allow(clippy::too_many_arguments)]
fn gather(
    out: &mut [f32],
    width: usize,
    init: &[f32],
    src: &[f32],
    src_width: usize,
    wb: &[f32],
    k: usize,
    dims: [usize; 3],
) {
    let [z, y, xw] = dims;
    let vol = z * y * xw;
    let rows = k * k * k * src_width;
    if out.is_empty() {
        return;
    }
    out.par_chunks_mut(y * xw * width)
        .enumerate()
        .for_each(|(bz, slice)| {
            let (bi, zi) = (bz / z, bz % z);
            let src = &src[bi * vol * src_width..(bi + 1) * vol * src_width];
            simd(
                #[inline(always)]
                || {
                    for (yi, line) in slice.chunks_mut(xw * width).enumerate() {
                        each_group(xw, k, |x0, n| {
                            for (blk, start) in init.chunks(BLOCK).enumerate() {
                                let w = &wb[blk * rows * BLOCK..(blk + 1) * rows * BLOCK];
                                let mut acc = [[0f32; BLOCK]; GROUP];
                                for a in &mut acc[..n] {
                                    a[..start.len()].copy_from_slice(start);
                                }
                                each_run([zi, yi, x0], k, dims, |o, v, len| {
                                    let x = &src[v * src_width..(v + len + n - 1) * src_width];
                                    let wo =
                                        &w[o * src_width * BLOCK..(o + len) * src_width * BLOCK];
                                    dot_rows(&mut acc, n, x, src_width, wo);
                                });
                                for (j, a) in acc[..n].iter().enumerate() {
                                    let cell = &mut line[(x0 + j) * width..(x0 + j + 1) * width];
                                    let c = &mut cell[blk * BLOCK..];
                                    let m = c.len().min(BLOCK);
                                    c[..m].copy_from_slice(&a[..m]);
                                }
                            }
                        });
                    }
                },
            )
        });
}

/// `y [B, Z, Y, X, out] = conv(x [B, Z, Y, X, in], w [out, k³·in]) + b`, zero padding of
/// `k/2` ("same" size); `w`'s columns are ordered `(dz, dy, dx, in)` as
/// [`crate::ops::unfold3d_composed`] orders its values.
struct Conv3dOp {
    k: usize,
}

impl CustomOp3 for Conv3dOp {
    fn name(&self) -> &'static str {
        "tessera-conv3d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous(s1, l1, "conv3d")?;
        let w = contiguous(s2, l2, "conv3d")?;
        let bias = contiguous(s3, l3, "conv3d")?;
        let [b, z, y, xw, cin] = dims5(l1, "conv3d")?;
        let k = self.k;
        let rows = k * k * k * cin;
        let cout = bias.len();
        if w.len() != cout * rows {
            candle_core::bail!(
                "conv3d: weight has {} values, expected [{cout}, {rows}] for {cin} input channels",
                w.len()
            );
        }
        let wb = blocked(w, rows, cout, true);
        let dims = [z, y, xw];
        let vol = z * y * xw;
        let mut out = vec![0f32; b * vol * cout];
        gather(&mut out, cout, bias, x, cin, &wb, k, dims);
        Ok((CpuStorage::F32(out), Shape::from(vec![b, z, y, xw, cout])))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = grad.contiguous()?;
        let k = self.k;
        let dx = g.apply_op2_no_bwd(w, &InputGrad { k })?;
        let dwb = g.apply_op2_no_bwd(x, &WeightGrad { k })?;
        let cout = w.dim(0)?;
        let dw = dwb.narrow(1, 0, w.dim(1)?)?.contiguous()?;
        let db = dwb.narrow(1, w.dim(1)?, 1)?.reshape(cout)?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

/// `dX [B, Z, Y, X, in]` from `dY [B, Z, Y, X, out]` and `w [out, k³·in]`: each input voxel
/// gathers `W_oᵀ·dY` from the voxels whose neighbourhood holds it at offset `o`.
struct InputGrad {
    k: usize,
}

impl candle_core::CustomOp2 for InputGrad {
    fn name(&self) -> &'static str {
        "tessera-conv3d-input-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = contiguous(s1, l1, "conv3d-input-grad")?;
        let w = contiguous(s2, l2, "conv3d-input-grad")?;
        let [b, z, y, xw, cout] = dims5(l1, "conv3d-input-grad")?;
        let k = self.k;
        let kkk = k * k * k;
        let cin = w.len() / (cout * kkk).max(1);
        // The voxels whose neighbourhood holds voxel u at offset o are u's neighbours at the
        // mirrored offset k³ − 1 − o, so the adjoint is the same walk with Wᵀ per mirrored
        // offset: rows (o, out), columns in: [k³·out, in].
        let mut wt = vec![0f32; kkk * cout * cin];
        for co in 0..cout {
            for o in 0..kkk {
                for ci in 0..cin {
                    wt[(o * cout + co) * cin + ci] = w[co * kkk * cin + (kkk - 1 - o) * cin + ci];
                }
            }
        }
        let rows = kkk * cout;
        let wb = blocked(&wt, rows, cin, false);
        let dims = [z, y, xw];
        let vol = z * y * xw;
        let zeros = vec![0f32; cin];
        let mut out = vec![0f32; b * vol * cin];
        gather(&mut out, cin, &zeros, g, cout, &wb, k, dims);
        Ok((CpuStorage::F32(out), Shape::from(vec![b, z, y, xw, cin])))
    }
}

/// `[dW | db]` as `[out, k³·in + 1]` from `dY [B, Z, Y, X, out]` and `x [B, Z, Y, X, in]`:
/// `dW[c, (o, i)] = Σ_v dY[v, c]·x[n(v, o), i]` and `db[c] = Σ_v dY[v, c]`. Each row
/// `(o, i)` (four input channels at a time) keeps [`BLOCK`] output channels in registers
/// while it runs over the voxels of a chunk of `(batch, z)` slices in order; the chunks are
/// added in order.
struct WeightGrad {
    k: usize,
}

impl candle_core::CustomOp2 for WeightGrad {
    fn name(&self) -> &'static str {
        "tessera-conv3d-weight-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = contiguous(s1, l1, "conv3d-weight-grad")?;
        let x = contiguous(s2, l2, "conv3d-weight-grad")?;
        let [b, z, y, xw, cout] = dims5(l1, "conv3d-weight-grad")?;
        let [.., cin] = dims5(l2, "conv3d-weight-grad")?;
        let k = self.k;
        let h = k / 2;
        let rows = k * k * k * cin;
        let blocks = cout.div_ceil(BLOCK);
        let voxels = b * z * y * xw;
        // dY blocked as [blocks][voxel][BLOCK], the last block zero-padded.
        let gb = blocked(g, voxels, cout, false);
        let slices = b * z;
        let chunks = slices.clamp(1, MAX_CHUNKS);
        // One chunk's sums, as [blocks][rows + 1][BLOCK] (the last row: db).
        let partial = |c: usize| -> Vec<f32> {
            let mut out = vec![0f32; blocks * (rows + 1) * BLOCK];
            let (s0, s1) = (c * slices / chunks, (c + 1) * slices / chunks);
            simd(
                #[inline(always)]
                || {
                    for blk in 0..blocks {
                        let gblk = &gb[blk * voxels * BLOCK..(blk + 1) * voxels * BLOCK];
                        let ob = &mut out[blk * (rows + 1) * BLOCK..(blk + 1) * (rows + 1) * BLOCK];
                        // The sum of dY[v] over the voxels `(line, x0..x1)` of every line
                        // (y) of every slice of the chunk whose (z, y) offset by (dz, dy)
                        // stays inside the volume, with the x values at `x0 + dx − h`.
                        let each_line = |dz: usize, dy: usize, f: &mut dyn FnMut(usize, usize)| {
                            for s in s0..s1 {
                                let (bi, zi) = (s / z, s % z);
                                let Some(zz) = (zi + dz).checked_sub(h).filter(|&v| v < z) else {
                                    continue;
                                };
                                for yi in 0..y {
                                    let Some(yy) = (yi + dy).checked_sub(h).filter(|&v| v < y)
                                    else {
                                        continue;
                                    };
                                    f((s * y + yi) * xw, ((bi * z + zz) * y + yy) * xw);
                                }
                            }
                        };
                        for dz in 0..k {
                            for dy in 0..k {
                                for dx in 0..k {
                                    let o = (dz * k + dy) * k + dx;
                                    // Voxels x0..x1 of a line have their neighbour at dx inside.
                                    let x0 = h.saturating_sub(dx);
                                    let x1 = (xw + h).saturating_sub(dx).min(xw).max(x0);
                                    let mut ci = 0;
                                    while ci < cin {
                                        let n = if ci + GROUP <= cin { GROUP } else { 1 };
                                        let mut acc = [[0f32; BLOCK]; GROUP];
                                        each_line(dz, dy, &mut |line, nline| {
                                            let d = &gblk[(line + x0) * BLOCK..(line + x1) * BLOCK];
                                            let v0 = nline + x0 + dx - h;
                                            let xs = &x[v0 * cin..(v0 + x1 - x0) * cin];
                                            dot_voxels(&mut acc, n, d, xs, cin, ci);
                                        });
                                        for (j, a) in acc[..n].iter().enumerate() {
                                            let r = o * cin + ci + j;
                                            ob[r * BLOCK..(r + 1) * BLOCK].copy_from_slice(a);
                                        }
                                        ci += n;
                                    }
                                }
                            }
                        }
                        let mut db = [0f32; BLOCK];
                        for s in s0..s1 {
                            let d = &gblk[s * y * xw * BLOCK..(s + 1) * y * xw * BLOCK];
                            for dv in d.chunks_exact(BLOCK) {
                                axpy(&mut db, 1.0, dv);
                            }
                        }
                        ob[rows * BLOCK..].copy_from_slice(&db);
                    }
                },
            );
            out
        };
        let parts: Vec<Vec<f32>> = (0..chunks).into_par_iter().map(partial).collect();
        let mut parts = parts.into_iter();
        let mut sum = parts.next().unwrap_or_default();
        for p in parts {
            sum.iter_mut().zip(&p).for_each(|(a, v)| *a += v);
        }
        // Blocked [blocks][rows + 1][BLOCK] → [out, rows + 1].
        let mut out = vec![0f32; cout * (rows + 1)];
        for co in 0..cout {
            for r in 0..=rows {
                out[co * (rows + 1) + r] =
                    sum[((co / BLOCK) * (rows + 1) + r) * BLOCK + co % BLOCK];
            }
        }
        Ok((CpuStorage::F32(out), Shape::from((cout, rows + 1))))
    }
}

/// `acc[j] += Σ_v xs[v·stride + c + j] · d[v]` over the voxels `v` of `d` ([`BLOCK`] values
/// each), for the first `n` (1 or [`GROUP`]) of the channels from `c`.
#[inline(always)]
fn dot_voxels(
    acc: &mut [[f32; BLOCK]; GROUP],
    n: usize,
    d: &[f32],
    xs: &[f32],
    stride: usize,
    c: usize,
) {
    let voxels = d.chunks_exact(BLOCK).zip(xs.chunks_exact(stride));
    if n == GROUP {
        let [a0, a1, a2, a3] = acc;
        for (dv, xv) in voxels {
            let x: &[f32; GROUP] = xv[c..c + GROUP].try_into().expect("GROUP channels");
            axpy(a0, x[0], dv);
            axpy(a1, x[1], dv);
            axpy(a2, x[2], dv);
            axpy(a3, x[3], dv);
        }
    } else {
        for (dv, xv) in voxels {
            axpy(&mut acc[0], xv[c], dv);
        }
    }
}

/// `x [B, Z, Y, X, in]` convolved with `w [out, k³·in]` plus `b [out]`, "same" zero padding,
/// fused on the CPU (see the module notes). The caller checks [`crate::ops::composed`] first.
pub(crate) fn conv3d(x: &Tensor, w: &Tensor, b: &Tensor, k: usize) -> candle_core::Result<Tensor> {
    x.contiguous()?
        .apply_op3(&w.contiguous()?, &b.contiguous()?, Conv3dOp { k })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::unfold3d_composed;
    use candle_core::{Device, Var};
    use tessera_tokens::Rng;

    fn randn(rng: &mut Rng, shape: &[usize]) -> Tensor {
        let n = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| rng.normal() as f32).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    /// `y` and the gradients of `Σ y·r` for x, w and b.
    fn run(
        f: impl Fn(&Tensor, &Tensor, &Tensor) -> Tensor,
        x: &Var,
        w: &Var,
        b: &Var,
        r: &Tensor,
    ) -> [Vec<f32>; 4] {
        let y = f(x.as_tensor(), w.as_tensor(), b.as_tensor());
        let g = (&y * r).unwrap().sum_all().unwrap().backward().unwrap();
        let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        [
            flat(&y),
            flat(g.get(x).unwrap()),
            flat(g.get(w).unwrap()),
            flat(g.get(b).unwrap()),
        ]
    }

    #[test]
    fn direct_convolution_matches_unfold_and_matmul_forward_and_backward() {
        let mut rng = Rng::new(3);
        // (dims [B, Z, Y, X], in, out, k): groups of four voxels and single ones along x,
        // two output blocks, channel counts that are not multiples of the group, k = 1 and 5.
        for (dims, cin, cout, k) in [
            ([2, 3, 4, 9], 9, 16, 3),
            ([1, 4, 3, 13], 5, 20, 3),
            ([1, 5, 6, 11], 2, 3, 5),
            ([2, 2, 3, 7], 1, 17, 1),
            ([1, 2, 2, 2], 4, 4, 3),
        ] {
            let [b, z, y, xw] = dims;
            let x = Var::from_tensor(&randn(&mut rng, &[b, z, y, xw, cin])).unwrap();
            let w = Var::from_tensor(&randn(&mut rng, &[cout, k * k * k * cin])).unwrap();
            let bias = Var::from_tensor(&randn(&mut rng, &[cout])).unwrap();
            let r = randn(&mut rng, &[b, z, y, xw, cout]);
            let direct = run(|x, w, b| conv3d(x, w, b, k).unwrap(), &x, &w, &bias, &r);
            let reference = run(
                |x, w, bb| {
                    unfold3d_composed(x, k)
                        .unwrap()
                        .reshape((b * z * y * xw, k * k * k * cin))
                        .unwrap()
                        .matmul(&w.t().unwrap())
                        .unwrap()
                        .broadcast_add(bb)
                        .unwrap()
                        .reshape((b, z, y, xw, cout))
                        .unwrap()
                },
                &x,
                &w,
                &bias,
                &r,
            );
            for (what, (a, e)) in ["y", "dx", "dw", "db"]
                .iter()
                .zip(direct.iter().zip(&reference))
            {
                assert_eq!(a.len(), e.len(), "{what} {dims:?}");
                for (u, v) in a.iter().zip(e) {
                    assert!(
                        (u - v).abs() <= 1e-4 * (1.0 + v.abs()),
                        "{what} {dims:?} in {cin} out {cout} k {k}: {u} vs {v}"
                    );
                }
            }
        }
    }

    #[test]
    fn an_empty_volume_gives_an_empty_output() {
        let x = Tensor::zeros((1, 0, 3, 4, 2), candle_core::DType::F32, &Device::Cpu).unwrap();
        let w = Tensor::zeros((5, 54), candle_core::DType::F32, &Device::Cpu).unwrap();
        let b = Tensor::zeros(5, candle_core::DType::F32, &Device::Cpu).unwrap();
        assert_eq!(conv3d(&x, &w, &b, 3).unwrap().dims(), &[1, 0, 3, 4, 5]);
    }

    #[test]
    fn direct_convolution_does_not_depend_on_the_thread_count() {
        let mut rng = Rng::new(4);
        let x = Var::from_tensor(&randn(&mut rng, &[2, 6, 5, 10, 3])).unwrap();
        let w = Var::from_tensor(&randn(&mut rng, &[7, 27 * 3])).unwrap();
        let bias = Var::from_tensor(&randn(&mut rng, &[7])).unwrap();
        let r = randn(&mut rng, &[2, 6, 5, 10, 7]);
        let once = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| run(|x, w, b| conv3d(x, w, b, 3).unwrap(), &x, &w, &bias, &r))
        };
        assert_eq!(once(1), once(3));
    }
}
