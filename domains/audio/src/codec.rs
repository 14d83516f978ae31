//! Every audio file a user holds, decoded to [`Audio`]: WAV through the crate's own RIFF
//! reader (faster and stricter, see [`crate::wav`]), everything else through symphonia:
//! FLAC, MP3 (MPEG-1/2 layer III), Ogg Vorbis, AAC-LC in MP4/M4A, ALAC, AIFF/AIFC and CAF
//! PCM, and Matroska/WebM audio with those codecs. Encoder delay and padding are trimmed
//! (gapless decoding), so an MP3 or AAC file has the length of the audio that was encoded.
//!
//! Opus (in Ogg or Matroska/WebM) is demuxed by symphonia and decoded by libopus, opened at
//! run time ([`crate::opus`]): 48 kHz, pre-skip dropped, output gain applied, the last Ogg
//! page's end trimmed. Matroska's `DiscardPadding` is not exposed by the demuxer, so a
//! WebM/MKA Opus file keeps the encoder's padding of its last frame (under 20 ms at the
//! usual frame size; the declared segment duration is too coarse to cut it).
//!
//! The container is found from the file's first bytes (symphonia's probe, with the file
//! extension as a hint). A codec without a decoder is refused with a message naming it.
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
use symphonia::core::formats::{FormatOptions, SeekMode, SeekTo, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::units::Time;

use crate::error::AudioError;
use crate::opus::{self, OpusHead};
use crate::wav::{inspect_wav, read_wav_frames, Audio};

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
    read_audio_span(path, Span::ALL)
}

/// Seconds decoded before a window of a lossy stream after a seek, for the decoder's state
/// to settle (Opus asks for 80 ms; MP3, AAC and Vorbis need a frame or two).
const SEEK_PREROLL_S: f64 = 0.5;

/// Seconds `[start, end)` of a recording; `end` may be infinite.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Span {
    pub start_s: f64,
    pub end_s: f64,
}

impl Span {
    pub const ALL: Span = Span {
        start_s: 0.0,
        end_s: f64::INFINITY,
    };
    /// Decode to the end keeping no samples (to count and check them).
    const NOTHING: Span = Span {
        start_s: f64::INFINITY,
        end_s: f64::INFINITY,
    };

    /// Frames `[first, end)` at `rate` (the nearest frame to each time).
    fn frames(&self, rate: u32) -> (u64, u64) {
        let at = |t: f64| (t * f64::from(rate)).round().clamp(0.0, u64::MAX as f64) as u64;
        (at(self.start_s), at(self.end_s))
    }
}

/// Read seconds `[start, end)` of a recording with memory bounded by the window: WAV reads
/// only the window's bytes; other formats seek near the window (lossy ones half a second
/// early, so the decoder state has settled), keep only the window, and stop at its end; a
/// container that cannot seek is decoded from the start. A window past the
/// end of the file is [`AudioError::Empty`]; one that runs past the end is cut there.
pub fn read_audio_span(path: &Path, span: Span) -> Result<Audio, AudioError> {
    if is_wav(path)? {
        let a = read_wav_frames(path, |rate| span.frames(rate))?;
        if a.samples.is_empty() {
            return Err(AudioError::Empty {
                path: path.to_path_buf(),
            });
        }
        return Ok(a);
    }
    decode(path, span, false)?
        .audio(path)
        .map(|(audio, _)| audio)
}

