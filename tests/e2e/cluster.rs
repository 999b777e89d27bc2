//! Issue 12: the functions as the cluster runs them. Every function binary is its own
//! process on its own port — two replicas each of `upload` and `scan` — on one PostgreSQL
//! and a MinIO of the test's own (SSE, its webhook pointed at `ingest`). Two stand-ins play
//! the cluster's parts: an ingress that routes `/api/...` to the function owning the route
//! (taken from the route tables), and a Broker that receives the relay's binary CloudEvents
//! and delivers them, filtered by type per Trigger, with an OIDC sender token, retries with
//! backoff and a dead-letter sink — as a Knative Broker does.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method as HttpMethod, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::helpers::{bin, eventually, free_port, fresh_pg_database, Trivy, ADMIN_PASSWORD};

const MINIO_USER: &str = "cluster-root";
const MINIO_PASSWORD: &str = "cluster-root-secret";
const INGEST_TOKEN: &str = "ingest-token-for-the-cluster-test";
const METRICS_TOKEN: &str = "metrics-token-for-the-cluster-test";
const ISSUER: &str = "https://broker.cluster.test";

/// One function process.
struct Process {
    name: &'static str,
    port: u16,
    child: Child,
    env: Vec<(String, String)>,
    log: PathBuf,
    started: Instant,
    ready_ms: Option<u128>,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What every process of a kind gets.
struct Keys {
    dir: PathBuf,
    jwt_private: PathBuf,
    jwt_public: PathBuf,
    signing_key: PathBuf,
    signing_cert: PathBuf,
    signing_chain: PathBuf,
    checkpoint_key: PathBuf,
    broker_key: String,
    jwks: PathBuf,
}

fn write(path: &Path, text: &str) -> PathBuf {
    std::fs::write(path, text).unwrap();
    path.to_owned()
}

fn make_keys(dir: &Path) -> Keys {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
        PKCS_ECDSA_P256_SHA256,
    };
    let jwt = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name.push(DnType::CommonName, "Cluster test signing CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut leaf = CertificateParams::new(Vec::<String>::new()).unwrap();
    leaf.distinguished_name.push(DnType::CommonName, "Arca cluster signing");
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
    let leaf_cert = leaf.signed_by(&leaf_key, &ca_cert, &ca_key).unwrap();
    let broker = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let raw = broker.public_key_raw();
    let jwks = json!({"keys": [{
        "kty": "EC", "crv": "P-256", "kid": "broker", "alg": "ES256", "use": "sig",
        "x": URL_SAFE_NO_PAD.encode(&raw[1..33]), "y": URL_SAFE_NO_PAD.encode(&raw[33..65]),
    }]});
    let checkpoint = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    Keys {
        dir: dir.to_owned(),
        jwt_private: write(&dir.join("jwt.pem"), &jwt.serialize_pem()),
        jwt_public: write(&dir.join("jwt.pub.pem"), &jwt.public_key_pem()),
        signing_key: write(&dir.join("signing.key.pem"), &leaf_key.serialize_pem()),
        signing_cert: write(&dir.join("signing.pem"), &leaf_cert.pem()),
        signing_chain: write(&dir.join("chain.pem"), &format!("{}{}", leaf_cert.pem(), ca_cert.pem())),
        checkpoint_key: write(&dir.join("checkpoint.pem"), &checkpoint.serialize_pem()),
        broker_key: broker.serialize_pem(),
        jwks: write(&dir.join("jwks.json"), &jwks.to_string()),
    }
}

/// The subject of the sender tokens of a Trigger's deliveries: Knative Eventing's OIDC
/// service account of the Trigger (`GetOIDCServiceAccountNameForResource`).
fn trigger_identity(trigger: &str) -> String {
    format!("system:serviceaccount:arca:{trigger}-oidc-eventing.knative.dev-trigger")
}

/// An OIDC sender token for `audience` with subject `sub`, signed by the cluster's key (as
/// the Broker presents it, or as any pod's projected service-account token would be).
fn sender_token(keys: &Keys, audience: &str, sub: &str) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some("broker".into());
    let now = chrono_now();
    let claims = json!({"iss": ISSUER, "aud": audience, "sub": sub, "iat": now, "exp": now + 300});
    jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_ec_pem(keys.broker_key.as_bytes()).unwrap())
        .unwrap()
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// The test's MinIO, with the webhook target `ARCA` pointed at `ingest`.
struct Minio {
    child: Child,
    endpoint: String,
}

