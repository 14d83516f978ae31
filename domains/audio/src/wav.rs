//! WAV (RIFF/WAVE) reading with a RIFF chunk walker of our own.
//!
//! Supported: PCM 8-bit unsigned, 16/24/32-bit signed integer, IEEE float 32/64-bit, each
//! either as a plain `WAVEFORMATEX` or as `WAVE_FORMAT_EXTENSIBLE`, any channel count.
//! Chunks other than `fmt ` and `data` (LIST, fact, bext, JUNK, ...) are skipped wherever
//! they are; odd-sized chunks are padded to even length as the RIFF spec says, and a writer
//! that forgot the pad byte is tolerated.
//!
//! Samples are scaled to [-1, 1]: unsigned 8-bit as `(x - 128) / 128`, signed integers as
//! `x / 2^(bits - 1)` with `bits` the container width (valid bits narrower than the
//! container are left-justified, as `WAVE_FORMAT_EXTENSIBLE` specifies), floats as stored.
//!
//! Robustness: every size read from a header is checked against the file length before
//! anything is read or allocated, so a corrupt header can neither panic nor make the reader
//! allocate more than the file holds. `hound` is used by the tests to write files; decoding is
//! done here because hound cannot skip unknown chunks before `fmt `, tolerate missing pad
//! bytes, or report the format tag of an unsupported encoding.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::error::AudioError;

/// Decoded audio.
///
/// # Shapes
/// `samples` is interleaved: `[frames * channels]`, frame-major (`samples[f * channels + c]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Audio {
    /// Interleaved samples scaled to [-1, 1] (floats as stored).
    pub samples: Vec<f32>,
    /// Number of interleaved channels (at least 1 for audio read from a file).
    pub channels: usize,
    /// Sampling rate in hertz.
    pub sample_rate_hz: u32,
}

impl Audio {
    /// Number of frames (samples per channel).
    pub fn frames(&self) -> usize {
        self.samples.len().checked_div(self.channels).unwrap_or(0)
    }

    /// Duration in seconds (`frames / sample_rate_hz`; 0 if the rate is 0).
    pub fn duration_s(&self) -> f64 {
        if self.sample_rate_hz == 0 {
            0.0
        } else {
            self.frames() as f64 / f64::from(self.sample_rate_hz)
        }
    }

    /// Mean over channels, `[frames]`.
    pub fn to_mono(&self) -> Vec<f32> {
        match self.channels {
            0 => Vec::new(),
            1 => self.samples.clone(),
            c => {
                let inv = 1.0 / c as f32;
                self.samples
                    .chunks_exact(c)
                    .map(|frame| frame.iter().sum::<f32>() * inv)
                    .collect()
            }
        }
    }

    /// One channel, de-interleaved, `[frames]`.
    ///
    /// # Panics
    /// If `c >= self.channels`: validate a user-supplied channel index against `channels`
    /// first.
    pub fn channel(&self, c: usize) -> Vec<f32> {
        assert!(
            c < self.channels,
            "channel index {c} out of range for audio with {} channels",
            self.channels
        );
        self.samples
            .iter()
            .skip(c)
            .step_by(self.channels)
            .copied()
            .collect()
    }
}

/// What a WAV header says, without decoding the samples.
#[derive(Debug, Clone, PartialEq)]
pub struct WavInfo {
    /// Human-readable encoding, e.g. `"PCM int16"`, `"IEEE float32"`, `"PCM uint8"`,
    /// `"WAVE_FORMAT_EXTENSIBLE PCM int24"`, `"WAVE_FORMAT_EXTENSIBLE PCM int32 (24 valid bits)"`.
    pub format: String,
    pub channels: usize,
    pub sample_rate_hz: u32,
    /// The `bits per sample` field of the fmt chunk (the container width for
    /// `WAVE_FORMAT_EXTENSIBLE`).
    pub bits_per_sample: u16,
    /// Frames (samples per channel) in the data chunk.
    pub frames: u64,
    pub duration_s: f64,
    /// Byte offset of the data chunk's samples in the file.
    pub data_offset: u64,
    /// Bytes of samples the data chunk declares (checked to lie within the file).
    pub data_bytes: u64,
    /// Length of the file in bytes.
    pub file_bytes: u64,
}

/// Read and decode a whole WAV file.
///
/// The data chunk is streamed in blocks, so peak memory is the decoded samples plus a
/// small buffer.
pub fn read_wav(path: &Path) -> Result<Audio, AudioError> {
    read_wav_frames(path, |_| (0, u64::MAX))
}

