//! Tar shards in the WebDataset convention: a sample is the consecutive members that
//! share a key (`000000007.wav`, `000000007.json`), so shards are written and read
//! front to back. Tessera writes POSIX ustar shards (`shard` subcommand) and reads ustar,
//! GNU (long names, base-256 sizes) and pax (`path`, `size`) archives, such as Python's
//! `tarfile` and `webdataset` write. Every header is checked (checksum, sizes against
//! the file) when a shard is listed, before any member is read.
//!
//! A member of a shard is named `shard.tar#member=KEY.EXT` in a data list; the reading
//! commands copy it to a scratch file `…/tessera-shards-PID/N/shard.tar/KEY.EXT` (so a
//! reader's error names the shard and the member) and decode that.

use crate::DataItem;
use anyhow::{bail, Context};
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// One regular file of a tar archive.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub name: String,
    /// Offset of its data in the archive.
    pub offset: u64,
    pub size: u64,
}

const BLOCK: u64 = 512;

/// A numeric header field: octal text, or GNU base-256 (high bit of the first byte set).
fn number(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        let mut v: u64 = (field[0] & 0x7f) as u64;
        for &b in &field[1..] {
            v = v.checked_mul(256)?.checked_add(b as u64)?;
        }
        return Some(v);
    }
    let text = std::str::from_utf8(field).ok()?;
    let text = text.trim_matches(|c: char| c == '\0' || c == ' ');
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(text, 8).ok()
}

fn cstr(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

/// `path=…` and `size=…` of a pax extended header (records `LEN key=value\n`).
fn pax(data: &[u8]) -> (Option<String>, Option<u64>) {
    let (mut path, mut size) = (None, None);
    let mut rest = data;
    while let Some(sp) = rest.iter().position(|&b| b == b' ') {
        let Some(len) = std::str::from_utf8(&rest[..sp])
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
        else {
            break;
        };
        if len <= sp || len > rest.len() {
            break;
        }
        let record = String::from_utf8_lossy(&rest[sp + 1..len]);
        let record = record.trim_end_matches('\n');
        if let Some((k, v)) = record.split_once('=') {
            match k {
                "path" => path = Some(v.to_string()),
                "size" => size = v.parse().ok(),
                _ => {}
            }
        }
        rest = &rest[len..];
    }
    (path, size)
}

/// The regular files of the tar archive at `path`, in order; every header's checksum and
/// every size is checked against the file before it is trusted.
pub fn index(path: &Path) -> anyhow::Result<Vec<Member>> {
    let bad = |what: String| anyhow::anyhow!("{}: not a valid tar shard: {what}", path.display());
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let len = f.metadata()?.len();
    let mut members = Vec::new();
    let (mut at, mut long_name, mut pax_path, mut pax_size) = (0u64, None, None, None);
    let mut h = [0u8; 512];
    loop {
        if at + BLOCK > len {
            // Archives end with two zero blocks; one cut right after a member's data is
            // still read up to there, but not a partial header.
            if at < len {
                let mut tail = vec![0u8; (len - at) as usize];
                f.seek(SeekFrom::Start(at))?;
                f.read_exact(&mut tail)?;
                if tail.iter().any(|&b| b != 0) {
                    return Err(bad(format!("truncated header at byte {at}")));
                }
            }
            break;
        }
        f.seek(SeekFrom::Start(at))?;
        f.read_exact(&mut h)?;
        if h.iter().all(|&b| b == 0) {
            break;
        }
        let stored =
            number(&h[148..156]).ok_or_else(|| bad(format!("unreadable checksum at byte {at}")))?;
        let sum: u64 = h
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    b as u64
                }
            })
            .sum();
        if stored != sum {
            return Err(bad(format!("header checksum mismatch at byte {at}")));
        }
        let size = pax_size
            .take()
            .or_else(|| number(&h[124..136]))
            .ok_or_else(|| bad(format!("unreadable size at byte {at}")))?;
        let data = at + BLOCK;
        if data.checked_add(size).is_none_or(|end| end > len) {
            return Err(bad(format!(
                "a member of {size} bytes at byte {data} runs past the end ({len} bytes)"
            )));
        }
        let kind = h[156];
        // Small metadata blocks only: bounded by the checked size and 1 MiB.
        let read_meta = |f: &mut std::fs::File| -> anyhow::Result<Vec<u8>> {
            if size > 1 << 20 {
                return Err(bad(format!("a {size}-byte metadata header at byte {at}")));
            }
            let mut v = vec![0u8; size as usize];
            f.read_exact(&mut v)?;
            Ok(v)
        };
        match kind {
            b'L' => long_name = Some(cstr(&read_meta(&mut f)?)),
            b'x' => {
                let (p, s) = pax(&read_meta(&mut f)?);
                pax_path = p;
                pax_size = s;
            }
            b'0' | 0 | b'7' => {
                let name = match (long_name.take(), pax_path.take()) {
                    (_, Some(p)) | (Some(p), None) => p,
                    (None, None) => {
                        let (name, prefix) = (cstr(&h[0..100]), cstr(&h[345..500]));
                        if &h[257..262] == b"ustar" && !prefix.is_empty() {
                            format!("{prefix}/{name}")
                        } else {
                            name
                        }
                    }
                };
                members.push(Member {
                    name,
                    offset: data,
                    size,
                });
            }
            _ => {
                // Directories, links, global pax headers: no sample data.
                long_name = None;
                pax_path = None;
            }
        }
        at = data + size.div_ceil(BLOCK) * BLOCK;
    }
    Ok(members)
}

