//! `arca`: the server (`arca serve`, every function in one process) and the client commands.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod artifacts;
mod client;
mod serve;

#[derive(Parser)]
#[command(name = "arca", version, about = "Arca: a secure artifact manager")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every Arca function in one process (HTTPS, SQLite and encrypted local files by default).
    Serve(Box<shared::core::config::ServerArgs>),
    /// Sign in to an Arca server and store the session (refresh token, mode 0600).
    Login {
        /// Server URL, e.g. https://127.0.0.1:8443
        #[arg(long, env = "ARCA_SERVER", default_value = "https://127.0.0.1:8443")]
        server: String,
        #[arg(long, short, env = "ARCA_USERNAME")]
        username: String,
        /// CA or self-signed certificate (PEM) to trust for this server.
        #[arg(long, env = "ARCA_CA_CERT")]
        ca_cert: Option<std::path::PathBuf>,
    },
    /// Show who the stored session (or ARCA_TOKEN) belongs to.
    Whoami,
    /// Upload a file as NAME@VERSION and wait for its final status.
    Push {
        file: std::path::PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long)]
        version: String,
        /// key=value (repeatable).
        #[arg(long = "label")]
        labels: Vec<String>,
    },
    /// Download an artifact (ID or NAME@VERSION), keeping it only if its SHA-256 verifies.
    Pull {
        reference: String,
        #[arg(short, long)]
        output: Option<std::path::PathBuf>,
    },
    /// Show an artifact's status (ID or NAME@VERSION).
    Status { reference: String },
    /// Verify a signature of FILE offline (Arca's or a publisher's): DER or base64 signature,
    /// PEM chain (signing certificate first); with --trust, the chain must lead to a CA in BUNDLE.
    Verify {
        file: std::path::PathBuf,
        #[arg(long)]
        signature: std::path::PathBuf,
        #[arg(long)]
        chain: std::path::PathBuf,
        #[arg(long)]
        trust: Option<std::path::PathBuf>,
    },
    /// The audit log, offline.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Operator commands run on the server's machine.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Verify an exported log (`GET /api/audit-logs?format=ndjson`, the whole log) against its
    /// hash chain and the signed checkpoints (`GET /api/audit-logs/checkpoints`): a log whose
    /// entries were altered, removed, or cut from the tail does not verify.
    Verify {
        /// The NDJSON export.
        #[arg(long)]
        log: std::path::PathBuf,
        /// The checkpoints document (JSON).
        #[arg(long)]
        checkpoints: std::path::PathBuf,
        /// The checkpoint signer's public key (PEM), obtained independently of the export;
        /// without it, the key in the checkpoints document is used.
        #[arg(long)]
        public_key: Option<std::path::PathBuf>,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Re-sign every approved artifact with the server's current signing key (after a rotation).
    Resign,
    /// Import a Trivy vulnerability DB (a directory with trivy.db and metadata.json), air-gapped.
    /// A running server notices the new DB and rescans approved artifacts.
    TrivyDbImport {
        source: std::path::PathBuf,
        /// Trivy cache dir of the server.
        #[arg(long, env = "ARCA_TRIVY_CACHE_DIR", default_value = "./arca-data/trivy")]
        cache_dir: std::path::PathBuf,
    },
}

