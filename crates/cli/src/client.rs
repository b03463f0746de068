//! The HTTP client of the CLI: where the server is, which token to send,
//! and how API errors become messages and exit codes.
//!
//! Sign-in is stored by `suanwang login` in `config.toml` under the user's
//! config directory (mode 0600); `SUANWANG_SERVER` and `SUANWANG_TOKEN`
//! override it.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use suanwang_api::ErrorBody;

use crate::exit;

/// Attempts of one request when the server cannot be reached; each retry
/// waits twice as long as the one before.
pub const ATTEMPTS_MAX: u32 = 4;

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

pub fn save_login(login: &Login) -> anyhow::Result<PathBuf> {
    let path = config_path()?;
    let dir = path.parent().context("config path has a parent")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let text = toml::to_string(login)?;
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

pub fn load_login() -> anyhow::Result<Login> {
    let mut login = match config_path() {
        Ok(path) if path.exists() => {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            toml::from_str(&text).with_context(|| format!("reading {}", path.display()))?
        }
        _ => Login::default(),
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
        let url = format!("{}{path}", self.base);
        let mut pause = Duration::from_millis(200);
        let mut attempt = 1;
        loop {
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
            match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    let text = response.text().await.map_err(|error| ClientError {
                        code: exit::UNAVAILABLE,
                        message: format!("reading the answer of {url}: {error}"),
                    })?;
                    if status.is_success() {
                        return Ok(text);
                    }
                    return Err(api_error(status, &text));
                }
                Err(error) => {
                    let safe = error.is_connect()
                        || idempotency_key.is_some()
                        || method == reqwest::Method::GET;
                    if !safe || attempt >= ATTEMPTS_MAX {
                        return Err(ClientError {
                            code: exit::UNAVAILABLE,
                            message: format!("cannot reach {url}: {error}"),
                        });
                    }
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                    attempt += 1;
                }
            }
        }
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.send(reqwest::Method::GET, path, None, None).await
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
