//! Music front ends: the constant-Q transform (as `librosa.cqt`) and chroma (as
//! `librosa.feature.chroma_stft` and `librosa.feature.chroma_cqt`), next to the log-mel and
//! fbank features of [`crate::features`].
//!
//! # CQT
//! Brown (1991), computed as Schörkhuber & Klapuri, "Constant-Q transform toolbox for music
//! processing" (SMC 2010), exactly in librosa 0.11's order: the filters of the top octave are
//! applied at the input rate (one FFT per frame, a sparse frequency-domain basis), then the
//! signal is halved in rate and the next octave is computed the same way (with the same FFT
//! size, as its filters are as many samples long at half the rate), for as long as the hop
//! stays even; once it is odd the remaining octaves stay at that rate. When the top bin lies far below Nyquist the signal is first decimated by
//! a power of two ("early downsampling"), as librosa does. The filters are Hann-windowed
//! complex exponentials of length `Q sr / f` with `Q = filter_scale / alpha`, L1-normalised
//! (`norm=1`), their spectra sparsified as `sparsity` says, and the response of bin `k` is
//! divided by `sqrt(length_k)` (`scale=True`). Frames are centred (frame `t` at sample
//! `t * hop_length`) with zero padding (librosa's `pad_mode="constant"`).
//!
//! librosa decimates with soxr (`res_type="soxr_hq"`); this module uses its own
//! Kaiser-windowed sinc whose three parameters were fitted to soxr's measured 2:1 impulse
//! response (largest tap difference 3e-8), applied by FFT (overlap-save). Agreement with
//! librosa (`domains/audio/tests/music.rs`): 1e-6 of the clip's largest magnitude, at most
//! 1e-3 in `ln(|C|^2 + 1e-6)` (in bins 65-80 dB below the peak), without early
//! downsampling or with it by 2 or 4; 2e-5 and 3e-2 with early downsampling by 8 or more
//! (the top bin below Nyquist / 16), where soxr designs its filter differently.
//!
//! # Chroma
//! Energy per pitch class, either from a power spectrogram (`chroma_stft`: librosa's
//! Gaussian chroma filterbank, `ctroct = 5`, `octwidth = 2`) or from CQT magnitudes
//! (`chroma_cqt`: CQT bins summed per pitch class), then divided by each frame's maximum
//! (`norm=inf`). Bin 0 is C.
//!
//! Precision: filters, FFTs and projections run in float64, outputs are rounded to float32.

use std::f64::consts::PI;
use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};
use serde::{Deserialize, Serialize};

use crate::error::AudioError;

/// C1 in hertz (`librosa.note_to_hz("C1")`), the default lowest CQT bin.
pub const C1_HZ: f64 = 32.703_195_662_574_83;

/// C4 in hertz (`librosa.note_to_hz("C4")`): chroma bin `c` is placed at
/// `C4_HZ * 2^((c + tuning) / n_chroma)`.
pub const C4_HZ: f64 = 261.625_565_300_598_6;

/// librosa's equivalent noise bandwidth of the Hann window (`window_bandwidth("hann")`),
/// in FFT bins; it sets how far above its centre a CQT filter reaches.
const HANN_BANDWIDTH: f64 = 1.500_183_105_468_75;

/// Constant-Q transform parameters (`librosa.cqt` names in brackets).
///
/// Output: `ln(|C|^power + log_offset)`, the same form as the log-mel's
/// `ln(mel + log_offset)` (with `power = 2` both are log energies), `[n_bins, frames]`,
/// bins from `f_min_hz` upwards, frame `t` centred at `t * hop_length / sample_rate_hz` s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CqtConfig {
    /// Sampling rate of the input, in hertz (`sr`).
    pub sample_rate_hz: u32,
    /// Frame step in samples (`hop_length`). Any positive value: like librosa 0.10 and
    /// later, the rate is halved after an octave only while the hop is even (older
    /// librosa required divisibility by `2^(n_octaves - 1)`). Hops divisible by
    /// `2^(n_octaves - 1)` are the fast case; an odd hop runs every octave at the full rate.
    pub hop_length: usize,
    /// Centre frequency of the lowest bin before tuning, in hertz (`fmin`, default C1).
    pub f_min_hz: f64,
    /// Number of bins (`n_bins`).
    pub n_bins: usize,
    /// Bins per octave (`bins_per_octave`).
    pub bins_per_octave: usize,
    /// Filter length factor: below 1 shorter filters, wider bands (`filter_scale`).
    pub filter_scale: f64,
    /// Tuning offset in fractions of a bin, given explicitly (never estimated); all centre
    /// frequencies are multiplied by `2^(tuning / bins_per_octave)` (`tuning`).
    pub tuning: f64,
    /// Fraction of each filter spectrum's L1 mass that may be dropped, in [0, 1)
    /// (`sparsity`).
    pub sparsity: f64,
    /// Exponent of the magnitude: 2 = energy, 1 = magnitude.
    pub power: f32,
    /// Output is `ln(|C|^power + log_offset)`.
    pub log_offset: f32,
}

impl Default for CqtConfig {
    /// librosa's defaults (22 050 Hz, hop 512, 84 bins, 12 per octave from C1, filter scale
    /// 1, sparsity 0.01) with tuning 0, as log energy `ln(|C|^2 + 1e-6)`.
    fn default() -> Self {
        Self {
            sample_rate_hz: 22_050,
            hop_length: 512,
            f_min_hz: C1_HZ,
            n_bins: 84,
            bins_per_octave: 12,
            filter_scale: 1.0,
            tuning: 0.0,
            sparsity: 0.01,
            power: 2.0,
            log_offset: 1e-6,
        }
    }
}

