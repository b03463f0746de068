//! `POST /v1/jobs/quote`: where a tenant's job would run now and what it
//! would cost. It solves the current round with the job added — the same
//! input the scheduler reads, the same engine, pricing rule and wallet
//! budget (`core::bill::budget`) — and writes nothing.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use suanwang_api::{JobSpec, Quote, QuoteLine};
use suanwang_core::bill::budget;
use suanwang_core::price::{self, AttemptPrice};
use suanwang_core::round::{self, RoundJob};
use suanwang_core::spec::{check_submission, validate_job};
use suanwang_store::Role;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::json::JsonBody;
use crate::now_ms;
use crate::openapi::{Authn, BadBody, Hidden};
use crate::scheduler::{prepare, SpecCache};
use crate::state::AppState;

/// The quoted job's class id in the round: no stored job has it (theirs
/// are `job_…`).
const QUOTED: &str = "quote";

#[utoipa::path(post, path = "/v1/jobs/quote", request_body = JobSpec, responses((status = 200, body = Quote), Authn, Hidden, BadBody), tag = "jobs")]
pub async fn quote(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    body: JsonBody<JobSpec>,
) -> ApiResult<Json<Quote>> {
    caller.require(Role::Tenant)?;
    let spec = body.read().await?.value;
    let topology = state.topology();
    let def = validate_job(&spec, &topology)?;
    let now = now_ms();
    check_submission(&def, now)?;
    let input = state.store.round_input().await?;
    let mut cache = SpecCache::new();
    let prepared = prepare(&topology, input, &mut cache, now);
    let (pools, mut jobs, mut wallets) = (prepared.pools, prepared.jobs, prepared.wallets);
    // The round's input has the wallets of tenants with waiting jobs; the
    // caller may have none waiting.
    let own = state
        .store
        .account(&suanwang_core::bill::chart::wallet(caller.id()))
        .await?;
    wallets.insert(
        caller.id().to_owned(),
        suanwang_core::bill::spare_micro(own.as_ref()),
    );
    let (units, hours_ms, tasks) = (def.units, price::hours_ms(def.hours), def.tasks);
    let quoted = jobs.len();
    jobs.push(RoundJob {
        id: QUOTED.to_owned(),
        tenant: caller.id().to_owned(),
        def: Arc::new(def),
        pending: tasks,
    });
    let plan_topology = topology.clone();
    let (pools, plan, cut) = tokio::task::spawn_blocking(move || {
        let (_, mut plan) = round::plan(&plan_topology, &pools, &jobs);
        // The round's budget too: what the wallets can hold.
        let cut = budget::trim(&mut plan, &jobs, &wallets);
        (pools, plan, cut)
    })
    .await
    .map_err(ApiError::internal)?;
    let mut lines = Vec::new();
    for placement in plan.placements.iter().filter(|p| p.job == quoted) {
        let pool = &pools[placement.pool];
        let one = |price: &AttemptPrice| price::estimate_micro(units, hours_ms, price);
        let per_task_compute = price::compute_micro(
            units,
            hours_ms,
            placement.price.price_micro_yuan_per_unit_hour,
        );
        let compute = checked_times(per_task_compute, placement.count)?;
        let total = checked_times(one(&placement.price), placement.count)?;
        lines.push(QuoteLine {
            site: pool.site.clone(),
            site_name: pool.site_name.clone(),
            pool: pool.id.clone(),
            pool_name: pool.name.clone(),
            region: topology.regions[pool.region].id.clone(),
            tasks: placement.count,
            price_micro_yuan_per_unit_hour: placement.price.price_micro_yuan_per_unit_hour,
            transfer_micro_yuan_per_gb: placement.price.transfer_micro_yuan_per_gb,
            compute_micro_yuan: compute,
            transfer_micro_yuan: total - compute,
            total_micro_yuan: total,
        });
    }
    let tasks_placed = lines.iter().map(|line| line.tasks).sum();
    let total = lines.iter().try_fold(0i64, |sum, line| {
        sum.checked_add(line.total_micro_yuan)
            .ok_or_else(|| ApiError::internal("quote total overflows"))
    })?;
    let engine = plan
        .waiting
        .into_iter()
        .find(|(job, _)| *job == quoted)
        .map(|(_, why)| why);
    let wallet = cut
        .into_iter()
        .find(|(job, _)| *job == quoted)
        .map(|(_, why)| why);
    let why = match (wallet, engine) {
        (Some(wallet), Some(engine)) => Some(format!("{wallet}; {engine}")),
        (wallet, engine) => wallet.or(engine),
    };
    Ok(Json(Quote {
        tasks,
        tasks_placed,
        lines,
        total_micro_yuan: total,
        why,
    }))
}

fn checked_times(amount: i64, count: u64) -> ApiResult<i64> {
    i64::try_from(count)
        .ok()
        .and_then(|count| amount.checked_mul(count))
        .ok_or_else(|| ApiError::internal("quote amount overflows"))
}
