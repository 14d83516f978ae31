//! Running a suite's plan: cached by key, resumable, several jobs at a time.

use crate::registry::Dataset;
use crate::suite::{Budget, Job, JobKind, PeerSpec, PlanData, Suite};
use crate::{args_key, io, sha256_hex, store, BenchError, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Instant;
use tessera_eval::ResultRow;

/// Runs one command of a domain's CLI, or an external program.
pub trait Runner: Sync {
    /// Runs `tessera-<domain> <args>`, its output going to `log`.
    fn run(&self, domain: &str, args: &[String], log: &Path) -> Result<()>;

    /// The domain's CLI as a program path (for `prepare` commands).
    fn cli(&self, domain: &str) -> PathBuf {
        PathBuf::from(format!("tessera-{domain}"))
    }

    /// Runs `argv` (a peer), its standard output going to `stdout` and its errors to `log`.
    fn run_program(&self, argv: &[String], stdout: &Path, log: &Path) -> Result<()> {
        let (prog, rest) = argv
            .split_first()
            .ok_or_else(|| BenchError::Config("empty peer command".into()))?;
        let out = std::fs::File::create(stdout).map_err(io(stdout))?;
        let err = std::fs::File::create(log).map_err(io(log))?;
        finish(
            std::process::Command::new(prog)
                .args(rest)
                .stdout(out)
                .stderr(err),
            format!("{prog} {}", rest.first().map_or("", |s| s.as_str())),
            log,
            |e| format!("cannot start {prog}: {e}"),
        )
    }
}

/// Runs `cmd` to its end: a failure to start is `start_error`'s message, a non-zero exit
/// names `what` and its `log`.
fn finish(
    cmd: &mut std::process::Command,
    what: String,
    log: &Path,
    start_error: impl FnOnce(std::io::Error) -> String,
) -> Result<()> {
    let status = cmd
        .status()
        .map_err(|e| BenchError::Config(start_error(e)))?;
    if status.success() {
        Ok(())
    } else {
        Err(BenchError::Run {
            what,
            code: status
                .code()
                .map_or_else(|| "by signal".into(), |c| c.to_string()),
            log: log.to_path_buf(),
        })
    }
}

/// Runs the domain CLIs as processes: `tessera-<domain>` from `bin_dir` (default: the
/// folder of this executable, where cargo puts every binary of the workspace) or `PATH`.
#[derive(Debug, Clone, Default)]
pub struct ProcessRunner {
    pub bin_dir: Option<PathBuf>,
}

impl Runner for ProcessRunner {
    fn cli(&self, domain: &str) -> PathBuf {
        let name = format!("tessera-{domain}");
        let dir = self.bin_dir.clone().or_else(|| {
            std::env::current_exe()
                .ok()
                .and_then(|p| p.parent().map(Path::to_path_buf))
        });
        dir.map(|d| d.join(&name))
            .filter(|p| p.is_file())
            .unwrap_or_else(|| PathBuf::from(&name))
    }

    fn run(&self, domain: &str, args: &[String], log: &Path) -> Result<()> {
        let name = format!("tessera-{domain}");
        let bin = self.cli(domain);
        let out = std::fs::File::create(log).map_err(io(log))?;
        let err = out.try_clone().map_err(io(log))?;
        finish(
            std::process::Command::new(&bin)
                .args(args)
                .stdout(out)
                .stderr(err),
            format!("{name} {}", args.first().map_or("", |s| s.as_str())),
            log,
            |e| {
                format!(
                    "cannot start {} ({e}); build it with `cargo build --release -p {name}-cli` or put it on PATH",
                    bin.display()
                )
            },
        )
    }
}

/// Settings of [`run_suite`].
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Results, cache and generated data go here (`runs/bench`).
    pub out: PathBuf,
    /// Where downloaded datasets live.
    pub data_root: PathBuf,
    pub budget: Budget,
    /// Seeds to run instead of the suite's.
    pub seeds: Option<Vec<u64>>,
    /// Commands at a time.
    pub jobs: usize,
    /// Threads in all (each command gets `threads / jobs`).
    pub threads: usize,
    /// Print the plan without running it.
    pub dry_run: bool,
    /// The Python of the peers (`None`: `benchmarks/setup_torch.sh` finds or makes one
    /// when a peer first runs).
    pub python: Option<String>,
    /// A folder of published runs (`DIR/runs/<suite>.jsonl`): runs recorded there are taken
    /// instead of computed, and a pretraining whose every reader is taken is not run.
    pub reuse: Option<PathBuf>,
    /// Record every finished evaluation and peer run in `DIR/runs/<suite>.jsonl`: each as
    /// it finishes, and before and after the schedule every finished run of the plan,
    /// cached ones included.
    pub record: Option<PathBuf>,
}

