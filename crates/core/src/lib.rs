//! Tessera's shared transformer core (candle): a parameter store with deterministic
//! initialisation and timm-style names, fused CPU kernels with backward passes
//! (layer norm, softmax), the coordinate (Fourier) encoding and the pre-norm ViT encoder
//! that every domain and recipe shares.

pub mod attention;
mod conv;
pub mod embed;
pub mod encoder;
pub mod error;
pub mod layers;
mod linear;
pub mod ops;
pub mod params;
pub mod posenc;

/// Runs a closure without recording operations for a backward pass (`torch.no_grad()`).
pub use candle_core::backprop::no_grad;
pub use embed::{EmbedConfig, PatchEmbed};
pub use encoder::{Encoder, EncoderConfig, EncoderOutput, EncoderSpec, Forward};
pub use error::CoreError;
pub use params::ParamStore;

pub type Result<T> = std::result::Result<T, CoreError>;

use candle_core::{Device, Tensor};
use tessera_tokens::Tokens;

/// A token batch as tensors: `values [B,N,P]`, `coords [B,N,K]`, `padding [B,N]` (f32, 1 = filler).
pub struct TokenTensors {
    pub values: Tensor,
    pub coords: Tensor,
    pub padding: Tensor,
}

impl TokenTensors {
    pub fn from_tokens(t: &Tokens, device: &Device) -> Result<Self> {
        let values = Tensor::from_slice(&t.values, (t.b, t.n, t.p), device)?;
        let coords = Tensor::from_slice(&t.coords, (t.b, t.n, t.k), device)?;
        let pad: Vec<f32> = t.padding.iter().map(|&x| x as f32).collect();
        let padding = Tensor::from_vec(pad, (t.b, t.n), device)?;
        Ok(Self {
            values,
            coords,
            padding,
        })
    }
}
