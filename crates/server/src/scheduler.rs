//! The scheduling loop. On the elected leader only: on every wake-up (a
//! submit, a completion, a site coming back) and at least every
//! `round_interval`, it lapses expired leases, reads the waiting tasks and
//! free capacity, solves one round with the placement engine, and writes
//! every placement and explanation in one transaction.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use suanwang_api::{JobSpec, PoolSpec};
use suanwang_core::bill::budget;
use suanwang_core::machine::round::{offered, Placed};
use suanwang_core::price::{self, PoolPrice};
use suanwang_core::round::{self, RoundJob, RoundPool};
use suanwang_core::spec::{validate_job, JobDef};
use suanwang_core::topology::Topology;
use suanwang_place::Kind;
use suanwang_store::{MissedDeadline, PoolPriced, RoundHold, RoundInput, RoundWrite};
use tokio::sync::watch;

use crate::now_ms;
use crate::state::AppState;

/// How often a follower asks for the leadership: a dead leader is replaced
/// within this plus the database's notice of the closed connection.
pub const LEAD_RETRY: Duration = Duration::from_secs(2);
/// The shortest pause between two rounds.
pub const ROUND_GAP_MIN: Duration = Duration::from_millis(50);

/// Parsed job specs by job id, kept across rounds so a waiting job is parsed
/// once. Entries of jobs no longer waiting are dropped every round.
pub type SpecCache = HashMap<String, Result<Arc<JobDef>, String>>;

#[derive(Debug, Default)]
pub struct Prepared {
    pub pools: Vec<RoundPool>,
    /// Each pool's newest recorded price, by index into `pools`.
    pub last_prices: Vec<Option<PoolPrice>>,
    pub jobs: Vec<RoundJob>,
    /// Jobs that wait for a reason outside the engine: (job, why).
    pub held: Vec<(String, String)>,
    /// Jobs whose waiting tasks can no longer meet their deadline at the
    /// round's time: not offered; their waiting tasks fail.
    pub missed: Vec<MissedDeadline>,
    /// What each tenant's wallet can hold (`RoundInput::wallets`).
    pub wallets: std::collections::BTreeMap<String, i64>,
}

/// Turns the store's rows into the round's inputs, at `now_ms`.
pub fn prepare(
    topology: &Topology,
    input: RoundInput,
    cache: &mut SpecCache,
    now_ms: i64,
) -> Prepared {
    let mut prepared = Prepared {
        wallets: input.wallets,
        ..Prepared::default()
    };
    for stored in input.pools {
        let (pool, region, last_price) = (stored.pool, stored.region, stored.last_price);
        let Some(region) = topology.region(&region) else {
            tracing::warn!(pool = %pool.id, %region, "pool's region is not in the topology; skipped");
            continue;
        };
        // What the round takes from a pool's stored spec has no default: a
        // spec that does not read leaves the pool out (logged), never in at
        // made-up power, PUE and grid figures.
        let Some(kind) = Kind::parse(&pool.kind) else {
            tracing::warn!(pool = %pool.id, kind = %pool.kind, "pool's stored kind is not cpu, gpu or hpc; skipped");
            continue;
        };
        let spec = match serde_json::from_str::<PoolSpec>(&pool.spec) {
            Ok(spec) => spec,
            Err(error) => {
                tracing::warn!(pool = %pool.id, %error, "pool's stored spec does not parse; skipped");
                continue;
            }
        };
        let (power, pue, grid) = (spec.power_kw_per_unit, spec.pue, spec.grid_kg_co2_per_kwh);
        // The store reads each round pool's site name with the pool.
        let Some(site_name) = input.site_names.get(&pool.site).cloned() else {
            tracing::warn!(pool = %pool.id, site = %pool.site, "pool's site has no name in the round input; skipped");
            continue;
        };
        prepared.pools.push(RoundPool {
            id: pool.id,
            site: pool.site,
            site_name,
            name: pool.name,
            region,
            kind,
            family: pool.family,
            free_units: pool.capacity.saturating_sub(pool.used),
            price_micro_yuan_per_unit_hour: pool.price_micro,
            power_kw_per_unit: power,
            pue,
            grid_kg_co2_per_kwh: grid,
        });
        prepared.last_prices.push(last_price);
    }
    let mut next_cache = SpecCache::with_capacity(input.jobs.len());
    for job in input.jobs {
        let def = match cache.remove(&job.id) {
            Some(def) => def,
            None => serde_json::from_str::<JobSpec>(&job.spec)
                .map_err(|e| format!("stored spec unreadable: {e}"))
                .and_then(|spec| {
                    validate_job(&spec, topology).map_err(|e| format!("spec no longer valid: {e}"))
                })
                .map(Arc::new),
        };
        match &def {
            Err(why) => prepared.held.push((job.id.clone(), why.clone())),
            Ok(def) if !def.deadline_at(now_ms).may_start() => {
                prepared.missed.push(MissedDeadline {
                    job: job.id.clone(),
                    deadline_ms: def.deadline_ms.expect("a missed deadline exists"),
                });
            }
            // A gang runs whole or not at all (`machine::round::offered`).
            Ok(def) if offered(def.kind, job.pending, job.live) == 0 => {
                prepared.held.push((job.id.clone(), format!("gang: waiting for {} of its tasks to finish before all {} start again together", job.live - job.pending, job.live)));
            }
            Ok(def) => prepared.jobs.push(RoundJob {
                id: job.id.clone(),
                tenant: job.tenant.clone(),
                def: def.clone(),
                pending: offered(def.kind, job.pending, job.live),
            }),
        }
        next_cache.insert(job.id, def);
    }
    *cache = next_cache;
    prepared
}

