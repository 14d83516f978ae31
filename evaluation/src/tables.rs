//! Results tables: one [`ResultRow`] per (run, task, protocol, features, seed), their
//! summary over seeds, Markdown for both, CSV for confusion matrices and, with the
//! `tables` feature, CSV or Parquet files through polars.
//!
//! Metrics that do not apply to a row (accuracy of a regression probe, balanced accuracy of
//! a row saved before it existed) are NaN: JSON writes them as `null` and reads `null`
//! back as NaN, Markdown shows `–`. Protocol-specific metrics (multi-label mAP and AUROC,
//! regression R² and MAE, few-shot `k`...) go in [`ResultRow::extra`] by name.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::EvalError;

/// One evaluation result.
///
/// Other crates build rows with struct literals: fields added after the first release
/// have serde defaults and [`Default`] gives them, so write `..Default::default()` to stay
/// compatible with later additions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultRow {
    /// Name of the pretraining run (or baseline) the features come from.
    pub run: String,
    /// Downstream task.
    pub task: String,
    /// Protocol: `linear` or `knn`.
    pub protocol: String,
    /// Which features: `cls`, `mean`, `cls+mean` or `logmel` (a baseline).
    pub features: String,
    /// Seed of the split / fit.
    pub seed: u64,
    /// Test accuracy, `[0, 1]` (NaN when it does not apply).
    #[serde(deserialize_with = "crate::f64_or_nan")]
    pub accuracy: f64,
    /// Test macro-F1, `[0, 1]` (NaN when it does not apply).
    #[serde(deserialize_with = "crate::f64_or_nan")]
    pub macro_f1: f64,
    /// Number of test samples.
    pub n_test: usize,
    /// Test balanced accuracy (mean per-class recall), `[0, 1]`; NaN when it does not
    /// apply or for rows saved before this field existed.
    #[serde(default = "crate::nan", deserialize_with = "crate::f64_or_nan")]
    pub balanced_accuracy: f64,
    /// Further named metrics of this result, e.g. `map_micro`, `map_macro`,
    /// `auroc_macro` (multi-label), `r2`, `mae` (regression), `k` (few-shot). Names should
    /// not repeat the fixed columns (`accuracy`, `macro_f1`, ...): the tables make one
    /// column per name.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "crate::map_f64_or_nan"
    )]
    pub extra: BTreeMap<String, f64>,
}

impl Default for ResultRow {
    /// Empty names, seed 0, `n_test` 0, every metric NaN (not measured), no extras.
    fn default() -> Self {
        Self {
            run: String::new(),
            task: String::new(),
            protocol: String::new(),
            features: String::new(),
            seed: 0,
            accuracy: f64::NAN,
            macro_f1: f64::NAN,
            n_test: 0,
            balanced_accuracy: f64::NAN,
            extra: BTreeMap::new(),
        }
    }
}

impl ResultRow {
    /// A row of named metrics only (multi-label, regression): the names, `seed`, `n_test`
    /// and `extra`; accuracy, macro-F1 and balanced accuracy NaN.
    pub fn with_extras<'a>(
        names: [&str; 4],
        seed: u64,
        n_test: usize,
        extra: impl IntoIterator<Item = (&'a str, f64)>,
    ) -> Self {
        let [run, task, protocol, features] = names;
        Self {
            run: run.into(),
            task: task.into(),
            protocol: protocol.into(),
            features: features.into(),
            seed,
            n_test,
            extra: extra.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            ..Self::default()
        }
    }

    /// The named metric: `accuracy`, `macro_f1`, `balanced_accuracy` or a key of
    /// [`ResultRow::extra`]; `None` when the row does not have it or it is not finite.
    pub fn metric(&self, name: &str) -> Option<f64> {
        match name {
            "accuracy" => Some(self.accuracy),
            "macro_f1" => Some(self.macro_f1),
            "balanced_accuracy" => Some(self.balanced_accuracy),
            _ => self.extra.get(name).copied(),
        }
        .filter(|v| v.is_finite())
    }
}

