//! Timing harness for `benchmarks/audio_decode.sh`: decodes every file of each folder
//! `repeat` times and prints the best total time per folder, with the samples decoded.
//!
//! `cargo run --release -p tessera-audio --example decode_bench -- REPEAT DIR...`

use std::path::PathBuf;
use std::time::Instant;
use tessera_audio::read_audio;

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let repeat: usize = a[0].parse().expect("repeat");
    for dir in &a[1..] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .expect("folder")
            .map(|e| e.expect("entry").path())
            .collect();
        files.sort();
        let mut samples = 0;
        let best = (0..repeat)
            .map(|_| {
                let t = Instant::now();
                samples = files
                    .iter()
                    .map(|f| read_audio(f).expect("decode").samples.len())
                    .sum::<usize>();
                t.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min);
        println!("{dir},{},{samples},{best:.4}", files.len());
    }
}
