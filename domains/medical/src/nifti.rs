//! NIfTI-1 and NIfTI-2 reading with a header parser of our own.
//!
//! Files: single-file `.nii` and `.nii.gz`, and `.hdr`/`.img` pairs (either half may be
//! gzipped: `.hdr.gz`/`.img.gz`). Compression is detected from the gzip magic bytes, not
//! the file name; the layout (single or pair) comes from the name. Both byte orders are
//! read: `sizeof_hdr` (bytes 0..4) is 348 for NIfTI-1 and 540 for NIfTI-2, and reads as a
//! byte-swapped 348 or 540 in a file of the other endianness.
//!
//! Header fields used (NIfTI-1 offsets / NIfTI-2 offsets, from `nifti1.h` and `nifti2.h`):
//! `sizeof_hdr` (0/0), `magic` (344 `"n+1\0"` or `"ni1\0"` / 4 `"n+2\0"` or `"ni2\0"` followed
//! by `"\r\n\032\n"`), `dim[8]` (40 i16 / 16 i64), `intent_code` (68 i16 / 504 i32),
//! `datatype` (70 i16 / 12 i16), `bitpix` (72 / 14), `pixdim[8]` (76 f32 / 104 f64),
//! `vox_offset` (108 f32 / 168 i64), `scl_slope`, `scl_inter` (112, 116 f32 / 176, 184 f64),
//! `xyzt_units` (123 u8 / 500 i32), `descrip[80]` (148 / 240), `qform_code`, `sform_code`
//! (252, 254 i16 / 344, 348 i32), `quatern_b,c,d`, `qoffset_x,y,z` (256.. f32 / 352.. f64),
//! `srow_x,y,z[4]` (280.. f32 / 400.. f64), `intent_name[16]` (328 / 508).
//!
//! Datatypes: uint8, int8, int16, uint16, int32, uint32, int64, uint64, float32, float64.
//! Complex, RGB/RGBA, float128 and binary give [`MedicalError::UnsupportedDatatype`].
//! Voxel values are scaled as `scl_slope * x + scl_inter` unless the slope is 0 or not
//! finite (then no scaling, as nibabel does); a finite slope with a non-finite intercept is
//! an error (as in nibabel). Scaling is computed in f64 and rounded once to f32.
//!
//! Robustness: every size the header declares is checked before anything is allocated.
//! For an uncompressed file, `vox_offset + voxels * bytes_per_voxel` must fit in the file;
//! a gzip stream must be able to hold the declared size (deflate expands at most ~1032:1,
//! so a larger claim is refused before anything is allocated), is decoded with a hard cap
//! at the declared size, in 256k-voxel chunks converted while the next chunk inflates; a
//! stream that ends early is [`MedicalError::Truncated`], and the gzip trailer (CRC-32 and
//! length) is checked after the voxel data, so a corrupt stream is [`MedicalError::Gzip`].
//! Nothing here panics on any input. [`check_file`] runs the same size checks over a whole
//! file without decoding it (a gzip stream is inflated to its end and counted, so its
//! trailer is always checked); [`crate::inspect::inspect`] calls it.
//!
//! Why not the `nifti` crate: it reads a gz file whole before checking the header against
//! the data (no cap), returns `ndarray` volumes we would copy again, and its errors do not
//! name the field. An own parser of two fixed layouts is ~300 lines and lets the data be
//! decoded straight into the f32 output on all cores (see ARCHITECTURE.md).

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::bufread::MultiGzDecoder;
use rayon::prelude::*;

use crate::error::MedicalError;
use crate::orient;
use crate::volume::{LabelMap, Provenance, Volume, Warning};

/// Deflate cannot compress better than about 1032:1.
const MAX_DEFLATE_RATIO: u64 = 1032;
/// Voxels converted per parallel task.
const BLOCK_VOXELS: usize = 1 << 16;
/// Voxels per gzip chunk (inflated while the previous one is converted).
const GZ_CHUNK_VOXELS: usize = 1 << 18;

/// NIfTI-1 (348-byte header) or NIfTI-2 (540-byte header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NiftiVersion {
    Nifti1,
    Nifti2,
}

impl NiftiVersion {
    /// `sizeof_hdr` of this version.
    pub fn header_len(self) -> usize {
        match self {
            NiftiVersion::Nifti1 => 348,
            NiftiVersion::Nifti2 => 540,
        }
    }
}

/// How a file is stored on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileFormat {
    pub version: NiftiVersion,
    /// `true` for a `.hdr`/`.img` pair (magic `ni1`/`ni2`), `false` for a single file.
    pub pair: bool,
    /// The header file is gzipped.
    pub header_gz: bool,
    /// The voxel data is gzipped (same as `header_gz` for a single file).
    pub data_gz: bool,
    pub big_endian: bool,
}

impl std::fmt::Display for FileFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = match self.version {
            NiftiVersion::Nifti1 => "NIfTI-1",
            NiftiVersion::Nifti2 => "NIfTI-2",
        };
        let layout = match (self.pair, self.header_gz, self.data_gz) {
            (false, false, _) => "single file (.nii)",
            (false, true, _) => "single file, gzipped (.nii.gz)",
            (true, false, false) => "pair (.hdr/.img)",
            (true, true, true) => "pair, gzipped (.hdr.gz/.img.gz)",
            (true, false, true) => "pair (.hdr/.img.gz)",
            (true, true, false) => "pair (.hdr.gz/.img)",
        };
        let e = if self.big_endian {
            "big-endian"
        } else {
            "little-endian"
        };
        write!(f, "{v}, {layout}, {e}")
    }
}

/// The voxel datatypes this reader decodes (`datatype` field codes in brackets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datatype {
    /// 2
    U8,
    /// 256
    I8,
    /// 4
    I16,
    /// 512
    U16,
    /// 8
    I32,
    /// 768
    U32,
    /// 1024
    I64,
    /// 1280
    U64,
    /// 16
    F32,
    /// 64
    F64,
}

impl Datatype {
    /// Map a `datatype` code; unsupported and unknown codes are errors naming the code.
    pub fn from_code(code: i32, path: &Path) -> Result<Self, MedicalError> {
        use Datatype::*;
        let unsupported = |name| MedicalError::UnsupportedDatatype {
            path: path.to_path_buf(),
            code,
            name,
        };
        Ok(match code {
            2 => U8,
            256 => I8,
            4 => I16,
            512 => U16,
            8 => I32,
            768 => U32,
            1024 => I64,
            1280 => U64,
            16 => F32,
            64 => F64,
            1 => return Err(unsupported("binary")),
            32 => return Err(unsupported("complex64")),
            128 => return Err(unsupported("RGB24")),
            1536 => return Err(unsupported("float128")),
            1792 => return Err(unsupported("complex128")),
            2048 => return Err(unsupported("complex256")),
            2304 => return Err(unsupported("RGBA32")),
            0 => return Err(unsupported("DT_UNKNOWN")),
            _ => return Err(unsupported("not a NIfTI datatype code")),
        })
    }