#[derive(Debug, Default)]
pub struct Memory {
    specs: SpecCache,
    /// The last explanation written per waiting job, so unchanged ones are
    /// not rewritten every round.
    whys: HashMap<String, String>,
    topology_text: Option<String>,
}

#[derive(Debug, Clone, Copy)]
pub struct RoundStats {
    pub jobs: usize,
    pub pools: usize,
    pub tasks_placed: u64,
    pub seconds: f64,
    /// Reading the input, solving (with explanations), and persisting.
    pub read_seconds: f64,
    pub solve_seconds: f64,
    pub write_seconds: f64,
}

/// Takes the stored topology when another server replaced it: the leader
/// before every round, a follower every `LEAD_RETRY`, so every server
/// validates submissions and sites against the operator's latest topology.
async fn refresh_topology(state: &Arc<AppState>, memory: &mut Memory) -> anyhow::Result<()> {
    if let Some(text) = state.store.topology().await? {
        if memory.topology_text.as_deref() != Some(&text) {
            let spec = serde_json::from_str(&text)?;
            let topology = Topology::validate(&spec)?;
            *state.topology.write().expect("topology lock") = Arc::new(topology);
            memory.specs.clear();
            memory.topology_text = Some(text);
        }
    }
    Ok(())
}

/// One round, start to finish. Public for the benchmark.
pub async fn round_once(state: &Arc<AppState>, memory: &mut Memory) -> anyhow::Result<RoundStats> {
    let started = Instant::now();
    refresh_topology(state, memory).await?;
    let topology = state.topology();
    let input = state.store.round_input().await?;
    let now = now_ms();
    let prepared = prepare(&topology, input, &mut memory.specs, now);
    let Prepared {
        pools,
        last_prices,
        jobs,
        held,
        missed,
        wallets,
    } = prepared;
    if !missed.is_empty() {
        // Not offered this round either way; a failure here is tried again
        // next round, and must not hold up the placement of other jobs.
        match state.store.fail_missed_deadlines(&missed, now).await {
            Ok(failed) => {
                tracing::info!(
                    jobs = missed.len(),
                    tasks = failed,
                    "deadlines missed; waiting tasks failed"
                );
                state.changed();
            }
            Err(error) => tracing::warn!(%error, "failing tasks past their deadline failed"),
        }
    }
    let read_seconds = started.elapsed().as_secs_f64();
    let (topology, pools, jobs, plan, cut) = tokio::task::spawn_blocking(move || {
        let (_, mut plan) = round::plan(&topology, &pools, &jobs);
        // A tenant's placements hold no more than its wallet has.
        let cut = budget::trim(&mut plan, &jobs, &wallets);
        (topology, pools, jobs, plan, cut)
    })
    .await?;
    let mut write = RoundWrite {
        at_ms: now_ms(),
        ..RoundWrite::default()
    };
    for (index, attempts, amount_micro) in budget::holds(&plan, &jobs) {
        let job = &jobs[index];
        write.holds.push(RoundHold {
            job: job.id.clone(),
            tenant: job.tenant.clone(),
            data_region: topology.regions[job.def.data_region].id.clone(),
            attempts,
            amount_micro,
        });
    }
    for placement in &plan.placements {
        let pool = &pools[placement.pool];
        write.placements.push(Placed {
            job: jobs[placement.job].id.clone(),
            pool: pool.id.clone(),
            site: pool.site.clone(),
            count: placement.count,
            price: placement.price,
        });
    }
    for index in price::changed(&last_prices, &plan.prices) {
        write.prices.push(PoolPriced {
            pool: pools[index].id.clone(),
            price: plan.prices[index],
        });
    }
    // The engine's reasons, and the wallet's for the jobs it cut back.
    let mut engine: std::collections::BTreeMap<usize, String> = plan.waiting.into_iter().collect();
    for (index, why) in cut {
        engine
            .entry(index)
            .and_modify(|before| *before = format!("{why}; {before}"))
            .or_insert(why);
    }
    let mut whys: HashMap<String, String> = HashMap::with_capacity(engine.len() + held.len());
    for (job, why) in engine
        .into_iter()
        .map(|(i, why)| (jobs[i].id.clone(), why))
        .chain(held)
    {
        if memory.whys.get(&job) != Some(&why) {
            write.whys.push((job.clone(), Some(why.clone())));
        }
        whys.insert(job, why);
    }
    write.whys.sort();
    memory.whys = whys;
    let solve_seconds = started.elapsed().as_secs_f64() - read_seconds;
    state.store.apply_round(&write).await?;
    if !write.placements.is_empty() {
        state.changed();
    }
    let stats = RoundStats {
        jobs: jobs.len(),
        pools: pools.len(),
        tasks_placed: plan.tasks_placed,
        seconds: started.elapsed().as_secs_f64(),
        read_seconds,
        solve_seconds,
        write_seconds: 0.0,
    };
    let stats = RoundStats {
        write_seconds: stats.seconds - read_seconds - solve_seconds,
        ..stats
    };
    metrics::histogram!("suanwang_round_seconds").record(stats.seconds);
    metrics::counter!("suanwang_placed_tasks_total").increment(stats.tasks_placed);
    metrics::gauge!("suanwang_round_waiting_jobs").set(stats.jobs as f64);
    Ok(stats)
}

