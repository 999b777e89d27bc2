//! Issue 4 (local encrypted store; `s3.rs` covers the S3 store): uploads through signed URLs, verified digests,
//! encryption at rest, streaming downloads with Range, crash safety, memory, push/pull.

use std::time::Duration;

use arca_client::{endpoints, NewArtifact, PushOptions, Source, Status};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use futures::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::both_backends;
use crate::helpers::{eventually, Arca, Backend, Cli, ADMIN_PASSWORD, USER_PASSWORD};

const MIB: usize = 1024 * 1024;

/// Deterministic pseudo-random bytes (xorshift), different per seed.
pub fn payload(size: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(size + 8);
    while out.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(size);
    out
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Creates an artifact; returns (id, upload url).
pub async fn create(arca: &Arca, token: &str, name: &str, size: u64, sha256: &str) -> (String, String) {
    let declared = NewArtifact {
        name: name.to_owned(),
        version: "1.0.0".to_owned(),
        filename: format!("{name}.bin"),
        size,
        sha256: sha256.to_owned(),
        labels: [("team".to_owned(), "qa".to_owned())].into(),
        description: String::new(),
    };
    let created =
        arca.api(Some(token)).create_artifact(&declared).await.unwrap_or_else(|e| panic!("create {name}: {e}"));
    assert_eq!(created.artifact.status, Status::PendingUpload);
    assert_eq!(created.upload.method, "PUT");
    (created.artifact.id, created.upload.url)
}

pub async fn put(arca: &Arca, url: &str, bytes: Vec<u8>) -> reqwest::Response {
    let len = bytes.len() as u64;
    arca.api(None).put_to(url, &Default::default(), len, bytes.into()).await.unwrap()
}

pub async fn complete(arca: &Arca, token: &str, id: &str) -> reqwest::Response {
    arca.api(Some(token)).request(&endpoints::COMPLETE_UPLOAD, &[id]).send().await.unwrap()
}

pub async fn status_of(arca: &Arca, token: &str, id: &str) -> Value {
    serde_json::to_value(arca.api(Some(token)).artifact(id).await.unwrap()).unwrap()
}

pub async fn wait_final(arca: &Arca, token: &str, id: &str) -> Value {
    match arca.api(Some(token)).wait_final(id, Duration::from_secs(60), None).await {
        Ok(done) => serde_json::to_value(done).unwrap(),
        Err(e) => panic!("artifact {id} did not reach a final status: {e}"),
    }
}

/// Create, upload, complete, wait (the client's push flow): the artifact's id.
pub async fn publish(arca: &Arca, token: &str, name: &str, bytes: Vec<u8>) -> String {
    let options = PushOptions {
        filename: Some(format!("{name}.bin")),
        labels: [("team".to_owned(), "qa".to_owned())].into(),
        resume: false,
        wait: Some(Duration::from_secs(60)),
        ..PushOptions::default()
    };
    let done = arca.api(Some(token)).push(name, "1.0.0", &Source::bytes(bytes), &options).await.unwrap();
    assert_eq!(done.status, Status::Approved, "{done:?}");
    done.id
}

async fn download(arca: &Arca, token: &str, id: &str, range: Option<&str>) -> reqwest::Response {
    let mut request = arca.client.get(arca.url(&format!("/api/artifacts/{id}/download"))).bearer_auth(token);
    if let Some(range) = range {
        request = request.header("range", range);
    }
    request.send().await.unwrap()
}

/// A download link works once, for the user who asked for it while that user may still
/// download (its lifetime: `links_expire_after_their_lifetime` in features::download; its
/// artifact and user are sealed: `links_are_sealed`).
#[tokio::test]
async fn download_links_are_single_use_and_bound_to_their_user() {
    let dir = tempfile::tempdir().unwrap();
    let arca = Arca::builder(dir.path(), Backend::Sqlite).await.start().await;
    let admin = arca.login("admin", ADMIN_PASSWORD).await;
    let bytes = b"linked bytes".to_vec();
    let id = publish(&arca, &admin, "linked", bytes.clone()).await;
    let user_id = arca.create_user(&admin, "link-user", &["consumer"]).await;
    let user = arca.login("link-user", USER_PASSWORD).await;
    let (arca_ref, id_ref, user_ref) = (&arca, &id, &user);
    let link = || async move {
        let path = format!("/api/artifacts/{id_ref}/download-link");
        let r = arca_ref.call(Method::POST, &path, Some(user_ref), None).await;
        assert_eq!(r.status(), 200);
        r.json::<Value>().await.unwrap()["url"].as_str().unwrap().to_owned()
    };
    let redeem = |url: String| async move {
        let r = arca_ref.client.get(arca_ref.url(&url)).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.bytes().await.unwrap().to_vec())
    };
    let url = link().await;
    assert_eq!(redeem(url.clone()).await, (200, bytes));
    let (status, body) = redeem(url).await;
    assert_eq!(status, 403, "a link used twice: {}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("invalid_download_link"));

    // A link outlives neither its user's account nor its user's permission.
    let url = link().await;
    let r =
        arca.call(Method::PUT, &format!("/api/users/{user_id}"), Some(&admin), Some(json!({"disabled": true}))).await;
    assert_eq!(r.status(), 200);
    let (status, _) = redeem(url).await;
    assert_eq!(status, 403, "the link of a disabled user");
}

/// Byte-identical round trips at the sizes that matter, with digest headers and Range.
async fn round_trip(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let arca = Arca::builder(dir.path(), backend).await.start().await;
    let admin = arca.login("admin", ADMIN_PASSWORD).await;
    let sizes: &[usize] =
        if backend == Backend::Sqlite { &[1, 5 * MIB + 1, 64 * MIB + 1, 200 * MIB] } else { &[1, 5 * MIB + 1] };
    for (i, &size) in sizes.iter().enumerate() {
        let bytes = payload(size, i as u64 + 1);
        let digest = sha256_hex(&bytes);
        let id = publish(&arca, &admin, &format!("rt-{size}"), bytes.clone()).await;
        let response = download(&arca, &admin, &id, None).await;
        assert_eq!(response.status(), 200);
        let h = response.headers().clone();
        assert_eq!(h["x-arca-sha256"], digest.as_str());
        let b64 = base64::engine::general_purpose::STANDARD.encode(hex::decode(&digest).unwrap());
        assert_eq!(h["repr-digest"].to_str().unwrap(), format!("sha-256=:{b64}:"));
        assert!(h["content-disposition"].to_str().unwrap().starts_with("attachment; filename=\"rt-"));
        let mut hasher = Sha256::new();
        let mut stream = response.bytes_stream();
        let mut received = 0;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.unwrap();
            received += chunk.len();
            hasher.update(&chunk);
        }
        assert_eq!(received, size);
        assert_eq!(hex::encode(hasher.finalize()), digest, "size {size}");
        if size > 70_000 {
            for (range, from, to) in
                [("bytes=65530-65545", 65530, 65546), ("bytes=100-", 100, size), ("bytes=-7", size - 7, size)]
            {
                let r = download(&arca, &admin, &id, Some(range)).await;
                assert_eq!(r.status(), 206, "{range}");
                assert_eq!(r.headers()["content-range"].to_str().unwrap(), format!("bytes {from}-{}/{size}", to - 1));
                assert_eq!(&r.bytes().await.unwrap()[..], &bytes[from..to], "{range}");
            }
            assert_eq!(download(&arca, &admin, &id, Some(&format!("bytes={size}-"))).await.status(), 416);
        }
    }
    // Search, filters and pagination.
    let page: Value = arca
        .call(Method::GET, "/api/artifacts?q=rt-&label=team=qa&per_page=1", Some(&admin), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["total"], sizes.len());
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let none: Value =
        arca.call(Method::GET, "/api/artifacts?label=team=ops", Some(&admin), None).await.json().await.unwrap();
    assert_eq!(none["total"], 0);
}
both_backends!(round_trip);