    /// The NIfTI `datatype` code.
    pub fn code(self) -> i32 {
        use Datatype::*;
        match self {
            U8 => 2,
            I8 => 256,
            I16 => 4,
            U16 => 512,
            I32 => 8,
            U32 => 768,
            I64 => 1024,
            U64 => 1280,
            F32 => 16,
            F64 => 64,
        }
    }

    /// numpy-style name: `"uint8"`, `"int16"`, `"float32"`, ...
    pub fn name(self) -> &'static str {
        use Datatype::*;
        match self {
            U8 => "uint8",
            I8 => "int8",
            I16 => "int16",
            U16 => "uint16",
            I32 => "int32",
            U32 => "uint32",
            I64 => "int64",
            U64 => "uint64",
            F32 => "float32",
            F64 => "float64",
        }
    }

    /// Bytes per voxel.
    pub fn size(self) -> usize {
        use Datatype::*;
        match self {
            U8 | I8 => 1,
            I16 | U16 => 2,
            I32 | U32 | F32 => 4,
            I64 | U64 | F64 => 8,
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, Datatype::F32 | Datatype::F64)
    }
}

/// A parsed and validated NIfTI header (both versions widened to the NIfTI-2 types).
#[derive(Debug, Clone, PartialEq)]
pub struct NiftiHeader {
    /// The header file (`.nii`, `.nii.gz`, `.hdr` or `.hdr.gz`).
    pub path: PathBuf,
    /// The file holding the voxels (same as `path` for a single file).
    pub data_path: PathBuf,
    pub format: FileFormat,
    /// `dim[0]` is the number of dimensions (1..=7), `dim[1..=dim[0]]` are all >= 1.
    pub dim: [i64; 8],
    /// `pixdim[1..=3]` are finite and > 0 for the axes present; `pixdim[0]` is qfac.
    pub pixdim: [f64; 8],
    pub datatype: Datatype,
    pub bitpix: i32,
    /// Byte offset of the voxels in `data_path`.
    pub vox_offset: u64,
    pub scl_slope: f64,
    pub scl_inter: f64,
    pub qform_code: i32,
    pub sform_code: i32,
    /// `quatern_b, quatern_c, quatern_d`.
    pub quatern_bcd: [f64; 3],
    /// `qoffset_x, qoffset_y, qoffset_z`.
    pub qoffset: [f64; 3],
    /// `srow_x, srow_y, srow_z`.
    pub srow: [[f64; 4]; 3],
    pub intent_code: i32,
    pub intent_name: String,
    pub descrip: String,
    pub xyzt_units: i32,
}

impl NiftiHeader {
    /// Spatial size `[x, y, z]` (`dim[1..=3]`, 1 for absent axes).
    pub fn dims(&self) -> [usize; 3] {
        let d = |i: usize| {
            if i <= self.dim[0] as usize {
                self.dim[i] as usize
            } else {
                1
            }
        };
        [d(1), d(2), d(3)]
    }

    /// Product of `dim[4..=7]` (time points, vector components, ...); 1 for a 3-D image.
    pub fn channels(&self) -> usize {
        (4..=self.dim[0] as usize)
            .map(|i| self.dim[i] as usize)
            .product()
    }

    /// Number of voxels over all dimensions.
    pub fn n_voxels(&self) -> usize {
        let [x, y, z] = self.dims();
        x * y * z * self.channels()
    }

    /// Voxel data bytes the header declares.
    pub fn data_bytes(&self) -> u64 {
        self.n_voxels() as u64 * self.datatype.size() as u64
    }

    /// `(slope, intercept)` to apply, or `None` when the slope is 0 or not finite.
    pub fn scaling(&self) -> Option<(f64, f64)> {
        (self.scl_slope != 0.0 && self.scl_slope.is_finite())
            .then_some((self.scl_slope, self.scl_inter))
            .filter(|&(s, i)| !(s == 1.0 && i == 0.0))
    }

    /// What the voxel decoder needs from this header.
    pub(crate) fn layout(&self) -> RawLayout {
        RawLayout {
            path: self.data_path.clone(),
            offset: self.vox_offset,
            shape: self.dim[1..=self.dim[0] as usize]
                .iter()
                .map(|&d| d as usize)
                .collect(),
            datatype: self.datatype,
            big_endian: self.format.big_endian,
            scale: self.scaling(),
        }
    }
}

/// Where raw voxels lie and how they are stored: all the shared decoder needs from a
/// header of any format (NIfTI, NRRD, MetaImage).
#[derive(Debug, Clone)]
pub(crate) struct RawLayout {
    /// The file holding the voxels.
    pub path: PathBuf,
    /// Bytes before the voxels: in the file, or in the inflated stream.
    pub offset: u64,
    /// The declared shape, fastest axis first (messages only).
    pub shape: Vec<usize>,
    pub datatype: Datatype,
    pub big_endian: bool,
    /// `(slope, intercept)` applied in f64.
    pub scale: Option<(f64, f64)>,
}

impl RawLayout {
    pub fn n_voxels(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn data_bytes(&self) -> u64 {
        self.n_voxels() as u64 * self.datatype.size() as u64
    }
}

/// How a data stream is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    None,
    Gzip,
    Zlib,
    /// NRRD's bzip2 encoding.
    Bzip2,
    /// NRRD's `hex` encoding: each byte as two hexadecimal digits, whitespace anywhere.
    Hex,
}

/// Read the voxels `layout` describes. Uncompressed voxels lie at `layout.offset` in the
/// file; a compressed stream starts at byte `stream_start` of the file and `layout.offset`
/// bytes of its inflated data are skipped. The size checks and the parallel conversion are
/// those of the NIfTI reader.
pub(crate) fn read_layout(
    layout: &RawLayout,
    stream_start: u64,
    compression: Compression,
) -> Result<(Vec<f32>, usize), MedicalError> {
    match compression {
        Compression::Bzip2 => return read_bzip2(layout, stream_start),
        Compression::Hex => return read_hex(layout, stream_start),
        _ => {}
    }
    let mut src = Source::open_as(&layout.path, stream_start, compression)?;
    read_data(&mut src, 0, layout)
}

/// The file of `layout`, positioned at byte `at`.
fn open_at(layout: &RawLayout, at: u64) -> Result<File, MedicalError> {
    use std::io::Seek;
    let io = |source| MedicalError::Io {
        path: layout.path.clone(),
        source,
    };
    let mut file = File::open(&layout.path).map_err(io)?;
    file.seek(std::io::SeekFrom::Start(at)).map_err(io)?;
    Ok(file)
}

