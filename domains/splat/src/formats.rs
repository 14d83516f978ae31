//! The formats beside PLY: antimatter15 `.splat` (32 bytes per Gaussian), Niantic `.spz`
//! (legacy gzip versions 1–3 and the zstd-streamed version 4), and point sets (`.off`,
//! `.xyz`/`.txt`/`.pts`, NumPy `.npy` of `[N, C]` or a stack `[M, N, C]` read one cloud at
//! a time with `#index=i`). Every declared count is checked before it is allocated.

use crate::gaussians::{canonical_quat, rest_per_channel, Gaussians, SH_C0};
use crate::{ply, SplatError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

fn read_limited(path: &Path, max_bytes: u64) -> Result<Vec<u8>, SplatError> {
    let f = std::fs::File::open(path).map_err(SplatError::io(path))?;
    let len = f.metadata().map_err(SplatError::io(path))?.len();
    if len > max_bytes {
        return Err(SplatError::format(
            path,
            format!("{len} bytes exceed the limit of {max_bytes} for this format"),
        ));
    }
    let mut v = Vec::with_capacity(len as usize);
    f.take(max_bytes)
        .read_to_end(&mut v)
        .map_err(SplatError::io(path))?;
    Ok(v)
}

/// antimatter15 `.splat`: per Gaussian position f32×3, linear scale f32×3, RGBA u8
/// (colour = 0.5 + SH_C0·f_dc, alpha = opacity), rotation u8×4 (w, x, y, z; q·128 + 128).
pub fn read_splat(path: &Path, max_count: u64) -> Result<Gaussians, SplatError> {
    let b = read_limited(path, max_count.saturating_mul(32))?;
    if b.len() % 32 != 0 {
        return Err(SplatError::format(
            path,
            format!(
                "{} bytes is not a whole number of 32-byte Gaussians",
                b.len()
            ),
        ));
    }
    let n = b.len() / 32;
    let mut g = Gaussians {
        attributes: true,
        ..Default::default()
    };
    for (i, r) in b.chunks_exact(32).enumerate() {
        let f = |k: usize| f32::from_le_bytes(r[4 * k..4 * k + 4].try_into().unwrap());
        g.pos.push([f(0), f(1), f(2)]);
        let s = [f(3), f(4), f(5)];
        if s.iter()
            .any(|v| v.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater))
        {
            return Err(SplatError::format(
                path,
                format!("Gaussian {i}: scale {s:?} is not positive"),
            ));
        }
        g.log_scale.push(s.map(f32::ln));
        g.dc.push([r[24], r[25], r[26]].map(|c| (c as f32 / 255.0 - 0.5) / SH_C0));
        g.opacity.push(r[27] as f32 / 255.0);
        let q = [r[28], r[29], r[30], r[31]].map(|c| (c as f32 - 128.0) / 128.0);
        // A degenerate quantised rotation (all 128) is the identity, as viewers treat it.
        g.rot
            .push(canonical_quat(q).unwrap_or([1.0, 0.0, 0.0, 0.0]));
    }
    debug_assert_eq!(g.len(), n);
    g.validate(path)?;
    Ok(g)
}

/// Writes `.splat` (rounding colours and rotations to bytes as the format quantises them).
pub fn write_splat(path: &Path, g: &Gaussians) -> Result<(), SplatError> {
    let mut out = Vec::with_capacity(g.len() * 32);
    let byte = |v: f32| (v * 255.0).round().clamp(0.0, 255.0) as u8;
    for i in 0..g.len() {
        g.pos[i].iter().for_each(|v| out.extend(v.to_le_bytes()));
        g.log_scale[i]
            .iter()
            .for_each(|v| out.extend(v.exp().to_le_bytes()));
        out.extend(g.rgb(i).map(byte));
        out.push(byte(g.opacity[i]));
        out.extend(g.rot[i].map(|v| (v * 128.0 + 128.0).round().clamp(0.0, 255.0) as u8));
    }
    std::fs::write(path, out).map_err(SplatError::io(path))
}

