//! The core crate's one error enum.
//!
//! A variant caused by another error keeps it as its [`std::error::Error::source`]; the
//! message still reads on its own (it repeats the cause's text).

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
    /// A safetensors checkpoint could not be read; `source` is candle's error.
    #[error("{path}: cannot read safetensors: {source}")]
    Safetensors {
        path: PathBuf,
        source: candle_core::Error,
    },
    #[error("missing parameter `{0}` in checkpoint")]
    MissingParam(String),
}
