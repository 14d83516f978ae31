//! From an EDF/BDF file (or a window of one) to tokens, exactly as the model card says:
//! pick the EEG channels with known positions, convert to µV, resample each signal to the
//! model's rate, re-reference, filter zero-phase, scale, and cut one token per channel per
//! time patch with coordinates (x, y, z) in mm and t in s. The same code serves
//! pretraining, embedding and the ort-only runtime.
//!
//! A path may carry a window as a media fragment, `rec.edf#t=12.5,16.5` (seconds from the
//! file's start, as `epochs` writes them): only the records covering the window plus
//! `margin_s` on each side are read, filtered, and the window cut out, so a window costs
//! the same whatever the recording's length.

use crate::edf::Edf;
use crate::montage::{classify, Kind, UserPosition};
use crate::EegError;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tessera_signal::{Resampler, ZeroPhase};
use tessera_tokens::{CoordAxis, NormStats, SampleTokens, TokenLayout, TokenSpec};

/// Re-referencing applied before filtering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reference {
    /// Keep the recording's reference.
    None,
    /// Subtract the mean of the EEG channels at each instant.
    Average,
}

/// How values are scaled before tokenizing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scaling {
    /// One dataset mean and standard deviation (µV) fitted by `stats`/`pretrain` and kept
    /// in the card: amplitude differences between recordings survive.
    Dataset,
    /// Per channel and decoded file (or window with its margin): median removed, divided
    /// by the inter-quartile range.
    Robust,
}

/// Random changes to a training view, for recipes whose views ask for them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EegAugment {
    /// Up to this fraction of the channels dropped (at least one kept): montage robustness.
    pub channel_drop: f64,
    /// Random gain of up to ± this many dB.
    pub gain_db: f64,
    /// Gaussian noise of this standard deviation added to the scaled values.
    pub noise_std: f64,
}

impl Default for EegAugment {
    fn default() -> Self {
        Self {
            channel_drop: 0.0,
            gain_db: 0.0,
            noise_std: 0.0,
        }
    }
}

/// The `[eeg]` table of a model card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EegConfig {
    /// Every signal is resampled to this rate.
    pub sample_rate_hz: u32,
    /// Seconds per view (training crop and evaluation window).
    pub window_s: f64,
    /// Seconds per token.
    pub patch_s: f64,
    /// Butterworth high-pass edge (0 = off).
    pub highpass_hz: f64,
    /// Butterworth low-pass edge (0 = off).
    pub lowpass_hz: f64,
    pub filter_order: usize,
    /// Notch filters (e.g. `[50.0]` or `[60.0, 120.0]`), quality factor `notch_q`.
    pub notch_hz: Vec<f64>,
    pub notch_q: f64,
    pub reference: Reference,
    pub scaling: Scaling,
    /// Dataset statistics in µV (`scaling = "dataset"`; set by `stats` or `pretrain`).
    pub norm: Option<NormStats>,
    /// Seconds of signal read and filtered on each side of a window, so the filter's edge
    /// effects stay outside it.
    pub margin_s: f64,
    /// Only these channels (standard names, case ignored); empty: every EEG channel.
    pub channels: Vec<String>,
    /// Custom electrode positions, matched by label before the 10-05 table.
    pub positions: Vec<UserPosition>,
    pub augment: EegAugment,
}

impl Default for EegConfig {
    fn default() -> Self {
        Self {
            sample_rate_hz: 200,
            window_s: 4.0,
            patch_s: 1.0,
            highpass_hz: 0.5,
            lowpass_hz: 45.0,
            filter_order: 4,
            notch_hz: Vec::new(),
            notch_q: 30.0,
            reference: Reference::Average,
            scaling: Scaling::Dataset,
            norm: None,
            margin_s: 2.0,
            channels: Vec::new(),
            positions: Vec::new(),
            augment: EegAugment::default(),
        }
    }
}

/// A decoded, prepared recording (or window): `[channels, len]` in µV (robust-scaled when
/// the config says so) at the model's rate.
#[derive(Debug, Clone, PartialEq)]
pub struct EegSample {
    pub names: Vec<String>,
    pub mm: Vec<[f32; 3]>,
    pub data: Vec<f32>,
    pub len: usize,
    /// Sample indices where a new contiguous segment starts (EDF+D gaps), besides 0.
    pub breaks: Vec<usize>,
}

impl EegSample {
    pub fn channels(&self) -> usize {
        self.names.len()
    }
    pub fn row(&self, c: usize) -> &[f32] {
        &self.data[c * self.len..(c + 1) * self.len]
    }
    /// Contiguous segments `(start, end)`.
    pub fn segments(&self) -> Vec<(usize, usize)> {
        let mut b = vec![0];
        b.extend(self.breaks.iter().copied());
        b.push(self.len);
        b.windows(2)
            .map(|w| (w[0], w[1]))
            .filter(|(a, b)| b > a)
            .collect()
    }
}

