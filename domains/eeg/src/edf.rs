//! EDF, EDF+ (continuous and discontinuous), BDF and BDF+: an own reader and writer.
//!
//! The header is 256 bytes plus 256 per signal, every field fixed-width ASCII. Data
//! records follow, each holding `samples_per_record` samples of every signal in turn:
//! little-endian 16-bit integers (EDF) or 24-bit (BDF). A signal's physical value is
//! `(d − dmin)·(pmax − pmin)/(dmax − dmin) + pmin`, computed per signal with that signal's
//! own header (one signal's scaling is never applied to another). EDF+ adds annotation
//! signals (`EDF Annotations` / `BDF Annotations`) holding time-stamped annotation lists
//! (TALs: `+onset[\x15duration]\x14text\x14…\x00`); the first TAL of each record in the
//! first annotation signal keeps time (the record's onset), which places the records of a
//! discontinuous file (`EDF+D`) on the time line.
//!
//! Every size comes from the header and is checked against the file's length before
//! anything is allocated: a header that declares more records or signals than the file
//! holds, a digital minimum equal to the maximum, zero samples per record, a truncated
//! last record are errors naming the file and the field, never a panic. Labels are
//! UTF-8 when valid, else Latin-1 (as older writers store `µV`).

use crate::EegError;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// EDF (16-bit samples) or BDF (24-bit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Width {
    Edf,
    Bdf,
}

impl Width {
    pub fn bytes(self) -> usize {
        match self {
            Width::Edf => 2,
            Width::Bdf => 3,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Width::Edf => "EDF",
            Width::Bdf => "BDF",
        }
    }
    /// The smallest and largest digital value a sample can hold.
    pub fn digital_limits(self) -> (i64, i64) {
        match self {
            Width::Edf => (-32768, 32767),
            Width::Bdf => (-8388608, 8388607),
        }
    }
}

/// The EDF+ flavour of the reserved field, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plus {
    Continuous,
    Discontinuous,
}

/// One signal's header.
#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    pub label: String,
    pub transducer: String,
    /// Physical dimension as written (`uV`, `µV`, `mV`, …).
    pub unit: String,
    pub physical_min: f64,
    pub physical_max: f64,
    pub digital_min: i64,
    pub digital_max: i64,
    pub prefilter: String,
    pub samples_per_record: usize,
    /// Sample offset of this signal inside a record.
    pub offset: usize,
    /// An EDF+/BDF+ annotation signal.
    pub annotation: bool,
}

impl Signal {
    /// `(gain, offset)` with `physical = gain · digital + offset`.
    pub fn scaling(&self) -> (f64, f64) {
        let gain =
            (self.physical_max - self.physical_min) / (self.digital_max - self.digital_min) as f64;
        (gain, self.physical_min - gain * self.digital_min as f64)
    }

    /// Samples per second given the record duration.
    pub fn rate_hz(&self, record_duration_s: f64) -> f64 {
        self.samples_per_record as f64 / record_duration_s
    }

    /// Factor from this signal's unit to microvolts, when it is a voltage.
    pub fn to_microvolts(&self) -> Option<f64> {
        let u = self.unit.trim();
        let lower = u.to_ascii_lowercase();
        match lower.as_str() {
            "uv" | "µv" | "μv" => Some(1.0),
            "mv" => Some(1e3),
            "v" => Some(1e6),
            "nv" => Some(1e-3),
            _ if u == "\u{b5}V" || u == "\u{3bc}V" => Some(1.0),
            _ => None,
        }
    }
}

/// The whole header, checked against the file.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub width: Width,
    pub plus: Option<Plus>,
    pub patient: String,
    pub recording: String,
    pub start_date: String,
    pub start_time: String,
    pub header_bytes: usize,
    /// Data records in the file (`-1` in the header resolved from the file's length).
    pub records: usize,
    /// The header's record count as written (`-1` while recording).
    pub declared_records: i64,
    pub record_duration_s: f64,
    pub signals: Vec<Signal>,
    /// Bytes per data record.
    pub record_bytes: usize,
    pub file_bytes: u64,
}

