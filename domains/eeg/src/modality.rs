//! EEG as a Tessera [`Modality`]: EDF/BDF files (or windows of them) → prepared channels →
//! one token per channel per time patch at (x, y, z, t). Training views are random
//! `window_s` crops inside a contiguous segment, the evaluation view is the centre window
//! of the longest segment (the whole window for an epoch), and the dataset statistics of
//! the prepared µV values live in the card (`[eeg] norm`).

use crate::edf::Edf;
use crate::frontend::{split_window, EegSample, Scaling};
use crate::montage::{classify, Kind};
use crate::quality::bad_channels;
use crate::{EegConfig, EegError, EegFrontend};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tessera_tokens::stats::RunningStats;
use tessera_tokens::{InfoRow, Modality, Rng, SampleTokens, TokenSpec};

/// EEG bands of the `bandpower` baseline (Hz).
pub const BANDS: [(&str, f64, f64); 5] = [
    ("delta", 1.0, 4.0),
    ("theta", 4.0, 8.0),
    ("alpha", 8.0, 13.0),
    ("beta", 13.0, 30.0),
    ("gamma", 30.0, 45.0),
];

/// The 19 electrodes of the 10-20 system (the `bandpower` baseline's positions).
pub const TEN_TWENTY: [&str; 19] = [
    "Fp1", "Fp2", "F7", "F3", "Fz", "F4", "F8", "T7", "C3", "Cz", "C4", "T8", "P7", "P3", "Pz",
    "P4", "P8", "O1", "O2",
];

/// Welch power (Hann window of `seg` samples, half overlap) summed over each band;
/// `ln(power + 1e-12)` per band.
pub fn log_band_power(x: &[f32], rate: f64, seg: usize) -> Vec<f32> {
    let seg = seg.min(x.len()).max(2);
    let hop = (seg / 2).max(1);
    let win: Vec<f64> = (0..seg)
        .map(|i| 0.5 - 0.5 * (std::f64::consts::TAU * i as f64 / seg as f64).cos())
        .collect();
    let bins: Vec<(usize, usize)> = BANDS
        .iter()
        .map(|&(_, lo, hi)| {
            let a = (lo * seg as f64 / rate).ceil() as usize;
            let b = ((hi * seg as f64 / rate).floor() as usize).min(seg / 2);
            (a, b.max(a))
        })
        .collect();
    let mut power = vec![0.0f64; BANDS.len()];
    let mut count = 0;
    let mut start = 0;
    while start + seg <= x.len() {
        let s = &x[start..start + seg];
        let m = s.iter().map(|&v| v as f64).sum::<f64>() / seg as f64;
        for (b, &(lo, hi)) in bins.iter().enumerate() {
            for k in lo..=hi {
                let w = std::f64::consts::TAU * k as f64 / seg as f64;
                let (mut re, mut im) = (0.0, 0.0);
                for (i, &v) in s.iter().enumerate() {
                    let y = (v as f64 - m) * win[i];
                    re += y * (w * i as f64).cos();
                    im -= y * (w * i as f64).sin();
                }
                power[b] += re * re + im * im;
            }
        }
        count += 1;
        start += hop;
    }
    power
        .iter()
        .map(|p| (p / count.max(1) as f64 + 1e-12).ln() as f32)
        .collect()
}

