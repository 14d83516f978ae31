//! The audio crate's one error enum.
//!
//! Every variant that concerns a file names its path; the feature and resampling errors
//! concern in-memory data and name what was expected and what was found. A variant caused
//! by another error (I/O, the WAV writer, the FFT, the token contract) keeps it as its
//! [`std::error::Error::source`]; the message still reads on its own (it repeats the
//! cause's text), so `to_string()` is enough for a one-line report.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Not a WAV file (the WAV reader) or no container the decoders know.
    #[error("{path}: not an audio file: {reason}")]
    NotWav { path: PathBuf, reason: String },
    /// A valid file in an encoding or codec the readers do not decode.
    #[error("{path}: unsupported audio: {reason}")]
    Unsupported { path: PathBuf, reason: String },
    /// A file that breaks its format's rules (the reason names the field or the packet).
    #[error("{path}: corrupt audio: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    /// A path whose `#` fragment is not a window this reader takes.
    #[error("{path}: {reason}")]
    BadPath { path: PathBuf, reason: String },
    #[error("{path}: empty audio (no samples)")]
    Empty { path: PathBuf },
    /// Writing a WAV file failed (hound's error, which wraps I/O errors).
    #[error("{path}: cannot write WAV: {source}")]
    Write { path: PathBuf, source: hound::Error },
    /// The FFT rejected its buffers (an internal size mismatch, not bad input).
    #[error("FFT failed: {0}")]
    Fft(#[source] realfft::FftError),
    /// The token contract (`tessera_tokens`) refused the tokens.
    #[error("tokens: {0}")]
    Tokens(#[from] tessera_tokens::TokenError),
    /// A resampling rate was refused.
    #[error("{0}")]
    Signal(#[from] tessera_signal::SignalError),
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
