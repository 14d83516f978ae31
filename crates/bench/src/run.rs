//! Running a suite's plan: cached by key, resumable, several jobs at a time.

use crate::registry::Dataset;
use crate::suite::{Budget, Job, JobKind, Suite};
use crate::{io, sha256_file, sha256_hex, BenchError, Result};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;
use tessera_eval::ResultRow;

/// Runs one command of a domain's CLI.
pub trait Runner: Sync {
    /// Runs `tessera-<domain> <args>`, its output going to `log`.
    fn run(&self, domain: &str, args: &[String], log: &Path) -> Result<()>;
}

/// Runs the domain CLIs as processes: `tessera-<domain>` from `bin_dir` (default: the
/// folder of this executable, where cargo puts every binary of the workspace) or `PATH`.
#[derive(Debug, Clone, Default)]
pub struct ProcessRunner {
    pub bin_dir: Option<PathBuf>,
}

impl Runner for ProcessRunner {
    fn run(&self, domain: &str, args: &[String], log: &Path) -> Result<()> {
        let name = format!("tessera-{domain}");
        let dir = self.bin_dir.clone().or_else(|| {
            std::env::current_exe()
                .ok()
                .and_then(|p| p.parent().map(Path::to_path_buf))
        });
        let bin = dir
            .map(|d| d.join(&name))
            .filter(|p| p.is_file())
            .unwrap_or_else(|| PathBuf::from(&name));
        let out = std::fs::File::create(log).map_err(io(log))?;
        let err = out.try_clone().map_err(io(log))?;
        let status = std::process::Command::new(&bin)
            .args(args)
            .stdout(out)
            .stderr(err)
            .status()
            .map_err(|e| {
                BenchError::Config(format!(
                    "cannot start {} ({e}); build it with `cargo build --release -p {name}-cli` or put it on PATH",
                    bin.display()
                ))
            })?;
        if status.success() {
            Ok(())
        } else {
            Err(BenchError::Run {
                what: format!("{name} {}", args.first().map_or("", |s| s.as_str())),
                code: status
                    .code()
                    .map_or_else(|| "by signal".into(), |c| c.to_string()),
                log: log.to_path_buf(),
            })
        }
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
}

/// What a suite run produced.
#[derive(Debug, Clone, Default)]
pub struct SuiteRun {
    pub rows: Vec<ResultRow>,
    pub computed: usize,
    pub cached: usize,
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
    d.prepare(&root, &prepared)?;
    let fingerprint = d.fingerprint(&root, &prepared)?;
    let manifest = d.manifest_path(&root, &prepared);
    let jobs = suite.plan(d, &manifest, opts.budget, opts.seeds.as_deref());
    let keys = job_keys(&jobs, &d.domain, &fingerprint)?;
    let cache = opts.out.join("cache");
    let dirs: Vec<PathBuf> = keys.iter().map(|k| cache.join(&k[..16])).collect();
    let threads = (opts.threads / opts.jobs.max(1)).max(1);
    let commands: Vec<(Vec<String>, String)> = jobs
        .iter()
        .zip(&dirs)
        .map(|(j, dir)| {
            let mut args = vec![j.kind.command().to_string()];
            args.extend(j.args.iter().cloned());
            match j.kind {
                JobKind::Pretrain => {
                    args.extend(["--out".into(), dir.join("run").display().to_string()])
                }
                JobKind::Eval(_) => {
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
            let shown = format!("tessera-{} {}", d.domain, shell_words(&args));
            (args, shown)
        })
        .collect();
    let mut result = SuiteRun {
        commands: commands.iter().map(|c| c.1.clone()).collect(),
        ..Default::default()
    };
    if opts.dry_run {
        for (j, (c, dir)) in jobs.iter().zip(commands.iter().zip(&dirs)) {
            let state = if dir.join("done").exists() {
                "cached"
            } else {
                "to run"
            };
            println!("[{state}] seed {} {}: {}", j.seed, j.run, c.1);
        }
        return Ok(result);
    }
    // Pretraining first, then the evaluations that read it.
    for phase in [true, false] {
        let todo: Vec<usize> = (0..jobs.len())
            .filter(|&i| (jobs[i].kind == JobKind::Pretrain) == phase)
            .collect();
        let (next, finished) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let failed = AtomicBool::new(false);
        let workers = opts.jobs.max(1).min(todo.len().max(1));
        // Each worker takes the next job until none is left or one has failed.
        let outcomes: Vec<Result<bool>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    s.spawn(|| {
                        let mut mine = Vec::new();
                        while let Some(&i) = todo.get(next.fetch_add(1, Ordering::SeqCst)) {
                            if failed.load(Ordering::SeqCst) {
                                break;
                            }
                            let t0 = Instant::now();
                            let (args, shown) = &commands[i];
                            let r = run_job(&jobs[i], args, shown, &dirs[i], d, runner);
                            let done = finished.fetch_add(1, Ordering::SeqCst) + 1;
                            let j = &jobs[i];
                            let what = format!(
                                "[{done}/{}] {} {} seed {}",
                                todo.len(),
                                j.kind.command(),
                                j.run,
                                j.seed
                            );
                            match &r {
                                Ok(true) => {
                                    eprintln!("{what}: {:.0} s", t0.elapsed().as_secs_f64())
                                }
                                Ok(false) => eprintln!("{what}: cached"),
                                Err(_) => failed.store(true, Ordering::SeqCst),
                            }
                            mine.push(r);
                        }
                        mine
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        for r in outcomes {
            match r? {
                true => result.computed += 1,
                false => result.cached += 1,
            }
        }
    }
    for (j, dir) in jobs.iter().zip(&dirs) {
        if let JobKind::Eval(_) = j.kind {
            result
                .rows
                .extend(tessera_eval::read_rows_jsonl(&dir.join("out/rows.jsonl"))?);
        }
    }
    Ok(result)
}

/// Runs one job unless its folder is marked done; `Ok(true)` when it ran.
fn run_job(
    job: &Job,
    args: &[String],
    shown: &str,
    dir: &Path,
    d: &Dataset,
    runner: &dyn Runner,
) -> Result<bool> {
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
        JobKind::Eval(_) => remove_if_exists(&dir.join("out"))?,
    }
    std::fs::write(dir.join("command.txt"), format!("{shown}\n")).map_err(io(dir))?;
    runner.run(&d.domain, &args, &dir.join("log.txt"))?;
    std::fs::write(dir.join("done"), "").map_err(io(dir))?;
    Ok(true)
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
            "{KEY_VERSION}\n{domain}\n{}\ndata={fingerprint}\n",
            j.kind.command()
        );
        for a in &j.args {
            let p = Path::new(a);
            if p.is_file() {
                s += &format!("file {}\n", sha256_file(p)?);
            } else {
                s += &format!("arg {a}\n");
            }
        }
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
