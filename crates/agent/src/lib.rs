//! The site agent: a level-triggered reconciler between what the control
//! plane says a site should run and what its executor runs.

pub mod agent;
pub mod cgroup;
pub mod config;
pub mod executor;
pub mod process;
pub mod slurm;
pub mod state;

pub use agent::{run, AgentOptions};
pub use config::{CgroupSetting, SiteConfig};
