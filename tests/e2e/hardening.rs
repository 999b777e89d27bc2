//! Issue 10 (security hardening): each finding an outside review reproduced, attacked again
//! against a real `arca serve`. Every test names its finding; each fails on the code the
//! review attacked (commit 727a798) and passes once the finding is fixed.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use crate::artifacts::{complete, create, payload, put, sha256_hex, status_of, wait_final};
use crate::both_backends;
use crate::helpers::{bin, eventually, Arca, Backend, TestDb, ADMIN_PASSWORD, USER_PASSWORD};

// ---- Shared pieces ----

/// A zip holding a Cargo.lock with smallvec 1.6.0 (CVE-2021-25900, critical in the fixture
/// DB): quarantined by the default policy.
pub fn vulnerable_zip() -> Vec<u8> {
    let lock = "version = 3\n\n[[package]]\nname = \"demo\"\nversion = \"0.1.0\"\ndependencies = [\"smallvec\"]\n\n[[package]]\nname = \"smallvec\"\nversion = \"1.6.0\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\n";
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    writer.start_file("demo/Cargo.lock", options).unwrap();
    writer.write_all(lock.as_bytes()).unwrap();
    writer.finish().unwrap().into_inner()
}

pub const VULNERABILITY: &str = "CVE-2021-25900";