/// Voxels from a decoded stream held in memory (`layout.offset` bytes skipped); a stream
/// shorter than the declared voxels is [`MedicalError::Truncated`] naming its `kind`.
fn voxels_from_buffer(
    layout: &RawLayout,
    buf: &[u8],
    kind: &str,
) -> Result<(Vec<f32>, usize), MedicalError> {
    let want = layout.offset.saturating_add(layout.data_bytes());
    if (buf.len() as u64) < want {
        return Err(short_stream(
            layout,
            (buf.len() as u64).saturating_sub(layout.offset),
            kind,
        ));
    }
    let mut src = Source::Plain(Box::new(buf));
    read_data(&mut src, 0, layout)
}

/// bzip2 can compress far beyond deflate's 1032:1, so its size cannot be bounded from the
/// compressed length: the stream is inflated into a buffer that grows only with the data
/// that arrives (at most the declared size), and the voxels are converted from it.
fn read_bzip2(layout: &RawLayout, stream_start: u64) -> Result<(Vec<f32>, usize), MedicalError> {
    let path = &layout.path;
    let mut file = open_at(layout, stream_start)?;
    let mut magic = [0u8; 3];
    if file.read_exact(&mut magic).is_err() || &magic != b"BZh" {
        return Err(gz_err(
            path,
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("no bzip2 magic bytes (BZh) at byte {stream_start}"),
            ),
            "voxel data",
            "bzip2",
        ));
    }
    // The magic bytes read, then the rest of the stream: no second seek.
    let stream = (&magic[..]).chain(BufReader::with_capacity(1 << 16, file));
    let want = layout.offset.saturating_add(layout.data_bytes());
    let mut buf = Vec::new();
    bzip2::read::MultiBzDecoder::new(stream)
        .take(want)
        .read_to_end(&mut buf)
        .map_err(|e| gz_err(path, e, "voxel data", "bzip2"))?;
    voxels_from_buffer(layout, &buf, "bzip2")
}

/// Hex text from byte `stream_start` of the file: pairs of digits (either case) with any
/// whitespace between, decoded to bytes, `layout.offset` of them skipped (NRRD's `byte
/// skip` counts decoded bytes), then converted as raw voxels. Only as many digits as the
/// declared voxels need are read, so the buffer is bounded by the header, checked against
/// the file's length first.
fn read_hex(layout: &RawLayout, stream_start: u64) -> Result<(Vec<f32>, usize), MedicalError> {
    let path = &layout.path;
    let io = |source| MedicalError::Io {
        path: path.clone(),
        source,
    };
    let want = layout.offset.saturating_add(layout.data_bytes());
    let file_len = std::fs::metadata(path).map_err(io)?.len();
    let available = file_len.saturating_sub(stream_start) / 2;
    if available < want {
        return Err(short_stream(
            layout,
            available.saturating_sub(layout.offset),
            "hex",
        ));
    }
    let mut reader = BufReader::with_capacity(1 << 16, open_at(layout, stream_start)?);
    let mut buf = Vec::with_capacity(want as usize);
    let mut high: Option<u8> = None;
    let mut at = stream_start;
    while (buf.len() as u64) < want {
        let chunk = reader.fill_buf().map_err(io)?;
        if chunk.is_empty() {
            break;
        }
        let mut used = 0;
        for &c in chunk {
            used += 1;
            let v = match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                b'A'..=b'F' => c - b'A' + 10,
                c if c.is_ascii_whitespace() => continue,
                c => {
                    return Err(MedicalError::BadHeader {
                        path: path.clone(),
                        field: "encoding",
                        reason: format!(
                            "hex data holds {:?} at byte {}, not a hexadecimal digit",
                            c as char,
                            at + used as u64 - 1
                        ),
                    })
                }
            };
            match high.take() {
                None => high = Some(v),
                Some(h) => {
                    buf.push(h << 4 | v);
                    if buf.len() as u64 == want {
                        break;
                    }
                }
            }
        }
        at += used as u64;
        reader.consume(used);
    }
    voxels_from_buffer(layout, &buf, "hex")
}

// ---------------------------------------------------------------------------------------
// Public entry points

/// Read only the header (for a gzipped file, only the header is decompressed).
pub fn read_header(path: &Path) -> Result<NiftiHeader, MedicalError> {
    let loc = locate(path)?;
    let mut src = Source::open(&loc.header)?;
    let (mut h, _) = read_header_from(&mut src, &loc)?;
    if let Some(img) = &loc.data {
        h.format.data_gz = Source::open(img)?.is_gz();
    }
    Ok(h)
}

/// What [`check_file`] verified: the header, and the size of the data behind it.
#[derive(Debug, Clone, PartialEq)]
pub struct FileCheck {
    /// The parsed header; `header.data_path` is the file the sizes below describe.
    pub header: NiftiHeader,
    /// Byte offset of the voxels in the data file, or in its inflated stream
    /// (`vox_offset`).
    pub data_offset: u64,
    /// Voxel bytes the header declares: every voxel of every channel times the bytes per
    /// voxel.
    pub declared_bytes: u64,
    /// Bytes the data holds: the file's length, or for gzip the inflated length of the
    /// whole stream (header and extensions included for a single file).
    pub present_bytes: u64,
    /// Size of the data file on disk (the compressed size for gzip).
    pub file_bytes: u64,
}

impl FileCheck {
    /// Bytes after the declared voxels: allowed and ignored, as nibabel and
    /// [`read_volume`] do.
    pub fn trailing_bytes(&self) -> u64 {
        self.present_bytes
            .saturating_sub(self.data_offset.saturating_add(self.declared_bytes))
    }
}

/// Check a whole file against its header without decoding the voxels.
///
/// - Uncompressed data (`.nii`, `.img`): the file must hold `vox_offset` plus the
///   declared voxel bytes (every channel), as [`read_volume`] requires.
/// - Gzipped data (`.nii.gz`, `.img.gz`): the whole stream is inflated through one fixed
///   64 KiB buffer and counted. A stream cut short is [`MedicalError::Truncated`]; corrupt
///   deflate data or a CRC-32/length trailer that does not match is
///   [`MedicalError::Gzip`]; a complete stream holding fewer bytes than declared is
///   [`MedicalError::Truncated`] naming both sizes. A gzipped `.hdr.gz` of a pair is
///   inflated to its end too, so its trailer is checked as well.
///
/// Bytes after the declared voxels are allowed ([`FileCheck::trailing_bytes`]): nibabel
/// and [`read_volume`] ignore them. Nothing is allocated from a size the header declares.
/// Header errors are those of [`read_header`].
///
/// Whenever [`read_volume`] would fail on the size or integrity of the data, this fails
/// too. It is stricter in one case only: [`read_volume`] reads at most 64 KiB past the
/// voxels of a gzip stream, so it verifies the trailer of a stream with more trailing data
/// than that only here.
pub fn check_file(path: &Path) -> Result<FileCheck, MedicalError> {
    let loc = locate(path)?;
    let mut src = Source::open(&loc.header)?;
    let (mut h, consumed) = read_header_from(&mut src, &loc)?;
    match &loc.data {
        None => check_data(&mut src, consumed, h),
        Some(img) => {
            if let Source::Gz { dec, .. } = &mut src {
                count_to_end(dec)
                    .map_err(|(_, e)| gz_err(&loc.header, e, "header file", "gzip"))?;
            }
            let mut img = Source::open(img)?;
            h.format.data_gz = img.is_gz();
            check_data(&mut img, 0, h)
        }
    }
}