impl Drop for Minio {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_minio(dir: &Path, ingest_port: u16) -> Minio {
    let port = free_port();
    let bin = std::env::var("ARCA_TEST_MINIO_BIN").expect("ARCA_TEST_MINIO_BIN: run through make test");
    let kms = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    let data = dir.join("minio");
    std::fs::create_dir_all(data.join("data")).unwrap();
    let child = Command::new(bin)
        .args(["server", data.join("data").to_str().unwrap(), "--quiet", "--address"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["--console-address", "127.0.0.1:0"])
        .env("MINIO_ROOT_USER", MINIO_USER)
        .env("MINIO_ROOT_PASSWORD", MINIO_PASSWORD)
        .env("MINIO_KMS_SECRET_KEY", format!("arca-key:{kms}"))
        .env("MINIO_BROWSER", "off")
        .env("MINIO_UPDATE", "off")
        .env("MINIO_CI_CD", "1")
        .env("MINIO_API_CORS_ALLOW_ORIGIN", "https://arca.example")
        .env("MINIO_NOTIFY_WEBHOOK_ENABLE_ARCA", "on")
        .env("MINIO_NOTIFY_WEBHOOK_ENDPOINT_ARCA", format!("http://127.0.0.1:{ingest_port}/storage-events"))
        .env("MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_ARCA", INGEST_TOKEN)
        .env("MINIO_NOTIFY_WEBHOOK_QUEUE_DIR_ARCA", data.join("queue").to_str().unwrap())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let endpoint = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let up = eventually(Duration::from_secs(30), || async {
        client.get(format!("{endpoint}/minio/health/live")).send().await.is_ok_and(|r| r.status() == 200)
    })
    .await;
    assert!(up, "MinIO did not start");
    Minio { child, endpoint }
}

/// A Trivy that records each scan (and can be slowed for one artifact), then runs the real one.
fn trivy_wrapper(dir: &Path, log: &Path) -> PathBuf {
    let real = Trivy::from_env().bin;
    let path = dir.join("trivy");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\n\
             case \"$1\" in rootfs|image|sbom) echo \"$PPID $*\" >> {log} ;; esac\n\
             if [ -e \"$2/slow.bin\" ]; then touch {dir}/slow-started; sleep 6; fi\n\
             exec {real} \"$@\"\n",
            log = log.display(),
            dir = dir.display(),
            real = real.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

struct Cluster {
    keys: Arc<Keys>,
    database: String,
    minio: Minio,
    bucket: String,
    processes: Vec<Process>,
    ingress: String,
    broker: Arc<BrokerState>,
    trivy_log: PathBuf,
    client: reqwest::Client,
    /// Settings added to one function's env (function, name, value).
    extra_env: Vec<(&'static str, String, String)>,
}

impl Cluster {
    /// A function's own PostgreSQL role, as the migrate Job creates it from ARCA_DB_ROLES
    /// (named after the test's database too: roles are server-wide).
    fn role_url(&self, name: &str) -> String {
        let mut url = url::Url::parse(&self.database).unwrap();
        let database = url.path().trim_start_matches('/').to_owned();
        url.set_username(&format!("arca_{name}_{database}")).unwrap();
        url.set_password(Some(&format!("{name}-role-password-for-the-test"))).unwrap();
        url.to_string()
    }

    fn env(&self, name: &'static str, port: u16, replica: usize) -> Vec<(String, String)> {
        let k = &self.keys;
        let mut env: Vec<(String, String)> = vec![
            ("PORT".into(), port.to_string()),
            ("DATABASE_URL".into(), self.role_url(name)),
            ("ARCA_LOG".into(), "info".into()),
            ("ARCA_METRICS_TOKEN".into(), METRICS_TOKEN.into()),
            ("ARCA_EVENT_LEASE_SECS".into(), "3".into()),
            ("ARCA_EVENT_RETRY_BASE_MS".into(), "200".into()),
            ("ARCA_POLICY_RECHECK_SECS".into(), "2".into()),
            ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
        ];
        let s3 = |env: &mut Vec<(String, String)>| {
            env.extend([
                ("ARCA_S3_ENDPOINT".into(), self.minio.endpoint.clone()),
                ("ARCA_S3_BUCKET".into(), self.bucket.clone()),
                ("ARCA_S3_ACCESS_KEY".into(), MINIO_USER.into()),
                ("ARCA_S3_SECRET_KEY".into(), MINIO_PASSWORD.into()),
                ("ARCA_S3_SSE".into(), "aws:kms:arca-key".into()),
            ]);
        };
        // A receiver accepts its own Triggers' deliveries; ingest also every Trigger's dead letters.
        let receiver = |env: &mut Vec<(String, String)>, audience: &str| {
            let senders: Vec<String> = self
                .broker
                .triggers
                .iter()
                .filter(|t| name == "ingest" || t.1 == name)
                .map(|t| trigger_identity(t.3))
                .collect();
            env.extend([
                ("ARCA_EVENT_JWKS".into(), k.jwks.display().to_string()),
                ("ARCA_EVENT_ISSUER".into(), ISSUER.into()),
                ("ARCA_EVENT_AUDIENCE".into(), audience.into()),
                ("ARCA_EVENT_SENDERS".into(), senders.join(",")),
            ]);
        };
        if name == "auth" {
            env.push(("ARCA_JWT_KEY".into(), k.jwt_private.display().to_string()));
        } else {
            env.push(("ARCA_JWT_PUBLIC_KEY".into(), k.jwt_public.display().to_string()));
        }
        match name {
            "audit" => env.push(("ARCA_AUDIT_CHECKPOINT_KEY".into(), k.checkpoint_key.display().to_string())),
            "upload" => s3(&mut env),
            "download" => {
                s3(&mut env);
                env.push(("ARCA_SIGNING_CHAIN".into(), k.signing_chain.display().to_string()));
                env.push((
                    "ARCA_DOWNLOAD_LINK_KEY".into(),
                    base64::engine::general_purpose::STANDARD.encode([9u8; 32]),
                ));
            }
            "scan" => {
                s3(&mut env);
                receiver(&mut env, "arca-scan");
                let data = k.dir.join(format!("scan-{replica}"));
                let cache = data.join("trivy");
                let trivy = Trivy::from_env();
                trivy.install_db(&trivy.db, &cache);
                env.extend([
                    ("ARCA_DATA_DIR".into(), data.display().to_string()),
                    ("ARCA_TRIVY_CACHE_DIR".into(), cache.display().to_string()),
                    ("ARCA_TRIVY".into(), trivy_wrapper(&k.dir, &self.trivy_log).display().to_string()),
                    ("ARCA_TRIVY_DB_UPDATE_INTERVAL".into(), "0".into()),
                ]);
            }
            "sign" => {
                s3(&mut env);
                receiver(&mut env, "arca-sign");
                env.extend([
                    ("ARCA_SIGNING_KEY".into(), k.signing_key.display().to_string()),
                    ("ARCA_SIGNING_CERT".into(), k.signing_cert.display().to_string()),
                    ("ARCA_SIGNING_CHAIN".into(), k.signing_chain.display().to_string()),
                ]);
            }
            "ingest" => {
                s3(&mut env);
                receiver(&mut env, "arca-ingest");
                env.extend([
                    ("ARCA_INGEST_TOKEN".into(), INGEST_TOKEN.into()),
                    ("K_SINK".into(), format!("http://127.0.0.1:{}/", self.broker.port)),
                    ("ARCA_SINK_TOKEN_FILE".into(), sink_token_file(k).display().to_string()),
                ]);
            }
            _ => {}
        }
        env.extend(self.extra_env.iter().filter(|(f, _, _)| *f == name).map(|(_, k, v)| (k.clone(), v.clone())));
        env
    }

    fn spawn(&mut self, name: &'static str, port: u16, replica: usize) {
        let env = self.env(name, port, replica);
        let log_path = self.keys.dir.join(format!("{name}-{replica}-{port}.log"));
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new(bin(&format!("arca-fn-{name}")))
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.processes.push(Process { name, port, child, env, log: log_path, started: Instant::now(), ready_ms: None });
    }

    /// Waits until every process answers its readiness probe; records cold-start times.
    async fn wait_ready(&mut self) {
        for process in self.processes.iter_mut().filter(|p| p.ready_ms.is_none()) {
            let url = format!("http://127.0.0.1:{}/health/readiness", process.port);
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if self.client.get(&url).send().await.is_ok_and(|r| r.status() == 200) {
                    process.ready_ms = Some(process.started.elapsed().as_millis());
                    break;
                }
                let exited = process.child.try_wait().ok().flatten();
                if exited.is_some() || Instant::now() >= deadline {
                    let log = std::fs::read_to_string(&process.log).unwrap_or_default();
                    let lines: Vec<&str> = log.lines().collect();
                    let tail = &lines[lines.len().saturating_sub(20)..];
                    panic!(
                        "{} on {} did not become ready ({}); its log ends:\n{}",
                        process.name,
                        process.port,
                        exited.map_or("still running after 30 s".to_owned(), |s| format!("exited: {s}")),
                        tail.join("\n")
                    );
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }

    fn ports(&self, name: &str) -> Vec<u16> {
        self.processes.iter().filter(|p| p.name == name).map(|p| p.port).collect()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.ingress)
    }

    async fn call(&self, method: reqwest::Method, path: &str, token: &str, body: Option<Value>) -> reqwest::Response {
        let mut request = self.client.request(method, self.url(path)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap()
    }

    async fn login(&self) -> String {
        let r = self
            .client
            .post(self.url("/api/auth/login"))
            .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned()
    }

    async fn pg(&self) -> sqlx::PgPool {
        sqlx::PgPool::connect(&self.database).await.unwrap()
    }

    fn trivy_runs(&self) -> Vec<String> {
        std::fs::read_to_string(&self.trivy_log).unwrap_or_default().lines().map(str::to_owned).collect()
    }
}

// ---- The ingress stand-in: routes by the route tables ----

struct Ingress {
    /// (method, path template segments, function)
    routes: Vec<(String, Vec<String>, &'static str)>,
    upstreams: HashMap<&'static str, Vec<u16>>,
    next: AtomicUsize,
    client: reqwest::Client,
}

fn matches(template: &[String], path: &str) -> bool {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    parts.len() == template.len() && template.iter().zip(&parts).all(|(t, p)| t.starts_with('{') || t == p)
}

async fn ingress(
    State(ingress): State<Arc<Ingress>>,
    method: HttpMethod,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path();
    let function = ingress
        .routes
        .iter()
        .find(|(m, t, _)| *m == method.as_str() && matches(t, path))
        .map(|(_, _, f)| *f)
        .unwrap_or("artifacts");
    let ports = &ingress.upstreams[function];
    let port = ports[ingress.next.fetch_add(1, Ordering::Relaxed) % ports.len()];
    let url = format!("http://127.0.0.1:{port}{}", uri.path_and_query().map_or("/", |p| p.as_str()));
    let mut request = ingress.client.request(method, url).body(body);
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            request = request.header(name, value);
        }
    }
    match request.send().await {
        Ok(response) => {
            let mut out = Response::builder().status(response.status().as_u16());
            for (name, value) in response.headers() {
                out = out.header(name, value);
            }
            out.body(axum::body::Body::from(response.bytes().await.unwrap_or_default())).unwrap()
        }
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}

// ---- The Broker stand-in: Triggers by type, OIDC, retries with backoff, dead letters ----
// It answers the relay once every Trigger's delivery has ended (delivered or dead-lettered),
// as the MT channel-based Broker over an InMemoryChannel does: that channel fans out
// synchronously (eventing v0.50 pkg/channel/fanout, unless the channel is annotated
// async-handler), so a publication lasts as long as the subscriber's work and the retries.

struct BrokerState {
    port: u16,
    keys: Mutex<Option<Arc<Keys>>>,
    /// (types, subscriber function, audience, Trigger name)
    triggers: Vec<(&'static [&'static str], &'static str, &'static str, &'static str)>,
    /// Artifacts whose next N `uploaded` events the Broker accepts and loses (as an
    /// in-memory channel that restarts does).
    lose: Mutex<HashMap<String, usize>>,
    /// Artifacts whose `uploaded` event reaches its subscriber only after this long (a slow
    /// subscriber, seen from the relay through the synchronous channel).
    stall: Mutex<HashMap<String, Duration>>,
    subscribers: Mutex<HashMap<&'static str, Vec<u16>>>,
    next: AtomicUsize,
    /// Every event the relay published, by id (a redelivery by the relay counts twice).
    received: Mutex<Vec<(String, String)>>,
    delivered: Mutex<Vec<(String, &'static str, u16, u16)>>,
    dead: Mutex<Vec<String>>,
    client: reqwest::Client,
    /// The token the relay must present (Knative's OIDC token for the Broker, from a file
    /// the test rotates), and how many publications it refused.
    sink_token: Mutex<String>,
    refused: AtomicUsize,
}

/// The file the relay reads its Broker token from.
fn sink_token_file(keys: &Keys) -> PathBuf {
    keys.dir.join("sink-token")
}

const MAX_DELIVERIES: u32 = 12;

async fn broker(State(state): State<Arc<BrokerState>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (Some(id), Some(event_type), Some(_source), Some(spec)) =
        (header("ce-id"), header("ce-type"), header("ce-source"), header("ce-specversion"))
    else {
        return StatusCode::BAD_REQUEST; // binary mode only, as the relay sends it
    };
    assert_eq!(spec, "1.0");
    let expected = format!("Bearer {}", state.sink_token.lock().unwrap());
    if header("authorization").as_deref() != Some(expected.as_str()) {
        state.refused.fetch_add(1, Ordering::SeqCst);
        return StatusCode::UNAUTHORIZED;
    }
    state.received.lock().unwrap().push((id.clone(), event_type.clone()));
    if event_type == "dev.arca.artifact.uploaded" {
        if let Some(left) = state.lose.lock().unwrap().get_mut(&header("ce-subject").unwrap_or_default()) {
            if *left > 0 {
                *left -= 1;
                return StatusCode::ACCEPTED; // accepted, then lost
            }
        }
    }
    if event_type == "dev.arca.artifact.uploaded" {
        let stall = state.stall.lock().unwrap().get(&header("ce-subject").unwrap_or_default()).copied();
        if let Some(stall) = stall {
            tokio::time::sleep(stall).await;
        }
    }
    let mut deliveries = Vec::new();
    for (types, function, audience, trigger) in &state.triggers {
        if types.contains(&event_type.as_str()) {
            let (state, headers, body) = (state.clone(), headers.clone(), body.clone());
            deliveries.push(deliver(state, function, audience, trigger, headers, body, id.clone()));
        }
    }
    futures::future::join_all(deliveries).await;
    StatusCode::ACCEPTED
}

async fn deliver(
    state: Arc<BrokerState>,
    function: &'static str,
    audience: &'static str,
    trigger: &'static str,
    headers: HeaderMap,
    body: Bytes,
    id: String,
) {
    let keys = state.keys.lock().unwrap().clone().unwrap();
    let mut backoff = Duration::from_millis(150);
    for _ in 0..MAX_DELIVERIES {
        let ports = state.subscribers.lock().unwrap()[function].clone();
        let port = ports[state.next.fetch_add(1, Ordering::Relaxed) % ports.len()];
        let mut request = state
            .client
            .post(format!("http://127.0.0.1:{port}/"))
            .bearer_auth(sender_token(&keys, audience, &trigger_identity(trigger)))
            .body(body.clone());
        for (name, value) in &headers {
            if name.as_str().starts_with("ce-") || name == "content-type" {
                request = request.header(name, value);
            }
        }
        let status = match request.send().await {
            Ok(response) => response.status().as_u16(),
            Err(_) => 0, // connection refused or reset: a dead replica
        };
        state.delivered.lock().unwrap().push((id.clone(), function, port, status));
        if (200..300).contains(&status) {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
    state.dead.lock().unwrap().push(id.clone());
    // The dead-letter sink: ingest records the event as dead.
    let ingest = state.subscribers.lock().unwrap()["ingest"][0];
    let mut request = state
        .client
        .post(format!("http://127.0.0.1:{ingest}/dead-letters"))
        .bearer_auth(sender_token(&keys, "arca-ingest", &trigger_identity(trigger)))
        .header("ce-knativeerrorcode", "500")
        .body(body);
    for (name, value) in &headers {
        if name.as_str().starts_with("ce-") || name == "content-type" {
            request = request.header(name, value);
        }
    }
    let _ = request.send().await;
}

async fn bind() -> (tokio::net::TcpListener, u16) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

fn serve(listener: tokio::net::TcpListener, router: axum::Router) {
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Creates an artifact through the ingress; returns its id and upload target.
async fn create(cluster: &Cluster, token: &str, name: &str, filename: &str, bytes: &[u8]) -> (String, Value) {
    let r = cluster
        .call(
            reqwest::Method::POST,
            "/api/artifacts",
            token,
            Some(json!({"name": name, "version": "1.0.0", "filename": filename, "size": bytes.len(), "sha256": sha256(bytes)})),
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let body: Value = r.json().await.unwrap();
    (body["id"].as_str().unwrap().to_owned(), body["upload"].clone())
}

/// The browser's or CI's presigned PUT, straight to MinIO.
async fn put(cluster: &Cluster, target: &Value, bytes: &[u8]) {
    assert_eq!(target["method"], "PUT", "{target}");
    let mut request = cluster.client.put(target["url"].as_str().unwrap()).body(bytes.to_vec());
    for (name, value) in target["headers"].as_object().unwrap() {
        request = request.header(name, value.as_str().unwrap());
    }
    let r = request.send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

async fn status(cluster: &Cluster, token: &str, id: &str) -> Value {
    cluster.call(reqwest::Method::GET, &format!("/api/artifacts/{id}"), token, None).await.json().await.unwrap()
}

async fn wait_status(cluster: &Cluster, token: &str, id: &str, want: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let s = status(cluster, token, id).await;
        if s["status"] == want {
            return s;
        }
        assert!(Instant::now() < deadline, "artifact {id} did not become {want}: {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An artifact Trivy passes (a tarball with a README).
fn clean_tarball(tag: &str) -> Vec<u8> {
    let mut archive = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    let text = format!("hello {tag}\n");
    let mut header = tar::Header::new_gnu();
    header.set_size(text.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    archive.append_data(&mut header, "tool/README", text.as_bytes()).unwrap();
    archive.into_inner().unwrap().finish().unwrap()
}

async fn scalar(pool: &sqlx::PgPool, sql: &str, id: &str) -> i64 {
    sqlx::query_scalar(sql).bind(id).fetch_one(pool).await.unwrap()
}

/// Each function's role (set by `migrate` from ARCA_DB_ROLES) holds exactly the table
/// privileges of `dbroles::GRANTS` (the journey below proves they suffice), cannot change
/// the schema or the audit log, and does not get a second role's privileges.
async fn function_roles_hold_exactly_their_grants(cluster: &Cluster) {
    let owner = cluster.pg().await;
    for (function, grants) in shared::core::dbroles::GRANTS {
        let role = url::Url::parse(&cluster.role_url(function)).unwrap().username().to_owned();
        let mut held: Vec<(String, String)> = sqlx::query_as(
            "SELECT table_name::text, privilege_type::text FROM information_schema.role_table_grants \
             WHERE grantee = $1 AND table_schema = 'public'",
        )
        .bind(&role)
        .fetch_all(&owner)
        .await
        .unwrap();
        held.sort();
        // (column-level grants, "SELECT (a, b)", are not table privileges)
        let mut want: Vec<(String, String)> = grants
            .iter()
            .filter(|(_, privileges)| !privileges.contains('('))
            .flat_map(|(table, privileges)| privileges.split(", ").map(|p| (table.to_string(), p.to_owned())))
            .collect();
        want.sort();
        assert_eq!(held, want, "{function}'s role {role}");
        let pool = sqlx::PgPool::connect(&cluster.role_url(function)).await.unwrap();
        // Password hashes: only the functions that sign in or set passwords read them.
        let hashes = sqlx::query("SELECT password_hash FROM users").execute(&pool).await;
        assert_eq!(
            hashes.is_ok(),
            ["auth", "users"].contains(function),
            "{function} reading password hashes: {hashes:?}"
        );
        for sql in [
            "CREATE TABLE smuggled (i int)",
            "UPDATE audit_log SET outcome = 'success'",
            "DELETE FROM audit_log",
            "DELETE FROM audit_checkpoints",
            "ALTER TABLE artifacts ADD COLUMN smuggled int",
        ] {
            let e = sqlx::query(sql).execute(&pool).await.err().unwrap_or_else(|| panic!("{function} ran {sql}"));
            let code = e.as_database_error().and_then(|d| d.code()).map(|c| c.into_owned());
            assert_eq!(code.as_deref(), Some("42501"), "{function}: {sql}: {e}");
        }
        pool.close().await;
    }
    owner.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn functions_as_separate_processes_with_storage_events_and_a_broker() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Arc::new(make_keys(dir.path()));
    std::fs::write(sink_token_file(&keys), "first-sink-token\n").unwrap();
    let database = fresh_pg_database().await;
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();

    // Ports first: MinIO's webhook and the relay's sink name them.
    let layout: [(&'static str, usize); 9] = [
        ("auth", 1),
        ("users", 1),
        ("audit", 1),
        ("upload", 2),
        ("artifacts", 1),
        ("download", 1),
        ("scan", 2),
        ("sign", 1),
        ("ingest", 1),
    ];
    let mut ports: Vec<(&'static str, usize, u16)> = Vec::new();
    for (name, replicas) in layout {
        for replica in 0..replicas {
            ports.push((name, replica, free_port()));
        }
    }
    let ports_of = |name: &str| ports.iter().filter(|(n, _, _)| *n == name).map(|p| p.2).collect::<Vec<u16>>();
    let minio = start_minio(dir.path(), ports_of("ingest")[0]).await;

    let (broker_listener, broker_port) = bind().await;
    let broker_state = Arc::new(BrokerState {
        port: broker_port,
        keys: Mutex::new(Some(keys.clone())),
        // As knative/base/eventing/triggers.yaml (scan-uploaded and scan-rescan as one here).
        triggers: vec![
            (&["dev.arca.artifact.uploaded", "dev.arca.artifact.rescan"], "scan", "arca-scan", "scan-uploaded"),
            (&["dev.arca.artifact.scanned"], "sign", "arca-sign", "sign-scanned"),
            (&["dev.arca.artifact.deleted"], "ingest", "arca-ingest", "ingest-deleted"),
            (&["dev.arca.artifact.deleted"], "scan", "arca-scan", "scan-deleted"),
        ],
        lose: Mutex::new(HashMap::new()),
        stall: Mutex::new(HashMap::new()),
        subscribers: Mutex::new(["scan", "sign", "ingest"].into_iter().map(|n| (n, ports_of(n))).collect()),
        next: AtomicUsize::new(0),
        received: Mutex::new(Vec::new()),
        delivered: Mutex::new(Vec::new()),
        dead: Mutex::new(Vec::new()),
        client: reqwest::Client::new(),
        sink_token: Mutex::new("first-sink-token".to_owned()),
        refused: AtomicUsize::new(0),
    });
    serve(
        broker_listener,
        axum::Router::new().route("/", axum::routing::post(broker)).with_state(broker_state.clone()),
    );

    // The ingress: each public route to the function that owns it (the route tables).
    let mut routes = Vec::new();
    for function in shared::web::function::all_functions::<shared::web::state::ServeState>() {
        let owner: &'static str = if function.name == "system" { "artifacts" } else { function.name };
        for spec in function.specs().filter(|s| !s.internal) {
            let template = spec.path.trim_start_matches('/').split('/').map(str::to_owned).collect();
            routes.push((spec.method.to_string(), template, owner));
        }
    }
    let upstreams = layout.iter().map(|(name, _)| (*name, ports_of(name))).collect();
    let ingress_state = Arc::new(Ingress {
        routes,
        upstreams,
        next: AtomicUsize::new(0),
        client: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap(),
    });
    let (ingress_listener, ingress_port) = bind().await;
    serve(ingress_listener, axum::Router::new().fallback(ingress).with_state(ingress_state));

    let mut cluster = Cluster {
        keys: keys.clone(),
        database,
        minio,
        bucket: "arca-cluster".into(),
        processes: Vec::new(),
        ingress: format!("http://127.0.0.1:{ingress_port}"),
        broker: broker_state.clone(),
        trivy_log: dir.path().join("trivy-runs.log"),
        client,
        extra_env: Vec::new(),
    };

    // One-shot commands: migrations (a Job per rollout) and the bucket's setup.
    let run = |name: &str, command: &str, env: &[(String, String)]| {
        let out = Command::new(bin(&format!("arca-fn-{name}")))
            .arg(command)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("ARCA_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("ARCA_CORS_ORIGINS", "https://arca.example")
            .output()
            .unwrap();
        assert!(out.status.success(), "{name} {command}: {}", String::from_utf8_lossy(&out.stderr));
    };
    // Migrations as the owner; every function then connects as its own role.
    let roles = dir.path().join("db-roles");
    std::fs::create_dir(&roles).unwrap();
    for (name, _) in layout {
        std::fs::write(roles.join(name), cluster.role_url(name)).unwrap();
    }
    let mut migrate_env = cluster.env("auth", 0, 0);
    migrate_env.retain(|(k, _)| k != "DATABASE_URL");
    migrate_env.push(("DATABASE_URL".into(), cluster.database.clone()));
    migrate_env.push(("ARCA_DB_ROLES".into(), roles.display().to_string()));
    run("auth", "migrate", &migrate_env);
    function_roles_hold_exactly_their_grants(&cluster).await;
    run("ingest", "setup-storage", &cluster.env("ingest", 0, 0));
    // Browsers of the SPA's origin may PUT to presigned URLs (MinIO's CORS is server-wide).
    let preflight = cluster
        .client
        .request(reqwest::Method::OPTIONS, format!("{}/arca-cluster/quarantine/x", cluster.minio.endpoint))
        .header("Origin", "https://arca.example")
        .header("Access-Control-Request-Method", "PUT")
        .send()
        .await
        .unwrap();
    assert_eq!(
        preflight.headers().get("access-control-allow-origin").and_then(|v| v.to_str().ok()),
        Some("https://arca.example"),
        "{preflight:?}"
    );

    // A function refuses to start without a secret it needs, in one line naming it.
    let mut env = cluster.env("download", free_port(), 0);
    env.retain(|(k, _)| !k.starts_with("ARCA_S3_"));
    let out = Command::new(bin("arca-fn-download")).env_clear().envs(env).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success() && stderr.trim().lines().count() == 1, "{stderr}");
    assert!(stderr.contains("ARCA_S3_ENDPOINT, ARCA_S3_ACCESS_KEY and ARCA_S3_SECRET_KEY"), "{stderr}");

    for (name, replica, port) in ports.clone() {
        cluster.spawn(name, port, replica);
    }
    cluster.wait_ready().await;
    let cold: Vec<String> =
        cluster.processes.iter().map(|p| format!("{}:{} ms", p.name, p.ready_ms.unwrap_or_default())).collect();
    eprintln!("cold start to ready: {}", cold.join(", "));

    // 5) The scan process holds no signing key, in its environment or its mapped files.
    for process in cluster.processes.iter().filter(|p| p.name == "scan") {
        let pid = process.child.id();
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
        let environ = String::from_utf8_lossy(&environ);
        assert!(!environ.contains("ARCA_SIGNING_KEY") && !environ.contains("ARCA_JWT_KEY"), "{environ}");
        let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
        assert!(!maps.contains("signing.key.pem") && !maps.contains("jwt.pem"), "{maps}");
        assert!(process.env.iter().all(|(k, _)| !k.starts_with("ARCA_SIGNING_KEY")));
    }

    let token = cluster.login().await;
    let pool = cluster.pg().await;

    // 1a) Upload through the presigned URL only (no `complete`): the storage event finishes it.
    let bytes = clean_tarball("presigned");
    let (id, target) = create(&cluster, &token, "presigned", "presigned.tar.gz", &bytes).await;
    put(&cluster, &target, &bytes).await;
    let done = wait_status(&cluster, &token, &id, "approved", Duration::from_secs(60)).await;
    assert_eq!(done["sha256"], sha256(&bytes));
    let r = cluster.call(reqwest::Method::GET, &format!("/api/artifacts/{id}/download"), &token, None).await;
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap_or_default());
    assert!(r.headers().get("x-arca-signature").is_some());
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let downloaded = cluster.client.get(location).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(&downloaded[..], &bytes[..], "the bytes downloaded are the bytes uploaded");
    let signature: Value = cluster
        .call(reqwest::Method::GET, &format!("/api/artifacts/{id}/signature"), &token, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(signature["verified"], true, "{signature}");

    // 1b) `complete` racing the storage event: one transition, one scan, one signature.
    let bytes = clean_tarball("race");
    let (id, target) = create(&cluster, &token, "race", "race.tar.gz", &bytes).await;
    put(&cluster, &target, &bytes).await;
    let r = cluster.call(reqwest::Method::POST, &format!("/api/artifacts/{id}/complete"), &token, None).await;
    assert_eq!(r.status(), 200, "complete answers the current state: {}", r.text().await.unwrap());
    wait_status(&cluster, &token, &id, "approved", Duration::from_secs(60)).await;
    let once = "SELECT COUNT(*) FROM outbox WHERE artifact_id = $1 AND event_type = 'dev.arca.artifact.uploaded'";
    assert_eq!(scalar(&pool, once, &id).await, 1, "one transition to scanning");
    assert_eq!(scalar(&pool, "SELECT COUNT(*) FROM scans WHERE artifact_id = $1", &id).await, 1);
    assert_eq!(scalar(&pool, "SELECT COUNT(*) FROM signatures WHERE artifact_id = $1", &id).await, 1);

    // 2) Ten artifacts at once across the replicas: each scanned once, signed once, none stuck.
    let runs_before = cluster.trivy_runs().len();
    let mut ids = Vec::new();
    for i in 0..10 {
        let bytes = clean_tarball(&format!("batch-{i}"));
        let (id, target) = create(&cluster, &token, &format!("batch-{i}"), "batch.tar.gz", &bytes).await;
        put(&cluster, &target, &bytes).await;
        ids.push(id);
    }
    for id in &ids {
        wait_status(&cluster, &token, id, "approved", Duration::from_secs(120)).await;
        assert_eq!(scalar(&pool, "SELECT COUNT(*) FROM scans WHERE artifact_id = $1", id).await, 1);
        let approved =
            "SELECT COUNT(*) FROM outbox WHERE artifact_id = $1 AND event_type = 'dev.arca.artifact.approved'";
        assert_eq!(scalar(&pool, approved, id).await, 1, "signed and approved once");
    }
    assert_eq!(cluster.trivy_runs().len() - runs_before, 10, "one Trivy run per artifact: {:?}", cluster.trivy_runs());
    let mut by_replica = std::collections::BTreeMap::<String, usize>::new();
    for line in cluster.trivy_runs() {
        *by_replica.entry(line.split(' ').next().unwrap_or_default().to_owned()).or_default() += 1;
    }
    eprintln!("trivy runs by scan replica (pid: runs): {by_replica:?}");

    // 3a) kill -9 a scan replica in the middle of a scan: the Broker redelivers, the other
    // replica takes the event over once the dead one's claim lapses, and finishes it.
    let bytes = b"a file the slow scanner takes its time over".to_vec();
    let (slow, target) = create(&cluster, &token, "slow", "slow.bin", &bytes).await;
    put(&cluster, &target, &bytes).await;
    let started = dir.path().join("slow-started");
    assert!(eventually(Duration::from_secs(30), || async { started.exists() }).await, "the slow scan did not start");
    let victim = {
        let claims: Vec<(String,)> =
            sqlx::query_as("SELECT owner FROM event_claims WHERE done_at IS NULL").fetch_all(&pool).await.unwrap();
        let owner = claims.first().map(|c| c.0.clone()).unwrap_or_default();
        // The owner is `<host>-<pid>-<suffix>`: find that scan process.
        cluster
            .processes
            .iter()
            .position(|p| p.name == "scan" && owner.contains(&format!("-{}-", p.child.id())))
            .unwrap_or_else(|| panic!("no scan process holds the claim {owner}"))
    };
    let mut dead = cluster.processes.remove(victim);
    let _ = dead.child.kill();
    let _ = dead.child.wait();
    let survivors = cluster.ports("scan");
    cluster.broker.subscribers.lock().unwrap().insert("scan", survivors);
    let done = wait_status(&cluster, &token, &slow, "approved", Duration::from_secs(90)).await;
    assert_eq!(done["status"], "approved");
    assert_eq!(scalar(&pool, "SELECT COUNT(*) FROM scans WHERE artifact_id = $1", &slow).await, 1, "recorded once");

    // The Broker's token rotates (Knative remounts the file): the relay reads the new one.
    *cluster.broker.sink_token.lock().unwrap() = "second-sink-token".to_owned();
    std::fs::write(sink_token_file(&cluster.keys), "second-sink-token\n").unwrap();

    // 3b) kill -9 the relay's replica (ingest) with events in flight: none is lost, and the
    // handlers (idempotent) record each artifact once.
    let mut burst = Vec::new();
    for i in 0..5 {
        let bytes = clean_tarball(&format!("relay-{i}"));
        let (id, target) = create(&cluster, &token, &format!("relay-{i}"), "relay.tar.gz", &bytes).await;
        put(&cluster, &target, &bytes).await;
        burst.push(id);
    }
    let ingest = cluster.processes.iter().position(|p| p.name == "ingest").unwrap();
    let mut relay = cluster.processes.remove(ingest);
    let _ = relay.child.kill();
    let _ = relay.child.wait();
    let port = relay.port;
    drop(relay);
    cluster.spawn("ingest", port, 0);
    cluster.wait_ready().await;
    for id in &burst {
        wait_status(&cluster, &token, id, "approved", Duration::from_secs(120)).await;
        assert_eq!(scalar(&pool, "SELECT COUNT(*) FROM scans WHERE artifact_id = $1", id).await, 1);
    }
    let undelivered: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL AND dead_at IS NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(
        eventually(Duration::from_secs(20), || async {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL AND dead_at IS NULL")
                .fetch_one(&pool)
                .await
                .unwrap()
                == 0
        })
        .await,
        "outbox events left undelivered: {undelivered}"
    );

    slow_publications_are_sent_once(&cluster, &token, &pool).await;

    // 4) Forged storage notifications change nothing.
    let ingest_url = format!("http://127.0.0.1:{}/storage-events", cluster.ports("ingest")[0]);
    let bytes = clean_tarball("forged");
    let (pending, _) = create(&cluster, &token, "forged", "forged.tar.gz", &bytes).await;
    let note = |key: &str, size: usize| {
        json!({"EventName": "s3:ObjectCreated:Put", "Key": format!("arca-cluster/{key}"), "Records": [{
            "eventName": "s3:ObjectCreated:Put",
            "s3": {"bucket": {"name": "arca-cluster"}, "object": {"key": key.replace('/', "%2F"), "size": size}}
        }]})
    };
    let cases: Vec<(Option<&str>, Value, u16)> = vec![
        (None, note(&format!("quarantine/{pending}"), bytes.len()), 401),
        (Some("wrong-token-wrong-token"), note(&format!("quarantine/{pending}"), bytes.len()), 401),
        (Some(INGEST_TOKEN), note(&format!("permanent/{pending}"), bytes.len()), 400),
        (Some(INGEST_TOKEN), note("quarantine/00000000-0000-4000-8000-000000000000", 1), 404),
        (Some(INGEST_TOKEN), note(&format!("quarantine/{pending}"), bytes.len() + 1), 400),
        (Some(INGEST_TOKEN), note(&format!("quarantine/{pending}"), bytes.len()), 404),
    ];
    for (bearer, body, expected) in cases {
        let mut request = cluster.client.post(&ingest_url).json(&body);
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        let r = request.send().await.unwrap();
        assert_eq!(r.status().as_u16(), expected, "{body}: {}", r.text().await.unwrap());
    }
    let r = cluster.client.post(&ingest_url).bearer_auth(INGEST_TOKEN).body("not json").send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(status(&cluster, &token, &pending).await["status"], "pending_upload", "nothing changed");

    // Receivers refuse events without the Broker's token, or meant for another subscriber.
    let scan_url = format!("http://127.0.0.1:{}/", cluster.ports("scan")[0]);
    let event = |request: reqwest::RequestBuilder| {
        request
            .header("ce-id", uuid::Uuid::new_v4().to_string())
            .header("ce-type", "dev.arca.artifact.uploaded")
            .header("ce-source", "/arca/artifacts")
            .header("ce-specversion", "1.0")
            .header("ce-subject", &pending)
            .header("content-type", "application/json")
            .body("{}")
    };
    assert_eq!(event(cluster.client.post(&scan_url)).send().await.unwrap().status(), 401);
    let wrong = sender_token(&cluster.keys, "arca-sign", &trigger_identity("sign-scanned"));
    assert_eq!(event(cluster.client.post(&scan_url).bearer_auth(wrong)).send().await.unwrap().status(), 401);

    forged_events(&cluster, &token, &pool, &id, &pending).await;
    stuck_artifacts_are_redriven(&mut cluster, &token, &pool).await;

    // The relay published every event once per transition, and nothing was dead-lettered.
    let dead = cluster.broker.dead.lock().unwrap().clone();
    assert!(dead.is_empty(), "dead-lettered: {dead:?}");
    let received = cluster.broker.received.lock().unwrap().clone();
    let types: std::collections::BTreeSet<&str> = received.iter().map(|(_, t)| t.as_str()).collect();
    assert!(types.contains("dev.arca.artifact.uploaded") && types.contains("dev.arca.artifact.scanned"), "{types:?}");
    let delivered = cluster.broker.delivered.lock().unwrap().clone();
    let scan_replicas: std::collections::BTreeSet<u16> =
        delivered.iter().filter(|d| d.1 == "scan").map(|d| d.2).collect();
    eprintln!(
        "broker: {} events received, {} deliveries, scan replicas delivered to: {scan_replicas:?}, {} publications refused (token rotation)",
        received.len(),
        delivered.len(),
        cluster.broker.refused.load(Ordering::SeqCst)
    );

    figures(&mut cluster, &layout, dir.path()).await;
}

/// 3c) Through the synchronous channel, the `uploaded` event of one artifact takes 15 s to
/// reach scan: longer than the event lease (3 s here) and than the relay's former 10 s wait.
/// The relay publishes it once (its claim renewed while it waits), and another artifact's
/// events go on beside it: that one is approved while the slow one is still scanning.
async fn slow_publications_are_sent_once(cluster: &Cluster, token: &str, pool: &sqlx::PgPool) {
    let bytes = clean_tarball("slow-publication");
    let (slow, target) = create(cluster, token, "slow-publication", "slow.tar.gz", &bytes).await;
    cluster.broker.stall.lock().unwrap().insert(slow.clone(), Duration::from_secs(15));
    put(cluster, &target, &bytes).await;
    let uploaded = "SELECT id FROM outbox WHERE artifact_id = $1 AND event_type = 'dev.arca.artifact.uploaded'";
    let published = |event: &str| cluster.broker.received.lock().unwrap().iter().filter(|(id, _)| id == event).count();
    assert!(
        eventually(Duration::from_secs(30), || async {
            match sqlx::query_scalar::<_, String>(uploaded).bind(&slow).fetch_optional(pool).await.unwrap() {
                Some(event) => published(&event) > 0,
                None => false,
            }
        })
        .await,
        "the uploaded event of {slow} did not reach the Broker"
    );
    let event: String = sqlx::query_scalar(uploaded).bind(&slow).fetch_one(pool).await.unwrap();

    let bytes = clean_tarball("beside-a-slow-publication");
    let (beside, target) = create(cluster, token, "beside-a-slow-publication", "beside.tar.gz", &bytes).await;
    put(cluster, &target, &bytes).await;
    wait_status(cluster, token, &beside, "approved", Duration::from_secs(60)).await;
    assert_eq!(
        status(cluster, token, &slow).await["status"],
        "scanning",
        "another artifact waited for a slow publication (head-of-line blocking in the relay)"
    );
    wait_status(cluster, token, &slow, "approved", Duration::from_secs(60)).await;
    assert_eq!(published(&event), 1, "the relay published the slow event {event} more than once");
}

/// One CloudEvent in binary mode, as the Broker delivers it, with `bearer` as sender token.
async fn post_event(
    cluster: &Cluster,
    url: &str,
    bearer: &str,
    (id, event_type, subject): (&str, &str, &str),
) -> reqwest::StatusCode {
    let request = cluster
        .client
        .post(url)
        .bearer_auth(bearer)
        .header("ce-id", id)
        .header("ce-type", event_type)
        .header("ce-source", "/arca/artifacts")
        .header("ce-specversion", "1.0")
        .header("ce-subject", subject)
        .header("content-type", "application/json")
        .body("{}");
    request.send().await.unwrap().status()
}

/// The status of an artifact once it is `want`, or whatever it is after `within`.
async fn status_within(cluster: &Cluster, token: &str, id: &str, want: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let s = status(cluster, token, id).await;
        if s["status"] == want || Instant::now() >= deadline {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn audit_rows(pool: &sqlx::PgPool, condition: &str, bind: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT COUNT(*) FROM audit_log WHERE {condition}"))
        .bind(bind)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Issue 21, the first High finding: forged CloudEvents. A token the cluster signed for a
/// receiver's audience but for another subject (any pod's projected service-account token)
/// is refused and audited; the Broker's identity with an event that is not in the outbox
/// (unknown id, or a known id with another type or subject) is refused before its id is
/// claimed, so the real event is still handled; a `deleted` event for an approved artifact
/// never removes its blob; forged dead letters are refused. Every hole found is collected,
/// so that one run names them all.
async fn forged_events(cluster: &Cluster, token: &str, pool: &sqlx::PgPool, approved: &str, other: &str) {
    const DELETED: &str = "dev.arca.artifact.deleted";
    const UPLOADED: &str = "dev.arca.artifact.uploaded";
    let mut holes: Vec<String> = Vec::new();
    let ingest = format!("http://127.0.0.1:{}/", cluster.ports("ingest")[0]);
    let dead_letters = format!("http://127.0.0.1:{}/dead-letters", cluster.ports("ingest")[0]);
    let scan = format!("http://127.0.0.1:{}/", cluster.ports("scan")[0]);
    let keys = &cluster.keys;
    let broker_to_ingest = sender_token(keys, "arca-ingest", &trigger_identity("ingest-deleted"));
    let broker_to_scan = sender_token(keys, "arca-scan", &trigger_identity("scan-uploaded"));
    fn check(holes: &mut Vec<String>, what: &str, got: reqwest::StatusCode, want: u16) {
        if got.as_u16() != want {
            holes.push(format!("{what}: answered {got}, want {want}"));
        }
    }

    // Any pod: the cluster's key, ingest's audience, a subject that is not the Broker's.
    let refused_before = audit_rows(pool, "action = 'POST /' AND status = 401 AND actor = $1", "anonymous").await;
    let pod = sender_token(keys, "arca-ingest", "system:serviceaccount:arca:default");
    let forged = uuid::Uuid::new_v4().to_string();
    check(&mut holes, "a pod's token", post_event(cluster, &ingest, &pod, (&forged, DELETED, approved)).await, 401);

    // The Broker's identity, events that are not in the outbox.
    let unknown = uuid::Uuid::new_v4().to_string();
    check(
        &mut holes,
        "an unknown event id",
        post_event(cluster, &ingest, &broker_to_ingest, (&unknown, DELETED, approved)).await,
        403,
    );
    let r = cluster.call(reqwest::Method::DELETE, &format!("/api/artifacts/{other}"), token, None).await;
    assert!(r.status().is_success(), "deleting {other}: {}", r.text().await.unwrap_or_default());
    let real_deleted: String = sqlx::query_scalar("SELECT id FROM outbox WHERE artifact_id = $1 AND event_type = $2")
        .bind(other)
        .bind(DELETED)
        .fetch_one(pool)
        .await
        .unwrap();
    check(
        &mut holes,
        "a real deleted event's id with another subject",
        post_event(cluster, &ingest, &broker_to_ingest, (&real_deleted, DELETED, approved)).await,
        403,
    );
    // Defence in depth: even a `deleted` event in the outbox (as a bug could write one)
    // removes no blob of an artifact the database does not hold as deleted.
    let planted = uuid::Uuid::new_v4().to_string();
    sqlx::query(
        "INSERT INTO outbox (id, event_type, artifact_id, payload, created_at, next_attempt_at, delivered_at) \
         VALUES ($1, $2, $3, '{}', 0, 0, 0)",
    )
    .bind(&planted)
    .bind(DELETED)
    .bind(approved)
    .execute(pool)
    .await
    .unwrap();
    check(
        &mut holes,
        "a deleted event in the outbox",
        post_event(cluster, &ingest, &broker_to_ingest, (&planted, DELETED, approved)).await,
        202,
    );
    let r = cluster.call(reqwest::Method::GET, &format!("/api/artifacts/{approved}/download"), token, None).await;
    match r.headers().get("location").and_then(|l| l.to_str().ok()) {
        Some(location) if r.status() == 302 => {
            let got = cluster.client.get(location).send().await.unwrap();
            let want = status(cluster, token, approved).await["sha256"].as_str().unwrap_or_default().to_owned();
            let bytes = got.bytes().await.unwrap();
            if sha256(&bytes) != want {
                holes.push(format!("the approved artifact's blob is gone or changed ({} bytes)", bytes.len()));
            }
        }
        _ => holes.push(format!("the approved artifact no longer downloads: {}", r.status())),
    }

    // A pending event's id cannot be taken ahead of it: the Broker loses the real one (to
    // redeliver it later), a forged event with its id and another subject is refused and
    // claims nothing, and the real event is then handled.
    let bytes = clean_tarball("pre-claimed");
    let (victim, target) = create(cluster, token, "pre-claimed", "pre-claimed.tar.gz", &bytes).await;
    cluster.broker.lose.lock().unwrap().insert(victim.clone(), 1);
    put(cluster, &target, &bytes).await;
    let pending_event = "SELECT id FROM outbox WHERE artifact_id = $1 AND event_type = 'dev.arca.artifact.uploaded' \
                         AND delivered_at IS NOT NULL";
    assert!(
        eventually(Duration::from_secs(30), || async {
            sqlx::query_scalar::<_, String>(pending_event).bind(&victim).fetch_optional(pool).await.unwrap().is_some()
        })
        .await,
        "the uploaded event of {victim} did not reach the Broker"
    );
    let real: String = sqlx::query_scalar(pending_event).bind(&victim).fetch_one(pool).await.unwrap();
    check(
        &mut holes,
        "a pending id with another subject",
        post_event(cluster, &scan, &broker_to_scan, (&real, UPLOADED, approved)).await,
        403,
    );
    let claims: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM event_claims WHERE event_id = $1")
        .bind(&real)
        .fetch_one(pool)
        .await
        .unwrap();
    if claims != 0 {
        holes.push(format!("the forged event claimed the id {real} of a pending event"));
    }
    check(
        &mut holes,
        "the real event, redelivered",
        post_event(cluster, &scan, &broker_to_scan, (&real, UPLOADED, &victim)).await,
        202,
    );
    let s = status_within(cluster, token, &victim, "approved", Duration::from_secs(60)).await;
    if s["status"] != "approved" {
        holes.push(format!("the real event of {victim} was not handled: {s}"));
    }

    // Dead letters: an unknown id, and a known id with another type.
    let unknown = uuid::Uuid::new_v4().to_string();
    check(
        &mut holes,
        "a dead letter of an unknown id",
        post_event(cluster, &dead_letters, &broker_to_ingest, (&unknown, UPLOADED, approved)).await,
        403,
    );
    check(
        &mut holes,
        "a dead letter of a known id with another type",
        post_event(cluster, &dead_letters, &broker_to_ingest, (&real, "dev.arca.artifact.scanned", &victim)).await,
        403,
    );
    let dead: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE id = $1 AND dead_at IS NOT NULL")
        .bind(&real)
        .fetch_one(pool)
        .await
        .unwrap();
    if dead != 0 {
        holes.push(format!("a forged dead letter marked {real} dead"));
    }

    // Audited: the refused pod, the refused forgeries (naming the event and the sender), and
    // accepted deliveries (naming the Broker's identity).
    let audited = eventually(Duration::from_secs(10), || async {
        audit_rows(pool, "action = 'POST /' AND status = 401 AND actor = $1", "anonymous").await > refused_before
            && audit_rows(pool, "action = 'POST /' AND status = 403 AND details LIKE $1", &format!("%{unknown}%")).await
                + audit_rows(
                    pool,
                    "action = 'POST /dead-letters' AND status = 403 AND details LIKE $1",
                    &format!("%{unknown}%"),
                )
                .await
                == 1
            && audit_rows(pool, "action = 'POST /' AND status = 202 AND actor = $1", &trigger_identity("scan-uploaded"))
                .await
                > 0
    })
    .await;
    if !audited {
        holes.push("receivers' refusals or deliveries are not audited".to_owned());
    }
    assert!(holes.is_empty(), "forged events got through:\n{}", holes.join("\n"));
}

/// Issue 20: artifacts stuck in `scanning` because the Broker lost their event are re-driven
/// by ingest's leased reconciler (here with a 2 s deadline and two attempts): one whose
/// first event was lost is approved without anyone acting; one whose events are all lost
/// fails after the attempts, with the reason. Both audited and counted.
async fn stuck_artifacts_are_redriven(cluster: &mut Cluster, token: &str, pool: &sqlx::PgPool) {
    cluster.extra_env = vec![
        ("ingest", "ARCA_REDRIVE_AFTER_SECS".into(), "2".into()),
        ("ingest", "ARCA_REDRIVE_ATTEMPTS".into(), "2".into()),
    ];
    let ingest = cluster.processes.iter().position(|p| p.name == "ingest").unwrap();
    let port = cluster.processes.remove(ingest).port; // dropped: killed
    cluster.spawn("ingest", port, 0);
    cluster.wait_ready().await;

    let mut ids = Vec::new();
    for (name, lost) in [("lost-once", 1), ("lost-always", usize::MAX)] {
        let bytes = clean_tarball(name);
        let (id, target) = create(cluster, token, name, &format!("{name}.tar.gz"), &bytes).await;
        cluster.broker.lose.lock().unwrap().insert(id.clone(), lost);
        put(cluster, &target, &bytes).await;
        ids.push(id);
    }
    let uploaded = "SELECT COUNT(*) FROM outbox WHERE artifact_id = $1 AND event_type = 'dev.arca.artifact.uploaded'";
    let approved = wait_status(cluster, token, &ids[0], "approved", Duration::from_secs(60)).await;
    assert!(scalar(pool, uploaded, &ids[0]).await >= 2, "sent again: {approved}");
    let failed = wait_status(cluster, token, &ids[1], "failed", Duration::from_secs(60)).await;
    assert!(failed["status_reason"].as_str().unwrap_or_default().contains("stuck in scanning"), "{failed}");
    assert_eq!(scalar(pool, uploaded, &ids[1]).await, 3, "sent again twice, then failed: {failed}");
    for id in &ids {
        let audited = eventually(Duration::from_secs(10), || async {
            audit_rows(pool, "action = 'artifacts.redrive' AND target = $1", id).await > 0
        })
        .await;
        assert!(audited, "the re-drive of {id} is not audited");
    }
    let metrics = cluster
        .client
        .get(format!("http://127.0.0.1:{port}/api/metrics"))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let counted = |outcome: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("arca_artifacts_redriven_total{{outcome=\"{outcome}\"}} ")))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    assert!(counted("redriven") >= 3.0 && counted("failed") >= 1.0, "{metrics}");
}

/// Figures for the note (issue 12), with the cluster idle: the relay's throughput to the
/// Broker stand-in (1,000 events written at once), then each function alone from a cold
/// process to ready (best of 3, on the migrated database) and its stripped binary size.
async fn figures(cluster: &mut Cluster, layout: &[(&'static str, usize)], dir: &Path) {
    const EVENTS: i64 = 1000;
    let pool = cluster.pg().await;
    let before = cluster.broker.received.lock().unwrap().len();
    let started = Instant::now();
    sqlx::query(
        "INSERT INTO outbox (id, event_type, artifact_id, payload, created_at, attempts, next_attempt_at) \
         SELECT 'relay-bench-' || g, 'dev.arca.bench.ping', 'relay-bench', \
                '{\"specversion\":\"1.0\",\"id\":\"relay-bench-' || g || '\",\"type\":\"dev.arca.bench.ping\",\
                  \"source\":\"/arca/bench\",\"datacontenttype\":\"application/json\",\"data\":{}}', \
                t, 0, t \
         FROM generate_series(1, $1) g, (SELECT (extract(epoch FROM now()) * 1000)::bigint AS t) clock",
    )
    .bind(EVENTS)
    .execute(&pool)
    .await
    .unwrap();
    // As the lifecycle does after writing an event: wake the relay.
    sqlx::query("SELECT pg_notify('arca_outbox', '')").execute(&pool).await.unwrap();
    let written: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE artifact_id = 'relay-bench'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(written, EVENTS, "the relay benchmark's events were not written");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let left: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM outbox WHERE artifact_id = 'relay-bench' AND delivered_at IS NULL",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        if left == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{left} of {EVENTS} events still undelivered after 120 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let received =
        cluster.broker.received.lock().unwrap()[before..].iter().filter(|(_, t)| t == "dev.arca.bench.ping").count();
    assert!(received >= EVENTS as usize, "the broker received {received} of {EVENTS} events");
    eprintln!(
        "FIGURE relay → broker stand-in: {EVENTS} events in {:.0} ms = {:.0} events/s ({} received, one ingest replica)",
        seconds * 1000.0,
        EVENTS as f64 / seconds,
        received
    );

    let mut lines = Vec::new();
    for (n, (name, _)) in layout.iter().enumerate() {
        let mut best = u128::MAX;
        for attempt in 0..3 {
            cluster.spawn(name, free_port(), 10 + n * 3 + attempt);
            cluster.wait_ready().await;
            let process = cluster.processes.pop().unwrap();
            best = best.min(process.ready_ms.unwrap());
        }
        let stripped = dir.join(format!("arca-fn-{name}.stripped"));
        let status = Command::new("strip")
            .arg("-o")
            .arg(&stripped)
            .arg(bin(&format!("arca-fn-{name}")))
            .status()
            .expect("strip (binutils)");
        assert!(status.success());
        let mib = std::fs::metadata(&stripped).unwrap().len() as f64 / 1048576.0;
        lines.push(format!("{name} {best} ms {mib:.1} MiB"));
    }
    eprintln!("FIGURE cold start to ready, one function at a time (best of 3), stripped size: {}", lines.join(", "));
}

/// One entry of `knative/base/ingress/routes.yaml` (single-line flow mappings).
struct EdgeRoute {
    path: String,
    methods: Option<Vec<String>>,
    service: String,
}

fn edge_routes() -> Vec<EdgeRoute> {
    let text = std::fs::read_to_string(crate::helpers::repo_root().join("knative/base/ingress/routes.yaml")).unwrap();
    let field = |line: &str, name: &str, end: char| -> Option<String> {
        let start = line.find(&format!("{name}: "))? + name.len() + 2;
        let rest = &line[start..];
        Some(rest[..rest.find(end)?].trim_matches(|c| c == '"' || c == '[' || c == ' ').to_owned())
    };
    let routes: Vec<EdgeRoute> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("- {"))
        .map(|line| EdgeRoute {
            path: field(line, "path", ',').unwrap_or_else(|| panic!("no path in {line}")),
            methods: field(line, "methods", ']').map(|m| m.split(',').map(|s| s.trim().to_owned()).collect()),
            service: field(line, "service", '}').unwrap_or_else(|| panic!("no service in {line}")),
        })
        .collect();
    assert!(routes.len() > 20, "routes.yaml was not read: {} entries", routes.len());
    routes
}

/// Whether an edge pattern (`{x}` one segment, trailing `/*` a prefix) covers a route template.
fn edge_covers(pattern: &str, template: &str) -> bool {
    let route: Vec<&str> = template.trim_start_matches('/').split('/').collect();
    let (pattern, prefix) = match pattern.strip_suffix("/*") {
        Some(p) => (p, true),
        None => (pattern, false),
    };
    let edge: Vec<&str> = pattern.trim_start_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let lengths = if prefix { route.len() >= edge.len() } else { route.len() == edge.len() };
    lengths && edge.iter().zip(&route).all(|(e, r)| e.starts_with('{') || e == r)
}

/// The cluster's edge (routes.yaml, from which the gateway config is generated) sends every
/// public route to the function whose route table has it, and no internal route to a function.
#[test]
fn the_edge_routes_every_route_to_the_function_that_owns_it() {
    let edge = edge_routes();
    let functions = ["auth", "users", "audit", "upload", "artifacts", "download", "scan", "sign", "ingest"];
    let route_to = |method: &str, path: &str| -> String {
        edge.iter()
            .find(|e| e.methods.as_ref().is_none_or(|m| m.iter().any(|x| x == method)) && edge_covers(&e.path, path))
            .map_or_else(|| "unrouted".to_owned(), |e| e.service.clone())
    };
    let mut wrong = Vec::new();
    /// The `ingest` function's state, as a type only (its route table is generic over it).
    #[derive(Clone, axum::extract::FromRef)]
    struct IngestState {
        core: shared::web::state::Core,
        blobs: shared::web::state::Blobs,
        token: shared::web::state::IngestToken,
        receiver: shared::web::state::Receiver,
    }
    let tables = shared::web::function::all_functions::<shared::web::state::ServeState>();
    let ingest = shared::features::ingest::router::<IngestState>();
    let specs = tables.iter().flat_map(|f| f.specs().map(move |s| (f.name, s)));
    for (name, spec) in specs.chain(ingest.specs().map(|s| ("ingest", s))) {
        {
            let function_name = name;
            let method = spec.method.to_string();
            let service = route_to(&method, &spec.path);
            let ok = if spec.internal {
                !functions.contains(&service.as_str())
            } else if function_name == "system" {
                // health and the document: any function (all serve them); metrics and the
                // probes: never through the edge (scraped and probed per pod)
                if spec.path.ends_with("/metrics") || spec.path.starts_with("/health/") {
                    service == "none"
                } else {
                    functions.contains(&service.as_str())
                }
            } else {
                service == function_name
            };
            if !ok {
                wrong.push(format!("{method} {} ({function_name}) -> {service}", spec.path));
            }
        }
    }
    assert!(wrong.is_empty(), "routes.yaml disagrees with the route tables:\n{}", wrong.join("\n"));
    // And no edge entry points at a function for paths that function does not serve.
    for entry in edge.iter().filter(|e| functions.contains(&e.service.as_str())) {
        let served = tables
            .iter()
            .filter(|f| f.name == entry.service || f.name == "system")
            .any(|f| f.specs().any(|s| !s.internal && edge_covers(&entry.path, &s.path)));
        assert!(served, "routes.yaml sends {} to {}, which serves no such route", entry.path, entry.service);
    }
}
