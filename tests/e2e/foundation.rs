//! Issue 2: `arca serve` on embedded defaults, both backends, TLS, errors, restarts.

use std::process::Command;
use std::time::Duration;

use reqwest::tls::Version;
use serde_json::Value;

use crate::both_backends;
use crate::helpers::{client_for, eventually, Arca, ArcaBuilder, Backend, PgCluster, ADMIN_PASSWORD};

fn is_problem(response: &reqwest::Response) -> bool {
    response.headers().get("content-type").and_then(|v| v.to_str().ok()) == Some("application/problem+json")
}

/// Starts with its data, answers health over TLS 1.2 and 1.3, refuses TLS 1.0/1.1.
async fn serves_health_over_tls(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let arca = Arca::builder(dir.path(), backend).await.start().await;
    assert!(arca.url.starts_with("https://"));
    for version in [Version::TLS_1_2, Version::TLS_1_3] {
        let client = client_for(&arca.data_dir, Some(version));
        let response = client.get(arca.url("/api/health")).send().await.unwrap();
        assert_eq!(response.status(), 200, "{version:?}");
        assert!(response.headers().contains_key("x-request-id"));
        assert!(response.headers().contains_key("strict-transport-security"));
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], "ok");
        assert_eq!(body["checks"]["database"], "ok");
        assert_eq!(body["checks"]["storage"], "ok");
    }
    let addr = arca.url.trim_start_matches("https://").to_owned();
    let handshake = |flag: &str| {
        Command::new("openssl")
            .args(["s_client", "-connect", &addr, flag, "-cipher", "DEFAULT:@SECLEVEL=0", "-brief"])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let control = handshake("-tls1_2");
    assert!(control.status.success(), "openssl cannot do TLS 1.2: {}", String::from_utf8_lossy(&control.stderr));
    for flag in ["-tls1", "-tls1_1"] {
        let output = handshake(flag);
        let text = String::from_utf8_lossy(&output.stderr).to_lowercase();
        assert!(!output.status.success(), "{flag} handshake succeeded");
        // rustls answers an offer of TLS 1.0/1.1 only with a fatal alert.
        assert!(
            text.contains("alert protocol version") || text.contains("alert handshake failure"),
            "{flag} should be refused by the server: {text}"
        );
        assert!(!String::from_utf8_lossy(&output.stdout).contains("Protocol version: TLSv1"), "{flag} negotiated");
    }
}
both_backends!(serves_health_over_tls);

/// Data, certificate and admin password survive a restart; no secret is printed again.
async fn restart_keeps_state(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    // No ARCA_ADMIN_PASSWORD: the password is generated and printed once.
    let mut builder = Arca::builder(dir.path(), backend).await;
    builder = builder.env("ARCA_ADMIN_PASSWORD", "");
    let arca = builder.start().await;
    let first = arca.stderr.text();
    let password = first
        .lines()
        .find_map(|l| l.strip_prefix("arca: created user 'admin' with password: "))
        .expect("generated admin password is printed on first start")
        .to_owned();
    let fingerprint = |text: &str| {
        text.lines().find_map(|l| l.strip_prefix("arca: TLS certificate SHA-256 fingerprint ")).map(str::to_owned)
    };
    let first_fp = fingerprint(&first).expect("fingerprint printed");
    arca.login("admin", &password).await;
    assert!(!arca.stdout.text().contains(&password), "the password must not reach the logs");

    let arca = arca.restart().await;
    let second = arca.stderr.text();
    assert!(!second.contains("password:"), "the password must not be printed again: {second}");
    assert!(!second.contains(&password));
    assert_eq!(fingerprint(&second).as_deref(), Some(first_fp.as_str()), "certificate kept");
    arca.login("admin", &password).await;
    let cert = std::fs::read(arca.data_dir.join("tls/cert.pem")).unwrap();
    assert!(!cert.is_empty());
}
both_backends!(restart_keeps_state);