/// The length of a recording in seconds: from the WAV header, the container's frame count
/// (FLAC, MP4, Ogg, CAF, AIFF declare it), or else by decoding to the end without keeping
/// the samples.
pub fn audio_duration_s(path: &Path) -> Result<f64, AudioError> {
    if is_wav(path)? {
        return Ok(inspect_wav(path)?.duration_s);
    }
    let d = decode(path, Span::NOTHING, true)?;
    Ok(d.frames_total as f64 / f64::from(d.rate.max(1)))
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
/// decoded to the end without keeping the samples (so a corrupt stream is found, and the
/// length is exact, in bounded memory).
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
    // Decoded to the end, keeping nothing: memory stays bounded for hours of audio.
    let d = decode(path, Span::NOTHING, false)?;
    if d.frames_total == 0 || d.channels == 0 {
        return Err(AudioError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(AudioInfo {
        format: d.info.0,
        channels: d.channels,
        sample_rate_hz: d.rate,
        bits_per_sample: d.info.1,
        frames: d.frames_total,
        duration_s: d.frames_total as f64 / f64::from(d.rate.max(1)),
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

/// A symphonia decoder, or libopus with the frames of pre-skip still to drop.
enum Dec {
    Sym(Box<dyn symphonia::core::codecs::audio::AudioDecoder>),
    Opus(opus::Decoder, usize),
}

/// Every packet must decode to the first packet's rate and channel count.
fn check_spec(
    spec: &mut Option<(u32, usize)>,
    s: (u32, usize),
    at: &dyn Fn() -> String,
) -> Result<(), String> {
    match *spec {
        None => *spec = Some(s),
        Some(prev) if prev != s => {
            return Err(format!(
                "the stream changes from {} Hz × {} channels to {} Hz × {} channels{}",
                prev.0,
                prev.1,
                s.0,
                s.1,
                at()
            ))
        }
        Some(_) => {}
    }
    Ok(())
}

/// What [`decode`] found: the kept samples (interleaved), the stream's rate and channels,
/// `"<codec> in <container>"` with the codec's bits per sample (0 when it has none), and
/// the frames of the whole stream that were decoded (up to the window's end).
struct Decoded {
    samples: Vec<f32>,
    rate: u32,
    channels: usize,
    info: (String, u32),
    frames_total: u64,
}

impl Decoded {
    fn audio(self, path: &Path) -> Result<(Audio, (String, u32)), AudioError> {
        if self.samples.is_empty() || self.channels == 0 {
            return Err(AudioError::Empty {
                path: path.to_path_buf(),
            });
        }
        let audio = Audio {
            samples: self.samples,
            channels: self.channels,
            sample_rate_hz: self.rate,
        };
        Ok((audio, self.info))
    }
}

/// Decode a file through symphonia (Opus: its packets through libopus), keeping the frames
/// of `span`; with `duration_only`, the container's frame count may answer without decoding.
fn decode(path: &Path, span: Span, duration_only: bool) -> Result<Decoded, AudioError> {
    decode_from(path, span, duration_only, true)
}

/// [`decode`], seeking to a window only when `seek`.
fn decode_from(
    path: &Path,
    span: Span,
    duration_only: bool,
    seek: bool,
) -> Result<Decoded, AudioError> {
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
    if duration_only {
        // The container's count of playable frames, when it has one.
        if let (Some(n), Some(rate)) = (track.num_frames, params.sample_rate) {
            return Ok(Decoded {
                samples: Vec::new(),
                rate,
                channels: params.channels.as_ref().map_or(1, |c| c.count()),
                info: (String::new(), 0),
                frames_total: n,
            });
        }
    }
    let time_base = track.time_base;
    let name = codec_name(params.codec);
    let mut decoder = if params.codec == CODEC_ID_OPUS {
        let head = params
            .extra_data
            .as_deref()
            .ok_or_else(|| corrupt("the Opus track has no identification header".into()))
            .and_then(|h| OpusHead::parse(h).map_err(corrupt))?;
        let skip = head.pre_skip;
        Dec::Opus(opus::Decoder::new(&head).map_err(unsupported)?, skip)
    } else {
        Dec::Sym(
            symphonia::default::get_codecs()
                .make_audio_decoder(&params, &AudioDecoderOptions::default())
                .map_err(|_| {
                    unsupported(format!(
                        "no decoder for {name} audio (in {container}); convert it, e.g. `ffmpeg -i {} out.flac`",
                        path.display()
                    ))
                })?,
        )
    };
    let info = (
        format!("{name} in {container}"),
        params.bits_per_sample.unwrap_or(0),
    );
    // A window that starts later seeks there instead of decoding from the start. Lossless
    // codecs need no history; lossy ones decode SEEK_PREROLL_S before the window first, so
    // their decoder state (overlap, bit reservoir, Opus's predictors) has settled. The
    // first packet's timestamp then says which stream frame it starts at.
    let lossless = matches!(name.as_str(), "flac" | "alac") || name.starts_with("pcm");
    let seek_to = span.start_s - if lossless { 0.0 } else { SEEK_PREROLL_S };
    let mut pending_pts = None;
    let to = Time::try_from_secs_f64(seek_to).map(|time| SeekTo::Time {
        time,
        track_id: Some(track_id),
    });
    if let (true, false, Some(to)) = (seek && seek_to > 0.0, duration_only, to) {
        // Where the output's frame 0 sits on the timestamp axis: 0, except for Ogg Opus,
        // whose first packet is stamped after the pre-skip, which is dropped from the
        // output: measured from the stream's first packet.
        let origin = match &mut decoder {
            Dec::Opus(_, skip) => match format.next_packet() {
                Ok(Some(p)) => time_base.and_then(|tb| tb.calc_time(p.pts)).map(|t| {
                    let at = (t.as_secs_f64() * f64::from(opus::RATE_HZ)).round() as i64;
                    let origin = at + *skip as i64;
                    *skip = 0;
                    origin
                }),
                _ => None,
            },
            Dec::Sym(_) => Some(0),
        };
        match origin {
            Some(origin) if format.seek(SeekMode::Accurate, to).is_ok() => {
                pending_pts = Some(origin)
            }
            // Opus's first packet is consumed: start again without seeking.
            _ if matches!(decoder, Dec::Opus(..)) => {
                return decode_from(path, span, duration_only, false)
            }
            _ => {}
        }
    }
    // The window is kept as it passes: `base` is the stream frame of `samples[0]`.
    let mut samples: Vec<f32> = Vec::new();
    let mut base = 0u64;
    let mut window: Option<(u64, u64)> = None;
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
        match &mut decoder {
            Dec::Sym(decoder) => {
                let decoded = match decoder.decode(&packet) {
                    Ok(d) => d,
                    Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                        break
                    }
                    Err(e) => return Err(corrupt(format!("decoding {name}{}: {e}", at()))),
                };
                let s = (decoded.spec().rate(), decoded.spec().channels().count());
                check_spec(&mut spec, s, &at).map_err(unsupported)?;
                // Straight into the output's tail, no intermediate buffer.
                let at = samples.len();
                samples.resize(at + decoded.samples_interleaved(), 0.0);
                decoded.copy_to_slice_interleaved(&mut samples[at..]);
            }
            Dec::Opus(decoder, skip) => {
                let channels = decoder.channels();
                let pcm = decoder
                    .decode(&packet.data)
                    .map_err(|e| corrupt(format!("decoding opus{}: {e}", at())))?;
                check_spec(&mut spec, (opus::RATE_HZ, channels), &at).map_err(unsupported)?;
                // The container's trims (the last page's end), then the stream's pre-skip.
                let frames = pcm.len() / channels;
                let lo = (packet.trim_start.get() as usize).min(frames);
                let hi = frames
                    .saturating_sub(packet.trim_end.get() as usize)
                    .max(lo);
                let dropped = (*skip).min(hi - lo);
                *skip -= dropped;
                samples.extend_from_slice(&pcm[(lo + dropped) * channels..hi * channels]);
            }
        }
        let (rate, channels) = spec.unwrap_or((1, 1));
        // After a seek, the first packet with output places the stream (a Vorbis decoder
        // outputs nothing for the first packet after a reset).
        if let (Some(offset), false) = (pending_pts, samples.is_empty()) {
            pending_pts = None;
            let secs = time_base
                .and_then(|tb| tb.calc_time(packet.pts))
                .map_or(0.0, |t| t.as_secs_f64());
            let frame = (secs * f64::from(rate)).round() as i64 - offset;
            // Frames before the stream's start (an encoder delay) are dropped.
            let before = (-frame).max(0) as usize;
            samples.drain(..(before * channels).min(samples.len()));
            base = frame.max(0) as u64;
        }
        let (first, end) = *window.get_or_insert_with(|| span.frames(rate));
        let held = (samples.len() / channels.max(1)) as u64;
        if base < first {
            let drop = (first - base).min(held);
            samples.drain(..drop as usize * channels);
            base += drop;
        }
        if base + (samples.len() / channels.max(1)) as u64 >= end {
            break;
        }
    }
    let Some((rate, channels)) = spec else {
        return Err(AudioError::Empty {
            path: path.to_path_buf(),
        });
    };
    let kept = (samples.len() / channels.max(1)) as u64;
    let (_, end) = span.frames(rate);
    samples.truncate(end.saturating_sub(base).min(kept) as usize * channels);
    Ok(Decoded {
        frames_total: base + kept,
        samples,
        rate,
        channels,
        info,
    })
}