/// The loop. Ends when `shutdown` turns true.
pub async fn run(state: Arc<AppState>, mut shutdown: watch::Receiver<bool>) {
    let mut memory = Memory::default();
    let mut leading = false;
    loop {
        if *shutdown.borrow() {
            break;
        }
        let lead = state.store.try_lead().await;
        match lead {
            Ok(true) => {
                if !leading {
                    tracing::info!("this server now runs the scheduling loop");
                    // Sites are not to blame for the time no leader watched.
                    let ttl =
                        i64::try_from(state.settings.lease_ttl.as_millis()).unwrap_or(i64::MAX / 4);
                    if let Err(error) = state.store.extend_leases(now_ms() + ttl).await {
                        tracing::warn!(%error, "could not extend leases");
                        continue_after(&mut shutdown, LEAD_RETRY).await;
                        continue;
                    }
                    memory = Memory::default();
                    leading = true;
                }
            }
            Ok(false) | Err(_) => {
                if let Err(error) = lead {
                    tracing::warn!(%error, "leadership check failed");
                }
                if leading {
                    tracing::warn!("this server no longer runs the scheduling loop");
                }
                leading = false;
                if let Err(error) = refresh_topology(&state, &mut memory).await {
                    tracing::warn!(%error, "could not refresh the topology");
                }
                continue_after(&mut shutdown, LEAD_RETRY).await;
                continue;
            }
        }
        match state.store.expire_leases(now_ms()).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::warn!(
                    tasks = n,
                    "site leases lapsed; their tasks are lost and placed again"
                );
                state.changed();
            }
            Err(error) => tracing::warn!(%error, "lease expiry failed"),
        }
        let mut last_round = Duration::ZERO;
        match round_once(&state, &mut memory).await {
            Ok(stats) => {
                last_round = Duration::from_secs_f64(stats.seconds);
                if stats.tasks_placed > 0 {
                    tracing::info!(
                        jobs = stats.jobs,
                        pools = stats.pools,
                        placed = stats.tasks_placed,
                        seconds = stats.seconds,
                        "round"
                    );
                }
            }
            Err(error) => tracing::warn!(%error, "scheduling round failed; retrying"),
        }
        // Under a burst of submissions every request wakes the loop; a pause
        // after each round (twice its length, at least ROUND_GAP_MIN) keeps
        // rounds to at most a third of a core and lets wake-ups coalesce.
        let gap = (last_round * 2).max(ROUND_GAP_MIN);
        tokio::select! {
            _ = tokio::time::sleep(gap) => {}
            _ = shutdown.changed() => {}
        }
        tokio::select! {
            _ = state.wake.notified() => {}
            _ = tokio::time::sleep(state.settings.round_interval) => {}
            _ = shutdown.changed() => {}
        }
    }
}

