//! Sites, pools, and the agent protocol: heartbeat a lease, long-poll
//! assignments, report statuses and usage.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use suanwang_api::{
    AssignmentView, Assignments, CreateSite, Heartbeat, JobSpec, Lease, Outcome, PoolSpec,
    PoolView, PutPools, ReportOutcome, Reports, ReportsAnswer, SiteCreated, SiteView, UsageReport,
    HEARTBEAT_OUTBOX_MAX, HEARTBEAT_TEXT_CHARS_MAX,
};
use suanwang_core::bill::rate::{energy, Energy};
use suanwang_core::machine::report::UsageRejection;
use suanwang_core::metering;
use suanwang_core::spec::{resource_kind, validate_pools};
use suanwang_place::Kind;
use suanwang_store::{
    AgentStatus, Audit, ItemOutcome, NewToken, PoolRow, Role, SiteRow, StatusIn, UsageIn,
};

use crate::auth::{new_id, new_token, Caller};
use crate::error::{ApiError, ApiResult};
use crate::json::JsonBody;
use crate::now_ms;
use crate::openapi::{Authn, BadBody, BadQuery, Conflict, Hidden};
use crate::routes::{bad_query, check_path_id, query, IdPath};
use crate::state::AppState;
use suanwang_core::spec::check_name;

/// Items per report: an agent with more sends several.
pub const REPORT_ITEMS_MAX: usize = 10_000;
pub const OUTPUT_TAIL_BYTES_MAX: usize = 16 * 1024;

/// The site, if the caller may act for it: the site itself, its provider,
/// or the operator. Anyone else gets 404.
async fn visible_site(state: &AppState, caller: &Caller, id: &str) -> ApiResult<SiteRow> {
    check_path_id(id)?;
    let site = state
        .store
        .site(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("site {id}")))?;
    let allowed = match caller.role() {
        Role::Operator => true,
        Role::Provider => site.provider == caller.id(),
        Role::Site => site.id == caller.id(),
        Role::Tenant => false,
    };
    if allowed {
        Ok(site)
    } else {
        Err(ApiError::not_found(format!("site {id}")))
    }
}

/// Only the site's own agent speaks the agent protocol.
async fn own_site(state: &AppState, caller: &Caller, id: &str) -> ApiResult<SiteRow> {
    let site = visible_site(state, caller, id).await?;
    if caller.role() != Role::Site {
        return Err(ApiError::not_found(format!("site {id}")));
    }
    Ok(site)
}

