//! Bad-channel checks on physical values: flat, clipped, or of extreme variance against
//! the recording's other channels.

/// Why a channel looks bad, if it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bad {
    /// (Nearly) constant: peak-to-peak below 0.1 µV.
    Flat,
    /// At least 1 % of the samples at the physical minimum or maximum.
    Clipped,
    /// Standard deviation more than 10× or less than a tenth of the median channel's.
    ExtremeVariance,
}

impl Bad {
    pub fn name(self) -> &'static str {
        match self {
            Bad::Flat => "flat",
            Bad::Clipped => "clipped",
            Bad::ExtremeVariance => "extreme variance",
        }
    }
}

/// Per channel: `(values in µV, physical min and max in µV)`; one verdict each.
pub fn bad_channels(channels: &[(&[f64], f64, f64)]) -> Vec<Option<Bad>> {
    let stds: Vec<f64> = channels
        .iter()
        .map(|(x, _, _)| {
            let n = x.len().max(1) as f64;
            let m = x.iter().sum::<f64>() / n;
            (x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / n).sqrt()
        })
        .collect();
    let mut sorted = stds.clone();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(0.0);
    channels
        .iter()
        .zip(&stds)
        .map(|((x, lo, hi), &sd)| {
            let (mn, mx) = x
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
                    (a.min(v), b.max(v))
                });
            let span = (hi - lo).abs();
            let at_rail = x
                .iter()
                .filter(|&&v| (v - lo).abs() <= 1e-9 * span || (v - hi).abs() <= 1e-9 * span)
                .count();
            if x.is_empty() || mx - mn < 0.1 {
                Some(Bad::Flat)
            } else if at_rail as f64 >= 0.01 * x.len() as f64 {
                Some(Bad::Clipped)
            } else if channels.len() >= 3
                && median > 0.0
                && (sd > 10.0 * median || sd < 0.1 * median)
            {
                Some(Bad::ExtremeVariance)
            } else {
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_clipped_and_wild_channels_are_found() {
        let wave: Vec<f64> = (0..1000).map(|i| 20.0 * (i as f64 * 0.1).sin()).collect();
        let flat = vec![3.0; 1000];
        let clipped: Vec<f64> = wave.iter().map(|v| v.clamp(-10.0, 10.0)).collect();
        let wild: Vec<f64> = wave.iter().map(|v| v * 50.0).collect();
        let v = bad_channels(&[
            (&wave, -500.0, 500.0),
            (&wave, -500.0, 500.0),
            (&flat, -500.0, 500.0),
            (&clipped, -10.0, 10.0),
            (&wild, -5000.0, 5000.0),
        ]);
        assert_eq!(
            v,
            vec![
                None,
                None,
                Some(Bad::Flat),
                Some(Bad::Clipped),
                Some(Bad::ExtremeVariance)
            ]
        );
    }
}
