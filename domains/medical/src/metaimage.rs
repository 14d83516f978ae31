//! MetaImage (ITK's MetaIO): `.mha` (header and data in one file) and `.mhd` (header)
//! with its data file.
//!
//! Read: `NDims` 2–4 (a 4th axis becomes channels), `DimSize`, every scalar
//! `ElementType` (`MET_CHAR` … `MET_ULONG_LONG`, `MET_FLOAT`, `MET_DOUBLE`),
//! `ElementNumberOfChannels` (interleaved components become channels),
//! `ElementSpacing` (else `ElementSize`, else 1), `Offset` (aliases `Position`, `Origin`),
//! `TransformMatrix` (aliases `Rotation`, `Orientation`; row i is the direction of axis i,
//! as ITK reads it), `BinaryData` (False: text values), `BinaryDataByteOrderMSB` /
//! `ElementByteOrderMSB`, `CompressedData` (zlib, or gzip), `HeaderSize` (bytes before
//! the data in a detached file, `-1`: the data ends the file) and `ElementDataFile`
//! (`LOCAL` or a file name). World coordinates are ITK's LPS and are converted to RAS+.
//!
//! Data in several files: `ElementDataFile = LIST [subdim]` (names on the following lines)
//! or `<printf format> <min> <max> <step> [subdim]`, each file one slab.
//!
//! Refused with a message naming the key: a non-image `ObjectType`, array element types.

use std::path::Path;

use crate::error::MedicalError;
use crate::formats::{self, header_bytes, numbers, DataFiles, Grid, Space, MAX_TEXT_HEADER};
use crate::nifti::{Compression, Datatype, RawLayout};
use crate::volume::Volume;

fn datatype(name: &str) -> Option<Datatype> {
    use Datatype::*;
    Some(match name {
        "MET_CHAR" => I8,
        "MET_UCHAR" => U8,
        "MET_SHORT" => I16,
        "MET_USHORT" => U16,
        // MetaIO's MET_LONG / MET_ULONG are 4 bytes (MET_ValueTypeSize).
        "MET_INT" | "MET_LONG" => I32,
        "MET_UINT" | "MET_ULONG" => U32,
        "MET_LONG_LONG" => I64,
        "MET_ULONG_LONG" => U64,
        "MET_FLOAT" => F32,
        "MET_DOUBLE" => F64,
        _ => return None,
    })
}