fn main() -> ExitCode {
    shared::core::scan::unpack::run_child_if_requested();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help, --version
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("arca: error: {}", shared::web::function::first_line(&e.to_string()));
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("arca: error: tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(*args).await,
            Command::Login { server, username, ca_cert } => client::login(&server, &username, ca_cert.as_deref()).await,
            Command::Push { file, name, version, labels } => artifacts::push(&file, &name, &version, &labels).await,
            Command::Pull { reference, output } => artifacts::pull(&reference, output).await,
            Command::Status { reference } => artifacts::status(&reference).await,
            Command::Verify { file, signature, chain, trust } => {
                artifacts::verify(&file, &signature, &chain, trust.as_deref()).await
            }
            Command::Admin { command: AdminCommand::Resign } => {
                let client = client::Client::connect().await?;
                let response = client.request(reqwest::Method::POST, "/api/admin/resign").send().await?;
                if !response.status().is_success() {
                    return Err(client::problem(response).await);
                }
                let body: serde_json::Value = response.json().await?;
                println!("re-signed {} approved artifacts", body["resigned"]);
                Ok(())
            }
            Command::Admin { command: AdminCommand::TrivyDbImport { source, cache_dir } } => {
                let cache_dir = shared::core::config::absolute("--cache-dir", &cache_dir)?;
                let trivy = std::env::var_os("ARCA_TRIVY").map(std::path::PathBuf::from);
                let updated_at = shared::core::scan::trivydb::import(&source, &cache_dir, trivy.as_deref()).await?;
                println!("vulnerability DB imported into {} (UpdatedAt {updated_at})", cache_dir.display());
                Ok(())
            }
            Command::Audit { command: AuditCommand::Verify { log, checkpoints, public_key } } => {
                audit_verify(&log, &checkpoints, public_key.as_deref())
            }
            Command::Whoami => {
                let me = client::Client::connect().await?.get_json("/api/auth/me").await?;
                let roles: Vec<&str> =
                    me["roles"].as_array().into_iter().flatten().filter_map(|r| r.as_str()).collect();
                println!("{} ({})", me["username"].as_str().unwrap_or("?"), roles.join(", "));
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("arca: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `arca audit verify`: offline, from files.
fn audit_verify(
    log: &std::path::Path,
    checkpoints: &std::path::Path,
    public_key: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    use anyhow::Context;
    use p256::pkcs8::DecodePublicKey;
    let text = std::fs::read_to_string(log).with_context(|| format!("cannot read {}", log.display()))?;
    let entries = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str::<shared::core::audit::AuditEntry>)
        .collect::<Result<Vec<_>, _>>()
        .context("the log is not NDJSON audit entries")?;
    let document: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(checkpoints).with_context(|| format!("cannot read {}", checkpoints.display()))?,
    )
    .context("the checkpoints document is not JSON")?;
    let list: Vec<shared::core::audit::Checkpoint> =
        serde_json::from_value(document["checkpoints"].clone()).context("no checkpoints in the document")?;
    let pem = match public_key {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?,
        None => {
            eprintln!("arca: warning: using the public key from the checkpoints document; pass --public-key to pin it");
            document["public_key"].as_str().unwrap_or_default().to_owned()
        }
    };
    let key = p256::ecdsa::VerifyingKey::from_public_key_pem(&pem).context("the public key is not a P-256 PEM key")?;
    let result = shared::core::audit::verify_entries(&entries, &list, Some(&key));
    println!("{}", serde_json::to_string_pretty(&result)?);
    anyhow::ensure!(result.valid, "the audit log does not verify");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `arca …` command that README, the CLI's and the server's messages name.
    fn commands_named() -> Vec<(String, String)> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap_or(std::path::Path::new("."));
        let mut sources = vec![root.join("README.md")];
        for dir in ["shared/src", "cli/src"] {
            let mut stack = vec![root.join(dir)];
            while let Some(d) = stack.pop() {
                for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                    let p = entry.path();
                    if p.is_dir() {
                        stack.push(p);
                    } else if p.extension().is_some_and(|e| e == "rs") {
                        sources.push(p);
                    }
                }
            }
        }
        let mut found = Vec::new();
        for source in sources {
            let text = std::fs::read_to_string(&source).unwrap_or_default();
            let name = source.display().to_string();
            // Inline: `arca …`
            for piece in text.split('`').skip(1).step_by(2) {
                if piece.starts_with("arca ") && !piece.contains('\n') {
                    found.push((name.clone(), piece.to_owned()));
                }
            }
            // README code blocks: lines starting with `arca `.
            if name.ends_with("README.md") {
                for line in text.lines().map(str::trim) {
                    if line.starts_with("arca ") {
                        found.push((name.clone(), line.split(" #").next().unwrap_or(line).trim().to_owned()));
                    }
                }
            }
        }
        found
    }

    #[test]
    fn every_command_arca_prints_or_documents_parses() {
        let named = commands_named();
        assert!(named.len() > 5, "found too few commands: {named:?}");
        for (source, command) in named {
            // Placeholders of format strings and shell variables stand for values.
            let words: Vec<String> = command
                .split_whitespace()
                .take_while(|w| !["|", "&&", ">", "#"].contains(w))
                .map(|w| if w.contains('{') || w.starts_with('$') { "x".to_owned() } else { w.replace(['[', ']'], "") })
                .filter(|w| !w.is_empty() && w != "…")
                .collect();
            match Cli::try_parse_from(&words) {
                Ok(_) => {}
                Err(e) if !e.use_stderr() => {} // --help
                // A reference to a command (`arca push`) need not repeat its arguments.
                Err(e) if e.kind() == clap::error::ErrorKind::MissingRequiredArgument => {}
                Err(_) if words.len() < 2 => {} // the program's name alone
                Err(e) => panic!("{source}: `{command}` does not parse: {e}"),
            }
        }
    }
}
