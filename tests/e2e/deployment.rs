//! The deployment as it is written: every function binary started with exactly what its
//! Knative Service gets from `knative/` — claims proven here:
//! - each Service's env (values, ConfigMaps, Secrets), its Secret/ConfigMap files and its
//!   writable dirs, resolved by `tools/kval env` from `kubectl kustomize knative/overlays/kind`
//!   and the Secrets `kind-setup.sh --emit-secrets` generates, start its binary, which becomes
//!   ready and warns of no secret it does not use; the migration Job's command migrates;
//! - a Service that lacks a variable its function needs, refers to a Secret key that does not
//!   exist, or mounts a Secret no setting points into, fails (tests/fixtures/env/).
//!
//! What the cluster itself would provide is stood in for, and nothing else: the API server's
//! JWKS and issuer (a key made here), cert-manager's Secret for the `arca-signing`
//! Certificate (a CA made here issues it, shaped as cert-manager's CA issuer writes it:
//! `tls.crt` the leaf, `tls.key`, `ca.crt` the CA), the cluster's DNS (the PostgreSQL and
//! MinIO Service addresses point at the test's servers, and DATABASE_URL at a fresh database
//! of the test's PostgreSQL), the image's Trivy, and the container's filesystem (every path
//! of a mount lives under one temporary root).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::{json, Value};

use crate::helpers::{bin, free_port, fresh_pg_database, repo_root, Minio, Trivy};

const PG_SERVICE: &str = "postgres://arca";
const MINIO_SERVICE: &str = "http://minio.arca-data.svc.cluster.local:9000";

/// The rendered deployment, resolved per workload.
struct Rendered {
    _dir: tempfile::TempDir,
    inputs: Vec<PathBuf>,
}

impl Rendered {
    /// Renders `knative/overlays/kind`, generates the Secrets as kind-setup.sh does, and
    /// makes the stand-ins for what the cluster provides.
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = repo_root();
        let render = dir.path().join("render.yaml");
        let out = Command::new("kubectl").args(["kustomize", "knative/overlays/kind"]).current_dir(&root).output();
        let out = out.expect("kubectl is needed (make test installs it)");
        assert!(out.status.success(), "kubectl kustomize: {}", String::from_utf8_lossy(&out.stderr));
        std::fs::write(&render, &out.stdout).unwrap();

        // The API server's service-account key set and issuer (Knative's OIDC sender tokens).
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let raw = key.public_key_raw();
        let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "api-server", "alg": "ES256", "use": "sig",
            "x": URL_SAFE_NO_PAD.encode(&raw[1..33]), "y": URL_SAFE_NO_PAD.encode(&raw[33..65])}]});
        let jwks_file = dir.path().join("jwks.json");
        std::fs::write(&jwks_file, jwks.to_string()).unwrap();
        let secrets = dir.path().join("secrets.yaml");
        let out = Command::new(root.join("kind-setup.sh"))
            .args(["--emit-secrets", jwks_file.to_str().unwrap(), "https://kubernetes.default.svc.cluster.local"])
            .output()
            .unwrap();
        assert!(out.status.success(), "kind-setup.sh --emit-secrets: {}", String::from_utf8_lossy(&out.stderr));
        std::fs::write(&secrets, &out.stdout).unwrap();

        let cert_manager = dir.path().join("cert-manager.yaml");
        std::fs::write(&cert_manager, signing_secret()).unwrap();
        Self { inputs: vec![render, secrets, cert_manager], _dir: dir }
    }

    /// `kval env` over the inputs (with a fixture's patch): the workloads, or its problems.
    fn workloads(&self, patch: Option<&Path>) -> Result<Vec<Value>, String> {
        let kval =
            std::env::var("ARCA_TEST_KVAL").expect("ARCA_TEST_KVAL is not set: run the tests through `make test`");
        let mut command = Command::new(kval);
        command.arg("env");
        if let Some(patch) = patch {
            command.arg("-patch").arg(patch);
        }
        let out = command.args(&self.inputs).output().unwrap();
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(serde_json::from_slice(&out.stdout).unwrap())
    }
}

