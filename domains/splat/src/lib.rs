//! 3-D Gaussian splats and point sets: readers for INRIA 3DGS PLY (ASCII, binary little- and
//! big-endian; `ply`), PlayCanvas compressed PLY, antimatter15 `.splat`, Niantic `.spz`
//! and OFF/XYZ/NPY point sets (`formats`), all into activated Gaussians in columns
//! (`gaussians`); farthest-point sampling and k-nearest-neighbour groups (`group`); the
//! front end that makes one token per group at its centre (`frontend`), its `Modality` impl
//! and generated demo shapes (`synth`). Candle-free; the `tessera-splat` binary lives in
//! `domains/splat/cli`.

pub mod error;
pub mod formats;
pub mod frontend;
pub mod gaussians;
pub mod group;
pub mod modality;
pub mod ply;
pub mod synth;

pub use error::SplatError;
pub use frontend::{Attributes, Normalize, SplatConfig, SplatFrontend, SplatSample};
pub use gaussians::Gaussians;
