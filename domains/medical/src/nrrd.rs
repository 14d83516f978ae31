//! NRRD (teem's "nearly raw raster data", 3D Slicer's native format), versions
//! NRRD0001–NRRD0005.
//!
//! Read: attached (`.nrrd`) and detached (`.nhdr` + data file) headers; encodings `raw`,
//! `gzip`/`gz`, `bzip2`/`bz2`, `hex` and `ascii`/`text`/`txt`; `endian`; every scalar `type` spelling of the
//! specification; `line skip` (lines of the data file, before decompression) and
//! `byte skip` (bytes of the decompressed data; `-1` for raw data means "the data ends the
//! file"); `space` (RAS, LAS, LPS and their long names; other 3-D spaces, a bare
//! `space dimension` and headers without a space are taken as LPS, as ITK reads them, with
//! a warning), `space directions` (`none` marks a non-spatial axis),
//! `space origin`, `space units`, and for headers without a space, `spacings` and `kinds`.
//! A non-spatial axis (DWI gradients, RGB, vector components) before the spatial axes is
//! interleaved data and becomes the volume's channels.
//!
//! Data in several files: `data file: LIST [subdim]` (names on the following lines) and
//! `data file: <printf format> <min> <max> <step> [subdim]`, each file one slab of `subdim`
//! axes (default: all but the slowest).
//!
//! Refused with a message naming the field: the `zrl` encoding, `block` type,
//! 4-D (time) spaces.

use std::io::Read;
use std::path::Path;

use crate::error::MedicalError;
use crate::formats::{self, header_bytes, numbers, DataFiles, Grid, Space, MAX_TEXT_HEADER};
use crate::nifti::{Compression, Datatype, RawLayout};
use crate::volume::{Volume, Warning};

/// The scalar type names of the NRRD specification.
fn datatype(name: &str) -> Option<Datatype> {
    use Datatype::*;
    Some(match name {
        "signed char" | "int8" | "int8_t" => I8,
        "uchar" | "unsigned char" | "uint8" | "uint8_t" => U8,
        "short" | "short int" | "signed short" | "signed short int" | "int16" | "int16_t" => I16,
        "ushort" | "unsigned short" | "unsigned short int" | "uint16" | "uint16_t" => U16,
        "int" | "signed int" | "int32" | "int32_t" => I32,
        "uint" | "unsigned int" | "uint32" | "uint32_t" => U32,
        "longlong"
        | "long long"
        | "long long int"
        | "signed long long"
        | "signed long long int"
        | "int64"
        | "int64_t" => I64,
        "ulonglong" | "unsigned long long" | "unsigned long long int" | "uint64" | "uint64_t" => {
            U64
        }
        "float" => F32,
        "double" => F64,
        _ => return None,
    })
}

/// World spaces of the specification; `None` for 4-D (time) spaces.
fn space(name: &str) -> Option<(Space, bool)> {
    let flip = |x, y| Space {
        flip: [x, y, false],
        to_mm: 1.0,
    };
    Some(match name {
        "right-anterior-superior" | "RAS" => (flip(false, false), true),
        "left-anterior-superior" | "LAS" => (flip(true, false), true),
        "left-posterior-superior" | "LPS" => (flip(true, true), true),
        "scanner-xyz" | "3D-right-handed" | "3D-left-handed" => (Space::LPS, false),
        _ => return None,
    })
}

/// The parsed header fields in use.
struct Header {
    fields: Vec<(String, String)>,
    /// Byte offset just past the blank line ending the header (attached data).
    data_start: u64,
    /// Lines after a `data file: LIST` field (file names).
    list: Vec<String>,
    version: u32,
}

impl Header {
    fn get(&self, keys: &[&str]) -> Option<&str> {
        self.fields
            .iter()
            .rev()
            .find(|(k, _)| keys.contains(&k.as_str()))
            .map(|(_, v)| v.as_str())
    }
}

