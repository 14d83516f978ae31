//! Suites (`benchmarks/suites/*.toml`) and their expansion into a plan of CLI commands.

use crate::registry::{toml_files, Dataset, Registry};
use crate::{read_toml, BenchError, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A benchmark suite: one dataset, encoders × evaluations × seeds, and the baselines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suite {
    pub name: String,
    pub dataset: String,
    #[serde(default)]
    pub description: String,
    pub seeds: Vec<u64>,
    /// Seeds of `--budget small` (default: `seeds`), to keep the quick pass quick.
    #[serde(default)]
    pub small_seeds: Option<Vec<u64>>,
    /// Flags given to every command (after the dataset's split flags).
    #[serde(default)]
    pub args: Vec<String>,
    /// The run the others are compared with, seed by seed (default: the first encoder).
    #[serde(default)]
    pub reference: Option<String>,
    /// The metric of the paired comparisons (default: accuracy, else what rows have).
    #[serde(default)]
    pub metric: Option<String>,
    /// Extra metrics the report's summary shows (default: every one the rows have; the
    /// CSV and Parquet tables always hold them all).
    #[serde(default)]
    pub columns: Vec<String>,
    pub encoders: Vec<EncoderSpec>,
    #[serde(default)]
    pub baselines: Vec<BaselineSpec>,
    pub evals: Vec<EvalSpec>,
    /// External implementations run on the same split (PyTorch scripts), parsed into the
    /// same table.
    #[serde(default)]
    pub peers: Vec<PeerSpec>,
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
    /// Pretrain once with this seed and evaluate it under every seed of the suite (the
    /// seeds then vary the evaluation only: data order, crops, draws). Default: one
    /// pretraining per seed.
    #[serde(default)]
    pub seed: Option<u64>,
}

/// A no-network baseline of the modality (`probe --baseline NAME`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineSpec {
    pub name: String,
    #[serde(default)]
    pub args: Vec<String>,
}

/// How encoders are scored: a subcommand of the domain's CLI (the shared `probe` and
/// `finetune`, or a domain's own such as `segment` or `boxes`) on some of the dataset's
/// tasks, with its own flags (`--config F`). The command must take `--seed`, `--name`,
/// `--checkpoint RUN` or `--random-init`, and `--out DIR`, and write `DIR/rows.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSpec {
    pub command: String,
    /// Label this evaluation's rows with another protocol name (e.g. `frozen` for a
    /// `segment --freeze` run); default: what the command writes.
    #[serde(default)]
    pub protocol: Option<String>,
    /// Dataset task names (default: all).
    #[serde(default)]
    pub tasks: Vec<String>,
    #[serde(default)]
    pub args: Vec<String>,
    /// Training steps of `finetune`, per budget.
    #[serde(default)]
    pub steps: Option<Steps>,
    /// Run the suite's baselines under this evaluation too (commands taking
    /// `--baseline NAME`).
    #[serde(default)]
    pub baselines: bool,
    /// Few-shot: the flag that takes the labelled samples per class (`--few-shot` for
    /// `probe`, `--shots` for `finetune`); the evaluation runs once per value of the
    /// dataset's `[split] shots`.
    #[serde(default)]
    pub shots: Option<String>,
}