const SPZ_MAGIC: u32 = 0x5053_474e; // "NGSP"

/// Niantic `.spz`. Positions are 24-bit fixed point (`fractionalBits`), alphas a byte of
/// sigmoid opacity, colours `f_dc·0.15 + 0.5` in bytes, log-scales `b/16 − 10`, rotations
/// three bytes (x, y, z; w ≥ 0 derived) before version 3 and a 32-bit "smallest three"
/// word from version 3, SH bytes `(b − 128)/128` point-major, coefficient, then channel.
/// Coordinates are kept as stored (the format's default leaves them unconverted).
pub fn read_spz(path: &Path, max_count: u64, max_sh: u8) -> Result<Gaussians, SplatError> {
    let fmt = |m: String| SplatError::format(path, m);
    let raw = read_limited(path, 1 << 34)?;
    if raw.len() < 4 {
        return Err(fmt("too short for an .spz file".into()));
    }
    let (version, n, sh_deg, frac, blocks) = if raw[..2] == [0x1f, 0x8b] {
        let mut gz = flate2::read::GzDecoder::new(&raw[..]);
        let mut h = [0u8; 16];
        gz.read_exact(&mut h)
            .map_err(|e| fmt(format!("gzip stream: {e}")))?;
        let (version, n, deg, frac) = spz_header(path, &h, max_count)?;
        let sizes = spz_sizes(version, n, deg);
        let total: usize = sizes.iter().sum();
        let mut body = Vec::with_capacity(total);
        (&mut gz)
            .take(total as u64)
            .read_to_end(&mut body)
            .map_err(|e| fmt(format!("gzip stream: {e}")))?;
        if body.len() < total {
            return Err(fmt(format!(
                "{n} Gaussians need {total} bytes after the header, the stream holds {}",
                body.len()
            )));
        }
        let mut blocks = Vec::new();
        let mut o = 0;
        for s in sizes {
            blocks.push(body[o..o + s].to_vec());
            o += s;
        }
        (version, n, deg, frac, blocks)
    } else if raw.len() >= 32 && u32::from_le_bytes(raw[..4].try_into().unwrap()) == SPZ_MAGIC {
        let (version, n, deg, frac) = spz_header(path, &raw[..16], max_count)?;
        let streams = raw[15] as usize;
        let toc = u32::from_le_bytes(raw[16..20].try_into().unwrap()) as usize;
        let sizes = spz_sizes(version, n, deg);
        let toc_end = toc + 16 * streams;
        if toc_end > raw.len() || streams < sizes.len() {
            return Err(fmt(format!(
                "table of {streams} streams at byte {toc} does not fit the file"
            )));
        }
        let mut o = toc_end;
        let mut blocks = Vec::new();
        for (k, want) in sizes.iter().enumerate() {
            let e = &raw[toc + 16 * k..toc + 16 * k + 16];
            let comp = u64::from_le_bytes(e[..8].try_into().unwrap()) as usize;
            let plain = u64::from_le_bytes(e[8..].try_into().unwrap()) as usize;
            if plain != *want {
                return Err(fmt(format!(
                    "stream {k} holds {plain} bytes, {n} Gaussians need {want}"
                )));
            }
            if o + comp > raw.len() {
                return Err(fmt(format!(
                    "stream {k} ({comp} bytes) runs past the end of the file"
                )));
            }
            let mut d = Vec::with_capacity(plain);
            if comp > 0 {
                zstd::stream::read::Decoder::new(&raw[o..o + comp])
                    .and_then(|z| z.take(plain as u64).read_to_end(&mut d))
                    .map_err(|e| fmt(format!("stream {k}: zstd: {e}")))?;
            }
            if d.len() != plain {
                return Err(fmt(format!(
                    "stream {k} decompresses to {} bytes, {plain} declared",
                    d.len()
                )));
            }
            blocks.push(d);
            o += comp;
        }
        (version, n, deg, frac, blocks)
    } else {
        return Err(fmt(
            "not an .spz file (neither gzip nor the NGSP magic)".into()
        ));
    };
    let [p, a, c, s, r, sh] = <[Vec<u8>; 6]>::try_from(blocks).unwrap();
    let keep = sh_deg.min(max_sh).min(3);
    let (dim, kdim) = (rest_per_channel(sh_deg), rest_per_channel(keep));
    let mut g = Gaussians {
        attributes: true,
        sh_degree: keep,
        ..Default::default()
    };
    let scale = 1.0 / (1u32 << frac) as f32;
    for i in 0..n {
        let pos = if version == 1 {
            std::array::from_fn(|k| {
                half_to_f32(u16::from_le_bytes([p[6 * i + 2 * k], p[6 * i + 2 * k + 1]]))
            })
        } else {
            std::array::from_fn(|k| {
                let b = &p[9 * i + 3 * k..];
                let v = (b[0] as i32) | ((b[1] as i32) << 8) | ((b[2] as i32) << 16);
                ((v << 8) >> 8) as f32 * scale
            })
        };
        g.pos.push(pos);
        g.opacity.push(a[i] as f32 / 255.0);
        g.dc.push(std::array::from_fn(|k| {
            (c[3 * i + k] as f32 / 255.0 - 0.5) / 0.15
        }));
        g.log_scale
            .push(std::array::from_fn(|k| s[3 * i + k] as f32 / 16.0 - 10.0));
        let q = if version >= 3 {
            let w = u32::from_le_bytes(r[4 * i..4 * i + 4].try_into().unwrap());
            unpack_smallest_three(w)
        } else {
            let xyz: [f32; 3] = std::array::from_fn(|k| r[3 * i + k] as f32 / 127.5 - 1.0);
            let w = (1.0 - xyz.iter().map(|v| v * v).sum::<f32>())
                .max(0.0)
                .sqrt();
            [w, xyz[0], xyz[1], xyz[2]]
        };
        g.rot.push(
            canonical_quat(q)
                .ok_or_else(|| fmt(format!("Gaussian {i}: rotation cannot be normalised")))?,
        );
        for ch in 0..3 {
            for k in 0..kdim {
                g.sh_rest
                    .push((sh[(i * dim + k) * 3 + ch] as f32 - 128.0) / 128.0);
            }
        }
    }
    g.validate(path)?;
    Ok(g)
}

