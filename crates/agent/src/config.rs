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
    /// cgroup v2 for the process executor: `auto` (default: below the
    /// agent's own cgroup when the hierarchy is there and writable, else
    /// CPU affinity only), `off`, or the absolute path of a delegated cgroup
    /// to put the attempts below (then required). See `cgroup.rs`.
    #[serde(default)]
    pub cgroup: CgroupSetting,
    /// Seconds a stopped task gets between SIGTERM and SIGKILL.
    #[serde(default = "grace_default")]
    pub stop_grace_s: u64,
    /// A running attempt's usage is reported every this many seconds (and
    /// at its end), so an agent lost mid-task loses at most one interval of
    /// metered usage. Executors with their own queue (Slurm) report at the
    /// end only.
    #[serde(default = "usage_interval_default")]
    pub usage_interval_s: u64,
    /// Reports (statuses and usage records) the outbox holds before the
    /// agent stops starting new attempts (default 10,000). Reports are never
    /// dropped for it: attempts already running still queue theirs, and
    /// starts resume once the server has taken the outbox below the cap.
    #[serde(default = "outbox_max_default")]
    pub outbox_max: usize,
    pub pools: Vec<PoolSpec>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(try_from = "String")]
pub enum CgroupSetting {
    #[default]
    Auto,
    Off,
    Path(PathBuf),
}

impl TryFrom<String> for CgroupSetting {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        match value.as_str() {
            "auto" => Ok(CgroupSetting::Auto),
            "off" => Ok(CgroupSetting::Off),
            path if Path::new(path).is_absolute()
                && Path::new(path)
                    .components()
                    .all(|c| !matches!(c, std::path::Component::ParentDir)) =>
            {
                Ok(CgroupSetting::Path(PathBuf::from(path)))
            }
            other => Err(format!(
                "cgroup: auto, off or the absolute path of a cgroup, not {other:?}"
            )),
        }
    }
}

fn process() -> String {
    "process".to_owned()
}

fn grace_default() -> u64 {
    10
}

fn usage_interval_default() -> u64 {
    60
}

/// The default `outbox_max`: about 2 MB of state file, minutes of a busy
/// site's reports.
pub const OUTBOX_MAX_DEFAULT: usize = 10_000;
/// The largest `outbox_max` a site file may set (the whole state file is
/// rewritten on every change).
pub const OUTBOX_MAX_LIMIT: usize = 1_000_000;

fn outbox_max_default() -> usize {
    OUTBOX_MAX_DEFAULT
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
        anyhow::ensure!(
            (1..=86_400).contains(&self.usage_interval_s),
            "usage_interval_s: 1 to 86400"
        );
        anyhow::ensure!(
            (1..=OUTBOX_MAX_LIMIT).contains(&self.outbox_max),
            "outbox_max: 1 to {OUTBOX_MAX_LIMIT}, not {}",
            self.outbox_max
        );
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

#[cfg(test)]
mod tests {
    use super::*;

    fn check(line: &str, expect: Result<CgroupSetting, &str>) {
        let text = format!(
            "{line}\n[[pools]]\nname = \"cpu\"\nkind = \"cpu\"\nfamily = \"x86\"\n\
             capacity = 1\nprice_yuan_per_unit_hour = 0.1\n"
        );
        match (toml::from_str::<SiteConfig>(&text), expect) {
            (Ok(config), Ok(setting)) => assert_eq!(config.cgroup, setting, "{line}"),
            (Err(error), Err(message)) => {
                assert!(error.to_string().contains(message), "{line}: {error}");
            }
            (got, expect) => panic!("{line}: {got:?}, expected {expect:?}"),
        }
    }

    #[test]
    fn cgroup_setting() {
        check("", Ok(CgroupSetting::Auto));
        check("cgroup = \"auto\"", Ok(CgroupSetting::Auto));
        check("cgroup = \"off\"", Ok(CgroupSetting::Off));
        check(
            "cgroup = \"/sys/fs/cgroup/agent.service\"",
            Ok(CgroupSetting::Path("/sys/fs/cgroup/agent.service".into())),
        );
        check("cgroup = \"on\"", Err("cgroup: auto, off or"));
        check("cgroup = \"sys/fs/cgroup\"", Err("cgroup: auto, off or"));
        check(
            "cgroup = \"/sys/fs/cgroup/../x\"",
            Err("cgroup: auto, off or"),
        );
        check("cgroup = 1", Err("cgroup"));
    }
}
