//! Listing a dataset: one file, a folder (recursive, sorted), a CSV manifest or a text
//! list of paths.

use anyhow::Context;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One file of a dataset, with its label and split when a manifest gives them.
#[derive(Debug, Clone, PartialEq)]
pub struct DataItem {
    pub path: PathBuf,
    pub label: Option<String>,
    pub split: Option<String>,
}

/// Which manifest columns hold the label and the split (the path column is `path`, `file` or `image`).
#[derive(Debug, Clone, Default)]
pub struct ManifestColumns {
    pub label: Option<String>,
    pub split: Option<String>,
}

/// Lists a dataset given as
/// - a data file that `accepts` (one item);
/// - a folder the modality `accepts` as a whole (a DICOM series): that one sample;
/// - a folder: every file below it that `accepts`, sorted, where a sub-folder the modality
///   accepts as a whole is one sample and is not entered; when the folder has an `images/`
///   or `imagesTr/` sub-folder (the Medical Segmentation Decathlon layout), that one. The
///   label is the name of a file's parent folder when the file is not at the top level;
/// - a CSV manifest (`.csv`, or `.tsv` with tabs) with a `path`, `file` or `image` column
///   and optional label and split columns; paths are relative to the manifest's folder, and
///   a bare file name not found there is looked up (uniquely) in its sub-folders;
/// - a `.tar` shard (WebDataset convention: members `KEY.EXT` plus `KEY.json` with the
///   label and split), or a folder of them (each member the modality accepts is one
///   item, named `shard.tar#member=KEY.EXT`; see [`crate::shards`]);
/// - one file with per-file settings after a `#` (`talk.flac#t=60,70`): that one item;
/// - any other file: a text list of paths, one per line (blank lines and lines starting
///   with `#` skipped), relative to the list's folder.
pub fn list_data(
    spec: &Path,
    accepts: &dyn Fn(&Path) -> bool,
    cols: &ManifestColumns,
) -> anyhow::Result<Vec<DataItem>> {
    if spec.is_dir() {
        // A folder of tar shards (the `shard` subcommand's output) before anything else: a
        // modality may take any folder as one sample (an EO scene of band files).
        let mut tars: Vec<PathBuf> = std::fs::read_dir(spec)
            .with_context(|| format!("listing {}", spec.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && is_shard(p))
            .collect();
        if !tars.is_empty() {
            tars.sort();
            let mut items = Vec::new();
            for t in &tars {
                items.extend(crate::shards::list_shard(t, accepts)?);
            }
            return Ok(items);
        }
    }
    if spec.is_dir() && accepts(spec) {
        return Ok(vec![DataItem {
            path: spec.to_path_buf(),
            label: None,
            split: None,
        }]);
    }
    if spec.is_dir() {
        let spec = ["images", "imagesTr"]
            .iter()
            .map(|s| spec.join(s))
            .find(|p| p.is_dir())
            .unwrap_or_else(|| spec.to_path_buf());
        let spec = spec.as_path();
        let mut files = Vec::new();
        walk(spec, accepts, &mut files).with_context(|| format!("listing {}", spec.display()))?;
        files.sort();
        let mut items = Vec::new();
        for path in files {
            if is_shard(&path) && !accepts(&path) {
                items.extend(crate::shards::list_shard(&path, accepts)?);
            } else if accepts(&path) {
                let label = path
                    .parent()
                    .filter(|par| *par != spec)
                    .and_then(|par| par.file_name())
                    .map(|n| n.to_string_lossy().to_string());
                items.push(DataItem {
                    path,
                    label,
                    split: None,
                });
            }
        }
        return Ok(items);
    }
    if spec.is_file() {
        if accepts(spec) {
            return Ok(vec![DataItem {
                path: spec.to_path_buf(),
                label: None,
                split: None,
            }]);
        }
        if is_shard(spec) {
            return crate::shards::list_shard(spec, accepts);
        }
        let ext = spec
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        return match ext.as_str() {
            "csv" | "tsv" => read_manifest(spec, cols),
            _ => read_list(spec),
        };
    }
    // One file with per-file settings (`talk.flac#t=60,70`, `scene.tif#window=...`).
    if let Some((file, _)) = spec.to_string_lossy().rsplit_once('#') {
        if Path::new(file).is_file() && accepts(Path::new(file)) {
            return Ok(vec![DataItem {
                path: spec.to_path_buf(),
                label: None,
                split: None,
            }]);
        }
    }
    anyhow::bail!("{}: no such file, folder, manifest or list", spec.display())
}

/// A `.tar` file: a shard of samples (WebDataset convention).
fn is_shard(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("tar"))
}