/// Where chroma comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChromaSource {
    /// Power spectrogram through librosa's chroma filterbank (`chroma_stft`).
    Stft,
    /// CQT magnitudes summed per pitch class (`chroma_cqt`).
    Cqt,
}

/// Chroma parameters (librosa `chroma_stft` / `chroma_cqt` names in brackets).
///
/// Output: each frame's energy per pitch class divided by the frame's maximum (`norm=inf`),
/// values in [0, 1], no logarithm (an all-zero frame stays zero). `[n_chroma, frames]`,
/// bin 0 = C.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChromaConfig {
    /// `"stft"` (`chroma_stft`) or `"cqt"` (`chroma_cqt`).
    pub source: ChromaSource,
    /// Sampling rate of the input, in hertz (`sr`).
    pub sample_rate_hz: u32,
    /// Frame step in samples (`hop_length`).
    pub hop_length: usize,
    /// Number of pitch classes, a positive multiple of 12 (`n_chroma`).
    pub n_chroma: usize,
    /// Tuning offset in fractions of a chroma bin (semitones for 12 bins), given
    /// explicitly. `chroma_stft` takes it as is; for `chroma_cqt` it is passed to the CQT as
    /// `tuning * bins_per_octave / n_chroma` (librosa's CQT counts in CQT bins).
    pub tuning: f64,
    /// stft: FFT size in samples (`n_fft`).
    pub n_fft: usize,
    /// stft: Hann window length in samples, at most `n_fft`, centred in the frame
    /// (`win_length`).
    pub win_length: usize,
    /// stft: zero-pad by `n_fft / 2` on both sides so frame `t` is centred at
    /// `t * hop_length` (`center`, librosa 0.11's default `pad_mode="constant"`). The cqt
    /// source is always centred.
    pub center: bool,
    /// cqt: centre of the lowest CQT bin before tuning, in hertz (`fmin`, default C1).
    pub f_min_hz: f64,
    /// cqt: CQT bins per octave, a multiple of `n_chroma` (`bins_per_octave`).
    pub bins_per_octave: usize,
    /// cqt: number of octaves analysed (`n_octaves`).
    pub n_octaves: usize,
}

impl Default for ChromaConfig {
    /// librosa's `chroma_stft` defaults at 22 050 Hz (n_fft 2048, hop 512, centred), tuning
    /// 0; the cqt fields are `chroma_cqt`'s defaults (7 octaves of 36 bins from C1).
    fn default() -> Self {
        Self {
            source: ChromaSource::Stft,
            sample_rate_hz: 22_050,
            hop_length: 512,
            n_chroma: 12,
            tuning: 0.0,
            n_fft: 2048,
            win_length: 2048,
            center: true,
            f_min_hz: C1_HZ,
            bins_per_octave: 36,
            n_octaves: 7,
        }
    }
}

impl ChromaConfig {
    /// The CQT behind `source = "cqt"` (librosa's `chroma_cqt` calls `cqt` with these).
    pub fn cqt_config(&self) -> CqtConfig {
        CqtConfig {
            sample_rate_hz: self.sample_rate_hz,
            hop_length: self.hop_length,
            f_min_hz: self.f_min_hz,
            n_bins: self.n_octaves * self.bins_per_octave,
            bins_per_octave: self.bins_per_octave,
            filter_scale: 1.0,
            tuning: self.tuning * self.bins_per_octave as f64 / self.n_chroma.max(1) as f64,
            sparsity: 0.01,
            power: 1.0,
            log_offset: 1.0,
        }
    }
}

fn cfg_err(msg: String) -> AudioError {
    AudioError::Config(msg)
}

// ---------------------------------------------------------------------------------------
// CQT geometry

/// Everything the CQT derives from its configuration before any signal is seen.
struct CqtGeometry {
    /// Bin centre frequencies in hertz, tuning applied (`[n_bins]`).
    freqs: Vec<f64>,
    /// Relative bandwidth of each bin (librosa's `alpha`).
    alpha: Vec<f64>,
    /// Octaves, top first (`ceil(n_bins / bins_per_octave)`).
    n_octaves: usize,
    /// Filters per octave (`min(bins_per_octave, n_bins)`).
    n_filters: usize,
    /// Early downsampling factor, a power of two (1 = none).
    early: usize,
}

/// `librosa.interval_frequencies(n_bins, fmin, "equal", bins_per_octave)`.
fn equal_frequencies(n_bins: usize, fmin: f64, bins_per_octave: usize) -> Vec<f64> {
    let bpo = bins_per_octave as f64;
    (0..n_bins)
        .map(|k| {
            let (octave, step) = (k / bins_per_octave, k % bins_per_octave);
            2f64.powi(octave as i32) * 2f64.powf(step as f64 / bpo) * fmin
        })
        .collect()
}

/// librosa's `_relative_bandwidth` (and `__et_relative_bw` for a single bin).
fn relative_bandwidth(freqs: &[f64], bins_per_octave: usize) -> Vec<f64> {
    let alpha_of = |bpo: f64| {
        let r = 2f64.powf(2.0 / bpo);
        (r - 1.0) / (r + 1.0)
    };
    let n = freqs.len();
    if n < 2 {
        let r = 2f64.powf(1.0 / bins_per_octave as f64);
        return vec![(r * r - 1.0) / (r * r + 1.0); n];
    }
    let logf: Vec<f64> = freqs.iter().map(|f| f.log2()).collect();
    (0..n)
        .map(|i| {
            let bpo = if i == 0 {
                1.0 / (logf[1] - logf[0])
            } else if i == n - 1 {
                1.0 / (logf[n - 1] - logf[n - 2])
            } else {
                2.0 / (logf[i + 1] - logf[i - 1])
            };
            alpha_of(bpo)
        })
        .collect()
}

