//! Issue 4 on the S3 store (a real MinIO started by `make test`): presigned uploads bound
//! to size and SHA-256, multipart with resumable parts, SSE at rest, presigned downloads,
//! the reconciler, and `arca push`/`pull`.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::artifacts::{complete, payload, sha256_hex, status_of, wait_final};
use crate::helpers::{Arca, Backend, Minio, ADMIN_PASSWORD, MINIO_PASSWORD, MINIO_USER};

const MIB: usize = 1024 * 1024;

async fn start(dir: &Path, backend: Backend) -> Arca {
    Arca::builder(dir, backend).await.s3().start().await
}

/// A client for the object store's presigned URLs (no Arca credentials, no redirects).
fn store_client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// The S3 API as an operator sees it (to look at objects behind Arca's back).
fn s3_admin() -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .endpoint_url(Minio::from_env().endpoint)
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(MINIO_USER, MINIO_PASSWORD, None, None, "test"))
        .force_path_style(true)
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// Replaces an object of the server's bucket behind Arca's back.
pub async fn replace_object(arca: &Arca, key: &str, bytes: Vec<u8>) {
    s3_admin().put_object().bucket(bucket_of(arca)).key(key).body(bytes.into()).send().await.unwrap();
}

fn bucket_of(arca: &Arca) -> String {
    arca.env_value("ARCA_S3_BUCKET").unwrap()
}

/// Creates an artifact; returns (id, upload target).
async fn create(arca: &Arca, token: &str, name: &str, size: usize, sha256: &str) -> (String, Value) {
    let response = arca
        .call(
            Method::POST,
            "/api/artifacts",
            Some(token),
            Some(json!({"name": name, "version": "1.0.0", "filename": format!("{name}.bin"), "size": size, "sha256": sha256})),
        )
        .await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    let body: Value = response.json().await.unwrap();
    (body["id"].as_str().unwrap().to_owned(), body["upload"].clone())
}

/// Sends bytes to a presigned target exactly as a client would.
async fn send(target: &Value, bytes: Vec<u8>) -> reqwest::Response {
    assert_eq!(target["method"], "PUT", "{target}");
    let mut request = store_client().put(target["url"].as_str().unwrap()).body(bytes);
    for (k, v) in target["headers"].as_object().unwrap() {
        request = request.header(k.as_str(), v.as_str().unwrap());
    }
    request.send().await.unwrap()
}

/// Presigned URLs for parts of a multipart upload.
async fn part_targets(arca: &Arca, token: &str, id: &str, parts: &[(u64, &[u8])]) -> Vec<Value> {
    let request: Vec<Value> = parts.iter().map(|(n, b)| json!({"number": n, "sha256": sha256_hex(b)})).collect();
    let response = arca
        .call(Method::POST, &format!("/api/artifacts/{id}/parts"), Some(token), Some(json!({"parts": request})))
        .await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    response.json::<Value>().await.unwrap()["parts"].as_array().unwrap().clone()
}

/// The parts of `bytes` for a multipart plan.
fn parts_of<'a>(upload: &Value, bytes: &'a [u8]) -> Vec<(u64, &'a [u8])> {
    let part_size = upload["multipart"]["part_size"].as_u64().unwrap() as usize;
    bytes.chunks(part_size).enumerate().map(|(i, c)| (i as u64 + 1, c)).collect()
}

/// Uploads all of `bytes` to the target the create answer gave (the client's flow: one
/// presigned PUT, or the parts, each bound to its SHA-256).
async fn upload(arca: &Arca, token: &str, id: &str, target: &Value, bytes: &[u8]) {
    let target: arca_client::UploadTarget = serde_json::from_value(target.clone()).unwrap();
    let source = arca_client::Source::bytes(bytes.to_vec());
    arca.api(Some(token)).upload(id, &target, &source, bytes.len() as u64, &Default::default()).await.unwrap();
}

async fn download(arca: &Arca, token: &str, id: &str) -> reqwest::Response {
    let url = arca.url(&format!("/api/artifacts/{id}/download"));
    arca.client_no_redirect().get(url).bearer_auth(token).send().await.unwrap()
}