/// Errors are problem+json with the right status and a stable code.
async fn errors_are_problems(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let arca = Arca::builder(dir.path(), backend).await.start().await;
    let cases = [
        (arca.client.get(arca.url("/api/no-such-route")), 404, "not_found"),
        (arca.client.delete(arca.url("/api/health")), 405, "method_not_allowed"),
        (
            arca.client
                .post(arca.url("/api/auth/login"))
                .header("content-type", "application/json")
                .body(format!("{{\"username\":\"{}\"}}", "x".repeat(2 * 1024 * 1024))),
            413,
            "payload_too_large",
        ),
        (
            arca.client
                .post(arca.url("/api/auth/login"))
                .header("content-type", "application/json")
                .body("{\"username\": "),
            400,
            "malformed_json",
        ),
        (arca.client.post(arca.url("/api/auth/login")).body("{}"), 415, "unsupported_media_type"),
        (arca.client.get(arca.url("/api/auth/me")), 401, "invalid_token"),
    ];
    for (request, status, code) in cases {
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{code}");
        assert!(is_problem(&response), "{code}: not problem+json");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], status);
        assert_eq!(body["code"], code);
        let text = body.to_string().to_lowercase();
        for leak in ["sqlx", "select ", "/tmp", "panicked", "src/"] {
            assert!(!text.contains(leak), "{code} leaks '{leak}': {text}");
        }
    }
}
both_backends!(errors_are_problems);

/// Each request has an id, in the response header and on the log line about it.
#[tokio::test]
async fn request_id_in_header_and_logs() {
    let dir = tempfile::tempdir().unwrap();
    let arca = Arca::builder(dir.path(), Backend::Sqlite).await.start().await;
    let response = arca.get("/api/health").await;
    let id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(
        eventually(Duration::from_secs(5), || async {
            arca.stdout.lines().iter().any(|line| {
                let json: Value = serde_json::from_str(line).unwrap_or_default();
                json["span"]["request_id"] == id.as_str() && json["fields"]["status"] == 200
            })
        })
        .await,
        "no JSON log line carries request id {id}:\n{}",
        arca.stdout.text()
    );
}