/// What a suite run produced.
#[derive(Debug, Clone, Default)]
pub struct SuiteRun {
    pub rows: Vec<ResultRow>,
    pub computed: usize,
    pub cached: usize,
    /// Runs taken from the published runs of `RunOptions::reuse`.
    pub reused: usize,
    /// Pretrainings not run because every run that reads them was taken or cached.
    pub skipped: usize,
    /// The commands, as a user would type them (for the report).
    pub commands: Vec<String>,
}

/// Version of the key scheme: bump it to invalidate every cached run.
const KEY_VERSION: &str = "tessera-bench/1";

/// The folder holding a dataset: generated datasets live under `out/generated`.
pub fn dataset_root(d: &Dataset, opts: &RunOptions) -> PathBuf {
    if d.generated {
        opts.out.join("generated")
    } else {
        opts.data_root.clone()
    }
}

/// Runs (or reuses) every job of `suite` on `dataset`.
pub fn run_suite(
    suite: &Suite,
    d: &Dataset,
    runner: &dyn Runner,
    opts: &RunOptions,
) -> Result<SuiteRun> {
    let root = dataset_root(d, opts);
    if d.generated && !d.present(&root) {
        let dir = d.dir(&root);
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        eprintln!("generating `{}` in {}", d.name, dir.display());
        let args: Vec<String> = ["demo", "--data-only", "--out"]
            .iter()
            .map(|s| s.to_string())
            .chain([dir.display().to_string()])
            .collect();
        runner.run(&d.domain, &args, &dir.join("generate.log"))?;
    }
    if !d.present(&root) {
        return Err(BenchError::Config(format!(
            "dataset `{}` is not at {} (see benchmarks/datasets/{}.toml: {}; --data-root or TESSERA_DATA point elsewhere)",
            d.name,
            d.dir(&root).display(),
            d.name,
            d.source
        )));
    }
    let prepared = opts.out.join("prepared").join(&d.name);
    d.prepare(&root, &prepared, &runner.cli(&d.domain))?;
    let fingerprint = d.fingerprint(&root, &prepared)?;
    let files = PlanData {
        manifest: d.manifest_path(&root, &prepared),
        pretrain: d.pretrain_path(&root, &prepared),
        base: d.base(&root, &prepared),
        dir: d.dir(&root),
    };
    let jobs = suite.plan(d, &files, opts.budget, opts.seeds.as_deref());
    let keys = job_keys(&jobs, &d.domain, &fingerprint)?;
    let cache = opts.out.join("cache");
    let dirs: Vec<PathBuf> = keys.iter().map(|k| cache.join(&k[..16])).collect();
    let threads = (opts.threads / opts.jobs.max(1)).max(1);
    let commands: Vec<(Vec<String>, String)> = jobs
        .iter()
        .zip(&dirs)
        .map(|(j, dir)| command_line(j, dir, &dirs, threads, &d.domain))
        .collect();
    let mut result = SuiteRun {
        commands: commands.iter().map(|c| c.1.clone()).collect(),
        ..Default::default()
    };
    let (published, published_from) = match &opts.reuse {
        Some(d) => {
            let p = store::path(d, &suite.name);
            (store::load(&p)?, p)
        }
        None => (BTreeMap::new(), PathBuf::new()),
    };
    let done = |i: usize| dirs[i].join("done").exists();
    let reusable: Vec<bool> = (0..jobs.len())
        .map(|i| jobs[i].kind != JobKind::Pretrain && !done(i) && published.contains_key(&keys[i]))
        .collect();
    // A pretraining is needed only while something that reads it is still to run.
    let skip: Vec<bool> = (0..jobs.len())
        .map(|i| {
            jobs[i].kind == JobKind::Pretrain
                && !done(i)
                && (0..jobs.len()).all(|k| jobs[k].needs != Some(i) || done(k) || reusable[k])
        })
        .collect();
    if opts.dry_run {
        for (i, (j, c)) in jobs.iter().zip(&commands).enumerate() {
            let state = if done(i) {
                "cached"
            } else if reusable[i] {
                "published"
            } else if skip[i] {
                "not needed"
            } else {
                "to run"
            };
            println!("[{state}] seed {} {}: {}", j.seed, j.run, c.1);
        }
        return Ok(result);
    }
    for i in (0..jobs.len()).filter(|&i| reusable[i]) {
        store::import(&published[&keys[i]], &dirs[i], &published_from)?;
        result.reused += 1;
    }
    result.skipped = skip.iter().filter(|&&s| s).count();
    let record = opts.record.as_ref().map(|d| store::path(d, &suite.name));
    let stored = |i: usize| {
        let j = &jobs[i];
        store::from_cache(&dirs[i], &keys[i], &j.run, j.seed, &commands[i].1)
    };
    // Every finished run of the plan, cached ones included, into the published runs: before
    // the schedule (so an interruption keeps them) and after it.
    let sync = || -> Result<()> {
        if let Some(p) = &record {
            let mut runs = store::load(p)?;
            for i in (0..jobs.len()).filter(|&i| jobs[i].kind != JobKind::Pretrain && done(i)) {
                runs.insert(keys[i].clone(), stored(i)?);
            }
            store::write_all(p, &runs)?;
        }
        Ok(())
    };
    sync()?;
    let recording = Mutex::new(());
    let python = OnceLock::new();
    let ctx = JobContext {
        suite,
        domain: &d.domain,
        runner,
        opts,
        python: &python,
    };
    for r in schedule(&jobs, &skip, opts.jobs, |i| {
        let ran = ctx.run(&jobs[i], &commands[i], &dirs[i])?;
        if let (true, Some(p)) = (ran && jobs[i].kind != JobKind::Pretrain, &record) {
            let _one_writer = recording.lock().unwrap_or_else(|p| p.into_inner());
            store::append(p, &stored(i)?)?;
        }
        Ok(ran)
    })? {
        match r {
            (_, true) => result.computed += 1,
            (i, false) if !reusable[i] => result.cached += 1,
            _ => {} // taken from the published runs, counted above
        }
    }
    sync()?;
    for (j, dir) in jobs.iter().zip(&dirs) {
        if j.kind == JobKind::Pretrain {
            continue;
        }
        let mut rows = tessera_eval::read_rows_jsonl(&dir.join("out/rows.jsonl"))?;
        if let JobKind::Eval(_) = j.kind {
            mark_draws(&mut rows, j.seed);
            if let Some(p) = &j.protocol {
                for r in &mut rows {
                    r.protocol = p.clone();
                }
            }
        }
        result.rows.extend(rows);
    }
    Ok(result)
}

