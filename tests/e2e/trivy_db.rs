//! Issue 11: the vulnerability DB without hand steps, and scans that recover.
//!
//! A real OCI registry (`distribution` v3, on loopback) serves the fixture DB as Trivy's DB
//! artifact (pushed with `oras`), and Arca downloads it through Trivy: a first download, an
//! update that rescans, a corrupt and an older DB refused while the old one keeps serving,
//! and the registry down. Then an artifact that failed for want of a DB is retried, by
//! itself when the DB arrives and by hand with `arca rescan`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use crate::artifacts::status_of;
use crate::helpers::{eventually, free_port, Arca, Backend, Cli, Trivy, ADMIN_PASSWORD};
use crate::scanning::{download_status, go_binary, submit, tar_gz};

/// A `distribution` registry on loopback, storing in a temporary directory.
struct Registry {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Registry {
    async fn start(dir: &Path) -> Self {
        let bin = std::env::var("ARCA_TEST_REGISTRY").expect("ARCA_TEST_REGISTRY: run the tests through `make test`");
        let port = free_port();
        std::fs::create_dir_all(dir.join("storage")).unwrap();
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    \
                 enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.join("storage").display()
            ),
        )
        .unwrap();
        let child = Command::new(bin)
            .arg("serve")
            .arg(&config)
            .env("OTEL_SDK_DISABLED", "true")
            .env("OTEL_TRACES_EXPORTER", "none")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let client = reqwest::Client::new();
        let url = format!("http://127.0.0.1:{port}/v2/");
        let up = eventually(Duration::from_secs(30), || async {
            client.get(&url).send().await.is_ok_and(|r| r.status().is_success())
        })
        .await;
        assert!(up, "the registry did not start");
        Self { child, port, dir: dir.to_owned() }
    }

    fn repository(&self) -> String {
        format!("127.0.0.1:{}/trivy-db:2", self.port)
    }

    /// Pushes the DB in `db_dir` (`trivy.db`, `metadata.json`) as Trivy's DB artifact.
    fn push(&self, db_dir: &Path) {
        let work = self.dir.join(format!("push-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&work).unwrap();
        let tar = Command::new("tar")
            .arg("-czf")
            .arg(work.join("db.tar.gz"))
            .arg("-C")
            .arg(db_dir)
            .args(["trivy.db", "metadata.json"])
            .status()
            .unwrap();
        assert!(tar.success());
        let oras = std::env::var("ARCA_TEST_ORAS").expect("ARCA_TEST_ORAS: run the tests through `make test`");
        let out = Command::new(oras)
            .args(["push", "--plain-http", &self.repository()])
            .args(["--artifact-type", "application/vnd.aquasec.trivy.config.v1+json"])
            .arg("db.tar.gz:application/vnd.aquasec.trivy.db.layer.v1.tar+gzip")
            .current_dir(&work)
            .env("HOME", &work)
            .output()
            .unwrap();
        assert!(out.status.success(), "oras push: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn scanner(arca: &Arca, token: &str) -> Value {
    let r = arca.call(Method::GET, "/api/scanner", Some(token), None).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// Waits until `/api/scanner` satisfies `check`; returns the last state seen.
async fn wait_scanner(arca: &Arca, token: &str, within: Duration, check: impl Fn(&Value) -> bool) -> Value {
    let ok = eventually(within, || async { check(&scanner(arca, token).await) }).await;
    let last = scanner(arca, token).await;
    assert!(ok, "the scanner did not reach the expected state: {last}");
    last
}

/// A DB dir whose `metadata.json` says `updated_at` and whose `trivy.db` is not a database.
fn corrupt_db(dir: &Path, updated_at: &str) -> PathBuf {
    let out = dir.join(format!("corrupt-{updated_at}").replace(':', "-"));
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("trivy.db"), vec![0x5a; 64 * 1024]).unwrap();
    let meta = serde_json::json!({
        "Version": 2, "NextUpdate": "2099-01-01T00:00:00Z", "UpdatedAt": updated_at, "DownloadedAt": updated_at,
    });
    std::fs::write(out.join("metadata.json"), meta.to_string()).unwrap();
    out
}

/// 11.2: first download, an update that rescans, corrupt and older DBs refused with the
/// old DB serving, and the registry down: old DB kept, error reported.
#[tokio::test]
async fn the_vulnerability_db_is_downloaded_checked_and_kept_fresh() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start(&dir.path().join("registry")).await;
    let trivy = Trivy::from_env();
    let first = dir.path().join("db-first");
    trivy.build_db(&first, "2026-01-01T00:00:00Z", &["base.yaml"]);
    registry.push(&first);

    // No DB at all: Arca downloads one at start-up, then looks again every 2 s.
    let cache = dir.path().join("empty-cache");
    let arca = Arca::builder(dir.path(), Backend::Sqlite)
        .await
        .env("ARCA_TRIVY_CACHE_DIR", cache.to_str().unwrap())
        .env("ARCA_TRIVY_DB_REPOSITORY", &registry.repository())
        .env("ARCA_TRIVY_DB_INSECURE", "true")
        .env("ARCA_TRIVY_DB_UPDATE_INTERVAL", "2s")
        .env("ARCA_POLICY_RECHECK_SECS", "1")
        .start()
        .await;
    let admin = arca.login("admin", ADMIN_PASSWORD).await;
    let state =
        wait_scanner(&arca, &admin, Duration::from_secs(60), |s| s["db_updated_at"] == "2026-01-01T00:00:00Z").await;
    assert!(state["last_update_error"].is_null(), "{state}");
    assert!(std::fs::symlink_metadata(cache.join("db")).unwrap().file_type().is_symlink(), "swapped in as a link");
    let (id, done) = submit(&arca, &admin, "app", "app", go_binary(dir.path(), "v0.3.8")).await;
    assert_eq!(done["status"], "approved", "{done}");

    // An update: the newer DB knows a vulnerability in the approved artifact, which is rescanned.
    let newer = dir.path().join("db-newer");
    trivy.build_db(&newer, "2026-06-01T00:00:00Z", &["base.yaml", "newer.yaml"]);
    registry.push(&newer);
    wait_scanner(&arca, &admin, Duration::from_secs(60), |s| s["db_updated_at"] == "2026-06-01T00:00:00Z").await;
    assert!(
        eventually(Duration::from_secs(60), || async {
            status_of(&arca, &admin, &id).await["status"] == "quarantined"
        })
        .await,
        "the approved artifact was not rescanned with the downloaded DB: {}",
        status_of(&arca, &admin, &id).await
    );
    let a = status_of(&arca, &admin, &id).await;
    assert!(a["status_reason"].as_str().unwrap().contains("ARCA-TEST-0001"), "{a}");
    assert_eq!(a["scan"]["db_updated_at"], "2026-06-01T00:00:00Z");
    assert_eq!(download_status(&arca, &admin, &id).await, 409);

    // A corrupt DB (newer by its metadata) is refused; the DB in use keeps serving.
    registry.push(&corrupt_db(dir.path(), "2026-07-01T00:00:00Z"));
    let state = wait_scanner(&arca, &admin, Duration::from_secs(60), |s| !s["last_update_error"].is_null()).await;
    assert_eq!(state["db_updated_at"], "2026-06-01T00:00:00Z", "{state}");
    let clean = tar_gz(&[("README", b"nothing to see")]);
    let (_, done) = submit(&arca, &admin, "clean-after-corrupt", "clean.tar.gz", clean.clone()).await;
    assert_eq!(done["status"], "approved", "the old DB still scans: {done}");

    // An older DB is refused too.
    let older = dir.path().join("db-older");
    trivy.build_db(&older, "2025-01-01T00:00:00Z", &["base.yaml"]);
    registry.push(&older);
    let state = wait_scanner(&arca, &admin, Duration::from_secs(60), |s| {
        s["last_update_error"].as_str().is_some_and(|e| e.contains("older than the DB in use"))
    })
    .await;
    assert_eq!(state["db_updated_at"], "2026-06-01T00:00:00Z", "{state}");

    // The registry down: the error says so, the DB stays, scans go on.
    drop(registry);
    let state = wait_scanner(&arca, &admin, Duration::from_secs(60), |s| {
        s["last_update_error"].as_str().is_some_and(|e| e.contains("downloading the vulnerability DB failed"))
    })
    .await;
    assert_eq!(state["db_updated_at"], "2026-06-01T00:00:00Z", "{state}");
    let (_, done) = submit(&arca, &admin, "clean-registry-down", "clean.tar.gz", clean).await;
    assert_eq!(done["status"], "approved", "{done}");
    let logs = arca.stdout.text();
    assert!(logs.contains("vulnerability DB update failed; the DB in use stays"), "the failure is logged");
}

/// Starts a server with no vulnerability DB and no download (air-gapped): scans fail as
/// "scanner unavailable", retryable.
async fn without_a_db(dir: &Path, recheck_secs: &str) -> (Arca, String, PathBuf) {
    let cache = dir.join("no-db-cache");
    let arca = Arca::builder(dir, Backend::Sqlite)
        .await
        .env("ARCA_TRIVY_CACHE_DIR", cache.to_str().unwrap())
        .env("ARCA_TRIVY_DB_UPDATE_INTERVAL", "0")
        .env("ARCA_POLICY_RECHECK_SECS", recheck_secs)
        .start()
        .await;
    let admin = arca.login("admin", ADMIN_PASSWORD).await;
    (arca, admin, cache)
}

fn import_db(cache: &Path) {
    let out = Command::new(crate::helpers::bin("arca"))
        .args(["admin", "trivy-db-import"])
        .arg(&Trivy::from_env().db)
        .arg("--cache-dir")
        .arg(cache)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

async fn failed_for_want_of_a_db(arca: &Arca, admin: &str, name: &str) -> String {
    let (id, done) = submit(arca, admin, name, "app.tar.gz", tar_gz(&[("bin/tool", b"#!/bin/sh\necho hi\n")])).await;
    assert_eq!(done["status"], "failed", "{done}");
    let reason = done["status_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("scanner unavailable") && reason.contains("can be scanned again"), "{done}");
    let a = status_of(arca, admin, &id).await;
    let rules: Vec<&str> = a["policy_reasons"].as_array().unwrap().iter().filter_map(|r| r["rule"].as_str()).collect();
    assert_eq!(rules, ["scanner_unavailable"], "not a refusal of the artifact: {a}");
    assert_eq!(a["retryable"], true, "{a}");
    assert_eq!(download_status(arca, admin, &id).await, 409);
    id
}

/// 11.3: failed because the DB was missing → approved once a DB arrives, with no action.
#[tokio::test]
async fn a_scan_that_failed_for_want_of_a_db_is_retried_when_the_db_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let (arca, admin, cache) = without_a_db(dir.path(), "1").await;
    let id = failed_for_want_of_a_db(&arca, &admin, "waits-for-db").await;
    import_db(&cache);
    assert!(
        eventually(Duration::from_secs(60), || async { status_of(&arca, &admin, &id).await["status"] == "approved" })
            .await,
        "not retried after the DB arrived: {}",
        status_of(&arca, &admin, &id).await
    );
    let r = arca.call(Method::GET, &format!("/api/artifacts/{id}/download"), Some(&admin), None).await;
    assert_eq!(r.status(), 200, "the retried artifact is downloadable");
}

/// 11.3: … and by hand, with `arca rescan NAME@VERSION` (no automatic retry meanwhile).
#[tokio::test]
async fn a_scan_that_failed_for_want_of_a_db_is_retried_by_arca_rescan() {
    let dir = tempfile::tempdir().unwrap();
    let (arca, admin, cache) = without_a_db(dir.path(), "3600").await;
    let id = failed_for_want_of_a_db(&arca, &admin, "by-hand").await;
    import_db(&cache);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(status_of(&arca, &admin, &id).await["status"], "failed", "no automatic retry within the hour");
    let cli = Cli { dir: dir.path().join("cli") };
    std::fs::create_dir_all(&cli.dir).unwrap();
    cli.login(&arca);
    let out = cli.run(&["--output", "json", "rescan", "by-hand@1.0.0", "--wait"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["status"], "approved", "{result}");
}
