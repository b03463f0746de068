//! The reconciler. Level-triggered: every tick it compares the attempts the
//! server assigns to this site with the attempts it runs, and converges:
//! starts what is missing, stops what is no longer wanted, polls what runs,
//! and queues a final status and a usage record for what finished. Reports
//! wait in the durable outbox until the server acknowledges them, so a
//! server outage loses nothing; usage keys make resends harmless.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use suanwang_api::{
    AssignmentView, Assignments, Lease, PutPools, Reports, ReportsAnswer, SiteView, StatusReport,
    UsageReport, WhoAmI,
};
use tokio::sync::watch;

use crate::config::SiteConfig;
use crate::executor::{memory_bytes_max, Executor, ExecutorError, TaskSpec, TaskStatus};
use crate::state::{Attempt, AttemptKey, State, StateFile};

/// Reports per request to the server.
pub const REPORT_BATCH_MAX: usize = 1_000;
/// Reconcile tick while attempts run; idle ticks are slower.
pub const TICK_BUSY: Duration = Duration::from_millis(50);
pub const TICK_IDLE: Duration = Duration::from_millis(500);
/// Longest pause between retries of an unreachable server.
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Long-poll wait asked of the server.
pub const POLL_WAIT_S: u64 = 10;
/// Starts per tick: a burst of assignments is started over a few ticks
/// instead of stalling the loop.
pub const STARTS_PER_TICK_MAX: usize = 256;

fn now_ms() -> i64 {
    let elapsed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
}

/// What an agent needs to run.
#[derive(Clone)]
pub struct AgentOptions {
    pub server: String,
    pub token: String,
    pub config: SiteConfig,
    pub state_dir: PathBuf,
    /// Stop the attempts this agent runs when it shuts down (`suanwang up`);
    /// otherwise they go on and a restarted agent picks them up.
    pub stop_tasks_on_exit: bool,
}

impl std::fmt::Debug for AgentOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentOptions")
            .field("server", &self.server)
            .field("token", &"<redacted>")
            .field("state_dir", &self.state_dir)
            .finish()
    }
}

#[derive(Debug, Clone)]
struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Api {
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
        timeout: Duration,
    ) -> anyhow::Result<T> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .timeout(timeout);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await?;
        let status = response.status();
        let text = response.text().await?;
        anyhow::ensure!(
            status.is_success(),
            "{path}: {status}: {}",
            text.chars().take(300).collect::<String>()
        );
        Ok(serde_json::from_str(&text)?)
    }
}

