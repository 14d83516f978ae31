//! Generated demo shapes: spheres, cubes and tori as Gaussian splats or point sets, written in
//! every format the crate reads (binary and ASCII PLY of both byte orders, `.splat`, `.spz`,
//! `.npy`, `.off`, `.xyz`), with a `path,label,split` manifest.

use crate::formats::{write_npy, write_splat, write_spz};
use crate::gaussians::{canonical_quat, Gaussians};
use crate::ply::{self, Encoding};
use crate::SplatError;
use std::path::{Path, PathBuf};
use tessera_tokens::Rng;

pub const CLASSES: [&str; 3] = ["sphere", "cube", "torus"];

/// A shape of `n` Gaussians on the surface of `class`, randomly stretched and turned,
/// with random colour, opacity, scales and rotations (SH degree 1 when `sh`).
pub fn shape(class: &str, n: usize, sh: bool, rng: &mut Rng) -> Gaussians {
    let mut u = || rng.uniform() as f32;
    let mut pos = Vec::with_capacity(n);
    for _ in 0..n {
        let p = match class {
            "sphere" => {
                let (z, t) = (2.0 * u() - 1.0, std::f32::consts::TAU * u());
                let r = (1.0 - z * z).sqrt();
                [r * t.cos(), r * t.sin(), z]
            }
            "cube" => {
                let face = (u() * 6.0) as usize % 6;
                let (a, b) = (2.0 * u() - 1.0, 2.0 * u() - 1.0);
                let s = if face.is_multiple_of(2) { 0.8 } else { -0.8 };
                match face / 2 {
                    0 => [s, 0.8 * a, 0.8 * b],
                    1 => [0.8 * a, s, 0.8 * b],
                    _ => [0.8 * a, 0.8 * b, s],
                }
            }
            _ => {
                let (a, b) = (std::f32::consts::TAU * u(), std::f32::consts::TAU * u());
                let r = 0.7 + 0.3 * b.cos();
                [r * a.cos(), r * a.sin(), 0.3 * b.sin()]
            }
        };
        pos.push(p);
    }
    let stretch: [f32; 3] = std::array::from_fn(|_| 0.8 + 0.4 * rng.uniform() as f32);
    let turn = std::f32::consts::TAU * rng.uniform() as f32;
    let (s, c) = turn.sin_cos();
    let size = 0.5 + 2.0 * rng.uniform() as f32;
    for p in &mut pos {
        let q = [c * p[0] - s * p[1], s * p[0] + c * p[1], p[2]];
        *p = std::array::from_fn(|a| q[a] * stretch[a] * size + 0.01 * rng.normal() as f32);
    }
    let mut g = Gaussians::points(pos);
    g.attributes = true;
    let base: [f32; 3] = std::array::from_fn(|_| rng.normal() as f32);
    for i in 0..n {
        g.log_scale[i] = std::array::from_fn(|_| (0.03 * size).ln() + 0.3 * rng.normal() as f32);
        g.rot[i] = canonical_quat(std::array::from_fn(|_| rng.normal() as f32))
            .unwrap_or([1.0, 0.0, 0.0, 0.0]);
        g.opacity[i] = 0.3 + 0.7 * rng.uniform() as f32;
        g.dc[i] = std::array::from_fn(|k| base[k] + 0.2 * rng.normal() as f32);
    }
    if sh {
        g.sh_degree = 1;
        g.sh_rest = (0..n * 9).map(|_| 0.1 * rng.normal() as f32).collect();
    }
    g
}

