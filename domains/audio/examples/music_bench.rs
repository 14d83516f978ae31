//! Timing harness for `benchmarks/music_features.sh`: computes the CQT (librosa's defaults),
//! chroma_stft and chroma_cqt of one mono float32 signal (raw little-endian, 22 050 Hz)
//! `repeat` times each and prints the best time per feature, with the output shape.
//!
//! `cargo run --release -p tessera-audio --example music_bench -- REPEAT FILE.f32`

use std::time::Instant;
use tessera_audio::features::{FeatureConfig, Featurizer};
use tessera_audio::music::{ChromaConfig, ChromaSource, CqtConfig};

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let repeat: usize = a[0].parse().expect("repeat");
    let bytes = std::fs::read(&a[1]).expect("signal file");
    let x: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let features = [
        ("cqt", FeatureConfig::Cqt(CqtConfig::default())),
        (
            "chroma_stft",
            FeatureConfig::Chroma(ChromaConfig::default()),
        ),
        (
            "chroma_cqt",
            FeatureConfig::Chroma(ChromaConfig {
                source: ChromaSource::Cqt,
                ..ChromaConfig::default()
            }),
        ),
    ];
    println!("side,feature,bins,frames,seconds");
    for (name, cfg) in features {
        let f = Featurizer::new(&cfg).expect("config");
        let mut shape = (0, 0);
        let best = (0..repeat)
            .map(|_| {
                let t = Instant::now();
                let s = f.compute(&x).expect("features");
                shape = (s.bins, s.frames);
                t.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min);
        println!("tessera,{name},{},{},{best:.5}", shape.0, shape.1);
    }
}
