//! Listing a dataset: a folder (recursive, sorted) or a CSV manifest.

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

/// Lists files with one of `extensions` (lower case, no dot) under a folder, or the rows of
/// a CSV manifest. In a folder, the label is the name of the file's parent folder when the
/// file is not at the top level. Manifest paths are relative to the manifest's folder; a
/// bare file name not found there is looked up (uniquely) in its sub-folders.
pub fn list_data(
    spec: &Path,
    extensions: &[&str],
    cols: &ManifestColumns,
) -> anyhow::Result<Vec<DataItem>> {
    if spec.is_dir() {
        let mut files = Vec::new();
        walk(spec, &mut files).with_context(|| format!("listing {}", spec.display()))?;
        files.sort();
        let items = files
            .into_iter()
            .filter(|p| {
                let ext = p
                    .extension()
                    .map(|e| e.to_string_lossy().to_lowercase())
                    .unwrap_or_default();
                extensions.is_empty() || extensions.contains(&ext.as_str())
            })
            .map(|path| {
                let label = path
                    .parent()
                    .filter(|par| *par != spec)
                    .and_then(|par| par.file_name())
                    .map(|n| n.to_string_lossy().to_string());
                DataItem {
                    path,
                    label,
                    split: None,
                }
            })
            .collect::<Vec<_>>();
        return Ok(items);
    }
    if spec.is_file() {
        return read_manifest(spec, cols);
    }
    anyhow::bail!("{}: no such folder or manifest", spec.display())
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let p = entry?.path();
        if p.is_dir() {
            walk(&p, out)?;
        } else {
            out.push(p);
        }
    }
    Ok(())
}

/// Splits one CSV line (RFC 4180 quoting).
pub fn split_csv_line(line: &str) -> Vec<String> {
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
            (',', false) => out.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    out.push(cur);
    out
}

fn read_manifest(path: &Path, cols: &ManifestColumns) -> anyhow::Result<Vec<DataItem>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading manifest {}", path.display()))?;
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
                let _ = walk(root, &mut files);
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
        let items = list_data(&d.join("sub"), &["wav"], &ManifestColumns::default()).unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].label.as_deref(), Some("cat"));
        std::fs::write(d.join("m.csv"), "file,kind,official_split\nx.wav,7,test\n").unwrap();
        let cols = ManifestColumns {
            label: Some("kind".into()),
            split: Some("official_split".into()),
        };
        let items = list_data(&d.join("m.csv"), &["wav"], &cols).unwrap();
        assert_eq!(items[0].path, d.join("sub/cat/x.wav"));
        assert_eq!(items[0].label.as_deref(), Some("7"));
        assert_eq!(items[0].split.as_deref(), Some("test"));
        let bad = ManifestColumns {
            label: Some("nope".into()),
            split: None,
        };
        assert!(list_data(&d.join("m.csv"), &["wav"], &bad)
            .unwrap_err()
            .to_string()
            .contains("no column `nope`"));
        assert!(list_data(&d.join("missing"), &["wav"], &bad).is_err());
    }
}
