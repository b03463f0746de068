//! The HTTP client of the CLI: where the server is, which token to send,
//! and how API errors become messages and exit codes.
//!
//! Sign-in is stored by `suanwang login` in `config.toml` under the user's
//! config directory (mode 0600); `SUANWANG_SERVER` and `SUANWANG_TOKEN`
//! override it. Named profiles (`suanwang --profile operator ...`, saved
//! with `suanwang login --profile NAME`) sit beside it in the same file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context as _;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use suanwang_api::ErrorBody;

use crate::exit;

/// Attempts of one request when the server cannot be reached.
pub const ATTEMPTS_MAX: usize = 4;
/// The first pause before a retry; later ones double, up to `max`.
pub const BACKOFF_MIN: Duration = Duration::from_millis(200);

/// The CLI's one retry policy: pauses from [`BACKOFF_MIN`] doubling to
/// `max`, each plus a random jitter of up to as much again, so clients that
/// failed together do not all come back at the same instant. Unbounded;
/// callers set `with_max_times`.
pub fn backoff(max: Duration) -> backon::ExponentialBuilder {
    backon::ExponentialBuilder::default()
        .with_min_delay(BACKOFF_MIN)
        .with_max_delay(max)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
}

#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    pub server: String,
    pub token: String,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("server", &self.server)
            .field("token", &"<redacted>")
            .finish()
    }
}

pub fn config_path() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("SUANWANG_CONFIG_DIR") {
        return Ok(PathBuf::from(dir).join("config.toml"));
    }
    let dir = dirs::config_dir()
        .context("no config directory for this user (set SUANWANG_CONFIG_DIR)")?;
    Ok(dir.join("suanwang").join("config.toml"))
}

/// The CLI's config file: the default sign-in at the top, and named
/// profiles (`suanwang --profile NAME ...`) under `[profiles.NAME]`.
#[derive(Clone, Default, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: String,
    #[serde(default)]
    pub token: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub profiles: BTreeMap<String, Login>,
}

/// The longest profile name, and what one may contain.
pub const PROFILE_LEN_MAX: usize = 64;

/// The profile this process was asked for (`--profile` / `SUANWANG_PROFILE`),
/// set once by `main` before any command runs.
static PROFILE: OnceLock<Option<String>> = OnceLock::new();

/// Selects the saved sign-in every later `load_login` and `save_login`
/// uses; `None`: the default one.
pub fn use_profile(profile: Option<String>) -> anyhow::Result<()> {
    if let Some(name) = &profile {
        check_profile(name)?;
    }
    PROFILE
        .set(profile)
        .map_err(|_| anyhow::anyhow!("the profile is chosen once"))
}

fn profile() -> Option<&'static str> {
    PROFILE.get().and_then(|profile| profile.as_deref())
}

fn check_profile(name: &str) -> anyhow::Result<()> {
    let plain = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if name.is_empty() || name.len() > PROFILE_LEN_MAX || !plain {
        anyhow::bail!(
            "--profile: {name:?} is not a profile name (1 to {PROFILE_LEN_MAX} of A-Z a-z 0-9 - _)"
        );
    }
    Ok(())
}

fn read_config(path: &Path) -> anyhow::Result<Config> {
    if !path.exists() {
        return Ok(Config::default());
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("reading {}", path.display()))
}

/// Saves `login` as the default sign-in, or as the profile chosen with
/// `--profile`; the rest of the file is kept.
pub fn save_login(login: &Login) -> anyhow::Result<PathBuf> {
    save_login_as(profile(), login)
}

/// Saves `login` as profile `name` (`None`: the default sign-in).
pub fn save_login_as(name: Option<&str>, login: &Login) -> anyhow::Result<PathBuf> {
    let path = config_path()?;
    let dir = path.parent().context("config path has a parent")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut config = read_config(&path)?;
    match name {
        Some(name) => {
            check_profile(name)?;
            config.profiles.insert(name.to_owned(), login.clone());
        }
        None => {
            config.server = login.server.clone();
            config.token = login.token.clone();
        }
    }
    let text = toml::to_string(&config)?;
    let temporary = path.with_extension("toml.tmp");
    {
        use std::io::Write as _;
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
    }
    std::fs::rename(&temporary, &path)?;
    Ok(path)
}