/// A shard's members in order, and their positions by name.
struct Indexed {
    members: Vec<Member>,
    by_name: HashMap<String, usize>,
}

/// The index of `tar`, read once per process and version of the file (listing and every
/// later read share it; a shard rewritten in place, with another size or time, is read
/// again).
fn cached_index(tar: &Path) -> anyhow::Result<Arc<Indexed>> {
    type Key = (PathBuf, u64, Option<std::time::SystemTime>);
    static CACHE: OnceLock<Mutex<HashMap<Key, Arc<Indexed>>>> = OnceLock::new();
    let meta = std::fs::metadata(tar).with_context(|| format!("opening {}", tar.display()))?;
    let key = (tar.to_path_buf(), meta.len(), meta.modified().ok());
    let cache = CACHE.get_or_init(Default::default);
    if let Some(m) = cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
        return Ok(m);
    }
    let members = index(tar)?;
    let by_name = members
        .iter()
        .enumerate()
        .map(|(i, m)| (m.name.clone(), i))
        .collect();
    let indexed = Arc::new(Indexed { members, by_name });
    if let Ok(mut c) = cache.lock() {
        c.insert(key, indexed.clone());
    }
    Ok(indexed)
}

/// `tar#member=NAME`: how a data list names a member of a shard.
pub fn member_path(tar: &Path, name: &str) -> PathBuf {
    PathBuf::from(format!("{}#member={name}", tar.display()))
}

/// The shard and member a `tar#member=NAME` path names.
pub fn split_member(path: &Path) -> Option<(PathBuf, String)> {
    let s = path.to_str()?;
    let (tar, name) = s.rsplit_once("#member=")?;
    tar.ends_with(".tar")
        .then(|| (PathBuf::from(tar), name.to_string()))
}

/// A member copied to a scratch file, removed on drop.
pub struct Scratch {
    dir: PathBuf,
    pub path: PathBuf,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `path` itself, or for a shard member (`tar#member=NAME`) a scratch copy of its bytes at
/// `…/tessera-shards-PID/N/TAR/NAME`, which a reader opens like any file.
pub fn materialise(path: &Path) -> anyhow::Result<Option<Scratch>> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let Some((tar, name)) = split_member(path) else {
        return Ok(None);
    };
    let indexed = cached_index(&tar)?;
    let m = indexed
        .by_name
        .get(&name)
        .map(|&i| &indexed.members[i])
        .ok_or_else(|| anyhow::anyhow!("{}: no member `{name}`", tar.display()))?;
    let mut f = std::fs::File::open(&tar).with_context(|| format!("opening {}", tar.display()))?;
    f.seek(SeekFrom::Start(m.offset))?;
    let mut bytes = vec![0u8; m.size as usize];
    f.read_exact(&mut bytes)
        .with_context(|| format!("{}: reading member `{name}`", tar.display()))?;
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir()
        .join(format!("tessera-shards-{}", std::process::id()))
        .join(n.to_string());
    let tar_name = tar.file_name().map(PathBuf::from).unwrap_or_default();
    let file = dir.join(tar_name).join(&name);
    if let Some(parent) = file.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(&file, bytes).with_context(|| format!("writing {}", file.display()))?;
    Ok(Some(Scratch { dir, path: file }))
}

