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
use backon::BackoffBuilder as _;
use suanwang_api::{
    AssignmentView, Assignments, ErrorBody, Heartbeat, Lease, Outcome, PutPools, ReportOutcome,
    ReportState, Reports, ReportsAnswer, SiteView, StatusReport, UsageReport, WhoAmI,
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
/// First pause before retrying an unreachable server; later ones double.
pub const BACKOFF_MIN: Duration = Duration::from_millis(200);
/// Longest pause between retries of an unreachable server, before jitter.
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Long-poll wait asked of the server.
pub const POLL_WAIT_S: u64 = 10;
/// How often the state is saved at least while attempts run, so that their
/// run time measured so far survives a crash: an agent that dies loses at
/// most this much of their measure (see `state::Attempt::measure`).
pub const MEASURE_SAVE_INTERVAL: Duration = Duration::from_secs(10);
/// Starts per tick: a burst of assignments is started over a few ticks
/// instead of stalling the loop.
pub const STARTS_PER_TICK_MAX: usize = 256;

/// The agent's one retry policy, for every loop that talks to the server
/// (registration, heartbeat, assignments, reports): pauses from
/// [`BACKOFF_MIN`] doubling to [`BACKOFF_MAX`], each plus a random jitter of
/// up to as much again, so the agents of a whole country that lost the
/// server together do not all come back at the same instant. Unbounded:
/// an agent never gives up on its server.
pub fn backoff() -> backon::ExponentialBackoff {
    backon::ExponentialBuilder::default()
        .with_min_delay(BACKOFF_MIN)
        .with_max_delay(BACKOFF_MAX)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build()
}

/// The next pause of a policy from [`backoff`] (which never runs out).
fn next_pause(pauses: &mut backon::ExponentialBackoff) -> Duration {
    pauses.next().unwrap_or(BACKOFF_MAX)
}

/// A 4xx answer: the server read the request and refuses it. Anything else
/// that fails (no answer, a 5xx) is worth sending again as it is.
#[derive(Debug)]
pub struct Refused {
    pub path: String,
    pub status: u16,
    /// The server's error body, when it sent one.
    pub body: Option<ErrorBody>,
    pub text: String,
}

impl Refused {
    /// The JSON path the server blamed (e.g. `statuses[3].state`), if any.
    pub fn field(&self) -> Option<&str> {
        self.body.as_ref()?.error.field.as_deref()
    }

    /// The server's reason, in one line.
    pub fn reason(&self) -> String {
        match &self.body {
            Some(body) => match body.error.field.as_deref() {
                Some(field) if !field.is_empty() => {
                    format!(
                        "{} {}: {field}: {}",
                        self.status, body.error.code, body.error.message
                    )
                }
                _ => format!(
                    "{} {}: {}",
                    self.status, body.error.code, body.error.message
                ),
            },
            None => format!("{}: {}", self.status, self.text),
        }
    }

    /// True when the refusal is about who asks, not what was sent: a
    /// revoked token (401), a site that is not this token's (403, 404), a
    /// timeout (408) or a rate limit (429). Sending the same again later
    /// may succeed, so reports are kept.
    pub fn is_about_the_caller(&self) -> bool {
        matches!(self.status, 401 | 403 | 404 | 408 | 429)
    }
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.reason())
    }
}

