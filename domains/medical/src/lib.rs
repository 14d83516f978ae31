//! Medical-volume domain: NIfTI-1/2, NRRD, MetaImage and DICOM (series) reading into one
//! format-free [`Volume`] ([`formats::read_volume`]), RAS+ orientation, resampling to a spacing in
//! mm, CT/MRI intensity normalisation and foreground cropping.
//!
//! The pipeline a tokenizer builds on:
//! [`read_volume`] → [`orient::to_ras`] → [`resample::resample_linear`] →
//! [`normalize::mri_zscore`] / [`normalize::ct_window`]; label maps follow with
//! [`read_labels`], [`volume::check_same_grid`], [`orient::to_ras`] and
//! [`resample::resample_nearest`].
//!
//! Everything here is free of candle, so an ONNX-runtime-only application can reuse it; the
//! (still empty) `cli` feature is reserved for the `tessera-medical` binary.

pub mod dicom;
pub mod error;
pub mod formats;
pub mod frontend;
pub mod inspect;
pub mod metaimage;
pub mod modality;
pub mod nifti;
pub mod normalize;
pub mod nrrd;
pub mod orient;
pub mod resample;
pub mod synth;
pub mod tokenizer;
pub mod volume;
pub mod write;

pub use error::MedicalError;
pub use formats::{read_labels, read_volume, Format};
pub use frontend::{Intensity, MedicalFrontend, MedicalFrontendConfig};
pub use nifti::read_header;
pub use volume::{check_same_grid, LabelMap, Provenance, Volume, Warning};
