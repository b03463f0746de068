//! The helpers of the server tests: a database (a SQLite directory or a
//! fresh PostgreSQL database), the real `suanwang serve` process on it, an
//! HTTP client with a token, the CLI client, and the principals and sites
//! most tests need.

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sqlx::Connection as _;

/// How long a server may take from spawn to ready (PostgreSQL migrations
/// on a busy machine included).
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// One deployment's data: a temporary directory (the SQLite file, config
/// files, the CLI's config directory) and, on PostgreSQL, a fresh database
/// dropped at the end. The operator token is fixed per deployment so that
/// restarts keep it.
#[derive(Debug)]
pub struct Db {
    dir: tempfile::TempDir,
    pg: Option<PgDb>,
    pub operator: String,
}

#[derive(Debug)]
struct PgDb {
    admin: String,
    name: String,
    url: String,
}

static DATABASES: AtomicU32 = AtomicU32::new(0);

fn random_hex(chars: usize) -> String {
    // Version 7 ids end in random bits: the tail is the random part.
    let mut text = String::new();
    while text.len() < chars {
        text.push_str(&uuid::Uuid::now_v7().simple().to_string());
    }
    text.split_off(text.len() - chars)
}

impl Db {
    pub fn sqlite() -> Db {
        Db::with(None)
    }

    /// A fresh database under `SUANWANG_TEST_POSTGRES`; `None` (with the
    /// reason on stderr) when that is unset, unless
    /// `SUANWANG_REQUIRE_POSTGRES=1`, which makes a missing one fail.
    pub async fn postgres(test: &str) -> Option<Db> {
        let Some(admin) = std::env::var("SUANWANG_TEST_POSTGRES")
            .ok()
            .filter(|url| !url.is_empty())
        else {
            assert!(
                std::env::var("SUANWANG_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "{test}: SUANWANG_REQUIRE_POSTGRES=1 but SUANWANG_TEST_POSTGRES is not set \
                 (e.g. postgres://suanwang:suanwang@127.0.0.1:5432/suanwang)"
            );
            eprintln!("skipped {test}: set SUANWANG_TEST_POSTGRES=postgres://USER:PASSWORD@HOST/DB to run it");
            return None;
        };
        let name = format!(
            "suanwang_it_{}_{}_{}",
            std::process::id(),
            DATABASES.fetch_add(1, Ordering::Relaxed),
            random_hex(8)
        );
        let mut connection = sqlx::PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|error| {
                panic!("{test}: cannot connect to SUANWANG_TEST_POSTGRES: {error}")
            });
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut connection)
            .await
            .unwrap_or_else(|error| panic!("{test}: CREATE DATABASE {name}: {error}"));
        let _ = connection.close().await;
        let mut url = reqwest::Url::parse(&admin).expect("SUANWANG_TEST_POSTGRES is a URL");
        url.set_path(&format!("/{name}"));
        let pg = PgDb {
            admin,
            name,
            url: url.to_string(),
        };
        Some(Db::with(Some(pg)))
    }

    fn with(pg: Option<PgDb>) -> Db {
        let dir = tempfile::Builder::new()
            .prefix("suanwang-server-it-")
            .tempdir()
            .expect("a temporary directory");
        Db {
            dir,
            pg,
            operator: format!("swt_{}", random_hex(64)),
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `text` to a file in the deployment's directory.
    pub fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text)
            .unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
        path
    }

    fn serve_args_on(&self, listen: &str) -> Vec<String> {
        let mut args = vec![
            "serve".to_owned(),
            "--listen".to_owned(),
            listen.to_owned(),
            "--data-dir".to_owned(),
            self.dir.path().join("data").display().to_string(),
        ];
        if let Some(pg) = &self.pg {
            args.push("--db".to_owned());
            args.push(pg.url.clone());
        }
        args
    }

    /// Starts `suanwang serve` on this data and waits until it is ready.
    pub async fn serve(&self) -> Server {
        Server::start(self, None).await
    }

    /// The same with a `--config` TOML file holding `config`.
    pub async fn serve_with(&self, config: &str) -> Server {
        Server::start(self, Some(config)).await
    }

    /// The same on a fixed `listen` address (e.g. `127.0.0.1:PORT`), so a
    /// restarted server is found where its clients knew it.
    pub async fn serve_on(&self, config: &str, listen: &str) -> Server {
        Server::start_on(self, Some(config), listen).await
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let name = self.name.clone();
        // Drop may run inside a test's runtime: use a thread with its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let mut connection = sqlx::PgConnection::connect(&admin).await?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut connection)
                    .await?;
                connection.close().await?;
                Ok::<(), anyhow::Error>(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!(
                "warning: could not drop test database {}: {dropped:?}",
                self.name
            );
        }
    }
}

