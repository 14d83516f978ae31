//! Windowed GeoTIFF read throughput (issue 11's reading benchmark; `benchmarks/eo_read.sh`
//! runs it beside rasterio on the same windows).
//!
//! `eo_read make FILE SIDE BANDS LAYOUT` writes a uint16 test scene (`tiled-deflate`,
//! `tiled`, `striped`); `eo_read read FILE WINDOW COUNT` reads COUNT windows of
//! WINDOW × WINDOW px (all bands, as f32 in physical units) at the positions
//! `x = i·7919 mod (W − WINDOW)`, `y = i·104729 mod (H − WINDOW)` and prints a JSON line.

use std::path::Path;
use tessera_eo::raster::{Complex, Scene, SceneOptions};

fn main() {
    let a: Vec<String> = std::env::args().collect();
    match a.get(1).map(String::as_str) {
        Some("make") => {
            let side: usize = a[3].parse().unwrap();
            let bands: usize = a[4].parse().unwrap();
            let layout: &[&str] = match a[5].as_str() {
                "tiled-deflate" => &[
                    "TILED=YES",
                    "COMPRESS=DEFLATE",
                    "PREDICTOR=2",
                    "BIGTIFF=IF_SAFER",
                ],
                "tiled" => &["TILED=YES", "BIGTIFF=IF_SAFER"],
                _ => &["BIGTIFF=IF_SAFER"],
            };
            let planes: Vec<Vec<u16>> = (0..bands)
                .map(|b| {
                    (0..side * side)
                        .map(|i| {
                            let (y, x) = ((i / side) as f64, (i % side) as f64);
                            (3000.0
                                + 1000.0 * ((x * 0.01 + b as f64).sin() + (y * 0.013).cos())
                                + (i * 7 % 97) as f64) as u16
                        })
                        .collect()
                })
                .collect();
            let names = [
                "B02", "B03", "B04", "B08", "B05", "B06", "B07", "B8A", "B11", "B12",
            ];
            tessera_eo::synth::write_geotiff(
                Path::new(&a[2]),
                side,
                side,
                &planes,
                10.0,
                &names[..bands],
                None,
                layout,
            )
            .unwrap();
        }
        Some("read") => {
            let win: usize = a[3].parse().unwrap();
            let count: usize = a[4].parse().unwrap();
            let opts = SceneOptions {
                sensor: "sentinel2".into(),
                ..Default::default()
            };
            let t = std::time::Instant::now();
            let s = Scene::open(Path::new(&a[2]), &opts).unwrap();
            let mut checksum = 0f64;
            for i in 0..count {
                let x = i * 7919 % (s.width - win);
                let y = i * 104_729 % (s.height - win);
                let v = s
                    .read((x, y, win, win), (win, win), 1 << 28, Complex::Intensity)
                    .unwrap();
                checksum += v[0] as f64 + v[v.len() - 1] as f64;
            }
            let dt = t.elapsed().as_secs_f64();
            let mb = (count * win * win * s.bands.len() * 2) as f64 / 1e6;
            println!(
                "{{\"impl\": \"tessera\", \"windows_per_s\": {:.1}, \"mb_per_s\": {:.1}, \"checksum\": {checksum}}}",
                count as f64 / dt,
                mb / dt
            );
        }
        _ => {
            eprintln!("usage: eo_read make FILE SIDE BANDS LAYOUT | eo_read read FILE WINDOW COUNT")
        }
    }
}
