//! Opus decoding through the reference decoder, libopus, loaded at run time.
//!
//! symphonia demuxes Opus (Ogg and Matroska/WebM) but has no Opus decoder, and no kept pure-
//! Rust one exists, so the packets go to libopus (BSD-3-Clause), the decoder every other tool
//! uses. It is opened with `dlopen` when the first Opus file is read, never linked: building
//! Tessera needs no libopus, and a machine without it refuses Opus files with a message
//! saying what to install (`scripts/setup.sh` installs Debian's `libopus0`). Set
//! `TESSERA_LIBOPUS` to a library path to use another copy.
//!
//! The identification header (`OpusHead`, RFC 7845 §5.1) gives the channel count, the pre-
//! skip, the output gain and the channel mapping; every mapping family goes through the
//! multistream decoder (family 0 is one stream, coupled when stereo; family 1 surround is
//! put in WAVE/SMPTE channel order, as FFmpeg does). Output is 48 kHz float,
//! as RFC 7845 recommends; the pre-skip is dropped and the output gain applied, as FFmpeg
//! and opusfile do.

use std::ffi::{c_int, c_uchar, c_void};
use std::path::PathBuf;
use std::sync::OnceLock;

/// Decoded frames per channel in the longest Opus packet (120 ms at 48 kHz).
pub const MAX_FRAME: usize = 5760;

/// The sample rate libopus decodes to here.
pub const RATE_HZ: u32 = 48_000;

/// The fields of an `OpusHead` packet the decoder needs.
#[derive(Debug, Clone, PartialEq)]
pub struct OpusHead {
    pub channels: usize,
    pub pre_skip: usize,
    /// Output gain in dB (stored as Q7.8).
    pub gain_db: f64,
    pub streams: usize,
    pub coupled: usize,
    /// Output channel → decoded stream channel (255 = silence).
    pub mapping: Vec<u8>,
    /// Channel mapping family (0: mono/stereo, 1: Vorbis order surround, 255: undefined).
    pub family: u8,
}

/// Family 1 (Vorbis channel order, RFC 7845 §5.1.1.2) to the WAVE/SMPTE order every other
/// reader here (and FFmpeg) gives: output channel `i` is Vorbis channel `order[i]`.
fn vorbis_to_wave(channels: usize) -> Option<&'static [usize]> {
    Some(match channels {
        3 => &[0, 2, 1],
        5 => &[0, 2, 1, 3, 4],
        6 => &[0, 2, 1, 5, 3, 4],
        7 => &[0, 2, 1, 6, 5, 3, 4],
        8 => &[0, 2, 1, 7, 5, 6, 3, 4],
        _ => return None,
    })
}

impl OpusHead {
    /// Parse an identification header; the error says which field is wrong.
    pub fn parse(b: &[u8]) -> Result<Self, String> {
        if b.len() < 19 || &b[..8] != b"OpusHead" {
            return Err("the Opus identification header (OpusHead) is missing or short".into());
        }
        if b[8] >> 4 != 0 {
            return Err(format!("OpusHead version {} is not supported", b[8]));
        }
        let channels = usize::from(b[9]);
        if channels == 0 {
            return Err("OpusHead declares 0 channels".into());
        }
        let pre_skip = usize::from(u16::from_le_bytes([b[10], b[11]]));
        let gain_db = f64::from(i16::from_le_bytes([b[16], b[17]])) / 256.0;
        let (streams, coupled, mapping) = match b[18] {
            0 => {
                if channels > 2 {
                    return Err(format!(
                        "OpusHead mapping family 0 allows 1 or 2 channels, not {channels}"
                    ));
                }
                (1, channels - 1, (0..channels as u8).collect())
            }
            family => {
                if b.len() < 21 + channels {
                    return Err(format!(
                        "OpusHead mapping family {family} needs a channel table of {channels} bytes"
                    ));
                }
                let (streams, coupled) = (usize::from(b[19]), usize::from(b[20]));
                if streams == 0 || coupled > streams || streams + coupled > 255 {
                    return Err(format!(
                        "OpusHead declares {streams} streams of which {coupled} coupled"
                    ));
                }
                let mapping = b[21..21 + channels].to_vec();
                if let Some(m) = mapping
                    .iter()
                    .find(|&&m| m != 255 && usize::from(m) >= streams + coupled)
                {
                    return Err(format!(
                        "OpusHead maps a channel to stream channel {m} of {}",
                        streams + coupled
                    ));
                }
                (streams, coupled, mapping)
            }
        };
        Ok(Self {
            channels,
            pre_skip,
            gain_db,
            streams,
            coupled,
            mapping,
            family: b[18],
        })
    }
}