/// The size checks of [`check_file`] on the data source; `consumed` bytes of `src` were
/// already read (the header of a single file).
fn check_data(
    src: &mut Source,
    consumed: u64,
    header: NiftiHeader,
) -> Result<FileCheck, MedicalError> {
    let h = &header.layout();
    let (present_bytes, file_bytes) = match src {
        Source::Plain(access) => {
            if !fits(h, access.len()) {
                return Err(short_file(h, access.len()));
            }
            (access.len(), access.len())
        }
        Source::Gz {
            dec,
            compressed_len,
            kind,
        } => {
            let total = match count_to_end(dec) {
                Ok(n) => consumed + n,
                Err((n, e)) => {
                    let at = consumed + n;
                    let what = if at < h.offset {
                        "header extensions"
                    } else if at - h.offset < h.data_bytes() {
                        "voxel data"
                    } else {
                        "end of the stream"
                    };
                    return Err(match e.kind() {
                        std::io::ErrorKind::UnexpectedEof => MedicalError::Truncated {
                            path: h.path.clone(),
                            reason: format!(
                                "the {kind} stream ends early, inside the {what}, after {at} \
                                 inflated bytes; {} at offset {}",
                                declared_text(h),
                                h.offset
                            ),
                        },
                        _ => gz_err(&h.path, e, what, kind),
                    });
                }
            };
            if total < h.offset {
                return Err(stream_before_offset(h, total, kind));
            }
            if total - h.offset < h.data_bytes() {
                return Err(short_stream(h, total - h.offset, kind));
            }
            (total, *compressed_len)
        }
    };
    Ok(FileCheck {
        data_offset: h.offset,
        declared_bytes: h.data_bytes(),
        present_bytes,
        file_bytes,
        header,
    })
}

/// Read `r` to its end through one fixed buffer; returns the byte count, or the error with
/// the bytes read before it.
fn count_to_end(r: &mut impl Read) -> Result<u64, (u64, std::io::Error)> {
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        match r.read(&mut buf) {
            Ok(0) => return Ok(n),
            Ok(k) => n += k as u64,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err((n, e)),
        }
    }
}

/// Read an image as f32 (scaled by `scl_slope`/`scl_inter`), oriented as stored.
///
/// The affine is chosen by [`orient::world_from_voxel`]; NaN/infinite voxels are kept and
/// counted in a [`Warning::NonFiniteVoxels`].
pub fn read_volume(path: &Path) -> Result<Volume, MedicalError> {
    let loc = locate(path)?;
    let mut src = Source::open(&loc.header)?;
    let (mut h, consumed) = read_header_from(&mut src, &loc)?;
    let (data, non_finite) = match &loc.data {
        None => read_data(&mut src, consumed, &h.layout())?,
        Some(img) => {
            let mut img = Source::open(img)?;
            h.format.data_gz = img.is_gz();
            read_data(&mut img, 0, &h.layout())?
        }
    };
    build_volume(h, data, non_finite)
}

/// Read a single-file NIfTI (`.nii` bytes, gzipped or not) held in memory.
/// `path_for_errors` only labels errors and the header. Never panics, whatever the bytes.
pub fn read_volume_bytes(bytes: &[u8], path_for_errors: &Path) -> Result<Volume, MedicalError> {
    let loc = Location {
        header: path_for_errors.to_path_buf(),
        data: None,
    };
    let mut src = Source::from_bytes(bytes);
    let (h, consumed) = read_header_from(&mut src, &loc)?;
    let (data, non_finite) = read_data(&mut src, consumed, &h.layout())?;
    build_volume(h, data, non_finite)
}

/// Read a `.hdr`/`.img` pair held in memory (either half may be gzipped).
pub fn read_pair_bytes(
    hdr: &[u8],
    img: &[u8],
    path_for_errors: &Path,
) -> Result<Volume, MedicalError> {
    let loc = Location {
        header: path_for_errors.to_path_buf(),
        data: Some(path_for_errors.with_extension("img")),
    };
    let (mut h, _) = read_header_from(&mut Source::from_bytes(hdr), &loc)?;
    let mut img = Source::from_bytes(img);
    h.format.data_gz = img.is_gz();
    let (data, non_finite) = read_data(&mut img, 0, &h.layout())?;
    build_volume(h, data, non_finite)
}

/// Read a label map: values are read like [`read_volume`] (scaling applied if the header
/// asks for it), then must be integers in `0..=65535` (within 1e-3); anything else is
/// [`MedicalError::NotLabels`] naming the first offending voxel.
pub fn read_labels(path: &Path) -> Result<LabelMap, MedicalError> {
    labels_from_volume(read_volume(path)?)
}

/// Convert an already read volume to a label map (see [`read_labels`]).
pub fn labels_from_volume(v: Volume) -> Result<LabelMap, MedicalError> {
    let bad = v
        .data
        .par_iter()
        .position_first(|&x| !((0.0..=65535.0).contains(&x) && (x - x.round()).abs() <= 1e-3));
    if let Some(i) = bad {
        let [nx, ny, nz] = v.dims;
        let (x, y, z, c) = (i % nx, i / nx % ny, i / (nx * ny) % nz, i / (nx * ny * nz));
        return Err(MedicalError::NotLabels {
            path: v.source.path.clone(),
            reason: format!(
                "voxel (x={x}, y={y}, z={z}, channel={c}) is {}, expected an integer in 0..=65535",
                v.data[i]
            ),
        });
    }
    let data = v.data.par_iter().map(|&x| x.round() as u16).collect();
    Ok(Volume {
        data,
        dims: v.dims,
        channels: v.channels,
        spacing_mm: v.spacing_mm,
        world_from_voxel: v.world_from_voxel,
        source: v.source,
        warnings: v.warnings,
    })
}

