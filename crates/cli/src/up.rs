//! `suanwang up`: the whole network on one machine. A server on SQLite in a
//! local data directory, a demo tenant the local CLI is signed in as, and
//! agents for demo sites in several regions, each on a slice of this
//! machine's cores at a realistic list price. The sites offer every kind of
//! pool the shipped examples ask for: CPU cores, NVIDIA and Ascend GPUs and
//! HPC nodes; the accelerators and nodes are virtual (plain processes, an
//! uncatalogued `demo-virtual-*` device model, so 0 SCU), and `up` says so.
//! A second `up` on the same data directory reuses everything (the tokens
//! live in `up.json`, mode 0600).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use serde::{Deserialize, Serialize};
use suanwang_agent::executor::Executor;
use suanwang_agent::process::ProcessExecutor;
use suanwang_agent::{AgentOptions, CgroupSetting, SiteConfig};
use suanwang_api::{PoolSpec, PrincipalCreated, ResourceKind, SiteCreated};
use suanwang_server::auth::{new_token, Secret};
use suanwang_server::{Database, Settings};
use tokio::sync::watch;

use crate::client::{save_login_as, Login};
use crate::exit;

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Where the database, the sites' state and their outputs live [default: the user's data directory + /suanwang].
    #[arg(long, env = "SUANWANG_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The address the server listens on.
    #[arg(long, default_value = "127.0.0.1:7070")]
    listen: SocketAddr,
    /// Do not sign the local CLI in as the demo tenant.
    #[arg(long)]
    no_login: bool,
}

/// A demo site: a compute centre of the East-Data-West-Compute hubs. Each
/// sells its slice of this machine's cores (if `cpu_price` is set) and the
/// demo accelerator or HPC pools in `pools`.
struct DemoSite {
    name: &'static str,
    region: &'static str,
    /// Yuan per core-hour of its CPU pool; `None`: the site sells no CPUs.
    cpu_price: Option<f64>,
    pue: f64,
    grid_kg_co2_per_kwh: f64,
    pools: &'static [DemoPool],
}

/// A demo pool of accelerators or HPC nodes. This machine has none: their
/// tasks run as plain processes on the site's CPU slice, like any other, and
/// their device models (`demo-virtual-*`) are in no catalogue, so they rate
/// at 0 SCU, flagged unrated: no demo bill claims accelerator compute.
struct DemoPool {
    name: &'static str,
    kind: ResourceKind,
    family: &'static str,
    device_model: &'static str,
    /// Units (cards or nodes). Every unit can hold one task, and so one
    /// process: capacities are what the examples need (the 64-card gang of
    /// `examples/training.toml`), so a site never runs more processes than
    /// a few dozen, all pinned to its CPU slice.
    capacity: u64,
    price_yuan_per_unit_hour: f64,
    power_kw_per_unit: f64,
}

/// What the device model of every demo accelerator and HPC pool starts
/// with; the output and the tests rely on it.
pub const VIRTUAL_MODEL_PREFIX: &str = "demo-virtual-";

/// The fewest cores a demo CPU pool sells, so every example fits (analytics
/// asks 2 cores per task) even when this machine has fewer cores than there
/// are sites; the site's tasks then share its slice.
const CPU_POOL_CORES_MIN: u64 = 2;