impl Header {
    /// `EDF`, `EDF+C`, `EDF+D`, `BDF`, `BDF+C`, `BDF+D`.
    pub fn format(&self) -> String {
        let w = self.width.name();
        match self.plus {
            None => w.into(),
            Some(Plus::Continuous) => format!("{w}+C"),
            Some(Plus::Discontinuous) => format!("{w}+D"),
        }
    }

    /// Seconds covered by the data records (gaps of an EDF+D file not counted).
    pub fn recorded_s(&self) -> f64 {
        self.records as f64 * self.record_duration_s
    }

    /// Indices of the ordinary (non-annotation) signals.
    pub fn data_signals(&self) -> Vec<usize> {
        (0..self.signals.len())
            .filter(|&i| !self.signals[i].annotation)
            .collect()
    }

    /// Record onsets of a file whose records follow each other from `t0`.
    pub fn regular_onsets(&self, t0: f64) -> Vec<f64> {
        (0..self.records)
            .map(|r| t0 + r as f64 * self.record_duration_s)
            .collect()
    }

    /// Runs of records `start..end` that follow each other without a gap, given their
    /// onsets (one run unless the file is discontinuous).
    pub fn contiguous_runs(&self, onsets: &[f64]) -> Vec<(usize, usize)> {
        let dur = self.record_duration_s;
        let mut runs: Vec<(usize, usize)> = Vec::new();
        for r in 0..onsets.len() {
            match runs.last_mut() {
                Some((_, end))
                    if (onsets[r] - (onsets[r - 1] + dur)).abs() <= 1e-3 * dur.max(1e-3) =>
                {
                    *end = r + 1
                }
                _ => runs.push((r, r + 1)),
            }
        }
        runs
    }
}

/// A file's annotations (sorted by onset) and the onset of each data record, in seconds
/// from the file's start.
pub type Timeline = (Vec<Annotation>, Vec<f64>);

/// One annotation of an EDF+ file: onset in seconds from the file's start.
#[derive(Debug, Clone, PartialEq)]
pub struct Annotation {
    pub onset_s: f64,
    pub duration_s: Option<f64>,
    pub text: String,
}

fn text(bytes: &[u8]) -> String {
    let trimmed: &[u8] = {
        let end = bytes
            .iter()
            .rposition(|&b| b != b' ' && b != 0)
            .map_or(0, |i| i + 1);
        let start = bytes[..end].iter().position(|&b| b != b' ').unwrap_or(end);
        &bytes[start..end]
    };
    match std::str::from_utf8(trimmed) {
        Ok(s) => s.to_string(),
        Err(_) => trimmed.iter().map(|&b| b as char).collect(),
    }
}

/// An open EDF/BDF file with its checked header.
#[derive(Debug)]
pub struct Edf {
    pub path: PathBuf,
    pub header: Header,
    file: File,
}

impl Edf {
    fn corrupt(&self, reason: impl Into<String>) -> EegError {
        corrupt(&self.path, self.header.width, reason)
    }

