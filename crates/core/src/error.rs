//! The core crate's one error enum.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error(transparent)]
    Tokens(#[from] tessera_tokens::TokenError),
    #[error("{what}: expected {expected}, got {got}")]
    Shape {
        what: String,
        expected: String,
        got: String,
    },
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("missing parameter `{0}` in checkpoint")]
    MissingParam(String),
}
