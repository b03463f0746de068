//! `suanwang`: one binary, one subcommand per surface. This crate is the
//! edge: it reads files, measures time and memory, and prints. The decisions
//! are made in the pure crates it calls.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod memory;
mod place;

#[derive(Debug, Parser)]
#[command(
    name = "suanwang",
    version,
    about = "suanwang (算网): a national compute-power network"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The placement engine: solve, check, explain, generate and benchmark rounds.
    #[command(subcommand)]
    Place(place::PlaceCommand),
}

/// Exit codes scripts can rely on.
pub mod exit {
    /// The command did what it was asked.
    pub const OK: u8 = 0;
    /// It ran, and the answer is "no" (e.g. `place check` found a violation).
    pub const REJECTED: u8 = 1;
    /// Bad input or usage: nothing was done.
    pub const INPUT: u8 = 2;
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Place(command) => place::run(command),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("error: {error:#}");
            }
            ExitCode::from(exit::INPUT)
        }
    }
}