/// Mean and spread of one metric over seeds (or few-shot draws).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeanStd {
    /// Mean (NaN when a value is NaN or there are none).
    #[serde(deserialize_with = "crate::f64_or_nan")]
    pub mean: f64,
    /// Sample standard deviation (`n - 1` denominator); `None` for fewer than two values.
    pub std: Option<f64>,
    /// Number of values.
    pub n: usize,
}

impl MeanStd {
    /// Mean and sample standard deviation of `xs`.
    pub fn of(xs: &[f64]) -> Self {
        let (mean, std) = mean_std(xs);
        Self {
            mean,
            std,
            n: xs.len(),
        }
    }
}

/// Mean and spread over seeds of the rows sharing (run, task, protocol, features).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryRow {
    /// As [`ResultRow::run`].
    pub run: String,
    /// As [`ResultRow::task`].
    pub task: String,
    /// As [`ResultRow::protocol`].
    pub protocol: String,
    /// As [`ResultRow::features`].
    pub features: String,
    /// Number of rows (seeds) averaged.
    pub n_seeds: usize,
    /// Mean accuracy, `[0, 1]`.
    pub accuracy_mean: f64,
    /// Sample standard deviation (`n - 1` denominator) of accuracy; `None` for one seed.
    pub accuracy_std: Option<f64>,
    /// Mean macro-F1, `[0, 1]`.
    pub macro_f1_mean: f64,
    /// Sample standard deviation of macro-F1; `None` for one seed.
    pub macro_f1_std: Option<f64>,
    /// Test samples per seed (the largest, if the seeds differ).
    pub n_test: usize,
    /// Mean balanced accuracy, `[0, 1]` (NaN if any seed lacks it).
    #[serde(default = "crate::nan", deserialize_with = "crate::f64_or_nan")]
    pub balanced_accuracy_mean: f64,
    /// Sample standard deviation of balanced accuracy; `None` for one seed.
    #[serde(default)]
    pub balanced_accuracy_std: Option<f64>,
    /// Each [`ResultRow::extra`] metric over the seeds that have it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, MeanStd>,
}

impl SummaryRow {
    /// The named metric over seeds: `accuracy`, `macro_f1`, `balanced_accuracy` or a key of
    /// [`SummaryRow::extra`]; `None` for an unknown name.
    pub fn metric(&self, name: &str) -> Option<MeanStd> {
        let fixed = |mean, std| MeanStd {
            mean,
            std,
            n: self.n_seeds,
        };
        match name {
            "accuracy" => Some(fixed(self.accuracy_mean, self.accuracy_std)),
            "macro_f1" => Some(fixed(self.macro_f1_mean, self.macro_f1_std)),
            "balanced_accuracy" => Some(fixed(
                self.balanced_accuracy_mean,
                self.balanced_accuracy_std,
            )),
            _ => self.extra.get(name).copied(),
        }
    }
}

fn mean_std(xs: &[f64]) -> (f64, Option<f64>) {
    if xs.is_empty() {
        return (f64::NAN, None);
    }
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    if xs.len() < 2 {
        return (mean, None);
    }
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, Some(var.sqrt()))
}

/// The rows of a JSON-lines file (one [`ResultRow`] per line, blank lines skipped), as the
/// CLIs append them to `rows.jsonl`.
pub fn read_rows_jsonl(path: &std::path::Path) -> Result<Vec<ResultRow>, EvalError> {
    let text = std::fs::read_to_string(path).map_err(|source| EvalError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| EvalError::Parse {
                path: path.to_path_buf(),
                line: i + 1,
                message: e.to_string(),
            })
        })
        .collect()
}

