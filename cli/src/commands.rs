//! Account and policy commands: whoami, API tokens, policy exceptions.

use arca_client::{CreateToken, NewException};
use serde_json::json;

use crate::output::{Failure, Out, Outcome};
use crate::session::connect;

/// Unix milliseconds as an RFC 3339 time.
fn when(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(|| ms.to_string(), |t| t.to_rfc3339())
}

pub async fn whoami(out: &Out) -> Outcome {
    let me = connect().await?.me().await?;
    out.emit(&me, || format!("{} ({})", me.username, me.roles.join(", ")));
    Ok(())
}

#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Create an API token (from a signed-in session); the token is printed once.
    Create {
        /// What the token is for (e.g. the pipeline's name).
        #[arg(long)]
        name: String,
        /// A permission the token carries (repeatable), e.g. artifacts_read, artifacts_write,
        /// artifacts_download.
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// Days until it expires.
        #[arg(long = "expires", value_name = "DAYS", default_value_t = 30)]
        expires_in_days: u32,
    },
    /// Your API tokens (never their values).
    List,
    /// Revoke a token (by id).
    Revoke { id: String },
}

pub async fn token(command: TokenCommand, out: &Out) -> Outcome {
    let client = connect().await?;
    match command {
        TokenCommand::Create { name, scopes, expires_in_days } => {
            let created = client.create_token(&CreateToken { name, scopes, expires_in_days }).await?;
            if !out.json() {
                out.note(&format!(
                    "created token {} ({}), expires {}; it is shown only now:",
                    created.info.name,
                    created.info.id,
                    when(created.info.expires_at)
                ));
            }
            out.emit(&created, || created.token.clone());
        }
        TokenCommand::List => {
            let tokens = client.list_tokens().await?;
            out.emit(&tokens, || {
                if tokens.is_empty() {
                    return "no API tokens".to_owned();
                }
                tokens
                    .iter()
                    .map(|t| {
                        let state = if t.revoked_at.is_some() { "revoked" } else { "active" };
                        format!("{}  {:<24} {:<8} {}", t.id, t.name, state, t.scopes.join(","))
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        TokenCommand::Revoke { id } => {
            client.revoke_token(&id).await?;
            out.emit(&json!({"revoked": id}), || format!("revoked token {id}"));
        }
    }
    Ok(())
}

#[derive(Debug, clap::Subcommand)]
pub enum ExceptionCommand {
    /// Exceptions in force (--all: expired and revoked ones too).
    List {
        #[arg(long)]
        all: bool,
    },
    /// Waive a vulnerability (--cve) or a package (--package), for one artifact or all.
    Add {
        /// Vulnerability id, e.g. CVE-2024-1234.
        #[arg(long, required_unless_present = "package", conflicts_with = "package")]
        cve: Option<String>,
        #[arg(long)]
        package: Option<String>,
        /// Only for this artifact (ID or NAME@VERSION); default: every artifact.
        #[arg(long)]
        artifact: Option<String>,
        /// Why (kept in the audit log), 10 to 2000 characters.
        #[arg(long)]
        reason: String,
        /// Days until the exception expires (at most 365).
        #[arg(long = "expires", value_name = "DAYS", default_value_t = 30)]
        expires_in_days: u32,
    },
    /// Revoke an exception (by id).
    Revoke { id: String },
}

pub async fn exceptions(command: ExceptionCommand, out: &Out) -> Outcome {
    let client = connect().await?;
    match command {
        ExceptionCommand::List { all } => {
            let list = client.exceptions(all).await?;
            out.emit(&list, || {
                if list.is_empty() {
                    return "no exceptions".to_owned();
                }
                list.iter()
                    .map(|e| {
                        let what = e.vulnerability_id.as_deref().or(e.package.as_deref()).unwrap_or("?");
                        let scope = e.artifact_id.as_deref().unwrap_or("all artifacts");
                        format!("{}  {what:<24} {scope:<38} until {}", e.id, when(e.expires_at))
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        ExceptionCommand::Add { cve, package, artifact, reason, expires_in_days } => {
            if expires_in_days == 0 {
                return Err(Failure::usage("--expires: at least 1 day"));
            }
            let artifact_id = match artifact {
                Some(reference) => Some(client.resolve(&reference).await?.id),
                None => None,
            };
            let now = shared::core::db::now_ms();
            let request = NewException {
                artifact_id,
                vulnerability_id: cve,
                package,
                justification: reason,
                expires_at: now + i64::from(expires_in_days) * 86_400_000,
            };
            let created = client.create_exception(&request).await?;
            out.emit(&created, || format!("created exception {}", created.id));
        }
        ExceptionCommand::Revoke { id } => {
            client.revoke_exception(&id).await?;
            out.emit(&json!({"revoked": id}), || format!("revoked exception {id}"));
        }
    }
    Ok(())
}