/// Declares, uploads and completes `bytes` as `name@1.0.0` (file `filename`); waits for the
/// final status. Returns (id, the artifact as admin sees it).
pub async fn submit(arca: &Arca, token: &str, name: &str, filename: &str, bytes: Vec<u8>) -> (String, Value) {
    let r = arca
        .call(
            Method::POST,
            "/api/artifacts",
            Some(token),
            Some(json!({"name": name, "version": "1.0.0", "filename": filename, "size": bytes.len(), "sha256": sha256_hex(&bytes)})),
        )
        .await;
    assert_eq!(r.status(), 201, "{name}: {}", r.text().await.unwrap());
    let created: Value = r.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let r = put(arca, created["upload"]["url"].as_str().unwrap(), bytes).await;
    assert_eq!(r.status(), 200, "{name}: {}", r.text().await.unwrap());
    assert_eq!(complete(arca, token, &id).await.status(), 200, "{name}");
    let done = wait_final(arca, token, &id).await;
    (id, done)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// Waives `VULNERABILITY` for one artifact (admin); returns the exception's id.
pub async fn waive(arca: &Arca, admin: &str, id: &str) -> String {
    let r = arca
        .call(
            Method::POST,
            "/api/exceptions",
            Some(admin),
            Some(json!({"artifact_id": id, "vulnerability_id": VULNERABILITY,
                        "justification": "not reachable in this build (test)", "expires_at": now_ms() + 3_600_000})),
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
}

/// Waits until the artifact has `status` (as `token` sees it).
pub async fn wait_status(arca: &Arca, token: &str, id: &str, status: &str, within: Duration) {
    let reached = eventually(within, || async { status_of(arca, token, id).await["status"] == status }).await;
    assert!(reached, "artifact {id} did not become {status}: {}", status_of(arca, token, id).await);
}

/// An artifact approved through an exception, then quarantined again once the exception
/// was revoked (the server must run with a short `ARCA_POLICY_RECHECK_SECS`). Its blob is
/// in the permanent area and it carries Arca's signature.
pub async fn requarantined(arca: &Arca, admin: &str, name: &str) -> String {
    let (id, done) = submit(arca, admin, name, &format!("{name}.zip"), vulnerable_zip()).await;
    assert_eq!(done["status"], "quarantined", "{done}");
    let exception = waive(arca, admin, &id).await;
    wait_status(arca, admin, &id, "approved", Duration::from_secs(20)).await;
    let r = arca.call(Method::DELETE, &format!("/api/exceptions/{exception}"), Some(admin), None).await;
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    wait_status(arca, admin, &id, "quarantined", Duration::from_secs(20)).await;
    id
}

fn problem_code(body: &str) -> String {
    serde_json::from_str::<Value>(body).unwrap_or_default()["code"].as_str().unwrap_or("").to_owned()
}

/// The whole audit log, oldest first.
async fn audit_export(arca: &Arca, admin: &str) -> Vec<Value> {
    let text = arca.call(Method::GET, "/api/audit-logs?format=ndjson", Some(admin), None).await.text().await.unwrap();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

// ---- Finding 6: API tokens ----

async fn create_token(arca: &Arca, bearer: &str, scopes: &[&str]) -> reqwest::Response {
    arca.call(
        Method::POST,
        "/api/tokens",
        Some(bearer),
        Some(json!({"name": "ci", "scopes": scopes, "expires_in_days": 7})),
    )
    .await
}

async fn new_token(arca: &Arca, session: &str) -> String {
    let r = create_token(arca, session, &["artifacts_read", "tokens_manage"]).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    r.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned()
}

async fn me_status(arca: &Arca, bearer: &str) -> u16 {
    arca.call(Method::GET, "/api/auth/me", Some(bearer), None).await.status().as_u16()
}

/// Finding 6: an API token cannot mint tokens (only a signed-in session can), and a password
/// change or a disabled account revokes the user's API tokens unless the admin says
/// `revoke_api_tokens: false`.
async fn api_tokens_do_not_outlive_their_origin(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let arca = Arca::builder(dir.path(), backend).await.start().await;
    let admin = arca.login("admin", ADMIN_PASSWORD).await;
    let user = arca.create_user(&admin, "ci-owner", &["publisher"]).await;
    let session = arca.login("ci-owner", USER_PASSWORD).await;
    let parent = new_token(&arca, &session).await;
    assert_eq!(me_status(&arca, &parent).await, 200);
    // A token holding tokens_manage still cannot create a successor.
    let r = create_token(&arca, &parent, &["artifacts_read"]).await;
    let status = r.status().as_u16();
    let body = r.text().await.unwrap();
    assert_eq!((status, problem_code(&body).as_str()), (403, "interactive_session_required"), "{body}");
    let listed: Value = arca.call(Method::GET, "/api/tokens", Some(&session), None).await.json().await.unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "no successor was stored: {listed}");

    let update = |body: Value| {
        let (arca, admin, user) = (&arca, admin.clone(), user.clone());
        async move {
            let r = arca.call(Method::PUT, &format!("/api/users/{user}"), Some(&admin), Some(body)).await;
            assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        }
    };
    // A password change revokes the API tokens by default ...
    update(json!({"password": "second-long-password"})).await;
    assert_eq!(me_status(&arca, &parent).await, 401, "a password change left an API token valid");
    // ... and keeps them when the admin says so.
    let session = arca.login("ci-owner", "second-long-password").await;
    let kept = new_token(&arca, &session).await;
    update(json!({"password": "third-long-password", "revoke_api_tokens": false})).await;
    assert_eq!(me_status(&arca, &kept).await, 200, "revoke_api_tokens: false revoked the token");
    // Disabling revokes them too: re-enabling the account does not bring them back.
    update(json!({"disabled": true})).await;
    assert_eq!(me_status(&arca, &kept).await, 401);
    update(json!({"disabled": false})).await;
    assert_eq!(me_status(&arca, &kept).await, 401, "a token survived the account's disabling");
    let session = arca.login("ci-owner", "third-long-password").await;
    let spared = new_token(&arca, &session).await;
    update(json!({"disabled": true, "revoke_api_tokens": false})).await;
    assert_eq!(me_status(&arca, &spared).await, 401, "a disabled account's token works");
    update(json!({"disabled": false})).await;
    assert_eq!(me_status(&arca, &spared).await, 200, "revoke_api_tokens: false revoked the token");
}
both_backends!(api_tokens_do_not_outlive_their_origin);

// ---- Finding 7: what anonymous callers can make Arca store ----

fn series(metrics: &str) -> Vec<String> {
    metrics
        .lines()
        .filter(|l| l.starts_with("arca_http_requests_total{"))
        .map(|l| l.split('}').next().unwrap().to_owned())
        .collect()
}

async fn metrics(arca: &Arca, token: &str) -> String {
    arca.client.get(arca.url("/api/metrics")).bearer_auth(token).send().await.unwrap().text().await.unwrap()
}

/// Finding 7: a 16 KB unmatched path and 40 invented methods leave short audit rows
/// (`GET unmatched`, `OTHER unmatched`, the path truncated) and no metric series per
/// method or path.
#[tokio::test]
async fn anonymous_requests_leave_bounded_audit_rows_and_metric_series() {
    let dir = tempfile::tempdir().unwrap();
    let scrape = "scrape-token-0123456789";
    let arca = Arca::builder(dir.path(), Backend::Sqlite).await.env("ARCA_METRICS_TOKEN", scrape).start().await;
    let admin = arca.login("admin", ADMIN_PASSWORD).await;
    let before = series(&metrics(&arca, scrape).await);
    let long = format!("/api/{}", "a".repeat(16 * 1024));
    assert_eq!(arca.client.get(arca.url(&long)).send().await.unwrap().status(), 404);
    for i in 1..=40 {
        let method = Method::from_bytes(format!("FOO{i}").as_bytes()).unwrap();
        let r = arca.client.request(method, arca.url(&format!("/api/nothing-{i}"))).send().await.unwrap();
        assert!(r.status().is_client_error(), "FOO{i}: {}", r.status());
    }
    let db = TestDb::of(&arca).await;
    let others = "SELECT COUNT(*) FROM audit_log WHERE action = 'OTHER unmatched'";
    assert!(
        eventually(Duration::from_secs(10), || async { db.number(others).await == 40 }).await,
        "expected 40 rows 'OTHER unmatched', found {}",
        db.number(others).await
    );
    let longest = db.number("SELECT CAST(MAX(LENGTH(target)) AS BIGINT) FROM audit_log").await;
    assert!(longest <= 260, "an audit row keeps a target of {longest} characters");
    let longest = db.number("SELECT CAST(MAX(LENGTH(action)) AS BIGINT) FROM audit_log").await;
    assert!(longest <= 100, "an audit row keeps an action of {longest} characters");
    assert_eq!(db.number("SELECT COUNT(*) FROM audit_log WHERE action LIKE '%FOO%' OR target LIKE '%FOO%'").await, 0);
    let truncated =
        db.strings("SELECT target FROM audit_log WHERE action = 'GET unmatched' AND target LIKE '/api/aaaa%'").await;
    assert_eq!(truncated.len(), 1, "the long path is audited once: {truncated:?}");
    assert!(truncated[0].ends_with('…'), "the stored path says it was cut: {}", &truncated[0]);

    let after = series(&metrics(&arca, scrape).await);
    let new: Vec<&String> = after.iter().filter(|s| !before.contains(s)).collect();
    assert!(new.len() <= 4, "{} new series: {new:?}", new.len());
    assert!(!after.iter().any(|s| s.contains("FOO") || s.contains("aaaa")), "{new:?}");
    drop(admin);
}

/// Finding 7: past `ARCA_ANONYMOUS_AUDIT_RATE` failing anonymous requests per minute from
/// one address, nothing more is written (counted in `arca_audit_suppressed_total`); other
/// addresses keep their own budget.
#[tokio::test]
async fn anonymous_audit_rows_are_rate_limited_per_address() {
    let dir = tempfile::tempdir().unwrap();
    let scrape = "scrape-token-0123456789";
    let arca = Arca::builder(dir.path(), Backend::Sqlite)
        .await
        .env("ARCA_METRICS_TOKEN", scrape)
        .env("ARCA_ANONYMOUS_AUDIT_RATE", "5")
        .env("ARCA_TRUSTED_PROXIES", "127.0.0.1")
        .start()
        .await;
    let get = |path: String, ip: &'static str| {
        let arca = &arca;
        async move { arca.client.get(arca.url(&path)).header("x-forwarded-for", ip).send().await.unwrap().status().as_u16() }
    };
    let started = Instant::now();
    for i in 0..30 {
        assert_eq!(get(format!("/api/probe-{i}"), "203.0.113.7").await, 404);
    }
    assert_eq!(get("/api/probe-other".into(), "203.0.113.8").await, 404);
    let db = TestDb::of(&arca).await;
    let other = "SELECT COUNT(*) FROM audit_log WHERE client_ip = '203.0.113.8'";
    assert!(
        eventually(Duration::from_secs(10), || async { db.number(other).await == 1 }).await,
        "another address lost its budget"
    );
    let rows = db.number("SELECT COUNT(*) FROM audit_log WHERE client_ip = '203.0.113.7'").await;
    // A budget of 5 a minute, refilled one every 12 s.
    let allowed = 5 + started.elapsed().as_secs() as i64 / 12 + 1;
    assert!(rows <= allowed, "{rows} audit rows from one anonymous address (budget {allowed})");
    let text = metrics(&arca, scrape).await;
    let suppressed: i64 = text
        .lines()
        .find_map(|l| l.strip_prefix("arca_audit_suppressed_total "))
        .unwrap_or_else(|| panic!("no arca_audit_suppressed_total: {text}"))
        .trim()
        .parse()
        .unwrap();
    assert_eq!(suppressed, 30 - rows, "every unwritten row is counted");
}

// ---- Finding 8: connection limits ----

/// A TLS connection made with `openssl s_client` (the test controls every byte it sends).
struct TlsConnection {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    output: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl TlsConnection {
    async fn open(addr: &str) -> Self {
        use tokio::io::AsyncReadExt;
        let mut child = tokio::process::Command::new("openssl")
            .args(["s_client", "-connect", addr, "-quiet"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("openssl s_client");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let output = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = output.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Self { child, stdin, output }
    }

    async fn send(&mut self, bytes: &[u8]) -> bool {
        use tokio::io::AsyncWriteExt;
        self.stdin.write_all(bytes).await.is_ok() && self.stdin.flush().await.is_ok()
    }

    fn received(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }

    fn closed(&mut self) -> bool {
        self.child.try_wait().unwrap().is_some()
    }

    /// Waits (at most `limit`) for the server to close the connection; how long it took.
    async fn wait_closed(&mut self, since: Instant, limit: Duration) -> Option<Duration> {
        tokio::time::timeout(limit, self.child.wait()).await.ok().map(|_| since.elapsed())
    }
}

/// Whether the server has closed a raw TCP connection (without blocking).
fn tcp_closed(stream: &mut std::net::TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
        Err(_) => true,
    }
}

/// Finding 8: with `ARCA_MAX_CONNECTIONS=20`, 50 half-open TLS connections are not all
/// accepted (those over the cap are closed at once) and the server answers afterwards; a
/// request whose headers trickle in is closed after `ARCA_HEADER_TIMEOUT` without being
/// served; a JSON body sent byte by byte to a non-streaming route gets 408 after
/// `ARCA_REQUEST_TIMEOUT`.
#[tokio::test]
async fn slow_and_half_open_connections_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let arca = Arca::builder(dir.path(), Backend::Sqlite)
        .await
        .env("ARCA_MAX_CONNECTIONS", "20")
        .env("ARCA_HEADER_TIMEOUT", "2")
        .env("ARCA_IDLE_TIMEOUT", "30")
        .env("ARCA_REQUEST_TIMEOUT", "2")
        .start()
        .await;
    let addr = arca.addr();
    // 50 connections that never start their TLS handshake.
    let mut streams: Vec<std::net::TcpStream> = (0..50).map(|_| std::net::TcpStream::connect(&addr).unwrap()).collect();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let closed_at_once = streams.iter_mut().map(tcp_closed).filter(|closed| *closed).count();
    assert!(closed_at_once >= 30, "only {closed_at_once} of 50 half-open connections were refused (cap 20)");
    assert!(closed_at_once < 50, "the server accepted none");
    // The accepted ones are closed once the handshake timeout passes; the server answers.
    let all_closed = eventually(Duration::from_secs(8), || {
        let done = streams.iter_mut().all(tcp_closed);
        async move { done }
    })
    .await;
    assert!(all_closed, "half-open connections were held past the handshake timeout");
    drop(streams);
    assert_eq!(arca.get("/api/health").await.status(), 200, "the server stopped answering");

    // Headers that trickle in (a byte every 300 ms, never finished).
    let mut slow = TlsConnection::open(&addr).await;
    assert!(slow.send(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ").await);
    let since = Instant::now();
    while !slow.closed() && since.elapsed() < Duration::from_secs(15) {
        if !slow.send(b"a").await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let took = slow.wait_closed(since, Duration::from_secs(1)).await.expect("partial headers were held for 15 s");
    assert!(took < Duration::from_secs(8), "closed only after {took:?}");
    assert!(!slow.received().contains("200 OK"), "a request with partial headers was served: {}", slow.received());

    // A login body sent one byte every 200 ms: 408 once the request timeout passes.
    let body = json!({"username": "admin", "password": "not-the-password-at-all"}).to_string();
    let mut trickle = TlsConnection::open(&addr).await;
    let head = format!(
        "POST /api/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    assert!(trickle.send(head.as_bytes()).await);
    let since = Instant::now();
    for byte in body.bytes() {
        if trickle.received().contains("HTTP/1.1") || !trickle.send(&[byte]).await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(body.len() as u64 * 200 > 4000, "the body must take longer than twice the timeout");
    let answered = eventually(Duration::from_secs(5), || {
        let text = trickle.received();
        async move { text.contains("HTTP/1.1") }
    })
    .await;
    let text = trickle.received();
    assert!(answered, "no answer to a slow body");
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("request_timeout"), "{text}");
    assert!(since.elapsed() < Duration::from_secs(8), "answered after {:?}", since.elapsed());
}

/// Finding 8: a connection that sends nothing (before its TLS handshake, or after an
/// answered request) is closed after `ARCA_IDLE_TIMEOUT`.
#[tokio::test]
async fn idle_connections_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let arca = Arca::builder(dir.path(), Backend::Sqlite)
        .await
        .env("ARCA_IDLE_TIMEOUT", "2")
        .env("ARCA_HEADER_TIMEOUT", "30")
        .start()
        .await;
    let addr = arca.addr();
    let mut silent = std::net::TcpStream::connect(&addr).unwrap();
    let since = Instant::now();
    let closed = eventually(Duration::from_secs(10), || {
        let done = tcp_closed(&mut silent);
        async move { done }
    })
    .await;
    assert!(closed, "a silent connection stayed open 10 s");
    assert!(since.elapsed() >= Duration::from_millis(1500), "closed too early: {:?}", since.elapsed());

    let mut kept = TlsConnection::open(&addr).await;
    assert!(kept.send(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await);
    assert!(
        eventually(Duration::from_secs(10), || {
            let text = kept.received();
            async move { text.contains("\"status\":\"ok\"") }
        })
        .await,
        "{}",
        kept.received()
    );
    let since = Instant::now();
    let took =
        kept.wait_closed(since, Duration::from_secs(10)).await.expect("an idle keep-alive connection stayed open");
    assert!(took >= Duration::from_millis(1500) && took < Duration::from_secs(6), "closed after {took:?}");
}

// ---- Finding 9: names have owners ----

async fn declare(arca: &Arca, token: &str, name: &str, version: &str) -> (u16, String) {
    let r = arca
        .call(
            Method::POST,
            "/api/artifacts",
            Some(token),
            Some(json!({"name": name, "version": version, "filename": "benign.bin", "size": 3, "sha256": sha256_hex(b"abc")})),
        )
        .await;
    let status = r.status().as_u16();
    (status, r.text().await.unwrap())
}

/// Finding 9: a second publisher cannot add a version under a name another publisher owns
/// (403 `name_owned`) until an admin grants it; owners are listed; a revoked grant ends it.
async fn names_belong_to_their_publishers(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let arca = Arca::builder(dir.path(), backend).await.start().await;
    let admin = arca.login("admin", ADMIN_PASSWORD).await;
    arca.create_user(&admin, "pub1", &["publisher"]).await;
    arca.create_user(&admin, "pub2", &["publisher"]).await;
    let (pub1, pub2) = (arca.login("pub1", USER_PASSWORD).await, arca.login("pub2", USER_PASSWORD).await);
    let (status, body) = declare(&arca, &pub1, "benign", "1.0.0").await;
    assert_eq!(status, 201, "{body}");
    let created: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(created["owner"], "pub1");
    let (status, body) = declare(&arca, &pub2, "benign", "1.0.1").await;
    assert_eq!((status, problem_code(&body).as_str()), (403, "name_owned"), "{body}");
    let owners = |token: String| {
        let arca = &arca;
        async move {
            let r = arca.call(Method::GET, "/api/names/benign/owners", Some(&token), None).await;
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()["owners"].clone()
        }
    };
    assert_eq!(owners(pub2.clone()).await, json!(["pub1"]));
    // A publisher cannot grant itself the name.
    let r = arca.call(Method::POST, "/api/names/benign/owners", Some(&pub2), Some(json!({"username": "pub2"}))).await;
    assert_eq!(r.status(), 403);
    let r = arca.call(Method::POST, "/api/names/benign/owners", Some(&admin), Some(json!({"username": "pub2"}))).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(owners(pub1.clone()).await, json!(["pub1", "pub2"]));
    let (status, body) = declare(&arca, &pub2, "benign", "1.0.1").await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = declare(&arca, &admin, "benign", "1.0.2").await;
    assert_eq!(status, 201, "admins may add versions: {body}");
    let r = arca.call(Method::DELETE, "/api/names/benign/owners/pub2", Some(&admin), None).await;
    assert_eq!(r.status(), 200);
    let (status, body) = declare(&arca, &pub2, "benign", "1.0.3").await;
    assert_eq!((status, problem_code(&body).as_str()), (403, "name_owned"), "{body}");
    // A name nobody owns yet goes to its first publisher.
    assert_eq!(declare(&arca, &pub2, "other-tool", "1.0.0").await.0, 201);
    assert_eq!(declare(&arca, &pub1, "other-tool", "1.0.1").await.0, 403);
}
both_backends!(names_belong_to_their_publishers);

// ---- Finding 12: two instances on one database ----

/// Finding 12: two `arca serve` on one PostgreSQL (own data dirs, one master key). While an
/// upload streams slowly into A, starting B neither resets it to `pending_upload` nor
/// deletes its partial file; once it is done, its upload URL is refused on both (409
/// `upload_url_used`).
#[tokio::test]
async fn a_second_instance_leaves_uploads_in_flight_alone() {
    let dir = tempfile::tempdir().unwrap();
    let master = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [7u8; 32]);
    let builder = Arca::builder(&dir.path().join("a"), Backend::Postgres).await;
    let database = builder.database_url().unwrap();
    let a = builder.env("ARCA_MASTER_KEY", &master).env("ARCA_EVENT_LEASE_SECS", "2").start().await;
    let admin = a.login("admin", ADMIN_PASSWORD).await;
    let bytes = payload(8 << 20, 12);
    let (id, url) = create(&a, &admin, "in-flight", bytes.len() as u64, &sha256_hex(&bytes)).await;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    let upload = {
        let (client, url, size) = (a.client.clone(), url.clone(), bytes.len());
        tokio::spawn(async move {
            let body = reqwest::Body::wrap_stream(futures::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|item| (item, rx))
            }));
            client.put(&url).header("content-length", size).body(body).send().await
        })
    };
    let chunks: Vec<Vec<u8>> = bytes.chunks(256 * 1024).map(<[u8]>::to_vec).collect();
    let (first, rest) = chunks.split_at(4);
    for chunk in first {
        tx.send(Ok(chunk.clone())).await.unwrap();
    }
    let partial = a.data_dir.join("blobs/quarantine").join(format!("{id}.partial"));
    assert!(eventually(Duration::from_secs(10), || async { partial.exists() }).await, "the upload did not start");
    assert_eq!(status_of(&a, &admin, &id).await["status"], "uploading");

    let b = Arca::builder(&dir.path().join("b"), Backend::Sqlite)
        .await
        .env("DATABASE_URL", &database)
        .env("ARCA_MASTER_KEY", &master)
        .env("ARCA_EVENT_LEASE_SECS", "2")
        .start()
        .await;
    let admin_b = b.login("admin", ADMIN_PASSWORD).await;
    // B runs its lease checks for several leases while A keeps streaming, slowly.
    let path = &url[url.find("/api/uploads/").unwrap()..];
    for (i, chunk) in rest.iter().enumerate() {
        tx.send(Ok(chunk.clone())).await.unwrap();
        tokio::time::sleep(Duration::from_millis(250)).await;
        if i % 4 == 0 {
            let seen = status_of(&b, &admin_b, &id).await;
            assert_eq!(seen["status"], "uploading", "B reset an upload in flight: {seen}");
            assert!(partial.exists(), "the partial file of an upload in flight was deleted");
        }
        if i == 8 {
            // The same URL, replayed on B while A receives: refused.
            let r = put(&b, &b.url(path), bytes.clone()).await;
            assert_eq!(r.status(), 409, "a replayed upload URL was accepted during the upload");
        }
    }
    drop(tx);
    let r = upload.await.unwrap().unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(status_of(&a, &admin, &id).await["status"], "verifying");
    for (server, name) in [(&a, "A"), (&b, "B")] {
        let r = put(server, &server.url(path), bytes.clone()).await;
        let status = r.status().as_u16();
        let body = r.text().await.unwrap();
        assert_eq!((status, problem_code(&body).as_str()), (409, "upload_url_used"), "replayed on {name}: {body}");
    }
    assert_eq!(status_of(&b, &admin_b, &id).await["status"], "verifying", "the finished upload was reset");
    assert!(a.data_dir.join("blobs/quarantine").join(&id).exists(), "the received blob is gone");
}

// ---- Finding 13: the audit log's tail, offline verification, Arca's own changes ----

async fn checkpoints(arca: &Arca, admin: &str) -> Value {
    arca.call(Method::GET, "/api/audit-logs/checkpoints", Some(admin), None).await.json().await.unwrap()
}

async fn latest_checkpoint(arca: &Arca, admin: &str) -> i64 {
    checkpoints(arca, admin).await["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["seq"].as_i64().unwrap())
        .max()
        .unwrap_or(0)
}

fn audit_verify(dir: &std::path::Path, log: &str) -> std::process::Output {
    std::process::Command::new(bin("arca"))
        .args(["audit", "verify", "--log", log, "--checkpoints", "checkpoints.json", "--public-key", "key.pem"])
        .current_dir(dir)
        .output()
        .unwrap()
}

/// Finding 13: with checkpoints signed every second, cutting the newest rows out of
/// `audit_log` makes `GET /api/audit-logs/verify` report `valid: false` naming the
/// truncation; `arca audit verify` accepts an intact export and refuses a cut or edited
/// one; every status change Arca makes on its own is an audit entry by `arca`.
async fn audit_tail_cuts_are_detected(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let arca = Arca::builder(dir.path(), backend).await.env("ARCA_AUDIT_CHECKPOINT_SECS", "1").start().await;
    let admin = arca.login("admin", ADMIN_PASSWORD).await;
    let (id, done) = submit(&arca, &admin, "audited", "audited.bin", payload(1000, 3)).await;
    assert_eq!(done["status"], "approved");
    for _ in 0..10 {
        arca.call(Method::GET, "/api/auth/me", Some(&admin), None).await;
    }
    assert!(
        eventually(Duration::from_secs(15), || async { latest_checkpoint(&arca, &admin).await >= 20 }).await,
        "no checkpoint covers the first 20 entries"
    );

    // Every status change is audited, by Arca, naming its event.
    let entries = audit_export(&arca, &admin).await;
    let db = TestDb::of(&arca).await;
    let events = db
        .strings(&format!("SELECT id FROM outbox WHERE artifact_id = '{id}' AND event_type NOT LIKE '%.rescan'"))
        .await;
    assert!(events.len() >= 5, "{events:?}");
    for event in &events {
        let audited = entries.iter().find(|e| {
            e["action"] == "artifacts.status" && e["details"].as_str().is_some_and(|d| d.contains(event.as_str()))
        });
        let entry = audited.unwrap_or_else(|| panic!("status change {event} is not in the audit log"));
        assert_eq!(entry["actor"], "arca");
        assert_eq!(entry["target"], id.as_str());
    }

    // Offline: the checkpoints first, then the export (which reaches past them).
    let work = dir.path();
    std::fs::write(work.join("checkpoints.json"), checkpoints(&arca, &admin).await.to_string()).unwrap();
    let private = arca.data_dir.join("keys/audit-checkpoint.pem");
    let out = std::process::Command::new("openssl")
        .args(["pkey", "-in", private.to_str().unwrap(), "-pubout", "-out", "key.pem"])
        .current_dir(work)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let export =
        arca.call(Method::GET, "/api/audit-logs?format=ndjson", Some(&admin), None).await.text().await.unwrap();
    std::fs::write(work.join("export.ndjson"), &export).unwrap();
    let out = audit_verify(work, "export.ndjson");
    assert!(
        out.status.success(),
        "an intact export did not verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = export.lines().collect();
    let covered = serde_json::from_str::<Value>(&std::fs::read_to_string(work.join("checkpoints.json")).unwrap())
        .unwrap()["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["seq"].as_i64().unwrap())
        .max()
        .unwrap() as usize;
    std::fs::write(work.join("cut.ndjson"), lines[..covered - 3].join("\n")).unwrap();
    let out = audit_verify(work, "cut.ndjson");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "an export cut short verified: {text}");
    assert!(text.contains("tail was removed"), "{text}");
    let mut edited: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
    edited[2] = edited[2].replacen("\"actor\":\"", "\"actor\":\"mallory", 1);
    std::fs::write(work.join("edited.ndjson"), edited.join("\n")).unwrap();
    let out = audit_verify(work, "edited.ndjson");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "an edited export verified: {text}");
    assert!(text.contains("hash does not match"), "{text}");

    // Online: the newest rows deleted behind Arca's back.
    let verify = || async {
        arca.call(Method::GET, "/api/audit-logs/verify", Some(&admin), None).await.json::<Value>().await.unwrap()
    };
    assert_eq!(verify().await["valid"], true);
    let head = db.number("SELECT MAX(seq) FROM audit_log").await;
    let latest = latest_checkpoint(&arca, &admin).await;
    db.execute_past_triggers(&[&format!("DELETE FROM audit_log WHERE seq > {}", latest - 10)]).await;
    let report = verify().await;
    assert_eq!(
        report["valid"],
        false,
        "the log verifies after its tail (from {} of {head}) was cut: {report}",
        latest - 9
    );
    // An entry the server was appending while the rows went (the audit of a request just
    // before) can land above the cut: the walk then meets the gap before the checkpoint.
    let reason = report["first_invalid"]["reason"].as_str().unwrap_or_default();
    assert!(
        ["tail was removed", "differs from the signed checkpoint", "entries missing"]
            .iter()
            .any(|known| reason.contains(known)),
        "{report}"
    );
}
both_backends!(audit_tail_cuts_are_detected);

/// Finding 13, continued: a cut tail must stay detected after the log grows past the cut
/// and a new checkpoint is signed (otherwise the next checkpoint launders the truncation).
#[tokio::test]
async fn a_cut_tail_stays_detected_after_the_next_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let arca = Arca::builder(dir.path(), Backend::Sqlite).await.env("ARCA_AUDIT_CHECKPOINT_SECS", "1").start().await;
    let admin = arca.login("admin", ADMIN_PASSWORD).await;
    for _ in 0..30 {
        arca.call(Method::GET, "/api/auth/me", Some(&admin), None).await;
    }
    assert!(eventually(Duration::from_secs(15), || async { latest_checkpoint(&arca, &admin).await >= 30 }).await);
    let cut_at = latest_checkpoint(&arca, &admin).await;
    let db = TestDb::of(&arca).await;
    db.execute_past_triggers(&[&format!("DELETE FROM audit_log WHERE seq > {}", cut_at - 20)]).await;
    // The log grows again past the old checkpoint: the checkpoint job refuses to sign the
    // altered chain (and says so, with a metric to alert on) …
    for _ in 0..40 {
        arca.call(Method::GET, "/api/auth/me", Some(&admin), None).await;
    }
    assert!(
        eventually(Duration::from_secs(15), || async {
            arca.stdout.text().contains("audit checkpoint refused: the log was altered")
        })
        .await,
        "the checkpoint job did not notice the cut"
    );
    assert_eq!(latest_checkpoint(&arca, &admin).await, cut_at, "a checkpoint was signed over the altered chain");
    let metrics = arca.call(Method::GET, "/api/metrics", Some(&admin), None).await.text().await.unwrap();
    assert!(!metrics.contains("arca_audit_tampering_total 0"), "{metrics}");
    // … and verification fails at the old checkpoint, whatever is signed later.
    let report: Value =
        arca.call(Method::GET, "/api/audit-logs/verify", Some(&admin), None).await.json().await.unwrap();
    assert_eq!(
        report["valid"], false,
        "the checkpoint at entry {cut_at} was signed before 20 entries were cut, yet the log verifies: {report}"
    );
    assert!(report["first_invalid"]["reason"].as_str().unwrap_or_default().contains("checkpoint"), "{report}");
}

// ---- Issue 21: the audit log against a database writer ----

/// A server signing checkpoints every second, with `requests` audited requests and a
/// checkpoint covering them; returns (server, admin token, the latest checkpoint's seq).
async fn checkpointed(dir: &std::path::Path, backend: Backend, requests: usize) -> (Arca, String, i64) {
    let arca = Arca::builder(dir, backend).await.env("ARCA_AUDIT_CHECKPOINT_SECS", "1").start().await;
    let admin = arca.login("admin", ADMIN_PASSWORD).await;
    for _ in 0..requests {
        arca.call(Method::GET, "/api/auth/me", Some(&admin), None).await;
    }
    let wanted = requests as i64;
    assert!(
        eventually(Duration::from_secs(15), || async { latest_checkpoint(&arca, &admin).await >= wanted }).await,
        "no checkpoint covers the first {wanted} entries"
    );
    let latest = latest_checkpoint(&arca, &admin).await;
    (arca, admin, latest)
}

/// After a database writer's change: the checkpoint job refuses (log line, metric), signs
/// nothing above `forged_from` however the log grows, and verification fails.
async fn forgery_is_refused(arca: &Arca, admin: &str, db: &TestDb, forged_from: i64) {
    for _ in 0..40 {
        arca.call(Method::GET, "/api/auth/me", Some(admin), None).await;
    }
    assert!(
        eventually(Duration::from_secs(15), || async {
            arca.stdout.text().contains("audit checkpoint refused: the log was altered")
        })
        .await,
        "the checkpoint job did not notice the forgery"
    );
    // Rounds every second: give a few the chance to sign the forged head.
    tokio::time::sleep(Duration::from_secs(3)).await;
    // (A round that read the genuine head just before the change may still store it: that
    // checkpoint vouches for the removed entries, not for the forged ones.)
    let forged = db
        .number(&format!(
            "SELECT COUNT(*) FROM audit_checkpoints c JOIN audit_log l ON l.seq = c.seq AND l.hash = c.head_hash \
             WHERE c.seq >= {forged_from}"
        ))
        .await;
    assert_eq!(forged, 0, "a checkpoint was signed over the forged chain");
    let metrics = arca.call(Method::GET, "/api/metrics", Some(admin), None).await.text().await.unwrap();
    assert!(!metrics.contains("arca_audit_tampering_total 0"), "{metrics}");
    let report: Value = arca.call(Method::GET, "/api/audit-logs/verify", Some(admin), None).await.json().await.unwrap();
    assert_eq!(report["valid"], false, "the forged log verifies: {report}");
    let reason = report["first_invalid"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("checkpoint"), "{report}");
}

/// Issue 21 (High): a writer who deletes the newest checkpoints together with the tail
/// leaves a chain that agrees with every checkpoint still in the database. The signer's
/// anchor, outside the database, still vouches for the removed head.
async fn checkpoints_removed_with_the_tail_are_detected(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (arca, admin, latest) = checkpointed(dir.path(), backend, 30).await;
    let cut = latest - 20;
    let db = TestDb::of(&arca).await;
    db.execute_past_triggers(&[
        &format!("DELETE FROM audit_checkpoints WHERE seq > {cut}"),
        &format!("DELETE FROM audit_log WHERE seq > {cut}"),
    ])
    .await;
    forgery_is_refused(&arca, &admin, &db, cut + 1).await;
}
both_backends!(checkpoints_removed_with_the_tail_are_detected);

/// Issue 21 (High): a writer who rewrites an entry, recomputes every later hash and drops
/// the checkpoints from that entry on leaves a consistent chain; the anchor still catches it.
async fn a_rewritten_and_rechained_log_is_detected(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (arca, admin, latest) = checkpointed(dir.path(), backend, 30).await;
    let db = TestDb::of(&arca).await;
    // The log is quiet once the last request's entry is in (nothing else runs).
    let mut head = 0;
    while db.number("SELECT MAX(seq) FROM audit_log").await != head {
        head = db.number("SELECT MAX(seq) FROM audit_log").await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let from = latest - 20;
    let mut entries = db.audit_entries().await;
    let mut statements = vec![format!("DELETE FROM audit_checkpoints WHERE seq >= {from}")];
    let mut prev = entries[usize::try_from(from - 2).unwrap()].hash.clone();
    for entry in entries.iter_mut().filter(|e| e.seq >= from) {
        if entry.seq == from {
            entry.actor = "mallory".into();
        }
        entry.prev_hash = prev;
        entry.hash = entry.compute_hash();
        prev = entry.hash.clone();
        statements.push(format!(
            "UPDATE audit_log SET actor = '{}', prev_hash = '{}', hash = '{}' WHERE seq = {}",
            entry.actor, entry.prev_hash, entry.hash, entry.seq
        ));
    }
    db.execute_past_triggers(&statements.iter().map(String::as_str).collect::<Vec<_>>()).await;
    forgery_is_refused(&arca, &admin, &db, from).await;
}
both_backends!(a_rewritten_and_rechained_log_is_detected);

/// Issue 21: the database refuses to change or remove a checkpoint and to store an entry
/// without a known outcome; a checkpoint signed by another key, or moved to another entry,
/// fails verification.
async fn audit_checkpoints_are_append_only_and_forgeries_fail(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (arca, admin, latest) = checkpointed(dir.path(), backend, 5).await;
    let db = TestDb::of(&arca).await;
    for sql in [
        format!("UPDATE audit_checkpoints SET head_hash = 'x' WHERE seq = {latest}"),
        format!("DELETE FROM audit_checkpoints WHERE seq = {latest}"),
    ] {
        let err = db.refused(&sql).await;
        assert!(err.contains("append-only"), "{sql}: {err}");
    }
    let err = db
        .refused(
            "INSERT INTO audit_log (seq, ts, actor, roles, action, target, outcome, status, client_ip, user_agent, \
             request_id, details, prev_hash, hash) VALUES (100000, 0, 'mallory', '', 'x', 'x', '', 200, '', '', '', \
             'null', 'x', 'x')",
        )
        .await;
    assert!(err.contains("outcome"), "{err}");

    let verify = || async {
        arca.call(Method::GET, "/api/audit-logs/verify", Some(&admin), None).await.json::<Value>().await.unwrap()
    };
    assert_eq!(verify().await["valid"], true);
    // An entry no checkpoint vouches for yet, and its hash.
    let free = db
        .number(&format!(
            "SELECT MIN(seq) FROM audit_log WHERE seq < {latest} AND seq NOT IN (SELECT seq FROM audit_checkpoints)"
        ))
        .await;
    let hash = db.strings(&format!("SELECT hash FROM audit_log WHERE seq = {free}")).await.remove(0);
    // Signed by a key of the writer's own: inserting is allowed, verifying is not.
    let work = dir.path();
    let message = format!("arca-audit-checkpoint:v1:{free}:{hash}:1");
    std::fs::write(work.join("message"), &message).unwrap();
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl").args(args).current_dir(work).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    };
    openssl(&["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "mallory.pem"]);
    use base64::Engine;
    let signature = base64::engine::general_purpose::STANDARD.encode(openssl(&[
        "dgst",
        "-sha256",
        "-sign",
        "mallory.pem",
        "message",
    ]));
    db.execute(&format!(
        "INSERT INTO audit_checkpoints (seq, head_hash, signed_at, signature) VALUES ({free}, '{hash}', 1, '{signature}')"
    ))
    .await;
    let report = verify().await;
    assert_eq!(report["valid"], false, "a checkpoint signed by another key verifies: {report}");
    assert_eq!(report["first_invalid"]["seq"], free, "{report}");
    assert!(report["first_invalid"]["reason"].as_str().unwrap().contains("not signed by the checkpoint key"));
    // A genuine checkpoint moved to that entry (its signature covers its own entry).
    db.execute_past_triggers(&[
        &format!("DELETE FROM audit_checkpoints WHERE seq = {free}"),
        &format!("UPDATE audit_checkpoints SET seq = {free}, head_hash = '{hash}' WHERE seq = {latest}"),
    ])
    .await;
    let report = verify().await;
    assert_eq!(report["valid"], false, "a checkpoint moved to entry {free} verifies: {report}");
    assert_eq!(report["first_invalid"]["seq"], free, "{report}");
    assert!(report["first_invalid"]["reason"].as_str().unwrap().contains("not signed by the checkpoint key"));
}
both_backends!(audit_checkpoints_are_append_only_and_forgeries_fail);

// ---- Issue 21: filenames ----

/// Issue 21 (High/Low): a filename is pasted into shell commands and shown to people, so
/// names that mislead either are refused with a problem naming the rule; ordinary names pass.
async fn filenames_that_mislead_a_reader_or_a_shell_are_refused(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let arca = Arca::builder(dir.path(), backend).await.start().await;
    let admin = arca.login("admin", ADMIN_PASSWORD).await;
    let digest = sha256_hex(b"x");
    let declare = |filename: &str| {
        let body = json!({"name": "named", "version": "1.0.0", "filename": filename, "size": 1, "sha256": digest});
        arca.call(Method::POST, "/api/artifacts", Some(&admin), Some(body))
    };
    for (filename, rule) in [
        ("report$(id>pwned.txt).tar.gz", "shell-special"),
        ("a`id`.bin", "shell-special"),
        ("it's.bin", "shell-special"),
        ("a;b.bin", "shell-special"),
        ("invoice\u{202E}fdp.exe", "bidirectional"),
        ("a\u{2066}b.bin", "bidirectional"),
        ("a\u{200F}b.bin", "bidirectional"),
        ("a\u{061C}b.bin", "bidirectional"),
        (".bashrc", "dot"),
        ("..", "dot"),
        ("a/b", "path separators"),
        ("a\\b", "path separators"),
        ("a\nb", "control"),
        ("a\u{85}b", "control"),
    ] {
        let r = declare(filename).await;
        assert_eq!(r.status(), 400, "{filename:?} was accepted");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        let problem: Value = r.json().await.unwrap();
        assert_eq!(problem["code"], "invalid_field", "{filename:?}: {problem}");
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.starts_with("filename: ") && detail.contains(rule), "{filename:?}: {problem}");
    }
    for (i, filename) in ["report (1).tar.gz", "tool-1.2.0+build_7.zip", "résumé.pdf"].into_iter().enumerate() {
        let body = json!({"name": format!("named-{i}"), "version": "1.0.0", "filename": filename, "size": 1, "sha256": digest});
        let r = arca.call(Method::POST, "/api/artifacts", Some(&admin), Some(body)).await;
        assert_eq!(r.status(), 201, "{filename:?}: {}", r.text().await.unwrap());
    }
}
both_backends!(filenames_that_mislead_a_reader_or_a_shell_are_refused);

// ---- Finding 14: scan workspaces ----

/// Finding 14: plaintext a crash left in `<data-dir>/scans` is wiped at start-up, and
/// deleting an artifact removes its workspaces (and only its).
#[tokio::test]
async fn scan_workspaces_do_not_outlive_a_crash_or_a_delete() {
    let dir = tempfile::tempdir().unwrap();
    let mut arca = Arca::builder(dir.path(), Backend::Sqlite).await.start().await;
    let scans = arca.data_dir.join("scans");
    arca.kill9();
    let crashed = scans.join("scan-00000000-0000-0000-0000-000000000001-abc123");
    std::fs::create_dir_all(crashed.join("root/etc")).unwrap();
    std::fs::write(crashed.join("blob"), b"decrypted plaintext of an artifact").unwrap();
    std::fs::write(crashed.join("root/etc/secret"), b"more plaintext").unwrap();
    std::fs::write(scans.join("stray-file"), b"plaintext").unwrap();
    let arca = arca.start_again().await;
    assert_eq!(std::fs::read_dir(&scans).unwrap().count(), 0, "a crashed scan's plaintext survived the start");

    let admin = arca.login("admin", ADMIN_PASSWORD).await;
    let (id, done) = submit(&arca, &admin, "shredded", "shredded.bin", payload(5000, 8)).await;
    assert_eq!(done["status"], "approved");
    let (other, _) = submit(&arca, &admin, "kept", "kept.bin", payload(5000, 9)).await;
    let mine = scans.join(format!("scan-{id}-x"));
    let theirs = scans.join(format!("scan-{other}-y"));
    for workspace in [&mine, &theirs] {
        std::fs::create_dir_all(workspace).unwrap();
        std::fs::write(workspace.join("blob"), b"plaintext").unwrap();
    }
    assert_eq!(arca.call(Method::DELETE, &format!("/api/artifacts/{id}"), Some(&admin), None).await.status(), 204);
    assert!(
        eventually(Duration::from_secs(10), || async { !mine.exists() }).await,
        "the deleted artifact's workspace survived"
    );
    assert!(theirs.exists(), "another artifact's workspace was removed");
}

// ---- Finding 15: rescans after a re-quarantine ----

/// Finding 15: an artifact approved (blob promoted) and then quarantined again (its
/// exception ended) can be rescanned: the scan finds its blob.
async fn requarantined_artifacts_can_be_rescanned(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let arca = Arca::builder(dir.path(), backend).await.env("ARCA_POLICY_RECHECK_SECS", "1").start().await;
    let admin = arca.login("admin", ADMIN_PASSWORD).await;
    let id = requarantined(&arca, &admin, "flip-flop").await;
    let scan_id = || {
        let (arca, admin, id) = (&arca, admin.clone(), id.clone());
        async move {
            let r = arca.call(Method::GET, &format!("/api/artifacts/{id}/scan-results"), Some(&admin), None).await;
            r.json::<Value>().await.unwrap()["scan"].clone()
        }
    };
    let before = scan_id().await;
    let r = arca.call(Method::POST, &format!("/api/artifacts/{id}/rescan"), Some(&admin), None).await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let rescanned = eventually(Duration::from_secs(30), || async { scan_id().await["id"] != before["id"] }).await;
    let after = scan_id().await;
    assert!(rescanned, "no new scan was recorded: {after}");
    assert_eq!(after["status"], "succeeded", "the rescan failed: {after}");
    let now = status_of(&arca, &admin, &id).await;
    assert_eq!(now["status"], "quarantined", "{now}");
    assert!(!now.to_string().contains("blob missing"), "{now}");
    assert!(now["status_reason"].as_str().unwrap_or_default().contains(VULNERABILITY), "{now}");
}
both_backends!(requarantined_artifacts_can_be_rescanned);

// ---- Finding 16: paging ----

/// Finding 16: every paged route refuses out-of-range paging values with 400
/// `invalid_query` (the routes are taken from the OpenAPI document).
async fn paging_values_are_validated_everywhere(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let arca = Arca::builder(dir.path(), backend).await.start().await;
    let admin = arca.login("admin", ADMIN_PASSWORD).await;
    let doc: Value = arca.get("/api/openapi.json").await.json().await.unwrap();
    let mut checked = Vec::new();
    let mut failures = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let Some(get) = item.get("get") else { continue };
        let params: Vec<String> = get["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "query")
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .filter(|n| ["page", "per_page", "limit", "cursor", "offset"].contains(&n.as_str()))
            .collect();
        for param in params {
            // A cursor is an entry's sequence number: only non-positive ones are out of range.
            let values: &[&str] = if param == "cursor" {
                &["-9223372036854775808", "-1", "0"]
            } else {
                &["9223372036854775807", "-9223372036854775808", "-1", "0"]
            };
            for value in values {
                let url = format!("{path}?{param}={value}");
                let r = arca.call(Method::GET, &url, Some(&admin), None).await;
                let status = r.status().as_u16();
                let body = r.text().await.unwrap();
                if (status, problem_code(&body).as_str()) != (400, "invalid_query") {
                    failures.push(format!("GET {url}: {status} {}", body.chars().take(200).collect::<String>()));
                }
            }
            checked.push(format!("{path} {param}"));
        }
    }
    for expected in ["/api/artifacts page", "/api/artifacts per_page", "/api/audit-logs limit"] {
        assert!(checked.iter().any(|c| c == expected), "{expected} not found among paged routes: {checked:?}");
    }
    assert!(failures.is_empty(), "paging values accepted:\n{}", failures.join("\n"));
}
both_backends!(paging_values_are_validated_everywhere);

// ---- Finding 17: login throttle keys ----

/// Finding 17: a 900 KB username is refused with 400 and stores nothing; the keys the
/// throttle stores are fixed-size hashes.
async fn login_throttle_stores_bounded_keys(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let arca = Arca::builder(dir.path(), backend).await.start().await;
    let db = TestDb::of(&arca).await;
    let throttles = db.number("SELECT COUNT(*) FROM login_throttle").await;
    let huge = "u".repeat(900 * 1024);
    let r = arca
        .call(Method::POST, "/api/auth/login", None, Some(json!({"username": huge, "password": "whatever-password"})))
        .await;
    assert_eq!(r.status(), 400, "{}", r.text().await.unwrap());
    arca.call(
        Method::POST,
        "/api/auth/login",
        None,
        Some(json!({"username": "x".repeat(200), "password": "wrong-password"})),
    )
    .await;
    arca.call(Method::POST, "/api/auth/login", None, Some(json!({"username": "admin", "password": "wrong-password"})))
        .await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            db.number("SELECT COUNT(*) FROM audit_log WHERE action = 'auth.login'").await >= 2
        })
        .await
    );
    let keys = db.strings("SELECT key FROM login_throttle").await;
    // two accounts from one address: two account-address keys, two accounts, one address
    assert_eq!(keys.len() as i64, throttles + 5, "the refused login stored something: {keys:?}");
    for key in &keys {
        let hash = ["account-address:", "user:", "ip:"].iter().find_map(|p| key.strip_prefix(p)).unwrap_or("");
        assert!(
            hash.len() == 32 && hash.chars().all(|c| c.is_ascii_hexdigit()),
            "throttle key {key:?} is not a fixed-size hash"
        );
    }
    for (table, column) in [("audit_log", "target"), ("audit_log", "details"), ("login_throttle", "key")] {
        let longest =
            db.number(&format!("SELECT CAST(COALESCE(MAX(LENGTH({column})), 0) AS BIGINT) FROM {table}")).await;
        assert!(longest < 1024, "{table}.{column} holds {longest} characters");
    }
}
both_backends!(login_throttle_stores_bounded_keys);

// ---- Finding 18: health ----

fn snapshot(dir: &std::path::Path, out: &mut Vec<(String, u64, std::time::SystemTime)>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let meta = entry.metadata().unwrap();
        let name = entry.path().display().to_string();
        if meta.is_dir() {
            snapshot(&entry.path(), out);
        } else if !entry.file_name().to_string_lossy().starts_with("arca.db") {
            out.push((name, meta.len(), meta.modified().unwrap()));
        }
    }
    out.sort();
}

