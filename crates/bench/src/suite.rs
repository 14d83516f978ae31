//! Suites (`benchmarks/suites/*.toml`) and their expansion into a plan of CLI commands.

use crate::registry::{toml_files, Dataset, Registry};
use crate::{read_toml, BenchError, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// A benchmark suite: one dataset, encoders × evaluations × seeds, and the baselines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suite {
    pub name: String,
    pub dataset: String,
    #[serde(default)]
    pub description: String,
    pub seeds: Vec<u64>,
    /// Flags given to every command (after the dataset's split flags).
    #[serde(default)]
    pub args: Vec<String>,
    /// The run the others are compared with, seed by seed (default: the first encoder).
    #[serde(default)]
    pub reference: Option<String>,
    pub encoders: Vec<EncoderSpec>,
    #[serde(default)]
    pub baselines: Vec<BaselineSpec>,
    pub evals: Vec<EvalSpec>,
}

/// Steps per budget (`small` for a quick pass over every suite, `full` for the published
/// figures).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Steps {
    pub small: u64,
    pub full: u64,
}

impl Steps {
    pub fn get(&self, budget: Budget) -> u64 {
        match budget {
            Budget::Small => self.small,
            Budget::Full => self.full,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Budget {
    Small,
    Full,
}

/// An encoder: pretrained with `pretrain` for `steps`, or randomly initialised (`steps`
/// absent). `args` select the model (`--preset`, `--config`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncoderSpec {
    pub name: String,
    pub args: Vec<String>,
    #[serde(default)]
    pub steps: Option<Steps>,
}

/// A no-network baseline of the modality (`probe --baseline NAME`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineSpec {
    pub name: String,
    #[serde(default)]
    pub args: Vec<String>,
}

/// How encoders are scored: a shared subcommand (`probe` or `finetune`) on some of the
/// dataset's tasks, with its own flags (`--few-shot 10`, `--shots 10`, `--config F`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSpec {
    pub command: EvalCommand,
    /// Dataset task names (default: all).
    #[serde(default)]
    pub tasks: Vec<String>,
    #[serde(default)]
    pub args: Vec<String>,
    /// Training steps of `finetune`, per budget.
    #[serde(default)]
    pub steps: Option<Steps>,
    /// Run the suite's baselines under this evaluation too (`probe` only).
    #[serde(default)]
    pub baselines: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EvalCommand {
    Probe,
    Finetune,
}

impl EvalCommand {
    fn as_str(self) -> &'static str {
        match self {
            Self::Probe => "probe",
            Self::Finetune => "finetune",
        }
    }
}

/// Every suite of a folder, by name.
pub fn load_suites(dir: &Path, registry: &Registry) -> Result<BTreeMap<String, Suite>> {
    let mut out = BTreeMap::new();
    for path in toml_files(dir)? {
        let s: Suite = read_toml(&path)?;
        let bad = |message: String| BenchError::Parse {
            path: path.clone(),
            message,
        };
        if path.file_stem().and_then(|x| x.to_str()) != Some(s.name.as_str()) {
            return Err(bad(format!("the file name must be `{}.toml`", s.name)));
        }
        let d = registry.get(&s.dataset).map_err(|e| bad(e.to_string()))?;
        if s.seeds.is_empty() || s.encoders.is_empty() || s.evals.is_empty() {
            return Err(bad("a suite needs seeds, [[encoders]] and [[evals]]".into()));
        }
        for e in &s.evals {
            for t in &e.tasks {
                if !d.tasks.iter().any(|k| &k.name == t) {
                    return Err(bad(format!("dataset `{}` has no task `{t}`", d.name)));
                }
            }
            if e.baselines && e.command != EvalCommand::Probe {
                return Err(bad("baselines run under `probe` only".into()));
            }
        }
        let mut names: Vec<&str> = s.encoders.iter().map(|e| e.name.as_str()).collect();
        names.extend(s.baselines.iter().map(|b| b.name.as_str()));
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        if names.len() != n {
            return Err(bad("encoder and baseline names must be distinct".into()));
        }
        if let Some(r) = &s.reference {
            if !names.contains(&r.as_str()) {
                return Err(bad(format!(
                    "reference `{r}` is not an encoder or baseline"
                )));
            }
        }
        out.insert(s.name.clone(), s);
    }
    Ok(out)
}

