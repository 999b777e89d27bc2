//! Issue 5: real Trivy with the fixture DB. Go binaries, secrets, lockfiles, images and
//! SBOMs; hostile archives; deadlines; exceptions that expire; rescans on a new DB; crash
//! safety of the scan pipeline.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::artifacts::{complete, create, put, sha256_hex, status_of, wait_final};
use crate::helpers::{eventually, Arca, Backend, Trivy, ADMIN_PASSWORD};

/// Uploads `bytes` as `name` (file name `filename`), completes, and waits for the outcome.
pub(crate) async fn submit(arca: &Arca, token: &str, name: &str, filename: &str, bytes: Vec<u8>) -> (String, Value) {
    let options = arca_client::PushOptions {
        filename: Some(filename.to_owned()),
        resume: false,
        wait: Some(Duration::from_secs(60)),
        ..Default::default()
    };
    let source = arca_client::Source::bytes(bytes);
    let done =
        arca.api(Some(token)).push(name, "1.0.0", &source, &options).await.unwrap_or_else(|e| panic!("{name}: {e}"));
    (done.id.clone(), serde_json::to_value(done).unwrap())
}

async fn results(arca: &Arca, token: &str, id: &str) -> Value {
    let r = arca.call(Method::GET, &format!("/api/artifacts/{id}/scan-results"), Some(token), None).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

fn vuln_ids(results: &Value) -> Vec<String> {
    results["findings"]["vulnerabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_owned())
        .collect()
}

pub(crate) async fn download_status(arca: &Arca, token: &str, id: &str) -> u16 {
    arca.call(Method::GET, &format!("/api/artifacts/{id}/download"), Some(token), None).await.status().as_u16()
}

/// Builds a Go program that uses golang.org/x/text at `version` (module info embedded).
pub(crate) fn go_binary(dir: &Path, text_version: &str) -> Vec<u8> {
    let module = dir.join(format!("gomod-{text_version}"));
    std::fs::create_dir_all(&module).unwrap();
    std::fs::write(
        module.join("go.mod"),
        format!("module example.com/app\n\ngo 1.22\n\nrequire golang.org/x/text {text_version}\n"),
    )
    .unwrap();
    std::fs::write(
        module.join("main.go"),
        "package main\n\nimport (\n\t\"fmt\"\n\n\t\"golang.org/x/text/language\"\n)\n\nfunc main() { fmt.Println(language.English) }\n",
    )
    .unwrap();
    for args in [&["mod", "tidy"][..], &["build", "-trimpath", "-o", "app", "."][..]] {
        let out = Command::new("go").args(args).current_dir(&module).env("CGO_ENABLED", "0").output().unwrap();
        assert!(out.status.success(), "go {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    std::fs::read(module.join("app")).unwrap()
}

pub(crate) fn tar_gz(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    for (name, data) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o755);
        header.set_cksum();
        builder.append_data(&mut header, name, *data).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

/// Trivy on the fixture DB: 1) Go binaries by their embedded module versions.
#[tokio::test]
async fn go_binaries_are_judged_by_their_modules() {
    let dir = tempfile::tempdir().unwrap();
    let arca = Arca::builder(dir.path(), Backend::Sqlite).await.start().await;
    let admin = arca.login("admin", ADMIN_PASSWORD).await;
    let (bad, done) = submit(&arca, &admin, "app-old", "app", go_binary(dir.path(), "v0.3.7")).await;
    assert_eq!(done["status"], "quarantined", "{done}");
    assert!(done["status_reason"].as_str().unwrap().contains("CVE-2022-32149"), "{done}");
    assert_eq!(done["policy_reasons"][0]["rule"], "max_severity");
    assert_eq!(done["policy_reasons"][0]["finding"], "CVE-2022-32149");
    let mut uploaded = done["size"].as_u64().unwrap();
    assert_eq!(done["scan"]["summary"]["high"], 1);
    assert_eq!(done["scan"]["trivy_version"], "0.74.0");
    assert_eq!(done["scan"]["db_updated_at"], "2026-01-01T00:00:00Z");
    let r = results(&arca, &admin, &bad).await;
    assert_eq!(vuln_ids(&r), ["CVE-2022-32149"]);
    let v = &r["findings"]["vulnerabilities"][0];
    assert_eq!(
        (v["package"].as_str(), v["installed"].as_str(), v["fixed"].as_str()),
        (Some("golang.org/x/text"), Some("v0.3.7"), Some("0.3.8"))
    );
    assert_eq!(v["cvss_score"], 7.5);
    assert_eq!(download_status(&arca, &admin, &bad).await, 409);

    let (good, done) = submit(&arca, &admin, "app-new", "app", go_binary(dir.path(), "v0.3.8")).await;
    assert_eq!(done["status"], "approved", "{done}");
    uploaded += done["size"].as_u64().unwrap();
    assert!(vuln_ids(&results(&arca, &admin, &good).await).is_empty());
    assert_eq!(download_status(&arca, &admin, &good).await, 200);
    let policy: Value = arca.call(Method::GET, "/api/policy", Some(&admin), None).await.json().await.unwrap();
    assert_eq!(policy["max_severity"], "MEDIUM");
    let metrics = arca.call(Method::GET, "/api/metrics", Some(&admin), None).await.text().await.unwrap();
    assert!(metrics.contains("arca_scan_outcomes_total{outcome=\"quarantined\"} 1"), "{metrics}");
    assert!(metrics.contains("arca_scan_duration_seconds_count 2"));
    assert!(metrics.contains(&format!("arca_upload_bytes_total {uploaded}")), "{metrics}");
}

/// 2) An AWS key pair in a tar.gz quarantines it; the key never comes back from the API.
#[tokio::test]
async fn secrets_quarantine_and_are_never_returned() {
    let dir = tempfile::tempdir().unwrap();
    let arca = Arca::builder(dir.path(), Backend::Sqlite).await.start().await;
    let admin = arca.login("admin", ADMIN_PASSWORD).await;
    let key_id = "AKIA2E0A8F3B244C9986";
    let secret = "Lw0kz8D3qT9mY5vR1nX7pJ2cB6hF4gK0sA3eW8uZ";
    let file = format!("[default]\naws_access_key_id = {key_id}\naws_secret_access_key = {secret}\n");
    let (id, done) =
        submit(&arca, &admin, "leaky", "leaky.tar.gz", tar_gz(&[("app/config/credentials", file.as_bytes())])).await;
    assert_eq!(done["status"], "quarantined", "{done}");
    let r = results(&arca, &admin, &id).await;
    let secrets = r["findings"]["secrets"].as_array().unwrap();
    assert!(!secrets.is_empty(), "{r}");
    assert!(secrets.iter().any(|s| s["rule"] == "aws-access-key-id"), "{r}");
    assert_eq!(secrets[0]["file"], "app/config/credentials");
    assert!(done["policy_reasons"].as_array().unwrap().iter().any(|p| p["rule"] == "secret"));
    let everything = format!(
        "{r}{done}{}",
        arca.call(Method::GET, "/api/audit-logs?format=ndjson", Some(&admin), None).await.text().await.unwrap()
    );
    for leaked in [key_id, secret, &key_id[4..], &secret[..20]] {
        assert!(!everything.contains(leaked), "the API returned secret material {leaked}");
    }
}

/// 3) A zip with a Cargo.lock, an OCI image tarball built here, and a CycloneDX SBOM.
#[tokio::test]
async fn lockfiles_images_and_sboms() {
    let dir = tempfile::tempdir().unwrap();
    let arca = Arca::builder(dir.path(), Backend::Sqlite).await.start().await;
    let admin = arca.login("admin", ADMIN_PASSWORD).await;

    let lock = "version = 3\n\n[[package]]\nname = \"demo\"\nversion = \"0.1.0\"\ndependencies = [\"smallvec\"]\n\n[[package]]\nname = \"smallvec\"\nversion = \"1.6.0\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\n";
    let mut zip_bytes = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut zip_bytes);
        let options = zip::write::SimpleFileOptions::default();
        zip.start_file("demo/Cargo.lock", options).unwrap();
        zip.write_all(lock.as_bytes()).unwrap();
        zip.start_file("demo/README", options).unwrap();
        zip.write_all(b"demo").unwrap();
        zip.finish().unwrap();
    }
    let (id, done) = submit(&arca, &admin, "lock-zip", "demo.zip", zip_bytes.into_inner()).await;
    assert_eq!(done["status"], "quarantined", "{done}");
    assert_eq!(done["scan"]["kind"], "zip");
    assert_eq!(vuln_ids(&results(&arca, &admin, &id).await), ["CVE-2021-25900"]);
    assert_eq!(done["scan"]["summary"]["critical"], 1);

    let image = oci_image(&go_binary(dir.path(), "v0.3.7"));
    let (id, done) = submit(&arca, &admin, "image", "image.tar", image).await;
    assert_eq!(done["scan"]["kind"], "image", "{done}");
    assert_eq!(done["status"], "quarantined", "{done}");
    assert_eq!(vuln_ids(&results(&arca, &admin, &id).await), ["CVE-2022-32149"]);

    let sbom = json!({
        "bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
        "metadata": {"component": {"type": "application", "name": "demo", "bom-ref": "demo"}},
        "components": [{"type": "library", "name": "golang.org/x/text", "version": "v0.3.7",
                        "purl": "pkg:golang/golang.org/x/text@v0.3.7", "bom-ref": "pkg:golang/golang.org/x/text@v0.3.7"}],
    });
    let (id, done) = submit(&arca, &admin, "sbom", "bom.cdx.json", sbom.to_string().into_bytes()).await;
    assert_eq!(done["scan"]["kind"], "sbom", "{done}");
    assert_eq!(vuln_ids(&results(&arca, &admin, &id).await), ["CVE-2022-32149"]);
}

/// An OCI image layout tarball with one layer holding `usr/local/bin/app`.
fn oci_image(binary: &[u8]) -> Vec<u8> {
    let mut layer_tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(binary.len() as u64);
    header.set_mode(0o755);
    header.set_cksum();
    layer_tar.append_data(&mut header, "usr/local/bin/app", binary).unwrap();
    let layer_tar = layer_tar.into_inner().unwrap();
    let diff_id = hex::encode(Sha256::digest(&layer_tar));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&layer_tar).unwrap();
    let layer = gz.finish().unwrap();
    let config = json!({"architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{diff_id}")]}})
    .to_string();
    let digest = |b: &[u8]| hex::encode(Sha256::digest(b));
    let manifest = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": format!("sha256:{}", digest(config.as_bytes())), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": format!("sha256:{}", digest(&layer)), "size": layer.len()}]})
    .to_string();
    let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": format!("sha256:{}", digest(manifest.as_bytes())), "size": manifest.len(),
                       "annotations": {"org.opencontainers.image.ref.name": "demo:1"}}]})
    .to_string();
    let mut out = tar::Builder::new(Vec::new());
    let mut add = |name: String, data: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        out.append_data(&mut header, name, data).unwrap();
    };
    add("oci-layout".into(), br#"{"imageLayoutVersion":"1.0.0"}"#);
    add("index.json".into(), index.as_bytes());
    add(format!("blobs/sha256/{}", digest(manifest.as_bytes())), manifest.as_bytes());
    add(format!("blobs/sha256/{}", digest(config.as_bytes())), config.as_bytes());
    add(format!("blobs/sha256/{}", digest(&layer)), &layer);
    out.into_inner().unwrap()
}