/// Read and decode frames `[first, end)` of a WAV file, given by `frames(sample rate)` and
/// clamped to the data chunk: the window of a long recording, read without touching the
/// rest of the file (the header is parsed once).
pub fn read_wav_frames(
    path: &Path,
    frames: impl FnOnce(u32) -> (u64, u64),
) -> Result<Audio, AudioError> {
    let mut src = open(path)?;
    let header = parse_header(&mut src, path)?;
    let align = header.fmt.block_align as u64;
    let total = header.data_len / align;
    let (first, end) = frames(header.fmt.sample_rate_hz);
    let first = first.min(total);
    let count = end.min(total).saturating_sub(first);
    let mut samples = Vec::with_capacity(count as usize * header.fmt.channels);
    // Blocks of about 256 KiB holding whole frames.
    let block = header.fmt.block_align * (262_144 / header.fmt.block_align).max(1);
    let mut buf = vec![0u8; block.min((count * align) as usize)];
    let mut offset = header.data_offset + first * align;
    let end = offset + count * align;
    while offset < end {
        let n = (end - offset).min(buf.len() as u64) as usize;
        src.read_at(offset, &mut buf[..n])
            .map_err(|e| io_err(path, e))?;
        decode_into(&buf[..n], header.fmt.kind, &mut samples);
        offset += n as u64;
    }
    Ok(Audio {
        samples,
        channels: header.fmt.channels,
        sample_rate_hz: header.fmt.sample_rate_hz,
    })
}

/// Decode a WAV file held in memory. `path_for_errors` only labels the errors.
///
/// Never panics, whatever the bytes.
pub fn read_wav_bytes(bytes: &[u8], path_for_errors: &Path) -> Result<Audio, AudioError> {
    let mut src = SliceSource(bytes);
    let header = parse_header(&mut src, path_for_errors)?;
    // parse_header checked data_offset + data_len <= bytes.len().
    let start = header.data_offset as usize;
    let data = &bytes[start..start + header.data_len as usize];
    let mut samples = Vec::with_capacity(header.n_samples());
    decode_into(data, header.fmt.kind, &mut samples);
    Ok(Audio {
        samples,
        channels: header.fmt.channels,
        sample_rate_hz: header.fmt.sample_rate_hz,
    })
}

/// Read only the header chunks of a WAV file, checking them against the whole file.
///
/// Fails exactly when [`read_wav`] would fail on the same file (short of I/O errors while
/// reading the samples): the same checks run, only the samples are not decoded. In
/// particular the data chunk must lie within the file and hold whole frames, so a file cut
/// short, or a data size of `0xFFFFFFFF` (the placeholder a streaming writer leaves when it
/// cannot seek back), is [`AudioError::Corrupt`] naming the file, and a data size of 0 is
/// [`AudioError::Empty`]: [`read_wav`] does not read such files either.
pub fn inspect_wav(path: &Path) -> Result<WavInfo, AudioError> {
    let mut src = open(path)?;
    let header = parse_header(&mut src, path)?;
    let frames = header.data_len / header.fmt.block_align as u64;
    Ok(WavInfo {
        format: header.fmt.format,
        channels: header.fmt.channels,
        sample_rate_hz: header.fmt.sample_rate_hz,
        bits_per_sample: header.fmt.bits_per_sample,
        frames,
        duration_s: frames as f64 / f64::from(header.fmt.sample_rate_hz),
        data_offset: header.data_offset,
        data_bytes: header.data_len,
        file_bytes: src.len(),
    })
}

// ---------------------------------------------------------------------------------------
// Byte sources

/// Random-access bytes with a known length; every read is bounds-checked by the caller.
trait ByteSource {
    fn len(&self) -> u64;
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()>;
}

struct SliceSource<'a>(&'a [u8]);

impl ByteSource for SliceSource<'_> {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let start = usize::try_from(offset).ok().filter(|&s| s <= self.0.len());
        match start.and_then(|s| self.0.get(s..s + buf.len())) {
            Some(src) => {
                buf.copy_from_slice(src);
                Ok(())
            }
            None => Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof)),
        }
    }
}

struct FileSource {
    file: File,
    len: u64,
}

impl ByteSource for FileSource {
    fn len(&self) -> u64 {
        self.len
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.file.seek(SeekFrom::Start(offset))?;
        self.file.read_exact(buf)
    }
}