fn build_volume(h: NiftiHeader, data: Vec<f32>, non_finite: usize) -> Result<Volume, MedicalError> {
    let (world_from_voxel, warning) = orient::world_from_voxel(&h)?;
    let spacing_mm = orient::voxel_sizes(&world_from_voxel);
    let mut warnings: Vec<Warning> = warning.into_iter().collect();
    if non_finite > 0 {
        warnings.push(Warning::NonFiniteVoxels { count: non_finite });
    }
    Ok(Volume {
        data,
        dims: h.dims(),
        channels: h.channels(),
        spacing_mm,
        world_from_voxel,
        source: Provenance {
            path: h.path.clone(),
            format: h.format.to_string(),
            datatype: h.datatype,
            scaling: h.scaling(),
        },
        warnings,
    })
}

// ---------------------------------------------------------------------------------------
// Locating the files

struct Location {
    header: PathBuf,
    /// The `.img` of a pair; `None` for a single file.
    data: Option<PathBuf>,
}

fn with_suffix(path: &Path, strip: usize, suffix: &str) -> PathBuf {
    let s = path.as_os_str().to_string_lossy();
    PathBuf::from(format!("{}{suffix}", &s[..s.len() - strip]))
}

/// Single file unless the name ends in `.hdr`, `.img` (optionally `.gz`).
fn locate(path: &Path) -> Result<Location, MedicalError> {
    let name = path.as_os_str().to_string_lossy().to_ascii_lowercase();
    let first_existing = |cands: [PathBuf; 2]| -> Result<PathBuf, MedicalError> {
        cands
            .iter()
            .find(|p| p.is_file())
            .cloned()
            .ok_or_else(|| MedicalError::Io {
                path: cands[0].clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!(
                        "the other half of the .hdr/.img pair {} is missing (also tried {})",
                        path.display(),
                        cands[1].display()
                    ),
                ),
            })
    };
    let (strip, other) = if name.ends_with(".hdr.gz") || name.ends_with(".img.gz") {
        (7, [".img.gz", ".img", ".hdr.gz", ".hdr"])
    } else if name.ends_with(".hdr") || name.ends_with(".img") {
        (4, [".img", ".img.gz", ".hdr", ".hdr.gz"])
    } else {
        return Ok(Location {
            header: path.to_path_buf(),
            data: None,
        });
    };
    let is_hdr = name.trim_end_matches(".gz").ends_with(".hdr");
    let cands = |a: &str, b: &str| [with_suffix(path, strip, a), with_suffix(path, strip, b)];
    if is_hdr {
        let img = first_existing(cands(other[0], other[1]))?;
        Ok(Location {
            header: path.to_path_buf(),
            data: Some(img),
        })
    } else {
        let hdr = first_existing(cands(other[2], other[3]))?;
        Ok(Location {
            header: hdr,
            data: Some(path.to_path_buf()),
        })
    }
}

// ---------------------------------------------------------------------------------------
// Byte sources

/// Positioned reads from a file or a slice; `Sync` so blocks can be read in parallel.
trait RandomAccess: Sync + Send {
    fn len(&self) -> u64;
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()>;
}

impl RandomAccess for &[u8] {
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let src = usize::try_from(offset)
            .ok()
            .and_then(|s| self.get(s..s.checked_add(buf.len())?));
        match src {
            Some(src) => {
                buf.copy_from_slice(src);
                Ok(())
            }
            None => Err(std::io::ErrorKind::UnexpectedEof.into()),
        }
    }
}

struct FileAccess {
    file: File,
    len: u64,
}

impl RandomAccess for FileAccess {
    fn len(&self) -> u64 {
        self.len
    }
    #[cfg(unix)]
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(&self.file, buf, offset)
    }
    #[cfg(windows)]
    fn read_at(&self, mut offset: u64, mut buf: &mut [u8]) -> std::io::Result<()> {
        while !buf.is_empty() {
            match std::os::windows::fs::FileExt::seek_read(&self.file, buf, offset)? {
                0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                n => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
            }
        }
        Ok(())
    }
}

/// Where bytes come from: random access for plain data, a stream for gzip.
enum Source<'a> {
    Plain(Box<dyn RandomAccess + 'a>),
    Gz {
        dec: Box<dyn Read + Send + 'a>,
        compressed_len: u64,
        /// `"gzip"` or `"zlib"`, for messages.
        kind: &'static str,
    },
}

fn is_gzip(first: &[u8]) -> bool {
    first.starts_with(&[0x1f, 0x8b])
}

impl<'a> Source<'a> {
    fn from_bytes(bytes: &'a [u8]) -> Self {
        if is_gzip(bytes) {
            Source::Gz {
                dec: Box::new(MultiGzDecoder::new(bytes)),
                compressed_len: bytes.len() as u64,
                kind: "gzip",
            }
        } else {
            Source::Plain(Box::new(bytes))
        }
    }

    /// Open a file, detecting gzip from its magic bytes.
    fn open(path: &Path) -> Result<Source<'static>, MedicalError> {
        Self::open_as(path, 0, Compression::None)
    }

    /// Open a file whose data starts at byte `start`: a gzip stream there (found by its
    /// magic bytes whatever `compression` says), a zlib stream when `compression` is
    /// [`Compression::Zlib`], otherwise positioned reads of the whole file.
    fn open_as(
        path: &Path,
        start: u64,
        compression: Compression,
    ) -> Result<Source<'static>, MedicalError> {
        let io = |source| MedicalError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let access = FileAccess { file, len };
        let mut magic = [0u8; 2];
        let gzip = len >= start.saturating_add(2)
            && access.read_at(start, &mut magic).is_ok()
            && is_gzip(&magic);
        if !gzip && compression != Compression::Zlib {
            if compression == Compression::Gzip {
                return Err(MedicalError::Gzip {
                    path: path.to_path_buf(),
                    kind: "gzip",
                    what: "voxel data",
                    source: std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("no gzip magic bytes (1f 8b) at byte {start}"),
                    ),
                });
            }
            return Ok(Source::Plain(Box::new(access)));
        }
        let mut file = access.file;
        std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(start)).map_err(io)?;
        let reader = BufReader::with_capacity(1 << 16, file);
        let compressed_len = len.saturating_sub(start);
        Ok(if gzip {
            Source::Gz {
                dec: Box::new(MultiGzDecoder::new(reader)),
                compressed_len,
                kind: "gzip",
            }
        } else {
            Source::Gz {
                dec: Box::new(flate2::bufread::ZlibDecoder::new(reader)),
                compressed_len,
                kind: "zlib",
            }
        })
    }

    fn is_gz(&self) -> bool {
        matches!(self, Source::Gz { .. })
    }
}

/// Map a decoder error: early end is truncation, bad data is a corrupt stream.
fn gz_err(path: &Path, e: std::io::Error, what: &'static str, kind: &'static str) -> MedicalError {
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof => MedicalError::Truncated {
            path: path.to_path_buf(),
            reason: format!("gzip stream ends inside the {what}"),
        },
        std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData => MedicalError::Gzip {
            path: path.to_path_buf(),
            kind,
            what,
            source: e,
        },
        _ => MedicalError::Io {
            path: path.to_path_buf(),
            source: e,
        },
    }
}