async fn site_view(state: &AppState, site: SiteRow) -> ApiResult<SiteView> {
    let pools = state.store.pools(&site.id).await?;
    let pools = pools
        .into_iter()
        .map(|pool| {
            let spec: PoolSpec = serde_json::from_str(&pool.spec).map_err(ApiError::internal)?;
            Ok(PoolView {
                id: pool.id,
                spec,
                used: pool.used,
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(SiteView {
        id: site.id,
        name: site.name,
        region: site.region,
        provider: site.provider,
        healthy: site.healthy,
        lease_expires_at_ms: site.lease_expires_at_ms,
        pools,
        agent_outbox: site.agent.outbox,
        agent_starts_paused: site.agent.starts_paused,
    })
}

#[utoipa::path(post, path = "/v1/sites", request_body = CreateSite, responses((status = 201, body = SiteCreated), Authn, Hidden, BadBody, Conflict), tag = "sites")]
pub async fn create(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    body: JsonBody<CreateSite>,
) -> ApiResult<(StatusCode, Json<SiteCreated>)> {
    caller.require(Role::Provider)?;
    let body = body.read().await?.value;
    check_name("name", &body.name)?;
    state.topology().require_region("region", &body.region)?;
    let now = now_ms();
    let site = SiteRow {
        id: new_id("site_"),
        provider: caller.id().to_owned(),
        name: body.name.clone(),
        region: body.region.clone(),
        lease_expires_at_ms: None,
        healthy: false,
        version: 0,
        agent: Default::default(),
    };
    let (secret, hash) = new_token();
    let token = NewToken {
        id: new_id("tok_"),
        principal: site.id.clone(),
        name: "agent".into(),
        hash,
        created_at_ms: now,
    };
    let audit = Audit {
        at_ms: now,
        principal: caller.id().to_owned(),
        action: "site.create".into(),
        target: site.id.clone(),
        detail: format!("{} in {}", body.name, body.region),
    };
    state.store.create_site(&site, &token, &audit).await?;
    Ok((
        StatusCode::CREATED,
        Json(SiteCreated {
            id: site.id,
            name: site.name,
            region: site.region,
            token: secret.0,
            token_id: token.id,
        }),
    ))
}

#[utoipa::path(get, path = "/v1/sites", responses((status = 200, body = Vec<SiteView>), Authn), tag = "sites")]
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> ApiResult<Json<Vec<SiteView>>> {
    let sites = match caller.role() {
        Role::Operator => state.store.sites(None).await?,
        Role::Provider => state.store.sites(Some(caller.id())).await?,
        Role::Site => state.store.site(caller.id()).await?.into_iter().collect(),
        Role::Tenant => Vec::new(),
    };
    let mut views = Vec::with_capacity(sites.len());
    for site in sites {
        views.push(site_view(&state, site).await?);
    }
    Ok(Json(views))
}

#[utoipa::path(get, path = "/v1/sites/{id}", params(IdPath), responses((status = 200, body = SiteView), Authn, Hidden), tag = "sites")]
pub async fn get(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<SiteView>> {
    let site = visible_site(&state, &caller, &id).await?;
    Ok(Json(site_view(&state, site).await?))
}

#[utoipa::path(put, path = "/v1/sites/{id}/pools", params(IdPath), request_body = PutPools, responses((status = 200, body = SiteView), Authn, Hidden, BadBody, Conflict), tag = "agent")]
pub async fn put_pools(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonBody<PutPools>,
) -> ApiResult<Json<SiteView>> {
    let site = visible_site(&state, &caller, &id).await?;
    if caller.role() == Role::Operator {
        return Err(ApiError::not_found(format!("site {id}")));
    }
    let body = body.read().await?;
    let defs = validate_pools(&body.value.pools)?;
    let rows = body
        .value
        .pools
        .iter()
        .zip(&defs)
        .map(|(spec, def)| {
            Ok(PoolRow {
                id: new_id("pool_"),
                site: site.id.clone(),
                name: def.name.clone(),
                spec: serde_json::to_string(spec).map_err(ApiError::internal)?,
                kind: def.kind.as_str().to_owned(),
                family: def.family.clone(),
                capacity: def.capacity,
                price_micro: def.price_micro_yuan_per_unit_hour,
                used: 0,
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let audit = Audit {
        at_ms: now_ms(),
        principal: caller.id().to_owned(),
        action: "site.pools".into(),
        target: site.id.clone(),
        detail: format!("{} pools", rows.len()),
    };
    state.store.put_pools(&site.id, &rows, &audit).await?;
    state.wake.notify_one();
    Ok(Json(site_view(&state, site).await?))
}

/// What a heartbeat's body says, checked: an empty body says nothing.
fn agent_status(said: Option<Heartbeat>) -> ApiResult<AgentStatus> {
    let Some(said) = said else {
        return Ok(AgentStatus::default());
    };
    if said
        .outbox
        .is_some_and(|outbox| outbox > HEARTBEAT_OUTBOX_MAX)
    {
        return Err(ApiError::invalid(
            "outbox",
            format!("at most {HEARTBEAT_OUTBOX_MAX}"),
        ));
    }
    if let Some(text) = &said.starts_paused {
        if text.is_empty() || text.chars().count() > HEARTBEAT_TEXT_CHARS_MAX {
            return Err(ApiError::invalid(
                "starts_paused",
                format!("1 to {HEARTBEAT_TEXT_CHARS_MAX} characters"),
            ));
        }
    }
    Ok(AgentStatus {
        outbox: said.outbox,
        starts_paused: said.starts_paused,
    })
}

#[utoipa::path(post, path = "/v1/sites/{id}/heartbeat", params(IdPath), request_body(content = Option<Heartbeat>, description = "What the agent says; optional (no body, or `null`, says nothing)."), responses((status = 200, body = Lease), Authn, Hidden, BadBody), tag = "agent")]
pub async fn heartbeat(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonBody<Option<Heartbeat>>,
) -> ApiResult<Json<Lease>> {
    let site = own_site(&state, &caller, &id).await?;
    // No body, or `null`, says nothing.
    let said = body.read_optional().await?.and_then(|body| body.value);
    let agent = agent_status(said)?;
    let ttl = state.settings.lease_ttl;
    let expires_at_ms = now_ms() + i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2);
    if agent.starts_paused.is_some() && site.agent.starts_paused.is_none() {
        tracing::info!(site = %site.id, outbox = ?agent.outbox, "site agent starts no new attempts: {}", agent.starts_paused.as_deref().unwrap_or_default());
    }
    state
        .store
        .heartbeat(&site.id, expires_at_ms, &agent)
        .await?;
    if !site.healthy {
        // A site (back) in service is new capacity.
        state.wake.notify_one();
    }
    Ok(Json(Lease {
        site: site.id,
        expires_at_ms,
        ttl_s: ttl.as_secs(),
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PollQuery {
    /// The version the agent has; the answer waits until it changes.
    #[param(nullable = false)]
    pub version: Option<i64>,
    /// Longest wait, seconds (capped by the server).
    #[param(nullable = false, minimum = 0)]
    pub wait_s: Option<i64>,
}

/// How often a long poll re-reads the version when no local change wakes it
/// (changes made by another server process).
const POLL_TICK: Duration = Duration::from_millis(500);

#[utoipa::path(get, path = "/v1/sites/{id}/assignments", params(IdPath, PollQuery), responses((status = 200, body = Assignments), Authn, Hidden, BadQuery), tag = "agent")]
pub async fn assignments(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Assignments>> {
    let site = own_site(&state, &caller, &id).await?;
    let query: PollQuery = query(raw.as_deref())?;
    let wait_s = match query.wait_s {
        None => 0,
        Some(wait_s) => u64::try_from(wait_s).map_err(|_| bad_query("wait_s", "must be >= 0"))?,
    };
    if let Some(known) = query.version {
        let wait = Duration::from_secs(wait_s).min(state.settings.long_poll_max);
        let deadline = tokio::time::Instant::now() + wait;
        let mut changes = state.changes.subscribe();
        while state.store.site_version(&site.id).await? == known
            && tokio::time::Instant::now() < deadline
        {
            let tick = tokio::time::sleep(
                POLL_TICK.min(deadline.saturating_duration_since(tokio::time::Instant::now())),
            );
            tokio::select! {
                _ = changes.changed() => {}
                _ = tick => {}
            }
        }
    }
    let (version, rows) = state.store.assignments(&site.id).await?;
    let assignments = rows
        .into_iter()
        .map(|row| {
            let spec: JobSpec = serde_json::from_str(&row.spec).map_err(ApiError::internal)?;
            Ok(AssignmentView {
                job: row.job,
                task: row.task,
                attempt: row.attempt,
                pool: row.pool,
                state: row.state.into(),
                units: row.units,
                hours: spec.hours,
                run: spec.run,
                memory_gib: spec.resources.memory_gib,
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(Assignments {
        version,
        assignments,
    }))
}

fn outcome(item: ItemOutcome) -> ReportOutcome {
    match item {
        ItemOutcome::Accepted => ReportOutcome {
            outcome: Outcome::Accepted,
            reason: None,
        },
        ItemOutcome::Duplicate => ReportOutcome {
            outcome: Outcome::Duplicate,
            reason: None,
        },
        ItemOutcome::Rejected(reason) => ReportOutcome {
            outcome: Outcome::Rejected,
            reason: Some(reason),
        },
    }
}

/// Rates each usage record in standard compute units with the catalogue in
/// effect now (`core::metering`), from its pool's kind and device model. A
/// pool the site does not have, or a model the catalogue does not know,
/// rates at 0 and is stored unrated; the store then judges the record.
/// The database keeps integers as signed 64-bit: a bigger number in a
/// report is refused (422 naming it), never wrapped.
fn storable(field: &str, value: u64) -> ApiResult<u64> {
    if i64::try_from(value).is_err() {
        return Err(ApiError::invalid(field, format!("at most {}", i64::MAX)));
    }
    Ok(value)
}

async fn rate_usage(
    state: &AppState,
    site: &str,
    usage: Vec<UsageReport>,
    now: i64,
) -> ApiResult<Vec<UsageIn>> {
    if usage.is_empty() {
        return Ok(Vec::new());
    }
    let catalogue = metering::shipped().at(now);
    let mut pools: HashMap<String, (Kind, String, Energy)> = HashMap::new();
    for pool in state.store.pool_specs(site).await? {
        // The stored spec says the kind, typed; one that does not read is
        // the server's fault (500), never a silently unrated record.
        let spec: PoolSpec = serde_json::from_str(&pool.spec).map_err(ApiError::internal)?;
        let energy = Energy {
            power_kw_per_unit: spec.power_kw_per_unit,
            pue: spec.pue,
            grid_kg_co2_per_kwh: spec.grid_kg_co2_per_kwh,
        };
        pools.insert(
            pool.id,
            (resource_kind(spec.kind), spec.device_model, energy),
        );
    }
    usage
        .into_iter()
        .enumerate()
        .map(|(i, u)| {
            storable(&format!("usage[{i}].task"), u.task)?;
            storable(&format!("usage[{i}].units"), u.units)?;
            storable(&format!("usage[{i}].wall_ms"), u.wall_ms)?;
            let (energy_wh, co2_g) = pools
                .get(&u.pool)
                .map_or((0, 0), |(_, _, drawn)| energy(u.units, u.wall_ms, drawn));
            let rated = match pools.get(&u.pool) {
                Some((kind, model, _)) => catalogue.rate(model, *kind, u.units, u.wall_ms),
                // Not this site's pool: the store rejects the record.
                None => catalogue.rate("", Kind::Cpu, u.units, u.wall_ms),
            }
            .map_err(|e| ApiError::invalid(format!("usage[{i}]"), e.to_string()))?;
            storable(&format!("usage[{i}]"), rated.micro_scu_hours)?;
            Ok(UsageIn {
                job: u.job,
                task: u.task,
                attempt: u.attempt,
                seq: u.seq,
                pool: u.pool,
                units: u.units,
                wall_ms: u.wall_ms,
                device_model: rated.device_model,
                scu_micro_hours: rated.micro_scu_hours,
                scu_rated: rated.unrated.is_none(),
                catalogue_version: rated.catalogue_version,
                energy_wh,
                co2_g,
            })
        })
        .collect()
}

/// Counts the usage records a report had rejected, in
/// `suanwang_usage_rejected_total` by `reason`: the rule that refused it
/// (`not_current`, `pool`, `units`, `window`), or `other`. A fixed set, so
/// the series stay few: the reason's text, with its numbers, goes only to
/// the site.
fn count_rejected_usage(outcomes: &[ItemOutcome]) {
    for outcome in outcomes {
        if let ItemOutcome::Rejected(reason) = outcome {
            let label = UsageRejection::of(reason).map_or("other", UsageRejection::as_str);
            metrics::counter!("suanwang_usage_rejected_total", "reason" => label).increment(1);
        }
    }
}

#[utoipa::path(post, path = "/v1/sites/{id}/reports", params(IdPath), request_body = Reports, responses((status = 200, body = ReportsAnswer), Authn, Hidden, BadBody), tag = "agent")]
pub async fn report(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonBody<Reports>,
) -> ApiResult<Json<ReportsAnswer>> {
    let site = own_site(&state, &caller, &id).await?;
    let reports = body.read().await?.value;
    if reports.statuses.len() + reports.usage.len() > REPORT_ITEMS_MAX {
        return Err(ApiError::invalid(
            "statuses",
            format!("at most {REPORT_ITEMS_MAX} items per report"),
        ));
    }
    let mut statuses = Vec::with_capacity(reports.statuses.len());
    for (i, status) in reports.statuses.into_iter().enumerate() {
        // A state other than running, succeeded or failed is the body
        // parser's 422, naming `statuses[i].state`.
        storable(&format!("statuses[{i}].task"), status.task)?;
        let mut tail = status.output_tail;
        if let Some(text) = &mut tail {
            if text.len() > OUTPUT_TAIL_BYTES_MAX {
                let mut cut = text.len() - OUTPUT_TAIL_BYTES_MAX;
                while !text.is_char_boundary(cut) {
                    cut += 1;
                }
                text.drain(..cut);
            }
        }
        statuses.push(StatusIn {
            job: status.job,
            task: status.task,
            attempt: status.attempt,
            state: status.state.into(),
            exit_code: status.exit_code,
            reason: status.reason.map(|r| r.chars().take(1024).collect()),
            output_tail: tail,
        });
    }
    let now = now_ms();
    let usage = rate_usage(&state, &site.id, reports.usage, now).await?;
    // A deadlock with a concurrent round aborts the whole report and stores
    // nothing of it, so running it again is safe; bounded.
    let mut attempt = 1;
    let (status_outcomes, usage_outcomes) = loop {
        match state.store.report(&site.id, &statuses, &usage, now).await {
            Err(error)
                if error.is_transient() && attempt < suanwang_store::TRANSIENT_ATTEMPTS_MAX =>
            {
                tracing::info!(%error, attempt, "report aborted by a concurrent transaction; again");
                attempt += 1;
            }
            result => break result?,
        }
    };
    if status_outcomes.contains(&ItemOutcome::Accepted) {
        // Finished tasks free capacity.
        state.wake.notify_one();
    }
    count_rejected_usage(&usage_outcomes);
    Ok(Json(ReportsAnswer {
        statuses: status_outcomes.into_iter().map(outcome).collect(),
        usage: usage_outcomes.into_iter().map(outcome).collect(),
    }))
}