/// Every bad upload is refused with a clear problem and nothing becomes downloadable.
async fn bad_uploads_are_refused(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let arca = Arca::builder(dir.path(), backend).await.env("ARCA_UPLOAD_URL_TTL", "2").start().await;
    let admin = arca.login("admin", ADMIN_PASSWORD).await;
    arca.create_user(&admin, "consumer", &["consumer"]).await;
    let consumer = arca.login("consumer", USER_PASSWORD).await;
    let bytes = payload(100_000, 7);
    let digest = sha256_hex(&bytes);
    let problem = |r: reqwest::Response| async move {
        let status = r.status().as_u16();
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        (status, r.json::<Value>().await.unwrap()["code"].as_str().unwrap().to_owned())
    };

    // Validation and immutability.
    for (body, code) in [
        (json!({"name": "../x", "version": "1", "filename": "x", "size": 1, "sha256": digest}), "invalid_field"),
        (json!({"name": "x", "version": "1", "filename": "a/b", "size": 1, "sha256": digest}), "invalid_field"),
        (json!({"name": "x", "version": "1", "filename": "x", "size": 0, "sha256": digest}), "invalid_field"),
        (json!({"name": "x", "version": "1", "filename": "x", "size": 1, "sha256": "abc"}), "invalid_field"),
    ] {
        assert_eq!(
            problem(arca.call(Method::POST, "/api/artifacts", Some(&admin), Some(body)).await).await,
            (400, code.to_owned())
        );
    }
    let (dup, _) = create(&arca, &admin, "dup", 1, &digest).await;
    let again = arca
        .call(
            Method::POST,
            "/api/artifacts",
            Some(&admin),
            Some(json!({"name": "dup", "version": "1.0.0", "filename": "x", "size": 1, "sha256": digest})),
        )
        .await;
    assert_eq!(problem(again).await, (409, "artifact_exists".to_owned()));
    let _ = dup;

    // Every upload URL a PUT was sent to (they must stay out of the audit log).
    let mut sent: Vec<String> = Vec::new();

    // Wrong sha256: the bytes differ from the declared digest.
    let (wrong, url) = create(&arca, &admin, "wrong-sha", bytes.len() as u64, &sha256_hex(b"other")).await;
    sent.push(url.clone());
    assert_eq!(problem(put(&arca, &url, bytes.clone()).await).await, (422, "digest_mismatch".to_owned()));
    let s = status_of(&arca, &admin, &wrong).await;
    assert_eq!(s["status"], "failed");
    assert!(s["status_reason"].as_str().unwrap().contains("sha256 mismatch"));
    assert_eq!(problem(complete(&arca, &admin, &wrong).await).await.0, 409);

    // Wrong size: declared 100000, sent fewer bytes.
    let (short, url) = create(&arca, &admin, "wrong-size", bytes.len() as u64, &digest).await;
    sent.push(url.clone());
    assert_eq!(problem(put(&arca, &url, bytes[..5000].to_vec()).await).await, (400, "size_mismatch".to_owned()));
    assert_eq!(status_of(&arca, &admin, &short).await["status"], "pending_upload", "untouched");

    // Reused URL.
    let (used, url) = create(&arca, &admin, "reused", bytes.len() as u64, &digest).await;
    sent.push(url.clone());
    assert_eq!(put(&arca, &url, bytes.clone()).await.status(), 200);
    assert_eq!(problem(put(&arca, &url, bytes.clone()).await).await, (409, "upload_url_used".to_owned()));

    // A URL for another artifact: the token's artifact id rewritten.
    let (other, other_url) = create(&arca, &admin, "other", bytes.len() as u64, &digest).await;
    let (_, mine_url) = create(&arca, &admin, "mine", bytes.len() as u64, &digest).await;
    let token = mine_url.rsplit('/').next().unwrap();
    let (payload_b64, sig) = token.split_once('.').unwrap();
    let mut claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload_b64).unwrap()).unwrap();
    let other_token = other_url.rsplit('/').next().unwrap();
    let other_claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(other_token.split_once('.').unwrap().0).unwrap()).unwrap();
    claims["a"] = json!(other);
    claims["n"] = other_claims["n"].clone();
    let forged = format!("{}.{sig}", URL_SAFE_NO_PAD.encode(claims.to_string()));
    let forged_url = mine_url.replace(token, &forged);
    sent.push(forged_url.clone());
    assert_eq!(problem(put(&arca, &forged_url, bytes.clone()).await).await, (403, "invalid_upload_url".to_owned()));
    assert_eq!(status_of(&arca, &admin, &other).await["status"], "pending_upload", "untouched");

    // Expired URL.
    let (late, url) = create(&arca, &admin, "late", bytes.len() as u64, &digest).await;
    sent.push(url.clone());
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(problem(put(&arca, &url, bytes.clone()).await).await, (403, "upload_url_expired".to_owned()));
    assert_eq!(status_of(&arca, &admin, &late).await["status"], "pending_upload");

    // Nothing of the above is downloadable; the refusal says why; consumers do not see them.
    for id in [&wrong, &short, &used, &other, &late] {
        let r = download(&arca, &admin, id, None).await;
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, 409, "{body}");
        assert_eq!(body["code"], "not_approved");
        assert!(body["detail"].as_str().unwrap().starts_with("artifact is "), "{body}");
        assert_eq!(download(&arca, &consumer, id, None).await.status(), 404);
    }
    // The completed one is downloadable once approved; the consumer sees approved only.
    assert_eq!(complete(&arca, &admin, &used).await.status(), 200);
    assert_eq!(wait_final(&arca, &admin, &used).await["status"], "approved");
    assert_eq!(download(&arca, &consumer, &used, None).await.status(), 200);
    let listed: Value = arca.call(Method::GET, "/api/artifacts", Some(&consumer), None).await.json().await.unwrap();
    assert_eq!(listed["total"], 1, "{listed}");
    // Upload URLs are credentials: the audit log records the route, never a token that was
    // sent (used, reused, late, with the wrong digest, cut short, or forged).
    let export =
        arca.call(Method::GET, "/api/audit-logs?format=ndjson", Some(&admin), None).await.text().await.unwrap();
    let audited = export.lines().filter(|l| l.contains("/api/uploads/{token}")).count();
    assert_eq!(audited, sent.len() + 1, "every upload is audited");
    for url in &sent {
        let token = url.rsplit('/').next().unwrap();
        let (payload, signature) = token.split_once('.').unwrap();
        for part in [token, payload, signature] {
            assert!(!export.contains(part), "an upload token reached the audit log: {url}");
        }
    }
}
both_backends!(bad_uploads_are_refused);