fn parse_header(path: &Path) -> Result<Header, MedicalError> {
    let bytes = header_bytes(path)?;
    let not = |reason: String| MedicalError::BadHeader {
        path: path.to_path_buf(),
        field: "magic",
        reason,
    };
    if !bytes.starts_with(b"NRRD000") || bytes.len() < 8 {
        return Err(not("the file does not start with NRRD000x".into()));
    }
    let version = (bytes[7] as char)
        .to_digit(10)
        .filter(|v| (1..=5).contains(v))
        .ok_or_else(|| not(format!("unknown version NRRD000{}", bytes[7] as char)))?;
    let mut fields = Vec::new();
    let mut list = Vec::new();
    let mut pos = 0usize;
    let mut in_list = false;
    let mut first = true;
    let data_start = loop {
        let Some(nl) = bytes[pos..].iter().position(|&b| b == b'\n') else {
            if bytes.len() >= MAX_TEXT_HEADER {
                return Err(MedicalError::BadHeader {
                    path: path.to_path_buf(),
                    field: "header",
                    reason: format!("no end of the header within {MAX_TEXT_HEADER} bytes"),
                });
            }
            // A detached header may end without a final newline or blank line.
            let line = String::from_utf8_lossy(&bytes[pos..]).trim().to_string();
            if !line.is_empty() && !first {
                push_line(&line, &mut fields, &mut list, in_list, path)?;
            }
            break bytes.len() as u64;
        };
        let line = String::from_utf8_lossy(&bytes[pos..pos + nl])
            .trim_end_matches('\r')
            .to_string();
        pos += nl + 1;
        if first {
            first = false;
            continue;
        }
        if line.is_empty() {
            break pos as u64;
        }
        if line.starts_with('#') {
            continue;
        }
        in_list = push_line(&line, &mut fields, &mut list, in_list, path)?;
    };
    Ok(Header {
        fields,
        data_start,
        list,
        version,
    })
}

/// One header line; returns whether the following lines are a `data file: LIST`.
fn push_line(
    line: &str,
    fields: &mut Vec<(String, String)>,
    list: &mut Vec<String>,
    in_list: bool,
    path: &Path,
) -> Result<bool, MedicalError> {
    if in_list {
        list.push(line.trim().to_string());
        return Ok(true);
    }
    if line.contains(":=") && !line.contains(": ") {
        return Ok(false); // key/value pair: not a field
    }
    let Some((k, v)) = line.split_once(':') else {
        return Err(MedicalError::BadHeader {
            path: path.to_path_buf(),
            field: "header",
            reason: format!("line {line:?} is neither a field (`name: value`) nor a comment"),
        });
    };
    if v.starts_with('=') {
        return Ok(false); // `key:=value`
    }
    let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_string());
    let list_follows = (k == "data file" || k == "datafile") && v.starts_with("LIST");
    fields.push((k, v));
    Ok(list_follows)
}

/// Parse `(x,y,z) none (x,y,z)` into vectors (`None` for `none`).
fn vectors(
    path: &Path,
    field: &'static str,
    v: &str,
) -> Result<Vec<Option<Vec<f64>>>, MedicalError> {
    let bad = |reason: String| MedicalError::BadHeader {
        path: path.to_path_buf(),
        field,
        reason,
    };
    let mut out = Vec::new();
    let mut rest = v.trim();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("none") {
            out.push(None);
            rest = r.trim_start();
            continue;
        }
        let Some(r) = rest.strip_prefix('(') else {
            return Err(bad(format!("expected `(` or `none` at {rest:?}")));
        };
        let end = r
            .find(')')
            .ok_or_else(|| bad(format!("unclosed `(` in {v:?}")))?;
        let vals = r[..end]
            .split(',')
            .map(|t| t.trim().parse::<f64>())
            .collect::<Result<Vec<f64>, _>>()
            .map_err(|_| bad(format!("({}) is not a vector of numbers", &r[..end])))?;
        out.push(Some(vals));
        rest = r[end + 1..].trim_start();
    }
    Ok(out)
}