fn open(path: &Path) -> Result<FileSource, AudioError> {
    let file = File::open(path).map_err(|e| io_err(path, e))?;
    let meta = file.metadata().map_err(|e| io_err(path, e))?;
    if meta.is_dir() {
        return Err(AudioError::NotWav {
            path: path.to_path_buf(),
            reason: "is a directory".into(),
        });
    }
    Ok(FileSource {
        file,
        len: meta.len(),
    })
}

fn io_err(path: &Path, source: std::io::Error) -> AudioError {
    AudioError::Io {
        path: path.to_path_buf(),
        source,
    }
}

// ---------------------------------------------------------------------------------------
// Header parsing

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SampleKind {
    UInt8,
    /// Little-endian two's complement in a container of `bytes` (2, 3 or 4) bytes.
    Int {
        bytes: usize,
    },
    Float32,
    Float64,
}

#[derive(Debug)]
struct Header {
    fmt: Fmt,
    data_offset: u64,
    /// Validated: non-zero, a whole number of frames, within the file.
    data_len: u64,
}

impl Header {
    fn n_samples(&self) -> usize {
        let bytes_per_sample = self.fmt.block_align / self.fmt.channels;
        (self.data_len / bytes_per_sample as u64) as usize
    }
}

/// The parsed `fmt ` chunk.
#[derive(Debug)]
struct Fmt {
    kind: SampleKind,
    format: String,
    channels: usize,
    sample_rate_hz: u32,
    bits_per_sample: u16,
    block_align: usize,
}

const KSDATAFORMAT_SUFFIX: [u8; 14] = [
    0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71,
];

fn u16_le(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_le(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn is_chunk_id(id: &[u8]) -> bool {
    id.len() == 4
        && id
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b' ' || c == b'_' || c == b'-')
}

fn show_id(id: &[u8]) -> String {
    if id.iter().all(|c| c.is_ascii_graphic() || *c == b' ') {
        format!("'{}'", String::from_utf8_lossy(id))
    } else {
        format!("bytes {id:02x?}")
    }
}

fn parse_header(src: &mut dyn ByteSource, path: &Path) -> Result<Header, AudioError> {
    let file_len = src.len();
    let p = || path.to_path_buf();
    let corrupt = |reason: String| AudioError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };

    if file_len == 0 {
        return Err(AudioError::NotWav {
            path: p(),
            reason: "the file is empty (0 bytes)".into(),
        });
    }
    let mut head = [0u8; 12];
    let n_head = file_len.min(12) as usize;
    src.read_at(0, &mut head[..n_head])
        .map_err(|e| io_err(path, e))?;
    let magic = &head[..n_head.min(4)];
    match magic {
        b"RIFF" => {}
        b"RIFX" => {
            return Err(AudioError::Unsupported {
                path: p(),
                reason: "big-endian RIFX WAV files are not supported".into(),
            })
        }
        b"RF64" | b"BW64" => {
            return Err(AudioError::Unsupported {
                path: p(),
                reason: format!(
                    "{} (64-bit WAV) files are not supported",
                    String::from_utf8_lossy(magic)
                ),
            })
        }
        _ => {
            return Err(AudioError::NotWav {
                path: p(),
                reason: format!("starts with {}, not 'RIFF'", show_id(magic)),
            })
        }
    }
    if n_head < 12 {
        return Err(corrupt(format!(
            "truncated: the file is {file_len} bytes, shorter than the 12-byte RIFF header"
        )));
    }
    if &head[8..12] != b"WAVE" {
        return Err(AudioError::NotWav {
            path: p(),
            reason: format!("RIFF form type is {}, not 'WAVE'", show_id(&head[8..12])),
        });
    }

    let mut fmt: Option<Fmt> = None;
    let mut data: Option<(u64, u64)> = None;
    let mut pos: u64 = 12;
    while pos + 8 <= file_len {
        let mut ch = [0u8; 8];
        src.read_at(pos, &mut ch).map_err(|e| io_err(path, e))?;
        let id = [ch[0], ch[1], ch[2], ch[3]];
        let size = u64::from(u32_le(&ch, 4));
        let content = pos + 8;
        let end = content + size;
        let remaining = file_len - content;
        match &id {
            b"fmt " if fmt.is_none() => {
                if size < 16 {
                    return Err(corrupt(format!(
                        "the fmt chunk is {size} bytes, need at least 16"
                    )));
                }
                if end > file_len {
                    return Err(corrupt(format!(
                        "truncated: the fmt chunk at byte {pos} declares {size} bytes but only \
                         {remaining} remain in the file"
                    )));
                }
                let mut buf = [0u8; 40];
                let n = size.min(40) as usize;
                src.read_at(content, &mut buf[..n])
                    .map_err(|e| io_err(path, e))?;
                fmt = Some(parse_fmt(&buf[..n], path)?);
            }
            b"data" if data.is_none() => {
                if end > file_len {
                    let why = if size == u64::from(u32::MAX) {
                        "0xFFFFFFFF is the placeholder a streaming writer leaves when it cannot \
                         seek back to write the size; such files are not read"
                    } else {
                        "the file was cut short or its header is wrong"
                    };
                    return Err(corrupt(format!(
                        "truncated: the data chunk at byte {pos} declares {size} bytes but only \
                         {remaining} remain in the file ({why})"
                    )));
                }
                data = Some((content, size));
            }
            _ => {
                if end > file_len {
                    if fmt.is_some() && data.is_some() {
                        break; // trailing junk after everything we need
                    }
                    return Err(corrupt(format!(
                        "truncated: the {} chunk at byte {pos} declares {size} bytes but only \
                         {remaining} remain in the file",
                        show_id(&id)
                    )));
                }
            }
        }
        if fmt.is_some() && data.is_some() {
            break;
        }
        pos = next_chunk(src, end, size, path)?;
    }

    let Some(fmt) = fmt else {
        return Err(corrupt(format!(
            "no fmt chunk found in the {file_len}-byte file (truncated or not a WAV body)"
        )));
    };
    let Some((data_offset, data_len)) = data else {
        return Err(corrupt(format!(
            "no data chunk found in the {file_len}-byte file (truncated?)"
        )));
    };
    if data_len == 0 {
        return Err(AudioError::Empty { path: p() });
    }
    if data_len % fmt.block_align as u64 != 0 {
        return Err(corrupt(format!(
            "truncated: the data chunk holds {data_len} bytes, not a whole number of \
             {}-byte frames ({} channels); the last frame is incomplete",
            fmt.block_align, fmt.channels
        )));
    }
    Ok(Header {
        fmt,
        data_offset,
        data_len,
    })
}