/// Rows of one evaluation that repeat a (task, protocol, features) are repeated draws of
/// it (few-shot samples, numbered as their seed): they get the job's seed and their draw
/// number as the `draw` metric, so draws of different seeds stay apart.
fn mark_draws(rows: &mut [ResultRow], seed: u64) {
    let key = |r: &ResultRow| (r.task.clone(), r.protocol.clone(), r.features.clone());
    let mut count = std::collections::BTreeMap::new();
    for r in rows.iter() {
        *count.entry(key(r)).or_insert(0usize) += 1;
    }
    for r in rows.iter_mut() {
        if count[&key(r)] > 1 {
            r.extra.insert("draw".into(), r.seed as f64);
            r.seed = seed;
        }
    }
}

/// A job's arguments (placeholders `{out}` and `{threads}` of peers filled) and the
/// command as a user would type it.
fn command_line(
    j: &Job,
    dir: &Path,
    dirs: &[PathBuf],
    threads: usize,
    domain: &str,
) -> (Vec<String>, String) {
    if j.kind == JobKind::Peer {
        let out = dir.join("out").display().to_string();
        let args: Vec<String> = j
            .args
            .iter()
            .map(|a| {
                a.replace("{out}", &out)
                    .replace("{threads}", &threads.to_string())
            })
            .collect();
        let shown = shell_words(&args);
        return (args, shown);
    }
    let mut args = vec![j.kind.command().to_string()];
    args.extend(j.args.iter().cloned());
    match j.kind {
        JobKind::Pretrain => args.extend(["--out".into(), dir.join("run").display().to_string()]),
        _ => {
            if let Some(n) = j.needs {
                args.extend([
                    "--checkpoint".into(),
                    dirs[n].join("run").display().to_string(),
                ]);
            }
            args.extend(["--out".into(), dir.join("out").display().to_string()]);
        }
    }
    args.extend(["--threads".into(), threads.to_string()]);
    let shown = format!("tessera-{domain} {}", shell_words(&args));
    (args, shown)
}

