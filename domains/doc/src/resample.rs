//! Area-aware resampling of 8-bit pages to the working resolution: a separable triangle
//! filter whose support widens with the reduction factor (as PIL's `Image.resize` with
//! `BILINEAR`), so thin strokes survive a 300 → 100 dpi reduction instead of aliasing.

/// Weights of one output sample: first input index and normalised weights.
fn weights(src: usize, dst: usize) -> Vec<(usize, Vec<f32>)> {
    let scale = src as f64 / dst as f64;
    let support = scale.max(1.0);
    (0..dst)
        .map(|o| {
            let centre = (o as f64 + 0.5) * scale;
            let lo = ((centre - support).floor().max(0.0)) as usize;
            let hi = ((centre + support).ceil() as usize).min(src);
            let mut w: Vec<f32> = (lo..hi)
                .map(|i| {
                    let d = ((i as f64 + 0.5 - centre) / support).abs();
                    (1.0 - d).max(0.0) as f32
                })
                .collect();
            let s: f32 = w.iter().sum();
            if s > 0.0 {
                w.iter_mut().for_each(|v| *v /= s);
            } else {
                // Only when dst > src at the very edge: nearest sample.
                let n = (centre.floor() as usize).min(src - 1);
                return (n, vec![1.0]);
            }
            (lo, w)
        })
        .collect()
}

/// Resizes `data` (`[h, w, c]` u8) to `nw × nh`. Identity when the size is unchanged.
pub fn resize(data: &[u8], w: usize, h: usize, c: usize, nw: usize, nh: usize) -> Vec<u8> {
    if (w, h) == (nw, nh) {
        return data.to_vec();
    }
    let wx = weights(w, nw);
    let wy = weights(h, nh);
    // Horizontal pass: [h, nw, c] in f32.
    let mut tmp = vec![0f32; h * nw * c];
    for y in 0..h {
        let row = &data[y * w * c..(y + 1) * w * c];
        let out = &mut tmp[y * nw * c..(y + 1) * nw * c];
        for (x, (lo, ws)) in wx.iter().enumerate() {
            for ch in 0..c {
                let mut a = 0f32;
                for (k, wt) in ws.iter().enumerate() {
                    a += wt * row[(lo + k) * c + ch] as f32;
                }
                out[x * c + ch] = a;
            }
        }
    }
    // Vertical pass.
    let mut out = vec![0u8; nh * nw * c];
    let stride = nw * c;
    for (y, (lo, ws)) in wy.iter().enumerate() {
        let dst = &mut out[y * stride..(y + 1) * stride];
        let mut acc = vec![0f32; stride];
        for (k, wt) in ws.iter().enumerate() {
            let src = &tmp[(lo + k) * stride..(lo + k + 1) * stride];
            for (a, s) in acc.iter_mut().zip(src) {
                *a += wt * s;
            }
        }
        for (d, a) in dst.iter_mut().zip(&acc) {
            *d = a.round().clamp(0.0, 255.0) as u8;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_stays_constant_and_halving_averages() {
        let d = vec![77u8; 30 * 20];
        assert!(resize(&d, 30, 20, 1, 13, 7).iter().all(|&v| v == 77));
        assert!(resize(&d, 30, 20, 1, 61, 45).iter().all(|&v| v == 77));
        // Alternating columns halve to mid grey away from the edges.
        let d: Vec<u8> = (0..8 * 8)
            .map(|i| if i % 2 == 0 { 0 } else { 254 })
            .collect();
        let r = resize(&d, 8, 8, 1, 4, 4);
        for y in 0..4 {
            assert!(r[y * 4 + 1..y * 4 + 3].iter().all(|&v| v == 127), "{r:?}");
        }
    }
}