/// Read an NRRD image (`.nrrd`, or a detached `.nhdr` and its data file).
pub fn read(path: &Path) -> Result<Volume, MedicalError> {
    let h = parse_header(path)?;
    let bad = |field: &'static str, reason: String| MedicalError::BadHeader {
        path: path.to_path_buf(),
        field,
        reason,
    };
    let need = |keys: &[&str], field: &'static str| {
        h.get(keys)
            .ok_or_else(|| bad(field, "required field missing".into()))
    };
    let dimension: usize = need(&["dimension"], "dimension")?
        .parse()
        .ok()
        .filter(|d| (1..=16).contains(d))
        .ok_or_else(|| bad("dimension", "expected an integer in 1..=16".into()))?;
    let type_name = need(&["type"], "type")?;
    let dt = datatype(type_name).ok_or_else(|| {
        bad(
            "type",
            format!("{type_name:?} is not a scalar type this reader decodes"),
        )
    })?;
    let sizes: Vec<usize> = numbers(path, "sizes", need(&["sizes"], "sizes")?, Some(dimension))?;
    let encoding = need(&["encoding"], "encoding")?.to_ascii_lowercase();
    let (compression, text) = match encoding.as_str() {
        "raw" => (Compression::None, false),
        "gzip" | "gz" => (Compression::Gzip, false),
        "ascii" | "text" | "txt" => (Compression::None, true),
        "bzip2" | "bz2" => (Compression::Bzip2, false),
        "hex" => (Compression::Hex, false),
        "zrl" => {
            return Err(bad(
                "encoding",
                format!("{encoding:?} is not supported (raw, gzip, bzip2, hex and ascii are); re-save with gzip, e.g. `unu save -e gzip`"),
            ))
        }
        other => return Err(bad("encoding", format!("unknown encoding {other:?}"))),
    };
    let big_endian = match h.get(&["endian"]) {
        Some("big") => true,
        Some("little") => false,
        Some(other) => return Err(bad("endian", format!("{other:?}, expected little or big"))),
        None if dt.size() > 1 && !text => {
            return Err(bad(
                "endian",
                "required for multi-byte types in binary encodings".into(),
            ))
        }
        None => false,
    };

    // Geometry.
    let mut warnings = Vec::new();
    let mut sp = match (h.get(&["space"]), h.get(&["space dimension"])) {
        (Some(name), _) => match space(name) {
            Some((s, true)) => s,
            Some((s, false)) => {
                warnings.push(Warning::Note(format!(
                    "space {name:?} has no anatomical meaning; its axes are taken as LPS, as ITK and 3D Slicer do"
                )));
                s
            }
            None => {
                return Err(bad(
                    "space",
                    format!("{name:?} is not a 3-D space this reader maps to RAS (RAS, LAS, LPS, scanner-xyz, 3D-right-handed)"),
                ))
            }
        },
        (None, Some(d)) => {
            if d.trim() != "3" && d.trim() != "2" {
                return Err(bad("space dimension", format!("{d}, expected 2 or 3")));
            }
            warnings.push(Warning::Note(
                "no named space (only `space dimension`): axes taken as LPS, as ITK and 3D Slicer do"
                    .into(),
            ));
            Space::LPS
        }
        // No space at all: ITK's reading (its world is LPS).
        (None, None) => Space::LPS,
    };
    let has_space = h.get(&["space"]).is_some() || h.get(&["space dimension"]).is_some();
    let mut directions: Vec<Option<[f64; 3]>> = vec![None; dimension];
    let mut origin = [0f64; 3];
    if has_space {
        let dirs = vectors(
            path,
            "space directions",
            need(&["space directions"], "space directions")?,
        )?;
        if dirs.len() != dimension {
            return Err(bad(
                "space directions",
                format!("{} entries for {dimension} axes", dirs.len()),
            ));
        }
        for (i, d) in dirs.into_iter().enumerate() {
            directions[i] = match d {
                None => None,
                Some(v) if v.len() == 2 || v.len() == 3 => {
                    Some([v[0], v[1], v.get(2).copied().unwrap_or(0.0)])
                }
                Some(v) => {
                    return Err(bad(
                        "space directions",
                        format!(
                            "axis {i} has a {}-component vector, expected 2 or 3",
                            v.len()
                        ),
                    ))
                }
            };
        }
        if let Some(o) = h.get(&["space origin"]) {
            let v = vectors(path, "space origin", o)?;
            match v.as_slice() {
                [Some(v)] if v.len() == 2 || v.len() == 3 => {
                    origin = [v[0], v[1], v.get(2).copied().unwrap_or(0.0)]
                }
                _ => return Err(bad("space origin", format!("{o:?} is not one vector"))),
            }
        }
        if let Some(units) = h.get(&["space units"]) {
            let units: Vec<&str> = units
                .split('"')
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .collect();
            let scale = match units.first().copied() {
                None | Some("mm") | Some("millimeter") | Some("millimeters") => 1.0,
                Some("cm") => 10.0,
                Some("m") | Some("meter") | Some("meters") => 1000.0,
                Some("um") | Some("micron") | Some("microns") => 1e-3,
                Some(u) => {
                    return Err(bad("space units", format!("unknown unit {u:?}")));
                }
            };
            if units.iter().any(|u| *u != units[0]) {
                return Err(bad("space units", format!("mixed units {units:?}")));
            }
            if scale != 1.0 {
                warnings.push(Warning::Units {
                    unit: units[0].to_string(),
                    scale,
                });
                sp.to_mm = scale;
            }
        }
    } else {
        // No space: spatial axes from `kinds` (domain/space), else the first three; sizes
        // from `spacings` (NaN for non-spatial axes), else 1.
        let kinds: Vec<String> = match h.get(&["kinds"]) {
            Some(k) => k.split_whitespace().map(str::to_ascii_lowercase).collect(),
            None => Vec::new(),
        };
        let spacings: Vec<f64> = match h.get(&["spacings"]) {
            Some(s) => s
                .split_whitespace()
                .map(|t| t.parse::<f64>().unwrap_or(f64::NAN))
                .collect(),
            None => Vec::new(),
        };
        let spatial: Vec<usize> = if kinds.len() == dimension {
            (0..dimension)
                .filter(|&i| matches!(kinds[i].as_str(), "domain" | "space"))
                .take(3)
                .collect()
        } else {
            (0..dimension.min(3)).collect()
        };
        for (k, &i) in spatial.iter().enumerate() {
            let s = spacings
                .get(i)
                .copied()
                .filter(|s| s.is_finite() && *s != 0.0)
                .unwrap_or(1.0);
            let mut d = [0.0; 3];
            d[k] = s;
            directions[i] = Some(d);
        }
        warnings.push(Warning::NoDirections { format: "NRRD" });
    }

    // Data.
    // One file, or equal slabs in several (`LIST [subdim]` with names on the following
    // lines, or `<printf format> <min> <max> <step> [subdim]`).
    let data = DataFiles::parse(
        path,
        "data file",
        h.get(&["data file", "datafile"]),
        &h.list,
    )?;
    let subdim = data.slab_axes(path, "data file", &sizes)?;
    let parse_skip = |keys: &[&str], field| -> Result<i64, MedicalError> {
        match h.get(keys) {
            None => Ok(0),
            Some(v) => v
                .parse::<i64>()
                .ok()
                .filter(|&s| s >= -1)
                .ok_or_else(|| bad(field, format!("{v:?} is not an integer >= -1"))),
        }
    };
    let line_skip = parse_skip(&["line skip", "lineskip"], "line skip")?;
    let byte_skip = parse_skip(&["byte skip", "byteskip"], "byte skip")?;
    if line_skip < 0 {
        return Err(bad("line skip", "must be >= 0".into()));
    }

    let grid = Grid {
        path: path.to_path_buf(),
        format: format!(
            "NRRD000{}, {encoding}{}{}",
            h.version,
            match data.attached {
                true => String::new(),
                false => format!(", detached {}", data.describe("")),
            },
            if dt.size() > 1 && !text {
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
        origin,
        space: sp,
        warnings,
    };
    grid.check_sizes("sizes")?;
    if byte_skip == -1 && (text || compression != Compression::None) {
        return Err(bad(
            "byte skip",
            "-1 is only meaningful for raw data".into(),
        ));
    }
    let layout = RawLayout {
        path: path.to_path_buf(),
        offset: 0,
        shape: grid.sizes[..subdim].to_vec(),
        datatype: dt,
        big_endian,
        scale: None,
    };
    // Line skip counts lines of each data file, before any decompression.
    let start = |file: &Path| {
        let start = if data.attached { h.data_start } else { 0 };
        match line_skip {
            0 => Ok(start),
            n => skip_lines(file, start, n as u64),
        }
    };
    let (voxels, non_finite) =
        data.read(layout, text, compression, start, byte_skip, "byte skip -1")?;
    formats::assemble(grid, voxels, non_finite, None)
}

/// The byte offset after `lines` more newlines from `start` in `path`.
fn skip_lines(path: &Path, start: u64, lines: u64) -> Result<u64, MedicalError> {
    use std::io::{BufRead, Seek, SeekFrom};
    let io = |source| MedicalError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::io::BufReader::new(std::fs::File::open(path).map_err(io)?);
    f.seek(SeekFrom::Start(start)).map_err(io)?;
    let mut pos = start;
    let mut buf = Vec::new();
    for i in 0..lines {
        buf.clear();
        let n = (&mut f)
            .take(MAX_TEXT_HEADER as u64)
            .read_until(b'\n', &mut buf)
            .map_err(io)?;
        if n == 0 || buf.last() != Some(&b'\n') {
            return Err(MedicalError::Truncated {
                path: path.to_path_buf(),
                reason: format!("line skip {lines}: the file ends after {i} lines"),
            });
        }
        pos += n as u64;
    }
    Ok(pos)
}
