//! Dense `f64` kernels: `out = a · bᵀ` for row-major `a [n, d]`, `b [m, d]`.
//!
//! Both products of the probes reduce to this one form: logits `X Wᵀ`, the weight gradient
//! `Xᵀ R` (as `Xt · Rtᵀ` with both operands transposed once) and kNN similarities
//! `Q Kᵀ`. The kernel computes 2×4 blocks of dot products with 4-lane accumulators: on
//! x86-64 with AVX2+FMA (detected at run time) in 256-bit registers through
//! `std::arch` intrinsics, elsewhere in portable code.
//!
//! Every output element is computed by the same sequence of operations whatever the
//! thread count, so results are bit-identical between runs on one machine.

use rayon::prelude::*;

const LANES: usize = 4;
/// Rows of `a` per parallel task.
const ROWS_PER_TASK: usize = 32;
/// Bytes of `b` kept hot in cache while a task sweeps its rows of `a`.
const B_BLOCK_BYTES: usize = 256 * 1024;

/// A micro-kernel: dot products of `R` rows of `a` with `S` rows of `b`.
trait Block {
    /// # Safety
    /// Every slice has length `d`, and the CPU supports the kernel's target features.
    unsafe fn block<const R: usize, const S: usize>(
        a: [&[f64]; R],
        b: [&[f64]; S],
        d: usize,
    ) -> [[f64; S]; R];
}

/// Portable kernel: 4-lane accumulators in plain arrays (vectorised as LLVM sees fit).
struct Portable;

impl Block for Portable {
    #[inline(always)]
    unsafe fn block<const R: usize, const S: usize>(
        a: [&[f64]; R],
        b: [&[f64]; S],
        d: usize,
    ) -> [[f64; S]; R] {
        let a = a.map(|s| &s[..d]);
        let b = b.map(|s| &s[..d]);
        let mut acc = [[[0.0f64; LANES]; S]; R];
        let mut o = 0;
        while o + LANES <= d {
            for r in 0..R {
                for s in 0..S {
                    for l in 0..LANES {
                        acc[r][s][l] += a[r][o + l] * b[s][o + l];
                    }
                }
            }
            o += LANES;
        }
        let mut out = [[0.0f64; S]; R];
        for r in 0..R {
            for s in 0..S {
                let v = &acc[r][s];
                let mut t = (v[0] + v[1]) + (v[2] + v[3]);
                for k in o..d {
                    t += a[r][k] * b[s][k];
                }
                out[r][s] = t;
            }
        }
        out
    }
}

/// AVX2 + FMA kernel: one 256-bit accumulator per output, `R * S <= 8` of them.
#[cfg(target_arch = "x86_64")]
struct Avx2Fma;

#[cfg(target_arch = "x86_64")]
impl Block for Avx2Fma {
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn block<const R: usize, const S: usize>(
        a: [&[f64]; R],
        b: [&[f64]; S],
        d: usize,
    ) -> [[f64; S]; R] {
        use std::arch::x86_64::*;
        let a = a.map(|s| &s[..d]);
        let b = b.map(|s| &s[..d]);
        let mut acc = [[_mm256_setzero_pd(); S]; R];
        let mut o = 0;
        while o + LANES <= d {
            let mut xa = [_mm256_setzero_pd(); R];
            for r in 0..R {
                // SAFETY: o + 4 <= d == a[r].len().
                xa[r] = _mm256_loadu_pd(a[r].as_ptr().add(o));
            }
            for s in 0..S {
                // SAFETY: o + 4 <= d == b[s].len().
                let y = _mm256_loadu_pd(b[s].as_ptr().add(o));
                for r in 0..R {
                    acc[r][s] = _mm256_fmadd_pd(xa[r], y, acc[r][s]);
                }
            }
            o += LANES;
        }
        let mut out = [[0.0f64; S]; R];
        for r in 0..R {
            for s in 0..S {
                let v = acc[r][s];
                let pair = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd::<1>(v));
                let mut t = _mm_cvtsd_f64(_mm_add_sd(pair, _mm_unpackhi_pd(pair, pair)));
                for k in o..d {
                    t = a[r][k].mul_add(b[s][k], t);
                }
                out[r][s] = t;
            }
        }
        out
    }
}

#[inline(always)]
fn row(x: &[f64], i: usize, d: usize) -> &[f64] {
    &x[i * d..(i + 1) * d]
}

