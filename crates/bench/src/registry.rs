//! The dataset registry: one TOML file per public dataset under `benchmarks/datasets/`.

use crate::{args_key, io, read_toml, sha256_file, sha256_hex, BenchError, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One dataset: where it is, what it is, how it is split and scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dataset {
    /// Registry name (`fsdd`); the file is `<name>.toml`.
    pub name: String,
    /// The CLI that reads it: `tessera-<domain>`.
    pub domain: String,
    pub description: String,
    /// Folder under the data root (`$TESSERA_DATA`, `../shared/data`, or `--data-root`).
    pub path: String,
    /// The labelled manifest (CSV) the suites pass as `--data`, relative to `path` (or to
    /// the `prepare` command's output folder).
    pub manifest: String,
    /// What `pretrain` reads instead of the manifest (same base folder; `.` is the folder
    /// itself): unlabelled files that the labelled manifest does not list.
    #[serde(default)]
    pub pretrain: Option<String>,
    /// A command that derives the manifest from the raw files (run from the repository
    /// root; `{data}` is the dataset's folder, `{out}` a folder the harness keeps under
    /// its output, `{cli}` the domain's `tessera-<domain>` binary): for datasets whose
    /// labels live in the file names or arrays, or whose windows a CLI cuts.
    #[serde(default)]
    pub prepare: Option<Vec<String>>,
    pub licence: String,
    pub citation: String,
    #[serde(default)]
    pub source: String,
    /// Written by the domain's `demo --data-only` instead of downloaded (the smoke suite).
    #[serde(default)]
    pub generated: bool,
    /// The fixed train/test split: a manifest column and its test value.
    #[serde(default)]
    pub split: Option<Split>,
    #[serde(default)]
    pub tasks: Vec<Task>,
    /// SHA-256 of named files (relative to `path`).
    #[serde(default)]
    pub checksums: BTreeMap<String, String>,
    /// A digest over every file under `path` (relative names and contents, sorted).
    #[serde(default)]
    pub tree: Option<Tree>,
    /// Published numbers to compare with.
    #[serde(default)]
    pub anchors: Vec<Anchor>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Split {
    pub column: String,
    #[serde(default = "test")]
    pub test: String,
    /// Labelled samples per class of the few-shot protocols (an evaluation with `shots`
    /// runs once per value; each seed draws its own samples).
    #[serde(default)]
    pub shots: Vec<usize>,
}

fn test() -> String {
    "test".into()
}

/// What a task's labels are, and so which protocol flags it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskKind {
    Classification,
    MultiLabel,
    Regression,
    /// Dense labels (label maps or per-element classes) named by the manifest itself.
    Segmentation,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Task {
    pub name: String,
    pub kind: TaskKind,
    /// Manifest column of the labels (classification, multi-label, regression).
    #[serde(default)]
    pub label_column: Option<String>,
    /// This task's own manifest (same base folder as the dataset's), e.g. a box list.
    #[serde(default)]
    pub data: Option<String>,
    /// The flag that names the task's manifest (default `--data`).
    #[serde(default)]
    pub data_flag: Option<String>,
    /// Flags used instead of the ones derived from `kind` (for commands whose flags
    /// differ, such as `boxes --task patches --task-name NAME`).
    #[serde(default)]
    pub args: Option<Vec<String>>,
}

impl Task {
    /// The CLI flags that select this task.
    pub fn args(&self) -> Vec<String> {
        if let Some(a) = &self.args {
            return a.clone();
        }
        let mut a = Vec::new();
        if let Some(c) = &self.label_column {
            a.extend(["--label-column".to_string(), c.clone()]);
        }
        a.extend(["--task".to_string(), self.name.clone()]);
        match self.kind {
            TaskKind::Classification | TaskKind::Segmentation => {}
            TaskKind::MultiLabel => a.push("--multi-label".into()),
            TaskKind::Regression => a.push("--regression".into()),
        }
        a
    }

    /// The flag and file of this task's manifest (`None`: the dataset's, as `--data`).
    pub fn data_args(&self, base: &Path) -> Option<[String; 2]> {
        self.data.as_ref().map(|f| {
            [
                self.data_flag.clone().unwrap_or_else(|| "--data".into()),
                base.join(f).display().to_string(),
            ]
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tree {
    pub files: usize,
    pub sha256: String,
}

/// A published figure: `metric` of `task` under `protocol`, from `source`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Anchor {
    pub task: String,
    pub protocol: String,
    pub metric: String,
    pub value: f64,
    pub what: String,
    pub source: String,
}

/// Every dataset of a registry folder, by name.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    pub datasets: BTreeMap<String, Dataset>,
}

impl Registry {
    /// Reads every `*.toml` of `dir`; a file's name must match its `name`.
    pub fn load(dir: &Path) -> Result<Self> {
        let mut datasets = BTreeMap::new();
        for path in toml_files(dir)? {
            let d: Dataset = read_toml(&path)?;
            if path.file_stem().and_then(|s| s.to_str()) != Some(d.name.as_str()) {
                return Err(BenchError::Parse {
                    path,
                    message: format!("the file name must be `{}.toml`", d.name),
                });
            }
            let bad = |message: String| BenchError::Parse {
                path: path.clone(),
                message,
            };
            if d.tasks.is_empty() {
                return Err(bad("a dataset needs at least one [[tasks]]".into()));
            }
            for t in &d.tasks {
                let labelled = matches!(
                    t.kind,
                    TaskKind::Classification | TaskKind::MultiLabel | TaskKind::Regression
                );
                if labelled && t.label_column.is_none() && t.args.is_none() {
                    return Err(bad(format!("task `{}` needs a label_column", t.name)));
                }
            }
            datasets.insert(d.name.clone(), d);
        }
        Ok(Self { datasets })
    }

    pub fn get(&self, name: &str) -> Result<&Dataset> {
        self.datasets.get(name).ok_or_else(|| {
            BenchError::Config(format!(
                "no dataset `{name}` in the registry (known: {})",
                self.datasets.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })
    }
}

/// The `*.toml` files of `dir`, sorted.
pub(crate) fn toml_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    v.sort();
    Ok(v)
}

impl Dataset {
    pub fn dir(&self, root: &Path) -> PathBuf {
        root.join(&self.path)
    }

    /// The folder that the manifest and the other named files are relative to: the
    /// `prepare` command's output, else the dataset's folder.
    pub fn base(&self, root: &Path, prepared: &Path) -> PathBuf {
        match self.prepare {
            Some(_) => prepared.to_path_buf(),
            None => self.dir(root),
        }
    }

    /// The manifest the suites read; `prepared` is the `prepare` command's folder.
    pub fn manifest_path(&self, root: &Path, prepared: &Path) -> PathBuf {
        self.base(root, prepared).join(&self.manifest)
    }

    /// What `pretrain` reads: `pretrain` when set, else the manifest.
    pub fn pretrain_path(&self, root: &Path, prepared: &Path) -> PathBuf {
        match &self.pretrain {
            Some(p) => self.base(root, prepared).join(p),
            None => self.manifest_path(root, prepared),
        }
    }

    /// Whether the raw data is there (a prepared manifest is made on demand).
    pub fn present(&self, root: &Path) -> bool {
        match self.prepare {
            Some(_) => self.dir(root).is_dir(),
            None => self.dir(root).join(&self.manifest).is_file(),
        }
    }

    /// Runs the `prepare` command unless its manifest exists from the same command (its
    /// arguments and the content of the files it names, such as the script; the data is
    /// covered by the checksums); `cli` is the domain's binary.
    pub fn prepare(&self, root: &Path, prepared: &Path, cli: &Path) -> Result<()> {
        let Some(cmd) = &self.prepare else {
            return Ok(());
        };
        let fill = |a: &String| {
            a.replace("{data}", &self.dir(root).display().to_string())
                .replace("{out}", &prepared.display().to_string())
                .replace("{cli}", &cli.display().to_string())
        };
        let key = args_key(cmd)?;
        let stamp = prepared.join(".prepared-by");
        if self.manifest_path(root, prepared).is_file()
            && std::fs::read_to_string(&stamp).is_ok_and(|s| s == key)
        {
            return Ok(());
        }
        std::fs::create_dir_all(prepared).map_err(io(prepared))?;
        let args: Vec<String> = cmd.iter().map(fill).collect();
        let Some((prog, rest)) = args.split_first() else {
            return Err(BenchError::Config(format!(
                "{}: empty prepare command",
                self.name
            )));
        };
        let status = std::process::Command::new(prog)
            .args(rest)
            .status()
            .map_err(|e| BenchError::Config(format!("{}: cannot run {prog}: {e}", self.name)))?;
        if !status.success() || !self.manifest_path(root, prepared).is_file() {
            return Err(BenchError::Config(format!(
                "{}: `{}` did not write {}",
                self.name,
                args.join(" "),
                self.manifest_path(root, prepared).display()
            )));
        }
        std::fs::write(&stamp, key).map_err(io(&stamp))?;
        Ok(())
    }

    /// The data part of every run key: the manifest's hash and the recorded checksums
    /// (the files themselves are verified by [`Dataset::check`]).
    pub fn fingerprint(&self, root: &Path, prepared: &Path) -> Result<String> {
        let manifest = self.manifest_path(root, prepared);
        let mut s = format!("manifest={}\n", sha256_file(&manifest)?);
        for (f, h) in &self.checksums {
            s += &format!("{f}={h}\n");
        }
        if let Some(t) = &self.tree {
            s += &format!("tree={}:{}\n", t.files, t.sha256);
        }
        Ok(sha256_hex(s.as_bytes()))
    }

    /// Verifies the recorded checksums against the files under `root`; one line per
    /// problem (empty when everything matches).
    pub fn check(&self, root: &Path) -> Result<Vec<String>> {
        let dir = self.dir(root);
        let mut bad = Vec::new();
        if !dir.is_dir() {
            bad.push(format!("{}: missing", dir.display()));
            return Ok(bad);
        }
        for (f, want) in &self.checksums {
            let p = dir.join(f);
            if !p.is_file() {
                bad.push(format!("{}: missing", p.display()));
            } else {
                let got = sha256_file(&p)?;
                if &got != want {
                    bad.push(format!("{}: sha256 {got}, expected {want}", p.display()));
                }
            }
        }
        if let Some(t) = &self.tree {
            let got = tree_digest(&dir)?;
            if got.files != t.files || got.sha256 != t.sha256 {
                bad.push(format!(
                    "{}: {} files with tree digest {}, expected {} files with {}",
                    dir.display(),
                    got.files,
                    got.sha256,
                    t.files,
                    t.sha256
                ));
            }
        }
        Ok(bad)
    }
}

/// The digest of a folder: SHA-256 over `relative/path\tsha256\n` of every file below it,
/// sorted by path (symbolic links followed; hidden files included).
pub fn tree_digest(dir: &Path) -> Result<Tree> {
    let mut files = Vec::new();
    walk(dir, dir, &mut files)?;
    files.sort();
    let mut s = String::new();
    for rel in &files {
        s += &format!("{rel}\t{}\n", sha256_file(&dir.join(rel))?);
    }
    Ok(Tree {
        files: files.len(),
        sha256: sha256_hex(s.as_bytes()),
    })
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<()> {
    for e in std::fs::read_dir(dir).map_err(io(dir))? {
        let p = e.map_err(io(dir))?.path();
        if p.is_dir() {
            walk(root, &p, out)?;
        } else {
            let rel = p.strip_prefix(root).unwrap_or(&p);
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_find_changed_missing_and_extra_files() {
        let root = std::env::temp_dir().join(format!("tessera-bench-reg-{}", std::process::id()));
        let dir = root.join("set");
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("m.csv"), "path,label\na.wav,x\n").unwrap();
        std::fs::write(dir.join("sub/a.wav"), [1u8, 2, 3]).unwrap();
        let tree = tree_digest(&dir).unwrap();
        assert_eq!(tree.files, 2);
        let d = Dataset {
            name: "set".into(),
            domain: "audio".into(),
            description: String::new(),
            path: "set".into(),
            manifest: "m.csv".into(),
            prepare: None,
            licence: String::new(),
            citation: String::new(),
            source: String::new(),
            generated: false,
            pretrain: None,
            split: None,
            tasks: Vec::new(),
            checksums: BTreeMap::from([(
                "m.csv".to_string(),
                sha256_file(&dir.join("m.csv")).unwrap(),
            )]),
            tree: Some(tree.clone()),
            anchors: Vec::new(),
        };
        assert!(d.present(&root));
        assert!(d.check(&root).unwrap().is_empty());
        let before = d.fingerprint(&root, &root).unwrap();
        std::fs::write(dir.join("sub/a.wav"), [1u8, 2, 4]).unwrap();
        let bad = d.check(&root).unwrap();
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert!(bad[0].contains("tree digest"));
        std::fs::write(dir.join("m.csv"), "path,label\n").unwrap();
        assert_eq!(d.check(&root).unwrap().len(), 2);
        assert_ne!(d.fingerprint(&root, &root).unwrap(), before);
        // A prepared manifest is made once per prepare command and remade when it changes.
        let prepared = root.join("prepared");
        let script = root.join("prep.sh");
        std::fs::write(
            &script,
            "echo path,label > \"$1/m.csv\"; echo run >> \"$1/log\"\n",
        )
        .unwrap();
        let p = Dataset {
            prepare: Some(vec![
                "sh".into(),
                script.display().to_string(),
                "{out}".into(),
            ]),
            ..d.clone()
        };
        let runs = || {
            std::fs::read_to_string(prepared.join("log"))
                .unwrap()
                .lines()
                .count()
        };
        p.prepare(&root, &prepared, Path::new("cli")).unwrap();
        p.prepare(&root, &prepared, Path::new("cli")).unwrap();
        assert_eq!(runs(), 1);
        std::fs::write(
            &script,
            "echo path,label > \"$1/m.csv\"; echo again >> \"$1/log\"\n",
        )
        .unwrap();
        p.prepare(&root, &prepared, Path::new("cli")).unwrap();
        assert_eq!(runs(), 2, "an edited script prepares again");
        assert!(p.manifest_path(&root, &prepared).is_file());
        std::fs::remove_file(dir.join("m.csv")).unwrap();
        assert!(!d.present(&root));
        assert!(d.check(&root).unwrap()[0].contains("missing"));
        let _ = std::fs::remove_dir_all(&root);
    }
}
