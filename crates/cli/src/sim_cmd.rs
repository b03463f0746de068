//! `suanwang sim`: the digital twin (`crates/sim`). This module is its
//! edge: it reads the scenario, shows a progress bar on standard error,
//! writes `report.json` and `report.html` atomically, and prints a summary;
//! `sim bench` measures the twin itself (wall time and peak memory).

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context as _, Result};
use suanwang_sim::bench::{self, BenchParams};
use suanwang_sim::{simulate, Options, Policy, Setup};

use crate::out;

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SimArgs {
    #[command(subcommand)]
    command: Option<SimCommand>,
    /// The scenario file (TOML; the schema is in examples/sim/README.md).
    scenario: Option<PathBuf>,
    /// Policies to compare, comma-separated: market, greedy, nearest, cheapest (default: the scenario's, else all four).
    #[arg(long)]
    policy: Option<String>,
    /// The seed of every random rule (default: the scenario's).
    #[arg(long)]
    seed: Option<u64>,
    /// Write report.json and report.html into this directory (created if missing).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Check every round of the non-market policies with the engine's independent checker (slower).
    #[arg(long)]
    verify: bool,
}

#[derive(Debug, clap::Subcommand)]
enum SimCommand {
    /// A synthetic benchmark: national topology, market policy, mixed batch, gang and service work; prints one JSON line.
    Bench(BenchArgs),
}

#[derive(Debug, clap::Args)]
struct BenchArgs {
    /// Jobs in all, arriving uniformly over the days.
    #[arg(long, default_value_t = 100_000)]
    jobs: u64,
    /// Pools from the national generator.
    #[arg(long, default_value_t = 1_000)]
    pools: usize,
    /// Simulated days of arrivals.
    #[arg(long, default_value_t = 30.0)]
    days: f64,
    /// Seconds between rounds.
    #[arg(long, default_value_t = 300.0)]
    round_s: f64,
    /// The seed of the generator.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

pub fn run(args: SimArgs) -> Result<u8> {
    if let Some(SimCommand::Bench(b)) = args.command {
        return run_bench(&b);
    }
    let Some(path) = args.scenario else {
        bail!("name a scenario file: suanwang sim SCENARIO.toml (or suanwang sim bench)");
    };
    let setup = Setup::read(&path, args.seed)?;
    let policies = match &args.policy {
        Some(list) => Policy::parse_list(list).map_err(anyhow::Error::msg)?,
        None => setup.policies.clone(),
    };
    let bar = progress_bar(policies.len());
    let (report, _) = simulate(
        &setup,
        &policies,
        Options {
            verify: args.verify,
        },
        &mut |i, done, total| {
            if let Some(bar) = &bar {
                bar.set_length(total * policies.len() as u64);
                bar.set_position(i as u64 * total + done);
                bar.set_message(policies[i].as_str());
            }
        },
    );
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        write_atomic(
            &dir.join("report.json"),
            &suanwang_sim::report::to_json(&report),
        )?;
        write_atomic(
            &dir.join("report.html"),
            &suanwang_sim::report::html::render(&report),
        )?;
    }
    out::say(format!(
        "{}: {} jobs, {} pools, seed {}",
        report.scenario,
        setup.arrivals.len(),
        report.pools,
        report.seed
    ));
    out::say(format!(
        "{:<9} {:>9} {:>7} {:>7} {:>14} {:>14} {:>12} {:>10} {:>8}",
        "policy",
        "succeeded",
        "failed",
        "cut",
        "welfare yuan",
        "tenant yuan",
        "batch p95 s",
        "GB moved",
        "lost"
    ));
    for p in &report.policies {
        out::say(format!(
            "{:<9} {:>9} {:>7} {:>7} {:>14.2} {:>14.2} {:>12} {:>10.1} {:>8}",
            p.policy,
            p.jobs.succeeded,
            p.jobs.failed,
            p.jobs.cut_at_end,
            p.welfare_yuan,
            p.tenant_cost_yuan,
            p.wait_s[0]
                .p95
                .map_or_else(|| "-".to_owned(), |w| format!("{w:.0}")),
            p.data.gb_moved,
            p.failures.tasks_lost
        ));
    }
    if let Some(dir) = &args.out {
        out::say(format!(
            "wrote {} and {}",
            dir.join("report.json").display(),
            dir.join("report.html").display()
        ));
    }
    Ok(crate::exit::OK)
}

fn progress_bar(policies: usize) -> Option<indicatif::ProgressBar> {
    std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(&format!(
                "{{spinner}} {{msg:8}} [{{bar:40}}] {{pos}}/{{len}} job arrivals ({policies} policies)"
            ))
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar
    })
}

fn run_bench(b: &BenchArgs) -> Result<u8> {
    let params = BenchParams {
        jobs: b.jobs,
        pools: b.pools,
        days: b.days,
        round_s: b.round_s,
        seed: b.seed,
    };
    let started = Instant::now();
    let setup = bench::setup(&params)?;
    let setup_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let outcome =
        suanwang_sim::engine::run(&setup, Policy::Market, Options::default(), &mut |_, _| {});
    let seconds = started.elapsed().as_secs_f64();
    let m = &outcome.measures;
    let line = serde_json::json!({
        "jobs": setup.arrivals.len(),
        "pools": setup.pools.len(),
        "days": b.days,
        "round_s": b.round_s,
        "rounds": m.rounds,
        "rounds_solved": m.rounds_solved,
        "events": m.events,
        "tasks_placed": m.tasks_placed,
        "setup_seconds": (setup_s * 1e3).round() / 1e3,
        "seconds": (seconds * 1e3).round() / 1e3,
        "events_per_second": (m.events as f64 / seconds.max(1e-9)).round(),
        "simulated_days_per_second": ((outcome.end_ms - suanwang_sim::workload::START_MS) as f64 / 86_400_000.0 / seconds.max(1e-9) * 1e3).round() / 1e3,
        "peak_rss_bytes": crate::memory::peak_rss_bytes(),
        "jobs_unfinished_at_end": outcome.cut_at_end,
        "jobs_given_up": outcome.gave_up,
    });
    out::say(line.to_string());
    Ok(crate::exit::OK)
}

/// Writes to a temporary file and renames it: a reader never sees half a file.
fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    std::fs::write(&temporary, text)
        .with_context(|| format!("cannot write {}", temporary.display()))?;
    std::fs::rename(&temporary, path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