/// Tiles `out [n, m]` into 2×4 blocks (1-row / 1-column blocks at the edges); columns
/// (rows of `b`) are swept in groups that stay in cache across the rows of `a`.
///
/// # Safety
/// As [`Block::block`]: the CPU supports `K`'s target features.
#[inline(always)]
unsafe fn tile<K: Block>(a: &[f64], n: usize, b: &[f64], m: usize, d: usize, out: &mut [f64]) {
    let jb = ((B_BLOCK_BYTES / (8 * d.max(1))) / 4 * 4).max(4);
    let mut j0 = 0;
    while j0 < m {
        let j1 = (j0 + jb).min(m);
        let mut i = 0;
        while i + 2 <= n {
            let ar = [row(a, i, d), row(a, i + 1, d)];
            let mut j = j0;
            while j + 4 <= j1 {
                let br = [
                    row(b, j, d),
                    row(b, j + 1, d),
                    row(b, j + 2, d),
                    row(b, j + 3, d),
                ];
                let r = K::block::<2, 4>(ar, br, d);
                out[i * m + j..i * m + j + 4].copy_from_slice(&r[0]);
                out[(i + 1) * m + j..(i + 1) * m + j + 4].copy_from_slice(&r[1]);
                j += 4;
            }
            while j < j1 {
                let r = K::block::<2, 1>(ar, [row(b, j, d)], d);
                out[i * m + j] = r[0][0];
                out[(i + 1) * m + j] = r[1][0];
                j += 1;
            }
            i += 2;
        }
        if i < n {
            let ar = [row(a, i, d)];
            let mut j = j0;
            while j + 4 <= j1 {
                let br = [
                    row(b, j, d),
                    row(b, j + 1, d),
                    row(b, j + 2, d),
                    row(b, j + 3, d),
                ];
                let r = K::block::<1, 4>(ar, br, d);
                out[i * m + j..i * m + j + 4].copy_from_slice(&r[0]);
                j += 4;
            }
            while j < j1 {
                out[i * m + j] = K::block::<1, 1>(ar, [row(b, j, d)], d)[0][0];
                j += 1;
            }
        }
        j0 = j1;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_avx2_fma(a: &[f64], n: usize, b: &[f64], m: usize, d: usize, out: &mut [f64]) {
    tile::<Avx2Fma>(a, n, b, m, d, out)
}

/// `out [n, m] = a [n, d] · b [m, d]ᵀ` on the calling thread.
///
/// Callers guarantee `a.len() == n * d`, `b.len() == m * d`, `out.len() == n * m`
/// (checked in debug builds; the crate's public functions validate shapes first).
pub(crate) fn a_bt(a: &[f64], n: usize, b: &[f64], m: usize, d: usize, out: &mut [f64]) {
    debug_assert_eq!(a.len(), n * d);
    debug_assert_eq!(b.len(), m * d);
    debug_assert_eq!(out.len(), n * m);
    if d == 0 {
        out.iter_mut().for_each(|v| *v = 0.0);
        return;
    }
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU supports the target features the kernel is compiled with.
            unsafe { tile_avx2_fma(a, n, b, m, d, out) };
            return;
        }
    }
    // SAFETY: the portable kernel needs no target feature.
    unsafe { tile::<Portable>(a, n, b, m, d, out) }
}

/// [`a_bt`] split over blocks of rows of `a` on the rayon pool. Same contract and
/// bit-identical output.
pub(crate) fn par_a_bt(a: &[f64], n: usize, b: &[f64], m: usize, d: usize, out: &mut [f64]) {
    if n <= ROWS_PER_TASK || m == 0 {
        return a_bt(a, n, b, m, d, out);
    }
    if d == 0 {
        out.iter_mut().for_each(|v| *v = 0.0);
        return;
    }
    out.par_chunks_mut(ROWS_PER_TASK * m)
        .zip(a.par_chunks(ROWS_PER_TASK * d))
        .for_each(|(o, ac)| {
            let rows = ac.len() / d;
            a_bt(ac, rows, b, m, d, o);
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_tokens::Rng;

    fn naive(a: &[f64], n: usize, b: &[f64], m: usize, d: usize) -> Vec<f64> {
        let mut out = vec![0.0; n * m];
        for i in 0..n {
            for j in 0..m {
                out[i * m + j] = (0..d).map(|k| a[i * d + k] * b[j * d + k]).sum();
            }
        }
        out
    }

    /// Throughput: `cargo test -p tessera-eval --release -- --ignored --nocapture kernel_gflops`.
    #[test]
    #[ignore]
    fn kernel_gflops() {
        let mut rng = Rng::new(1);
        for &(n, m, d) in &[(2400, 60, 400), (400, 60, 2400), (1000, 3000, 400)] {
            let a: Vec<f64> = (0..n * d).map(|_| rng.normal()).collect();
            let b: Vec<f64> = (0..m * d).map(|_| rng.normal()).collect();
            let mut out = vec![0.0; n * m];
            for (name, par) in [("serial", false), ("parallel", true)] {
                let reps = 5;
                let t = std::time::Instant::now();
                for _ in 0..reps {
                    if par {
                        par_a_bt(&a, n, &b, m, d, &mut out);
                    } else {
                        a_bt(&a, n, &b, m, d, &mut out);
                    }
                }
                let secs = t.elapsed().as_secs_f64() / reps as f64;
                let gflops = 2.0 * (n * m * d) as f64 / secs / 1e9;
                eprintln!(
                    "{n}x{m}x{d} {name}: {:.2} ms, {gflops:.1} GFLOP/s",
                    secs * 1e3
                );
            }
        }
    }

    #[test]
    fn matches_naive_product_on_ragged_sizes() {
        let mut rng = Rng::new(3);
        for &(n, m, d) in &[
            (1, 1, 1),
            (3, 5, 7),
            (2, 4, 8),
            (37, 9, 13),
            (65, 70, 130),
            (5, 3, 0),
        ] {
            let a: Vec<f64> = (0..n * d).map(|_| rng.normal()).collect();
            let b: Vec<f64> = (0..m * d).map(|_| rng.normal()).collect();
            let want = naive(&a, n, &b, m, d);
            let mut got = vec![f64::NAN; n * m];
            a_bt(&a, n, &b, m, d, &mut got);
            let mut got_par = vec![f64::NAN; n * m];
            par_a_bt(&a, n, &b, m, d, &mut got_par);
            for (x, y) in want.iter().zip(&got) {
                assert!(
                    (x - y).abs() <= 1e-12 * (1.0 + x.abs()),
                    "{n}x{m}x{d}: {x} vs {y}"
                );
            }
            assert_eq!(got, got_par);
            let mut portable = vec![f64::NAN; n * m];
            // SAFETY: the portable kernel needs no target feature.
            unsafe { tile::<Portable>(&a, n, &b, m, d, &mut portable) };
            for (x, y) in want.iter().zip(&portable) {
                assert!(
                    (x - y).abs() <= 1e-12 * (1.0 + x.abs()),
                    "portable {n}x{m}x{d}: {x} vs {y}"
                );
            }
        }
    }
}