/// Groups rows by (run, task, protocol, features), in order of first appearance, and
/// gives the mean and sample standard deviation over seeds of accuracy, macro-F1,
/// balanced accuracy and every extra metric (over the rows that have it).
pub fn summarise(rows: &[ResultRow]) -> Vec<SummaryRow> {
    let same_group = |a: &ResultRow, b: &ResultRow| {
        a.run == b.run && a.task == b.task && a.protocol == b.protocol && a.features == b.features
    };
    let mut groups: Vec<(&ResultRow, Vec<&ResultRow>)> = Vec::new();
    for r in rows {
        match groups.iter_mut().find(|(first, _)| same_group(first, r)) {
            Some((_, members)) => members.push(r),
            None => groups.push((r, vec![r])),
        }
    }
    groups
        .into_iter()
        .map(|(first, members)| {
            let acc: Vec<f64> = members.iter().map(|m| m.accuracy).collect();
            let f1: Vec<f64> = members.iter().map(|m| m.macro_f1).collect();
            let bal: Vec<f64> = members.iter().map(|m| m.balanced_accuracy).collect();
            let (accuracy_mean, accuracy_std) = mean_std(&acc);
            let (macro_f1_mean, macro_f1_std) = mean_std(&f1);
            let (balanced_accuracy_mean, balanced_accuracy_std) = mean_std(&bal);
            let mut extra_values: BTreeMap<String, Vec<f64>> = BTreeMap::new();
            for m in &members {
                for (k, v) in &m.extra {
                    extra_values.entry(k.clone()).or_default().push(*v);
                }
            }
            let extra = extra_values
                .into_iter()
                .map(|(k, v)| (k, MeanStd::of(&v)))
                .collect();
            SummaryRow {
                run: first.run.clone(),
                task: first.task.clone(),
                protocol: first.protocol.clone(),
                features: first.features.clone(),
                n_seeds: members.len(),
                accuracy_mean,
                accuracy_std,
                macro_f1_mean,
                macro_f1_std,
                n_test: members.iter().map(|m| m.n_test).max().unwrap_or(0),
                balanced_accuracy_mean,
                balanced_accuracy_std,
                extra,
            }
        })
        .collect()
}

/// Escapes a Markdown table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// A missing or non-finite value in a Markdown cell.
const MISSING: &str = "–";

fn pct(x: f64) -> String {
    if x.is_finite() {
        format!("{:.2}", 100.0 * x)
    } else {
        MISSING.into()
    }
}

fn pct_pm(mean: f64, std: Option<f64>) -> String {
    match std {
        Some(s) if mean.is_finite() && s.is_finite() => format!("{} ± {}", pct(mean), pct(s)),
        _ => pct(mean),
    }
}

fn num(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.4}")
    } else {
        MISSING.into()
    }
}

fn num_pm(m: Option<&MeanStd>) -> String {
    match m {
        Some(MeanStd {
            mean, std: Some(s), ..
        }) if mean.is_finite() && s.is_finite() => format!("{} ± {}", num(*mean), num(*s)),
        Some(m) => num(m.mean),
        None => MISSING.into(),
    }
}

/// Names of the extra metrics of any row, sorted.
fn extra_names<'a, T: 'a, V: 'a>(
    rows: &'a [T],
    extra: impl Fn(&'a T) -> &'a BTreeMap<String, V>,
) -> Vec<&'a str> {
    let mut names: Vec<&str> = rows
        .iter()
        .flat_map(|r| extra(r).keys().map(String::as_str))
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

fn header(first: &str, extras: &[&str]) -> String {
    let mut s = format!(
        "| run | task | protocol | features | {first} | accuracy (%) | macro-F1 (%) | balanced accuracy (%) | n_test |"
    );
    for e in extras {
        let _ = write!(s, " {} |", cell(e));
    }
    s.push_str("\n|---|---|---|---|---:|---:|---:|---:|---:|");
    for _ in extras {
        s.push_str("---:|");
    }
    s.push('\n');
    s
}

/// A GitHub-flavoured Markdown table of the rows: accuracy, macro-F1 and balanced
/// accuracy in percent with two decimals (`–` when not measured), then one column per
/// extra metric (sorted by name; four decimals, as stored).
pub fn to_markdown(rows: &[ResultRow]) -> String {
    let extras = extra_names(rows, |r| &r.extra);
    let mut s = header("seed", &extras);
    for r in rows {
        let _ = write!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            cell(&r.run),
            cell(&r.task),
            cell(&r.protocol),
            cell(&r.features),
            r.seed,
            pct(r.accuracy),
            pct(r.macro_f1),
            pct(r.balanced_accuracy),
            r.n_test
        );
        for e in &extras {
            let v = r.extra.get(*e).map_or(MISSING.into(), |v| num(*v));
            let _ = write!(s, " {v} |");
        }
        s.push('\n');
    }
    s
}

