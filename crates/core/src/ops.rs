//! Fused CPU kernels with backward passes: softmax over the last dimension and
//! layer normalisation. candle's own fused versions have no backward pass, and the
//! composed versions cost several full passes over memory each.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor};
use rayon::prelude::*;

fn contiguous<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> candle_core::Result<&'a [f32]> {
    let data = match s {
        CpuStorage::F32(v) => v.as_slice(),
        _ => candle_core::bail!("{op}: only f32 is supported"),
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("{op}: input must be contiguous"),
    }
}

fn last_dim(l: &Layout) -> usize {
    l.dims().last().copied().unwrap_or(1).max(1)
}

/// Rows per parallel task: small rows are grouped so rayon's overhead stays small.
fn rows_per_task(dim: usize) -> usize {
    (16384 / dim).max(1)
}

struct Softmax;

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "tessera-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous(s, l, "softmax")?;
        let d = last_dim(l);
        let mut y = vec![0f32; x.len()];
        let chunk = d * rows_per_task(d);
        y.par_chunks_mut(chunk).zip(x.par_chunks(chunk)).for_each(|(yc, xc)| {
            for (yr, xr) in yc.chunks_mut(d).zip(xc.chunks(d)) {
                let m = xr.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
                let mut sum = 0f32;
                for (o, &v) in yr.iter_mut().zip(xr) {
                    *o = (v - m).exp();
                    sum += *o;
                }
                let inv = 1.0 / sum;
                yr.iter_mut().for_each(|o| *o *= inv);
            }
        });
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let g = grad.contiguous()?;
        Ok(Some(res.apply_op2_no_bwd(&g, &SoftmaxBwd)?))
    }
}

/// dx = y * (g - sum(g * y)) per row.
struct SoftmaxBwd;

impl CustomOp2 for SoftmaxBwd {
    fn name(&self) -> &'static str {
        "tessera-softmax-bwd"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let y = contiguous(s1, l1, "softmax-bwd")?;
        let g = contiguous(s2, l2, "softmax-bwd")?;
        let d = last_dim(l1);
        let mut dx = vec![0f32; y.len()];
        let chunk = d * rows_per_task(d);
        dx.par_chunks_mut(chunk).zip(y.par_chunks(chunk).zip(g.par_chunks(chunk))).for_each(|(dc, (yc, gc))| {
            for ((dr, yr), gr) in dc.chunks_mut(d).zip(yc.chunks(d)).zip(gc.chunks(d)) {
                let dot: f32 = yr.iter().zip(gr).map(|(a, b)| a * b).sum();
                for ((o, &yv), &gv) in dr.iter_mut().zip(yr).zip(gr) {
                    *o = yv * (gv - dot);
                }
            }
        });
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

struct Normalize {
    eps: f32,
}

fn moments(x: &[f32], eps: f32) -> (f32, f32) {
    let d = x.len() as f32;
    let mean = x.iter().sum::<f32>() / d;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / d;
    (mean, 1.0 / (var + eps).sqrt())
}

impl CustomOp1 for Normalize {
    fn name(&self) -> &'static str {
        "tessera-normalize"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous(s, l, "layer-norm")?;
        let d = last_dim(l);
        let mut y = vec![0f32; x.len()];
        let chunk = d * rows_per_task(d);
        let eps = self.eps;
        y.par_chunks_mut(chunk).zip(x.par_chunks(chunk)).for_each(|(yc, xc)| {
            for (yr, xr) in yc.chunks_mut(d).zip(xc.chunks(d)) {
                let (mean, rstd) = moments(xr, eps);
                for (o, &v) in yr.iter_mut().zip(xr) {
                    *o = (v - mean) * rstd;
                }
            }
        });
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let g = grad.contiguous()?;
        let x = arg.contiguous()?;
        Ok(Some(x.apply_op2_no_bwd(&g, &NormalizeBwd { eps: self.eps })?))
    }
}

/// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) per row.
struct NormalizeBwd {
    eps: f32,
}

impl CustomOp2 for NormalizeBwd {
    fn name(&self) -> &'static str {
        "tessera-normalize-bwd"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous(s1, l1, "layer-norm-bwd")?;
        let g = contiguous(s2, l2, "layer-norm-bwd")?;
        let d = last_dim(l1);
        let mut dx = vec![0f32; x.len()];
        let chunk = d * rows_per_task(d);
        let eps = self.eps;
        dx.par_chunks_mut(chunk).zip(x.par_chunks(chunk).zip(g.par_chunks(chunk))).for_each(|(dc, (xc, gc))| {
            for ((dr, xr), gr) in dc.chunks_mut(d).zip(xc.chunks(d)).zip(gc.chunks(d)) {
                let (mean, rstd) = moments(xr, eps);
                let n = d as f32;
                let mut mg = 0f32;
                let mut mgx = 0f32;
                for (&xv, &gv) in xr.iter().zip(gr) {
                    mg += gv;
                    mgx += gv * (xv - mean) * rstd;
                }
                mg /= n;
                mgx /= n;
                for ((o, &xv), &gv) in dr.iter_mut().zip(xr).zip(gr) {
                    *o = rstd * (gv - mg - (xv - mean) * rstd * mgx);
                }
            }
        });
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

/// Softmax over the last dimension (f32, CPU), with a fused backward pass.
pub fn softmax_last_dim(x: &Tensor) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op1(Softmax)
}

/// `(x - mean) / sqrt(var + eps)` over the last dimension, with a fused backward pass.
pub fn normalize_last_dim(x: &Tensor, eps: f32) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op1(Normalize { eps })
}

/// Layer normalisation over the last dimension with affine `weight` and `bias` `[D]`.
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f32) -> candle_core::Result<Tensor> {
    normalize_last_dim(x, eps)?.broadcast_mul(weight)?.broadcast_add(bias)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var, D};

    fn reference_grads(x: &Var, f: impl Fn(&Tensor) -> Tensor, w: &Tensor) -> (Vec<f32>, Vec<f32>) {
        let y = f(x.as_tensor());
        let loss = (y.clone() * w).unwrap().sum_all().unwrap();
        let g = loss.backward().unwrap();
        (y.flatten_all().unwrap().to_vec1().unwrap(), g.get(x).unwrap().flatten_all().unwrap().to_vec1().unwrap())
    }

    fn close(a: &[f32], b: &[f32], tol: f32) {
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < tol, "{x} vs {y}");
        }
    }

    #[test]
    fn fused_ops_match_composed_ops_forward_and_backward() {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&(Tensor::randn(0f32, 2.0, (3, 5, 37), &dev).unwrap())).unwrap();
        let w = Tensor::randn(0f32, 1.0, (3, 5, 37), &dev).unwrap();
        let (y1, g1) = reference_grads(&x, |t| softmax_last_dim(t).unwrap(), &w);
        let (y2, g2) = reference_grads(&x, |t| candle_nn::ops::softmax(t, D::Minus1).unwrap(), &w);
        close(&y1, &y2, 1e-6);
        close(&g1, &g2, 1e-5);
        let (y1, g1) = reference_grads(&x, |t| normalize_last_dim(t, 1e-6).unwrap(), &w);
        let slow = |t: &Tensor| {
            let ones = Tensor::ones(37, candle_core::DType::F32, &dev).unwrap();
            let zeros = Tensor::zeros(37, candle_core::DType::F32, &dev).unwrap();
            candle_nn::ops::layer_norm_slow(t, &ones, &zeros, 1e-6).unwrap()
        };
        let (y2, g2) = reference_grads(&x, slow, &w);
        close(&y1, &y2, 1e-5);
        close(&g1, &g2, 1e-4);
    }
}
