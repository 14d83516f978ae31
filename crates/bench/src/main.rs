//! `tessera-bench`: list, check and run the benchmark suites.

use anyhow::{bail, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use tessera_bench::registry::{tree_digest, Registry};
use tessera_bench::report::write_report;
use tessera_bench::run::{dataset_root, run_suite, ProcessRunner, RunOptions};
use tessera_bench::suite::{load_suites, Budget};

#[derive(Parser)]
#[command(
    name = "tessera-bench",
    version,
    about = "Benchmark suites over public datasets: one command runs a domain's suite (or all), reuses what is cached, writes the tables, charts and report"
)]
struct Cli {
    /// Dataset registry folder.
    #[arg(long, global = true, default_value = "benchmarks/datasets")]
    registry: PathBuf,
    /// Suite folder.
    #[arg(long, global = true, default_value = "benchmarks/suites")]
    suite_dir: PathBuf,
    /// Folder of the downloaded datasets (default: $TESSERA_DATA, else ../shared/data).
    #[arg(long, global = true)]
    data_root: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Datasets (present or not, licence) and suites.
    List,
    /// Verify the datasets' recorded checksums (all, or the named ones).
    Check { datasets: Vec<String> },
    /// Print the checksums of a dataset's folder, to record in its TOML.
    Checksum { dataset: String },
    /// Rewrite the `<!-- include FILE#SECTION -->` blocks of a Markdown file (BENCHMARKS.md)
    /// from the published reports, so prose and numbers cannot disagree.
    Include {
        /// The Markdown file.
        doc: PathBuf,
        /// Only check: fail, naming the blocks, if any differs from its report.
        #[arg(long)]
        check: bool,
    },
    /// Run suites (`all` for every suite), reusing cached runs; writes OUT/<suite>/report.md.
    Run {
        /// Suite names, or `all`.
        #[arg(required = true)]
        suites: Vec<String>,
        #[arg(long, value_enum, default_value = "small")]
        budget: Budget,
        /// Seeds instead of the suite's (comma-separated).
        #[arg(long, value_delimiter = ',')]
        seeds: Option<Vec<u64>>,
        /// Commands at a time (each gets threads / jobs threads).
        #[arg(long, default_value_t = 1)]
        jobs: usize,
        /// Threads in all (default: the cores).
        #[arg(long)]
        threads: Option<usize>,
        #[arg(long, default_value = "runs/bench")]
        out: PathBuf,
        /// Also copy each report.md to DIR/<suite>.md (BENCHMARKS.md links benchmarks/results),
        /// and record every run in DIR/runs/<suite>.jsonl, each as it finishes.
        #[arg(long, value_name = "DIR")]
        publish: Option<PathBuf>,
        /// Take the runs recorded in DIR/runs/<suite>.jsonl (by `--publish DIR`, perhaps on
        /// another machine) instead of computing them.
        #[arg(long, value_name = "DIR")]
        reuse: Option<PathBuf>,
        /// Print the commands (and which are cached) without running them.
        #[arg(long)]
        dry_run: bool,
        /// Folder of the tessera-<domain> binaries (default: beside this one, else PATH).
        #[arg(long)]
        bin_dir: Option<PathBuf>,
        /// Python with PyTorch for the peers (default: what benchmarks/setup_torch.sh
        /// finds or installs, when a peer first runs).
        #[arg(long)]
        python: Option<String>,
    },
}