/// A running `suanwang serve` process, killed (SIGKILL) on drop.
#[derive(Debug)]
pub struct Server {
    child: Child,
    pub base: String,
    pub operator: String,
    pub cli_config: PathBuf,
    log: Arc<Mutex<String>>,
    http: reqwest::Client,
}

fn drain(stream: impl std::io::Read + Send + 'static, log: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut buffer = [0u8; 8192];
        while let Ok(n) = reader.read(&mut buffer) {
            if n == 0 {
                break;
            }
            log.lock()
                .expect("log lock")
                .push_str(&String::from_utf8_lossy(&buffer[..n]));
        }
    });
}

impl Server {
    async fn start(db: &Db, config: Option<&str>) -> Server {
        Server::start_on(db, config, "127.0.0.1:0").await
    }

    async fn start_on(db: &Db, config: Option<&str>, listen: &str) -> Server {
        let mut args = db.serve_args_on(listen);
        if let Some(config) = config {
            let path = db.file("serve.toml", config);
            args.push("--config".to_owned());
            args.push(path.display().to_string());
        }
        let mut command = Command::new(env!("CARGO_BIN_EXE_suanwang"));
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("SUANWANG_") {
                command.env_remove(name);
            }
        }
        let mut child = command
            .args(&args)
            .env("SUANWANG_OPERATOR_TOKEN", &db.operator)
            .env("SUANWANG_LOG", "info,sqlx=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot spawn suanwang serve");
        let log = Arc::new(Mutex::new(String::new()));
        drain(child.stderr.take().expect("stderr piped"), log.clone());
        let stdout = child.stdout.take().expect("stdout piped");
        let (address, addresses) = mpsc::channel();
        let stdout_log = log.clone();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if !sent {
                    if let Some(rest) = line.strip_prefix("suanwang serving on http://") {
                        let addr = rest
                            .split_whitespace()
                            .next()
                            .unwrap_or_default()
                            .to_owned();
                        let _ = address.send(addr);
                        sent = true;
                    }
                }
                let mut log = stdout_log.lock().expect("log lock");
                log.push_str(&line);
                log.push('\n');
            }
        });
        let addr = tokio::task::spawn_blocking(move || addresses.recv_timeout(START_TIMEOUT))
            .await
            .expect("waiting for the address");
        let mut server = Server {
            child,
            base: String::new(),
            operator: db.operator.clone(),
            cli_config: db.dir().join("cli"),
            log,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("HTTP client"),
        };
        let addr = match addr {
            Ok(addr) => addr,
            Err(_) => {
                let status = server.child.try_wait();
                panic!(
                    "suanwang serve did not print its address ({status:?}); its output:\n{}",
                    server.log()
                );
            }
        };
        server.base = format!("http://{addr}");
        let ready = Instant::now();
        loop {
            let answer = server
                .http
                .get(format!("{}/readyz", server.base))
                .send()
                .await;
            if answer.as_ref().is_ok_and(|answer| answer.status() == 200) {
                break;
            }
            assert!(
                ready.elapsed() < START_TIMEOUT,
                "{} never became ready: {answer:?}\n{}",
                server.base,
                server.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server
    }

    /// Everything the server wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().expect("log lock").clone()
    }

    /// kill -9, and reap it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// A client without a token.
    pub fn anonymous(&self) -> Api {
        Api {
            http: self.http.clone(),
            base: self.base.clone(),
            token: None,
        }
    }

    pub fn api(&self, token: &str) -> Api {
        Api {
            http: self.http.clone(),
            base: self.base.clone(),
            token: Some(token.to_owned()),
        }
    }

    pub fn operator(&self) -> Api {
        self.api(&self.operator)
    }

    /// The operator's token, for CLI runs.
    pub fn operator_token(&self) -> String {
        self.operator.clone()
    }

    /// Every tenant a test makes has this much in its wallet, so that
    /// holds at placement never stop work a test did not mean to stop:
    /// 10 million yuan.
    pub const TENANT_WALLET_MICRO: i64 = 10_000_000_000_000;

    /// The operator creates a tenant and tops its wallet up with
    /// [`Self::TENANT_WALLET_MICRO`]; the client carries its first token.
    pub async fn tenant(&self, name: &str) -> Principal {
        let tenant = self.principal("tenants", name).await;
        self.top_up(&tenant.id, Self::TENANT_WALLET_MICRO).await;
        tenant
    }

    /// A tenant with no wallet yet: nothing of its priced work is placed.
    pub async fn tenant_unfunded(&self, name: &str) -> Principal {
        self.principal("tenants", name).await
    }

    /// The operator tops `tenant`'s wallet up by `amount_micro`.
    pub async fn top_up(&self, tenant: &str, amount_micro: i64) {
        let id = format!("test-{}", topup_id(tenant, amount_micro));
        self.operator()
            .post(
                &format!("/v1/tenants/{tenant}/wallet/topups"),
                json!({ "topup_id": id, "amount_micro_yuan": amount_micro }),
            )
            .await
            .expect(200);
    }

    pub async fn provider(&self, name: &str) -> Principal {
        self.principal("providers", name).await
    }

    async fn principal(&self, what: &str, name: &str) -> Principal {
        let created = self
            .operator()
            .post(&format!("/v1/{what}"), json!({ "name": name }))
            .await
            .expect(201);
        let token = text(&created, "token");
        Principal {
            id: text(&created, "id"),
            api: self.api(&token),
            token,
        }
    }

    /// A site of `provider` in `region`: its id and the agent's client.
    pub async fn site(&self, provider: &Principal, name: &str, region: &str) -> Site {
        let created = provider
            .api
            .post("/v1/sites", json!({ "name": name, "region": region }))
            .await
            .expect(201);
        Site {
            id: text(&created, "id"),
            api: self.api(&text(&created, "token")),
        }
    }

    /// Runs the `suanwang` client command with `token`, against this server.
    pub async fn cli(&self, token: &str, args: &[&str]) -> Run {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_suanwang"));
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("SUANWANG_") {
                command.env_remove(name);
            }
        }
        let output = command
            .args(args)
            .env("SUANWANG_CONFIG_DIR", &self.cli_config)
            .env("SUANWANG_SERVER", &self.base)
            .env("SUANWANG_TOKEN", token)
            .stdin(Stdio::null())
            .output()
            .await
            .unwrap_or_else(|error| panic!("cannot run suanwang {args:?}: {error}"));
        Run {
            args: args.join(" "),
            code: output.status.code(),
            stdout: String::from_utf8(output.stdout).expect("stdout is UTF-8"),
            stderr: String::from_utf8(output.stderr).expect("stderr is UTF-8"),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        // A failing test shows what the server said.
        if std::thread::panicking() || std::env::var_os("SUANWANG_IT_SERVER_LOG").is_some() {
            eprintln!("--- log of suanwang serve at {}\n{}", self.base, self.log());
        }
    }
}