/// Runs `run(i)` for every job not in `skip` on `workers` threads, a job only once the
/// pretraining it reads is done; pretraining jobs are taken first (they unblock the
/// others). Returns each job's index and whether it ran, in the order they finished; stops
/// handing out jobs after a failure and returns the first error.
fn schedule(
    jobs: &[Job],
    skip: &[bool],
    workers: usize,
    run: impl Fn(usize) -> Result<bool> + Sync,
) -> Result<Vec<(usize, bool)>> {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        Waiting,
        Running,
        Done,
    }
    let initial = |i| match skip.get(i) == Some(&true) {
        true => State::Done,
        false => State::Waiting,
    };
    let state = Mutex::new((
        (0..jobs.len()).map(initial).collect::<Vec<_>>(),
        None::<BenchError>,
    ));
    let wake = Condvar::new();
    let outcomes = Mutex::new(Vec::new());
    let finished = AtomicUsize::new(0);
    let pick = |st: &[State]| {
        let ready = |i: &usize| {
            st[*i] == State::Waiting && jobs[*i].needs.is_none_or(|n| st[n] == State::Done)
        };
        (0..jobs.len())
            .filter(ready)
            .find(|&i| jobs[i].kind == JobKind::Pretrain)
            .or_else(|| (0..jobs.len()).find(ready))
    };
    std::thread::scope(|s| {
        for _ in 0..workers.max(1).min(jobs.len().max(1)) {
            s.spawn(|| loop {
                let i = {
                    let mut g = state.lock().unwrap_or_else(|p| p.into_inner());
                    loop {
                        if g.1.is_some() || g.0.iter().all(|&x| x != State::Waiting) {
                            return;
                        }
                        if let Some(i) = pick(&g.0) {
                            g.0[i] = State::Running;
                            break i;
                        }
                        g = wake.wait(g).unwrap_or_else(|p| p.into_inner());
                    }
                };
                let t0 = Instant::now();
                let r = run(i);
                let done = finished.fetch_add(1, Ordering::SeqCst) + 1;
                let j = &jobs[i];
                let what = format!(
                    "[{done}/{}] {} {} seed {}",
                    jobs.len(),
                    j.kind.command(),
                    j.run,
                    j.seed
                );
                let mut g = state.lock().unwrap_or_else(|p| p.into_inner());
                match r {
                    Ok(ran) => {
                        if ran {
                            eprintln!("{what}: {:.0} s", t0.elapsed().as_secs_f64());
                        } else {
                            eprintln!("{what}: cached");
                        }
                        g.0[i] = State::Done;
                        outcomes
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push((i, ran));
                    }
                    Err(e) => {
                        eprintln!("{what}: failed: {e}");
                        g.1.get_or_insert(e);
                    }
                }
                drop(g);
                wake.notify_all();
            });
        }
    });
    let (_, err) = state.into_inner().unwrap_or_else(|p| p.into_inner());
    match err {
        Some(e) => Err(e),
        None => Ok(outcomes.into_inner().unwrap_or_else(|p| p.into_inner())),
    }
}