/// Finding 18: 40 concurrent `GET /api/health` all answer 200, and none writes to the data
/// dir (SQLite's own files aside, which hold the audit log).
async fn concurrent_health_checks_agree_and_write_nothing(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let arca = Arca::builder(dir.path(), backend).await.start().await;
    assert_eq!(arca.get("/api/health").await.status(), 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut before = Vec::new();
    snapshot(&arca.data_dir, &mut before);
    let statuses: Vec<u16> = futures::future::join_all((0..40).map(|_| {
        let client = crate::helpers::client_for(&arca.data_dir, None);
        let url = arca.url("/api/health");
        async move { client.get(url).send().await.unwrap().status().as_u16() }
    }))
    .await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let mut after = Vec::new();
    snapshot(&arca.data_dir, &mut after);
    assert_eq!(before, after, "health checks wrote to the data dir");
}
both_backends!(concurrent_health_checks_agree_and_write_nothing);

// ---- Finding 21: the signing certificate's validity ----

/// A signing identity (key, certificate, chain) whose certificate is valid from
/// `from`..`until` seconds relative to now, issued by a CA of its own.
fn signing_identity(dir: &std::path::Path, from: i64, until: i64) -> [std::path::PathBuf; 3] {
    use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let at = |offset: i64| rcgen::date_time_ymd(1970, 1, 1) + Duration::from_secs((now + offset) as u64);
    let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name.push(DnType::CommonName, "test signing CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    (ca.not_before, ca.not_after) = (at(-86_400 * 10), at(86_400 * 30));
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut leaf = CertificateParams::new(Vec::<String>::new()).unwrap();
    leaf.distinguished_name.push(DnType::CommonName, "test signing");
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
    (leaf.not_before, leaf.not_after) = (at(from), at(until));
    let cert = leaf.signed_by(&key, &ca_cert, &ca_key).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let paths = [dir.join("key.pem"), dir.join("cert.pem"), dir.join("chain.pem")];
    std::fs::write(&paths[0], key.serialize_pem()).unwrap();
    std::fs::write(&paths[1], cert.pem()).unwrap();
    std::fs::write(&paths[2], cert.pem() + &ca_cert.pem()).unwrap();
    paths
}

async fn signed_by(dir: &std::path::Path, identity: &[std::path::PathBuf; 3]) -> Arca {
    Arca::builder(dir, Backend::Sqlite)
        .await
        .env("ARCA_SIGNING_KEY", identity[0].to_str().unwrap())
        .env("ARCA_SIGNING_CERT", identity[1].to_str().unwrap())
        .env("ARCA_SIGNING_CHAIN", identity[2].to_str().unwrap())
        .env("ARCA_EVENT_RETRY_BASE_MS", "200")
        .start()
        .await
}

/// Declares and uploads; returns the id once the artifact left `scanning`.
async fn upload_only(arca: &Arca, token: &str, name: &str, bytes: Vec<u8>) -> String {
    let (id, url) = create(arca, token, name, bytes.len() as u64, &sha256_hex(&bytes)).await;
    assert_eq!(put(arca, &url, bytes).await.status(), 200);
    assert_eq!(complete(arca, token, &id).await.status(), 200);
    let left = eventually(Duration::from_secs(30), || async {
        !["scanning", "verifying"].contains(&status_of(arca, token, &id).await["status"].as_str().unwrap_or(""))
    })
    .await;
    assert!(left, "{}", status_of(arca, token, &id).await);
    id
}

/// Finding 21: with an expired signing certificate, approval cannot sign: the artifact
/// stays `signing` (the error is logged), is not downloadable and has no signature. A
/// signature made while the certificate was valid keeps verifying after it expires, and
/// artifacts passing policy after that stay unsigned and unapproved.
#[tokio::test]
async fn an_expired_signing_certificate_approves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let expired = signing_identity(&dir.path().join("expired-pki"), -86_400 * 2, -3600);
    let arca = signed_by(&dir.path().join("expired"), &expired).await;
    let admin = arca.login("admin", ADMIN_PASSWORD).await;
    let id = upload_only(&arca, &admin, "unsigned", payload(4000, 1)).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let now = status_of(&arca, &admin, &id).await;
    assert_eq!(now["status"], "signing", "{now}");
    assert!(arca.stdout.text().contains("not valid now"), "no error about the certificate was logged");
    let r = arca.call(Method::GET, &format!("/api/artifacts/{id}/download"), Some(&admin), None).await;
    assert_eq!(r.status(), 409);
    let r = arca.call(Method::GET, &format!("/api/artifacts/{id}/signature"), Some(&admin), None).await;
    assert_eq!(r.status(), 404);
    let page: Value =
        arca.call(Method::GET, "/api/artifacts?status=approved", Some(&admin), None).await.json().await.unwrap();
    assert_eq!(page["total"], 0, "{page}");
    drop(arca);

    // A certificate that expires during the test.
    let short = signing_identity(&dir.path().join("short-pki"), -3600, 40);
    let deadline = Instant::now() + Duration::from_secs(40);
    let arca = signed_by(&dir.path().join("short"), &short).await;
    let admin = arca.login("admin", ADMIN_PASSWORD).await;
    let bytes = payload(4000, 2);
    let id = upload_only(&arca, &admin, "signed-in-time", bytes.clone()).await;
    assert_eq!(wait_final(&arca, &admin, &id).await["status"], "approved");
    assert!(Instant::now() < deadline, "too slow: the certificate expired before the first approval");
    tokio::time::sleep(deadline - Instant::now() + Duration::from_secs(2)).await;
    let r = arca.call(Method::GET, &format!("/api/artifacts/{id}/download"), Some(&admin), None).await;
    assert_eq!(r.status(), 200, "a signature made in time stopped verifying: {}", r.text().await.unwrap());
    assert_eq!(&r.bytes().await.unwrap()[..], &bytes[..]);
    let signature: Value = arca
        .call(Method::GET, &format!("/api/artifacts/{id}/signature"), Some(&admin), None)
        .await
        .json()
        .await
        .unwrap();
    assert!(signature["signed_at"].as_i64().unwrap() > 0, "{signature}");
    let late = upload_only(&arca, &admin, "too-late", payload(4000, 3)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(status_of(&arca, &admin, &late).await["status"], "signing");
}

// ---- Finding 22: uploads cut short ----

fn channel_body(rx: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>) -> reqwest::Body {
    reqwest::Body::wrap_stream(futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|i| (i, rx)) }))
}

