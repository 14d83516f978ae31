//! Integration tests of the audio front end.
//!
//! Golden values come from torchaudio 2.11 via `scripts/golden_audio.py` (inputs are stored
//! in the JSON, so neither Python nor the data folder is needed). Tolerances, all max
//! absolute errors: resampling 1e-5; mel filterbank 2e-5 against torchaudio (which builds it
//! in float32) and 1e-6 against librosa (float64); log-mel and Kaldi fbank 1e-3 in the log
//! domain against torchaudio in float32 and 2e-5 against torchaudio in float64.
//!
//! The WAV reader gets property tests: random and mutated bytes never panic, hound-written
//! files of every supported depth and channel count read back exactly, truncated or
//! over-declared files and unsupported encodings are errors naming the file.

use std::collections::HashMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use serde_json::Value;

mod common;
use common::{f32s, golden, max_abs_diff};
use tessera_audio::error::AudioError;
use tessera_audio::features::{
    compute, mel_filterbank, FbankConfig, FeatureConfig, Featurizer, MelConfig,
};
use tessera_audio::resample::{resample, Resampler};
use tessera_audio::wav::{inspect_wav, read_wav, read_wav_bytes, Audio};

const RESAMPLE_TOL: f32 = 1e-5;
/// torchaudio builds its filters in float32, ~1.2e-5 off the exact weights; we build them
/// in float64 like librosa.
const FILTERBANK_TOL_TORCHAUDIO: f32 = 2e-5;
const FILTERBANK_TOL_LIBROSA: f32 = 1e-6;
/// Against torchaudio run in float32 (its usual mode): its own rounding reaches ~7e-4 in
/// bins ~80 dB below a frame's peak. We compute in float64.
const LOGMEL_TOL: f32 = 1e-3;
const FBANK_TOL: f32 = 1e-3;
/// Against the same torchaudio functions run in float64 (log domain; values stored as f32;
/// the f32 config fields, e.g. `preemphasis = 0.97f32`, account for the last ~1e-5).
const F64_TOL: f32 = 2e-5;

// ---------------------------------------------------------------------------------------
// Golden helpers

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("integer") as usize)
        .collect()
}

/// Name -> (sample rate, mono samples).
fn signals() -> HashMap<String, (u32, Vec<f32>)> {
    let g = golden("signals.json");
    let mut out = HashMap::new();
    for (name, s) in g["signals"].as_object().expect("signals") {
        let sr = s["sample_rate_hz"].as_u64().expect("rate") as u32;
        let x = if let Some(i16s) = s.get("samples_i16") {
            i16s.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_i64().unwrap() as f32 / 32768.0)
                .collect()
        } else {
            f32s(&s["samples"])
        };
        out.insert(name.clone(), (sr, x));
    }
    out
}

fn fsdd_wav() -> Option<PathBuf> {
    let dir = match std::env::var_os("TESSERA_FSDD_DIR") {
        Some(d) => PathBuf::from(d),
        None => tessera_tokens::resources::shared_data("audio/fsdd/recordings")?,
    };
    let p = dir.join("0_george_0.wav");
    p.exists().then_some(p)
}

// ---------------------------------------------------------------------------------------
// Golden tests

#[test]
fn resample_matches_torchaudio() {
    let sig = signals();
    let g = golden("resample.json");
    let mut worst = 0.0f32;
    for case in g["cases"].as_array().unwrap() {
        let (_, x) = &sig[case["signal"].as_str().unwrap()];
        let from = case["from_hz"].as_u64().unwrap() as u32;
        let to = case["to_hz"].as_u64().unwrap() as u32;
        let n = case["expected_len"].as_u64().unwrap() as usize;
        let y = resample(x, from, to);
        assert_eq!(y.len(), n, "{from} -> {to}: length");
        let step = case["index_step"].as_u64().unwrap() as usize;
        let edge = case["index_edge"].as_u64().unwrap() as usize;
        let mut idx: Vec<usize> = (0..edge.min(n))
            .chain((0..n).step_by(step))
            .chain(n.saturating_sub(edge)..n)
            .collect();
        idx.sort_unstable();
        idx.dedup();
        let got: Vec<f32> = idx.iter().map(|&i| y[i]).collect();
        let err = max_abs_diff(&got, &f32s(&case["expected"]));
        eprintln!(
            "resample {from} -> {to}: max abs error {err:.2e} over {} samples",
            got.len()
        );
        assert!(err < RESAMPLE_TOL, "{from} -> {to}: max abs error {err}");
        worst = worst.max(err);
    }
    eprintln!("resample: worst max abs error {worst:.2e}");
}