/// A tenant or provider: its id, its first token, and a client with it.
#[derive(Debug, Clone)]
pub struct Principal {
    pub id: String,
    pub token: String,
    pub api: Api,
}

/// A site and its agent's client.
#[derive(Debug, Clone)]
pub struct Site {
    pub id: String,
    pub api: Api,
}

impl Site {
    pub async fn put_pools(&self, pools: Value) -> Value {
        self.api
            .put(
                &format!("/v1/sites/{}/pools", self.id),
                json!({ "pools": pools }),
            )
            .await
            .expect(200)
    }

    pub async fn heartbeat(&self) -> Value {
        self.api
            .post(&format!("/v1/sites/{}/heartbeat", self.id), json!({}))
            .await
            .expect(200)
    }

    /// Heartbeats every `period` until the returned guard drops.
    pub fn keep_alive(&self, period: Duration) -> KeepAlive {
        let site = self.clone();
        KeepAlive(tokio::spawn(async move {
            loop {
                let _ = site
                    .api
                    .post(&format!("/v1/sites/{}/heartbeat", site.id), json!({}))
                    .await;
                tokio::time::sleep(period).await;
            }
        }))
    }

    pub async fn assignments(&self) -> Value {
        self.api
            .get(&format!("/v1/sites/{}/assignments", self.id))
            .await
            .expect(200)
    }

    pub async fn report(&self, body: Value) -> Value {
        self.api
            .post(&format!("/v1/sites/{}/reports", self.id), body)
            .await
            .expect(200)
    }
}

/// Stops a `keep_alive` loop when dropped.
#[derive(Debug)]
pub struct KeepAlive(tokio::task::JoinHandle<()>);

impl Drop for KeepAlive {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// An HTTP client of one server, with or without a bearer token.
#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::Client,
    pub base: String,
    token: Option<String>,
}

