//! Signing in and staying signed in. `arca login` pins the server's trust anchor (the CA or
//! self-signed certificate given with `--ca-cert`, or the certificate the server presents,
//! once its SHA-256 fingerprint is confirmed) and stores it with the session (refresh
//! token, and the current access token with its expiry) in the user's config dir, mode
//! 0600. Every later command trusts that anchor only and reuses the stored access token
//! while it has more than [`ACCESS_MARGIN_SECS`] left; else it refreshes and stores the
//! rotated pair. Reading, refreshing and writing the session happen under an exclusive lock
//! on `credentials.lock` beside it, so concurrent commands (`make -j`, parallel CI steps)
//! refresh once, one after the other, and never present a rotated refresh token again
//! (which the server would take for theft). CI sets `ARCA_TOKEN`.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use arca_client::{trust, Client};
use serde::{Deserialize, Serialize};

use crate::output::{Failure, Out, Outcome};

/// What `arca login` stores.
#[derive(Debug, Serialize, Deserialize)]
pub struct Credentials {
    pub server: String,
    /// PEM of the pinned trust anchor (a CA, or the server's self-signed certificate);
    /// none for a plain-HTTP server.
    pub ca_pem: Option<String>,
    pub username: String,
    pub refresh_token: String,
    /// PEM of Arca's signing CA (`--signing-ca`): the only anchor `arca pull` verifies
    /// Arca's signature against.
    #[serde(default)]
    pub signing_ca_pem: Option<String>,
    /// The latest access token and when it expires (Unix seconds); absent in sessions
    /// stored by older versions (then the first command refreshes).
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub access_expires_at: i64,
}

/// A stored access token is used only while it has more than this left.
const ACCESS_MARGIN_SECS: i64 = 60;

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Credentials {
    /// Stores a token response: the rotated refresh token and the new access token.
    fn update(&mut self, tokens: &arca_client::TokenResponse) -> anyhow::Result<()> {
        // The CLI asks for the refresh token in the body (login) and sends it there (refresh).
        let refresh = tokens.refresh_token.as_ref().context("the server returned no refresh token")?;
        self.refresh_token.clone_from(refresh);
        self.access_token = Some(tokens.access_token.clone());
        self.access_expires_at = now_secs().saturating_add(tokens.expires_in);
        Ok(())
    }

    /// The stored access token, if it is still good for a while.
    fn fresh_access_token(&self) -> Option<&str> {
        self.access_token.as_deref().filter(|_| self.access_expires_at - now_secs() > ACCESS_MARGIN_SECS)
    }
}

/// `$XDG_CONFIG_HOME/arca/credentials.json`, else `~/.config/arca/credentials.json`.
pub fn credentials_path() -> anyhow::Result<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?).join(".config"),
    };
    Ok(base.join("arca").join("credentials.json"))
}