fn dense(sparse: &Value, shape: &[usize]) -> Vec<f32> {
    let mut out = vec![0.0f32; shape[0] * shape[1]];
    let vals = f32s(&sparse["values"]);
    for ((r, c), v) in usizes(&sparse["rows"])
        .into_iter()
        .zip(usizes(&sparse["cols"]))
        .zip(vals)
    {
        out[r * shape[1] + c] = v;
    }
    out
}

#[test]
fn mel_filterbank_matches_torchaudio_and_librosa() {
    let g = golden("mel_filterbanks.json");
    for fb in g["filterbanks"].as_array().unwrap() {
        let cfg: MelConfig = serde_json::from_value(fb["config"].clone()).unwrap();
        let shape = usizes(&fb["shape"]);
        let got = mel_filterbank(&cfg);
        assert_eq!(got.len(), shape[0] * shape[1]);
        let err = max_abs_diff(&got, &dense(&fb["torchaudio"], &shape));
        eprintln!("mel filterbank vs torchaudio {cfg:?}: max abs error {err:.2e}");
        assert!(err < FILTERBANK_TOL_TORCHAUDIO, "{cfg:?}: {err}");
        if let Some(lb) = fb.get("librosa") {
            let err = max_abs_diff(&got, &dense(lb, &shape));
            eprintln!("mel filterbank vs librosa: max abs error {err:.2e}");
            assert!(err < FILTERBANK_TOL_LIBROSA, "{cfg:?}: {err}");
        }
    }
}

fn check_feature_cases(file: &str, tol: f32, make: impl Fn(&Value) -> FeatureConfig) {
    let sig = signals();
    let g = golden(file);
    let cases = g["cases"].as_array().unwrap();
    assert!(!cases.is_empty());
    for case in cases {
        let (sr, x) = &sig[case["signal"].as_str().unwrap()];
        let cfg = make(&case["config"]);
        assert_eq!(cfg.sample_rate_hz(), *sr);
        let spec = compute(x, &cfg).unwrap();
        let shape = usizes(&case["shape"]);
        assert_eq!((spec.bins, spec.frames), (shape[0], shape[1]), "{cfg:?}");
        let err = max_abs_diff(&spec.data, &f32s(&case["expected"]));
        eprintln!(
            "{file} {}: max abs error {err:.2e} ({}x{})",
            case["signal"], shape[0], shape[1]
        );
        assert!(err < tol, "{cfg:?}: max abs error {err}");
    }
}

fn log_mel(c: &Value) -> FeatureConfig {
    FeatureConfig::LogMel(serde_json::from_value(c.clone()).unwrap())
}

fn fbank(c: &Value) -> FeatureConfig {
    FeatureConfig::Fbank(serde_json::from_value(c.clone()).unwrap())
}

#[test]
fn log_mel_matches_torchaudio() {
    check_feature_cases("logmel.json", LOGMEL_TOL, log_mel);
    check_feature_cases("logmel_f64.json", F64_TOL, log_mel);
}

#[test]
fn kaldi_fbank_matches_torchaudio() {
    check_feature_cases("fbank.json", FBANK_TOL, fbank);
    check_feature_cases("fbank_f64.json", F64_TOL, fbank);
}

#[test]
fn fsdd_file_reads_as_stored_when_present() {
    let Some(path) = fsdd_wav() else {
        eprintln!("FSDD not found: skipped");
        return;
    };
    let audio = read_wav(&path).unwrap();
    let (sr, x) = &signals()["fsdd"];
    assert_eq!((audio.channels, audio.sample_rate_hz), (1, *sr));
    assert_eq!(&audio.samples, x);
    let info = inspect_wav(&path).unwrap();
    assert_eq!(info.format, "PCM int16");
    assert_eq!(
        (info.channels, info.sample_rate_hz, info.bits_per_sample),
        (1, 8000, 16)
    );
    assert_eq!(info.frames as usize, x.len());
    assert!((info.duration_s - audio.duration_s()).abs() < 1e-12);
}