fn two_factors(mut x: usize) -> usize {
    let mut n = 0;
    while x > 0 && x.is_multiple_of(2) {
        x /= 2;
        n += 1;
    }
    n
}

/// Validate a CQT configuration; `what` prefixes field names (`cqt` or `chroma`).
fn cqt_geometry(c: &CqtConfig, what: &str) -> Result<CqtGeometry, AudioError> {
    if c.sample_rate_hz == 0 {
        return Err(cfg_err(format!(
            "{what}.sample_rate_hz must be positive, got 0"
        )));
    }
    if c.hop_length == 0 {
        return Err(cfg_err(format!(
            "{what}.hop_length must be positive, got 0"
        )));
    }
    if c.n_bins == 0 {
        return Err(cfg_err(format!("{what}.n_bins must be positive, got 0")));
    }
    if c.bins_per_octave == 0 {
        return Err(cfg_err(format!(
            "{what}.bins_per_octave must be positive, got 0"
        )));
    }
    if !(c.f_min_hz.is_finite() && c.f_min_hz > 0.0) {
        return Err(cfg_err(format!(
            "{what}.f_min_hz must be finite and > 0, got {}",
            c.f_min_hz
        )));
    }
    if !(c.filter_scale.is_finite() && c.filter_scale > 0.0) {
        return Err(cfg_err(format!(
            "{what}.filter_scale must be finite and > 0, got {}",
            c.filter_scale
        )));
    }
    if !c.tuning.is_finite() {
        return Err(cfg_err(format!(
            "{what}.tuning must be finite, got {}",
            c.tuning
        )));
    }
    if !(0.0..1.0).contains(&c.sparsity) {
        return Err(cfg_err(format!(
            "{what}.sparsity must be in [0, 1), got {}",
            c.sparsity
        )));
    }
    if !(c.power.is_finite() && c.power > 0.0) {
        return Err(cfg_err(format!(
            "{what}.power must be finite and > 0, got {}",
            c.power
        )));
    }
    if !(c.log_offset.is_finite() && c.log_offset > 0.0) {
        return Err(cfg_err(format!(
            "{what}.log_offset must be finite and > 0, got {}",
            c.log_offset
        )));
    }
    let bpo = c.bins_per_octave;
    let n_octaves = c.n_bins.div_ceil(bpo);
    if n_octaves > 30 {
        return Err(cfg_err(format!(
            "{what}.n_bins = {} spans {n_octaves} octaves, at most 30 are supported",
            c.n_bins
        )));
    }
    let fmin = c.f_min_hz * 2f64.powf(c.tuning / bpo as f64);
    let freqs = equal_frequencies(c.n_bins, fmin, bpo);
    let alpha = relative_bandwidth(&freqs, bpo);
    let nyquist = f64::from(c.sample_rate_hz) / 2.0;
    let cutoff = freqs
        .iter()
        .zip(&alpha)
        .map(|(f, a)| f * (1.0 + 0.5 * HANN_BANDWIDTH * a / c.filter_scale))
        .fold(0.0, f64::max);
    let top = freqs[freqs.len() - 1];
    if !(cutoff.is_finite() && cutoff <= nyquist) {
        return Err(cfg_err(format!(
            "{what}: the top bin ({top:.1} Hz from f_min_hz = {}, n_bins = {}, \
             bins_per_octave = {bpo}, tuning = {}) reaches {cutoff:.1} Hz with its bandwidth, \
             above Nyquist ({nyquist} Hz); lower n_bins or f_min_hz",
            c.f_min_hz, c.n_bins, c.tuning
        )));
    }
    // librosa's __early_downsample_count.
    let count1 = ((nyquist / cutoff).log2().ceil() as i64 - 2).max(0);
    let count2 = (two_factors(c.hop_length) as i64 - n_octaves as i64 + 1).max(0);
    let early = 1usize << count1.min(count2);
    Ok(CqtGeometry {
        freqs,
        alpha,
        n_octaves,
        n_filters: bpo.min(c.n_bins),
        early,
    })
}

pub(crate) fn validate_cqt(c: &CqtConfig) -> Result<(), AudioError> {
    cqt_geometry(c, "cqt").map(|_| ())
}

pub(crate) fn validate_chroma(c: &ChromaConfig) -> Result<(), AudioError> {
    if c.sample_rate_hz == 0 {
        return Err(cfg_err(
            "chroma.sample_rate_hz must be positive, got 0".into(),
        ));
    }
    if c.hop_length == 0 {
        return Err(cfg_err("chroma.hop_length must be positive, got 0".into()));
    }
    if c.n_chroma == 0 || !c.n_chroma.is_multiple_of(12) {
        return Err(cfg_err(format!(
            "chroma.n_chroma must be a positive multiple of 12, got {}",
            c.n_chroma
        )));
    }
    if !c.tuning.is_finite() {
        return Err(cfg_err(format!(
            "chroma.tuning must be finite, got {}",
            c.tuning
        )));
    }
    match c.source {
        ChromaSource::Stft => {
            if c.n_fft < 2 {
                return Err(cfg_err(format!(
                    "chroma.n_fft must be at least 2, got {}",
                    c.n_fft
                )));
            }
            if c.win_length == 0 || c.win_length > c.n_fft {
                return Err(cfg_err(format!(
                    "chroma.win_length must be in 1..=n_fft ({}), got {}",
                    c.n_fft, c.win_length
                )));
            }
        }
        ChromaSource::Cqt => {
            if c.n_octaves == 0 {
                return Err(cfg_err("chroma.n_octaves must be positive, got 0".into()));
            }
            if c.bins_per_octave == 0 || !c.bins_per_octave.is_multiple_of(c.n_chroma) {
                return Err(cfg_err(format!(
                    "chroma.bins_per_octave must be a positive multiple of n_chroma ({}), got {}",
                    c.n_chroma, c.bins_per_octave
                )));
            }
            cqt_geometry(&c.cqt_config(), "chroma")?;
        }
    }
    Ok(())
}