/// What running one job needs besides the job.
struct JobContext<'a> {
    suite: &'a Suite,
    domain: &'a str,
    runner: &'a dyn Runner,
    opts: &'a RunOptions,
    python: &'a OnceLock<std::result::Result<String, String>>,
}

impl JobContext<'_> {
    /// Runs one job unless its folder is marked done; `Ok(true)` when it ran.
    fn run(&self, job: &Job, (args, shown): &(Vec<String>, String), dir: &Path) -> Result<bool> {
        if dir.join("done").exists() {
            return Ok(false);
        }
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let mut args = args.to_vec();
        match job.kind {
            // An interrupted pretraining run continues from its last checkpoint.
            JobKind::Pretrain if dir.join("run/checkpoints/latest").exists() => {
                args.push("--resume".into())
            }
            JobKind::Pretrain => remove_if_exists(&dir.join("run"))?,
            _ => remove_if_exists(&dir.join("out"))?,
        }
        std::fs::write(dir.join("command.txt"), format!("{shown}\n")).map_err(io(dir))?;
        let log = dir.join("log.txt");
        if job.kind == JobKind::Peer {
            let out = dir.join("out");
            std::fs::create_dir_all(&out).map_err(io(&out))?;
            let peer = self
                .suite
                .peer(&job.run)
                .ok_or_else(|| BenchError::Config(format!("no peer `{}` in the suite", job.run)))?;
            if args.iter().any(|a| a.contains("{python}")) {
                let py = self.python()?;
                if !peer.requires.is_empty() {
                    let mut pip = vec![py.clone(), "-m".into(), "pip".into(), "install".into()];
                    pip.push("-q".into());
                    pip.extend(peer.requires.iter().cloned());
                    self.runner
                        .run_program(&pip, &dir.join("pip.txt"), &dir.join("pip.log"))?;
                }
                for a in &mut args {
                    *a = a.replace("{python}", &py);
                }
            }
            let stdout = dir.join("stdout.txt");
            self.runner.run_program(&args, &stdout, &log)?;
            let rows = peer_rows(&stdout, peer, job.seed)?;
            if rows.is_empty() {
                return Err(BenchError::Config(format!(
                    "peer `{}` printed no JSON result line ({})",
                    job.run,
                    stdout.display()
                )));
            }
            let jl = out.join("rows.jsonl");
            let mut text = String::new();
            for r in &rows {
                text += &serde_json::to_string(r).map_err(|e| BenchError::Config(e.to_string()))?;
                text.push('\n');
            }
            std::fs::write(&jl, text).map_err(io(&jl))?;
        } else {
            self.runner.run(self.domain, &args, &log)?;
        }
        std::fs::write(dir.join("done"), "").map_err(io(dir))?;
        Ok(true)
    }

    /// The peers' Python: `--python`, else what `benchmarks/setup_torch.sh` prints.
    fn python(&self) -> Result<String> {
        if let Some(p) = &self.opts.python {
            return Ok(p.clone());
        }
        self.python
            .get_or_init(|| {
                let out = std::process::Command::new("bash")
                    .arg("benchmarks/setup_torch.sh")
                    .stderr(std::process::Stdio::inherit())
                    .output()
                    .map_err(|e| format!("cannot run benchmarks/setup_torch.sh: {e}"))?;
                let py = String::from_utf8_lossy(&out.stdout).trim().to_string();
                if out.status.success() && !py.is_empty() {
                    Ok(py)
                } else {
                    Err(
                        "benchmarks/setup_torch.sh found no Python with torch (give --python)"
                            .into(),
                    )
                }
            })
            .clone()
            .map_err(BenchError::Config)
    }
}

