//! Events and fixed windows → epochs: the windows a manifest lists as `file#t=a,b`.

use crate::edf::Edf;
use crate::EegError;
use std::path::Path;

/// How to cut a recording into epochs.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochSpec {
    /// Seconds per epoch.
    pub window_s: f64,
    /// Seconds between fixed-window starts (ignored with events).
    pub stride_s: f64,
    /// `(annotation text, label)`: one epoch per matching annotation, starting `offset_s`
    /// after its onset. Empty: fixed windows over every contiguous segment.
    pub events: Vec<(String, String)>,
    pub offset_s: f64,
}

/// One window of a recording, in seconds from its start.
#[derive(Debug, Clone, PartialEq)]
pub struct Epoch {
    pub onset_s: f64,
    pub duration_s: f64,
    /// The event's label (fixed windows: none; the file's label applies).
    pub label: Option<String>,
}

/// The epochs of one file. Windows that fall outside the recording or across a gap of an
/// EDF+D file are left out.
pub fn epochs(path: &Path, spec: &EpochSpec) -> Result<Vec<Epoch>, EegError> {
    if !(spec.window_s > 0.0 && spec.stride_s > 0.0) {
        return Err(EegError::Config(format!(
            "epoch window ({} s) and stride ({} s) must be positive",
            spec.window_s, spec.stride_s
        )));
    }
    let mut edf = Edf::open(path)?;
    let (annotations, onsets) = edf.annotations()?;
    let dur = edf.header.record_duration_s;
    let runs: Vec<(f64, f64)> = edf
        .header
        .contiguous_runs(&onsets)
        .into_iter()
        .map(|(s, e)| (onsets[s], onsets[e - 1] + dur))
        .collect();
    let inside = |a: f64, b: f64| runs.iter().any(|&(s, e)| s <= a + 1e-9 && b <= e + 1e-9);
    let round = |v: f64| (v * 1e6).round() / 1e6;
    let mut out = Vec::new();
    if spec.events.is_empty() {
        for &(s, e) in &runs {
            let mut t = s;
            while t + spec.window_s <= e + 1e-9 {
                out.push(Epoch {
                    onset_s: round(t),
                    duration_s: spec.window_s,
                    label: None,
                });
                t += spec.stride_s;
            }
        }
    } else {
        for a in &annotations {
            let Some((_, label)) = spec.events.iter().find(|(k, _)| *k == a.text.trim()) else {
                continue;
            };
            let t = a.onset_s + spec.offset_s;
            if t >= 0.0 && inside(t, t + spec.window_s) {
                out.push(Epoch {
                    onset_s: round(t),
                    duration_s: spec.window_s,
                    label: Some(label.clone()),
                });
            }
        }
    }
    Ok(out)
}
