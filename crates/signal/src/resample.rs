//! Band-limited (windowed-sinc) resampling, a port of `torchaudio.functional.resample` with
//! its defaults: `lowpass_filter_width = 6`, `rolloff = 0.99`,
//! `resampling_method = "sinc_interp_hann"`.
//!
//! As in torchaudio, both rates are divided by their gcd (`orig`, `new`), one kernel per
//! output phase is built once per call (`new` phases of `2 * width + orig` taps), the signal
//! is zero-padded by `width` on the left, and the output has `ceil(len * new / orig)`
//! samples. Output sample `j` is the Hann-windowed sinc interpolation of the input at time
//! `j / to_hz` with cutoff `0.99 * min(from_hz, to_hz) / 2`.
//!
//! Unlike torchaudio we keep only the taps inside the filter's support (`|t| < 6` zero
//! crossings); the taps dropped are below 1e-30 there, so the result is the same to float
//! rounding while the work per output sample falls from `2 * width + orig` taps to about
//! `12 * orig / min(orig, new)`. This also keeps the kernel small for nearly coprime rates
//! (e.g. 44 101 → 16 000 Hz), where torchaudio's dense kernel takes gigabytes. The taps are
//! evaluated with torchaudio's float32 operations, so outputs agree with it to ~2e-7.

use crate::SignalError;

const LOWPASS_FILTER_WIDTH: f64 = 6.0;
const ROLLOFF: f64 = 0.99;

/// Resample a mono signal from `from_hz` to `to_hz`.
///
/// # Shapes
/// `[len]` → `[ceil(len * to_hz / from_hz)]`. Identity (a copy) when the rates are equal.
/// A zero rate gives an empty output: use [`Resampler::new`] to get an error instead.
pub fn resample(x: &[f32], from_hz: u32, to_hz: u32) -> Vec<f32> {
    match Resampler::new(from_hz, to_hz) {
        Ok(r) => r.process(x),
        Err(_) => Vec::new(),
    }
}

/// A resampling kernel built once for a pair of rates, to apply to many signals.
#[derive(Debug, Clone)]
pub struct Resampler {
    from_hz: u32,
    to_hz: u32,
    /// `from_hz / gcd`: input samples per period.
    orig: usize,
    /// `to_hz / gcd`: output samples (phases) per period.
    new: usize,
    /// Zero padding on the left, in input samples (torchaudio's `width`).
    width: usize,
    /// Per phase: index of its first kept tap in torchaudio's `2 * width + orig` taps.
    first_tap: Vec<usize>,
    /// Per phase: range of its taps in `taps` (`tap_offsets[p]..tap_offsets[p + 1]`).
    tap_offsets: Vec<usize>,
    taps: Vec<f32>,
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl Resampler {
    /// Build the polyphase kernel for `from_hz` → `to_hz`. Both rates must be positive.
    pub fn new(from_hz: u32, to_hz: u32) -> Result<Self, SignalError> {
        if from_hz == 0 || to_hz == 0 {
            return Err(SignalError::Config(format!(
                "resampling rates must be positive, got {from_hz} Hz -> {to_hz} Hz"
            )));
        }
        let g = gcd(u64::from(from_hz), u64::from(to_hz));
        let orig = (u64::from(from_hz) / g) as usize;
        let new = (u64::from(to_hz) / g) as usize;
        if from_hz == to_hz {
            return Ok(Self {
                from_hz,
                to_hz,
                orig,
                new,
                width: 0,
                first_tap: Vec::new(),
                tap_offsets: Vec::new(),
                taps: Vec::new(),
            });
        }
        let (o, n) = (orig as f64, new as f64);
        let base = (orig.min(new) as f64) * ROLLOFF;
        let width = (LOWPASS_FILTER_WIDTH * o / base).ceil() as usize;
        let n_taps = 2 * width + orig;
        // Tap i of phase p sits at t = ((i - width) / orig - p / new) * base zero crossings;
        // it is non-zero only for |t| < 6, i.e. |i - width - p * orig / new| < 6 * orig / base.
        let half = LOWPASS_FILTER_WIDTH * o / base;
        let mut first_tap = Vec::with_capacity(new);
        let mut tap_offsets = Vec::with_capacity(new + 1);
        let mut taps = Vec::with_capacity(new * (2 * half.ceil() as usize + 3));
        tap_offsets.push(0);
        for p in 0..new {
            let center = width as f64 + p as f64 * o / n;
            let lo = ((center - half).floor().max(0.0) as usize).min(n_taps - 1);
            let hi = ((center + half).ceil().max(0.0) as usize).min(n_taps - 1);
            first_tap.push(lo);
            for i in lo..=hi {
                taps.push(torchaudio_tap(i, p, width, orig, new, base));
            }
            // Zero taps up to a multiple of 8: every dot product runs whole 8-lane chunks
            // (no scalar tail; the input is padded to match).
            while (taps.len() - tap_offsets[p]) % 8 != 0 {
                taps.push(0.0);
            }
            tap_offsets.push(taps.len());
        }
        Ok(Self {
            from_hz,
            to_hz,
            orig,
            new,
            width,
            first_tap,
            tap_offsets,
            taps,
        })
    }

    /// Input rate in hertz.
    pub fn from_hz(&self) -> u32 {
        self.from_hz
    }

    /// Output rate in hertz.
    pub fn to_hz(&self) -> u32 {
        self.to_hz
    }

    /// Number of output samples for `len` input samples: `ceil(len * to_hz / from_hz)`.
    pub fn output_len(&self, len: usize) -> usize {
        if self.from_hz == self.to_hz {
            return len;
        }
        let num = len as u128 * self.new as u128;
        num.div_ceil(self.orig as u128) as usize
    }

    /// Resample one mono signal.
    ///
    /// # Shapes
    /// `[len]` → `[self.output_len(len)]`.
    pub fn process(&self, x: &[f32]) -> Vec<f32> {
        if self.from_hz == self.to_hz {
            return x.to_vec();
        }
        let out_len = self.output_len(x.len());
        if out_len == 0 {
            return Vec::new();
        }
        // torchaudio pads (width, width + orig) with zeros; 8 more for the zero taps that
        // round each phase up to whole chunks.
        let mut padded = vec![0.0f32; x.len() + 2 * self.width + self.orig + 8];
        padded[self.width..self.width + x.len()].copy_from_slice(x);
        let mut out = Vec::with_capacity(out_len);
        'periods: for k in 0.. {
            let start = k * self.orig;
            for p in 0..self.new {
                if out.len() == out_len {
                    break 'periods;
                }
                let taps = &self.taps[self.tap_offsets[p]..self.tap_offsets[p + 1]];
                let s = start + self.first_tap[p];
                out.push(dot(taps, &padded[s..s + taps.len()]));
            }
        }
        out
    }
}