/// A Markdown table of a summary: `mean ± std` over seeds, in percent for accuracy,
/// macro-F1 and balanced accuracy, as stored for extra metrics.
pub fn summary_to_markdown(rows: &[SummaryRow]) -> String {
    let extras = extra_names(rows, |r| &r.extra);
    let mut s = header("seeds", &extras);
    for r in rows {
        let _ = write!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            cell(&r.run),
            cell(&r.task),
            cell(&r.protocol),
            cell(&r.features),
            r.n_seeds,
            pct_pm(r.accuracy_mean, r.accuracy_std),
            pct_pm(r.macro_f1_mean, r.macro_f1_std),
            pct_pm(r.balanced_accuracy_mean, r.balanced_accuracy_std),
            r.n_test
        );
        for e in &extras {
            let _ = write!(s, " {} |", num_pm(r.extra.get(*e)));
        }
        s.push('\n');
    }
    s
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// A confusion matrix `[c, c]` (rows = true, columns = predicted) as CSV: a header
/// `true\pred,<class>...`, then one line per true class. Classes are named by
/// `class_names [c]` when given, else by index.
///
/// # Errors
/// A non-square matrix or `class_names` of the wrong length.
pub fn confusion_to_csv(
    confusion: &[Vec<u64>],
    class_names: Option<&[String]>,
) -> Result<String, EvalError> {
    let c = confusion.len();
    if let Some((i, row)) = confusion.iter().enumerate().find(|(_, r)| r.len() != c) {
        return Err(EvalError::ShapeMismatch {
            what: format!("length of confusion-matrix row {i} (square matrix)"),
            expected: c,
            got: row.len(),
        });
    }
    let names: Vec<String> = match class_names {
        Some(names) if names.len() != c => {
            return Err(EvalError::ShapeMismatch {
                what: "number of class names (one per confusion-matrix row)".into(),
                expected: c,
                got: names.len(),
            })
        }
        Some(names) => names.iter().map(|n| csv_field(n)).collect(),
        None => (0..c).map(|i| i.to_string()).collect(),
    };
    let mut s = String::from("true\\pred");
    for n in &names {
        s.push(',');
        s.push_str(n);
    }
    s.push('\n');
    for (name, row) in names.iter().zip(confusion) {
        s.push_str(name);
        for v in row {
            let _ = write!(s, ",{v}");
        }
        s.push('\n');
    }
    Ok(s)
}