/// Prices are list prices at the levels of the generator (docs/generator.md:
/// the families' reference prices times the zone's factor, western hubs
/// 0.70-0.85, eastern hubs 0.90-1.05): cores at about 0.05-0.09 yuan per
/// hour, cheaper for cheap power and a cool climate, the undersea centre a
/// little dearer; Ascend cards 6.5 x 0.8, NVIDIA 10 x 1.0, x86 FP64 HPC
/// nodes 11 x 0.8. PUE and grid factors as in the generator's region table;
/// power per unit as its chip families.
///
/// What the shipped examples need, and where it is (latencies one way, from
/// the built-in topology, checked by a test): NVIDIA cards within 10 ms of
/// Shanghai (Qingpu, 0.75 ms) for `inference.toml`; 64 Ascend cards in one
/// pool for the gang of `training.toml` (Gui'an); HPC nodes for `hpc.toml`
/// (Zhongwei); cores in Hebei for `analytics.toml` (Zhangjiakou); cores
/// anywhere for `hello.toml` and `render.toml`.
const DEMO_SITES: [DemoSite; 5] = [
    DemoSite {
        name: "guian-dc",
        region: "guian",
        cpu_price: Some(0.06),
        pue: 1.25,
        grid_kg_co2_per_kwh: 0.4989,
        pools: &[DemoPool {
            name: "gpu-ascend",
            kind: ResourceKind::Gpu,
            family: "ascend",
            device_model: "demo-virtual-ascend-npu",
            capacity: 64,
            price_yuan_per_unit_hour: 5.2,
            power_kw_per_unit: 0.4,
        }],
    },
    DemoSite {
        name: "zhongwei-dc",
        region: "zhongwei",
        cpu_price: Some(0.055),
        pue: 1.2,
        grid_kg_co2_per_kwh: 0.6423,
        pools: &[DemoPool {
            name: "hpc-x86",
            kind: ResourceKind::Hpc,
            family: "x86-fp64",
            device_model: "demo-virtual-hpc-node",
            capacity: 4,
            price_yuan_per_unit_hour: 8.8,
            power_kw_per_unit: 0.8,
        }],
    },
    DemoSite {
        name: "zhangjiakou-dc",
        region: "zhangjiakou",
        cpu_price: Some(0.08),
        pue: 1.3,
        grid_kg_co2_per_kwh: 0.7252,
        pools: &[],
    },
    DemoSite {
        name: "lingshui-undersea",
        region: "lingshui",
        cpu_price: Some(0.09),
        pue: 1.1,
        grid_kg_co2_per_kwh: 0.4184,
        pools: &[],
    },
    DemoSite {
        name: "qingpu-dc",
        region: "qingpu",
        cpu_price: None,
        pue: 1.3,
        grid_kg_co2_per_kwh: 0.5849,
        pools: &[DemoPool {
            name: "gpu-nvidia",
            kind: ResourceKind::Gpu,
            family: "nvidia",
            device_model: "demo-virtual-nvidia-gpu",
            capacity: 8,
            price_yuan_per_unit_hour: 10.0,
            power_kw_per_unit: 0.7,
        }],
    },
];

/// The pools a demo site declares: its CPU pool of `cores` cores (at least
/// [`CPU_POOL_CORES_MIN`]), then its demo pools.
fn site_pools(site: &DemoSite, cores: u64) -> Vec<PoolSpec> {
    let mut pools = Vec::new();
    if let Some(price) = site.cpu_price {
        pools.push(PoolSpec {
            name: "cpu".into(),
            kind: ResourceKind::Cpu,
            family: "x86".into(),
            device_model: "intel-xeon-8480p".into(),
            capacity: cores.max(CPU_POOL_CORES_MIN),
            price_yuan_per_unit_hour: price,
            power_kw_per_unit: 0.012,
            pue: site.pue,
            grid_kg_co2_per_kwh: site.grid_kg_co2_per_kwh,
        });
    }
    for pool in site.pools {
        assert!(pool.device_model.starts_with(VIRTUAL_MODEL_PREFIX));
        pools.push(PoolSpec {
            name: pool.name.into(),
            kind: pool.kind,
            family: pool.family.into(),
            device_model: pool.device_model.into(),
            capacity: pool.capacity,
            price_yuan_per_unit_hour: pool.price_yuan_per_unit_hour,
            power_kw_per_unit: pool.power_kw_per_unit,
            pue: site.pue,
            grid_kg_co2_per_kwh: site.grid_kg_co2_per_kwh,
        });
    }
    pools
}

