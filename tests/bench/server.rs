//! A throw-away `arca serve` for benchmarks.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const PASSWORD: &str = "benchmark-password-1";

pub struct Server {
    child: Child,
    pub url: String,
    pub dir: tempfile::TempDir,
}

impl Server {
    pub async fn start(arca: &str, env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        // Trivy with the fixture DB (scripts/bench.sh builds both), a copy per server.
        let trivy = std::env::var("ARCA_BENCH_TRIVY").unwrap_or_else(|_| "trivy".into());
        let cache = dir.path().join("trivy-cache");
        if let Ok(db) = std::env::var("ARCA_BENCH_TRIVY_DB") {
            std::fs::create_dir_all(cache.join("db"))?;
            for file in ["trivy.db", "metadata.json"] {
                std::fs::copy(std::path::Path::new(&db).join(file), cache.join("db").join(file))?;
            }
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new(arca)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(dir.path().join("data"))
            .env("ARCA_ADMIN_PASSWORD", PASSWORD)
            .env("ARCA_RATE_LIMIT", "100000000")
            .env("ARCA_LOGIN_RATE_LIMIT", "100000000")
            .env("ARCA_LOG", "warn")
            .env("ARCA_TRIVY", &trivy)
            .env("ARCA_TRIVY_CACHE_DIR", &cache)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("stderr.log"))?)
            .spawn()?;
        let server = Self { child, url: format!("https://127.0.0.1:{port}"), dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last_error = String::new();
        while Instant::now() < deadline {
            let Ok(client) = server.client() else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            match client.get(format!("{}/api/health", server.url)).send().await {
                Ok(r) if r.status() == 200 => return Ok(server),
                Ok(r) => last_error = format!("status {}", r.status()),
                Err(e) => last_error = format!("{e:?}"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let stderr = std::fs::read_to_string(server.dir.path().join("stderr.log")).unwrap_or_default();
        anyhow::bail!("arca did not start: {last_error} {stderr}")
    }

    /// A client with its own connection pool, trusting the server's certificate.
    pub fn client(&self) -> anyhow::Result<reqwest::Client> {
        let cert = std::fs::read(self.dir.path().join("data/tls/cert.pem"))?;
        Ok(reqwest::Client::builder()
            .use_rustls_tls()
            .add_root_certificate(reqwest::Certificate::from_pem(&cert)?)
            .tls_built_in_root_certs(false)
            .build()?)
    }

    /// The typed client, signed in as admin, trusting only this server's certificate.
    pub async fn api(&self) -> anyhow::Result<arca_client::Client> {
        let cert = std::fs::read(self.dir.path().join("data/tls/cert.pem"))?;
        let api = arca_client::Client::builder(&self.url).pin_pem(cert).build()?;
        api.login("admin", PASSWORD).await?;
        Ok(api)
    }

    pub async fn login(&self, client: &reqwest::Client) -> anyhow::Result<String> {
        let body: serde_json::Value = client
            .post(format!("{}/api/auth/login", self.url))
            .json(&serde_json::json!({"username": "admin", "password": PASSWORD}))
            .send()
            .await?
            .json()
            .await?;
        Ok(body["access_token"].as_str().unwrap_or_default().to_owned())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The q-quantile of sorted durations, in milliseconds.
pub fn quantile_ms(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[index].as_secs_f64() * 1000.0
}