// ---------------------------------------------------------------------------------------
// Features: API behaviour

#[test]
fn featurizer_reuse_equals_one_off_compute() {
    let (_, x) = &signals()["chirp_noise"];
    for cfg in [
        FeatureConfig::LogMel(MelConfig::default()),
        FeatureConfig::Fbank(FbankConfig::default()),
    ] {
        let f = Featurizer::new(&cfg).unwrap();
        let a = f.compute(x).unwrap();
        let b = f.compute(x).unwrap();
        assert_eq!(a, b);
        assert_eq!(a, compute(x, &cfg).unwrap());
        assert_eq!(a.bins, cfg.n_bins());
        assert!((a.hop_s - 0.01).abs() < 1e-12);
        assert_eq!(a.frames, f.n_frames(x.len()).unwrap());
    }
    let json = serde_json::to_string(&FeatureConfig::LogMel(MelConfig::default())).unwrap();
    assert!(
        json.contains("\"kind\":\"log_mel\"") && json.contains("\"mel_scale\":\"htk\""),
        "{json}"
    );
}

#[test]
fn resampler_reuse_and_rate_errors() {
    let (_, x) = &signals()["chirp_noise"];
    let r = Resampler::new(16_000, 22_050).unwrap();
    assert_eq!(r.process(x), resample(x, 16_000, 22_050));
    assert_eq!(r.output_len(x.len()), r.process(x).len());
    assert!(matches!(
        Resampler::new(0, 16_000),
        Err(tessera_signal::SignalError::Config(_))
    ));
}

// ---------------------------------------------------------------------------------------
// WAV: hand-built files

fn riff(chunks: &[(&[u8; 4], Vec<u8>)], pad_odd: bool) -> Vec<u8> {
    let mut body = b"WAVE".to_vec();
    for (id, data) in chunks {
        body.extend_from_slice(*id);
        body.extend_from_slice(&(data.len() as u32).to_le_bytes());
        body.extend_from_slice(data);
        if pad_odd && data.len() % 2 == 1 {
            body.push(0);
        }
    }
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend(body);
    out
}

fn fmt_chunk(tag: u16, channels: u16, sr: u32, bits: u16) -> Vec<u8> {
    let block = channels * bits.div_ceil(8);
    let mut f = Vec::new();
    f.extend_from_slice(&tag.to_le_bytes());
    f.extend_from_slice(&channels.to_le_bytes());
    f.extend_from_slice(&sr.to_le_bytes());
    f.extend_from_slice(&(sr * u32::from(block)).to_le_bytes());
    f.extend_from_slice(&block.to_le_bytes());
    f.extend_from_slice(&bits.to_le_bytes());
    f
}

fn fmt_extensible(
    channels: u16,
    sr: u32,
    container_bits: u16,
    valid_bits: u16,
    sub: u16,
) -> Vec<u8> {
    let mut f = fmt_chunk(0xFFFE, channels, sr, container_bits);
    f.extend_from_slice(&22u16.to_le_bytes());
    f.extend_from_slice(&valid_bits.to_le_bytes());
    f.extend_from_slice(&0u32.to_le_bytes());
    f.extend_from_slice(&sub.to_le_bytes());
    f.extend_from_slice(&[
        0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71,
    ]);
    f
}

fn p() -> &'static Path {
    Path::new("some/dir/clip.wav")
}

fn assert_names_path(e: &AudioError) {
    assert!(
        e.to_string().contains("some/dir/clip.wav"),
        "error does not name the file: {e}"
    );
}

