//! EEG and physiological time series: an own EDF/EDF+/BDF/BDF+ reader and writer
//! (`edf`), signal labels typed and matched to 10-05 electrode positions (`montage`), the
//! front end (µV, resampling, re-reference, zero-phase filters, scaling) and channel ×
//! time-patch tokens with coordinates (x, y, z) in mm and t in s (`frontend`), bad-channel
//! checks (`quality`), events → epoch windows (`epochs`), its `Modality` impl and a
//! generated demo dataset (`synth`). Candle-free; the `tessera-eeg` binary lives in
//! `domains/eeg/cli`.

pub mod edf;
pub mod epochs;
pub mod error;
pub mod frontend;
pub mod modality;
pub mod montage;
pub mod quality;
pub mod synth;

pub use error::EegError;
pub use frontend::{EegConfig, EegFrontend, EegSample};