/// Writes `per_class` shapes of each class in rotating formats and a manifest; every
/// fourth shape of a class is a test shape.
pub fn write_dataset(dir: &Path, seed: u64) -> Result<PathBuf, SplatError> {
    std::fs::create_dir_all(dir).map_err(SplatError::io(dir))?;
    let mut rng = Rng::new(seed);
    let mut manifest = String::from("path,label,split\n");
    let per_class = 8;
    for class in CLASSES {
        for i in 0..per_class {
            let n = 160 + rng.below(96);
            let k = (i + class.len()) % 8;
            let g = shape(class, n, k < 3, &mut rng);
            let name = match k {
                0 => format!("{class}_{i:02}.ply"),
                1 => format!("{class}_{i:02}_ascii.ply"),
                2 => format!("{class}_{i:02}_be.ply"),
                3 => format!("{class}_{i:02}.splat"),
                4 => format!("{class}_{i:02}.spz"),
                5 => format!("{class}_{i:02}.npy"),
                6 => format!("{class}_{i:02}.off"),
                _ => format!("{class}_{i:02}.xyz"),
            };
            let p = dir.join(&name);
            match k {
                0 => ply::write(&p, &g, Encoding::BinaryLe)?,
                1 => ply::write(&p, &g, Encoding::Ascii)?,
                2 => ply::write(&p, &g, Encoding::BinaryBe)?,
                3 => write_splat(&p, &g)?,
                4 => write_spz(&p, &g)?,
                5 => write_npy(&p, &g.pos)?,
                6 => {
                    let mut s = format!("OFF\n{} 0 0\n", g.len());
                    g.pos
                        .iter()
                        .for_each(|q| s += &format!("{} {} {}\n", q[0], q[1], q[2]));
                    std::fs::write(&p, s).map_err(SplatError::io(&p))?
                }
                _ => {
                    let mut s = String::from("x y z\n");
                    g.pos
                        .iter()
                        .for_each(|q| s += &format!("{} {} {}\n", q[0], q[1], q[2]));
                    std::fs::write(&p, s).map_err(SplatError::io(&p))?
                }
            }
            let split = if i % 4 == 3 { "test" } else { "train" };
            manifest += &format!("{name},{class},{split}\n");
        }
    }
    let m = dir.join("labels.csv");
    std::fs::write(&m, manifest).map_err(SplatError::io(&m))?;
    Ok(m)
}

/// A labelled scene for per-Gaussian segmentation: a sphere, a cube and a torus of
/// `per_shape` Gaussians each, side by side along x and all of one colour (so only
/// geometry tells them apart), labelled 1, 2 and 3, plus `per_shape / 10` Gaussians
/// scattered through the scene labelled 0 (unlabelled). The labels are also kept as a
/// `label` property, which the PLY writer writes.
pub fn labelled_scene(per_shape: usize, rng: &mut Rng) -> (Gaussians, Vec<u32>) {
    let mut scene = Gaussians {
        attributes: true,
        ..Gaussians::default()
    };
    let mut labels = Vec::new();
    let mut add = |g: Gaussians, shift: [f32; 3], label: u32, rng: &mut Rng| {
        for i in 0..g.len() {
            scene
                .pos
                .push(std::array::from_fn(|a| g.pos[i][a] + shift[a]));
            scene.log_scale.push(g.log_scale[i]);
            scene.rot.push(g.rot[i]);
            scene.opacity.push(g.opacity[i]);
            scene
                .dc
                .push(std::array::from_fn(|_| 0.5 + 0.1 * rng.normal() as f32));
            labels.push(label);
        }
    };
    for (k, class) in CLASSES.iter().enumerate() {
        let g = shape(class, per_shape, false, rng);
        add(g, [7.0 * k as f32, 0.0, 0.0], k as u32 + 1, rng);
    }
    let clutter = (0..per_shape / 10)
        .map(|_| {
            [
                -3.0 + 20.0 * rng.uniform() as f32,
                3.0 * rng.normal() as f32,
                3.0 * rng.normal() as f32,
            ]
        })
        .collect();
    add(Gaussians::points(clutter), [0.0; 3], 0, rng);
    scene.extra = vec![("label".into(), labels.iter().map(|&l| l as f32).collect())];
    (scene, labels)
}
