//! Earth observation: any raster GDAL opens (GeoTIFF and COG, JPEG/PNG chips, JP2, complex
//! SLC), single files or folders of band files, windowed reads on one grid (`raster`); the
//! sensor table of optical wavelengths and radar frequencies and polarisations
//! (`sensors`); the front end (Sentinel-2 offsets, SAR in dB, per-band statistics) and one
//! token per band per spatial patch at (x m, y m, wavelength µm, radar GHz, polarisation)
//! (`frontend`); scenes cut into windows (`tile`); its `Modality` impl and a generated demo
//! dataset (`synth`). Candle-free; the `tessera-eo` binary lives in `domains/eo/cli`.

pub mod error;
pub mod frontend;
pub mod modality;
pub mod raster;
pub mod sensors;
pub mod synth;
pub mod tile;

pub use error::EoError;
pub use frontend::{EoConfig, EoFrontend, EoSample};
