//! A small labelled audio dataset the project generates itself, for the quick start and
//! for tests where `../shared/data` is absent: each class is a harmonic sound with its own
//! pitch contour and formant pair; every clip varies pitch, duration, loudness and noise.

use crate::AudioError;
use std::path::{Path, PathBuf};
use tessera_tokens::Rng;

/// Writes `per_class` clips for each of `classes` classes as 16-bit mono WAV at
/// `sample_rate_hz` into `dir/<class>/clip_<i>.wav` and a `manifest.csv`
/// (`path,label,split`; the first fifth of each class is `test`). Returns the manifest path.
pub fn write_dataset(
    dir: &Path,
    classes: usize,
    per_class: usize,
    sample_rate_hz: u32,
    seed: u64,
) -> Result<PathBuf, AudioError> {
    let io = |p: &Path, e: std::io::Error| AudioError::Io {
        path: p.to_path_buf(),
        source: e,
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let mut rng = Rng::new(seed);
    let mut manifest = String::from("path,label,split\n");
    let sr = sample_rate_hz as f64;
    for c in 0..classes {
        let class_dir = dir.join(format!("class{c}"));
        std::fs::create_dir_all(&class_dir).map_err(|e| io(&class_dir, e))?;
        // Class identity: base pitch slope and two formants.
        let slope = -0.5 + (c as f64 * 0.618).fract();
        let f1 = 300.0 + 700.0 * ((c as f64 * 0.377).fract());
        let f2 = 1000.0 + 1800.0 * ((c as f64 * 0.741).fract());
        for i in 0..per_class {
            let dur = 0.4 + 0.5 * rng.uniform();
            let f0 = 90.0 + 120.0 * rng.uniform();
            let amp = 0.2 + 0.5 * rng.uniform();
            let noise = 0.005 + 0.02 * rng.uniform();
            let n = (dur * sr) as usize;
            let mut phase = 0.0f64;
            let mut samples = Vec::with_capacity(n);
            for t in 0..n {
                let u = t as f64 / n as f64;
                let pitch = f0 * (1.0 + slope * u);
                phase += 2.0 * std::f64::consts::PI * pitch / sr;
                let mut x = 0.0;
                for h in 1..=20 {
                    let fh = pitch * h as f64;
                    if fh > sr / 2.0 {
                        break;
                    }
                    let g = (-((fh - f1) / 150.0).powi(2)).exp()
                        + 0.7 * (-((fh - f2) / 250.0).powi(2)).exp()
                        + 0.05;
                    x += g * (h as f64 * phase).sin();
                }
                let env = (std::f64::consts::PI * u).sin().powf(0.5);
                samples.push((amp * env * x * 0.3 + noise * rng.normal()).clamp(-1.0, 1.0));
            }
            let path = class_dir.join(format!("clip_{i}.wav"));
            let spec = hound::WavSpec {
                channels: 1,
                sample_rate: sample_rate_hz,
                bits_per_sample: 16,
                sample_format: hound::SampleFormat::Int,
            };
            let werr = |source: hound::Error| AudioError::Write {
                path: path.clone(),
                source,
            };
            let mut w = hound::WavWriter::create(&path, spec).map_err(werr)?;
            for s in samples {
                w.write_sample((s * 32767.0) as i16).map_err(werr)?;
            }
            w.finalize().map_err(werr)?;
            let split = if i < per_class / 5 { "test" } else { "train" };
            manifest.push_str(&format!("class{c}/clip_{i}.wav,class{c},{split}\n"));
        }
    }
    let m = dir.join("manifest.csv");
    std::fs::write(&m, manifest).map_err(|e| io(&m, e))?;
    Ok(m)
}