fn main() -> ExitCode {
    match real_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main() -> Result<()> {
    let cli = Cli::parse();
    let registry = Registry::load(&cli.registry)?;
    let suites = load_suites(&cli.suite_dir, &registry)?;
    let data_root = cli
        .data_root
        .clone()
        .unwrap_or_else(tessera_tokens::resources::data_root);
    let data_root = data_root.canonicalize().unwrap_or(data_root);
    match cli.cmd {
        Cmd::List => {
            println!("datasets ({}):", data_root.display());
            for d in registry.datasets.values() {
                let state = if d.generated {
                    "generated"
                } else if d.present(&data_root) {
                    "present"
                } else {
                    "absent"
                };
                println!(
                    "  {:<22} {:<8} {:<9} {} [{}]",
                    d.name, d.domain, state, d.description, d.licence
                );
            }
            println!("suites:");
            for s in suites.values() {
                println!(
                    "  {:<22} dataset {}, {} encoder(s), {} baseline(s), {} evaluation(s), seeds {:?}",
                    s.name,
                    s.dataset,
                    s.encoders.len(),
                    s.baselines.len(),
                    s.evals.len(),
                    s.seeds
                );
            }
        }
        Cmd::Check { datasets } => {
            let names: Vec<String> = if datasets.is_empty() {
                registry.datasets.keys().cloned().collect()
            } else {
                datasets
            };
            let mut failed = 0;
            for n in names {
                let d = registry.get(&n)?;
                if d.generated {
                    println!("{n}: generated, nothing to check");
                    continue;
                }
                if !d.present(&data_root) {
                    println!("{n}: absent ({})", d.dir(&data_root).display());
                    failed += 1;
                    continue;
                }
                let bad = d.check(&data_root)?;
                if bad.is_empty() {
                    println!("{n}: ok");
                } else {
                    failed += 1;
                    for b in bad {
                        println!("{n}: {b}");
                    }
                }
            }
            if failed > 0 {
                bail!("{failed} dataset(s) missing or changed");
            }
        }
        Cmd::Checksum { dataset } => {
            let d = registry.get(&dataset)?;
            let dir = d.dir(&data_root);
            let t = tree_digest(&dir)?;
            println!("[tree]\nfiles = {}\nsha256 = \"{}\"", t.files, t.sha256);
        }
        Cmd::Include { doc, check } => {
            let text = std::fs::read_to_string(&doc)
                .map_err(|e| anyhow::anyhow!("{}: {e}", doc.display()))?;
            let base = doc.parent().unwrap_or(std::path::Path::new("."));
            let (new, changed) = tessera_bench::report::include(&text, base)?;
            if check {
                if !changed.is_empty() {
                    bail!(
                        "{}: out of date with {} (run `tessera-bench include {}`)",
                        doc.display(),
                        changed.join(", "),
                        doc.display()
                    );
                }
                println!("{}: every included block matches its report", doc.display());
            } else if changed.is_empty() {
                println!("{}: up to date", doc.display());
            } else {
                tessera_bench::write_atomic(&doc, new.as_bytes())?;
                println!("{}: rewrote {}", doc.display(), changed.join(", "));
            }
        }
        Cmd::Run {
            suites: names,
            budget,
            seeds,
            jobs,
            threads,
            out,
            publish,
            reuse,
            dry_run,
            bin_dir,
            python,
        } => {
            let names: Vec<String> = if names.iter().any(|n| n == "all") {
                suites.keys().cloned().collect()
            } else {
                names
            };
            let opts = RunOptions {
                out: out.clone(),
                data_root,
                budget,
                seeds,
                jobs: jobs.max(1),
                threads: threads
                    .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
                dry_run,
                python,
                reuse,
                record: publish.clone(),
            };
            let runner = ProcessRunner { bin_dir };
            let budget_name = format!("{budget:?}").to_lowercase();
            let mut failed = Vec::new();
            for n in &names {
                let Some(s) = suites.get(n) else {
                    bail!(
                        "no suite `{n}` (known: {})",
                        suites.keys().cloned().collect::<Vec<_>>().join(", ")
                    );
                };
                let d = registry.get(&s.dataset)?;
                if !d.generated && !d.present(&dataset_root(d, &opts)) && names.len() > 1 {
                    eprintln!("skipping suite `{n}`: dataset `{}` is absent", d.name);
                    continue;
                }
                eprintln!("suite `{n}` ({} budget)", budget_name);
                match run_suite(s, d, &runner, &opts) {
                    Ok(r) if dry_run => drop(r),
                    Ok(r) => {
                        let rep = write_report(s, d, &r, &budget_name, &out.join(n))?;
                        println!("{}", rep.markdown);
                        if let Some(p) = &publish {
                            std::fs::create_dir_all(p)?;
                            std::fs::write(p.join(format!("{n}.md")), &rep.markdown)?;
                        }
                        eprintln!(
                            "suite `{n}`: report in {}",
                            rep.dir.join("report.md").display()
                        );
                    }
                    Err(e) if names.len() > 1 => {
                        eprintln!("suite `{n}` failed: {e}");
                        failed.push(n.clone());
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            if !failed.is_empty() {
                bail!("suites failed: {}", failed.join(", "));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