#[test]
fn unsupported_encodings_name_the_format_tag() {
    for (tag, name) in [
        (6u16, "A-law"),
        (7, "mu-law"),
        (2, "ADPCM"),
        (0x11, "IMA ADPCM"),
        (0x55, "MPEG"),
    ] {
        let bytes = riff(
            &[
                (b"fmt ", fmt_chunk(tag, 1, 8000, 8)),
                (b"data", vec![0xD5; 100]),
            ],
            true,
        );
        let e = read_wav_bytes(&bytes, p()).unwrap_err();
        assert!(matches!(e, AudioError::Unsupported { .. }), "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("format tag {tag}")) && msg.contains(name),
            "{msg}"
        );
        assert_names_path(&e);
    }
    let bytes = riff(
        &[
            (b"fmt ", fmt_extensible(2, 8000, 8, 8, 6)),
            (b"data", vec![0; 100]),
        ],
        true,
    );
    let e = read_wav_bytes(&bytes, p()).unwrap_err();
    assert!(
        e.to_string().contains("subformat 6") && e.to_string().contains("A-law"),
        "{e}"
    );
    // 12-bit float and 48-bit PCM
    let e = read_wav_bytes(
        &riff(
            &[(b"fmt ", fmt_chunk(3, 1, 8000, 16)), (b"data", vec![0; 4])],
            true,
        ),
        p(),
    );
    assert!(matches!(e, Err(AudioError::Unsupported { .. })), "{e:?}");
    let e = read_wav_bytes(
        &riff(
            &[(b"fmt ", fmt_chunk(1, 1, 8000, 48)), (b"data", vec![0; 12])],
            true,
        ),
        p(),
    );
    assert!(matches!(e, Err(AudioError::Unsupported { .. })), "{e:?}");
}

#[test]
fn non_wav_and_empty_files_are_errors() {
    for bytes in [
        &b""[..],
        b"ID3\x03\x00\x00\x00\x00\x00\x00 mp3",
        b"hello world, not audio",
        b"RIFF\x10\x00\x00\x00AVI LIST",
    ] {
        let e = read_wav_bytes(bytes, p()).unwrap_err();
        assert!(matches!(e, AudioError::NotWav { .. }), "{e}");
        assert_names_path(&e);
    }
    let empty = riff(
        &[(b"fmt ", fmt_chunk(1, 2, 16000, 16)), (b"data", vec![])],
        true,
    );
    let e = read_wav_bytes(&empty, p()).unwrap_err();
    assert!(matches!(e, AudioError::Empty { .. }), "{e}");
    assert_names_path(&e);
    let no_data = riff(&[(b"fmt ", fmt_chunk(1, 2, 16000, 16))], true);
    assert!(matches!(
        read_wav_bytes(&no_data, p()),
        Err(AudioError::Corrupt { .. })
    ));
    let no_fmt = riff(&[(b"data", vec![0; 8])], true);
    assert!(matches!(
        read_wav_bytes(&no_fmt, p()),
        Err(AudioError::Corrupt { .. })
    ));
    let zero_channels = riff(
        &[(b"fmt ", fmt_chunk(1, 0, 16000, 16)), (b"data", vec![0; 8])],
        true,
    );
    assert!(matches!(
        read_wav_bytes(&zero_channels, p()),
        Err(AudioError::Corrupt { .. })
    ));
    let partial_frame = riff(
        &[(b"fmt ", fmt_chunk(1, 2, 16000, 16)), (b"data", vec![0; 6])],
        true,
    );
    let e = read_wav_bytes(&partial_frame, p()).unwrap_err();
    assert!(
        matches!(e, AudioError::Corrupt { .. }) && e.to_string().contains("incomplete"),
        "{e}"
    );
}

#[test]
fn oversized_headers_are_corrupt_without_allocating() {
    let good = riff(
        &[
            (b"fmt ", fmt_chunk(1, 1, 16000, 16)),
            (b"data", vec![1, 0, 2, 0]),
        ],
        true,
    );
    assert_eq!(read_wav_bytes(&good, p()).unwrap().samples.len(), 2);
    // data chunk claims up to 4 GiB: an allocation of that size would abort the test.
    for claimed in [6u32, 1_000, 0x7FFF_FFFF, u32::MAX] {
        let mut bad = good.clone();
        bad[40..44].copy_from_slice(&claimed.to_le_bytes());
        let e = read_wav_bytes(&bad, p()).unwrap_err();
        assert!(matches!(e, AudioError::Corrupt { .. }), "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains("truncated") && msg.contains(&claimed.to_string()),
            "{msg}"
        );
        assert_names_path(&e);
    }
    // fmt chunk and an unknown chunk claiming more than the file.
    let mut bad = good.clone();
    bad[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        read_wav_bytes(&bad, p()),
        Err(AudioError::Corrupt { .. })
    ));
    let mut list = riff(
        &[
            (b"LIST", vec![0; 4]),
            (b"fmt ", fmt_chunk(1, 1, 16000, 16)),
            (b"data", vec![0; 2]),
        ],
        true,
    );
    list[16..20].copy_from_slice(&0xFFFF_FF00u32.to_le_bytes());
    assert!(matches!(
        read_wav_bytes(&list, p()),
        Err(AudioError::Corrupt { .. })
    ));
}