/// One command of a plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// `pretrain` jobs come first; an eval of a pretrained encoder names its pretrain job.
    pub kind: JobKind,
    /// Encoder or baseline name (the `run` column of the results).
    pub run: String,
    pub seed: u64,
    /// Flags after the subcommand, without `--out`, `--checkpoint` or `--threads` (the
    /// runner adds them).
    pub args: Vec<String>,
    /// Index of the pretrain job whose run this job reads.
    pub needs: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    Pretrain,
    Eval(EvalCommand),
}

impl JobKind {
    pub fn command(self) -> &'static str {
        match self {
            Self::Pretrain => "pretrain",
            Self::Eval(c) => c.as_str(),
        }
    }
}

impl Suite {
    /// The reference run of paired comparisons.
    pub fn reference(&self) -> &str {
        self.reference.as_deref().unwrap_or(&self.encoders[0].name)
    }

    /// The suite's commands under `budget` for `seeds` (default: the suite's), given the
    /// dataset's manifest path.
    pub fn plan(
        &self,
        d: &Dataset,
        manifest: &Path,
        budget: Budget,
        seeds: Option<&[u64]>,
    ) -> Vec<Job> {
        let mut data = vec!["--data".to_string(), manifest.display().to_string()];
        if let Some(s) = &d.split {
            data.extend([
                "--split-column".into(),
                s.column.clone(),
                "--test-split".into(),
                s.test.clone(),
            ]);
        }
        data.extend(self.args.iter().cloned());
        let seeds = seeds.unwrap_or(&self.seeds);
        let mut jobs = Vec::new();
        for &seed in seeds {
            let seed_args = ["--seed".to_string(), seed.to_string()];
            let mut pretrained = BTreeMap::new();
            for e in &self.encoders {
                if let Some(st) = e.steps {
                    let mut args = data.clone();
                    args.extend(e.args.iter().cloned());
                    args.extend(["--steps".into(), st.get(budget).to_string()]);
                    args.extend(seed_args.iter().cloned());
                    pretrained.insert(e.name.clone(), jobs.len());
                    jobs.push(Job {
                        kind: JobKind::Pretrain,
                        run: e.name.clone(),
                        seed,
                        args,
                        needs: None,
                    });
                }
            }
            for ev in &self.evals {
                let tasks: Vec<_> = d
                    .tasks
                    .iter()
                    .filter(|t| ev.tasks.is_empty() || ev.tasks.contains(&t.name))
                    .collect();
                for t in tasks {
                    let mut base = data.clone();
                    base.extend(t.args());
                    base.extend(ev.args.iter().cloned());
                    if let Some(st) = ev.steps {
                        base.extend(["--steps".into(), st.get(budget).to_string()]);
                    }
                    base.extend(seed_args.iter().cloned());
                    for e in &self.encoders {
                        let mut args = base.clone();
                        args.extend(["--name".into(), e.name.clone()]);
                        let needs = pretrained.get(&e.name).copied();
                        if needs.is_none() {
                            args.push("--random-init".into());
                            args.extend(e.args.iter().cloned());
                        }
                        jobs.push(Job {
                            kind: JobKind::Eval(ev.command),
                            run: e.name.clone(),
                            seed,
                            args,
                            needs,
                        });
                    }
                    if ev.baselines {
                        for b in &self.baselines {
                            let mut args = base.clone();
                            args.extend(["--baseline".into(), b.name.clone()]);
                            args.extend(b.args.iter().cloned());
                            jobs.push(Job {
                                kind: JobKind::Eval(ev.command),
                                run: b.name.clone(),
                                seed,
                                args,
                                needs: None,
                            });
                        }
                    }
                }
            }
        }
        jobs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(name), text).unwrap();
    }

    const DATASET: &str = r#"
name = "toy"
domain = "audio"
description = "toy"
path = "toy"
manifest = "m.csv"
licence = "none"
citation = "none"
[split]
column = "split"
[[tasks]]
name = "a"
kind = "classification"
label_column = "a"
[[tasks]]
name = "b"
kind = "multi-label"
label_column = "b"
"#;

    const SUITE: &str = r#"