/// The samples of a shard: for each key, the member whose name `accepts`, labelled and
/// split from the key's `.json` (`label`, `split`) or `.cls` member when present.
pub fn list_shard(tar: &Path, accepts: &dyn Fn(&Path) -> bool) -> anyhow::Result<Vec<DataItem>> {
    let indexed = cached_index(tar)?;
    let members = &indexed.members;
    let mut f = std::fs::File::open(tar).with_context(|| format!("opening {}", tar.display()))?;
    let key = |name: &str| -> String {
        let base = name.rsplit('/').next().unwrap_or(name);
        let dir = &name[..name.len() - base.len()];
        format!("{dir}{}", base.split('.').next().unwrap_or(base))
    };
    let mut items: Vec<DataItem> = Vec::new();
    let mut keys: Vec<String> = Vec::new();
    let mut meta: HashMap<String, (Option<String>, Option<String>)> = HashMap::new();
    for m in members {
        let k = key(&m.name);
        let lower = m.name.to_ascii_lowercase();
        if lower.ends_with(".json") || lower.ends_with(".cls") {
            if m.size > 1 << 20 {
                continue;
            }
            f.seek(SeekFrom::Start(m.offset))?;
            let mut v = vec![0u8; m.size as usize];
            f.read_exact(&mut v)?;
            let text = String::from_utf8_lossy(&v).into_owned();
            let entry = meta.entry(k).or_default();
            if lower.ends_with(".cls") {
                entry.0 = Some(text.trim().to_string());
            } else if let Ok(serde_json::Value::Object(o)) = serde_json::from_str(&text) {
                let field = |f: &str| {
                    o.get(f).and_then(|v| match v {
                        serde_json::Value::String(s) => Some(s.clone()),
                        serde_json::Value::Number(n) => Some(n.to_string()),
                        _ => None,
                    })
                };
                entry.0 = field("label").or(entry.0.take());
                entry.1 = field("split");
            }
        } else if accepts(Path::new(&m.name)) {
            keys.push(k);
            items.push(DataItem {
                path: member_path(tar, &m.name),
                label: None,
                split: None,
            });
        }
    }
    for (item, k) in items.iter_mut().zip(&keys) {
        if let Some((label, split)) = meta.get(k) {
            item.label = label.clone();
            item.split = split.clone();
        }
    }
    Ok(items)
}

/// A ustar header for a member `name` (at most 100 bytes) of `size` bytes and type `kind`,
/// with its checksum.
fn header(name: &str, kind: u8, size: u64) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    let octal = |h: &mut [u8], at: usize, width: usize, v: u64| {
        let s = format!("{v:0w$o}\0", w = width - 1);
        h[at..at + width].copy_from_slice(s.as_bytes());
    };
    octal(&mut h, 100, 8, 0o644);
    octal(&mut h, 108, 8, 0);
    octal(&mut h, 116, 8, 0);
    octal(&mut h, 124, 12, size);
    octal(&mut h, 136, 12, 0);
    h[156] = kind;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    seal(&mut h);
    h
}

/// Writes the checksum of header `h` (the sum of its bytes, the checksum field counted as
/// spaces).
fn seal(h: &mut [u8]) {
    h[148..156].fill(b' ');
    let sum: u64 = h[..512].iter().map(|&b| b as u64).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
}

/// Writes a ustar shard member by member (one member in memory at a time), under a
/// temporary name renamed into place by [`ShardWriter::finish`].
pub struct ShardWriter {
    w: std::io::BufWriter<std::fs::File>,
    tmp: PathBuf,
    path: PathBuf,
}

impl ShardWriter {
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        let tmp = path.with_extension("tar.tmp");
        let file =
            std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        Ok(Self {
            w: std::io::BufWriter::new(file),
            tmp,
            path: path.to_path_buf(),
        })
    }

    pub fn append(&mut self, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
        let path = &self.path;
        if name.len() > 100 {
            bail!(
                "{}: member name `{name}` longer than 100 bytes",
                path.display()
            );
        }
        if bytes.len() as u64 >= 1 << 33 {
            bail!("{}: member `{name}` of 8 GiB or more", path.display());
        }
        let h = header(name, b'0', bytes.len() as u64);
        let pad = (BLOCK - bytes.len() as u64 % BLOCK) % BLOCK;
        (|| -> std::io::Result<()> {
            self.w.write_all(&h)?;
            self.w.write_all(bytes)?;
            self.w.write_all(&vec![0u8; pad as usize])
        })()
        .with_context(|| format!("writing {}", self.tmp.display()))
    }

    /// Ends the archive and moves it into place.
    pub fn finish(mut self) -> anyhow::Result<()> {
        self.w.write_all(&[0u8; 1024])?;
        let file = self
            .w
            .into_inner()
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", self.tmp.display()))?;
        file.sync_all()?;
        std::fs::rename(&self.tmp, &self.path)
            .with_context(|| format!("moving {} into place", self.path.display()))
    }
}