/// What `up` puts in the demo tenant's wallet: 100,000 yuan, enough to
/// hold every example at once (the 72-hour training gang alone may hold
/// up to 8 × 8 cards × 72 h × 8 yuan = 36,864 yuan).
const DEMO_TOPUP_MICRO_YUAN: i64 = 100_000_000_000;

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
    crate::out::say(text);
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
    let opened = suanwang_server::open_store(&database, Settings::default().money).await?;
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
    // The demo tenant's wallet, topped up once (the id makes a restart's
    // top-up the same one), so every money command can be tried locally.
    let demo: suanwang_api::WhoAmI = {
        let response = http
            .get(format!("{url}/v1/whoami"))
            .bearer_auth(&up.tenant_token)
            .send()
            .await?;
        let status = response.status();
        let text = response.text().await?;
        anyhow::ensure!(status.is_success(), "{url}/v1/whoami: {status}: {text}");
        serde_json::from_str(&text)?
    };
    let _: suanwang_api::WalletView = post(
        &http,
        &format!("{url}/v1/tenants/{}/wallet/topups", demo.principal.id),
        &up.operator_token,
        serde_json::to_value(suanwang_api::TopUp {
            topup_id: "up-demo-100k".into(),
            amount_micro_yuan: DEMO_TOPUP_MICRO_YUAN,
        })?,
    )
    .await?;
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
        // The demo tenant is the default sign-in; the operator and the
        // provider are profiles: `suanwang --profile operator wallet topup`.
        save_login_as(
            None,
            &Login {
                server: url.clone(),
                token: up.tenant_token.clone(),
            },
        )?;
        save_login_as(
            Some("operator"),
            &Login {
                server: url.clone(),
                token: up.operator_token.clone(),
            },
        )?;
        save_login_as(
            Some("provider"),
            &Login {
                server: url.clone(),
                token: up.provider_token.clone(),
            },
        )?;
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
    let mut lines = Vec::new();
    for (site, (cpus, cores)) in DEMO_SITES.iter().zip(slices) {
        let pools = site_pools(site, cores);
        for pool in &pools {
            let unit = match pool.kind {
                ResourceKind::Cpu => "cores",
                ResourceKind::Gpu => "cards",
                ResourceKind::Hpc => "nodes",
            };
            let note = if pool.device_model.starts_with(VIRTUAL_MODEL_PREFIX) {
                " (virtual)"
            } else {
                ""
            };
            lines.push(format!(
                "  {:<30} {:<12} {:<4} {:<9} {:>3} {unit}{note} at {} yuan/unit-hour, on CPUs {cpus}",
                format!("{}/{}", site.name, pool.name),
                site.region,
                pool.kind.as_str(),
                pool.family,
                pool.capacity,
                pool.price_yuan_per_unit_hour,
            ));
        }
        let config = SiteConfig {
            executor: "process".into(),
            state_dir: None,
            cpus: Some(cpus),
            cgroup: CgroupSetting::Auto,
            stop_grace_s: 5,
            usage_interval_s: 60,
            outbox_max: suanwang_agent::config::OUTBOX_MAX_DEFAULT,
            pools,
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
        "demo network: {} sites, each agent on a slice of this machine's {cpus} CPUs:",
        DEMO_SITES.len()
    ));
    for line in &lines {
        say(line);
    }
    say(format!(
        "virtual accelerators: up drives no real accelerator or HPC node. The gpu and hpc pools \
         marked (virtual) run their tasks as plain processes on the site's CPUs; their device models \
         ({VIRTUAL_MODEL_PREFIX}*) are in no catalogue, so their usage rates 0 SCU, flagged unrated."
    ));
    if !args.no_login {
        say("this CLI is signed in as the demo tenant (profiles operator and provider are saved too); try, in another terminal:");
    } else {
        say(format!("demo tenant token: in {}", up_path.display()));
    }
    say("  suanwang market");
    say("  suanwang job quote examples/render.toml");
    say("  suanwang job submit examples/hello.toml --wait");
    say("  suanwang job submit examples/render.toml --wait");
    say("  suanwang job submit examples/training.toml --wait    # every file in examples/ runs here");
    say("  suanwang job list");
    say("  suanwang meter usage --job JOB_ID");
    say("  suanwang bill show --job JOB_ID");
    say("  suanwang wallet show");
    say("  suanwang --profile provider site list");
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
    use std::sync::Arc;

    use suanwang_core::metering::{shipped, Unrated};
    use suanwang_core::round::{self, RoundJob, RoundPool};
    use suanwang_core::spec::{validate_job, validate_pools};
    use suanwang_core::topology::Topology;
    use suanwang_place::Kind;

    use super::*;

    /// The demo network as a round sees it, with CPU pools of `cores` cores
    /// (their size depends on the machine; the other pools' does not).
    fn demo_round_pools(topology: &Topology, cores: u64) -> Vec<RoundPool> {
        let mut pools = Vec::new();
        for site in &DEMO_SITES {
            let specs = site_pools(site, cores);
            let defs = validate_pools(&specs).expect("demo pools are valid");
            for (spec, def) in specs.iter().zip(defs) {
                pools.push(RoundPool {
                    id: format!("pool-{}-{}", site.name, def.name),
                    site: format!("site-{}", site.name),
                    site_name: site.name.into(),
                    name: def.name,
                    region: topology.region(site.region).expect("a national region"),
                    kind: def.kind,
                    family: def.family,
                    free_units: def.capacity,
                    price_micro_yuan_per_unit_hour: def.price_micro_yuan_per_unit_hour,
                    power_kw_per_unit: spec.power_kw_per_unit,
                    pue: spec.pue,
                    grid_kg_co2_per_kwh: spec.grid_kg_co2_per_kwh,
                });
            }
        }
        pools
    }

    fn examples() -> Vec<(String, suanwang_api::JobSpec)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .expect("examples/")
            .map(|entry| entry.expect("a directory entry").path())
            .filter(|path| path.is_file())
            .collect();
        files.sort();
        assert!(files.len() >= 6, "examples/ has the shipped examples");
        files
            .iter()
            .map(|path| {
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                (
                    name,
                    crate::remote::read_job(path).expect("an example reads"),
                )
            })
            .collect()
    }

    /// Every shipped example, alone on the demo network, is placed whole at
    /// its bid: some pool passes its filters, its bid covers that pool's
    /// price, carbon and data transfer, and a gang fits one pool. (CPU pools
    /// as on a machine with plenty of cores: on a small one, a big batch
    /// runs in waves instead, which the end-to-end test in
    /// `tests/it/up.rs` shows.)
    #[test]
    fn every_example_is_placed_on_the_demo_network() {
        let topology = Topology::national();
        let pools = demo_round_pools(&topology, 1_000);
        for (name, spec) in examples() {
            let def =
                validate_job(&spec, &topology).unwrap_or_else(|error| panic!("{name}: {error}"));
            let jobs = vec![RoundJob {
                id: name.clone(),
                tenant: "demo".into(),
                def: Arc::new(def),
                pending: spec.tasks,
            }];
            let (_, plan) = round::plan(&topology, &pools, &jobs);
            assert_eq!(
                plan.tasks_placed, spec.tasks,
                "{name} is not placed whole: {:?}",
                plan.waiting
            );
            for placement in &plan.placements {
                let pool = &pools[placement.pool];
                let region = &topology.regions[pool.region].id;
                if let Some(latency_ms_max) = spec.latency_ms_max {
                    let origin = topology.region(&spec.origin).unwrap();
                    let n = topology.regions.len();
                    assert!(topology.latency_ms[origin * n + pool.region] <= latency_ms_max);
                }
                if let Some(allowed) = &spec.allowed_regions {
                    assert!(allowed.contains(region), "{name} placed in {region}");
                }
            }
        }
    }

    /// The demo's accelerator and HPC pools claim no real compute: their
    /// device models are in no catalogue this build ships, and rate at 0
    /// SCU, flagged unrated.
    #[test]
    fn virtual_pools_are_unrated() {
        let mut virtual_pools = 0;
        for site in &DEMO_SITES {
            for pool in site_pools(site, 1) {
                let kind = suanwang_core::spec::resource_kind(pool.kind);
                if kind == Kind::Cpu {
                    continue;
                }
                virtual_pools += 1;
                assert!(pool.device_model.starts_with(VIRTUAL_MODEL_PREFIX));
                for catalogue in shipped().all() {
                    assert!(catalogue.lookup(&pool.device_model).is_none());
                    let rated = catalogue
                        .rate(&pool.device_model, kind, pool.capacity, 3_600_000)
                        .unwrap();
                    assert_eq!(rated.micro_scu_hours, 0);
                    assert_eq!(rated.unrated, Some(Unrated::UnknownModel));
                }
            }
        }
        // Ascend and NVIDIA GPUs and HPC nodes.
        assert_eq!(virtual_pools, 3);
    }

    /// The latencies the docs and examples quote, from the built-in
    /// topology: Qingpu's NVIDIA cards are inside the 10 ms circle around
    /// Shanghai, Gui'an's Ascend cards outside it; Zhangjiakou is in Hebei.
    #[test]
    fn demo_sites_are_where_the_examples_need_them() {
        let topology = Topology::national();
        let n = topology.regions.len();
        let latency = |from: &str, to: &str| {
            topology.latency_ms[topology.region(from).unwrap() * n + topology.region(to).unwrap()]
        };
        assert!((latency("shanghai", "qingpu") - 0.75).abs() < 0.01);
        assert!((latency("shanghai", "guian") - 12.0).abs() < 0.05);
        for site in &DEMO_SITES {
            assert!(topology.region(site.region).is_some(), "{}", site.name);
        }
        let zhangjiakou = &topology.regions[topology.region("zhangjiakou").unwrap()];
        assert!(zhangjiakou.name.contains("Hebei"), "{}", zhangjiakou.name);
    }

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
