//! Times reading EDF/BDF files fully into f64 physical values (every ordinary signal,
//! plus the annotations), best of R repeats per file, summed over files — the same
//! protocol as `benchmarks/edf_read.py` for pyEDFlib and MNE.
//!
//!     cargo run --release -p tessera-eeg --example edf_read -- FILES... [--repeat R]

use std::time::Instant;
use tessera_eeg::edf::Edf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut repeat = 5usize;
    let mut files = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--repeat" {
            repeat = args.next().ok_or("--repeat needs a value")?.parse()?;
        } else {
            files.push(a);
        }
    }
    if files.is_empty() {
        return Err("usage: edf_read FILES... [--repeat R]".into());
    }
    let (mut seconds, mut bytes, mut samples) = (0.0f64, 0u64, 0usize);
    for f in &files {
        let mut best = f64::INFINITY;
        let mut n = 0;
        for _ in 0..repeat {
            let t = Instant::now();
            let mut e = Edf::open(std::path::Path::new(f))?;
            let which = e.header.data_signals();
            let records = e.header.records;
            let x = e.read_physical(&which, 0, records)?;
            let _ = e.annotations()?;
            best = best.min(t.elapsed().as_secs_f64());
            n = x.iter().map(Vec::len).sum();
            std::hint::black_box(&x);
        }
        seconds += best;
        bytes += std::fs::metadata(f)?.len();
        samples += n;
    }
    println!(
        "{{\"lib\": \"tessera\", \"files\": {}, \"bytes\": {bytes}, \"samples\": {samples}, \"seconds\": {seconds:.6}, \"mb_per_s\": {:.1}, \"msamples_per_s\": {:.1}}}",
        files.len(),
        bytes as f64 / 1e6 / seconds,
        samples as f64 / 1e6 / seconds
    );
    Ok(())
}