/// Where the chunk after one ending (unpadded) at `end` starts: after the pad byte of an
/// odd-sized chunk, unless the writer left the pad byte out.
fn next_chunk(
    src: &mut dyn ByteSource,
    end: u64,
    size: u64,
    path: &Path,
) -> Result<u64, AudioError> {
    if size & 1 == 0 {
        return Ok(end);
    }
    let padded = end + 1;
    if padded + 4 <= src.len() {
        let mut id = [0u8; 4];
        src.read_at(padded, &mut id).map_err(|e| io_err(path, e))?;
        if !is_chunk_id(&id) {
            let mut id0 = [0u8; 4];
            src.read_at(end, &mut id0).map_err(|e| io_err(path, e))?;
            if is_chunk_id(&id0) {
                return Ok(end);
            }
        }
    }
    Ok(padded)
}

fn format_tag_name(tag: u16) -> &'static str {
    match tag {
        0x0000 => "unknown",
        0x0001 => "PCM",
        0x0002 => "Microsoft ADPCM",
        0x0003 => "IEEE float",
        0x0006 => "A-law",
        0x0007 => "mu-law",
        0x0011 => "IMA ADPCM",
        0x0031 => "GSM 6.10",
        0x0050 => "MPEG",
        0x0055 => "MPEG Layer 3",
        0x0160..=0x0163 => "Windows Media Audio",
        0x2000 => "AC-3",
        0xFFFE => "WAVE_FORMAT_EXTENSIBLE",
        _ => "unregistered",
    }
}

