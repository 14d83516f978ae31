//! The benchmark harness's `smoke` suite (benchmarks/suites/smoke.toml), run in-process on
//! the generated audio demo set: generation, plan, cache, resume and report.

use clap::Parser;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use tessera_app::Shared;
use tessera_bench::registry::Registry;
use tessera_bench::report::write_report;
use tessera_bench::run::{run_suite, RunOptions, Runner};
use tessera_bench::suite::{load_suites, Budget};
use tessera_bench::BenchError;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: Shared,
}

/// Runs `tessera-audio` commands in this process, counting them.
#[derive(Default)]
struct InProcess {
    calls: AtomicUsize,
}

impl Runner for InProcess {
    fn run(&self, domain: &str, args: &[String], log: &Path) -> tessera_bench::Result<()> {
        assert_eq!(domain, "audio");
        self.calls.fetch_add(1, Ordering::SeqCst);
        std::fs::write(log, args.join(" ")).unwrap();
        let argv = std::iter::once("tessera-audio".to_string()).chain(args.iter().cloned());
        let cli = Cli::try_parse_from(argv).map_err(|e| BenchError::Config(e.to_string()))?;
        tessera_audio_cli::app()
            .run(cli.cmd)
            .map_err(|e| BenchError::Config(format!("{e:#}")))
    }
}

#[test]
fn the_smoke_suite_runs_reuses_its_cache_resumes_and_reports() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let registry = Registry::load(&repo.join("benchmarks/datasets")).unwrap();
    let suites = load_suites(&repo.join("benchmarks/suites"), &registry).unwrap();
    let suite = &suites["smoke"];
    let d = registry.get(&suite.dataset).unwrap();
    let out = tessera_conformance::tmp("bench");
    let opts = RunOptions {
        out: out.clone(),
        data_root: out.join("no-downloads"),
        budget: Budget::Small,
        seeds: None,
        jobs: 1,
        threads: 1,
        dry_run: false,
        python: None,
        reuse: None,
        record: Some(out.join("published")),
    };
    let runner = InProcess::default();
    let first = run_suite(suite, d, &runner, &opts).unwrap();
    // 2 seeds x (1 pretraining + probe of 2 encoders and 1 baseline + finetune of 2
    // encoders), plus generating the data once.
    assert_eq!((first.computed, first.cached), (12, 0));
    assert_eq!(runner.calls.load(Ordering::SeqCst), 13);
    let has = |run: &str, protocol: &str, seed: u64| {
        first
            .rows
            .iter()
            .any(|r| r.run == run && r.protocol == protocol && r.seed == seed && r.task == "class")
    };
    for seed in [0, 1] {
        for (run, protocol) in [
            ("mae", "linear"),
            ("mae", "knn"),
            ("random-init", "linear"),
            ("logmel", "linear"),
            ("mae", "finetune"),
            ("random-init", "finetune"),
        ] {
            assert!(has(run, protocol, seed), "{run} {protocol} seed {seed}");
        }
    }
    let report = write_report(suite, d, &first, "small", &out.join("report")).unwrap();
    for f in ["results.csv", "results.parquet", "summary.csv", "report.md"] {
        assert!(out.join("report").join(f).is_file(), "{f}");
    }
    assert!(
        report.markdown.contains("paired by seed"),
        "{}",
        report.markdown
    );
    assert!(report.markdown.contains("tessera-audio pretrain"));

    // A rerun computes nothing and reads the same rows.
    let again = run_suite(suite, d, &runner, &opts).unwrap();
    assert_eq!((again.computed, again.cached), (0, 12));
    assert_eq!(again.rows, first.rows);
    // An interrupted evaluation (no `done` marker) is the only job run again.
    let cache = out.join("cache");
    let eval = std::fs::read_dir(&cache)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            std::fs::read_to_string(p.join("command.txt")).is_ok_and(|c| c.contains(" finetune "))
        })
        .unwrap();
    std::fs::remove_file(eval.join("done")).unwrap();
    let resumed = run_suite(suite, d, &runner, &opts).unwrap();
    assert_eq!((resumed.computed, resumed.cached), (1, 11));
    // Another budget is another set of runs for the pretraining and what reads it.
    let dry = RunOptions {
        budget: Budget::Full,
        dry_run: true,
        ..opts.clone()
    };
    let calls = runner.calls.load(Ordering::SeqCst);
    let plan = run_suite(suite, d, &runner, &dry).unwrap();
    assert_eq!(plan.commands.len(), 12);
    assert_eq!(
        runner.calls.load(Ordering::SeqCst),
        calls,
        "a dry run runs nothing"
    );

    // Another clone takes the recorded runs instead of computing them, and skips the
    // pretrainings that only they read.
    let clone = RunOptions {
        out: out.join("clone"),
        reuse: opts.record.clone(),
        record: None,
        ..opts.clone()
    };
    let calls = runner.calls.load(Ordering::SeqCst);
    let taken = run_suite(suite, d, &runner, &clone).unwrap();
    assert_eq!(
        (taken.computed, taken.cached, taken.reused, taken.skipped),
        (0, 0, 10, 2)
    );
    assert_eq!(taken.rows, first.rows);
    assert_eq!(
        runner.calls.load(Ordering::SeqCst),
        calls + 1,
        "only the demo data is generated again"
    );
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn every_suite_plans_under_both_budgets_and_names_files_that_exist() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let registry = Registry::load(&repo.join("benchmarks/datasets")).unwrap();
    let suites = load_suites(&repo.join("benchmarks/suites"), &registry).unwrap();
    let domains: Vec<&str> = suites
        .values()
        .map(|s| registry.get(&s.dataset).unwrap().domain.as_str())
        .collect();
    for d in ["audio", "medical", "eeg", "eo", "doc", "splat"] {
        assert!(domains.contains(&d), "no suite for the {d} domain");
    }
    let files = tessera_bench::suite::PlanData {
        manifest: "m.csv".into(),
        pretrain: "p.txt".into(),
        base: "base".into(),
        dir: "data".into(),
    };
    for s in suites.values() {
        let d = registry.get(&s.dataset).unwrap();
        for budget in [Budget::Small, Budget::Full] {
            let jobs = s.plan(d, &files, budget, None);
            assert!(!jobs.is_empty(), "{}", s.name);
            for j in &jobs {
                // Every repository file a command names (configs, peer scripts) exists.
                for a in j.args.iter().filter(|a| a.starts_with("benchmarks/")) {
                    assert!(repo.join(a).is_file(), "suite {}: {a} is missing", s.name);
                }
            }
        }
    }
}

#[test]
fn benchmarks_md_agrees_with_the_published_reports() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let doc = std::fs::read_to_string(repo.join("BENCHMARKS.md")).unwrap();
    assert!(
        doc.contains("<!-- include benchmarks/results/"),
        "BENCHMARKS.md includes no generated table"
    );
    let (_, stale) = tessera_bench::report::include(&doc, repo).unwrap();
    assert!(
        stale.is_empty(),
        "BENCHMARKS.md differs from {stale:?}: run `tessera-bench include BENCHMARKS.md`"
    );
}
