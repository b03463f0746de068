//! The twin's integration tests: one binary (see ARCHITECTURE.md).

mod examples;
mod loaders;
mod policies;
mod runs;

use std::path::{Path, PathBuf};

use suanwang_sim::{simulate, Options, Outcome, Policy, Setup};

pub fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/sim")
}

/// Reads a scenario written inline, in a fresh temporary directory with
/// the given extra files.
pub fn scenario(text: &str, files: &[(&str, &str)]) -> Result<Setup, suanwang_sim::SimError> {
    let dir = std::env::temp_dir().join(format!(
        "suanwang-sim-test-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, content) in files {
        std::fs::write(dir.join(name), content).unwrap();
    }
    let path = dir.join("scenario.toml");
    std::fs::write(&path, text).unwrap();
    let setup = Setup::read(&path, None);
    std::fs::remove_dir_all(&dir).unwrap();
    setup
}

static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub fn run_all(setup: &Setup, policies: &[Policy]) -> (String, Vec<Outcome>) {
    let (report, outcomes) = simulate(setup, policies, Options { verify: true }, &mut |_, _, _| {});
    (suanwang_sim::report::to_json(&report), outcomes)
}
