//! PLY: the header, element bodies in ASCII and binary little-/big-endian (streamed in
//! chunks of rows, only the needed columns decoded), and its three kinds of content:
//! INRIA 3DGS Gaussians (`x y z f_dc_* f_rest_* opacity scale_* rot_*`, properties in any
//! order, extra properties kept), PlayCanvas compressed splats (`chunk` + packed `vertex`
//! + optional `sh` elements), and plain point clouds (`x y z`, optional `red green blue`).
//!
//! Every declared count is checked against the bytes the file holds before anything is
//! allocated for it.

use crate::gaussians::{
    canonical_quat, degree_of_rest, logit, rest_per_channel, sigmoid, Gaussians, SH_C0,
};
use crate::SplatError;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;

/// A PLY scalar type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scalar {
    I8,
    U8,
    I16,
    U16,
    I32,
    U32,
    F32,
    F64,
}

impl Scalar {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "char" | "int8" => Self::I8,
            "uchar" | "uint8" => Self::U8,
            "short" | "int16" => Self::I16,
            "ushort" | "uint16" => Self::U16,
            "int" | "int32" => Self::I32,
            "uint" | "uint32" => Self::U32,
            "float" | "float32" => Self::F32,
            "double" | "float64" => Self::F64,
            _ => return None,
        })
    }
    pub fn size(self) -> usize {
        match self {
            Self::I8 | Self::U8 => 1,
            Self::I16 | Self::U16 => 2,
            Self::I32 | Self::U32 | Self::F32 => 4,
            Self::F64 => 8,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Self::I8 => "char",
            Self::U8 => "uchar",
            Self::I16 => "short",
            Self::U16 => "ushort",
            Self::I32 => "int",
            Self::U32 => "uint",
            Self::F32 => "float",
            Self::F64 => "double",
        }
    }
    /// Decodes one value from the front of `b` (at least `size()` bytes).
    #[inline]
    pub(crate) fn decode(self, b: &[u8], big: bool) -> f64 {
        macro_rules! get {
            ($t:ty, $n:expr) => {{
                let a: [u8; $n] = b[..$n].try_into().unwrap();
                (if big {
                    <$t>::from_be_bytes(a)
                } else {
                    <$t>::from_le_bytes(a)
                }) as f64
            }};
        }
        match self {
            Self::I8 => b[0] as i8 as f64,
            Self::U8 => b[0] as f64,
            Self::I16 => get!(i16, 2),
            Self::U16 => get!(u16, 2),
            Self::I32 => get!(i32, 4),
            Self::U32 => get!(u32, 4),
            Self::F32 => get!(f32, 4),
            Self::F64 => get!(f64, 8),
        }
    }
}

/// Appends the property at byte `off` of every `row`-byte row of `b` to `out`, with the
/// type and byte order matched once per column rather than once per value.
fn decode_column(ty: Scalar, big: bool, b: &[u8], row: usize, off: usize, out: &mut Vec<f64>) {
    macro_rules! go {
        ($t:ty, $n:expr) => {{
            let bytes = b
                .chunks_exact(row)
                .map(|r| -> [u8; $n] { r[off..off + $n].try_into().unwrap() });
            if big {
                out.extend(bytes.map(|a| <$t>::from_be_bytes(a) as f64))
            } else {
                out.extend(bytes.map(|a| <$t>::from_le_bytes(a) as f64))
            }
        }};
    }
    match ty {
        Scalar::I8 => out.extend(b.chunks_exact(row).map(|r| r[off] as i8 as f64)),
        Scalar::U8 => out.extend(b.chunks_exact(row).map(|r| r[off] as f64)),
        Scalar::I16 => go!(i16, 2),
        Scalar::U16 => go!(u16, 2),
        Scalar::I32 => go!(i32, 4),
        Scalar::U32 => go!(u32, 4),
        Scalar::F32 => go!(f32, 4),
        Scalar::F64 => go!(f64, 8),
    }
}

