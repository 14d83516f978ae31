//! The EEG crate's one error enum. Every variant about a file names its path; header
//! problems name the field (and the signal) that is wrong.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EegError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Not an EDF or BDF file at all.
    #[error("{path}: not an EDF/BDF file: {reason}")]
    NotEdf { path: PathBuf, reason: String },
    /// A header field or the data contradicts the format or the file.
    #[error("{path}: corrupt {format}: {reason}")]
    Corrupt {
        path: PathBuf,
        format: &'static str,
        reason: String,
    },
    /// The file is valid but holds nothing this front end can use.
    #[error("{path}: {reason}")]
    Unusable { path: PathBuf, reason: String },
    /// A filter or resampling parameter was refused.
    #[error("{0}")]
    Signal(#[from] tessera_signal::SignalError),
    /// The token contract refused the tokens.
    #[error("tokens: {0}")]
    Tokens(#[from] tessera_tokens::TokenError),
    #[error("invalid EEG configuration: {0}")]
    Config(String),
}

impl EegError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