name = "s"
dataset = "toy"
seeds = [3, 4]
[[encoders]]
name = "pre"
args = ["--preset", "p"]
steps = { small = 5, full = 50 }
[[encoders]]
name = "rand"
args = ["--preset", "p"]
[[baselines]]
name = "base"
[[evals]]
command = "probe"
baselines = true
[[evals]]
command = "finetune"
tasks = ["a"]
steps = { small = 2, full = 20 }
"#;

    #[test]
    fn a_suite_expands_into_pretraining_then_evaluations_per_seed() {
        let dir = std::env::temp_dir().join(format!("tessera-bench-plan-{}", std::process::id()));
        write(&dir.join("d"), "toy.toml", DATASET);
        write(&dir.join("s"), "s.toml", SUITE);
        let reg = Registry::load(&dir.join("d")).unwrap();
        let suites = load_suites(&dir.join("s"), &reg).unwrap();
        let s = &suites["s"];
        assert_eq!(s.reference(), "pre");
        let jobs = s.plan(
            reg.get("toy").unwrap(),
            Path::new("m.csv"),
            Budget::Full,
            None,
        );
        // Per seed: 1 pretraining, probe × 2 tasks × (2 encoders + 1 baseline), finetune
        // × 1 task × 2 encoders.
        assert_eq!(jobs.len(), 2 * (1 + 6 + 2));
        let first = &jobs[0];
        assert_eq!(first.kind, JobKind::Pretrain);
        assert!(first.args.windows(2).any(|w| w == ["--steps", "50"]));
        assert!(first
            .args
            .windows(2)
            .any(|w| w == ["--split-column", "split"]));
        let multi = jobs
            .iter()
            .find(|j| j.args.contains(&"--multi-label".to_string()))
            .unwrap();
        assert_eq!(multi.kind, JobKind::Eval(EvalCommand::Probe));
        let ft: Vec<_> = jobs
            .iter()
            .filter(|j| j.kind == JobKind::Eval(EvalCommand::Finetune) && j.seed == 4)
            .collect();
        assert_eq!(ft.len(), 2);
        assert_eq!(ft[0].needs, Some(9), "seed 4's pretraining is job 9");
        assert!(ft[1].args.contains(&"--random-init".to_string()) && ft[1].needs.is_none());
        assert!(ft[1].args.windows(2).any(|w| w == ["--steps", "20"]));
        let only = s.plan(
            reg.get("toy").unwrap(),
            Path::new("m.csv"),
            Budget::Small,
            Some(&[4]),
        );
        assert_eq!(only.len(), 9);
        assert!(only.iter().all(|j| j.seed == 4));

        // Mistakes are refused naming the file.
        for (bad, why) in [
            (
                SUITE.replace("tasks = [\"a\"]", "tasks = [\"c\"]"),
                "no task `c`",
            ),
            (
                SUITE.replace("name = \"base\"", "name = \"rand\""),
                "distinct",
            ),
            (
                SUITE.replace("seeds = [3, 4]", "seeds = [3, 4]\nreference = \"x\""),
                "reference `x`",
            ),
            (
                SUITE.replace(
                    "command = \"finetune\"",
                    "command = \"finetune\"\nbaselines = true",
                ),
                "probe",
            ),
            (
                SUITE.replace("dataset = \"toy\"", "dataset = \"nope\""),
                "no dataset `nope`",
            ),
            (
                SUITE.replace("seeds = [3, 4]", "seeds = [3, 4]\nsede = 1"),
                "unknown field",
            ),
        ] {
            write(&dir.join("bad"), "s.toml", &bad);
            let e = load_suites(&dir.join("bad"), &reg).unwrap_err().to_string();
            assert!(e.contains(why) && e.contains("s.toml"), "{e}");
        }
        write(&dir.join("bad2"), "t.toml", SUITE);
        let e = load_suites(&dir.join("bad2"), &reg)
            .unwrap_err()
            .to_string();
        assert!(e.contains("must be `s.toml`"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