/// Blobs at rest hold no plaintext; a flipped byte makes the download fail.
#[tokio::test]
async fn encrypted_at_rest_and_tamper_evident() {
    let dir = tempfile::tempdir().unwrap();
    let arca = Arca::builder(dir.path(), Backend::Sqlite).await.start().await;
    let admin = arca.login("admin", ADMIN_PASSWORD).await;
    let bytes = payload(5 * MIB, 42);
    let id = publish(&arca, &admin, "secret", bytes.clone()).await;
    let blob_path = arca.data_dir.join("blobs/permanent").join(&id);
    let blob = std::fs::read(&blob_path).unwrap();
    // No 8-byte run of the plaintext appears in the blob (stronger than 32).
    let windows: std::collections::HashSet<&[u8]> = blob.windows(8).collect();
    let leaks = bytes.windows(8).step_by(1).filter(|w| windows.contains(w)).count();
    assert_eq!(leaks, 0, "plaintext found in the stored blob");
    assert!(std::fs::read(arca.data_dir.join("master.key")).unwrap().len() == 32);

    // Flip a byte in the middle: the download stops at that segment, never sending it. What
    // came before it is exactly the plaintext's beginning.
    let mut tampered = blob.clone();
    let flipped = blob.len() / 2;
    tampered[flipped] ^= 0x01;
    std::fs::write(&blob_path, &tampered).unwrap();
    let (header, segment, tag) = (12, 64 * 1024, 16);
    let bad_segment = (flipped - header) / (segment + tag);
    // Over HTTP/1.1 the headers and the good segments go out before the failure. Over HTTP/2
    // the stream reset can also discard what the server had queued but not yet written,
    // headers included, so the request itself may fail. Either way the download fails and
    // not a byte of the bad segment is sent.
    let http1 = arca.client_http1();
    for (client, protocol) in [(&http1, "HTTP/1.1"), (&arca.client, "HTTP/2")] {
        let url = arca.url(&format!("/api/artifacts/{id}/download"));
        let mut received = Vec::new();
        let mut failed = true;
        if let Ok(response) = client.get(&url).bearer_auth(&admin).send().await {
            assert_eq!(response.status(), 200, "{protocol}");
            let mut stream = response.bytes_stream();
            failed = false;
            while let Some(chunk) = stream.next().await {
                match chunk {
                    Ok(chunk) => received.extend_from_slice(&chunk),
                    Err(_) => {
                        failed = true;
                        break;
                    }
                }
            }
        }
        assert!(failed, "{protocol}: the download of a corrupt blob ended without an error ({} bytes)", received.len());
        assert!(
            received.len() <= bad_segment * segment,
            "{protocol}: {} bytes sent: the bad segment {bad_segment} starts at {}",
            received.len(),
            bad_segment * segment
        );
        assert!(received == bytes[..received.len()], "{protocol}: what was sent is not the plaintext's beginning");
        if protocol == "HTTP/1.1" {
            assert!(!received.is_empty(), "nothing of the good segments before it was sent");
        }
    }
    // Flip a byte of the first segment: refused before any byte, with an integrity error.
    let mut tampered = blob.clone();
    tampered[20] ^= 0x01;
    std::fs::write(&blob_path, &tampered).unwrap();
    let r = download(&arca, &admin, &id, None).await;
    assert_eq!(r.status(), 500);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "integrity_error");
    // Deleting crypto-shreds: blob gone, tombstone stays.
    std::fs::write(&blob_path, &blob).unwrap();
    let db = sqlx::SqlitePool::connect(&format!("sqlite://{}", arca.data_dir.join("arca.db").display())).await.unwrap();
    let wrapped: String =
        sqlx::query_scalar("SELECT wrapped_key FROM artifacts WHERE id = $1").bind(&id).fetch_one(&db).await.unwrap();
    assert_eq!(arca.call(Method::DELETE, &format!("/api/artifacts/{id}"), Some(&admin), None).await.status(), 204);
    // The data key is in none of the database's files any more, the write-ahead log included
    // (security review Medium: it survived there, so a copy of the files still decrypted).
    let key: Option<String> =
        sqlx::query_scalar("SELECT wrapped_key FROM artifacts WHERE id = $1").bind(&id).fetch_one(&db).await.unwrap();
    assert_eq!(key, None);
    for file in ["arca.db", "arca.db-wal", "arca.db-shm"] {
        let bytes = std::fs::read(arca.data_dir.join(file)).unwrap_or_default();
        assert!(
            !bytes.windows(wrapped.len()).any(|w| w == wrapped.as_bytes()),
            "the shredded data key is still in {file}"
        );
    }
    // The data key is gone at once; the blob goes with the `deleted` event.
    assert!(eventually(Duration::from_secs(10), || async { !blob_path.exists() }).await, "blob left after delete");
    let tomb = status_of(&arca, &admin, &id).await;
    assert_eq!(tomb["status"], "deleted");
    assert!(tomb["deleted_at"].is_number());
    assert_eq!(download(&arca, &admin, &id, None).await.status(), 409);
    // Every transition is a CloudEvent in the outbox, delivered.
    let pool =
        sqlx::SqlitePool::connect(&format!("sqlite://{}", arca.data_dir.join("arca.db").display())).await.unwrap();
    let events: Vec<(String, String)> =
        sqlx::query_as("SELECT event_type, payload FROM outbox WHERE artifact_id = $1 ORDER BY created_at, rowid")
            .bind(&id)
            .fetch_all(&pool)
            .await
            .unwrap();
    let types: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
    // Every status change, in order: the lifecycle writes each with its event.
    assert_eq!(
        types,
        [
            "dev.arca.artifact.uploading",
            "dev.arca.artifact.verifying",
            "dev.arca.artifact.uploaded",
            "dev.arca.artifact.scanned",
            "dev.arca.artifact.approved",
            "dev.arca.artifact.deleted"
        ]
    );
    let event: Value = serde_json::from_str(&events[0].1).unwrap();
    assert_eq!(event["specversion"], "1.0");
    assert_eq!(event["subject"], id.as_str());
}

