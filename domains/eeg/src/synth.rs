//! A small labelled EEG dataset the project generates itself (the quick start, and tests
//! where `../shared/data` is absent). Two classes: `alpha` (a 10 Hz rhythm strongest over
//! the occipital electrodes) and `beta` (a 20 Hz rhythm strongest over the central ones),
//! on 1/f background noise. Recordings vary everything a reader must handle: montage
//! (subsets of the 10-20 system, in shuffled order, with label styles `Fp1`, `EEG FP1-REF`,
//! `T3`), sample rate (128, 200, 256 Hz), format (EDF, EDF+C with annotations, BDF) and
//! an extra ECG signal.

use crate::edf::{self, Annotation, Plus, Width, WriteSignal, WriteSpec};
use crate::montage::standard;
use crate::EegError;
use std::path::{Path, PathBuf};
use tessera_tokens::Rng;

const MONTAGE: [&str; 19] = [
    "Fp1", "Fp2", "F7", "F3", "Fz", "F4", "F8", "T3", "C3", "Cz", "C4", "T4", "T5", "P3", "Pz",
    "P4", "T6", "O1", "O2",
];

/// Writes `per_class` recordings of `seconds` s for each class into `dir` and a
/// `manifest.csv` (`path,label,split`; every fifth recording `test`). Returns the manifest.
pub fn write_dataset(
    dir: &Path,
    per_class: usize,
    seconds: usize,
    seed: u64,
) -> Result<PathBuf, EegError> {
    std::fs::create_dir_all(dir).map_err(|e| EegError::io(dir, e))?;
    let mut rng = Rng::new(seed);
    let mut manifest = String::from("path,label,split\n");
    for (c, class) in ["alpha", "beta"].iter().enumerate() {
        for i in 0..per_class {
            let k = c * per_class + i;
            let rate = [128usize, 200, 256][k % 3];
            let (width, plus, ext) = match k % 4 {
                0 => (Width::Edf, None, "edf"),
                1 => (Width::Edf, Some(Plus::Continuous), "edf"),
                2 => (Width::Bdf, Some(Plus::Continuous), "bdf"),
                _ => (Width::Bdf, None, "bdf"),
            };
            let mut names: Vec<&str> = MONTAGE.to_vec();
            rng.shuffle(&mut names);
            names.truncate(8 + rng.below(12));
            let n = seconds * rate;
            let freq = if c == 0 { 10.0 } else { 20.0 } * (0.95 + 0.1 * rng.uniform());
            let phase = rng.uniform() * std::f64::consts::TAU;
            let mut signals = Vec::new();
            for (j, name) in names.iter().enumerate() {
                let mm = standard(name).map(|s| s.1).unwrap_or([0.0; 3]);
                // Occipital (y < −50 mm) for alpha, central (|y| < 30 mm) for beta.
                let focus = if c == 0 {
                    (-(mm[1] as f64 + 80.0) / 40.0).exp().min(1.0)
                } else {
                    (-(mm[1] as f64 / 30.0).powi(2)).exp()
                };
                let amp = 5.0 + 25.0 * focus;
                let mut brown = 0.0;
                let data: Vec<f64> = (0..n)
                    .map(|t| {
                        brown = 0.98 * brown + rng.normal() * 3.0;
                        let s = t as f64 / rate as f64;
                        amp * (std::f64::consts::TAU * freq * s + phase).sin()
                            + brown
                            + 2.0 * rng.normal()
                    })
                    .collect();
                let label = match (k + j) % 3 {
                    0 => name.to_string(),
                    1 => format!("EEG {}-REF", name.to_ascii_uppercase()),
                    _ => format!("EEG {name}"),
                };
                let (dmin, dmax) = width.digital_limits();
                signals.push(WriteSignal {
                    label,
                    unit: "uV".into(),
                    physical_min: -800.0,
                    physical_max: 800.0,
                    digital_min: dmin,
                    digital_max: dmax,
                    prefilter: "HP:0.1Hz LP:70Hz".into(),
                    samples_per_record: rate,
                    data,
                });
            }
            // An ECG channel (not EEG: kept out of the tokens) at half the rate, in mV.
            signals.push(WriteSignal {
                label: "ECG ECG".into(),
                unit: "mV".into(),
                physical_min: -5.0,
                physical_max: 5.0,
                digital_min: -2048,
                digital_max: 2047,
                prefilter: String::new(),
                samples_per_record: rate / 2,
                data: (0..n / 2)
                    .map(|t| {
                        ((t as f64 / rate as f64 * 2.0 * 1.2 * std::f64::consts::TAU).sin()).powi(9)
                    })
                    .collect(),
            });
            let annotations = if plus.is_some() {
                (0..seconds / 4)
                    .map(|s| Annotation {
                        onset_s: 4.0 * s as f64 + 0.5,
                        duration_s: Some(3.0),
                        text: class.to_string(),
                    })
                    .collect()
            } else {
                Vec::new()
            };
            let name = format!("{class}_{i:02}.{ext}");
            edf::write(
                &dir.join(&name),
                &WriteSpec {
                    width,
                    plus,
                    record_duration_s: 1.0,
                    signals,
                    annotations,
                    record_onsets_s: None,
                    patient: format!("X X X demo{k}"),
                    recording: "Startdate 01-JAN-2026 X X tessera-synth".into(),
                },
            )?;
            let split = if i % 5 == 4 { "test" } else { "train" };
            manifest.push_str(&format!("{name},{class},{split}\n"));
        }
    }
    let m = dir.join("manifest.csv");
    std::fs::write(&m, manifest).map_err(|e| EegError::io(&m, e))?;
    Ok(m)
}
