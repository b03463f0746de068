//! `suanwang up`: the whole network on one machine. A server on SQLite in a
//! local data directory, a demo tenant the local CLI is signed in as, and
//! agents for demo sites in several regions, each on a slice of this
//! machine's cores at a realistic list price. A second `up` on the same data
//! directory reuses everything (the tokens live in `up.json`, mode 0600).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use serde::{Deserialize, Serialize};
use suanwang_agent::executor::Executor;
use suanwang_agent::process::ProcessExecutor;
use suanwang_agent::{AgentOptions, CgroupSetting, SiteConfig};
use suanwang_api::{PoolSpec, PrincipalCreated, SiteCreated};
use suanwang_server::auth::{new_token, Secret};
use suanwang_server::{Database, Settings};
use tokio::sync::watch;

use crate::client::{save_login, Login};
use crate::exit;

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Where the database, the sites' state and their outputs live [default: the user's data directory + /suanwang].
    #[arg(long, env = "SUANWANG_DATA_DIR")]
    data_dir: Option<PathBuf>,
    #[arg(long, default_value = "127.0.0.1:7070")]
    listen: SocketAddr,
    /// Do not sign the local CLI in as the demo tenant.
    #[arg(long)]
    no_login: bool,
}

/// A demo site: a compute centre of the East-Data-West-Compute hubs.
struct DemoSite {
    name: &'static str,
    region: &'static str,
    price_yuan_per_core_hour: f64,
    pue: f64,
    grid_kg_co2_per_kwh: f64,
}

/// Prices are list prices of general compute per core-hour at the levels of
/// the generator (western hubs about 0.05–0.08 yuan, cheaper for cheap power
/// and a cool climate; the undersea centre a little dearer); PUE and grid
/// factors as in the generator's region table (docs/generator.md).
const DEMO_SITES: [DemoSite; 4] = [
    DemoSite {
        name: "guian-dc",
        region: "guian",
        price_yuan_per_core_hour: 0.06,
        pue: 1.25,
        grid_kg_co2_per_kwh: 0.4989,
    },
    DemoSite {
        name: "zhongwei-dc",
        region: "zhongwei",
        price_yuan_per_core_hour: 0.055,
        pue: 1.2,
        grid_kg_co2_per_kwh: 0.6423,
    },
    DemoSite {
        name: "zhangjiakou-dc",
        region: "zhangjiakou",
        price_yuan_per_core_hour: 0.08,
        pue: 1.3,
        grid_kg_co2_per_kwh: 0.7252,
    },
    DemoSite {
        name: "lingshui-undersea",
        region: "lingshui",
        price_yuan_per_core_hour: 0.09,
        pue: 1.1,
        grid_kg_co2_per_kwh: 0.4184,
    },
];

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpFile {
    operator_token: String,
    tenant_token: String,
    provider_token: String,
    /// Site name → its agent token.
    sites: std::collections::BTreeMap<String, String>,
}

fn say(text: impl AsRef<str>) {
    #[allow(clippy::print_stdout)]
    {
        println!("{}", text.as_ref());
    }
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let temporary = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(&temporary)
        .with_context(|| format!("writing {}", temporary.display()))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)?;
    Ok(())
}

/// Splits this machine's CPUs among the sites: each gets a contiguous
/// slice when there are enough, else they share round-robin.
fn cpu_slices(cpus: usize, sites: usize) -> Vec<(String, u64)> {
    let cpus = cpus.max(1);
    (0..sites)
        .map(|i| {
            if cpus >= sites {
                let per = cpus / sites;
                let first = i * per;
                let last = first + per - 1;
                (format!("{first}-{last}"), per as u64)
            } else {
                ((i % cpus).to_string(), 1)
            }
        })
        .collect()
}

async fn post<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    body: serde_json::Value,
) -> anyhow::Result<T> {
    let response = http.post(url).bearer_auth(token).json(&body).send().await?;
    let status = response.status();
    let text = response.text().await?;
    anyhow::ensure!(status.is_success(), "{url}: {status}: {text}");
    Ok(serde_json::from_str(&text)?)
}

