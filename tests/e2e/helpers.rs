//! Starting and stopping `arca` processes and private PostgreSQL clusters.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Which metadata store a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs an async test body once per backend: `both_backends!(name);` defines
/// `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! both_backends {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::helpers::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::helpers::Backend::Postgres).await
            }
        }
    };
}

pub const ADMIN_PASSWORD: &str = "correct-horse-battery-staple";

/// Path of a workspace binary, next to the test executable's directory.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let path = dir.join(name);
    assert!(path.exists(), "{} is missing: build the workspace binaries first (make test does)", path.display());
    path
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

/// A fresh PostgreSQL database on the cluster `make test` started.
pub async fn fresh_pg_database() -> String {
    let admin_url = std::env::var("ARCA_TEST_DATABASE_URL")
        .expect("ARCA_TEST_DATABASE_URL is not set: run the tests through `make test`, which starts PostgreSQL");
    let name = format!("arca_{}", uuid::Uuid::new_v4().simple());
    let pool = sqlx::PgPool::connect(&admin_url).await.expect("connect to the test PostgreSQL");
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&pool).await.unwrap();
    pool.close().await;
    let base = admin_url.rsplit_once('/').unwrap().0;
    format!("{base}/{name}")
}

pub const MINIO_USER: &str = "arca-test";
pub const MINIO_PASSWORD: &str = "arca-test-secret";

/// The MinIO server `make test` started (scripts/minio.sh).
pub struct Minio {
    pub endpoint: String,
    /// Where MinIO keeps its files.
    pub data_dir: PathBuf,
}

impl Minio {
    pub fn from_env() -> Self {
        let endpoint = std::env::var("ARCA_TEST_S3_ENDPOINT")
            .expect("ARCA_TEST_S3_ENDPOINT is not set: run the tests through `make test`, which starts MinIO");
        let data_dir = PathBuf::from(std::env::var("ARCA_TEST_MINIO_DIR").expect("ARCA_TEST_MINIO_DIR is not set"));
        Self { endpoint, data_dir }
    }
}

/// Trivy and the fixture DB `make test` built (scripts/trivy-fixture.sh).
pub struct Trivy {
    pub bin: PathBuf,
    /// A DB dir (`trivy.db` + `metadata.json`) from tests/fixtures/trivy-db/base.yaml.
    pub db: PathBuf,
    /// The tool that writes DBs from YAML fixtures.
    pub fixture_tool: PathBuf,
}

impl Trivy {
    pub fn from_env() -> Self {
        let var = |name: &str| {
            PathBuf::from(std::env::var(name).unwrap_or_else(|_| {
                panic!("{name} is not set: run the tests through `make test`, which builds Trivy and its fixture DB")
            }))
        };
        Self {
            bin: var("ARCA_TEST_TRIVY"),
            db: var("ARCA_TEST_TRIVY_DB"),
            fixture_tool: var("ARCA_TEST_TRIVY_DB_TOOL"),
        }
    }

    /// Installs a DB dir into a Trivy cache dir (as `arca admin trivy-db import` does).
    pub fn install_db(&self, db: &Path, cache: &Path) {
        std::fs::create_dir_all(cache.join("db")).unwrap();
        for file in ["trivy.db", "metadata.json"] {
            std::fs::copy(db.join(file), cache.join("db").join(file)).unwrap();
        }
    }

    /// Writes a DB from fixture files (paths relative to tests/fixtures/trivy-db).
    pub fn build_db(&self, out: &Path, updated_at: &str, fixtures: &[&str]) {
        let dir = repo_root().join("tests/fixtures/trivy-db");
        let status = Command::new(&self.fixture_tool)
            .arg("-out")
            .arg(out)
            .arg("-updated-at")
            .arg(updated_at)
            .args(fixtures.iter().map(|f| dir.join(f)))
            .status()
            .unwrap();
        assert!(status.success(), "trivy-db-fixture failed");
    }
}

/// Lines a child process printed, collected as they come.
#[derive(Clone, Default)]
pub struct Output(Arc<Mutex<Vec<String>>>);

impl Output {
    fn collect(&self, stream: impl std::io::Read + Send + 'static) {
        let lines = self.0.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
    }

