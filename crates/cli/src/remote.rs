//! The client commands: they talk to a `suanwang serve` over HTTP.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use suanwang_api::{
    CreatePrincipal, CreateSite, CreateToken, EventPage, JobList, JobRef, JobSpec, JobState,
    JobView, PrincipalCreated, PrincipalView, Quote, SiteCreated, SiteView, TaskPage, TaskState,
    TokenCreated, TokenView, TopologySpec, UsagePage, WhoAmI, Why,
};

use crate::client::{load_login, save_login, Client, ClientError, Login};
use crate::exit;
use crate::out::{print_json, say};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Output {
    #[default]
    Text,
    Json,
}

/// A client command group with its `--output` flag, which any of its
/// subcommands accepts (`suanwang job get ID --output json`).
#[derive(Debug, Args)]
pub struct WithOutput<C: Subcommand> {
    /// Output format: text for people, json (the API's own) for scripts.
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub output: Output,
    #[command(subcommand)]
    pub command: C,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The server, e.g. http://127.0.0.1:7070.
    server: String,
    /// An API token (`swt_...`), as `tenant create` or `token create` printed it.
    token: String,
    /// Output format: text for people, json (the API's own) for scripts.
    #[arg(long, value_enum, default_value = "text")]
    output: Output,
}

#[derive(Debug, Subcommand)]
pub enum PrincipalCommand {
    /// Create one (operator only); prints its first token once.
    Create {
        /// Its name: letters, digits, '-' and '_'.
        name: String,
    },
    /// List them with their ids.
    List,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// A new API token for yourself; shown once.
    Create {
        /// A name to tell it by in `token list`.
        #[arg(long)]
        name: Option<String>,
    },
    /// Your tokens (ids and names, never the secrets).
    List,
    /// Revoke a token at once: requests with it answer 401.
    Revoke {
        /// The token's id, as `token list` shows it.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum SiteCommand {
    /// Register a site (provider only); prints the site agent's token once.
    Create {
        /// The site's name, unique for its provider.
        name: String,
        /// The region it is in: an id of `topology show`, e.g. shanghai.
        #[arg(long)]
        region: String,
    },
    /// Sites with their health and pools (usage of each pool).
    List,
}

#[derive(Debug, Subcommand)]
pub enum TopologyCommand {
    /// The regions with their coordinates, and the carbon price.
    Show,
    /// Replace the topology with a JSON file (operator only).
    Load {
        /// The topology: a JSON file as `topology show --output json` prints it.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// Submit a job from a TOML or JSON file.
    Submit {
        /// The job file; JSON when it ends in .json, else TOML (see examples/).
        file: PathBuf,
        /// Wait until the job finishes; exit 1 unless it succeeded.
        #[arg(long)]
        wait: bool,
        /// Makes a retried submit harmless [default: a new random key].
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Where a job would run now and what it would cost (nothing is submitted).
    Quote {
        /// The job file; JSON when it ends in .json, else TOML (see examples/).
        file: PathBuf,
    },
    /// Your jobs, oldest first, a page at a time.
    List {
        /// Start after this job id (the `more: --after` of the page before).
        #[arg(long)]
        after: Option<String>,
        /// Jobs per page, at most 1000.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// One job: its state and task counts, and why it waits.
    Get {
        /// The job's id.
        id: String,
    },
    /// Cancel a job: its waiting tasks end, its running tasks are stopped.
    Cancel {
        /// The job's id.
        id: String,
        /// Makes a retried cancel harmless [default: a new random key].
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Follow a job with a progress bar until it finishes.
    Watch {
        /// The job's id.
        id: String,
    },
    /// Why the job waits.
    Why {
        /// The job's id.
        id: String,
    },
    /// The job's tasks: state, attempt, and where each runs or ran.
    Tasks {
        /// The job's id.
        id: String,
    },
    /// The job's events in order: submitted, placed, running, ended, ...
    Events {
        /// The job's id.
        id: String,
    },
    /// Raw usage records of the job.
    Usage {
        /// The job's id.
        id: String,
    },
}

pub fn client() -> anyhow::Result<Client> {
    Client::new(&load_login()?)
}

/// A quote for people: one line per site, then the total and why the
/// rest would wait.
fn quote_text(quote: &Quote) -> Vec<String> {
    use crate::market::yuan;
    let mut lines = Vec::new();
    for line in &quote.lines {
        lines.push(format!(
            "{}/{} ({})  {} tasks at {} yuan/unit-hour  compute {}  transfer {}  = {} yuan",
            line.site_name,
            line.pool_name,
            line.region,
            line.tasks,
            yuan(line.price_micro_yuan_per_unit_hour),
            yuan(line.compute_micro_yuan),
            yuan(line.transfer_micro_yuan),
            yuan(line.total_micro_yuan),
        ));
    }
    lines.push(format!(
        "{} of {} tasks would be placed now; estimated total {} yuan",
        quote.tasks_placed,
        quote.tasks,
        yuan(quote.total_micro_yuan)
    ));
    if let Some(why) = &quote.why {
        lines.push(format!("the rest would wait: {why}"));
    }
    lines
}

/// Runs a client command; API errors keep their exit codes.
pub async fn run<F>(future: F) -> anyhow::Result<u8>
where
    F: std::future::Future<Output = anyhow::Result<u8>>,
{
    match future.await {
        Ok(code) => Ok(code),
        Err(error) => match error.downcast_ref::<ClientError>() {
            Some(client_error) => {
                crate::out::warn(format!("error: {client_error}"));
                Ok(client_error.code)
            }
            None => Err(error),
        },
    }
}

pub async fn login(args: LoginArgs) -> anyhow::Result<u8> {
    let output = args.output;
    let login = Login {
        server: args.server,
        token: args.token,
    };
    let client = Client::new(&login)?;
    let who: WhoAmI = client.get("/v1/whoami").await?;
    let path = save_login(&login)?;
    match output {
        Output::Json => print_json(&who)?,
        Output::Text => say(format!(
            "signed in to {} as {} {} ({}); saved in {}",
            client.base(),
            who.principal.role,
            who.principal.name,
            who.principal.id,
            path.display()
        )),
    }
    Ok(exit::OK)
}

pub async fn principal(
    role: &str,
    command: PrincipalCommand,
    output: Output,
) -> anyhow::Result<u8> {
    let client = client()?;
    let path = format!("/v1/{role}s");
    match command {
        PrincipalCommand::Create { name } => {
            let body = serde_json::to_value(CreatePrincipal { name })?;
            let created: PrincipalCreated = client.post(&path, &body).await?;
            match output {
                Output::Json => print_json(&created)?,
                Output::Text => {
                    say(format!("{role} {} created: {}", created.name, created.id));
                    say(format!("token (shown once): {}", created.token));
                }
            }
        }
        PrincipalCommand::List => {
            let list: Vec<PrincipalView> = client.get(&path).await?;
            match output {
                Output::Json => print_json(&list)?,
                Output::Text => {
                    for p in list {
                        say(format!("{}  {}", p.id, p.name));
                    }
                }
            }
        }
    }
    Ok(exit::OK)
}

pub async fn token(command: TokenCommand, output: Output) -> anyhow::Result<u8> {
    let client = client()?;
    match command {
        TokenCommand::Create { name } => {
            let created: TokenCreated = client
                .post("/v1/tokens", &serde_json::to_value(CreateToken { name })?)
                .await?;
            match output {
                Output::Json => print_json(&created)?,
                Output::Text => say(format!(
                    "token {} (shown once): {}",
                    created.id, created.token
                )),
            }
        }
        TokenCommand::List => {
            let list: Vec<TokenView> = client.get("/v1/tokens").await?;
            match output {
                Output::Json => print_json(&list)?,
                Output::Text => {
                    for t in list {
                        say(format!(
                            "{}  {}{}",
                            t.id,
                            t.name,
                            if t.revoked { "  (revoked)" } else { "" }
                        ));
                    }
                }
            }
        }
        TokenCommand::Revoke { id } => {
            client
                .send_text(
                    reqwest::Method::DELETE,
                    &format!("/v1/tokens/{id}"),
                    None,
                    None,
                )
                .await?;
            match output {
                Output::Json => print_json(&Revoked {
                    id,
                    state: "revoked",
                })?,
                Output::Text => say(format!("token {id} revoked")),
            }
        }
    }
    Ok(exit::OK)
}

pub async fn site(command: SiteCommand, output: Output) -> anyhow::Result<u8> {
    let client = client()?;
    match command {
        SiteCommand::Create { name, region } => {
            let created: SiteCreated = client
                .post(
                    "/v1/sites",
                    &serde_json::to_value(CreateSite { name, region })?,
                )
                .await?;
            match output {
                Output::Json => print_json(&created)?,
                Output::Text => {
                    say(format!(
                        "site {} in {} created: {}",
                        created.name, created.region, created.id
                    ));
                    say(format!("agent token (shown once): {}", created.token));
                }
            }
        }
        SiteCommand::List => {
            let sites: Vec<SiteView> = client.get("/v1/sites").await?;
            match output {
                Output::Json => print_json(&sites)?,
                Output::Text => {
                    for site in sites {
                        say(format!(
                            "{}  {}  {}  {}",
                            site.id,
                            site.name,
                            site.region,
                            if site.healthy { "healthy" } else { "unhealthy" }
                        ));
                        if let Some(why) = &site.agent_starts_paused {
                            say(format!("    starts no new attempts: {why}"));
                        }
                        for pool in site.pools {
                            say(format!(
                                "    {}  {} {}  {}/{} used  {} yuan/unit-hour",
                                pool.spec.name,
                                pool.spec.kind.as_str(),
                                pool.spec.family,
                                pool.used,
                                pool.spec.capacity,
                                pool.spec.price_yuan_per_unit_hour
                            ));
                        }
                    }
                }
            }
        }
    }
    Ok(exit::OK)
}

pub async fn topology(command: TopologyCommand, output: Output) -> anyhow::Result<u8> {
    let client = client()?;
    let topology: TopologySpec = match command {
        TopologyCommand::Show => client.get("/v1/topology").await?,
        TopologyCommand::Load { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let body: serde_json::Value =
                serde_json::from_str(&text).with_context(|| format!("{}", file.display()))?;
            client
                .send(reqwest::Method::PUT, "/v1/topology", Some(&body), None)
                .await?
        }
    };
    match output {
        Output::Json => print_json(&topology)?,
        Output::Text => {
            say(format!(
                "{} regions, carbon {} yuan/kg",
                topology.regions.len(),
                topology.carbon_yuan_per_kg
            ));
            for region in &topology.regions {
                say(format!(
                    "  {:<14} {:<36} {:>8.3} {:>8.3}",
                    region.id, region.name, region.lat_deg, region.lon_deg
                ));
            }
        }
    }
    Ok(exit::OK)
}

/// Where a task ran, for people: `site/pool in region`, by name (the ids
/// are in `--output json`); an id stands in for a name the server did not
/// send (one older than the names).
pub fn where_ran(
    site: &str,
    site_name: Option<&str>,
    region: Option<&str>,
    pool: &str,
    pool_name: Option<&str>,
) -> String {
    let site = site_name.unwrap_or(site);
    let pool = pool_name.unwrap_or(pool);
    match region {
        Some(region) => format!("{site}/{pool} in {region}"),
        None => format!("{site}/{pool}"),
    }
}

/// Reads a job file: JSON if it ends in `.json`, TOML otherwise.
pub fn read_job(path: &Path) -> anyhow::Result<JobSpec> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    if path.extension().is_some_and(|ext| ext == "json") {
        serde_json::from_str(&text).with_context(|| format!("{}", path.display()))
    } else {
        toml::from_str(&text).with_context(|| format!("{}", path.display()))
    }
}

fn summary(job: &JobView) -> String {
    let tasks: Vec<String> = job
        .tasks
        .iter()
        .map(|(state, n)| format!("{n} {state}"))
        .collect();
    format!(
        "{}  {}  {}  [{}]",
        job.id,
        job.name,
        job.state.as_str(),
        tasks.join(", ")
    )
}

/// The answer `token revoke --output json` prints: `{"id": ..., "state":
/// "revoked"}` (a token's state, not a job's: `JobRef` will not carry it).
#[derive(Debug, serde::Serialize)]
struct Revoked {
    id: String,
    state: &'static str,
}

/// Whether `job watch` counts tasks in the state named `state` as done:
/// every terminal state, `lost` included.
fn task_done(state: &str) -> bool {
    TaskState::ALL
        .iter()
        .any(|done| done.is_terminal() && done.as_str() == state)
}

async fn watch(client: &Client, id: &str, output: Output, bar: bool) -> anyhow::Result<u8> {
    let progress = (bar && output == Output::Text && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {msg} [{bar:40}] {pos}/{len} tasks done",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar
    });
    // Looks again soon, then less often (up to every 2 s, jittered).
    let mut pauses = backon::BackoffBuilder::build(crate::client::backoff(Duration::from_secs(2)));
    loop {
        let job: JobView = client.get(&format!("/v1/jobs/{id}")).await?;
        let done: u64 = job
            .tasks
            .iter()
            .filter(|(s, _)| task_done(s))
            .map(|(_, n)| n)
            .sum();
        if let Some(bar) = &progress {
            bar.set_length(job.spec.tasks);
            bar.set_position(done);
            bar.set_message(job.state.as_str());
        }
        if job.state.is_terminal() {
            if let Some(bar) = &progress {
                bar.finish();
            }
            match output {
                Output::Json => print_json(&job)?,
                Output::Text => say(summary(&job)),
            }
            return Ok(if job.state == JobState::Succeeded {
                exit::OK
            } else {
                exit::REJECTED
            });
        }
        tokio::time::sleep(pauses.next().unwrap_or(Duration::from_secs(2))).await;
    }
}

pub async fn job(command: JobCommand, output: Output) -> anyhow::Result<u8> {
    let client = client()?;
    match command {
        JobCommand::Submit {
            file,
            wait,
            idempotency_key,
        } => {
            let spec = read_job(&file)?;
            let key = idempotency_key.unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
            let body = serde_json::to_value(&spec)?;
            let job: JobView = client
                .send(reqwest::Method::POST, "/v1/jobs", Some(&body), Some(&key))
                .await?;
            if wait {
                if output == Output::Text {
                    say(format!("submitted {}", job.id));
                }
                return watch(&client, &job.id, output, true).await;
            }
            match output {
                Output::Json => print_json(&job)?,
                Output::Text => say(format!("submitted {}", job.id)),
            }
        }
        JobCommand::Quote { file } => {
            let spec = read_job(&file)?;
            let body = serde_json::to_value(&spec)?;
            let quote: Quote = client.post("/v1/jobs/quote", &body).await?;
            match output {
                Output::Json => print_json(&quote)?,
                Output::Text => {
                    for line in quote_text(&quote) {
                        say(line);
                    }
                }
            }
        }
        JobCommand::List { after, limit } => {
            let mut path = format!("/v1/jobs?limit={limit}");
            if let Some(after) = after {
                path.push_str(&format!("&after={after}"));
            }
            let list: JobList = client.get(&path).await?;
            match output {
                Output::Json => print_json(&list)?,
                Output::Text => {
                    for job in &list.jobs {
                        say(summary(job));
                    }
                    if let Some(next) = list.next {
                        say(format!("more: --after {next}"));
                    }
                }
            }
        }
        JobCommand::Get { id } => {
            let job: JobView = client.get(&format!("/v1/jobs/{id}")).await?;
            match output {
                Output::Json => print_json(&job)?,
                Output::Text => {
                    say(summary(&job));
                    if let Some(why) = job.why {
                        say(why);
                    }
                }
            }
        }
        JobCommand::Cancel {
            id,
            idempotency_key,
        } => {
            let key = idempotency_key.unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
            let answer: JobRef = client
                .send(
                    reqwest::Method::POST,
                    &format!("/v1/jobs/{id}/cancel"),
                    None,
                    Some(&key),
                )
                .await?;
            match output {
                Output::Json => print_json(&answer)?,
                Output::Text => say(format!("{} {}", answer.id, answer.state.as_str())),
            }
        }
        JobCommand::Watch { id } => return watch(&client, &id, output, true).await,
        JobCommand::Why { id } => {
            let why: Why = client.get(&format!("/v1/jobs/{id}/why")).await?;
            match output {
                Output::Json => print_json(&why)?,
                Output::Text => say(format!(
                    "{} is {}{}",
                    why.job,
                    why.state.as_str(),
                    why.why
                        .map(|w| format!(":\n{w}"))
                        .unwrap_or_else(|| " (not waiting)".into())
                )),
            }
        }
        JobCommand::Tasks { id } => {
            let tasks = client
                .get_all::<TaskPage>(&format!("/v1/jobs/{id}/tasks"))
                .await?;
            match output {
                Output::Json => print_json(&tasks)?,
                Output::Text => {
                    for t in tasks {
                        let place = match &t.site {
                            Some(site) => format!(
                                "  {}",
                                where_ran(
                                    site,
                                    t.site_name.as_deref(),
                                    t.site_region.as_deref(),
                                    t.pool.as_deref().unwrap_or("-"),
                                    t.pool_name.as_deref(),
                                )
                            ),
                            None => String::new(),
                        };
                        say(format!(
                            "{:>6}  {:<10} attempt {}{place}{}",
                            t.index,
                            t.state.as_str(),
                            t.attempt,
                            t.reason.map(|r| format!("  {r}")).unwrap_or_default()
                        ));
                    }
                }
            }
        }
        JobCommand::Events { id } => {
            let events = client
                .get_all::<EventPage>(&format!("/v1/jobs/{id}/events"))
                .await?;
            match output {
                Output::Json => print_json(&events)?,
                Output::Text => {
                    for e in events {
                        let task = e.task.map(|t| format!(" task {t}")).unwrap_or_default();
                        say(format!(
                            "{:>6}  {}  {}{}: {}",
                            e.seq,
                            e.at_ms,
                            e.kind.as_str(),
                            task,
                            e.detail
                        ));
                    }
                }
            }
        }
        JobCommand::Usage { id } => {
            let usage = client
                .get_all::<UsagePage>(&format!("/v1/jobs/{id}/usage"))
                .await?;
            match output {
                Output::Json => print_json(&usage)?,
                Output::Text => {
                    for u in usage {
                        say(format!(
                            "task {} attempt {} #{}  {}  {} units x {} ms",
                            u.task,
                            u.attempt,
                            u.seq,
                            where_ran(
                                &u.site,
                                u.site_name.as_deref(),
                                u.site_region.as_deref(),
                                &u.pool,
                                u.pool_name.as_deref(),
                            ),
                            u.units,
                            u.wall_ms
                        ));
                    }
                }
            }
        }
    }
    Ok(exit::OK)
}

/// `place export`: the current round as a placement problem file.
pub async fn export(output_file: Option<PathBuf>) -> anyhow::Result<u8> {
    let client = client()?;
    let text = client
        .send_text(reqwest::Method::GET, "/v1/place/export", None, None)
        .await?;
    match output_file {
        Some(path) => {
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        }
        None => say(text.trim_end()),
    }
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::task_done;

    #[test]
    fn job_watch_counts_every_terminal_task_as_done() {
        for state in ["succeeded", "failed", "cancelled", "lost"] {
            assert!(task_done(state), "{state}");
        }
        for state in ["pending", "placed", "running", "bogus"] {
            assert!(!task_done(state), "{state}");
        }
    }
}