/// The ready front end (filters built once).
pub struct EegFrontend {
    pub cfg: EegConfig,
    filter: ZeroPhase,
}

/// `path#t=a,b` → (`path`, `Some((a, b))`).
pub fn split_window(path: &Path) -> Result<(PathBuf, Option<(f64, f64)>), EegError> {
    tessera_tokens::time_window(path).map_err(|reason| EegError::Unusable {
        path: path.into(),
        reason,
    })
}

/// Signals chosen for tokens: `(index, name, mm)`.
pub type Chosen = Vec<(usize, String, [f32; 3])>;

impl EegFrontend {
    pub fn new(cfg: &EegConfig) -> Result<Self, EegError> {
        let bad = |m: String| Err(EegError::Config(m));
        if cfg.sample_rate_hz == 0 {
            return bad("sample_rate_hz must be positive".into());
        }
        if !(cfg.window_s > 0.0 && cfg.patch_s > 0.0 && cfg.margin_s >= 0.0) {
            return bad(format!(
                "window_s ({}) and patch_s ({}) must be positive, margin_s ({}) not negative",
                cfg.window_s, cfg.patch_s, cfg.margin_s
            ));
        }
        let fe = Self {
            filter: ZeroPhase::new(
                cfg.sample_rate_hz as f64,
                cfg.filter_order,
                cfg.highpass_hz,
                cfg.lowpass_hz,
                &cfg.notch_hz,
                cfg.notch_q,
            )?,
            cfg: cfg.clone(),
        };
        let p = fe.patch_len();
        if p == 0 || fe.window_len() < p {
            return bad(format!(
                "a patch of {} s at {} Hz is {p} samples and must fit in the {} s window",
                cfg.patch_s, cfg.sample_rate_hz, cfg.window_s
            ));
        }
        if (fe.patch_len() as f64 - cfg.patch_s * cfg.sample_rate_hz as f64).abs() > 1e-6 {
            return bad(format!(
                "patch_s {} s is not a whole number of samples at {} Hz",
                cfg.patch_s, cfg.sample_rate_hz
            ));
        }
        let aug = &cfg.augment;
        if !(0.0..1.0).contains(&aug.channel_drop) || aug.gain_db < 0.0 || aug.noise_std < 0.0 {
            return bad(
                "augment: channel_drop must be in [0, 1), gain_db and noise_std not negative"
                    .into(),
            );
        }
        Ok(fe)
    }

    pub fn rate(&self) -> f64 {
        self.cfg.sample_rate_hz as f64
    }
    /// Samples per token.
    pub fn patch_len(&self) -> usize {
        (self.cfg.patch_s * self.rate()).round() as usize
    }
    /// Samples per view.
    pub fn window_len(&self) -> usize {
        (self.cfg.window_s * self.rate()).round() as usize
    }

    pub fn token_spec(&self) -> TokenSpec {
        let axis = |name: &str, unit: &str, scale: f32| CoordAxis {
            name: name.into(),
            unit: unit.into(),
            scale,
        };
        TokenSpec {
            p: self.patch_len(),
            k: 4,
            value_unit: match self.cfg.scaling {
                Scaling::Dataset => "µV, dataset-standardised".into(),
                Scaling::Robust => "µV, per-channel median/IQR".into(),
            },
            axes: vec![
                axis("x", "mm", 100.0),
                axis("y", "mm", 100.0),
                axis("z", "mm", 100.0),
                axis("t", "s", self.cfg.window_s as f32),
            ],
            layout: TokenLayout::Set,
        }
    }

    /// The signals of `edf` that become tokens, in file order.
    pub fn choose(&self, edf: &Edf) -> Result<Chosen, EegError> {
        let mut out = Vec::new();
        for (i, s) in edf.header.signals.iter().enumerate() {
            if s.annotation {
                continue;
            }
            let c = classify(&s.label, &self.cfg.positions);
            let (Kind::Eeg, Some(name), Some(mm)) = (c.kind, c.name, c.mm) else {
                continue;
            };
            if !self.cfg.channels.is_empty()
                && !self
                    .cfg
                    .channels
                    .iter()
                    .any(|n| n.eq_ignore_ascii_case(&name))
            {
                continue;
            }
            if out
                .iter()
                .any(|(_, n, _): &(usize, String, [f32; 3])| *n == name)
            {
                continue; // a duplicate label: the first one is kept
            }
            out.push((i, name, mm));
        }
        if out.is_empty() {
            let labels: Vec<String> = edf
                .header
                .signals
                .iter()
                .filter(|s| !s.annotation)
                .map(|s| s.label.clone())
                .collect();
            return Err(EegError::Unusable {
                path: edf.path.clone(),
                reason: if labels.is_empty() {
                    "no signals besides annotations (an annotation-only file)".into()
                } else {
                    format!(
                        "none of its {} signals is an EEG channel with a known position{} (labels: {}); declare custom positions in [eeg] positions",
                        labels.len(),
                        if self.cfg.channels.is_empty() { String::new() } else { format!(" among [eeg] channels = {:?}", self.cfg.channels) },
                        labels.join(", ")
                    )
                },
            });
        }
        Ok(out)
    }