/// cert-manager's Secret for the Certificate `arca-signing` (knative/base/tls): a CA issuer
/// writes the leaf to `tls.crt`, its key (PKCS#8 with `privateKey.encoding: PKCS8`) to
/// `tls.key`, and the CA to `ca.crt`.
fn signing_secret() -> String {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
        PKCS_ECDSA_P256_SHA256,
    };
    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name.push(DnType::CommonName, "arca-ca");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut leaf = CertificateParams::new(Vec::<String>::new()).unwrap();
    leaf.distinguished_name.push(DnType::CommonName, "Arca artifact signing");
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
    let cert = leaf.signed_by(&key, &ca_cert, &ca_key).unwrap();
    let b64 = |s: &str| STANDARD.encode(s);
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: arca-signing\n  namespace: arca\ntype: kubernetes.io/tls\ndata:\n  tls.crt: {}\n  tls.key: {}\n  ca.crt: {}\n",
        b64(&cert.pem()),
        b64(&key.serialize_pem()),
        b64(&ca_cert.pem())
    )
}

/// The Arca function a workload runs (`kind.local/arca-<name>:…`), if any.
fn function_of(workload: &Value) -> Option<String> {
    let image = workload["image"].as_str()?;
    let name = image.strip_prefix("kind.local/arca-")?.split(':').next()?;
    let functions = ["auth", "users", "audit", "upload", "artifacts", "download", "scan", "sign", "ingest"];
    functions.contains(&name).then(|| name.to_owned())
}

/// A URL of the cluster's PostgreSQL Service, pointed at the test's database: the owner
/// (`arca`, the migrate Job's) becomes the test's own user; a function's role keeps its
/// password and gets the database's name as a suffix (roles are server-wide, and each test
/// has a database of its own).
fn local_database(rendered: &str, database_url: &str) -> String {
    let rendered = url::Url::parse(rendered.trim()).unwrap();
    if rendered.username() == "arca" {
        return database_url.to_owned();
    }
    let mut local = url::Url::parse(database_url).unwrap();
    let database = local.path().trim_start_matches('/').to_owned();
    local.set_username(&format!("{}_{database}", rendered.username())).unwrap();
    local.set_password(rendered.password()).unwrap();
    local.to_string()
}

/// A workload's process, set up as its container would be.
struct Pod {
    name: String,
    root: tempfile::TempDir,
    env: BTreeMap<String, String>,
    args: Vec<String>,
}

