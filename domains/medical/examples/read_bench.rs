//! Rust side of `benchmarks/nifti_read.sh`: read each NIfTI file `--repeat` times with
//! `read_volume` (to f32, scaling applied) and print one JSON line per file.
//!
//! `cargo run --release -p tessera-medical --example read_bench -- [--repeat N] FILE...`

use std::path::PathBuf;
use std::time::Instant;

fn main() {
    let mut repeat = 20usize;
    let mut files = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--repeat" {
            repeat = args.next().and_then(|n| n.parse().ok()).unwrap_or_else(|| {
                eprintln!("--repeat needs a number");
                std::process::exit(2)
            });
        } else {
            files.push(PathBuf::from(a));
        }
    }
    for f in files {
        let read = || match tessera_medical::read_volume(&f) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(1)
            }
        };
        let v = read(); // warm-up (page cache, thread pool)
        let t = Instant::now();
        let mut check = 0.0f64;
        for _ in 0..repeat {
            let v = read();
            check += f64::from(v.data[v.data.len() / 2]);
        }
        let s = t.elapsed().as_secs_f64();
        println!(
            "{{\"impl\": \"tessera\", \"file\": \"{}\", \"dims\": {:?}, \"threads\": {}, \"volumes_per_s\": {:.2}, \"ms_per_volume\": {:.2}, \"check\": {}}}",
            f.display(),
            v.dims,
            rayon::current_num_threads(),
            repeat as f64 / s,
            1e3 * s / repeat as f64,
            check / repeat as f64
        );
    }
}