fn spz_header(path: &Path, h: &[u8], max_count: u64) -> Result<(u32, usize, u8, u8), SplatError> {
    let fmt = |m: String| SplatError::format(path, m);
    let u = |k: usize| u32::from_le_bytes(h[k..k + 4].try_into().unwrap());
    if u(0) != SPZ_MAGIC {
        return Err(fmt("not an .spz stream (bad magic)".into()));
    }
    let (version, n, deg, frac) = (u(4), u(8) as u64, h[12], h[13]);
    if !(1..=4).contains(&version) {
        return Err(fmt(format!(".spz version {version} (1–4 are read)")));
    }
    if deg > 4 || (deg == 4 && version < 3) {
        return Err(fmt(format!("SH degree {deg} in an .spz version {version}")));
    }
    if frac > 23 {
        return Err(fmt(format!("{frac} fractional bits in 24-bit positions")));
    }
    if n > max_count {
        return Err(fmt(format!(
            "{n} Gaussians exceed the limit of {max_count} ([splat] max_gaussians)"
        )));
    }
    Ok((version, n as usize, deg, frac))
}

fn spz_sizes(version: u32, n: usize, deg: u8) -> [usize; 6] {
    let d = deg as usize;
    let dim = (d + 1) * (d + 1) - 1;
    [
        n * if version == 1 { 6 } else { 9 },
        n,
        3 * n,
        3 * n,
        n * if version >= 3 { 4 } else { 3 },
        n * dim * 3,
    ]
}