#[test]
fn chunk_layout_variants_are_read() {
    let data: Vec<u8> = [-3i16, 7, 32767, -32768]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let expected = vec![-3.0 / 32768.0, 7.0 / 32768.0, 32767.0 / 32768.0, -1.0];
    // LIST (odd size, padded) before fmt, JUNK between fmt and data, a chunk after data.
    let bytes = riff(
        &[
            (b"LIST", b"INFOx".to_vec()),
            (b"fmt ", fmt_chunk(1, 2, 44_100, 16)),
            (b"JUNK", vec![0; 10]),
            (b"data", data.clone()),
            (b"id3 ", vec![1, 2, 3]),
        ],
        true,
    );
    let a = read_wav_bytes(&bytes, p()).unwrap();
    assert_eq!((a.channels, a.sample_rate_hz, a.frames()), (2, 44_100, 2));
    assert_eq!(a.samples, expected);
    // The same with the pad byte after the odd LIST chunk missing.
    let unpadded = riff(
        &[
            (b"LIST", b"INFOx".to_vec()),
            (b"fmt ", fmt_chunk(1, 2, 44_100, 16)),
            (b"data", data.clone()),
        ],
        false,
    );
    assert_eq!(read_wav_bytes(&unpadded, p()).unwrap().samples, expected);
    // data before fmt.
    let swapped = riff(
        &[(b"data", data), (b"fmt ", fmt_chunk(1, 2, 44_100, 16))],
        true,
    );
    assert_eq!(read_wav_bytes(&swapped, p()).unwrap().samples, expected);
    // 8-bit with an odd-sized data chunk followed by another chunk.
    let odd = riff(
        &[
            (b"fmt ", fmt_chunk(1, 1, 8000, 8)),
            (b"data", vec![0, 128, 255]),
            (b"LIST", vec![0; 4]),
        ],
        true,
    );
    assert_eq!(
        read_wav_bytes(&odd, p()).unwrap().samples,
        vec![-1.0, 0.0, 127.0 / 128.0]
    );
}

