//! Tests of the music front ends (constant-Q transform and chroma) against librosa 0.11.
//!
//! Golden values come from `scripts/golden_music.py` (librosa in float64, tuning given); the
//! signals are stored in the JSON (four one-second clips at 22 050 Hz with 20 ms fades), so
//! neither Python nor data are needed. Tolerances (observed values in brackets):
//!
//! - chroma (`chroma_stft` and `chroma_cqt`): max abs error 1e-6 on values in [0, 1]
//!   [6e-8 stft, 4e-7 cqt]; the chroma filterbank 1e-7 [0: librosa returns it in float32,
//!   as we build it].
//! - CQT: compared in the output's own domain, `ln(|C|^2 + 1e-6)`, and as `|C|` relative to
//!   the clip's largest magnitude. The only algorithmic difference is the decimator (ours a
//!   Kaiser sinc fitted to soxr's 2:1 filter, largest tap difference 3e-8). Without early
//!   downsampling, or with it by 2 or 4: 2e-3 in the log domain [9e-4, in bins ~60 dB
//!   below the peak] and 5e-6 relative [1e-6]; the same against librosa run in float32
//!   (its usual mode) [5e-4, 1e-6]. Early downsampling by 8 or more (the top bin below
//!   Nyquist / 16): soxr designs those filters differently: 5e-2 in the log domain [3e-2]
//!   and 5e-5 relative [2e-5].

use proptest::prelude::*;
use serde_json::Value;

mod common;
use common::{f32s, golden, max_abs_diff};
use tessera_audio::error::AudioError;
use tessera_audio::features::{compute, FeatureConfig, Featurizer};
use tessera_audio::music::{
    chroma_filterbank, chroma_frequencies, cqt_frequencies, ChromaConfig, ChromaSource, CqtConfig,
    C1_HZ,
};
use tessera_audio::tokenizer::{bin_centres_hz, first_frame_s, PatchConfig, SpectrogramTokenizer};

const CHROMA_TOL: f32 = 1e-6;
const CHROMA_FILTERBANK_TOL: f32 = 1e-7;
/// Log domain `ln(|C|^2 + 1e-6)`, max abs error, and `|C|` error relative to the clip's
/// largest magnitude: no early downsampling or by 2 or 4 (librosa in float64 or float32),
/// and early downsampling by 8 or more.
const CQT_LOG_TOL: f32 = 2e-3;
const CQT_REL_TOL: f32 = 5e-6;
const CQT_EARLY_LOG_TOL: f32 = 5e-2;
const CQT_EARLY_REL_TOL: f32 = 5e-5;

// ---------------------------------------------------------------------------------------
// Golden helpers

fn shape(v: &Value) -> (usize, usize) {
    let s: Vec<usize> = v
        .as_array()
        .expect("shape")
        .iter()
        .map(|x| x.as_u64().expect("integer") as usize)
        .collect();
    (s[0], s[1])
}

/// Standard base64 (with padding) to bytes.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    for chunk in text.as_bytes().chunks(4) {
        let pad = chunk.iter().filter(|&&c| c == b'=').count();
        let n = chunk
            .iter()
            .map(|&c| if c == b'=' { 0 } else { value(c) })
            .fold(0u32, |acc, v| (acc << 6) | v);
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    out
}

/// Name -> samples (int16 / 32768, 22 050 Hz).
fn signal(name: &str) -> Vec<f32> {
    let g = golden("music_signals.json");
    assert_eq!(g["sample_rate_hz"].as_u64(), Some(22_050));
    let bytes = base64_decode(g["signals"][name].as_str().expect("signal"));
    bytes
        .chunks_exact(2)
        .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
        .collect()
}

fn cqt_cfg(v: &Value) -> CqtConfig {
    serde_json::from_value(v.clone()).expect("cqt config")
}

fn chroma_cfg(v: &Value) -> ChromaConfig {
    serde_json::from_value(v.clone()).expect("chroma config")
}

