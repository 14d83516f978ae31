//! k-means on the host (k-means++ seeding, Arthur & Vassilvitskii 2007; then Lloyd
//! iterations), seeded by the crate's [`Rng`]: HuBERT's discrete units.

use crate::Result;
use tessera_core::CoreError;
use tessera_tokens::Rng;

/// Squared Euclidean distance.
fn dist2(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Index of the nearest of `centroids` (`[k, d]`, row-major) to `x`.
pub fn nearest(centroids: &[f32], d: usize, x: &[f32]) -> usize {
    centroids
        .chunks(d)
        .map(|c| dist2(c, x))
        .enumerate()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(i, _)| i)
        .unwrap_or(0)
}

/// `k` centroids (`[k, d]`) of the rows of `data` (`[n, d]`): k-means++ seeding, then up
/// to `iters` Lloyd iterations (stopping early when no assignment changes). An empty
/// cluster is re-seeded with the point farthest from its centroid. Fewer than `k` distinct
/// rows, or non-finite values, are errors.
pub fn kmeans(data: &[f32], d: usize, k: usize, iters: usize, rng: &mut Rng) -> Result<Vec<f32>> {
    if d == 0 || k == 0 || !data.len().is_multiple_of(d) {
        return Err(CoreError::Config(format!(
            "k-means: {} values are not rows of {d}, or k = {k}",
            data.len()
        )));
    }
    let n = data.len() / d;
    if n < k {
        return Err(CoreError::Config(format!(
            "k-means: {n} points for {k} clusters"
        )));
    }
    if let Some(i) = data.iter().position(|x| !x.is_finite()) {
        return Err(CoreError::Config(format!(
            "k-means: non-finite value at row {}",
            i / d
        )));
    }
    let row = |i: usize| &data[i * d..(i + 1) * d];
    // k-means++: each next centre drawn with probability proportional to D(x)².
    let mut c = Vec::with_capacity(k * d);
    c.extend_from_slice(row(rng.below(n)));
    let mut best: Vec<f32> = (0..n).map(|i| dist2(row(i), &c[..d])).collect();
    for _ in 1..k {
        let total: f64 = best.iter().map(|&x| x as f64).sum();
        if total <= 0.0 {
            return Err(CoreError::Config(format!(
                "k-means: fewer than {k} distinct points"
            )));
        }
        let mut r = rng.uniform() * total;
        let mut pick = n - 1;
        for (i, &b) in best.iter().enumerate() {
            r -= b as f64;
            if r <= 0.0 {
                pick = i;
                break;
            }
        }
        let start = c.len();
        c.extend_from_slice(row(pick));
        for (i, b) in best.iter_mut().enumerate() {
            *b = b.min(dist2(row(i), &c[start..start + d]));
        }
    }
    let mut assign = vec![usize::MAX; n];
    for _ in 0..iters {
        let mut changed = false;
        for (i, a) in assign.iter_mut().enumerate() {
            let j = nearest(&c, d, row(i));
            changed |= *a != j;
            *a = j;
        }
        if !changed {
            break;
        }
        let mut sum = vec![0f64; k * d];
        let mut count = vec![0usize; k];
        for (i, &a) in assign.iter().enumerate() {
            count[a] += 1;
            for (s, &x) in sum[a * d..(a + 1) * d].iter_mut().zip(row(i)) {
                *s += x as f64;
            }
        }
        for j in 0..k {
            if count[j] == 0 {
                let far = (0..n)
                    .max_by(|&a, &b| {
                        dist2(row(a), &c[assign[a] * d..(assign[a] + 1) * d])
                            .total_cmp(&dist2(row(b), &c[assign[b] * d..(assign[b] + 1) * d]))
                    })
                    .unwrap_or(0);
                c[j * d..(j + 1) * d].copy_from_slice(row(far));
            } else {
                for (cv, s) in c[j * d..(j + 1) * d]
                    .iter_mut()
                    .zip(&sum[j * d..(j + 1) * d])
                {
                    *cv = (*s / count[j] as f64) as f32;
                }
            }
        }
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separated_blobs_are_found_and_seeded_runs_agree() {
        let mut rng = Rng::new(1);
        let centres = [[0f32, 0.0], [10.0, 0.0], [0.0, 10.0]];
        let mut data = Vec::new();
        for i in 0..300 {
            let c = centres[i % 3];
            data.push(c[0] + 0.3 * rng.normal() as f32);
            data.push(c[1] + 0.3 * rng.normal() as f32);
        }
        let got = kmeans(&data, 2, 3, 50, &mut Rng::new(5)).unwrap();
        assert_eq!(got, kmeans(&data, 2, 3, 50, &mut Rng::new(5)).unwrap());
        for c in centres {
            let j = nearest(&got, 2, &c);
            assert!(dist2(&got[j * 2..j * 2 + 2], &c) < 0.05, "{got:?}");
        }
        // Points go to their own blob's centroid.
        for i in 0..300 {
            let p = &data[i * 2..i * 2 + 2];
            let j = nearest(&got, 2, p);
            assert!(dist2(&got[j * 2..j * 2 + 2], &centres[i % 3]) < 0.05);
        }
    }

    #[test]
    fn too_few_points_and_bad_values_are_errors() {
        let mut rng = Rng::new(1);
        assert!(kmeans(&[1.0, 2.0], 2, 2, 5, &mut rng).is_err());
        assert!(kmeans(&[1.0, 1.0, 1.0, 1.0], 2, 2, 5, &mut rng).is_err());
        assert!(kmeans(&[1.0, f32::NAN, 0.0, 0.0], 2, 1, 5, &mut rng).is_err());
        assert!(kmeans(&[1.0, 2.0, 3.0], 2, 1, 5, &mut rng).is_err());
    }
}