/// Writes [`confusion_to_csv`] to `path`.
pub fn write_confusion_csv(
    confusion: &[Vec<u64>],
    class_names: Option<&[String]>,
    path: &Path,
) -> Result<(), EvalError> {
    let text = confusion_to_csv(confusion, class_names)?;
    std::fs::write(path, text).map_err(|source| EvalError::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(feature = "tables")]
mod polars_io {
    use std::fs::File;
    use std::path::Path;

    use polars::prelude::*;

    use super::{ResultRow, SummaryRow};
    use crate::EvalError;

    enum Format {
        Csv,
        Parquet,
    }

    fn format_of(path: &Path) -> Result<Format, EvalError> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("csv") => Ok(Format::Csv),
            Some("parquet") => Ok(Format::Parquet),
            _ => Err(EvalError::UnsupportedExtension {
                path: path.to_path_buf(),
            }),
        }
    }

    fn strings<T>(rows: &[T], name: &str, f: impl Fn(&T) -> &str) -> Column {
        Column::new(name.into(), rows.iter().map(f).collect::<Vec<&str>>())
    }

    fn optional(name: &str, values: impl Iterator<Item = Option<f64>>) -> Column {
        Column::new(name.into(), values.collect::<Vec<Option<f64>>>())
    }

    fn write(mut df: DataFrame, path: &Path) -> Result<(), EvalError> {
        let format = format_of(path)?;
        let file = File::create(path).map_err(|source| EvalError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let polars_err = |e: PolarsError| EvalError::Polars {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        match format {
            Format::Csv => CsvWriter::new(file)
                .include_header(true)
                .finish(&mut df)
                .map_err(polars_err),
            Format::Parquet => ParquetWriter::new(file)
                .finish(&mut df)
                .map(|_| ())
                .map_err(polars_err),
        }
    }

    /// Writes result rows to `path` as CSV (`.csv`) or Parquet (`.parquet`), chosen by the
    /// extension. Columns: `run, task, protocol, features` (str), `seed` (u64),
    /// `accuracy, macro_f1, balanced_accuracy` (f64; NaN when not measured), `n_test`
    /// (u64), then one f64 column per [`ResultRow::extra`] name (sorted; null where a row
    /// lacks it).
    pub fn write_table(rows: &[ResultRow], path: &Path) -> Result<(), EvalError> {
        format_of(path)?;
        let cols = vec![
            strings(rows, "run", |r| &r.run),
            strings(rows, "task", |r| &r.task),
            strings(rows, "protocol", |r| &r.protocol),
            strings(rows, "features", |r| &r.features),
            Column::new(
                "seed".into(),
                rows.iter().map(|r| r.seed).collect::<Vec<u64>>(),
            ),
            Column::new(
                "accuracy".into(),
                rows.iter().map(|r| r.accuracy).collect::<Vec<f64>>(),
            ),
            Column::new(
                "macro_f1".into(),
                rows.iter().map(|r| r.macro_f1).collect::<Vec<f64>>(),
            ),
            Column::new(
                "balanced_accuracy".into(),
                rows.iter()
                    .map(|r| r.balanced_accuracy)
                    .collect::<Vec<f64>>(),
            ),
            Column::new(
                "n_test".into(),
                rows.iter().map(|r| r.n_test as u64).collect::<Vec<u64>>(),
            ),
        ];
        let mut cols = cols;
        for name in super::extra_names(rows, |r| &r.extra) {
            cols.push(optional(
                name,
                rows.iter().map(|r| r.extra.get(name).copied()),
            ));
        }
        let df = DataFrame::new(rows.len(), cols).map_err(|e| EvalError::Polars {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        write(df, path)
    }

    /// Writes a summary (see [`super::summarise`]) as CSV or Parquet by the extension.
    /// Columns: `run, task, protocol, features` (str), `n_seeds` (u64), `accuracy_mean`,
    /// `accuracy_std`, `macro_f1_mean`, `macro_f1_std` (f64; the std is null for one
    /// seed), `n_test` (u64), `balanced_accuracy_mean`, `balanced_accuracy_std`, then
    /// `<name>_mean`, `<name>_std` per extra metric (sorted by name).
    pub fn write_summary_table(rows: &[SummaryRow], path: &Path) -> Result<(), EvalError> {
        format_of(path)?;
        let f = |name: &str, g: fn(&SummaryRow) -> f64| {
            Column::new(name.into(), rows.iter().map(g).collect::<Vec<f64>>())
        };
        let o = |name: &str, g: fn(&SummaryRow) -> Option<f64>| {
            Column::new(
                name.into(),
                rows.iter().map(g).collect::<Vec<Option<f64>>>(),
            )
        };
        let cols = vec![
            strings(rows, "run", |r| &r.run),
            strings(rows, "task", |r| &r.task),
            strings(rows, "protocol", |r| &r.protocol),
            strings(rows, "features", |r| &r.features),
            Column::new(
                "n_seeds".into(),
                rows.iter().map(|r| r.n_seeds as u64).collect::<Vec<u64>>(),
            ),
            f("accuracy_mean", |r| r.accuracy_mean),
            o("accuracy_std", |r| r.accuracy_std),
            f("macro_f1_mean", |r| r.macro_f1_mean),
            o("macro_f1_std", |r| r.macro_f1_std),
            Column::new(
                "n_test".into(),
                rows.iter().map(|r| r.n_test as u64).collect::<Vec<u64>>(),
            ),
            f("balanced_accuracy_mean", |r| r.balanced_accuracy_mean),
            o("balanced_accuracy_std", |r| r.balanced_accuracy_std),
        ];
        let mut cols = cols;
        for name in super::extra_names(rows, |r| &r.extra) {
            let get = |r: &SummaryRow| r.extra.get(name).copied();
            cols.push(optional(
                &format!("{name}_mean"),
                rows.iter().map(|r| get(r).map(|m| m.mean)),
            ));
            cols.push(optional(
                &format!("{name}_std"),
                rows.iter().map(|r| get(r).and_then(|m| m.std)),
            ));
        }
        let df = DataFrame::new(rows.len(), cols).map_err(|e| EvalError::Polars {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        write(df, path)
    }
}

#[cfg(feature = "tables")]
pub use polars_io::{write_summary_table, write_table};

#[cfg(test)]
mod tests {
    use super::*;

    fn row(run: &str, protocol: &str, seed: u64, accuracy: f64, macro_f1: f64) -> ResultRow {
        ResultRow {
            run: run.into(),
            task: "esc50".into(),
            protocol: protocol.into(),
            features: "cls+mean".into(),
            seed,
            accuracy,
            macro_f1,
            n_test: 400,
            balanced_accuracy: accuracy - 0.1,
            ..Default::default()
        }
    }

    fn rows() -> Vec<ResultRow> {
        vec![
            row("mae-a", "linear", 0, 0.80, 0.70),
            row("mae-a", "knn", 0, 0.60, 0.50),
            row("mae-a", "linear", 1, 0.82, 0.74),
            row("mae-a", "linear", 2, 0.84, 0.72),
        ]
    }

    fn temp_path(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("tessera-eval-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    #[test]
    fn summary_has_mean_and_sample_std() {
        let s = summarise(&rows());
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].protocol.as_str(), s[0].n_seeds), ("linear", 3));
        assert!((s[0].accuracy_mean - 0.82).abs() < 1e-12);
        // Sample std of [0.80, 0.82, 0.84] = 0.02; of [0.70, 0.74, 0.72] = 0.02.
        assert!((s[0].accuracy_std.unwrap() - 0.02).abs() < 1e-12);
        assert!((s[0].macro_f1_std.unwrap() - 0.02).abs() < 1e-12);
        assert_eq!(
            (s[1].protocol.as_str(), s[1].n_seeds, s[1].accuracy_std),
            ("knn", 1, None)
        );
        assert!((s[0].balanced_accuracy_mean - 0.72).abs() < 1e-12);
        assert!((s[0].balanced_accuracy_std.unwrap() - 0.02).abs() < 1e-12);
        let md = summary_to_markdown(&s);
        assert!(
            md.contains(
                "| mae-a | esc50 | linear | cls+mean | 3 | 82.00 ± 2.00 | 72.00 ± 2.00 | 72.00 ± 2.00 | 400 |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| knn | cls+mean | 1 | 60.00 | 50.00 | 50.00 | 400 |"),
            "{md}"
        );
        assert_eq!(
            s[0].metric("balanced_accuracy")
                .map(|m| (m.n, m.std.is_some())),
            Some((3, true))
        );
        assert!(s[0].metric("nope").is_none());
    }

    #[test]
    fn extra_metrics_are_summarised_and_tabulated() {
        let mut r = rows();
        r[0].extra.insert("map_macro".into(), 0.5);
        r[2].extra.insert("map_macro".into(), 0.7);
        r[2].extra.insert("auroc_macro".into(), 0.9);
        r[1].accuracy = f64::NAN;
        let s = summarise(&r);
        let m = s[0].metric("map_macro").unwrap();
        assert_eq!(m.n, 2);
        assert!((m.mean - 0.6).abs() < 1e-15);
        assert!((m.std.unwrap() - 0.02f64.sqrt()).abs() < 1e-12);
        assert_eq!(s[0].metric("auroc_macro").unwrap().std, None);
        assert!(s[1].extra.is_empty());
        let md = to_markdown(&r);
        let lines: Vec<&str> = md.lines().collect();
        assert!(
            lines[0].ends_with("| n_test | auroc_macro | map_macro |"),
            "{md}"
        );
        assert!(lines[2].ends_with("| 400 | – | 0.5000 |"), "{md}");
        assert!(
            lines[3].ends_with("| – | 50.00 | 50.00 | 400 | – | – |"),
            "{md}"
        );
        assert!(lines[4].ends_with("| 400 | 0.9000 | 0.7000 |"), "{md}");
        let smd = summary_to_markdown(&s);
        assert!(smd.contains("| 0.9000 | 0.6000 ± 0.1414 |"), "{smd}");
        // NaN survives a JSON round trip (serde_json writes it as null).
        let json = serde_json::to_string(&r).unwrap();
        let back: Vec<ResultRow> = serde_json::from_str(&json).unwrap();
        assert!(back[1].accuracy.is_nan());
        assert_eq!(back[2].extra, r[2].extra);
        // Rows saved before `balanced_accuracy` and `extra` existed still parse.
        let old = r#"{"run":"a","task":"t","protocol":"linear","features":"cls","seed":1,"accuracy":0.5,"macro_f1":0.4,"n_test":3}"#;
        let old: ResultRow = serde_json::from_str(old).unwrap();
        assert!(old.balanced_accuracy.is_nan() && old.extra.is_empty());
        assert_eq!(old.accuracy, 0.5);
    }

    #[test]
    fn markdown_of_rows() {
        let mut r = rows();
        r[0].run = "a|b".into();
        let md = to_markdown(&r);
        let lines: Vec<&str> = md.lines().collect();
        assert_eq!(lines.len(), 6);
        assert_eq!(
            lines[2],
            "| a\\|b | esc50 | linear | cls+mean | 0 | 80.00 | 70.00 | 70.00 | 400 |"
        );
        assert_eq!(to_markdown(&[]).lines().count(), 2);
    }

    #[test]
    fn confusion_csv() {
        let cm = vec![vec![2, 1], vec![0, 3]];
        assert_eq!(
            confusion_to_csv(&cm, None).unwrap(),
            "true\\pred,0,1\n0,2,1\n1,0,3\n"
        );
        let names = vec!["dog".to_string(), "cat, wild".to_string()];
        assert_eq!(
            confusion_to_csv(&cm, Some(&names)).unwrap(),
            "true\\pred,dog,\"cat, wild\"\ndog,2,1\n\"cat, wild\",0,3\n"
        );
        assert!(confusion_to_csv(&cm, Some(&names[..1])).is_err());
        assert!(confusion_to_csv(&[vec![1, 2]], None).is_err());
        let p = temp_path("confusion.csv");
        write_confusion_csv(&cm, None, &p).unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "true\\pred,0,1\n0,2,1\n1,0,3\n"
        );
        std::fs::remove_file(&p).unwrap();
        let missing = Path::new("/nonexistent-dir-tessera/x.csv");
        assert!(matches!(
            write_confusion_csv(&cm, None, missing),
            Err(EvalError::Io { .. })
        ));
    }

    #[test]
    fn rows_round_trip_through_json() {
        let mut r = rows();
        r[0].extra.insert("r2".into(), -0.25);
        let s = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<Vec<ResultRow>>(&s).unwrap(), r);
        // serde_json parses floats to within an ulp (exactly only with `float_roundtrip`).
        let sm = summarise(&r);
        let s = serde_json::to_string(&sm).unwrap();
        let back: Vec<SummaryRow> = serde_json::from_str(&s).unwrap();
        assert_eq!(back.len(), sm.len());
        for (a, b) in back.iter().zip(&sm) {
            assert_eq!(
                (&a.run, a.n_seeds, a.accuracy_std.is_some()),
                (&b.run, b.n_seeds, b.accuracy_std.is_some())
            );
            assert!((a.accuracy_mean - b.accuracy_mean).abs() < 1e-15);
            assert!((a.accuracy_std.unwrap_or(0.0) - b.accuracy_std.unwrap_or(0.0)).abs() < 1e-15);
        }
    }

    #[cfg(feature = "tables")]
    mod with_polars {
        use super::*;
        use polars::prelude::*;

        fn read(path: &Path) -> DataFrame {
            if path.extension().unwrap() == "csv" {
                CsvReadOptions::default()
                    .with_has_header(true)
                    .try_into_reader_with_file_path(Some(path.to_path_buf()))
                    .unwrap()
                    .finish()
                    .unwrap()
            } else {
                ParquetReader::new(std::fs::File::open(path).unwrap())
                    .finish()
                    .unwrap()
            }
        }

        fn check_rows(df: &DataFrame, want: &[ResultRow]) {
            assert_eq!(df.height(), want.len());
            let names: Vec<String> = df
                .get_column_names()
                .iter()
                .map(|s| s.to_string())
                .collect();
            let mut expected: Vec<&str> = vec![
                "run",
                "task",
                "protocol",
                "features",
                "seed",
                "accuracy",
                "macro_f1",
                "balanced_accuracy",
                "n_test",
            ];
            expected.extend(extra_names(want, |r| &r.extra));
            assert_eq!(names, expected);
            let run = df.column("run").unwrap().str().unwrap();
            let protocol = df.column("protocol").unwrap().str().unwrap();
            let seed = df.column("seed").unwrap().cast(&DataType::UInt64).unwrap();
            let seed = seed.u64().unwrap();
            let acc = df.column("accuracy").unwrap().f64().unwrap();
            let f1 = df.column("macro_f1").unwrap().f64().unwrap();
            let bal = df.column("balanced_accuracy").unwrap().f64().unwrap();
            let n_test = df
                .column("n_test")
                .unwrap()
                .cast(&DataType::UInt64)
                .unwrap();
            for (i, w) in want.iter().enumerate() {
                assert_eq!(run.get(i), Some(w.run.as_str()));
                assert_eq!(protocol.get(i), Some(w.protocol.as_str()));
                assert_eq!(seed.get(i), Some(w.seed));
                assert_eq!(acc.get(i), Some(w.accuracy));
                assert_eq!(f1.get(i), Some(w.macro_f1));
                assert_eq!(bal.get(i), Some(w.balanced_accuracy));
                for (name, v) in &w.extra {
                    let col = df.column(name).unwrap().f64().unwrap();
                    assert_eq!(col.get(i), Some(*v));
                }
                assert_eq!(n_test.u64().unwrap().get(i), Some(w.n_test as u64));
            }
        }

        #[test]
        fn csv_and_parquet_round_trip() {
            let mut r = rows();
            r[1].run = "run, with \"quotes\"".into();
            r[2].accuracy = 1.0 / 3.0;
            r[3].extra.insert("map_macro".into(), 0.25);
            for name in ["results.csv", "results.parquet", "RESULTS.PARQUET"] {
                let p = temp_path(name);
                write_table(&r, &p).unwrap();
                check_rows(&read(&p), &r);
                std::fs::remove_file(&p).unwrap();
            }
            let s = summarise(&r);
            for name in ["summary.csv", "summary.parquet"] {
                let p = temp_path(name);
                write_summary_table(&s, &p).unwrap();
                let df = read(&p);
                assert_eq!(df.height(), s.len());
                let std = df.column("accuracy_std").unwrap().f64().unwrap();
                assert!((std.get(0).unwrap() - s[0].accuracy_std.unwrap()).abs() < 1e-15);
                assert_eq!(std.get(1), None);
                let map = df.column("map_macro_mean").unwrap().f64().unwrap();
                assert_eq!((map.get(0), map.get(1)), (Some(0.25), None));
                assert!(df.column("balanced_accuracy_mean").is_ok());
                std::fs::remove_file(&p).unwrap();
            }
            let empty = temp_path("empty.parquet");
            write_table(&[], &empty).unwrap();
            assert_eq!(read(&empty).height(), 0);
            std::fs::remove_file(&empty).unwrap();
        }

        #[test]
        fn bad_paths_are_errors() {
            assert!(matches!(
                write_table(&rows(), Path::new("x.xlsx")),
                Err(EvalError::UnsupportedExtension { .. })
            ));
            assert!(matches!(
                write_table(&rows(), Path::new("/nonexistent-dir-tessera/x.csv")),
                Err(EvalError::Io { .. })
            ));
        }
    }
}
