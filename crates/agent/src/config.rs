//! The site configuration file (`site.toml`): where the site is, what it
//! sells, and how it runs work.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Deserialize;
use suanwang_api::PoolSpec;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    /// `process` (default) or `slurm`.
    #[serde(default = "process")]
    pub executor: String,
    /// Where the agent keeps its state: task handles and unsent reports.
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// CPUs the process executor may use, e.g. "0-3" or "2,3" (taskset
    /// syntax); all when absent.
    #[serde(default)]
    pub cpus: Option<String>,
    /// Seconds a stopped task gets between SIGTERM and SIGKILL.
    #[serde(default = "grace_default")]
    pub stop_grace_s: u64,
    pub pools: Vec<PoolSpec>,
}

fn process() -> String {
    "process".to_owned()
}

fn grace_default() -> u64 {
    10
}

impl SiteConfig {
    pub fn load(path: &Path) -> anyhow::Result<SiteConfig> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let config: SiteConfig =
            toml::from_str(&text).with_context(|| format!("{}", path.display()))?;
        config
            .check()
            .with_context(|| format!("{}", path.display()))?;
        Ok(config)
    }

    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            matches!(self.executor.as_str(), "process" | "slurm"),
            "executor: must be process or slurm, not {:?}",
            self.executor
        );
        anyhow::ensure!(!self.pools.is_empty(), "pools: at least one");
        anyhow::ensure!(self.stop_grace_s <= 3600, "stop_grace_s: at most 3600");
        if let Some(cpus) = &self.cpus {
            anyhow::ensure!(
                !cpus.is_empty()
                    && cpus
                        .chars()
                        .all(|c| c.is_ascii_digit() || c == ',' || c == '-'),
                "cpus: a list like 0-3 or 2,3"
            );
        }
        Ok(())
    }
}