/// Runs the agent until `shutdown` turns true.
pub async fn run(
    options: AgentOptions,
    executor: Arc<dyn Executor>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let api = Api {
        base: options.server.trim_end_matches('/').to_owned(),
        token: options.token.clone(),
        http: reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()?,
    };
    let file = StateFile::new(&options.state_dir)?;
    let mut state = file.load()?;
    // Who am I, and register the pools: retried until the server answers.
    let mut backoff = Duration::from_millis(200);
    let (site, pool_names) = loop {
        let attempt = async {
            let who: WhoAmI = api
                .call(
                    reqwest::Method::GET,
                    "/v1/whoami",
                    None,
                    Duration::from_secs(10),
                )
                .await?;
            anyhow::ensure!(
                who.principal.role == "site",
                "the token is a {} token, not a site token",
                who.principal.role
            );
            let body = serde_json::to_value(PutPools {
                pools: options.config.pools.clone(),
            })?;
            let registered: SiteView = api
                .call(
                    reqwest::Method::PUT,
                    &format!("/v1/sites/{}/pools", who.principal.id),
                    Some(&body),
                    Duration::from_secs(10),
                )
                .await?;
            let names: BTreeMap<String, String> = registered
                .pools
                .into_iter()
                .map(|pool| (pool.id, pool.spec.name))
                .collect();
            Ok::<_, anyhow::Error>((who.principal.id, names))
        };
        match attempt.await {
            Ok(registered) => break registered,
            Err(error) if error.to_string().contains("not a site token") => return Err(error),
            Err(error) => {
                tracing::warn!(%error, "cannot register with the server yet; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => return Ok(()),
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    };
    tracing::info!(%site, pools = options.config.pools.len(), executor = executor.name(), "site registered");

    // The lease: heartbeats at a third of its TTL.
    let heartbeat = {
        let api = api.clone();
        let site = site.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut every = Duration::from_secs(5);
            loop {
                match api
                    .call::<Lease>(
                        reqwest::Method::POST,
                        &format!("/v1/sites/{site}/heartbeat"),
                        None,
                        Duration::from_secs(5),
                    )
                    .await
                {
                    Ok(lease) => every = Duration::from_millis((lease.ttl_s * 1000 / 3).max(200)),
                    Err(error) => tracing::warn!(%error, "heartbeat failed"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = shutdown.changed() => return,
                }
            }
        })
    };

    // Assignments by long poll, into a watch the reconciler reads.
    let (assigned_tx, assigned_rx) = watch::channel::<Option<Vec<AssignmentView>>>(None);
    let poller = {
        let api = api.clone();
        let site = site.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut version: Option<i64> = None;
            let mut backoff = Duration::from_millis(200);
            loop {
                let path = match version {
                    Some(v) => {
                        format!("/v1/sites/{site}/assignments?version={v}&wait_s={POLL_WAIT_S}")
                    }
                    None => format!("/v1/sites/{site}/assignments"),
                };
                let answer = tokio::select! {
                    answer = api.call::<Assignments>(reqwest::Method::GET, &path, None, Duration::from_secs(POLL_WAIT_S + 10)) => answer,
                    _ = shutdown.changed() => return,
                };
                match answer {
                    Ok(assignments) => {
                        backoff = Duration::from_millis(200);
                        version = Some(assignments.version);
                        let _ = assigned_tx.send(Some(assignments.assignments));
                    }
                    Err(error) => {
                        tracing::warn!(%error, "fetching assignments failed; the attempts running go on");
                        tokio::select! {
                            _ = tokio::time::sleep(backoff) => {}
                            _ = shutdown.changed() => return,
                        }
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                    }
                }
            }
        })
    };

    let mut reconciler = Reconciler {
        site: site.clone(),
        pool_names,
        config: options.config.clone(),
        state_dir: options.state_dir.clone(),
        executor,
        file,
        report_backoff_until: tokio::time::Instant::now(),
        report_backoff: Duration::from_millis(200),
    };
    loop {
        if *shutdown.borrow() {
            break;
        }
        let assigned = assigned_rx.borrow().clone();
        let changed = reconciler.reconcile(&mut state, assigned.as_deref()).await;
        if changed {
            reconciler.file.save(&state)?;
        }
        reconciler.flush(&api, &mut state).await?;
        let busy =
            state.attempts.values().any(|a| !a.finished) || !state.outbox.statuses.is_empty();
        tokio::select! {
            _ = tokio::time::sleep(if busy { TICK_BUSY } else { TICK_IDLE }) => {}
            _ = shutdown.changed() => {}
        }
    }
    if options.stop_tasks_on_exit {
        let grace = Duration::from_secs(options.config.stop_grace_s.min(5));
        for attempt in state.attempts.values().filter(|a| !a.finished) {
            let _ = reconciler.executor.stop(&attempt.handle, grace).await;
        }
    }
    reconciler.file.save(&state)?;
    heartbeat.abort();
    poller.abort();
    Ok(())
}

/// The attempt's next usage record (`seq` = its `usage_seq`): `wall_ms` of
/// its units.
fn usage_record(key: &AttemptKey, attempt: &Attempt, wall_ms: u64) -> UsageReport {
    UsageReport {
        job: key.job.clone(),
        task: key.task,
        attempt: key.attempt,
        seq: attempt.usage_seq,
        pool: attempt.pool.clone(),
        units: attempt.units,
        wall_ms,
    }
}