/// Round trips on S3 (1 B and 5 MiB + 1 in one presigned PUT, 64 MiB + 1 and 200 MiB in
/// parts); the download is a short-lived presigned redirect to the store.
async fn s3_round_trip(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let arca = start(dir.path(), backend).await;
    let admin = arca.login("admin", ADMIN_PASSWORD).await;
    let sizes: &[usize] =
        if backend == Backend::Sqlite { &[1, 5 * MIB + 1, 64 * MIB + 1, 200 * MIB] } else { &[1, 64 * MIB + 1] };
    for (i, &size) in sizes.iter().enumerate() {
        let bytes = payload(size, 100 + i as u64);
        let digest = sha256_hex(&bytes);
        let (id, target) = create(&arca, &admin, &format!("s3-{size}"), size, &digest).await;
        assert_eq!(target["method"], if size > 64 * MIB { "MULTIPART" } else { "PUT" }, "size {size}");
        upload(&arca, &admin, &id, &target, &bytes).await;
        let r = complete(&arca, &admin, &id).await;
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        assert_eq!(wait_final(&arca, &admin, &id).await["status"], "approved");

        let r = download(&arca, &admin, &id).await;
        assert_eq!(r.status(), 302);
        assert_eq!(r.headers()["x-arca-sha256"], digest.as_str());
        let location = r.headers()["location"].to_str().unwrap().to_owned();
        let expires: u64 = location.split("X-Amz-Expires=").nth(1).unwrap().split('&').next().unwrap().parse().unwrap();
        assert!(expires <= 300, "presigned GET lives {expires} s");
        let got = store_client().get(&location).send().await.unwrap();
        assert_eq!(got.status(), 200);
        assert!(got.headers()["content-disposition"].to_str().unwrap().starts_with("attachment; filename=\"s3-"));
        let (mut hasher, mut received, mut body) = (Sha256::new(), 0, got.bytes_stream());
        while let Some(chunk) = body.next().await {
            let chunk = chunk.unwrap();
            received += chunk.len();
            hasher.update(&chunk);
        }
        assert_eq!((received, hex::encode(hasher.finalize())), (size, digest), "size {size}");
    }
}
crate::both_backends!(s3_round_trip);

/// Wrong bytes, wrong size, a URL for another artifact, expired and reused URLs: the store
/// refuses them; bytes changed behind Arca's back fail verification; nothing is downloadable.
#[tokio::test]
async fn s3_bad_uploads_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let arca = Arca::builder(dir.path(), Backend::Sqlite).await.s3().env("ARCA_UPLOAD_URL_TTL", "2").start().await;
    let admin = arca.login("admin", ADMIN_PASSWORD).await;
    let bytes = payload(100_000, 7);
    let digest = sha256_hex(&bytes);

    // Wrong bytes (same size) and wrong size: the store checks the signed checksum/length.
    let (wrong, target) = create(&arca, &admin, "wrong-sha", bytes.len(), &digest).await;
    let mut other = bytes.clone();
    other[500] ^= 1;
    assert_eq!(send(&target, other).await.status(), 400);
    assert!(send(&target, bytes[..5000].to_vec()).await.status().is_client_error());
    let r = complete(&arca, &admin, &wrong).await;
    assert_eq!(r.status(), 409);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "upload_missing");
    assert_eq!(status_of(&arca, &admin, &wrong).await["status"], "pending_upload", "untouched");

    // A URL for another artifact: A's bytes sent to B's presigned URL. B's URL names B's
    // object and digest, so the store refuses; B still waits, A is untouched.
    let a_bytes = payload(100_000, 8);
    let (mine, mine_target) = create(&arca, &admin, "mine", a_bytes.len(), &sha256_hex(&a_bytes)).await;
    let b_bytes = payload(100_000, 18);
    let (theirs, theirs_target) = create(&arca, &admin, "theirs", b_bytes.len(), &sha256_hex(&b_bytes)).await;
    assert_eq!(send(&theirs_target, a_bytes.clone()).await.status(), 400, "B's URL accepted A's bytes");
    let bucket = bucket_of(&arca);
    for id in [&mine, &theirs] {
        assert_eq!(status_of(&arca, &admin, id).await["status"], "pending_upload");
        let head = s3_admin().head_object().bucket(&bucket).key(format!("quarantine/{id}")).send().await;
        assert!(head.is_err(), "an object was written for {id}");
    }
    assert_eq!(complete(&arca, &admin, &theirs).await.status(), 409, "B has no bytes");
    // A's own URL still takes A's bytes.
    assert_eq!(send(&mine_target, a_bytes).await.status(), 200);

    // Reused URL: the first PUT lands, a second is refused.
    let (used, target) = create(&arca, &admin, "reused", bytes.len(), &digest).await;
    assert_eq!(send(&target, bytes.clone()).await.status(), 200);
    assert_eq!(send(&target, bytes.clone()).await.status(), 412);

    // Expired URL.
    let (late, target) = create(&arca, &admin, "late", bytes.len(), &digest).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(send(&target, bytes.clone()).await.status(), 403);
    assert_eq!(status_of(&arca, &admin, &late).await["status"], "pending_upload");
    // A new URL for the same artifact works.
    let reissued: Value = arca
        .call(Method::POST, &format!("/api/artifacts/{late}/upload"), Some(&admin), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(send(&reissued, bytes.clone()).await.status(), 200);

    // Bytes replaced in the store behind Arca's back (no checksum): complete re-hashes,
    // the artifact fails with the reason and its object is removed.
    let (swapped, _) = create(&arca, &admin, "swapped", bytes.len(), &digest).await;
    let mut evil = bytes.clone();
    evil[0] ^= 1;
    s3_admin()
        .put_object()
        .bucket(&bucket)
        .key(format!("quarantine/{swapped}"))
        .body(evil.into())
        .send()
        .await
        .unwrap();
    let r = complete(&arca, &admin, &swapped).await;
    assert_eq!(r.status(), 422);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "digest_mismatch");
    assert_eq!(status_of(&arca, &admin, &swapped).await["status"], "failed");
    assert!(s3_admin().head_object().bucket(&bucket).key(format!("quarantine/{swapped}")).send().await.is_err());

    for id in [&wrong, &theirs, &swapped] {
        let r = download(&arca, &admin, id).await;
        assert_eq!(r.status(), 409);
        assert_eq!(r.json::<Value>().await.unwrap()["code"], "not_approved");
    }
    for id in [&used, &late, &mine] {
        assert_eq!(complete(&arca, &admin, id).await.status(), 200);
        assert_eq!(wait_final(&arca, &admin, id).await["status"], "approved");
    }
}

