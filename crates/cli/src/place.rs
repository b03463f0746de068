//! `suanwang place ...`: the placement engine on files.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;
use suanwang_place::gen::{generate, GenParams};
use suanwang_place::{check, explain, format, greedy, solve, Problem, Solution};

use crate::{bench, exit, memory};

#[derive(Debug, Subcommand)]
pub enum PlaceCommand {
    /// Solve a round: PROBLEM.json in, SOLUTION.json out.
    Solve(SolveArgs),
    /// Check a solution independently: feasibility, welfare, bound of its prices. Exit 1 if infeasible.
    Check(CheckArgs),
    /// Generate a synthetic national round from the real hub geography.
    Gen(GenArgs),
    /// Explain why a class is (not) placed.
    Explain(ExplainArgs),
    /// Generate a national round, solve it, and show what went where and why.
    Demo(DemoArgs),
    /// Benchmark the solver on sizes S, M, L, XL and example files; prints a Markdown table.
    Bench(bench::BenchArgs),
    /// Export the server's current round as a problem file, to replay offline (operator).
    Export(ExportArgs),
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Where to write the problem; standard output when absent.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// The market-clearing solver (ε-scaled auction): welfare and prices.
    Market,
    /// One class at a time, in file order: the baseline.
    Greedy,
}

#[derive(Debug, Args)]
pub struct SolveArgs {
    /// The round to solve: a suanwang.placement/v1 JSON file.
    problem: PathBuf,
    /// Where to write the solution; standard output when absent.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Which solver places the tasks.
    #[arg(long, value_enum, default_value_t = Policy::Market)]
    policy: Policy,
    /// The previous round's solution: kept unless the new one is strictly better.
    #[arg(long)]
    previous: Option<PathBuf>,
    /// Print one JSON line of statistics to standard output.
    #[arg(long)]
    stats: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The round: a suanwang.placement/v1 JSON file.
    problem: PathBuf,
    /// Its solution: a suanwang.placement-solution/v1 JSON file, ours or another solver's.
    solution: PathBuf,
    /// Output format: text for people, json for scripts.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,
}

#[derive(Debug, Args)]
pub struct GenArgs {
    /// Pools (supply) in the round.
    #[arg(long, default_value_t = 60)]
    pools: usize,
    /// Job classes (demand) in the round.
    #[arg(long, default_value_t = 300)]
    classes: usize,
    /// Seed of the generator: the same seed gives the same round.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where to write the problem; standard output when absent.
    #[arg(short, long)]
    output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The round: a suanwang.placement/v1 JSON file.
    problem: PathBuf,
    /// Its solution: a suanwang.placement-solution/v1 JSON file.
    solution: PathBuf,
    /// The class id; every class not fully placed when absent.
    #[arg(long)]
    class: Option<String>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Pools (supply) in the generated round.
    #[arg(long, default_value_t = 60)]
    pools: usize,
    /// Job classes (demand) in the generated round.
    #[arg(long, default_value_t = 300)]
    classes: usize,
    /// Seed of the generator: the same seed gives the same round.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

/// The `--stats` line: one JSON object, stable field names.
#[derive(Debug, Serialize)]
pub struct SolveStats {
    pub policy: Policy,
    pub welfare: f64,
    pub bound: f64,
    pub ratio: f64,
    pub placed_tasks: u64,
    pub total_tasks: u64,
    pub pools: usize,
    pub classes: usize,
    /// Solver time alone, one thread.
    pub seconds: f64,
    /// Reading and validating the problem file.
    pub read_seconds: f64,
    /// Peak resident memory of the whole process (read, solve, write).
    pub peak_memory_bytes: Option<u64>,
    pub bids: u64,
}

pub fn run(command: PlaceCommand) -> Result<u8> {
    match command {
        PlaceCommand::Solve(args) => run_solve(args),
        PlaceCommand::Check(args) => run_check(args),
        PlaceCommand::Gen(args) => {
            let problem = generate(&GenParams {
                pools: args.pools,
                classes: args.classes,
                seed: args.seed,
            });
            write_output(args.output.as_deref(), &format::write_problem(&problem))?;
            Ok(exit::OK)
        }
        PlaceCommand::Explain(args) => run_explain(args),
        PlaceCommand::Demo(args) => run_demo(args),
        PlaceCommand::Bench(args) => bench::run(args),
        PlaceCommand::Export(_) => unreachable!("main runs export on its runtime"),
    }
}

pub fn read_problem(path: &Path) -> Result<Problem> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read problem {}", path.display()))?;
    format::read_problem(&text)
        .with_context(|| format!("{} is not a valid problem", path.display()))
}