/// Read a MetaImage (`.mha`, or `.mhd` and its data file).
pub fn read(path: &Path) -> Result<Volume, MedicalError> {
    let bytes = header_bytes(path)?;
    let bad = |field: &'static str, reason: String| MedicalError::BadHeader {
        path: path.to_path_buf(),
        field,
        reason,
    };
    // Header lines up to and including ElementDataFile, which must come last.
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut pos = 0usize;
    let data_start = loop {
        let nl = bytes[pos..].iter().position(|&b| b == b'\n');
        let end = nl.map_or(bytes.len(), |n| pos + n);
        let line = String::from_utf8_lossy(&bytes[pos..end])
            .trim_end_matches('\r')
            .to_string();
        let next = nl.map_or(bytes.len(), |n| pos + n + 1);
        if !line.trim().is_empty() {
            let Some((k, v)) = line.split_once('=') else {
                return Err(bad("header", format!("line {line:?} is not `Key = Value`")));
            };
            let k = k.trim().to_string();
            let last = k.eq_ignore_ascii_case("ElementDataFile");
            fields.push((k, v.trim().to_string()));
            if last {
                break next as u64;
            }
        }
        if nl.is_none() {
            return Err(bad(
                "ElementDataFile",
                if bytes.len() >= MAX_TEXT_HEADER {
                    format!("not found in the first {MAX_TEXT_HEADER} bytes")
                } else {
                    "missing (it names the data and must end the header)".into()
                },
            ));
        }
        pos = next;
    };
    let get = |keys: &[&str]| {
        fields
            .iter()
            .rev()
            .find(|(k, _)| keys.iter().any(|w| k.eq_ignore_ascii_case(w)))
            .map(|(_, v)| v.as_str())
    };
    let need =
        |key: &'static str| get(&[key]).ok_or_else(|| bad(key, "required key missing".into()));
    let truth = |keys: &[&str], field: &'static str, default: bool| match get(keys) {
        None => Ok(default),
        Some(v) if v.eq_ignore_ascii_case("true") || v == "1" => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") || v == "0" => Ok(false),
        Some(v) => Err(bad(field, format!("{v:?}, expected True or False"))),
    };

    if let Some(t) = get(&["ObjectType"]) {
        if !t.eq_ignore_ascii_case("Image") {
            return Err(bad("ObjectType", format!("{t:?}, only Image is read")));
        }
    }
    let nd: usize = need("NDims")?
        .parse()
        .ok()
        .filter(|d| (2..=4).contains(d))
        .ok_or_else(|| bad("NDims", "expected 2, 3 or 4".into()))?;
    let dims: Vec<usize> = numbers(path, "DimSize", need("DimSize")?, Some(nd))?;
    let type_name = need("ElementType")?;
    let dt = datatype(type_name).ok_or_else(|| {
        bad(
            "ElementType",
            format!("{type_name:?} is not a scalar type this reader decodes"),
        )
    })?;
    let channels: usize = match get(&["ElementNumberOfChannels"]) {
        None => 1,
        Some(c) => c
            .parse()
            .ok()
            .filter(|&c| c >= 1)
            .ok_or_else(|| bad("ElementNumberOfChannels", format!("{c:?}, expected >= 1")))?,
    };
    let spatial_nd = nd.min(3);
    let spacing: Vec<f64> = match get(&["ElementSpacing"]).or(get(&["ElementSize"])) {
        Some(v) => numbers(path, "ElementSpacing", v, Some(nd))?,
        None => vec![1.0; nd],
    };
    let origin: Vec<f64> = match get(&["Offset", "Position", "Origin"]) {
        Some(v) => numbers(path, "Offset", v, Some(nd))?,
        None => vec![0.0; nd],
    };
    let matrix: Vec<f64> = match get(&["TransformMatrix", "Rotation", "Orientation"]) {
        Some(v) => numbers(path, "TransformMatrix", v, Some(nd * nd))?,
        None => (0..nd * nd)
            .map(|i| if i / nd == i % nd { 1.0 } else { 0.0 })
            .collect(),
    };
    let binary = truth(&["BinaryData"], "BinaryData", true)?;
    let big_endian = truth(
        &["BinaryDataByteOrderMSB", "ElementByteOrderMSB"],
        "BinaryDataByteOrderMSB",
        false,
    )?;
    let compressed = truth(&["CompressedData"], "CompressedData", false)?;
    let header_size: i64 = match get(&["HeaderSize"]) {
        None => 0,
        Some(v) => v
            .parse()
            .ok()
            .filter(|&s| s >= -1)
            .ok_or_else(|| bad("HeaderSize", format!("{v:?} is not an integer >= -1")))?,
    };
    let file = need("ElementDataFile")?;
    // `LOCAL`, one file, or equal slabs in several: `LIST [subdim]` with names on the
    // following lines, or `<printf format> <min> <max> <step> [subdim]`.
    let list: Vec<String> = match file.starts_with("LIST") {
        true => String::from_utf8_lossy(&bytes[data_start as usize..])
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect(),
        false => Vec::new(),
    };
    let local = file.eq_ignore_ascii_case("LOCAL");
    let data = DataFiles::parse(path, "ElementDataFile", (!local).then_some(file), &list)?;
    // Axes in file order: interleaved channels first, then x, y, z, then a 4th axis.
    let mut sizes = Vec::new();
    let mut directions: Vec<Option<[f64; 3]>> = Vec::new();
    if channels > 1 {
        sizes.push(channels);
        directions.push(None);
    }
    for (i, &d) in dims.iter().enumerate() {
        sizes.push(d);
        directions.push((i < spatial_nd).then(|| {
            let mut v = [0.0; 3];
            for (r, x) in v.iter_mut().enumerate().take(spatial_nd) {
                *x = matrix[i * nd + r] * spacing[i];
            }
            v
        }));
    }
    let mut o = [0.0; 3];
    o[..spatial_nd].copy_from_slice(&origin[..spatial_nd]);
    let grid = Grid {
        path: path.to_path_buf(),
        format: format!(
            "MetaImage ({}{}{}{})",
            data.describe("data in the header file"),
            if compressed { ", compressed" } else { "" },
            if binary { "" } else { ", text" },
            if dt.size() > 1 && binary {
                if big_endian {
                    ", big-endian"
                } else {
                    ", little-endian"
                }
            } else {
                ""
            }
        ),
        datatype: dt,
        sizes,
        directions,
        origin: o,
        space: Space::LPS,
        warnings: Vec::new(),
    };
    grid.check_sizes("DimSize")?;
    // Files hold slabs of the slowest axes (interleaved channels stay with each voxel).
    let lead = usize::from(channels > 1);
    let subdim = data.slab_axes(path, "ElementDataFile", &grid.sizes[lead..])?;
    if compressed && binary && header_size < 0 {
        return Err(bad("HeaderSize", "-1 with compressed data".into()));
    }
    let layout = RawLayout {
        path: path.to_path_buf(),
        offset: 0,
        shape: grid.sizes[..lead + subdim].to_vec(),
        datatype: dt,
        big_endian,
        scale: None,
    };
    // HeaderSize bytes precede the data, or the compressed stream, in each file.
    let base = if data.attached { data_start } else { 0 };
    let (stream_skip, skip) = match (compressed && binary, header_size) {
        (true, h) => (h as u64, 0),
        (false, h) => (0, h),
    };
    let compression = if compressed {
        Compression::Zlib
    } else {
        Compression::None
    };
    let (voxels, non_finite) = data.read(
        layout,
        !binary,
        compression,
        |_| Ok(base + stream_skip),
        skip,
        "HeaderSize -1",
    )?;
    formats::assemble(grid, voxels, non_finite, None)
}