type Create =
    unsafe extern "C" fn(i32, c_int, c_int, c_int, *const c_uchar, *mut c_int) -> *mut c_void;
type Decode =
    unsafe extern "C" fn(*mut c_void, *const c_uchar, i32, *mut f32, c_int, c_int) -> c_int;
type Destroy = unsafe extern "C" fn(*mut c_void);
type StrError = unsafe extern "C" fn(c_int) -> *const std::ffi::c_char;

/// The four libopus entry points used here, resolved once.
struct Api {
    create: Create,
    decode: Decode,
    destroy: Destroy,
    strerror: StrError,
    // Keeps the symbols valid.
    _lib: libloading::Library,
}

fn candidates() -> Vec<PathBuf> {
    if let Some(p) = std::env::var_os("TESSERA_LIBOPUS") {
        return vec![PathBuf::from(p)];
    }
    ["libopus.so.0", "libopus.so", "libopus.0.dylib", "opus.dll"]
        .iter()
        .map(PathBuf::from)
        .collect()
}

fn load() -> Result<Api, String> {
    let mut tried = Vec::new();
    for name in candidates() {
        // SAFETY: loading libopus runs no initialisers with preconditions; the symbols are
        // given their C signatures from opus_multistream.h.
        let lib = match unsafe { libloading::Library::new(&name) } {
            Ok(l) => l,
            Err(e) => {
                tried.push(format!("{}: {e}", name.display()));
                continue;
            }
        };
        let api = unsafe {
            let create = *lib
                .get::<Create>(b"opus_multistream_decoder_create\0")
                .map_err(|e| format!("{}: {e}", name.display()))?;
            let decode = *lib
                .get::<Decode>(b"opus_multistream_decode_float\0")
                .map_err(|e| format!("{}: {e}", name.display()))?;
            let destroy = *lib
                .get::<Destroy>(b"opus_multistream_decoder_destroy\0")
                .map_err(|e| format!("{}: {e}", name.display()))?;
            let strerror = *lib
                .get::<StrError>(b"opus_strerror\0")
                .map_err(|e| format!("{}: {e}", name.display()))?;
            Api {
                create,
                decode,
                destroy,
                strerror,
                _lib: lib,
            }
        };
        return Ok(api);
    }
    Err(format!(
        "decoding Opus needs libopus, which is not installed (Debian/Ubuntu: `apt install \
         libopus0`; macOS: `brew install opus`; or set TESSERA_LIBOPUS to the library file); \
         tried {}",
        tried.join("; ")
    ))
}

fn api() -> Result<&'static Api, String> {
    static API: OnceLock<Result<Api, String>> = OnceLock::new();
    API.get_or_init(load).as_ref().map_err(Clone::clone)
}

/// Whether libopus can be loaded on this machine (tests skip Opus where it cannot).
pub fn available() -> bool {
    api().is_ok()
}

/// One libopus multistream decoder at 48 kHz.
pub struct Decoder {
    api: &'static Api,
    state: *mut c_void,
    channels: usize,
    gain: f32,
    /// Vorbis → WAVE channel order (family 1 surround).
    order: Option<&'static [usize]>,
    buf: Vec<f32>,
    out: Vec<f32>,
}

