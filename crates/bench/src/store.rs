//! Published runs: the rows of every finished evaluation and peer run of a suite, under the
//! same key as the cache, one JSON line each in `DIR/runs/<suite>.jsonl`. A fresh clone, or
//! another machine, takes them instead of computing them again (`run --reuse DIR`), and a
//! suite too long for one sitting lands in parts: each run is recorded as it finishes.

use crate::{io, BenchError, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// One finished run: its key, what it was, and the lines of its `rows.jsonl` as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredRun {
    pub key: String,
    pub run: String,
    pub seed: u64,
    /// The command as a user would type it.
    pub command: String,
    pub rows: Vec<serde_json::Value>,
}

/// The file of `suite`'s published runs under `dir`.
pub fn path(dir: &Path, suite: &str) -> PathBuf {
    dir.join("runs").join(format!("{suite}.jsonl"))
}

/// The published runs in `path` by key (none when the file is absent; a key recorded twice
/// keeps its last line).
pub fn load(path: &Path) -> Result<BTreeMap<String, StoredRun>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(io(path)(e)),
    };
    let mut runs = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let r: StoredRun = serde_json::from_str(line).map_err(|e| BenchError::Parse {
            path: path.to_path_buf(),
            message: format!("line {}: {e}", i + 1),
        })?;
        runs.insert(r.key.clone(), r);
    }
    Ok(runs)
}

/// The run finished in the cache folder `dir` (its `out/rows.jsonl`).
pub fn from_cache(dir: &Path, key: &str, run: &str, seed: u64, command: &str) -> Result<StoredRun> {
    let file = dir.join("out/rows.jsonl");
    let text = std::fs::read_to_string(&file).map_err(io(&file))?;
    let rows = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| BenchError::Parse {
            path: file.clone(),
            message: e.to_string(),
        })?;
    Ok(StoredRun {
        key: key.into(),
        run: run.into(),
        seed,
        command: command.into(),
        rows,
    })
}

/// Writes a published run into the cache folder `dir` as if it had run there (rows,
/// command, `done`), noting where it came from.
pub fn import(r: &StoredRun, dir: &Path, from: &Path) -> Result<()> {
    let out = dir.join("out");
    std::fs::create_dir_all(&out).map_err(io(&out))?;
    let mut text = String::new();
    for row in &r.rows {
        text += &row.to_string();
        text.push('\n');
    }
    let rows = out.join("rows.jsonl");
    std::fs::write(&rows, text).map_err(io(&rows))?;
    let command = dir.join("command.txt");
    std::fs::write(&command, format!("{}\n", r.command)).map_err(io(&command))?;
    let note = dir.join("reused.txt");
    std::fs::write(&note, format!("{}\n", from.display())).map_err(io(&note))?;
    let done = dir.join("done");
    std::fs::write(&done, "").map_err(io(&done))
}

/// Appends one run to `path` (a single write of one line, so an interruption leaves the
/// earlier lines whole).
pub fn append(path: &Path, r: &StoredRun) -> Result<()> {
    let line = lines(path, [r])?;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(line.as_bytes()))
        .map_err(io(path))
}

/// Rewrites `path` with `runs`, one line each in key order (through a temporary file, so
/// a crash leaves the old file).
pub fn write_all(path: &Path, runs: &BTreeMap<String, StoredRun>) -> Result<()> {
    let text = lines(path, runs.values())?;
    crate::write_atomic(path, text.as_bytes())
}

/// `runs` as JSON lines, after making the folder of `path`, the file they go to.
fn lines<'a>(path: &Path, runs: impl IntoIterator<Item = &'a StoredRun>) -> Result<String> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(io(d))?;
    }
    let mut text = String::new();
    for r in runs {
        text += &serde_json::to_string(r).map_err(|e| BenchError::Config(e.to_string()))?;
        text.push('\n');
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_round_trip_and_the_last_record_of_a_key_wins() {
        let dir = std::env::temp_dir().join(format!("tessera-bench-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let file = path(&dir, "s");
        assert!(load(&file).unwrap().is_empty(), "no file: no runs");
        let run = |key: &str, dice: f64| StoredRun {
            key: key.into(),
            run: "unet".into(),
            seed: 1,
            command: "python seg.py".into(),
            rows: vec![serde_json::json!({"run": "unet", "dice_mean": dice})],
        };
        append(&file, &run("a", 0.5)).unwrap();
        append(&file, &run("b", 0.6)).unwrap();
        append(&file, &run("a", 0.7)).unwrap();
        let runs = load(&file).unwrap();
        assert_eq!(runs.len(), 2);
        assert_eq!(runs["a"], run("a", 0.7));
        write_all(&file, &runs).unwrap();
        assert_eq!(load(&file).unwrap(), runs);
        assert_eq!(std::fs::read_to_string(&file).unwrap().lines().count(), 2);
        // Imported into a cache folder, it reads back the same.
        let cache = dir.join("cache/x");
        import(&runs["b"], &cache, &file).unwrap();
        assert!(cache.join("done").is_file());
        assert_eq!(
            from_cache(&cache, "b", "unet", 1, "python seg.py").unwrap(),
            runs["b"]
        );
        // A damaged line names the file and the line.
        std::fs::write(&file, "{\"key\": 1}\n").unwrap();
        let e = load(&file).unwrap_err().to_string();
        assert!(e.contains("s.jsonl") && e.contains("line 1"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