/// A text list of paths, one per line.
fn read_list(path: &Path) -> anyhow::Result<Vec<DataItem>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading list {}", path.display()))?;
    let text = std::str::from_utf8(&bytes).map_err(|_| {
        anyhow::anyhow!(
            "{}: not a data file this command reads, and not a text list of paths (not UTF-8 text)",
            path.display()
        )
    })?;
    let root = path.parent().unwrap_or(Path::new("."));
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let p = PathBuf::from(l);
            DataItem {
                path: if p.is_absolute() { p } else { root.join(p) },
                label: None,
                split: None,
            }
        })
        .collect())
}

/// Files below `dir`; a sub-folder that `accepts` takes as a whole is listed, not entered.
fn walk(
    dir: &Path,
    accepts: &dyn Fn(&Path) -> bool,
    out: &mut Vec<PathBuf>,
) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let p = entry?.path();
        if p.is_dir() && accepts(&p) {
            out.push(p);
        } else if p.is_dir() {
            walk(&p, accepts, out)?;
        } else {
            out.push(p);
        }
    }
    Ok(())
}

/// Splits one CSV line (RFC 4180 quoting).
/// One CSV field as written: quoted (inner quotes doubled) when it holds a comma, a quote
/// or a line break; the inverse of [`split_csv_line`].
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

pub fn split_csv_line(line: &str) -> Vec<String> {
    split_line(line, ',')
}

fn split_line(line: &str, sep: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (c, false) if c == sep => out.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    out.push(cur);
    out
}