/// A multipart upload resumes: the API lists the parts the store holds, `complete` refuses
/// until all are there; a corrupted part is refused by the store. Abandoned uploads and
/// orphaned objects are gone after a restart.
#[tokio::test]
async fn s3_multipart_resumes_and_reconciler_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let arca = start(dir.path(), Backend::Sqlite).await;
    let admin = arca.login("admin", ADMIN_PASSWORD).await;
    let bytes = payload(64 * MIB + 1, 9);
    let (id, target) = create(&arca, &admin, "resumed", bytes.len(), &sha256_hex(&bytes)).await;
    let parts = parts_of(&target, &bytes);
    assert_eq!(parts.len(), 5);
    let presigned = part_targets(&arca, &admin, &id, &parts[..2]).await;
    let mut corrupt = parts[1].1.to_vec();
    corrupt[7] ^= 1;
    assert_eq!(send(&presigned[1], corrupt).await.status(), 400, "a corrupted part is refused");
    assert_eq!(send(&presigned[0], parts[0].1.to_vec()).await.status(), 200);
    let listed: Value =
        arca.call(Method::GET, &format!("/api/artifacts/{id}/parts"), Some(&admin), None).await.json().await.unwrap();
    let uploaded = listed["uploaded"].as_array().unwrap();
    assert_eq!(uploaded.len(), 1, "{listed}");
    assert_eq!(uploaded[0]["number"], 1);
    assert_eq!(uploaded[0]["sha256"], sha256_hex(parts[0].1).as_str());
    let r = complete(&arca, &admin, &id).await;
    assert_eq!(r.status(), 409);
    assert!(r.json::<Value>().await.unwrap()["detail"].as_str().unwrap().contains("1 of 5 parts"));
    assert_eq!(status_of(&arca, &admin, &id).await["status"], "pending_upload");
    // Resume after a restart: pushing the same bytes again continues the same upload
    // (the client's push flow skips the part the store holds).
    let arca = arca.restart().await;
    let admin = arca.login("admin", ADMIN_PASSWORD).await;
    let notes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = notes.clone();
    let options = arca_client::PushOptions {
        filename: Some("resumed.bin".into()),
        progress: Some(std::sync::Arc::new(move |r: &arca_client::Report<'_>| {
            if let Some(m) = r.message {
                seen.lock().unwrap().push(m.to_owned());
            }
        })),
        ..Default::default()
    };
    let source = arca_client::Source::bytes(bytes.clone());
    let done = arca.api(Some(&admin)).push("resumed", "1.0.0", &source, &options).await.unwrap();
    assert_eq!((done.id.as_str(), done.status), (id.as_str(), arca_client::Status::Approved));
    assert!(notes.lock().unwrap().iter().any(|n| n == "1 of 5 parts already uploaded"), "{notes:?}");

    // Deleting an artifact mid-upload aborts its multipart upload.
    let big = payload(64 * MIB + 1, 10);
    let (gone, target) = create(&arca, &admin, "abandoned", big.len(), &sha256_hex(&big)).await;
    let first = parts_of(&target, &big);
    let t = part_targets(&arca, &admin, &gone, &first[..1]).await;
    assert_eq!(send(&t[0], first[0].1.to_vec()).await.status(), 200);
    assert_eq!(arca.call(Method::DELETE, &format!("/api/artifacts/{gone}"), Some(&admin), None).await.status(), 204);
    let bucket = bucket_of(&arca);
    let s3 = s3_admin();
    // The blob and its multipart upload go with the `deleted` event.
    let aborted = crate::helpers::eventually(Duration::from_secs(10), || async {
        s3.list_multipart_uploads().bucket(&bucket).send().await.unwrap().uploads().is_empty()
    })
    .await;
    assert!(aborted, "{:?}", s3.list_multipart_uploads().bucket(&bucket).send().await.unwrap());
    // What delete means on S3 (README, "What delete erases"): the bucket keeps no versions,
    // so nothing of a deleted object stays behind a delete marker.
    let versioning = s3.get_bucket_versioning().bucket(&bucket).send().await.unwrap();
    assert_eq!(versioning.status(), None, "the bucket must not be versioned");
    let versions = s3.list_object_versions().bucket(&bucket).prefix(format!("quarantine/{gone}")).send().await.unwrap();
    assert!(versions.versions().is_empty() && versions.delete_markers().is_empty(), "{versions:?}");

    // Orphans: an object nobody owns, and a multipart upload whose artifact failed while
    // the process died before aborting it (the database still names the upload).
    s3.put_object().bucket(&bucket).key("quarantine/orphan").body(b"x".to_vec().into()).send().await.unwrap();
    let (stray, target) = create(&arca, &admin, "stray", big.len(), &sha256_hex(&big)).await;
    let t = part_targets(&arca, &admin, &stray, &parts_of(&target, &big)[..1]).await;
    assert_eq!(send(&t[0], big[..t[0]["size"].as_u64().unwrap() as usize].to_vec()).await.status(), 200);
    let pool =
        sqlx::SqlitePool::connect(&format!("sqlite://{}", arca.data_dir.join("arca.db").display())).await.unwrap();
    sqlx::query("UPDATE artifacts SET status = 'failed' WHERE id = $1").bind(&stray).execute(&pool).await.unwrap();
    pool.close().await;
    let stray_key = format!("quarantine/{stray}");
    let listed = s3.list_multipart_uploads().bucket(&bucket).prefix(&stray_key).send().await.unwrap();
    assert_eq!(listed.uploads().len(), 1);
    let arca = arca.restart().await;
    let keys = || async {
        s3.list_objects_v2()
            .bucket(&bucket)
            .send()
            .await
            .unwrap()
            .contents()
            .iter()
            .map(|o| o.key().unwrap().to_owned())
            .collect::<Vec<String>>()
    };
    // The reconciler's first round runs right after start-up.
    let expected = vec![format!("permanent/{id}")];
    assert!(
        crate::helpers::eventually(Duration::from_secs(20), || async { keys().await == expected }).await,
        "{:?}",
        keys().await
    );
    // The same round then aborts the stray multipart upload (after removing objects).
    let aborted = crate::helpers::eventually(Duration::from_secs(20), || async {
        s3.list_multipart_uploads().bucket(&bucket).prefix(&stray_key).send().await.unwrap().uploads().is_empty()
    })
    .await;
    assert!(aborted, "the stray multipart upload was not aborted");
    drop(arca);
}