/// An external implementation (a PyTorch script) run on the same split. `command` is an
/// argument list with placeholders: `{python}` (the benchmarks' PyTorch environment,
/// `benchmarks/setup_torch.sh`), `{manifest}`, `{data}` (the dataset's folder), `{seed}`,
/// `{steps}`, `{threads}` and `{out}` (a folder for the peer's files). Every line of its
/// standard output that is a JSON object becomes a row: `run`, `task`, `protocol`,
/// `features`, `seed` and `n_test` (or `test_cases`) when present (else the peer's name, `task`,
/// `protocol` and the job's seed), `accuracy`, `macro_f1`, `balanced_accuracy`, and
/// every other number as an extra metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerSpec {
    pub name: String,
    pub command: Vec<String>,
    pub task: String,
    pub protocol: String,
    #[serde(default)]
    pub steps: Option<Steps>,
    /// Run once (seed 0) instead of once per seed: for deterministic peers, or scripts
    /// that loop over the seeds themselves (`{seeds}`: the seeds, comma-separated).
    #[serde(default)]
    pub once: bool,
    /// Python packages the peer needs besides torch (installed into `{python}`'s
    /// environment with pip before it runs).
    #[serde(default)]
    pub requires: Vec<String>,
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
            if e.command.is_empty()
                || e.command == "pretrain"
                || !e
                    .command
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-')
            {
                return Err(bad(format!(
                    "evaluation command `{}` is not a subcommand name",
                    e.command
                )));
            }
            if e.shots.is_some() && d.split.as_ref().is_none_or(|s| s.shots.is_empty()) {
                return Err(bad(format!(
                    "`shots` needs the dataset `{}` to list [split] shots",
                    d.name
                )));
            }
        }
        let mut names: Vec<&str> = s.encoders.iter().map(|e| e.name.as_str()).collect();
        names.extend(s.baselines.iter().map(|b| b.name.as_str()));
        names.extend(s.peers.iter().map(|b| b.name.as_str()));
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        if names.len() != n {
            return Err(bad(
                "encoder, baseline and peer names must be distinct".into()
            ));
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
    /// The protocol name its rows are given (`None`: as written).
    pub protocol: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobKind {
    Pretrain,
    /// A subcommand of the domain's CLI that writes `rows.jsonl`.
    Eval(String),
    /// An external program (`args` is its whole command line, placeholders filled).
    Peer,
}

impl JobKind {
    pub fn command(&self) -> &str {
        match self {
            Self::Pretrain => "pretrain",
            Self::Eval(c) => c,
            Self::Peer => "peer",
        }
    }
}

/// The files a plan reads: the dataset's manifest, what pretraining reads, and the
/// folder that tasks' own manifests are relative to.
#[derive(Debug, Clone)]
pub struct PlanData {
    pub manifest: PathBuf,
    pub pretrain: PathBuf,
    pub base: PathBuf,
    /// The dataset's own folder (`{data}` of peers).
    pub dir: PathBuf,
}

impl Suite {
    /// The reference run of paired comparisons.
    pub fn reference(&self) -> &str {
        self.reference.as_deref().unwrap_or(&self.encoders[0].name)
    }

    /// The suite's commands under `budget` for `seeds` (default: the suite's seeds for the
    /// budget). Each
    /// pretraining comes before the evaluations that read it.
    pub fn plan(
        &self,
        d: &Dataset,
        files: &PlanData,
        budget: Budget,
        seeds: Option<&[u64]>,
    ) -> Vec<Job> {
        let mut common = Vec::new();
        if let Some(s) = &d.split {
            common.extend([
                "--split-column".into(),
                s.column.clone(),
                "--test-split".into(),
                s.test.clone(),
            ]);
        }
        common.extend(self.args.iter().cloned());
        let data = |p: &Path| ["--data".to_string(), p.display().to_string()];
        let seeds = match (seeds, budget, &self.small_seeds) {
            (Some(s), _, _) => s,
            (None, Budget::Small, Some(s)) => s,
            _ => &self.seeds,
        };
        let mut jobs = Vec::new();
        // Pretraining runs shared by every seed (`seed = N` on the encoder).
        let mut shared = BTreeMap::new();
        let pretrain = |e: &EncoderSpec, st: Steps, seed: u64| {
            let mut args = data(&files.pretrain).to_vec();
            args.extend(common.iter().cloned());
            args.extend(e.args.iter().cloned());
            args.extend(["--steps".into(), st.get(budget).to_string()]);
            args.extend(["--seed".into(), seed.to_string()]);
            Job {
                kind: JobKind::Pretrain,
                run: e.name.clone(),
                seed,
                args,
                needs: None,
                protocol: None,
            }
        };
        for e in &self.encoders {
            if let (Some(st), Some(seed)) = (e.steps, e.seed) {
                shared.insert(e.name.clone(), jobs.len());
                jobs.push(pretrain(e, st, seed));
            }
        }
        for &seed in seeds {
            let seed_args = ["--seed".to_string(), seed.to_string()];
            let mut pretrained = shared.clone();
            for e in &self.encoders {
                if let (Some(st), None) = (e.steps, e.seed) {
                    pretrained.insert(e.name.clone(), jobs.len());
                    jobs.push(pretrain(e, st, seed));
                }
            }
            for ev in &self.evals {
                let tasks = d
                    .tasks
                    .iter()
                    .filter(|t| ev.tasks.is_empty() || ev.tasks.contains(&t.name));
                let shots: Vec<Option<usize>> = match &ev.shots {
                    Some(_) => d
                        .split
                        .iter()
                        .flat_map(|s| s.shots.iter().map(|&k| Some(k)))
                        .collect(),
                    None => vec![None],
                };
                for t in tasks {
                    for &k in &shots {
                        let mut base = t
                            .data_args(&files.base)
                            .map_or_else(|| data(&files.manifest).to_vec(), |a| a.to_vec());
                        base.extend(common.iter().cloned());
                        base.extend(t.args());
                        base.extend(ev.args.iter().cloned());
                        if let (Some(flag), Some(k)) = (&ev.shots, k) {
                            base.extend([flag.clone(), k.to_string()]);
                        }
                        if let Some(st) = ev.steps {
                            base.extend(["--steps".into(), st.get(budget).to_string()]);
                        }
                        base.extend(seed_args.iter().cloned());
                        let job = |run: &str, args: Vec<String>, needs| Job {
                            kind: JobKind::Eval(ev.command.clone()),
                            run: run.to_string(),
                            seed,
                            args,
                            needs,
                            protocol: ev.protocol.clone(),
                        };
                        for e in &self.encoders {
                            let mut args = base.clone();
                            args.extend(["--name".into(), e.name.clone()]);
                            let needs = pretrained.get(&e.name).copied();
                            if needs.is_none() {
                                args.push("--random-init".into());
                                args.extend(e.args.iter().cloned());
                            }
                            jobs.push(job(&e.name, args, needs));
                        }
                        if ev.baselines {
                            for b in &self.baselines {
                                let mut args = base.clone();
                                args.extend(["--baseline".into(), b.name.clone()]);
                                args.extend(b.args.iter().cloned());
                                jobs.push(job(&b.name, args, None));
                            }
                        }
                    }
                }
            }
        }
        for p in &self.peers {
            let runs: Vec<u64> = if p.once { vec![0] } else { seeds.to_vec() };
            for seed in runs {
                let steps = p.steps.map_or(String::new(), |s| s.get(budget).to_string());
                let all: Vec<String> = seeds.iter().map(u64::to_string).collect();
                let args = p
                    .command
                    .iter()
                    .map(|a| {
                        a.replace("{manifest}", &files.manifest.display().to_string())
                            .replace("{data}", &files.dir.display().to_string())
                            .replace("{seeds}", &all.join(","))
                            .replace("{seed}", &seed.to_string())
                            .replace("{steps}", &steps)
                    })
                    .collect();
                jobs.push(Job {
                    kind: JobKind::Peer,
                    run: p.name.clone(),
                    seed,
                    args,
                    needs: None,
                    protocol: Some(p.protocol.clone()),
                });
            }
        }
        jobs
    }

    /// The peer a peer job runs.
    pub fn peer(&self, name: &str) -> Option<&PeerSpec> {
        self.peers.iter().find(|p| p.name == name)
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
shots = [1, 5]
[[tasks]]
name = "a"
kind = "classification"
label_column = "a"
[[tasks]]
name = "b"
kind = "multi-label"
label_column = "b"
[[tasks]]
name = "seg"
kind = "segmentation"
data = "boxes.csv"
data_flag = "--boxes"
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
tasks = ["a", "b"]
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
        let files = PlanData {
            manifest: "m.csv".into(),
            pretrain: "unlabelled".into(),
            base: "base".into(),
            dir: "raw".into(),
        };
        let jobs = s.plan(reg.get("toy").unwrap(), &files, Budget::Full, None);
        // Per seed: 1 pretraining, probe × 2 tasks × (2 encoders + 1 baseline), finetune
        // × 1 task × 2 encoders.
        assert_eq!(jobs.len(), 2 * (1 + 6 + 2));
        let first = &jobs[0];
        assert_eq!(first.kind, JobKind::Pretrain);
        assert!(first.args.windows(2).any(|w| w == ["--steps", "50"]));
        assert!(first.args.windows(2).any(|w| w == ["--data", "unlabelled"]));
        assert!(first
            .args
            .windows(2)
            .any(|w| w == ["--split-column", "split"]));
        let multi = jobs
            .iter()
            .find(|j| j.args.contains(&"--multi-label".to_string()))
            .unwrap();
        assert_eq!(multi.kind, JobKind::Eval("probe".into()));
        let ft: Vec<_> = jobs
            .iter()
            .filter(|j| j.kind == JobKind::Eval("finetune".into()) && j.seed == 4)
            .collect();
        assert_eq!(ft.len(), 2);
        assert_eq!(ft[0].needs, Some(9), "seed 4's pretraining is job 9");
        assert!(ft[1].args.contains(&"--random-init".to_string()) && ft[1].needs.is_none());
        assert!(ft[1].args.windows(2).any(|w| w == ["--steps", "20"]));
        let only = s.plan(reg.get("toy").unwrap(), &files, Budget::Small, Some(&[4]));
        assert_eq!(only.len(), 9);
        assert!(only.iter().all(|j| j.seed == 4));

        // Few-shot draws from the registry, a task with its own manifest and flags, a
        // pretraining shared by the seeds, a relabelled protocol and a peer.
        let more = format!(
            "{SUITE}{}",
            r#"
[[encoders]]
name = "once"
args = ["--preset", "q"]
steps = { small = 1, full = 10 }
seed = 7
[[evals]]
command = "probe"
tasks = ["a"]
shots = "--few-shot"
[[evals]]
command = "segment"
tasks = ["seg"]
protocol = "frozen"
args = ["--freeze"]
[[peers]]
name = "torch"
command = ["{python}", "p.py", "{manifest}", "--seed", "{seed}", "--steps", "{steps}", "--out", "{out}"]
task = "a"
protocol = "finetune"
steps = { small = 3, full = 30 }
"#
        );
        write(&dir.join("s3"), "s.toml", &more);
        let s3 = &load_suites(&dir.join("s3"), &reg).unwrap()["s"];
        let jobs = s3.plan(reg.get("toy").unwrap(), &files, Budget::Small, None);
        let pre: Vec<_> = jobs
            .iter()
            .filter(|j| j.kind == JobKind::Pretrain)
            .collect();
        assert_eq!(pre.len(), 3, "`once` pretrained once, `pre` per seed");
        assert_eq!(jobs[0].run, "once");
        assert!(jobs[0].args.windows(2).any(|w| w == ["--seed", "7"]));
        let few: Vec<_> = jobs
            .iter()
            .filter(|j| j.args.contains(&"--few-shot".to_string()))
            .collect();
        // 2 seeds x 2 shot counts x 3 encoders.
        assert_eq!(few.len(), 12);
        assert!(few
            .iter()
            .any(|j| j.args.windows(2).any(|w| w == ["--few-shot", "5"])));
        let once_evals: Vec<_> = jobs
            .iter()
            .filter(|j| j.run == "once" && j.needs.is_some())
            .collect();
        assert!(once_evals.iter().all(|j| j.needs == Some(0)));
        let seg = jobs
            .iter()
            .find(|j| j.kind == JobKind::Eval("segment".into()))
            .unwrap();
        assert_eq!(seg.protocol.as_deref(), Some("frozen"));
        assert!(seg
            .args
            .windows(2)
            .any(|w| w == ["--boxes", "base/boxes.csv"]));
        assert!(!seg.args.contains(&"--data".to_string()));
        assert!(seg.args.windows(2).any(|w| w == ["--task", "seg"]));
        let peers: Vec<_> = jobs.iter().filter(|j| j.kind == JobKind::Peer).collect();
        assert_eq!(peers.len(), 2);
        assert_eq!(
            peers[1].args,
            ["{python}", "p.py", "m.csv", "--seed", "4", "--steps", "3", "--out", "{out}"]
        );

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
                SUITE.replace("command = \"finetune\"", "command = \"fine tune\""),
                "not a subcommand",
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