impl Decoder {
    pub fn new(head: &OpusHead) -> Result<Self, String> {
        let api = api()?;
        let mut err: c_int = 0;
        // SAFETY: the mapping table holds `channels` bytes, as the call requires.
        let state = unsafe {
            (api.create)(
                RATE_HZ as i32,
                head.channels as c_int,
                head.streams as c_int,
                head.coupled as c_int,
                head.mapping.as_ptr(),
                &mut err,
            )
        };
        if state.is_null() || err != 0 {
            return Err(format!(
                "libopus refused the stream layout: {}",
                strerror(api, err)
            ));
        }
        Ok(Self {
            api,
            state,
            channels: head.channels,
            gain: 10f64.powf(head.gain_db / 20.0) as f32,
            order: (head.family == 1)
                .then(|| vorbis_to_wave(head.channels))
                .flatten(),
            buf: vec![0.0; MAX_FRAME * head.channels],
            out: Vec::with_capacity(MAX_FRAME * head.channels),
        })
    }

    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Decode one packet; returns its interleaved samples (valid until the next call).
    pub fn decode(&mut self, packet: &[u8]) -> Result<&[f32], String> {
        let len =
            i32::try_from(packet.len()).map_err(|_| "an Opus packet over 2 GiB".to_string())?;
        // SAFETY: `buf` holds MAX_FRAME frames of `channels` samples, the frame size passed.
        let n = unsafe {
            (self.api.decode)(
                self.state,
                packet.as_ptr(),
                len,
                self.buf.as_mut_ptr(),
                MAX_FRAME as c_int,
                0,
            )
        };
        if n < 0 {
            return Err(strerror(self.api, n));
        }
        let pcm = &mut self.buf[..n as usize * self.channels];
        if self.gain != 1.0 {
            pcm.iter_mut().for_each(|x| *x *= self.gain);
        }
        let Some(order) = self.order else {
            return Ok(pcm);
        };
        self.out.clear();
        for frame in pcm.chunks_exact(self.channels) {
            self.out.extend(order.iter().map(|&c| frame[c]));
        }
        Ok(&self.out)
    }
}

impl Drop for Decoder {
    fn drop(&mut self) {
        // SAFETY: `state` came from create and is destroyed once.
        unsafe { (self.api.destroy)(self.state) }
    }
}

fn strerror(api: &Api, code: c_int) -> String {
    // SAFETY: opus_strerror returns a static NUL-terminated string for any code.
    let s = unsafe { std::ffi::CStr::from_ptr((api.strerror)(code)) };
    s.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(channels: u8, family: u8, extra: &[u8]) -> Vec<u8> {
        let mut b = b"OpusHead".to_vec();
        b.extend([1, channels]);
        b.extend(312u16.to_le_bytes());
        b.extend(44_100u32.to_le_bytes());
        b.extend((-256i16).to_le_bytes());
        b.push(family);
        b.extend(extra);
        b
    }

    #[test]
    fn parses_family_0_and_1() {
        let h = OpusHead::parse(&head(2, 0, &[])).unwrap();
        assert_eq!(
            (h.channels, h.pre_skip, h.streams, h.coupled),
            (2, 312, 1, 1)
        );
        assert_eq!(h.gain_db, -1.0);
        assert_eq!(h.mapping, vec![0, 1]);
        let h = OpusHead::parse(&head(3, 1, &[2, 1, 0, 2, 1])).unwrap();
        assert_eq!((h.streams, h.coupled, h.mapping), (2, 1, vec![0, 2, 1]));
        assert_eq!(h.family, 1);
        // Every reorder is a permutation.
        for c in 3..=8 {
            if let Some(o) = vorbis_to_wave(c) {
                let mut s = o.to_vec();
                s.sort();
                assert_eq!(s, (0..c).collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn refuses_bad_heads() {
        for (b, what) in [
            (b"OpusHea".to_vec(), "missing"),
            (head(0, 0, &[]), "0 channels"),
            (head(3, 0, &[]), "family 0"),
            (head(3, 1, &[2, 1]), "channel table"),
            (head(2, 1, &[1, 2, 0, 1]), "2 coupled"),
            (head(2, 1, &[1, 0, 0, 7]), "stream channel 7"),
        ] {
            let e = OpusHead::parse(&b).unwrap_err();
            assert!(e.contains(what), "{e}");
        }
        let mut v2 = head(1, 0, &[]);
        v2[8] = 0x10;
        assert!(OpusHead::parse(&v2).unwrap_err().contains("version"));
    }
}
