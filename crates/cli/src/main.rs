//! `suanwang`: one binary, one subcommand per surface. This crate is the
//! edge: it reads files, measures time and memory, and prints. The decisions
//! are made in the pure crates it calls.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod agent_cmd;
mod bench;
mod bench_api;
mod bench_ledger;
mod bill;
mod client;
mod market;
mod memory;
mod meter;
mod out;
mod place;
mod remote;
mod serve;
mod sim_cmd;
mod up;
mod wallet;
mod work;

#[derive(Debug, Parser)]
#[command(
    name = "suanwang",
    version,
    about = "suanwang (算网): a national compute-power network"
)]
struct Cli {
    /// A saved sign-in to use instead of the default one (`login --profile NAME` saves one).
    #[arg(long, global = true, env = "SUANWANG_PROFILE")]
    profile: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The placement engine: solve, check, explain, generate and benchmark rounds.
    #[command(subcommand)]
    Place(place::PlaceCommand),
    /// Run the control plane: API server and scheduling loop.
    Serve(serve::ServeArgs),
    /// Everything on this machine: server, demo tenant, and agents for demo sites.
    Up(up::UpArgs),
    /// Run a site's agent: register its pools, run what is assigned, report.
    Agent(agent_cmd::AgentArgs),
    /// Sign this CLI in to a server; saved in the user's config directory.
    Login(remote::LoginArgs),
    /// Tenants (companies): create one (operator), list them.
    Tenant(remote::WithOutput<remote::PrincipalCommand>),
    /// Providers (compute-centre owners): create one (operator), list them.
    Provider(remote::WithOutput<remote::PrincipalCommand>),
    /// Your API tokens.
    Token(remote::WithOutput<remote::TokenCommand>),
    /// Sites and their pools.
    Site(remote::WithOutput<remote::SiteCommand>),
    /// Regions, latency and transfer prices.
    Topology(remote::WithOutput<remote::TopologyCommand>),
    /// Submit, follow and cancel jobs.
    Job(remote::WithOutput<remote::JobCommand>),
    /// Your bill: lines per usage record with price, source, energy and carbon; totals.
    #[command(subcommand)]
    Bill(bill::BillCommand),
    /// A provider's earnings per pool, from the usage rated on its sites.
    #[command(subcommand)]
    Earnings(bill::EarningsCommand),
    /// The ledger: check every stored balance against its history (operator).
    Ledger(remote::WithOutput<wallet::LedgerCommand>),
    /// Wallets: balance, holds and credit; top-ups and credit by the operator.
    Wallet(remote::WithOutput<wallet::WalletCommand>),
    /// The network's pools: prices (list, clearing, per SCU-hour) and free capacity.
    Market(market::MarketArgs),
    /// Metering: the device catalogue and usage in standard compute units.
    Meter(remote::WithOutput<meter::MeterCommand>),
    /// Benchmarks of the control plane (the solver's is `place bench`).
    #[command(subcommand)]
    Bench(bench_api::BenchCommand),
    /// Demo workloads that do real compute (e.g. render a film frame).
    #[command(subcommand)]
    Work(work::WorkCommand),
    /// The digital twin: replay workloads through the engine and state machine on a virtual clock, compare policies.
    Sim(sim_cmd::SimArgs),
}

/// Exit codes scripts can rely on.
pub mod exit {
    /// The command did what it was asked.
    pub const OK: u8 = 0;
    /// It ran, and the answer is "no" (e.g. `place check` found a violation).
    pub const REJECTED: u8 = 1;
    /// Bad input or usage: nothing was done.
    pub const INPUT: u8 = 2;
    /// The server could not be reached or failed (retry later).
    pub const UNAVAILABLE: u8 = 3;
    /// Not signed in, token revoked, or no such thing visible to you.
    pub const DENIED: u8 = 4;
    /// A conflict: the name is taken, the job already finished, or rate-limited.
    pub const CONFLICT: u8 = 5;
}

fn block_on(future: impl std::future::Future<Output = anyhow::Result<u8>>) -> anyhow::Result<u8> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(remote::run(future))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(error) = client::use_profile(cli.profile) {
        out::warn(format!("error: {error:#}"));
        return ExitCode::from(exit::INPUT);
    }
    let result = match cli.command {
        Command::Place(place::PlaceCommand::Export(args)) => block_on(remote::export(args.output)),
        Command::Place(command) => place::run(command),
        Command::Serve(args) => block_on(serve::run(args)),
        Command::Up(args) => block_on(up::run(args)),
        Command::Agent(args) => block_on(agent_cmd::run(args)),
        Command::Login(args) => block_on(remote::login(args)),
        Command::Tenant(c) => block_on(remote::principal("tenant", c.command, c.output)),
        Command::Provider(c) => block_on(remote::principal("provider", c.command, c.output)),
        Command::Token(c) => block_on(remote::token(c.command, c.output)),
        Command::Site(c) => block_on(remote::site(c.command, c.output)),
        Command::Topology(c) => block_on(remote::topology(c.command, c.output)),
        Command::Job(c) => block_on(remote::job(c.command, c.output)),
        Command::Market(args) => block_on(market::run(args)),
        Command::Bill(command) => block_on(bill::run(command)),
        Command::Earnings(command) => block_on(bill::earnings(command)),
        Command::Wallet(c) => block_on(wallet::run(c.command, c.output)),
        Command::Ledger(c) => block_on(wallet::ledger(c.command, c.output)),
        Command::Meter(c) => meter::run(c.command, c.output),
        Command::Bench(command) => block_on(bench_api::run(command)),
        Command::Work(command) => work::run(command),
        Command::Sim(args) => sim_cmd::run(args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        // The reader of the output went away (`| head`): not an error.
        Err(error) if out::is_broken_pipe(&error) => ExitCode::from(exit::OK),
        Err(error) => {
            out::warn(format!("error: {error:#}"));
            ExitCode::from(exit::INPUT)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::Cli;

    /// Every subcommand and every argument a user can see, at every depth,
    /// as `suanwang job tasks`, `suanwang job tasks --output`.
    fn missing_help(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
        for argument in command.get_arguments() {
            let id = argument.get_id().as_str();
            // clap's own --help and --version explain themselves.
            if argument.is_hide_set() || id == "help" || id == "version" {
                continue;
            }
            let text = argument.get_help().map(ToString::to_string);
            if text.is_none_or(|t| t.trim().is_empty()) {
                let name = match argument.get_long() {
                    Some(long) => format!("--{long}"),
                    None => id.to_uppercase(),
                };
                missing.push(format!("{path} {name}"));
            }
        }
        for sub in command.get_subcommands() {
            if sub.is_hide_set() || sub.get_name() == "help" {
                continue;
            }
            let sub_path = format!("{path} {}", sub.get_name());
            if sub
                .get_about()
                .is_none_or(|a| a.to_string().trim().is_empty())
            {
                missing.push(sub_path.clone());
            }
            missing_help(sub, &sub_path, missing);
        }
    }

    #[test]
    fn every_command_and_argument_has_help() {
        let command = Cli::command();
        command.clone().debug_assert();
        let mut missing = Vec::new();
        missing_help(&command, "suanwang", &mut missing);
        assert!(
            missing.is_empty(),
            "without a line of help:\n  {}",
            missing.join("\n  ")
        );
    }
}
