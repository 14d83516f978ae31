//! Page decode + tokenise throughput (issue 14's speed benchmark; `benchmarks/doc_read.sh`
//! runs it beside Pillow + NumPy on the same pages).
//!
//! `doc_read LIST ROUNDS` reads the page paths of LIST (one per line, `#dpi=` allowed) ROUNDS
//! times on one thread: decode, grey, resample to 100 dpi, the whole page as 16 × 16 px
//! patch tokens at (x mm, y mm), standardised; prints one JSON line.

use std::path::Path;
use std::time::Instant;
use tessera_doc::{DocConfig, DocFrontend};
use tessera_tokens::stats::NormStats;
use tessera_tokens::Modality;

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let list = std::fs::read_to_string(&a[1]).expect("page list");
    let rounds: usize = a.get(2).and_then(|r| r.parse().ok()).unwrap_or(1);
    let pages: Vec<&str> = list.lines().filter(|l| !l.trim().is_empty()).collect();
    let fe = DocFrontend::new(&DocConfig {
        norm: Some(NormStats {
            mean: 0.05,
            std: 0.2,
        }),
        ..DocConfig::default()
    })
    .unwrap();
    let t = Instant::now();
    let (mut tokens, mut check) = (0usize, 0f64);
    for _ in 0..rounds {
        for p in &pages {
            let s = fe.decode(Path::new(p)).unwrap();
            let v = fe.eval_view(&s).unwrap();
            tokens += v.n;
            check += v.values[v.values.len() / 2] as f64;
        }
    }
    let dt = t.elapsed().as_secs_f64();
    let n = pages.len() * rounds;
    println!(
        "{{\"impl\": \"tessera\", \"pages\": {n}, \"seconds\": {dt:.3}, \"pages_per_s\": {:.2}, \"tokens\": {tokens}, \"check\": {check:.3}}}",
        n as f64 / dt
    );
}
