//! From a file on disk to tokens, exactly as the model card says: decode, mix to mono,
//! resample, pad/crop to a fixed duration, log-mel (or fbank), normalise with the card's
//! dataset statistics, tokenize. The same code serves pretraining, embedding and the
//! ort-only runtime, so normalisation cannot silently differ between them.

use crate::augment::AugmentConfig;
use crate::codec::{read_audio, read_audio_span, Span};
use crate::features::{FeatureConfig, Featurizer, Spectrogram};
use crate::resample::Resampler;
use crate::tokenizer::{PatchConfig, SpectrogramTokenizer};
use crate::AudioError;
use serde::{Deserialize, Serialize};
use std::path::Path;
use tessera_tokens::{NormStats, SampleTokens, TokenSpec};

/// The audio part of a model card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioFrontendConfig {
    /// Clips are zero-padded (at the end) or cropped to this many seconds.
    pub duration_s: f32,
    pub features: FeatureConfig,
    pub tokenizer: PatchConfig,
    /// Dataset statistics of the log-mel values (set by `stats`, or by `pretrain`).
    #[serde(default)]
    pub norm: Option<NormStats>,
    /// Training-view augmentation, for recipes whose views ask for it.
    #[serde(default)]
    pub augment: AugmentConfig,
}

/// A ready front end (FFT plan, filterbank and tokenizer built once).
pub struct AudioFrontend {
    pub cfg: AudioFrontendConfig,
    featurizer: Featurizer,
    pub tokenizer: SpectrogramTokenizer,
}

impl AudioFrontend {
    pub fn new(cfg: &AudioFrontendConfig) -> Result<Self, AudioError> {
        cfg.features.validate()?;
        if !(cfg.duration_s > 0.0 && cfg.duration_s.is_finite()) {
            return Err(AudioError::Config(format!(
                "duration_s must be positive, got {}",
                cfg.duration_s
            )));
        }
        cfg.augment.validate()?;
        let tokenizer = SpectrogramTokenizer::new(&cfg.tokenizer, &cfg.features)?;
        let fe = Self {
            featurizer: Featurizer::new(&cfg.features)?,
            tokenizer,
            cfg: cfg.clone(),
        };
        let frames = fe.target_frames()?;
        let (r, c) = fe.tokenizer.grid(cfg.features.n_bins(), frames);
        if r * c == 0 {
            return Err(AudioError::Config(format!(
                "{} s gives {frames} frames: fewer than one {:?} patch",
                cfg.duration_s, cfg.tokenizer.patch
            )));
        }
        Ok(fe)
    }

    pub fn sample_rate_hz(&self) -> u32 {
        self.cfg.features.sample_rate_hz()
    }

    fn target_samples(&self) -> usize {
        (self.cfg.duration_s as f64 * self.sample_rate_hz() as f64).round() as usize
    }

    /// Frames of a clip of exactly `duration_s`.
    pub fn target_frames(&self) -> Result<usize, AudioError> {
        self.featurizer.n_frames(self.target_samples())
    }

    /// Frames of the spectrogram of `samples` samples (at the model's rate), after padding
    /// to `duration_s`.
    pub fn frames_for(&self, samples: usize) -> Result<usize, AudioError> {
        self.featurizer.n_frames(samples.max(self.target_samples()))
    }

    /// Token grid `(frequency rows, time columns)` of one `duration_s` crop.
    pub fn token_grid(&self) -> Result<(usize, usize), AudioError> {
        Ok(self
            .tokenizer
            .grid(self.cfg.features.n_bins(), self.target_frames()?))
    }

    /// Decodes an audio file (WAV, FLAC, MP3, ...) to mono at the model's sample rate; a
    /// window `file#t=START,END` (seconds) reads only that part of a long recording.
    pub fn load(&self, path: &Path) -> Result<Vec<f32>, AudioError> {
        let (file, window) =
            tessera_tokens::time_window(path).map_err(|reason| AudioError::BadPath {
                path: path.into(),
                reason,
            })?;
        let audio = match window {
            None => read_audio(&file)?,
            Some((start_s, end_s)) => read_audio_span(&file, Span { start_s, end_s })?,
        };
        let mono = audio.to_mono();
        if audio.sample_rate_hz == self.sample_rate_hz() {
            return Ok(mono);
        }
        Ok(Resampler::new(audio.sample_rate_hz, self.sample_rate_hz())?.process(&mono))
    }

    /// The normalised spectrogram of a whole clip (zero-padded to at least `duration_s`).
    pub fn spectrogram(&self, wave: &[f32]) -> Result<Spectrogram, AudioError> {
        let n = self.target_samples();
        let mut s = if wave.len() < n {
            let mut padded = wave.to_vec();
            padded.resize(n, 0.0);
            self.featurizer.compute(&padded)?
        } else {
            self.featurizer.compute(wave)?
        };
        if let Some(norm) = &self.cfg.norm {
            norm.apply(&mut s.data);
        }
        Ok(s)
    }

    /// `target_frames` frames of `s` starting at frame `start` (clamped to the clip).
    pub fn crop(&self, s: &Spectrogram, start: usize) -> Result<Spectrogram, AudioError> {
        let t = self.target_frames()?;
        if s.frames <= t {
            return Ok(s.clone());
        }
        let start = start.min(s.frames - t);
        let mut data = Vec::with_capacity(s.bins * t);
        for b in 0..s.bins {
            data.extend_from_slice(&s.data[b * s.frames + start..b * s.frames + start + t]);
        }
        Ok(Spectrogram {
            data,
            bins: s.bins,
            frames: t,
            hop_s: s.hop_s,
        })
    }

    /// Centre crop (used for embedding and evaluation).
    pub fn centre_crop(&self, s: &Spectrogram) -> Result<Spectrogram, AudioError> {
        let t = self.target_frames()?;
        self.crop(s, s.frames.saturating_sub(t) / 2)
    }

    pub fn tokens(&self, s: &Spectrogram) -> Result<SampleTokens, AudioError> {
        self.tokenizer.tokenize(s)
    }

    /// File → centre-cropped tokens: the embedding path.
    pub fn file_tokens(&self, path: &Path) -> Result<SampleTokens, AudioError> {
        let s = self.spectrogram(&self.load(path)?)?;
        self.tokens(&self.centre_crop(&s)?)
    }

    pub fn token_spec(&self) -> TokenSpec {
        self.tokenizer
            .spec(self.sample_rate_hz(), self.cfg.duration_s)
    }
}
