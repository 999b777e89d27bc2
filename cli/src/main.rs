//! `arca`: the server (`arca serve`, every function in one process) and the client commands,
//! which talk to the API through `arca-client`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

mod artifacts;
mod commands;
mod output;
mod serve;
mod session;

use output::{exit, Failure, Format, Out, Outcome};

#[derive(Parser)]
#[command(name = "arca", version, about = "Arca: a secure artifact manager")]
struct Cli {
    /// `json`: one machine-readable JSON document on stdout (errors too: `{"error": …}`).
    #[arg(long, short = 'O', global = true, value_enum, default_value = "text", env = "ARCA_OUTPUT")]
    output: Format,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every Arca function in one process (HTTPS, SQLite and encrypted local files by default).
    Serve(Box<shared::core::config::ServerArgs>),
    /// Sign in, pin the server's certificate, and store the session (mode 0600).
    Login(session::LoginArgs),
    /// Show who the stored session (or ARCA_TOKEN) belongs to.
    Whoami,
    /// API tokens (for CI: set ARCA_TOKEN to one).
    Token {
        #[command(subcommand)]
        command: commands::TokenCommand,
    },
    /// Upload a file as NAME@VERSION and wait for its final status (exit 3 unless approved).
    ///
    /// Pushing the same bytes again reports the existing artifact and its status; other bytes
    /// under an existing NAME@VERSION fail (versions are immutable). With ARCA_TOKEN, the token
    /// needs the scopes artifacts_write and artifacts_read.
    Push {
        file: PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long)]
        version: String,
        /// key=value (repeatable).
        #[arg(long = "label")]
        labels: Vec<String>,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Download an artifact (ID or NAME@VERSION) into the current directory unless -o says
    /// otherwise, keeping it only if its SHA-256 verifies and Arca's signature verifies
    /// against the pinned signing CA. Without a pinned signing CA the file is kept but the
    /// signature is reported as not verified (the chain a server sends proves nothing).
    Pull {
        reference: String,
        /// Where to write the file (default: its name, in the current directory).
        #[arg(short = 'o', long = "output-file", value_name = "PATH")]
        output_file: Option<PathBuf>,
        /// Arca's signing CA (PEM) to verify against, instead of the one pinned by
        /// `arca login --signing-ca FILE`.
        #[arg(long, env = "ARCA_SIGNING_CA", value_name = "FILE")]
        signing_ca: Option<PathBuf>,
    },
    /// Show an artifact's status (ID or NAME@VERSION).
    Status { reference: String },
    /// List and search artifacts.
    Ls(artifacts::LsArgs),
    /// An artifact's metadata, status reason, scan summary and signature.
    Show { reference: String },
    /// The findings of an artifact's latest scan.
    ScanResults { reference: String },
    /// Scan an artifact again (approved, quarantined, or failed because the scanner was down).
    Rescan {
        reference: String,
        /// Wait for the outcome (exit 3 unless approved).
        #[arg(long)]
        wait: bool,
    },
    /// Release a quarantined artifact (admin), with a justification kept in the audit log.
    Release {
        reference: String,
        #[arg(long)]
        reason: String,
    },
    /// Policy exceptions: waivers of a vulnerability or a package.
    Exceptions {
        #[command(subcommand)]
        command: commands::ExceptionCommand,
    },
    /// Verify a signature of FILE offline (Arca's or a publisher's): DER or base64 signature,
    /// PEM chain (signing certificate first); with --trust, the chain must lead to a CA in BUNDLE.
    Verify {
        file: PathBuf,
        #[arg(long)]
        signature: PathBuf,
        #[arg(long)]
        chain: PathBuf,
        #[arg(long)]
        trust: Option<PathBuf>,
    },
    /// The audit log, offline.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Operator commands.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Print shell completions (bash, zsh, fish, …).
    Completion { shell: clap_complete::Shell },
    /// Print the server's OpenAPI document (what `/api/openapi.json` serves).
    #[command(hide = true)]
    Openapi,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Verify an exported log (`GET /api/audit-logs?format=ndjson`, the whole log) against its
    /// hash chain and the signed checkpoints (`GET /api/audit-logs/checkpoints`): a log whose
    /// entries were altered, removed, or cut from the tail does not verify.
    Verify {
        /// The NDJSON export.
        #[arg(long)]
        log: PathBuf,
        /// The checkpoints document (JSON).
        #[arg(long)]
        checkpoints: PathBuf,
        /// The checkpoint signer's public key (PEM), obtained independently of the export;
        /// without it, the key in the checkpoints document is used.
        #[arg(long)]
        public_key: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Re-sign every approved artifact with the server's current signing key (after a rotation).
    Resign,
    /// Import a Trivy vulnerability DB (a directory with trivy.db and metadata.json), air-gapped.
    /// A running server notices the new DB and rescans approved artifacts.
    TrivyDbImport {
        source: PathBuf,
        /// Trivy cache dir of the server.
        #[arg(long, env = "ARCA_TRIVY_CACHE_DIR", default_value = "./arca-data/trivy")]
        cache_dir: PathBuf,
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
            use clap::error::ErrorKind;
            match e.kind() {
                // A bad value (often a setting from the environment): one line naming it.
                ErrorKind::InvalidValue | ErrorKind::ValueValidation | ErrorKind::InvalidUtf8 => {
                    eprintln!("arca: error: {}", shared::web::function::first_line(&e.to_string()));
                }
                // A usage mistake: clap's whole message, with what is missing, the suggestion
                // ("a similar subcommand exists") and the usage line.
                _ => eprint!("arca: {e}"),
            }
            return ExitCode::from(exit::USAGE);
        }
    };
    let out = Out { format: cli.output };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("arca: error: tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, &out)) {
        Ok(()) => ExitCode::from(exit::OK),
        Err(failure) => {
            if out.json() {
                let document = failure.result.clone().unwrap_or_else(|| failure.to_json());
                output::print_line(&serde_json::to_string_pretty(&document).unwrap_or_default());
            }
            eprintln!("arca: error: {:#}", failure.error);
            ExitCode::from(failure.exit)
        }
    }
}

