//! Fused multi-head self-attention for the CPU, forward and backward.
//!
//! Takes the packed `qkv [B, N, 3D]` that the `qkv` linear layer produces and returns
//! `[B, N, D]` ready for the output projection, so no permute/transpose copies are made.
//! Each (batch, head) pair is one task: `S = scale·QKᵀ + bias`, `P = softmax(S)`, `O = PV`,
//! with single-threaded GEMMs inside a task and rayon across tasks (far less
//! synchronisation than a parallel GEMM per tiny head matrix). The backward pass recomputes
//! `P` (as FlashAttention does) instead of storing `B·H·N²` probabilities:
//! `dV = PᵀdO`, `dP = dO Vᵀ`, `dS = P ⊙ (dP − rowsum(dP ⊙ P))`, `dQ = scale·dS K`,
//! `dK = scale·dSᵀQ`. Results do not depend on the thread count.

use crate::ops::contiguous;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor};
use rayon::prelude::*;
use std::sync::Arc;

/// `dst[m×n] = scale · A[m×k] · B[k×n]` with explicit (row, column) strides.
#[allow(clippy::too_many_arguments)]
fn mm(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    d_rs: usize,
    a: &[f32],
    a_rs: usize,
    a_cs: usize,
    b: &[f32],
    b_rs: usize,
    b_cs: usize,
    scale: f32,
) {
    debug_assert!(dst.len() >= (m - 1) * d_rs + n);
    // SAFETY: every index the kernel touches, (m-1)*rs + (cols-1)*cs, lies inside the
    // slices (checked by the callers' layouts; slices start at each matrix's origin).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            d_rs as isize,
            false,
            a.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.as_ptr(),
            b_cs as isize,
            b_rs as isize,
            0.0f32,
            scale,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

struct Dims {
    b: usize,
    n: usize,
    d: usize,
    h: usize,
    dh: usize,
}

fn dims(l: &Layout, heads: usize) -> candle_core::Result<Dims> {
    let (b, n, three_d) = match l.dims() {
        [b, n, c] => (*b, *n, *c),
        d => candle_core::bail!("attention: qkv must be [B, N, 3D], got {d:?}"),
    };
    let d = three_d / 3;
    if three_d % 3 != 0 || heads == 0 || d % heads != 0 {
        candle_core::bail!("attention: width {three_d} is not 3 x a multiple of {heads} heads");
    }
    Ok(Dims {
        b,
        n,
        d,
        h: heads,
        dh: d / heads,
    })
}

/// Query rows per forward task: (batch, head, row block) tasks keep both threads busy when
/// `B·H` is small (one sample of a 3-head model) and keep a block's scores in cache. Fixed,
/// so results do not depend on the thread count.
const ROW_BLOCK: usize = 128;

/// Scaled, biased scores and row softmax of one (batch, head) for the query rows `rows`,
/// written into `p` (`rows.len() × N`).
#[allow(clippy::too_many_arguments)]
fn probabilities(
    p: &mut [f32],
    qkv: &[f32],
    bias: Option<&[f32]>,
    dm: &Dims,
    bi: usize,
    hi: usize,
    rows: std::ops::Range<usize>,
    scale: f32,
) {
    let (n, d, dh) = (dm.n, dm.d, dm.dh);
    let row = 3 * d;
    let base = bi * n * row + hi * dh;
    let q = &qkv[base + rows.start * row..];
    let k = &qkv[base + d..];
    // S = scale · Q Kᵀ: Kᵀ has row stride 1 and column stride 3D.
    mm(rows.len(), n, dh, p, n, q, row, 1, k, 1, row, scale);
    let brow = bias.map(|b| &b[bi * n..(bi + 1) * n]);
    crate::ops::simd(
        #[inline(always)]
        || {
            for r in p.chunks_mut(n) {
                if let Some(br) = brow {
                    r.iter_mut().zip(br).for_each(|(x, b)| *x += b);
                }
                crate::ops::softmax_in_place(r);
            }
        },
    );
}

/// The row blocks of `n` query rows.
fn row_blocks(n: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    (0..n)
        .step_by(ROW_BLOCK)
        .map(move |s| s..n.min(s + ROW_BLOCK))
}

/// `P [N×N]` of one (batch, head), computed block by block exactly as the forward pass does.
fn all_probabilities(
    qkv: &[f32],
    bias: Option<&[f32]>,
    dm: &Dims,
    bi: usize,
    hi: usize,
    scale: f32,
) -> Vec<f32> {
    let n = dm.n;
    let mut p = vec![0f32; n * n];
    for rows in row_blocks(n) {
        let block = &mut p[rows.start * n..rows.end * n];
        probabilities(block, qkv, bias, dm, bi, hi, rows, scale);
    }
    p
}

/// Copies the `[rows, dh]` block of task `t` (batch `t / H`, head `t % H`), whose first
/// row is token `first`, into a `[B, N, width]` buffer at column `offset + head * dh`.
fn scatter_head(
    out: &mut [f32],
    block: &[f32],
    dm: &Dims,
    t: usize,
    first: usize,
    width: usize,
    offset: usize,
) {
    let (bi, hi) = (t / dm.h, t % dm.h);
    for (i, src) in block.chunks(dm.dh).enumerate() {
        let dst = (bi * dm.n + first + i) * width + offset + hi * dm.dh;
        out[dst..dst + dm.dh].copy_from_slice(src);
    }
}

struct Attention {
    heads: usize,
    scale: f32,
    bias: Option<Arc<Vec<f32>>>,
}

impl CustomOp1 for Attention {
    fn name(&self) -> &'static str {
        "tessera-attention"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let qkv = contiguous(s, l, "attention")?;
        let dm = dims(l, self.heads)?;
        check_bias(&self.bias, &dm)?;
        let (n, d, dh) = (dm.n, dm.d, dm.dh);
        let bias = self.bias.as_deref().map(|v| v.as_slice());
        let tasks: Vec<(usize, std::ops::Range<usize>)> = (0..dm.b * dm.h)
            .flat_map(|t| row_blocks(n).map(move |rows| (t, rows)))
            .collect();
        let blocks: Vec<Vec<f32>> = tasks
            .par_iter()
            .map(|(t, rows)| {
                let (bi, hi) = (t / dm.h, t % dm.h);
                let mut p = vec![0f32; rows.len() * n];
                probabilities(&mut p, qkv, bias, &dm, bi, hi, rows.clone(), self.scale);
                let v = &qkv[bi * n * 3 * d + 2 * d + hi * dh..];
                let mut o = vec![0f32; rows.len() * dh];
                mm(rows.len(), dh, n, &mut o, dh, &p, n, 1, v, 3 * d, 1, 1.0);
                o
            })
            .collect();
        let mut out = vec![0f32; dm.b * n * d];
        for ((t, rows), o) in tasks.iter().zip(&blocks) {
            scatter_head(&mut out, o, &dm, *t, rows.start, d, 0);
        }
        Ok((CpuStorage::F32(out), Shape::from((dm.b, n, d))))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let g = grad.contiguous()?;
        let op = AttentionBwd {
            heads: self.heads,
            scale: self.scale,
            bias: self.bias.clone(),
        };
        Ok(Some(arg.contiguous()?.apply_op2_no_bwd(&g, &op)?))
    }
}

