use candle_core::{Device, Tensor, Var};
use std::time::Instant;
use tessera_core::layers::Conv3d;
use tessera_core::ParamStore;
fn main() {
    let dev = Device::Cpu;
    let mut store = ParamStore::new(0, &dev);
    let c1 = Conv3d::new(&mut store, "a", 9, 16, 3).unwrap();
    let c2 = Conv3d::new(&mut store, "b", 16, 16, 3).unwrap();
    let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (4, 32, 32, 32, 9), &dev).unwrap()).unwrap();
    for _ in 0..2 {
        let t = Instant::now();
        let y = c1.forward(x.as_tensor()).unwrap().relu().unwrap();
        let t1 = t.elapsed();
        let z = c2.forward(&y).unwrap();
        let t2 = t.elapsed();
        let g = z.sum_all().unwrap().backward().unwrap();
        let t3 = t.elapsed();
        drop(g);
        println!("fwd1 {:?} fwd2 {:?} bwd {:?}", t1, t2 - t1, t3 - t2);
    }
    let cols = Tensor::randn(0f32, 1.0, (131072, 432), &dev).unwrap();
    let g = Tensor::randn(0f32, 1.0, (131072, 16), &dev).unwrap();
    let w = Tensor::randn(0f32, 1.0, (16, 432), &dev).unwrap();
    for _ in 0..2 {
        let t = Instant::now();
        let _a = cols.t().unwrap().matmul(&g).unwrap();
        let t1 = t.elapsed();
        let _b = g.t().unwrap().matmul(&cols).unwrap();
        let t2 = t.elapsed();
        let _c = g.matmul(&w).unwrap();
        let t3 = t.elapsed();
        let _d = cols.matmul(&w.t().unwrap()).unwrap();
        let t4 = t.elapsed();
        println!(
            "colsT@g {:?} gT@cols {:?} g@w {:?} cols@wT {:?}",
            t1,
            t2 - t1,
            t3 - t2,
            t4 - t3
        );
    }
}