fn parse_fmt(b: &[u8], path: &Path) -> Result<Fmt, AudioError> {
    let corrupt = |reason: String| AudioError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let unsupported = |reason: String| AudioError::Unsupported {
        path: path.to_path_buf(),
        reason,
    };
    let supported = "supported: PCM (1), IEEE float (3) and WAVE_FORMAT_EXTENSIBLE (0xFFFE) \
                     with a PCM or IEEE float subformat";

    let tag = u16_le(b, 0);
    let channels = usize::from(u16_le(b, 2));
    let sample_rate_hz = u32_le(b, 4);
    let block_align = usize::from(u16_le(b, 12));
    let bits_per_sample = u16_le(b, 14);

    let extensible = tag == 0xFFFE;
    let (code, valid_bits) = if extensible {
        if b.len() < 40 {
            return Err(corrupt(format!(
                "WAVE_FORMAT_EXTENSIBLE fmt chunk is {} bytes, need 40",
                b.len()
            )));
        }
        if b[26..40] != KSDATAFORMAT_SUFFIX {
            return Err(unsupported(format!(
                "WAVE_FORMAT_EXTENSIBLE with a non-standard subformat GUID {:02x?}",
                &b[24..40]
            )));
        }
        let valid = u16_le(b, 18);
        (
            u16_le(b, 24),
            if valid == 0 { bits_per_sample } else { valid },
        )
    } else {
        (tag, bits_per_sample)
    };
    if code != 1 && code != 3 {
        let what = if extensible {
            "WAVE_FORMAT_EXTENSIBLE subformat"
        } else {
            "format tag"
        };
        return Err(unsupported(format!(
            "{what} {code} (0x{code:04X}, {}) is not supported; {supported}",
            format_tag_name(code)
        )));
    }
    if channels == 0 {
        return Err(corrupt("the fmt chunk declares 0 channels".into()));
    }
    if sample_rate_hz == 0 {
        return Err(corrupt(
            "the fmt chunk declares a sample rate of 0 Hz".into(),
        ));
    }
    if bits_per_sample == 0 {
        return Err(corrupt("the fmt chunk declares 0 bits per sample".into()));
    }
    if block_align == 0 || block_align % channels != 0 {
        return Err(corrupt(format!(
            "block align {block_align} is not a positive multiple of the {channels} channels"
        )));
    }
    let container = block_align / channels;
    if usize::from(bits_per_sample) > container * 8 || usize::from(valid_bits) > container * 8 {
        return Err(corrupt(format!(
            "{bits_per_sample} bits per sample do not fit the {container}-byte sample container \
             implied by block align {block_align} and {channels} channels"
        )));
    }
    let kind = match (code, container) {
        (1, 1) => SampleKind::UInt8,
        (1, 2..=4) => SampleKind::Int { bytes: container },
        (1, _) => {
            return Err(unsupported(format!(
                "PCM with {container}-byte samples ({bits_per_sample} bits) is not supported; \
                 integer PCM of 8, 16, 24 and 32 bits is"
            )))
        }
        (_, 4) if bits_per_sample == 32 => SampleKind::Float32,
        (_, 8) if bits_per_sample == 64 => SampleKind::Float64,
        _ => {
            return Err(unsupported(format!(
                "IEEE float with {bits_per_sample} bits in {container}-byte samples is not \
                 supported; 32- and 64-bit floats are"
            )))
        }
    };
    let base = match kind {
        SampleKind::UInt8 => "PCM uint8".to_string(),
        SampleKind::Int { bytes } => format!("PCM int{}", bytes * 8),
        SampleKind::Float32 => "IEEE float32".to_string(),
        SampleKind::Float64 => "IEEE float64".to_string(),
    };
    let mut format = if extensible {
        format!("WAVE_FORMAT_EXTENSIBLE {base}")
    } else {
        base
    };
    if usize::from(valid_bits) < container * 8 {
        format.push_str(&format!(" ({valid_bits} valid bits)"));
    }
    Ok(Fmt {
        kind,
        format,
        channels,
        sample_rate_hz,
        bits_per_sample,
        block_align,
    })
}

// ---------------------------------------------------------------------------------------
// Sample decoding

/// Append the samples encoded in `bytes` (a whole number of samples) to `out`.
fn decode_into(bytes: &[u8], kind: SampleKind, out: &mut Vec<f32>) {
    match kind {
        SampleKind::UInt8 => out.extend(bytes.iter().map(|&b| (f32::from(b) - 128.0) / 128.0)),
        SampleKind::Int { bytes: 2 } => out.extend(
            bytes
                .chunks_exact(2)
                .map(|c| f32::from(i16::from_le_bytes([c[0], c[1]])) / 32_768.0),
        ),
        SampleKind::Int { bytes: 3 } => out.extend(bytes.chunks_exact(3).map(|c| {
            let v = i32::from_le_bytes([0, c[0], c[1], c[2]]) >> 8;
            v as f32 / 8_388_608.0
        })),
        SampleKind::Int { .. } => out.extend(
            bytes
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32 / 2_147_483_648.0),
        ),
        SampleKind::Float32 => out.extend(
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        ),
        SampleKind::Float64 => {
            out.extend(bytes.chunks_exact(8).map(|c| {
                f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32
            }))
        }
    }
}