    pub fn text(&self) -> String {
        self.0.lock().unwrap().join("\n")
    }

    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// How to start an `arca serve`.
pub struct ArcaBuilder {
    data_dir: PathBuf,
    /// Started in this working directory with no `--data-dir` (the default `./arca-data`).
    default_data_dir_in: Option<PathBuf>,
    listen: String,
    env: Vec<(String, String)>,
    args: Vec<String>,
}

impl ArcaBuilder {
    /// The `DATABASE_URL` this server will use, when PostgreSQL.
    pub fn database_url(&self) -> Option<String> {
        self.env.iter().find(|(k, _)| k == "DATABASE_URL").map(|(_, v)| v.clone())
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Stores blobs in the MinIO `make test` started, in a bucket of this server's own.
    pub fn s3(self) -> Self {
        let minio = Minio::from_env();
        let bucket = format!("arca-{}", uuid::Uuid::new_v4().simple());
        self.env("ARCA_S3_ENDPOINT", &minio.endpoint)
            .env("ARCA_S3_BUCKET", &bucket)
            .env("ARCA_S3_ACCESS_KEY", MINIO_USER)
            .env("ARCA_S3_SECRET_KEY", MINIO_PASSWORD)
    }

    pub fn listen(mut self, addr: &str) -> Self {
        addr.clone_into(&mut self.listen);
        self
    }

    pub fn data_dir(mut self, dir: PathBuf) -> Self {
        self.data_dir = dir;
        self
    }

    /// Starts in `cwd` with no path flag or path variable at all: every path is the default.
    pub fn in_working_dir(mut self, cwd: &Path) -> Self {
        self.data_dir = cwd.join("arca-data");
        self.default_data_dir_in = Some(cwd.to_owned());
        self.env.retain(|(k, _)| k != "ARCA_TRIVY_CACHE_DIR");
        self
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(bin("arca"));
        cmd.arg("serve").arg("--listen").arg(&self.listen);
        match &self.default_data_dir_in {
            Some(cwd) => {
                cmd.current_dir(cwd).env_remove("ARCA_DATA_DIR").env_remove("ARCA_TRIVY_CACHE_DIR");
            }
            None => {
                cmd.arg("--data-dir").arg(&self.data_dir);
            }
        }
        cmd.args(&self.args)
            .env_remove("DATABASE_URL")
            .env("ARCA_LOG", "info")
            .env("ARCA_SHUTDOWN_TIMEOUT", "5")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// Starts the server and waits until it listens.
    pub async fn start(self) -> Arca {
        let mut child = self.command().spawn().expect("spawn arca");
        let (stdout, stderr) = (Output::default(), Output::default());
        stdout.collect(child.stdout.take().unwrap());
        stderr.collect(child.stderr.take().unwrap());
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = loop {
            if let Some(url) = stderr.lines().iter().find_map(|l| l.strip_prefix("arca: listening on ")) {
                break url.split_whitespace().next().unwrap().to_owned();
            }
            if let Some(status) = child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100));
                panic!("arca exited with {status} before listening:\n{}", stderr.text());
            }
            assert!(Instant::now() < deadline, "arca did not start in time:\n{}", stderr.text());
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let client = client_for(&self.data_dir, None);
        Arca {
            child,
            url,
            data_dir: self.data_dir,
            builder_env: self.env,
            builder_args: self.args,
            stdout,
            stderr,
            client,
        }
    }