fn read_manifest(path: &Path, cols: &ManifestColumns) -> anyhow::Result<Vec<DataItem>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading manifest {}", path.display()))?;
    let sep = if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("tsv"))
    {
        '\t'
    } else {
        ','
    };
    let split_csv_line = |l: &str| split_line(l, sep);
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = split_csv_line(
        lines
            .next()
            .ok_or_else(|| anyhow::anyhow!("{}: empty manifest", path.display()))?,
    );
    let find = |name: &str| header.iter().position(|h| h.trim() == name);
    let path_col = find("path")
        .or_else(|| find("file"))
        .or_else(|| find("image"))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "{}: manifest needs a `path`, `file` or `image` column (found: {})",
                path.display(),
                header.join(", ")
            )
        })?;
    let col = |name: &Option<String>| -> anyhow::Result<Option<usize>> {
        match name {
            Some(n) => find(n).map(Some).ok_or_else(|| {
                anyhow::anyhow!(
                    "{}: no column `{n}` (found: {})",
                    path.display(),
                    header.join(", ")
                )
            }),
            None => Ok(None),
        }
    };
    let label_col = col(&cols.label)?.or_else(|| find("label"));
    let split_col = col(&cols.split)?.or_else(|| find("split"));
    let root = path.parent().unwrap_or(Path::new("."));
    let mut index: Option<HashMap<String, Vec<PathBuf>>> = None;
    let mut items = Vec::new();
    for (i, line) in lines.enumerate() {
        let f = split_csv_line(line);
        let get = |c: usize| -> anyhow::Result<String> {
            f.get(c).map(|s| s.trim().to_string()).ok_or_else(|| {
                anyhow::anyhow!(
                    "{}: row {} has only {} fields",
                    path.display(),
                    i + 2,
                    f.len()
                )
            })
        };
        let rel = PathBuf::from(get(path_col)?);
        let mut p = if rel.is_absolute() {
            rel.clone()
        } else {
            root.join(&rel)
        };
        if !p.exists() && rel.components().count() == 1 {
            let idx = index.get_or_insert_with(|| {
                let mut files = Vec::new();
                let _ = walk(root, &|_| false, &mut files);
                let mut m: HashMap<String, Vec<PathBuf>> = HashMap::new();
                for f in files {
                    if let Some(n) = f.file_name() {
                        m.entry(n.to_string_lossy().to_string())
                            .or_default()
                            .push(f);
                    }
                }
                m
            });
            if let Some([only]) = idx
                .get(&rel.to_string_lossy().to_string())
                .map(|v| v.as_slice())
            {
                p = only.clone();
            }
        }
        items.push(DataItem {
            path: p,
            label: label_col.map(get).transpose()?,
            split: split_col.map(get).transpose()?,
        });
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes() {
        assert_eq!(
            split_csv_line(r#"a,"b,c","d""e""#),
            vec!["a", "b,c", "d\"e"]
        );
    }

    #[test]
    fn folder_and_manifest() {
        let d = std::env::temp_dir().join(format!("tessera-cli-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("sub/cat")).unwrap();
        std::fs::write(d.join("sub/cat/x.wav"), b"").unwrap();
        std::fs::write(d.join("sub/readme.txt"), b"").unwrap();
        let wav = |p: &Path| p.extension().is_some_and(|e| e == "wav");
        let items = list_data(&d.join("sub"), &wav, &ManifestColumns::default()).unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].label.as_deref(), Some("cat"));
        std::fs::write(d.join("m.csv"), "file,kind,official_split\nx.wav,7,test\n").unwrap();
        let cols = ManifestColumns {
            label: Some("kind".into()),
            split: Some("official_split".into()),
        };
        let items = list_data(&d.join("m.csv"), &wav, &cols).unwrap();
        assert_eq!(items[0].path, d.join("sub/cat/x.wav"));
        assert_eq!(items[0].label.as_deref(), Some("7"));
        assert_eq!(items[0].split.as_deref(), Some("test"));
        let bad = ManifestColumns {
            label: Some("nope".into()),
            split: None,
        };
        assert!(list_data(&d.join("m.csv"), &wav, &bad)
            .unwrap_err()
            .to_string()
            .contains("no column `nope`"));
        assert!(list_data(&d.join("missing"), &wav, &bad).is_err());
        // One data file; a text list (comments, blank lines, relative paths).
        let one = list_data(&d.join("sub/cat/x.wav"), &wav, &bad).unwrap();
        assert_eq!(one[0].path, d.join("sub/cat/x.wav"));
        std::fs::write(d.join("list.txt"), "# clips\n\nsub/cat/x.wav\n").unwrap();
        let listed = list_data(&d.join("list.txt"), &wav, &bad).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].path, d.join("sub/cat/x.wav"));
        // A binary file that is neither data nor a list.
        std::fs::write(d.join("blob.bin"), [0xffu8, 0xfe, 0x00]).unwrap();
        let e = list_data(&d.join("blob.bin"), &wav, &bad)
            .unwrap_err()
            .to_string();
        assert!(e.contains("blob.bin") && e.contains("not UTF-8"), "{e}");
        // A TSV manifest.
        std::fs::write(d.join("m.tsv"), "path\tlabel\nsub/cat/x.wav\tmeow\n").unwrap();
        let t = list_data(&d.join("m.tsv"), &wav, &ManifestColumns::default()).unwrap();
        assert_eq!(t[0].label.as_deref(), Some("meow"));
        // Folders the modality takes as one sample (a DICOM series) are listed, not entered.
        std::fs::create_dir_all(d.join("study/series_a")).unwrap();
        std::fs::create_dir_all(d.join("study/other")).unwrap();
        std::fs::write(d.join("study/series_a/1.dcm"), b"").unwrap();
        std::fs::write(d.join("study/other/2.dcm"), b"").unwrap();
        let series =
            |p: &Path| p.ends_with("series_a") || p.extension().is_some_and(|e| e == "dcm");
        let s = list_data(&d.join("study"), &series, &bad).unwrap();
        let paths: Vec<_> = s.iter().map(|i| i.path.clone()).collect();
        assert_eq!(
            paths,
            [d.join("study/other/2.dcm"), d.join("study/series_a")]
        );
        let one = list_data(&d.join("study/series_a"), &series, &bad).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].path, d.join("study/series_a"));
        // A folder with an images/ sub-folder lists only that one.
        std::fs::create_dir_all(d.join("msd/images")).unwrap();
        std::fs::create_dir_all(d.join("msd/labels")).unwrap();
        std::fs::write(d.join("msd/images/a.wav"), b"").unwrap();
        std::fs::write(d.join("msd/labels/a.wav"), b"").unwrap();
        let m = list_data(&d.join("msd"), &wav, &bad).unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].path, d.join("msd/images/a.wav"));
        let _ = std::fs::remove_dir_all(&d);
    }
}