/// librosa's early downsampling factor for this config (1 = none): a power of two when the
/// top bin's reach lies below Nyquist / 4 and the hop has enough factors of two.
fn early_downsampling(c: &CqtConfig) -> usize {
    let bpo = c.bins_per_octave as f64;
    let top = cqt_frequencies(c)[c.n_bins - 1];
    let r = 2f64.powf(2.0 / bpo);
    let alpha = (r - 1.0) / (r + 1.0);
    let cutoff = top * (1.0 + 0.5 * 1.500_183_105_468_75 * alpha / c.filter_scale);
    let nyquist = f64::from(c.sample_rate_hz) / 2.0;
    let count1 = (nyquist / cutoff).log2().ceil() as i64 - 2;
    let count2 =
        c.hop_length.trailing_zeros() as i64 - c.n_bins.div_ceil(c.bins_per_octave) as i64 + 1;
    1 << count1.min(count2).max(0)
}

// ---------------------------------------------------------------------------------------
// Golden tests

#[test]
fn cqt_matches_librosa() {
    let g = golden("cqt.json");
    let cases = g["cases"].as_array().unwrap();
    assert!(cases.len() >= 8);
    for case in cases {
        let name = case["signal"].as_str().unwrap();
        let x = signal(name);
        let cfg = cqt_cfg(&case["config"]);
        let (bins, frames) = shape(&case["shape"]);
        let spec = compute(&x, &FeatureConfig::Cqt(cfg.clone())).unwrap();
        assert_eq!((spec.bins, spec.frames), (bins, frames), "{cfg:?}");
        let want_mag = f32s(&case["magnitude"]);
        let want_log: Vec<f32> = want_mag
            .iter()
            .map(|&m| (f64::from(m).powi(2) + 1e-6).ln() as f32)
            .collect();
        let log_err = max_abs_diff(&spec.data, &want_log);
        // Level of the worst log-domain cell below the clip's peak, in dB.
        let worst = (0..want_log.len())
            .max_by(|&i, &j| {
                (spec.data[i] - want_log[i])
                    .abs()
                    .total_cmp(&(spec.data[j] - want_log[j]).abs())
            })
            .unwrap_or(0);
        // |C| back from ln(|C|^2 + 1e-6); relative to the clip's largest magnitude.
        let got_mag: Vec<f32> = spec
            .data
            .iter()
            .map(|&v| ((f64::from(v).exp() - 1e-6).max(0.0)).sqrt() as f32)
            .collect();
        let peak = want_mag.iter().copied().fold(0.0, f32::max);
        let rel_err = max_abs_diff(&got_mag, &want_mag) / peak;
        let f32_run = case.get("librosa_dtype").and_then(Value::as_str) == Some("float32");
        let early = early_downsampling(&cfg);
        let (log_tol, rel_tol) = if early >= 8 {
            (CQT_EARLY_LOG_TOL, CQT_EARLY_REL_TOL)
        } else {
            (CQT_LOG_TOL, CQT_REL_TOL)
        };
        eprintln!(
            "cqt {name} {bins}x{frames} hop {} fmin {:.1} bpo {} early x{early} librosa f32 {f32_run}: \
             log err {log_err:.2e} ({:.0} dB below the peak), rel err {rel_err:.2e}",
            cfg.hop_length,
            cfg.f_min_hz,
            cfg.bins_per_octave,
            20.0 * (peak / want_mag[worst].max(1e-30)).log10()
        );
        assert!(log_err < log_tol, "{cfg:?}: log err {log_err}");
        assert!(rel_err < rel_tol, "{cfg:?}: rel err {rel_err}");
    }
}