/// Centre frequency of every CQT bin in hertz, tuning applied
/// (`librosa.cqt_frequencies(n_bins, fmin=f_min_hz * 2^(tuning / bins_per_octave), ...)`).
///
/// # Shapes
/// `[n_bins]`, ascending.
pub fn cqt_frequencies(c: &CqtConfig) -> Vec<f64> {
    let bpo = c.bins_per_octave.max(1);
    let fmin = c.f_min_hz * 2f64.powf(c.tuning / bpo as f64);
    equal_frequencies(c.n_bins, fmin, bpo)
}

/// The frequency a chroma bin stands for, in hertz: pitch class `c` in octave 4,
/// `C4_HZ * 2^((c + tuning) / n_chroma)` (C4 = 261.63 Hz ... B4 = 493.88 Hz for 12 bins
/// and tuning 0).
///
/// # Shapes
/// `[n_chroma]`, ascending.
pub fn chroma_frequencies(c: &ChromaConfig) -> Vec<f64> {
    let n = c.n_chroma.max(1) as f64;
    (0..c.n_chroma)
        .map(|k| C4_HZ * 2f64.powf((k as f64 + c.tuning) / n))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Decimation (librosa's soxr_hq stand-in)

/// Cutoff of soxr's "HQ" decimation filter as a fraction of the output Nyquist, its Kaiser
/// window's beta and its half width in output samples: fitted to the impulse response of
/// `soxr.resample(x, 2, 1, quality="HQ")` (python-soxr 1.1.0; largest tap difference 3e-8).
const SOXR_CUTOFF: f64 = 0.956_871_82;
const SOXR_BETA: f64 = 13.04;
const SOXR_HALF_WIDTH: f64 = 97.25;

/// Modified Bessel function of the first kind, order 0 (power series; `x` ≤ ~30 here).
fn bessel_i0(x: f64) -> f64 {
    let q = x * x / 4.0;
    let (mut term, mut sum) = (1.0f64, 1.0f64);
    for k in 1..200 {
        term *= q / (k * k) as f64;
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    sum
}

/// Lowpass and keep every `factor`-th sample: `librosa.resample(y, orig_sr=factor,
/// target_sr=1, res_type="soxr_hq", scale=True)` (output `ceil(len / factor)` samples,
/// scaled by `sqrt(factor)`, the signal taken as zero outside), by overlap-save FFT
/// convolution with a linear-phase Kaiser-windowed sinc.
#[derive(Clone)]
struct Decimator {
    factor: usize,
    /// Taps on each side of the centre.
    half: usize,
    /// FFT block size.
    block: usize,
    /// Input samples (a multiple of `factor`) consumed per block.
    step: usize,
    fft: Arc<dyn RealToComplex<f64>>,
    ifft: Arc<dyn ComplexToReal<f64>>,
    /// Spectrum of the taps, divided by `block` (realfft's inverse is unnormalised).
    taps_spectrum: Vec<Complex<f64>>,
}

impl Decimator {
    fn new(factor: usize, planner: &mut RealFftPlanner<f64>) -> Result<Self, AudioError> {
        let d = factor as f64;
        let width = SOXR_HALF_WIDTH * d;
        let half = width.ceil() as usize - 1;
        let taps: Vec<f64> = (0..=2 * half)
            .map(|i| {
                let n = i as f64 - half as f64;
                let x = n / width;
                let window =
                    bessel_i0(SOXR_BETA * (1.0 - x * x).max(0.0).sqrt()) / bessel_i0(SOXR_BETA);
                let arg = SOXR_CUTOFF * n / d;
                let sinc = if arg == 0.0 {
                    1.0
                } else {
                    (PI * arg).sin() / (PI * arg)
                };
                // librosa's scale=True multiplies the output by sqrt(factor).
                SOXR_CUTOFF / d * sinc * window * d.sqrt()
            })
            .collect();
        let block = (8 * taps.len()).next_power_of_two().max(1024);
        let step = (block - 2 * half) / factor * factor;
        let fft = planner.plan_fft_forward(block);
        let ifft = planner.plan_fft_inverse(block);
        let mut padded = fft.make_input_vec();
        padded[..taps.len()].copy_from_slice(&taps);
        let mut taps_spectrum = fft.make_output_vec();
        fft.process(&mut padded, &mut taps_spectrum)
            .map_err(AudioError::Fft)?;
        taps_spectrum.iter_mut().for_each(|z| *z /= block as f64);
        Ok(Self {
            factor,
            half,
            block,
            step,
            fft,
            ifft,
            taps_spectrum,
        })
    }

    /// # Shapes
    /// `[len]` → `[ceil(len / factor)]`.
    fn process(&self, x: &[f64]) -> Result<Vec<f64>, AudioError> {
        let (d, half, block) = (self.factor, self.half, self.block);
        let mut out = vec![0.0f64; x.len().div_ceil(d)];
        let mut seg = self.fft.make_input_vec();
        let mut spec = self.fft.make_output_vec();
        let mut conv = self.ifft.make_output_vec();
        let mut scratch_f = self.fft.make_scratch_vec();
        let mut scratch_i = self.ifft.make_scratch_vec();
        let mut start = 0usize;
        while start < x.len() {
            // seg[i] = x[start - half + i], zero outside the signal.
            let first = start as isize - half as isize;
            for (i, v) in seg.iter_mut().enumerate() {
                let j = first + i as isize;
                *v = if j >= 0 && (j as usize) < x.len() {
                    x[j as usize]
                } else {
                    0.0
                };
            }
            self.fft
                .process_with_scratch(&mut seg, &mut spec, &mut scratch_f)
                .map_err(AudioError::Fft)?;
            spec.iter_mut()
                .zip(&self.taps_spectrum)
                .for_each(|(s, h)| *s *= h);
            // realfft requires real DC and Nyquist bins on the inverse.
            spec[0].im = 0.0;
            if block.is_multiple_of(2) {
                spec[block / 2].im = 0.0;
            }
            self.ifft
                .process_with_scratch(&mut spec, &mut conv, &mut scratch_i)
                .map_err(AudioError::Fft)?;
            // conv[2 * half + k] is the filtered signal at input position start + k.
            let end = (start + self.step).min(x.len());
            for p in (start..end).step_by(d) {
                out[p / d] = conv[p - start + 2 * half];
            }
            start += self.step;
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------------------------------
// CQT plan

/// One octave's filters as sparse rows over the non-negative frequencies of its FFT.
#[derive(Clone)]
struct Octave {
    n_fft: usize,
    fft: Arc<dyn RealToComplex<f64>>,
    /// First output bin of this octave (its rows are bins `first_bin..first_bin + rows`).
    first_bin: usize,
    /// Row `r` holds entries `offsets[r]..offsets[r + 1]` of `index` / `weight`.
    offsets: Vec<usize>,
    index: Vec<usize>,
    weight: Vec<Complex<f64>>,
    /// Frame step at this octave's rate.
    hop: usize,
    /// Halve the rate after this octave (the next one exists and `hop` is even).
    halve_after: bool,
}

/// librosa's `util.sparsify_rows` for one row: keep the entries whose magnitude is at least
/// that of the first sorted entry at which the cumulative L1 share reaches `quantile`.
fn sparsify(row: &[Complex<f64>], quantile: f64) -> Vec<(usize, Complex<f64>)> {
    let mags: Vec<f64> = row.iter().map(|z| z.norm()).collect();
    let norm: f64 = mags.iter().sum();
    let mut sorted = mags.clone();
    sorted.sort_by(f64::total_cmp);
    let mut cumulative = 0.0;
    let mut threshold = sorted[0];
    for &m in &sorted {
        cumulative += m / norm;
        threshold = m;
        if cumulative >= quantile {
            break;
        }
    }
    row.iter()
        .zip(&mags)
        .enumerate()
        .filter(|(_, (_, &m))| m >= threshold)
        .map(|(i, (&z, _))| (i, z))
        .collect()
}

/// The CQT with its filters, FFT plans and decimators built once.
#[derive(Clone)]
pub(crate) struct CqtPlan {
    cfg: CqtConfig,
    early: Option<Decimator>,
    halver: Option<Decimator>,
    octaves: Vec<Octave>,
    /// `1 / sqrt(filter length)` per bin, lengths at the early-downsampled rate.
    inv_sqrt_len: Vec<f64>,
}

impl CqtPlan {
    /// `what` names the config in errors (`cqt` or `chroma`).
    fn new(cfg: &CqtConfig, what: &str) -> Result<Self, AudioError> {
        let g = cqt_geometry(cfg, what)?;
        let mut planner = RealFftPlanner::<f64>::new();
        let sr = f64::from(cfg.sample_rate_hz) / g.early as f64;
        let (n_bins, n_filters) = (cfg.n_bins, g.n_filters);
        let q = |k: usize| cfg.filter_scale / g.alpha[k];
        let inv_sqrt_len = (0..n_bins)
            .map(|k| 1.0 / (q(k) * sr / g.freqs[k]).sqrt())
            .collect();
        let mut octaves = Vec::with_capacity(g.n_octaves);
        let (mut my_sr, mut hop) = (sr, cfg.hop_length / g.early);
        let mut complex_planner = rustfft::FftPlanner::<f64>::new();
        for i in 0..g.n_octaves {
            let end = n_bins - n_filters * i;
            let first = end.saturating_sub(n_filters);
            let lengths: Vec<f64> = (first..end).map(|k| q(k) * my_sr / g.freqs[k]).collect();
            let max_len = lengths.iter().copied().fold(0.0, f64::max);
            let n_fft = 2f64.powf(max_len.log2().ceil()) as usize;
            let fft_c = complex_planner.plan_fft_forward(n_fft);
            let rescale = (sr / my_sr).sqrt();
            let (mut offsets, mut index, mut weight) = (vec![0], Vec::new(), Vec::new());
            let mut buf = vec![Complex::new(0.0, 0.0); n_fft];
            for (r, k) in (first..end).enumerate() {
                let len = lengths[r];
                // librosa.filters.wavelet: t = arange(-len // 2, len // 2), a Hann window of
                // len(t) samples, L1 normalisation, centred in n_fft.
                let lo = (-len / 2.0).floor();
                let count = ((len / 2.0).floor() - lo) as usize;
                let mut filt: Vec<Complex<f64>> = (0..count)
                    .map(|i| {
                        let t = lo + i as f64;
                        let w = if count == 1 {
                            1.0
                        } else {
                            0.5 - 0.5 * (2.0 * PI * i as f64 / count as f64).cos()
                        };
                        Complex::from_polar(1.0, t * 2.0 * PI * g.freqs[k] / my_sr) * w
                    })
                    .collect();
                let l1: f64 = filt.iter().map(|z| z.norm()).sum();
                let lpad = (n_fft - count) / 2;
                buf.iter_mut().for_each(|z| *z = Complex::new(0.0, 0.0));
                for (b, z) in buf[lpad..lpad + count].iter_mut().zip(filt.iter_mut()) {
                    *b = *z / l1 * (len / n_fft as f64);
                }
                fft_c.process(&mut buf);
                let half_spectrum = &buf[..n_fft / 2 + 1];
                let kept: Vec<(usize, Complex<f64>)> = if cfg.sparsity > 0.0 {
                    sparsify(half_spectrum, cfg.sparsity)
                } else {
                    half_spectrum.iter().copied().enumerate().collect()
                };
                for (j, z) in kept {
                    index.push(j);
                    weight.push(z * rescale);
                }
                offsets.push(index.len());
            }
            let halve_after = i + 1 < g.n_octaves && hop.is_multiple_of(2);
            octaves.push(Octave {
                n_fft,
                fft: planner.plan_fft_forward(n_fft),
                first_bin: first,
                offsets,
                index,
                weight,
                hop,
                halve_after,
            });
            if halve_after {
                hop /= 2;
                my_sr /= 2.0;
            }
        }
        let early = if g.early > 1 {
            Some(Decimator::new(g.early, &mut planner)?)
        } else {
            None
        };
        let halver = if octaves.iter().any(|o| o.halve_after) {
            Some(Decimator::new(2, &mut planner)?)
        } else {
            None
        };
        Ok(Self {
            cfg: cfg.clone(),
            early,
            halver,
            octaves,
            inv_sqrt_len,
        })
    }

    /// Frames for `len` samples: librosa takes the fewest over the octaves, each
    /// `1 + len_o // hop_o` with `len_o` halved (rounded up) at every decimation.
    fn n_frames(&self, len: usize) -> Result<usize, AudioError> {
        let early = self.early.as_ref().map_or(1, |d| d.factor);
        if len == 0 || len < early {
            return Err(AudioError::TooShort {
                what: format!("a CQT (early downsampling by {early})"),
                samples: len,
                needed: early.max(1),
            });
        }
        let mut n = len.div_ceil(early);
        let mut frames = usize::MAX;
        for o in &self.octaves {
            frames = frames.min(1 + n / o.hop);
            if o.halve_after {
                n = n.div_ceil(2);
            }
        }
        Ok(frames)
    }

    /// `|C|`, bin-major `[n_bins, frames]`.
    fn magnitudes(&self, x: &[f32]) -> Result<(Vec<f64>, usize), AudioError> {
        let frames = self.n_frames(x.len())?;
        let mut y: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
        if let Some(d) = &self.early {
            y = d.process(&y)?;
        }
        let mut out = vec![0.0f64; self.cfg.n_bins * frames];
        for o in &self.octaves {
            let mut input = o.fft.make_input_vec();
            let mut spectrum = o.fft.make_output_vec();
            let mut scratch = o.fft.make_scratch_vec();
            let half = (o.n_fft / 2) as isize;
            for t in 0..frames {
                // Frame t covers y[t * hop - n_fft / 2 .. t * hop + n_fft / 2), zero outside.
                let start = (t * o.hop) as isize - half;
                let lo = (-start).clamp(0, o.n_fft as isize) as usize;
                let hi = (y.len() as isize - start).clamp(0, o.n_fft as isize) as usize;
                input[..lo].iter_mut().for_each(|v| *v = 0.0);
                if hi > lo {
                    let s = (start + lo as isize) as usize;
                    input[lo..hi].copy_from_slice(&y[s..s + hi - lo]);
                }
                input[hi.max(lo)..].iter_mut().for_each(|v| *v = 0.0);
                o.fft
                    .process_with_scratch(&mut input, &mut spectrum, &mut scratch)
                    .map_err(AudioError::Fft)?;
                for r in 0..o.offsets.len() - 1 {
                    let (a, b) = (o.offsets[r], o.offsets[r + 1]);
                    let acc: Complex<f64> = o.index[a..b]
                        .iter()
                        .zip(&o.weight[a..b])
                        .map(|(&j, w)| w * spectrum[j])
                        .sum();
                    let bin = o.first_bin + r;
                    out[bin * frames + t] = acc.norm() * self.inv_sqrt_len[bin];
                }
            }
            if o.halve_after {
                if let Some(h) = &self.halver {
                    y = h.process(&y)?;
                }
            }
        }
        Ok((out, frames))
    }
}

// ---------------------------------------------------------------------------------------
// Chroma

/// librosa's `filters.chroma(sr, n_fft, n_chroma, tuning)` (`ctroct=5`, `octwidth=2`,
/// `norm=2`, `base_c=True`), rounded to float32 as librosa returns it.
///
/// # Shapes
/// `[n_chroma, n_fft / 2 + 1]`, row-major.
pub fn chroma_filterbank(c: &ChromaConfig) -> Vec<f32> {
    let (n_chroma, n_fft) = (c.n_chroma.max(1), c.n_fft.max(1));
    let nc = n_chroma as f64;
    let sr = f64::from(c.sample_rate_hz);
    let a440 = 440.0 * 2f64.powf(c.tuning / nc);
    // frqbins[k] for FFT bin k (k >= 1); bin 0 sits 1.5 octaves below bin 1.
    let mut frqbins: Vec<f64> = (1..n_fft)
        .map(|k| nc * ((k as f64 * sr / n_fft as f64) / (a440 / 16.0)).log2())
        .collect();
    let first = frqbins.first().copied().unwrap_or(0.0) - 1.5 * nc;
    frqbins.insert(0, first);
    let n = frqbins.len();
    let widths: Vec<f64> = (0..n)
        .map(|k| {
            if k + 1 < n {
                (frqbins[k + 1] - frqbins[k]).max(1.0)
            } else {
                1.0
            }
        })
        .collect();
    let half_chroma = (nc / 2.0).round_ties_even();
    let mut wts = vec![0.0f64; n_chroma * n];
    for k in 0..n {
        for ch in 0..n_chroma {
            let d = (frqbins[k] - ch as f64 + half_chroma + 10.0 * nc).rem_euclid(nc) - half_chroma;
            wts[ch * n + k] = (-0.5 * (2.0 * d / widths[k]).powi(2)).exp();
        }
        let norm = (0..n_chroma)
            .map(|ch| wts[ch * n + k].powi(2))
            .sum::<f64>()
            .sqrt();
        let octave = (-0.5 * ((frqbins[k] / nc - 5.0) / 2.0).powi(2)).exp();
        for ch in 0..n_chroma {
            if norm >= f64::MIN_POSITIVE {
                wts[ch * n + k] /= norm;
            }
            wts[ch * n + k] *= octave;
        }
    }
    // base_c: roll the rows so that row 0 is C (three semitones above A).
    let shift = 3 * (n_chroma / 12);
    let n_freqs = n_fft / 2 + 1;
    let mut out = vec![0.0f32; n_chroma * n_freqs];
    for r in 0..n_chroma {
        let src = (r + shift) % n_chroma;
        for k in 0..n_freqs.min(n) {
            out[r * n_freqs + k] = wts[src * n + k] as f32;
        }
    }
    out
}

/// Pitch class of every CQT bin under librosa's `filters.cq_to_chroma` (`base_c=True`).
fn cq_to_chroma_map(
    n_bins: usize,
    bins_per_octave: usize,
    n_chroma: usize,
    fmin: f64,
) -> Vec<usize> {
    let merge = bins_per_octave / n_chroma;
    let midi = 12.0 * (fmin.log2() - 440f64.log2()) + 69.0;
    let roll = (midi.rem_euclid(12.0) * n_chroma as f64 / 12.0).round_ties_even() as i64;
    (0..n_bins)
        .map(|j| {
            let base = ((j % bins_per_octave + merge / 2) % bins_per_octave) / merge;
            (base as i64 + roll).rem_euclid(n_chroma as i64) as usize
        })
        .collect()
}

#[derive(Clone)]
pub(crate) enum ChromaPlan {
    Stft {
        fft: Arc<dyn RealToComplex<f64>>,
        /// `n_fft` samples: the Hann window centred, zeros around it.
        window: Vec<f64>,
        /// `[n_chroma, n_fft / 2 + 1]`.
        filters: Vec<f64>,
    },
    Cqt {
        cqt: Box<CqtPlan>,
        /// Pitch class of each CQT bin.
        map: Vec<usize>,
    },
}

/// A validated music feature (CQT or chroma) with everything planned once.
#[derive(Clone)]
pub(crate) enum MusicPlan {
    Cqt(CqtPlan),
    Chroma(ChromaConfig, ChromaPlan),
}

impl MusicPlan {
    pub(crate) fn cqt(cfg: &CqtConfig) -> Result<Self, AudioError> {
        Ok(Self::Cqt(CqtPlan::new(cfg, "cqt")?))
    }

    pub(crate) fn chroma(cfg: &ChromaConfig) -> Result<Self, AudioError> {
        validate_chroma(cfg)?;
        let plan = match cfg.source {
            ChromaSource::Stft => {
                let mut window = vec![0.0f64; cfg.n_fft];
                let left = (cfg.n_fft - cfg.win_length) / 2;
                let n = cfg.win_length as f64;
                for i in 0..cfg.win_length {
                    window[left + i] = 0.5 - 0.5 * (2.0 * PI * i as f64 / n).cos();
                }
                ChromaPlan::Stft {
                    fft: RealFftPlanner::<f64>::new().plan_fft_forward(cfg.n_fft),
                    window,
                    filters: chroma_filterbank(cfg)
                        .iter()
                        .map(|&v| f64::from(v))
                        .collect(),
                }
            }
            ChromaSource::Cqt => {
                let cqt_cfg = cfg.cqt_config();
                ChromaPlan::Cqt {
                    map: cq_to_chroma_map(
                        cqt_cfg.n_bins,
                        cfg.bins_per_octave,
                        cfg.n_chroma,
                        cfg.f_min_hz,
                    ),
                    cqt: Box::new(CqtPlan::new(&cqt_cfg, "chroma")?),
                }
            }
        };
        Ok(Self::Chroma(cfg.clone(), plan))
    }

    /// Number of output bins.
    pub(crate) fn n_bins(&self) -> usize {
        match self {
            Self::Cqt(p) => p.cfg.n_bins,
            Self::Chroma(c, _) => c.n_chroma,
        }
    }

    pub(crate) fn n_frames(&self, len: usize) -> Result<usize, AudioError> {
        match self {
            Self::Cqt(p) => p.n_frames(len),
            Self::Chroma(_, ChromaPlan::Cqt { cqt, .. }) => cqt.n_frames(len),
            Self::Chroma(c, ChromaPlan::Stft { .. }) => {
                if c.center {
                    if len == 0 {
                        return Err(AudioError::TooShort {
                            what: "a centred chroma frame".into(),
                            samples: 0,
                            needed: 1,
                        });
                    }
                    Ok(1 + len / c.hop_length)
                } else if len < c.n_fft {
                    Err(AudioError::TooShort {
                        what: "one chroma frame (center = false)".into(),
                        samples: len,
                        needed: c.n_fft,
                    })
                } else {
                    Ok(1 + (len - c.n_fft) / c.hop_length)
                }
            }
        }
    }

    /// Features, bin-major `[n_bins, frames]`, and the frame count.
    pub(crate) fn compute(&self, x: &[f32]) -> Result<(Vec<f32>, usize), AudioError> {
        match self {
            Self::Cqt(p) => {
                let (mag, frames) = p.magnitudes(x)?;
                let (power, offset) = (f64::from(p.cfg.power), f64::from(p.cfg.log_offset));
                let data = mag
                    .iter()
                    .map(|&m| {
                        let e = if power == 2.0 {
                            m * m
                        } else if power == 1.0 {
                            m
                        } else {
                            m.powf(power)
                        };
                        (e + offset).ln() as f32
                    })
                    .collect();
                Ok((data, frames))
            }
            Self::Chroma(c, ChromaPlan::Cqt { cqt, map }) => {
                let (mag, frames) = cqt.magnitudes(x)?;
                let mut raw = vec![0.0f64; c.n_chroma * frames];
                for (bin, &pc) in map.iter().enumerate() {
                    let src = &mag[bin * frames..(bin + 1) * frames];
                    let dst = &mut raw[pc * frames..(pc + 1) * frames];
                    dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
                }
                Ok((normalise_frames(&raw, c.n_chroma, frames), frames))
            }
            Self::Chroma(
                c,
                ChromaPlan::Stft {
                    fft,
                    window,
                    filters,
                },
            ) => {
                let frames = self.n_frames(x.len())?;
                let n_fft = c.n_fft;
                let pad = if c.center { n_fft / 2 } else { 0 };
                let mut input = fft.make_input_vec();
                let mut spectrum = fft.make_output_vec();
                let mut scratch = fft.make_scratch_vec();
                let mut power = vec![0.0f64; spectrum.len()];
                let n_freqs = spectrum.len();
                let mut raw = vec![0.0f64; c.n_chroma * frames];
                for t in 0..frames {
                    let start = (t * c.hop_length) as isize - pad as isize;
                    for (i, (d, &w)) in input.iter_mut().zip(window).enumerate() {
                        let j = start + i as isize;
                        *d = if j >= 0 && (j as usize) < x.len() {
                            f64::from(x[j as usize]) * w
                        } else {
                            0.0
                        };
                    }
                    fft.process_with_scratch(&mut input, &mut spectrum, &mut scratch)
                        .map_err(AudioError::Fft)?;
                    for (p, z) in power.iter_mut().zip(&spectrum) {
                        *p = z.re * z.re + z.im * z.im;
                    }
                    for ch in 0..c.n_chroma {
                        let row = &filters[ch * n_freqs..(ch + 1) * n_freqs];
                        raw[ch * frames + t] = row.iter().zip(&power).map(|(a, b)| a * b).sum();
                    }
                }
                Ok((normalise_frames(&raw, c.n_chroma, frames), frames))
            }
        }
    }
}

/// `librosa.util.normalize(raw, norm=inf, axis=0)`: each frame divided by its largest
/// value; frames whose maximum is below the smallest normal float64 are left as they are.
fn normalise_frames(raw: &[f64], bins: usize, frames: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; bins * frames];
    for t in 0..frames {
        let max = (0..bins)
            .map(|b| raw[b * frames + t].abs())
            .fold(0.0, f64::max);
        let div = if max < f64::MIN_POSITIVE { 1.0 } else { max };
        for b in 0..bins {
            out[b * frames + t] = (raw[b * frames + t] / div) as f32;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bessel_i0_matches_known_values() {
        // scipy.special.i0
        assert!((bessel_i0(0.0) - 1.0).abs() < 1e-15);
        assert!((bessel_i0(1.0) - 1.266_065_877_752_008_4).abs() < 1e-14);
        assert!((bessel_i0(13.04) / 51_381.718_142_695_55 - 1.0).abs() < 1e-14);
    }

    #[test]
    fn decimator_keeps_low_tones_and_removes_high_ones() {
        let mut planner = RealFftPlanner::<f64>::new();
        for factor in [2usize, 4, 8] {
            let d = Decimator::new(factor, &mut planner).unwrap();
            let n: usize = 20_000;
            let f_low = 0.2 / factor as f64; // cycles per input sample, in the passband
            let f_high = 0.7 / factor as f64; // above the output Nyquist
            let low: Vec<f64> = (0..n)
                .map(|i| (2.0 * PI * f_low * i as f64).sin())
                .collect();
            let high: Vec<f64> = (0..n)
                .map(|i| (2.0 * PI * f_high * i as f64).sin())
                .collect();
            let (yl, yh) = (d.process(&low).unwrap(), d.process(&high).unwrap());
            assert_eq!(yl.len(), n.div_ceil(factor));
            let s = (factor as f64).sqrt();
            for m in 500..yl.len() - 500 {
                let want = s * (2.0 * PI * f_low * (m * factor) as f64).sin();
                assert!((yl[m] - want).abs() < 1e-5 * s, "{factor} {m}");
                assert!(yh[m].abs() < 1e-5, "{factor} {m}: {}", yh[m]);
            }
        }
    }

    #[test]
    fn sparsify_drops_the_smallest_share() {
        let row: Vec<Complex<f64>> = [0.001, 0.5, 0.002, 0.3, 0.197]
            .iter()
            .map(|&v| Complex::new(v, 0.0))
            .collect();
        let kept: Vec<usize> = sparsify(&row, 0.01).into_iter().map(|(i, _)| i).collect();
        assert_eq!(kept, vec![1, 3, 4]);
        assert_eq!(sparsify(&row, 0.0).len(), 5);
    }

    #[test]
    fn cq_to_chroma_starts_at_c_for_c1() {
        let map = cq_to_chroma_map(36, 36, 12, C1_HZ);
        // Three bins per pitch class, centred: bin 0 (C) and its upper neighbour are C, the
        // lower neighbour (bin 35, one third of a semitone below C2) is C as well.
        assert_eq!(&map[..4], &[0, 0, 1, 1]);
        assert_eq!(map[35], 0);
    }
}