/// The rows of a peer's output: every line that is a JSON object.
pub fn peer_rows(stdout: &Path, peer: &PeerSpec, seed: u64) -> Result<Vec<ResultRow>> {
    let text = std::fs::read_to_string(stdout).map_err(io(stdout))?;
    let mut rows = Vec::new();
    for line in text.lines() {
        let Ok(serde_json::Value::Object(m)) = serde_json::from_str(line.trim()) else {
            continue;
        };
        let s = |k: &str, default: &str| {
            m.get(k)
                .and_then(|v| v.as_str())
                .unwrap_or(default)
                .to_string()
        };
        let num = |k: &str| m.get(k).and_then(|v| v.as_f64()).unwrap_or(f64::NAN);
        let fixed = [
            "run",
            "task",
            "protocol",
            "features",
            "seed",
            "n_test",
            "test_cases",
            "accuracy",
            "macro_f1",
            "balanced_accuracy",
        ];
        let extra = m
            .iter()
            .filter(|(k, _)| !fixed.contains(&k.as_str()))
            .filter_map(|(k, v)| v.as_f64().map(|x| (k.clone(), x)))
            .collect();
        rows.push(ResultRow {
            run: s("run", &peer.name),
            task: s("task", &peer.task),
            protocol: s("protocol", &peer.protocol),
            features: s("features", ""),
            seed: m.get("seed").and_then(|v| v.as_u64()).unwrap_or(seed),
            accuracy: num("accuracy"),
            macro_f1: num("macro_f1"),
            balanced_accuracy: num("balanced_accuracy"),
            n_test: ["n_test", "test_cases"]
                .iter()
                .find_map(|k| m.get(*k).and_then(|v| v.as_u64()))
                .unwrap_or(0) as usize,
            extra,
        });
    }
    Ok(rows)
}

fn remove_if_exists(p: &Path) -> Result<()> {
    if p.exists() {
        std::fs::remove_dir_all(p).map_err(io(p))?;
    }
    Ok(())
}

/// Each job's key: the key scheme, the CLI, its subcommand and flags, the content of every
/// flag that names a file, the dataset's fingerprint and the key of the run it reads.
fn job_keys(jobs: &[Job], domain: &str, fingerprint: &str) -> Result<Vec<String>> {
    let mut keys: Vec<String> = Vec::with_capacity(jobs.len());
    for j in jobs {
        let mut s = format!(
            "{KEY_VERSION}\n{domain}\n{}\ndata={fingerprint}\n{}",
            j.kind.command(),
            args_key(&j.args)?
        );
        if let Some(n) = j.needs {
            s += &format!("needs {}\n", keys[n]);
        }
        keys.push(sha256_hex(s.as_bytes()));
    }
    Ok(keys)
}

