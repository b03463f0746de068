//! `suanwang bench submit` and `suanwang bench round`: the control plane's
//! throughput and round time, measured the way a user would see them.
//!
//! - `submit` starts a real `suanwang serve` as a child process (so the
//!   load generator does not share its runtime), creates a tenant with one
//!   token per client, and has `--clients` concurrent clients submit
//!   `examples/hello.toml`-sized jobs for `--seconds`, each with its own
//!   Idempotency-Key. Every answer is a durable commit (group commit).
//!   Reports throughput and latency percentiles.
//! - `round` fills a store directly with a generated national scenario
//!   (`--pools` pools, jobs totalling `--tasks` waiting tasks) and times one
//!   scheduling round end to end: read, solve, explain, and persist.
//!   With `--usage-per-task`, then reports that many usage records per
//!   placed task through `Store::report` and times their storing and rating.
//! - `bill` places jobs of `--tasks` tasks on one site, rates their usage,
//!   and times the store reads of `bill show` for one of them.

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use suanwang_api::{JobSpec, PoolSpec, ResourcesSpec, RunSpec};
use suanwang_place::gen::{generate, GenParams};
use suanwang_server::auth::new_token;
use suanwang_server::{Database, Settings};
use suanwang_store::{Audit, NewJob, PoolRow, PrincipalRow, Role, SiteRow};

use crate::exit;
use crate::out::say;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Job submissions per second through HTTP, with latency percentiles.
    Submit(SubmitArgs),
    /// One scheduling round over many waiting tasks, including persistence.
    Round(RoundArgs),
    /// One agent running many short tasks (`true`) through the process executor.
    Agent(AgentBenchArgs),
    /// Ledger transfers per second: the core in memory, then durable in batches.
    Ledger(crate::bench_ledger::LedgerArgs),
    /// `bill show` for one large job: its usage rated, then the route's
    /// store reads timed.
    Bill(BillArgs),
}