pub async fn run(args: UpArgs) -> anyhow::Result<u8> {
    crate::serve::init_tracing();
    let data_dir = args.data_dir.unwrap_or_else(crate::serve::default_data_dir);
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let up_path = data_dir.join("up.json");
    let mut up: UpFile = match std::fs::read_to_string(&up_path) {
        Ok(text) => {
            serde_json::from_str(&text).with_context(|| format!("reading {}", up_path.display()))?
        }
        Err(_) => UpFile::default(),
    };
    if up.operator_token.is_empty() {
        up.operator_token = new_token().0 .0;
        write_private(&up_path, &serde_json::to_string_pretty(&up)?)?;
    }

    let database = Database::Sqlite(data_dir.join("suanwang.db"));
    let opened = suanwang_server::open_store(&database).await?;
    let state = suanwang_server::state(opened.store.clone(), Settings::default()).await?;
    suanwang_server::bootstrap_operator(&state, Some(&Secret(up.operator_token.clone()))).await?;
    let running = suanwang_server::start(state, args.listen).await?;
    let url = format!("http://{}", running.addr);
    let http = reqwest::Client::new();

    if up.tenant_token.is_empty() {
        let tenant: PrincipalCreated = post(
            &http,
            &format!("{url}/v1/tenants"),
            &up.operator_token,
            serde_json::json!({"name": "demo"}),
        )
        .await?;
        up.tenant_token = tenant.token;
        write_private(&up_path, &serde_json::to_string_pretty(&up)?)?;
    }
    if up.provider_token.is_empty() {
        let provider: PrincipalCreated = post(
            &http,
            &format!("{url}/v1/providers"),
            &up.operator_token,
            serde_json::json!({"name": "demo-provider"}),
        )
        .await?;
        up.provider_token = provider.token;
        write_private(&up_path, &serde_json::to_string_pretty(&up)?)?;
    }
    for site in &DEMO_SITES {
        if !up.sites.contains_key(site.name) {
            let created: SiteCreated = post(
                &http,
                &format!("{url}/v1/sites"),
                &up.provider_token,
                serde_json::json!({"name": site.name, "region": site.region}),
            )
            .await?;
            up.sites.insert(site.name.to_owned(), created.token);
            write_private(&up_path, &serde_json::to_string_pretty(&up)?)?;
        }
    }
    if !args.no_login {
        save_login(&Login {
            server: url.clone(),
            token: up.tenant_token.clone(),
        })?;
    }

    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let slices = cpu_slices(cpus, DEMO_SITES.len());
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(PathBuf::from));
    let (stop, stopped) = watch::channel(false);
    let mut agents = Vec::new();
    for (site, (cpus, cores)) in DEMO_SITES.iter().zip(slices) {
        let config = SiteConfig {
            executor: "process".into(),
            state_dir: None,
            cpus: Some(cpus),
            cgroup: CgroupSetting::Auto,
            stop_grace_s: 5,
            usage_interval_s: 60,
            pools: vec![PoolSpec {
                name: "cpu".into(),
                kind: "cpu".into(),
                family: "x86".into(),
                device_model: "intel-xeon-8480p".into(),
                capacity: cores,
                price_yuan_per_unit_hour: site.price_yuan_per_core_hour,
                power_kw_per_unit: 0.012,
                pue: site.pue,
                grid_kg_co2_per_kwh: site.grid_kg_co2_per_kwh,
            }],
        };
        let state_dir = data_dir.join("sites").join(site.name);
        let executor: Arc<dyn Executor> = Arc::new(ProcessExecutor::for_site(
            &config,
            &state_dir,
            exe_dir.clone(),
        )?);
        let options = AgentOptions {
            server: url.clone(),
            token: up.sites[site.name].clone(),
            config,
            state_dir,
            stop_tasks_on_exit: true,
        };
        agents.push(tokio::spawn(suanwang_agent::run(
            options,
            executor,
            stopped.clone(),
        )));
    }

    say(format!(
        "suanwang is up: API {url}  (data in {})",
        data_dir.display()
    ));
    say(format!(
        "sites: {}",
        DEMO_SITES
            .iter()
            .map(|s| format!("{} ({})", s.name, s.region))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    if !args.no_login {
        say("this CLI is signed in as the demo tenant; try, in another terminal:");
    } else {
        say(format!("demo tenant token: in {}", up_path.display()));
    }
    say("  suanwang job submit examples/hello.toml --wait");
    say("  suanwang job submit examples/render.toml --wait");
    say("  suanwang job list");
    say("  suanwang meter usage --job JOB_ID");
    say("Ctrl-C stops everything.");

    crate::serve::shutdown_signal().await;
    say("stopping: agents first (their tasks are stopped), then the server");
    let _ = stop.send(true);
    for agent in agents {
        match agent.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "agent stopped with an error"),
            Err(error) => tracing::warn!(%error, "agent task failed"),
        }
    }
    running.stop().await;
    drop(opened);
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_cover_the_cpus() {
        assert_eq!(
            cpu_slices(8, 4),
            vec![
                ("0-1".into(), 2),
                ("2-3".into(), 2),
                ("4-5".into(), 2),
                ("6-7".into(), 2)
            ]
        );
        assert_eq!(
            cpu_slices(2, 4),
            vec![
                ("0".into(), 1),
                ("1".into(), 1),
                ("0".into(), 1),
                ("1".into(), 1)
            ]
        );
    }
}