/// Quaternion (x, y, z, w) "smallest three" word → (w, x, y, z).
fn unpack_smallest_three(mut comp: u32) -> [f32; 4] {
    const MASK: u32 = (1 << 9) - 1;
    let largest = (comp >> 30) as usize;
    let mut xyzw = [0f32; 4];
    let mut sum = 0.0;
    for i in (0..4).rev() {
        if i == largest {
            continue;
        }
        let mag = comp & MASK;
        let neg = (comp >> 9) & 1;
        comp >>= 10;
        let mut v = std::f32::consts::FRAC_1_SQRT_2 * mag as f32 / MASK as f32;
        if neg == 1 {
            v = -v;
        }
        xyzw[i] = v;
        sum += v * v;
    }
    xyzw[largest] = (1.0 - sum).max(0.0).sqrt();
    [xyzw[3], xyzw[0], xyzw[1], xyzw[2]]
}

fn half_to_f32(h: u16) -> f32 {
    let s = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let e = ((h >> 10) & 0x1f) as i32;
    let m = (h & 0x3ff) as f32;
    s * match e {
        0 => m * 2f32.powi(-24),
        31 => f32::INFINITY,
        _ => (1.0 + m / 1024.0) * 2f32.powi(e - 15),
    }
}

/// Writes a legacy (version 2, gzip) `.spz`, 12 fractional bits, as Niantic's writer does.
pub fn write_spz(path: &Path, g: &Gaussians) -> Result<(), SplatError> {
    let n = g.len();
    let deg = g.sh_degree;
    let dim = rest_per_channel(deg);
    let mut h = Vec::new();
    h.extend(SPZ_MAGIC.to_le_bytes());
    h.extend(2u32.to_le_bytes());
    h.extend((n as u32).to_le_bytes());
    h.extend([deg, 12, 0, 0]);
    let q8 = |v: f32| v.round().clamp(0.0, 255.0) as u8;
    for p in &g.pos {
        for v in p {
            let f = (v * 4096.0).round() as i32;
            h.extend(&f.to_le_bytes()[..3]);
        }
    }
    h.extend(g.opacity.iter().map(|o| q8(o * 255.0)));
    for d in &g.dc {
        h.extend(d.map(|c| q8((c * 0.15 + 0.5) * 255.0)));
    }
    for s in &g.log_scale {
        h.extend(s.map(|v| q8((v + 10.0) * 16.0)));
    }
    for q in &g.rot {
        let q = if q[0] < 0.0 { q.map(|v| -v) } else { *q };
        h.extend([q[1], q[2], q[3]].map(|v| q8(v * 127.5 + 127.5)));
    }
    for i in 0..n {
        for k in 0..dim {
            for ch in 0..3 {
                h.push(q8(g.sh_rest[i * 3 * dim + ch * dim + k] * 128.0 + 128.0));
            }
        }
    }
    let f = std::fs::File::create(path).map_err(SplatError::io(path))?;
    let mut gz = flate2::write::GzEncoder::new(f, flate2::Compression::default());
    gz.write_all(&h)
        .and_then(|_| gz.finish().map(|_| ()))
        .map_err(SplatError::io(path))
}

fn parse_floats(line: &str) -> Option<Vec<f32>> {
    line.split(|c: char| c.is_whitespace() || c == ',' || c == ';')
        .filter(|t| !t.is_empty())
        .map(|t| t.parse::<f32>().ok())
        .collect()
}

fn text(path: &Path, max_count: u64) -> Result<String, SplatError> {
    let b = read_limited(path, max_count.saturating_mul(256).max(1 << 16))?;
    String::from_utf8(b).map_err(|_| SplatError::format(path, "not UTF-8 text"))
}

