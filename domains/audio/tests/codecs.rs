//! Compressed audio against its writers' reference decoders, on the fixtures written by
//! `scripts/golden_codecs.py`: lossless files (FLAC 16/24-bit, AIFF, CAF, ALAC) decode to
//! exactly the samples they were written from; lossy ones (Vorbis, MP3 from LAME via
//! libsndfile and FFmpeg, AAC) match libsndfile's or FFmpeg's decode to the codec's
//! precision; Opus (Ogg mono, stereo and 5.1 multistream, WebM) decoded by libopus matches
//! FFmpeg's own Opus decoder. Opus needs libopus at run time: its files are skipped where
//! the library is missing, unless `TESSERA_REQUIRE_OPUS=1` (set by `scripts/test.sh`).

use std::path::{Path, PathBuf};

use serde_json::Value;
use tessera_audio::codec::{
    audio_duration_s, inspect_audio, is_wav, read_audio, read_audio_span, Span,
};
use tessera_audio::{opus, AudioError};

/// Whether this machine can decode Opus; a missing libopus fails under
/// `TESSERA_REQUIRE_OPUS=1`.
fn opus_here() -> bool {
    if opus::available() {
        return true;
    }
    assert!(
        std::env::var("TESSERA_REQUIRE_OPUS").as_deref() != Ok("1"),
        "TESSERA_REQUIRE_OPUS=1 but libopus cannot be loaded"
    );
    eprintln!("skipping Opus: libopus is not installed");
    false
}

fn is_opus(name: &str) -> bool {
    name.contains("opus")
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/codecs")
}

