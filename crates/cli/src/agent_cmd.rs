//! `suanwang agent`: run one site's agent.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use suanwang_agent::executor::Executor;
use suanwang_agent::process::ProcessExecutor;
use suanwang_agent::{AgentOptions, SiteConfig};
use tokio::sync::watch;

use crate::exit;

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The control plane, e.g. http://127.0.0.1:7070.
    #[arg(long, env = "SUANWANG_SERVER")]
    server: String,
    /// The site's agent token (from `suanwang site create`).
    #[arg(long, env = "SUANWANG_TOKEN", hide_env_values = true)]
    token: String,
    /// The site file: pools, executor, state directory.
    #[arg(long)]
    config: PathBuf,
    /// Overrides `state_dir` of the site file [default: ./suanwang-agent].
    #[arg(long)]
    state_dir: Option<PathBuf>,
}

/// The executor a site file names, for the agent whose state is in `state_dir`.
pub fn executor(config: &SiteConfig, state_dir: &Path) -> anyhow::Result<Arc<dyn Executor>> {
    match config.executor.as_str() {
        "process" => {
            let exe_dir = std::env::current_exe()
                .ok()
                .and_then(|exe| exe.parent().map(PathBuf::from));
            Ok(Arc::new(ProcessExecutor::for_site(
                config, state_dir, exe_dir,
            )?))
        }
        "slurm" => {
            let mut slurm = suanwang_agent::slurm::SlurmConfig::default();
            for pool in &config.pools {
                slurm.pools.insert(pool.name.clone(), pool.kind.into());
            }
            Ok(Arc::new(suanwang_agent::slurm::SlurmExecutor::new(slurm)))
        }
        other => anyhow::bail!("executor {other:?} is not available in this build"),
    }
}

pub async fn run(args: AgentArgs) -> anyhow::Result<u8> {
    crate::serve::init_tracing();
    let config = SiteConfig::load(&args.config)?;
    let state_dir = args
        .state_dir
        .or_else(|| config.state_dir.clone())
        .unwrap_or_else(|| PathBuf::from("suanwang-agent"));
    let executor = executor(&config, &state_dir)?;
    let options = AgentOptions {
        server: args.server,
        token: args.token,
        config,
        state_dir,
        stop_tasks_on_exit: false,
    };
    let (stop, stopped) = watch::channel(false);
    let mut agent = tokio::spawn(suanwang_agent::run(options, executor, stopped));
    tokio::select! {
        result = &mut agent => {
            result.context("agent task")??;
        }
        _ = crate::serve::shutdown_signal() => {
            tracing::info!("stopping the agent; attempts keep running and are found again on restart");
            let _ = stop.send(true);
            agent.await.context("agent task")??;
        }
    }
    Ok(exit::OK)
}
