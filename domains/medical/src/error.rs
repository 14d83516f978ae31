//! The medical crate's one error enum.
//!
//! Every variant that concerns a file names its path, and header errors name the NIfTI
//! field (`dim`, `pixdim`, `vox_offset`, `scl_inter`, `sform`, ...), what was expected and
//! what was found. Errors about in-memory data (resampling targets, normalisation input)
//! name the argument.
//!
//! A variant caused by another error (I/O, the gzip decoder, the token contract) keeps it
//! as its [`std::error::Error::source`]; the message still reads on its own (it repeats
//! the cause's text), so `to_string()` is enough for a one-line report.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum MedicalError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// `sizeof_hdr` or `magic` do not identify a NIfTI-1 or NIfTI-2 header.
    #[error("{path}: not a NIfTI file: {reason}")]
    NotNifti { path: PathBuf, reason: String },
    /// A header field holds a value the format forbids or the reader cannot use.
    #[error("{path}: invalid NIfTI header field `{field}`: {reason}")]
    BadHeader {
        path: PathBuf,
        field: &'static str,
        reason: String,
    },
    /// Complex, RGB, float128, binary or an unknown datatype code.
    #[error("{path}: unsupported datatype {code} ({name})")]
    UnsupportedDatatype {
        path: PathBuf,
        code: i32,
        name: &'static str,
    },
    /// The file (or decompressed stream) ends before the data the header declares.
    #[error("{path}: truncated: {reason}")]
    Truncated { path: PathBuf, reason: String },
    /// The gzip stream is corrupt (bad deflate data, header or checksum); `source` is the
    /// decoder's error and `what` the part of the file being read (`"header"`,
    /// `"voxel data"`, `"gzip trailer"`, ...).
    #[error("{path}: corrupt {kind} stream (while reading the {what}): {source}")]
    Gzip {
        path: PathBuf,
        /// `"gzip"`, `"zlib"` or `"bzip2"`.
        kind: &'static str,
        what: &'static str,
        source: std::io::Error,
    },
    /// A DICOM file or series that cannot be read as one volume; `reason` names the
    /// attribute (`ImagePositionPatient`, `Rows`, ...) or the transfer syntax.
    #[error("{path}: DICOM: {reason}")]
    Dicom { path: PathBuf, reason: String },
    /// A label map holds values that are not integers in 0..=65535.
    #[error("{path}: not a label map: {reason}")]
    NotLabels { path: PathBuf, reason: String },
    /// An image and its label map (or two volumes) do not share one voxel grid.
    #[error(
        "{image} and {label} are on different grids: {field} is {image_value} vs {label_value}"
    )]
    GridMismatch {
        image: PathBuf,
        label: PathBuf,
        field: &'static str,
        image_value: String,
        label_value: String,
    },
    /// The affine has a zero or non-finite column, so no orientation can be derived.
    #[error("{path}: singular or non-finite affine (world_from_voxel): {reason}")]
    SingularAffine { path: PathBuf, reason: String },
    /// Data handed to a transform holds NaN or infinite values.
    #[error("{what}: {count} non-finite voxel values (replace them first, e.g. Volume::replace_non_finite)")]
    NonFinite { what: String, count: usize },
    /// An argument of a transform is out of range.
    #[error("invalid argument `{name}`: {reason}")]
    InvalidArgument { name: &'static str, reason: String },
    #[error(transparent)]
    Tokens(#[from] tessera_tokens::TokenError),
    /// A front-end configuration that cannot work.
    #[error("medical front end: {0}")]
    Config(String),
}
