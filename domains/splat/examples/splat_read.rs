//! Timing harness for `benchmarks/splat_read.sh`: reads each file `repeat` times (PLY,
//! .splat, .spz, point sets) and groups a file's Gaussians by FPS + kNN, printing the best
//! time of each in seconds.
//!
//! `cargo run --release -p tessera-splat --example splat_read -- read REPEAT FILE...`
//! `cargo run --release -p tessera-splat --example splat_read -- group REPEAT GROUPS K FILE`

use std::path::Path;
use std::time::Instant;
use tessera_splat::frontend::read_file;
use tessera_splat::group::{fps, knn};

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let repeat: usize = a[1].parse().expect("repeat");
    let best = |f: &mut dyn FnMut()| {
        (0..repeat)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min)
    };
    match a[0].as_str() {
        "read" => {
            for f in &a[2..] {
                let mut n = 0;
                let s = best(&mut || n = read_file(Path::new(f), 3, u64::MAX).unwrap().1.len());
                println!("read,{f},{n},{s:.4}");
            }
        }
        "group" => {
            let (groups, k): (usize, usize) = (a[2].parse().unwrap(), a[3].parse().unwrap());
            let g = read_file(Path::new(&a[4]), 0, u64::MAX).unwrap().1;
            let s = best(&mut || {
                let c: Vec<[f32; 3]> = fps(&g.pos, groups, 0).iter().map(|&i| g.pos[i]).collect();
                std::hint::black_box(knn(&g.pos, &c, k));
            });
            println!("group,{},{groups},{k},{s:.4}", g.len());
        }
        other => panic!("unknown mode {other}"),
    }
}