/// Tap `i` of phase `p`, evaluated with torchaudio's float32 operations in its order, so
/// the kernel (and the output) agree with torchaudio to float rounding rather than to the
/// ~1e-5 by which its float32 kernel differs from the exact one.
fn torchaudio_tap(i: usize, p: usize, width: usize, orig: usize, new: usize, base: f64) -> f32 {
    use std::f32::consts::PI;
    let lpw = LOWPASS_FILTER_WIDTH as f32;
    // idx = arange(-width, width + orig) / orig;  t = arange(0, -new, -1) / new + idx
    let idx = (i as f32 - width as f32) / orig as f32;
    let mut t = -(p as f32) / new as f32 + idx;
    t *= base as f32;
    t = t.clamp(-lpw, lpw);
    let w = (t * PI / lpw / 2.0).cos();
    let window = w * w;
    t *= PI;
    let sinc = if t == 0.0 { 1.0 } else { t.sin() / t };
    let scale = (base / orig as f64) as f32;
    sinc * (window * scale)
}

/// Dot product with eight independent accumulators (vectorises without fast-math).
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_length_matches_torchaudio() {
        assert_eq!(resample(&[0.0; 100], 16_000, 8_000).len(), 50);
        assert_eq!(resample(&[0.0; 101], 16_000, 8_000).len(), 51);
        assert_eq!(resample(&[0.0; 100], 44_100, 16_000).len(), 37);
        assert_eq!(resample(&[0.0; 7], 3, 2).len(), 5);
        assert_eq!(resample(&[], 3, 2).len(), 0);
        assert_eq!(resample(&[1.0, 2.0], 8_000, 8_000), vec![1.0, 2.0]);
        assert!(resample(&[1.0], 0, 8_000).is_empty());
    }

    #[test]
    fn dc_is_preserved_in_the_interior() {
        let x = vec![0.5f32; 4_000];
        let y = resample(&x, 44_100, 16_000);
        for v in &y[100..y.len() - 100] {
            assert!((v - 0.5).abs() < 1e-3, "{v}");
        }
        let y = resample(&x, 16_000, 44_101);
        for v in &y[100..y.len() - 100] {
            assert!((v - 0.5).abs() < 1e-3, "{v}");
        }
    }

    #[test]
    fn dot_matches_naive() {
        let a: Vec<f32> = (0..19).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..19).map(|i| 1.0 - i as f32 * 0.1).collect();
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - naive).abs() < 1e-4);
    }
}