async fn continue_after(shutdown: &mut watch::Receiver<bool>, pause: Duration) {
    tokio::select! {
        _ = tokio::time::sleep(pause) => {}
        _ = shutdown.changed() => {}
    }
}

#[cfg(test)]
mod tests {
    use suanwang_store::WaitingJob;

    use super::*;

    const T0: i64 = 1_796_083_200_000; // 2026-12-01T00:00:00Z

    fn waiting(
        id: &str,
        kind: &str,
        deadline: Option<&str>,
        pending: u64,
        live: u64,
    ) -> WaitingJob {
        let spec = serde_json::json!({
            "name": id, "kind": kind, "tasks": live, "hours": 1.0,
            "bid_yuan_per_unit_hour": 1.0, "origin": "shanghai",
            "deadline": deadline,
            "resources": { "kind": "cpu", "units": 1 },
            "run": { "command": "true" },
        });
        WaitingJob {
            id: id.into(),
            tenant: "t".into(),
            spec: spec.to_string(),
            pending,
            live,
        }
    }

    /// A pool of site `site_a` in Shanghai, with this stored spec.
    fn stored_pool(id: &str, spec: &str) -> suanwang_store::RoundPoolRow {
        suanwang_store::RoundPoolRow {
            pool: suanwang_store::PoolRow {
                id: id.into(),
                site: "site_a".into(),
                name: id.into(),
                spec: spec.into(),
                kind: "cpu".into(),
                family: "x86".into(),
                capacity: 8,
                price_micro: 1_000_000,
                used: 2,
            },
            region: "shanghai".into(),
            last_price: None,
        }
    }

    #[test]
    fn a_pool_whose_stored_spec_does_not_parse_is_left_out() {
        let spec = |name: &str| {
            serde_json::json!({
                "name": name, "kind": "cpu", "family": "x86", "capacity": 8,
                "price_yuan_per_unit_hour": 1.0, "power_kw_per_unit": 0.3,
                "pue": 1.2, "grid_kg_co2_per_kwh": 0.5,
            })
            .to_string()
        };
        let topology = Topology::national();
        let input = RoundInput {
            pools: vec![
                stored_pool("pool_a", &spec("pool_a")),
                stored_pool("pool_bad", "{\"name\": \"pool_bad\", \"kind\": \"tpu\"}"),
                stored_pool("pool_cut", "{\"name\": "),
                stored_pool("pool_c", &spec("pool_c")),
            ],
            site_names: [("site_a".to_owned(), "east".to_owned())].into(),
            ..RoundInput::default()
        };
        let prepared = prepare(&topology, input, &mut SpecCache::new(), T0);
        let kept: Vec<&str> = prepared.pools.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(kept, ["pool_a", "pool_c"]);
        for pool in &prepared.pools {
            // The figures of the spec, not defaults.
            let figures = [pool.power_kw_per_unit, pool.pue, pool.grid_kg_co2_per_kwh];
            assert_eq!(figures.map(f64::to_bits), [0.3, 1.2, 0.5].map(f64::to_bits));
            assert_eq!(pool.free_units, 6);
            assert_eq!(pool.site_name, "east");
        }
    }

    #[test]
    fn jobs_past_their_deadline_are_not_offered_but_failed() {
        let topology = Topology::national();
        let input = RoundInput {
            jobs: vec![
                waiting("open", "batch", Some("2026-12-01T01:00:00Z"), 2, 2),
                waiting("late", "batch", Some("2026-12-01T00:59:59Z"), 2, 3),
                waiting("none", "batch", None, 1, 1),
                // A held gang still fails: it cannot run whole in time.
                waiting("gang", "gang", Some("2026-12-01T00:30:00+00:00"), 1, 3),
            ],
            ..RoundInput::default()
        };
        let prepared = prepare(&topology, input, &mut SpecCache::new(), T0);
        let offered: Vec<&str> = prepared.jobs.iter().map(|j| j.id.as_str()).collect();
        assert_eq!(offered, ["open", "none"]);
        assert_eq!(
            prepared.missed,
            [
                MissedDeadline {
                    job: "late".into(),
                    deadline_ms: T0 + 3_599_000
                },
                MissedDeadline {
                    job: "gang".into(),
                    deadline_ms: T0 + 1_800_000
                },
            ]
        );
        assert!(prepared.held.is_empty(), "{:?}", prepared.held);
    }
}