/// Writes a shard of `(name, bytes)` members at once (see [`ShardWriter`]).
pub fn write_shard(path: &Path, members: &[(String, Vec<u8>)]) -> anyhow::Result<()> {
    let mut w = ShardWriter::create(path)?;
    for (name, bytes) in members {
        w.append(name, bytes)?;
    }
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("tessera-shards-test-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d.join(name)
    }

    #[test]
    fn written_shards_read_back_with_labels() {
        let p = tmp("a.tar");
        let long = vec![7u8; 1500];
        write_shard(
            &p,
            &[
                ("000000000.wav".into(), b"RIFF....".to_vec()),
                (
                    "000000000.json".into(),
                    br#"{"label": "3", "split": "test"}"#.to_vec(),
                ),
                ("000000001.nii.gz".into(), long.clone()),
                ("000000001.cls".into(), b"7\n".to_vec()),
                ("000000002.txt".into(), b"ignored".to_vec()),
            ],
        )
        .unwrap();
        let idx = index(&p).unwrap();
        assert_eq!(idx.len(), 5);
        assert_eq!(idx[2].size, 1500);
        let accepts = |q: &Path| {
            let s = q.to_string_lossy();
            s.ends_with(".wav") || s.ends_with(".nii.gz")
        };
        let items = list_shard(&p, &accepts).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].label.as_deref(), Some("3"));
        assert_eq!(items[0].split.as_deref(), Some("test"));
        assert_eq!(items[1].label.as_deref(), Some("7"));
        let s = materialise(&items[1].path).unwrap().unwrap();
        assert_eq!(std::fs::read(&s.path).unwrap(), long);
        assert!(
            s.path.ends_with("a.tar/000000001.nii.gz"),
            "{}",
            s.path.display()
        );
        let dir = s.dir.clone();
        drop(s);
        assert!(!dir.exists());
        assert!(materialise(Path::new("plain.wav")).unwrap().is_none());
    }

    #[test]
    fn corrupt_shards_are_errors_naming_the_file() {
        let p = tmp("b.tar");
        write_shard(&p, &[("x.wav".into(), vec![1u8; 700])]).unwrap();
        let good = std::fs::read(&p).unwrap();
        // A flipped header byte fails the checksum.
        let mut bad = good.clone();
        bad[10] ^= 0x55;
        std::fs::write(&p, &bad).unwrap();
        let e = format!("{:#}", index(&p).unwrap_err());
        assert!(e.contains("b.tar") && e.contains("checksum"), "{e}");
        // A member cut short runs past the end.
        std::fs::write(&p, &good[..900]).unwrap();
        let e = format!("{:#}", index(&p).unwrap_err());
        assert!(e.contains("runs past the end"), "{e}");
        // A huge declared size is refused before anything is allocated.
        let mut huge = good.clone();
        let s = format!("{:011o}\0", 1u64 << 32);
        huge[124..136].copy_from_slice(s.as_bytes());
        seal(&mut huge);
        std::fs::write(&p, &huge).unwrap();
        assert!(format!("{:#}", index(&p).unwrap_err()).contains("runs past the end"));
    }

    #[test]
    fn gnu_long_names_and_pax_paths_are_read() {
        let p = tmp("c.tar");
        let long_name = format!("{}/000000001.wav", "d".repeat(120));
        // A GNU `L` header carries the long name of the next member; a pax `x` header its path.
        let mut members = Vec::new();
        let mk = |name: &str, kind: u8, data: &[u8]| -> Vec<u8> {
            let mut out = header(name, kind, data.len() as u64).to_vec();
            out.extend_from_slice(data);
            out.resize(out.len().div_ceil(512) * 512, 0);
            out
        };
        members.extend(mk(
            "././@LongLink",
            b'L',
            format!("{long_name}\0").as_bytes(),
        ));
        members.extend(mk("short", b'0', b"abc"));
        let rec = "path=pax/000000002.wav\n";
        let rec = format!("{} {rec}", rec.len() + 3);
        members.extend(mk("PaxHeader", b'x', rec.as_bytes()));
        members.extend(mk("short2", b'0', b"defg"));
        members.extend([0u8; 1024]);
        std::fs::write(&p, members).unwrap();
        let idx = index(&p).unwrap();
        let names: Vec<_> = idx.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, [long_name.as_str(), "pax/000000002.wav"]);
        assert_eq!((idx[0].size, idx[1].size), (3, 4));
    }
}