async fn run(command: Command, out: &Out) -> Outcome {
    match command {
        Command::Serve(args) => Ok(serve::run(*args).await?),
        Command::Login(args) => session::login(args, out).await,
        Command::Whoami => commands::whoami(out).await,
        Command::Token { command } => commands::token(command, out).await,
        Command::Push { file, name, version, labels, description } => {
            artifacts::push(&file, &name, &version, &labels, &description, out).await
        }
        Command::Pull { reference, output_file, signing_ca } => {
            artifacts::pull(&reference, output_file, signing_ca.as_deref(), out).await
        }
        Command::Status { reference } => artifacts::status(&reference, out).await,
        Command::Ls(args) => artifacts::ls(args, out).await,
        Command::Show { reference } => artifacts::show(&reference, out).await,
        Command::ScanResults { reference } => artifacts::scan_results(&reference, out).await,
        Command::Rescan { reference, wait } => artifacts::rescan(&reference, wait, out).await,
        Command::Release { reference, reason } => artifacts::release(&reference, &reason, out).await,
        Command::Exceptions { command } => commands::exceptions(command, out).await,
        Command::Verify { file, signature, chain, trust } => {
            artifacts::verify(&file, &signature, &chain, trust.as_deref(), out).await
        }
        Command::Admin { command: AdminCommand::Resign } => {
            let resigned = session::connect().await?.resign().await?;
            out.emit(&resigned, || format!("re-signed {} approved artifacts", resigned.resigned));
            Ok(())
        }
        Command::Admin { command: AdminCommand::TrivyDbImport { source, cache_dir } } => {
            let cache_dir = shared::core::config::absolute("--cache-dir", &cache_dir)?;
            let trivy = std::env::var_os("ARCA_TRIVY").map(PathBuf::from);
            let updated_at = shared::core::scan::trivydb::import(&source, &cache_dir, trivy.as_deref()).await?;
            let result = serde_json::json!({"cache_dir": cache_dir, "updated_at": updated_at.to_string()});
            out.emit(&result, || {
                format!("vulnerability DB imported into {} (UpdatedAt {updated_at})", cache_dir.display())
            });
            Ok(())
        }
        Command::Audit { command: AuditCommand::Verify { log, checkpoints, public_key } } => {
            audit_verify(&log, &checkpoints, public_key.as_deref(), out)
        }
        Command::Completion { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "arca", &mut script);
            let script = String::from_utf8_lossy(&script).into_owned();
            let result = serde_json::json!({"shell": shell.to_string(), "script": script});
            out.emit(&result, || script.clone());
            Ok(())
        }
        Command::Openapi => {
            let document = shared::web::openapi::document();
            output::print_line(&serde_json::to_string_pretty(document).map_err(anyhow::Error::from)?);
            Ok(())
        }
    }
}

/// `arca audit verify`: offline, from files.
fn audit_verify(
    log: &std::path::Path,
    checkpoints: &std::path::Path,
    public_key: Option<&std::path::Path>,
    out: &Out,
) -> Outcome {
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
    // Blank lines around the PEM (as `jq -r` and editors leave them) are not part of it.
    let key =
        p256::ecdsa::VerifyingKey::from_public_key_pem(pem.trim()).context("the public key is not a P-256 PEM key")?;
    let result = shared::core::audit::verify_entries(&entries, &list, Some(&key));
    // The verification report is JSON in both modes.
    if !result.valid {
        let report = serde_json::to_value(&result).map_err(anyhow::Error::from)?;
        if !out.json() {
            output::print_line(&serde_json::to_string_pretty(&report).unwrap_or_default());
        }
        let error = anyhow::anyhow!("the audit log does not verify");
        return Err(Failure { exit: exit::ERROR, error, result: Some(report) });
    }
    out.emit(&result, || serde_json::to_string_pretty(&result).unwrap_or_default());
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
