//! ONNX export of Tessera encoders.
//!
//! [`export`] writes, into one folder:
//! - `model.onnx`: the token graph, inputs `values [B,N,P]`, `coords [B,N,K]`,
//!   `padding [B,N]` (f32, 1 = filler; B and N dynamic), outputs `cls [B,D]`,
//!   `patches [B,N,D]` and `embedding [B,2D]` (CLS ‖ mean of the real patches, the
//!   embedding every Tessera CLI writes). The coordinate encoding and the padding mask are
//!   computed in the graph: any token count and any spacing work without re-export.
//! - `model_grid.onnx` (optional): the same encoder behind a [`GridFront`] that takes the
//!   natural array and normalises, patchifies and builds coordinates in the graph.
//! - `model.toml`: the [`ModelCard`], also stored verbatim in each graph's metadata.
//!
//! The protobuf is written by [`proto`] (opset 17, IR version 8) with no code generator;
//! [`builder`] holds one method per operator pattern, each with a golden test.

pub mod builder;
pub mod encoder;
pub mod front;
pub mod proto;

pub use builder::GraphBuilder;
pub use front::{AxisCoords, GridAxis, GridBuild, GridFront};

use proto::{DataType, Dim, ModelProto};
use std::path::{Path, PathBuf};
use tessera_core::Encoder;
use tessera_tokens::card::{OnnxFiles, CARD_METADATA_KEY};
use tessera_tokens::ModelCard;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error(transparent)]
    Core(#[from] tessera_core::CoreError),
    #[error(transparent)]
    Tokens(#[from] tessera_tokens::TokenError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("model card: {0}")]
    Card(String),
    #[error("cannot export: {0}")]
    Unsupported(String),
    #[error("card and encoder disagree: {0}")]
    Mismatch(String),
}

pub type Result<T> = std::result::Result<T, ExportError>;

/// File names inside an export folder.
pub const TOKENS_MODEL: &str = "model.onnx";
pub const GRID_MODEL: &str = "model_grid.onnx";
pub const CARD_FILE: &str = "model.toml";

fn dyn_dim(s: &str) -> Dim {
    Dim::Named(s.into())
}

fn add_outputs(g: &mut GraphBuilder, v: &encoder::EncoderValues, d: usize, tokens: Dim) {
    let b = dyn_dim("batch");
    g.output(
        &v.cls,
        "cls",
        vec![b.clone(), Dim::Fixed(d)],
        "CLS token after the final norm",
    );
    g.output(
        &v.patches,
        "patches",
        vec![b.clone(), tokens, Dim::Fixed(d)],
        "patch tokens after the final norm (filler rows are meaningless)",
    );
    g.output(
        &v.embedding,
        "embedding",
        vec![b, Dim::Fixed(2 * d)],
        "CLS concatenated with the mean of the real patch tokens",
    );
}

/// The token graph of an encoder.
pub fn tokens_graph(enc: &Encoder) -> Result<GraphBuilder> {
    let c = &enc.cfg;
    let mut g = GraphBuilder::new("tessera_encoder");
    let (b, n) = (dyn_dim("batch"), dyn_dim("tokens"));
    let values = g.input(
        "values",
        DataType::Float,
        vec![b.clone(), n.clone(), Dim::Fixed(c.patch_dim)],
        "token values (normalised as the card says)",
    );
    let coords = g.input(
        "coords",
        DataType::Float,
        vec![b.clone(), n.clone(), Dim::Fixed(c.coord_scales.len())],
        "token coordinates in the card's units",
    );
    let padding = g.input(
        "padding",
        DataType::Float,
        vec![b, n.clone()],
        "1 for filler tokens, 0 for real ones",
    );
    let v = encoder::encoder_graph(&mut g, enc, &values, &coords, &padding)?;
    add_outputs(&mut g, &v, c.dim, n);
    Ok(g)
}

/// The grid graph: `grid [B, C, S1, …]` → the same outputs.
pub fn grid_graph(enc: &Encoder, front: &GridFront) -> Result<GraphBuilder> {
    let c = &enc.cfg;
    front.validate(c.patch_dim, c.coord_scales.len())?;
    let mut g = GraphBuilder::new("tessera_encoder_grid");
    let mut dims = vec![dyn_dim("batch"), Dim::Fixed(front.channels)];
    dims.extend(front.axes.iter().map(|a| dyn_dim(&a.name)));
    let grid = g.input(
        "grid",
        DataType::Float,
        dims,
        "the natural array, before normalisation",
    );
    let (values, coords, padding) = front.build(&mut g, &grid);
    let v = encoder::encoder_graph(&mut g, enc, &values, &coords, &padding)?;
    add_outputs(&mut g, &v, c.dim, dyn_dim("tokens"));
    Ok(g)
}

/// Serialises a graph with the card in its metadata.
pub fn model_bytes(g: GraphBuilder, card: &ModelCard) -> Result<Vec<u8>> {
    let text = card
        .to_toml()
        .map_err(|e| ExportError::Card(e.to_string()))?;
    let model = ModelProto {
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc: format!("Tessera encoder `{}` ({})", card.name, card.modality),
        graph: g.graph,
        metadata: vec![
            (CARD_METADATA_KEY.into(), text),
            ("tessera.version".into(), card.tessera_version.clone()),
            ("tessera.modality".into(), card.modality.clone()),
            ("tessera.name".into(), card.name.clone()),
        ],
    };
    Ok(model.to_bytes())
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let io = |source| ExportError::Io {
        path: path.to_path_buf(),
        source,
    };
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// What [`export`] wrote.
#[derive(Debug)]
pub struct ExportReport {
    pub files: Vec<PathBuf>,
    pub card: ModelCard,
}

/// Writes `model.onnx`, optionally `model_grid.onnx`, and `model.toml` into `dir`. The
/// card's `onnx`, `encoder` and `tessera_version` fields are filled in here.
pub fn export(
    enc: &Encoder,
    card: &ModelCard,
    front: Option<&GridFront>,
    dir: &Path,
) -> Result<ExportReport> {
    let c = &enc.cfg;
    if card.tokens.p != c.patch_dim || card.tokens.k != c.coord_scales.len() {
        return Err(ExportError::Mismatch(format!(
            "card tokens have P={} K={}, encoder takes P={} K={}",
            card.tokens.p,
            card.tokens.k,
            c.patch_dim,
            c.coord_scales.len()
        )));
    }
    let mut card = card.clone();
    card.tessera_version = env!("CARGO_PKG_VERSION").into();
    card.embedding = "cls+mean".into();
    card.encoder = tessera_tokens::card::EncoderSummary {
        dim: c.dim,
        depth: c.depth,
        heads: c.heads,
        registers: c.registers,
        coord_scales: c.coord_scales.clone(),
    };
    card.onnx = OnnxFiles {
        opset: proto::OPSET,
        tokens_model: TOKENS_MODEL.into(),
        grid_model: front.map(|_| GRID_MODEL.into()),
        grid_axes: front.map(|f| f.input_axes()).unwrap_or_default(),
    };
    std::fs::create_dir_all(dir).map_err(|source| ExportError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut files = Vec::new();
    let path = dir.join(TOKENS_MODEL);
    write_atomic(&path, &model_bytes(tokens_graph(enc)?, &card)?)?;
    files.push(path);
    if let Some(f) = front {
        let path = dir.join(GRID_MODEL);
        write_atomic(&path, &model_bytes(grid_graph(enc, f)?, &card)?)?;
        files.push(path);
    }
    let path = dir.join(CARD_FILE);
    let text = card
        .to_toml()
        .map_err(|e| ExportError::Card(e.to_string()))?;
    write_atomic(&path, text.as_bytes())?;
    files.push(path);
    Ok(ExportReport { files, card })
}
