//! Fused linear layer for the CPU: `y = x·Wᵀ + b` as one GEMM whose output starts as the
//! bias rows (no separate pass to add the bias), and a backward pass that writes `dW` in
//! `W`'s own layout (no transposed copy). `dW = dYᵀ·x` is a long reduction over the rows
//! with a small output, which a GEMM parallelised over the output splits poorly (92–130
//! GFLOP/s on two threads for the ViT-tiny encoder's shapes, against 135–161 for
//! OpenBLAS); here the rows are cut into a fixed number of chunks that run in parallel,
//! each a single-threaded GEMM, and the partial sums are added in chunk order, so the
//! result does not depend on the thread count.

use crate::ops::contiguous;
use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

/// Rows per chunk of the weight-gradient reduction, at least (at most 16 chunks).
const ROWS_PER_CHUNK: usize = 512;

fn parallelism() -> gemm::Parallelism {
    match rayon::current_num_threads() {
        0 | 1 => gemm::Parallelism::None,
        n => gemm::Parallelism::Rayon(n),
    }
}

/// `(rows, in)` of a 2-D layout.
fn dims2(l: &Layout, what: &str) -> candle_core::Result<(usize, usize)> {
    match l.dims() {
        [r, c] => Ok((*r, *c)),
        d => candle_core::bail!("linear: {what} must be 2-D, got {d:?}"),
    }
}

struct LinearOp;