/// OFF (also COFF/NOFF and the header glued to the counts, as in ModelNet's `OFF490 518 0`):
/// the vertices as a point set; faces are not needed.
pub fn read_off(path: &Path, max_count: u64) -> Result<Gaussians, SplatError> {
    let fmt = |m: String| SplatError::format(path, m);
    let t = text(path, max_count)?;
    let mut lines = t
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty());
    let first = lines.next().ok_or_else(|| fmt("empty file".into()))?;
    let rest = ["NCOFF", "COFF", "NOFF", "OFF"]
        .iter()
        .find_map(|k| first.strip_prefix(k))
        .ok_or_else(|| fmt(format!("first line `{first}` is not an OFF header")))?
        .trim();
    let counts_line = if rest.is_empty() {
        lines.next().unwrap_or("")
    } else {
        rest
    };
    let counts = parse_floats(counts_line)
        .filter(|c| c.len() >= 2)
        .ok_or_else(|| fmt(format!("`{counts_line}` is not `vertices faces edges`")))?;
    let nv = counts[0];
    if nv < 1.0 || nv.fract() != 0.0 || nv as u64 > max_count {
        return Err(fmt(format!("vertex count {nv} (1 to {max_count})")));
    }
    let nv = nv as usize;
    if nv > t.len() / 6 {
        return Err(fmt(format!(
            "{nv} vertices declared, the file is {} bytes",
            t.len()
        )));
    }
    let mut pos = Vec::with_capacity(nv);
    for i in 0..nv {
        let l = lines
            .next()
            .ok_or_else(|| fmt(format!("{nv} vertices declared, the file ends after {i}")))?;
        let v = parse_floats(l)
            .filter(|v| v.len() >= 3)
            .ok_or_else(|| fmt(format!("vertex {i}: `{l}` is not x y z")))?;
        pos.push([v[0], v[1], v[2]]);
    }
    let g = Gaussians::points(pos);
    g.validate(path)?;
    Ok(g)
}

/// Text point sets: `x y z [more]` per line (spaces, tabs, commas), `#` comments, an
/// optional header line of names.
pub fn read_xyz(path: &Path, max_count: u64) -> Result<Gaussians, SplatError> {
    let t = text(path, max_count)?;
    let mut pos = Vec::new();
    for (i, l) in t.lines().enumerate() {
        let l = l.split('#').next().unwrap_or("").trim();
        if l.is_empty() {
            continue;
        }
        match parse_floats(l) {
            Some(v) if v.len() >= 3 => pos.push([v[0], v[1], v[2]]),
            _ if pos.is_empty() && i == 0 => {} // a header line
            _ => {
                return Err(SplatError::format(
                    path,
                    format!("line {}: `{l}` is not x y z", i + 1),
                ))
            }
        }
        if pos.len() as u64 > max_count {
            return Err(SplatError::format(
                path,
                format!("more than {max_count} points ([splat] max_gaussians)"),
            ));
        }
    }
    if pos.is_empty() {
        return Err(SplatError::format(path, "no points"));
    }
    let g = Gaussians::points(pos);
    g.validate(path)?;
    Ok(g)
}

/// A parsed `.npy` header.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyHeader {
    pub dtype: String,
    pub fortran: bool,
    pub shape: Vec<usize>,
    pub data_offset: u64,
}