fn check_bias(bias: &Option<Arc<Vec<f32>>>, dm: &Dims) -> candle_core::Result<()> {
    if let Some(b) = bias {
        if b.len() != dm.b * dm.n {
            candle_core::bail!(
                "attention: bias has {} values, expected B*N = {}",
                b.len(),
                dm.b * dm.n
            );
        }
    }
    Ok(())
}

struct AttentionBwd {
    heads: usize,
    scale: f32,
    bias: Option<Arc<Vec<f32>>>,
}

impl CustomOp2 for AttentionBwd {
    fn name(&self) -> &'static str {
        "tessera-attention-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let qkv = contiguous(s1, l1, "attention-bwd")?;
        let go = contiguous(s2, l2, "attention-bwd")?;
        let dm = dims(l1, self.heads)?;
        check_bias(&self.bias, &dm)?;
        let (n, d, dh) = (dm.n, dm.d, dm.dh);
        if go.len() != dm.b * n * d {
            candle_core::bail!(
                "attention-bwd: gradient has {} values, expected {}",
                go.len(),
                dm.b * n * d
            );
        }
        let bias = self.bias.as_deref().map(|v| v.as_slice());
        let row = 3 * d;
        let blocks: Vec<[Vec<f32>; 3]> = (0..dm.b * dm.h)
            .into_par_iter()
            .map(|t| {
                let (bi, hi) = (t / dm.h, t % dm.h);
                let p = all_probabilities(qkv, bias, &dm, bi, hi, self.scale);
                let base = bi * n * row + hi * dh;
                let (q, k, v) = (&qkv[base..], &qkv[base + d..], &qkv[base + 2 * d..]);
                let g = &go[bi * n * d + hi * dh..];
                // dV = Pᵀ dO
                let mut dv = vec![0f32; n * dh];
                mm(n, dh, n, &mut dv, dh, &p, 1, n, g, d, 1, 1.0);
                // dP = dO Vᵀ
                let mut ds = vec![0f32; n * n];
                mm(n, n, dh, &mut ds, n, g, d, 1, v, 1, row, 1.0);
                // dS = P ⊙ (dP − rowsum(dP ⊙ P))
                crate::ops::simd(
                    #[inline(always)]
                    || {
                        for (sr, pr) in ds.chunks_mut(n).zip(p.chunks(n)) {
                            let dot = crate::ops::dot(sr, pr);
                            sr.iter_mut()
                                .zip(pr)
                                .for_each(|(s, &pv)| *s = pv * (*s - dot));
                        }
                    },
                );
                let mut dq = vec![0f32; n * dh];
                mm(n, dh, n, &mut dq, dh, &ds, n, 1, k, row, 1, self.scale);
                let mut dk = vec![0f32; n * dh];
                mm(n, dh, n, &mut dk, dh, &ds, 1, n, q, row, 1, self.scale);
                [dq, dk, dv]
            })
            .collect();
        let mut out = vec![0f32; dm.b * n * row];
        for (t, parts) in blocks.iter().enumerate() {
            for (j, part) in parts.iter().enumerate() {
                scatter_head(&mut out, part, &dm, t, 0, row, j * d);
            }
        }
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// Multi-head self-attention on packed projections.
///
/// # Shapes
/// `qkv [B, N, 3D]` (q, k, v each `[B, N, H·dh]`, head-major), `bias [B, N]` (0 for real
/// keys, a large negative number for padding) → `[B, N, D]`.
pub fn fused_attention(
    qkv: &Tensor,
    bias: Option<&Tensor>,
    heads: usize,
) -> candle_core::Result<Tensor> {
    let (_, _, c) = qkv.dims3()?;
    let dh = c / 3 / heads.max(1);
    if crate::ops::composed(qkv) {
        return attention_composed(qkv, bias, heads);
    }
    let bias = match bias {
        Some(b) => Some(Arc::new(b.flatten_all()?.to_vec1::<f32>()?)),
        None => None,
    };
    qkv.contiguous()?.apply_op1(Attention {
        heads,
        scale: 1.0 / (dh as f32).sqrt(),
        bias,
    })
}

/// [`fused_attention`] from candle's differentiable ops (any device): permute, matmul,
/// masked softmax, matmul, transpose.
pub fn attention_composed(
    qkv: &Tensor,
    bias: Option<&Tensor>,
    heads: usize,
) -> candle_core::Result<Tensor> {
    let (b, n, c) = qkv.dims3()?;
    let (d, h) = (c / 3, heads.max(1));
    let dh = d / h;
    let x = qkv.reshape((b, n, 3, h, dh))?.permute((2, 0, 3, 1, 4))?;
    let (q, k, v) = (
        x.get(0)?.contiguous()?,
        x.get(1)?.contiguous()?,
        x.get(2)?.contiguous()?,
    );
    let att = q.matmul(&k.t()?)?;
    let zeros;
    let bias = match bias {
        Some(bias) => bias,
        None => {
            zeros = Tensor::zeros((b, n), qkv.dtype(), qkv.device())?;
            &zeros
        }
    };
    let p = crate::ops::masked_softmax(&att, bias, 1.0 / (dh as f32).sqrt())?;
    p.matmul(&v)?.transpose(1, 2)?.reshape((b, n, d))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use candle_core::{Device, Var};
    use tessera_tokens::Rng;

    /// Standard-normal values from the seeded generator (candle's cannot be seeded).
    pub(crate) fn randn(rng: &mut Rng, shape: &[usize]) -> Tensor {
        let n = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| rng.normal() as f32).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    #[test]
    fn matches_the_unfused_reference_forward_and_backward() {
        check_against_composed(3, 7, 12, 3);
    }

    #[test]
    fn long_sequences_split_into_row_blocks_match_too() {
        check_against_composed(1, 2 * ROW_BLOCK + 5, 8, 2);
    }

    fn check_against_composed(b: usize, n: usize, d: usize, h: usize) {
        let dev = Device::Cpu;
        let mut rng = Rng::new(21);
        let qkv = Var::from_tensor(&randn(&mut rng, &[b, n, 3 * d])).unwrap();
        let mut pad = vec![0f32; b * n];
        pad[n - 2..n].iter_mut().for_each(|x| *x = -1e9);
        if b > 1 {
            pad[2 * n - 1] = -1e9;
        }
        let bias = Tensor::from_vec(pad, (b, n), &dev).unwrap();
        let w = randn(&mut rng, &[b, n, d]);
        let run = |fused: bool| -> (Vec<f32>, Vec<f32>) {
            let y = if fused {
                fused_attention(qkv.as_tensor(), Some(&bias), h).unwrap()
            } else {
                attention_composed(qkv.as_tensor(), Some(&bias), h).unwrap()
            };
            let g = (&y * &w).unwrap().sum_all().unwrap().backward().unwrap();
            (
                y.flatten_all().unwrap().to_vec1().unwrap(),
                g.get(qkv.as_tensor())
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1()
                    .unwrap(),
            )
        };
        let (y1, g1) = run(true);
        let (y2, g2) = run(false);
        assert_eq!((y1.len(), g1.len()), (b * n * d, b * n * 3 * d));
        assert_eq!((y2.len(), g2.len()), (y1.len(), g1.len()));
        for (a, b) in y1.iter().zip(&y2).chain(g1.iter().zip(&g2)) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
    }
}