/// Finding 22: a body cut short (the client stops and closes) or shorter than declared
/// returns the artifact to `pending_upload` with the reason; a new URL then works. Only
/// bytes that are not the declared ones fail the artifact.
async fn uploads_cut_short_can_be_retried(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let arca = Arca::builder(dir.path(), backend).await.start().await;
    let admin = arca.login("admin", ADMIN_PASSWORD).await;
    let bytes = payload(3 << 20, 22);
    let (id, url) = create(&arca, &admin, "cut-short", bytes.len() as u64, &sha256_hex(&bytes)).await;
    // Half the bytes, then the client gives up.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let request = arca.client.put(&url).header("content-length", bytes.len()).body(channel_body(rx)).send();
    let sender = async {
        for chunk in bytes[..bytes.len() / 2].chunks(256 * 1024) {
            tx.send(Ok(chunk.to_vec())).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        tx.send(Err(std::io::Error::other("client gave up"))).await.unwrap();
    };
    let (result, ()) = tokio::join!(request, sender);
    assert!(result.is_err() || !result.unwrap().status().is_success());
    // At once (well before the upload's 30 s lease would run out): the owner retries now.
    wait_status(&arca, &admin, &id, "pending_upload", Duration::from_secs(10)).await;
    let now = status_of(&arca, &admin, &id).await;
    assert!(now["status_reason"].as_str().unwrap_or_default().contains("interrupted"), "{now}");
    let quarantine = arca.data_dir.join("blobs/quarantine");
    assert!(
        eventually(Duration::from_secs(5), || async { std::fs::read_dir(&quarantine).unwrap().count() == 0 }).await,
        "the partial bytes were kept"
    );
    assert_eq!(put(&arca, &url, bytes.clone()).await.status(), 409, "the used URL must not work again");

    // A body that ends cleanly but short (no length announced).
    let reissued: Value =
        arca.call(Method::POST, &format!("/api/artifacts/{id}/upload"), Some(&admin), None).await.json().await.unwrap();
    let short = bytes[..1000].to_vec();
    let r = arca
        .client
        .put(reissued["url"].as_str().unwrap())
        .body(reqwest::Body::wrap_stream(futures::stream::iter([Ok::<_, std::io::Error>(short)])))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "{}", r.text().await.unwrap());
    wait_status(&arca, &admin, &id, "pending_upload", Duration::from_secs(10)).await;
    assert!(status_of(&arca, &admin, &id).await["status_reason"].as_str().is_some());

    // A new URL works; the artifact ends approved.
    let reissued: Value =
        arca.call(Method::POST, &format!("/api/artifacts/{id}/upload"), Some(&admin), None).await.json().await.unwrap();
    let r = put(&arca, reissued["url"].as_str().unwrap(), bytes.clone()).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(complete(&arca, &admin, &id).await.status(), 200);
    assert_eq!(wait_final(&arca, &admin, &id).await["status"], "approved");

    // Wrong bytes of the right length: failed, for good.
    let (wrong, url) = create(&arca, &admin, "wrong-bytes", bytes.len() as u64, &sha256_hex(&bytes)).await;
    let mut other = bytes.clone();
    other[12345] ^= 1;
    assert_eq!(put(&arca, &url, other).await.status(), 422);
    assert_eq!(status_of(&arca, &admin, &wrong).await["status"], "failed");
    let r = arca.call(Method::POST, &format!("/api/artifacts/{wrong}/upload"), Some(&admin), None).await;
    assert_eq!(r.status(), 409, "a failed artifact takes no new URL");
}
both_backends!(uploads_cut_short_can_be_retried);
