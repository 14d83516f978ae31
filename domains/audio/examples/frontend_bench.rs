//! Timing harness for `benchmarks/frontend.sh`: log-mel and Kaldi fbank (the crate's
//! defaults: 16 kHz, 25 ms windows, 10 ms hop, 128 bins) of a 10 s clip, and resampling it
//! 16 → 44.1 kHz, 44.1 → 16 kHz and 48 → 16 kHz with a resampler built once. Prints, per
//! operation, the best of REPEAT passes of 20 clips as clips per second (one thread).
//!
//! `cargo run --release -p tessera-audio --example frontend_bench -- REPEAT`

use std::hint::black_box;
use std::time::Instant;
use tessera_audio::features::{FbankConfig, FeatureConfig, Featurizer, MelConfig};
use tessera_audio::resample::Resampler;

/// The clip both sides time: a tone plus a deterministic saw-like noise, 160 000 samples.
fn clip(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| {
            ((i as f32) * 0.0123).sin() * 0.5 + ((i * 7919 % 1000) as f32 / 1000.0 - 0.5) * 0.1
        })
        .collect()
}

fn best(repeat: usize, mut f: impl FnMut()) -> f64 {
    const CLIPS: usize = 20;
    (0..repeat)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..CLIPS {
                f();
            }
            CLIPS as f64 / t.elapsed().as_secs_f64()
        })
        .fold(0.0, f64::max)
}

fn main() {
    let repeat: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("REPEAT must be a number"))
        .unwrap_or(5);
    let x = clip(160_000);
    println!("side,operation,clips_per_s");
    for (name, cfg) in [
        ("logmel", FeatureConfig::LogMel(MelConfig::default())),
        ("fbank", FeatureConfig::Fbank(FbankConfig::default())),
    ] {
        let f = Featurizer::new(&cfg).expect("config");
        let r = best(repeat, || {
            black_box(f.compute(&x).expect("features"));
        });
        println!("tessera,{name},{r:.1}");
    }
    for (from, to) in [(16_000, 44_100), (44_100, 16_000), (48_000, 16_000)] {
        let rs = Resampler::new(from, to).expect("rates");
        let r = best(repeat, || {
            black_box(rs.process(&x));
        });
        println!("tessera,resample_{from}_{to},{r:.1}");
    }
}