    /// Decodes a file, or the window its path names.
    pub fn load(&self, path: &Path) -> Result<EegSample, EegError> {
        let (file, window) = split_window(path)?;
        let mut edf = Edf::open(&file)?;
        let chosen = self.choose(&edf)?;
        let h = edf.header.clone();
        let onsets = edf.record_onsets()?;
        let dur = h.record_duration_s;
        let runs = h.contiguous_runs(&onsets);
        let (first, count, crop) = match window {
            None => (0, h.records, None),
            Some((a, b)) => {
                let run = runs
                    .iter()
                    .find(|(s, e)| onsets[*s] <= a + 1e-9 && b <= onsets[e - 1] + dur + 1e-9)
                    .ok_or_else(|| EegError::Unusable {
                        path: path.into(),
                        reason: format!(
                            "window {a}..{b} s is not inside the recording ({} s{})",
                            h.recorded_s(),
                            if runs.len() > 1 {
                                ", or crosses a gap of the discontinuous recording"
                            } else {
                                ""
                            }
                        ),
                    })?;
                let t0 = onsets[run.0];
                let lo = ((a - self.cfg.margin_s - t0) / dur).floor().max(0.0) as usize;
                let hi = (((b + self.cfg.margin_s - t0) / dur).ceil() as usize).min(run.1 - run.0);
                let start = run.0 + lo;
                let t_start = onsets[start];
                let rate = self.rate();
                let off = ((a - t_start) * rate).round() as usize;
                let n = ((b - a) * rate).round() as usize;
                (start, run.0 + hi - start, Some((off, n)))
            }
        };
        let which: Vec<usize> = chosen.iter().map(|c| c.0).collect();
        let phys = edf.read_physical(&which, first, count)?;
        let (kernels, index) = self.resamplers(&edf, &chosen)?;
        // Runs within the records read (one for a window).
        let local_runs: Vec<(usize, usize)> = runs
            .iter()
            .filter_map(|&(s, e)| {
                let (s, e) = (s.max(first), e.min(first + count));
                (e > s).then(|| (s - first, e - first))
            })
            .collect();
        let mut channels: Vec<Vec<f32>> = vec![Vec::new(); chosen.len()];
        let mut breaks = Vec::new();
        for (k, &(s, e)) in local_runs.iter().enumerate() {
            if k > 0 {
                breaks.push(channels[0].len());
            }
            let seg = self.prepare(&edf, &chosen, (&kernels, &index), &phys, (s, e));
            let n = seg.iter().map(Vec::len).min().unwrap_or(0);
            for (c, v) in seg.into_iter().enumerate() {
                channels[c].extend(v[..n].iter().map(|&x| x as f32));
            }
        }
        let mut len = channels[0].len();
        if let Some((off, n)) = crop {
            if off + n > len {
                return Err(EegError::Unusable {
                    path: path.into(),
                    reason: format!(
                        "window needs {} samples at {} Hz, the recording has {len} there",
                        off + n,
                        self.rate()
                    ),
                });
            }
            for ch in &mut channels {
                ch.drain(..off);
                ch.truncate(n);
            }
            len = n;
            breaks.clear();
        }
        if len == 0 {
            return Err(EegError::Unusable {
                path: path.into(),
                reason: "no samples".into(),
            });
        }
        let mut data = Vec::with_capacity(len * channels.len());
        for mut ch in channels {
            if self.cfg.scaling == Scaling::Robust {
                let (m, iqr) = tessera_signal::median_iqr(&ch);
                let s = if iqr > 0.0 { 1.0 / iqr } else { 1.0 };
                ch.iter_mut().for_each(|v| *v = (*v - m) * s);
            }
            data.extend(ch);
        }
        Ok(EegSample {
            names: chosen.iter().map(|c| c.1.clone()).collect(),
            mm: chosen.iter().map(|c| c.2).collect(),
            data,
            len,
            breaks,
        })
    }