/// At rest on MinIO: the object reports SSE, and MinIO's files hold no 16-byte run of the
/// plaintext (stronger than 32).
#[tokio::test]
async fn s3_encrypted_at_rest() {
    let dir = tempfile::tempdir().unwrap();
    let arca = start(dir.path(), Backend::Sqlite).await;
    let admin = arca.login("admin", ADMIN_PASSWORD).await;
    let bytes = payload(5 * MIB, 77);
    let (id, target) = create(&arca, &admin, "at-rest", bytes.len(), &sha256_hex(&bytes)).await;
    upload(&arca, &admin, &id, &target, &bytes).await;
    assert_eq!(complete(&arca, &admin, &id).await.status(), 200);
    assert_eq!(wait_final(&arca, &admin, &id).await["status"], "approved");
    let bucket = bucket_of(&arca);
    let head = s3_admin().head_object().bucket(&bucket).key(format!("permanent/{id}")).send().await.unwrap();
    assert_eq!(head.server_side_encryption().map(|s| s.as_str()), Some("AES256"));

    // Every 16-byte-aligned block of the plaintext; any 32-byte run contains one.
    let blocks: HashSet<&[u8]> = bytes.chunks_exact(16).collect();
    let mut files = Vec::new();
    collect_files(&Minio::from_env().data_dir.join(&bucket), &mut files);
    assert!(!files.is_empty(), "MinIO keeps the bucket under its data dir");
    let mut stored = 0;
    for file in files {
        let content = std::fs::read(&file).unwrap();
        stored += content.len();
        assert!(!content.windows(16).any(|w| blocks.contains(w)), "plaintext found in {}", file.display());
    }
    assert!(stored >= bytes.len(), "the object's bytes are on disk ({stored} bytes)");
}