/// A stand-in for Trivy that never finishes (a hung scanner cannot be provoked otherwise).
/// Each scan it is asked for starts a child, and both write their PIDs to `pids` (one per
/// line), so that the test can check that the whole process group was killed.
fn hanging_trivy(dir: &Path, pids: &Path) -> PathBuf {
    let path = dir.join("hanging-trivy");
    let script = format!(
        "#!/bin/sh\n[ \"$1\" = --version ] && exec sleep 300\necho $$ >> {pids}\nsleep 300 &\necho $! >> {pids}\nwait\n",
        pids = pids.display()
    );
    std::fs::write(&path, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Trivy reads hostile input, so it gets none of the server's environment: every run of it
/// (the version probe, the DB check, each scan) sees only PATH, HOME and TMPDIR, never the
/// secrets or proxy settings the server was started with (removing an `env_clear()` in
/// core::scan fails this; the version probe had none).
#[tokio::test]
async fn trivy_gets_none_of_the_servers_environment() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("trivy-env.log");
    let wrapper = dir.path().join("trivy");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\n{{ echo \"=== $*\"; env; }} >> {log}\nexec {real} \"$@\"\n",
            log = log.display(),
            real = Trivy::from_env().bin.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let arca = Arca::builder(dir.path(), Backend::Sqlite)
        .await
        .env("ARCA_TRIVY", wrapper.to_str().unwrap())
        .env("AWS_SECRET_ACCESS_KEY", "leaked-aws-secret")
        .env("GITHUB_TOKEN", "leaked-github-token")
        .env("HTTPS_PROXY", "http://leaked-proxy:3128")
        .env("TRIVY_PASSWORD", "leaked-registry-password")
        .start()
        .await;
    let admin = arca.login("admin", ADMIN_PASSWORD).await;
    let (_, done) = submit(&arca, &admin, "env-probe", "probe.bin", b"plain bytes".to_vec()).await;
    assert_eq!(done["status"], "approved", "{done}");
    let seen = std::fs::read_to_string(&log).unwrap();
    let runs = seen.matches("=== ").count();
    let scanned = ["=== rootfs", "=== image", "=== sbom"].iter().any(|run| seen.contains(run));
    assert!(seen.contains("=== --version") && scanned, "Trivy's runs: {seen}");
    for secret in ["leaked-", ADMIN_PASSWORD, "ARCA_", "DATABASE_URL"] {
        assert!(!seen.contains(secret), "Trivy saw {secret} in one of its {runs} runs:\n{seen}");
    }
    println!("{runs} runs of Trivy, none with the server's environment");
}

/// A Trivy whose report is not a SchemaVersion 2 report (`{}`, or not JSON at all) fails
/// the scan closed: the artifact is never approved (it parsed as "no findings" before).
#[tokio::test]
async fn a_report_that_is_not_trivys_fails_closed() {
    let dir = tempfile::tempdir().unwrap();
    let wrapper = dir.path().join("trivy");
    // The real Trivy for everything but a scan, whose --output gets the file named in
    // `report-content` next to it.
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nout=\nprev=\nfor a in \"$@\"; do [ \"$prev\" = --output ] && out=$a; prev=$a; done\n\
             if [ -n \"$out\" ]; then cat {content} > \"$out\"; exit 0; fi\nexec {real} \"$@\"\n",
            content = dir.path().join("report-content").display(),
            real = Trivy::from_env().bin.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let arca = Arca::builder(dir.path(), Backend::Sqlite)
        .await
        .env("ARCA_TRIVY", wrapper.to_str().unwrap())
        .env("ARCA_SCAN_ATTEMPTS", "1")
        .start()
        .await;
    let admin = arca.login("admin", ADMIN_PASSWORD).await;
    for (i, content) in ["{}", "this is not JSON", "{\"SchemaVersion\": 1, \"Results\": []}"].iter().enumerate() {
        std::fs::write(dir.path().join("report-content"), content).unwrap();
        let (_, done) =
            submit(&arca, &admin, &format!("odd-report-{i}"), "x.bin", format!("bytes {i}").into_bytes()).await;
        assert_ne!(done["status"], "approved", "a report of {content:?} approved the artifact: {done}");
        assert_eq!(done["status"], "failed", "{content:?}: {done}");
    }
}

/// Whether a process runs (a zombie waiting for its parent does not).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit(')').next().map(|rest| !rest.trim_start().starts_with('Z')))
        .unwrap_or(false)
}

/// 4) A scan past its deadline is killed (with its children), retried, then the artifact
/// fails and stays non-downloadable; the queue keeps moving.
#[tokio::test]
async fn scans_past_their_deadline_fail_closed() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("scanner-pids");
    let trivy = hanging_trivy(dir.path(), &pids);
    let arca = Arca::builder(dir.path(), Backend::Sqlite)
        .await
        .env("ARCA_TRIVY", trivy.to_str().unwrap())
        .env("ARCA_SCAN_TIMEOUT", "1")
        .env("ARCA_SCAN_ATTEMPTS", "2")
        .start()
        .await;
    let admin = arca.login("admin", ADMIN_PASSWORD).await;
    let started = std::time::Instant::now();
    let first = submit(&arca, &admin, "slow-1", "a.bin", b"one".to_vec());
    let second = submit(&arca, &admin, "slow-2", "b.bin", b"two".to_vec());
    let ((a, done_a), (b, done_b)) = tokio::join!(first, second);
    for done in [&done_a, &done_b] {
        assert_eq!(done["status"], "failed", "{done}");
        assert!(done["status_reason"].as_str().unwrap().contains("deadline"), "{done}");
    }
    assert!(started.elapsed() < Duration::from_secs(25), "took {:?}", started.elapsed());
    for id in [&a, &b] {
        assert_eq!(download_status(&arca, &admin, id).await, 409);
        let r = results(&arca, &admin, id).await;
        assert_eq!(r["scan"]["status"], "failed");
    }
    // Two artifacts, two attempts each: four scanner runs, each with a child; all gone.
    let recorded: Vec<u32> =
        std::fs::read_to_string(&pids).unwrap().lines().map(|l| l.trim().parse().unwrap()).collect();
    assert_eq!(recorded.len(), 8, "scanner runs and their children: {recorded:?}");
    let survived = || recorded.iter().copied().filter(|pid| running(*pid)).collect::<Vec<u32>>();
    assert!(
        eventually(Duration::from_secs(5), || async { survived().is_empty() }).await,
        "scanner processes survived their deadline: {:?}",
        survived()
    );
    let metrics = arca.call(Method::GET, "/api/metrics", Some(&admin), None).await.text().await.unwrap();
    assert!(metrics.contains("arca_scanner_failures_total 4"), "two attempts each: {metrics}");
}

/// 5) A short exception approves a quarantined artifact; when it expires the artifact is
/// quarantined again on its own.
#[tokio::test]
async fn exceptions_expire() {
    let dir = tempfile::tempdir().unwrap();
    let arca = Arca::builder(dir.path(), Backend::Postgres).await.env("ARCA_POLICY_RECHECK_SECS", "1").start().await;
    let admin = arca.login("admin", ADMIN_PASSWORD).await;
    let (id, done) = submit(&arca, &admin, "app", "app", go_binary(dir.path(), "v0.3.7")).await;
    assert_eq!(done["status"], "quarantined");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let bad = arca
        .call(Method::POST, "/api/exceptions", Some(&admin), Some(json!({"artifact_id": id, "vulnerability_id": "CVE-2022-32149", "justification": "short", "expires_at": now + 4000})))
        .await;
    assert_eq!(bad.status(), 400, "a justification is required");
    let r = arca
        .call(Method::POST, "/api/exceptions", Some(&admin), Some(json!({"artifact_id": id, "vulnerability_id": "CVE-2022-32149", "justification": "not reachable: no Accept-Language parsing", "expires_at": now + 4000})))
        .await;
    assert_eq!(r.status(), 201);
    // Passing now: signed, then approved (within the exception's 4 s).
    assert!(
        eventually(Duration::from_secs(3), || async { status_of(&arca, &admin, &id).await["status"] == "approved" })
            .await
    );
    assert_eq!(download_status(&arca, &admin, &id).await, 200);
    let listed: Value = arca.call(Method::GET, "/api/exceptions", Some(&admin), None).await.json().await.unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(
        eventually(Duration::from_secs(15), || async {
            status_of(&arca, &admin, &id).await["status"] == "quarantined"
        })
        .await,
        "the artifact was not quarantined again after its exception expired"
    );
    assert_eq!(download_status(&arca, &admin, &id).await, 409);
    // A manual release with a justification approves it (audited).
    let r = arca
        .call(
            Method::POST,
            &format!("/api/artifacts/{id}/release"),
            Some(&admin),
            Some(json!({"justification": "accepted risk, ticket SEC-42"})),
        )
        .await;
    assert_eq!(r.status(), 200);
    // Released: signed, then approved.
    let approved =
        eventually(Duration::from_secs(15), || async { status_of(&arca, &admin, &id).await["status"] == "approved" })
            .await;
    assert!(approved, "{}", status_of(&arca, &admin, &id).await);
    assert_eq!(download_status(&arca, &admin, &id).await, 200);
    let audit = arca.call(Method::GET, "/api/audit-logs?format=ndjson", Some(&admin), None).await.text().await.unwrap();
    assert!(audit.contains("artifacts.release") && audit.contains("SEC-42"));
    assert!(audit.contains("exceptions.create"));
}

/// 6) A newer DB that adds an advisory flips an approved artifact to quarantined.
#[tokio::test]
async fn a_new_vulnerability_db_rescans_approved_artifacts() {
    let dir = tempfile::tempdir().unwrap();
    let arca = Arca::builder(dir.path(), Backend::Sqlite).await.env("ARCA_POLICY_RECHECK_SECS", "1").start().await;
    let admin = arca.login("admin", ADMIN_PASSWORD).await;
    let (id, done) = submit(&arca, &admin, "app", "app", go_binary(dir.path(), "v0.3.8")).await;
    assert_eq!(done["status"], "approved");
    let trivy = Trivy::from_env();
    let newer = dir.path().join("newer-db");
    trivy.build_db(&newer, "2026-06-01T00:00:00Z", &["base.yaml", "newer.yaml"]);
    let out = Command::new(crate::helpers::bin("arca"))
        .args(["admin", "trivy-db-import"])
        .arg(&newer)
        .arg("--cache-dir")
        .arg(dir.path().join("trivy-cache"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        eventually(Duration::from_secs(20), || async {
            status_of(&arca, &admin, &id).await["status"] == "quarantined"
        })
        .await,
        "the approved artifact was not rescanned with the new DB"
    );
    let a = status_of(&arca, &admin, &id).await;
    assert!(a["status_reason"].as_str().unwrap().contains("ARCA-TEST-0001"), "{a}");
    assert_eq!(a["scan"]["db_updated_at"], "2026-06-01T00:00:00Z");
    assert_eq!(download_status(&arca, &admin, &id).await, 409);
}

/// 7) `kill -9` during a scan: after restart the scan completes exactly once.
#[tokio::test]
async fn a_crash_during_a_scan_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let real = Trivy::from_env().bin;
    let slow = dir.path().join("slow-trivy");
    let started_flag = dir.path().join("scan-started");
    std::fs::write(
        &slow,
        format!("#!/bin/sh\ntouch {}\nsleep 3\nexec {} \"$@\"\n", started_flag.display(), real.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&slow, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut arca =
        Arca::builder(dir.path(), Backend::Sqlite).await.env("ARCA_TRIVY", slow.to_str().unwrap()).start().await;
    let admin = arca.login("admin", ADMIN_PASSWORD).await;
    let bytes = go_binary(dir.path(), "v0.3.7");
    let (id, url) = create(&arca, &admin, "crashy", bytes.len() as u64, &sha256_hex(&bytes)).await;
    assert_eq!(put(&arca, &url, bytes).await.status(), 200);
    assert_eq!(complete(&arca, &admin, &id).await.status(), 200);
    assert!(eventually(Duration::from_secs(20), || async { started_flag.exists() }).await);
    arca.kill9();
    let arca = arca.start_again().await;
    let admin = arca.login("admin", ADMIN_PASSWORD).await;
    let done = wait_final(&arca, &admin, &id).await;
    assert_eq!(done["status"], "quarantined", "{done}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pool =
        sqlx::SqlitePool::connect(&format!("sqlite://{}", arca.data_dir.join("arca.db").display())).await.unwrap();
    let scans: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM scans WHERE artifact_id = $1")
        .bind(&id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(scans, 1, "one result set");
    let events: Vec<String> =
        sqlx::query_scalar("SELECT event_type FROM outbox WHERE artifact_id = $1 ORDER BY created_at, rowid")
            .bind(&id)
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        events,
        [
            "dev.arca.artifact.uploading",
            "dev.arca.artifact.verifying",
            "dev.arca.artifact.uploaded",
            "dev.arca.artifact.quarantined"
        ],
        "each event once"
    );
    let undelivered: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL AND artifact_id = $1")
            .bind(&id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(
        eventually(Duration::from_secs(5), || async {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL AND artifact_id = $1")
                .bind(&id)
                .fetch_one(&pool)
                .await
                .unwrap()
                == 0
        })
        .await,
        "{undelivered} events not delivered"
    );
}

/// Events whose handler keeps failing are dead-lettered: listed in the API and counted in
/// the metrics, and the artifact stays non-downloadable.
#[tokio::test]
async fn failing_handlers_dead_letter_their_events() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken-trivy");
    std::fs::write(&broken, "#!/bin/sh\necho 'scanner exploded' >&2\nexit 3\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&broken, std::fs::Permissions::from_mode(0o755)).unwrap();
    let arca = Arca::builder(dir.path(), Backend::Sqlite)
        .await
        .env("ARCA_TRIVY", broken.to_str().unwrap())
        .env("ARCA_SCAN_ATTEMPTS", "100")
        .env("ARCA_EVENT_RETRY_BASE_MS", "20")
        .start()
        .await;
    let admin = arca.login("admin", ADMIN_PASSWORD).await;
    let bytes = b"some bytes".to_vec();
    let (id, url) = create(&arca, &admin, "doomed", bytes.len() as u64, &sha256_hex(&bytes)).await;
    assert_eq!(put(&arca, &url, bytes).await.status(), 200);
    assert_eq!(complete(&arca, &admin, &id).await.status(), 200);
    let listed = || async {
        arca.call(Method::GET, "/api/events/dead-letters", Some(&admin), None).await.json::<Value>().await.unwrap()
    };
    assert!(
        eventually(Duration::from_secs(30), || async { !listed().await.as_array().unwrap().is_empty() }).await,
        "the event was not dead-lettered"
    );
    let dead = listed().await;
    assert_eq!(dead[0]["artifact_id"], id.as_str());
    assert_eq!(dead[0]["event_type"], "dev.arca.artifact.uploaded");
    assert_eq!(dead[0]["attempts"], 8);
    assert!(dead[0]["last_error"].as_str().unwrap().contains("scanner exploded"), "{dead}");
    let metrics = arca.call(Method::GET, "/api/metrics", Some(&admin), None).await.text().await.unwrap();
    assert!(metrics.contains("arca_outbox_dead_letters_total 1"), "{metrics}");
    assert_eq!(status_of(&arca, &admin, &id).await["status"], "scanning");
    assert_eq!(download_status(&arca, &admin, &id).await, 409);
}
