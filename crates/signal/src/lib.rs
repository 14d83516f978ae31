//! Signal processing shared by the time-series domains (audio, EEG): the torchaudio-exact
//! band-limited resampler, Butterworth and notch filters applied zero-phase exactly as
//! scipy's `sosfiltfilt`, and robust per-channel statistics. Candle-free, no I/O.

pub mod filter;
pub mod resample;

pub use filter::{Band, Sos, ZeroPhase};
pub use resample::{resample, Resampler};

/// The signal crate's one error enum: a parameter out of range (the message names it).
#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    #[error("{0}")]
    Config(String),
}

/// Median and inter-quartile range of `x` (numpy's default linear interpolation between
/// order statistics); `(0, 0)` for an empty slice.
pub fn median_iqr(x: &[f32]) -> (f32, f32) {
    if x.is_empty() {
        return (0.0, 0.0);
    }
    let mut v: Vec<f32> = x.iter().copied().filter(|v| !v.is_nan()).collect();
    if v.is_empty() {
        return (f32::NAN, f32::NAN);
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let q = |p: f64| -> f64 {
        let pos = p * (v.len() - 1) as f64;
        let lo = pos.floor() as usize;
        let hi = pos.ceil() as usize;
        let f = pos - lo as f64;
        v[lo] as f64 * (1.0 - f) + v[hi] as f64 * f
    };
    (q(0.5) as f32, (q(0.75) - q(0.25)) as f32)
}

#[cfg(test)]
mod tests {
    #[test]
    fn median_iqr_matches_numpy() {
        // numpy: percentile([3, 1, 4, 1, 5, 9, 2, 6], [25, 50, 75]) = [1.75, 3.5, 5.25]
        let (m, iqr) = super::median_iqr(&[3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0]);
        assert!(
            (m - 3.5).abs() < 1e-6 && (iqr - 3.5).abs() < 1e-6,
            "{m} {iqr}"
        );
        assert_eq!(super::median_iqr(&[]), (0.0, 0.0));
    }
}
