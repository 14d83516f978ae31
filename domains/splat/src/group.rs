//! Point-MAE grouping: farthest-point sampling picks the group centres, each centre's k
//! nearest neighbours form its group. Both are O(N · groups), parallel over points (FPS)
//! or centres (kNN), so a million Gaussians group in well under a second.

use rayon::prelude::*;

#[inline]
fn d2(a: &[f32; 3], b: &[f32; 3]) -> f32 {
    (a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)
}

/// Indices of `m` points chosen by farthest-point sampling from `start` (fewer when there
/// are fewer points). Ties go to the lowest index, so the result is deterministic.
pub fn fps(pos: &[[f32; 3]], m: usize, start: usize) -> Vec<usize> {
    let n = pos.len();
    let m = m.min(n);
    if m == 0 {
        return Vec::new();
    }
    let mut dist = vec![f32::INFINITY; n];
    let mut out = Vec::with_capacity(m);
    let mut cur = start.min(n - 1);
    const PAR: usize = 1 << 15;
    for _ in 0..m {
        out.push(cur);
        let c = pos[cur];
        let best = |(i0, d): (usize, &mut [f32]), p: &[[f32; 3]]| {
            let mut b = (f32::NEG_INFINITY, usize::MAX);
            for (j, (dj, pj)) in d.iter_mut().zip(p).enumerate() {
                let v = d2(pj, &c);
                if v < *dj {
                    *dj = v;
                }
                if *dj > b.0 {
                    b = (*dj, i0 + j);
                }
            }
            b
        };
        let pick = if n >= 2 * PAR {
            dist.par_chunks_mut(PAR)
                .zip(pos.par_chunks(PAR))
                .enumerate()
                .map(|(k, (d, p))| best((k * PAR, d), p))
                .reduce(
                    || (f32::NEG_INFINITY, usize::MAX),
                    |a, b| {
                        if b.0 > a.0 || (b.0 == a.0 && b.1 < a.1) {
                            b
                        } else {
                            a
                        }
                    },
                )
        } else {
            best((0, &mut dist), pos)
        };
        cur = pick.1;
        if cur == usize::MAX {
            break;
        }
    }
    out
}

/// For each centre, the indices of its `k` nearest points (nearest first, ties by index).
pub fn knn(pos: &[[f32; 3]], centres: &[[f32; 3]], k: usize) -> Vec<Vec<usize>> {
    let k = k.min(pos.len());
    let one = |c: &[f32; 3]| {
        let mut d: Vec<(f32, u32)> = pos
            .iter()
            .enumerate()
            .map(|(i, p)| (d2(p, c), i as u32))
            .collect();
        let cmp = |a: &(f32, u32), b: &(f32, u32)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
        if k < d.len() {
            d.select_nth_unstable_by(k, cmp);
            d.truncate(k);
        }
        d.sort_unstable_by(cmp);
        d.into_iter().map(|(_, i)| i as usize).collect()
    };
    if pos.len() * centres.len() >= 1 << 16 {
        centres.par_iter().map(one).collect()
    } else {
        centres.iter().map(one).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fps_spreads_and_knn_sorts() {
        let pos: Vec<[f32; 3]> = (0..10).map(|i| [i as f32, 0.0, 0.0]).collect();
        let c = fps(&pos, 3, 0);
        assert_eq!(c, vec![0, 9, 4]);
        let g = knn(&pos, &[[4.2, 0.0, 0.0]], 3);
        assert_eq!(g, vec![vec![4, 5, 3]]);
        assert_eq!(fps(&pos, 20, 0).len(), 10);
    }

    #[test]
    fn parallel_fps_matches_serial() {
        let mut s = 1u64;
        let mut r = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s % 10_000) as f32 / 100.0
        };
        let pos: Vec<[f32; 3]> = (0..70_000).map(|_| [r(), r(), r()]).collect();
        let par = fps(&pos, 16, 5);
        // serial reference
        let mut dist = vec![f32::INFINITY; pos.len()];
        let mut cur = 5;
        let mut want = vec![];
        for _ in 0..16 {
            want.push(cur);
            let mut b = (f32::NEG_INFINITY, 0);
            for (i, p) in pos.iter().enumerate() {
                dist[i] = dist[i].min(d2(p, &pos[cur]));
                if dist[i] > b.0 {
                    b = (dist[i], i);
                }
            }
            cur = b.1;
        }
        assert_eq!(par, want);
    }
}