fn reference(name: &str) -> Vec<f32> {
    std::fs::read(dir().join(format!("{name}.f32")))
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Best alignment of `got` against `want` within ±`max_lag` frames: (lag, SNR in dB over
/// the overlap).
fn snr_db(got: &[f32], want: &[f32], channels: usize, max_lag: isize) -> (isize, f64) {
    let frames = (got.len() / channels) as isize;
    let wf = (want.len() / channels) as isize;
    let mut best = (0, f64::NEG_INFINITY);
    for lag in -max_lag..=max_lag {
        let (mut sig, mut err) = (0f64, 0f64);
        for f in 0..wf {
            let g = f + lag;
            if g < 0 || g >= frames {
                continue;
            }
            for c in 0..channels {
                let w = f64::from(want[f as usize * channels + c]);
                let x = f64::from(got[g as usize * channels + c]);
                sig += w * w;
                err += (w - x) * (w - x);
            }
        }
        let snr = 10.0 * (sig / err.max(1e-30)).log10();
        if snr > best.1 {
            best = (lag, snr);
        }
    }
    best
}

#[test]
fn every_fixture_matches_its_reference_decoder() {
    let text = std::fs::read_to_string(dir().join("expected.json")).unwrap();
    let g: Value = serde_json::from_str(&text).unwrap();
    let files = g["files"].as_object().unwrap();
    assert!(files.len() >= 13);
    let opus = opus_here();
    for (name, e) in files {
        if is_opus(name) && !opus {
            continue;
        }
        let path = dir().join(name);
        assert!(!is_wav(&path).unwrap(), "{name}");
        let a = read_audio(&path).unwrap_or_else(|err| panic!("{name}: {err}"));
        let rate = e["rate"].as_u64().unwrap() as u32;
        let channels = e["channels"].as_u64().unwrap() as usize;
        assert_eq!((a.sample_rate_hz, a.channels), (rate, channels), "{name}");
        let want = reference(name);
        if e["exact"].as_bool().unwrap() {
            assert_eq!(a.samples.len(), want.len(), "{name}: length");
            assert!(
                a.samples == want,
                "{name}: lossless decode differs from the source"
            );
        } else {
            let (lag, snr) = snr_db(&a.samples, &want, channels, 2048);
            let frames = a.frames() as i64;
            let want_frames = e["frames"].as_i64().unwrap();
            eprintln!(
                "{name}: {frames} frames (reference {want_frames}), lag {lag}, SNR {snr:.1} dB"
            );
            // Float decoders differ in rounding only (measured 119-135 dB; Opus 87 dB, the
            // int16 rounding of its libopus reference); a wrong delay, channel order or
            // scaling would fall far below.
            let min = if is_opus(name) { OPUS_SNR } else { 80.0 };
            assert!(
                snr > min,
                "{name}: SNR {snr:.1} dB against the reference decoder"
            );
            assert_eq!(lag, 0, "{name}: shifted against the reference decoder");
            if name.ends_with(".webm") {
                // Matroska's DiscardPadding is not read: the last frame's padding stays.
                let extra = frames - want_frames;
                assert!((0..=960).contains(&extra), "{name}: {extra} frames over");
            } else {
                assert_eq!(frames, want_frames, "{name}: decoded length");
            }
        }
        let info = inspect_audio(&path).unwrap();
        assert_eq!(info.frames as usize, a.frames(), "{name}");
        assert_eq!(info.sample_rate_hz, rate, "{name}");
    }
}

/// Lowest SNR (dB) accepted against libopus's int16 output (its rounding alone allows
/// ~87 dB on these signals).
const OPUS_SNR: f64 = 80.0;

#[test]
fn non_audio_files_are_refused_by_name() {
    if !opus::available() {
        let e = read_audio(&dir().join("mono.opus")).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("mono.opus") && msg.contains("libopus"),
            "{msg}"
        );
        assert!(matches!(e, AudioError::Unsupported { .. }), "{e:?}");
    }
    let e = read_audio(&dir().join("expected.json"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("expected.json") && e.contains("not an audio container"),
        "{e}"
    );
}

#[test]
fn truncated_and_corrupt_streams_never_panic() {
    let tmp = std::env::temp_dir().join(format!("tessera-codecs-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    for name in [
        "mono16.flac",
        "stereo24.flac",
        "mono_vorbis.ogg",
        "stereo_sndfile.mp3",
        "stereo_aac.m4a",
        "stereo16_alac.m4a",
        "stereo16.aiff",
        "surround51.opus",
        "stereo_opus.webm",
    ] {
        if is_opus(name) && !opus_here() {
            continue;
        }
        let bytes = std::fs::read(dir().join(name)).unwrap();
        for cut in [bytes.len() / 3, bytes.len() * 2 / 3, bytes.len() - 7] {
            let p = tmp.join(name);
            std::fs::write(&p, &bytes[..cut]).unwrap();
            match read_audio(&p) {
                Ok(a) => assert!(a.samples.iter().all(|x| x.is_finite()), "{name}@{cut}"),
                Err(e) => assert!(e.to_string().contains(name), "{name}@{cut}: {e}"),
            }
        }
        let mut rng = 0x9e3779b97f4a7c15u64;
        for _ in 0..8 {
            let mut b = bytes.clone();
            for _ in 0..6 {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let i = (rng % b.len() as u64) as usize;
                b[i] = (rng >> 32) as u8;
            }
            let p = tmp.join(name);
            std::fs::write(&p, &b).unwrap();
            if let Err(e) = read_audio(&p) {
                assert!(e.to_string().contains(name), "{name}: {e}");
            }
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

/// A window read on its own is exactly that slice of the whole decode (every container and
/// codec, and a WAV written here); past the end it is cut there; wholly past it, empty. The
/// duration from the header or the container's frame count matches the decoded length.
#[test]
fn windows_read_only_their_span() {
    let text = std::fs::read_to_string(dir().join("expected.json")).unwrap();
    let g: Value = serde_json::from_str(&text).unwrap();
    let tmp = std::env::temp_dir().join(format!("tessera-span-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let wav = tmp.join("ramp.wav");
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&wav, spec).unwrap();
    for i in 0..16_000i32 {
        w.write_sample((i % 30_000) as i16).unwrap();
        w.write_sample(-((i % 30_000) as i16)).unwrap();
    }
    w.finalize().unwrap();
    let mut paths: Vec<PathBuf> = vec![wav];
    let opus = opus_here();
    for name in g["files"].as_object().unwrap().keys() {
        if !is_opus(name) || opus {
            paths.push(dir().join(name));
        }
    }
    for path in &paths {
        let name = path.display();
        let whole = read_audio(path).unwrap();
        let (c, rate) = (whole.channels, f64::from(whole.sample_rate_hz));
        let secs = whole.duration_s();
        let d = audio_duration_s(path).unwrap();
        assert!(
            (d - secs).abs() < 0.02,
            "{name}: duration {d} vs decoded {secs}"
        );
        for (a, b) in [
            (0.0, secs / 3.0),
            (secs / 4.0, secs / 2.0),
            (secs * 0.6, secs + 1.0),
        ] {
            let got = read_audio_span(
                path,
                Span {
                    start_s: a,
                    end_s: b,
                },
            )
            .unwrap();
            let first = (a * rate).round() as usize;
            let end = ((b * rate).round() as usize).min(whole.frames());
            assert_eq!(got.frames(), end - first, "{name} [{a}, {b})");
            assert!(
                got.samples == whole.samples[first * c..end * c],
                "{name} [{a}, {b}): differs from the whole decode"
            );
        }
        let e = read_audio_span(
            path,
            Span {
                start_s: secs + 1.0,
                end_s: secs + 2.0,
            },
        );
        assert!(matches!(e, Err(AudioError::Empty { .. })), "{name}: {e:?}");
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

/// Windows deep into 4 s files seek instead of decoding from the start: FLAC's window is
/// exactly the whole decode's span; lossy codecs, after half a second of pre-roll, match it
/// to rounding (no shift: a wrong timestamp mapping would misalign by whole frames).
#[test]
fn windows_after_a_seek_match_the_whole_decode() {
    let long = dir().join("long");
    let opus = opus_here();
    for name in [
        "speech.flac",
        "speech.mp3",
        "speech.ogg",
        "speech.m4a",
        "speech.opus",
    ] {
        if is_opus(name) && !opus {
            continue;
        }
        let path = long.join(name);
        let whole = read_audio(&path).unwrap();
        let (c, rate) = (whole.channels, f64::from(whole.sample_rate_hz));
        for (a, b) in [(1.5, 2.0), (2.75, 3.5), (3.2, 9.0)] {
            let got = read_audio_span(
                &path,
                Span {
                    start_s: a,
                    end_s: b,
                },
            )
            .unwrap();
            let first = (a * rate).round() as usize;
            let end = ((b * rate).round() as usize).min(whole.frames());
            let want = &whole.samples[first * c..end * c];
            assert_eq!(got.frames(), end - first, "{name} [{a}, {b})");
            if name.ends_with(".flac") {
                assert!(got.samples == want, "{name} [{a}, {b}): differs");
            } else {
                let (lag, snr) = snr_db(&got.samples, want, c, 64);
                eprintln!("{name} [{a}, {b}): lag {lag}, SNR {snr:.1} dB");
                assert_eq!(lag, 0, "{name} [{a}, {b}): shifted");
                assert!(snr > 60.0, "{name} [{a}, {b}): SNR {snr:.1} dB");
            }
        }
    }
}