    /// One resampler to the model's rate per distinct rate among the chosen signals, and
    /// each signal's index into them (built once per file, not per channel or segment).
    fn resamplers(
        &self,
        edf: &Edf,
        chosen: &Chosen,
    ) -> Result<(Vec<Resampler>, Vec<usize>), EegError> {
        let h = &edf.header;
        let mut kernels: Vec<Resampler> = Vec::new();
        let mut index = Vec::with_capacity(chosen.len());
        for &(i, _, _) in chosen {
            let sig = &h.signals[i];
            let spr = sig.samples_per_record;
            let rate = sig.rate_hz(h.record_duration_s);
            let (from, to) = if rate.fract() == 0.0 && rate <= u32::MAX as f64 {
                (rate as u32, self.cfg.sample_rate_hz)
            } else {
                (
                    (spr as f64 * 1000.0).round() as u32,
                    (self.rate() * h.record_duration_s * 1000.0).round() as u32,
                )
            };
            let known = kernels
                .iter()
                .position(|r| (r.from_hz(), r.to_hz()) == (from, to));
            index.push(match known {
                Some(k) => k,
                None => {
                    kernels.push(Resampler::new(from, to).map_err(|e| EegError::Unusable {
                        path: edf.path.clone(),
                        reason: format!("signal `{}` at {rate} Hz: {e}", sig.label),
                    })?);
                    kernels.len() - 1
                }
            });
        }
        Ok((kernels, index))
    }

    /// One contiguous run of records `s..e` (of those read): µV, resampled, referenced,
    /// filtered; f64 per channel.
    fn prepare(
        &self,
        edf: &Edf,
        chosen: &Chosen,
        (kernels, index): (&[Resampler], &[usize]),
        phys: &[Vec<f64>],
        (s, e): (usize, usize),
    ) -> Vec<Vec<f64>> {
        let h = &edf.header;
        let mut out = Vec::with_capacity(chosen.len());
        for (k, &(i, _, _)) in chosen.iter().enumerate() {
            let sig = &h.signals[i];
            let spr = sig.samples_per_record;
            let uv = sig.to_microvolts().unwrap_or(1.0);
            let x: Vec<f32> = phys[k][s * spr..e * spr]
                .iter()
                .map(|v| (v * uv) as f32)
                .collect();
            out.push(
                kernels[index[k]]
                    .process(&x)
                    .into_iter()
                    .map(f64::from)
                    .collect::<Vec<f64>>(),
            );
        }
        let n = out.iter().map(Vec::len).min().unwrap_or(0);
        if self.cfg.reference == Reference::Average && out.len() > 1 {
            for t in 0..n {
                let m = out.iter().map(|c| c[t]).sum::<f64>() / out.len() as f64;
                for c in out.iter_mut() {
                    c[t] -= m;
                }
            }
        }
        if !self.filter.is_identity() {
            for c in out.iter_mut() {
                c.truncate(n);
                *c = self.filter.apply(c);
            }
        }
        out
    }

    /// Tokens of the window of `sample` starting at `start` (up to `window_s`; whole
    /// patches only), channels in `keep` order.
    pub fn tokens_at(
        &self,
        s: &EegSample,
        start: usize,
        keep: &[usize],
    ) -> Result<SampleTokens, EegError> {
        let p = self.patch_len();
        let avail = s.len.saturating_sub(start).min(self.window_len());
        let nt = avail / p;
        if nt == 0 {
            return Err(EegError::Config(format!(
                "a view needs at least one {} s patch ({p} samples); the recording has {avail} from sample {start}",
                self.cfg.patch_s
            )));
        }
        let (m, sd) = match (self.cfg.scaling, self.cfg.norm) {
            (Scaling::Dataset, Some(n)) => (n.mean as f32, n.std as f32),
            _ => (0.0, 1.0),
        };
        let inv = 1.0 / sd;
        let n = keep.len() * nt;
        let mut values = Vec::with_capacity(n * p);
        let mut coords = Vec::with_capacity(n * 4);
        for &c in keep {
            let row = s.row(c);
            for j in 0..nt {
                let a = start + j * p;
                values.extend(row[a..a + p].iter().map(|v| (v - m) * inv));
                let [x, y, z] = s.mm[c];
                coords.extend([x, y, z, ((j as f64 + 0.5) * self.cfg.patch_s) as f32]);
            }
        }
        Ok(SampleTokens::new(values, coords, n, p, 4)?)
    }

    /// The centre window of the longest segment, every channel.
    pub fn eval_tokens(&self, s: &EegSample) -> Result<SampleTokens, EegError> {
        let (a, b) = s
            .segments()
            .into_iter()
            .max_by_key(|(a, b)| (b - a, usize::MAX - a))
            .unwrap_or((0, s.len));
        let start = a + (b - a).saturating_sub(self.window_len()) / 2;
        let all: Vec<usize> = (0..s.channels()).collect();
        self.tokens_at(s, start, &all)
    }
}