impl Api {
    /// The same server, another token (sent verbatim after `Bearer `).
    pub fn with_token(&self, token: &str) -> Api {
        Api {
            token: Some(token.to_owned()),
            ..self.clone()
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    async fn send(request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.expect("the server answers");
        let status = response.status().as_u16();
        let text = response.text().await.expect("a readable body");
        Reply { status, text }
    }

    pub async fn get(&self, path: &str) -> Reply {
        Api::send(self.request(reqwest::Method::GET, path)).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        Api::send(self.request(reqwest::Method::POST, path).json(&body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Reply {
        Api::send(self.request(reqwest::Method::PUT, path).json(&body)).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        Api::send(self.request(reqwest::Method::DELETE, path)).await
    }

    /// A POST with an `Idempotency-Key` and a body sent byte for byte.
    pub async fn post_keyed(&self, path: &str, key: &str, body: &[u8]) -> Reply {
        Api::send(
            self.request(reqwest::Method::POST, path)
                .header("idempotency-key", key)
                .header("content-type", "application/json")
                .body(body.to_vec()),
        )
        .await
    }

    /// The token this client sends.
    pub fn token(&self) -> &str {
        self.token.as_deref().expect("a client with a token")
    }

    /// A POST of `body` where a server that does not answer is an `Err`,
    /// not a panic.
    pub async fn try_post(
        &self,
        path: &str,
        body: &Value,
    ) -> Result<(u16, String), reqwest::Error> {
        let response = self
            .request(reqwest::Method::POST, path)
            .json(body)
            .send()
            .await?;
        let status = response.status().as_u16();
        Ok((status, response.text().await?))
    }

    /// The same, but a server that does not answer is an `Err`, not a panic.
    pub async fn try_post_keyed(
        &self,
        path: &str,
        key: &str,
        body: &[u8],
    ) -> Result<(u16, String), reqwest::Error> {
        let response = self
            .request(reqwest::Method::POST, path)
            .header("idempotency-key", key)
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await?;
        let status = response.status().as_u16();
        Ok((status, response.text().await?))
    }

    /// POSTs `body` over a plain socket and reads the answer, if any: a
    /// server that stops reading a body past its size limit answers and
    /// closes, and when unread bytes are left in its socket the close is a
    /// reset that may discard the answer (`None` then). An HTTP client
    /// library would fail on its first broken write instead of reading.
    pub async fn post_over_socket(&self, path: &str, body: Vec<u8>) -> Option<Reply> {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let host = self.base.strip_prefix("http://").expect("an http:// base");
        let stream = tokio::net::TcpStream::connect(host).await.expect("connect");
        let (mut reader, mut writer) = stream.into_split();
        let mut head = format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        );
        if let Some(token) = &self.token {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        head.push_str("\r\n");
        let sending = tokio::spawn(async move {
            // The server may stop reading: a failed write is expected.
            if writer.write_all(head.as_bytes()).await.is_ok() {
                let _ = writer.write_all(&body).await;
            }
            writer
        });
        let mut answer = Vec::new();
        let mut buffer = [0u8; 8192];
        loop {
            match tokio::time::timeout(Duration::from_secs(20), reader.read(&mut buffer)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => answer.extend_from_slice(&buffer[..n]),
                Err(_) => panic!("no answer to POST {path} in 20 s"),
            }
        }
        sending.abort();
        if answer.is_empty() {
            return None;
        }
        let answer = String::from_utf8_lossy(&answer).into_owned();
        let (head, text) = answer
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("no HTTP answer: {answer:?}"));
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("no status in {head:?}"));
        Some(Reply {
            status,
            text: text.to_owned(),
        })
    }

    /// Any method, any bytes: for malformed bodies.
    pub async fn raw(&self, method: reqwest::Method, path: &str, body: Vec<u8>) -> Reply {
        Api::send(
            self.request(method, path)
                .header("content-type", "application/json")
                .body(body),
        )
        .await
    }

    /// Submits a job; the job's view.
    pub async fn submit(&self, job: &Value) -> Value {
        self.post("/v1/jobs", job.clone()).await.expect(201)
    }

    pub async fn job(&self, id: &str) -> Value {
        self.get(&format!("/v1/jobs/{id}")).await.expect(200)
    }

    /// Every task of job `id`, all pages.
    pub async fn tasks(&self, id: &str) -> Vec<Value> {
        self.pages(&format!("/v1/jobs/{id}/tasks"), "tasks").await
    }

    /// Every event of job `id`, all pages.
    pub async fn events(&self, id: &str) -> Vec<Value> {
        self.pages(&format!("/v1/jobs/{id}/events"), "events").await
    }

    /// Every usage record of job `id`, all pages.
    pub async fn usage(&self, id: &str) -> Vec<Value> {
        self.pages(&format!("/v1/jobs/{id}/usage"), "usage").await
    }

    /// The `items` of every page of the list at `path`, following `next`.
    pub async fn pages(&self, path: &str, items: &str) -> Vec<Value> {
        let mut all = Vec::new();
        let mut page = self.get(path).await.expect(200);
        loop {
            all.extend(array(page[items].clone()));
            let next = match &page["next"] {
                Value::Null => return all,
                Value::String(next) => next.clone(),
                next => next.to_string(),
            };
            let separator = if path.contains('?') { '&' } else { '?' };
            page = self
                .get(&format!("{path}{separator}after={next}"))
                .await
                .expect(200);
        }
    }

    /// Every job the caller sees, all pages.
    pub async fn all_jobs(&self) -> Vec<Value> {
        let mut jobs = Vec::new();
        let mut path = "/v1/jobs?limit=1000".to_owned();
        loop {
            let page = self.get(&path).await.expect(200);
            jobs.extend(array(page["jobs"].clone()));
            match page["next"].as_str() {
                Some(next) => path = format!("/v1/jobs?limit=1000&after={next}"),
                None => return jobs,
            }
        }
    }

    /// Polls until every task of job `id` satisfies `done`; the tasks.
    pub async fn wait_tasks(
        &self,
        id: &str,
        what: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Vec<Value> {
        let api = self.clone();
        let id = id.to_owned();
        wait_for(what, Duration::from_secs(10), || {
            let api = api.clone();
            let id = id.clone();
            let done = &done;
            async move {
                let tasks = api.tasks(&id).await;
                (!tasks.is_empty() && tasks.iter().all(done)).then_some(tasks)
            }
        })
        .await
    }
}

/// An HTTP answer: status and body text.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {} {}", self.status, self.text))
    }

    /// The JSON body, after checking the status.
    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(self.status, status, "unexpected answer: {}", self.text);
        if self.text.is_empty() {
            Value::Null
        } else {
            self.json()
        }
    }

    /// Checks an error answer: status and `error.code`; the error object.
    #[track_caller]
    pub fn error(self, status: u16, code: &str) -> Value {
        assert_eq!(self.status, status, "unexpected answer: {}", self.text);
        let body = self.json();
        assert_eq!(body["error"]["code"], code, "unexpected error: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{body}"
        );
        body["error"].clone()
    }

    /// A 404 `not-found`, as for anything the caller may not see.
    #[track_caller]
    pub fn not_found(self) {
        self.error(404, "not-found");
    }
}

/// A finished CLI run.
#[derive(Debug)]
pub struct Run {
    pub args: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    #[track_caller]
    pub fn expect(self, code: i32) -> Run {
        assert_eq!(
            self.code,
            Some(code),
            "suanwang {}\n--- stdout\n{}\n--- stderr\n{}",
            self.args,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Standard output as one JSON document (`--output json`).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|error| {
            panic!(
                "suanwang {}: stdout is not JSON ({error}):\n{}",
                self.args, self.stdout
            )
        })
    }
}

#[track_caller]
pub fn text(value: &Value, field: &str) -> String {
    value[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} is not a string in {value}"))
        .to_owned()
}

#[track_caller]
pub fn array(value: Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items,
        other => panic!("not an array: {other}"),
    }
}