impl Modality for EegFrontend {
    const NAME: &'static str = "eeg";
    const EXTENSIONS: &'static [&'static str] = &["edf", "bdf"];
    type Config = EegConfig;
    type Sample = EegSample;
    type Stats = RunningStats;
    type Error = EegError;

    fn new(cfg: &EegConfig) -> Result<Self, EegError> {
        EegFrontend::new(cfg)
    }

    fn config(&self) -> &EegConfig {
        &self.cfg
    }

    fn token_spec(&self) -> TokenSpec {
        EegFrontend::token_spec(self)
    }

    fn decode(&self, path: &Path) -> Result<EegSample, EegError> {
        self.load(path)
    }

    fn sample_bytes(s: &EegSample) -> usize {
        s.data.len() * std::mem::size_of::<f32>()
    }

    fn train_view(&self, s: &EegSample, rng: &mut Rng) -> Result<SampleTokens, EegError> {
        let w = self.window_len();
        let segs = s.segments();
        // A segment with room for a whole window, weighted by the starts it offers.
        let room: Vec<usize> = segs
            .iter()
            .map(|(a, b)| (b - a + 1).saturating_sub(w))
            .collect();
        let total: usize = room.iter().sum();
        let start = if total == 0 {
            segs.iter().max_by_key(|(a, b)| b - a).map_or(0, |s| s.0)
        } else {
            let mut r = rng.below(total);
            let mut start = 0;
            for ((a, _), n) in segs.iter().zip(&room) {
                if r < *n {
                    start = a + r;
                    break;
                }
                r -= n;
            }
            start
        };
        let all: Vec<usize> = (0..s.channels()).collect();
        self.tokens_at(s, start, &all)
    }

    fn eval_view(&self, s: &EegSample) -> Result<SampleTokens, EegError> {
        self.eval_tokens(s)
    }

    /// Channel drop (whole electrodes, at least one kept), gain and noise, as
    /// `[eeg.augment]` says.
    fn augment(&self, view: SampleTokens, rng: &mut Rng) -> Result<SampleTokens, EegError> {
        let a = &self.cfg.augment;
        let mut view = view;
        if a.channel_drop > 0.0 {
            let groups = view.groups(0..3);
            let n = groups.len();
            let drop = ((rng.uniform() * a.channel_drop * n as f64) as usize).min(n - 1);
            let order = rng.permutation(n);
            let gone: Vec<usize> = order[..drop].to_vec();
            let keep: Vec<usize> = groups
                .iter()
                .enumerate()
                .filter(|(g, _)| !gone.contains(g))
                .flat_map(|(_, idx)| idx.iter().copied())
                .collect();
            view = view.select(&keep);
        }
        if a.gain_db > 0.0 {
            let g = 10f64.powf((rng.uniform() * 2.0 - 1.0) * a.gain_db / 20.0) as f32;
            view.values.iter_mut().for_each(|v| *v *= g);
        }
        if a.noise_std > 0.0 {
            for v in view.values.iter_mut() {
                *v += (rng.normal() * a.noise_std) as f32;
            }
        }
        Ok(view)
    }

    fn random_sample(&self, rng: &mut Rng) -> Result<EegSample, EegError> {
        let names = [
            "Fp1", "Fp2", "F3", "F4", "C3", "C4", "P3", "P4", "O1", "O2", "Cz", "Pz",
        ];
        let len = self.window_len();
        let mm = names
            .iter()
            .map(|n| crate::montage::standard(n).map(|s| s.1).unwrap_or([0.0; 3]))
            .collect();
        let (m, sd) = match (self.cfg.scaling, self.cfg.norm) {
            (Scaling::Dataset, Some(n)) => (n.mean, n.std),
            _ => (0.0, 1.0),
        };
        Ok(EegSample {
            names: names.iter().map(|s| s.to_string()).collect(),
            mm,
            data: (0..names.len() * len)
                .map(|_| (m + sd * rng.normal()) as f32)
                .collect(),
            len,
            breaks: Vec::new(),
        })
    }

    fn stats_start(&self) -> Option<RunningStats> {
        (self.cfg.scaling == Scaling::Dataset && self.cfg.norm.is_none())
            .then(RunningStats::default)
    }

    fn stats_add(&self, stats: &mut RunningStats, s: &EegSample) {
        stats.push_slice(&s.data);
    }

    fn stats_finish(&self, stats: RunningStats) -> Result<EegConfig, EegError> {
        let mut cfg = self.cfg.clone();
        cfg.norm = Some(stats.finish());
        Ok(cfg)
    }

    /// From the header alone: records × record duration (an EDF+D file's gaps not counted).
    fn duration_s(path: &Path) -> Result<Option<f64>, EegError> {
        let (file, _) = split_window(path)?;
        Ok(Some(Edf::open(&file)?.header.recorded_s()))
    }

    /// The header, every signal's type and matched position, annotations, and bad
    /// channels from a full read of the data (so a damaged data section is found too).
    fn inspect(&self, path: &Path) -> Result<InfoRow, EegError> {
        let (file, window) = split_window(path)?;
        let mut edf = Edf::open(&file)?;
        let h = edf.header.clone();
        let mut kinds: BTreeMap<&'static str, usize> = BTreeMap::new();
        let mut matched = Vec::new();
        let mut unmatched = Vec::new();
        let mut rates: Vec<String> = Vec::new();
        let mut units: Vec<String> = Vec::new();
        let mut eeg = Vec::new();
        for (i, s) in h.signals.iter().enumerate() {
            let c = classify(&s.label, &self.cfg.positions);
            *kinds.entry(c.kind.name()).or_default() += 1;
            if s.annotation {
                continue;
            }
            let r = format!("{}", s.rate_hz(h.record_duration_s));
            if !rates.contains(&r) {
                rates.push(r);
            }
            if !units.contains(&s.unit) {
                units.push(s.unit.clone());
            }
            match (c.kind, c.name) {
                (Kind::Eeg, Some(n)) => {
                    if s.label.trim() != n {
                        matched.push(format!("{}→{n}", s.label.trim()));
                    }
                    eeg.push(i);
                }
                (Kind::Other, _) => unmatched.push(s.label.clone()),
                _ => {}
            }
        }
        let (phys, (annotations, onsets)) = edf.read_all(&eeg)?;
        let chans: Vec<(&[f64], f64, f64)> = eeg
            .iter()
            .zip(&phys)
            .map(|(&i, x)| {
                let s = &h.signals[i];
                (x.as_slice(), s.physical_min, s.physical_max)
            })
            .collect();
        let bad: Vec<String> = bad_channels(&chans)
            .iter()
            .zip(&eeg)
            .filter_map(|(b, &i)| {
                b.map(|b| format!("{} ({})", h.signals[i].label.trim(), b.name()))
            })
            .collect();
        let gaps = h.contiguous_runs(&onsets).len().saturating_sub(1);
        let texts: BTreeMap<&str, usize> = annotations.iter().fold(BTreeMap::new(), |mut m, a| {
            *m.entry(a.text.as_str()).or_default() += 1;
            m
        });
        let join = |v: &[String]| {
            if v.is_empty() {
                "-".to_string()
            } else {
                v.join("; ")
            }
        };
        let mut row: InfoRow = vec![
            ("file".into(), path.display().to_string()),
            ("format".into(), h.format()),
            ("signals".into(), h.signals.len().to_string()),
            (
                "types".into(),
                kinds
                    .iter()
                    .map(|(k, n)| format!("{k} {n}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            ("eeg_channels".into(), eeg.len().to_string()),
            ("renamed".into(), join(&matched)),
            ("no_position".into(), join(&unmatched)),
            ("rates_hz".into(), rates.join(", ")),
            ("units".into(), units.join(", ")),
            (
                "records".into(),
                format!("{} × {} s", h.records, h.record_duration_s),
            ),
            ("duration_s".into(), format!("{:.3}", h.recorded_s())),
            ("gaps".into(), gaps.to_string()),
            (
                "annotations".into(),
                if texts.is_empty() {
                    "-".into()
                } else {
                    texts
                        .iter()
                        .map(|(t, n)| format!("{t} ×{n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            ),
            ("bad_channels".into(), join(&bad)),
        ];
        if let Some((a, b)) = window {
            row.push(("window_s".into(), format!("{a}..{b}")));
        }
        Ok(row)
    }

    fn advise(&self, rows: &[InfoRow]) -> Vec<String> {
        let bad: usize = rows
            .iter()
            .filter(|r| r.iter().any(|(k, v)| k == "bad_channels" && v != "-"))
            .count();
        if bad > 0 {
            vec![format!("{bad} file(s) have bad channels (see `bad_channels`): consider [eeg] channels to leave them out")]
        } else {
            Vec::new()
        }
    }

    fn baselines() -> &'static [&'static str] {
        &["bandpower"]
    }

    /// `bandpower`: log Welch power (1 s Hann segments) in the delta, theta, alpha, beta
    /// and gamma bands of the evaluation window, at each of the 19 positions of the 10-20
    /// system from the nearest channel the recording has: `[19 × 5]` whatever the montage.
    fn baseline(&self, name: &str, s: &EegSample) -> Result<Vec<f32>, EegError> {
        if name != "bandpower" {
            return Err(EegError::Config(format!(
                "unknown baseline `{name}` (known: bandpower)"
            )));
        }
        let t = self.eval_tokens(s)?;
        let p = self.patch_len();
        let nt = t.n / s.channels().max(1);
        let seg = self.cfg.sample_rate_hz as usize;
        let power: Vec<Vec<f32>> = (0..s.channels())
            .map(|c| {
                let x: Vec<f32> = t.values[c * nt * p..(c + 1) * nt * p].to_vec();
                log_band_power(&x, self.rate(), seg)
            })
            .collect();
        let mut out = Vec::with_capacity(TEN_TWENTY.len() * BANDS.len());
        for name in TEN_TWENTY {
            let at = crate::montage::standard(name).map_or([0.0; 3], |s| s.1);
            let d = |m: &[f32; 3]| (0..3).map(|i| (m[i] - at[i]).powi(2)).sum::<f32>();
            let nearest = (0..s.channels())
                .min_by(|&a, &b| d(&s.mm[a]).total_cmp(&d(&s.mm[b])))
                .unwrap_or(0);
            out.extend_from_slice(&power[nearest]);
        }
        Ok(out)
    }

    /// Two rhythm classes, 12 recordings each of 12 s, in EDF, EDF+C and BDF at 128,
    /// 200 and 256 Hz on shuffled montages (every fifth recording `test`).
    fn write_demo_data(dir: &Path, seed: u64) -> Result<PathBuf, EegError> {
        crate::synth::write_dataset(dir, 12, 12, seed)
    }
}