/// The body encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Ascii,
    BinaryLe,
    BinaryBe,
}

impl Encoding {
    pub fn name(self) -> &'static str {
        match self {
            Self::Ascii => "ascii",
            Self::BinaryLe => "binary_little_endian",
            Self::BinaryBe => "binary_big_endian",
        }
    }
}

/// One property: a scalar, or a list with its count type.
#[derive(Debug, Clone, PartialEq)]
pub struct Property {
    pub name: String,
    pub ty: Scalar,
    pub list_count: Option<Scalar>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Element {
    pub name: String,
    pub count: u64,
    pub props: Vec<Property>,
}

impl Element {
    /// Bytes per row when every property is a scalar.
    fn fixed_row(&self) -> Option<usize> {
        self.props
            .iter()
            .map(|p| p.list_count.is_none().then_some(p.ty.size()))
            .sum()
    }
    fn minimal_row(&self, enc: Encoding) -> u64 {
        match enc {
            // a value and a separator at least
            Encoding::Ascii => 2 * self.props.len().max(1) as u64 - 1,
            _ => self
                .props
                .iter()
                .map(|p| p.list_count.map_or(p.ty.size(), |c| c.size()) as u64)
                .sum(),
        }
    }
    pub fn index(&self, name: &str) -> Option<usize> {
        self.props.iter().position(|p| p.name == name)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub encoding: Encoding,
    pub elements: Vec<Element>,
    pub comments: Vec<String>,
    /// Bytes up to and including `end_header\n`.
    pub len: u64,
}

impl Header {
    pub fn element(&self, name: &str) -> Option<&Element> {
        self.elements.iter().find(|e| e.name == name)
    }
}

const MAX_HEADER: u64 = 1 << 20;

/// Reads and checks a header; `file_len` bounds every declared count.
pub fn read_header(r: &mut impl BufRead, path: &Path, file_len: u64) -> Result<Header, SplatError> {
    let fmt = |m: String| SplatError::format(path, m);
    let mut len = 0u64;
    let mut line = Vec::new();
    let mut next = |line: &mut Vec<u8>| -> Result<String, SplatError> {
        line.clear();
        let n = r
            .take(MAX_HEADER - len.min(MAX_HEADER))
            .read_until(b'\n', line)
            .map_err(SplatError::io(path))?;
        len += n as u64;
        if n == 0 || line.last() != Some(&b'\n') {
            return Err(fmt(if len >= MAX_HEADER {
                format!("PLY header longer than {MAX_HEADER} bytes")
            } else {
                "PLY header ends before `end_header`".into()
            }));
        }
        Ok(String::from_utf8_lossy(line)
            .trim_end_matches(['\r', '\n'])
            .to_string())
    };
    if next(&mut line)?.trim() != "ply" {
        return Err(fmt("not a PLY file (no `ply` magic line)".into()));
    }
    let mut encoding = None;
    let mut elements: Vec<Element> = Vec::new();
    let mut comments = Vec::new();
    loop {
        let l = next(&mut line)?;
        let w: Vec<&str> = l.split_whitespace().collect();
        match w.as_slice() {
            [] => {}
            ["end_header"] => break,
            ["format", f, v] => {
                if *v != "1.0" {
                    return Err(fmt(format!("PLY format version {v} (1.0 is read)")));
                }
                encoding = Some(match *f {
                    "ascii" => Encoding::Ascii,
                    "binary_little_endian" => Encoding::BinaryLe,
                    "binary_big_endian" => Encoding::BinaryBe,
                    other => return Err(fmt(format!("unknown PLY format `{other}`"))),
                });
            }
            ["comment", ..] | ["obj_info", ..] => {
                comments.push(l.split_once(' ').map(|x| x.1).unwrap_or("").to_string())
            }
            ["element", name, count] => {
                let count: u64 = count.parse().map_err(|_| {
                    fmt(format!("element `{name}` count `{count}` is not a number"))
                })?;
                elements.push(Element {
                    name: name.to_string(),
                    count,
                    props: Vec::new(),
                });
            }
            ["property", "list", c, t, name] => {
                let el = elements
                    .last_mut()
                    .ok_or_else(|| fmt(format!("property `{name}` before any element")))?;
                let (Some(c), Some(t)) = (Scalar::parse(c), Scalar::parse(t)) else {
                    return Err(fmt(format!(
                        "list property `{name}`: unknown type `{c}`/`{t}`"
                    )));
                };
                if matches!(c, Scalar::F32 | Scalar::F64) {
                    return Err(fmt(format!(
                        "list property `{name}`: count type {} is not an integer",
                        c.name()
                    )));
                }
                el.props.push(Property {
                    name: name.to_string(),
                    ty: t,
                    list_count: Some(c),
                });
            }
            ["property", t, name] => {
                let el = elements
                    .last_mut()
                    .ok_or_else(|| fmt(format!("property `{name}` before any element")))?;
                let ty = Scalar::parse(t)
                    .ok_or_else(|| fmt(format!("property `{name}`: unknown type `{t}`")))?;
                if el.props.iter().any(|p| p.name == *name) {
                    return Err(fmt(format!(
                        "element `{}` declares `{name}` twice",
                        el.name
                    )));
                }
                el.props.push(Property {
                    name: name.to_string(),
                    ty,
                    list_count: None,
                });
            }
            _ => return Err(fmt(format!("unrecognised PLY header line `{l}`"))),
        }
    }
    let encoding = encoding.ok_or_else(|| fmt("PLY header has no `format` line".into()))?;
    let body = file_len.saturating_sub(len);
    let mut need = 0u64;
    for e in &elements {
        need = need.saturating_add(e.count.saturating_mul(e.minimal_row(encoding)));
        if need > body {
            return Err(fmt(format!(
                "element `{}` declares {} rows: at least {need} bytes of body, the file holds {body}",
                e.name, e.count
            )));
        }
    }
    Ok(Header {
        encoding,
        elements,
        comments,
        len,
    })
}

/// Reads a body element by element: the wanted columns of each element come back as
/// `f64` columns (lists are skipped).
struct Body<R> {
    r: R,
    enc: Encoding,
    /// ASCII: the rest of the current line's tokens.
    pending: std::collections::VecDeque<String>,
}

impl<R: BufRead + Seek> Body<R> {
    fn ascii_token(&mut self, path: &Path, what: &str) -> Result<String, SplatError> {
        loop {
            if let Some(t) = self.pending.pop_front() {
                return Ok(t);
            }
            let mut l = String::new();
            let n = self.r.read_line(&mut l).map_err(SplatError::io(path))?;
            if n == 0 {
                return Err(SplatError::format(
                    path,
                    format!("the file ends inside {what}"),
                ));
            }
            self.pending
                .extend(l.split_whitespace().map(str::to_string));
        }
    }

