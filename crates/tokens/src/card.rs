//! The deployment model card: everything an application needs to turn its own files into
//! the tokens an exported encoder expects, and nothing that needs a numeric framework.
//!
//! It is written as `model.toml` beside the ONNX files and, verbatim, into the ONNX
//! metadata under [`CARD_METADATA_KEY`], so a file that travels alone still carries it.

use crate::TokenSpec;
use serde::{Deserialize, Serialize};

/// ONNX metadata key holding the whole card as TOML.
pub const CARD_METADATA_KEY: &str = "tessera.card";

/// Encoder shape, for checking a graph against its card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncoderSummary {
    pub dim: usize,
    pub depth: usize,
    pub heads: usize,
    pub registers: usize,
    /// Coordinate scales the Fourier encoding was built with (one per axis).
    pub coord_scales: Vec<f32>,
}

/// The exported files and their tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OnnxFiles {
    pub opset: i64,
    /// Token graph: inputs `values [B,N,P]`, `coords [B,N,K]`, `padding [B,N]` (f32, 1 =
    /// filler); outputs `cls [B,D]`, `patches [B,N,D]`, `embedding [B,2D]`.
    pub tokens_model: String,
    /// Optional grid graph: input `grid [B, C, ...]` (the natural array, before
    /// normalisation), same outputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grid_model: Option<String>,
    /// Axis names of the grid input, e.g. `["batch", "channel", "mel", "frame"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grid_axes: Vec<String>,
}

/// Provenance of the weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Training {
    /// Data the encoder was pretrained on (path or dataset name as given to `pretrain`).
    #[serde(default)]
    pub data: String,
    #[serde(default)]
    pub steps: u64,
    #[serde(default)]
    pub seed: u64,
    /// The recipe's resolved configuration (kind and hyperparameters).
    #[serde(default)]
    pub recipe: toml::Table,
}

/// A deployment card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    pub name: String,
    pub tessera_version: String,
    /// Which domain front end reads files for this model (`audio`, `medical`, ...).
    pub modality: String,
    /// How embeddings are pooled: `cls+mean` (concatenated, width 2D).
    pub embedding: String,
    pub tokens: TokenSpec,
    pub encoder: EncoderSummary,
    pub onnx: OnnxFiles,
    pub training: Training,
    /// The domain front end's configuration (reader, features, tokenizer, normalisation
    /// statistics, sample rate or spacing, channel order), as that domain defines it.
    pub frontend: toml::Table,
}

impl ModelCard {
    /// A card for `modality`; the exporter fills in the encoder summary, the ONNX file
    /// names, the pooling and the Tessera version.
    pub fn new(
        name: &str,
        modality: &str,
        tokens: TokenSpec,
        training: Training,
        frontend: toml::Table,
    ) -> Self {
        Self {
            name: name.into(),
            tessera_version: String::new(),
            modality: modality.into(),
            embedding: String::new(),
            tokens,
            encoder: EncoderSummary {
                dim: 0,
                depth: 0,
                heads: 0,
                registers: 0,
                coord_scales: Vec::new(),
            },
            onnx: OnnxFiles {
                opset: 0,
                tokens_model: String::new(),
                grid_model: None,
                grid_axes: Vec::new(),
            },
            training,
            frontend,
        }
    }

    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string(self)
    }

    pub fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    /// The front-end table as the domain's own configuration type.
    pub fn frontend_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, toml::de::Error> {
        toml::Table::try_into(self.frontend.clone())
    }
}
