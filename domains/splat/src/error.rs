//! The splat crate's one error enum. Every variant about a file names its path.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SplatError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not a splat or point set this crate reads, or its contents are damaged.
    #[error("{path}: {reason}")]
    Format { path: PathBuf, reason: String },
    /// The token contract refused the tokens.
    #[error("tokens: {0}")]
    Tokens(#[from] tessera_tokens::TokenError),
    #[error("invalid splat configuration: {0}")]
    Config(String),
}

impl SplatError {
    pub(crate) fn format(path: &Path, reason: impl Into<String>) -> Self {
        SplatError::Format {
            path: path.into(),
            reason: reason.into(),
        }
    }
    pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| SplatError::Io {
            path: path.into(),
            source,
        }
    }
}