/// The metrics endpoint needs the scrape token and reports requests by route template.
#[tokio::test]
async fn metrics_need_the_scrape_token() {
    let dir = tempfile::tempdir().unwrap();
    let token = "scrape-token-0123456789";
    let arca = Arca::builder(dir.path(), Backend::Sqlite).await.env("ARCA_METRICS_TOKEN", token).start().await;
    arca.get("/api/health").await;
    arca.get("/api/nothing-here").await;
    assert_eq!(arca.get("/api/metrics").await.status(), 401);
    let wrong = arca.client.get(arca.url("/api/metrics")).bearer_auth("nope-nope-nope-nope").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    let response = arca.client.get(arca.url("/api/metrics")).bearer_auth(token).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(text.contains(r#"arca_http_requests_total{method="GET",route="/api/health",status="200"} 1"#), "{text}");
    assert!(text.contains(r#"route="unmatched",status="404""#), "{text}");
    assert!(text.contains("arca_http_request_duration_seconds_bucket"), "{text}");
}

/// The OpenAPI document served lists the routes.
#[tokio::test]
async fn openapi_document_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let arca = Arca::builder(dir.path(), Backend::Sqlite).await.start().await;
    let doc: Value = arca.get("/api/openapi.json").await.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in ["/api/health", "/api/metrics", "/api/auth/login", "/api/openapi.json"] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
}

/// With PostgreSQL down, health is 503 naming the database; it recovers without a restart.
#[tokio::test]
async fn health_follows_postgres_outage() {
    let dir = tempfile::tempdir().unwrap();
    let pg = PgCluster::start();
    let arca = Arca::builder(dir.path(), Backend::Sqlite).await.env("DATABASE_URL", &pg.url()).start().await;
    assert_eq!(arca.get("/api/health").await.status(), 200);
    pg.stop();
    let response = arca.get("/api/health").await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["checks"]["database"], "unavailable");
    assert_eq!(body["checks"]["storage"], "ok");
    pg.restart();
    assert!(
        eventually(Duration::from_secs(30), || async { arca.get("/api/health").await.status() == 200 }).await,
        "health did not recover after PostgreSQL came back"
    );
}

/// SIGTERM stops the server cleanly (exit 0).
#[tokio::test]
async fn sigterm_shuts_down_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let mut arca = Arca::builder(dir.path(), Backend::Sqlite).await.start().await;
    assert_eq!(arca.get("/api/health").await.status(), 200);
    assert_eq!(arca.terminate(), Some(0));
}

fn assert_one_line_error(builder: ArcaBuilder, names: &str) {
    let (code, stderr) = builder.run_to_failure();
    assert_ne!(code, 0);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line, got:\n{stderr}");
    assert!(lines[0].starts_with("arca: error: "), "{stderr}");
    assert!(lines[0].contains(names), "error should name '{names}': {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Each bad configuration ends with one line naming the problem and a non-zero exit.
#[tokio::test]
async fn bad_configuration_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let builder = || async { Arca::builder(dir.path(), Backend::Sqlite).await };

    assert_one_line_error(builder().await.env("DATABASE_URL", "mysql://root:secret@db/arca"), "DATABASE_URL");
    let (_, stderr) = builder().await.env("DATABASE_URL", "mysql://root:secret@db/arca").run_to_failure();
    assert!(!stderr.contains("secret"), "credentials echoed: {stderr}");

    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    assert_one_line_error(builder().await.data_dir(file.join("data")), "data dir");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    assert_one_line_error(builder().await.listen(&addr), "cannot listen");

    assert_one_line_error(builder().await.listen("not-an-address"), "--listen");
    assert_one_line_error(builder().await.env("ARCA_SHUTDOWN_TIMEOUT", "soon"), "--shutdown-timeout");
    assert_one_line_error(builder().await.env("ARCA_ADMIN_PASSWORD", "short"), "ARCA_ADMIN_PASSWORD");
    assert_one_line_error(builder().await.env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none"), "database");
}

/// A function binary serves its own routes plus probes, in plain HTTP on $PORT, after the
/// `migrate` command prepared the database; it refuses to start without a secret it needs.
#[tokio::test]
async fn function_binary_serves_probes() {
    let dir = tempfile::tempdir().unwrap();
    let database = crate::helpers::fresh_pg_database().await;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let (private, public) = (dir.path().join("jwt.pem"), dir.path().join("jwt.pub.pem"));
    std::fs::write(&private, key.serialize_pem()).unwrap();
    std::fs::write(&public, key.public_key_pem()).unwrap();
    let function = |name: &str| {
        let mut command = Command::new(crate::helpers::bin(&format!("arca-fn-{name}")));
        command.env_clear().env("DATABASE_URL", &database).env("ARCA_DATA_DIR", dir.path());
        command
    };
    let out = function("auth").arg("migrate").env("ARCA_ADMIN_PASSWORD", ADMIN_PASSWORD).output().unwrap();
    assert!(out.status.success(), "migrate: {}", String::from_utf8_lossy(&out.stderr));
    // Without the key it needs, one line naming it.
    let out = function("auth").env("PORT", crate::helpers::free_port().to_string()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.lines().count() == 1, "{stderr}");
    assert!(stderr.contains("ARCA_JWT_KEY: required by the auth function"), "{stderr}");
    let out = function("users").env("PORT", crate::helpers::free_port().to_string()).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("ARCA_JWT_PUBLIC_KEY: required by the users function"));

    let (auth_port, users_port) = (crate::helpers::free_port(), crate::helpers::free_port());
    let mut auth = function("auth")
        .env("PORT", auth_port.to_string())
        .env("ARCA_JWT_KEY", &private)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut users = function("users")
        .env("PORT", users_port.to_string())
        .env("ARCA_JWT_PUBLIC_KEY", &public)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{auth_port}");
    let up = eventually(Duration::from_secs(30), || async {
        client.get(format!("{base}/health/readiness")).send().await.is_ok_and(|r| r.status() == 200)
    })
    .await;
    let live = client.get(format!("{base}/health/liveness")).send().await.map(|r| r.status().as_u16());
    let login = client
        .post(format!("{base}/api/auth/login"))
        .json(&serde_json::json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    let status = login.status().as_u16();
    let token =
        login.json::<serde_json::Value>().await.unwrap()["access_token"].as_str().unwrap_or_default().to_owned();
    // Another function verifies the token with the public key alone.
    let users_base = format!("http://127.0.0.1:{users_port}");
    assert!(
        eventually(Duration::from_secs(30), || async {
            client.get(format!("{users_base}/health/readiness")).send().await.is_ok_and(|r| r.status() == 200)
        })
        .await
    );
    let listed = client.get(format!("{users_base}/api/users")).bearer_auth(&token).send().await.unwrap().status();
    let _ = auth.kill();
    let _ = auth.wait();
    let _ = users.kill();
    let _ = users.wait();
    assert!(up, "function did not become ready");
    assert_eq!(live.unwrap(), 200);
    assert_eq!(status, 200);
    assert_eq!(listed, 200);
}