pub fn read_solution(path: &Path, problem: &Problem) -> Result<Solution> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read solution {}", path.display()))?;
    format::read_solution(&text, problem)
        .with_context(|| format!("{} is not a valid solution", path.display()))
}

/// Write to a temporary file and rename it: a reader never sees half a file.
fn write_output(path: Option<&Path>, text: &str) -> Result<()> {
    match path {
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(text.as_bytes())?;
            stdout.flush()?;
        }
        Some(path) => {
            let mut temporary = path.as_os_str().to_owned();
            temporary.push(".tmp");
            let temporary = PathBuf::from(temporary);
            std::fs::write(&temporary, text)
                .with_context(|| format!("cannot write {}", temporary.display()))?;
            std::fs::rename(&temporary, path)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
    }
    Ok(())
}

fn print_line(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    if !text.ends_with('\n') {
        stdout.write_all(b"\n")?;
    }
    Ok(())
}

fn run_solve(args: SolveArgs) -> Result<u8> {
    let started = Instant::now();
    let problem = read_problem(&args.problem)?;
    let previous = match &args.previous {
        Some(path) => Some(read_solution(path, &problem)?),
        None => None,
    };
    let read_seconds = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let (solution, bids) = match args.policy {
        Policy::Market => {
            let outcome = solve::solve_with_stats(&problem, previous.as_ref());
            (outcome.solution, outcome.stats.bids)
        }
        Policy::Greedy => (greedy::solve(&problem), 0),
    };
    let seconds = started.elapsed().as_secs_f64();
    write_output(
        args.output.as_deref(),
        &format::write_solution(&solution, &problem),
    )?;

    if args.stats {
        let report = check::check(&problem, &solution);
        let stats = SolveStats {
            policy: args.policy,
            welfare: report.welfare,
            bound: report.bound,
            ratio: report.ratio(),
            placed_tasks: report.placed_tasks,
            total_tasks: report.total_tasks,
            pools: problem.pools.len(),
            classes: problem.classes.len(),
            seconds,
            read_seconds,
            peak_memory_bytes: memory::peak_rss_bytes(),
            bids,
        };
        if args.output.is_none() {
            // The solution went to standard output: keep it parseable.
            crate::out::warn(serde_json::to_string(&stats)?);
        } else {
            print_line(&serde_json::to_string(&stats)?)?;
        }
    }
    Ok(exit::OK)
}

#[derive(Debug, Serialize)]
struct CheckJson<'a> {
    feasible: bool,
    violation_count: usize,
    violations: &'a [String],
    welfare: f64,
    bound: f64,
    ratio: f64,
    placed_tasks: u64,
    total_tasks: u64,
}

fn run_check(args: CheckArgs) -> Result<u8> {
    let problem = read_problem(&args.problem)?;
    let solution = read_solution(&args.solution, &problem)?;
    let report = check::check(&problem, &solution);
    match args.output {
        Output::Json => print_line(&serde_json::to_string(&CheckJson {
            feasible: report.feasible,
            violation_count: report.violation_count,
            violations: &report.violations,
            welfare: report.welfare,
            bound: report.bound,
            ratio: report.ratio(),
            placed_tasks: report.placed_tasks,
            total_tasks: report.total_tasks,
        })?)?,
        Output::Text => {
            let mut text = String::new();
            let verdict = if report.feasible {
                "feasible"
            } else {
                "INFEASIBLE"
            };
            let _ = writeln!(text, "{verdict}: {} violations", report.violation_count);
            for violation in &report.violations {
                let _ = writeln!(text, "  {violation}");
            }
            let _ = writeln!(
                text,
                "placed {} of {} tasks\nwelfare {:.2} yuan/h\nbound   {:.2} yuan/h (from the solution's prices)\nratio   {:.5}",
                report.placed_tasks,
                report.total_tasks,
                report.welfare,
                report.bound,
                report.ratio()
            );
            print_line(&text)?;
        }
    }
    Ok(if report.feasible {
        exit::OK
    } else {
        exit::REJECTED
    })
}