/// Reads and checks an `.npy` header against the file's length.
pub fn npy_header(path: &Path, f: &mut std::fs::File) -> Result<NpyHeader, SplatError> {
    let fmt = |m: String| SplatError::format(path, m);
    let len = f.metadata().map_err(SplatError::io(path))?.len();
    let mut pre = [0u8; 10];
    f.read_exact(&mut pre)
        .map_err(|_| fmt("too short for a .npy file".into()))?;
    if &pre[..6] != b"\x93NUMPY" {
        return Err(fmt("not a .npy file (bad magic)".into()));
    }
    let (hlen, start) = match pre[6] {
        1 => (u16::from_le_bytes([pre[8], pre[9]]) as usize, 10u64),
        2 | 3 => {
            let mut b = [0u8; 2];
            f.read_exact(&mut b).map_err(SplatError::io(path))?;
            (
                u32::from_le_bytes([pre[8], pre[9], b[0], b[1]]) as usize,
                12,
            )
        }
        v => return Err(fmt(format!(".npy format version {v}"))),
    };
    if hlen > 1 << 20 || start + hlen as u64 > len {
        return Err(fmt(format!("header of {hlen} bytes does not fit the file")));
    }
    let mut h = vec![0u8; hlen];
    f.read_exact(&mut h).map_err(SplatError::io(path))?;
    let h = String::from_utf8_lossy(&h);
    let field = |key: &str| -> Option<String> {
        let i = h.find(&format!("'{key}'"))? + key.len() + 2;
        let rest = h[i..].trim_start().strip_prefix(':')?.trim_start();
        Some(if let Some(r) = rest.strip_prefix('(') {
            r[..r.find(')')?].to_string()
        } else if let Some(r) = rest.strip_prefix('\'') {
            r[..r.find('\'')?].to_string()
        } else {
            rest.split([',', '}']).next()?.trim().to_string()
        })
    };
    let dtype = field("descr").ok_or_else(|| fmt(format!("header `{h}` has no descr")))?;
    let fortran = field("fortran_order").is_some_and(|v| v == "True");
    let shape: Vec<usize> = field("shape")
        .ok_or_else(|| fmt(format!("header `{h}` has no shape")))?
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.trim_end_matches('L')
                .parse()
                .map_err(|_| fmt(format!("shape entry `{s}`")))
        })
        .collect::<Result<_, _>>()?;
    let item = npy_item(&dtype)
        .ok_or_else(|| {
            fmt(format!(
                "dtype `{dtype}` (float16/32/64 and integers are read)"
            ))
        })?
        .1;
    let total = shape
        .iter()
        .try_fold(item as u64, |a, &d| a.checked_mul(d as u64));
    let data_offset = start + hlen as u64;
    if total.is_none_or(|t| data_offset + t > len) {
        return Err(fmt(format!(
            "shape {shape:?} of {dtype} needs more bytes than the file's {len}"
        )));
    }
    Ok(NpyHeader {
        dtype,
        fortran,
        shape,
        data_offset,
    })
}

/// (kind, size, big-endian) of an `.npy` dtype string.
fn npy_item(d: &str) -> Option<(char, usize, bool)> {
    let big = d.starts_with('>');
    let d = d.trim_start_matches(['<', '>', '=', '|']);
    let kind = d.chars().next()?;
    // `kind` may be any character of a corrupt header: slice after it, not after byte 1.
    let size: usize = d[kind.len_utf8()..].parse().ok()?;
    matches!((kind, size), ('f', 2 | 4 | 8) | ('i' | 'u', 1 | 2 | 4 | 8))
        .then_some((kind, size, big))
}

/// One `.npy` value: the eight types PLY shares through [`ply::Scalar`], plus float16 and
/// 64-bit integers.
fn npy_value(kind: char, size: usize, big: bool, b: &[u8]) -> f32 {
    use ply::Scalar::*;
    let word = |n: usize| -> [u8; 8] {
        let mut a = [0u8; 8];
        if big {
            a[8 - n..].copy_from_slice(&b[..n]);
            a.reverse();
        } else {
            a[..n].copy_from_slice(&b[..n]);
        }
        a
    };
    let scalar = match (kind, size) {
        ('f', 2) => {
            let w = word(2);
            return half_to_f32(u16::from_le_bytes([w[0], w[1]]));
        }
        ('i', 8) => return i64::from_le_bytes(word(8)) as f32,
        ('u', 8) => return u64::from_le_bytes(word(8)) as f32,
        ('f', 4) => F32,
        ('f', 8) => F64,
        ('i', 1) => I8,
        ('u', 1) => U8,
        ('i', 2) => I16,
        ('u', 2) => U16,
        ('i', 4) => I32,
        _ => U32,
    };
    scalar.decode(b, big) as f32
}