/// Polls `probe` every 100 ms until it gives a value, or fails after `limit`.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            started.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// examples/hello.toml as the JSON the API takes, renamed.
pub fn hello(name: &str) -> Value {
    let mut job = serde_json::to_value(
        toml::from_str::<toml::Table>(
            &std::fs::read_to_string(hello_path()).expect("examples/hello.toml"),
        )
        .expect("hello.toml is TOML"),
    )
    .expect("TOML converts to JSON");
    job["name"] = json!(name);
    job
}

pub fn hello_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/hello.toml")
}

/// One CPU pool as a provider declares it.
pub fn cpu_pool(name: &str, capacity: u64, price: f64) -> Value {
    json!({
        "name": name,
        "kind": "cpu",
        "family": "x86",
        "device_model": "test-cpu",
        "capacity": capacity,
        "price_yuan_per_unit_hour": price,
    })
}

/// The number of tasks of a job view in `state`.
pub fn count(job: &Value, state: &str) -> u64 {
    job["tasks"][state].as_u64().unwrap_or(0)
}

/// A top-up id unique per call: the tenant and a process-wide counter.
fn topup_id(tenant: &str, amount_micro: i64) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tail: String = tenant.chars().rev().take(24).collect();
    format!("{tail}-{amount_micro}-{n}")
}
