//! The audio crate's one error enum.
//!
//! Every variant that concerns a file names its path; the feature and resampling errors
//! concern in-memory data and name what was expected and what was found.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a WAV file: {reason}")]
    NotWav { path: PathBuf, reason: String },
    #[error("{path}: unsupported WAV encoding: {reason}")]
    Unsupported { path: PathBuf, reason: String },
    #[error("{path}: corrupt WAV: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("{path}: empty audio (no samples)")]
    Empty { path: PathBuf },
    #[error("invalid feature configuration: {0}")]
    Config(String),
    /// The signal holds fewer samples than one analysis frame needs.
    #[error("audio too short for {what}: {samples} samples, need at least {needed}")]
    TooShort {
        what: String,
        samples: usize,
        needed: usize,
    },
}

impl From<tessera_tokens::TokenError> for AudioError {
    fn from(e: tessera_tokens::TokenError) -> Self {
        AudioError::Config(format!("tokens: {e}"))
    }
}