/// A NumPy point set `[N, C ≥ 3]`, or cloud `index` of a stack `[M, N, C ≥ 3]` (only that
/// cloud's bytes are read). Columns beyond x, y, z are kept as `c3`, `c4`, ...
pub fn read_npy(
    path: &Path,
    index: Option<usize>,
    max_count: u64,
) -> Result<Gaussians, SplatError> {
    let fmt = |m: String| SplatError::format(path, m);
    let mut f = std::fs::File::open(path).map_err(SplatError::io(path))?;
    let h = npy_header(path, &mut f)?;
    let (kind, size, big) = npy_item(&h.dtype).unwrap();
    let (m, n, c) = match (h.shape.as_slice(), index) {
        ([n, c], None | Some(0)) => (1, *n, *c),
        ([_, _], Some(i)) => {
            return Err(fmt(format!(
                "#index={i} on a single cloud of shape {:?}",
                h.shape
            )))
        }
        ([m, n, c], Some(i)) if i < *m => (*m, *n, *c),
        ([m, _, _], Some(i)) => {
            return Err(fmt(format!(
                "#index={i} out of range: the stack holds {m} clouds"
            )))
        }
        ([m, _, _], None) => {
            return Err(fmt(format!(
                "a stack of {m} clouds: name one with `#index=i`"
            )))
        }
        (s, _) => return Err(fmt(format!("shape {s:?}: [N, C] or [M, N, C] expected"))),
    };
    if c < 3 || n == 0 {
        return Err(fmt(format!(
            "shape {:?}: at least one point of 3 columns expected",
            h.shape
        )));
    }
    if n as u64 > max_count {
        return Err(fmt(format!(
            "{n} points exceed the limit of {max_count} ([splat] max_gaussians)"
        )));
    }
    let i = index.unwrap_or(0);
    let at = |bytes: &[u8], p: usize, k: usize, first: usize| -> f32 {
        let e = if h.fortran {
            i + m * (p + n * k)
        } else {
            ((i * n) + p) * c + k
        };
        npy_value(kind, size, big, &bytes[(e - first) * size..])
    };
    let (bytes, first) = if h.fortran {
        let mut b = vec![0u8; m * n * c * size];
        f.seek(SeekFrom::Start(h.data_offset))
            .and_then(|_| f.read_exact(&mut b))
            .map_err(SplatError::io(path))?;
        (b, 0)
    } else {
        let mut b = vec![0u8; n * c * size];
        f.seek(SeekFrom::Start(h.data_offset + (i * n * c * size) as u64))
            .and_then(|_| f.read_exact(&mut b))
            .map_err(SplatError::io(path))?;
        (b, i * n * c)
    };
    let pos = (0..n)
        .map(|p| {
            [
                at(&bytes, p, 0, first),
                at(&bytes, p, 1, first),
                at(&bytes, p, 2, first),
            ]
        })
        .collect();
    let mut g = Gaussians::points(pos);
    g.extra = (3..c)
        .map(|k| {
            (
                format!("c{k}"),
                (0..n).map(|p| at(&bytes, p, k, first)).collect(),
            )
        })
        .collect();
    g.validate(path)?;
    Ok(g)
}

/// Writes `[N, 3]` little-endian float32 `.npy`.
pub fn write_npy(path: &Path, pos: &[[f32; 3]]) -> Result<(), SplatError> {
    let dict = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, 3), }}",
        pos.len()
    );
    let pad = 64 - (10 + dict.len() + 1) % 64;
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend(((dict.len() + pad + 1) as u16).to_le_bytes());
    out.extend(dict.bytes());
    out.extend(std::iter::repeat_n(b' ', pad));
    out.push(b'\n');
    pos.iter()
        .flatten()
        .for_each(|v| out.extend(v.to_le_bytes()));
    std::fs::write(path, out).map_err(SplatError::io(path))
}
