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

type Chunks = tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>;

fn paced_body(rx: Chunks) -> reqwest::Body {
    reqwest::Body::wrap_stream(futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|i| (i, rx)) }))
}

/// Sends `bytes` in 1 MiB chunks, one every `pace`.
async fn pace_chunks(tx: tokio::sync::mpsc::Sender<Result<Vec<u8>, std::io::Error>>, bytes: Vec<u8>, pace: Duration) {
    for chunk in bytes.chunks(1 << 20) {
        if tx.send(Ok(chunk.to_vec())).await.is_err() {
            return;
        }
        tokio::time::sleep(pace).await;
    }
}

/// Issue 16, point 9: SIGTERM while a long upload and a long download are in flight. New
/// connections are refused at once; what can finish within the shutdown timeout (5 s here)
/// finishes (an upload due 2 s later, a download read slowly); what cannot (an upload that
/// would take 20 s) fails cleanly and is resumable after a restart; the process exits 0
/// within the timeout.
#[tokio::test]
async fn sigterm_shuts_down_gracefully() {
    use crate::artifacts::{complete, create, payload, publish, put, sha256_hex, status_of, wait_final};
    use futures::StreamExt;
    use sha2::Digest;
    let dir = tempfile::tempdir().unwrap();
    let mut arca = Arca::builder(dir.path(), Backend::Sqlite).await.env("ARCA_EVENT_LEASE_SECS", "2").start().await;
    let admin = arca.login("admin", crate::helpers::ADMIN_PASSWORD).await;
    const MIB: usize = 1 << 20;
    let served = payload(24 * MIB, 31);
    let served_id = publish(&arca, &admin, "served", served.clone()).await;
    let (quick, slow) = (payload(12 * MIB, 32), payload(20 * MIB, 33));
    let (quick_id, quick_url) = create(&arca, &admin, "quick", quick.len() as u64, &sha256_hex(&quick)).await;
    let (slow_id, slow_url) = create(&arca, &admin, "slow", slow.len() as u64, &sha256_hex(&slow)).await;
    let upload = |url: String, bytes: Vec<u8>, pace: Duration| {
        let client = arca.client.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        let size = bytes.len();
        tokio::spawn(pace_chunks(tx, bytes, pace));
        tokio::spawn(async move {
            let r = client.put(&url).header("content-length", size).body(paced_body(rx)).send().await?;
            let status = r.status().as_u16();
            r.bytes().await.map(|_| status)
        })
    };
    // 12 MiB at one MiB per 250 ms: about 3 s. 20 MiB at one MiB per second: 20 s.
    let quick_upload = upload(quick_url, quick.clone(), Duration::from_millis(250));
    let slow_upload = upload(slow_url.clone(), slow.clone(), Duration::from_secs(1));
    // A download read at about 10 MiB/s (100 ms per MiB).
    let response = arca
        .client
        .get(arca.url(&format!("/api/artifacts/{served_id}/download")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let download = tokio::spawn(async move {
        let mut received = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let before = received.len() >> 20;
            match chunk {
                Ok(chunk) => received.extend_from_slice(&chunk),
                Err(_) => return (received, false),
            }
            if received.len() >> 20 > before {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        (received, true)
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    let addr = arca.addr();
    crate::helpers::signal(arca.pid(), "TERM");
    let terminated = std::time::Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refused = std::net::TcpStream::connect(&addr);
    assert!(refused.is_err(), "a new connection was accepted after SIGTERM");

    let quick_result = quick_upload.await.unwrap();
    let slow_result = slow_upload.await.unwrap();
    let (received, whole) = download.await.unwrap();
    let code = arca.terminate();
    let stopped = terminated.elapsed();
    assert_eq!(code, Some(0), "exit code after SIGTERM");
    assert!(stopped < Duration::from_secs(8), "stopped {stopped:?} after SIGTERM (shutdown timeout 5 s)");
    assert_eq!(quick_result.ok(), Some(200), "an upload due within the shutdown timeout did not finish");
    assert!(whole, "a download due within the shutdown timeout was cut after {} bytes", received.len());
    assert_eq!(received, served, "the download is not the artifact");
    assert!(slow_result.map_or(true, |status| status != 200), "an upload due after the shutdown timeout finished");

    // After a restart: the finished upload completes; the cut one waits for its bytes again
    // (once its lease expired) and takes them through a new URL.
    let arca = arca.start_again().await;
    let admin = arca.login("admin", crate::helpers::ADMIN_PASSWORD).await;
    assert_eq!(complete(&arca, &admin, &quick_id).await.status(), 200);
    assert_eq!(wait_final(&arca, &admin, &quick_id).await["status"], "approved");
    let reset = eventually(Duration::from_secs(20), || async {
        status_of(&arca, &admin, &slow_id).await["status"] == "pending_upload"
    })
    .await;
    assert!(reset, "{}", status_of(&arca, &admin, &slow_id).await);
    let reissued: serde_json::Value = arca
        .call(reqwest::Method::POST, &format!("/api/artifacts/{slow_id}/upload"), Some(&admin), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(put(&arca, reissued["url"].as_str().unwrap(), slow.clone()).await.status(), 200);
    assert_eq!(complete(&arca, &admin, &slow_id).await.status(), 200);
    assert_eq!(wait_final(&arca, &admin, &slow_id).await["status"], "approved");
    let got = arca
        .call(reqwest::Method::GET, &format!("/api/artifacts/{slow_id}/download"), Some(&admin), None)
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(hex::encode(sha2::Sha256::digest(&got)), sha256_hex(&slow));
    drop(slow_url);
}

/// Issue 16, point 16: `--tls-cert`/`--tls-key` with a chain issued by a CA through an
/// intermediate: the whole chain is served (a client trusting only the root connects), and
/// TLS below 1.2 is still refused.
#[tokio::test]
async fn a_given_certificate_chain_is_served_whole() {
    use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};
    let dir = tempfile::tempdir().unwrap();
    let key = |_: ()| KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let ca_params = |name: &str| {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, name);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        p
    };
    let (root_key, inter_key, leaf_key) = (key(()), key(()), key(()));
    let root = ca_params("test root CA").self_signed(&root_key).unwrap();
    let inter = ca_params("test intermediate CA").signed_by(&inter_key, &root, &root_key).unwrap();
    let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    leaf.distinguished_name.push(DnType::CommonName, "arca test server");
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf = leaf.signed_by(&leaf_key, &inter, &inter_key).unwrap();
    let pki = dir.path().join("pki");
    std::fs::create_dir_all(&pki).unwrap();
    std::fs::write(pki.join("chain.pem"), leaf.pem() + &inter.pem()).unwrap();
    std::fs::write(pki.join("key.pem"), leaf_key.serialize_pem()).unwrap();
    std::fs::write(pki.join("root.pem"), root.pem()).unwrap();
    let arca = Arca::builder(dir.path(), Backend::Sqlite)
        .await
        .env("ARCA_TLS_CERT", pki.join("chain.pem").to_str().unwrap())
        .env("ARCA_TLS_KEY", pki.join("key.pem").to_str().unwrap())
        .start()
        .await;
    assert!(!arca.data_dir.join("tls/cert.pem").exists(), "a self-signed certificate was made anyway");
    for version in [Version::TLS_1_2, Version::TLS_1_3] {
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(root.pem().as_bytes()).unwrap())
            .min_tls_version(version)
            .max_tls_version(version)
            .build()
            .unwrap();
        let r = client.get(arca.url("/api/health")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{version:?}");
    }
    let addr = arca.addr();
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &addr, "-showcerts", "-CAfile", pki.join("root.pem").to_str().unwrap()])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches("-----BEGIN CERTIFICATE-----").count(), 2, "the chain served: {text}");
    assert!(text.contains("Verify return code: 0 (ok)"), "{text}");
    for flag in ["-tls1", "-tls1_1"] {
        let out = Command::new("openssl")
            .args(["s_client", "-connect", &addr, flag, "-cipher", "DEFAULT:@SECLEVEL=0", "-brief"])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{flag} handshake succeeded");
        assert!(!String::from_utf8_lossy(&out.stdout).contains("Protocol version: TLSv1"), "{flag} negotiated");
    }
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