#[derive(Debug, Args)]
pub struct BillArgs {
    /// sqlite (a fresh file under --work-dir) or a postgres:// URL of an empty database.
    #[arg(long, default_value = "sqlite")]
    db: String,
    /// Tasks of each job.
    #[arg(long, default_value_t = 10_000)]
    tasks: u64,
    /// Jobs of the one tenant, each of --tasks tasks; the bill shown is the
    /// first one's, among the others' lines.
    #[arg(long, default_value_t = 3)]
    jobs: u32,
    /// Usage records reported per task (each one bill line).
    #[arg(long, default_value_t = 10)]
    usage_per_task: u32,
    /// Times each read is made; the median and the slowest are reported.
    #[arg(long, default_value_t = 5)]
    repeat: u32,
    /// Where the database and the report are written.
    #[arg(long, default_value = "bench-out")]
    work_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct AgentBenchArgs {
    /// Tasks to run, one core each.
    #[arg(long, default_value_t = 1_000)]
    tasks: u64,
    /// Where the database, the agent's state and the report are written.
    #[arg(long, default_value = "bench-out")]
    work_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// sqlite (a fresh file under --work-dir) or a postgres:// URL.
    #[arg(long, default_value = "sqlite")]
    db: String,
    /// Concurrent clients, each submitting one job after another.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// How long to submit.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Where the database and the report are written.
    #[arg(long, default_value = "bench-out")]
    work_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct RoundArgs {
    /// sqlite (a fresh file under --work-dir) or a postgres:// URL of an empty database.
    #[arg(long, default_value = "sqlite")]
    db: String,
    /// Pools offered in the round.
    #[arg(long, default_value_t = 1_000)]
    pools: usize,
    /// Waiting tasks in the round.
    #[arg(long, default_value_t = 100_000)]
    tasks: u64,
    /// Seed of the generated jobs and pools.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Rounds run: the first places every task, later ones find nothing new.
    #[arg(long, default_value_t = 3)]
    repeat: u32,
    /// Then report this many usage records per placed task (each site one
    /// report of at most 10,000 at a time) and time their storing and
    /// rating into bill lines; 0: none.
    #[arg(long, default_value_t = 0)]
    usage_per_task: u32,
    /// Where the database and the report are written.
    #[arg(long, default_value = "bench-out")]
    work_dir: PathBuf,
}

pub async fn run(command: BenchCommand) -> anyhow::Result<u8> {
    match command {
        BenchCommand::Submit(args) => submit(args).await,
        BenchCommand::Round(args) => round(args).await,
        BenchCommand::Agent(args) => agent(args).await,
        BenchCommand::Ledger(args) => crate::bench_ledger::run(args).await,
        BenchCommand::Bill(args) => bill(args).await,
    }
}

/// A `suanwang serve` child, killed on drop.
struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_server(db: &str, work_dir: &std::path::Path, operator: &str) -> anyhow::Result<Server> {
    let exe = std::env::current_exe()?;
    let mut command = Command::new(exe);
    command
        .arg("serve")
        .arg("--listen")
        .arg("127.0.0.1:0")
        .env("SUANWANG_OPERATOR_TOKEN", operator)
        .env("SUANWANG_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if db == "sqlite" {
        let dir = work_dir.join(format!("submit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        command.arg("--data-dir").arg(&dir);
    } else {
        command.arg("--db").arg(db);
    }
    let mut child = command.spawn().context("starting suanwang serve")?;
    let stdout = child.stdout.take().context("server stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let url = loop {
        let Some(line) = lines.next() else {
            bail!("the server exited before serving")
        };
        let line = line?;
        if let Some(rest) = line.strip_prefix("suanwang serving on ") {
            break rest
                .split_whitespace()
                .next()
                .context("address")?
                .to_owned();
        }
    };
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Ok(Server { child, url })
}

fn hello() -> JobSpec {
    JobSpec {
        name: "hello".into(),
        kind: suanwang_api::JobKind::Batch,
        tasks: 4,
        resources: ResourcesSpec {
            kind: suanwang_api::ResourceKind::Cpu,
            units: 1,
            families: vec![],
            memory_gib: 0.0,
        },
        run: RunSpec {
            command: "true".into(),
            args: vec![],
            env: Default::default(),
            slurm_script: None,
        },
        hours: 0.01,
        bid_yuan_per_unit_hour: 1.0,
        origin: "shanghai".into(),
        latency_ms_max: None,
        data_region: None,
        data_gb: 0.0,
        allowed_regions: None,
        deadline: None,
        retries: 2,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn submit(args: SubmitArgs) -> anyhow::Result<u8> {
    anyhow::ensure!((1..=1024).contains(&args.clients), "--clients: 1 to 1024");
    std::fs::create_dir_all(&args.work_dir)?;
    let (operator, _) = new_token();
    let server = spawn_server(&args.db, &args.work_dir, &operator.0)?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients)
        .build()?;
    let url = server.url.clone();
    let tenant: suanwang_api::PrincipalCreated = http
        .post(format!("{url}/v1/tenants"))
        .bearer_auth(&operator.0)
        .json(&serde_json::json!({"name": format!("bench-{}", uuid::Uuid::now_v7().simple())}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let mut tokens = vec![tenant.token.clone()];
    while tokens.len() < args.clients {
        let created: suanwang_api::TokenCreated = http
            .post(format!("{url}/v1/tokens"))
            .bearer_auth(&tenant.token)
            .json(&serde_json::json!({}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        tokens.push(created.token);
    }
    let body = Arc::new(serde_json::to_vec(&hello())?);
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let mut clients = Vec::with_capacity(args.clients);
    for token in tokens {
        let http = http.clone();
        let url = url.clone();
        let body = body.clone();
        clients.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            while Instant::now() < deadline {
                let sent = Instant::now();
                let answer = http
                    .post(format!("{url}/v1/jobs"))
                    .bearer_auth(&token)
                    .header(
                        suanwang_api::IDEMPOTENCY_KEY_HEADER,
                        uuid::Uuid::now_v7().to_string(),
                    )
                    .header("content-type", "application/json")
                    .body(body.as_ref().clone())
                    .send()
                    .await;
                match answer {
                    Ok(response) if response.status().as_u16() == 201 => {
                        let _ = response.bytes().await;
                        latencies.push(sent.elapsed());
                    }
                    _ => errors += 1,
                }
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for client in clients {
        let (mine, failed) = client.await?;
        latencies.extend(mine);
        errors += failed;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let rate = latencies.len() as f64 / elapsed;
    let backend = if args.db == "sqlite" {
        "sqlite"
    } else {
        "postgres"
    };
    say(format!(
        "{{\"bench\":\"submit\",\"db\":\"{backend}\",\"clients\":{},\"seconds\":{elapsed:.2},\"submitted\":{},\"errors\":{errors},\"per_second\":{rate:.0},\"p50_ms\":{:.2},\"p99_ms\":{:.2},\"max_ms\":{:.2}}}",
        args.clients,
        latencies.len(),
        percentile(&latencies, 50.0).as_secs_f64() * 1e3,
        percentile(&latencies, 99.0).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    ));
    drop(server);
    Ok(if errors == 0 {
        exit::OK
    } else {
        exit::REJECTED
    })
}

/// Six decimals at most: what a price in the API may carry.
fn price(yuan: f64) -> f64 {
    (yuan * 1e6).round() / 1e6
}

async fn round(args: RoundArgs) -> anyhow::Result<u8> {
    crate::serve::init_tracing();
    std::fs::create_dir_all(&args.work_dir)?;
    let database = if args.db == "sqlite" {
        let path = args
            .work_dir
            .join(format!("round-{}.db", std::process::id()));
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
        Database::Sqlite(path)
    } else {
        Database::parse(Some(&args.db), &args.work_dir)?
    };
    let opened =
        suanwang_server::open_store(&database, suanwang_core::bill::MoneyConfig::FREE).await?;
    let store = opened.store.clone();
    let state = suanwang_server::state(store.clone(), Settings::default()).await?;

    // A national scenario: pools as generated; classes become jobs until the
    // waiting tasks reach --tasks.
    let problem = generate(&GenParams {
        pools: args.pools,
        classes: (args.tasks as usize / 20).max(10),
        seed: args.seed,
    });
    let at_ms = suanwang_server::now_ms();
    let audit = |action: &str| Audit {
        at_ms,
        principal: "bench".into(),
        action: action.into(),
        target: String::new(),
        detail: String::new(),
    };
    let provider = PrincipalRow {
        id: "pro_bench".into(),
        role: Role::Provider,
        name: "bench-provider".into(),
        parent: None,
        created_at_ms: at_ms,
    };
    let tenant = PrincipalRow {
        id: "ten_bench".into(),
        role: Role::Tenant,
        name: "bench-tenant".into(),
        parent: None,
        created_at_ms: at_ms,
    };
    for principal in [&provider, &tenant] {
        let (_, hash) = new_token();
        let token = suanwang_store::NewToken {
            id: format!("tok_{}", principal.id),
            principal: principal.id.clone(),
            name: "bench".into(),
            hash,
            created_at_ms: at_ms,
        };
        store
            .create_principal(principal, &token, &audit("create"))
            .await?;
    }
    // The tenant's wallet covers every hold the rounds make: a round with
    // holds is what is measured.
    {
        use suanwang_core::bill::chart;
        use suanwang_store::ledger::{codes, Transfer, TransferId};
        let mut accounts = chart::system_accounts();
        accounts.extend(chart::tenant_accounts(&tenant.id));
        store.create_accounts(&accounts, at_ms).await?;
        let topup = Transfer::new(
            TransferId::new("topup:bench").expect("a plain id"),
            chart::cash(),
            chart::wallet(&tenant.id),
            suanwang_store::ledger::AMOUNT_MICRO_MAX,
            codes::TOPUP,
        );
        let result = store.create_transfers(&[topup], at_ms).await?;
        anyhow::ensure!(
            result[0].is_ok(),
            "the bench tenant's top-up: {:?}",
            result[0]
        );
    }
    let mut sites: std::collections::BTreeMap<&str, Vec<&suanwang_place::Pool>> =
        Default::default();
    for pool in &problem.pools {
        sites.entry(pool.site.as_str()).or_default().push(pool);
    }
    for (index, (site_name, pools)) in sites.iter().enumerate() {
        let site = SiteRow {
            id: format!("site_{index:05}"),
            provider: provider.id.clone(),
            name: (*site_name).to_owned(),
            region: problem.regions[pools[0].region].id.clone(),
            lease_expires_at_ms: None,
            healthy: false,
            version: 0,
            agent: Default::default(),
        };
        let (_, hash) = new_token();
        let token = suanwang_store::NewToken {
            id: format!("tok_{}", site.id),
            principal: site.id.clone(),
            name: "agent".into(),
            hash,
            created_at_ms: at_ms,
        };
        store.create_site(&site, &token, &audit("site")).await?;
        let rows = pools
            .iter()
            .enumerate()
            .map(|(k, pool)| {
                let spec = PoolSpec {
                    name: format!("p{k}"),
                    kind: suanwang_core::wire::resource_kind(pool.kind),
                    family: problem.families[pool.family].clone(),
                    device_model: String::new(),
                    capacity: pool.capacity,
                    price_yuan_per_unit_hour: price(pool.price_yuan_per_unit_hour),
                    power_kw_per_unit: pool.power_kw_per_unit,
                    pue: pool.pue.max(1.0),
                    grid_kg_co2_per_kwh: pool.grid_kg_co2_per_kwh,
                };
                let def = &suanwang_core::spec::validate_pools(std::slice::from_ref(&spec))
                    .map_err(|e| anyhow::anyhow!("{e}"))?[0];
                Ok(PoolRow {
                    id: format!("pool_{index:05}_{k:02}"),
                    site: site.id.clone(),
                    name: spec.name.clone(),
                    spec: serde_json::to_string(&spec)?,
                    kind: spec.kind.as_str().to_owned(),
                    family: spec.family.clone(),
                    capacity: spec.capacity,
                    price_micro: def.price_micro_yuan_per_unit_hour,
                    used: 0,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        store.put_pools(&site.id, &rows, &audit("pools")).await?;
        store
            .heartbeat(&site.id, at_ms + 3_600_000, &Default::default())
            .await?;
    }
    let mut jobs = Vec::new();
    let mut tasks = 0u64;
    for (k, class) in problem.classes.iter().enumerate() {
        if tasks >= args.tasks {
            break;
        }
        let count = class.count.min(args.tasks - tasks);
        tasks += count;
        let region = |i: usize| problem.regions[i].id.clone();
        let spec = JobSpec {
            name: class.id.clone(),
            kind: if class.gang {
                suanwang_api::JobKind::Gang
            } else {
                suanwang_api::JobKind::Batch
            },
            tasks: count,
            resources: ResourcesSpec {
                kind: suanwang_core::wire::resource_kind(class.kind),
                units: class.units,
                families: class
                    .families
                    .iter()
                    .map(|&f| problem.families[f].clone())
                    .collect(),
                memory_gib: 0.0,
            },
            run: RunSpec {
                command: "true".into(),
                args: vec![],
                env: Default::default(),
                slurm_script: None,
            },
            hours: class.hours,
            bid_yuan_per_unit_hour: price(class.bid_yuan_per_unit_hour),
            origin: region(class.origin),
            latency_ms_max: class.max_latency_ms,
            data_region: Some(region(class.data_region)),
            data_gb: class.data_gb,
            allowed_regions: class
                .allowed_regions
                .as_ref()
                .map(|r| r.iter().map(|&i| region(i)).collect()),
            deadline: None,
            retries: 2,
        };
        let def = suanwang_core::spec::validate_job(&spec, &state.topology())
            .map_err(|e| anyhow::anyhow!("class {}: {e}", class.id))?;
        jobs.push(NewJob {
            id: format!("job_{k:07}"),
            tenant: tenant.id.clone(),
            name: spec.name.clone(),
            spec: serde_json::to_string(&spec)?,
            tasks: def.tasks,
            units: def.units,
            retries: def.retries,
            kind: def.kind,
            created_at_ms: at_ms,
            idem: None,
            audit: audit("job.submit"),
        });
    }
    for chunk in jobs.chunks(1_000) {
        store.submit_batch(chunk).await?;
    }
    say(format!(
        "{{\"bench\":\"round-setup\",\"db\":\"{}\",\"sites\":{},\"pools\":{},\"jobs\":{},\"tasks\":{tasks}}}",
        store.backend(),
        sites.len(),
        problem.pools.len(),
        jobs.len()
    ));
    anyhow::ensure!(
        store.try_lead().await?,
        "this process must lead to run a round"
    );
    let mut memory = suanwang_server::scheduler::Memory::default();
    // Run 0 is the measured round (every task waiting, all of it to place);
    // later runs are steady-state rounds with nothing new to place.
    let mut first = None;
    for run in 0..args.repeat.max(1) {
        let stats = suanwang_server::scheduler::round_once(&state, &mut memory).await?;
        first.get_or_insert(stats.seconds);
        say(format!(
            "{{\"bench\":\"round\",\"db\":\"{}\",\"run\":{run},\"jobs\":{},\"pools\":{},\"placed\":{},\"seconds\":{:.3},\"read_s\":{:.3},\"solve_s\":{:.3},\"write_s\":{:.3}}}",
            store.backend(),
            stats.jobs,
            stats.pools,
            stats.tasks_placed,
            stats.seconds,
            stats.read_seconds,
            stats.solve_seconds,
            stats.write_seconds
        ));
    }
    say(format!(
        "{{\"bench\":\"round-result\",\"db\":\"{}\",\"seconds\":{:.3}}}",
        store.backend(),
        first.unwrap_or(0.0)
    ));
    if args.usage_per_task > 0 {
        let site_ids: Vec<String> = (0..sites.len())
            .map(|index| format!("site_{index:05}"))
            .collect();
        rate_usage(&store, &site_ids, args.usage_per_task).await?;
    }
    Ok(exit::OK)
}

/// Reports `per_task` usage records of every placed task, site by site,
/// 10,000 records per report, and prints how fast they were stored and
/// rated (one bill line each, `core::bill::rate`).
async fn rate_usage(
    store: &std::sync::Arc<dyn suanwang_store::Store>,
    site_ids: &[String],
    per_task: u32,
) -> anyhow::Result<()> {
    const REPORT_RECORDS: usize = 10_000;
    let mut records = Vec::new();
    for site in site_ids {
        let (_, assigned) = store.assignments(site).await?;
        for task in assigned {
            for seq in 0..per_task {
                records.push((
                    site.clone(),
                    suanwang_store::UsageIn {
                        job: task.job.clone(),
                        task: task.task,
                        attempt: task.attempt,
                        seq,
                        pool: task.pool.clone(),
                        units: task.units,
                        wall_ms: 60_000 + u64::from(seq),
                        device_model: String::new(),
                        scu_micro_hours: 0,
                        scu_rated: false,
                        catalogue_version: "bench".into(),
                        energy_wh: 1,
                        co2_g: 1,
                    },
                ));
            }
        }
    }
    // The rating rule alone, in memory: every record at a price, each job's
    // carry moved on.
    let started = std::time::Instant::now();
    let mut carry: std::collections::HashMap<&str, suanwang_core::bill::rate::Carry> =
        std::collections::HashMap::new();
    let mut billed = 0i64;
    for (_, record) in &records {
        let carry = carry.entry(record.job.as_str()).or_default();
        let (line, after) = suanwang_core::bill::rate::record(
            &suanwang_core::bill::rate::Record {
                units: record.units,
                wall_ms: record.wall_ms,
                seq: record.seq,
                price: suanwang_core::price::AttemptPrice {
                    price_micro_yuan_per_unit_hour: 350_000,
                    transfer_micro_yuan_per_gb: 30_000,
                    bid_micro_yuan_per_unit_hour: 400_000,
                    data_mb: 1_000,
                },
            },
            *carry,
        );
        *carry = after;
        billed += line.compute_micro + line.transfer_micro;
    }
    let core_seconds = started.elapsed().as_secs_f64();
    say(format!(
        "{{\"bench\":\"rate-core\",\"records\":{},\"seconds\":{core_seconds:.4},\"records_per_s\":{:.0},\"billed_micro\":{billed}}}",
        records.len(),
        records.len() as f64 / core_seconds.max(1e-9)
    ));
    // Each attempt's records claim `per_task` minutes and a little of wall
    // time in all: the reports are made as if that much time had passed
    // since the round placed them (the machine checks the window).
    let later_ms = i64::from(per_task) * 61_000;
    let started = std::time::Instant::now();
    let mut accepted = 0u64;
    let mut start = 0;
    while start < records.len() {
        let site = records[start].0.clone();
        let end = records[start..]
            .iter()
            .position(|(s, _)| *s != site)
            .map_or(records.len(), |offset| start + offset)
            .min(start + REPORT_RECORDS);
        let batch: Vec<suanwang_store::UsageIn> =
            records[start..end].iter().map(|(_, r)| r.clone()).collect();
        let (_, outcomes) = store
            .report(&site, &[], &batch, suanwang_server::now_ms() + later_ms)
            .await?;
        accepted += outcomes
            .iter()
            .filter(|o| **o == suanwang_store::ItemOutcome::Accepted)
            .count() as u64;
        start = end;
    }
    let seconds = started.elapsed().as_secs_f64();
    let totals = store
        .bill_totals(&suanwang_store::BillFilter::default())
        .await?;
    anyhow::ensure!(totals.lines == accepted, "one bill line per stored record");
    say(format!(
        "{{\"bench\":\"rate\",\"db\":\"{}\",\"records\":{},\"accepted\":{accepted},\"lines\":{},\"seconds\":{seconds:.3},\"records_per_s\":{:.0}}}",
        store.backend(),
        records.len(),
        totals.lines,
        accepted as f64 / seconds.max(1e-9)
    ));
    Ok(())
}

/// `bill show` for one job of `--tasks` tasks: one site, one pool with
/// room for every job, one round placing them all, `--usage-per-task`
/// records per task rated through `Store::report`; then the store reads of
/// `GET /v1/bills?job=` (the job's row, the first page of lines, the
/// totals), as the operator and as the tenant, and every page as
/// `suanwang bill show` fetches them.
async fn bill(args: BillArgs) -> anyhow::Result<u8> {
    use suanwang_store::{BillCursor, BillFilter};
    crate::serve::init_tracing();
    anyhow::ensure!(
        args.tasks > 0 && args.jobs > 0,
        "--tasks and --jobs must be positive"
    );
    std::fs::create_dir_all(&args.work_dir)?;
    let database = if args.db == "sqlite" {
        let path = args
            .work_dir
            .join(format!("bill-{}.db", std::process::id()));
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
        Database::Sqlite(path)
    } else {
        Database::parse(Some(&args.db), &args.work_dir)?
    };
    let opened =
        suanwang_server::open_store(&database, suanwang_core::bill::MoneyConfig::FREE).await?;
    let store = opened.store.clone();
    let state = suanwang_server::state(store.clone(), Settings::default()).await?;
    let at_ms = suanwang_server::now_ms();
    let audit = |action: &str| Audit {
        at_ms,
        principal: "bench".into(),
        action: action.into(),
        target: String::new(),
        detail: String::new(),
    };
    for (id, role) in [("pro_bill", Role::Provider), ("ten_bill", Role::Tenant)] {
        let principal = PrincipalRow {
            id: id.into(),
            role,
            name: id.into(),
            parent: None,
            created_at_ms: at_ms,
        };
        let (_, hash) = new_token();
        let token = suanwang_store::NewToken {
            id: format!("tok_{id}"),
            principal: id.into(),
            name: "bench".into(),
            hash,
            created_at_ms: at_ms,
        };
        store
            .create_principal(&principal, &token, &audit("create"))
            .await?;
    }
    // The tenant's wallet covers every hold the round makes.
    {
        use suanwang_core::bill::chart;
        use suanwang_store::ledger::{codes, Transfer, TransferId};
        let mut accounts = chart::system_accounts();
        accounts.extend(chart::tenant_accounts("ten_bill"));
        store.create_accounts(&accounts, at_ms).await?;
        let topup = Transfer::new(
            TransferId::new("topup:bill").expect("a plain id"),
            chart::cash(),
            chart::wallet("ten_bill"),
            suanwang_store::ledger::AMOUNT_MICRO_MAX,
            codes::TOPUP,
        );
        let result = store.create_transfers(&[topup], at_ms).await?;
        anyhow::ensure!(
            result[0].is_ok(),
            "the bench tenant's top-up: {:?}",
            result[0]
        );
    }
    let mut spec = hello();
    let site = SiteRow {
        id: "site_bill".into(),
        provider: "pro_bill".into(),
        name: "bill".into(),
        region: spec.origin.clone(),
        lease_expires_at_ms: None,
        healthy: false,
        version: 0,
        agent: Default::default(),
    };
    let (_, hash) = new_token();
    let token = suanwang_store::NewToken {
        id: "tok_site_bill".into(),
        principal: site.id.clone(),
        name: "agent".into(),
        hash,
        created_at_ms: at_ms,
    };
    store.create_site(&site, &token, &audit("site")).await?;
    let pool = PoolSpec {
        name: "cpu".into(),
        kind: suanwang_api::ResourceKind::Cpu,
        family: "x86".into(),
        device_model: String::new(),
        capacity: args.tasks * u64::from(args.jobs),
        price_yuan_per_unit_hour: 0.1,
        power_kw_per_unit: 0.0,
        pue: 1.0,
        grid_kg_co2_per_kwh: 0.0,
    };
    let def = &suanwang_core::spec::validate_pools(std::slice::from_ref(&pool))
        .map_err(|e| anyhow::anyhow!("{e}"))?[0];
    let row = PoolRow {
        id: "pool_bill".into(),
        site: site.id.clone(),
        name: pool.name.clone(),
        spec: serde_json::to_string(&pool)?,
        kind: pool.kind.as_str().to_owned(),
        family: pool.family.clone(),
        capacity: pool.capacity,
        price_micro: def.price_micro_yuan_per_unit_hour,
        used: 0,
    };
    store.put_pools(&site.id, &[row], &audit("pools")).await?;
    store
        .heartbeat(&site.id, at_ms + 3_600_000, &Default::default())
        .await?;
    spec.name = "bill".into();
    spec.tasks = args.tasks;
    let def = suanwang_core::spec::validate_job(&spec, &state.topology())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let jobs: Vec<NewJob> = (0..args.jobs)
        .map(|k| {
            Ok(NewJob {
                id: format!("job_bill_{k:03}"),
                tenant: "ten_bill".into(),
                name: spec.name.clone(),
                spec: serde_json::to_string(&spec)?,
                tasks: def.tasks,
                units: def.units,
                retries: def.retries,
                kind: def.kind,
                created_at_ms: at_ms,
                idem: None,
                audit: audit("job.submit"),
            })
        })
        .collect::<anyhow::Result<_>>()?;
    store.submit_batch(&jobs).await?;
    anyhow::ensure!(
        store.try_lead().await?,
        "this process must lead to run a round"
    );
    let mut memory = suanwang_server::scheduler::Memory::default();
    let stats = suanwang_server::scheduler::round_once(&state, &mut memory).await?;
    anyhow::ensure!(
        stats.tasks_placed == args.tasks * u64::from(args.jobs),
        "the round placed {} of {} tasks",
        stats.tasks_placed,
        args.tasks * u64::from(args.jobs)
    );
    rate_usage(&store, std::slice::from_ref(&site.id), args.usage_per_task).await?;

    let job = jobs[0].id.clone();
    let lines_want = args.tasks * u64::from(args.usage_per_task);
    let median_max = |mut times: Vec<f64>| {
        times.sort_by(f64::total_cmp);
        (times[times.len() / 2], times[times.len() - 1])
    };
    for (who, tenant) in [("operator", None), ("tenant", Some("ten_bill".to_owned()))] {
        let filter = BillFilter {
            tenant,
            job: Some(job.clone()),
            rated_ms: None,
        };
        // The route: the job's row (who may see it), the first page, the totals.
        let (mut page_ms, mut lines_ms, mut totals_ms) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..args.repeat.max(1) {
            let started = Instant::now();
            store.job(&job).await?.context("the bench job")?;
            let at = Instant::now();
            let rows = store
                .bill_lines(
                    &filter,
                    None,
                    suanwang_server::routes::bills::PAGE_LINES_DEFAULT,
                )
                .await?;
            let lines_done = at.elapsed();
            let at = Instant::now();
            let totals = store.bill_totals(&filter).await?;
            totals_ms.push(at.elapsed().as_secs_f64() * 1e3);
            lines_ms.push(lines_done.as_secs_f64() * 1e3);
            page_ms.push(started.elapsed().as_secs_f64() * 1e3);
            anyhow::ensure!(
                totals.lines == lines_want,
                "{} lines of {lines_want}",
                totals.lines
            );
            anyhow::ensure!(!rows.is_empty(), "a first page");
        }
        // `suanwang bill show`: every page, each with the totals.
        let started = Instant::now();
        let mut after: Option<BillCursor> = None;
        let mut fetched = 0u64;
        let mut pages = 0u32;
        loop {
            let limit = suanwang_server::routes::bills::PAGE_LINES_DEFAULT;
            store.job(&job).await?.context("the bench job")?;
            let rows = store.bill_lines(&filter, after.as_ref(), limit).await?;
            store.bill_totals(&filter).await?;
            fetched += rows.len() as u64;
            pages += 1;
            if rows.len() < limit as usize {
                break;
            }
            after = rows.last().map(|row| row.key.clone());
        }
        let all_ms = started.elapsed().as_secs_f64() * 1e3;
        anyhow::ensure!(
            fetched == lines_want,
            "{fetched} lines paged of {lines_want}"
        );
        let (page, page_max) = median_max(page_ms);
        let (lines, _) = median_max(lines_ms);
        let (totals, _) = median_max(totals_ms);
        say(format!(
            "{{\"bench\":\"bill\",\"db\":\"{}\",\"as\":\"{who}\",\"job_tasks\":{},\"job_lines\":{lines_want},\"all_lines\":{},\"first_page_ms\":{page:.1},\"first_page_ms_max\":{page_max:.1},\"lines_ms\":{lines:.1},\"totals_ms\":{totals:.1},\"pages\":{pages},\"all_pages_ms\":{all_ms:.0}}}",
            store.backend(),
            args.tasks,
            lines_want * u64::from(args.jobs),
        ));
    }
    Ok(exit::OK)
}

/// Server and one agent in this process, on a fresh SQLite file; one job of
/// `--tasks` tasks running `true` on a pool with room for all of them. The
/// clock runs from the submit to the job's success, so it covers placing,
/// starting, reaping, reporting and the server's bookkeeping.
async fn agent(args: AgentBenchArgs) -> anyhow::Result<u8> {
    anyhow::ensure!((1..=100_000).contains(&args.tasks), "--tasks: 1 to 100000");
    let dir = args.work_dir.join(format!("agent-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let opened = suanwang_server::open_store(
        &Database::Sqlite(dir.join("suanwang.db")),
        suanwang_core::bill::MoneyConfig::FREE,
    )
    .await?;
    let state = suanwang_server::state(opened.store.clone(), Settings::default()).await?;
    let (operator, _) = new_token();
    suanwang_server::bootstrap_operator(&state, Some(&operator)).await?;
    let running = suanwang_server::start(state, "127.0.0.1:0".parse()?).await?;
    let url = format!("http://{}", running.addr);
    let http = reqwest::Client::new();
    let post = |path: String, token: String, body: serde_json::Value| {
        let http = http.clone();
        let url = url.clone();
        async move {
            let response = http
                .post(format!("{url}{path}"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await?;
            let status = response.status();
            let text = response.text().await?;
            anyhow::ensure!(status.is_success(), "{path}: {status}: {text}");
            Ok::<serde_json::Value, anyhow::Error>(serde_json::from_str(&text)?)
        }
    };
    let tenant = post(
        "/v1/tenants".into(),
        operator.0.clone(),
        serde_json::json!({"name": "bench"}),
    )
    .await?;
    let provider = post(
        "/v1/providers".into(),
        operator.0.clone(),
        serde_json::json!({"name": "bench"}),
    )
    .await?;
    let site = post(
        "/v1/sites".into(),
        provider["token"].as_str().context("token")?.to_owned(),
        serde_json::json!({"name": "bench", "region": "guian"}),
    )
    .await?;
    let config = suanwang_agent::SiteConfig {
        executor: "process".into(),
        state_dir: None,
        cpus: None,
        cgroup: Default::default(),
        stop_grace_s: 1,
        usage_interval_s: 60,
        outbox_max: suanwang_agent::config::OUTBOX_MAX_DEFAULT,
        pools: vec![PoolSpec {
            name: "cpu".into(),
            kind: suanwang_api::ResourceKind::Cpu,
            family: "x86".into(),
            device_model: String::new(),
            capacity: args.tasks,
            price_yuan_per_unit_hour: 0.1,
            power_kw_per_unit: 0.0,
            pue: 1.0,
            grid_kg_co2_per_kwh: 0.0,
        }],
    };
    // The executor a real agent gets from this site file: cgroups where the
    // hierarchy is writable, as `suanwang agent` would run them.
    let executor = crate::agent_cmd::executor(&config, &dir.join("site"))?;
    let options = suanwang_agent::AgentOptions {
        server: url.clone(),
        token: site["token"].as_str().context("token")?.to_owned(),
        config,
        state_dir: dir.join("site"),
        stop_tasks_on_exit: true,
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let agent = tokio::spawn(suanwang_agent::run(options, executor, stopped));
    // Wait until the site is registered and healthy.
    let operator_token = operator.0.clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let sites: Vec<suanwang_api::SiteView> = http
            .get(format!("{url}/v1/sites"))
            .bearer_auth(&operator_token)
            .send()
            .await?
            .json()
            .await?;
        if sites.iter().any(|s| s.healthy && !s.pools.is_empty()) {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "the agent did not register");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut spec = hello();
    spec.name = "many-true".into();
    spec.tasks = args.tasks;
    let tenant_token = tenant["token"].as_str().context("token")?.to_owned();
    let started = Instant::now();
    let job = post(
        "/v1/jobs".into(),
        tenant_token.clone(),
        serde_json::to_value(&spec)?,
    )
    .await?;
    let id = job["id"].as_str().context("id")?.to_owned();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let job: suanwang_api::JobView = http
            .get(format!("{url}/v1/jobs/{id}"))
            .bearer_auth(&tenant_token)
            .send()
            .await?
            .json()
            .await?;
        if job.state == suanwang_api::JobState::Succeeded {
            break;
        }
        anyhow::ensure!(!job.state.is_terminal(), "the job {}", job.state.as_str());
        anyhow::ensure!(Instant::now() < deadline, "the job did not finish in 600 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let mut usage: Vec<suanwang_api::UsageView> = Vec::new();
    let mut path = format!("{url}/v1/jobs/{id}/usage");
    loop {
        let page: suanwang_api::UsagePage = http
            .get(&path)
            .bearer_auth(&tenant_token)
            .send()
            .await?
            .json()
            .await?;
        usage.extend(page.usage);
        match page.next {
            Some(next) => path = format!("{url}/v1/jobs/{id}/usage?after={next}"),
            None => break,
        }
    }
    anyhow::ensure!(
        usage.len() as u64 == args.tasks,
        "{} usage records for {} tasks",
        usage.len(),
        args.tasks
    );
    say(format!(
        "{{\"bench\":\"agent\",\"executor\":\"process\",\"tasks\":{},\"seconds\":{seconds:.3},\"completions_per_second\":{:.0}}}",
        args.tasks,
        args.tasks as f64 / seconds
    ));
    let _ = stop.send(true);
    let _ = agent.await;
    running.stop().await;
    drop(opened);
    Ok(exit::OK)
}