    /// Runs the command expecting it to fail at start-up; returns (exit code, stderr).
    pub fn run_to_failure(self) -> (i32, String) {
        let output = self.command().output().expect("run arca");
        assert!(!output.status.success(), "arca was expected to fail");
        (output.status.code().unwrap_or(-1), String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// An HTTPS client that trusts only the server's certificate in `data_dir`.
pub fn client_for(data_dir: &Path, tls_version: Option<reqwest::tls::Version>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(600)).use_rustls_tls();
    if let Ok(pem) = std::fs::read(data_dir.join("tls/cert.pem")) {
        builder =
            builder.add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap()).tls_built_in_root_certs(false);
    }
    if let Some(version) = tls_version {
        builder = builder.min_tls_version(version).max_tls_version(version);
    }
    builder.build().unwrap()
}

/// A running `arca serve`; killed when dropped.
pub struct Arca {
    child: Child,
    pub url: String,
    pub data_dir: PathBuf,
    builder_env: Vec<(String, String)>,
    builder_args: Vec<String>,
    pub stdout: Output,
    pub stderr: Output,
    pub client: reqwest::Client,
}

impl Arca {
    /// A builder on a new data dir (kept in `dir`), using `backend` for metadata.
    pub async fn builder(dir: &Path, backend: Backend) -> ArcaBuilder {
        let mut builder = ArcaBuilder {
            data_dir: dir.join("data"),
            default_data_dir_in: None,
            listen: "127.0.0.1:0".to_owned(),
            env: Vec::new(),
            args: Vec::new(),
        }
        .env("ARCA_ADMIN_PASSWORD", ADMIN_PASSWORD);
        // Real Trivy with the fixture vulnerability DB (a copy of its own per server).
        let trivy = Trivy::from_env();
        let cache = dir.join("trivy-cache");
        trivy.install_db(&trivy.db, &cache);
        builder =
            builder.env("ARCA_TRIVY", trivy.bin.to_str().unwrap()).env("ARCA_TRIVY_CACHE_DIR", cache.to_str().unwrap());
        if backend == Backend::Postgres {
            builder = builder.env("DATABASE_URL", &fresh_pg_database().await);
        }
        builder
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// A setting this server was started with.
    pub fn env_value(&self, key: &str) -> Option<String> {
        self.builder_env.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
    }

    /// A client builder that trusts only this server's certificate.
    fn client_builder(&self) -> reqwest::ClientBuilder {
        let pem = std::fs::read(self.data_dir.join("tls/cert.pem")).unwrap();
        reqwest::Client::builder()
            .use_rustls_tls()
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
            .tls_built_in_root_certs(false)
    }

    /// A client like `client` that does not follow redirects.
    pub fn client_no_redirect(&self) -> reqwest::Client {
        self.client_builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
    }

    /// A client like `client` that speaks HTTP/1.1 only.
    pub fn client_http1(&self) -> reqwest::Client {
        self.client_builder().http1_only().build().unwrap()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process without warning (a crash).
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts again on the same data dir and configuration (after a crash or a stop).
    pub async fn start_again(&mut self) -> Arca {
        ArcaBuilder {
            data_dir: self.data_dir.clone(),
            default_data_dir_in: None,
            listen: "127.0.0.1:0".to_owned(),
            env: self.builder_env.clone(),
            args: self.builder_args.clone(),
        }
        .start()
        .await
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    /// The typed API client (`arca-client`), trusting only this server's certificate,
    /// sending `token` (if any) as the bearer.
    pub fn api(&self, token: Option<&str>) -> arca_client::Client {
        let mut builder = arca_client::Client::builder(&self.url);
        if let (true, Ok(pem)) = (self.url.starts_with("https://"), std::fs::read(self.data_dir.join("tls/cert.pem"))) {
            builder = builder.pin_pem(pem);
        }
        if let Some(token) = token {
            builder = builder.token(token);
        }
        builder.build().unwrap()
    }

    /// Logs in and returns an access token.
    pub async fn login(&self, username: &str, password: &str) -> String {
        let response = self
            .client
            .post(self.url("/api/auth/login"))
            .json(&serde_json::json!({ "username": username, "password": password }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "login as {username}");
        let body: serde_json::Value = response.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// Sends SIGTERM and waits for the process to exit; returns its exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        signal(self.child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(Instant::now() < deadline, "arca did not stop after SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The same configuration on the same data dir, started again.
    pub async fn restart(mut self) -> Arca {
        self.terminate();
        let builder = ArcaBuilder {
            data_dir: self.data_dir.clone(),
            default_data_dir_in: None,
            listen: "127.0.0.1:0".to_owned(),
            env: std::mem::take(&mut self.builder_env),
            args: std::mem::take(&mut self.builder_args),
        };
        builder.start().await
    }
}

impl Drop for Arca {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill").arg(format!("-{name}")).arg(pid.to_string()).status().unwrap();
    assert!(status.success());
}

/// A loopback port nothing listens on, for a process the test starts later.
///
/// Taken below the kernel's ephemeral range: a port the kernel hands out (`bind(0)`) can be
/// taken again, between this call and the process's own bind, as the local port of any
/// outgoing connection of a concurrent test; ports below the range never are. Unique within
/// the test binary; the start varies per run so that two runs at once seldom meet.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let low: u32 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768);
    let (first, span) = (10_000, low.saturating_sub(10_000).max(1000));
    let _ = NEXT.compare_exchange(
        0,
        (uuid::Uuid::new_v4().as_u128() as u32) % span + 1,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..span {
        let port = (first + NEXT.fetch_add(1, Ordering::SeqCst) % span) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port below the ephemeral range")
}

/// A PostgreSQL cluster of the test's own (so the test may stop and start it).
pub struct PgCluster {
    dir: tempfile::TempDir,
    pub port: u16,
}

impl PgCluster {
    pub fn start() -> Self {
        let dir = tempfile::Builder::new().prefix("arca-pg-").tempdir().unwrap();
        let cluster = Self { dir, port: free_port() };
        cluster.run_script("start");
        cluster
    }

    fn run_script(&self, action: &str) {
        let mut cmd = Command::new(repo_root().join("scripts/pg.sh"));
        cmd.arg(action).arg(self.dir.path());
        if action == "start" {
            cmd.arg(self.port.to_string());
        }
        let output = cmd.output().unwrap();
        assert!(output.status.success(), "pg.sh {action}: {}", String::from_utf8_lossy(&output.stderr));
    }

    pub fn url(&self) -> String {
        format!("postgres://arca:arca@127.0.0.1:{}/postgres", self.port)
    }

    pub fn stop(&self) {
        self.run_script("stop");
    }

    pub fn restart(&self) {
        self.run_script("start");
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.run_script("stop");
    }
}

/// Polls `check` until it holds or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

/// JSON requests with an optional bearer token.
impl Arca {
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> reqwest::Response {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap()
    }

    /// Full login answer (access and refresh tokens).
    pub async fn login_body(&self, username: &str, password: &str) -> serde_json::Value {
        let response = self
            .call(
                reqwest::Method::POST,
                "/api/auth/login",
                None,
                Some(serde_json::json!({ "username": username, "password": password, "refresh_token_in_body": true })),
            )
            .await;
        assert_eq!(response.status(), 200, "login as {username}");
        response.json().await.unwrap()
    }

    /// Creates a user with `roles` (as admin) and returns its id.
    pub async fn create_user(&self, admin: &str, username: &str, roles: &[&str]) -> String {
        let response = self
            .call(
                reqwest::Method::POST,
                "/api/users",
                Some(admin),
                Some(serde_json::json!({ "username": username, "password": USER_PASSWORD, "roles": roles })),
            )
            .await;
        assert_eq!(response.status(), 201, "create {username}");
        let body: serde_json::Value = response.json().await.unwrap();
        body["id"].as_str().unwrap().to_owned()
    }
}

/// Password of users the tests create.
pub const USER_PASSWORD: &str = "a-long-test-password";

/// The `arca` CLI run as a user with its own config dir, in `dir`.
pub struct Cli {
    pub dir: PathBuf,
}

impl Cli {
    pub fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new(bin("arca"))
            .args(args)
            .current_dir(&self.dir)
            .env("XDG_CONFIG_HOME", self.dir.join("config"))
            .env("ARCA_PASSWORD", ADMIN_PASSWORD)
            .env_remove("ARCA_TOKEN")
            .output()
            .unwrap()
    }

    /// Signs in as admin, trusting the server's certificate.
    pub fn login(&self, arca: &Arca) {
        let cert = arca.data_dir.join("tls/cert.pem");
        let out =
            self.run(&["login", "--server", &arca.url, "--username", "admin", "--ca-cert", cert.to_str().unwrap()]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

/// The metadata database of a running server, opened beside it: to look at what Arca
/// stored, or to tamper with it behind Arca's back.
pub enum TestDb {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl TestDb {
    pub async fn of(arca: &Arca) -> Self {
        match arca.env_value("DATABASE_URL") {
            Some(url) => Self::Postgres(sqlx::PgPool::connect(&url).await.unwrap()),
            None => Self::Sqlite(
                sqlx::SqlitePool::connect(&format!("sqlite://{}", arca.data_dir.join("arca.db").display()))
                    .await
                    .unwrap(),
            ),
        }
    }

    pub async fn execute(&self, sql: &str) -> u64 {
        match self {
            Self::Sqlite(pool) => sqlx::query(sql).execute(pool).await.unwrap().rows_affected(),
            Self::Postgres(pool) => sqlx::query(sql).execute(pool).await.unwrap().rows_affected(),
        }
    }

    /// A single integer (cast it to BIGINT in the SQL: PostgreSQL's LENGTH is INT4).
    pub async fn number(&self, sql: &str) -> i64 {
        match self {
            Self::Sqlite(pool) => sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await.unwrap(),
            Self::Postgres(pool) => sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await.unwrap(),
        }
    }

    /// One text column of every row.
    pub async fn strings(&self, sql: &str) -> Vec<String> {
        match self {
            Self::Sqlite(pool) => sqlx::query_scalar::<_, String>(sql).fetch_all(pool).await.unwrap(),
            Self::Postgres(pool) => sqlx::query_scalar::<_, String>(sql).fetch_all(pool).await.unwrap(),
        }
    }

    /// The error text of a statement the database must refuse (panics if it is accepted).
    pub async fn refused(&self, sql: &str) -> String {
        let result = match self {
            Self::Sqlite(pool) => sqlx::query(sql).execute(pool).await.map(|_| ()),
            Self::Postgres(pool) => sqlx::query(sql).execute(pool).await.map(|_| ()),
        };
        result.expect_err(&format!("the database accepted: {sql}")).to_string()
    }

    /// Runs statements the way an attacker with database access would: past the triggers
    /// that keep `audit_log` and `audit_checkpoints` append-only (SQLite: dropped;
    /// PostgreSQL: a superuser session in replica mode), in one transaction, so the server
    /// never sees half of the change.
    pub async fn execute_past_triggers(&self, statements: &[&str]) {
        use sqlx::Connection;
        match self {
            Self::Sqlite(pool) => {
                let triggers: Vec<String> = sqlx::query_scalar(
                    "SELECT name FROM sqlite_master WHERE type = 'trigger' \
                     AND tbl_name IN ('audit_log', 'audit_checkpoints')",
                )
                .fetch_all(pool)
                .await
                .unwrap();
                for trigger in triggers {
                    sqlx::query(&format!("DROP TRIGGER {trigger}")).execute(pool).await.unwrap();
                }
                let mut tx = pool.begin().await.unwrap();
                for sql in statements {
                    sqlx::query(sql).execute(&mut *tx).await.unwrap();
                }
                tx.commit().await.unwrap();
            }
            Self::Postgres(pool) => {
                let mut conn = pool.acquire().await.unwrap();
                sqlx::query("SET session_replication_role = replica").execute(&mut *conn).await.unwrap();
                let mut tx = conn.begin().await.unwrap();
                for sql in statements {
                    sqlx::query(sql).execute(&mut *tx).await.unwrap();
                }
                tx.commit().await.unwrap();
            }
        }
    }

    /// Every audit entry, oldest first, read from the database (not itself audited).
    pub async fn audit_entries(&self) -> Vec<shared::core::audit::AuditEntry> {
        let sql = "SELECT * FROM audit_log ORDER BY seq";
        match self {
            Self::Sqlite(pool) => sqlx::query_as(sql).fetch_all(pool).await.unwrap(),
            Self::Postgres(pool) => sqlx::query_as(sql).fetch_all(pool).await.unwrap(),
        }
    }
}

impl Arca {
    /// The address the server listens on (`127.0.0.1:PORT`).
    pub fn addr(&self) -> String {
        self.url.split("://").nth(1).unwrap().trim_end_matches('/').to_owned()
    }
}