/// Read up to `buf.len()` bytes from a stream; returns how many arrived before its end.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

// ---------------------------------------------------------------------------------------
// Header

/// Read and validate the header; returns it and the number of bytes consumed.
fn read_header_from(src: &mut Source, loc: &Location) -> Result<(NiftiHeader, u64), MedicalError> {
    let path = &loc.header;
    let mut buf = [0u8; 540];
    let got = match src {
        Source::Plain(a) => {
            let n = a.len().min(540) as usize;
            a.read_at(0, &mut buf[..n]).map_err(|e| MedicalError::Io {
                path: path.clone(),
                source: e,
            })?;
            n
        }
        Source::Gz { dec, .. } => {
            let n = read_full(dec, &mut buf[..4]).map_err(|e| gz_err(path, e, "header", "gzip"))?;
            match n {
                4 => match header_len(&buf, path) {
                    Ok(len) => {
                        4 + read_full(dec, &mut buf[4..len])
                            .map_err(|e| gz_err(path, e, "header", "gzip"))?
                    }
                    Err(e) => return Err(e),
                },
                n => n,
            }
        }
    };
    if got < 4 {
        return Err(MedicalError::NotNifti {
            path: path.clone(),
            reason: format!("only {got} bytes, too short to hold sizeof_hdr"),
        });
    }
    let len = header_len(&buf, path)?;
    if got < len {
        return Err(MedicalError::Truncated {
            path: path.clone(),
            reason: format!("the file ends inside the header: {got} of {len} bytes"),
        });
    }
    let h = parse_header(&buf[..len], loc, src.is_gz())?;
    Ok((h, len as u64))
}

/// `sizeof_hdr`: 348 or 540, in either byte order.
fn header_len(b: &[u8], path: &Path) -> Result<usize, MedicalError> {
    let raw = [b[0], b[1], b[2], b[3]];
    match (i32::from_le_bytes(raw), i32::from_be_bytes(raw)) {
        (348, _) | (_, 348) => Ok(348),
        (540, _) | (_, 540) => Ok(540),
        (le, be) => Err(MedicalError::NotNifti {
            path: path.to_path_buf(),
            reason: format!(
                "sizeof_hdr is {le} (little-endian) / {be} (big-endian), expected 348 (NIfTI-1) or 540 (NIfTI-2)"
            ),
        }),
    }
}

/// Fixed-offset field access in one byte order. Offsets are constants inside the header
/// length the caller checked.
struct Fields<'a> {
    b: &'a [u8],
    be: bool,
}

impl Fields<'_> {
    fn arr<const N: usize>(&self, off: usize) -> [u8; N] {
        let mut a = [0u8; N];
        a.copy_from_slice(&self.b[off..off + N]);
        if self.be {
            a.reverse();
        }
        a
    }
    fn i16(&self, off: usize) -> i64 {
        i16::from_le_bytes(self.arr(off)).into()
    }
    fn i32(&self, off: usize) -> i64 {
        i32::from_le_bytes(self.arr(off)).into()
    }
    fn i64(&self, off: usize) -> i64 {
        i64::from_le_bytes(self.arr(off))
    }
    fn f32(&self, off: usize) -> f64 {
        f32::from_le_bytes(self.arr(off)).into()
    }
    fn f64(&self, off: usize) -> f64 {
        f64::from_le_bytes(self.arr(off))
    }
    fn text(&self, off: usize, n: usize) -> String {
        let s = &self.b[off..off + n];
        let end = s.iter().position(|&c| c == 0).unwrap_or(n);
        String::from_utf8_lossy(&s[..end]).trim_end().to_string()
    }
}