fn collect_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_files(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// Issue 16, point 13 on S3: a presigned GET issued while an artifact was approved keeps
/// working until it expires after the artifact is quarantined again (the blob stays in the
/// permanent area); it lives only `ARCA_S3_DOWNLOAD_URL_TTL` seconds (here 15), after which the
/// store refuses it. Arca itself refuses every new download at once.
#[tokio::test]
async fn s3_presigned_gets_of_a_requarantined_artifact_expire() {
    let dir = tempfile::tempdir().unwrap();
    let ttl = 15;
    let arca = Arca::builder(dir.path(), Backend::Sqlite)
        .await
        .s3()
        .env("ARCA_POLICY_RECHECK_SECS", "1")
        .env("ARCA_S3_DOWNLOAD_URL_TTL", &ttl.to_string())
        .start()
        .await;
    let admin = arca.login("admin", ADMIN_PASSWORD).await;
    arca.create_user(&admin, "consumer", &["consumer"]).await;
    let consumer = arca.login("consumer", crate::helpers::USER_PASSWORD).await;
    let bytes = crate::hardening::vulnerable_zip();
    let r = arca
        .call(
            Method::POST,
            "/api/artifacts",
            Some(&admin),
            Some(json!({"name": "flip", "version": "1.0.0", "filename": "flip.zip", "size": bytes.len(), "sha256": sha256_hex(&bytes)})),
        )
        .await;
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    upload(&arca, &admin, &id, &created["upload"], &bytes).await;
    assert_eq!(complete(&arca, &admin, &id).await.status(), 200);
    let done = wait_final(&arca, &admin, &id).await;
    assert_eq!(done["status"], "quarantined", "{done}");
    let exception = crate::hardening::waive(&arca, &admin, &id).await;
    crate::hardening::wait_status(&arca, &admin, &id, "approved", Duration::from_secs(20)).await;
    let r = download(&arca, &consumer, &id).await;
    assert_eq!(r.status(), 302);
    let issued = std::time::Instant::now();
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let expires: u64 = location.split("X-Amz-Expires=").nth(1).unwrap().split('&').next().unwrap().parse().unwrap();
    assert_eq!(expires, ttl, "the presigned GET lives {expires} s");
    assert_eq!(
        arca.call(Method::DELETE, &format!("/api/exceptions/{exception}"), Some(&admin), None).await.status(),
        204
    );
    crate::hardening::wait_status(&arca, &admin, &id, "quarantined", Duration::from_secs(10)).await;
    // Arca refuses new downloads at once.
    assert_eq!(download(&arca, &consumer, &id).await.status(), 404);
    let r = download(&arca, &admin, &id).await;
    assert_eq!(r.status(), 409);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "not_approved");
    // The URL already handed out still works while it lives ...
    assert!(issued.elapsed() < Duration::from_secs(ttl - 2), "too slow to observe the URL while it lives");
    let got = store_client().get(&location).send().await.unwrap();
    assert_eq!(got.status(), 200, "the presigned GET stopped working before it expired");
    assert_eq!(&got.bytes().await.unwrap()[..], &bytes[..]);
    // ... and not a second longer.
    tokio::time::sleep(Duration::from_secs(ttl + 1).saturating_sub(issued.elapsed())).await;
    assert_eq!(store_client().get(&location).send().await.unwrap().status(), 403, "an expired presigned GET worked");
}
