//! `suanwang serve`: the control plane. Settings come from a TOML file
//! (`--config`), then environment variables, then flags, each overriding the
//! one before.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use serde::Deserialize;
use suanwang_server::auth::Secret;
use suanwang_server::{Database, Settings};

use crate::exit;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:7070].
    #[arg(long, env = "SUANWANG_LISTEN")]
    listen: Option<SocketAddr>,
    /// sqlite://PATH or postgres://USER:PASSWORD@HOST/DB [default: sqlite file in the data directory].
    #[arg(long, env = "SUANWANG_DB", hide_env_values = true)]
    db: Option<String>,
    /// Where the SQLite database lives [default: the user's data directory + /suanwang].
    #[arg(long, env = "SUANWANG_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// A TOML file with any of: listen, db, data_dir, lease_ttl_s, round_interval_ms, rate_limit_per_s, rate_limit_burst, commit_writers, idempotency_retention_s, platform_fee_bps.
    #[arg(long, env = "SUANWANG_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    db: Option<String>,
    data_dir: Option<PathBuf>,
    lease_ttl_s: Option<u64>,
    round_interval_ms: Option<u64>,
    rate_limit_per_s: Option<u32>,
    rate_limit_burst: Option<u32>,
    commit_writers: Option<usize>,
    idempotency_retention_s: Option<u64>,
    /// The platform's fee on compute, basis points (500 = 5 %).
    platform_fee_bps: Option<i64>,
}

pub fn default_data_dir() -> PathBuf {
    dirs::data_local_dir()
        .map(|dir| dir.join("suanwang"))
        .unwrap_or_else(|| PathBuf::from("suanwang-data"))
}

/// The resolved configuration of one server.
#[derive(Debug)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub database: Database,
    pub settings: Settings,
}

pub fn resolve(args: ServeArgs) -> anyhow::Result<ServeConfig> {
    let file: FileConfig = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            toml::from_str(&text).with_context(|| format!("{}", path.display()))?
        }
        None => FileConfig::default(),
    };
    let listen = args
        .listen
        .or(file.listen)
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 7070)));
    let data_dir = args
        .data_dir
        .or(file.data_dir)
        .unwrap_or_else(default_data_dir);
    let database = Database::parse(args.db.as_deref().or(file.db.as_deref()), &data_dir)?;
    let mut settings = Settings::default();
    if let Some(ttl) = file.lease_ttl_s {
        anyhow::ensure!((1..=3600).contains(&ttl), "lease_ttl_s: must be 1 to 3600");
        settings.lease_ttl = Duration::from_secs(ttl);
    }
    if let Some(ms) = file.round_interval_ms {
        anyhow::ensure!(
            (10..=600_000).contains(&ms),
            "round_interval_ms: must be 10 to 600000"
        );
        settings.round_interval = Duration::from_millis(ms);
    }
    if let Some(rate) = file.rate_limit_per_s {
        anyhow::ensure!(rate > 0, "rate_limit_per_s: must be > 0");
        settings.rate_limit_per_s = rate;
    }
    if let Some(burst) = file.rate_limit_burst {
        anyhow::ensure!(burst > 0, "rate_limit_burst: must be > 0");
        settings.rate_limit_burst = burst;
    }
    if let Some(writers) = file.commit_writers {
        anyhow::ensure!(
            (1..=suanwang_server::commit::WRITERS_MAX).contains(&writers),
            "commit_writers: must be 1 to {}",
            suanwang_server::commit::WRITERS_MAX
        );
        anyhow::ensure!(
            writers == 1 || !matches!(database, Database::Sqlite(_)),
            "commit_writers: SQLite has one writer; more than 1 needs PostgreSQL"
        );
        settings.commit_writers = Some(writers);
    }
    if let Some(retention_s) = file.idempotency_retention_s {
        let max_s = suanwang_server::state::IDEMPOTENCY_RETENTION_MAX.as_secs();
        anyhow::ensure!(
            (1..=max_s).contains(&retention_s),
            "idempotency_retention_s: must be 1 to {max_s}"
        );
        settings.idempotency_retention = Duration::from_secs(retention_s);
    }
    if let Some(bps) = file.platform_fee_bps {
        settings.money = suanwang_core::bill::MoneyConfig::new(bps)
            .context("platform_fee_bps: must be 0 to 10000 (basis points)")?;
    }
    Ok(ServeConfig {
        listen,
        database,
        settings,
    })
}

pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SUANWANG_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

pub async fn run(args: ServeArgs) -> anyhow::Result<u8> {
    init_tracing();
    let config = resolve(args)?;
    let opened = suanwang_server::open_store(&config.database, config.settings.money).await?;
    let state = suanwang_server::state(opened.store.clone(), config.settings).await?;
    let given = std::env::var("SUANWANG_OPERATOR_TOKEN").ok().map(Secret);
    if let Some(secret) = suanwang_server::bootstrap_operator(&state, given.as_ref()).await? {
        crate::out::say(format!(
            "operator token (shown once, keep it safe): {}",
            secret.0
        ));
    }
    let running = suanwang_server::start(state, config.listen).await?;
    tracing::info!(addr = %running.addr, db = ?config.database, "serving");
    crate::out::say(format!(
        "suanwang serving on http://{} ({})",
        running.addr,
        running.state.store.backend()
    ));
    shutdown_signal().await;
    tracing::info!("shutting down: finishing requests in flight");
    running.stop().await;
    drop(opened);
    Ok(exit::OK)
}

pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Resolves a config file with `text` and the given `--db`.
    fn resolve_text(db: &str, text: &str) -> anyhow::Result<ServeConfig> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("serve.toml");
        std::fs::write(&path, text).unwrap();
        let args = ServeArgs {
            listen: None,
            db: Some(db.to_owned()),
            data_dir: Some(dir.path().to_owned()),
            config: Some(path),
        };
        resolve(args)
    }

    /// Resolves a config file with `text` and the given `--db`; the commit
    /// writers or the error.
    fn check(db: &str, text: &str, expect: Result<Option<usize>, &str>) {
        match (resolve_text(db, text), expect) {
            (Ok(config), Ok(writers)) => {
                assert_eq!(config.settings.commit_writers, writers, "{text}")
            }
            (Err(error), Err(message)) => {
                let error = format!("{error:#}");
                assert!(error.contains(message), "{text}: {error}");
            }
            (got, expect) => panic!("{text}: got {got:?}, expected {expect:?}"),
        }
    }

    #[test]
    fn commit_writers() {
        let pg = "postgres://u:p@localhost/db";
        let sqlite = "sqlite:///tmp/x.db";
        check(pg, "", Ok(None));
        check(pg, "commit_writers = 8", Ok(Some(8)));
        check(sqlite, "commit_writers = 1", Ok(Some(1)));
        check(
            sqlite,
            "commit_writers = 2",
            Err("commit_writers: SQLite has one writer"),
        );
        check(
            pg,
            "commit_writers = 0",
            Err("commit_writers: must be 1 to 16"),
        );
        check(
            pg,
            "commit_writers = 17",
            Err("commit_writers: must be 1 to 16"),
        );
        check(
            pg,
            "commit_writer = 2",
            Err("unknown field `commit_writer`"),
        );
    }

    #[test]
    fn idempotency_retention() {
        let db = "sqlite:///tmp/x.db";
        let retention_s = |text: &str| -> Result<u64, String> {
            resolve_text(db, text)
                .map(|config| config.settings.idempotency_retention.as_secs())
                .map_err(|error| format!("{error:#}"))
        };
        assert_eq!(retention_s(""), Ok(86_400));
        assert_eq!(retention_s("idempotency_retention_s = 1"), Ok(1));
        assert_eq!(
            retention_s("idempotency_retention_s = 2592000"),
            Ok(2_592_000)
        );
        for bad in [
            "idempotency_retention_s = 0",
            "idempotency_retention_s = 2592001",
        ] {
            let error = retention_s(bad).expect_err(bad);
            assert!(
                error.contains("idempotency_retention_s: must be 1 to 2592000"),
                "{bad}: {error}"
            );
        }
    }
}