    /// Reads `el`'s rows, calling `sink(row_start, columns)` per chunk with the values of
    /// the properties `want` (indices into `el.props`), column-major.
    fn element(
        &mut self,
        path: &Path,
        el: &Element,
        want: &[usize],
        mut sink: impl FnMut(usize, &[Vec<f64>]) -> Result<(), SplatError>,
    ) -> Result<(), SplatError> {
        const CHUNK: usize = 1 << 14;
        let count = el.count as usize;
        let big = self.enc == Encoding::BinaryBe;
        let mut cols: Vec<Vec<f64>> = vec![Vec::with_capacity(CHUNK.min(count)); want.len()];
        let what = |row: usize| format!("row {row} of element `{}`", el.name);
        if let (Some(row), Encoding::BinaryLe | Encoding::BinaryBe) = (el.fixed_row(), self.enc) {
            if want.is_empty() {
                self.r
                    .seek(SeekFrom::Current((row * count) as i64))
                    .map_err(SplatError::io(path))?;
                return Ok(());
            }
            let offsets: Vec<usize> = el
                .props
                .iter()
                .scan(0, |o, p| {
                    let here = *o;
                    *o += p.ty.size();
                    Some(here)
                })
                .collect();
            let mut buf = vec![0u8; row * CHUNK.min(count)];
            let mut start = 0;
            while start < count {
                let n = CHUNK.min(count - start);
                let b = &mut buf[..row * n];
                self.r.read_exact(b).map_err(|e| {
                    if e.kind() == std::io::ErrorKind::UnexpectedEof {
                        SplatError::format(path, format!("the file ends inside {}", what(start)))
                    } else {
                        SplatError::Io {
                            path: path.into(),
                            source: e,
                        }
                    }
                })?;
                for (c, &pi) in cols.iter_mut().zip(want) {
                    c.clear();
                    decode_column(el.props[pi].ty, big, b, row, offsets[pi], c);
                }
                sink(start, &cols)?;
                start += n;
            }
            return Ok(());
        }
        // Rows with lists, or ASCII: one value at a time.
        let mut row_vals = vec![0f64; el.props.len()];
        let mut start = 0;
        for i in 0..count {
            for (j, p) in el.props.iter().enumerate() {
                if let Some(ct) = p.list_count {
                    let n = self.value(path, ct, big, &what(i))?;
                    if !(0.0..=1e6).contains(&n) || n.fract() != 0.0 {
                        return Err(SplatError::format(
                            path,
                            format!("{}: list `{}` has count {n}", what(i), p.name),
                        ));
                    }
                    for _ in 0..n as usize {
                        self.value(path, p.ty, big, &what(i))?;
                    }
                } else {
                    row_vals[j] = self.value(path, p.ty, big, &what(i))?;
                }
            }
            for (c, &pi) in cols.iter_mut().zip(want) {
                c.push(row_vals[pi]);
            }
            if cols.first().is_some_and(|c| c.len() == CHUNK)
                || (i + 1 == count && !want.is_empty())
            {
                sink(start, &cols)?;
                start = i + 1;
                cols.iter_mut().for_each(Vec::clear);
            }
        }
        Ok(())
    }