fn blob_files(arca: &Arca) -> Vec<String> {
    let mut out = Vec::new();
    for area in ["quarantine", "permanent"] {
        for entry in std::fs::read_dir(arca.data_dir.join("blobs").join(area)).unwrap() {
            out.push(format!("{area}/{}", entry.unwrap().file_name().to_string_lossy()));
        }
    }
    out
}

/// `kill -9` in the middle of a 200 MiB upload: nothing partial survives; a retry succeeds.
#[tokio::test]
async fn crash_during_upload() {
    let dir = tempfile::tempdir().unwrap();
    let mut arca = Arca::builder(dir.path(), Backend::Sqlite).await.env("ARCA_EVENT_LEASE_SECS", "2").start().await;
    let admin = arca.login("admin", ADMIN_PASSWORD).await;
    let bytes = payload(200 * MIB, 9);
    let (id, url) = create(&arca, &admin, "crashy", bytes.len() as u64, &sha256_hex(&bytes)).await;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let client = arca.client.clone();
    let upload_url = url.clone();
    let upload = tokio::spawn(async move {
        let body = reqwest::Body::wrap_stream(tokio_stream_from(rx));
        client.put(&upload_url).header("content-length", 200 * MIB).body(body).send().await
    });
    for chunk in bytes[..80 * MIB].chunks(MIB) {
        tx.send(Ok(chunk.to_vec())).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(blob_files(&arca).iter().any(|f| f.ends_with(".partial")), "the upload should be in progress");
    arca.kill9();
    drop(tx);
    let _ = upload.await;

    let arca = arca.start_again().await;
    let admin = arca.login("admin", ADMIN_PASSWORD).await;
    // Once the dead upload's lease expires, the artifact waits for its bytes again.
    let reset = eventually(Duration::from_secs(30), || async {
        status_of(&arca, &admin, &id).await["status"] == "pending_upload"
    })
    .await;
    assert!(reset, "{}", status_of(&arca, &admin, &id).await);
    assert!(
        eventually(Duration::from_secs(10), || async { blob_files(&arca).is_empty() }).await,
        "partial files left: {:?}",
        blob_files(&arca)
    );
    assert_eq!(download(&arca, &admin, &id, None).await.status(), 409);
    // The used URL stays used (single use, even after a crash); a new one is issued.
    // (The test's server listens on a new port after the restart.)
    let path = &url[url.find("/api/uploads/").unwrap()..];
    let r = put(&arca, &arca.url(path), bytes.clone()).await;
    assert_eq!(r.status(), 409, "a used upload URL must not be accepted again");
    let reissued: Value =
        arca.call(Method::POST, &format!("/api/artifacts/{id}/upload"), Some(&admin), None).await.json().await.unwrap();
    let r = put(&arca, reissued["url"].as_str().unwrap(), bytes.clone()).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(complete(&arca, &admin, &id).await.status(), 200);
    assert_eq!(wait_final(&arca, &admin, &id).await["status"], "approved");
    let got = download(&arca, &admin, &id, None).await.bytes().await.unwrap();
    assert_eq!(sha256_hex(&got), sha256_hex(&bytes));
    assert_eq!(blob_files(&arca), vec![format!("permanent/{id}")], "no orphans");
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

fn status_kib(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = text.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Uploading and downloading 1 GiB keeps the server's peak RSS under idle + 64 MiB.
#[tokio::test]
async fn one_gib_in_constant_memory() {
    let dir = tempfile::tempdir().unwrap();
    let arca = Arca::builder(dir.path(), Backend::Sqlite).await.start().await;
    let admin = arca.login("admin", ADMIN_PASSWORD).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = status_kib(arca.pid(), "VmRSS:");
    let file = dir.path().join("big.bin");
    let status = std::process::Command::new("head")
        .args(["-c", "1073741824", "/dev/urandom"])
        .stdout(std::fs::File::create(&file).unwrap())
        .status()
        .unwrap();
    assert!(status.success());
    let mut hasher = Sha256::new();
    let mut f = std::fs::File::open(&file).unwrap();
    std::io::copy(&mut f, &mut hasher).unwrap();
    let digest = hex::encode(hasher.finalize());
    let size = 1u64 << 30;
    let (id, url) = create(&arca, &admin, "big", size, &digest).await;
    let stream = tokio_util::io::ReaderStream::with_capacity(tokio::fs::File::open(&file).await.unwrap(), MIB);
    let r = arca
        .client
        .put(&url)
        .header("content-length", size)
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(complete(&arca, &admin, &id).await.status(), 200);
    assert_eq!(wait_final(&arca, &admin, &id).await["status"], "approved");
    let mut hasher = Sha256::new();
    let mut stream = download(&arca, &admin, &id, None).await.bytes_stream();
    while let Some(chunk) = stream.next().await {
        hasher.update(chunk.unwrap());
    }
    assert_eq!(hex::encode(hasher.finalize()), digest);
    let peak = status_kib(arca.pid(), "VmHWM:");
    assert!(peak < idle + 64 * 1024, "peak RSS {peak} KiB exceeds idle {idle} KiB + 64 MiB");
    eprintln!("1 GiB round trip: idle RSS {} MiB, peak {} MiB", idle / 1024, peak / 1024);
}

/// `arca push` and `arca pull`; pull refuses (and deletes) a file whose digest is wrong.
async fn push_and_pull(backend: Backend) {
    push_and_pull_on(backend, false, 3 * MIB + 17).await;
}
both_backends!(push_and_pull);

/// The same against the S3 store, large enough to go in parts.
#[tokio::test]
async fn push_and_pull_s3() {
    push_and_pull_on(Backend::Sqlite, true, 70 * MIB + 3).await;
}

async fn push_and_pull_on(backend: Backend, s3: bool, size: usize) {
    let dir = tempfile::tempdir().unwrap();
    let mut builder = Arca::builder(dir.path(), backend).await;
    if s3 {
        builder = builder.s3();
    }
    let database_url = builder.database_url();
    let arca = builder.start().await;
    let cli = Cli { dir: dir.path().to_owned() };
    cli.login(&arca);
    let file = dir.path().join("tool.tar.gz");
    let bytes = payload(size, 5);
    std::fs::write(&file, &bytes).unwrap();
    let out = cli.run(&["push", file.to_str().unwrap(), "--name", "tool", "--version", "2.1.0", "--label", "os=linux"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.trim_end().ends_with("approved"), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("uploading 100%"), "progress lines expected: {stderr}");
    let id = stdout.split_whitespace().next().unwrap().to_owned();

    let out = cli.run(&["pull", "tool@2.1.0", "-o", "copy.tar.gz"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(dir.path().join("copy.tar.gz")).unwrap(), bytes);
    let out = cli.run(&["status", &id]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("status: approved"));

    // The server now serves other bytes than the recorded digest, and its own gate passes
    // (the signature it checks is valid): only the CLI's digest check stands in the way.
    let other = payload(size, 6);
    if s3 {
        // The object swapped behind Arca's back; the recorded digest and signature untouched.
        crate::s3::replace_object(&arca, &format!("permanent/{id}"), other).await;
    } else {
        // Local blobs are bound to their artifact (AAD), so the record moves instead: the
        // digest of other bytes, signed with Arca's own key, as a valid signature would be.
        std::fs::write(dir.path().join("other.bin"), &other).unwrap();
        let key = arca.data_dir.join("signing/key.pem");
        let out = std::process::Command::new("openssl")
            .args(["dgst", "-sha256", "-sign", key.to_str().unwrap(), "-out", "other.sig", "other.bin"])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let signature =
            base64::engine::general_purpose::STANDARD.encode(std::fs::read(dir.path().join("other.sig")).unwrap());
        let digest = sha256_hex(&other);
        let db = crate::helpers::TestDb::of(&arca).await;
        db.execute(&format!("UPDATE artifacts SET sha256 = '{digest}' WHERE id = '{id}'")).await;
        db.execute(&format!(
            "UPDATE signatures SET signature = '{signature}', digest = 'sha256:{digest}' WHERE artifact_id = '{id}'"
        ))
        .await;
    }
    let _ = database_url;
    let out = cli.run(&["pull", &id, "-o", "bad.tar.gz"]);
    assert!(!out.status.success(), "pull kept bytes whose digest is wrong");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("digest mismatch"), "the CLI's digest check did not refuse: {stderr}");
    assert!(!dir.path().join("bad.tar.gz").exists());
    assert!(!dir.path().join(".bad.tar.gz.arca-partial").exists(), "the partial download was left behind");
}

/// Issue 16, point 12: a second publisher gets `not_owner` on another publisher's artifact
/// for reissuing the upload URL, completing, deleting, attaching a signature, parts and
/// rescanning; the owner is not refused. Against the local store (both metadata backends)
/// and the S3 store.
async fn other_publishers_are_not_owners(backend: Backend) {
    not_owner_on(backend, false).await;
}
both_backends!(other_publishers_are_not_owners);

#[tokio::test]
async fn other_publishers_are_not_owners_s3() {
    not_owner_on(Backend::Sqlite, true).await;
}

async fn not_owner_on(backend: Backend, s3: bool) {
    let dir = tempfile::tempdir().unwrap();
    // A scanner that always fails: the first scan fails the artifact, retryably (which is
    // what its owner may rescan).
    let broken = dir.path().join("broken-trivy");
    std::fs::write(&broken, "#!/bin/sh\necho 'scanner down' >&2\nexit 3\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&broken, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut builder = Arca::builder(dir.path(), backend)
        .await
        .env("ARCA_TRIVY", broken.to_str().unwrap())
        .env("ARCA_SCAN_ATTEMPTS", "1");
    if s3 {
        builder = builder.s3();
    }
    let arca = builder.start().await;
    let admin = arca.login("admin", ADMIN_PASSWORD).await;
    arca.create_user(&admin, "pub1", &["publisher"]).await;
    arca.create_user(&admin, "pub2", &["publisher"]).await;
    let (pub1, pub2) = (arca.login("pub1", USER_PASSWORD).await, arca.login("pub2", USER_PASSWORD).await);
    let declare = |name: &'static str, bytes: &[u8]| {
        let (arca, pub1, size, digest) = (&arca, pub1.clone(), bytes.len(), sha256_hex(bytes));
        async move {
            let r = arca
                .call(
                    Method::POST,
                    "/api/artifacts",
                    Some(&pub1),
                    Some(
                        json!({"name": name, "version": "1.0.0", "filename": "x.bin", "size": size, "sha256": digest}),
                    ),
                )
                .await;
            assert_eq!(r.status(), 201);
            r.json::<Value>().await.unwrap()
        }
    };
    let bytes = payload(4000, 12);
    // Waiting for its bytes.
    let pending = declare("owned-pending", &bytes).await;
    let pending_id = pending["id"].as_str().unwrap().to_owned();
    // Failed because the scanner failed (retryable).
    let failed = declare("owned-failed", &bytes).await;
    let failed_id = failed["id"].as_str().unwrap().to_owned();
    let target = &failed["upload"];
    let mut request = reqwest::Client::new().put(target["url"].as_str().unwrap()).body(bytes.clone());
    if s3 {
        for (k, v) in target["headers"].as_object().unwrap() {
            request = request.header(k.as_str(), v.as_str().unwrap());
        }
    } else {
        request = arca.client.put(target["url"].as_str().unwrap()).body(bytes.clone());
    }
    assert_eq!(request.send().await.unwrap().status(), 200);
    assert_eq!(complete(&arca, &pub1, &failed_id).await.status(), 200);
    let done = wait_final(&arca, &admin, &failed_id).await;
    assert_eq!((done["status"].as_str(), done["retryable"].as_bool()), (Some("failed"), Some(true)), "{done}");

    let signature = json!({"signature": "MEUCIQDtest", "certificate_chain": "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"});
    let parts = json!({"parts": [{"number": 1, "sha256": sha256_hex(&bytes)}]});
    let attempts: Vec<(Method, String, Option<Value>)> = vec![
        (Method::POST, format!("/api/artifacts/{pending_id}/upload"), None),
        (Method::POST, format!("/api/artifacts/{pending_id}/complete"), None),
        (Method::GET, format!("/api/artifacts/{pending_id}/parts"), None),
        (Method::POST, format!("/api/artifacts/{pending_id}/parts"), Some(parts)),
        (Method::POST, format!("/api/artifacts/{pending_id}/signatures"), Some(signature)),
        (Method::POST, format!("/api/artifacts/{failed_id}/rescan"), None),
        (Method::DELETE, format!("/api/artifacts/{pending_id}"), None),
        (Method::DELETE, format!("/api/artifacts/{failed_id}"), None),
    ];
    let mut failures = Vec::new();
    for (method, path, body) in &attempts {
        let r = arca.call(method.clone(), path, Some(&pub2), body.clone()).await;
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        let code = serde_json::from_str::<Value>(&text).unwrap_or_default()["code"].clone();
        if (status, code.as_str()) != (403, Some("not_owner")) {
            failures.push(format!("{method} {path} as pub2: {status} {text}"));
        }
    }
    assert!(failures.is_empty(), "another publisher was not refused as not_owner:\n{}", failures.join("\n"));
    assert_eq!(status_of(&arca, &admin, &pending_id).await["status"], "pending_upload");
    // The owner is not refused by the same checks.
    for (method, path, body) in &attempts {
        let r = arca.call(method.clone(), path, Some(&pub1), body.clone()).await;
        let text = r.text().await.unwrap();
        assert_ne!(
            serde_json::from_str::<Value>(&text).unwrap_or_default()["code"],
            "not_owner",
            "{method} {path}: {text}"
        );
    }
}

/// Issue 16, point 13: a quarantined artifact, whether never approved or quarantined after
/// its approval (signed, its blob promoted), is "not found" to a consumer on every route that
/// takes its id (scan results: the same answer as for an id that does not exist); a
/// publisher or an admin gets 409 with the reason on download.
#[tokio::test]
async fn quarantined_artifacts_on_every_route() {
    let dir = tempfile::tempdir().unwrap();
    let arca = Arca::builder(dir.path(), Backend::Sqlite).await.env("ARCA_POLICY_RECHECK_SECS", "1").start().await;
    let admin = arca.login("admin", ADMIN_PASSWORD).await;
    arca.create_user(&admin, "consumer", &["consumer"]).await;
    arca.create_user(&admin, "publisher", &["publisher"]).await;
    let (consumer, publisher) =
        (arca.login("consumer", USER_PASSWORD).await, arca.login("publisher", USER_PASSWORD).await);
    let (never, done) =
        crate::hardening::submit(&arca, &admin, "never", "never.zip", crate::hardening::vulnerable_zip()).await;
    assert_eq!(done["status"], "quarantined");
    let again = crate::hardening::requarantined(&arca, &admin, "again").await;
    let r = arca.call(Method::GET, &format!("/api/artifacts/{again}/signature"), Some(&admin), None).await;
    assert_eq!(r.status(), 200, "the re-quarantined artifact was signed when approved");
    let unknown = "00000000-0000-0000-0000-000000000000";
    let answer = |token: String, path: String, range: bool| {
        let arca = &arca;
        async move {
            let mut request = arca.client.get(arca.url(&path)).bearer_auth(token);
            if range {
                request = request.header("range", "bytes=0-9");
            }
            let r = request.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or_default())
        }
    };
    let mut failures = Vec::new();
    for id in [&never, &again] {
        for (suffix, range) in [
            ("", false),
            ("/signature", false),
            ("/signatures", false),
            ("/download", false),
            ("/download", true),
            ("/events", false),
        ] {
            let (status, body) = answer(consumer.clone(), format!("/api/artifacts/{id}{suffix}"), range).await;
            if (status, body["code"].as_str()) != (404, Some("not_found")) {
                failures.push(format!("consumer GET {suffix} (range {range}): {status} {body}"));
            }
        }
        let (status, body) = answer(consumer.clone(), format!("/api/artifacts/{id}/scan-results"), false).await;
        let (unknown_status, unknown_body) =
            answer(consumer.clone(), format!("/api/artifacts/{unknown}/scan-results"), false).await;
        if status == 200 || (status, &body["code"]) != (unknown_status, &unknown_body["code"]) {
            failures.push(format!("consumer scan-results: {status} {body}, unknown id: {unknown_status}"));
        }
        for token in [&publisher, &admin] {
            let (status, body) = answer(token.clone(), format!("/api/artifacts/{id}/download"), false).await;
            let detail = body["detail"].as_str().unwrap_or_default();
            if status != 409
                || body["code"] != "not_approved"
                || !detail.contains("quarantined")
                || !detail.contains("CVE-2021-25900")
            {
                failures.push(format!("download by a reader of all: {status} {body}"));
            }
        }
    }
    let listed: Value = arca.call(Method::GET, "/api/artifacts", Some(&consumer), None).await.json().await.unwrap();
    assert_eq!(listed["total"], 0, "{listed}");
    assert!(failures.is_empty(), "quarantined artifacts:\n{}", failures.join("\n"));
}