fn parse_header(b: &[u8], loc: &Location, gz: bool) -> Result<NiftiHeader, MedicalError> {
    let path = &loc.header;
    let bad = |field: &'static str, reason: String| MedicalError::BadHeader {
        path: path.clone(),
        field,
        reason,
    };
    let v1 = b.len() == 348;
    let be = i32::from_le_bytes([b[0], b[1], b[2], b[3]]) != b.len() as i32;
    let f = Fields { b, be };
    let version = if v1 {
        NiftiVersion::Nifti1
    } else {
        NiftiVersion::Nifti2
    };

    // magic
    let (magic, single, pair) = if v1 {
        (&b[344..348], &b"n+1\0"[..], &b"ni1\0"[..])
    } else {
        (&b[4..8], &b"n+2\0"[..], &b"ni2\0"[..])
    };
    let is_pair = if magic == single {
        false
    } else if magic == pair {
        true
    } else {
        return Err(MedicalError::NotNifti {
            path: path.clone(),
            reason: format!(
                "magic is {:?}, expected {:?} or {:?} (ANALYZE 7.5 files are not read)",
                String::from_utf8_lossy(magic),
                String::from_utf8_lossy(&single[..3]),
                String::from_utf8_lossy(&pair[..3])
            ),
        });
    };
    if !v1 && &b[8..12] != b"\r\n\x1a\n" {
        return Err(MedicalError::NotNifti {
            path: path.clone(),
            reason: "NIfTI-2 magic is not followed by \\r\\n\\032\\n (file mangled by a text-mode transfer?)".into(),
        });
    }
    if is_pair != loc.data.is_some() {
        return Err(bad(
            "magic",
            if is_pair {
                "magic says .hdr/.img pair but the file is a single file (name it .hdr)".into()
            } else {
                "magic says single file but the file was opened as a .hdr/.img pair".into()
            },
        ));
    }

    // dim
    let mut dim = [0i64; 8];
    for (i, d) in dim.iter_mut().enumerate() {
        *d = if v1 {
            f.i16(40 + 2 * i)
        } else {
            f.i64(16 + 8 * i)
        };
    }
    if !(1..=7).contains(&dim[0]) {
        return Err(bad("dim", format!("dim[0] is {}, expected 1..=7", dim[0])));
    }
    let nd = dim[0] as usize;
    if let Some(i) = (1..=nd).find(|&i| dim[i] < 1) {
        return Err(bad("dim", format!("dim[{i}] is {}, expected >= 1", dim[i])));
    }
    let mut n_voxels: u64 = 1;
    for &d in &dim[1..=nd] {
        n_voxels = n_voxels
            .checked_mul(d as u64)
            .filter(|&n| n <= isize::MAX as u64 / 8)
            .ok_or_else(|| {
                bad(
                    "dim",
                    format!("{:?} overflows the voxel count", &dim[1..=nd]),
                )
            })?;
    }

    // datatype
    let code = if v1 { f.i16(70) } else { f.i16(12) } as i32;
    let datatype = Datatype::from_code(code, path)?;
    let bitpix = if v1 { f.i16(72) } else { f.i16(14) } as i32;

    // pixdim
    let mut pixdim = [0f64; 8];
    for (i, p) in pixdim.iter_mut().enumerate() {
        *p = if v1 {
            f.f32(76 + 4 * i)
        } else {
            f.f64(104 + 8 * i)
        };
    }
    for (i, &p) in pixdim.iter().enumerate().take(nd.min(3) + 1).skip(1) {
        if !(p.is_finite() && p > 0.0) {
            return Err(bad(
                "pixdim",
                format!(
                    "pixdim[{i}] (voxel size along axis {i}) is {p}, expected a finite value > 0"
                ),
            ));
        }
    }
    for p in pixdim.iter_mut().take(4).skip(nd + 1) {
        if !(p.is_finite() && *p > 0.0) {
            *p = 1.0; // absent axis: any positive size works
        }
    }

    // vox_offset
    let vox_offset = if v1 { f.f32(108) } else { f.i64(168) as f64 };
    if !(vox_offset.is_finite() && vox_offset >= 0.0 && vox_offset.fract() == 0.0) {
        return Err(bad(
            "vox_offset",
            format!("{vox_offset} is not a non-negative integer"),
        ));
    }
    let vox_offset = vox_offset as u64;
    if !is_pair && vox_offset < b.len() as u64 {
        return Err(bad(
            "vox_offset",
            format!("{vox_offset} lies inside the {}-byte header", b.len()),
        ));
    }

    // scaling
    let (scl_slope, scl_inter) = if v1 {
        (f.f32(112), f.f32(116))
    } else {
        (f.f64(176), f.f64(184))
    };
    if scl_slope != 0.0 && scl_slope.is_finite() && !scl_inter.is_finite() {
        return Err(bad(
            "scl_inter",
            format!("{scl_inter} with a valid scl_slope {scl_slope}"),
        ));
    }

    let (qform_code, sform_code) = if v1 {
        (f.i16(252), f.i16(254))
    } else {
        (f.i32(344), f.i32(348))
    };
    let q = |i: usize| {
        if v1 {
            f.f32(256 + 4 * i)
        } else {
            f.f64(352 + 8 * i)
        }
    };
    let mut srow = [[0f64; 4]; 3];
    for (r, row) in srow.iter_mut().enumerate() {
        for (c, x) in row.iter_mut().enumerate() {
            *x = if v1 {
                f.f32(280 + 16 * r + 4 * c)
            } else {
                f.f64(400 + 32 * r + 8 * c)
            };
        }
    }
    let header_gz = gz;
    Ok(NiftiHeader {
        path: path.clone(),
        data_path: loc.data.clone().unwrap_or_else(|| path.clone()),
        format: FileFormat {
            version,
            pair: is_pair,
            header_gz,
            data_gz: header_gz, // set from the .img by the caller for pairs
            big_endian: be,
        },
        dim,
        pixdim,
        datatype,
        bitpix,
        vox_offset,
        scl_slope,
        scl_inter,
        qform_code: qform_code as i32,
        sform_code: sform_code as i32,
        quatern_bcd: [q(0), q(1), q(2)],
        qoffset: [q(3), q(4), q(5)],
        srow,
        intent_code: if v1 { f.i16(68) } else { f.i32(504) } as i32,
        intent_name: if v1 { f.text(328, 16) } else { f.text(508, 16) },
        descrip: if v1 { f.text(148, 80) } else { f.text(240, 80) },
        xyzt_units: if v1 { i64::from(b[123]) } else { f.i32(500) } as i32,
    })
}

// ---------------------------------------------------------------------------------------
// Voxel data

/// Read and convert the voxels; `consumed` bytes of `src` were already read (the header of
/// a single file). Returns the data and the count of non-finite values.
fn read_data(
    src: &mut Source,
    consumed: u64,
    h: &RawLayout,
) -> Result<(Vec<f32>, usize), MedicalError> {
    let path = &h.path;
    let n = h.n_voxels();
    let size = h.datatype.size();
    let nbytes = h.data_bytes();
    let convert = Converter {
        dt: h.datatype,
        be: h.big_endian,
        scale: h.scale,
    };
    match src {
        Source::Plain(access) => {
            if !fits(h, access.len()) {
                return Err(short_file(h, access.len()));
            }
            let mut out = zeroed_f32(n);
            let non_finite = out
                .par_chunks_mut(BLOCK_VOXELS)
                .enumerate()
                .map_init(Vec::new, |buf, (i, o)| {
                    buf.resize(o.len() * size, 0);
                    let off = h.offset + (i * BLOCK_VOXELS * size) as u64;
                    access.read_at(off, buf)?;
                    Ok(convert.run(buf, o))
                })
                .try_reduce(|| 0, |a, b| Ok(a + b))
                .map_err(|e| MedicalError::Io {
                    path: path.clone(),
                    source: e,
                })?;
            Ok((out, non_finite))
        }
        Source::Gz {
            dec,
            compressed_len,
            kind,
        } => {
            let kind = *kind;
            let what = "voxel data";
            // Skip extensions up to vox_offset.
            let skip = h.offset.saturating_sub(consumed);
            let skipped = std::io::copy(&mut dec.by_ref().take(skip), &mut std::io::sink())
                .map_err(|e| gz_err(path, e, "header extensions", kind))?;
            if skipped < skip {
                return Err(stream_before_offset(h, consumed + skipped, kind));
            }
            // Deflate cannot expand beyond ~1032:1, so a claim past that is refused before
            // anything is allocated or decoded.
            let most = compressed_len
                .saturating_mul(MAX_DEFLATE_RATIO)
                .saturating_add(1 << 16);
            if nbytes > most {
                return Err(MedicalError::Truncated {
                    path: path.clone(),
                    reason: format!(
                        "the header declares {} {} voxels ({nbytes} bytes), more than a {compressed_len}-byte {kind} stream can hold",
                        shape_text(h),
                        h.datatype.name(),
                    ),
                });
            }
            // Inflate chunk k+1 while chunk k is converted on the other core.
            let chunk = GZ_CHUNK_VOXELS * size;
            let mut out = zeroed_f32(n);
            let mut stream = dec.by_ref().take(nbytes);
            let mut ready = Vec::with_capacity(chunk.min(nbytes as usize));
            let mut spare = Vec::with_capacity(chunk.min(nbytes as usize));
            let mut got =
                fill(&mut stream, &mut ready, chunk).map_err(|e| gz_err(path, e, what, kind))?;
            let mut non_finite = 0;
            for o in out.chunks_mut(GZ_CHUNK_VOXELS) {
                if ready.len() < o.len() * size {
                    return Err(short_stream(h, got, kind));
                }
                let (count, next) = rayon::join(
                    || convert.run(&ready, o),
                    || fill(&mut stream, &mut spare, chunk),
                );
                non_finite += count;
                got += next.map_err(|e| gz_err(path, e, what, kind))?;
                std::mem::swap(&mut ready, &mut spare);
            }
            // Read on to the end of the stream (a little at most) so the gzip trailer's
            // CRC-32 and length are checked; trailing data beyond that is ignored.
            let mut tail = [0u8; 4096];
            for _ in 0..16 {
                match dec.read(&mut tail) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) => return Err(gz_err(path, e, "stream trailer", kind)),
                }
            }
            Ok((out, non_finite))
        }
    }
}

