//! The document crate's one error enum. Every variant about a file names its path.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DocError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not a page this crate reads, or its contents are damaged.
    #[error("{path}: {reason}")]
    Format { path: PathBuf, reason: String },
    /// A page larger than `[doc] max_pixels` (a decompression bomb or a poster).
    #[error("{path}: {width}×{height} px page exceeds the limit of {limit} pixels ([doc] max_pixels); refused before decoding")]
    TooLarge {
        path: PathBuf,
        width: u64,
        height: u64,
        limit: usize,
    },
    /// The PDF renderer failed or is missing.
    #[error("{path}: {reason}")]
    Pdf { path: PathBuf, reason: String },
    /// The token contract refused the tokens.
    #[error("tokens: {0}")]
    Tokens(#[from] tessera_tokens::TokenError),
    #[error("invalid document configuration: {0}")]
    Config(String),
}

impl DocError {
    pub(crate) fn format(path: &std::path::Path, reason: impl Into<String>) -> Self {
        DocError::Format {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