/// Arguments joined for a shell (quoted where needed).
pub fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=,:+@%".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(kind: JobKind, needs: Option<usize>) -> Job {
        Job {
            kind,
            run: "r".into(),
            seed: 0,
            args: Vec::new(),
            needs,
            protocol: None,
        }
    }

    #[test]
    fn jobs_start_only_after_the_pretraining_they_read_and_a_failure_stops_the_rest() {
        let eval = || JobKind::Eval("probe".into());
        // An evaluation listed before the pretraining it reads still waits for it.
        let jobs = vec![
            job(eval(), Some(2)),
            job(eval(), None),
            job(JobKind::Pretrain, None),
            job(eval(), Some(2)),
        ];
        let done = Mutex::new(Vec::new());
        let r = schedule(&jobs, &[], 2, |i| {
            let mut d = done.lock().unwrap();
            if let Some(n) = jobs[i].needs {
                assert!(d.contains(&n), "job {i} ran before job {n}");
            }
            d.push(i);
            Ok(i != 1)
        })
        .unwrap();
        assert_eq!(r.len(), 4);
        assert_eq!(r.iter().filter(|x| x.1).count(), 3);
        assert!(r.contains(&(1, false)));
        assert_eq!(done.lock().unwrap()[0], 2, "pretraining is taken first");
        // A failed pretraining: what reads it never runs, and the error comes back.
        let ran = AtomicUsize::new(0);
        let e = schedule(&jobs, &[], 1, |i| {
            ran.fetch_add(1, Ordering::SeqCst);
            if i == 2 {
                Err(BenchError::Config("boom".into()))
            } else {
                Ok(true)
            }
        })
        .unwrap_err();
        assert!(e.to_string().contains("boom"));
        assert_eq!(ran.load(Ordering::SeqCst), 1);
        // A skipped pretraining counts as done: its readers run, it does not.
        let r = schedule(&jobs, &[false, false, true, false], 1, |i| {
            assert_ne!(i, 2, "the skipped pretraining ran");
            Ok(true)
        })
        .unwrap();
        assert_eq!(r.len(), 3);
        assert!(r.iter().all(|x| x.0 != 2));
    }

    #[test]
    fn repeated_draws_of_an_evaluation_keep_the_job_seed() {
        let row = |protocol: &str, seed| ResultRow {
            protocol: protocol.into(),
            seed,
            ..Default::default()
        };
        let mut rows = vec![
            row("linear-5shot", 0),
            row("linear-5shot", 1),
            row("linear", 0),
        ];
        mark_draws(&mut rows, 7);
        assert_eq!((rows[0].seed, rows[0].extra["draw"]), (7, 0.0));
        assert_eq!((rows[1].seed, rows[1].extra["draw"]), (7, 1.0));
        assert_eq!(rows[2].seed, 0, "a single row is left as it is");
        assert!(rows[2].extra.is_empty());
    }

    #[test]
    fn peer_output_lines_that_are_json_objects_become_rows() {
        let dir = std::env::temp_dir().join(format!("tessera-bench-peer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("stdout.txt");
        std::fs::write(
            &out,
            "training...\n{\"impl\": \"torch\", \"dice_mean\": 0.84, \"steps\": 800}\n[1, 2]\n\
             {\"run\": \"eegnet\", \"seed\": 3, \"balanced_accuracy\": 0.6, \"task\": \"mat\", \"n_test\": 420}\n",
        )
        .unwrap();
        let peer = PeerSpec {
            name: "unet".into(),
            command: Vec::new(),
            task: "seg".into(),
            protocol: "supervised".into(),
            steps: None,
            once: false,
            requires: Vec::new(),
        };
        let rows = peer_rows(&out, &peer, 1).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0].run.as_str(), rows[0].task.as_str(), rows[0].seed),
            ("unet", "seg", 1)
        );
        assert_eq!(rows[0].extra["dice_mean"], 0.84);
        assert_eq!(rows[0].extra["steps"], 800.0);
        assert!(rows[0].accuracy.is_nan() && !rows[0].extra.contains_key("impl"));
        assert_eq!(
            (rows[1].run.as_str(), rows[1].seed, rows[1].n_test),
            ("eegnet", 3, 420)
        );
        assert_eq!(rows[1].balanced_accuracy, 0.6);
        assert_eq!(rows[1].protocol, "supervised");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
