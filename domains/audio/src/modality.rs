//! Audio as a Tessera [`Modality`]: WAV files → normalised log-mel (or fbank) spectrograms
//! → patch tokens in (Hz, s). Training views are random `duration_s` crops, the evaluation
//! view is the centre crop, and the dataset statistics of the log-mel values live in the
//! card (`[audio] norm`).

use crate::features::{FeatureConfig, Spectrogram};
use crate::tokenizer::{bin_centres_hz, first_frame_s};
use crate::{AudioError, AudioFrontend, AudioFrontendConfig};
use std::path::{Path, PathBuf};
use tessera_tokens::grid::{AxisCoords, GridAxis, GridFront};
use tessera_tokens::stats::RunningStats;
use tessera_tokens::{GridInput, InfoRow, Modality, Rng, SampleTokens, TokenSpec};

fn row(fields: &[(&str, String)]) -> InfoRow {
    fields
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

impl Modality for AudioFrontend {
    const NAME: &'static str = "audio";
    /// WAV (own reader), the formats symphonia decodes, and Opus through libopus (see
    /// [`crate::codec`]).
    const EXTENSIONS: &'static [&'static str] = &[
        "wav", "wave", "flac", "mp3", "ogg", "oga", "opus", "m4a", "mp4", "aac", "alac", "aif",
        "aiff", "aifc", "caf", "mka", "webm",
    ];
    type Config = AudioFrontendConfig;
    type Sample = Spectrogram;
    type Stats = RunningStats;
    type Error = AudioError;

    fn new(cfg: &AudioFrontendConfig) -> Result<Self, AudioError> {
        AudioFrontend::new(cfg)
    }

    fn config(&self) -> &AudioFrontendConfig {
        &self.cfg
    }

    fn token_spec(&self) -> TokenSpec {
        AudioFrontend::token_spec(self)
    }

    fn duration_s(path: &Path) -> Result<Option<f64>, AudioError> {
        crate::codec::audio_duration_s(path).map(Some)
    }

    fn decode(&self, path: &Path) -> Result<Spectrogram, AudioError> {
        self.spectrogram(&self.load(path)?)
    }

    fn sample_bytes(s: &Spectrogram) -> usize {
        s.data.len() * std::mem::size_of::<f32>()
    }

    fn train_view(&self, s: &Spectrogram, rng: &mut Rng) -> Result<SampleTokens, AudioError> {
        let target = self.target_frames()?;
        let start = if s.frames > target {
            rng.below(s.frames - target + 1)
        } else {
            0
        };
        self.tokens(&self.crop(s, start)?)
    }

    fn eval_view(&self, s: &Spectrogram) -> Result<SampleTokens, AudioError> {
        self.tokens(&self.centre_crop(s)?)
    }

    fn augment(&self, view: SampleTokens, rng: &mut Rng) -> Result<SampleTokens, AudioError> {
        let std = self.cfg.norm.map(|n| n.std as f32).unwrap_or(1.0);
        Ok(crate::augment::augment_tokens(
            view,
            &self.tokenizer,
            self.cfg.features.n_bins(),
            self.cfg.features.hop_s(),
            std,
            &self.cfg.augment,
            rng,
        ))
    }

    fn random_sample(&self, rng: &mut Rng) -> Result<Spectrogram, AudioError> {
        let (bins, frames) = (self.cfg.features.n_bins(), self.target_frames()?);
        Ok(Spectrogram {
            data: (0..bins * frames).map(|_| rng.normal() as f32).collect(),
            bins,
            frames,
            hop_s: self.cfg.features.hop_s(),
        })
    }

    fn stats_start(&self) -> Option<RunningStats> {
        self.cfg.norm.is_none().then(RunningStats::default)
    }

    fn stats_add(&self, stats: &mut RunningStats, s: &Spectrogram) {
        stats.push_slice(&s.data);
    }

    fn stats_finish(&self, stats: RunningStats) -> Result<AudioFrontendConfig, AudioError> {
        let mut cfg = self.cfg.clone();
        cfg.norm = Some(stats.finish());
        Ok(cfg)
    }

    fn inspect(&self, path: &Path) -> Result<InfoRow, AudioError> {
        let file = tessera_tokens::time_window(path).map_or(path.to_path_buf(), |(f, _)| f);
        let info = crate::codec::inspect_audio(&file)?;
        let resampled = (info.frames as f64 * self.sample_rate_hz() as f64
            / info.sample_rate_hz.max(1) as f64)
            .ceil() as usize;
        let (r, c) = self.token_grid()?;
        Ok(row(&[
            ("file", path.display().to_string()),
            ("format", info.format),
            ("channels", info.channels.to_string()),
            ("sample_rate_hz", info.sample_rate_hz.to_string()),
            ("bits_per_sample", info.bits_per_sample.to_string()),
            ("frames", info.frames.to_string()),
            ("duration_s", format!("{:.3}", info.duration_s)),
            (
                "spectrogram_frames",
                self.frames_for(resampled)?.to_string(),
            ),
            ("tokens_per_crop", format!("{r} x {c} = {}", r * c)),
            ("values_per_token", self.tokenizer.p().to_string()),
        ]))
    }

    fn grid_front(&self) -> Option<GridFront> {
        let tk = &self.cfg.tokenizer;
        if tk.patch != tk.stride {
            return None;
        }
        let [pf, pt] = tk.patch;
        let hz = bin_centres_hz(&self.cfg.features);
        let rows = hz.len() / pf;
        let table = (0..rows)
            .map(|r| hz[r * pf..(r + 1) * pf].iter().sum::<f32>() / pf as f32)
            .collect();
        let hop = self.cfg.features.hop_s();
        let t0 = first_frame_s(&self.cfg.features);
        Some(GridFront {
            channels: 1,
            axes: vec![
                GridAxis {
                    coord_index: 0,
                    name: match &self.cfg.features {
                        FeatureConfig::Cqt(_) => "cqt",
                        FeatureConfig::Chroma(_) => "chroma",
                        _ => "mel",
                    }
                    .into(),
                    patch: pf,
                    coords: AxisCoords::Table { values: table },
                },
                GridAxis {
                    coord_index: 1,
                    name: "frame".into(),
                    patch: pt,
                    coords: AxisCoords::Affine {
                        offset: (t0 + (pt as f64 - 1.0) / 2.0 * hop) as f32,
                        step: (pt as f64 * hop) as f32,
                    },
                },
            ],
            norm: self.cfg.norm.map(|n| (n.mean as f32, n.std as f32)),
        })
    }

    /// The centre crop's log-mel `[1, 1, bins, frames]` before normalisation (the grid
    /// graph normalises in the graph).
    fn grid_input(&self, s: &Spectrogram) -> Result<Option<GridInput>, AudioError> {
        let c = self.centre_crop(s)?;
        let (m, sd) = self
            .cfg
            .norm
            .map(|n| (n.mean as f32, n.std as f32))
            .unwrap_or((0.0, 1.0));
        let data = c.data.iter().map(|x| x * sd + m).collect();
        Ok(Some((vec![1, 1, c.bins, c.frames], data)))
    }

    fn baselines() -> &'static [&'static str] {
        &["logmel"]
    }

    /// `logmel`: per-bin mean and standard deviation over time of the normalised log-mel
    /// of the centre crop, `[2F]`.
    fn baseline(&self, name: &str, s: &Spectrogram) -> Result<Vec<f32>, AudioError> {
        if name != "logmel" {
            return Err(AudioError::Config(format!(
                "unknown baseline `{name}` (known: logmel)"
            )));
        }
        let s = self.centre_crop(s)?;
        let mut means = Vec::with_capacity(2 * s.bins);
        let mut stds = Vec::with_capacity(s.bins);
        for b in 0..s.bins {
            let row = &s.data[b * s.frames..(b + 1) * s.frames];
            let m = row.iter().sum::<f32>() / row.len() as f32;
            let v = row.iter().map(|x| (x - m) * (x - m)).sum::<f32>() / row.len() as f32;
            means.push(m);
            stds.push(v.sqrt());
        }
        means.extend(stds);
        Ok(means)
    }

    /// Six synthetic sound classes, 40 clips each at 8 kHz (a fifth of each class `test`).
    fn write_demo_data(dir: &Path, seed: u64) -> Result<PathBuf, AudioError> {
        crate::synth::write_dataset(dir, 6, 40, 8000, seed)
    }
}