    /// Opens `path` and checks its header against the file's length.
    pub fn open(path: &Path) -> Result<Edf, EegError> {
        let mut file = File::open(path).map_err(|e| EegError::io(path, e))?;
        let file_bytes = file.metadata().map_err(|e| EegError::io(path, e))?.len();
        let mut fixed = [0u8; 256];
        if file_bytes < 256 {
            return Err(EegError::NotEdf {
                path: path.into(),
                reason: format!("{file_bytes} bytes, shorter than the 256-byte header"),
            });
        }
        file.read_exact(&mut fixed)
            .map_err(|e| EegError::io(path, e))?;
        let width = if fixed[0] == 0xFF && &fixed[1..8] == b"BIOSEMI" {
            Width::Bdf
        } else if text(&fixed[..8]) == "0" {
            Width::Edf
        } else {
            return Err(EegError::NotEdf {
                path: path.into(),
                reason: format!(
                    "version field `{}` is neither `0` (EDF) nor 0xFF`BIOSEMI` (BDF)",
                    text(&fixed[..8]).escape_default()
                ),
            });
        };
        let bad = |reason: String| corrupt(path, width, reason);
        let num = |range: std::ops::Range<usize>, field: &str| -> Result<f64, EegError> {
            let s = text(&fixed[range]);
            s.replace(',', ".")
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| bad(format!("{field} `{}` is not a number", s.escape_default())))
        };
        let header_bytes = num(184..192, "header size")?;
        let declared_records = num(236..244, "number of data records")?;
        let record_duration_s = num(244..252, "duration of a data record")?;
        let ns = num(252..256, "number of signals")?;
        if ns < 1.0 || ns.fract() != 0.0 {
            return Err(bad(format!(
                "number of signals {ns} is not a positive integer"
            )));
        }
        let ns = ns as usize;
        if 256 * (ns as u64 + 1) > file_bytes {
            return Err(bad(format!(
                "number of signals {ns} needs a {}-byte header but the file has {file_bytes} bytes",
                256 * (ns + 1)
            )));
        }
        if header_bytes != (256 * (ns + 1)) as f64 {
            return Err(bad(format!(
                "header size field says {header_bytes} bytes but {ns} signals need {}",
                256 * (ns + 1)
            )));
        }
        if record_duration_s.is_nan() || record_duration_s < 0.0 {
            return Err(bad(format!(
                "duration of a data record {record_duration_s} s is negative"
            )));
        }
        let reserved = text(&fixed[192..236]);
        let plus = if reserved.starts_with("EDF+D") || reserved.starts_with("BDF+D") {
            Some(Plus::Discontinuous)
        } else if reserved.starts_with("EDF+C") || reserved.starts_with("BDF+C") {
            Some(Plus::Continuous)
        } else {
            None
        };
        let mut sig = vec![0u8; 256 * ns];
        file.read_exact(&mut sig)
            .map_err(|e| EegError::io(path, e))?;
        let field = |offset: usize, len: usize, i: usize| -> &[u8] {
            let start = ns * offset + i * len;
            &sig[start..start + len]
        };
        let mut signals = Vec::with_capacity(ns);
        let mut offset = 0usize;
        for i in 0..ns {
            let label = text(field(0, 16, i));
            let what = |f: &str| format!("signal {} (`{}`) {f}", i + 1, label.escape_default());
            let n = |off: usize, len: usize, f: &str| -> Result<f64, EegError> {
                let s = text(field(off, len, i));
                s.replace(',', ".")
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .ok_or_else(|| {
                        bad(format!(
                            "{} `{}` is not a number",
                            what(f),
                            s.escape_default()
                        ))
                    })
            };
            let physical_min = n(104, 8, "physical minimum")?;
            let physical_max = n(112, 8, "physical maximum")?;
            let digital_min = n(120, 8, "digital minimum")?;
            let digital_max = n(128, 8, "digital maximum")?;
            let spr = n(216, 8, "samples per record")?;
            let annotation = matches!(label.as_str(), "EDF Annotations" | "BDF Annotations");
            if spr < 1.0 || spr.fract() != 0.0 || spr > 1e9 {
                return Err(bad(format!(
                    "{} {spr} is not a positive integer",
                    what("samples per record")
                )));
            }
            let (lo, hi) = width.digital_limits();
            let (lo, hi) = (lo as f64, hi as f64);
            if !annotation {
                if digital_min == digital_max {
                    return Err(bad(format!(
                        "{} equals the digital maximum ({digital_min}): the scaling divides by zero",
                        what("digital minimum")
                    )));
                }
                if digital_min.fract() != 0.0
                    || digital_max.fract() != 0.0
                    || digital_min < lo
                    || digital_max > hi
                {
                    return Err(bad(format!(
                        "{} and maximum {digital_min}..{digital_max} are not integers in {lo}..{hi}",
                        what("digital minimum")
                    )));
                }
            }
            signals.push(Signal {
                transducer: text(field(16, 80, i)),
                unit: text(field(96, 8, i)),
                physical_min,
                physical_max,
                digital_min: digital_min as i64,
                digital_max: digital_max as i64,
                prefilter: text(field(136, 80, i)),
                samples_per_record: spr as usize,
                offset,
                annotation,
                label,
            });
            offset += spr as usize;
        }
        let record_bytes = offset
            .checked_mul(width.bytes())
            .filter(|&b| b as u64 <= file_bytes)
            .ok_or_else(|| {
                bad(format!(
                    "the signals' samples per record add up to {offset}, more than the file holds"
                ))
            })?;
        let data_bytes = file_bytes - header_bytes as u64;
        let records = if declared_records == -1.0 {
            if !data_bytes.is_multiple_of(record_bytes as u64) {
                return Err(bad(format!(
                    "record count is -1 and the data ({data_bytes} bytes) is not a whole number of {record_bytes}-byte records: the last record is truncated"
                )));
            }
            (data_bytes / record_bytes as u64) as usize
        } else {
            if declared_records < 0.0 || declared_records.fract() != 0.0 {
                return Err(bad(format!(
                    "number of data records {declared_records} is not a count"
                )));
            }
            let need = declared_records * record_bytes as f64;
            if need > data_bytes as f64 {
                let whole = data_bytes / record_bytes as u64;
                return Err(bad(format!(
                    "header declares {declared_records} data records of {record_bytes} bytes ({} bytes with the header) but the file has {file_bytes} bytes: {whole} whole record(s){}",
                    need as u64 + header_bytes as u64,
                    if !data_bytes.is_multiple_of(record_bytes as u64) { " and a truncated one" } else { "" }
                )));
            }
            if data_bytes as f64 - need >= record_bytes as f64 {
                return Err(bad(format!(
                    "header declares {declared_records} data records but the file holds {} more bytes than that (at least one more record): a wrong record count",
                    data_bytes as f64 - need
                )));
            }
            declared_records as usize
        };
        let has_annotations = signals.iter().any(|s| s.annotation);
        if record_duration_s == 0.0 && signals.iter().any(|s| !s.annotation) {
            return Err(bad(
                "duration of a data record is 0 but the file holds ordinary signals (only annotation-only files may)"
                    .into(),
            ));
        }
        if plus.is_some() && !has_annotations {
            return Err(bad(format!(
                "reserved field says `{}` but no `EDF Annotations` signal is present",
                reserved
            )));
        }
        let header = Header {
            width,
            plus,
            patient: text(&fixed[8..88]),
            recording: text(&fixed[88..168]),
            start_date: text(&fixed[168..176]),
            start_time: text(&fixed[176..184]),
            header_bytes: header_bytes as usize,
            records,
            declared_records: declared_records as i64,
            record_duration_s,
            signals,
            record_bytes,
            file_bytes,
        };
        Ok(Edf {
            path: path.to_path_buf(),
            header,
            file,
        })
    }

    /// The raw bytes of records `first..first + count`.
    pub fn read_records(&mut self, first: usize, count: usize) -> Result<Vec<u8>, EegError> {
        let h = &self.header;
        if first + count > h.records {
            return Err(self.corrupt(format!(
                "records {first}..{} asked for, the file has {}",
                first + count,
                h.records
            )));
        }
        let start = h.header_bytes as u64 + (first * h.record_bytes) as u64;
        let mut buf = vec![0u8; count * h.record_bytes];
        self.file
            .seek(SeekFrom::Start(start))
            .and_then(|_| self.file.read_exact(&mut buf))
            .map_err(|e| EegError::io(&self.path, e))?;
        Ok(buf)
    }

    /// Physical values of signals `which` over records `first..first + count`, one vector
    /// per signal (`count · samples_per_record` values each).
    pub fn read_physical(
        &mut self,
        which: &[usize],
        first: usize,
        count: usize,
    ) -> Result<Vec<Vec<f64>>, EegError> {
        let raw = self.read_records(first, count)?;
        Ok(decode_physical(&self.header, &raw, which, count))
    }

    /// The onset of each data record in seconds from the file's start, reading only the
    /// time-keeping annotation bytes it needs: record 0's for EDF+C (records follow each
    /// other from there), every record's for EDF+D, none for plain EDF/BDF (`r · duration`).
    pub fn record_onsets(&mut self) -> Result<Vec<f64>, EegError> {
        let h = self.header.clone();
        let Some(sig) = h.signals.iter().find(|s| s.annotation) else {
            return Ok(h.regular_onsets(0.0));
        };
        let w = h.width.bytes();
        let path = self.path.clone();
        let mut keeper = |r: usize| -> Result<Option<f64>, EegError> {
            let mut buf = vec![0u8; sig.samples_per_record * w];
            let at = h.header_bytes as u64 + (r * h.record_bytes + sig.offset * w) as u64;
            self.file
                .seek(SeekFrom::Start(at))
                .and_then(|_| self.file.read_exact(&mut buf))
                .map_err(|e| EegError::io(&self.path, e))?;
            let tals = parse_tals(&buf).map_err(|e| {
                corrupt(
                    &self.path,
                    h.width,
                    format!("record {r} time-keeping annotation: {e}"),
                )
            })?;
            Ok(time_keeping(&tals))
        };
        if h.records == 0 {
            return Ok(Vec::new());
        }
        if h.plus != Some(Plus::Discontinuous) {
            return Ok(h.regular_onsets(keeper(0)?.unwrap_or(0.0)));
        }
        let mut onsets = Vec::with_capacity(h.records);
        for r in 0..h.records {
            match keeper(r)? {
                Some(t) => onsets.push(t),
                None => {
                    return Err(corrupt(
                        &path,
                        h.width,
                        format!("EDF+D record {r} does not start with a time-keeping annotation"),
                    ))
                }
            }
        }
        Ok(onsets)
    }

    /// Every annotation of every annotation signal (time-keeping TALs left out), and the
    /// onset of each data record in seconds from the file's start (from the time-keeping
    /// TALs of EDF+, `r · duration` otherwise).
    pub fn annotations(&mut self) -> Result<Timeline, EegError> {
        let h = &self.header;
        if !h.signals.iter().any(|s| s.annotation) {
            return Ok((Vec::new(), h.regular_onsets(0.0)));
        }
        let mut scan = AnnotationScan::default();
        // Records are read in chunks of about 4 MB to bound memory on long recordings.
        let chunk = (4 << 20) / h.record_bytes.max(1) + 1;
        let mut r0 = 0;
        while r0 < self.header.records {
            let n = chunk.min(self.header.records - r0);
            let raw = self.read_records(r0, n)?;
            self.scan_annotations(&raw, r0, &mut scan)?;
            r0 += n;
        }
        self.finish_annotations(scan)
    }

    /// Physical values of signals `which` over the whole file, its annotations and its
    /// record onsets, from one read of the data.
    pub fn read_all(&mut self, which: &[usize]) -> Result<(Vec<Vec<f64>>, Timeline), EegError> {
        let records = self.header.records;
        let raw = self.read_records(0, records)?;
        let mut scan = AnnotationScan::default();
        self.scan_annotations(&raw, 0, &mut scan)?;
        let timeline = self.finish_annotations(scan)?;
        Ok((
            decode_physical(&self.header, &raw, which, records),
            timeline,
        ))
    }

    /// Adds the annotations and time-keeping onsets of raw records `first..` to `scan`.
    fn scan_annotations(
        &self,
        raw: &[u8],
        first: usize,
        scan: &mut AnnotationScan,
    ) -> Result<(), EegError> {
        let h = &self.header;
        let w = h.width.bytes();
        let ann: Vec<usize> = (0..h.signals.len())
            .filter(|&i| h.signals[i].annotation)
            .collect();
        for (r, rec) in raw.chunks_exact(h.record_bytes).enumerate() {
            for (k, &s) in ann.iter().enumerate() {
                let sig = &h.signals[s];
                let bytes = &rec[sig.offset * w..(sig.offset + sig.samples_per_record) * w];
                let tals = parse_tals(bytes).map_err(|e| {
                    self.corrupt(format!(
                        "record {} annotation signal {}: {e}",
                        first + r,
                        s + 1
                    ))
                })?;
                if k == 0 {
                    scan.onsets.push(time_keeping(&tals).unwrap_or(f64::NAN));
                }
                for t in tals {
                    for text in t.texts.into_iter().filter(|x| !x.is_empty()) {
                        scan.annotations.push(Annotation {
                            onset_s: t.onset_s,
                            duration_s: t.duration_s,
                            text,
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// Sorted annotations and record onsets (regular from record 0's onset when some
    /// record lacks a time-keeping TAL, an error for EDF+D).
    fn finish_annotations(&self, mut scan: AnnotationScan) -> Result<Timeline, EegError> {
        if scan.onsets.iter().any(|v| v.is_nan()) {
            if self.header.plus == Some(Plus::Discontinuous) {
                return Err(self.corrupt(
                    "EDF+D file whose records do not all start with a time-keeping annotation",
                ));
            }
            let t0 = scan
                .onsets
                .first()
                .copied()
                .filter(|v| v.is_finite())
                .unwrap_or(0.0);
            scan.onsets = self.header.regular_onsets(t0);
        }
        scan.annotations
            .sort_by(|a, b| a.onset_s.total_cmp(&b.onset_s));
        Ok((scan.annotations, scan.onsets))
    }
}

/// Annotations and time-keeping onsets gathered record by record.
#[derive(Default)]
struct AnnotationScan {
    annotations: Vec<Annotation>,
    onsets: Vec<f64>,
}

/// The record onset a record's TALs keep: the first TAL's, when its first text is empty.
fn time_keeping(tals: &[Tal]) -> Option<f64> {
    tals.first()
        .filter(|t| t.texts.first().is_none_or(|x| x.is_empty()))
        .map(|t| t.onset_s)
}

fn corrupt(path: &Path, width: Width, reason: impl Into<String>) -> EegError {
    EegError::Corrupt {
        path: path.to_path_buf(),
        format: width.name(),
        reason: reason.into(),
    }
}

/// Physical values of signals `which` from `count` raw records.
pub fn decode_physical(h: &Header, raw: &[u8], which: &[usize], count: usize) -> Vec<Vec<f64>> {
    let w = h.width.bytes();
    which
        .iter()
        .map(|&s| {
            let sig = &h.signals[s];
            let (gain, off) = sig.scaling();
            let n = sig.samples_per_record;
            let mut out = Vec::with_capacity(n * count);
            for r in 0..count {
                let start = r * h.record_bytes + sig.offset * w;
                let bytes = &raw[start..start + n * w];
                match h.width {
                    Width::Edf => out.extend(
                        bytes
                            .chunks_exact(2)
                            .map(|b| gain * i16::from_le_bytes([b[0], b[1]]) as f64 + off),
                    ),
                    Width::Bdf => out.extend(bytes.chunks_exact(3).map(|b| {
                        let v = i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8;
                        gain * v as f64 + off
                    })),
                }
            }
            out
        })
        .collect()
}

struct Tal {
    onset_s: f64,
    duration_s: Option<f64>,
    texts: Vec<String>,
}

/// The TALs in one record's annotation bytes.
fn parse_tals(bytes: &[u8]) -> Result<Vec<Tal>, String> {
    let mut out = Vec::new();
    for tal in bytes.split(|&b| b == 0).filter(|t| !t.is_empty()) {
        let mut parts = tal.split(|&b| b == 0x14);
        let time = parts.next().unwrap_or_default();
        let (onset, duration) = match time.iter().position(|&b| b == 0x15) {
            Some(i) => (&time[..i], Some(&time[i + 1..])),
            None => (time, None),
        };
        let onset_text = String::from_utf8_lossy(onset);
        if !(onset_text.starts_with('+') || onset_text.starts_with('-')) {
            return Err(format!(
                "annotation onset `{}` does not start with + or -",
                onset_text.escape_default()
            ));
        }
        let onset_s: f64 = onset_text.parse().map_err(|_| {
            format!(
                "annotation onset `{}` is not a number",
                onset_text.escape_default()
            )
        })?;
        let duration_s = match duration {
            Some(d) if !d.is_empty() => {
                let d = String::from_utf8_lossy(d);
                Some(d.parse::<f64>().map_err(|_| {
                    format!(
                        "annotation duration `{}` is not a number",
                        d.escape_default()
                    )
                })?)
            }
            _ => None,
        };
        let mut texts: Vec<String> = parts.map(text).collect();
        // The list ends with \x14 before \x00, which leaves one empty piece.
        if texts.last().is_some_and(|t| t.is_empty()) {
            texts.pop();
        }
        out.push(Tal {
            onset_s,
            duration_s,
            texts,
        });
    }
    Ok(out)
}

/// One signal to write: physical values and the header that scales them.
#[derive(Debug, Clone)]
pub struct WriteSignal {
    pub label: String,
    pub unit: String,
    pub physical_min: f64,
    pub physical_max: f64,
    pub digital_min: i64,
    pub digital_max: i64,
    pub prefilter: String,
    pub samples_per_record: usize,
    pub data: Vec<f64>,
}

/// A file to write. For EDF+ (`plus`) an annotation signal is added holding each record's
/// time-keeping TAL (from `record_onsets_s`, or `r · duration`) and the annotations.
#[derive(Debug, Clone)]
pub struct WriteSpec {
    pub width: Width,
    pub plus: Option<Plus>,
    pub record_duration_s: f64,
    pub signals: Vec<WriteSignal>,
    pub annotations: Vec<Annotation>,
    pub record_onsets_s: Option<Vec<f64>>,
    pub patient: String,
    pub recording: String,
}

fn field(out: &mut Vec<u8>, s: &str, len: usize) {
    let b = s.as_bytes();
    let n = b.len().min(len);
    out.extend_from_slice(&b[..n]);
    out.extend(std::iter::repeat_n(b' ', len - n));
}

fn num_field(v: f64) -> String {
    let s = format!("{v}");
    if s.len() <= 8 {
        return s;
    }
    for p in (0..8).rev() {
        let s = format!("{v:.p$}");
        if s.len() <= 8 {
            return s;
        }
    }
    format!("{}", v as i64)
}

fn fmt_time(t: f64) -> String {
    let s = format!("{t:+.6}");
    let s = s.trim_end_matches('0');
    s.trim_end_matches('.').to_string()
}

/// Writes `spec` to `path`. Records whose data runs out are padded with the digital
/// minimum; the record count is `ceil(longest signal / samples_per_record)`.
pub fn write(path: &Path, spec: &WriteSpec) -> Result<(), EegError> {
    let w = spec.width.bytes();
    let records = spec
        .signals
        .iter()
        .map(|s| s.data.len().div_ceil(s.samples_per_record.max(1)))
        .max()
        .unwrap_or(0)
        .max(1);
    let onsets: Vec<f64> = match &spec.record_onsets_s {
        Some(o) => o.clone(),
        None => (0..records)
            .map(|r| r as f64 * spec.record_duration_s)
            .collect(),
    };
    // Annotation texts per record: each annotation goes to the record it falls in.
    let mut tals: Vec<Vec<u8>> = onsets
        .iter()
        .map(|o| {
            let mut t = fmt_time(*o).into_bytes();
            t.extend_from_slice(&[0x14, 0x14, 0]);
            t
        })
        .collect();
    for a in &spec.annotations {
        let r = onsets
            .iter()
            .rposition(|&o| o <= a.onset_s)
            .unwrap_or(0)
            .min(tals.len().saturating_sub(1));
        let t = &mut tals[r];
        t.extend(fmt_time(a.onset_s).bytes());
        if let Some(d) = a.duration_s {
            t.push(0x15);
            t.extend(fmt_time(d).trim_start_matches('+').bytes());
        }
        t.push(0x14);
        t.extend(a.text.bytes());
        t.extend_from_slice(&[0x14, 0]);
    }
    // Every signal's header as a reader sees it (numbers as written in 8 characters).
    let header_value = |v: f64| num_field(v).parse::<f64>().unwrap_or(v);
    let header = |label: &str,
                  unit: &str,
                  pmin: f64,
                  pmax: f64,
                  dmin: i64,
                  dmax: i64,
                  prefilter: &str,
                  spr: usize| Signal {
        label: label.into(),
        transducer: String::new(),
        unit: unit.into(),
        physical_min: header_value(pmin),
        physical_max: header_value(pmax),
        digital_min: dmin,
        digital_max: dmax,
        prefilter: prefilter.into(),
        samples_per_record: spr,
        offset: 0,
        annotation: false,
    };
    let mut signals: Vec<Signal> = spec
        .signals
        .iter()
        .map(|s| {
            header(
                &s.label,
                &s.unit,
                s.physical_min,
                s.physical_max,
                s.digital_min,
                s.digital_max,
                &s.prefilter,
                s.samples_per_record,
            )
        })
        .collect();
    let ann_spr = if spec.plus.is_some() {
        let longest = tals.iter().map(Vec::len).max().unwrap_or(0);
        let spr = longest.div_ceil(w).max(1);
        let (lo, hi) = spec.width.digital_limits();
        let label = match spec.width {
            Width::Edf => "EDF Annotations",
            Width::Bdf => "BDF Annotations",
        };
        signals.push(header(label, "", -1.0, 1.0, lo, hi, "", spr));
        spr
    } else {
        0
    };
    let ns = signals.len();
    let mut out = Vec::new();
    match spec.width {
        Width::Edf => field(&mut out, "0", 8),
        Width::Bdf => {
            out.push(0xFF);
            out.extend_from_slice(b"BIOSEMI");
        }
    }
    field(&mut out, &spec.patient, 80);
    field(&mut out, &spec.recording, 80);
    field(&mut out, "01.01.26", 8);
    field(&mut out, "00.00.00", 8);
    field(&mut out, &(256 * (ns + 1)).to_string(), 8);
    let reserved = match (spec.width, spec.plus) {
        (Width::Edf, Some(Plus::Continuous)) => "EDF+C",
        (Width::Edf, Some(Plus::Discontinuous)) => "EDF+D",
        (Width::Bdf, Some(Plus::Continuous)) => "BDF+C",
        (Width::Bdf, Some(Plus::Discontinuous)) => "BDF+D",
        (Width::Bdf, None) => "24BIT",
        (Width::Edf, None) => "",
    };
    field(&mut out, reserved, 44);
    field(&mut out, &records.to_string(), 8);
    field(&mut out, &num_field(spec.record_duration_s), 8);
    field(&mut out, &ns.to_string(), 4);
    type Column = (usize, fn(&Signal) -> String);
    let cols: [Column; 10] = [
        (16, |s| s.label.clone()),
        (80, |_| String::new()),
        (8, |s| s.unit.clone()),
        (8, |s| num_field(s.physical_min)),
        (8, |s| num_field(s.physical_max)),
        (8, |s| s.digital_min.to_string()),
        (8, |s| s.digital_max.to_string()),
        (80, |s| s.prefilter.clone()),
        (8, |s| s.samples_per_record.to_string()),
        (32, |_| String::new()),
    ];
    for (len, f) in cols {
        for s in &signals {
            field(&mut out, &f(s), len);
        }
    }
    for r in 0..records {
        for (s, h) in spec.signals.iter().zip(&signals) {
            let (gain, off) = h.scaling();
            for i in 0..s.samples_per_record {
                let d = match s.data.get(r * s.samples_per_record + i) {
                    Some(v) => ((v - off) / gain)
                        .round()
                        .clamp(s.digital_min as f64, s.digital_max as f64)
                        as i64,
                    None => s.digital_min,
                };
                out.extend_from_slice(&(d as i32).to_le_bytes()[..w]);
            }
        }
        if ann_spr > 0 {
            let mut t = tals.get(r).cloned().unwrap_or_default();
            t.resize(ann_spr * w, 0);
            out.extend_from_slice(&t);
        }
    }
    let mut f = File::create(path).map_err(|e| EegError::io(path, e))?;
    f.write_all(&out).map_err(|e| EegError::io(path, e))
}
