//! GFLOP/s of candle's matmul for the linear layers of a ViT-tiny step (forward `x Wᵀ`,
//! backward `dY W` and `dYᵀ x`), to tell GEMM speed from everything around it.
//! `cargo run --release -p tessera-core --example gemm_bench -- [rows] [reps]`
use candle_core::{Device, Tensor};
use std::time::Instant;

type Case<'a> = (&'a str, Box<dyn Fn() -> candle_core::Result<Tensor> + 'a>);

fn main() -> candle_core::Result<()> {
    let mut args = std::env::args().skip(1);
    let rows: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(4096);
    let reps: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(20);
    let dev = Device::Cpu;
    for (din, dout) in [(192, 576), (192, 192), (192, 768), (768, 192)] {
        let x = Tensor::randn(0f32, 1.0, (rows, din), &dev)?;
        let w = Tensor::randn(0f32, 1.0, (dout, din), &dev)?;
        let dy = Tensor::randn(0f32, 1.0, (rows, dout), &dev)?;
        let cases: [Case; 3] = [
            ("x·Wᵀ", Box::new(|| x.matmul(&w.t()?))),
            ("dY·W", Box::new(|| dy.matmul(&w))),
            ("dYᵀ·x", Box::new(|| dy.t()?.matmul(&x))),
        ];
        for (name, f) in cases.iter() {
            f()?;
            let t = Instant::now();
            for _ in 0..reps {
                std::hint::black_box(f()?);
            }
            let s = t.elapsed().as_secs_f64() / reps as f64;
            let gflop = 2.0 * (rows * din * dout) as f64 / 1e9;
            println!(
                "{rows}x{din}->{dout} {name:6} {:7.3} ms {:6.1} GFLOP/s",
                s * 1e3,
                gflop / s
            );
        }
    }
    Ok(())
}