    fn value(&mut self, path: &Path, ty: Scalar, big: bool, what: &str) -> Result<f64, SplatError> {
        if self.enc == Encoding::Ascii {
            let t = self.ascii_token(path, what)?;
            return t.parse::<f64>().map_err(|_| {
                SplatError::format(path, format!("{what}: `{t}` is not a {}", ty.name()))
            });
        }
        let mut b = [0u8; 8];
        self.r
            .read_exact(&mut b[..ty.size()])
            .map_err(|_| SplatError::format(path, format!("the file ends inside {what}")))?;
        Ok(ty.decode(&b, big))
    }
}

/// Reads the whole PLY at `path` as Gaussians, keeping SH bands up to `max_sh` (the file's
/// own degree when lower).
pub fn read(path: &Path, max_sh: u8, max_count: u64) -> Result<(Header, Gaussians), SplatError> {
    let f = std::fs::File::open(path).map_err(SplatError::io(path))?;
    let file_len = f.metadata().map_err(SplatError::io(path))?.len();
    let mut r = BufReader::with_capacity(1 << 20, f);
    let header = read_header(&mut r, path, file_len)?;
    let vertex = header
        .element("vertex")
        .ok_or_else(|| SplatError::format(path, "PLY has no `vertex` element"))?;
    if vertex.count > max_count {
        return Err(SplatError::format(
            path,
            format!(
                "{} Gaussians exceed the limit of {max_count} ([splat] max_gaussians)",
                vertex.count
            ),
        ));
    }
    let mut body = Body {
        r,
        enc: header.encoding,
        pending: Default::default(),
    };
    let g = if vertex.index("packed_position").is_some() {
        read_compressed(path, &header, vertex, &mut body, max_sh)?
    } else {
        read_plain(path, &header, vertex, &mut body, max_sh)?
    };
    g.validate(path)?;
    Ok((header, g))
}

fn col(el: &Element, name: &str) -> Option<usize> {
    el.index(name).filter(|&i| el.props[i].list_count.is_none())
}

/// The Gaussians (or points) of a plain vertex element; columns arrive column-major
/// (`c[property][row]`) and move into the Gaussians a column at a time.
fn read_plain<R: BufRead + Seek>(
    path: &Path,
    header: &Header,
    v: &Element,
    body: &mut Body<R>,
    max_sh: u8,
) -> Result<Gaussians, SplatError> {
    let need = |name: &str| {
        col(v, name).ok_or_else(|| {
            SplatError::format(path, format!("vertex has no scalar property `{name}`"))
        })
    };
    let xyz = [need("x")?, need("y")?, need("z")?];
    let gauss = [
        "opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3", "f_dc_0",
        "f_dc_1", "f_dc_2",
    ];
    let present: Vec<Option<usize>> = gauss.iter().map(|n| col(v, n)).collect();
    let attributes = present.iter().all(Option::is_some);
    if !attributes && present.iter().any(Option::is_some) {
        let missing: Vec<&str> = gauss
            .iter()
            .zip(&present)
            .filter(|(_, p)| p.is_none())
            .map(|(n, _)| *n)
            .collect();
        return Err(SplatError::format(
            path,
            format!(
                "vertex has some 3DGS properties but not {}",
                missing.join(", ")
            ),
        ));
    }
    let rest: Vec<usize> = (0..)
        .map_while(|i| col(v, &format!("f_rest_{i}")))
        .collect();
    let file_deg = degree_of_rest(rest.len()).ok_or_else(|| {
        SplatError::format(
            path,
            format!(
                "{} f_rest_* properties is no SH degree (0, 9, 24 or 45)",
                rest.len()
            ),
        )
    })?;
    let deg = file_deg.min(max_sh);
    let (file_per, per) = (rest_per_channel(file_deg), rest_per_channel(deg));
    let rest_keep: Vec<usize> = (0..3)
        .flat_map(|c| (0..per).map(move |j| c * file_per + j))
        .map(|k| rest[k])
        .collect();
    let rgb: Option<Vec<usize>> = ["red", "green", "blue"].iter().map(|n| col(v, n)).collect();
    let rgb = rgb.filter(|_| !attributes);
    let mapped: std::collections::HashSet<usize> = xyz
        .iter()
        .copied()
        .chain(present.iter().flatten().copied())
        .chain(rest.iter().copied())
        .chain(rgb.iter().flatten().copied())
        .collect();
    let extra_idx: Vec<usize> = (0..v.props.len())
        .filter(|i| !mapped.contains(i) && v.props[*i].list_count.is_none())
        .collect();
    let mut want: Vec<usize> = xyz.to_vec();
    if attributes {
        want.extend(present.iter().flatten());
        want.extend(&rest_keep);
    }
    if let Some(c) = &rgb {
        want.extend(c);
    }
    let first_extra = want.len();
    want.extend(&extra_idx);

    let n = v.count as usize;
    let mut pos = Vec::with_capacity(n);
    let (mut ls, mut rot, mut op, mut dc) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut sh = Vec::new();
    let mut colours = Vec::new();
    if attributes {
        ls.reserve(n);
        rot.reserve(n);
        op.reserve(n);
        dc.reserve(n);
        sh.reserve(n * 3 * per);
    }
    let mut extra: Vec<(String, Vec<f32>)> = extra_idx
        .iter()
        .map(|&i| (v.props[i].name.clone(), Vec::with_capacity(n)))
        .collect();
    for e in &header.elements {
        if e.name != "vertex" {
            body.element(path, e, &[], |_, _| Ok(()))?;
            continue;
        }
        body.element(path, e, &want, |start, c| {
            // Whole columns at a time: `k` consecutive columns from `first` as rows of `K`.
            fn rows<const K: usize>(
                c: &[Vec<f64>],
                first: usize,
            ) -> impl Iterator<Item = [f32; K]> + '_ {
                (0..c[first].len()).map(move |r| std::array::from_fn(|a| c[first + a][r] as f32))
            }
            pos.extend(rows::<3>(c, 0));
            let mut k = 3;
            if attributes {
                op.extend(c[3].iter().map(|&v| sigmoid(v as f32)));
                ls.extend(rows::<3>(c, 4));
                for (r, q) in rows::<4>(c, 7).enumerate() {
                    rot.push(canonical_quat(q).ok_or_else(|| {
                        SplatError::format(
                            path,
                            format!(
                                "Gaussian {}: rotation (rot_0..3) {q:?} cannot be normalised",
                                start + r
                            ),
                        )
                    })?);
                }
                dc.extend(rows::<3>(c, 11));
                k = 14;
                let keep = &c[k..k + rest_keep.len()];
                for r in 0..c[0].len() {
                    sh.extend(keep.iter().map(|col| col[r] as f32));
                }
                k += rest_keep.len();
            }
            if rgb.is_some() {
                colours.extend(rows::<3>(c, k));
            }
            for (j, (_, col)) in extra.iter_mut().enumerate() {
                col.extend(c[first_extra + j].iter().map(|&v| v as f32));
            }
            Ok(())
        })?;
    }
    if attributes {
        return Ok(Gaussians {
            pos,
            log_scale: ls,
            rot,
            opacity: op,
            dc,
            sh_rest: sh,
            sh_degree: deg,
            attributes: true,
            extra,
        });
    }
    let mut g = Gaussians::points(pos);
    if let Some(ci) = &rgb {
        let full = if ci
            .iter()
            .any(|&i| matches!(v.props[i].ty, Scalar::F32 | Scalar::F64))
        {
            1.0
        } else {
            255.0
        };
        g.dc = colours
            .iter()
            .map(|c| c.map(|x| (x / full - 0.5) / SH_C0))
            .collect();
    }
    g.extra = extra;
    Ok(g)
}

/// PlayCanvas compressed PLY: 256 Gaussians per `chunk` row holding the position, log-scale
/// (and optionally colour) ranges; per Gaussian four packed `u32`s; optional `sh` bytes.
/// Decoded as PlayCanvas's splat-transform does (`decompress-ply.ts`).
#[allow(clippy::needless_range_loop)]
fn read_compressed<R: BufRead + Seek>(
    path: &Path,
    header: &Header,
    v: &Element,
    body: &mut Body<R>,
    max_sh: u8,
) -> Result<Gaussians, SplatError> {
    let fmt = |m: String| SplatError::format(path, m);
    let chunk = header.element("chunk").ok_or_else(|| {
        fmt("compressed PLY (`packed_position`) without a `chunk` element".into())
    })?;
    let n = v.count as usize;
    if chunk.count as usize != n.div_ceil(256) {
        return Err(fmt(format!(
            "{} chunks for {n} Gaussians (256 per chunk: {} expected)",
            chunk.count,
            n.div_ceil(256)
        )));
    }
    let names = [
        "min_x",
        "min_y",
        "min_z",
        "max_x",
        "max_y",
        "max_z",
        "min_scale_x",
        "min_scale_y",
        "min_scale_z",
        "max_scale_x",
        "max_scale_y",
        "max_scale_z",
    ];
    let colour_names = ["min_r", "min_g", "min_b", "max_r", "max_g", "max_b"];
    let mut cidx: Vec<usize> = names
        .iter()
        .map(|nm| col(chunk, nm).ok_or_else(|| fmt(format!("chunk has no property `{nm}`"))))
        .collect::<Result<_, _>>()?;
    let has_colour = colour_names.iter().all(|nm| col(chunk, nm).is_some());
    if has_colour {
        cidx.extend(colour_names.iter().map(|nm| col(chunk, nm).unwrap()));
    }
    let packed: Vec<usize> = [
        "packed_position",
        "packed_rotation",
        "packed_scale",
        "packed_color",
    ]
    .iter()
    .map(|nm| col(v, nm).ok_or_else(|| fmt(format!("vertex has no property `{nm}`"))))
    .collect::<Result<_, _>>()?;
    let mut chunks: Vec<Vec<f32>> = Vec::with_capacity(chunk.count as usize);
    let mut g = Gaussians {
        attributes: true,
        ..Default::default()
    };
    let mut sh_per = 0;
    for e in &header.elements {
        match e.name.as_str() {
            "chunk" => body.element(path, e, &cidx, |_, c| {
                let rows = c.first().map_or(0, Vec::len);
                chunks.extend((0..rows).map(|r| c.iter().map(|col| col[r] as f32).collect()));
                Ok(())
            })?,
            "vertex" => body.element(path, e, &packed, |start, c| {
                let rows = c[0].len();
                for r in 0..rows {
                    let i = start + r;
                    let ch = &chunks
                        .get(i / 256)
                        .ok_or_else(|| fmt("`vertex` precedes `chunk`".into()))?;
                    let [p, q, s, col] = [0, 1, 2, 3].map(|k| c[k][r] as u32);
                    let lerp = |lo: f32, hi: f32, t: f32| lo * (1.0 - t) + hi * t;
                    let (px, py, pz) = unpack_111011(p);
                    g.pos.push([
                        lerp(ch[0], ch[3], px),
                        lerp(ch[1], ch[4], py),
                        lerp(ch[2], ch[5], pz),
                    ]);
                    let (sx, sy, sz) = unpack_111011(s);
                    g.log_scale.push([
                        lerp(ch[6], ch[9], sx),
                        lerp(ch[7], ch[10], sy),
                        lerp(ch[8], ch[11], sz),
                    ]);
                    let quat = canonical_quat(unpack_rot(q)).ok_or_else(|| {
                        fmt(format!(
                            "Gaussian {i}: packed rotation cannot be normalised"
                        ))
                    })?;
                    g.rot.push(quat);
                    let u = |shift: u32| ((col >> shift) & 255) as f32 / 255.0;
                    let mut rgb = [u(24), u(16), u(8)];
                    if has_colour {
                        for (k, x) in rgb.iter_mut().enumerate() {
                            *x = lerp(ch[12 + k], ch[15 + k], *x);
                        }
                    }
                    g.dc.push(rgb.map(|x| (x - 0.5) / SH_C0));
                    g.opacity.push(u(0));
                }
                Ok(())
            })?,
            "sh" => {
                let rest: Vec<usize> = (0..)
                    .map_while(|i| col(e, &format!("f_rest_{i}")))
                    .collect();
                let file_deg = degree_of_rest(rest.len()).ok_or_else(|| {
                    fmt(format!(
                        "sh element: {} f_rest_* is no SH degree",
                        rest.len()
                    ))
                })?;
                if e.count != v.count {
                    return Err(fmt(format!(
                        "sh element has {} rows for {} Gaussians",
                        e.count, v.count
                    )));
                }
                let deg = file_deg.min(max_sh);
                let (fp, p) = (rest_per_channel(file_deg), rest_per_channel(deg));
                let keep: Vec<usize> = (0..3)
                    .flat_map(|c| (0..p).map(move |j| c * fp + j))
                    .map(|k| rest[k])
                    .collect();
                g.sh_degree = deg;
                sh_per = keep.len();
                g.sh_rest.reserve(n * sh_per);
                body.element(path, e, &keep, |_, c| {
                    for r in 0..c.first().map_or(0, Vec::len) {
                        for colm in c {
                            let b = colm[r];
                            let t = if b == 0.0 {
                                0.0
                            } else if b == 255.0 {
                                1.0
                            } else {
                                (b as f32 + 0.5) / 256.0
                            };
                            g.sh_rest.push((t - 0.5) * 8.0);
                        }
                    }
                    Ok(())
                })?;
            }
            _ => body.element(path, e, &[], |_, _| Ok(()))?,
        }
    }
    if g.sh_rest.len() != n * sh_per {
        return Err(fmt("sh element incomplete".into()));
    }
    Ok(g)
}

fn unorm(v: u32, bits: u32) -> f32 {
    let t = (1u32 << bits) - 1;
    (v & t) as f32 / t as f32
}

fn unpack_111011(v: u32) -> (f32, f32, f32) {
    (unorm(v >> 21, 11), unorm(v >> 11, 10), unorm(v, 11))
}

/// The largest component's index (in `rot_0..3` order) in the top two bits, the other three
/// in 10 bits each, scaled by √2.
fn unpack_rot(v: u32) -> [f32; 4] {
    let norm = std::f32::consts::SQRT_2;
    let a = (unorm(v >> 20, 10) - 0.5) * norm;
    let b = (unorm(v >> 10, 10) - 0.5) * norm;
    let c = (unorm(v, 10) - 0.5) * norm;
    let m = (1.0 - (a * a + b * b + c * c)).max(0.0).sqrt();
    match v >> 30 {
        0 => [m, a, b, c],
        1 => [a, m, b, c],
        2 => [a, b, m, c],
        _ => [a, b, c, m],
    }
}

/// Writes Gaussians as an INRIA 3DGS PLY (`binary` little-endian or ASCII), or a point set
/// as `x y z` only; the inverse of [`read`] (opacity back to a logit).
pub fn write(path: &Path, g: &Gaussians, encoding: Encoding) -> Result<(), SplatError> {
    let mut names: Vec<String> = ["x", "y", "z"].map(String::from).to_vec();
    if g.attributes {
        names.extend(["f_dc_0", "f_dc_1", "f_dc_2"].map(String::from));
        names.extend((0..g.rest_len()).map(|i| format!("f_rest_{i}")));
        names.extend(
            [
                "opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3",
            ]
            .map(String::from),
        );
    }
    names.extend(g.extra.iter().map(|(n, _)| n.clone()));
    let mut out = format!(
        "ply\nformat {} 1.0\nelement vertex {}\n",
        encoding.name(),
        g.len()
    );
    for n in &names {
        out += &format!("property float {n}\n");
    }
    out += "end_header\n";
    let mut bytes = out.into_bytes();
    let mut row = Vec::with_capacity(names.len());
    for i in 0..g.len() {
        row.clear();
        row.extend(g.pos[i]);
        if g.attributes {
            row.extend(g.dc[i]);
            let k = g.rest_len();
            row.extend(&g.sh_rest[i * k..(i + 1) * k]);
            row.push(logit(g.opacity[i]));
            row.extend(g.log_scale[i]);
            row.extend(g.rot[i]);
        }
        row.extend(g.extra.iter().map(|(_, c)| c[i]));
        match encoding {
            Encoding::Ascii => {
                let s: Vec<String> = row.iter().map(|v| format!("{v:?}")).collect();
                bytes.extend(s.join(" ").bytes());
                bytes.push(b'\n');
            }
            Encoding::BinaryLe => row.iter().for_each(|v| bytes.extend(v.to_le_bytes())),
            Encoding::BinaryBe => row.iter().for_each(|v| bytes.extend(v.to_be_bytes())),
        }
    }
    let mut f = std::fs::File::create(path).map_err(SplatError::io(path))?;
    f.write_all(&bytes).map_err(SplatError::io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_packing_matches_playcanvas() {
        // largest = w (index 0), the rest zero: 0.5 in each 10-bit slot.
        let half = 512u32; // (512/1023 - 0.5) * sqrt2 ≈ 0.0007
        let v = (half << 20) | (half << 10) | half;
        let q = unpack_rot(v);
        assert!((q[0] - 1.0).abs() < 1e-5 && q[1].abs() < 1e-3);
        let (x, y, z) = unpack_111011(u32::MAX);
        assert_eq!((x, y, z), (1.0, 1.0, 1.0));
    }
}