impl std::error::Error for Refused {}

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
        if status.is_client_error() {
            return Err(Refused {
                path: path.to_owned(),
                status: status.as_u16(),
                body: serde_json::from_str(&text).ok(),
                text: text.chars().take(300).collect(),
            }
            .into());
        }
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
    let mut pauses = backoff();
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
                    _ = tokio::time::sleep(next_pause(&mut pauses)) => {}
                    _ = shutdown.changed() => return Ok(()),
                }
            }
        }
    };
    tracing::info!(%site, pools = options.config.pools.len(), executor = executor.name(), "site registered");

    // The lease: heartbeats at a third of its TTL, saying how full the
    // outbox is (the reconciler keeps `said` up to date). A failed one is
    // retried sooner, by the backoff policy, but never later than the next
    // heartbeat was due.
    let (said_tx, said_rx) = watch::channel(Heartbeat::default());
    let heartbeat = {
        let api = api.clone();
        let site = site.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut every = Duration::from_secs(5);
            let mut pauses = backoff();
            loop {
                let body = serde_json::to_value(&*said_rx.borrow()).ok();
                let pause = match api
                    .call::<Lease>(
                        reqwest::Method::POST,
                        &format!("/v1/sites/{site}/heartbeat"),
                        body.as_ref(),
                        Duration::from_secs(5),
                    )
                    .await
                {
                    Ok(lease) => {
                        pauses = backoff();
                        every = Duration::from_millis((lease.ttl_s * 1000 / 3).max(200));
                        every
                    }
                    Err(error) => {
                        tracing::warn!(%error, "heartbeat failed");
                        next_pause(&mut pauses).min(every)
                    }
                };
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
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
            let mut pauses = backoff();
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
                        pauses = backoff();
                        version = Some(assignments.version);
                        let _ = assigned_tx.send(Some(assignments.assignments));
                    }
                    Err(error) => {
                        tracing::warn!(%error, "fetching assignments failed; the attempts running go on");
                        tokio::select! {
                            _ = tokio::time::sleep(next_pause(&mut pauses)) => {}
                            _ = shutdown.changed() => return,
                        }
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
        report_pauses: backoff(),
        report_batch_max: REPORT_BATCH_MAX,
        starts_paused: false,
        said: said_tx,
    };
    let mut saved = tokio::time::Instant::now();
    loop {
        if *shutdown.borrow() {
            break;
        }
        let assigned = assigned_rx.borrow().clone();
        let changed = reconciler.reconcile(&mut state, assigned.as_deref()).await;
        let running = state.attempts.values().any(|a| !a.finished);
        if changed || (running && saved.elapsed() >= MEASURE_SAVE_INTERVAL) {
            reconciler.file.save(&state)?;
            saved = tokio::time::Instant::now();
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
    report_pauses: backon::ExponentialBackoff,
    /// Items per report request: halved while the server refuses a batch
    /// without naming the item (to find it), back to the most on success.
    report_batch_max: usize,
    /// True while the outbox is at `outbox_max` and no attempt starts.
    starts_paused: bool,
    /// What the next heartbeat says.
    said: watch::Sender<Heartbeat>,
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
            let handle = state.attempts[&key].handle.clone();
            let status = match self.executor.poll(&handle).await {
                Ok(status) => status,
                Err(error) => {
                    tracing::warn!(%error, job = %key.job, task = key.task, "poll failed");
                    continue;
                }
            };
            // Measured after the poll: an attempt seen ended has run at
            // least this long.
            let entry = state.attempts.get_mut(&key).expect("key from the map");
            let elapsed_ms = entry.measure(std::time::Instant::now());
            let attempt = entry.clone();
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
                        (
                            ReportState::Succeeded,
                            Some(code),
                            None,
                            wall_ms,
                            output_tail,
                        )
                    } else if over {
                        (
                            ReportState::Failed,
                            Some(code),
                            Some("wall-time limit reached".to_owned()),
                            wall_ms,
                            output_tail,
                        )
                    } else {
                        (
                            ReportState::Failed,
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
                } => (
                    ReportState::Failed,
                    None,
                    Some(reason),
                    wall_ms,
                    output_tail,
                ),
                TaskStatus::Unreadable {
                    reason,
                    output_tail,
                } => (
                    ReportState::Failed,
                    None,
                    Some(format!("{reason} (wall time: the agent's own measure)")),
                    elapsed_ms,
                    output_tail,
                ),
                TaskStatus::Unknown => (
                    ReportState::Failed,
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
            if !attempt.stopped || final_state == ReportState::Failed {
                state.outbox.statuses.push(StatusReport {
                    job: key.job.clone(),
                    task: key.task,
                    attempt: key.attempt,
                    state: final_state,
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
        // Start what is wanted and not yet started, unless the outbox is
        // full: reports are never dropped, so new work waits instead.
        self.check_outbox(state);
        let mut started = 0;
        for (key, assignment) in &wanted {
            if state.outbox.len() >= self.config.outbox_max {
                break;
            }
            if state.attempts.contains_key(key) || started >= STARTS_PER_TICK_MAX {
                continue;
            }
            let spec = self.spec(assignment);
            // Measured from before the start: never shorter than it ran.
            let (started_at_ms, measured_from) = (now_ms(), std::time::Instant::now());
            let attempt = |handle| {
                Attempt::new(
                    assignment.pool.clone(),
                    assignment.units,
                    handle,
                    started_at_ms,
                    measured_from,
                )
            };
            match self.executor.start(&spec).await {
                Ok(handle) => {
                    state.attempts.insert(
                        (*key).clone(),
                        Attempt {
                            wall_time_max_ms: u64::try_from(spec.wall_time_max.as_millis())
                                .unwrap_or(u64::MAX),
                            ..attempt(handle)
                        },
                    );
                    state.outbox.statuses.push(StatusReport {
                        job: key.job.clone(),
                        task: key.task,
                        attempt: key.attempt,
                        state: ReportState::Running,
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
                            finished: true,
                            ..attempt(crate::executor::Handle(String::new()))
                        },
                    );
                    state.outbox.statuses.push(StatusReport {
                        job: key.job.clone(),
                        task: key.task,
                        attempt: key.attempt,
                        state: ReportState::Failed,
                        exit_code: None,
                        reason: Some(error.to_string()),
                        output_tail: None,
                    });
                    changed = true;
                }
            }
        }
        self.check_outbox(state);
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

    /// Compares the outbox with its cap: at or past it, starts pause (said
    /// once in the log per crossing, and in every heartbeat while it
    /// lasts); below it again, they resume.
    fn check_outbox(&mut self, state: &State) {
        let queued = state.outbox.len();
        let cap = self.config.outbox_max;
        let full = queued >= cap;
        if full && !self.starts_paused {
            tracing::warn!(
                queued,
                outbox_max = cap,
                "outbox full: no new attempt starts until the server has taken reports below outbox_max; none is dropped"
            );
        } else if !full && self.starts_paused {
            tracing::info!(
                queued,
                outbox_max = cap,
                "outbox below its cap again; attempts start"
            );
        }
        self.starts_paused = full;
        let said = Heartbeat {
            outbox: Some(queued as u64),
            starts_paused: full
                .then(|| format!("outbox full: {queued} reports waiting, outbox_max {cap}")),
        };
        self.said.send_if_modified(|old| {
            let changed = *old != said;
            *old = said;
            changed
        });
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

    /// Sends queued reports, oldest first, at most `report_batch_max` at a
    /// time. Answered items leave the outbox, whatever the answer
    /// (accepted, duplicate or rejected: all final; rejections are logged
    /// with the server's reason). No answer or a 5xx: they all stay, and are
    /// sent again after a pause of the backoff policy. A 4xx refuses what
    /// was sent: the item the server names (`statuses[3].state`) is dropped,
    /// logged with the reason, and the rest go on at once; a refusal that
    /// names no item halves the batch until the one refused item is alone,
    /// and then drops it. So one report the server keeps refusing never
    /// blocks those behind it. A refusal about the caller itself (revoked
    /// token, rate limit: [`Refused::is_about_the_caller`]) drops nothing.
    async fn flush(&mut self, api: &Api, state: &mut State) -> anyhow::Result<()> {
        if state.outbox.is_empty() || tokio::time::Instant::now() < self.report_backoff_until {
            return Ok(());
        }
        let batch_max = self.report_batch_max.clamp(1, REPORT_BATCH_MAX);
        let usage_n = state.outbox.usage.len().min(batch_max);
        let status_n = state.outbox.statuses.len().min(batch_max - usage_n);
        let reports = Reports {
            usage: state.outbox.usage[..usage_n].to_vec(),
            statuses: state.outbox.statuses[..status_n].to_vec(),
        };
        let body = serde_json::to_value(&reports)?;
        let answer = api
            .call::<ReportsAnswer>(
                reqwest::Method::POST,
                &format!("/v1/sites/{}/reports", self.site),
                Some(&body),
                Duration::from_secs(30),
            )
            .await;
        match answer {
            Ok(answer) => {
                log_rejected(&reports, &answer);
                state.outbox.usage.drain(..usage_n);
                state.outbox.statuses.drain(..status_n);
                self.file.save(state).context("saving the outbox")?;
                self.report_pauses = backoff();
                self.report_batch_max = REPORT_BATCH_MAX;
            }
            Err(error) => match error.downcast::<Refused>() {
                Ok(refused) if !refused.is_about_the_caller() => {
                    self.refused(&refused, &reports, state)?;
                }
                Ok(refused) => self.spool(&refused, state),
                Err(error) => self.spool(&error, state),
            },
        }
        Ok(())
    }

    /// Keeps every report for later: the server could not take them now.
    fn spool(&mut self, error: &dyn std::fmt::Display, state: &State) {
        let pause = next_pause(&mut self.report_pauses);
        tracing::warn!(%error, queued = state.outbox.len(), ?pause, "reports spooled; will resend");
        self.report_backoff_until = tokio::time::Instant::now() + pause;
    }

    /// The server refused the batch `sent` (a prefix of the outbox): drop
    /// the item it names, or, naming none, narrow the batch down to it.
    fn refused(
        &mut self,
        refused: &Refused,
        sent: &Reports,
        state: &mut State,
    ) -> anyhow::Result<()> {
        let named = refused.field().and_then(|field| {
            let (list, index) = item_of_field(field)?;
            match list {
                "usage" if index < sent.usage.len() => Some(Item::Usage(index)),
                "statuses" if index < sent.statuses.len() => Some(Item::Status(index)),
                _ => None,
            }
        });
        let sent_n = sent.usage.len() + sent.statuses.len();
        let item = match named {
            Some(item) => item,
            None if sent_n > 1 => {
                self.report_batch_max = (sent_n / 2).max(1);
                tracing::info!(
                    reason = %refused.reason(),
                    items = sent_n,
                    next = self.report_batch_max,
                    "reports refused without naming the item; sending fewer at a time to find it"
                );
                return Ok(());
            }
            // The only item sent: it is the one refused.
            None if sent.usage.is_empty() => Item::Status(0),
            None => Item::Usage(0),
        };
        match item {
            Item::Usage(index) => {
                let usage = state.outbox.usage.remove(index);
                tracing::warn!(
                    job = %usage.job, task = usage.task, attempt = usage.attempt, seq = usage.seq,
                    reason = %refused.reason(),
                    "usage record refused by the server; dropped, the reports behind it go on"
                );
            }
            Item::Status(index) => {
                let status = state.outbox.statuses.remove(index);
                tracing::warn!(
                    job = %status.job, task = status.task, attempt = status.attempt, state = status.state.as_str(),
                    reason = %refused.reason(),
                    "status report refused by the server; dropped, the reports behind it go on"
                );
            }
        }
        self.file.save(state).context("saving the outbox")
    }
}

/// One report in a batch: its list and its index there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Item {
    Usage(usize),
    Status(usize),
}

/// The list and index a JSON path starts with: `statuses[3].state` →
/// (`statuses`, 3); none for a path that names no item (`statuses`).
fn item_of_field(field: &str) -> Option<(&str, usize)> {
    let (list, rest) = field.split_once('[')?;
    let (index, _) = rest.split_once(']')?;
    Some((list, index.parse().ok()?))
}

/// Logs each item the server answered `rejected` (final: it leaves the
/// outbox with the rest), with the server's reason.
fn log_rejected(sent: &Reports, answer: &ReportsAnswer) {
    let rejected = |outcome: &ReportOutcome| outcome.outcome == Outcome::Rejected;
    for (status, outcome) in sent.statuses.iter().zip(&answer.statuses) {
        if rejected(outcome) {
            tracing::warn!(
                job = %status.job, task = status.task, attempt = status.attempt, state = status.state.as_str(),
                reason = outcome.reason.as_deref().unwrap_or("none given"),
                "status report rejected by the server; dropped"
            );
        }
    }
    for (usage, outcome) in sent.usage.iter().zip(&answer.usage) {
        if rejected(outcome) {
            tracing::warn!(
                job = %usage.job, task = usage.task, attempt = usage.attempt, seq = usage.seq,
                reason = outcome.reason.as_deref().unwrap_or("none given"),
                "usage record rejected by the server; dropped"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::executor::Handle;

    /// Starts nothing real: counts starts; every attempt runs forever.
    #[derive(Debug, Default)]
    struct Counting(AtomicUsize);

    #[async_trait::async_trait]
    impl Executor for Counting {
        fn name(&self) -> &'static str {
            "counting"
        }

        async fn start(&self, _task: &TaskSpec) -> Result<Handle, ExecutorError> {
            let n = self.0.fetch_add(1, Ordering::SeqCst);
            Ok(Handle(format!("fake:{n}")))
        }

        async fn poll(&self, _handle: &Handle) -> Result<TaskStatus, ExecutorError> {
            Ok(TaskStatus::Running)
        }

        async fn stop(&self, _handle: &Handle, _grace: Duration) -> Result<(), ExecutorError> {
            Ok(())
        }
    }

    fn assignment(task: u64) -> AssignmentView {
        AssignmentView {
            job: "job_a".into(),
            task,
            attempt: 1,
            pool: "pool_a".into(),
            state: suanwang_api::TaskState::Placed,
            units: 1,
            hours: 0.01,
            run: suanwang_api::RunSpec {
                command: "true".into(),
                args: Vec::new(),
                env: BTreeMap::new(),
                slurm_script: None,
            },
            memory_gib: 0.0,
        }
    }

    fn status(task: u64) -> StatusReport {
        StatusReport {
            job: "job_old".into(),
            task,
            attempt: 1,
            state: ReportState::Succeeded,
            exit_code: Some(0),
            reason: None,
            output_tail: None,
        }
    }

    /// A reconciler with `executor` and a site file of `outbox_max`; what
    /// its heartbeats would say.
    fn reconciler(
        dir: &std::path::Path,
        outbox_max: usize,
        executor: Arc<dyn Executor>,
    ) -> (Reconciler, watch::Receiver<Heartbeat>) {
        let config: SiteConfig = toml::from_str(&format!(
            "outbox_max = {outbox_max}\n[[pools]]\nname = \"cpu\"\nkind = \"cpu\"\n\
             family = \"x86\"\ncapacity = 4\nprice_yuan_per_unit_hour = 0.1\n"
        ))
        .unwrap();
        config.check().unwrap();
        let (said, heard) = watch::channel(Heartbeat::default());
        let reconciler = Reconciler {
            site: "site_a".into(),
            pool_names: BTreeMap::new(),
            config,
            state_dir: dir.to_owned(),
            executor,
            file: StateFile::new(dir).unwrap(),
            report_backoff_until: tokio::time::Instant::now(),
            report_pauses: backoff(),
            report_batch_max: REPORT_BATCH_MAX,
            starts_paused: false,
            said,
        };
        (reconciler, heard)
    }

    fn usage(task: u64) -> UsageReport {
        UsageReport {
            job: "job_old".into(),
            task,
            attempt: 1,
            seq: 0,
            pool: "pool_a".into(),
            units: 1,
            wall_ms: 1_000,
        }
    }

    fn refusal(status: u16, field: Option<&str>) -> Refused {
        let body = ErrorBody {
            error: suanwang_api::ErrorDetail {
                code: "invalid".into(),
                message: "no such state".into(),
                field: field.map(str::to_owned),
            },
        };
        Refused {
            path: "/v1/sites/site_a/reports".into(),
            status,
            text: serde_json::to_string(&body).unwrap(),
            body: Some(body),
        }
    }

    /// A 4xx for a batch: the item it names goes, the rest stay in order;
    /// naming none, the batch halves until the refused item is alone, and
    /// then that one goes.
    #[tokio::test]
    async fn a_refused_item_leaves_the_outbox_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (mut reconciler, _) = reconciler(dir.path(), 10, Arc::new(Counting::default()));
        let mut state = State::default();
        state.outbox.usage = vec![usage(0), usage(1)];
        state.outbox.statuses = vec![status(0), status(1), status(2)];
        let sent = Reports {
            usage: state.outbox.usage.clone(),
            statuses: state.outbox.statuses.clone(),
        };
        let refused = refusal(422, Some("statuses[1].state"));
        assert!(!refused.is_about_the_caller());
        assert!(refused
            .reason()
            .contains("422 invalid: statuses[1].state: no such state"));
        reconciler.refused(&refused, &sent, &mut state).unwrap();
        assert_eq!(state.outbox.statuses, vec![status(0), status(2)]);
        assert_eq!(state.outbox.usage, vec![usage(0), usage(1)]);
        assert_eq!(
            StateFile::new(dir.path()).unwrap().load().unwrap(),
            state,
            "saved"
        );

        // No item named: nothing dropped, fewer sent next time.
        let sent = Reports {
            usage: state.outbox.usage.clone(),
            statuses: state.outbox.statuses.clone(),
        };
        reconciler
            .refused(&refusal(400, None), &sent, &mut state)
            .unwrap();
        assert_eq!(state.outbox.len(), 4);
        assert_eq!(reconciler.report_batch_max, 2);
        // Alone, the item is the one refused.
        let sent = Reports {
            usage: vec![usage(0)],
            statuses: Vec::new(),
        };
        reconciler
            .refused(&refusal(413, None), &sent, &mut state)
            .unwrap();
        assert_eq!(state.outbox.usage, vec![usage(1)]);
        assert_eq!(state.outbox.statuses, vec![status(0), status(2)]);
        // An index past what was sent names nothing of ours.
        let sent = Reports {
            usage: Vec::new(),
            statuses: vec![status(0)],
        };
        reconciler
            .refused(&refusal(422, Some("statuses[5]")), &sent, &mut state)
            .unwrap();
        assert_eq!(state.outbox.statuses, vec![status(2)], "the one sent goes");

        // Refusals about the caller are not about the reports.
        for status in [401, 403, 404, 408, 429] {
            assert!(refusal(status, None).is_about_the_caller(), "{status}");
        }
    }

    #[tokio::test]
    async fn a_full_outbox_pauses_starts_and_drops_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let executor = Arc::new(Counting::default());
        let (mut reconciler, heard) = reconciler(dir.path(), 2, executor.clone());
        let mut state = State::default();
        state.outbox.statuses = vec![status(0), status(1)];
        let assigned = [assignment(0), assignment(1)];

        // At the cap: nothing starts, nothing is dropped, the heartbeat says so.
        reconciler.reconcile(&mut state, Some(&assigned)).await;
        assert_eq!(executor.0.load(Ordering::SeqCst), 0, "started past the cap");
        assert!(state.attempts.is_empty());
        assert_eq!(state.outbox.statuses, vec![status(0), status(1)]);
        let told = heard.borrow().clone();
        assert_eq!(told.outbox, Some(2));
        let why = told.starts_paused.expect("the heartbeat says starts pause");
        assert!(
            why.contains("outbox full") && why.contains("outbox_max 2"),
            "{why}"
        );

        // The server took one: one start, whose `running` report fills the
        // outbox again, so the second waits.
        state.outbox.statuses.remove(0);
        reconciler.reconcile(&mut state, Some(&assigned)).await;
        assert_eq!(executor.0.load(Ordering::SeqCst), 1);
        assert_eq!(state.attempts.len(), 1);
        assert_eq!(state.outbox.len(), 2);
        reconciler.reconcile(&mut state, Some(&assigned)).await;
        assert_eq!(executor.0.load(Ordering::SeqCst), 1, "the cap holds");
        assert!(heard.borrow().starts_paused.is_some());

        // All taken: starts resume, and the heartbeat stops saying paused.
        state.outbox = crate::state::Outbox::default();
        reconciler.reconcile(&mut state, Some(&assigned)).await;
        assert_eq!(executor.0.load(Ordering::SeqCst), 2);
        reconciler.reconcile(&mut state, Some(&assigned)).await;
        let told = heard.borrow().clone();
        assert_eq!(told.starts_paused, None, "{told:?}");
        assert_eq!(told.outbox, Some(1));
    }

    #[test]
    fn names_the_item_of_a_json_path() {
        assert_eq!(item_of_field("statuses[3].state"), Some(("statuses", 3)));
        assert_eq!(item_of_field("usage[0]"), Some(("usage", 0)));
        assert_eq!(item_of_field("statuses"), None);
        assert_eq!(item_of_field("usage[x]"), None);
        assert_eq!(item_of_field(""), None);
    }

    #[test]
    fn backoff_grows_with_jitter_and_a_cap() {
        let pauses: Vec<Duration> = backoff().take(12).collect();
        assert!(
            pauses[0] >= BACKOFF_MIN && pauses[0] < BACKOFF_MIN * 2,
            "{pauses:?}"
        );
        for pause in &pauses {
            assert!(*pause < BACKOFF_MAX * 2, "capped (plus jitter): {pauses:?}");
        }
        assert!(pauses[11] >= BACKOFF_MAX, "reaches the cap: {pauses:?}");
        // Two agents that fail together do not retry together.
        let other: Vec<Duration> = backoff().take(12).collect();
        assert_ne!(pauses, other, "jittered");
    }
}