struct Reconciler {
    site: String,
    /// Pool id (the server's) → pool name (the site file's).
    pool_names: BTreeMap<String, String>,
    config: SiteConfig,
    state_dir: PathBuf,
    executor: Arc<dyn Executor>,
    file: StateFile,
    report_backoff_until: tokio::time::Instant,
    report_backoff: Duration,
}

impl Reconciler {
    /// One pass; true when the state changed and must be saved.
    async fn reconcile(&mut self, state: &mut State, assigned: Option<&[AssignmentView]>) -> bool {
        let mut changed = false;
        // 1. Poll what runs.
        let keys: Vec<AttemptKey> = state
            .attempts
            .iter()
            .filter(|(_, a)| !a.finished)
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            let attempt = state.attempts.get(&key).expect("key from the map").clone();
            let status = match self.executor.poll(&attempt.handle).await {
                Ok(status) => status,
                Err(error) => {
                    tracing::warn!(%error, job = %key.job, task = key.task, "poll failed");
                    continue;
                }
            };
            let elapsed_ms =
                u64::try_from(now_ms().saturating_sub(attempt.started_at_ms)).unwrap_or(0);
            let (final_state, exit_code, reason, wall_ms, tail) = match status {
                TaskStatus::Queued | TaskStatus::Running => {
                    let interval_ms = self.config.usage_interval_s.saturating_mul(1_000);
                    if status == TaskStatus::Running
                        && self.executor.meters_while_running()
                        && elapsed_ms.saturating_sub(attempt.usage_reported_ms) >= interval_ms
                    {
                        let wall_ms = elapsed_ms - attempt.usage_reported_ms;
                        state
                            .outbox
                            .usage
                            .push(usage_record(&key, &attempt, wall_ms));
                        let entry = state.attempts.get_mut(&key).expect("present");
                        entry.usage_seq += 1;
                        entry.usage_reported_ms = elapsed_ms;
                        changed = true;
                    }
                    if elapsed_ms > attempt.wall_time_max_ms && !attempt.stopped {
                        tracing::warn!(job = %key.job, task = key.task, "wall-time limit reached; stopping");
                        let _ = self
                            .executor
                            .stop(
                                &attempt.handle,
                                Duration::from_secs(self.config.stop_grace_s),
                            )
                            .await;
                        let entry = state.attempts.get_mut(&key).expect("present");
                        entry.stopped = true;
                        changed = true;
                    }
                    continue;
                }
                TaskStatus::Exited {
                    code,
                    wall_ms,
                    output_tail,
                } => {
                    let over = attempt.stopped && elapsed_ms > attempt.wall_time_max_ms;
                    if code == 0 && !over {
                        ("succeeded", Some(code), None, wall_ms, output_tail)
                    } else if over {
                        (
                            "failed",
                            Some(code),
                            Some("wall-time limit reached".to_owned()),
                            wall_ms,
                            output_tail,
                        )
                    } else {
                        (
                            "failed",
                            Some(code),
                            Some(format!("exit code {code}")),
                            wall_ms,
                            output_tail,
                        )
                    }
                }
                TaskStatus::Failed {
                    reason,
                    wall_ms,
                    output_tail,
                } => ("failed", None, Some(reason), wall_ms, output_tail),
                TaskStatus::Unknown => (
                    "failed",
                    None,
                    Some("the executor lost the attempt".to_owned()),
                    elapsed_ms,
                    String::new(),
                ),
            };
            let entry = state.attempts.get_mut(&key).expect("present");
            entry.finished = true;
            changed = true;
            // Usage first: it belongs to the attempt even when it failed.
            // The last record covers what the interim ones did not, so the
            // records of an attempt add up to its wall time.
            let rest_ms = wall_ms.saturating_sub(attempt.usage_reported_ms);
            state
                .outbox
                .usage
                .push(usage_record(&key, &attempt, rest_ms));
            if !attempt.stopped || final_state == "failed" {
                state.outbox.statuses.push(StatusReport {
                    job: key.job.clone(),
                    task: key.task,
                    attempt: key.attempt,
                    state: final_state.to_owned(),
                    exit_code,
                    reason,
                    output_tail: Some(tail),
                });
            }
        }
        // 2. Converge on the assignments, once the server has told us any.
        let Some(assigned) = assigned else {
            return changed;
        };
        let wanted: BTreeMap<AttemptKey, &AssignmentView> = assigned
            .iter()
            .map(|a| {
                (
                    AttemptKey {
                        job: a.job.clone(),
                        task: a.task,
                        attempt: a.attempt,
                    },
                    a,
                )
            })
            .collect();
        // Stop what is no longer wanted (cancelled, or placed again elsewhere).
        let unwanted: Vec<AttemptKey> = state
            .attempts
            .iter()
            .filter(|(k, a)| !a.finished && !a.stopped && !wanted.contains_key(*k))
            .map(|(k, _)| k.clone())
            .collect();
        for key in unwanted {
            let attempt = state.attempts.get_mut(&key).expect("present");
            tracing::info!(job = %key.job, task = key.task, attempt = key.attempt, "no longer assigned here; stopping");
            let _ = self
                .executor
                .stop(
                    &attempt.handle,
                    Duration::from_secs(self.config.stop_grace_s),
                )
                .await;
            attempt.stopped = true;
            changed = true;
        }
        // Start what is wanted and not yet started.
        let mut started = 0;
        for (key, assignment) in &wanted {
            if state.attempts.contains_key(key) || started >= STARTS_PER_TICK_MAX {
                continue;
            }
            let spec = self.spec(assignment);
            let started_at_ms = now_ms();
            match self.executor.start(&spec).await {
                Ok(handle) => {
                    state.attempts.insert(
                        (*key).clone(),
                        Attempt {
                            pool: assignment.pool.clone(),
                            units: assignment.units,
                            handle,
                            started_at_ms,
                            finished: false,
                            stopped: false,
                            wall_time_max_ms: u64::try_from(spec.wall_time_max.as_millis())
                                .unwrap_or(u64::MAX),
                            usage_seq: 0,
                            usage_reported_ms: 0,
                        },
                    );
                    state.outbox.statuses.push(StatusReport {
                        job: key.job.clone(),
                        task: key.task,
                        attempt: key.attempt,
                        state: "running".into(),
                        exit_code: None,
                        reason: None,
                        output_tail: None,
                    });
                    started += 1;
                    changed = true;
                }
                Err(ExecutorError::Unavailable(reason)) => {
                    tracing::warn!(%reason, "executor unavailable; will retry");
                    break;
                }
                Err(error) => {
                    tracing::warn!(%error, job = %key.job, task = key.task, "cannot start; reporting failure");
                    state.attempts.insert(
                        (*key).clone(),
                        Attempt {
                            pool: assignment.pool.clone(),
                            units: assignment.units,
                            handle: crate::executor::Handle(String::new()),
                            started_at_ms,
                            finished: true,
                            stopped: false,
                            wall_time_max_ms: 0,
                            usage_seq: 0,
                            usage_reported_ms: 0,
                        },
                    );
                    state.outbox.statuses.push(StatusReport {
                        job: key.job.clone(),
                        task: key.task,
                        attempt: key.attempt,
                        state: "failed".into(),
                        exit_code: None,
                        reason: Some(error.to_string()),
                        output_tail: None,
                    });
                    changed = true;
                }
            }
        }
        // 3. Forget finished attempts the server no longer lists and whose
        // reports are all acknowledged.
        let reported: BTreeSet<(String, u64, u32)> = state
            .outbox
            .statuses
            .iter()
            .map(|s| (s.job.clone(), s.task, s.attempt))
            .chain(
                state
                    .outbox
                    .usage
                    .iter()
                    .map(|u| (u.job.clone(), u.task, u.attempt)),
            )
            .collect();
        let before = state.attempts.len();
        state.attempts.retain(|k, a| {
            !a.finished
                || wanted.contains_key(k)
                || reported.contains(&(k.job.clone(), k.task, k.attempt))
        });
        changed |= state.attempts.len() != before;
        changed
    }

    fn spec(&self, assignment: &AssignmentView) -> TaskSpec {
        let work_dir = self
            .state_dir
            .join("work")
            .join(&assignment.job)
            .join(format!("{}-{}", assignment.task, assignment.attempt));
        let output_dir = self.state_dir.join("outputs").join(&assignment.job);
        let mut env = BTreeMap::new();
        env.insert("SUANWANG_JOB".to_owned(), assignment.job.clone());
        env.insert(
            "SUANWANG_TASK_INDEX".to_owned(),
            assignment.task.to_string(),
        );
        env.insert(
            "SUANWANG_ATTEMPT".to_owned(),
            assignment.attempt.to_string(),
        );
        env.insert("SUANWANG_UNITS".to_owned(), assignment.units.to_string());
        env.insert("SUANWANG_SITE".to_owned(), self.site.clone());
        env.insert(
            "SUANWANG_OUTPUT_DIR".to_owned(),
            output_dir.display().to_string(),
        );
        // Twice the estimate, at least ten minutes: an estimate is not a promise.
        let wall_time_max = Duration::from_secs_f64(
            (assignment.hours * 2.0 * 3600.0).clamp(600.0, 30.0 * 24.0 * 3600.0),
        );
        TaskSpec {
            job: assignment.job.clone(),
            task: assignment.task,
            attempt: assignment.attempt,
            // Executors know pools by the site file's names.
            pool: self
                .pool_names
                .get(&assignment.pool)
                .cloned()
                .unwrap_or_else(|| assignment.pool.clone()),
            units: assignment.units,
            hours: assignment.hours,
            run: assignment.run.clone(),
            work_dir,
            output_dir,
            env,
            wall_time_max,
            memory_bytes_max: memory_bytes_max(assignment.memory_gib),
        }
    }

    /// Sends queued reports; acknowledged ones (accepted, duplicate or
    /// rejected: all final) leave the outbox. Unreachable server: they stay.
    async fn flush(&mut self, api: &Api, state: &mut State) -> anyhow::Result<()> {
        if (state.outbox.statuses.is_empty() && state.outbox.usage.is_empty())
            || tokio::time::Instant::now() < self.report_backoff_until
        {
            return Ok(());
        }
        let usage_n = state.outbox.usage.len().min(REPORT_BATCH_MAX);
        let status_n = state.outbox.statuses.len().min(REPORT_BATCH_MAX - usage_n);
        let reports = Reports {
            usage: state.outbox.usage[..usage_n].to_vec(),
            statuses: state.outbox.statuses[..status_n].to_vec(),
        };
        let body = serde_json::to_value(&reports)?;
        match api
            .call::<ReportsAnswer>(
                reqwest::Method::POST,
                &format!("/v1/sites/{}/reports", self.site),
                Some(&body),
                Duration::from_secs(30),
            )
            .await
        {
            Ok(answer) => {
                for (status, outcome) in reports.statuses.iter().zip(&answer.statuses) {
                    if outcome.outcome == "rejected" {
                        tracing::info!(job = %status.job, task = status.task, reason = ?outcome.reason, "status report rejected");
                    }
                }
                state.outbox.usage.drain(..usage_n);
                state.outbox.statuses.drain(..status_n);
                self.file.save(state).context("saving the outbox")?;
                self.report_backoff = Duration::from_millis(200);
            }
            Err(error) => {
                tracing::warn!(%error, queued = state.outbox.statuses.len() + state.outbox.usage.len(), "reports spooled; will resend");
                self.report_backoff_until = tokio::time::Instant::now() + self.report_backoff;
                self.report_backoff = (self.report_backoff * 2).min(BACKOFF_MAX);
            }
        }
        Ok(())
    }
}
