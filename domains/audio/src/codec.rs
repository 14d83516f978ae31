//! Every audio file a user holds, decoded to [`Audio`]: WAV through the crate's own RIFF
//! reader (faster and stricter, see [`crate::wav`]), everything else through symphonia:
//! FLAC, MP3 (MPEG-1/2 layer III), Ogg Vorbis, AAC-LC in MP4/M4A, ALAC, AIFF/AIFC and CAF
//! PCM, and Matroska/WebM audio with those codecs. Encoder delay and padding are trimmed
//! (gapless decoding), so an MP3 or AAC file has the length of the audio that was encoded.
//!
//! The container is found from the file's first bytes (symphonia's probe, with the file
//! extension as a hint). Opus is demuxed but has no decoder here: it is refused with a
//! message naming the codec, as is any other codec without a decoder.
//!
//! Errors name the file: an unknown container, no audio track, an unsupported codec, a
//! malformed packet (with its time in the stream), a stream that changes its sample rate or
//! channel count. A file cut short decodes up to the cut, as other decoders do.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use symphonia::core::codecs::audio::well_known::CODEC_ID_OPUS;
use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;

use crate::error::AudioError;
use crate::wav::{inspect_wav, read_wav, Audio};

/// Is this a RIFF/WAVE file (or another RIFF-family WAV: RIFX, which the WAV reader then
/// refuses by name)? Decided from the first 12 bytes.
pub fn is_wav(path: &Path) -> Result<bool, AudioError> {
    let mut head = Vec::with_capacity(12);
    File::open(path)
        .and_then(|f| f.take(12).read_to_end(&mut head))
        .map_err(|source| AudioError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(head.len() == 12 && matches!(&head[..4], b"RIFF" | b"RIFX") && &head[8..12] == b"WAVE")
}

/// Read and decode a whole audio file of any supported format.
pub fn read_audio(path: &Path) -> Result<Audio, AudioError> {
    if is_wav(path)? {
        return read_wav(path);
    }
    decode(path).map(|(audio, _)| audio)
}

/// What a file holds, from its header (WAV) or the decoded stream (other formats).
#[derive(Debug, Clone, PartialEq)]
pub struct AudioInfo {
    /// The container and codec, e.g. `"PCM int16"` (WAV) or `"flac in flac"`.
    pub format: String,
    pub channels: usize,
    pub sample_rate_hz: u32,
    /// Bits per sample where the codec has them (PCM, FLAC, ALAC); 0 for lossy codecs.
    pub bits_per_sample: u32,
    pub frames: u64,
    pub duration_s: f64,
}

/// Describe an audio file. WAV is described from its header alone; other formats are
/// decoded to the end (so a corrupt stream is found, and the length is exact).
pub fn inspect_audio(path: &Path) -> Result<AudioInfo, AudioError> {
    if is_wav(path)? {
        let w = inspect_wav(path)?;
        return Ok(AudioInfo {
            format: w.format,
            channels: w.channels,
            sample_rate_hz: w.sample_rate_hz,
            bits_per_sample: u32::from(w.bits_per_sample),
            frames: w.frames,
            duration_s: w.duration_s,
        });
    }
    let (audio, (format, bits)) = decode(path)?;
    Ok(AudioInfo {
        format,
        channels: audio.channels,
        sample_rate_hz: audio.sample_rate_hz,
        bits_per_sample: bits,
        frames: audio.frames() as u64,
        duration_s: audio.duration_s(),
    })
}

/// The decoder's short name for a codec, or its id.
fn codec_name(id: symphonia::core::codecs::audio::AudioCodecId) -> String {
    if id == CODEC_ID_OPUS {
        return "opus".into();
    }
    symphonia::default::get_codecs()
        .get_audio_decoder(id)
        .map(|d| d.codec.info.short_name.to_string())
        .unwrap_or_else(|| format!("codec {id}"))
}

/// Decode a whole file through symphonia; also returns `"<codec> in <container>"` and the
/// codec's bits per sample (0 when it has none).
fn decode(path: &Path) -> Result<(Audio, (String, u32)), AudioError> {
    let corrupt = |reason: String| AudioError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let unsupported = |reason: String| AudioError::Unsupported {
        path: path.to_path_buf(),
        reason,
    };
    let file = File::open(path).map_err(|source| AudioError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mss = MediaSourceStream::new(Box::new(file), Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    let mut format = symphonia::default::get_probe()
        .probe(&hint, mss, FormatOptions::default(), MetadataOptions::default())
        .map_err(|e| match e {
            SymError::Unsupported(_) => AudioError::NotWav {
                path: path.to_path_buf(),
                reason: "not an audio container this reader knows (WAV, FLAC, MP3, Ogg, MP4/M4A, AIFF, CAF, Matroska/WebM)".into(),
            },
            e => corrupt(format!("cannot read the container: {e}")),
        })?;
    let container = format.format_info().short_name.to_string();
    let track = format
        .default_track(TrackType::Audio)
        .ok_or_else(|| unsupported(format!("the {container} container holds no audio track")))?;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or_else(|| unsupported("the audio track has no codec parameters".into()))?
        .clone();
    let track_id = track.id;
    let time_base = track.time_base;
    let name = codec_name(params.codec);
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(&params, &AudioDecoderOptions::default())
        .map_err(|_| {
            unsupported(format!(
                "no decoder for {name} audio (in {container}); convert it, e.g. `ffmpeg -i {} out.flac`",
                path.display()
            ))
        })?;
    let info = (
        format!("{name} in {container}"),
        params.bits_per_sample.unwrap_or(0),
    );
    let mut samples: Vec<f32> = Vec::new();
    let mut spec: Option<(u32, usize)> = None;
    loop {
        let packet = match format.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => break,
            // A stream cut short ends where the cut is.
            Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(SymError::ResetRequired) => {
                return Err(unsupported(
                    "the stream changes its parameters midway (a chained stream)".into(),
                ))
            }
            Err(e) => return Err(corrupt(format!("demuxing {container}: {e}"))),
        };
        if packet.track_id != track_id {
            continue;
        }
        let at = || match time_base.and_then(|tb| tb.calc_time(packet.pts)) {
            Some(t) => format!(" at {:.3} s", t.as_secs_f64()),
            None => String::new(),
        };
        let decoded = match decoder.decode(&packet) {
            Ok(d) => d,
            Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(corrupt(format!("decoding {name}{}: {e}", at()))),
        };
        let s = (decoded.spec().rate(), decoded.spec().channels().count());
        match spec {
            None => spec = Some(s),
            Some(prev) if prev != s => {
                return Err(unsupported(format!(
                    "the stream changes from {} Hz × {} channels to {} Hz × {} channels{}",
                    prev.0,
                    prev.1,
                    s.0,
                    s.1,
                    at()
                )))
            }
            Some(_) => {}
        }
        // Straight into the output's tail, no intermediate buffer.
        let at = samples.len();
        samples.resize(at + decoded.samples_interleaved(), 0.0);
        decoded.copy_to_slice_interleaved(&mut samples[at..]);
    }
    let Some((rate, channels)) = spec else {
        return Err(AudioError::Empty {
            path: path.to_path_buf(),
        });
    };
    if samples.is_empty() || channels == 0 {
        return Err(AudioError::Empty {
            path: path.to_path_buf(),
        });
    }
    let audio = Audio {
        samples,
        channels,
        sample_rate_hz: rate,
    };
    Ok((audio, info))
}