impl CustomOp3 for LinearOp {
    fn name(&self) -> &'static str {
        "tessera-linear"
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
        let x = contiguous(s1, l1, "linear")?;
        let w = contiguous(s2, l2, "linear")?;
        let b = contiguous(s3, l3, "linear")?;
        let (rows, d_in) = dims2(l1, "x")?;
        let (d_out, w_in) = dims2(l2, "weight")?;
        if w_in != d_in || b.len() != d_out {
            candle_core::bail!(
                "linear: x [{rows}, {d_in}], weight [{d_out}, {w_in}] and bias [{}] do not fit",
                b.len()
            );
        }
        let mut y = Vec::with_capacity(rows * d_out);
        for _ in 0..rows {
            y.extend_from_slice(b);
        }
        if d_in > 0 && rows > 0 && d_out > 0 {
            // SAFETY: y is [rows, d_out] row-major, x [rows, d_in] row-major, and Wᵀ is read
            // as a [d_in, d_out] matrix with row stride 1 and column stride d_in, all inside
            // their slices.
            unsafe {
                gemm::gemm(
                    rows,
                    d_out,
                    d_in,
                    y.as_mut_ptr(),
                    1,
                    d_out as isize,
                    true,
                    x.as_ptr(),
                    1,
                    d_in as isize,
                    w.as_ptr(),
                    d_in as isize,
                    1,
                    1.0f32,
                    1.0f32,
                    false,
                    false,
                    false,
                    parallelism(),
                )
            }
        }
        Ok((CpuStorage::F32(y), Shape::from((rows, d_out))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = grad.contiguous()?;
        let dx = g.matmul(w)?;
        let dw = g.apply_op2_no_bwd(&x.contiguous()?, &WeightGrad)?;
        let db = g
            .apply_op1_no_bwd(&crate::ops::ColSum)?
            .reshape(b.shape())?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

/// `dW [out, in] = dYᵀ·x` from `dY [rows, out]` and `x [rows, in]`.
struct WeightGrad;

impl CustomOp2 for WeightGrad {
    fn name(&self) -> &'static str {
        "tessera-linear-weight-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = contiguous(s1, l1, "linear-weight-grad")?;
        let x = contiguous(s2, l2, "linear-weight-grad")?;
        let (rows, d_out) = dims2(l1, "dY")?;
        let (x_rows, d_in) = dims2(l2, "x")?;
        if x_rows != rows {
            candle_core::bail!("linear-weight-grad: dY has {rows} rows, x has {x_rows}");
        }
        let chunks = (rows / ROWS_PER_CHUNK).clamp(1, 16);
        // dW over rows r0..r1: Σ_r dY[r, o] x[r, i], into a fresh [out, in] buffer.
        let partial = |r0: usize, r1: usize, par: gemm::Parallelism| -> Vec<f32> {
            let mut d = vec![0f32; d_out * d_in];
            if r1 > r0 && d_out > 0 && d_in > 0 {
                // SAFETY: dYᵀ is read as [out, r1-r0] (row stride 1, column stride out) and x
                // as [r1-r0, in] (row stride in), both from row r0, inside their slices.
                unsafe {
                    gemm::gemm(
                        d_out,
                        d_in,
                        r1 - r0,
                        d.as_mut_ptr(),
                        1,
                        d_in as isize,
                        false,
                        g[r0 * d_out..].as_ptr(),
                        d_out as isize,
                        1,
                        x[r0 * d_in..].as_ptr(),
                        1,
                        d_in as isize,
                        0.0f32,
                        1.0f32,
                        false,
                        false,
                        false,
                        par,
                    )
                }
            }
            d
        };
        let dw = if chunks == 1 {
            partial(0, rows, parallelism())
        } else {
            let parts: Vec<Vec<f32>> = (0..chunks)
                .into_par_iter()
                .map(|c| {
                    partial(
                        c * rows / chunks,
                        (c + 1) * rows / chunks,
                        gemm::Parallelism::None,
                    )
                })
                .collect();
            // Added in chunk order, whatever the thread count.
            let mut parts = parts.into_iter();
            let mut dw = parts.next().unwrap_or_default();
            for p in parts {
                dw.iter_mut().zip(&p).for_each(|(a, v)| *a += v);
            }
            dw
        };
        Ok((CpuStorage::F32(dw), Shape::from((d_out, d_in))))
    }
}

/// `x [R, in] · Wᵀ + b` for `W [out, in]`, `b [out]`, fused on the CPU (see the module
/// notes). The caller checks [`crate::ops::composed`] first.
pub(crate) fn linear_bias(x: &Tensor, w: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    x.contiguous()?
        .apply_op3(&w.contiguous()?, &b.contiguous()?, LinearOp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attention::tests::randn;
    use candle_core::Var;
    use tessera_tokens::Rng;

    /// Values and gradients (x, W, b) of the fused op and of candle's matmul + add.
    #[test]
    fn matches_matmul_plus_bias_forward_and_backward() {
        // 1100 rows: the weight gradient is reduced in two chunks; 7 rows: in one.
        for rows in [7, 1100] {
            let mut rng = Rng::new(5);
            let (d_in, d_out) = (24, 40);
            let x = Var::from_tensor(&randn(&mut rng, &[rows, d_in])).unwrap();
            let w = Var::from_tensor(&randn(&mut rng, &[d_out, d_in])).unwrap();
            let b = Var::from_tensor(&randn(&mut rng, &[d_out])).unwrap();
            let up = randn(&mut rng, &[rows, d_out]);
            let run = |fused: bool| -> Vec<Vec<f32>> {
                let y = if fused {
                    linear_bias(x.as_tensor(), w.as_tensor(), b.as_tensor()).unwrap()
                } else {
                    x.as_tensor()
                        .matmul(&w.as_tensor().t().unwrap())
                        .unwrap()
                        .broadcast_add(b.as_tensor())
                        .unwrap()
                };
                let g = (&y * &up).unwrap().sum_all().unwrap().backward().unwrap();
                let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                vec![
                    flat(&y),
                    flat(g.get(x.as_tensor()).unwrap()),
                    flat(g.get(w.as_tensor()).unwrap()),
                    flat(g.get(b.as_tensor()).unwrap()),
                ]
            };
            let (f, c) = (run(true), run(false));
            for (a, b) in f.iter().zip(&c) {
                assert_eq!(a.len(), b.len());
                for (p, q) in a.iter().zip(b) {
                    assert!((p - q).abs() <= 1e-4 * (1.0 + q.abs()), "{p} vs {q}");
                }
            }
        }
    }
}
