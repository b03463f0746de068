//! `suanwang place bench`: the solver on generated sizes and example files.
//!
//! Each measurement runs `suanwang place solve --stats` in a fresh process,
//! so its peak memory is that one solve's (read, solve, write) and not the
//! benchmark's; the time is the solver's alone, best of `--repeat` runs.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Deserialize;
use suanwang_place::format;
use suanwang_place::gen::{generate, GenParams};
use suanwang_place::index::Index;

use crate::exit;
use crate::place::read_problem;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Generated sizes to run: S (60 pools, 300 classes), M (500, 5,000), L (5,000, 50,000), XL (10,000, 200,000).
    #[arg(long, value_delimiter = ',', default_value = "S,M,L,XL")]
    sizes: Vec<String>,
    /// Problem files to run as well (e.g. the examples of the format).
    #[arg(long = "problem")]
    problems: Vec<PathBuf>,
    /// Solves of each instance; the fastest counts.
    #[arg(long, default_value_t = 3)]
    repeat: u32,
    /// Seed of the generated sizes.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Where generated problems and solutions are written.
    #[arg(long, default_value = "bench-out")]
    work_dir: PathBuf,
}

#[derive(Debug, Deserialize)]
struct Stats {
    welfare: f64,
    bound: f64,
    ratio: f64,
    placed_tasks: u64,
    total_tasks: u64,
    pools: usize,
    classes: usize,
    seconds: f64,
    peak_memory_bytes: Option<u64>,
}

fn size(name: &str) -> Option<(usize, usize)> {
    match name {
        "S" => Some((60, 300)),
        "M" => Some((500, 5_000)),
        "L" => Some((5_000, 50_000)),
        "XL" => Some((10_000, 200_000)),
        _ => None,
    }
}

pub fn run(args: BenchArgs) -> Result<u8> {
    std::fs::create_dir_all(&args.work_dir)
        .with_context(|| format!("cannot create {}", args.work_dir.display()))?;
    let mut instances: Vec<(String, PathBuf)> = Vec::new();
    for name in &args.sizes {
        let Some((pools, classes)) = size(name) else {
            bail!("--sizes: unknown size '{name}' (S, M, L or XL)");
        };
        let path = args
            .work_dir
            .join(format!("gen-{name}-seed{}.json", args.seed));
        let problem = generate(&GenParams {
            pools,
            classes,
            seed: args.seed,
        });
        std::fs::write(&path, format::write_problem(&problem))
            .with_context(|| format!("cannot write {}", path.display()))?;
        instances.push((format!("{name} (seed {})", args.seed), path));
    }
    for path in &args.problems {
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        instances.push((name, path.clone()));
    }

    let mut table = String::from(
        "| instance | pools | classes | tasks | feasible pairs | market welfare | bound | ratio | greedy welfare | greedy / bound | solve s (best of n) | peak MiB |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for (name, path) in &instances {
        let pairs = feasible_pairs(&read_problem(path)?);
        let mut best: Option<Stats> = None;
        for _ in 0..args.repeat.max(1) {
            let stats = solve_in_child(path, &args.work_dir, "market")?;
            let faster = best
                .as_ref()
                .is_none_or(|best| stats.seconds < best.seconds);
            if faster {
                best = Some(stats);
            }
        }
        let market = best.context("at least one run")?;
        let greedy = solve_in_child(path, &args.work_dir, "greedy")?;
        let _ = writeln!(
            table,
            "| {name} | {} | {} | {} | {pairs} | {:.2} | {:.2} | {:.5} | {:.2} | {:.4} | {:.3} | {:.0} |",
            market.pools,
            market.classes,
            market.total_tasks,
            market.welfare,
            market.bound,
            market.ratio,
            greedy.welfare,
            if market.bound > 0.0 { greedy.welfare / market.bound } else { 1.0 },
            market.seconds,
            market.peak_memory_bytes.unwrap_or(0) as f64 / (1024.0 * 1024.0),
        );
        debug_assert!(market.placed_tasks <= market.total_tasks);
        crate::out::warn(format!("done: {name}"));
    }
    let mut stdout = std::io::stdout().lock();
    std::io::Write::write_all(&mut stdout, table.as_bytes())?;
    Ok(exit::OK)
}

/// Number of (class, pool) pairs that pass every filter.
fn feasible_pairs(problem: &suanwang_place::Problem) -> u64 {
    let index = Index::new(problem);
    (0..problem.classes.len())
        .map(|class| index.feasible_pools(problem, class).count() as u64)
        .sum()
}

fn solve_in_child(problem: &Path, work_dir: &Path, policy: &str) -> Result<Stats> {
    let exe = std::env::current_exe().context("cannot find the suanwang binary")?;
    let solution = work_dir.join(format!(
        "{}.{policy}.solution.json",
        problem
            .file_stem()
            .map_or_else(|| "problem".into(), |s| s.to_string_lossy())
    ));
    let output = Command::new(exe)
        .args(["place", "solve"])
        .arg(problem)
        .arg("-o")
        .arg(&solution)
        .args(["--policy", policy, "--stats"])
        .output()
        .context("cannot run suanwang place solve")?;
    if !output.status.success() {
        bail!(
            "solve of {} failed: {}",
            problem.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let line = String::from_utf8(output.stdout).context("stats are not UTF-8")?;
    serde_json::from_str(line.trim()).context("cannot parse the stats line")
}
