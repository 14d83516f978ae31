//! The EO crate's one error enum. Every variant about a file names its path.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EoError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// GDAL refused the file or a read from it.
    #[error("{path}: {reason}")]
    Gdal { path: PathBuf, reason: String },
    /// The file opens but holds nothing this front end can use, or contradicts the card.
    #[error("{path}: {reason}")]
    Unusable { path: PathBuf, reason: String },
    /// The token contract refused the tokens.
    #[error("tokens: {0}")]
    Tokens(#[from] tessera_tokens::TokenError),
    #[error("invalid EO configuration: {0}")]
    Config(String),
}