impl Pod {
    fn new(workload: &Value, database_url: &str) -> Self {
        let root = tempfile::tempdir().unwrap();
        let at = |path: &str| root.path().join(path.trim_start_matches('/'));
        let mut mounts: Vec<String> = Vec::new();
        for dir in workload["dirs"].as_array().into_iter().flatten() {
            let dir = dir.as_str().unwrap();
            std::fs::create_dir_all(at(dir)).unwrap();
            mounts.push(dir.to_owned());
        }
        for (path, content) in workload["files"].as_object().into_iter().flatten() {
            let file = at(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            let mut content = STANDARD.decode(content.as_str().unwrap()).unwrap();
            let text = String::from_utf8_lossy(&content).into_owned();
            if text.starts_with(PG_SERVICE) && text.contains(".svc.cluster.local") {
                content = local_database(&text, database_url).into_bytes(); // a function's role (migrate)
            }
            std::fs::write(&file, content).unwrap();
            mounts.push(Path::new(path).parent().unwrap().display().to_string());
        }
        let trivy = Trivy::from_env();
        let minio = Minio::from_env();
        let mut env = BTreeMap::new();
        for (key, value) in workload["env"].as_object().unwrap() {
            let mut value = value.as_str().unwrap().to_owned();
            if mounts.iter().any(|m| value == *m || value.starts_with(&format!("{m}/"))) {
                value = at(&value).display().to_string(); // inside a mount
            } else if value.starts_with(PG_SERVICE) && value.contains(".svc.cluster.local") {
                value = local_database(&value, database_url); // the cluster's PostgreSQL Service
            } else if value == MINIO_SERVICE {
                value = minio.endpoint.clone(); // the cluster's MinIO Service
            } else if key == "ARCA_TRIVY" {
                value = trivy.bin.display().to_string(); // the image's Trivy
            } else if value.starts_with('/') {
                // a path in the image, or a writable dir that is not mounted (read-only root)
                value = at(&value).display().to_string();
            }
            env.insert(key.clone(), value);
        }
        let args = workload["args"].as_array().into_iter().flatten().map(|a| a.as_str().unwrap().to_owned()).collect();
        Self { name: function_of(workload).unwrap(), root, env, args }
    }

    fn command(&self, port: u16) -> Command {
        let mut command = Command::new(bin(&format!("arca-fn-{}", self.name)));
        command.env_clear().envs(&self.env).env("PORT", port.to_string()).args(&self.args);
        command.env("PATH", "/usr/bin:/bin"); // the image's PATH (Trivy is found by ARCA_TRIVY)
        command
    }

    fn log(&self) -> PathBuf {
        self.root.path().join("function.log")
    }

    fn spawn(&self, port: u16) -> Child {
        let log = std::fs::File::create(self.log()).unwrap();
        self.command(port).stdout(Stdio::from(log.try_clone().unwrap())).stderr(Stdio::from(log)).spawn().unwrap()
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(self.log()).unwrap_or_default()
    }
}

/// Waits for the readiness probe; on failure, the reason (exit and the log's end).
async fn ready(pod: &Pod, child: &mut Child, port: u16, within: Duration) -> Result<Duration, String> {
    let client = reqwest::Client::new();
    let started = Instant::now();
    loop {
        let url = format!("http://127.0.0.1:{port}/health/readiness");
        if client.get(&url).send().await.is_ok_and(|r| r.status() == 200) {
            return Ok(started.elapsed());
        }
        if let Some(status) = child.try_wait().unwrap() {
            return Err(format!("{} exited ({status}): {}", pod.name, pod.log_text()));
        }
        if started.elapsed() > within {
            let _ = child.kill();
            return Err(format!("{} not ready after {within:?}: {}", pod.name, pod.log_text()));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn migrate(workloads: &[Value], database_url: &str) {
    let job = workloads
        .iter()
        .find(|w| w["kind"] == "Job" && w["name"] == "arca-migrate")
        .expect("the render has the migration Job");
    let pod = Pod::new(job, database_url);
    let out = pod.command(0).output().unwrap();
    assert!(
        out.status.success(),
        "the migration Job's command failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("database roles set for: artifacts, audit, auth, download, ingest, scan, sign, upload, users"),
        "the migration Job must set every function's role: {stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_function_starts_from_its_rendered_manifest() {
    let rendered = Rendered::new();
    let workloads = rendered.workloads(None).unwrap_or_else(|problems| panic!("kval env: {problems}"));
    let database_url = fresh_pg_database().await;
    migrate(&workloads, &database_url);

    let services: Vec<&Value> =
        workloads.iter().filter(|w| w["kind"] == "Service" && function_of(w).is_some()).collect();
    let mut names: Vec<String> = services.iter().filter_map(|w| function_of(w)).collect();
    names.sort();
    assert_eq!(names, ["artifacts", "audit", "auth", "download", "ingest", "scan", "sign", "upload", "users"]);

    let pods: Vec<Pod> = services.iter().map(|w| Pod::new(w, &database_url)).collect();
    for pod in &pods {
        let url = url::Url::parse(&pod.env["DATABASE_URL"]).unwrap();
        assert!(
            url.username().starts_with(&format!("arca_{}_", pod.name)),
            "{} must connect as its own PostgreSQL role, not as {}",
            pod.name,
            url.username()
        );
    }
    let mut running = Vec::new();
    for pod in &pods {
        let port = free_port();
        running.push((pod, port, pod.spawn(port)));
    }
    let mut failures = Vec::new();
    for (pod, port, child) in &mut running {
        match ready(pod, child, *port, Duration::from_secs(30)).await {
            Ok(took) => {
                let log = pod.log_text();
                if log.contains("does not use") {
                    failures.push(format!("{} was given a secret it does not use: {log}", pod.name));
                }
                println!("{:<10} ready in {:>4} ms from its rendered env", pod.name, took.as_millis());
            }
            Err(why) => failures.push(why),
        }
    }
    for (_, _, child) in &mut running {
        let _ = child.kill();
        let _ = child.wait();
    }
    assert!(failures.is_empty(), "functions that do not start from their manifests:\n{}", failures.join("\n---\n"));
}

/// Each fixture breaks the render one way; the breakage must be caught, by `kval env` or by
/// the function refusing to start, with the fixture's `# expect:` text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_manifests_are_caught() {
    let rendered = Rendered::new();
    let database_url = fresh_pg_database().await;
    migrate(&rendered.workloads(None).unwrap(), &database_url);
    let dir = repo_root().join("tests/fixtures/env");
    let mut fixtures: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    fixtures.sort();
    assert!(fixtures.len() >= 3, "fixtures in {}", dir.display());
    for fixture in fixtures {
        let text = std::fs::read_to_string(&fixture).unwrap();
        let line = |prefix: &str| text.lines().find_map(|l| l.strip_prefix(prefix)).map(str::trim).map(str::to_owned);
        let expect = line("# expect: ").unwrap_or_else(|| panic!("{} has no '# expect:' line", fixture.display()));
        let target = line("# target: ").unwrap();
        let caught = match rendered.workloads(Some(&fixture)) {
            Err(problems) => problems,
            Ok(workloads) => {
                let name = target.rsplit('/').next().unwrap();
                let workload = workloads.iter().find(|w| w["name"] == name).unwrap();
                let pod = Pod::new(workload, &database_url);
                let port = free_port();
                let mut child = pod.spawn(port);
                match ready(&pod, &mut child, port, Duration::from_secs(15)).await {
                    Ok(_) => {
                        let _ = child.kill();
                        String::from("(started and became ready)")
                    }
                    Err(why) => why,
                }
            }
        };
        assert!(caught.contains(&expect), "{}: expected '{expect}', got: {caught}", fixture.display());
        println!("caught  {}: {expect}", fixture.file_name().unwrap().to_string_lossy());
    }
}

/// A database outage answers readiness 503 and never slows liveness (the kubelet would
/// restart every pod after three 1 s timeouts: the manifests keep the default
/// `timeoutSeconds`); service resumes when the database is back, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn liveness_never_waits_on_the_database() {
    let rendered = Rendered::new();
    let workloads = rendered.workloads(None).unwrap_or_else(|problems| panic!("kval env: {problems}"));
    let pg = crate::helpers::PgCluster::start();
    let database_url = pg.url();
    migrate(&workloads, &database_url);
    let users = workloads.iter().find(|w| w["kind"] == "Service" && w["name"] == "users").unwrap();
    let pod = Pod::new(users, &database_url);
    let port = free_port();
    let mut child = pod.spawn(port);
    ready(&pod, &mut child, port, Duration::from_secs(30)).await.unwrap();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let probe = |path: &'static str| {
        let client = client.clone();
        async move {
            let started = Instant::now();
            let status = client.get(format!("http://127.0.0.1:{port}{path}")).send().await.unwrap().status();
            (status.as_u16(), started.elapsed())
        }
    };

    pg.stop();
    let mut slowest = Duration::ZERO;
    for _ in 0..5 {
        let (status, took) = probe("/health/liveness").await;
        assert_eq!(status, 200);
        slowest = slowest.max(took);
        // a request that does wait on the database runs beside the probes
        let _ = probe("/api/roles").await;
    }
    assert!(slowest < Duration::from_millis(500), "liveness took {slowest:?} with the database down");
    assert_eq!(probe("/health/readiness").await.0, 503, "readiness must report the outage");
    println!("database down: liveness answered in at most {} ms; readiness 503", slowest.as_millis());

    pg.restart();
    assert!(
        crate::helpers::eventually(Duration::from_secs(30), || async { probe("/health/readiness").await.0 == 200 })
            .await,
        "readiness did not recover after the database came back"
    );
    assert!(child.try_wait().unwrap().is_none(), "the function exited during the outage: {}", pod.log_text());
    let _ = child.kill();
    let _ = child.wait();
}