fn run_explain(args: ExplainArgs) -> Result<u8> {
    let problem = read_problem(&args.problem)?;
    let solution = read_solution(&args.solution, &problem)?;
    let explanations = match &args.class {
        Some(id) => {
            let Some(class) = problem.classes.iter().position(|class| &class.id == id) else {
                bail!(
                    "--class: no class with id '{id}' in {}",
                    args.problem.display()
                );
            };
            vec![explain::explain(&problem, &solution, class)]
        }
        None => explain::unplaced(&problem, &solution),
    };
    let mut text = String::new();
    for explanation in &explanations {
        text.push_str(&explain::render(&problem, &solution, explanation));
    }
    if explanations.is_empty() {
        text.push_str("every class is fully placed\n");
    }
    print_line(&text)?;
    Ok(exit::OK)
}

fn run_demo(args: DemoArgs) -> Result<u8> {
    let problem = generate(&GenParams {
        pools: args.pools,
        classes: args.classes,
        seed: args.seed,
    });
    let started = Instant::now();
    let solution = solve::solve(&problem, None);
    let seconds = started.elapsed().as_secs_f64();
    let report = check::check(&problem, &solution);
    let baseline = check::check(&problem, &greedy::solve(&problem));
    print_line(&demo_text(&problem, &solution, &report, &baseline, seconds))?;
    Ok(exit::OK)
}

fn demo_text(
    problem: &Problem,
    solution: &Solution,
    report: &check::Report,
    baseline: &check::Report,
    seconds: f64,
) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "A national round: {} regions, {} pools, {} classes, {} tasks waiting.\n",
        problem.regions.len(),
        problem.pools.len(),
        problem.classes.len(),
        report.total_tasks
    );
    let _ = writeln!(
        text,
        "market  welfare {:>14.2} yuan/h  placed {:>9} tasks  solved in {:.3} s\n        bound   {:>14.2} yuan/h  (the prices prove the placement is within {:.2} % of the best)",
        report.welfare,
        report.placed_tasks,
        seconds,
        report.bound,
        (1.0 - report.ratio()) * 100.0
    );
    let _ = writeln!(
        text,
        "greedy  welfare {:>14.2} yuan/h  placed {:>9} tasks  (one job at a time, in arrival order)\n        the market adds {:+.1} %\n",
        baseline.welfare,
        baseline.placed_tasks,
        if baseline.welfare > 0.0 { (report.welfare / baseline.welfare - 1.0) * 100.0 } else { 0.0 }
    );

    // Where the work went, per region: units used of capacity, and the
    // highest market price there.
    let mut used = vec![0u64; problem.pools.len()];
    for assignment in &solution.assignments {
        used[assignment.pool] += assignment.count * problem.classes[assignment.class].units;
    }
    let _ = writeln!(text, "Where the work went (supply regions):");
    let _ = writeln!(
        text,
        "  {:<34} {:>6} {:>12} {:>12} {:>16}",
        "region", "pools", "units used", "capacity", "max congestion"
    );
    for (region_index, region) in problem.regions.iter().enumerate() {
        let pools: Vec<usize> = (0..problem.pools.len())
            .filter(|&p| problem.pools[p].region == region_index)
            .collect();
        if pools.is_empty() {
            continue;
        }
        let used_units: u64 = pools.iter().map(|&p| used[p]).sum();
        let capacity: u64 = pools.iter().map(|&p| problem.pools[p].capacity).sum();
        let price_max = pools
            .iter()
            .map(|&p| solution.prices_yuan_per_unit_hour[p])
            .fold(0.0f64, f64::max);
        let _ = writeln!(
            text,
            "  {:<34} {:>6} {:>12} {:>12} {:>16.4}",
            region.name,
            pools.len(),
            used_units,
            capacity,
            price_max
        );
    }

    let waiting = explain::unplaced(problem, solution);
    let _ = writeln!(
        text,
        "\nWhy work waits ({} classes not fully placed; the first 3):",
        waiting.len()
    );
    for explanation in waiting.iter().take(3) {
        text.push_str(&explain::render(problem, solution, explanation));
    }
    let _ = writeln!(
        text,
        "\nNext: suanwang place gen --pools 500 --classes 5000 --seed 7 -o round.json\n      suanwang place solve round.json -o solution.json --stats\n      suanwang place explain round.json solution.json"
    );
    text
}
