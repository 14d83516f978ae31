//! From a NIfTI file to tokens, exactly as the model card says: read, reorient to RAS+,
//! resample to the card's spacing, normalise intensities, then crop and tokenize. Used by
//! pretraining, embedding, segmentation and the ort-only runtime alike.

use crate::normalize::{ct_window, mri_zscore, Foreground, MriNorm, OutputRange};
use crate::orient::to_ras;
use crate::resample::{resample_linear, resample_nearest};
use crate::tokenizer::{crop_block, Block, PatchConfig, VolumeTokenizer};
use crate::{check_same_grid, read_labels, read_volume, LabelMap, MedicalError, Volume};
use serde::{Deserialize, Serialize};
use std::path::Path;
use tessera_tokens::{SampleTokens, TokenSpec};

/// Intensity normalisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Intensity {
    /// MRI: clip to foreground percentiles, z-score inside the foreground (background 0).
    Mri {
        lower_percentile: f64,
        upper_percentile: f64,
        /// Foreground = voxels above this value (default: non-zero voxels).
        #[serde(default)]
        foreground_above: Option<f32>,
    },
    /// CT: clip to `[lo_hu, hi_hu]` and scale to [0, 1].
    Ct { lo_hu: f32, hi_hu: f32 },
    /// Use the stored values as they are.
    None,
}

/// The medical part of a model card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MedicalFrontendConfig {
    /// Target voxel spacing in mm `[x, y, z]` (after reorientation to RAS+).
    pub spacing_mm: [f64; 3],
    pub intensity: Intensity,
    /// Channels per volume (4-D files' 4th dimension).
    #[serde(default = "one")]
    pub channels: usize,
    /// Training crop in voxels `[x, y, z]`.
    pub crop: [usize; 3],
    pub tokenizer: PatchConfig,
}

fn one() -> usize {
    1
}

/// A ready front end.
#[derive(Debug, Clone)]
pub struct MedicalFrontend {
    pub cfg: MedicalFrontendConfig,
    pub tokenizer: VolumeTokenizer,
}

impl MedicalFrontend {
    pub fn new(cfg: &MedicalFrontendConfig) -> Result<Self, MedicalError> {
        if cfg.spacing_mm.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(MedicalError::Config(format!(
                "spacing_mm {:?} must be positive",
                cfg.spacing_mm
            )));
        }
        let tokenizer = VolumeTokenizer::new(&cfg.tokenizer, cfg.channels)?;
        if tokenizer.grid(cfg.crop).contains(&0) {
            return Err(MedicalError::Config(format!(
                "crop {:?} is smaller than one {:?} patch",
                cfg.crop, cfg.tokenizer.patch
            )));
        }
        Ok(Self {
            cfg: cfg.clone(),
            tokenizer,
        })
    }

    /// Reads, reorients, resamples and normalises one image.
    pub fn load(&self, path: &Path) -> Result<Volume<f32>, MedicalError> {
        self.prepare(read_volume(path)?)
    }

    fn prepare(&self, v: Volume<f32>) -> Result<Volume<f32>, MedicalError> {
        if v.channels != self.cfg.channels {
            return Err(MedicalError::Config(format!(
                "{}: {} channel(s), the model takes {}",
                v.path().display(),
                v.channels,
                self.cfg.channels
            )));
        }
        let mut v = resample_linear(&to_ras(&v)?, self.cfg.spacing_mm)?;
        match &self.cfg.intensity {
            Intensity::Mri {
                lower_percentile,
                upper_percentile,
                foreground_above,
            } => {
                let cfg = MriNorm {
                    lower_percentile: *lower_percentile,
                    upper_percentile: *upper_percentile,
                    foreground: match foreground_above {
                        Some(t) => Foreground::Above(*t),
                        None => Foreground::NonZero,
                    },
                };
                mri_zscore(&mut v, &cfg)?;
            }
            Intensity::Ct { lo_hu, hi_hu } => {
                ct_window(&mut v, *lo_hu, *hi_hu, OutputRange::ZeroOne)?
            }
            Intensity::None => {}
        }
        Ok(v)
    }

    /// An image and its label map, checked to share a grid, both on the card's grid.
    pub fn load_case(
        &self,
        image: &Path,
        labels: &Path,
    ) -> Result<(Volume<f32>, LabelMap), MedicalError> {
        let v = read_volume(image)?;
        let l = read_labels(labels)?;
        check_same_grid(&v, &l)?;
        let l = resample_nearest(&to_ras(&l)?, self.cfg.spacing_mm)?;
        let v = self.prepare(v)?;
        if l.dims != v.dims {
            return Err(MedicalError::Config(format!(
                "{}: resampled label grid {:?} differs from the image's {:?}",
                labels.display(),
                l.dims,
                v.dims
            )));
        }
        Ok((v, l))
    }

    /// A `size` block at `origin` of a prepared volume (zeros outside).
    pub fn block(&self, v: &Volume<f32>, origin: [isize; 3], size: [usize; 3]) -> Block {
        crop_block(&v.data, v.channels, v.dims, v.spacing_mm, origin, size, 0.0)
    }

    /// The whole volume, zero-padded at the far edges to whole patches.
    pub fn whole(&self, v: &Volume<f32>) -> Block {
        let size = [0, 1, 2]
            .map(|a| v.dims[a].div_ceil(self.cfg.tokenizer.patch[a]) * self.cfg.tokenizer.patch[a]);
        self.block(v, [0; 3], size)
    }

    /// The centre crop of the training size (the embedding input).
    pub fn centre(&self, v: &Volume<f32>) -> Block {
        let origin = [0, 1, 2].map(|a| (v.dims[a] as isize - self.cfg.crop[a] as isize) / 2);
        self.block(v, origin, self.cfg.crop)
    }

    pub fn tokens(&self, b: &Block) -> Result<SampleTokens, MedicalError> {
        self.tokenizer.tokenize(b)
    }

    /// File → centre-crop tokens: the embedding path.
    pub fn file_tokens(&self, path: &Path) -> Result<SampleTokens, MedicalError> {
        self.tokens(&self.centre(&self.load(path)?))
    }

    pub fn token_spec(&self) -> TokenSpec {
        let extent = [0, 1, 2].map(|a| self.cfg.crop[a] as f64 * self.cfg.spacing_mm[a]);
        self.tokenizer.spec(extent)
    }
}
