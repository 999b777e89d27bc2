//! The API client behind `arca login` and the client commands. Credentials (server,
//! trusted CA, refresh token) live in the user's config dir with mode 0600; each command
//! refreshes the access token transparently and stores the rotated refresh token.

use std::path::PathBuf;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What `arca login` stores.
#[derive(Debug, Serialize, Deserialize)]
pub struct Credentials {
    pub server: String,
    /// PEM of a CA (or self-signed certificate) to trust for this server.
    pub ca_pem: Option<String>,
    pub username: String,
    pub refresh_token: String,
}

/// `$XDG_CONFIG_HOME/arca/credentials.json`, else `~/.config/arca/credentials.json`.
pub fn credentials_path() -> anyhow::Result<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?).join(".config"),
    };
    Ok(base.join("arca").join("credentials.json"))
}

pub fn http_client(ca_pem: Option<&str>) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder().use_rustls_tls().min_tls_version(reqwest::tls::Version::TLS_1_2);
    if let Some(pem) = ca_pem {
        builder = builder.add_root_certificate(
            reqwest::Certificate::from_pem(pem.as_bytes()).context("--ca-cert: not a PEM certificate")?,
        );
    }
    builder.build().context("HTTP client")
}

/// A signed-in client.
pub struct Client {
    pub http: reqwest::Client,
    pub server: String,
    access_token: String,
}

/// The problem+json `detail` of an error response, or its status.
pub async fn problem(response: reqwest::Response) -> anyhow::Error {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or_default();
    match (body["code"].as_str(), body["detail"].as_str()) {
        (Some(code), Some(detail)) => anyhow::anyhow!("{status}: {detail} ({code})"),
        _ => anyhow::anyhow!("{status}"),
    }
}

impl Client {
    /// Uses `ARCA_TOKEN` (an API token, for CI) when set, else the stored session,
    /// refreshing it (and storing the rotated refresh token).
    pub async fn connect() -> anyhow::Result<Self> {
        let path = credentials_path()?;
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("not signed in ({} missing): run `arca login` first", path.display()))?;
        let mut creds: Credentials =
            serde_json::from_str(&text).context("credentials file is corrupt: run `arca login`")?;
        let http = http_client(creds.ca_pem.as_deref())?;
        if let Ok(token) = std::env::var("ARCA_TOKEN") {
            return Ok(Self { http, server: creds.server, access_token: token });
        }
        let response = http
            .post(format!("{}/api/auth/refresh", creds.server))
            .json(&serde_json::json!({ "refresh_token": creds.refresh_token }))
            .send()
            .await
            .with_context(|| format!("cannot reach {}", creds.server))?;
        if !response.status().is_success() {
            let error = problem(response).await;
            bail!("session expired or revoked ({error}): run `arca login` again");
        }
        let body: Value = response.json().await?;
        let (Some(access), Some(refresh)) = (body["access_token"].as_str(), body["refresh_token"].as_str()) else {
            bail!("unexpected answer from the server");
        };
        creds.refresh_token = refresh.to_owned();
        save(&path, &creds)?;
        Ok(Self { http, server: creds.server, access_token: access.to_owned() })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server)
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, self.url(path)).bearer_auth(&self.access_token)
    }

    /// GET a JSON document; errors carry the server's problem detail.
    pub async fn get_json(&self, path: &str) -> anyhow::Result<Value> {
        let response = self.request(reqwest::Method::GET, path).send().await?;
        if !response.status().is_success() {
            return Err(problem(response).await);
        }
        Ok(response.json().await?)
    }
}

/// Writes the credentials atomically with mode 0600.
pub fn save(path: &std::path::Path, creds: &Credentials) -> anyhow::Result<()> {
    let dir = path.parent().context("credentials path")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    shared::core::fsutil::write_secret(path, serde_json::to_string_pretty(creds)?.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// `arca login`: signs in with a password and stores the session.
pub async fn login(server: &str, username: &str, ca_cert: Option<&std::path::Path>) -> anyhow::Result<()> {
    let server = server.trim_end_matches('/').to_owned();
    let ca_pem = ca_cert
        .map(|p| std::fs::read_to_string(p).with_context(|| format!("--ca-cert: cannot read {}", p.display())))
        .transpose()?;
    let password = match std::env::var("ARCA_PASSWORD") {
        Ok(p) => p,
        Err(_) => {
            rpassword::prompt_password(format!("password for {username}@{server}: ")).context("reading the password")?
        }
    };
    let http = http_client(ca_pem.as_deref())?;
    let response = http
        .post(format!("{server}/api/auth/login"))
        .json(&serde_json::json!({ "username": username, "password": password }))
        .send()
        .await
        .with_context(|| format!("cannot reach {server}"))?;
    if !response.status().is_success() {
        return Err(problem(response).await);
    }
    let body: Value = response.json().await?;
    let refresh = body["refresh_token"].as_str().context("unexpected answer from the server")?;
    let path = credentials_path()?;
    save(&path, &Credentials { server, ca_pem, username: username.to_owned(), refresh_token: refresh.to_owned() })?;
    println!("signed in as {username}; session stored in {}", path.display());
    Ok(())
}