/// Writes the credentials atomically with mode 0600.
pub fn save(path: &Path, creds: &Credentials) -> anyhow::Result<()> {
    let dir = path.parent().context("credentials path")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    shared::core::fsutil::write_secret(path, serde_json::to_string_pretty(creds)?.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn read(path: &Path) -> anyhow::Result<Option<Credentials>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(
            serde_json::from_str::<Credentials>(&text)
                .with_context(|| format!("{} is corrupt: run `arca login`", path.display()))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// An exclusive lock on `credentials.lock` beside the session, held until dropped; other
/// `arca` processes of the same user wait for it.
fn lock_session(path: &Path) -> anyhow::Result<std::fs::File> {
    let dir = path.parent().context("credentials path")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let lock_path = dir.join("credentials.lock");
    let mut options = std::fs::OpenOptions::new();
    options.create(true).truncate(false).write(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(&lock_path).with_context(|| format!("cannot open {}", lock_path.display()))?;
    file.lock().with_context(|| format!("cannot lock {}", lock_path.display()))?;
    Ok(file)
}

/// A signed-in client: `ARCA_TOKEN` (an API token, for CI) when set, else the stored
/// session: its access token while it is fresh, else refreshed under the session lock
/// (the rotated pair is stored).
pub async fn connect() -> anyhow::Result<Client> {
    let path = credentials_path()?;
    let _lock = if env("ARCA_TOKEN").is_none() { Some(lock_session(&path)?) } else { None };
    let stored = read(&path)?;
    if let Some(token) = env("ARCA_TOKEN") {
        // CI: the server and its anchor from the environment, else from `arca login`.
        let server = env("ARCA_SERVER")
            .or_else(|| stored.as_ref().map(|c| c.server.clone()))
            .context("ARCA_TOKEN is set but no server: set ARCA_SERVER (or run `arca login`)")?;
        let server = server.trim_end_matches('/').to_owned();
        let anchor = match env("ARCA_CA_CERT") {
            Some(file) => Some(std::fs::read(&file).with_context(|| format!("ARCA_CA_CERT: cannot read {file}"))?),
            None => {
                stored.as_ref().filter(|c| c.server == server).and_then(|c| c.ca_pem.clone()).map(String::into_bytes)
            }
        };
        let mut builder = Client::builder(&server).token(token);
        if let Some(pem) = anchor {
            builder = builder.pin_pem(pem);
        }
        return Ok(builder.build()?);
    }
    let Some(mut creds) = stored else {
        let error = arca_client::Error::Api(Box::new(arca_client::Problem {
            status: 401,
            code: "unauthorized".into(),
            title: "Unauthorized".into(),
            detail: format!("not signed in ({} missing): run `arca login` first, or set ARCA_TOKEN", path.display()),
            retry_after: None,
            body: serde_json::Value::Null,
        }));
        return Err(error.into());
    };
    let mut builder = Client::builder(&creds.server);
    match &creds.ca_pem {
        Some(pem) => builder = builder.pin_pem(pem.clone().into_bytes()),
        None if creds.server.starts_with("https://") => {
            bail!("no trust anchor is pinned for {}: run `arca login` again", creds.server)
        }
        None => {}
    }
    let client = builder.build()?;
    if let Some(token) = creds.fresh_access_token() {
        client.set_token(Some(token.to_owned()));
        return Ok(client);
    }
    let tokens = client.refresh(&creds.refresh_token).await.map_err(|e| match e {
        arca_client::Error::Api(mut p) if p.status == 401 => {
            p.detail = format!("session expired or revoked ({}): run `arca login` again", p.detail);
            arca_client::Error::Api(p)
        }
        other => other,
    })?;
    creds.update(&tokens)?;
    save(&path, &creds)?;
    Ok(client)
}

/// A signing CA file: PEM with at least one certificate.
pub fn read_signing_ca(file: &Path, what: &str) -> anyhow::Result<String> {
    let pem = std::fs::read_to_string(file).with_context(|| format!("{what}: cannot read {}", file.display()))?;
    shared::core::signing::pem_certs(&pem).with_context(|| format!("{what}: {}", file.display()))?;
    Ok(pem)
}

/// The signing CA pinned by `arca login --signing-ca FILE` for `server`, if any.
pub fn pinned_signing_ca(server: &str) -> anyhow::Result<Option<String>> {
    Ok(read(&credentials_path()?)?.filter(|c| c.server == server).and_then(|c| c.signing_ca_pem))
}

/// `arca login` arguments.
#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    /// Server URL, e.g. https://127.0.0.1:8443
    #[arg(long, env = "ARCA_SERVER", default_value = "https://127.0.0.1:8443")]
    pub server: String,
    #[arg(long, short, env = "ARCA_USERNAME")]
    pub username: String,
    /// The CA (or self-signed certificate, PEM) to trust for this server: pinned.
    #[arg(long, env = "ARCA_CA_CERT", conflicts_with = "fingerprint")]
    pub ca_cert: Option<PathBuf>,
    /// The SHA-256 fingerprint of the server's certificate (as `arca serve` prints it):
    /// the certificate the server presents is pinned if it matches.
    #[arg(long)]
    pub fingerprint: Option<String>,
    /// Arca's signing CA (PEM; `arca serve` writes it to <data-dir>/signing/ca.pem): pinned,
    /// and the only anchor `arca pull` verifies Arca's signature against.
    #[arg(long, env = "ARCA_SIGNING_CA", value_name = "FILE")]
    pub signing_ca: Option<PathBuf>,
    /// Read the password from stdin (no TTY needed), like `docker login --password-stdin`.
    #[arg(long)]
    pub password_stdin: bool,
}

/// Reads a line from the terminal (not stdin, which may carry the password).
fn ask_terminal(question: &str) -> anyhow::Result<String> {
    let mut tty = std::fs::OpenOptions::new().read(true).write(true).open("/dev/tty").context("no terminal")?;
    write!(tty, "{question}")?;
    tty.flush()?;
    let mut line = String::new();
    std::io::BufReader::new(tty).read_line(&mut line)?;
    Ok(line.trim().to_owned())
}

fn password(args: &LoginArgs, server: &str) -> Result<String, Failure> {
    if args.password_stdin {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("reading the password from stdin")?;
        let password = text.trim_end_matches(['\n', '\r']).to_owned();
        if password.is_empty() {
            return Err(Failure::usage("--password-stdin: stdin is empty"));
        }
        return Ok(password);
    }
    // For tests and scripts that cannot use stdin; prefer --password-stdin.
    if let Some(password) = env("ARCA_PASSWORD") {
        return Ok(password);
    }
    rpassword::prompt_password(format!("password for {}@{server}: ", args.username))
        .map_err(|_| Failure::usage("no terminal to ask for the password: pass it with --password-stdin"))
}

/// The anchor to pin for an https server: `--ca-cert`, or the presented certificate once
/// its fingerprint is confirmed (`--fingerprint`, or interactively).
async fn anchor(args: &LoginArgs, server: &str, out: &Out) -> Result<Option<(String, String)>, Failure> {
    if !server.starts_with("https://") {
        out.note(&format!("arca: warning: {server} is plain HTTP: there is no certificate to pin"));
        return Ok(None);
    }
    if let Some(path) = &args.ca_cert {
        let pem =
            std::fs::read_to_string(path).with_context(|| format!("--ca-cert: cannot read {}", path.display()))?;
        let der =
            pem_first_der(&pem).with_context(|| format!("--ca-cert: {} holds no PEM certificate", path.display()))?;
        return Ok(Some((pem, trust::fingerprint(&der))));
    }
    let chain = trust::fetch_chain(server).await?;
    let pick = |der: &Vec<u8>| (trust::to_pem(der), trust::fingerprint(der));
    if let Some(expected) = &args.fingerprint {
        let matched = chain.iter().rev().find(|der| trust::same_fingerprint(&trust::fingerprint(der), expected));
        return match matched {
            Some(der) => Ok(Some(pick(der))),
            None => Err(anyhow::anyhow!(
                "{server} presents a certificate with SHA-256 fingerprint {}, not {expected}: refusing to trust it",
                trust::fingerprint(&chain[0])
            )
            .into()),
        };
    }
    let anchor = trust::anchor_of(&chain).map(<[u8]>::to_vec).unwrap_or_default();
    let fingerprint = trust::fingerprint(&anchor);
    let interactive = !args.password_stdin && std::io::stderr().is_terminal();
    if !interactive {
        return Err(Failure::usage(format!(
            "cannot confirm the certificate of {server} without a terminal: pass --fingerprint {fingerprint} \
             after checking it against the one `arca serve` printed, or --ca-cert FILE"
        )));
    }
    let answer = ask_terminal(&format!(
        "{server} presents a certificate with SHA-256 fingerprint\n  {fingerprint}\n\
         Compare it with the one the server printed. Trust and pin it? [y/N] "
    ))?;
    if !answer.eq_ignore_ascii_case("y") && !answer.eq_ignore_ascii_case("yes") {
        return Err(anyhow::anyhow!("the certificate of {server} was not confirmed: nothing stored").into());
    }
    Ok(Some(pick(&anchor)))
}

fn pem_first_der(pem: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let body: String = pem
        .split("-----BEGIN CERTIFICATE-----")
        .nth(1)?
        .split("-----END CERTIFICATE-----")
        .next()?
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

/// `arca login`: signs in with a password, pins the trust anchor, stores the session.
pub async fn login(args: LoginArgs, out: &Out) -> Outcome {
    let server = args.server.trim_end_matches('/').to_owned();
    let anchor = anchor(&args, &server, out).await?;
    let password = password(&args, &server)?;
    let mut builder = Client::builder(&server);
    if let Some((pem, _)) = &anchor {
        builder = builder.pin_pem(pem.clone().into_bytes());
    }
    let client = builder.build().map_err(anyhow::Error::from)?;
    let tokens = client.login(&args.username, &password).await?;
    let path = credentials_path()?;
    let (ca_pem, fingerprint) = anchor.map_or((None, None), |(pem, fp)| (Some(pem), Some(fp)));
    let signing_ca_pem = args.signing_ca.as_deref().map(|file| read_signing_ca(file, "--signing-ca")).transpose()?;
    let mut creds = Credentials {
        server: server.clone(),
        ca_pem,
        signing_ca_pem,
        username: args.username.clone(),
        refresh_token: String::new(),
        access_token: None,
        access_expires_at: 0,
    };
    creds.update(&tokens)?;
    let _lock = lock_session(&path)?;
    save(&path, &creds)?;
    let result = serde_json::json!({
        "server": server,
        "username": args.username,
        "credentials": path,
        "pinned_certificate_sha256": fingerprint,
    });
    out.emit(&result, || {
        let pinned = fingerprint.as_deref().map(|f| format!("; trusting only the certificate {f}")).unwrap_or_default();
        format!("signed in as {}; session stored in {}{pinned}", args.username, path.display())
    });
    Ok(())
}