#[test]
fn cqt_frequencies_match_librosa() {
    let g = golden("cqt.json");
    for f in g["frequencies"].as_array().unwrap() {
        let cfg = cqt_cfg(&f["config"]);
        let want: Vec<f64> = f["hz"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let got = cqt_frequencies(&cfg);
        assert_eq!(got.len(), want.len());
        for (a, b) in got.iter().zip(&want) {
            assert!((a / b - 1.0).abs() < 1e-13, "{a} vs {b}");
        }
        let centres = bin_centres_hz(&FeatureConfig::Cqt(cfg));
        for (a, b) in centres.iter().zip(&want) {
            assert!((f64::from(*a) / b - 1.0).abs() < 1e-6);
        }
    }
}

#[test]
fn chroma_matches_librosa() {
    let g = golden("chroma.json");
    let cases = g["cases"].as_array().unwrap();
    assert!(cases.len() >= 6);
    for case in cases {
        let name = case["signal"].as_str().unwrap();
        let x = signal(name);
        let cfg = chroma_cfg(&case["config"]);
        let (bins, frames) = shape(&case["shape"]);
        let spec = compute(&x, &FeatureConfig::Chroma(cfg.clone())).unwrap();
        assert_eq!((spec.bins, spec.frames), (bins, frames), "{cfg:?}");
        let err = max_abs_diff(&spec.data, &f32s(&case["expected"]));
        eprintln!(
            "chroma {:?} {name} {bins}x{frames}: max abs error {err:.2e}",
            cfg.source
        );
        assert!(err < CHROMA_TOL, "{cfg:?}: {err}");
        assert!(spec.data.iter().all(|v| (0.0..=1.0).contains(v)));
    }
}

#[test]
fn chroma_filterbank_matches_librosa() {
    let g = golden("chroma.json");
    for fb in g["filterbanks"].as_array().unwrap() {
        let cfg = chroma_cfg(&fb["config"]);
        let (rows, cols) = shape(&fb["shape"]);
        let got = chroma_filterbank(&cfg);
        assert_eq!(got.len(), rows * cols);
        let err = max_abs_diff(&got, &f32s(&fb["weights"]));
        eprintln!(
            "chroma filterbank n_fft {}: max abs error {err:.2e}",
            cfg.n_fft
        );
        assert!(err < CHROMA_FILTERBANK_TOL, "{cfg:?}: {err}");
    }
}

// ---------------------------------------------------------------------------------------
// Configuration, coordinates, API behaviour

fn expect_config_error(cfg: FeatureConfig, field: &str) {
    let e = cfg.validate().expect_err(field);
    assert!(matches!(e, AudioError::Config(_)), "{e}");
    assert!(e.to_string().contains(field), "{field}: {e}");
    let e = Featurizer::new(&cfg).expect_err(field);
    assert!(e.to_string().contains(field), "{field}: {e}");
}

#[test]
fn bad_configs_are_errors_that_name_the_field() {
    let cqt = |f: fn(&mut CqtConfig)| {
        let mut c = CqtConfig::default();
        f(&mut c);
        FeatureConfig::Cqt(c)
    };
    expect_config_error(cqt(|c| c.sample_rate_hz = 0), "cqt.sample_rate_hz");
    expect_config_error(cqt(|c| c.hop_length = 0), "cqt.hop_length");
    expect_config_error(cqt(|c| c.n_bins = 0), "cqt.n_bins");
    expect_config_error(cqt(|c| c.bins_per_octave = 0), "cqt.bins_per_octave");
    expect_config_error(cqt(|c| c.f_min_hz = -1.0), "cqt.f_min_hz");
    expect_config_error(cqt(|c| c.f_min_hz = f64::NAN), "cqt.f_min_hz");
    expect_config_error(cqt(|c| c.filter_scale = 0.0), "cqt.filter_scale");
    expect_config_error(cqt(|c| c.tuning = f64::INFINITY), "cqt.tuning");
    expect_config_error(cqt(|c| c.sparsity = 1.0), "cqt.sparsity");
    expect_config_error(cqt(|c| c.power = 0.0), "cqt.power");
    expect_config_error(cqt(|c| c.log_offset = 0.0), "cqt.log_offset");
    // 96 bins from C1 reach B8 (7.9 kHz) > Nyquist at 8 kHz sampling.
    expect_config_error(cqt(|c| c.sample_rate_hz = 8000), "Nyquist");
    expect_config_error(cqt(|c| c.n_bins = 100_000), "cqt.n_bins");

    let chroma = |f: fn(&mut ChromaConfig)| {
        let mut c = ChromaConfig::default();
        f(&mut c);
        FeatureConfig::Chroma(c)
    };
    expect_config_error(chroma(|c| c.sample_rate_hz = 0), "chroma.sample_rate_hz");
    expect_config_error(chroma(|c| c.hop_length = 0), "chroma.hop_length");
    expect_config_error(chroma(|c| c.n_chroma = 7), "chroma.n_chroma");
    expect_config_error(chroma(|c| c.tuning = f64::NAN), "chroma.tuning");
    expect_config_error(chroma(|c| c.n_fft = 1), "chroma.n_fft");
    expect_config_error(chroma(|c| c.win_length = 4096), "chroma.win_length");
    expect_config_error(
        chroma(|c| {
            c.source = ChromaSource::Cqt;
            c.bins_per_octave = 30;
        }),
        "chroma.bins_per_octave",
    );
    expect_config_error(
        chroma(|c| {
            c.source = ChromaSource::Cqt;
            c.n_octaves = 0;
        }),
        "chroma.n_octaves",
    );
    expect_config_error(
        chroma(|c| {
            c.source = ChromaSource::Cqt;
            c.sample_rate_hz = 8000;
        }),
        "Nyquist",
    );
    // The stft fields do not matter for the cqt source, and vice versa.
    let mut ok = ChromaConfig {
        source: ChromaSource::Cqt,
        n_fft: 0,
        ..ChromaConfig::default()
    };
    assert!(FeatureConfig::Chroma(ok.clone()).validate().is_ok());
    ok.source = ChromaSource::Stft;
    ok.n_fft = 2048;
    ok.n_octaves = 0;
    assert!(FeatureConfig::Chroma(ok).validate().is_ok());
}

#[test]
fn configs_round_trip_through_toml_with_kind_tags() {
    let partial: FeatureConfig =
        toml::from_str("kind = \"cqt\"\nn_bins = 72\nbins_per_octave = 24").unwrap();
    let FeatureConfig::Cqt(c) = &partial else {
        panic!("{partial:?}")
    };
    assert_eq!((c.n_bins, c.bins_per_octave, c.hop_length), (72, 24, 512));
    assert_eq!(c.f_min_hz, C1_HZ);
    let text = toml::to_string(&partial).unwrap();
    assert!(text.contains("kind = \"cqt\""), "{text}");
    assert_eq!(toml::from_str::<FeatureConfig>(&text).unwrap(), partial);

    let chroma: FeatureConfig = toml::from_str("kind = \"chroma\"\nsource = \"cqt\"").unwrap();
    let FeatureConfig::Chroma(c) = &chroma else {
        panic!("{chroma:?}")
    };
    assert_eq!(
        (c.source, c.n_chroma, c.bins_per_octave),
        (ChromaSource::Cqt, 12, 36)
    );
    let text = toml::to_string(&chroma).unwrap();
    assert!(text.contains("kind = \"chroma\"") && text.contains("source = \"cqt\""));
    assert_eq!(toml::from_str::<FeatureConfig>(&text).unwrap(), chroma);
    assert!(toml::from_str::<FeatureConfig>("kind = \"chroma\"\nsource = \"mfcc\"").is_err());
}

#[test]
fn bin_centres_are_cqt_frequencies_and_octave_four_pitch_classes() {
    let cqt = FeatureConfig::Cqt(CqtConfig::default());
    let hz = bin_centres_hz(&cqt);
    assert_eq!(hz.len(), 84);
    assert!((hz[0] - 32.703_197).abs() < 1e-4, "{}", hz[0]); // C1
    assert!((hz[45] - 440.0).abs() < 1e-3, "{}", hz[45]); // A4
    assert!((hz[83] - 3951.066).abs() < 1e-2, "{}", hz[83]); // B7
    assert!(hz.windows(2).all(|w| w[1] > w[0]));
    // Tuning shifts every bin by the same ratio.
    let tuned = bin_centres_hz(&FeatureConfig::Cqt(CqtConfig {
        tuning: 0.5,
        ..CqtConfig::default()
    }));
    let ratio = 2f32.powf(0.5 / 12.0);
    assert!(tuned
        .iter()
        .zip(&hz)
        .all(|(t, h)| (t / h - ratio).abs() < 1e-5));

    let chroma = ChromaConfig::default();
    let hz = bin_centres_hz(&FeatureConfig::Chroma(chroma.clone()));
    assert_eq!(hz.len(), 12);
    assert!((hz[0] - 261.625_57).abs() < 1e-3); // C4
    assert!((hz[9] - 440.0).abs() < 1e-3); // A4
    assert!((hz[11] - 493.883_3).abs() < 1e-3); // B4
    let tuned = chroma_frequencies(&ChromaConfig {
        tuning: -0.25,
        n_chroma: 24,
        ..chroma
    });
    assert_eq!(tuned.len(), 24);
    assert!((tuned[18] / 440.0 - 2f64.powf(-0.25 / 24.0)).abs() < 1e-12);
    // Frames are centred.
    assert_eq!(first_frame_s(&cqt), 0.0);
    assert_eq!(
        first_frame_s(&FeatureConfig::Chroma(ChromaConfig::default())),
        0.0
    );
    let uncentred = FeatureConfig::Chroma(ChromaConfig {
        center: false,
        ..ChromaConfig::default()
    });
    assert!((first_frame_s(&uncentred) - 1024.0 / 22050.0).abs() < 1e-12);
}

#[test]
fn music_features_tokenize_with_hz_coordinates() {
    let cfg = FeatureConfig::Cqt(CqtConfig::default());
    let x = signal("mix");
    let spec = compute(&x, &cfg).unwrap();
    let tok = SpectrogramTokenizer::new(
        &PatchConfig {
            patch: [12, 4],
            stride: [12, 4],
        },
        &cfg,
    )
    .unwrap();
    let t = tok.tokenize(&spec).unwrap();
    assert_eq!(t.n, 7 * (spec.frames / 4));
    // Row r's coordinate is the mean centre of its octave of bins.
    let hz = bin_centres_hz(&cfg);
    let row1 = hz[12..24].iter().sum::<f32>() / 12.0;
    let cols = spec.frames / 4;
    assert!((t.coords[2 * cols] - row1).abs() < 1e-3);
    assert!(tok.spec(22_050, 1.0).value_unit.contains("constant-Q"));
}

#[test]
fn featurizer_reuse_equals_one_off_and_frames_are_librosas() {
    let x = signal("tones");
    for cfg in [
        FeatureConfig::Cqt(CqtConfig::default()),
        FeatureConfig::Chroma(ChromaConfig::default()),
        FeatureConfig::Chroma(ChromaConfig {
            source: ChromaSource::Cqt,
            ..ChromaConfig::default()
        }),
    ] {
        let f = Featurizer::new(&cfg).unwrap();
        let a = f.compute(&x).unwrap();
        assert_eq!(a, f.compute(&x).unwrap());
        assert_eq!(a, compute(&x, &cfg).unwrap());
        assert_eq!(a.bins, cfg.n_bins());
        assert_eq!(a.frames, 1 + x.len() / 512);
        assert_eq!(a.frames, f.n_frames(x.len()).unwrap());
        assert!((a.hop_s - 512.0 / 22050.0).abs() < 1e-12);
        assert!(a.data.iter().all(|v| v.is_finite()));
    }
}

#[test]
fn short_and_silent_inputs() {
    for cfg in [
        FeatureConfig::Cqt(CqtConfig::default()),
        FeatureConfig::Chroma(ChromaConfig::default()),
        FeatureConfig::Chroma(ChromaConfig {
            source: ChromaSource::Cqt,
            ..ChromaConfig::default()
        }),
    ] {
        let f = Featurizer::new(&cfg).unwrap();
        assert!(matches!(f.compute(&[]), Err(AudioError::TooShort { .. })));
        for len in [1usize, 2, 100, 511, 512, 513] {
            let s = f.compute(&vec![0.25; len]).unwrap();
            assert_eq!(s.frames, 1 + len / 512, "{len}");
            assert!(s.data.iter().all(|v| v.is_finite()));
        }
        // Silence: chroma stays zero, the CQT sits at ln(log_offset).
        let s = f.compute(&vec![0.0; 4096]).unwrap();
        let floor = match &cfg {
            FeatureConfig::Cqt(c) => c.log_offset.ln(),
            _ => 0.0,
        };
        assert!(s.data.iter().all(|&v| (v - floor).abs() < 1e-3), "{cfg:?}");
    }
    // Early downsampling by 8 (top bin B3) needs 8 samples.
    let early = FeatureConfig::Cqt(CqtConfig {
        f_min_hz: 65.406,
        n_bins: 36,
        hop_length: 256,
        ..CqtConfig::default()
    });
    let f = Featurizer::new(&early).unwrap();
    assert!(matches!(
        f.compute(&[0.1; 7]),
        Err(AudioError::TooShort { needed: 8, .. })
    ));
    assert!(f.compute(&[0.1; 8]).is_ok());
    // Uncentred chroma needs one full frame.
    let c = FeatureConfig::Chroma(ChromaConfig {
        center: false,
        ..ChromaConfig::default()
    });
    let f = Featurizer::new(&c).unwrap();
    assert!(matches!(
        f.compute(&[0.1; 2047]),
        Err(AudioError::TooShort { .. })
    ));
    assert_eq!(f.compute(&vec![0.1; 2048 + 512]).unwrap().frames, 2);
}

// ---------------------------------------------------------------------------------------
// Properties

fn tone(hz: f64, seconds: f64) -> Vec<f32> {
    let n = (22_050.0 * seconds) as usize;
    (0..n)
        .map(|i| (0.5 * (2.0 * std::f64::consts::PI * hz * i as f64 / 22_050.0).sin()) as f32)
        .collect()
}

/// Bin with the largest mean over the middle frames.
fn loudest_bin(s: &tessera_audio::features::Spectrogram) -> usize {
    let (a, b) = (s.frames / 4, 3 * s.frames / 4);
    (0..s.bins)
        .max_by(|&i, &j| {
            let m = |k: usize| {
                s.data[k * s.frames + a..k * s.frames + b]
                    .iter()
                    .sum::<f32>()
            };
            m(i).total_cmp(&m(j))
        })
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// A pure tone at a bin's centre frequency peaks in that bin.
    #[test]
    fn cqt_tone_peaks_in_its_bin(bin in 0usize..60, bpo_index in 0usize..3, tuning in -0.4f64..0.4) {
        let bpo = [12usize, 24, 36][bpo_index];
        let cfg = CqtConfig {
            f_min_hz: 55.0,
            n_bins: 5 * bpo,
            bins_per_octave: bpo,
            tuning,
            ..CqtConfig::default()
        };
        let bin = bin * bpo / 12;
        let hz = cqt_frequencies(&cfg)[bin];
        let s = compute(&tone(hz, 1.0), &FeatureConfig::Cqt(cfg)).unwrap();
        prop_assert_eq!(loudest_bin(&s), bin);
    }

    /// Chroma of a harmonic tone peaks at its pitch class (both sources).
    #[test]
    fn chroma_of_a_tone_peaks_at_its_pitch_class(midi in 36i32..84, cqt in proptest::bool::ANY) {
        let hz = 440.0 * 2f64.powf(f64::from(midi - 69) / 12.0);
        let x: Vec<f32> = tone(hz, 1.0)
            .iter()
            .zip(tone(2.0 * hz, 1.0))
            .map(|(a, b)| a + 0.3 * b)
            .collect();
        let cfg = ChromaConfig {
            source: if cqt { ChromaSource::Cqt } else { ChromaSource::Stft },
            ..ChromaConfig::default()
        };
        let s = compute(&x, &FeatureConfig::Chroma(cfg)).unwrap();
        prop_assert_eq!(loudest_bin(&s), midi.rem_euclid(12) as usize);
    }
}