/// A zeroed f32 buffer. On Linux a large one is first advised to use transparent huge
/// pages (numpy does the same): filling a fresh 40 MB buffer otherwise spends more time in
/// 4 KiB page faults than in decoding.
fn zeroed_f32(n: usize) -> Vec<f32> {
    let v = vec![0f32; n];
    #[cfg(target_os = "linux")]
    if n >= 1 << 20 {
        let page = 4096usize;
        let start = v.as_ptr() as usize & !(page - 1);
        let end = v.as_ptr() as usize + n * 4;
        // SAFETY: madvise only advises the kernel about pages of this allocation's own
        // mapping (a large zeroed allocation is its own mmap, page-aligned minus a header);
        // it neither reads nor writes memory, and failure leaves everything unchanged.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
        }
    }
    v
}

/// Replace `buf`'s contents with up to `len` bytes from `r` (fewer only at its end).
fn fill(r: &mut impl Read, buf: &mut Vec<u8>, len: usize) -> std::io::Result<u64> {
    buf.clear();
    r.take(len as u64).read_to_end(buf).map(|n| n as u64)
}

/// The voxel offset plus the declared voxel bytes fit in `len` bytes.
fn fits(h: &RawLayout, len: u64) -> bool {
    h.offset
        .checked_add(h.data_bytes())
        .is_some_and(|end| end <= len)
}

/// "the header declares 5x4x3 int16 voxels (120 bytes)".
fn declared_text(h: &RawLayout) -> String {
    format!(
        "the header declares {} {} voxels ({} bytes)",
        shape_text(h),
        h.datatype.name(),
        h.data_bytes()
    )
}

/// An uncompressed data file shorter than the voxel offset + the declared voxel bytes.
fn short_file(h: &RawLayout, file_len: u64) -> MedicalError {
    let needed = u128::from(h.offset) + u128::from(h.data_bytes());
    MedicalError::Truncated {
        path: h.path.clone(),
        reason: format!(
            "{} at offset {}, but the file holds {file_len} bytes ({needed} needed)",
            declared_text(h),
            h.offset,
        ),
    }
}

/// A complete compressed stream that holds only `voxel_bytes` bytes after the offset.
fn short_stream(h: &RawLayout, voxel_bytes: u64, kind: &str) -> MedicalError {
    MedicalError::Truncated {
        path: h.path.clone(),
        reason: format!(
            "{} at offset {}, but the {kind} stream holds only {voxel_bytes} bytes of voxel data",
            declared_text(h),
            h.offset,
        ),
    }
}

/// A compressed stream that ends (after `at` inflated bytes) before the voxel offset.
fn stream_before_offset(h: &RawLayout, at: u64, kind: &str) -> MedicalError {
    MedicalError::Truncated {
        path: h.path.clone(),
        reason: format!(
            "{kind} stream ends at byte {at} before the voxel offset {}",
            h.offset
        ),
    }
}

fn shape_text(h: &RawLayout) -> String {
    let d: Vec<String> = h.shape.iter().map(|d| d.to_string()).collect();
    d.join("x")
}

/// Decodes stored voxels to f32 in one byte order with optional scaling.
#[derive(Clone, Copy)]
struct Converter {
    dt: Datatype,
    be: bool,
    scale: Option<(f64, f64)>,
}

trait Raw: Copy {
    const N: usize;
    fn from_le(b: &[u8]) -> Self;
    fn from_be(b: &[u8]) -> Self;
    fn to_f64(self) -> f64;
    fn to_f32(self) -> f32;
}

macro_rules! raw {
    ($($t:ty),*) => {$(
        impl Raw for $t {
            const N: usize = std::mem::size_of::<$t>();
            #[inline(always)]
            fn from_le(b: &[u8]) -> Self {
                let mut a = [0u8; std::mem::size_of::<$t>()];
                a.copy_from_slice(b);
                <$t>::from_le_bytes(a)
            }
            #[inline(always)]
            fn from_be(b: &[u8]) -> Self {
                let mut a = [0u8; std::mem::size_of::<$t>()];
                a.copy_from_slice(b);
                <$t>::from_be_bytes(a)
            }
            #[inline(always)]
            fn to_f64(self) -> f64 { self as f64 }
            #[inline(always)]
            fn to_f32(self) -> f32 { self as f32 }
        }
    )*};
}
raw!(u8, i8, i16, u16, i32, u32, i64, u64, f32, f64);

impl Converter {
    /// Convert `bytes` (exactly `out.len()` voxels) into `out`; returns the number of
    /// non-finite results (only floats or scaled data can produce them).
    fn run(self, bytes: &[u8], out: &mut [f32]) -> usize {
        use Datatype::*;
        match self.dt {
            U8 => self.typed::<u8>(bytes, out),
            I8 => self.typed::<i8>(bytes, out),
            I16 => self.typed::<i16>(bytes, out),
            U16 => self.typed::<u16>(bytes, out),
            I32 => self.typed::<i32>(bytes, out),
            U32 => self.typed::<u32>(bytes, out),
            I64 => self.typed::<i64>(bytes, out),
            U64 => self.typed::<u64>(bytes, out),
            F32 => self.typed::<f32>(bytes, out),
            F64 => self.typed::<f64>(bytes, out),
        }
    }

    fn typed<T: Raw>(self, bytes: &[u8], out: &mut [f32]) -> usize {
        if self.be {
            self.with(bytes, out, T::from_be)
        } else {
            self.with(bytes, out, T::from_le)
        }
    }

    #[inline(always)]
    fn with<T: Raw>(self, bytes: &[u8], out: &mut [f32], read: impl Fn(&[u8]) -> T) -> usize {
        let src = bytes.chunks_exact(T::N);
        match self.scale {
            None => out
                .iter_mut()
                .zip(src)
                .for_each(|(o, c)| *o = read(c).to_f32()),
            Some((s, i)) => out
                .iter_mut()
                .zip(src)
                .for_each(|(o, c)| *o = (read(c).to_f64() * s + i) as f32),
        }
        if self.dt.is_float() || self.scale.is_some() {
            out.iter().filter(|x| !x.is_finite()).count()
        } else {
            0
        }
    }
}