/// The sign-in to use. With `--profile NAME`: that saved profile, and
/// nothing else (a profile that is not saved is an error naming the saved
/// ones; `SUANWANG_SERVER` and `SUANWANG_TOKEN` do not override a profile
/// asked for by name). Without: the default sign-in, then the environment.
pub fn load_login() -> anyhow::Result<Login> {
    let path = config_path();
    if let Some(name) = profile() {
        let path = path?;
        let config = read_config(&path)?;
        return config.profiles.get(name).cloned().ok_or_else(|| {
            let saved: Vec<&str> = config.profiles.keys().map(String::as_str).collect();
            anyhow::anyhow!(
                "--profile: no profile {name:?} in {} (saved: {}); save one with `suanwang login --profile {name} SERVER TOKEN`",
                path.display(),
                if saved.is_empty() { "none".to_owned() } else { saved.join(", ") }
            )
        });
    }
    let config = match path {
        Ok(path) => read_config(&path)?,
        Err(_) => Config::default(),
    };
    let mut login = Login {
        server: config.server,
        token: config.token,
    };
    if let Ok(server) = std::env::var("SUANWANG_SERVER") {
        login.server = server;
    }
    if let Ok(token) = std::env::var("SUANWANG_TOKEN") {
        login.token = token;
    }
    if login.server.is_empty() {
        login.server = "http://127.0.0.1:7070".into();
    }
    Ok(login)
}