#[test]
fn float64_and_extensible_24_in_32_are_read() {
    let vals = [0.25f64, -0.5, 1.0 / 3.0];
    let data: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
    let bytes = riff(
        &[(b"fmt ", fmt_chunk(3, 1, 48_000, 64)), (b"data", data)],
        true,
    );
    let a = read_wav_bytes(&bytes, p()).unwrap();
    assert_eq!(
        a.samples,
        vals.iter().map(|&v| v as f32).collect::<Vec<_>>()
    );

    let q = [8_388_607i32, -8_388_608, 12_345];
    let data: Vec<u8> = q.iter().flat_map(|v| (v << 8).to_le_bytes()).collect();
    let bytes = riff(
        &[
            (b"fmt ", fmt_extensible(3, 96_000, 32, 24, 1)),
            (b"data", data),
        ],
        true,
    );
    let a = read_wav_bytes(&bytes, p()).unwrap();
    assert_eq!(
        a.samples,
        q.iter()
            .map(|&v| v as f32 / 8_388_608.0)
            .collect::<Vec<_>>()
    );
    assert_eq!(a.channels, 3);

    let dir = temp_dir("ext24");
    let path = dir.join("ext.wav");
    std::fs::write(&path, &bytes).unwrap();
    let info = inspect_wav(&path).unwrap();
    assert_eq!(
        info.format,
        "WAVE_FORMAT_EXTENSIBLE PCM int32 (24 valid bits)"
    );
    assert_eq!((info.bits_per_sample, info.frames), (32, 1));
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn audio_channel_helpers() {
    let a = Audio {
        samples: vec![1.0, 3.0, -1.0, 1.0, 0.5, 0.5],
        channels: 2,
        sample_rate_hz: 2,
    };
    assert_eq!(a.frames(), 3);
    assert_eq!(a.duration_s(), 1.5);
    assert_eq!(a.to_mono(), vec![2.0, 0.0, 0.5]);
    assert_eq!(a.channel(1), vec![3.0, 1.0, 0.5]);
}

#[test]
fn file_errors_name_the_path() {
    let missing = Path::new("/nonexistent/dir/clip.wav");
    for e in [
        read_wav(missing).unwrap_err(),
        inspect_wav(missing).unwrap_err(),
    ] {
        assert!(
            matches!(e, AudioError::Io { .. })
                && e.to_string().contains("/nonexistent/dir/clip.wav"),
            "{e}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// WAV: property tests

#[derive(Debug, Clone, Copy)]
enum Depth {
    U8,
    I16,
    I24,
    I32,
    F32,
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tessera-audio-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Write `x` with hound; return the bytes and the values a reader must return.
fn hound_wav(depth: Depth, channels: u16, sr: u32, x: &[f32]) -> (Vec<u8>, Vec<f32>) {
    let (bits, format) = match depth {
        Depth::U8 => (8, hound::SampleFormat::Int),
        Depth::I16 => (16, hound::SampleFormat::Int),
        Depth::I24 => (24, hound::SampleFormat::Int),
        Depth::I32 => (32, hound::SampleFormat::Int),
        Depth::F32 => (32, hound::SampleFormat::Float),
    };
    let spec = hound::WavSpec {
        channels,
        sample_rate: sr,
        bits_per_sample: bits,
        sample_format: format,
    };
    let mut cursor = Cursor::new(Vec::new());
    let mut expected = Vec::with_capacity(x.len());
    {
        let mut w = hound::WavWriter::new(&mut cursor, spec).unwrap();
        for &v in x {
            if let Depth::F32 = depth {
                w.write_sample(v).unwrap();
                expected.push(v);
                continue;
            }
            let full = 2f64.powi(i32::from(bits) - 1);
            let q = (f64::from(v) * full).round().clamp(-full, full - 1.0) as i64;
            match depth {
                Depth::U8 => w.write_sample(q as i8).unwrap(),
                Depth::I16 => w.write_sample(q as i16).unwrap(),
                _ => w.write_sample(q as i32).unwrap(),
            }
            expected.push((q as f64 / full) as f32);
        }
        w.finalize().unwrap();
    }
    (cursor.into_inner(), expected)
}

fn depth_strategy() -> impl Strategy<Value = Depth> {
    prop_oneof![
        Just(Depth::U8),
        Just(Depth::I16),
        Just(Depth::I24),
        Just(Depth::I32),
        Just(Depth::F32)
    ]
}

fn wav_strategy() -> impl Strategy<Value = (Depth, u16, u32, Vec<f32>)> {
    (depth_strategy(), 1u16..=24, 1u32..200_000, 1usize..64).prop_flat_map(|(d, ch, sr, frames)| {
        let n = usize::from(ch) * frames;
        (
            Just(d),
            Just(ch),
            Just(sr),
            proptest::collection::vec(-1.0f32..=1.0, n),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = read_wav_bytes(&bytes, p());
    }

    #[test]
    fn random_chunks_after_a_riff_header_never_panic(
        tail in proptest::collection::vec(any::<u8>(), 0..400),
        size in any::<u32>(),
    ) {
        let mut bytes = b"RIFF".to_vec();
        bytes.extend_from_slice(&size.to_le_bytes());
        bytes.extend_from_slice(b"WAVEfmt ");
        bytes.extend(tail);
        if let Ok(a) = read_wav_bytes(&bytes, p()) {
            prop_assert!(a.channels > 0 && a.samples.len() % a.channels == 0);
        }
    }

    #[test]
    fn mutated_wavs_never_panic(
        (depth, ch, sr, x) in wav_strategy(),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
    ) {
        let (mut bytes, _) = hound_wav(depth, ch, sr, &x);
        for (i, b) in edits {
            let n = bytes.len();
            bytes[i % n] = b;
        }
        if let Ok(a) = read_wav_bytes(&bytes, p()) {
            prop_assert!(a.channels > 0 && a.samples.len() % a.channels == 0);
            prop_assert!(a.samples.len() <= bytes.len());
        }
    }

    #[test]
    fn hound_files_read_back_exactly((depth, ch, sr, x) in wav_strategy()) {
        let (bytes, expected) = hound_wav(depth, ch, sr, &x);
        let a = read_wav_bytes(&bytes, p()).unwrap();
        prop_assert_eq!(a.channels, usize::from(ch));
        prop_assert_eq!(a.sample_rate_hz, sr);
        prop_assert_eq!(&a.samples, &expected);
        // within quantisation of the original signal
        let step = match depth {
            Depth::U8 => 1.0 / 128.0,
            Depth::I16 => 1.0 / 32768.0,
            Depth::I24 => 1.0 / 8_388_608.0,
            Depth::I32 | Depth::F32 => 1e-7,
        };
        prop_assert!(max_abs_diff(&a.samples, &x) <= step);
    }

    #[test]
    fn truncated_files_are_errors(
        (depth, ch, sr, x) in wav_strategy(),
        cut in any::<prop::sample::Index>(),
    ) {
        let (bytes, _) = hound_wav(depth, ch, sr, &x);
        let len = cut.index(bytes.len());
        let e = read_wav_bytes(&bytes[..len], p()).unwrap_err();
        if len < 4 {
            prop_assert!(matches!(e, AudioError::NotWav { .. }), "{}", e);
        } else {
            prop_assert!(matches!(e, AudioError::Corrupt { .. }), "{}", e);
        }
    }
}

#[test]
fn files_on_disk_read_and_inspect_consistently() {
    let dir = temp_dir("disk");
    let x: Vec<f32> = (0..3 * 5000)
        .map(|i| ((i as f32) * 0.01).sin() * 0.9)
        .collect();
    for (k, (depth, ch)) in [
        (Depth::U8, 1u16),
        (Depth::I16, 2),
        (Depth::I24, 3),
        (Depth::I32, 1),
        (Depth::F32, 5),
    ]
    .into_iter()
    .enumerate()
    {
        let frames = x.len() / usize::from(ch);
        let x = &x[..frames * usize::from(ch)];
        let (bytes, expected) = hound_wav(depth, ch, 22_050, x);
        let path = dir.join(format!("{k}.wav"));
        std::fs::write(&path, &bytes).unwrap();
        let a = read_wav(&path).unwrap();
        assert_eq!(a.samples, expected);
        let info = inspect_wav(&path).unwrap();
        let base = match depth {
            Depth::U8 => "PCM uint8",
            Depth::I16 => "PCM int16",
            Depth::I24 => "PCM int24",
            Depth::I32 => "PCM int32",
            Depth::F32 => "IEEE float32",
        };
        let extensible = ch > 2 || matches!(depth, Depth::I24 | Depth::I32 | Depth::F32);
        let format = if extensible {
            format!("WAVE_FORMAT_EXTENSIBLE {base}")
        } else {
            base.to_string()
        };
        assert_eq!(info.format, format);
        assert_eq!(
            (info.channels, info.sample_rate_hz, info.frames),
            (usize::from(ch), 22_050, frames as u64)
        );
        assert!((info.duration_s - a.duration_s()).abs() < 1e-12);

        // Truncated on disk: both read_wav and inspect_wav fail, naming the file.
        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        for e in [
            read_wav(&path).unwrap_err(),
            inspect_wav(&path).unwrap_err(),
        ] {
            assert!(matches!(e, AudioError::Corrupt { .. }), "{e}");
            assert!(e.to_string().contains(&path.display().to_string()), "{e}");
        }
    }
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn inspect_checks_the_data_chunk_against_the_file() {
    let dir = temp_dir("inspect-sizes");
    let data: Vec<u8> = (0..400i16).flat_map(|v| (v * 37).to_le_bytes()).collect();
    let good = riff(
        &[
            (b"fmt ", fmt_chunk(1, 2, 16_000, 16)),
            (b"data", data.clone()),
        ],
        true,
    );
    // fmt chunk 8 + 16 bytes after the 12-byte RIFF header; data header 8 more.
    let size_at = 12 + 8 + 16 + 4;
    let path = dir.join("good.wav");
    std::fs::write(&path, &good).unwrap();
    let info = inspect_wav(&path).unwrap();
    assert_eq!(
        (
            info.data_offset,
            info.data_bytes,
            info.file_bytes,
            info.frames
        ),
        (44, 800, good.len() as u64, 200)
    );
    assert_eq!(read_wav(&path).unwrap().samples.len(), 400);
    // Trailing bytes after the data chunk are not an error (for either function).
    let mut trailing = good.clone();
    trailing.extend([0u8; 5]);
    std::fs::write(&path, &trailing).unwrap();
    assert_eq!(inspect_wav(&path).unwrap().data_bytes, 800);
    assert_eq!(read_wav(&path).unwrap().samples.len(), 400);

    let both_fail = |name: &str, bytes: &[u8]| -> Vec<AudioError> {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let errs = vec![
            read_wav(&path).unwrap_err(),
            inspect_wav(&path).unwrap_err(),
        ];
        for e in &errs {
            assert!(
                e.to_string().contains(&path.display().to_string()),
                "does not name {name}: {e}"
            );
        }
        errs
    };
    // Cut inside the samples: the data chunk no longer fits.
    for e in both_fail("cut.wav", &good[..good.len() / 2]) {
        assert!(matches!(e, AudioError::Corrupt { .. }), "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains(
                "truncated: the data chunk at byte 36 declares 800 bytes but only 378 remain"
            ),
            "{msg}"
        );
    }
    // A header claiming far more than the file: an error, not a 4 GiB allocation.
    for claimed in [801u32, 0x7FFF_FFFF, 0xFFFF_FFF0] {
        let mut bad = good.clone();
        bad[size_at..size_at + 4].copy_from_slice(&claimed.to_le_bytes());
        for e in both_fail("huge.wav", &bad) {
            assert!(matches!(e, AudioError::Corrupt { .. }), "{e}");
            assert!(
                e.to_string().contains(&format!("declares {claimed} bytes")),
                "{e}"
            );
        }
    }
    // 0xFFFFFFFF: a streaming writer's placeholder; read_wav does not read such files, so
    // inspect_wav does not accept them either, and says why.
    let mut streamed = good.clone();
    streamed[size_at..size_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    for e in both_fail("streamed.wav", &streamed) {
        assert!(matches!(e, AudioError::Corrupt { .. }), "{e}");
        assert!(
            e.to_string().contains("placeholder a streaming writer"),
            "{e}"
        );
    }
    // Size 0 (the other placeholder): no samples.
    let mut zero = good.clone();
    zero[size_at..size_at + 4].copy_from_slice(&0u32.to_le_bytes());
    for e in both_fail("zero.wav", &zero) {
        assert!(matches!(e, AudioError::Empty { .. }), "{e}");
    }
    // A data chunk that fits but ends inside a frame.
    let mut odd = good.clone();
    odd[size_at..size_at + 4].copy_from_slice(&798u32.to_le_bytes());
    for e in both_fail("odd.wav", &odd) {
        assert!(e.to_string().contains("incomplete"), "{e}");
    }
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn io_errors_keep_their_source() {
    use std::error::Error as _;
    let e = read_wav(Path::new("/nonexistent/dir/clip.wav")).unwrap_err();
    let source = e.source().expect("the io error is the source");
    let io = source.downcast_ref::<std::io::Error>().unwrap();
    assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
    // Writing into a folder that cannot be created (a file stands in its path): the error
    // names it and keeps the cause.
    let dir = temp_dir("io-source");
    std::fs::write(dir.join("file"), b"x").unwrap();
    let target = dir.join("file").join("data");
    let e = tessera_audio::synth::write_dataset(&target, 1, 1, 8000, 1).unwrap_err();
    assert!(matches!(e, AudioError::Io { .. }), "{e}");
    assert!(e.to_string().contains(&target.display().to_string()), "{e}");
    assert!(e.source().is_some());
    std::fs::remove_dir_all(dir).ok();
}
