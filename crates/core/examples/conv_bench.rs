//! Milliseconds of the segmentation decoder's 3×3×3 convolution (forward, and forward plus
//! backward) at the shape of `benchmarks/seg_step.sh`: batch 4 of 32³ voxels, 9 → 16
//! channels. `cargo run --release -p tessera-core --example conv_bench -- [reps]`
use candle_core::{Device, Tensor, Var};
use std::time::Instant;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;
use tessera_core::layers::Conv3d;
use tessera_core::ParamStore;

fn main() -> Result<()> {
    let reps: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let dev = Device::Cpu;
    let mut store = ParamStore::new(0, &dev);
    let conv = Conv3d::new(&mut store, "c", 9, 16, 3)?;
    let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (4, 32, 32, 32, 9), &dev)?)?;
    let time = |f: &dyn Fn() -> Result<()>| -> Result<f64> {
        f()?;
        let t = Instant::now();
        for _ in 0..reps {
            f()?;
        }
        Ok(1000.0 * t.elapsed().as_secs_f64() / reps as f64)
    };
    let fwd = time(&|| {
        std::hint::black_box(conv.forward(x.as_tensor())?);
        Ok(())
    })?;
    let both = time(&|| {
        let y = conv.forward(x.as_tensor())?;
        std::hint::black_box(y.sqr()?.sum_all()?.backward()?);
        Ok(())
    })?;
    println!("conv3d 9→16 k3 on 4×32³: forward {fwd:.1} ms, forward + backward {both:.1} ms");
    Ok(())
}
