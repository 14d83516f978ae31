//! Audio domain: WAV reading (and FLAC, MP3, Ogg Vorbis, AAC/M4A, ALAC, AIFF through
//! symphonia, see [`codec`]), band-limited resampling, log-mel / Kaldi fbank features, the
//! music front ends (constant-Q transform and chroma, see [`music`]) and the spectrogram
//! patch tokenizer (frequency and time coordinates).
//!
//! Everything here is free of candle so an ONNX-runtime-only application can reuse it;
//! the `tessera-audio` binary lives in `domains/audio/cli` (package `tessera-audio-cli`).

pub mod augment;
pub mod codec;
pub mod error;
pub mod features;
pub mod frontend;
pub mod modality;
pub mod music;
pub mod opus;
pub mod synth;
pub mod tokenizer;
pub mod wav;

pub use codec::{read_audio, AudioInfo};
pub use error::AudioError;
pub use frontend::{AudioFrontend, AudioFrontendConfig};
/// The resampler now lives in `tessera-signal` (shared with EEG); re-exported here.
pub use tessera_signal::resample;
