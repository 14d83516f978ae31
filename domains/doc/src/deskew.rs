//! Skew of a scanned page from projection profiles: the angle (within ±`max_deg`) at which
//! the rows of ink are sharpest, i.e. the sum of squared differences between neighbouring
//! row sums of the sheared page peaks (the classic method of Postl / Bloomberg), searched
//! coarse to fine on a reduced page; and the rotation that undoes it (bilinear, paper
//! outside the page).

/// Skew angle in degrees of a grey page (`[h, w]`, 255 = paper), the angle [`rotate`]
/// undoes; 0 for a page with too little ink to tell.
pub fn estimate(data: &[u8], w: usize, h: usize, max_deg: f64) -> f64 {
    // Reduce to at most ~600 px wide, binarised ink.
    let f = (w / 600).max(1);
    let (rw, rh) = (w / f, h / f);
    let mut ink = Vec::with_capacity(rw * rh);
    for y in 0..rh {
        for x in 0..rw {
            let mut dark = 0;
            for dy in 0..f {
                for dx in 0..f {
                    dark += (data[(y * f + dy) * w + x * f + dx] < 128) as usize;
                }
            }
            ink.push(dark * 2 >= f * f);
        }
    }
    let pts: Vec<(f64, f64)> = (0..rh)
        .flat_map(|y| (0..rw).map(move |x| (x, y)))
        .filter(|&(x, y)| ink[y * rw + x])
        .map(|(x, y)| (x as f64, y as f64))
        .collect();
    if pts.len() < 200 {
        return 0.0;
    }
    let score = |deg: f64| -> f64 {
        let t = deg.to_radians().tan();
        let mut rows = vec![0f64; rh + rw + 2];
        let off = (rw as f64 * max_deg.to_radians().tan().abs()).ceil() + 1.0;
        for &(x, y) in &pts {
            let r = (y - x * t + off).round();
            if r >= 0.0 && (r as usize) < rows.len() {
                rows[r as usize] += 1.0;
            }
        }
        rows.windows(2).map(|p| (p[1] - p[0]).powi(2)).sum()
    };
    let mut best = 0.0;
    let mut step = 0.5;
    let (mut lo, mut hi) = (-max_deg, max_deg);
    while step >= 0.05 {
        let mut a = lo;
        let mut best_score = f64::NEG_INFINITY;
        while a <= hi + 1e-9 {
            let s = score(a);
            if s > best_score {
                best_score = s;
                best = a;
            }
            a += step;
        }
        lo = best - step;
        hi = best + step;
        step /= 5.0;
    }
    best
}

/// Rotates a page (`[h, w, c]` u8) by `-deg` about its centre (undoing a skew of `deg`),
/// bilinear, paper (255) where the source has no pixel.
pub fn rotate(data: &[u8], w: usize, h: usize, c: usize, deg: f64) -> Vec<u8> {
    let (s, co) = deg.to_radians().sin_cos();
    let (cx, cy) = (w as f64 / 2.0, h as f64 / 2.0);
    let mut out = vec![255u8; data.len()];
    for y in 0..h {
        for x in 0..w {
            // Output (x, y) samples the source rotated by +deg.
            let (dx, dy) = (x as f64 + 0.5 - cx, y as f64 + 0.5 - cy);
            let sx = co * dx - s * dy + cx - 0.5;
            let sy = s * dx + co * dy + cy - 0.5;
            if sx < -0.5 || sy < -0.5 || sx > w as f64 - 0.5 || sy > h as f64 - 0.5 {
                continue;
            }
            let (x0, y0) = (sx.floor().max(0.0) as usize, sy.floor().max(0.0) as usize);
            let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
            let (fx, fy) = (
                (sx - x0 as f64).clamp(0.0, 1.0),
                (sy - y0 as f64).clamp(0.0, 1.0),
            );
            for ch in 0..c {
                let p = |xx: usize, yy: usize| data[(yy * w + xx) * c + ch] as f64;
                let v = p(x0, y0) * (1.0 - fx) * (1.0 - fy)
                    + p(x1, y0) * fx * (1.0 - fy)
                    + p(x0, y1) * (1.0 - fx) * fy
                    + p(x1, y1) * fx * fy;
                out[(y * w + x) * c + ch] = v.round() as u8;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_and_undoes_a_known_skew() {
        let mut rng = tessera_tokens::Rng::new(1);
        let (w, h, page) = crate::synth::draw_page("letter", 150.0, &mut rng);
        assert!(estimate(&page, w, h, 5.0).abs() <= 0.15);
        for deg in [-3.0, 1.2, 2.5] {
            // Skew the page by `deg` (rotate by -(-deg)), then measure it.
            let skewed = rotate(&page, w, h, 1, -deg);
            let got = estimate(&skewed, w, h, 5.0);
            assert!((got - deg).abs() <= 0.2, "skew {deg}: estimated {got}");
            let fixed = rotate(&skewed, w, h, 1, got);
            assert!(estimate(&fixed, w, h, 5.0).abs() <= 0.2);
        }
    }
}