/// An error answer of the API or a failure to reach it, with the exit code
/// a script sees.
#[derive(Debug)]
pub struct ClientError {
    pub code: u8,
    pub message: String,
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ClientError {}

#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Client {
    pub fn new(login: &Login) -> anyhow::Result<Client> {
        let base = login.server.trim_end_matches('/').to_owned();
        anyhow::ensure!(
            base.starts_with("http://"),
            "server {base:?}: only http:// URLs are supported (put TLS in front with a reverse proxy)"
        );
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(60))
            .build()?;
        Ok(Client {
            base,
            token: login.token.clone(),
            http,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends a request, retrying only when the server could not be reached
    /// (the request never arrived, or it carries an idempotency key).
    pub async fn send<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
        idempotency_key: Option<&str>,
    ) -> Result<T, ClientError> {
        let text = self.send_text(method, path, body, idempotency_key).await?;
        serde_json::from_str(&text).map_err(|error| ClientError {
            code: exit::UNAVAILABLE,
            message: format!("unexpected answer from {}{path}: {error}", self.base),
        })
    }

    pub async fn send_text(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
        idempotency_key: Option<&str>,
    ) -> Result<String, ClientError> {
        use backon::Retryable as _;

        let url = format!("{}{path}", self.base);
        // Only a request that never arrived, a GET, or one with an
        // idempotency key may be sent again.
        let resendable = |error: &Unreached| {
            error.0.is_connect() || idempotency_key.is_some() || method == reqwest::Method::GET
        };
        let once = || async {
            let mut request = self.http.request(method.clone(), &url);
            if !self.token.is_empty() {
                request = request.bearer_auth(&self.token);
            }
            if let Some(key) = idempotency_key {
                request = request.header(suanwang_api::IDEMPOTENCY_KEY_HEADER, key);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            request.send().await.map_err(Unreached)
        };
        let response = once
            .retry(backoff(Duration::from_secs(2)).with_max_times(ATTEMPTS_MAX - 1))
            .sleep(tokio::time::sleep)
            .when(resendable)
            .await
            .map_err(|Unreached(error)| ClientError {
                code: exit::UNAVAILABLE,
                message: format!("cannot reach {url}: {error}"),
            })?;
        let status = response.status();
        let text = response.text().await.map_err(|error| ClientError {
            code: exit::UNAVAILABLE,
            message: format!("reading the answer of {url}: {error}"),
        })?;
        if status.is_success() {
            return Ok(text);
        }
        Err(api_error(status, &text))
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.send(reqwest::Method::GET, path, None, None).await
    }

    /// Every item of a paged list at `path` (with or without a query
    /// string of its own): page after page, each asked `after` the previous
    /// page's `next`, until a page has none.
    pub async fn get_all<P: Page>(&self, path: &str) -> Result<Vec<P::Item>, ClientError> {
        let mut items = Vec::new();
        let mut page: P = self.get(path).await?;
        loop {
            let (more, next) = page.split();
            items.extend(more);
            let Some(next) = next else {
                return Ok(items);
            };
            let join = if path.contains('?') { '&' } else { '?' };
            page = self.get(&format!("{path}{join}after={next}")).await?;
        }
    }

    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<T, ClientError> {
        self.send(reqwest::Method::POST, path, Some(body), None)
            .await
    }
}

/// A page of a list: its items, and the cursor of the next page.
pub trait Page: DeserializeOwned {
    type Item;
    fn split(self) -> (Vec<Self::Item>, Option<String>);
}

impl Page for suanwang_api::TaskPage {
    type Item = suanwang_api::TaskView;
    fn split(self) -> (Vec<Self::Item>, Option<String>) {
        (self.tasks, self.next.map(|next| next.to_string()))
    }
}

impl Page for suanwang_api::EventPage {
    type Item = suanwang_api::EventView;
    fn split(self) -> (Vec<Self::Item>, Option<String>) {
        (self.events, self.next.map(|next| next.to_string()))
    }
}

impl Page for suanwang_api::MarketPage {
    type Item = suanwang_api::MarketPool;
    fn split(self) -> (Vec<Self::Item>, Option<String>) {
        (self.pools, self.next)
    }
}

impl Page for suanwang_api::UsagePage {
    type Item = suanwang_api::UsageView;
    fn split(self) -> (Vec<Self::Item>, Option<String>) {
        (self.usage, self.next)
    }
}

impl Page for suanwang_api::JobList {
    type Item = suanwang_api::JobView;
    fn split(self) -> (Vec<Self::Item>, Option<String>) {
        (self.jobs, self.next)
    }
}

/// A request that got no answer.
#[derive(Debug)]
struct Unreached(reqwest::Error);

fn api_error(status: reqwest::StatusCode, text: &str) -> ClientError {
    let code = match status.as_u16() {
        400 | 413 | 422 => exit::INPUT,
        401 | 403 | 404 => exit::DENIED,
        409 | 429 => exit::CONFLICT,
        _ => exit::UNAVAILABLE,
    };
    let message = match serde_json::from_str::<ErrorBody>(text) {
        Ok(body) => match body.error.field {
            Some(field) if !field.is_empty() => format!(
                "{} ({}): {field}: {}",
                status.as_u16(),
                body.error.code,
                body.error.message
            ),
            _ => format!(
                "{} ({}): {}",
                status.as_u16(),
                body.error.code,
                body.error.message
            ),
        },
        Err(_) => format!("{status}: {}", text.chars().take(500).collect::<String>()),
    };
    ClientError { code, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_with_jitter_and_a_cap() {
        let max = Duration::from_secs(2);
        let take = || -> Vec<Duration> {
            backon::BackoffBuilder::build(backoff(max).with_max_times(ATTEMPTS_MAX - 1)).collect()
        };
        let pauses = take();
        assert_eq!(pauses.len(), ATTEMPTS_MAX - 1, "{pauses:?}");
        for (i, pause) in pauses.iter().enumerate() {
            let base = (BACKOFF_MIN * 2u32.pow(i as u32)).min(max);
            assert!(
                *pause >= base && *pause < base * 2,
                "pause {i}: {pause:?} is {base:?} plus a jitter below as much again"
            );
        }
        assert_ne!(take(), pauses, "two clients do not retry in step");
    }
}
